/* SPDX-License-Identifier: MIT */
/* pages.c - an object's pages: the state machine (core.h draws it), the
 * residency count and chunk table that reclaim works on, the threads
 * waiting for a page, the gate around pager callbacks, the per-page error
 * records, the pending reads of asynchronous supply, and the raw drop of a
 * run of pages from memory.  Writeback (dirty.c), reclaim (evict.c) and the
 * fault service sit on it; it calls only the space layer below (to wake
 * threads) and never a layer above. */
#include "core.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

VMO__TLS bool vmo__on_vmo_thread;

bool vmo__callback_begin(struct vmo_object *obj)
{
	pthread_mutex_lock(&obj->mu);
	bool ok = !atomic_load(&obj->dead);
	if (ok)
		obj->pages.inflight++;
	pthread_mutex_unlock(&obj->mu);
	return ok;
}

void vmo__callback_end(struct vmo_object *obj)
{
	pthread_mutex_lock(&obj->mu);
	if (--obj->pages.inflight == 0 && atomic_load(&obj->dead))
		pthread_cond_broadcast(&obj->cv);
	pthread_mutex_unlock(&obj->mu);
}

struct vmo__err *vmo__find_err(struct vmo_object *obj, uint64_t pg)
{
	for (size_t i = 0; i < obj->pages.nerrs; i++)
		if (obj->pages.errs[i].pg == pg)
			return &obj->pages.errs[i];
	return NULL;
}

void vmo__set_error(struct vmo_object *obj, uint64_t pg, int err)
{
	pthread_mutex_lock(&obj->mu);
	struct vmo__err *e = vmo__find_err(obj, pg);
	if (!e) {
		if (obj->pages.nerrs == obj->pages.errs_cap) {
			size_t cap = obj->pages.errs_cap ? obj->pages.errs_cap * 2 : 16;
			struct vmo__err *n = realloc(obj->pages.errs, cap * sizeof *n);
			if (!n) { /* keep the state ERROR; the errno is lost, report EIO */
				pthread_mutex_unlock(&obj->mu);
				return;
			}
			obj->pages.errs = n;
			obj->pages.errs_cap = cap;
		}
		e = &obj->pages.errs[obj->pages.nerrs++];
		e->pg = pg;
	}
	e->err = err;
	pthread_mutex_unlock(&obj->mu);
	atomic_fetch_add(&obj->st.errors, 1);
}

void vmo__forget_errors(struct vmo_object *obj, uint64_t pg0, uint64_t pg1)
{
	pthread_mutex_lock(&obj->mu);
	for (size_t i = 0; i < obj->pages.nerrs;) {
		if (obj->pages.errs[i].pg >= pg0 && obj->pages.errs[i].pg < pg1)
			obj->pages.errs[i] = obj->pages.errs[--obj->pages.nerrs];
		else
			i++;
	}
	pthread_mutex_unlock(&obj->mu);
}

bool vmo__add_waiter(struct vmo_object *obj, uint64_t pg, struct vmo__space *sp, uintptr_t addr)
{
	struct vmo__waiter *w = malloc(sizeof *w);
	if (!w)
		return false; /* handle it again: costs a spin, never a hang */
	w->pg = pg;
	w->sp = sp;
	w->addr = addr;
	pthread_mutex_lock(&obj->mu);
	w->next = obj->pages.waiters;
	obj->pages.waiters = w;
	atomic_fetch_add(&obj->pages.nwaiters, 1);
	/* Re-check after publishing: the filler stores the final state and then
	 * looks at nwaiters, so one of the two sees the other. */
	uint8_t s = ps_get(obj, pg);
	if (s != PS_FILLING && s != PS_EVICTING && s != PS_PENDING) {
		obj->pages.waiters = w->next;
		atomic_fetch_sub(&obj->pages.nwaiters, 1);
		pthread_mutex_unlock(&obj->mu);
		free(w);
		return false;
	}
	pthread_mutex_unlock(&obj->mu);
	return true;
}

bool vmo__waiter_take(struct vmo_object *obj, uint64_t pg, struct vmo__space **sp, uintptr_t *addr)
{
	if (atomic_load(&obj->pages.nwaiters) == 0)
		return false;
	struct vmo__waiter *w = NULL;
	pthread_mutex_lock(&obj->mu);
	for (struct vmo__waiter **pp = &obj->pages.waiters; *pp; pp = &(*pp)->next)
		if ((*pp)->pg == pg) {
			w = *pp;
			*pp = w->next;
			atomic_fetch_sub(&obj->pages.nwaiters, 1);
			break;
		}
	pthread_mutex_unlock(&obj->mu);
	if (!w)
		return false;
	*sp = w->sp;
	*addr = w->addr;
	free(w);
	return true;
}

void vmo__wake_waiters(struct vmo_object *obj, uint64_t pg, uint64_t n)
{
	if (atomic_load(&obj->pages.iowaiters)) { /* object I/O waits on the cv */
		pthread_mutex_lock(&obj->mu);
		pthread_cond_broadcast(&obj->cv);
		pthread_mutex_unlock(&obj->mu);
	}
	if (atomic_load(&obj->pages.nwaiters) == 0)
		return;
	struct vmo__waiter *wake = NULL;
	pthread_mutex_lock(&obj->mu);
	for (struct vmo__waiter **pp = &obj->pages.waiters; *pp;) {
		struct vmo__waiter *w = *pp;
		if (w->pg >= pg && w->pg < pg + n) {
			*pp = w->next;
			w->next = wake;
			wake = w;
			atomic_fetch_sub(&obj->pages.nwaiters, 1);
		} else {
			pp = &w->next;
		}
	}
	pthread_mutex_unlock(&obj->mu);
	while (wake) {
		struct vmo__waiter *w = wake;
		wake = w->next;
		/* The woken thread faults again and meets the page's new state. */
		w->sp->ops->wake(w->sp, (void *)w->addr, obj->page_size);
		free(w);
	}
}

int vmo__chunks_init(struct vmo_object *o)
{
	uint64_t cb = o->page_size > CHUNK_BYTES ? o->page_size : CHUNK_BYTES;
	o->pages.chunk_pages = (uint32_t)(cb >> o->page_shift);
	o->pages.chunk_shift = (uint32_t)__builtin_ctz(o->pages.chunk_pages);
	o->pages.nchunks = (o->npages + o->pages.chunk_pages - 1) >> o->pages.chunk_shift;
	size_t res_len = o->pages.nchunks * sizeof(uint32_t);
	o->pages.chunk_len = vmo__align_up(res_len + o->pages.nchunks, VMO_PAGE);
	void *p = mmap(NULL, o->pages.chunk_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	o->pages.chunk_res = p;
	o->pages.chunk_ref = (_Atomic uint8_t *)((char *)p + res_len);
	atomic_store(&o->pages.newest_chunk, UINT64_MAX);
	return 0;
}

void vmo__chunks_free(struct vmo_object *o)
{
	if (o->pages.chunk_res)
		munmap((void *)o->pages.chunk_res, o->pages.chunk_len);
}

void vmo__account(struct vmo_object *o, uint64_t pg, long n, uint8_t st)
{
	long sign = n < 0 ? -1 : 1;
	uint64_t cnt = (uint64_t)(n < 0 ? -n : n);
	for (uint64_t i = 0; i < cnt;) {
		uint64_t c = (pg + i) >> o->pages.chunk_shift;
		uint64_t end = (c + 1) << o->pages.chunk_shift;
		uint64_t k = end - (pg + i);
		if (k > cnt - i)
			k = cnt - i;
		atomic_fetch_add_explicit(&o->pages.chunk_res[c], (uint32_t)(sign * (long)k), memory_order_relaxed);
		if (sign > 0) {
			atomic_store_explicit(&o->pages.chunk_ref[c], 1, memory_order_relaxed);
			atomic_store_explicit(&o->pages.newest_chunk, c, memory_order_relaxed);
			atomic_store_explicit(&o->pages.newest_ns, vmo__now_ns(), memory_order_relaxed);
		}
		i += k;
	}
	atomic_fetch_add(&o->pages.resident_pages, n);
	atomic_fetch_add(&o->eng->resident, (uint64_t)(n * (long)o->page_size));
	if (st == PS_DIRTY)
		atomic_fetch_add(&o->pages.dirty_pages, n);
}

void vmo__pages_notify_evict(struct vmo_object *o, uint64_t pg, uint64_t n)
{
	if (o->ops->notify_evict && vmo__callback_begin(o)) {
		o->ops->notify_evict(o->ctx, pg << o->page_shift, n << o->page_shift);
		vmo__callback_end(o);
	}
}

void vmo__pages_drop(struct vmo_object *o, uint64_t pg, uint64_t n, long dirty)
{
	off_t off = (off_t)(pg << o->page_shift), len = (off_t)(n << o->page_shift);
	if (fallocate(o->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) < 0) {
		/* Cannot drop them: they stay resident.  A run that held dirty
		 * pages (discard) is all marked dirty: never clean data it did not
		 * write. */
		vmo__warn("evict: fallocate: %s", strerror(errno));
		for (uint64_t i = 0; i < n; i++)
			ps_set(o, pg + i, dirty ? PS_DIRTY : PS_CLEAN);
		if (dirty)
			atomic_fetch_add(&o->pages.dirty_pages, (long)n - dirty);
		vmo__wake_waiters(o, pg, n);
		return;
	}
	/* Plain stores and one fence (vmo__pages_drop_map says why). */
	for (uint64_t i = 0; i < n; i++)
		atomic_store_explicit(&o->pages.state[pg + i], PS_ABSENT, memory_order_relaxed);
	vmo__account(o, pg, -(long)n, PS_CLEAN);
	if (dirty)
		atomic_fetch_sub(&o->pages.dirty_pages, dirty);
	atomic_fetch_add(&o->st.evictions, n);
	atomic_thread_fence(memory_order_seq_cst);
	vmo__wake_waiters(o, pg, n);
	vmo__pages_notify_evict(o, pg, n);
}

static inline bool res_bit(const uint64_t *res, uint64_t i)
{
	return res[i / 64] >> (i % 64) & 1;
}

void vmo__pages_drop_map(struct vmo_object *o, uint64_t pg, uint64_t n, const uint64_t *res, uint64_t nres,
			 long dirty)
{
	off_t off = (off_t)(pg << o->page_shift), len = (off_t)(n << o->page_shift);
	bool ok = fallocate(o->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) == 0;
	if (!ok) {
		/* As vmo__pages_drop: the resident pages stay (all dirty if the
		 * run held dirty ones); the holes were never in memory. */
		vmo__warn("evict: fallocate: %s", strerror(errno));
		for (uint64_t i = 0; i < n; i++)
			atomic_store_explicit(&o->pages.state[pg + i],
					      !res_bit(res, i) ? PS_ABSENT : dirty ? PS_DIRTY : PS_CLEAN,
					      memory_order_relaxed);
		if (dirty)
			atomic_fetch_add(&o->pages.dirty_pages, (long)nres - dirty);
	} else {
		/* Plain stores, then one fence before the waiters are looked
		 * at (vmo__wake_waiters reads nwaiters): the publish-then-check
		 * of vmo__add_waiter sees either the new state or our wake. */
		for (uint64_t i = 0; i < n; i++)
			atomic_store_explicit(&o->pages.state[pg + i], PS_ABSENT, memory_order_relaxed);
		/* Residency: per chunk, what was resident of it. */
		for (uint64_t i = 0; i < n;) {
			uint64_t c = (pg + i) >> o->pages.chunk_shift;
			uint64_t end = ((c + 1) << o->pages.chunk_shift) - pg;
			if (end > n)
				end = n;
			uint32_t k = 0;
			for (; i < end; i++)
				k += res_bit(res, i);
			if (k)
				atomic_fetch_sub_explicit(&o->pages.chunk_res[c], k, memory_order_relaxed);
		}
		atomic_fetch_sub(&o->pages.resident_pages, (long)nres);
		atomic_fetch_sub(&o->eng->resident, nres << o->page_shift);
		if (dirty)
			atomic_fetch_sub(&o->pages.dirty_pages, dirty);
		atomic_fetch_add(&o->st.evictions, nres);
	}
	atomic_thread_fence(memory_order_seq_cst);
	vmo__wake_waiters(o, pg, n);
	if (!ok || !o->ops->notify_evict)
		return;
	for (uint64_t i = 0; i < n;) {
		if (!res_bit(res, i)) {
			i++;
			continue;
		}
		uint64_t j = i + 1;
		while (j < n && res_bit(res, j))
			j++;
		vmo__pages_notify_evict(o, pg + i, j - i);
		i = j;
	}
}

void vmo__pending_add(struct vmo_object *o, uint64_t pg, uint64_t n)
{
	pthread_mutex_lock(&o->mu);
	/* Prune ranges with nothing PENDING left before growing. */
	if (o->pages.npend == o->pages.pend_cap) {
		size_t k = 0;
		for (size_t i = 0; i < o->pages.npend; i++) {
			bool live = false;
			for (uint64_t j = 0; j < o->pages.pend[i].n && !live; j++)
				live = ps_get(o, o->pages.pend[i].pg + j) == PS_PENDING;
			if (live)
				o->pages.pend[k++] = o->pages.pend[i];
		}
		o->pages.npend = k;
	}
	if (o->pages.npend == o->pages.pend_cap) {
		size_t cap = o->pages.pend_cap ? o->pages.pend_cap * 2 : 16;
		struct vmo__pend *v = realloc(o->pages.pend, cap * sizeof *v);
		if (v) {
			o->pages.pend = v;
			o->pages.pend_cap = cap;
		}
	}
	if (o->pages.npend < o->pages.pend_cap)
		o->pages.pend[o->pages.npend++] = (struct vmo__pend){ pg, n };
	else
		vmo__err("no memory to remember a pending read; a shutdown will not give up its pages");
	pthread_mutex_unlock(&o->mu);
}

void vmo__pending_abandon(struct vmo_object *o)
{
	pthread_mutex_lock(&o->mu);
	struct vmo__pend *v = o->pages.pend;
	size_t n = o->pages.npend;
	o->pages.pend = NULL;
	o->pages.npend = o->pages.pend_cap = 0;
	pthread_mutex_unlock(&o->mu);
	for (size_t i = 0; i < n; i++)
		for (uint64_t j = 0; j < v[i].n; j++)
			if (ps_cas(o, v[i].pg + j, PS_PENDING, PS_ABSENT))
				vmo__wake_waiters(o, v[i].pg + j, 1);
	free(v);
}
