#!/usr/bin/env bash
# Prints the input line with the lowest error rate, as Kaldi's utils/best_wer.sh does:
#   grep WER exp/*/decode*/wer_* | utils/best_wer.sh
# A line counts when it holds `WER RATE` (local/score.sh writes `%WER 21.43 [ 3 / 14, ... ]`: Kaldi's
# token, here for phone error rates); ties go to the first line. Nothing to compare is an error.
set -euo pipefail
awk 'match($0, /WER[ \t]+[0-9.]+/) {
       rate = substr($0, RSTART + 3, RLENGTH - 3) + 0
       if (line == "" || rate < best) { best = rate; line = $0 }
     }
     END {
       if (line == "") { print "best_wer.sh: no line with `WER RATE` in the input (grep WER DECODE_DIR/wer_*)" > "/dev/stderr"; exit 1 }
       print line
     }' "$@"
