#!/usr/bin/env bash
# The paper's transfer-learning sweeps between ASR (TIMIT) and SER (IEMOCAP). First, at any stage, the
# plan of each direction, EXP_ROOT/{ser2asr,asr2ser}/plan (pyscripts/transfer/plan.py: one line per
# training; the report reads them too). The trainings run as a $cuda_cmd job array (local/transfer_job.sh
# train), one job per training except the rows l >= 2 of a fold, which share their frozen layers' outputs
# in one job; a training whose EXP_DIR/final.pt is up to date (its final.stamp) is not re-run, so the
# script can be re-started at any stage. Every row normalises its input as its Baseline: SER -> ASR with
# --asr-cmvn-stats (stage 9's), ASR -> SER with its fold's training frames' statistics (stage 11's).
#   stage 1: baselines, trained from scratch: ASR (the ser2asr Baseline row, and the asr2ser source)
#            and SER on every fold (the asr2ser Baseline row; fold --ser-source-fold is the ser2asr source);
#            --asr-baseline/--ser-baseline link models already trained with the same configs instead
#            (a linked model is never trained here)
#   stage 2: SER -> ASR: l = 5..0, layers 1..l of the SER model frozen, l+1..5 fine-tuned, layer 6 fresh
#   stage 3: decode and score every SER -> ASR model on TIMIT dev and test (FER, PER)
#   stage 4: ASR -> SER: l = 5..0 on every fold
#   stage 5: E and UE of every ASR -> SER model on its fold's Dev and Test speakers (one job per fold)
#   stage 6: the report (local/make_report.sh): tables, curves, filters, CKA/SVCCA/PWCCA, linear probes
# With --reinit-unfrozen true, layers l+1..5 are drawn afresh instead (Yosinski et al. 2014), in
# exp/transfer_reinit by default. With --seeds N every row (baselines included) is trained N times with
# training.seed + 0..N-1 (seed k in ROW.seedK/), and the tables give the mean and the sd across seeds.
set -euo pipefail

stage=1
stop_stage=6
exp_root=                        # default: exp/transfer, or exp/transfer_reinit with --reinit-unfrozen true
reinit_unfrozen=false
asr_config=conf/convnet_asr.yaml # training YAML of ASR targets (ser2asr jobs and the ASR baseline)
ser_config=conf/convnet_ser.yaml # training YAML of SER targets (asr2ser jobs and the SER baselines)
overrides=                       # config overrides for every training, e.g. "training.max_epochs=5"
# --timit-data, --asr-{train,dev,test}-targets, --asr-cmvn-stats (the ASR Baseline's input normalisation, for
# every ser2asr training; '': each training's own frames'), --graph-dir, --ser-data, --ser-targets:
. local/layout.sh                # the recipe's layout
asr_baseline=                    # an ASR model dir trained with --asr-config (e.g. exp/convnet_asr): the
                                 # ser2asr Baseline row, linked instead of trained
ser_baseline=                    # a dir of SER models fold<k>/ trained with --ser-config (e.g. exp/ser): the
                                 # asr2ser Baseline row, linked instead of trained
asr_source=                      # source model of asr2ser; default: the ASR baseline of stage 1
ser_source=                      # source model of ser2asr; default: the SER baseline of --ser-source-fold
ser_source_fold=fold1
folds=                           # comma-separated folds for asr2ser (default: all of the fold plan)
layers=                          # comma-separated l to run, e.g. 3,0 for a smoke test (default: 5..0)
seeds=1                          # trainings per row (and fold), each with another training.seed
num_threads=1                    # torch CPU threads per training job
device=auto                      # auto | cpu | cuda: cuda asks the scheduler for a GPU per training job,
                                 # cpu for none, auto leaves it to $cuda_cmd (cmd.sh)
max_jobs_run=2                   # trainings at once (0: all); on a GPU box, as many as fit
decode_nj=4                      # parallel decoding jobs per set
decode_conf=conf/decode.conf     # decoding and scoring settings (as run.sh's stages 8 and 10)
decode_opts=                     # more options of steps/decode_hybrid.sh, e.g. "--beam 15"
rule=mean                        # SER utterance decision rule
report_dir=                      # default: exp/report, or exp/report_reinit with --reinit-unfrozen true
report_opts=                     # more options of local/make_report.sh, e.g. "--probes false --cca false"

help_message="Usage: $0 [options]
  e.g. $0 --stage 2 --max-jobs-run 4
Runs in the recipe dir after the ASR (alignment targets, decoding graph) and SER (folds, targets) stages.
Options (defaults in brackets):
  --stage N / --stop-stage M       stages N..M of 1..6 [$stage..$stop_stage]
  --reinit-unfrozen true|false     draw layers l+1..5 afresh instead of fine-tuning them [$reinit_unfrozen]
  --exp-root DIR                   [exp/transfer or exp/transfer_reinit]
  --asr-config FILE / --ser-config FILE   training YAMLs [$asr_config, $ser_config]
  --overrides 'K=V ...'            training config overrides for all jobs
  --timit-data DIR                 [$timit_data]
  --asr-train-targets DIR / --asr-dev-targets DIR / --asr-test-targets DIR
                                   [$asr_train_targets, $asr_dev_targets, $asr_test_targets]
  --asr-cmvn-stats FILE            global CMVN stats of the SER -> ASR trainings, as the ASR Baseline's
                                   ('': their own frames' statistics) [$asr_cmvn_stats]
  --graph-dir DIR                  decoding graph [$graph_dir]
  --ser-data DIR / --ser-targets DIR   [$ser_data, $ser_targets]
  --asr-baseline DIR / --ser-baseline DIR   reuse these baselines (trained with the same configs)
  --asr-source MODEL / --ser-source MODEL / --ser-source-fold F   source models [the baselines; $ser_source_fold]
  --folds LIST                     asr2ser on these folds only, e.g. fold1,fold2 [all]
  --layers LIST                    these rows l only, e.g. 3,0 [5,4,3,2,1,0]
  --seeds N                        trainings per row, each with another seed: mean and sd across seeds [$seeds]
  --num-threads N                  torch threads per job [$num_threads]
  --device auto|cpu|cuda           where the trainings run [$device]
  --max-jobs-run N                 concurrent trainings, 0 = all [$max_jobs_run]
  --decode-nj N                    decoding jobs per set [$decode_nj]
  --decode-conf FILE               decoding and scoring settings [$decode_conf]
  --decode-opts 'OPTS'             more options of steps/decode_hybrid.sh
  --rule mean|vote                 SER utterance decision [$rule]
  --report-dir DIR                 [exp/report or exp/report_reinit]
  --report-opts 'OPTS'             more options of local/make_report.sh, e.g. '--probe-frames 1000'"

. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
. utils/stage.sh
if [[ $# -ne 0 ]]; then echo -e "$help_message" >&2; exit 1; fi
suffix=; [[ $reinit_unfrozen == true ]] && suffix=_reinit
exp_root=${exp_root:-exp/transfer$suffix}
report_dir=${report_dir:-exp/report$suffix}
plan_opts=(--exp-root "$exp_root" --asr-train-data "$timit_data/train" --asr-dev-data "$timit_data/dev"
           --asr-train-targets "$asr_train_targets" --asr-dev-targets "$asr_dev_targets"
           --asr-cmvn-stats "$asr_cmvn_stats" --ser-folds-dir "$ser_data/folds" --ser-targets-dir "$ser_targets"
           --asr-source "$asr_source" --ser-source "$ser_source" --ser-source-fold "$ser_source_fold"
           --folds "$folds" --layers "$layers" --seeds "$seeds")
[[ $reinit_unfrozen == true ]] && plan_opts+=(--reinit-unfrozen)
limit_opts=()
(( max_jobs_run > 0 )) && limit_opts=(--max-jobs-run "$max_jobs_run")

# plan_fields ARRAY [fields options] PLAN KEY: sets the array named ARRAY to the answers of
# pyscripts/transfer/plan.py fields, one element per line (it alone parses the plans).
plan_fields() {
  local -n _values=$1
  local answer; answer=$(python3 -m pyscripts.transfer.plan fields "${@:2}")
  _values=()
  [[ -z $answer ]] || mapfile -t _values <<< "$answer"
}

# train_jobs DIRECTION WHICH CONFIG [--linked-baseline]: runs the plan's WHICH trainings as one job array
# (one job per group of trainings that share frozen layers, see pyscripts/transfer/plan.py), reports their times.
train_jobs() {
  local direction=$1 which=$2 config=$3 dir=$exp_root/$1
  python3 -m pyscripts.transfer.plan groups --which "$which" "${@:4}" "$dir/plan" "$dir/groups.$which"
  local n; n=$(wc -l < "$dir/groups.$which")
  if (( n == 0 )); then return 0; fi
  log "$direction $which: $(wc -w < "$dir/groups.$which") trainings in $n jobs with $config" \
      "(logs: $dir/log/train.$which.*.log)"
  local res_opts=(--num-threads "$num_threads")   # CPUs per job; GPUs as --device says
  case $device in cuda) res_opts+=(--gpu 1) ;; cpu) res_opts+=(--gpu 0) ;; esac
  $cuda_cmd "${limit_opts[@]}" "${res_opts[@]}" JOB=1:"$n" "$dir/log/train.$which.JOB.log" \
    local/transfer_job.sh --train-config "$config" --overrides "$overrides" --num-threads "$num_threads" \
      --device "$device" train "$dir/plan" "$dir/groups.$which" JOB
  local exp_dirs=(); plan_fields exp_dirs --lines "$(< "$dir/groups.$which")" "$dir/plan" exp_dir
  utils/train_summary.sh "${exp_dirs[@]}"
}

# link_baseline SRC DEST: DEST becomes a relative link to an already trained baseline SRC.
link_baseline() {
  [[ -d $1 ]] || die "baseline $1 does not exist"
  if [[ -e $2 && ! -L $2 ]]; then die "$2 is a baseline trained here; remove it to use $1 instead"; fi
  mkdir -p "$(dirname "$2")"
  ln -sfnr "$1" "$2"
}

for direction in ser2asr asr2ser; do
  python3 -m pyscripts.transfer.plan write --direction "$direction" "${plan_opts[@]}" "$exp_root/$direction/plan"
done

if stage_selected 1 "baselines from scratch: ASR, and SER on every fold"; then
  # A linked baseline is a finished model of another stage: never trained (or re-trained) here.
  # Its other seeds are trained here.
  linked=()
  if [[ -n $asr_baseline ]]; then link_baseline "$asr_baseline" "$exp_root/ser2asr/baseline"; linked=(--linked-baseline); fi
  train_jobs ser2asr baseline "$asr_config" "${linked[@]}"
  linked=()
  if [[ -n $ser_baseline ]]; then link_baseline "$ser_baseline" "$exp_root/asr2ser/baseline"; linked=(--linked-baseline); fi
  train_jobs asr2ser baseline "$ser_config" "${linked[@]}"
fi

if stage_selected 2 "SER -> ASR transfer, l = ${layers:-5..0}"; then
  train_jobs ser2asr transfer "$asr_config"
fi

if stage_selected 3 "decode and score the SER -> ASR models (FER, PER; test at dev's best LM weight)"; then
  exp_dirs=(); plan_fields exp_dirs "$exp_root/ser2asr/plan" exp_dir
  for d in "${exp_dirs[@]}"; do   # each skipped when up to date (its decode.stamp)
    steps/decode_dev_test.sh --nj "$decode_nj" --cmd "$decode_cmd" --num-threads "$num_threads" \
      --decode-conf "$decode_conf" --decode-opts "$decode_opts" \
      "$graph_dir" "$timit_data" "$asr_dev_targets" "$asr_test_targets" "$d" < /dev/null
  done
fi

if stage_selected 4 "ASR -> SER transfer, l = ${layers:-5..0}, on ${folds:-every fold}"; then
  train_jobs asr2ser transfer "$ser_config"
fi

if stage_selected 5 "E and UE of the ASR -> SER models"; then
  folds=(); plan_fields folds --unique "$exp_root/asr2ser/plan" fold
  log "scoring the models of each of ${#folds[@]} folds in one job (logs: $exp_root/asr2ser/log/eval.*.log)"
  $train_cmd "${limit_opts[@]}" JOB=1:"${#folds[@]}" "$exp_root/asr2ser/log/eval.JOB.log" \
    local/transfer_job.sh --rule "$rule" --num-threads "$num_threads" eval "$exp_root/asr2ser/plan" JOB
fi

if stage_selected 6 "report"; then
  # shellcheck disable=SC2086  # report_opts: several options, split on purpose
  local/make_report.sh --exp-root "$exp_root" --ser-folds-dir "$ser_data/folds" \
    --timit-data "$timit_data" --asr-train-targets "$asr_train_targets" --asr-dev-targets "$asr_dev_targets" \
    --ser-targets "$ser_targets" --probe-fold "$ser_source_fold" \
    --cka-data "$timit_data/dev $ser_data/folds/$ser_source_fold/valid" --asr-model "${asr_source:-$exp_root/ser2asr/baseline/final.pt}" \
    --ser-model "${ser_source:-$exp_root/asr2ser/baseline/$ser_source_fold/final.pt}" $report_opts "$report_dir"
fi
log "done (stages $stage..$stop_stage, $exp_root)"
