/* SPDX-License-Identifier: MIT */
/* bench/lib/common.c - the benchmarks' shared helpers (common.h). */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

_Noreturn void die(const char *what, int err)
{
	fprintf(stderr, "bench: %s: %s\n", what, vmo_strerror(err));
	exit(1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void figure_target(const char *key, int decimals, double value, const char *dir, double target)
{
	bool lower = strcmp(dir, "<=") == 0;
	if (!lower && strcmp(dir, ">=")) {
		fprintf(stderr, "bench: figure_target(%s): direction '%s' is neither \"<=\" nor \">=\"\n", key, dir);
		exit(1);
	}
	char shown[64];
	snprintf(shown, sizeof shown, "%.*f", decimals, value);
	double v = strtod(shown, NULL);
	bool met = lower ? v <= target : v >= target;
	printf("%s=%s\n%s_target=%s%g\n%s_status=%s\n", key, shown, key, dir, target, key, met ? "met" : "missed");
}

void samples_init(struct samples *s, size_t cap)
{
	s->n = 0;
	s->cap = cap;
	s->v = malloc((cap ? cap : 1) * sizeof *s->v);
	if (!s->v)
		die("samples_init", -ENOMEM);
	/* touched now, not in the timed loop */
	memset(s->v, 0, (cap ? cap : 1) * sizeof *s->v);
}

void samples_free(struct samples *s)
{
	free(s->v);
	*s = (struct samples){ 0 };
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

uint64_t samples_quantile(struct samples *s, double q)
{
	if (!s->n)
		return 0;
	qsort(s->v, s->n, sizeof *s->v, cmp_u64);
	/* nearest rank: the smallest sample with at least q of them at or below it */
	size_t rank = (size_t)(q * (double)s->n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > s->n)
		rank = s->n;
	return s->v[rank - 1];
}

void samples_report(struct samples *s, const char *key)
{
	const char *dir = getenv("VMO_BENCH_SAMPLES");
	if (dir && *dir) {
		char path[1024];
		snprintf(path, sizeof path, "%s/%s.%s.ns", dir, program_invocation_short_name, key);
		FILE *f = fopen(path, "we");
		if (!f) {
			fprintf(stderr, "bench: cannot write %s (VMO_BENCH_SAMPLES names a directory that must exist): %s\n",
				path, strerror(errno));
			exit(1);
		}
		for (size_t i = 0; i < s->n; i++)
			fprintf(f, "%llu\n", (unsigned long long)s->v[i]);
		if (fclose(f)) {
			fprintf(stderr, "bench: writing %s: %s\n", path, strerror(errno));
			exit(1);
		}
	}
	double sum = 0;
	for (size_t i = 0; i < s->n; i++)
		sum += (double)s->v[i];
	uint64_t p50 = samples_quantile(s, 0.50), p99 = samples_quantile(s, 0.99);
	uint64_t max = s->n ? s->v[s->n - 1] : 0;
	printf("%s_p50_ns=%llu\n%s_p99_ns=%llu\n%s_max_ns=%llu\n%s_mean_ns=%.0f\n%s_samples=%zu\n", key,
	       (unsigned long long)p50, key, (unsigned long long)p99, key, (unsigned long long)max, key,
	       s->n ? sum / (double)s->n : 0.0, key, s->n);
}

uint64_t timer_overhead_ns(void)
{
	struct samples s;
	samples_init(&s, 10001);
	for (int i = 0; i < 10001; i++) {
		uint64_t a = now_ns();
		samples_add(&s, now_ns() - a);
	}
	uint64_t m = samples_quantile(&s, 0.5);
	samples_free(&s);
	return m;
}

unsigned long env_ul(const char *name, unsigned long def)
{
	const char *e = getenv(name);
	return e && *e ? strtoul(e, NULL, 0) : def;
}

char *make_data(size_t npages, uint64_t seed)
{
	char *p = mmap(NULL, npages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p == MAP_FAILED)
		die("mmap", -errno);
	for (size_t i = 0; i < npages * PG / 8; i++)
		((uint64_t *)p)[i] = xorshift(&seed);
	return p;
}

uint32_t *make_perm(size_t n, uint64_t seed)
{
	uint32_t *v = malloc(n * sizeof *v);
	for (size_t i = 0; i < n; i++)
		v[i] = (uint32_t)i;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = xorshift(&seed) % (i + 1);
		uint32_t t = v[i];
		v[i] = v[j];
		v[j] = t;
	}
	return v;
}

struct vmo_object *bench_mem_create(struct vmo_engine *eng, char *src, size_t npages,
				    const struct vmo_object_opts *oo, bool tracked)
{
	static struct vmo_pager_ops untracked;
	const struct vmo_pager_ops *ops;
	void *ctx;
	struct vmo_object *o;
	int rc = vmo_pager_mem(src, npages * PG, &ops, &ctx);
	if (rc)
		die("vmo_pager_mem", rc);
	if (!tracked) {
		untracked = *ops;
		untracked.write = NULL;
		ops = &untracked;
	}
	if ((rc = vmo_object_create(eng, ops, ctx, oo, &o)))
		die(vmo_last_error_detail(), rc);
	return o;
}

struct vmo_object *bench_mem_object(struct vmo_engine *eng, char *src, size_t npages,
				    const struct vmo_object_opts *oo, void **base)
{
	struct vmo_object *o = bench_mem_create(eng, src, npages, oo, true);
	int rc;
	*base = NULL;
	if ((rc = vmo_map(o, 0, npages * PG, VMO_PROT_READ | VMO_PROT_WRITE, base)))
		die("vmo_map", rc);
	return o;
}

/* ---- the floor ------------------------------------------------------------ */

struct floor_ctx {
	int uffd;
	char *base;
	const char *src;
	size_t run, npages; /* pages per UFFDIO_COPY (1: the floor) */
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
			return NULL;
		}
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		uintptr_t a = (uintptr_t)msg.arg.pagefault.address & ~(PG - 1);
		size_t pg = (a - (uintptr_t)c->base) / PG, n = c->run;
		if (pg + n > c->npages)
			n = c->npages - pg;
		struct uffdio_copy cp = { .dst = a, .src = (uintptr_t)c->src + (a - (uintptr_t)c->base), .len = n * PG };
		ioctl(c->uffd, UFFDIO_COPY, &cp);
	}
}

/* The handler of the self-service floor: the faulting thread serves itself
 * in a SIGBUS handler (UFFD_FEATURE_SIGBUS), one UFFDIO_COPY of a page. */
static struct floor_ctx sig_c;

static void sigbus_floor_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	uintptr_t a = (uintptr_t)si->si_addr & ~(PG - 1);
	struct uffdio_copy cp = { .dst = a, .src = (uintptr_t)sig_c.src + (a - (uintptr_t)sig_c.base), .len = PG };
	ioctl(sig_c.uffd, UFFDIO_COPY, &cp);
}

enum floor_kind { FLOOR_THREAD, FLOOR_SIGBUS };

/* Touch pages order[0..n) (all of them in order if order is NULL) of a
 * fresh region of npages registered for MISSING faults: private anonymous
 * memory, or a memfd mapping (shm); each fault answered with one
 * UFFDIO_COPY of `run` pages from src by a handler thread blocked in read,
 * or by the faulting thread in a SIGBUS handler.  ns per touch; -1 where
 * the kernel refuses the mode. */
static double floor_run(const char *src, size_t npages, const uint32_t *order, size_t n, size_t run, bool shm,
			enum floor_kind kind, struct samples *lat)
{
	struct floor_ctx local = { 0 }, *c = kind == FLOOR_SIGBUS ? &sig_c : &local;
	*c = (struct floor_ctx){ .src = src, .run = run, .npages = npages };
	c->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */);
	if (c->uffd < 0)
		die("userfaultfd", -errno);
	struct uffdio_api api = { .api = UFFD_API, .features = kind == FLOOR_SIGBUS ? UFFD_FEATURE_SIGBUS : 0 };
	if (ioctl(c->uffd, UFFDIO_API, &api)) {
		if (kind != FLOOR_SIGBUS)
			die("UFFDIO_API", -errno);
		close(c->uffd);
		return -1;
	}
	size_t len = npages * PG;
	int fd = -1;
	if (shm && ((fd = memfd_create("bench-floor", MFD_CLOEXEC)) < 0 || ftruncate(fd, (off_t)len)))
		die("memfd", -errno);
	c->base = mmap(NULL, len, PROT_READ | PROT_WRITE, shm ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS, fd, 0);
	if (c->base == MAP_FAILED)
		die("mmap", -errno);
	struct uffdio_register reg = { .range = { (uintptr_t)c->base, len }, .mode = UFFDIO_REGISTER_MODE_MISSING };
	if (ioctl(c->uffd, UFFDIO_REGISTER, &reg))
		die("UFFDIO_REGISTER", -errno);
	pthread_t th;
	struct sigaction sa, old;
	if (kind == FLOOR_SIGBUS) {
		memset(&sa, 0, sizeof sa);
		sa.sa_sigaction = sigbus_floor_handler;
		sa.sa_flags = SA_SIGINFO;
		sigaction(SIGBUS, &sa, &old);
	} else {
		pthread_create(&th, NULL, floor_handler, c);
	}
	uint64_t sum = 0, t0 = now_ns();
	if (lat) {
		for (size_t i = 0; i < n; i++) {
			const volatile uint64_t *p = (const volatile uint64_t *)(c->base + (size_t)(order ? order[i] : i) * PG);
			uint64_t a = now_ns();
			sum += *p;
			samples_add(lat, now_ns() - a);
		}
	} else {
		for (size_t i = 0; i < n; i++)
			sum += *(const volatile uint64_t *)(c->base + (size_t)(order ? order[i] : i) * PG);
	}
	uint64_t t1 = now_ns();
	if (sum == 42)
		printf("#\n");
	if (kind == FLOOR_SIGBUS) {
		sigaction(SIGBUS, &old, NULL);
	} else {
		pthread_cancel(th);
		pthread_join(th, NULL);
	}
	close(c->uffd);
	munmap(c->base, len);
	if (fd >= 0)
		close(fd);
	return (double)(t1 - t0) / (double)n;
}

double run_floor(const char *src, size_t npages, const uint32_t *order, size_t n)
{
	return floor_run(src, npages, order, n, 1, false, FLOOR_THREAD, NULL);
}

double run_floor_timed(const char *src, size_t npages, const uint32_t *order, size_t n, struct samples *lat)
{
	return floor_run(src, npages, order, n, 1, false, FLOOR_THREAD, lat);
}

double run_copy_runs(const char *src, size_t npages, size_t run)
{
	return floor_run(src, npages, NULL, npages, run, true, FLOOR_THREAD, NULL);
}

double run_floor_sigbus(const char *src, size_t npages, const uint32_t *order, size_t n)
{
	return floor_run(src, npages, order, n, 1, false, FLOOR_SIGBUS, NULL);
}

double run_floor_sigbus_timed(const char *src, size_t npages, const uint32_t *order, size_t n, struct samples *lat)
{
	return floor_run(src, npages, order, n, 1, false, FLOOR_SIGBUS, lat);
}

double run_memcpy(const char *src, size_t npages)
{
	size_t len = npages * PG;
	char *dst = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (dst == MAP_FAILED)
		die("mmap", -errno);
	/* Timed the second time: on these paravirtual machines the first
	 * touch of memory freed to the host (page_reporting) costs a
	 * hypervisor fault (several us a page), which is not the copy's cost;
	 * run_memfd_write has a fill's own allocation in it. */
	memcpy(dst, src, len);
	uint64_t t0 = now_ns();
	memcpy(dst, src, len);
	uint64_t t1 = now_ns();
	if (dst[len / 2] != src[len / 2])
		die("memcpy", -EIO);
	munmap(dst, len);
	return (double)(t1 - t0) / (double)npages;
}

double run_memfd_write(const char *src, size_t npages)
{
	size_t len = npages * PG, chunk = 2u << 20;
	int fd = memfd_create("bench-write", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)len))
		die("memfd", -errno);
	uint64_t t0 = now_ns();
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		if (pwrite(fd, src + off, n, (off_t)off) != (ssize_t)n)
			die("pwrite", -errno);
	}
	uint64_t t1 = now_ns();
	close(fd);
	return (double)(t1 - t0) / (double)npages;
}

static char vmod_dir[64];

static void vmod_cleanup(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", vmod_dir);
	if (system(cmd))
		fprintf(stderr, "bench: could not remove %s\n", vmod_dir);
}

int bench_start_vmod(char *sock, size_t socklen)
{
	char vmod[512], store[128];
	snprintf(vmod_dir, sizeof vmod_dir, "/dev/shm/vmo-bench-vmod-XXXXXX");
	if (!mkdtemp(vmod_dir))
		die("mkdtemp", -errno);
	atexit(vmod_cleanup);
	const char *env = getenv("VMOD");
	if (env && *env) {
		snprintf(vmod, sizeof vmod, "%s", env);
	} else {
		char self[400];
		ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
		self[n > 0 ? n : 0] = 0;
		char *s = strrchr(self, '/');
		if (s)
			*s = 0;
		snprintf(vmod, sizeof vmod, "%s/../vmod", self);
	}
	snprintf(sock, socklen, "%s/vmod.sock", vmod_dir);
	snprintf(store, sizeof store, "%s/store", vmod_dir);
	pid_t pid = fork();
	if (pid < 0)
		die("fork", -errno);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* (a benchmark that dies leaves no vmod behind) */
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		execl(vmod, "vmod", "--socket", sock, "--dir", store, "--log-level", "warn", (char *)NULL);
		_exit(127);
	}
	/* ready once its socket answers */
	for (int i = 0; i < 400; i++) {
		struct vmo_client *cl;
		if (vmo_client_connect(sock, &cl) == 0) {
			vmo_client_close(cl);
			return pid;
		}
		usleep(10000);
	}
	kill(pid, SIGKILL);
	die("starting vmod (is it built? VMOD names it)", -ECONNREFUSED);
}

void bench_stop_vmod(int pid)
{
	int st;
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
}
