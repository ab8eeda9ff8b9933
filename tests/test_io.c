/* SPDX-License-Identifier: MIT */
/* test_io: an object's data without a mapping, errors by range, offer and
 * prefetch (vmo_memcpy, vmo_object_read/_write/_copy/_transfer,
 * vmo_object_fail, vmo_object_offer, vmo_object_prefetch):
 *  - reads and writes at any alignment match a shadow copy, a view sees
 *    them at once, sync writes them back;
 *  - a copy across a failing page returns the bytes before it and the
 *    pager's errno, never a SIGBUS;
 *  - writes racing writeback (and a writer through a view) lose nothing;
 *  - a failed range: SIGBUS through a view, the errno from the API, until
 *    an offer supplies it again;
 *  - an offer racing a fault on the same page: one wins, every reader sees
 *    that one whole page;
 *  - a precious offer is written back before it is dropped;
 *  - a prefetch is one pager read per page, and faults during it wait for
 *    it rather than asking again;
 *  - copy and transfer between objects: the destination exact, the
 *    transfer's source range gone (read from its pager again);
 *  - a pinned range survives a budget of one page, return and discard,
 *    and is counted; a pin past the budget is -ENOMEM; unpin undoes;
 *  - bad arguments: -EINVAL. */
#include "helper.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#define PG 4096u
#define NPG 256u
#define SIZE ((uint64_t)NPG * PG)

static struct vmo_object *obj_new(struct vmo_engine *eng, struct t_store *s)
{
	struct vmo_object *o;
	struct vmo_object_opts oo = { .size = SIZE };
	CHECK_OK(vmo_object_create(eng, &t_store_ops, s, &oo, &o));
	return o;
}

static void case_read_write(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_shared_engine(2);
	struct t_store *s = t_store_new(SIZE, 1);
	struct vmo_object *o = obj_new(eng, s);
	char *shadow = malloc(SIZE), *buf = malloc(SIZE);
	CHECK(shadow && buf);
	memcpy(shadow, s->data, SIZE);
	uint64_t seed = 7;
	for (int i = 0; i < 400; i++) {
		uint64_t off = t_rand(&seed) % SIZE, len = 1 + t_rand(&seed) % (3 * PG);
		if (off + len > SIZE)
			len = SIZE - off;
		if (i % 2) {
			for (uint64_t k = 0; k < len; k++)
				buf[k] = (char)t_rand(&seed);
			CHECK_EQ(vmo_object_write(o, off, buf, len), (ssize_t)len);
			memcpy(shadow + off, buf, len);
		} else {
			CHECK_EQ(vmo_object_read(o, off, buf, len), (ssize_t)len);
			CHECK(!memcmp(buf, shadow + off, len));
		}
	}
	/* a view sees the same bytes at once */
	char *v;
	CHECK_OK(vmo_map(o, 0, SIZE, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	CHECK(!memcmp(v, shadow, SIZE));
	/* and writes through the view are what a read returns */
	v[5 * PG + 3] = 'x';
	shadow[5 * PG + 3] = 'x';
	CHECK_EQ(vmo_object_read(o, 5 * PG, buf, PG), (ssize_t)PG);
	CHECK(!memcmp(buf, shadow + 5 * PG, PG));
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	CHECK(!memcmp(s->data, shadow, SIZE));
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK_EQ(st.dirty, 0);
	CHECK_OK(vmo_unmap(o, v, SIZE));
	/* nothing resident: a read brings pages in, a write of a whole page
	 * over nothing asks nothing of the pager */
	CHECK_OK(vmo_return(o, VMO_WAIT));
	long r0 = s->reads;
	memset(buf, 0x3c, PG);
	CHECK_EQ(vmo_object_write(o, 9 * PG, buf, PG), (ssize_t)PG);
	CHECK_EQ(s->reads, r0);
	CHECK_EQ(vmo_object_read(o, 9 * PG, buf + PG, PG), (ssize_t)PG);
	CHECK(!memcmp(buf, buf + PG, PG));
	vmo_object_unref(o);
	CHECK_EQ(((unsigned char *)s->data)[9 * PG], 0x3c); /* written back at the end */
	free(shadow);
	free(buf);
	t_store_free(s);
}

static void case_memcpy_failing(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_shared_engine(2);
	struct t_store *s = t_store_new(SIZE, 1);
	s->fail_pg = 5;
	struct vmo_object *o = obj_new(eng, s);
	char *buf = malloc(8 * PG);
	size_t done = 99;
	CHECK_EQ(vmo_memcpy(o, 100, buf, 8 * PG, 0, &done), -EIO);
	CHECK_EQ(done, 5 * PG - 100);
	CHECK(!memcmp(buf, (char *)s->data + 100, done));
	CHECK_EQ(vmo_get_error(o, 5 * PG), -EIO);
	CHECK_EQ(vmo_object_read(o, 0, buf, 8 * PG), (ssize_t)(5 * PG)); /* short, as read(2) */
	CHECK_EQ(vmo_object_read(o, 5 * PG, buf, PG), -EIO);
	CHECK_EQ(vmo_memcpy(o, 5 * PG, buf, 10, VMO_MEMCPY_TO_OBJECT, &done), -EIO);
	CHECK_EQ(done, 0);
	/* cleared and working again: the whole range */
	s->fail_pg = -1;
	CHECK_OK(vmo_clear_error(o, 5 * PG));
	CHECK_OK(vmo_memcpy(o, 100, buf, 8 * PG, 0, &done));
	CHECK_EQ(done, 8 * PG);
	CHECK(!memcmp(buf, (char *)s->data + 100, done));
	vmo_object_unref(o);
	free(buf);
	t_store_free(s);
}

struct racer {
	struct vmo_object *o;
	uint64_t *view;
	int id;
	_Atomic int *stop;
	uint64_t *last; /* last value written per page, for this racer's pages */
};

/* Racer 0 writes its pages (even) through vmo_object_write, racer 1 its
 * (odd) through the view; racer 2 syncs and returns. */
static void *race_main(void *arg)
{
	struct racer *r = arg;
	uint64_t seed = 11 + (uint64_t)r->id, n = 0;
	while (!atomic_load(r->stop)) {
		if (r->id == 2) {
			CHECK_OK(vmo_sync(r->o, VMO_WAIT));
			if (++n % 4 == 0)
				CHECK_OK(vmo_return(r->o, VMO_WAIT));
			continue;
		}
		uint64_t pg = (t_rand(&seed) % (NPG / 2)) * 2 + (uint64_t)r->id;
		uint64_t val = ++n << 8 | (uint64_t)r->id;
		if (r->id == 0)
			CHECK_EQ(vmo_object_write(r->o, pg * PG + 64, &val, 8), 8);
		else
			r->view[pg * PG / 8 + 8] = val;
		r->last[pg] = val;
	}
	return NULL;
}

static void case_write_vs_writeback(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_shared_engine(2);
	struct t_store *s = t_store_new(SIZE, 1);
	struct vmo_object *o = obj_new(eng, s);
	uint64_t *v;
	CHECK_OK(vmo_map(o, 0, SIZE, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	_Atomic int stop = 0;
	uint64_t *last = calloc(NPG, sizeof *last);
	struct racer r[3];
	pthread_t th[3];
	for (int i = 0; i < 3; i++) {
		r[i] = (struct racer){ o, v, i, &stop, last };
		CHECK_OK(pthread_create(&th[i], NULL, race_main, &r[i]));
	}
	usleep(1500 * 1000);
	atomic_store(&stop, 1);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	for (uint64_t pg = 0; pg < NPG; pg++)
		if (last[pg])
			CHECK_EQ(s->data[pg * PG / 8 + 8], last[pg]);
	CHECK_OK(vmo_unmap(o, v, SIZE));
	vmo_object_unref(o);
	free(last);
	t_store_free(s);
}

static void case_fail_range(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_shared_engine(2);
	struct t_store *s = t_store_new(SIZE, 1);
	struct vmo_object *o = obj_new(eng, s);
	uint64_t *v;
	CHECK_OK(vmo_map(o, 0, SIZE, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	for (uint64_t pg = 0; pg < 16; pg++)
		v[pg * PG / 8] = 1000 + pg; /* resident, dirty */
	CHECK_OK(vmo_object_fail(o, 4 * PG, 8 * PG, -ENOLINK)); /* pages 4..11, some never touched */
	struct t_sig si;
	uint64_t val;
	CHECK_EQ(t_probe_read(&v[4 * PG / 8], &val, &si), SIGBUS);
	CHECK_EQ(t_probe_read(&v[11 * PG / 8], &val, &si), SIGBUS);
	CHECK_EQ(t_probe_read(&v[3 * PG / 8], &val, &si), 0); /* outside: untouched */
	CHECK_EQ(val, 1003);
	CHECK_EQ(vmo_get_error(o, 6 * PG), -ENOLINK);
	char buf[64];
	CHECK_EQ(vmo_object_read(o, 7 * PG, buf, 8), -ENOLINK);
	/* supplied again by an offer: data back, no SIGBUS */
	uint64_t *page = malloc(PG);
	for (unsigned i = 0; i < PG / 8; i++)
		page[i] = 0xabcd0000 + i;
	CHECK_OK(vmo_object_offer(o, 6 * PG, PG, page, 0));
	CHECK_EQ(t_probe_read(&v[6 * PG / 8 + 5], &val, &si), 0);
	CHECK_EQ(val, 0xabcd0005);
	CHECK_EQ(vmo_get_error(o, 6 * PG), 0);
	/* a discard clears the rest: read from the pager again */
	CHECK_OK(vmo_discard_range(o, 4 * PG, 2 * PG, VMO_WAIT));
	CHECK_EQ(t_probe_read(&v[4 * PG / 8 + 1], &val, &si), 0);
	CHECK_EQ(val, t_pattern(4 * PG + 8));
	CHECK_EQ(vmo_object_fail(o, 0, PG, 5), -EINVAL);
	CHECK_EQ(vmo_object_fail(o, 1, PG, -EIO), -EINVAL);
	CHECK_OK(vmo_unmap(o, v, SIZE));
	vmo_object_unref(o);
	free(page);
	t_store_free(s);
}

struct offer_race {
	struct vmo_object *o;
	uint64_t *v;
	uint64_t pg;
	uint64_t *page;
	uint64_t got;
};

static void *toucher(void *arg)
{
	struct offer_race *r = arg;
	r->got = r->v[r->pg * PG / 8 + 1];
	return NULL;
}

static void case_offer_races_fault(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_shared_engine(2);
	struct t_store *s = t_store_new(SIZE, 1);
	s->delay_us = 50;
	struct vmo_object *o = obj_new(eng, s);
	uint64_t *v;
	CHECK_OK(vmo_map(o, 0, SIZE, VMO_PROT_READ, (void **)&v));
	uint64_t *page = malloc(PG);
	for (unsigned i = 0; i < PG / 8; i++)
		page[i] = 0x0ffe000000000000ull + i;
	int offer_won = 0, pager_won = 0;
	for (int round = 0; round < 200; round++) {
		uint64_t pg = (uint64_t)round % NPG;
		CHECK_OK(vmo_discard_range(o, pg * PG, PG, VMO_WAIT));
		struct offer_race r = { o, v, pg, page, 0 };
		pthread_t t;
		CHECK_OK(pthread_create(&t, NULL, toucher, &r));
		if (round % 3)
			usleep((unsigned)(round % 50));
		CHECK_OK(vmo_object_offer(o, pg * PG, PG, page, 0));
		pthread_join(t, NULL);
		/* one of the two, whole: every word from the same source */
		char buf[PG];
		CHECK_EQ(vmo_object_read(o, pg * PG, buf, PG), (ssize_t)PG);
		if (!memcmp(buf, page, PG)) {
			CHECK_EQ(r.got, page[1]);
			offer_won++;
		} else {
			CHECK(!memcmp(buf, (char *)s->data + pg * PG, PG));
			CHECK_EQ(r.got, s->data[pg * PG / 8 + 1]);
			pager_won++;
		}
	}
	printf("offer won %d, pager won %d\n", offer_won, pager_won);
	CHECK(offer_won + pager_won == 200);
	CHECK_OK(vmo_unmap(o, v, SIZE));
	vmo_object_unref(o);
	free(page);
	t_store_free(s);
}

static void case_offer_precious(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_shared_engine(2);
	struct t_store *s = t_store_new(SIZE, 1);
	struct vmo_object *o = obj_new(eng, s);
	uint64_t *page = malloc(2 * PG);
	for (unsigned i = 0; i < 2 * PG / 8; i++)
		page[i] = 0x5eed000000000000ull + i;
	CHECK_OK(vmo_object_offer(o, 10 * PG, PG, page, VMO_OFFER_PRECIOUS));
	CHECK_OK(vmo_object_offer(o, 20 * PG, PG, page + PG / 8, 0)); /* droppable */
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK_EQ(st.resident, 2 * PG);
	CHECK_EQ(st.dirty, PG);
	CHECK_EQ(s->reads, 0);
	/* out of memory: the precious one written back first, the other not */
	CHECK_OK(vmo_object_set_budget(o, PG, 0));
	CHECK_OK(vmo_object_set_budget(o, 0, 0));
	CHECK_OK(vmo_return(o, VMO_WAIT));
	CHECK(!memcmp((char *)s->data + 10 * PG, page, PG));
	CHECK_EQ(s->data[20 * PG / 8], t_pattern(20 * PG));
	/* an offer over a page present is ignored */
	uint64_t w = 1;
	CHECK_EQ(vmo_object_write(o, 30 * PG, &w, 8), 8);
	CHECK_OK(vmo_object_offer(o, 30 * PG, PG, page, 0));
	uint64_t r;
	CHECK_EQ(vmo_object_read(o, 30 * PG, &r, 8), 8);
	CHECK_EQ(r, 1);
	CHECK_EQ(vmo_object_offer(o, 1, PG, page, 0), -EINVAL);
	CHECK_EQ(vmo_object_offer(o, 0, PG, page, 1u << 7), -EINVAL);
	vmo_object_unref(o);
	free(page);
	t_store_free(s);
}

struct prefetch_touch {
	uint64_t *v;
	uint64_t pg0, pg1;
	int bad;
};

static void *touch_range(void *arg)
{
	struct prefetch_touch *t = arg;
	for (uint64_t pg = t->pg0; pg < t->pg1; pg++)
		if (t->v[pg * PG / 8 + 2] != t_pattern(pg * PG + 16))
			t->bad++;
	return NULL;
}

static void case_prefetch(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_shared_engine(2);
	struct t_store *s = t_store_new(SIZE, 1);
	s->delay_us = 2000; /* slow: the faults below arrive while it reads */
	struct vmo_object *o = obj_new(eng, s);
	uint64_t *v;
	CHECK_OK(vmo_map(o, 0, SIZE, VMO_PROT_READ, (void **)&v));
	CHECK_OK(vmo_object_prefetch(o, 0, 128 * PG, 0));
	/* two threads fault all over the prefetched range at once */
	struct prefetch_touch t[2] = { { v, 0, 128, 0 }, { v, 64, 128, 0 } };
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		CHECK_OK(pthread_create(&th[i], NULL, touch_range, &t[i]));
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	CHECK_EQ(t[0].bad + t[1].bad, 0);
	CHECK_EQ(s->reads, 128); /* each page asked once: faults waited for the prefetch */
	/* synchronous: in memory when it returns */
	s->delay_us = 0;
	CHECK_OK(vmo_object_prefetch(o, 128 * PG, 64 * PG, VMO_WAIT));
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK_EQ(st.resident, 192 * PG);
	CHECK_EQ(s->reads, 192);
	CHECK_EQ(vmo_object_prefetch(o, 0, PG + 1, 0), -EINVAL);
	CHECK_OK(vmo_unmap(o, v, SIZE));
	vmo_object_unref(o);
	t_store_free(s);
}

static void case_copy_transfer(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_shared_engine(2);
	struct t_store *a = t_store_new(SIZE, 1), *b = t_store_new(SIZE, 1);
	memset(b->data, 0, SIZE);
	struct vmo_object *oa = obj_new(eng, a), *ob = obj_new(eng, b);
	size_t done;
	CHECK_OK(vmo_object_copy(ob, 3, oa, 17, 5 * PG, &done));
	CHECK_EQ(done, 5 * PG);
	char *buf = malloc(SIZE);
	CHECK_EQ(vmo_object_read(ob, 3, buf, 5 * PG), (ssize_t)(5 * PG));
	CHECK(!memcmp(buf, (char *)a->data + 17, 5 * PG));
	/* transfer: the destination gets it, the source range is gone */
	uint64_t w = 0x7777;
	CHECK_EQ(vmo_object_write(oa, 40 * PG, &w, 8), 8); /* dirty in the source */
	CHECK_OK(vmo_object_transfer(ob, 100 * PG, oa, 40 * PG, 16 * PG));
	CHECK_EQ(vmo_object_read(ob, 100 * PG, buf, 16 * PG), (ssize_t)(16 * PG));
	CHECK_EQ(((uint64_t *)buf)[0], 0x7777);
	CHECK(!memcmp(buf + 8, (char *)a->data + 40 * PG + 8, 16 * PG - 8));
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(oa, &st));
	CHECK_EQ(st.dirty, 0); /* not written back: moved */
	CHECK_EQ(a->data[40 * PG / 8], t_pattern(40 * PG));
	uint64_t r;
	CHECK_EQ(vmo_object_read(oa, 40 * PG, &r, 8), 8); /* from its pager again */
	CHECK_EQ(r, t_pattern(40 * PG));
	CHECK_EQ(vmo_object_copy(oa, 0, oa, PG, 2 * PG, NULL), -EINVAL); /* overlap */
	CHECK_EQ(vmo_object_copy(oa, SIZE - 1, ob, 0, 2, NULL), -EINVAL);
	CHECK_EQ(vmo_object_transfer(ob, 1, oa, 0, PG), -EINVAL);
	CHECK_EQ(vmo_memcpy(oa, SIZE, buf, 1, 0, NULL), -EINVAL);
	CHECK_EQ(vmo_memcpy(oa, 0, buf, 1, 1u << 5, NULL), -EINVAL);
	CHECK_EQ(vmo_memcpy(NULL, 0, buf, 1, 0, NULL), -EINVAL);
	CHECK_OK(vmo_memcpy(oa, 0, buf, 0, 0, NULL));
	vmo_object_unref(oa);
	vmo_object_unref(ob);
	free(buf);
	t_store_free(a);
	t_store_free(b);
}

static void case_pin(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_shared_engine(2);
	struct t_store *s = t_store_new(SIZE, 1);
	struct vmo_object *o = obj_new(eng, s);
	uint64_t *v;
	CHECK_OK(vmo_map(o, 0, SIZE, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	/* absent pages are brought in by the pin */
	CHECK_OK(vmo_object_pin(o, 0, 16 * PG));
	CHECK_EQ(s->reads, 16);
	CHECK_OK(vmo_object_pin(o, 8 * PG, 4 * PG)); /* nested */
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK_EQ(st.pinned, 16 * PG);
	for (uint64_t pg = 0; pg < NPG; pg++) /* everything in, some dirty */
		v[pg * PG / 8 + 3] = pg;
	/* a budget of one page: everything else goes, the pinned stay */
	CHECK_OK(vmo_object_set_budget(o, PG, 0));
	CHECK_OK(vmo_return(o, VMO_WAIT));
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK_EQ(st.resident, 16 * PG);
	long r0 = s->reads;
	for (uint64_t pg = 0; pg < 16; pg++)
		CHECK_EQ(v[pg * PG / 8 + 3], pg);
	CHECK_EQ(s->reads, r0); /* no pager read: they never left */
	CHECK_OK(vmo_discard_range(o, 0, 16 * PG, VMO_WAIT)); /* pinned pages stay */
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK_EQ(st.resident, 16 * PG);
	/* unpinned (the nested pin once more), the budget has its way */
	CHECK_OK(vmo_object_unpin(o, 0, 16 * PG));
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK_EQ(st.pinned, 4 * PG);
	CHECK_OK(vmo_object_unpin(o, 8 * PG, 4 * PG));
	CHECK_EQ(vmo_object_unpin(o, 8 * PG, PG), -EINVAL);
	CHECK_OK(vmo_return(o, VMO_WAIT));
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK(st.resident <= PG);
	CHECK_EQ(st.pinned, 0);
	/* past the budget: refused, nothing pinned */
	CHECK_OK(vmo_object_set_budget(o, 8 * PG, 0));
	CHECK_EQ(vmo_object_pin(o, 0, 16 * PG), -ENOMEM);
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK_EQ(st.pinned, 0);
	CHECK_OK(vmo_object_set_budget(o, 0, 0));
	CHECK_EQ(vmo_object_pin(o, 1, PG), -EINVAL);
	/* a failing page stops a pin with its errno */
	s->fail_pg = 40;
	CHECK_EQ(vmo_object_pin(o, 32 * PG, 16 * PG), -EIO);
	s->fail_pg = -1;
	CHECK_OK(vmo_object_unpin(o, 32 * PG, 8 * PG));
	CHECK_OK(vmo_unmap(o, v, SIZE));
	vmo_object_unref(o);
	t_store_free(s);
}

/* Regressions found in review: a prefetch past the object's budget (the
 * evictor thread read it under its own lock, then reclaimed: a hang); a
 * prefetch into a writable view that tracks nothing (mapped writable while
 * clean: the write was dropped with the page); vmo_object_fail counts each
 * page once; a failed page left out by a shrink is absent when grown back. */
static void case_regressions(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_shared_engine(2);
	struct t_store *s = t_store_new(SIZE, 1);
	struct vmo_object_opts oo = { .size = SIZE, .budget = 8 * PG, .max_size = SIZE };
	struct vmo_object *o;
	CHECK_OK(vmo_object_create(eng, &t_store_ops, s, &oo, &o));
	CHECK_OK(vmo_object_prefetch(o, 0, 32 * PG, 0));
	usleep(200 * 1000);
	uint64_t r;
	CHECK_EQ(vmo_object_read(o, 20 * PG, &r, 8), 8);
	CHECK_EQ(r, t_pattern(20 * PG));
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(o, &st));
	uint64_t e0 = st.errors;
	CHECK_OK(vmo_object_fail(o, 40 * PG, 4 * PG, -EIO));
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK_EQ(st.errors - e0, 4);
	CHECK_OK(vmo_object_resize(o, 32 * PG));
	CHECK_OK(vmo_object_resize(o, SIZE));
	CHECK_EQ(vmo_object_read(o, 41 * PG, &r, 8), 8);
	CHECK_EQ(r, t_pattern(41 * PG));
	CHECK_EQ(vmo_get_error(o, 41 * PG), 0);
	vmo_object_unref(o);

	struct vmo_pager_ops ro = { .read = t_store_ops.read }; /* untracked */
	struct vmo_object_opts o2 = { .size = SIZE };
	CHECK_OK(vmo_object_create(eng, &ro, s, &o2, &o));
	uint64_t *v;
	CHECK_OK(vmo_map(o, 0, SIZE, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	CHECK_OK(vmo_object_prefetch(o, 0, 8 * PG, VMO_WAIT));
	v[2 * PG / 8] = 0x4242;
	CHECK_OK(vmo_return(o, VMO_WAIT)); /* the written page is dirty: it stays */
	CHECK_EQ(v[2 * PG / 8], 0x4242);
	CHECK_OK(vmo_unmap(o, v, SIZE));
	vmo_object_unref(o);
	t_store_free(s);
}

int main(int argc, char **argv)
{
	alarm(300);
	return t_main(argc, argv,
		      T_CASES({ "read-write", case_read_write }, { "memcpy-failing", case_memcpy_failing },
			      { "write-vs-writeback", case_write_vs_writeback }, { "fail-range", case_fail_range },
			      { "offer-races-fault", case_offer_races_fault },
			      { "offer-precious", case_offer_precious }, { "prefetch", case_prefetch },
			      { "copy-transfer", case_copy_transfer }, { "pin", case_pin },
			      { "regressions", case_regressions }));
}
