#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_large_folios.sh BUILD_DIR - the suites that must hold with large folios
# (docs/api.md, Large folios and sequential fills): with shmem's global
# shmem_enabled at within_size, a memfd's writes get 2 MiB folios, and vmo
# fills whole aligned blocks by writing them into the memfd (large_fill).
# Runs test_pagesize (its large-folios case checks the path is taken), then
# torture, writeback, kill and budgets, each in the default mode and
# self-service (VMO_SELF_SERVICE=all); the setting is restored on exit.
# Skipped where it cannot be switched (not root, no THP for shmem).
set -u
build=${1:?usage: $0 BUILD_DIR}
knob=/sys/kernel/mm/transparent_hugepage/shmem_enabled
[ -w "$knob" ] || { echo "SKIP: $knob cannot be written (needs root and THP)"; exit 77; }
old=$(sed -n 's/.*\[\(.*\)\].*/\1/p' "$knob")
trap 'echo "$old" > "$knob"' EXIT
echo within_size > "$knob" || { echo "SKIP: $knob refused within_size"; exit 77; }
echo "shmem_enabled: $(cat "$knob") (was $old)"
fail=0
run() {
	echo "== $*"
	if ! env "$@"; then
		echo "FAILED: $*"
		fail=1
	fi
}
run "$build/tests/test_pagesize"
for t in test_torture test_writeback test_kill test_budget; do
	run "$build/tests/$t"
	run VMO_SELF_SERVICE=all "$build/tests/$t"
done
exit $fail
