#!/usr/bin/env bash
# Speech emotion recognition stages on IEMOCAP with the shared ConvNet. Needs the data prep
# (DATA_DIR/all with utt2emo, the fold plan) and fbank features of DATA_DIR/all.
#   stage 1: frame targets: emotion per frame, sil where the voicing/energy detector finds no speech
#   stage 2: folds: per-fold train/valid/test data dirs (with features) and targets subsets
#   stage 3: train one ConvNet per fold, all folds as parallel jobs through $cuda_cmd
#   stage 4: evaluate each fold on Dev (its valid set) and Test (its held-out speakers)
#   stage 5: tables: E/UE per fold and averaged, paper-style Markdown in EXP_DIR/results.md, and the
#            same with 95% bootstrap intervals (utterances resampled within speakers, pyscripts/ser/intervals.py)
set -euo pipefail

stage=1
stop_stage=5
nj=4                           # jobs of the frame-label stage
train_config=conf/convnet_ser.yaml
overrides=                     # training config overrides, e.g. "training.max_epochs=5"
num_threads=1                  # torch CPU threads per fold job (the folds already run in parallel)
device=auto                    # auto | cpu | cuda: cuda asks the scheduler for a GPU per fold job, cpu for
                               # none, auto leaves it to $cuda_cmd (cmd.sh)
max_jobs_run=0                 # at most this many fold jobs at once (0: all)
rule=mean                      # utterance decision: mean posterior over speech frames | vote
fold_conf=                     # fold plan; default: local/ser_make_folds.sh's (the paper's protocol)
fbank_config=conf/fbank.conf
vad_config=conf/vad.conf

help_message="Usage: $0 [options] DATA_DIR EXP_DIR
  e.g. $0 data/iemocap exp/ser
Options:
  --stage N / --stop-stage M   run stages N..M of 1..5 (default $stage..$stop_stage)
  --nj N                       jobs for the frame labels (default $nj)
  --train-config FILE          training YAML (default $train_config)
  --overrides 'K=V ...'        training config overrides
  --num-threads N              torch threads per fold job (default $num_threads)
  --device auto|cpu|cuda       where the fold jobs train (default $device; see above)
  --max-jobs-run N             concurrent fold jobs, 0 = all (default $max_jobs_run)
  --rule mean|vote             utterance decision rule (default $rule)
  --fold-conf FILE             fold plan: conf/iemocap_folds[_loso10|_superb].conf (default: the paper's)
  --fbank-config FILE / --vad-config FILE   framing of the features / the speech-frame detector"

. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
. utils/stage.sh
if [[ $# -ne 2 ]]; then echo -e "$help_message" >&2; exit 1; fi
data=$1
exp=$2
targets=$exp/targets

jobs_opt=()
(( max_jobs_run > 0 )) && jobs_opt=(--max-jobs-run "$max_jobs_run")
num_folds() { wc -l < "$data/folds/plan"; }

if stage_selected 1 "frame targets (emotion + sil) of $data/all"; then
  local/ser_frame_labels.sh --nj "$nj" --cmd "$train_cmd" --fbank-config "$fbank_config" \
    --vad-config "$vad_config" "$data/all" "$targets/all"
fi

if stage_selected 2 "folds"; then
  local/ser_make_folds.sh ${fold_conf:+--fold-conf "$fold_conf"} "$data" "$targets"
fi

if stage_selected 3; then
  n=$(num_folds)
  log "stage 3: training $n folds with $train_config (logs: $exp/log/train.*.log, $exp/fold*/log/train.log)"
  # The fold jobs are the parallel jobs; each runs the shared training stage locally inside its job.
  res_opts=(--num-threads "$num_threads")   # CPUs per job; GPUs as --device says
  case $device in cuda) res_opts+=(--gpu 1) ;; cpu) res_opts+=(--gpu 0) ;; esac
  $cuda_cmd "${jobs_opt[@]}" "${res_opts[@]}" JOB=1:"$n" "$exp/log/train.JOB.log" \
    local/ser_train_fold.sh --cmd run.pl --train-config "$train_config" --overrides "$overrides" \
      --num-threads "$num_threads" --device "$device" "$data/folds" "$targets" "$exp" JOB
  fold_dirs=(); for k in $(seq "$n"); do fold_dirs+=("$exp/fold$k"); done
  utils/train_summary.sh "${fold_dirs[@]}"
fi

if stage_selected 4; then
  n=$(num_folds)
  log "stage 4: evaluating $n folds on Dev (valid) and Test ($rule rule)"
  $train_cmd "${jobs_opt[@]}" JOB=1:"$n" "$exp/log/eval.JOB.log" \
    python3 -m pyscripts.ser.evaluate fold --rule "$rule" --num-threads "$num_threads" \
      "$exp" "$data/folds" "$targets" JOB
fi

if stage_selected 5 "results"; then
  n=$(num_folds)
  fold_dirs=(); for k in $(seq "$n"); do fold_dirs+=("$exp/fold$k"); done
  python3 -m pyscripts.ser.evaluate table --label Baseline "$exp" "${fold_dirs[@]}"
  log "tables in $exp/results.md; confusion matrices in $exp/fold*/eval/{valid,test}/confusion.txt"
fi
