#!/usr/bin/env bash
# test_tokenize_cli.sh - gpt tokenize and gpt tokenizer from the command
# line: the JSON machine forms, token shards, training, --help and the exit
# codes (0 ok, 1 runtime failure, 2 bad usage or invalid input).
# Uses $GPT_BIN (tests/run.sh exports it); data comes from the repository.
set -u
cd "$(dirname "$0")/.."
GPT=${GPT_BIN:-$PWD/build/gpt}
GPT_TEST=${GPT_TEST_BIN:-$PWD/build/gpt-test} # with the fault-injection hooks
SHK=$PWD/data/tinyshakespeare.txt
tmp=$(mktemp -d /tmp/gpt-test-cli-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0

ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; [ $# -gt 1 ] && echo "     $2"; }
# same NAME GOT WANT
same() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1" "got '$2', want '$3'"; fi; }
# rc NAME WANT COMMAND...: exit status of the command (stdin empty)
rc() {
    local name=$1 want=$2; shift 2
    "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
    local got=$?
    if [ "$got" = "$want" ]; then ok "$name"; else bad "$name" "exit $got, want $want: $(head -c 300 "$tmp/err")"; fi
}
# files_same NAME A B
files_same() { if cmp -s "$2" "$3"; then ok "$1"; else bad "$1" "$2 and $3 differ"; fi; }

# --- the machine-readable forms
same "text on stdin -> one JSON array" "$(printf 'Hello world' | "$GPT" tokenize --tokenizer gpt2 --format json)" "[15496,995]"
same "json is the default format" "$(printf 'Hello world' | "$GPT" tokenize)" "[15496,995]"
same "exactly one line of output" "$(printf 'a\nb\n\n' | "$GPT" tokenize | wc -l | tr -d ' ')" "1"
same "empty input -> []" "$("$GPT" tokenize </dev/null)" "[]"
same "csv format" "$(printf 'Hello world' | "$GPT" tokenize --format csv)" "15496,995"
same "<|endoftext|> is text without --special" "$(printf '<|endoftext|>' | "$GPT" tokenize)" "[27,91,437,1659,5239,91,29]"
same "<|endoftext|> is 50256 with --special" "$(printf 'a<|endoftext|>' | "$GPT" tokenize --special)" "[64,50256]"
same "U+0085 is white space (ids_openai)" "$(printf 'x \xc2\x85y' | "$GPT" tokenize)" "[87,220,126,227,88]"
same "--decode reads a JSON array" "$(printf '[15496, 995]' | "$GPT" tokenize --tokenizer gpt2 --decode)" "Hello world"
same "--decode of []" "$(printf '[]' | "$GPT" tokenize --decode | wc -c | tr -d ' ')" "0"
same "bytes tokenizer" "$(printf 'ab' | "$GPT" tokenize --tokenizer bytes)" "[97,98]"
same "gpt2 is built in (works from another folder)" "$(cd / && printf 'Hello world' | "$GPT" tokenize)" "[15496,995]"

printf 'caf\xc3\xa9 \xff\xfe\x00 \xed\xa0\x80 na\xcc\x88ive \xf0\x9f\x98 end\r\n' >"$tmp/odd.txt"
"$GPT" tokenize <"$tmp/odd.txt" >"$tmp/odd.json" && "$GPT" tokenize --decode <"$tmp/odd.json" >"$tmp/odd.back"
files_same "invalid UTF-8 and NUL bytes round trip through JSON" "$tmp/odd.txt" "$tmp/odd.back"
"$GPT" tokenize <"$SHK" >"$tmp/shk.json" && "$GPT" tokenize --decode --input "$tmp/shk.json" >"$tmp/shk.back"
files_same "Shakespeare round trips through JSON (--decode --input FILE)" "$SHK" "$tmp/shk.back"
same "Shakespeare is 338,025 tokens" "$(tr ',' '\n' <"$tmp/shk.json" | wc -l | tr -d ' ')" "338025"

# --- token shards
# Bytes of a shard of N uint16 ids: the 32-byte header, the ids, a CRC-32
# per 64 KiB of ids and the block table's own CRC.
shard_bytes() { echo $((32 + 2 * $1 + 4 * ((2 * $1 + 65535) / 65536) + 4)); }
rc "--input FILE --out PREFIX writes shards" 0 "$GPT" tokenize --tokenizer gpt2 --input "$SHK" --out "$tmp/shk"
same "train shard size (32-byte header, uint16 ids, block CRCs)" "$(wc -c <"$tmp/shk_train.bin" | tr -d ' ')" "$(shard_bytes 304223)"
same "val shard holds the last 10%" "$(wc -c <"$tmp/shk_val.bin" | tr -d ' ')" "$(shard_bytes 33802)"
{ "$GPT" tokenize --decode --input "$tmp/shk_train.bin" && "$GPT" tokenize --decode --input "$tmp/shk_val.bin"; } >"$tmp/shards.back"
files_same "decoded train + val shards are the text" "$SHK" "$tmp/shards.back"
rc "--val-fraction 0" 0 "$GPT" tokenize --input "$SHK" --out "$tmp/all" --val-fraction 0
same "--val-fraction 0 leaves an empty val shard" "$(wc -c <"$tmp/all_val.bin" | tr -d ' ')" "$(shard_bytes 0)"
printf 'one' >"$tmp/a.txt"
printf 'two' >"$tmp/b.txt"
same "files are documents: <|endoftext|> between them" "$("$GPT" tokenize --input "$tmp/a.txt" "$tmp/b.txt")" "[505,50256,11545]"
rc "--special applies to shard input" 0 "$GPT" tokenize --input "$tmp/odd.txt" --out "$tmp/odd" --special -q

# --- training
rc "tokenizer train" 0 "$GPT" tokenizer train --input "$SHK" --vocab-size 512 --out "$tmp/t.tok" -q
grep -q "512 tokens" "$tmp/out" && ok "train reports the vocabulary" || bad "train reports the vocabulary" "$(cat "$tmp/out")"
rc "tokenizer train again" 0 "$GPT" tokenizer train --input "$SHK" --vocab-size 512 --out "$tmp/t2.tok" -q
files_same "training is deterministic (identical files)" "$tmp/t.tok" "$tmp/t2.tok"
"$GPT" tokenize --tokenizer "$tmp/t.tok" <"$tmp/odd.txt" | "$GPT" tokenize --tokenizer "$tmp/t.tok" --decode >"$tmp/odd.back2"
files_same "trained tokenizer round trips odd bytes" "$tmp/odd.txt" "$tmp/odd.back2"
rc "shards with a trained tokenizer" 0 "$GPT" tokenize --tokenizer "$tmp/t.tok" --input "$SHK" --out "$tmp/own" -q
{ "$GPT" tokenize --tokenizer "$tmp/t.tok" --decode --input "$tmp/own_train.bin" &&
  "$GPT" tokenize --tokenizer "$tmp/t.tok" --decode --input "$tmp/own_val.bin"; } >"$tmp/own.back"
files_same "trained-tokenizer shards decode to the text" "$SHK" "$tmp/own.back"
same "trained <|endoftext|> is its last id" "$(printf '<|endoftext|>' | "$GPT" tokenize --tokenizer "$tmp/t.tok" --special)" "[511]"
rc "tokenizer info" 0 "$GPT" tokenizer info --tokenizer gpt2 --input "$SHK"
grep -q "50257 tokens" "$tmp/out" && grep -q "338025 tokens" "$tmp/out" && ok "info output" || bad "info output" "$(cat "$tmp/out")"

# --- help
for c in "tokenize --help" "tokenizer --help" "tokenizer train --help" "tokenizer info -h" "tokenize -h"; do
    # shellcheck disable=SC2086
    rc "gpt $c exits 0" 0 "$GPT" $c
    grep -q "usage: gpt tokeni" "$tmp/out" && ok "gpt $c prints usage" || bad "gpt $c prints usage"
done

# --- exit codes
rc "unknown option -> 2" 2 "$GPT" tokenize --bogus
grep -q "^gpt tokenize: unknown option '--bogus'" "$tmp/err" && ok "usage errors say what is wrong" || bad "usage errors say what is wrong" "$(cat "$tmp/err")"
rc "missing input file -> 2" 2 "$GPT" tokenize --input "$tmp/nope.txt" --out "$tmp/x"
rc "--input without a file -> 2" 2 "$GPT" tokenize --input
rc "--val-fraction 1.5 -> 2" 2 "$GPT" tokenize --input "$SHK" --out "$tmp/x" --val-fraction 1.5
rc "--val-fraction abc -> 2" 2 "$GPT" tokenize --input "$SHK" --out "$tmp/x" --val-fraction abc
rc "--val-fraction without --out -> 2" 2 "$GPT" tokenize --val-fraction 0.2
rc "--format xml -> 2" 2 "$GPT" tokenize --format xml
rc "--decode with --out -> 2" 2 "$GPT" tokenize --decode --out "$tmp/x"
rc "unknown tokenizer -> 2" 2 "$GPT" tokenize --tokenizer "$tmp/nope.tok"
head -c 500 "$tmp/t.tok" >"$tmp/cut.tok"
rc "truncated tokenizer file -> 2" 2 "$GPT" tokenize --tokenizer "$tmp/cut.tok"
grep -q "truncated" "$tmp/err" && ok "truncated tokenizer message" || bad "truncated tokenizer message" "$(cat "$tmp/err")"
printf '[1,2' >"$tmp/bad.json"
rc "--decode of broken JSON -> 2" 2 "$GPT" tokenize --decode --input "$tmp/bad.json"
printf '{"ids":[1]}' >"$tmp/obj.json"
rc "--decode of a JSON object -> 2" 2 "$GPT" tokenize --decode --input "$tmp/obj.json"
printf '[50257]' >"$tmp/big.json"
rc "--decode of an id out of range -> 2" 2 "$GPT" tokenize --decode --input "$tmp/big.json"
printf '[-1]' >"$tmp/neg.json"
rc "--decode of a negative id -> 2" 2 "$GPT" tokenize --decode --input "$tmp/neg.json"
printf '[1.5]' >"$tmp/frac.json"
rc "--decode of a fraction -> 2" 2 "$GPT" tokenize --decode --input "$tmp/frac.json"
rc "--decode of a shard with another vocabulary -> 2" 2 "$GPT" tokenize --tokenizer bytes --decode --input "$tmp/shk_val.bin"
head -c 1001 "$tmp/shk_val.bin" >"$tmp/cut.bin"
rc "--decode of a truncated shard -> 2" 2 "$GPT" tokenize --decode --input "$tmp/cut.bin"
rc "tokenizer train --vocab-size 100 -> 2" 2 "$GPT" tokenizer train --input "$SHK" --vocab-size 100 --out "$tmp/x.tok"
rc "tokenizer train without --out -> 2" 2 "$GPT" tokenizer train --input "$SHK" --vocab-size 300
rc "tokenizer train of a missing file -> 2" 2 "$GPT" tokenizer train --input "$tmp/nope" --vocab-size 300 --out "$tmp/x.tok"
rc "gpt tokenizer with no subcommand -> 2" 2 "$GPT" tokenizer
rc "gpt tokenizer frobnicate -> 2" 2 "$GPT" tokenizer frobnicate
rc "shards into a missing folder -> 2" 2 "$GPT" tokenize --input "$SHK" --out "$tmp/no/such/dir/x"
GPT_TEST_FAIL_WRITE_AFTER=100 rc "disk full writing shards -> 1" 1 "$GPT_TEST" tokenize --input "$SHK" --out "$tmp/full"
[ ! -e "$tmp/full_train.bin" ] && ok "no partial shard after a failed write" || bad "no partial shard after a failed write"
GPT_TEST_FAIL_WRITE_AFTER=100 rc "disk full writing a tokenizer -> 1" 1 "$GPT_TEST" tokenizer train --input "$SHK" --vocab-size 300 --out "$tmp/full.tok"
if [ -w /dev/full ]; then
    printf 'hi' | "$GPT" tokenize >/dev/full 2>/dev/null
    same "a failed write to standard output -> 1" "$?" "1"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
