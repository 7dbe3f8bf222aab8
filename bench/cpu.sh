#!/usr/bin/env bash
# bench/cpu.sh - the CPU training benchmark of the core issue: tokens/s and
# peak memory of gpt train steps (fp32, OMP_NUM_THREADS=2 by default) for
# seed-small at B=4 T=64 and T=256 and gpt2 at B=4 T=64, next to llm.c's
# CPU trainer on a 2-core AMD EPYC (fp32, OpenMP, -Ofast -march=native; the
# figures of /work/shared/BENCHMARKS.md, which we cannot re-run here).
# Prints a table; JSON lines go to bench-cpu.jsonl.
#
#   bash bench/cpu.sh [steps]        (run on a quiet machine)
set -eu
cd "$(dirname "$0")/.."
steps=${1:-5}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
make -s -j"$(nproc)" build/gpt
out=bench-cpu.jsonl
: > "$out"
run() { build/gpt bench train --device cpu --preset "$1" -B "$2" -T "$3" --steps "$steps" --warmup 1 >>"$out"; }
run seed-small 4 64
run seed-small 4 256
run gpt2 4 64
python3 - "$out" <<'PY'
import json, sys
llmc = {("seed-small", 64): (174, 0.75), ("seed-small", 256): (157, 1.5), ("gpt2", 64): (53, 2.5)}
print(f"{'workload':<22} {'step ms':>9} {'tok/s':>7} {'peak RSS GiB':>13} {'llm.c tok/s':>12} {'ratio':>6} {'llm.c GB':>9}")
for line in open(sys.argv[1]):
    r = json.loads(line)
    ref = llmc[(r["preset"], r["seq"])]
    print(f"{r['preset'] + ' B%d T%d' % (r['batch'], r['seq']):<22} {r['step_ms']:>9.0f} {r['tok_s']:>7.0f} "
          f"{r['peak_rss_gib']:>13.2f} {ref[0]:>12} {r['tok_s'] / ref[0]:>6.2f} {ref[1]:>9}")
PY
