#!/usr/bin/env bash
# CMVN statistics of a data dir's features, as Kaldi's compute-cmvn-stats writes them.
#   default : per-speaker stats, CMVN_DIR/cmvn_<name>.{ark,scp} and DATA_DIR/cmvn.scp
#   --global: one speaker-independent stats matrix over all utterances, DATA_DIR/cmvn_global.stats
set -euo pipefail
global=false
help_message="Usage: $0 [options] DATA_DIR [LOG_DIR [CMVN_DIR]]
  e.g. $0 --global true data/timit/train exp/make_fbank/train
Options:
  --global true|false   one speaker-independent stats matrix instead of per-speaker stats (default $global)"
. ./path.sh
. utils/parse_options.sh
if [[ $# -lt 1 || $# -gt 3 ]]; then echo -e "$help_message" >&2; exit 1; fi
data=$1
name=$(basename "$data")
logdir=${2:-exp/make_cmvn/$name}
cmvndir=${3:-$(dirname "$(awk '{print $2; exit}' "$data/feats.scp")")}
mkdir -p "$logdir" "$cmvndir"
utils/validate_data_dir.sh --need-feats "$data" >/dev/null
if [[ $global == true ]]; then
  out=$data/cmvn_global.stats
  if [[ -n ${KALDI_ROOT:-} ]]; then
    compute-cmvn-stats "scp:$data/feats.scp" "$out" 2> "$logdir/cmvn_global.log"
  else
    python3 -m pyscripts.kaldi.features cmvn "$data" "$out" 2> "$logdir/cmvn_global.log"
  fi
  log "global CMVN stats of $data in $out"
else
  out=$(cd "$cmvndir" && pwd)/cmvn_$name
  if [[ -n ${KALDI_ROOT:-} ]]; then
    compute-cmvn-stats --spk2utt="ark:$data/spk2utt" "scp:$data/feats.scp" "ark,scp:$out.ark,$out.scp" \
      2> "$logdir/cmvn_$name.log"
  else
    python3 -m pyscripts.kaldi.features cmvn --per-speaker "$data" "$out" 2> "$logdir/cmvn_$name.log"
  fi
  cp "$out.scp" "$data/cmvn.scp"
  log "per-speaker CMVN stats of $data in $data/cmvn.scp"
fi
