#!/usr/bin/env bash
# Per-frame training targets from ANY Kaldi alignment dir (ali-to-pdf): TARGETS_DIR/targets.{ark,scp}
# (int32 vector of pdf ids per utterance), num_targets (pdfs of the alignment model: 144 for the
# monophones, ~2000 for a Kaldi tri3) and pdf_counts. The transition model is read from
# ALI_DIR/final.mdl, Kaldi binary or text. Every aligned utterance must have exactly as many frames
# as in DATA_DIR (utt2num_frames or feats.scp: the features the network trains on); a mismatch is an
# error naming the utterance. Pure format conversion, the same with or without KALDI_ROOT.
set -euo pipefail
help_message="Usage: $0 ALI_DIR DATA_DIR TARGETS_DIR
  e.g. $0 exp/mono_ali data/timit/train exp/mono_ali/targets_train"
. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 3 ]]; then echo -e "$help_message" >&2; exit 1; fi
alidir=$1; data=$2; dir=$3
mkdir -p "$dir/log"
python3 -m pyscripts.asr.alignments to-targets "$alidir" "$data" "$dir" 2> "$dir/log/ali_to_targets.log" || {
  cat "$dir/log/ali_to_targets.log" >&2; exit 1; }
log "$dir: $(wc -l < "$dir/targets.scp") utterances, $(cat "$dir/num_targets") targets"
grep -h "get no targets" "$dir/log/ali_to_targets.log" >&2 || true   # dropped utterances: on the console too
