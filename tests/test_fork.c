/* test_fork: a child never reads silent zeros from a pager-backed region.
 * vmo's documented behaviour is MADV_DONTFORK: the child has no mapping
 * there, so touching a mapped-but-never-touched page, an already-touched
 * page, or writing one kills the child by SIGSEGV (or its handler sees
 * SEGV_MAPERR at that address, and mincore says ENOMEM); the parent's data is
 * intact afterwards and its untouched pages still come from the pager. */
#include "helper.h"

#include <errno.h>
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

int main(int argc, char **argv)
{
	return t_main(argc, argv, T_CASES({ "dontfork", case_dontfork }));
}
