#!/usr/bin/env bash
# Export a trained ConvNet for use outside the recipe (pyscripts/nnet/export.py): OUT_DIR/model.ts
# (TorchScript), OUT_DIR/model.onnx, OUT_DIR/model_card.json (features, context, CMVN, classes or pdfs,
# log priors, the acoustic scale chosen on dev, training data and results) and the feature/VAD confs.
# The exported graph maps raw fbank frames (T, n_mels) to log-posteriors per frame. Run it with
#   python3 -m pyscripts.nnet.export infer OUT_DIR WAV...
# which reads nothing but OUT_DIR. Needs the onnx and onnxruntime pins of requirements.txt (--no-onnx: not).
set -euo pipefail

task=                 # asr|ser for a single-task model; default: guessed (5 outputs = SER)
ali_dir=              # ASR: the alignment dir of its targets (e.g. exp/mono_ali), to name the pdfs' phones
phone_map=conf/phones.60-48-39.map
vad_config=conf/vad.conf
no_onnx=false

help_message="Usage: $0 [options] MODEL_DIR OUT_DIR
  e.g. $0 --ali-dir exp/mono_ali exp/convnet_asr exp/export/convnet_asr
       $0 exp/ser/fold1 exp/export/ser_fold1
       $0 exp/joint exp/export/joint
Options (defaults in brackets):
  --task asr|ser       of a single-task model [guessed: 5 outputs = SER]
  --ali-dir DIR        ASR: alignment dir (final.mdl, phones.txt) to name each pdf's phone [none]
  --phone-map FILE     with --ali-dir: 60-48-39 folding [$phone_map]
  --vad-config FILE    SER: speech detector of the utterance decision [$vad_config]
  --no-onnx true       TorchScript only [$no_onnx]"

. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 2 ]]; then echo -e "$help_message" >&2; exit 1; fi
model_dir=$1
out_dir=$2

opts=(--vad-config "$vad_config")
[[ -n $task ]] && opts+=(--task "$task")
[[ -n $ali_dir ]] && opts+=(--ali-dir "$ali_dir" --phone-map "$phone_map")
[[ $no_onnx == true ]] && opts+=(--no-onnx)
python3 -m pyscripts.nnet.export export "${opts[@]}" "$model_dir" "$out_dir"
echo "$0: exported $model_dir to $out_dir (run: python3 -m pyscripts.nnet.export infer $out_dir WAV...)"
