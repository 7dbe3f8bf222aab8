#!/usr/bin/env bash
# Crash-safe checkpoints. A trainer that saves after every step (a model
# big enough that saving takes most of the step) is killed with SIGKILL at
# random moments, KILLS times: after every kill the checkpoint must load
# (gpt info) and the next trainer must resume from it (its "resumed from"
# line), at a step never lower than before. Kills that land while a
# temporary file exists (model.ckpt.tmp.PID) interrupted a save: they
# must be a good share of the total, or the test proves nothing. The next
# trainer removes what a killed save left, and the metrics rows past its
# checkpoint.
# Then a failing disk: write failures injected with
# GPT_TEST_FAIL_WRITE_AFTER, and real short writes from the kernel (a file
# size limit, ulimit -f, with SIGXFSZ ignored so write returns EFBIG): each
# gives one clear line, exit 1, and the previous checkpoint byte-identical.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
# GPT_TEST_FAIL_WRITE_AFTER works only in the test build of the command.
GPT=${GPT_TEST_BIN:-build/gpt-test}
tmp=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -KILL $pid 2>/dev/null; rm -rf "$tmp"' EXIT
D=data/tinyshakespeare.txt
KILLS=${KILLS:-100}
# 1M parameters: the checkpoint with its moments is 12 MB, a step 8 tokens:
# saving takes most of the time of a step.
MODEL="--tokenizer bytes --layers 2 --heads 4 --channels 192 --max-seq 16 -B 1 -T 8"
RUN="--data $D --sample 0 --threads 1 --eval-every 1000000 --eval-batches 1"
ckpt=$tmp/run/model.ckpt

run_gpt "$tmp/o" "$tmp/e" train $RUN $MODEL --steps 1 --out "$tmp/run"
[ -s "$ckpt" ] || { echo "cannot make the first checkpoint: $(tail -3 "$tmp/e")"; echo "0 passed, 1 failed"; exit 1; }

kills=0 in_save=0 loaded=0 resumed=0 went_back=0 not_killed=0 last_step=1 load_errors=""
for i in $(seq 1 "$KILLS"); do
    # Emptied first: the background job opens its own redirections later.
    : >"$tmp/e"
    "$GPT" train $RUN --resume --out "$tmp/run" --steps 1000000000 --save-every 1 >"$tmp/o" 2>>"$tmp/e" &
    pid=$!
    # Wait until it has resumed from the checkpoint the last kill left.
    for w in $(seq 1 1000); do
        grep -q "resumed from" "$tmp/e" 2>/dev/null && break
        kill -0 $pid 2>/dev/null || break
        sleep 0.01
    done
    if grep -q "resumed from" "$tmp/e"; then
        resumed=$((resumed + 1))
        step=$(grep -o "resumed from .* at step [0-9]*" "$tmp/e" | grep -o '[0-9]*$')
        [ "$step" -lt "$last_step" ] && went_back=$((went_back + 1))
        last_step=$step
    fi
    sleep "0.$(printf '%03d' $((RANDOM % 150)))"
    kill -KILL $pid 2>/dev/null
    wait $pid 2>/dev/null
    rc=$?
    pid_killed=$pid pid=""
    [ "$rc" = 137 ] && kills=$((kills + 1)) || not_killed=$((not_killed + 1))
    # A killed save leaves model.ckpt.tmp.PID (PID: the trainer's); the next
    # trainer removes it.
    [ -e "$ckpt.tmp.$pid_killed" ] && in_save=$((in_save + 1))
    if "$GPT" info --model "$ckpt" >"$tmp/io" 2>"$tmp/ie"; then
        loaded=$((loaded + 1))
    else
        load_errors="$load_errors | $(head -c 200 "$tmp/ie")"
    fi
done
echo "     $kills kills, $in_save during a save, $loaded checkpoints loaded, $resumed resumed, last step $last_step"

case_begin "$KILLS SIGKILLs during training: each one a kill, not an exit of its own"
check "$not_killed trainers ended otherwise: $(tail -2 "$tmp/e")" [ "$not_killed" = 0 ]
case_end
case_begin "after every kill the checkpoint loads"
check "$((KILLS - loaded)) failed to load:$load_errors" [ "$loaded" = "$KILLS" ]
case_end
case_begin "after every kill the next trainer resumes, never at an earlier step"
check "$resumed of $KILLS resumed" [ "$resumed" = "$KILLS" ]
check "$went_back went back" [ "$went_back" = 0 ]
check "no progress (last step $last_step)" [ "$last_step" -gt 1 ]
case_end
case_begin "a good share of the kills interrupted a save (at least $((KILLS / 5)))"
check "only $in_save of $kills" [ "$in_save" -ge $((KILLS / 5)) ]
case_end
case_begin "the last checkpoint resumes for one more step and finishes; no temporary file is left"
stale=$(ls "$ckpt".tmp.* 2>/dev/null | head -n 1)
run_gpt "$tmp/o" "$tmp/e" train $RUN --resume --out "$tmp/run" --steps $((last_step + 1)); rc=$?
check "exit $rc: $(tail -2 "$tmp/e")" [ "$rc" = 0 ]
check "did not resume" grep -q "resumed from" "$tmp/e"
check "temporary files left: $(ls "$tmp/run")" [ -z "$(ls "$ckpt".tmp.* 2>/dev/null)" ]
[ -n "$stale" ] && check "no note on removing $stale" grep -q "removed $stale, left by an interrupted save" "$tmp/e"
case_end

# Issue 13: a kill after a step's metrics row but before its checkpoint left
# that row behind, and the resumed run wrote the step again.
case_begin "after the kills and resumes, metrics.jsonl holds steps 1 to the last once each, in order"
m=$tmp/run/metrics.jsonl
steps=$(grep -o '^{"step":[0-9]*,"loss"' "$m" | grep -o '[0-9][0-9]*')
n=$(echo "$steps" | wc -l)
check "duplicated steps: $(echo "$steps" | sort -n | uniq -d | head -5 | tr '\n' ' ')" [ -z "$(echo "$steps" | sort -n | uniq -d)" ]
check "not steps 1..$n in order: $(echo "$steps" | head -c 200 | tr '\n' ' ')" [ "$steps" = "$(seq 1 "$n")" ]
check "a line that is not a whole row" [ -z "$(grep -v '^{"step":[0-9]*,.*}$' "$m")" ]
case_end

# ------------------------------------------------------------- full disk
cp "$ckpt" "$tmp/before.ckpt"
case_begin "disk full (injected after 1 MB): exit 1, one clear line, previous checkpoint byte-identical"
GPT_TEST_FAIL_WRITE_AFTER=1000000 run_gpt "$tmp/o" "$tmp/e" train $RUN --resume --out "$tmp/run" --steps $((last_step + 5)) --save-every 1; rc=$?
check "exit $rc" [ "$rc" = 1 ]
check "message: $(tail -2 "$tmp/e")" grep -q "^gpt train: cannot write '$ckpt': No space left on device (step [0-9]* not saved; the previous checkpoint is unchanged)$" "$tmp/e"
check "checkpoint changed" cmp -s "$ckpt" "$tmp/before.ckpt"
check "temporary file left behind: $(ls "$tmp/run")" [ -z "$(ls "$ckpt".tmp.* 2>/dev/null)" ]
case_end

case_begin "disk full at the first byte: the same"
GPT_TEST_FAIL_WRITE_AFTER=0 run_gpt "$tmp/o" "$tmp/e" train $RUN --resume --out "$tmp/run" --steps $((last_step + 5)) --save-every 1; rc=$?
check "exit $rc" [ "$rc" = 1 ]
check "message: $(tail -2 "$tmp/e")" grep -q "No space left on device.*the previous checkpoint is unchanged" "$tmp/e"
check "checkpoint changed" cmp -s "$ckpt" "$tmp/before.ckpt"
case_end

case_begin "a real short write (file size limit 2 MB): exit 1, one clear line, previous checkpoint byte-identical"
(trap '' XFSZ; ulimit -f 2048; exec "$GPT" train $RUN --resume --out "$tmp/run" --steps $((last_step + 5)) --save-every 1) >"$tmp/o" 2>"$tmp/e"; rc=$?
check "exit $rc" [ "$rc" = 1 ]
check "message: $(tail -2 "$tmp/e")" grep -q "cannot write '$ckpt': File too large.*the previous checkpoint is unchanged" "$tmp/e"
check "checkpoint changed" cmp -s "$ckpt" "$tmp/before.ckpt"
check "temporary file left behind" [ -z "$(ls "$ckpt".tmp.* 2>/dev/null)" ]
run_gpt "$tmp/o" "$tmp/e" info --model "$ckpt"; rc=$?
check "the checkpoint no longer loads: $(cat "$tmp/e")" [ "$rc" = 0 ]
case_end
summary
