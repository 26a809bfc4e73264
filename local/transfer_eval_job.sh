#!/usr/bin/env bash
# E and UE of one ASR -> SER training (line K of a jobs file from pyscripts/transfer/plan.py) on its
# fold's Dev (validation speakers) and Test (held-out speaker) sets, with pyscripts/ser/evaluate.py:
# writes EXP_DIR/eval/{valid,test}/metrics.json. Skipped when those are newer than EXP_DIR/final.pt.
set -euo pipefail

rule=mean            # utterance decision rule of pyscripts/ser/evaluate.py: mean | vote
num_threads=1

help_message="Usage: $0 [options] JOBS_FILE K
Options:
  --rule mean|vote    utterance decision rule (default: $rule)
  --num-threads N     torch CPU threads (default: $num_threads)"

. ./path.sh
. utils/parse_options.sh

if [[ $# -ne 2 ]]; then
  echo -e "$help_message" >&2
  exit 1
fi
jobs_file=$1 k=$2
line=$(sed -n "${k}p" "$jobs_file")
[[ -n $line ]] || { echo "$0: $jobs_file has no line $k" >&2; exit 1; }
# Field order: pyscripts.transfer.plan.JOB_FIELDS.
IFS=$'\t' read -r direction row fold exp_dir _ _ _ train_data _ train_targets _ <<< "$line"
[[ $direction == asr2ser ]] || { echo "$0: line $k of $jobs_file is a $direction job, not asr2ser" >&2; exit 1; }
[[ -f $exp_dir/final.pt ]] || { echo "$0: $exp_dir/final.pt missing: train it first" >&2; exit 1; }

if [[ $exp_dir/eval/valid/metrics.json -nt $exp_dir/final.pt && $exp_dir/eval/test/metrics.json -nt $exp_dir/final.pt ]]; then
  echo "$0: $exp_dir already evaluated"
  exit 0
fi
# evaluate.py's fold layout: EXP/foldK, FOLDS_DATA/foldK/{valid,test}, FOLDS_TARGETS/foldK/{valid,test}.
python3 -m pyscripts.ser.evaluate fold --rule "$rule" --num-threads "$num_threads" \
  "$(dirname "$exp_dir")" "$(dirname "$(dirname "$train_data")")" "$(dirname "$(dirname "$train_targets")")" \
  "${fold#fold}"
