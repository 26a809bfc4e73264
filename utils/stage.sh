# Sourced by run.sh and the multi-stage scripts (local/run_ser.sh, local/run_transfer.sh,
# local/run_joint.sh), after their options:
#   stage_selected N [TITLE]   true when --stage <= N <= --stop-stage; with TITLE, logs "[N/LAST] TITLE"
#                              where the script sets last_stage (run.sh: 13), else "stage N: TITLE".
#                              The first call takes the recipe dir's lock (below) unless this run holds it.
#   lock_recipe_dir            one run at a time in this recipe dir (run.sh takes it before its set-up)
# shellcheck shell=bash
stage_selected() {
  lock_recipe_dir
  (( ${stage:?} <= $1 && $1 <= ${stop_stage:?} )) || return 1
  if [[ $# -gt 1 ]]; then
    if [[ -n ${last_stage:-} ]]; then log "[$1/$last_stage] $2"; else log "stage $1: $2"; fi
  fi
}

# Two runs in one directory would write the same files at once (two trainings resuming one checkpoint).
# The lock is a flock on exp/.run.lock, which names its holder (PID, start, command). Its descriptor is
# inherited by every process of the run (RECIPE_LOCK_FD says which), so the scripts a run calls share
# it, it lasts while any of the run's processes does, and it goes with them however they end: a lock
# left by a killed run never blocks.
recipe_lock=exp/.run.lock
lock_recipe_dir() {
  # Held already: by this shell, or by the run that started this script (the same open lock file).
  if [[ ${RECIPE_LOCK_FD:-} == none || ( -n ${RECIPE_LOCK_FD:-} && /dev/fd/$RECIPE_LOCK_FD -ef $recipe_lock ) ]]; then
    return 0
  fi
  if ! command -v flock > /dev/null; then
    error "no flock (util-linux) on PATH: running without the lock that keeps a second run out of this directory"
    export RECIPE_LOCK_FD=none; return 0
  fi
  local fd
  mkdir -p "${recipe_lock%/*}" || die "cannot make ${recipe_lock%/*}/ for the lock file $PWD/$recipe_lock"
  exec {fd}>> "$recipe_lock" || die "cannot open the lock file $PWD/$recipe_lock: make it writable"
  if ! flock -n "$fd"; then
    exec {fd}>&-
    refuse_locked_run
  fi
  # The command line as given: /proc has it whole (the options are parsed away by now).
  local command=$0
  if [[ -r /proc/$$/cmdline ]]; then command=$(tr '\0' ' ' < "/proc/$$/cmdline"); command=${command% }; fi
  if [[ $command == *"$0"* ]]; then command=$0${command#*"$0"}; fi   # without the interpreter
  printf '%s\t%s\t%s\n' "$$" "$(date '+%F %T')" "$command" > "$recipe_lock"
  export RECIPE_LOCK_FD=$fd
}

# holds_recipe_lock PID: true when the process has the lock file open (without /proc: when it is alive).
holds_recipe_lock() {
  local f
  kill -0 "$1" 2> /dev/null || return 1
  [[ -d /proc/$1 ]] || return 0
  for f in "/proc/$1"/fd/*; do [[ $f -ef $recipe_lock ]] && return 0; done 2> /dev/null
  return 1
}

# Exits naming who holds the lock: the run that took it (PID, start, command), or, when it has ended,
# the processes it started that hold it still (a stage's script or job: they end with their runner).
refuse_locked_run() {
  local pid='' started='' command='' try p holders=()
  for try in 1 2; do   # a run that has just taken the lock may not have written its name yet
    IFS=$'\t' read -r pid started command < "$recipe_lock" || true
    if [[ $pid =~ ^[0-9]+$ ]] && holds_recipe_lock "$pid"; then
      die "another run is going on in this directory: PID $pid, started $started: $command" \
          "(lock $PWD/$recipe_lock). Wait for it to end, or stop it (kill $pid: its jobs stop with it)," \
          "then run again"
    fi
    (( try == 2 )) || sleep 0.5
  done
  for p in /proc/[0-9]*; do
    if holds_recipe_lock "${p#/proc/}"; then
      holders+=("PID ${p#/proc/} ($(tr '\0' ' ' < "$p/cmdline" 2> /dev/null | sed 's/ $//'))")
    fi
  done
  (( ${#holders[@]} )) || holders=("see: fuser -v $recipe_lock")
  die "the run that started in this directory${pid:+ as PID $pid}${started:+ at $started}${command:+ ($command)}" \
      "has ended, but processes it started still hold its lock $PWD/$recipe_lock: ${holders[*]}." \
      "Wait for them to end, or stop them (kill PID), then run again"
}
