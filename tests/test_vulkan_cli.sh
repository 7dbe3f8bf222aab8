#!/usr/bin/env bash
# The Vulkan backend through the gpt command (when it is built and a
# Vulkan device exists; lavapipe in CI), and the Khronos validation layer
# over the op tests and a training step (GPT_VULKAN_VALIDATE=1: the backend
# turns the layer's first message into its error, so the run fails with it
# and a zero exit means the layer said nothing). Without the backend:
# nothing to test.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if ! "$GPT" info 2>/dev/null | grep -q "^  vulkan "; then
    if [ "${GPT_REQUIRE_VULKAN:-0}" = 1 ]; then
        case_begin "the build has the Vulkan backend and a device"; check "gpt info: no vulkan device" false; case_end
    else
        echo "no Vulkan backend or device in this build: nothing to test"
    fi
    summary; exit
fi
D=data/tinyshakespeare.txt
SMALL="--tokenizer bytes --layers 2 --heads 4 --channels 64 --max-seq 64 -B 4 -T 64 --sample 0"

case_begin "gpt info names the Vulkan device, its driver and its paths"
run_gpt "$tmp/o" "$tmp/e" info
check "no vulkan line: $(cat "$tmp/o")" grep -qE "^  vulkan .*\(Vulkan [0-9.]+, .*(fp16|fp32).*(cooperative-matrix|tiled)" "$tmp/o"
case_end

case_begin "bad Vulkan devices are refused with a one-line message"
run_gpt "$tmp/o" "$tmp/e" train --data $D $SMALL --steps 1 --device vulkan:99 --out "$tmp/r0"; rc=$?
check "exit $rc" [ "$rc" = 2 ]
check "message: $(cat "$tmp/e")" grep -q "vulkan:99" "$tmp/e"
run_gpt "$tmp/o" "$tmp/e" train --data $D $SMALL --steps 1 --device vulkan:x --out "$tmp/r0"; rc=$?
check "exit $rc (vulkan:x)" [ "$rc" = 2 ]
run_gpt "$tmp/o" "$tmp/e" train --data $D $SMALL --steps 1 --device vulkan --precision bf16 --out "$tmp/r0"; rc=$?
check "bf16 on vulkan: exit $rc" [ "$rc" = 2 ]
case_end

case_begin "--profile (timestamp queries) and --check on Vulkan"
run_gpt "$tmp/op" "$tmp/ep" train --data $D $SMALL --steps 2 --device vulkan --profile --out "$tmp/rp"; rc=$?
check "profile exit $rc: $(tail -3 "$tmp/ep")" [ "$rc" = 0 ]
check "no profile table: $(tail -5 "$tmp/ep")" grep -qE "matmul_forward.* [0-9]+\.[0-9]+ " "$tmp/ep" "$tmp/op"
run_gpt "$tmp/oc" "$tmp/ec" train --data $D $SMALL --steps 2 --device vulkan --check --out "$tmp/rc"; rc=$?
check "check exit $rc: $(tail -3 "$tmp/ec")" [ "$rc" = 0 ]
case_end

case_begin "GPT_VULKAN_TRACE: a timestamp per dispatch, graphs included"
GPT_VULKAN_TRACE="$tmp/trace" run_gpt "$tmp/ot" "$tmp/et" train --data $D $SMALL --steps 3 --device vulkan --out "$tmp/rt"; rc=$?
check "trace exit $rc: $(tail -3 "$tmp/et")" [ "$rc" = 0 ]
# steps 2 and 3 replay the recorded step: its products must be in the trace,
# and every interval is a dispatch that ran (a positive time)
check "no replayed product: $(head -3 "$tmp/trace")" grep -qE "^[0-9]+ [0-9]+ matmul" "$tmp/trace"
check "an interval <= 0: $(awk '!/^#/ && $10 <= 0' "$tmp/trace" | head -2)" \
    awk '!/^#/ { n++; if ($10 <= 0) exit 1 } END { exit n < 20 }' "$tmp/trace"
check "summary: $(python3 bench/vk_trace.py "$tmp/trace" 2>&1 | tail -2)" \
    sh -c "python3 bench/vk_trace.py '$tmp/trace' | grep -qE '^graph [0-9]+: [0-9]+ dispatches'"
case_end

case_begin "train and generate on Vulkan under the validation layer: no message"
export GPT_VULKAN_VALIDATE=1
run_gpt "$tmp/o1" "$tmp/e1" train --data $D $SMALL --steps 3 --device vulkan --out "$tmp/r1"; rc=$?
check "train exit $rc: $(tail -3 "$tmp/e1")" [ "$rc" = 0 ]
check "not on vulkan: $(grep -m1 device "$tmp/e1")" grep -q "device vulkan" "$tmp/e1"
run_gpt "$tmp/o2" "$tmp/e2" generate --model "$tmp/r1/model.ckpt" --prompt "To be" -n 8 --device vulkan; rc=$?
check "generate exit $rc: $(tail -3 "$tmp/e2")" [ "$rc" = 0 ]
case_end

case_begin "the fp16 op tests under the validation layer: no message"
if [ -x "$GPT_BUILD/tests/vulkan/test_vulkan_ops" ]; then
    GPT_TEST_CONFIGS=vulkan-fp16 timeout 900 "$GPT_BUILD/tests/vulkan/test_vulkan_ops" >"$tmp/o3" 2>"$tmp/e3"; rc=$?
    check "op tests exit $rc: $(grep -m3 FAIL "$tmp/o3")" [ "$rc" = 0 ]
else
    check "no $GPT_BUILD/tests/vulkan/test_vulkan_ops" false
fi
case_end
unset GPT_VULKAN_VALIDATE
summary
