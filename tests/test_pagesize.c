/* SPDX-License-Identifier: MIT */
/* test_pagesize: objects with 4 KiB, 64 KiB and 2 MiB pages.  The pager is
 * only ever asked for offsets and lengths that are multiples of the page
 * size; data is right; one touch serves the whole page (no more pager calls
 * nor faults for the rest of it, and the whole page is resident); mappings
 * at offsets or of lengths that are not multiples of the page size are
 * -EINVAL. */
#include "helper.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

struct ppager {
	uint64_t psz;
	_Atomic int calls, misaligned;
	_Atomic uint64_t bytes;
};

static int pp_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct ppager *p = ctx;
	(void)flags;
	if (off % p->psz || len % p->psz || len == 0)
		atomic_fetch_add(&p->misaligned, 1);
	uint64_t *w = buf;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = t_pattern(off + i * 8);
	atomic_fetch_add(&p->calls, 1);
	atomic_fetch_add(&p->bytes, len);
	return 0;
}

static const struct vmo_pager_ops pp_ops = { .read = pp_read };

static uint64_t resident_pages_4k(void *p, size_t len)
{
	size_t n = len / 4096;
	unsigned char *vec = malloc(n);
	CHECK(vec);
	CHECK(mincore(p, len, vec) == 0);
	uint64_t r = 0;
	for (size_t i = 0; i < n; i++)
		r += vec[i] & 1;
	free(vec);
	return r;
}

static void wait_resident(struct vmo_object *obj, uint64_t want)
{
	struct vmo_stats st;
	uint64_t t0 = t_now_ns();
	do {
		CHECK_OK(vmo_object_stats(obj, &st));
	} while (st.resident != want && t_now_ns() - t0 < 2000000000ull);
	CHECK_EQ(st.resident, want);
}

static void one_size(struct vmo_engine *eng, uint32_t psz, bool readahead)
{
	struct ppager pp = { .psz = psz };
	const uint64_t npages = 8, size = npages * psz;
	struct vmo_object_opts oo = { .page_size = psz, .size = size,
				      .flags = readahead ? 0 : VMO_OBJ_NO_READAHEAD };
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, &pp_ops, &pp, &oo, &obj));
	CHECK_EQ(vmo_object_page_size(obj), psz);
	CHECK_EQ(vmo_object_size(obj), size);
	void *a = NULL;
	CHECK_OK(vmo_map(obj, 0, size, VMO_PROT_READ | VMO_PROT_WRITE, &a));
	const volatile uint64_t *w = a;

	if (!readahead) {
		/* touch one word in the middle of page 3 */
		uint64_t mid = 3 * (uint64_t)psz + psz / 2 + 8;
		CHECK_EQ(w[mid / 8], t_pattern(mid));
		CHECK_EQ(pp.calls, 1);
		CHECK_EQ(pp.bytes, psz);
		wait_resident(obj, psz);
		struct vmo_stats st;
		CHECK_OK(vmo_object_stats(obj, &st));
		uint64_t faults = st.faults;
		/* the whole page is there: every 4 KiB of it resident and mapped,
		 * every word right, with no further fault or pager call */
		CHECK_EQ(resident_pages_4k((char *)a + 3 * (uint64_t)psz, psz), psz / 4096);
		for (uint64_t off = 3 * (uint64_t)psz; off < 4 * (uint64_t)psz; off += 8)
			if (w[off / 8] != t_pattern(off)) {
				fprintf(stderr, "page size %u: word at %#llx wrong\n", psz, (unsigned long long)off);
				abort();
			}
		CHECK_OK(vmo_object_stats(obj, &st));
		CHECK_EQ(st.faults, faults);
		CHECK_EQ(pp.calls, 1);
		/* neighbours untouched */
		CHECK_EQ(resident_pages_4k((char *)a + 2 * (uint64_t)psz, psz), 0);
		CHECK_EQ(resident_pages_4k((char *)a + 4 * (uint64_t)psz, psz), 0);
	}
	/* every page, in order (read-ahead clusters when on) */
	for (uint64_t off = 0; off < size; off += 4096)
		CHECK_EQ(w[off / 8 + 1], t_pattern(off + 8));
	wait_resident(obj, size);
	CHECK_EQ(pp.misaligned, 0);
	CHECK_EQ(pp.bytes, size); /* each page once */
	if (readahead)
		CHECK(pp.calls < (int)npages || psz == (2u << 20)); /* clusters (2 MiB: at most 2 per call) */

	/* mappings at offsets / of lengths that are not page multiples */
	void *p = NULL;
	if (psz > 4096) {
		CHECK_EQ(vmo_map(obj, 4096, psz, VMO_PROT_READ, &p), -EINVAL);
		CHECK_EQ(vmo_map(obj, psz / 2, psz, VMO_PROT_READ, &p), -EINVAL);
		CHECK_EQ(vmo_map(obj, psz, 4096, VMO_PROT_READ, &p), -EINVAL);
		CHECK_EQ(vmo_map(obj, psz, psz + 4096, VMO_PROT_READ, &p), -EINVAL);
		CHECK(p == NULL);
	}
	/* a mapping at a page-multiple offset sees the same pages */
	CHECK_OK(vmo_map(obj, 5 * (uint64_t)psz, 2 * (uint64_t)psz, VMO_PROT_READ, &p));
	CHECK_EQ(((const volatile uint64_t *)p)[psz / 8 + 2], t_pattern(6 * (uint64_t)psz + 16));
	((volatile uint64_t *)a)[5 * (uint64_t)psz / 8] = 0x4242;
	CHECK_EQ(((const volatile uint64_t *)p)[0], 0x4242);
	CHECK_EQ(pp.bytes, size);
	CHECK_OK(vmo_unmap(obj, p, 2 * (uint64_t)psz));
	CHECK_OK(vmo_unmap(obj, a, size));
	vmo_object_unref(obj);
	printf("page size %u%s: %d pager calls, all aligned\n", psz, readahead ? " (read-ahead)" : "", pp.calls);
}

static void case_4k(void) { one_size(t_shared_engine(2), 4096, false); }
static void case_4k_readahead(void) { one_size(t_shared_engine(2), 4096, true); }
static void case_64k(void) { one_size(t_shared_engine(2), 64 * 1024, false); }
static void case_64k_readahead(void) { one_size(t_shared_engine(2), 64 * 1024, true); }
static void case_2m(void) { one_size(t_shared_engine(2), 2u << 20, false); }
static void case_2m_readahead(void) { one_size(t_shared_engine(2), 2u << 20, true); }

/* other legal sizes: 8 KiB .. 1 MiB */
static void case_other_sizes(void)
{
	struct vmo_engine *eng = t_shared_engine(2);
	for (uint32_t psz = 8192; psz <= (1u << 20); psz <<= 1) {
		struct vmo_object_opts oo = { .page_size = psz, .size = 4 * (uint64_t)psz };
		struct vmo_object *obj;
		CHECK_OK(vmo_object_create(eng, &pp_ops, &(struct ppager){ .psz = psz }, &oo, &obj));
		vmo_object_unref(obj);
	}
}

/* an object size that is not a page multiple is rounded up to one */
static void case_size_rounded(void)
{
	struct vmo_engine *eng = t_shared_engine(2);
	struct ppager pp = { .psz = 64 * 1024 };
	struct vmo_object_opts oo = { .page_size = 64 * 1024, .size = 100 * 1024 };
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, &pp_ops, &pp, &oo, &obj));
	CHECK_EQ(vmo_object_size(obj) % (64 * 1024), 0);
	CHECK(vmo_object_size(obj) >= 100 * 1024);
	vmo_object_unref(obj);
}

/* Large folios (docs/api.md, Large folios and sequential fills): where
 * shmem gives a memfd's writes 2 MiB folios (the global shmem_enabled at
 * within_size or always: tests/test_large_folios.sh sets it), a sequential
 * scan of an object with 2 MiB clusters is filled through the memfd in
 * whole blocks: large_fill counts them, the data is right, and the pages
 * written stay tracked (written back) and evictable; elsewhere skipped. */
static bool shmem_large(void)
{
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "re");
	char buf[128] = "";
	if (f) {
		if (!fgets(buf, sizeof buf, f))
			buf[0] = 0;
		fclose(f);
	}
	return strstr(buf, "[always]") || strstr(buf, "[within_size]") || strstr(buf, "[force]");
}

static void case_large_folios(void)
{
	if (!shmem_large())
		t_skip_case("shmem gives memfd writes no large folios (shmem_enabled is not within_size or always)");
	struct vmo_engine *eng = t_shared_engine(2);
	/* (a tracked writable view is filled write-protected: CONTINUE_MODE_WP) */
	t_require_features(eng, VMO_FEAT_MINOR | VMO_FEAT_CONTINUE_WP);
	const uint64_t size = 16u << 20;
	struct t_store *st = t_store_new(size, 1);
	struct vmo_object *o;
	struct vmo_object_opts oo = { .size = size, .readahead_max = 512 };
	CHECK_OK(vmo_object_create(eng, &t_store_ops, st, &oo, &o));
	uint64_t *p = NULL;
	CHECK_OK(vmo_map(o, 0, size, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&p));
	uint64_t sum = 0;
	for (uint64_t off = 0; off < size; off += 4096)
		sum += p[off / 8 + 3] == t_pattern(off + 24);
	CHECK_EQ(sum, size / 4096);
	struct vmo_stats s;
	CHECK_OK(vmo_object_stats(o, &s));
	printf("large-folios: %llu of %llu pages filled through the memfd, %llu faults\n",
	       (unsigned long long)s.large_fill, (unsigned long long)(size / 4096), (unsigned long long)s.faults);
	CHECK(s.large_fill >= size / 4096 / 2);
	for (uint64_t off = 0; off < size; off += 4096 * 7)
		CHECK_EQ(p[off / 8], t_pattern(off));
	p[5 * 512 * 8 + 1] = 42; /* tracked: written back */
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	CHECK_EQ(st->data[5 * 512 * 8 + 1], 42);
	CHECK_OK(vmo_return_range(o, 0, size, VMO_WAIT)); /* evictable */
	CHECK_OK(vmo_object_stats(o, &s));
	CHECK_EQ(s.resident, 0);
	CHECK_EQ(p[5 * 512 * 8 + 1], 42);
	CHECK_EQ(p[(size - 4096) / 8], t_pattern(size - 4096));
	CHECK_OK(vmo_unmap(o, p, size));
	vmo_object_unref(o);
	t_store_free(st);
}

int main(int argc, char **argv)
{
	alarm(50);
	setvbuf(stdout, NULL, _IONBF, 0);
	return t_main(argc, argv,
		      T_CASES({ "4k", case_4k }, { "4k-readahead", case_4k_readahead }, { "64k", case_64k },
			      { "64k-readahead", case_64k_readahead }, { "2m", case_2m }, { "2m-readahead", case_2m_readahead },
			      { "other-sizes", case_other_sizes }, { "size-rounded", case_size_rounded },
			      { "large-folios", case_large_folios }));
}
