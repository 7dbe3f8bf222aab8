#!/usr/bin/env bash
# bench/gpu_ab.sh - A/B timing of greedy gpt2 generation on the GPU machine,
# a baseline tree against the working tree, in one call (timings from
# different calls are not comparable: H100s differed by ~10% here).
#
#   BASE=dir bash bench/gpu_ab.sh [LABEL:VAR=VALUE,VAR=VALUE ...]
#
# BASE is a copy of the baseline commit's tree, made where the call is sent
# from (the device's checkout has no usable git history) and carried:
#   rm -rf .dev/base && mkdir -p .dev/base && git archive <commit> | tar -x -C .dev/base
# Each LABEL runs the working tree's binary with those environment
# variables (e.g. kvsplit2:GPT_CUDA_KV_SPLIT=2). Every row runs twice, at
# batch 1 and 16 (prompt 64, 256 new tokens); the table gives us per decode
# step without the prefill, the prefill's ms and the overall tok/s.
# Output: $OUT/ab.txt.
set -u
cd "$(dirname "$0")/.."
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
OUT=${OUT:-$PWD/out/ab}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/ab.txt"
if [ -n "${BASE:-}" ]; then
    (cd "$BASE" && make -j6 CUDA=1 NATIVE=0 BLAS=none build-cuda/gpt >"$OUT/build_base.log" 2>&1 ||
        echo "BASE BUILD FAILED") &
fi
make -j10 CUDA=1 NATIVE=0 BLAS=none build-cuda/gpt >"$OUT/build.log" 2>&1 || {
    echo "BUILD FAILED"; grep -A5 error "$OUT/build.log" | head -40; exit 1; }
wait
run() { # label binary batch [VAR=VALUE...]
    local lab=$1 bin=$2 b=$3; shift 3
    local r
    r=$(env "$@" "$bin" bench generate --preset gpt2 --batch "$b" --prompt 64 --new 256 --runs 3 2>/dev/null | tail -1)
    python3 -c 'import json, sys
try:
    d = json.loads(sys.argv[1])
    print("%-30s b%-3d %8.1f us/step %7.3f ms prefill %10.1f tok/s" % (sys.argv[2], d["batch"], 1e6 * d["batch"] / d["decode_tok_s"],
          1e3 * d["batch"] * d["prompt"] / d["prefill_tok_s"], d["tok_s"]))
except ValueError:
    print("%-30s b%-3s failed" % (sys.argv[2], sys.argv[3]))' "$r" "$lab" "$b" | tee -a "$OUT/ab.txt"
}
for b in 1 16; do
    for pass in 1 2; do
        [ -n "${BASE:-}" ] && run base "$BASE/build-cuda/gpt" $b
        run new build-cuda/gpt $b
        for v in "$@"; do
            IFS=, read -r -a envs <<<"${v#*:}"
            run "${v%%:*}" build-cuda/gpt $b "${envs[@]}"
        done
    done
done
