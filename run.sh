#!/usr/bin/env bash
# ASR (TIMIT phone recognition) and SER (IEMOCAP emotion recognition) with one ConvNet, and the transfer
# of its features between the two tasks (Fayek, Lech & Cavedon, Interspeech 2016).
#
#   ./run.sh                          whole recipe on the synthetic demo corpora (sets itself up first)
#   ./run.sh --corpus tiny            every stage on the tiny corpora (the smoke test)
#   ./run.sh --corpus timit --timit-root /data/TIMIT        ASR stages on a real TIMIT
#   ./run.sh --corpus iemocap --iemocap-root /data/IEMOCAP  SER stages on a real IEMOCAP
#   ./run.sh --stage 4 --stop-stage 4                       one stage only
#   --dev-spk-list FILE --test-spk-list FILE                TIMIT dev/test speakers (a partial copy, another split)
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=100
nj=4
corpus=demo          # demo | tiny (synthetic, generated here) | timit | iemocap (your licensed copy)
timit_root=
iemocap_root=
corpus_dir=corpora   # where the synthetic corpora are generated
dev_spk_list=        # TIMIT dev speakers, one a line (default: conf/timit_dev_spk.list, the standard 50)
test_spk_list=       # TIMIT test speakers (default: conf/timit_test_spk.list, the 24 of the core test set)
skip_setup=false
last_stage=12
help_message=$(sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//')

. utils/parse_options.sh
if [[ $# -ne 0 ]]; then echo "$0: unexpected argument $1 (see --help)" >&2; exit 1; fi
# parse_options.sh took --stage, --stop-stage and --nj as integers; here their ranges.
if (( stage > last_stage )); then echo "$0: --stage $stage: there is no such stage (1..$last_stage)" >&2; exit 1; fi
if (( stage > stop_stage )); then echo "$0: --stage $stage is after --stop-stage $stop_stage: nothing to run" >&2; exit 1; fi
if (( nj < 1 )); then echo "$0: --nj $nj: at least one job is needed" >&2; exit 1; fi

case $corpus in
  demo|tiny) do_asr=true; do_ser=true
             timit_root=${timit_root:-$corpus_dir/$corpus/timit}
             iemocap_root=${iemocap_root:-$corpus_dir/$corpus/iemocap}
             dev_spk_list=${dev_spk_list:-conf/${corpus}_timit_dev_spk.list}
             test_spk_list=${test_spk_list:-conf/${corpus}_timit_test_spk.list} ;;
  timit)     do_asr=true; do_ser=false
             dev_spk_list=${dev_spk_list:-conf/timit_dev_spk.list}
             test_spk_list=${test_spk_list:-conf/timit_test_spk.list}
             [[ -n $timit_root ]] || { echo "$0: --corpus timit needs --timit-root DIR" >&2; exit 1; } ;;
  iemocap)   do_asr=false; do_ser=true
             [[ -n $iemocap_root ]] || { echo "$0: --corpus iemocap needs --iemocap-root DIR" >&2; exit 1; } ;;
  *) echo "$0: --corpus must be demo, tiny, timit or iemocap, not '$corpus'" >&2; exit 1 ;;
esac

# Kaldi's tables ("key path" lines of wav.scp, feats.scp) and the job runners' command lines cannot hold
# paths with white space or shell characters: refuse them now rather than fail in a later stage.
paths=("$PWD" "$corpus_dir"); $do_asr && paths+=("$timit_root"); $do_ser && paths+=("$iemocap_root")
for path in "${paths[@]}"; do
  if [[ $path =~ [^A-Za-z0-9_./+@%,:=~-] ]]; then
    echo "$0: the path '$path' has a space or a shell character, which Kaldi's scp files and job" \
         "commands cannot hold; use a path without them, e.g. a symbolic link (ln -s '$path' /tmp/link) in its place" >&2
    exit 1
  fi
done

if [[ $skip_setup != true ]]; then utils/setup_env.sh; fi
. ./path.sh
. ./cmd.sh

# Outputs of one corpus must not be mixed with another's: data/ and exp/ remember which made them.
mkdir -p data
if [[ -f data/.corpus && $(cat data/.corpus) != "$corpus" ]]; then
  echo "$0: data/ and exp/ hold results of --corpus $(cat data/.corpus); move them away (or run in" \
       "another directory) before running --corpus $corpus" >&2
  exit 1
fi
echo "$corpus" > data/.corpus

run_stage() {  # run_stage N TEXT [OUTPUT]: true when stage N is selected; prints it, and says when
  # OUTPUT exists: stages 1-8 have no up-to-date check and make everything again (9, 11 and 12 do check).
  if (( stage <= $1 && $1 <= stop_stage )); then
    echo "=== $0: stage $1: $2 ==="
    if [[ -n ${3:-} && -e ${3:-} ]]; then echo "$0: stage $1 redoes its work ($3 exists and is made again)"; fi
    return 0
  fi
  return 1
}

if [[ $corpus == demo || $corpus == tiny ]] && run_stage 1 "generate the synthetic $corpus corpora"; then
  local/make_demo_timit.sh --size "$corpus" "$timit_root"
  local/make_demo_iemocap.sh --size "$corpus" "$iemocap_root"
fi

if $do_asr && run_stage 2 "TIMIT data preparation" data/timit/train/text; then
  local/timit_data_prep.sh --dev-spk-list "$dev_spk_list" --test-spk-list "$test_spk_list" "$timit_root" data/timit
fi

if $do_ser && run_stage 3 "IEMOCAP data preparation" data/iemocap/all/utt2spk; then
  local/iemocap_data_prep.sh "$iemocap_root" data/iemocap
fi

if run_stage 4 "features: fbank (+ global CMVN) for the ConvNet, MFCC (+ per-speaker CMVN) for the GMM" \
    exp/make_fbank; then
  fbank_sets=(); $do_asr && fbank_sets+=(data/timit/train data/timit/dev data/timit/test)
  $do_ser && fbank_sets+=(data/iemocap/all)
  for d in "${fbank_sets[@]}"; do
    steps/make_fbank.sh --nj "$nj" --cmd "$train_cmd" "$d" "exp/make_fbank/$(basename "$d")" fbank
  done
  if $do_asr; then
    steps/compute_cmvn_stats.sh --global true data/timit/train exp/make_fbank/train
    for x in train dev test; do
      utils/copy_data_dir.sh data/timit/$x data/timit_mfcc/$x
      steps/make_mfcc.sh --nj "$nj" --cmd "$train_cmd" data/timit_mfcc/$x exp/make_mfcc/$x mfcc
      steps/compute_cmvn_stats.sh data/timit_mfcc/$x exp/make_mfcc/$x mfcc
    done
  fi
fi

if $do_asr && run_stage 5 "lang dir and bigram phone LM" data/lang_test_bg; then
  local/timit_prepare_dict.sh conf/phones.60-48-39.map data/local/dict
  utils/prepare_lang.sh data/local/dict sil data/local/lang_tmp data/lang
  local/timit_train_lm.sh data/timit/train data/timit/dev data/local/lm/lm_phone_bg.arpa
  utils/format_lm.sh data/lang data/local/lm/lm_phone_bg.arpa data/lang_test_bg
fi

if $do_asr && run_stage 6 "monophone GMM-HMM training" exp/mono/final.mdl; then
  steps/train_mono.sh --nj "$nj" --cmd "$train_cmd" data/timit_mfcc/train data/lang exp/mono
fi

if $do_asr && run_stage 7 "forced alignment of train, dev and test; frame targets for the ConvNet" \
    exp/mono_ali/targets; then
  # The tiny corpus trains too weak a model for dev/test speakers to align at Kaldi's beams.
  ali_opts=(); [[ $corpus == tiny ]] && ali_opts=(--beam 40 --retry-beam 400)
  steps/align_mono.sh --nj "$nj" --cmd "$train_cmd" data/timit_mfcc/train data/lang exp/mono exp/mono_ali
  steps/ali_to_targets.sh exp/mono_ali data/timit/train exp/mono_ali/targets
  for x in dev test; do
    steps/align_mono.sh --nj "$nj" --cmd "$train_cmd" "${ali_opts[@]}" data/timit_mfcc/$x data/lang exp/mono \
      exp/mono_ali_$x
    steps/ali_to_targets.sh exp/mono_ali_$x data/timit/$x exp/mono_ali_$x/targets
  done
  # The synthesiser's own segmentation is known for the demo corpora: report how close the alignment is.
  if [[ -f data/timit/train/ref_phones.ctm ]]; then local/score_alignment.sh exp/mono_ali data/timit/train; fi
fi

if $do_asr && run_stage 8 "decoding graph and GMM baseline decode" exp/mono/graph; then
  utils/mkgraph.sh data/lang_test_bg exp/mono exp/mono/graph
  steps/decode_gmm.sh --nj "$nj" --cmd "$decode_cmd" exp/mono/graph data/timit_mfcc/dev exp/mono/decode_dev
  steps/decode_gmm.sh --nj "$nj" --cmd "$decode_cmd" --tune-dir exp/mono/decode_dev \
    exp/mono/graph data/timit_mfcc/test exp/mono/decode_test
fi

# The ConvNet configs: the seed's for real corpora, shorter schedules for the CPU-sized demo and tiny ones.
nnet_profile=; [[ $corpus == demo || $corpus == tiny ]] && nnet_profile=_$corpus

if $do_asr && run_stage 9 "ConvNet acoustic model on the monophone-state targets"; then
  steps/train_convnet.sh --cmd "$cuda_cmd" --train-config conf/convnet_asr$nnet_profile.yaml \
    --cmvn-stats data/timit/train/cmvn_global.stats \
    data/timit/train data/timit/dev exp/mono_ali/targets exp/mono_ali_dev/targets exp/convnet_asr
fi

if $do_asr && run_stage 10 "hybrid ConvNet-HMM decoding with the bigram LM: FER, PER (LM weight chosen on dev), RTF"; then
  steps/decode_hybrid.sh --nj "$nj" --cmd "$decode_cmd" --targets exp/mono_ali_dev/targets \
    exp/mono/graph data/timit/dev exp/convnet_asr/decode_dev
  steps/decode_hybrid.sh --nj "$nj" --cmd "$decode_cmd" --targets exp/mono_ali_test/targets \
    --scoring-opts "--tune-dir exp/convnet_asr/decode_dev" exp/mono/graph data/timit/test exp/convnet_asr/decode_test
  local/results.sh --out exp/RESULTS.md exp
fi

if $do_ser && run_stage 11 "SER: frame labels (emotion + sil), 8 folds, one ConvNet per fold, E/UE on Dev/Test"; then
  local/run_ser.sh --nj "$nj" --train-config conf/convnet_ser$nnet_profile.yaml --max-jobs-run "$nj" \
    data/iemocap exp/ser
fi

if $do_asr && $do_ser && run_stage 12 "transfer sweeps ASR <-> SER, tables, figures, CKA, report"; then
  transfer_opts=()
  # The smoke test: two values of l and one fold, to show the stages run.
  [[ $corpus == tiny ]] && transfer_opts=(--layers 3,0 --folds fold1)
  # The Baseline rows are the models of stages 9 and 11, trained with the same configs.
  local/run_transfer.sh --asr-config conf/convnet_asr$nnet_profile.yaml \
    --ser-config conf/convnet_ser$nnet_profile.yaml --asr-baseline exp/convnet_asr --ser-baseline exp/ser \
    --asr-train-targets exp/mono_ali/targets \
    --asr-dev-targets exp/mono_ali_dev/targets --asr-test-targets exp/mono_ali_test/targets \
    --graph-dir exp/mono/graph --decode-nj "$nj" --max-jobs-run "$nj" "${transfer_opts[@]}"
fi

echo "$0: done (stages $stage..$stop_stage, corpus $corpus)"
