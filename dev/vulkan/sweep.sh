#!/usr/bin/env bash
# dev/vulkan/sweep.sh - with product_tiles.patch applied, on the GPU machine
# after `bash bench/gpu.sh vulkan` (which unpacks the Vulkan packages and
# builds build-cuda/): the products of a gpt2 B=8 T=1024 step on cuBLASLt
# and on each cooperative-matrix tile (BM,BN,WGM,NT,BK,VS; the first is
# the current default), with the driver's register and spill counts of each
# pipeline, then the fp16 cooperative-matrix op tests with the three tiles
# whose step products were fastest. Output: $OUT/sweep.txt.
#
#   git apply dev/vulkan/product_tiles.patch && bash bench/gpu.sh vulkan && bash dev/vulkan/sweep.sh
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/out/gpu}
mkdir -p "$OUT"
S=$OUT/sweep.txt
L=$(mktemp -d)
: >"$S"
[ -n "${VK_DRIVER_FILES:-}" ] || build-cuda/gpt info 2>/dev/null | grep -q "^  vulkan " ||
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
echo "== cuBLASLt" | tee -a "$S"
timeout 120 build-cuda/bench/bench_products --device cuda --reps 5 2>&1 | grep -v '^{' | tail -7 | tee -a "$S"
for t in 128,128,2,256,64 128,128,2,256,64,1 128,128,2,128,32,1 128,64,2,128,64,1 256,128,4,256,32,1 \
         128,256,2,256,32,1 64,128,2,128,64,1; do
    echo "== Vulkan, tile $t" | tee -a "$S"
    GPT_VULKAN_PIPELINE_STATS=$L/stats_$t.txt GPT_VULKAN_MM_TILE=$t timeout 120 \
        build-cuda/bench/bench_products --device vulkan --reps 5 >"$L/prod_$t.txt" 2>&1
    grep -v '^{' "$L/prod_$t.txt" | tail -7 | tee -a "$S"
    ms=$(grep -o "step's products ([0-9]* layers): [0-9.]*" "$L/prod_$t.txt" | awk '{print $NF}')
    [ -n "$ms" ] && echo "$t $ms" >>"$L/steps.txt"
    sort -u "$L/stats_$t.txt" 2>/dev/null | grep '^matmul_coop' | cut -c1-240 | tee -a "$S"
done
for t in $(sort -k2 -g "$L/steps.txt" 2>/dev/null | head -3 | awk '{print $1}'); do
    GPT_REQUIRE_VULKAN=1 GPT_TEST_REQUIRE_COOP=1 GPT_VULKAN_MM_TILE=$t GPT_TEST_CONFIGS=vulkan-fp16-coop \
        timeout 300 build-cuda/tests/vulkan/test_vulkan_ops >"$L/ops_$t.log" 2>&1
    echo "== op tests (vulkan-fp16-coop), tile $t: $(tail -1 "$L/ops_$t.log")" | tee -a "$S"
    grep '^FAIL' "$L/ops_$t.log" | head -5 | tee -a "$S"
done
rm -rf "$L"
