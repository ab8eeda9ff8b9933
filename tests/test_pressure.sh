#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_pressure.sh BUILD_DIR - memory pressure shrinks an engine's budget.
# An engine with no budget reads through a 2 GiB object inside a memory cgroup
# (v1 or v2, tests/memcg.sh) limited to 768 MiB, with a memory hog growing
# beside it in the same group.  Pressure (PSI, the cgroup's headroom) must cap
# the engine: nothing is OOM-killed, both exit 0, the engine was capped and
# evicted.
set -u
build=${1:?usage: $0 BUILD_DIR}
prog=$build/tests/prog_pressure
hogprog=$build/tests/prog_cache_pressure
[ -x "$prog" ] && [ -x "$hogprog" ] || { echo "SKIP: helper programs not built"; exit 77; }
# Under ASan every process's footprint is inflated (shadow memory, a quarantine
# of freed memory) and the hog's first step alone outruns any reaction: the
# sizes below mean nothing there.  The normal build runs this test.
if grep -q "^VMO_SANITIZE:BOOL=ON" "$build/CMakeCache.txt" 2>/dev/null; then
	echo "SKIP: memory-pressure sizes are calibrated for a build without sanitizers"
	exit 77
fi
. "$(dirname "$0")/memcg.sh"
memcg_setup vmo-pressure $((768 * 1024 * 1024))

out=$(mktemp)
hogout=$(mktemp)
memcg_spawn "$out" "$prog" 2048 20 "${PROG_PRESSURE_FLAGS:-0}"
pid=$!
sleep 4
memcg_spawn "$hogout" "$hogprog" hog 128,256,400,200,480,0 2500
hog=$!
wait $hog
hog_rc=$?
wait $pid
rc=$?
pids=()
echo "--- engine"; cat "$out"
echo "--- hog"; cat "$hogout"
oom_kill=$(memcg_oom_kills)
maxu=$(memcg_max_usage)
[ -n "$maxu" ] && maxu="$((maxu >> 20))MiB" || maxu="?"
echo "--- group (cgroup v$memcg_v): oom_kill=${oom_kill:-?} max_usage=$maxu failcnt=$(memcg_failcnt)"
val() { awk -F= -v k="$1" '$1 == k { print $2 }' "$out"; }
fail=0
[ "$rc" -eq 0 ] || { echo "FAIL: the engine process exited with $(memcg_status $rc)"; fail=1; }
[ "$hog_rc" -eq 0 ] || { echo "FAIL: the hog exited with $(memcg_status $hog_rc)"; fail=1; }
[ "${oom_kill:-1}" -eq 0 ] || { echo "FAIL: the OOM killer ran in the group"; fail=1; }
cap=$(val min_cap_mib); ev=$(val evictions); mx=$(val max_resident_mib)
[ -n "$cap" ] && [ "$cap" -gt 0 ] || { echo "FAIL: pressure never capped the engine"; fail=1; }
[ -n "$ev" ] && [ "$ev" -gt 0 ] || { echo "FAIL: nothing was evicted"; fail=1; }
[ -n "$mx" ] && [ "$mx" -lt 768 ] || { echo "FAIL: the engine held $mx MiB in a 768 MiB group"; fail=1; }
[ $fail -eq 0 ] && echo "ok"
exit $fail
