#!/usr/bin/env bash
# Emotion of audio file(s) with the SER ConvNet of one fold (pyscripts/infer.py): fbank features with
# the fbank conf, frame posteriors, speech frames from the detector of the vad conf, and the utterance
# decision (mean emotion posterior over speech frames). Inputs: audio files (SPHERE, wav, FLAC, OGG,
# MP3, ...; any rate and channel count) or scp:WAV_SCP lists. Prints (--format text): NAME EMOTION
# POSTERIOR, all four emotions' posteriors and the number of speech frames; --format json adds, for
# files over --long-file seconds, the emotion of each speech segment.
set -euo pipefail

fold=1
exp_dir=exp/ser
model=                         # a final.pt; overrides --fold/--exp-dir
rule=mean                      # mean | vote
format=text                    # text | json
long_file=10                   # seconds: longer files also get the emotion per speech segment (json)
fbank_config=conf/fbank.conf
vad_config=conf/vad.conf

help_message="Usage: $0 [options] INPUT [INPUT ...]     (INPUT: an audio file or scp:WAV_SCP)
  e.g. $0 --fold 3 corpora/demo/iemocap/Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav
Options:
  --fold K               use EXP_DIR/foldK/final.pt (default $fold)
  --exp-dir DIR          SER experiment dir (default $exp_dir)
  --model FILE           use this model instead
  --rule mean|vote       utterance decision rule (default $rule)
  --format text|json     output format (default $format)
  --long-file S          files over S seconds get the emotion per speech segment (json; default $long_file)
  --fbank-config FILE    features as in training (default $fbank_config)
  --vad-config FILE      speech-frame detector (default $vad_config)"

. ./path.sh
. utils/parse_options.sh
if [[ $# -lt 1 ]]; then echo -e "$help_message" >&2; exit 1; fi
model=${model:-$exp_dir/fold$fold/final.pt}
[[ -f $model ]] || die "no model $model; train the SER folds first (local/run_ser.sh)"

python3 -m pyscripts.infer emotion --model "$model" --fbank-config "$fbank_config" --vad-config "$vad_config" \
  --rule "$rule" --format "$format" --long-file "$long_file" "$@"
