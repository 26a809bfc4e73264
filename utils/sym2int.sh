#!/usr/bin/env bash
# utils/sym2int.sh SYMBOL_TABLE [TEXT]: a Kaldi `text` file (utt w1 w2 ...) with every word replaced by
# its integer id from SYMBOL_TABLE (words.txt), as Kaldi's `utils/sym2int.pl -f 2-`. A word missing
# from the table is an error naming it (no silent OOV mapping: here words are phones).
set -euo pipefail
[[ $# -ge 1 ]] || { echo "Usage: $0 SYMBOL_TABLE [TEXT]" >&2; exit 1; }
awk 'NR == FNR { id[$1] = $2; next }
     { line = $1
       for (i = 2; i <= NF; i++) {
         if (!($i in id)) { printf "sym2int.sh: utterance %s: %s is not in %s\n", $1, $i, table > "/dev/stderr"; exit 1 }
         line = line " " id[$i]
       }
       print line }' table="$1" "$1" "${2:--}"
