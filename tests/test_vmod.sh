#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_vmod.sh BUILD_DIR - vmod, the daemon itself: bad options and config
# lines are refused with exit 2 and a message naming them; two processes
# share an object through it (vmo share); what they synced is in the store
# file, and after vmod is stopped and started again the object is served
# again from it (its data and its size); vmo server list/stats/sync/drop
# speak to it; SIGTERM stops it with exit 0.
set -u
build=${1:?usage: $0 BUILD_DIR}
vmod=$build/vmod
vmo=$build/vmo
[ -x "$vmod" ] && [ -x "$vmo" ] || { echo "SKIP: vmod or vmo not built"; exit 77; }
"$vmo" info >/dev/null 2>&1 || { echo "SKIP: no userfaultfd here"; exit 77; }
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -KILL $pid 2>/dev/null; rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; [ -f "$dir/log" ] && cat "$dir/log"; exit 1; }

# bad command lines and config files: exit 2, the option named
"$vmod" --budget banana >"$dir/o" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "budget" "$dir/o" || fail "--budget banana: exit $rc: $(cat "$dir/o")"
"$vmod" --frobnicate >"$dir/o" 2>&1; rc=$?
[ $rc -eq 2 ] || fail "--frobnicate: exit $rc"
printf 'workers = 2\nbogus = 1\n' >"$dir/conf"
"$vmod" --config "$dir/conf" >"$dir/o" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "conf:2" "$dir/o" || fail "config with an unknown option: exit $rc: $(cat "$dir/o")"
"$vmod" --version | grep -q "libvmo" || fail "--version"
# a store URI that cannot be opened stops vmod at start (exit 1, named)
"$vmod" --socket "$dir/x.sock" --dir "$dir/xstore" --anon-store "lz4,budget=12Q" >"$dir/o" 2>&1; rc=$?
[ $rc -eq 1 ] && grep -q "anon-store" "$dir/o" || fail "--anon-store with a bad URI: exit $rc: $(cat "$dir/o")"

start() {
	"$vmod" --socket "$dir/s.sock" --dir "$dir/store" --config "$dir/good.conf" >"$dir/log" 2>&1 &
	pid=$!
	for _ in $(seq 200); do grep -q "ready on" "$dir/log" && return 0; sleep 0.05; done
	fail "vmod did not start"
}
printf '# test config\nworkers = 2\nlog-level = debug\nno-cache = no\n' >"$dir/good.conf"
start
"$vmo" share --socket "$dir/s.sock" --size 1M demo || fail "vmo share"
[ "$(stat -c %s "$dir/store/demo")" -eq $((1 << 20)) ] || fail "the store file is not 1 MiB"
# the first word of page 0 as the other process wrote it (share.c's tag(0, 1))
w=$(od -An -tx8 -N8 "$dir/store/demo" | tr -d ' ')
[ "$w" = "010000005bd1e995" ] || fail "page 0 of the store holds $w, not what was synced"
"$vmo" server --socket "$dir/s.sock" stats >/dev/null || fail "vmo server stats"
"$vmo" server --socket "$dir/s.sock" sync demo >/dev/null || fail "vmo server sync"
"$vmo" server --socket "$dir/s.sock" drop demo >/dev/null || fail "vmo server drop"
"$vmo" server --socket "$dir/s.sock" stats nosuch >"$dir/o" 2>&1 && fail "stats of a missing object succeeded"
"$vmo" server --socket "$dir/s.sock" cache | grep -q "blocks" || fail "vmo server cache"
"$vmo" server --socket "$dir/s.sock" clients | grep -q "FAULTS" || fail "vmo server clients"
kill -TERM $pid; wait $pid; rc=$?; pid=
[ $rc -eq 0 ] || fail "vmod exited with $rc on SIGTERM"

# a restart: the object comes back from its file (size and data)
start
"$vmo" server --socket "$dir/s.sock" stats demo | grep -q "1 MiB" || fail "demo not served again after a restart"
"$vmo" share --socket "$dir/s.sock" demo || fail "vmo share after a restart"
kill -TERM $pid; wait $pid; rc=$?; pid=
[ $rc -eq 0 ] || fail "vmod exited with $rc on SIGTERM (second run)"

# anonymous objects in compressed memory over a swap file (--anon-store from the config)
printf 'workers = 2\nanon-store = lz4,budget=64K:swap:%s/anon.swap\n' "$dir" >"$dir/good.conf"
start
"$vmo" share --socket "$dir/s.sock" --size 1M anon.z || fail "vmo share of an anonymous object in lz4 over swap"
kill -TERM $pid; wait $pid; rc=$?; pid=
[ $rc -eq 0 ] || fail "vmod exited with $rc on SIGTERM (third run)"
echo "test_vmod: ok"
