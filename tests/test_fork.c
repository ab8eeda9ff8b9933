/* SPDX-License-Identifier: MIT */
/* test_fork: what a child made by fork() gets of a view.
 *  - dontfork: by default nothing (MADV_DONTFORK), never silent zeros:
 *    touching a mapped-but-never-touched page, an already-touched page, or
 *    writing one kills the child by SIGSEGV (or its handler sees SEGV_MAPERR
 *    at that address, and mincore says ENOMEM); the parent's data is intact
 *    afterwards and its untouched pages still come from the pager;
 *  - copy: VMO_INHERIT_COPY: the child reads the parent's data as of the
 *    fork (pages dirty, clean and never touched), and neither side sees the
 *    other's later writes, with two parent threads writing while the child
 *    reads; a grandchild has nothing there; after the child exits the
 *    engine is destroyed without -EBUSY (the clone went with the child);
 *  - share: VMO_INHERIT_SHARE: each side sees the other's writes, and the
 *    child's writes reach the pager (vmo_sync in the parent);
 *  - parent_killed: the parent dies while the child runs: the child still
 *    reads and writes the pages it had, and a page it never had is SIGBUS
 *    (never zeros, never a hang);
 *  - mixed: two views of one object, one shared and one copied: the
 *    child's writes through the shared one reach the parent, through the
 *    copied one never;
 *  - destroy_busy: vmo_engine_destroy while the program still holds the
 *    object is -EBUSY and changes nothing: the running child is still
 *    served, a later child still inherits; once the program lets go, the
 *    destroy succeeds with a child still running;
 *  - refused: vmo_inherit's bad arguments, and COPY of an object that does
 *    not track writes. */
#include "helper.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096u
#define NPG 16

static _Atomic uint32_t reads[NPG];

static int cnt_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	(void)ctx;
	(void)flags;
	uint64_t *w = buf;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = t_pattern(off + i * 8);
	for (uint64_t pg = off / PG; pg < (off + len) / PG; pg++)
		atomic_fetch_add(&reads[pg], 1);
	return 0;
}

static const struct vmo_pager_ops cnt_ops = { .read = cnt_read };

struct touch {
	volatile uint64_t *p;
	bool write;
	bool handler;
};

static volatile uint64_t *expect_addr;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	/* 100: SIGSEGV, unmapped, at the address touched; 101: wrong details */
	if (sig == SIGSEGV && si->si_code == SEGV_MAPERR && si->si_addr == (void *)expect_addr)
		_exit(100);
	_exit(101);
}

/* In the child: exit codes 10/11 mean the child READ something (zeros / data). */
static void child_touch(void *arg)
{
	struct touch *t = arg;
	alarm(10); /* a child that hangs on the fault dies by SIGALRM: a failure */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	if (t->handler) {
		sa.sa_sigaction = on_segv;
		sa.sa_flags = SA_SIGINFO;
	} else {
		sa.sa_handler = SIG_DFL; /* also replaces a sanitizer's handler */
	}
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	expect_addr = t->p;
	if (t->handler) {
		/* nothing is mapped there in the child */
		unsigned char vec;
		void *pa = (void *)((uintptr_t)t->p & ~(uintptr_t)(PG - 1));
		if (mincore(pa, PG, &vec) == 0 || errno != ENOMEM)
			_exit(102);
	}
	if (t->write) {
		*t->p = 0x5555;
		_exit(12);
	}
	uint64_t v = *t->p;
	_exit(v == 0 ? 10 : 11);
}

static void expect_child_segv(volatile uint64_t *p, bool write, bool handler)
{
	struct touch t = { p, write, handler };
	int st = t_fork_run(child_touch, &t);
	if (handler) {
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 100) {
			fprintf(stderr, "child (handler, %s %p): status %#x (exit %d): %s\n", write ? "write" : "read",
				(void *)p, st, WIFEXITED(st) ? WEXITSTATUS(st) : -1,
				WIFEXITED(st) && WEXITSTATUS(st) == 10 ? "READ SILENT ZEROS" : "");
			abort();
		}
	} else {
		if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSEGV) {
			fprintf(stderr, "child (%s %p): status %#x: %s\n", write ? "write" : "read", (void *)p, st,
				WIFEXITED(st) && WEXITSTATUS(st) == 10 ? "READ SILENT ZEROS" : "not killed by SIGSEGV");
			abort();
		}
	}
}

static void case_dontfork(void)
{
	alarm(60);
	setvbuf(stdout, NULL, _IONBF, 0);
	struct vmo_engine *eng = t_engine(2);
	struct vmo_object_opts oo = { .flags = VMO_OBJ_NO_READAHEAD, .size = NPG * PG };
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, &cnt_ops, NULL, &oo, &obj));
	void *a = NULL, *b = NULL;
	CHECK_OK(vmo_map(obj, 0, NPG * PG, VMO_PROT_READ | VMO_PROT_WRITE, &a));
	CHECK_OK(vmo_map(obj, 4 * PG, 8 * PG, VMO_PROT_READ, &b)); /* pages 4..11 */
	volatile uint64_t *pa = a, *pb = b;
	const size_t W = PG / 8;

	/* the parent touches pages 0..5 and writes page 1 */
	for (uint64_t pg = 0; pg < 6; pg++)
		CHECK_EQ(pa[pg * W + 2], t_pattern(pg * PG + 16));
	pa[1 * W + 3] = 0xfeed;
	CHECK_EQ(pb[1 * W + 2], t_pattern(5 * PG + 16)); /* object page 5 via b */

	/* children: never-touched page, touched page, written page, a write, and
	 * through the read-only view; killed by SIGSEGV, or the handler sees it */
	for (int h = 0; h < 2; h++) {
		bool handler = h == 1;
		expect_child_segv(&pa[9 * W], false, handler);     /* never touched */
		expect_child_segv(&pa[0 * W + 2], false, handler); /* touched */
		expect_child_segv(&pa[1 * W + 3], false, handler); /* written */
		expect_child_segv(&pa[2 * W], true, handler);      /* a write */
		expect_child_segv(&pb[1 * W], false, handler);     /* touched, ro view */
		expect_child_segv(&pb[6 * W], false, handler);     /* page 10, never touched */
	}
	printf("12 children died by SIGSEGV / saw SEGV_MAPERR; none read zeros\n");

	/* the parent: data intact, the child's write went nowhere */
	for (uint64_t pg = 0; pg < 6; pg++)
		for (size_t w = 0; w < W; w++) {
			uint64_t want = (pg == 1 && w == 3) ? 0xfeed : t_pattern(pg * PG + w * 8);
			CHECK_EQ(pa[pg * W + w], want);
		}
	for (uint64_t pg = 0; pg < 6; pg++)
		CHECK_EQ(atomic_load(&reads[pg]), 1);
	for (uint64_t pg = 6; pg < NPG; pg++)
		CHECK_EQ(atomic_load(&reads[pg]), 0); /* no child bypassed or used the pager */
	/* untouched pages still come from the pager, with the right data */
	for (uint64_t pg = 6; pg < NPG; pg++) {
		CHECK_EQ(pa[pg * W + 7], t_pattern(pg * PG + 56));
		CHECK_EQ(atomic_load(&reads[pg]), 1);
	}
	CHECK_EQ(pb[6 * W + 7], t_pattern(10 * PG + 56));
	CHECK_EQ(atomic_load(&reads[10]), 1);

	/* a fork after everything is in memory: the child still has nothing there */
	expect_child_segv(&pa[12 * W], false, false);

	CHECK_OK(vmo_unmap(obj, a, NPG * PG));
	CHECK_OK(vmo_unmap(obj, b, 8 * PG));
	vmo_object_unref(obj);
	CHECK_OK(vmo_engine_destroy(eng));
}

/* ---- inheritance ---------------------------------------------------------------- */

#define IPG 64u
#define ISIZE ((uint64_t)IPG * PG)

static uint64_t before(uint64_t pg) { return 0xb4f0000000000000ull | pg; }
static uint64_t after_parent(uint64_t pg, uint64_t n) { return 0xa0000000000000ull | n << 16 | pg; }
static uint64_t by_child(uint64_t pg) { return 0xc1c1000000000000ull | pg; }

static void say(int fd, char c) { CHECK(write(fd, &c, 1) == 1); }
static char hear(int fd)
{
	char c = 0;
	ssize_t n;
	while ((n = read(fd, &c, 1)) < 0 && errno == EINTR)
		;
	return n == 1 ? c : 0;
}

/* Object page pg as of the fork, in case copy: pages pg%4==1 were written
 * (dirty), pg%4==2 read (clean), the others never touched (the pager's). */
static uint64_t at_fork(struct t_store *s, uint64_t pg)
{
	(void)s;
	return pg % 4 == 1 ? before(pg) : t_pattern(pg * PG + 8);
}

static void need_inherit(struct vmo_engine *eng, bool copy)
{
	t_require_features(eng, copy ? VMO_FEAT_WP | VMO_FEAT_CONTINUE_WP : 0);
}

struct pwriter {
	volatile uint64_t *v;
	unsigned first;
	_Atomic int *stop;
	_Atomic uint64_t n;
};

static void *pwriter_main(void *arg)
{
	struct pwriter *w = arg;
	while (!atomic_load(w->stop))
		for (uint64_t pg = w->first; pg < IPG && !atomic_load(w->stop); pg += 2)
			w->v[pg * PG / 8 + 1] = after_parent(pg, atomic_fetch_add(&w->n, 1) + 1);
	return NULL;
}

static void case_copy(void)
{
	alarm(120);
	struct vmo_engine *eng = t_engine(2);
	need_inherit(eng, true);
	struct t_store *s = t_store_new(ISIZE, 1);
	struct vmo_object_opts oo = { .size = ISIZE };
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, &t_store_ops, s, &oo, &obj));
	volatile uint64_t *v;
	CHECK_OK(vmo_map(obj, 0, ISIZE, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	for (uint64_t pg = 0; pg < IPG; pg++) {
		if (pg % 4 == 1)
			v[pg * PG / 8 + 1] = before(pg);
		else if (pg % 4 == 2)
			CHECK_EQ(v[pg * PG / 8 + 1], t_pattern(pg * PG + 8));
	}
	CHECK_OK(vmo_inherit(obj, (void *)v, ISIZE, VMO_INHERIT_COPY));
	int up[2], down[2]; /* child -> parent, parent -> child */
	CHECK(pipe(up) == 0 && pipe(down) == 0);
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		alarm(60);
		close(up[0]);
		close(down[1]);
		/* half the pages read now, as of the fork */
		for (uint64_t pg = 0; pg < IPG; pg += 2)
			if (v[pg * PG / 8 + 1] != at_fork(s, pg))
				_exit(20);
		say(up[1], 'r');
		if (hear(down[0]) != 'w') /* the parent wrote every page (two threads) */
			_exit(21);
		/* the other half first read now, and the first half again: as of the fork */
		for (uint64_t pg = 0; pg < IPG; pg++)
			if (v[pg * PG / 8 + 1] != at_fork(s, pg))
				_exit(22);
		for (uint64_t pg = 0; pg < IPG; pg++)
			v[pg * PG / 8 + 2] = by_child(pg);
		for (uint64_t pg = 0; pg < IPG; pg++)
			if (v[pg * PG / 8 + 2] != by_child(pg) || v[pg * PG / 8 + 1] != at_fork(s, pg))
				_exit(23);
		/* a grandchild has nothing there */
		pid_t g = fork();
		if (g == 0) {
			signal(SIGSEGV, SIG_DFL);
			(void)v[5];
			_exit(24);
		}
		int st;
		if (g < 0 || waitpid(g, &st, 0) != g || !WIFSIGNALED(st) || WTERMSIG(st) != SIGSEGV)
			_exit(25);
		say(up[1], 'd');
		if (hear(down[0]) != 'c') /* the parent checked it does not see ours */
			_exit(26);
		for (uint64_t pg = 0; pg < IPG; pg++)
			if (v[pg * PG / 8 + 2] != by_child(pg) || v[pg * PG / 8 + 1] != at_fork(s, pg))
				_exit(27);
		_exit(0);
	}
	close(up[1]);
	close(down[0]);
	CHECK_EQ(hear(up[0]), 'r');
	_Atomic int stop = 0;
	struct pwriter w[2] = { { v, 0, &stop, 0 }, { v, 1, &stop, 0 } };
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&th[i], NULL, pwriter_main, &w[i]) == 0);
	while (atomic_load(&w[0].n) < 4 * IPG || atomic_load(&w[1].n) < 4 * IPG)
		usleep(1000);
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	say(down[1], 'w');
	CHECK_EQ(hear(up[0]), 'd');
	for (uint64_t pg = 0; pg < IPG; pg++) {
		CHECK(v[pg * PG / 8 + 1] != at_fork(s, pg)); /* ours, not the fork's */
		CHECK_EQ(v[pg * PG / 8 + 2], t_pattern(pg * PG + 16)); /* never the child's */
	}
	say(down[1], 'c');
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "child: status %#x (exit %d)\n", st, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		abort();
	}
	printf("child read the fork's data, kept its writes; the parent kept its own\n");
	CHECK_OK(vmo_sync(obj, VMO_WAIT));
	for (uint64_t pg = 0; pg < IPG; pg++)
		CHECK_EQ(s->data[pg * PG / 8 + 2], t_pattern(pg * PG + 16)); /* the child's writes never reached the pager */
	CHECK_OK(vmo_unmap(obj, (void *)v, ISIZE));
	vmo_object_unref(obj);
	CHECK_OK(vmo_engine_destroy(eng)); /* the child's clone is gone with it */
	t_store_free(s);
	close(up[0]);
	close(down[1]);
}

static void case_share(void)
{
	alarm(120);
	struct vmo_engine *eng = t_engine(2);
	struct t_store *s = t_store_new(ISIZE, 1);
	struct vmo_object_opts oo = { .size = ISIZE };
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, &t_store_ops, s, &oo, &obj));
	volatile uint64_t *v;
	CHECK_OK(vmo_map(obj, 0, ISIZE, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	for (uint64_t pg = 0; pg < IPG; pg += 3)
		v[pg * PG / 8 + 1] = before(pg);
	CHECK_OK(vmo_inherit(obj, (void *)v, ISIZE, VMO_INHERIT_SHARE));
	int up[2], down[2];
	CHECK(pipe(up) == 0 && pipe(down) == 0);
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		alarm(60);
		for (uint64_t pg = 0; pg < IPG; pg++)
			if (v[pg * PG / 8 + 1] != (pg % 3 ? t_pattern(pg * PG + 8) : before(pg)))
				_exit(30);
		for (uint64_t pg = 0; pg < IPG; pg++)
			v[pg * PG / 8 + 2] = by_child(pg);
		say(up[1], 'w');
		if (hear(down[0]) != 'p')
			_exit(31);
		for (uint64_t pg = 0; pg < IPG; pg++)
			if (v[pg * PG / 8 + 3] != after_parent(pg, 7))
				_exit(32);
		_exit(0);
	}
	CHECK_EQ(hear(up[0]), 'w');
	for (uint64_t pg = 0; pg < IPG; pg++) {
		CHECK_EQ(v[pg * PG / 8 + 2], by_child(pg));
		v[pg * PG / 8 + 3] = after_parent(pg, 7);
	}
	say(down[1], 'p');
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "child: status %#x (exit %d)\n", st, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		abort();
	}
	CHECK_OK(vmo_sync(obj, VMO_WAIT));
	for (uint64_t pg = 0; pg < IPG; pg++)
		CHECK_EQ(s->data[pg * PG / 8 + 2], by_child(pg)); /* the child's writes were written back */
	printf("each side saw the other's writes; the child's reached the pager\n");
	CHECK_OK(vmo_unmap(obj, (void *)v, ISIZE));
	vmo_object_unref(obj);
	CHECK_OK(vmo_engine_destroy(eng));
	t_store_free(s);
	for (int i = 0; i < 2; i++) {
		close(up[i]);
		close(down[i]);
	}
}

static volatile uint64_t *bus_at;
static int report_fd = -1;

static void on_bus(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	char c = (sig == SIGBUS && si->si_addr == (void *)bus_at) ? 'B' : 'x';
	if (write(report_fd, &c, 1) < 0)
		_exit(3);
	_exit(0);
}

/* The middle process: an engine, an object, a child with a copy; it dies
 * once the child has read its first pages. */
static void parent_killed_mid(void *arg)
{
	int report = *(int *)arg;
	alarm(60);
	struct vmo_engine *eng = t_engine(2);
	struct t_store *s = t_store_new(ISIZE, 1);
	struct vmo_object_opts oo = { .size = ISIZE };
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, &t_store_ops, s, &oo, &obj));
	volatile uint64_t *v;
	CHECK_OK(vmo_map(obj, 0, ISIZE, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	v[1] = before(0);
	CHECK_OK(vmo_inherit(obj, (void *)v, ISIZE, VMO_INHERIT_COPY));
	int up[2];
	CHECK(pipe(up) == 0);
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		alarm(60);
		close(up[0]);
		/* pages 0..3 in this child's memory; 4.. never */
		for (uint64_t pg = 0; pg < 4; pg++)
			if (v[pg * PG / 8 + 1] != (pg ? t_pattern(pg * PG + 8) : before(0)))
				_exit(40);
		v[2 * PG / 8 + 5] = by_child(2);
		pid_t pp = getppid();
		say(up[1], 'r');
		while (getppid() == pp) /* until the parent is gone (reparented after its files closed) */
			usleep(1000);
		char c = 'k';
		for (uint64_t pg = 0; pg < 4; pg++)
			if (v[pg * PG / 8 + 1] != (pg ? t_pattern(pg * PG + 8) : before(0)))
				c = 'z';
		if (v[2 * PG / 8 + 5] != by_child(2))
			c = 'y';
		v[3 * PG / 8 + 5] = by_child(3); /* writable still */
		if (v[3 * PG / 8 + 5] != by_child(3))
			c = 'w';
		CHECK(write(report, &c, 1) == 1);
		report_fd = report;
		bus_at = &v[9 * PG / 8];
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_sigaction = on_bus;
		sa.sa_flags = SA_SIGINFO;
		sigaction(SIGBUS, &sa, NULL);
		sigaction(SIGSEGV, &sa, NULL);
		uint64_t x = *bus_at; /* never supplied: SIGBUS, not zeros, not a hang */
		c = x == 0 ? '0' : 'd';
		CHECK(write(report, &c, 1) == 1);
		_exit(0);
	}
	close(up[1]);
	CHECK_EQ(hear(up[0]), 'r');
	kill(getpid(), SIGKILL);
}

static void case_parent_killed(void)
{
	alarm(120);
	struct vmo_engine *probe = t_engine(1);
	need_inherit(probe, true);
	CHECK_OK(vmo_engine_destroy(probe));
	int rp[2];
	CHECK(pipe(rp) == 0);
	int st = t_fork_run(parent_killed_mid, &rp[1]);
	close(rp[1]);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	char got[3] = { 0 };
	got[0] = hear(rp[0]);
	got[1] = hear(rp[0]);
	close(rp[0]);
	if (strcmp(got, "kB") != 0) {
		fprintf(stderr, "orphaned child reported \"%s\" (want \"kB\": its pages kept, SIGBUS on a page it never "
				"had; 'z'/'y'/'w' its data lost, '0' a zero page, nothing: it hung or died)\n",
			got);
		abort();
	}
	printf("orphaned child kept its pages and got SIGBUS on one it never had\n");
}

static void case_mixed(void)
{
	alarm(120);
	struct vmo_engine *eng = t_engine(2);
	need_inherit(eng, true);
	struct t_store *s = t_store_new(ISIZE, 1);
	struct vmo_object_opts oo = { .size = ISIZE };
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, &t_store_ops, s, &oo, &obj));
	volatile uint64_t *a, *b;
	CHECK_OK(vmo_map(obj, 0, ISIZE, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&a));
	CHECK_OK(vmo_map(obj, 0, ISIZE, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&b));
	CHECK_OK(vmo_inherit(obj, (void *)a, ISIZE, VMO_INHERIT_SHARE));
	CHECK_OK(vmo_inherit(obj, (void *)b, ISIZE, VMO_INHERIT_COPY));
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		alarm(60);
		a[1] = by_child(0);           /* shared: the parent sees it */
		b[PG / 8 + 1] = by_child(1);  /* copied: it does not */
		if (b[1] != t_pattern(8))     /* the copy is as of the fork */
			_exit(50);
		_exit(a[1] == by_child(0) && b[PG / 8 + 1] == by_child(1) ? 0 : 51);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK_EQ(a[1], by_child(0));
	CHECK_EQ(b[1], by_child(0));
	CHECK_EQ(a[PG / 8 + 1], t_pattern(PG + 8));
	CHECK_OK(vmo_unmap(obj, (void *)a, ISIZE));
	CHECK_OK(vmo_unmap(obj, (void *)b, ISIZE));
	vmo_object_unref(obj);
	CHECK_OK(vmo_engine_destroy(eng));
	t_store_free(s);
}

static void case_destroy_busy(void)
{
	alarm(120);
	struct vmo_engine *eng = t_engine(2);
	struct t_store *s = t_store_new(ISIZE, 1);
	struct vmo_object_opts oo = { .size = ISIZE };
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, &t_store_ops, s, &oo, &obj));
	volatile uint64_t *v;
	CHECK_OK(vmo_map(obj, 0, ISIZE, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	CHECK_OK(vmo_inherit(obj, (void *)v, ISIZE, VMO_INHERIT_SHARE));
	int up[2], down[2];
	CHECK(pipe(up) == 0 && pipe(down) == 0);
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		alarm(60);
		if (v[1] != t_pattern(8))
			_exit(60);
		say(up[1], 'r');
		if (hear(down[0]) != 'b')
			_exit(61);
		/* after the -EBUSY: still served (a page never touched) */
		if (v[5 * PG / 8 + 1] != t_pattern(5 * PG + 8))
			_exit(62);
		say(up[1], 's');
		if (hear(down[0]) != 'g') /* the engine is gone: what we had stays */
			_exit(63);
		if (v[1] != t_pattern(8) || v[5 * PG / 8 + 1] != t_pattern(5 * PG + 8))
			_exit(64);
		_exit(0);
	}
	CHECK_EQ(hear(up[0]), 'r');
	CHECK_EQ(vmo_engine_destroy(eng), -EBUSY);
	say(down[1], 'b');
	CHECK_EQ(hear(up[0]), 's');
	/* a later child still inherits */
	fflush(NULL);
	pid_t p2 = fork();
	CHECK(p2 >= 0);
	if (p2 == 0) {
		alarm(60);
		_exit(v[7 * PG / 8 + 1] == t_pattern(7 * PG + 8) ? 0 : 65);
	}
	int st;
	CHECK(waitpid(p2, &st, 0) == p2);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK_OK(vmo_unmap(obj, (void *)v, ISIZE));
	vmo_object_unref(obj); /* only the first child keeps it now */
	CHECK_OK(vmo_engine_destroy(eng));
	say(down[1], 'g');
	CHECK(waitpid(pid, &st, 0) == pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "child: status %#x (exit %d)\n", st, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		abort();
	}
	t_store_free(s);
	for (int i = 0; i < 2; i++) {
		close(up[i]);
		close(down[i]);
	}
}

static void case_refused(void)
{
	struct vmo_engine *eng = t_engine(1);
	struct vmo_object_opts oo = { .size = 4 * PG };
	struct vmo_object *ro, *rw;
	struct t_store *s = t_store_new(4 * PG, 1);
	CHECK_OK(vmo_object_create(eng, &cnt_ops, NULL, &oo, &ro));
	CHECK_OK(vmo_object_create(eng, &t_store_ops, s, &oo, &rw));
	void *a, *b;
	CHECK_OK(vmo_map(ro, 0, 4 * PG, VMO_PROT_READ, &a));
	CHECK_OK(vmo_map(rw, 0, 4 * PG, VMO_PROT_READ | VMO_PROT_WRITE, &b));
	CHECK_EQ(vmo_inherit(NULL, a, 4 * PG, VMO_INHERIT_SHARE), -EINVAL);
	CHECK_EQ(vmo_inherit(ro, a, 4 * PG, 7), -EINVAL);
	CHECK_EQ(vmo_inherit(ro, a, 2 * PG, VMO_INHERIT_SHARE), -EINVAL); /* not the whole mapping */
	CHECK_EQ(vmo_inherit(ro, b, 4 * PG, VMO_INHERIT_SHARE), -EINVAL); /* another object's */
	CHECK_EQ(vmo_inherit(ro, (char *)a + PG, 3 * PG, VMO_INHERIT_SHARE), -EINVAL);
	CHECK_EQ(vmo_inherit(ro, a, 4 * PG, VMO_INHERIT_COPY), -EOPNOTSUPP); /* no write callback */
	CHECK_OK(vmo_inherit(ro, a, 4 * PG, VMO_INHERIT_SHARE));
	CHECK_OK(vmo_inherit(ro, a, 4 * PG, VMO_INHERIT_NONE));
	CHECK_OK(vmo_unmap(ro, a, 4 * PG));
	CHECK_EQ(vmo_inherit(ro, a, 4 * PG, VMO_INHERIT_SHARE), -EINVAL); /* unmapped */
	CHECK_OK(vmo_unmap(rw, b, 4 * PG));
	vmo_object_unref(ro);
	vmo_object_unref(rw);
	CHECK_OK(vmo_engine_destroy(eng));
	t_store_free(s);
}

int main(int argc, char **argv)
{
	return t_main(argc, argv,
		      T_CASES({ "dontfork", case_dontfork }, { "copy", case_copy }, { "share", case_share },
			      { "parent_killed", case_parent_killed }, { "mixed", case_mixed },
			      { "destroy_busy", case_destroy_busy }, { "refused", case_refused }));
}
