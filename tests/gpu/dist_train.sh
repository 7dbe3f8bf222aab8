#!/usr/bin/env bash
# (Run by bench/dist.sh, not by tests/run.sh --cuda: it takes a minute or
# more. GPT_BIN=build-cuda/gpt bash tests/gpu/dist_train.sh)
# Data-parallel training with NCCL on this machine's GPUs (gpt train
# --gpus N), against one process on one GPU (bf16):
#  - one rank: the NCCL path (launcher, id pipe, side stream, collectives,
#    ZeRO-1's shards) must give the very file a plain run gives: with one
#    rank every collective is an identity and every sum the same sum;
#  - N = 2..4 ranks (as many GPUs as there are, up to 4) with B rows each
#    against one process with N B rows: the same rows, so the runs differ
#    only by summation order, which bf16 turns into differences of whole
#    bf16 roundings (2^-8 relative) where a sum lands near a rounding
#    boundary. The bounds are those tests/gpu/test_cuda_model.c holds bf16
#    training to against fp32 (a larger difference than this one): losses
#    1e-2 relative, gradient norms 3e-2, parameters within 0.15 of what
#    training changed (||A - B|| <= 0.15 ||B - start||);
#  - a checkpoint of N ranks resumed by N ranks gives the uninterrupted
#    run's file, and by 1 rank a run within the bounds above;
#  - ZeRO-1: the same training, AdamW state a GPU divided by N;
#  - a rank killed (SIGKILL), or stopped (SIGSTOP, N >= 2): the launcher
#    ends with a message naming it and a non-zero exit, in bounded time.
set -u
cd "$(dirname "$0")/../.."
. tests/lib.sh
tmp=$(mktemp -d)
bg=""
trap '[ -n "$bg" ] && kill -KILL $bg 2>/dev/null; rm -rf "$tmp"' EXIT
G=$(nvidia-smi -L 2>/dev/null | grep -c "^GPU ")
[ "$G" -gt 4 ] && G=4
[ "$G" -lt 1 ] && G=1
echo "GPUs used: $G"
D=data/tinyshakespeare.txt
# Head size 32: the generic attention kernels, which are deterministic (the
# tensor-core backward for head sizes 64 and 128 adds dQ with atomics, so
# that two runs may differ in their last bits and no file would match).
MODEL="--tokenizer bytes --layers 2 --heads 4 --channels 128 --max-seq 128 -T 128 --device cuda"
RUN="--data $D $MODEL --sample 0 --steps 8 --eval-every 4 --eval-batches 4 --lr 3e-3 --warmup 2"
cmp_ckpt() { python3 tests/ckpt_compare.py "$@" >"$tmp/cmp.log" 2>&1 || { cat "$tmp/cmp.log"; return 1; }; }
# Step losses and norms of two metrics files within relative bounds.
close_runs() {
    python3 - "$1" "$2" "$3" "$4" <<'EOF'
import json, sys
def rows(p):
    return [r for r in map(json.loads, open(p))]
a, b = rows(sys.argv[1]), rows(sys.argv[2])
tl, tn = float(sys.argv[3]), float(sys.argv[4])
bad = []
for x, y in zip(a, b):
    for k, t in (("loss", tl), ("val_loss", tl), ("grad_norm", tn)):
        if k in x and abs(x[k] - y[k]) > t * abs(y[k]):
            bad.append((x["step"], k, x[k], y[k]))
if len(a) != len(b) or bad:
    print("runs differ:", len(a), len(b), bad[:4]); sys.exit(1)
EOF
}

# The parameters every run starts from (one step at lr 1e-12 changes them by ~1e-12).
run_gpt "$tmp/o0" "$tmp/e0" train $RUN -B 4 --steps 1 --lr 1e-12 --min-lr 0 --warmup 0 --out "$tmp/start"

case_begin "1 rank through NCCL (--gpus 1) writes the file a plain run writes, ZeRO-1 too"
run_gpt "$tmp/o1" "$tmp/e1" train $RUN -B 4 --out "$tmp/plain"; rc1=$?
run_gpt "$tmp/o2" "$tmp/e2" train $RUN -B 4 --gpus 1 --out "$tmp/g1"; rc2=$?
run_gpt "$tmp/o3" "$tmp/e3" train $RUN -B 4 --gpus 1 --zero 1 --out "$tmp/g1z"; rc3=$?
check "exit codes $rc1 $rc2 $rc3: $(tail -2 "$tmp/e2") $(tail -2 "$tmp/e3")" [ "$rc1$rc2$rc3" = 000 ]
check "no NCCL line: $(grep 'data parallel' "$tmp/e2")" grep -q "data parallel over 1 rank (nccl)" "$tmp/e2"
check "--gpus 1 differs" cmp_ckpt "$tmp/plain/model.ckpt" "$tmp/g1/model.ckpt" --exact
check "--gpus 1 --zero 1 differs" cmp_ckpt "$tmp/plain/model.ckpt" "$tmp/g1z/model.ckpt" --exact
case_end

case_begin "a checkpoint of --gpus 1 resumes in a plain run and in --gpus 1 as the run that went on"
run_gpt "$tmp/o4" "$tmp/e4" train $RUN -B 4 --gpus 1 --stop-after 4 --out "$tmp/s1"; rc1=$?
cp -r "$tmp/s1" "$tmp/s1b"
run_gpt "$tmp/o5" "$tmp/e5" train --data $D --resume --out "$tmp/s1" --sample 0 --gpus 1 --eval-every 4 --eval-batches 4; rc2=$?
run_gpt "$tmp/o6" "$tmp/e6" train --data $D --resume --out "$tmp/s1b" --sample 0 --eval-every 4 --eval-batches 4; rc3=$?
check "exit codes $rc1 $rc2 $rc3: $(tail -2 "$tmp/e5")" [ "$rc1$rc2$rc3" = 000 ]
check "--gpus 1 resumed" cmp_ckpt "$tmp/plain/model.ckpt" "$tmp/s1/model.ckpt" --exact
check "plain resumed" cmp_ckpt "$tmp/plain/model.ckpt" "$tmp/s1b/model.ckpt" --exact
case_end

if [ "$G" -ge 2 ]; then
    B1=$((4 * G))
    case_begin "$G ranks x B 4 train as 1 GPU x B $B1 (bf16 bounds), with and without ZeRO-1"
    run_gpt "$tmp/o7" "$tmp/e7" train $RUN -B $B1 --out "$tmp/one"; rc1=$?
    run_gpt "$tmp/o8" "$tmp/e8" train $RUN -B 4 --gpus $G --out "$tmp/many"; rc2=$?
    run_gpt "$tmp/o9" "$tmp/e9" train $RUN -B 4 --gpus $G --zero 1 --out "$tmp/manyz"; rc3=$?
    check "exit codes $rc1 $rc2 $rc3: $(tail -2 "$tmp/e8") $(tail -2 "$tmp/e9")" [ "$rc1$rc2$rc3" = 000 ]
    check "losses and norms" close_runs "$tmp/many/metrics.jsonl" "$tmp/one/metrics.jsonl" 1e-2 3e-2
    check "losses and norms (ZeRO-1)" close_runs "$tmp/manyz/metrics.jsonl" "$tmp/one/metrics.jsonl" 1e-2 3e-2
    check "parameters" cmp_ckpt "$tmp/many/model.ckpt" "$tmp/one/model.ckpt" --base "$tmp/start/model.ckpt" --change 0.15
    check "parameters (ZeRO-1)" cmp_ckpt "$tmp/manyz/model.ckpt" "$tmp/one/model.ckpt" --base "$tmp/start/model.ckpt" --change 0.15
    full=$(grep -o 'ZeRO-1 off.*AdamW state [0-9.]* [KMG]iB' "$tmp/e8" | grep -o '[0-9.]* [KMG]iB$')
    part=$(grep -o 'ZeRO-1 on.*AdamW state [0-9.]* [KMG]iB' "$tmp/e9" | grep -o '[0-9.]* [KMG]iB$')
    check "AdamW state a GPU: $full without, $part with ZeRO-1 on $G" python3 -c "
u = {'KiB': 1 << 10, 'MiB': 1 << 20, 'GiB': 1 << 30}
f, p = [float(x.split()[0]) * u[x.split()[1]] for x in ('$full', '$part')]
assert abs(p - f / $G) <= 0.02 * f"
    case_end

    case_begin "a checkpoint of $G ranks resumes in $G ranks as the run that went on, and in 1 within the bounds"
    run_gpt "$tmp/o10" "$tmp/e10" train $RUN -B 4 --gpus $G --stop-after 4 --out "$tmp/sm"; rc1=$?
    cp -r "$tmp/sm" "$tmp/sm1"
    run_gpt "$tmp/o11" "$tmp/e11" train --data $D --resume --out "$tmp/sm" --sample 0 --gpus $G --eval-every 4 --eval-batches 4; rc2=$?
    run_gpt "$tmp/o12" "$tmp/e12" train --data $D --resume --out "$tmp/sm1" --sample 0 --eval-every 4 --eval-batches 4; rc3=$?
    check "exit codes $rc1 $rc2 $rc3: $(tail -2 "$tmp/e11") $(tail -2 "$tmp/e12")" [ "$rc1$rc2$rc3" = 000 ]
    check "$G ranks resumed" cmp_ckpt "$tmp/many/model.ckpt" "$tmp/sm/model.ckpt" --exact
    check "1 rank resumed" cmp_ckpt "$tmp/sm1/model.ckpt" "$tmp/many/model.ckpt" --base "$tmp/start/model.ckpt" --change 0.15
    case_end
fi

# A long run; waits for its first step, then picks the last rank among the
# launcher's children.
start_long() {
    : >"$tmp/ke"
    timeout 300 "$GPT" train --data $D $MODEL -B 4 --sample 0 --steps 1000000 --eval-every 1000000 \
        --eval-batches 1 --gpus $G --dist-timeout 10 --out "$tmp/k" >/dev/null 2>"$tmp/ke" &
    bg=$!
    for i in $(seq 1 600); do grep -q "^step 1/" "$tmp/ke" 2>/dev/null && break; sleep 0.1; done
    # timeout's child is the launcher, whose children are the ranks
    launcher=$(ps -o pid= --ppid $bg | head -1 | tr -d ' ')
    victim=$([ -n "$launcher" ] && ps -o pid= --ppid "$launcher" | tail -1 | tr -d ' ')
}
sigs="KILL"
[ "$G" -ge 2 ] && sigs="KILL STOP"
for sig in $sigs; do
    case_begin "rank $((G - 1)) of $G gets SIG$sig: the launcher ends with a message and a non-zero exit"
    start_long
    check "no rank found" [ -n "$victim" ]
    t0=$(date +%s)
    [ -n "$victim" ] && kill -$sig "$victim"
    wait $bg; rc=$?
    bg=""
    took=$(( $(date +%s) - t0 ))
    check "exit $rc" [ "$rc" != 0 ] && [ "$rc" != 124 ]
    # a kill ends the job at once; a stopped rank: the others' 10 s timeout, then 10 s of grace
    check "took $took s" [ "$took" -lt 90 ]
    if [ $sig = KILL ]; then
        check "message: $(tail -2 "$tmp/ke")" grep -q "gpt train: rank $((G - 1)) was killed by signal 9" "$tmp/ke"
    else
        check "message: $(tail -3 "$tmp/ke")" grep -q "a collective has not finished after 10 s" "$tmp/ke"
    fi
    case_end
done

if command -v mpirun >/dev/null; then
    case_begin "mpirun -np $G with NCCL (ranks from MPI, the id over MPI) trains as --gpus $G"
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    ref=$tmp/g1
    [ "$G" -ge 2 ] && ref=$tmp/many
    timeout 300 mpirun --oversubscribe -np $G "$GPT" train $RUN -B 4 --out "$tmp/mpi" >/dev/null 2>"$tmp/e13"; rc=$?
    check "exit $rc: $(tail -3 "$tmp/e13")" [ "$rc" = 0 ]
    check "not the --gpus run's file" cmp_ckpt "$ref/model.ckpt" "$tmp/mpi/model.ckpt" --exact
    case_end
else
    echo "note: mpirun is not installed here: the MPI launcher with NCCL was not run"
fi

summary
