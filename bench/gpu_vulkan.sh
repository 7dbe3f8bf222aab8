#!/usr/bin/env bash
# bench/gpu_vulkan.sh - the Vulkan backend on the GPU machine, through
# NVIDIA's Vulkan driver, beside our CUDA backend on the same card, in one
# call (`bash bench/gpu.sh vulkan` runs this):
#  1. unpack the Vulkan packages carried in .gl/ (Debian 12 .debs: the
#     loader libvulkan1, libvulkan-dev for the headers, glslc and
#     libshaderc1 for the shaders; vulkan-validationlayers optional) and
#     point the loader at NVIDIA's driver if it finds none;
#  2. build with CUDA=1 and VULKAN=1 (python3 rewrites the cooperative-
#     matrix shader to SPV_KHR_cooperative_matrix: src/vulkan/spv_khr.py);
#  3. the Vulkan op and model tests on the NVIDIA driver, with
#     GPT_TEST_REQUIRE_COOP=1 (the cooperative-matrix products must be
#     there and pass, on VK_KHR_cooperative_matrix where the driver offers
#     it; the op tests also run the VK_NV_cooperative_matrix fallback, the
#     model test runs once on each), and the fp16 op tests under the
#     validation layer when it was carried (NV and KHR: Debian 12's layer,
#     1.3.239, predates KHR and may reject its feature structure as an
#     unknown sType, which is then the layer's age, not a bug);
#  4. the three timings of issue 14 for CUDA and Vulkan: gpt2 B=8 T=1024
#     training (CUDA bf16, Vulkan fp16), seed-small B=4 T=512 training,
#     gpt2 greedy generation batch 1, prompt 64, 256 new tokens; plus the
#     Vulkan gpt2 step with the attention forward off cooperative matrices
#     (GPT_VULKAN_COOP_ATTN=0; on by default), on the NV cooperative matrices and
#     on the tiled (non-tensor-core) products;
#  5. one table: tok/s or ms of each, the ratio and the target;
#  6. the products of a gpt2 training step one by one on both backends
#     (build-cuda/bench/bench_products) and the cost of each op of a gpt2
#     decoding step (build-cuda/bench/bench_decode_ops, batch 1 at position
#     320).
# Logs and the table: $OUT/vulkan_logs.tgz, $OUT/vulkan_summary.txt.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/out/gpu}
mkdir -p "$OUT"
L=$(mktemp -d)
S="$L/vulkan_summary.txt"
: >"$S"
pack() { tar czf "$OUT/vulkan_logs.tgz" -C "$L" . 2>/dev/null; cp "$S" "$OUT/" 2>/dev/null; }
note() { echo "$*" | tee -a "$S"; }
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
NVCC_BIN=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
export PATH=$(dirname "$NVCC_BIN"):$PATH
export LD_LIBRARY_PATH=$(dirname "$(dirname "$NVCC_BIN")")/lib64:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}

stamp "Vulkan packages"
if ls .gl/*.deb >/dev/null 2>&1; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
for need in glslc pkg-config; do command -v $need >/dev/null || note "missing: $need (carry its .deb in .gl/)"; done
note "card: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)  commit: $(cat .commit 2>/dev/null || git rev-parse --short HEAD 2>/dev/null)  date: $(date -u +%F)"

stamp "build"
if ! make -j"$(nproc)" CUDA=1 VULKAN=1 NATIVE=0 BLAS=none >"$L/build.log" 2>&1; then
    note "BUILD FAILED"; tail -30 "$L/build.log"; pack; exit 1
fi
G=build-cuda/gpt
# a loader that finds no driver: NVIDIA's manifest where the device README says it is
if ! $G info 2>/dev/null | grep -q "^  vulkan "; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
$G info >"$L/info.txt" 2>&1
note "$(grep -E '^  (cuda|vulkan) ' "$L/info.txt")"
if ! grep -q "^  vulkan " "$L/info.txt"; then note "NO VULKAN DEVICE: see info.txt"; pack; exit 1; fi
[ -s build-cuda/vk/matmul_coop.khr.spv ] || note "NO KHR MODULE: build-cuda/vk/matmul_coop.khr.spv missing (python3?)"
note "with GPT_VULKAN_COOP_ATTN=0: $(GPT_VULKAN_COOP_ATTN=0 $G info 2>&1 | grep -E '^  vulkan ')"

stamp "Vulkan tests"
export GPT_REQUIRE_VULKAN=1
# test_vulkan_model_nv: the model test with the products on VK_NV_cooperative_matrix;
# _attn: with the attention forward on cooperative matrices asked for explicitly
# (GPT_VULKAN_COOP_ATTN=1; the default), the others with it left as it is
for t in test_vulkan_ops test_vulkan_model test_vulkan_model_nv test_vulkan_model_attn; do
    coop=; [ "$t" = test_vulkan_model_nv ] && coop=nv
    attn=; [ "$t" = test_vulkan_model_attn ] && attn=1
    prog=${t%_nv}; prog=${prog%_attn}
    GPT_VULKAN_COOP=$coop GPT_VULKAN_COOP_ATTN=$attn GPT_TEST_REQUIRE_COOP=1 timeout 600 \
        build-cuda/tests/vulkan/$prog >"$L/$t.log" 2>&1
    note "$t: $(tail -1 "$L/$t.log")"
    grep -E ': products|^FAIL|expected' "$L/$t.log" | head -20 | tee -a "$S"
done
if [ -f /usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json ]; then
    for cfg in vulkan-fp16-coop-nv vulkan-fp16-coop; do
        GPT_VULKAN_VALIDATE=1 GPT_TEST_CONFIGS=$cfg GPT_TEST_REQUIRE_COOP=1 timeout 600 \
            build-cuda/tests/vulkan/test_vulkan_ops >"$L/validation_$cfg.log" 2>&1
        note "op tests under the validation layer ($cfg): $(tail -1 "$L/validation_$cfg.log")"
        grep -m3 -E 'validation|VUID' "$L/validation_$cfg.log" | cut -c1-300 | tee -a "$S"
    done
else
    note "validation layer not carried: skipped on the GPU"
fi
pack

stamp "timings"
J="$L/bench.jsonl"
: >"$J"
run() { # label, then gpt bench arguments
    local label=$1; shift
    stamp "$label"
    local line
    line=$(timeout 300 $G bench "$@" 2>>"$L/bench_err.log" | tail -1)
    [ -n "$line" ] && echo "{\"label\": \"$label\", \"r\": $line}" >>"$J"
    pack
}
run cuda_gpt2 train --preset gpt2 -B 8 -T 1024 --warmup 3 --steps 10 --device cuda
run vk_gpt2 train --preset gpt2 -B 8 -T 1024 --warmup 3 --steps 10 --device vulkan
GPT_VULKAN_COOP_ATTN=0 run vk_gpt2_noattn train --preset gpt2 -B 8 -T 1024 --warmup 3 --steps 10 --device vulkan
GPT_VULKAN_COOP=nv run vk_gpt2_nv train --preset gpt2 -B 8 -T 1024 --warmup 2 --steps 3 --device vulkan
GPT_VULKAN_NO_COOP=1 run vk_gpt2_tiled train --preset gpt2 -B 8 -T 1024 --warmup 2 --steps 3 --device vulkan
run cuda_small train --preset seed-small -B 4 -T 512 --warmup 3 --steps 20 --device cuda
run vk_small train --preset seed-small -B 4 -T 512 --warmup 3 --steps 20 --device vulkan
run cuda_gen generate --preset gpt2 -B 1 --prompt 64 --new 256 --runs 3 --device cuda
run vk_gen generate --preset gpt2 -B 1 --prompt 64 --new 256 --runs 3 --device vulkan
# where a Vulkan gpt2 step goes (timestamp queries, graphs off)
timeout 300 $G bench train --preset gpt2 -B 8 -T 1024 --warmup 1 --steps 1 --profile --device vulkan \
    >/dev/null 2>"$L/vk_profile.txt"
python3 - "$J" <<'EOF' | tee -a "$S"
import json, sys
r = {}
for line in open(sys.argv[1]):
    try:
        d = json.loads(line); r[d["label"]] = d["r"]
    except Exception:
        pass
def g(k, f):
    return r[k][f] if k in r and f in r[k] else None
print("%-44s %14s %14s %8s  %s" % ("workload", "CUDA", "Vulkan", "ratio", "target"))
def row(name, c, v, unit, target, higher):
    if c is None or v is None:
        print("%-44s %14s %14s %8s  %s" % (name, c, v, "-", target)); return
    ratio = v / c
    print("%-44s %11.1f %s %11.1f %s %7.2fx  %s" % (name, c, unit, v, unit, ratio, target))
row("gpt2 B8 T1024 train (tok/s; CUDA bf16, Vk fp16)", g("cuda_gpt2", "tok_s"), g("vk_gpt2", "tok_s"), "t/s", ">= 0.5x", True)
row("seed-small B4 T512 train (ms/step)", g("cuda_small", "step_ms"), g("vk_small", "step_ms"), "ms ", "<= 2x", False)
row("gpt2 greedy batch 1, 64 + 256 (tok/s)", g("cuda_gen", "tok_s"), g("vk_gen", "tok_s"), "t/s", ">= 0.5x", True)
row("gpt2 B8 T1024 train, Vk scalar attention (tok/s)", g("cuda_gpt2", "tok_s"), g("vk_gpt2_noattn", "tok_s"), "t/s", ">= 0.5x", True)
row("gpt2 B8 T1024 Vulkan NV vs KHR coop (tok/s)", g("vk_gpt2", "tok_s"), g("vk_gpt2_nv", "tok_s"), "t/s", "(info)", True)
row("gpt2 B8 T1024 Vulkan tiled vs coop (tok/s)", g("vk_gpt2", "tok_s"), g("vk_gpt2_tiled", "tok_s"), "t/s", "(info)", True)
for k in ("vk_gpt2", "vk_small"):
    if k in r: print("%s: syncs_per_step %s, loss %s, %.1f TFLOP/s" % (k, r[k].get("syncs_per_step"), r[k].get("loss"), r[k].get("tflops", 0)))
EOF
stamp "products"
# the products of a gpt2 B=8 T=1024 step one by one (checked against float64
# sums), on both backends: where the Vulkan step's time goes against cuBLASLt
for dev in cuda vulkan; do
    note "products on $dev (gpt2 B=8 T=1024):"
    timeout 120 build-cuda/bench/bench_products --device $dev --reps 5 2>&1 | grep -v '^{' | tail -7 | tee -a "$S"
done
stamp "decoding ops"
for dev in cuda vulkan; do
    note "decoding ops on $dev (us each, gpt2 B=1 at position 320):"
    timeout 120 build-cuda/bench/bench_decode_ops --device $dev --preset gpt2 2>&1 | grep -v '^{' | tee -a "$S"
done
stamp "done"
pack
cat "$S"
