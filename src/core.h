/* SPDX-License-Identifier: MIT */
/* core.h - engine, object and mapping structures shared by engine.c,
 * fault.c, object.c and map.c. */
#ifndef VMO_CORE_H
#define VMO_CORE_H

#include "internal.h"
#include "pages.h"
#include "space.h"
#include "uffd.h"
#include "vtree.h"

#include <pthread.h>

/* Per-page state, one byte per object page, in a lazily allocated table.
 *
 *   ABSENT --fault--> FILLING --read ok--> CLEAN --first write--> DIRTY
 *                         \--read fails--> ERROR      DIRTY --writeback--> CLEANING --done--> CLEAN
 *                                                     CLEANING --write--> DIRTY (writeback must not
 *                                                                          mark it clean)
 *   CLEAN/DIRTY --evict--> EVICTING --> ABSENT
 *   FILLING --before the read--> PENDING --read returns 0--> FILLING (installed by the worker)
 *                                PENDING --vmo_object_supply--> FILLING --> CLEAN (into the memfd)
 *                                PENDING --vmo_object_supply_error--> ERROR;  --shutdown--> ABSENT
 *
 * RESIDENT(state) <=> the page is in the object's memfd.  A page whose data
 * cannot be written back (no write callback, or tracking off) is DIRTY from
 * the moment it is supplied writable. */
enum vmo__pstate {
	PS_ABSENT = 0,
	PS_FILLING,
	PS_CLEAN,
	PS_DIRTY,
	PS_CLEANING,
	PS_EVICTING,
	PS_ERROR,
	PS_PENDING, /* claimed for a pager read that may answer later (supply) */
};

static inline bool ps_resident(int s) { return s == PS_CLEAN || s == PS_DIRTY || s == PS_CLEANING; }

/* Every view m of object o overlapping object bytes [lo, hi), under o->mu. */
#define vmo__for_each_view(o, m, lo, hi)                                                           \
	for (struct vmo__vnode *vn_ = vmo__vtree_first_overlap(&(o)->views, (lo), (hi));           \
	     vn_ && ((m) = vmo__vtree_entry(vn_, struct vmo_map, onode), 1);                        \
	     vn_ = vmo__vtree_next_overlap(vn_, (lo), (hi)))

struct vmo__ostats {
	_Atomic uint64_t faults, missing, minor, wp, pages_read, readahead, writebacks, evictions, errors,
		write_errors, large_fill;
};

/* Reclaim works on chunks of CHUNK_BYTES (or one page, if larger): CLOCK
 * over chunks, and every kernel call of eviction covers a chunk's run. */
#define CHUNK_BYTES (2u << 20)
#define WP_STRIPES 64

/* A client's object (client.c): the public calls on it go to its server
 * through these, set by the layer above (vmo_client_open); eng is NULL. */
enum { VMO__RANGE_SYNC = 1, VMO__RANGE_RETURN, VMO__RANGE_DISCARD };
struct vmo__proxy_ops {
	int (*map)(struct vmo_object *o, uint64_t off, size_t len, unsigned flags, void **addr);
	int (*unmap)(struct vmo_object *o, void *addr, size_t len);
	int (*range)(struct vmo_object *o, int what, uint64_t off, uint64_t len, unsigned flags);
	int (*stats)(struct vmo_object *o, struct vmo_stats *st);
	void (*release)(struct vmo_object *o); /* the program's last reference went */
};

struct vmo_object {
	struct vmo_engine *eng;
	const struct vmo__proxy_ops *proxy; /* a client's object; NULL for the engine's */
	const struct vmo_pager_ops *ops;
	void *ctx;
	/* refs: every reference (the program's, each view's, vmo's short-lived
	 * ones); urefs: the program's alone (vmo_object_create, vmo_object_ref).
	 * The program's last unref waits for vmo's to go (vmo__object_put). */
	_Atomic long refs;
	_Atomic long urefs;
	_Atomic long pins; /* the evictor's, a reclaimer's (vmo__object_pin) */
	uint64_t size;   /* bytes, a multiple of page_size: the span of offsets (max_size) */
	/* The valid window [lo, hi) of offsets (bytes): [0, size) unless the
	 * object grows (VMO_OBJ_GROWS_*, vmo_object_resize). */
	_Atomic uint64_t lo, hi;
	uint64_t npages;
	uint32_t page_size;
	uint32_t page_shift;
	_Atomic uint32_t ra_max; /* pages; 1 = no read-ahead */
	uint32_t fold; /* pages a large folio covers: whole aligned runs of them are filled by pwrite (0: none) */
	uint32_t flags;
	uint32_t prot;   /* VMO_PROT_* mappings may have */
	char name[64];
	bool own_ctx;    /* ctx allocated by vmo_object_create_alloc: freed after release */
	_Atomic bool may_cache;
	bool cached;     /* released by the program, kept by the engine (under eng->objs_mu) */
	struct vmo__gone_waiter *gone; /* vmo_object_unref_wait's waiters (under eng->objs_mu) */
	/* Copy-on-write (clone.c): the clones that need this object's pages as
	 * they were when cloned.  Every write that changes a page's bytes (a
	 * write fault, vmo_memcpy) holds cow_lock for reading and first pushes
	 * the page to each clone still without it (cow_push, set by clone.c:
	 * the layer above); a clone is made under it held for writing. */
	pthread_rwlock_t cow_lock;
	_Atomic int nclones;
	void (*cow_push)(struct vmo_object *o, uint64_t pg);
	void *clones; /* clone.c's list (under mu) */
	bool track;      /* supply clean pages write-protected (dirty tracking) */
	int memfd;
	/* Its pages: states, residency and chunks, waiters, errors, pending
	 * reads (pages.h; under mu where it says so). */
	struct vmo__pages pages;
	_Atomic uint64_t budget_hi, budget_lo; /* pages; 0 = none */

	/* Write-protect transitions (a page becoming writable, a page being
	 * protected for writeback) of a chunk happen under its stripe. */
	pthread_mutex_t wplock[WP_STRIPES];
	/* One writeback at a time: sync sees no page half-cleaned by another. */
	pthread_mutex_t wb_mu;
	/* Background work asked for without VMO_WAIT (under mu): ranges to sync
	 * or return; bg says some are queued. */
	_Atomic unsigned bg;
	struct vmo__bgop {
		uint64_t pg0, pg1;
		unsigned what; /* BG_SYNC or BG_RETURN */
	} bgq[16];
	int nbg;
	/* Prefetches to read (under mu; bg says there is work): claimed
	 * (PENDING) ranges (io.c). */
	struct vmo__pfop {
		uint64_t pg0, pg1;
	} pfq[16];
	int npf;

	pthread_mutex_t mu; /* pages' waiters, errs, inflight, pend; views, maps, dead */
	pthread_cond_t cv;
	struct vmo__vtree views; /* its views, by object offset */
	int nmaps;
	int nwmaps;      /* of which writable and tracked (m->wp) */
	_Atomic int dead; /* shut down: faults get SIGBUS */

	struct vmo__ostats st;
	struct vmo_object *next, *prev; /* engine's list, under eng->objs_mu */
};

struct vmo_engine {
	/* Address spaces: the local one, and those adopted from other
	 * processes (space.h); the workers wait on all of them (epoll). */
	struct vmo__spaces spaces;
	struct vmo__space *local;
	unsigned features; /* VMO_FEAT_* of the local space */
	uint32_t flags;
	bool async;        /* VMO_ENGINE_DIRTY_ASYNC: WP_ASYNC + PAGEMAP_SCAN */

	/* budget and reclaim (evict.c) */
	_Atomic uint64_t resident;            /* bytes over all objects */
	_Atomic uint64_t budget_hi, budget_lo; /* bytes; 0 = none */
	_Atomic uint64_t pressure_cap;         /* bytes; 0 = no pressure cap */
	pthread_mutex_t evict_mu;              /* one reclaimer at a time */
	pthread_mutex_t emu;                   /* evictor thread wake-ups */
	pthread_cond_t ecv;
	pthread_t evictor;
	bool evictor_running, evictor_stop;
	bool kick;
	struct vmo__pressure_sub *pressure_sub; /* the process's pressure watcher (pressure.h) */
	uint64_t rr; /* round-robin position over objects */
	_Atomic bool bg_reclaim; /* the evictor was kicked for background reclaim (evict.c) */

	/* workers */
	pthread_mutex_t wmu;
	pthread_cond_t wcv;
	pthread_t *threads;
	unsigned nworkers;
	bool running;
	int inhibit;   /* nesting count */
	int active;    /* workers handling messages */
	_Atomic unsigned ready; /* workers started, their buffer reserved */
	uint64_t spin_ns;       /* VMO_SPIN_US: poll before blocking (engine.c) */

	pthread_mutex_t objs_mu;
	struct vmo_object *objs;
	long nobjs;
	struct vmo_stats gone; /* counters of objects already freed */
	/* Set by fork.c (above this layer) once a view may be inherited:
	 * fork_objects(eng, false) counts the engine's objects that only
	 * fork()ed children keep (their clones, objects shared with them and
	 * released by the program); fork_objects(eng, true) stops serving those
	 * children and lets those objects go. */
	long (*fork_objects)(struct vmo_engine *eng, bool release);

	/* self-service faults (selfserve.c): the hand-off threads; faults
	 * being served in a handler; inhibited (those hand off instead) */
	struct vmo__selfserve *ss;
	int (*ss_install)(void); /* vmo_map's call up: the handler installed again */
	_Atomic long ss_active;
	_Atomic bool ss_inhibited;
};

#define BG_SYNC 1u
#define BG_RETURN 2u


/* A reference for vmo's own use (a view's) while one is held. */
static inline void vmo__object_get(struct vmo_object *o)
{
	atomic_fetch_add(&o->refs, 1);
}

/* Set on vmo's own threads (workers, the evictor): what they run must not
 * wait for vmo's references (vmo_object_unref). */
extern VMO__TLS bool vmo__on_vmo_thread;

/* Drop a reference vmo took for itself (a view's, the evictor's): the last
 * one frees the object on this thread.  Never under obj->mu. */
void vmo__object_put(struct vmo_object *o);


/* evictor.c: the engine's background thread. */
int vmo__evictor_start(struct vmo_engine *eng);
void vmo__evictor_stop(struct vmo_engine *eng);
/* Wake the evictor thread (work queued, a budget lowered, pressure). */
static inline void vmo__evictor_kick(struct vmo_engine *e)
{
	pthread_mutex_lock(&e->emu);
	e->kick = true;
	pthread_cond_signal(&e->ecv);
	pthread_mutex_unlock(&e->emu);
}

/* An object the evictor or a reclaiming thread works on, taken from the
 * engine's list under objs_mu (and not dead): pinned, not referenced, so
 * that reclaim never frees an object (a layer above); the object's free
 * waits for its pins after taking it off the list. */
static inline bool vmo__object_pin(struct vmo_object *o)
{
	atomic_fetch_add(&o->pins, 1);
	return true;
}
static inline void vmo__object_unpin(struct vmo_object *o)
{
	atomic_fetch_sub(&o->pins, 1);
}

/* evict.c: budgets and reclaim. */
/* The engine's effective cap in bytes (budget or pressure cap; 0 = none). */
uint64_t vmo__engine_cap(struct vmo_engine *eng);
/* Before n pages are supplied to obj: reclaim first if the budget needs it. */
void vmo__budget_check(struct vmo_object *obj, uint64_t n);
/* Reclaim down to the budgets: only's (if set), else the engine's. */
void vmo__reclaim(struct vmo_engine *e, struct vmo_object *only, uint64_t extra_pages);
/* The evictor's: every object above its background mark (between low and
 * high water), and the engine, down to low water. */
void vmo__reclaim_background(struct vmo_engine *e);
/* Drop the clean pages of [pg0, pg1) from memory (punch the memfd). */
uint64_t vmo__evict_clean(struct vmo_object *obj, uint64_t pg0, uint64_t pg1, bool dirty_too);

/* ops.c: [off, off+len) as pages [*pg0, *pg1): -EINVAL unless len > 0,
 * both multiples of the object's page size, within the object. */
int vmo__range_pages(struct vmo_object *o, uint64_t off, uint64_t len, uint64_t *pg0, uint64_t *pg1);
/* ops.c: run the background work queued on obj (evictor thread). */
void vmo__run_bg(struct vmo_object *obj);
/* Wait (a while at most) until page pg of obj leaves FILLING, PENDING,
 * EVICTING or CLEANING (io.c). */
void vmo__io_wait(struct vmo_object *obj, uint64_t pg);
/* Read the queued prefetches of obj (io.c; the evictor thread). */
void vmo__run_prefetch(struct vmo_object *obj);
/* Install [pg, pg+n), claimed (FILLING), from buf: into a waiting thread's
 * view, else into the memfd; the pages clean, or dirty if precious (an
 * offer that must be written back before it is dropped) (supply.c). */
int vmo__install(struct vmo_object *o, uint64_t pg, uint64_t n, const void *buf, unsigned flags, bool precious);

/* dirty.c: write back dirty pages of [pg0, pg1); first error or 0. */
/* Async tracking: mark DIRTY every page of [pg0, pg1) written since the last
 * collection (and protect it again); in every view, or only in view `only`
 * (one vmo_unmap is closing). */
void vmo__collect_written(struct vmo_object *obj, uint64_t pg0, uint64_t pg1, struct vmo_map *only);
/* Copy [pg, pg+n) out of the memfd and through the pager's write callback. */
int vmo__write_pages(struct vmo_object *obj, uint64_t pg, uint64_t n, void *buf);
int vmo__writeback(struct vmo_object *obj, uint64_t pg0, uint64_t pg1);
static inline pthread_mutex_t *vmo__wplock(struct vmo_object *o, uint64_t pg)
{
	return &o->wplock[(pg >> o->pages.chunk_shift) % WP_STRIPES];
}

/* fault.c */
void vmo__handle_fault(struct vmo_engine *eng, struct vmo__space *sp, const struct uffd_msg *m);
/* A worker's supply buffer: reserve it when the worker starts; free it. */
void vmo__worker_buf_init(void);
void vmo__worker_buf_key_init(void);
/* selfserve.c */
void vmo__serve_batch(struct vmo_engine *eng, struct vmo__space *sp, const struct uffd_msg *msgs, int n);
bool vmo__selfserve_wanted(void);
int vmo__selfserve_install(void);
int vmo__selfserve_start(struct vmo_engine *eng);
void vmo__selfserve_stop(struct vmo_engine *eng);
void vmo__worker_buf_free(void);

/* views.c: the object's side of views; the spaces reach it through hooks
 * (struct vmo__view_hooks) the engine wires. */
void vmo__views_link(struct vmo_object *obj, struct vmo_map *m);
void vmo__views_unlink(struct vmo_object *obj, struct vmo_map *m);
void vmo__views_lost_writes(struct vmo_object *obj, uint64_t off, uint64_t len);
/* Call fn on every view of o overlapping object bytes [lo, hi) (only those
 * trapping writes, with wp_only), with the view's space's lock held for
 * reading; a view unmapped meanwhile is skipped.  addr/len: the overlap in
 * the view.  Not under o->mu.  Returns the first nonzero fn returned (all
 * views are still visited). */
int vmo__views_each(struct vmo_object *o, uint64_t lo, uint64_t hi, bool wp_only,
		    int (*fn)(struct vmo_map *m, uintptr_t addr, size_t len, void *arg), void *arg);
/* Zap object bytes [lo, hi) in every view (only writable tracked ones, with
 * wp_only): their page-table entries go, the pages stay; the next access
 * faults.  A failure is warned about with `what` (NULL: quietly). */
void vmo__views_zap(struct vmo_object *o, uint64_t lo, uint64_t hi, bool wp_only, const char *what);

/* object.c */
/* Add the counters of s (not resident, dirty, mappings, budget) to g. */
void vmo__stats_add(struct vmo_stats *g, const struct vmo_stats *s);

static inline void wlock_set(struct vmo_object *o, uint64_t pg, uint64_t n, bool on)
{
	for (uint64_t i = pg; i < pg + n; i++) {
		uint64_t bit = 1ull << (i % 64);
		if (on)
			atomic_fetch_or_explicit(&o->pages.wlock[i / 64], bit, memory_order_release);
		else
			atomic_fetch_and_explicit(&o->pages.wlock[i / 64], ~bit, memory_order_release);
	}
}
static inline bool wlock_get(struct vmo_object *o, uint64_t pg)
{
	return atomic_load_explicit(&o->pages.wlock[pg / 64], memory_order_acquire) >> (pg % 64) & 1;
}

/* Is page pg pinned (vmo_object_pin)?  Under its stripe to be sure. */
static inline bool vmo__pinned(struct vmo_object *o, uint64_t pg)
{
	return o->pages.pins && atomic_load_explicit(&o->pages.pins[pg], memory_order_relaxed);
}

static inline uint8_t ps_get(struct vmo_object *o, uint64_t pg)
{
	return atomic_load_explicit(&o->pages.state[pg], memory_order_acquire);
}
static inline bool ps_cas(struct vmo_object *o, uint64_t pg, uint8_t from, uint8_t to)
{
	return atomic_compare_exchange_strong(&o->pages.state[pg], &from, to);
}
static inline void ps_set(struct vmo_object *o, uint64_t pg, uint8_t to)
{
	atomic_store_explicit(&o->pages.state[pg], to, memory_order_seq_cst);
}

/* State of a page just supplied into view m. */
static inline uint8_t vmo__supplied_state(struct vmo_object *o, struct vmo_map *m)
{
	if (o->track)
		return PS_CLEAN;
	/* Untracked: a page that can be written without a trap may be dirty. */
	if ((m->flags & VMO_PROT_WRITE) || !(m->space->features & VMO_FEAT_MINOR))
		return PS_DIRTY;
	return PS_CLEAN;
}

/* A page found written without a trap (async tracking collected it, or a
 * view that knew it went): DIRTY from CLEAN, CLEANING (writeback must not
 * mark it clean) or FILLING (installed, not yet marked clean: the filler's
 * FILLING -> CLEAN then fails); counted if it was not dirty before. */
static inline void ps_mark_written(struct vmo_object *o, uint64_t pg)
{
	if (ps_cas(o, pg, PS_CLEAN, PS_DIRTY) || ps_cas(o, pg, PS_FILLING, PS_DIRTY))
		atomic_fetch_add(&o->pages.dirty_pages, 1);
	else
		ps_cas(o, pg, PS_CLEANING, PS_DIRTY);
}

#endif
