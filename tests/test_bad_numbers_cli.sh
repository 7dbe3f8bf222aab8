#!/usr/bin/env bash
# gpt train and bad numbers: a step with a non-finite loss is skipped and
# reported, the run goes on after it; --max-bad-steps consecutive ones stop
# the run with exit 1 and a message, and the last checkpoint still loads.
# Bad numbers come from GPT_TEST_INJECT_NAN_AT=S[:K] (tools/cmd_train.c, gpt-test only)
# and, naturally, from an absurd learning rate.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
# The injection hook exists only in the test build of the command.
GPT=${GPT_TEST_BIN:-build/gpt-test}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
D=data/tinyshakespeare.txt
SMALL="--data $D --tokenizer bytes --layers 1 --heads 2 --channels 16 --max-seq 16 -B 2 -T 16 --sample 0 --threads 1 --eval-every 1000 --eval-batches 1 --warmup 0"
# metrics.jsonl must stay JSON (no NaN) and hold the skipped steps.
skipped_rows() {
    python3 -c "
import json, sys
rows = [json.loads(l) for l in open('$1')]
print(sum(1 for r in rows if r.get('skipped') == 1 and r.get('loss') is None))" 2>/dev/null || echo bad
}

case_begin "one injected NaN: the step is skipped and reported, the run finishes"
GPT_TEST_INJECT_NAN_AT=3 run_gpt "$tmp/o1" "$tmp/e1" train $SMALL --steps 6 --out "$tmp/one"; rc=$?
check "exit $rc: $(tail -2 "$tmp/e1")" [ "$rc" = 0 ]
check "no report: $(cat "$tmp/e1")" grep -q "step 3 skipped: non-finite loss" "$tmp/e1"
check "metrics: $(skipped_rows "$tmp/one/metrics.jsonl") skipped rows" [ "$(skipped_rows "$tmp/one/metrics.jsonl")" = 1 ]
run_gpt "$tmp/o" "$tmp/e" info --model "$tmp/one/model.ckpt"; rc=$?
check "checkpoint does not load: $(cat "$tmp/e")" [ "$rc" = 0 ]
case_end

case_begin "--max-bad-steps 3 in a row stop with exit 1; the checkpoint keeps the good weights"
GPT_TEST_INJECT_NAN_AT=4:5 run_gpt "$tmp/o2" "$tmp/e2" train $SMALL --steps 10 --save-every 1 --max-bad-steps 3 --out "$tmp/stop"; rc=$?
check "exit $rc" [ "$rc" = 1 ]
check "message: $(tail -3 "$tmp/e2")" grep -q "3 consecutive steps had a non-finite loss" "$tmp/e2"
check "no pointer to the checkpoint" grep -q "last good checkpoint is $tmp/stop/model.ckpt" "$tmp/e2"
check "skipped steps not reported" [ "$(grep -c 'skipped: non-finite' "$tmp/e2")" = 2 ]
# The same run stopped after step 3: the same weights, so the same loss.
run_gpt "$tmp/o3" "$tmp/e3" train $SMALL --steps 10 --stop-after 3 --out "$tmp/good"; rc3=$?
run_gpt "$tmp/l1" "$tmp/e" eval --model "$tmp/stop/model.ckpt" --tokens 70,105,114,115,116,32,67; ra=$?
run_gpt "$tmp/l2" "$tmp/e" eval --model "$tmp/good/model.ckpt" --tokens 70,105,114,115,116,32,67; rb=$?
check "exit codes $rc3 $ra $rb" [ "$rc3$ra$rb" = 000 ]
check "weights differ from step 3's: $(cat "$tmp/l1") vs $(cat "$tmp/l2")" \
    [ "$(cut -d, -f1 "$tmp/l1")" = "$(cut -d, -f1 "$tmp/l2")" ]
case_end

case_begin "--max-bad-steps 1: the first bad step stops the run"
GPT_TEST_INJECT_NAN_AT=2 run_gpt "$tmp/o4" "$tmp/e4" train $SMALL --steps 5 --save-every 1 --max-bad-steps 1 --out "$tmp/one_bad"; rc=$?
check "exit $rc" [ "$rc" = 1 ]
check "message: $(tail -2 "$tmp/e4")" grep -q "1 consecutive steps" "$tmp/e4"
run_gpt "$tmp/o" "$tmp/e" info --model "$tmp/one_bad/model.ckpt"; rc=$?
check "checkpoint does not load: $(cat "$tmp/e")" [ "$rc" = 0 ]
check "checkpoint step: $(cat "$tmp/o")" grep -q "trained for 1 steps" "$tmp/o"
case_end

# The largest learning rate and weight decay the flags accept: AdamW's
# decoupled decay multiplies every matrix by 1 - lr * wd = -99 a step, the
# weights reach 1e16 within 9 steps and the forward pass overflows at step
# 10 (deterministic for the seed).
case_begin "an absurd learning rate: skipped steps, exit 1, the last checkpoint loads and resumes"
ABSURD="--lr 10 --min-lr 10 --weight-decay 10"
run_gpt "$tmp/o5" "$tmp/e5" train $SMALL $ABSURD --steps 100 --save-every 1 --max-bad-steps 3 --out "$tmp/lr"; rc=$?
check "exit $rc: $(tail -2 "$tmp/e5")" [ "$rc" = 1 ]
check "no skipped steps reported" grep -q "skipped: non-finite loss or gradient norm" "$tmp/e5"
check "message: $(tail -3 "$tmp/e5")" grep -q "3 consecutive steps had a non-finite loss or gradient norm.*lower --lr" "$tmp/e5"
check "metrics.jsonl: $(skipped_rows "$tmp/lr/metrics.jsonl") skipped rows" [ "$(skipped_rows "$tmp/lr/metrics.jsonl")" = 2 ]
run_gpt "$tmp/o6" "$tmp/e6" info --model "$tmp/lr/model.ckpt"; rc=$?
check "checkpoint does not load: $(cat "$tmp/e6")" [ "$rc" = 0 ]
steps=$(grep -o 'trained for [0-9]* steps' "$tmp/o6" | grep -o '[0-9]*')
run_gpt "$tmp/o7" "$tmp/e7" train --data $D --resume --out "$tmp/lr" --steps $((steps + 1)) --sample 0 --threads 1 --eval-batches 1; rc=$?
check "resume: exit $rc: $(tail -2 "$tmp/e7")" [ "$rc" = 0 ]
check "no resume message" grep -q "resumed from" "$tmp/e7"
case_end
summary
