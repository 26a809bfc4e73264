#!/usr/bin/env bash
# The ASR results table: one row per model with FER and PER on dev and test (the paper's columns) and
# the real-time factors, read from the result records <exp>/**/decode_{dev,test}/scoring/result.json
# (pyscripts/asr/result.py). Test PER is taken at the LM weight / insertion penalty chosen on dev.
# A second table gives each FER and PER with its 95% bootstrap interval over utterances
# (pyscripts/stats.py, from scoring/per_by_utt and fer_by_utt).
set -euo pipefail

dev=dev
test="test"
out=                   # also write the table to this file

help_message="Usage: $0 [options] [EXP_DIR ...]   (default: exp)
  e.g. $0 --out exp/RESULTS.md exp
Options:
  --dev NAME     the dev set: decode_NAME (default $dev)
  --test NAME    the test set (default $test)
  --out FILE     also write the table to FILE"

. ./path.sh
. utils/parse_options.sh
[[ $# -gt 0 ]] || set -- exp
table=$(python3 -m pyscripts.asr.scoring results --dev "$dev" --test "$test" "$@")
echo "$table"
if [[ -n $out ]]; then
  mkdir -p "$(dirname "$out")"
  echo "$table" > "$out"
fi
