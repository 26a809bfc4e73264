# Sourced (by path.sh, so by every script): message helpers with a timestamp and the script's name.
#   log TEXT...    an informational line on stdout: "2024-05-01 12:00:00 align_mono.sh: TEXT"
#   error TEXT...  the same line on stderr
#   die TEXT...    error, then exit 1
# shellcheck shell=bash
log() { echo "$(date '+%F %T') ${0##*/}: $*"; }
error() { log "$@" >&2; }
die() { error "$@"; exit 1; }
