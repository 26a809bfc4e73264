#!/usr/bin/env bash
# Hybrid ASR-SER inference (the paper's first figure): for each input, the recognised 39-phone sequence
# (ASR ConvNet + HCLG decoding) with phone times, and the utterance emotion with its posteriors (SER
# ConvNet), by pyscripts/infer.py. Inputs: audio files (SPHERE, wav, FLAC, OGG, MP3, ...; any rate and
# channel count) or scp:WAV_SCP lists. The acoustic scale is --acwt, else the one the dev scoring chose
# for the ASR model (ASR_DIR/decode_dev/scoring/result.json), else the decode conf's; the beam is --beam,
# else the decode conf's.
# With --joint-dir, one network does both: the joint ASR-SER ConvNet of local/run_joint.sh (its
# JOINT_DIR/final.pt) gives phones and emotion from its two output layers in one forward pass; the acwt
# then comes from JOINT_DIR/asr/decode_dev.
set -euo pipefail

asr_dir=exp/convnet_asr                 # the ASR ConvNet: ASR_DIR/final.pt (stage 9)
ser_model=exp/ser/fold1/final.pt        # an SER ConvNet (stage 11)
joint_dir=                              # the joint model instead (stage 13, e.g. exp/joint): replaces the two above
graph_dir=exp/mono/graph
decode_config=conf/decode.conf
acwt=                       # default: from ASR_DIR/decode_dev/scoring/result.json, else the decode conf's
beam=                       # default: the decode conf's
format=text                 # text | json | ctm
long_file=10                # seconds: longer files also get the emotion per speech segment (json)
rule=mean
fbank_config=conf/fbank.conf
vad_config=conf/vad.conf

help_message="Usage: $0 [options] INPUT [INPUT ...]     (INPUT: an audio file or scp:WAV_SCP)
  e.g. $0 corpora/demo/timit/TEST/DR1/FAKS0/SA1.WAV
Options (defaults in brackets):
  --asr-dir DIR        ASR model dir with final.pt [$asr_dir]
  --ser-model FILE     SER model [$ser_model]
  --joint-dir DIR      instead of the two: the joint ASR-SER model DIR/final.pt (local/run_joint.sh) [none]
  --graph-dir DIR      decoding graph (HCLG.fst, words.txt, phones.txt; ../final.mdl) [$graph_dir]
  --acwt X             acoustic scale [from the dev scoring, else $decode_config's]
  --beam X             decoding beam [$decode_config's]
  --decode-config FILE decoding settings [$decode_config]
  --format F           text | json | ctm [$format]
  --long-file S        files over S seconds get the emotion per speech segment (json) [$long_file]
  --rule mean|vote     SER utterance decision [$rule]
  --fbank-config FILE / --vad-config FILE   [$fbank_config, $vad_config]"

. ./path.sh
. utils/parse_options.sh
if [[ $# -lt 1 ]]; then echo -e "$help_message" >&2; exit 1; fi

models=(--asr-model "$asr_dir/final.pt" --ser-model "$ser_model")
if [[ -n $joint_dir ]]; then
  [[ -f $joint_dir/final.pt ]] || die "no $joint_dir/final.pt: train the joint model first (local/run_joint.sh)"
  models=(--joint-model "$joint_dir/final.pt")
  asr_dir=$joint_dir/asr   # its ASR view, decoded by local/run_joint.sh: the dev-chosen acwt
fi
search=(--decode-config "$decode_config" --tune-dir "$asr_dir/decode_dev")
if [[ -n $acwt ]]; then search+=(--acwt "$acwt"); fi
if [[ -n $beam ]]; then search+=(--beam "$beam"); fi
python3 -m pyscripts.infer hybrid "${models[@]}" --graph-dir "$graph_dir" "${search[@]}" \
  --format "$format" --long-file "$long_file" --rule "$rule" \
  --fbank-config "$fbank_config" --vad-config "$vad_config" "$@"
