#!/usr/bin/env bash
# Makes a recipe dir (as Kaldi's egs dirs are made) from a GPU bundle (local/gpu_bundle.sh), ready for
# `./run.sh --corpus tiny --skip-setup true --stage 9 --stop-stage 10`: links to this recipe's scripts,
# code and cmd.sh (its cuda_cmd gives each training a GPU where there is one), a copy of conf/ (a run may
# add profiles to it), and the bundle's stage-8 outputs (data/, exp/, fbank/; their scp paths are relative
# to the recipe dir). Stages 9-10 then run without the corpora, sox or festival: they have no stamps
# there, so they run, and their fingerprints read only the bundled data dirs, targets, graph and model.
#
#   local/gpu_workdir.sh BUNDLE_DIR NEW_DIR
set -euo pipefail

help_message="Usage: $0 BUNDLE_DIR NEW_DIR
  e.g. $0 gpu_bundle /tmp/gpu_recipe"

. ./path.sh
. utils/parse_options.sh
if [[ $# -ne 2 ]]; then echo -e "$help_message" >&2; exit 1; fi
bundle=$1 dir=$2

. local/layout.sh   # where a recipe dir holds them
for d in "$timit_data/train" "$graph_dir" "$asr_train_targets"; do
  [[ -d $bundle/recipe/$d ]] || die "$bundle/recipe/$d is missing: $bundle is not a GPU bundle; make one with local/gpu_bundle.sh"
done
[[ ! -e $dir ]] || die "$dir exists already: give a new directory"
mkdir -p "$dir"
for name in path.sh cmd.sh run.sh local steps utils pyscripts requirements.txt requirements-debian.txt; do
  ln -s "$RECIPE_ROOT/$name" "$dir/$name"
done
if [[ -d $RECIPE_ROOT/.venv ]]; then ln -s "$RECIPE_ROOT/.venv" "$dir/.venv"; fi
cp -r "$RECIPE_ROOT/conf" "$dir/conf"
cp -r "$bundle/recipe/." "$dir/"
log "made the recipe dir $dir from $bundle"
