/* SPDX-License-Identifier: MIT */
/* ranges.c - segments: vmo objects of many GiB, each mapped once for the
 * life of the process, and the allocator of address ranges inside them that
 * jemalloc's extents (heap.c) and the program's large mmaps (preload.c)
 * come from.
 *
 * Why segments and not an object per mmap: every object holds a memfd (a
 * file descriptor: a program making 10,000 mappings would run out), a
 * userfaultfd registration and its own page table; one view over a large
 * object costs a registration once, and a range handed out costs nothing
 * until touched.  A range given back is punched (VMO_PUNCH: its pages and
 * the store's copy go, it reads as zeros again) and made PROT_NONE, so a
 * stray access faults as after a real munmap.
 *
 * The allocator keeps, per segment, the free ranges sorted and coalesced in
 * an array of kernel memory: no malloc and no call into libvmo, because it
 * runs inside jemalloc's extent hooks, where a malloc would re-enter
 * jemalloc.  First fit; the number of free ranges stays small (jemalloc
 * retains what it gets, and large mmaps are few). */
#include "run.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

struct vr_seg vr__segs[VR_MAX_SEGS];
_Atomic unsigned vr__nsegs;
static pthread_mutex_t range_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t seg_mu = PTHREAD_MUTEX_INITIALIZER;

#define RANGES_CAP (1u << 20) /* free ranges a segment can hold (16 MiB of address space, touched as used) */

struct vr_seg *vr__seg_of(const void *addr)
{
	unsigned n = atomic_load_explicit(&vr__nsegs, memory_order_acquire);
	const char *a = addr;
	for (unsigned i = 0; i < n; i++) {
		struct vr_seg *s = &vr__segs[i];
		if (a >= s->base && a < s->base + s->size)
			return s;
	}
	return NULL;
}

struct vr_seg *vr__seg_span(const void *addr, size_t len)
{
	struct vr_seg *s = vr__seg_of(addr);
	if (!s || (uint64_t)((const char *)addr - s->base) + len > s->size)
		return NULL;
	return s;
}

int vr__seg_add(uint64_t size)
{
	size = (size + (2u << 20) - 1) & ~(uint64_t)((2u << 20) - 1);
	pthread_mutex_lock(&seg_mu);
	unsigned n = atomic_load(&vr__nsegs);
	if (n >= vr__cfg.max_segs || n >= VR_MAX_SEGS) {
		pthread_mutex_unlock(&seg_mu);
		return -ENOSPC;
	}
	struct vr_seg *s = &vr__segs[n];
	void *fr = vr__sys_mmap(NULL, (size_t)RANGES_CAP * sizeof *s->free, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (fr == MAP_FAILED) {
		pthread_mutex_unlock(&seg_mu);
		return -ENOMEM;
	}
	struct vmo_object_opts oo = { .size = size, .page_size = vr__cfg.page_size, .name = NULL };
	struct vmo_object *obj;
	int rc = vmo_object_create_uri(vr__eng, vr__cfg.store, &oo, &obj);
	if (rc) {
		vr__log("cannot make a segment of %llu MiB on store \"%s\": %s (%s)", (unsigned long long)(size >> 20),
			vr__cfg.store, vmo_strerror(rc), vmo_last_error_detail());
		vr__sys_munmap(fr, (size_t)RANGES_CAP * sizeof *s->free);
		pthread_mutex_unlock(&seg_mu);
		return rc;
	}
	void *base = NULL;
	rc = vmo_map(obj, 0, size, VMO_PROT_READ | VMO_PROT_WRITE, &base);
	if (rc) {
		vr__log("cannot map a segment of %llu MiB: %s (%s)", (unsigned long long)(size >> 20), vmo_strerror(rc),
			vmo_last_error_detail());
		vmo_object_unref(obj);
		vr__sys_munmap(fr, (size_t)RANGES_CAP * sizeof *s->free);
		pthread_mutex_unlock(&seg_mu);
		return rc;
	}
	/* A child made by fork() gets a copy-on-write clone of the segment
	 * (Mach's vm_inherit copy): it sees its memory as it was, and neither
	 * side sees the other's later writes.  Without it (kernels before
	 * 6.5) a child has no mapping there: SIGSEGV if it touches it. */
	rc = vmo_inherit(obj, base, size, VMO_INHERIT_COPY);
	if (rc) {
		static _Atomic int once;
		if (!atomic_exchange(&once, 1))
			vr__log("fork(): children get no copy of the memory vmo pages (%s: %s); they get SIGSEGV if "
				"they touch it before exec", vmo_strerror(rc), vmo_last_error_detail());
	}
	s->obj = obj;
	s->size = size;
	s->free = fr;
	s->cap = RANGES_CAP;
	s->free[0] = (struct vr_range){ 0, size };
	s->nfree = 1;
	s->used = 0;
	s->base = base; /* last: vr__seg_of looks at base */
	atomic_store_explicit(&vr__nsegs, n + 1, memory_order_release);
	pthread_mutex_unlock(&seg_mu);
	if (vr__cfg.verbose)
		vr__log("segment %u: %llu MiB at %p", n, (unsigned long long)(size >> 20), base);
	return 0;
}

/* ---- the free ranges of one segment (under range_mu) -------------------------- */

static void del_at(struct vr_seg *s, size_t i)
{
	memmove(&s->free[i], &s->free[i + 1], (s->nfree - i - 1) * sizeof *s->free);
	s->nfree--;
}

static bool ins_at(struct vr_seg *s, size_t i, uint64_t off, uint64_t len)
{
	if (s->nfree == s->cap)
		return false;
	memmove(&s->free[i + 1], &s->free[i], (s->nfree - i) * sizeof *s->free);
	s->free[i] = (struct vr_range){ off, len };
	s->nfree++;
	return true;
}

/* Take [off, off+len) out of the free range i, which holds it. */
static bool carve(struct vr_seg *s, size_t i, uint64_t off, uint64_t len)
{
	struct vr_range r = s->free[i];
	uint64_t head = off - r.off, tail = r.off + r.len - (off + len);
	if (head && tail) {
		if (!ins_at(s, i + 1, off + len, tail))
			return false;
		s->free[i].len = head;
	} else if (head) {
		s->free[i].len = head;
	} else if (tail) {
		s->free[i] = (struct vr_range){ off + len, tail };
	} else {
		del_at(s, i);
	}
	s->used += len;
	return true;
}

void *vr__range_alloc(size_t len, size_t align)
{
	if (!len || align < 4096 || (align & (align - 1)))
		return NULL;
	void *out = NULL;
	pthread_mutex_lock(&range_mu);
	unsigned n = atomic_load_explicit(&vr__nsegs, memory_order_acquire);
	for (unsigned k = 0; k < n && !out; k++) {
		struct vr_seg *s = &vr__segs[k];
		for (size_t i = 0; i < s->nfree; i++) {
			struct vr_range r = s->free[i];
			/* align the address, not the offset: the view's base
			 * is only 4 KiB aligned */
			uintptr_t a = ((uintptr_t)(s->base + r.off) + align - 1) & ~(uintptr_t)(align - 1);
			uint64_t off = (uint64_t)((char *)a - s->base);
			if (off + len > r.off + r.len)
				continue;
			if (carve(s, i, off, len))
				out = s->base + off;
			break;
		}
	}
	pthread_mutex_unlock(&range_mu);
	return out;
}

bool vr__range_take(void *addr, size_t len)
{
	struct vr_seg *s = vr__seg_span(addr, len);
	if (!s)
		return false;
	uint64_t off = (uint64_t)((char *)addr - s->base);
	bool ok = false;
	pthread_mutex_lock(&range_mu);
	for (size_t i = 0; i < s->nfree; i++) {
		struct vr_range r = s->free[i];
		if (r.off > off)
			break;
		if (off + len <= r.off + r.len) {
			ok = carve(s, i, off, len);
			break;
		}
	}
	pthread_mutex_unlock(&range_mu);
	return ok;
}

void vr__range_free(void *addr, size_t len)
{
	struct vr_seg *s = vr__seg_span(addr, len);
	if (!s || !len)
		return;
	uint64_t lo = (uint64_t)((char *)addr - s->base), hi = lo + len;
	pthread_mutex_lock(&range_mu);
	/* Union [lo, hi) into the set: absorb every free range it touches. */
	size_t i = 0;
	while (i < s->nfree && s->free[i].off + s->free[i].len < lo)
		i++;
	uint64_t already = 0;
	while (i < s->nfree && s->free[i].off <= hi) {
		struct vr_range r = s->free[i];
		uint64_t olo = r.off > lo ? r.off : lo, ohi = r.off + r.len < hi ? r.off + r.len : hi;
		if (ohi > olo)
			already += ohi - olo;
		if (r.off < lo)
			lo = r.off;
		if (r.off + r.len > hi)
			hi = r.off + r.len;
		del_at(s, i);
	}
	if (!ins_at(s, i, lo, hi - lo)) {
		/* (a million free ranges: the range stays taken, leaked) */
		pthread_mutex_unlock(&range_mu);
		return;
	}
	s->used -= len - already;
	pthread_mutex_unlock(&range_mu);
}

/* In a fork()ed child: another thread of the parent may have held the
 * locks at the fork (they cannot be taken in fork's prepare handlers:
 * jemalloc's, which run after ours, take the arena locks that h_alloc is
 * called under).  The child has one thread. */
void vr__ranges_atfork_child(void)
{
	pthread_mutex_init(&range_mu, NULL);
	pthread_mutex_init(&seg_mu, NULL);
}

void vr__range_totals(uint64_t *used, uint64_t *size)
{
	*used = *size = 0;
	pthread_mutex_lock(&range_mu);
	unsigned n = atomic_load(&vr__nsegs);
	for (unsigned k = 0; k < n; k++) {
		*used += vr__segs[k].used;
		*size += vr__segs[k].size;
	}
	pthread_mutex_unlock(&range_mu);
}
