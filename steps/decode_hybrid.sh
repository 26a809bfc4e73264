#!/usr/bin/env bash
# Hybrid ConvNet-HMM decoding, like Kaldi's steps/nnet/decode.sh:
#   stage 0: network forward pass -> pseudo log-likelihoods (log posterior - log prior), loglikes.JOB.ark
#   stage 1: HCLG decoding -> lat.JOB.gz (Kaldi raw lattices) and hyp.JOB (best paths)
#   stage 2: FER of the network (with --targets), real-time factors, scoring (local/score.sh)
# Backend: Kaldi's latgen-faster-mapped when KALDI_ROOT is set (--use-kaldi auto), else
# pyscripts/asr/decode.py on the Kaldi wheels.
set -euo pipefail

nj=4
cmd=${decode_cmd:-run.pl}
stage=0
model=                 # the network; default: DECODE_DIR/../final.pt
trans_mdl=             # transition model of the graph; default: DECODE_DIR/../final.mdl, else GRAPH_DIR/../final.mdl
prior_counts=          # default: prior_counts beside the network (its training targets' pdf counts)
prior_scale=1.0
device=cpu             # forward pass: cpu | cuda | auto (auto: a GPU when --cmd gives the job one)
num_threads=1          # torch threads per forward job
decode_conf=conf/decode.conf  # decoding and scoring settings (pyscripts/asr/decode_conf.py); options here win
acwt=                  # the search: empty = the decode conf's (acwt, beam, lattice-beam, max-active, min-active)
beam=
lattice_beam=
max_active=
min_active=
determinize_lattice=false  # Kaldi backend: raw lattices, as the embedded decoder writes (see below)
max_mem=50000000       # Kaldi backend with --determinize-lattice true: determinization memory (bytes)
decoder=lattice        # embedded backend: lattice | faster (see pyscripts/asr/decode.py)
use_kaldi=auto         # auto | true | false
targets=               # targets dir of this data set (alignment pdf ids): FER of the network
skip_scoring=false
scoring_opts=          # options for local/score.sh, e.g. "--min-lmwt 1 --max-lmwt 20 --tune-dir exp/x/decode_dev"

help_message="Usage: $0 [options] GRAPH_DIR DATA_DIR DECODE_DIR
  e.g. $0 --nj 4 --targets exp/mono_ali_test/targets exp/mono/graph data/timit/test exp/convnet_asr/decode_test
Options:
  --nj N                 parallel jobs (default $nj)
  --cmd CMD              job runner (default \$decode_cmd)
  --stage N              start at stage N (0 forward, 1 decode, 2 score)
  --model FILE           network (default DECODE_DIR/../final.pt)
  --trans-mdl FILE       final.mdl whose transition-ids the graph uses
  --prior-counts FILE    pdf frame counts for the priors (Kaldi text vector)
  --prior-scale X        (default $prior_scale)
  --device DEV           cpu|cuda|auto for the forward pass (default $device; cuda: each job asks
                         the runner for a GPU, auto: whatever --cmd gives it)
  --num-threads N        torch threads per forward job (default $num_threads)
  --decode-conf FILE     decoding and scoring settings (default $decode_conf; the options below win)
  --acwt X               acoustic scale (default: the decode conf's)
  --beam X --lattice-beam X --max-active N --min-active N   decoder pruning (default: the decode conf's)
  --determinize-lattice BOOL  Kaldi backend: determinize the lattices (default $determinize_lattice)
  --max-mem BYTES        Kaldi backend: memory limit of lattice determinization (default $max_mem)
  --decoder NAME         embedded decoder: lattice|faster (default $decoder)
  --use-kaldi auto|true|false   Kaldi's latgen-faster-mapped (auto: when KALDI_ROOT is set)
  --targets DIR          targets dir (targets.scp) of this set, for the FER
  --skip-scoring BOOL    (default $skip_scoring)
  --scoring-opts 'OPTS'  passed to local/score.sh"

. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 3 ]]; then echo -e "$help_message" >&2; exit 1; fi
graphdir=$1 data=$2 dir=$3
conf_values=$(python3 -m pyscripts.asr.decode_conf shell --part hybrid "$decode_conf" acwt="$acwt" beam="$beam" \
  lattice_beam="$lattice_beam" max_active="$max_active" min_active="$min_active") || exit 1
eval "$conf_values"   # acwt beam lattice_beam max_active min_active, checked
srcdir=$(dirname "$dir")
model=${model:-$srcdir/final.pt}
if [[ -z $trans_mdl ]]; then
  if [[ -f $srcdir/final.mdl ]]; then trans_mdl=$srcdir/final.mdl; else trans_mdl=$(dirname "$graphdir")/final.mdl; fi
fi

case $use_kaldi in
  auto) if [[ -n ${KALDI_ROOT:-} ]] && command -v latgen-faster-mapped >/dev/null; then use_kaldi=true; else use_kaldi=false; fi ;;
  true) command -v latgen-faster-mapped >/dev/null || die "--use-kaldi true but latgen-faster-mapped is not on PATH (set KALDI_ROOT)" ;;
  false) ;;
  *) die "--use-kaldi must be auto, true or false" ;;
esac
# The forward jobs ask the runner for a GPU only to use it: on CPU the RTF is a CPU figure even where
# decode_cmd gives GPUs, and nj jobs never crowd onto one GPU unasked.
case $device in
  cpu) gpu_opt=(--gpu 0) ;;
  cuda) gpu_opt=(--gpu 1) ;;
  auto) gpu_opt=() ;;
  *) die "--device must be cpu, cuda or auto, not '$device'" ;;
esac

for f in "$graphdir/HCLG.fst" "$graphdir/words.txt" "$trans_mdl" "$data/text"; do
  [[ -f $f ]] || die "no such file $f"
done
if (( stage <= 0 )); then
  for f in "$model" "$data/feats.scp" "$data/spk2utt"; do
    [[ -f $f ]] || die "no such file $f"
  done
fi

mkdir -p "$dir/log" "$dir/timing"
now() { date +%s.%N; }
wall() {  # wall <name> <start>: wall-clock seconds of a parallel stage
  awk -v s="$2" -v e="$(now)" -v nj="$nj" 'BEGIN { printf "seconds=%.3f nj=%d\n", e - s, nj }' > "$dir/timing/$1.wall"
}

if (( stage <= 0 )); then
  num_spk=$(wc -l < "$data/spk2utt")
  (( nj > num_spk )) && nj=$num_spk   # the data is split by speaker
  utils/split_data.sh "$data" "$nj"
  sdata=$data/split$nj
  rm -f "$dir"/loglikes.*.ark "$dir"/loglikes.*.scp "$dir"/timing/forward.*
  prior_opt=(); [[ -n $prior_counts ]] && prior_opt=(--prior-counts "$prior_counts")
  log "forward pass of $model over $data ($nj jobs, log: $dir/log/forward.*.log)"
  start=$(now)
  $cmd "${gpu_opt[@]}" JOB=1:"$nj" "$dir/log/forward.JOB.log" \
    python3 -m pyscripts.asr.hybrid loglikes "${prior_opt[@]}" --prior-scale "$prior_scale" \
      --device "$device" --num-threads "$num_threads" --write-log-priors "$dir/log_priors" \
      --timing "$dir/timing/forward.JOB" "$model" "$sdata/JOB/feats.scp" "$dir/loglikes.JOB.ark"
  wall forward "$start"
fi

if (( stage <= 1 )); then
  # The decode uses as many jobs as there are loglikes arks.
  nj=$(ls "$dir"/loglikes.*.ark 2>/dev/null | wc -l)
  (( nj > 0 )) || die "no $dir/loglikes.*.ark; run stage 0"
  rm -f "$dir"/lat.*.gz "$dir"/hyp.* "$dir"/lattice_best.* "$dir"/timing/decode.*
  echo "$acwt" > "$dir/acwt"
  start=$(now)
  if $use_kaldi; then
    # Raw (not determinised) lattices by default: the LM-weight sweep then searches exactly the
    # paths the decoder kept, as on the embedded backend. Determinisation with a weak network can
    # hit --max-mem and prune the lattice below --lattice-beam; the check below catches a lattice
    # that lost the decoder's own best path.
    log "decoding with Kaldi's latgen-faster-mapped ($nj jobs, determinize-lattice $determinize_lattice)"
    $cmd JOB=1:"$nj" "$dir/log/decode.JOB.log" \
      utils/timed.sh "$dir/timing/decode.JOB" \
      latgen-faster-mapped --min-active="$min_active" --max-active="$max_active" --beam="$beam" \
        --lattice-beam="$lattice_beam" --acoustic-scale="$acwt" --allow-partial=true \
        --determinize-lattice="$determinize_lattice" --max-mem="$max_mem" \
        --word-symbol-table="$graphdir/words.txt" "$trans_mdl" "$graphdir/HCLG.fst" \
        "ark:$dir/loglikes.JOB.ark" "ark:|gzip -c > $dir/lat.JOB.gz" "ark,t:$dir/hyp.JOB.int"
    wall decode "$start"
    $cmd JOB=1:"$nj" "$dir/log/lattice_best_path.JOB.log" \
      lattice-best-path --acoustic-scale="$acwt" "ark:gunzip -c $dir/lat.JOB.gz|" "ark,t:$dir/lattice_best.JOB.int"
    for j in $(seq "$nj"); do
      if ! cmp -s "$dir/hyp.$j.int" "$dir/lattice_best.$j.int"; then
        die "the lattices of job $j lost the decoder's best path for" \
          "$(diff "$dir/hyp.$j.int" "$dir/lattice_best.$j.int" | awk '/^</ { print $2 }' | sort -u | tr '\n' ' ')" \
          "(determinization pruned them, see $dir/log/decode.$j.log): raise --max-mem, lower" \
          "--lattice-beam or use --determinize-lattice false"
      fi
      read -r frames utts < <(feat-to-len "ark:$dir/loglikes.$j.ark" ark,t:- 2>> "$dir/log/decode.$j.log" | awk '{ f += $2 } END { print f, NR }')
      echo "frames=$frames utts=$utts threads=1 decoder=latgen-faster-mapped $(cat "$dir/timing/decode.$j")" \
        > "$dir/timing/decode.$j.tmp" && mv "$dir/timing/decode.$j.tmp" "$dir/timing/decode.$j"
      awk 'NR == FNR { w[$2] = $1; next } { s = $1; for (i = 2; i <= NF; i++) s = s " " w[$i]; print s }' \
        "$graphdir/words.txt" "$dir/hyp.$j.int" > "$dir/hyp.$j"
    done
  else
    log "decoding with the embedded backend, decoder $decoder ($nj jobs)"
    $cmd JOB=1:"$nj" "$dir/log/decode.JOB.log" \
      python3 -m pyscripts.asr.decode decode --acoustic-scale "$acwt" --beam "$beam" \
        --lattice-beam "$lattice_beam" --max-active "$max_active" --min-active "$min_active" \
        --decoder "$decoder" --word-symbol-table "$graphdir/words.txt" \
        "$graphdir/HCLG.fst" "$trans_mdl" "$dir/loglikes.JOB.ark" "$dir" JOB
    wall decode "$start"
  fi
fi

if (( stage <= 2 )); then
  if [[ -n $targets ]]; then
    python3 -m pyscripts.asr.hybrid fer "$dir" "$targets" 2> "$dir/log/fer.log" || { cat "$dir/log/fer.log" >&2; exit 1; }
    cat "$dir/scoring/fer"
  fi
  if compgen -G "$dir/timing/*.[0-9]*" >/dev/null; then
    python3 -m pyscripts.asr.hybrid rtf "$dir" 2> "$dir/log/rtf.log" || { cat "$dir/log/rtf.log" >&2; exit 1; }
    cat "$dir/rtf"
  fi
  if [[ $skip_scoring != true ]]; then
    # shellcheck disable=SC2086  # scoring_opts: several options, split on purpose
    local/score.sh --cmd "$cmd" --decode-conf "$decode_conf" $scoring_opts "$data" "$graphdir" "$dir"
  fi
fi
