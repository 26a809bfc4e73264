#!/usr/bin/env bash
# Trains the seed's ConvNet on frame targets (pyscripts/nnet/train.py) through $cuda_cmd.
# Skips the job when EXP_DIR/final.pt exists; a killed job resumes from EXP_DIR/checkpoint.pt.
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
cmvn_stats=               # Kaldi global CMVN stats; empty: normalise with the training frames' mean/variance

help_message="Usage: $0 [options] <train-data> <dev-data> <train-targets> <dev-targets> <exp-dir>
 e.g.: $0 data/timit/train data/timit/dev exp/timit/mono_ali_train exp/timit/mono_ali_dev exp/timit/convnet
Data dirs need feats.scp; targets dirs need targets.scp (int32 frame-target vectors) and num_targets.
Options:
  --cmd CMD              job runner (default: \$cuda_cmd)
  --train-config FILE    training YAML (default: $train_config)
  --overrides 'K=V ...'  config overrides
  --num-gpus N           GPUs; N > 1 runs torchrun (default: $num_gpus)
  --num-threads N        CPU threads (default: torch's choice)
  --device DEV           auto|cpu|cuda (default: $device)
  --init-from MODEL      initialise layers 1..5 from MODEL
  --freeze-layers L      keep layers 1..L of MODEL fixed (default: the config's, 0)
  --reinit-unfrozen B    true: layers L+1..5 freshly drawn (default: $reinit_unfrozen)
  --cmvn-stats FILE      global CMVN stats instead of the training frames' statistics"

. ./path.sh
. utils/parse_options.sh

if [[ $# -ne 5 ]]; then
  echo -e "$help_message" >&2
  exit 1
fi
train_data=$1 dev_data=$2 train_targets=$3 dev_targets=$4 dir=$5

if [[ -f $dir/final.pt ]]; then
  echo "$0: $dir/final.pt exists, skipping (delete it to train again)"
  exit 0
fi
for f in "$train_data/feats.scp" "$dev_data/feats.scp" "$train_targets/targets.scp" \
         "$train_targets/num_targets" "$dev_targets/targets.scp" "$dev_targets/num_targets" "$train_config"; do
  [[ -f $f ]] || { echo "$0: no such file $f" >&2; exit 1; }
done
[[ -z $init_from || -f $init_from ]] || { echo "$0: no such model $init_from (--init-from)" >&2; exit 1; }

args=(--config "$train_config" --device "$device")
for kv in $overrides; do args+=(--set "$kv"); done
[[ -n $init_from ]] && args+=(--init-from "$init_from")
[[ -n $freeze_layers ]] && args+=(--freeze-layers "$freeze_layers")
[[ $reinit_unfrozen == true ]] && args+=(--reinit-unfrozen)
[[ -n $cmvn_stats ]] && args+=(--cmvn-stats "$cmvn_stats")
[[ $num_threads -gt 0 ]] && args+=(--num-threads "$num_threads")
args+=("$train_data" "$dev_data" "$train_targets" "$dev_targets" "$dir")

mkdir -p "$dir/log"
if [[ $num_gpus -gt 1 ]]; then
  launcher=(torchrun --standalone --nproc_per_node "$num_gpus" -m pyscripts.nnet.train)
else
  launcher=(python3 -m pyscripts.nnet.train)
fi
echo "$0: training $dir (log: $dir/log/train.log)"
$cmd --gpu "$num_gpus" "$dir/log/train.log" "${launcher[@]}" "${args[@]}"
grep -E "epoch [0-9]+/[0-9]+: TRAIN|done after" "$dir/log/train.log" | tail -n 3 || true
