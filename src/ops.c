/* SPDX-License-Identifier: MIT */
/* ops.c - the object operations of libpager and Mach's memory_object
 * calls: sync, return (pager_return: write back, then drop), discard
 * (pager_flush), their queued background form run by the evictor thread,
 * and the per-page errors a failed read leaves (get / clear).  They sit on
 * writeback (dirty.c), reclaim (evict.c), the view iterator and the page
 * machinery. */
#include "core.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int vmo__range_pages(struct vmo_object *o, uint64_t off, uint64_t len, uint64_t *pg0, uint64_t *pg1)
{
	uint64_t end;
	if (!o || !len || ((off | len) & (o->page_size - 1)) || !vmo__add_ok(off, len, &end) || end > o->size)
		return -EINVAL;
	*pg0 = off >> o->page_shift;
	*pg1 = end >> o->page_shift;
	return 0;
}

static int range_args(struct vmo_object *o, uint64_t off, uint64_t len, unsigned flags, uint64_t *pg0,
		      uint64_t *pg1)
{
	return flags & ~VMO_WAIT ? -EINVAL : vmo__range_pages(o, off, len, pg0, pg1);
}

/* ---- the stores' punch (vmo_discard with VMO_PUNCH) ------------------------------------ */

static struct {
	const struct vmo_pager_ops *ops;
	vmo__punch_fn punch;
} punchers[16];
static _Atomic int npunchers;
static pthread_mutex_t punch_mu = PTHREAD_MUTEX_INITIALIZER;

void vmo__pager_punch_register(const struct vmo_pager_ops *ops, vmo__punch_fn punch)
{
	if (vmo__pager_punch_find(ops))
		return;
	pthread_mutex_lock(&punch_mu);
	int n = atomic_load(&npunchers);
	bool have = false;
	for (int i = 0; i < n; i++)
		have |= punchers[i].ops == ops;
	if (!have && n < (int)VMO_ARRAY_SIZE(punchers)) {
		punchers[n].ops = ops;
		punchers[n].punch = punch;
		atomic_store_explicit(&npunchers, n + 1, memory_order_release); /* (the entry first) */
	}
	pthread_mutex_unlock(&punch_mu);
}

vmo__punch_fn vmo__pager_punch_find(const struct vmo_pager_ops *ops)
{
	int n = atomic_load_explicit(&npunchers, memory_order_acquire);
	for (int i = 0; i < n; i++)
		if (punchers[i].ops == ops)
			return punchers[i].punch;
	return NULL;
}

/* Queue [pg0, pg1) for the evictor thread; false if the queue is full (the
 * caller then does the work itself).  A sync queued over a range already
 * queued for sync merges with it. */
static bool queue_bg(struct vmo_object *o, uint64_t pg0, uint64_t pg1, unsigned what)
{
	bool ok = true;
	pthread_mutex_lock(&o->mu);
	int i;
	for (i = 0; i < o->nbg; i++) {
		struct vmo__bgop *b = &o->bgq[i];
		if (b->what == what && b->pg0 <= pg0 && b->pg1 >= pg1)
			break; /* already covered */
	}
	if (i == o->nbg) {
		if (o->nbg == (int)VMO_ARRAY_SIZE(o->bgq))
			ok = false;
		else
			o->bgq[o->nbg++] = (struct vmo__bgop){ pg0, pg1, what };
	}
	if (ok)
		atomic_store(&o->bg, 1);
	pthread_mutex_unlock(&o->mu);
	if (ok)
		vmo__evictor_kick(o->eng);
	return ok;
}

void vmo__run_bg(struct vmo_object *o)
{
	struct vmo__bgop q[VMO_ARRAY_SIZE(o->bgq)];
	pthread_mutex_lock(&o->mu);
	int n = o->nbg;
	memcpy(q, o->bgq, (size_t)n * sizeof *q);
	o->nbg = 0;
	atomic_store(&o->bg, 0);
	pthread_mutex_unlock(&o->mu);
	for (int i = 0; i < n; i++) {
		uint64_t off = q[i].pg0 << o->page_shift, len = (q[i].pg1 - q[i].pg0) << o->page_shift;
		int rc = q[i].what == BG_RETURN ? vmo_return_range(o, off, len, VMO_WAIT)
						: vmo_sync_range(o, off, len, VMO_WAIT);
		if (rc)
			vmo__debug("background %s of %#llx+%#llx: %s", q[i].what == BG_RETURN ? "return" : "sync",
				   (unsigned long long)off, (unsigned long long)len, vmo_strerror(rc));
	}
}

static int durable(struct vmo_object *o)
{
	if (!o->ops->sync)
		return 0;
	if (!vmo__callback_begin(o))
		return -VMO_ESHUTDOWN;
	int rc = o->ops->sync(o->ctx);
	vmo__callback_end(o);
	return rc > 0 ? -EIO : rc;
}

/* vmo_sync_range and vmo_return_range: write [off, off+len) back and make
 * it durable; a return then drops the range's clean pages. */
static int sync_or_return(struct vmo_object *obj, uint64_t off, uint64_t len, unsigned flags, unsigned what)
{
	uint64_t pg0, pg1;
	int rc = range_args(obj, off, len, flags, &pg0, &pg1);
	if (rc)
		return rc;
	if (obj->proxy)
		return obj->proxy->range(obj, what == BG_SYNC ? VMO__RANGE_SYNC : VMO__RANGE_RETURN, off, len, flags);
	if (!(flags & VMO_WAIT) && queue_bg(obj, pg0, pg1, what))
		return 0;
	rc = vmo__writeback(obj, pg0, pg1);
	if (!rc)
		rc = durable(obj);
	if (what == BG_RETURN)
		vmo__evict_clean(obj, pg0, pg1, false); /* failed pages stay: dirty */
	return rc;
}

VMO_API int vmo_sync_range(struct vmo_object *obj, uint64_t off, uint64_t len, unsigned flags)
{
	return sync_or_return(obj, off, len, flags, BG_SYNC);
}

VMO_API int vmo_sync(struct vmo_object *obj, unsigned flags)
{
	return vmo_sync_range(obj, 0, obj ? obj->size : 0, flags);
}

VMO_API int vmo_return_range(struct vmo_object *obj, uint64_t off, uint64_t len, unsigned flags)
{
	return sync_or_return(obj, off, len, flags, BG_RETURN);
}

VMO_API int vmo_return(struct vmo_object *obj, unsigned flags)
{
	return vmo_return_range(obj, 0, obj ? obj->size : 0, flags);
}

VMO_API int vmo_discard_range(struct vmo_object *obj, uint64_t off, uint64_t len, unsigned flags)
{
	uint64_t pg0, pg1;
	int rc = range_args(obj, off, len, flags & ~VMO_PUNCH, &pg0, &pg1);
	if (rc)
		return rc;
	if (obj->proxy) {
		if (flags & VMO_PUNCH) {
			vmo__set_detail("vmo_discard: VMO_PUNCH is not for an object opened from a server");
			return -EOPNOTSUPP;
		}
		return obj->proxy->range(obj, VMO__RANGE_DISCARD, off, len, flags);
	}
	vmo__punch_fn punch = NULL;
	if ((flags & VMO_PUNCH) && !(punch = vmo__pager_punch_find(obj->ops))) {
		vmo__set_detail("vmo_discard: VMO_PUNCH needs a store that can free a range (vmo's file, memory, "
				"swap, compressed and NBD stores); this object's pager cannot");
		return -EOPNOTSUPP;
	}
	/* No writeback in flight meanwhile: nothing is half-cleaned.  The
	 * store's copy goes first: a fault meanwhile on a page not in memory
	 * reads the hole, one in memory is dropped next; no writeback can put
	 * old data back (wb_mu).  A punch that fails still drops the pages
	 * (the caller discards them): memory never keeps what the store may
	 * no longer have. */
	pthread_mutex_lock(&obj->wb_mu);
	int prc = punch ? punch(obj->ctx, pg0 << obj->page_shift, (pg1 - pg0) << obj->page_shift) : 0;
	vmo__evict_clean(obj, pg0, pg1, true);
	pthread_mutex_unlock(&obj->wb_mu);
	if (punch) {
		/* A read that began before the punch brings the old data: wait
		 * until no page of the range is being filled, and drop again.
		 * (Outside wb_mu: a fill's reclaim may write back.) */
		for (;;) {
			bool busy = false;
			for (uint64_t pg = pg0; pg < pg1 && !busy; pg++) {
				uint8_t st = ps_get(obj, pg);
				busy = st == PS_FILLING || st == PS_PENDING || st == PS_EVICTING;
			}
			if (!busy)
				break;
			usleep(200);
		}
		pthread_mutex_lock(&obj->wb_mu);
		vmo__evict_clean(obj, pg0, pg1, true);
		pthread_mutex_unlock(&obj->wb_mu);
	}
	for (uint64_t pg = pg0; pg < pg1; pg++)
		if (ps_get(obj, pg) == PS_ERROR)
			vmo_clear_error(obj, pg << obj->page_shift);
	vmo__forget_errors(obj, pg0, pg1); /* refused unlocks too */
	return prc;
}

VMO_API int vmo_discard(struct vmo_object *obj, unsigned flags)
{
	return vmo_discard_range(obj, 0, obj ? obj->size : 0, flags);
}

/* ---- per-page errors ---------------------------------------------------- */

VMO_API int vmo_get_error(struct vmo_object *obj, uint64_t off)
{
	if (!obj || off >= obj->size)
		return -EINVAL;
	if (obj->proxy)
		return vmo__not_on_client("vmo_get_error");
	uint64_t pg = off >> obj->page_shift;
	pthread_mutex_lock(&obj->mu);
	struct vmo__err *e = vmo__find_err(obj, pg);
	int err = e ? e->err : 0;
	pthread_mutex_unlock(&obj->mu);
	if (!err && ps_get(obj, pg) == PS_ERROR)
		err = -EIO;
	return err;
}

VMO_API int vmo_clear_error(struct vmo_object *obj, uint64_t off)
{
	if (!obj || off >= obj->size)
		return -EINVAL;
	if (obj->proxy)
		return vmo__not_on_client("vmo_clear_error");
	uint64_t pg = off >> obj->page_shift, po = pg << obj->page_shift;
	/* The stripe: a fault failing this page (fail_page) sees it either still
	 * failed or already re-armed, never refilled in between. */
	pthread_mutex_t *lk = vmo__wplock(obj, pg);
	pthread_mutex_lock(lk);
	pthread_mutex_lock(&obj->mu);
	struct vmo__err *e = vmo__find_err(obj, pg);
	if (e)
		*e = obj->pages.errs[--obj->pages.nerrs];
	pthread_mutex_unlock(&obj->mu);
	/* Remove the poison markers from every view so that the page faults
	 * again, then let the next fault ask the pager. */
	vmo__views_zap(obj, po, po + obj->page_size, false, "clear_error: removing the poison");
	ps_cas(obj, pg, PS_ERROR, PS_ABSENT);
	pthread_mutex_unlock(lk);
	return 0;
}
