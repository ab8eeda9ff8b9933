/* SPDX-License-Identifier: MIT */
/* test_torture: writers, a syncer and the evictor at once, and no write is
 * lost.  An object over a real file, 4x larger than its budget; WRITERS
 * threads write whole random pages (each owns the pages pg % WRITERS == id,
 * so the last value of every page is known), reading back some of their own
 * pages as they go; a syncer thread calls vmo_sync in a loop and samples the
 * resident size against the budget.  Afterwards: unmap, release, and a fresh
 * open of the file holds exactly the last value written to every page.
 * Run twice: with the synchronous first-write trap (the default), and with
 * asynchronous dirty tracking (VMO_ENGINE_DIRTY_ASYNC).
 *
 * Then failing pages under churn, once per page size (4 KiB, 64 KiB, 2 MiB):
 * the shapes that found the hang of a failed page in a writable view (see
 * test_failpaths).  A tracked object over a buffer, a writable and a
 * read-only view, a budget of a quarter of it; owner threads write, check,
 * discard, return and sync their pages, and mark pages bad (the pager's read
 * of them fails) while they are resident, then drop them (discard, return,
 * or leave them to the budget) and touch them through either view: SIGBUS
 * with the page's address and the pager's errno, or, while the page is still
 * in memory, its data; never a hang, zeros or stale data.  Then shutdown
 * while threads touch pages; the store holds the last value of every page;
 * absent pages fail through both views, and after a discard every page does.
 * Every phase runs under an alarm: a hang is a failure naming the phase. */
#include "helper.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PS 4096u
#define NPAGES 8192u /* 32 MiB */
#define BUDGET (NPAGES * PS / 4)
#define WRITERS 3
#define SLACK (2u << 20) /* one reclaim batch (a chunk) */

static uint32_t ref[NPAGES];   /* last sequence written to each page (0: never) */
static void *base;
static _Atomic int stop;
static _Atomic uint64_t max_resident;
static struct vmo_object *obj;

static void fill_page(uint64_t *p, uint64_t pg, uint32_t seq)
{
	for (unsigned i = 0; i < PS / 8; i++)
		p[i] = (pg << 40) ^ ((uint64_t)seq << 12) ^ i;
}

static void check_page(const uint64_t *p, uint64_t pg, uint32_t seq, const char *when)
{
	for (unsigned i = 0; i < PS / 8; i++) {
		uint64_t want = seq ? (pg << 40) ^ ((uint64_t)seq << 12) ^ i : t_pattern(pg * PS + i * 8);
		if (p[i] != want) {
			fprintf(stderr, "%s: page %llu word %u: %#llx, expected %#llx (seq %u)\n", when,
				(unsigned long long)pg, i, (unsigned long long)p[i], (unsigned long long)want, seq);
			abort();
		}
	}
}

static void *writer(void *arg)
{
	uint64_t id = (uint64_t)(uintptr_t)arg;
	uint64_t rnd = 0x1234567 + id * 7919;
	uint32_t seq = 0;
	for (int n = 0; n < 20000; n++) {
		uint64_t pg = (t_rand(&rnd) % (NPAGES / WRITERS)) * WRITERS + id;
		if (pg >= NPAGES)
			continue;
		uint64_t *p = (uint64_t *)((char *)base + pg * PS);
		if (t_rand(&rnd) % 4 == 0) {
			check_page(p, pg, ref[pg], "during the run");
		} else {
			ref[pg] = ++seq + (uint32_t)(id << 24);
			fill_page(p, pg, ref[pg]);
		}
	}
	return NULL;
}

static void *syncer(void *arg)
{
	(void)arg;
	int syncs = 0;
	while (!stop) {
		CHECK_OK(vmo_sync(obj, VMO_WAIT));
		syncs++;
		struct vmo_stats st;
		CHECK_OK(vmo_object_stats(obj, &st));
		if (st.resident > max_resident)
			max_resident = st.resident;
		usleep(2000);
	}
	printf("syncs=%d\n", syncs);
	return NULL;
}

static void run(uint32_t engine_flags)
{
	memset(ref, 0, sizeof ref);
	stop = 0;
	max_resident = 0;
	const char *dir = getenv("TMPDIR");
	char path[4096];
	snprintf(path, sizeof path, "%s/vmo-torture-XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	{
		uint64_t *buf = malloc(PS);
		for (uint64_t pg = 0; pg < NPAGES; pg++) {
			for (unsigned i = 0; i < PS / 8; i++)
				buf[i] = t_pattern(pg * PS + i * 8);
			CHECK(pwrite(fd, buf, PS, (off_t)(pg * PS)) == PS);
		}
		free(buf);
	}
	struct vmo_engine_opts eo = { .workers = 2, .flags = engine_flags };
	struct vmo_engine *eng;
	CHECK_OK(vmo_engine_create(&eo, &eng));
	const struct vmo_pager_ops *ops;
	void *ctx;
	CHECK_OK(vmo_pager_file(fd, 0, &ops, &ctx));
	struct vmo_object_opts oo = { .budget = BUDGET };
	CHECK_OK(vmo_object_create(eng, ops, ctx, &oo, &obj));
	CHECK_EQ(vmo_object_size(obj), NPAGES * PS);
	CHECK_OK(vmo_map(obj, 0, NPAGES * PS, VMO_PROT_READ | VMO_PROT_WRITE, &base));

	pthread_t w[WRITERS], s;
	pthread_create(&s, NULL, syncer, NULL);
	for (uintptr_t i = 0; i < WRITERS; i++)
		pthread_create(&w[i], NULL, writer, (void *)i);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(w[i], NULL);
	stop = 1;
	pthread_join(s, NULL);

	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(obj, &st));
	printf("flags=%#x resident=%llu max_resident=%llu budget=%u evictions=%llu writebacks=%llu faults=%llu wp=%llu\n",
	       engine_flags, (unsigned long long)st.resident, (unsigned long long)max_resident, BUDGET,
	       (unsigned long long)st.evictions, (unsigned long long)st.writebacks, (unsigned long long)st.faults,
	       (unsigned long long)st.wp_faults);
	CHECK(st.evictions > 0);  /* the evictor really ran */
	CHECK(st.writebacks > 0);
	CHECK(max_resident <= BUDGET + SLACK);
	CHECK(st.resident <= BUDGET + SLACK);

	/* Every page, through the mapping, before the final sync. */
	for (uint64_t pg = 0; pg < NPAGES; pg++)
		check_page((uint64_t *)((char *)base + pg * PS), pg, ref[pg], "before close");
	CHECK_OK(vmo_sync(obj, VMO_WAIT));
	CHECK_OK(vmo_unmap(obj, base, NPAGES * PS));
	vmo_object_unref(obj);
	CHECK_OK(vmo_engine_destroy(eng));
	close(fd);

	/* A fresh open of the same file. */
	fd = open(path, O_RDONLY);
	CHECK(fd >= 0);
	uint64_t *buf = malloc(PS);
	for (uint64_t pg = 0; pg < NPAGES; pg++) {
		CHECK(pread(fd, buf, PS, (off_t)(pg * PS)) == PS);
		check_page(buf, pg, ref[pg], "after reopen");
	}
	free(buf);
	close(fd);
	unlink(path);
}

/* ---- failing pages under churn -------------------------------------------------- */

#define FP_OWNERS 3
#define FP_READERS 2
#define FP_MAX_PAGES 2048u

struct fp_pager {
	size_t ps;
	uint64_t npg;
	uint64_t *store;
	_Atomic uint8_t bad[FP_MAX_PAGES]; /* reads of the page fail with -EIO */
	_Atomic uint64_t failed_reads;
};

static struct fp_state {
	struct fp_pager pg;
	struct vmo_object *obj;
	char *view[2]; /* 0: read-only, 1: writable */
	uint32_t ref[FP_MAX_PAGES]; /* last sequence its owner wrote to each page (0: none) */
	uint64_t *model;            /* the model: what each page must hold */
	bool poison;
	uint64_t deadline;
	int ops;
	_Atomic int stop;
	_Atomic uint64_t sigbus, dropped_then_failed, data_while_bad, recovered, discards, returns;
	const char *phase;
} F;

static uint64_t fp_word(uint64_t pg, uint32_t seq, uint64_t i)
{
	return seq ? (pg << 48) ^ ((uint64_t)seq << 20) ^ i : t_pattern(pg * F.pg.ps + i * 8);
}

static int fp_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct fp_pager *p = ctx;
	(void)flags;
	for (uint64_t pg = off / p->ps; pg < (off + len) / p->ps; pg++)
		if (atomic_load(&p->bad[pg])) {
			atomic_fetch_add(&p->failed_reads, 1);
			return -EIO;
		}
	memcpy(buf, (char *)p->store + off, len);
	return 0;
}

static int fp_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct fp_pager *p = ctx;
	memcpy((char *)p->store + off, buf, len);
	return 0;
}

static const struct vmo_pager_ops fp_ops = { .read = fp_read, .write = fp_write };

static void fp_on_alarm(int sig)
{
	(void)sig;
	const char *m = "torture: HANG (no progress within the phase's bound) in phase: ";
	ssize_t r = write(2, m, strlen(m));
	r = write(2, F.phase, strlen(F.phase));
	r = write(2, "\n", 1);
	(void)r;
	_exit(1);
}

static volatile uint64_t *fp_at(int v, uint64_t pg, uint64_t i)
{
	return (volatile uint64_t *)(F.view[v] + pg * F.pg.ps) + i;
}

/* A SIGBUS from touching page pg through view v: in the page, in this
 * thread, with the code of a failed read. */
static void fp_check_bus(const struct t_sig *si, int v, uint64_t pg, const char *when)
{
	uintptr_t a = (uintptr_t)si->addr, pa = (uintptr_t)fp_at(v, pg, 0);
	/* (self-service, VMO_SELF_SERVICE: the access's own SIGBUS, passed on
	 * by vmo's handler, poison or not) */
	const char *ss = getenv("VMO_SELF_SERVICE");
	bool code_ok = ss && *ss && strcmp(ss, "0") ? si->code == BUS_ADRERR
		       : F.poison ? si->code == BUS_ADRERR || si->code == BUS_MCEERR_AR
				  : si->code == SI_QUEUE;
	if (a < pa || a >= pa + F.pg.ps || si->tid != (pid_t)syscall(SYS_gettid) || !code_ok) {
		fprintf(stderr, "%s (%s, page %llu, %s view): SIGBUS at %p (page at %p), thread %d (self %d), %s\n",
			when, F.phase, (unsigned long long)pg, v ? "writable" : "read-only", si->addr, (void *)pa,
			(int)si->tid, (int)syscall(SYS_gettid), t_sig_code_name(SIGBUS, si->code));
		abort();
	}
	atomic_fetch_add(&F.sigbus, 1);
}

/* Read word i of page pg through view v.  0: the model's data; SIGBUS:
 * only if may_fail (checked); anything else aborts. */
static int fp_probe(int v, uint64_t pg, uint64_t i, bool may_fail, const char *when)
{
	uint64_t val = 0;
	struct t_sig si;
	int sig = t_probe_read(fp_at(v, pg, i), &val, &si);
	if (sig == 0) {
		uint64_t want = F.model[pg * (F.pg.ps / 8) + i];
		if (val != want) {
			fprintf(stderr, "%s (%s): page %llu word %llu through the %s view: %#llx, expected %#llx (seq %u)\n",
				when, F.phase, (unsigned long long)pg, (unsigned long long)i, v ? "writable" : "read-only",
				(unsigned long long)val, (unsigned long long)want, F.ref[pg]);
			abort();
		}
		return 0;
	}
	if (sig != SIGBUS || !may_fail) {
		fprintf(stderr, "%s (%s): page %llu through the %s view: %s (%s), expected %s\n", when, F.phase,
			(unsigned long long)pg, v ? "writable" : "read-only", strsignal(sig),
			t_sig_code_name(sig, si.code), may_fail ? "data or SIGBUS" : "data");
		abort();
	}
	fp_check_bus(&si, v, pg, when);
	return sig;
}

/* A page that was dropped while its reads fail: SIGBUS through both views,
 * sticky, the pager's errno recorded.  false: it read data (the drop left
 * it in memory: it was being filled, for another thread's read-ahead). */
static bool fp_expect_failed(uint64_t pg, int first_view, const char *when)
{
	uint64_t i = (F.pg.ps / 8) - 1 - (pg % 7);
	if (fp_probe(first_view, pg, i, true, when) != SIGBUS)
		return false;
	CHECK_EQ(vmo_get_error(F.obj, pg * F.pg.ps), -EIO);
	CHECK_EQ(fp_probe(first_view, pg, 0, true, when), SIGBUS);
	CHECK_EQ(fp_probe(!first_view, pg, i, true, when), SIGBUS);
	struct t_sig si;
	CHECK_EQ(t_probe_write(fp_at(1, pg, 1), 1, &si), SIGBUS);
	fp_check_bus(&si, 1, pg, when);
	atomic_fetch_add(&F.dropped_then_failed, 1);
	return true;
}

static void fp_adopt_store(uint64_t pg, uint32_t id);
static void fp_check_store(uint64_t pg, const char *when);

/* Drop a failing page (discard, or return) and touch it: it must fail.  A
 * drop skips a page being filled: another thread's read-ahead may have
 * claimed it, and read it, before it failed.  Then it reads data (that
 * read's) and is dropped again once the fill is done; the filler may be
 * descheduled between its copy and marking the page clean, so this waits
 * (up to 5 s: longer is a page stuck in FILLING). */
static void fp_drop_and_fail(uint64_t pg, uint32_t id, int v, bool discard, const char *when)
{
	uint64_t t0 = t_now_ns();
	for (int tries = 0;; tries++) {
		if (discard) {
			CHECK_OK(vmo_discard_range(F.obj, pg * F.pg.ps, F.pg.ps, 0));
			fp_adopt_store(pg, id);
		} else {
			CHECK_OK(vmo_return_range(F.obj, pg * F.pg.ps, F.pg.ps, VMO_WAIT));
			fp_check_store(pg, when);
		}
		if (fp_expect_failed(pg, v, when))
			return;
		atomic_fetch_add(&F.data_while_bad, 1);
		if (t_now_ns() - t0 > 5000000000ull) {
			fprintf(stderr, "%s (%s): page %llu dropped %d times in 5 s, still reads data although its reads fail\n",
				when, F.phase, (unsigned long long)pg, tries + 1);
			abort();
		}
		usleep(tries < 10 ? 100 : 1000);
	}
}

/* After a discard the page holds what was last written back: values this
 * page had, never zeros or another page's data.  Not necessarily one value:
 * a writeback that ran while the owner was writing the page stored a mix of
 * its old and new words (the page was dirty again after it, and a discard
 * drops it unwritten).  The model takes the store's words. */
static void fp_adopt_store(uint64_t pg, uint32_t id)
{
	const size_t words = F.pg.ps / 8;
	const uint64_t *w = F.pg.store + pg * words;
	for (uint64_t i = 0; i < words; i++) {
		uint32_t seq = w[i] == t_pattern(pg * F.pg.ps + i * 8) ? 0 : (uint32_t)((w[i] ^ (pg << 48) ^ i) >> 20);
		if ((seq && ((seq >> 24) != id || (seq & 0xffffff) > (F.ref[pg] & 0xffffff))) ||
		    w[i] != fp_word(pg, seq, i)) {
			fprintf(stderr, "%s: page %llu word %llu in the store after a discard: %#llx, never written there "
					"(last seq %#x)\n",
				F.phase, (unsigned long long)pg, (unsigned long long)i, (unsigned long long)w[i],
				F.ref[pg]);
			abort();
		}
	}
	memcpy(F.model + pg * words, w, F.pg.ps);
}

static void fp_check_store(uint64_t pg, const char *when)
{
	const size_t words = F.pg.ps / 8;
	const uint64_t *w = F.pg.store + pg * words, *m = F.model + pg * words;
	for (uint64_t i = 0; i < words; i++)
		if (w[i] != m[i]) {
			fprintf(stderr, "%s (%s): page %llu word %llu in the store: %#llx, expected %#llx (last seq %#x)\n",
				when, F.phase, (unsigned long long)pg, (unsigned long long)i, (unsigned long long)w[i],
				(unsigned long long)m[i], F.ref[pg]);
			abort();
		}
}

static void fp_check_page(int v, uint64_t pg, const char *when)
{
	const size_t words = F.pg.ps / 8;
	const volatile uint64_t *p = fp_at(v, pg, 0);
	const uint64_t *m = F.model + pg * words;
	for (uint64_t i = 0; i < words; i++)
		if (p[i] != m[i]) {
			fprintf(stderr, "%s (%s): page %llu word %llu through the %s view: %#llx, expected %#llx (last seq %#x)\n",
				when, F.phase, (unsigned long long)pg, (unsigned long long)i, v ? "writable" : "read-only",
				(unsigned long long)p[i], (unsigned long long)m[i], F.ref[pg]);
			abort();
		}
}

static void fp_fill(uint64_t pg, uint32_t seq)
{
	volatile uint64_t *p = fp_at(1, pg, 0);
	uint64_t *m = F.model + pg * (F.pg.ps / 8);
	for (uint64_t i = 0; i < F.pg.ps / 8; i++)
		p[i] = m[i] = fp_word(pg, seq, i);
}

/* Owner id: pages pg % FP_OWNERS == id, only this thread writes, drops or
 * fails them. */
static void *fp_owner(void *arg)
{
	uint32_t id = (uint32_t)(uintptr_t)arg, seq = 0;
	uint64_t rnd = 0x9e3779b9u + id * 104729u;
	uint64_t mine = (F.pg.npg - id + FP_OWNERS - 1) / FP_OWNERS;
	for (int n = 0; n < F.ops && t_now_ns() < F.deadline; n++) {
		uint64_t pg = (t_rand(&rnd) % mine) * FP_OWNERS + id, off = pg * F.pg.ps;
		unsigned r = (unsigned)(t_rand(&rnd) % 100);
		int v = (int)(t_rand(&rnd) & 1);
		if (atomic_load(&F.pg.bad[pg])) {
			if (r < 45) {
				/* still in memory (data), or dropped by the budget (SIGBUS) */
				if (fp_probe(v, pg, t_rand(&rnd) % (F.pg.ps / 8), true, "bad page") == SIGBUS) {
					CHECK_EQ(vmo_get_error(F.obj, off), -EIO);
					CHECK_EQ(fp_probe(!v, pg, 0, true, "bad page, other view"), SIGBUS);
				} else {
					atomic_fetch_add(&F.data_while_bad, 1);
				}
			} else if (r < 60) {
				fp_drop_and_fail(pg, id, v, true, "bad page discarded");
			} else if (r < 75) {
				fp_drop_and_fail(pg, id, v, false, "bad page returned");
			} else {
				/* the store is fixed: forget the failure, the data is back */
				atomic_store(&F.pg.bad[pg], 0);
				CHECK_OK(vmo_clear_error(F.obj, off));
				CHECK_EQ(vmo_get_error(F.obj, off), 0);
				fp_check_page(v, pg, "recovered page");
				atomic_fetch_add(&F.recovered, 1);
			}
			continue;
		}
		if (r < 40) {
			F.ref[pg] = ++seq | (id << 24);
			fp_fill(pg, F.ref[pg]);
		} else if (r < 55) {
			fp_check_page(v, pg, "during the run");
		} else if (r < 61) {
			CHECK_OK(vmo_discard_range(F.obj, off, F.pg.ps, 0));
			atomic_fetch_add(&F.discards, 1);
			fp_adopt_store(pg, id);
			fp_check_page(v, pg, "after a discard");
		} else if (r < 67) {
			CHECK_OK(vmo_return_range(F.obj, off, F.pg.ps, VMO_WAIT));
			atomic_fetch_add(&F.returns, 1);
			fp_check_store(pg, "after a return");
		} else if (r < 72) {
			CHECK_OK(vmo_sync_range(F.obj, off, F.pg.ps, VMO_WAIT));
			fp_check_store(pg, "after a sync");
		} else {
			/* make sure it is in memory (mapped write-protected in the
			 * writable view if clean), then its reads fail from now on */
			fp_check_page(1, pg, "before failing it");
			atomic_store(&F.pg.bad[pg], 1);
			unsigned how = (unsigned)(t_rand(&rnd) % 3);
			if (how < 2)
				fp_drop_and_fail(pg, id, v, how == 0, how == 0 ? "failing page discarded"
										: "failing page returned");
			/* else: left to the budget */
		}
	}
	return NULL;
}

static void *fp_syncer(void *arg)
{
	(void)arg;
	for (unsigned n = 0; !atomic_load(&F.stop); n++) {
		CHECK_OK(vmo_sync(F.obj, n % 4 ? VMO_WAIT : 0));
		if (n % 16 == 15)
			CHECK_OK(vmo_return(F.obj, VMO_WAIT)); /* drops every clean page, failing ones too */
		usleep(3000);
	}
	return NULL;
}

/* Touches pages through both views while the object is shut down: data or
 * SIGBUS, never a hang. */
static void *fp_reader(void *arg)
{
	uint64_t rnd = 0x51ed27u + (uintptr_t)arg * 7919u;
	while (!atomic_load(&F.stop)) {
		uint64_t pg = t_rand(&rnd) % F.pg.npg;
		fp_probe((int)(t_rand(&rnd) & 1), pg, t_rand(&rnd) % (F.pg.ps / 8), true, "reader during shutdown");
	}
	return NULL;
}

static void run_failpaths(unsigned ps)
{
	static char phase[96];
	uint64_t t0 = t_now_ns();
	memset(&F, 0, sizeof F);
	F.phase = phase;
	snprintf(phase, sizeof phase, "failing pages, %u KiB pages: setup", ps / 1024);
	signal(SIGALRM, fp_on_alarm);
	alarm(60);
	F.pg.ps = ps;
	uint64_t size = ps >= (2u << 20) ? 8ull * ps : 8ull << 20; /* 4 reclaim chunks, or 8 pages */
	F.pg.npg = size / ps;
	CHECK(F.pg.npg <= FP_MAX_PAGES);
	F.pg.store = malloc(size);
	F.model = malloc(size);
	CHECK(F.pg.store && F.model);
	for (uint64_t pg = 0; pg < F.pg.npg; pg++)
		for (uint64_t i = 0; i < ps / 8; i++)
			F.model[pg * (ps / 8) + i] = F.pg.store[pg * (ps / 8) + i] = fp_word(pg, 0, i);
	F.ops = ps == 4096 ? 4000 : ps == 65536 ? 1500 : 150;
	F.deadline = t_now_ns() + 4000000000ull; /* 4 s of churn at most */

	struct vmo_engine_opts eo = { .workers = 2, .flags = VMO_ENGINE_NO_PRESSURE };
	struct vmo_engine *eng;
	CHECK_OK(vmo_engine_create(&eo, &eng));
	unsigned feats = vmo_engine_features(eng);
	F.poison = feats & VMO_FEAT_POISON;
	if ((feats & (VMO_FEAT_WP | VMO_FEAT_MINOR)) != (VMO_FEAT_WP | VMO_FEAT_MINOR)) {
		/* untracked: pages a writable view touched stay dirty, so neither
		 * a return nor the budget drops them */
		CHECK_OK(vmo_engine_destroy(eng));
		free(F.pg.store);
		free(F.model);
		alarm(0);
		t_skip_case("objects are untracked here (no %s)", t_feature_names(~feats & (VMO_FEAT_WP | VMO_FEAT_MINOR)));
	}
	struct vmo_object_opts oo = { .page_size = ps, .size = size, .budget = size / 4 };
	CHECK_OK(vmo_object_create(eng, &fp_ops, &F.pg, &oo, &F.obj));
	void *a, *b;
	CHECK_OK(vmo_map(F.obj, 0, size, VMO_PROT_READ | VMO_PROT_WRITE, &a));
	CHECK_OK(vmo_map(F.obj, 0, size, VMO_PROT_READ, &b));
	F.view[1] = a;
	F.view[0] = b;

	snprintf(phase, sizeof phase, "failing pages, %u KiB pages: owners, syncer, budget", ps / 1024);
	pthread_t ow[FP_OWNERS], sy, rd[FP_READERS];
	CHECK_OK(pthread_create(&sy, NULL, fp_syncer, NULL));
	for (uintptr_t i = 0; i < FP_OWNERS; i++)
		CHECK_OK(pthread_create(&ow[i], NULL, fp_owner, (void *)i));
	for (int i = 0; i < FP_OWNERS; i++)
		CHECK_OK(pthread_join(ow[i], NULL));
	atomic_store(&F.stop, 1);
	CHECK_OK(pthread_join(sy, NULL));
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(F.obj, &st));
	uint64_t churn_ms = (t_now_ns() - t0) / 1000000;

	/* Shutdown while threads touch pages.  Some pages dirty first, so that
	 * shutdown writes them back. */
	snprintf(phase, sizeof phase, "failing pages, %u KiB pages: shutdown under touches", ps / 1024);
	/* The bound of this phase and the next (a hang, not a speed limit):
	 * without UFFDIO_POISON (before 6.6) each SIGBUS of the thousands
	 * below is queued and the thread woken later, about 1 ms apiece here
	 * (14 s for 4 KiB pages), and an emulated 6.1 guest is ten times
	 * slower. */
	alarm(240);
	uint64_t rnd = 77;
	for (int k = 0; k < 4; k++) {
		uint64_t pg = t_rand(&rnd) % F.pg.npg;
		if (atomic_load(&F.pg.bad[pg]))
			continue;
		F.ref[pg] = (uint32_t)(0xf00000 + k) | (uint32_t)((pg % FP_OWNERS) << 24);
		fp_fill(pg, F.ref[pg]);
	}
	atomic_store(&F.stop, 0);
	for (uintptr_t i = 0; i < FP_READERS; i++)
		CHECK_OK(pthread_create(&rd[i], NULL, fp_reader, (void *)i));
	usleep(20000);
	CHECK_OK(vmo_object_shutdown(F.obj));
	usleep(50000);
	atomic_store(&F.stop, 1);
	for (int i = 0; i < FP_READERS; i++)
		CHECK_OK(pthread_join(rd[i], NULL));

	/* The store holds the last value of every page (the reference model). */
	snprintf(phase, sizeof phase, "failing pages, %u KiB pages: after shutdown", ps / 1024);
	for (uint64_t pg = 0; pg < F.pg.npg; pg++)
		fp_check_store(pg, "after shutdown");
	/* Pages in memory read their data, the others fail, through both views. */
	uint64_t bus_after = 0;
	for (uint64_t pg = 0; pg < F.pg.npg; pg++)
		for (int v = 0; v < 2; v++)
			bus_after += fp_probe(v, pg, (pg * 13) % (ps / 8), true, "after shutdown") == SIGBUS;
	/* After a discard every page is absent: every one fails, in both views,
	 * by a read and by a write. */
	CHECK_OK(vmo_discard(F.obj, 0));
	for (uint64_t pg = 0; pg < F.pg.npg; pg++) {
		CHECK_EQ(fp_probe(1, pg, 0, true, "after shutdown and discard"), SIGBUS);
		CHECK_EQ(fp_probe(0, pg, ps / 8 - 1, true, "after shutdown and discard"), SIGBUS);
		struct t_sig si;
		CHECK_EQ(t_probe_write(fp_at(1, pg, 2), 3, &si), SIGBUS);
		fp_check_bus(&si, 1, pg, "write after shutdown and discard");
	}
	printf("failing pages, %4u KiB pages: %llu ms churn + %llu ms shutdown; evictions=%llu failed_reads=%llu "
	       "SIGBUS=%llu dropped-then-failed=%llu data-while-bad=%llu recovered=%llu discards=%llu returns=%llu "
	       "after-shutdown SIGBUS=%llu/%llu\n",
	       ps / 1024, (unsigned long long)churn_ms,
	       (unsigned long long)((t_now_ns() - t0) / 1000000 - churn_ms), (unsigned long long)st.evictions,
	       (unsigned long long)atomic_load(&F.pg.failed_reads), (unsigned long long)atomic_load(&F.sigbus),
	       (unsigned long long)atomic_load(&F.dropped_then_failed),
	       (unsigned long long)atomic_load(&F.data_while_bad), (unsigned long long)atomic_load(&F.recovered),
	       (unsigned long long)atomic_load(&F.discards), (unsigned long long)atomic_load(&F.returns),
	       (unsigned long long)bus_after, (unsigned long long)(2 * F.pg.npg));
	CHECK(st.evictions > 0);
	CHECK(atomic_load(&F.dropped_then_failed) > 0);
	CHECK(bus_after > 0); /* the budget kept pages out of memory */

	CHECK_OK(vmo_unmap(F.obj, a, size));
	CHECK_OK(vmo_unmap(F.obj, b, size));
	vmo_object_unref(F.obj);
	CHECK_OK(vmo_engine_destroy(eng));
	free(F.pg.store);
	free(F.model);
	alarm(0);
}

static void case_trap(void)
{
	t_require_uffd();
	run(0);
}

static void case_dirty_async(void)
{
	t_require_uffd();
	struct vmo_engine *e;
	struct vmo_engine_opts eo = { .flags = VMO_ENGINE_DIRTY_ASYNC };
	int rc = vmo_engine_create(&eo, &e);
	if (rc == -EOPNOTSUPP)
		t_skip_case("async dirty tracking not offered by this kernel: %s", vmo_last_error_detail());
	CHECK_OK(rc);
	CHECK_OK(vmo_engine_destroy(e));
	run(VMO_ENGINE_DIRTY_ASYNC);
}

static void case_failpaths_4k(void)
{
	t_require_uffd();
	run_failpaths(4096);
}

static void case_failpaths_64k(void)
{
	t_require_uffd();
	run_failpaths(65536);
}

static void case_failpaths_2m(void)
{
	t_require_uffd();
	run_failpaths(2u << 20);
}

/* `test_torture 'failpaths-*'`: only the failing-pages phases */
int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	t_sig_install();
	return t_main(argc, argv,
		      T_CASES({ "trap", case_trap }, { "dirty-async", case_dirty_async }, { "failpaths-4k", case_failpaths_4k },
			      { "failpaths-64k", case_failpaths_64k }, { "failpaths-2m", case_failpaths_2m }));
}
