/* SPDX-License-Identifier: MIT */
/* bench/clone: copy-on-write clones, in one run.
 *
 *   clone creation with a large resident source (VMO_BENCH_MIB, default
 *   256; 1024 for the 1 GiB) against one with 1 MiB resident, both
 *   clean (target: within 2x of each other: the cost is what the source
 *   holds dirty, written back first, not what it holds);
 *   the first write to a page of a source that has a clone (a write fault
 *   that pushes the page to the clone first) against the first write to a
 *   page of a plain clean object (a write fault alone), per page, over a
 *   range written in order. */
#include "lib/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static double clone_ms(struct vmo_engine *eng, char *src, size_t npages, size_t resident_pages)
{
	struct vmo_object_opts oo = { .size = npages * PG };
	struct vmo_object *o = bench_mem_create(eng, src, npages, &oo, true), *c;
	int rc = vmo_object_prefetch(o, 0, resident_pages * PG, VMO_WAIT);
	if (rc)
		die("vmo_object_prefetch", rc);
	double best = 1e9;
	for (int i = 0; i < 5; i++) {
		uint64_t t0 = now_ns();
		if ((rc = vmo_object_clone(o, NULL, NULL, NULL, &c)))
			die("vmo_object_clone", rc);
		double ms = (double)(now_ns() - t0) / 1e6;
		if (ms < best)
			best = ms;
		vmo_object_unref(c);
	}
	vmo_object_unref(o);
	return best;
}

/* ns per first write to npages clean mapped pages of an object (with a
 * clone made first, or not) */
static double first_write_ns(struct vmo_engine *eng, char *src, size_t npages, bool cloned)
{
	struct vmo_object_opts oo = { .size = npages * PG };
	void *base;
	struct vmo_object *o = bench_mem_object(eng, src, npages, &oo, &base), *c = NULL;
	volatile uint64_t *p = base;
	uint64_t sum = 0;
	for (size_t i = 0; i < npages; i++) /* mapped, clean, write-protected */
		sum += p[i * PG / 8];
	int rc;
	if (cloned && (rc = vmo_object_clone(o, NULL, NULL, NULL, &c)))
		die("vmo_object_clone", rc);
	uint64_t t0 = now_ns();
	for (size_t i = 0; i < npages; i++)
		p[i * PG / 8] = i;
	double ns = (double)(now_ns() - t0) / (double)npages;
	if (sum == 1)
		fputc(' ', stderr);
	if (c)
		vmo_object_unref(c);
	vmo_unmap(o, base, npages * PG);
	vmo_object_unref(o);
	return ns;
}

int main(void)
{
	size_t mib = env_ul("VMO_BENCH_MIB", 256), npages = mib << 8;
	char *src = make_data(npages, 5);
	struct vmo_engine *eng;
	int rc = vmo_engine_create(NULL, &eng);
	if (rc)
		die("vmo_engine_create", rc);
	if (!(vmo_engine_features(eng) & VMO_FEAT_WP)) {
		printf("skipped=no write-protect faults on shmem\n");
		return 0;
	}
	double big = clone_ms(eng, src, npages, npages), small = clone_ms(eng, src, npages, 256);
	size_t wpages = npages < 16384 ? npages : 16384;
	double plain = first_write_ns(eng, src, wpages, false), cow = first_write_ns(eng, src, wpages, true);
	printf("resident_mib=%zu\n", mib);
	printf("clone_ms_resident_%zumib=%.3f\n", mib, big);
	printf("clone_ms_resident_1mib=%.3f\n", small);
	figure_target("clone_big_vs_small", 2, big / small, "<=", 2);
	printf("first_write_plain_ns=%.0f\n", plain);
	printf("first_write_cloned_ns=%.0f\n", cow);
	printf("first_write_cloned_vs_plain=%.2f\n", cow / plain);
	vmo_engine_destroy(eng);
	munmap(src, npages * PG);
	return 0;
}
