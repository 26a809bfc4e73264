#!/usr/bin/env bash
# IEMOCAP data preparation for SER: DATA_DIR/all (wav.scp, utt2spk, spk2utt, spk2gender, utt2emo,
# utt2dur; ang, hap+exc as hap, neu, sad; other labels dropped and counted in the log). The
# leave-one-speaker-out folds are made after the features, by local/ser_make_folds.sh.
set -euo pipefail

help_message="Usage: $0 CORPUS_DIR DATA_DIR
  e.g. $0 corpora/demo/iemocap data/iemocap
  CORPUS_DIR holds Session1..Session5 (the IEMOCAP release, or the demo corpus)."

. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 2 ]]; then echo -e "$help_message" >&2; exit 1; fi
corpus=$1
data=$2

python3 -m pyscripts.corpora.iemocap "$corpus" "$data/all"
log "prepared $data/all ($(wc -l < "$data/all/utt2spk") utterances)"
