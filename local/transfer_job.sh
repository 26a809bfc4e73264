#!/usr/bin/env bash
# One job of a transfer sweep's job array (local/run_transfer.sh), on the plan file of a direction
# (pyscripts/transfer/plan.py, which alone parses it: this script asks it for fields).
#   train PLAN GROUPS K   the trainings of line K of GROUPS (plan lines) in one process
#                         (pyscripts/transfer/train_group.py: rows l >= 2 of a fold share the frozen layers'
#                         outputs), normalised as the plan says; a finished training (EXP_DIR/final.pt up to
#                         date, its final.stamp) is skipped, a killed one resumes
#   eval PLAN K           E and UE of the ASR -> SER models of the plan's K-th fold on the fold's Dev
#                         (validation speakers) and Test (held-out speaker) sets with pyscripts/ser/evaluate.py:
#                         all the fold's models in one process, each set's features read once and the frozen
#                         layers the rows share computed once; writes EXP_DIR/eval/{valid,test}/metrics.json
#                         (a model whose metrics are newer than its final.pt, of the same rule, is not re-scored)
# e.g. $cuda_cmd JOB=1:N LOG local/transfer_job.sh train exp/transfer/asr2ser/{plan,groups.transfer} JOB
set -euo pipefail

train_config=conf/convnet_asr.yaml
overrides=
num_threads=0
device=auto
rule=mean

help_message="Usage: $0 [options] train PLAN GROUPS K
       $0 [options] eval PLAN K
  e.g. $0 --train-config conf/convnet_ser.yaml train exp/transfer/asr2ser/plan exp/transfer/asr2ser/groups.transfer 3
       $0 --rule mean eval exp/transfer/asr2ser/plan 1
Options:
  --train-config FILE    train: training YAML of the target task (default: $train_config)
  --overrides 'K=V ...'  train: config overrides
  --device DEV           train: auto|cpu|cuda (default: $device)
  --num-threads N        CPU threads (default: torch's choice)
  --rule mean|vote       eval: utterance decision rule (default: $rule)"

. ./path.sh
. utils/parse_options.sh

plan_fields() {  # plan_fields [fields options] PLAN KEY...: pyscripts/transfer/plan.py's answer
  python3 -m pyscripts.transfer.plan fields "$@"
}

train_group() {  # train_group PLAN GROUPS K
  local plan=$1 groups=$2 k=$3 lines answer direction label exp_dir cmvn_stats stats
  [[ -f $groups ]] || die "no such file $groups"
  lines=$(sed -n "${k}p" "$groups")
  [[ -n $lines ]] || die "$groups has no line $k"
  answer=$(plan_fields --lines "$lines" "$plan" direction label exp_dir cmvn_stats)
  local exp_dirs=()
  while IFS=$'\t' read -r direction label exp_dir cmvn_stats; do
    log "$direction, $label -> $exp_dir (log: $exp_dir/log/train.log)"
    exp_dirs+=("$exp_dir")
    stats=$cmvn_stats   # a group is one direction's: one normalisation for all its lines
  done <<< "$answer"
  local args=(--config "$train_config" --device "$device")
  [[ $stats != - ]] && args+=(--cmvn-stats "$stats")
  for kv in $overrides; do args+=(--set "$kv"); done
  (( num_threads > 0 )) && args+=(--num-threads "$num_threads")
  # shellcheck disable=SC2086  # lines: the line numbers, split on purpose
  python3 -m pyscripts.transfer.train_group "${args[@]}" "$plan" $lines
  utils/train_summary.sh "${exp_dirs[@]}"
}

eval_fold() {  # eval_fold PLAN K
  local plan=$1 k=$2 answer direction fold exp_dir train_data train_targets folds_data folds_targets the_fold
  answer=$(plan_fields --nth-fold "$k" "$plan" direction fold exp_dir train_data train_targets)
  # evaluate.py's fold layout: EXP/foldK, FOLDS_DATA/foldK/{valid,test}, FOLDS_TARGETS/foldK/{valid,test}.
  local row_dirs=()
  while IFS=$'\t' read -r direction fold exp_dir train_data train_targets; do
    [[ $direction == asr2ser ]] || die "$plan is a $direction plan: only asr2ser models are scored here"
    [[ -f $exp_dir/final.pt ]] || die "$exp_dir/final.pt missing: train it first"
    row_dirs+=("$(dirname "$exp_dir")")
    the_fold=$fold   # read's variables are empty after the loop
    folds_data=$(dirname "$(dirname "$train_data")")
    folds_targets=$(dirname "$(dirname "$train_targets")")
  done <<< "$answer"
  log "$the_fold: ${#row_dirs[@]} models"
  local threads=(); (( num_threads > 0 )) && threads=(--num-threads "$num_threads")
  python3 -m pyscripts.ser.evaluate fold --rule "$rule" "${threads[@]}" \
    "${row_dirs[0]}" "$folds_data" "$folds_targets" "${the_fold#fold}" "${row_dirs[@]:1}"
}

case ${1:-}:$# in
  train:4) train_group "$2" "$3" "$4" ;;
  eval:3) eval_fold "$2" "$3" ;;
  *) echo -e "$help_message" >&2; exit 1 ;;
esac
