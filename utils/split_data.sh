#!/usr/bin/env bash
# Kaldi's utils/split_data.sh, done by pyscripts.kaldi.datadir: see `python3 -m pyscripts.kaldi.datadir split --help`.
set -euo pipefail
# shellcheck source=path.sh
. "$(dirname "$0")/../path.sh"
exec python3 -m pyscripts.kaldi.datadir split "$@"
