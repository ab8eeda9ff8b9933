#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install the Debian packages vmo needs to build, test and benchmark.
# Idempotent and quick when everything is there; needs root (or sudo) otherwise.
set -euo pipefail
# clang and libclang-rt-14-dev (libFuzzer, the sanitizers' runtimes): scripts/fuzz.sh
# liblz4-dev, libzstd-dev, libnbd-dev: the compressed and NBD stores; nbdkit: their tests and benchmarks
# libjemalloc-dev: vmo run (the program's malloc, its heap on vmo); python3-numpy, sqlite3: its tests
# gnuplot-nox: bench/plot's pictures
# pandoc: the man pages, generated from docs/api.md (scripts/gen-man.py); man-db: tests/test_install.sh reads them
# libxxhash-dev: `vmo sum` (XXH3); xxhash: xxhsum, which test_tool checks it against
PKGS=(build-essential cmake ninja-build pkg-config python3 libfuse3-dev fuse3 clang libclang-rt-14-dev
      liblz4-dev libzstd-dev libnbd-dev nbdkit libjemalloc-dev python3-numpy sqlite3 gnuplot-nox pandoc man-db
      libxxhash-dev xxhash)
missing=()
# debhelper, dpkg-dev, fakeroot, lintian: the Debian packages (debian/, scripts/check-deb.sh)
PKGS+=(debhelper dpkg-dev fakeroot lintian)
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
