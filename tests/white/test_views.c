/* SPDX-License-Identifier: MIT */
/* test_views (white-box): the one iterator over an object's views
 * (vmo__views_each) visits every piece of a view the program split while
 * the iteration was under way.  Before, it took a snapshot of the views and
 * skipped one found gone, so the pieces the program's munmap left were never
 * visited: writeback then marked clean a page still writable in one of them
 * (a write through it lost).  Here the first view's visit makes another
 * thread munmap the head of the second view; the worker applies the event
 * as soon as the visit lets the space's lock go, before the iterator enters
 * the second view (the lock prefers writers). */
#include "core.h"
#include "helper.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096u

static int z_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	(void)ctx, (void)off, (void)flags;
	memset(buf, 0x5a, len);
	return 0;
}

static const struct vmo_pager_ops ops = { .read = z_read };

struct visit {
	uintptr_t b_addr; /* the second view, whose head is cut */
	pthread_t cutter;
	bool cut;
	uintptr_t seen[16];
	size_t seen_len[16];
	int n;
};

static void *cut_head(void *arg)
{
	struct visit *v = arg;
	CHECK_OK(munmap((void *)v->b_addr, 2 * PG)); /* an UNMAP event: B splits */
	return NULL;
}

static int visit(struct vmo_map *m, uintptr_t addr, size_t len, void *arg)
{
	struct visit *v = arg;
	(void)m;
	CHECK(v->n < 16);
	v->seen[v->n] = addr;
	v->seen_len[v->n] = len;
	v->n++;
	if (!v->cut) {
		v->cut = true;
		CHECK_OK(pthread_create(&v->cutter, NULL, cut_head, v));
		usleep(100 * 1000); /* the munmap waits for a worker, which waits for our lock */
	}
	return 0;
}

static void case_split_during_iteration(void)
{
	struct vmo_engine *eng = t_engine(2);
	t_require_features(eng, VMO_FEAT_EVENTS);
	struct vmo_object *o;
	struct vmo_object_opts oo = { .size = 16 * PG };
	CHECK_OK(vmo_object_create(eng, &ops, NULL, &oo, &o));
	void *a, *b;
	CHECK_OK(vmo_map(o, 0, 8 * PG, VMO_PROT_READ, &a));
	CHECK_OK(vmo_map(o, 8 * PG, 8 * PG, VMO_PROT_READ, &b));
	struct visit v = { .b_addr = (uintptr_t)b };
	CHECK_OK(vmo__views_each(o, 0, 16 * PG, false, visit, &v));
	pthread_join(v.cutter, NULL);
	/* visited: A whole, and the tail of B that the munmap left (6 pages),
	 * whatever the order the tree gave */
	bool a_seen = false, tail_seen = false;
	for (int i = 0; i < v.n; i++) {
		if (v.seen[i] == (uintptr_t)a && v.seen_len[i] == 8 * PG)
			a_seen = true;
		if (v.seen[i] == (uintptr_t)b + 2 * PG && v.seen_len[i] == 6 * PG)
			tail_seen = true;
	}
	CHECK(a_seen);
	CHECK(tail_seen);
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK_EQ(st.mappings, 2); /* A, and B's tail */
	printf("%d visits: the piece of a view split during the iteration was visited\n", v.n);
	CHECK_OK(vmo_unmap(o, a, 8 * PG));
	CHECK_OK(munmap((char *)b + 2 * PG, 6 * PG));
	vmo_object_unref(o);
	CHECK_OK(vmo_engine_destroy(eng));
}

int main(int argc, char **argv)
{
	alarm(60); /* a hang is a failure */
	setvbuf(stdout, NULL, _IOLBF, 0);
	return t_main(argc, argv, T_CASES({ "split-during-iteration", case_split_during_iteration }));
}
