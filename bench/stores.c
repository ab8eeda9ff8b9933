/* SPDX-License-Identifier: MIT */
/* bench/stores: the stores of docs/stores.md, in one run against baselines.
 *
 *   per store (mem: the baseline, RAM through the memory pager; file; swap;
 *   lz4 and zstd with no lower store; nbd: nbdkit's memory plugin on a Unix
 *   socket), an object of VMO_BENCH_MIB (default 64) written once, with its
 *   budget at 25% of it:
 *     STORE_rand_ns: a random touch (a fault: 3 in 4 pages are out; one
 *       page per fault), and STORE_rand_vs_mem;
 *     STORE_seq_mibs: a sequential scan (read-ahead on), and _vs_mem;
 *     nbd_rand_vs_file, nbd_seq_vs_file: NBD against the file store;
 *   compression, on text-like and random pages: the store's write callback
 *   (compress, allocate, keep) against LZ4_compress_fast / ZSTD_compressCCtx
 *   of the same pages: ALGO_DATA_ratio (bytes in / bytes kept),
 *   ALGO_DATA_mibs, ALGO_DATA_vs_raw (the store's time over the library's);
 *   NBD with 1 ms added to each read (nbdkit's delay filter, 64 threads):
 *   32 threads touching random pages.  Synchronous reads (the store waits
 *   for each; one engine worker: one read at a time) against asynchronous
 *   supply (up to 32 on the wire): nbd_delay_sync_pps,
 *   nbd_delay_async_pps, nbd_inflight_speedup (target >= 10),
 *   nbd_inflight_peak; and the synchronous store with the default two
 *   workers (two at a time), nbd_delay_sync2_pps and
 *   nbd_inflight_speedup_vs_sync2. */
#include "lib/common.h"

#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

static char dir[128];

static void cleanup(void)
{
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench: could not remove %s\n", dir);
}

/* nbdkit serving on sock; returns once it accepts connections: it writes
 * its pidfile (-P) only then (the socket file exists from bind(), before
 * listen()). */
static pid_t nbdkit(const char *sock, const char *const *args)
{
	char pidf[320];
	snprintf(pidf, sizeof pidf, "%s.pid", sock);
	unlink(sock);
	unlink(pidf);
	pid_t pid = fork();
	if (pid < 0)
		die("fork", -errno);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		const char *argv[18] = { "nbdkit", "-f", "-P", pidf, "-U", sock };
		int n = 6;
		for (int i = 0; args[i] && n < 17; i++)
			argv[n++] = args[i];
		argv[n] = NULL;
		execvp("nbdkit", (char *const *)argv);
		_exit(127);
	}
	struct stat st;
	for (int i = 0; i < 1000 && (stat(pidf, &st) || st.st_size == 0); i++)
		usleep(10000);
	if (stat(pidf, &st) || st.st_size == 0)
		die("nbdkit did not start (is it installed? scripts/deps.sh)", -ENOENT);
	return pid;
}

static void nbdkit_stop(pid_t pid)
{
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

static void fill_text(char *p, uint64_t pg)
{
	static const char words[] = "the quick brown fox jumps over the lazy dog while the pager writes back ";
	for (size_t i = 0; i < PG; i++)
		p[i] = words[(i * 3 + pg * 7 + (i >> 9)) % (sizeof words - 1)];
	memcpy(p, &pg, 8);
}

struct result {
	double rand_ns, seq_mibs;
};

/* An object of npages from the store (ops, ctx), written once, budget 25%. */
static struct result run_store(struct vmo_engine *eng, const struct vmo_pager_ops *ops, void *ctx, size_t npages,
			       const char *src, const uint32_t *perm)
{
	size_t len = npages * PG;
	struct vmo_object_opts oo = { .size = len, .budget = len / 4, .readahead_max = 1 };
	struct vmo_object *o;
	int rc = vmo_object_create(eng, ops, ctx, &oo, &o);
	if (rc)
		die("vmo_object_create", rc);
	char *p;
	if ((rc = vmo_map(o, 0, len, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&p)))
		die("vmo_map", rc);
	memcpy(p, src, len);
	if ((rc = vmo_return(o, VMO_WAIT)))
		die("vmo_return", rc);
	/* random touches: most pages are out (the budget is a quarter) */
	uint64_t sum = 0, t0 = now_ns();
	size_t n = npages;
	for (size_t i = 0; i < n; i++)
		sum += (unsigned char)p[(size_t)perm[i] * PG + 1];
	struct result r;
	r.rand_ns = (double)(now_ns() - t0) / (double)n;
	if ((rc = vmo_return(o, VMO_WAIT)))
		die("vmo_return", rc);
	vmo_unmap(o, p, len);
	/* sequential, with read-ahead (64 pages) */
	if ((rc = vmo_object_change_attributes(o, 0, 64)))
		die("vmo_object_change_attributes", rc);
	if ((rc = vmo_map(o, 0, len, VMO_PROT_READ, (void **)&p)))
		die("vmo_map", rc);
	t0 = now_ns();
	for (size_t i = 0; i < npages; i++)
		sum += (unsigned char)p[i * PG + 2];
	r.seq_mibs = (double)len / 1048576.0 / ((double)(now_ns() - t0) / 1e9);
	if (memcmp(p, src, len))
		die("the data did not come back", -EIO);
	vmo_unmap(o, p, len);
	vmo_object_unref(o);
	if (sum == 1)
		fputc(' ', stderr);
	return r;
}

/* ---- compression against the libraries ---------------------------------------------- */

static void bench_compress(const char *name, uint32_t algo, const char *data, size_t npages)
{
	struct vmo_compress_opts co = { .algo = algo, .size = npages * PG };
	const struct vmo_pager_ops *ops;
	void *ctx;
	int rc = vmo_pager_compress(&co, &ops, &ctx);
	if (rc)
		die("vmo_pager_compress", rc);
	uint64_t t0 = now_ns();
	for (size_t i = 0; i < npages; i++)
		if ((rc = ops->write(ctx, i * PG, data + i * PG, PG)))
			die("compressed store write", rc);
	double store_s = (double)(now_ns() - t0) / 1e9;
	struct vmo_compress_stats st;
	vmo_pager_compress_stats(ctx, &st);
	ops->release(ctx);
	/* the same pages, the library alone */
	char out[2 * PG + 1024];
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	uint64_t raw_bytes = 0;
	t0 = now_ns();
	for (size_t i = 0; i < npages; i++) {
		size_t n;
		if (algo == VMO_COMPRESS_ZSTD)
			n = ZSTD_compressCCtx(cc, out, sizeof out, data + i * PG, PG, ZSTD_CLEVEL_DEFAULT);
		else
			n = (size_t)LZ4_compress_fast(data + i * PG, out, PG, (int)sizeof out, 1);
		raw_bytes += n < PG ? n : PG;
	}
	double raw_s = (double)(now_ns() - t0) / 1e9;
	ZSTD_freeCCtx(cc);
	double mib = (double)(npages * PG) / 1048576.0;
	printf("%s_ratio=%.2f\n", name, (double)st.bytes_in / (double)st.bytes_out);
	printf("%s_lib_ratio=%.2f\n", name, (double)(npages * PG) / (double)raw_bytes);
	printf("%s_mibs=%.0f\n", name, mib / store_s);
	printf("%s_lib_mibs=%.0f\n", name, mib / raw_s);
	printf("%s_vs_raw=%.2f\n", name, store_s / raw_s);
}

/* ---- NBD: requests in flight ------------------------------------------------------------- */

struct toucher {
	char *p;
	size_t npages;
	unsigned idx, nthreads;
	const uint32_t *perm;
	_Atomic uint64_t *count;
	uint64_t deadline;
};

static void *touch_main(void *arg)
{
	struct toucher *t = arg;
	uint64_t sum = 0;
	for (size_t i = t->idx; i < t->npages && now_ns() < t->deadline; i += t->nthreads) {
		sum += (unsigned char)t->p[(size_t)t->perm[i] * PG + 3];
		atomic_fetch_add(t->count, 1);
	}
	return (void *)(uintptr_t)sum;
}

static double nbd_pps(struct vmo_engine *eng, const char *uri, bool async, const uint32_t *perm, size_t npages,
		      uint64_t *peak)
{
	struct vmo_object_opts oo = { .size = npages * PG, .flags = VMO_OBJ_NO_READAHEAD };
	struct vmo_object *o;
	int rc;
	if (async) {
		rc = vmo_object_create_uri(eng, uri, &oo, &o);
	} else {
		const struct vmo_pager_ops *ops;
		void *ctx;
		rc = vmo_store_open(uri, oo.size, 0, &ops, &ctx);
		if (!rc)
			rc = vmo_object_create(eng, ops, ctx, &oo, &o);
	}
	if (rc)
		die("nbd object", rc);
	char *p;
	if ((rc = vmo_map(o, 0, npages * PG, VMO_PROT_READ, (void **)&p)))
		die("vmo_map", rc);
	enum { T = 32 };
	pthread_t th[T];
	struct toucher tt[T];
	_Atomic uint64_t count = 0;
	uint64_t t0 = now_ns(), deadline = t0 + 2000000000ull;
	for (unsigned i = 0; i < T; i++) {
		tt[i] = (struct toucher){ p, npages, i, T, perm, &count, deadline };
		pthread_create(&th[i], NULL, touch_main, &tt[i]);
	}
	for (unsigned i = 0; i < T; i++)
		pthread_join(th[i], NULL);
	double s = (double)(now_ns() - t0) / 1e9;
	struct vmo_nbd_stats st;
	if (vmo_pager_nbd_stats(vmo_object_ctx(o), &st) == 0)
		*peak = st.inflight_peak;
	vmo_unmap(o, p, npages * PG);
	vmo_object_unref(o);
	return (double)atomic_load(&count) / s;
}

int main(void)
{
	size_t mib = env_ul("VMO_BENCH_MIB", 64), npages = mib << 8, len = npages * PG;
	snprintf(dir, sizeof dir, "/dev/shm/vmo-bench-stores-XXXXXX");
	if (!mkdtemp(dir))
		die("mkdtemp", -errno);
	atexit(cleanup);
	char *src = malloc(len);
	for (size_t i = 0; i < npages; i++)
		fill_text(src + i * PG, i);
	uint32_t *perm = make_perm(npages, 5);
	struct vmo_engine *eng;
	int rc = vmo_engine_create(NULL, &eng);
	if (rc)
		die("vmo_engine_create", rc);
	printf("mib=%zu\nbudget_pct=25\n", mib);

	/* (VMO_BENCH_ONLY=nbd_delay: that part alone, for profiling) */
	const char *only = getenv("VMO_BENCH_ONLY");
	bool all = !only || !*only;
	/* the stores, each against mem */
	char sock[200], uri[400], path[300];
	snprintf(sock, sizeof sock, "%s/nbd.sock", dir);
	char size_arg[64];
	snprintf(size_arg, sizeof size_arg, "size=%zu", len);
	const char *const mem_args[] = { "memory", size_arg, NULL };
	pid_t nk = all ? nbdkit(sock, mem_args) : 0;
	struct {
		const char *name;
		char uri[400];
	} stores[] = { { "mem", "" }, { "file", "" }, { "swap", "" }, { "lz4", "lz4" }, { "zstd", "zstd" }, { "nbd", "" } };
	snprintf(stores[1].uri, sizeof stores[1].uri, "file:%s/file", dir);
	snprintf(stores[2].uri, sizeof stores[2].uri, "swap:%s", dir);
	snprintf(stores[5].uri, sizeof stores[5].uri, "nbd+unix:///?socket=%s", sock);
	struct result base = { 0 }, filer = { 0 };
	char *membuf = malloc(len);
	for (size_t k = 0; all && k < sizeof stores / sizeof *stores; k++) {
		const struct vmo_pager_ops *ops;
		void *ctx;
		if (k == 0) {
			memset(membuf, 0, len);
			rc = vmo_pager_mem(membuf, len, &ops, &ctx);
		} else {
			rc = vmo_store_open(stores[k].uri, len, 0, &ops, &ctx);
		}
		if (rc)
			die(stores[k].name, rc);
		struct result r = run_store(eng, ops, ctx, npages, src, perm);
		if (k == 0)
			base = r;
		if (k == 1)
			filer = r;
		printf("%s_rand_ns=%.0f\n", stores[k].name, r.rand_ns);
		printf("%s_seq_mibs=%.0f\n", stores[k].name, r.seq_mibs);
		if (k) {
			printf("%s_rand_vs_mem=%.2f\n", stores[k].name, r.rand_ns / base.rand_ns);
			printf("%s_seq_vs_mem=%.2f\n", stores[k].name, r.seq_mibs / base.seq_mibs);
		}
		if (k == 5) { /* NBD against the file store */
			printf("nbd_rand_vs_file=%.2f\n", r.rand_ns / filer.rand_ns);
			printf("nbd_seq_vs_file=%.2f\n", r.seq_mibs / filer.seq_mibs);
		}
	}
	if (all)
		nbdkit_stop(nk);
	(void)path;

	/* compression: text-like and random pages */
	size_t cpages = npages < 8192 ? npages : 8192;
	char *rnd = make_data(cpages, 9);
	if (all) {
		bench_compress("lz4_text", VMO_COMPRESS_LZ4, src, cpages);
		bench_compress("lz4_random", VMO_COMPRESS_LZ4, rnd, cpages);
		bench_compress("zstd_text", VMO_COMPRESS_ZSTD, src, cpages);
		bench_compress("zstd_random", VMO_COMPRESS_ZSTD, rnd, cpages);
	}

	/* NBD with 1 ms per read: waiting vs in flight */
	unsigned long delay_ms = env_ul("VMO_BENCH_NBD_DELAY_MS", 1);
	char delay_arg[64];
	snprintf(delay_arg, sizeof delay_arg, "rdelay=%lums", delay_ms);
	const char *const delay_args[] = { "-t", "64", "--filter=delay", "memory", size_arg, delay_arg, NULL };
	nk = nbdkit(sock, delay_args);
	snprintf(uri, sizeof uri, "nbd+unix:///?socket=%s", sock);
	uint64_t peak_sync = 0, peak_async = 0;
	struct vmo_engine *eng1;
	if ((rc = vmo_engine_create(&(struct vmo_engine_opts){ .workers = 1 }, &eng1)))
		die("vmo_engine_create", rc);
	double sync_pps = nbd_pps(eng1, uri, false, perm, npages, &peak_sync);
	vmo_engine_destroy(eng1);
	double sync2_pps = nbd_pps(eng, uri, false, perm, npages, &peak_sync);
	double async_pps = nbd_pps(eng, uri, true, perm, npages, &peak_async);
	nbdkit_stop(nk);
	printf("nbd_delay_ms=%lu\nnbd_threads=32\n", delay_ms);
	printf("nbd_delay_sync_pps=%.0f\n", sync_pps);
	printf("nbd_delay_async_pps=%.0f\n", async_pps);
	figure_target("nbd_inflight_speedup", 1, async_pps / sync_pps, ">=", 10);
	printf("nbd_inflight_peak=%llu\n", (unsigned long long)peak_async);
	printf("nbd_delay_sync2_pps=%.0f\n", sync2_pps);
	printf("nbd_inflight_speedup_vs_sync2=%.1f\n", async_pps / sync2_pps);

	vmo_engine_destroy(eng);
	free(src);
	free(membuf);
	free(perm);
	munmap(rnd, cpages * PG);
	return 0;
}
