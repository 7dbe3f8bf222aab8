#!/usr/bin/env bash
# make install / uninstall into a temporary prefix: the files and their
# links, the soname, the shared library exporting exactly the public API,
# the manual page, pkg-config files, and a program (tests/install/example.c)
# built with `pkg-config --cflags --libs gpt` (shared) and gpt-static, both
# running and printing the same; DESTDIR staging; uninstall removing it all.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
BUILD=${BUILD:-build}
# The build being tested decides the make flags (make SAN=1 test runs this
# for build-san); nothing of a calling make's own flags is passed down.
flags=""
case "$BUILD" in *san*) flags="$flags SAN=1" ;; esac
case "$BUILD" in *cuda*) flags="$flags CUDA=1" ;; esac
# and VULKAN as it was built (make rebuilds everything when the flags change)
flags="$flags $(grep -o 'VULKAN=[01]' "$BUILD/.flags" 2>/dev/null | tail -n 1)"
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s $flags "$@"; }
P=$tmp/prefix
V=$(sed -n 's/^#define GPT_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' include/gpt.h | paste -sd.)
MAJOR=${V%%.*}

case_begin "make install PREFIX=... puts every file in place"
mk install PREFIX="$P" >"$tmp/install.log" 2>&1; rc=$?
check "exit $rc: $(tail -5 "$tmp/install.log")" [ "$rc" = 0 ]
for f in bin/gpt lib/libgpt.a lib/libgpt.so.$V include/gpt.h include/gpt_tokenizer.h include/gpt_data.h \
    lib/pkgconfig/gpt.pc lib/pkgconfig/gpt-static.pc share/man/man1/gpt.1; do
    check "$f missing" [ -f "$P/$f" ]
done
check "libgpt.so -> libgpt.so.$MAJOR" [ "$(readlink "$P/lib/libgpt.so")" = "libgpt.so.$MAJOR" ]
check "libgpt.so.$MAJOR -> libgpt.so.$V" [ "$(readlink "$P/lib/libgpt.so.$MAJOR")" = "libgpt.so.$V" ]
check "bin/gpt not executable" [ -x "$P/bin/gpt" ]
case_end

case_begin "the shared library: soname, and exactly the public API exported"
check "soname: $(readelf -d "$P/lib/libgpt.so.$V" | grep SONAME)" \
    grep -q "Library soname: \[libgpt.so.$MAJOR\]" <(readelf -d "$P/lib/libgpt.so.$V")
nm -D --defined-only "$P/lib/libgpt.so.$V" | awk '{print $3}' | sort >"$tmp/exported"
# every function declared in the installed headers
sed -n 's/^[a-z][^(]*[ *]\(gpt_[a-z0-9_]*\)(.*/\1/p' "$P"/include/gpt*.h | sort -u >"$tmp/declared"
check "exported but not declared: $(comm -23 "$tmp/exported" "$tmp/declared" | head -5 | tr '\n' ' ')" \
    [ -z "$(comm -23 "$tmp/exported" "$tmp/declared")" ]
check "declared but not exported: $(comm -13 "$tmp/exported" "$tmp/declared" | head -5 | tr '\n' ' ')" \
    [ -z "$(comm -13 "$tmp/exported" "$tmp/declared")" ]
check "too few functions exported ($(wc -l <"$tmp/exported"))" [ "$(wc -l <"$tmp/exported")" -gt 50 ]
case_end

case_begin "the installed gpt runs, and gpt.1 is its manual"
check "gpt --version: $("$P/bin/gpt" --version 2>&1)" [ "$("$P/bin/gpt" --version)" = "gpt $V" ]
"$P/bin/gpt" --man >"$tmp/man"
check "gpt.1 is not gpt --man" cmp -s "$tmp/man" "$P/share/man/man1/gpt.1"
check "gpt.1 lacks .TH" grep -q "^\.TH GPT 1 .*gpt $V" "$P/share/man/man1/gpt.1"
case_end

export PKG_CONFIG_PATH=$P/lib/pkgconfig
case_begin "pkg-config knows gpt and gpt-static, with this prefix and version"
check "version: $(pkg-config --modversion gpt 2>&1)" [ "$(pkg-config --modversion gpt)" = "$V" ]
check "cflags: $(pkg-config --cflags gpt)" [ "$(pkg-config --cflags gpt | sed 's/ *$//')" = "-I$P/include" ]
check "libs: $(pkg-config --libs gpt)" grep -q -- "-L$P/lib -lgpt" <(pkg-config --libs gpt)
check "static libs: $(pkg-config --libs gpt-static)" grep -q -- "$P/lib/libgpt.a .*-fopenmp" <(pkg-config --libs gpt-static)
case_end

CC=${CC:-cc}
case_begin "a program built with pkg-config --cflags --libs gpt (the shared library)"
# shellcheck disable=SC2046
$CC tests/install/example.c $(pkg-config --cflags --libs gpt) -o "$tmp/ex_shared" 2>"$tmp/cc1"; rc=$?
check "compile: $(head -5 "$tmp/cc1")" [ "$rc" = 0 ]
LD_LIBRARY_PATH=$P/lib "$tmp/ex_shared" >"$tmp/out_shared" 2>"$tmp/err_shared"; rc=$?
check "run: exit $rc $(cat "$tmp/err_shared")" [ "$rc" = 0 ]
check "it does not load libgpt.so.$MAJOR from the prefix" \
    grep -q "libgpt.so.$MAJOR => $P/lib/libgpt.so.$MAJOR" <(LD_LIBRARY_PATH=$P/lib ldd "$tmp/ex_shared")
check "version line: $(head -1 "$tmp/out_shared")" [ "$(head -1 "$tmp/out_shared")" = "version $V" ]
check "GPT-2 ids of 'Hello world': $(sed -n 2p "$tmp/out_shared")" [ "$(sed -n 2p "$tmp/out_shared")" = "tokens 15496 995" ]
case_end

case_begin "a program built with pkg-config --cflags --libs gpt-static (libgpt.a)"
# shellcheck disable=SC2046
$CC tests/install/example.c $(pkg-config --cflags --libs gpt-static) -o "$tmp/ex_static" 2>"$tmp/cc2"; rc=$?
check "compile: $(head -5 "$tmp/cc2")" [ "$rc" = 0 ]
"$tmp/ex_static" >"$tmp/out_static" 2>"$tmp/err_static"; rc=$?
check "run: exit $rc $(cat "$tmp/err_static")" [ "$rc" = 0 ]
check "it needs libgpt.so" [ "$(ldd "$tmp/ex_static" | grep -c libgpt)" = 0 ]
check "static and shared print differently: $(cat "$tmp/out_static") / $(cat "$tmp/out_shared")" \
    cmp -s "$tmp/out_static" "$tmp/out_shared"
case_end

case_begin "DESTDIR stages under DESTDIR/PREFIX, the .pc files naming PREFIX"
mk install DESTDIR="$tmp/stage" PREFIX=/opt/gpt >"$tmp/stage.log" 2>&1; rc=$?
check "exit $rc: $(tail -3 "$tmp/stage.log")" [ "$rc" = 0 ]
check "not staged" [ -f "$tmp/stage/opt/gpt/lib/libgpt.so.$V" -a -f "$tmp/stage/opt/gpt/bin/gpt" ]
check "written outside DESTDIR" [ ! -e /opt/gpt/lib/libgpt.so.$V ]
check "gpt.pc: $(grep ^prefix "$tmp/stage/opt/gpt/lib/pkgconfig/gpt.pc")" \
    grep -qx "prefix=/opt/gpt" "$tmp/stage/opt/gpt/lib/pkgconfig/gpt.pc"
case_end

case_begin "make uninstall removes every installed file"
mk uninstall PREFIX="$P" >"$tmp/un.log" 2>&1; rc=$?
check "exit $rc: $(tail -3 "$tmp/un.log")" [ "$rc" = 0 ]
left=$(find "$P" -type f -o -type l)
check "left behind: $left" [ -z "$left" ]
case_end

summary
