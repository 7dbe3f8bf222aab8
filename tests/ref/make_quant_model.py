#!/usr/bin/env python3
"""Writes tests/data/quant_model.bin: a small byte-level GPT trained in
PyTorch (float32) on the first 90% of data/tinyshakespeare.txt, for the int8
tests (tests/test_quant.c), which need a model whose predictions mean
something: a random model's logits are nearly flat, so any rounding flips
its greedy choices and agreement would measure nothing.

The model is GPT-2's (as tests/ref/make_reference.py): token + position
embeddings, pre-LN blocks, GELU(tanh) MLP, final layernorm, head tied to the
token embedding; parameter names and layouts (out, in) are the C model's.
C = 80 is on purpose not a multiple of 32: the int8 rows then end in a
padded block, as they do in no GPT-2 size but may in a user's model.

Also written: a fixed prompt set (16 prompts of 32 bytes from the held-out
last 10%, at evenly spaced offsets) and PyTorch's mean loss on held-out
windows of 64 bytes (the test checks the C model reproduces it, so that the
weights were loaded as trained).

usage: python3 tests/ref/make_quant_model.py [OUT]   (needs torch; a few minutes on one core)

File format: as make_reference.py (b"GPTFIX01", u64 n, n bytes of JSON
{"config", "tensors": [{"name", "shape", "offset"}]}, then float32 data).
"""
import json, math, struct, sys
import torch

torch.manual_seed(2024)
torch.set_num_threads(1)

V, Vp, maxT, L, NH, C = 256, 256, 64, 2, 4, 80
F, B, T, STEPS, LR = 4 * C, 16, 64, 1000, 3e-3
PROMPTS, PROMPT_LEN = 16, 32

text = open("data/tinyshakespeare.txt", "rb").read()
data = torch.frombuffer(bytearray(text), dtype=torch.uint8).long()
split = int(len(data) * 0.9)
train, held = data[:split], data[split:]


def names():
    out = ["wte", "wpe"]
    for l in range(L):
        out += [f"h.{l}.attn.qkv.w", f"h.{l}.attn.proj.w", f"h.{l}.mlp.fc.w", f"h.{l}.mlp.proj.w"]
    for l in range(L):
        out += [f"h.{l}.ln1.w", f"h.{l}.ln1.b", f"h.{l}.attn.qkv.b", f"h.{l}.attn.proj.b",
                f"h.{l}.ln2.w", f"h.{l}.ln2.b", f"h.{l}.mlp.fc.b", f"h.{l}.mlp.proj.b"]
    return out + ["lnf.w", "lnf.b"]


def shape(n):
    if n == "wte": return (Vp, C)
    if n == "wpe": return (maxT, C)
    if n.endswith("qkv.w"): return (3 * C, C)
    if n.endswith("attn.proj.w"): return (C, C)
    if n.endswith("fc.w"): return (F, C)
    if n.endswith("mlp.proj.w"): return (C, F)
    if n.endswith("qkv.b"): return (3 * C,)
    if n.endswith("fc.b"): return (F,)
    return (C,)


params = {}
for n in names():
    s = shape(n)
    if len(s) == 2:
        std = 0.02 / math.sqrt(2 * L) if n.endswith("proj.w") else 0.02
        p = std * torch.randn(s)
    else:
        p = torch.ones(s) if n.endswith(".w") else torch.zeros(s)
    params[n] = p.requires_grad_(True)


def gelu(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def forward(P, x_in):
    b, t = x_in.shape
    x = P["wte"][x_in] + P["wpe"][torch.arange(t)]
    hs = C // NH
    mask = torch.tril(torch.ones(t, t, dtype=torch.bool))
    for l in range(L):
        g = lambda k: P[f"h.{l}.{k}"]
        h = torch.nn.functional.layer_norm(x, (C,), g("ln1.w"), g("ln1.b"), 1e-5)
        q, k, v = (h @ g("attn.qkv.w").T + g("attn.qkv.b")).split(C, dim=-1)
        q, k, v = (z.view(b, t, NH, hs).transpose(1, 2) for z in (q, k, v))
        att = ((q @ k.transpose(-1, -2)) / math.sqrt(hs)).masked_fill(~mask, float("-inf")).softmax(-1)
        x = x + (att @ v).transpose(1, 2).reshape(b, t, C) @ g("attn.proj.w").T + g("attn.proj.b")
        h = torch.nn.functional.layer_norm(x, (C,), g("ln2.w"), g("ln2.b"), 1e-5)
        x = x + gelu(h @ g("mlp.fc.w").T + g("mlp.fc.b")) @ g("mlp.proj.w").T + g("mlp.proj.b")
    x = torch.nn.functional.layer_norm(x, (C,), P["lnf.w"], P["lnf.b"], 1e-5)
    return x @ P["wte"][:V].T


def loss_of(P, tok):
    logits = forward(P, tok[:, :-1])
    return torch.nn.functional.cross_entropy(logits.reshape(-1, V), tok[:, 1:].reshape(-1))


decay = [params[n] for n in names() if params[n].dim() == 2]
other = [params[n] for n in names() if params[n].dim() == 1]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                        lr=LR, betas=(0.9, 0.95))
for step in range(STEPS):
    lr = LR * min(1, (step + 1) / 50) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / STEPS)))
    for g in opt.param_groups:
        g["lr"] = lr
    i = torch.randint(0, len(train) - T - 1, (B,))
    tok = torch.stack([train[j:j + T + 1] for j in i])
    opt.zero_grad()
    loss = loss_of(params, tok)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
    opt.step()
    if step % 100 == 0 or step == STEPS - 1:
        print(f"step {step} loss {loss.item():.4f}", flush=True)

# Held-out loss over 8 windows of T+1 bytes, and the prompt set.
with torch.no_grad():
    eval_tok = torch.stack([held[j * 4096:j * 4096 + T + 1] for j in range(8)])
    held_loss = loss_of(params, eval_tok).item()
stride = (len(held) - PROMPT_LEN) // PROMPTS
prompts = torch.stack([held[j * stride:j * stride + PROMPT_LEN] for j in range(PROMPTS)])

tensors = [(n, params[n].detach()) for n in names()]
tensors += [("eval_tokens", eval_tok.float()), ("prompts", prompts.float())]
cfg = dict(V=V, Vp=Vp, maxT=maxT, L=L, NH=NH, C=C, F=F, steps=STEPS, eval_loss=held_loss,
           torch=torch.__version__)
meta, off = [], 0
for n, t in tensors:
    meta.append(dict(name=n, shape=list(t.shape), offset=off))
    off += t.numel()
header = json.dumps(dict(config=cfg, tensors=meta)).encode()
out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/quant_model.bin"
with open(out, "wb") as f:
    f.write(b"GPTFIX01" + struct.pack("<Q", len(header)) + header)
    for _, t in tensors:
        f.write(t.contiguous().numpy().astype("<f4").tobytes())
print(f"wrote {out}: {off} floats, held-out loss {held_loss:.4f} nats/byte")
