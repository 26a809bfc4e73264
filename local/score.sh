#!/usr/bin/env bash
# TIMIT phone scoring of a decode dir, like Kaldi's local/score.sh with sclite: PER on the 39 folded
# phones for every LM weight (LMWT, acoustic scale 1/LMWT) and word insertion penalty (WIP).
#   1. best paths per setting: from the lattices lat.*.gz (Kaldi's or the embedded decoder's, raw or
#      determinised) by pyscripts/asr/decode.py best-paths, one pass over each lattice for all settings,
#      equal to Kaldi's lattice-scale | lattice-add-penalty | lattice-best-path (the Kaldi tier tests
#      it), which --use-kaldi true runs instead, one pass per setting; or, for a decode without
#      lattices, its best paths hyp.* at the decoding acoustic scale, or the hypotheses a decode left
#      in scoring/NAME.{tra,txt};
#   2. hypotheses and references folded 48 -> 39 and written as sclite trn files, PER per setting
#      (DECODE_DIR/wer_LMWT_WIP, sclite's alignment costs, pyscripts/asr/scoring.py);
#   3. scoring/best_wer: the best setting (with --tune-dir: the setting chosen on that dev decode),
#      and the same setting as key=value lines in scoring/best_setting (setting=LMWT_WIP, lmwt=,
#      acwt=1/LMWT, wip=) for the stages that use it (local/hybrid_infer.sh); sclite reports (sum,
#      pralign, dtl) of that setting, by sclite when on PATH, else built in;
#   4. scoring/per_by_utt (that setting's errors per utterance) and scoring/intervals.json: 95%
#      bootstrap intervals of its PER and of the FER (scoring/fer_by_utt, when the FER was computed),
#      pyscripts/stats.py.
set -euo pipefail

cmd=${decode_cmd:-run.pl}
min_lmwt=1
max_lmwt=20
word_ins_penalty=0.0,0.5,1.0   # comma-separated, as in Kaldi's score_kaldi.sh
phone_map=conf/phones.60-48-39.map
tune_dir=              # the dev set's decode dir: report this set at dev's best setting
use_kaldi=false        # true: Kaldi's lattice tools (KALDI_ROOT), one pass over the lattices per setting

help_message="Usage: $0 [options] DATA_DIR GRAPH_OR_LANG_DIR DECODE_DIR
  e.g. $0 --tune-dir exp/convnet_asr/decode_dev data/timit/test exp/mono/graph exp/convnet_asr/decode_test
Options:
  --cmd CMD                 job runner (default \$decode_cmd)
  --min-lmwt N --max-lmwt N LM weights to try (default $min_lmwt..$max_lmwt)
  --word-ins-penalty L,L    word insertion penalties (default $word_ins_penalty)
  --phone-map FILE          60-48-39 phone map (default $phone_map)
  --tune-dir DIR            dev decode dir whose best setting applies here
  --use-kaldi true|false    Kaldi's lattice-best-path pipeline per setting (default $use_kaldi)"

. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 3 ]]; then echo -e "$help_message" >&2; exit 1; fi
data=$1 lang=$2 dir=$3
for f in "$data/text" "$lang/words.txt" "$phone_map"; do
  [[ -f $f ]] || die "no such file $f"
done
case $use_kaldi in
  true) command -v lattice-best-path >/dev/null || die "--use-kaldi true but lattice-best-path is not on PATH (set KALDI_ROOT)" ;;
  false) ;;
  *) die "--use-kaldi must be true or false" ;;
esac

sc=$dir/scoring
mkdir -p "$sc/log"
rm -f "$dir"/wer_* "$sc"/hyp_*.trn* "$sc/best_wer" "$sc/best_setting" "$sc/per_by_utt" "$sc/intervals.json"

if ls "$dir"/lat.*.gz >/dev/null 2>&1; then
  rm -f "$sc"/*.tra "$sc"/*.txt
  if $use_kaldi; then
    for wip in ${word_ins_penalty//,/ }; do
      # (the job runner replaces LMWT only as a whole word: name the files after the runs)
      $cmd LMWT="$min_lmwt":"$max_lmwt" "$sc/log/best_path.LMWT.$wip.log" \
        lattice-scale --inv-acoustic-scale=LMWT "ark:gunzip -c $dir/lat.*.gz|" ark:- \| \
        lattice-add-penalty --word-ins-penalty="$wip" ark:- ark:- \| \
        lattice-best-path ark:- "ark,t:$sc/kaldi.LMWT.$wip.tra"
      for lmwt in $(seq "$min_lmwt" "$max_lmwt"); do
        mv "$sc/kaldi.$lmwt.$wip.tra" "$sc/${lmwt}_$wip.tra"
      done
    done
  else
    $cmd "$sc/log/best_path.log" \
      python3 -m pyscripts.asr.decode best-paths --lmwt "$min_lmwt:$max_lmwt" --wip="$word_ins_penalty" "$dir" "$sc"
  fi
elif ls "$dir"/hyp.* >/dev/null 2>&1; then
  # No lattices (e.g. --decoder faster): one setting, the decoding acoustic scale.
  rm -f "$sc"/*.tra "$sc"/*.txt
  acwt=$(cat "$dir/acwt" 2>/dev/null || echo 0.1)
  lmwt=$(awk -v a="$acwt" 'BEGIN { printf "%d", 1 / a + 0.5 }')
  for f in "$dir"/hyp.*; do if [[ $f =~ /hyp\.[0-9]+$ ]]; then cat "$f"; fi; done | sort > "$sc/${lmwt}_0.0.txt"
  log "$dir has no lattices: scoring its best paths only (acoustic scale $acwt)"
elif ! compgen -G "$sc/*.tra" >/dev/null && ! compgen -G "$sc/*.txt" >/dev/null; then
  # (otherwise: hypotheses already in scoring/, NAME.tra or NAME.txt)
  die "$dir has no lat.*.gz, hyp.* or scoring/*.{tra,txt}: decode first"
fi

python3 -m pyscripts.asr.scoring score-dir --phone-map "$phone_map" --ref "$data/text" --words "$lang/words.txt" \
  "$dir" 2> "$sc/log/score.log" || { cat "$sc/log/score.log" >&2; exit 1; }

tune_opt=()
[[ -n $tune_dir ]] && tune_opt=(--tune-dir "$tune_dir")
best=$(python3 -m pyscripts.asr.scoring best "${tune_opt[@]}" "$dir" 2>> "$sc/log/score.log") || {
  cat "$sc/log/score.log" >&2; exit 1; }
# The setting best_wer names (LMWT_WIP, or LMWT: penalty 0.0), with acwt as best_wer writes it (1/LMWT, 4 digits).
lmwt=${best%%_*}; wip=${best#"$lmwt"}; wip=${wip#_}; wip=${wip:-0.0}
acwt=$(awk -v l="$lmwt" 'BEGIN { if (l ~ /^[0-9.]+$/ && l + 0 > 0) printf "%.4g", 1 / l; else printf "?" }')
printf 'setting=%s\nlmwt=%s\nacwt=%s\nwip=%s\n' "$best" "$lmwt" "$acwt" "$wip" > "$sc/best_setting"

if command -v sclite >/dev/null; then
  sclite -r "$sc/ref.trn" trn -h "$sc/hyp_$best.trn" trn -i rm -o sum pralign dtl > "$sc/log/sclite.log" 2>&1 || {
    cat "$sc/log/sclite.log" >&2; exit 1; }
else
  python3 -m pyscripts.asr.scoring reports --ref-trn "$sc/ref.trn" --hyp-trn "$sc/hyp_$best.trn" \
    > "$sc/log/reports.log" 2>&1 || { cat "$sc/log/reports.log" >&2; exit 1; }
fi
grep "Sum/Avg" "$sc/hyp_$best.trn.sys" || true
cat "$sc/best_wer"
python3 -m pyscripts.stats asr "$dir" 2>> "$sc/log/score.log" || { cat "$sc/log/score.log" >&2; exit 1; }
