/* SPDX-License-Identifier: MIT */
/* test_clone: copy-on-write clones (vmo_object_clone):
 *  - isolation: a clone sees its source as it was; the source's later
 *    writes never show in it, its writes never in the source; under two
 *    threads writing each side at once through mappings and vmo_memcpy,
 *    with the source evicted under a small budget meanwhile;
 *  - own-pager: a clone with a pager of its own writes its pages back there
 *    and reads them back from it after eviction; pages it never wrote still
 *    come from the source as it was;
 *  - chain: a clone of a clone sees the first clone as it was (with what
 *    the first clone wrote before), whatever the source and the first
 *    clone write later;
 *  - refused: a source that does not track writes, sizes given. */
#include "helper.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#define PG 4096u
#define NPG 256u
#define SIZE ((uint64_t)NPG * PG)

/* Clones need write-protect faults and CONTINUE_MODE_WP (6.5): skipped
 * without (vmo_object_clone refuses, checked in the case refused). */
static void need_cow(struct vmo_engine *eng)
{
	unsigned need = VMO_FEAT_WP | VMO_FEAT_CONTINUE_WP;
	if ((vmo_engine_features(eng) & need) != need)
		t_skip_case("clones need write-protect faults and UFFDIO_CONTINUE_MODE_WP (%s)", t_feature_names(need));
}

static uint64_t snap(uint64_t pg) { return 0x5a5a000000000000ull | pg; }

struct writer {
	struct vmo_object *o;
	uint64_t *v;
	uint64_t tag;
	bool via_memcpy;
	_Atomic int *stop;
	uint64_t last[NPG]; /* the last value this writer wrote to each page (its pages only) */
	uint64_t first, step;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint64_t seed = w->tag, n = 0;
	while (!atomic_load(w->stop)) {
		uint64_t pg = w->first + (t_rand(&seed) % (NPG / w->step)) * w->step;
		uint64_t val = w->tag | ++n << 16 | pg;
		if (w->via_memcpy)
			CHECK_OK(vmo_memcpy(w->o, pg * PG + 8, &val, 8, VMO_MEMCPY_TO_OBJECT, NULL));
		else
			w->v[pg * PG / 8 + 1] = val;
		w->last[pg] = val;
	}
	return NULL;
}

static void case_isolation(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_shared_engine(2);
	need_cow(eng);
	struct t_store *s = t_store_new(SIZE, 0);
	struct vmo_object *src, *cl;
	struct vmo_object_opts oo = { .size = SIZE };
	CHECK_OK(vmo_object_create(eng, &t_store_ops, s, &oo, &src));
	uint64_t *v, *cv;
	CHECK_OK(vmo_map(src, 0, SIZE, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	for (uint64_t pg = 0; pg < NPG; pg++) /* the state to snapshot: some pages dirty, some never touched */
		if (pg % 3)
			v[pg * PG / 8 + 1] = snap(pg);
	CHECK_OK(vmo_object_clone(src, NULL, NULL, NULL, &cl));
	CHECK_OK(vmo_map(cl, 0, SIZE, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&cv));
	/* two writers on each side, odd and even pages; the source evicted
	 * under a small budget meanwhile */
	CHECK_OK(vmo_object_set_budget(src, 32 * PG, 0));
	_Atomic int stop = 0;
	static struct writer w[4];
	pthread_t th[4];
	for (int i = 0; i < 4; i++) {
		memset(&w[i], 0, sizeof w[i]);
		w[i].o = i < 2 ? src : cl;
		w[i].v = i < 2 ? v : cv;
		w[i].tag = (uint64_t)(i + 1) << 56;
		w[i].via_memcpy = i % 2;
		w[i].stop = &stop;
		w[i].first = (uint64_t)(i % 2);
		w[i].step = 2;
		CHECK_OK(pthread_create(&th[i], NULL, writer_main, &w[i]));
	}
	usleep(1000 * 1000);
	atomic_store(&stop, 1);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	CHECK_OK(vmo_object_set_budget(src, 0, 0));
	/* each side: its own last write, else the page as it was at the clone */
	for (uint64_t pg = 0; pg < NPG; pg++) {
		uint64_t was = pg % 3 ? snap(pg) : 0;
		uint64_t want_src = w[pg % 2].last[pg] ? w[pg % 2].last[pg] : was;
		uint64_t want_cl = w[2 + pg % 2].last[pg] ? w[2 + pg % 2].last[pg] : was;
		uint64_t got;
		CHECK_EQ(vmo_object_read(src, pg * PG + 8, &got, 8), 8);
		CHECK_EQ(got, want_src);
		CHECK_EQ(cv[pg * PG / 8 + 1], want_cl);
	}
	CHECK_OK(vmo_unmap(cl, cv, SIZE));
	vmo_object_unref(cl);
	CHECK_OK(vmo_sync(src, VMO_WAIT));
	for (uint64_t pg = 0; pg < NPG; pg++) /* the clone never wrote into the source's store */
		CHECK_EQ(s->data[pg * PG / 8 + 1], w[pg % 2].last[pg] ? w[pg % 2].last[pg] : (pg % 3 ? snap(pg) : 0));
	CHECK_OK(vmo_unmap(src, v, SIZE));
	vmo_object_unref(src);
	t_store_free(s);
}

static void case_own_pager(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_shared_engine(2);
	need_cow(eng);
	struct t_store *s = t_store_new(SIZE, 2), *cs = t_store_new(SIZE, 0);
	struct vmo_object *src, *cl;
	struct vmo_object_opts oo = { .size = SIZE };
	CHECK_OK(vmo_object_create(eng, &t_store_ops, s, &oo, &src));
	CHECK_OK(vmo_object_clone(src, &t_store_ops, cs, NULL, &cl));
	uint64_t a = 111, b = 222, r;
	CHECK_EQ(vmo_object_write(cl, 10 * PG, &a, 8), 8); /* the clone's */
	CHECK_EQ(vmo_object_write(src, 20 * PG, &b, 8), 8); /* the source's, after */
	CHECK_OK(vmo_sync(cl, VMO_WAIT));
	CHECK_EQ(cs->data[10 * PG / 8], 111); /* in its own store */
	CHECK_EQ(cs->data[20 * PG / 8], t_pattern(20 * PG) ^ 1); /* pushed, then written back there */
	CHECK_OK(vmo_return(cl, VMO_WAIT)); /* out of memory: read back from its own pager */
	long r0 = s->reads;
	CHECK_EQ(vmo_object_read(cl, 10 * PG, &r, 8), 8);
	CHECK_EQ(r, 111);
	CHECK_EQ(vmo_object_read(cl, 20 * PG, &r, 8), 8);
	CHECK_EQ(r, t_pattern(20 * PG) ^ 1);
	CHECK_EQ(s->reads, r0); /* neither from the source */
	CHECK_EQ(vmo_object_read(cl, 30 * PG, &r, 8), 8); /* never written: the source's, as it was */
	CHECK_EQ(r, t_pattern(30 * PG) ^ 1);
	vmo_object_unref(cl);
	vmo_object_unref(src);
	t_store_free(s);
	t_store_free(cs);
}

static void case_chain(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_shared_engine(2);
	need_cow(eng);
	struct t_store *s = t_store_new(SIZE, 3), *cs = t_store_new(SIZE, 0);
	struct vmo_object *src, *c1, *c2;
	struct vmo_object_opts oo = { .size = SIZE };
	CHECK_OK(vmo_object_create(eng, &t_store_ops, s, &oo, &src));
	CHECK_OK(vmo_object_clone(src, &t_store_ops, cs, NULL, &c1));
	uint64_t x = 1, y = 2, z = 3, r;
	CHECK_EQ(vmo_object_write(c1, 5 * PG, &x, 8), 8); /* before c2: c2 sees it */
	CHECK_OK(vmo_object_clone(c1, NULL, NULL, NULL, &c2));
	CHECK_EQ(vmo_object_write(c1, 5 * PG, &y, 8), 8); /* after: it does not */
	CHECK_EQ(vmo_object_write(src, 6 * PG, &z, 8), 8);
	CHECK_EQ(vmo_object_read(c2, 5 * PG, &r, 8), 8);
	CHECK_EQ(r, 1);
	CHECK_EQ(vmo_object_read(c2, 6 * PG, &r, 8), 8);
	CHECK_EQ(r, t_pattern(6 * PG) ^ 2);
	CHECK_EQ(vmo_object_read(c1, 5 * PG, &r, 8), 8);
	CHECK_EQ(r, 2);
	CHECK_EQ(vmo_object_clone(c2, NULL, NULL, NULL, &c1), -EOPNOTSUPP); /* anonymous: tracks nothing */
	vmo_object_unref(c2);
	vmo_object_unref(c1);
	vmo_object_unref(src);
	t_store_free(s);
	t_store_free(cs);
}

static void case_refused(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_shared_engine(2);
	struct vmo_object *o, *c;
	struct vmo_object_opts oo = { .size = SIZE };
	CHECK_OK(vmo_object_create(eng, vmo_pager_zero(), NULL, &oo, &o));
	CHECK_EQ(vmo_object_clone(o, NULL, NULL, NULL, &c), -EOPNOTSUPP);
	vmo_object_unref(o);
	struct t_store *s = t_store_new(SIZE, 4);
	CHECK_OK(vmo_object_create(eng, &t_store_ops, s, &oo, &o));
	struct vmo_object_opts bad = { .size = 2 * SIZE };
	unsigned need = VMO_FEAT_WP | VMO_FEAT_CONTINUE_WP;
	if ((vmo_engine_features(eng) & need) == need) {
		CHECK_EQ(vmo_object_clone(o, NULL, NULL, &bad, &c), -EINVAL);
		bad = (struct vmo_object_opts){ .flags = VMO_OBJ_MAY_CACHE, .name = "x" };
		CHECK_EQ(vmo_object_clone(o, NULL, NULL, &bad, &c), -EINVAL);
	} else {
		CHECK_EQ(vmo_object_clone(o, NULL, NULL, NULL, &c), -EOPNOTSUPP); /* (6.1: no CONTINUE_MODE_WP) */
	}
	CHECK_EQ(vmo_object_clone(NULL, NULL, NULL, NULL, &c), -EINVAL);
	struct vmo_pager_ops ro = { .read = t_store_ops.read };
	CHECK_EQ(vmo_object_clone(o, &ro, s, NULL, &c), -EINVAL); /* an own pager writes */
	vmo_object_unref(o);
	t_store_free(s);
}

/* A clone's clean copy of a page it read from its source, dropped after
 * the source wrote the page: read again, still the page as it was. */
static void case_clean_evicted(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_shared_engine(2);
	need_cow(eng);
	for (int own = 0; own < 2; own++) {
		struct t_store *s = t_store_new(SIZE, 5), *cs = t_store_new(SIZE, 0);
		struct vmo_object *src, *cl;
		struct vmo_object_opts oo = { .size = SIZE };
		CHECK_OK(vmo_object_create(eng, &t_store_ops, s, &oo, &src));
		CHECK_OK(vmo_object_clone(src, own ? &t_store_ops : NULL, own ? cs : NULL, NULL, &cl));
		uint64_t r, z = 0x2222;
		CHECK_EQ(vmo_object_read(cl, 3 * PG, &r, 8), 8); /* clean in the clone */
		CHECK_EQ(vmo_object_write(src, 3 * PG, &z, 8), 8);
		CHECK_OK(vmo_sync(src, VMO_WAIT));
		CHECK_OK(vmo_return(cl, VMO_WAIT)); /* as reclaim would */
		CHECK_EQ(vmo_object_read(cl, 3 * PG, &r, 8), 8);
		CHECK_EQ(r, t_pattern(3 * PG) ^ 4);
		vmo_object_unref(cl);
		vmo_object_unref(src);
		t_store_free(s);
		t_store_free(cs);
	}
}

/* The program lets the source go first and keeps the clone. */
static void case_unref_source_first(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_shared_engine(2);
	need_cow(eng);
	struct t_store *s = t_store_new(SIZE, 6);
	struct vmo_object *src, *cl;
	struct vmo_object_opts oo = { .size = SIZE };
	CHECK_OK(vmo_object_create(eng, &t_store_ops, s, &oo, &src));
	CHECK_OK(vmo_object_clone(src, NULL, NULL, NULL, &cl));
	vmo_object_unref(src); /* returns: the clone keeps what it needs */
	uint64_t r;
	CHECK_EQ(vmo_object_read(cl, 9 * PG, &r, 8), 8);
	CHECK_EQ(r, t_pattern(9 * PG) ^ 5);
	vmo_object_unref(cl); /* and the source goes with it */
	t_store_free(s);
}

/* A page pushed into the middle of a chain is dirty there; a write to it
 * through a view of that middle clone must still reach the clone below. */
static void case_chain_view_writes(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_shared_engine(2);
	need_cow(eng);
	struct t_store *s = t_store_new(SIZE, 7), *as = t_store_new(SIZE, 0);
	struct vmo_object *S, *A, *B;
	struct vmo_object_opts oo = { .size = SIZE };
	CHECK_OK(vmo_object_create(eng, &t_store_ops, s, &oo, &S));
	CHECK_OK(vmo_object_clone(S, &t_store_ops, as, NULL, &A));
	CHECK_OK(vmo_object_clone(A, NULL, NULL, NULL, &B));
	uint64_t x = 0x5555, r;
	CHECK_EQ(vmo_object_write(S, 3 * PG, &x, 8), 8); /* pushed into A */
	uint64_t *v;
	CHECK_OK(vmo_map(A, 0, SIZE, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	v[3 * PG / 8] = 0x7777; /* through a view of A */
	CHECK_EQ(vmo_object_read(B, 3 * PG, &r, 8), 8);
	CHECK_EQ(r, t_pattern(3 * PG) ^ 6);
	CHECK_EQ(vmo_object_read(A, 3 * PG, &r, 8), 8);
	CHECK_EQ(r, 0x7777);
	CHECK_OK(vmo_unmap(A, v, SIZE));
	/* shrinking a source with clones is refused (they read from it) */
	CHECK_EQ(vmo_object_resize(S, SIZE / 2), -EBUSY);
	vmo_object_unref(B);
	vmo_object_unref(A);
	vmo_object_unref(S);
	t_store_free(s);
	t_store_free(as);
}

int main(int argc, char **argv)
{
	alarm(120);
	return t_main(argc, argv,
		      T_CASES({ "isolation", case_isolation }, { "own-pager", case_own_pager }, { "chain", case_chain },
			      { "refused", case_refused }, { "clean-evicted", case_clean_evicted },
			      { "unref-source-first", case_unref_source_first },
			      { "chain-view-writes", case_chain_view_writes }));
}
