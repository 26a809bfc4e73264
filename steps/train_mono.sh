#!/usr/bin/env bash
# Monophone GMM-HMM training (Kaldi's steps/train_mono.sh): flat start, equal alignment, EM with
# re-alignment at --realign-iters, Gaussians split up to --totgauss. Options in --conf
# (conf/mono.conf, Kaldi `--name=value` lines). Features: feats.scp with per-speaker CMVN (means)
# plus deltas and delta-deltas.
# Embedded backend: pyscripts.gmm.train_mono (kaldi-hmm-gmm, one process, the same computation on
# the same --nj speaker splits); with KALDI_ROOT: Kaldi's gmm-init-mono, compile-train-graphs,
# align-equal-compiled, gmm-align-compiled, gmm-acc-stats-ali and gmm-est in --nj jobs.
# Output: DIR/{final.mdl,tree,final.occs,phones.txt,cmvn_opts,num_jobs} and the last alignment
# DIR/ali.JOB.gz, logs in DIR/log.
# shellcheck disable=SC2154  # the conf_* variables: set by utils/read_conf.sh with printf -v
set -euo pipefail
nj=4
cmd=${train_cmd:-run.pl}
conf=conf/mono.conf
help_message="Usage: $0 [options] DATA_DIR LANG_DIR EXP_DIR
  e.g. $0 --nj 4 data/timit_mfcc/train data/lang exp/mono
Options:
  --nj N          speaker splits: parallel jobs of the Kaldi backend; both initialise from split 1
  --cmd CMD       job runner (default \$train_cmd)
  --conf FILE     training options (default $conf)"
. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 3 ]]; then echo -e "$help_message" >&2; exit 1; fi
data=$1; lang=$2; dir=$3
for f in "$data/feats.scp" "$data/cmvn.scp" "$data/text" "$lang/L.fst" "$lang/topo" "$conf"; do
  [[ -f $f ]] || die "$f not found"
done
num_spk=$(wc -l < "$data/spk2utt")
(( nj > num_spk )) && nj=$num_spk   # the data is split by speaker
mkdir -p "$dir/log"
echo "$nj" > "$dir/num_jobs"
start=$(date +%s)

if [[ -z ${KALDI_ROOT:-} ]]; then
  log "training monophones on $data (embedded backend; log in $dir/log/train.log)"
  $cmd "$dir/log/train.log" python3 -m pyscripts.gmm.train_mono --config "$conf" --nj "$nj" \
    "$data" "$lang" "$dir"
else
  . utils/read_conf.sh "$conf"   # sets conf_<option name> shell variables
  utils/split_data.sh "$data" "$nj"
  sdata=$data/split$nj
  feats="ark,s,cs:apply-cmvn --norm-vars=false --utt2spk=ark:$sdata/JOB/utt2spk scp:$sdata/JOB/cmvn.scp scp:$sdata/JOB/feats.scp ark:- | add-deltas --delta-order=$conf_delta_order ark:- ark:- |"
  example_feats=${feats//JOB/1}
  scale_opts="--transition-scale=$conf_transition_scale --acoustic-scale=$conf_acoustic_scale --self-loop-scale=$conf_self_loop_scale"
  echo "--norm-means=true --norm-vars=false" > "$dir/cmvn_opts"
  cp "$lang/phones.txt" "$dir/"
  feat_dim=$(feat-to-dim "$example_feats" -)
  $cmd JOB=1 "$dir/log/init.log" gmm-init-mono \
    "--train-feats=$example_feats subset-feats --n=$conf_init_utts ark:- ark:-|" \
    "$lang/topo" "$feat_dim" "$dir/0.mdl" "$dir/tree"
  numgauss=$(gmm-info --print-args=false "$dir/0.mdl" | awk '/gaussians/{print $NF}')
  incgauss=$(( (conf_totgauss - numgauss) / conf_max_iter_inc ))
  $cmd JOB=1:$nj "$dir/log/compile_graphs.JOB.log" compile-train-graphs \
    --read-disambig-syms="$lang/phones/disambig.int" "$dir/tree" "$dir/0.mdl" "$lang/L.fst" \
    "ark:utils/sym2int.sh $lang/words.txt $sdata/JOB/text|" \
    "ark:|gzip -c > $dir/fsts.JOB.gz"
  $cmd JOB=1:$nj "$dir/log/align.0.JOB.log" align-equal-compiled "ark:gunzip -c $dir/fsts.JOB.gz|" \
    "$feats" ark,t:- \| gmm-acc-stats-ali --binary=true "$dir/0.mdl" "$feats" ark:- "$dir/0.JOB.acc"
  gmm-est --min-gaussian-occupancy="$conf_min_gaussian_occupancy_first" --mix-up="$numgauss" \
    --power="$conf_power" "$dir/0.mdl" "gmm-sum-accs - $dir/0.*.acc|" "$dir/1.mdl" 2> "$dir/log/update.0.log"
  rm -f "$dir"/0.*.acc
  beam=$conf_initial_beam; retry_beam=$conf_initial_retry_beam
  x=1
  while [[ $x -lt $conf_num_iters ]]; do
    if [[ " $conf_realign_iters " == *" $x "* ]]; then
      mdl="gmm-boost-silence --boost=$conf_boost_silence $(cat "$lang/phones/optional_silence.csl") $dir/$x.mdl - |"
      $cmd JOB=1:$nj "$dir/log/align.$x.JOB.log" gmm-align-compiled $scale_opts --beam="$beam" \
        --retry-beam="$retry_beam" --careful="$conf_careful" "$mdl" "ark:gunzip -c $dir/fsts.JOB.gz|" \
        "$feats" "ark,t:|gzip -c > $dir/ali.JOB.gz"
    fi
    $cmd JOB=1:$nj "$dir/log/acc.$x.JOB.log" gmm-acc-stats-ali "$dir/$x.mdl" "$feats" \
      "ark:gunzip -c $dir/ali.JOB.gz|" "$dir/$x.JOB.acc"
    $cmd "$dir/log/update.$x.log" gmm-est --write-occs="$dir/$((x + 1)).occs" \
      --min-gaussian-occupancy="$conf_min_gaussian_occupancy" --mix-up="$numgauss" --power="$conf_power" \
      --min-count="$conf_min_count" --perturb-factor="$conf_perturb_factor" \
      "$dir/$x.mdl" "gmm-sum-accs - $dir/$x.*.acc|" "$dir/$((x + 1)).mdl"
    rm -f "$dir/$x.mdl" "$dir"/$x.*.acc "$dir/$x.occs"
    if [[ $x -le $conf_max_iter_inc ]]; then numgauss=$((numgauss + incgauss)); fi
    beam=$conf_beam; retry_beam=$conf_retry_beam
    x=$((x + 1))
  done
  (cd "$dir" && rm -f final.mdl final.occs && ln -s "$x.mdl" final.mdl && ln -s "$x.occs" final.occs)
fi
[[ -f $dir/final.mdl ]] || die "training failed, no $dir/final.mdl; see $dir/log"
log "$dir/final.mdl trained in $(( $(date +%s) - start )) s"
