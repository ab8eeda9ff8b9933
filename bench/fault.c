/* bench/fault: cost of first touches, vmo against the floor of the mechanism.
 *
 *   floor   a minimal userfaultfd handler: one thread, blocking read,
 *           UFFDIO_COPY of one page from RAM, nothing else (anonymous memory)
 *   vmo     an object over the memory pager (pages served from RAM)
 *   kernel  mmap of the same data in a file already in the page cache
 *
 * Random: every page of the region touched once in a random order.
 * Sequential: every page in order, vmo with read-ahead and without.
 * Each figure is the median of REPS runs, interleaved; ratios are taken
 * within this run.  Env: VMO_BENCH_PAGES (default 32768), VMO_BENCH_REPS (5). */
#include "vmo.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PG 4096ul

static size_t npages;
static char *src; /* the data, in RAM */
static uint32_t *order_rand, *order_seq;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "bench/fault: %s: %s\n", what, vmo_strerror(err));
	exit(1);
}

static volatile uint64_t sink;

/* Touch every page in order[]; returns ns per page and checks the data. */
static double touch(const char *base, const uint32_t *order)
{
	uint64_t sum = 0, t0 = now_ns();
	for (size_t i = 0; i < npages; i++)
		sum += *(const volatile uint64_t *)(base + (size_t)order[i] * PG);
	uint64_t t1 = now_ns();
	sink = sum;
	for (size_t i = 0; i < npages; i += 97)
		if (memcmp(base + i * PG, src + i * PG, PG)) {
			fprintf(stderr, "bench/fault: data mismatch at page %zu\n", i);
			exit(1);
		}
	return (double)(t1 - t0) / (double)npages;
}

/* ---- the floor: a minimal userfaultfd handler ---------------------------- */

struct floor_ctx {
	int uffd;
	char *base;
};

static void *floor_handler(void *arg)
{
	struct floor_ctx *c = arg;
	struct uffd_msg msg;
	for (;;) {
		ssize_t r = read(c->uffd, &msg, sizeof msg);
		if (r != sizeof msg) {
			if (r < 0 && errno == EINTR)
				continue;
			return NULL; /* closed */
		}
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		uintptr_t a = (uintptr_t)msg.arg.pagefault.address & ~(PG - 1);
		struct uffdio_copy cp = { .dst = a, .src = (uintptr_t)src + (a - (uintptr_t)c->base), .len = PG };
		ioctl(c->uffd, UFFDIO_COPY, &cp);
	}
}

static double run_floor(const uint32_t *order)
{
	struct floor_ctx c;
	c.uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */);
	if (c.uffd < 0)
		die("userfaultfd", -errno);
	struct uffdio_api api = { .api = UFFD_API };
	if (ioctl(c.uffd, UFFDIO_API, &api))
		die("UFFDIO_API", -errno);
	size_t len = npages * PG;
	c.base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct uffdio_register reg = { .range = { (uintptr_t)c.base, len }, .mode = UFFDIO_REGISTER_MODE_MISSING };
	if (ioctl(c.uffd, UFFDIO_REGISTER, &reg))
		die("UFFDIO_REGISTER", -errno);
	pthread_t th;
	pthread_create(&th, NULL, floor_handler, &c);
	double ns = touch(c.base, order);
	pthread_cancel(th);
	pthread_join(th, NULL);
	close(c.uffd);
	munmap(c.base, len);
	return ns;
}

/* ---- vmo ----------------------------------------------------------------- */

static struct vmo_engine *eng;

static double run_vmo(const uint32_t *order, uint32_t flags, struct vmo_stats *st)
{
	const struct vmo_pager_ops *ops;
	void *ctx;
	int rc = vmo_pager_mem(src, npages * PG, &ops, &ctx);
	if (rc)
		die("vmo_pager_mem", rc);
	struct vmo_object_opts oo = { .flags = flags };
	struct vmo_object *obj;
	if ((rc = vmo_object_create(eng, ops, ctx, &oo, &obj)))
		die("vmo_object_create", rc);
	void *base = NULL;
	if ((rc = vmo_map(obj, 0, npages * PG, VMO_PROT_READ | VMO_PROT_WRITE, &base)))
		die("vmo_map", rc);
	double ns = touch(base, order);
	if (st)
		vmo_object_stats(obj, st);
	vmo_unmap(obj, base, npages * PG);
	vmo_object_unref(obj);
	return ns;
}

/* ---- kernel mmap of a file in the page cache ------------------------------ */

static int datafd = -1;

static double run_kernel(const uint32_t *order)
{
	char *p = mmap(NULL, npages * PG, PROT_READ, MAP_SHARED, datafd, 0);
	if (p == MAP_FAILED)
		die("mmap", -errno);
	double ns = touch(p, order);
	munmap(p, npages * PG);
	return ns;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(void)
{
	const char *e = getenv("VMO_BENCH_PAGES");
	npages = e ? strtoul(e, NULL, 0) : 32768;
	e = getenv("VMO_BENCH_REPS");
	int reps = e ? atoi(e) : 5;
	if (reps < 1 || reps > 64 || npages < 64)
		die("VMO_BENCH_PAGES / VMO_BENCH_REPS out of range", -EINVAL);

	src = mmap(NULL, npages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i < npages * PG / 8; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		((uint64_t *)src)[i] = x;
	}
	order_rand = malloc(npages * sizeof *order_rand);
	order_seq = malloc(npages * sizeof *order_seq);
	for (size_t i = 0; i < npages; i++)
		order_rand[i] = order_seq[i] = (uint32_t)i;
	for (size_t i = npages - 1; i > 0; i--) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t j = x % (i + 1);
		uint32_t t = order_rand[i];
		order_rand[i] = order_rand[j];
		order_rand[j] = t;
	}
	char path[] = "/tmp/vmo-bench-XXXXXX";
	datafd = mkstemp(path);
	if (datafd < 0 || write(datafd, src, npages * PG) != (ssize_t)(npages * PG))
		die("data file", -errno);
	unlink(path);
	fsync(datafd);

	const char *w = getenv("VMO_BENCH_WORKERS");
	struct vmo_engine_opts eo = { .workers = w ? (unsigned)atoi(w) : 0 };
	int rc = vmo_engine_create(&eo, &eng);
	if (rc)
		die(vmo_last_error_detail(), rc);

	double fr[64], vr[64], kr[64], fs[64], vs[64], vsn[64], ks[64];
	struct vmo_stats st_seq = { 0 };
	run_floor(order_seq); /* warm up */
	for (int r = 0; r < reps; r++) {
		fr[r] = run_floor(order_rand);
		vr[r] = run_vmo(order_rand, 0, NULL);
		kr[r] = run_kernel(order_rand);
		fs[r] = run_floor(order_seq);
		vs[r] = run_vmo(order_seq, 0, &st_seq);
		vsn[r] = run_vmo(order_seq, VMO_OBJ_NO_READAHEAD, NULL);
		ks[r] = run_kernel(order_seq);
	}
	double mfr = median(fr, reps), mvr = median(vr, reps), mkr = median(kr, reps);
	double mfs = median(fs, reps), mvs = median(vs, reps), mvsn = median(vsn, reps), mks = median(ks, reps);
	printf("pages=%zu\nreps=%d\n", npages, reps);
	printf("random_floor_ns_per_page=%.0f\n", mfr);
	printf("random_vmo_ns_per_page=%.0f\n", mvr);
	printf("random_kernel_mmap_ns_per_page=%.0f\n", mkr);
	printf("random_vmo_over_floor=%.3f\n", mvr / mfr);
	printf("seq_floor_ns_per_page=%.0f\n", mfs);
	printf("seq_vmo_ns_per_page=%.0f\n", mvs);
	printf("seq_vmo_noreadahead_ns_per_page=%.0f\n", mvsn);
	printf("seq_kernel_mmap_ns_per_page=%.0f\n", mks);
	printf("seq_readahead_speedup=%.2f\n", mvsn / mvs);
	printf("seq_vmo_over_floor=%.3f\n", mvs / mfs);
	printf("seq_faults_per_page=%.4f\n", (double)st_seq.faults / (double)npages);
	vmo_engine_destroy(eng);
	return 0;
}
