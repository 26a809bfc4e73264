# shellcheck shell=bash
# The shell's side of the recipe's one freshness mechanism (pyscripts/fingerprint.py), sourced by run.sh
# and the steps that skip work that is up to date (steps/decode_dev_test.sh, local/run_joint.sh):
#   out_of_date WHAT STAMP [check options]   true when the step STAMP records must be (re)done; logs
#                                            "WHAT: up to date ..." or "WHAT: out of date (why) ...".
#                                            A check that fails (a bad input) ends the script.
#   python3 -m pyscripts.fingerprint commit STAMP   when the step has finished
out_of_date() {
  local what=$1 stamp=$2 rc=0; shift 2
  python3 -m pyscripts.fingerprint check "$stamp" "$@" | while read -r line; do log "$what: $line"; done || rc=$?
  case $rc in 0) return 1 ;; 3) return 0 ;; *) exit "$rc" ;; esac
}
