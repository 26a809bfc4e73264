# Sourced: reads a Kaldi-style conf file (`--name=value` lines, # comments) into shell variables
# conf_<name> (dashes become underscores), for scripts that hand the options to Kaldi's binaries.
# Sourced after path.sh (its errors go through utils/log.sh's error).
# shellcheck shell=bash
[[ -f ${1:-} ]] || { error "read_conf.sh: conf file ${1:-} not found"; return 1; }
while IFS= read -r _line || [[ -n $_line ]]; do
  _line=${_line%%#*}
  _line=${_line#"${_line%%[![:space:]]*}"}; _line=${_line%"${_line##*[![:space:]]}"}
  [[ -z $_line ]] && continue
  if [[ ! $_line =~ ^--([A-Za-z0-9-]+)=(.*)$ ]]; then
    error "read_conf.sh: $1: expected --name=value, got '$_line'"; return 1
  fi
  _name=${BASH_REMATCH[1]//-/_}
  printf -v "conf_$_name" '%s' "${BASH_REMATCH[2]}"
done < "$1"
unset _line _name
