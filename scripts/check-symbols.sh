#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# check-symbols.sh BUILD_DIR: the public surface, three ways, must agree.
#   - what BUILD_DIR/libvmo.so exports (nm -D --defined-only);
#   - the names src/libvmo.map lists under global: (one by one, no wildcard);
#   - the functions include/vmo.h declares VMO_API.
# Prints each name that is in one and not in another, and where, and exits 1;
# exits 0 (and says how many) when all three are the same set.  CI runs it
# after `make check` (.ci/run).
set -euo pipefail

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
	echo "usage: $0 BUILD_DIR   (the CMake build directory holding libvmo.so)" >&2
	exit 2
fi
build=$1
root=$(cd "$(dirname "$0")/.." && pwd)
map=${CHECK_SYMBOLS_MAP:-$root/src/libvmo.map}       # overridable, to test this script
header=${CHECK_SYMBOLS_HEADER:-$root/include/vmo.h}
lib=$build/libvmo.so
if [ ! -e "$lib" ]; then
	lib=$(find "$build" -maxdepth 3 -name 'libvmo.so' -print -quit)
fi
if [ -z "$lib" ] || [ ! -e "$lib" ]; then
	echo "check-symbols: no libvmo.so under $build (build it first)" >&2
	exit 2
fi
command -v nm >/dev/null || { echo "check-symbols: nm not found (binutils)" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. Exported: defined dynamic symbols, without their version (vmo_map@@VMO_0.1),
#    leaving out the version nodes themselves (type A).
nm -D --defined-only "$lib" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' | sort -u >"$tmp/lib"

# 2. The map: every name under a global: section.  Comments (/* */) dropped; a
#    wildcard, or anything but a plain C name, is an error: list names one by one.
awk '
	{ text = text " " $0 }
	END {
		gsub(/\/\*([^*]|\*+[^*\/])*\*+\//, " ", text)
		gsub(/[{};]/, " & ", text)
		n = split(text, t, /[ \t]+/)
		state = ""
		for (i = 1; i <= n; i++) {
			w = t[i]
			if (w == "") continue
			if (w == "{") { state = "global"; continue }  # names before global: are global
			if (w == "}") { state = ""; continue }
			if (w == "global:") { state = "global"; continue }
			if (w == "local:") { state = "local"; continue }
			if (w == ";" || state != "global") continue
			if (w !~ /^[A-Za-z_][A-Za-z0-9_]*$/) {
				print "check-symbols: src/libvmo.map: \"" w "\" under global: is not a plain name " \
				      "(no wildcards: list every exported function)" > "/dev/stderr"
				bad = 1
				continue
			}
			print w
		}
		exit bad
	}' "$map" | sort >"$tmp/map.all" || { echo "check-symbols: FAILED" >&2; exit 1; }
sort -u "$tmp/map.all" >"$tmp/map"
dups=$(uniq -d "$tmp/map.all")

# 3. The header: the name before the first "(" of each line that begins with VMO_API.
grep -E '^VMO_API[[:space:]]' "$header" |
	sed -E 's/\(.*//; s/.*[^A-Za-z0-9_]([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*$/\1/' | sort -u >"$tmp/hdr"

fail=0
report() { # report FILE_A FILE_B MESSAGE: names in A and not in B
	local names
	names=$(comm -23 "$1" "$2")
	if [ -n "$names" ]; then
		fail=1
		echo "check-symbols: $3:" >&2
		sed 's/^/    /' <<<"$names" >&2
	fi
}
report "$tmp/hdr" "$tmp/map" "declared VMO_API in include/vmo.h but not listed in src/libvmo.map (add it to the current release's node)"
report "$tmp/map" "$tmp/hdr" "listed in src/libvmo.map but not declared VMO_API in include/vmo.h"
report "$tmp/map" "$tmp/lib" "listed in src/libvmo.map but not exported by $lib (not defined, or defined without VMO_API)"
report "$tmp/lib" "$tmp/map" "exported by $lib but not listed in src/libvmo.map"
if [ -n "$dups" ]; then
	fail=1
	echo "check-symbols: listed more than once in src/libvmo.map:" >&2
	sed 's/^/    /' <<<"$dups" >&2
fi
if [ "$fail" != 0 ]; then
	echo "check-symbols: FAILED: libvmo.so, src/libvmo.map and include/vmo.h disagree (above)" >&2
	exit 1
fi
echo "check-symbols: ok: $(wc -l <"$tmp/lib") functions, the same in libvmo.so, src/libvmo.map and include/vmo.h"
