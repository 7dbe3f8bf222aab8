#!/usr/bin/env bash
# tests/test_build_variants.sh - the test build's checks stay out of the
# production build: build/gpt and libgpt.a hold no trace of the early-input
# checker (src/backend_check.c, compiled only with -DGPT_TEST_BUILD), while
# gpt-test and libgpt_test.a, which the tests use, do.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
B=${GPT_BUILD:-build}
TB=${GPT_TEST_BIN:-$B/gpt-test}
has() { grep -q -a "$1" "$2"; }

case_begin "production build/gpt and libgpt.a have no early-input checker"
check "libgpt.a exists" test -f "$B/libgpt.a"
check "libgpt.a has no gpt_backend_check_wrap" eval '! has gpt_backend_check_wrap "$B/libgpt.a"'
check "gpt has no checker message" eval '! has "early input: " "$GPT"'
case_end

# Issue 13: the write-failure hook used to work in the production binary.
case_begin "fault injection (GPT_TEST_FAIL_WRITE_AFTER, GPT_TEST_INJECT_NAN_AT) only in gpt-test"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf 'hello hostile world\n' >"$tmp/t.txt"
check "gpt knows no GPT_TEST_ variable" eval '! has GPT_TEST_ "$GPT"'
check "libgpt.a knows no GPT_TEST_ variable" eval '! has GPT_TEST_FAIL_WRITE_AFTER "$B/libgpt.a"'
check "gpt ignores GPT_TEST_FAIL_WRITE_AFTER=0" eval 'GPT_TEST_FAIL_WRITE_AFTER=0 "$GPT" tokenize --tokenizer bytes --input "$tmp/t.txt" --out "$tmp/p" >/dev/null 2>&1'
check "gpt-test fails the write under GPT_TEST_FAIL_WRITE_AFTER=0" eval '! GPT_TEST_FAIL_WRITE_AFTER=0 "$TB" tokenize --tokenizer bytes --input "$tmp/t.txt" --out "$tmp/q" >/dev/null 2>&1'
case_end

case_begin "the test build (libgpt_test.a, gpt-test) has it"
check "libgpt_test.a has gpt_backend_check_wrap" has gpt_backend_check_wrap "$B/libgpt_test.a"
check "gpt-test has the checker message" has "early input: " "$TB"
check "gpt-test runs" eval '"$TB" info --preset tiny >/dev/null 2>&1'
case_end
summary
