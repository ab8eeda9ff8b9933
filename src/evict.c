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
#include "psi.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int vmo__chunks_init(struct vmo_object *o)
{
	uint64_t cb = o->page_size > CHUNK_BYTES ? o->page_size : CHUNK_BYTES;
	o->chunk_pages = (uint32_t)(cb >> o->page_shift);
	o->chunk_shift = (uint32_t)__builtin_ctz(o->chunk_pages);
	o->nchunks = (o->npages + o->chunk_pages - 1) >> o->chunk_shift;
	size_t res_len = o->nchunks * sizeof(uint32_t);
	o->chunk_len = vmo__align_up(res_len + o->nchunks, VMO_PAGE);
	void *p = mmap(NULL, o->chunk_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	o->chunk_res = p;
	o->chunk_ref = (_Atomic uint8_t *)((char *)p + res_len);
	return 0;
}

void vmo__chunks_free(struct vmo_object *o)
{
	if (o->chunk_res)
		munmap((void *)o->chunk_res, o->chunk_len);
}

void vmo__account(struct vmo_object *o, uint64_t pg, long n, uint8_t st)
{
	long sign = n < 0 ? -1 : 1;
	uint64_t cnt = (uint64_t)(n < 0 ? -n : n);
	for (uint64_t i = 0; i < cnt;) {
		uint64_t c = (pg + i) >> o->chunk_shift;
		uint64_t end = (c + 1) << o->chunk_shift;
		uint64_t k = end - (pg + i);
		if (k > cnt - i)
			k = cnt - i;
		atomic_fetch_add_explicit(&o->chunk_res[c], (uint32_t)(sign * (long)k), memory_order_relaxed);
		if (sign > 0)
			atomic_store_explicit(&o->chunk_ref[c], 1, memory_order_relaxed);
		i += k;
	}
	atomic_fetch_add(&o->resident_pages, n);
	atomic_fetch_add(&o->eng->resident, (uint64_t)(n * (long)o->page_size));
	if (st == PS_DIRTY)
		atomic_fetch_add(&o->dirty_pages, n);
}

/* ---- eviction of one range ------------------------------------------------ */

static void notify(struct vmo_object *o, uint64_t pg, uint64_t n)
{
	if (o->ops->notify_evict && vmo__callback_begin(o)) {
		o->ops->notify_evict(o->ctx, pg << o->page_shift, n << o->page_shift);
		vmo__callback_end(o);
	}
}

/* Punch [pg, pg+n) (all EVICTING) out of the memfd, then mark them absent. */
static void punch(struct vmo_object *o, uint64_t pg, uint64_t n, long dirty)
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
			atomic_fetch_add(&o->dirty_pages, (long)n - dirty);
		vmo__wake_waiters(o, pg, n);
		return;
	}
	for (uint64_t i = 0; i < n; i++)
		ps_set(o, pg + i, PS_ABSENT);
	vmo__account(o, pg, -(long)n, PS_CLEAN);
	if (dirty)
		atomic_fetch_sub(&o->dirty_pages, dirty);
	atomic_fetch_add(&o->st.evictions, n);
	vmo__wake_waiters(o, pg, n);
	notify(o, pg, n);
}

/* Async tracking: a page claimed for eviction may have been written since
 * dirty pages were last collected, and the kernel did not tell us.  Unmap it
 * from the writable views (later accesses fault to us and wait), then write
 * it back whatever it holds.  false: the write failed, keep the pages. */
static int zap_view(struct vmo_map *m, uintptr_t addr, size_t len, void *arg)
{
	(void)arg;
	/* Another process's view on a kernel whose process_madvise cannot
	 * zap keeps its entries: its accesses are not seen (aging only). */
	m->space->ops->zap(m->space, (void *)addr, len);
	return 0;
}

static bool async_flush(struct vmo_object *o, uint64_t pg, uint64_t n)
{
	uint64_t lo = pg << o->page_shift, hi = (pg + n) << o->page_shift;
	pthread_mutex_lock(&o->mu);
	int nw = o->nwmaps;
	pthread_mutex_unlock(&o->mu);
	if (nw)
		vmo__views_each(o, lo, hi, true, zap_view, NULL);
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
		atomic_fetch_add(&o->dirty_pages, (long)n);
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
		uint64_t run = 0, cend = ((pg >> o->chunk_shift) + 1) << o->chunk_shift;
		long dirty = 0;
		if (cend > pg1)
			cend = pg1;
		pthread_mutex_t *lk = vmo__wplock(o, pg);
		pthread_mutex_lock(lk);
		while (pg + run < cend) {
			uint8_t s = ps_get(o, pg + run);
			bool ok = false;
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
			punch(o, pg, run, dirty);
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
	uint64_t lo = (c << o->chunk_shift) << o->page_shift;
	uint64_t hi = lo + ((uint64_t)o->chunk_pages << o->page_shift);
	if (!(o->eng->features & VMO_FEAT_MINOR))
		return; /* no MINOR faults: no signal, plain FIFO-ish clock */
	if (o->eng->async)
		return; /* unmapping a written page would erase its written bit:
			 * async tracking keeps the supply-time reference only */
	vmo__views_each(o, lo, hi, false, zap_view, NULL);
}

/* Advance obj's CLOCK hand until `want` pages are freed or two sweeps made. */
static uint64_t clock_reclaim(struct vmo_object *o, uint64_t want)
{
	uint64_t freed = 0;
	bool can_write = o->track && o->ops->write;
	for (uint64_t steps = 0; freed < want && steps < 2 * o->nchunks + 1; steps++) {
		uint64_t c = o->hand;
		o->hand = c + 1 >= o->nchunks ? 0 : c + 1;
		if (!atomic_load_explicit(&o->chunk_res[c], memory_order_relaxed))
			continue;
		if (atomic_exchange(&o->chunk_ref[c], 0)) {
			unmap_chunk(o, c);
			continue;
		}
		uint64_t pg0 = c << o->chunk_shift, pg1 = pg0 + o->chunk_pages;
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
static void reclaim(struct vmo_engine *e, struct vmo_object *only, uint64_t extra_pages)
{
	pthread_mutex_lock(&e->evict_mu);
	if (only) {
		uint64_t hi = atomic_load(&only->budget_hi), lo = atomic_load(&only->budget_lo);
		uint64_t res = (uint64_t)atomic_load(&only->resident_pages) + extra_pages;
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
			if (!atomic_load(&o->dead) && atomic_load(&o->resident_pages) && vmo__object_tryref(o))
				v[k++] = o;
		pthread_mutex_unlock(&e->objs_mu);
		for (int round = 0; k && round < 64; round++) {
			bool progress = false;
			for (long i = 0; i < k && (res = atomic_load(&e->resident)) > lo; i++) {
				struct vmo_object *o = v[(size_t)(e->rr + (uint64_t)i) % (size_t)k];
				if (clock_reclaim(o, o->chunk_pages))
					progress = true;
			}
			e->rr++;
			if (atomic_load(&e->resident) <= lo || !progress)
				break;
		}
		for (long i = 0; i < k; i++)
			vmo__object_put(v[i]);
		free(v);
	}
	pthread_mutex_unlock(&e->evict_mu);
}

void vmo__budget_check(struct vmo_object *o, uint64_t n)
{
	struct vmo_engine *e = o->eng;
	uint64_t ohi = atomic_load(&o->budget_hi);
	bool obj_over = ohi && (uint64_t)atomic_load(&o->resident_pages) + n > ohi;
	uint64_t lo, hi = eff_engine_cap(e, &lo);
	uint64_t res = atomic_load(&e->resident) + (n << o->page_shift);
	bool eng_over = hi && res > hi;
	if (obj_over || eng_over)
		reclaim(e, obj_over ? o : NULL, n); /* direct: the budget holds */
}

/* ---- the evictor thread ------------------------------------------------------ */

static void run_background(struct vmo_engine *e)
{
	pthread_mutex_lock(&e->objs_mu);
	long n = e->nobjs;
	struct vmo_object **v = n ? calloc((size_t)n, sizeof *v) : NULL;
	long k = 0;
	for (struct vmo_object *o = e->objs; o && v; o = o->next)
		if (atomic_load(&o->bg) && !atomic_load(&o->dead) && vmo__object_tryref(o))
			v[k++] = o;
	pthread_mutex_unlock(&e->objs_mu);
	for (long i = 0; i < k; i++) {
		vmo__run_bg(v[i]);
		vmo__object_put(v[i]);
	}
	free(v);
}

static void *evictor_main(void *arg)
{
	struct vmo_engine *e = arg;
	pthread_mutex_lock(&e->emu);
	while (!e->evictor_stop) {
		if (!e->kick) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 100 * 1000 * 1000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&e->ecv, &e->emu, &ts);
		}
		if (e->evictor_stop)
			break;
		e->kick = false;
		pthread_mutex_unlock(&e->emu);
		/* Temporary references on objects are only held under evict_mu,
		 * so that vmo_engine_destroy can wait them out. */
		pthread_mutex_lock(&e->evict_mu);
		run_background(e);
		pthread_mutex_unlock(&e->evict_mu);
		reclaim(e, NULL, 0);
		pthread_mutex_lock(&e->emu);
	}
	pthread_mutex_unlock(&e->emu);
	return NULL;
}

static void pressure_cb(void *arg, int level)
{
	struct vmo_engine *e = arg;
	uint64_t res = atomic_load(&e->resident);
	uint64_t cap = atomic_load(&e->pressure_cap);
	uint64_t target = 0; /* 0: no cap needed now */
	/* Headroom: stay two margins below what the machine and the process's
	 * memory cgroup still allow, before anyone stalls (shmem pages cannot be
	 * reclaimed without swap: waiting for the OOM killer is too late). */
	struct vmo__mem m;
	if (vmo__mem_query(&m) == 0 && m.headroom != UINT64_MAX) {
		uint64_t margin2 = 2 * vmo__mem_default_margin();
		uint64_t allowed = res + m.headroom > margin2 ? res + m.headroom - margin2 : 0;
		if (allowed < res)
			target = allowed;
	}
	/* A stall or a cgroup pressure event: hold at most 3/4 (critical: 1/2). */
	if (level != VMO__PRESSURE_NONE) {
		uint64_t t = level >= VMO__PRESSURE_CRITICAL ? res / 2 : res - res / 4;
		if (!target || t < target)
			target = t;
	}
	if (target) {
		if (target < (4u << 20))
			target = 4u << 20;
		if (!cap || target < cap) {
			atomic_store(&e->pressure_cap, target);
			vmo__debug("memory pressure (level %d): engine capped at %llu bytes", level,
				   (unsigned long long)target);
			vmo__evictor_kick(e);
		}
		return;
	}
	/* Calm: lift the cap gradually (an eighth per tick), then drop it. */
	if (cap) {
		uint64_t n = cap + cap / 8 + (1u << 20);
		uint64_t hi = atomic_load(&e->budget_hi);
		atomic_store(&e->pressure_cap, (hi && n >= hi) || n > res * 2 + (64u << 20) ? 0 : n);
	}
}

int vmo__evictor_start(struct vmo_engine *e)
{
	pthread_mutex_init(&e->evict_mu, NULL);
	pthread_mutex_init(&e->emu, NULL);
	pthread_cond_init(&e->ecv, NULL);
	int rc = -pthread_create(&e->evictor, NULL, evictor_main, e);
	if (rc)
		return rc;
	e->evictor_running = true;
	if (!(e->flags & VMO_ENGINE_NO_PRESSURE)) {
		struct vmo__psi_opts po = { .poll_ms = 100 };
		if (vmo__psi_watch(&po, pressure_cb, e, &e->psi))
			e->psi = NULL; /* no pressure signal here: budgets still hold */
	}
	return 0;
}

void vmo__evictor_stop(struct vmo_engine *e)
{
	if (e->psi)
		vmo__psi_stop(e->psi);
	e->psi = NULL;
	if (e->evictor_running) {
		pthread_mutex_lock(&e->emu);
		e->evictor_stop = true;
		pthread_cond_broadcast(&e->ecv);
		pthread_mutex_unlock(&e->emu);
		pthread_join(e->evictor, NULL);
		e->evictor_running = false;
	}
	pthread_mutex_destroy(&e->evict_mu);
	pthread_mutex_destroy(&e->emu);
	pthread_cond_destroy(&e->ecv);
}

void vmo__evictor_kick(struct vmo_engine *e)
{
	pthread_mutex_lock(&e->emu);
	e->kick = true;
	pthread_cond_signal(&e->ecv);
	pthread_mutex_unlock(&e->emu);
}

static int set_budget(_Atomic uint64_t *hi, _Atomic uint64_t *lo, uint64_t h, uint64_t l, uint64_t unit)
{
	if (l > h || (h && h < unit))
		return -EINVAL;
	if (h && !l)
		l = h - h / 8;
	atomic_store(hi, h / unit);
	atomic_store(lo, l / unit);
	return 0;
}

VMO_API int vmo_engine_set_budget(struct vmo_engine *eng, uint64_t high, uint64_t low)
{
	if (!eng)
		return -EINVAL;
	int rc = set_budget(&eng->budget_hi, &eng->budget_lo, high, low, 1);
	if (!rc)
		vmo__evictor_kick(eng);
	return rc;
}

VMO_API int vmo_object_set_budget(struct vmo_object *obj, uint64_t high, uint64_t low)
{
	if (!obj)
		return -EINVAL;
	int rc = set_budget(&obj->budget_hi, &obj->budget_lo, high, low, obj->page_size);
	if (!rc && high && (uint64_t)atomic_load(&obj->resident_pages) > atomic_load(&obj->budget_hi))
		reclaim(obj->eng, obj, 0);
	return rc;
}
