/* SPDX-License-Identifier: MIT */
/* uffd.h - the userfaultfd layer: the only code that talks to userfaultfd.
 * Every call returns 0 / a count, or -errno. */
#ifndef VMO_UFFD_H
#define VMO_UFFD_H

#include <linux/userfaultfd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Definitions the installed (6.1) headers lack; the running kernel is asked. */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
#endif
#ifndef UFFDIO_CONTINUE_MODE_WP
#define UFFDIO_CONTINUE_MODE_WP ((__u64)1 << 1)
#endif
#ifndef _UFFDIO_MOVE
#define _UFFDIO_MOVE (0x05)
struct uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
#define UFFDIO_MOVE_MODE_DONTWAKE ((__u64)1 << 0)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES ((__u64)1 << 1)
	__u64 mode;
	__s64 move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif
#ifndef _UFFDIO_POISON
#define _UFFDIO_POISON (0x08)
struct uffdio_poison {
	struct uffdio_range range;
#define UFFDIO_POISON_MODE_DONTWAKE ((__u64)1 << 0)
	__u64 mode;
	__s64 updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC 0xAA
#define USERFAULTFD_IOC_NEW _IO(USERFAULTFD_IOC, 0x00)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

/* PAGEMAP_SCAN (6.7) on /proc/self/pagemap. */
#ifndef PAGEMAP_SCAN
#include <linux/ioctl.h>
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)
#define PAGE_IS_SOFT_DIRTY (1 << 7)
struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
struct pm_scan_arg {
	__u64 size;
	__u64 flags;
	__u64 start;
	__u64 end;
	__u64 walk_end;
	__u64 vec;
	__u64 vec_len;
	__u64 max_pages;
	__u64 category_inverted;
	__u64 category_mask;
	__u64 category_anyof_mask;
	__u64 return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

struct vmo__uffd {
	int fd;
	uint64_t features; /* negotiated UFFD_FEATURE_* */
	uint64_t ioctls;   /* from UFFDIO_API */
	bool dev;          /* opened through /dev/userfaultfd */
	bool user_mode_only; /* kernel-mode faults are not served (EFAULT) */
	/* Called when an ioctl returns EAGAIN (an mm change is pending): read and
	 * handle pending events before the ioctl is retried; true: the range is
	 * no longer ours, give up (-ENOENT).  May be NULL. */
	bool (*drain)(void *arg);
	void *drain_arg;
};

#define VMO__UFFD_NONBLOCK 1u  /* O_NONBLOCK reads */
#define VMO__UFFD_USER_ONLY 2u /* prefer UFFD_USER_MODE_ONLY (least privilege) */

/* Open a userfaultfd and negotiate `want` features; `need` features must all
 * be there (-EOPNOTSUPP otherwise).  Without VMO__UFFD_USER_ONLY, one that
 * serves kernel-mode faults too is preferred (/dev/userfaultfd, else the
 * plain syscall), then UFFD_USER_MODE_ONLY; with it, the other way round.
 * On failure a detailed reason is recorded with vmo__set_detail() and
 * -VMO_ENOUFFD (or -errno) returned. */
int vmo__uffd_open(struct vmo__uffd *u, uint64_t want, uint64_t need, unsigned flags);
void vmo__uffd_close(struct vmo__uffd *u);
/* Features the running kernel offers (probing once, cached), less those
 * VMO_DISABLE names. */
uint64_t vmo__uffd_kernel_features(void);
bool vmo__pagemap_scan_supported(void);
/* UFFDIO_CONTINUE takes UFFDIO_CONTINUE_MODE_WP (6.5; no feature bit). */
bool vmo__uffd_continue_wp_supported(void);
/* The folio orders (bit k: 4 KiB << k) shmem gives a write into an empty,
 * aligned block of a memfd, read now from sysfs: the PMD size's where the
 * global shmem_enabled is always, within_size or force (advise needs a
 * mapping's MADV_HUGEPAGE; the per-size settings are for anonymous shared
 * mappings).  0 where there are none, or VMO_DISABLE=large-folios. */
unsigned vmo__shmem_folio_orders(void);
/* Mechanisms VMO_DISABLE turns off that are not UFFD_FEATURE_* bits. */
#define VMO__DIS_CONTINUE_WP 1u
#define VMO__DIS_PAGEMAP_SCAN 2u
#define VMO__DIS_LARGE_FOLIOS 4u
unsigned vmo__uffd_disabled(void);

int vmo__uffd_register(struct vmo__uffd *u, void *addr, size_t len, uint64_t modes);
int vmo__uffd_unregister(struct vmo__uffd *u, void *addr, size_t len);
/* Supply: 0 when all of len is installed, else -errno (-EEXIST: a page is
 * already there); *done says how many bytes were installed before it. */
int vmo__uffd_copy(struct vmo__uffd *u, void *dst, const void *src, size_t len, bool wp, bool wake, size_t *done);
int vmo__uffd_continue(struct vmo__uffd *u, void *dst, size_t len, bool wp, bool wake, size_t *done);
/* Poison [dst, dst+len): every later access is SIGBUS.  -EEXIST when some
 * page could not be poisoned because its PTE is not empty (a page, or a
 * write-protect marker); the others are poisoned anyway. */
int vmo__uffd_poison(struct vmo__uffd *u, void *dst, size_t len);
int vmo__uffd_wake(struct vmo__uffd *u, void *addr, size_t len);
int vmo__uffd_writeprotect(struct vmo__uffd *u, void *addr, size_t len, bool wp, bool wake);
int vmo__uffd_move(struct vmo__uffd *u, void *dst, void *src, size_t len, bool allow_holes, size_t *done);
/* PAGEMAP_SCAN on pagemap_fd over [start, end): every page mapped there and
 * written since it was last protected (async WP) is protected again and
 * reported through cb(arg, start, end) in runs.  Holes are not reported
 * (the kernel counts them as "written").  Returns 0 or -errno. */
int vmo__pagemap_collect_written(int pagemap_fd, uintptr_t start, uintptr_t end,
				 void (*cb)(void *arg, uintptr_t s, uintptr_t e), void *arg);
/* Does [off, off+len) of file fd have a page missing from memory?  1 (and
 * the first such offset in *hole), 0, or -errno. */
int vmo__memfd_hole(int fd, uint64_t off, uint64_t len, uint64_t *hole);
/* Read up to n messages; returns the count, 0 if none (nonblocking), -errno. */
int vmo__uffd_read(struct vmo__uffd *u, struct uffd_msg *msgs, int n);
/* Serve u when whoever served it is gone (a server, a parent): a page in
 * memory is mapped (MINOR), a write let through (WP), a page not in memory
 * answered with SIGBUS (UFFDIO_POISON, or the signal to the faulting
 * thread), never a zero page and never a hang.  Until stopfd (-1: none) is
 * readable.  The caller wakes the threads that waited on a message the
 * former server read and never answered first (vmo__uffd_wake). */
void vmo__uffd_serve_orphan(struct vmo__uffd *u, int stopfd);

#endif
