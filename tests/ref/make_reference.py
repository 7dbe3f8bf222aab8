#!/usr/bin/env python3
"""Writes tests/data/ref_model.bin: a tiny GPT built in PyTorch (float64) from
seeded random weights, with its logits, loss, every parameter gradient, and
10 steps of gradient clipping + AdamW (PyTorch's own clip_grad_norm_ and
torch.optim.AdamW). tests/test_model_ref.c loads the same weights into the C
model and compares every tensor.

The model is GPT-2's: token + learned position embeddings, pre-LN blocks
(layernorm, causal multi-head attention, residual, layernorm, GELU(tanh) MLP,
residual), final layernorm, head tied to the token embedding. The embedding
has Vp > V rows (padding, zero) and the loss is over the first V logits.
Parameter names and layouts (out, in) are the C model's.

usage: python3 tests/ref/make_reference.py [OUT]   (needs torch)

File format (little-endian): b"GPTFIX01", u64 n, n bytes of JSON
{"config": {...}, "tensors": [{"name", "shape", "offset"}...]}, then float32
data; offsets count floats from the start of the data.
"""
import json, math, struct, sys
import torch

torch.manual_seed(1234)
torch.set_default_dtype(torch.float64)

V, Vp, maxT, L, NH, C = 53, 64, 16, 2, 3, 24
F, B, T, STEPS = 4 * C, 2, 7, 10
HP = dict(lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, grad_clip=1.0)


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


# Larger than GPT-2's 0.02 so that every path carries a visible gradient.
params = {}
for n in names():
    s = shape(n)
    if n.endswith(".w") and len(s) == 1:
        p = 1.0 + 0.1 * torch.randn(s)          # layernorm gains
    elif len(s) == 1:
        p = 0.1 * torch.randn(s)                # biases
    else:
        p = 0.3 * torch.randn(s)
    if n == "wte":
        p[V:] = 0                               # padding rows
    params[n] = p.requires_grad_(True)

batches = torch.randint(0, V, (STEPS, B, T + 1))


def gelu(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def forward(P, tok):
    x_in, y = tok[:, :-1], tok[:, 1:]
    x = P["wte"][x_in] + P["wpe"][torch.arange(T)]
    hs = C // NH
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(L):
        g = lambda k: P[f"h.{l}.{k}"]
        h = torch.nn.functional.layer_norm(x, (C,), g("ln1.w"), g("ln1.b"), 1e-5)
        qkv = h @ g("attn.qkv.w").T + g("attn.qkv.b")
        q, k, v = qkv.split(C, dim=-1)
        q, k, v = (t.view(B, T, NH, hs).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hs)
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        a = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + a @ g("attn.proj.w").T + g("attn.proj.b")
        h = torch.nn.functional.layer_norm(x, (C,), g("ln2.w"), g("ln2.b"), 1e-5)
        h = gelu(h @ g("mlp.fc.w").T + g("mlp.fc.b"))
        x = x + h @ g("mlp.proj.w").T + g("mlp.proj.b")
    x = torch.nn.functional.layer_norm(x, (C,), P["lnf.w"], P["lnf.b"], 1e-5)
    logits = (x @ P["wte"].T)[..., :V]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
    return logits, loss


tensors = []
def put(name, t):
    tensors.append((name, t.detach().to(torch.float32).contiguous()))

for n in names():
    put(n, params[n])
put("batches", batches.to(torch.float64))
logits, loss = forward(params, batches[0])
loss.backward()
put("logits", logits)
put("loss", loss.reshape(1))
for n in names():
    put("grad." + n, params[n].grad)

# Ten optimizer steps, one batch each, as a PyTorch user would write them.
for p in params.values():
    p.grad = None
decay = [params[n] for n in names() if params[n].dim() == 2]
other = [params[n] for n in names() if params[n].dim() == 1]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": HP["weight_decay"]},
                         {"params": other, "weight_decay": 0.0}],
                        lr=HP["lr"], betas=(HP["beta1"], HP["beta2"]), eps=HP["eps"])
losses, norms = [], []
for s in range(STEPS):
    opt.zero_grad()
    _, l_s = forward(params, batches[s])
    l_s.backward()
    norms.append(torch.nn.utils.clip_grad_norm_(list(params.values()), HP["grad_clip"]).item())
    opt.step()
    losses.append(l_s.item())
put("step_losses", torch.tensor(losses))
put("step_norms", torch.tensor(norms))
for n in names():
    put("final." + n, params[n])

cfg = dict(V=V, Vp=Vp, maxT=maxT, L=L, NH=NH, C=C, F=F, B=B, T=T, steps=STEPS, **HP,
           torch=torch.__version__)
meta, off = [], 0
for n, t in tensors:
    meta.append(dict(name=n, shape=list(t.shape), offset=off))
    off += t.numel()
header = json.dumps(dict(config=cfg, tensors=meta)).encode()
out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/ref_model.bin"
with open(out, "wb") as f:
    f.write(b"GPTFIX01" + struct.pack("<Q", len(header)) + header)
    for _, t in tensors:
        f.write(t.numpy().astype("<f4").tobytes())
print(f"wrote {out}: {len(tensors)} tensors, {off} floats, loss {loss.item():.6f}")
