/* SPDX-License-Identifier: MIT */
/* swap.c - a swap file shared by many anonymous objects (Sprite's swap
 * files, the Hurd's default pager): vmo_swap_open, vmo_pager_swap.
 * docs/stores.md.
 *
 * The file is cut into 4 KiB slots.  An object holds a slot number per 4 KiB
 * of itself (0: none, the page reads as zeros), in an array mapped
 * MAP_NORESERVE (a 1 TiB object costs address space, and memory only for the
 * parts written).  A write takes the lowest free slots (a bitmap with a hint
 * to its first free word), so that the file stays as small as the data in
 * it: when the highest used slot is freed the file is cut down to the next
 * one (ftruncate), and a slot freed below it is punched (FALLOC_FL_PUNCH_
 * HOLE), so the disk space goes back at once.  A page written back as all
 * zeros frees its slot rather than storing zeros (zswap's same-filled
 * pages).  An object's release frees all its slots.
 *
 * Nothing in the file outlives the handle: it is emptied at open (a file)
 * or unnamed (a directory: O_TMPFILE).  vmo calls a page's read and write
 * never at once (a page is written back from memory and read only when not
 * there), so a slot number changes under no reader of it. */
#include "internal.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SLOT 4096u

struct vmo_swap {
	int fd;
	pthread_mutex_t mu;
	uint64_t *bits;        /* 1: slot used; slot s is bit s-1 (0 = no slot) */
	size_t nwords;
	size_t hint;           /* no free bit below word hint */
	uint64_t top;          /* highest used slot (0: none); the file holds slots 1..top */
	_Atomic long objects;  /* vmo_pager_swap pagers not released yet */
	/* stats */
	uint64_t used, peak;
	_Atomic uint64_t reads, writes, zero_pages, punched, truncs;
};

struct swap_obj {
	struct vmo_swap *sw;
	/* Reads hold it shared, a punch exclusive: a slot read is never freed
	 * (and handed to another object) under the read. */
	pthread_rwlock_t rw;
	uint64_t size;
	uint64_t nslots; /* size / SLOT */
	_Atomic uint32_t *slot;
	size_t maplen;
};

/* ---- slots -------------------------------------------------------------------- */

/* Under mu: n free slots (the lowest), into out[]; 0 or -ENOMEM/-ENOSPC. */
static int slots_alloc(struct vmo_swap *sw, uint32_t *out, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		size_t w = sw->hint;
		while (w < sw->nwords && sw->bits[w] == UINT64_MAX)
			w++;
		if (w == sw->nwords) {
			size_t nw = sw->nwords ? 2 * sw->nwords : 64;
			if (nw * 64 > UINT32_MAX) {
				vmo__set_detail("the swap file is full (%u slots of 4 KiB)", UINT32_MAX);
				return -ENOSPC;
			}
			uint64_t *b = realloc(sw->bits, nw * sizeof *b);
			if (!b)
				return -ENOMEM;
			memset(b + sw->nwords, 0, (nw - sw->nwords) * sizeof *b);
			sw->bits = b;
			sw->nwords = nw;
		}
		sw->hint = w;
		int bit = __builtin_ctzll(~sw->bits[w]);
		sw->bits[w] |= 1ull << bit;
		uint64_t s = (uint64_t)w * 64 + (uint64_t)bit + 1;
		out[k] = (uint32_t)s;
		if (s > sw->top)
			sw->top = s;
		sw->used++;
	}
	if (sw->used > sw->peak)
		sw->peak = sw->used;
	return 0;
}

/* Under mu: slot s is free again; its disk space goes back (punched, or the
 * file cut down to its highest used slot). */
static void slot_free(struct vmo_swap *sw, uint32_t s)
{
	size_t w = (s - 1) / 64;
	sw->bits[w] &= ~(1ull << ((s - 1) % 64));
	if (w < sw->hint)
		sw->hint = w;
	sw->used--;
	if (s == sw->top) {
		/* the file is cut down to the highest slot still used */
		uint64_t t = 0;
		for (size_t k = w + 1; k-- > 0;) {
			uint64_t b = sw->bits[k];
			if (k == w && (s - 1) % 64 != 63)
				b &= (1ull << ((s - 1) % 64)) - 1; /* (below s; s's own bit is clear already) */
			if (b) {
				t = (uint64_t)k * 64 + (uint64_t)(63 - __builtin_clzll(b)) + 1;
				break;
			}
		}
		sw->top = t;
		if (ftruncate(sw->fd, (off_t)(t * SLOT)) == 0)
			atomic_fetch_add(&sw->truncs, 1);
		return;
	}
	if (fallocate(sw->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)((s - 1) * (uint64_t)SLOT), SLOT) == 0)
		atomic_fetch_add(&sw->punched, 1);
}

/* ---- the pager ----------------------------------------------------------------- */

static int swap_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct swap_obj *o = ctx;
	(void)flags;
	if (off > o->size || len > o->size - off)
		return -EINVAL;
	pthread_rwlock_rdlock(&o->rw);
	int rc = 0;
	for (size_t at = 0; at < len && !rc;) {
		uint64_t i = (off + at) / SLOT;
		uint32_t s = atomic_load_explicit(&o->slot[i], memory_order_acquire);
		/* a run of consecutive slots (or of pages with none) */
		size_t run = SLOT;
		while (at + run < len) {
			uint32_t t = atomic_load_explicit(&o->slot[i + run / SLOT], memory_order_acquire);
			if (s ? t != s + run / SLOT : t != 0)
				break;
			run += SLOT;
		}
		if (!s) {
			memset((char *)buf + at, 0, run);
		} else {
			long r = vmo__pread_full(o->sw->fd, (char *)buf + at, run, (uint64_t)(s - 1) * SLOT);
			if (r >= 0 && (size_t)r < run) { /* (a slot past the end: never, the file is cut above used slots) */
				vmo__set_detail("swap file: slot %u is past the end of the file", s);
				r = -EIO;
			}
			if (r < 0)
				rc = (int)r;
			else
				atomic_fetch_add(&o->sw->reads, run / SLOT);
		}
		at += run;
	}
	pthread_rwlock_unlock(&o->rw);
	return rc;
}

static int swap_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct swap_obj *o = ctx;
	struct vmo_swap *sw = o->sw;
	if (off > o->size || len > o->size - off)
		return -EINVAL;
	for (size_t at = 0; at < len;) {
		uint64_t i = (off + at) / SLOT;
		const char *p = (const char *)buf + at;
		uint32_t s = atomic_load_explicit(&o->slot[i], memory_order_relaxed);
		if (vmo__all_zero(p, SLOT)) {
			if (s) {
				atomic_store_explicit(&o->slot[i], 0, memory_order_release);
				pthread_mutex_lock(&sw->mu);
				slot_free(sw, s);
				pthread_mutex_unlock(&sw->mu);
			}
			atomic_fetch_add(&sw->zero_pages, 1);
			at += SLOT;
			continue;
		}
		if (!s) {
			pthread_mutex_lock(&sw->mu);
			int rc = slots_alloc(sw, &s, 1);
			pthread_mutex_unlock(&sw->mu);
			if (rc)
				return rc;
		}
		int rc = vmo__pwrite_full(sw->fd, p, SLOT, (uint64_t)(s - 1) * SLOT);
		if (rc) {
			if (!atomic_load_explicit(&o->slot[i], memory_order_relaxed)) { /* (a new slot: give it back) */
				pthread_mutex_lock(&sw->mu);
				slot_free(sw, s);
				pthread_mutex_unlock(&sw->mu);
			}
			return rc;
		}
		atomic_store_explicit(&o->slot[i], s, memory_order_release);
		atomic_fetch_add(&sw->writes, 1);
		at += SLOT;
	}
	return 0;
}

static int swap_extent(void *ctx, uint64_t *size)
{
	*size = ((struct swap_obj *)ctx)->size;
	return 0;
}

static void swap_release(void *ctx)
{
	struct swap_obj *o = ctx;
	struct vmo_swap *sw = o->sw;
	pthread_mutex_lock(&sw->mu);
	for (uint64_t i = 0; i < o->nslots; i++) {
		uint32_t s = atomic_load_explicit(&o->slot[i], memory_order_relaxed);
		if (s)
			slot_free(sw, s);
	}
	pthread_mutex_unlock(&sw->mu);
	munmap((void *)o->slot, o->maplen);
	pthread_rwlock_destroy(&o->rw);
	atomic_fetch_sub(&sw->objects, 1);
	free(o);
}

static const struct vmo_pager_ops swap_ops = {
	.read = swap_read,
	.write = swap_write,
	.report_extent = swap_extent,
	.release = swap_release,
};

/* ---- the handle ----------------------------------------------------------------- */

VMO_API int vmo_swap_open(const char *path, struct vmo_swap **out)
{
	if (!path || !*path || !out) {
		vmo__set_detail("vmo_swap_open: %s is missing", !out ? "out" : "path");
		return -EINVAL;
	}
	struct stat st;
	int fd;
	bool dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
	if (dir)
		fd = open(path, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	else
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		vmo__set_detail("swap file %s: %s", path, strerror(e));
		return -e;
	}
	/* A named file is emptied, but never under another handle (of this
	 * process or another): whoever has it holds the lock. */
	if (!dir && (flock(fd, LOCK_EX | LOCK_NB) < 0 || ftruncate(fd, 0) < 0)) {
		int e = errno == EWOULDBLOCK ? EBUSY : errno;
		vmo__set_detail("swap file %s: %s", path,
				e == EBUSY ? "in use by another swap handle (vmo_swap_open): one handle per file"
					   : strerror(e));
		close(fd);
		return -e;
	}
	struct vmo_swap *sw = calloc(1, sizeof *sw);
	if (!sw) {
		close(fd);
		return -ENOMEM;
	}
	sw->fd = fd;
	pthread_mutex_init(&sw->mu, NULL);
	*out = sw;
	return 0;
}

VMO_API int vmo_swap_close(struct vmo_swap *sw)
{
	if (!sw)
		return -EINVAL;
	if (atomic_load(&sw->objects)) {
		vmo__set_detail("vmo_swap_close: %ld objects still use the swap file (their release frees them)",
				atomic_load(&sw->objects));
		return -EBUSY;
	}
	close(sw->fd);
	pthread_mutex_destroy(&sw->mu);
	free(sw->bits);
	free(sw);
	return 0;
}

VMO_API int vmo_swap_stats_sized(struct vmo_swap *sw, struct vmo_swap_stats *out, size_t size)
{
	if (!sw || !out || size < 8)
		return -EINVAL;
	struct vmo_swap_stats s;
	memset(&s, 0, sizeof s);
	pthread_mutex_lock(&sw->mu);
	s.slots_used = sw->used;
	s.slots_peak = sw->peak;
	s.file_slots = sw->top;
	pthread_mutex_unlock(&sw->mu);
	struct stat st;
	if (fstat(sw->fd, &st) == 0) {
		s.file_bytes = (uint64_t)st.st_size;
		s.disk_bytes = (uint64_t)st.st_blocks * 512;
	}
	s.objects = (uint64_t)atomic_load(&sw->objects);
	s.reads = atomic_load(&sw->reads);
	s.writes = atomic_load(&sw->writes);
	s.zero_pages = atomic_load(&sw->zero_pages);
	s.punched = atomic_load(&sw->punched);
	s.truncated = atomic_load(&sw->truncs);
	vmo__sized_out(out, size, &s, sizeof s, VMO_SWAP_STATS_VERSION);
	return 0;
}

/* vmo_discard(VMO_PUNCH): the range's slots freed (it reads as zeros). */
static int swap_punch(void *ctx, uint64_t off, uint64_t len)
{
	struct swap_obj *o = ctx;
	if (off > o->size || len > o->size - off)
		return -EINVAL;
	pthread_rwlock_wrlock(&o->rw); /* (no read of a slot we free is in flight) */
	pthread_mutex_lock(&o->sw->mu);
	for (uint64_t i = off / SLOT; i < (off + len) / SLOT; i++) {
		uint32_t s = atomic_exchange_explicit(&o->slot[i], 0, memory_order_acq_rel);
		if (s)
			slot_free(o->sw, s);
	}
	pthread_mutex_unlock(&o->sw->mu);
	pthread_rwlock_unlock(&o->rw);
	return 0;
}

VMO_API int vmo_pager_swap(struct vmo_swap *sw, uint64_t size, const struct vmo_pager_ops **ops, void **ctx)
{
	vmo__pager_punch_register(&swap_ops, swap_punch);
	if (!sw || !ops || !ctx || !size || size % SLOT) {
		vmo__set_detail("vmo_pager_swap: %s", !sw || !ops || !ctx ? "a handle or output is missing"
							: "size must be a non-zero multiple of 4096");
		return -EINVAL;
	}
	if (size / SLOT > (uint64_t)SIZE_MAX / sizeof(uint32_t))
		return -EFBIG;
	struct swap_obj *o = calloc(1, sizeof *o);
	if (!o)
		return -ENOMEM;
	o->sw = sw;
	o->size = size;
	o->nslots = size / SLOT;
	o->maplen = vmo__align_up(o->nslots * sizeof(uint32_t), VMO_PAGE);
	void *p = mmap(NULL, o->maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		free(o);
		return -ENOMEM;
	}
	o->slot = p;
	pthread_rwlock_init(&o->rw, NULL);
	atomic_fetch_add(&sw->objects, 1);
	*ops = &swap_ops;
	*ctx = o;
	return 0;
}
