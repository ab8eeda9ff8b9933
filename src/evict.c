/* evict.c - memory budgets and reclaim.
 *
 * Each engine and each object may have a budget: a high water mark of
 * resident bytes and a low one.  Above high, pages are reclaimed down to low:
 * in the background by the engine's evictor thread, and directly by the
 * worker about to supply pages when resident memory would pass high.
 *
 * Policy: CLOCK over chunks of CHUNK_BYTES.  A chunk's referenced bit is set
 * when a page of it is supplied or mapped (MISSING and MINOR faults).  The
 * hand clears a set bit and unmaps the chunk from every view (MADV_DONTNEED:
 * the pages stay in the memfd, and a later touch is a MINOR fault that sets
 * the bit again: the reference signal); a chunk found unreferenced is
 * evicted: dirty pages written back, clean pages punched out of the memfd in
 * one fallocate() per run (512 pages for a full 4 KiB-page chunk).
 *
 * Memory pressure caps the engine while the machine or its memory cgroup is
 * short: every 100 ms it stays two margins below the headroom the machine and
 * the cgroup still allow, and a PSI stall or cgroup event caps it at a
 * fraction of what it holds; when calm, the cap is lifted gradually. */
#include "core.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- eviction of one range ------------------------------------------------ */

/* Async tracking: a page claimed for eviction may have been written since
 * dirty pages were last collected, and the kernel did not tell us.  Unmap it
 * from the writable views (later accesses fault to us and wait; another
 * process's views cannot be zapped and keep their entries), then write it
 * back whatever it holds.  false: the write failed, keep the pages. */
static bool async_flush(struct vmo_object *o, uint64_t pg, uint64_t n)
{
	uint64_t lo = pg << o->page_shift, hi = (pg + n) << o->page_shift;
	pthread_mutex_lock(&o->mu);
	int nw = o->nwmaps;
	pthread_mutex_unlock(&o->mu);
	if (nw)
		vmo__views_zap(o, lo, hi, true, NULL);
	if (!nw || !o->ops->write)
		return true;
	size_t len = (size_t)n << o->page_shift;
	void *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int rc = buf == MAP_FAILED ? -ENOMEM : vmo__write_pages(o, pg, n, buf);
	if (buf != MAP_FAILED)
		munmap(buf, len);
	if (rc) {
		for (uint64_t i = 0; i < n; i++)
			ps_set(o, pg + i, PS_DIRTY);
		atomic_fetch_add(&o->pages.dirty_pages, (long)n);
		vmo__wake_waiters(o, pg, n);
		return false;
	}
	return true;
}

uint64_t vmo__evict_clean(struct vmo_object *o, uint64_t pg0, uint64_t pg1, bool dirty_too)
{
	uint64_t freed = 0;
	for (uint64_t pg = pg0; pg < pg1;) {
		/* Start a run at the next page we can claim.  The claims of a run
		 * (within one chunk) are made under the chunk's stripe, the lock
		 * map_present holds while it looks at a page and maps it: a MINOR
		 * fault never sees a page go CLEAN -> EVICTING -> (punched,
		 * refilled) CLEAN between its look and its mapping. */
		uint64_t run = 0, cend = ((pg >> o->pages.chunk_shift) + 1) << o->pages.chunk_shift;
		long dirty = 0;
		if (cend > pg1)
			cend = pg1;
		pthread_mutex_t *lk = vmo__wplock(o, pg);
		pthread_mutex_lock(lk);
		while (pg + run < cend) {
			uint8_t s = ps_get(o, pg + run);
			bool ok = false;
			if (vmo__pinned(o, pg + run))
				break; /* pinned: never evicted, nor discarded */
			if (s == PS_CLEAN)
				ok = ps_cas(o, pg + run, PS_CLEAN, PS_EVICTING);
			else if (dirty_too && s == PS_DIRTY && ps_cas(o, pg + run, PS_DIRTY, PS_EVICTING)) {
				ok = true;
				dirty++;
			}
			if (!ok)
				break;
			run++;
		}
		pthread_mutex_unlock(lk);
		if (run && o->eng->async && !dirty_too && !async_flush(o, pg, run)) {
			pg += run;
			continue;
		}
		if (run) {
			vmo__pages_drop(o, pg, run, dirty);
			freed += run;
			pg += run;
		} else {
			pg++;
		}
	}
	return freed;
}

/* Unmap chunk c from every view: pages stay in memory; the next touch of
 * each is a MINOR fault, which marks the chunk referenced. */
static void unmap_chunk(struct vmo_object *o, uint64_t c)
{
	uint64_t lo = (c << o->pages.chunk_shift) << o->page_shift;
	uint64_t hi = lo + ((uint64_t)o->pages.chunk_pages << o->page_shift);
	if (!(o->eng->features & VMO_FEAT_MINOR))
		return; /* no MINOR faults: no signal, plain FIFO-ish clock */
	if (o->eng->async)
		return; /* unmapping a written page would erase its written bit:
			 * async tracking keeps the supply-time reference only */
	vmo__views_zap(o, lo, hi, false, NULL); /* (another process's: aging only) */
}

/* Advance obj's CLOCK hand until `want` pages are freed or two sweeps made. */
static uint64_t clock_reclaim(struct vmo_object *o, uint64_t want)
{
	uint64_t freed = 0;
	bool can_write = o->track && o->ops->write;
	for (uint64_t steps = 0; freed < want && steps < 2 * o->pages.nchunks + 1; steps++) {
		uint64_t c = o->pages.hand;
		o->pages.hand = c + 1 >= o->pages.nchunks ? 0 : c + 1;
		if (!atomic_load_explicit(&o->pages.chunk_res[c], memory_order_relaxed))
			continue;
		if (atomic_exchange(&o->pages.chunk_ref[c], 0)) {
			unmap_chunk(o, c);
			continue;
		}
		uint64_t pg0 = c << o->pages.chunk_shift, pg1 = pg0 + o->pages.chunk_pages;
		if (pg1 > o->npages)
			pg1 = o->npages;
		if (can_write)
			vmo__writeback(o, pg0, pg1); /* failures stay dirty and resident */
		freed += vmo__evict_clean(o, pg0, pg1, false);
	}
	return freed;
}

static uint64_t eff_engine_cap(struct vmo_engine *e, uint64_t *lo)
{
	uint64_t hi = atomic_load(&e->budget_hi), l = atomic_load(&e->budget_lo);
	uint64_t pc = atomic_load(&e->pressure_cap);
	if (pc && (!hi || pc < hi)) {
		hi = pc;
		l = pc - pc / 8;
	}
	*lo = l;
	return hi;
}

uint64_t vmo__engine_cap(struct vmo_engine *e)
{
	uint64_t lo;
	return eff_engine_cap(e, &lo);
}

/* Reclaim for obj's own budget (if over it), and for the engine's. */
void vmo__reclaim(struct vmo_engine *e, struct vmo_object *only, uint64_t extra_pages)
{
	pthread_mutex_lock(&e->evict_mu);
	if (only) {
		uint64_t hi = atomic_load(&only->budget_hi), lo = atomic_load(&only->budget_lo);
		uint64_t res = (uint64_t)atomic_load(&only->pages.resident_pages) + extra_pages;
		if (hi && res > hi && !atomic_load(&only->dead))
			clock_reclaim(only, res - lo);
	}
	uint64_t lo;
	uint64_t hi = eff_engine_cap(e, &lo);
	uint64_t res = atomic_load(&e->resident);
	if (hi && res > hi) {
		/* Take from every live object in turn, a chunk's worth at a time. */
		pthread_mutex_lock(&e->objs_mu);
		long n = e->nobjs;
		struct vmo_object **v = n ? calloc((size_t)n, sizeof *v) : NULL;
		long k = 0;
		for (struct vmo_object *o = e->objs; o && v; o = o->next)
			if (!atomic_load(&o->dead) && atomic_load(&o->pages.resident_pages) && vmo__object_pin(o))
				v[k++] = o;
		pthread_mutex_unlock(&e->objs_mu);
		for (int round = 0; k && round < 64; round++) {
			bool progress = false;
			for (long i = 0; i < k && (res = atomic_load(&e->resident)) > lo; i++) {
				struct vmo_object *o = v[(size_t)(e->rr + (uint64_t)i) % (size_t)k];
				if (clock_reclaim(o, o->pages.chunk_pages))
					progress = true;
			}
			e->rr++;
			if (atomic_load(&e->resident) <= lo || !progress)
				break;
		}
		for (long i = 0; i < k; i++)
			vmo__object_unpin(v[i]);
		free(v);
	}
	pthread_mutex_unlock(&e->evict_mu);
}

void vmo__budget_check(struct vmo_object *o, uint64_t n)
{
	struct vmo_engine *e = o->eng;
	uint64_t ohi = atomic_load(&o->budget_hi);
	bool obj_over = ohi && (uint64_t)atomic_load(&o->pages.resident_pages) + n > ohi;
	uint64_t lo, hi = eff_engine_cap(e, &lo);
	uint64_t res = atomic_load(&e->resident) + (n << o->page_shift);
	bool eng_over = hi && res > hi;
	if (obj_over || eng_over)
		vmo__reclaim(e, obj_over ? o : NULL, n); /* direct: the budget holds */
}
