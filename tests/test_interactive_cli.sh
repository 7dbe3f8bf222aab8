#!/usr/bin/env bash
# gpt generate -i: the conversation keeps the KV cache between turns, so
# every greedy reply must be what gpt generate gives on the whole
# conversation so far (prompt, replies, lines typed) read at once; a full
# context goes on from its last half (--keep tokens of the prompt kept),
# each reply then equal to generate on that window; Ctrl-C stops a reply
# and the conversation goes on; Ctrl-D ends with exit 0.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# A 64-position model with 1,000 ids; lines are typed through the byte
# tokenizer (ids below 256) so that any text is a valid input.
FIX=tests/data/hf_tiny/fp32
CHAT="$GPT generate -m $FIX --tokenizer bytes -i --format ids --temp 0 --threads 2"

# check_turns NAME CTX KEEP N PROMPT LINES_FILE OUT_FILE: replays the
# conversation in Python, the cache as interactive.c keeps it, and asks
# gpt generate for each reply from the window the cache held when the reply
# began (a reply that fills the context again slides as --sliding-window
# does, which is the same rule when KEEP is 0; otherwise only the tokens
# before that slide are compared).
check_turns() {
    python3 - "$GPT" "$FIX" "$@" <<'EOF'
import json, subprocess, sys
gpt, fix, name, ctx, keep, n, prompt, lines, out = sys.argv[1:]
ctx, keep, n = int(ctx), int(keep), int(n)
prompt = [int(x) for x in prompt.split(',')] if prompt else []
typed = [list(l) for l in open(lines, 'rb').read().splitlines(True)]
replies = [json.loads(l) for l in open(out)]
turns = ([prompt] if prompt else []) + typed
if len(replies) != len(turns):
    sys.exit(f"{len(replies)} replies for {len(turns)} turns")
keep = len(prompt) if keep < 0 else keep
hist, bad = [], 0
def push(t):
    global hist
    if len(hist) == ctx: # half the context: the kept start, the recent part ending with t
        k = min(keep, ctx // 2)
        tail = max(ctx // 2 - k, 1)
        hist = hist[:k] + hist[len(hist) - (tail - 1):] if tail > 1 else hist[:k]
    hist.append(t)
for turn, reply in zip(turns, replies):
    for t in turn: push(t)
    window = list(hist)
    # tokens of this reply before the cache would slide again
    room = len(reply) if keep == 0 else min(len(reply), ctx - len(window) + 1)
    args = [gpt, "generate", "-m", fix, "--prompt-tokens", ",".join(map(str, window)),
            "-n", str(len(reply)), "--temp", "0", "--format", "ids", "-c", str(ctx),
            "--sliding-window", "--threads", "2"]
    want = json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
    if reply[:room] != want[:room]:
        print(f"     turn from {window[-6:]}: -i gave {reply[:room]}, generate {want[:room]}")
        bad += 1
    for t in reply: push(t)
sys.exit(1 if bad else 0)
EOF
}

printf 'ab\ncd\nefg hij\n' >"$tmp/lines"
case_begin "greedy replies equal generate on the whole conversation (no slide)"
$CHAT -n 5 --prompt-tokens 5,6,7 <"$tmp/lines" >"$tmp/o1" 2>"$tmp/e1"; rc=$?
check "exit $rc: $(cat "$tmp/e1")" [ "$rc" = 0 ]
check "not 4 replies of 5 ids: $(cat "$tmp/o1")" [ "$(grep -cE '^\[[0-9]+(,[0-9]+){4}\]$' "$tmp/o1")" = 4 ]
check "a reply differs" check_turns t1 64 0 5 5,6,7 "$tmp/lines" "$tmp/o1"
check "slid without a full context: $(cat "$tmp/e1")" [ "$(grep -c 'context full' "$tmp/e1")" = 0 ]
case_end

case_begin "no prompt: the conversation starts from the first line"
$CHAT -n 4 <"$tmp/lines" >"$tmp/o2" 2>"$tmp/e2"; rc=$?
check "exit $rc: $(cat "$tmp/e2")" [ "$rc" = 0 ]
check "not 3 replies: $(cat "$tmp/o2")" [ "$(grep -c '^\[' "$tmp/o2")" = 3 ]
check "a reply differs" check_turns t2 64 0 4 "" "$tmp/lines" "$tmp/o2"
case_end

for i in $(seq 1 12); do echo "line $i, some more text"; done >"$tmp/long"
case_begin "a full context goes on from its last half (-c 24)"
$CHAT -n 7 -c 24 --prompt-tokens 1,2,3,4 <"$tmp/long" >"$tmp/o3" 2>"$tmp/e3"; rc=$?
check "exit $rc: $(tail -2 "$tmp/e3")" [ "$rc" = 0 ]
check "not 13 replies of 7 ids" [ "$(grep -cE '^\[[0-9]+(,[0-9]+){6}\]$' "$tmp/o3")" = 13 ]
check "no notice on stderr" grep -q "context full (24 positions)" "$tmp/e3"
check "a reply differs" check_turns t3 24 0 7 1,2,3,4 "$tmp/long" "$tmp/o3"
case_end

case_begin "--keep 3: the first prompt's start stays when the context slides"
$CHAT -n 7 -c 24 --keep 3 --prompt-tokens 1,2,3,4 <"$tmp/long" >"$tmp/o4" 2>"$tmp/e4"; rc=$?
check "exit $rc: $(tail -2 "$tmp/e4")" [ "$rc" = 0 ]
check "a reply differs" check_turns t4 24 3 7 1,2,3,4 "$tmp/long" "$tmp/o4"
check "--keep changed nothing" differ "$tmp/o3" "$tmp/o4"
case_end

case_begin "text mode: the prompt, then each reply streamed on its own line"
printf 'x\n' | "$GPT" generate -m $FIX --tokenizer bytes -i -p "Hi" -n 3 --temp 0 >"$tmp/o5" 2>"$tmp/e5"; rc=$?
check "exit $rc: $(cat "$tmp/e5")" [ "$rc" = 0 ]
check "does not start with the prompt: $(head -c 50 "$tmp/o5")" [ "$(head -c 2 "$tmp/o5")" = "Hi" ]
check "not two lines" [ "$(wc -l <"$tmp/o5")" -ge 2 ]
check "no summary on stderr" grep -q "tokens read" "$tmp/e5"
case_end

one() { # NAME WORDS ARGS...: exit 2, one line
    local name=$1 words=$2; shift 2
    case_begin "$name"
    timeout 20 "$GPT" "$@" </dev/null >"$tmp/out" 2>"$tmp/err"; local rc=$?
    check "exit $rc: $(cat "$tmp/err")" [ "$rc" = 2 ]
    check "not one line: $(cat "$tmp/err")" [ "$(wc -l <"$tmp/err")" = 1 ]
    for w in $words; do check "lacks '$w': $(cat "$tmp/err")" grep -qF -- "$w" "$tmp/err"; done
    case_end
}
one "-i with a batch is refused" "-i --batch" generate -m $FIX -i --batch 2
one "-i with two prompts is refused" "-i prompt" generate -m $FIX -i -p a -p b
one "-i with --sliding-window is refused" "--sliding-window" generate -m $FIX -i --sliding-window
one "--keep below -1 is refused" "--keep" generate -m $FIX -i --keep -2

# Ctrl-C: a long reply stops, the next line gets a reply, Ctrl-D ends.
case_begin "Ctrl-C stops a reply, the conversation goes on, Ctrl-D ends with 0"
mkfifo "$tmp/in"
"$GPT" generate -m $FIX --tokenizer bytes -i -n 1000000 -c 64 --threads 1 <"$tmp/in" >"$tmp/o6" 2>"$tmp/e6" &
pid=$!
exec 3>"$tmp/in"
grows() { # waits (up to 20 s) until the output is longer than $1 bytes
    for _ in $(seq 1 200); do [ "$(wc -c <"$tmp/o6")" -gt "$1" ] && return 0; sleep 0.1; done
    return 1
}
echo "ab" >&3
check "the first reply did not stream" grows 20
kill -INT $pid 2>/dev/null; sleep 0.5
s1=$(wc -c <"$tmp/o6"); sleep 0.5; s2=$(wc -c <"$tmp/o6")
check "still running after Ctrl-C" kill -0 $pid
check "the reply went on after Ctrl-C ($s1 -> $s2 bytes)" [ "$s1" = "$s2" ]
echo "cd" >&3
check "no reply to the next line" grows "$((s2 + 20))"
kill -INT $pid 2>/dev/null; sleep 0.3
exec 3>&-
for _ in $(seq 1 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $pid 2>/dev/null; then kill -9 $pid; fi
wait $pid; rc=$?
check "exit $rc after Ctrl-D: $(tail -2 "$tmp/e6")" [ "$rc" = 0 ]
case_end

summary
