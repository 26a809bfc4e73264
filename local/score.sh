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
#   3. the best setting (with --tune-dir: the setting chosen on that dev decode), in one Python pass
#      with step 2: scoring/result.json, the record every reader uses (setting, lmwt, acwt=1/LMWT, wip,
#      PER with its counts, FER, RTF; pyscripts/asr/result.py), and scoring/best_wer, its `%WER` line
#      for people and utils/best_wer.sh (Kaldi's token; the rates are phone error rates); sclite
#      reports (sum, pralign, dtl) of that setting, by sclite when on PATH, else built in;
#   4. scoring/per_by_utt (that setting's errors per utterance) and scoring/intervals.json: 95%
#      bootstrap intervals of its PER and of the FER (scoring/fer_by_utt, when the FER was computed),
#      pyscripts/intervals.py (the statistics: pyscripts/stats.py).
set -euo pipefail

cmd=${decode_cmd:-run.pl}
decode_conf=conf/decode.conf   # its --min-lmwt, --max-lmwt, --word-ins-penalty (options given here win)
min_lmwt=                      # empty: the decode conf's
max_lmwt=
word_ins_penalty=              # comma-separated, as in Kaldi's score_kaldi.sh
phone_map=conf/phones.60-48-39.map
tune_dir=              # the dev set's decode dir: report this set at dev's best setting
use_kaldi=false        # true: Kaldi's lattice tools (KALDI_ROOT), one pass over the lattices per setting

help_message="Usage: $0 [options] DATA_DIR GRAPH_OR_LANG_DIR DECODE_DIR
  e.g. $0 --tune-dir exp/convnet_asr/decode_dev data/timit/test exp/mono/graph exp/convnet_asr/decode_test
Options:
  --cmd CMD                 job runner (default \$decode_cmd)
  --decode-conf FILE        the LM weights and penalties to try (default $decode_conf)
  --min-lmwt N --max-lmwt N LM weights to try (default: the decode conf's)
  --word-ins-penalty L,L    word insertion penalties (default: the decode conf's)
  --phone-map FILE          60-48-39 phone map (default $phone_map)
  --tune-dir DIR            dev decode dir whose best setting applies here
  --use-kaldi true|false    Kaldi's lattice-best-path pipeline per setting (default $use_kaldi)"

. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 3 ]]; then echo -e "$help_message" >&2; exit 1; fi
data=$1 lang=$2 dir=$3
conf_values=$(python3 -m pyscripts.asr.decode_conf shell --part scoring "$decode_conf" min_lmwt="$min_lmwt" \
  max_lmwt="$max_lmwt" word_ins_penalty="$word_ins_penalty") || exit 1
eval "$conf_values"   # min_lmwt max_lmwt word_ins_penalty, checked
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
rm -f "$dir"/wer_* "$sc"/hyp_*.trn* "$sc/best_wer" "$sc/best_setting" "$sc/result.json" "$sc/per_by_utt" \
  "$sc/intervals.json"

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
  lmwt=$(python3 -m pyscripts.asr.decode_conf lmwt "$decode_conf" "$dir/acwt") || exit 1
  for f in "$dir"/hyp.*; do if [[ $f =~ /hyp\.[0-9]+$ ]]; then cat "$f"; fi; done | sort > "$sc/${lmwt}_0.0.txt"
  log "$dir has no lattices: scoring its best paths only (acoustic scale 1/$lmwt)"
elif ! compgen -G "$sc/*.tra" >/dev/null && ! compgen -G "$sc/*.txt" >/dev/null; then
  # (otherwise: hypotheses already in scoring/, NAME.tra or NAME.txt)
  die "$dir has no lat.*.gz, hyp.* or scoring/*.{tra,txt}: decode first"
fi

tune_opt=()
[[ -n $tune_dir ]] && tune_opt=(--tune-dir "$tune_dir")
best=$(python3 -m pyscripts.asr.scoring score-dir --phone-map "$phone_map" --ref "$data/text" \
  --words "$lang/words.txt" "${tune_opt[@]}" "$dir" 2> "$sc/log/score.log") || {
  cat "$sc/log/score.log" >&2; exit 1; }

if command -v sclite >/dev/null; then
  sclite -r "$sc/ref.trn" trn -h "$sc/hyp_$best.trn" trn -i rm -o sum pralign dtl > "$sc/log/sclite.log" 2>&1 || {
    cat "$sc/log/sclite.log" >&2; exit 1; }
else
  python3 -m pyscripts.asr.scoring reports --ref-trn "$sc/ref.trn" --hyp-trn "$sc/hyp_$best.trn" \
    > "$sc/log/reports.log" 2>&1 || { cat "$sc/log/reports.log" >&2; exit 1; }
fi
grep "Sum/Avg" "$sc/hyp_$best.trn.sys" || true
cat "$sc/best_wer"
python3 -m pyscripts.intervals asr "$dir" 2>> "$sc/log/score.log" || { cat "$sc/log/score.log" >&2; exit 1; }
