#!/usr/bin/env bash
# Cross-validation folds for SER with features and frame targets: the fold plan of FOLD_CONF
# (pyscripts/ser/folds.py: each non-validation speaker is the test set of one fold, the validation speakers
# are every fold's valid set, the others train it) applied to DATA_DIR/all, which now has feats.scp,
# giving DATA_DIR/folds/fold<k>/{train,valid,test}, and the matching subsets of the frame targets,
# TARGETS_DIR/fold<k>/{train,valid,test}/targets.scp (entries of TARGETS_DIR/all/targets.scp).
set -euo pipefail

fold_conf=conf/iemocap_folds.conf

help_message="Usage: $0 [options] DATA_DIR TARGETS_DIR
  e.g. $0 data/iemocap exp/ser/targets
DATA_DIR/all needs feats.scp (steps/make_fbank.sh); TARGETS_DIR/all the frame targets
(local/ser_frame_labels.sh).
Options:
  --fold-conf FILE   names the validation speakers (default $fold_conf)"

. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 2 ]]; then echo -e "$help_message" >&2; exit 1; fi
data=$1
targets=$2

for f in "$data/all/feats.scp" "$targets/all/targets.scp" "$fold_conf"; do
  [[ -f $f ]] || die "no such file $f"
done

# Re-made from the full data dir so that every fold's subsets carry feats.scp and utt2num_frames.
python3 -m pyscripts.ser.folds --fold-conf "$fold_conf" "$data/all" "$data/folds" 2> "$targets/all/log/folds.log" \
  || { cat "$targets/all/log/folds.log" >&2; exit 1; }
python3 -m pyscripts.ser.labels subset-folds "$targets/all" "$data/folds" "$targets" 2>> "$targets/all/log/folds.log" \
  || { cat "$targets/all/log/folds.log" >&2; exit 1; }
log "$(wc -l < "$data/folds/plan") folds in $data/folds with targets in $targets:"
sed 's/^/  /' "$data/folds/plan"
