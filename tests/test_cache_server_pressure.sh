#!/usr/bin/env bash
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

echo "--- hold"
cat "$out"
echo "--- hog"
cat "$hogout"
oom_kill=$(memcg_oom_kills)
maxu=$(memcg_max_usage)
[ -n "$maxu" ] && maxu="$((maxu >> 20))MiB" || maxu="?"
echo "--- group (cgroup v$memcg_v): oom_kill=${oom_kill:-?} max_usage=$maxu failcnt=$(memcg_failcnt)"

fail=0
[ "$hold_rc" -eq 0 ] || { echo "FAIL: the cache process exited with $(memcg_status $hold_rc)"; fail=1; }
[ "$hog_rc" -eq 0 ] || { echo "FAIL: the hog exited with $(memcg_status $hog_rc)"; fail=1; }
[ "$vmod_rc" -eq 0 ] || { echo "FAIL: vmod exited with $(memcg_status $vmod_rc)"; fail=1; }
[ "${oom_kill:-1}" -eq 0 ] || { echo "FAIL: the OOM killer ran $oom_kill time(s) in the group"; fail=1; }
grep -q "^hog: done" "$hogout" || { echo "FAIL: the hog did not finish"; fail=1; }
val() { awk -F= -v k="$1" '$1 == k { print $2 }' "$out"; }
yielded=$(val yielded_mib)
held_max=$(val held_max_mib)
forgotten=$(val forgotten_mib)
hits=$(val hits)
if [ -z "$yielded" ]; then
	echo "FAIL: no summary from the cache process"
	fail=1
else
	[ "$yielded" -ge 4096 ] || { echo "FAIL: yielded only $yielded MiB"; fail=1; }
	# it used the memory there was: more than a third of the limit at some point
	[ "$held_max" -ge 340 ] || { echo "FAIL: the cache never held more than $held_max MiB"; fail=1; }
	# it cannot have kept more than the limit
	[ "$held_max" -lt 1024 ] || { echo "FAIL: the cache held $held_max MiB in a 1 GiB group"; fail=1; }
	[ "$forgotten" -ge 3072 ] || { echo "FAIL: only $forgotten MiB forgotten"; fail=1; }
	[ "$hits" -gt 0 ] || { echo "FAIL: no hit at all"; fail=1; }
fi
rm -rf "$out" "$hogout" "$vmodout" "$dir"
[ $fail -eq 0 ] && echo "test_cache_server_pressure: ok"
exit $fail
