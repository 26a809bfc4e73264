# Sourced by the multi-stage scripts (local/run_ser.sh, local/run_transfer.sh), after their options:
#   stage_selected N [TITLE]   true when --stage <= N <= --stop-stage; with TITLE, logs "stage N: TITLE"
# shellcheck shell=bash
stage_selected() {
  (( ${stage:?} <= $1 && $1 <= ${stop_stage:?} )) || return 1
  if [[ $# -gt 1 ]]; then log "stage $1: $2"; fi
}
