# SPDX-License-Identifier: MIT
# memcg.sh - sourced by the memory-pressure test scripts: a memory cgroup of
# their own (cgroup v1 or v2), with a limit and no swap, removed on exit.
#
#   memcg_setup NAME LIMIT_BYTES   create "$cg" (skips the test, exit 77, with
#                                  the reason, where that cannot be done) and
#                                  arm the cleanup; $memcg_v is 1 or 2
#   memcg_spawn OUT CMD...         run CMD inside the group, output to OUT, in
#                                  the background; its pid is in $! and in
#                                  pids[] (killed on exit).  A hang guard kills
#                                  it after $MEMCG_TIMEOUT s (default 600: an
#                                  emulated guest needs minutes; status 124)
#   memcg_status RC                "status RC", and what 124 means
#   memcg_oom_kills                the group's oom_kill counter
#   memcg_max_usage                the group's peak usage in bytes (empty where
#                                  the kernel keeps none: v2 before 5.19)
#   memcg_failcnt                  how often usage hit the limit (v1
#                                  memory.failcnt, v2 memory.events "max")
#   memcg_describe                 one line: version, directory, limit
#
# v1: a group under this shell's group in the memory hierarchy; the limit is
# memory.limit_in_bytes (and memory.memsw.limit_in_bytes, swappiness 0).
# v2: the cgroup2 hierarchy whose cgroup.controllers offers "memory".  A
# process can only live in a leaf, and a group gets the memory controller only
# if its parent has "memory" in cgroup.subtree_control, which a group holding
# processes cannot have (the root excepted).  So the group is created under the
# nearest of: this shell's own group, its parent, ..., the root, where "memory"
# is enabled in cgroup.subtree_control or can be enabled; usually the root, or
# the slice above the shell's scope.  A controller enabled there stays enabled
# (harmless; the other pressure test may be using it).  The limit is
# memory.max, with memory.swap.max 0.
# v1 is tried first (this project's machines); MEMCG_VERSION=v1 or v2 forces one.

memcg_v1_dir() { # memcg_dir= the v1 memory hierarchy's directory for this shell's group
	local mnt cur
	mnt=$(awk '$3 == "cgroup" && $4 ~ /(^|,)memory(,|$)/ { print $2; exit }' /proc/mounts)
	[ -n "$mnt" ] && [ -d "$mnt" ] || { memcg_why+=("no cgroup v1 memory hierarchy mounted"); return 1; }
	cur=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ { print $3; exit }' /proc/self/cgroup)
	[ "$cur" = "/" ] && cur=""
	[ -d "$mnt$cur" ] || { memcg_why+=("this shell's v1 memory group $mnt$cur is not there"); return 1; }
	memcg_dir=$mnt$cur
}

memcg_v2_parents() { # memcg_parents=(candidate parents, nearest first: this shell's group up to the root)
	local path mnt mroot mounts n=${#memcg_why[@]}
	path=$(sed -n 's/^0:://p' /proc/self/cgroup)
	[ -n "$path" ] || { memcg_why+=("this shell is in no cgroup v2 hierarchy"); return 1; }
	# every cgroup2 mount (root within the hierarchy, mount point); the one whose
	# controllers include memory.  (No `< <(...)`: a minimal /dev has no /dev/fd.)
	mounts=$(awk '{ for (i = 7; $i != "-"; i++); if ($(i + 1) == "cgroup2") print $4, $5 }' /proc/self/mountinfo)
	while read -r mroot mnt; do
		[ -n "$mnt" ] || continue
		[ -f "$mnt/cgroup.controllers" ] || continue
		if ! grep -qw memory "$mnt/cgroup.controllers"; then
			memcg_why+=("the cgroup2 hierarchy at $mnt has no memory controller (cgroup.controllers: $(cat "$mnt/cgroup.controllers"))")
			continue
		fi
		local rel=$path
		if [ "$mroot" != / ]; then
			case $path in "$mroot"|"$mroot"/*) rel=${path#"$mroot"} ;; *) continue ;; esac
		fi
		[ "$rel" = / ] && rel=""
		local d=$mnt$rel
		memcg_parents=()
		while :; do
			memcg_parents+=("$d")
			[ "$d" = "$mnt" ] && break
			d=${d%/*}
			[ ${#d} -lt ${#mnt} ] && break
		done
		return 0
	done <<<"$mounts"
	[ ${#memcg_why[@]} -gt "$n" ] || memcg_why+=("no cgroup2 hierarchy with this shell's group mounted")
	return 1
}

memcg_setup_v1() {
	local name=$1 limit=$2
	memcg_v1_dir || return 1
	cg="$memcg_dir/$name-$$"
	mkdir "$cg" 2>/dev/null || { memcg_why+=("cannot create $cg"); cg=; return 1; }
	if ! echo "$limit" >"$cg/memory.limit_in_bytes"; then
		memcg_why+=("cannot set memory.limit_in_bytes in $cg")
		rmdir "$cg"
		cg=
		return 1
	fi
	# No swap here; if there is some, forbid it for this group so that the limit bites.
	echo "$limit" >"$cg/memory.memsw.limit_in_bytes" 2>/dev/null || true
	echo 0 >"$cg/memory.swappiness" 2>/dev/null || true
	memcg_v=1
}

memcg_setup_v2() {
	local name=$1 limit=$2 p
	memcg_v2_parents || return 1
	for p in "${memcg_parents[@]}"; do
		grep -qw memory "$p/cgroup.controllers" 2>/dev/null || continue
		if ! grep -qw memory "$p/cgroup.subtree_control"; then
			# EBUSY where $p holds processes (and is not the root)
			echo +memory >"$p/cgroup.subtree_control" 2>/dev/null || continue
		fi
		cg="$p/$name-$$"
		mkdir "$cg" 2>/dev/null || { memcg_why+=("cannot create $cg"); cg=; continue; }
		if [ -f "$cg/memory.max" ] && echo "$limit" >"$cg/memory.max"; then
			echo 0 >"$cg/memory.swap.max" 2>/dev/null || true # absent without swap accounting
			memcg_v=2
			return 0
		fi
		memcg_why+=("cannot set memory.max in $cg")
		rmdir "$cg"
		cg=
	done
	memcg_why+=("no group from ${memcg_parents[0]} up to the cgroup2 root can enable the memory controller for a child")
	return 1
}

memcg_setup() {
	local name=$1 limit=$2
	[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root to create a memory cgroup"; exit 77; }
	memcg_why=()
	cg=
	pids=()
	case ${MEMCG_VERSION:-} in
	v1) memcg_setup_v1 "$name" "$limit" ;;
	v2) memcg_setup_v2 "$name" "$limit" ;;
	*) memcg_setup_v1 "$name" "$limit" || memcg_setup_v2 "$name" "$limit" ;;
	esac
	if [ -z "$cg" ]; then
		local IFS=';'
		echo "SKIP: no memory cgroup to run in: ${memcg_why[*]}"
		exit 77
	fi
	trap memcg_cleanup EXIT
	memcg_describe
}

memcg_describe() {
	local lim
	if [ "$memcg_v" = 1 ]; then lim=$(cat "$cg/memory.limit_in_bytes"); else lim=$(cat "$cg/memory.max"); fi
	echo "memory cgroup v$memcg_v: $cg, limit $((lim >> 20)) MiB"
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
	timeout "${MEMCG_TIMEOUT:-600}" bash -c "echo \$\$ > '$cg/cgroup.procs' && exec \"\$@\"" memcg "$@" >"$out" 2>&1 &
	pids+=($!)
}

memcg_status() {
	if [ "$1" -eq 124 ]; then
		echo "status 124 (still running after ${MEMCG_TIMEOUT:-600} s: killed by the hang guard)"
	else
		echo "status $1"
	fi
}

# memcg_key FILE KEY: the value of "KEY value" in the group's FILE
memcg_key() { awk -v k="$2" '$1 == k { print $2 }' "$cg/$1" 2>/dev/null; }

memcg_oom_kills() {
	if [ "$memcg_v" = 1 ]; then memcg_key memory.oom_control oom_kill; else memcg_key memory.events oom_kill; fi
}

memcg_max_usage() {
	if [ "$memcg_v" = 1 ]; then cat "$cg/memory.max_usage_in_bytes"; else cat "$cg/memory.peak" 2>/dev/null; fi
}

memcg_failcnt() {
	if [ "$memcg_v" = 1 ]; then cat "$cg/memory.failcnt"; else memcg_key memory.events max; fi
}
