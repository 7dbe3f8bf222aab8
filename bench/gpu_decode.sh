#!/usr/bin/env bash
# bench/gpu_decode.sh - one device call for the decoding work: GPU tests,
# decode timings of the new kernels against the previous ones (environment
# switches, and a baseline build when given), the transformers peer in the
# same call, a training check against the baseline, an ncu per-kernel
# profile of a decode step, and compute-sanitizer on the decoding tests.
# Steps run in order of importance and each has a time limit; later steps
# are skipped once the call has used BUDGET seconds.
#
#   BIN=dir BASE=dir bash bench/gpu_decode.sh
#
# BIN holds gpt, bench_gpu, test_cuda_ops, test_cuda_model (built
# elsewhere, or build-cuda's after `make CUDA=1`); BASE, if set, a
# bench_gpu built from the commit to compare with. Logs: $OUT/logs.tgz and
# $OUT/summary.txt ($OUT defaults to out/gpu).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/out/gpu}
BIN=${BIN:-build-cuda}
BASE=${BASE:-}
BUDGET=${BUDGET:-380}
mkdir -p "$OUT"
L=$(mktemp -d)
summary="$L/summary.txt"
: >"$summary"
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
note() { echo "$*" | tee -a "$summary"; }
pack() { tar czf "$OUT/logs.tgz" -C "$L" . 2>/dev/null; cp "$summary" "$OUT/" 2>/dev/null; }
left() { [ "$(el)" -lt "$BUDGET" ]; }
export PYTHONUNBUFFERED=1
for b in gpt bench_gpu test_cuda_ops test_cuda_model; do
    [ -x "$BIN/$b" ] || { note "missing $BIN/$b"; pack; exit 1; }
done

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader >"$L/device.txt" 2>&1
note "card: $(head -1 "$L/device.txt")  commit: $(cat .commit 2>/dev/null || git rev-parse --short HEAD 2>/dev/null)  date: $(date -u +%F)"

# 1. tests (all three configurations of the op tests, the model tests)
note "[$(el) s] tests"
timeout 120 "$BIN/test_cuda_ops" >"$L/test_ops.log" 2>&1
rc=$?
note "  test_cuda_ops: $(tail -1 "$L/test_ops.log") (exit $rc)"
grep -E "^(FAIL|     device)|expected|rel L2|differ|argmax" "$L/test_ops.log" | head -30 | tee -a "$summary"
timeout 90 "$BIN/test_cuda_model" >"$L/test_model.log" 2>&1
rc=$?
note "  test_cuda_model: $(tail -1 "$L/test_model.log") (exit $rc)"
grep -E "^FAIL|expected|rel L2|differ" "$L/test_model.log" | head -20 | tee -a "$summary"
pack

# 2. decoding: ours (variants) and the baseline, batch 1 and 16
J="$L/decode.jsonl"
gen() { # label, env..., then -- bench_gpu [args]
    local label=$1; shift
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    local bin=$1; shift
    for B in 1 16; do
        local line
        left || { note "  $label B=$B: skipped (time)"; continue; }
        line=$(env "${envs[@]}" timeout 25 "$bin" generate --preset gpt2 --batch $B --prompt 64 --new 256 "$@" 2>>"$L/gen_err.log" | grep '^{')
        echo "{\"label\":\"$label\",\"card\":\"$(head -1 "$L/device.txt" | cut -d, -f1)\",\"r\":${line:-null}}" | tee -a "$J"
    done
}
note "[$(el) s] decode timings"
gen new X=1 -- "$BIN/bench_gpu"
[ -n "$BASE" ] && gen base X=1 -- "$BASE/bench_gpu"
gen new-again X=1 -- "$BIN/bench_gpu"
gen no-cluster GPT_CUDA_SN_SPLIT=1 GPT_CUDA_KV_SPLIT=1 -- "$BIN/bench_gpu"
gen old-kernels GPT_CUDA_NO_SN=1 GPT_CUDA_KV_OLD=1 -- "$BIN/bench_gpu"
[ -n "$BASE" ] && gen base-again X=1 -- "$BASE/bench_gpu"
pack
note "[$(el) s] gpt bench generate (the tool)"
for B in 1 16; do
    left || continue
    timeout 30 "$BIN/gpt" bench generate --preset gpt2 -B $B --prompt 64 --new 256 --device cuda \
        2>>"$L/gen_err.log" | grep '^{' | tee -a "$L/tool.jsonl"
done
pack

# 3. the transformers peer, same call
if left; then
    note "[$(el) s] transformers peer"
    for B in 16 1; do
        left || continue
        timeout 90 python3 bench/peers/torch_generate.py --batch $B --prompt 64 --new 256 \
            2>>"$L/peer_err.log" | grep '^{' | tee -a "$L/peer.jsonl"
    done
    pack
fi

# 4. training must not regress: baseline and ours, interleaved
if left; then
    note "[$(el) s] training"
    for w in "gpt2 -B 32 -T 1024 --steps 20" "seed-small -B 4 -T 512 --steps 50"; do
        for who in base new base new; do
            b="$BIN/bench_gpu"; [ $who = base ] && b="$BASE/bench_gpu"
            [ $who = base ] && [ -z "$BASE" ] && continue
            left || continue
            line=$(timeout 40 $b train --preset $w 2>>"$L/train_err.log" | grep '^{')
            echo "{\"label\":\"$who\",\"r\":${line:-null}}" | tee -a "$L/train.jsonl"
        done
    done
    pack
fi

# 5. sanitizers on the decoding tests (memcheck of the op tests first, then ncu, then the rest)
SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
san() { # tool, log name, command...
    local tool=$1 log=$2; shift 2
    left || { note "sanitizer $tool $log: skipped (time)"; return; }
    timeout 100 "$SAN" --tool "$tool" --print-limit 20 "$@" >"$L/san_${tool}_$log.log" 2>&1
    local rc=$? res
    res=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$L/san_${tool}_$log.log" | tail -1)
    [ $rc = 124 ] && res="timed out ($res)"
    note "sanitizer $tool $log: ${res:-no summary (exit $rc)}; tests: $(grep -E '^[0-9]+ passed' "$L/san_${tool}_$log.log" | tail -1)"
    pack
}
BUDGET=$((BUDGET + 40))
GPT_TEST_DECODE_ONLY=1 GPT_TEST_CONFIGS=cuda-bf16,cuda-fp32 san memcheck ops "$BIN/test_cuda_ops"
# ncu: per-kernel times of decode steps at batch 1 (graph nodes one by one)
if left; then
    note "[$(el) s] ncu"
    NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
    timeout 60 "$NCU" --clock-control none --csv --metrics gpu__time_duration.sum \
        --launch-skip 700 --launch-count 200 \
        "$BIN/bench_gpu" generate --preset gpt2 --batch 1 --prompt 64 --new 40 --runs 1 \
        >"$L/ncu_decode.csv" 2>&1
    python3 bench/ncu_sum.py "$L/ncu_decode.csv" 3 >"$L/ncu_decode.txt" 2>&1
    head -30 "$L/ncu_decode.txt"
    pack
fi

GPT_TEST_DECODE_ONLY=1 san memcheck model "$BIN/test_cuda_model"
GPT_TEST_DECODE_ONLY=1 GPT_TEST_CONFIGS=cuda-bf16 san racecheck ops "$BIN/test_cuda_ops"

note "[$(el) s] done"
# the table: decode tok/s per label
python3 - "$J" "$L/peer.jsonl" "$L/tool.jsonl" "$L/train.jsonl" <<'EOF' | tee -a "$summary"
import json, sys
def rows(p):
    out = []
    try:
        for l in open(p):
            try:
                out.append(json.loads(l))
            except Exception:
                pass
    except OSError:
        pass
    return out
print("%-18s %6s %12s %12s %10s" % ("label", "batch", "tok_s", "decode_tok_s", "us/step"))
for r in rows(sys.argv[1]):
    x = r.get("r") or {}
    if not x: print("%-18s (failed)" % r.get("label")); continue
    print("%-18s %6d %12.1f %12.1f %10.1f" % (r["label"], x["batch"], x["tok_s"], x["decode_tok_s"], x["decode_ms_per_step"] * 1e3))
for x in rows(sys.argv[2]): print("transformers       %6d %12.1f" % (x["batch"], x["tok_s"]))
for x in rows(sys.argv[3]): print("gpt bench (tool)   %6d %12.1f %12.1f" % (x["batch"], x["tok_s"], x["decode_tok_s"]))
for r in rows(sys.argv[4]):
    x = r.get("r") or {}
    if x: print("train %-5s %-10s B%-3d %8.3f ms" % (r["label"], x["preset"], x["batch"], x["step_ms"]))
EOF
pack
