#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# scripts/check-deb.sh - build the Debian packages (debian/) out of tree and
# check what they hold and that they work, without installing them on the
# machine:
#   1. debian/libvmo0.symbols is what scripts/gen-deb-symbols.sh makes of
#      src/libvmo.map, and debian/changelog's upstream version is CMake's;
#   2. the checkout (tracked and untracked files, not the ignored build
#      directories) is copied to a temporary directory and built there with
#      `dpkg-buildpackage -us -uc -b`;
#   3. dpkg-deb -I / -c: each package's Depends, the files it must hold, no
#      file in two packages, the man pages where the build made them;
#   4. the packages are unpacked into a throwaway root (dpkg -x): the SONAME
#      of libvmo.so.0, then examples/rot13_pager.c built against the unpacked
#      libvmo-dev with pkg-config (PKG_CONFIG_SYSROOT_DIR) and tests/install/
#      with find_package(vmo), each run with LD_LIBRARY_PATH on the unpacked
#      libvmo0 (checked with ldd), and the unpacked vmo tool run (vmo run
#      with the unpacked libvmo-run.so);
#   5. lintian on the result (errors fail; CHECK_DEB_LINTIAN=0 skips it).
# CHECK_DEB_KEEP=1 keeps the temporary directory (its path is printed).
# Needs root or userfaultfd access for step 4's programs (CI runs as root).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
fail() { echo "check-deb: FAILED: $*" >&2; exit 1; }
step() { echo "== check-deb: $*"; }

"$top/scripts/deps.sh" # debhelper, dpkg-dev, fakeroot, lintian and the build dependencies
for c in dpkg-buildpackage dpkg-deb dpkg-architecture dpkg-parsechangelog git pkg-config cc cmake objdump ldd; do
	command -v "$c" >/dev/null || fail "$c not found (scripts/deps.sh installs what the packages need)"
done

# 1. What is generated or repeated in debian/ agrees with the tree.
step "debian/libvmo0.symbols against src/libvmo.map"
diff -u debian/libvmo0.symbols <(scripts/gen-deb-symbols.sh) ||
	fail "debian/libvmo0.symbols is not what src/libvmo.map gives: scripts/gen-deb-symbols.sh >debian/libvmo0.symbols"
upstream=$(sed -nE 's/^project\(vmo VERSION ([0-9.]+).*/\1/p' CMakeLists.txt)
debver=$(dpkg-parsechangelog -S Version)
[ -n "$upstream" ] || fail "no project(vmo VERSION X.Y.Z) in CMakeLists.txt"
[ "${debver%-*}" = "$upstream" ] ||
	fail "debian/changelog says $debver, CMakeLists.txt $upstream: add a changelog entry $upstream-1 (dch -v $upstream-1)"
arch=$(dpkg --print-architecture)
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)

work=$(mktemp -d /tmp/check-deb.XXXXXX)
if [ "${CHECK_DEB_KEEP:-0}" = 1 ]; then
	echo "check-deb: keeping $work"
else
	trap 'rm -rf "$work"' EXIT
fi
src=$work/vmo-$upstream
mkdir -p "$src"

# 2. Build from a copy: the checkout's files as they are now (committed or
#    not), without build directories or anything else .gitignore names.
step "dpkg-buildpackage -us -uc -b in $src"
git ls-files -z --cached --others --exclude-standard |
	(while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done) |
	tar --null -T - -cf - | tar -xf - -C "$src"
if ! (cd "$src" && dpkg-buildpackage -us -uc -b -j2) >"$work/build.log" 2>&1; then
	tail -n 60 "$work/build.log" >&2
	fail "dpkg-buildpackage (the whole log: CHECK_DEB_KEEP=1, then $work/build.log)"
fi
grep -E "^(dpkg-gensymbols|dpkg-shlibdeps|dh_[a-z_]+): warning" "$work/build.log" | sed 's/^/  /' || true
deb() { echo "$work/${1}_${debver}_$arch.deb"; }
for p in libvmo0 libvmo-dev vmo-tools; do
	[ -f "$(deb $p)" ] || fail "dpkg-buildpackage made no $(basename "$(deb $p)") ($(cd "$work" && ls ./*.deb))"
done

# 3. The control fields and the files of each package.
field() { dpkg-deb -f "$(deb "$1")" "$2"; }
step "Depends"
for p in libvmo0 libvmo-dev vmo-tools; do
	printf '  %-10s Depends: %s\n' "$p" "$(field $p Depends)"
done
field libvmo-dev Depends | grep -qF "libvmo0 (= $debver)" || fail "libvmo-dev does not depend on libvmo0 (= $debver)"
for d in libc6 liblz4-1 libzstd1 libnbd0; do
	field libvmo0 Depends | grep -qE "(^|, )$d( |,|$)" || fail "libvmo0 does not depend on $d (dpkg-shlibdeps)"
done
field libvmo0 Multi-Arch | grep -qx same || fail "libvmo0 is not Multi-Arch: same"
# libvmo0's own shlibs and symbols files, what programs built against it depend on
dpkg-deb --ctrl-tarfile "$(deb libvmo0)" | tar -xf - -C "$work" ./shlibs ./symbols ||
	fail "libvmo0 has no shlibs or symbols control file (dh_makeshlibs)"
dpkg-deb -I "$(deb libvmo0)" triggers >"$work/triggers" || fail "libvmo0 has no triggers control file (ldconfig)"
[ "$(grep -v '^#' "$work/triggers")" = "activate-noawait ldconfig" ] || fail "libvmo0's triggers: $(cat "$work/triggers")"
grep -qx "libvmo 0 libvmo0 (>= $upstream)" "$work/shlibs" || fail "libvmo0's shlibs: $(cat "$work/shlibs")"
nsym=$(grep -c '@VMO_0' "$work/symbols")
[ "$nsym" = "$(grep -c '@VMO_0' debian/libvmo0.symbols)" ] || fail "libvmo0's symbols file has $nsym symbols, debian/libvmo0.symbols more or fewer"
echo "  libvmo0 shlibs: $(cat "$work/shlibs"); symbols: $nsym (versions $(sed -nE 's/.*@(VMO_[0-9.]+) .*/\1/p' "$work/symbols" | sort -uV | tr '\n' ' '))"

step "files (dpkg-deb -c)"
for p in libvmo0 libvmo-dev vmo-tools; do
	dpkg-deb -c "$(deb $p)" | awk '{ f = $6; sub(/^\.\//, "/", f); if (f !~ /\/$/) print f }' | sort >"$work/$p.files"
	echo "  $p: $(wc -l <"$work/$p.files") files"
done
must() { # PACKAGE PATH...: each path (a grep -x regex) is in the package
	local p=$1; shift
	for f; do grep -qx "$f" "$work/$p.files" || fail "$p lacks $f (it holds: $(tr '\n' ' ' <"$work/$p.files"))"; done
}
must libvmo0 "/usr/lib/$ma/libvmo.so.0" "/usr/lib/$ma/libvmo.so.$upstream"
must libvmo-dev /usr/include/vmo.h /usr/include/vmo_version.h "/usr/lib/$ma/libvmo.so" "/usr/lib/$ma/libvmo.a" \
	"/usr/lib/$ma/pkgconfig/libvmo.pc" "/usr/lib/$ma/cmake/vmo/vmoConfig.cmake" \
	"/usr/lib/$ma/cmake/vmo/vmoConfigVersion.cmake" "/usr/lib/$ma/cmake/vmo/vmoTargets.cmake" \
	/usr/share/doc/libvmo-dev/copyright /usr/share/doc/libvmo-dev/examples/rot13_pager.c
must vmo-tools /usr/bin/vmo /usr/sbin/vmod "/usr/lib/$ma/vmo/libvmo-run.so" /lib/systemd/system/vmod.service /lib/systemd/system/vmod.socket \
	/usr/share/doc/vmo-tools/copyright
grep -E '\.so' "$work/libvmo0.files" | grep -v "^/usr/lib/$ma/libvmo\.so\.0" && fail "libvmo0 holds another library (above)"
dups=$(cat "$work"/*.files | grep -v '^/usr/share/doc/' | sort | uniq -d)
[ -z "$dups" ] || fail "files in more than one package: $dups"
# The man pages: packaged where the build made them (pandoc), never lost.
man_built=""
[ -d "$src/debian/tmp/usr/share/man" ] && man_built=$(cd "$src/debian/tmp" && find usr/share/man -type f | sort)
if [ -n "$man_built" ]; then
	while read -r m; do
		case $m in */man3/*) p=libvmo-dev ;; *) p=vmo-tools ;; esac
		grep -qxE "/$m(\.gz)?" "$work/$p.files" || fail "$m was built but $p does not hold it"
	done <<<"$man_built"
	echo "  man pages: $(wc -l <<<"$man_built") built, each in its package"
else
	echo "  man pages: none built (the build makes them with pandoc), none packaged"
fi

# 4. Unpacked into a throwaway root, used as a program would use them.
root=$work/root
step "dpkg -x into $root"
for p in libvmo0 libvmo-dev vmo-tools; do dpkg -x "$(deb $p)" "$root"; done
lib=$root/usr/lib/$ma
soname=$(objdump -p "$lib/libvmo.so.$upstream" | awk '$1 == "SONAME" { print $2 }')
[ "$soname" = libvmo.so.0 ] || fail "libvmo.so.$upstream's SONAME is '$soname', the package libvmo0 wants libvmo.so.0"
echo "  SONAME $soname (package libvmo0)"
grep -qx 'prefix=/usr' "$lib/pkgconfig/libvmo.pc" || fail "libvmo.pc: $(grep prefix= "$lib/pkgconfig/libvmo.pc"), not prefix=/usr"

if [ "$(id -u)" -ne 0 ] && [ "$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null)" != 1 ] &&
	! { [ -r /dev/userfaultfd ] && [ -w /dev/userfaultfd ]; }; then
	echo "check-deb: the programs need userfaultfd: run as root (or vm.unprivileged_userfaultfd=1); packages built and checked, not run" >&2
	exit 77
fi
runit() { # WHAT PROGRAM EXPECTED: run on the unpacked library, it must print EXPECTED
	local out rc=0 ldd_out
	ldd_out=$(LD_LIBRARY_PATH=$lib ldd "$2")
	grep -q "libvmo.so.0 => $lib/libvmo.so.0 " <<<"$ldd_out" ||
		fail "$1: libvmo.so.0 is not the unpacked one: $(grep libvmo <<<"$ldd_out")"
	out=$(LD_LIBRARY_PATH=$lib "$2" 2>&1) || rc=$?
	[ $rc -eq 0 ] || { echo "$out" >&2; fail "$1 exited $rc"; }
	grep -q "$3" <<<"$out" || fail "$1 printed no '$3': $out"
	echo "  $1: ran on $lib/libvmo.so.0: $(head -n 1 <<<"$out")"
}

step "examples/rot13_pager.c against the unpacked libvmo-dev (pkg-config)"
# PKG_CONFIG_SYSROOT_DIR: the flags point into the root; the unpacked .pc first,
# the system's after it for Requires.private (liblz4, libzstd, libnbd).
pcflags=$(PKG_CONFIG_SYSROOT_DIR=$root \
	PKG_CONFIG_LIBDIR=$lib/pkgconfig:/usr/lib/$ma/pkgconfig:/usr/share/pkgconfig \
	pkg-config --cflags --libs libvmo) || fail "pkg-config libvmo on the unpacked libvmo-dev"
echo "  pkg-config: $pcflags"
case $pcflags in *"-I$root/usr/include"*"-L$lib "*) ;; *) fail "pkg-config's flags do not point into $root: $pcflags" ;; esac
# shellcheck disable=SC2086 # the flags are words
cc -o "$work/rot13_pager" examples/rot13_pager.c $pcflags || fail "cc rot13_pager.c \$(pkg-config --cflags --libs libvmo)"
runit rot13_pager "$work/rot13_pager" "Hello from a user-level pager"

step "tests/install/ with find_package(vmo) from the unpacked libvmo-dev"
if ! { cmake -S tests/install -B "$work/consumer" -DCMAKE_PREFIX_PATH="$root/usr" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF &&
	cmake --build "$work/consumer"; } >"$work/consumer.log" 2>&1; then
	cat "$work/consumer.log" >&2
	fail "find_package(vmo) against the unpacked libvmo-dev"
fi
grep -q "vmo_DIR:PATH=$lib/cmake/vmo" "$work/consumer/CMakeCache.txt" ||
	fail "find_package(vmo) found another vmo: $(grep vmo_DIR "$work/consumer/CMakeCache.txt")"
runit "find_package(vmo), vmo::vmo" "$work/consumer/consumer" "^$upstream ok$"

step "the unpacked vmo tool"
ver=$(LD_LIBRARY_PATH=$lib "$root/usr/bin/vmo" --version) || fail "vmo --version"
echo "  vmo --version: $(tr '\n' ' ' <<<"$ver")"
grep -q "$upstream" <<<"$ver" || fail "vmo --version does not say $upstream"
"$root/usr/sbin/vmod" --help >/dev/null 2>&1 || fail "vmod --help"
# vmo run finds its preload library from where vmo is (bin/../lib/<triplet>/vmo)
# shellcheck disable=SC2016 # $LD_PRELOAD is the child shell's
preload=$(timeout 120 "$root/usr/bin/vmo" run -- /bin/sh -c 'echo "$LD_PRELOAD"') || fail "vmo run -- sh"
case $preload in "$root/usr/bin/../lib/$ma/vmo/libvmo-run.so"*) ;; *) fail "vmo run preloads '$preload', not the unpacked libvmo-run.so" ;; esac
echo "  vmo run: a program ran with LD_PRELOAD=$preload"

# 5. lintian (a minute or so): errors fail, the rest is shown.
if [ "${CHECK_DEB_LINTIAN:-1}" != 0 ] && command -v lintian >/dev/null; then
	step "lintian"
	changes=$work/vmo_${debver}_$arch.changes
	lintian --fail-on error --display-info "$changes" 2>&1 | sed 's/^/  /' || fail "lintian reports errors (above)"
fi
echo "check-deb: ok: libvmo0, libvmo-dev and vmo-tools $debver built, checked, unpacked, built against and run"
