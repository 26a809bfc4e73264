#!/usr/bin/env bash
# Forced-alignment accuracy on the demo corpus, whose synthesiser segmentation is known: phone CTM
# of ALI_DIR (ali-to-phones) against DATA_DIR/ref_phones.ctm; share of boundaries within --collar.
# Writes ALI_DIR/phones.ctm and ALI_DIR/boundary_accuracy.
set -euo pipefail
collar=0.02
frame_shift=0.01
help_message="Usage: $0 [options] ALI_DIR DATA_DIR
  e.g. $0 exp/mono_ali data/timit/train
Options:
  --collar SECONDS        a boundary within this of the reference is right (default $collar)
  --frame-shift SECONDS   of the alignment's frames (default $frame_shift)"
. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 2 ]]; then echo -e "$help_message" >&2; exit 1; fi
alidir=$1; data=$2
[[ -f $data/ref_phones.ctm ]] || die "$data/ref_phones.ctm not found (only the demo corpus has one)"
python3 -m pyscripts.asr.alignments to-ctm --frame-shift "$frame_shift" "$alidir" "$alidir/phones.ctm"
python3 -m pyscripts.asr.ali_boundaries --collar "$collar" "$data/ref_phones.ctm" "$alidir/phones.ctm" \
  > "$alidir/boundary_accuracy"
while IFS= read -r line; do log "$alidir: $line"; done < "$alidir/boundary_accuracy"
