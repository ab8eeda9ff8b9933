/* core.h - engine, object and mapping structures shared by engine.c,
 * fault.c, object.c and map.c. */
#ifndef VMO_CORE_H
#define VMO_CORE_H

#include "internal.h"
#include "uffd.h"

#include <pthread.h>

/* Per-page state, one byte per object page, in a lazily allocated table.
 *
 *   ABSENT --fault--> FILLING --read ok--> CLEAN --first write--> DIRTY
 *                         \--read fails--> ERROR      DIRTY --writeback--> CLEANING --done--> CLEAN
 *                                                     CLEANING --write--> DIRTY (writeback must not
 *                                                                          mark it clean)
 *   CLEAN/DIRTY --evict--> EVICTING --> ABSENT
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
};

static inline bool ps_resident(int s) { return s == PS_CLEAN || s == PS_DIRTY || s == PS_CLEANING; }

struct vmo_map {
	struct vmo_object *obj;
	uintptr_t addr;
	size_t len;
	uint64_t off; /* object offset of addr */
	unsigned flags;
	bool wp;      /* registered with WP: first writes trap */
	_Atomic int busy; /* workers using this mapping right now */
	/* read-ahead: where a sequential access would fault next, and the window */
	_Atomic uint64_t ra_next;
	_Atomic uint32_t ra_window;
	struct vmo_map *onext; /* the object's list, under obj->mu */
};

/* A fault waiting for a page another worker is filling or evicting. */
struct vmo__waiter {
	uint64_t pg;
	uintptr_t addr; /* page address in the faulting mapping */
	struct vmo__waiter *next;
};

struct vmo__err {
	uint64_t pg;
	int err;
};

struct vmo__ostats {
	_Atomic uint64_t faults, missing, minor, wp, pages_read, readahead, writebacks, evictions, errors;
};

struct vmo_object {
	struct vmo_engine *eng;
	const struct vmo_pager_ops *ops;
	void *ctx;
	_Atomic long refs;
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
	_Atomic long resident_pages, dirty_pages;

	pthread_mutex_t mu; /* waiters, errs, maps, inflight, dead */
	pthread_cond_t cv;
	struct vmo__waiter *waiters;
	_Atomic int nwaiters;
	struct vmo__err *errs;
	size_t nerrs, errs_cap;
	struct vmo_map *maps;
	int nmaps;
	int inflight;    /* pager callbacks running */
	_Atomic int dead; /* shut down: faults get SIGBUS */

	struct vmo__ostats st;
	struct vmo_object *next, *prev; /* engine's list, under eng->objs_mu */
};

struct vmo_engine {
	struct vmo__uffd u;
	uint64_t budget;
	unsigned features; /* VMO_FEAT_* */

	/* mappings sorted by address, for fault lookup */
	pthread_rwlock_t maps_lock;
	struct vmo_map **maps;
	size_t nmaps, maps_cap;

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

/* fault.c */
void vmo__handle_fault(struct vmo_engine *eng, const struct uffd_msg *m);
void vmo__worker_buf_free(void);

/* map.c: find the mapping holding addr, with busy taken (NULL if none). */
struct vmo_map *vmo__map_lookup_get(struct vmo_engine *eng, uintptr_t addr);
static inline void vmo__map_put(struct vmo_map *m) { atomic_fetch_sub_explicit(&m->busy, 1, memory_order_release); }

/* object.c */
void vmo__set_error(struct vmo_object *obj, uint64_t pg, int err);
/* Begin/end a pager callback: false if the object is shut down. */
bool vmo__callback_begin(struct vmo_object *obj);
void vmo__callback_end(struct vmo_object *obj);
/* Wake (UFFDIO_WAKE) every waiter on pages [pg, pg+n). */
void vmo__wake_waiters(struct vmo_object *obj, uint64_t pg, uint64_t n);
/* Park a fault at addr on page pg until the page leaves its transient state
 * (returns false if it already has: handle the fault again). */
bool vmo__add_waiter(struct vmo_object *obj, uint64_t pg, uintptr_t addr);
/* Deliver SIGBUS for addr to thread tid (when UFFDIO_POISON can't). */
void vmo__sigbus(struct vmo_engine *eng, pid_t tid, uintptr_t addr, size_t len);

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

#endif
