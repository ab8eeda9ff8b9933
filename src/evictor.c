/* SPDX-License-Identifier: MIT */
/* evictor.c - the engine's background thread: every 100 ms, or when kicked
 * (work queued, a budget lowered, memory pressure), it runs the queued
 * writeback requests (sync / return without VMO_WAIT) and prefetches
 * (vmo_object_prefetch), and reclaims down to
 * the budgets (from a background mark between low and high water, so
 * that faults seldom reclaim themselves: evict.c); and the memory-pressure
 * watcher that caps the engine while
 * the machine or its cgroup is short (evict.c has the policy).
 *
 * Memory pressure caps the engine while the machine or its memory cgroup is
 * short: every 100 ms it stays two margins below the headroom the machine and
 * the cgroup still allow, and a PSI stall or cgroup event caps it at a
 * fraction of what it holds; when calm, the cap is lifted gradually. */
#include "core.h"
#include "pressure.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The objects with queued work, pinned (their free waits for the pin):
 * the queued writeback runs here, under evict_mu; the prefetches after it,
 * out of it (a pager read, then a budget check that may reclaim: reclaim
 * takes evict_mu). */
static struct vmo_object **run_background(struct vmo_engine *e, long *nout)
{
	pthread_mutex_lock(&e->objs_mu);
	long n = e->nobjs;
	struct vmo_object **v = n ? calloc((size_t)n, sizeof *v) : NULL;
	long k = 0;
	for (struct vmo_object *o = e->objs; o && v; o = o->next)
		if (atomic_load(&o->bg) && !atomic_load(&o->dead) && vmo__object_pin(o))
			v[k++] = o;
	pthread_mutex_unlock(&e->objs_mu);
	for (long i = 0; i < k; i++)
		vmo__run_bg(v[i]);
	*nout = k;
	return v;
}

static void run_prefetches(struct vmo_object **v, long k)
{
	for (long i = 0; i < k; i++) {
		vmo__run_prefetch(v[i]);
		vmo__object_unpin(v[i]);
	}
	free(v);
}

static void *evictor_main(void *arg)
{
	struct vmo_engine *e = arg;
	vmo__on_vmo_thread = true;
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
		long k;
		pthread_mutex_lock(&e->evict_mu);
		struct vmo_object **v = run_background(e, &k);
		pthread_mutex_unlock(&e->evict_mu);
		run_prefetches(v, k);
		vmo__reclaim_background(e);
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
	int rc = vmo__thread_create(&e->evictor, evictor_main, e);
	if (rc)
		return rc;
	e->evictor_running = true;
	if (!(e->flags & VMO_ENGINE_NO_PRESSURE)) {
		struct vmo__pressure_opts po = { .poll_ms = 100 };
		if (vmo__pressure_subscribe(&po, pressure_cb, e, &e->pressure_sub))
			e->pressure_sub = NULL; /* no pressure signal here: budgets still hold */
	}
	return 0;
}

void vmo__evictor_stop(struct vmo_engine *e)
{
	vmo__pressure_unsubscribe(e->pressure_sub);
	e->pressure_sub = NULL;
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
	if (obj->proxy)
		return vmo__not_on_client("vmo_object_set_budget");
	int rc = set_budget(&obj->budget_hi, &obj->budget_lo, high, low, obj->page_size);
	if (!rc && high && (uint64_t)atomic_load(&obj->pages.resident_pages) > atomic_load(&obj->budget_hi))
		vmo__reclaim(obj->eng, obj, 0);
	return rc;
}
