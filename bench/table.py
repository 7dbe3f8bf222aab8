"""Reads the JSON lines bench/gpu.sh collected (ours: gpt bench; peers:
torch_gpt.py, torch_generate.py) and prints one table with the ratios the
CUDA issue sets as targets, all from the same call on the same card.

usage: python3 bench/table.py out/gpu/bench.jsonl
"""
import json
import sys

PRESETS = {"gpt2": (12, 768, 1024), "seed-small": (2, 512, 512), "seed-large": (6, 512, 512)}


def key_of(r):
    """(workload, batch) of a training row, ours or a peer's."""
    if r.get("impl") == "gpt":
        return r["preset"], r["batch"]
    for name, (layers, dim, seq) in PRESETS.items():
        if r.get("layers") == layers and r.get("dim") == dim and r.get("seq") == seq:
            return name, r["batch"]
    return None, r.get("batch")


def main():
    rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
    train = [r for r in rows if r.get("bench") == "train" or "step_ms" in r]
    gen = [r for r in rows if r.get("bench") == "generate" or "ms_per_token" in r]
    peers = {}
    for r in train:
        if r.get("impl") != "gpt":
            peers[(key_of(r), r["peer"])] = r
    print("%-34s %9s %10s %7s %8s %8s %s" % ("training", "step ms", "tok/s", "TFLOP/s", "mem GiB",
                                             "loss", "vs PyTorch compile (eager)"))
    for r in train:
        k = key_of(r)
        if r.get("impl") == "gpt":
            name = "gpt %s B%d T%d %s%s" % (r["preset"], r["batch"], r["seq"], r["precision"],
                                           " rc" if r.get("recompute") else "")
        else:
            name = "%s %s B%d" % (r["peer"], k[0], k[1])
        extra = ""
        if r.get("impl") == "gpt" and r["precision"] == "bf16":
            c, e = peers.get((k, "pytorch-compile")), peers.get((k, "pytorch-eager"))
            if c:
                extra = "time %.2fx, tok/s %.2fx, mem %.2fx" % (r["step_ms"] / c["step_ms"],
                                                                 r["tok_s"] / c["tok_s"],
                                                                 r["mem_gib"] / c["mem_gib"])
            if e:
                extra += " (eager: time %.2fx)" % (r["step_ms"] / e["step_ms"])
        print("%-34s %9.3f %10.0f %7.1f %8.2f %8.4f %s" % (name, r["step_ms"], r["tok_s"],
                                                          r.get("tflops", 0), r.get("mem_gib", 0),
                                                          r.get("loss", 0), extra))
    bf = {(r["preset"], r["batch"], r["seq"]): r for r in train
          if r.get("impl") == "gpt" and r["precision"] == "bf16" and not r.get("recompute")}
    for r in train:
        if r.get("impl") == "gpt" and r["precision"] == "fp32":
            b = bf.get((r["preset"], r["batch"], r["seq"]))
            if b:
                print("bf16 over fp32, %s B%d: %.2fx faster" % (r["preset"], r["batch"],
                                                               r["step_ms"] / b["step_ms"]))
    print("%-34s %10s %12s" % ("generation (prompt 64, 256 new)", "tok/s", "ms/token"))
    hf = {r["batch"]: r for r in gen if r.get("peer")}
    for r in gen:
        ours = r.get("impl", "").startswith("gpt")
        name = ("%s %s %s" % (r["impl"], r["preset"], r["precision"]) if ours else r["peer"])
        extra = ""
        if ours and r["batch"] in hf:
            extra = "%.1fx transformers" % (r["tok_s"] / hf[r["batch"]]["tok_s"])
        print("%-34s %10.1f %12.3f %s" % (name + " batch %d" % r["batch"], r["tok_s"],
                                          r["ms_per_token"], extra))


if __name__ == "__main__":
    main()
