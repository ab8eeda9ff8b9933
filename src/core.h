/* core.h - engine, object and mapping structures shared by engine.c,
 * fault.c, object.c and map.c. */
#ifndef VMO_CORE_H
#define VMO_CORE_H

#include "internal.h"
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

struct vmo__ostats {
	_Atomic uint64_t faults, missing, minor, wp, pages_read, readahead, writebacks, evictions, errors,
		write_errors;
};

/* Reclaim works on chunks of CHUNK_BYTES (or one page, if larger): CLOCK
 * over chunks, and every kernel call of eviction covers a chunk's run. */
#define CHUNK_BYTES (2u << 20)
#define WP_STRIPES 64

struct vmo_object {
	struct vmo_engine *eng;
	const struct vmo_pager_ops *ops;
	void *ctx;
	/* refs: every reference (the program's, each view's, vmo's short-lived
	 * ones); urefs: the program's alone (vmo_object_create, vmo_object_ref).
	 * The program's last unref waits for vmo's to go (vmo__object_put). */
	_Atomic long refs;
	_Atomic long urefs;
	uint64_t size;   /* bytes, a multiple of page_size */
	uint64_t npages;
	uint32_t page_size;
	uint32_t page_shift;
	uint32_t ra_max; /* pages; 1 = no read-ahead */
	uint32_t flags;
	bool track;      /* supply clean pages write-protected (dirty tracking) */
	int memfd;
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

	pthread_mutex_t mu; /* waiters, errs, maps, inflight, dead */
	pthread_cond_t cv;
	struct vmo__waiter *waiters;
	_Atomic int nwaiters;
	struct vmo__err *errs;
	size_t nerrs, errs_cap;
	struct vmo__vtree views; /* its views, by object offset */
	int nmaps;
	int nwmaps;      /* of which writable and tracked (m->wp) */
	int inflight;    /* pager callbacks running */
	/* Ranges a read answered -EINPROGRESS for (pages PENDING until
	 * supplied): what shutdown gives up; pruned as they are supplied. */
	struct vmo__pend {
		uint64_t pg, n;
	} *pend;
	size_t npend, pend_cap;
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
	struct vmo__psi *psi;
	uint64_t rr; /* round-robin position over objects */

	/* workers */
	pthread_mutex_t wmu;
	pthread_cond_t wcv;
	pthread_t *threads;
	unsigned nworkers;
	bool running;
	int inhibit;   /* nesting count */
	int active;    /* workers handling messages */

	pthread_mutex_t objs_mu;
	struct vmo_object *objs;
	long nobjs;
	struct vmo_stats gone; /* counters of objects already freed */
};

#define BG_SYNC 1u
#define BG_RETURN 2u

/* A reference for vmo's own use, only if the object is still alive (its
 * count has not reached zero); false if it is being freed. */
static inline bool vmo__object_tryref(struct vmo_object *o)
{
	long r = atomic_load(&o->refs);
	while (r > 0)
		if (atomic_compare_exchange_weak(&o->refs, &r, r + 1))
			return true;
	return false;
}

/* A reference for vmo's own use (a view's) while one is held. */
static inline void vmo__object_get(struct vmo_object *o)
{
	atomic_fetch_add(&o->refs, 1);
}

/* Drop a reference vmo took for itself (a view's, the evictor's): the last
 * one frees the object on this thread.  Never under obj->mu. */
void vmo__object_put(struct vmo_object *o);

/* dirty.c: run the background work queued on obj. */
void vmo__run_bg(struct vmo_object *obj);

/* evict.c */
int vmo__evictor_start(struct vmo_engine *eng);
void vmo__evictor_stop(struct vmo_engine *eng);
void vmo__evictor_kick(struct vmo_engine *eng);
/* The engine's effective cap in bytes (budget or pressure cap; 0 = none). */
uint64_t vmo__engine_cap(struct vmo_engine *eng);
/* Before n pages are supplied to obj: reclaim first if the budget needs it. */
void vmo__budget_check(struct vmo_object *obj, uint64_t n);
/* Account pages [pg, pg+n) becoming resident (n > 0) or leaving (n < 0). */
void vmo__account(struct vmo_object *obj, uint64_t pg, long n, uint8_t st);
int vmo__chunks_init(struct vmo_object *obj);
void vmo__chunks_free(struct vmo_object *obj);
/* Drop the clean pages of [pg0, pg1) from memory (punch the memfd). */
uint64_t vmo__evict_clean(struct vmo_object *obj, uint64_t pg0, uint64_t pg1, bool dirty_too);

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
	return &o->wplock[(pg >> o->chunk_shift) % WP_STRIPES];
}

/* fault.c */
void vmo__handle_fault(struct vmo_engine *eng, struct vmo__space *sp, const struct uffd_msg *m);
/* A worker's supply buffer: reserve it when the worker starts; free it. */
void vmo__worker_buf_init(void);
void vmo__worker_buf_free(void);

/* map.c: views of objects (the object's side; space.h has the space's).
 * The hooks the spaces call when a view comes or goes. */
extern const struct vmo__view_hooks vmo__obj_view_hooks;
/* Call fn on every view of o overlapping object bytes [lo, hi) (only those
 * trapping writes, with wp_only), with the view's space's lock held for
 * reading; a view unmapped meanwhile is skipped.  addr/len: the overlap in
 * the view.  Not under o->mu.  Returns the first nonzero fn returned (all
 * views are still visited). */
int vmo__views_each(struct vmo_object *o, uint64_t lo, uint64_t hi, bool wp_only,
		    int (*fn)(struct vmo_map *m, uintptr_t addr, size_t len, void *arg), void *arg);

/* supply.c: a read answered -EINPROGRESS for [pg, pg+n) (now PENDING). */
void vmo__pending_add(struct vmo_object *obj, uint64_t pg, uint64_t n);
/* Shutdown: every PENDING page back to ABSENT, its waiters woken. */
void vmo__pending_abandon(struct vmo_object *obj);

/* object.c */
/* Add the counters of s (not resident, dirty, mappings, budget) to g. */
void vmo__stats_add(struct vmo_stats *g, const struct vmo_stats *s);
void vmo__set_error(struct vmo_object *obj, uint64_t pg, int err);
/* Drop the error records of pages [pg0, pg1). */
void vmo__forget_errors(struct vmo_object *obj, uint64_t pg0, uint64_t pg1);
/* Begin/end a pager callback: false if the object is shut down. */
bool vmo__callback_begin(struct vmo_object *obj);
void vmo__callback_end(struct vmo_object *obj);
/* Wake (UFFDIO_WAKE) every waiter on pages [pg, pg+n). */
void vmo__wake_waiters(struct vmo_object *obj, uint64_t pg, uint64_t n);
/* Park a fault at addr of sp on page pg until the page leaves its transient
 * state (returns false if it already has: handle the fault again). */
bool vmo__add_waiter(struct vmo_object *obj, uint64_t pg, struct vmo__space *sp, uintptr_t addr);
/* Deliver SIGBUS for addr to thread tid of sp (when UFFDIO_POISON can't),
 * then wake it. */
void vmo__sigbus(struct vmo__space *sp, pid_t tid, uintptr_t addr, size_t len);

static inline void wlock_set(struct vmo_object *o, uint64_t pg, uint64_t n, bool on)
{
	for (uint64_t i = pg; i < pg + n; i++) {
		uint64_t bit = 1ull << (i % 64);
		if (on)
			atomic_fetch_or_explicit(&o->wlock[i / 64], bit, memory_order_release);
		else
			atomic_fetch_and_explicit(&o->wlock[i / 64], ~bit, memory_order_release);
	}
}
static inline bool wlock_get(struct vmo_object *o, uint64_t pg)
{
	return atomic_load_explicit(&o->wlock[pg / 64], memory_order_acquire) >> (pg % 64) & 1;
}

static inline uint8_t ps_get(struct vmo_object *o, uint64_t pg)
{
	return atomic_load_explicit(&o->state[pg], memory_order_acquire);
}
static inline bool ps_cas(struct vmo_object *o, uint64_t pg, uint8_t from, uint8_t to)
{
	return atomic_compare_exchange_strong(&o->state[pg], &from, to);
}
static inline void ps_set(struct vmo_object *o, uint64_t pg, uint8_t to)
{
	atomic_store_explicit(&o->state[pg], to, memory_order_seq_cst);
}

/* A page found written without a trap (async tracking collected it, or a
 * view that knew it went): DIRTY from CLEAN, CLEANING (writeback must not
 * mark it clean) or FILLING (installed, not yet marked clean: the filler's
 * FILLING -> CLEAN then fails); counted if it was not dirty before. */
static inline void ps_mark_written(struct vmo_object *o, uint64_t pg)
{
	if (ps_cas(o, pg, PS_CLEAN, PS_DIRTY) || ps_cas(o, pg, PS_FILLING, PS_DIRTY))
		atomic_fetch_add(&o->dirty_pages, 1);
	else
		ps_cas(o, pg, PS_CLEANING, PS_DIRTY);
}

#endif
