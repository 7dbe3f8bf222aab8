"""CPU peer for bench_decode: Hugging Face transformers' GPT2LMHeadModel
(random weights, fp32) decoding greedily with its KV cache on the CPU, with
the same threads, prompt and new-token count. Decode time is isolated as
(time for N new tokens - time for 1 new token) / (N - 1). One JSON line
per batch size.

    OMP_NUM_THREADS=2 /opt/refenv/bin/python bench/peer_torch_decode_cpu.py [--batch 1,8]
"""
import argparse
import json
import os
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel


def run(model, ids, new):
    kw = dict(max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0)
    t0 = time.perf_counter()
    model.generate(ids, **kw)
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--prompt", type=int, default=64)
    p.add_argument("--new", type=int, default=64)
    p.add_argument("--batch", default="1,8")
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=a.layers, n_embd=a.dim, n_head=a.heads, n_positions=1024)
    model = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for b in map(int, a.batch.split(",")):
            ids = torch.randint(0, 50257, (b, a.prompt))
            run(model, ids, 4)  # warm-up
            full = min(run(model, ids, a.new) for _ in range(a.repeat))
            first = min(run(model, ids, 1) for _ in range(a.repeat))
            step = (full - first) / (a.new - 1)
            print(json.dumps(dict(peer="hf-transformers-cpu", torch=torch.__version__,
                                  threads=torch.get_num_threads(), batch=b, prompt=a.prompt,
                                  new=a.new, prefill_ms=round(first * 1e3, 1),
                                  ms_per_step=round(step * 1e3, 2),
                                  decode_tok_s=round(b / step, 2))), flush=True)


if __name__ == "__main__":
    main()
