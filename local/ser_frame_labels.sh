#!/usr/bin/env bash
# SER frame targets of a data dir (pyscripts/ser/labels.py): every frame gets its utterance's emotion
# (utt2emo), then the voice-activity / voicing detector of conf/vad.conf relabels silent and unvoiced
# frames as sil. Writes a targets dir like an alignment dir: TARGETS_DIR/targets.scp (int32 vectors,
# one class id per fbank frame), num_targets (5), classes.txt, per-utterance/overall sil shares
# (utt2sil_share, class_counts; also in the logs) and labels_summary (key=value: utterances, frames,
# sil_frames, no_speech = utterances without any speech frame; the jobs' sums).
set -euo pipefail

nj=4
cmd=${train_cmd:-run.pl}
fbank_config=conf/fbank.conf   # the framing of the features the targets align with
vad_config=conf/vad.conf

help_message="Usage: $0 [options] DATA_DIR TARGETS_DIR
  e.g. $0 data/iemocap/all exp/ser/targets/all
DATA_DIR needs wav.scp, utt2emo and utt2num_frames (run steps/make_fbank.sh first).
Options:
  --nj N                 parallel jobs (default $nj)
  --cmd CMD              job runner (default \$train_cmd)
  --fbank-config FILE    frame length/shift/snip-edges of the features (default $fbank_config)
  --vad-config FILE      detector options (default $vad_config)"

. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 2 ]]; then echo -e "$help_message" >&2; exit 1; fi
data=$1
dir=$2

for f in "$data/wav.scp" "$data/utt2emo" "$data/utt2num_frames" "$fbank_config" "$vad_config"; do
  [[ -f $f ]] || die "no such file $f (run data preparation and steps/make_fbank.sh first)"
done
utils/validate_data_dir.sh "$data" >/dev/null

mkdir -p "$dir/log"
dir_abs=$(cd "$dir" && pwd)
num_utts=$(wc -l < "$data/utt2spk")
(( nj > num_utts )) && nj=$num_utts
python3 -m pyscripts.kaldi.datadir split --per-utt "$data" "$nj"
split=$data/split$nj

log "frame targets of $data ($num_utts utterances, $nj jobs; log in $dir/log)"
$cmd JOB=1:$nj "$dir/log/labels.JOB.log" \
  python3 -m pyscripts.ser.labels make --fbank-config "$fbank_config" --vad-config "$vad_config" \
    --summary "$dir_abs/labels.JOB.summary" "$split/JOB" "$dir_abs/targets.JOB.ark" "$dir_abs/targets.JOB.scp"

for j in $(seq "$nj"); do cat "$dir/targets.$j.scp"; done | sort -k1,1 > "$dir/targets.scp"
for j in $(seq "$nj"); do cat "$dir/labels.$j.summary"; done | awk -F= '
  !($1 in sum) { key[++n] = $1 }
  { sum[$1] += $2 }
  END { for (i = 1; i <= n; i++) printf "%s=%.0f\n", key[i], sum[key[i]] }' > "$dir/labels_summary"
rm -f "$dir"/targets.*.scp "$dir"/labels.*.summary
num_targets=$(wc -l < "$dir/targets.scp")
if [[ $num_targets -ne $num_utts ]]; then die "only $num_targets of $num_utts utterances got targets; see $dir/log"; fi
python3 -m pyscripts.ser.labels meta "$dir"
cp "$fbank_config" "$dir/fbank.conf"; cp "$vad_config" "$dir/vad.conf"   # what made these targets
summary=$(python3 -m pyscripts.ser.labels summary "$dir" 2> "$dir/log/summary.log")
no_speech=$(awk -F= '$1 == "no_speech" { print $2 }' "$dir/labels_summary")
log "$num_targets utterances in $dir: frames per class $summary; $no_speech utterance(s) without speech frames"
