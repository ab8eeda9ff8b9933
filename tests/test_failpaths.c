/* SPDX-License-Identifier: MIT */
/* test_failpaths: every path that fails a page ends in SIGBUS for the
 * faulting thread, whatever the view's page table holds for the page
 * (nothing, a write-protect marker, a poison marker), and never in a hang.
 *
 * The regression: a page mapped write-protected in a writable view of a
 * tracked object, then dropped from memory (discard, return, eviction),
 * leaves a uffd-wp marker in that view's page table.  UFFDIO_POISON then
 * answers EEXIST; vmo took that for success, and the thread that touched the
 * page waited for ever: no signal, no wake.
 *
 * A matrix, each case in its own forked child, every step of it bounded by
 * alarm(10) (and a SIGKILL watchdog in the parent), so that a hang is a failed
 * case with its name and the step it hung in, never a CI timeout:
 *
 *   page size      4 KiB, 64 KiB, 2 MiB (vmo_object_opts.page_size)
 *   left memory    none (never resident: the touch is the first),
 *                  discard (vmo_discard_range), return (vmo_return_range,
 *                  VMO_WAIT), evict (an object budget of a few pages; other
 *                  pages touched until notify_evict names the page)
 *   before that    "read": read through the writable view (mapped there
 *                  write-protected), then through the read-only one, pager
 *                  with write + unlock; "written": also written and synced
 *                  (clean and write-protected again), pager with write only
 *   failure        read error (the pager's read of the page returns -EIO),
 *                  shutdown (vmo_object_shutdown, then the touch),
 *                  shutdown mid-read (the toucher blocks in the pager's read,
 *                  another thread shuts down, the read then fails; a third
 *                  thread parks behind the fill through the other view),
 *                  refused unlock (a write; the read sets VMO_READ_WRITELOCK;
 *                  unlock returns -ENOSPC): writable view only
 *   view touched   read-only, writable (both views map the whole object)
 *   touchers       one thread; or, for a failed read or a shutdown of a page
 *                  never in memory or discarded, 4 threads at once (3 through
 *                  the view under test, 1 through the other), each of which
 *                  then waits 100 ms for a stray SIGBUS: a worker that finds
 *                  the page already poisoned by another thread's fault must
 *                  not queue a second, stale SIGBUS that would hit the
 *                  thread later, anywhere
 *
 * Each case expects SIGBUS in the touching thread with si_addr inside the
 * page; si_code: a failed read (and a touch after shutdown) with
 * VMO_FEAT_POISON is the kernel's poison (BUS_ADRERR on recent kernels,
 * BUS_MCEERR_AR on some 6.6-era ones), without it SI_QUEUE; a refused unlock
 * is always SI_QUEUE (with VMO_SELF_SERVICE, every one is BUS_ADRERR: the
 * access's own SIGBUS, passed on by vmo's handler).  vmo_get_error: the pager's errno for a failed read or
 * refused unlock; 0 after a plain shutdown (nothing is recorded: docs/api.md,
 * "Signals and errors").  The failure is sticky (the same view again, a
 * write, the other view: SIGBUS, the pager not asked again) until
 * vmo_clear_error (read error: the data then reads right through both
 * views) or a successful unlock; after shutdown, even a discard leaves the
 * page failing.
 *
 * Cases are named size/left/failure/view[/4-threads], for instance
 * "64k/discard-after-written/read-error/rw-view"; `test_failpaths --list`
 * lists them and `test_failpaths '*discard*'` runs those matching (names or
 * globs, or T_CASES: tests/README.md), each still in its own child.
 * VMO_FP_JOBS sets how many cases run at once (default 6: on a broken build,
 * the hung cases then cost 10 s per 6). */
#include "helper.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define HANG_S 10     /* a step of a case that takes longer hangs */
#define STR_(x) #x
#define STR(x) STR_(x)
#define WATCHDOG_S 90 /* the parent kills a child that outlives its alarms */

enum leave { L_NONE, L_DISCARD, L_RETURN, L_EVICT, L_N };
enum hist { H_READ, H_WRITTEN };
enum failw { F_READ, F_SHUTDOWN, F_SHUTDOWN_INREAD, F_UNLOCK, F_N };
enum view { V_RO, V_RW };

static const char *const leave_name[] = { "none", "discard", "return", "evict" };
static const char *const hist_name[] = { "read", "written" };
static const char *const fail_name[] = { "read-error", "shutdown", "shutdown-mid-read", "refused-unlock" };
static const char *const view_name[] = { "ro-view", "rw-view" };
/* how a case's SIGBUS is classified in the summary */
static const char *const kind_name[] = { "failed read", "touch after shutdown", "failed read during shutdown",
					 "refused unlock" };

struct tcase {
	unsigned ps;
	enum leave leave;
	enum hist hist;
	enum failw fail;
	enum view view;
	bool unlock; /* the pager has an unlock callback */
	int touchers; /* threads touching the page at once (1, or 4) */
	char name[112];
};

/* What a child tells the parent (shared memory). */
struct result {
	int code;     /* si_code of the first SIGBUS (valid if got_sig) */
	int got_sig;
	int geterr;   /* vmo_get_error after the first SIGBUS */
	unsigned feats;
	char step[96];
	char msg[600];
	uint64_t ns;  /* the child's own run time */
};

/* ---- the child's context ------------------------------------------------------ */

static const struct tcase *C;
static struct result *RS;

/* Each step has HANG_S seconds (the alarm is re-armed): a hang, however
 * loaded the machine, is a step without an answer, not a slow case. */
static void step(const char *s)
{
	alarm(HANG_S);
	size_t n = strlen(s);
	if (n >= sizeof RS->step)
		n = sizeof RS->step - 1;
	memcpy(RS->step, s, n);
	RS->step[n] = 0;
}

static void on_alarm(int sig)
{
	(void)sig;
	_exit(3); /* the parent reports the case and its step */
}

__attribute__((noreturn, format(printf, 2, 3))) static void failf(int line, const char *fmt, ...)
{
	char m[480];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof m, fmt, ap);
	va_end(ap);
	snprintf(RS->msg, sizeof RS->msg, "line %d: %s", line, m); /* the parent prints it */
	_exit(1);
}

#define EXPECT(cond, ...)                              \
	do {                                           \
		if (!(cond))                           \
			failf(__LINE__, __VA_ARGS__); \
	} while (0)
#define EXPECT_EQ(expr, want)                                                                           \
	do {                                                                                            \
		long long g_ = (long long)(expr), w_ = (long long)(want);                               \
		if (g_ != w_)                                                                           \
			failf(__LINE__, "%s == %lld (%s), expected %lld (%s)", #expr, g_,                \
			      g_ < 0 ? vmo_strerror((int)g_) : "", w_, w_ < 0 ? vmo_strerror((int)w_) : ""); \
	} while (0)

/* ---- the pager: a buffer, and failures on demand for one page ------------------ */

struct pager {
	size_t ps;
	uint64_t npg, target;
	uint64_t *store;
	_Atomic int read_err;   /* reads covering the target return this */
	_Atomic int writelock;  /* reads set VMO_READ_WRITELOCK */
	_Atomic int unlock_err; /* unlock returns this */
	_Atomic int block;      /* reads of the target wait for `released` */
	_Atomic int in_read, released;
	_Atomic unsigned target_reads, unlocks;
	_Atomic int evicted;    /* notify_evict covered the target */
};

static bool covers(const struct pager *p, uint64_t off, size_t len)
{
	uint64_t t = p->target * p->ps;
	return off <= t && t < off + len;
}

static int pg_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct pager *p = ctx;
	if (covers(p, off, len)) {
		atomic_fetch_add(&p->target_reads, 1);
		if (atomic_load(&p->block)) {
			atomic_store(&p->in_read, 1);
			while (!atomic_load(&p->released))
				usleep(1000);
		}
		int e = atomic_load(&p->read_err);
		if (e)
			return e;
	}
	memcpy(buf, (char *)p->store + off, len);
	if (atomic_load(&p->writelock))
		*flags |= VMO_READ_WRITELOCK;
	return 0;
}

static int pg_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct pager *p = ctx;
	memcpy((char *)p->store + off, buf, len);
	return 0;
}

static int pg_unlock(void *ctx, uint64_t off, size_t len)
{
	struct pager *p = ctx;
	(void)off;
	(void)len;
	atomic_fetch_add(&p->unlocks, 1);
	return atomic_load(&p->unlock_err);
}

static void pg_notify_evict(void *ctx, uint64_t off, size_t len)
{
	struct pager *p = ctx;
	if (covers(p, off, len))
		atomic_store(&p->evicted, 1);
}

static const struct vmo_pager_ops ops_w = { .read = pg_read, .write = pg_write, .notify_evict = pg_notify_evict };
static const struct vmo_pager_ops ops_wu = {
	.read = pg_read, .write = pg_write, .unlock = pg_unlock, .notify_evict = pg_notify_evict
};

/* ---- one case ------------------------------------------------------------------ */

struct ctx {
	struct vmo_engine *eng;
	struct vmo_object *obj;
	struct pager pg;
	char *view[2]; /* V_RO, V_RW */
	bool poison;
	uint64_t size;
};

static struct ctx X;

static char *page_in(enum view v, uint64_t page) { return X.view[v] + page * X.pg.ps; }
/* word w of the target page (w may be negative: counted from the page's end) */
static volatile uint64_t *tword(enum view v, long w)
{
	size_t words = X.pg.ps / 8;
	return (volatile uint64_t *)page_in(v, X.pg.target) + (w < 0 ? (long)words + w : w);
}
static uint64_t store_word(const volatile uint64_t *p, enum view v)
{
	return X.pg.store[((const char *)p - X.view[v]) / 8];
}

enum kind { K_READ, K_QUEUED };

/* The access raised SIGBUS in this thread, in the target page of view v,
 * with the si_code kind expects. */
static struct t_sig check_bus(int sig, const struct t_sig *info, uint64_t v, bool write, enum view vw,
			      volatile uint64_t *p, pid_t tid, enum kind kind, const char *what)
{
	EXPECT(sig == SIGBUS, "%s: %s of %p (%s) gave %s (value %#llx), expected SIGBUS", what,
	       write ? "write" : "read", (void *)p, view_name[vw], sig ? strsignal(sig) : "no signal",
	       (unsigned long long)v);
	uintptr_t a = (uintptr_t)info->addr, pa = (uintptr_t)page_in(vw, X.pg.target);
	EXPECT(a >= pa && a < pa + X.pg.ps, "%s: si_addr %p outside the page [%p, +%#zx)", what, info->addr,
	       (void *)pa, X.pg.ps);
	EXPECT(info->tid == tid, "%s: SIGBUS went to thread %d, not the toucher %d", what, (int)info->tid,
	       (int)tid);
	bool ok;
	/* Self-service (the suite run with VMO_SELF_SERVICE): every failure is
	 * the faulting access's own SIGBUS, passed on by vmo's handler. */
	const char *ss = getenv("VMO_SELF_SERVICE");
	if (ss && *ss && strcmp(ss, "0"))
		ok = info->code == BUS_ADRERR;
	else if (kind == K_QUEUED || !X.poison)
		ok = info->code == SI_QUEUE;
	else
		ok = info->code == BUS_ADRERR || info->code == BUS_MCEERR_AR;
	EXPECT(ok, "%s: si_code %s, expected %s", what, t_sig_code_name(SIGBUS, info->code),
	       kind == K_QUEUED ? "SI_QUEUE (refused unlock: queued by vmo)"
	       : X.poison       ? "BUS_ADRERR or BUS_MCEERR_AR (VMO_FEAT_POISON: the kernel's poison)"
				: "SI_QUEUE (no VMO_FEAT_POISON: queued by vmo)");
	return *info;
}

static struct t_sig expect_bus(enum view vw, long w, bool write, enum kind kind, const char *what)
{
	step(what);
	volatile uint64_t *p = tword(vw, w);
	struct t_sig info;
	uint64_t v = 0;
	int sig = write ? t_probe_write(p, 0xdeadbeefcafe0000ull, &info) : t_probe_read(p, &v, &info);
	return check_bus(sig, &info, v, write, vw, p, (pid_t)syscall(SYS_gettid), kind, what);
}

static uint64_t expect_data(enum view vw, long w, const char *what)
{
	step(what);
	volatile uint64_t *p = tword(vw, w);
	uint64_t v = 0;
	struct t_sig info;
	int sig = t_probe_read(p, &v, &info);
	EXPECT(sig == 0, "%s: read through the %s gave %s (%s), expected data", what, view_name[vw], strsignal(sig),
	       t_sig_code_name(sig, info.code));
	EXPECT(v == store_word(p, vw), "%s: read %#llx through the %s, the store holds %#llx", what,
	       (unsigned long long)v, view_name[vw], (unsigned long long)store_word(p, vw));
	return v;
}

static void expect_write_ok(long w, uint64_t val, const char *what)
{
	step(what);
	struct t_sig info;
	int sig = t_probe_write(tword(V_RW, w), val, &info);
	EXPECT(sig == 0, "%s: write through the rw-view gave %s (%s)", what, strsignal(sig),
	       t_sig_code_name(sig, info.code));
	step("the write shows through the read-only view");
	uint64_t v = 0;
	sig = t_probe_read(tword(V_RO, w), &v, NULL);
	EXPECT(sig == 0 && v == val, "%s: the ro-view reads %#llx (signal %d), expected %#llx", what,
	       (unsigned long long)v, sig, (unsigned long long)val);
}

static struct vmo_stats stats(void)
{
	struct vmo_stats st;
	EXPECT_EQ(vmo_object_stats(X.obj, &st), 0);
	return st;
}

/* Pages outside the target's 2 MiB reclaim chunk, for the budget to evict
 * the target in their favour. */
static uint64_t other_page(unsigned i)
{
	uint64_t cp = X.pg.ps >= (2u << 20) ? 1 : (2u << 20) / X.pg.ps; /* pages per chunk */
	uint64_t nchunks = X.pg.npg / cp, tchunk = X.pg.target / cp;
	uint64_t c = i % (nchunks - 1), j = (i / (nchunks - 1)) % (cp < 8 ? cp : 8);
	if (c >= tchunk)
		c++;
	return c * cp + j;
}

struct toucher {
	enum view v;
	long w;
	int sig;
	struct t_sig info;
	uint64_t val;
	pid_t tid;
};

static void *touch_thread(void *arg)
{
	struct toucher *t = arg;
	t->tid = (pid_t)syscall(SYS_gettid);
	t->sig = t_probe_read(tword(t->v, t->w), &t->val, &t->info);
	return NULL;
}

/* Several threads touch the failing page at once (all but the last through
 * the view under test): each must get one SIGBUS for its access, and no
 * other.  A worker that finds the page already poisoned by another's fault
 * must not queue a second SIGBUS: it would hit the thread later, anywhere.
 * So each toucher then waits 100 ms for a stray SIGBUS (blocked, caught by
 * sigtimedwait with its si_code and si_addr). */
#define NTOUCH 4
struct ctoucher {
	enum view v;
	long w;
	pthread_barrier_t *bar;
	int sig, stale_sig;
	struct t_sig info, stale;
	uint64_t val, stale_after_ns;
	pid_t tid;
};

static void *ctouch_thread(void *arg)
{
	struct ctoucher *t = arg;
	t->tid = (pid_t)syscall(SYS_gettid);
	pthread_barrier_wait(t->bar);
	t->sig = t_probe_read(tword(t->v, t->w), &t->val, &t->info);
	/* The quiet window: SIGBUS blocked (nothing here touches memory that
	 * could fail), and any that comes is caught with its details. */
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGBUS);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	uint64_t t0 = t_now_ns();
	struct timespec ts = { 0, 100000000 };
	siginfo_t si;
	int r = sigtimedwait(&set, &si, &ts);
	if (r == SIGBUS) {
		t->stale_sig = SIGBUS;
		t->stale = (struct t_sig){ .sig = SIGBUS, .code = si.si_code, .addr = si.si_addr, .tid = t->tid };
		t->stale_after_ns = t_now_ns() - t0;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return NULL;
}

static struct t_sig concurrent_touch(enum view tv, enum view ov, enum kind kind)
{
	pthread_barrier_t bar;
	EXPECT_EQ(pthread_barrier_init(&bar, NULL, NTOUCH), 0);
	struct ctoucher t[NTOUCH];
	pthread_t th[NTOUCH];
	for (int i = 0; i < NTOUCH; i++) {
		t[i] = (struct ctoucher){ .v = i == NTOUCH - 1 ? ov : tv, .w = 16 + 3 * i, .bar = &bar };
		EXPECT_EQ(pthread_create(&th[i], NULL, ctouch_thread, &t[i]), 0);
	}
	step("threads touch the page at once");
	for (int i = 0; i < NTOUCH; i++)
		EXPECT_EQ(pthread_join(th[i], NULL), 0);
	pthread_barrier_destroy(&bar);
	/* Each got SIGBUS, in the page, in itself; then all that is wrong is
	 * reported at once: codes that are not the kernel's poison, stale signals. */
	char what[80], bad[360] = "";
	size_t nb = 0;
	for (int i = 0; i < NTOUCH; i++) {
		snprintf(what, sizeof what, "toucher %d of %d (%s)", i, NTOUCH, view_name[t[i].v]);
		step(what);
		EXPECT(t[i].sig == SIGBUS, "%s: %s, value %#llx, expected SIGBUS", what,
		       t[i].sig ? strsignal(t[i].sig) : "no signal", (unsigned long long)t[i].val);
		struct t_sig si = t[i].info;
		if (kind == K_READ && X.poison && si.code != BUS_ADRERR && si.code != BUS_MCEERR_AR &&
		    nb < sizeof bad)
			nb += (size_t)snprintf(bad + nb, sizeof bad - nb, " %s: si_code %s, not the kernel's poison;", what,
					       t_sig_code_name(SIGBUS, si.code));
		if (t[i].stale_sig && nb < sizeof bad)
			nb += (size_t)snprintf(bad + nb, sizeof bad - nb,
					       " %s: a second %s (%s, si_addr %p) %llu us after its SIGBUS (stale);",
					       what, strsignal(t[i].stale_sig), t_sig_code_name(t[i].stale_sig, t[i].stale.code),
					       t[i].stale.addr, (unsigned long long)(t[i].stale_after_ns / 1000));
	}
	step("the touchers' signals");
	EXPECT(nb == 0, "%s", bad);
	for (int i = 0; i < NTOUCH; i++) {
		snprintf(what, sizeof what, "toucher %d of %d (%s)", i, NTOUCH, view_name[t[i].v]);
		check_bus(t[i].sig, &t[i].info, t[i].val, false, t[i].v, tword(t[i].v, t[i].w), t[i].tid, kind, what);
	}
	return t[0].info;
}

static void *shutdown_thread(void *arg)
{
	return (void *)(intptr_t)vmo_object_shutdown(arg);
}

static void run_case(void *arg)
{
	uint64_t t0 = t_now_ns();
	const struct tcase *c = C = arg;
	signal(SIGALRM, on_alarm);
	step("create the engine");
	struct vmo_engine_opts eo = { .workers = 2, .flags = VMO_ENGINE_NO_PRESSURE };
	int rc = vmo_engine_create(&eo, &X.eng);
	if (rc == -VMO_ENOUFFD) {
		snprintf(RS->msg, sizeof RS->msg, "%s", vmo_last_error_detail());
		_exit(77);
	}
	EXPECT_EQ(rc, 0);
	unsigned feats = RS->feats = vmo_engine_features(X.eng);
	X.poison = feats & VMO_FEAT_POISON;
	if ((c->leave == L_RETURN || c->leave == L_EVICT) &&
	    (feats & (VMO_FEAT_WP | VMO_FEAT_MINOR)) != (VMO_FEAT_WP | VMO_FEAT_MINOR)) {
		snprintf(RS->msg, sizeof RS->msg,
			 "no VMO_FEAT_WP/MINOR: objects are untracked, a page supplied to a writable view stays dirty "
			 "(only a discard drops it)");
		_exit(77);
	}

	/* 3 reclaim chunks (2 MiB each) of small pages, 6 pages of 2 MiB */
	X.pg.ps = c->ps;
	X.size = c->ps >= (2u << 20) ? 6ull * c->ps : 6ull << 20;
	X.pg.npg = X.size / c->ps;
	X.pg.target = 1;
	X.pg.store = malloc(X.size);
	EXPECT(X.pg.store, "no memory");
	for (uint64_t i = 0; i < X.size / 8; i++)
		X.pg.store[i] = t_pattern(i * 8);
	struct vmo_object_opts oo = { .flags = VMO_OBJ_NO_READAHEAD, .page_size = c->ps, .size = X.size };
	if (c->leave == L_EVICT)
		oo.budget = 3ull * c->ps;
	step("create the object");
	rc = vmo_object_create(X.eng, c->unlock ? &ops_wu : &ops_w, &X.pg, &oo, &X.obj);
	if (rc == -EOPNOTSUPP && c->unlock) {
		/* no VMO_FEAT_CONTINUE_WP (or WP, MINOR): no unlock callback */
		if (c->fail == F_UNLOCK) {
			snprintf(RS->msg, sizeof RS->msg, "a pager with unlock is refused here: %s",
				 vmo_last_error_detail());
			_exit(77);
		}
		rc = vmo_object_create(X.eng, &ops_w, &X.pg, &oo, &X.obj);
	}
	EXPECT_EQ(rc, 0);
	void *a = NULL, *b = NULL;
	EXPECT_EQ(vmo_map(X.obj, 0, X.size, VMO_PROT_READ | VMO_PROT_WRITE, &a), 0);
	EXPECT_EQ(vmo_map(X.obj, 0, X.size, VMO_PROT_READ, &b), 0);
	X.view[V_RW] = a;
	X.view[V_RO] = b;
	const uint64_t toff = X.pg.target * c->ps;
	const enum view tv = c->view, ov = c->view == V_RW ? V_RO : V_RW;

	/* 1. In memory, mapped write-protected in the writable view. */
	if (c->leave != L_NONE) {
		expect_data(V_RW, 3, "read the page through the rw-view");
		if (c->hist == H_WRITTEN) {
			expect_write_ok(5, 0x5eed0000ull + c->ps, "write the page through the rw-view");
			step("vmo_sync: clean (and write-protected) again");
			EXPECT_EQ(vmo_sync(X.obj, VMO_WAIT), 0);
			EXPECT_EQ(X.pg.store[toff / 8 + 5], 0x5eed0000ull + c->ps);
			EXPECT_EQ(stats().dirty, 0);
		}
		expect_data(V_RO, 3, "read the page through the ro-view");
	}

	/* 2. Out of memory again. */
	struct vmo_stats s0 = stats();
	switch (c->leave) {
	case L_NONE:
		break;
	case L_DISCARD:
		step("vmo_discard_range");
		EXPECT_EQ(vmo_discard_range(X.obj, toff, c->ps, 0), 0);
		break;
	case L_RETURN:
		step("vmo_return_range");
		EXPECT_EQ(vmo_return_range(X.obj, toff, c->ps, VMO_WAIT), 0);
		break;
	case L_EVICT:
		step("touch other pages until the budget evicts the page");
		for (unsigned i = 0; i < 400 && !atomic_load(&X.pg.evicted); i++) {
			uint64_t op = other_page(i), v = 0;
			volatile uint64_t *p = (volatile uint64_t *)page_in(V_RW, op) + 1;
			int sig = t_probe_read(p, &v, NULL);
			EXPECT(sig == 0 && v == store_word(p, V_RW), "other page %llu: signal %d, value %#llx",
			       (unsigned long long)op, sig, (unsigned long long)v);
		}
		break;
	default:
		break;
	}
	if (c->leave != L_NONE) {
		step("check that the page left memory");
		struct vmo_stats s1 = stats();
		EXPECT(atomic_load(&X.pg.evicted), "notify_evict never named the page (evictions %llu -> %llu)",
		       (unsigned long long)s0.evictions, (unsigned long long)s1.evictions);
		EXPECT(s1.evictions > s0.evictions, "evictions %llu -> %llu", (unsigned long long)s0.evictions,
		       (unsigned long long)s1.evictions);
		if (c->leave != L_EVICT)
			EXPECT_EQ(s1.resident, s0.resident - c->ps);
		else
			EXPECT(s1.resident <= oo.budget, "resident %llu above the budget %llu",
			       (unsigned long long)s1.resident, (unsigned long long)oo.budget);
	}
	unsigned reads0 = atomic_load(&X.pg.target_reads);

	/* 3. The failure, 4. the touch. */
	enum kind kind = c->fail == F_UNLOCK ? K_QUEUED : K_READ;
	struct t_sig first;
	int want_err = 0;
	switch (c->fail) {
	case F_READ:
		atomic_store(&X.pg.read_err, -EIO);
		if (c->touchers > 1)
			first = concurrent_touch(tv, ov, kind);
		else
			first = expect_bus(tv, -3, false, kind, "touch the page: its read fails");
		EXPECT_EQ(atomic_load(&X.pg.target_reads), reads0 + 1);
		want_err = -EIO;
		break;
	case F_SHUTDOWN:
		step("vmo_object_shutdown");
		EXPECT_EQ(vmo_object_shutdown(X.obj), 0);
		if (c->touchers > 1)
			first = concurrent_touch(tv, ov, kind);
		else
			first = expect_bus(tv, -3, false, kind, "touch the page after shutdown");
		EXPECT_EQ(atomic_load(&X.pg.target_reads), reads0);
		break;
	case F_SHUTDOWN_INREAD: {
		atomic_store(&X.pg.read_err, -EIO);
		atomic_store(&X.pg.block, 1);
		struct toucher t1 = { .v = tv, .w = -3 }, t2 = { .v = ov, .w = 7 };
		pthread_t th1, th2, ths;
		step("a thread touches the page; its read blocks");
		EXPECT_EQ(pthread_create(&th1, NULL, touch_thread, &t1), 0);
		while (!atomic_load(&X.pg.in_read))
			usleep(1000);
		step("a second thread touches the page through the other view (parks behind the fill)");
		EXPECT_EQ(pthread_create(&th2, NULL, touch_thread, &t2), 0);
		usleep(20000);
		step("vmo_object_shutdown from a third thread, while the read is in flight");
		EXPECT_EQ(pthread_create(&ths, NULL, shutdown_thread, X.obj), 0);
		usleep(20000); /* let it begin (nothing depends on it) */
		step("release the read (it fails); shutdown returns");
		atomic_store(&X.pg.released, 1);
		void *ret;
		EXPECT_EQ(pthread_join(ths, &ret), 0);
		EXPECT_EQ((intptr_t)ret, 0);
		step("the thread whose read failed");
		EXPECT_EQ(pthread_join(th1, NULL), 0);
		first = check_bus(t1.sig, &t1.info, t1.val, false, tv, tword(tv, -3), t1.tid, kind,
				  "the thread whose read failed during shutdown");
		step("the thread parked behind the fill");
		EXPECT_EQ(pthread_join(th2, NULL), 0);
		/* parked or not, it meets the failed page of a shut-down object */
		check_bus(t2.sig, &t2.info, t2.val, false, ov, tword(ov, 7), t2.tid, kind,
			  "the thread parked behind the failed fill (other view)");
		EXPECT_EQ(atomic_load(&X.pg.target_reads), reads0 + 1);
		want_err = -EIO;
		break;
	}
	case F_UNLOCK:
		atomic_store(&X.pg.writelock, 1);
		atomic_store(&X.pg.unlock_err, -ENOSPC);
		first = expect_bus(V_RW, -3, true, kind, "write the page: unlock refuses");
		EXPECT(atomic_load(&X.pg.unlocks) >= 1, "unlock never asked");
		want_err = -ENOSPC;
		break;
	default:
		abort();
	}
	RS->got_sig = 1;
	RS->code = first.code;
	step("vmo_get_error");
	RS->geterr = vmo_get_error(X.obj, toff + c->ps / 2);
	EXPECT_EQ(RS->geterr, want_err);

	/* 5. Sticky. */
	unsigned reads1 = atomic_load(&X.pg.target_reads);
	if (c->fail != F_UNLOCK) {
		expect_bus(tv, 1, false, kind, "touch again, the same view (sticky)");
		if (tv == V_RW)
			expect_bus(V_RW, 2, true, kind, "write the page (sticky)");
		expect_bus(ov, 4, false, kind, "touch through the other view");
		if (ov == V_RW)
			expect_bus(V_RW, 6, true, kind, "write through the other (rw) view");
		EXPECT_EQ(atomic_load(&X.pg.target_reads), reads1); /* the pager is not asked again */
		EXPECT_EQ(vmo_get_error(X.obj, toff), want_err);
	} else {
		unsigned u = atomic_load(&X.pg.unlocks);
		expect_bus(V_RW, 2, true, kind, "write again: unlock refuses again");
		EXPECT(atomic_load(&X.pg.unlocks) > u, "unlock not asked again");
		EXPECT_EQ(vmo_get_error(X.obj, toff), -ENOSPC);
		expect_data(V_RW, 2, "the refused page reads right through the rw-view");
		expect_data(V_RO, 2, "and through the ro-view");
	}

	/* 6. Recovery (or not, once shut down). */
	switch (c->fail) {
	case F_READ:
		atomic_store(&X.pg.read_err, 0);
		step("vmo_clear_error");
		EXPECT_EQ(vmo_clear_error(X.obj, toff), 0);
		EXPECT_EQ(vmo_get_error(X.obj, toff), 0);
		expect_data(tv, -3, "after clear_error: the data, same view");
		expect_data(ov, -3, "after clear_error: the data, other view");
		if (c->hist == H_WRITTEN && c->leave != L_NONE)
			EXPECT_EQ(*tword(V_RO, 5), 0x5eed0000ull + c->ps);
		expect_write_ok(9, 0x900dull, "after clear_error: write through the rw-view");
		break;
	case F_UNLOCK:
		atomic_store(&X.pg.unlock_err, 0);
		expect_write_ok(-3, 0x900dull, "unlock now allows: write through the rw-view");
		EXPECT_EQ(vmo_get_error(X.obj, toff), 0);
		break;
	default:
		/* shut down: a discard forgets the error, but the page keeps failing */
		step("vmo_discard_range after shutdown");
		EXPECT_EQ(vmo_discard_range(X.obj, toff, c->ps, 0), 0);
		EXPECT_EQ(vmo_get_error(X.obj, toff), 0);
		expect_bus(tv, 11, false, kind, "after shutdown and discard: touch");
		expect_bus(ov, 12, false, kind, "after shutdown and discard: touch through the other view");
		EXPECT_EQ(atomic_load(&X.pg.target_reads), reads1);
		break;
	}
	EXPECT(stats().errors >= (c->fail == F_SHUTDOWN ? 0u : 1u), "errors not counted");

	step("unmap, unref, destroy");
	EXPECT_EQ(vmo_unmap(X.obj, a, X.size), 0);
	EXPECT_EQ(vmo_unmap(X.obj, b, X.size), 0);
	vmo_object_unref(X.obj);
	EXPECT_EQ(vmo_engine_destroy(X.eng), 0);
	free(X.pg.store);
	alarm(0);
	RS->ns = t_now_ns() - t0;
}

/* ---- the parent ------------------------------------------------------------------ */

static const char *size_name(unsigned ps)
{
	return ps == 4096 ? "4k" : ps == 65536 ? "64k" : "2m";
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);

	static struct tcase cases[512];
	int n = 0;
	static const unsigned sizes[] = { 4096, 65536, 2u << 20 };
	for (unsigned si = 0; si < 3; si++)
		for (int l = 0; l < L_N; l++)
			for (int h = 0; h < (l == L_NONE ? 1 : 2); h++)
				for (int f = 0; f < F_N; f++)
					for (int v = 0; v < 2; v++)
						for (int k = 0; k < 2; k++) {
							if (f == F_UNLOCK && v == V_RO)
								continue; /* nothing to write through */
							/* several touchers at once: a failed read or a
							 * shutdown, of a page never in memory or discarded */
							if (k && (f > F_SHUTDOWN || l > L_DISCARD || h != H_READ))
								continue;
							struct tcase *c = &cases[n];
							*c = (struct tcase){ .ps = sizes[si], .leave = l, .hist = h, .fail = f,
									     .view = v, .touchers = k ? NTOUCH : 1 };
							c->unlock = f == F_UNLOCK || (l != L_NONE && h == H_READ);
							snprintf(c->name, sizeof c->name, "%s/%s%s%s/%s/%s%s", size_name(c->ps),
								 leave_name[l], l == L_NONE ? "" : "-after-",
								 l == L_NONE ? "" : hist_name[h], fail_name[f], view_name[v],
								 k ? "/" STR(NTOUCH) "-threads" : "");
							n++;
						}
	/* --list, and the cases named (tests/README.md) */
	static const char *names[512];
	static bool sel[512];
	for (int k = 0; k < n; k++)
		names[k] = cases[k].name;
	t_select(argc, argv, names, (size_t)n, sel);
	int kept = 0;
	for (int k = 0; k < n; k++)
		if (sel[k])
			cases[kept++] = cases[k];
	n = kept;

	t_require_uffd();
	unsigned feats;
	{
		struct vmo_engine *e = t_engine(1);
		feats = vmo_engine_features(e);
		CHECK_OK(vmo_engine_destroy(e));
	}
	printf("engine: POISON %s, WP %s, MINOR %s\n", feats & VMO_FEAT_POISON ? "yes" : "no",
	       feats & VMO_FEAT_WP ? "yes" : "no", feats & VMO_FEAT_MINOR ? "yes" : "no");

	struct result *res = mmap(NULL, sizeof(struct result) * (size_t)n, PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(res != MAP_FAILED);
	memset(res, 0, sizeof(struct result) * (size_t)n);
	int jobs = 6;
	if (getenv("VMO_FP_JOBS") && atoi(getenv("VMO_FP_JOBS")) > 0)
		jobs = atoi(getenv("VMO_FP_JOBS"));
	if (jobs > 64)
		jobs = 64;
	pid_t pids[64];
	int who[64];
	uint64_t started[64];
	int running = 0, next = 0, passed = 0, failed = 0, hung = 0, skipped = 0;
	int status[512];
	uint64_t wall[512];
	uint64_t t0 = t_now_ns();
	while (next < n || running) {
		while (running < jobs && next < n) {
			RS = &res[next];
			pids[running] = t_fork_start(run_case, &cases[next]);
			who[running] = next;
			started[running] = t_now_ns();
			running++;
			next++;
		}
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG);
		if (pid < 0)
			CHECK(errno == EINTR);
		if (pid <= 0) {
			for (int i = 0; i < running; i++)
				if (t_now_ns() - started[i] > WATCHDOG_S * 1000000000ull)
					kill(pids[i], SIGKILL); /* reported as killed */
			usleep(2000);
			continue;
		}
		int i = 0;
		while (i < running && pids[i] != pid)
			i++;
		CHECK(i < running);
		int k = who[i];
		status[k] = st;
		wall[k] = t_now_ns() - started[i];
		running--;
		pids[i] = pids[running];
		who[i] = who[running];
		started[i] = started[running];

		const struct tcase *c = &cases[k];
		const struct result *r = &res[k];
		char what[900];
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
			passed++;
			snprintf(what, sizeof what, "case %s: ok (%s %s, get_error %d, %llu ms)", c->name,
				 kind_name[c->fail], t_sig_code_name(SIGBUS, r->code), r->geterr,
				 (unsigned long long)(wall[k] / 1000000));
		} else if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
			skipped++;
			snprintf(what, sizeof what, "case %s: skipped (%s)", c->name, r->msg);
		} else if (WIFEXITED(st) && WEXITSTATUS(st) == 3) {
			failed++;
			hung++;
			snprintf(what, sizeof what, "case %s: FAILED (HANG: no answer within %d s at step '%s')", c->name,
				 HANG_S, r->step);
		} else if (WIFEXITED(st)) {
			failed++;
			snprintf(what, sizeof what, "case %s: FAILED (at step '%s': %s)", c->name, r->step, r->msg);
		} else {
			failed++;
			snprintf(what, sizeof what, "case %s: FAILED (killed by %s at step '%s'%s)", c->name,
				 strsignal(WTERMSIG(st)), r->step,
				 WTERMSIG(st) == SIGKILL ? "; the watchdog: a hang the alarm did not end" : "");
		}
		printf("%s\n", what);
	}
	uint64_t total_ms = (t_now_ns() - t0) / 1000000;

	/* The si_codes seen, once per kind of failure. */
	for (int f = 0; f < F_N; f++) {
		int codes[8], counts[8], nc = 0;
		for (int k = 0; k < n; k++) {
			if ((int)cases[k].fail != f || !res[k].got_sig)
				continue;
			int j = 0;
			while (j < nc && codes[j] != res[k].code)
				j++;
			if (j == nc && nc < 8) {
				codes[nc] = res[k].code;
				counts[nc++] = 0;
			}
			if (j < nc)
				counts[j]++;
		}
		for (int j = 0; j < nc; j++)
			printf("%s: si_code %s (%s), %d case(s)\n", kind_name[f], t_sig_code_name(SIGBUS, codes[j]),
			       codes[j] == SI_QUEUE ? "queued by vmo" : "kernel poison", counts[j]);
	}
	uint64_t slowest = 0;
	int slow_k = 0;
	for (int k = 0; k < n; k++)
		if (WIFEXITED(status[k]) && WEXITSTATUS(status[k]) == 0 && wall[k] > slowest) {
			slowest = wall[k];
			slow_k = k;
		}
	printf("%d cases: %d passed, %d failed (%d hung), %d skipped; %llu ms with %d at once; slowest passing: "
	       "%s, %llu ms\n",
	       n, passed, failed, hung, skipped, (unsigned long long)total_ms, jobs, passed ? cases[slow_k].name : "-",
	       (unsigned long long)(slowest / 1000000));
	if (failed) {
		printf("FAILED:\n");
		for (int k = 0; k < n; k++)
			if (!(WIFEXITED(status[k]) && (WEXITSTATUS(status[k]) == 0 || WEXITSTATUS(status[k]) == 77)))
				printf("  %s%s\n", cases[k].name,
				       WIFEXITED(status[k]) && WEXITSTATUS(status[k]) == 3 ? " (hang)" : "");
		return 1;
	}
	if (passed == 0)
		t_skip("no case could run");
	printf("ok\n");
	return 0;
}
