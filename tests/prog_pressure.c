/* SPDX-License-Identifier: MIT */
/* prog_pressure: an engine with no budget of its own, holding an object much
 * larger than the memory cgroup it runs in, while the test script runs a hog
 * beside it.  Memory pressure (PSI / the cgroup's headroom) must cap the
 * engine so that nothing is OOM-killed.
 *
 *   prog_pressure SIZE_MIB SECONDS [flags]
 *
 * Reads pages of a SIZE_MIB object (sequential sweeps) for SECONDS, checking
 * every word it reads, and prints key=value lines: max_resident_mib,
 * final_resident_mib, min_cap_mib (the smallest effective engine budget seen;
 * 0 if pressure never capped it), evictions. */
#include "helper.h"

#include <unistd.h>

#define PS 4096u

static int pat_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	for (size_t i = 0; i < len / 8; i += 512)
		((uint64_t *)buf)[i] = t_pattern(off + i * 8);
	return 0;
}
static const struct vmo_pager_ops pat_ops = { .read = pat_read };

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s SIZE_MIB SECONDS [engine-flags]\n", argv[0]);
		return 2;
	}
	uint64_t size = strtoull(argv[1], NULL, 0) << 20;
	int secs = atoi(argv[2]);
	struct vmo_engine_opts eo = { .flags = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 0) : 0 };
	struct vmo_engine *eng;
	int rc = vmo_engine_create(&eo, &eng);
	if (rc == -VMO_ENOUFFD)
		t_skip("%s", vmo_last_error_detail());
	CHECK_OK(rc);
	struct vmo_object_opts oo = { .size = size };
	struct vmo_object *o;
	CHECK_OK(vmo_object_create(eng, &pat_ops, NULL, &oo, &o));
	char *p;
	CHECK_OK(vmo_map(o, 0, size, VMO_PROT_READ, (void **)&p));
	uint64_t max_res = 0, min_cap = 0, t_end = t_now_ns() + (uint64_t)secs * 1000000000ull, n = 0;
	while (t_now_ns() < t_end) {
		for (uint64_t off = 0; off < size && t_now_ns() < t_end; off += PS) {
			CHECK_EQ(*(volatile uint64_t *)(p + off), t_pattern(off));
			if (++n % 256 == 0) {
				struct vmo_stats st;
				CHECK_OK(vmo_engine_stats(eng, &st));
				if (st.resident > max_res)
					max_res = st.resident;
				if (st.budget && (!min_cap || st.budget < min_cap))
					min_cap = st.budget;
			}
		}
	}
	struct vmo_stats st;
	CHECK_OK(vmo_engine_stats(eng, &st));
	printf("pages_read=%llu\nmax_resident_mib=%llu\nfinal_resident_mib=%llu\nmin_cap_mib=%llu\nevictions=%llu\n",
	       (unsigned long long)n, (unsigned long long)(max_res >> 20), (unsigned long long)(st.resident >> 20),
	       (unsigned long long)(min_cap >> 20), (unsigned long long)st.evictions);
	CHECK_OK(vmo_unmap(o, p, size));
	vmo_object_unref(o);
	CHECK_OK(vmo_engine_destroy(eng));
	return 0;
}
