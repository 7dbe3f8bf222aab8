#!/usr/bin/env bash
# Runs every test program (build/tests/test_*, and build/tests/vulkan/test_*
# when the Vulkan backend was built) and every shell test (tests/test_*.sh), adds up their "N passed, M failed" lines and ends with
# the total in the same form. Exit status 0 only if nothing failed.
#
#   BUILD=build bash tests/run.sh            the CPU suite
#   BUILD=build-cuda bash tests/run.sh --cuda  the GPU tests (tests/gpu/)
#   bash tests/run.sh -k NAME                 only tests whose name has NAME
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
# GPT_TEST_BIN: the gpt command on the test build of the library (Makefile)
export GPT_BIN="$PWD/$BUILD/gpt" GPT_TEST_BIN="$PWD/$BUILD/gpt-test" GPT_BUILD="$PWD/$BUILD"
mode=cpu filter=""
while [ $# -gt 0 ]; do
    case "$1" in
    --cuda) mode=cuda ;;
    -k) filter="$2"; shift ;;
    *) echo "usage: tests/run.sh [--cuda] [-k NAME]" >&2; exit 2 ;;
    esac
    shift
done
if [ "$mode" = cuda ]; then
    progs=$(ls "$BUILD"/tests/gpu/test_* 2>/dev/null)
    scripts=$(ls tests/gpu/test_*.sh 2>/dev/null)
else
    progs=$(ls "$BUILD"/tests/test_* "$BUILD"/tests/vulkan/test_* 2>/dev/null)
    scripts=$(ls tests/test_*.sh 2>/dev/null)
fi
total_pass=0 total_fail=0 broken=""
for t in $progs $scripts; do
    case "$t" in *"$filter"*) ;; *) continue ;; esac
    echo "=== $t"
    start=$(date +%s)
    if [ "${t%.sh}" != "$t" ]; then out=$(bash "$t" 2>&1); rc=$?
    else out=$("$t" 2>&1); rc=$?; fi
    echo "$out"
    line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    if [ -z "$line" ]; then
        echo "!!! $t ended (exit $rc) without a summary line"
        total_fail=$((total_fail + 1)); broken="$broken $t"; continue
    fi
    p=${line%% passed*}; f=${line#*, }; f=${f%% failed}
    total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
    if [ "$f" = 0 ] && [ "$rc" != 0 ]; then
        echo "!!! $t exited $rc"; total_fail=$((total_fail + 1)); broken="$broken $t"
    fi
    echo "--- $t: $line ($(( $(date +%s) - start )) s)"
done
[ -n "$broken" ] && echo "broken:$broken"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" = 0 ]
