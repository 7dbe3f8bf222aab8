#!/usr/bin/env python3
"""bench/serve_load.py - concurrent clients against an OpenAI-style
/v1/completions server; prints one JSON line.

Each of --clients threads keeps one HTTP connection and sends greedy
requests (--max-tokens new tokens each, ignore_eos so every answer has
exactly that many) one after another:
  --requests R   each client sends R requests; all must complete
  --seconds S    clients send until S seconds have passed; requests still
                 running then are abandoned (connections closed) and not
                 counted. For servers that answer one request at a time.
Throughput = completion tokens of completed requests / wall time from the
first request to the last completion. Every answer must carry
--max-tokens completion tokens, and all answers to the same prompt must be
the same text (greedy): a mismatch is counted in "errors".

usage: serve_load.py --port P --clients C (--requests R | --seconds S)
                     [--max-tokens 128] [--prompt TEXT] [--model NAME]
"""
import argparse
import http.client
import json
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--clients", type=int, required=True)
    ap.add_argument("--requests", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=0)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--prompt", default="The quick brown fox jumps over the lazy dog. Once upon a time,")
    ap.add_argument("--model", default=None)
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    body = {"prompt": a.prompt, "max_tokens": a.max_tokens, "temperature": 0, "ignore_eos": True}
    if a.model:
        body["model"] = a.model
    body = json.dumps(body)
    lock = threading.Lock()
    lat, texts, errors, tokens = [], {}, [], [0]
    first, last = [None], [0.0]
    deadline = [None]
    conns = []

    def one(c):
        t0 = time.time()
        with lock:
            if first[0] is None:
                first[0] = t0
        c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        t1 = time.time()
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {data[:200]!r}")
        j = json.loads(data)
        n = j["usage"]["completion_tokens"]
        if n != a.max_tokens:
            raise RuntimeError(f"{n} completion tokens, want {a.max_tokens}")
        if deadline[0] and t1 > deadline[0]:
            return
        with lock:
            lat.append(t1 - t0)
            tokens[0] += n
            last[0] = max(last[0], t1)
            texts.setdefault(j["choices"][0]["text"], 0)
            texts[j["choices"][0]["text"]] += 1

    def client():
        c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=3600)
        with lock:
            conns.append(c)
        k = 0
        while True:
            if a.requests and k >= a.requests:
                break
            if deadline[0] and time.time() >= deadline[0]:
                break
            try:
                one(c)
            except Exception as x:  # noqa: BLE001
                if deadline[0] and time.time() >= deadline[0]:
                    break
                with lock:
                    errors.append(f"{type(x).__name__}: {x}")
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=3600)
            k += 1
        c.close()

    if a.seconds:
        deadline[0] = time.time() + a.seconds
    ts = [threading.Thread(target=client, daemon=True) for _ in range(a.clients)]
    for t in ts:
        t.start()
    if a.seconds:
        # abandon what is still running at the deadline
        while time.time() < deadline[0] and any(t.is_alive() for t in ts):
            time.sleep(0.2)
        with lock:
            for c in conns:
                try:
                    c.sock and c.sock.shutdown(2)
                except OSError:
                    pass
        for t in ts:
            t.join(5)
    else:
        for t in ts:
            t.join()
    wall = (last[0] - first[0]) if lat else 0.0
    if len(texts) > 1:
        errors.append(f"{len(texts)} different greedy answers to one prompt")
    lat.sort()
    out = dict(label=a.label, clients=a.clients, requests=len(lat), tokens=tokens[0], wall_s=round(wall, 2),
               tok_s=round(tokens[0] / wall, 1) if wall > 0 else 0.0,
               p50_s=round(lat[len(lat) // 2], 2) if lat else None,
               p90_s=round(lat[int(len(lat) * 0.9)], 2) if lat else None,
               errors=len(errors), first_error=errors[0] if errors else None)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
