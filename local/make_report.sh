#!/usr/bin/env bash
# The transfer report: the paper's two tables (pyscripts/transfer/tables.py), the error-vs-l curves and
# the first-layer filters (pyscripts/transfer/figures.py), linear CKA per layer between the ASR and SER
# networks (pyscripts/transfer/cka.py), and OUT_DIR/README.md tying them together with the
# configuration (pyscripts/transfer/report.py). Parts whose inputs are missing are left out and said so.
# The tables and curves set the paper's numbers on the real corpora (--paper-results) beside the recipe's.
set -euo pipefail

exp_root=exp/transfer
ser_folds_dir=data/iemocap/folds
asr_model=                  # default: EXP_ROOT/ser2asr/baseline/final.pt
ser_model=                  # default: EXP_ROOT/asr2ser/baseline/fold1/final.pt
ser_model2=                 # same-task CKA reference; default: EXP_ROOT/asr2ser/baseline/fold2/final.pt
cka_data="data/timit/dev data/iemocap/folds/fold1/valid"   # frames both networks see (none trained on them)
cka_frames_per_set=1000
paper_results=conf/paper_results.tsv   # the paper's numbers on the real TIMIT and IEMOCAP; '' for none

help_message="Usage: $0 [options] OUT_DIR
  e.g. $0 exp/report
Options (defaults in brackets):
  --exp-root DIR              the sweeps [$exp_root]
  --ser-folds-dir DIR         the SER fold plan [$ser_folds_dir]
  --asr-model M / --ser-model M / --ser-model2 M   networks for the filters and CKA [the baselines]
  --cka-data 'DIR ...'        data dirs whose frames CKA compares on [$cka_data]
  --cka-frames-per-set N      frames drawn from each [$cka_frames_per_set]
  --paper-results FILE        the paper's numbers, set beside the recipe's; '' for none [$paper_results]"

. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 1 ]]; then echo -e "$help_message" >&2; exit 1; fi
out=$1
asr_model=${asr_model:-$exp_root/ser2asr/baseline/final.pt}
ser_model=${ser_model:-$exp_root/asr2ser/baseline/fold1/final.pt}
ser_model2=${ser_model2:-$exp_root/asr2ser/baseline/fold2/final.pt}
mkdir -p "$out"

python3 -m pyscripts.transfer.tables --exp-root "$exp_root" --ser-folds-dir "$ser_folds_dir" \
  --paper-results "$paper_results" "$out"
python3 -m pyscripts.transfer.figures transfer --paper-results "$paper_results" "$out/results.json" "$out"

rm -f "$out/filters.png" "$out/cka.tsv" "$out/cka.png" "$out/cka.log"
if [[ -f $asr_model && -f $ser_model ]]; then
  python3 -m pyscripts.transfer.figures filters --asr-model "$asr_model" --ser-model "$ser_model" "$out/filters.png"
  model2_opts=()
  [[ -f $ser_model2 && $ser_model2 != "$ser_model" ]] && model2_opts=(--ser-model2 "$ser_model2")
  # shellcheck disable=SC2086  # cka_data: several data dirs, split on purpose
  python3 -m pyscripts.transfer.cka --asr-model "$asr_model" --ser-model "$ser_model" "${model2_opts[@]}" \
    --frames-per-set "$cka_frames_per_set" $cka_data "$out/cka.tsv" 2> "$out/cka.log" \
    || { cat "$out/cka.log" >&2; exit 1; }
  python3 -m pyscripts.transfer.figures cka "$out/cka.tsv" "$out/cka.png"
else
  error "$asr_model or $ser_model missing: no filters and no CKA in the report"
fi
python3 -m pyscripts.transfer.report --exp-root "$exp_root" --ser-folds-dir "$ser_folds_dir" \
  --asr-model "$asr_model" --ser-model "$ser_model" "$out"
log "report in $out/README.md"
