#!/usr/bin/env bash
# ASR (TIMIT phone recognition) and SER (IEMOCAP emotion recognition) with one ConvNet, and the transfer
# of its features between the two tasks (Fayek, Lech & Cavedon, Interspeech 2016).
#
#   ./run.sh                          whole recipe on the synthetic demo corpora (sets itself up first)
#   ./run.sh --corpus tiny            every stage on the tiny corpora (the smoke test)
#   ./run.sh --corpus timit --timit-root /data/TIMIT        ASR stages on a real TIMIT
#   ./run.sh --corpus iemocap --iemocap-root /data/IEMOCAP  SER stages on a real IEMOCAP
#   --ser-protocol paper|loso10|superb                      IEMOCAP folds: conf/iemocap_folds[_NAME].conf
#   --nnet-profile paper|demo|tiny    ConvNet configs conf/convnet_*[_NAME].yaml (default: the corpus's)
#   ./run.sh --stage 4 --stop-stage 4                       one stage only
#   --dev-spk-list FILE --test-spk-list FILE                TIMIT dev/test speakers (a partial copy, another split)
#   --seeds N                         train each transfer row N times: mean and sd across seeds (stage 12)
#   --force true                      redo the selected stages even when they are up to date (exp/stamps/)
set -euo pipefail
cd "$(dirname "$0")"

last_stage=13
stage=0
stop_stage=$last_stage
nj=4
corpus=demo          # demo | tiny (synthetic, generated here) | timit | iemocap (your licensed copy)
timit_root=
iemocap_root=
corpus_dir=corpora   # where the synthetic corpora are generated
dev_spk_list=        # TIMIT dev speakers, one a line (default: conf/timit_dev_spk.list, the standard 50)
test_spk_list=       # TIMIT test speakers (default: conf/timit_test_spk.list, the 24 of the core test set)
skip_setup=false
force=false          # true: redo the selected stages even when they are up to date
ser_protocol=paper   # IEMOCAP fold plan: paper (conf/iemocap_folds.conf) or NAME (conf/iemocap_folds_NAME.conf)
seeds=1              # trainings per row of the transfer sweeps, each with another seed
nnet_profile=        # ConvNet configs: paper (conf/convnet_{asr,ser,joint}.yaml) or NAME (conf/convnet_*_NAME.yaml);
                     # default: demo or tiny for those corpora, paper for real ones
decode_conf=conf/decode.conf  # decoding and scoring settings of stages 8, 10, 12 and 13 (Kaldi conf format)
# --help: the header above, the stages (their titles in this file) and the options' defaults.
help_message="$(sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//')

Stages (--stage N --stop-stage M):
$(sed -n 's/^if .*run_stage \([0-9]*\) "\([^"]*\)".*/  \1\t\2/p' "$0" \
  | sed 's/\$corpus/demo or tiny/; s/\$ser_protocol/--ser-protocol/')

Defaults: --corpus $corpus --nj $nj --stage 1 --stop-stage $last_stage --ser-protocol $ser_protocol --seeds $seeds
  --nnet-profile (the corpus's) --corpus-dir $corpus_dir --force $force --skip-setup $skip_setup
  --decode-conf $decode_conf"

. utils/parse_options.sh
. utils/log.sh
. utils/stage.sh
. utils/stamp.sh
if [[ $# -ne 0 ]]; then die "unexpected argument $1 (see --help)"; fi
# parse_options.sh took --stage, --stop-stage and --nj as integers; here their ranges.
if (( stage > last_stage )); then die "--stage $stage: there is no such stage (1..$last_stage)"; fi
if (( stage > stop_stage )); then die "--stage $stage is after --stop-stage $stop_stage: nothing to run"; fi
if (( nj < 1 )); then die "--nj $nj: at least one job is needed"; fi
if [[ ! $seeds =~ ^[1-9][0-9]*$ ]]; then die "--seeds $seeds: give the number of trainings per transfer row, 1 or more"; fi
if [[ ! -f $decode_conf ]]; then die "--decode-conf $decode_conf: no such file (the recipe's is conf/decode.conf)"; fi
ser_fold_conf=conf/iemocap_folds_$ser_protocol.conf
if [[ $ser_protocol == paper ]]; then ser_fold_conf=conf/iemocap_folds.conf; fi
if [[ ! $ser_protocol =~ ^[A-Za-z0-9_]+$ || ! -f $ser_fold_conf ]]; then
  protocols=(paper); for f in conf/iemocap_folds_*.conf; do f=${f#conf/iemocap_folds_}; protocols+=("${f%.conf}"); done
  die "--ser-protocol $ser_protocol: no such protocol; the protocols are ${protocols[*]} (conf/iemocap_folds[_NAME].conf)"
fi

# The corpus registry (conf/corpora/README): which tasks the corpus serves, whether stage 1 generates it,
# its default speaker lists, ConvNet profile and alignment options.
if [[ ! $corpus =~ ^[A-Za-z0-9_]+$ || ! -f conf/corpora/$corpus.conf ]]; then
  corpora=(); for f in conf/corpora/*.conf; do f=${f#conf/corpora/}; corpora+=("${f%.conf}"); done
  printf -v names '%s, ' "${corpora[@]:0:${#corpora[@]}-1}"
  die "--corpus must be ${names%, } or ${corpora[-1]}, not '$corpus'"
fi
conf_tasks=; conf_synthetic=; conf_asr_prep=; conf_ser_prep=; conf_dev_spk_list=; conf_test_spk_list=
conf_nnet_profile=; conf_align_opts=; conf_transfer_layers=; conf_transfer_folds=; conf_report_opts=
. utils/read_conf.sh "conf/corpora/$corpus.conf" || exit 1
if [[ ! $conf_tasks =~ ^(asr|ser|asr,ser|ser,asr)$ || ! $conf_synthetic =~ ^(true|false)$ || -z $conf_nnet_profile ]]; then
  die "conf/corpora/$corpus.conf: needs --tasks=asr|ser|asr,ser, --synthetic=true|false and --nnet-profile=NAME"
fi
for task in ${conf_tasks//,/ }; do
  prep=conf_${task}_prep
  [[ -z ${!prep} || ${!prep} == */* ]] || printf -v "$prep" './%s' "${!prep}"   # a script here, not on PATH
  [[ -n ${!prep} && -x ${!prep} ]] || die "conf/corpora/$corpus.conf: --$task-prep='${!prep}' is not an executable script;" \
    "name the data preparation of its $task stage (conf/corpora/README)"
done

# The ConvNet configs: the paper's for real corpora, shorter schedules for the CPU-sized demo and tiny ones
# (nnet_suffix: the configs' file-name ending).
nnet_profile=${nnet_profile:-$conf_nnet_profile}
nnet_suffix=_$nnet_profile; [[ $nnet_profile == paper ]] && nnet_suffix=
if [[ ! $nnet_profile =~ ^[A-Za-z0-9_]+$ || ! -f conf/convnet_asr$nnet_suffix.yaml ]]; then
  profiles=(paper); for f in conf/convnet_asr_*.yaml; do f=${f#conf/convnet_asr_}; profiles+=("${f%.yaml}"); done
  die "--nnet-profile $nnet_profile: no such profile; the profiles are ${profiles[*]} (conf/convnet_{asr,ser,joint}[_NAME].yaml)"
fi

do_asr=false; [[ ,$conf_tasks, == *,asr,* ]] && do_asr=true
do_ser=false; [[ ,$conf_tasks, == *,ser,* ]] && do_ser=true
synthetic=$conf_synthetic
if $synthetic; then
  timit_root=${timit_root:-$corpus_dir/$corpus/timit}; iemocap_root=${iemocap_root:-$corpus_dir/$corpus/iemocap}
fi
if $do_asr; then
  dev_spk_list=${dev_spk_list:-$conf_dev_spk_list}; test_spk_list=${test_spk_list:-$conf_test_spk_list}
  [[ -n $timit_root ]] || die "--corpus $corpus needs --timit-root DIR"
fi
if $do_ser && [[ -z $iemocap_root ]]; then die "--corpus $corpus needs --iemocap-root DIR"; fi

# Kaldi's tables ("key path" lines of wav.scp, feats.scp) and the job runners' command lines cannot hold
# paths with white space or shell characters: refuse them now rather than fail in a later stage.
paths=("$PWD" "$corpus_dir"); $do_asr && paths+=("$timit_root"); $do_ser && paths+=("$iemocap_root")
for path in "${paths[@]}"; do
  if [[ $path =~ [^A-Za-z0-9_./+@%,:=~-] ]]; then
    die "the path '$path' has a space or a shell character, which Kaldi's scp files and job" \
        "commands cannot hold; use a path without them, e.g. a symbolic link (ln -s '$path' /tmp/link) in its place"
  fi
done

# One run at a time in this directory (exp/.run.lock, utils/stage.sh), set-up included: a second one
# refuses, naming the first.
lock_recipe_dir
if [[ $skip_setup != true ]]; then utils/setup_env.sh; fi
. ./path.sh
. ./cmd.sh
. local/layout.sh   # where the stages leave what later steps read (the sub-scripts' defaults too)

# Outputs of one corpus must not be mixed with another's: data/ and exp/ remember which made them.
mkdir -p data
if [[ -f data/.corpus && $(cat data/.corpus) != "$corpus" ]]; then
  die "data/ and exp/ hold results of --corpus $(cat data/.corpus); move them away (or run in" \
      "another directory) before running --corpus $corpus"
fi
echo "$corpus" > data/.corpus

# Each stage keeps a fingerprint of what it was made from (exp/stamps/stageN: its input files' content,
# corpus listings, options): a re-run skips a stage whose inputs are unchanged and says so, and redoes one
# whose inputs changed, saying which. Stage 1's generators check their own corpora.
backend=embedded; [[ -n ${KALDI_ROOT:-} ]] && backend=kaldi
run_stage() {  # run_stage N TITLE [pyscripts.fingerprint check options]: true when N is selected and out of date
  local n=$1 title=$2; shift 2
  stage_selected "$n" "$title" || return 1
  stage_started=$SECONDS
  (( n > 1 )) || return 0
  local force_opt=(); [[ $force == true ]] && force_opt=(--force)
  out_of_date "stage $n" "exp/stamps/stage$n" "${force_opt[@]}" --option backend=$backend "$@"
}
stage_done() {  # stage_done N: the stage finished: keep its fingerprint, add its time to exp/stage_times.tsv
  if (( $1 > 1 )); then python3 -m pyscripts.fingerprint commit "exp/stamps/stage$1"; fi
  mkdir -p exp
  printf '%s\t%s\t%s\n' "$1" "$((SECONDS - stage_started))" "$(date '+%FT%T')" >> exp/stage_times.tsv
}

if $synthetic && run_stage 1 "generate the synthetic $corpus corpora"; then
  local/make_demo_timit.sh --size "$corpus" "$timit_root"
  local/make_demo_iemocap.sh --size "$corpus" "$iemocap_root"
  stage_done 1
fi

if $do_asr && run_stage 2 "TIMIT data preparation" --corpus "$timit_root" --input "$conf_asr_prep" --input "$dev_spk_list" \
    --input "$test_spk_list" --input conf/phones.60-48-39.map --output=data/timit/{train,dev,test}/text; then
  "$conf_asr_prep" --dev-spk-list "$dev_spk_list" --test-spk-list "$test_spk_list" "$timit_root" data/timit
  stage_done 2
fi

if $do_ser && run_stage 3 "IEMOCAP data preparation" --corpus "$iemocap_root" --input "$conf_ser_prep" \
    --output data/iemocap/all/utt2emo; then
  "$conf_ser_prep" "$iemocap_root" data/iemocap
  stage_done 3
fi

feat_deps=(--input=conf/{fbank,mfcc}.conf)
$do_asr && feat_deps+=(--corpus "$timit_root" --data=data/timit/{train,dev,test} \
  --output=data/timit/{train,dev,test}/feats.scp --output=data/timit_mfcc/{train,dev,test}/cmvn.scp)
$do_ser && feat_deps+=(--corpus "$iemocap_root" --data data/iemocap/all --output data/iemocap/all/feats.scp)
if run_stage 4 "features: fbank (+ global CMVN) for the ConvNet, MFCC (+ per-speaker CMVN) for the GMM" \
    "${feat_deps[@]}"; then
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
  stage_done 4
fi

if $do_asr && run_stage 5 "lang dir and bigram phone LM" --input conf/phones.60-48-39.map \
    --input=data/timit/{train,dev}/text --output data/lang_test_bg/G.fst; then
  local/timit_prepare_dict.sh conf/phones.60-48-39.map data/local/dict
  utils/prepare_lang.sh data/local/dict sil data/local/lang_tmp data/lang
  local/timit_train_lm.sh data/timit/train data/timit/dev data/local/lm/lm_phone_bg.arpa
  utils/format_lm.sh data/lang data/local/lm/lm_phone_bg.arpa data/lang_test_bg
  stage_done 5
fi

if $do_asr && run_stage 6 "monophone GMM-HMM training" --input conf/mono.conf --input data/lang \
    --data data/timit_mfcc/train --input=data/timit_mfcc/train/{feats,cmvn}.scp --output=exp/mono/{final.mdl,tree}; then
  steps/train_mono.sh --nj "$nj" --cmd "$train_cmd" data/timit_mfcc/train data/lang exp/mono
  stage_done 6
fi

# The corpus's alignment options (the tiny corpus trains too weak a model for Kaldi's beams).
read -ra ali_opts <<< "$conf_align_opts"
if $do_asr && run_stage 7 "forced alignment of train, dev and test; frame targets for the ConvNet" \
    --input conf/mono.conf --input data/lang --input=exp/mono/{final.mdl,tree} --option "align=${ali_opts[*]}" \
    --data=data/timit{,_mfcc}/{train,dev,test} --input=data/timit_mfcc/{train,dev,test}/{feats,cmvn}.scp \
    --input=data/timit/{train,dev,test}/feats.scp --output="$asr_train_targets/targets.scp" \
    --output="$asr_dev_targets/targets.scp" --output="$asr_test_targets/targets.scp"; then
  # Each targets dir lies in its alignment dir (local/layout.sh), whose final.mdl maps its pdfs to phones.
  steps/align_mono.sh --nj "$nj" --cmd "$train_cmd" data/timit_mfcc/train data/lang exp/mono "$(dirname "$asr_train_targets")"
  steps/ali_to_targets.sh "$(dirname "$asr_train_targets")" data/timit/train "$asr_train_targets"
  for set in "dev $asr_dev_targets" "test $asr_test_targets"; do
    read -r x targets <<< "$set"
    steps/align_mono.sh --nj "$nj" --cmd "$train_cmd" "${ali_opts[@]}" data/timit_mfcc/$x data/lang exp/mono \
      "$(dirname "$targets")"
    steps/ali_to_targets.sh "$(dirname "$targets")" data/timit/$x "$targets"
  done
  # The synthesiser's own segmentation is known for the demo corpora: report how close the alignment is.
  if [[ -f data/timit/train/ref_phones.ctm ]]; then
    local/score_alignment.sh "$(dirname "$asr_train_targets")" data/timit/train
  fi
  stage_done 7
fi

if $do_asr && run_stage 8 "decoding graph and GMM baseline decode" --input data/lang_test_bg --input "$decode_conf" \
    --input=exp/mono/{final.mdl,tree} --data=data/timit_mfcc/{dev,test} --input=data/timit_mfcc/{dev,test}/{feats,cmvn}.scp \
    --output "$graph_dir/HCLG.fst" --output=exp/mono/decode_{dev,test}/scoring/result.json; then
  utils/mkgraph.sh data/lang_test_bg exp/mono "$graph_dir"
  steps/decode_gmm.sh --nj "$nj" --cmd "$decode_cmd" --decode-conf "$decode_conf" \
    "$graph_dir" data/timit_mfcc/dev exp/mono/decode_dev
  steps/decode_gmm.sh --nj "$nj" --cmd "$decode_cmd" --decode-conf "$decode_conf" --tune-dir exp/mono/decode_dev \
    "$graph_dir" data/timit_mfcc/test exp/mono/decode_test
  stage_done 8
fi


if $do_asr && run_stage 9 "ConvNet acoustic model on the monophone-state targets" \
    --input conf/convnet_asr$nnet_suffix.yaml --data=data/timit/{train,dev} --input=data/timit/{train,dev}/feats.scp \
    --input "$asr_cmvn_stats" --input "$asr_train_targets" --input "$asr_dev_targets" --output exp/convnet_asr/final.pt; then
  steps/train_convnet.sh --cmd "$cuda_cmd" --train-config conf/convnet_asr$nnet_suffix.yaml --force "$force" \
    --cmvn-stats "$asr_cmvn_stats" data/timit/train data/timit/dev "$asr_train_targets" "$asr_dev_targets" exp/convnet_asr
  stage_done 9
fi

if $do_asr && run_stage 10 "hybrid ConvNet-HMM decoding with the bigram LM: FER, PER (LM weight chosen on dev), RTF" \
    --input exp/convnet_asr/final.pt --input "$graph_dir" --input exp/mono/final.mdl --input "$decode_conf" \
    --data=data/timit/{dev,test} \
    --input=data/timit/{dev,test}/feats.scp --input "$asr_dev_targets" --input "$asr_test_targets" \
    --output=exp/convnet_asr/decode_{dev,test}/scoring/result.json --output exp/RESULTS.md; then
  steps/decode_dev_test.sh --nj "$nj" --cmd "$decode_cmd" --decode-conf "$decode_conf" --force "$force" \
    "$graph_dir" data/timit "$asr_dev_targets" "$asr_test_targets" exp/convnet_asr
  local/results.sh --out exp/RESULTS.md exp
  stage_done 10
fi

if $do_ser && run_stage 11 "SER: frame labels (emotion + sil), $ser_protocol folds, one ConvNet per fold, E/UE on Dev/Test" \
    --input conf/convnet_ser$nnet_suffix.yaml --input=conf/{fbank,vad}.conf --input "$ser_fold_conf" --data data/iemocap/all \
    --input data/iemocap/all/feats.scp --output exp/ser/results.md; then
  local/run_ser.sh --nj "$nj" --train-config conf/convnet_ser$nnet_suffix.yaml --max-jobs-run "$nj" \
    --fold-conf "$ser_fold_conf" data/iemocap exp/ser
  stage_done 11
fi

# Every SER -> ASR row normalises its input with stage 9's CMVN stats, as the ASR Baseline (in the
# stamp's options, so that rows trained before that are trained again).
transfer_opts=(--asr-cmvn-stats "$asr_cmvn_stats")
(( seeds > 1 )) && transfer_opts+=(--seeds "$seeds")
# The corpus conf may run a part of the sweeps (--transfer-layers, --transfer-folds) and a lighter report.
[[ -n $conf_transfer_layers ]] && transfer_opts+=(--layers "$conf_transfer_layers")
[[ -n $conf_transfer_folds ]] && transfer_opts+=(--folds "$conf_transfer_folds")
[[ -n $conf_report_opts ]] && transfer_opts+=(--report-opts "$conf_report_opts")
ser_models=(exp/ser/fold*/final.pt)
if $do_asr && $do_ser && run_stage 12 "transfer sweeps ASR <-> SER, tables, figures, CKA, report" \
    --input=conf/convnet_{asr,ser}$nnet_suffix.yaml --input conf/paper_results.tsv --input "$decode_conf" --option "transfer=${transfer_opts[*]}" \
    --input exp/convnet_asr/final.pt --input=exp/ser/{targets,results.md} "${ser_models[@]/#/--input=}" \
    --input data/iemocap/folds/plan --input "$ser_fold_conf" --data=data/timit/{train,dev,test} --input=data/timit/{train,dev,test}/feats.scp \
    --input "$asr_cmvn_stats" --input "$asr_train_targets" --input "$asr_dev_targets" --input "$asr_test_targets" \
    --input "$graph_dir" --input exp/mono/final.mdl --output exp/report/README.md; then
  # The Baseline rows are the models of stages 9 and 11, trained with the same configs.
  local/run_transfer.sh --asr-config conf/convnet_asr$nnet_suffix.yaml \
    --ser-config conf/convnet_ser$nnet_suffix.yaml --asr-baseline exp/convnet_asr --ser-baseline exp/ser \
    --decode-conf "$decode_conf" --decode-nj "$nj" --max-jobs-run "$nj" "${transfer_opts[@]}"
  stage_done 12
fi

if $do_asr && $do_ser && run_stage 13 "joint ASR-SER ConvNet (one trunk, two output layers) on mixed batches: FER/PER and E/UE against the single-task Baselines" \
    --input=conf/convnet_{joint,asr}$nnet_suffix.yaml --input "$ser_fold_conf" --input "$decode_conf" --input "$asr_cmvn_stats" \
    --data=data/timit/{train,dev,test} --input=data/timit/{train,dev,test}/feats.scp --input "$asr_train_targets" \
    --input "$asr_dev_targets" --input "$asr_test_targets" --input "$graph_dir" --input exp/mono/final.mdl --data=data/iemocap/folds/fold1/{train,valid,test} \
    --input=data/iemocap/folds/fold1/{train,valid,test}/feats.scp --input exp/ser/targets/fold1 \
    --input exp/convnet_asr/final.pt --input=exp/convnet_asr/decode_{dev,test}/scoring/result.json \
    --input exp/ser/fold1/final.pt --input exp/ser/results.md \
    --output exp/joint/final.pt --output=exp/joint/asr/decode_{dev,test}/scoring/result.json --output exp/joint/results.md; then
  local/run_joint.sh --train-config conf/convnet_joint$nnet_suffix.yaml --nj "$nj" --decode-conf "$decode_conf" \
    --force "$force" exp/joint
  # Stage 12's report shows the joint model's row too.
  if [[ -f exp/report/README.md ]]; then local/make_report.sh --readme-only true exp/report; fi
  stage_done 13
fi

log "done (stages $(( stage > 1 ? stage : 1 ))..$(( stop_stage < last_stage ? stop_stage : last_stage )), corpus $corpus)"
