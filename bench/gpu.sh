#!/usr/bin/env bash
# bench/gpu.sh - everything the CUDA backend needs on a GPU machine, in one
# command: build (make CUDA=1; incremental, so carried build-cuda/ objects
# are reused), the GPU tests, compute-sanitizer (memcheck, racecheck,
# initcheck) on the op tests and on a seed-small training step, then our
# training and generation against the PyTorch peers (bench/peers/) in the
# same call, and one table at the end. Logs: $OUT/logs.tgz and
# $OUT/summary.txt ($OUT defaults to out/gpu).
#
#   bash bench/gpu.sh [PHASE...]    PHASE: all (default), check, tests, ours,
#                                   profile, peers, train (our training runs
#                                   and their peers only), gen (generation
#                                   only), initcheck_ops, ab; dist alone runs
#                                   bench/dist.sh (data parallelism); vulkan
#                                   alone runs bench/gpu_vulkan.sh (the Vulkan
#                                   backend beside CUDA; the Vulkan .debs in .gl/)
#                                   cpu alone the CPU benchmark (bench/amx.sh,
#                                   bench/cpu.sh, bench/gemm_libs.sh); amx
#                                   alone the AMX kernel's tests and timings
#   BASE=dir bash bench/gpu.sh ab
#
# check = GPU tests + all sanitizer runs (tests alone: the training-step
# racecheck only); ours = our timings; profile = per-op times
# of a training step (device events) and per-kernel times of decoding
# (ncu, kernels serialised) and of the decoding step as it runs (GPT_CUDA_TRACE,
# bench/decode_trace.py); peers = the PyTorch peers. The table covers whatever ran. The
# build always runs first.
# ab (not part of all) = the GPU tests, then our timings of the targets'
# workloads (training gpt2 B32 and seed-small B4, generation at batch 1 and
# 16), each run twice, in turns with the binary of BASE when it is set: a
# copy of a baseline commit's tree, made where the call is sent from and
# carried, as bench/gpu_ab.sh takes it:
#   rm -rf .dev/base && mkdir -p .dev/base && git archive <commit> | tar -x -C .dev/base
# A before/after comparison on one card in about 5 minutes; its table ends
# the summary.
# Environment: QUICK=1 skips the torch.compile peers (minutes of compiling);
# EAGER=0 skips the eager PyTorch peers (the targets are against compile).
set -u
cd "$(dirname "$0")/.."
phases=" ${*:-all} "
case "$phases" in *" vulkan "*) exec bash bench/gpu_vulkan.sh ;; esac
want() { case "$phases" in *" $1 "*|*" all "*) return 0 ;; esac; return 1; }
# check = tests + sanitize; tests alone skip the slower sanitizer runs
case "$phases" in *" check "*) phases="$phases tests sanitize initcheck_train " ;; esac
# dist (data-parallel: NCCL tests, 1/2/4 GPUs against PyTorch DDP) is its own
# script, run only when named: bash bench/gpu.sh dist == bash bench/dist.sh
if [ "$phases" = " dist " ]; then exec bash bench/dist.sh; fi
# cpu (issue 15's CPU benchmark on this host's CPU, often a Xeon with AMX
# and AVX512-BF16): bench/amx.sh (gpt info, the CPU tests of the bf16
# products, which must run on AMX where the CPU has it, and the AMX kernel
# against AVX512-BF16), then bench/cpu.sh and bench/gemm_libs.sh; amx:
# bench/amx.sh alone (~2 minutes). Run only when named. Output: $OUT/cpu.txt.
if [ "$phases" = " cpu " ] || [ "$phases" = " amx " ]; then
    OUT=${OUT:-$PWD/out/gpu}
    mkdir -p "$OUT"
    { bash bench/amx.sh
      if [ "$phases" = " cpu " ]; then bash bench/cpu.sh; bash bench/gemm_libs.sh; fi
    } 2>&1 | tee "$OUT/cpu.txt"
    exit 0
fi
OUT=${OUT:-$PWD/out/gpu}
mkdir -p "$OUT"
# The device tool returns at most 8 files from $OUT: logs are written under
# $L and packed into $OUT/logs.tgz after every step.
L=$(mktemp -d)
pack() { tar czf "$OUT/logs.tgz" -C "$L" . 2>/dev/null; cp "$summary" "$OUT/" 2>/dev/null; }
NVCC_BIN=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
CUDA_LIB=$(dirname "$(dirname "$NVCC_BIN")")/lib64
export LD_LIBRARY_PATH=$CUDA_LIB:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PYTHONUNBUFFERED=1
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
summary="$L/summary.txt"
: >"$summary"
note() { echo "$*" | tee -a "$summary"; }

stamp "device"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader | tee "$L/device.txt"
# .commit (written where the command is sent from) is the commit the working tree came from
note "card: $(head -1 "$L/device.txt")  commit: $(cat .commit 2>/dev/null || git rev-parse --short HEAD 2>/dev/null)  date: $(date -u +%F)"

stamp "build"
# Binaries carried from another machine are rebuilt if their libraries are missing here.
if [ -x build-cuda/tests/gpu/test_cuda_ops ] && ldd build-cuda/tests/gpu/test_cuda_ops | grep -q "not found"; then
    echo "carried binaries do not load here: rebuilding"; rm -rf build-cuda
fi
ab=0
case "$phases" in *" ab "*) ab=1 ;; esac
if [ $ab = 1 ] && [ -n "${BASE:-}" ]; then
    (cd "$BASE" && make -j"$(nproc)" CUDA=1 NATIVE=0 BLAS=none build-cuda/gpt >"$L/build_base.log" 2>&1 ||
        echo "BASE BUILD FAILED" >>"$L/build_base.log") &
fi
if ! make -j"$(nproc)" CUDA=1 NATIVE=0 BLAS=none >"$L/build.log" 2>&1; then
    note "BUILD FAILED"; tail -30 "$L/build.log"; pack; exit 1
fi
wait
GPT_BENCH="build-cuda/gpt bench"

gpu_tests() {
    stamp "GPU tests"
    BUILD=build-cuda timeout 300 bash tests/run.sh --cuda >"$L/tests.log" 2>&1
    # the KV attention's cluster split (on by default only for long caches) with the decoding tests
    for t in test_cuda_ops test_cuda_model; do
        GPT_CUDA_KV_SPLIT=8 GPT_TEST_DECODE_ONLY=1 timeout 120 build-cuda/tests/gpu/$t >"$L/tests_clusters_$t.log" 2>&1
    done
    grep -hE '^(FAIL|!!!)|^ +[a-z_./]+:[0-9]+: expected' "$L"/tests*.log | head -40
    note "tests: $(tail -1 "$L/tests.log"); with cluster splits (decoding): $(tail -qn1 "$L"/tests_clusters_*.log | tr '\n' ' ')"
    pack
}
if want tests || want sanitize || [ $ab = 1 ]; then gpu_tests; fi

if [ $ab = 1 ]; then
    Q="$L/ab.jsonl"
    [ -n "${BASE:-}" ] && ! [ -x "$BASE/build-cuda/gpt" ] && { note "BASE did not build:"; tail -5 "$L/build_base.log"; }
    qrun() { # label binary bench-args...
        local lab=$1 bin=$2; shift 2
        [ -x "$bin" ] || return 0
        stamp "$lab: gpt bench $*"
        timeout 120 "$bin" bench "$@" 2>>"$L/bench_err.log" | grep '^{' |
            sed "s/\"impl\": \"gpt\"/\"impl\": \"$lab\"/" | tee -a "$Q"
    }
    for w in "train --preset gpt2 -B 32 -T 1024 --steps 10" "train --preset seed-small -B 4 -T 512 --steps 50" \
             "generate --preset gpt2 --batch 1 --prompt 64 --new 256" "generate --preset gpt2 --batch 16 --prompt 64 --new 256"; do
        for pass in 1 2; do
            [ -n "${BASE:-}" ] && qrun base "$BASE/build-cuda/gpt" $w
            qrun new build-cuda/gpt $w
        done
        pack
    done
    stamp "table"
    python3 - "$Q" <<'PY' | tee -a "$summary"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def key(r):
    if r["bench"] == "train":
        return "train %s B%d T%d" % (r["preset"], r["batch"], r["seq"]), "step ms", r["step_ms"]
    return ("generate %s batch %d" % (r["preset"], r["batch"]), "us/decode step",
            1e6 * r["batch"] / r["decode_tok_s"])
table = {}
for r in rows:
    name, unit, v = key(r)
    table.setdefault((name, unit), {}).setdefault(r["impl"], []).append(v)
print("%-32s %-15s %-20s %-20s %s" % ("workload", "unit", "base (runs)", "new (runs)", "new/base (best)"))
for (name, unit), d in table.items():
    b, n = d.get("base", []), d.get("new", [])
    fmt = lambda xs: " ".join("%.3f" % x for x in xs) or "-"
    ratio = "%.3f" % (min(n) / min(b)) if b and n else "-"
    print("%-32s %-15s %-20s %-20s %s" % (name, unit, fmt(b), fmt(n), ratio))
PY
    stamp "done"
    pack
    echo "==== summary"
    cat "$summary"
    exit 0
fi

J="$L/bench.jsonl"
touch "$J"
# Fall back to the generic kernels if the fast ones failed their tests.
if grep -q "^FAIL cuda-bf16: attention forward" "$L/tests.log" 2>/dev/null; then
    export GPT_CUDA_NO_FAST_ATTN=1; note "fast attention failed its tests: benchmarks use the generic kernels"
fi
if grep -q "^FAIL cuda-bf16: matmul" "$L/tests.log" 2>/dev/null; then
    export GPT_CUDA_NO_EPILOGUE=1; note "fused epilogues failed their tests: benchmarks use the unfused path"
fi
ours() { stamp "gpt $*"; timeout 120 $GPT_BENCH "$@" 2>>"$L/bench_err.log" | tee -a "$J"; pack; }
peer() { stamp "peer $*"; timeout 300 python3 bench/peers/"$@" 2>>"$L/peer_err.log" | grep '^{' | tee -a "$J"; pack; }
if want ours || want train; then
    ours train --preset gpt2 -B 32 -T 1024 --steps 20 --recompute
    ours train --preset gpt2 -B 32 -T 1024 --steps 20
    ours train --preset seed-small -B 4 -T 512 --steps 50
    ours train --preset seed-small -B 64 -T 512 --steps 20
    ours train --preset seed-large -B 4 -T 512 --steps 50
    ours train --preset seed-small -B 4 -T 512 --steps 20 --precision fp32
    ours train --preset gpt2 -B 8 -T 1024 --steps 10
    ours train --preset gpt2 -B 8 -T 1024 --steps 10 --precision fp32
fi
if want ours || want gen; then
    ours generate --preset gpt2 --batch 1 --prompt 64 --new 256
    ours generate --preset gpt2 --batch 16 --prompt 64 --new 256
fi
if want profile; then
    stamp "profile: training steps"
    for w in "gpt2 -B 32 -T 1024 --recompute" "seed-small -B 4 -T 512" "seed-small -B 64 -T 512"; do
        timeout 120 $GPT_BENCH train --preset $w --warmup 1 --steps 1 --profile >/dev/null 2>>"$L/profile.txt"
    done
    head -c 20000 "$L/profile.txt"
    NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
    stamp "profile: decode kernels (ncu)"
    for nb in 1 16; do
        timeout 200 "$NCU" --csv --metrics gpu__time_duration.sum --launch-skip 200 --launch-count 174 \
            $GPT_BENCH generate --preset gpt2 --batch $nb --prompt 64 --new 6 --runs 1 >"$L/ncu_decode_b$nb.csv" 2>&1
        echo "== batch $nb"
        python3 bench/ncu_sum.py "$L/ncu_decode_b$nb.csv" 2 | tee "$L/ncu_decode_b$nb.txt"
    done
    stamp "profile: decode step as run (GPT_CUDA_TRACE)"
    for nb in 1 16; do
        GPT_CUDA_TRACE="$L/trace_b$nb.bin" timeout 120 $GPT_BENCH generate --preset gpt2 --batch $nb \
            --prompt 64 --new 256 --runs 1 >/dev/null 2>&1
        echo "== batch $nb"
        python3 bench/decode_trace.py "$L/trace_b$nb.bin" | tee "$L/trace_b$nb.txt"
        rm -f "$L/trace_b$nb.bin"
    done
    pack
fi
if want peers || want train; then
    GPT2="--layers 12 --dim 768 --heads 12 --seq 1024"
    SEEDS="--layers 2 --dim 512 --heads 8 --seq 512"
    SEEDL="--layers 6 --dim 512 --heads 8 --seq 512"
    compile="--compile"; [ "${QUICK:-0}" = 1 ] && compile=""
    modes="$compile"; [ "${EAGER:-1}" = 1 ] && modes="$modes eager"
    for mode in $modes; do
        [ "$mode" = eager ] && mode=
        peer torch_gpt.py $GPT2 --batch 32 --steps 20 $mode
        peer torch_gpt.py $SEEDS --batch 4 --steps 50 $mode
        peer torch_gpt.py $SEEDS --batch 64 --steps 20 $mode
        peer torch_gpt.py $SEEDL --batch 4 --steps 50 $mode
    done
fi
if want peers || want gen; then
    peer torch_generate.py --batch 1 --prompt 64 --new 256
    peer torch_generate.py --batch 16 --prompt 64 --new 256
fi
if [ -s "$J" ]; then
    stamp "table"
    python3 bench/table.py "$J" | tee -a "$summary"
fi
# The sanitizers last: the timings above matter more if the call runs out of time.
SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
san() { # tool, log name, command...
    local tool=$1 log=$2; shift 2
    stamp "sanitizer $tool: $log"
    timeout "${SAN_TIMEOUT:-180}" "$SAN" --tool "$tool" --print-limit "${SAN_LIMIT:-20}" "$@" >"$L/san_${tool}_$log.log" 2>&1
    local rc=$? res
    res=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$L/san_${tool}_$log.log" | tail -1)
    [ $rc = 124 ] && res="timed out after ${SAN_TIMEOUT:-180} s ($res)"
    note "sanitizer $tool $log: ${res:-no summary (exit $rc)}"
    pack
}
# eager step, recorded step, replayed step
step=($GPT_BENCH train --preset seed-small -B 4 -T 512 --warmup 2 --steps 1)
# racecheck cannot follow the TMA/mbarrier synchronisation of cuBLASLt's
# Hopper kernels (nvjet_*) and reports hazards inside them (excluding
# them with --kernel-name-exclude made the sanitizer fail on their
# launch): the summary counts the hazards reported anywhere else.
if want sanitize; then
    san racecheck train "${step[@]}"
    note "  racecheck train: hazards outside cuBLASLt's nvjet kernels: $(grep "Race reported" "$L/san_racecheck_train.log" | grep -vc nvjet)"
    GPT_TEST_CONFIGS=cuda-bf16,cuda-fp32 san memcheck ops build-cuda/tests/gpu/test_cuda_ops
    GPT_TEST_CONFIGS=cuda-bf16-unfused san memcheck ops_unfused build-cuda/tests/gpu/test_cuda_ops
    GPT_TEST_CONFIGS=cuda-bf16,cuda-bf16-unfused san racecheck ops build-cuda/tests/gpu/test_cuda_ops
    note "  racecheck ops: hazards outside cuBLASLt's nvjet kernels: $(grep "Race reported" "$L/san_racecheck_ops.log" | grep -vc nvjet)"
    # decoding on whole models: KV cache, device greedy, the unfolded step
    GPT_TEST_DECODE_ONLY=1 san memcheck decode build-cuda/tests/gpu/test_cuda_model
    GPT_TEST_DECODE_ONLY=1 SAN_TIMEOUT=360 san racecheck decode build-cuda/tests/gpu/test_cuda_model
    note "  racecheck decode: hazards outside cuBLASLt's nvjet kernels: $(grep "Race reported" "$L/san_racecheck_decode.log" | grep -vc nvjet)"
fi
if want sanitize || want initcheck_ops; then
    GPT_TEST_CONFIGS=cuda-bf16,cuda-fp32 SAN_LIMIT=2000 san initcheck ops build-cuda/tests/gpu/test_cuda_ops
    note "  initcheck ops: reports in our kernels (not cuBLASLt's): $(grep -A1 "Uninitialized" "$L/san_initcheck_ops.log" | grep "=========     at" | grep -vc cublas)"
fi
if want sanitize; then
    san memcheck train "${step[@]}"
fi
# initcheck of a training step reports reads of buffers that cuBLASLt's
# kernels wrote with TMA stores, which it does not track, and takes
# minutes: its own phase.
if want initcheck_train; then san initcheck train "${step[@]}"; fi

stamp "done"
pack
echo "==== summary"
cat "$summary"
