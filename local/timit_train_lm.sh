#!/usr/bin/env bash
# Phone n-gram LM (Kneser-Ney, kaldingram) on the training transcripts; the train and dev
# perplexities go to the log next to the ARPA file.
set -euo pipefail
order=2
lang=data/lang   # its words.txt: every phone of the transcripts must be one of them
help_message="Usage: $0 [options] TRAIN_DATA DEV_DATA ARPA_OUT
  e.g. $0 data/timit/train data/timit/dev data/local/lm/lm_phone_bg.arpa
Options:
  --order N   n-gram order (default $order)
  --lang DIR  lang dir whose words the transcripts must use (default $lang)"
. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 3 ]]; then echo -e "$help_message" >&2; exit 1; fi
train=$1; dev=$2; arpa=$3
lmdir=$(dirname "$arpa")
mkdir -p "$lmdir"
for f in "$train/text" "$dev/text"; do
  [[ -f $f ]] || die "$f not found; run the data preparation stage first"
done
[[ -f $lang/words.txt ]] || die "$lang/words.txt not found; make the lang dir first (utils/prepare_lang.sh) or pass --lang"
logfile=$lmdir/train_lm.$(basename "$arpa" .arpa).log
python3 -m pyscripts.asr.lm train --order "$order" --words "$lang/words.txt" --dev-text "$dev/text" "$train/text" "$arpa" \
  2> "$logfile" || { cat "$logfile" >&2; exit 1; }
ppl=$(grep -o "dev perplexity [0-9.]*" "$logfile" || true)
if [[ -n $ppl ]]; then log "$arpa: $ppl"; fi
