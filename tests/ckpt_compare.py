"""Compares two of our checkpoints (src/ckpt.c's format) value by value.

usage: python3 tests/ckpt_compare.py A.ckpt B.ckpt [--tol X] [--exact]
                                      [--base START.ckpt --change X]

Prints the largest absolute difference of the parameters, and of the AdamW
moments when both files hold them, and the step counters; exits 1 when a
difference is above --tol (relative to the largest magnitude of that part,
so that one tolerance fits parameters and moments alike), or, with --exact,
when the files differ at all in their values. With --base (the parameters
both runs started from): exits 1 when ||A - B|| > X ||B - START|| over the
parameters, i.e. when the runs disagree by more than a share X of what
training changed (the measure for bf16 runs, whose roundings differ).
Exit 2 on unreadable files.
"""
import struct
import sys
from array import array


def read(path):
    with open(path, "rb") as f:
        b = f.read()
    o = 0

    def take(fmt):
        nonlocal o
        v = struct.unpack_from("<" + fmt, b, o)
        o += struct.calcsize("<" + fmt)
        return v

    if b[:8] != b"GPTCKPT\0":
        raise ValueError(f"{path}: not a checkpoint")
    o = 8
    version, flags = take("II")
    take("iiiiiii")
    take("f")
    step, opt_step = take("qq")
    state = {}
    if flags & 2:
        opts = take("iiiiiii") + take("fffffff")
        rng = take("QQQQ")
        tokens_seen, best = take("q")[0], take("f")[0]
        state = {"batch": opts[0], "rng": rng, "tokens_seen": tokens_seen, "best_val": best}
    (n,) = take("H")
    o += n
    if flags & 4:
        (n,) = take("Q")
        o += n
    (nt,) = take("I")
    sizes = []
    for _ in range(nt):
        (n,) = take("H")
        o += n
        take("I")
        take("qq")
        sizes.append(take("Q")[0])
    total = sum(sizes)
    data = array("f")
    data.frombytes(b[o:o + 4 * total * (3 if flags & 1 else 1)])
    if sys.byteorder != "little":
        data.byteswap()
    parts = {"params": data[:total]}
    if flags & 1:
        parts["m"] = data[total:2 * total]
        parts["v"] = data[2 * total:]
    return {"step": step, "opt_step": opt_step, "state": state, "parts": parts}


def main():
    args = sys.argv[1:]
    tol, exact, base, change = None, False, None, None
    if "--base" in args:
        i = args.index("--base")
        base, change = args[i + 1], float(args[i + 3])
        assert args[i + 2] == "--change"
        del args[i:i + 4]
    if "--tol" in args:
        i = args.index("--tol")
        tol = float(args[i + 1])
        del args[i:i + 2]
    if "--exact" in args:
        exact = True
        args.remove("--exact")
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        a, b = read(args[0]), read(args[1])
        start = read(base)["parts"]["params"] if base else None
    except (OSError, ValueError, struct.error) as e:
        print(f"ckpt_compare: {e}", file=sys.stderr)
        sys.exit(2)
    bad = []
    if (a["step"], a["opt_step"]) != (b["step"], b["opt_step"]):
        bad.append(f"steps {a['step']}/{a['opt_step']} vs {b['step']}/{b['opt_step']}")
    sa, sb = dict(a["state"]), dict(b["state"])
    va, vb = sa.pop("best_val", 0.0), sb.pop("best_val", 0.0)
    # the best validation loss is a sum of losses: summation order moves it
    if sa != sb or (va != vb if exact else abs(va - vb) > 1e-5 * abs(vb)):
        bad.append(f"trainer state {a['state']} vs {b['state']}")
    for name, x in a["parts"].items():
        y = b["parts"].get(name)
        if y is None or len(x) != len(y):
            bad.append(f"{name}: missing or of another size")
            continue
        diff = max(abs(p - q) for p, q in zip(x, y))
        scale = max(abs(q) for q in y) or 1.0
        print(f"{name}: max |a - b| = {diff:.3g} (largest |b| {scale:.3g}, relative {diff / scale:.3g})")
        if exact and diff != 0:
            bad.append(f"{name} differ")
        if tol is not None and diff > tol * scale:
            bad.append(f"{name} differ by {diff / scale:.3g} of their scale (tolerance {tol:g})")
    if start is not None:
        x, y = a["parts"]["params"], b["parts"]["params"]
        d = sum((p - q) ** 2 for p, q in zip(x, y)) ** 0.5
        u = sum((q - s0) ** 2 for q, s0 in zip(y, start)) ** 0.5
        print(f"params: ||a - b|| = {d:.3g}, ||b - start|| = {u:.3g}, share {d / (u or 1):.3g}")
        if d > change * u:
            bad.append(f"params differ by {d / (u or 1):.3g} of the change (limit {change:g})")
    for line in bad:
        print("ckpt_compare: " + line)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
