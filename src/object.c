/* SPDX-License-Identifier: MIT */
/* object.c - memory objects: creation over a pager, reference counting,
 * shutdown, the page-state table, per-page errors, fault waiters, stats. */
#include "core.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_OBJECT_SIZE (1ull << 46) /* 64 TiB: the address space must hold a view */
#define DEFAULT_READAHEAD 64
#define MAX_CLUSTER_BYTES (4u << 20)

static int validate_opts(const struct vmo_object_opts *o)
{
	if (o->flags & ~(VMO_OBJ_NO_READAHEAD | VMO_OBJ_MAY_CACHE | VMO_OBJ_GROWS_UP | VMO_OBJ_GROWS_DOWN |
			 VMO_OBJ_SIGNAL_SAFE))
		return -EINVAL;
	if ((o->flags & VMO_OBJ_GROWS_UP) && (o->flags & VMO_OBJ_GROWS_DOWN)) {
		vmo__set_detail("vmo_object_create: an object grows up or down, not both");
		return -EINVAL;
	}
	if (o->max_size > MAX_OBJECT_SIZE || (o->max_size && o->size > o->max_size)) {
		vmo__set_detail("vmo_object_create: max_size is below size or past 2^46");
		return -EINVAL;
	}
	if (o->prot & ~(VMO_PROT_READ | VMO_PROT_WRITE))
		return -EINVAL;
	if (o->name && (strlen(o->name) >= 64 || !o->name[0])) {
		vmo__set_detail("vmo_object_create: a name is 1 to 63 bytes");
		return -EINVAL;
	}
	if ((o->flags & VMO_OBJ_MAY_CACHE) && !o->name) {
		vmo__set_detail("vmo_object_create: VMO_OBJ_MAY_CACHE needs a name (to find the object again)");
		return -EINVAL;
	}
	if (o->page_size && (!vmo__is_pow2(o->page_size) || o->page_size < VMO_PAGE ||
			     o->page_size > VMO_MAX_PAGE_SIZE))
		return -EINVAL;
	if (o->size > MAX_OBJECT_SIZE)
		return -EINVAL;
	for (size_t i = 0; i < VMO_ARRAY_SIZE(o->reserved); i++)
		if (o->reserved[i])
			return -EINVAL;
	return 0;
}

VMO_API int vmo_object_create(struct vmo_engine *eng, const struct vmo_pager_ops *ops, void *ctx,
			      const struct vmo_object_opts *opts, struct vmo_object **out)
{
	static const struct vmo_object_opts defaults;
	if (!eng || !ops || !ops->read || !out)
		return -EINVAL;
	if (!opts)
		opts = &defaults;
	int rc = validate_opts(opts);
	if (rc)
		return rc;
	if (opts->name) {
		/* Mach's cache: the same memory object (name, ops, ctx) released
		 * with may_cache comes back with its pages. */
		struct vmo_object *c = NULL;
		pthread_mutex_lock(&eng->objs_mu);
		for (struct vmo_object *o = eng->objs; o; o = o->next)
			if (o->cached && o->ops == ops && o->ctx == ctx && !strcmp(o->name, opts->name)) {
				c = o;
				break;
			}
		if (c && ((opts->size && vmo__align_up(opts->size, c->page_size) != c->size) ||
			  (opts->page_size && opts->page_size != c->page_size))) {
			pthread_mutex_unlock(&eng->objs_mu);
			vmo__set_detail("vmo_object_create: the cached object \"%s\" has another size or page size",
					opts->name);
			return -EEXIST;
		}
		if (c) {
			c->cached = false;
			atomic_store(&c->urefs, 1); /* its kept reference is the program's again */
			pthread_mutex_unlock(&eng->objs_mu);
			*out = c;
			return 0;
		}
		pthread_mutex_unlock(&eng->objs_mu);
	}
	uint64_t size = opts->size;
	if (!size) {
		if (!ops->report_extent)
			return -EINVAL;
		rc = ops->report_extent(ctx, &size);
		if (rc)
			return rc < 0 ? rc : -EIO;
		if (!size || size > MAX_OBJECT_SIZE)
			return -EINVAL;
	}
	uint32_t psz = opts->page_size ? opts->page_size : VMO_PAGE;
	if (eng->async && ops->unlock) {
		vmo__set_detail("an unlock callback needs synchronous dirty tracking (not VMO_ENGINE_DIRTY_ASYNC)");
		return -EINVAL;
	}

	struct vmo_object *o = calloc(1, sizeof *o);
	if (!o)
		return -ENOMEM;
	o->eng = eng;
	o->ops = ops;
	o->ctx = ctx;
	o->refs = 1;
	o->urefs = 1;
	o->page_size = psz;
	o->page_shift = (uint32_t)__builtin_ctz(psz);
	uint64_t extent = vmo__align_up(size, psz);
	o->size = opts->max_size ? vmo__align_up(opts->max_size, psz) : extent;
	if (o->size < extent)
		o->size = extent; /* (report_extent said more than max_size: the extent wins) */
	o->npages = o->size >> o->page_shift;
	if (opts->flags & VMO_OBJ_GROWS_DOWN) {
		o->lo = o->size - extent;
		o->hi = o->size;
	} else {
		o->lo = 0;
		o->hi = extent;
	}
	uint32_t ra = opts->readahead_max ? opts->readahead_max : DEFAULT_READAHEAD;
	if (opts->flags & VMO_OBJ_NO_READAHEAD)
		ra = 1;
	if ((uint64_t)ra * psz > MAX_CLUSTER_BYTES)
		ra = MAX_CLUSTER_BYTES / psz ? MAX_CLUSTER_BYTES / psz : 1;
	o->ra_max = ra;
	/* Large folios (docs/design.md, Filling through the memfd): the
	 * largest block shmem may give a pwrite one folio for that a cluster
	 * can cover, in pages (at least one: an object page that large is
	 * always written whole).  0: fill with UFFDIO_COPY (4 KiB folios). */
	o->fold = 0;
	if (eng->features & VMO_FEAT_MINOR) {
		unsigned orders = vmo__shmem_folio_orders();
		uint64_t most = (uint64_t)ra * psz;
		for (unsigned k = 1; k <= 10; k++) {
			uint64_t block = 4096ull << k;
			if ((orders & (1u << k)) && (block <= most || block <= psz))
				o->fold = block <= psz ? 1 : (uint32_t)(block / psz);
		}
	}
	o->flags = opts->flags;
	o->prot = opts->prot ? opts->prot : VMO_PROT_READ | VMO_PROT_WRITE;
	if (opts->name)
		snprintf(o->name, sizeof o->name, "%s", opts->name);
	o->may_cache = opts->flags & VMO_OBJ_MAY_CACHE;
	/* Clean pages are supplied write-protected when there is somewhere to
	 * write them back (or the pager wants to hear of first writes). */
	o->track = (ops->write || ops->unlock) && (eng->features & VMO_FEAT_WP) && (eng->features & VMO_FEAT_MINOR);
	if (ops->unlock && !o->track) {
		vmo__set_detail("an unlock callback needs userfaultfd write-protect and minor faults on shmem");
		free(o);
		return -EOPNOTSUPP;
	}
	if (ops->unlock && !(eng->features & VMO_FEAT_CONTINUE_WP)) {
		/* A page another view brought in is mapped by CONTINUE: without
		 * MODE_WP it would be mapped writable, and a first write would
		 * never reach unlock. */
		vmo__set_detail("an unlock callback needs UFFDIO_CONTINUE_MODE_WP (Linux 6.5; vmo info shows "
				"continue-wp)");
		free(o);
		return -EOPNOTSUPP;
	}
	o->memfd = -1;
	pthread_rwlock_init(&o->cow_lock, NULL);
	pthread_mutex_init(&o->mu, NULL);
	pthread_cond_init(&o->cv, NULL);
	pthread_mutex_init(&o->wb_mu, NULL);
	for (int i = 0; i < WP_STRIPES; i++)
		pthread_mutex_init(&o->wplock[i], NULL);
	if (opts->budget_low > opts->budget || (opts->budget && opts->budget < psz)) {
		rc = -EINVAL;
		goto fail;
	}
	o->budget_hi = opts->budget >> o->page_shift;
	o->budget_lo = (opts->budget_low ? opts->budget_low : opts->budget - opts->budget / 8) >> o->page_shift;
	rc = vmo__chunks_init(o);
	if (rc)
		goto fail;

	o->pages.state_len = vmo__align_up(o->npages, VMO_PAGE);
	void *st = mmap(NULL, o->pages.state_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (st == MAP_FAILED) {
		rc = -errno;
		goto fail;
	}
	o->pages.state = st;
	if (ops->unlock) {
		o->pages.wlock_len = vmo__align_up((o->npages + 63) / 64 * 8, VMO_PAGE);
		void *w = mmap(NULL, o->pages.wlock_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			       -1, 0);
		if (w == MAP_FAILED) {
			rc = -errno;
			goto fail;
		}
		o->pages.wlock = w;
	}
	o->memfd = memfd_create("vmo", MFD_CLOEXEC);
	if (o->memfd < 0) {
		rc = -errno;
		goto fail;
	}
	if (ftruncate(o->memfd, (off_t)o->size) < 0) {
		rc = -errno;
		goto fail;
	}
	pthread_mutex_lock(&eng->objs_mu);
	o->next = eng->objs;
	if (eng->objs)
		eng->objs->prev = o;
	eng->objs = o;
	eng->nobjs++;
	pthread_mutex_unlock(&eng->objs_mu);
	*out = o;
	return 0;
fail:
	if (o->memfd >= 0)
		close(o->memfd);
	if (o->pages.state)
		munmap((void *)o->pages.state, o->pages.state_len);
	if (o->pages.wlock)
		munmap((void *)o->pages.wlock, o->pages.wlock_len);
	vmo__chunks_free(o);
	pthread_mutex_destroy(&o->mu);
	pthread_cond_destroy(&o->cv);
	pthread_mutex_destroy(&o->wb_mu);
	pthread_rwlock_destroy(&o->cow_lock);
	for (int i = 0; i < WP_STRIPES; i++)
		pthread_mutex_destroy(&o->wplock[i]);
	free(o);
	return rc;
}

VMO_API void vmo_object_ref(struct vmo_object *obj)
{
	if (obj) {
		atomic_fetch_add(&obj->refs, 1);
		atomic_fetch_add(&obj->urefs, 1);
	}
}

void vmo__stats_add(struct vmo_stats *g, const struct vmo_stats *s)
{
	g->faults += s->faults;
	g->missing_faults += s->missing_faults;
	g->minor_faults += s->minor_faults;
	g->wp_faults += s->wp_faults;
	g->pages_read += s->pages_read;
	g->readahead += s->readahead;
	g->writebacks += s->writebacks;
	g->evictions += s->evictions;
	g->errors += s->errors;
	g->write_errors += s->write_errors;
	g->large_fill += s->large_fill;
}

static void object_free(struct vmo_object *obj);

/* Every drop of a reference but the program's own: under mu, so that the
 * program's last unref, waiting below, is woken by each. */
void vmo__object_put(struct vmo_object *obj)
{
	pthread_mutex_lock(&obj->mu);
	bool last = atomic_fetch_sub(&obj->refs, 1) == 1;
	if (!last)
		pthread_cond_broadcast(&obj->cv);
	pthread_mutex_unlock(&obj->mu);
	if (last)
		object_free(obj);
}

/* The program's last reference, with no view left in its address space
 * (none mapped, or all unmapped by vmo_unmap or by the program itself):
 * wait until vmo's short-lived references are gone (a view the program
 * unmapped, released by the worker that read the event; a fault in flight
 * on it; the evictor's reclaim or queued writeback), so that the writeback
 * and release run here and the program may free what ctx points to as soon
 * as this returns.  Before, they could run on vmo's thread just after:
 * a pager whose store the program freed after its unref was written to
 * after the free.  Bounded by those operations (a pager callback at most).
 * Not on vmo's own threads (a release callback of another object, run by
 * the worker that holds this object's retired view further down its list):
 * there the object goes with vmo's last reference, as before. */
VMO_API void vmo_object_unref(struct vmo_object *obj)
{
	if (!obj)
		return;
	if (obj->proxy) {
		if (atomic_fetch_sub(&obj->urefs, 1) == 1)
			obj->proxy->release(obj);
		return;
	}
	if (atomic_load(&obj->may_cache) && atomic_load(&obj->urefs) == 1 && !atomic_load(&obj->dead)) {
		/* Mach's may_cache: written back, then kept (the program's
		 * reference becomes the engine's) until created again or the
		 * engine goes. */
		int rc = vmo_sync(obj, VMO_WAIT);
		if (rc)
			vmo__warn("object %s cached with pages not written back: %s", obj->name, vmo_strerror(rc));
		pthread_mutex_lock(&obj->eng->objs_mu);
		if (atomic_fetch_sub(&obj->urefs, 1) == 1) {
			obj->cached = true;
			pthread_mutex_unlock(&obj->eng->objs_mu);
			return;
		}
		pthread_mutex_unlock(&obj->eng->objs_mu);
		atomic_fetch_sub(&obj->refs, 1); /* (someone took a reference meanwhile: an ordinary unref) */
		return;
	}
	if (atomic_fetch_sub(&obj->urefs, 1) == 1 && !vmo__on_vmo_thread) {
		/* Events already read (the program's munmap returned) applied
		 * first: the views they retire count out of nmaps. */
		vmo__spaces_barrier(&obj->eng->spaces);
		pthread_mutex_lock(&obj->mu);
		while (obj->nmaps == 0 && atomic_load(&obj->refs) > 1)
			pthread_cond_wait(&obj->cv, &obj->mu);
		pthread_mutex_unlock(&obj->mu);
	}
	vmo__object_put(obj);
}

/* A thread in vmo_object_unref_wait: woken (done, under eng->objs_mu) by
 * object_free once release has returned and the object's memory is gone.
 * It lives on the waiter's stack; a waiter that times out takes itself off
 * the list under the same lock, so object_free never sees a stale one. */
struct vmo__gone_waiter {
	struct vmo__gone_waiter *next;
	pthread_cond_t cv;
	bool done;
};

VMO_API int vmo_object_unref_wait(struct vmo_object *obj, int timeout_ms)
{
	if (!obj)
		return -EINVAL;
	if (vmo__on_vmo_thread) {
		/* Inside a callback (a release of another object run by a
		 * worker, say): the object may go only when this thread
		 * returns.  Nothing is dropped. */
		vmo__set_detail("vmo_object_unref_wait: called on one of vmo's threads (inside a pager callback), "
				"where the object cannot go before the call returns; use vmo_object_unref there");
		return -EDEADLK;
	}
	if (obj->proxy) {
		/* A client's object: its last unref closes it at the server
		 * before returning (nothing of the client runs after). */
		vmo_object_unref(obj);
		return 0;
	}
	struct vmo_engine *eng = obj->eng;
	if (atomic_load(&obj->may_cache) && atomic_load(&obj->urefs) == 1) {
		/* Mach's may_cache: the engine keeps it; release runs when it
		 * is dropped from the cache (vmo_engine_destroy, or
		 * vmo_object_change_attributes after vmo_object_create found
		 * it again and it is unreferenced once more). */
		vmo_object_unref(obj);
		return 1;
	}
	struct vmo__gone_waiter w = { .done = false };
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w.cv, &ca);
	pthread_condattr_destroy(&ca);
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	if (timeout_ms > 0) {
		dl.tv_sec += timeout_ms / 1000;
		dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&eng->objs_mu);
	w.next = obj->gone;
	obj->gone = &w;
	pthread_mutex_unlock(&eng->objs_mu);
	vmo_object_unref(obj); /* may free it here, and mark w done */
	int rc = 0;
	pthread_mutex_lock(&eng->objs_mu);
	while (!w.done) {
		if (timeout_ms == 0) {
			rc = -ETIMEDOUT;
		} else if (timeout_ms < 0) {
			pthread_cond_wait(&w.cv, &eng->objs_mu);
			continue;
		} else if (pthread_cond_timedwait(&w.cv, &eng->objs_mu, &dl) != ETIMEDOUT || w.done) {
			continue;
		} else {
			rc = -ETIMEDOUT;
		}
		/* Still there (object_free marks waiters under this lock
		 * before it frees obj): take w off its list. */
		for (struct vmo__gone_waiter **pp = &obj->gone; *pp; pp = &(*pp)->next)
			if (*pp == &w) {
				*pp = w.next;
				break;
			}
		break;
	}
	pthread_mutex_unlock(&eng->objs_mu);
	pthread_cond_destroy(&w.cv);
	return rc;
}

static void object_free(struct vmo_object *obj)
{
	int rc = vmo_object_shutdown(obj); /* writes dirty pages back */
	long lost = atomic_load(&obj->pages.dirty_pages);
	if (rc && obj->ops->write)
		vmo__err("object released with %ld dirty pages not written back: %s", lost, vmo_strerror(rc));
	struct vmo_engine *eng = obj->eng;
	struct vmo_stats s;
	vmo_object_stats(obj, &s);
	pthread_mutex_lock(&eng->objs_mu);
	if (obj->prev)
		obj->prev->next = obj->next;
	else
		eng->objs = obj->next;
	if (obj->next)
		obj->next->prev = obj->prev;
	eng->nobjs--;
	vmo__stats_add(&eng->gone, &s);
	pthread_mutex_unlock(&eng->objs_mu);
	/* Off the list: no new pins; wait out the evictor's (it may be in the
	 * middle of reclaiming this object). */
	while (atomic_load(&obj->pins))
		usleep(100);
	if (obj->ops->release)
		obj->ops->release(obj->ctx);
	if (obj->own_ctx)
		free(obj->ctx);
	/* Its memory goes with the memfd: take it off the engine's count. */
	atomic_fetch_sub(&eng->resident, (uint64_t)atomic_load(&obj->pages.resident_pages) << obj->page_shift);
	close(obj->memfd);
	munmap((void *)obj->pages.state, obj->pages.state_len);
	if (obj->pages.wlock)
		munmap((void *)obj->pages.wlock, obj->pages.wlock_len);
	if (obj->pages.pins)
		munmap((void *)obj->pages.pins, obj->pages.pins_len);
	vmo__chunks_free(obj);
	free(obj->pages.errs);
	free(obj->pages.pend);
	pthread_mutex_destroy(&obj->mu);
	pthread_cond_destroy(&obj->cv);
	pthread_mutex_destroy(&obj->wb_mu);
	pthread_rwlock_destroy(&obj->cow_lock);
	for (int i = 0; i < WP_STRIPES; i++)
		pthread_mutex_destroy(&obj->wplock[i]);
	/* Gone: wake vmo_object_unref_wait (w->cv is the waiter's; it cannot
	 * return before done is set, under this lock). */
	pthread_mutex_lock(&eng->objs_mu);
	for (struct vmo__gone_waiter *w = obj->gone, *n; w; w = n) {
		n = w->next;
		w->done = true;
		pthread_cond_signal(&w->cv);
	}
	obj->gone = NULL;
	pthread_mutex_unlock(&eng->objs_mu);
	free(obj);
}

VMO_API int vmo_object_shutdown(struct vmo_object *obj)
{
	if (!obj)
		return -EINVAL;
	if (obj->proxy)
		return vmo__not_on_client("vmo_object_shutdown");
	/* As libpager's pager_shutdown: write everything back first. */
	int rc = 0;
	/* Async tracking: writes since the last collection are not counted in
	 * dirty_pages yet, so always look. */
	if (!atomic_load(&obj->dead) && (atomic_load(&obj->pages.dirty_pages) || obj->eng->async))
		rc = vmo_sync(obj, VMO_WAIT);
	pthread_mutex_lock(&obj->mu);
	atomic_store(&obj->dead, 1);
	while (obj->pages.inflight)
		pthread_cond_wait(&obj->cv, &obj->mu);
	pthread_mutex_unlock(&obj->mu);
	/* Reads the pager would answer later are given up (a supply now gets
	 * -VMO_ESHUTDOWN).  Faults parked on pages that were being filled: let
	 * them fault again and meet the shut-down object (SIGBUS). */
	vmo__pending_abandon(obj);
	vmo__wake_waiters(obj, 0, obj->npages);
	return rc;
}

VMO_API int vmo_object_create_alloc(struct vmo_engine *eng, const struct vmo_pager_ops *ops, size_t ctx_size,
				    const struct vmo_object_opts *opts, struct vmo_object **out)
{
	if (!ctx_size || ctx_size > (1u << 30))
		return -EINVAL;
	void *ctx = calloc(1, ctx_size);
	if (!ctx)
		return -ENOMEM;
	int rc = vmo_object_create(eng, ops, ctx, opts, out);
	if (rc)
		free(ctx);
	else
		(*out)->own_ctx = true;
	return rc;
}

VMO_API int vmo_object_change_attributes(struct vmo_object *obj, uint32_t flags, uint32_t readahead_max)
{
	if (!obj || (flags & ~VMO_OBJ_MAY_CACHE))
		return -EINVAL;
	if (obj->proxy)
		return vmo__not_on_client("vmo_object_change_attributes");
	if ((flags & VMO_OBJ_MAY_CACHE) && !obj->name[0]) {
		vmo__set_detail("vmo_object_change_attributes: VMO_OBJ_MAY_CACHE needs a named object");
		return -EINVAL;
	}
	atomic_store(&obj->may_cache, (flags & VMO_OBJ_MAY_CACHE) != 0);
	if (readahead_max) {
		uint64_t ra = readahead_max;
		if (ra * obj->page_size > MAX_CLUSTER_BYTES)
			ra = MAX_CLUSTER_BYTES / obj->page_size ? MAX_CLUSTER_BYTES / obj->page_size : 1;
		atomic_store(&obj->ra_max, (uint32_t)ra);
	}
	return 0;
}

VMO_API int vmo_object_resize(struct vmo_object *obj, uint64_t new_size)
{
	if (!obj)
		return -EINVAL;
	if (obj->proxy)
		return vmo__not_on_client("vmo_object_resize");
	if (!new_size) {
		if (!obj->ops->report_extent) {
			vmo__set_detail("vmo_object_resize: size 0 asks report_extent, which the pager lacks");
			return -EINVAL;
		}
		if (!vmo__callback_begin(obj))
			return -VMO_ESHUTDOWN;
		int rc = obj->ops->report_extent(obj->ctx, &new_size);
		vmo__callback_end(obj);
		if (rc)
			return rc < 0 ? rc : -EIO;
	}
	uint64_t n = vmo__align_up(new_size, obj->page_size);
	if (!n || n > obj->size) {
		vmo__set_detail("vmo_object_resize: %llu bytes is 0 or past the object's max_size (%llu)",
				(unsigned long long)new_size, (unsigned long long)obj->size);
		return n ? -EFBIG : -EINVAL;
	}
	bool down = obj->flags & VMO_OBJ_GROWS_DOWN;
	uint64_t lo = down ? obj->size - n : 0, hi = down ? obj->size : n;
	/* One resize (and one writeback) at a time while the window moves. */
	pthread_mutex_lock(&obj->wb_mu);
	uint64_t olo = atomic_load(&obj->lo), ohi = atomic_load(&obj->hi);
	uint64_t cut[2][2] = { { olo, lo > olo ? lo : olo }, { hi < ohi ? hi : ohi, ohi } };
	bool shrinks = cut[0][0] < cut[0][1] || cut[1][0] < cut[1][1];
	if (shrinks && atomic_load(&obj->nclones)) {
		/* (its clones read what they have not read yet from it, as it
		 * was: the pages left out must stay readable) */
		pthread_mutex_unlock(&obj->wb_mu);
		vmo__set_detail("vmo_object_resize: the object has clones; it may grow, not shrink");
		return -EBUSY;
	}
	/* Pages left out must not be pinned. */
	for (int c = 0; c < 2; c++)
		for (uint64_t pg = cut[c][0] >> obj->page_shift; pg < cut[c][1] >> obj->page_shift; pg++)
			if (vmo__pinned(obj, pg)) {
				pthread_mutex_unlock(&obj->wb_mu);
				vmo__set_detail("vmo_object_resize: page %#llx, which would be left out, is pinned",
						(unsigned long long)pg);
				return -EBUSY;
			}
	atomic_store(&obj->lo, lo);
	atomic_store(&obj->hi, hi);
	pthread_mutex_unlock(&obj->wb_mu);
	/* The pages left out go (dirty ones unwritten, as a truncate); a fault
	 * on them now is outside the window: SIGBUS.  Pages in transit (being
	 * read, written back, dropped) are waited for and dropped in turn;
	 * failed ones are made absent (their poison zapped from the views). */
	for (int c = 0; c < 2; c++) {
		uint64_t pg0 = cut[c][0] >> obj->page_shift, pg1 = cut[c][1] >> obj->page_shift;
		for (int pass = 0; pg0 < pg1; pass++) {
			pthread_mutex_lock(&obj->wb_mu);
			vmo__evict_clean(obj, pg0, pg1, true);
			pthread_mutex_unlock(&obj->wb_mu);
			bool left = false, failed = false;
			for (uint64_t pg = pg0; pg < pg1; pg++) {
				uint8_t st = ps_get(obj, pg);
				if (st == PS_ERROR)
					failed = ps_cas(obj, pg, PS_ERROR, PS_ABSENT) || failed;
				else if (st != PS_ABSENT)
					left = true;
			}
			if (failed)
				vmo__views_zap(obj, pg0 << obj->page_shift, pg1 << obj->page_shift, false, NULL);
			vmo__forget_errors(obj, pg0, pg1);
			if (!left)
				break;
			if (pass > 2000) {
				vmo__warn("vmo_object_resize: pages outside the new window still in transit; left");
				break;
			}
			usleep(pass < 10 ? 100 : 1000);
		}
	}
	return 0;
}

VMO_API const char *vmo_object_name(const struct vmo_object *obj)
{
	return obj ? obj->name : "";
}

VMO_API uint64_t vmo_object_size(const struct vmo_object *obj)
{
	if (!obj)
		return 0;
	if (obj->proxy)
		return obj->size;
	return atomic_load(&((struct vmo_object *)obj)->hi) - atomic_load(&((struct vmo_object *)obj)->lo);
}

VMO_API size_t vmo_object_page_size(const struct vmo_object *obj)
{
	return obj ? obj->page_size : 0;
}

VMO_API void *vmo_object_ctx(const struct vmo_object *obj)
{
	return obj && !obj->proxy ? obj->ctx : NULL;
}

/* ---- stats ---------------------------------------------------------------- */

VMO_API int vmo_object_stats_sized(struct vmo_object *obj, struct vmo_stats *out, size_t size)
{
	struct vmo_stats s, *st = &s;
	if (!obj || !out || size < offsetof(struct vmo_stats, resident))
		return -EINVAL;
	memset(st, 0, sizeof *st);
	if (obj->proxy) {
		int rc = obj->proxy->stats(obj, st);
		if (rc)
			return rc;
		goto out;
	}
	st->resident = (uint64_t)atomic_load(&obj->pages.resident_pages) << obj->page_shift;
	st->dirty = (uint64_t)atomic_load(&obj->pages.dirty_pages) << obj->page_shift;
	st->faults = atomic_load(&obj->st.faults);
	st->missing_faults = atomic_load(&obj->st.missing);
	st->minor_faults = atomic_load(&obj->st.minor);
	st->wp_faults = atomic_load(&obj->st.wp);
	st->pages_read = atomic_load(&obj->st.pages_read);
	st->readahead = atomic_load(&obj->st.readahead);
	st->writebacks = atomic_load(&obj->st.writebacks);
	st->evictions = atomic_load(&obj->st.evictions);
	st->errors = atomic_load(&obj->st.errors);
	st->write_errors = atomic_load(&obj->st.write_errors);
	st->large_fill = atomic_load(&obj->st.large_fill);
	st->budget = (uint64_t)atomic_load(&obj->budget_hi) << obj->page_shift;
	st->pinned = (uint64_t)atomic_load(&obj->pages.pinned_pages) << obj->page_shift;
	/* Views the program unmapped (an event already read) are counted out. */
	vmo__spaces_barrier(&obj->eng->spaces);
	pthread_mutex_lock(&obj->mu);
	st->mappings = (uint64_t)obj->nmaps;
	pthread_mutex_unlock(&obj->mu);
out:;
	vmo__sized_out(out, size, &s, sizeof s, VMO_STATS_VERSION);
	return 0;
}
