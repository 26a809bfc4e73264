#!/usr/bin/env bash
# The transfer report: the paper's two tables (pyscripts/transfer/tables.py), the error-vs-l curves and
# the first-layer filters (pyscripts/transfer/figures.py), linear CKA, SVCCA and PWCCA per layer between
# the ASR and SER networks (pyscripts/transfer/cka.py, cca.py), linear probes of phone, emotion and speaker
# on each layer of both (pyscripts/transfer/probes.py), and OUT_DIR/README.md tying them together with the
# configuration (pyscripts/transfer/report.py). The tables and the README read the sweeps' plans
# (EXP_ROOT/{ser2asr,asr2ser}/plan, written by local/run_transfer.sh). Parts whose inputs are missing are
# left out and said so.
# The tables and curves set the paper's numbers on the real corpora (--paper-results) beside the recipe's;
# the joint model's comparison with the Baselines (stage 13) is added when it has been run.
set -euo pipefail

exp_root=exp/transfer       # the sweeps, with their plans
ser_folds_dir=data/iemocap/folds   # the emotion probe's fold data
asr_model=                  # default: EXP_ROOT/ser2asr/baseline/final.pt
ser_model=                  # default: EXP_ROOT/asr2ser/baseline/fold1/final.pt
ser_model2=                 # same-task CKA reference; default: EXP_ROOT/asr2ser/baseline/fold2/final.pt
cka_data="data/timit/dev data/iemocap/folds/fold1/valid"   # frames both networks see (none trained on them)
cka_frames_per_set=1000
cca=true                    # SVCCA and PWCCA beside CKA
probes=true                 # linear probes (the slowest part: about a minute per label on 2 CPU cores)
probe_frames=2000           # frames drawn for each probe's training and for its scoring
probe_max_iter=100          # lbfgs iterations per probe
# --timit-data (train/, dev/: the phone probe; dev/: the speaker probe), --asr-{train,dev}-targets (pdf ids of
# ../final.mdl, mapped to phones), --ser-targets (fold<k>/{train,test}: the emotion probe):
. local/layout.sh           # the recipe's layout
probe_fold=fold1            # the fold whose train speakers train the emotion probe, its test speakers score it
speaker_data=               # the speaker probe's data dir; default: TIMIT dev
paper_results=conf/paper_results.tsv   # the paper's numbers on the real TIMIT and IEMOCAP; '' for none
joint_results=exp/joint/results.md     # the joint model's comparison (stage 13), shown when it is there
readme_only=false           # true: only write OUT_DIR/README.md again from what is there (after stage 13)

help_message="Usage: $0 [options] OUT_DIR
  e.g. $0 exp/report
Options (defaults in brackets):
  --exp-root DIR              the sweeps, with their plans DIR/{ser2asr,asr2ser}/plan [$exp_root]
  --ser-folds-dir DIR         the SER folds' data dirs (the emotion probe) [$ser_folds_dir]
  --asr-model M / --ser-model M / --ser-model2 M   networks for the filters and CKA [the baselines]
  --cka-data 'DIR ...'        data dirs whose frames CKA compares on [$cka_data]
  --cka-frames-per-set N      frames drawn from each [$cka_frames_per_set]
  --cca true|false            SVCCA and PWCCA beside CKA [$cca]
  --probes true|false         linear probes (phone, emotion, speaker) per layer [$probes]
  --probe-frames N            frames per probe split [$probe_frames]
  --probe-max-iter N          lbfgs iterations per probe [$probe_max_iter]
  --timit-data DIR            TIMIT data dirs train/ and dev/ [$timit_data]
  --asr-train-targets DIR / --asr-dev-targets DIR   phone probe targets [$asr_train_targets, $asr_dev_targets]
  --ser-targets DIR / --probe-fold F   emotion probe targets and fold [$ser_targets, $probe_fold]
  --speaker-data DIR          speaker probe data dir [TIMIT dev]
  --paper-results FILE        the paper's numbers, set beside the recipe's; '' for none [$paper_results]
  --joint-results FILE        the joint model's comparison (stage 13), shown when there [$joint_results]
  --readme-only true|false    only write OUT_DIR/README.md again, e.g. after stage 13 [$readme_only]"

. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 1 ]]; then echo -e "$help_message" >&2; exit 1; fi
out=$1
asr_model=${asr_model:-$exp_root/ser2asr/baseline/final.pt}
ser_model=${ser_model:-$exp_root/asr2ser/baseline/fold1/final.pt}
ser_model2=${ser_model2:-$exp_root/asr2ser/baseline/fold2/final.pt}
speaker_data=${speaker_data:-$timit_data/dev}
mkdir -p "$out"

write_readme() {
  python3 -m pyscripts.transfer.report --exp-root "$exp_root" --asr-model "$asr_model" --ser-model "$ser_model" \
    --joint-results "$joint_results" "$out"
  log "report in $out/README.md"
}
if [[ $readme_only == true ]]; then write_readme; exit 0; fi

python3 -m pyscripts.transfer.tables --exp-root "$exp_root" --paper-results "$paper_results" "$out"
python3 -m pyscripts.transfer.figures transfer --paper-results "$paper_results" "$out/results.json" "$out"

rm -f "$out/filters.png" "$out/cka.tsv" "$out/cka.png" "$out/cka.log" "$out/svcca.tsv" "$out/pwcca.tsv" \
  "$out/probes.tsv" "$out/probes.json" "$out/probes.png" "$out/probes.log"
if [[ -f $asr_model && -f $ser_model ]]; then
  python3 -m pyscripts.transfer.figures filters --asr-model "$asr_model" --ser-model "$ser_model" "$out/filters.png"
  model2_opts=()
  [[ -f $ser_model2 && $ser_model2 != "$ser_model" ]] && model2_opts=(--ser-model2 "$ser_model2")
  cca_opts=(); cca_fig_opts=()
  if [[ $cca == true ]]; then
    cca_opts=(--svcca-out "$out/svcca.tsv" --pwcca-out "$out/pwcca.tsv")
    cca_fig_opts=(--svcca "$out/svcca.tsv" --pwcca "$out/pwcca.tsv")
  fi
  start=$SECONDS
  # shellcheck disable=SC2086  # cka_data: several data dirs, split on purpose
  python3 -m pyscripts.transfer.cka --asr-model "$asr_model" --ser-model "$ser_model" "${model2_opts[@]}" \
    --frames-per-set "$cka_frames_per_set" "${cca_opts[@]}" $cka_data "$out/cka.tsv" 2> "$out/cka.log" \
    || { cat "$out/cka.log" >&2; exit 1; }
  python3 -m pyscripts.transfer.figures cka "${cca_fig_opts[@]}" "$out/cka.tsv" "$out/cka.png"
  log "CKA$([[ $cca == true ]] && echo ", SVCCA and PWCCA"): $((SECONDS - start)) s (log: $out/cka.log)"
  if [[ $probes == true ]]; then
    probe_opts=()
    if [[ -f $timit_data/train/feats.scp && -f $timit_data/dev/feats.scp && -f $asr_train_targets/targets.scp \
          && -f $asr_dev_targets/targets.scp ]]; then
      probe_opts+=(--phone "$timit_data/train" "$asr_train_targets" "$timit_data/dev" "$asr_dev_targets")
    else
      error "TIMIT train/dev features or their targets ($asr_train_targets, $asr_dev_targets) missing: no phone probe"
    fi
    fold_data=$ser_folds_dir/$probe_fold; fold_targets=$ser_targets/$probe_fold
    if [[ -f $fold_data/train/feats.scp && -f $fold_data/test/feats.scp && -f $fold_targets/train/targets.scp \
          && -f $fold_targets/test/targets.scp ]]; then
      probe_opts+=(--emotion "$fold_data/train" "$fold_targets/train" "$fold_data/test" "$fold_targets/test")
    else
      error "$fold_data or $fold_targets (train, test) missing: no emotion probe"
    fi
    if [[ -f $speaker_data/feats.scp && -f $speaker_data/utt2spk ]]; then
      probe_opts+=(--speaker "$speaker_data")
    else
      error "$speaker_data (feats.scp, utt2spk) missing: no speaker probe"
    fi
    if (( ${#probe_opts[@]} )); then
      start=$SECONDS
      python3 -m pyscripts.transfer.probes --asr-model "$asr_model" --ser-model "$ser_model" \
        --frames-per-split "$probe_frames" --max-iter "$probe_max_iter" "${probe_opts[@]}" "$out/probes.tsv" \
        2> "$out/probes.log" || { cat "$out/probes.log" >&2; exit 1; }
      python3 -m pyscripts.transfer.figures probes "$out/probes.tsv" "$out/probes.png"
      log "linear probes: $((SECONDS - start)) s (log: $out/probes.log)"
    fi
  fi
else
  error "$asr_model or $ser_model missing: no filters, no CKA and no probes in the report"
fi
write_readme
