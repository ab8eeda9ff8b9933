/* SPDX-License-Identifier: MIT */
/* bench/dirty: two ways to learn which pages were written, measured on the
 * memory vmo uses (a shared mapping of a memfd, pages present, write-protected).
 *
 *   sync_trap   a write to a clean page traps to a handler thread, which
 *               unprotects it (UFFDIO_WRITEPROTECT) - what vmo does by default;
 *               the floor of that, and vmo itself (including its unlock
 *               callback and bookkeeping)
 *   async       UFFD_FEATURE_WP_ASYNC: the kernel unprotects on its own, no
 *               thread runs; dirty pages are collected later with PAGEMAP_SCAN
 *               (+ re-protect), per page, over a dirty and a clean region
 * Env: VMO_BENCH_PAGES (8192), VMO_BENCH_REPS (5). */
#include "lib/common.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef PAGEMAP_SCAN
#define PAGE_IS_WRITTEN (1 << 1)
struct page_region {
	uint64_t start, end, categories;
};
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
struct pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted, category_mask,
		category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

static size_t npages;

/* A memfd mapping, all pages present, registered WP (and MISSING) on a new
 * uffd with the given features, then write-protected. */
static char *setup(uint64_t features, int *uffd_out, int *memfd_out)
{
	int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | 1);
	if (uffd < 0)
		die("userfaultfd", -errno);
	struct uffdio_api api = { .api = UFFD_API,
				  .features = features | UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_PAGEFAULT_FLAG_WP };
	if (ioctl(uffd, UFFDIO_API, &api))
		die("UFFDIO_API (this kernel lacks a feature)", -errno);
	int mfd = memfd_create("bench", MFD_CLOEXEC);
	size_t len = npages * PG;
	if (ftruncate(mfd, (off_t)len))
		die("ftruncate", -errno);
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, mfd, 0);
	for (size_t i = 0; i < npages; i++)
		p[i * PG] = 1; /* allocate every page */
	struct uffdio_register reg = { .range = { (uintptr_t)p, len }, .mode = UFFDIO_REGISTER_MODE_WP };
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		die("UFFDIO_REGISTER", -errno);
	struct uffdio_writeprotect wp = { .range = { (uintptr_t)p, len }, .mode = UFFDIO_WRITEPROTECT_MODE_WP };
	if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp))
		die("UFFDIO_WRITEPROTECT", -errno);
	*uffd_out = uffd;
	*memfd_out = mfd;
	return p;
}

static void teardown(char *p, int uffd, int mfd)
{
	munmap(p, npages * PG);
	close(uffd);
	close(mfd);
}

static void *wp_handler(void *arg)
{
	int uffd = *(int *)arg;
	struct uffd_msg m;
	for (;;) {
		if (read(uffd, &m, sizeof m) != sizeof m) {
			if (errno == EINTR)
				continue;
			return NULL;
		}
		if (m.event != UFFD_EVENT_PAGEFAULT)
			continue;
		struct uffdio_writeprotect w = { .range = { m.arg.pagefault.address & ~(PG - 1), PG }, .mode = 0 };
		ioctl(uffd, UFFDIO_WRITEPROTECT, &w);
	}
}

static double write_all(char *p, const uint32_t *order)
{
	uint64_t t0 = now_ns();
	for (size_t i = 0; i < npages; i++)
		*(volatile char *)(p + (size_t)order[i] * PG + 8) = 2;
	return (double)(now_ns() - t0) / (double)npages;
}

static double run_sync_floor(const uint32_t *order)
{
	int uffd, mfd;
	char *p = setup(0, &uffd, &mfd);
	pthread_t th;
	pthread_create(&th, NULL, wp_handler, &uffd);
	double ns = write_all(p, order);
	pthread_cancel(th);
	pthread_join(th, NULL);
	teardown(p, uffd, mfd);
	return ns;
}

/* async: first writes, then collection (scan + re-protect) of the dirty
 * region, then a scan of the now clean region. */
static void run_async(const uint32_t *order, double *write_ns, double *scan_dirty_ns, double *scan_clean_ns)
{
	int uffd, mfd;
	char *p = setup(UFFD_FEATURE_WP_ASYNC, &uffd, &mfd);
	*write_ns = write_all(p, order);
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	struct page_region *vec = malloc(npages * sizeof *vec);
	for (int pass = 0; pass < 2; pass++) {
		uint64_t t0 = now_ns(), found = 0;
		struct pm_scan_arg a = { .size = sizeof a,
					 .flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
					 .start = (uintptr_t)p,
					 .end = (uintptr_t)p + npages * PG,
					 .vec = (uintptr_t)vec,
					 .vec_len = npages,
					 .category_mask = PAGE_IS_WRITTEN,
					 .return_mask = PAGE_IS_WRITTEN };
		long n = ioctl(pm, PAGEMAP_SCAN, &a);
		if (n < 0)
			die("PAGEMAP_SCAN", -errno);
		for (long i = 0; i < n; i++)
			found += (vec[i].end - vec[i].start) / PG;
		double ns = (double)(now_ns() - t0) / (double)npages;
		if (pass == 0) {
			if (found != npages)
				die("PAGEMAP_SCAN missed written pages", -EIO);
			*scan_dirty_ns = ns;
		} else {
			if (found != 0)
				die("PAGEMAP_SCAN found pages in a clean region", -EIO);
			*scan_clean_ns = ns;
		}
	}
	free(vec);
	close(pm);
	teardown(p, uffd, mfd);
}

/* vmo: first write to every (clean, resident) page of an object. */
static struct vmo_engine *eng;
static int nop_unlock(void *c, uint64_t o, size_t l) { return 0; }
static int zero_read(void *c, uint64_t o, void *b, size_t l, unsigned *f)
{
	memset(b, 1, l);
	return 0;
}
static int nop_write(void *c, uint64_t o, const void *b, size_t l) { return 0; }
static const struct vmo_pager_ops ops = { .read = zero_read, .write = nop_write, .unlock = nop_unlock };

static double run_vmo(const uint32_t *order)
{
	struct vmo_object_opts oo = { .size = npages * PG };
	struct vmo_object *o;
	char *p;
	int rc = vmo_object_create(eng, &ops, NULL, &oo, &o);
	if (rc || (rc = vmo_map(o, 0, npages * PG, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&p)))
		die("vmo object", rc);
	uint64_t sum = 0;
	for (size_t i = 0; i < npages; i++)
		sum += *(volatile char *)(p + i * PG); /* resident, clean */
	double ns = write_all(p, order);
	struct vmo_stats st;
	vmo_object_stats(o, &st);
	if (st.dirty != npages * PG || sum == 0)
		die("vmo: not every page became dirty", -EIO);
	vmo_unmap(o, p, npages * PG);
	vmo_object_unref(o);
	return ns;
}

int main(void)
{
	npages = env_ul("VMO_BENCH_PAGES", 8192);
	int reps = (int)env_ul("VMO_BENCH_REPS", 5);
	if (reps < 1 || reps > 64 || npages < 64 || npages > (1ul << 22))
		die("VMO_BENCH_PAGES / VMO_BENCH_REPS out of range", -EINVAL);
	uint32_t *order = make_perm(npages, 4242);
	int rc = vmo_engine_create(NULL, &eng);
	if (rc)
		die(vmo_last_error_detail(), rc);
	double sf[64], vm[64], aw[64], asd[64], asc[64];
	for (int r = 0; r < reps; r++) {
		sf[r] = run_sync_floor(order);
		vm[r] = run_vmo(order);
		run_async(order, &aw[r], &asd[r], &asc[r]);
	}
	double msf = median(sf, reps), mvm = median(vm, reps), maw = median(aw, reps);
	double masd = median(asd, reps), masc = median(asc, reps);
	printf("pages=%zu\nreps=%d\n", npages, reps);
	printf("sync_trap_floor_ns_per_page=%.0f\n", msf);
	printf("sync_trap_vmo_ns_per_page=%.0f\n", mvm);
	printf("sync_trap_vmo_over_floor=%.3f\n", mvm / msf);
	printf("async_first_write_ns_per_page=%.0f\n", maw);
	printf("async_scan_dirty_ns_per_page=%.1f\n", masd);
	printf("async_scan_clean_ns_per_page=%.1f\n", masc);
	printf("async_write_plus_scan_ns_per_page=%.0f\n", maw + masd);
	printf("sync_trap_over_async=%.2f\n", msf / (maw + masd));
	vmo_engine_destroy(eng);
	return 0;
}
