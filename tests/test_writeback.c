/* SPDX-License-Identifier: MIT */
/* test_writeback: the first-write trap, the three page states, sync / return /
 * discard, failing write callbacks and the unlock callback refusing. */
#include "helper.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#define PS 4096u
#define NPAGES 256u

/* A pager over a RAM "store" that counts calls and can be told to fail. */
struct store {
	char *data;
	size_t size;
	_Atomic int writes, unlocks, syncs, evicts;
	_Atomic int fail_write;  /* -errno to return from write */
	_Atomic int fail_unlock; /* -errno to return from unlock */
	_Atomic int write_delay_us;
	_Atomic uint64_t evicted_bytes;
};

static int st_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct store *s = ctx;
	memcpy(buf, s->data + off, len);
	/* Pages 100 and up are supplied writable: no unlock asked (libpager's
	 * write_lock = 0); the others write-locked. */
	if (off < 100 * PS)
		*flags |= VMO_READ_WRITELOCK;
	return 0;
}

static int st_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct store *s = ctx;
	int d = s->write_delay_us;
	if (d)
		usleep((useconds_t)d);
	if (s->fail_write)
		return s->fail_write;
	memcpy(s->data + off, buf, len);
	s->writes++;
	return 0;
}

static int st_unlock(void *ctx, uint64_t off, size_t len)
{
	struct store *s = ctx;
	s->unlocks++;
	return s->fail_unlock;
}

static int st_sync(void *ctx)
{
	((struct store *)ctx)->syncs++;
	return 0;
}

static void st_evict(void *ctx, uint64_t off, size_t len)
{
	struct store *s = ctx;
	s->evicts++;
	s->evicted_bytes += len;
}

static const struct vmo_pager_ops store_ops = {
	.read = st_read,
	.write = st_write,
	.unlock = st_unlock,
	.sync = st_sync,
	.notify_evict = st_evict,
};

static struct vmo_stats stats(struct vmo_object *o)
{
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(o, &st));
	return st;
}

/* Writer thread for the write-during-writeback check. */
struct wr {
	volatile uint64_t *p;
	_Atomic int go;
};
static void *late_writer(void *arg)
{
	struct wr *w = arg;
	while (!w->go)
		;
	usleep(20000); /* land inside the slow write callback */
	w->p[1] = 0xBEEF;
	return NULL;
}

/* Without UFFDIO_CONTINUE_MODE_WP (6.5), unlock callbacks are refused, and
 * the detail says why. */
static void case_unlock_refused(void)
{
	struct vmo_engine *eng = t_shared_engine(2);
	t_require_features(eng, VMO_FEAT_WP);
	if (vmo_engine_features(eng) & VMO_FEAT_CONTINUE_WP)
		t_skip_case("the kernel has UFFDIO_CONTINUE_MODE_WP: unlock callbacks are accepted");
	struct store s = { .size = NPAGES * PS };
	struct vmo_object_opts oo = { .size = s.size };
	struct vmo_object *o;
	CHECK_EQ(vmo_object_create(eng, &store_ops, &s, &oo, &o), -EOPNOTSUPP);
	CHECK(strstr(vmo_last_error_detail(), "CONTINUE_MODE_WP"));
}

static void case_writeback(void)
{
	struct vmo_engine *eng = t_shared_engine(2);
	t_require_features(eng, VMO_FEAT_WP | VMO_FEAT_CONTINUE_WP);
	struct store s = { .size = NPAGES * PS };
	s.data = calloc(1, s.size);
	for (size_t i = 0; i < s.size / 8; i++)
		((uint64_t *)s.data)[i] = t_pattern(i * 8);
	struct vmo_object_opts oo = { .size = s.size };
	struct vmo_object *o;
	CHECK_OK(vmo_object_create(eng, &store_ops, &s, &oo, &o));
	void *a;
	CHECK_OK(vmo_map(o, 0, s.size, VMO_PROT_READ | VMO_PROT_WRITE, &a));
	uint64_t *p = a;

	/* Reading does not dirty; the first write traps once and calls unlock. */
	for (size_t i = 0; i < s.size / 8; i += 512)
		CHECK_EQ(p[i], t_pattern(i * 8));
	CHECK_EQ(stats(o).dirty, 0);
	CHECK_EQ(s.unlocks, 0);
	p[0] = 1;
	p[1] = 2; /* same page: no second trap */
	CHECK_EQ(s.unlocks, 1);
	CHECK_EQ(stats(o).dirty, PS);
	CHECK_EQ(stats(o).wp_faults, 1);
	/* A second mapping sees the dirty page and writes it without a trap;
	 * a clean page through it traps. */
	void *b;
	CHECK_OK(vmo_map(o, 0, 8 * PS, VMO_PROT_READ | VMO_PROT_WRITE, &b));
	uint64_t *q = b;
	CHECK_EQ(q[0], 1);
	q[2] = 3;
	CHECK_EQ(s.unlocks, 1);
	q[PS / 8] = 4; /* page 1, clean */
	CHECK_EQ(s.unlocks, 2);
	CHECK_EQ(p[PS / 8], 4);

	/* sync writes both dirty pages, calls the durability hook, keeps them. */
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	CHECK_EQ(s.writes >= 1, 1);
	CHECK_EQ(s.syncs, 1);
	CHECK_EQ(((uint64_t *)s.data)[0], 1);
	CHECK_EQ(((uint64_t *)s.data)[2], 3);
	CHECK_EQ(((uint64_t *)s.data)[PS / 8], 4);
	CHECK_EQ(stats(o).dirty, 0);
	CHECK_EQ(stats(o).resident, s.size);
	/* After sync the pages are clean and protected again: a write traps
	 * (and makes them dirty), but the pager unlocked page 0 already: as in
	 * libpager, unlock is asked once per read of a write-locked page. */
	int u0 = s.unlocks;
	uint64_t wp0 = stats(o).wp_faults;
	p[3] = 5;
	CHECK_EQ(stats(o).wp_faults, wp0 + 1);
	CHECK_EQ(s.unlocks, u0);
	CHECK_EQ(stats(o).dirty, PS);
	q[3] = 6; /* through the other view: same page, already dirty */
	CHECK_EQ(p[3], 6);
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	CHECK_EQ(((uint64_t *)s.data)[3], 6);
	CHECK_OK(vmo_unmap(o, b, 8 * PS));

	/* A write that lands during writeback is not lost: the page goes back
	 * to dirty and the next sync writes it. */
	p[PS / 8 * 10] = 7;
	s.write_delay_us = 100000;
	struct wr w = { .p = &p[PS / 8 * 10] };
	pthread_t th;
	pthread_create(&th, NULL, late_writer, &w);
	w.go = 1;
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	pthread_join(th, NULL);
	s.write_delay_us = 0;
	CHECK_EQ(stats(o).dirty, PS); /* the late write keeps it dirty */
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	CHECK_EQ(((uint64_t *)s.data)[PS / 8 * 10 + 1], 0xBEEF);
	CHECK_EQ(stats(o).dirty, 0);

	/* A failing write leaves the page dirty and resident; sync returns the
	 * error; the next sync retries and succeeds. */
	p[PS / 8 * 20] = 8;
	s.fail_write = -EIO;
	CHECK_EQ(vmo_sync(o, VMO_WAIT), -EIO);
	CHECK_EQ(stats(o).dirty, PS);
	CHECK(stats(o).write_errors >= 1);
	CHECK_EQ(vmo_return(o, VMO_WAIT), -EIO); /* return must not drop it either */
	CHECK_EQ(stats(o).dirty, PS);
	CHECK(((uint64_t *)s.data)[PS / 8 * 20] != 8);
	CHECK_EQ(p[PS / 8 * 20], 8);
	s.fail_write = 0;
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	CHECK_EQ(((uint64_t *)s.data)[PS / 8 * 20], 8);

	/* return: writes back, then drops; the next touch reads the store. */
	p[PS / 8 * 30] = 9;
	int ev0 = s.evicts;
	CHECK_OK(vmo_return(o, VMO_WAIT));
	CHECK_EQ(stats(o).resident, 0);
	CHECK(s.evicts > ev0);
	CHECK_EQ(s.evicted_bytes >= s.size, 1);
	CHECK_EQ(((uint64_t *)s.data)[PS / 8 * 30], 9);
	CHECK_EQ(p[PS / 8 * 30], 9);
	CHECK_EQ(p[PS / 8 * 31], t_pattern((PS * 31)));

	/* discard: drops without writing back; the next touch asks the pager. */
	p[PS / 8 * 40] = 10;
	int wr0 = s.writes;
	CHECK_OK(vmo_discard_range(o, 40 * PS, PS, VMO_WAIT));
	CHECK_EQ(s.writes, wr0);
	CHECK_EQ(p[PS / 8 * 40], t_pattern(40 * PS));

	/* return of a range keeps the rest */
	p[0] = 11;
	p[PS / 8 * 50] = 12;
	CHECK_OK(vmo_return_range(o, 0, PS, VMO_WAIT));
	CHECK_EQ(stats(o).dirty, PS); /* page 50 still dirty */
	CHECK_EQ(((uint64_t *)s.data)[0], 11);

	/* The same without VMO_WAIT: queued, done soon, and only that range. */
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	CHECK_EQ(p[PS / 8 * 51], t_pattern(51 * PS)); /* resident */
	uint64_t res0 = stats(o).resident;
	p[PS / 8 * 52] = 52;
	CHECK_OK(vmo_return_range(o, 51 * PS, PS, 0));
	for (int i = 0; i < 500 && stats(o).resident == res0; i++)
		usleep(10000);
	CHECK_EQ(stats(o).resident, res0 - PS); /* page 51 only */
	CHECK_EQ(stats(o).dirty, PS);           /* page 52 untouched, still dirty */
	CHECK_OK(vmo_sync(o, VMO_WAIT));

	/* The unlock callback refuses: the writer gets SIGBUS, vmo_get_error
	 * says why, the page stays clean and holds the pager's data. */
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	CHECK_EQ(p[PS / 8 * 60], t_pattern(60 * PS)); /* resident, clean */
	s.fail_unlock = -ENOSPC;
	struct t_sig info;
	CHECK_EQ(t_probe_write(&p[PS / 8 * 60], 13, &info), SIGBUS);
	CHECK(info.addr == (void *)&p[PS / 8 * 60] || info.addr == (void *)((char *)a + 60 * PS));
	CHECK_EQ(vmo_get_error(o, 60 * PS), -ENOSPC);
	s.fail_unlock = -EDQUOT;
	CHECK_EQ(t_probe_write(&p[PS / 8 * 61], 13, NULL), SIGBUS);
	CHECK_EQ(vmo_get_error(o, 61 * PS), -EDQUOT);
	CHECK_EQ(p[PS / 8 * 60], t_pattern(60 * PS));
	s.fail_unlock = 0;
	p[PS / 8 * 60] = 14; /* allowed now */
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	CHECK_EQ(((uint64_t *)s.data)[PS / 8 * 60], 14);

	/* A page read without VMO_READ_WRITELOCK: its first write is tracked
	 * (dirty, written back) but never asks unlock; after a return the page
	 * is read again, write-locked again, and unlock is asked again. */
	u0 = s.unlocks;
	p[PS / 8 * 120] = 16;
	CHECK_EQ(s.unlocks, u0);
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	CHECK_EQ(((uint64_t *)s.data)[PS / 8 * 120], 16);
	CHECK_OK(vmo_return_range(o, 0, PS, VMO_WAIT));
	p[1] = 17;
	CHECK_EQ(s.unlocks, u0 + 1);

	/* Bad arguments: -EINVAL and nothing happens. */
	CHECK_EQ(vmo_sync(NULL, VMO_WAIT), -EINVAL);
	CHECK_EQ(vmo_sync(o, 0x80), -EINVAL);
	CHECK_EQ(vmo_sync_range(o, 1, PS, VMO_WAIT), -EINVAL);
	CHECK_EQ(vmo_sync_range(o, 0, 0, VMO_WAIT), -EINVAL);
	CHECK_EQ(vmo_sync_range(o, PS, UINT64_MAX - PS + 1, VMO_WAIT), -EINVAL);
	CHECK_EQ(vmo_return_range(o, s.size, PS, VMO_WAIT), -EINVAL);
	CHECK_EQ(vmo_discard_range(o, 0, s.size + PS, VMO_WAIT), -EINVAL);
	CHECK_EQ(vmo_object_set_budget(o, PS, 2 * PS), -EINVAL);
	CHECK_EQ(vmo_engine_set_budget(NULL, 0, 0), -EINVAL);

	/* Without VMO_WAIT the work is queued: it happens soon after. */
	p[PS / 8 * 70] = 15;
	CHECK_OK(vmo_sync(o, 0));
	for (int i = 0; i < 500 && stats(o).dirty; i++)
		usleep(10000);
	CHECK_EQ(stats(o).dirty, 0);
	CHECK_EQ(((uint64_t *)s.data)[PS / 8 * 70], 15);

	CHECK_OK(vmo_unmap(o, a, s.size));
	vmo_object_unref(o);
	free(s.data);
}

int main(int argc, char **argv)
{
	return t_main(argc, argv,
		      T_CASES({ "unlock-refused-without-continue-wp", case_unlock_refused }, { "writeback", case_writeback }));
}
