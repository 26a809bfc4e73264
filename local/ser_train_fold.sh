#!/usr/bin/env bash
# Trains the SER ConvNet of fold K with the shared training stage: steps/train_convnet.sh on
# FOLDS_DATA_DIR/foldK/{train,valid} and FOLDS_TARGETS_DIR/foldK/{train,valid} into EXP_DIR/foldK.
# The fold number is its own argument so that a job runner's JOB=1:N fills it in.
set -euo pipefail

help_message="Usage: $0 [options] FOLDS_DATA_DIR FOLDS_TARGETS_DIR EXP_DIR K
  e.g. $0 --train-config conf/convnet_ser.yaml data/iemocap/folds exp/ser/targets exp/ser 3
Options: those of steps/train_convnet.sh, passed on to it."

. ./path.sh
# (no utils/parse_options.sh: the options are steps/train_convnet.sh's)
if [[ $# -lt 4 || $1 == --help ]]; then echo -e "$help_message" >&2; exit 1; fi
opts=("${@:1:$#-4}")
folds=${*:$#-3:1}
targets=${*:$#-2:1}
exp=${*:$#-1:1}
k=${*:$#:1}
[[ $k =~ ^[0-9]+$ ]] || die "fold number must be an integer, got '$k'"
[[ -d $folds/fold$k ]] || die "no fold $k in $folds (see $folds/plan)"

exec steps/train_convnet.sh "${opts[@]}" "$folds/fold$k/train" "$folds/fold$k/valid" \
  "$targets/fold$k/train" "$targets/fold$k/valid" "$exp/fold$k"
