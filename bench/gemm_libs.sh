#!/usr/bin/env bash
# bench/gemm_libs.sh - the seed-small training products through our kernels
# (fp32 and bf16) and through OpenBLAS (as installed, and with each core type
# forced by OPENBLAS_CORETYPE), BLIS and oneDNN, all in one run; prints a
# table of GFLOP/s (median of 7 calls) per shape. Libraries not installed
# are skipped (Debian: libopenblas0-openmp, libblis4-openmp, libdnnl2).
# Every library runs with as many threads as cores (OMP_NUM_THREADS).
#
#   bash bench/gemm_libs.sh [reps]
set -eu
cd "$(dirname "$0")/.."
reps=${1:-7}
make -s -j"$(nproc)" build/bench/gemm_libs
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
out=$(mktemp)
B=build/bench/gemm_libs
ob=$(ls /usr/lib/*/openblas-openmp/libopenblas.so.0 2>/dev/null | head -1 || true)
{
    $B ours "$reps"
    $B ours-bf16 "$reps" | tee "$out.bf16"
    # where the dispatch picked AMX, the AVX512-BF16 kernel beside it
    if grep -q '"kernel": "AMX' "$out.bf16"; then $B ours-avx512bf16 "$reps"; fi
    if [ -n "$ob" ]; then
        LD_LIBRARY_PATH=$(dirname "$ob") $B openblas "$reps" | sed 's/"openblas"/"openblas as installed"/'
        for c in Prescott Haswell SkylakeX Cooperlake SapphireRapids; do
            LD_LIBRARY_PATH=$(dirname "$ob") OPENBLAS_CORETYPE=$c $B openblas "$reps" |
                sed "s/\"openblas\"/\"openblas $c\"/"
        done
    fi
    $B blis "$reps"
    $B onednn "$reps"
} | tee "$out" >/dev/null
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
shapes = list(dict.fromkeys(r["shape"] for r in rows))
for r in rows:  # our bf16 line names the kernel the dispatch picked
    if r["lib"] == "ours-bf16": r["lib"] = "ours-bf16 " + r["kernel"].split()[0]
libs = list(dict.fromkeys(r["lib"] for r in rows))
print("GFLOP/s, seed-small B=4 T=64 products (a shared machine: compare within this run)")
print(f"{'library':<26}" + "".join(f"{s:>10}" for s in shapes))
for l in libs:
    g = {r["shape"]: r["gflops"] for r in rows if r["lib"] == l}
    print(f"{l:<26}" + "".join(f"{g.get(s, 0):>10.1f}" for s in shapes))
PY
rm -f "$out" "$out.bf16"
