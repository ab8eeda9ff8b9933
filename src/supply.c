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
 * A supply claims each PENDING page of its range (PENDING -> FILLING),
 * writes the run into the object's memfd, marks it CLEAN and wakes whoever
 * waits: the woken thread faults again and, the page being in memory now,
 * meets the MINOR path (mapped write-protected while clean, as any page
 * another view brought in).  Pages of the range that are not PENDING (in
 * memory already, never asked for, supplied before) are left alone. */
#include "core.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void vmo__pending_add(struct vmo_object *o, uint64_t pg, uint64_t n)
{
	pthread_mutex_lock(&o->mu);
	/* Prune ranges with nothing PENDING left before growing. */
	if (o->npend == o->pend_cap) {
		size_t k = 0;
		for (size_t i = 0; i < o->npend; i++) {
			bool live = false;
			for (uint64_t j = 0; j < o->pend[i].n && !live; j++)
				live = ps_get(o, o->pend[i].pg + j) == PS_PENDING;
			if (live)
				o->pend[k++] = o->pend[i];
		}
		o->npend = k;
	}
	if (o->npend == o->pend_cap) {
		size_t cap = o->pend_cap ? o->pend_cap * 2 : 16;
		struct vmo__pend *v = realloc(o->pend, cap * sizeof *v);
		if (v) {
			o->pend = v;
			o->pend_cap = cap;
		}
	}
	if (o->npend < o->pend_cap)
		o->pend[o->npend++] = (struct vmo__pend){ pg, n };
	else
		vmo__err("no memory to remember a pending read; a shutdown will not give up its pages");
	pthread_mutex_unlock(&o->mu);
}

void vmo__pending_abandon(struct vmo_object *o)
{
	pthread_mutex_lock(&o->mu);
	struct vmo__pend *v = o->pend;
	size_t n = o->npend;
	o->pend = NULL;
	o->npend = o->pend_cap = 0;
	pthread_mutex_unlock(&o->mu);
	for (size_t i = 0; i < n; i++)
		for (uint64_t j = 0; j < v[i].n; j++)
			if (ps_cas(o, v[i].pg + j, PS_PENDING, PS_ABSENT))
				vmo__wake_waiters(o, v[i].pg + j, 1);
	free(v);
}

static int supply_check(struct vmo_object *o, uint64_t off, size_t len)
{
	uint64_t end;
	if (!o || !len || ((off | len) & (o->page_size - 1)) || !vmo__add_ok(off, len, &end) || end > o->size) {
		vmo__set_detail("supply: off and len must be multiples of the object's page size, len > 0, "
				"within the object");
		return -EINVAL;
	}
	if (atomic_load(&o->dead))
		return -VMO_ESHUTDOWN;
	return 0;
}

/* Install [pg, pg+n), claimed (FILLING), from buf into the memfd. */
static int install(struct vmo_object *o, uint64_t pg, uint64_t n, const void *buf, unsigned flags)
{
	vmo__budget_check(o, n); /* room first, as a worker's fill */
	size_t len = (size_t)n << o->page_shift;
	int w = vmo__pwrite_full(o->memfd, buf, len, pg << o->page_shift);
	if (w < 0) {
		/* Not the pager's failure: the pages go back to ABSENT and the
		 * waiting threads fault again (a new read). */
		for (uint64_t i = 0; i < n; i++)
			ps_set(o, pg + i, PS_ABSENT);
		vmo__wake_waiters(o, pg, n);
		return w;
	}
	if (o->wlock)
		wlock_set(o, pg, n, flags & VMO_READ_WRITELOCK);
	vmo__account(o, pg, (long)n, PS_CLEAN);
	for (uint64_t i = 0; i < n; i++)
		ps_cas(o, pg + i, PS_FILLING, PS_CLEAN);
	vmo__wake_waiters(o, pg, n);
	return 0;
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
			int r = install(obj, pg0 + i, k, (const char *)buf + ((size_t)i << obj->page_shift), flags);
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
	if (rc == -VMO_ESHUTDOWN)
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
