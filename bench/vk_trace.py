#!/usr/bin/env python3
"""Sums a GPT_VULKAN_TRACE file (one line per timed dispatch, written by the
Vulkan backend at destroy) by op, per command buffer kind: each graph's last
replay, and the eager buffers together. Usage: vk_trace.py FILE [top]."""
import collections
import sys

rows = [l.split() for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")]
top = int(sys.argv[2]) if len(sys.argv) > 2 else 20
groups = collections.defaultdict(list)
for g, cb, name, s0, s1, s2, gx, gy, gz, ns in rows:
    key = "eager" if g == "-1" else "graph %s" % g
    groups[key].append((name, (s0, s1, s2), (gx, gy, gz), float(ns), cb))
for key, recs in sorted(groups.items()):
    # a graph: its last recording only (ids are reused when shapes change)
    if key != "eager":
        last = max(int(r[4]) for r in recs)
        recs = [r for r in recs if int(r[4]) == last]
    total = sum(r[3] for r in recs)
    by = collections.defaultdict(lambda: [0, 0.0])
    for name, spec, grid, ns, _ in recs:
        k = name if not name.startswith("matmul") else "%s %s %sx%s" % (name, ",".join(spec), *grid[:2])
        by[k][0] += 1
        by[k][1] += ns
    print("%s: %d dispatches, %.3f ms" % (key, len(recs), total / 1e6))
    for k, (n, ns) in sorted(by.items(), key=lambda kv: -kv[1][1])[:top]:
        print("  %-34s %5d %10.3f ms %5.1f%%  %7.2f us each" % (k, n, ns / 1e6, 100 * ns / total, ns / n / 1e3))
