#!/usr/bin/env python3
"""tests/serve_test.py - `gpt serve` as its clients use it, over localhost:
the official `openai` Python client and raw HTTP (tests/test_serve.sh adds
curl). Run by tests/test_serve.sh; prints "ok"/"FAIL" lines and
"N passed, M failed".

The model is tests/data/serve_tiny (a small byte-level GPT, see
tests/ref/make_serve_fixture.sh), so a token is a byte and `gpt generate
--format ids` gives the bytes of the text the server must return. With at
most 8 slots the CPU computes each row of a batch exactly as alone (see
tests/slots_check.h), so greedy and seeded outputs must be identical, not
just close.

Checks: completions (text and token prompts, lists, n), streaming, stop
strings, seeds, logprobs against `gpt eval`, greedy output against `gpt
generate`, /tokenize, /detokenize, /v1/models, /health, OpenAI-style 4xx
for malformed requests (the server keeps serving), slow clients, a full
queue (503), a bounded load test (64 concurrent clients, 500 requests,
every answer equal to the single-request one, none lost, RSS flat), and
SIGTERM draining a request in flight.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

GPT = os.environ.get("GPT_BIN", "build/gpt")
MODEL = "tests/data/serve_tiny"
NAME = "tiny"
passed = failed = 0


def case(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok   " + name, flush=True)
    else:
        failed += 1
        print("FAIL " + name, flush=True)
        if detail:
            print("     " + str(detail)[:600], flush=True)


class Server:
    """gpt serve on a port the kernel picks (--port 0), read from its log."""

    def __init__(self, *extra, log="serve.log", binary=GPT, env=None):
        self.log = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"gpt_serve_{os.getpid()}_{log}")
        self.errf = open(self.log, "w+")
        args = [binary, "serve", "-m", MODEL, "--tokenizer", "bytes", "--served-model-name", NAME,
                "--port", "0", *extra]
        self.p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.errf,
                                  env={**os.environ, **(env or {})})
        self.port = None
        t0 = time.time()
        while time.time() - t0 < 600 and self.p.poll() is None:
            with open(self.log) as f:
                text = f.read()
            if "listening on http://" in text:
                self.port = int(text.split("listening on http://")[1].split()[0].rsplit(":", 1)[1])
                break
            time.sleep(0.05)
        if self.port is None:
            raise RuntimeError(f"gpt serve did not start: {open(self.log).read()[-500:]}")

    def sanitized(self):
        """1 if the server runs under AddressSanitizer (its quarantine holds
        freed memory: RSS grows without a leak; LeakSanitizer checks at exit)."""
        with open(f"/proc/{self.p.pid}/maps") as f:
            return "libasan" in f.read()

    def rss_kb(self):
        with open(f"/proc/{self.p.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return -1

    def stop(self, sig=signal.SIGTERM, timeout=600):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return None
        finally:
            self.errf.close()

    def text_log(self):
        with open(self.log) as f:
            return f.read()

    def died_detail(self, rc=None):
        """The exit status (a signal's name for a crash) and the end of the
        server's standard error: what a CI log needs to say why."""
        rc = self.p.poll() if rc is None else rc
        if rc is None:
            how = "still running"
        elif rc < 0:
            how = f"killed by {signal.Signals(-rc).name}"
        else:
            how = f"exit {rc}"
        return f"gpt serve: {how}; its stderr ends:\n{self.text_log()[-3000:]}"


def request(port, method, path, body=None, headers=None, timeout=3600):
    """Raw HTTP: (status, headers dict, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    c.request(method, path, body=body, headers=headers or {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def gpt_ids(args):
    """Runs gpt (generate/eval) and returns its stdout as JSON."""
    out = subprocess.run([GPT, *args], capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout)


def ids_csv(text):
    return ",".join(str(b) for b in text.encode())


def generate_text(prompt, n, temperature=0, seed=1, batch=None, top_k=0):
    args = ["generate", "--model", MODEL, "--tokenizer", "bytes", "--prompt-tokens", ids_csv(prompt),
            "-n", str(n), "--temperature", str(temperature), "--seed", str(seed), "--format", "ids",
            "--top-k", str(top_k)]
    if batch:
        args += ["--batch", str(batch)]
    ids = gpt_ids(args)
    rows = ids if batch else [ids]
    texts = [bytes(r).decode("utf-8", "replace") for r in rows]
    return texts if batch else texts[0]


def openai_client(port):
    from openai import OpenAI
    # no time limit that a slow, shared machine could hit: tests assert no times
    return OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=3600)


# --------------------------------------------------------------- the cases

def check_basics(port):
    st, _, body = request(port, "GET", "/health")
    case("GET /health is 200 ok", st == 200 and json.loads(body)["status"] == "ok", body)
    client = openai_client(port)
    models = client.models.list()
    case("the openai client lists the served model", [m.id for m in models.data] == [NAME], models)
    toks = json.loads(request(port, "POST", "/tokenize", {"prompt": "ROMEO: hi"})[2])
    case("/tokenize gives the byte ids", toks["tokens"] == list(b"ROMEO: hi") and toks["count"] == 9, toks)
    st, _, body = request(port, "POST", "/detokenize", {"tokens": toks["tokens"]})
    case("/detokenize gives the text back", st == 200 and json.loads(body)["prompt"] == "ROMEO: hi", body)


def check_completions(port):
    client = openai_client(port)
    want = generate_text("ROMEO:", 40)
    r = client.completions.create(model=NAME, prompt="ROMEO:", max_tokens=40, temperature=0)
    case("greedy completion through the openai client equals gpt generate's",
         r.choices[0].text == want and r.choices[0].finish_reason == "length",
         f"{r.choices[0].text!r} vs {want!r}")
    case("usage counts prompt and completion tokens",
         (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (6, 40, 46), r.usage)
    r2 = client.completions.create(model=NAME, prompt=list(b"ROMEO:"), max_tokens=40, temperature=0)
    case("a prompt of token ids gives the same text", r2.choices[0].text == want, r2.choices[0].text)
    r3 = client.completions.create(model=NAME, prompt=["ROMEO:", "JULIET:"], max_tokens=12, temperature=0)
    want2 = generate_text("JULIET:", 12)
    case("a list of prompts gives one choice each, in order",
         [c.index for c in r3.choices] == [0, 1] and r3.choices[0].text == want[:12] and
         r3.choices[1].text == want2, [c.text for c in r3.choices])
    # streaming: the deltas add up to the whole text
    chunks = list(client.completions.create(model=NAME, prompt="ROMEO:", max_tokens=40, temperature=0,
                                            stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    fins = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    usage = [c.usage for c in chunks if c.usage]
    case("streaming: the chunks add up to the greedy text, one finish_reason, usage last",
         text == want and fins == ["length"] and len(usage) == 1 and usage[0].completion_tokens == 40
         and not chunks[-1].choices, f"{text!r} {fins} {usage}")
    # stop strings
    long = generate_text("ROMEO:", 100)
    stop = next(s for s in [" the", "the", "e", "\n"] if s in long)
    cut = long[:long.index(stop)]
    r = client.completions.create(model=NAME, prompt="ROMEO:", max_tokens=100, temperature=0, stop=[stop, "zzz"])
    case(f"stop={stop!r} ends the text before the stop string, finish_reason stop",
         r.choices[0].text == cut and r.choices[0].finish_reason == "stop", f"{r.choices[0].text!r} vs {cut!r}")
    chunks = list(client.completions.create(model=NAME, prompt="ROMEO:", max_tokens=100, temperature=0,
                                            stop=stop, stream=True))
    text = "".join(c.choices[0].text for c in chunks)
    case("stop strings while streaming: no part of the stop string is sent", text == cut, f"{text!r}")
    # echo
    r = client.completions.create(model=NAME, prompt="ROMEO:", max_tokens=5, temperature=0, echo=True)
    case("echo returns the prompt before the completion", r.choices[0].text == "ROMEO:" + want[:5], r.choices[0].text)


def check_seeds(port):
    client = openai_client(port)
    kw = dict(model=NAME, prompt="ROMEO:", max_tokens=48, temperature=0.9, top_k=40)
    a = client.completions.create(seed=7, extra_body={"top_k": 40}, **{k: v for k, v in kw.items() if k != "top_k"})
    b = client.completions.create(seed=7, extra_body={"top_k": 40}, **{k: v for k, v in kw.items() if k != "top_k"})
    c = client.completions.create(seed=8, extra_body={"top_k": 40}, **{k: v for k, v in kw.items() if k != "top_k"})
    want = generate_text("ROMEO:", 48, temperature=0.9, seed=7, top_k=40)
    case("the same seed gives the same sample, another seed another one",
         a.choices[0].text == b.choices[0].text != c.choices[0].text, [a.choices[0].text, c.choices[0].text])
    case("a seeded sample equals gpt generate's with that seed", a.choices[0].text == want,
         f"{a.choices[0].text!r} vs {want!r}")
    r = client.completions.create(model=NAME, prompt="ROMEO:", max_tokens=24, temperature=0.9, seed=5, n=3)
    want3 = generate_text("ROMEO:", 24, temperature=0.9, seed=5, batch=3)
    case("n=3 gives gpt generate --batch 3's rows with that seed",
         [c.text for c in r.choices] == want3 and r.usage.completion_tokens == 72, [c.text for c in r.choices])


def check_logprobs(port):
    client = openai_client(port)
    prompt = "First Citizen:\nBefore we proceed any further, hear me speak."
    # the prompt's log-probabilities (echo) against gpt eval's loss on it
    r = client.completions.create(model=NAME, prompt=prompt, max_tokens=0, echo=True, logprobs=1)
    lp = r.choices[0].logprobs
    ev = gpt_ids(["eval", "--model", MODEL, "--tokens", ids_csv(prompt)])
    mean = -sum(lp.token_logprobs[1:]) / (len(lp.token_logprobs) - 1)
    # 6 significant digits per printed log-probability: each is off by at
    # most 5e-7 relative, so their mean by about as much; the fp32 passes
    # themselves agree to ~1e-6.
    case("echo logprobs of the prompt equal gpt eval's loss",
         lp.token_logprobs[0] is None and len(lp.tokens) == len(prompt) and abs(mean - ev["loss"]) < 1e-4 * ev["loss"],
         f"{mean} vs {ev['loss']}")
    # the generated tokens' log-probabilities: eval(prompt + completion) * (n-1) - eval(prompt) * (p-1)
    r = client.completions.create(model=NAME, prompt=prompt, max_tokens=20, temperature=0, logprobs=3)
    lp = r.choices[0].logprobs
    full = prompt + r.choices[0].text
    ev_full = gpt_ids(["eval", "--model", MODEL, "--tokens", ids_csv(full)])["loss"] * (len(full) - 1)
    ev_p = ev["loss"] * (len(prompt) - 1)
    got = -sum(lp.token_logprobs)
    # the decoding step (KV cache, few-row products) and eval's full pass
    # sum in different orders: ~1e-6 relative per logit, ~1e-5 on a token's
    # log-probability, so 20 tokens within 1e-3
    case("generated tokens' logprobs add up to gpt eval's loss on the continuation",
         abs(got - (ev_full - ev_p)) < 1e-3 and len(lp.tokens) == 20, f"{got} vs {ev_full - ev_p}")
    tops_ok = all(len(t) >= 3 and max(t.values()) >= lp.token_logprobs[i] - 1e-6
                  and lp.tokens[i] in t for i, t in enumerate(lp.top_logprobs))
    greedy_ok = all(abs(max(t.values()) - lp.token_logprobs[i]) < 1e-6 for i, t in enumerate(lp.top_logprobs))
    case("top_logprobs hold 3 alternatives and the chosen token; greedy picks the most likely",
         tops_ok and greedy_ok and lp.text_offset == list(range(20)), lp.top_logprobs[:2])


def check_errors(port):
    client = openai_client(port)
    import openai

    def expect(name, status, body, param=None, code=None, raw=False, headers=None):
        st, hd, data = request(port, "POST", "/v1/completions", body, headers=headers)
        try:
            e = json.loads(data)["error"]
            ok = st == status and isinstance(e["message"], str) and e["message"] and "type" in e
            ok = ok and (param is None or e["param"] == param) and (code is None or e["code"] == code)
        except Exception as x:  # noqa: BLE001
            ok, e = False, f"{data[:200]!r} ({x})"
        case(f"{name} -> {status} with an OpenAI-style error", ok, f"{st} {e}")

    expect("bad JSON", 400, b'{"prompt": "hi", ')
    expect("a body that is not an object", 400, b'[1, 2]')
    expect("max_tokens of the wrong type", 400, {"prompt": "hi", "max_tokens": "ten"}, "max_tokens", "invalid_type")
    expect("an unknown field", 400, {"prompt": "hi", "frobnicate": 1}, "frobnicate")
    expect("temperature out of range", 400, {"prompt": "hi", "temperature": 5}, "temperature")
    expect("n = 0", 400, {"prompt": "hi", "n": 0}, "n")
    expect("logprobs 50", 400, {"prompt": "hi", "logprobs": 50}, "logprobs")
    expect("five stop strings", 400, {"prompt": "hi", "stop": ["a", "b", "c", "d", "e"]}, "stop")
    expect("a token id outside the vocabulary", 400, {"prompt": [1, 2, 999]}, "prompt")
    expect("an empty prompt list", 400, {"prompt": []}, "prompt")
    expect("a prompt of mixed types", 400, {"prompt": ["a", [1]]}, "prompt")
    expect("prompt + max_tokens beyond the context", 400, {"prompt": "x" * 100, "max_tokens": 50},
           "max_tokens", "context_length_exceeded")
    expect("a prompt longer than the context", 400, {"prompt": "x" * 500}, "prompt", "context_length_exceeded")
    expect("another model's name", 404, {"model": "gpt-4", "prompt": "hi"}, "model", "model_not_found")
    expect("stream_options without stream", 400, {"prompt": "hi", "stream_options": {"include_usage": True}})
    expect("a NUL in a stop string", 400, {"prompt": "hi", "stop": "a\u0000b"}, "stop")
    expect("a 2 MB body", 413, {"prompt": "x" * (2 << 20)})
    st, _, data = request(port, "GET", "/v1/completions")
    case("GET /v1/completions -> 405", st == 405 and b"error" in data, f"{st} {data[:200]!r}")
    st, _, data = request(port, "POST", "/v1/nothing", {})
    case("an unknown path -> 404", st == 404 and b"Invalid URL" in data, f"{st} {data[:200]!r}")
    st, _, data = request(port, "POST", "/tokenize", {"text": 1})
    case("/tokenize with an unknown field -> 400", st == 400, f"{st} {data[:200]!r}")
    st, _, data = request(port, "POST", "/detokenize", {"tokens": [1, -4]})
    case("/detokenize of a bad id -> 400", st == 400, f"{st} {data[:200]!r}")
    try:
        client.completions.create(model=NAME, prompt="hi", max_tokens=-1)
        ok = False
    except openai.BadRequestError as x:
        ok = x.status_code == 400
    case("the openai client raises BadRequestError for max_tokens -1", ok)
    r = client.completions.create(model=NAME, prompt="ROMEO:", max_tokens=3, temperature=0)
    case("after all that the server still answers", r.choices[0].finish_reason == "length")


def check_slow_clients(port):
    """Clients that stall mid-headers or mid-body hold only their own
    connections: while they trickle a byte now and then (never idle long
    enough for --timeout 2), another request is served; once they go quiet
    they are closed after the idle timeout."""
    s1 = socket.create_connection(("127.0.0.1", port))
    s1.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
    s2 = socket.create_connection(("127.0.0.1", port))
    s2.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"prompt\"")
    stop = threading.Event()

    def trickle():
        while not stop.wait(0.5):
            s1.sendall(b"X-Slow: y\r\n")
            s2.sendall(b" ")

    t = threading.Thread(target=trickle)
    t.start()
    try:
        st, _, data = request(port, "POST", "/v1/completions",
                              {"prompt": "ROMEO:", "max_tokens": 8, "temperature": 0}, timeout=600)
    finally:
        stop.set()
        t.join()
    case("two trickling clients do not hold up a third", st == 200, f"{st} {data[:200]!r}")
    closed = []
    for s in (s1, s2):
        s.settimeout(600)
        try:
            closed.append(s.recv(1024) == b"")  # the server closed the idle connection
        except (socket.timeout, ConnectionResetError) as x:
            closed.append(isinstance(x, ConnectionResetError))
        s.close()
    case("stalled connections are closed after --timeout", all(closed), closed)
    # a client that goes away in the middle of a stream
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("POST", "/v1/completions", json.dumps({"prompt": "ROMEO:", "max_tokens": 100, "stream": True}),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    r.readline()
    c.close()
    st, _, _ = request(port, "POST", "/v1/completions", {"prompt": "ROMEO:", "max_tokens": 4})
    case("a client that hangs up mid-stream does not disturb the next", st == 200)


def check_queue_full():
    """One slot and a queue of one, with the engine held (the test build's
    GPT_TEST_SERVE_HOLD: requests are admitted, nothing is decoded until
    SIGUSR1), so what each request gets does not depend on timing: the first
    takes the slot, the second waits, the next four get 503 with
    Retry-After; once released, the two complete with the greedy text."""
    test_bin = os.environ.get("GPT_TEST_BIN")
    if not test_bin or not os.path.exists(test_bin):
        case("a test build of gpt (GPT_TEST_BIN) for the full-queue check", False, test_bin)
        return
    srv = Server("--slots", "1", "--max-queue", "1", "-t", "1", log="queue.log", binary=test_bin,
                 env={"GPT_TEST_SERVE_HOLD": "1"})
    body = {"prompt": "ROMEO:", "max_tokens": 40, "temperature": 0}
    results = {}

    def go(i):
        try:
            results[i] = request(srv.port, "POST", "/v1/completions", body)
        except Exception as x:  # noqa: BLE001
            results[i] = (f"{type(x).__name__}: {x}", {}, b"")

    def health():
        return json.loads(request(srv.port, "GET", "/health")[2])

    def wait_for(running, waiting):
        # a state to reach, not a time: the engine is held, so it stays (a
        # request that completes meanwhile means it was not held: give up)
        while srv.p.poll() is None and not any(i in results for i in range(running + waiting)):
            h = health()
            if (h["running"], h["waiting"]) == (running, waiting):
                return True
            time.sleep(0.02)
        return False

    want = generate_text("ROMEO:", 40)
    try:
        ts = [threading.Thread(target=go, args=(0,))]
        ts[0].start()
        first = wait_for(1, 0)
        ts.append(threading.Thread(target=go, args=(1,)))
        ts[1].start()
        second = wait_for(1, 1)
        more = [threading.Thread(target=go, args=(i,)) for i in range(2, 6)]
        for t in more:
            t.start()
        for t in more:
            t.join()
        ts += more
        case("held engine: the first request runs, the second waits", first and second, health())
        busy = [results[i] for i in range(2, 6)]
        ok503 = all(r[0] == 503 and r[1].get("retry-after") == "1" and json.loads(r[2])["error"]["message"]
                    and json.loads(r[2])["error"]["code"] == "overloaded" for r in busy)
        case("a full queue answers 503 with Retry-After and an OpenAI-style error",
             ok503, [(r[0], r[1].get("retry-after"), r[2][:200]) for r in busy])
        srv.p.send_signal(signal.SIGUSR1)  # release the engine
        for t in ts[:2]:
            t.join()
        done = [results[0], results[1]]
        texts = [json.loads(r[2])["choices"][0]["text"] if r[0] == 200 else r for r in done]
        case("released, the running and the waiting request complete with the greedy text",
             texts == [want, want], texts)
    finally:
        rc = srv.stop()
    case("that server exits 0 on SIGTERM", rc == 0, srv.died_detail(rc))


def check_load(srv):
    """64 concurrent clients, 500 requests (some streamed): every answer is
    the one the same request gets alone, none is lost, and the server's
    memory does not grow with the number of requests."""
    port = srv.port
    prompts = ["ROMEO:", "JULIET:\n", "First Citizen:", "All:\nSpeak", "KING", "O", "What is", "Go"]
    lengths = [8, 13, 21, 5, 30]
    ref = {}
    for p in prompts:
        for n in lengths:
            st, _, data = request(port, "POST", "/v1/completions", {"prompt": p, "max_tokens": n, "temperature": 0})
            ref[p, n] = json.loads(data)["choices"][0]["text"]
    errors, got, lock = [], [0], threading.Lock()
    total, nclients = 500, 64
    counter = iter(range(total))
    rss_mid = [0]

    def client_loop():
        c = openai_client(port)
        while True:
            with lock:
                i = next(counter, None)
                if i == 250:
                    rss_mid[0] = srv.rss_kb()
            if i is None:
                return
            p, n = prompts[i % len(prompts)], lengths[(i // len(prompts)) % len(lengths)]
            try:
                if i % 5 == 0:
                    text = "".join(ch.choices[0].text for ch in c.completions.create(
                        model=NAME, prompt=p, max_tokens=n, temperature=0, stream=True))
                else:
                    text = c.completions.create(model=NAME, prompt=p, max_tokens=n, temperature=0).choices[0].text
                if text != ref[p, n]:
                    raise ValueError(f"request {i}: {text!r} != {ref[p, n]!r}")
                with lock:
                    got[0] += 1
            except Exception as x:  # noqa: BLE001
                with lock:
                    errors.append(f"{type(x).__name__}: {x}")

    rss0 = srv.rss_kb()
    t0 = time.time()
    threads = [threading.Thread(target=client_loop) for _ in range(nclients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.time() - t0
    rss1 = srv.rss_kb()
    case(f"load: {nclients} clients, {total} requests in {dt:.1f} s: all answered, each equal to "
         "the request alone", got[0] == total and not errors, f"{got[0]} ok; {errors[:3]}")
    # Memory: allowed to settle during the first half (thread stacks, malloc
    # arenas, buffers at their high-water mark), then flat: the second 250
    # requests may add at most 8 MB (the same requests again would need
    # ~250 x 16 KB = 4 MB if every response leaked its buffers).
    print(f"     RSS {rss0} KB before, {rss_mid[0]} KB half way, {rss1} KB after", flush=True)
    if srv.sanitized():
        print("     (AddressSanitizer build: leaks are checked at exit instead)", flush=True)
    else:
        case("load: server RSS flat over the second half of the requests",
             rss1 - rss_mid[0] < 8192, f"RSS {rss0} KB before, {rss_mid[0]} KB half way, {rss1} KB after")


def check_drain(srv):
    """SIGTERM with a stream in flight: the stream finishes with [DONE], new
    connections are refused, and the server exits 0."""
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=600)
    c.request("POST", "/v1/completions",
              json.dumps({"prompt": "ROMEO:", "max_tokens": 100, "temperature": 0, "stream": True}),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    first = r.readline()
    srv.p.send_signal(signal.SIGTERM)
    t0 = time.time()
    while "no new connections" not in srv.text_log() and time.time() - t0 < 600:
        time.sleep(0.05)
    refused = False
    try:
        request(srv.port, "GET", "/health", timeout=5)
    except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
        refused = True
    rest = r.read().decode()
    c.close()
    text = ""
    for line in (first.decode() + rest).splitlines():
        if line.startswith("data: {"):
            text += json.loads(line[6:])["choices"][0]["text"]
    rc = srv.stop()
    case("SIGTERM: the stream in flight completes with [DONE]",
         rest.rstrip().endswith("data: [DONE]") and len(text.encode()) == 100, rest[-200:])
    case("SIGTERM: new connections are refused while draining", refused)
    case("SIGTERM: the server exits 0 after draining", rc == 0, srv.text_log()[-400:])
    log = srv.text_log()
    case("the server's log has no sanitizer report (leaks included) after the whole suite",
         "Sanitizer" not in log and "runtime error" not in log, log[-1500:])


def main():
    try:
        import openai  # noqa: F401
    except ImportError:
        case("the openai Python client is installed (pip install openai)", False)
        print(f"{passed} passed, {failed} failed")
        return 1
    # greedy chunks of 3 steps: stop strings and lengths that end a sequence
    # inside a chunk, and joins between chunks, are part of every check
    # The default idle timeout (60 s): the openai client keeps its
    # connection open between requests, and a server that closes it just as
    # the next request goes out (here after a `gpt generate` run as long as
    # a short --timeout) fails that request with "Connection error". Only
    # the slow-client check, on a server of its own, needs a short one.
    srv = Server("--slots", "8", "-t", "2", "--decode-chunk", "3")
    try:
        for check in (check_basics, check_completions, check_seeds, check_logprobs, check_errors,
                      check_load):
            try:
                check(srv if check is check_load else srv.port)
            except Exception as x:  # noqa: BLE001
                case(f"{check.__name__} ran to the end", False, f"{type(x).__name__}: {x}")
            if srv.p.poll() is not None:
                # every later check would fail for this one reason: say it, whole
                case(f"the server is still running after {check.__name__}", False)
                print("     " + srv.died_detail().replace("\n", "\n     "), flush=True)
                break
        else:
            check_drain(srv)
    finally:
        if srv.p.poll() is None:
            srv.stop(signal.SIGKILL)
    try:
        slow = Server("--slots", "2", "--timeout", "2", "-t", "1", log="slow.log")
        try:
            check_slow_clients(slow.port)
        finally:
            rc = slow.stop()
        case("the slow clients' server exits 0 on SIGTERM", rc == 0, slow.died_detail(rc))
    except Exception as x:  # noqa: BLE001
        case("check_slow_clients ran to the end", False, f"{type(x).__name__}: {x}")
    try:
        check_queue_full()
    except Exception as x:  # noqa: BLE001
        case("check_queue_full ran to the end", False, f"{type(x).__name__}: {x}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
