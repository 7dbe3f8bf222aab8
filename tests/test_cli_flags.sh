#!/usr/bin/env bash
# Bad flags and files for every command but train (tests/test_cli_config.sh
# has train's): generate, eval, tokenize, tokenizer, info, bench, convert.
# Each row must exit with code 2 (never a signal, never a hang: each runs
# under timeout), print exactly one line on stderr, starting "gpt <cmd>:",
# (or "gpt <cmd> <sub>:"), that holds the expected words, and print nothing
# on stdout.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
D=data/tinyshakespeare.txt
# A small model (context 32, vocabulary 256) for the rows that need one.
"$GPT" train --data $D --tokenizer bytes --layers 1 --heads 2 --channels 16 --max-seq 32 -B 2 -T 32 \
    --steps 1 --sample 0 --eval-batches 1 --threads 1 --out "$tmp/m" >/dev/null 2>"$tmp/train.err" ||
    { echo "cannot make the model: $(tail -2 "$tmp/train.err")"; echo "0 passed, 1 failed"; exit 1; }
M=$tmp/m/model.ckpt
mkdir -p "$tmp/dir" "$tmp/hfdir"
echo "just some text, not a checkpoint" > "$tmp/text.ckpt"
: > "$tmp/empty"
head -c 100 "$M" > "$tmp/trunc.ckpt"
echo '{"model_type": "gpt2"}' > "$tmp/hfdir/config.json"
echo 'not json' > "$tmp/bad.json"
echo '[72, 105, 999999]' > "$tmp/big_id.json"
echo '[72, -1]' > "$tmp/neg_id.json"
echo 'text' > "$tmp/file"
printf '\x00\x01' > "$tmp/bin.tok"

n=0
# name | words expected in the message | arguments (after gpt) | stdin file (optional)
while IFS='|' read -r name words args input; do
    [ -z "$name" ] && continue
    n=$((n + 1))
    case_begin "$name"
    eval "set -- $args"
    cmd=$1
    words=$(eval echo "$words")
    input=$(eval echo "$input")
    timeout 20 "$GPT" "$@" <"${input:-/dev/null}" >"$tmp/out" 2>"$tmp/err"; rc=$?
    check "exit code $rc, expected 2: $(head -c 300 "$tmp/err")" [ "$rc" = 2 ]
    for w in $words; do
        check "message lacks '$w': $(head -c 300 "$tmp/err")" grep -qi -- "$w" "$tmp/err"
    done
    check "not one line: $(cat "$tmp/err")" [ "$(wc -l < "$tmp/err")" = 1 ]
    check "does not start with 'gpt $cmd': $(cat "$tmp/err")" grep -Eq "^gpt( $cmd( [a-z]+)?)?: " "$tmp/err"
    check "printed on stdout: $(head -c 200 "$tmp/out")" [ ! -s "$tmp/out" ]
    case_end
done <<'TABLE'
generate: no --model | --model required | generate --prompt hi
generate: missing model file | cannot open nope.ckpt | generate --model $tmp/nope.ckpt
generate: model is a directory | directory | generate --model $tmp/dir
generate: model is a text file | not a valid checkpoint magic | generate --model $tmp/text.ckpt
generate: model is an empty file | not a valid checkpoint truncated | generate --model $tmp/empty
generate: truncated checkpoint | truncated | generate --model $tmp/trunc.ckpt
generate: Hugging Face folder without weights | model.safetensors | generate --model $tmp/hfdir
generate: zero tokens | -n 0 | generate --model $M -n 0
generate: negative tokens | -n -5 | generate --model $M -n -5
generate: tokens not a number | -n abc | generate --model $M -n abc
generate: tokens overflowing | -n 99999999999999999999 | generate --model $M -n 99999999999999999999
generate: negative temperature | --temperature -1 | generate --model $M --temperature -1
generate: NaN temperature | --temperature nan | generate --model $M --temperature nan
generate: negative top-k | --top-k -1 | generate --model $M --top-k -1
generate: zero top-p | --top-p | generate --model $M --top-p 0
generate: top-p above 1 | --top-p 1.5 | generate --model $M --top-p 1.5
generate: zero batch | --batch 0 | generate --model $M --batch 0
generate: huge batch | --batch 99999999 | generate --model $M --batch 99999999
generate: negative seed | --seed -1 | generate --model $M --seed -1
generate: zero threads | --threads 0 | generate --model $M --threads 0
generate: unknown device | --device tpu | generate --model $M --device tpu
generate: unknown format | --format xml | generate --model $M --format xml
generate: prompt ids not numbers | --prompt-tokens 1,x | generate --model $M --prompt-tokens 1,x
generate: prompt id outside the vocabulary | 999 vocabulary | generate --model $M --prompt-tokens 72,999 --format ids
generate: prompt and tokens above the context | context 32 | generate --model $M --prompt-tokens 72,105 -n 100 --format ids
generate: prompt longer than the context | context | generate --model $M --prompt-tokens 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34 -n 1 --format ids
generate: missing tokenizer file | nope.tok | generate --model $M --tokenizer $tmp/nope.tok
generate: tokenizer file is garbage | tokenizer | generate --model $M --tokenizer $tmp/bin.tok
generate: empty stop string | --stop | generate --model $M --stop ""
generate: two prompts and another batch | --batch | generate --model $M --prompt a --prompt b --batch 3
generate: unknown flag | unknown option | generate --model $M --frobnicate
generate: missing flag value | needs a value | generate --model $M -n
eval: no --model | --model | eval --tokens 1,2
eval: missing model | cannot open | eval --model $tmp/nope.ckpt --tokens 1,2
eval: model is a directory | directory | eval --model $tmp/dir --tokens 1,2
eval: neither tokens nor text | --tokens --text | eval --model $M
eval: one token | at least 2 | eval --model $M --tokens 5
eval: tokens not numbers | --tokens 1,x | eval --model $M --tokens 1,x
eval: token outside the vocabulary | 999 vocabulary | eval --model $M --tokens 1,999
eval: negative token | --tokens | eval --model $M --tokens 1,-2
eval: missing text file | nope.txt | eval --model $M --text $tmp/nope.txt
eval: text is a directory | directory | eval --model $M --text $tmp/dir
eval: zero sequence length | --seq 0 | eval --model $M --text $D --seq 0
eval: T above the model maximum | max_seq_len 32 | eval --model $M --text $D --seq 33
eval: zero batch | --batch 0 | eval --model $M --text $D --batch 0
eval: huge batch | batch | eval --model $M --text $D --batch 2000000000
eval: unknown flag | unknown option | eval --model $M --tokens 1,2 --frobnicate
tokenize: unknown tokenizer | nope | tokenize --tokenizer nope
tokenize: tokenizer is a directory | directory | tokenize --tokenizer $tmp/dir
tokenize: unknown format | --format xml | tokenize --format xml
tokenize: validation fraction above 1 | --val-fraction 1.5 | tokenize --input $D --out $tmp/sh --val-fraction 1.5
tokenize: negative validation fraction | --val-fraction -0.1 | tokenize --input $D --out $tmp/sh --val-fraction -0.1
tokenize: validation fraction not a number | --val-fraction abc | tokenize --input $D --out $tmp/sh --val-fraction abc
tokenize: missing input | nope.txt | tokenize --input $tmp/nope.txt
tokenize: input is a directory | directory | tokenize --input $tmp/dir
tokenize: --input without a file | --input | tokenize --input
tokenize: decode bad JSON | JSON array | tokenize --decode | $tmp/bad.json
tokenize: decode id out of range | 999999 | tokenize --decode | $tmp/big_id.json
tokenize: decode negative id | token id | tokenize --decode | $tmp/neg_id.json
tokenize: decode a file that is neither a shard nor JSON | JSON array | tokenize --decode --input $tmp/file
tokenize: unknown flag | unknown option | tokenize --frobnicate
tokenizer: unknown subcommand | unknown subcommand | tokenizer fly
tokenizer: vocabulary too small | --vocab-size 10 | tokenizer train --input $D --vocab-size 10 --out $tmp/x.tok
tokenizer: vocabulary not a number | --vocab-size abc | tokenizer train --input $D --vocab-size abc --out $tmp/x.tok
tokenizer: vocabulary too large | --vocab-size 99999999999 | tokenizer train --input $D --vocab-size 99999999999 --out $tmp/x.tok
tokenizer: no output | --out | tokenizer train --input $D --vocab-size 300
tokenizer: missing training text | nope.txt | tokenizer train --input $tmp/nope.txt --vocab-size 300 --out $tmp/x.tok
tokenizer: output folder missing | cannot create | tokenizer train --input $tmp/file --vocab-size 300 --out $tmp/none/x.tok
tokenizer: info of a missing file | nope.tok | tokenizer info --tokenizer $tmp/nope.tok
info: unknown preset | preset nope | info --preset nope
info: missing model | cannot open | info --model $tmp/nope.ckpt
info: model is a directory | directory | info --model $tmp/dir
info: model is a text file | magic | info --model $tmp/text.ckpt
info: zero batch | -B 0 | info --preset tiny -B 0
info: negative sequence | -T -1 | info --preset tiny -T -1
info: sequence not a number | -T abc | info --preset tiny -T abc
info: T above the model maximum | max_seq_len | info --preset tiny -T 257
info: unknown device | device | info --preset tiny --device tpu
info: unknown flag | unknown option | info --frobnicate x
bench: no mode | train generate | bench
bench: unknown mode | train generate fly | bench fly
bench: unknown preset | preset nope | bench train --preset nope
bench: zero batch | -B 0 | bench train --preset tiny -B 0
bench: T above the model maximum | seq_len max_seq_len | bench train --preset tiny -T 257
bench: zero steps | --steps 0 | bench train --preset tiny --steps 0
bench: steps not a number | --steps x | bench train --preset tiny --steps x
bench: negative warmup | --warmup -1 | bench train --preset tiny --warmup -1
bench: zero threads | --threads 0 | bench train --preset tiny --threads 0
bench: unknown device | tpu | bench train --preset tiny --device tpu
bench: unknown precision | --precision fp16 | bench train --preset tiny --precision fp16
bench: prompt and new tokens above the context | context | bench generate --preset tiny --prompt 200 --new 100
bench: huge batch | batch | bench train --preset gpt2-xl -B 16777216 -T 1024
bench: unknown flag | unknown option | bench train --frobnicate x
convert: no --out | --out required | convert --model $M
convert: missing model | cannot open | convert --model $tmp/nope.ckpt --out $tmp/hf
convert: model is a directory | directory | convert --model $tmp/dir --out $tmp/hf
convert: output folder's parent missing | $tmp/none/hf | convert --model $M --out $tmp/none/hf
convert: output is a file | $tmp/file | convert --model $M --out $tmp/file
convert: unknown flag | unknown option | convert --frobnicate
unknown command | unknown command | frobnicate
TABLE
echo "     $n invalid invocations tried"
summary
