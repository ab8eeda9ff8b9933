/* SPDX-License-Identifier: MIT */
/* clone.c - copy-on-write clones (a microkernel vm_object's duplicate_cow, Mach's copy
 * objects): vmo_object_clone.
 *
 * A clone is an object of its own (its memfd, its views) whose pager reads
 * a page it has never had from its source, as the source holds it now:
 * unchanged since the clone, because every write that would change a page
 * of the source first pushes the page as it is to each clone that does not
 * have it yet (the source's cow_push, called by the write fault path and by
 * vmo_memcpy under the source's cow_lock held for reading).  A pushed page
 * is dirty in the clone: kept in memory, or written back to the clone's own
 * pager if it has one; pages it wrote back are read from that pager again.
 *
 * The clones of a source are on its list (under its mu); a clone holds a
 * program-kind reference on its source (the program may let the source go
 * and keep the clone).
 *
 * Making a clone costs what the source holds dirty, not what it holds:
 * under the source's cow_lock held for writing (no write in progress), the
 * source is synced, which leaves every page of it clean and write-protected
 * in every view, so that the next write to any of them traps and pushes.
 * Pages the source does not hold are its pager's, which holds them as they
 * were.  The source must therefore track writes (a write callback, and
 * write-protect faults: VMO_FEAT_WP with MINOR): -EOPNOTSUPP otherwise.
 *
 * What the source's pager does to its own data (an offer, a supply, a
 * failed range of the source) is not a write: clones that have not read
 * those pages yet see what the pager says.  docs/api.md. */
#include "core.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct clone {
	struct clone *next;        /* the source's list (under its mu) */
	struct vmo_object *self;
	struct vmo_object *src;    /* a reference (vmo_object_ref) */
	const struct vmo_pager_ops *uops; /* the clone's own pager, or NULL */
	void *uctx;
	_Atomic uint8_t *own;      /* per page: written back to the own pager */
	size_t own_len;
};

/* ---- the clone's pager ------------------------------------------------------ */

static int c_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct clone *c = ctx;
	size_t ps = c->self ? c->self->page_size : c->src->page_size;
	for (size_t at = 0; at < len;) {
		uint64_t pg = (off + at) / ps;
		bool own = c->own && atomic_load(&c->own[pg]);
		size_t run = ps;
		while (at + run < len && (c->own && atomic_load(&c->own[pg + run / ps])) == own)
			run += ps;
		int rc;
		if (own) {
			rc = c->uops->read(c->uctx, off + at, (char *)buf + at, run, flags);
		} else {
			size_t done;
			rc = vmo_memcpy(c->src, off + at, (char *)buf + at, run, 0, &done);
		}
		if (rc)
			return rc < 0 ? rc : -EIO;
		at += run;
	}
	return 0;
}

static int c_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct clone *c = ctx;
	int rc = c->uops->write(c->uctx, off, buf, len);
	if (!rc)
		for (uint64_t pg = off / c->self->page_size; pg < (off + len) / c->self->page_size; pg++)
			atomic_store(&c->own[pg], 1);
	return rc;
}

static int c_sync(void *ctx)
{
	struct clone *c = ctx;
	return c->uops->sync ? c->uops->sync(c->uctx) : 0;
}

static void c_notify_evict(void *ctx, uint64_t off, uint64_t len)
{
	struct clone *c = ctx;
	if (c->uops && c->uops->notify_evict)
		c->uops->notify_evict(c->uctx, off, len);
}

static void c_release(void *ctx)
{
	struct clone *c = ctx;
	struct vmo_object *src = c->src;
	if (src) {
		pthread_mutex_lock(&src->mu);
		for (struct clone **pp = (struct clone **)&src->clones; *pp; pp = &(*pp)->next)
			if (*pp == c) {
				*pp = c->next;
				atomic_fetch_sub(&src->nclones, 1);
				break;
			}
		pthread_mutex_unlock(&src->mu);
		/* (the program's kind of reference: the program may drop its own
		 * first and keep the clone) */
		vmo_object_unref(src);
	}
	if (c->uops && c->uops->release)
		c->uops->release(c->uctx);
	if (c->own)
		munmap((void *)c->own, c->own_len);
	free(c);
}

static const struct vmo_pager_ops gone_ops = { .read = c_read }; /* (a clone that never was) */
static const struct vmo_pager_ops anon_ops = {
	.read = c_read, .notify_evict = c_notify_evict, .release = c_release,
};
static const struct vmo_pager_ops own_ops = {
	.read = c_read, .write = c_write, .sync = c_sync, .notify_evict = c_notify_evict, .release = c_release,
};

/* ---- pushing ---------------------------------------------------------------- */

/* Page pg of src is about to change: every clone gets it as it is unless
 * it holds it already as its own (dirty, or written back to its own
 * pager); a clone's clean copy read from us is made dirty (it may not be
 * dropped now: read again, it would come from us, changed).  Under src's
 * cow_lock held for reading; the clones are held by references taken
 * under src->mu, dropped at the end (a clone's last one may go here). */
static void push(struct vmo_object *src, uint64_t pg)
{
	struct clone *list[16], **v = list;
	size_t n = 0, cap = 16;
	pthread_mutex_lock(&src->mu);
	for (struct clone *c = src->clones; c; c = c->next) {
		if (n == cap) {
			struct clone **nv = malloc(2 * cap * sizeof *nv);
			if (!nv)
				break; /* (no memory: the rest of the clones will read the new bytes) */
			memcpy(nv, v, n * sizeof *nv);
			if (v != list)
				free(v);
			v = nv;
			cap *= 2;
		}
		if (c->self && !atomic_load(&c->self->dead)) {
			vmo__object_get(c->self);
			v[n++] = c;
		}
	}
	pthread_mutex_unlock(&src->mu);
	char *page = NULL;
	for (size_t i = 0; i < n; i++) {
		struct clone *c = v[i];
		struct vmo_object *o = c->self;
		bool own = c->own && atomic_load(&c->own[pg]);
		for (;;) {
			uint8_t s = ps_get(o, pg);
			if (s == PS_DIRTY || s == PS_CLEANING || s == PS_ERROR || own)
				break; /* its own already (or failed) */
			if (s == PS_CLEAN) {
				pthread_mutex_t *lk = vmo__wplock(o, pg);
				pthread_mutex_lock(lk);
				bool done = ps_cas(o, pg, PS_CLEAN, PS_DIRTY);
				if (done)
					atomic_fetch_add(&o->pages.dirty_pages, 1);
				pthread_mutex_unlock(lk);
				if (done)
					break;
				continue;
			}
			if (s != PS_ABSENT) {
				/* being read from us (as we still are) or dropped:
				 * once it settles, again */
				vmo__io_wait(o, pg);
				continue;
			}
			if (!page && !(page = malloc(src->page_size)))
				break; /* (no memory: the clone will read the new bytes) */
			size_t done;
			if (vmo_memcpy(src, pg << src->page_shift, page, src->page_size, 0, &done))
				break; /* (the source cannot read it either: the clone will fail alike) */
			if (!ps_cas(o, pg, PS_ABSENT, PS_FILLING))
				continue;
			/* dirty in the clone: the only copy of it now */
			vmo__install(o, pg, 1, page, 0, true);
			break;
		}
	}
	free(page);
	for (size_t i = 0; i < n; i++)
		vmo__object_put(v[i]->self);
	if (v != list)
		free(v);
}

/* ---- vmo_object_clone --------------------------------------------------------- */

VMO_API int vmo_object_clone(struct vmo_object *src, const struct vmo_pager_ops *ops, void *ctx,
			     const struct vmo_object_opts *opts, struct vmo_object **out)
{
	if (!src || !out || (ops && (!ops->read || !ops->write || ops->unlock)))
		return -EINVAL;
	if (src->proxy)
		return vmo__not_on_client("vmo_object_clone");
	if (!src->track || src->eng->async || !(src->eng->features & VMO_FEAT_CONTINUE_WP)) {
		/* (without CONTINUE_MODE_WP a page mapped into a view is made
		 * dirty and writable there, and its first write never traps) */
		vmo__set_detail("vmo_object_clone: the source must track writes (a pager with a write callback, "
				"write-protect faults on shmem, UFFDIO_CONTINUE_MODE_WP: Linux 6.5; not "
				"VMO_ENGINE_DIRTY_ASYNC)");
		return -EOPNOTSUPP;
	}
	struct vmo_object_opts oo = opts ? *opts : (struct vmo_object_opts){ 0 };
	if ((oo.size && vmo__align_up(oo.size, src->page_size) != src->size) ||
	    (oo.page_size && oo.page_size != src->page_size) || oo.max_size ||
	    (oo.flags & (VMO_OBJ_GROWS_UP | VMO_OBJ_GROWS_DOWN | VMO_OBJ_MAY_CACHE))) {
		vmo__set_detail("vmo_object_clone: a clone has its source's size and page size (give 0), "
				"does not grow and is not cached");
		return -EINVAL;
	}
	oo.size = src->size;
	oo.page_size = src->page_size;
	struct clone *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->src = src;
	c->uops = ops;
	c->uctx = ctx;
	if (ops) {
		c->own_len = vmo__align_up(src->npages, VMO_PAGE);
		void *p = mmap(NULL, c->own_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED) {
			free(c);
			return -ENOMEM;
		}
		c->own = p;
	}
	struct vmo_object *o;
	int rc = vmo_object_create(src->eng, ops ? &own_ops : &anon_ops, c, &oo, &o);
	if (rc) {
		if (c->own)
			munmap((void *)c->own, c->own_len);
		free(c);
		return rc;
	}
	o->lo = atomic_load(&src->lo);
	o->hi = atomic_load(&src->hi);
	c->self = o;
	/* The moment of the clone: no write of the source in progress, every
	 * page of it clean and write-protected (sync), then the clone on its
	 * list: from here each write pushes first. */
	pthread_rwlock_wrlock(&src->cow_lock);
	/* (nothing dirty: nothing to write back or protect; a write in
	 * progress would hold the lock, so none can be making a page dirty) */
	rc = atomic_load(&src->pages.dirty_pages) ? vmo_sync(src, VMO_WAIT) : 0;
	if (!rc) {
		vmo_object_ref(src);
		src->cow_push = push;
		pthread_mutex_lock(&src->mu);
		c->next = src->clones;
		src->clones = c;
		atomic_fetch_add(&src->nclones, 1);
		pthread_mutex_unlock(&src->mu);
	}
	pthread_rwlock_unlock(&src->cow_lock);
	if (rc) {
		vmo__set_detail("vmo_object_clone: writing the source back first: %s", vmo_strerror(rc));
		/* not on the list: the release below must not look for it */
		c->src = NULL;
		o->ops = &gone_ops; /* (its release must not look for it on the list) */
		vmo_object_unref(o);
		if (c->own)
			munmap((void *)c->own, c->own_len);
		free(c);
		return rc;
	}
	*out = o;
	return 0;
}
