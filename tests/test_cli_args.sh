#!/usr/bin/env bash
# One argument parser for every command (tools/cli.c): the same spellings
# (--key value, --key=value, -k value, -kvalue), the same one-line errors
# with exit code 2, --help from the table for every command and subcommand,
# `gpt help CMD`, the manual page holding every option, and llama.cpp's
# flags on gpt generate giving what the long forms give.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
FIX=tests/data/hf_tiny/fp32
P=$(cat tests/data/hf_tiny/greedy_prompt.txt)
D=data/tinyshakespeare.txt
# A byte-level model for the rows that give text (the fixture's vocabulary
# is 1,000 ids, not a tokenizer's).
MODEL="--tokenizer bytes --layers 1 --heads 2 --channels 16 --max-seq 32 --sample 0 --eval-batches 1 --threads 1"
# shellcheck disable=SC2086
"$GPT" train --data $D $MODEL -B 2 -T 32 --steps 1 --out "$tmp/m" >/dev/null 2>"$tmp/train.err" ||
    { echo "cannot make the model: $(tail -2 "$tmp/train.err")"; echo "0 passed, 1 failed"; exit 1; }
M=$tmp/m/model.ckpt

# Every command and subcommand, and one option of each that takes a value.
COMMANDS="train:--lr generate:-n eval:--tokens info:--preset bench_train:--steps
bench_generate:--new convert:--out quantize:--out tokenize:--tokenizer tokenizer_train:--vocab-size
tokenizer_info:--tokenizer serve:--port"

# one_line_error NAME WORDS ARGS...: exit 2, one line on stderr starting
# "gpt <cmd>:" and holding each of WORDS, nothing on stdout.
one_line_error() {
    local name=$1 words=$2 cmd=$3; shift 3
    case_begin "$name"
    timeout 20 "$GPT" "$@" </dev/null >"$tmp/out" 2>"$tmp/err"; local rc=$?
    check "exit $rc, want 2: $(head -c 300 "$tmp/err")" [ "$rc" = 2 ]
    check "not one line: $(cat "$tmp/err")" [ "$(wc -l <"$tmp/err")" = 1 ]
    check "does not start with 'gpt${cmd:+ $cmd}:': $(cat "$tmp/err")" grep -q "^gpt${cmd:+ $cmd}: " "$tmp/err"
    for w in $words; do
        check "message lacks '$w': $(cat "$tmp/err")" grep -qF -- "$w" "$tmp/err"
    done
    check "printed on stdout: $(head -c 200 "$tmp/out")" [ ! -s "$tmp/out" ]
    case_end
}

"$GPT" --man >"$tmp/man" 2>"$tmp/man.err"
for entry in $COMMANDS; do
    cmd=${entry%%:*}; cmd=${cmd/_/ }; flag=${entry#*:}
    # shellcheck disable=SC2086
    set -- $cmd
    one_line_error "$cmd: unknown option" "unknown --bogus" "$cmd" "$@" --bogus
    one_line_error "$cmd: unknown option with a value" "unknown --bogus" "$cmd" "$@" --bogus=1
    one_line_error "$cmd: unknown short option" "unknown -Z" "$cmd" "$@" -Z
    one_line_error "$cmd: a stray argument" "unexpected stray" "$cmd" "$@" stray
    one_line_error "$cmd: an argument after --" "unexpected stray" "$cmd" "$@" -- stray
    one_line_error "$cmd: $flag without its value" "$flag needs" "$cmd" "$@" "$flag"
    one_line_error "$cmd: $flag followed by an option" "$flag needs" "$cmd" "$@" "$flag" --help

    case_begin "$cmd: --help, -h and gpt help $cmd print the same usage"
    "$GPT" "$@" --help >"$tmp/h1" 2>&1; r1=$?
    "$GPT" "$@" -h >"$tmp/h2" 2>&1; r2=$?
    "$GPT" help "$@" >"$tmp/h3" 2>&1; r3=$?
    check "exit codes $r1 $r2 $r3" [ "$r1$r2$r3" = 000 ]
    check "no usage line: $(head -1 "$tmp/h1")" grep -q "^usage: gpt $cmd " "$tmp/h1"
    check "-h differs" cmp -s "$tmp/h1" "$tmp/h2"
    check "gpt help differs" cmp -s "$tmp/h1" "$tmp/h3"
    check "no exit codes line" grep -q "^exit codes: 0 success" "$tmp/h1"
    check "$flag not documented" grep -qF -- " $flag" "$tmp/h1"
    check "a line wider than 80 columns" [ "$(awk 'length > 80' "$tmp/h1" | wc -l)" = 0 ]
    case_end

    case_begin "$cmd: the manual page has its section and every option of its --help"
    check "no section" grep -qF ".SS \"gpt $cmd\"" "$tmp/man"
    for o in $(grep -oE '(^|[ ,])--[a-z][a-z0-9-]*' "$tmp/h1" | tr -d ' ,' | sort -u); do
        [ "$o" = --help ] && continue
        check "$o missing from the manual" grep -qF -- "$(echo "$o" | sed 's/-/\\-/g')" "$tmp/man"
    done
    case_end
done

case_begin "gpt --man is a roff page"
check "exit or stderr: $(cat "$tmp/man.err")" [ ! -s "$tmp/man.err" ]
check "no .TH" grep -q '^\.TH GPT 1 ' "$tmp/man"
check "no NAME, SYNOPSIS or EXIT STATUS" [ "$(grep -cE '^\.SH (NAME|SYNOPSIS|EXIT STATUS)$' "$tmp/man")" = 3 ]
check "an unescaped option" [ "$(grep -v '^\.\\"' "$tmp/man" | grep -c -- '--')" = 0 ]
case_end

one_line_error "gpt: unknown command" "unknown frobnicate" "" frobnicate
one_line_error "gpt: unknown option" "unknown --frobnicate" "" --frobnicate
one_line_error "tokenizer: no subcommand" "subcommand train info" tokenizer tokenizer
one_line_error "bench: unknown subcommand" "unknown fly train generate" bench bench fly
one_line_error "train: a flag given a value" "--recompute takes no value" train train --data x --recompute=1
one_line_error "generate: --model followed by an option" "--model needs a value" generate generate --model --prompt hi
one_line_error "generate: --top-p 0" "--top-p (0, 1]" generate generate --model $FIX --top-p 0
one_line_error "generate: empty prompt file name" "-f file" generate generate --model $FIX -f ""

# ------------------------------------------ one command, many spellings
run_ids() { # NAME ARGS...: greedy ids into $tmp/NAME
    local name=$1; shift
    "$GPT" generate "$@" >"$tmp/$name" 2>"$tmp/$name.err" || echo "exit $? $(cat "$tmp/$name.err")" >>"$tmp/$name"
}
run_ids base --model $FIX --prompt-tokens "$P" -n 6 --temperature 0 --format ids
run_ids eq --model=$FIX --prompt-tokens="$P" --max-new-tokens=6 --temperature=0 --format=ids
run_ids short -m $FIX --prompt-tokens "$P" -n6 --temp 0 --format ids -t 1
run_ids short_eq -m=$FIX --prompt-tokens "$P" -n=6 --temp=0 --format=ids --threads=1
case_begin "generate: --key value, --key=value, -k value, -kvalue, llama.cpp's -m --temp -t"
check "base failed: $(cat "$tmp/base")" grep -qE '^\[[0-9]+(,[0-9]+){5}\]$' "$tmp/base"
for v in eq short short_eq; do
    check "$v: $(cat "$tmp/$v") vs $(cat "$tmp/base")" cmp -s "$tmp/base" "$tmp/$v"
done
case_end

run_ids seed_long --model $M --prompt-tokens 72,105 -n 12 --temperature 1.3 --seed 42 --format ids
run_ids seed_short -m $M --prompt-tokens 72,105 -n 12 --temp 1.3 -s 42 --format ids
run_ids seed_other -m $M --prompt-tokens 72,105 -n 12 --temp 1.3 -s 43 --format ids
case_begin "generate: -s/--seed and --temp/--temperature are the same options"
check "$(cat "$tmp/seed_short") vs $(cat "$tmp/seed_long")" cmp -s "$tmp/seed_long" "$tmp/seed_short"
check "seed 43 gave seed 42's tokens" differ "$tmp/seed_long" "$tmp/seed_other"
case_end

printf 'Hello, my name is' >"$tmp/prompt.txt"
case_begin "generate: -f FILE is the prompt -p TEXT gives"
"$GPT" generate -m $M -p "Hello, my name is" -n 5 --temp 0 >"$tmp/p.out" 2>/dev/null; r1=$?
"$GPT" generate -m $M -f "$tmp/prompt.txt" -n 5 --temp 0 >"$tmp/f.out" 2>/dev/null; r2=$?
"$GPT" generate -m $M --file="$tmp/prompt.txt" -n 5 --temp 0 --format ids >"$tmp/f.ids" 2>/dev/null; r3=$?
"$GPT" generate -m $M --prompt-tokens "$(printf 'Hello, my name is' | "$GPT" tokenize --tokenizer bytes --format csv)" \
    -n 5 --temp 0 --format ids >"$tmp/t.ids" 2>/dev/null; r4=$?
check "exit codes $r1 $r2 $r3 $r4" [ "$r1$r2$r3$r4" = 0000 ]
check "text differs: $(cat "$tmp/f.out") vs $(cat "$tmp/p.out")" cmp -s "$tmp/p.out" "$tmp/f.out"
check "starts with the prompt" grep -q "^Hello, my name is" "$tmp/f.out"
check "ids differ from the prompt's tokens" cmp -s "$tmp/f.ids" "$tmp/t.ids"
case_end
one_line_error "generate: -f of a missing file" "prompt file nope.txt" generate generate -m $M -f "$tmp/nope.txt"
one_line_error "generate: -f of a folder" "prompt file" generate generate -m $M -f "$tmp"

# -c/--ctx-size: the context a row may use (the fixture's is 64).
one_line_error "generate: -c above the model's context" "--ctx-size 65 64" generate \
    generate -m $FIX --prompt-tokens 1,2,3 -c 65 --format ids
one_line_error "generate: prompt + -n beyond -c" "context of 8 sliding" generate \
    generate -m $FIX --prompt-tokens 1,2,3,4 -n 5 -c 8 --temp 0 --format ids
case_begin "generate: -c 8 --sliding-window slides inside 8 positions"
"$GPT" generate -m $FIX --prompt-tokens 1,2,3,4 -n 12 -c 8 --temp 0 --format ids --sliding-window \
    >"$tmp/c.out" 2>"$tmp/c.err"; rc=$?
check "exit $rc: $(cat "$tmp/c.err")" [ "$rc" = 0 ]
check "not 12 ids: $(cat "$tmp/c.out")" grep -qE '^\[[0-9]+(,[0-9]+){11}\]$' "$tmp/c.out"
check "no window slides reported: $(cat "$tmp/c.err")" grep -q "window slides" "$tmp/c.err"
case_end
case_begin "generate: -c 8 with 4 + 4 tokens equals the full context's answer"
"$GPT" generate -m $FIX --prompt-tokens 1,2,3,4 -n 4 -c 8 --temp 0 --format ids >"$tmp/c8" 2>/dev/null; r1=$?
"$GPT" generate -m $FIX --prompt-tokens 1,2,3,4 -n 4 --temp 0 --format ids >"$tmp/c64" 2>/dev/null; r2=$?
check "exit codes $r1 $r2" [ "$r1$r2" = 00 ]
check "$(cat "$tmp/c8") vs $(cat "$tmp/c64")" cmp -s "$tmp/c8" "$tmp/c64"
case_end

# train: --key=value and short forms reach the same settings (the tiny
# preset's own defaults apply only to what was not given, in any spelling).
case_begin "train: --steps=2 -B2 -T=16 train what --steps 2 -B 2 -T 16 trains"
# shellcheck disable=SC2086
"$GPT" train --data $D $MODEL --steps 2 -B 2 -T 16 --out "$tmp/t1" >/dev/null 2>"$tmp/t1.err"; r1=$?
# shellcheck disable=SC2086
"$GPT" train --data=$D $MODEL --steps=2 -B2 -T=16 --out="$tmp/t2" >/dev/null 2>"$tmp/t2.err"; r2=$?
check "exit codes $r1 $r2: $(tail -1 "$tmp/t2.err")" [ "$r1$r2" = 00 ]
check "checkpoints differ" cmp -s "$tmp/t1/model.ckpt" "$tmp/t2/model.ckpt"
"$GPT" info --model="$tmp/t2/model.ckpt" >"$tmp/info" 2>&1
check "not 2 steps at B=2 T=16: $(cat "$tmp/info")" grep -q "trained for 2 steps" "$tmp/info"
check "trainer state: $(cat "$tmp/info")" grep -q "B=2 T=16" "$tmp/info"
case_end

summary
