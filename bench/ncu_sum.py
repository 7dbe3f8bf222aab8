"""Sums an `ncu --csv --metrics gpu__time_duration.sum` report by kernel:
calls, total and mean microseconds, largest first. bench/gpu.sh uses it to
see where a decode step's time goes.

usage: python3 bench/ncu_sum.py report.csv [steps]   (steps: divide totals by it)
"""
import csv
import re
import sys


def main():
    rows = [l for l in open(sys.argv[1], errors="replace") if l.startswith('"')]
    steps = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    tot, cnt = {}, {}
    for r in csv.DictReader(rows):
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        v = float(r["Metric Value"].replace(",", ""))
        unit = r.get("Metric Unit", "")
        us = v / 1e3 if unit.startswith("n") else v * 1e3 if unit.startswith("m") else v
        name = re.split(r"[(<]", r["Kernel Name"])[0].strip() or r["Kernel Name"]
        tot[name] = tot.get(name, 0.0) + us
        cnt[name] = cnt.get(name, 0) + 1
    all_us = sum(tot.values())
    print("%-60s %7s %10s %9s" % ("kernel", "calls", "us/step", "us each"))
    for name in sorted(tot, key=tot.get, reverse=True)[:25]:
        print("%-60s %7.1f %10.1f %9.2f" % (name[:60], cnt[name] / steps, tot[name] / steps,
                                          tot[name] / cnt[name]))
    print("%-60s %7.1f %10.1f" % ("total", sum(cnt.values()) / steps, all_us / steps))


if __name__ == "__main__":
    main()
