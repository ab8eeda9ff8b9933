/* SPDX-License-Identifier: MIT */
/* test_shutdown: vmo_object_shutdown() with faults in flight.  A slow pager
 * (each read sleeps 200 ms) serves threads that fault; another thread shuts
 * the object down: shutdown waits for the callbacks in flight and returns;
 * afterwards faults on absent pages give SIGBUS (never a hang: alarm()
 * guards every wait), the pager is never called again, pages in memory stay
 * readable; unmap/unref/destroy afterwards are clean, and release is called
 * exactly once, after the last reference. */
#include "helper.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096u
#define NPG 64
#define NTH 4
#define PER 8 /* pages each thread touches */

static volatile uint64_t *at(void *base, uint64_t pg, unsigned word)
{
	return (volatile uint64_t *)base + pg * (PG / 8) + word;
}

/* ---- a slow pager ----------------------------------------------------------- */

struct spager {
	_Atomic unsigned delay_us;
	_Atomic int inflight, started, finished;
	_Atomic int released;
};

static int sp_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct spager *s = ctx;
	(void)flags;
	atomic_fetch_add(&s->started, 1);
	atomic_fetch_add(&s->inflight, 1);
	unsigned d = atomic_load(&s->delay_us);
	if (d)
		usleep(d);
	uint64_t *w = buf;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = t_pattern(off + i * 8);
	atomic_fetch_sub(&s->inflight, 1);
	atomic_fetch_add(&s->finished, 1);
	return 0;
}

static void sp_release(void *ctx)
{
	struct spager *s = ctx;
	/* the last reference is gone: no callback may be running */
	CHECK_EQ(atomic_load(&s->inflight), 0);
	atomic_fetch_add(&s->released, 1);
}

static const struct vmo_pager_ops sp_ops = { .read = sp_read, .release = sp_release };

struct targ {
	void *view;
	int id;
	int res[PER]; /* 0: data right, else the signal */
};

static void *fault_thread(void *arg)
{
	struct targ *t = arg;
	for (int i = 0; i < PER; i++) {
		uint64_t pg = 8 + (uint64_t)t->id * PER + (uint64_t)i, v = 0;
		int sig = t_probe_read(at(t->view, pg, 3), &v, NULL);
		if (sig == 0)
			CHECK_EQ(v, t_pattern(pg * PG + 24)); /* never zeros or garbage */
		else
			CHECK_EQ(sig, SIGBUS);
		t->res[i] = sig;
	}
	return NULL;
}

static void test_inflight(struct vmo_engine *eng)
{
	static struct spager sp;
	struct vmo_object_opts oo = { .flags = VMO_OBJ_NO_READAHEAD, .size = NPG * PG };
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, &sp_ops, &sp, &oo, &obj));
	void *a = NULL;
	CHECK_OK(vmo_map(obj, 0, NPG * PG, VMO_PROT_READ | VMO_PROT_WRITE, &a));
	/* pages 0..3 in memory before the shutdown; page 2 written */
	for (uint64_t pg = 0; pg < 4; pg++)
		CHECK_EQ(*at(a, pg, 1), t_pattern(pg * PG + 8));
	*at(a, 2, 0) = 0xabcdef;

	atomic_store(&sp.delay_us, 200000);
	pthread_t th[NTH];
	struct targ ta[NTH];
	for (int i = 0; i < NTH; i++) {
		ta[i] = (struct targ){ .view = a, .id = i };
		CHECK_OK(pthread_create(&th[i], NULL, fault_thread, &ta[i]));
	}
	/* wait until a read is in flight, then shut down from this thread */
	uint64_t t0 = t_now_ns();
	while (atomic_load(&sp.inflight) == 0) {
		CHECK(t_now_ns() - t0 < 10ull * 1000000000);
		usleep(1000);
	}
	int inflight_at_call = atomic_load(&sp.inflight);
	uint64_t t1 = t_now_ns();
	CHECK_OK(vmo_object_shutdown(obj));
	uint64_t waited_ms = (t_now_ns() - t1) / 1000000;
	/* every callback that had started has finished */
	int started = atomic_load(&sp.started);
	CHECK_EQ(atomic_load(&sp.inflight), 0);
	CHECK_EQ(atomic_load(&sp.finished), started);
	printf("shutdown with %d read(s) in flight waited %llu ms; %d reads started\n", inflight_at_call,
	       (unsigned long long)waited_ms, started);
	CHECK(waited_ms >= 20); /* it did wait for the 200 ms read */

	for (int i = 0; i < NTH; i++)
		CHECK_OK(pthread_join(th[i], NULL));
	int ok = 0, bus = 0;
	for (int i = 0; i < NTH; i++)
		for (int j = 0; j < PER; j++)
			if (ta[i].res[j])
				bus++;
			else
				ok++;
	printf("after shutdown: %d touches served, %d SIGBUS\n", ok, bus);
	CHECK(bus > 0);
	CHECK(ok <= started);
	/* the pager is never called again */
	CHECK_EQ(atomic_load(&sp.started), started);

	/* absent pages: SIGBUS in this thread too, at once */
	uint64_t v = 0;
	t1 = t_now_ns();
	struct t_sig info;
	CHECK_EQ(t_probe_read(at(a, 50, 0), &v, &info), SIGBUS);
	CHECK((uintptr_t)info.addr >= (uintptr_t)at(a, 50, 0) && (uintptr_t)info.addr < (uintptr_t)at(a, 51, 0));
	CHECK_EQ(t_probe_read(at(a, 50, 0), &v, NULL), SIGBUS);
	CHECK_EQ(t_probe_read(at(a, NPG - 1, 511), &v, NULL), SIGBUS);
	CHECK((t_now_ns() - t1) / 1000000 < 1000);
	CHECK_EQ(atomic_load(&sp.started), started);
	/* pages in memory: still readable, with the data written */
	for (uint64_t pg = 0; pg < 4; pg++) {
		CHECK_EQ(t_probe_read(at(a, pg, 1), &v, NULL), 0);
		CHECK_EQ(v, t_pattern(pg * PG + 8));
	}
	CHECK_EQ(*at(a, 2, 0), 0xabcdef);
	/* the pages the threads got are readable too */
	for (int i = 0; i < NTH; i++)
		for (int j = 0; j < PER; j++)
			if (ta[i].res[j] == 0) {
				uint64_t pg = 8 + (uint64_t)i * PER + (uint64_t)j;
				CHECK_EQ(t_probe_read(at(a, pg, 3), &v, NULL), 0);
				CHECK_EQ(v, t_pattern(pg * PG + 24));
			}

	/* idempotent; no new mappings */
	CHECK_OK(vmo_object_shutdown(obj));
	void *b = NULL;
	CHECK_EQ(vmo_map(obj, 0, PG, VMO_PROT_READ, &b), -VMO_ESHUTDOWN);
	CHECK(b == NULL);
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(obj, &st));
	CHECK_EQ(st.mappings, 1);

	/* release exactly once, after the last reference */
	vmo_object_ref(obj);
	CHECK_OK(vmo_unmap(obj, a, NPG * PG));
	CHECK_EQ(sp.released, 0);
	CHECK_EQ(vmo_engine_destroy(eng), -EBUSY); /* the object is still alive */
	vmo_object_unref(obj);
	CHECK_EQ(sp.released, 0);
	vmo_object_unref(obj);
	CHECK_EQ(sp.released, 1);
}

/* Faults parked behind a fill in flight (the waiter path) when the object is
 * shut down are released: the filler's thread gets its data, the waiters
 * meet the shut-down object and do not hang. */
struct wargs {
	void *view;
	uint64_t pg;
	int sig;
	uint64_t v;
};

static void *touch_thread(void *arg)
{
	struct wargs *w = arg;
	w->sig = t_probe_read(at(w->view, w->pg, 4), &w->v, NULL);
	return NULL;
}

static void test_waiters(struct vmo_engine *eng)
{
	static struct spager sp;
	struct vmo_object_opts oo = { .flags = VMO_OBJ_NO_READAHEAD, .size = NPG * PG };
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, &sp_ops, &sp, &oo, &obj));
	void *a = NULL, *b = NULL;
	CHECK_OK(vmo_map(obj, 0, NPG * PG, VMO_PROT_READ, &a));
	CHECK_OK(vmo_map(obj, 0, NPG * PG, VMO_PROT_READ, &b));
	atomic_store(&sp.delay_us, 300000);
	struct wargs w[3] = { { a, 9, 0, 0 }, { b, 9, 0, 0 }, { a, 9, 0, 0 } };
	pthread_t th[3];
	CHECK_OK(pthread_create(&th[0], NULL, touch_thread, &w[0]));
	while (atomic_load(&sp.inflight) == 0)
		usleep(1000);
	CHECK_OK(pthread_create(&th[1], NULL, touch_thread, &w[1]));
	CHECK_OK(pthread_create(&th[2], NULL, touch_thread, &w[2]));
	usleep(50000); /* let them park */
	CHECK_OK(vmo_object_shutdown(obj));
	for (int i = 0; i < 3; i++)
		CHECK_OK(pthread_join(th[i], NULL));
	CHECK_EQ(sp.started, 1);
	for (int i = 0; i < 3; i++) {
		printf("waiter %d: sig %d value %#llx\n", i, w[i].sig, (unsigned long long)w[i].v);
		if (w[i].sig == 0)
			CHECK_EQ(w[i].v, t_pattern(9 * PG + 32));
		else
			CHECK_EQ(w[i].sig, SIGBUS);
	}
	CHECK_OK(vmo_unmap(obj, a, NPG * PG));
	CHECK_OK(vmo_unmap(obj, b, NPG * PG));
	vmo_object_unref(obj);
	CHECK_EQ(sp.released, 1);
}

/* "Pages in memory stay readable until unmapped": a page that is in memory
 * (read through view a) but was never touched through view b, which existed
 * before the shutdown, is in memory and must read its data through b. */
static void test_resident_other_view(struct vmo_engine *eng)
{
	static struct spager sp;
	struct vmo_object_opts oo = { .flags = VMO_OBJ_NO_READAHEAD, .size = NPG * PG };
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, &sp_ops, &sp, &oo, &obj));
	void *a = NULL, *b = NULL;
	CHECK_OK(vmo_map(obj, 0, NPG * PG, VMO_PROT_READ, &a));
	CHECK_OK(vmo_map(obj, 0, NPG * PG, VMO_PROT_READ, &b));
	CHECK_EQ(*at(a, 5, 0), t_pattern(5 * PG));
	/* the worker counts the page just after the copy woke this thread */
	struct vmo_stats st;
	uint64_t t0 = t_now_ns();
	do {
		CHECK_OK(vmo_object_stats(obj, &st));
	} while (st.resident != PG && t_now_ns() - t0 < 2000000000ull);
	CHECK_EQ(st.resident, PG);
	CHECK_OK(vmo_object_shutdown(obj));
	uint64_t v = 0;
	int sig = t_probe_read(at(b, 5, 0), &v, NULL);
	if (sig) {
		fprintf(stderr, "LIBRARY BUG: a page in memory, touched for the first time through "
				"another view after shutdown, gives signal %d (vmo.h: pages in memory "
				"stay readable until unmapped)\n", sig);
	}
	CHECK_EQ(sig, 0);
	CHECK_EQ(v, t_pattern(5 * PG));
	CHECK_OK(vmo_unmap(obj, a, NPG * PG));
	CHECK_OK(vmo_unmap(obj, b, NPG * PG));
	vmo_object_unref(obj);
	CHECK_EQ(sp.released, 1);
}

/* ---- vmo_object_unref_wait -------------------------------------------------
 * It returns once release has returned, whichever thread dropped the last
 * reference: here a view the program unmaps itself (munmap), whose reference
 * vmo's worker drops. */
struct unmapper {
	void *view;
	unsigned delay_us;
};

static void *unmap_later(void *arg)
{
	struct unmapper *u = arg;
	usleep(u->delay_us);
	CHECK_OK(munmap(u->view, NPG * PG));
	return NULL;
}

static void case_unref_wait(void)
{
	struct vmo_engine *eng = t_shared_engine(2);
	static struct spager sp;
	struct vmo_object_opts oo = { .size = NPG * PG };
	struct vmo_object *obj;

	/* no view left: released on this thread, as vmo_object_unref */
	CHECK_OK(vmo_object_create(eng, &sp_ops, &sp, &oo, &obj));
	void *a = NULL;
	CHECK_OK(vmo_map(obj, 0, NPG * PG, VMO_PROT_READ, &a));
	CHECK_EQ(*at(a, 3, 1), t_pattern(3 * PG + 8));
	CHECK_OK(vmo_unmap(obj, a, NPG * PG));
	CHECK_OK(vmo_object_unref_wait(obj, -1));
	CHECK_EQ(atomic_load(&sp.released), 1);

	/* a view left, unmapped by the program with munmap 200 ms later: the
	 * worker that reads the event releases it; the wait ends after that */
	atomic_store(&sp.released, 0);
	CHECK_OK(vmo_object_create(eng, &sp_ops, &sp, &oo, &obj));
	CHECK_OK(vmo_map(obj, 0, NPG * PG, VMO_PROT_READ, &a));
	CHECK_EQ(*at(a, 7, 0), t_pattern(7 * PG));
	struct unmapper u = { a, 200000 };
	pthread_t th;
	CHECK_OK(pthread_create(&th, NULL, unmap_later, &u));
	uint64_t t0 = t_now_ns();
	CHECK_OK(vmo_object_unref_wait(obj, 10000));
	CHECK(t_now_ns() - t0 >= 150000000ull); /* it waited for the munmap */
	CHECK_EQ(atomic_load(&sp.released), 1);
	CHECK_OK(pthread_join(th, NULL));

	/* a view left and a timeout: -ETIMEDOUT, not released; the reference is
	 * dropped all the same, and the object goes with its view */
	atomic_store(&sp.released, 0);
	CHECK_OK(vmo_object_create(eng, &sp_ops, &sp, &oo, &obj));
	CHECK_OK(vmo_map(obj, 0, NPG * PG, VMO_PROT_READ, &a));
	CHECK_EQ(vmo_object_unref_wait(obj, 100), -ETIMEDOUT);
	CHECK_EQ(vmo_object_unref_wait(NULL, 0), -EINVAL);
	CHECK_EQ(atomic_load(&sp.released), 0);
	CHECK_EQ(*at(a, 9, 0), t_pattern(9 * PG)); /* still paged */
	CHECK_OK(munmap(a, NPG * PG));
	t0 = t_now_ns();
	while (atomic_load(&sp.released) == 0 && t_now_ns() - t0 < 5000000000ull)
		usleep(1000);
	CHECK_EQ(atomic_load(&sp.released), 1);

	/* VMO_OBJ_MAY_CACHE: kept by the engine, not released: 1 */
	atomic_store(&sp.released, 0);
	struct vmo_object_opts co = { .size = NPG * PG, .flags = VMO_OBJ_MAY_CACHE, .name = "unref-wait" };
	CHECK_OK(vmo_object_create(eng, &sp_ops, &sp, &co, &obj));
	CHECK_EQ(vmo_object_unref_wait(obj, -1), 1);
	CHECK_EQ(atomic_load(&sp.released), 0);
	struct vmo_object *again;
	CHECK_OK(vmo_object_create(eng, &sp_ops, &sp, &co, &again));
	CHECK(again == obj);
	CHECK_OK(vmo_object_change_attributes(again, 0, 0));
	CHECK_OK(vmo_object_unref_wait(again, -1));
	CHECK_EQ(atomic_load(&sp.released), 1);
}

/* On one of vmo's threads (inside a pager callback) it refuses, dropping
 * nothing: the object could go only after the callback returns. */
static struct vmo_object *victim;
static _Atomic int victim_rc = 1;

static int cb_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	(void)ctx, (void)flags;
	atomic_store(&victim_rc, vmo_object_unref_wait(victim, -1));
	uint64_t *w = buf;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = t_pattern(off + i * 8);
	return 0;
}

static const struct vmo_pager_ops cb_ops = { .read = cb_read };

static void case_unref_wait_callback(void)
{
	struct vmo_engine *eng = t_shared_engine(2);
	static struct spager sp;
	struct vmo_object_opts oo = { .size = NPG * PG };
	CHECK_OK(vmo_object_create(eng, &sp_ops, &sp, &oo, &victim));
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, &cb_ops, NULL, &oo, &obj));
	void *a = NULL;
	CHECK_OK(vmo_map(obj, 0, NPG * PG, VMO_PROT_READ, &a));
	CHECK_EQ(*at(a, 1, 0), t_pattern(PG));
	CHECK_EQ(atomic_load(&victim_rc), -EDEADLK);
	CHECK_EQ(atomic_load(&sp.released), 0);
	CHECK_EQ(vmo_object_size(victim), NPG * PG); /* still ours */
	CHECK_OK(vmo_unmap(obj, a, NPG * PG));
	CHECK_OK(vmo_object_unref_wait(obj, -1));
	CHECK_OK(vmo_object_unref_wait(victim, -1));
	CHECK_EQ(atomic_load(&sp.released), 1);
}

static void case_inflight(void) { test_inflight(t_shared_engine(2)); }
static void case_waiters(void) { test_waiters(t_shared_engine(2)); }
static void case_resident_other_view(void) { test_resident_other_view(t_shared_engine(2)); }

int main(int argc, char **argv)
{
	alarm(45); /* a hang fails the test instead of blocking ctest */
	setvbuf(stdout, NULL, _IONBF, 0);
	t_sig_install();
	return t_main(argc, argv,
		      T_CASES({ "inflight", case_inflight }, { "waiters", case_waiters },
			      { "resident-other-view", case_resident_other_view },
			      { "unref-wait", case_unref_wait }, { "unref-wait-callback", case_unref_wait_callback }));
}
