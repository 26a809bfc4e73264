#!/usr/bin/env bash
# Cross-validation folds for SER with features and frame targets: the fold plan of FOLD_CONF
# (pyscripts/ser/folds.py: the protocol's test unit, validation rule and utterance selection; the
# paper's: each non-validation speaker is the test set of one fold, the validation speakers are every
# fold's valid set, the others train it) applied to DATA_DIR/all, which now has feats.scp, giving
# DATA_DIR/folds/fold<k>/{train,valid,test}, and the matching subsets of the frame targets,
# TARGETS_DIR/fold<k>/{train,valid,test}/targets.scp (entries of TARGETS_DIR/all/targets.scp).
# Scripted sentences a fold's test speakers share with its training speakers are counted in
# DATA_DIR/folds/leakage, with a warning.
set -euo pipefail

fold_conf=   # default: pyscripts/ser/folds.py's (the paper's protocol, conf/iemocap_folds.conf)

help_message="Usage: $0 [options] DATA_DIR TARGETS_DIR
  e.g. $0 data/iemocap exp/ser/targets
DATA_DIR/all needs feats.scp (steps/make_fbank.sh); TARGETS_DIR/all the frame targets
(local/ser_frame_labels.sh).
Options:
  --fold-conf FILE   the fold plan's protocol, e.g. conf/iemocap_folds_loso10.conf (default: the paper's, pyscripts/ser/folds.py)"

. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 2 ]]; then echo -e "$help_message" >&2; exit 1; fi
data=$1
targets=$2

for f in "$data/all/feats.scp" "$targets/all/targets.scp" ${fold_conf:+"$fold_conf"}; do
  [[ -f $f ]] || die "no such file $f"
done
fold_opt=(); [[ -n $fold_conf ]] && fold_opt=(--fold-conf "$fold_conf")

# Re-made from the full data dir so that every fold's subsets carry feats.scp and utt2num_frames.
python3 -m pyscripts.ser.folds "${fold_opt[@]}" "$data/all" "$data/folds" 2> "$targets/all/log/folds.log" \
  || { cat "$targets/all/log/folds.log" >&2; exit 1; }
python3 -m pyscripts.ser.labels subset-folds "$targets/all" "$data/folds" "$targets" 2>> "$targets/all/log/folds.log" \
  || { cat "$targets/all/log/folds.log" >&2; exit 1; }
# Targets of folds that an earlier plan (another protocol) had and this one has not: stale, removed.
for dir in "$targets"/fold*; do
  [[ -d $dir ]] || continue
  fold=${dir##*/}
  grep -q "^$fold " "$data/folds/plan" || rm -r "$dir"
done
log "$(wc -l < "$data/folds/plan") folds of ${fold_conf:-the default fold conf} in $data/folds with targets in $targets:"
sed 's/^/  /' "$data/folds/plan"
leaky=$(grep -vc ' shared_sentences=0 ' "$data/folds/leakage" || true)
if (( leaky > 0 )); then
  error "warning: in $leaky folds the test speakers speak scripted sentences that the training speakers" \
        "also spoke (IEMOCAP's sessions share their scripts); counts in $data/folds/leakage:"
  sed 's/^/  /' "$data/folds/leakage" >&2
fi
