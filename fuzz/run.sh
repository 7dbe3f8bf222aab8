#!/usr/bin/env bash
# fuzz/run.sh - builds the libFuzzer targets (fuzz/fuzz_*.c) with clang,
# AddressSanitizer and UBSan, and runs them.
#
#   bash fuzz/run.sh               build, then replay every seed corpus
#   bash fuzz/run.sh --ci          build, replay, then fuzz each target 60 s
#   bash fuzz/run.sh --seconds N   build, replay, then fuzz each target N s
#   bash fuzz/run.sh --build       build only
#   ... --target NAME              only the targets whose name contains NAME
#
# Seeds live in fuzz/corpus/<target>/ (small files; add crashing inputs
# there as regression cases). New inputs found while fuzzing go to
# build-fuzz/corpus/<target>/, crashes to build-fuzz/artifacts/. The library
# (src/*.c src/*/*.c, not src/cuda) and the command line's side-effect-free
# parsers (tools/cli.c, cli_help.c, train_args.c) and its output folder's handling
# (tools/train_out.c, tools/plot.c) are compiled with clang into
# build-fuzz/libgpt-fuzz.a; a file clang cannot compile here is left out
# (targets only link what they use). The last line is "N passed, M failed":
# one pass per target that built and ran clean.
set -u
cd "$(dirname "$0")/.."
CC=${FUZZ_CC:-clang}
OUT=build-fuzz
mode=replay seconds=60 only=""
while [ $# -gt 0 ]; do
    case "$1" in
    --ci) mode=fuzz ;;
    --seconds) mode=fuzz; seconds=${2:-}; shift ;;
    --build) mode=build ;;
    --target) only=${2:-}; shift ;;
    -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: fuzz/run.sh [--ci | --seconds N | --build] [--target NAME]" >&2; exit 2 ;;
    esac
    shift
done
case "$seconds" in '' | *[!0-9]*) echo "fuzz/run.sh: --seconds needs a whole number" >&2; exit 2 ;; esac

targets=""
for f in fuzz/fuzz_*.c; do
    t=$(basename "$f" .c)
    case "$t" in *"$only"*) targets="$targets $t" ;; esac
done
n_targets=$(echo $targets | wc -w)
if ! command -v "$CC" >/dev/null 2>&1; then
    echo "fuzz/run.sh: $CC not found (install clang and libclang-rt-dev)"
    echo "0 passed, $n_targets failed"
    exit 1
fi

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CFLAGS="-std=c11 -g -O1 -fno-omit-frame-pointer -D_DEFAULT_SOURCE -Iinclude -Isrc -Itools $SAN"
OMP=""
if echo 'int main(void){return 0;}' | $CC -fopenmp -x c - -o /dev/null 2>/dev/null; then OMP=-fopenmp; fi

# The library, rebuilt where a source or any header is newer than its object.
mkdir -p "$OUT/obj"
newest_h=$(ls -t include/*.h src/*.h src/*/*.h tools/*.h 2>/dev/null | head -n 1)
objs="" skipped=""
for src in src/*.c src/*/*.c tools/cli.c tools/cli_help.c tools/train_args.c tools/train_out.c tools/plot.c; do
    # the GPU backends and the MPI/NCCL communicators (dist.c stands in for them)
    case "$src" in src/cuda/* | src/vulkan/* | src/dist/comm_*) continue ;; esac
    [ -f "$src" ] || continue
    obj="$OUT/obj/$(echo "${src%.c}" | tr '/' '_').o"
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || { [ -n "$newest_h" ] && [ "$newest_h" -nt "$obj" ]; } ||
        { [ "$src" = src/tokenizer/gpt2_data.c ] && [ data/gpt2/encoder.json -nt "$obj" ]; }; then
        if ! $CC $CFLAGS -fsanitize=fuzzer-no-link $OMP -c "$src" -o "$obj" 2>"${obj%.o}.log"; then
            rm -f "$obj"
            skipped="$skipped $src"
            continue
        fi
        rm -f "${obj%.o}.log"
    fi
    objs="$objs $obj"
done
[ -n "$skipped" ] && echo "fuzz/run.sh: left out (clang cannot compile them here; see $OUT/obj/*.log):$skipped"
rm -f "$OUT/libgpt-fuzz.a"
ar rcs "$OUT/libgpt-fuzz.a" $objs

pass=0 fail=0
for t in $targets; do
    corpus=fuzz/corpus/$t
    mkdir -p "$OUT/corpus/$t" "$OUT/artifacts" "$corpus"
    if ! $CC $CFLAGS -fsanitize=fuzzer $OMP "fuzz/$t.c" "$OUT/libgpt-fuzz.a" -lm -lpthread -o "$OUT/$t"; then
        echo "FAIL $t: does not build"; fail=$((fail + 1)); continue
    fi
    [ "$mode" = build ] && { echo "ok   $t: built $OUT/$t"; pass=$((pass + 1)); continue; }
    dict=""
    [ -f "fuzz/$t.dict" ] && dict="-dict=fuzz/$t.dict"
    # The JSON readers are fuzzed with inputs up to 1 MiB: memory that
    # grows with the input only shows at sizes like that.
    maxlen=""
    case "$t" in fuzz_json | fuzz_safetensors) maxlen="-max_len=1048576" ;; esac
    common="-timeout=20 -rss_limit_mb=2048 $maxlen -artifact_prefix=$OUT/artifacts/$t- $dict"
    log="$OUT/$t.log"
    if ! "$OUT/$t" $common -runs=0 "$corpus" >"$log" 2>&1; then
        echo "FAIL $t: a seed input fails (see $log)"; tail -n 30 "$log"; fail=$((fail + 1)); continue
    fi
    seeds=$(ls "$corpus" | wc -l | tr -d ' ')
    if [ "$mode" = replay ]; then
        echo "ok   $t: $seeds seed inputs replayed clean"; pass=$((pass + 1)); continue
    fi
    start=$(date +%s)
    if "$OUT/$t" $common -max_total_time="$seconds" -print_final_stats=1 "$OUT/corpus/$t" "$corpus" >"$log" 2>&1; then
        execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
        echo "ok   $t: $seeds seeds replayed, fuzzed $(( $(date +%s) - start )) s, ${execs:-?} executions"
        pass=$((pass + 1))
    else
        echo "FAIL $t: fuzzing found a failure (log $log, inputs $OUT/artifacts/$t-*)"
        grep -E 'ERROR|SUMMARY|fuzz_' "$log" | head -n 20
        fail=$((fail + 1))
    fi
done
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
