/* SPDX-License-Identifier: MIT */
/* test_async: asynchronous dirty tracking (VMO_ENGINE_DIRTY_ASYNC).  First
 * writes cost no trap; sync collects and writes them; a write during
 * writeback is caught by the next sync; eviction never drops a write made
 * since the last collection; an unlock callback is refused. */
#include "helper.h"

#include <pthread.h>
#include <unistd.h>

#define PS 4096u
#define NPAGES 512u

struct store {
	char *data;
	_Atomic int writes;
	_Atomic int delay_us;
};

static int st_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	memcpy(buf, ((struct store *)ctx)->data + off, len);
	return 0;
}
static int st_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct store *s = ctx;
	if (s->delay_us)
		usleep((useconds_t)s->delay_us);
	memcpy(s->data + off, buf, len);
	s->writes++;
	return 0;
}
static int st_unlock(void *ctx, uint64_t off, size_t len) { return 0; }
static const struct vmo_pager_ops ops = { .read = st_read, .write = st_write };
static const struct vmo_pager_ops ops_unlock = { .read = st_read, .write = st_write, .unlock = st_unlock };

/* Regression: with a budget, pages being filled were collected as "written"
 * (PAGEMAP_SCAN calls a hole written), written back as zeros and evicted
 * before their copy landed; the copy then hit EEXIST and the faulting
 * thread was never woken.  Random reads and writes from two threads over an
 * object 8x its budget: every read sees the pager's data or the last write;
 * a hang fails by alarm(). */
static uint64_t *mirror; /* last value written per page (0: none) */
static char *ra_base;
static void *rw_thread(void *arg)
{
	uint64_t r = 1 + (uintptr_t)arg;
	for (int i = 0; i < 20000; i++) {
		uint64_t pg = (t_rand(&r) % (NPAGES / 2)) * 2 + (uintptr_t)arg; /* own pages */
		volatile uint64_t *w = (volatile uint64_t *)(ra_base + pg * PS + 24);
		if (t_rand(&r) % 2) {
			*w = mirror[pg] = (pg << 20) | (uint64_t)i | 1;
		} else {
			uint64_t want = mirror[pg] ? mirror[pg] : 0;
			if (*w != want) {
				fprintf(stderr, "page %llu: %#llx, expected %#llx\n", (unsigned long long)pg,
					(unsigned long long)*w, (unsigned long long)want);
				abort();
			}
		}
	}
	return NULL;
}

static volatile uint64_t *late;
static void *late_writer(void *arg)
{
	usleep(20000);
	late[1] = 0xBEEF;
	return NULL;
}

/* An engine with VMO_ENGINE_DIRTY_ASYNC, or a skip of the case where the
 * kernel cannot do it (of the program without userfaultfd). */
static struct vmo_engine *async_engine(void)
{
	t_require_uffd();
	struct vmo_engine_opts eo = { .flags = VMO_ENGINE_DIRTY_ASYNC };
	struct vmo_engine *eng;
	int rc = vmo_engine_create(&eo, &eng);
	if (rc == -EOPNOTSUPP)
		t_skip_case("%s", vmo_last_error_detail());
	CHECK_OK(rc);
	return eng;
}

static void case_sync(void)
{
	struct vmo_engine *eng = async_engine();
	struct store s = { .data = calloc(NPAGES, PS) };
	struct vmo_object_opts oo = { .size = NPAGES * PS };
	struct vmo_object *o;
	CHECK_EQ(vmo_object_create(eng, &ops_unlock, &s, &oo, &o), -EINVAL);
	CHECK_OK(vmo_object_create(eng, &ops, &s, &oo, &o));
	void *a;
	CHECK_OK(vmo_map(o, 0, NPAGES * PS, VMO_PROT_READ | VMO_PROT_WRITE, &a));
	uint64_t *p = a;

	/* First writes: no write fault reaches vmo. */
	for (uint64_t pg = 0; pg < NPAGES; pg += 2)
		p[pg * PS / 8] = pg + 1;
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK_EQ(st.wp_faults, 0);
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	for (uint64_t pg = 0; pg < NPAGES; pg++)
		CHECK_EQ(((uint64_t *)s.data)[pg * PS / 8], pg % 2 ? 0 : pg + 1);
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK_EQ(st.writebacks, NPAGES / 2);
	CHECK_EQ(st.dirty, 0);
	/* A second sync finds nothing new. */
	int w0 = s.writes;
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	CHECK_EQ(s.writes, w0);
	/* Written again after the sync: collected by the next one. */
	p[3 * PS / 8] = 33;
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	CHECK_EQ(((uint64_t *)s.data)[3 * PS / 8], 33);

	/* The last unref writes back what was written since the last sync, even
	 * though no collection has counted it yet (checked after the unref). */
	p[30 * PS / 8] = 3030;

	/* A write during writeback is not lost. */
	p[10 * PS / 8] = 1010;
	late = &p[10 * PS / 8];
	s.delay_us = 100000;
	pthread_t th;
	pthread_create(&th, NULL, late_writer, NULL);
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	pthread_join(th, NULL);
	s.delay_us = 0;
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	CHECK_EQ(((uint64_t *)s.data)[10 * PS / 8 + 1], 0xBEEF);
	CHECK_EQ(((uint64_t *)s.data)[10 * PS / 8], 1010);

	/* Eviction after an unsynced write: written back, not dropped. */
	p[20 * PS / 8] = 2020;
	CHECK_OK(vmo_return(o, VMO_WAIT));
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK_EQ(st.resident, 0);
	CHECK_EQ(((uint64_t *)s.data)[20 * PS / 8], 2020);
	CHECK_EQ(p[20 * PS / 8], 2020);
	/* Under a budget, with writers: nothing lost (see test_torture too). */
	CHECK_OK(vmo_object_set_budget(o, 64 * PS, 0));
	for (int round = 0; round < 4; round++)
		for (uint64_t pg = 0; pg < NPAGES; pg++)
			p[pg * PS / 8 + 2] = pg * 10 + (uint64_t)round;
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	for (uint64_t pg = 0; pg < NPAGES; pg++) {
		CHECK_EQ(((uint64_t *)s.data)[pg * PS / 8 + 2], pg * 10 + 3);
		CHECK_EQ(p[pg * PS / 8 + 2], pg * 10 + 3);
	}
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK(st.resident <= 64 * PS + (2u << 20));
	CHECK(st.evictions > 0);

	p[31 * PS / 8] = 3131; /* written, never synced */
	CHECK_OK(vmo_unmap(o, a, NPAGES * PS));
	vmo_object_unref(o);
	CHECK_EQ(((uint64_t *)s.data)[31 * PS / 8], 3131);
	CHECK_OK(vmo_engine_destroy(eng));
	free(s.data);
}

/* The regression above (rw_thread): a fresh store of zeros, budget 1/8. */
static void case_budget_race(void)
{
	struct vmo_engine *eng = async_engine();
	struct store s = { .data = calloc(NPAGES, PS) };
	struct vmo_object *o;
	struct vmo_stats st;
	alarm(120);
	memset(s.data, 0, NPAGES * PS);
	struct vmo_object_opts ob = { .size = NPAGES * PS, .budget = NPAGES * PS / 8 };
	CHECK_OK(vmo_object_create(eng, &ops, &s, &ob, &o));
	CHECK_OK(vmo_map(o, 0, NPAGES * PS, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&ra_base));
	mirror = calloc(NPAGES, sizeof *mirror);
	pthread_t t2[2];
	for (uintptr_t i = 0; i < 2; i++)
		pthread_create(&t2[i], NULL, rw_thread, (void *)i);
	for (int i = 0; i < 2; i++)
		pthread_join(t2[i], NULL);
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	for (uint64_t pg = 0; pg < NPAGES; pg++)
		CHECK_EQ(((uint64_t *)s.data)[pg * PS / 8 + 3], mirror[pg]);
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK(st.evictions > 0);
	CHECK_EQ(st.write_errors, 0);
	alarm(0);
	CHECK_OK(vmo_unmap(o, ra_base, NPAGES * PS));
	vmo_object_unref(o);
	free(mirror);
	CHECK_OK(vmo_engine_destroy(eng));
	free(s.data);
}

int main(int argc, char **argv)
{
	return t_main(argc, argv, T_CASES({ "sync", case_sync }, { "budget-race", case_budget_race }));
}
