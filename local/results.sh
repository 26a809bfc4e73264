#!/usr/bin/env bash
# The ASR results table: one row per model with FER and PER on dev and test (the seed's columns),
# collected from <exp>/**/decode_{dev,test}/scoring (best_wer, wer_*, fer) and the real-time
# factors from decode_*/rtf. Test PER is taken at the LM weight / insertion penalty chosen on dev.
set -euo pipefail

dev=dev
test=test
out=                   # also write the table to this file

help_message="Usage: $0 [--dev NAME] [--test NAME] [--out FILE] [<exp-dir> ...]   (default: exp)
 e.g.: $0 --out exp/RESULTS.md exp"

. ./path.sh
. utils/parse_options.sh

[[ $# -gt 0 ]] || set -- exp
table=$(python3 -m pyscripts.asr.scoring results --dev "$dev" --test "$test" "$@")
echo "$table"
if [[ -n $out ]]; then
  mkdir -p "$(dirname "$out")"
  echo "$table" > "$out"
fi
