#!/usr/bin/env bash
# tests/ref/make_serve_fixture.sh - makes tests/data/serve_tiny, the model the
# `gpt serve` tests run: a 2-layer, 64-channel byte-level GPT trained for 150
# steps on Tiny Shakespeare (loss ~2.8 nats/char: it writes words, spaces and
# newlines, so stop strings and sampling have something to act on), written
# as a Hugging Face folder (config.json + model.safetensors, ~0.5 MB; serve
# it with --tokenizer bytes).
#
#   bash tests/ref/make_serve_fixture.sh     (after make; takes a minute or two)
set -eu
cd "$(dirname "$0")/../.."
GPT=${GPT_BIN:-build/gpt}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$GPT" train --data data/tinyshakespeare.txt --tokenizer bytes --layers 2 --heads 4 \
    --channels 64 --max-seq 128 -B 8 -T 64 --steps 150 --lr 3e-3 --warmup 10 \
    --eval-every 1000 --eval-batches 1 --sample 0 --out "$tmp/run" --threads 2
rm -rf tests/data/serve_tiny
"$GPT" convert --model "$tmp/run/model.ckpt" --out tests/data/serve_tiny
ls -la tests/data/serve_tiny
