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
  e.g. $0 --train-config conf/convnet_ser.yaml exp/transfer/asr2ser/jobs.transfer 3
Options:
  --train-config FILE    training YAML of the target task (default: $train_config)
  --overrides 'K=V ...'  config overrides
  --num-threads N        CPU threads per training (default: torch's choice)
  --device DEV           auto|cpu|cuda (default: $device)"

. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 2 ]]; then echo -e "$help_message" >&2; exit 1; fi
. local/transfer_job.sh
read_job "$1" "$2"

init_opts=()
if [[ ${job[init_from]} != - ]]; then
  [[ -f ${job[init_from]} ]] || die "source model ${job[init_from]} of ${job[exp_dir]} does not exist; train the" \
                                    "baselines first (local/run_transfer.sh stage 1)"
  init_opts=(--init-from "${job[init_from]}" --freeze-layers "${job[freeze_layers]}"
             --reinit-unfrozen "${job[reinit_unfrozen]}")
fi
where=${job[row]}; [[ ${job[fold]} != - ]] && where+=" ${job[fold]}"
(( job[seed] > 1 )) && where+=" seed ${job[seed]}"
log "${job[direction]}, $where -> ${job[exp_dir]}"
steps/train_convnet.sh --cmd run.pl --train-config "$train_config" --overrides "$overrides" \
  --num-threads "$num_threads" --device "$device" --seed-offset $((job[seed] - 1)) "${init_opts[@]}" \
  "${job[train_data]}" "${job[dev_data]}" "${job[train_targets]}" "${job[dev_targets]}" "${job[exp_dir]}"
