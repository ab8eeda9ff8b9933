/* SPDX-License-Identifier: MIT */
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
 * the bit again: the reference signal), at most CHANCES_PER_EVICTION times
 * per chunk it evicts, chunks in a row in one call; a chunk found
 * unreferenced is evicted: dirty pages written back, clean pages punched out
 * of the memfd in one fallocate() for the chunk however scattered its pages
 * (the holes between them claimed too), and for up to EVICT_RUN_CHUNKS
 * chunks at once when a range is returned.
 *
 * Background: past a mark between low and high water, a worker about to
 * supply wakes the evictor thread, which reclaims down to low water while
 * faults go on being served; direct reclaim (the worker's) is left for when
 * resident memory reaches high water all the same.
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

/* A run of eviction spans at most this many chunks: one fallocate for it
 * all.  Each call that unmaps pages from a view costs a TLB flush, a
 * hypercall on the paravirtual machines we measure on (about 60-85 us,
 * whatever the run's length): a 512-page punch of mapped pages cost
 * 720 ns/page there, a 16384-page one 555 (docs/performance.md). */
#define EVICT_RUN_CHUNKS 8
#define EVICT_RUN_MAX (EVICT_RUN_CHUNKS * (CHUNK_BYTES / 4096))

uint64_t vmo__evict_clean(struct vmo_object *o, uint64_t pg0, uint64_t pg1, bool dirty_too)
{
	/* Holes inside a run are claimed too (ABSENT -> EVICTING: no fill may
	 * land there before the punch), so that one punch covers what is
	 * resident of a chunk however scattered, where a punch per contiguous
	 * run of resident pages made a sparse chunk cost ~100 calls.  Not
	 * with async tracking's flush, which writes the run back. */
	bool holes = !(o->eng->async && !dirty_too);
	uint32_t cs = o->pages.chunk_shift;
	uint64_t max = (uint64_t)EVICT_RUN_CHUNKS << cs;
	if (max > EVICT_RUN_MAX)
		max = EVICT_RUN_MAX;
	uint64_t res[EVICT_RUN_MAX / 64];
	uint64_t freed = 0;
	for (uint64_t pg = pg0; pg < pg1;) {
		/* Skip what cannot start a run without locking: empty chunks,
		 * pages neither clean nor (with dirty_too) dirty. */
		uint64_t c = pg >> cs;
		if (!atomic_load_explicit(&o->pages.chunk_res[c], memory_order_relaxed)) {
			pg = (c + 1) << cs;
			continue;
		}
		uint8_t s0 = ps_get(o, pg);
		if (s0 != PS_CLEAN && !(dirty_too && s0 == PS_DIRTY)) {
			pg++;
			continue;
		}
		/* Claim the run chunk by chunk, each chunk's claims under its
		 * stripe, the lock map_present holds while it looks at a page
		 * and maps it: a MINOR fault never sees a page go CLEAN ->
		 * EVICTING -> (punched, refilled) CLEAN between its look and
		 * its mapping. */
		uint64_t lim = pg + max < pg1 ? pg + max : pg1;
		uint64_t run = 0, nres = 0, last = 0; /* last: run length up to the last resident page */
		long dirty = 0;
		bool stop = false;
		memset(res, 0, ((lim - pg + 63) / 64) * sizeof res[0]);
		while (!stop && pg + run < lim) {
			uint64_t cc = (pg + run) >> cs, cend = (cc + 1) << cs;
			if (run && !atomic_load_explicit(&o->pages.chunk_res[cc], memory_order_relaxed))
				break; /* an empty chunk ends the run */
			if (cend > lim)
				cend = lim;
			pthread_mutex_t *lk = vmo__wplock(o, pg + run);
			pthread_mutex_lock(lk);
			for (; pg + run < cend; run++) {
				uint64_t p = pg + run;
				uint8_t s = ps_get(o, p);
				if (vmo__pinned(o, p)) {
					stop = true; /* pinned: never evicted, nor discarded */
					break;
				}
				if ((s == PS_CLEAN || (dirty_too && s == PS_DIRTY)) && ps_cas(o, p, s, PS_EVICTING)) {
					res[run / 64] |= 1ull << (run % 64);
					nres++;
					dirty += s == PS_DIRTY;
					last = run + 1;
				} else if (!(holes && s == PS_ABSENT && ps_cas(o, p, PS_ABSENT, PS_EVICTING))) {
					stop = true;
					break;
				}
			}
			pthread_mutex_unlock(lk);
		}
		/* Holes claimed after the last resident page go back. */
		if (run > last) {
			for (uint64_t i = last; i < run; i++)
				atomic_store_explicit(&o->pages.state[pg + i], PS_ABSENT, memory_order_relaxed);
			atomic_thread_fence(memory_order_seq_cst);
			vmo__wake_waiters(o, pg + last, run - last);
		}
		run = last;
		if (!run) {
			pg++;
			continue;
		}
		if (o->eng->async && !dirty_too && !async_flush(o, pg, run)) {
			pg += run;
			continue;
		}
		if (nres == run)
			vmo__pages_drop(o, pg, run, dirty);
		else
			vmo__pages_drop_map(o, pg, run, res, nres, dirty);
		freed += nres;
		pg += run;
	}
	return freed;
}

/* Unmap chunks [c, c+k) from every view: pages stay in memory; the next
 * touch of each is a MINOR fault, which marks its chunk referenced. */
static void unmap_chunks(struct vmo_object *o, uint64_t c, uint64_t k)
{
	uint64_t lo = (c << o->pages.chunk_shift) << o->page_shift;
	uint64_t hi = ((c + k) << o->pages.chunk_shift) << o->page_shift;
	if (hi > o->size)
		hi = o->size;
	if (!(o->eng->features & VMO_FEAT_MINOR))
		return; /* no MINOR faults: no signal, plain FIFO-ish clock */
	if (o->eng->async)
		return; /* unmapping a written page would erase its written bit:
			 * async tracking keeps the supply-time reference only */
	vmo__views_zap(o, lo, hi, false, NULL); /* (another process's: aging only) */
}

/* Referenced chunks the hand passes in a row are unmapped together, in one
 * call per view: each call costs a TLB flush (tens of microseconds here,
 * more than the chunk's own pages), and under random access the hand
 * passes several referenced chunks for each one it evicts (10 per
 * eviction in bench/evict). */
#define ZAP_BATCH_CHUNKS 16

/* Second chances the hand gives (chunks it unmaps) for each chunk it
 * evicts: past them, the chunk under the hand is evicted referenced or
 * not.  Under uniform random access every chunk is referenced again before
 * the hand comes back, the bit says nothing, and an unbounded hand unmapped
 * 10 chunks per eviction in bench/evict: each page of the budget was
 * unmapped about 6 times in its life, ~1 us a page here, the largest cost
 * of reclaim.  Where some chunks are hot and others cold, the hand finds
 * a cold chunk within a few steps and the bound does not bite. */
#define CHANCES_PER_EVICTION 2

/* Advance obj's CLOCK hand until `want` pages are freed or two sweeps made. */
/* Set while the evictor thread reclaims in the background (not for a
 * fault that needs room now). */
static VMO__TLS bool in_background;
#define NEWEST_GRACE_NS 20000000ull /* 20 ms */

static uint64_t clock_reclaim(struct vmo_object *o, uint64_t want)
{
	uint64_t freed = 0;
	bool can_write = o->track && o->ops->write;
	uint64_t nch = o->pages.nchunks;
	uint64_t chances = 0;
	for (uint64_t steps = 0; freed < want && steps < 2 * nch + 1;) {
		uint64_t c = o->pages.hand;
		if (!atomic_load_explicit(&o->pages.chunk_res[c], memory_order_relaxed)) {
			o->pages.hand = c + 1 >= nch ? 0 : c + 1;
			steps++;
			continue;
		}
		if (atomic_exchange(&o->pages.chunk_ref[c], 0) && chances++ < CHANCES_PER_EVICTION) {
			/* The run of chunks after it that the hand would also
			 * find referenced (or empty) next: their bits cleared,
			 * all unmapped at once. */
			uint64_t k = 1, last = 1;
			while (k < ZAP_BATCH_CHUNKS && chances < CHANCES_PER_EVICTION && c + k < nch &&
			       steps + k < 2 * nch + 1) {
				uint64_t d = c + k;
				if (!atomic_load_explicit(&o->pages.chunk_res[d], memory_order_relaxed)) {
					k++;
					continue;
				}
				if (!atomic_exchange(&o->pages.chunk_ref[d], 0))
					break;
				chances++;
				last = ++k;
			}
			unmap_chunks(o, c, last);
			o->pages.hand = c + last >= nch ? 0 : c + last;
			steps += last;
			continue;
		}
		o->pages.hand = c + 1 >= nch ? 0 : c + 1;
		steps++;
		/* Background reclaim runs beside the faults: it could take the
		 * chunk just supplied before its faulting thread has run again
		 * and touched it (a thread descheduled under load, a
		 * self-service fault's sigreturn), and with a budget of a few
		 * chunks do it again at every fault: a livelock, seen in CI
		 * (test_budget_selfserve, 2 MiB pages, a 4 MiB budget).  So it
		 * leaves that chunk for NEWEST_GRACE_NS after the supply (a few
		 * scheduler slices); faults that need room reclaim for
		 * themselves, and later the chunk is fair game (a budget
		 * lowered under an idle object takes it too). */
		if (in_background && c == atomic_load_explicit(&o->pages.newest_chunk, memory_order_relaxed) &&
		    vmo__now_ns() - atomic_load_explicit(&o->pages.newest_ns, memory_order_relaxed) < NEWEST_GRACE_NS)
			continue;
		chances = 0;
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

/* Background reclaim starts this far up from low water towards high: the
 * evictor thread brings resident memory back to low while the workers go
 * on serving faults, so that a fault seldom finds the budget full and has
 * to reclaim first (direct reclaim, which the faulting thread waits for).
 * A quarter of the way leaves three quarters of the gap for the faults
 * that come while the evictor works. */
static inline uint64_t bg_mark(uint64_t hi, uint64_t lo)
{
	return lo + (hi - lo) / 4;
}

/* The engine's share: above `over` (high water, or the background mark),
 * take from every live object in turn, a chunk's worth at a time, down to
 * low water.  Under evict_mu. */
#define RECLAIM_OBJS 64

static void reclaim_engine(struct vmo_engine *e, bool bg)
{
	uint64_t lo;
	uint64_t hi = eff_engine_cap(e, &lo);
	uint64_t res = atomic_load(&e->resident);
	if (!hi || res <= (bg ? bg_mark(hi, lo) : hi))
		return;
	/* At most RECLAIM_OBJS objects a call, from a place that moves round
	 * the list, in an array on the stack: no malloc, since a self-service
	 * fault may reclaim in a signal handler (selfserve.c). */
	struct vmo_object *v[RECLAIM_OBJS];
	long k = 0;
	pthread_mutex_lock(&e->objs_mu);
	long n = e->nobjs;
	long start = n > RECLAIM_OBJS ? (long)(e->rr % (uint64_t)n) : 0;
	for (int pass = 0; pass < 2 && k < RECLAIM_OBJS; pass++) {
		long idx = 0;
		for (struct vmo_object *o = e->objs; o && k < RECLAIM_OBJS; o = o->next, idx++) {
			if (pass == 0 ? idx < start : idx >= start)
				continue;
			if (!atomic_load(&o->dead) && atomic_load(&o->pages.resident_pages) && vmo__object_pin(o))
				v[k++] = o;
		}
	}
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
	reclaim_engine(e, false);
	pthread_mutex_unlock(&e->evict_mu);
}

void vmo__reclaim_background(struct vmo_engine *e)
{
	/* A crossing from now on kicks again.  Objects are looked at only
	 * when one kicked (a tick without a kick costs no walk of them). */
	in_background = true;
	if (!atomic_exchange(&e->bg_reclaim, false))
		goto engine;
	/* Objects above their own background mark, each under evict_mu on its
	 * own (a direct reclaimer waits for one object's work, not all). */
	pthread_mutex_lock(&e->objs_mu);
	long n = e->nobjs;
	struct vmo_object **v = n ? calloc((size_t)n, sizeof *v) : NULL;
	long k = 0;
	for (struct vmo_object *o = e->objs; o && v; o = o->next) {
		uint64_t hi = atomic_load(&o->budget_hi), lo = atomic_load(&o->budget_lo);
		if (hi && !atomic_load(&o->dead) && (uint64_t)atomic_load(&o->pages.resident_pages) > bg_mark(hi, lo) &&
		    vmo__object_pin(o))
			v[k++] = o;
	}
	pthread_mutex_unlock(&e->objs_mu);
	for (long i = 0; i < k; i++) {
		struct vmo_object *o = v[i];
		pthread_mutex_lock(&e->evict_mu);
		uint64_t hi = atomic_load(&o->budget_hi), lo = atomic_load(&o->budget_lo);
		uint64_t res = (uint64_t)atomic_load(&o->pages.resident_pages);
		if (hi && res > bg_mark(hi, lo) && !atomic_load(&o->dead))
			clock_reclaim(o, res - lo);
		pthread_mutex_unlock(&e->evict_mu);
		vmo__object_unpin(o);
	}
	free(v);
engine:
	pthread_mutex_lock(&e->evict_mu);
	reclaim_engine(e, true);
	pthread_mutex_unlock(&e->evict_mu);
	in_background = false;
}

void vmo__budget_check(struct vmo_object *o, uint64_t n)
{
	struct vmo_engine *e = o->eng;
	uint64_t ohi = atomic_load(&o->budget_hi), olo = atomic_load(&o->budget_lo);
	uint64_t ores = (uint64_t)atomic_load(&o->pages.resident_pages) + n;
	bool obj_over = ohi && ores > ohi;
	uint64_t lo, hi = eff_engine_cap(e, &lo);
	uint64_t res = atomic_load(&e->resident) + (n << o->page_shift);
	bool eng_over = hi && res > hi;
	if (obj_over || eng_over) {
		vmo__reclaim(e, obj_over ? o : NULL, n); /* direct: the budget holds */
		return;
	}
	/* Past a background mark: wake the evictor (once until it runs). */
	if (((ohi && ores > bg_mark(ohi, olo)) || (hi && res > bg_mark(hi, lo))) &&
	    !atomic_load_explicit(&e->bg_reclaim, memory_order_relaxed) && !atomic_exchange(&e->bg_reclaim, true))
		vmo__evictor_kick(e);
}
