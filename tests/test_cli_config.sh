#!/usr/bin/env bash
# Invalid configurations and flags: each must exit with code 2 (never a
# signal, never a hang), print exactly one line, on stderr, naming the
# problem, and nothing on stdout.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
D=data/tinyshakespeare.txt
# name | expected words in the message | arguments
while IFS='|' read -r name words args; do
    [ -z "$name" ] && continue
    case_begin "invalid: $name"
    eval "set -- $args"
    run_gpt "$tmp/out" "$tmp/err" train --out "$tmp/run" --sample 0 "$@"; rc=$?
    check "exit code $rc, expected 2: $(head -c 300 "$tmp/err")" [ "$rc" = 2 ]
    for w in $words; do
        check "message lacks '$w': $(head -c 300 "$tmp/err")" grep -qi -- "$w" "$tmp/err"
    done
    check "not one line: $(cat "$tmp/err")" [ "$(wc -l <"$tmp/err")" = 1 ]
    check "the line is not gpt train's: $(cat "$tmp/err")" grep -q '^gpt train: ' "$tmp/err"
    check "something on stdout: $(head -c 200 "$tmp/out")" [ ! -s "$tmp/out" ]
    check "the run wrote a checkpoint" [ ! -e "$tmp/run/model.ckpt" ]
    case_end
done <<'TABLE'
heads not dividing channels | n_head n_embd --heads | --data $D --heads 5 --channels 128
zero layers | --layers | --data $D --layers 0
negative layers | --layers | --data $D --layers -3
zero channels | --channels | --data $D --channels 0
zero heads | --heads | --data $D --heads 0
zero MLP size | --mlp | --data $D --mlp 0
zero max sequence | --max-seq | --data $D --max-seq 0
zero vocabulary | --vocab | --data $D --vocab 0
zero batch | --batch | --data $D --batch 0
zero sequence length | --seq | --data $D --seq 0
T above the model maximum | seq_len max_seq_len | --data $D --seq 300
zero gradient accumulation | --grad-accum | --data $D --grad-accum 0
zero steps | --steps | --data $D --steps 0
negative learning rate | --lr | --data $D --lr -1
NaN learning rate | --lr | --data $D --lr nan
min_lr above lr | min_lr | --data $D --lr 0.001 --min-lr 0.5
beta1 above 1 | --beta1 | --data $D --beta1 1.5
negative beta2 | --beta2 | --data $D --beta2 -0.1
zero epsilon | --eps | --data $D --eps 0
negative weight decay | --weight-decay | --data $D --weight-decay -1
negative gradient clip | --grad-clip | --data $D --grad-clip -1
negative warmup | --warmup | --data $D --warmup -5
unknown preset | preset nope | --data $D --preset nope
channels overflowing an int | --channels | --data $D --channels 99999999999
layers x channels too large | n_layer | --data $D --channels 100000 --heads 1 --layers 100000
vocabulary x channels too large | padded_vocab | --data $D --vocab 1073741000 --channels 2048 --heads 1
batch x sequence wrapping the activation sizes | too large --batch --seq | --data $D --vocab 1073741824 --channels 1 --heads 1 --mlp 1 --max-seq 1048576 -T 1048576 -B 1048575
heads near the int limit | n_head --heads | --data $D --heads 100000 --channels 99991
missing data file | cannot open nope.txt | --data $tmp/nope.txt
data is a directory | directory | --data $tmp
unknown device | --device | --data $D --device tpu
unknown precision | --precision | --data $D --precision fp16
batch not a number | --batch abc | --data $D --batch abc
missing tokenizer file | tokenizer | --data $D --tokenizer $tmp/none.tok
zero bad steps allowed | --max-bad-steps | --data $D --max-bad-steps 0
validation fraction too large | --val-fraction | --data $D --val-fraction 0.9
zero threads | --threads | --data $D --threads 0
a model too large for memory | memory --batch | --data $D --preset gpt2-xl --batch 500 --seq 1024
unknown flag | unknown option | --data $D --frobnicate
missing flag value | needs a value | --data $D --lr
no data given | --data | --steps 5
init and resume together | --init --resume | --data $D --init x --resume
TABLE
summary
