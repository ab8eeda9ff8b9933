/* SPDX-License-Identifier: MIT */
/* fault.c - fault service: what a worker does with one userfaultfd message.
 *
 * MISSING (page not in the object's memfd) -> ask the pager, UFFDIO_COPY
 *   into the faulting view, with a cluster of following pages when access
 *   looks sequential (read-ahead).
 * MINOR (page in the memfd, not mapped in this view) -> UFFDIO_CONTINUE,
 *   write-protected while the page is clean.
 * WP (first write to a clean page) -> the pager's unlock callback, then the
 *   page is dirty and writable.
 * A page another worker is filling or evicting parks the fault on a waiter
 * list; the other worker wakes it when done and it faults again.  A failed
 * pager read poisons the page in the faulting view (SIGBUS), never a zero
 * page. */
#include "core.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static VMO__TLS void *wbuf;
static VMO__TLS size_t wbuf_cap;
static VMO__TLS bool wbuf_keyed;

/* A program's thread that serves its own faults (selfserve.c) gets a
 * buffer too: freed when the thread exits, by this key's destructor. */
static pthread_key_t wbuf_key;
static pthread_once_t wbuf_key_once = PTHREAD_ONCE_INIT;
static _Atomic bool wbuf_key_ok;

static void wbuf_key_dtor(void *arg)
{
	(void)arg;
	vmo__worker_buf_free();
}

static void wbuf_key_make(void)
{
	if (pthread_key_create(&wbuf_key, wbuf_key_dtor) == 0)
		atomic_store(&wbuf_key_ok, true);
}

void vmo__worker_buf_key_init(void)
{
	pthread_once(&wbuf_key_once, wbuf_key_make);
}

static void *worker_buf(size_t need)
{
	if (need <= wbuf_cap)
		return wbuf;
	if (!wbuf_keyed && !vmo__on_vmo_thread && atomic_load(&wbuf_key_ok)) {
		pthread_setspecific(wbuf_key, (void *)1);
		wbuf_keyed = true;
	}
	size_t cap = vmo__align_up(need, 64 * 1024);
	void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (wbuf)
		munmap(wbuf, wbuf_cap);
	wbuf = p;
	wbuf_cap = cap;
	return p;
}

/* Workers take their buffer when they start (the largest cluster: 4 MiB of
 * address space, pages allocated on first use), so that serving a fault
 * never needs a new mapping: at vm.max_map_count it could not get one. */
void vmo__worker_buf_init(void)
{
	(void)worker_buf(4u << 20);
}

void vmo__worker_buf_free(void)
{
	if (wbuf)
		munmap(wbuf, wbuf_cap);
	wbuf = NULL;
	wbuf_cap = 0;
}

static void unclaim(struct vmo_object *o, uint64_t pg, uint64_t n);

struct fault {
	struct vmo_engine *eng;
	struct vmo__space *sp; /* the view's space: every kernel operation */
	struct vmo_map *m;
	struct vmo_object *obj;
	uint64_t pg;     /* object page index */
	uintptr_t paddr; /* that page's address in the faulting view */
	pid_t tid;
	bool write;      /* the access was a write (UFFD_PAGEFAULT_FLAG_WRITE) */
};

/* Supply ioctls act on the view's addresses under space_lock held for
 * reading, after checking that the view is still there: the program cannot
 * have unmapped it (and something else been mapped there since) without
 * the event being applied first (core.h).  Never nested. */
static bool view_enter(struct fault *f)
{
	return vmo__space_enter(f->sp, f->m);
}

/* Filling through the memfd: the pages are written into the memfd (over
 * whatever is there: a page marked absent holds nothing of the object's),
 * then mapped into the view with UFFDIO_CONTINUE (write-protected if wp)
 * and the thread woken.  Once in the memfd they are supplied, whatever the
 * mapping says: a thread that was not woken faults again and meets them
 * (MINOR).  Two uses:
 *   - a private view (VMO__VIEW_PRIVATE): UFFDIO_COPY would give the
 *     process a private copy, not the object's page (read-only: no wp);
 *   - whole aligned blocks of large folios (o->fold): a pwrite lets shmem
 *     allocate one large folio for a block, where UFFDIO_COPY allocates
 *     4 KiB ones.  Only whole blocks this fill claimed: shmem gives a write
 *     a folio only where the aligned block holds no page yet, and fills the
 *     rest of it with zeros, so a block with pages we do not own would get
 *     zero pages in the object (docs/design.md). */
static int fill_write(struct fault *f, size_t off, const void *src, size_t len, bool wp, size_t *done)
{
	struct vmo_object *o = f->obj;
	int rc = vmo__pwrite_full(o->memfd, src, len, (f->pg << o->page_shift) + off);
	if (rc < 0)
		return rc;
	if (f->sp->ops->cont(f->sp, (void *)(f->paddr + off), len, wp, true, NULL) < 0)
		f->sp->ops->wake(f->sp, (void *)(f->paddr + off), len);
	*done = len;
	return 0;
}

/* The part of pages [i, n) of a fill (pages f->pg + i ..) that goes by
 * fill_write: [*a, *b), empty if none. */
static void write_span(struct fault *f, uint64_t i, uint64_t n, bool wp, uint64_t *a, uint64_t *b)
{
	struct vmo_object *o = f->obj;
	*a = *b = i;
	if (f->m->flags & VMO__VIEW_PRIVATE) {
		*b = n;
		return;
	}
	uint64_t F = o->fold;
	if (!F || !(f->sp->features & VMO_FEAT_MINOR) || (wp && !(f->sp->features & VMO_FEAT_CONTINUE_WP)))
		return;
	uint64_t s = (f->pg + i + F - 1) / F * F, e = (f->pg + n) / F * F;
	if (e > s) {
		*a = s - f->pg;
		*b = e - f->pg;
	}
}

static void view_exit(struct fault *f)
{
	vmo__space_exit(f->sp);
}

/* Without poison, every fault message of a failed page is answered with a
 * queued SIGBUS.  A thread woken before its message was served (a wake of
 * the range, for another page) faults again, and its one access becomes two
 * messages: the second SIGBUS would land later, anywhere.  So a thread and
 * page signalled in the last 5 ms are only woken: if the thread really
 * touches the page again, it faults again and is signalled after that (a
 * retry within 5 ms waits that long: test_torture's touches after shutdown
 * retry at once, and 20 ms made them too slow).  A duplicate served later
 * than that still gets its SIGBUS: without poison there is no telling which
 * access a message belongs to (docs/api.md says so). */
#define RECENT 64
static struct {
	pthread_mutex_t mu;
	struct { pid_t tid; uintptr_t addr; uint64_t ns; } e[RECENT];
	unsigned next;
} recent = { .mu = PTHREAD_MUTEX_INITIALIZER };

static bool recently_signalled(pid_t tid, uintptr_t addr)
{
	uint64_t now = vmo__now_ns();
	bool hit = false;
	pthread_mutex_lock(&recent.mu);
	for (unsigned i = 0; i < RECENT; i++)
		if (recent.e[i].tid == tid && recent.e[i].addr == addr && now - recent.e[i].ns < 5000000ull) {
			hit = true;
			break;
		}
	if (!hit) {
		recent.e[recent.next % RECENT].tid = tid;
		recent.e[recent.next % RECENT].addr = addr;
		recent.e[recent.next % RECENT].ns = now;
		recent.next++;
	}
	pthread_mutex_unlock(&recent.mu);
	return hit;
}

/* The faulting thread gets SIGBUS at paddr, whatever the view's page table
 * holds there.  Only for a page that is not in the memfd (failed, or the
 * object shut down), so the view has no page there: its PTE is empty, or a
 * write-protect marker, or poison.
 *
 * Preferred: a poison marker, the kernel's own SIGBUS on this and every
 * later access.  A write-protect marker (the kernel leaves one in a
 * WP-registered view where a write-protected page was punched or zapped)
 * makes UFFDIO_POISON answer EEXIST: unprotecting clears such a marker (there
 * is no page under it to expose), then the poison goes in.  EEXIST after
 * that (or in a view without WP) is poison already there: another fault of
 * the same page put it in and the kernel's SIGBUS is on its way; the thread
 * is only woken (a SIGBUS of ours on top would be a second, stale one).
 * Where poison cannot be had (no UFFDIO_POISON before 6.6) the thread gets a
 * SIGBUS queued to it, then is woken: never left waiting. */
static void fail_page(struct fault *f)
{
	struct vmo_object *o = f->obj;
	struct vmo__space *sp = f->sp;
	size_t len = o->page_size;
	/* Under the page's stripe, the page still failed (vmo_clear_error
	 * re-arms it under the stripe): the unprotect below must never meet a
	 * page refilled meanwhile, which would be left writable while clean. */
	pthread_mutex_t *lk = vmo__wplock(o, f->pg);
	pthread_mutex_lock(lk);
	uint8_t s = ps_get(o, f->pg);
	if (!(s == PS_ERROR || (s == PS_ABSENT && atomic_load(&o->dead))) || !view_enter(f)) {
		pthread_mutex_unlock(lk);
		sp->ops->wake(sp, (void *)f->paddr, len); /* refilled, or the view went: fault again */
		return;
	}
	int rc = sp->ops->poison(sp, (void *)f->paddr, len);
	if (rc == -EEXIST && f->m->wp) {
		sp->ops->protect(sp, (void *)f->paddr, len, false, false);
		rc = sp->ops->poison(sp, (void *)f->paddr, len);
	}
	view_exit(f);
	pthread_mutex_unlock(lk);
	if (rc == 0)
		return;
	if (rc == -EEXIST) {
		sp->ops->wake(sp, (void *)f->paddr, len);
		return;
	}
	/* (in SIGBUS mode each access is its own fault: no duplicates) */
	if (!sp->sigbus_mode && recently_signalled(f->tid, f->paddr)) {
		/* A second message for one access (the thread was woken early and
		 * faulted again before the first was served): it has its SIGBUS. */
		sp->ops->wake(sp, (void *)f->paddr, len);
		return;
	}
	vmo__space_sigbus(f->sp, f->tid, f->paddr, len);
}

/* A failure of vmo's own resources (no buffer, the kernel short of memory
 * for the copy) is not the pager's error: nothing is recorded, the pages go
 * back to ABSENT, and only this fault fails (a queued SIGBUS; touched again,
 * the page is fetched again). */
static void fail_transient(struct fault *f, uint64_t pg, uint64_t n, int err)
{
	vmo__warn("page %#llx: %s; this fault fails, the page is not marked failed",
		  (unsigned long long)(f->pg << f->obj->page_shift), strerror(-err));
	unclaim(f->obj, pg, n);
	vmo__space_sigbus(f->sp, f->tid, f->paddr, f->obj->page_size);
}

/* Retry a transient failure a few times, a little longer each time (about
 * 60 ms in all) before giving up on the fault. */
#define TRANSIENT_TRIES 6
static void transient_wait(int attempt)
{
	usleep(1000u << attempt);
}

/* How many pages to serve for a missing fault at f->pg (which is FILLING);
 * claims the read-ahead pages (ABSENT -> FILLING). */
static uint64_t claim_cluster(struct fault *f)
{
	struct vmo_object *o = f->obj;
	struct vmo_map *m = f->m;
	if (o->ra_max <= 1)
		return 1;
	uint64_t next = atomic_load_explicit(&m->ra_next, memory_order_relaxed);
	uint32_t win = atomic_load_explicit(&m->ra_window, memory_order_relaxed);
	/* Sequential if the fault lands within a window of where a sequential
	 * access would fault next: copies (glibc memcpy) and several threads
	 * scanning together touch pages a little out of order. */
	uint32_t slack = win < 4 ? 4 : win;
	if (f->pg + slack >= next && f->pg <= next + slack)
		win = win < 4 ? 4 : win * 2;
	else
		win = 1;
	/* Never more than the object's limit, nor than a quarter of a budget:
	 * read-ahead must not push out what it reads ahead of. */
	uint64_t cap = o->ra_max, b = atomic_load_explicit(&o->budget_hi, memory_order_relaxed);
	if (b && b / 4 < cap)
		cap = b / 4;
	b = vmo__engine_cap(o->eng) >> o->page_shift;
	if (b && b / 4 < cap)
		cap = b / 4;
	if (win > cap)
		win = cap ? (uint32_t)cap : 1;
	uint64_t end_pg = (m->off + m->len) >> o->page_shift;
	/* Filling in large folios: end the cluster at a block boundary when
	 * one lies inside it, so that the next one starts on one and covers
	 * whole blocks (fill_write). */
	uint64_t F = o->fold;
	if (F > 1 && win > 1) {
		uint64_t e = (f->pg + win) / F * F;
		if (e > f->pg)
			end_pg = e < end_pg ? e : end_pg;
	}
	uint64_t n = 1;
	while (n < win && f->pg + n < end_pg && ps_cas(o, f->pg + n, PS_ABSENT, PS_FILLING))
		n++;
	if (f->pg + n > next || win == 1)
		atomic_store_explicit(&m->ra_next, f->pg + n, memory_order_relaxed);
	atomic_store_explicit(&m->ra_window, win, memory_order_relaxed);
	return n;
}

static void unclaim(struct vmo_object *o, uint64_t pg, uint64_t n)
{
	/* A claimed page may have been counted dirty meanwhile (a view that
	 * knew it written went: FILLING -> DIRTY): uncount it. */
	for (uint64_t i = 0; i < n; i++)
		if (atomic_exchange(&o->pages.state[pg + i], PS_ABSENT) == PS_DIRTY)
			atomic_fetch_sub(&o->pages.dirty_pages, 1);
	vmo__wake_waiters(o, pg, n);
}

/* Pages of a read that are not ours after all (supplied, or failed, by the
 * pager meanwhile): those still PENDING go back to ABSENT. */
static void unclaim_pending(struct vmo_object *o, uint64_t pg, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (ps_cas(o, pg + i, PS_PENDING, PS_ABSENT))
			vmo__wake_waiters(o, pg + i, 1);
}

static void fill(struct fault *f)
{
	struct vmo_object *o = f->obj;
	uint64_t n = claim_cluster(f);
	size_t len;
	void *buf;
	unsigned rflags;
	int rc;

	for (int attempt = 0;;) {
		len = (size_t)n << o->page_shift;
		buf = worker_buf(len);
		if (!buf) {
			if (attempt < TRANSIENT_TRIES) {
				transient_wait(attempt++);
				continue;
			}
			fail_transient(f, f->pg, n, -ENOMEM);
			return;
		}
		if (!vmo__callback_begin(o)) {
			unclaim(o, f->pg, n);
			fail_page(f);
			return;
		}
		rflags = 0;
		/* PENDING during the read: the pager may hand the range to
		 * another thread, which may supply it before read returns. */
		for (uint64_t i = 0; i < n; i++)
			ps_set(o, f->pg + i, PS_PENDING);
		rc = o->ops->read(o->ctx, f->pg << o->page_shift, buf, len, &rflags);
		bool later = rc == -EINPROGRESS && (f->sp->features & VMO_FEAT_MINOR);
		/* Recorded before the callback counts as done: a shutdown waits
		 * for it, then gives up every recorded range. */
		if (later)
			vmo__pending_add(o, f->pg, n);
		vmo__callback_end(o);
		if (rc > 0)
			rc = -EIO; /* a read callback returns 0 or -errno */
		atomic_fetch_add(&o->st.pages_read, n);
		if (later) {
			/* Answered later (vmo_object_supply): the thread waits for
			 * the page like any fault on a page being filled; the
			 * supply wakes it, and its next fault maps the page. */
			atomic_fetch_add(&o->st.readahead, n - 1);
			if (!f->sp->sigbus_mode && !vmo__add_waiter(o, f->pg, f->sp, f->paddr))
				f->sp->ops->wake(f->sp, (void *)f->paddr, o->page_size);
			return;
		}
		if (rc == -EINPROGRESS) {
			/* A supply lands in the memfd, and only a MINOR fault maps
			 * it into a view that trapped the first touch. */
			vmo__warn("pager read answered -EINPROGRESS, but supplying later needs MINOR faults "
				  "(VMO_FEAT_MINOR, Linux 5.13); the page is marked failed");
			rc = -EOPNOTSUPP;
		}
		/* Ours again to install (or fail); a page the pager supplied
		 * meanwhile (it answered and supplied both) is left alone. */
		uint64_t k = 0;
		while (k < n && ps_cas(o, f->pg + k, PS_PENDING, PS_FILLING))
			k++;
		if (k < n) {
			unclaim_pending(o, f->pg + k, n - k);
			if (k == 0) {
				f->sp->ops->wake(f->sp, (void *)f->paddr, o->page_size);
				return;
			}
			n = k;
			len = (size_t)n << o->page_shift;
		}
		if (rc == 0 || n == 1)
			break;
		/* A cluster failed: give back the read-ahead pages and ask for the
		 * faulting page alone, so that only a page that really fails is
		 * marked failed. */
		unclaim(o, f->pg + 1, n - 1);
		n = 1;
	}
	if (rc) {
		vmo__debug("pager read at %#llx failed: %s", (unsigned long long)(f->pg << o->page_shift),
			   strerror(-rc));
		vmo__set_error(o, f->pg, rc);
		ps_set(o, f->pg, PS_ERROR);
		vmo__wake_waiters(o, f->pg, 1);
		fail_page(f);
		return;
	}
	atomic_fetch_add(&o->st.readahead, n - 1);
	/* Make room first if the budget needs it: resident memory never passes
	 * the budget by more than what workers are supplying right now. */
	vmo__budget_check(o, n);

	if (o->pages.wlock) /* libpager's write_lock: the first write asks unlock */
		wlock_set(o, f->pg, n, rflags & VMO_READ_WRITELOCK);
	bool wp = f->m->wp;
	uint8_t st = vmo__supplied_state(o, f->m);
	/* A write that found the page absent: the faulting page is supplied
	 * writable and dirty at once, instead of write-protected and trapped
	 * again by the same write a moment later (two faults and two round
	 * trips for every page a program writes first: a heap, a buffer).
	 * Not where the pager must hear of first writes (unlock, write lock),
	 * nor for an object with clones (the write must push the page to them
	 * first); under cow_lock, so no clone is made between this look and
	 * the copy (a clone's sync then finds the page dirty and protects
	 * it).  Not with large folios (a fill of whole blocks through the
	 * memfd), into a private view, or with asynchronous dirty tracking
	 * (first writes take no trap there anyway). */
	bool dirty0 = f->write && wp && st == PS_CLEAN && (f->m->flags & VMO_PROT_WRITE) && !o->pages.wlock &&
		      o->fold <= 1 && !(f->m->flags & VMO__VIEW_PRIVATE) && !o->eng->async;
	if (dirty0) {
		pthread_rwlock_rdlock(&o->cow_lock);
		if (atomic_load(&o->nclones)) {
			pthread_rwlock_unlock(&o->cow_lock);
			dirty0 = false;
		}
	}
	/* Count the pages before they are mapped (the faulting thread runs as
	 * soon as they are), and take back those that could not be. */
	if (dirty0) {
		vmo__account(o, f->pg, 1, PS_DIRTY);
		if (n > 1)
			vmo__account(o, f->pg + 1, (long)n - 1, st);
	} else {
		vmo__account(o, f->pg, (long)n, st);
	}
	uint64_t i = 0, span = n; /* span: most pages one ioctl may take (halved at a VMA boundary) */
	int attempt = 0;
	bool in = view_enter(f), failed = false;
	uint64_t wa, wb;
	write_span(f, 0, n, wp, &wa, &wb);
	if (wb > wa && !(f->m->flags & VMO__VIEW_PRIVATE))
		atomic_fetch_add_explicit(&o->st.large_fill, wb - wa, memory_order_relaxed);
	while (i < n) {
		size_t done = 0;
		size_t off = (size_t)i << o->page_shift;
		/* [i, seg): by UFFDIO_COPY before and after the span written */
		uint64_t seg = i < wa ? wa : i < wb ? wb : n;
		if (seg - i > span)
			seg = i + span;
		bool w = wp;
		if (dirty0 && i == 0) { /* the faulting page alone, writable */
			seg = 1;
			w = false;
		}
		size_t slen = (size_t)(seg - i) << o->page_shift;
		if (!in)
			rc = -ENOENT;
		else if (i >= wa && i < wb)
			rc = fill_write(f, off, (char *)buf + off, slen, (f->m->flags & VMO__VIEW_PRIVATE) ? false : w,
					&done);
		else
			rc = f->sp->ops->copy(f->sp, (void *)(f->paddr + off), (char *)buf + off, slen, w,
					      !(dirty0 && i == 0), &done);
		uint64_t k = done >> o->page_shift;
		/* A CAS: async dirty collection may already have found the page
		 * written (FILLING -> DIRTY) since the copy woke the writer. */
		for (uint64_t j = i; j < i + k; j++)
			ps_cas(o, f->pg + j, PS_FILLING, dirty0 && j == 0 ? PS_DIRTY : st);
		if (dirty0 && i == 0 && k) {
			/* Mapped writable without waking the writer: it runs only
			 * now that the page is DIRTY.  (Woken while FILLING, its
			 * write could land before a vmo_discard that then skipped
			 * the page as still being filled, and survive it.) */
			f->sp->ops->wake(f->sp, (void *)f->paddr, o->page_size);
		}
		i += k;
		if (rc == 0) {
			span = n;
			continue;
		}
		if (rc == -EEXIST) {
			/* In the memfd although marked absent: nothing of vmo's put
			 * it there.  A process touched the memfd outside a
			 * registered view (a client that unregistered its own
			 * range, say), and the kernel filled the hole with zeros:
			 * data invented.  The pager's data wins: written over it,
			 * then mapped.  (Only if that write fails is what is there
			 * kept, as dirty, rather than lost.) */
			size_t po = (size_t)i << o->page_shift;
			vmo__warn("page %#llx present while absent (filled outside vmo); the pager's data replaces it",
				  (unsigned long long)((f->pg + i) << o->page_shift));
			bool d0 = dirty0 && i == 0; /* (counted dirty already) */
			if (vmo__pwrite_full(o->memfd, (char *)buf + po, o->page_size, (f->pg + i) << o->page_shift) == 0) {
				int crc = f->sp->ops->cont(f->sp, (void *)(f->paddr + po), o->page_size, d0 ? false : wp,
							   !d0, NULL);
				ps_cas(o, f->pg + i, PS_FILLING, d0 ? PS_DIRTY : st);
				if (crc < 0 || d0)
					f->sp->ops->wake(f->sp, (void *)(f->paddr + po), o->page_size);
				i++;
				continue;
			}
			ps_set(o, f->pg + i, PS_DIRTY);
			if (st != PS_DIRTY && !d0)
				atomic_fetch_add(&o->pages.dirty_pages, 1);
			/* The copy that would have woken whoever waits on it did not
			 * happen: wake them (the faulting thread, if i == 0). */
			f->sp->ops->wake(f->sp, (void *)(f->paddr + po), o->page_size);
			i++;
			continue;
		}
		if (rc == -ENOENT && in && seg - i > 1 && !(i >= wa && i < wb)) {
			/* The view is there (space entered), but the span crosses
			 * a boundary between two of its VMAs: the program split
			 * it (mprotect, madvise) and UFFDIO_COPY takes one VMA at
			 * a time.  Halve the span until it fits; the next one
			 * starts past the boundary.  (Waking instead had the
			 * thread fault on the same span for ever.) */
			span = (seg - i) / 2;
			continue;
		}
		if (rc == -ENOMEM && attempt < TRANSIENT_TRIES) {
			/* The kernel is short of memory for the page: not the
			 * pager's fault.  Try again shortly. */
			view_exit(f);
			transient_wait(attempt++);
			in = view_enter(f);
			continue;
		}
		/* The view vanished (-ENOENT/-ESRCH) or the kernel refused: the
		 * rest stays absent; whoever waits faults again. */
		if (dirty0 && i == 0) {
			vmo__account(o, f->pg, -1, PS_DIRTY);
			vmo__account(o, f->pg + 1, -(long)(n - 1), st);
		} else {
			vmo__account(o, f->pg + i, -(long)(n - i), st);
		}
		if (i == 0 && (rc == -ENOENT || rc == -ESRCH))
			f->sp->ops->wake(f->sp, (void *)f->paddr, o->page_size);
		if (i == 0 && (rc == -ENOMEM || rc == -EAGAIN)) {
			if (in)
				view_exit(f);
			if (dirty0)
				pthread_rwlock_unlock(&o->cow_lock);
			fail_transient(f, f->pg, n, rc);
			return;
		}
		if (i == 0 && rc != -ENOENT && rc != -ESRCH) {
			vmo__warn("supplying page %#llx: UFFDIO_COPY: %s; the page is marked failed",
				  (unsigned long long)(f->pg << o->page_shift), strerror(-rc));
			vmo__set_error(o, f->pg, rc);
			ps_set(o, f->pg, PS_ERROR);
			vmo__wake_waiters(o, f->pg, 1);
			failed = true; /* SIGBUS once out of the lock */
			i = 1;
		}
		unclaim(o, f->pg + i, n - i);
		break;
	}
	if (in)
		view_exit(f);
	if (dirty0)
		pthread_rwlock_unlock(&o->cow_lock);
	if (failed)
		fail_page(f);
	vmo__wake_waiters(o, f->pg, n);
}

/* The page is in the memfd: map it into this view, write-protected unless
 * it is dirty.  Under the chunk's WP stripe, so that neither writeback (which
 * protects) nor reclaim (which claims CLEAN -> EVICTING) can change the page
 * between our look at its state and the mapping.
 *
 * Without UFFDIO_CONTINUE_MODE_WP (before 6.5) a page cannot be mapped
 * write-protected by CONTINUE: in a writable view of a tracked object it is
 * mapped writable and counted dirty first (written back once more, never a
 * write missed).  Objects whose pager has an unlock callback need the mode
 * (vmo_object_create refuses them without it). */
static void map_present(struct fault *f)
{
	struct vmo_object *o = f->obj;
	struct vmo__space *sp = f->sp;
	if (!(f->sp->features & VMO_FEAT_MINOR)) {
		/* No MINOR faults: the kernel maps page-cache pages by itself. */
		sp->ops->wake(sp, (void *)f->paddr, o->page_size);
		return;
	}
	atomic_store_explicit(&o->pages.chunk_ref[f->pg >> o->pages.chunk_shift], 1, memory_order_relaxed);
	pthread_mutex_t *lk = vmo__wplock(o, f->pg);
	pthread_mutex_lock(lk);
	if (!view_enter(f)) {
		pthread_mutex_unlock(lk);
		sp->ops->wake(sp, (void *)f->paddr, o->page_size);
		return;
	}
	uint8_t s = ps_get(o, f->pg), s0 = s;
	int rc = -EAGAIN;
	if (ps_resident(s)) {
		/* (a dirty page of an object with clones stays write-protected:
		 * its next write must push it to them first) */
		bool wp = f->m->wp && (s != PS_DIRTY || atomic_load(&o->nclones));
		if (wp && !(f->sp->features & VMO_FEAT_CONTINUE_WP)) {
			/* Dirty before it is mapped writable: no window in which a
			 * write could land on a page marked clean. */
			if (ps_cas(o, f->pg, PS_CLEAN, PS_DIRTY))
				atomic_fetch_add(&o->pages.dirty_pages, 1);
			else
				ps_cas(o, f->pg, PS_CLEANING, PS_DIRTY);
			s = PS_DIRTY;
			wp = false;
		}
		rc = sp->ops->cont(sp, (void *)f->paddr, o->page_size, wp, false, NULL);
		if ((rc == 0 || rc == -EEXIST) && !o->track && (f->m->flags & VMO_PROT_WRITE) &&
		    ps_cas(o, f->pg, PS_CLEAN, PS_DIRTY))
			atomic_fetch_add(&o->pages.dirty_pages, 1);
		if (rc == -EFAULT) {
			/* The memfd lost the page behind our back (MADV_REMOVE on a
			 * view; reclaim cannot, it claims under this stripe): a clean
			 * page is fetched again; a dirty one is gone: say so rather
			 * than invent it. */
			vmo__warn("page %#llx vanished from memory", (unsigned long long)(f->pg << o->page_shift));
			/* (s0: a clean page made dirty above for the fallback
			 * was clean: fetch it again) */
			uint8_t to = s0 == PS_CLEAN ? PS_ABSENT : PS_ERROR;
			if (ps_cas(o, f->pg, s, to)) {
				vmo__account(o, f->pg, -1, s == PS_CLEAN ? PS_CLEAN : PS_DIRTY);
				if (to == PS_ERROR)
					vmo__set_error(o, f->pg, -EIO);
			}
		} else if (rc && rc != -EEXIST && rc != -ENOENT && rc != -ESRCH && rc != -EAGAIN) {
			/* The kernel refused the mapping for a reason we do not
			 * know: fail this access (SIGBUS, the errno recorded)
			 * rather than wake the thread into the same fault forever.
			 * The page itself stays as it is. */
			view_exit(f);
			pthread_mutex_unlock(lk);
			vmo__warn("mapping page %#llx: UFFDIO_CONTINUE: %s", (unsigned long long)(f->pg << o->page_shift),
				  strerror(-rc));
			vmo__set_error(o, f->pg, rc);
			vmo__space_sigbus(f->sp, f->tid, f->paddr, o->page_size);
			return;
		}
	}
	view_exit(f);
	pthread_mutex_unlock(lk);
	/* Mapped: let the thread go.  Anything else: it faults again and meets
	 * the page's new state. */
	sp->ops->wake(sp, (void *)f->paddr, o->page_size);
}

/* A missing or minor fault: one state machine serves both. */
static void serve(struct fault *f)
{
	struct vmo_object *o = f->obj;
	for (;;) {
		uint8_t s = ps_get(o, f->pg);
		switch (s) {
		case PS_ABSENT:
			/* Shut down: no more pager reads.  Pages in memory stay
			 * readable (below) until unmapped. */
			if (atomic_load(&o->dead)) {
				fail_page(f);
				return;
			}
			if (!ps_cas(o, f->pg, PS_ABSENT, PS_FILLING))
				continue;
			fill(f);
			return;
		case PS_FILLING:
		case PS_EVICTING:
		case PS_PENDING:
			/* (SIGBUS mode: nobody waits in the kernel; the access
			 * runs again, and no waiter is allocated in a handler) */
			if (f->sp->sigbus_mode) {
				sched_yield();
				return;
			}
			if (vmo__add_waiter(o, f->pg, f->sp, f->paddr))
				return;
			continue;
		case PS_CLEAN:
		case PS_DIRTY:
		case PS_CLEANING:
			map_present(f);
			return;
		default: /* PS_ERROR */
			fail_page(f);
			return;
		}
	}
}

/* A write to a write-protected page of view m.  The unlock callback runs
 * unlocked; the state change and unprotect run under the chunk's stripe. */
static void write_fault_cow(struct fault *f);

/* A write fault changes the page's bytes: the object's clones that do not
 * have the page yet get it as it is first (core.h, cow_lock). */
static void write_fault(struct fault *f)
{
	struct vmo_object *o = f->obj;
	pthread_rwlock_rdlock(&o->cow_lock);
	if (atomic_load(&o->nclones))
		o->cow_push(o, f->pg);
	write_fault_cow(f);
	pthread_rwlock_unlock(&o->cow_lock);
}

static void write_fault_cow(struct fault *f)
{
	struct vmo_object *o = f->obj;
	struct vmo__space *sp = f->sp;
	bool unlocked = false;
	for (;;) {
		uint8_t s = ps_get(o, f->pg);
		if (s == PS_CLEAN && o->pages.wlock && !unlocked && wlock_get(o, f->pg)) {
			if (!vmo__callback_begin(o)) {
				vmo__space_sigbus(f->sp, f->tid, f->paddr, o->page_size);
				return;
			}
			int rc = o->ops->unlock(o->ctx, f->pg << o->page_shift, o->page_size);
			vmo__callback_end(o);
			if (rc) {
				vmo__set_error(o, f->pg, rc > 0 ? -EIO : rc);
				vmo__space_sigbus(f->sp, f->tid, f->paddr, o->page_size);
				return;
			}
			unlocked = true;
			wlock_set(o, f->pg, 1, false); /* unlocked until read again */
			vmo__forget_errors(o, f->pg, f->pg + 1); /* an earlier refusal is history */
		}
		pthread_mutex_t *lk = vmo__wplock(o, f->pg);
		pthread_mutex_lock(lk);
		s = ps_get(o, f->pg);
		bool go = false;
		if (s == PS_CLEAN) {
			if (unlocked || !o->pages.wlock || !wlock_get(o, f->pg)) {
				go = ps_cas(o, f->pg, PS_CLEAN, PS_DIRTY);
				if (go)
					atomic_fetch_add(&o->pages.dirty_pages, 1);
			}
		} else if (s == PS_CLEANING) {
			/* Written during writeback: dirty again, so that writeback
			 * does not mark it clean. */
			go = ps_cas(o, f->pg, PS_CLEANING, PS_DIRTY);
		} else if (s == PS_DIRTY) {
			go = true;
		} else {
			/* Not the page the fault saw any more: fault again. */
			pthread_mutex_unlock(lk);
			sp->ops->wake(sp, (void *)f->paddr, o->page_size);
			return;
		}
		if (go) {
			int rc = -ENOENT;
			if (view_enter(f)) {
				rc = sp->ops->protect(sp, (void *)f->paddr, o->page_size, false, true);
				view_exit(f);
			}
			pthread_mutex_unlock(lk);
			if (rc == -ENOENT) {
				sp->ops->wake(sp, (void *)f->paddr, o->page_size); /* the view went */
			} else if (rc) {
				/* Not unprotected, so not woken: fail the write
				 * rather than leave the thread waiting. */
				vmo__warn("unprotecting %#lx: %s", (unsigned long)f->paddr, strerror(-rc));
				vmo__set_error(o, f->pg, rc);
				vmo__space_sigbus(f->sp, f->tid, f->paddr, o->page_size);
			}
			return;
		}
		pthread_mutex_unlock(lk);
	}
}

/* A fault at an address no view covers.  Mostly a view unmapped since the
 * fault was taken: the thread faults again on what is there now.  But the
 * range may still be registered with us and known to no view: the part of a
 * view the program grew in place with mremap (no event says so).  Poison
 * tells the two apart (the kernel refuses it on a range not registered
 * with us): SIGBUS there.  Without poison, an address that comes back with
 * no view several times in a row gets a queued SIGBUS instead of a loop. */
static void fault_unknown(struct vmo__space *sp, uintptr_t addr, pid_t tid)
{
	uintptr_t page = addr & ~(uintptr_t)(VMO_PAGE - 1);
	/* Under space_lock, which vmo_map holds to make a view: no view can
	 * appear here between our look and the poison. */
	bool in = vmo__space_enter(sp, NULL);
	struct vmo_map *m = vmo__map_lookup_get(sp, addr);
	/* (a poison that meets a pending event gives up: -ENOENT, wake) */
	int rc = m ? -EAGAIN : !in ? -ESRCH : sp->ops->poison(sp, (void *)page, VMO_PAGE);
	if (in)
		vmo__space_exit(sp);
	if (m) {
		vmo__map_put(m);
		sp->ops->wake(sp, (void *)page, VMO_PAGE); /* a view now: fault again */
		return;
	}
	if (rc == -ESRCH)
		return; /* the process is gone */
	if (rc == 0) {
		vmo__warn("fault at %#lx: no view there (grown with mremap?): SIGBUS", (unsigned long)addr);
		return;
	}
	if (rc == -EOPNOTSUPP) {
		if (atomic_exchange(&sp->unknown_addr, page) == page) {
			if (atomic_fetch_add(&sp->unknown_count, 1) >= 3) {
				atomic_store(&sp->unknown_count, 0);
				vmo__warn("fault at %#lx: no view there (grown with mremap?): SIGBUS", (unsigned long)addr);
				vmo__space_sigbus(sp, tid, page, VMO_PAGE);
				return;
			}
		} else {
			atomic_store(&sp->unknown_count, 1);
		}
	}
	sp->ops->wake(sp, (void *)page, VMO_PAGE);
}

/* Is objoff in o's window [lo, hi)?  Growing it to cover objoff when the
 * object grows that way (VMO_OBJ_GROWS_UP past its end, GROWS_DOWN below
 * its start; the mapping bounds it by max_size). */
static bool in_window(struct vmo_object *o, uint64_t objoff)
{
	for (;;) {
		uint64_t lo = atomic_load_explicit(&o->lo, memory_order_acquire);
		uint64_t hi = atomic_load_explicit(&o->hi, memory_order_acquire);
		if (objoff >= lo && objoff < hi)
			return true;
		if ((o->flags & VMO_OBJ_GROWS_UP) && objoff >= hi) {
			uint64_t to = (objoff | (o->page_size - 1)) + 1;
			if (atomic_compare_exchange_weak(&o->hi, &hi, to))
				return true;
		} else if ((o->flags & VMO_OBJ_GROWS_DOWN) && objoff < lo) {
			uint64_t to = objoff & ~(uint64_t)(o->page_size - 1);
			if (atomic_compare_exchange_weak(&o->lo, &lo, to))
				return true;
		} else {
			return false;
		}
	}
}

void vmo__handle_fault(struct vmo_engine *eng, struct vmo__space *sp, const struct uffd_msg *msg)
{
	uintptr_t addr = (uintptr_t)msg->arg.pagefault.address;
	uint64_t flags = msg->arg.pagefault.flags;
	atomic_fetch_add_explicit(&sp->faults, 1, memory_order_relaxed);
	struct vmo_map *m = vmo__map_lookup_get(sp, addr);
	if (!m) {
		fault_unknown(sp, addr, (pid_t)msg->arg.pagefault.feat.ptid);
		return;
	}
	struct vmo_object *o = m->obj;
	uint64_t objoff = addr - m->addr + m->off;
	struct fault f = {
		.eng = eng,
		.sp = sp,
		.m = m,
		.obj = o,
		.pg = objoff >> o->page_shift,
		.tid = (pid_t)msg->arg.pagefault.feat.ptid,
		.write = (flags & UFFD_PAGEFAULT_FLAG_WRITE) != 0,
	};
	f.paddr = m->addr + ((f.pg << o->page_shift) - m->off);
	atomic_fetch_add_explicit(&o->st.faults, 1, memory_order_relaxed);
	if (!in_window(o, objoff)) {
		/* Outside the object's extent and not a growth: SIGBUS, as a
		 * file's mapping past its end. */
		vmo__space_sigbus(sp, f.tid, f.paddr, o->page_size);
		vmo__map_put(m);
		return;
	}
	if (flags & UFFD_PAGEFAULT_FLAG_WP) {
		atomic_fetch_add_explicit(&o->st.wp, 1, memory_order_relaxed);
		write_fault(&f);
	} else {
		if (flags & UFFD_PAGEFAULT_FLAG_MINOR)
			atomic_fetch_add_explicit(&o->st.minor, 1, memory_order_relaxed);
		else
			atomic_fetch_add_explicit(&o->st.missing, 1, memory_order_relaxed);
		serve(&f);
	}
	vmo__map_put(m);
}
