/* SPDX-License-Identifier: MIT */
/* test_extent: an object's extent and its growth (vmo_object_resize,
 * VMO_OBJ_GROWS_UP / _DOWN, opts.max_size):
 *  - resize: mapped over its whole max_size, an object of 64 pages gives
 *    SIGBUS past its end; grown to 128 the pages are there (from the
 *    pager); shrunk to 64 the pages left out are gone (their writes never
 *    written back) and SIGBUS again; past max_size -EFBIG; 0 asks
 *    report_extent;
 *  - heap: a GROWS_UP object grows to cover a touch past its end;
 *  - stack: a GROWS_DOWN object grows down to cover a touch below its
 *    start, two threads pushing at once; below the mapping it is the
 *    kernel's SIGSEGV;
 *  - pinned: a shrink that would leave out a pinned page is -EBUSY. */
#include "helper.h"

#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096u
#define MAXPG 256u
#define MAX ((uint64_t)MAXPG * PG)

static int probe(uint64_t *v, uint64_t pg, uint64_t *val)
{
	return t_probe_read(&v[pg * PG / 8 + 1], val, NULL);
}

static void case_resize(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_shared_engine(2);
	struct t_store *s = t_store_new(MAX, 1);
	struct vmo_object_opts oo = { .size = 64 * PG, .max_size = MAX };
	struct vmo_object *o;
	CHECK_OK(vmo_object_create(eng, &t_store_ops, s, &oo, &o));
	CHECK_EQ(vmo_object_size(o), 64 * PG);
	uint64_t *v, val;
	CHECK_OK(vmo_map(o, 0, MAX, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v)); /* the whole span */
	CHECK_EQ(probe(v, 10, &val), 0);
	CHECK_EQ(val, t_pattern(10 * PG + 8));
	CHECK_EQ(probe(v, 100, &val), SIGBUS); /* past the end */
	char b[8];
	CHECK_EQ(vmo_object_read(o, 100 * PG, b, 8), -EINVAL);
	/* grown: there */
	CHECK_OK(vmo_object_resize(o, 128 * PG));
	CHECK_EQ(vmo_object_size(o), 128 * PG);
	CHECK_EQ(probe(v, 100, &val), 0);
	CHECK_EQ(val, t_pattern(100 * PG + 8));
	for (uint64_t pg = 64; pg < 128; pg++)
		v[pg * PG / 8] = 0xdead;
	v[5 * PG / 8] = 0xbeef;
	/* shrunk: the writes past the new end are dropped, never written back */
	CHECK_OK(vmo_object_resize(o, 64 * PG));
	CHECK_EQ(probe(v, 100, &val), SIGBUS);
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	CHECK_EQ(s->data[5 * PG / 8], 0xbeef);
	CHECK_EQ(s->data[100 * PG / 8], t_pattern(100 * PG));
	/* grown again: from the pager, not the dropped writes */
	CHECK_OK(vmo_object_resize(o, 100 * PG + 1)); /* rounded up: 101 pages */
	CHECK_EQ(vmo_object_size(o), 101 * PG);
	CHECK_EQ(t_probe_read(&v[100 * PG / 8], &val, NULL), 0);
	CHECK_EQ(val, t_pattern(100 * PG));
	CHECK_EQ(vmo_object_resize(o, MAX + PG), -EFBIG);
	s->extent = 32 * PG; /* 0: asked of the pager */
	CHECK_OK(vmo_object_resize(o, 0));
	CHECK_EQ(vmo_object_size(o), 32 * PG);
	CHECK_OK(vmo_unmap(o, v, MAX));
	vmo_object_unref(o);
	t_store_free(s);
}

static void case_heap(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_shared_engine(2);
	struct t_store *s = t_store_new(MAX, 1);
	struct vmo_object_opts oo = { .size = 16 * PG, .max_size = MAX, .flags = VMO_OBJ_GROWS_UP };
	struct vmo_object *o;
	CHECK_OK(vmo_object_create(eng, &t_store_ops, s, &oo, &o));
	uint64_t *v, val;
	CHECK_OK(vmo_map(o, 0, MAX, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	CHECK_EQ(probe(v, 200, &val), 0); /* the break moves up to it */
	CHECK_EQ(val, t_pattern(200 * PG + 8));
	CHECK_EQ(vmo_object_size(o), 201 * PG);
	CHECK_OK(vmo_unmap(o, v, MAX));
	vmo_object_unref(o);
	t_store_free(s);
}

struct pusher {
	uint64_t *v;
	uint64_t from, to; /* pages, descending */
	int bad;
};

static void *push(void *arg)
{
	struct pusher *p = arg;
	for (uint64_t pg = p->from; pg-- > p->to;) {
		p->v[pg * PG / 8 + 2] = pg; /* a push: the page below, written */
		if (p->v[pg * PG / 8 + 1] != t_pattern(pg * PG + 8))
			p->bad++;
	}
	return NULL;
}

static void case_stack(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_shared_engine(2);
	struct t_store *s = t_store_new(MAX, 1);
	struct vmo_object_opts oo = { .size = 16 * PG, .max_size = MAX, .flags = VMO_OBJ_GROWS_DOWN };
	struct vmo_object *o;
	CHECK_OK(vmo_object_create(eng, &t_store_ops, s, &oo, &o));
	CHECK_EQ(vmo_object_size(o), 16 * PG);
	/* a guard page below the mapping: not ours */
	char *area = mmap(NULL, MAX + PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(area != MAP_FAILED);
	uint64_t *v = (uint64_t *)(area + PG), val;
	CHECK_OK(munmap(v, MAX));
	CHECK_OK(vmo_map(o, 0, MAX, VMO_PROT_READ | VMO_PROT_WRITE | VMO_MAP_FIXED, (void **)&v));
	CHECK(v == (uint64_t *)(area + PG));
	CHECK_EQ(probe(v, MAXPG - 1, &val), 0); /* the top: the stack's first page */
	CHECK_EQ(probe(v, MAXPG - 17, &val), 0); /* just below its start: it grows */
	CHECK_EQ(vmo_object_size(o), 17 * PG);
	/* two threads push down at once, into the same pages */
	struct pusher p[2] = { { v, MAXPG - 17, 64, 0 }, { v, MAXPG - 17, 64, 0 } };
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		CHECK_OK(pthread_create(&th[i], NULL, push, &p[i]));
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	CHECK_EQ(p[0].bad + p[1].bad, 0);
	CHECK_EQ(vmo_object_size(o), (MAXPG - 64) * PG);
	CHECK_EQ(probe(v, 0, &val), 0); /* the limit: the whole span */
	CHECK_EQ(vmo_object_size(o), MAX);
	struct t_sig si;
	CHECK_EQ(t_probe_read((uint64_t *)area, &val, &si), SIGSEGV); /* below the mapping */
	/* shrunk back: the stack pops, the pages below go (their pushes too);
	 * touched again, it grows again, from the pager */
	CHECK_OK(vmo_object_resize(o, 16 * PG));
	CHECK_EQ(vmo_object_size(o), 16 * PG);
	CHECK_EQ(t_probe_read(&v[100 * PG / 8 + 2], &val, NULL), 0);
	CHECK_EQ(val, t_pattern(100 * PG + 16));
	CHECK_EQ(vmo_object_size(o), (MAXPG - 100) * PG);
	CHECK_OK(vmo_unmap(o, v, MAX));
	munmap(area, PG);
	vmo_object_unref(o);
	oo.flags = VMO_OBJ_GROWS_UP | VMO_OBJ_GROWS_DOWN;
	CHECK_EQ(vmo_object_create(eng, &t_store_ops, s, &oo, &o), -EINVAL);
	oo.flags = 0;
	oo.max_size = PG; /* below size */
	CHECK_EQ(vmo_object_create(eng, &t_store_ops, s, &oo, &o), -EINVAL);
	t_store_free(s);
}

static void case_pinned(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_shared_engine(2);
	struct t_store *s = t_store_new(MAX, 1);
	struct vmo_object_opts oo = { .size = 64 * PG, .max_size = MAX };
	struct vmo_object *o;
	CHECK_OK(vmo_object_create(eng, &t_store_ops, s, &oo, &o));
	CHECK_OK(vmo_object_pin(o, 40 * PG, PG));
	CHECK_EQ(vmo_object_resize(o, 32 * PG), -EBUSY);
	CHECK_EQ(vmo_object_size(o), 64 * PG);
	CHECK_OK(vmo_object_unpin(o, 40 * PG, PG));
	CHECK_OK(vmo_object_resize(o, 32 * PG));
	vmo_object_unref(o);
	t_store_free(s);
}

int main(int argc, char **argv)
{
	alarm(120);
	return t_main(argc, argv,
		      T_CASES({ "resize", case_resize }, { "heap", case_heap }, { "stack", case_stack },
			      { "pinned", case_pinned }));
}
