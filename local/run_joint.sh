#!/usr/bin/env bash
# The hybrid ASR-SER system as one network (pyscripts/nnet/joint.py): the ConvNet's trunk (layers 1..5)
# shared by an ASR output layer (monophone pdfs) and an SER output layer (4 emotions + sil), trained on
# batches mixing TIMIT and IEMOCAP frames, then scored like the single-task Baselines.
#   stage 1: train it on TIMIT train (dev: TIMIT dev) and one SER fold's train set (dev: its valid set)
#            -> EXP_DIR/final.pt; skipped when up to date (EXP_DIR/final.stamp), resumed when killed
#   stage 2: its single-task views, ordinary ConvNet packages: EXP_DIR/asr/final.pt (+ prior_counts) and
#            EXP_DIR/ser/foldK/final.pt
#   stage 3: hybrid decoding of TIMIT dev and test with the ASR view: EXP_DIR/asr/decode_{dev,test} (FER, PER;
#            the LM weight chosen on dev), as exp/convnet_asr
#   stage 4: E/UE of the SER view on the fold's Dev (valid) and Test sets: EXP_DIR/ser/foldK/eval, as exp/ser
#   stage 5: EXP_DIR/results.md: one line per task, joint against the single-task Baselines
#            (pyscripts/joint_results.py)
# Each task's input is normalised as its Baseline's (joint.normalise per_task): ASR with the global CMVN
# stats of stage 9 (--asr-cmvn-stats), SER with its training frames' statistics (as stage 11).
# One joint training per fold would follow the SER protocol; one fold (--fold) keeps the cost to one training.
set -euo pipefail

stage=1
stop_stage=5
train_config=conf/convnet_joint.yaml
overrides=                       # config overrides, e.g. "joint.ser_weight=0.5 training.max_epochs=5"
fold=1                           # the SER fold whose train/valid/test sets are used
device=auto                      # auto | cpu | cuda (training and the decoding forward pass)
num_threads=0                    # torch CPU threads of the training; 0: torch's default
force=false                      # true: train afresh even when final.pt is up to date
nj=4                             # decoding jobs
rule=mean                        # SER utterance decision: mean | vote
# --timit-data, --asr-{train,dev,test}-targets, --asr-cmvn-stats (the ASR input's normalisation, as the ASR
# Baseline's; '': the TIMIT training frames'), --graph-dir, --ser-data, --ser-targets:
. local/layout.sh                # the recipe's layout
decode_conf=conf/decode.conf     # decoding and scoring settings (as run.sh's stages 8 and 10)
asr_baseline=exp/convnet_asr     # the single-task Baselines of the comparison (stages 9-10 and 11 of run.sh)
ser_baseline=exp/ser

help_message="Usage: $0 [options] EXP_DIR
  e.g. $0 --train-config conf/convnet_joint_demo.yaml exp/joint
Options (defaults in brackets):
  --stage N / --stop-stage M     run stages N..M of 1..5 [$stage..$stop_stage]
  --train-config FILE            joint training YAML [$train_config]
  --overrides 'K=V ...'          config overrides
  --fold K                       the SER fold to train and evaluate on [$fold]
  --device auto|cpu|cuda         [$device]
  --num-threads N                torch threads of the training (0: torch's default) [$num_threads]
  --force true|false             train afresh even when final.pt is up to date [$force]
  --nj N                         decoding jobs [$nj]
  --decode-conf FILE             decoding and scoring settings [$decode_conf]
  --rule mean|vote               SER utterance decision [$rule]
  --timit-data DIR --asr-train-targets DIR --asr-dev-targets DIR --asr-test-targets DIR --graph-dir DIR
                                 ASR data [$timit_data, $asr_train_targets, $asr_dev_targets, $asr_test_targets, $graph_dir]
  --asr-cmvn-stats FILE          global CMVN stats of the ASR input ('': its frames' statistics) [$asr_cmvn_stats]
  --ser-data DIR --ser-targets DIR   SER folds [$ser_data/folds, $ser_targets]
  --asr-baseline DIR --ser-baseline DIR   single-task models to compare with [$asr_baseline, $ser_baseline]"

. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
. utils/stage.sh
. utils/stamp.sh
if [[ $# -ne 1 ]]; then echo -e "$help_message" >&2; exit 1; fi
exp=$1
folds=$ser_data/folds
ser_view=$exp/ser/fold$fold
summary() {  # summary EXP_DIR: one line from the train_summary of the joint training
  awk -F= '{ v[$1] = $2 } END { printf "  %s: %.0f s, %d epochs (%s); best dev epoch %d: ASR AvgLoss %s FER %.2f%%, " \
    "SER AvgLoss %s FER %.2f%%\n", d, v["seconds"], v["epochs"], v["stop"], v["best_epoch"], v["asr_dev_loss"], \
    100 * v["asr_dev_fer"], v["ser_dev_loss"], 100 * v["ser_dev_fer"] }' d="$1" "$1/train_summary"
}

if stage_selected 1; then
  for f in "$timit_data"/{train,dev}/feats.scp "$asr_train_targets/targets.scp" "$asr_dev_targets/targets.scp" \
           "$folds/fold$fold"/{train,valid}/feats.scp "$ser_targets/fold$fold"/{train,valid}/targets.scp; do
    [[ -f $f ]] || die "no such file $f"
  done
  log "stage 1: the joint model $exp with $train_config, fold $fold"
  # The one training entry: it skips an up-to-date final.pt, resumes a killed run, and logs to $exp/log/train.log.
  steps/train_convnet.sh --cmd "$cuda_cmd" --train-config "$train_config" --overrides "$overrides" \
    --device "$device" --num-threads "$num_threads" --force "$force" --cmvn-stats "$asr_cmvn_stats" \
    "$timit_data/train" "$timit_data/dev" "$asr_train_targets" "$asr_dev_targets" \
    "$folds/fold$fold/train" "$folds/fold$fold/valid" "$ser_targets/fold$fold/train" "$ser_targets/fold$fold/valid" \
    "$exp"
  summary "$exp"
fi

if stage_selected 2 "single-task views of $exp/final.pt"; then
  [[ -f $exp/final.pt ]] || die "no $exp/final.pt: run stage 1"
  for view in "asr $exp/asr" "ser $ser_view"; do
    read -r head dir <<< "$view"
    out_of_date "$dir" "$dir/view.stamp" --named joint_model "$exp/final.pt" --option "head=$head" \
      --output "$dir/final.pt" || continue
    python3 -m pyscripts.nnet.joint view "$exp/final.pt" "$head" "$dir"
    python3 -m pyscripts.fingerprint commit "$dir/view.stamp"
  done
fi

if stage_selected 3 "hybrid decoding of $timit_data/{dev,test} with the ASR view"; then
  [[ -f $exp/asr/final.pt ]] || die "no $exp/asr/final.pt: run stage 2"
  steps/decode_dev_test.sh --nj "$nj" --cmd "$decode_cmd" --device "$device" --decode-conf "$decode_conf" \
    --force "$force" "$graph_dir" "$timit_data" "$asr_dev_targets" "$asr_test_targets" "$exp/asr"
fi

if stage_selected 4 "E/UE of the SER view on fold $fold's Dev and Test ($rule rule)"; then
  [[ -f $ser_view/final.pt ]] || die "no $ser_view/final.pt: run stage 2"
  python3 -m pyscripts.ser.evaluate fold --rule "$rule" --num-threads "$(( num_threads > 0 ? num_threads : 1 ))" \
    "$exp/ser" "$folds" "$ser_targets" "$fold"
fi

if stage_selected 5 "comparison with the single-task Baselines ($asr_baseline, $ser_baseline/fold$fold)"; then
  python3 -m pyscripts.joint_results --fold "$fold" "$exp" "$asr_baseline" "$ser_baseline"
fi
