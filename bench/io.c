/* SPDX-License-Identifier: MIT */
/* bench/io: object I/O without a mapping, in one run against baselines.
 *
 *   transfer: vmo_object_transfer of a resident range (data moved, source
 *     discarded) against a plain memcpy of the same bytes between two
 *     buffers: the kernel has no call that moves page-cache pages between
 *     shmem files, so a transfer is a copy (through a buffer) plus a punch;
 *   read: vmo_object_read of a resident range against memcpy (the pread of
 *     each page under its lock);
 *   prefetch: the time for a thread to touch every page of a fresh range
 *     in order, after vmo_object_prefetch(VMO_WAIT) of the range, against
 *     the same touches served by demand faults (read-ahead on); and the
 *     prefetch itself.
 *
 * Environment: VMO_BENCH_MIB (default 256; 1024 for the 1 GiB). */
#include "lib/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int main(void)
{
	size_t mib = env_ul("VMO_BENCH_MIB", 256), npages = mib << 8, len = npages * PG;
	char *src = make_data(npages, 3), *dst = malloc(len);
	struct vmo_engine *eng;
	int rc = vmo_engine_create(NULL, &eng);
	if (rc)
		die("vmo_engine_create", rc);
	struct vmo_object_opts oo = { .size = len };
	char *zsrc = calloc(1, len);
	struct vmo_object *a = bench_mem_create(eng, src, npages, &oo, true);
	struct vmo_object *b = bench_mem_create(eng, zsrc, npages, &oo, true);

	/* baseline: memcpy of the same bytes (both buffers touched first) */
	memset(dst, 1, len);
	uint64_t t0 = now_ns();
	memcpy(dst, src, len);
	double memcpy_ms = (double)(now_ns() - t0) / 1e6;

	/* everything of a resident */
	if ((rc = vmo_object_prefetch(a, 0, len, VMO_WAIT)))
		die("vmo_object_prefetch", rc);
	t0 = now_ns();
	ssize_t got = vmo_object_read(a, 0, dst, len);
	double read_ms = (double)(now_ns() - t0) / 1e6;
	if (got != (ssize_t)len || memcmp(dst, src, len))
		die("vmo_object_read", -5);

	t0 = now_ns();
	if ((rc = vmo_object_transfer(b, 0, a, 0, len)))
		die("vmo_object_transfer", rc);
	double transfer_ms = (double)(now_ns() - t0) / 1e6;

	/* prefetch vs demand: a fresh object each, touched in order */
	vmo_object_unref(a);
	struct vmo_object *c = bench_mem_create(eng, src, npages, &oo, true);
	volatile char *p;
	if ((rc = vmo_map(c, 0, len, VMO_PROT_READ, (void **)&p)))
		die("vmo_map", rc);
	uint64_t sum = 0;
	t0 = now_ns();
	for (size_t i = 0; i < npages; i++)
		sum += (unsigned char)p[i * PG];
	double demand_ms = (double)(now_ns() - t0) / 1e6;
	if ((rc = vmo_return(c, VMO_WAIT)))
		die("vmo_return", rc);
	t0 = now_ns();
	if ((rc = vmo_object_prefetch(c, 0, len, VMO_WAIT)))
		die("vmo_object_prefetch", rc);
	double prefetch_ms = (double)(now_ns() - t0) / 1e6;
	t0 = now_ns();
	for (size_t i = 0; i < npages; i++)
		sum += (unsigned char)p[i * PG];
	double after_ms = (double)(now_ns() - t0) / 1e6;
	vmo_unmap(c, (void *)p, len);
	if (sum == 1)
		fputc(' ', stderr);

	printf("mib=%zu\n", mib);
	printf("memcpy_ms=%.1f\n", memcpy_ms);
	printf("object_read_ms=%.1f\n", read_ms);
	printf("object_read_vs_memcpy=%.2f\n", read_ms / memcpy_ms);
	printf("transfer_ms=%.1f\n", transfer_ms);
	printf("transfer_vs_memcpy=%.2f\n", transfer_ms / memcpy_ms);
	printf("touch_demand_ms=%.1f\n", demand_ms);
	printf("prefetch_ms=%.1f\n", prefetch_ms);
	printf("touch_after_prefetch_ms=%.1f\n", after_ms);
	printf("prefetch_plus_touch_vs_demand=%.2f\n", (prefetch_ms + after_ms) / demand_ms);
	vmo_object_unref(b);
	vmo_object_unref(c);
	vmo_engine_destroy(eng);
	munmap(src, len);
	free(dst);
	free(zsrc);
	return 0;
}
