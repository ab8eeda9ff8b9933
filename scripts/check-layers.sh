#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# scripts/check-layers.sh BUILD_DIR - the layers of src/ are one-way: a file
# calls (and includes the header of) only files below it.  The order is the
# table below, top to bottom (docs/design.md draws it); files on one line are
# one layer and may call each other only downwards in the line's order too.
#
# Calls are read from the built static library: for each object file, the
# vmo__/vmo_ functions it uses (nm -u) and the file that defines them (nm
# --defined-only).  Calls through function pointers (a space's kernel
# operations, the view hooks the engine wires) are how a lower layer reaches
# up without naming it, and are not calls here.  Includes are read from the
# sources: a header belongs to the file of the same name (core.h to pages,
# internal.h to log).
#
# Exit 0 when every edge goes down; 1 with each offending edge printed.
set -euo pipefail
build=$(cd "${1:?usage: scripts/check-layers.sh BUILD_DIR}" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
lib=$build/libvmo.a
[ -f "$lib" ] || { echo "check-layers: no $lib (build first)" >&2; exit 2; }

# top to bottom
LAYERS=(
	"server client fork"             # serving objects to other processes; objects opened from a server; fork inheritance
	"uri"
	"inplace file mem zero swap compress nbd"          # in-place objects; stores: pagers over the public API
	"engine"                         # engines: workers (epoll over spaces), spaces wired to objects
	"selfserve"                      # self-service faults: the SIGBUS handler, hand-off threads
	"evictor cache clone"            # background thread, pressure; the yield cache; copy-on-write clones
	"object map io supply"           # objects, views in the local space, object I/O, asynchronous supply
	"ops"                            # sync / return / discard, errors
	"fault"                          # fault service
	"evict"                          # budgets, reclaim
	"dirty"                          # writeback, dirty collection
	"views"                          # the object's views and the one iterator over them
	"pages"                          # page states, residency, waiters, errors, the raw drop
	"space"                          # address spaces: views by address, events, kernel operations
	"pressure uffd vtree wire process" # memory headroom, the shared pressure watcher; userfaultfd; interval trees; the wire protocol; another process's memory
	"log version"                    # logging, errors, small helpers; vmo_version
)
declare -A rank
r=0
for line in "${LAYERS[@]}"; do
	for f in $line; do
		rank[$f]=$r
		r=$((r + 1))
	done
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && ar x "$lib")
declare -A def
bad=0
for o in "$work"/*.o; do
	f=$(basename "$o" .c.o)
	if [ -z "${rank[$f]+x}" ]; then
		echo "check-layers: src file '$f' is in no layer: add it to scripts/check-layers.sh and docs/design.md"
		bad=1
		continue
	fi
	for s in $(nm --defined-only -g "$o" | awk '$2 ~ /^[TDBR]$/ {print $3}'); do
		def[$s]=$f
	done
done
for o in "$work"/*.o; do
	f=$(basename "$o" .c.o)
	[ -n "${rank[$f]+x}" ] || continue
	for s in $(nm -u "$o" | awk '{print $2}'); do
		t=${def[$s]:-}
		[ -n "$t" ] && [ "$t" != "$f" ] || continue
		if [ "${rank[$t]}" -le "${rank[$f]}" ]; then
			echo "check-layers: $f calls $s in $t, which is not below it"
			bad=1
		fi
	done
done

# includes: src/X.c or src/X.h including "Y.h" needs Y's owner at or below X's
owner() {
	case $1 in
	core.h) echo pages ;;
	internal.h) echo log ;;
	*) echo "${1%.h}" ;;
	esac
}
for src in "$top"/src/*.c "$top"/src/*.h; do
	b=$(basename "$src")
	f=$(owner "$b")
	[ "${b%.c}" != "$b" ] && f=${b%.c}
	[ -n "${rank[$f]+x}" ] || continue
	for h in $(sed -n 's/^#include "\([a-z_]*\.h\)".*/\1/p' "$src"); do
		[ "$h" = vmo.h ] && continue
		t=$(owner "$h")
		[ -n "${rank[$t]+x}" ] || { echo "check-layers: $b includes $h, owned by no layer"; bad=1; continue; }
		if [ "${rank[$t]}" -lt "${rank[$f]}" ]; then
			echo "check-layers: $b includes $h ($t), a layer above it"
			bad=1
		fi
	done
done
if [ $bad -ne 0 ]; then
	echo "check-layers: FAILED (docs/design.md, Layers)" >&2
	exit 1
fi
echo "check-layers: ok (every call and include goes down)"
