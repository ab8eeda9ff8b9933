/* SPDX-License-Identifier: MIT */
/* heap.c - the program's heap on vmo: jemalloc (Debian's libjemalloc2,
 * which libvmo-run.so links, so it is the program's malloc) gets the extents
 * of its automatic arenas from the segments through its extent hooks
 * (`arena.<i>.extent_hooks`, jemalloc(3)); everything malloc hands out,
 * small or large, is then paged by vmo.
 *
 * The hooks run inside jemalloc, on whatever thread needed memory: they may
 * not malloc (it would re-enter jemalloc) and they do not call libvmo.  So:
 * - alloc takes a range from ranges.c; fresh or punched ranges read as
 *   zeros (*zero = true) and are always "committed";
 * - dalloc declines (jemalloc retains the range and reuses it), decommit
 *   declines, purge declines: a page jemalloc no longer needs stays in the
 *   object and goes to the store when vmo evicts it, rather than being
 *   punched from inside the hook;
 * - split always works; merge only within one segment (a segment is one
 *   object: ranges of two are not one extent of pages).
 *
 * vmo's own threads, and a program thread while it is inside libvmo, use
 * an arena of kernel memory made with jemalloc's default hooks (the kernel
 * arena): vmo must never wait on a fault of memory it pages itself, and
 * the stores' own buffers (compressed pages) are memory, not heap. */
#include "run.h"

#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

bool vr__heap_on;

/* jemalloc reads this (jemalloc(3), "malloc_conf"), before MALLOC_CONF:
 * one arena (vr__heap_init says why), no separate arena for huge
 * allocations (made on first use, its hooks could not be set), no purging by decay (the hooks decline it:
 * vmo's budget, not jemalloc, decides what leaves memory). */
__attribute__((visibility("default"))) const char *malloc_conf =
	"narenas:1,oversize_threshold:0,dirty_decay_ms:-1,muzzy_decay_ms:-1";
static unsigned kernel_arena;
/* Arena 0's hooks before ours (jemalloc's defaults): the extents it made
 * before vmo run's library started are theirs to handle.  Only arena 0 has
 * our hooks (the kernel arena keeps the defaults), so ind is always 0. */
static extent_hooks_t *old;

static bool ours(void *addr, size_t size)
{
	return vr__seg_span(addr, size) != NULL;
}

static void *h_alloc(extent_hooks_t *h, void *new_addr, size_t size, size_t alignment, bool *zero, bool *commit,
		     unsigned ind)
{
	(void)h, (void)ind;
	void *p;
	if (new_addr)
		p = vr__range_take(new_addr, size) ? new_addr : NULL;
	else
		p = vr__range_alloc(size, alignment < 4096 ? 4096 : alignment);
	if (!p)
		return NULL; /* (jemalloc then says ENOMEM; ranges.c's segments are full) */
	/* a range given back by munmap is PROT_NONE */
	if (vr__sys_mprotect(p, size, PROT_READ | PROT_WRITE)) {
		vr__range_free(p, size);
		return NULL;
	}
	*zero = true;
	*commit = true;
	return p;
}

static bool h_dalloc(extent_hooks_t *h, void *addr, size_t size, bool committed, unsigned ind)
{
	(void)h, (void)committed;
	if (!ours(addr, size) && old && old->dalloc)
		return old->dalloc(old, addr, size, committed, ind);
	return true; /* retained by jemalloc */
}

static void h_destroy(extent_hooks_t *h, void *addr, size_t size, bool committed, unsigned ind)
{
	(void)h;
	if (!ours(addr, size) && old && old->destroy)
		old->destroy(old, addr, size, committed, ind);
}

static bool h_commit(extent_hooks_t *h, void *addr, size_t size, size_t off, size_t len, unsigned ind)
{
	(void)h;
	if (!ours(addr, size) && old && old->commit)
		return old->commit(old, addr, size, off, len, ind);
	return false; /* always committed */
}

static bool h_decommit(extent_hooks_t *h, void *addr, size_t size, size_t off, size_t len, unsigned ind)
{
	(void)h;
	if (!ours(addr, size) && old && old->decommit)
		return old->decommit(old, addr, size, off, len, ind);
	return true;
}

static bool h_purge_lazy(extent_hooks_t *h, void *addr, size_t size, size_t off, size_t len, unsigned ind)
{
	(void)h;
	if (!ours(addr, size) && old && old->purge_lazy)
		return old->purge_lazy(old, addr, size, off, len, ind);
	return true;
}

static bool h_purge_forced(extent_hooks_t *h, void *addr, size_t size, size_t off, size_t len, unsigned ind)
{
	(void)h;
	if (!ours(addr, size) && old && old->purge_forced)
		return old->purge_forced(old, addr, size, off, len, ind);
	return true;
}

static bool h_split(extent_hooks_t *h, void *addr, size_t size, size_t a, size_t b, bool committed, unsigned ind)
{
	(void)h;
	if (!ours(addr, size) && old && old->split)
		return old->split(old, addr, size, a, b, committed, ind);
	return false;
}

static bool h_merge(extent_hooks_t *h, void *a, size_t sa, void *b, size_t sb, bool committed, unsigned ind)
{
	(void)h;
	struct vr_seg *x = vr__seg_span(a, sa), *y = vr__seg_span(b, sb);
	if (!x && !y && old && old->merge)
		return old->merge(old, a, sa, b, sb, committed, ind);
	return !(x && x == y);
}

static extent_hooks_t hooks = {
	.alloc = h_alloc,
	.dalloc = h_dalloc,
	.destroy = h_destroy,
	.commit = h_commit,
	.decommit = h_decommit,
	.purge_lazy = h_purge_lazy,
	.purge_forced = h_purge_forced,
	.split = h_split,
	.merge = h_merge,
};

static bool kernel_ok; /* the kernel arena exists: the inside allocates there */

int vr__heap_prepare(void)
{
	size_t sz = sizeof kernel_arena;
	int rc = mallctl("arenas.create", &kernel_arena, &sz, NULL, 0);
	if (rc) {
		vr__log("jemalloc: arenas.create: %s", strerror(rc));
		return -rc;
	}
	kernel_ok = true;
	/* malloc_conf turned decay off for the segments' arena; the kernel
	 * arena (the stores' compressed pages, libvmo's own) gives freed
	 * memory back to the kernel within a second. */
	char name[64];
	ssize_t dirty = 1000, muzzy = 0;
	snprintf(name, sizeof name, "arena.%u.dirty_decay_ms", kernel_arena);
	mallctl(name, NULL, NULL, &dirty, sizeof dirty);
	snprintf(name, sizeof name, "arena.%u.muzzy_decay_ms", kernel_arena);
	mallctl(name, NULL, NULL, &muzzy, sizeof muzzy);
	return 0;
}

void vr__heap_decay_default(void)
{
	/* The heap stays the kernel's: jemalloc's own defaults for it (10 s,
	 * jemalloc(3)), not malloc_conf's "never". */
	ssize_t dirty = 10000, muzzy = 0;
	mallctl("arena.0.dirty_decay_ms", NULL, NULL, &dirty, sizeof dirty);
	mallctl("arena.0.muzzy_decay_ms", NULL, NULL, &muzzy, sizeof muzzy);
}

int vr__heap_init(void)
{
	int rc;
	size_t sz;
	if (!kernel_ok)
		return -EINVAL;
	/* Arena 0 only (malloc_conf: narenas:1).  It exists already, and its
	 * own structures came from the base of kernel memory; an arena made
	 * now with these hooks would keep its structures in a segment, where
	 * jemalloc's fork handler (which runs before vmo's, the child's
	 * segments not yet mapped) touches them. */
	unsigned narenas;
	sz = sizeof narenas;
	if ((rc = mallctl("opt.narenas", &narenas, &sz, NULL, 0))) {
		vr__log("jemalloc: opt.narenas: %s", strerror(rc));
		return -rc;
	}
	if (narenas != 1) {
		vr__log("jemalloc has %u arenas (MALLOC_CONF narenas?): the heap stays the kernel's", narenas);
		return -EINVAL;
	}
	extent_hooks_t *nh = &hooks;
	sz = sizeof old;
	if ((rc = mallctl("arena.0.extent_hooks", &old, &sz, &nh, sizeof nh))) {
		vr__log("jemalloc: arena.0.extent_hooks: %s", strerror(rc));
		return -rc;
	}
	/* This thread's cache holds regions of the arena it used so far. */
	mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
	vr__heap_on = true;
	return 0;
}

void vr__heap_enter(unsigned *saved)
{
	*saved = ~0u; /* (nothing to restore) */
	if (!kernel_ok)
		return;
	size_t sz = sizeof *saved;
	if (mallctl("thread.arena", saved, &sz, &kernel_arena, sizeof kernel_arena))
		*saved = ~0u;
	mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
}

void vr__heap_leave(unsigned saved)
{
	if (!kernel_ok || saved == ~0u || saved == kernel_arena)
		return;
	mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
	mallctl("thread.arena", NULL, NULL, &saved, sizeof saved);
}

void vr__heap_bind_kernel(void)
{
	if (kernel_ok)
		mallctl("thread.arena", NULL, NULL, &kernel_arena, sizeof kernel_arena);
}
