#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# scripts/run.sh BUILD_DIR - the main job (`make run`): `vmo demo` (an object
# paged in this process), then vmod on its defaults and `vmo share`: two
# processes sharing one object served by vmod.  A vmod already listening on
# the default socket (systemd's vmod.socket) is used as it is; else one is
# started here and stopped (SIGTERM: everything written back) at the end.
set -euo pipefail
build=${1:-build}
"$build/vmo" demo
echo
sock=${VMO_SERVER:-}
[ -n "$sock" ] || sock=$("$build/vmod" --help | sed -n 's/.*--socket PATH .*(default: \(.*\))$/\1/p')
started=
if ! "$build/vmo" server --socket "$sock" list >/dev/null 2>&1; then
	log=$(mktemp)
	"$build/vmod" >"$log" 2>&1 &
	started=$!
	trap 'kill -TERM $started 2>/dev/null; wait $started 2>/dev/null || true; rm -f "$log"' EXIT
	for _ in $(seq 100); do
		grep -q "ready on" "$log" && break
		kill -0 $started 2>/dev/null || { cat "$log" >&2; exit 1; }
		sleep 0.05
	done
	echo "vmod started on its defaults ($(grep -o 'serving .*' "$log" | head -1))"
fi
"$build/vmo" share --socket "$sock"
"$build/vmo" server --socket "$sock" stats
