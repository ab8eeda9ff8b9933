/* SPDX-License-Identifier: MIT */
/* uffd.c - the userfaultfd layer.  The only file that issues userfaultfd
 * syscalls and ioctls.  Every wrapper returns -errno; EAGAIN (an mm change
 * pending) drains events and retries; EEXIST is reported to the caller, who
 * wakes the waiter; ENOENT/ESRCH mean the range or mm is gone. */
#include "uffd.h"
#include "internal.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* EAGAIN: the mm is changing under an event not yet read.  The kernel
 * raises that flag when a munmap/mremap begins and queues the event only when
 * the call is nearly done, so the wait can be as long as the unmap itself
 * (milliseconds for a large range): retry for up to 10 s, yielding first,
 * then sleeping 100 us a try. */
#define EAGAIN_YIELDS 200
#define EAGAIN_NS (10ull * 1000 * 1000 * 1000)

static bool eagain_again(int *tries, uint64_t *t0)
{
	if (*tries == 0)
		*t0 = vmo__now_ns();
	if (++*tries > EAGAIN_YIELDS) {
		if (vmo__now_ns() - *t0 > EAGAIN_NS)
			return false;
		usleep(100);
	}
	return true;
}

static int uffd_syscall(int flags)
{
#ifdef SYS_userfaultfd
	int fd = (int)syscall(SYS_userfaultfd, flags);
	return fd < 0 ? -errno : fd;
#else
	(void)flags;
	return -ENOSYS;
#endif
}

static int uffd_dev(int flags)
{
	int dfd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	int fd = ioctl(dfd, USERFAULTFD_IOC_NEW, flags);
	int err = fd < 0 ? -errno : 0;
	close(dfd);
	return fd < 0 ? err : fd;
}

/* Open a userfaultfd.  Preferred: one that also serves faults the kernel
 * takes on our pages inside system calls (read(2) into a mapping, ...):
 * /dev/userfaultfd, else the syscall without UFFD_USER_MODE_ONLY (which needs
 * CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1).  Last resort, or when
 * user_only is asked: UFFD_USER_MODE_ONLY (kernel-mode accesses to pages not
 * yet supplied fail with EFAULT). */
static int open_raw(bool nonblock, bool user_only, bool *dev, bool *user_mode_only)
{
	int flags = O_CLOEXEC | (nonblock ? O_NONBLOCK : 0);
	int fd, sys_err = -ENOSYS;
	*dev = false;
	*user_mode_only = false;
	if (!user_only) {
		fd = uffd_dev(flags);
		if (fd >= 0) {
			*dev = true;
			return fd;
		}
		fd = uffd_syscall(flags);
		if (fd >= 0)
			return fd;
	}
	fd = uffd_syscall(flags | UFFD_USER_MODE_ONLY);
	if (fd >= 0) {
		*user_mode_only = true;
		return fd;
	}
	sys_err = fd;
	if (user_only) {
		fd = uffd_dev(flags);
		if (fd >= 0) {
			*dev = true;
			return fd;
		}
	} else {
		fd = uffd_dev(flags);
	}
	int dev_err = fd;
	long unpriv = vmo__read_long("/proc/sys/vm/unprivileged_userfaultfd", -1);
	vmo__set_detail("userfaultfd is not available: the userfaultfd() syscall failed (%s) and "
			"/dev/userfaultfd failed (%s); vm.unprivileged_userfaultfd=%ld. Fix: run as a user "
			"with access to /dev/userfaultfd (e.g. chmod/ACL or group on the device), or "
			"set sysctl vm.unprivileged_userfaultfd=1, or grant CAP_SYS_PTRACE; under a "
			"seccomp sandbox allow the userfaultfd syscall",
			strerror(-sys_err), strerror(-dev_err), unpriv);
	return -VMO_ENOUFFD;
}

/* VMO_DISABLE=name,name,...: act as if the running kernel lacked these
 * mechanisms, so that the fallbacks of older kernels run (and are tested) on
 * a new one.  The names are those `vmo info` prints. */
static const struct {
	const char *name;
	uint64_t uffd;   /* UFFD_FEATURE_* bits it masks */
	unsigned extra;  /* VMO__DIS_* bits it sets */
} disable_names[] = {
	{ "minor", UFFD_FEATURE_MINOR_SHMEM, 0 },
	{ "wp", UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_PAGEFAULT_FLAG_WP, 0 },
	{ "poison", UFFD_FEATURE_POISON, 0 },
	{ "move", UFFD_FEATURE_MOVE, 0 },
	{ "wp-async", UFFD_FEATURE_WP_ASYNC, 0 },
	{ "events", UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP, 0 },
	{ "sigbus", UFFD_FEATURE_SIGBUS, 0 },
	{ "continue-wp", 0, VMO__DIS_CONTINUE_WP },
	{ "large-folios", 0, VMO__DIS_LARGE_FOLIOS },
	{ "pagemap-scan", 0, VMO__DIS_PAGEMAP_SCAN },
};

static uint64_t dis_uffd;
static unsigned dis_extra;
static pthread_once_t dis_once = PTHREAD_ONCE_INIT;

static void parse_disable(void)
{
	const char *e = getenv("VMO_DISABLE");
	if (!e || !*e)
		return;
	char buf[256];
	snprintf(buf, sizeof buf, "%s", e);
	char *save = NULL;
	for (char *w = strtok_r(buf, ", ", &save); w; w = strtok_r(NULL, ", ", &save)) {
		size_t i;
		for (i = 0; i < VMO_ARRAY_SIZE(disable_names); i++)
			if (!strcmp(w, disable_names[i].name)) {
				dis_uffd |= disable_names[i].uffd;
				dis_extra |= disable_names[i].extra;
				break;
			}
		if (i == VMO_ARRAY_SIZE(disable_names))
			vmo__err("VMO_DISABLE: unknown mechanism '%s' (known: minor wp poison move wp-async "
				 "events sigbus continue-wp large-folios pagemap-scan)", w);
	}
	vmo__info("VMO_DISABLE=%s: acting as if the kernel lacked it", e);
}

unsigned vmo__uffd_disabled(void)
{
	pthread_once(&dis_once, parse_disable);
	return dis_extra;
}

static uint64_t kfeatures;
static pthread_once_t kfeatures_once = PTHREAD_ONCE_INIT;

static void probe_features(void)
{
	bool dev, umo;
	vmo__uffd_disabled();
	int fd = open_raw(true, false, &dev, &umo);
	if (fd < 0)
		return;
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	if (ioctl(fd, UFFDIO_API, &api) == 0)
		kfeatures = api.features & ~dis_uffd;
	close(fd);
}

uint64_t vmo__uffd_kernel_features(void)
{
	pthread_once(&kfeatures_once, probe_features);
	return kfeatures;
}

/* UFFDIO_CONTINUE_MODE_WP arrived in 6.5 with no feature bit: before it the
 * ioctl rejects the mode with EINVAL.  Ask the kernel: a memfd page in the
 * page cache, a second view of it registered MINOR|WP, and a CONTINUE with
 * MODE_WP there. */
static int continue_wp_ok = -1;
static pthread_once_t continue_wp_once = PTHREAD_ONCE_INIT;

static void probe_continue_wp(void)
{
	continue_wp_ok = 0;
	uint64_t need = UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_PAGEFAULT_FLAG_WP;
	if ((vmo__uffd_kernel_features() & need) != need || (vmo__uffd_disabled() & VMO__DIS_CONTINUE_WP))
		return;
	size_t ps = VMO_PAGE;
	bool dev, umo;
	char *a = MAP_FAILED, *b = MAP_FAILED;
	int u = -1, mfd = memfd_create("vmo-probe", MFD_CLOEXEC);
	if (mfd < 0 || ftruncate(mfd, (off_t)ps) < 0)
		goto out;
	a = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	b = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (a == MAP_FAILED || b == MAP_FAILED)
		goto out;
	a[0] = 1; /* the page is in the page cache; b has no PTE for it */
	u = open_raw(true, false, &dev, &umo);
	if (u < 0)
		goto out;
	struct uffdio_api api = { .api = UFFD_API, .features = need };
	if (ioctl(u, UFFDIO_API, &api) < 0)
		goto out;
	struct uffdio_register r = { .range = { (uintptr_t)b, ps },
				     .mode = UFFDIO_REGISTER_MODE_MINOR | UFFDIO_REGISTER_MODE_WP };
	if (ioctl(u, UFFDIO_REGISTER, &r) < 0)
		goto out;
	struct uffdio_continue c = { .range = { (uintptr_t)b, ps }, .mode = UFFDIO_CONTINUE_MODE_WP };
	if (ioctl(u, UFFDIO_CONTINUE, &c) == 0)
		continue_wp_ok = 1;
out:
	if (u >= 0)
		close(u);
	if (a != MAP_FAILED)
		munmap(a, ps);
	if (b != MAP_FAILED)
		munmap(b, ps);
	if (mfd >= 0)
		close(mfd);
}

bool vmo__uffd_continue_wp_supported(void)
{
	pthread_once(&continue_wp_once, probe_continue_wp);
	return continue_wp_ok == 1;
}

/* "always [within_size] advise never": the bracketed word, if it lets a
 * write allocate large folios with no mapping's advice. */
static int thp_word(const char *path)
{
	char buf[128];
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *a = strchr(buf, '['), *b = a ? strchr(a, ']') : NULL;
	if (!a || !b)
		return -1;
	*b = 0;
	a++;
	return !strcmp(a, "always") || !strcmp(a, "within_size") || !strcmp(a, "force");
}

unsigned vmo__shmem_folio_orders(void)
{
	if (vmo__uffd_disabled() & VMO__DIS_LARGE_FOLIOS)
		return 0;
	/* A memfd lives on the kernel's internal shmem mount, whose huge
	 * setting is the global shmem_enabled: the per-size files
	 * (hugepages-NkB/shmem_enabled, 6.11) are for anonymous shared
	 * mappings, not a write to a memfd.  Measured on 6.18: with the global
	 * within_size, a pwrite of any size into an empty, aligned 2 MiB block
	 * inside the file gets one 2 MiB folio (stats/shmem_alloc of
	 * hugepages-2048kB), with the per-size 64 KiB one at within_size and
	 * the global never, none. */
	if (thp_word("/sys/kernel/mm/transparent_hugepage/shmem_enabled") <= 0)
		return 0;
	long pmd = vmo__read_long("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", 0);
	unsigned order = 0;
	for (long sz = pmd / 4096; sz > 1; sz >>= 1)
		order++;
	return order ? 1u << order : 0;
}

static int pagemap_scan_ok = -1;
static pthread_once_t pmscan_once = PTHREAD_ONCE_INIT;

static void probe_pmscan(void)
{
	pagemap_scan_ok = 0;
	if (vmo__uffd_disabled() & VMO__DIS_PAGEMAP_SCAN)
		return;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	long psz = sysconf(_SC_PAGESIZE);
	void *p = mmap(NULL, (size_t)psz, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p != MAP_FAILED) {
		struct page_region r;
		struct pm_scan_arg a = { .size = sizeof a,
					 .start = (uintptr_t)p,
					 .end = (uintptr_t)p + (uintptr_t)psz,
					 .vec = (uintptr_t)&r,
					 .vec_len = 1,
					 .category_mask = PAGE_IS_PRESENT,
					 .return_mask = PAGE_IS_PRESENT };
		if (ioctl(fd, PAGEMAP_SCAN, &a) >= 0)
			pagemap_scan_ok = 1;
		munmap(p, (size_t)psz);
	}
	close(fd);
}

bool vmo__pagemap_scan_supported(void)
{
	pthread_once(&pmscan_once, probe_pmscan);
	return pagemap_scan_ok == 1;
}

int vmo__uffd_open(struct vmo__uffd *u, uint64_t want, uint64_t need, unsigned flags)
{
	bool nonblock = flags & VMO__UFFD_NONBLOCK, user_only = flags & VMO__UFFD_USER_ONLY;
	memset(u, 0, sizeof *u);
	u->fd = -1;
	uint64_t have = vmo__uffd_kernel_features();
	if ((have & need) != need) {
		int fd0;
		bool dev0, umo0;
		/* Tell "no uffd at all" apart from "uffd without a feature". */
		fd0 = open_raw(true, user_only, &dev0, &umo0);
		if (fd0 < 0)
			return fd0;
		close(fd0);
		vmo__set_detail("the running kernel lacks userfaultfd features %#llx (has %#llx)",
				(unsigned long long)(need & ~have), (unsigned long long)have);
		return -EOPNOTSUPP;
	}
	bool dev, umo;
	int fd = open_raw(nonblock, user_only, &dev, &umo);
	if (fd < 0)
		return fd;
	struct uffdio_api api = { .api = UFFD_API, .features = want & have };
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int err = -errno;
		vmo__set_detail("UFFDIO_API with features %#llx failed: %s",
				(unsigned long long)(want & have), strerror(-err));
		close(fd);
		return err;
	}
	u->fd = fd;
	u->features = want & have;
	u->ioctls = api.ioctls;
	u->dev = dev;
	u->user_mode_only = umo;
	return 0;
}

void vmo__uffd_close(struct vmo__uffd *u)
{
	if (u->fd >= 0)
		close(u->fd);
	u->fd = -1;
}

int vmo__uffd_register(struct vmo__uffd *u, void *addr, size_t len, uint64_t modes)
{
	struct uffdio_register r = { .range = { .start = (uintptr_t)addr, .len = len }, .mode = modes };
	if (ioctl(u->fd, UFFDIO_REGISTER, &r) < 0)
		return -errno;
	return 0;
}

int vmo__uffd_unregister(struct vmo__uffd *u, void *addr, size_t len)
{
	struct uffdio_range r = { .start = (uintptr_t)addr, .len = len };
	if (ioctl(u->fd, UFFDIO_UNREGISTER, &r) < 0)
		return -errno;
	return 0;
}

static bool drain(struct vmo__uffd *u)
{
	if (u->drain)
		return u->drain(u->drain_arg);
	sched_yield();
	return false;
}

/* The fill ioctls (COPY, CONTINUE, POISON, MOVE) share one retry loop: one
 * ioctl covers [off, len) and the kernel reports progress (bytes, or -errno)
 * in a field of the argument; a partial result is continued from where it
 * stopped, and EAGAIN (an mm change pending) drains events and retries. */
struct fill_op {
	unsigned long req;  /* the ioctl */
	uintptr_t dst, src; /* src: COPY and MOVE only */
	uint64_t mode;
	bool skip_eexist;   /* POISON: skip a page that is there, do the rest,
			     * and say -EEXIST at the end */
};

static int fill_loop(struct vmo__uffd *u, const struct fill_op *op, size_t len, size_t *done)
{
	size_t off = 0;
	int ret = 0;
	bool skipped = false;
	uint64_t t0 = 0;
	for (int tries = 0; off < len;) {
		union {
			struct uffdio_copy copy;
			struct uffdio_continue cont;
			struct uffdio_poison poison;
			struct uffdio_move move;
		} a;
		__s64 *progress;
		memset(&a, 0, sizeof a);
		switch (op->req) {
		case UFFDIO_COPY:
			a.copy = (struct uffdio_copy){ .dst = op->dst + off, .src = op->src + off, .len = len - off,
						       .mode = op->mode };
			progress = &a.copy.copy;
			break;
		case UFFDIO_CONTINUE:
			a.cont = (struct uffdio_continue){ .range = { .start = op->dst + off, .len = len - off },
							   .mode = op->mode };
			progress = &a.cont.mapped;
			break;
		case UFFDIO_POISON:
			a.poison = (struct uffdio_poison){ .range = { .start = op->dst + off, .len = len - off },
							   .mode = op->mode };
			progress = &a.poison.updated;
			break;
		default: /* UFFDIO_MOVE */
			a.move = (struct uffdio_move){ .dst = op->dst + off, .src = op->src + off, .len = len - off,
						       .mode = op->mode };
			progress = &a.move.move;
			break;
		}
		int rc = ioctl(u->fd, op->req, &a);
		if (*progress > 0)
			off += (size_t)*progress;
		if (rc == 0)
			continue;
		int err = errno;
		if (err == EAGAIN && eagain_again(&tries, &t0)) {
			if (*progress <= 0 && drain(u)) {
				ret = -ENOENT;
				break;
			}
			continue;
		}
		if (err == EEXIST && op->skip_eexist) {
			off += VMO_PAGE;
			skipped = true;
			continue;
		}
		ret = -err;
		break;
	}
	if (done)
		*done = off;
	return ret ? ret : skipped ? -EEXIST : 0;
}

int vmo__uffd_copy(struct vmo__uffd *u, void *dst, const void *src, size_t len, bool wp, bool wake, size_t *done)
{
	struct fill_op op = { UFFDIO_COPY, (uintptr_t)dst, (uintptr_t)src,
			      (wp ? UFFDIO_COPY_MODE_WP : 0) | (wake ? 0 : UFFDIO_COPY_MODE_DONTWAKE), false };
	return fill_loop(u, &op, len, done);
}

int vmo__uffd_continue(struct vmo__uffd *u, void *dst, size_t len, bool wp, bool wake, size_t *done)
{
	struct fill_op op = { UFFDIO_CONTINUE, (uintptr_t)dst, 0,
			      (wp ? UFFDIO_CONTINUE_MODE_WP : 0) | (wake ? 0 : UFFDIO_CONTINUE_MODE_DONTWAKE), false };
	return fill_loop(u, &op, len, done);
}

int vmo__uffd_poison(struct vmo__uffd *u, void *dst, size_t len)
{
	if (!(u->features & UFFD_FEATURE_POISON))
		return -EOPNOTSUPP;
	struct fill_op op = { UFFDIO_POISON, (uintptr_t)dst, 0, 0, true };
	return fill_loop(u, &op, len, NULL);
}

int vmo__uffd_move(struct vmo__uffd *u, void *dst, void *src, size_t len, bool allow_holes, size_t *done)
{
	if (!(u->features & UFFD_FEATURE_MOVE))
		return -EOPNOTSUPP;
	struct fill_op op = { UFFDIO_MOVE, (uintptr_t)dst, (uintptr_t)src,
			      allow_holes ? UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES : 0, false };
	return fill_loop(u, &op, len, done);
}

int vmo__uffd_wake(struct vmo__uffd *u, void *addr, size_t len)
{
	struct uffdio_range r = { .start = (uintptr_t)addr, .len = len };
	if (ioctl(u->fd, UFFDIO_WAKE, &r) < 0)
		return -errno;
	return 0;
}

int vmo__uffd_writeprotect(struct vmo__uffd *u, void *addr, size_t len, bool wp, bool wake)
{
	struct uffdio_writeprotect w = { .range = { .start = (uintptr_t)addr, .len = len },
					 /* the kernel takes DONTWAKE only when unprotecting */
					 .mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP
						    : (wake ? 0 : UFFDIO_WRITEPROTECT_MODE_DONTWAKE) };
	uint64_t t0 = 0;
	for (int tries = 0;;) {
		if (ioctl(u->fd, UFFDIO_WRITEPROTECT, &w) == 0)
			return 0;
		if (errno != EAGAIN || !eagain_again(&tries, &t0))
			return -errno;
		if (drain(u))
			return -ENOENT;
	}
}

int vmo__pagemap_collect_written(int pagemap_fd, uintptr_t start, uintptr_t end,
				 void (*cb)(void *arg, uintptr_t s, uintptr_t e), void *arg)
{
	struct page_region vec[256];
	while (start < end) {
		struct pm_scan_arg a = { .size = sizeof a,
					 .flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
					 .start = start,
					 .end = end,
					 .vec = (uintptr_t)vec,
					 .vec_len = VMO_ARRAY_SIZE(vec),
					 /* Present AND written: the kernel also calls a
					  * hole (no PTE, no marker) "written". */
					 .category_mask = PAGE_IS_WRITTEN | PAGE_IS_PRESENT,
					 .return_mask = PAGE_IS_WRITTEN | PAGE_IS_PRESENT };
		long n = ioctl(pagemap_fd, PAGEMAP_SCAN, &a);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (long i = 0; i < n; i++)
			cb(arg, (uintptr_t)vec[i].start, (uintptr_t)vec[i].end);
		if (a.walk_end <= start)
			return -EIO;
		start = (uintptr_t)a.walk_end;
	}
	return 0;
}

/* cachestat(2) (6.5): how many pages of a file range are in the page cache,
 * in time proportional to the range.  lseek(SEEK_HOLE) answers the same
 * question but walks from off to the first hole: to the end of a memfd that
 * is all resident, which made each writeback run cost the object's size. */
#ifndef SYS_cachestat
#define SYS_cachestat 451
#endif
struct cs_range {
	uint64_t off, len;
};
struct cs {
	uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};
static _Atomic int cachestat_ok = 1;

int vmo__memfd_hole(int fd, uint64_t off, uint64_t len, uint64_t *hole)
{
	if (atomic_load_explicit(&cachestat_ok, memory_order_relaxed)) {
		struct cs_range r = { off, len };
		struct cs c;
		if (syscall(SYS_cachestat, fd, &r, &c, 0) == 0) {
			if (c.nr_cache * VMO_PAGE == len)
				return 0; /* every page there */
			/* fewer: a hole (found below); more: a large folio counted
			 * past the range, so ask exactly */
		} else if (errno == ENOSYS || errno == EPERM) {
			atomic_store(&cachestat_ok, 0);
		}
	}
	off_t h = lseek(fd, (off_t)off, SEEK_HOLE);
	if (h < 0)
		return -errno;
	if ((uint64_t)h >= off + len)
		return 0;
	*hole = (uint64_t)h;
	return 1;
}

int vmo__uffd_read(struct vmo__uffd *u, struct uffd_msg *msgs, int n)
{
	ssize_t r = read(u->fd, msgs, sizeof(*msgs) * (size_t)n);
	if (r < 0)
		return errno == EAGAIN ? 0 : -errno;
	return (int)((size_t)r / sizeof(*msgs));
}

/* ---- serving a userfaultfd nobody serves any more ------------------------------ */

static void orphan_fault(struct vmo__uffd *u, const struct uffd_msg *msg)
{
	uintptr_t a = (uintptr_t)msg->arg.pagefault.address & ~(uintptr_t)(VMO_PAGE - 1);
	uint64_t fl = msg->arg.pagefault.flags;
	if (fl & UFFD_PAGEFAULT_FLAG_WP) {
		/* Nobody will write it back, but it is the process's memory. */
		if (vmo__uffd_writeprotect(u, (void *)a, VMO_PAGE, false, true))
			vmo__uffd_wake(u, (void *)a, VMO_PAGE);
		return;
	}
	if (fl & UFFD_PAGEFAULT_FLAG_MINOR) { /* in memory: map it */
		if (vmo__uffd_continue(u, (void *)a, VMO_PAGE, false, true, NULL))
			vmo__uffd_wake(u, (void *)a, VMO_PAGE);
		return;
	}
	/* Not in memory, and nobody to fetch it: SIGBUS, never a zero page. */
	if ((u->features & UFFD_FEATURE_POISON) && vmo__uffd_poison(u, (void *)a, VMO_PAGE) == 0)
		return;
	pid_t tid = (pid_t)msg->arg.pagefault.feat.ptid;
	siginfo_t si;
	memset(&si, 0, sizeof si);
	si.si_signo = SIGBUS;
	si.si_code = BUS_ADRERR;
	si.si_addr = (void *)(uintptr_t)msg->arg.pagefault.address;
	if (tid <= 0 || syscall(SYS_rt_tgsigqueueinfo, getpid(), tid, SIGBUS, &si) < 0)
		kill(getpid(), SIGBUS);
	/* (a thread in a user-mode fault is woken by the signal; this wakes
	 * one in a kernel-mode fault, which then fails with EFAULT) */
	vmo__uffd_wake(u, (void *)a, VMO_PAGE);
}

void vmo__uffd_serve_orphan(struct vmo__uffd *u, int stopfd)
{
	for (;;) {
		struct pollfd pf[2] = { { .fd = u->fd, .events = POLLIN }, { .fd = stopfd, .events = POLLIN } };
		if (poll(pf, stopfd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
			return;
		if (stopfd >= 0 && pf[1].revents)
			return;
		struct uffd_msg msgs[16];
		int n = vmo__uffd_read(u, msgs, 16);
		if (n < 0 && n != -EAGAIN && n != -EINTR)
			return;
		for (int i = 0; i < n; i++)
			if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
				orphan_fault(u, &msgs[i]);
		/* (events need nothing: read, they are done) */
	}
}
