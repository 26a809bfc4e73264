#!/usr/bin/env bash
# Creates (or reuses) the virtual environment .venv with the pinned requirements and installs the
# Debian packages the demo corpora and tests need. Idempotent: a second run installs nothing.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Not path.sh: the environment it activates is what this script makes.
# shellcheck source=utils/log.sh
. "$root/utils/log.sh"
venv=${VENV:-$root/.venv}
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

[[ -x $venv/bin/python ]] || { log "creating $venv"; python3 -m venv "$venv"; }
want=$(sha1sum "$root/requirements.txt" | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  log "Python requirements already installed in $venv"
else
  log "installing Python requirements into $venv"
  # pip.conf on some machines names local indexes that may be absent: drop those warnings only.
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/requirements.txt" 2>&1 \
    | { grep -v "^WARNING: Location .* is ignored" || true; }
  echo "$want" > "$stamp"
fi
