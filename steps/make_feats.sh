#!/usr/bin/env bash
# Computes fbank or MFCC features of a data dir in --nj parallel jobs, writing
# FEAT_DIR/raw_<type>_<name>.JOB.{ark,scp}, DATA_DIR/feats.scp and DATA_DIR/utt2num_frames, and a copy of
# the conf in DATA_DIR/conf/<type>.conf (a model trained on the features records their options from it).
# The features count as made only when every entry of feats.scp lies whole in its ark.
# Embedded backend: kaldi-native-fbank (pyscripts.kaldi.features); with KALDI_ROOT: compute-<type>-feats,
# after extract-segments when the data dir has a segments file (utterances cut from recordings).
set -euo pipefail
nj=4
cmd=${train_cmd:-run.pl}
feat_type=fbank
config=
help_message="Usage: $0 [options] DATA_DIR [LOG_DIR [FEAT_DIR]]
  e.g. $0 --nj 4 --feat-type mfcc data/timit_mfcc/train exp/make_mfcc/train mfcc
Options:
  --nj N                    parallel jobs (default $nj)
  --cmd CMD                 job runner (default \$train_cmd)
  --feat-type fbank|mfcc    (default $feat_type)
  --config FILE             feature options (default conf/FEAT_TYPE.conf)"
. ./path.sh
. utils/parse_options.sh
if [[ $# -lt 1 || $# -gt 3 ]]; then echo -e "$help_message" >&2; exit 1; fi
data=$1
name=$(basename "$data")
logdir=${2:-exp/make_$feat_type/$name}
featdir=${3:-$feat_type}
config=${config:-conf/$feat_type.conf}
case $feat_type in fbank|mfcc) ;; *) die "--feat-type must be fbank or mfcc" ;; esac
[[ -f $config ]] || die "config $config not found"

utils/validate_data_dir.sh "$data" >/dev/null
# The old features go first: a failed run must not leave their feats.scp pointing into rewritten arks.
rm -f "$data/feats.scp" "$data/utt2num_frames" "$data/cmvn.scp" "$data"/conf/{fbank,mfcc}.conf
mkdir -p "$logdir" "$featdir"
featdir=$(cd "$featdir" && pwd)
num_utts=$(wc -l < "$data/utt2spk")
(( nj > num_utts )) && nj=$num_utts
python3 -m pyscripts.kaldi.datadir split --per-utt "$data" "$nj"
split=$data/split$nj

log "computing $feat_type for $data ($num_utts utterances, $nj jobs; log in $logdir)"
if [[ -n ${KALDI_ROOT:-} ]]; then
  wavs="scp,p:$split/JOB/wav.scp"
  [[ -f $data/segments ]] && wavs="ark:extract-segments scp,p:$split/JOB/wav.scp $split/JOB/segments ark:- |"
  $cmd JOB=1:$nj "$logdir/make_${feat_type}_$name.JOB.log" \
    compute-$feat_type-feats --verbose=1 --config="$config" "$wavs" ark:- \| \
    copy-feats --write-num-frames="ark,t:$split/JOB/utt2num_frames" ark:- \
      "ark,scp:$featdir/raw_${feat_type}_$name.JOB.ark,$featdir/raw_${feat_type}_$name.JOB.scp"
else
  $cmd JOB=1:$nj "$logdir/make_${feat_type}_$name.JOB.log" \
    python3 -m pyscripts.kaldi.features compute --kind "$feat_type" --config "$config" \
      --num-frames-out "$split/JOB/utt2num_frames" "$split/JOB" \
      "$featdir/raw_${feat_type}_$name.JOB.ark" "$featdir/raw_${feat_type}_$name.JOB.scp"
fi

for j in $(seq "$nj"); do cat "$featdir/raw_${feat_type}_$name.$j.scp"; done | sort -k1,1 > "$data/feats.scp"
for j in $(seq "$nj"); do cat "$split/$j/utt2num_frames"; done | sort -k1,1 > "$data/utt2num_frames"
num_feats=$(wc -l < "$data/feats.scp")
if [[ $num_feats -ne $num_utts ]]; then
  die "only $num_feats of $num_utts utterances got features; see $logdir"
fi
utils/validate_data_dir.sh --need-feats "$data" >/dev/null   # every ark whole, frame counts as written
mkdir -p "$data/conf"
cp "$config" "$data/conf/$feat_type.conf"
log "$feat_type done for $data: $num_feats utterances, $(awk '{n+=$2} END{print n}' "$data/utt2num_frames") frames"
