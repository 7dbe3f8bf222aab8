#!/usr/bin/env bash
# bench/dist.sh - data-parallel training on this machine's GPUs, in one
# command: build (make CUDA=1, with NCCL), the NCCL tests, then gpt2 (124M)
# at B=32 T=1024 per GPU on 1, 2 and 4 GPUs (as many as the machine has),
# with and without ZeRO-1, beside PyTorch DDP (bench/peers/torch_ddp.py:
# torchrun, bf16, torch.compile, fused AdamW) on the same GPUs, and one
# table at the end. Logs: $OUT/logs.tgz and $OUT/summary.txt ($OUT defaults
# to out/dist).
#
#   bash bench/dist.sh [PHASE...]   PHASE: all (default), tests, ours, peers
#
# Environment: STEPS (20) steps per run, the median of those after the 5th
# timed; QUICK=1 runs the peer without torch.compile (minutes of compiling).
# "1 GPU" is a plain single-process run (no communicator), the baseline the
# scaling is measured against; "--gpus 1" rows show what the NCCL path costs
# on one GPU.
set -u
cd "$(dirname "$0")/.."
phases=" ${*:-all} "
want() { case "$phases" in *" $1 "*|*" all "*) return 0 ;; esac; return 1; }
OUT=${OUT:-$PWD/out/dist}
STEPS=${STEPS:-20}
mkdir -p "$OUT"
L=$(mktemp -d)
summary="$L/summary.txt"
: >"$summary"
pack() { tar czf "$OUT/logs.tgz" -C "$L" . 2>/dev/null; cp "$summary" "$OUT/" 2>/dev/null; }
note() { echo "$*" | tee -a "$summary"; }
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
NVCC_BIN=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
export LD_LIBRARY_PATH=$(dirname "$(dirname "$NVCC_BIN")")/lib64:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PYTHONUNBUFFERED=1

G=$(nvidia-smi -L 2>/dev/null | grep -c "^GPU ")
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1 >"$L/device.txt"
nvidia-smi topo -m >"$L/topology.txt" 2>&1
note "cards: $G x $(head -1 "$L/device.txt")  commit: $(cat .commit 2>/dev/null || git rev-parse --short HEAD 2>/dev/null)  date: $(date -u +%F)"

stamp "build"
if [ -x build-cuda/gpt ] && ldd build-cuda/gpt | grep -q "not found"; then rm -rf build-cuda; fi
if ! make -j"$(nproc)" CUDA=1 NATIVE=0 BLAS=none >"$L/build.log" 2>&1; then
    note "BUILD FAILED"; tail -30 "$L/build.log"; pack; exit 1
fi
if ! grep -q -- "-DGPT_HAVE_NCCL" "$L/build.log" && ! nm build-cuda/libgpt.a 2>/dev/null | grep -q " T comm_nccl_create"; then
    note "NCCL not found: set NCCL_HOME (nccl.h, libnccl.so.2) or pip install nvidia-nccl-cu13"; pack; exit 1
fi
note "NCCL: $(ldd build-cuda/gpt | grep -o 'libnccl[^ ]* => [^ ]*')"

if want tests; then
    stamp "NCCL tests"
    # the communicator (also in the GPU suite), then training through it
    # (tests/gpu/dist_train.sh: a minute or more, so kept out of the suite)
    BUILD=build-cuda timeout 300 bash tests/run.sh --cuda -k dist >"$L/tests.log" 2>&1
    GPT_BIN=$PWD/build-cuda/gpt timeout 900 bash tests/gpu/dist_train.sh >"$L/train_tests.log" 2>&1
    grep -hE "^(ok|FAIL|!!!|note)|^ +[a-z]" "$L/tests.log" "$L/train_tests.log" | head -80
    note "NCCL communicator tests: $(tail -1 "$L/tests.log")"
    note "NCCL training tests: $(tail -1 "$L/train_tests.log")"
    pack
fi

J="$L/bench.jsonl"
touch "$J"
RUNS=$(mktemp -d)
trap 'rm -rf "$RUNS"' EXIT
counts="1"
[ "$G" -ge 2 ] && counts="$counts 2"
[ "$G" -ge 4 ] && counts="$counts 4"
[ "$G" -gt 4 ] && counts="$counts $G"
# The whole text as validation too: the final evaluation needs one batch of
# 32 x GPUs windows of 1025 tokens (the default tenth is 33K tokens).
TRAIN="--preset gpt2 -B 32 -T 1024 --data data/tinyshakespeare.txt --val data/tinyshakespeare.txt
       --tokenizer gpt2 --steps $STEPS --eval-every 1000000 --eval-batches 1 --sample 0"
# One of our runs: tokens/s from metrics.jsonl (median of the steps after
# the 5th), AdamW state a GPU from the data-parallel line.
ours() { # name, gpus (0 = plain), extra flags...
    local name=$1 n=$2; shift 2
    local out="$RUNS/$name" flags=""
    [ "$n" -gt 0 ] && flags="--gpus $n"
    stamp "gpt train $name"
    timeout 600 build-cuda/gpt train $TRAIN $flags "$@" --out "$out" >"$L/$name.out" 2>"$L/$name.err"
    local rc=$?
    python3 - "$out/metrics.jsonl" "$L/$name.err" "$name" "$n" "$rc" <<'EOF' | tee -a "$J"
import json, re, sys
path, err, name, n, rc = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
try:
    rows = [json.loads(l) for l in open(path) if '"tok_s"' in l]
except OSError:
    rows = []
tok = sorted(r["tok_s"] for r in rows[5:])
text = open(err).read()
m = re.search(r"AdamW state ([0-9.]+) (KiB|MiB|GiB) a rank", text)
unit = {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}
opt = float(m.group(1)) * unit[m.group(2)] if m else None
if opt is None:  # a plain run: moments and master, 12 bytes a parameter
    m = re.search(r"([0-9.]+) (KiB|MiB|GiB) optimizer", text)
    opt = float(m.group(1)) * unit[m.group(2)] if m else None
print(json.dumps(dict(impl="gpt", run=name, gpus=max(n, 1), zero="zero" in name, rc=rc,
                      tok_s=round(tok[len(tok) // 2]) if tok else None,
                      opt_mib_per_gpu=round(opt, 1) if opt else None, steps=len(rows))))
EOF
    # keep the metrics, not the 1.5 GB checkpoint
    cp "$out/metrics.jsonl" "$L/$name.metrics.jsonl" 2>/dev/null
    rm -rf "$out"
    pack
}
if want ours; then
    ours plain 0
    for n in $counts; do
        ours "gpus$n" "$n"
        ours "gpus$n-zero" "$n" --zero 1
    done
fi
if want peers; then
    compile="--compile"; [ "${QUICK:-0}" = 1 ] && compile=""
    for n in $counts; do
        for z in "" --zero; do
            stamp "torchrun $n $z"
            timeout 900 torchrun --standalone --nproc_per_node "$n" bench/peers/torch_ddp.py --batch 32 \
                --seq 1024 --steps "$STEPS" $compile $z 2>>"$L/peer_err.log" | grep '^{' | tee -a "$J"
            pack
        done
    done
fi

stamp "table"
python3 - "$J" <<'EOF' | tee -a "$summary"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
ours = {(r["gpus"], r["zero"], r["run"] == "plain"): r for r in rows if r.get("impl") == "gpt"}
peer = {(r["gpus"], r["peer"].endswith("zero1")): r for r in rows if "peer" in r}
base = ours.get((1, False, True), {}).get("tok_s")
print("gpt2 124M, B=32 T=1024 per GPU, bf16; tokens/s over all GPUs (median step); AdamW state a GPU")
print("| GPUs | ZeRO-1 | ours tok/s | vs 1 GPU | PyTorch DDP tok/s | ours / DDP | AdamW MiB/GPU ours | DDP |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
def f(x, fmt="{:,}"):
    return fmt.format(x) if x is not None else "-"
if base:
    r = ours[(1, False, True)]
    print(f"| 1 (plain) | - | {f(base)} | 1.00x | | | {f(r['opt_mib_per_gpu'], '{:.0f}')} | |")
for (n, z, plain), r in sorted(ours.items()):
    if plain:
        continue
    p = peer.get((n, z), {})
    t, pt = r.get("tok_s"), p.get("tok_s")
    scale = f"{t / base:.2f}x" if t and base else "-"
    ratio = f"{t / pt:.2f}x" if t and pt else "-"
    print(f"| {n} | {'on' if z else 'off'} | {f(t)} | {scale} | {f(pt)} | {ratio} | "
          f"{f(r.get('opt_mib_per_gpu'), '{:.0f}')} | {f(p.get('opt_mib_per_gpu'), '{:.0f}')} |")
print("targets: 2 GPUs >= 1.9x, 4 GPUs >= 3.7x one GPU; >= 1.1x PyTorch DDP; ZeRO-1 AdamW state / GPUs")
print("AdamW state: ours = moments + fp32 master weights (the parameters are bf16); PyTorch's =")
print("moments only (its parameters are the fp32 copy, in every rank's memory in both modes)")
EOF
pack
stamp "done"
