# Sourced (after path.sh) by local/transfer_train_job.sh, local/transfer_eval_job.sh and
# local/run_transfer.sh: the lines of a jobs file of pyscripts/transfer/plan.py, read by field name.
# JOB_FIELDS is the one copy in the shell scripts of the field order (pyscripts.transfer.plan.JOB_FIELDS).
#   read_job JOBS_FILE K     fills the associative array job from line K: ${job[exp_dir]}, ${job[fold]}, ...
#   job_exp_dirs JOBS_FILE ARRAY   sets the array named ARRAY to the exp_dir of every line
#   job_folds JOBS_FILE ARRAY      sets the array named ARRAY to the folds of the lines, each once, in order
#   parse_job_line LINE WHERE      fills job from one line; WHERE names it in errors
# shellcheck shell=bash
JOB_FIELDS=(direction row fold seed exp_dir init_from freeze_layers reinit_unfrozen
            train_data dev_data train_targets dev_targets)
declare -A job=()

parse_job_line() {  # parse_job_line LINE WHERE: fills job; WHERE names the line in errors
  local values i
  IFS=$'\t' read -r -a values <<< "$1"
  if (( ${#values[@]} != ${#JOB_FIELDS[@]} )); then
    die "$2: ${#values[@]} fields, expected ${#JOB_FIELDS[@]}; re-make it with pyscripts.transfer.plan"
  fi
  # shellcheck disable=SC2034  # job is read by the scripts that source this file
  for i in "${!JOB_FIELDS[@]}"; do job[${JOB_FIELDS[i]}]=${values[i]}; done
}

read_job() {
  [[ -f $1 ]] || die "no such file $1"
  local line; line=$(sed -n "${2}p" "$1")
  [[ -n $line ]] || die "$1 has no line $2"
  parse_job_line "$line" "$1:$2"
}

job_exp_dirs() {
  local -n _exp_dirs=$2
  local line k=0
  _exp_dirs=()
  while IFS= read -r line; do
    k=$((k + 1)); parse_job_line "$line" "$1:$k"; _exp_dirs+=("${job[exp_dir]}")
  done < "$1"
}

job_folds() {
  local -n _folds=$2
  local line k=0
  _folds=()
  while IFS= read -r line; do
    k=$((k + 1)); parse_job_line "$line" "$1:$k"
    [[ " ${_folds[*]} " == *" ${job[fold]} "* ]] || _folds+=("${job[fold]}")
  done < "$1"
}
