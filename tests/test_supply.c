/* SPDX-License-Identifier: MIT */
/* test_supply: asynchronous supply.  A pager whose read answers
 * -EINPROGRESS and supplies the range later from threads of its own
 * (vmo_object_supply), or fails it (vmo_object_supply_error):
 *  - one worker keeps many slow reads in flight, and every thread gets its
 *    data;
 *  - faults on a page being read wait for the supply (one read for all);
 *  - a supply of pages already in memory is ignored, and racing with
 *    discard loses nothing;
 *  - a supply from inside read itself;
 *  - writes to supplied pages are tracked and written back;
 *  - shutdown with reads outstanding: the waiting threads get SIGBUS, a
 *    late supply -VMO_ESHUTDOWN;
 *  - a failed supply: SIGBUS to the toucher, the errno from vmo_get_error,
 *    and after vmo_clear_error the page is read again;
 *  - bad arguments: -EINVAL. */
#include "helper.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#define PG 4096u
#define NPG 512

enum mode { SUPPLY, FAIL, HOLD, INLINE };

struct req {
	uint64_t off;
	size_t len;
	uint64_t due;
};

struct apager {
	struct vmo_object *o;
	uint64_t *data;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct req q[4096];
	size_t nq;
	enum mode mode;
	uint64_t delay_ns;
	int stop;
	int inflight, max_inflight;
	long reads, writes;
	int supply_rc; /* the last supply's return */
	pthread_t th[2];
	int nth;
};

static int ap_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct apager *a = ctx;
	(void)buf, (void)flags;
	pthread_mutex_lock(&a->mu);
	a->reads++;
	if (a->mode == INLINE) {
		pthread_mutex_unlock(&a->mu);
		/* supplied before read even returns */
		CHECK_OK(vmo_object_supply(a->o, off, len, (char *)a->data + off, 0));
		return -EINPROGRESS;
	}
	CHECK(a->nq < sizeof a->q / sizeof a->q[0]);
	a->q[a->nq++] = (struct req){ off, len, t_now_ns() + a->delay_ns };
	if (++a->inflight > a->max_inflight)
		a->max_inflight = a->inflight;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	return -EINPROGRESS;
}

static int ap_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct apager *a = ctx;
	pthread_mutex_lock(&a->mu);
	memcpy((char *)a->data + off, buf, len);
	a->writes++;
	pthread_mutex_unlock(&a->mu);
	return 0;
}

static const struct vmo_pager_ops aops = { .read = ap_read, .write = ap_write };

/* The pager's completion threads: answer each request once it is due. */
static void *completer(void *arg)
{
	struct apager *a = arg;
	pthread_mutex_lock(&a->mu);
	for (;;) {
		while (!a->stop && (a->nq == 0 || a->mode == HOLD))
			pthread_cond_wait(&a->cv, &a->mu);
		if (a->stop)
			break;
		struct req r = a->q[0];
		memmove(a->q, a->q + 1, --a->nq * sizeof *a->q);
		pthread_mutex_unlock(&a->mu);
		uint64_t now = t_now_ns();
		if (r.due > now)
			usleep((useconds_t)((r.due - now) / 1000));
		int rc = a->mode == FAIL ? vmo_object_supply_error(a->o, r.off, r.len, -EIO)
					 : vmo_object_supply(a->o, r.off, r.len, (char *)a->data + r.off, 0);
		pthread_mutex_lock(&a->mu);
		a->supply_rc = rc;
		a->inflight--;
		pthread_cond_broadcast(&a->cv);
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

static struct apager *ap_new(struct vmo_engine *eng, enum mode mode, uint64_t delay_ns, unsigned flags)
{
	struct apager *a = calloc(1, sizeof *a);
	CHECK(a);
	a->data = malloc((size_t)NPG * PG);
	CHECK(a->data);
	for (size_t i = 0; i < (size_t)NPG * PG / 8; i++)
		a->data[i] = t_pattern(i * 8);
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	a->mode = mode;
	a->delay_ns = delay_ns;
	struct vmo_object_opts oo = { .size = (uint64_t)NPG * PG, .flags = flags };
	CHECK_OK(vmo_object_create(eng, &aops, a, &oo, &a->o));
	a->nth = 2;
	for (int i = 0; i < a->nth; i++)
		CHECK_OK(pthread_create(&a->th[i], NULL, completer, a));
	return a;
}

static void ap_stop(struct apager *a)
{
	pthread_mutex_lock(&a->mu);
	a->stop = 1;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	for (int i = 0; i < a->nth; i++)
		pthread_join(a->th[i], NULL);
}

static void ap_free(struct apager *a)
{
	ap_stop(a);
	vmo_object_unref(a->o);
	free(a->data);
	free(a);
}

static struct vmo_engine *engine_minor(unsigned workers)
{
	struct vmo_engine *eng = t_engine(workers);
	if (!(vmo_engine_features(eng) & VMO_FEAT_MINOR)) {
		CHECK_OK(vmo_engine_destroy(eng));
		t_skip_case("asynchronous supply needs MINOR faults (VMO_FEAT_MINOR)");
	}
	return eng;
}

/* ---- many reads in flight with one worker ------------------------------------- */

struct toucher {
	uint64_t *v;
	int id, nthreads;
	long bad;
};

static void *touch_pages(void *arg)
{
	struct toucher *t = arg;
	for (uint64_t pg = (uint64_t)t->id; pg < NPG; pg += (uint64_t)t->nthreads) {
		uint64_t x = 0;
		int sig = t_probe_read(&t->v[pg * PG / 8 + 3], &x, NULL);
		if (sig || x != t_pattern(pg * PG + 24))
			t->bad++;
	}
	return NULL;
}

static void case_in_flight(void)
{
	struct vmo_engine *eng = engine_minor(1);
	struct apager *a = ap_new(eng, SUPPLY, 5000000ull /* 5 ms */, VMO_OBJ_NO_READAHEAD);
	uint64_t *v;
	CHECK_OK(vmo_map(a->o, 0, (size_t)NPG * PG, VMO_PROT_READ, (void **)&v));
	enum { T = 16 };
	pthread_t th[T];
	struct toucher tt[T];
	uint64_t t0 = t_now_ns();
	for (int i = 0; i < T; i++) {
		tt[i] = (struct toucher){ .v = v, .id = i, .nthreads = T };
		CHECK_OK(pthread_create(&th[i], NULL, touch_pages, &tt[i]));
	}
	for (int i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ(tt[i].bad, 0);
	}
	uint64_t ms = (t_now_ns() - t0) / 1000000;
	/* One worker, and yet the 16 threads' reads were outstanding together. */
	CHECK(a->max_inflight >= 8);
	CHECK_EQ(a->reads, NPG);
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(a->o, &st));
	CHECK_EQ(st.resident, (uint64_t)NPG * PG);
	CHECK_EQ(st.errors, 0);
	printf("%d pages by %d threads, 1 worker, 5 ms per read: %llu ms, up to %d reads in flight\n", NPG, T,
	       (unsigned long long)ms, a->max_inflight);
	CHECK_OK(vmo_unmap(a->o, v, (size_t)NPG * PG));
	ap_free(a);
	CHECK_OK(vmo_engine_destroy(eng));
}

/* ---- faults waiting on one read; a supply of present pages ignored -------------- */

static void *touch_one(void *arg)
{
	struct toucher *t = arg;
	uint64_t x = 0;
	if (t_probe_read(&t->v[7], &x, NULL) || x != t_pattern(56))
		t->bad++;
	return NULL;
}

static void case_waiters(void)
{
	struct vmo_engine *eng = engine_minor(2);
	struct apager *a = ap_new(eng, HOLD, 0, 0);
	uint64_t *v;
	CHECK_OK(vmo_map(a->o, 0, (size_t)NPG * PG, VMO_PROT_READ, (void **)&v));
	enum { T = 8 };
	pthread_t th[T];
	struct toucher tt[T];
	for (int i = 0; i < T; i++) {
		tt[i] = (struct toucher){ .v = v };
		CHECK_OK(pthread_create(&th[i], NULL, touch_one, &tt[i]));
	}
	usleep(50000); /* all of them wait on the one read */
	pthread_mutex_lock(&a->mu);
	CHECK_EQ(a->reads, 1);
	a->mode = SUPPLY;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	for (int i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ(tt[i].bad, 0);
	}
	CHECK_EQ(a->reads, 1);
	/* A supply of what is in memory already changes nothing. */
	uint64_t *junk = calloc(1, (size_t)NPG * PG);
	CHECK(junk);
	CHECK_OK(vmo_object_supply(a->o, 0, (size_t)NPG * PG, junk, 0));
	CHECK_EQ(v[7], t_pattern(56));
	/* ... nor does one of pages never asked for (they stay absent). */
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(a->o, &st));
	CHECK(st.resident < (uint64_t)NPG * PG);
	CHECK_EQ(v[100 * PG / 8], t_pattern(100 * PG));
	free(junk);
	CHECK_OK(vmo_unmap(a->o, v, (size_t)NPG * PG));
	ap_free(a);
	CHECK_OK(vmo_engine_destroy(eng));
}

/* ---- supply from inside read; writes tracked; racing with discard --------------- */

static void case_inline_and_writes(void)
{
	struct vmo_engine *eng = engine_minor(2);
	struct apager *a = ap_new(eng, INLINE, 0, 0);
	uint64_t *v;
	CHECK_OK(vmo_map(a->o, 0, (size_t)NPG * PG, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	for (uint64_t pg = 0; pg < NPG; pg++)
		CHECK_EQ(v[pg * PG / 8], t_pattern(pg * PG));
	for (uint64_t pg = 0; pg < NPG; pg += 2)
		v[pg * PG / 8 + 1] = 0xAB00 + pg;
	CHECK_OK(vmo_sync(a->o, VMO_WAIT));
	for (uint64_t pg = 0; pg < NPG; pg++)
		CHECK_EQ(a->data[pg * PG / 8 + 1], pg % 2 ? t_pattern(pg * PG + 8) : 0xAB00 + pg);
	/* discard, then everything comes back through later supplies */
	pthread_mutex_lock(&a->mu);
	a->mode = SUPPLY;
	a->delay_ns = 200000;
	pthread_mutex_unlock(&a->mu);
	for (int round = 0; round < 3; round++) {
		CHECK_OK(vmo_discard(a->o, VMO_WAIT));
		for (uint64_t pg = 0; pg < NPG; pg += 7)
			CHECK_EQ(v[pg * PG / 8 + 1], pg % 2 ? t_pattern(pg * PG + 8) : 0xAB00 + pg);
	}
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(a->o, &st));
	CHECK_EQ(st.errors, 0);
	CHECK_OK(vmo_unmap(a->o, v, (size_t)NPG * PG));
	ap_free(a);
	CHECK_OK(vmo_engine_destroy(eng));
}

/* ---- shutdown with reads outstanding ------------------------------------------- */

struct probe {
	uint64_t *p;
	int sig;
};

static void *probe_read(void *arg)
{
	struct probe *pr = arg;
	uint64_t x;
	pr->sig = t_probe_read(pr->p, &x, NULL);
	return NULL;
}

static void case_shutdown(void)
{
	t_sig_install();
	struct vmo_engine *eng = engine_minor(2);
	struct apager *a = ap_new(eng, HOLD, 0, 0);
	uint64_t *v;
	CHECK_OK(vmo_map(a->o, 0, (size_t)NPG * PG, VMO_PROT_READ, (void **)&v));
	struct probe pr = { .p = &v[11 * PG / 8] };
	pthread_t th;
	CHECK_OK(pthread_create(&th, NULL, probe_read, &pr));
	for (int i = 0; i < 2000; i++) {
		pthread_mutex_lock(&a->mu);
		long r = a->reads;
		pthread_mutex_unlock(&a->mu);
		if (r)
			break;
		usleep(1000);
	}
	CHECK_OK(vmo_object_shutdown(a->o));
	pthread_join(th, NULL);
	CHECK_EQ(pr.sig, SIGBUS); /* never a hang, never a zero page */
	/* the pager answers late: refused, nothing kept */
	pthread_mutex_lock(&a->mu);
	a->mode = SUPPLY;
	pthread_cond_broadcast(&a->cv);
	while (a->inflight)
		pthread_cond_wait(&a->cv, &a->mu);
	CHECK_EQ(a->supply_rc, -VMO_ESHUTDOWN);
	pthread_mutex_unlock(&a->mu);
	CHECK_OK(vmo_unmap(a->o, v, (size_t)NPG * PG));
	ap_free(a);
	CHECK_OK(vmo_engine_destroy(eng));
}

/* ---- a failed supply ------------------------------------------------------------ */

static void case_failed(void)
{
	t_sig_install();
	struct vmo_engine *eng = engine_minor(2);
	struct apager *a = ap_new(eng, FAIL, 1000000, VMO_OBJ_NO_READAHEAD);
	uint64_t *v;
	CHECK_OK(vmo_map(a->o, 0, (size_t)NPG * PG, VMO_PROT_READ, (void **)&v));
	uint64_t x = 0;
	struct t_sig si;
	CHECK_EQ(t_probe_read(&v[5 * PG / 8], &x, &si), SIGBUS);
	CHECK_EQ(vmo_get_error(a->o, 5 * PG), -EIO);
	/* sticky: touched again, SIGBUS again, no new read */
	long reads = a->reads;
	CHECK_EQ(t_probe_read(&v[5 * PG / 8], &x, NULL), SIGBUS);
	CHECK_EQ(a->reads, reads);
	/* cleared: asked again, and this time it comes */
	pthread_mutex_lock(&a->mu);
	a->mode = SUPPLY;
	pthread_mutex_unlock(&a->mu);
	CHECK_OK(vmo_clear_error(a->o, 5 * PG));
	CHECK_EQ(t_probe_read(&v[5 * PG / 8], &x, NULL), 0);
	CHECK_EQ(x, t_pattern(5 * PG));
	CHECK_EQ(vmo_get_error(a->o, 5 * PG), 0);
	CHECK_OK(vmo_unmap(a->o, v, (size_t)NPG * PG));
	ap_free(a);
	CHECK_OK(vmo_engine_destroy(eng));
}

/* ---- bad arguments ------------------------------------------------------------- */

static void case_badargs(void)
{
	struct vmo_engine *eng = t_engine(1);
	struct apager *a = ap_new(eng, SUPPLY, 0, 0);
	char buf[2 * PG];
	memset(buf, 0, sizeof buf);
	CHECK_EQ(vmo_object_supply(NULL, 0, PG, buf, 0), -EINVAL);
	CHECK_EQ(vmo_object_supply(a->o, 1, PG, buf, 0), -EINVAL);
	CHECK_EQ(vmo_object_supply(a->o, 0, PG + 1, buf, 0), -EINVAL);
	CHECK_EQ(vmo_object_supply(a->o, 0, 0, buf, 0), -EINVAL);
	CHECK_EQ(vmo_object_supply(a->o, (uint64_t)NPG * PG, PG, buf, 0), -EINVAL);
	CHECK_EQ(vmo_object_supply(a->o, UINT64_MAX - PG + 1, 2 * PG, buf, 0), -EINVAL);
	CHECK_EQ(vmo_object_supply(a->o, 0, PG, NULL, 0), -EINVAL);
	CHECK_EQ(vmo_object_supply(a->o, 0, PG, buf, 0x80), -EINVAL);
	CHECK_EQ(vmo_object_supply_error(a->o, 0, PG, 0), -EINVAL);
	CHECK_EQ(vmo_object_supply_error(a->o, 0, PG, EIO), -EINVAL);
	CHECK_EQ(vmo_object_supply_error(a->o, 3, PG, -EIO), -EINVAL);
	/* nothing pending: nothing happens */
	CHECK_OK(vmo_object_supply(a->o, 0, PG, buf, 0));
	CHECK_OK(vmo_object_supply_error(a->o, 0, PG, -EIO));
	CHECK_EQ(vmo_get_error(a->o, 0), 0);
	ap_free(a);
	CHECK_OK(vmo_engine_destroy(eng));
}

int main(int argc, char **argv)
{
	alarm(240); /* a hang is a failure */
	setvbuf(stdout, NULL, _IOLBF, 0);
	return t_main(argc, argv,
		      T_CASES({ "in-flight", case_in_flight }, { "waiters", case_waiters },
			      { "inline-and-writes", case_inline_and_writes }, { "shutdown", case_shutdown },
			      { "failed", case_failed }, { "badargs", case_badargs }));
}
