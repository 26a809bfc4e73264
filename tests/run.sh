#!/usr/bin/env bash
# The test command: sets up the environment like run.sh does, then runs the whole pytest suite
# (unit tests plus the end-to-end smoke run of ./run.sh --corpus tiny; with KALDI_ROOT set, also the
# Kaldi tier, marker `kaldi`, against that build). Skipped tests print why. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
utils/setup_env.sh
. ./path.sh
exec python3 -m pytest -q -rs tests "$@"
