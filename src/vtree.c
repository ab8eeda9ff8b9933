/* SPDX-License-Identifier: MIT */
/* vtree.c - the AVL interval tree of vtree.h.
 *
 * Every structural change (a link, an unlink, a rotation) leaves the
 * heights and maxends wrong only on the path from the changed node to the
 * root.  So insert and remove each make their change, then call rebalance()
 * on the lowest changed node: it walks that path up to the root, recomputes
 * each node from its children, and rotates where the heights of the two
 * children differ by 2.  Walking all the way up (rather than stopping once a
 * height stops changing, as a plain AVL tree may) is what keeps maxend right:
 * a removed node's end can be the maxend of every ancestor. */
#include "vtree.h"

#include <stdbool.h>

static inline int height(const struct vmo__vnode *n) { return n ? n->h : 0; }

static inline uint64_t max64(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* Recompute n's height and maxend from its children. */
static inline void update(struct vmo__vnode *n)
{
	int hl = height(n->l), hr = height(n->r);
	uint64_t m = n->end;
	n->h = 1 + (hl > hr ? hl : hr);
	if (n->l)
		m = max64(m, n->l->maxend);
	if (n->r)
		m = max64(m, n->r->maxend);
	n->maxend = m;
}

/* (a->start, a) < (b->start, b): the tree's order. */
static inline bool before(const struct vmo__vnode *a, const struct vmo__vnode *b)
{
	if (a->start != b->start)
		return a->start < b->start;
	return (uintptr_t)a < (uintptr_t)b;
}

/* Make `to` take old's place under parent p (or at the root).  Does not set
 * to->p. */
static inline void replace_child(struct vmo__vtree *t, struct vmo__vnode *p, struct vmo__vnode *old,
				 struct vmo__vnode *to)
{
	if (!p)
		t->root = to;
	else if (p->l == old)
		p->l = to;
	else
		p->r = to;
}

/*      x              y
 *     / \            / \
 *    a   y    ->    x   c
 *       / \        / \
 *      b   c      a   b
 * Returns y, the subtree's new root; x and y are recomputed. */
static struct vmo__vnode *rotate_left(struct vmo__vtree *t, struct vmo__vnode *x)
{
	struct vmo__vnode *y = x->r;
	x->r = y->l;
	if (y->l)
		y->l->p = x;
	y->p = x->p;
	replace_child(t, x->p, x, y);
	y->l = x;
	x->p = y;
	update(x);
	update(y);
	return y;
}

/* The mirror image of rotate_left. */
static struct vmo__vnode *rotate_right(struct vmo__vtree *t, struct vmo__vnode *x)
{
	struct vmo__vnode *y = x->l;
	x->l = y->r;
	if (y->r)
		y->r->p = x;
	y->p = x->p;
	replace_child(t, x->p, x, y);
	y->r = x;
	x->p = y;
	update(x);
	update(y);
	return y;
}

/* Recompute n and each of its ancestors, rotating any that is out of
 * balance.  The children of every node on the path are already correct:
 * they are either off the path (untouched) or the node below it on the
 * path, done the step before.  A double rotation is needed when the heavy
 * child leans the other way (the zig-zag case). */
static void rebalance(struct vmo__vtree *t, struct vmo__vnode *n)
{
	while (n) {
		int bal = height(n->l) - height(n->r);
		if (bal > 1) {
			if (height(n->l->l) < height(n->l->r))
				rotate_left(t, n->l);
			n = rotate_right(t, n);
		} else if (bal < -1) {
			if (height(n->r->r) < height(n->r->l))
				rotate_right(t, n->r);
			n = rotate_left(t, n);
		} else {
			update(n);
		}
		n = n->p;
	}
}

void vmo__vtree_insert(struct vmo__vtree *t, struct vmo__vnode *x)
{
	struct vmo__vnode *p = NULL, **link = &t->root;
	while (*link) {
		p = *link;
		link = before(x, p) ? &p->l : &p->r;
	}
	x->l = x->r = NULL;
	x->p = p;
	x->h = 1;
	x->maxend = x->end;
	*link = x;
	t->n++;
	rebalance(t, p);
}

void vmo__vtree_remove(struct vmo__vtree *t, struct vmo__vnode *x)
{
	struct vmo__vnode *fix; /* the lowest node whose subtree changed */
	if (!x->l || !x->r) {
		/* At most one child: it moves up into x's place. */
		struct vmo__vnode *c = x->l ? x->l : x->r;
		if (c)
			c->p = x->p;
		replace_child(t, x->p, x, c);
		fix = x->p;
	} else {
		/* Two children: x's successor y (the leftmost node of x->r, so
		 * y has no left child) takes x's place.  The node is moved, not
		 * its contents: callers hold pointers to their nodes. */
		struct vmo__vnode *y = x->r;
		while (y->l)
			y = y->l;
		if (y->p == x) {
			fix = y; /* y keeps its right subtree, gains x's left */
		} else {
			fix = y->p; /* y's old parent lost its leftmost node */
			y->p->l = y->r;
			if (y->r)
				y->r->p = y->p;
			y->r = x->r;
			x->r->p = y;
		}
		y->l = x->l;
		x->l->p = y;
		y->p = x->p;
		replace_child(t, x->p, x, y);
	}
	t->n--;
	x->l = x->r = x->p = NULL;
	rebalance(t, fix);
}

struct vmo__vnode *vmo__vtree_find_le(const struct vmo__vtree *t, uint64_t key)
{
	struct vmo__vnode *n = t->root, *best = NULL;
	while (n) {
		if (n->start <= key) {
			best = n; /* a candidate; anything better is to its right */
			n = n->r;
		} else {
			n = n->l;
		}
	}
	return best;
}

static struct vmo__vnode *leftmost(struct vmo__vnode *n)
{
	while (n->l)
		n = n->l;
	return n;
}

struct vmo__vnode *vmo__vtree_first(const struct vmo__vtree *t)
{
	return t->root ? leftmost(t->root) : NULL;
}

struct vmo__vnode *vmo__vtree_next(const struct vmo__vnode *x)
{
	if (x->r)
		return leftmost(x->r);
	/* Up until we arrive from a left child: that parent is next. */
	while (x->p && x == x->p->r)
		x = x->p;
	return x->p;
}

/* The first node, in tree order, of the subtree at n with end > lo; n must
 * have maxend > lo, so there is one.  Each step goes down: left if the left
 * subtree has one, else n itself if it qualifies, else the right subtree
 * (which must then have one). */
static struct vmo__vnode *first_end_above(struct vmo__vnode *n, uint64_t lo)
{
	for (;;) {
		if (n->l && n->l->maxend > lo)
			n = n->l;
		else if (n->end > lo)
			return n;
		else
			n = n->r;
	}
}

/* Overlap walks rest on one observation: a node overlaps [lo, hi) iff
 * end > lo and start < hi, and in tree order starts only grow.  So the
 * overlapping nodes after a given point are found by taking the next node
 * with end > lo (maxend prunes the rest) and stopping the walk as soon as
 * such a node has start >= hi: every node after it starts at hi or later. */

struct vmo__vnode *vmo__vtree_first_overlap(const struct vmo__vtree *t, uint64_t lo, uint64_t hi)
{
	struct vmo__vnode *n;
	if (hi <= lo || !t->root || t->root->maxend <= lo)
		return NULL;
	n = first_end_above(t->root, lo);
	return n->start < hi ? n : NULL;
}

struct vmo__vnode *vmo__vtree_next_overlap(const struct vmo__vnode *x, uint64_t lo, uint64_t hi)
{
	struct vmo__vnode *n;
	if (hi <= lo)
		return NULL;
	if (x->r && x->r->maxend > lo) {
		n = first_end_above(x->r, lo);
		return n->start < hi ? n : NULL;
	}
	/* Nothing after x in its own subtree: climb.  Each time we come up
	 * from a left child, the parent p is the next node in order, and p's
	 * right subtree follows it. */
	for (;;) {
		const struct vmo__vnode *p = x->p;
		if (!p)
			return NULL;
		if (x == p->l) {
			if (p->start >= hi)
				return NULL; /* p and all after it start too late */
			if (p->end > lo)
				return (struct vmo__vnode *)p;
			if (p->r && p->r->maxend > lo) {
				n = first_end_above(p->r, lo);
				return n->start < hi ? n : NULL;
			}
		}
		x = p;
	}
}
