#!/usr/bin/env bash
# gpt serve over localhost: curl against a running server (completions,
# streaming, errors), the command's own exit codes, then the client-side
# suite in tests/serve_test.py (the official openai client, load, limits,
# slow clients, SIGTERM). Servers listen on a port the kernel picks
# (--port 0, read back from their log), so parallel runs do not collide.
# Run by tests/run.sh (which exports GPT_BIN); prints "N passed, M failed".
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gpt_serve.XXXXXX")
PID=
cleanup() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
MODEL=tests/data/serve_tiny

# start_server LOG ARGS...: starts gpt serve, sets PID and PORT.
start_server() {
    local log=$1; shift
    "$GPT" serve -m "$MODEL" --tokenizer bytes --port 0 "$@" 2>"$log" &
    PID=$! PORT=
    for _ in $(seq 1 6000); do
        PORT=$(sed -n 's|.*listening on http://[^ ]*:\([0-9]*\)$|\1|p' "$log")
        [ -n "$PORT" ] && return 0
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "     gpt serve did not start: $(tail -3 "$log")"
    return 1
}

case_begin "gpt serve --help explains the API and exits 0"
"$GPT" serve --help >"$TMP/help" 2>&1; rc=$?
check "exit $rc" [ "$rc" = 0 ]
check "no /v1/completions in the help" grep -q "/v1/completions" "$TMP/help"
case_end

case_begin "bad flags exit 2 with one line"
"$GPT" serve >"$TMP/o" 2>"$TMP/e"; rc1=$?
"$GPT" serve -m "$MODEL" --slots 0 >"$TMP/o" 2>"$TMP/e2"; rc2=$?
"$GPT" serve -m "$MODEL" --bogus >"$TMP/o" 2>"$TMP/e3"; rc3=$?
check "no --model: exit $rc1" [ "$rc1" = 2 ]
check "--slots 0: exit $rc2" [ "$rc2" = 2 ]
check "--bogus: exit $rc3 $(cat "$TMP/e3")" [ "$rc3" = 2 ]
check "message names --model" grep -q -- "--model" "$TMP/e"
case_end

case_begin "a model that does not exist: exit 2, no server"
"$GPT" serve -m "$TMP/nothing" --port 0 >"$TMP/o" 2>"$TMP/e"; rc=$?
check "exit $rc" [ "$rc" = 2 ]
case_end

case_begin "curl: a completion, a stream, errors"
if start_server "$TMP/s1.log" --slots 4 -t 1; then
    URL=http://127.0.0.1:$PORT
    code=$(curl -s -o "$TMP/c1" -w '%{http_code}' "$URL/v1/completions" -H 'Content-Type: application/json' \
        -d '{"prompt": "ROMEO:", "max_tokens": 12, "temperature": 0}')
    check "completion: HTTP $code" [ "$code" = 200 ]
    check "completion JSON: $(head -c 300 "$TMP/c1")" python3 -c "
import json, sys; r = json.load(open(sys.argv[1]))
c = r['choices'][0]; assert r['object'] == 'text_completion' and c['finish_reason'] == 'length'
assert r['usage']['completion_tokens'] == 12 and len(c['text'].encode()) == 12" "$TMP/c1"
    curl -sN "$URL/v1/completions" -d '{"prompt": "ROMEO:", "max_tokens": 12, "temperature": 0, "stream": true}' >"$TMP/c2"
    check "the stream ends with data: [DONE]" [ "$(grep -v '^$' "$TMP/c2" | tail -1)" = "data: [DONE]" ]
    check "the stream's text is the completion's" python3 -c "
import json, sys
text = ''.join(json.loads(l[6:])['choices'][0]['text'] for l in open(sys.argv[1]) if l.startswith('data: {'))
assert text == json.load(open(sys.argv[2]))['choices'][0]['text'], text" "$TMP/c2" "$TMP/c1"
    code=$(curl -s -o "$TMP/c3" -w '%{http_code}' "$URL/v1/completions" -d '{"prompt": ')
    check "bad JSON: HTTP $code" [ "$code" = 400 ]
    check "bad JSON: an OpenAI-style error body" grep -q '"error":{"message":' "$TMP/c3"
    head -c 3000000 /dev/zero | tr '\0' 'x' >"$TMP/big"
    code=$(curl -s -o "$TMP/c4" -w '%{http_code}' "$URL/v1/completions" --data-binary @"$TMP/big")
    check "a 3 MB body: HTTP $code" [ "$code" = 413 ]
    code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/health")
    check "still healthy: HTTP $code" [ "$code" = 200 ]
    # a second server on the same port cannot start
    "$GPT" serve -m "$MODEL" --tokenizer bytes --port "$PORT" >"$TMP/o" 2>"$TMP/e"; rc=$?
    check "a port in use: exit $rc, $(cat "$TMP/e")" [ "$rc" = 1 ]
    check "the message says the port is in use" grep -q "in use" "$TMP/e"
    kill -TERM "$PID"; wait "$PID"; rc=$?; PID=
    check "SIGTERM when idle: exit $rc" [ "$rc" = 0 ]
else
    check "server started" false
fi
case_end

# The client-side suite adds its own count to ours.
python3 tests/serve_test.py >"$TMP/py.log" 2>&1
grep -v -E '^[0-9]+ passed, [0-9]+ failed$' "$TMP/py.log"
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$TMP/py.log" | tail -1)
if [ -n "$line" ]; then
    p=${line%% passed*}; f=${line#*, }; f=${f%% failed}
    _pass=$((_pass + p)); _fail=$((_fail + f))
else
    echo "FAIL tests/serve_test.py ended without a summary"; _fail=$((_fail + 1))
fi
summary
