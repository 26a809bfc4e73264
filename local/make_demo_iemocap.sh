#!/usr/bin/env bash
# Generates the demo IEMOCAP-layout corpus (espeak-ng, deterministic); does nothing when OUT_DIR
# already holds a complete corpus of the same size.
set -euo pipefail

size=demo   # demo or tiny
seed=1234
nj=2        # parallel synthesis jobs

help_message="Usage: $0 [options] OUT_DIR
  e.g. $0 --size tiny corpora/tiny/iemocap
Options:
  --size demo|tiny   corpus size (default $size)
  --seed N           random seed (default $seed)
  --nj N             parallel synthesis jobs (default $nj)"

. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 1 ]]; then echo -e "$help_message" >&2; exit 1; fi
out_dir=$1

python3 -m pyscripts.corpora.demo.iemocap --size "$size" --seed "$seed" --nj "$nj" "$out_dir"
