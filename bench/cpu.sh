#!/usr/bin/env bash
# bench/cpu.sh - the CPU benchmark of issue 15, all in one run on this
# machine, with its peers beside it, and one table at the end:
#   training  seed-small and gpt2 at B=4 T=64: gpt fp32 and bf16 (where the
#             CPU has bf16 instructions), llm.c's CPU trainer (built here
#             from bench/peers/llmc_cpu, -Ofast -march=native -fopenmp),
#             PyTorch eager fp32 and bf16 autocast (bench/peers/torch_gpt.py)
#   decoding  gpt2 batch 1, fp32, against the memory-bandwidth bound
#             (bench_decode measures the copy bandwidth in the same run);
#             gpt2 int8 weights against fp32 at batch 1 and 8
#             (bench_quant, interleaved repeats); transformers' generate
#             at batch 1 and 8 (bench/peer_torch_decode_cpu.py)
#   sharing   greedy generation of `tiny`, idle and with one core kept busy
#             by another process (a shell loop)
# Every figure is a median of timed steps after warm-up. No environment
# variable is needed: gpt takes its threads from the cores it may use and
# its kernels from the CPU it runs on. JSON lines go to bench-cpu.jsonl.
#
#   bash bench/cpu.sh [--quick] [--no-torch] [--no-llmc]
#     --quick  seed-small only, fewer steps
set -eu
cd "$(dirname "$0")/.."
quick=0 torch=1 llmc=1
for a in "$@"; do
    case "$a" in
    --quick) quick=1 ;;
    --no-torch) torch=0 ;;
    --no-llmc) llmc=0 ;;
    *) echo "usage: bench/cpu.sh [--quick] [--no-torch] [--no-llmc]" >&2; exit 2 ;;
    esac
done
cores=$(nproc)
steps=$([ $quick = 1 ] && echo 3 || echo 6)
make -s -j"$cores" build/gpt build/bench/bench_decode build/bench/bench_quant >/dev/null
out=$PWD/bench-cpu.jsonl
: > "$out"
tmp=$(mktemp); trap 'rm -f "$tmp" "$tmp.err"' EXIT
G=build/gpt
note() { echo "[bench/cpu.sh] $*" >&2; }
note "$($G info | grep '^cpu:')"
note "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $cores cores"

workloads="seed-small"
[ $quick = 1 ] || workloads="seed-small gpt2"
declare -A dims=([seed-small]="2 512 8" [gpt2]="12 768 12")

# ---- training: gpt
bf16=$($G info | grep -q 'training default' && echo 1 || echo 0)
for w in $workloads; do
    for p in fp32 $([ $bf16 = 1 ] && echo bf16); do
        note "gpt train $w $p"
        $G bench train --device cpu --preset "$w" -B 4 -T 64 --steps "$steps" --warmup 2 --precision "$p" 2>/dev/null |
            python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print(json.dumps(dict(kind="train", impl="gpt "+r["precision"], workload=r["preset"], ms=r["step_ms"], tok_s=r["tok_s"])))' >>"$out"
    done
done

# ---- training: llm.c
if [ $llmc = 1 ]; then
    L=build/peers/llmc
    mkdir -p "$L"
    cp -r bench/peers/llmc_cpu/. "$L/"
    gcc -Ofast -march=native -fopenmp "$L/train_gpt2.c" -lm -o "$L/train_gpt2"
    (cd "$L" && { [ -f seedL2.bin ] && { [ $quick = 1 ] || [ -f gpt2.bin ]; } ||
        python3 mk.py $([ $quick = 1 ] || echo gpt2); }) >/dev/null
    for w in $workloads; do
        ck=$([ "$w" = gpt2 ] && echo gpt2.bin || echo seedL2.bin)
        note "llm.c train $w"
        (cd "$L" && LLMC_CKPT=$ck LLMC_T=64 OMP_NUM_THREADS=$cores ./train_gpt2) |
            python3 -c '
import json, re, sys
t = [float(m.group(1)) for m in re.finditer(r"took ([0-9.]+) ms", sys.stdin.read())][1:]
t.sort(); ms = t[len(t) // 2]
print(json.dumps(dict(kind="train", impl="llm.c fp32", workload=sys.argv[1], ms=ms, tok_s=256e3 / ms)))' "$w" >>"$out"
    done
fi

# ---- training: PyTorch
if [ $torch = 1 ] && python3 -c 'import torch' 2>/dev/null; then
    for w in $workloads; do
        set -- ${dims[$w]}
        for p in fp32 bf16; do
            note "pytorch train $w $p"
            if ! python3 bench/peers/torch_gpt.py --device cpu --precision "$p" --layers "$1" \
                --dim "$2" --heads "$3" --seq 64 --batch 4 --steps "$steps" >"$tmp" 2>"$tmp.err"; then
                note "pytorch failed: $(tail -3 "$tmp.err")"
                continue
            fi
            python3 -c 'import json,sys; r=json.loads(open(sys.argv[2]).read()); print(json.dumps(dict(kind="train", impl="pytorch "+r["precision"]+(" autocast" if r["precision"]=="bf16" else ""), workload=sys.argv[1], ms=r["step_ms"], tok_s=r["tok_s"], torch=r["torch"])))' "$w" "$tmp" >>"$out"
        done
    done
fi

# ---- decoding: gpt2 batch 1 against the bandwidth bound
if [ $quick = 0 ]; then
    note "decode gpt2 batch 1"
    build/bench/bench_decode --preset gpt2 --batch 1 --prompt 64 --new 64 --repeat 3 2>/dev/null |
        grep '^{' | python3 -c 'import json,sys
for l in sys.stdin:
    r=json.loads(l); print(json.dumps(dict(kind="decode", impl="gpt fp32", workload="gpt2 B1", tok_s=r["decode_tok_s"], bound=r["bound_tok_s"], copy_gb_s=r["copy_gb_s"])))' >>"$out"
    note "decode gpt2 int8 against fp32, batch 1 and 8"
    build/bench/bench_quant --preset gpt2 --batch 1,8 --prompt 64 --new 64 --repeat 3 2>/dev/null |
        grep '^{' | python3 -c 'import json,sys
for l in sys.stdin:
    r=json.loads(l); print(json.dumps(dict(kind="quant", impl="gpt "+r["weights"], workload="gpt2 B%d" % r["batch"], tok_s=r["decode_tok_s"], ratio=r["ratio"], kernel=r["kernel"])))' >>"$out"
fi

# ---- decoding: the transformers peer (GPT2LMHeadModel.generate, fp32,
# greedy, KV cache, the same threads), gpt2 batch 1 and 8
if [ $quick = 0 ] && [ $torch = 1 ] && python3 -c 'import torch, transformers' 2>/dev/null; then
    note "transformers decode gpt2 batch 1 and 8"
    OMP_NUM_THREADS=$cores python3 bench/peer_torch_decode_cpu.py --batch 1,8 --prompt 64 --new 64 \
        --repeat 3 2>/dev/null | grep '^{' | python3 -c 'import json,sys
for l in sys.stdin:
    r=json.loads(l); print(json.dumps(dict(kind="quant", impl="transformers fp32", workload="gpt2 B%d" % r["batch"], tok_s=r["decode_tok_s"], torch=r["torch"])))' >>"$out" ||
        note "transformers peer failed"
fi

# ---- sharing: tiny greedy generation, idle and with one core busy
# (prompt + new tokens within tiny's context of 256)
gen() { $G bench generate --device cpu --preset tiny -B 1 --prompt 64 --new 192 --runs 3 2>/dev/null |
    python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["tok_s"])'; }
note "generate tiny, idle"
idle=$(gen)
note "generate tiny, one core busy"
sh -c 'while :; do :; done' & hog=$!
busy=$(gen)
kill "$hog"
echo "{\"kind\": \"share\", \"workload\": \"tiny B1 greedy\", \"idle\": $idle, \"busy\": $busy}" >>"$out"

python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("\nCPU benchmark (bench/cpu.sh); a shared machine: compare within this run only")
print(f"{'training, B=4 T=64':<34} {'step ms':>9} {'tok/s':>8} {'vs llm.c':>9}")
for w in ("seed-small", "gpt2"):
    tr = [r for r in rows if r["kind"] == "train" and r["workload"] == w]
    ref = next((r["tok_s"] for r in tr if r["impl"].startswith("llm.c")), None)
    for r in tr:
        ratio = f"{r['tok_s'] / ref:.2f}x" if ref else ""
        print(f"{w + ' ' + r['impl']:<34} {r['ms']:>9.1f} {r['tok_s']:>8.0f} {ratio:>9}")
for r in rows:
    if r["kind"] == "decode":
        b = r.get("bound")
        frac = f"{r['tok_s'] / b:.2f} of bound {b:.0f}" if b else ""
        print(f"decode {r['workload']} {r['impl']:<20} {r['tok_s']:>8.1f} tok/s  {frac}")
    if r["kind"] == "quant":
        vs = f"{r['ratio']:.2f}x fp32" if r["impl"].endswith("int8") else ""
        if r["impl"].startswith("transformers"):
            ours = next((q["tok_s"] for q in rows if q["kind"] == "quant" and q["impl"] == "gpt fp32"
                         and q["workload"] == r["workload"]), None)
            vs = f"gpt fp32 is {ours / r['tok_s']:.2f}x this" if ours else ""
        print(f"decode {r['workload']} {r['impl']:<20} {r['tok_s']:>8.1f} tok/s  {vs}")
    if r["kind"] == "share":
        print(f"generate {r['workload']}: idle {r['idle']:.0f} tok/s, one core busy {r['busy']:.0f} tok/s "
              f"({r['busy'] / r['idle']:.2f}x)")
PY
note "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
