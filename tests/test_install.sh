#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_install.sh BUILD_DIR - vmo installed into a temporary prefix is usable
# the ways the README says: a program built with pkg-config (the example
# pager), an out-of-tree CMake project with find_package(vmo) and the targets
# vmo::vmo and vmo::vmo_static (tests/install/), and the same pkg-config build
# after the prefix is moved (libvmo.pc finds its prefix from where it is);
# the man pages, read with man from the prefix (when pandoc built them);
# then uninstall removes every file installed.
# Each program runs and checks what it read and wrote back.
set -u
build=${1:?usage: $0 BUILD_DIR}
top=$(cd "$(dirname "$0")/.." && pwd)
# An ASan/UBSan library needs its runtime in every program that links it.
if grep -q "^VMO_SANITIZE:BOOL=ON" "$build/CMakeCache.txt" 2>/dev/null; then
	echo "SKIP: a sanitizer build is not installed"
	exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
fail() { echo "FAILED: $*"; exit 1; }

cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "cmake --install"; }
pc=$(find "$prefix" -name libvmo.pc | head -n1)
[ -n "$pc" ] || fail "no libvmo.pc installed"
echo "installed: $(cd "$prefix" && find . -name 'libvmo.pc' -o -name 'vmoConfig.cmake' -o -name vmo.h | sort | tr '\n' ' ')"

# 1. pkg-config, as the README and the example say
build_pc() { # PREFIX OUT
	local pcdir
	pcdir=$(dirname "$(find "$1" -name libvmo.pc | head -n1)")
	local flags
	flags=$(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs libvmo) || fail "pkg-config libvmo"
	case $flags in *"$1"*) ;; *) fail "pkg-config gives flags outside the prefix $1: $flags" ;; esac
	local libdir=${flags#*-L}; libdir=${libdir%% *}
	cc -o "$2" "$top/examples/rot13_pager.c" $flags -Wl,-rpath,"$libdir" || fail "cc rot13_pager.c with pkg-config"
}
run() { # PROGRAM WHAT
	local out rc
	out=$("$1" 2>&1); rc=$?
	[ $rc -eq 77 ] && { echo "SKIP: $2: $out"; exit 77; }
	[ $rc -eq 0 ] || { echo "$out"; fail "$2 exited $rc"; }
	echo "$2: ok"
}
build_pc "$prefix" "$work/rot13"
run "$work/rot13" "example built with pkg-config"

# 2. find_package(vmo) from an out-of-tree project
cmake -S "$top/tests/install" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$prefix" >"$work/consumer.log" 2>&1 &&
	cmake --build "$work/consumer" >>"$work/consumer.log" 2>&1 || { cat "$work/consumer.log"; fail "find_package(vmo) project"; }
run "$work/consumer/consumer" "find_package(vmo), vmo::vmo"
run "$work/consumer/consumer_static" "find_package(vmo), vmo::vmo_static"

# 3. the man pages (scripts/gen-man.py): man finds and renders vmo_map(3), the
# shared page of vmo_object_unref(3) and vmo(1) under the prefix, each with its
# name and prototype; every function vmo.h declares VMO_API has a page.
if grep -q "^VMO_PANDOC:FILEPATH=.*pandoc$" "$build/CMakeCache.txt" 2>/dev/null; then
	command -v man >/dev/null || fail "man not found (scripts/deps.sh installs man-db)"
	mandir=$prefix/share/man
	[ -d "$mandir/man3" ] || mandir=$(dirname "$(find "$prefix" -path '*/man3/vmo_map.3' | head -n1)")/..
	[ -f "$mandir/man3/vmo_map.3" ] || fail "no man3/vmo_map.3 installed under $prefix"
	page() { # SECTION NAME: the page as man renders it (from $mandir only)
		MANPATH=$mandir MANWIDTH=200 MANPAGER=cat PAGER=cat man "$1" "$2" 2>"$work/man.err" ||
			{ cat "$work/man.err"; fail "man $1 $2"; }
	}
	expect() { # TEXT WHAT: TEXT is in $out
		grep -qF -- "$1" <<<"$out" || { echo "$out" | head -n 40; fail "$2: no '$1'"; }
	}
	synopsis() { sed -n '/^SYNOPSIS/,/^DESCRIPTION/p' <<<"$out" | tr -s ' \n\t' '   '; }
	out=$(page 3 vmo_map)
	expect "vmo_map - " "man 3 vmo_map (NAME)"
	synopsis | grep -qF "#include <vmo.h> int vmo_map(struct vmo_object *obj, uint64_t off, size_t len, unsigned flags, void **addr);" ||
		{ echo "$out" | head -n 20; fail "man 3 vmo_map: no #include <vmo.h> and prototype in SYNOPSIS"; }
	out=$(page 3 vmo_object_unref)
	expect "vmo_object_ref, vmo_object_unref - " "man 3 vmo_object_unref (NAME)"
	synopsis | grep -qF "void vmo_object_unref(struct vmo_object *obj);" || fail "man 3 vmo_object_unref: no prototype"
	out=$(page 1 vmo)
	expect "vmo - " "man 1 vmo (NAME)"
	for c in $("$build/vmo" help | sed -n 's/^  vmo \([a-z]*\).*/\1/p'); do
		expect "vmo $c" "man 1 vmo (the command $c)"
	done
	# every VMO_API function of the installed vmo.h: a page that names it in
	# NAME and has its prototype, as vmo.h declares it, in SYNOPSIS
	hdr=$(find "$prefix" -name vmo.h | head -n1)
	n=0
	while IFS= read -r proto; do
		f=$(sed -E 's/\(.*//; s/.*[^A-Za-z0-9_]//' <<<"$proto")
		[ -e "$mandir/man3/$f.3" ] || fail "no man page for $f (man3/$f.3)"
		out=$(page 3 "$f")
		sed -n '/^NAME/,/^SYNOPSIS/p' <<<"$out" | grep -qE "(^|[ ,])$f(,| -|$)" || fail "man 3 $f: NAME does not name $f"
		synopsis | grep -qF -- "$proto" || { echo "$out" | head -n 20; fail "man 3 $f: SYNOPSIS does not declare: $proto"; }
		n=$((n + 1))
	done < <(awk '/^VMO_API[ \t]/ { p = 1; s = "" }
		p { s = s " " $0 }
		p && /;/ { p = 0; sub(/;.*/, ";", s); sub(/^ *VMO_API */, "", s); gsub(/[ \t]+/, " ", s)
		           gsub(/\( /, "(", s); print s }' "$hdr")
	[ "$n" -gt 50 ] || fail "only $n VMO_API functions found in $hdr"
	echo "man pages: ok ($n functions, vmo(1))"
else
	echo "man pages: not built (no pandoc when $build was configured)"
fi

# 4. the prefix moved: libvmo.pc follows it
cp -a "$prefix" "$work/moved"

# 5. uninstall removes every file it installed, man pages too (the directories stay)
cmake --build "$build" --target uninstall >"$work/uninstall.log" 2>&1 || { cat "$work/uninstall.log"; fail "uninstall"; }
left=$(find "$prefix" -type f -o -type l)
[ -z "$left" ] || fail "uninstall left: $left"
echo "uninstall: ok"

build_pc "$work/moved" "$work/rot13-moved"
run "$work/rot13-moved" "example built from the moved prefix"
