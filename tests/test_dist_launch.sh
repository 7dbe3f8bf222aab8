#!/usr/bin/env bash
# gpt train --gpus N, the launcher (tools/dist_launch.c), without GPUs: the
# test build (gpt-test) lets it start its ranks where no GPU is and makes
# the ranks do as GPT_TEST_LAUNCH says (ok: exit 0; fail: rank 1 exits 3,
# the others wait; wait: every rank waits). Each rank must get its rank,
# the size and its GPU; a failing or killed rank must end the job at once
# with a message naming it and a non-zero exit, the others stopped; a
# SIGTERM to the launcher reaches the ranks. No rank may outlive it.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
TB=${GPT_TEST_BIN:-build/gpt-test}
tmp=$(mktemp -d)
bg=""
trap '[ -n "$bg" ] && kill -KILL $bg 2>/dev/null; rm -rf "$tmp"' EXIT
ARGS="train --data data/tinyshakespeare.txt --tokenizer bytes --gpus 3"
ranks_of() { ps -o pid= --ppid "$1" | tr -d ' '; }
none_left() { # pids...: none may still run
    for p in "$@"; do kill -0 "$p" 2>/dev/null && { echo "rank $p still runs"; return 1; }; done
    return 0
}

case_begin "3 ranks start with their rank, the size and their GPU, and end with exit 0"
GPT_TEST_LAUNCH=ok timeout 60 "$TB" $ARGS >"$tmp/o1" 2>"$tmp/e1"; rc=$?
check "exit $rc: $(cat "$tmp/e1")" [ "$rc" = 0 ]
for r in 0 1 2; do check "rank $r: $(cat "$tmp/e1")" grep -qx "test launch: rank $r of 3, GPU $r" "$tmp/e1"; done
case_end

case_begin "rank 1 fails (exit 3): the others are stopped, the launcher says so and exits 3"
t0=$(date +%s)
GPT_TEST_LAUNCH=fail timeout 60 "$TB" $ARGS >"$tmp/o2" 2>"$tmp/e2"; rc=$?
took=$(( $(date +%s) - t0 ))
check "exit $rc" [ "$rc" = 3 ]
check "took $took s" [ "$took" -lt 30 ]
check "message: $(cat "$tmp/e2")" grep -q "gpt train: rank 1 exited with code 3: stopping the other ranks" "$tmp/e2"
case_end

for how in "KILL rank" "TERM launcher"; do
    case_begin "SIG${how% *} to a ${how#* }: every rank ends, the launcher exits non-zero with a message"
    GPT_TEST_LAUNCH=wait "$TB" $ARGS >"$tmp/o3" 2>"$tmp/e3" &
    bg=$!
    for i in $(seq 1 100); do [ "$(grep -c '^test launch' "$tmp/e3")" = 3 ] && break; sleep 0.1; done
    kids=$(ranks_of $bg)
    check "3 ranks: $kids" [ "$(echo $kids | wc -w)" = 3 ]
    t0=$(date +%s)
    if [ "$how" = "KILL rank" ]; then kill -KILL "$(echo $kids | cut -d' ' -f2)"; else kill -TERM $bg; fi
    wait $bg; rc=$?
    bg=""
    took=$(( $(date +%s) - t0 ))
    check "exit $rc" [ "$rc" != 0 ]
    check "took $took s" [ "$took" -lt 30 ]
    check "ranks left" none_left $kids
    if [ "$how" = "KILL rank" ]; then
        check "message: $(cat "$tmp/e3")" grep -q "gpt train: rank 1 was killed by signal 9 (Killed): stopping the other ranks" "$tmp/e3"
    else
        check "message: $(cat "$tmp/e3")" grep -q "gpt train: rank [0-2] was killed by signal 15" "$tmp/e3"
    fi
    case_end
done
case_begin "the production build has no such hook"
check "build/gpt holds the hook's text" eval '! grep -q -a "test launch: rank" "$GPT"'
case_end
summary
