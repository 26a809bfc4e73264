#!/usr/bin/env bash
# The test command: sets up the environment like run.sh does, then runs the pytest suite: tests/unit,
# tests/integration and tests/e2e (the end-to-end runs of ./run.sh --corpus tiny); with KALDI_ROOT set,
# also the Kaldi tier (marker `kaldi`) against that build. Skipped tests print why. Extra arguments go
# to pytest; a path among them runs that tier alone (tests/run.sh tests/unit).
set -euo pipefail
cd "$(dirname "$0")/.."
utils/setup_env.sh
. ./path.sh
paths=(tests)
for arg in "$@"; do [[ $arg == tests/* && -e ${arg%%::*} ]] && paths=(); done
exec python3 -m pytest -q -rs "${paths[@]}" "$@"
