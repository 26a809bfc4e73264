# Sourced by every script: activates the recipe's environment, like Kaldi's path.sh.
# shellcheck shell=bash
RECIPE_ROOT=${RECIPE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)}
export RECIPE_ROOT
# shellcheck source=utils/log.sh
. "$RECIPE_ROOT/utils/log.sh"   # log, error, die
# The virtual environment: $VENV when set (one venv shared by several copies of the recipe; made by
# VENV=DIR utils/setup_env.sh), else the recipe's own .venv.
if [[ -n ${VENV:-} ]]; then
  [[ -f $VENV/bin/activate ]] || { error "path.sh: VENV=$VENV has no bin/activate: make it with VENV=$VENV utils/setup_env.sh, or unset VENV"; return 1; }
  # shellcheck disable=SC1091  # made by utils/setup_env.sh
  . "$VENV/bin/activate"
elif [[ -f $RECIPE_ROOT/.venv/bin/activate ]]; then
  # shellcheck disable=SC1091  # made by utils/setup_env.sh, absent before it runs
  . "$RECIPE_ROOT/.venv/bin/activate"
fi
export PATH=$RECIPE_ROOT/utils:$RECIPE_ROOT/steps:$RECIPE_ROOT/local:$PATH
export PYTHONPATH=$RECIPE_ROOT${PYTHONPATH:+:$PYTHONPATH}
export LC_ALL=C
# glibc hands large freed blocks (a ConvNet's activations and gradients) back to the kernel and faults
# them in again, zeroed, at the next batch: a third of a CPU training's time went there. Keep them in
# the heap instead (same arithmetic, up to about 1 GB more resident). Settings of your own win.
export MALLOC_MMAP_MAX_=${MALLOC_MMAP_MAX_:-0} MALLOC_TRIM_THRESHOLD_=${MALLOC_TRIM_THRESHOLD_:-1073741824}
if [[ -n ${KALDI_ROOT:-} ]]; then
  [[ -d $KALDI_ROOT/src ]] || { error "path.sh: KALDI_ROOT=$KALDI_ROOT has no src/: point it at a Kaldi build"; return 1; }
  for d in bin featbin gmmbin latbin fstbin lmbin nnetbin nnet2bin nnet3bin; do
    PATH=$KALDI_ROOT/src/$d:$PATH
  done
  PATH=$KALDI_ROOT/tools/openfst/bin:$KALDI_ROOT/tools/sctk/bin:$PATH
  export PATH
fi
