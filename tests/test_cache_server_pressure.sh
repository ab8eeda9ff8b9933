#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_cache_server_pressure.sh BUILD_DIR - the system-wide yield cache under
# memory pressure: a process yields 4 GiB into vmod's cache
# (vmo_cache_connect: the blocks live in vmod), with vmod, the process and a
# memory hog in one memory cgroup (v1 or v2, tests/memcg.sh) limited to 1 GiB.
# vmod's cache must shrink so that nothing is OOM-killed: all three exit 0,
# the group's oom_kill counter stays 0, the cache held a good part of the
# limit at some point and gave most of the 4 GiB back, and every hit
# returned exactly the bytes yielded (prog_cache_pressure checks).
set -u
build=${1:?usage: $0 BUILD_DIR}
prog=$build/tests/prog_cache_pressure
[ -x "$prog" ] || { echo "SKIP: $prog not built"; exit 77; }
. "$(dirname "$0")/memcg.sh"
. "$(dirname "$0")/cache_verdict.sh"
vmod=$build/vmod
[ -x "$vmod" ] || { echo "SKIP: $vmod not built"; exit 77; }
memcg_setup vmo-cache-srv-pressure $((1024 * 1024 * 1024))

dir=$(mktemp -d)
out=$(mktemp)
hogout=$(mktemp)
vmodout=$(mktemp)
memcg_spawn "$vmodout" "$vmod" --socket "$dir/vmod.sock" --dir "$dir/store"
vmod_pid=$!
for _ in $(seq 200); do grep -q "ready on" "$vmodout" && break; sleep 0.05; done
grep -q "ready on" "$vmodout" || { cat "$vmodout"; echo "FAIL: vmod did not start"; exit 1; }
PROG_CACHE_SERVER=$dir/vmod.sock memcg_spawn "$out" "$prog" hold 4096 64 25
hold_pid=$!
sleep 3
memcg_spawn "$hogout" "$prog" hog 256,512,700,300,760,0 2500
hog_pid=$!

wait $hog_pid
hog_rc=$?
wait $hold_pid
hold_rc=$?
kill -TERM $vmod_pid
wait $vmod_pid
vmod_rc=$?
pids=()
echo "--- vmod"
cat "$vmodout"

fail=0
cache_verdict "$out" "$hogout" "$hold_rc" "$hog_rc"
[ "$vmod_rc" -eq 0 ] || { echo "FAIL: vmod exited with $(memcg_status $vmod_rc)"; fail=1; }
rm -rf "$out" "$hogout" "$vmodout" "$dir"
[ $fail -eq 0 ] && echo "test_cache_server_pressure: ok"
exit $fail
