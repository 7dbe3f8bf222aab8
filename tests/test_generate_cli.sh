#!/usr/bin/env bash
# gpt generate and gpt convert from the command line: the stable machine
# form, Hugging Face folders and files, conversion round trips, text
# output, batches, seeds, and exit codes (0 ok, 1 runtime, 2 usage/input).
# Run by tests/run.sh (which exports GPT_BIN); prints "N passed, M failed".
set -u
cd "$(dirname "$0")/.."
GPT=${GPT_BIN:-build/gpt}
FIX=tests/data/hf_tiny
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gpt_gen_cli.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0

ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && echo "     $2"; }

# expect NAME WANT_EXIT CMD...: runs CMD, keeps stdout in $TMP/out and
# stderr in $TMP/err, and checks the exit code.
expect() {
    local name=$1 want=$2
    shift 2
    "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ "$rc" = "$want" ]; then ok "$name"
    else bad "$name" "exit $rc, want $want: $(head -c 300 "$TMP/err")"; fi
}

# same NAME FILE_OR_TEXT: stdout must equal the text.
same() {
    if [ "$(cat "$TMP/out")" = "$2" ]; then ok "$1"
    else bad "$1" "got '$(head -c 200 "$TMP/out")', want '$(echo "$2" | head -c 200)'"; fi
}

# has NAME WHERE TEXT: the file holds TEXT.
has() {
    if grep -qF -- "$3" "$2"; then ok "$1"
    else bad "$1" "'$3' not in: $(head -c 300 "$2")"; fi
}

P=$(cat $FIX/greedy_prompt.txt)
WANT=$(cat $FIX/greedy_ids.txt)
N=$(echo "$WANT" | tr ',' '\n' | wc -l)

# ------------------------------------------------- the stable machine form
expect "stable form on a Hugging Face folder exits 0" 0 \
    "$GPT" generate --model $FIX/fp32 --prompt-tokens "$P" -n "$N" --temperature 0 --format ids
same "stable form prints transformers' greedy ids as one JSON array" "$WANT"
expect "stable form on model.safetensors beside config.json" 0 \
    "$GPT" generate --model $FIX/fp32/model.safetensors --prompt-tokens "$P" -n "$N" \
    --temperature 0 --format ids
same "  ... the same ids" "$WANT"
has "prefill and decode speed on stderr" "$TMP/err" "tok/s"
expect "stable form, -n 5" 0 "$GPT" generate --model $FIX/fp32 --prompt-tokens "$P" -n 5 \
    --temperature 0 --format ids
same "  ... the first 5 ids" "$(echo "$WANT" | cut -d, -f1-5)]"

# ------------------------------------------------------------ conversion
expect "convert a Hugging Face folder" 0 "$GPT" convert --model $FIX/fp32 --out "$TMP/conv"
expect "  ... generates the same ids" 0 "$GPT" generate --model "$TMP/conv" --prompt-tokens "$P" \
    -n "$N" --temperature 0 --format ids
same "  ... identical" "$WANT"

# Our checkpoint -> convert -> generate: same ids as from the checkpoint.
head -c 20000 data/tinyshakespeare.txt >"$TMP/text.txt"
expect "train a tiny byte-level checkpoint" 0 "$GPT" train --data "$TMP/text.txt" \
    --tokenizer bytes --layers 2 --heads 2 --channels 32 --max-seq 64 -B 2 \
    -T 32 --steps 3 --warmup 1 --sample 0 --eval-batches 1 --out "$TMP/run" --device cpu
CK=$TMP/run/model.ckpt
expect "checkpoint: greedy ids" 0 "$GPT" generate --model "$CK" --prompt-tokens 10,20,30 -n 12 \
    --temperature 0 --format ids
cp "$TMP/out" "$TMP/ck_ids"
expect "convert our checkpoint" 0 "$GPT" convert --model "$CK" --out "$TMP/ckhf"
expect "  ... the HF folder generates" 0 "$GPT" generate --model "$TMP/ckhf" \
    --prompt-tokens 10,20,30 -n 12 --temperature 0 --format ids
same "  ... the checkpoint's ids" "$(cat "$TMP/ck_ids")"
has "  ... config.json names GPT2LMHeadModel" "$TMP/ckhf/config.json" '"GPT2LMHeadModel"'

# --------------------------------------------------------- text and more
expect "text: prompt streamed back with the continuation" 0 "$GPT" generate --model "$CK" \
    --prompt "ROMEO:" -n 8 --seed 3
has "  ... starts with the prompt" "$TMP/out" "ROMEO:"
expect "text: a batch of two prompts" 0 "$GPT" generate --model "$CK" --prompt "A" \
    --prompt "BB" -n 4 --top-k 5
has "  ... sample 2 of 2" "$TMP/out" "--- sample 2 of 2 ---"
expect "ids: --batch 3 prints an array of 3 arrays" 0 "$GPT" generate --model "$CK" \
    --prompt-tokens 1,2 --batch 3 -n 4 --format ids
if grep -qE '^\[\[[0-9]+(,[0-9]+){3}\](,\[[0-9]+(,[0-9]+){3}\]){2}\]$' "$TMP/out"; then
    ok "  ... shape [[4 ids] x 3]"
else bad "  ... shape [[4 ids] x 3]" "$(cat "$TMP/out")"; fi
expect "seeded sampling, run 1" 0 "$GPT" generate --model "$CK" --prompt-tokens 5,6 -n 20 \
    --temperature 1.2 --top-p 0.9 --seed 42 --format ids
cp "$TMP/out" "$TMP/s1"
expect "seeded sampling, run 2" 0 "$GPT" generate --model "$CK" --prompt-tokens 5,6 -n 20 \
    --temperature 1.2 --top-p 0.9 --seed 42 --format ids
same "  ... the same seed repeats" "$(cat "$TMP/s1")"
expect "top-k 1" 0 "$GPT" generate --model "$CK" --prompt-tokens 5,6 -n 20 --top-k 1 \
    --temperature 2 --seed 9 --format ids
cp "$TMP/out" "$TMP/k1"
expect "greedy" 0 "$GPT" generate --model "$CK" --prompt-tokens 5,6 -n 20 --temperature 0 \
    --format ids
same "  ... top-k 1 equals greedy" "$(cat "$TMP/k1")"
# Stop strings: with the byte tokenizer an id is its byte, so take the
# 6th greedy byte as the stop string; the row must end at its first use.
expect "greedy bytes" 0 "$GPT" generate --model "$CK" --prompt "x" -n 40 --temperature 0 \
    --format ids
read -r -a ids <<<"$(tr -d '[]\n' <"$TMP/out" | tr ',' ' ')"
k=5 # the first printable byte from the 6th on
while [ "$k" -lt 39 ] && { [ "${ids[$k]}" -lt 33 ] || [ "${ids[$k]}" -gt 126 ]; }; do k=$((k + 1)); done
stop=$(printf "\\$(printf '%03o' "${ids[$k]}")")
first=0
while [ "${ids[$first]}" != "${ids[$k]}" ]; do first=$((first + 1)); done
expect "stop string" 0 "$GPT" generate --model "$CK" --prompt "x" -n 40 --temperature 0 \
    --stop "$stop" --format ids
same "  ... the row ends with the token that completes it" \
    "[$(echo "${ids[@]:0:$((first + 1))}" | tr ' ' ',')]"
expect "context: prompt 60 + 10 new on a 64-position model is refused" 2 "$GPT" generate \
    --model $FIX/fp32 --prompt-tokens "$(seq -s, 1 60)" -n 10 --temperature 0 --format ids
has "  ... saying so" "$TMP/err" "sliding"
expect "  ... --sliding-window goes on" 0 "$GPT" generate --model $FIX/fp32 \
    --prompt-tokens "$(seq -s, 1 60)" -n 10 --temperature 0 --format ids --sliding-window
if grep -qE '^\[[0-9]+(,[0-9]+){9}\]$' "$TMP/out"; then ok "  ... 10 ids"
else bad "  ... 10 ids" "$(cat "$TMP/out")"; fi

# gpt eval on a Hugging Face folder (the core issue's command), when built.
"$GPT" eval --model $FIX/fp32 --tokens "$P" >"$TMP/out" 2>"$TMP/err"
if grep -q "not built yet" "$TMP/err"; then
    echo "skip gpt eval on a Hugging Face folder: gpt eval is not built yet"
else
    expect "gpt eval on a Hugging Face folder" 0 "$GPT" eval --model $FIX/fp32 --tokens "$P"
fi

# ------------------------------------------------------------ exit codes
expect "--help" 0 "$GPT" generate --help
has "  ... documents the stable form" "$TMP/out" "--format ids"
expect "convert --help" 0 "$GPT" convert --help
expect "no --model" 2 "$GPT" generate --prompt-tokens 1,2
expect "unknown option" 2 "$GPT" generate --model $FIX/fp32 --bogus
expect "bad temperature" 2 "$GPT" generate --model $FIX/fp32 --temperature -1
expect "bad top-p" 2 "$GPT" generate --model $FIX/fp32 --top-p 0
expect "bad -n" 2 "$GPT" generate --model $FIX/fp32 -n 0
expect "bad --format" 2 "$GPT" generate --model $FIX/fp32 --format xml
expect "bad --prompt-tokens" 2 "$GPT" generate --model $FIX/fp32 --prompt-tokens 1,x
expect "--batch disagreeing with the prompts" 2 "$GPT" generate --model $FIX/fp32 \
    --prompt-tokens 1 --prompt-tokens 2 --batch 3
expect "token id outside the vocabulary" 2 "$GPT" generate --model $FIX/fp32 \
    --prompt-tokens 5,1000 --format ids
has "  ... says so" "$TMP/err" "vocabulary"
expect "missing model" 2 "$GPT" generate --model "$TMP/nothing" --prompt-tokens 1
mkdir -p "$TMP/broken"
cp $FIX/fp32/config.json "$TMP/broken/"
head -c 5000 $FIX/fp32/model.safetensors >"$TMP/broken/model.safetensors"
expect "truncated model.safetensors" 2 "$GPT" generate --model "$TMP/broken" --prompt-tokens 1
has "  ... names a tensor" "$TMP/err" "tensor 'transformer."
mkdir -p "$TMP/nocfg" && cp $FIX/fp32/model.safetensors "$TMP/nocfg/"
expect "model.safetensors without config.json" 2 "$GPT" generate --model "$TMP/nocfg" \
    --prompt-tokens 1
has "  ... says config.json" "$TMP/err" "config.json"
mkdir -p "$TMP/cfgonly" && cp $FIX/fp32/config.json "$TMP/cfgonly/"
expect "config.json without model.safetensors" 2 "$GPT" generate --model "$TMP/cfgonly" \
    --prompt-tokens 1
has "  ... says model.safetensors" "$TMP/err" "no model.safetensors"
expect "convert without --out" 2 "$GPT" convert --model $FIX/fp32
expect "convert into a missing parent" 2 "$GPT" convert --model $FIX/fp32 --out "$TMP/no/such"
expect "convert a missing model" 2 "$GPT" convert --model "$TMP/nothing" --out "$TMP/x"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
