#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# scripts/fuzz.sh [SECONDS] - fuzz the wire protocol's parser (fuzz/wire_fuzz.c)
# for SECONDS (default 600) with libFuzzer, ASan and UBSan, and print the
# number of executions.  CI runs it for 60 s (.ci/run); run it longer by hand.
#
# Configures a clang build directory ($FUZZ_BUILD, default build-fuzz; CMake
# flags from $CMAKE_FLAGS as make's), builds only wire_fuzz, and runs it on a
# copy of the seed corpus (fuzz/corpus/wire/; the committed one is never
# written).  A crash fails the script and leaves its input in
# $FUZZ_BUILD/fuzz-artifacts/ (to reproduce: build-fuzz/fuzz/wire_fuzz FILE).
# Needs clang and libclang-rt-14-dev (scripts/deps.sh installs them).
set -euo pipefail
secs=${1:-600}
if ! [[ $secs =~ ^[0-9]+$ ]] || [ "$secs" -eq 0 ]; then
	echo "usage: scripts/fuzz.sh [SECONDS]   (default 600)" >&2
	exit 2
fi
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
mkdir -p "${FUZZ_BUILD:-build-fuzz}"
build=$(cd "${FUZZ_BUILD:-build-fuzz}" && pwd)
command -v clang >/dev/null || { echo "fuzz: clang not found (scripts/deps.sh installs it)" >&2; exit 2; }

echo "fuzz: building wire_fuzz in $build (clang, ASan + UBSan + libFuzzer)"
# shellcheck disable=SC2086  # CMAKE_FLAGS is a list of flags
CC=clang cmake -S . -B "$build" -G Ninja -DCMAKE_C_COMPILER=clang -DVMO_SANITIZE=ON -DVMO_FUZZ=ON \
	${CMAKE_FLAGS:-} >"$build/cmake.log" 2>&1 || { cat "$build/cmake.log" >&2; exit 1; }
cmake --build "$build" --target wire_fuzz -j"$(nproc)"

work=$(mktemp -d "${TMPDIR:-/tmp}/vmo-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -r fuzz/corpus/wire "$work/corpus"
art="$build/fuzz-artifacts"
mkdir -p "$art"
log="$work/log"

echo "fuzz: wire_fuzz for ${secs}s on $(find "$work/corpus" -type f | wc -l) seeds"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
rc=0
"$build/fuzz/wire_fuzz" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$art/" \
	-max_len=4200 -timeout=10 "$work/corpus" >"$log" 2>&1 || rc=$?
grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::|ERROR|SUMMARY|wire_fuzz:' "$log" || true

execs=$(awk '/^stat::number_of_executed_units:/ { n += $2 } END { print n + 0 }' "$log")
if [ "$execs" = 0 ]; then # (no final stats: take the last "#N" status line)
	execs=$(sed -n 's/^#\([0-9][0-9]*\)[[:space:]].*/\1/p' "$log" | tail -1)
fi
if [ "$rc" -ne 0 ] || grep -qE '^==[0-9]+==ERROR|runtime error:|deadly signal|wire_fuzz: ' "$log"; then
	echo "fuzz: FAILED (exit $rc) after ${execs:-?} executions; the log:" >&2
	tail -60 "$log" >&2
	echo "fuzz: crash inputs in $art/:" >&2
	ls -l "$art" >&2
	exit 1
fi
echo "fuzz: wire_fuzz: ${execs} executions in ${secs}s, no crash ($(find "$work/corpus" -type f | wc -l) inputs in the corpus)"
