#!/usr/bin/env bash
# E and UE of one ASR -> SER training (line K of a jobs file from pyscripts/transfer/plan.py) on its
# fold's Dev (validation speakers) and Test (held-out speaker) sets, with pyscripts/ser/evaluate.py:
# writes EXP_DIR/eval/{valid,test}/metrics.json. Skipped when those are newer than EXP_DIR/final.pt.
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
read_job "$1" "$2"
exp_dir=${job[exp_dir]}
[[ ${job[direction]} == asr2ser ]] || die "line $2 of $1 is a ${job[direction]} job, not asr2ser"
[[ -f $exp_dir/final.pt ]] || die "$exp_dir/final.pt missing: train it first"

if [[ $exp_dir/eval/valid/metrics.json -nt $exp_dir/final.pt && $exp_dir/eval/test/metrics.json -nt $exp_dir/final.pt ]]; then
  log "$exp_dir already evaluated"
  exit 0
fi
# evaluate.py's fold layout: EXP/foldK, FOLDS_DATA/foldK/{valid,test}, FOLDS_TARGETS/foldK/{valid,test}.
python3 -m pyscripts.ser.evaluate fold --rule "$rule" --num-threads "$num_threads" \
  "$(dirname "$exp_dir")" "$(dirname "$(dirname "${job[train_data]}")")" \
  "$(dirname "$(dirname "${job[train_targets]}")")" "${job[fold]#fold}"
