/* SPDX-License-Identifier: MIT */
/* vtree.h - an intrusive interval tree for views.
 *
 * One balanced tree, used twice:
 *
 *   - per engine, keyed by address: the views of the address space, which
 *     never overlap.  "Which view holds address A" is vmo__vtree_find_le(A)
 *     followed by A < end.
 *   - per object, keyed by object offset: the views of one object, which
 *     may overlap and may share a start.  "Every view overlapping [lo, hi)"
 *     is vmo__vtree_first_overlap() then vmo__vtree_next_overlap() until
 *     NULL, in start order.
 *
 * It is an AVL tree with parent pointers.  Nodes are ordered by (start, node
 * address): equal starts are allowed, and the address tie-break makes every
 * node's place exact, so removing a given node never has to search among its
 * equals.  Each node also carries maxend, the greatest end in its subtree;
 * an overlap search skips any subtree whose maxend <= lo.
 *
 * Intrusive: struct vmo__vnode is embedded in the caller's struct and
 * vmo__vtree_entry() gets back to it.  The tree allocates nothing and takes
 * no lock: the caller serializes writers against everyone, and readers (the
 * lookups, which never write to a node) may run together.
 *
 * Costs, n nodes (height at most 1.44 log2 n):
 *   insert, remove                   O(log n), no allocation
 *   find_le, first, first_overlap    O(log n)
 *   next                             O(1) amortized over a full walk,
 *                                    O(log n) worst
 *   next_overlap                     O(log n); a walk that finds k nodes
 *                                    costs O((k + 1) log n) at worst, and
 *                                    O(log n + k) when the nodes between its
 *                                    first and last all overlap (it is then
 *                                    a plain in-order walk)
 *
 * Intervals are half-open, [start, end), with end > start.  start and end are
 * the key: they must not change while the node is in the tree (maxend and
 * the order would silently go stale).  To move or resize a view, remove its
 * node, edit it, insert it again.
 *
 * A zeroed struct vmo__vtree is an empty tree. */
#ifndef VMO_VTREE_H
#define VMO_VTREE_H

#include <stddef.h>
#include <stdint.h>

struct vmo__vnode {
	struct vmo__vnode *l, *r, *p; /* children and parent (NULL at the root) */
	uint64_t start, end;          /* [start, end), set by the caller before insert */
	uint64_t maxend;              /* greatest end in this subtree; the tree's own */
	int h;                        /* height of this subtree (a leaf is 1); the tree's own */
};

struct vmo__vtree {
	struct vmo__vnode *root;
	size_t n; /* nodes in the tree */
};

/* The struct of `type` whose member `member` is the node ptr (not NULL). */
#define vmo__vtree_entry(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* Insert x, whose start and end (end > start) the caller has set.  x must not
 * be in a tree.  Among equal starts, x goes by its address. */
void vmo__vtree_insert(struct vmo__vtree *t, struct vmo__vnode *x);
/* Remove x, which must be in t.  x's links are cleared; start and end stay. */
void vmo__vtree_remove(struct vmo__vtree *t, struct vmo__vnode *x);

/* The node with the greatest start <= key, or NULL.  Among several with
 * that start, the last in tree order.  With non-overlapping intervals, key
 * is inside the result iff key < result->end. */
struct vmo__vnode *vmo__vtree_find_le(const struct vmo__vtree *t, uint64_t key);

/* In-order walk: first node (smallest start), and x's successor, or NULL. */
struct vmo__vnode *vmo__vtree_first(const struct vmo__vtree *t);
struct vmo__vnode *vmo__vtree_next(const struct vmo__vnode *x);

/* Nodes overlapping [lo, hi) (start < hi && end > lo), in tree order: the
 * first one, and the one after x, or NULL.  x must itself be in the tree;
 * it need not overlap [lo, hi).  An empty range (hi <= lo) overlaps nothing.
 * A walk may remove the node it is on once it has the next one: nodes never
 * move in memory and a removal keeps the others' order, so next_overlap()
 * of a node still in the tree stays right.  (Same for vmo__vtree_next().) */
struct vmo__vnode *vmo__vtree_first_overlap(const struct vmo__vtree *t, uint64_t lo, uint64_t hi);
struct vmo__vnode *vmo__vtree_next_overlap(const struct vmo__vnode *x, uint64_t lo, uint64_t hi);

#endif
