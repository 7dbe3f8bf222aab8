"""Makes tests/data/hf_tiny: a small random GPT2LMHeadModel saved with
transformers' save_pretrained, and what the C tests compare against.

    /opt/refenv/bin/python tests/ref/make_hf_fixture.py [--out tests/data/hf_tiny]

Written (about 2 MB in all):
  fp32/  config.json, model.safetensors (F32), generation_config.json
  f16/   the same weights saved as F16     bf16/  ... as BF16
  ref.json          token sequences, losses, greedy continuations, and where
                    each sequence's logits lie in the .bin files
  logits_*.bin      float32 little-endian logits (T, V) per sequence, back to back
  greedy_prompt.txt the last greedy prompt as --prompt-tokens takes it ("i,j,k")
  greedy_ids.txt    its greedy continuation as the CLI prints it ("[i,j,k]")

Every parameter is drawn at random (biases and layernorm gains included), so
a tensor loaded into the wrong place changes the logits. The model is small
(vocab 1000, n_embd 64, 2 layers, 4 heads, n_inner 192, n_positions 64) and
the seed is chosen so that every greedy step's winning logit beats the
runner-up by more than 1e-3: fp32 rounding differences (~1e-5) cannot flip a
greedy token. The F16 and BF16 references are the fp32 model run with the
weights rounded to that type, which is exactly what our loader reads.
"""
import argparse
import copy
import json
import os
import shutil

import torch
from transformers import GPT2Config, GPT2LMHeadModel

V, C, L, NH, F, TMAX = 1000, 64, 2, 4, 192, 64
SEQ_LENS = [2, 8, 33, 64]  # the last one fills the context
GREEDY = [(1, 30), (5, 24), (12, 40)]  # (prompt length, new tokens)
MARGIN = 1e-3


def make_model(seed):
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=V, n_embd=C, n_layer=L, n_head=NH, n_inner=F, n_positions=TMAX,
                     bos_token_id=None, eos_token_id=None, attn_implementation="eager")
    model = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.1 * torch.randn_like(p))
    return model


@torch.no_grad()
def greedy(model, prompt, n):
    """Greedy continuation with the smallest top-1 / top-2 logit gap seen."""
    ids = list(prompt)
    gap = float("inf")
    for _ in range(n):
        logits = model(torch.tensor([ids])).logits[0, -1]
        top = torch.topk(logits, 2).values
        gap = min(gap, float(top[0] - top[1]))
        ids.append(int(torch.argmax(logits)))
    # transformers' own generate must agree with the plain loop
    out = model.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False,
                         pad_token_id=0)
    assert out[0, len(prompt):].tolist() == ids[len(prompt):]
    return ids[len(prompt):], gap


@torch.no_grad()
def logits_and_loss(model, seq):
    x = torch.tensor([seq])
    out = model(x, labels=x)
    return out.logits[0].float().contiguous(), float(out.loss)


def rounded_copy(model, dtype):
    m = make_model(0)
    m.load_state_dict({k: v.to(dtype).float() for k, v in model.state_dict().items()})
    return m.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "data", "hf_tiny"))
    a = ap.parse_args()
    out = os.path.abspath(a.out)
    g = torch.Generator().manual_seed(1234)
    seqs = [torch.randint(0, V, (n,), generator=g).tolist() for n in SEQ_LENS]
    prompts = [torch.randint(0, V, (n,), generator=g).tolist() for n, _ in GREEDY]

    for seed in range(100):
        model = make_model(seed)
        conts, gaps = zip(*(greedy(model, p, n) for p, (_, n) in zip(prompts, GREEDY)))
        if min(gaps) > MARGIN:
            break
    else:
        raise SystemExit("no seed gives greedy margins above %g" % MARGIN)

    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    model.save_pretrained(os.path.join(out, "fp32"))
    for dt, name in [(torch.float16, "f16"), (torch.bfloat16, "bf16")]:
        copy.deepcopy(model).to(dt).save_pretrained(os.path.join(out, name))

    ref = {"config": dict(vocab_size=V, n_embd=C, n_layer=L, n_head=NH, n_inner=F, n_positions=TMAX),
           "seed": seed, "sequences": [], "greedy": [], "copies": {}}
    with open(os.path.join(out, "logits_fp32.bin"), "wb") as fo:
        off = 0
        for s in seqs:
            lg, loss = logits_and_loss(model, s)
            fo.write(lg.numpy().astype("<f4").tobytes())
            ref["sequences"].append(dict(tokens=s, loss=loss, logits_offset=off))
            off += lg.numel()
    for p, c, gap in zip(prompts, conts, gaps):
        ref["greedy"].append(dict(prompt=p, tokens=c, min_gap=gap))
    # Reduced-precision copies: one sequence each.
    for dt, name in [(torch.float16, "f16"), (torch.bfloat16, "bf16")]:
        lg, loss = logits_and_loss(rounded_copy(model, dt), seqs[2])
        with open(os.path.join(out, "logits_%s.bin" % name), "wb") as fo:
            fo.write(lg.numpy().astype("<f4").tobytes())
        ref["copies"][name] = dict(sequence=2, loss=loss)
    with open(os.path.join(out, "ref.json"), "w") as fo:
        json.dump(ref, fo, indent=1)
        fo.write("\n")
    with open(os.path.join(out, "greedy_prompt.txt"), "w") as fo:
        fo.write(",".join(map(str, prompts[-1])) + "\n")
    with open(os.path.join(out, "greedy_ids.txt"), "w") as fo:
        fo.write("[" + ",".join(map(str, conts[-1])) + "]\n")
    print("seed %d, smallest greedy gap %.4f, written to %s" % (seed, min(gaps), out))


if __name__ == "__main__":
    main()
