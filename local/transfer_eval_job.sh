#!/usr/bin/env bash
# E and UE of the ASR -> SER trainings of one fold (the K-th fold of a jobs file from
# pyscripts/transfer/plan.py) on the fold's Dev (validation speakers) and Test (held-out speaker) sets,
# with pyscripts/ser/evaluate.py: all the fold's models in one process, each set's features read once
# and the frozen layers the rows share computed once. Writes EXP_DIR/eval/{valid,test}/metrics.json;
# a model whose metrics are newer than its final.pt (and of the same rule) is not scored again.
set -euo pipefail

rule=mean            # utterance decision rule of pyscripts/ser/evaluate.py: mean | vote
num_threads=1

help_message="Usage: $0 [options] JOBS_FILE K
  e.g. $0 --rule mean exp/transfer/asr2ser/jobs.all 3
Options:
  --rule mean|vote    utterance decision rule (default: $rule)
  --num-threads N     torch CPU threads (default: $num_threads)"

. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 2 ]]; then echo -e "$help_message" >&2; exit 1; fi
. local/transfer_job.sh
folds=(); job_folds "$1" folds
(( $2 >= 1 && $2 <= ${#folds[@]} )) || die "$1 has ${#folds[@]} folds, not a fold $2"
fold=${folds[$2 - 1]}

# evaluate.py's fold layout: EXP/foldK, FOLDS_DATA/foldK/{valid,test}, FOLDS_TARGETS/foldK/{valid,test}.
exp_dirs=()
k=0
while IFS= read -r line; do
  k=$((k + 1)); parse_job_line "$line" "$1:$k"
  [[ ${job[direction]} == asr2ser ]] || die "line $k of $1 is a ${job[direction]} job, not asr2ser"
  [[ ${job[fold]} == "$fold" ]] || continue
  [[ -f ${job[exp_dir]}/final.pt ]] || die "${job[exp_dir]}/final.pt missing: train it first"
  exp_dirs+=("$(dirname "${job[exp_dir]}")")
  folds_data=$(dirname "$(dirname "${job[train_data]}")")
  folds_targets=$(dirname "$(dirname "${job[train_targets]}")")
done < "$1"
log "$fold: ${#exp_dirs[@]} models"
python3 -m pyscripts.ser.evaluate fold --rule "$rule" --num-threads "$num_threads" \
  "${exp_dirs[0]}" "$folds_data" "$folds_targets" "${fold#fold}" "${exp_dirs[@]:1}"
