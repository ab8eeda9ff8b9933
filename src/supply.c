/* SPDX-License-Identifier: MIT */
/* supply.c - asynchronous supply (Mach's memory_object_data_supply,
 * Zircon's supply_pages, Hurd's pager_offer_page).
 *
 * A pager's read may answer -EINPROGRESS: the range will come later, from
 * any thread, through vmo_object_supply (or fail, vmo_object_supply_error).
 * The worker marks the pages PENDING before it calls read (so a supply may
 * come even before read returns), parks the faulting thread on the page as
 * for any page being filled, and goes on to the next fault: one worker keeps
 * as many slow reads in flight as there are faults.
 *
 * A supply claims each PENDING page of its range (PENDING -> FILLING).  A
 * page a thread waits for is copied straight into that thread's view
 * (UFFDIO_COPY: into the memfd, mapped, the thread woken), as a worker
 * would have; the others are written into the memfd and marked CLEAN, and
 * whoever waits on them is woken: the woken thread faults again and, the
 * page being in memory now, meets the MINOR path (mapped write-protected
 * while clean, as any page another view brought in).  Pages of the range that are not PENDING (in
 * memory already, never asked for, supplied before) are left alone. */
#include "core.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int supply_check(struct vmo_object *o, uint64_t off, size_t len)
{
	uint64_t pg0, pg1;
	if (o && o->proxy)
		return vmo__not_on_client("vmo_object_supply");
	if (vmo__range_pages(o, off, len, &pg0, &pg1)) {
		vmo__set_detail("supply: off and len must be multiples of the object's page size, len > 0, "
				"within the object");
		return -EINVAL;
	}
	if (atomic_load(&o->dead))
		return -VMO_ESHUTDOWN;
	return 0;
}

/* A thread waiting for page pg (claimed, FILLING): copy the page straight
 * into its view (UFFDIO_COPY puts it in the memfd, maps it there and wakes
 * the thread: one trip less than a wake and a MINOR fault).  false: no
 * waiter, or its view is not there any more: the caller writes the memfd. */
static bool copy_to_waiter(struct vmo_object *o, uint64_t pg, const void *buf, bool precious)
{
	struct vmo__space *sp;
	uintptr_t addr;
	/* Off the list: the copy wakes it (no second wake). */
	if (!vmo__waiter_take(o, pg, &sp, &addr))
		return false;
	if (!vmo__space_enter(sp, NULL)) {
		sp->ops->wake(sp, (void *)addr, o->page_size); /* (gone: it faults again) */
		return false;
	}
	bool done = false;
	struct vmo_map *m = vmo__map_lookup_get(sp, addr);
	if (m && m->obj == o && addr - m->addr + m->off == pg << o->page_shift && !(m->flags & VMO__VIEW_PRIVATE)) {
		uint8_t st = precious ? PS_DIRTY : vmo__supplied_state(o, m);
		vmo__account(o, pg, 1, st);
		int rc = sp->ops->copy(sp, (void *)addr, buf, o->page_size, m->wp, true, NULL);
		if (rc == 0) {
			ps_cas(o, pg, PS_FILLING, st);
			done = true;
		} else {
			vmo__account(o, pg, -1, st);
		}
	}
	if (m)
		vmo__map_put(m);
	vmo__space_exit(sp);
	if (!done) /* it faults again and meets the page the memfd gets next */
		sp->ops->wake(sp, (void *)addr, o->page_size);
	return done;
}

/* Install [pg, pg+n), claimed (FILLING), from buf: into a waiting thread's
 * view, else into the memfd; clean, or dirty if precious (core.h). */
int vmo__install(struct vmo_object *o, uint64_t pg, uint64_t n, const void *buf, unsigned flags, bool precious)
{
	vmo__budget_check(o, n); /* room first, as a worker's fill */
	if (o->pages.wlock)
		wlock_set(o, pg, n, flags & VMO_READ_WRITELOCK);
	int rc = 0;
	for (uint64_t i = 0; i < n;) {
		const char *b = (const char *)buf + ((size_t)i << o->page_shift);
		if (copy_to_waiter(o, pg + i, b, precious)) {
			vmo__wake_waiters(o, pg + i, 1); /* others on the page: MINOR faults */
			i++;
			continue;
		}
		/* Through the memfd: the rest of the range in one write while no
		 * thread of the object waits at all, else this page alone (the
		 * next may have a waiter to copy to). */
		uint64_t k = 1;
		while (i + k < n && !atomic_load(&o->pages.nwaiters))
			k++;
		size_t len = (size_t)k << o->page_shift;
		int w = vmo__pwrite_full(o->memfd, b, len, (pg + i) << o->page_shift);
		if (w < 0) {
			/* Not the pager's failure: the pages go back to ABSENT and
			 * the waiting threads fault again (a new read). */
			for (uint64_t j = 0; j < k; j++)
				ps_set(o, pg + i + j, PS_ABSENT);
			if (!rc)
				rc = w;
		} else {
			uint8_t st = precious ? PS_DIRTY : PS_CLEAN;
			vmo__account(o, pg + i, (long)k, st);
			for (uint64_t j = 0; j < k; j++)
				ps_cas(o, pg + i + j, PS_FILLING, st);
		}
		vmo__wake_waiters(o, pg + i, k);
		i += k;
	}
	return rc;
}

VMO_API int vmo_object_supply(struct vmo_object *obj, uint64_t off, size_t len, const void *buf, unsigned flags)
{
	int rc = supply_check(obj, off, len);
	if (rc)
		return rc;
	if (!buf || (flags & ~VMO_READ_WRITELOCK))
		return -EINVAL;
	uint64_t pg0 = off >> obj->page_shift, n = len >> obj->page_shift;
	for (uint64_t i = 0; i < n;) {
		/* a run of pages we can claim */
		uint64_t k = 0;
		while (i + k < n && ps_cas(obj, pg0 + i + k, PS_PENDING, PS_FILLING))
			k++;
		if (k) {
			int r = vmo__install(obj, pg0 + i, k, (const char *)buf + ((size_t)i << obj->page_shift), flags,
					     false);
			if (r && !rc)
				rc = r;
			i += k;
		} else {
			i++; /* not pending: in memory already, or never asked for */
		}
	}
	return rc;
}

VMO_API int vmo_object_supply_error(struct vmo_object *obj, uint64_t off, size_t len, int err)
{
	int rc = supply_check(obj, off, len);
	if (rc == -VMO_ESHUTDOWN || rc == -EOPNOTSUPP)
		return rc;
	if (rc || err >= 0)
		return -EINVAL;
	uint64_t pg0 = off >> obj->page_shift, n = len >> obj->page_shift;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t pg = pg0 + i;
		if (!ps_cas(obj, pg, PS_PENDING, PS_FILLING))
			continue;
		/* As a failed synchronous read: recorded, SIGBUS to the threads
		 * that touch it, until vmo_clear_error. */
		vmo__set_error(obj, pg, err);
		ps_set(obj, pg, PS_ERROR);
		vmo__wake_waiters(obj, pg, 1);
	}
	return 0;
}
