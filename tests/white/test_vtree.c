/* SPDX-License-Identifier: MIT */
/* test_vtree: the interval tree of src/vtree.h against a brute-force model.
 * A pool of items, each either in the tree or not, is the model: random
 * inserts (overlapping intervals, many equal starts) and removes, and after
 * every batch the AVL invariants (balance, heights, parent links, maxend),
 * the in-order walk, find_le and overlap walks are compared with what a scan
 * of the pool says.  A second run keeps the intervals disjoint, as the
 * engine's table of views does, and checks address lookup.  Last, 100,000
 * inserts and removes in random order must take well under 5 s.  Needs no
 * userfaultfd.  White-box: it includes src/vtree.h.  The cases run in this
 * order share one random sequence (each case alone draws other numbers). */
#include "helper.h"
#include "vtree.h"

struct item {
	struct vmo__vnode node;
	bool in; /* the model: in the tree or not */
};

#define POOL 1500

static struct item pool[POOL];
static struct vmo__vtree tree;
static size_t nin;
static uint64_t seed = 0x1234567887654321ull;

static struct item *item_of(struct vmo__vnode *n) { return n ? vmo__vtree_entry(n, struct item, node) : NULL; }

/* Put an item into the tree (and the model) with [s, e), or take it out. */
static void put(struct item *it, uint64_t s, uint64_t e)
{
	it->node.start = s;
	it->node.end = e;
	vmo__vtree_insert(&tree, &it->node);
	it->in = true;
	nin++;
}
static void take(struct item *it)
{
	vmo__vtree_remove(&tree, &it->node);
	CHECK(!it->node.l && !it->node.r && !it->node.p);
	it->in = false;
	nin--;
}

static bool before(const struct vmo__vnode *a, const struct vmo__vnode *b)
{
	return a->start != b->start ? a->start < b->start : (uintptr_t)a < (uintptr_t)b;
}

/* Check the subtree at n (parent p): returns its height; *count += nodes. */
static int check_node(const struct vmo__vnode *n, const struct vmo__vnode *p, size_t *count)
{
	if (!n)
		return 0;
	CHECK(n->p == p);
	CHECK(n->end > n->start);
	CHECK(item_of((struct vmo__vnode *)n)->in);
	int hl = check_node(n->l, n, count), hr = check_node(n->r, n, count);
	CHECK(hl - hr <= 1 && hr - hl <= 1);
	CHECK_EQ(n->h, 1 + (hl > hr ? hl : hr));
	uint64_t m = n->end;
	if (n->l) {
		CHECK(before(n->l, n));
		m = n->l->maxend > m ? n->l->maxend : m;
	}
	if (n->r) {
		CHECK(before(n, n->r));
		m = n->r->maxend > m ? n->r->maxend : m;
	}
	CHECK(n->maxend == m);
	(*count)++;
	return n->h;
}

/* The model's items, sorted in tree order, into sorted[]; returns how many. */
static int cmp_node(const void *a, const void *b)
{
	const struct vmo__vnode *x = *(struct vmo__vnode *const *)a, *y = *(struct vmo__vnode *const *)b;
	return before(x, y) ? -1 : before(y, x) ? 1 : 0;
}
static struct vmo__vnode *sorted[POOL];
static size_t model_sorted(void)
{
	size_t k = 0;
	for (size_t i = 0; i < POOL; i++)
		if (pool[i].in)
			sorted[k++] = &pool[i].node;
	qsort(sorted, k, sizeof *sorted, cmp_node);
	return k;
}

static void check_overlap(uint64_t lo, uint64_t hi, size_t k)
{
	struct vmo__vnode *n = vmo__vtree_first_overlap(&tree, lo, hi);
	for (size_t i = 0; i < k; i++) {
		const struct vmo__vnode *m = sorted[i];
		if (!(lo < hi && m->start < hi && m->end > lo))
			continue; /* [lo, hi) empty: overlaps nothing */
		CHECK(n == m);
		n = vmo__vtree_next_overlap(n, lo, hi);
	}
	CHECK(n == NULL);
}

/* Also: key is in some interval iff the disjoint model says so. */
static void check_find_le(uint64_t key, size_t k, bool disjoint)
{
	struct vmo__vnode *want = NULL;
	for (size_t i = 0; i < k && sorted[i]->start <= key; i++)
		want = sorted[i];
	struct vmo__vnode *got = vmo__vtree_find_le(&tree, key);
	CHECK(got == want);
	if (disjoint) {
		bool in = false;
		for (size_t i = 0; i < k; i++)
			in |= sorted[i]->start <= key && key < sorted[i]->end;
		CHECK(in == (got && key < got->end));
	}
}

static uint64_t rnd(uint64_t n) { return t_rand(&seed) % n; }

/* A query point or bound: near the existing keys most of the time. */
static uint64_t rnd_key(uint64_t span)
{
	switch (rnd(8)) {
	case 0:
		return 0;
	case 1:
		return UINT64_MAX;
	default:
		return rnd(span + 64);
	}
}

static void check_all(uint64_t span, bool disjoint)
{
	size_t count = 0;
	CHECK(!tree.root || tree.root->p == NULL);
	check_node(tree.root, NULL, &count);
	CHECK_EQ(count, nin);
	CHECK_EQ(tree.n, nin);
	size_t k = model_sorted();
	CHECK_EQ(k, nin);
	struct vmo__vnode *n = vmo__vtree_first(&tree);
	for (size_t i = 0; i < k; i++, n = vmo__vtree_next(n))
		CHECK(n == sorted[i]);
	CHECK(n == NULL);
	for (int q = 0; q < 24; q++) {
		uint64_t lo = rnd_key(span), hi = rnd(4) ? lo + 1 + rnd(span / 8) : rnd_key(span);
		if (hi < lo && rnd(2)) {
			uint64_t s = lo;
			lo = hi;
			hi = s;
		}
		check_overlap(lo, hi, k); /* hi <= lo sometimes: must be empty */
		check_find_le(rnd_key(span), k, disjoint);
	}
	/* every start, and just below it, exactly */
	for (size_t i = 0; i < k; i += 1 + k / 16) {
		check_find_le(sorted[i]->start, k, disjoint);
		check_find_le(sorted[i]->start - 1, k, disjoint);
		check_overlap(sorted[i]->start, sorted[i]->end, k);
	}
}

static bool overlaps_any(uint64_t s, uint64_t e)
{
	for (size_t i = 0; i < POOL; i++)
		if (pool[i].in && pool[i].node.start < e && pool[i].node.end > s)
			return true;
	return false;
}

/* Remove every node overlapping [lo, lo + len) during the overlap walk, as
 * an unmap of a range would: take the next node, then remove the current. */
static void cut(uint64_t lo, uint64_t len)
{
	size_t want = 0, got = 0;
	for (size_t i = 0; i < POOL; i++)
		want += pool[i].in && pool[i].node.start < lo + len && pool[i].node.end > lo;
	struct vmo__vnode *n = vmo__vtree_first_overlap(&tree, lo, lo + len), *next;
	for (; n; n = next) {
		next = vmo__vtree_next_overlap(n, lo, lo + len);
		take(item_of(n));
		got++;
	}
	CHECK_EQ(got, want);
	CHECK(!overlaps_any(lo, lo + len));
}

/* ops random inserts/removes over starts in [0, span); keep disjoint if asked. */
static void random_run(long ops, uint64_t span, uint64_t maxlen, bool disjoint)
{
	long inserts = 0, removes = 0;
	for (long op = 0; op < ops; op++) {
		/* drift between nearly empty and nearly full */
		unsigned want_pct = (op / 5000) % 2 ? 85 : 30;
		struct item *it = &pool[rnd(POOL)];
		if (it->in) {
			if (rnd(100) < want_pct)
				continue;
			take(it);
			removes++;
		} else {
			uint64_t s = rnd(span), e = s + 1 + rnd(maxlen);
			if (!disjoint && rnd(16) == 0)
				e = UINT64_MAX - rnd(2); /* ends at the top of the range */
			if (disjoint && overlaps_any(s, e))
				continue;
			put(it, s, e);
			inserts++;
		}
		if (op % 97 == 0)
			check_all(span, disjoint);
		if (op % 1009 == 0)
			cut(rnd(span), 1 + rnd(span / 16));
	}
	check_all(span, disjoint);
	/* empty it in random order, checking as it shrinks */
	for (size_t i = 0; i < POOL; i++) {
		struct item *it = &pool[(i * 7919) % POOL];
		if (!it->in)
			continue;
		take(it);
		if (i % 101 == 0)
			check_all(span, disjoint);
	}
	check_all(span, disjoint);
	CHECK(tree.root == NULL && tree.n == 0);
	CHECK(vmo__vtree_first(&tree) == NULL && vmo__vtree_find_le(&tree, UINT64_MAX) == NULL);
	CHECK(vmo__vtree_first_overlap(&tree, 0, UINT64_MAX) == NULL);
	printf("random %s: %ld inserts, %ld removes, span %llu\n", disjoint ? "disjoint" : "overlapping",
	       inserts, removes, (unsigned long long)span);
}

static void shuffle(size_t *a, size_t n)
{
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = rnd(i + 1), s = a[i];
		a[i] = a[j];
		a[j] = s;
	}
}

/* Big: n disjoint page-sized views at shuffled addresses in, then out. */
static void big_run(size_t n)
{
	struct item *v = calloc(n, sizeof *v);
	size_t *order = malloc(n * sizeof *order);
	CHECK(v && order);
	for (size_t i = 0; i < n; i++) {
		v[i].node.start = 0x7f0000000000ull + i * 8192;
		v[i].node.end = v[i].node.start + 4096;
		order[i] = i;
	}
	struct vmo__vtree t = { 0 };
	uint64_t t0 = t_now_ns();
	shuffle(order, n);
	for (size_t i = 0; i < n; i++)
		vmo__vtree_insert(&t, &v[order[i]].node);
	uint64_t t1 = t_now_ns();
	CHECK_EQ(t.n, n);
	/* AVL: height < 1.4405 log2(n + 2) */
	int lg = 0;
	while ((2ull << lg) <= n + 2)
		lg++;
	int h = t.root->h;
	CHECK(h <= (int)(1.4405 * (lg + 1)));
	for (size_t i = 0; i < n; i++) {
		uint64_t a = v[i].node.start + rnd(8192);
		struct vmo__vnode *f = vmo__vtree_find_le(&t, a);
		CHECK(f == &v[i].node);
		CHECK((a < f->end) == (a < v[i].node.start + 4096));
	}
	uint64_t t2 = t_now_ns();
	shuffle(order, n);
	for (size_t i = 0; i < n; i++)
		vmo__vtree_remove(&t, &v[order[i]].node);
	uint64_t t3 = t_now_ns();
	CHECK(t.root == NULL && t.n == 0);
	printf("big: %zu views, height %d (bound %d); insert %.1f ms, lookup %.1f ms, remove %.1f ms\n", n,
	       h, (int)(1.4405 * (lg + 1)), (t1 - t0) / 1e6, (t2 - t1) / 1e6, (t3 - t2) / 1e6);
	CHECK(t3 - t0 < 5000000000ull);
	free(v);
	free(order);
}

/* Ascending inserts (the rotation-heavy case) stay balanced; and one start
 * shared by many nodes: find_le gives the last, overlap walks give them all. */
static void shapes(void)
{
	size_t count = 0;
	for (size_t i = 0; i < POOL; i++)
		put(&pool[i], i, i + 1);
	CHECK(check_node(tree.root, NULL, &count) <= 15);
	check_all(POOL, true);
	for (size_t i = 0; i < POOL; i++)
		take(&pool[i]);
	for (size_t i = 0; i < POOL; i++) { /* 7 is prime to POOL: a permutation */
		size_t j = (i * 7) % POOL;
		put(&pool[j], 4096, 4096 + 1 + j % 3);
	}
	check_all(8192, false);
	CHECK(vmo__vtree_find_le(&tree, 4096) == &pool[POOL - 1].node);
	CHECK(vmo__vtree_find_le(&tree, 4095) == NULL);
	size_t k = 0;
	for (struct vmo__vnode *n = vmo__vtree_first_overlap(&tree, 4098, 4099); n;
	     n = vmo__vtree_next_overlap(n, 4098, 4099)) {
		CHECK(n->end == 4099);
		k++;
	}
	CHECK_EQ(k, POOL / 3);
	for (size_t i = 0; i < POOL; i++)
		take(&pool[i]);
	CHECK(tree.root == NULL);
}

static void case_random_dense(void) { random_run(100000, 4096, 300, false); } /* many overlaps, equal starts */
static void case_random_tiny(void) { random_run(40000, 256, 40, false); }     /* mostly equal starts */
static void case_random_disjoint(void) { random_run(30000, 1u << 20, 4096, true); } /* the engine's case */
static void case_big(void) { big_run(100000); }

int main(int argc, char **argv)
{
	return t_main(argc, argv,
		      T_CASES({ "shapes", shapes }, { "random-dense", case_random_dense },
			      { "random-tiny", case_random_tiny }, { "random-disjoint", case_random_disjoint },
			      { "big", case_big }));
}
