#!/usr/bin/env bash
# Creates (or reuses) the virtual environment .venv (or $VENV) with the pinned requirements and installs
# the Debian packages the demo corpora and tests need. Idempotent: a second run installs nothing.
#   VENV=DIR          one venv for several recipe copies: export VENV=DIR for them too (path.sh uses it)
#   TORCH_BUILD=auto|cpu|cuda   the torch build (auto: CUDA where nvidia-smi -L lists a GPU, else CPU)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Not path.sh: the environment it activates is what this script makes.
# shellcheck source=utils/log.sh
. "$root/utils/log.sh"
# VENV=DIR: a venv outside the recipe, shared by several copies of it (path.sh activates $VENV when set).
venv=${VENV:-$root/.venv}
[[ $venv == /* ]] || venv=$PWD/$venv   # path.sh sources it from other directories: make it absolute
stamp=$venv/.requirements.sha1

missing_debs=()
while read -r pkg; do
  [[ -z $pkg || $pkg == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing_debs+=("$pkg")
done < "$root/requirements-debian.txt"
if (( ${#missing_debs[@]} )); then
  log "installing Debian packages: ${missing_debs[*]}"
  sudo=""; [[ $(id -u) != 0 ]] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing_debs[@]}" >/dev/null
else
  log "Debian packages already installed"
fi

# The torch build: CUDA where an NVIDIA driver lists a GPU, else CPU; TORCH_BUILD=cpu|cuda forces one.
torch_build=${TORCH_BUILD:-auto}
case $torch_build in
  auto) if nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then torch_build=cuda; else torch_build=cpu; fi ;;
  cpu|cuda) ;;
  *) die "TORCH_BUILD=$torch_build: use auto, cpu or cuda" ;;
esac
torch_pin=$(grep -E '^torch==' "$root/requirements.txt" | cut -d'#' -f1 | tr -d ' ')
[[ -n $torch_pin ]] || die "requirements.txt pins no torch==VERSION"

pip_install() {  # pip.conf on some machines names local indexes that may be absent: drop those warnings only
  "$venv/bin/pip" install -q --disable-pip-version-check "$@" 2>&1 | { grep -v "^WARNING: Location .* is ignored" || true; }
  return "${PIPESTATUS[0]}"
}
torch_cuda() { "$venv/bin/python" -c 'import torch; print(torch.version.cuda or "")'; }

[[ -x $venv/bin/python ]] || { log "creating $venv"; python3 -m venv "$venv"; }
want="$(sha1sum "$root/requirements.txt" | cut -d' ' -f1) torch=$torch_build"
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  log "Python requirements already installed in $venv"
else
  log "installing Python requirements into $venv"
  pip_install -r "$root/requirements.txt" || die "pip could not install requirements.txt into $venv"
  # The index may serve the other build (PyPI: CUDA on Linux x86_64; a local mirror: often CPU only).
  if [[ $torch_build == cuda && -z $(torch_cuda) ]]; then
    index=${TORCH_CUDA_INDEX:-https://download.pytorch.org/whl/cu128}
    log "this machine has an NVIDIA GPU but pip installed the CPU build of torch: $torch_pin from $index"
    # (pip.conf's own find-links and extra indexes still take part: what came is checked, not assumed)
    { pip_install --force-reinstall --no-deps --index-url "$index" "$torch_pin" && [[ -n $(torch_cuda) ]]; } \
      || die "no CUDA build of $torch_pin from $index: set TORCH_CUDA_INDEX to an index that has one" \
             "(https://download.pytorch.org/whl/cuXYZ for the CUDA version of your driver, nvidia-smi), or" \
             "train on the CPU: TORCH_BUILD=cpu utils/setup_env.sh, and cuda_cmd without --gpu in cmd.sh"
  elif [[ $torch_build == cpu && -n $(torch_cuda) && -n ${TORCH_CPU_INDEX:-} ]]; then
    log "no GPU here: the CPU build of $torch_pin from $TORCH_CPU_INDEX (smaller than the CUDA build)"
    pip_install --force-reinstall --no-deps --index-url "$TORCH_CPU_INDEX" "$torch_pin" \
      || die "no CPU build of $torch_pin from TORCH_CPU_INDEX=$TORCH_CPU_INDEX"
  fi
  echo "$want" > "$stamp"
fi
cuda=$(torch_cuda)
log "torch: $("$venv/bin/python" -c 'import torch; print(torch.__version__)'), the ${cuda:+CUDA $cuda }${cuda:-CPU }build" \
  "(TORCH_BUILD=$torch_build; README, 'Running on GPUs')"
