#!/usr/bin/env bash
# Portability to Apple GPUs: every Vulkan shader, in both precisions,
# compiles with glslc and translates to Metal Shading Language 2.3 with
# spirv-cross --msl (what MoltenVK does at run time). The
# cooperative-matrix product is left out: it is an NVIDIA extension behind
# a capability check, and Metal has no such path to translate it to.
# Without glslc and spirv-cross: nothing to test (CI installs both and sets
# GPT_REQUIRE_VULKAN=1, which makes their absence a failure).
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if ! command -v glslc >/dev/null || ! command -v spirv-cross >/dev/null; then
    if [ "${GPT_REQUIRE_VULKAN:-0}" = 1 ]; then
        case_begin "glslc and spirv-cross are installed"; check "missing" false; case_end
    else
        echo "glslc or spirv-cross not installed: nothing to test"
    fi
    summary; exit
fi
for f in src/vulkan/shaders/*.comp; do
    n=$(basename "$f" .comp)
    case "$n" in *_coop) continue ;; esac
    case_begin "$n translates to MSL (fp32 and fp16)"
    for v in 0 1; do
        check "glslc -DF16=$v: $(glslc --target-env=vulkan1.2 -O -DF16=$v "$f" -o "$tmp/$n.$v.spv" 2>&1 | head -3)" \
            [ -s "$tmp/$n.$v.spv" ]
        check "spirv-cross -DF16=$v: $(spirv-cross --msl --msl-version 20300 "$tmp/$n.$v.spv" --output "$tmp/$n.$v.metal" 2>&1 | head -3)" \
            grep -q "kernel void" "$tmp/$n.$v.metal"
    done
    case_end
done
summary
