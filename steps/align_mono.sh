#!/usr/bin/env bash
# Forced alignment with a monophone GMM-HMM (Kaldi's steps/align_si.sh) into a Kaldi alignment dir:
# ALI_DIR/{ali.JOB.gz,final.mdl,tree,num_jobs,phones.txt,cmvn_opts}. ali.JOB.gz are gzipped binary
# archives of transition-id vectors, as Kaldi writes them. Beams and scales from --conf.
# Embedded backend: pyscripts.gmm.align; with KALDI_ROOT: compile-train-graphs | gmm-align-compiled.
# shellcheck disable=SC2154  # the conf_* variables: set by utils/read_conf.sh with printf -v
set -euo pipefail
nj=4
cmd=${train_cmd:-run.pl}
conf=conf/mono.conf
beam=        # override the conf's --beam and --retry-beam, as Kaldi's align_si.sh options do
retry_beam=
help_message="Usage: $0 [options] DATA_DIR LANG_DIR SRC_DIR ALI_DIR
  e.g. $0 --nj 4 data/timit_mfcc/train data/lang exp/mono exp/mono_ali
Options:
  --nj N          parallel jobs (default $nj; data split by speaker)
  --cmd CMD       job runner (default \$train_cmd)
  --conf FILE     beams and scales (default $conf)
  --beam B, --retry-beam R   override the conf's alignment beams"
. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 4 ]]; then echo -e "$help_message" >&2; exit 1; fi
data=$1; lang=$2; srcdir=$3; dir=$4
for f in "$data/feats.scp" "$data/cmvn.scp" "$data/text" "$lang/L.fst" "$srcdir/final.mdl" "$srcdir/tree" "$conf"; do
  [[ -f $f ]] || die "$f not found"
done
mkdir -p "$dir/log"
num_spk=$(wc -l < "$data/spk2utt")
(( nj > num_spk )) && nj=$num_spk
utils/split_data.sh "$data" "$nj"
sdata=$data/split$nj
rm -f "$dir"/ali.*.gz
cp "$srcdir/final.mdl" "$srcdir/tree" "$lang/phones.txt" "$dir/"
cp "$srcdir/cmvn_opts" "$dir/" 2>/dev/null || echo "--norm-means=true --norm-vars=false" > "$dir/cmvn_opts"
echo "$nj" > "$dir/num_jobs"

start_ms=$(( $(date +%s%N) / 1000000 ))
log "aligning $data with $srcdir ($nj jobs; logs in $dir/log)"
if [[ -z ${KALDI_ROOT:-} ]]; then
  $cmd JOB=1:$nj "$dir/log/align.JOB.log" python3 -m pyscripts.gmm.align --config "$conf" \
    ${beam:+--beam $beam} ${retry_beam:+--retry-beam $retry_beam} \
    "$srcdir" "$lang" "$sdata/JOB" "$dir/ali.JOB.gz"
else
  . utils/read_conf.sh "$conf"
  conf_beam=${beam:-$conf_beam}; conf_retry_beam=${retry_beam:-$conf_retry_beam}
  feats="ark,s,cs:apply-cmvn $(cat "$dir/cmvn_opts") --utt2spk=ark:$sdata/JOB/utt2spk scp:$sdata/JOB/cmvn.scp scp:$sdata/JOB/feats.scp ark:- | add-deltas --delta-order=$conf_delta_order ark:- ark:- |"
  mdl="gmm-boost-silence --boost=$conf_boost_silence $(cat "$lang/phones/optional_silence.csl") $dir/final.mdl - |"
  $cmd JOB=1:$nj "$dir/log/align.JOB.log" compile-train-graphs \
    --read-disambig-syms="$lang/phones/disambig.int" "$dir/tree" "$dir/final.mdl" "$lang/L.fst" \
    "ark:utils/sym2int.sh $lang/words.txt $sdata/JOB/text|" \
    ark:- \| gmm-align-compiled --transition-scale="$conf_transition_scale" \
    --acoustic-scale="$conf_acoustic_scale" --self-loop-scale="$conf_self_loop_scale" \
    --beam="$conf_beam" --retry-beam="$conf_retry_beam" --careful="$conf_careful" "$mdl" ark:- \
    "$feats" "ark:|gzip -c > $dir/ali.JOB.gz"
fi
elapsed_ms=$(( $(date +%s%N) / 1000000 - start_ms ))
failed=$(python3 -m pyscripts.asr.alignments unaligned "$data" "$dir")   # also lists them in $dir/unaligned
frames=$(awk '{n+=$2} END{print n+0}' "$data/utt2num_frames" 2>/dev/null || echo 0)
log "$(awk -v f="$frames" -v ms="$elapsed_ms" -v nj="$nj" -v failed="$failed" 'BEGIN{
  printf("%d utterances failed to align; ", failed)
  if (f > 0) printf("%.3f h of audio in %.1f s wall clock with %d jobs (%.0f s per hour of audio)",
                    f / 360000, ms / 1000, nj, (ms / 1000) / (f / 360000))
  else printf("aligned in %.1f s", ms / 1000) }')"
