#!/usr/bin/env bash
# Decoding with a GMM-HMM and its HCLG graph, then phone error rate scoring on the 39-phone set.
# The model is DECODE_DIR/../final.mdl (Kaldi's steps/decode.sh layout). For each LM weight in
# --lmwt the best path is written as Kaldi text to DECODE_DIR/scoring/LMWT.txt, scored into
# DECODE_DIR/wer_LMWT, scoring/{ref.trn,hyp_LMWT.trn} and scoring/best_wer.
# Embedded backend: kaldi-hmm-gmm's faster decoder, one best-path decode per LM weight (acoustic
# scale 1/LMWT); with KALDI_ROOT: gmm-latgen-faster, then lattice-scale | lattice-best-path per weight.
set -euo pipefail
nj=4
cmd=${decode_cmd:-run.pl}
beam=13.0
max_active=7000
lattice_beam=6.0
acwt=0.083333
lmwt=1:10
phone_map=conf/phones.60-48-39.map
conf=conf/mono.conf
tune_dir=
help_message="Usage: $0 [options] GRAPH_DIR DATA_DIR DECODE_DIR
  e.g. $0 --nj 4 exp/mono/graph data/timit_mfcc/dev exp/mono/decode_dev
Options:
  --nj N                parallel jobs (default $nj; data split by speaker)
  --cmd CMD             job runner (default \$decode_cmd)
  --beam B --max-active N   decoder settings (Kaldi's defaults)
  --lattice-beam B      lattice beam (Kaldi backend)
  --acwt S              acoustic scale of the lattices (Kaldi backend)
  --lmwt MIN:MAX        LM weights to score (default $lmwt)
  --phone-map FILE      60-48-39 map for scoring (default $phone_map)
  --conf FILE           the training conf, for the feature options (default $conf)
  --tune-dir DIR        dev decode dir: report this set at the LM weight best on dev"
. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 3 ]]; then echo -e "$help_message" >&2; exit 1; fi
graphdir=$1; data=$2; dir=$3
srcdir=$(dirname "$dir")
for f in "$graphdir/HCLG.fst" "$graphdir/words.txt" "$data/feats.scp" "$data/cmvn.scp" "$data/text" \
         "$srcdir/final.mdl" "$phone_map" "$conf"; do
  [[ -f $f ]] || { echo "$0: $f not found" >&2; exit 1; }
done
. utils/read_conf.sh "$conf"
mkdir -p "$dir/log" "$dir/scoring"
num_spk=$(wc -l < "$data/spk2utt")
(( nj > num_spk )) && nj=$num_spk
utils/split_data.sh "$data" "$nj"
sdata=$data/split$nj
echo "$nj" > "$dir/num_jobs"
lo=${lmwt%:*}; hi=${lmwt#*:}
rm -f "$dir"/scoring/*.txt "$dir"/wer_*

start_ms=$(( $(date +%s%N) / 1000000 ))
echo "$0: decoding $data with $srcdir/final.mdl and $graphdir ($nj jobs; logs in $dir/log)"
if [[ -z ${KALDI_ROOT:-} ]]; then
  $cmd JOB=1:$nj "$dir/log/decode.JOB.log" python3 -m pyscripts.gmm.decode --job JOB \
    --beam "$beam" --max-active "$max_active" --lmwt "$lo:$hi" \
    --delta-order "$conf_delta_order" "$graphdir" "$srcdir" "$sdata/JOB" "$dir/scoring"
  for w in $(seq "$lo" "$hi"); do
    for j in $(seq "$nj"); do cat "$dir/scoring/$w.$j.txt"; done | sort -k1,1 > "$dir/scoring/$w.txt"
    rm -f "$dir"/scoring/"$w".[0-9]*.txt
  done
else
  feats="ark,s,cs:apply-cmvn $(cat "$srcdir/cmvn_opts" 2>/dev/null || echo --norm-vars=false) --utt2spk=ark:$sdata/JOB/utt2spk scp:$sdata/JOB/cmvn.scp scp:$sdata/JOB/feats.scp ark:- | add-deltas --delta-order=$conf_delta_order ark:- ark:- |"
  $cmd JOB=1:$nj "$dir/log/decode.JOB.log" gmm-latgen-faster --max-active="$max_active" --beam="$beam" \
    --lattice-beam="$lattice_beam" --acoustic-scale="$acwt" --allow-partial=true \
    --word-symbol-table="$graphdir/words.txt" "$srcdir/final.mdl" "$graphdir/HCLG.fst" "$feats" \
    "ark:|gzip -c > $dir/lat.JOB.gz"
  for w in $(seq "$lo" "$hi"); do
    lattice-scale --inv-acoustic-scale="$w" "ark:gunzip -c $dir/lat.*.gz|" ark:- 2> "$dir/log/best_path.$w.log" | \
      lattice-best-path --word-symbol-table="$graphdir/words.txt" ark:- ark,t:- 2>> "$dir/log/best_path.$w.log" | \
      awk 'NR==FNR{w[$2]=$1; next} {printf "%s", $1; for (i = 2; i <= NF; i++) printf " %s", w[$i]; print ""}' \
        "$graphdir/words.txt" - | sort -k1,1 > "$dir/scoring/$w.txt"
  done
fi
elapsed_ms=$(( $(date +%s%N) / 1000000 - start_ms ))
frames=$(awk '{n+=$2} END{print n+0}' "$data/utt2num_frames" 2>/dev/null || echo 0)
awk -v f="$frames" -v ms="$elapsed_ms" -v me="$0" -v n=$((hi - lo + 1)) 'BEGIN{ if (f > 0)
  printf("%s: decoded %.1f s of audio in %.1f s wall clock (%d LM weights)\n", me, f / 100, ms / 1000, n) }'
python3 -m pyscripts.scoring --phone-map "$phone_map" "$data/text" "$dir" 2> "$dir/log/score.log" || {
  cat "$dir/log/score.log" >&2; exit 1; }
if [[ -n $tune_dir ]]; then
  python3 -m pyscripts.scoring best --tune-dir "$tune_dir" "$dir" > /dev/null 2>> "$dir/log/score.log" || {
    cat "$dir/log/score.log" >&2; exit 1; }
fi
echo "$0: $(head -1 "$dir/scoring/best_wer")"
