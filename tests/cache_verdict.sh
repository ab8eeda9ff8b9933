# SPDX-License-Identifier: MIT
# cache_verdict.sh - sourced by the cache pressure tests (after memcg.sh):
#
#   cache_verdict OUT HOGOUT HOLD_RC HOG_RC
#
# prints the cache process's and the hog's output and the group's counters,
# then sets fail=1 (with a FAIL line each) if either process failed, the OOM
# killer ran in the group, the hog did not finish, or the cache process's
# summary (prog_cache_pressure hold ... 4096 MiB, in a 1 GiB group) says it
# yielded less than 4 GiB, never held a good part of the limit (340 MiB),
# held more than the limit, forgot less than 3 GiB, or never hit.
cache_verdict() {
	local out=$1 hogout=$2 hold_rc=$3 hog_rc=$4
	echo "--- hold"
	cat "$out"
	echo "--- hog"
	cat "$hogout"
	local oom_kill maxu
	oom_kill=$(memcg_oom_kills)
	maxu=$(memcg_max_usage)
	[ -n "$maxu" ] && maxu="$((maxu >> 20))MiB" || maxu="?"
	echo "--- group (cgroup v$memcg_v): oom_kill=${oom_kill:-?} max_usage=$maxu failcnt=$(memcg_failcnt)"
	[ "$hold_rc" -eq 0 ] || { echo "FAIL: the cache process exited with $(memcg_status "$hold_rc")"; fail=1; }
	[ "$hog_rc" -eq 0 ] || { echo "FAIL: the hog exited with $(memcg_status "$hog_rc")"; fail=1; }
	[ "${oom_kill:-1}" -eq 0 ] || { echo "FAIL: the OOM killer ran $oom_kill time(s) in the group"; fail=1; }
	grep -q "^hog: done" "$hogout" || { echo "FAIL: the hog did not finish"; fail=1; }
	val() { awk -F= -v k="$1" '$1 == k { print $2 }' "$out"; }
	local yielded held_max forgotten hits
	yielded=$(val yielded_mib)
	held_max=$(val held_max_mib)
	forgotten=$(val forgotten_mib)
	hits=$(val hits)
	if [ -z "$yielded" ]; then
		echo "FAIL: no summary from the cache process"
		fail=1
		return
	fi
	[ "$yielded" -ge 4096 ] || { echo "FAIL: yielded only $yielded MiB"; fail=1; }
	# it used the memory there was: more than a third of the limit at some point
	[ "$held_max" -ge 340 ] || { echo "FAIL: the cache never held more than $held_max MiB"; fail=1; }
	# it cannot have kept more than the limit
	[ "$held_max" -lt 1024 ] || { echo "FAIL: the cache held $held_max MiB in a 1 GiB group"; fail=1; }
	[ "$forgotten" -ge 3072 ] || { echo "FAIL: only $forgotten MiB forgotten"; fail=1; }
	[ "$hits" -gt 0 ] || { echo "FAIL: no hit at all"; fail=1; }
}
