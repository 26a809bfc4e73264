#!/usr/bin/env bash
# The phone-level TIMIT dict dir: each of the 48 training phones (column 2 of the 60-48-39 map) is
# a word pronounced as itself; sil is the silence phone.
set -euo pipefail
help_message="Usage: $0 PHONE_MAP DICT_DIR
  e.g. $0 conf/phones.60-48-39.map data/local/dict"
. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 2 ]]; then echo -e "$help_message" >&2; exit 1; fi
python3 -m pyscripts.asr.lang phone-dict "$1" "$2"
