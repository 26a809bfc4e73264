#!/usr/bin/env bash
# Trainings of a transfer sweep: line K of a jobs file written by pyscripts/transfer/plan.py, or with
# --groups the lines that line K of the groups file names, in one process (pyscripts/transfer/train_group.py:
# rows l >= 2 of a fold share the frozen layers' outputs). Meant to be the command of a job array:
# $cuda_cmd JOB=1:N LOG local/transfer_train_job.sh --groups GROUPS_FILE JOBS_FILE JOB.
# A finished training (EXP_DIR/final.pt up to date, its final.stamp) is skipped, a killed one resumes.
set -euo pipefail

train_config=conf/convnet_asr.yaml
overrides=
num_threads=0
device=auto
groups=

help_message="Usage: $0 [options] JOBS_FILE K
  e.g. $0 --train-config conf/convnet_ser.yaml --groups exp/transfer/asr2ser/groups.transfer \\
         exp/transfer/asr2ser/jobs.transfer 3
Options:
  --train-config FILE    training YAML of the target task (default: $train_config)
  --overrides 'K=V ...'  config overrides
  --num-threads N        CPU threads per training (default: torch's choice)
  --device DEV           auto|cpu|cuda (default: $device)
  --groups FILE          K is line K of FILE, the jobs-file lines to train in one process (default: line K)"

. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 2 ]]; then echo -e "$help_message" >&2; exit 1; fi
jobs_file=$1 k=$2
lines=$k
if [[ -n $groups ]]; then
  [[ -f $groups ]] || die "no such file $groups"
  lines=$(sed -n "${k}p" "$groups")
  [[ -n $lines ]] || die "$groups has no line $k"
fi
. local/transfer_job.sh
exp_dirs=()
for n in $lines; do
  read_job "$jobs_file" "$n"
  where=${job[row]}; [[ ${job[fold]} != - ]] && where+=" ${job[fold]}"
  (( job[seed] > 1 )) && where+=" seed ${job[seed]}"
  log "${job[direction]}, $where -> ${job[exp_dir]} (log: ${job[exp_dir]}/log/train.log)"
  exp_dirs+=("${job[exp_dir]}")
done

args=(--config "$train_config" --device "$device")
for kv in $overrides; do args+=(--set "$kv"); done
(( num_threads > 0 )) && args+=(--num-threads "$num_threads")
# shellcheck disable=SC2086  # lines: the line numbers, split on purpose
python3 -m pyscripts.transfer.train_group "${args[@]}" "$jobs_file" $lines
utils/train_summary.sh "${exp_dirs[@]}"
