#!/usr/bin/env bash
# Trains the paper's ConvNet on frame targets (pyscripts/nnet/train.py, the one training entry) through
# $cuda_cmd: one network (5 arguments), or the joint ASR-SER model with a joint config (9 arguments:
# the ASR and the SER train/dev data and targets dirs, then EXP_DIR; local/run_joint.sh).
# Skips the job when EXP_DIR/final.pt is up to date (EXP_DIR/final.stamp: checksums of the config,
# features, targets, CMVN stats and source model it was trained on), trains it again when one of them
# changed; a killed job resumes from EXP_DIR/checkpoint.pt.
set -euo pipefail

cmd=${cuda_cmd:-run.pl}
train_config=conf/convnet_asr.yaml
overrides=                # space-separated KEY=VALUE config overrides, e.g. "optimizer.lr=0.01 training.max_epochs=5"
num_gpus=1                # >1: torchrun with one process per GPU (DistributedDataParallel)
num_threads=0             # CPU threads for torch; 0: torch's default
device=auto               # auto | cpu | cuda
init_from=                # transfer: a final.pt whose layers 1..5 initialise the model (layer 6 is fresh)
freeze_layers=            # keep layers 1..l of --init-from fixed (empty: the config's init.freeze_layers)
reinit_unfrozen=false     # true: draw layers l+1..5 afresh instead of fine-tuning them
seed_offset=0             # K: train with the config's training.seed + K (another draw of the same training)
cmvn_stats=               # Kaldi global CMVN stats (joint: of the ASR input); empty: the training frames' mean/variance
force=false               # true: train afresh even when final.pt is up to date

help_message="Usage: $0 [options] TRAIN_DATA DEV_DATA TRAIN_TARGETS DEV_TARGETS EXP_DIR
       $0 --train-config JOINT_CONFIG [options] ASR_TRAIN_DATA ASR_DEV_DATA ASR_TRAIN_TARGETS ASR_DEV_TARGETS \\
         SER_TRAIN_DATA SER_DEV_DATA SER_TRAIN_TARGETS SER_DEV_TARGETS EXP_DIR
  e.g. $0 data/timit/train data/timit/dev exp/timit/mono_ali_train exp/timit/mono_ali_dev exp/timit/convnet
Data dirs need feats.scp; targets dirs need targets.scp (int32 frame-target vectors) and num_targets.
Options:
  --cmd CMD              job runner (default: \$cuda_cmd)
  --train-config FILE    training YAML (default: $train_config)
  --overrides 'K=V ...'  config overrides
  --num-gpus N           GPUs (with --device cpu: processes); N > 1 runs torchrun (default: $num_gpus)
  --num-threads N        CPU threads (default: torch's choice)
  --device DEV           auto|cpu|cuda (default: $device)
  --init-from MODEL      initialise layers 1..5 from MODEL
  --freeze-layers L      keep layers 1..L of MODEL fixed (default: the config's, 0)
  --reinit-unfrozen B    true: layers L+1..5 freshly drawn (default: $reinit_unfrozen)
  --seed-offset K        train with the config's training.seed + K (default: $seed_offset)
  --cmvn-stats FILE      global CMVN stats instead of the training frames' statistics
  --force B              true: train afresh even when final.pt is up to date (default: $force)"

. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 5 && $# -ne 9 ]]; then echo -e "$help_message" >&2; exit 1; fi
inputs=("${@:1:$#-1}") dir=${!#}   # the data and targets dirs (4, or 8 for the joint model), then EXP_DIR

for (( i = 0; i < ${#inputs[@]}; i += 4 )); do
  data_files=("${inputs[i]}/feats.scp" "${inputs[i+1]}/feats.scp")
  for targets in "${inputs[i+2]}" "${inputs[i+3]}"; do data_files+=("$targets/targets.scp" "$targets/num_targets"); done
  for f in "${data_files[@]}"; do [[ -f $f ]] || die "no such file $f"; done
done
[[ -f $train_config ]] || die "no such file $train_config"
[[ -z $cmvn_stats || -f $cmvn_stats ]] || die "no such file $cmvn_stats (--cmvn-stats)"
[[ -z $init_from || -f $init_from ]] || die "no such model $init_from (--init-from)"

args=(--config "$train_config" --device "$device")
for kv in $overrides; do args+=(--set "$kv"); done
[[ -n $init_from ]] && args+=(--init-from "$init_from")
[[ -n $freeze_layers ]] && args+=(--freeze-layers "$freeze_layers")
[[ $reinit_unfrozen == true ]] && args+=(--reinit-unfrozen)
(( seed_offset != 0 )) && args+=(--seed-offset "$seed_offset")
[[ -n $cmvn_stats ]] && args+=(--cmvn-stats "$cmvn_stats")
[[ $num_threads -gt 0 ]] && args+=(--num-threads "$num_threads")
args+=("${inputs[@]}" "$dir")

if [[ $force == true ]]; then
  args=(--force "${args[@]}")
elif [[ -f $dir/final.pt ]]; then
  status=$(python3 -m pyscripts.nnet.train --check "${args[@]}")
  if [[ $status == up-to-date ]]; then log "$dir/final.pt is up to date, skipping"; exit 0; fi
  log "$dir/final.pt is out of date ($status): training it again"
fi

# What the job asks the runner for: CPUs for --num-threads threads per process (a scheduler's business;
# run.pl ignores it), and GPUs as --device says: cuda: --num-gpus; cpu: none (--gpu 0, after $cmd's
# own options, wins over them); auto: --num-gpus when > 1, else what $cmd asks for (cmd.sh: cuda_cmd=
# "run.pl --gpu 1", a GPU of its own per job where there are GPUs; "slurm.pl --gpu 1" on a GPU partition).
res_opts=(--num-threads $(( (num_threads > 0 ? num_threads : 1) * num_gpus )))
case $device in
  cuda) res_opts+=(--gpu "$num_gpus") ;;
  cpu) res_opts+=(--gpu 0) ;;
  auto) [[ $num_gpus -gt 1 ]] && res_opts+=(--gpu "$num_gpus") ;;
  *) die "--device must be auto, cpu or cuda, not '$device'" ;;
esac

mkdir -p "$dir/log"
if [[ $num_gpus -gt 1 ]]; then
  launcher=(torchrun --standalone --nproc_per_node "$num_gpus" -m pyscripts.nnet.train)
else
  launcher=(python3 -m pyscripts.nnet.train)
fi
log "training $dir (log: $dir/log/train.log)"
# The job runner truncates its log: a resumed training keeps what the earlier runs logged in front of it.
train_log=$dir/log/train.log
if [[ -f $dir/checkpoint.pt && -f $train_log ]]; then cat "$train_log" >> "$train_log.earlier"; fi
rc=0; $cmd "${res_opts[@]}" "$train_log" "${launcher[@]}" "${args[@]}" || rc=$?
if [[ -f $train_log.earlier ]]; then
  cat "$train_log.earlier" "$train_log" > "$train_log.tmp" && mv "$train_log.tmp" "$train_log" && rm "$train_log.earlier"
fi
# Dropped utterances: say so here, not only in the log (train_summary does not count them).
grep -E "have no targets" "$train_log" | tail -n 2 >&2 || true
# what train.py wrote beside final.pt (the joint model's summary is local/run_joint.sh's)
if [[ $rc -eq 0 && ${#inputs[@]} -eq 4 ]]; then utils/train_summary.sh "$dir"; fi
# A picture of the curves (history.tsv -> curves.png); a failure to draw does not fail the training.
if [[ $rc -eq 0 ]]; then python3 -m pyscripts.nnet.curves "$dir" 2> "$dir/log/curves.log" || error "no $dir/curves.png: see $dir/log/curves.log"; fi
exit $rc
