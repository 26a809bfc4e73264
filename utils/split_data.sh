#!/usr/bin/env bash
# Kaldi's utils/split_data.sh, done by pyscripts.datadir: see `python3 -m pyscripts.datadir split --help`.
set -euo pipefail
. "$(dirname "$0")/../path.sh"
exec python3 -m pyscripts.datadir split "$@"
