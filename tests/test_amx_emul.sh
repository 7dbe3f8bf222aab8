#!/usr/bin/env bash
# The whole model's bf16 products through the AMX kernel's code, on its C
# emulation of the tile instructions (GPT_CPU_AMX=emulate), so that the
# model's every product shape and transpose goes through the AMX packing
# and addressing on CPUs without AMX (this test's machines): test_model_ref
# in bf16 against PyTorch at the CUDA bf16 tests' bounds, and
# test_cpu_threads' bitwise agreement across thread counts. Each must say
# its bf16 products ran on the emulated AMX kernel and pass every case.
# Run by tests/run.sh (which exports GPT_BUILD); prints "N passed, M failed".
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
B=${GPT_BUILD:-build}
unset GPT_TEST_REQUIRE_AMX # these runs are the emulation, on purpose
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gpt_amx_emul.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
for t in test_model_ref test_cpu_threads; do
    case_begin "$t with GPT_CPU_AMX=emulate: bf16 on the emulated AMX kernel, every case passes"
    GPT_CPU_AMX=emulate timeout 300 "$B/tests/$t" >"$TMP/$t.txt" 2>&1
    rc=$?
    check "exit $rc: $(grep -E '^FAIL|expected' "$TMP/$t.txt" | head -5)" test "$rc" = 0
    check "no bf16 line naming the emulated AMX kernel: $(grep '^#' "$TMP/$t.txt")" \
        grep -q '^# bf16: .*AMX bf16 32x32 (emulated)' "$TMP/$t.txt"
    check "summary: $(tail -1 "$TMP/$t.txt")" grep -qE '^[1-9][0-9]* passed, 0 failed$' "$TMP/$t.txt"
    case_end
done
summary
