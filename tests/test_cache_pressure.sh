#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_cache_pressure.sh BUILD_DIR - a process yields 4 GiB into a yield cache
# inside a memory cgroup (v1 or v2, tests/memcg.sh) limited to 1 GiB, with a
# memory hog beside it in the same group.  The cache must shrink so that
# nothing is OOM-killed: both processes exit 0, the group's oom_kill counter
# stays 0, the cache held a good part of the limit at some point and gave most
# of the 4 GiB back.
set -u
build=${1:?usage: $0 BUILD_DIR}
prog=$build/tests/prog_cache_pressure
[ -x "$prog" ] || { echo "SKIP: $prog not built"; exit 77; }
. "$(dirname "$0")/memcg.sh"
. "$(dirname "$0")/cache_verdict.sh"
memcg_setup vmo-cache-pressure $((1024 * 1024 * 1024))

out=$(mktemp)
hogout=$(mktemp)
memcg_spawn "$out" "$prog" hold 4096 64 25
hold_pid=$!
sleep 3
memcg_spawn "$hogout" "$prog" hog 256,512,700,300,760,0 2500
hog_pid=$!

wait $hog_pid
hog_rc=$?
wait $hold_pid
hold_rc=$?
pids=()

fail=0
cache_verdict "$out" "$hogout" "$hold_rc" "$hog_rc"
rm -f "$out" "$hogout"
[ $fail -eq 0 ] && echo "test_cache_pressure: ok"
exit $fail
