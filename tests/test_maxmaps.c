/* SPDX-License-Identifier: MIT */
/* test_maxmaps: as many views as the process may have.  Views of one page
 * are mapped until vmo_map fails: it must fail with -ENOMEM and a detail
 * that names vm.max_map_count (each view is one mapping), not crash or
 * hang.  Every view then still reads its page, and all of them unmap, in an
 * order unlike the mapping order (the per-view tables are trees: before,
 * unmapping tens of thousands of views took quadratic time). */
#include "helper.h"

#include <unistd.h>

#define PG 4096u
#define NPG 1024

static int rd(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	(void)ctx;
	(void)flags;
	uint64_t *w = buf;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = t_pattern(off + i * 8);
	return 0;
}

static const struct vmo_pager_ops ops = { .read = rd };

static void case_to_the_limit(void)
{
	alarm(300); /* a hang is a failure */
	long maxmap = t_max_map_count();
	if (maxmap > 200000)
		t_skip_case("vm.max_map_count is %ld: too many views to make in a test", maxmap);
	struct vmo_engine *eng = t_engine(2);
	struct vmo_object *o;
	struct vmo_object_opts oo = { .size = (uint64_t)NPG * PG };
	CHECK_OK(vmo_object_create(eng, &ops, NULL, &oo, &o));
	size_t cap = (size_t)maxmap + 16, n = 0;
#if defined(__SANITIZE_ADDRESS__)
	/* ASan maps its own memory on demand and aborts at the limit: under it,
	 * many views but not all of them (the -ENOMEM part is the normal build's). */
	bool to_limit = false;
	cap = (size_t)maxmap / 3;
#else
	bool to_limit = true;
#endif
	void **v = calloc(cap, sizeof *v);
	CHECK(v);
	int rc = 0;
	uint64_t t0 = t_now_ns();
	while (n < cap) {
		/* alternate protections: neighbouring views never merge */
		rc = vmo_map(o, (n % NPG) * PG, PG, (n & 1) ? VMO_PROT_READ : VMO_PROT_READ | VMO_PROT_WRITE, &v[n]);
		if (rc)
			break;
		n++;
	}
	uint64_t t_map = t_now_ns() - t0;
	if (to_limit) {
		CHECK_EQ(rc, -ENOMEM);
		CHECK(strstr(vmo_last_error_detail(), "vm.max_map_count"));
		printf("%zu views, then -ENOMEM: %s\n", n, vmo_last_error_detail());
		CHECK((long)n > maxmap / 2);
	} else {
		CHECK_OK(rc);
		printf("%zu views (not to the limit under ASan)\n", n);
	}
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK_EQ(st.mappings, n);
	/* a sample of views still read right */
	for (size_t i = 0; i < n; i += 97) {
		uint64_t x = 0;
		CHECK_EQ(t_probe_read((uint64_t *)v[i] + 3, &x, NULL), 0);
		CHECK_EQ(x, t_pattern((i % NPG) * PG + 24));
	}
	/* unmap in a scattered order: every 7th, then the rest */
	t0 = t_now_ns();
	for (size_t s = 0; s < 7; s++)
		for (size_t i = s; i < n; i += 7)
			CHECK_OK(vmo_unmap(o, v[i], PG));
	uint64_t t_unmap = t_now_ns() - t0;
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK_EQ(st.mappings, 0);
	printf("map %.1f ms, unmap %.1f ms\n", t_map / 1e6, t_unmap / 1e6);
	free(v);
	vmo_object_unref(o);
	CHECK_OK(vmo_engine_destroy(eng));
}

int main(int argc, char **argv)
{
	return t_main(argc, argv, T_CASES({ "to-the-limit", case_to_the_limit }));
}
