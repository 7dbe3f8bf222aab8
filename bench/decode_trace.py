#!/usr/bin/env python3
"""Where a decoding step's time goes, from a GPT_CUDA_TRACE file.

    GPT_CUDA_TRACE=/tmp/t.bin build-cuda/gpt bench generate --preset gpt2 --batch 16
    python3 bench/decode_trace.py /tmp/t.bin

Block 0 of each traced kernel (the small-N products, layernorms, KV
attention, argmax) stamps the global timer when it starts
and when its wait for the kernel before it returns (cuda_common.cuh, TRACE).
A kernel's share of the step is the time from its own wait returning to the
next traced kernel's wait returning: what it adds to the chain of dependent
kernels. 'pre-wait' is how long its blocks sat resident before the kernel
before it finished (programmatic dependent launch). The first quarter of the
records (prefill, first steps) is skipped. The 'argmax' row also holds the
step boundary: the graph's end, the next graph's launch and the embedding
kernel (not traced).
"""
import collections
import signal
import struct
import sys


def main(path):
    data = open(path, 'rb').read()
    w = struct.unpack('<%dQ' % (len(data) // 8), data)
    n = min(w[0], (len(w) - 2) // 2)
    recs = sorted((w[2 + 2 * i], w[3 + 2 * i]) for i in range(n))
    entry = [r for r in recs if (r[1] >> 8) & 0xff == 0]
    wait = [r for r in recs if (r[1] >> 8) & 0xff == 1]
    m = min(len(entry), len(wait))
    labels = []
    for i in range(m):
        x = entry[i][1]
        tag, extra = x & 0xff, x >> 16
        if tag == 1:  # small-N product: named by its output width
            lab = {2304: 'qkv', 3072: 'fc'}.get(extra, 'head' if extra > 8192 else 'sn%d' % extra)
            if extra == 768:
                lab = 'proj' if labels and labels[-1] == 'attn' else 'fc2'
        elif tag == 2:
            lab = 'ln(res)' if extra else 'ln'
        else:
            lab = {3: 'attn', 4: 'argmax'}.get(tag, 'tag%d' % tag)
        labels.append(lab)
    share = collections.defaultdict(list)
    pre = collections.defaultdict(list)
    start = m // 4
    for i in range(start, m - 1):
        share[labels[i]].append((wait[i + 1][0] - wait[i][0]) / 1e3)
        pre[labels[i]].append((wait[i][0] - entry[i][0]) / 1e3)
    steps = max(1, sum(1 for i in range(start, m - 1) if labels[i] == 'argmax'))
    print('%-8s %8s %10s %12s %12s' % ('kernel', 'per step', 'us each', 'us per step', 'pre-wait us'))
    total = 0.0
    for k in sorted(share, key=lambda k: -sum(share[k])):
        per = sum(share[k]) / steps
        total += per
        print('%-8s %8.1f %10.2f %12.1f %12.2f' % (k, len(share[k]) / steps, sum(share[k]) / len(share[k]),
                                                  per, sum(pre[k]) / len(pre[k])))
    print('%d steps, %.1f us per step' % (steps, total))


if __name__ == '__main__':
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet when piped into head
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
