#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_cache_fuse.sh BUILD_DIR - examples/blockcache_fuse: a read-only FUSE
# file system whose block reads go through the yield cache.  The file read
# through the mount must equal the backing file byte for byte (whole, and at
# random offsets and lengths that straddle blocks and the end), and a second
# pass must be served from the yield cache rather than the disk.
set -u
build=${1:?usage: $0 BUILD_DIR}
fsbin=$build/examples/blockcache_fuse
[ -x "$fsbin" ] || { echo "SKIP: $fsbin not built (needs libfuse3: scripts/deps.sh)"; exit 77; }
[ -c /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
command -v fusermount3 >/dev/null || { echo "SKIP: no fusermount3"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root to mount"; exit 77; }

dir=$(mktemp -d "${TMPDIR:-/var/tmp}/vmo-cache-fuse-XXXXXX")
mnt=$dir/mnt
mkdir "$mnt"
pid=
cleanup() {
	fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
	[ -n "$pid" ] && { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
	rm -rf "$dir"
}
trap cleanup EXIT

# 24 MiB + 1234 bytes: the last block is partial
head -c $((24 * 1024 * 1024 + 1234)) /dev/urandom >"$dir/data.bin"
"$fsbin" --block 64 --pool 8 "$dir/data.bin" "$mnt" >"$dir/fs.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	[ -f "$mnt/data.bin" ] && break
	kill -0 $pid 2>/dev/null || break
	sleep 0.05
done
if [ ! -f "$mnt/data.bin" ]; then
	cat "$dir/fs.log"
	if grep -qiE "permission|not permitted|fuse: device not found" "$dir/fs.log"; then
		echo "SKIP: cannot mount FUSE here"
		exit 77
	fi
	echo "FAIL: the file system did not come up"
	exit 1
fi

fail=0
stat_of() { awk -F= -v k="$1" '$1 == k { print $2 }' "$mnt/.cache_stats"; }
cmp "$dir/data.bin" "$mnt/data.bin" || { echo "FAIL: first pass differs"; fail=1; }
d1=$(stat_of disk_reads)
cmp "$dir/data.bin" "$mnt/data.bin" || { echo "FAIL: second pass differs"; fail=1; }
d2=$(stat_of disk_reads)
hits=$(stat_of cache_hits)
echo "disk reads: first pass $d1, second pass $((d2 - d1)); cache hits $hits"
# 24 MiB in 64 KiB blocks is 385 blocks; the second pass comes from the cache
[ "$d1" -ge 385 ] || { echo "FAIL: first pass read only $d1 blocks"; fail=1; }
[ $((d2 - d1)) -lt 40 ] || { echo "FAIL: second pass read $((d2 - d1)) blocks from the disk"; fail=1; }
[ "${hits:-0}" -ge 345 ] || { echo "FAIL: only ${hits:-0} cache hits"; fail=1; }

# random reads, straddling blocks and the end of the file
size=$(stat -c %s "$dir/data.bin")
for i in $(seq 200); do
	off=$(( (RANDOM * 32768 + RANDOM) % size ))
	len=$(( RANDOM % 200000 + 1 ))
	a=$(dd if="$dir/data.bin" bs=64K iflag=skip_bytes,count_bytes skip=$off count=$len status=none | md5sum)
	b=$(dd if="$mnt/data.bin" bs=64K iflag=skip_bytes,count_bytes skip=$off count=$len status=none | md5sum)
	[ "$a" = "$b" ] || { echo "FAIL: read of $len bytes at $off differs"; fail=1; break; }
done
cat "$mnt/.cache_stats"
[ $fail -eq 0 ] && echo "test_cache_fuse: ok"
exit $fail
