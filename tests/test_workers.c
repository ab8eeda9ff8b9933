/* SPDX-License-Identifier: MIT */
/* test_workers: the fault-service workers (libpager's start/inhibit/resume).
 * vmo_engine_inhibit() returns only once the faults already received are
 * done (a pager blocked in read holds it back); faults arriving later wait
 * until vmo_engine_resume(), which nests; workers = 1 and 8 both serve data
 * right, the pager runs on exactly 1 / several threads, and 8 workers serve a
 * slow pager in parallel; VMO_ENGINE_NO_WORKERS: faults wait until
 * vmo_engine_start(), then are served. */
#include "helper.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PG 4096u
#define NPG 256

/* ---- a pager that can be held closed, and records who served what -------- */

struct gpager {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool closed;
	int blocked;               /* reads waiting at the gate */
	_Atomic uint32_t reads[NPG];
	_Atomic int done;          /* reads finished */
	unsigned delay_us;
	pid_t tids[64];
	_Atomic int ntids;
};

static void gp_init(struct gpager *g)
{
	memset(g, 0, sizeof *g);
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
}

static void gp_destroy(struct gpager *g)
{
	pthread_mutex_destroy(&g->mu);
	pthread_cond_destroy(&g->cv);
}

static void note_tid(struct gpager *g)
{
	pid_t t = (pid_t)syscall(SYS_gettid);
	pthread_mutex_lock(&g->mu);
	int n = atomic_load(&g->ntids), i;
	for (i = 0; i < n; i++)
		if (g->tids[i] == t)
			break;
	if (i == n && n < 64) {
		g->tids[n] = t;
		atomic_store(&g->ntids, n + 1);
	}
	pthread_mutex_unlock(&g->mu);
}

static int gp_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct gpager *g = ctx;
	(void)flags;
	note_tid(g);
	for (uint64_t pg = off / PG; pg < (off + len) / PG; pg++)
		atomic_fetch_add(&g->reads[pg], 1);
	pthread_mutex_lock(&g->mu);
	g->blocked++;
	while (g->closed)
		pthread_cond_wait(&g->cv, &g->mu);
	g->blocked--;
	pthread_mutex_unlock(&g->mu);
	if (g->delay_us)
		usleep(g->delay_us);
	uint64_t *w = buf;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = t_pattern(off + i * 8);
	atomic_fetch_add(&g->done, 1);
	return 0;
}

static const struct vmo_pager_ops gp_ops = { .read = gp_read };

static void gate(struct gpager *g, bool closed)
{
	pthread_mutex_lock(&g->mu);
	g->closed = closed;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

static int blocked(struct gpager *g)
{
	pthread_mutex_lock(&g->mu);
	int n = g->blocked;
	pthread_mutex_unlock(&g->mu);
	return n;
}

/* Wait up to 5 s for *flag to become nonzero. */
static bool wait_flag(_Atomic int *flag)
{
	uint64_t t0 = t_now_ns();
	while (!atomic_load(flag)) {
		if (t_now_ns() - t0 > 5000000000ull)
			return false;
		usleep(1000);
	}
	return true;
}

/* ---- threads ----------------------------------------------------------------- */

struct toucher {
	const volatile uint64_t *p;
	uint64_t off;
	_Atomic int done;
	uint64_t v;
};

static void *touch_main(void *arg)
{
	struct toucher *t = arg;
	t->v = *t->p;
	atomic_store(&t->done, 1);
	return NULL;
}

static void touch_start(pthread_t *th, struct toucher *t, void *base, uint64_t off)
{
	t->p = (const volatile uint64_t *)((char *)base + off);
	t->off = off;
	atomic_store(&t->done, 0);
	CHECK_OK(pthread_create(th, NULL, touch_main, t));
}

static void touch_join(pthread_t th, struct toucher *t)
{
	CHECK(wait_flag(&t->done));
	CHECK_OK(pthread_join(th, NULL));
	CHECK_EQ(t->v, t_pattern(t->off));
}

struct inh {
	struct vmo_engine *eng;
	_Atomic int returned;
	int rc;
};

static void *inhibit_main(void *arg)
{
	struct inh *i = arg;
	i->rc = vmo_engine_inhibit(i->eng);
	atomic_store(&i->returned, 1);
	return NULL;
}

static void test_inhibit(void)
{
	static struct gpager g;
	gp_init(&g);
	struct vmo_engine *eng = t_engine(2);
	struct vmo_object_opts oo = { .flags = VMO_OBJ_NO_READAHEAD, .size = NPG * PG };
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, &gp_ops, &g, &oo, &obj));
	void *a = NULL;
	CHECK_OK(vmo_map(obj, 0, NPG * PG, VMO_PROT_READ, &a));

	/* a fault in service, held in the pager */
	gate(&g, true);
	pthread_t t1, ti;
	struct toucher f1;
	touch_start(&t1, &f1, a, 1 * PG + 8);
	uint64_t t0 = t_now_ns();
	while (blocked(&g) < 1) {
		CHECK(t_now_ns() - t0 < 5000000000ull);
		usleep(1000);
	}
	/* inhibit does not return while it is in service */
	struct inh in = { .eng = eng };
	CHECK_OK(pthread_create(&ti, NULL, inhibit_main, &in));
	usleep(300000);
	CHECK_EQ(atomic_load(&in.returned), 0);
	CHECK_EQ(atomic_load(&f1.done), 0);
	/* let the pager finish: inhibit returns, the fault is done */
	gate(&g, false);
	CHECK(wait_flag(&in.returned));
	CHECK_OK(pthread_join(ti, NULL));
	CHECK_OK(in.rc);
	CHECK_EQ(atomic_load(&g.done), 1);
	touch_join(t1, &f1);

	/* inhibited: a new fault waits, the pager is not called */
	pthread_t t2;
	struct toucher f2;
	touch_start(&t2, &f2, a, 2 * PG + 16);
	usleep(300000);
	CHECK_EQ(atomic_load(&f2.done), 0);
	CHECK_EQ(atomic_load(&g.reads[2]), 0);
	/* nesting: inhibit twice, resume once: still waiting */
	CHECK_OK(vmo_engine_inhibit(eng));
	CHECK_OK(vmo_engine_resume(eng));
	usleep(300000);
	CHECK_EQ(atomic_load(&f2.done), 0);
	CHECK_EQ(atomic_load(&g.reads[2]), 0);
	/* the last resume lets it through */
	CHECK_OK(vmo_engine_resume(eng));
	touch_join(t2, &f2);
	CHECK_EQ(atomic_load(&g.reads[2]), 1);
	CHECK_EQ(vmo_engine_resume(eng), -EINVAL);
	/* inhibit with nothing in service returns at once */
	t0 = t_now_ns();
	CHECK_OK(vmo_engine_inhibit(eng));
	CHECK((t_now_ns() - t0) / 1000000 < 1000);
	CHECK_OK(vmo_engine_resume(eng));
	CHECK_EQ(((const volatile uint64_t *)a)[3 * PG / 8], t_pattern(3 * PG));

	CHECK_OK(vmo_unmap(obj, a, NPG * PG));
	vmo_object_unref(obj);
	CHECK_OK(vmo_engine_destroy(eng));
	gp_destroy(&g);
	printf("inhibit/resume: ok\n");
}

/* ---- worker counts -------------------------------------------------------------- */

struct rarg {
	const volatile uint64_t *base;
	int id;
	int n;
};

static void *rand_main(void *arg)
{
	struct rarg *r = arg;
	uint64_t s = 0x777 + (uint64_t)r->id * 1000003;
	for (int i = 0; i < r->n; i++) {
		uint64_t w = t_rand(&s) % (NPG * PG / 8);
		CHECK_EQ(r->base[w], t_pattern(w * 8));
	}
	return NULL;
}

/* Distinct pages, one per thread per round: each thread touches its own. */
static void *seq_main(void *arg)
{
	struct rarg *r = arg;
	for (int i = 0; i < r->n; i++) {
		uint64_t pg = (uint64_t)i * 8 + (uint64_t)r->id;
		CHECK_EQ(r->base[pg * PG / 8 + 1], t_pattern(pg * PG + 8));
	}
	return NULL;
}

static uint64_t run_count(unsigned workers, int *ntids)
{
	static struct gpager g;
	gp_init(&g);
	struct vmo_engine *eng = t_engine(workers);
	struct vmo_object_opts oo = { .flags = VMO_OBJ_NO_READAHEAD, .size = NPG * PG };
	struct vmo_object *obj;
	/* random reads by 4 threads: right data */
	CHECK_OK(vmo_object_create(eng, &gp_ops, &g, &oo, &obj));
	void *a = NULL;
	CHECK_OK(vmo_map(obj, 0, NPG * PG, VMO_PROT_READ, &a));
	pthread_t th[8];
	struct rarg ra[8];
	for (int i = 0; i < 4; i++) {
		ra[i] = (struct rarg){ a, i, 2000 };
		CHECK_OK(pthread_create(&th[i], NULL, rand_main, &ra[i]));
	}
	for (int i = 0; i < 4; i++)
		CHECK_OK(pthread_join(th[i], NULL));
	CHECK_OK(vmo_unmap(obj, a, NPG * PG));
	vmo_object_unref(obj);

	/* a slow pager (20 ms a read), 8 threads on distinct pages */
	gp_destroy(&g);
	gp_init(&g);
	g.delay_us = 20000;
	CHECK_OK(vmo_object_create(eng, &gp_ops, &g, &oo, &obj));
	CHECK_OK(vmo_map(obj, 0, NPG * PG, VMO_PROT_READ, &a));
	uint64_t t0 = t_now_ns();
	for (int i = 0; i < 8; i++) {
		ra[i] = (struct rarg){ a, i, 4 };
		CHECK_OK(pthread_create(&th[i], NULL, seq_main, &ra[i]));
	}
	for (int i = 0; i < 8; i++)
		CHECK_OK(pthread_join(th[i], NULL));
	uint64_t ms = (t_now_ns() - t0) / 1000000;
	CHECK_EQ(atomic_load(&g.done), 32);
	*ntids = atomic_load(&g.ntids);
	printf("workers=%u: 32 slow reads by 8 threads in %llu ms, pager ran on %d thread(s)\n", workers,
	       (unsigned long long)ms, *ntids);
	CHECK_OK(vmo_unmap(obj, a, NPG * PG));
	vmo_object_unref(obj);
	CHECK_OK(vmo_engine_destroy(eng));
	gp_destroy(&g);
	return ms;
}

static void test_counts(void)
{
	int n1, n8;
	uint64_t ms1 = run_count(1, &n1);
	uint64_t ms8 = run_count(8, &n8);
	CHECK_EQ(n1, 1);                /* one worker: the pager runs on one thread */
	CHECK(n8 > 1 && n8 <= 8);       /* eight: on several, never more than eight */
	CHECK(ms1 >= 32 * 20);          /* serial */
	CHECK(ms8 * 10 < ms1 * 6);      /* parallel: clearly faster */
}

/* ---- VMO_ENGINE_NO_WORKERS ------------------------------------------------------ */

static void test_no_workers(void)
{
	static struct gpager g;
	gp_init(&g);
	struct vmo_engine_opts eo = { .flags = VMO_ENGINE_NO_WORKERS, .workers = 3 };
	struct vmo_engine *eng;
	int rc = vmo_engine_create(&eo, &eng);
	if (rc == -VMO_ENOUFFD)
		t_skip("%s", vmo_last_error_detail());
	CHECK_OK(rc);
	struct vmo_object_opts oo = { .flags = VMO_OBJ_NO_READAHEAD, .size = NPG * PG };
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, &gp_ops, &g, &oo, &obj));
	void *a = NULL;
	CHECK_OK(vmo_map(obj, 0, NPG * PG, VMO_PROT_READ, &a));
	pthread_t t[3];
	struct toucher f[3];
	for (int i = 0; i < 3; i++)
		touch_start(&t[i], &f[i], a, (uint64_t)(10 + i) * PG + 24);
	usleep(300000);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(atomic_load(&f[i].done), 0);
	CHECK_EQ(atomic_load(&g.done), 0);
	CHECK_OK(vmo_engine_start(eng));
	for (int i = 0; i < 3; i++)
		touch_join(t[i], &f[i]);
	CHECK_EQ(atomic_load(&g.done), 3);
	CHECK_EQ(vmo_engine_start(eng), -EALREADY);
	CHECK_EQ(((const volatile uint64_t *)a)[20 * PG / 8], t_pattern(20 * PG));
	CHECK_OK(vmo_unmap(obj, a, NPG * PG));
	vmo_object_unref(obj);
	CHECK_OK(vmo_engine_destroy(eng));

	/* an engine never started is destroyed cleanly */
	CHECK_OK(vmo_engine_create(&eo, &eng));
	CHECK_OK(vmo_engine_destroy(eng));
	gp_destroy(&g);
	printf("no workers, then start: ok\n");
}

int main(int argc, char **argv)
{
	alarm(50);
	setvbuf(stdout, NULL, _IONBF, 0);
	return t_main(argc, argv,
		      T_CASES({ "inhibit", test_inhibit }, { "counts", test_counts }, { "no-workers", test_no_workers }));
}
