#!/usr/bin/env bash
# gpt train / eval / info end to end on Tiny Shakespeare with a small model:
# validation loss goes down, the outputs exist, a stopped run resumed with
# --resume ends bit for bit where an uninterrupted run ends, the machine-
# readable forms hold, SIGTERM saves a checkpoint.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
D=data/tinyshakespeare.txt
SMALL="--tokenizer bytes --layers 2 --heads 4 --channels 64 --max-seq 64 -B 8 -T 64 --sample 0 --threads 2"

case_begin "a short run lowers the validation loss"
run_gpt "$tmp/o1" "$tmp/e1" train --data $D $SMALL --steps 60 --eval-every 10 --eval-batches 10 --lr 3e-3 --warmup 5 --out "$tmp/r1"; rc=$?
check "exit $rc: $(tail -3 "$tmp/e1")" [ "$rc" = 0 ]
first=$(grep -o '"val_loss":[0-9.]*' "$tmp/r1/metrics.jsonl" | head -1 | cut -d: -f2)
last=$(grep -o '"val_loss":[0-9.]*' "$tmp/r1/metrics.jsonl" | tail -1 | cut -d: -f2)
check "val loss did not drop: $first -> $last" python3 -c "import sys; a,b=float('$first'),float('$last'); sys.exit(0 if b < a - 0.1 and b < 3.5 else 1)"
check "no final loss line" grep -q "final validation loss" "$tmp/o1"
case_end

case_begin "outputs: checkpoint, JSONL metrics, SVG curve"
check "no checkpoint" [ -s "$tmp/r1/model.ckpt" ]
check "metrics not JSON lines" python3 -c "
import json,sys
rows=[json.loads(l) for l in open('$tmp/r1/metrics.jsonl')]
steps=[r for r in rows if 'loss' in r]
sys.exit(0 if len(steps)==60 and all('tok_s' in r and 'lr' in r for r in steps) else 1)"
check "no SVG" grep -q "<svg" "$tmp/r1/loss.svg"
check "progress line missing" grep -q "tok/s" "$tmp/e1"
check "memory plan missing" grep -q "memory needed" "$tmp/e1"
case_end

case_begin "stop after N steps, resume: the same checkpoint as an uninterrupted run"
run_gpt "$tmp/o2" "$tmp/e2" train --data $D $SMALL --steps 8 --eval-every 4 --eval-batches 2 --out "$tmp/full"; rc1=$?
run_gpt "$tmp/o3" "$tmp/e3" train --data $D $SMALL --steps 8 --eval-every 4 --eval-batches 2 --out "$tmp/part" --stop-after 4; rc2=$?
run_gpt "$tmp/o4" "$tmp/e4" train --data $D --resume --out "$tmp/part" --sample 0 --eval-batches 2 --eval-every 4 --threads 2; rc3=$?
check "exit codes $rc1 $rc2 $rc3: $(tail -2 "$tmp/e4")" [ "$rc1$rc2$rc3" = 000 ]
check "resume message missing" grep -q "resumed from" "$tmp/e4"
check "checkpoints differ" cmp -s "$tmp/full/model.ckpt" "$tmp/part/model.ckpt"
case_end

case_begin "gpt eval --tokens prints JSON with loss and tokens"
run_gpt "$tmp/o5" "$tmp/e5" eval --model "$tmp/r1/model.ckpt" --tokens "70,105,114,115,116,32,67"; rc=$?
check "exit $rc" [ "$rc" = 0 ]
check "not the stable JSON form: $(cat "$tmp/o5")" python3 -c "
import json,math; d=json.load(open('$tmp/o5')); assert d['tokens']==7 and 0 < d['loss'] < 10 and math.isfinite(d['loss'])"
case_end

case_begin "gpt eval agrees with the training run's validation loss"
head -c 20000 $D | tail -c 5000 > "$tmp/piece.txt"
run_gpt "$tmp/o6" "$tmp/e6" eval --model "$tmp/r1/model.ckpt" --text "$tmp/piece.txt"; rc=$?
check "exit $rc" [ "$rc" = 0 ]
check "loss out of range: $(cat "$tmp/o6")" python3 -c "
import json; d=json.load(open('$tmp/o6')); assert 1.0 < d['loss'] < 3.5 and abs(d['nats_per_char']-d['loss']) < 1e-3"
case_end

case_begin "gpt eval and info refuse bad input with exit 2"
run_gpt "$tmp/o7" "$tmp/e7" eval --model "$tmp/none.ckpt" --tokens 1,2; r1=$?
run_gpt "$tmp/o7" "$tmp/e7" eval --model "$tmp/r1/model.ckpt" --tokens 1,x; r2=$?
run_gpt "$tmp/o7" "$tmp/e7" eval --model "$tmp/r1/model.ckpt" --tokens 1,999; r3=$?
run_gpt "$tmp/o7" "$tmp/e7" eval --model "$tmp/r1/model.ckpt"; r4=$?
head -c 100 "$tmp/r1/model.ckpt" > "$tmp/trunc.ckpt"
run_gpt "$tmp/o7" "$tmp/e7" info --model "$tmp/trunc.ckpt"; r5=$?
check "exit codes $r1 $r2 $r3 $r4 $r5" [ "$r1$r2$r3$r4$r5" = 22222 ]
check "message: $(cat "$tmp/e7")" grep -q "truncated" "$tmp/e7"
case_end

case_begin "gpt info describes a checkpoint"
run_gpt "$tmp/o8" "$tmp/e8" info --model "$tmp/r1/model.ckpt"; rc=$?
check "exit $rc" [ "$rc" = 0 ]
check "no step count: $(cat "$tmp/o8")" grep -q "trained for 60 steps" "$tmp/o8"
case_end

case_begin "SIGTERM during training saves a checkpoint and exits 1"
"$GPT" train --data $D $SMALL --steps 100000 --eval-every 100000 --eval-batches 1 --out "$tmp/sig" >"$tmp/o9" 2>"$tmp/e9" &
pid=$!
for i in $(seq 1 100); do grep -q "step 1/" "$tmp/e9" 2>/dev/null && break; sleep 0.1; done
sleep 0.5; kill -TERM $pid; wait $pid; rc=$?
check "exit $rc" [ "$rc" = 1 ]
check "no message: $(tail -2 "$tmp/e9")" grep -q "interrupted" "$tmp/e9"
run_gpt "$tmp/o10" "$tmp/e10" info --model "$tmp/sig/model.ckpt"; rc=$?
check "saved checkpoint does not load: $(cat "$tmp/e10")" [ "$rc" = 0 ]
case_end

case_begin "nats per character count UTF-8 characters, not bytes, and close the output"
# A validation text with two-byte characters (é, ä) and the bytes
# tokenizer (one token a byte): nats/char must exceed nats/token by the
# bytes a character (a per-byte figure would equal it). The final line
# comes last, after the sample.
python3 -c "import sys; sys.stdout.buffer.write('\u00e9t\u00e4 '.encode() * 200 + b'\\n')" > "$tmp/utf8.txt"
run_gpt "$tmp/o11" "$tmp/e11" train --data $D --val "$tmp/utf8.txt" $SMALL --steps 2 --eval-every 2 --sample 20 --out "$tmp/u"; rc=$?
check "exit $rc: $(tail -2 "$tmp/e11")" [ "$rc" = 0 ]
check "the final line is not the output's last: $(tail -2 "$tmp/o11")" sh -c "tail -1 '$tmp/o11' | grep -q '^final validation loss: .* nats/char'"
# 200 x "ét ä " (4 characters in 6 bytes) + a newline: 801 characters in
# 1201 bytes (tokens). Both figures are printed to 4 decimals: 2e-4 covers
# their rounding. A byte model's sample need not be UTF-8: read with errors replaced.
check "not per character: $(tail -1 "$tmp/o11")" python3 -c "
import re,sys; m=re.search(r'([0-9.]+) nats/token, ([0-9.]+) nats/char \\(1201 held-out tokens, 801 characters\\)', open('$tmp/o11', errors='replace').read())
assert m and abs(float(m.group(2)) - float(m.group(1)) * 1201 / 801) < 2e-4, m"
case_end

summary
