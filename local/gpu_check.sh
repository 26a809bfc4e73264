#!/usr/bin/env bash
# The five-minute GPU check (issue 24): on one GPU (written for an H100 with 16 cores, no package index,
# no sox/festival/Kaldi, its own python3 3.12 with a CUDA torch 2.11), from a bundle made on a CPU machine.
#
#   here (CPU, package index):  local/gpu_bundle.sh
#   on the device, repo root:   bash local/gpu_check.sh --bundle gpu_bundle      (device tool: carry ["gpu_bundle"])
#   CI and here, on the CPU:    local/gpu_check.sh --dry-run true --bundle gpu_bundle
#
# Steps; each one's failure is reported and the next one runs; the script ends non-zero if any failed:
#   wheels  install the bundle's Kaldi wheels into --site (pip --no-index --no-deps --target; PYTHONPATH),
#           leaving the image's torch alone
#   build   the torch build: torch.__version__, torch.version.cuda, the device, its capability, bf16 support
#           and the autocast dtype training picks; every module the recipe imports
#   bench   the fixed benchmark, pyscripts/bench/gpu_epoch.py (JSON: bench.json)
#   recipe  stages 9-10 of the tiny recipe (./run.sh --stage 9 --stop-stage 10) on the bundle's stage-8
#           outputs, the training on the GPU (cmd.sh's cuda_cmd: run.pl --gpu 1), decoding with the embedded
#           decoder (the kaldi-decoder wheels; no KALDI_ROOT); FER/PER compared with the bundle's CPU reference
#   trunk   the frozen-trunk cache on the GPU: a transfer training from the stage-9 model with
#           init.freeze_layers --freeze-layers, cached and with training.trunk_cache_mb=0: both dev FERs
#           and the peak GPU memory of each
# Tolerance of the comparisons: a GPU FER/PER passes when it lies no further from the CPU reference than
# the furthest of the bundle's CPU runs with other seeds does, plus --margin points (absolute). The GPU run
# differs from the CPU run in arithmetic (bf16 on the GPU; the CPU's own dtype; other kernels and
# nondeterministic sums) and in its dropout masks (CUDA's generator): it is one more draw from the seeds'
# spread. On the tiny corpus that spread is wide (a 2-epoch model at ~90% FER: CPU seeds differed from the
# reference by up to 10 points FER and 4.4 PER dev; bf16 vs fp32 alone moved dev FER by 5.6 points), so the
# check shows that the GPU path trains and decodes to a model like the CPU's, not a fine accuracy match.
# The trunk check takes the dev FER tolerance for cached vs uncached.
#
# Output (--out; default $OUT when set, else exp/gpu_check): gpu_check.json (every step's results, written
# after each step), bench.json, gpu_check.log (this script's output: steps, failures, a summary), steps.log
# (each step's whole output), logs.tar.gz (those, the JSON, the stage-9 training's and decodings' logs).
# --dry-run true runs the same steps on the CPU with tiny sizes (benchmark on a few frames, --device cpu,
# the wheels installed for CPython 3.12 into a scratch dir but not used): the check of this script in CI.
set -euo pipefail

bundle=gpu_bundle
out=                 # default: $OUT (the device tool's output dir) when set, else exp/gpu_check
work_dir=            # scratch dir (the recipe dir, the site of a dry run); default: a new temporary dir
dry_run=false
steps=wheels,build,bench,recipe,trunk
site=/tmp/site       # where the wheels go (a dry run: WORK_DIR/site)
nj=4                 # decoding jobs of stage 10
margin=2.0           # points added to the CPU seeds' spread (see the tolerance above)
freeze_layers=3      # the trunk check's frozen layers (>= 2: the cache's rule)
bench_opts="--seconds 3 --warmup-seconds 3"
trunk_opts=          # more train.py options of the trunk check's two trainings
help_message="Usage: $0 [options]
  --bundle DIR        made by local/gpu_bundle.sh (default $bundle)
  --out DIR           results (default: \$OUT, else exp/gpu_check)
  --work-dir DIR      scratch dir (default: a new temporary dir)
  --dry-run BOOL      the same steps on the CPU, tiny sizes (default $dry_run)
  --steps LIST        the steps to run, comma-separated (default $steps)
  --site DIR          where the wheels are installed (default $site)
  --nj N              decoding jobs (default $nj)
  --margin POINTS     added to the CPU seeds' spread for the tolerance (default $margin)
  --freeze-layers L   frozen layers of the trunk check (default $freeze_layers)
  --bench-opts 'OPTS' options of pyscripts.bench.gpu_epoch (default '$bench_opts')
  --trunk-opts 'OPTS' more pyscripts.nnet.train options of the trunk check's trainings"

cd "$(dirname "$0")/.."
. ./path.sh
. utils/parse_options.sh
. local/layout.sh   # where the recipe step's outputs are
if [[ $# -ne 0 ]]; then echo -e "$help_message" >&2; exit 1; fi
[[ -d $bundle ]] || die "--bundle $bundle: no such dir; make it with local/gpu_bundle.sh (here, on a CPU machine)"
[[ $freeze_layers =~ ^[2-5]$ ]] || die "--freeze-layers $freeze_layers: the trunk cache needs 2..5 frozen layers"
bundle=$(cd "$bundle" && pwd)
out=${out:-${OUT:-exp/gpu_check}}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work_dir=${work_dir:-$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")}
mkdir -p "$work_dir/json" "$work_dir/logs" "$work_dir/runs"
work_dir=$(cd "$work_dir" && pwd)
rm -f "$work_dir/steps.tsv" "$work_dir"/json/*.json "$work_dir"/runs/*.json "$work_dir"/logs/*.log
rm -f "$out"/{gpu_check.json,bench.json,gpu_check.log,steps.log,logs.tar.gz}

device=cuda
if [[ $dry_run == true ]]; then
  device=cpu site=$work_dir/site nj=2
  bench_opts="--frames 1200 --batch-sizes 256 --seconds 0.3 --warmup-seconds 0.3"
  trunk_opts="--set training.max_epochs=1"
fi
# The wheels serve every step and job (path.sh keeps PYTHONPATH); a dry run's are for CPython 3.12 and
# stay unused.
if [[ $dry_run != true ]]; then export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$site; fi
exec > >(tee -a "$out/gpu_check.log") 2>&1
tee_pid=$!
trap 'exec >&- 2>&-; wait "$tee_pid"' EXIT   # the log is whole when the script returns
log "gpu check: bundle $bundle, output $out, scratch $work_dir, device $device$([[ $dry_run == true ]] && echo ' (dry run)')"
started=$SECONDS

# ---------------------------------------------------------------- the steps
step_wheels() {
  local wheels=("$bundle"/wheels/*.whl)
  [[ -f ${wheels[0]} ]] || die "no wheels in $bundle/wheels: make the bundle with local/gpu_bundle.sh --wheels true"
  # The GPU image's CPython 3.12 and manylinux, named, so that a dry run elsewhere installs the same files.
  python3 -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 "${wheels[@]}"
  ls "$site"
}

step_build() {
  python3 -m pyscripts.bench.gpu_check build --device "$device" --json "$work_dir/json/build.json"
  # utils/run.pl runs every job: Debian's perl-base alone lacks Time::HiRes.
  perl -MTime::HiRes -MPOSIX -MFcntl -MCwd -MFile::Path -e 1 \
    || die "this perl lacks modules that utils/run.pl uses (Time::HiRes is in Debian's libperl, not perl-base)"
}

step_bench() {
  # shellcheck disable=SC2086  # bench_opts: several options, split on purpose
  python3 -m pyscripts.bench.gpu_epoch --device "$device" $bench_opts --json "$out/bench.json"
  cp "$out/bench.json" "$work_dir/json/bench.json"
}

step_recipe() {
  local recipe=$work_dir/recipe
  rm -rf "$recipe"
  local/gpu_workdir.sh "$bundle" "$recipe"
  (cd "$recipe" && ./run.sh --corpus tiny --skip-setup true --nj "$nj" --stage 9 --stop-stage 10)
  python3 -m pyscripts.bench.gpu_check results --expect-device "$device" "$recipe/exp/convnet_asr" \
    --json "$work_dir/json/recipe.json"
  python3 -m pyscripts.bench.gpu_check compare --margin "$margin" "$bundle/reference.json" \
    "$work_dir/json/recipe.json" --json "$work_dir/json/compare.json"
}

trunk_training() {  # trunk_training NAME [train.py options]: the transfer training of the trunk check
  local name=$1; shift
  rm -rf "exp/trunk_$name"
  log "trunk check: training exp/trunk_$name"
  # shellcheck disable=SC2086  # trunk_opts: several options, split on purpose
  python3 -m pyscripts.bench.gpu_check train --json "$work_dir/runs/trunk_$name.json" -- \
    --config conf/convnet_asr_tiny.yaml --device "$device" --init-from exp/convnet_asr/final.pt \
    --freeze-layers "$freeze_layers" --cmvn-stats "$asr_cmvn_stats" $trunk_opts "$@" \
    "$timit_data/train" "$timit_data/dev" "$asr_train_targets" "$asr_dev_targets" "exp/trunk_$name"
}

step_trunk() {
  cd "$work_dir/recipe" || die "no recipe dir $work_dir/recipe: the trunk check needs the recipe step's model"
  [[ -f exp/convnet_asr/final.pt ]] || die "no exp/convnet_asr/final.pt: stage 9 (the recipe step) did not finish"
  trunk_training cached
  trunk_training uncached --set training.trunk_cache_mb=0
  python3 -m pyscripts.bench.gpu_check trunk --margin "$margin" "$bundle/reference.json" \
    "$work_dir"/runs/trunk_{cached,uncached}.json --json "$work_dir/json/trunk.json"
}

write_report() {  # gpu_check.json from what the steps wrote so far (also after a step that failed)
  python3 -m pyscripts.bench.gpu_check report --steps "$work_dir/steps.tsv" --json-dir "$work_dir/json" \
    --out "$out/gpu_check.json" --set "dry_run=$dry_run" --set "bundle=$bundle" --set "work_dir=$work_dir" \
    --set "seconds=$((SECONDS - started))" \
    || error "could not write $out/gpu_check.json"
}

cp "$bundle/reference.json" "$work_dir/json/reference.json" 2>/dev/null \
  || error "$bundle/reference.json is missing: the FER/PER comparisons will fail"
failed=()
run_step() {  # run_step NAME: runs step_NAME, its output in logs/NAME.log; a failure is recorded, not fatal
  local name=$1 begin=$SECONDS rc=0
  log "step $name"
  # A background subshell keeps `set -e` working inside the step (it is off in a `||` context) and
  # keeps the step's cd and variables to itself.
  (set -euo pipefail; "step_$name") > "$work_dir/logs/$name.log" 2>&1 &
  wait $! || rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - begin))" >> "$work_dir/steps.tsv"
  { echo "===== step $name (exit $rc)"; cat "$work_dir/logs/$name.log"; } >> "$out/steps.log"
  if (( rc == 0 )); then
    log "step $name: ok ($((SECONDS - begin)) s)"
  else
    failed+=("$name")
    tail -n 25 "$work_dir/logs/$name.log"
    error "step $name: FAILED (exit $rc, $((SECONDS - begin)) s; log $work_dir/logs/$name.log)"
  fi
  write_report
}

IFS=, read -r -a selected <<< "$steps"
for name in "${selected[@]}"; do
  declare -F "step_$name" > /dev/null || die "--steps: no step '$name' (the steps: wheels,build,bench,recipe,trunk)"
done
for name in "${selected[@]}"; do run_step "$name"; done

# The logs: the steps', the stage-9 training's and the decodings', the tiny run's results table.
logs=(logs json runs)
for f in recipe/exp/convnet_asr/log recipe/exp/convnet_asr/decode_{dev,test}/log recipe/exp/convnet_asr/history.tsv \
         recipe/exp/RESULTS.md; do
  if [[ -e $work_dir/$f ]]; then logs+=("$f"); fi
done
tar -C "$work_dir" -czf "$out/logs.tar.gz" "${logs[@]}" || error "could not write $out/logs.tar.gz"
python3 -m pyscripts.bench.gpu_check summary "$out/gpu_check.json" || true
if (( ${#failed[@]} )); then
  die "gpu check: ${#failed[@]} step(s) failed: ${failed[*]} ($((SECONDS - started)) s; $out/gpu_check.json)"
fi
log "gpu check: all steps passed in $((SECONDS - started)) s; $out/gpu_check.json"
