#!/usr/bin/env bash
# Kaldi's utils/prepare_lang.sh for this recipe's set-up: a lang dir (phones.txt, words.txt, topo,
# L.fst, L_disambig.fst, phones/...) from a dict dir, with word-position-independent phones and no
# optional silence between words (Kaldi's TIMIT settings). The files are Kaldi's formats, so the
# same lang dir serves the embedded backend and Kaldi's binaries.
set -euo pipefail
num_sil_states=3
num_nonsil_states=3
position_dependent_phones=false
sil_prob=0.0
help_message="Usage: $0 [options] DICT_DIR OOV_WORD TMP_DIR LANG_DIR
  e.g. $0 data/local/dict sil data/local/lang_tmp data/lang
Options:
  --num-sil-states N      emitting states of silence phones (default 3, left to right)
  --num-nonsil-states N   emitting states of the other phones (default 3, left to right)
  --position-dependent-phones false   (only false is supported)
  --sil-prob 0.0                      (only 0.0, no optional silence, is supported)"
. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 4 ]]; then echo -e "$help_message" >&2; exit 1; fi
dict=$1; oov=$2; tmp=$3; lang=$4
if [[ $position_dependent_phones != false ]]; then
  die "--position-dependent-phones true is not supported; use Kaldi's utils/prepare_lang.sh"
fi
if ! awk -v p="$sil_prob" 'BEGIN{exit !(p == 0)}'; then
  die "--sil-prob $sil_prob: only 0.0 is supported (silence is a word of the phone lexicon)"
fi
mkdir -p "$tmp" "$lang"
python3 -m pyscripts.asr.lang prepare --num-sil-states "$num_sil_states" \
  --num-nonsil-states "$num_nonsil_states" "$dict" "$oov" "$lang" 2> "$tmp/prepare_lang.log" || {
  cat "$tmp/prepare_lang.log" >&2; exit 1; }
log "lang dir $lang: $(grep -c . "$lang/phones/sets.txt") phone sets, $(wc -l < "$lang/words.txt") word symbols"
