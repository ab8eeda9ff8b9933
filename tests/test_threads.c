/* SPDX-License-Identifier: MIT */
/* test_threads: several threads touch random pages of one object through
 * several mappings at different offsets (overlapping and not, read-only and
 * read-write) and always see the pager's data, or what another thread wrote
 * through another mapping; concurrent first touches of one page through two
 * mappings (the waiter path) read it from the pager exactly once. */
#include "helper.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#define NTHREADS 4
#define PG 4096u
#define WPP (PG / 8) /* words per page */

/* ---- a pager that computes t_pattern(offset) and counts reads per page --- */

struct cpager {
	uint64_t size;
	_Atomic uint32_t *reads; /* per page: how many times read */
	_Atomic uint64_t calls;
	unsigned delay_us;       /* sleep in each read (to widen races) */
	_Atomic int bad_range;   /* a read outside the object or unaligned */
	_Atomic int released;
};

static int cp_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct cpager *p = ctx;
	(void)flags;
	if (off % PG || len % PG || !len || off + len > p->size)
		atomic_store(&p->bad_range, 1);
	if (p->delay_us)
		usleep(p->delay_us);
	uint64_t *w = buf;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = t_pattern(off + i * 8);
	for (uint64_t pg = off / PG; pg < (off + len) / PG; pg++)
		atomic_fetch_add(&p->reads[pg], 1);
	atomic_fetch_add(&p->calls, 1);
	return 0;
}

static void cp_release(void *ctx)
{
	atomic_fetch_add(&((struct cpager *)ctx)->released, 1);
}

static const struct vmo_pager_ops cp_ops = { .read = cp_read, .release = cp_release };

static void cp_init(struct cpager *p, uint64_t size, unsigned delay_us)
{
	memset(p, 0, sizeof *p);
	p->size = size;
	p->delay_us = delay_us;
	p->reads = calloc(size / PG, sizeof *p->reads);
	CHECK(p->reads);
}

/* ---- random access through several views -------------------------------- */

struct view {
	uint64_t off, len;
	unsigned prot;
	volatile uint64_t *p;
};

struct shared {
	struct view *views;
	int nviews;
	uint64_t size;
	uint64_t npages;
	/* last[t][pg]: the last value thread t wrote into word t of page pg (0 = none) */
	uint64_t *last[NTHREADS];
	_Atomic long checks;
	_Atomic long cross; /* writes seen through another view */
};

struct targ {
	struct shared *s;
	int id;
	int iters;
};

/* A view covering page pg, chosen at random among those that do (and that
 * are writable if want_write); -1 if none. */
static int pick_view(struct shared *s, uint64_t pg, bool want_write, int not, uint64_t *rnd)
{
	int cand[16], n = 0;
	for (int v = 0; v < s->nviews; v++) {
		struct view *w = &s->views[v];
		if (pg * PG < w->off || pg * PG >= w->off + w->len || v == not)
			continue;
		if (want_write && !(w->prot & VMO_PROT_WRITE))
			continue;
		cand[n++] = v;
	}
	return n ? cand[t_rand(rnd) % (uint64_t)n] : -1;
}

static volatile uint64_t *word(struct shared *s, int v, uint64_t pg, unsigned w)
{
	struct view *vw = &s->views[v];
	return vw->p + (pg * PG - vw->off) / 8 + w;
}

static void *rand_thread(void *arg)
{
	struct targ *a = arg;
	struct shared *s = a->s;
	uint64_t rnd = 0x1234567 + (uint64_t)a->id * 0x9876543;
	for (int it = 0; it < a->iters; it++) {
		uint64_t pg = t_rand(&rnd) % s->npages;
		int v = pick_view(s, pg, false, -1, &rnd);
		CHECK(v >= 0);
		/* words past NTHREADS hold the pager's pattern */
		unsigned w = NTHREADS + (unsigned)(t_rand(&rnd) % (WPP - NTHREADS));
		CHECK_EQ(*word(s, v, pg, w), t_pattern(pg * PG + w * 8));
		/* the other threads' words: pattern, or something that thread wrote
		 * into this very page */
		for (unsigned t = 0; t < NTHREADS; t++) {
			uint64_t x = *word(s, v, pg, t);
			if (x != t_pattern(pg * PG + t * 8)) {
				CHECK_EQ(x >> 56, t + 1);
				CHECK_EQ((x >> 32) & 0xffffff, pg);
			}
		}
		atomic_fetch_add(&s->checks, 1);
		/* every third step: write our word through a writable view and read
		 * it back through another view of the same page */
		if (it % 3 == 0) {
			int wv = pick_view(s, pg, true, -1, &rnd);
			if (wv < 0)
				continue;
			uint64_t val = ((uint64_t)(a->id + 1) << 56) | (pg << 32) | (uint32_t)(it + 1);
			*word(s, wv, pg, (unsigned)a->id) = val;
			s->last[a->id][pg] = val;
			int rv = pick_view(s, pg, false, wv, &rnd);
			if (rv >= 0) {
				CHECK_EQ(*word(s, rv, pg, (unsigned)a->id), val);
				atomic_fetch_add(&s->cross, 1);
			}
		}
	}
	return NULL;
}

static void run_random(struct vmo_object *obj, uint64_t size, struct view *views, int nviews, int iters)
{
	struct shared s = { .views = views, .nviews = nviews, .size = size, .npages = size / PG };
	for (int v = 0; v < nviews; v++) {
		void *p = NULL;
		CHECK_OK(vmo_map(obj, views[v].off, views[v].len, views[v].prot, &p));
		views[v].p = p;
	}
	for (int t = 0; t < NTHREADS; t++) {
		s.last[t] = calloc(s.npages, sizeof(uint64_t));
		CHECK(s.last[t]);
	}
	pthread_t th[NTHREADS];
	struct targ ta[NTHREADS];
	for (int t = 0; t < NTHREADS; t++) {
		ta[t] = (struct targ){ .s = &s, .id = t, .iters = iters };
		CHECK_OK(pthread_create(&th[t], NULL, rand_thread, &ta[t]));
	}
	for (int t = 0; t < NTHREADS; t++)
		CHECK_OK(pthread_join(th[t], NULL));
	CHECK(s.cross > iters / 10);
	/* every page through every view: the final data is exactly known */
	for (int v = 0; v < nviews; v++) {
		for (uint64_t pg = views[v].off / PG; pg < (views[v].off + views[v].len) / PG; pg++) {
			for (unsigned w = 0; w < WPP; w++) {
				uint64_t want = t_pattern(pg * PG + w * 8);
				if (w < NTHREADS && s.last[w][pg])
					want = s.last[w][pg];
				uint64_t got = *word(&s, v, pg, w);
				if (got != want) {
					fprintf(stderr, "view %d page %llu word %u: %#llx != %#llx\n", v,
						(unsigned long long)pg, w, (unsigned long long)got,
						(unsigned long long)want);
					abort();
				}
			}
		}
	}
	for (int v = 0; v < nviews; v++)
		CHECK_OK(vmo_unmap(obj, (void *)views[v].p, views[v].len));
	for (int t = 0; t < NTHREADS; t++)
		free(s.last[t]);
	printf("random: %ld checks, %ld cross-view reads\n", (long)s.checks, (long)s.cross);
}

/* Views: overlapping and not, read-only and read-write, at various offsets. */
static int make_views(struct view *v, uint64_t size)
{
	int n = 0;
	v[n++] = (struct view){ 0, size, VMO_PROT_READ | VMO_PROT_WRITE, NULL };
	v[n++] = (struct view){ size / 4, size / 2, VMO_PROT_READ, NULL };
	v[n++] = (struct view){ size / 2, size / 2, VMO_PROT_READ | VMO_PROT_WRITE, NULL };
	v[n++] = (struct view){ 0, size / 8, VMO_PROT_READ, NULL };
	v[n++] = (struct view){ size - 3 * PG, 3 * PG, VMO_PROT_READ | VMO_PROT_WRITE, NULL };
	v[n++] = (struct view){ 5 * PG, 7 * PG, VMO_PROT_READ | VMO_PROT_WRITE, NULL };
	return n;
}

/* ---- the counting pager, read-ahead off: each page read exactly once ----- */

static void test_counting(struct vmo_engine *eng)
{
	const uint64_t size = 4 << 20;
	struct cpager cp;
	cp_init(&cp, size, 0);
	struct vmo_object_opts oo = { .flags = VMO_OBJ_NO_READAHEAD, .size = size };
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, &cp_ops, &cp, &oo, &obj));
	struct view views[8];
	int nv = make_views(views, size);
	run_random(obj, size, views, nv, 6000);
	uint64_t touched = 0;
	for (uint64_t pg = 0; pg < size / PG; pg++) {
		uint32_t r = atomic_load(&cp.reads[pg]);
		/* the final check walks every page of view 0 (the whole object) */
		if (r != 1) {
			fprintf(stderr, "page %llu read %u times\n", (unsigned long long)pg, r);
			abort();
		}
		touched++;
	}
	CHECK_EQ(cp.bad_range, 0);
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(obj, &st));
	CHECK_EQ(st.pages_read, touched);
	CHECK_EQ(st.readahead, 0);
	CHECK_EQ(st.resident, size);
	CHECK_EQ(st.mappings, 0);
	CHECK_EQ(cp.released, 0);
	vmo_object_unref(obj);
	CHECK_EQ(cp.released, 1);
	free((void *)cp.reads);
}

/* ---- the memory pager, read-ahead on -------------------------------------- */

static void test_mem(struct vmo_engine *eng)
{
	const uint64_t size = 8 << 20;
	uint64_t *data = malloc(size);
	CHECK(data);
	for (size_t i = 0; i < size / 8; i++)
		data[i] = t_pattern(i * 8);
	const struct vmo_pager_ops *ops;
	void *ctx;
	CHECK_OK(vmo_pager_mem(data, size, &ops, &ctx));
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, ops, ctx, NULL, &obj));
	struct view views[8];
	int nv = make_views(views, size);
	run_random(obj, size, views, nv, 8000);
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(obj, &st));
	/* read-ahead may read a page once, never twice (nothing was evicted) */
	CHECK(st.pages_read <= size / PG);
	CHECK_EQ(st.resident, size);
	vmo_object_unref(obj);
	free(data);
}

/* ---- concurrent first touches of one page through two views -------------- */

struct race {
	pthread_barrier_t *bar;
	volatile uint64_t *view;
	uint64_t npages;
	uint64_t *seen;
};

static void *race_thread(void *arg)
{
	struct race *r = arg;
	for (uint64_t pg = 0; pg < r->npages; pg++) {
		pthread_barrier_wait(r->bar);
		r->seen[pg] = r->view[pg * WPP + 7];
	}
	return NULL;
}

static void test_waiters(struct vmo_engine *eng)
{
	const uint64_t npages = 24, size = npages * PG;
	struct cpager cp;
	cp_init(&cp, size, 30000); /* 30 ms per read: the second touch waits */
	struct vmo_object_opts oo = { .flags = VMO_OBJ_NO_READAHEAD, .size = size };
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, &cp_ops, &cp, &oo, &obj));
	void *a = NULL, *b = NULL, *c = NULL;
	CHECK_OK(vmo_map(obj, 0, size, VMO_PROT_READ | VMO_PROT_WRITE, &a));
	CHECK_OK(vmo_map(obj, 0, size, VMO_PROT_READ, &b));
	CHECK_OK(vmo_map(obj, 0, size, VMO_PROT_READ, &c));
	pthread_barrier_t bar;
	CHECK_OK(pthread_barrier_init(&bar, NULL, 4));
	uint64_t seen[4][24];
	struct race r[4] = {
		{ &bar, a, npages, seen[0] },
		{ &bar, b, npages, seen[1] },
		{ &bar, c, npages, seen[2] },
		{ &bar, b, npages, seen[3] }, /* two threads through the same view too */
	};
	pthread_t th[4];
	uint64_t t0 = t_now_ns();
	for (int i = 0; i < 4; i++)
		CHECK_OK(pthread_create(&th[i], NULL, race_thread, &r[i]));
	for (int i = 0; i < 4; i++)
		CHECK_OK(pthread_join(th[i], NULL));
	uint64_t ms = (t_now_ns() - t0) / 1000000;
	for (int i = 0; i < 4; i++)
		for (uint64_t pg = 0; pg < npages; pg++)
			CHECK_EQ(seen[i][pg], t_pattern(pg * PG + 7 * 8));
	for (uint64_t pg = 0; pg < npages; pg++) {
		uint32_t n = atomic_load(&cp.reads[pg]);
		if (n != 1) {
			fprintf(stderr, "page %llu read %u times by concurrent first touches\n",
				(unsigned long long)pg, n);
			abort();
		}
	}
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(obj, &st));
	printf("waiters: %llu pages in %llu ms, faults=%llu missing=%llu minor=%llu\n",
	       (unsigned long long)npages, (unsigned long long)ms, (unsigned long long)st.faults,
	       (unsigned long long)st.missing_faults, (unsigned long long)st.minor_faults);
	CHECK_EQ(st.pages_read, npages);
	/* each page was read once: the touches ran concurrently, not one pager
	 * read per touch in sequence (4 x 24 x 30 ms) */
	CHECK(ms < 4 * npages * 30);
	/* more faults than pages: some touches really did wait for another's fill */
	CHECK(st.faults > npages);
	pthread_barrier_destroy(&bar);
	CHECK_OK(vmo_unmap(obj, a, size));
	CHECK_OK(vmo_unmap(obj, b, size));
	CHECK_OK(vmo_unmap(obj, c, size));
	vmo_object_unref(obj);
	CHECK_EQ(cp.released, 1);
	free((void *)cp.reads);
}

static void case_counting(void) { test_counting(t_shared_engine(4)); }
static void case_mem(void) { test_mem(t_shared_engine(4)); }
static void case_waiters(void) { test_waiters(t_shared_engine(4)); }

int main(int argc, char **argv)
{
	alarm(120); /* a hang fails the test instead of blocking ctest */
	return t_main(argc, argv, T_CASES({ "counting", case_counting }, { "mem", case_mem }, { "waiters", case_waiters }));
}
