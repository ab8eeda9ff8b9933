/* SPDX-License-Identifier: MIT */
/* run.h - libvmo-run.so, the preloaded half of `vmo run` (docs/run.md):
 * the program's large anonymous memory and its heap on vmo objects.
 *
 *   preload.c  the interposed calls (mmap, munmap, mremap, madvise, fork,
 *              pthread_create for vmo's own threads), configuration from
 *              the environment `vmo run` sets, the stats socket
 *   heap.c     jemalloc's extent hooks: the heap's extents from segments
 *   ranges.c   segments: big vmo objects mapped once, and the allocator
 *              of address ranges inside them (no malloc: it runs inside
 *              jemalloc's hooks)
 *
 * Threads: a program thread inside preload.c's calls into libvmo, and every
 * thread libvmo creates, is "inside" (vr__inside): its own mmap calls pass
 * straight to the kernel and its mallocs go to an arena of kernel memory,
 * so that vmo never faults on memory it pages itself. */
#ifndef VMO_RUN_H
#define VMO_RUN_H

#include <vmo.h>

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VR_TLS __attribute__((tls_model("initial-exec"))) __thread

/* > 0: this thread passes everything to the kernel and allocates from the
 * kernel arena (a program thread inside a call into libvmo, or one of
 * vmo's threads: those hold VR_VMO_THREAD for their life). */
extern VR_TLS int vr__inside;
#define VR_VMO_THREAD (1 << 20)

struct vr_config {
	uint64_t budget;     /* VMO_RUN_BUDGET: resident bytes over all segments */
	uint64_t seg_size;   /* VMO_RUN_SEGMENT: bytes of each segment (address space) */
	uint64_t min_map;    /* VMO_RUN_MIN_MAP: smallest mmap taken */
	uint32_t page_size;  /* VMO_RUN_PAGE_SIZE */
	unsigned max_segs;   /* VMO_RUN_MAX_SEGMENTS */
	bool heap;           /* VMO_RUN_HEAP: the heap too (jemalloc's extents) */
	bool children;       /* VMO_RUN_CHILDREN: exec'd programs run under vmo too */
	int verbose;         /* VMO_RUN_VERBOSE */
	char store[1024];    /* VMO_RUN_STORE: the store URI of every segment */
};

/* ---- segments and ranges (ranges.c) ---------------------------------------- */
#define VR_MAX_SEGS 64

struct vr_seg {
	struct vmo_object *obj;
	char *base;       /* the view: [base, base + size) */
	uint64_t size;
	/* free ranges, sorted by offset, coalesced: [off, off+len) */
	struct vr_range {
		uint64_t off, len;
	} *free;
	size_t nfree, cap;
	uint64_t used;    /* bytes handed out */
};

extern struct vr_seg vr__segs[VR_MAX_SEGS];
extern _Atomic unsigned vr__nsegs;
extern struct vmo_engine *vr__eng;
extern struct vr_config vr__cfg;

int vr__segs_init(void);
/* A new segment of at least size bytes (inside: call with vr__inside held). */
int vr__seg_add(uint64_t size);
/* The segment holding addr, or NULL. */
struct vr_seg *vr__seg_of(const void *addr);
/* A range of len bytes aligned to align (a power of two, >= 4096), or NULL.
 * No malloc, no call into libvmo: safe inside jemalloc's hooks. */
void *vr__range_alloc(size_t len, size_t align);
/* Take exactly [addr, addr+len) if it is all free (false otherwise). */
bool vr__range_take(void *addr, size_t len);
/* Give [addr, addr+len) back (parts already free are fine). */
void vr__range_free(void *addr, size_t len);
/* The locks made anew in a fork()ed child. */
void vr__ranges_atfork_child(void);
/* Bytes handed out, and free, over all segments. */
void vr__range_totals(uint64_t *used, uint64_t *size);
/* Whether [addr, addr+len) lies in one segment (and which). */
struct vr_seg *vr__seg_span(const void *addr, size_t len);

/* ---- the heap (heap.c) ------------------------------------------------------ */
/* Make the kernel arena (before libvmo's threads start: they bind to it). */
int vr__heap_prepare(void);
/* Arena 0 back to jemalloc's default decay (when the heap is not paged). */
void vr__heap_decay_default(void);
/* Hook jemalloc's automatic arenas to the segments, and make the kernel
 * arena for the inside.  0, or -errno (the heap then stays the kernel's). */
int vr__heap_init(void);
/* Switch this thread's arena: to the kernel arena (entering) or back. */
void vr__heap_enter(unsigned *saved);
void vr__heap_leave(unsigned saved);
/* For vmo's threads: bind to the kernel arena for good. */
void vr__heap_bind_kernel(void);
extern bool vr__heap_on;

/* ---- the raw system calls --------------------------------------------------- */
void *vr__sys_mmap(void *addr, size_t len, int prot, int flags, int fd, long off);
int vr__sys_munmap(void *addr, size_t len);
int vr__sys_mprotect(void *addr, size_t len, int prot);

void vr__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
