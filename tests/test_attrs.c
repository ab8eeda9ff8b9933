/* SPDX-License-Identifier: MIT */
/* test_attrs: an object's attributes (issue 10's small ones and may_cache):
 *  - may-cache: a named object released with VMO_OBJ_MAY_CACHE is written
 *    back but kept; created again (same name, ops, ctx) it comes back with
 *    its pages, and reading them asks the pager nothing; released for good
 *    (release called once) with the engine, or at once when may_cache was
 *    turned off; another size is -EEXIST;
 *  - may-cache-budget: a kept object's pages are evicted under the engine's
 *    budget like any other, and read again when used;
 *  - prot: a mapping beyond the object's protection mask is -EACCES;
 *  - create-alloc: the context vmo allocates is zeroed, the pager's to use,
 *    freed after release;
 *  - readahead: vmo_object_change_attributes changes read-ahead at run time;
 *  - name: vmo_object_name;
 *  - in-place: objects over memory or a file range the caller has: what is
 *    there already needs no pager read. */
#include "helper.h"

#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096u
#define NPG 128u
#define SIZE ((uint64_t)NPG * PG)

static uint64_t read_all(struct vmo_object *o)
{
	uint64_t *v, sum = 0;
	CHECK_OK(vmo_map(o, 0, SIZE, VMO_PROT_READ, (void **)&v));
	for (uint64_t pg = 0; pg < NPG; pg++)
		sum += v[pg * PG / 8 + 1];
	CHECK_OK(vmo_unmap(o, v, SIZE));
	return sum;
}

static void case_may_cache(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_engine(2);
	struct t_store *s = t_store_new(SIZE, 1);
	struct vmo_object_opts oo = { .size = SIZE, .flags = VMO_OBJ_MAY_CACHE, .name = "text.libc" };
	struct vmo_object *o, *o2;
	CHECK_OK(vmo_object_create(eng, &t_store_ops, s, &oo, &o));
	CHECK(!strcmp(vmo_object_name(o), "text.libc"));
	uint64_t sum = read_all(o);
	CHECK_EQ(s->reads, NPG);
	uint64_t w = 0xfeed;
	CHECK_EQ(vmo_object_write(o, 3 * PG, &w, 8), 8);
	vmo_object_unref(o);
	CHECK_EQ(s->data[3 * PG / 8], 0xfeed); /* written back at the last unref */
	CHECK_EQ(s->releases, 0);               /* but kept */
	/* another size: not the same object */
	struct vmo_object_opts big = oo;
	big.size = 2 * SIZE;
	CHECK_EQ(vmo_object_create(eng, &t_store_ops, s, &big, &o2), -EEXIST);
	/* the same: back with its pages, no pager read */
	CHECK_OK(vmo_object_create(eng, &t_store_ops, s, &oo, &o2));
	CHECK(o2 == o);
	CHECK_EQ(read_all(o2), sum);
	uint64_t r = 0;
	CHECK_EQ(vmo_object_read(o2, 3 * PG, &r, 8), 8);
	CHECK_EQ(r, 0xfeed);
	CHECK_EQ(s->reads, NPG);
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(o2, &st));
	CHECK_EQ(st.resident, SIZE);
	/* kept again, then released with the engine */
	vmo_object_unref(o2);
	CHECK_EQ(s->releases, 0);
	CHECK_OK(vmo_engine_destroy(eng));
	CHECK_EQ(s->releases, 1);

	/* may_cache turned off before the last unref: released at once */
	eng = t_engine(2);
	CHECK_OK(vmo_object_create(eng, &t_store_ops, s, &oo, &o));
	read_all(o);
	CHECK_OK(vmo_object_change_attributes(o, 0, 0));
	vmo_object_unref(o);
	CHECK_EQ(s->releases, 2);
	CHECK_OK(vmo_engine_destroy(eng));
	CHECK_EQ(s->releases, 2);
	t_store_free(s);
}

static void case_may_cache_budget(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_engine(2);
	struct t_store *s = t_store_new(SIZE, 1);
	struct vmo_object_opts oo = { .size = SIZE, .flags = VMO_OBJ_MAY_CACHE, .name = "cached" };
	struct vmo_object *o;
	CHECK_OK(vmo_object_create(eng, &t_store_ops, s, &oo, &o));
	read_all(o);
	vmo_object_unref(o);
	/* the machine wants the memory: the kept object's pages go too */
	CHECK_OK(vmo_engine_set_budget(eng, 16 * PG, 8 * PG));
	struct vmo_stats st;
	for (int i = 0; i < 200; i++) {
		CHECK_OK(vmo_engine_stats(eng, &st));
		if (st.resident <= 16 * PG)
			break;
		usleep(10000);
	}
	CHECK(st.resident <= 16 * PG);
	CHECK_OK(vmo_engine_set_budget(eng, 0, 0));
	CHECK_OK(vmo_object_create(eng, &t_store_ops, s, &oo, &o));
	long r0 = s->reads;
	read_all(o);
	CHECK(s->reads > r0); /* what was evicted is read again */
	CHECK(s->reads - r0 <= (long)NPG);
	vmo_object_unref(o);
	CHECK_OK(vmo_engine_destroy(eng));
	CHECK_EQ(s->releases, 1);
	t_store_free(s);
}

static void case_prot(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_shared_engine(2);
	struct vmo_object_opts oo = { .size = SIZE, .prot = VMO_PROT_READ };
	struct vmo_object *o;
	CHECK_OK(vmo_object_create(eng, vmo_pager_zero(), NULL, &oo, &o));
	void *p;
	CHECK_EQ(vmo_map(o, 0, SIZE, VMO_PROT_READ | VMO_PROT_WRITE, &p), -EACCES);
	CHECK_OK(vmo_map(o, 0, SIZE, VMO_PROT_READ, &p));
	CHECK_EQ(*(volatile uint64_t *)p, 0);
	CHECK_OK(vmo_unmap(o, p, SIZE));
	vmo_object_unref(o);
}

struct actx {
	uint64_t zero[8];
	_Atomic int *released;
};

static int a_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct actx *a = ctx;
	(void)off, (void)flags;
	for (int i = 0; i < 8; i++)
		CHECK_EQ(a->zero[i], 0);
	memset(buf, 0x11, len);
	return 0;
}

static void a_release(void *ctx)
{
	struct actx *a = ctx;
	atomic_store(a->released, 1);
}

static void case_create_alloc(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_shared_engine(2);
	static const struct vmo_pager_ops aops = { .read = a_read, .release = a_release };
	struct vmo_object *o;
	struct vmo_object_opts oo = { .size = SIZE };
	CHECK_EQ(vmo_object_create_alloc(eng, &aops, 0, &oo, &o), -EINVAL);
	CHECK_OK(vmo_object_create_alloc(eng, &aops, sizeof(struct actx), &oo, &o));
	struct actx *a = vmo_object_ctx(o);
	CHECK(a);
	_Atomic int released = 0;
	a->released = &released;
	unsigned char b;
	CHECK_EQ(vmo_object_read(o, 5, &b, 1), 1);
	CHECK_EQ(b, 0x11);
	vmo_object_unref(o); /* release, then vmo frees the context (ASan: no leak) */
	CHECK_EQ(atomic_load(&released), 1);
}

static void case_readahead(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_shared_engine(2);
	struct t_store *s = t_store_new(SIZE, 1);
	struct vmo_object_opts oo = { .size = SIZE };
	struct vmo_object *o;
	CHECK_OK(vmo_object_create(eng, &t_store_ops, s, &oo, &o));
	read_all(o);
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK(st.readahead > 0);
	CHECK_OK(vmo_return(o, VMO_WAIT));
	CHECK_OK(vmo_object_change_attributes(o, 0, 1)); /* exactly the faulting page */
	uint64_t ra0 = st.readahead;
	read_all(o);
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK_EQ(st.readahead, ra0);
	CHECK_EQ(vmo_object_change_attributes(o, 1u << 9, 0), -EINVAL);
	CHECK_EQ(vmo_object_change_attributes(o, VMO_OBJ_MAY_CACHE, 0), -EINVAL); /* no name */
	CHECK(!strcmp(vmo_object_name(o), ""));
	vmo_object_unref(o);
	t_store_free(s);
}

/* In-place objects: over memory the process has (touched pages in the
 * object from the start: no pager read for them; untouched ones read as
 * zeros; writes go back into the memory), and over a file range (its
 * cached pages need no read; the rest come from the file). */
static void case_in_place(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_shared_engine(2);
	size_t len = 64 * PG;
	uint64_t *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(mem != MAP_FAILED);
	for (uint64_t pg = 0; pg < 32; pg++) /* the first half touched */
		mem[pg * PG / 8] = 0xabc0 + pg;
	struct vmo_object *o;
	CHECK_OK(vmo_object_create_in_place(eng, mem, len, NULL, &o));
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK_EQ(st.resident, 32 * PG);
	uint64_t *v;
	CHECK_OK(vmo_map(o, 0, len, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	for (uint64_t pg = 0; pg < 32; pg++)
		CHECK_EQ(v[pg * PG / 8], 0xabc0 + pg);
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK_EQ(st.pages_read, 0); /* no pager traffic for what was there */
	CHECK_EQ(v[40 * PG / 8], 0);
	v[50 * PG / 8] = 77;
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	CHECK_EQ(mem[50 * PG / 8], 77); /* written back in place */
	CHECK_OK(vmo_unmap(o, v, len));
	vmo_object_unref(o);
	CHECK_EQ(vmo_object_create_in_place(eng, (char *)mem + 1, len, NULL, &o), -EINVAL);
	CHECK_EQ(vmo_object_create_in_place(eng, mem, len + 1, NULL, &o), -EINVAL);
	munmap(mem, len);

	int fd = t_tmpfile(len, true);
	uint64_t w;
	CHECK(pread(fd, &w, 8, 0) == 8); /* page 0 in the page cache now */
	CHECK_OK(vmo_object_create_in_place_file(eng, fd, 0, len, NULL, &o));
	uint64_t r;
	CHECK_EQ(vmo_object_read(o, 0, &r, 8), 8);
	CHECK_EQ(r, w);
	CHECK_EQ(vmo_object_read(o, len - 8, &r, 8), 8);
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK(st.resident >= PG);
	vmo_object_unref(o);
	close(fd);
}

int main(int argc, char **argv)
{
	alarm(120);
	return t_main(argc, argv,
		      T_CASES({ "may-cache", case_may_cache }, { "may-cache-budget", case_may_cache_budget },
			      { "prot", case_prot }, { "create-alloc", case_create_alloc },
			      { "readahead", case_readahead }, { "in-place", case_in_place }));
}
