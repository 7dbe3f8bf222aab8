#!/usr/bin/env bash
# bench/vulkan_cpu.sh - the Vulkan backend on Mesa's software driver
# (lavapipe, the CPU) beside our CPU backend on the same machine: seed-small
# training (B=4 T=64, fp32 on both: lavapipe stores fp16 only in software)
# and greedy generation (batch 1, prompt 16, 32 new tokens). No target: it
# says what lavapipe costs, which is what CI's Vulkan tests run on. The
# first Vulkan run compiles its pipelines (Mesa caches them on disk); each
# figure is a median after warm-up. Prints a table; JSON lines go to
# bench-vulkan-cpu.jsonl.
#
#   bash bench/vulkan_cpu.sh [steps]    (say in the results if the machine was shared)
set -eu
cd "$(dirname "$0")/.."
steps=${1:-5}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
make -s -j"$(nproc)" build/gpt
build/gpt info | grep -q "^  vulkan " || { echo "no Vulkan device (install mesa-vulkan-drivers)"; exit 1; }
out=bench-vulkan-cpu.jsonl
: >"$out"
for dev in cpu vulkan; do
    build/gpt bench train --device $dev --precision fp32 --preset seed-small -B 4 -T 64 --steps "$steps" --warmup 2 >>"$out"
    build/gpt bench generate --device $dev --precision fp32 --preset seed-small -B 1 --prompt 16 --new 32 --runs 3 >>"$out"
done
python3 - "$out" <<'PY'
import json, sys
r = {}
for line in open(sys.argv[1]):
    d = json.loads(line)
    r[(d["bench"], d["device"])] = d
print(f"{'workload':<40} {'CPU backend':>14} {'Vulkan (lavapipe)':>18} {'ratio':>7}")
c, v = r[("train", "cpu")], r[("train", "vulkan")]
print(f"{'seed-small B4 T64 train, ms/step':<40} {c['step_ms']:>14.1f} {v['step_ms']:>18.1f} {v['step_ms'] / c['step_ms']:>6.2f}x")
c, v = r[("generate", "cpu")], r[("generate", "vulkan")]
print(f"{'seed-small greedy B1 16+32, tok/s':<40} {c['tok_s']:>14.1f} {v['tok_s']:>18.1f} {v['tok_s'] / c['tok_s']:>6.2f}x")
PY
