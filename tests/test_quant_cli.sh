#!/usr/bin/env bash
# int8 models from the command line: gpt quantize writes a checkpoint that
# generate, info and convert read; generate --quant int8 quantises at load
# and gives what the saved int8 checkpoint gives; --quant none runs an int8
# checkpoint in fp32; bad flags and paths exit 2 with one line, and the fp32
# model is never overwritten by its int8 copy.
# Run by tests/run.sh (which exports GPT_BIN); prints "N passed, M failed".
set -u
cd "$(dirname "$0")/.."
GPT=${GPT_BIN:-build/gpt}
FIX=tests/data/hf_tiny
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gpt_quant_cli.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0

ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && echo "     $2"; }

# expect NAME WANT_EXIT CMD...: stdout in $TMP/out, stderr in $TMP/err.
expect() {
    local name=$1 want=$2
    shift 2
    "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ "$rc" = "$want" ]; then ok "$name"
    else bad "$name" "exit $rc, want $want: $(head -c 300 "$TMP/err")"; fi
}
has() {
    if grep -qF -- "$3" "$2"; then ok "$1"
    else bad "$1" "'$3' not in: $(head -c 300 "$2")"; fi
}
one_line() {
    if [ "$(wc -l <"$TMP/err")" = 1 ]; then ok "$1"
    else bad "$1" "stderr has $(wc -l <"$TMP/err") lines: $(head -c 300 "$TMP/err")"; fi
}

P=$(cat $FIX/greedy_prompt.txt)
gen() { "$GPT" generate --prompt-tokens "$P" -n 12 --temperature 0 --format ids "$@"; }

expect "quantize a Hugging Face folder" 0 "$GPT" quantize --model $FIX/fp32 --out "$TMP/q8.ckpt"
has "  ... says what it wrote" "$TMP/err" "int8"
expect "an fp32 checkpoint of the same model" 0 "$GPT" convert --model $FIX/fp32 --out "$TMP/hf"
expect "info on the int8 checkpoint" 0 "$GPT" info --model "$TMP/q8.ckpt"
has "  ... names the weights and the kernel" "$TMP/out" "weights int8"

expect "generate from the int8 checkpoint" 0 gen --model "$TMP/q8.ckpt"
cp "$TMP/out" "$TMP/ids_file"
has "  ... reports int8 and its kernel" "$TMP/err" "int8 weights"
expect "generate --quant int8 from the fp32 folder" 0 gen --model $FIX/fp32 --quant int8
if cmp -s "$TMP/out" "$TMP/ids_file"; then ok "  ... the same ids as the saved int8 checkpoint"
else bad "  ... the same ids as the saved int8 checkpoint" "$(cat "$TMP/out") vs $(cat "$TMP/ids_file")"; fi
expect "generate --quant none from the int8 checkpoint (dequantised, fp32 products)" 0 \
    gen --model "$TMP/q8.ckpt" --quant none
if grep -qF "int8 weights" "$TMP/err"; then bad "  ... runs in fp32" "$(cat "$TMP/err")"; else ok "  ... runs in fp32"; fi
expect "convert the int8 checkpoint back to a Hugging Face folder (dequantised)" 0 \
    "$GPT" convert --model "$TMP/q8.ckpt" --out "$TMP/hf8"
expect "eval on the int8 checkpoint" 0 "$GPT" eval --model "$TMP/q8.ckpt" --tokens "$P"

cp "$TMP/q8.ckpt" "$TMP/keep.ckpt"
expect "quantize refuses to overwrite its own input" 2 \
    "$GPT" quantize --model "$TMP/q8.ckpt" --out "$TMP/q8.ckpt"
one_line "  ... with one line"
if cmp -s "$TMP/q8.ckpt" "$TMP/keep.ckpt"; then ok "  ... the input is untouched"; else bad "  ... the input is untouched"; fi
expect "quantize a missing model" 2 "$GPT" quantize --model "$TMP/none.ckpt" --out "$TMP/x.ckpt"
one_line "  ... with one line"
expect "quantize --type int4 is refused" 2 "$GPT" quantize --model $FIX/fp32 --out "$TMP/x.ckpt" --type int4
one_line "  ... with one line"
expect "quantize without --out" 2 "$GPT" quantize --model $FIX/fp32
expect "quantize --help" 0 "$GPT" quantize --help
has "  ... explains" "$TMP/out" "usage: gpt quantize"
expect "generate --quant int4 is refused" 2 gen --model $FIX/fp32 --quant int4
one_line "  ... with one line"
expect "training from an int8 checkpoint is refused" 2 "$GPT" train --data data/tinyshakespeare.txt \
    --tokenizer bytes --init "$TMP/q8.ckpt" -T 16 --steps 1 --out "$TMP/run"
has "  ... saying it is for inference" "$TMP/err" "inference"
if [ -e "$TMP/x.ckpt" ]; then bad "refused commands wrote nothing"; else ok "refused commands wrote nothing"; fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
