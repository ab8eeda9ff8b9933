/* SPDX-License-Identifier: MIT */
/* bench/supply: a slow store, served with synchronous reads and with
 * asynchronous supply (vmo_object_supply).
 *
 * 32 threads touch random pages of an object whose pager answers after a
 * fixed latency (200 µs, a network store's round trip).  The engine has its
 * default worker count (2).
 *
 *   sync    read sleeps out the latency and returns the data: at most one
 *           read per worker in flight
 *   async   read queues the request and answers -EINPROGRESS; the pager's
 *           completion threads (4, as a store's I/O threads) supply each
 *           when it is due: as many reads in flight as there are faults
 *   ceiling synchronous reads with a worker per thread (32): what this
 *           machine's fault handling allows with as many reads in flight;
 *           async gets there with the default workers
 *   ideal   the same latency with nothing in the way: 32 threads each
 *           waiting out one latency per page (32/latency)
 *
 * Figures: pages per second of each, async_over_sync (target >= 8: met
 * where a fault round trip is cheap next to the latency; on a machine where
 * a round trip costs a fifth of it, see async_over_worker_per_thread),
 * async_of_ideal; the latency of each touch, from the load to its data
 * (sync_touch_p50_ns, _p99_ns, _max_ns; async_touch_...; a queue shows in the
 * tail; VMO_BENCH_SAMPLES=DIR writes them).  Env: VMO_BENCH_PAGES (8192 touched by each mode),
 * VMO_BENCH_LATENCY_US (200), VMO_BENCH_THREADS (32), VMO_BENCH_COMPLETERS
 * (4), VMO_BENCH_WORKERS (engine default). */
#include "lib/common.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define NPG_OBJ 65536 /* 256 MiB object: random pages rarely neighbours */

static char *src;
static uint64_t latency_ns;
static unsigned ncompleters;

struct req {
	uint64_t off, due;
	size_t len;
};

struct store {
	struct vmo_object *o;
	bool async;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct req *q; /* a ring, in due order (one latency for all) */
	size_t head, n, cap;
	bool stop;
	pthread_t completer[8];
	unsigned ncompleters;
};

static void sleep_until(uint64_t due)
{
	struct timespec ts = { (time_t)(due / 1000000000ull), (long)(due % 1000000000ull) };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static int st_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct store *s = ctx;
	(void)flags;
	uint64_t due = now_ns() + latency_ns;
	if (!s->async) {
		sleep_until(due);
		memcpy(buf, src + off, len);
		return 0;
	}
	pthread_mutex_lock(&s->mu);
	if (s->n == s->cap)
		die("request ring full", -ENOSPC);
	s->q[(s->head + s->n++) % s->cap] = (struct req){ off, due, len };
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return -EINPROGRESS;
}

static void *completer(void *arg)
{
	struct store *s = arg;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->stop && !s->n)
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->stop)
			break;
		struct req r = s->q[s->head];
		s->head = (s->head + 1) % s->cap;
		s->n--;
		pthread_mutex_unlock(&s->mu);
		sleep_until(r.due);
		int rc = vmo_object_supply(s->o, r.off, r.len, src + r.off, 0);
		if (rc)
			die("vmo_object_supply", rc);
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static const struct vmo_pager_ops ops = { .read = st_read };

struct toucher {
	const char *base;
	const uint32_t *pages;
	size_t n;
	uint64_t sum;
	struct samples lat; /* each touch's latency: hundreds of µs, next to which the clock is nothing */
};

static void *touch(void *arg)
{
	struct toucher *t = arg;
	for (size_t i = 0; i < t->n; i++) {
		const volatile uint64_t *p = (const volatile uint64_t *)(t->base + (size_t)t->pages[i] * PG + 8);
		uint64_t a = now_ns();
		t->sum += *p;
		samples_add(&t->lat, now_ns() - a);
	}
	return NULL;
}

/* Pages per second of nthreads touching pages[0..n) (split among them);
 * with latkey, the percentiles of the touches' latencies as latkey_p50_ns... */
static double run(struct vmo_engine *eng, bool async, const uint32_t *pages, size_t n, unsigned nthreads,
		  const char *latkey)
{
	struct store s = { .async = async, .cap = 4096, .ncompleters = ncompleters };
	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.cv, NULL);
	s.q = calloc(s.cap, sizeof *s.q);
	struct vmo_object_opts oo = { .size = (uint64_t)NPG_OBJ * PG, .flags = VMO_OBJ_NO_READAHEAD };
	int rc = vmo_object_create(eng, &ops, &s, &oo, &s.o);
	if (rc)
		die("vmo_object_create", rc);
	void *base;
	rc = vmo_map(s.o, 0, (size_t)NPG_OBJ * PG, VMO_PROT_READ, &base);
	if (rc)
		die("vmo_map", rc);
	for (unsigned i = 0; async && i < s.ncompleters; i++)
		if (pthread_create(&s.completer[i], NULL, completer, &s))
			die("pthread_create", -errno);
	pthread_t th[256];
	struct toucher t[256];
	size_t per = n / nthreads;
	uint64_t t0 = now_ns();
	for (unsigned i = 0; i < nthreads; i++) {
		t[i] = (struct toucher){ .base = base, .pages = pages + (size_t)i * per, .n = per };
		samples_init(&t[i].lat, per);
		if (pthread_create(&th[i], NULL, touch, &t[i]))
			die("pthread_create", -errno);
	}
	for (unsigned i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	uint64_t t1 = now_ns();
	struct samples all;
	samples_init(&all, per * nthreads);
	for (unsigned i = 0; i < nthreads; i++) {
		for (size_t k = 0; k < t[i].lat.n; k++)
			samples_add(&all, t[i].lat.v[k]);
		samples_free(&t[i].lat);
	}
	if (latkey)
		samples_report(&all, latkey);
	samples_free(&all);
	/* every page touched holds the store's data */
	for (size_t i = 0; i < per * nthreads; i += 61) {
		size_t pg = pages[i];
		if (memcmp((char *)base + pg * PG, src + pg * PG, PG)) {
			fprintf(stderr, "bench/supply: data mismatch at page %zu\n", pg);
			exit(1);
		}
	}
	if (async) {
		pthread_mutex_lock(&s.mu);
		s.stop = true;
		pthread_cond_broadcast(&s.cv);
		pthread_mutex_unlock(&s.mu);
		for (unsigned i = 0; i < s.ncompleters; i++)
			pthread_join(s.completer[i], NULL);
	}
	vmo_unmap(s.o, base, (size_t)NPG_OBJ * PG);
	vmo_object_unref(s.o);
	free(s.q);
	return (double)(per * nthreads) * 1e9 / (double)(t1 - t0);
}

int main(void)
{
	size_t n = env_ul("VMO_BENCH_PAGES", 8192);
	latency_ns = env_ul("VMO_BENCH_LATENCY_US", 200) * 1000;
	unsigned nthreads = (unsigned)env_ul("VMO_BENCH_THREADS", 32);
	ncompleters = (unsigned)env_ul("VMO_BENCH_COMPLETERS", 4);
	if (ncompleters < 1 || ncompleters > 8)
		die("VMO_BENCH_COMPLETERS in 1..8", -EINVAL);
	if (nthreads < 1 || nthreads > 256 || n < nthreads || n > NPG_OBJ)
		die("VMO_BENCH_THREADS in 1..256, VMO_BENCH_PAGES in threads..65536", -EINVAL);
	struct vmo_engine_opts eo = { .workers = (unsigned)env_ul("VMO_BENCH_WORKERS", 0) };
	struct vmo_engine *eng;
	int rc = vmo_engine_create(&eo, &eng);
	if (rc)
		die("vmo_engine_create", rc);
	if (!(vmo_engine_features(eng) & VMO_FEAT_MINOR)) {
		printf("skipped=no MINOR faults (asynchronous supply needs VMO_FEAT_MINOR)\n");
		return 0;
	}
	src = make_data(NPG_OBJ, 7);
	uint32_t *perm = make_perm(NPG_OBJ, 11);
	/* sync is slow (two reads in flight): a quarter of the pages is enough */
	size_t nsync = n / 4 < nthreads ? nthreads : n / 4;
	double sync = run(eng, false, perm, nsync, nthreads, "sync_touch");
	double async = run(eng, true, perm + nsync, n, nthreads, "async_touch");
	/* The ceiling of this machine: synchronous reads with a worker per
	 * thread (what async supply spares: the workers, not the faults). */
	struct vmo_engine_opts em = { .workers = nthreads };
	struct vmo_engine *many;
	rc = vmo_engine_create(&em, &many);
	if (rc)
		die("vmo_engine_create (a worker per thread)", rc);
	double ceiling = run(many, false, perm + nsync + n, n < NPG_OBJ - nsync - n ? n : NPG_OBJ - nsync - n, nthreads,
			     "worker_per_thread_touch");
	vmo_engine_destroy(many);
	double ideal = (double)nthreads * 1e9 / (double)latency_ns;
	printf("threads=%u\ncompleters=%u\nlatency_us=%llu\npages=%zu\n", nthreads, ncompleters,
	       (unsigned long long)(latency_ns / 1000), n);
	printf("sync_pages_per_s=%.0f\nasync_pages_per_s=%.0f\nsync_worker_per_thread_pages_per_s=%.0f\n"
	       "ideal_pages_per_s=%.0f\n",
	       sync, async, ceiling, ideal);
	figure_target("async_over_sync", 2, async / sync, ">=", 8);
	printf("async_over_worker_per_thread=%.2f\nasync_of_ideal=%.2f\n", async / ceiling, async / ideal);
	vmo_engine_destroy(eng);
	free(perm);
	munmap(src, (size_t)NPG_OBJ * PG);
	return 0;
}
