#!/usr/bin/env bash
# TIMIT data preparation: DATA_DIR/{train,dev,test} Kaldi data dirs from a TIMIT-layout corpus (the LDC
# release, a copy with lower-case names or RIFF audio, or the demo corpus of local/make_demo_timit.sh).
set -euo pipefail

dev_spk_list=conf/timit_dev_spk.list     # the 50 speakers of TIMIT's development set
test_spk_list=conf/timit_test_spk.list   # the 24 speakers of TIMIT's core test set
phone_map=conf/phones.60-48-39.map

help_message="Usage: $0 [options] CORPUS_DIR DATA_DIR
  e.g. $0 /data/TIMIT data/timit
       $0 --dev-spk-list conf/demo_timit_dev_spk.list --test-spk-list conf/demo_timit_test_spk.list \\
          corpora/demo/timit data/timit      (tiny demo corpus: conf/tiny_timit_*_spk.list)
Options:
  --dev-spk-list FILE    dev speakers, one a line (default $dev_spk_list)
  --test-spk-list FILE   test speakers (default $test_spk_list)
  --phone-map FILE       61 -> 48 -> 39 phone map (default $phone_map)"

. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 2 ]]; then echo -e "$help_message" >&2; exit 1; fi
corpus_dir=$1
data_dir=$2

mkdir -p "$data_dir"
python3 -m pyscripts.corpora.timit --dev-spk-list "$dev_spk_list" --test-spk-list "$test_spk_list" \
  --phone-map "$phone_map" "$corpus_dir" "$data_dir" 2>&1 | tee "$data_dir/prep_timit.log"
