#!/usr/bin/env bash
# A short training run (GPT-2 tokenizer, evaluation, checkpoints, a resume,
# a sample) and a generation run under valgrind's memcheck: no invalid
# read or write, no use of uninitialised memory, no leak
# (--leak-check=full, --error-exitcode=1; tests/valgrind.supp says why each
# suppression is there). Valgrind cannot run AVX-512 code, so the gpt
# command is built without -march=native into build-valgrind/ first (make
# builds it once; later runs only check it is up to date), and without the
# Vulkan backend: "auto" would load the Vulkan loader and every installed
# driver to look for a GPU, and their own reads are not ours to check.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
VG="valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,possible --suppressions=tests/valgrind.supp"
G=build-valgrind/gpt

case_begin "valgrind is installed and gpt builds without -march=native"
check "valgrind not found (apt-get install valgrind)" command -v valgrind >/dev/null
# Not the flags of a calling make (make SAN=1 test would pass SAN=1 down).
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s SAN=0 CUDA=0 VULKAN=0 NATIVE=0 BUILD=build-valgrind "$G" \
    >"$tmp/make.log" 2>&1
check "build failed: $(tail -5 "$tmp/make.log")" [ -x "$G" ]
case_end

head -c 4000 data/tinyshakespeare.txt > "$tmp/text.txt"
MODEL="--layers 1 --heads 2 --channels 16 --max-seq 16 -B 2 -T 16 --threads 2"

case_begin "gpt train under memcheck: clean"
timeout 300 $VG $G train --data "$tmp/text.txt" --tokenizer gpt2 $MODEL --steps 3 --warmup 1 \
    --eval-every 2 --eval-batches 2 --save-every 1 --sample 8 --out "$tmp/run" >"$tmp/o1" 2>"$tmp/e1"; rc=$?
check "exit $rc: $(grep -A12 '==[0-9]*==' "$tmp/e1" | head -30)" [ "$rc" = 0 ]
check "no checkpoint" [ -s "$tmp/run/model.ckpt" ]
case_end

case_begin "gpt train --resume under memcheck: clean"
timeout 300 $VG $G train --data "$tmp/text.txt" --resume --out "$tmp/run" --steps 4 --threads 2 \
    --eval-batches 1 --sample 0 >"$tmp/o2" 2>"$tmp/e2"; rc=$?
check "exit $rc: $(grep -A12 '==[0-9]*==' "$tmp/e2" | head -30)" [ "$rc" = 0 ]
check "did not resume" grep -q "resumed from" "$tmp/e2"
case_end

case_begin "gpt generate under memcheck: clean"
timeout 300 $VG $G generate --model "$tmp/run/model.ckpt" --prompt "ROMEO:" -n 12 --top-k 20 \
    --top-p 0.9 --batch 2 --threads 2 >"$tmp/o3" 2>"$tmp/e3"; rc=$?
check "exit $rc: $(grep -A12 '==[0-9]*==' "$tmp/e3" | head -30)" [ "$rc" = 0 ]
check "no text" [ -s "$tmp/o3" ]
case_end
summary
