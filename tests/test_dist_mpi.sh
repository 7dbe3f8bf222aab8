#!/usr/bin/env bash
# Data-parallel training on the CPU backend with real MPI ranks (mpirun):
# the communicator's collectives; 2 ranks with a global batch of B rows
# against one process with B rows, with and without ZeRO-1 and with
# gradient accumulation; a checkpoint of 2 ranks resumed by 1 and by 2;
# a rank that is killed, or stops answering, ends the job with a message
# and a non-zero exit within a bounded time.
#
# Tolerances (fp32): the ranks and the single process compute every
# activation of a row with the same code and the same summation order
# within the row; what differs is the order in which rows' contributions
# are added (a rank's rows in its own products, then the ranks' sums added
# by MPI), so each gradient element differs by a few ulps of the sum of
# magnitudes of its terms. Losses (means of per-row sums) then agree to
# ~1e-7 relative: 1e-5 is asserted. AdamW divides each gradient element by
# its own running magnitude, so an element whose terms nearly cancel
# carries the summation noise into its step: with lr 3e-3 the largest
# parameter difference measured after 6 steps is 6e-6 (0.2% of one
# step), and 1e-4 is asserted; a run that sees other rows, or the same
# rows with a step missing, moves parameters by ~lr (a different seed:
# 0.12), three orders of magnitude more. The moments are held to the same
# 1e-4 of their largest value (measured: 7e-7). Same ranks and same order
# (a resume with as many ranks) must give identical files.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d)
bg=""
trap '[ -n "$bg" ] && kill -KILL $bg 2>/dev/null; rm -rf "$tmp"' EXIT
# CI runs as root in a container: Open MPI must be told that root is fine,
# may put 2 ranks on 2 cores, and must not use cross-memory attach (ptrace
# is often not allowed there).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMP_NUM_THREADS=1
# Sanitizer builds: Open MPI keeps memory until the process ends; its
# plugins stay loaded and stacks are unwound in full so that the
# suppressions can name them (they never match our own allocations).
export OMPI_MCA_mca_base_component_disable_dlclose=1 PMIX_MCA_mca_base_component_disable_dlclose=1
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan_mpi.supp:fast_unwind_on_malloc=0:print_suppressions=0"
MPIRUN="timeout 120 mpirun --oversubscribe"
if ! command -v mpirun >/dev/null || [ ! -x "$GPT_BUILD/tests/dist/comm_check" ]; then
    echo "FAIL MPI: mpirun or an MPI build is missing (install openmpi-bin libopenmpi-dev, rebuild)"
    echo "0 passed, 1 failed"
    exit 1
fi
D=data/tinyshakespeare.txt
# fp32 (the tolerances above are fp32's; a CPU with bf16 instructions would
# otherwise train in bf16), also on every resume: precision is not saved.
P="--precision fp32"
# 3 layers: 2665 blocks of 64 parameters, an odd count, so that 2 ranks pad
# the flat vector (model_dist.c) and the padding's path runs too
MODEL="--tokenizer bytes --layers 3 --heads 4 --channels 64 --max-seq 64 -T 64 $P"
RUN="--data $D $MODEL --sample 0 --threads 1 --steps 6 --eval-every 3 --eval-batches 4 --lr 3e-3 --warmup 2"
cmp_ckpt() { python3 tests/ckpt_compare.py "$@" >"$tmp/cmp.log" 2>&1 || { cat "$tmp/cmp.log"; return 1; }; }
# The losses of two runs' metrics, step by step, within a relative tolerance.
same_losses() {
    python3 - "$1" "$2" "$3" <<'EOF'
import json, sys
def losses(p):
    return [(r["step"], r.get("loss", r.get("val_loss"))) for r in map(json.loads, open(p))]
a, b, tol = losses(sys.argv[1]), losses(sys.argv[2]), float(sys.argv[3])
bad = [(x, y) for x, y in zip(a, b) if x[0] != y[0] or abs(x[1] - y[1]) > tol * abs(y[1])]
if len(a) != len(b) or bad:
    print("losses differ:", len(a), len(b), bad[:3]); sys.exit(1)
EOF
}

case_begin "MPI communicator: every collective, 2 and 3 ranks"
$MPIRUN -np 2 "$GPT_BUILD/tests/dist/comm_check" >"$tmp/c2" 2>&1; r2=$?
$MPIRUN -np 3 "$GPT_BUILD/tests/dist/comm_check" >"$tmp/c3" 2>&1; r3=$?
check "2 ranks, exit $r2: $(grep -E 'FAIL|expected' "$tmp/c2" | head -3)" [ "$r2" = 0 ]
check "3 ranks, exit $r3: $(grep -E 'FAIL|expected' "$tmp/c3" | head -3)" [ "$r3" = 0 ]
check "not every rank reported" [ "$(grep -c '^13 passed, 0 failed$' "$tmp/c2")" = 2 ]
check "not every rank reported" [ "$(grep -c '^13 passed, 0 failed$' "$tmp/c3")" = 3 ]
case_end

run_gpt "$tmp/o1" "$tmp/e1" train $RUN -B 4 --out "$tmp/one"; rc1=$?
case_begin "2 ranks x B 2 train as 1 process x B 4 (fp32 summation order)"
$MPIRUN -np 2 "$GPT" train $RUN -B 2 --out "$tmp/two" >"$tmp/o2" 2>"$tmp/e2"; rc2=$?
check "exit $rc1 $rc2: $(tail -3 "$tmp/e2")" [ "$rc1$rc2" = 00 ]
check "no data-parallel line" grep -q "data parallel over 2 ranks (mpi), ZeRO-1 off: 2 x 2 x 1 = 4 sequences" "$tmp/e2"
check "rank 1 printed progress" [ "$(grep -c '^step 6/6' "$tmp/e2")" = 1 ]
check "losses" same_losses "$tmp/one/metrics.jsonl" "$tmp/two/metrics.jsonl" 1e-5
check "checkpoints" cmp_ckpt "$tmp/one/model.ckpt" "$tmp/two/model.ckpt" --tol 1e-4
check "one final line" [ "$(grep -c 'final validation loss' "$tmp/o2")" = 1 ]
case_end

case_begin "ZeRO-1: the same training, half the AdamW state a rank"
$MPIRUN -np 2 "$GPT" train $RUN -B 2 --zero 1 --out "$tmp/zero" >"$tmp/o3" 2>"$tmp/e3"; rc=$?
check "exit $rc: $(tail -3 "$tmp/e3")" [ "$rc" = 0 ]
check "losses" same_losses "$tmp/one/metrics.jsonl" "$tmp/zero/metrics.jsonl" 1e-5
check "checkpoints" cmp_ckpt "$tmp/one/model.ckpt" "$tmp/zero/model.ckpt" --tol 1e-4
full=$(grep -o 'ZeRO-1 off.*AdamW state [0-9.]* [KMG]iB' "$tmp/e2" | grep -o '[0-9.]* [KMG]iB$')
half=$(grep -o 'ZeRO-1 on.*AdamW state [0-9.]* [KMG]iB' "$tmp/e3" | grep -o '[0-9.]* [KMG]iB$')
check "AdamW state a rank: $full without, $half with ZeRO-1" python3 -c "
u = {'KiB': 1 << 10, 'MiB': 1 << 20, 'GiB': 1 << 30}
f, h = [float(x.split()[0]) * u[x.split()[1]] for x in ('$full', '$half')]
assert abs(h - f / 2) <= 0.01 * f"
case_end

case_begin "gradient accumulation: 2 ranks x B 1 x 2 micro-batches as 1 x B 2 x 2"
run_gpt "$tmp/o4" "$tmp/e4" train $RUN -B 2 --grad-accum 2 --out "$tmp/acc1"; rc1=$?
$MPIRUN -np 2 "$GPT" train $RUN -B 1 --grad-accum 2 --out "$tmp/acc2" >"$tmp/o5" 2>"$tmp/e5"; rc2=$?
check "exit $rc1 $rc2: $(tail -2 "$tmp/e5")" [ "$rc1$rc2" = 00 ]
check "losses" same_losses "$tmp/acc1/metrics.jsonl" "$tmp/acc2/metrics.jsonl" 1e-5
check "checkpoints" cmp_ckpt "$tmp/acc1/model.ckpt" "$tmp/acc2/model.ckpt" --tol 1e-4
case_end

for z in 0 1; do
    case_begin "a checkpoint of 2 ranks (ZeRO-1 $z) resumes in 2 ranks and in 1 as the run that went on"
    $MPIRUN -np 2 "$GPT" train $RUN -B 2 --zero $z --stop-after 3 --out "$tmp/s$z" >/dev/null 2>"$tmp/e6"; rc1=$?
    cp -r "$tmp/s$z" "$tmp/t$z"
    # (--eval-* are not in the checkpoint: the best validation loss it keeps depends on them)
    $MPIRUN -np 2 "$GPT" train --data $D --resume $P --out "$tmp/s$z" --sample 0 --threads 1 --zero $z \
        --eval-every 3 --eval-batches 4 >/dev/null 2>"$tmp/e7"; rc2=$?
    run_gpt "$tmp/o8" "$tmp/e8" train --data $D --resume $P --out "$tmp/t$z" --sample 0 --threads 1 \
        --eval-every 3 --eval-batches 4; rc3=$?
    ref=$tmp/two
    [ $z = 1 ] && ref=$tmp/zero
    check "exit codes $rc1 $rc2 $rc3: $(tail -2 "$tmp/e7") $(tail -2 "$tmp/e8")" [ "$rc1$rc2$rc3" = 000 ]
    check "2 ranks resumed: not the uninterrupted run's file" cmp -s "$ref/model.ckpt" "$tmp/s$z/model.ckpt"
    check "1 rank resumed" cmp_ckpt "$ref/model.ckpt" "$tmp/t$z/model.ckpt" --tol 1e-4
    check "resume message" grep -q "resumed from .* at step 3" "$tmp/e8"
    case_end
done

case_begin "a checkpoint of global batch 4 does not split over 3 ranks (exit 2)"
$MPIRUN -np 3 "$GPT" train --data $D --resume $P --out "$tmp/t0" --sample 0 --threads 1 --steps 9 >/dev/null 2>"$tmp/e9"; rc=$?
check "exit $rc" [ "$rc" = 2 ]
check "message: $(head -2 "$tmp/e9")" grep -q "4 rows a micro-batch, which 3 ranks cannot share evenly" "$tmp/e9"
case_end

# A long run to kill: waits until rank 0 has taken a step, then finds rank
# 1 among mpirun's children by the rank Open MPI put in its environment.
start_long() {
    : >"$tmp/ke"
    timeout 120 mpirun --oversubscribe -np 2 "$GPT" train --data $D $MODEL -B 2 --sample 0 --threads 1 \
        --steps 1000000 --eval-every 1000000 --eval-batches 1 --dist-timeout 5 --out "$tmp/k" \
        >/dev/null 2>"$tmp/ke" &
    bg=$!
    for i in $(seq 1 300); do grep -q "^step 1/" "$tmp/ke" 2>/dev/null && break; sleep 0.1; done
    r1=""
    # timeout's child is mpirun, whose children are the ranks
    for p in $(for c in $(ps -o pid= --ppid $bg); do ps -o pid= --ppid $c; done); do
        tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && r1=$p
    done
}
for sig in KILL STOP; do
    case_begin "rank 1 gets SIG$sig: the job ends with a message and a non-zero exit"
    start_long
    check "rank 1 not found" [ -n "$r1" ]
    t0=$(date +%s)
    [ -n "$r1" ] && kill -$sig "$r1"
    wait $bg; rc=$?
    bg=""
    took=$(( $(date +%s) - t0 ))
    check "exit $rc" [ "$rc" != 0 ] && [ "$rc" != 124 ]
    # 120 s is timeout's; the job must end well before: mpirun stops it at
    # once for a killed rank, rank 0's 5 s collective timeout for a stopped one.
    check "took $took s" [ "$took" -lt 60 ]
    if [ $sig = KILL ]; then
        check "no message naming rank 1: $(tail -3 "$tmp/ke")" grep -q "rank 1 .*exited on signal 9" "$tmp/ke"
    else
        check "no timeout message: $(tail -3 "$tmp/ke")" grep -q "gpt train: rank 0: a collective has not finished after 5 s" "$tmp/ke"
        kill -KILL "$r1" 2>/dev/null
    fi
    case_end
done

case_begin "gpt train --gpus on the CPU, or where no GPU is, is refused (exit 2)"
run_gpt "$tmp/o10" "$tmp/e10" train --data $D --device cpu --gpus 2; rc1=$?
check "exit $rc1" [ "$rc1" = 2 ]
check "message: $(cat "$tmp/e10")" grep -q "mpirun -np N" "$tmp/e10"
if ! nvidia-smi -L >/dev/null 2>&1; then
    run_gpt "$tmp/o11" "$tmp/e11" train --data $D --gpus 2; rc2=$?
    check "exit $rc2" [ "$rc2" = 2 ]
    check "message: $(cat "$tmp/e11")" grep -q "no usable GPU here" "$tmp/e11"
fi
case_end

if "$GPT" info | grep -q "^backends compiled in:.* vulkan\($\| [^(]\)"; then
    case_begin "a backend without a communicator (vulkan) is refused with a message"
    $MPIRUN -np 2 "$GPT" train $RUN -B 2 --device vulkan --out "$tmp/vk" >/dev/null 2>"$tmp/e12"; rc=$?
    check "exit $rc" [ "$rc" = 2 ]
    check "message: $(grep rank "$tmp/e12" | head -2)" grep -q "runs on the cuda (NCCL) and cpu (MPI) backends, not on vulkan" "$tmp/e12"
    case_end
else
    echo "note: no usable Vulkan device here: the refusal of vulkan was not tried"
fi
summary
