#!/usr/bin/env bash
# Kaldi's utils/subset_data_dir.sh, done by pyscripts.kaldi.datadir: see `python3 -m pyscripts.kaldi.datadir subset --help`.
set -euo pipefail
. "$(dirname "$0")/../path.sh"
exec python3 -m pyscripts.kaldi.datadir subset "$@"
