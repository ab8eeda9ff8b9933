#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_readme.sh BUILD_DIR - the README's first program ("A pager in a few
# lines") builds as it stands against the built library and does what it
# says: word 5000000000 reads 5000000000, and the one page written is written
# back.
set -u
build=${1:?usage: $0 BUILD_DIR}
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
awk '/^## A pager in a few lines/ { sec = 1 } sec && /^```c$/ { code = 1; next } code && /^```$/ { exit } code { print }' \
	"$top/README.md" >"$work/first.c"
[ -s "$work/first.c" ] || { echo "FAILED: no C block under 'A pager in a few lines' in README.md"; exit 1; }
flags=()
# A sanitizer build's library needs its runtime in the program too.
grep -q "^VMO_SANITIZE:BOOL=ON" "$build/CMakeCache.txt" 2>/dev/null && flags=(-fsanitize=address,undefined)
cc -std=c11 -Wall -Wextra -Werror "${flags[@]}" -I"$top/include" -I"$build/include" -o "$work/first" "$work/first.c" \
	-L"$build" -lvmo -Wl,-rpath,"$build" || { echo "FAILED: the README's program does not build"; exit 1; }
out=$("$work/first" 2>&1); rc=$?
echo "$out"
[ $rc -eq 0 ] || { echo "FAILED: it exited $rc"; exit 1; }
grep -q "^word 5000000000: 5000000000$" <<<"$out" || { echo "FAILED: wrong word"; exit 1; }
grep -q "^sync: success, 4096 bytes written back$" <<<"$out" || { echo "FAILED: writeback"; exit 1; }
echo "README program: ok"
