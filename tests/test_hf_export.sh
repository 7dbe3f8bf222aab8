#!/usr/bin/env bash
# The Hugging Face round trip: gpt convert writes a folder that
# transformers loads whole (AutoTokenizer, AutoModelForCausalLM, pipeline)
# for models with each kind of tokenizer (OpenAI's GPT-2, bytes, one
# trained with gpt tokenizer train), and transformers gives our token ids
# and our greedy tokens and text. GPT-2's files come out equal to OpenAI's.
# A model whose tokenizer the folder cannot carry gets none, and loses the
# files of an earlier export.
# Python: $GPT_PYTHON (CI's virtual environment), else python3; it needs
# torch and transformers.
set -u
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
PY=${GPT_PYTHON:-python3}
GPT=${GPT_BIN:-build/gpt}
fail() { echo "FAIL $1"; [ -n "${2:-}" ] && echo "     $2"; echo "0 passed, 1 failed"; exit 1; }
"$PY" -c "import torch, transformers" 2>"$tmp/imp" ||
    fail "torch and transformers importable by $PY (CI installs them: .ci/run)" "$(tail -1 "$tmp/imp")"

D=data/tinyshakespeare.txt
"$GPT" tokenizer train --input $D --vocab-size 1000 --out "$tmp/t1000.tok" -q >/dev/null ||
    fail "train a tokenizer"
# Small models, a few steps each: enough to make their greedy choices
# depend on the weights.
for spec in "gpt2 gpt2" "bytes bytes" "own $tmp/t1000.tok"; do
    set -- $spec
    "$GPT" train --data $D --tokenizer "$2" --layers 2 --heads 2 --channels 32 --max-seq 64 -B 4 \
        -T 32 --steps 20 --lr 3e-3 --warmup 2 --sample 0 --eval-batches 1 --threads 2 \
        --out "$tmp/$1" >/dev/null 2>"$tmp/train.err" || fail "train the $1 model" "$(tail -2 "$tmp/train.err")"
    "$GPT" convert --model "$tmp/$1/model.ckpt" --out "$tmp/$1-hf" 2>"$tmp/$1.convert" ||
        fail "convert the $1 model" "$(cat "$tmp/$1.convert")"
done

GPT="$GPT" TMP="$tmp" TOK="$tmp/t1000.tok" FIX=tests/data/hf_tiny/fp32 "$PY" - <<'EOF' 2>"$tmp/py.err"
import json, os, subprocess, sys, warnings
warnings.filterwarnings("ignore")
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
transformers.logging.set_verbosity_error()
GPT, TMP, TOK, FIX = (os.environ[k] for k in ("GPT", "TMP", "TOK", "FIX"))
torch.set_num_threads(2)
passed = failed = 0

def case(name, ok, detail=""):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + name)
    if not ok:
        print("     " + str(detail)[:600])
    passed, failed = passed + bool(ok), failed + (not ok)

def cli(*args, stdin=b""):
    r = subprocess.run([GPT, *args], input=stdin, capture_output=True)
    if r.returncode:
        raise RuntimeError("gpt %s: %s" % (" ".join(args), r.stderr.decode()))
    return r.stdout

text = open("data/tinyshakespeare.txt").read()[:4000] + "\ncafé naïve – 😀 x"
FILES = ["model.safetensors", "config.json", "vocab.json", "merges.txt", "tokenizer_config.json",
         "generation_config.json"]
for name, tok_name, eot in [("gpt2", "gpt2", 50256), ("bytes", "bytes", None), ("own", TOK, 999)]:
    d = os.path.join(TMP, name + "-hf")
    ckpt = os.path.join(TMP, name, "model.ckpt")
    case("%s: convert writes the model and the tokenizer files" % name,
         all(os.path.exists(os.path.join(d, f)) for f in FILES), sorted(os.listdir(d)))
    t = AutoTokenizer.from_pretrained(d)
    sample = text + ("<|endoftext|>then more" if eot is not None else "")
    mine = t(sample)["input_ids"]
    ours = json.loads(cli("tokenize", "--tokenizer", tok_name, "--special", stdin=sample.encode()))
    case("%s: AutoTokenizer gives gpt tokenize's ids" % name, mine == ours,
         [(i, a, b) for i, (a, b) in enumerate(zip(mine, ours)) if a != b][:5] or (len(mine), len(ours)))
    case("%s: and decodes them back" % name, t.decode(mine) == sample)
    case("%s: <|endoftext|> is bos/eos" % name, (t.eos_token_id, t.bos_token_id) == (eot, eot),
         (t.eos_token_id, t.bos_token_id))
    model = AutoModelForCausalLM.from_pretrained(d).eval()
    case("%s: generation_config's eos" % name, model.generation_config.eos_token_id == eot,
         model.generation_config.eos_token_id)
    prompt = ours[:12]
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False,
                             eos_token_id=None, pad_token_id=0)[0, len(prompt):].tolist()
    want = json.loads(cli("generate", "--model", ckpt, "--prompt-tokens", ",".join(map(str, prompt)),
                          "-n", "20", "--temperature", "0", "--format", "ids"))
    case("%s: transformers' greedy tokens are ours" % name, out == want, (out, want))
    if name != "bytes":  # a byte model's text need not be UTF-8, which transformers replaces
        gen = pipeline("text-generation", model=d, device="cpu")
        got = gen("ROMEO:", max_new_tokens=15, do_sample=False)[0]["generated_text"]
        want = cli("generate", "--model", ckpt, "--prompt", "ROMEO:", "-n", "15", "--temperature",
                   "0").decode()[:-1]  # gpt generate ends the text with one newline
        case("%s: pipeline('text-generation') gives gpt generate's text" % name, got == want,
             (got, want))

d = os.path.join(TMP, "gpt2-hf")
case("gpt2: vocab.json is OpenAI's encoder.json",
     json.load(open(d + "/vocab.json")) == json.load(open("data/gpt2/encoder.json")))
case("gpt2: merges.txt is OpenAI's vocab.bpe",
     open(d + "/merges.txt").read().split("\n")[1:] == open("data/gpt2/vocab.bpe").read().split("\n")[1:])

# A model whose named tokenizer is larger than its vocabulary (the fixture:
# 1,000 ids, tokenizer gpt2): no tokenizer files, and an earlier export's
# are removed rather than left beside other weights.
d = os.path.join(TMP, "bytes-hf")
r = subprocess.run([GPT, "convert", "--model", FIX, "--out", d], capture_output=True)
case("a model without a tokenizer to carry: convert says so",
     r.returncode == 0 and b"no tokenizer files" in r.stderr, r.stderr)
left = [f for f in FILES[2:] if os.path.exists(os.path.join(d, f))]
case("  ... and the earlier export's tokenizer files are gone", not left, left)
cfg = json.load(open(d + "/config.json"))
case("  ... config.json names no <|endoftext|> outside its vocabulary",
     cfg["vocab_size"] == 1000 and cfg["eos_token_id"] is None, cfg)
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
EOF
rc=$?
[ "$rc" = 0 ] || tail -5 "$tmp/py.err"
exit $rc
