"""PyTorch DDP peer for the data-parallel benchmark: the GPT-2 of
torch_gpt.py trained the way a PyTorch user scales it out (torchrun,
DistributedDataParallel, bf16 autocast, torch.compile, fused AdamW, global
gradient-norm clipping), B sequences of T tokens per GPU. With --zero the
optimizer is ZeroRedundancyOptimizer (AdamW state split across ranks,
PyTorch's ZeRO stage 1). Rank 0 prints one JSON line.

usage: torchrun --standalone --nproc_per_node N bench/peers/torch_ddp.py \\
           [--batch 32] [--seq 1024] [--steps 20] [--compile] [--zero]
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_gpt import GPT  # noqa: E402  (the single-GPU peer's model)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--vocab", type=int, default=50304)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--zero", action="store_true")
    p.add_argument("--cpu", action="store_true", help="gloo on CPUs: a smoke test of this script")
    a = p.parse_args()
    dist.init_process_group("gloo" if a.cpu else "nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", 0))
    if not a.cpu:
        torch.cuda.set_device(local)
    dev = "cpu" if a.cpu else f"cuda:{local}"
    sync = (lambda: None) if a.cpu else torch.cuda.synchronize
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = True
    model = GPT(a.vocab, a.seq, a.layers, a.dim, a.heads).to(dev)
    nparams = sum(t.numel() for t in model.parameters()) - model.wpe.weight.numel()
    ddp = DDP(model, device_ids=None if a.cpu else [local], gradient_as_bucket_view=True)
    kw = dict(lr=3e-4, weight_decay=0.1, fused=True)
    if a.zero:
        from torch.distributed.optim import ZeroRedundancyOptimizer
        opt = ZeroRedundancyOptimizer(ddp.parameters(), optimizer_class=torch.optim.AdamW, **kw)
    else:
        opt = torch.optim.AdamW(ddp.parameters(), **kw)
    step_fn = torch.compile(ddp) if a.compile else ddp
    g = torch.Generator(device=dev).manual_seed(1000 + rank)  # each rank its own rows
    data = torch.randint(0, min(a.vocab, 50257), (a.steps + 5, a.batch, a.seq + 1), device=dev, generator=g)
    times = []
    for s in range(a.steps + 5):
        x, y = data[s, :, :-1].contiguous(), data[s, :, 1:].contiguous()
        sync()
        t0 = time.perf_counter()
        with torch.autocast("cpu" if a.cpu else "cuda", dtype=torch.bfloat16):
            loss = step_fn(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ddp.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        times.append(time.perf_counter() - t0)
    # The slowest rank's step is the job's step.
    t = torch.tensor(sorted(times[5:])[len(times[5:]) // 2], device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    t = t.item()
    # AdamW state this rank holds (exp_avg, exp_avg_sq; the step counters are scalars).
    local_opt = opt.optim if a.zero else opt
    opt_bytes = sum(v.numel() * v.element_size() for st in local_opt.state.values()
                    for v in st.values() if torch.is_tensor(v) and v.dim() > 0)
    if rank == 0:
        tok = a.batch * a.seq * world
        print(json.dumps(dict(peer="pytorch-ddp" + ("-compile" if a.compile else "-eager")
                              + ("-zero1" if a.zero else ""), gpus=world, layers=a.layers, dim=a.dim,
                              seq=a.seq, batch_per_gpu=a.batch, params=nparams,
                              step_ms=round(t * 1e3, 3), tok_s=round(tok / t),
                              opt_mib_per_gpu=round(opt_bytes / 2**20, 1),
                              mem_gib=0 if a.cpu else round(torch.cuda.max_memory_allocated() / 2**30, 2),
                              torch=torch.__version__)), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
