# tests/lib.sh - helpers for shell tests: named cases, checks, and the
# "N passed, M failed" summary line tests/run.sh adds up.
#   . tests/lib.sh
#   case_begin "name"; check "what" test -f x; case_end
#   summary
GPT=${GPT_BIN:-build/gpt}
_pass=0 _fail=0 _case="" _case_bad=0
case_begin() { _case="$1"; _case_bad=0; }
# check DESCRIPTION COMMAND...: the command must succeed.
check() {
    local what=$1; shift
    if ! "$@"; then _case_bad=1; echo "     $what"; fi
}
case_end() {
    if [ "$_case_bad" = 0 ]; then _pass=$((_pass + 1)); echo "ok   $_case"
    else _fail=$((_fail + 1)); echo "FAIL $_case"; fi
}
# differ A B: the two files are not the same (check's commands cannot start with !).
differ() { ! cmp -s "$1" "$2"; }
summary() { echo "$_pass passed, $_fail failed"; [ "$_fail" = 0 ]; }
# run_gpt OUTFILE ERRFILE ARGS...: runs gpt with a time limit, returns its exit code.
run_gpt() {
    local out=$1 err=$2; shift 2
    timeout 600 "$GPT" "$@" >"$out" 2>"$err"
}
