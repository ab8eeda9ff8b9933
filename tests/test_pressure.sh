#!/usr/bin/env bash
# test_pressure.sh BUILD_DIR - memory pressure shrinks an engine's budget.
# An engine with no budget reads through a 2 GiB object inside a cgroup v1
# memory group limited to 768 MiB, with a memory hog growing beside it in the
# same group.  Pressure (PSI, the cgroup's headroom) must cap the engine:
# nothing is OOM-killed, both exit 0, the engine was capped and evicted.
set -u
build=${1:?usage: $0 BUILD_DIR}
prog=$build/tests/prog_pressure
hogprog=$build/tests/prog_cache_pressure
[ -x "$prog" ] && [ -x "$hogprog" ] || { echo "SKIP: helper programs not built"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root to create a memory cgroup"; exit 77; }
# Under ASan every process's footprint is inflated (shadow memory, a quarantine
# of freed memory) and the hog's first step alone outruns any reaction: the
# sizes below mean nothing there.  The normal build runs this test.
if grep -q "^VMO_SANITIZE:BOOL=ON" "$build/CMakeCache.txt" 2>/dev/null; then
	echo "SKIP: memory-pressure sizes are calibrated for a build without sanitizers"
	exit 77
fi
mnt=$(awk '$3 == "cgroup" && $4 ~ /(^|,)memory(,|$)/ { print $2; exit }' /proc/mounts)
[ -n "$mnt" ] && [ -d "$mnt" ] || { echo "SKIP: no cgroup v1 memory controller mounted"; exit 77; }
cur=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ { print $3; exit }' /proc/self/cgroup)
[ "$cur" = "/" ] && cur=""
cg="$mnt$cur/vmo-pressure-$$"
mkdir "$cg" 2>/dev/null || { echo "SKIP: cannot create $cg"; exit 77; }
LIMIT=$((768 * 1024 * 1024))
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	for _ in $(seq 50); do
		[ -z "$(cat "$cg/cgroup.procs" 2>/dev/null)" ] && break
		sleep 0.1
	done
	rmdir "$cg" 2>/dev/null || echo "warning: could not remove $cg" >&2
}
trap cleanup EXIT
echo $LIMIT >"$cg/memory.limit_in_bytes" || { echo "SKIP: cannot set the limit"; exit 77; }
echo $LIMIT >"$cg/memory.memsw.limit_in_bytes" 2>/dev/null || true
echo 0 >"$cg/memory.swappiness" 2>/dev/null || true

out=$(mktemp)
hogout=$(mktemp)
timeout 120 bash -c "echo \$\$ > '$cg/cgroup.procs' && exec '$prog' 2048 20 ${PROG_PRESSURE_FLAGS:-0}" >"$out" 2>&1 &
pid=$!
pids+=($pid)
sleep 4
timeout 120 bash -c "echo \$\$ > '$cg/cgroup.procs' && exec '$hogprog' hog 128,256,400,200,480,0 2500" >"$hogout" 2>&1 &
hog=$!
pids+=($hog)
wait $hog
hog_rc=$?
wait $pid
rc=$?
pids=()
echo "--- engine"; cat "$out"
echo "--- hog"; cat "$hogout"
oom_kill=$(awk '$1 == "oom_kill" { print $2 }' "$cg/memory.oom_control")
echo "--- group: oom_kill=${oom_kill:-?} max_usage=$(( $(cat "$cg/memory.max_usage_in_bytes") >> 20 ))MiB"
val() { awk -F= -v k="$1" '$1 == k { print $2 }' "$out"; }
fail=0
[ "$rc" -eq 0 ] || { echo "FAIL: the engine process exited with status $rc"; fail=1; }
[ "$hog_rc" -eq 0 ] || { echo "FAIL: the hog exited with status $hog_rc"; fail=1; }
[ "${oom_kill:-1}" -eq 0 ] || { echo "FAIL: the OOM killer ran in the group"; fail=1; }
cap=$(val min_cap_mib); ev=$(val evictions); mx=$(val max_resident_mib)
[ -n "$cap" ] && [ "$cap" -gt 0 ] || { echo "FAIL: pressure never capped the engine"; fail=1; }
[ -n "$ev" ] && [ "$ev" -gt 0 ] || { echo "FAIL: nothing was evicted"; fail=1; }
[ -n "$mx" ] && [ "$mx" -lt 768 ] || { echo "FAIL: the engine held $mx MiB in a 768 MiB group"; fail=1; }
[ $fail -eq 0 ] && echo "ok"
exit $fail
