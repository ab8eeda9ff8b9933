/* SPDX-License-Identifier: MIT */
/* test_errors: a pager whose read fails (-EIO, -ENOSPC, -EDQUOT) gives the
 * faulting thread SIGBUS at the page's address, vmo_get_error() the pager's
 * errno, never a zero page (touching again, or through another view, still
 * SIGBUSes, and the pager is not asked again until vmo_clear_error());
 * neighbouring pages read right; a read-ahead cluster holding a bad page
 * marks only that page failed; after vmo_clear_error() a pager that now
 * succeeds supplies the data.  Also from a second thread. */
#include "helper.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PG 4096u
#define NPG 64

/* The access at p raised SIGBUS in this thread, at an address in p's page;
 * returns the signal's details. */
static struct t_sig expect_sigbus(volatile uint64_t *p, size_t page)
{
	uint64_t v = 0;
	struct t_sig info;
	int sig = t_probe_read(p, &v, &info);
	if (sig != SIGBUS) {
		fprintf(stderr, "read at %p: signal %d (value %#llx), expected SIGBUS\n", (void *)p, sig,
			(unsigned long long)v);
		abort();
	}
	uintptr_t a = (uintptr_t)info.addr, pa = (uintptr_t)p & ~(uintptr_t)(page - 1);
	CHECK(a >= pa && a < pa + page);
	CHECK_EQ(info.tid, syscall(SYS_gettid));
	return info;
}

/* ---- a pager that fails on chosen pages ---------------------------------- */

struct fpager {
	_Atomic int err[NPG];     /* what read returns for a page (0 = data) */
	_Atomic uint32_t reads[NPG];
};

static int fp_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct fpager *f = ctx;
	(void)flags;
	for (uint64_t pg = off / PG; pg < (off + len) / PG; pg++)
		atomic_fetch_add(&f->reads[pg], 1);
	for (uint64_t pg = off / PG; pg < (off + len) / PG; pg++)
		if (atomic_load(&f->err[pg]))
			return atomic_load(&f->err[pg]);
	uint64_t *w = buf;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = t_pattern(off + i * 8);
	return 0;
}

static const struct vmo_pager_ops fp_ops = { .read = fp_read };

static volatile uint64_t *at(void *base, uint64_t pg, unsigned word)
{
	return (volatile uint64_t *)base + pg * (PG / 8) + word;
}

static void expect_data(void *base, uint64_t pg)
{
	uint64_t v = 0;
	CHECK_EQ(t_probe_read(at(base, pg, 5), &v, NULL), 0);
	CHECK_EQ(v, t_pattern(pg * PG + 40));
}

/* ---- second thread -------------------------------------------------------- */

struct targ {
	struct vmo_object *obj;
	void *view;
	int ok;
};

static void *second_thread(void *arg)
{
	struct targ *t = arg;
	/* pages 5 (-ENOSPC) and 7 (-EDQUOT): this thread gets the SIGBUS */
	expect_sigbus(at(t->view, 5, 0), PG);
	CHECK_EQ(vmo_get_error(t->obj, 5 * PG), -ENOSPC);
	expect_sigbus(at(t->view, 7, 9), PG);
	CHECK_EQ(vmo_get_error(t->obj, 7 * PG + 100), -EDQUOT);
	expect_data(t->view, 6);
	expect_data(t->view, 8);
	CHECK_EQ(t_probe_write(at(t->view, 5, 1), 42, NULL), SIGBUS);
	t->ok = 1;
	return NULL;
}

static void test_no_readahead(struct vmo_engine *eng)
{
	static struct fpager fp;
	atomic_store(&fp.err[3], -EIO);
	atomic_store(&fp.err[5], -ENOSPC);
	atomic_store(&fp.err[7], -EDQUOT);
	struct vmo_object_opts oo = { .flags = VMO_OBJ_NO_READAHEAD, .size = NPG * PG };
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, &fp_ops, &fp, &oo, &obj));
	void *a = NULL, *b = NULL;
	CHECK_OK(vmo_map(obj, 0, NPG * PG, VMO_PROT_READ | VMO_PROT_WRITE, &a));
	CHECK_OK(vmo_map(obj, 2 * PG, 8 * PG, VMO_PROT_READ, &b)); /* pages 2..9 */

	CHECK_EQ(vmo_get_error(obj, 3 * PG), 0);
	struct t_sig info = expect_sigbus(at(a, 3, 17), PG);
	printf("SIGBUS code %d at %p (page %p)\n", info.code, info.addr, (void *)at(a, 3, 0));
	CHECK_EQ(vmo_get_error(obj, 3 * PG), -EIO);
	CHECK_EQ(vmo_get_error(obj, 3 * PG + PG - 1), -EIO);
	/* neighbours are fine */
	expect_data(a, 2);
	expect_data(a, 4);
	CHECK_EQ(vmo_get_error(obj, 2 * PG), 0);
	CHECK_EQ(vmo_get_error(obj, 4 * PG), 0);
	/* never a silent zero page: again, by a write, and through another view */
	expect_sigbus(at(a, 3, 0), PG);
	CHECK_EQ(t_probe_write(at(a, 3, 2), 7, NULL), SIGBUS);
	expect_sigbus(at(b, 1, 0), PG); /* b's page 1 is object page 3 */
	CHECK_EQ(vmo_get_error(obj, 3 * PG), -EIO);
	/* the failure is remembered: the pager is not asked again */
	CHECK_EQ(fp.reads[3], 1);

	struct targ t = { .obj = obj, .view = a };
	pthread_t th;
	CHECK_OK(pthread_create(&th, NULL, second_thread, &t));
	CHECK_OK(pthread_join(th, NULL));
	CHECK(t.ok);
	/* the second thread's pages fail for this thread too */
	expect_sigbus(at(b, 3, 0), PG); /* object page 5 */

	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(obj, &st));
	CHECK_EQ(st.errors, 3);
	for (uint64_t pg = 0; pg < NPG; pg++)
		if (pg != 3 && pg != 5 && pg != 7)
			CHECK_EQ(vmo_get_error(obj, pg * PG), 0);

	/* clear the error: the pager (which now succeeds) is asked again */
	atomic_store(&fp.err[3], 0);
	CHECK_OK(vmo_clear_error(obj, 3 * PG));
	CHECK_EQ(vmo_get_error(obj, 3 * PG), 0);
	expect_data(a, 3);
	CHECK_EQ(fp.reads[3], 2);
	/* also through the other view, which had the poison */
	uint64_t v = 0;
	CHECK_EQ(t_probe_read(at(b, 1, 5), &v, NULL), 0);
	CHECK_EQ(v, t_pattern(3 * PG + 40));
	/* a writable page now */
	CHECK_EQ(t_probe_write(at(a, 3, 2), 77, NULL), 0);
	CHECK_EQ(*at(b, 1, 2), 77);

	/* clearing while the pager still fails: fails again, the errno again */
	CHECK_OK(vmo_clear_error(obj, 5 * PG));
	expect_sigbus(at(a, 5, 0), PG);
	CHECK_EQ(vmo_get_error(obj, 5 * PG), -ENOSPC);
	CHECK_EQ(fp.reads[5], 2);
	/* and 7 cleared from another view's perspective, now good */
	atomic_store(&fp.err[7], 0);
	CHECK_OK(vmo_clear_error(obj, 7 * PG));
	CHECK_EQ(t_probe_read(at(b, 5, 5), &v, NULL), 0);
	CHECK_EQ(v, t_pattern(7 * PG + 40));
	expect_data(a, 7);

	CHECK_OK(vmo_unmap(obj, a, NPG * PG));
	CHECK_OK(vmo_unmap(obj, b, 8 * PG));
	vmo_object_unref(obj);
}

/* A read-ahead cluster that contains a bad page marks only that page. */
static void test_readahead(struct vmo_engine *eng)
{
	static struct fpager fp;
	const uint64_t bad = 6;
	atomic_store(&fp.err[bad], -EIO);
	struct vmo_object_opts oo = { .size = NPG * PG };
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, &fp_ops, &fp, &oo, &obj));
	void *a = NULL;
	CHECK_OK(vmo_map(obj, 0, NPG * PG, VMO_PROT_READ, &a));
	int sigbuses = 0;
	for (uint64_t pg = 0; pg < 32; pg++) {
		uint64_t v = 0;
		int sig = t_probe_read(at(a, pg, 5), &v, NULL);
		if (pg == bad) {
			CHECK_EQ(sig, SIGBUS);
			sigbuses++;
		} else {
			CHECK_EQ(sig, 0);
			CHECK_EQ(v, t_pattern(pg * PG + 40));
		}
	}
	CHECK_EQ(sigbuses, 1);
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(obj, &st));
	printf("read-ahead: pages_read=%llu readahead=%llu errors=%llu; reads of the bad page: %u\n",
	       (unsigned long long)st.pages_read, (unsigned long long)st.readahead,
	       (unsigned long long)st.errors, fp.reads[bad]);
	CHECK(st.readahead > 0);  /* read-ahead did happen */
	CHECK(fp.reads[bad] >= 2); /* in a cluster, then alone */
	CHECK_EQ(st.errors, 1);
	for (uint64_t pg = 0; pg < NPG; pg++)
		CHECK_EQ(vmo_get_error(obj, pg * PG), pg == bad ? -EIO : 0);
	expect_sigbus(at(a, bad, 0), PG);
	/* fixed: data */
	atomic_store(&fp.err[bad], 0);
	CHECK_OK(vmo_clear_error(obj, bad * PG));
	expect_data(a, bad);
	CHECK_OK(vmo_unmap(obj, a, NPG * PG));
	vmo_object_unref(obj);
}

static void case_no_readahead(void) { test_no_readahead(t_shared_engine(2)); }
static void case_readahead(void) { test_readahead(t_shared_engine(2)); }

int main(int argc, char **argv)
{
	alarm(60);
	setvbuf(stdout, NULL, _IONBF, 0);
	t_sig_install();
	return t_main(argc, argv, T_CASES({ "no-readahead", case_no_readahead }, { "readahead", case_readahead }));
}
