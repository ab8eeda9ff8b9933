#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# scripts/umap-tests.sh UMAP_SRC [BUILD_DIR] - build LLNL UMap's own test and
# example programs from a UMap source tree you point it at (nothing is
# fetched) against libvmo-umap (docs/umap.md), run each with small sizes,
# and print one line per program: pass, FAIL (its output is kept) or skip.
# BUILD_DIR: vmo's build directory (default build), with libvmo-umap built.
# UMAP_BUILD=DIR (a build of that UMap tree): pfbenchmark is also run with
# UMap's own binaries, its figures printed beside vmo's ("umap-ref" lines).
# Needs g++ with OpenMP (build-essential). Exit: 0 all ran passed, 1 a FAIL.
set -uo pipefail
src=${1:?usage: scripts/umap-tests.sh UMAP_SRC [BUILD_DIR]}
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${2:-$top/build}" && pwd)
[ -f "$src/src/umap/umap.h" ] || { echo "umap-tests: $src is not a UMap source tree (no src/umap/umap.h)" >&2; exit 2; }
[ -e "$build/libvmo-umap.so" ] || { echo "umap-tests: $build/libvmo-umap.so is not built" >&2; exit 2; }
work=$(mktemp -d /tmp/vmo-umap-tests-XXXXXX)
trap 'rm -rf "$work"' EXIT
# UMap's headers are not used: "umap/umap.h" is vmo's (compat/umap/umap.h).
# Two of UMap's programs have races of their own, which the optimisation
# level decides: churn's threads stop on a plain bool that -O2 hoists out of
# their loops (they spin for ever, with UMap as with vmo), so churn is built
# -O0 (UMap's default from a git tree); pfbenchmark's read check keeps the
# value it read in a variable shared by all its OpenMP threads, which -O0
# stores and reloads (another thread's value compared: a false mismatch), so
# it and the rest are built -O2.
cflags=(-O2 -g -fopenmp -I"$top/compat" -D_GNU_SOURCE)
libs=(-L"$build" -lvmo-umap -lvmo -Wl,-rpath,"$build" -lpthread)
export UMAP_BUFSIZE=${UMAP_BUFSIZE:-1024} UMAP_PAGE_FILLERS=${UMAP_PAGE_FILLERS:-2} OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
fails=0

build_one() { # NAME LANG SOURCES...
	local name=$1 lang=$2
	shift 2
	local cc=g++
	[ "$lang" = c ] && cc=gcc
	if ! $cc "${cflags[@]}" -o "$work/$name" "$@" "${libs[@]}" >"$work/$name.build" 2>&1; then
		echo "umap-tests: $name: skip (does not build against the C API: $(grep -m1 -o 'error: .*' "$work/$name.build"))"
		return 1
	fi
}

run_one() { # NAME CHECK-REGEX ARGS...
	local name=$1 want=$2
	shift 2
	local t0=$SECONDS
	if (cd "$work" && timeout 600 "$@") >"$work/$name.out" 2>&1 && grep -Eq "$want" "$work/$name.out"; then
		echo "umap-tests: $name: pass ($((SECONDS - t0)) s) $(grep -Em1 "$want" "$work/$name.out" | tr -s ' ' | cut -c1-120)"
	else
		echo "umap-tests: $name: FAIL; its output:"
		sed 's/^/    /' "$work/$name.out" | tail -20
		fails=$((fails + 1))
	fi
}

t=$src/tests
if build_one flush_buffer cxx "$t/flush_buffer/flush_buffer.cpp"; then
	run_one flush_buffer "uunmap" "$work/flush_buffer" "$work/fb.dat"
fi
if build_one multi_thread cxx "$t/multi_thread/multi_thread.cpp"; then
	run_one multi_thread "uunmap" "$work/multi_thread" "$work/mt"
fi
if build_one pfbenchmark cxx "$t/pfbenchmark/pfbenchmark.cpp"; then
	for mode in read write readmodifywrite; do
		ln -sf "$work/pfbenchmark" "$work/pfbenchmark-$mode"
	done
	# (write first, making the file: it puts the values read and
	# readmodifywrite check; the others use that file, --noinit)
	for mode in write read readmodifywrite; do
		init=--noinit
		[ -e "$work/pf.dat" ] || init=
		run_one "pfbenchmark-$mode" "[0-9]" "$work/pfbenchmark-$mode" $init -p 16384 -t 2 -f "$work/pf.dat"
		run_one "pfbenchmark-$mode-shuffle" "[0-9]" "$work/pfbenchmark-$mode" --noinit --shuffle -p 16384 -t 2 -f "$work/pf.dat"
	done
fi
if [ -n "${UMAP_BUILD:-}" ] && [ -x "$UMAP_BUILD/tests/pfbenchmark/pfbenchmark-write" ]; then
	rm -f "$work/ref.dat"
	for mode in write read readmodifywrite; do
		for sh in "" --shuffle; do
			init=--noinit
			[ -e "$work/ref.dat" ] || init=
			line=$(cd "$work" && LD_LIBRARY_PATH="$UMAP_BUILD/src/umap" timeout 600 \
				"$UMAP_BUILD/tests/pfbenchmark/pfbenchmark-$mode" $init $sh -p 16384 -t 2 -f "$work/ref.dat" 2>&1 |
				grep -Em1 '^umap,')
			echo "umap-tests: umap-ref pfbenchmark-$mode${sh:+-shuffle}: ${line:-no figure}"
		done
	done
fi
if build_one churn cxx -O0 "$t/churn/churn.cpp" "$t/churn/options.cpp"; then
	run_one churn "[0-9]" "$work/churn" -b 256 -c 1024 -l 1024 -t 2 -r 1 -w 1 -d 5 -f "$work/churn.dat"
fi
# stream through umap (-DUSE_UMAP; UMap's own build leaves it on mmap), as
# its run_stream.sh does: the arrays initialised, then the kernels under a
# buffer of half the data
if cflags+=(-DUSE_UMAP) && build_one stream c "$src/examples/stream/stream.c"; then
	run_one stream-init "array_length" env UMAP_PAGESIZE=16384 "$work/stream" 819200 1
	run_one stream "Solution Validates" env UMAP_PAGESIZE=16384 UMAP_BUFSIZE=600 "$work/stream" 819200 0
fi
ex=$src/examples
if build_one umapsort cxx -I"$ex/umapsort" "$ex/umapsort/main.cpp"; then
	# (its run_umapsort.sh: 64 MiB of data through a 32 MiB buffer; here 16 MiB)
	run_one umapsort "Validate took" env UMAP_PAGESIZE=16384 UMAP_BUFSIZE=1024 "$work/umapsort" -f "$work/sort.dat" -p 4096 -N 1 -t 2
fi
if build_one ingest_edge_list cxx -I"$ex/bfs" "$ex/bfs/rmat_graph_generator/ingest_edge_list.cpp" &&
	build_one bfs cxx -I"$ex/bfs" "$ex/bfs/main.cpp"; then
	# (its run_bfs.sh: the graph of the edge lists it ships, checked against its reference levels)
	run_one bfs-ingest "." "$work/ingest_edge_list" -g "$work/graph" "$ex"/bfs/data/edge_list_rmat_s10_?_of_4
	run_one bfs "Level" "$work/bfs" -n 1017 -m 32768 -g "$work/graph" -l "$ex/bfs/data/bfs_level_reference"
fi
echo "umap-tests: $fails failed"
[ $fails -eq 0 ]
