#!/usr/bin/env bash
# Hybrid decoding of a model's dev and test sets (steps/decode_hybrid.sh into MODEL_DIR/decode_{dev,test}),
# test scored at the setting chosen on dev. Skipped when MODEL_DIR/decode.stamp (pyscripts/fingerprint.py)
# says both were made from the same model, priors, graph, data, targets, decode conf and options; a decode
# reached through a link (a transfer Baseline) is the linked one: the model is keyed by its role, not its path.
set -euo pipefail

nj=4
cmd=${decode_cmd:-run.pl}
device=cpu             # forward pass: cpu | cuda | auto
num_threads=1          # torch threads per forward job
decode_conf=conf/decode.conf
decode_opts=           # more options of steps/decode_hybrid.sh, e.g. "--beam 15"
force=false            # true: decode again even when up to date

help_message="Usage: $0 [options] GRAPH_DIR DATA_ROOT DEV_TARGETS TEST_TARGETS MODEL_DIR
  e.g. $0 exp/mono/graph data/timit exp/mono_ali_dev/targets exp/mono_ali_test/targets exp/convnet_asr
DATA_ROOT holds dev/ and test/ data dirs with features; MODEL_DIR holds final.pt (and its prior_counts).
Options (defaults in brackets):
  --nj N / --cmd CMD / --device DEV / --num-threads N   as steps/decode_hybrid.sh's [$nj, \$decode_cmd, $device, $num_threads]
  --decode-conf FILE     decoding and scoring settings [$decode_conf]
  --decode-opts 'OPTS'   more options of steps/decode_hybrid.sh
  --force B              true: decode again even when up to date [$force]"

. ./path.sh
. utils/parse_options.sh
. utils/stamp.sh
if [[ $# -ne 5 ]]; then echo -e "$help_message" >&2; exit 1; fi
graph=$1 data=$2 dev_targets=$3 test_targets=$4 dir=$5
[[ -f $dir/final.pt ]] || die "no $dir/final.pt: train the model first"

backend=embedded; [[ -n ${KALDI_ROOT:-} ]] && backend=kaldi
force_opt=(); [[ $force == true ]] && force_opt=(--force)
out_of_date "$dir decode" "$dir/decode.stamp" "${force_opt[@]}" \
  --named model "$dir/final.pt" --named prior_counts "$dir/prior_counts" --named graph "$graph" \
  --named transition_model "$(dirname "$graph")/final.mdl" --named decode_conf "$decode_conf" \
  --named dev_targets "$dev_targets" --named test_targets "$test_targets" \
  --data "$data/dev" --data "$data/test" --input "$data/dev/feats.scp" --input "$data/test/feats.scp" \
  --option "backend=$backend" --option "decode_opts=$decode_opts" \
  --output "$dir/decode_dev/scoring/result.json" --output "$dir/decode_test/scoring/result.json" || exit 0

opts=(--nj "$nj" --cmd "$cmd" --device "$device" --num-threads "$num_threads" --decode-conf "$decode_conf")
# shellcheck disable=SC2086  # decode_opts: several options, split on purpose
steps/decode_hybrid.sh "${opts[@]}" --targets "$dev_targets" $decode_opts "$graph" "$data/dev" "$dir/decode_dev"
# shellcheck disable=SC2086
steps/decode_hybrid.sh "${opts[@]}" --targets "$test_targets" --scoring-opts "--tune-dir $dir/decode_dev" \
  $decode_opts "$graph" "$data/test" "$dir/decode_test"
python3 -m pyscripts.fingerprint commit "$dir/decode.stamp"
