# Kaldi-style option parsing, sourced after the caller has set its defaults:
#   --some-option VALUE sets the shell variable some_option (it must already exist),
#   --config FILE sources FILE first, --help prints $help_message.
# Values are only ever assigned, never evaluated. As in Kaldi, an option whose default is true or false
# takes only true or false; here also an option with an integer default takes only integers, because
# scripts use such values in bash arithmetic, which would run the command in 'x[$(command)]'.
# shellcheck shell=bash
while true; do
  [[ $# -eq 0 ]] && break
  case "$1" in
    --help|-h)
      echo -e "${help_message:-no help for this script}" >&2; exit 0 ;;
    --*=*)
      echo "$0: use '--option value', not '--option=value': $1" >&2; exit 1 ;;
    --*)
      name=${1#--}; name=${name//-/_}
      # A checked name first: ${!name} on 'x[$(command)]' would run the command.
      if [[ ! $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ || -z ${!name+set} ]]; then
        echo "$0: unknown option $1" >&2; exit 1
      fi
      if [[ $# -lt 2 ]]; then
        echo "$0: option $1 needs a value" >&2; exit 1
      fi
      if [[ $name == config ]]; then
        # shellcheck disable=SC1090
        . "$2" || { echo "$0: cannot read config $2" >&2; exit 1; }
      fi
      case ${!name} in
        true|false) [[ $2 == true || $2 == false ]] ||
          { echo "$0: option $1 takes true or false, not '$2'" >&2; exit 1; } ;;
        *) if [[ ${!name} =~ ^-?[0-9]+$ && ! $2 =~ ^-?[0-9]+$ ]]; then
             echo "$0: option $1 takes an integer, not '$2'" >&2; exit 1
           fi ;;
      esac
      printf -v "$name" '%s' "$2"
      shift 2 ;;
    *) break ;;
  esac
done
unset name
