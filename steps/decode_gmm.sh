#!/usr/bin/env bash
# Decoding with a GMM-HMM and its HCLG graph into lattices (DECODE_DIR/lat.JOB.gz) and best paths
# (hyp.JOB), then local/score.sh: the LM weight x insertion penalty sweep and PER on the 39-phone set
# (wer_LMWT_WIP, scoring/best_wer), exactly as steps/decode_hybrid.sh scores the ConvNet.
# The model is DECODE_DIR/../final.mdl (Kaldi's steps/decode.sh layout).
# Embedded backend: the GMM's pdf log-likelihoods through the mapped lattice decoder of
# pyscripts/asr/decode.py (pyscripts/gmm/decode.py); with KALDI_ROOT: gmm-latgen-faster.
# shellcheck disable=SC2154  # the conf_* variables: set by utils/read_conf.sh with printf -v
set -euo pipefail
nj=4
cmd=${decode_cmd:-run.pl}
decode_conf=conf/decode.conf  # decoding and scoring settings (pyscripts/asr/decode_conf.py); options here win
beam=                   # the search: empty = the decode conf's (beam, max-active, gmm-lattice-beam)
max_active=
lattice_beam=
acwt=                   # acoustic scale of the search and the lattices (empty: the decode conf's gmm-acwt)
scoring_opts=           # options of local/score.sh, e.g. "--min-lmwt 1 --max-lmwt 10"
conf=conf/mono.conf
tune_dir=
help_message="Usage: $0 [options] GRAPH_DIR DATA_DIR DECODE_DIR
  e.g. $0 --nj 4 exp/mono/graph data/timit_mfcc/dev exp/mono/decode_dev
Options:
  --nj N                parallel jobs (default $nj; data split by speaker)
  --cmd CMD             job runner (default \$decode_cmd)
  --decode-conf FILE    decoding and scoring settings (default $decode_conf; the options below win)
  --beam B --max-active N --lattice-beam B   decoder settings (default: the decode conf's; max-active: Kaldi only)
  --acwt S              acoustic scale of the search and the lattices (default: the decode conf's --gmm-acwt)
  --scoring-opts 'OPTS' options of local/score.sh (LM weights, penalties, phone map)
  --conf FILE           the training conf, for the feature options (default $conf)
  --tune-dir DIR        dev decode dir: report this set at the setting best on dev"
. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 3 ]]; then echo -e "$help_message" >&2; exit 1; fi
graphdir=$1; data=$2; dir=$3
conf_values=$(python3 -m pyscripts.asr.decode_conf shell --part gmm "$decode_conf" acwt="$acwt" beam="$beam" \
  lattice_beam="$lattice_beam" max_active="$max_active") || exit 1
eval "$conf_values"   # acwt beam lattice_beam max_active, checked
srcdir=$(dirname "$dir")
for f in "$graphdir/HCLG.fst" "$graphdir/words.txt" "$data/feats.scp" "$data/cmvn.scp" "$data/text" \
         "$srcdir/final.mdl" "$conf"; do
  [[ -f $f ]] || die "$f not found"
done
. utils/read_conf.sh "$conf"
mkdir -p "$dir/log" "$dir/scoring"
num_spk=$(wc -l < "$data/spk2utt")
(( nj > num_spk )) && nj=$num_spk
utils/split_data.sh "$data" "$nj"
sdata=$data/split$nj
echo "$nj" > "$dir/num_jobs"
rm -f "$dir"/lat.*.gz "$dir"/hyp.* "$dir"/wer_* "$dir"/timing/decode.*

start_ms=$(( $(date +%s%N) / 1000000 ))
log "decoding $data with $srcdir/final.mdl and $graphdir ($nj jobs; logs in $dir/log)"
if [[ -z ${KALDI_ROOT:-} ]]; then
  $cmd JOB=1:$nj "$dir/log/decode.JOB.log" python3 -m pyscripts.gmm.decode --acoustic-scale "$acwt" \
    --beam "$beam" --lattice-beam "$lattice_beam" --delta-order "$conf_delta_order" \
    "$graphdir" "$srcdir" "$sdata/JOB" "$dir" JOB
else
  feats="ark,s,cs:apply-cmvn $(cat "$srcdir/cmvn_opts" 2>/dev/null || echo --norm-vars=false) --utt2spk=ark:$sdata/JOB/utt2spk scp:$sdata/JOB/cmvn.scp scp:$sdata/JOB/feats.scp ark:- | add-deltas --delta-order=$conf_delta_order ark:- ark:- |"
  $cmd JOB=1:$nj "$dir/log/decode.JOB.log" gmm-latgen-faster --max-active="$max_active" --beam="$beam" \
    --lattice-beam="$lattice_beam" --acoustic-scale="$acwt" --allow-partial=true --determinize-lattice=false \
    --word-symbol-table="$graphdir/words.txt" "$srcdir/final.mdl" "$graphdir/HCLG.fst" "$feats" \
    "ark:|gzip -c > $dir/lat.JOB.gz"
fi
echo "$acwt" > "$dir/acwt"
elapsed_ms=$(( $(date +%s%N) / 1000000 - start_ms ))
frames=$(awk '{n+=$2} END{print n+0}' "$data/utt2num_frames" 2>/dev/null || echo 0)
if (( frames > 0 )); then
  log "$(awk -v f="$frames" -v ms="$elapsed_ms" 'BEGIN { printf("decoded %.1f s of audio in %.1f s wall clock", f / 100, ms / 1000) }')"
fi
if [[ -n $tune_dir ]]; then scoring_opts+=" --tune-dir $tune_dir"; fi
# shellcheck disable=SC2086  # scoring_opts: several options, split on purpose
local/score.sh --cmd "$cmd" --decode-conf "$decode_conf" $scoring_opts "$data" "$graphdir" "$dir"
