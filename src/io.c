/* SPDX-License-Identifier: MIT */
/* io.c - an object's data without a mapping (docs/api.md, Object I/O):
 * vmo_memcpy (Hurd's pager_memcpy: the bytes done and the errno, never a
 * SIGBUS), vmo_object_read / _write / _copy / _transfer; errors by range
 * (vmo_object_fail); offer (pages nobody asked for) and prefetch (asked of
 * the pager ahead of demand, asynchronously); pinning (vmo_object_pin).
 *
 * Pages are brought in as a fault brings them, without a view: claimed
 * (ABSENT -> FILLING, PENDING while the pager reads, so that a fault on
 * them waits, and a pager may answer later with vmo_object_supply), read,
 * written into the memfd (install, supply.c), counted against the budget.
 * Data is copied with pread/pwrite on the memfd under the page's stripe
 * (core.h): reclaim claims a clean page under it, so a page looked at there
 * is not punched out before it is copied.  A write makes the page DIRTY as
 * a write fault does (CLEAN -> DIRTY, CLEANING -> DIRTY so that writeback in
 * flight does not mark it clean; the pager's unlock first where it asked
 * for it); views that map it write-protected take one more write fault,
 * which finds it dirty. */
#include "core.h"

#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* ---- waiting for a page in transit ------------------------------------------ */

/* Until page pg leaves FILLING / PENDING / EVICTING: woken by
 * vmo__wake_waiters (every transition out of them calls it), or after a
 * short while in case one does not. */
void vmo__io_wait(struct vmo_object *o, uint64_t pg)
{
	pthread_mutex_lock(&o->mu);
	atomic_fetch_add(&o->pages.iowaiters, 1);
	uint8_t s = ps_get(o, pg);
	if (s == PS_FILLING || s == PS_PENDING || s == PS_EVICTING || s == PS_CLEANING) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 2 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&o->cv, &o->mu, &ts);
	}
	atomic_fetch_sub(&o->pages.iowaiters, 1);
	pthread_mutex_unlock(&o->mu);
}

static int page_error(struct vmo_object *o, uint64_t pg)
{
	pthread_mutex_lock(&o->mu);
	struct vmo__err *e = vmo__find_err(o, pg);
	int err = e ? e->err : -EIO;
	pthread_mutex_unlock(&o->mu);
	return err;
}

/* ---- bringing pages in ------------------------------------------------------- */

/* The buffer a pager reads into: one per thread, kept (a fresh allocation
 * of a cluster per call was most of the time: its first touches are page
 * faults), freed when the thread exits. */
static pthread_key_t buf_key;
static pthread_once_t buf_once = PTHREAD_ONCE_INIT;
struct iobuf {
	void *p;
	size_t cap;
};

static void buf_free(void *arg)
{
	struct iobuf *b = arg;
	free(b->p);
	free(b);
}

static void buf_init(void)
{
	if (pthread_key_create(&buf_key, buf_free))
		vmo__err("io: no thread key for read buffers");
}

static void *io_buf(size_t len)
{
	pthread_once(&buf_once, buf_init);
	struct iobuf *b = pthread_getspecific(buf_key);
	if (!b) {
		b = calloc(1, sizeof *b);
		if (!b || pthread_setspecific(buf_key, b)) {
			free(b);
			return NULL;
		}
	}
	if (b->cap < len) {
		void *p = malloc(len);
		if (!p)
			return NULL;
		free(b->p);
		b->p = p;
		b->cap = len;
	}
	return b->p;
}

/* Read [pg, pg+n), which this thread holds PENDING (claimed), from the
 * pager and install it.  0; or, when a read of several pages fails, 1 with
 * all of them given back (ask page by page, so that only a page that
 * really fails is failed, as a fault does); or the pager's -errno for one
 * page (then failed). */
static int read_claimed(struct vmo_object *o, uint64_t pg, uint64_t n)
{
	size_t len = (size_t)n << o->page_shift;
	void *buf = io_buf(len);
	if (!buf || !vmo__callback_begin(o)) {
		for (uint64_t i = 0; i < n; i++)
			ps_cas(o, pg + i, PS_PENDING, PS_ABSENT);
		vmo__wake_waiters(o, pg, n);
		return buf ? -VMO_ESHUTDOWN : -ENOMEM;
	}
	unsigned rflags = 0;
	int rc = o->ops->read(o->ctx, pg << o->page_shift, buf, len, &rflags);
	bool later = rc == -EINPROGRESS && (o->eng->features & VMO_FEAT_MINOR);
	if (later)
		vmo__pending_add(o, pg, n); /* (shutdown gives them up) */
	vmo__callback_end(o);
	atomic_fetch_add(&o->st.pages_read, n);
	if (later) /* vmo_object_supply will install them; the caller waits */
		return 0;
	if (rc > 0 || rc == -EINPROGRESS)
		rc = -EIO;
	/* Ours again unless the pager supplied them meanwhile. */
	uint64_t k = 0;
	while (k < n && ps_cas(o, pg + k, PS_PENDING, PS_FILLING))
		k++;
	for (uint64_t i = k; i < n; i++) /* (pages after one supplied: given back) */
		ps_cas(o, pg + i, PS_PENDING, PS_ABSENT);
	if (k < n)
		vmo__wake_waiters(o, pg + k, n - k);
	if (rc && k > 1) {
		for (uint64_t i = 0; i < k; i++)
			ps_set(o, pg + i, PS_ABSENT);
		vmo__wake_waiters(o, pg, k);
		return 1;
	}
	if (rc) {
		if (k) {
			vmo__set_error(o, pg, rc);
			ps_set(o, pg, PS_ERROR);
			for (uint64_t i = 1; i < k; i++)
				ps_set(o, pg + i, PS_ABSENT);
			vmo__wake_waiters(o, pg, k);
		}
		return rc;
	}
	if (k)
		rc = vmo__install(o, pg, k, buf, rflags, false);
	return rc;
}

/* Claim the run of ABSENT pages at [pg, pg+max) (PENDING): how many. */
static uint64_t claim(struct vmo_object *o, uint64_t pg, uint64_t max)
{
	uint64_t k = 0;
	while (k < max && ps_cas(o, pg + k, PS_ABSENT, PS_PENDING))
		k++;
	return k;
}

/* Bring page pg in (and up to max - 1 absent pages after it, read ahead
 * in one pager call): 0 once pg is resident, or its -errno. */
static int fetch(struct vmo_object *o, uint64_t pg, uint64_t max)
{
	for (;;) {
		uint8_t s = ps_get(o, pg);
		if (ps_resident(s))
			return 0;
		if (s == PS_ERROR)
			return page_error(o, pg);
		if (atomic_load(&o->dead))
			return -VMO_ESHUTDOWN;
		if (s != PS_ABSENT) {
			vmo__io_wait(o, pg);
			continue;
		}
		uint64_t k = claim(o, pg, max);
		if (!k)
			continue;
		int rc = read_claimed(o, pg, k);
		if (rc == 1)
			max = 1; /* again, the page alone */
		else if (rc)
			return rc;
	}
}

/* ---- vmo_memcpy ---------------------------------------------------------------- */

/* Write len bytes at off within page pg (resident, or absent and written
 * whole), under its stripe.  1 done, 0 not (the page must come in first),
 * -errno (an unlock refused). */
static int write_page(struct vmo_object *o, uint64_t pg, uint64_t off, const void *src, size_t len, bool may_skip_read)
{
	/* (not over a page whose first write the pager wants to hear of: it is
	 * read, write-locked, and unlocked below) */
	bool whole = len == o->page_size && may_skip_read && !o->pages.wlock;
	if (whole && ps_get(o, pg) == PS_ABSENT)
		vmo__budget_check(o, 1); /* room first (it evicts: not under a stripe) */
	if (o->pages.wlock && wlock_get(o, pg) && ps_get(o, pg) == PS_CLEAN) {
		/* libpager's write_lock: the first write asks unlock */
		if (!vmo__callback_begin(o))
			return -VMO_ESHUTDOWN;
		int rc = o->ops->unlock(o->ctx, pg << o->page_shift, o->page_size);
		vmo__callback_end(o);
		if (rc) {
			rc = rc > 0 ? -EIO : rc;
			vmo__set_error(o, pg, rc);
			return rc;
		}
		wlock_set(o, pg, 1, false);
		vmo__forget_errors(o, pg, pg + 1);
	}
	pthread_mutex_t *lk = vmo__wplock(o, pg);
	pthread_mutex_lock(lk);
	uint8_t s = ps_get(o, pg);
	int done = 0;
	if (s == PS_CLEAN && !(o->pages.wlock && wlock_get(o, pg))) {
		if (ps_cas(o, pg, PS_CLEAN, PS_DIRTY)) {
			atomic_fetch_add(&o->pages.dirty_pages, 1);
			done = 1;
		}
	} else if (s == PS_CLEANING) {
		done = ps_cas(o, pg, PS_CLEANING, PS_DIRTY); /* (still counted dirty) */
	} else if (s == PS_DIRTY) {
		done = 1;
	} else if (s == PS_ABSENT && whole && ps_cas(o, pg, PS_ABSENT, PS_FILLING)) {
		/* A whole page over nothing: no need to read what it replaces. */
		int rc = vmo__pwrite_full(o->memfd, src, len, off);
		if (rc) {
			ps_set(o, pg, PS_ABSENT);
		} else {
			vmo__account(o, pg, 1, PS_DIRTY);
			ps_set(o, pg, PS_DIRTY);
		}
		pthread_mutex_unlock(lk);
		vmo__wake_waiters(o, pg, 1);
		return rc ? rc : 1;
	}
	int rc = done ? vmo__pwrite_full(o->memfd, src, len, off) : 0;
	pthread_mutex_unlock(lk);
	return rc ? rc : done;
}

/* Read up to max bytes at off, from the page there on while the pages are
 * resident, within one chunk (one stripe, held: reclaim claims under it),
 * in one pread: the bytes read, 0 if the first page is not resident (bring
 * it in first), -errno. */
static ssize_t read_run(struct vmo_object *o, uint64_t off, void *dst, size_t max)
{
	uint64_t pg = off >> o->page_shift;
	uint64_t cend = ((pg >> o->pages.chunk_shift) + 1) << o->pages.chunk_shift;
	pthread_mutex_t *lk = vmo__wplock(o, pg);
	pthread_mutex_lock(lk);
	uint64_t k = 0;
	while (pg + k < cend && ps_resident(ps_get(o, pg + k)) && ((pg + k) << o->page_shift) < off + max)
		k++;
	size_t len = 0;
	ssize_t rc = 0;
	if (k) {
		uint64_t end = (pg + k) << o->page_shift;
		len = end - off < max ? (size_t)(end - off) : max;
		for (size_t got = 0; got < len;) {
			ssize_t r = pread(o->memfd, (char *)dst + got, len - got, (off_t)(off + got));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				rc = r < 0 ? -errno : -EIO;
				break;
			}
			got += (size_t)r;
		}
	}
	pthread_mutex_unlock(lk);
	if (k && !rc)
		atomic_store_explicit(&o->pages.chunk_ref[pg >> o->pages.chunk_shift], 1, memory_order_relaxed);
	return rc ? rc : (ssize_t)len;
}

static int io_args(struct vmo_object *obj, uint64_t off, size_t len, const void *buf, const char *call)
{
	uint64_t end;
	if (!obj || (!buf && len))
		return -EINVAL;
	if (obj->proxy)
		return vmo__not_on_client(call);
	uint64_t lo = atomic_load(&obj->lo), hi = atomic_load(&obj->hi);
	if (!vmo__add_ok(off, len, &end) || off < lo || end > hi) {
		vmo__set_detail("%s: [%#llx, +%#zx) is not within the object ([%#llx, %#llx))", call,
				(unsigned long long)off, len, (unsigned long long)lo, (unsigned long long)hi);
		return -EINVAL;
	}
	if (atomic_load(&obj->dead))
		return -VMO_ESHUTDOWN;
	return 0;
}

VMO_API int vmo_memcpy(struct vmo_object *obj, uint64_t off, void *buf, size_t len, unsigned flags, size_t *done)
{
	size_t dummy;
	if (!done)
		done = &dummy;
	*done = 0;
	if (flags & ~VMO_MEMCPY_TO_OBJECT)
		return -EINVAL;
	int rc = io_args(obj, off, len, buf, "vmo_memcpy");
	if (rc)
		return rc;
	bool to = flags & VMO_MEMCPY_TO_OBJECT;
	if (to) /* a write: the clones get each page as it was first (core.h) */
		pthread_rwlock_rdlock(&obj->cow_lock);
	while (*done < len) {
		uint64_t at = off + *done, pg = at >> obj->page_shift;
		uint64_t pend = (pg + 1) << obj->page_shift;
		if (at < atomic_load(&obj->lo) || at >= atomic_load(&obj->hi)) {
			/* (shrunk meanwhile, vmo_object_resize) */
			vmo__set_detail("vmo_memcpy: offset %#llx left the object's window", (unsigned long long)at);
			rc = -EINVAL;
			break;
		}
		size_t chunk = len - *done < pend - at ? len - *done : (size_t)(pend - at);
		char *b = (char *)buf + *done;
		bool cow = to && atomic_load(&obj->nclones);
		if (cow && !ps_resident(ps_get(obj, pg)))
			rc = 0; /* in memory first: a clone may need what it holds now */
		else if (to) {
			if (cow)
				obj->cow_push(obj, pg);
			rc = write_page(obj, pg, at, b, chunk, !cow);
		} else {
			ssize_t r = read_run(obj, at, b, len - *done);
			if (r > 0) {
				*done += (size_t)r;
				continue;
			}
			rc = (int)r;
		}
		if (rc < 0)
			break;
		if (rc == 1) {
			*done += chunk;
			continue;
		}
		/* Not in memory: bring it in, with what follows of the range
		 * (read ahead in one pager call, as a sequential fault would). */
		uint64_t last = (off + len - 1) >> obj->page_shift;
		uint64_t max = last - pg + 1 < obj->ra_max ? last - pg + 1 : obj->ra_max;
		if ((rc = fetch(obj, pg, max)))
			break;
	}
	if (to)
		pthread_rwlock_unlock(&obj->cow_lock);
	return rc < 0 ? rc : 0;
}

VMO_API ssize_t vmo_object_read(struct vmo_object *obj, uint64_t off, void *buf, size_t len)
{
	size_t done;
	int rc = vmo_memcpy(obj, off, buf, len, 0, &done);
	return done || !rc ? (ssize_t)done : rc;
}

VMO_API ssize_t vmo_object_write(struct vmo_object *obj, uint64_t off, const void *buf, size_t len)
{
	size_t done;
	int rc = vmo_memcpy(obj, off, (void *)buf, len, VMO_MEMCPY_TO_OBJECT, &done);
	return done || !rc ? (ssize_t)done : rc;
}

#define COPY_CHUNK (256u << 10)

VMO_API int vmo_object_copy(struct vmo_object *dst, uint64_t doff, struct vmo_object *src, uint64_t soff,
			    uint64_t len, size_t *done)
{
	size_t dummy;
	if (!done)
		done = &dummy;
	*done = 0;
	int rc = io_args(dst, doff, (size_t)len, "", "vmo_object_copy");
	if (!rc)
		rc = io_args(src, soff, (size_t)len, "", "vmo_object_copy");
	if (rc)
		return rc;
	if (dst == src && soff < doff + len && doff < soff + len) {
		vmo__set_detail("vmo_object_copy: the two ranges overlap");
		return -EINVAL;
	}
	char *b = malloc(len < COPY_CHUNK ? (size_t)len : COPY_CHUNK);
	if (!b && len)
		return -ENOMEM;
	while (*done < len) {
		size_t n = len - *done < COPY_CHUNK ? (size_t)(len - *done) : COPY_CHUNK, got = 0, put = 0;
		rc = vmo_memcpy(src, soff + *done, b, n, 0, &got);
		if (got) {
			int w = vmo_memcpy(dst, doff + *done, b, got, VMO_MEMCPY_TO_OBJECT, &put);
			if (w)
				rc = w;
		}
		*done += put;
		if (rc)
			break;
	}
	free(b);
	return rc;
}

VMO_API int vmo_object_transfer(struct vmo_object *dst, uint64_t doff, struct vmo_object *src, uint64_t soff,
				uint64_t len)
{
	if (!src || !dst)
		return -EINVAL;
	if ((soff | doff | len) & (src->page_size - 1) || (doff | len) & (dst->page_size - 1)) {
		vmo__set_detail("vmo_object_transfer: offsets and length must be multiples of both page sizes");
		return -EINVAL;
	}
	/* Page-cache pages cannot change files (no kernel call moves a shmem
	 * page from one file to another; splice copies into shmem): the data
	 * is copied, then the source range discarded, not written back: what
	 * was dirty there belongs to the destination now. */
	size_t done;
	int rc = vmo_object_copy(dst, doff, src, soff, len, &done);
	if (rc)
		return rc;
	return vmo_discard_range(src, soff, len, VMO_WAIT);
}

/* Whole pages [pg0, pg1) within o's window? (-EINVAL with a detail) */
static int in_window_pages(struct vmo_object *o, uint64_t pg0, uint64_t pg1, const char *call)
{
	if ((pg0 << o->page_shift) < atomic_load(&o->lo) || (pg1 << o->page_shift) > atomic_load(&o->hi)) {
		vmo__set_detail("%s: the range is not within the object's window (vmo_object_resize)", call);
		return -EINVAL;
	}
	return 0;
}

/* ---- errors by range ------------------------------------------------------------ */

VMO_API int vmo_object_fail(struct vmo_object *obj, uint64_t off, uint64_t len, int err)
{
	uint64_t pg0, pg1;
	if (obj && obj->proxy)
		return vmo__not_on_client("vmo_object_fail");
	if (vmo__range_pages(obj, off, len, &pg0, &pg1) || err >= 0 || err < -4095) {
		vmo__set_detail("vmo_object_fail: a range of whole pages within the object, and a negative errno");
		return -EINVAL;
	}
	if (in_window_pages(obj, pg0, pg1, "vmo_object_fail"))
		return -EINVAL;
	/* A page being written back (CLEANING) is waited for like one in
	 * transit: punched under the writeback, its store would get zeros.
	 * (Not wb_mu around it all: a thread filling a page we wait for may
	 * need it, through reclaim's writeback.) */
	for (uint64_t pg = pg0; pg < pg1;) {
		pthread_mutex_t *lk = vmo__wplock(obj, pg);
		pthread_mutex_lock(lk);
		uint8_t s = ps_get(obj, pg);
		bool next = false;
		if (s == PS_ABSENT || s == PS_ERROR) {
			if (ps_cas(obj, pg, s, PS_ERROR)) {
				vmo__set_error(obj, pg, err);
				next = true;
			}
		} else if (s == PS_PENDING) {
			if (ps_cas(obj, pg, PS_PENDING, PS_ERROR)) { /* (a later supply finds it not pending) */
				vmo__set_error(obj, pg, err);
				next = true;
			}
		} else if ((s == PS_CLEAN || s == PS_DIRTY) && ps_cas(obj, pg, s, PS_EVICTING)) {
			/* Its data goes (dirty or not): out of the memfd, which
			 * unmaps it from every view; then failed.  (Claimed,
			 * EVICTING, so the stripe need not be held over the drop
			 * and the pager's notify_evict.) */
			pthread_mutex_unlock(lk);
			vmo__pages_drop(obj, pg, 1, s == PS_CLEAN ? 0 : 1);
			pthread_mutex_lock(lk);
			if (ps_cas(obj, pg, PS_ABSENT, PS_ERROR)) {
				vmo__set_error(obj, pg, err);
				next = true;
			}
		}
		pthread_mutex_unlock(lk);
		if (next) {
			vmo__wake_waiters(obj, pg, 1); /* they fault again: SIGBUS */
			pg++;
		} else {
			vmo__io_wait(obj, pg); /* in transit or being written back: once it settles, again */
		}
	}
	return 0; /* (vmo__set_error counted them) */
}

/* ---- pinning -------------------------------------------------------------------------- */

/* Would pinning n more pages of o pass a budget?  (Pinned pages cannot be
 * evicted: past the budget, nothing else could be resident.) */
static int pin_room(struct vmo_object *o, uint64_t n)
{
	uint64_t ohi = atomic_load(&o->budget_hi);
	uint64_t mine = (uint64_t)atomic_load(&o->pages.pinned_pages) + n;
	if (ohi && mine > ohi) {
		vmo__set_detail("vmo_object_pin: %llu pinned pages would pass the object's budget of %llu pages",
				(unsigned long long)mine, (unsigned long long)ohi);
		return -ENOMEM;
	}
	uint64_t ehi = atomic_load(&o->eng->budget_hi);
	if (ehi) {
		uint64_t bytes = n << o->page_shift;
		pthread_mutex_lock(&o->eng->objs_mu);
		for (struct vmo_object *x = o->eng->objs; x; x = x->next)
			bytes += (uint64_t)atomic_load(&x->pages.pinned_pages) << x->page_shift;
		pthread_mutex_unlock(&o->eng->objs_mu);
		if (bytes > ehi) {
			vmo__set_detail("vmo_object_pin: %llu bytes pinned would pass the engine's budget of %llu",
					(unsigned long long)bytes, (unsigned long long)ehi);
			return -ENOMEM;
		}
	}
	return 0;
}

static int pins_alloc(struct vmo_object *o)
{
	pthread_mutex_lock(&o->mu);
	if (!o->pages.pins) {
		size_t len = vmo__align_up(o->npages, VMO_PAGE);
		void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p != MAP_FAILED) {
			o->pages.pins_len = len;
			o->pages.pins = p;
		}
	}
	pthread_mutex_unlock(&o->mu);
	return o->pages.pins ? 0 : -ENOMEM;
}

VMO_API int vmo_object_pin(struct vmo_object *obj, uint64_t off, uint64_t len)
{
	uint64_t pg0, pg1;
	if (obj && obj->proxy)
		return vmo__not_on_client("vmo_object_pin");
	if (vmo__range_pages(obj, off, len, &pg0, &pg1) || in_window_pages(obj, pg0, pg1, "vmo_object_pin"))
		return -EINVAL;
	if (atomic_load(&obj->dead))
		return -VMO_ESHUTDOWN;
	int rc = pins_alloc(obj);
	if (rc)
		return rc;
	uint64_t newly = 0;
	for (uint64_t pg = pg0; pg < pg1; pg++)
		newly += !vmo__pinned(obj, pg);
	if ((rc = pin_room(obj, newly)))
		return rc;
	for (uint64_t pg = pg0; pg < pg1;) {
		pthread_mutex_t *lk = vmo__wplock(obj, pg);
		pthread_mutex_lock(lk);
		uint8_t c = atomic_load(&obj->pages.pins[pg]);
		bool done = false;
		if (c == 255) {
			pthread_mutex_unlock(lk);
			vmo__set_detail("vmo_object_pin: page %#llx is pinned 255 times", (unsigned long long)pg);
			return -EOVERFLOW;
		}
		if (ps_resident(ps_get(obj, pg))) { /* under the stripe: reclaim cannot take it now */
			atomic_store(&obj->pages.pins[pg], (uint8_t)(c + 1));
			if (!c)
				atomic_fetch_add(&obj->pages.pinned_pages, 1);
			done = true;
		}
		pthread_mutex_unlock(lk);
		if (done) {
			pg++;
			continue;
		}
		uint64_t max = pg1 - pg < obj->ra_max ? pg1 - pg : obj->ra_max;
		if ((rc = fetch(obj, pg, max)))
			return rc;
	}
	return 0;
}

VMO_API int vmo_object_unpin(struct vmo_object *obj, uint64_t off, uint64_t len)
{
	uint64_t pg0, pg1;
	if (obj && obj->proxy)
		return vmo__not_on_client("vmo_object_unpin");
	if (vmo__range_pages(obj, off, len, &pg0, &pg1))
		return -EINVAL;
	for (uint64_t pg = pg0; pg < pg1; pg++)
		if (!vmo__pinned(obj, pg)) {
			vmo__set_detail("vmo_object_unpin: page %#llx is not pinned", (unsigned long long)pg);
			return -EINVAL;
		}
	for (uint64_t pg = pg0; pg < pg1; pg++) {
		pthread_mutex_t *lk = vmo__wplock(obj, pg);
		pthread_mutex_lock(lk);
		if (atomic_fetch_sub(&obj->pages.pins[pg], 1) == 1)
			atomic_fetch_sub(&obj->pages.pinned_pages, 1);
		pthread_mutex_unlock(lk);
	}
	return 0;
}

/* ---- offer and prefetch ------------------------------------------------------------ */

VMO_API int vmo_object_offer(struct vmo_object *obj, uint64_t off, size_t len, const void *buf, unsigned flags)
{
	uint64_t pg0, pg1;
	if (obj && obj->proxy)
		return vmo__not_on_client("vmo_object_offer");
	if (!buf || (flags & ~(VMO_OFFER_PRECIOUS | VMO_READ_WRITELOCK)) ||
	    vmo__range_pages(obj, off, len, &pg0, &pg1)) {
		vmo__set_detail("vmo_object_offer: whole pages within the object, a buffer, known flags");
		return -EINVAL;
	}
	if (in_window_pages(obj, pg0, pg1, "vmo_object_offer"))
		return -EINVAL;
	if (atomic_load(&obj->dead))
		return -VMO_ESHUTDOWN;
	int rc = 0;
	for (uint64_t pg = pg0; pg < pg1;) {
		uint8_t s = ps_get(obj, pg);
		if (s == PS_ERROR) {
			/* Supplied again: the error goes (with the poison any view
			 * holds), then the page is absent and taken below. */
			vmo_clear_error(obj, pg << obj->page_shift);
			continue;
		}
		if (s == PS_EVICTING) {
			/* Being dropped, or an absent page reclaim claimed so that
			 * one punch covers its run (evict.c): absent once settled. */
			vmo__io_wait(obj, pg);
			continue;
		}
		uint64_t k = 0;
		while (pg + k < pg1 && ps_cas(obj, pg + k, PS_ABSENT, PS_FILLING))
			k++;
		if (!k) { /* present (or on its way): the offer is ignored there */
			pg++;
			continue;
		}
		const char *b = (const char *)buf + ((pg - pg0) << obj->page_shift);
		int r = vmo__install(obj, pg, k, b, flags & VMO_READ_WRITELOCK, flags & VMO_OFFER_PRECIOUS);
		if (r && !rc)
			rc = r;
		pg += k;
	}
	return rc;
}

/* Map prefetched pages into the views that show them, so that touching
 * them is no fault at all (a MINOR fault per page otherwise).  Not under the
 * pages' stripes (the views' space locks are held here, and the fault path
 * takes a stripe before a space lock): a page evicted meanwhile is simply
 * not mapped (CONTINUE finds nothing: -EFAULT), and a tracked view maps it
 * write-protected whatever its state, so that a write is always seen (an
 * extra write fault on a page already dirty).  Without CONTINUE_MODE_WP,
 * and with asynchronous tracking, tracked views are left to their faults. */
static void map_prefetched(struct vmo_object *o, uint64_t pg, uint64_t n);

/* Claim and read the absent pages of [pg0, pg1) a run at a time, and map
 * them into the views. */
static void prefetch_range(struct vmo_object *o, uint64_t pg0, uint64_t pg1)
{
	for (uint64_t pg = pg0; pg < pg1 && !atomic_load(&o->dead);) {
		uint64_t k = claim(o, pg, pg1 - pg < o->ra_max ? pg1 - pg : o->ra_max);
		if (!k) {
			pg++;
			continue;
		}
		int rc = read_claimed(o, pg, k);
		if (rc == 1) { /* page by page: only a page that fails is failed */
			for (uint64_t j = 0; j < k; j++)
				if (claim(o, pg + j, 1))
					read_claimed(o, pg + j, 1);
		} else if (rc) {
			vmo__debug("prefetch of %#llx: %s", (unsigned long long)(pg << o->page_shift), vmo_strerror(rc));
		}
		map_prefetched(o, pg, k);
		pg += k;
	}
}

static int map_run(struct vmo_map *m, uintptr_t addr, size_t len, void *arg)
{
	struct vmo_object *o = arg;
	struct vmo__space *sp = m->space;
	/* (a writable view that tracks nothing: its fault marks the page dirty
	 * before mapping it writable; mapped here, a write would leave a page
	 * marked clean that reclaim drops) */
	if (!(sp->features & VMO_FEAT_MINOR) || o->eng->async ||
	    (m->wp && !(sp->features & VMO_FEAT_CONTINUE_WP)) || (!m->wp && (m->flags & VMO_PROT_WRITE)))
		return 0;
	for (size_t at = 0; at < len;) {
		uint64_t pg = (addr + at - m->addr + m->off) >> o->page_shift;
		size_t run = 0;
		while (at + run < len && ps_resident(ps_get(o, pg + (run >> o->page_shift))))
			run += o->page_size;
		if (!run) {
			at += o->page_size;
			continue;
		}
		size_t done = 0;
		int rc = sp->ops->cont(sp, (void *)(addr + at), run, m->wp, false, &done);
		if (rc == -EEXIST) /* (one of them mapped already: the rest, page by page) */
			for (size_t k = done + o->page_size; k < run; k += o->page_size)
				sp->ops->cont(sp, (void *)(addr + at + k), o->page_size, m->wp, false, NULL);
		at += run;
	}
	return 0;
}

static void map_prefetched(struct vmo_object *o, uint64_t pg, uint64_t n)
{
	vmo__views_each(o, pg << o->page_shift, (pg + n) << o->page_shift, false, map_run, o);
}

/* Read the prefetched ranges queued for o (the evictor thread, out of
 * evict_mu).  The pages are claimed here, not when queued: a claim held by
 * a queue would make whoever needs the page wait for this thread, which
 * may itself be waiting for that page (a clone's read of its source,
 * queued behind).  A fault that comes first reads its page itself; the
 * prefetch then finds it taken: the pager is never asked twice. */
void vmo__run_prefetch(struct vmo_object *o)
{
	struct vmo__pfop q[VMO_ARRAY_SIZE(o->pfq)];
	pthread_mutex_lock(&o->mu);
	int n = o->npf;
	memcpy(q, o->pfq, (size_t)n * sizeof *q);
	o->npf = 0;
	pthread_mutex_unlock(&o->mu);
	for (int i = 0; i < n; i++)
		prefetch_range(o, q[i].pg0, q[i].pg1);
}

VMO_API int vmo_object_prefetch(struct vmo_object *obj, uint64_t off, uint64_t len, unsigned flags)
{
	uint64_t pg0, pg1;
	if (obj && obj->proxy)
		return vmo__not_on_client("vmo_object_prefetch");
	if ((flags & ~VMO_WAIT) || vmo__range_pages(obj, off, len, &pg0, &pg1) ||
	    in_window_pages(obj, pg0, pg1, "vmo_object_prefetch"))
		return -EINVAL;
	if (atomic_load(&obj->dead))
		return -VMO_ESHUTDOWN;
	if (flags & VMO_WAIT) {
		for (uint64_t pg = pg0; pg < pg1; pg++) {
			uint64_t max = pg1 - pg < obj->ra_max ? pg1 - pg : obj->ra_max;
			int rc = fetch(obj, pg, max);
			if (rc)
				return rc;
		}
		map_prefetched(obj, pg0, pg1 - pg0);
		return 0;
	}
	/* Queued for the evictor thread, which claims and reads (above); a
	 * full queue: read here. */
	pthread_mutex_lock(&obj->mu);
	bool queued = obj->npf < (int)VMO_ARRAY_SIZE(obj->pfq);
	if (queued) {
		obj->pfq[obj->npf++] = (struct vmo__pfop){ pg0, pg1 };
		atomic_store(&obj->bg, 1);
	}
	pthread_mutex_unlock(&obj->mu);
	if (!queued)
		prefetch_range(obj, pg0, pg1);
	if (queued)
		vmo__evictor_kick(obj->eng);
	return 0;
}
