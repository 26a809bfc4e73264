#!/usr/bin/env bash
# One training of a transfer sweep: line K of a jobs file written by pyscripts/transfer/plan.py, run
# with steps/train_convnet.sh (--init-from/--freeze-layers/--reinit-unfrozen as the plan says). Meant
# to be the command of a job array: $cuda_cmd JOB=1:N LOG local/transfer_train_job.sh JOBS_FILE JOB.
# A finished job (EXP_DIR/final.pt) is skipped by steps/train_convnet.sh.
set -euo pipefail

train_config=conf/convnet_asr.yaml
overrides=
num_threads=0
device=auto

help_message="Usage: $0 [options] JOBS_FILE K
Options:
  --train-config FILE    training YAML of the target task (default: $train_config)
  --overrides 'K=V ...'  config overrides
  --num-threads N        CPU threads per training (default: torch's choice)
  --device DEV           auto|cpu|cuda (default: $device)"

. ./path.sh
. utils/parse_options.sh

if [[ $# -ne 2 ]]; then
  echo -e "$help_message" >&2
  exit 1
fi
jobs_file=$1 k=$2
[[ -f $jobs_file ]] || { echo "$0: no such file $jobs_file" >&2; exit 1; }
line=$(sed -n "${k}p" "$jobs_file")
[[ -n $line ]] || { echo "$0: $jobs_file has no line $k" >&2; exit 1; }
# Field order: pyscripts.transfer.plan.JOB_FIELDS.
IFS=$'\t' read -r direction row fold exp_dir init_from freeze_layers reinit_unfrozen \
  train_data dev_data train_targets dev_targets <<< "$line"

init_opts=()
if [[ $init_from != - ]]; then
  [[ -f $init_from ]] || { echo "$0: source model $init_from of $exp_dir does not exist; train the" \
                                "baselines first (local/run_transfer.sh stage 1)" >&2; exit 1; }
  init_opts=(--init-from "$init_from" --freeze-layers "$freeze_layers" --reinit-unfrozen "$reinit_unfrozen")
fi
where=$row; [[ $fold != - ]] && where+=" $fold"
echo "$0: $direction, $where -> $exp_dir"
steps/train_convnet.sh --cmd run.pl --train-config "$train_config" --overrides "$overrides" \
  --num-threads "$num_threads" --device "$device" "${init_opts[@]}" \
  "$train_data" "$dev_data" "$train_targets" "$dev_targets" "$exp_dir"
