#!/usr/bin/env bash
# test_hostile_paths.sh - every command that writes files, against hostile
# output paths (issue 13): the output folder is a regular file, an output
# file is a FIFO or a symbolic link to a file elsewhere, the folder is
# read-only, the disk is full (injected: GPT_TEST_FAIL_WRITE_AFTER, which
# only the test build, gpt-test, has).
#
# Commands: gpt train (--out DIR: model.ckpt, metrics.jsonl, loss.svg),
# gpt convert (--out DIR: model.safetensors, config.json), gpt tokenize
# --out PREFIX (PREFIX_train.bin, PREFIX_val.bin), gpt tokenizer train
# --out FILE. Each row starts from a folder holding the command's previous
# outputs and checks: exit 1 or 2 under a time limit (a FIFO must not make
# it wait), one line on stderr, nothing on stdout, nothing outside the
# output folder changed (the link's target, the files and names beside the
# folder), the old outputs byte-identical, no temporary file left.
#
# One line: gpt train's full-disk row fails at its first checkpoint, after
# its progress lines; there the check is one error line and it is the last.
#
# A read-only folder does not stop root, and CI runs as root. There the
# folder is made immutable (chattr +i: no entry may be created, removed or
# renamed in it, whoever asks), which ext4, xfs and btrfs support; where
# chattr cannot (tmpfs, overlayfs), the output goes under /sys, a file
# system that refuses new files to root too (without old outputs to keep).
# As another user, chmod a-w does it.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
GPT=${GPT_BIN:-build/gpt}
GPT_TEST=${GPT_TEST_BIN:-build/gpt-test}
tmp=$(mktemp -d /tmp/gpt-test-paths-XXXXXX)
immutable=""
cleanup() {
    for d in $immutable; do chattr -i "$d" 2>/dev/null; done
    chmod -R u+w "$tmp" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
head -c 3000 data/tinyshakespeare.txt >"$tmp/small.txt"
mkdir "$tmp/outside"
printf 'precious' >"$tmp/outside/victim"
: >"$tmp/stdout"; : >"$tmp/err" # made now: the snapshots below see $tmp's own time

tail -c 3000 data/tinyshakespeare.txt >"$tmp/old.txt"
TRAIN="--tokenizer bytes --layers 1 --heads 2 --channels 16 --max-seq 16 -T 16 -B 2 --eval-every 1000 --eval-batches 1 --sample 0 --threads 1"
# run CMD BIN OUT [old]: the command writing to OUT (a folder for train and
# convert; the folder of its outputs for tokenize and tokenizer). "old"
# makes different outputs from different inputs, so that a row can tell
# old outputs from new ones.
run() {
    local cmd=$1 bin=$2 out=$3 old=${4:-} text=$tmp/small.txt steps=2 model=$tmp/src.ckpt
    [ -n "$old" ] && text=$tmp/old.txt steps=1 model=$tmp/old.ckpt
    case $cmd in
    train) "$bin" train $TRAIN --data "$text" --steps $steps --out "$out" ;;
    convert) "$bin" convert --model "$model" --out "$out" ;;
    tokenize) "$bin" tokenize --tokenizer bytes --input "$text" --out "$out/s" ;;
    tokenizer) "$bin" tokenizer train --input "$text" --vocab-size 300 --out "$out/v.tok" -q ;;
    esac
}
outputs() {
    case $1 in
    train) echo "model.ckpt metrics.jsonl loss.svg" ;;
    convert) echo "model.safetensors config.json" ;;
    tokenize) echo "s_train.bin s_val.bin" ;;
    tokenizer) echo "v.tok" ;;
    esac
}

# Each command's outputs, made once and kept as the "old outputs".
"$GPT" train $TRAIN --data "$tmp/small.txt" --steps 2 --out "$tmp/srcrun" >/dev/null 2>&1 &&
    cp "$tmp/srcrun/model.ckpt" "$tmp/src.ckpt"
"$GPT" train $TRAIN --data "$tmp/old.txt" --steps 1 --out "$tmp/oldrun" >/dev/null 2>&1 &&
    cp "$tmp/oldrun/model.ckpt" "$tmp/old.ckpt"
rm -rf "$tmp/srcrun" "$tmp/oldrun"
for c in train convert tokenize tokenizer; do
    mkdir -p "$tmp/pristine/$c"
    run $c "$GPT" "$tmp/pristine/$c" old >/dev/null 2>"$tmp/err" ||
        { echo "cannot make $c's outputs: $(cat "$tmp/err")"; echo "0 passed, 1 failed"; exit 1; }
done

# What is outside the output folder: every path under $tmp but out/, with
# its size and modification time.
snapshot() { find "$tmp" -path "$tmp/out" -prune -o -path "$tmp/err" -prune -o -path "$tmp/stdout" -prune -o -printf '%p %s %T@\n' | sort; }

# How to make a folder read-only here (see the header).
ro_method=chmod
if [ "$(id -u)" = 0 ]; then
    mkdir "$tmp/probe"
    if chattr +i "$tmp/probe" 2>/dev/null; then ro_method=chattr; chattr -i "$tmp/probe"
    else ro_method=sysfs; fi
    rmdir "$tmp/probe"
fi

# row CMD KIND
row() {
    local cmd=$1 kind=$2 out="$tmp/out" bin=$GPT first
    first=$(outputs "$cmd" | cut -d' ' -f1)
    rm -rf "$out"
    cp -a "$tmp/pristine/$cmd" "$out"
    case_begin "$cmd: $kind"
    local target=$out env=""
    case $kind in
    "output folder is a file")
        rm -rf "$out"; printf 'x' >"$out" ;;
    "an output is a FIFO")
        rm -f "$out/$first"; mkfifo "$out/$first" ;;
    "an output is a link to a file elsewhere")
        rm -f "$out/$first"; ln -s "$tmp/outside/victim" "$out/$first" ;;
    "read-only folder"*)
        case $ro_method in
        chmod) chmod a-w "$out" ;;
        chattr) chattr +i "$out"; immutable="$immutable $out" ;;
        sysfs) target=/sys/gpt-test-out ;;
        esac ;;
    "full disk"*)
        bin=$GPT_TEST
        env="GPT_TEST_FAIL_WRITE_AFTER=${kind##* }" ;;
    esac
    local before
    before=$(snapshot)
    env $env timeout 60 bash -c "$(declare -f run); TRAIN='$TRAIN' tmp='$tmp' run $cmd '$bin' '$target'" \
        >"$tmp/stdout" 2>"$tmp/err"
    local rc=$?
    check "exit $rc, expected 1 or 2 (124: it hung): $(head -c 300 "$tmp/err")" [ "$rc" = 1 -o "$rc" = 2 ]
    if [ "$cmd" = train ] && [ "${kind%% *}" = full ]; then
        check "not one error line: $(cat "$tmp/err")" [ "$(grep -c 'No space left on device' "$tmp/err")" = 1 ]
        check "the error is not the last line" eval 'tail -n 1 "$tmp/err" | grep -q "No space left on device"'
    else
        check "not one line on stderr: $(cat "$tmp/err")" [ "$(wc -l <"$tmp/err")" = 1 ]
    fi
    check "the line does not name the command" eval 'grep -q "^gpt $cmd" "$tmp/err" || grep -q "^gpt tokenizer" "$tmp/err"'
    check "stdout is not empty: $(head -c 200 "$tmp/stdout")" [ ! -s "$tmp/stdout" ]
    check "something outside the output folder changed" [ "$before" = "$(snapshot)" ]
    check "the link's target changed" eval '[ "$(cat "$tmp/outside/victim")" = precious ]'
    [ "$ro_method" = chattr ] && [ "${kind%% *}" = read-only ] && chattr -i "$out"
    case $kind in
    "output folder is a file")
        check "the file in the folder's place changed" eval '[ -f "$out" ] && [ "$(cat "$out")" = x ]' ;;
    *)
        if [ "$target" = "$out" ]; then
            for f in $(outputs "$cmd"); do
                if [ "$f" = "$first" ] && [ "${kind#an output is a FIFO}" != "$kind" ]; then
                    check "$f is no longer the FIFO" [ -p "$out/$f" ]
                elif [ "$f" = "$first" ] && [ "${kind#an output is a link}" != "$kind" ]; then
                    check "$f is no longer the link" [ -L "$out/$f" ]
                else
                    check "old $f changed" cmp -s "$out/$f" "$tmp/pristine/$cmd/$f"
                fi
            done
            check "temporary files left: $(ls "$out")" [ -z "$(ls "$out" | grep '\.tmp\.')" ]
        fi ;;
    esac
    case_end
}

for c in train convert tokenize tokenizer; do
    row $c "output folder is a file"
    row $c "an output is a FIFO"
    row $c "an output is a link to a file elsewhere"
    row $c "read-only folder ($ro_method)"
    row $c "full disk at 0"
done
# A disk that fills in the middle: of the first file written, or of the
# second (after all of the first: model.safetensors, PREFIX_train.bin).
st_size=$(wc -c <"$tmp/pristine/convert/model.safetensors")
train_size=$(wc -c <"$tmp/pristine/tokenize/s_train.bin")
row convert "full disk after 2000"
row convert "full disk after $((st_size + 10))"
row tokenize "full disk after 3000"
row tokenize "full disk after $((train_size + 10))"
row train "full disk after 50000"

# Issue 13, defect 2: a folder at loss.svg's temporary name (the pid is the
# shell's, which exec keeps) made gpt train free its paths twice after
# training. The plot is a nicety: a warning, the run succeeds.
case_begin "train: a folder at loss.svg's temporary name: one warning, exit 0, no crash"
rm -rf "$tmp/out"; mkdir "$tmp/out"
bash -c "mkdir '$tmp/out/loss.svg.tmp.'\$\$; exec '$GPT' train $TRAIN --data '$tmp/small.txt' --steps 2 --out '$tmp/out'" >/dev/null 2>"$tmp/err"; rc=$?
check "exit $rc: $(tail -3 "$tmp/err")" [ "$rc" = 0 ]
check "no warning naming loss.svg: $(cat "$tmp/err")" grep -q "warning: cannot create '$tmp/out/loss.svg'" "$tmp/err"
check "the checkpoint does not load" "$GPT" info --model "$tmp/out/model.ckpt" >/dev/null 2>&1
case_end
summary
