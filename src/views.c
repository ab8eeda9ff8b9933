/* SPDX-License-Identifier: MIT */
/* views.c - the object's side of views: its tree of views by offset (what
 * the spaces link and unlink when a view comes or goes, through the hooks
 * the engine gives them), and the one iterator over an object's views that
 * everything acting on views uses (writeback protect, reclaim zap, async
 * flush and collection, clearing an error).  Nothing else walks views or
 * names a userfaultfd for a view. */
#include "core.h"

#include <stdlib.h>
#include <string.h>

/* ---- hooks -------------------------------------------------------------------- */

void vmo__views_link(struct vmo_object *obj, struct vmo_map *m)
{
	pthread_mutex_lock(&obj->mu);
	vmo__vtree_insert(&obj->views, &m->onode);
	obj->nmaps++;
	obj->nwmaps += m->wp;
	pthread_mutex_unlock(&obj->mu);
}

void vmo__views_unlink(struct vmo_object *obj, struct vmo_map *m)
{
	pthread_mutex_lock(&obj->mu);
	vmo__vtree_remove(&obj->views, &m->onode);
	obj->nmaps--;
	obj->nwmaps -= m->wp;
	pthread_mutex_unlock(&obj->mu);
}

/* Async tracking keeps what was written only in the page tables: a view
 * unmapped by the program took that knowledge with it.  Count every clean
 * page it showed as dirty (written back once more; never a write lost). */
void vmo__views_lost_writes(struct vmo_object *o, uint64_t off, uint64_t len)
{
	for (uint64_t pg = off >> o->page_shift; pg < (off + len) >> o->page_shift; pg++)
		ps_mark_written(o, pg);
}


/* ---- the iterator ------------------------------------------------------------- */

/* One pass over a snapshot of the views; true if one of them turned out to
 * be gone (unmapped or split by the program since the snapshot, or while
 * fn acted on it: fn returned -ENOENT). */
static bool views_pass(struct vmo_object *o, uint64_t lo, uint64_t hi, bool wp_only,
		       int (*fn)(struct vmo_map *m, uintptr_t addr, size_t len, void *arg), void *arg, int *err)
{
	struct vmo_map *few[16], **v = few, *m;
	size_t k = 0, cap = 16;
	bool gone = false;
	/* Take the views with a reference under the object's lock, then act on
	 * each under its space's lock (never under the object's: applying an
	 * event takes the space's lock, then the object's). */
	pthread_mutex_lock(&o->mu);
	vmo__for_each_view(o, m, lo, hi) {
		if (wp_only && !m->wp)
			continue;
		if (k == cap) {
			struct vmo_map **nv = malloc(cap * 2 * sizeof *nv);
			if (!nv) {
				if (!*err)
					*err = -ENOMEM;
				break;
			}
			memcpy(nv, v, k * sizeof *nv);
			if (v != few)
				free(v);
			v = nv;
			cap *= 2;
		}
		vmo__map_get(m);
		v[k++] = m;
	}
	pthread_mutex_unlock(&o->mu);
	for (size_t i = 0; i < k; i++) {
		m = v[i];
		uint64_t a = lo > m->off ? lo : m->off, b = hi < m->off + m->len ? hi : m->off + m->len;
		if (a < b) {
			if (vmo__space_enter(m->space, m)) {
				int rc = fn(m, m->addr + (uintptr_t)(a - m->off), (size_t)(b - a), arg);
				vmo__space_exit(m->space);
				if (rc == -ENOENT)
					gone = true;
				else if (rc && !*err)
					*err = rc;
			} else if (atomic_load(&m->dead) && !atomic_load(&m->space->dead)) {
				gone = true;
			}
		}
		vmo__map_put(m);
	}
	if (v != few)
		free(v);
	return gone;
}

int vmo__views_each(struct vmo_object *o, uint64_t lo, uint64_t hi, bool wp_only,
		    int (*fn)(struct vmo_map *m, uintptr_t addr, size_t len, void *arg), void *arg)
{
	int err = 0;
	/* A view the program split or moved meanwhile is retired and its
	 * pieces are new views the snapshot did not hold: look again (what fn
	 * does is idempotent), so that no piece is missed (writeback would
	 * otherwise mark clean a page still writable in one).  Each retry
	 * follows a real munmap/mremap of the program's. */
	for (int pass = 0; views_pass(o, lo, hi, wp_only, fn, arg, &err); pass++) {
		if (pass == 64) {
			if (!err)
				err = -EAGAIN; /* the caller keeps what it could not finish */
			break;
		}
	}
	return err;
}

/* The kernel operation a zap is: drop the page-table entries of the view's
 * range (the pages stay in the object).  arg: what to say in a warning when
 * it fails, or NULL to stay quiet (another process's views cannot be
 * zapped; a process gone is no failure). */
static int zap_view(struct vmo_map *m, uintptr_t addr, size_t len, void *arg)
{
	const char *what = arg;
	int rc = m->space->ops->zap(m->space, (void *)addr, len);
	if (rc && rc != -ESRCH && what)
		vmo__warn("%s: zapping %#lx (%s space): %s", what, (unsigned long)addr, m->space->ops->kind,
			  strerror(-rc));
	return 0;
}

void vmo__views_zap(struct vmo_object *o, uint64_t lo, uint64_t hi, bool wp_only, const char *what)
{
	vmo__views_each(o, lo, hi, wp_only, zap_view, (void *)what);
}
