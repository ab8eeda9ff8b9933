/* SPDX-License-Identifier: MIT */
/* test_unmap_events: the program changes the address space under a view
 * itself, and vmo follows (UFFD_EVENT_UNMAP / UFFD_EVENT_REMAP):
 *  - a view munmap'ed by the program, its range reused for ordinary memory:
 *    vmo_clear_error and reclaim (second-chance unmaps, eviction) never
 *    touch that memory (before: vmo_clear_error zeroed a page of it and the
 *    evictor 512 pages, through MADV_DONTNEED on the stale view);
 *  - part of a view unmapped: the rest still pages, as separate views;
 *  - a view moved with mremap: it pages at its new address, and vmo_unmap
 *    takes the new range;
 *  - a view grown in place with mremap: the new part gives SIGBUS, no hang;
 *  - MADV_DONTNEED on a view: nothing lost, pages come back;
 *  - the program's last vmo_object_unref after it unmapped the views itself
 *    returns only after writeback and release, even while a fault on the
 *    unmapped view is still in the pager (before: release ran on vmo's
 *    thread after the unref returned, and the pager wrote to a store the
 *    program had freed).
 * Every case is bounded by alarm(): a hang is a failure. */
#include "helper.h"

#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096u
#define NPG 2048 /* 8 MiB: four 2 MiB reclaim chunks */

struct store {
	uint64_t *data;
	_Atomic int fail_pg; /* page whose read fails (-EIO), or -1 */
};

static int st_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct store *s = ctx;
	(void)flags;
	int f = s->fail_pg;
	if (f >= 0 && (uint64_t)f * PG >= off && (uint64_t)f * PG < off + len)
		return -EIO;
	memcpy(buf, (char *)s->data + off, len);
	return 0;
}

static int st_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct store *s = ctx;
	memcpy((char *)s->data + off, buf, len);
	return 0;
}

static const struct vmo_pager_ops ops = { .read = st_read, .write = st_write };

static struct store *store_new(void)
{
	struct store *s = calloc(1, sizeof *s);
	CHECK(s);
	s->data = malloc((size_t)NPG * PG);
	CHECK(s->data);
	for (size_t i = 0; i < (size_t)NPG * PG / 8; i++)
		s->data[i] = t_pattern(i * 8);
	s->fail_pg = -1;
	return s;
}

static uint64_t mappings(struct vmo_object *o)
{
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(o, &st));
	return st.mappings;
}

static void expect_page(const void *base, uint64_t view_off, uint64_t pg)
{
	uint64_t v = 0;
	CHECK_EQ(t_probe_read((const uint64_t *)base + (pg * PG - view_off) / 8 + 7, &v, NULL), 0);
	CHECK_EQ(v, t_pattern(pg * PG + 56));
}

/* Ordinary memory at exactly addr (the range a view had), filled with a
 * byte; or NULL if the kernel put it elsewhere (then the case proves
 * nothing and is skipped). */
static unsigned char *reuse(void *addr, size_t len, int byte)
{
	unsigned char *p = mmap(addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (p != addr) {
		munmap(p, len);
		return NULL;
	}
	memset(p, byte, len);
	return p;
}

static void expect_bytes(const unsigned char *p, size_t len, int byte, const char *what)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != byte) {
			fprintf(stderr, "%s: byte %zu of the reused range is %#x, expected %#x: vmo wrote to memory that is no longer its own\n",
				what, i, p[i], byte);
			abort();
		}
}

/* 1. munmap by the program, range reused, then vmo_clear_error. */
static void case_clear_error(struct vmo_engine *eng)
{
	struct store *s = store_new();
	struct vmo_object *o;
	struct vmo_object_opts oo = { .size = 64 * PG };
	CHECK_OK(vmo_object_create(eng, &ops, s, &oo, &o));
	void *v;
	CHECK_OK(vmo_map(o, 0, 64 * PG, VMO_PROT_READ | VMO_PROT_WRITE, &v));
	s->fail_pg = 3;
	uint64_t x;
	CHECK_EQ(t_probe_read((uint64_t *)v + 3 * PG / 8, &x, NULL), SIGBUS);
	CHECK_EQ(vmo_get_error(o, 3 * PG), -EIO);
	CHECK_EQ(mappings(o), 1);
	CHECK_OK(munmap(v, 64 * PG)); /* the program's own munmap: misuse, but it happens */
	CHECK_EQ(mappings(o), 0);   /* the event was applied before munmap returned */
	unsigned char *r = reuse(v, 64 * PG, 0xA5);
	if (!r) {
		printf("clear_error: the kernel did not give the range back; case skipped\n");
	} else {
		s->fail_pg = -1;
		CHECK_OK(vmo_clear_error(o, 3 * PG));
		expect_bytes(r, 64 * PG, 0xA5, "vmo_clear_error after munmap");
		munmap(r, 64 * PG);
	}
	vmo_object_unref(o);
	free(s->data);
	free(s);
	printf("clear_error after the program's munmap: ok\n");
}

/* 2. munmap by the program, range reused, then reclaim under a budget. */
static void case_reclaim(struct vmo_engine *eng)
{
	struct store *s = store_new();
	struct vmo_object *o;
	struct vmo_object_opts oo = { .size = (uint64_t)NPG * PG, .budget = (uint64_t)NPG * PG / 2 };
	CHECK_OK(vmo_object_create(eng, &ops, s, &oo, &o));
	void *v, *w;
	CHECK_OK(vmo_map(o, 0, (size_t)NPG * PG, VMO_PROT_READ | VMO_PROT_WRITE, &v));
	CHECK_OK(vmo_map(o, 0, (size_t)NPG * PG, VMO_PROT_READ, &w));
	for (uint64_t pg = 0; pg < NPG / 2; pg++)
		expect_page(v, 0, pg);
	CHECK_OK(munmap(v, (size_t)NPG * PG));
	CHECK_EQ(mappings(o), 1);
	unsigned char *r = reuse(v, (size_t)NPG * PG, 0x5A);
	/* Drive reclaim around the clock several times through the other view:
	 * second-chance unmaps and evictions of every chunk. */
	for (int round = 0; round < 4; round++)
		for (uint64_t pg = 0; pg < NPG; pg += 3)
			expect_page(w, 0, pg);
	CHECK_OK(vmo_return(o, VMO_WAIT));
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK(st.evictions > 0);
	if (r) {
		expect_bytes(r, (size_t)NPG * PG, 0x5A, "reclaim after munmap");
		munmap(r, (size_t)NPG * PG);
	} else {
		printf("reclaim: the kernel did not give the range back; reuse not checked\n");
	}
	CHECK_OK(vmo_unmap(o, w, (size_t)NPG * PG));
	vmo_object_unref(o);
	free(s->data);
	free(s);
	printf("reclaim after the program's munmap: ok (%llu pages evicted)\n", (unsigned long long)st.evictions);
}

/* 3. part of a view unmapped: the pieces page on; they are views of their own. */
static void case_partial(struct vmo_engine *eng)
{
	struct store *s = store_new();
	struct vmo_object *o;
	struct vmo_object_opts oo = { .size = 64 * PG };
	CHECK_OK(vmo_object_create(eng, &ops, s, &oo, &o));
	char *v;
	CHECK_OK(vmo_map(o, 0, 64 * PG, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	expect_page(v, 0, 0);
	CHECK_OK(munmap(v + 16 * PG, 16 * PG));
	CHECK_EQ(mappings(o), 2);
	CHECK_EQ(vmo_unmap(o, v, 64 * PG), -EINVAL); /* the whole is gone */
	for (uint64_t pg = 0; pg < 64; pg++)
		if (pg < 16 || pg >= 32)
			expect_page(v, 0, pg);
	uint64_t x;
	CHECK_EQ(t_probe_read((uint64_t *)(v + 20 * PG), &x, NULL), SIGSEGV);
	((uint64_t *)v)[40 * PG / 8] = 42;
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	CHECK_EQ(s->data[40 * PG / 8], 42);
	CHECK_OK(vmo_unmap(o, v, 16 * PG));
	CHECK_OK(vmo_unmap(o, v + 32 * PG, 32 * PG));
	CHECK_EQ(mappings(o), 0);
	vmo_object_unref(o);
	free(s->data);
	free(s);
	printf("partial munmap: ok\n");
}

/* 4. mremap: moved whole, and grown in place. */
static void case_mremap(struct vmo_engine *eng)
{
	struct store *s = store_new();
	struct vmo_object *o;
	struct vmo_object_opts oo = { .size = 128 * PG };
	CHECK_OK(vmo_object_create(eng, &ops, s, &oo, &o));
	char *v;
	CHECK_OK(vmo_map(o, 0, 32 * PG, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	expect_page(v, 0, 1);
	/* somewhere free to move to */
	char *dst = mmap(NULL, 32 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(dst != MAP_FAILED);
	char *n = mremap(v, 32 * PG, 32 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	CHECK(n == dst);
	CHECK_EQ(mappings(o), 1);
	for (uint64_t pg = 0; pg < 32; pg++)
		expect_page(n, 0, pg); /* page 1 was there already; the rest are faults at the new place */
	n[5 * PG] = 7;
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	CHECK_EQ(((unsigned char *)s->data)[5 * PG], 7);
	CHECK_EQ(vmo_unmap(o, v, 32 * PG), -EINVAL);
	CHECK_OK(vmo_unmap(o, n, 32 * PG));

	/* grown in place: the new part belongs to no view */
	/* a 32-page hole, the view in its first half */
	char *g = mmap(NULL, 32 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(g != MAP_FAILED);
	CHECK_OK(munmap(g, 32 * PG));
	CHECK_OK(vmo_map(o, 0, 16 * PG, VMO_PROT_READ | VMO_PROT_WRITE | VMO_MAP_FIXED, (void **)&g));
	char *gg = mremap(g, 16 * PG, 32 * PG, 0);
	if (gg == g) {
		uint64_t x;
		CHECK_EQ(t_probe_read((uint64_t *)(g + 20 * PG), &x, NULL), SIGBUS);
		expect_page(g, 0, 3);
		CHECK_OK(munmap(g, 32 * PG)); /* the program unmaps what it grew */
		CHECK_EQ(mappings(o), 0);
		printf("mremap grown in place: the new part gives SIGBUS\n");
	} else {
		printf("mremap could not grow in place here; that part skipped\n");
		if (gg != MAP_FAILED)
			munmap(gg, 32 * PG);
		else
			CHECK_OK(vmo_unmap(o, g, 16 * PG));
	}
	vmo_object_unref(o);
	free(s->data);
	free(s);
	printf("mremap: ok\n");
}

/* 5. MADV_DONTNEED by the program on a view: pages stay in the object. */
static void case_dontneed(struct vmo_engine *eng)
{
	struct store *s = store_new();
	struct vmo_object *o;
	struct vmo_object_opts oo = { .size = 64 * PG };
	CHECK_OK(vmo_object_create(eng, &ops, s, &oo, &o));
	uint64_t *v;
	CHECK_OK(vmo_map(o, 0, 64 * PG, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	for (uint64_t pg = 0; pg < 64; pg++)
		v[pg * PG / 8 + 1] = 1000 + pg;
	CHECK_OK(madvise(v, 64 * PG, MADV_DONTNEED));
	for (uint64_t pg = 0; pg < 64; pg++)
		CHECK_EQ(v[pg * PG / 8 + 1], 1000 + pg);
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	for (uint64_t pg = 0; pg < 64; pg++)
		CHECK_EQ(s->data[pg * PG / 8 + 1], 1000 + pg);
	CHECK_OK(vmo_unmap(o, v, 64 * PG));
	vmo_object_unref(o);
	free(s->data);
	free(s);
	printf("MADV_DONTNEED on a view: ok\n");
}

/* 6. the last unref waits for vmo's own references. */
struct slow {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int in_read, go, released, writes;
	uint64_t *v;
	_Atomic int unref_done;
	struct vmo_object *o;
};

static int slow_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct slow *s = ctx;
	(void)flags;
	pthread_mutex_lock(&s->mu);
	s->in_read = 1;
	pthread_cond_broadcast(&s->cv);
	while (!s->go)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	for (size_t i = 0; i < len / 8; i++)
		((uint64_t *)buf)[i] = t_pattern(off + i * 8);
	return 0;
}

static int slow_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct slow *s = ctx;
	(void)off, (void)buf, (void)len;
	pthread_mutex_lock(&s->mu);
	s->writes++;
	pthread_mutex_unlock(&s->mu);
	return 0;
}

static void slow_release(void *ctx)
{
	struct slow *s = ctx;
	pthread_mutex_lock(&s->mu);
	s->released++;
	pthread_mutex_unlock(&s->mu);
}

static const struct vmo_pager_ops slow_ops = { .read = slow_read, .write = slow_write, .release = slow_release };

static void *slow_toucher(void *arg)
{
	struct slow *s = arg;
	uint64_t x;
	/* the view goes away under the fault: SIGSEGV when it is retried */
	int sig = t_probe_read(&s->v[3 * PG / 8], &x, NULL);
	CHECK(sig == SIGSEGV || sig == 0);
	return NULL;
}

static void *slow_unref(void *arg)
{
	struct slow *s = arg;
	vmo_object_unref(s->o);
	s->unref_done = 1;
	return NULL;
}

static void case_unref_waits(struct vmo_engine *eng)
{
	struct slow s = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
	struct vmo_object_opts oo = { .size = 16 * PG, .flags = VMO_OBJ_NO_READAHEAD };
	CHECK_OK(vmo_object_create(eng, &slow_ops, &s, &oo, &s.o));
	CHECK_OK(vmo_map(s.o, 0, 16 * PG, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&s.v));
	pthread_mutex_lock(&s.mu);
	s.go = 1; /* page 0 read at once, then written: a dirty page to write back */
	pthread_mutex_unlock(&s.mu);
	s.v[1] = 42;
	pthread_mutex_lock(&s.mu);
	s.go = 0;
	s.in_read = 0;
	pthread_mutex_unlock(&s.mu);
	pthread_t toucher, unref;
	CHECK_OK(pthread_create(&toucher, NULL, slow_toucher, &s));
	pthread_mutex_lock(&s.mu);
	while (!s.in_read)
		pthread_cond_wait(&s.cv, &s.mu);
	pthread_mutex_unlock(&s.mu);
	/* A fault is in the pager; the program unmaps the view itself. */
	CHECK_OK(munmap(s.v, 16 * PG));
	CHECK_EQ(mappings(s.o), 0);
	CHECK_OK(pthread_create(&unref, NULL, slow_unref, &s));
	usleep(100 * 1000);
	CHECK_EQ(s.unref_done, 0); /* the fault in flight holds the view: unref waits */
	pthread_mutex_lock(&s.mu);
	CHECK_EQ(s.released, 0);
	s.go = 1;
	pthread_cond_broadcast(&s.cv);
	pthread_mutex_unlock(&s.mu);
	pthread_join(unref, NULL);
	/* returned: written back and released, on the unref's thread */
	pthread_mutex_lock(&s.mu);
	CHECK_EQ(s.released, 1);
	CHECK(s.writes >= 1);
	pthread_mutex_unlock(&s.mu);
	pthread_join(toucher, NULL);
	printf("last unref with a fault in flight on a view the program unmapped: waits, then releases: ok\n");
}

/* 7. one worker, faults in flight while the program unmaps other views:
 * supplies meet pending events (EAGAIN) and the worker must apply them
 * itself (no other reader), never fail a page or hang. */
struct churn {
	struct vmo_object *o;
	uint64_t *v;
	_Atomic int stop;
	long reads, bad;
};

static void *churn_reader(void *arg)
{
	struct churn *c = arg;
	while (!c->stop) {
		CHECK_OK(vmo_discard(c->o, VMO_WAIT));
		for (uint64_t pg = 0; pg < 64; pg++) {
			uint64_t x = 0;
			struct t_sig si;
			int sig = t_probe_read(&c->v[pg * PG / 8 + 2], &x, &si);
			if (sig || x != t_pattern(pg * PG + 16)) {
				if (!c->bad++)
					fprintf(stderr, "churn: page %llu: signal %d (code %d, addr %p), value %#llx\n",
						(unsigned long long)pg, sig, si.code, si.addr, (unsigned long long)x);
			}
			c->reads++;
		}
	}
	return NULL;
}

static void case_churn(void)
{
	struct vmo_engine *eng = t_engine(1);
	struct store *s = store_new();
	struct vmo_object *o;
	struct vmo_object_opts oo = { .size = 64 * PG, .flags = VMO_OBJ_NO_READAHEAD };
	CHECK_OK(vmo_object_create(eng, &ops, s, &oo, &o));
	struct churn c = { .o = o };
	CHECK_OK(vmo_map(o, 0, 64 * PG, VMO_PROT_READ, (void **)&c.v));
	pthread_t th;
	CHECK_OK(pthread_create(&th, NULL, churn_reader, &c));
	uint64_t t0 = t_now_ns();
	int n = 0;
	while (t_now_ns() - t0 < 1500000000ull) {
		void *w;
		CHECK_OK(vmo_map(o, 0, 16 * PG, VMO_PROT_READ | VMO_PROT_WRITE, &w));
		expect_page(w, 0, (uint64_t)(n % 16));
		CHECK_OK(munmap(w, 16 * PG));
		n++;
	}
	c.stop = 1;
	pthread_join(th, NULL);
	CHECK_EQ(c.bad, 0);
	CHECK_EQ(mappings(o), 1);
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK_EQ(st.errors, 0);
	CHECK_OK(vmo_unmap(o, c.v, 64 * PG));
	vmo_object_unref(o);
	CHECK_OK(vmo_engine_destroy(eng));
	free(s->data);
	free(s);
	printf("one worker, %d views unmapped by the program while %ld pages were read: ok\n", n, c.reads);
}

/* 8. the program's own munmap, then its last unref, then it frees the
 * store: nothing of vmo touches the store after the unref returned (the
 * worker applying the UNMAP event used to unlink the view a moment after
 * munmap returned, and the unref, not seeing it gone, returned before the
 * writeback and release ran on the worker). */
struct guarded {
	uint64_t data[4 * PG / 8];
	_Atomic int freed, late;
};

static int g_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct guarded *g = ctx;
	(void)flags;
	if (g->freed)
		g->late++;
	memcpy(buf, (char *)g->data + off, len);
	return 0;
}

static int g_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct guarded *g = ctx;
	if (g->freed)
		g->late++;
	memcpy((char *)g->data + off, buf, len);
	return 0;
}

static void g_release(void *ctx)
{
	struct guarded *g = ctx;
	if (g->freed)
		g->late++;
}

static const struct vmo_pager_ops g_ops = { .read = g_read, .write = g_write, .release = g_release };

static void case_unref_after_munmap(struct vmo_engine *eng)
{
	struct guarded *g = calloc(1, sizeof *g);
	CHECK(g);
	uint64_t t0 = t_now_ns();
	int n = 0;
	for (; n < 3000 && t_now_ns() - t0 < 3000000000ull; n++) {
		g->freed = 0;
		struct vmo_object *o;
		struct vmo_object_opts oo = { .size = 4 * PG };
		CHECK_OK(vmo_object_create(eng, &g_ops, g, &oo, &o));
		uint64_t *v;
		CHECK_OK(vmo_map(o, 0, 4 * PG, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
		v[1] = (uint64_t)n; /* dirty: the release writes back */
		CHECK_OK(munmap(v, 4 * PG));
		vmo_object_unref(o);
		g->freed = 1; /* the program frees the store here */
		CHECK_EQ(g->data[1], (uint64_t)n);
	}
	usleep(20000);
	CHECK_EQ(g->late, 0);
	free(g);
	printf("%d times: munmap by the program, last unref, then nothing touches the store: ok\n", n);
}

/* 9. one munmap covers views of A and B; A's release drops the last
 * reference to B (a pager holding another object): the worker that applies
 * the event frees A, whose release must not wait for B's view, which that
 * same worker releases next.  Faults go on being served meanwhile. */
struct chain {
	struct vmo_object *other;
	_Atomic int released;
};

static int c_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	(void)ctx, (void)flags;
	for (size_t i = 0; i < len / 8; i++)
		((uint64_t *)buf)[i] = t_pattern(off + i * 8);
	return 0;
}

static void c_release(void *ctx)
{
	struct chain *c = ctx;
	if (c->other)
		vmo_object_unref(c->other);
	c->released++;
}

static const struct vmo_pager_ops c_ops = { .read = c_read, .release = c_release };

static void case_release_chain(struct vmo_engine *eng)
{
	struct chain ca = { 0 }, cb = { 0 };
	struct vmo_object *a, *b, *x;
	struct vmo_object_opts oo = { .size = 8 * PG };
	CHECK_OK(vmo_object_create(eng, &c_ops, &cb, &oo, &b));
	ca.other = b;
	CHECK_OK(vmo_object_create(eng, &c_ops, &ca, &oo, &a));
	CHECK_OK(vmo_object_create(eng, &c_ops, &cb, &oo, &x)); /* an unrelated object */
	/* A's view, then B's right after it */
	char *hole = mmap(NULL, 16 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(hole != MAP_FAILED);
	CHECK_OK(munmap(hole, 16 * PG));
	void *va = hole, *vb = hole + 8 * PG, *vx;
	CHECK_OK(vmo_map(a, 0, 8 * PG, VMO_PROT_READ | VMO_MAP_FIXED, &va));
	CHECK_OK(vmo_map(b, 0, 8 * PG, VMO_PROT_READ | VMO_MAP_FIXED, &vb));
	CHECK_OK(vmo_map(x, 0, 8 * PG, VMO_PROT_READ, &vx));
	expect_page(va, 0, 1);
	expect_page(vb, 0, 2);
	vmo_object_unref(a); /* the program keeps neither: A's view holds A, A holds B */
	CHECK_OK(munmap(hole, 16 * PG));
	for (int i = 0; i < 3000 && !(ca.released && cb.released); i++)
		usleep(1000);
	CHECK_EQ(ca.released, 1);
	CHECK_EQ(cb.released, 1);
	expect_page(vx, 0, 5); /* served: nothing stuck */
	CHECK_OK(vmo_unmap(x, vx, 8 * PG));
	vmo_object_unref(x);
	printf("a release dropping another object's last reference, both unmapped at once: ok\n");
}

/* Every case needs UNMAP/REMAP events (VMO_DISABLE=events takes them away):
 * the shared engine (2 workers) of cases 1-6, checked for them. */
static struct vmo_engine *events_engine(void)
{
	struct vmo_engine *eng = t_shared_engine(2);
	t_require_features(eng, VMO_FEAT_EVENTS);
	return eng;
}

static void run_clear_error(void) { case_clear_error(events_engine()); }
static void run_reclaim(void) { case_reclaim(events_engine()); }
static void run_partial(void) { case_partial(events_engine()); }
static void run_mremap(void) { case_mremap(events_engine()); }
static void run_dontneed(void) { case_dontneed(events_engine()); }
static void run_unref_waits(void) { case_unref_waits(events_engine()); }
static void run_unref_after_munmap(void) { case_unref_after_munmap(events_engine()); }
static void run_release_chain(void) { case_release_chain(events_engine()); }
static void run_churn(void)
{
	events_engine();
	case_churn();
}

int main(int argc, char **argv)
{
	alarm(240); /* a hang is a failure (SIGALRM), not a CI timeout */
	setvbuf(stdout, NULL, _IOLBF, 0); /* progress survives an abort */
	setenv("VMO_LOG", "warn", 0);     /* vmo's warnings explain a failure */
	t_sig_install();
	return t_main(argc, argv,
		      T_CASES({ "clear-error", run_clear_error }, { "reclaim", run_reclaim }, { "partial", run_partial },
			      { "mremap", run_mremap }, { "dontneed", run_dontneed }, { "unref-waits", run_unref_waits },
			      { "unref-after-munmap", run_unref_after_munmap }, { "release-chain", run_release_chain },
			      { "churn", run_churn }));
}
