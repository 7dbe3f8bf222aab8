#!/usr/bin/env bash
# The Python package (python/): `pip install ./python` (into a temporary
# folder, with the library built by make inside it), then everything it
# does checked against the gpt command on the same models: token ids,
# greedy and seeded sampled generation, stop strings, text, losses, and
# training from numpy arrays (the saved checkpoint read back by gpt eval,
# gpt info and gpt generate); the library's errors as exceptions.
# Python: $GPT_PYTHON (CI's virtual environment), else python3; it needs
# numpy and setuptools.
set -u
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
PY=${GPT_PYTHON:-python3}
GPT=${GPT_BIN:-build/gpt}
fail() { echo "FAIL $1"; [ -n "${2:-}" ] && echo "     $2"; echo "0 passed, 1 failed"; exit 1; }

# The package always loads the plain build (an AddressSanitizer library
# cannot be loaded into Python), whatever build the suite tests.
vk=$(grep -o 'VULKAN=[01]' build/.flags 2>/dev/null | tail -n 1) # as build/ was made
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL GPT_MAKE_FLAGS="SAN=0 CUDA=0 $vk" \
    "$PY" -m pip install -q --no-build-isolation --no-deps --target "$tmp/site" ./python \
    >"$tmp/pip.log" 2>&1 || fail "pip install ./python" "$(tail -5 "$tmp/pip.log")"
rm -rf python/build python/*.egg-info

# Models: a small byte-level checkpoint trained here, a trained tokenizer,
# and the Hugging Face fixture (64 positions, 1,000 ids).
D=data/tinyshakespeare.txt
"$GPT" train --data $D --tokenizer bytes --layers 2 --heads 2 --channels 32 --max-seq 64 -B 4 -T 32 \
    --steps 30 --lr 3e-3 --warmup 5 --sample 0 --eval-batches 1 --threads 2 --out "$tmp/m" \
    >/dev/null 2>"$tmp/train.err" || fail "train a model" "$(tail -2 "$tmp/train.err")"
"$GPT" tokenizer train --input $D --vocab-size 300 --out "$tmp/t300.tok" -q >/dev/null ||
    fail "train a tokenizer"

# The layout of every struct the package mirrors, as the C compiler sees it.
cat >"$tmp/layout.c" <<'CEOF'
#include <stddef.h>
#include <stdio.h>
#include "gpt.h"
#define S(T) printf("%s\"%s\": [%zu", first ? "" : ", ", #T, sizeof(T)), first = 0
#define F(T, f) printf(", [\"%s\", %zu]", #f, offsetof(T, f))
#define E() printf("]")
int main(void) {
    int first = 1;
    printf("{");
    S(gpt_error); F(gpt_error, code); F(gpt_error, msg); E();
    S(gpt_config); F(gpt_config, vocab_size); F(gpt_config, padded_vocab); F(gpt_config, max_seq_len);
    F(gpt_config, n_layer); F(gpt_config, n_head); F(gpt_config, n_embd); F(gpt_config, mlp_hidden);
    F(gpt_config, ln_eps); E();
    S(gpt_runtime); F(gpt_runtime, device); F(gpt_runtime, precision); F(gpt_runtime, threads);
    F(gpt_runtime, profile); F(gpt_runtime, check); F(gpt_runtime, memory_limit);
    F(gpt_runtime, device_index); E();
    S(gpt_train_opts); F(gpt_train_opts, batch_size); F(gpt_train_opts, seq_len);
    F(gpt_train_opts, grad_accum); F(gpt_train_opts, max_steps); F(gpt_train_opts, lr);
    F(gpt_train_opts, min_lr); F(gpt_train_opts, warmup_steps); F(gpt_train_opts, weight_decay);
    F(gpt_train_opts, beta1); F(gpt_train_opts, beta2); F(gpt_train_opts, eps);
    F(gpt_train_opts, grad_clip); F(gpt_train_opts, recompute); F(gpt_train_opts, max_bad_steps); E();
    S(gpt_step_info); F(gpt_step_info, step); F(gpt_step_info, loss); F(gpt_step_info, grad_norm);
    F(gpt_step_info, lr); F(gpt_step_info, skipped); F(gpt_step_info, bad_streak); E();
    S(gpt_sampler_opts); F(gpt_sampler_opts, temperature); F(gpt_sampler_opts, top_k);
    F(gpt_sampler_opts, top_p); F(gpt_sampler_opts, seed); E();
    printf("}\n");
    return 0;
}
CEOF
${CC:-cc} -Iinclude "$tmp/layout.c" -o "$tmp/layout" && "$tmp/layout" >"$tmp/layout.json" ||
    fail "compile the struct layout probe"

env -u GPT_LIBRARY PYTHONPATH="$tmp/site" LAYOUT="$tmp/layout.json" GPT="$GPT" M="$tmp/m/model.ckpt" TOK="$tmp/t300.tok" \
    TMP="$tmp" FIX=tests/data/hf_tiny "$PY" - <<'EOF'
import ctypes, json, os, subprocess, sys
import numpy as np
import gpt

GPT, M, TOK, TMP, FIX = (os.environ[k] for k in ("GPT", "M", "TOK", "TMP", "FIX"))
HF = FIX + "/fp32"
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
        raise RuntimeError("gpt %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr.decode()))
    return r.stdout

def cli_ids(*args, stdin=b""):
    return json.loads(cli(*args, stdin=stdin))

def ids_arg(ids):
    return ",".join(map(str, ids))

# ---------------------------------------------------------------- package
from gpt import _lib
c_layout = json.load(open(os.environ["LAYOUT"]))
names = {"gpt_error": _lib.Error, "gpt_config": _lib.Config, "gpt_runtime": _lib.Runtime,
         "gpt_train_opts": _lib.TrainOpts, "gpt_step_info": _lib.StepInfo,
         "gpt_sampler_opts": _lib.SamplerOpts}
for cname, cls in names.items():
    size, *fields = c_layout[cname]
    mine = [[f, getattr(cls, f).offset] for f, _ in cls._fields_]
    case("%s: the ctypes mirror has gpt.h's layout" % cname,
         ctypes.sizeof(cls) == size and mine == fields, (ctypes.sizeof(cls), size, mine, fields))
case("the library inside the installed package is the one loaded",
     gpt.library_path.startswith(os.path.join(TMP, "site", "gpt")), gpt.library_path)
case("gpt.version() is the command's", cli("--version").decode().strip() == "gpt " + gpt.version(),
     gpt.version())

# ------------------------------------------------------------- tokenizers
shk = open("data/tinyshakespeare.txt", "rb").read()[:20000]
odd = b"caf\xc3\xa9 \xff\xfe\x00 na\xcc\x88ive \xf0\x9f\x98 end\r\n"
for name, tok_name, extra in [("gpt2", "gpt2", ()), ("bytes", "bytes", ()),
                              ("a trained file", TOK, ())]:
    t = gpt.Tokenizer(tok_name)
    for label, text in [("Shakespeare", shk), ("odd bytes", odd)]:
        mine = t.encode(text)
        theirs = cli_ids("tokenize", "--tokenizer", tok_name, "--format", "json", stdin=text)
        case("%s tokenizer, %s: the ids of gpt tokenize" % (name, label), mine == theirs,
             (mine[:10], theirs[:10]))
        case("%s tokenizer, %s: decodes back to the bytes" % (name, label),
             t.decode_bytes(mine) == text)
g2 = gpt.Tokenizer("gpt2")
case("special: <|endoftext|> is 50256 only when asked",
     g2.encode("a<|endoftext|>", special=True) == [64, 50256] and
     g2.encode("a<|endoftext|>") == cli_ids("tokenize", stdin=b"a<|endoftext|>"))
case("vocabulary and end-of-text", (g2.vocab_size, g2.eot, gpt.Tokenizer("bytes").eot) ==
     (50257, 50256, -1))

# -------------------------------------------------------------- generation
m, hf = gpt.Model(M, device="cpu", threads=2), gpt.Model(HF, device="cpu", threads=2)
case("a checkpoint's own tokenizer (bytes)", m.tokenizer.name == "bytes" and
     m.config["vocab_size"] == 256, (m.tokenizer.name, m.config))
P = [int(x) for x in open(FIX + "/greedy_prompt.txt").read().split(",")]
want = json.loads(open(FIX + "/greedy_ids.txt").read())
mine = list(hf.generate(P, max_new_tokens=len(want), temperature=0, eot=False))
theirs = cli_ids("generate", "--model", HF, "--prompt-tokens", ids_arg(P), "-n", str(len(want)),
                 "--temperature", "0", "--format", "ids")
case("Hugging Face folder: greedy ids = gpt generate = transformers' fixture",
     mine == theirs == want, (mine, theirs, want))
for label, kw, flags in [
        ("greedy", dict(temperature=0), ["--temperature", "0"]),
        ("sampled, seed 42", dict(temperature=1.2, top_p=0.9, top_k=50, seed=42),
         ["--temperature", "1.2", "--top-p", "0.9", "--top-k", "50", "--seed", "42"]),
        ("sampled, seed 7", dict(temperature=0.8, seed=7), ["--temp", "0.8", "-s", "7"])]:
    mine = list(m.generate([72, 105], max_new_tokens=40, eot=False, **kw))
    theirs = cli_ids("generate", "--model", M, "--prompt-tokens", "72,105", "-n", "40",
                     "--format", "ids", *flags)
    case("checkpoint: %s ids = gpt generate's" % label, mine == theirs, (mine, theirs))
g = list(m.generate([72, 105], max_new_tokens=40, seed=11, eot=False))
k = next((i for i in range(5, 40) if 32 < g[i] < 127), None)  # a printable byte from the 6th on
stop = chr(g[k]) if k is not None else "e"
mine = list(m.generate([72, 105], max_new_tokens=40, seed=11, eot=False, stop=[stop]))
theirs = cli_ids("generate", "--model", M, "--prompt-tokens", "72,105", "-n", "40",
                 "--seed", "11", "--format", "ids", "--stop", stop)
case("stop strings end where gpt generate's end", mine == theirs and len(mine) < 40,
     (stop, mine, theirs))
ids = list(m.generate("ROMEO:", max_new_tokens=30, temperature=0.8, seed=3))
text = cli("generate", "--model", M, "--prompt", "ROMEO:", "-n", "30", "--temperature", "0.8",
           "--seed", "3")
case("text: prompt + decoded ids = gpt generate's text", b"ROMEO:" + m.tokenizer.decode_bytes(ids)
     + b"\n" == text, (ids, text))
pieces = list(m.generate_text("ROMEO:", max_new_tokens=30, temperature=0.8, seed=3))
case("generate_text streams the same text", "".join(pieces) ==
     m.tokenizer.decode_bytes(ids).decode(errors="replace") and len(pieces) > 1, pieces[:5])
it = m.generate([72, 105], max_new_tokens=10, temperature=0)
case("generate is lazy: one token per next()", isinstance(next(it), int) and isinstance(next(it), int))
it.close()

# ------------------------------------------------------------------- loss
for label, model, path, toks in [("checkpoint", m, M, list(shk[:60])), ("Hugging Face", hf, HF, P)]:
    mine = model.eval_loss(np.array([toks]))
    theirs = json.loads(cli("eval", "--model", path, "--tokens", ids_arg(toks)))["loss"]
    # gpt eval prints six decimals
    case("%s: eval_loss = gpt eval's loss" % label, abs(mine - theirs) < 1e-6, (mine, theirs))
    logits = model.logits(np.array([toks[:-1]]))
    lp = logits[0] - logits[0].max(-1, keepdims=True)
    lp = lp - np.log(np.exp(lp).sum(-1, keepdims=True))
    nll = -lp[np.arange(len(toks) - 1), toks[1:]].mean()
    case("%s: logits give the same loss" % label, abs(nll - mine) < 1e-5, (nll, mine))

# --------------------------------------------------------------- training
data = np.frombuffer(open("data/tinyshakespeare.txt", "rb").read(), dtype=np.uint8).astype(np.int32)
rng = np.random.default_rng(0)
starts = rng.integers(0, len(data) - 17, size=(10, 4))
batches = [np.stack([data[s:s + 17] for s in row]) for row in starts]  # (4, 16 + 1) each

def train(seed, accum=1):
    # fp32: on a CPU with AVX512-BF16 "auto" trains (and then evaluates) in
    # bf16, while gpt eval reads the saved model in fp32
    t = gpt.Model(config=dict(vocab_size=256, max_seq_len=32, n_layer=2, n_head=2, n_embd=32),
                  tokenizer="bytes", device="cpu", precision="fp32", threads=2, seed=seed)
    t.train_init(batch_size=4, seq_len=16, grad_accum=accum, steps=10, lr=3e-3, warmup=2)
    if accum == 1:
        return t, [t.train_step(b)["loss"] for b in batches]
    return t, [t.train_step(np.stack(batches[2 * i:2 * i + 2]))["loss"] for i in range(5)]

t, losses = train(5)
case("training from numpy: the loss falls", losses[-1] < losses[0] - 0.2, losses)
case("training is deterministic", train(5)[1] == losses)
case("grad_accum 2: (2, B, T+1) batches", len(train(5, accum=2)[1]) == 5)
try:
    t.train_step(batches[0][:, :10])
    case("a batch of the wrong shape is refused", False)
except ValueError as e:
    case("a batch of the wrong shape is refused", "(1, 4, 17)" in str(e), e)
t.save(TMP + "/py.ckpt")
case("gpt info reads the saved checkpoint: 10 steps, bytes tokenizer",
     b"trained for 10 steps" in cli("info", "--model", TMP + "/py.ckpt") and
     b"tokenizer bytes" in cli("info", "--model", TMP + "/py.ckpt"))
win = batches[3][0].tolist()
theirs = json.loads(cli("eval", "--model", TMP + "/py.ckpt", "--tokens", ids_arg(win)))["loss"]
case("gpt eval of the saved model = eval_loss", abs(t.eval_loss(np.array([win])) - theirs) < 1e-6,
     theirs)
case("  ... = eval_loss of the saved model loaded in Python",
     abs(gpt.Model(TMP + "/py.ckpt", device="cpu").eval_loss(np.array([win])) - theirs) < 1e-6, theirs)
theirs = cli_ids("generate", "--model", TMP + "/py.ckpt", "--prompt-tokens", "72,105", "-n", "12",
                 "--temperature", "0", "--format", "ids")
case("gpt generate of the saved model = generate", theirs ==
     list(t.generate([72, 105], max_new_tokens=12, temperature=0, eot=False)), theirs)
own = gpt.Model(config=dict(vocab_size=300, max_seq_len=32, n_layer=1, n_head=2, n_embd=16),
                tokenizer=TOK, device="cpu")
own.save(TMP + "/own.ckpt")
case("a trained tokenizer travels in the checkpoint",
     gpt.Model(TMP + "/own.ckpt").tokenizer.encode(shk[:500]) == gpt.Tokenizer(TOK).encode(shk[:500]))

# ----------------------------------------------------------------- errors
def raises(fn, code, want=None):
    try:
        fn()
    except gpt.GptError as e:
        return e.code == code and (want is None or str(e) == want), (e.code, str(e))
    return False, "no exception"

r = subprocess.run([GPT, "eval", "--model", TMP + "/none.ckpt", "--tokens", "1,2"], capture_output=True)
msg = r.stderr.decode().strip().split(": ", 1)[1]
ok, got = raises(lambda: gpt.Model(TMP + "/none.ckpt"), 2, msg)
case("a missing model: GptError 2 with gpt's message", ok and r.returncode == 2, (got, msg))
ok, got = raises(lambda: gpt.Tokenizer(TMP + "/none.tok"), 2)
case("a missing tokenizer: GptError 2", ok, got)
ok, got = raises(lambda: m.eval_loss(np.array([[1, 2, 300]])), 2)
case("an id outside the vocabulary: GptError 2", ok and "vocabulary" in got[1], got)

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
EOF
