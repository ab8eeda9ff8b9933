/* SPDX-License-Identifier: MIT */
/* pages.h - an object's pages (pages.c): the state machine, residency and
 * chunks, waiters, the callback gate, error records, pending reads, the raw
 * drop.  The states and their inline accessors are in core.h, next to the
 * object they index.  Below: writeback, reclaim, faults, objects; above:
 * the space layer only. */
#ifndef VMO_PAGES_H
#define VMO_PAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vmo_object;
struct vmo__space;

/* A fault waiting for a page another worker is filling or evicting. */
struct vmo__waiter {
	uint64_t pg;
	struct vmo__space *sp;
	uintptr_t addr; /* page address in the faulting mapping */
	struct vmo__waiter *next;
};

struct vmo__err {
	uint64_t pg;
	int err;
};

/* An object's pages, embedded in it (obj->pages).  The lists (waiters,
 * errs, pend) and inflight are under the object's lock. */
struct vmo__pages {
	/* One byte per page (enum vmo__pstate, core.h), lazily allocated. */
	_Atomic uint8_t *state;
	size_t state_len;
	/* Pages supplied write-locked (the read set VMO_READ_WRITELOCK): their
	 * first write asks the pager's unlock.  A bit per page; NULL without an
	 * unlock callback. */
	_Atomic uint64_t *wlock;
	size_t wlock_len;
	_Atomic long resident_pages, dirty_pages; /* dirty counts DIRTY + CLEANING */

	/* reclaim: per chunk, resident pages and a referenced bit */
	uint32_t chunk_pages; /* pages per chunk */
	uint32_t chunk_shift; /* log2(chunk_pages) */
	uint64_t nchunks;
	_Atomic uint32_t *chunk_res;
	_Atomic uint8_t *chunk_ref;
	size_t chunk_len; /* bytes mapped for chunk_res + chunk_ref */
	uint64_t hand;    /* CLOCK hand (chunk index), under eng->evict_mu */
	/* The chunk of the latest supply, and when: background reclaim
	 * leaves it for a while, so that a page is not taken back before its
	 * faulting thread has run again and used it (evict.c) */
	_Atomic uint64_t newest_chunk, newest_ns;

	struct vmo__waiter *waiters;
	_Atomic int nwaiters;
	_Atomic int iowaiters; /* threads of object I/O waiting on obj->cv (io.c) */
	/* Pin counts, one byte per page (allocated at the first pin, under
	 * mu); changed and looked at under the page's stripe: reclaim never
	 * claims a pinned page (io.c, evict.c). */
	_Atomic uint8_t *pins;
	size_t pins_len;
	_Atomic long pinned_pages;
	struct vmo__err *errs;
	size_t nerrs, errs_cap;
	int inflight; /* pager callbacks running */
	/* Ranges a read answered -EINPROGRESS for (pages PENDING until
	 * supplied): what shutdown gives up; pruned as they are supplied. */
	struct vmo__pend {
		uint64_t pg, n;
	} *pend;
	size_t npend, pend_cap;
};

/* The chunk table reclaim works on (per chunk: resident pages, a
 * referenced bit). */
int vmo__chunks_init(struct vmo_object *obj);
void vmo__chunks_free(struct vmo_object *obj);
/* Account pages [pg, pg+n) becoming resident (n > 0) or leaving (n < 0),
 * counted dirty if st is PS_DIRTY. */
void vmo__account(struct vmo_object *obj, uint64_t pg, long n, uint8_t st);

/* The raw drop: punch [pg, pg+n) (all EVICTING; dirty of them were dirty)
 * out of the memfd and mark them absent, waking waiters; on failure they
 * stay resident (dirty if any was). */
void vmo__pages_drop(struct vmo_object *obj, uint64_t pg, uint64_t n, long dirty);
/* The same for a run that also holds claimed holes: [pg, pg+n) all
 * EVICTING, of which the pages whose bit is set in res (bit i: page pg+i;
 * nres of them, dirty of those dirty) are resident, the others were ABSENT
 * and claimed only so that one punch covers the run (no fill may land in
 * it meanwhile).  One fallocate; every page ABSENT after it (on failure
 * the resident ones stay, the holes go back to ABSENT); waiters woken;
 * notify_evict for each resident sub-run. */
void vmo__pages_drop_map(struct vmo_object *obj, uint64_t pg, uint64_t n, const uint64_t *res, uint64_t nres,
			 long dirty);
/* Tell the pager [pg, pg+n) left memory (notify_evict). */
void vmo__pages_notify_evict(struct vmo_object *obj, uint64_t pg, uint64_t n);

/* Per-page errors (under obj->mu): the record of pg, or NULL. */
struct vmo__err *vmo__find_err(struct vmo_object *obj, uint64_t pg);
void vmo__set_error(struct vmo_object *obj, uint64_t pg, int err);
/* Drop the error records of pages [pg0, pg1). */
void vmo__forget_errors(struct vmo_object *obj, uint64_t pg0, uint64_t pg1);

/* Begin/end a pager callback: false if the object is shut down (shutdown
 * waits for the callbacks in flight). */
bool vmo__callback_begin(struct vmo_object *obj);
void vmo__callback_end(struct vmo_object *obj);

/* Park a fault at addr of sp on page pg until the page leaves its transient
 * state (returns false if it already has: handle the fault again). */
bool vmo__add_waiter(struct vmo_object *obj, uint64_t pg, struct vmo__space *sp, uintptr_t addr);
/* Take the first waiter on page pg off the list, unwoken (the caller wakes
 * it, e.g. by supplying the page into its view): false if there is none. */
bool vmo__waiter_take(struct vmo_object *obj, uint64_t pg, struct vmo__space **sp, uintptr_t *addr);
/* Wake (UFFDIO_WAKE) every waiter on pages [pg, pg+n). */
void vmo__wake_waiters(struct vmo_object *obj, uint64_t pg, uint64_t n);

/* A read answered -EINPROGRESS for [pg, pg+n) (now PENDING). */
void vmo__pending_add(struct vmo_object *obj, uint64_t pg, uint64_t n);
/* Shutdown: every PENDING page back to ABSENT, its waiters woken. */
void vmo__pending_abandon(struct vmo_object *obj);

#endif
