#!/usr/bin/env python3
"""bench/peer_hf_serve.py - the peer for bench/serve.sh: transformers'
text-generation pipeline behind a minimal OpenAI-style /v1/completions,
served sequentially (Python's single-threaded HTTPServer: one request at a
time, as a pipeline answers them), greedy, exactly max_tokens new tokens
when ignore_eos is set. Prints "listening on http://127.0.0.1:PORT" on
standard error once the model is loaded.

usage: peer_hf_serve.py --model DIR [--port 0] [--device cpu|cuda] [--dtype float32|bfloat16]
"""
import argparse
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import torch
from transformers import pipeline


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    a = ap.parse_args()
    try:
        pipe = pipeline("text-generation", model=a.model, device=a.device, dtype=getattr(torch, a.dtype))
    except TypeError:  # transformers before 4.56 names it torch_dtype
        pipe = pipeline("text-generation", model=a.model, device=a.device, torch_dtype=getattr(torch, a.dtype))
    tok = pipe.tokenizer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            n = int(self.headers.get("Content-Length", 0))
            req = json.loads(self.rfile.read(n))
            m = int(req.get("max_tokens", 16))
            kw = dict(max_new_tokens=m, do_sample=False, return_full_text=False, pad_token_id=tok.eos_token_id)
            if req.get("ignore_eos"):
                kw["min_new_tokens"] = m
            with torch.inference_mode():
                text = pipe(req["prompt"], **kw)[0]["generated_text"]
            p = len(tok(req["prompt"])["input_ids"])
            body = json.dumps(dict(id="peer", object="text_completion", created=int(time.time()), model=a.model,
                                   choices=[dict(text=text, index=0, logprobs=None, finish_reason="length")],
                                   usage=dict(prompt_tokens=p, completion_tokens=m, total_tokens=p + m))).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = HTTPServer(("127.0.0.1", a.port), Handler)
    print(f"peer: listening on http://127.0.0.1:{srv.server_address[1]}", file=sys.stderr, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
