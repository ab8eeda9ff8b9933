/* SPDX-License-Identifier: MIT */
/* test_stores: the stores of docs/stores.md, each under random writes with
 * eviction (a small object budget), checked word for word against a
 * shadow copy:
 *  - swap_roundtrip: a swap file; pages written as zeros give their slot
 *    back; the object's release empties the file;
 *  - swap_alias: one swap file named two ways (and opened twice) is one
 *    handle, never two that empty it under each other or hand out the
 *    same slot;
 *  - swap_churn: objects made and released in random order: the file is
 *    never longer than the most pages ever live, takes on disk only what is
 *    live, and ends empty (length and disk blocks);
 *  - compress_spill (lz4, zstd): text-like pages compress; past the budget
 *    the oldest go to the lower store and come back from it;
 *  - compress_full: no lower store: a write past the budget fails
 *    (-ENOSPC from vmo_sync) and the data stays right in memory;
 *  - uri_kinds: file:, swap:, lz4/zstd over swap: and file: by URI;
 *  - uri_bad: bad URIs get -EINVAL and a detail naming the problem;
 *  - punch: vmo_discard_range with VMO_PUNCH on every store (file, swap,
 *    lz4 over swap, zstd over file, NBD): the range reads as zeros after,
 *    from memory and from the store (after a return), its neighbours are
 *    intact, the swap file gives the slots back; a pager of the program's
 *    own gets -EOPNOTSUPP and keeps its pages;
 *  - nbd_roundtrip: a real nbdkit (memory plugin, Unix socket): asynchronous
 *    reads with many in flight, writes, FLUSH on sync;
 *  - nbd_restart: nbdkit (file plugin) killed and started again while a
 *    thread keeps faulting and writing: requests retried, nothing lost
 *    after sync, the file holds every byte;
 *  - nbd_tls: nbdkit requiring TLS (a pre-shared key): the store over
 *    nbds+unix:// with the key round-trips; without TLS it is refused with a
 *    detail that says why;
 *  - nbd_errors: nbdkit's error filter fails reads while a trigger file
 *    exists: vmo_memcpy says -EIO (a mapped touch would be SIGBUS), the
 *    object records the error; once the trigger is gone and the error
 *    cleared, the data reads right;
 *  - nbd_hung: a server that accepts and never answers: the store gives
 *    up within retry_ms (-ETIMEDOUT), never hangs;
 *  - nbd_down: nbdkit killed for good: a page never read is SIGBUS (in a
 *    child), vmo_sync is -EIO, nothing hangs. */
#include "helper.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096u

static char tmpdir[256];

static void mk_tmpdir(void)
{
	const char *t = getenv("TMPDIR");
	snprintf(tmpdir, sizeof tmpdir, "%s/vmo-stores-XXXXXX", t && *t ? t : "/tmp");
	CHECK(mkdtemp(tmpdir) != NULL);
}

static void rm_tmpdir(void)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	CHECK(system(cmd) == 0);
}

/* A word of page pg of kind k: text-like (compresses), random, or zero. */
enum { TEXT, RANDOM };
static void fill_page(uint64_t *p, uint64_t pg, int kind, uint64_t gen)
{
	static const char words[] = "the quick brown fox jumps over the lazy dog while the pager writes back ";
	if (kind == TEXT) {
		char *c = (char *)p;
		for (size_t i = 0; i < PG; i++)
			c[i] = words[(i + pg * 7 + gen) % (sizeof words - 1)];
		p[0] = pg ^ gen << 32;
		return;
	}
	uint64_t s = pg * 0x9E3779B97F4A7C15ull ^ gen ^ 1;
	for (size_t i = 0; i < PG / 8; i++)
		p[i] = t_rand(&s);
}

/* Random whole-page writes of n pages through a mapping, under a budget,
 * against a shadow; then every page checked, after a vmo_return (all read
 * back from the store). */
static void churn(struct vmo_object *obj, uint64_t npages, int kind, unsigned rounds, uint64_t seed)
{
	uint64_t *v;
	CHECK_OK(vmo_map(obj, 0, npages * PG, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	uint64_t *shadow = calloc(npages, PG);
	CHECK(shadow != NULL);
	for (unsigned r = 0; r < rounds; r++) {
		uint64_t pg = t_rand(&seed) % npages;
		uint64_t *p = shadow + pg * (PG / 8);
		if (t_rand(&seed) % 8 == 0)
			memset(p, 0, PG); /* (zero pages too) */
		else
			fill_page(p, pg, kind, r);
		memcpy(v + pg * (PG / 8), p, PG);
		if (r % 64 == 0) { /* and reads of others, faulted back from the store */
			uint64_t q = t_rand(&seed) % npages;
			CHECK(memcmp(v + q * (PG / 8), shadow + q * (PG / 8), PG) == 0);
		}
	}
	CHECK_OK(vmo_return(obj, VMO_WAIT));
	for (uint64_t pg = 0; pg < npages; pg++)
		if (memcmp(v + pg * (PG / 8), shadow + pg * (PG / 8), PG)) {
			fprintf(stderr, "page %llu differs after a round trip through the store\n", (unsigned long long)pg);
			abort();
		}
	CHECK_OK(vmo_unmap(obj, v, npages * PG));
	free(shadow);
}

/* ---- swap -------------------------------------------------------------------------- */

static void case_swap_roundtrip(void)
{
	struct vmo_engine *eng = t_engine(2);
	mk_tmpdir();
	struct vmo_swap *sw;
	CHECK_OK(vmo_swap_open(tmpdir, &sw));
	const struct vmo_pager_ops *ops;
	void *ctx;
	uint64_t npages = 1024;
	CHECK_OK(vmo_pager_swap(sw, npages * PG, &ops, &ctx));
	struct vmo_object *obj;
	struct vmo_object_opts oo = { .size = npages * PG, .budget = 64 * PG };
	CHECK_OK(vmo_object_create(eng, ops, ctx, &oo, &obj));
	churn(obj, npages, RANDOM, 20000, 1);
	struct vmo_swap_stats st;
	CHECK_OK(vmo_swap_stats(sw, &st));
	printf("swap: %llu slots used (of %llu pages), file %llu slots, %llu zero pages, %llu punched\n",
	       (unsigned long long)st.slots_used, (unsigned long long)npages, (unsigned long long)st.file_slots,
	       (unsigned long long)st.zero_pages, (unsigned long long)st.punched);
	CHECK(st.slots_used <= npages && st.slots_used > npages / 2);
	CHECK(st.zero_pages > 0);
	CHECK(st.file_slots >= st.slots_used && st.file_slots <= npages);
	CHECK_EQ(vmo_swap_close(sw), -EBUSY);
	vmo_object_unref(obj);
	CHECK_OK(vmo_swap_stats(sw, &st));
	CHECK_EQ(st.slots_used, 0);
	CHECK_EQ(st.file_bytes, 0);
	CHECK_EQ(st.objects, 0);
	CHECK_OK(vmo_swap_close(sw));
	CHECK_OK(vmo_engine_destroy(eng));
	rm_tmpdir();
}

static void case_swap_churn(void)
{
	struct vmo_engine *eng = t_engine(2);
	mk_tmpdir();
	char path[300];
	snprintf(path, sizeof path, "%s/swapfile", tmpdir);
	struct vmo_swap *sw;
	CHECK_OK(vmo_swap_open(path, &sw));
	enum { N = 6, NPG = 128 };
	struct vmo_object *objs[N] = { 0 };
	uint64_t seed = 7, max_file = 0;
	for (int round = 0; round < 40; round++) {
		int i = (int)(t_rand(&seed) % N);
		if (objs[i]) {
			vmo_object_unref(objs[i]);
			objs[i] = NULL;
		} else {
			const struct vmo_pager_ops *ops;
			void *ctx;
			CHECK_OK(vmo_pager_swap(sw, NPG * PG, &ops, &ctx));
			struct vmo_object_opts oo = { .size = NPG * PG, .budget = 16 * PG };
			CHECK_OK(vmo_object_create(eng, ops, ctx, &oo, &objs[i]));
			churn(objs[i], NPG, RANDOM, 600, seed + (uint64_t)round);
		}
		struct vmo_swap_stats st;
		CHECK_OK(vmo_swap_stats(sw, &st));
		int live = 0;
		for (int k = 0; k < N; k++)
			live += objs[k] != NULL;
		/* bounded: the file never longer than the most pages ever live
		 * (the lowest free slot is taken: the top one was taken when all
		 * below it were used), and on disk only what is live now (the
		 * slots freed below the top are punched) */
		CHECK(st.slots_used <= (uint64_t)live * NPG);
		CHECK(st.file_slots <= st.slots_peak);
		CHECK(st.file_bytes == st.file_slots * PG);
		CHECK(st.disk_bytes <= st.slots_used * PG + 64 * 1024);
		if (st.file_slots > max_file)
			max_file = st.file_slots;
	}
	for (int i = 0; i < N; i++)
		vmo_object_unref(objs[i]);
	struct vmo_swap_stats st;
	CHECK_OK(vmo_swap_stats(sw, &st));
	printf("swap churn: file at most %llu slots for %d objects of %d pages; at the end %llu bytes, %llu on disk\n",
	       (unsigned long long)max_file, N, NPG, (unsigned long long)st.file_bytes,
	       (unsigned long long)st.disk_bytes);
	CHECK_EQ(st.file_bytes, 0);
	CHECK_EQ(st.disk_bytes, 0);
	CHECK_OK(vmo_swap_close(sw));
	CHECK_OK(vmo_engine_destroy(eng));
	rm_tmpdir();
}

static void case_swap_alias(void)
{
	struct vmo_engine *eng = t_engine(2);
	mk_tmpdir();
	char a[300], b[320], uri[400];
	snprintf(a, sizeof a, "%s/sw", tmpdir);
	snprintf(b, sizeof b, "%s/./sw", tmpdir);
	struct vmo_swap *sw1, *sw2;
	CHECK_OK(vmo_swap_open(a, &sw1));
	CHECK_EQ(vmo_swap_open(b, &sw2), -EBUSY); /* (never emptied under the first) */
	printf("a second handle: %s\n", vmo_last_error_detail());
	CHECK_OK(vmo_swap_close(sw1));
	struct vmo_object *o1, *o2;
	struct vmo_object_opts oo = { .size = 64 * PG, .budget = 8 * PG };
	snprintf(uri, sizeof uri, "swap:%s", a);
	CHECK_OK(vmo_object_create_uri(eng, uri, &oo, &o1));
	snprintf(uri, sizeof uri, "swap:%s", b);
	CHECK_OK(vmo_object_create_uri(eng, uri, &oo, &o2)); /* the same file: the same handle */
	uint64_t *v1, *v2;
	CHECK_OK(vmo_map(o1, 0, 64 * PG, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v1));
	CHECK_OK(vmo_map(o2, 0, 64 * PG, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v2));
	for (uint64_t pg = 0; pg < 64; pg++) { /* interleaved: each object's slots taken in turn */
		fill_page(v1 + pg * (PG / 8), pg, RANDOM, 1);
		CHECK_OK(vmo_return_range(o1, pg * PG, PG, VMO_WAIT));
		fill_page(v2 + pg * (PG / 8), pg, RANDOM, 2);
		CHECK_OK(vmo_return_range(o2, pg * PG, PG, VMO_WAIT));
	}
	for (uint64_t pg = 0; pg < 64; pg++) {
		uint64_t want[PG / 8];
		fill_page(want, pg, RANDOM, 1);
		CHECK(memcmp(v1 + pg * (PG / 8), want, PG) == 0);
		fill_page(want, pg, RANDOM, 2);
		CHECK(memcmp(v2 + pg * (PG / 8), want, PG) == 0);
	}
	CHECK_OK(vmo_unmap(o1, v1, 64 * PG));
	CHECK_OK(vmo_unmap(o2, v2, 64 * PG));
	vmo_object_unref(o1);
	vmo_object_unref(o2);
	CHECK_OK(vmo_engine_destroy(eng));
	rm_tmpdir();
}

/* ---- compressed ----------------------------------------------------------------------- */

static void compress_spill(uint32_t algo)
{
	struct vmo_engine *eng = t_engine(2);
	mk_tmpdir();
	uint64_t npages = 512;
	struct vmo_compress_opts co = { .algo = algo, .size = npages * PG, .budget = 16 * 1024 };
	char uri[320];
	snprintf(uri, sizeof uri, "file:%s/lower", tmpdir);
	CHECK_OK(vmo_store_open(uri, npages * PG, 0, &co.lower, &co.lower_ctx));
	const struct vmo_pager_ops *ops;
	void *ctx;
	CHECK_OK(vmo_pager_compress(&co, &ops, &ctx));
	struct vmo_object *obj;
	struct vmo_object_opts oo = { .size = npages * PG, .budget = 32 * PG };
	CHECK_OK(vmo_object_create(eng, ops, ctx, &oo, &obj));
	churn(obj, npages, TEXT, 6000, algo);
	struct vmo_compress_stats st;
	CHECK_OK(vmo_pager_compress_stats(ctx, &st));
	printf("%s: in %llu bytes -> %llu (ratio %.1f), %llu pages in memory (%llu bytes), %llu spilled, %llu read "
	       "from the lower store\n",
	       algo == VMO_COMPRESS_ZSTD ? "zstd" : "lz4", (unsigned long long)st.bytes_in,
	       (unsigned long long)st.bytes_out, (double)st.bytes_in / (double)(st.bytes_out ? st.bytes_out : 1),
	       (unsigned long long)st.pages, (unsigned long long)st.stored_bytes, (unsigned long long)st.spilled,
	       (unsigned long long)st.lower_reads);
	CHECK(st.bytes_out * 2 < st.bytes_in); /* text compresses */
	CHECK(st.stored_bytes <= co.budget);
	CHECK(st.spilled > 0);
	CHECK(st.lower_reads > 0);
	/* random pages are kept raw */
	uint64_t *v;
	CHECK_OK(vmo_map(obj, 0, npages * PG, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	fill_page(v, 0, RANDOM, 99);
	CHECK_OK(vmo_sync(obj, VMO_WAIT));
	CHECK_OK(vmo_pager_compress_stats(ctx, &st));
	CHECK(st.raw_pages >= 1);
	CHECK_OK(vmo_unmap(obj, v, npages * PG));
	CHECK_EQ(vmo_pager_compress_stats(&co, &st), -EINVAL); /* not a store's ctx */
	vmo_object_unref(obj);
	CHECK_OK(vmo_engine_destroy(eng));
	rm_tmpdir();
}

static void case_compress_spill_lz4(void) { compress_spill(VMO_COMPRESS_LZ4); }
static void case_compress_spill_zstd(void) { compress_spill(VMO_COMPRESS_ZSTD); }

static void case_compress_full(void)
{
	struct vmo_engine *eng = t_engine(2);
	uint64_t npages = 64;
	struct vmo_compress_opts co = { .algo = VMO_COMPRESS_LZ4, .size = npages * PG, .budget = 16 * PG };
	const struct vmo_pager_ops *ops;
	void *ctx;
	CHECK_OK(vmo_pager_compress(&co, &ops, &ctx));
	struct vmo_object *obj;
	struct vmo_object_opts oo = { .size = npages * PG };
	CHECK_OK(vmo_object_create(eng, ops, ctx, &oo, &obj));
	uint64_t *v;
	CHECK_OK(vmo_map(obj, 0, npages * PG, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	for (uint64_t pg = 0; pg < npages; pg++)
		fill_page(v + pg * (PG / 8), pg, RANDOM, 5);
	CHECK_EQ(vmo_sync(obj, VMO_WAIT), -ENOSPC);
	for (uint64_t pg = 0; pg < npages; pg++) { /* nothing lost: the pages stay dirty in memory */
		uint64_t want[PG / 8];
		fill_page(want, pg, RANDOM, 5);
		CHECK(memcmp(v + pg * (PG / 8), want, PG) == 0);
	}
	memset(v, 0, npages * PG); /* (zeros compress: now it fits) */
	CHECK_OK(vmo_sync(obj, VMO_WAIT));
	CHECK_OK(vmo_unmap(obj, v, npages * PG));
	vmo_object_unref(obj);
	CHECK_OK(vmo_engine_destroy(eng));
}

/* ---- URIs ------------------------------------------------------------------------------ */

static void case_uri_kinds(void)
{
	struct vmo_engine *eng = t_engine(2);
	mk_tmpdir();
	const char *fmt[] = { "file:%s/f", "swap:%s", "lz4,budget=64K:swap:%s", "zstd,level=5,budget=64K:file:%s/z",
			      "lz4" };
	for (size_t i = 0; i < sizeof fmt / sizeof *fmt; i++) {
		char uri[320];
		snprintf(uri, sizeof uri, fmt[i], tmpdir);
		struct vmo_object *a, *b;
		struct vmo_object_opts oo = { .size = 128 * PG, .budget = 16 * PG };
		CHECK_OK(vmo_object_create_uri(eng, uri, &oo, &a));
		CHECK_OK(vmo_object_create_uri(eng, uri, &oo, &b)); /* (swap: the same file for both) */
		churn(a, 128, TEXT, 800, i);
		churn(b, 128, RANDOM, 800, i + 100);
		vmo_object_unref(a);
		vmo_object_unref(b);
		printf("%s: ok\n", uri);
	}
	/* file: with no size takes the file's */
	char uri[320];
	snprintf(uri, sizeof uri, "file:%s/f", tmpdir);
	struct vmo_object *c;
	CHECK_OK(vmo_object_create_uri(eng, uri, NULL, &c));
	CHECK_EQ(vmo_object_size(c), 128 * PG);
	vmo_object_unref(c);
	CHECK_OK(vmo_engine_destroy(eng));
	rm_tmpdir();
}

static void case_uri_bad(void)
{
	struct vmo_engine *eng = t_engine(1);
	const char *bad[] = { "", "nope:x", "file:", "swap:", "lz4,budget=12Q", "zstd,level=x", "lz4,colour=red",
			      "zstd,level=99", "lz4:nope:", "lz4x", "FILE:/tmp/x", "lz4,level=4294967297",
			      "zstd,level=-4294967293", "lz4,level= 3", "lz4:lz4:lz4:lz4:lz4:lz4:lz4" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct vmo_object *o;
		struct vmo_object_opts oo = { .size = 16 * PG };
		int rc = vmo_object_create_uri(eng, bad[i], &oo, &o);
		if (rc != -EINVAL) {
			fprintf(stderr, "URI \"%s\": %d, want -EINVAL\n", bad[i], rc);
			abort();
		}
		CHECK(strlen(vmo_last_error_detail()) > 0);
	}
	printf("e.g. %s\n", vmo_last_error_detail());
	struct vmo_object *o;
	CHECK_EQ(vmo_object_create_uri(eng, "swap:/tmp", NULL, &o), -EINVAL); /* swap: needs a size */
	CHECK_EQ(vmo_object_create_uri(NULL, "lz4", NULL, &o), -EINVAL);
	CHECK_EQ(vmo_object_create_uri(eng, NULL, NULL, &o), -EINVAL);
	CHECK(vmo_object_create_uri(eng, "nbd+unix:///?socket=/nonexistent/sock", NULL, &o) < 0);
	printf("nbd, no server: %s\n", vmo_last_error_detail());
	CHECK_OK(vmo_engine_destroy(eng));
}

/* ---- punch ---------------------------------------------------------------------------------- */

static void punch_one(struct vmo_engine *eng, const char *uri)
{
	uint64_t npages = 64;
	struct vmo_object *o;
	struct vmo_object_opts oo = { .size = npages * PG };
	CHECK_OK(vmo_object_create_uri(eng, uri, &oo, &o));
	uint64_t *v;
	CHECK_OK(vmo_map(o, 0, npages * PG, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	for (uint64_t pg = 0; pg < npages; pg++)
		fill_page(v + pg * (PG / 8), pg, pg % 2 ? TEXT : RANDOM, 1);
	CHECK_OK(vmo_return_range(o, 0, 32 * PG, VMO_WAIT)); /* pages 0..31 in the store only */
	CHECK_OK(vmo_sync(o, VMO_WAIT));                       /* 32..63 in both */
	/* punch 8..15 (out of memory) and 40..47 (in memory) */
	CHECK_OK(vmo_discard_range(o, 8 * PG, 8 * PG, VMO_WAIT | VMO_PUNCH));
	CHECK_OK(vmo_discard_range(o, 40 * PG, 8 * PG, VMO_WAIT | VMO_PUNCH));
	for (int pass = 0; pass < 2; pass++) { /* from memory, then from the store */
		for (uint64_t pg = 0; pg < npages; pg++) {
			bool hole = (pg >= 8 && pg < 16) || (pg >= 40 && pg < 48);
			uint64_t want[PG / 8];
			if (hole)
				memset(want, 0, PG);
			else
				fill_page(want, pg, pg % 2 ? TEXT : RANDOM, 1);
			if (memcmp(v + pg * (PG / 8), want, PG)) {
				fprintf(stderr, "%s: page %llu (%s) wrong after a punch (pass %d)\n", uri,
					(unsigned long long)pg, hole ? "punched" : "kept", pass);
				abort();
			}
		}
		CHECK_OK(vmo_return(o, VMO_WAIT));
	}
	CHECK_OK(vmo_unmap(o, v, npages * PG));
	vmo_object_unref(o);
	printf("punch %s: ok\n", uri);
}

static void case_punch(void)
{
	struct vmo_engine *eng = t_engine(2);
	mk_tmpdir();
	char uri[400];
	const char *fmt[] = { "file:%s/f", "swap:%s", "lz4,budget=64K:swap:%s", "zstd:file:%s/z", "lz4" };
	for (size_t i = 0; i < sizeof fmt / sizeof *fmt; i++) {
		snprintf(uri, sizeof uri, fmt[i], tmpdir);
		punch_one(eng, uri);
	}
	/* the swap file gives the slots back */
	struct vmo_swap *sw;
	CHECK_OK(vmo_swap_open(tmpdir, &sw));
	const struct vmo_pager_ops *ops;
	void *ctx;
	CHECK_OK(vmo_pager_swap(sw, 64 * PG, &ops, &ctx));
	struct vmo_object *o;
	struct vmo_object_opts oo = { .size = 64 * PG };
	CHECK_OK(vmo_object_create(eng, ops, ctx, &oo, &o));
	uint64_t *v;
	CHECK_OK(vmo_map(o, 0, 64 * PG, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	for (uint64_t pg = 0; pg < 64; pg++)
		fill_page(v + pg * (PG / 8), pg, RANDOM, 2);
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	struct vmo_swap_stats st;
	CHECK_OK(vmo_swap_stats(sw, &st));
	CHECK_EQ(st.slots_used, 64);
	CHECK_OK(vmo_discard_range(o, 0, 32 * PG, VMO_WAIT | VMO_PUNCH));
	CHECK_OK(vmo_swap_stats(sw, &st));
	CHECK_EQ(st.slots_used, 32);
	CHECK(st.disk_bytes <= 32 * PG + 64 * 1024);
	CHECK_OK(vmo_unmap(o, v, 64 * PG));
	vmo_object_unref(o);
	CHECK_OK(vmo_swap_close(sw));
	/* a pager of the program's own: -EOPNOTSUPP, nothing dropped */
	struct t_store *ts = t_store_new(16 * PG, 1);
	struct vmo_object_opts o2 = { .size = 16 * PG };
	CHECK_OK(vmo_object_create(eng, &t_store_ops, ts, &o2, &o));
	CHECK_OK(vmo_map(o, 0, 16 * PG, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	v[3] = 77;
	CHECK_EQ(vmo_discard_range(o, 0, 16 * PG, VMO_WAIT | VMO_PUNCH), -EOPNOTSUPP);
	CHECK_EQ(v[3], 77);
	CHECK_EQ(vmo_discard_range(o, 0, 16 * PG, VMO_WAIT | (1u << 7)), -EINVAL);
	CHECK_OK(vmo_unmap(o, v, 16 * PG));
	vmo_object_unref(o);
	t_store_free(ts);
	CHECK_OK(vmo_engine_destroy(eng));
	rm_tmpdir();
}

/* ---- NBD: a real nbdkit -------------------------------------------------------------------- */

static bool have_nbdkit(void)
{
	return system("nbdkit --version >/dev/null 2>&1") == 0;
}

/* nbdkit with args (after -f -U sock) in the foreground (its pid), dying
 * with us; returns once it accepts connections.  The socket file appears
 * at bind(), before listen(): a connect in between is refused (seen in CI).
 * nbdkit writes its pidfile (-P) only once it is ready, so that is waited
 * for. */
static pid_t nbdkit_run(const char *sock, const char *const *args)
{
	char pidf[320];
	snprintf(pidf, sizeof pidf, "%s.pid", sock);
	unlink(sock);
	unlink(pidf);
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		const char *argv[24] = { "nbdkit", "--exit-with-parent", "-f", "-P", pidf, "-U", sock };
		int n = 7;
		for (int i = 0; args[i] && n < 23; i++)
			argv[n++] = args[i];
		argv[n] = NULL;
		execvp("nbdkit", (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 1000; i++) {
		struct stat st;
		if (stat(pidf, &st) == 0 && st.st_size > 0)
			return pid;
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			fprintf(stderr, "nbdkit exited before it served %s\n", sock);
			abort();
		}
		usleep(10000);
	}
	fprintf(stderr, "nbdkit did not get ready on %s\n", sock);
	abort();
}

static pid_t nbdkit_start(const char *sock, const char *plugin, const char *arg1, const char *arg2)
{
	const char *args[] = { plugin, arg1, arg2, NULL };
	return nbdkit_run(sock, args);
}

static void nbdkit_kill(pid_t pid)
{
	kill(pid, SIGKILL);
	CHECK(waitpid(pid, NULL, 0) == pid);
}

static void case_nbd_roundtrip(void)
{
	if (!have_nbdkit())
		t_skip_case("nbdkit is not installed (scripts/deps.sh installs it)");
	struct vmo_engine *eng = t_engine(2);
	mk_tmpdir();
	char sock[300], uri[400];
	snprintf(sock, sizeof sock, "%s/nbd.sock", tmpdir);
	pid_t nk = nbdkit_start(sock, "memory", "size=8M", NULL);
	snprintf(uri, sizeof uri, "nbd+unix:///?socket=%s", sock);
	struct vmo_object *obj;
	struct vmo_object_opts oo = { .budget = 64 * PG };
	CHECK_OK(vmo_object_create_uri(eng, uri, &oo, &obj));
	CHECK_EQ(vmo_object_size(obj), 8u << 20);
	churn(obj, 2048, TEXT, 8000, 3);
	CHECK_OK(vmo_sync(obj, VMO_WAIT));
	struct vmo_nbd_stats st;
	CHECK_OK(vmo_pager_nbd_stats(vmo_object_ctx(obj), &st));
	printf("nbd: %llu reads, %llu writes, %llu zeroes, %llu flushes, at most %llu in flight\n",
	       (unsigned long long)st.reads, (unsigned long long)st.writes, (unsigned long long)st.zeroes,
	       (unsigned long long)st.flushes, (unsigned long long)st.inflight_peak);
	CHECK(st.reads > 0 && st.writes > 0 && st.flushes > 0 && st.zeroes > 0);
	CHECK_EQ(st.failed, 0);
	vmo_object_unref(obj);
	punch_one(eng, uri);
	CHECK_OK(vmo_engine_destroy(eng));
	nbdkit_kill(nk);
	rm_tmpdir();
}

struct toucher {
	uint64_t *v;
	uint64_t npages;
	_Atomic int stop;
	_Atomic uint64_t n;
};

static void *toucher_main(void *arg)
{
	struct toucher *t = arg;
	uint64_t seed = 11;
	while (!atomic_load(&t->stop)) {
		uint64_t pg = t_rand(&seed) % t->npages;
		/* word 1 of each page: its page number, written and read */
		t->v[pg * (PG / 8) + 1] = pg | 0xabc0000000000000ull;
		CHECK_EQ(t->v[((pg * 7) % t->npages) * (PG / 8) + 2], t_pattern(((pg * 7) % t->npages) * PG + 16));
		atomic_fetch_add(&t->n, 1);
	}
	return NULL;
}

static void case_nbd_restart(void)
{
	if (!have_nbdkit())
		t_skip_case("nbdkit is not installed (scripts/deps.sh installs it)");
	struct vmo_engine *eng = t_engine(2);
	mk_tmpdir();
	char sock[300], uri[400], file[300];
	snprintf(sock, sizeof sock, "%s/nbd.sock", tmpdir);
	snprintf(file, sizeof file, "%s/disk", tmpdir);
	uint64_t npages = 1024;
	int fd = open(file, O_RDWR | O_CREAT, 0600);
	CHECK(fd >= 0);
	for (uint64_t off = 0; off < npages * PG; off += 8) { /* t_pattern in every word */
		uint64_t w = t_pattern(off);
		CHECK(pwrite(fd, &w, 8, (off_t)off) == 8);
	}
	char arg[320];
	snprintf(arg, sizeof arg, "file=%s", file);
	pid_t nk = nbdkit_start(sock, "file", arg, NULL);
	snprintf(uri, sizeof uri, "nbd+unix:///?socket=%s", sock);
	struct vmo_object *obj;
	struct vmo_object_opts oo = { .budget = 32 * PG };
	CHECK_OK(vmo_object_create_uri(eng, uri, &oo, &obj));
	struct toucher t = { .npages = npages };
	CHECK_OK(vmo_map(obj, 0, npages * PG, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&t.v));
	pthread_t th;
	CHECK(pthread_create(&th, NULL, toucher_main, &t) == 0);
	for (int k = 0; k < 3; k++) {
		uint64_t n0 = atomic_load(&t.n);
		while (atomic_load(&t.n) < n0 + 100) /* (running: faults and writebacks on the wire) */
			usleep(1000);
		nbdkit_kill(nk); /* mid-run: requests on the wire are lost with it */
		usleep(300 * 1000);
		nk = nbdkit_start(sock, "file", arg, NULL);
		struct vmo_nbd_stats s1;
		uint64_t t0 = t_now_ns();
		do { /* until the store is connected again */
			usleep(1000);
			CHECK_OK(vmo_pager_nbd_stats(vmo_object_ctx(obj), &s1));
			CHECK(t_now_ns() - t0 < 20ull * 1000000000);
		} while (s1.reconnects < (uint64_t)k + 1);
	}
	uint64_t n1 = atomic_load(&t.n);
	while (atomic_load(&t.n) < n1 + 100)
		usleep(1000);
	atomic_store(&t.stop, 1);
	pthread_join(th, NULL);
	CHECK_OK(vmo_sync(obj, VMO_WAIT));
	struct vmo_nbd_stats st;
	CHECK_OK(vmo_pager_nbd_stats(vmo_object_ctx(obj), &st));
	printf("nbd restart: %llu touches; %llu reconnects, %llu requests retried, %llu failed\n",
	       (unsigned long long)atomic_load(&t.n), (unsigned long long)st.reconnects,
	       (unsigned long long)st.retried, (unsigned long long)st.failed);
	CHECK(st.reconnects >= 3);
	CHECK_EQ(st.failed, 0);
	/* after sync, the file has every byte: pages touched hold their number in word 1 */
	CHECK_OK(vmo_unmap(obj, t.v, npages * PG));
	vmo_object_unref(obj);
	nbdkit_kill(nk);
	for (uint64_t pg = 0; pg < npages; pg++) {
		uint64_t w[3];
		CHECK(pread(fd, w, sizeof w, (off_t)(pg * PG)) == sizeof w);
		CHECK_EQ(w[0], t_pattern(pg * PG));
		CHECK(w[1] == t_pattern(pg * PG + 8) || w[1] == (pg | 0xabc0000000000000ull));
		CHECK_EQ(w[2], t_pattern(pg * PG + 16));
	}
	close(fd);
	CHECK_OK(vmo_engine_destroy(eng));
	rm_tmpdir();
}

static void case_nbd_tls(void)
{
	if (!have_nbdkit())
		t_skip_case("nbdkit is not installed (scripts/deps.sh installs it)");
	struct vmo_engine *eng = t_engine(2);
	mk_tmpdir();
	char sock[300], uri[700], psk[300], arg[320];
	snprintf(sock, sizeof sock, "%s/nbd.sock", tmpdir);
	snprintf(psk, sizeof psk, "%s/keys.psk", tmpdir);
	FILE *f = fopen(psk, "w");
	CHECK(f != NULL);
	fprintf(f, "alice:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
	fclose(f);
	CHECK(chmod(psk, 0600) == 0);
	snprintf(arg, sizeof arg, "--tls-psk=%s", psk);
	const char *args[] = { "--tls=require", arg, "memory", "size=4M", NULL };
	pid_t nk = nbdkit_run(sock, args);
	struct vmo_object *obj;
	struct vmo_object_opts oo = { .size = 256 * PG, .budget = 32 * PG };
	snprintf(uri, sizeof uri, "nbd+unix:///?socket=%s", sock);
	int rc = vmo_object_create_uri(eng, uri, &oo, &obj);
	if (rc == 0 || strstr(vmo_last_error_detail(), "TLS") == NULL) {
		fprintf(stderr, "without TLS: %d (%s): want a refusal that names TLS\n", rc, vmo_last_error_detail());
		abort();
	}
	printf("without TLS: %s\n", vmo_last_error_detail());
	snprintf(uri, sizeof uri, "nbds+unix://alice@/?socket=%s&tls-psk-file=%s", sock, psk);
	rc = vmo_object_create_uri(eng, uri, &oo, &obj);
	if (rc == -EOPNOTSUPP || rc == -ENOTSUP) { /* (a libnbd without GnuTLS) */
		nbdkit_kill(nk);
		CHECK_OK(vmo_engine_destroy(eng));
		rm_tmpdir();
		t_skip_case("this libnbd has no TLS: %s", vmo_last_error_detail());
	}
	CHECK_OK(rc);
	churn(obj, 256, TEXT, 1500, 4);
	vmo_object_unref(obj);
	nbdkit_kill(nk);
	CHECK_OK(vmo_engine_destroy(eng));
	rm_tmpdir();
}

static void case_nbd_errors(void)
{
	if (!have_nbdkit())
		t_skip_case("nbdkit is not installed (scripts/deps.sh installs it)");
	struct vmo_engine *eng = t_engine(2);
	mk_tmpdir();
	char sock[300], uri[400], trig[300], targ[340];
	snprintf(sock, sizeof sock, "%s/nbd.sock", tmpdir);
	snprintf(trig, sizeof trig, "%s/fail-reads", tmpdir);
	snprintf(targ, sizeof targ, "error-pread-file=%s", trig);
	const char *args[] = { "--filter=error", "pattern", "size=1M", "error=EIO", "error-pread-rate=100%", targ, NULL };
	pid_t nk = nbdkit_run(sock, args);
	snprintf(uri, sizeof uri, "nbd+unix:///?socket=%s", sock);
	struct vmo_object *obj;
	struct vmo_object_opts oo = { .flags = VMO_OBJ_NO_READAHEAD };
	CHECK_OK(vmo_object_create_uri(eng, uri, &oo, &obj));
	int fd = open(trig, O_CREAT | O_WRONLY, 0600); /* reads fail from now */
	CHECK(fd >= 0);
	close(fd);
	uint64_t w;
	size_t done = 1;
	int rc = vmo_memcpy(obj, 3 * PG, &w, 8, 0, &done);
	printf("a read the server fails: %d (%s), %zu bytes done\n", rc, vmo_strerror(rc), done);
	CHECK_EQ(rc, -EIO);
	CHECK_EQ(done, 0);
	CHECK_EQ(vmo_get_error(obj, 3 * PG), -EIO);
	unlink(trig); /* the server answers again */
	CHECK_OK(vmo_clear_error(obj, 3 * PG));
	CHECK_OK(vmo_memcpy(obj, 3 * PG, &w, 8, 0, &done));
	/* the pattern plugin: each 8-byte word is its offset, big-endian */
	CHECK_EQ(__builtin_bswap64(w), 3 * PG);
	vmo_object_unref(obj);
	kill(nk, SIGKILL);
	waitpid(nk, NULL, 0);
	CHECK_OK(vmo_engine_destroy(eng));
	rm_tmpdir();
}

static void case_nbd_hung(void)
{
	mk_tmpdir();
	char sock[300], uri[400];
	snprintf(sock, sizeof sock, "%s/hung.sock", tmpdir);
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	CHECK(strlen(sock) < sizeof sa.sun_path);
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	CHECK(l >= 0 && bind(l, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(l, 16) == 0);
	/* (connections are queued and never answered: no greeting) */
	snprintf(uri, sizeof uri, "nbd+unix:///?socket=%s", sock);
	struct vmo_nbd_opts no = { .uri = uri, .retry_ms = 300 };
	const struct vmo_pager_ops *ops;
	void *ctx;
	uint64_t t0 = t_now_ns();
	int rc = vmo_pager_nbd(&no, &ops, &ctx);
	double ms = (double)(t_now_ns() - t0) / 1e6;
	printf("a server that never answers: %d (%s) after %.0f ms\n", rc, vmo_last_error_detail(), ms);
	CHECK_EQ(rc, -ETIMEDOUT);
	CHECK(ms < 3000);
	close(l);
	rm_tmpdir();
}

static sigjmp_buf down_jb;
static void on_down_bus(int sig)
{
	(void)sig;
	siglongjmp(down_jb, 1);
}

static void down_child(void *arg)
{
	uint64_t *v = arg;
	alarm(30);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_down_bus;
	sigaction(SIGBUS, &sa, NULL);
	if (sigsetjmp(down_jb, 1))
		_exit(70); /* SIGBUS: right */
	volatile uint64_t x = v[100 * (PG / 8)];
	_exit(x == 0 ? 71 : 72); /* zeros (71) or data (72): wrong */
}

static void case_nbd_down(void)
{
	if (!have_nbdkit())
		t_skip_case("nbdkit is not installed (scripts/deps.sh installs it)");
	setenv("VMO_NBD_RETRY_MS", "400", 1);
	struct vmo_engine *eng = t_engine(2);
	mk_tmpdir();
	char sock[300], uri[400];
	snprintf(sock, sizeof sock, "%s/nbd.sock", tmpdir);
	pid_t nk = nbdkit_start(sock, "memory", "size=1M", NULL);
	snprintf(uri, sizeof uri, "nbd+unix:///?socket=%s", sock);
	struct vmo_object *obj;
	struct vmo_object_opts oo = { .flags = VMO_OBJ_NO_READAHEAD };
	CHECK_OK(vmo_object_create_uri(eng, uri, &oo, &obj));
	uint64_t *v;
	CHECK_OK(vmo_map(obj, 0, 256 * PG, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	v[1] = 42; /* page 0 in memory, dirty */
	nbdkit_kill(nk);
	uint64_t t0 = t_now_ns();
	CHECK_EQ(vmo_sync(obj, VMO_WAIT), -EIO); /* after retry_ms, not for ever */
	printf("nbd down: sync failed after %.0f ms\n", (double)(t_now_ns() - t0) / 1e6);
	CHECK_EQ(v[1], 42); /* still in memory */
	/* a fault on a page never read: SIGBUS in a child sharing nothing... the
	 * fault must be this process's: a thread of ours in a child cannot be;
	 * so the parent faults it through a forked toucher of a SHARE view */
	CHECK_OK(vmo_inherit(obj, v, 256 * PG, VMO_INHERIT_SHARE));
	int st = t_fork_run(down_child, v);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 70) {
		fprintf(stderr, "child touching a page of a store that is down: status %#x (exit %d; 70 = SIGBUS)\n", st,
			WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		abort();
	}
	CHECK_OK(vmo_unmap(obj, v, 256 * PG));
	CHECK_OK(vmo_discard(obj, VMO_WAIT)); /* (its dirty page cannot be written anywhere) */
	vmo_object_unref(obj);
	CHECK_OK(vmo_engine_destroy(eng));
	unsetenv("VMO_NBD_RETRY_MS");
	rm_tmpdir();
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	return t_main(argc, argv,
		      T_CASES({ "swap_roundtrip", case_swap_roundtrip }, { "swap_alias", case_swap_alias },
			      { "swap_churn", case_swap_churn },
			      { "compress_spill_lz4", case_compress_spill_lz4 },
			      { "compress_spill_zstd", case_compress_spill_zstd },
			      { "compress_full", case_compress_full }, { "uri_kinds", case_uri_kinds },
			      { "uri_bad", case_uri_bad }, { "punch", case_punch },
			      { "nbd_roundtrip", case_nbd_roundtrip },
			      { "nbd_restart", case_nbd_restart }, { "nbd_tls", case_nbd_tls },
			      { "nbd_errors", case_nbd_errors }, { "nbd_hung", case_nbd_hung },
			      { "nbd_down", case_nbd_down }));
}
