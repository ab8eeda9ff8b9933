/* SPDX-License-Identifier: MIT */
/* dirty.c - writeback and the operations on dirty pages: sync, return,
 * discard (Hurd pager_sync / pager_return / pager_flush).
 *
 * Writeback of a run of dirty pages, all in one chunk:
 *   1. under the chunk's WP stripe: DIRTY -> CLEANING, and write-protect the
 *      run in every writable view (so a later write traps);
 *   2. copy the pages out of the memfd (pread: the views are not touched);
 *   3. the pager's write callback;
 *   4. CLEANING -> CLEAN.  A write that landed after step 1 trapped and sent
 *      the page back to DIRTY, so step 4 fails for it and it stays dirty: the
 *      writeback never marks clean data it did not write.
 * A failed write sends the run back to DIRTY (resident); the error is
 * returned and the next sync retries. */
#include "core.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Pages go to the pager in writes of up to WB_MAX_BYTES (the copy buffer);
 * they are write-protected in spans of up to WB_SPAN_CHUNKS chunks, one
 * UFFDIO_WRITEPROTECT per view for the span.  Each protect costs a TLB
 * flush (a hypercall on the paravirtual machines we measure on): protecting
 * 128 MiB of written pages cost 520 ns/page in 1 MiB calls, 205 in 8 MiB
 * ones, 160 in one call (docs/performance.md). */
#define WB_MAX_BYTES (1u << 20)
#define WB_SPAN_CHUNKS 4

/* Write-protect [pg, pg+n) in every writable view (the view iterator: each
 * under its space's lock, never under obj->mu, since a protect that meets
 * a pending event (EAGAIN) may have to apply it, and applying events takes
 * obj->mu).  0, or the first error; a view that went meanwhile is looked
 * for again by the iterator (its pieces). */
static int protect_view(struct vmo_map *m, uintptr_t addr, size_t len, void *arg)
{
	(void)arg;
	int rc = m->space->ops->protect(m->space, (void *)addr, len, true, false);
	if (rc == -ENOENT)
		return rc; /* the view went meanwhile: the iterator looks again */
	if (rc == -ESRCH)
		return 0; /* its process is gone: nothing to protect */
	if (rc)
		vmo__warn("writeback: protecting %#lx: %s", (unsigned long)addr, strerror(-rc));
	return rc;
}

static int protect_run(struct vmo_object *o, uint64_t pg, uint64_t n)
{
	return vmo__views_each(o, pg << o->page_shift, (pg + n) << o->page_shift, true, protect_view, NULL);
}

static int read_memfd(struct vmo_object *o, void *buf, size_t len, uint64_t off)
{
	long r = vmo__pread_full(o->memfd, buf, len, off);
	return r < 0 ? (int)r : (size_t)r < len ? -EIO : 0;
}

int vmo__write_pages(struct vmo_object *o, uint64_t pg, uint64_t n, void *buf)
{
	size_t len = (size_t)n << o->page_shift;
	uint64_t off = pg << o->page_shift;
	/* Only pages in memory are written: a hole would read as zeros, and
	 * zeros the program never wrote must not reach the store. */
	uint64_t hole = 0;
	if (vmo__memfd_hole(o->memfd, off, len, &hole) == 1) {
		vmo__err("writeback of %#llx+%zu: page %#llx is not in memory; not written",
			 (unsigned long long)off, len, (unsigned long long)hole);
		atomic_fetch_add(&o->st.write_errors, 1);
		return -EIO;
	}
	int rc = read_memfd(o, buf, len, off);
	if (!rc) {
		if (vmo__callback_begin(o)) {
			rc = o->ops->write(o->ctx, off, buf, len);
			vmo__callback_end(o);
			if (rc > 0)
				rc = -EIO;
		} else {
			rc = -VMO_ESHUTDOWN;
		}
	}
	if (rc)
		atomic_fetch_add(&o->st.write_errors, 1);
	else
		atomic_fetch_add(&o->st.writebacks, n);
	return rc;
}

static void mark_written(void *arg, uintptr_t s, uintptr_t e)
{
	struct vmo_map *m = arg;
	struct vmo_object *o = m->obj;
	uint64_t pg0 = (s - m->addr + m->off) >> o->page_shift;
	uint64_t pg1 = (e - m->addr + m->off + o->page_size - 1) >> o->page_shift;
	/* A FILLING page seen mapped and written: the worker's copy has
	 * installed it (only the copy maps a FILLING page) and woken the
	 * writer, but not yet marked it clean. */
	for (uint64_t pg = pg0; pg < pg1; pg++)
		ps_mark_written(o, pg);
}

static int collect_view(struct vmo_map *m, uintptr_t addr, size_t len, void *arg)
{
	(void)arg;
	int rc = m->space->ops->scan_written(m->space, addr, addr + len, mark_written, m);
	if (rc && rc != -ESRCH)
		vmo__warn("collecting dirty pages: PAGEMAP_SCAN: %s", strerror(-rc));
	return 0;
}

/* Scan only runs of pages that are in memory (or being filled): with
 * PM_SCAN_WP_MATCHING the kernel write-protects what it scans, and on this
 * kernel a later fault through such a protected hole in a WP_ASYNC view puts
 * a zero page into the memfd without a MISSING fault (vmo would then never
 * be asked: invented data).  So holes are never scanned. */
void vmo__collect_written(struct vmo_object *o, uint64_t pg0, uint64_t pg1, struct vmo_map *only)
{
	/* PAGEMAP_SCAN protects what it finds: only on ranges that are views
	 * (the iterator holds each view's space lock). */
	for (uint64_t pg = pg0; pg < pg1;) {
		uint64_t c = pg >> o->pages.chunk_shift;
		if (!atomic_load_explicit(&o->pages.chunk_res[c], memory_order_relaxed)) {
			pg = (c + 1) << o->pages.chunk_shift;
			continue;
		}
		uint8_t s = ps_get(o, pg);
		if (s != PS_CLEAN && s != PS_CLEANING && s != PS_FILLING) {
			pg++;
			continue;
		}
		uint64_t end = pg + 1;
		while (end < pg1) {
			s = ps_get(o, end);
			if (s != PS_CLEAN && s != PS_CLEANING && s != PS_FILLING)
				break;
			end++;
		}
		if (only) {
			/* A view vmo_unmap has taken out of its space (dead to
			 * faults) but not yet unmapped: its range is still ours. */
			uint64_t a = pg << o->page_shift, b = end << o->page_shift;
			if (a < only->off)
				a = only->off;
			if (b > only->off + only->len)
				b = only->off + only->len;
			if (a < b && vmo__space_enter(only->space, NULL)) {
				collect_view(only, only->addr + (uintptr_t)(a - only->off), (size_t)(b - a), NULL);
				vmo__space_exit(only->space);
			}
		} else {
			vmo__views_each(o, pg << o->page_shift, end << o->page_shift, true, collect_view, NULL);
		}
		pg = end;
	}
}

/* Pages [pg, pg+n) are CLEANING and protected: write them to the pager. */
static int write_run(struct vmo_object *o, uint64_t pg, uint64_t n, void *buf)
{
	int rc = vmo__write_pages(o, pg, n, buf);
	uint64_t off = pg << o->page_shift;
	size_t len = (size_t)n << o->page_shift;
	if (rc) {
		for (uint64_t i = 0; i < n; i++)
			ps_cas(o, pg + i, PS_CLEANING, PS_DIRTY);
		vmo__debug("writeback at %#llx (%zu bytes) failed: %s", (unsigned long long)off, len, strerror(-rc));
		return rc;
	}
	for (uint64_t i = 0; i < n; i++) {
		/* Untracked pages may be written again without a trap: keep them dirty. */
		uint8_t to = o->track ? PS_CLEAN : PS_DIRTY;
		if (ps_cas(o, pg + i, PS_CLEANING, to) && to == PS_CLEAN)
			atomic_fetch_sub(&o->pages.dirty_pages, 1);
	}
	return 0;
}

int vmo__writeback(struct vmo_object *o, uint64_t pg0, uint64_t pg1)
{
	if (!o->ops->write)
		return 0; /* nowhere to write: dirty pages stay in memory */
	uint64_t max = WB_MAX_BYTES >> o->page_shift;
	if (!max)
		max = 1;
	void *buf = NULL;
	int first = 0;
	pthread_mutex_lock(&o->wb_mu);
	if (o->eng->async)
		vmo__collect_written(o, pg0, pg1, NULL); /* writes since the last look */
	for (uint64_t pg = pg0; pg < pg1;) {
		uint64_t c = pg >> o->pages.chunk_shift;
		uint64_t cend = (c + 1) << o->pages.chunk_shift;
		if (!atomic_load_explicit(&o->pages.chunk_res[c], memory_order_relaxed)) {
			pg = cend;
			continue;
		}
		if (ps_get(o, pg) != PS_DIRTY) {
			pg++;
			continue;
		}
		if (!buf) {
			buf = mmap(NULL, WB_MAX_BYTES > o->page_size ? WB_MAX_BYTES : o->page_size,
				   PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (buf == MAP_FAILED) {
				buf = NULL;
				first = -ENOMEM;
				break;
			}
		}
		/* Claim the span of dirty pages from pg, chunk by chunk, each
		 * chunk's claims under its stripe, and hold the stripes until
		 * the span is protected (a WP fault's CLEAN -> DIRTY + unprotect
		 * must not fall between a claim and the protect).  The chunks
		 * of a span are consecutive and fewer than WP_STRIPES: distinct
		 * stripes, taken in the span's order; one writeback at a time
		 * (wb_mu) is the only holder of more than one. */
		pthread_mutex_t *held[WB_SPAN_CHUNKS];
		int nheld = 0;
		uint64_t n = 0, cn = c;
		uint64_t lim = ((c + WB_SPAN_CHUNKS) << o->pages.chunk_shift);
		if (lim > pg1)
			lim = pg1;
		while (nheld < WB_SPAN_CHUNKS && pg + n < lim) {
			uint64_t ce = (cn + 1) << o->pages.chunk_shift;
			if (ce > lim)
				ce = lim;
			held[nheld] = vmo__wplock(o, pg + n);
			pthread_mutex_lock(held[nheld++]);
			while (pg + n < ce && ps_cas(o, pg + n, PS_DIRTY, PS_CLEANING))
				n++;
			if (pg + n < ce)
				break; /* the span ends inside this chunk */
			cn++;
		}
		int prc = n && o->track ? protect_run(o, pg, n) : 0;
		if (prc) {
			/* Not protected everywhere: a later write might not trap, so
			 * the span must not be marked clean.  Dirty again; retried by
			 * the next sync. */
			for (uint64_t i = 0; i < n; i++)
				ps_cas(o, pg + i, PS_CLEANING, PS_DIRTY);
			if (!first)
				first = prc;
		}
		while (nheld)
			pthread_mutex_unlock(held[--nheld]);
		if (prc) {
			pg += n;
			continue;
		}
		/* Write the span in buffer-sized pieces; a piece that fails is
		 * dirty again (write_run), the others go on. */
		for (uint64_t i = 0; i < n;) {
			uint64_t k = n - i < max ? n - i : max;
			int rc = write_run(o, pg + i, k, buf);
			if (rc && !first)
				first = rc;
			i += k;
		}
		pg += n ? n : 1;
	}
	pthread_mutex_unlock(&o->wb_mu);
	if (buf)
		munmap(buf, WB_MAX_BYTES > o->page_size ? WB_MAX_BYTES : o->page_size);
	return first;
}
