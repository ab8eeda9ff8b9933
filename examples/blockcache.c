/* SPDX-License-Identifier: MIT */
/* blockcache.c - a file system's block cache on the yield cache, the way
 * MINIX 3's mfs uses VM "yield": the reader keeps a small pool of its own
 * block buffers; when it needs a buffer for a block it does not hold, it
 * yields the least recently used buffer's block to the cache and asks for
 * the wanted block back in the same call (vmo_cache_yield_get).  A hit costs
 * a copy; a miss reads the block from the file.  Nobody sizes the cache: it
 * holds as much as memory allows and shrinks under pressure.
 *
 *   blockcache [--block KIB] [--pool N] [--reads N] [--hot PCT] [--budget MIB]
 *              [--no-cache] [--buffered] FILE
 *       random block reads of FILE (O_DIRECT, so that the page cache does
 *       not serve as a second block cache), a checksum of every block read;
 *       prints throughput and the cache's figures as key=value lines.
 *   blockcache --bench
 *       makes a 256 MiB file under $TMPDIR (or /var/tmp), reads it without
 *       the cache and with it (same block sequence), prints both, the speedup
 *       and whether the checksums agree.
 *
 * Reads are skewed: with probability --hot % a block from the first quarter
 * of the file, else any block (default 80 %).
 */
#include <vmo.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct buf {
	uint64_t blk; /* block held, or UINT64_MAX */
	uint64_t used; /* LRU clock */
	char *data;
};

struct reader {
	int fd;
	size_t bs;
	uint64_t nblocks;
	struct vmo_cache *cache; /* NULL: no yield cache */
	struct buf *pool;
	unsigned npool;
	uint64_t tick;
	uint64_t disk_reads, pool_hits, cache_hits;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int read_disk(struct reader *r, uint64_t blk, char *data)
{
	size_t got = 0;
	while (got < r->bs) {
		ssize_t n = pread(r->fd, data + got, r->bs - got, (off_t)(blk * r->bs + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		got += (size_t)n;
		if (n == 0 || got < r->bs) { /* end of file (a short read with O_DIRECT too) */
			memset(data + got, 0, r->bs - got);
			break;
		}
	}
	r->disk_reads++;
	return 0;
}

/* The block's data, valid until the next call. */
static const char *get_block(struct reader *r, uint64_t blk)
{
	struct buf *victim = &r->pool[0];
	r->tick++;
	for (unsigned i = 0; i < r->npool; i++) {
		struct buf *b = &r->pool[i];
		if (b->blk == blk) {
			b->used = r->tick;
			r->pool_hits++;
			return b->data;
		}
		if (b->used < victim->used)
			victim = b;
	}
	int rc = -ENOENT;
	if (r->cache) {
		if (victim->blk != UINT64_MAX)
			rc = vmo_cache_yield_get(r->cache, victim->blk, blk, victim->data, r->bs);
		else
			rc = vmo_cache_get(r->cache, blk, victim->data, r->bs);
		if (rc && rc != -ENOENT) {
			fprintf(stderr, "blockcache: cache: %s\n", vmo_strerror(rc));
			exit(1);
		}
	}
	if (rc == 0) {
		r->cache_hits++;
	} else if ((rc = read_disk(r, blk, victim->data)) < 0) {
		fprintf(stderr, "blockcache: read block %llu: %s\n", (unsigned long long)blk, strerror(-rc));
		exit(1);
	}
	victim->blk = blk;
	victim->used = r->tick;
	return victim->data;
}

static uint64_t fnv(const char *p, size_t n, uint64_t h)
{
	const uint64_t *w = (const uint64_t *)p;
	for (size_t i = 0; i < n / 8; i++)
		h = (h ^ w[i]) * 0x100000001b3ull;
	return h;
}

struct opts {
	size_t block_kib;
	unsigned pool;
	uint64_t reads;
	unsigned hot;
	uint64_t budget_mib;
	bool no_cache, buffered;
};

struct result {
	double secs, mib_s;
	uint64_t sum, disk_reads, pool_hits, cache_hits;
	struct vmo_cache_stats st;
};

static int run(const char *path, const struct opts *o, bool use_cache, struct result *res)
{
	struct reader r = { .bs = o->block_kib * 1024, .npool = o->pool };
	r.fd = open(path, O_RDONLY | O_CLOEXEC | (o->buffered ? 0 : O_DIRECT));
	if (r.fd < 0 && !o->buffered && errno == EINVAL) {
		fprintf(stderr, "blockcache: no O_DIRECT here; reading through the page cache\n");
		r.fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (r.fd < 0) {
		fprintf(stderr, "blockcache: %s: %s\n", path, strerror(errno));
		return 1;
	}
	struct stat sb;
	fstat(r.fd, &sb);
	r.nblocks = ((uint64_t)sb.st_size + r.bs - 1) / r.bs;
	if (!r.nblocks) {
		fprintf(stderr, "blockcache: %s is empty\n", path);
		return 1;
	}
	if (use_cache) {
		struct vmo_cache_opts co = { .budget = o->budget_mib << 20 };
		int rc = vmo_cache_create(&co, &r.cache);
		if (rc) {
			fprintf(stderr, "blockcache: vmo_cache_create: %s\n", vmo_strerror(rc));
			return 1;
		}
	}
	r.pool = calloc(r.npool, sizeof *r.pool);
	for (unsigned i = 0; i < r.npool; i++) {
		r.pool[i].blk = UINT64_MAX;
		/* page-aligned buffers: O_DIRECT and the cache both want them */
		r.pool[i].data = mmap(NULL, r.bs, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (r.pool[i].data == MAP_FAILED)
			return 1;
	}
	uint64_t seed = 0x9e3779b97f4a7c15ull, sum = 0xcbf29ce484222325ull;
	uint64_t hotn = r.nblocks / 4 ? r.nblocks / 4 : 1;
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < o->reads; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		uint64_t blk = (seed % 100 < o->hot) ? (seed >> 8) % hotn : (seed >> 8) % r.nblocks;
		sum = fnv(get_block(&r, blk), r.bs, sum);
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	res->secs = secs;
	res->mib_s = (double)o->reads * (double)r.bs / (1 << 20) / secs;
	res->sum = sum;
	res->disk_reads = r.disk_reads;
	res->pool_hits = r.pool_hits;
	res->cache_hits = r.cache_hits;
	memset(&res->st, 0, sizeof res->st);
	if (r.cache) {
		vmo_cache_stats(r.cache, &res->st);
		vmo_cache_destroy(r.cache);
	}
	for (unsigned i = 0; i < r.npool; i++)
		munmap(r.pool[i].data, r.bs);
	free(r.pool);
	close(r.fd);
	return 0;
}

static void print_result(const char *pfx, const struct opts *o, const struct result *r)
{
	printf("%sreads=%llu\n%sblock_kib=%zu\n%sseconds=%.3f\n%smib_per_s=%.1f\n%sdisk_reads=%llu\n"
	       "%spool_hits=%llu\n%scache_hits=%llu\n%scache_mib=%llu\n%scache_forgotten_mib=%llu\n"
	       "%schecksum=%016llx\n",
	       pfx, (unsigned long long)o->reads, pfx, o->block_kib, pfx, r->secs, pfx, r->mib_s, pfx,
	       (unsigned long long)r->disk_reads, pfx, (unsigned long long)r->pool_hits, pfx,
	       (unsigned long long)r->cache_hits, pfx, (unsigned long long)(r->st.bytes >> 20), pfx,
	       (unsigned long long)(r->st.forgotten_bytes >> 20), pfx, (unsigned long long)r->sum);
}

static int bench(struct opts *o)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	snprintf(path, sizeof path, "%s/blockcache-XXXXXX", dir && *dir ? dir : "/var/tmp");
	int fd = mkstemp(path);
	if (fd < 0) {
		fprintf(stderr, "blockcache: mkstemp %s: %s\n", path, strerror(errno));
		return 1;
	}
	const size_t size = (size_t)256 << 20, ch = (size_t)1 << 20;
	uint64_t *b = malloc(ch);
	for (size_t off = 0; off < size; off += ch) {
		for (size_t i = 0; i < ch / 8; i++)
			b[i] = (off + i * 8) * 0x9E3779B97F4A7C15ull;
		if (pwrite(fd, b, ch, (off_t)off) != (ssize_t)ch) {
			fprintf(stderr, "blockcache: write %s: %s\n", path, strerror(errno));
			unlink(path);
			return 1;
		}
	}
	free(b);
	fsync(fd);
	close(fd);
	struct result a, c;
	int rc = run(path, o, false, &a) || run(path, o, true, &c);
	unlink(path);
	if (rc)
		return 1;
	printf("# blockcache --bench: 256 MiB file, %llu random reads of %zu KiB (%u%% in the first "
	       "quarter), pool of %u buffers, O_DIRECT\n",
	       (unsigned long long)o->reads, o->block_kib, o->hot, o->pool);
	printf("nocache_mib_per_s=%.1f\ncache_mib_per_s=%.1f\ncache_speedup=%.2f\nnocache_disk_reads=%llu\n"
	       "cache_disk_reads=%llu\ncache_hits=%llu\ncache_held_mib=%llu\nchecksums_agree=%d\n",
	       a.mib_s, c.mib_s, c.mib_s / a.mib_s, (unsigned long long)a.disk_reads,
	       (unsigned long long)c.disk_reads, (unsigned long long)c.cache_hits,
	       (unsigned long long)(c.st.bytes >> 20), a.sum == c.sum);
	return a.sum == c.sum ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct opts o = { .block_kib = 64, .pool = 16, .reads = 20000, .hot = 80 };
	bool do_bench = false;
	const char *path = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--bench"))
			do_bench = true;
		else if (!strcmp(a, "--no-cache"))
			o.no_cache = true;
		else if (!strcmp(a, "--buffered"))
			o.buffered = true;
		else if (!strcmp(a, "--block") && v)
			o.block_kib = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(a, "--pool") && v)
			o.pool = (unsigned)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(a, "--reads") && v)
			o.reads = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(a, "--hot") && v)
			o.hot = (unsigned)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(a, "--budget") && v)
			o.budget_mib = strtoull(argv[++i], NULL, 0);
		else if (a[0] != '-' && !path)
			path = a;
		else {
			fprintf(stderr,
				"usage: %s [--block KIB] [--pool N] [--reads N] [--hot PCT] [--budget MIB] "
				"[--no-cache] [--buffered] FILE | --bench\n",
				argv[0]);
			return 2;
		}
	}
	if (!o.block_kib || o.block_kib % 4 || !o.pool || o.hot > 100) {
		fprintf(stderr, "blockcache: --block must be a multiple of 4, --pool > 0, --hot <= 100\n");
		return 2;
	}
	if (do_bench)
		return bench(&o);
	if (!path) {
		fprintf(stderr, "blockcache: no FILE (or --bench)\n");
		return 2;
	}
	struct result r;
	if (run(path, &o, !o.no_cache, &r))
		return 1;
	print_result("", &o, &r);
	return 0;
}
