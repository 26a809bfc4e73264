#!/usr/bin/env bash
# utils/timed.sh FILE COMMAND [ARGS...]: runs COMMAND and writes its wall-clock time to FILE as
# `seconds=S` (for the RTF of a job whose program keeps no timing file of its own); exits with the
# command's status, writing FILE only on success.
set -uo pipefail
out=$1; shift
start=$(date +%s.%N)
"$@" || exit $?
awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "seconds=%.4f\n", e - s }' > "$out"
