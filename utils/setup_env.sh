#!/usr/bin/env bash
# Creates (or reuses) the virtual environment .venv with the pinned requirements and installs the
# Debian packages the demo corpora and tests need. Idempotent: a second run installs nothing.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$root/.venv}
stamp=$venv/.requirements.sha1

missing_debs=()
while read -r pkg; do
  [[ -z $pkg || $pkg == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing_debs+=("$pkg")
done < "$root/requirements-debian.txt"
if (( ${#missing_debs[@]} )); then
  echo "setup_env: installing Debian packages: ${missing_debs[*]}"
  sudo=""; [[ $(id -u) != 0 ]] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing_debs[@]}" >/dev/null
else
  echo "setup_env: Debian packages already installed"
fi

[[ -x $venv/bin/python ]] || { echo "setup_env: creating $venv"; python3 -m venv "$venv"; }
want=$(sha1sum "$root/requirements.txt" | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  echo "setup_env: Python requirements already installed in $venv"
else
  echo "setup_env: installing Python requirements into $venv"
  # pip.conf on some machines names local indexes that may be absent: drop those warnings only.
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/requirements.txt" 2>&1 \
    | { grep -v "^WARNING: Location .* is ignored" || true; }
  echo "$want" > "$stamp"
fi
