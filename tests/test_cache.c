/* SPDX-License-Identifier: MIT */
/* test_cache.c - the yield cache: arguments, semantics, zero-copy and copy
 * paths, budget, memory given back, odd source memory, and a reference model
 * driven from two threads (contents checked byte for byte, never stale).
 * The memory watcher under it is tested on its own by tests/white/test_pressure_watch.c. */
#include "helper.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096u

/* Whether the cache can move pages here: the kernel offers UFFDIO_MOVE
 * (VMO_DISABLE=move counts), as an engine's VMO_FEAT_MOVE says.  Asked once. */
static bool kernel_moves(void)
{
	static int mv = -1;
	if (mv < 0) {
		struct vmo_engine_opts eo = { .workers = 1, .flags = VMO_ENGINE_NO_PRESSURE };
		struct vmo_engine *e;
		int rc = vmo_engine_create(&eo, &e);
		if (rc != -VMO_ENOUFFD) {
			CHECK_OK(rc);
			mv = (vmo_engine_features(e) & VMO_FEAT_MOVE) != 0;
			CHECK_OK(vmo_engine_destroy(e));
		} else {
			mv = 0;
		}
		if (!mv)
			printf("note: this kernel has no UFFDIO_MOVE; only the copy path is tested\n");
	}
	return mv;
}

static void *map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED);
	return p;
}

/* Fill / check a block with words that name (id, version, offset). */
static uint64_t word(uint64_t id, uint64_t ver, uint64_t off)
{
	return t_pattern(off ^ (id << 40) ^ (ver << 20)) ^ id ^ (ver * 0x100000001b3ull);
}
static void fill(void *p, size_t len, uint64_t id, uint64_t ver)
{
	uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = word(id, ver, i * 8);
}
/* Index of the first wrong word, or -1. */
static long check_fill(const void *p, size_t len, uint64_t id, uint64_t ver)
{
	const uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != word(id, ver, i * 8))
			return (long)i;
	return -1;
}
static bool is_zero(const void *p, size_t len)
{
	const uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		if (w[i])
			return false;
	return true;
}

static struct vmo_cache *mk(uint32_t flags, uint64_t budget, uint64_t move_min)
{
	struct vmo_cache_opts o = { .flags = flags, .budget = budget, .move_min = move_min };
	struct vmo_cache *c;
	CHECK_OK(vmo_cache_create(&o, &c));
	return c;
}

static struct vmo_cache_stats stats(struct vmo_cache *c)
{
	struct vmo_cache_stats s;
	CHECK_OK(vmo_cache_stats(c, &s));
	return s;
}

/* ------------------------------------------------------------------------ */

static void test_args(void)
{
	struct vmo_cache *c;
	CHECK_EQ(vmo_cache_create(NULL, NULL), -EINVAL);
	struct vmo_cache_opts o = { .flags = 1u << 7 };
	CHECK_EQ(vmo_cache_create(&o, &c), -EINVAL);
	o = (struct vmo_cache_opts){ .reserved = { 1 } };
	CHECK_EQ(vmo_cache_create(&o, &c), -EINVAL);
	o = (struct vmo_cache_opts){ .move_min = 100 };
	CHECK_EQ(vmo_cache_create(&o, &c), -EINVAL);

	c = mk(VMO_CACHE_NO_PRESSURE, 0, 0);
	char *buf = map_anon(4 * PG);
	fill(buf, 4 * PG, 7, 1);
	CHECK_OK(vmo_cache_yield(c, 1, buf, PG)); /* one block in the cache */
	fill(buf, 4 * PG, 7, 1);
	struct vmo_cache_stats before = stats(c);

	CHECK_EQ(vmo_cache_yield(NULL, 2, buf, PG), -EINVAL);
	CHECK_EQ(vmo_cache_yield(c, 2, NULL, PG), -EINVAL);
	CHECK_EQ(vmo_cache_yield(c, 2, buf + 8, PG), -EINVAL);
	CHECK_EQ(vmo_cache_yield(c, 2, buf, 0), -EINVAL);
	CHECK_EQ(vmo_cache_yield(c, 2, buf, PG + 512), -EINVAL);
	CHECK_EQ(vmo_cache_yield(c, 2, (void *)(UINTPTR_MAX & ~(uintptr_t)(PG - 1)), 2 * PG), -EINVAL);
	CHECK_EQ(vmo_cache_yield(c, 1, buf, 100), -EINVAL); /* not even the old block goes */
	CHECK_EQ(vmo_cache_get(NULL, 1, buf, PG), -EINVAL);
	CHECK_EQ(vmo_cache_get(c, 1, buf + 1, PG), -EINVAL);
	CHECK_EQ(vmo_cache_get(c, 1, buf, PG - 1), -EINVAL);
	CHECK_EQ(vmo_cache_get(c, 1, NULL, PG), -EINVAL);
	CHECK_EQ(vmo_cache_yield_get(c, 2, 1, buf + 16, PG), -EINVAL);
	CHECK_EQ(vmo_cache_yield_get(c, 2, 1, buf, 0), -EINVAL);
	CHECK_EQ(vmo_cache_forget(NULL, 1), -EINVAL);
	CHECK_EQ(vmo_cache_forget_all(NULL), -EINVAL);
	CHECK_EQ(vmo_cache_stats(NULL, &before), -EINVAL);
	CHECK_EQ(vmo_cache_stats(c, NULL), -EINVAL);
	/* a wrong length for an existing id: -EINVAL, block kept, addr untouched */
	CHECK_EQ(vmo_cache_get(c, 1, buf, 2 * PG), -EINVAL);
	CHECK_EQ(vmo_cache_yield_get(c, 3, 1, buf, 2 * PG), -EINVAL);

	struct vmo_cache_stats after = stats(c);
	CHECK(!memcmp(&before, &after, sizeof before)); /* nothing counted, nothing changed */
	CHECK_EQ(check_fill(buf, 4 * PG, 7, 1), -1);
	CHECK_OK(vmo_cache_get(c, 1, buf + PG, PG));
	CHECK_EQ(check_fill(buf + PG, PG, 7, 1), -1); /* the block yielded from buf[0..PG) */

	/* sized stats: less than the header is -EINVAL; an older (smaller)
	 * caller's struct is filled up to its size, a newer (larger) one's
	 * zeroed past the library's */
	struct vmo_cache_stats full = stats(c);
	CHECK_EQ(full.size, sizeof full);
	CHECK_EQ(full.version, VMO_CACHE_STATS_VERSION);
	CHECK_EQ(vmo_cache_stats_sized(c, &full, 7), -EINVAL);
	struct {
		uint32_t size, version;
		uint64_t blocks, canary;
	} old = { .canary = 42 };
	CHECK_OK(vmo_cache_stats_sized(c, (struct vmo_cache_stats *)&old, 16));
	CHECK_EQ(old.size, 16);
	CHECK_EQ(old.version, VMO_CACHE_STATS_VERSION);
	CHECK_EQ(old.blocks, full.blocks);
	CHECK_EQ(old.canary, 42);
	struct {
		struct vmo_cache_stats st;
		uint64_t future[2];
	} nw;
	memset(&nw, 0xa5, sizeof nw);
	CHECK_OK(vmo_cache_stats_sized(c, &nw.st, sizeof nw));
	CHECK_EQ(nw.st.size, sizeof nw.st);
	CHECK_EQ(nw.st.bytes, full.bytes);
	CHECK_EQ(nw.future[0], 0);
	CHECK_EQ(nw.future[1], 0);

	CHECK_OK(vmo_cache_destroy(c));
	CHECK_EQ(vmo_cache_destroy(NULL), -EINVAL);
	munmap(buf, 4 * PG);
}

/* yield, zeros, get, exact; replace; forget; miss; yield_get; for one mode. */
static void test_semantics(uint32_t flags, uint64_t move_min, size_t len, bool expect_moves)
{
	struct vmo_cache *c = mk(VMO_CACHE_NO_PRESSURE | flags, 0, move_min);
	char *a = map_anon(len), *b = map_anon(len);

	fill(a, len, 1, 1);
	CHECK_OK(vmo_cache_yield(c, 1, a, len));
	CHECK(is_zero(a, len));
	struct vmo_cache_stats s = stats(c);
	CHECK_EQ(s.blocks, 1);
	CHECK_EQ(s.bytes, len);
	CHECK_EQ(s.yields, 1);
	memset(b, 0x5a, len);
	CHECK_OK(vmo_cache_get(c, 1, b, len));
	CHECK_EQ(check_fill(b, len, 1, 1), -1);
	CHECK_EQ(vmo_cache_get(c, 1, b, len), -ENOENT); /* the get took it */
	CHECK_EQ(check_fill(b, len, 1, 1), -1);         /* a miss leaves addr alone */
	s = stats(c);
	CHECK_EQ(s.hits, 1);
	CHECK_EQ(s.misses, 1);
	CHECK_EQ(s.blocks, 0);
	CHECK_EQ(s.bytes, 0);
	if (expect_moves)
		CHECK_EQ(s.moved, 2);
	else
		CHECK_EQ(s.moved, 0);

	/* replace by id */
	fill(a, len, 1, 2);
	CHECK_OK(vmo_cache_yield(c, 1, a, len));
	fill(a, len, 1, 3);
	CHECK_OK(vmo_cache_yield(c, 1, a, len));
	CHECK_EQ(stats(c).blocks, 1);
	CHECK_OK(vmo_cache_get(c, 1, b, len));
	CHECK_EQ(check_fill(b, len, 1, 3), -1);

	/* forget, then miss until a new yield */
	fill(a, len, 2, 1);
	CHECK_OK(vmo_cache_yield(c, 2, a, len));
	CHECK_OK(vmo_cache_forget(c, 2));
	CHECK_EQ(vmo_cache_forget(c, 2), -ENOENT);
	memset(b, 0x11, len);
	CHECK_EQ(vmo_cache_get(c, 2, b, len), -ENOENT);
	CHECK(((unsigned char *)b)[len - 1] == 0x11);
	fill(a, len, 2, 2);
	CHECK_OK(vmo_cache_yield(c, 2, a, len));
	CHECK_OK(vmo_cache_get(c, 2, b, len));
	CHECK_EQ(check_fill(b, len, 2, 2), -1);

	/* yield_get: hit, then miss (yield done, zeros) */
	fill(a, len, 3, 1);
	CHECK_OK(vmo_cache_yield(c, 3, a, len));
	fill(a, len, 4, 1);
	CHECK_OK(vmo_cache_yield_get(c, 4, 3, a, len));
	CHECK_EQ(check_fill(a, len, 3, 1), -1);
	CHECK_EQ(vmo_cache_yield_get(c, 5, 3, a, len), -ENOENT);
	CHECK(is_zero(a, len));
	CHECK_OK(vmo_cache_get(c, 5, b, len));
	CHECK_EQ(check_fill(b, len, 3, 1), -1);
	CHECK_OK(vmo_cache_get(c, 4, b, len));
	CHECK_EQ(check_fill(b, len, 4, 1), -1);
	/* yield_get with the same id: bytes stay, the id leaves */
	fill(a, len, 6, 1);
	CHECK_OK(vmo_cache_yield(c, 6, b, len));
	CHECK_OK(vmo_cache_yield_get(c, 6, 6, a, len));
	CHECK_EQ(check_fill(a, len, 6, 1), -1);
	CHECK_EQ(vmo_cache_get(c, 6, b, len), -ENOENT);

	/* a block of untouched pages (holes) comes back as zeros over old data */
	char *h = map_anon(len);
	CHECK_OK(vmo_cache_yield(c, 7, h, len));
	memset(b, 0x77, len);
	CHECK_OK(vmo_cache_get(c, 7, b, len));
	CHECK(is_zero(b, len));
	/* half-touched */
	if (len >= 2 * PG) {
		fill(h, len / 2, 8, 1);
		CHECK_OK(vmo_cache_yield(c, 8, h, len));
		memset(b, 0x78, len);
		CHECK_OK(vmo_cache_get(c, 8, b, len));
		CHECK_EQ(check_fill(b, len / 2, 8, 1), -1);
		CHECK(is_zero(b + len / 2, len / 2));
	}

	/* forget_all */
	for (uint64_t id = 10; id < 20; id++) {
		fill(a, len, id, 1);
		CHECK_OK(vmo_cache_yield(c, id, a, len));
	}
	CHECK_EQ(stats(c).blocks, 10);
	CHECK_OK(vmo_cache_forget_all(c));
	s = stats(c);
	CHECK_EQ(s.blocks, 0);
	CHECK_EQ(s.bytes, 0);
	CHECK_EQ(s.idle_bytes, 0);
	for (uint64_t id = 10; id < 20; id++)
		CHECK_EQ(vmo_cache_get(c, id, b, len), -ENOENT);
	vmo_cache_destroy(c);
	munmap(a, len);
	munmap(b, len);
	munmap(h, len);
}

/* Sources that cannot be moved: shared memory, pages shared with a forked
 * child, a range over two VMAs, a read-write-exec mapping.  The yield must
 * still take the exact bytes and leave zeros. */
static void test_odd_sources(void)
{
	const size_t len = 256 * 1024;
	struct vmo_cache *c = mk(VMO_CACHE_NO_PRESSURE, 0, PG); /* move everything it can */
	char *b = map_anon(len);

	char *sh = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED);
	fill(sh, len, 1, 1);
	CHECK_OK(vmo_cache_yield(c, 1, sh, len));
	CHECK(is_zero(sh, len));
	CHECK_OK(vmo_cache_get(c, 1, b, len));
	CHECK_EQ(check_fill(b, len, 1, 1), -1);
	fill(b, len, 2, 1);
	CHECK_OK(vmo_cache_yield(c, 2, b, len));
	CHECK_OK(vmo_cache_get(c, 2, sh, len)); /* into shared memory */
	CHECK_EQ(check_fill(sh, len, 2, 1), -1);
	munmap(sh, len);

	/* pages shared copy-on-write with a child */
	char *cow = map_anon(len);
	fill(cow, len, 3, 1);
	int pfd[2];
	CHECK(pipe(pfd) == 0);
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		char x;
		close(pfd[1]);
		if (read(pfd[0], &x, 1) < 0) {
		}
		_exit(check_fill(cow, len, 3, 1) == -1 ? 0 : 1); /* the child's view is untouched */
	}
	close(pfd[0]);
	CHECK_OK(vmo_cache_yield(c, 3, cow, len));
	CHECK(is_zero(cow, len));
	CHECK_OK(vmo_cache_get(c, 3, b, len));
	CHECK_EQ(check_fill(b, len, 3, 1), -1);
	CHECK(write(pfd[1], "x", 1) == 1);
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(pfd[1]);
	munmap(cow, len);

	/* two VMAs: the second half is MADV_DONTFORK */
	char *two = map_anon(len);
	CHECK(madvise(two + len / 2, len / 2, MADV_DONTFORK) == 0);
	fill(two, len, 4, 1);
	CHECK_OK(vmo_cache_yield(c, 4, two, len));
	CHECK(is_zero(two, len));
	CHECK_OK(vmo_cache_get(c, 4, two, len));
	CHECK_EQ(check_fill(two, len, 4, 1), -1);
	munmap(two, len);

	/* read-write-exec: flags differ from the cache's arenas */
	char *rwx = mmap(NULL, len, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (rwx != MAP_FAILED) {
		fill(rwx, len, 5, 1);
		CHECK_OK(vmo_cache_yield(c, 5, rwx, len));
		CHECK(is_zero(rwx, len));
		CHECK_OK(vmo_cache_get(c, 5, rwx, len));
		CHECK_EQ(check_fill(rwx, len, 5, 1), -1);
		munmap(rwx, len);
	}
	vmo_cache_destroy(c);
	munmap(b, len);
}

/* Oldest first, never above the budget; a block bigger than the budget is
 * dropped at once and takes an older block with its id along. */
static void test_budget(uint64_t move_min)
{
	const size_t len = 16 * 1024;
	const uint64_t budget = 256 * 1024;
	struct vmo_cache *c = mk(VMO_CACHE_NO_PRESSURE, budget, move_min);
	char *a = map_anon(1 << 20), *b = map_anon(1 << 20);
	for (uint64_t id = 0; id < 100; id++) {
		fill(a, len, id, 1);
		CHECK_OK(vmo_cache_yield(c, id, a, len));
		struct vmo_cache_stats s = stats(c);
		CHECK(s.bytes <= budget);
		CHECK(s.cap == budget);
	}
	struct vmo_cache_stats s = stats(c);
	CHECK_EQ(s.blocks, budget / len);
	CHECK_EQ(s.forgotten_blocks, 100 - budget / len);
	CHECK_EQ(s.forgotten_bytes, (100 - budget / len) * len);
	for (uint64_t id = 0; id < 100 - budget / len; id++)
		CHECK_EQ(vmo_cache_get(c, id, b, len), -ENOENT);
	for (uint64_t id = 100 - budget / len; id < 100; id++) {
		CHECK_OK(vmo_cache_get(c, id, b, len));
		CHECK_EQ(check_fill(b, len, id, 1), -1);
	}
	/* bigger than the budget */
	fill(a, len, 500, 1);
	CHECK_OK(vmo_cache_yield(c, 500, a, len));
	fill(a, 1 << 20, 500, 2);
	CHECK_OK(vmo_cache_yield(c, 500, a, 1 << 20));
	CHECK(is_zero(a, 1 << 20));
	CHECK_EQ(vmo_cache_get(c, 500, b, len), -ENOENT);
	CHECK_EQ(vmo_cache_get(c, 500, b, 1 << 20), -ENOENT);
	CHECK(stats(c).idle_bytes <= budget / 16);
	vmo_cache_destroy(c);
	munmap(a, 1 << 20);
	munmap(b, 1 << 20);
}

/* Forgetting gives the memory back to the system (RSS falls). */
static void test_memory_returned(uint32_t flags, uint64_t move_min)
{
	const size_t blk = 256 * 1024, total = 128u << 20;
	struct vmo_cache *c = mk(VMO_CACHE_NO_PRESSURE | flags, 0, move_min);
	char *a = map_anon(blk);
	long r0 = t_rss_kb();
	for (uint64_t id = 0; id < total / blk; id++) {
		fill(a, blk, id, 1);
		CHECK_OK(vmo_cache_yield(c, id, a, blk));
	}
	long r1 = t_rss_kb();
	CHECK(r1 - r0 > (long)(total / 1024) * 9 / 10); /* the cache holds it */
	CHECK_OK(vmo_cache_forget_all(c));
	long r2 = t_rss_kb();
	CHECK(r1 - r2 > (long)(total / 1024) * 9 / 10); /* and gave it back */
	vmo_cache_destroy(c);
	munmap(a, blk);
}

/* ------------------------------------------------------------------------ */
/* Reference model from two threads                                         */

#define NIDS 64
static const size_t lens[] = { PG, 2 * PG, 16 * PG, 32 * PG, 256 * PG };
#define NLENS (sizeof lens / sizeof lens[0])

struct model {
	struct vmo_cache *c;
	bool strict; /* no budget: a block the model holds must hit */
	uint64_t budget;
	pthread_mutex_t idmu[NIDS];
	uint64_t ver[NIDS]; /* 0: not in the cache */
	size_t len[NIDS];
	_Atomic uint64_t next_ver;
	_Atomic uint64_t ops, hits, misses_allowed;
	uint64_t seed[2];
	int iters;
};

struct worker {
	struct model *m;
	int idx;
};

static void *model_thread(void *p)
{
	struct worker *w = p;
	struct model *m = w->m;
	uint64_t s = m->seed[w->idx];
	size_t maxlen = lens[NLENS - 1];
	char *buf = map_anon(maxlen);
	for (int it = 0; it < m->iters; it++) {
		unsigned id = (unsigned)(t_rand(&s) % NIDS);
		unsigned op = (unsigned)(t_rand(&s) % 10);
		pthread_mutex_lock(&m->idmu[id]);
		if (op < 4) { /* yield a new version */
			size_t len = lens[t_rand(&s) % NLENS];
			uint64_t v = atomic_fetch_add(&m->next_ver, 1);
			fill(buf, len, id, v);
			CHECK_OK(vmo_cache_yield(m->c, id, buf, len));
			CHECK(is_zero(buf, len));
			m->ver[id] = v;
			m->len[id] = len;
		} else if (op < 8) { /* get */
			size_t len = m->ver[id] ? m->len[id] : lens[t_rand(&s) % NLENS];
			memset(buf, 0xee, len);
			int rc = vmo_cache_get(m->c, id, buf, len);
			if (m->ver[id]) {
				if (rc == -ENOENT) {
					CHECK(!m->strict);
					CHECK(((unsigned char *)buf)[0] == 0xee);
				} else {
					CHECK_OK(rc);
					long bad = check_fill(buf, len, id, m->ver[id]);
					if (bad >= 0)
						fprintf(stderr, "id %u ver %llu len %zu: word %ld wrong\n", id,
							(unsigned long long)m->ver[id], len, bad);
					CHECK_EQ(bad, -1);
					atomic_fetch_add(&m->hits, 1);
				}
				m->ver[id] = 0;
			} else {
				/* not in the model: a miss, never data */
				CHECK_EQ(rc, -ENOENT);
				CHECK(((unsigned char *)buf)[len - 1] == 0xee);
			}
		} else if (op < 9) { /* forget */
			int rc = vmo_cache_forget(m->c, id);
			if (m->strict)
				CHECK_EQ(rc, m->ver[id] ? 0 : -ENOENT);
			else
				CHECK(rc == 0 || rc == -ENOENT);
			m->ver[id] = 0;
		} else { /* yield_get: yield id2's new version, get id */
			unsigned id2 = (id + 1 + (unsigned)(t_rand(&s) % (NIDS - 1))) % NIDS;
			/* lock order: by id */
			pthread_mutex_unlock(&m->idmu[id]);
			unsigned lo = id < id2 ? id : id2, hi = id < id2 ? id2 : id;
			pthread_mutex_lock(&m->idmu[lo]);
			pthread_mutex_lock(&m->idmu[hi]);
			size_t len = m->ver[id] ? m->len[id] : lens[t_rand(&s) % NLENS];
			uint64_t v = atomic_fetch_add(&m->next_ver, 1);
			fill(buf, len, id2, v);
			int rc = vmo_cache_yield_get(m->c, id2, id, buf, len);
			if (m->ver[id]) {
				if (rc == -ENOENT) {
					CHECK(!m->strict);
					CHECK(is_zero(buf, len));
				} else {
					CHECK_OK(rc);
					CHECK_EQ(check_fill(buf, len, id, m->ver[id]), -1);
					atomic_fetch_add(&m->hits, 1);
				}
				m->ver[id] = 0;
				m->ver[id2] = v;
				m->len[id2] = len;
			} else {
				CHECK_EQ(rc, -ENOENT);
				CHECK(is_zero(buf, len));
				m->ver[id2] = v;
				m->len[id2] = len;
			}
			pthread_mutex_unlock(&m->idmu[hi]);
			pthread_mutex_unlock(&m->idmu[lo]);
			pthread_mutex_lock(&m->idmu[id]);
		}
		pthread_mutex_unlock(&m->idmu[id]);
		if (m->budget) {
			struct vmo_cache_stats st = stats(m->c);
			CHECK(st.bytes <= m->budget);
		}
		atomic_fetch_add(&m->ops, 1);
	}
	munmap(buf, maxlen);
	return NULL;
}

static void run_model(uint32_t flags, uint64_t budget, uint64_t move_min, int iters, uint64_t seed)
{
	struct model *m = calloc(1, sizeof *m);
	CHECK(m);
	m->c = mk(VMO_CACHE_NO_PRESSURE | flags, budget, move_min);
	m->strict = budget == 0;
	m->budget = budget;
	m->iters = iters;
	m->next_ver = 1;
	m->seed[0] = seed;
	m->seed[1] = seed * 7919 + 1;
	for (int i = 0; i < NIDS; i++)
		pthread_mutex_init(&m->idmu[i], NULL);
	pthread_t th[2];
	struct worker w[2] = { { m, 0 }, { m, 1 } };
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&th[i], NULL, model_thread, &w[i]) == 0);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	/* what the model still holds is in the cache, exactly */
	struct vmo_cache_stats s = stats(m->c);
	uint64_t held = 0, nb = 0;
	char *buf = map_anon(256 * PG);
	for (int id = 0; id < NIDS; id++) {
		if (!m->ver[id]) {
			CHECK_EQ(vmo_cache_get(m->c, (uint64_t)id, buf, PG), -ENOENT);
			continue;
		}
		held += m->len[id];
		nb++;
		int rc = vmo_cache_get(m->c, (uint64_t)id, buf, m->len[id]);
		if (m->strict)
			CHECK_OK(rc);
		if (rc == 0)
			CHECK_EQ(check_fill(buf, m->len[id], (uint64_t)id, m->ver[id]), -1);
	}
	if (m->strict) {
		CHECK_EQ(s.blocks, nb);
		CHECK_EQ(s.bytes, held);
	}
	printf("model flags=%#x budget=%llu move_min=%llu: %llu ops, %llu hits, moved %llu, forgotten %llu\n",
	       flags, (unsigned long long)budget, (unsigned long long)move_min,
	       (unsigned long long)m->ops, (unsigned long long)m->hits, (unsigned long long)s.moved,
	       (unsigned long long)s.forgotten_blocks);
	CHECK(m->hits > (uint64_t)iters / 10);
	vmo_cache_destroy(m->c);
	munmap(buf, 256 * PG);
	free(m);
}

/* Two threads yield the same id at once; gets race too: a get sees one
 * whole version or misses, and only one of two racing gets hits. */
struct race {
	struct vmo_cache *c;
	int idx;
	_Atomic int go;
	_Atomic uint64_t hits;
};

static void *race_thread(void *p)
{
	struct race *r = p;
	const size_t len = 64 * PG;
	char *buf = map_anon(len);
	uint64_t s = 12345 + (uint64_t)r->idx;
	for (int it = 0; it < 3000; it++) {
		uint64_t v = (uint64_t)r->idx + 1;
		if (t_rand(&s) & 1) {
			fill(buf, len, 99, v);
			CHECK_OK(vmo_cache_yield(r->c, 99, buf, len));
		} else {
			int rc = vmo_cache_get(r->c, 99, buf, len);
			if (rc == 0) {
				CHECK(check_fill(buf, len, 99, 1) == -1 || check_fill(buf, len, 99, 2) == -1);
				atomic_fetch_add(&(r - r->idx)->hits, 1);
			} else {
				CHECK_EQ(rc, -ENOENT);
			}
		}
	}
	munmap(buf, len);
	return NULL;
}

static void test_same_id_race(uint64_t move_min)
{
	struct race r[2];
	memset(r, 0, sizeof r);
	r[0].c = r[1].c = mk(VMO_CACHE_NO_PRESSURE, 0, move_min);
	r[1].idx = 1;
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&th[i], NULL, race_thread, &r[i]) == 0);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	struct vmo_cache_stats s = stats(r[0].c);
	CHECK_EQ(s.hits, r[0].hits);
	CHECK(s.blocks <= 1);
	vmo_cache_destroy(r[0].c);
}

static void test_pressure_watch(void)
{
	struct vmo_cache *c = mk(0, 0, 0);
	struct vmo_cache_stats s = stats(c);
	/* the cap follows the memory the process may still use */
	CHECK(s.cap > 0 && s.cap != UINT64_MAX);
	char *a = map_anon(1 << 20);
	fill(a, 1 << 20, 1, 1);
	CHECK_OK(vmo_cache_yield(c, 1, a, 1 << 20));
	usleep(250 * 1000); /* a couple of ticks of the watcher */
	CHECK_OK(vmo_cache_get(c, 1, a, 1 << 20));
	CHECK_EQ(check_fill(a, 1 << 20, 1, 1), -1);
	vmo_cache_destroy(c);
	munmap(a, 1 << 20);
}

static void case_semantics(void)
{
	bool mv = kernel_moves();
	for (size_t i = 0; i < 3; i++) {
		size_t len = (size_t[]){ PG, 64 * 1024, 1 << 20 }[i];
		test_semantics(VMO_CACHE_COPY, 0, len, false);
		test_semantics(0, PG, len, mv);
		test_semantics(0, 0, len, false); /* the default copies */
		test_semantics(0, 1 << 20, len, mv && len >= (1 << 20));
	}
}

static void case_budget(void)
{
	test_budget(0);
	test_budget(PG);
}

static void case_memory_returned(void)
{
	test_memory_returned(VMO_CACHE_COPY, 0);
	test_memory_returned(0, PG);
}

static void case_same_id_race(void)
{
	test_same_id_race(0);
	test_same_id_race(PG);
	test_same_id_race(UINT64_MAX);
}

/* moves cost a TLB shoot-down to the other CPU per page: fewer rounds */
static void case_model(void)
{
	run_model(0, 0, 0, 8000, 1);
	run_model(VMO_CACHE_COPY, 0, 0, 8000, 2);
	run_model(0, 0, PG, 3000, 3);
	run_model(0, 0, 64 * 1024, 5000, 4);
	run_model(0, 512 * 1024, 0, 8000, 5);
	run_model(0, 512 * 1024, PG, 3000, 6);
}

int main(int argc, char **argv)
{
	return t_main(argc, argv,
		      T_CASES({ "args", test_args }, { "semantics", case_semantics }, { "odd-sources", test_odd_sources },
			      { "budget", case_budget }, { "memory-returned", case_memory_returned },
			      { "same-id-race", case_same_id_race }, { "model", case_model },
			      { "pressure-watch", test_pressure_watch }));
}
