#!/usr/bin/env bash
# tests/arm64.sh - the CPU backend on arm64, from an x86 machine: built with
# Debian's cross compiler (make CC=aarch64-linux-gnu-gcc: no -march=native,
# no OpenBLAS unless the arm64 one is installed, so the built-in kernels)
# and run under qemu-user:
#   test_ops_grad   every CPU op against double-precision references and
#                   finite differences
#   test_model_ref  the whole model, its gradients and ten AdamW training
#                   steps against PyTorch
#   test_q8_ops     the int8 kernels (every one this CPU runs) and the op
#   test_quant      an int8 model against fp32, int8 checkpoints
# on qemu's default CPU ("max": NEON with the dot product), and the int8
# tests again on a Cortex-A53 (NEON without it), so that both NEON int8
# kernels run. Prints which kernels ran and ends with "N passed, M failed".
#
#   bash tests/arm64.sh          (needs gcc-aarch64-linux-gnu, qemu-user)
set -u
cd "$(dirname "$0")/.."
CC=${ARM64_CC:-aarch64-linux-gnu-gcc}
SYSROOT=${ARM64_SYSROOT:-/usr/aarch64-linux-gnu}
BUILD=build-aarch64
TESTS="test_ops_grad test_model_ref test_q8_ops test_quant"
for tool in "$CC" qemu-aarch64; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "!!! $tool not found (apt-get install gcc-aarch64-linux-gnu qemu-user)"
        echo "0 passed, 1 failed"
        exit 1
    fi
done

echo "=== cross-compiling with $CC into $BUILD/"
start=$(date +%s)
if ! make -s -j"$(nproc 2>/dev/null || echo 2)" CC="$CC" $BUILD/gpt \
        $(for t in $TESTS; do echo "$BUILD/tests/$t"; done); then
    echo "!!! the arm64 build failed"
    echo "0 passed, 1 failed"
    exit 1
fi
echo "--- built in $(( $(date +%s) - start )) s"

# Under qemu every instruction is emulated: one thread keeps the tests from
# spinning on a second emulated core (the kernels' results do not depend on
# the thread count; the x86 suite covers the splits).
export OMP_NUM_THREADS=1
qemu() { # CPU, program, args...
    local cpu=$1; shift
    timeout 900 qemu-aarch64 -cpu "$cpu" -L "$SYSROOT" "$@"
}

echo "=== kernels on qemu's 'max' CPU (gpt info):"
qemu max $BUILD/gpt info | grep -iE "kernel|cpu" || echo "(gpt info names no kernels)"

pass=0 fail=0
run() { # CPU, test
    local cpu=$1 t=$2 s out rc line
    echo "=== $t on $cpu"
    s=$(date +%s)
    out=$(qemu "$cpu" "$BUILD/tests/$t" 2>&1); rc=$?
    echo "$out" | grep -vE '^ok ' # failures, the kernels used and figures
    line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    if [ -z "$line" ]; then
        echo "!!! $t on $cpu ended (exit $rc) without a summary line"; fail=$((fail + 1)); return
    fi
    local p=${line%% passed*} f=${line#*, }; f=${f%% failed}
    pass=$((pass + p)); fail=$((fail + f))
    if [ "$f" = 0 ] && [ "$rc" != 0 ]; then echo "!!! $t exited $rc"; fail=$((fail + 1)); fi
    echo "--- $t on $cpu: $line ($(( $(date +%s) - s )) s)"
}
for t in $TESTS; do run max "$t"; done
for t in test_q8_ops test_quant; do run cortex-a53 "$t"; done
echo "arm64 (qemu), $(( $(date +%s) - start )) s in all"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
