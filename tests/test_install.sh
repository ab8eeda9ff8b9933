#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_install.sh BUILD_DIR - vmo installed into a temporary prefix is usable
# the ways the README says: a program built with pkg-config (the example
# pager), an out-of-tree CMake project with find_package(vmo) and the targets
# vmo::vmo and vmo::vmo_static (tests/install/), and the same pkg-config build
# after the prefix is moved (libvmo.pc finds its prefix from where it is);
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

# 3. the prefix moved: libvmo.pc follows it
cp -a "$prefix" "$work/moved"

# 4. uninstall removes every file it installed (the directories stay)
cmake --build "$build" --target uninstall >"$work/uninstall.log" 2>&1 || { cat "$work/uninstall.log"; fail "uninstall"; }
left=$(find "$prefix" -type f -o -type l)
[ -z "$left" ] || fail "uninstall left: $left"
echo "uninstall: ok"

build_pc "$work/moved" "$work/rot13-moved"
run "$work/rot13-moved" "example built from the moved prefix"
