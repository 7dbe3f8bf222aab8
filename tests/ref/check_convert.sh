#!/usr/bin/env bash
# tests/ref/check_convert.sh - checks, where Python with torch and
# transformers is installed (not on CI), that Hugging Face's
# GPT2LMHeadModel.from_pretrained loads what `gpt convert` writes and
# computes what our engine computes: a trained checkpoint is converted, then
# transformers' loss and greedy continuation are compared with
# `gpt eval --tokens` and `gpt generate --temperature 0 --format ids`.
#
#   PYTHON=/path/to/python bash tests/ref/check_convert.sh   (after make)
set -eu
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
GPT=${GPT_BIN:-build/gpt}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$GPT" train --data data/tinyshakespeare.txt --tokenizer bytes --layers 2 --heads 4 --channels 64 \
    --max-seq 64 -B 4 -T 64 --steps 30 --sample 0 --out "$tmp/run" --threads 2 2>/dev/null
"$GPT" convert --model "$tmp/run/model.ckpt" --out "$tmp/hf" >/dev/null
toks="70,105,114,115,116,32,67,105,116,105,122,101,110,58,10,66,101,102,111,114,101"
"$GPT" eval --model "$tmp/run/model.ckpt" --tokens "$toks" > "$tmp/eval.json"
"$GPT" generate --model "$tmp/run/model.ckpt" --prompt-tokens "$toks" -n 24 --temperature 0 \
    --format ids > "$tmp/gen.json" 2>/dev/null
"$PY" - "$tmp/hf" "$toks" "$tmp/eval.json" "$tmp/gen.json" <<'PY'
import json, sys, torch, transformers
from transformers import GPT2LMHeadModel
d, toks, ev, gen = sys.argv[1], [int(t) for t in sys.argv[2].split(",")], sys.argv[3], sys.argv[4]
m = GPT2LMHeadModel.from_pretrained(d, attn_implementation="eager").eval()
x = torch.tensor([toks])
with torch.no_grad():
    loss = m(x, labels=x).loss.item()
    out = m.generate(x, max_new_tokens=24, do_sample=False, pad_token_id=0)[0, len(toks):].tolist()
ours_loss, ours_ids = json.load(open(ev))["loss"], json.load(open(gen))
tied = m.lm_head.weight.data_ptr() == m.transformer.wte.weight.data_ptr()
ok = abs(loss - ours_loss) <= 1e-5 * abs(loss) and out == ours_ids and tied
print(f"transformers {transformers.__version__}, torch {torch.__version__}: loss {loss:.6f} vs ours "
      f"{ours_loss:.6f}; greedy ids {'equal' if out == ours_ids else 'DIFFER'}; lm_head tied: {tied}")
sys.exit(0 if ok else 1)
PY
echo "check_convert: transformers loads gpt convert's folder and agrees"
