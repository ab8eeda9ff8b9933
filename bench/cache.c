/* SPDX-License-Identifier: MIT */
/* bench/cache.c - the yield cache against a plain in-process hash table +
 * memcpy, in the same run.  Prints key=value lines:
 *
 *   cache_<size>_<mode>_rt_ns      yield + get of one block (the caller does
 *                                  not touch the range in between)
 *   cache_<size>_<mode>_reuse_ns   yield, the caller rewrites the range (as a
 *                                  reader reusing its buffer), get
 *   cache_<size>_<mode>_yg_ns      one yield_get (swap two blocks through the range)
 *   base_<size>_{rt,reuse,yg}_ns   the same with the hash table + memcpy
 *   ..._ratio                      cache / base (1.0 = as fast as memcpy)
 *   mode: copy (VMO_CACHE_COPY), move (UFFDIO_MOVE, move_min = 4 KiB),
 *         auto (the default threshold)
 *   zero_memset_ns / zero_dontneed_refault_ns: ways to give the caller zeros
 *   mremap_<size>_rt_ns, mremap_vmas_per_block: the mremap(DONTUNMAP) way
 *   blockcache_*: examples/blockcache run with and without the cache
 *
 * Medians of several rounds; one thread unless the key says mt (2 threads).
 */
#include "vmo.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PG 4096u

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	memset(p, 1, len);
	return p;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}
static uint64_t median(uint64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_u64);
	return v[n / 2];
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench/cache: %s: %s\n", what, vmo_strerror(rc));
	exit(1);
}

/* ------------------------------------------------------------------------ */
/* Baseline: an open hash table of malloc'd copies, reused buffers          */

struct bent {
	uint64_t id;
	size_t len;
	void *data;
	struct bent *next;
};
struct base {
	struct bent **t;
	size_t mask;
	struct bent *freel; /* entries with their buffers, for reuse */
};
static void base_init(struct base *b, size_t cap)
{
	size_t n = 1;
	while (n < cap)
		n <<= 1;
	b->t = calloc(n, sizeof *b->t);
	b->mask = n - 1;
	b->freel = NULL;
}
static void base_free_list(struct bent *e)
{
	while (e) {
		struct bent *nx = e->next;
		free(e->data);
		free(e);
		e = nx;
	}
}
static void base_fini(struct base *b)
{
	for (size_t i = 0; i <= b->mask; i++)
		base_free_list(b->t[i]);
	base_free_list(b->freel);
	free(b->t);
}
static size_t base_hash(const struct base *b, uint64_t id)
{
	return (size_t)(id * 0x9E3779B97F4A7C15ull >> 20) & b->mask;
}
static void base_put(struct base *b, uint64_t id, const void *p, size_t len)
{
	struct bent **pp = &b->t[base_hash(b, id)];
	while (*pp && (*pp)->id != id)
		pp = &(*pp)->next;
	struct bent *e = *pp;
	if (!e) {
		if (b->freel && b->freel->len == len) {
			e = b->freel;
			b->freel = e->next;
		} else {
			e = malloc(sizeof *e);
			e->data = malloc(len);
			e->len = len;
		}
		e->id = id;
		e->next = NULL;
		*pp = e;
	}
	memcpy(e->data, p, len);
}
static int base_get(struct base *b, uint64_t id, void *p, size_t len)
{
	struct bent **pp = &b->t[base_hash(b, id)];
	while (*pp && (*pp)->id != id)
		pp = &(*pp)->next;
	struct bent *e = *pp;
	if (!e || e->len != len)
		return -ENOENT;
	memcpy(p, e->data, len);
	*pp = e->next;
	e->next = b->freel;
	b->freel = e;
	return 0;
}

/* ------------------------------------------------------------------------ */

enum { RT, REUSE, YG, NKIND };
static const char *kind_name[] = { "rt", "reuse", "yg" };

static int iters_for(size_t len)
{
	size_t total = (size_t)256 << 20; /* bytes through per round */
	int n = (int)(total / len);
	if (n > 20000)
		n = 20000;
	if (n < 200)
		n = 200;
	return n;
}

/* ns per operation of kind k, through the cache c (or the baseline if !c). */
static uint64_t run_one(struct vmo_cache *c, int kind, size_t len)
{
	int n = iters_for(len);
	char *a = map_anon(len);
	struct base b;
	base_init(&b, 4);
	uint64_t t0 = 0;
	int rc;
	if (kind == YG) { /* one block waiting in the cache, swapped each time */
		if (c) {
			if ((rc = vmo_cache_yield(c, 1, a, len)))
				die("yield", rc);
			memset(a, 2, len);
		} else {
			base_put(&b, 1, a, len);
		}
	}
	int done = 0;
	for (int i = -n / 10; i < n; i++) { /* the first tenth warms up */
		if (i == 0)
			t0 = now_ns();
		if (i > 0 && !(i & 15) && now_ns() - t0 > 200000000ull)
			break; /* 0.2 s per round is enough */
		done = i + 1;
		if (kind == YG) {
			/* block 1 waits in the cache first: yield 2 get 1, yield 1 get 2, ... */
			uint64_t y = ((i + n / 10) & 1) ? 1 : 2, g = y == 1 ? 2 : 1;
			if (c) {
				if ((rc = vmo_cache_yield_get(c, y, g, a, len)))
					die("yield_get", rc);
			} else {
				/* yield_get through a hash table: copy out to a spare, copy in */
				base_put(&b, y, a, len);
				if (base_get(&b, g, a, len))
					die("base_get", -ENOENT);
			}
			continue;
		}
		if (c) {
			if ((rc = vmo_cache_yield(c, 7, a, len)))
				die("yield", rc);
		} else {
			base_put(&b, 7, a, len);
		}
		if (kind == REUSE)
			for (size_t off = 0; off < len; off += PG)
				a[off] = (char)i; /* the caller writes into its buffer again */
		if (c) {
			if ((rc = vmo_cache_get(c, 7, a, len)))
				die("get", rc);
		} else if (base_get(&b, 7, a, len)) {
			die("base_get", -ENOENT);
		}
	}
	uint64_t ns = (now_ns() - t0) / (uint64_t)(done > 0 ? done : 1);
	base_fini(&b);
	munmap(a, len);
	return ns;
}

static struct vmo_cache *mk(uint32_t flags, uint64_t move_min)
{
	struct vmo_cache_opts o = { .flags = flags | VMO_CACHE_NO_PRESSURE, .move_min = move_min };
	struct vmo_cache *c;
	int rc = vmo_cache_create(&o, &c);
	if (rc)
		die("vmo_cache_create", rc);
	return c;
}

static const char *size_name(size_t len, char *buf)
{
	if (len >= (1u << 20))
		sprintf(buf, "%zuM", len >> 20);
	else
		sprintf(buf, "%zuK", len >> 10);
	return buf;
}

#define ROUNDS 5

static void bench_sizes(void)
{
	static const size_t all[] = { 4096, 16384, 65536, 262144, 1 << 20, 4 << 20 };
	const size_t *sizes = all;
	size_t nsizes = sizeof all / sizeof *all;
	if (getenv("BENCH_SIZE")) {
		static size_t one;
		one = strtoull(getenv("BENCH_SIZE"), NULL, 0);
		sizes = &one;
		nsizes = 1;
	}
	struct {
		const char *name;
		uint32_t flags;
		uint64_t move_min;
	} modes[] = { { "copy", VMO_CACHE_COPY, 0 }, { "move", 0, PG }, { "auto", 0, 0 } };
	for (size_t si = 0; si < nsizes; si++) {
		size_t len = sizes[si];
		char sn[16];
		size_name(len, sn);
		for (int k = 0; k < NKIND; k++) {
			uint64_t v[ROUNDS], base;
			for (int r = 0; r < ROUNDS; r++)
				v[r] = run_one(NULL, k, len);
			base = median(v, ROUNDS);
			printf("base_%s_%s_ns=%llu\n", sn, kind_name[k], (unsigned long long)base);
			for (size_t m = 0; m < 3; m++) {
				struct vmo_cache *c = mk(modes[m].flags, modes[m].move_min);
				for (int r = 0; r < ROUNDS; r++)
					v[r] = run_one(c, k, len);
				uint64_t x = median(v, ROUNDS);
				struct vmo_cache_stats st;
				vmo_cache_stats(c, &st);
				vmo_cache_destroy(c);
				printf("cache_%s_%s_%s_ns=%llu\ncache_%s_%s_%s_ratio=%.2f\n", sn, modes[m].name,
				       kind_name[k], (unsigned long long)x, sn, modes[m].name, kind_name[k],
				       (double)x / (double)base);
				if (m == 1 && st.moved == 0)
					printf("# note: no block was moved (no UFFDIO_MOVE here?)\n");
			}
			fflush(stdout);
		}
	}
}

/* Two threads doing round trips on their own ids: the move path's TLB
 * flushes must reach the other CPU. */
struct mt_arg {
	struct vmo_cache *c;
	size_t len;
	uint64_t id;
	int n;
};
static void *mt_thread(void *p)
{
	struct mt_arg *m = p;
	char *a = map_anon(m->len);
	for (int i = 0; i < m->n; i++) {
		int rc = vmo_cache_yield(m->c, m->id, a, m->len);
		if (rc)
			die("yield", rc);
		if ((rc = vmo_cache_get(m->c, m->id, a, m->len)))
			die("get", rc);
	}
	munmap(a, m->len);
	return NULL;
}
static void bench_mt(void)
{
	static const size_t sizes[] = { 4096, 65536, 1 << 20 };
	for (size_t si = 0; si < 3; si++) {
		size_t len = sizes[si];
		char sn[16];
		size_name(len, sn);
		for (int m = 0; m < 2; m++) {
			struct vmo_cache *c = mk(m ? 0 : VMO_CACHE_COPY, m ? PG : 0);
			struct mt_arg a[2] = { { c, len, 1, iters_for(len) / 2 }, { c, len, 2, iters_for(len) / 2 } };
			pthread_t th[2];
			uint64_t t0 = now_ns();
			for (int i = 0; i < 2; i++)
				pthread_create(&th[i], NULL, mt_thread, &a[i]);
			for (int i = 0; i < 2; i++)
				pthread_join(th[i], NULL);
			uint64_t ns = (now_ns() - t0) / (uint64_t)a[0].n; /* per round trip per thread */
			vmo_cache_destroy(c);
			printf("cache_%s_%s_mt_rt_ns=%llu\n", sn, m ? "move" : "copy", (unsigned long long)ns);
		}
	}
}

/* How to hand the caller zeros after a copy: memset, or MADV_DONTNEED and
 * the page fault when the caller writes there again. */
static void bench_zero(void)
{
	const int n = 20000;
	char *a = map_anon(PG);
	uint64_t v[ROUNDS];
	for (int r = 0; r < ROUNDS; r++) {
		uint64_t t0 = now_ns();
		for (int i = 0; i < n; i++) {
			memset(a, 0, PG);
			a[0] = (char)i;
		}
		v[r] = (now_ns() - t0) / n;
	}
	printf("zero_memset_4K_ns=%llu\n", (unsigned long long)median(v, ROUNDS));
	for (int r = 0; r < ROUNDS; r++) {
		uint64_t t0 = now_ns();
		for (int i = 0; i < n / 10; i++) {
			madvise(a, PG, MADV_DONTNEED);
			a[0] = (char)i;
		}
		v[r] = (now_ns() - t0) / (n / 10);
	}
	printf("zero_dontneed_refault_4K_ns=%llu\n", (unsigned long long)median(v, ROUNDS));
	munmap(a, PG);
}

static int count_vmas(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return -1;
	int n = 0, ch;
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
/* The other zero-copy way: mremap(MAYMOVE|FIXED|DONTUNMAP) whole pages into
 * a reservation and back.  Round-trip cost, and VMAs it leaves behind when
 * blocks come from (and go back into) the middle of one big mapping. */
static void bench_mremap(void)
{
	static const size_t sizes[] = { 4096, 65536, 1 << 20 };
	for (size_t si = 0; si < 3; si++) {
		size_t len = sizes[si];
		char sn[16];
		size_name(len, sn);
		char *a = map_anon(len);
		char *res = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		int n = iters_for(len) / 4;
		uint64_t t0 = now_ns();
		bool ok = true;
		for (int i = 0; i < n && ok; i++) {
			ok = mremap(a, len, len, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, res) != MAP_FAILED &&
			     mremap(res, len, len, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, a) != MAP_FAILED;
		}
		if (ok)
			printf("mremap_%s_rt_ns=%llu\n", sn, (unsigned long long)((now_ns() - t0) / (uint64_t)n));
		else
			printf("# mremap DONTUNMAP failed: %s\n", strerror(errno));
		munmap(a, len);
		munmap(res, len);
	}
	/* 256 blocks of 16 KiB yielded from every other slot of one mapping */
	const int nb = 256;
	const size_t bl = 16384;
	char *big = map_anon((size_t)nb * 2 * bl);
	char *res = mmap(NULL, (size_t)nb * bl * 2, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	int v0 = count_vmas();
	for (int i = 0; i < nb; i++)
		if (mremap(big + (size_t)i * 2 * bl, bl, bl, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP,
			   res + (size_t)i * 2 * bl) == MAP_FAILED)
			break;
	int v1 = count_vmas();
	printf("mremap_vmas_per_block=%.2f\n", (double)(v1 - v0) / nb);
	munmap(big, (size_t)nb * 2 * bl);
	munmap(res, (size_t)nb * bl * 2);
	/* the same through the cache (UFFDIO_MOVE): no VMA is made */
	struct vmo_cache *c = mk(0, PG);
	big = map_anon((size_t)nb * 2 * bl);
	v0 = count_vmas();
	for (int i = 0; i < nb; i++)
		vmo_cache_yield(c, (uint64_t)i, big + (size_t)i * 2 * bl, bl);
	for (int i = 0; i < nb; i++)
		vmo_cache_get(c, (uint64_t)i, big + (size_t)i * 2 * bl, bl);
	v1 = count_vmas();
	struct vmo_cache_stats st;
	vmo_cache_stats(c, &st);
	printf("cache_move_vmas_per_block=%.2f\ncache_move_moved=%llu\n", (double)(v1 - v0) / nb,
	       (unsigned long long)st.moved);
	vmo_cache_destroy(c);
	munmap(big, (size_t)nb * 2 * bl);
}

/* examples/blockcache, next to this program's directory, with and without
 * the cache; its key=value lines are passed on with a prefix. */
static void bench_blockcache(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return;
	self[n] = 0;
	char *s = strrchr(self, '/');
	if (!s)
		return;
	*s = 0;
	char cmd[PATH_MAX + 128];
	snprintf(cmd, sizeof cmd, "%s/../examples/blockcache --bench 2>&1", self);
	char exe[PATH_MAX + 64];
	snprintf(exe, sizeof exe, "%s/../examples/blockcache", self);
	if (access(exe, X_OK)) {
		printf("# blockcache: %s not built; skipped\n", exe);
		return;
	}
	FILE *p = popen(cmd, "r");
	if (!p)
		return;
	char line[512];
	while (fgets(line, sizeof line, p))
		printf("%s%s", line[0] == '#' ? "" : "blockcache_", line);
	pclose(p);
}

int main(int argc, char **argv)
{
	const char *only = argc > 1 ? argv[1] : NULL;
	if (!only || !strcmp(only, "sizes"))
		bench_sizes();
	if (!only || !strcmp(only, "mt"))
		bench_mt();
	if (!only || !strcmp(only, "zero"))
		bench_zero();
	if (!only || !strcmp(only, "mremap"))
		bench_mremap();
	if (!only || !strcmp(only, "blockcache"))
		bench_blockcache();
	return 0;
}
