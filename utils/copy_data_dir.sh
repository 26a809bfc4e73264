#!/usr/bin/env bash
# Copies a data dir's tables to a new data dir without its features (feats.scp, cmvn.scp,
# utt2num_frames, their conf/, splits), so that other features can be computed for the same utterances.
set -euo pipefail
help_message="Usage: $0 SRC_DATA_DIR DEST_DATA_DIR
  e.g. $0 data/timit/train data/timit_mfcc/train"
. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 2 ]]; then echo -e "$help_message" >&2; exit 1; fi
src=$1 dst=$2
[[ -f $src/utt2spk ]] || die "$src/utt2spk not found: not a data dir"
mkdir -p "$dst"
for f in "$src"/*; do
  name=$(basename "$f")
  case $name in feats.scp|cmvn.scp|cmvn_global.stats|utt2num_frames|split*) continue ;; esac
  [[ -f $f ]] && cp "$f" "$dst/"
done
rm -f "$dst/feats.scp" "$dst/cmvn.scp" "$dst/utt2num_frames" "$dst"/conf/{fbank,mfcc}.conf
