/* SPDX-License-Identifier: MIT */
/* test_selfserve: self-service faults (VMO_ENGINE_SELF_SERVICE).
 *
 * The faulting thread serves its own fault in vmo's SIGBUS handler when the
 * object's pager is declared async-signal-safe (VMO_OBJ_SIGNAL_SAFE); the
 * faults of other objects are handed to a thread of vmo's.  The cases check
 * who ran the pager's callbacks, the data, write tracking and writeback, a
 * pager's errors (SIGBUS at the address, vmo_get_error), what system calls
 * see (EFAULT), signals that are not vmo's reaching the program's handler,
 * many threads on the same pages, and vmo_engine_inhibit. */
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PS 4096u
#define NPG 256

/* A memory pager that records which threads ran its callbacks. */
struct rec {
	uint64_t *data;
	_Atomic pid_t reader;      /* the last reader's thread */
	_Atomic long reads, foreign_reads, writes, unlocks;
	pid_t main_tid;
	_Atomic int fail_pg;       /* read of this page: -EIO (-1: none) */
	_Atomic int refuse_unlock; /* unlock answers this (0: yes) */
};

static pid_t gettid_(void)
{
	return (pid_t)syscall(SYS_gettid);
}

static int rec_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct rec *r = ctx;
	pid_t me = gettid_();
	atomic_store(&r->reader, me);
	atomic_fetch_add(&r->reads, (long)(len / PS));
	if (me != r->main_tid)
		atomic_fetch_add(&r->foreign_reads, (long)(len / PS));
	int f = atomic_load(&r->fail_pg);
	if (f >= 0 && (uint64_t)f * PS >= off && (uint64_t)f * PS < off + len)
		return -EIO;
	memcpy(buf, (char *)r->data + off, len);
	*flags = VMO_READ_WRITELOCK;
	return 0;
}

static int rec_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct rec *r = ctx;
	atomic_fetch_add(&r->writes, (long)(len / PS));
	memcpy((char *)r->data + off, buf, len);
	return 0;
}

static int rec_unlock(void *ctx, uint64_t off, size_t len)
{
	struct rec *r = ctx;
	(void)off, (void)len;
	atomic_fetch_add(&r->unlocks, 1);
	return atomic_load(&r->refuse_unlock);
}

static const struct vmo_pager_ops rec_ops = { .read = rec_read, .write = rec_write, .unlock = rec_unlock };
static const struct vmo_pager_ops rec_ro_ops = { .read = rec_read };

static struct rec *rec_new(void)
{
	struct rec *r = calloc(1, sizeof *r);
	CHECK(r);
	r->data = malloc((size_t)NPG * PS);
	CHECK(r->data);
	for (size_t i = 0; i < (size_t)NPG * PS / 8; i++)
		r->data[i] = t_pattern(i * 8);
	r->main_tid = gettid_();
	r->fail_pg = -1;
	return r;
}

static void rec_free(struct rec *r)
{
	free(r->data);
	free(r);
}

/* A self-service engine, or a skip where the kernel or the machine has none. */
static struct vmo_engine *ss_engine(void)
{
	struct vmo_engine *eng;
	struct vmo_engine_opts eo = { .flags = VMO_ENGINE_SELF_SERVICE };
	t_require_uffd();
	int rc = vmo_engine_create(&eo, &eng);
	if (rc == -EOPNOTSUPP)
		t_skip_case("no self-service faults here: %s", vmo_last_error_detail());
	CHECK_OK(rc);
	CHECK(vmo_engine_features(eng) & VMO_FEAT_SIGBUS);
	/* a system call cannot wait for a self-service fault */
	CHECK(!(vmo_engine_features(eng) & VMO_FEAT_KERNEL_FAULTS));
	return eng;
}

static uint64_t word(const void *base, size_t pg, size_t i)
{
	return ((const volatile uint64_t *)((const char *)base + pg * PS))[i];
}

static void check_page(const void *base, size_t pg)
{
	for (size_t i = 0; i < PS / 8; i += 61)
		CHECK_EQ(word(base, pg, i), t_pattern(pg * PS + i * 8));
}

/* An engine, a recording pager's object of NPG pages, and one view of it. */
struct fx {
	struct vmo_engine *eng;
	struct rec *r;
	struct vmo_object *o;
	char *p;
};

static void fx_open(struct fx *x, const struct vmo_pager_ops *ops, uint32_t oflags, unsigned prot)
{
	x->eng = ss_engine();
	x->r = rec_new();
	struct vmo_object_opts oo = { .size = (uint64_t)NPG * PS, .flags = oflags };
	CHECK_OK(vmo_object_create(x->eng, ops, x->r, &oo, &x->o));
	x->p = NULL;
	CHECK_OK(vmo_map(x->o, 0, (size_t)NPG * PS, prot, (void **)&x->p));
}

static void fx_close(struct fx *x)
{
	CHECK_OK(vmo_unmap(x->o, x->p, (size_t)NPG * PS));
	vmo_object_unref(x->o);
	CHECK_OK(vmo_engine_destroy(x->eng));
	rec_free(x->r);
}

/* Pages of a signal-safe object are read by the thread that touched them. */
static void case_served_by_toucher(void)
{
	struct fx x;
	fx_open(&x, &rec_ro_ops, VMO_OBJ_SIGNAL_SAFE, VMO_PROT_READ);
	uint64_t seed = 7;
	for (int k = 0; k < NPG; k++)
		check_page(x.p, t_rand(&seed) % NPG);
	for (size_t pg = 0; pg < NPG; pg++)
		check_page(x.p, pg);
	CHECK(atomic_load(&x.r->reads) >= NPG);
	CHECK_EQ(atomic_load(&x.r->foreign_reads), 0);
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(x.o, &st));
	CHECK(st.faults > 0);
	fx_close(&x);
}

/* VMO_SELF_SERVICE=all serves every object in the handler: no hand-off. */
static void require_hand_off(void)
{
	const char *e = getenv("VMO_SELF_SERVICE");
	if (e && !strcmp(e, "all"))
		t_skip_case("VMO_SELF_SERVICE=all: every object is served in the handler");
}

/* Without VMO_OBJ_SIGNAL_SAFE the handler hands the fault to vmo's thread. */
static void case_hand_off(void)
{
	require_hand_off();
	struct fx x;
	fx_open(&x, &rec_ro_ops, 0, VMO_PROT_READ);
	for (size_t pg = 0; pg < NPG; pg += 3)
		check_page(x.p, pg);
	CHECK(atomic_load(&x.r->reads) > 0);
	CHECK_EQ(atomic_load(&x.r->foreign_reads), atomic_load(&x.r->reads));
	fx_close(&x);
}

/* First writes (write-protect faults in the handler) ask unlock, make the
 * page dirty, and writeback stores what was written; a refused unlock is
 * the writer's SIGBUS and vmo_get_error's errno; the page keeps its data. */
static void run_writes(uint32_t flags)
{
	struct vmo_engine *eng = ss_engine();
	t_require_features(eng, VMO_FEAT_WP | VMO_FEAT_MINOR | VMO_FEAT_CONTINUE_WP);
	struct rec *r = rec_new();
	struct vmo_object *o;
	struct vmo_object_opts oo = { .size = (uint64_t)NPG * PS, .flags = flags };
	CHECK_OK(vmo_object_create(eng, &rec_ops, r, &oo, &o));
	uint64_t *p = NULL, *q = NULL;
	CHECK_OK(vmo_map(o, 0, (size_t)NPG * PS, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&p));
	CHECK_OK(vmo_map(o, 0, (size_t)NPG * PS, VMO_PROT_READ, (void **)&q));
	for (size_t pg = 0; pg < NPG; pg += 2) {
		p[pg * PS / 8 + 1] = 1000 + pg;    /* a missing page, written */
		CHECK_EQ(q[pg * PS / 8 + 1], 1000 + pg); /* the other view (MINOR) */
	}
	for (size_t pg = 1; pg < NPG; pg += 2)
		check_page(q, pg); /* read first through the read-only view */
	for (size_t pg = 1; pg < NPG; pg += 4)
		p[pg * PS / 8 + 2] = 2000 + pg; /* clean and mapped elsewhere: MINOR, then WP */
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK_EQ(st.dirty, (uint64_t)(NPG / 2 + NPG / 4) * PS);
	CHECK(atomic_load(&r->unlocks) >= NPG / 2 + NPG / 4);
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	for (size_t pg = 0; pg < NPG; pg += 2)
		CHECK_EQ(r->data[pg * PS / 8 + 1], 1000 + pg);
	for (size_t pg = 1; pg < NPG; pg += 4)
		CHECK_EQ(r->data[pg * PS / 8 + 2], 2000 + pg);
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK_EQ(st.dirty, 0);
	/* written again after writeback: dirty again, written again */
	p[4 * PS / 8] = 77;
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	CHECK_EQ(r->data[4 * PS / 8], 77);

	/* a refused unlock */
	check_page(p, 3);
	atomic_store(&r->refuse_unlock, -ENOSPC);
	struct t_sig info;
	CHECK_EQ(t_probe_write(&p[3 * PS / 8 + 5], 9, &info), SIGBUS);
	CHECK(info.addr == &p[3 * PS / 8 + 5] || info.addr == (void *)&p[3 * PS / 8]);
	CHECK_EQ(info.tid, gettid_());
	CHECK_EQ(vmo_get_error(o, 3 * PS), -ENOSPC);
	check_page(p, 3);
	atomic_store(&r->refuse_unlock, 0);
	p[3 * PS / 8 + 5] = 9; /* allowed now */
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	CHECK_EQ(r->data[3 * PS / 8 + 5], 9);

	CHECK_OK(vmo_unmap(o, q, (size_t)NPG * PS));
	CHECK_OK(vmo_unmap(o, p, (size_t)NPG * PS));
	vmo_object_unref(o);
	CHECK_OK(vmo_engine_destroy(eng));
	rec_free(r);
}

static void case_writes(void)
{
	run_writes(VMO_OBJ_SIGNAL_SAFE);
}

static void case_writes_hand_off(void)
{
	require_hand_off();
	run_writes(0);
}

/* A failing read: SIGBUS at the address in the toucher, the errno kept, the
 * neighbours fine, sticky until cleared. */
static void case_read_error(void)
{
	struct fx x;
	fx_open(&x, &rec_ro_ops, VMO_OBJ_SIGNAL_SAFE | VMO_OBJ_NO_READAHEAD, VMO_PROT_READ);
	atomic_store(&x.r->fail_pg, 5);
	uint64_t *p = (uint64_t *)x.p;
	struct t_sig info;
	uint64_t v;
	CHECK_EQ(t_probe_read(&p[5 * PS / 8 + 3], &v, &info), SIGBUS);
	CHECK_EQ(info.code, BUS_ADRERR);
	CHECK(info.addr == &p[5 * PS / 8 + 3] || info.addr == (void *)&p[5 * PS / 8]);
	CHECK_EQ(info.tid, gettid_());
	CHECK_EQ(vmo_get_error(x.o, 5 * PS), -EIO);
	check_page(p, 4);
	check_page(p, 6);
	long reads = atomic_load(&x.r->reads);
	CHECK_EQ(t_probe_read(&p[5 * PS / 8], &v, NULL), SIGBUS); /* sticky: not asked again */
	CHECK_EQ(atomic_load(&x.r->reads), reads);
	atomic_store(&x.r->fail_pg, -1);
	CHECK_OK(vmo_clear_error(x.o, 5 * PS));
	check_page(p, 5);
	fx_close(&x);
}

/* A system call on a page vmo must supply fails with EFAULT (nobody can
 * serve a kernel-mode fault in SIGBUS mode); once touched, it works. */
static void case_syscall_efault(void)
{
	struct fx x;
	fx_open(&x, &rec_ro_ops, VMO_OBJ_SIGNAL_SAFE, VMO_PROT_READ);
	int pfd[2];
	CHECK_OK(pipe(pfd)); /* (a pipe copies what is written: /dev/null reads nothing) */
	errno = 0;
	CHECK_EQ(write(pfd[1], x.p + 9 * PS, 64), -1);
	CHECK_EQ(errno, EFAULT);
	check_page(x.p, 9);
	CHECK_EQ(write(pfd[1], x.p + 9 * PS, 64), 64);
	uint64_t got[8];
	CHECK_EQ(read(pfd[0], got, sizeof got), (long)sizeof got);
	CHECK_EQ(got[3], t_pattern(9 * PS + 24));
	close(pfd[0]);
	close(pfd[1]);
	fx_close(&x);
}

/* SIGBUS that is not vmo's reaches the handler the program had: a file
 * mapping's page past the end of the file, and a signal sent with raise. */
static sigjmp_buf pass_jb;
static volatile sig_atomic_t pass_code;
static void *volatile pass_addr;

static void pass_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	pass_code = si->si_code;
	pass_addr = si->si_addr;
	siglongjmp(pass_jb, 1);
}

static void pass_on_child(void *arg)
{
	(void)arg;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = pass_handler;
	sa.sa_flags = SA_SIGINFO;
	CHECK_OK(sigaction(SIGBUS, &sa, NULL)); /* the program's, before the engine */
	struct vmo_engine *eng;
	struct vmo_engine_opts eo = { .flags = VMO_ENGINE_SELF_SERVICE };
	CHECK_OK(vmo_engine_create(&eo, &eng));
	struct sigaction cur;
	CHECK_OK(sigaction(SIGBUS, NULL, &cur));
	CHECK(cur.sa_sigaction != pass_handler); /* vmo's, passing on */
	struct rec *r = rec_new();
	struct vmo_object *o;
	struct vmo_object_opts oo = { .size = (uint64_t)NPG * PS, .flags = VMO_OBJ_SIGNAL_SAFE };
	CHECK_OK(vmo_object_create(eng, &rec_ro_ops, r, &oo, &o));
	char *p = NULL;
	CHECK_OK(vmo_map(o, 0, (size_t)NPG * PS, VMO_PROT_READ, (void **)&p));
	check_page(p, 1); /* served, the program's handler not called */
	CHECK_EQ(pass_code, 0);

	int fd = t_tmpfile(PS, true);
	char *f = mmap(NULL, 2 * PS, PROT_READ, MAP_SHARED, fd, 0);
	CHECK(f != MAP_FAILED);
	if (!sigsetjmp(pass_jb, 1)) {
		(void)*(volatile char *)(f + PS + 8); /* past the end of the file */
		CHECK(!"no SIGBUS past the end of a file");
	}
	CHECK_EQ(pass_code, BUS_ADRERR);
	CHECK(pass_addr == f + PS + 8);
	pass_code = 0;
	if (!sigsetjmp(pass_jb, 1)) {
		raise(SIGBUS);
		CHECK(!"raise(SIGBUS) returned");
	}
	CHECK(pass_code == SI_TKILL || pass_code == SI_USER);
	munmap(f, 2 * PS);
	close(fd);
	check_page(p, 2); /* still served */
	CHECK_OK(vmo_unmap(o, p, (size_t)NPG * PS));
	vmo_object_unref(o);
	CHECK_OK(vmo_engine_destroy(eng));
	rec_free(r);
}

static void case_pass_on(void)
{
	struct vmo_engine *eng = ss_engine(); /* (skips where there is none) */
	CHECK_OK(vmo_engine_destroy(eng));
	/* in a child: the disposition of SIGBUS is the process's */
	int st = t_fork_run(pass_on_child, NULL);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* A fork()ed child of a process with a self-service engine makes its own:
 * the parent's, still in the child's copy of vmo's table, is passed over,
 * and the child's faults are served. */
static void child_engine(void *arg)
{
	(void)arg;
	struct fx x;
	fx_open(&x, &rec_ro_ops, VMO_OBJ_SIGNAL_SAFE, VMO_PROT_READ);
	for (size_t pg = 0; pg < NPG; pg += 5)
		check_page(x.p, pg);
	CHECK_EQ(atomic_load(&x.r->foreign_reads), 0);
	fx_close(&x);
}

static void case_child_engine(void)
{
	struct fx x;
	fx_open(&x, &rec_ro_ops, VMO_OBJ_SIGNAL_SAFE, VMO_PROT_READ);
	check_page(x.p, 3);
	int st = t_fork_run(child_engine, NULL);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	check_page(x.p, 4);
	fx_close(&x);
}

/* Several threads scanning the same pages at once: each page is filled by
 * one of them while the others wait by faulting again; the data is right. */
struct scan_arg {
	const char *p;
	int id;
};

static void *scan_thread(void *arg)
{
	struct scan_arg *a = arg;
	for (size_t k = 0; k < NPG; k++) {
		size_t pg = a->id & 1 ? NPG - 1 - k : k;
		check_page(a->p, pg);
	}
	return NULL;
}

static void case_threads(void)
{
	struct vmo_engine *eng = ss_engine();
	for (int round = 0; round < 2; round++) {
		struct rec *r = rec_new();
		struct vmo_object *o;
		struct vmo_object_opts oo = { .size = (uint64_t)NPG * PS, .flags = round ? VMO_OBJ_SIGNAL_SAFE : 0 };
		CHECK_OK(vmo_object_create(eng, &rec_ro_ops, r, &oo, &o));
		char *p = NULL;
		CHECK_OK(vmo_map(o, 0, (size_t)NPG * PS, VMO_PROT_READ, (void **)&p));
		pthread_t th[6];
		struct scan_arg a[6];
		for (int i = 0; i < 6; i++) {
			a[i] = (struct scan_arg){ .p = p, .id = i };
			CHECK_OK(pthread_create(&th[i], NULL, scan_thread, &a[i]));
		}
		for (int i = 0; i < 6; i++)
			CHECK_OK(pthread_join(th[i], NULL));
		struct vmo_stats st;
		CHECK_OK(vmo_object_stats(o, &st));
		CHECK_EQ(st.pages_read, NPG); /* each page read once */
		CHECK_OK(vmo_unmap(o, p, (size_t)NPG * PS));
		vmo_object_unref(o);
		rec_free(r);
	}
	CHECK_OK(vmo_engine_destroy(eng));
}

/* vmo_engine_inhibit holds self-service faults too, until resume. */
static _Atomic int touched;

static void *touch_thread(void *arg)
{
	check_page(arg, 17);
	atomic_store(&touched, 1);
	return NULL;
}

static void case_inhibit(void)
{
	struct fx x;
	fx_open(&x, &rec_ro_ops, VMO_OBJ_SIGNAL_SAFE, VMO_PROT_READ);
	CHECK_OK(vmo_engine_inhibit(x.eng));
	atomic_store(&touched, 0);
	pthread_t th;
	CHECK_OK(pthread_create(&th, NULL, touch_thread, x.p));
	usleep(100000);
	CHECK_EQ(atomic_load(&touched), 0);
	CHECK_EQ(atomic_load(&x.r->reads), 0);
	CHECK_OK(vmo_engine_resume(x.eng));
	CHECK_OK(pthread_join(th, NULL));
	CHECK_EQ(atomic_load(&touched), 1);
	fx_close(&x);
}

int main(int argc, char **argv)
{
	alarm(120);
	return t_main(argc, argv,
		      T_CASES({ "served-by-toucher", case_served_by_toucher }, { "hand-off", case_hand_off },
			      { "writes", case_writes }, { "writes-hand-off", case_writes_hand_off },
			      { "read-error", case_read_error }, { "syscall-efault", case_syscall_efault },
			      { "pass-on", case_pass_on }, { "child-engine", case_child_engine }, { "threads", case_threads }, { "inhibit", case_inhibit }));
}
