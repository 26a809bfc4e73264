#!/usr/bin/env bash
# Kaldi's utils/format_lm.sh: a copy of a lang dir with G.fst made from an ARPA LM (back-off arcs
# carry the #0 disambiguation symbol). Embedded backend: kaldilm's arpa2fst; with KALDI_ROOT: arpa2fst.
set -euo pipefail
help_message="Usage: $0 LANG_DIR ARPA OUT_LANG_DIR
  e.g. $0 data/lang data/local/lm/lm_phone_bg.arpa data/lang_test_bg"
. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 3 ]]; then echo -e "$help_message" >&2; exit 1; fi
lang=$1; arpa=$2; out=$3
for f in "$lang/words.txt" "$lang/L_disambig.fst" "$arpa"; do
  [[ -f $f ]] || die "$f not found"
done
mkdir -p "$out"
cp -r "$lang"/* "$out"/
if [[ -n ${KALDI_ROOT:-} ]]; then
  arpa2fst --disambig-symbol=#0 --read-symbol-table="$out/words.txt" "$arpa" "$out/G.fst" 2> "$out/format_lm.log"
else
  python3 -m pyscripts.asr.lm arpa2fst "$arpa" "$out/words.txt" "$out/G.fst" 2> "$out/format_lm.log" || {
    cat "$out/format_lm.log" >&2; exit 1; }
fi
log "$out/G.fst from $arpa"
