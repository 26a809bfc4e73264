#!/usr/bin/env bash
# IEMOCAP data preparation for SER: DATA_DIR/all (wav.scp, utt2spk, spk2utt, spk2gender, utt2emo,
# utt2dur; ang, hap+exc as hap, neu, sad; other labels dropped and counted in the log) and the
# leave-one-speaker-out folds DATA_DIR/folds/fold<k>/{train,valid,test} from the fold conf
# (pyscripts/folds.py; local/ser_make_folds.sh re-makes them after features so they carry feats.scp).
set -euo pipefail

fold_conf=conf/iemocap_folds.conf

help_message="Usage: $0 [options] CORPUS_DIR DATA_DIR
  e.g. $0 corpora/demo/iemocap data/iemocap
  CORPUS_DIR holds Session1..Session5 (the IEMOCAP release, or the demo corpus).
Options:
  --fold-conf FILE   names the validation speakers (default $fold_conf)"

. ./path.sh
. utils/parse_options.sh

if [[ $# -ne 2 ]]; then
  echo -e "$help_message" >&2
  exit 1
fi
corpus=$1
data=$2
[[ -f $fold_conf ]] || { echo "$0: fold conf $fold_conf not found" >&2; exit 1; }

python3 -m pyscripts.prep_iemocap "$corpus" "$data/all"
python3 -m pyscripts.folds --fold-conf "$fold_conf" "$data/all" "$data/folds"
echo "$0: prepared $data/all ($(wc -l < "$data/all/utt2spk") utterances) and $(wc -l < "$data/folds/plan") folds in $data/folds"
