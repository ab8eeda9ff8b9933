/* SPDX-License-Identifier: MIT */
/* test_pressure_watch: the memory-pressure watcher of src/pressure.h on its
 * own (white-box): figures that make sense (available memory, the cgroup's
 * limit and usage, the headroom, the default margin), ticks that come, a PSI
 * trigger that can be had (also as an unprivileged user); and that the
 * watcher is one thread for the process: subscribers with their own margins
 * and periods share it, the last one to leave stops it, unsubscribe returns
 * only once its callback is done for good, subscribers coming and going
 * from many threads at once, a fork() child gets its own, and engines and
 * caches all use the one thread. */
#include "helper.h"
#include "pressure.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static _Atomic int ticks;
static void tick_cb(void *arg, int level)
{
	(void)arg;
	CHECK(level >= VMO__PRESSURE_NONE && level <= VMO__PRESSURE_CRITICAL);
	atomic_fetch_add(&ticks, 1);
}

/* threads of this process now */
static int nthreads(void)
{
	DIR *d = opendir("/proc/self/task");
	CHECK(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* wait (up to 2 s) for the thread count to become want: a joined thread
 * leaves /proc/self/task a moment after pthread_join returns */
static int nthreads_settle(int want)
{
	int n = nthreads();
	for (int i = 0; i < 200 && n != want; i++) {
		usleep(10 * 1000);
		n = nthreads();
	}
	return n;
}

static void psi_child(void *arg)
{
	(void)arg;
	if (setgid(65534) || setuid(65534))
		_exit(3);
	struct vmo__pressure_sub *s;
	struct vmo__pressure_opts o = { .poll_ms = 20 };
	if (vmo__pressure_subscribe(&o, tick_cb, NULL, &s))
		_exit(4);
	unsigned src = vmo__pressure_sources();
	vmo__pressure_unsubscribe(s);
	_exit(src & VMO__PRESSURE_SRC_PSI ? 0 : 5);
}

/* vmo__mem_query and the default margin: figures that make sense */
static void case_mem_query(void)
{
	struct vmo__mem m;
	CHECK_OK(vmo__mem_query(&m));
	CHECK(m.avail > 0 && m.avail != UINT64_MAX);
	CHECK(m.headroom <= m.avail);
	if (m.cg_version) {
		CHECK(m.cg_usage > 0);
		CHECK(m.cg_reclaim <= m.cg_usage);
		if (m.cg_limit != UINT64_MAX)
			CHECK(m.headroom <= m.cg_limit);
	}
	uint64_t mg = vmo__mem_default_margin();
	CHECK(mg >= (64u << 20) && mg <= (1u << 30));
	printf("memory: avail %llu MiB, cgroup v%d '%s' limit %lld MiB usage %llu MiB, headroom %llu MiB\n",
	       (unsigned long long)(m.avail >> 20), m.cg_version, vmo__mem_cgroup_dir(),
	       m.cg_limit == UINT64_MAX ? -1ll : (long long)(m.cg_limit >> 20),
	       (unsigned long long)(m.cg_usage >> 20), (unsigned long long)(m.headroom >> 20));
}

/* the watcher: ticks that come; a PSI trigger, also as uid 65534 */
static void case_watch(void)
{
	struct vmo__pressure_sub *s;
	struct vmo__pressure_opts o = { .poll_ms = 20 };
	atomic_store(&ticks, 0);
	CHECK_EQ(vmo__pressure_sources(), 0u);
	CHECK_OK(vmo__pressure_subscribe(&o, tick_cb, NULL, &s));
	unsigned src = vmo__pressure_sources();
	usleep(300 * 1000);
	vmo__pressure_unsubscribe(s);
	int n = atomic_load(&ticks);
	CHECK(n >= 5 && n <= 40);
	CHECK_EQ(vmo__pressure_sources(), 0u);
	printf("watcher: sources %#x, %d ticks in 300 ms\n", src, n);
	bool psi_here = access("/proc/pressure/memory", R_OK) == 0;
	if (psi_here)
		CHECK(src & VMO__PRESSURE_SRC_PSI);
	if (psi_here && geteuid() == 0) {
		int st = t_fork_run(psi_child, NULL);
		CHECK(WIFEXITED(st));
		CHECK_EQ(WEXITSTATUS(st), 0);
	}
	CHECK_EQ(vmo__pressure_subscribe(NULL, NULL, NULL, &s), -EINVAL);
	CHECK_EQ(vmo__pressure_subscribe(NULL, tick_cb, NULL, NULL), -EINVAL);
	vmo__pressure_unsubscribe(NULL);
}

/* A subscriber that counts its calls and the levels it got. */
struct counter {
	_Atomic int calls;
	_Atomic int by_level[4];
	_Atomic bool in_cb;
	_Atomic bool gone; /* unsubscribed: a call now is a failure */
	unsigned sleep_us; /* in each call */
};

static void count_cb(void *arg, int level)
{
	struct counter *c = arg;
	CHECK(!atomic_load(&c->gone));
	CHECK(level >= VMO__PRESSURE_NONE && level <= VMO__PRESSURE_CRITICAL);
	CHECK(!atomic_exchange(&c->in_cb, true)); /* one call at a time */
	if (c->sleep_us)
		usleep(c->sleep_us);
	atomic_fetch_add(&c->by_level[level], 1);
	atomic_fetch_add(&c->calls, 1);
	atomic_store(&c->in_cb, false);
}

static struct vmo__pressure_sub *sub(struct counter *c, uint64_t margin, uint32_t poll_ms)
{
	struct vmo__pressure_opts o = { .margin = margin, .poll_ms = poll_ms };
	struct vmo__pressure_sub *s;
	CHECK_OK(vmo__pressure_subscribe(&o, count_cb, c, &s));
	return s;
}

static void unsub(struct vmo__pressure_sub *s, struct counter *c)
{
	vmo__pressure_unsubscribe(s);
	CHECK(!atomic_load(&c->in_cb));
	atomic_store(&c->gone, true);
}

/* two subscribers with their own margins and periods share one thread; both
 * tick, each at its period and with its margin; one leaving keeps the other
 * ticking; the last one stops the thread */
static void case_shared(void)
{
	int base = nthreads();
	/* a: a margin no machine has (headroom always below half of it:
	 * CRITICAL on every call); b: a margin of one byte (only PSI or cgroup
	 * events can raise its level) */
	static struct counter a, b;
	struct vmo__pressure_sub *sa = sub(&a, UINT64_MAX / 2, 20);
	CHECK_EQ(nthreads(), base + 1);
	struct vmo__pressure_sub *sb = sub(&b, 1, 30);
	CHECK_EQ(nthreads(), base + 1); /* the same thread */
	usleep(300 * 1000);
	int na = atomic_load(&a.calls), nb = atomic_load(&b.calls);
	printf("shared: %d threads before, %d with two subscribers; in 300 ms a (20 ms) %d calls, "
	       "b (30 ms) %d calls\n",
	       base, nthreads(), na, nb);
	CHECK(na >= 5 && na <= 40);
	CHECK(nb >= 4 && nb <= 30);
	CHECK(atomic_load(&b.by_level[VMO__PRESSURE_NONE]) > 0); /* not a's margin */

	unsub(sa, &a);
	/* a's margin: every call of a's was CRITICAL */
	CHECK_EQ(atomic_load(&a.by_level[VMO__PRESSURE_CRITICAL]), atomic_load(&a.calls));
	CHECK_EQ(nthreads(), base + 1);
	int nb1 = atomic_load(&b.calls);
	usleep(200 * 1000);
	int nb2 = atomic_load(&b.calls);
	CHECK(nb2 - nb1 >= 3); /* b ticks on */
	int na_final = atomic_load(&a.calls);
	usleep(50 * 1000);
	CHECK_EQ(atomic_load(&a.calls), na_final); /* a no more */

	unsub(sb, &b);
	CHECK_EQ(nthreads_settle(base), base); /* the thread is gone */
	CHECK_EQ(vmo__pressure_sources(), 0u);
	int nb3 = atomic_load(&b.calls);
	usleep(100 * 1000);
	CHECK_EQ(atomic_load(&b.calls), nb3);

	/* and a new subscriber starts a new one */
	static struct counter c;
	struct vmo__pressure_sub *sc = sub(&c, 0, 10);
	CHECK_EQ(nthreads(), base + 1);
	usleep(100 * 1000);
	CHECK(atomic_load(&c.calls) >= 3);
	unsub(sc, &c);
	CHECK_EQ(nthreads_settle(base), base);
}

/* unsubscribe while the callback runs: it returns only after the call, and
 * no call follows; both for a subscriber among others and for the last */
static void case_unsubscribe_waits(void)
{
	int base = nthreads();
	static struct counter slow, other;
	slow.sleep_us = 50 * 1000;
	struct vmo__pressure_sub *so = sub(&other, 0, 10);
	struct vmo__pressure_sub *ss = sub(&slow, 0, 10);
	for (int i = 0; i < 500 && !atomic_load(&slow.in_cb); i++)
		usleep(1000);
	CHECK(atomic_load(&slow.in_cb));
	/* subscribing meanwhile does not wait for the callback (no lock of the
	 * watcher's is held while it runs) */
	static struct counter extra;
	uint64_t t0 = t_now_ns();
	struct vmo__pressure_sub *se = sub(&extra, 0, 10);
	double sub_ms = (double)(t_now_ns() - t0) / 1e6;
	CHECK(atomic_load(&slow.in_cb));
	printf("subscribe during a 50 ms callback took %.2f ms\n", sub_ms);
	CHECK(sub_ms < 25);
	unsub(se, &extra);
	t0 = t_now_ns();
	unsub(ss, &slow); /* checks in_cb is false on return */
	printf("unsubscribe during a 50 ms callback took %.1f ms\n", (double)(t_now_ns() - t0) / 1e6);
	int n = atomic_load(&slow.calls);
	usleep(100 * 1000);
	CHECK_EQ(atomic_load(&slow.calls), n);
	int no = atomic_load(&other.calls);
	usleep(50 * 1000);
	CHECK(atomic_load(&other.calls) > no);

	/* the last subscriber, in its callback */
	static struct counter last;
	last.sleep_us = 50 * 1000;
	struct vmo__pressure_sub *sl = sub(&last, 0, 10);
	unsub(so, &other);
	for (int i = 0; i < 500 && !atomic_load(&last.in_cb); i++)
		usleep(1000);
	CHECK(atomic_load(&last.in_cb));
	unsub(sl, &last);
	CHECK_EQ(nthreads_settle(base), base);
}

/* a callback that subscribes another subscriber (allowed; unsubscribing
 * from a callback is not) */
static struct counter inner;
static struct vmo__pressure_sub *_Atomic inner_sub;

static void subscribing_cb(void *arg, int level)
{
	count_cb(arg, level);
	if (!atomic_load(&inner_sub)) {
		struct vmo__pressure_opts o = { .poll_ms = 10 };
		struct vmo__pressure_sub *s;
		CHECK_OK(vmo__pressure_subscribe(&o, count_cb, &inner, &s));
		atomic_store(&inner_sub, s);
	}
}

static void case_subscribe_in_callback(void)
{
	int base = nthreads();
	static struct counter outer;
	struct vmo__pressure_opts o = { .poll_ms = 10 };
	struct vmo__pressure_sub *s;
	CHECK_OK(vmo__pressure_subscribe(&o, subscribing_cb, &outer, &s));
	usleep(150 * 1000);
	CHECK(atomic_load(&inner_sub));
	CHECK(atomic_load(&inner.calls) >= 3);
	CHECK_EQ(nthreads(), base + 1);
	unsub(s, &outer);
	unsub(atomic_load(&inner_sub), &inner);
	CHECK_EQ(nthreads_settle(base), base);
}

/* many threads subscribing and unsubscribing at once, with a subscriber
 * coming and going, the watcher stopping and starting under them */
enum { CHURN_THREADS = 4, CHURN_ROUNDS = 150 };

static void *churn_main(void *arg)
{
	uint64_t seed = (uint64_t)(uintptr_t)arg * 7919 + 1;
	for (int i = 0; i < CHURN_ROUNDS; i++) {
		struct counter *c = calloc(1, sizeof *c);
		CHECK(c);
		struct vmo__pressure_sub *s = sub(c, t_rand(&seed) % 2 ? 0 : UINT64_MAX / 2,
						  1 + (uint32_t)(t_rand(&seed) % 5));
		usleep((useconds_t)(t_rand(&seed) % 4000));
		unsub(s, c);
		free(c); /* a late call would be a use after free (ASan) */
	}
	return NULL;
}

static void case_churn(void)
{
	int base = nthreads();
	pthread_t th[CHURN_THREADS];
	for (uintptr_t i = 0; i < CHURN_THREADS; i++)
		CHECK_OK(pthread_create(&th[i], NULL, churn_main, (void *)i));
	for (int i = 0; i < CHURN_THREADS; i++)
		CHECK_OK(pthread_join(th[i], NULL));
	CHECK_EQ(nthreads_settle(base), base);
	CHECK_EQ(vmo__pressure_sources(), 0u);
}

/* fork() with the watcher running: the child has no watcher thread, so its
 * first subscriber starts its own; the inherited subscriber may be
 * unsubscribed; the parent's ticks go on */
static struct vmo__pressure_sub *fork_inherited;

static void fork_child_fn(void *arg)
{
	(void)arg;
	struct counter c = { 0 };
	struct vmo__pressure_opts o = { .poll_ms = 10 };
	struct vmo__pressure_sub *s;
	if (nthreads() != 1)
		_exit(3);
	if (vmo__pressure_subscribe(&o, count_cb, &c, &s))
		_exit(4);
	if (nthreads() != 2)
		_exit(5);
	usleep(100 * 1000);
	if (atomic_load(&c.calls) < 3)
		_exit(6);
	vmo__pressure_unsubscribe(fork_inherited); /* frees it, nothing else */
	vmo__pressure_unsubscribe(s);
	_exit(nthreads_settle(1) == 1 ? 0 : 7);
}

static void case_fork(void)
{
	static struct counter p;
	int base = nthreads();
	fork_inherited = sub(&p, 0, 10);
	int st = t_fork_run(fork_child_fn, NULL);
	CHECK(WIFEXITED(st));
	CHECK_EQ(WEXITSTATUS(st), 0);
	int n = atomic_load(&p.calls);
	usleep(100 * 1000);
	CHECK(atomic_load(&p.calls) >= n + 3);
	unsub(fork_inherited, &p);
	CHECK_EQ(nthreads_settle(base), base);
}

/* two engines and a cache: one watcher thread between them (the threads they
 * start, less the same without pressure watching) */
static int threads_with(uint32_t eflags, uint32_t cflags)
{
	int base = nthreads();
	struct vmo_engine_opts eo = { .flags = eflags, .workers = 1 };
	struct vmo_engine *e1, *e2;
	int rc = vmo_engine_create(&eo, &e1);
	if (rc == -VMO_ENOUFFD)
		t_skip_case("%s", vmo_last_error_detail());
	CHECK_OK(rc);
	CHECK_OK(vmo_engine_create(&eo, &e2));
	struct vmo_cache_opts co = { .flags = cflags };
	struct vmo_cache *c;
	CHECK_OK(vmo_cache_create(&co, &c));
	int n = nthreads() - base;
	CHECK_OK(vmo_cache_destroy(c));
	CHECK_OK(vmo_engine_destroy(e2));
	CHECK_OK(vmo_engine_destroy(e1));
	CHECK_EQ(nthreads_settle(base), base);
	return n;
}

static void case_engines(void)
{
	int with = threads_with(0, 0);
	int without = threads_with(VMO_ENGINE_NO_PRESSURE, VMO_CACHE_NO_PRESSURE);
	printf("2 engines (1 worker) + 1 cache: %d threads, %d without pressure watching\n", with, without);
	CHECK_EQ(with, without + 1);
}

int main(int argc, char **argv)
{
	return t_main(argc, argv,
		      T_CASES({ "mem-query", case_mem_query }, { "watch", case_watch }, { "shared", case_shared },
			      { "unsubscribe-waits", case_unsubscribe_waits },
			      { "subscribe-in-callback", case_subscribe_in_callback }, { "churn", case_churn },
			      { "fork", case_fork }, { "engines", case_engines }));
}
