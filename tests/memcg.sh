# memcg.sh - sourced by the memory-pressure test scripts: a cgroup v1 memory
# group of their own, with a limit and no swap, removed on exit.
#
#   memcg_setup NAME LIMIT_BYTES   create "$cg" (skips the test, exit 77, where
#                                  that cannot be done) and arm the cleanup
#   memcg_spawn OUT CMD...         run CMD inside the group (timeout 120 s),
#                                  output to OUT, in the background; its pid
#                                  is in $! and in pids[] (killed on exit)
#   memcg_oom_kills                the group's oom_kill counter

memcg_setup() {
	local name=$1 limit=$2
	[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root to create a memory cgroup"; exit 77; }
	# The cgroup v1 memory hierarchy and this shell's group in it.
	local mnt cur
	mnt=$(awk '$3 == "cgroup" && $4 ~ /(^|,)memory(,|$)/ { print $2; exit }' /proc/mounts)
	[ -n "$mnt" ] && [ -d "$mnt" ] || { echo "SKIP: no cgroup v1 memory controller mounted"; exit 77; }
	cur=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ { print $3; exit }' /proc/self/cgroup)
	[ "$cur" = "/" ] && cur=""
	cg="$mnt$cur/$name-$$"
	mkdir "$cg" 2>/dev/null || { echo "SKIP: cannot create $cg"; exit 77; }
	pids=()
	trap memcg_cleanup EXIT
	if ! echo "$limit" >"$cg/memory.limit_in_bytes"; then
		echo "SKIP: cannot set memory.limit_in_bytes in $cg"
		exit 77
	fi
	# No swap here; if there is some, forbid it for this group so that the limit bites.
	echo "$limit" >"$cg/memory.memsw.limit_in_bytes" 2>/dev/null || true
	echo 0 >"$cg/memory.swappiness" 2>/dev/null || true
}

memcg_cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	# wait for the group to empty, then remove it
	for _ in $(seq 50); do
		[ -z "$(cat "$cg/cgroup.procs" 2>/dev/null)" ] && break
		sleep 0.1
	done
	rmdir "$cg" 2>/dev/null || echo "warning: could not remove $cg" >&2
}

memcg_spawn() {
	local out=$1
	shift
	# Start inside the group: move the shell, then exec.
	timeout 120 bash -c "echo \$\$ > '$cg/cgroup.procs' && exec \"\$@\"" memcg "$@" >"$out" 2>&1 &
	pids+=($!)
}

memcg_oom_kills() {
	awk '$1 == "oom_kill" { print $2 }' "$cg/memory.oom_control"
}
