/* SPDX-License-Identifier: MIT */
/* test_big: a 64 GiB object over a pager that computes its data from the
 * offset allocates only the pages touched: ~1000 scattered pages read right,
 * the process's RSS grows by about that much (far below 64 GiB), and the
 * object's resident bytes are exactly the pages touched (read-ahead off). */
#include "helper.h"

#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096u
#define NTOUCH 1000

static _Atomic uint64_t pages_served;

static int calc_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	(void)ctx;
	(void)flags;
	uint64_t *w = buf;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = t_pattern(off + i * 8);
	atomic_fetch_add(&pages_served, len / PG);
	return 0;
}

static const struct vmo_pager_ops calc_ops = { .read = calc_read };

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void case_64g_sparse(void)
{
	alarm(60);
	setvbuf(stdout, NULL, _IONBF, 0);
	struct vmo_engine *eng = t_engine(2);
	const uint64_t size = 64ull << 30, npages = size / PG;
	struct vmo_object_opts oo = { .flags = VMO_OBJ_NO_READAHEAD, .size = size };
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, &calc_ops, NULL, &oo, &obj));
	CHECK_EQ(vmo_object_size(obj), size);

	long rss0 = t_rss_kb();
	CHECK(rss0 > 0);
	void *addr = NULL;
	CHECK_OK(vmo_map(obj, 0, size, VMO_PROT_READ | VMO_PROT_WRITE, &addr));
	uint64_t *p = addr;
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(obj, &st));
	CHECK_EQ(st.resident, 0);

	/* ~1000 distinct pages scattered over the 64 GiB, including both ends */
	uint64_t pages[NTOUCH];
	uint64_t rnd = 0xfeedface;
	pages[0] = 0;
	pages[1] = npages - 1;
	for (int i = 2; i < NTOUCH; i++)
		pages[i] = t_rand(&rnd) % npages;
	qsort(pages, NTOUCH, sizeof pages[0], cmp_u64);
	int n = 0;
	for (int i = 0; i < NTOUCH; i++)
		if (i == 0 || pages[i] != pages[n - 1])
			pages[n++] = pages[i];
	/* touch in a shuffled order, read one word and write another */
	uint64_t order[NTOUCH];
	memcpy(order, pages, sizeof(uint64_t) * (size_t)n);
	for (int i = n - 1; i > 0; i--) {
		int j = (int)(t_rand(&rnd) % (uint64_t)(i + 1));
		uint64_t t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (int i = 0; i < n; i++) {
		uint64_t off = order[i] * PG + (t_rand(&rnd) % (PG / 8)) * 8;
		CHECK_EQ(p[off / 8], t_pattern(off));
		p[order[i] * (PG / 8) + 1] = ~order[i];
	}
	/* the second pass faults nothing and sees the writes */
	CHECK_OK(vmo_object_stats(obj, &st));
	uint64_t faults = st.faults;
	for (int i = 0; i < n; i++) {
		CHECK_EQ(p[pages[i] * (PG / 8)], t_pattern(pages[i] * PG));
		CHECK_EQ(p[pages[i] * (PG / 8) + 1], ~pages[i]);
		CHECK_EQ(p[pages[i] * (PG / 8) + PG / 8 - 1], t_pattern(pages[i] * PG + PG - 8));
	}
	long rss1 = t_rss_kb();
	/* the worker counts a page just after the copy woke the faulting thread */
	uint64_t t0 = t_now_ns();
	do {
		CHECK_OK(vmo_object_stats(obj, &st));
	} while (st.resident != (uint64_t)n * PG && t_now_ns() - t0 < 2000000000ull);
	printf("touched %d pages of %llu; rss %ld -> %ld kB (+%ld kB); resident=%llu pages_read=%llu faults=%llu\n",
	       n, (unsigned long long)npages, rss0, rss1, rss1 - rss0, (unsigned long long)st.resident,
	       (unsigned long long)st.pages_read, (unsigned long long)st.faults);
	CHECK_EQ(st.faults, faults);
	CHECK_EQ(st.resident, (uint64_t)n * PG);
	CHECK_EQ(st.pages_read, n);
	CHECK_EQ(pages_served, n);
	/* RSS: at least the touched pages (they are mapped), at most a small
	 * multiple (page tables, the state table): far from 64 GiB */
	CHECK(rss1 - rss0 >= (long)n * 4 * 9 / 10);
	CHECK(rss1 - rss0 < 64 * 1024);

	/* a page never touched is still asked of the pager, with the right data */
	uint64_t fresh = 12345;
	while (bsearch(&fresh, pages, (size_t)n, sizeof pages[0], cmp_u64))
		fresh++;
	CHECK_EQ(p[fresh * (PG / 8) + 3], t_pattern(fresh * PG + 24));
	CHECK_EQ(pages_served, n + 1);

	CHECK_OK(vmo_unmap(obj, addr, size));
	long rss2 = t_rss_kb();
	/* the data pages left the address space (what stays is the object's
	 * page-state table until the object goes) */
	CHECK(rss1 - rss2 >= (long)n * 4 * 9 / 10);
	vmo_object_unref(obj);
	long rss3 = t_rss_kb();
	printf("after unmap: rss %ld kB, after unref: %ld kB\n", rss2, rss3);
	/* and the page-state table went with the object (~1 page per touched page) */
	CHECK(rss2 - rss3 >= (long)n * 4 / 2);
	CHECK_OK(vmo_engine_destroy(eng));
}

int main(int argc, char **argv)
{
	return t_main(argc, argv, T_CASES({ "64g-sparse", case_64g_sparse }));
}
