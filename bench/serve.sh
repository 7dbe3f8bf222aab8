#!/usr/bin/env bash
# bench/serve.sh - throughput of `gpt serve` (continuous batching) with 1, 8
# and 64 concurrent greedy clients, gpt2 (124M, random weights: speed does
# not depend on them), 128 new tokens per request, beside the peer in the
# same run: transformers' text-generation pipeline behind a minimal HTTP
# server that answers one request at a time (bench/peer_hf_serve.py). The
# load is bench/serve_load.py: each client keeps a connection and sends
# greedy requests one after another; every answer must have 128 tokens and
# every answer the same text. Prints a table; JSON lines go to $OUT/serve.jsonl.
#
#   bash bench/serve.sh                 CPU (this machine)
#   DEVICE=cuda bash bench/serve.sh     GPU machine: builds with CUDA=1
#
# libmicrohttpd: from pkg-config, or unpacked into .deps/ (the GPU machine
# has no package): put libmicrohttpd-dev_*.deb and libmicrohttpd12_*.deb
# into .deps/ and this script unpacks them (dpkg-deb -x, or ar + tar).
#
# Environment: DEVICE (cpu), CLIENTS ("1 8 64"), REQS (requests per client
# at each level: "4 2 1" on the CPU, "32 8 4" on a GPU), SLOTS (64), NEW
# (128), PEER_SECONDS (each peer level runs this long: it serves one
# request at a time, so its throughput is the same at every level; 120 on
# the CPU, 60 on a GPU), PEER=0 skips the peer, MODEL_DIR (an HF gpt2
# folder to use instead of a random one), OUT (out/serve).
set -u
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cpu}
CLIENTS=${CLIENTS:-"1 8 64"}
SLOTS=${SLOTS:-64}
NEW=${NEW:-128}
PEER=${PEER:-1}
OUT=${OUT:-$PWD/out/serve}
if [ "$DEVICE" = cuda ]; then REQS=${REQS:-"32 8 4"}; PEER_SECONDS=${PEER_SECONDS:-60}
else REQS=${REQS:-"4 2 1"}; PEER_SECONDS=${PEER_SECONDS:-120}; fi
mkdir -p "$OUT"
J="$OUT/serve.jsonl"
: >"$J"
: >"$OUT/check.txt"
WORK=$(mktemp -d)
SPID=
cleanup() { [ -n "$SPID" ] && kill -9 "$SPID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
stamp() { echo "[$(date +%T)] $*" >&2; }

# --- libmicrohttpd from .deps/*.deb where the machine has no package
if ! pkg-config --exists libmicrohttpd 2>/dev/null && [ ! -f .deps/usr/include/microhttpd.h ]; then
    if ls .deps/*.deb >/dev/null 2>&1; then
        for d in .deps/*.deb; do
            if command -v dpkg-deb >/dev/null; then dpkg-deb -x "$d" .deps
            else (t=$(mktemp -d); cd "$t" && ar x "$OLDPWD/$d" && tar xf data.tar.* -C "$OLDPWD/.deps"; rm -rf "$t"); fi
        done
    fi
fi

# --- build
if [ "$DEVICE" = cuda ]; then
    NVCC_BIN=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
    export PATH=$(dirname "$NVCC_BIN"):$PATH
    export LD_LIBRARY_PATH=$(dirname "$(dirname "$NVCC_BIN")")/lib64:${LD_LIBRARY_PATH:-}
    make -s -j"$(nproc)" CUDA=1 NATIVE=0 BLAS=none build-cuda/gpt >"$OUT/build.log" 2>&1 || { tail -20 "$OUT/build.log"; exit 1; }
    GPT=build-cuda/gpt
else
    make -s -j"$(nproc)" build/gpt >"$OUT/build.log" 2>&1 || { tail -20 "$OUT/build.log"; exit 1; }
    GPT=build/gpt
fi
if "$GPT" serve --help | grep -q "built without libmicrohttpd"; then
    echo "bench/serve.sh: $GPT has no HTTP server: install libmicrohttpd-dev, or put"
    echo "libmicrohttpd-dev_*.deb and libmicrohttpd12_*.deb into .deps/ and run again"
    exit 1
fi
if ldd "$GPT" | grep -q "not found"; then echo "bench/serve.sh: $GPT is missing libraries:"; ldd "$GPT" | grep "not found"; exit 1; fi

# --- the model: gpt2's shape, random weights, GPT-2's tokenizer files
MODEL=${MODEL_DIR:-$WORK/gpt2}
if [ -z "${MODEL_DIR:-}" ]; then
    stamp "making a random gpt2 folder"
    python3 - "$MODEL" <<'PY' || exit 1
import shutil, sys, torch
from transformers import GPT2Config, GPT2LMHeadModel
torch.manual_seed(0)
GPT2LMHeadModel(GPT2Config()).save_pretrained(sys.argv[1])
shutil.copy("data/gpt2/encoder.json", sys.argv[1] + "/vocab.json")  # the same files under HF's names
shutil.copy("data/gpt2/vocab.bpe", sys.argv[1] + "/merges.txt")
PY
fi

# wait_port LOG PID: prints the port once the log says "listening on"
wait_port() {
    for _ in $(seq 1 1200); do
        p=$(sed -n 's|.*listening on http://[^ ]*:\([0-9]*\)$|\1|p' "$1" | head -1)
        [ -n "$p" ] && { echo "$p"; return 0; }
        kill -0 "$2" 2>/dev/null || break
        sleep 0.25
    done
    echo "server did not start: $(tail -3 "$1")" >&2
    return 1
}
load() { python3 bench/serve_load.py --max-tokens "$NEW" "$@" | tee -a "$J"; }

CPU_NAME=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
CARD=$([ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
INFO="$([ "$DEVICE" = cuda ] && echo "$CARD" || echo "$CPU_NAME, $(nproc) cores"); commit $(cat .commit 2>/dev/null || git rev-parse --short HEAD 2>/dev/null); $(date -u +%F); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "{\"info\": \"$INFO\"}" >>"$J"

# --- ours
stamp "gpt serve --slots $SLOTS on $DEVICE"
"$GPT" serve -m "$MODEL" --served-model-name gpt2 --slots "$SLOTS" -c 256 --port 0 --device "$DEVICE" 2>"$OUT/serve.log" &
SPID=$!
PORT=$(wait_port "$OUT/serve.log" "$SPID") || exit 1
load --port "$PORT" --clients 1 --requests 1 --label warmup >/dev/null
# the server's greedy text against gpt generate's for the same prompt ids
python3 - "$PORT" "$GPT" "$MODEL" "$DEVICE" <<'PY' | tee -a "$OUT/check.txt"
import json, subprocess, sys, urllib.request
port, gpt, model, device = sys.argv[1:]
def post(path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))
prompt = post("/tokenize", {"prompt": "The quick brown fox jumps over the lazy dog."})["tokens"]
got = post("/v1/completions", {"prompt": prompt, "max_tokens": 32, "temperature": 0, "ignore_eos": True})
ids = json.loads(subprocess.run([gpt, "generate", "--model", model, "--device", device, "--prompt-tokens",
                                 ",".join(map(str, prompt)), "-n", "32", "--temperature", "0", "--format", "ids"],
                                capture_output=True, text=True, check=True).stdout)
want = post("/detokenize", {"tokens": ids})["prompt"]
print("greedy check: gpt serve's 32 tokens", "equal" if got["choices"][0]["text"] == want else "DIFFER FROM",
      "gpt generate's for the same prompt")
PY
set -- $REQS
for c in $CLIENTS; do
    r=$1; shift
    stamp "ours: $c clients x $r requests"
    load --port "$PORT" --clients "$c" --requests "$r" --label "gpt serve --slots $SLOTS"
done
kill -TERM "$SPID"; wait "$SPID"; SPID=

# --- the peer, restarted for each level (requests abandoned at the end of a
# level would keep it busy)
if [ "$PEER" = 1 ]; then
    for c in $CLIENTS; do
        stamp "peer: $c clients for $PEER_SECONDS s"
        args=(--model "$MODEL" --device "$DEVICE")
        [ "$DEVICE" = cuda ] && args+=(--dtype bfloat16)
        python3 bench/peer_hf_serve.py "${args[@]}" 2>"$OUT/peer.log" &
        SPID=$!
        PORT=$(wait_port "$OUT/peer.log" "$SPID") || exit 1
        load --port "$PORT" --clients 1 --requests 1 --label warmup >/dev/null
        load --port "$PORT" --clients "$c" --seconds "$PEER_SECONDS" --label "transformers pipeline, one at a time"
        kill -9 "$SPID"; wait "$SPID" 2>/dev/null; SPID=
    done
fi

python3 - "$J" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(rows[0]["info"])
print(open(sys.argv[1].replace("serve.jsonl", "check.txt")).read().strip())
one = {}
print(f"| {'server':<40} | clients | requests | new tokens | wall s | tokens/s | vs 1 client | p50 s |")
print(f"|{'-' * 42}|---------|----------|------------|--------|----------|-------------|-------|")
for r in rows[1:]:
    if r["label"] == "warmup":
        continue
    if r["clients"] == 1:
        one[r["label"]] = r["tok_s"]
    base = one.get(r["label"])
    ratio = f"{r['tok_s'] / base:.1f}x" if base else "-"
    err = f"  ({r['errors']} errors: {r['first_error']})" if r["errors"] else ""
    print(f"| {r['label']:<40} | {r['clients']:>7} | {r['requests']:>8} | {r['tokens']:>10} | {r['wall_s']:>6} | "
          f"{r['tok_s']:>8} | {ratio:>11} | {r['p50_s']} |{err}")
PY
