#!/usr/bin/env bash
# Makes, here (a CPU machine with a package index), the bundle that local/gpu_check.sh runs from on a GPU
# machine that has neither a package index nor sox, festival or Kaldi. The bundle travels with the repo
# (the device tool's `carry: ["gpu_bundle"]`); it and the repository's files must fit in 64 MiB.
#   OUT/wheels/          the Kaldi wheels pinned in requirements.txt, for CPython 3.12 manylinux x86_64 (the
#                        GPU image has torch, numpy, scipy, pyyaml, tqdm; each wheel's Requires-Dist is checked)
#   OUT/recipe/          the tiny run's stage-8 outputs, all that stages 9-10 read: data/timit/{train,dev,test}
#                        (with their fbank arks in fbank/ and the global CMVN stats), the alignments' targets
#                        (exp/mono_ali*/targets), exp/mono's final.mdl, tree and graph (HCLG.fst); scp paths
#                        relative to the recipe dir
#   OUT/reference.json   stages 9-10 of the tiny run on this CPU (FER, PER dev/test; the recipe's seed), and
#                        --seeds more runs with other seeds: how far a run of another seed lies from it
#   OUT/bundle.json      what was made, with what, and the sizes
#
#   local/gpu_bundle.sh [--out gpu_bundle] [--seeds 6] [--wheels true] [--nj 2] [--corpus-dir DIR] [--work-dir DIR]
set -euo pipefail

out=gpu_bundle
seeds=6              # CPU runs with other seeds beside the reference: the spread that sets the tolerance
wheels=true          # false: no wheels (gpu_check.sh --dry-run needs none; the GPU machine does)
nj=2
corpus_dir=          # where the tiny corpora are (generated when missing); default: in the work dir
work_dir=            # scratch dir (kept); default: a new temporary dir, removed at the end
limit_mib=64         # the most that may travel to the GPU machine: the repository's files and the bundle
help_message="Usage: $0 [options]
  --out DIR          the bundle (default $out; replaced)
  --seeds N          CPU runs with other seeds for the tolerance (default $seeds)
  --wheels BOOL      download the Kaldi wheels (default $wheels)
  --nj N             parallel jobs of the tiny run (default $nj)
  --corpus-dir DIR   the tiny corpora (default: generated in the work dir)
  --work-dir DIR     scratch dir, kept (default: a temporary dir, removed)"

. ./path.sh
. utils/parse_options.sh
. local/layout.sh   # where the recipe dir holds what the bundle takes
if [[ $# -ne 0 ]]; then echo -e "$help_message" >&2; exit 1; fi
if [[ ! $seeds =~ ^[0-9]+$ ]]; then die "--seeds $seeds: give a number of runs, 0 or more"; fi
if [[ -e $out && ! -f $out/bundle.json ]]; then die "$out exists and is not a bundle (no bundle.json): move it away"; fi
if [[ -z $work_dir ]]; then
  work_dir=$(mktemp -d "${TMPDIR:-/tmp}/gpu_bundle.XXXXXX"); trap 'rm -rf "$work_dir"' EXIT
fi
mkdir -p "$work_dir"
work_dir=$(cd "$work_dir" && pwd)
corpus_dir=${corpus_dir:-$work_dir/corpora}
mkdir -p "$corpus_dir"
corpus_dir=$(cd "$corpus_dir" && pwd)   # run.sh runs in the work dir
rm -rf "$out"
mkdir -p "$out"
started=$SECONDS

# The device README's platforms: pip matches manylinux_2_N exactly, so each N the pinned wheels use.
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
download_wheels() {  # the Kaldi pins of requirements.txt, for the GPU image's CPython 3.12
  local pins
  mapfile -t pins < <(grep -E '^kaldi' requirements.txt)
  (( ${#pins[@]} > 0 )) || die "requirements.txt has no kaldi* pins"
  log "downloading ${#pins[@]} wheels for CPython 3.12: ${pins[*]}"
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" -d "$out/wheels" "${pins[@]}" > "$work_dir/pip.log" 2>&1 \
    || { cat "$work_dir/pip.log" >&2; die "pip download failed (no package index here? --wheels false makes a bundle without wheels," \
           "enough for local/gpu_check.sh --dry-run)"; }
  python3 -m pyscripts.bench.gpu_check wheels "$out"/wheels/*.whl > "$work_dir/wheel_requires.json" \
    || die "a wheel needs a package that is neither bundled nor in the GPU image: see $work_dir/wheel_requires.json"
}

link_recipe() {  # link_recipe DIR: a recipe dir linking this one's scripts (as Kaldi's egs dirs do)
  mkdir -p "$1"
  for name in path.sh cmd.sh run.sh conf local steps utils pyscripts requirements.txt requirements-debian.txt; do
    ln -s "$RECIPE_ROOT/$name" "$1/$name"
  done
  if [[ -d $RECIPE_ROOT/.venv ]]; then ln -s "$RECIPE_ROOT/.venv" "$1/.venv"; fi
}

copy_inputs() {  # copy_inputs RECIPE_DIR DEST: what stages 9-10 read, scp paths made relative
  local src=$1 dst=$2 x a
  mkdir -p "$dst/data/timit" "$dst/exp/mono" "$dst/fbank"
  cp "$src/data/.corpus" "$dst/data/"
  for x in train dev test; do
    cp -r "$src/data/timit/$x" "$dst/data/timit/"
    rm -rf "$dst/data/timit/$x"/split*
    cp "$src"/fbank/raw_fbank_"$x".* "$dst/fbank/"
  done
  cp -r "$src"/exp/mono/{final.mdl,tree,phones.txt,graph} "$dst/exp/mono/"
  for a in "$asr_train_targets" "$asr_dev_targets" "$asr_test_targets"; do
    mkdir -p "$dst/$(dirname "$a")"
    cp -r "$src/$a" "$dst/$(dirname "$a")/"
    rm -rf "${dst:?}/$a/log"
  done
  # Kaldi's scp files name their arks by absolute path; relative ones hold wherever the dir lands.
  find "$dst" -name '*.scp' -exec sed -i "s| $src/| |" {} +
  if grep -rlF "$src" "$dst"; then die "the files above still name $src: they would not work in another place"; fi
}

reference_run() {  # reference_run NAME [run.sh options]: stages 9-10 on the CPU, results in $work_dir/NAME.json
  local name=$1; shift
  log "CPU run $name: stages 9-10 ($work_dir/ref/log.$name)"
  # No GPU for the reference, whatever this machine has.
  (cd "$work_dir/ref" && CUDA_VISIBLE_DEVICES='' ./run.sh --corpus tiny --skip-setup true --nj "$nj" \
     --stage 9 --stop-stage 10 "$@") > "$work_dir/ref/log.$name" 2>&1 \
    || { tail -n 30 "$work_dir/ref/log.$name" >&2; die "the CPU run $name failed: see $work_dir/ref/log.$name"; }
  python3 -m pyscripts.bench.gpu_check results --expect-device cpu "$work_dir/ref/exp/convnet_asr" \
    --json "$work_dir/$name.json" > /dev/null
}

travel_bytes() {  # the repository's files that travel to the GPU machine: tracked, and untracked but not ignored
  git -C "$RECIPE_ROOT" ls-files -z --cached --others --exclude-standard \
    | (cd "$RECIPE_ROOT" && xargs -0 -r stat -c %s 2>/dev/null) | awk '{ s += $1 } END { print s + 0 }'
}

if [[ $wheels == true ]]; then download_wheels; else log "--wheels false: no wheels in the bundle"; fi

log "stages 1-8 of the tiny recipe in $work_dir/tiny (log: $work_dir/tiny.log)"
rm -rf "$work_dir/tiny" "$work_dir/ref"
link_recipe "$work_dir/tiny"
(cd "$work_dir/tiny" && ./run.sh --corpus tiny --skip-setup true --nj "$nj" --corpus-dir "$corpus_dir" --stop-stage 8) \
  > "$work_dir/tiny.log" 2>&1 || { tail -n 30 "$work_dir/tiny.log" >&2; die "stages 1-8 failed: see $work_dir/tiny.log"; }
copy_inputs "$work_dir/tiny" "$out/recipe"

# The reference runs from the bundle itself, as gpu_check.sh will: proof that the bundle holds all that
# stages 9-10 need. The other seeds are profiles of the tiny config (run.sh --nnet-profile seedK).
local/gpu_workdir.sh "$out" "$work_dir/ref"
reference_run seed0
runs=("$work_dir/seed0.json")
for k in $(seq "$seeds"); do
  printf 'base: convnet_asr_tiny.yaml\ntraining:\n  seed: %d\n' "$k" > "$work_dir/ref/conf/convnet_asr_seed$k.yaml"
  reference_run "seed$k" --nnet-profile "seed$k"
  runs+=("$work_dir/seed$k.json")
done
python3 -m pyscripts.bench.gpu_check reference --json "$out/reference.json" "${runs[@]}" > /dev/null

size() { du -sb "$1" 2>/dev/null | cut -f1; }
wheel_bytes=0; [[ -d $out/wheels ]] && wheel_bytes=$(size "$out/wheels")
recipe_bytes=$(size "$out/recipe") repo_bytes=$(travel_bytes)
printf '{\n "made": "%s",\n "commit": "%s",\n "python": "%s",\n "seeds": %d,\n "seconds": %d,\n' \
  "$(date '+%FT%T')" "$(git -C "$RECIPE_ROOT" rev-parse HEAD 2>/dev/null || echo unknown)" \
  "$(python3 -c 'import platform; print(platform.python_version())')" "$seeds" "$((SECONDS - started))" > "$out/bundle.json"
printf ' "wheels": [%s],\n' "$(cd "$out" && for w in wheels/*.whl; do [[ -f $w ]] && printf '"%s",' "${w#wheels/}"; done | sed 's/,$//')" \
  >> "$out/bundle.json"
printf ' "bytes": {"wheels": %d, "recipe": %d, "reference": %d, "repository": %d}\n}\n' \
  "$wheel_bytes" "$recipe_bytes" "$(size "$out/reference.json")" "$repo_bytes" >> "$out/bundle.json"
total=$(( $(size "$out") + repo_bytes ))
log "bundle $out: wheels $((wheel_bytes / 1024)) KiB, recipe inputs $((recipe_bytes / 1024)) KiB;" \
    "with the repository's files $((total / 1024)) KiB of the ${limit_mib} MiB that may travel"
if (( total > limit_mib * 1024 * 1024 )); then
  die "$out and the repository's files take $((total / 1024 / 1024)) MiB, more than the ${limit_mib} MiB that travel"
fi
log "done in $((SECONDS - started)) s; on the GPU machine: bash local/gpu_check.sh --bundle $out (carry: [\"$out\"])"
