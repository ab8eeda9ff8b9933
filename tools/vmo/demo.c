/* SPDX-License-Identifier: MIT */
/* vmo demo: the main job.  A file-backed object, two mappings, threads,
 * random and sequential first touches, full verification, writeback to the
 * file and re-reading.  cmd_demo runs it as phases:
 *
 *   demo_parse     the command line
 *   demo_start     the engine; what the kernel offers
 *   demo_open      the pattern file and the object over it
 *   demo_map       mappings A and B, and the sampler (--budget)
 *   demo_random    1. random first touches of [0, half) by nthreads threads
 *   demo_scan      2. a sequential scan of [half, size) through B; timings
 *   demo_write     3. a few pages written through A
 *   demo_verify    4. every byte, through both mappings
 *   demo_sync      5. vmo_sync; the file holds the written pages
 *   demo_return       vmo_return; the written pages come back from the file
 *   demo_report    the budget line, the stats, the final OK
 *   demo_close     everything undone; the exit status
 *
 * Each phase prints its line as it ends, or with --json adds its member to
 * the one JSON object (d->j) that cmd_demo opens and closes; long phases
 * show progress on standard error (progress_begin/add/end). */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The data every byte is checked against: word at offset o. */
static inline uint64_t pattern(uint64_t o) { return (o * 0x9E3779B97F4A7C15ull) ^ 0x5bd1e995ull; }

static void fill_pattern(uint64_t *p, uint64_t off, size_t len, bool invert)
{
	for (size_t i = 0; i < len / 8; i++)
		p[i] = invert ? ~pattern(off + i * 8) : pattern(off + i * 8);
}

static inline uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* With --budget: a thread samples the object's resident bytes (every
 * 100 us) for the whole run, to report the most it held. */
struct sampler {
	struct vmo_object *obj;
	atomic_bool stop;
	_Atomic uint64_t max;
	uint64_t samples;
	pthread_t th;
	bool running;
};

static void sampler_note(struct sampler *sm, uint64_t resident)
{
	uint64_t m = atomic_load(&sm->max);
	while (resident > m && !atomic_compare_exchange_weak(&sm->max, &m, resident))
		;
}

static void *sampler_run(void *arg)
{
	struct sampler *sm = arg;
	const struct timespec nap = { 0, 100000 };
	while (!atomic_load(&sm->stop)) {
		struct vmo_stats st;
		if (vmo_object_stats(sm->obj, &st) == 0)
			sampler_note(sm, st.resident);
		sm->samples++;
		nanosleep(&nap, NULL);
	}
	return NULL;
}

static void sampler_stop(struct sampler *sm)
{
	if (!sm->running)
		return;
	atomic_store(&sm->stop, true);
	pthread_join(sm->th, NULL);
	sm->running = false;
}

struct demo {
	uint64_t size, quarter, half; /* object bytes; mapping B starts at quarter */
	uint32_t psz;
	unsigned nthreads;
	unsigned write_pct; /* of the random touches, this percentage writes */
	char *a, *b; /* A = [0, size) read-write; B = [quarter, size) read-only */
	struct vmo_object *obj;
	/* inv[page]: the page holds the inverted pattern (it was written).  Each
	 * random-phase thread sets only the entries of its own pages. */
	unsigned char *inv;
	/* the command line */
	uint64_t budget; /* --budget, 0 for none */
	bool no_ra, dirty_async;
	bool extended; /* anything beyond the default run: say more, print the engine's stats */
	struct json *j; /* --json: the object the phases add to; NULL for text */
	/* the run */
	struct vmo_engine *eng;
	int fd;           /* the backing file, -1 until made */
	struct sampler sm; /* runs with --budget */
	uint64_t written[4]; /* the pages phase 3 writes through A */
	int nw;
};

/* Does page off hold the inverted (written) pattern? */
static inline bool demo_inverted(const struct demo *d, uint64_t off) { return d->inv[off / d->psz] != 0; }

/* The object offset of the page holding addr in mapping A or B. */
static uint64_t demo_offset(const struct demo *d, uintptr_t addr)
{
	uintptr_t a = (uintptr_t)d->a, b = (uintptr_t)d->b;
	uint64_t off = 0;
	if (addr >= a && addr - a < d->size)
		off = addr - a;
	else if (b && addr >= b && addr - b < d->size - d->quarter)
		off = d->quarter + (addr - b);
	return off / d->psz * d->psz;
}

struct toucher {
	struct demo *d;
	unsigned id;
	uint64_t pages, writes, ns, bad;
	uintptr_t bus; /* SIGBUS address, 0 if none */
	pthread_t th;
};

/* Touch this thread's share of [0, half) in a random order, through A or
 * (for pages B also covers) B, picked at random; check one word per page.
 * write_pct percent of the touches (spread evenly over the random order)
 * then write the whole page through A with the inverted pattern, a value
 * derived from the page's offset, so verification stays exact. */
struct touch_args {
	struct toucher *t;
	const uint64_t *order;
	uint64_t n, seed;
};

static void touch_loop(void *arg)
{
	struct touch_args *ta = arg;
	struct toucher *t = ta->t;
	const struct demo *d = t->d;
	for (uint64_t i = 0; i < ta->n; i++) {
		uint64_t pg = ta->order[i] * d->psz;
		uint64_t off = pg + (xorshift(&ta->seed) % (d->psz / 8)) * 8;
		const char *p = (off >= d->quarter && (ta->seed & 1)) ? d->b + (off - d->quarter) : d->a + off;
		if (*(const volatile uint64_t *)p != pattern(off))
			t->bad++;
		t->pages++;
		if ((i & 15) == 15)
			progress_add(16ull * d->psz);
		if ((i + 1) * d->write_pct / 100 > i * d->write_pct / 100) {
			fill_pattern((uint64_t *)(void *)(d->a + pg), pg, d->psz, true);
			d->inv[pg / d->psz] = 1;
			t->writes++;
		}
	}
}

static void *touch_random(void *arg)
{
	struct toucher *t = arg;
	struct demo *d = t->d;
	uint64_t npg = d->half / d->psz;
	uint64_t mine = npg / d->nthreads + (t->id < npg % d->nthreads);
	uint64_t *order = malloc((mine ? mine : 1) * sizeof *order);
	if (!order) {
		t->bad = UINT64_MAX;
		return NULL;
	}
	for (uint64_t i = 0; i < mine; i++)
		order[i] = t->id + i * d->nthreads;
	uint64_t seed = 0x2545F4914F6CDD1Dull + t->id * 0x9E3779B97F4A7C15ull;
	for (uint64_t i = mine; i > 1; i--) {
		uint64_t j = xorshift(&seed) % i, x = order[i - 1];
		order[i - 1] = order[j];
		order[j] = x;
	}
	struct touch_args ta = { t, order, mine, seed };
	uint64_t t0 = now_ns();
	guarded(touch_loop, &ta, &t->bus);
	t->ns = now_ns() - t0;
	free(order);
	return NULL;
}

/* Scan [half, size) in order through B; one word per page checked. */
struct scan_args {
	const struct demo *d;
	uint64_t bad;
};

static void scan_loop(void *arg)
{
	struct scan_args *sa = arg;
	const struct demo *d = sa->d;
	for (uint64_t off = d->half; off < d->size; off += d->psz) {
		if (*(const volatile uint64_t *)(d->b + (off - d->quarter)) != pattern(off))
			sa->bad++;
		progress_add(d->psz);
	}
}

static int scan_sequential(struct demo *d, uint64_t *ns, uint64_t *bad, uintptr_t *bus)
{
	struct scan_args sa = { d, 0 };
	progress_begin("sequential scan", d->size - d->half);
	uint64_t t0 = now_ns();
	bool ok = guarded(scan_loop, &sa, bus);
	*ns = now_ns() - t0;
	progress_end();
	*bad = sa.bad;
	return ok ? 0 : 1;
}

/* Compare [view_off, size) of view (mapping the object from view_off) with
 * the pattern, written pages (d->inv) with the inverse.  Returns mismatching
 * pages; reports the first. */
static uint64_t verify_view(struct demo *d, const char *name, const char *view, uint64_t view_off,
			    uint64_t *pages, uintptr_t *bus)
{
	uint64_t *want = malloc(d->psz), *got = malloc(d->psz), nbad = 0;
	if (!want || !got) {
		free(want);
		free(got);
		return UINT64_MAX;
	}
	for (uint64_t off = view_off; off < d->size; off += d->psz) {
		fill_pattern(want, off, d->psz, demo_inverted(d, off));
		if (!guarded_copy(got, view + (off - view_off), d->psz, bus)) {
			nbad++;
			break;
		}
		(*pages)++;
		progress_add(d->psz);
		if (memcmp(want, got, d->psz)) {
			if (!nbad++) {
				size_t w = 0;
				while (want[w] == got[w])
					w++;
				msg("MISMATCH through mapping %s at object offset %" PRIu64 ": expected %016" PRIx64
				    ", read %016" PRIx64, name, off + w * 8, want[w], got[w]);
			}
		}
	}
	free(want);
	free(got);
	return nbad;
}

/* Create the backing file: size bytes of pattern, in TMPDIR, unlinked. */
static int make_pattern_file(uint64_t size, int *fd_out)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	snprintf(path, sizeof path, "%s/vmo-demo-XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path);
	if (fd < 0) {
		msg("cannot create a temporary file in %s: %s", dir && *dir ? dir : "/tmp", strerror(errno));
		return 1;
	}
	unlink(path);
	uint64_t *buf = malloc(CHUNK);
	if (!buf) {
		close(fd);
		return fail("malloc", -ENOMEM);
	}
	progress_begin("writing the data file", size);
	for (uint64_t off = 0; off < size; off += CHUNK) {
		size_t n = size - off < CHUNK ? (size_t)(size - off) : CHUNK;
		fill_pattern(buf, off, n, false);
		ssize_t w = pwrite(fd, buf, n, (off_t)off);
		if (w != (ssize_t)n) {
			msg("writing the temporary file: %s", w < 0 ? strerror(errno) : "short write (disk full?)");
			progress_end();
			free(buf);
			close(fd);
			return 1;
		}
		progress_add(n);
	}
	progress_end();
	free(buf);
	*fd_out = fd;
	return 0;
}

/* Read page off of the file with pread and compare it with the pattern. */
static int check_file_page(const struct demo *d, int fd, uint64_t off, bool inverted)
{
	uint64_t *want = malloc(d->psz), *got = malloc(d->psz);
	int ret = 1;
	if (!want || !got) {
		fail("malloc", -ENOMEM);
		goto out;
	}
	fill_pattern(want, off, d->psz, inverted);
	ssize_t r = pread(fd, got, d->psz, (off_t)off);
	if (r != (ssize_t)d->psz) {
		msg("reading the file back at %" PRIu64 ": %s", off, r < 0 ? strerror(errno) : "short read");
		goto out;
	}
	if (memcmp(want, got, d->psz)) {
		msg("MISMATCH: the file at %" PRIu64 " does not hold the %s data", off,
		    inverted ? "written" : "original");
		goto out;
	}
	ret = 0;
out:
	free(want);
	free(got);
	return ret;
}

/* After vmo_sync: every page of the file, read with pread, holds what the
 * object holds (the pattern, or its inverse for pages written), whether the
 * sync or the evictor wrote it back. */
static int verify_file(const struct demo *d, int fd)
{
	uint64_t *want = malloc(d->psz), *got = malloc(CHUNK > d->psz ? CHUNK : d->psz);
	uint64_t ninv = 0;
	int ret = 1;
	if (!want || !got) {
		fail("malloc", -ENOMEM);
		goto out;
	}
	size_t chunk = CHUNK > d->psz ? CHUNK : d->psz; /* a multiple of the page size */
	progress_begin("checking the file", d->size);
	for (uint64_t off = 0; off < d->size; off += chunk) {
		size_t n = d->size - off < chunk ? (size_t)(d->size - off) : chunk;
		ssize_t r = pread(fd, got, n, (off_t)off);
		if (r != (ssize_t)n) {
			msg("reading the file back at %" PRIu64 ": %s", off, r < 0 ? strerror(errno) : "short read");
			goto out;
		}
		for (size_t po = 0; po < n; po += d->psz) {
			bool inv = demo_inverted(d, off + po);
			ninv += inv;
			fill_pattern(want, off + po, d->psz, inv);
			if (memcmp(want, (char *)got + po, d->psz)) {
				msg("MISMATCH: the file at %" PRIu64 " does not hold the %s data after vmo_sync",
				    off + po, inv ? "written" : "original");
				goto out;
			}
		}
		progress_add(n);
	}
	progress_end();
	char b[32];
	if (d->j) {
		json_object(d->j, "file");
		json_u64(d->j, "bytes", d->size);
		json_u64(d->j, "pages_written", ninv);
		json_bool(d->j, "ok", true);
		json_end(d->j);
	} else {
		printf("file:        every page of the %s file is right after vmo_sync (pread), %" PRIu64
		       " written: OK\n", human(d->size, b, sizeof b), ninv);
	}
	ret = 0;
out:
	progress_end();
	free(want);
	free(got);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* The phases                                                               */

/* A whole number from 0 to max, decimal digits only: false if s is not one. */
static bool parse_count(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t n;
	char *end;
	errno = 0;
	if (s[0] < '0' || s[0] > '9' || (n = strtoull(s, &end, 10), errno || *end) || n > max)
		return false;
	*out = n;
	return true;
}

static int demo_parse_budget(struct demo *d, const char *budget_s)
{
	int rc = parse_size("--budget", budget_s, false, &d->budget);
	if (rc)
		return rc;
	char b[32];
	if (d->budget < d->psz)
		return usage_error("--budget: '%s' is less than one page (%s)", budget_s, human(d->psz, b, sizeof b));
	if (d->budget > d->size)
		return usage_error("--budget: '%s' is more than the demo's size (%s)", budget_s,
				   human(d->size, b, sizeof b));
	return 0;
}

/* The command line into d (and *json: --json); 0 or EXIT_USAGE. */
static int demo_parse(int argc, char **argv, struct demo *d, bool *json)
{
	const char *size_s = NULL, *threads_s = NULL, *psize_s = NULL, *budget_s = NULL, *wpct_s = NULL,
		   *pos[1];
	bool prog_on = false, prog_off = false;
	const struct opt opts[] = {
		{ "--size", true, &size_s, NULL },
		{ "--threads", true, &threads_s, NULL },
		{ "--page-size", true, &psize_s, NULL },
		{ "--no-readahead", false, NULL, &d->no_ra },
		{ "--budget", true, &budget_s, NULL },
		{ "--write-pct", true, &wpct_s, NULL },
		{ "--dirty-async", false, NULL, &d->dirty_async },
		{ "--json", false, NULL, json },
		{ "--progress", false, NULL, &prog_on },
		{ "--no-progress", false, NULL, &prog_off },
		{ NULL, false, NULL, NULL },
	};
	int npos, rc = parse_opts(argc, argv, opts, pos, 0, &npos);
	if (rc)
		return rc;
	if (size_s && (rc = parse_size("--size", size_s, false, &d->size)))
		return rc;
	uint64_t n;
	if (threads_s) {
		if (!parse_count(threads_s, 64, &n) || n < 1)
			return usage_error("--threads: '%s' must be a number from 1 to 64", threads_s);
		d->nthreads = (unsigned)n;
	}
	if (psize_s && (rc = parse_page_size(psize_s, &d->psz)))
		return rc;
	if (d->size % d->psz || d->size / d->psz < 4)
		return usage_error("--size: '%s' must be a multiple of the page size (%" PRIu32
				   ") and at least 4 pages", size_s ? size_s : "64M", d->psz);
	if (d->size > (16ull << 30))
		return usage_error("--size: '%s' is more than the demo's limit of 16G", size_s);
	if (budget_s && (rc = demo_parse_budget(d, budget_s)))
		return rc;
	if (wpct_s) {
		if (!parse_count(wpct_s, 100, &n))
			return usage_error("--write-pct: '%s' must be a whole number from 0 to 100", wpct_s);
		d->write_pct = (unsigned)n;
	}
	d->quarter = d->size / 4 / d->psz * d->psz;
	d->half = d->size / 2 / d->psz * d->psz;
	d->extended = budget_s || wpct_s || d->dirty_async;
	return progress_setup(prog_on, prog_off, false);
}

/* Say what runs, create the engine, say what the kernel offers.  On failure
 * there is no engine: nothing to undo. */
static int demo_start(struct demo *d)
{
	int rc;
	install_sigbus();
	char b1[32], b2[32];
	if (d->j) {
		json_str(d->j, "command", "demo");
		json_str(d->j, "libvmo", vmo_version());
		json_u64(d->j, "size", d->size);
		json_u64(d->j, "page_size", d->psz);
		json_u64(d->j, "threads", d->nthreads);
		json_bool(d->j, "readahead", !d->no_ra);
		json_u64(d->j, "budget", d->budget);
		json_u64(d->j, "write_pct", d->write_pct);
		json_bool(d->j, "dirty_async", d->dirty_async);
	} else {
		printf("vmo demo: a %s file paged through libvmo's file pager; page size %s, %u threads, "
		       "read-ahead %s\n",
		       human(d->size, b1, sizeof b1), human(d->psz, b2, sizeof b2), d->nthreads,
		       d->no_ra ? "off" : "on");
	}

	struct vmo_engine_opts eo = { .flags = d->dirty_async ? VMO_ENGINE_DIRTY_ASYNC : 0 };
	if ((rc = vmo_engine_create(&eo, &d->eng))) {
		if (d->dirty_async && rc == -EOPNOTSUPP) {
			msg("--dirty-async: the kernel refuses asynchronous dirty tracking: %s", vmo_strerror(rc));
			const char *det = vmo_last_error_detail();
			if (det && *det)
				fprintf(stderr, "%s\n", det);
			return 1;
		}
		return engine_fail(rc);
	}
	if (d->j) {
		json_features(d->j, "kernel_features", vmo_engine_features(d->eng));
		return 0;
	}
	printf("kernel:      ");
	print_features_line(stdout, vmo_engine_features(d->eng));
	if (d->extended) {
		printf("dirty:       %s\n",
		       d->dirty_async ? "tracked asynchronously (VMO_ENGINE_DIRTY_ASYNC: UFFD_FEATURE_WP_ASYNC + "
					"PAGEMAP_SCAN): first writes are tracked without a trap"
				      : "first-write trap (write-protect fault per clean page written)");
		if (d->budget)
			printf("memory:      --budget: the object may hold %s (low water 7/8 of it)%s\n",
			       human(d->budget, b1, sizeof b1), d->budget < d->size ? ": the run evicts" : "");
		printf("writes:      %u%% of the random touches write their page (inverted pattern)\n",
		       d->write_pct);
	}
	return 0;
}

/* The pattern file and the object over it (d->inv, d->fd, d->obj, each set
 * once made, for demo_close). */
static int demo_open(struct demo *d)
{
	int rc;
	d->inv = calloc(d->size / d->psz, 1);
	if (!d->inv)
		return fail("calloc", -ENOMEM);
	if (make_pattern_file(d->size, &d->fd))
		return 1;

	const struct vmo_pager_ops *ops;
	void *ctx;
	if ((rc = vmo_pager_file(d->fd, 0, &ops, &ctx)))
		return fail("vmo_pager_file", rc);
	/* size 0: the pager's report_extent gives the file's size */
	struct vmo_object_opts oo = { .flags = d->no_ra ? VMO_OBJ_NO_READAHEAD : 0, .page_size = d->psz,
				      .budget = d->budget };
	struct vmo_object *obj;
	if ((rc = vmo_object_create(d->eng, ops, ctx, &oo, &obj))) {
		if (ops->release)
			ops->release(ctx);
		return fail("vmo_object_create", rc);
	}
	d->obj = obj;
	if (vmo_object_size(d->obj) != d->size) {
		msg("object size %" PRIu64 " != file size %" PRIu64, vmo_object_size(d->obj), d->size);
		return 1;
	}
	return 0;
}

/* Mappings A and B (d->a, d->b), and with --budget the sampler. */
static int demo_map(struct demo *d)
{
	int rc;
	void *va = NULL, *vb = NULL;
	if ((rc = vmo_map(d->obj, 0, d->size, VMO_PROT_READ | VMO_PROT_WRITE, &va)))
		return fail("vmo_map A", rc);
	d->a = va;
	if ((rc = vmo_map(d->obj, d->quarter, d->size - d->quarter, VMO_PROT_READ, &vb)))
		return fail("vmo_map B", rc);
	d->b = vb;
	char b1[32], b2[32];
	if (!d->j)
		printf("mappings:    A = [0, %s) read-write at %p; B = [%s, %s) read-only at %p\n",
	       human(d->size, b1, sizeof b1), va, human(d->quarter, b2, sizeof b2),
	       human(d->size, (char[32]){ 0 }, 32), vb);

	if (d->budget) {
		d->sm.obj = d->obj;
		if ((rc = pthread_create(&d->sm.th, NULL, sampler_run, &d->sm)))
			return fail("pthread_create", -rc);
		d->sm.running = true;
	}
	return 0;
}

/* What phases 1 and 2 measured. */
struct touches {
	struct vmo_stats s0, s1, s2; /* object stats before 1, after 1, after 2 */
	uint64_t rpages, rwrites, rbad, rns, rwall; /* 1: summed over the threads; wall time */
	uint64_t sns, sbad;                          /* 2 */
};

/* 1. random first touches of [0, half) by nthreads threads */
static int demo_random(struct demo *d, struct touches *r)
{
	int rc;
	if ((rc = vmo_object_stats(d->obj, &r->s0)))
		return fail("vmo_object_stats", rc);
	struct toucher *t = calloc(d->nthreads, sizeof *t);
	if (!t)
		return fail("calloc", -ENOMEM);
	unsigned started = 0;
	progress_begin("random touches", d->half);
	uint64_t tw0 = now_ns();
	for (; started < d->nthreads; started++) {
		t[started].d = d;
		t[started].id = started;
		if ((rc = pthread_create(&t[started].th, NULL, touch_random, &t[started]))) {
			fail("pthread_create", -rc);
			break;
		}
	}
	uintptr_t rbus = 0;
	for (unsigned i = 0; i < started; i++) {
		pthread_join(t[i].th, NULL);
		r->rpages += t[i].pages;
		r->rwrites += t[i].writes;
		r->rbad += t[i].bad;
		r->rns += t[i].ns;
		if (t[i].bus && !rbus)
			rbus = t[i].bus;
	}
	r->rwall = now_ns() - tw0;
	progress_end();
	free(t);
	if (started < d->nthreads)
		return 1;
	if (rbus) {
		msg("SIGBUS at %p during the random touches (pager error: %s)", (void *)rbus,
		    vmo_strerror(vmo_get_error(d->obj, demo_offset(d, rbus))));
		return 1;
	}
	if ((rc = vmo_object_stats(d->obj, &r->s1)))
		return fail("vmo_object_stats", rc);
	sampler_note(&d->sm, r->s1.resident);
	return 0;
}

/* 2. a sequential scan of [half, size) through B; then the report of 1 and 2 */
static int demo_scan(struct demo *d, struct touches *r)
{
	int rc;
	uintptr_t sbus = 0;
	if (scan_sequential(d, &r->sns, &r->sbad, &sbus)) {
		msg("SIGBUS at %p during the sequential scan (pager error: %s)", (void *)sbus,
		    vmo_strerror(vmo_get_error(d->obj, demo_offset(d, sbus))));
		return 1;
	}
	if ((rc = vmo_object_stats(d->obj, &r->s2)))
		return fail("vmo_object_stats", rc);
	sampler_note(&d->sm, r->s2.resident);
	uint64_t spages = (d->size - d->half) / d->psz;
	double r_lat = r->rpages ? (double)r->rns / (double)r->rpages : 0;
	double r_wall = r->rpages ? (double)r->rwall / (double)r->rpages : 0;
	double s_lat = spages ? (double)r->sns / (double)spages : 0;
	if (d->j) {
		json_object(d->j, "random");
		json_u64(d->j, "pages", r->rpages);
		json_u64(d->j, "threads", d->nthreads);
		json_double(d->j, "ms", (double)r->rwall / 1e6);
		json_double(d->j, "latency_ns_per_page", r_lat);
		json_double(d->j, "throughput_ns_per_page", r_wall);
		json_u64(d->j, "faults", r->s1.faults - r->s0.faults);
		json_u64(d->j, "readahead", r->s1.readahead - r->s0.readahead);
		json_u64(d->j, "pages_written", r->rwrites);
		json_u64(d->j, "wp_faults", r->s1.wp_faults - r->s0.wp_faults);
		json_end(d->j);
		json_object(d->j, "sequential");
		json_u64(d->j, "pages", spages);
		json_double(d->j, "ms", (double)r->sns / 1e6);
		json_double(d->j, "ns_per_page", s_lat);
		json_u64(d->j, "faults", r->s2.faults - r->s1.faults);
		json_u64(d->j, "readahead", r->s2.readahead - r->s1.readahead);
		json_double(d->j, "speedup_over_random", s_lat > 0 ? r_lat / s_lat : 0);
		json_end(d->j);
	} else {
		printf("random:      %" PRIu64 " pages by %u threads in %.1f ms: %.0f ns/page latency, "
		       "%.0f ns/page throughput; %" PRIu64 " faults, %" PRIu64 " read ahead",
		       r->rpages, d->nthreads, (double)r->rwall / 1e6, r_lat, r_wall, r->s1.faults - r->s0.faults,
		       r->s1.readahead - r->s0.readahead);
		if (d->write_pct)
			printf("; %" PRIu64 " pages written (%" PRIu64 " wp faults)", r->rwrites,
			       r->s1.wp_faults - r->s0.wp_faults);
		printf("\n");
		printf("sequential:  %" PRIu64 " pages in %.1f ms: %.0f ns/page; %" PRIu64 " faults, %" PRIu64
		       " read ahead (%.1fx faster per page than random)\n",
		       spages, (double)r->sns / 1e6, s_lat, r->s2.faults - r->s1.faults,
		       r->s2.readahead - r->s1.readahead, s_lat > 0 ? r_lat / s_lat : 0);
	}
	if (r->rbad || r->sbad) {
		msg("MISMATCH: %" PRIu64 " pages read wrong data during the touches", r->rbad + r->sbad);
		return 1;
	}
	return 0;
}

/* 3. write a few pages through A; B must see them at once */
static int demo_write(struct demo *d)
{
	uint64_t written[4] = { d->quarter, d->half, d->size - d->psz,
				d->quarter + ((d->half - d->quarter) / 2 / d->psz) * d->psz };
	memcpy(d->written, written, sizeof written);
	d->nw = 4;
	if (written[3] == d->quarter)
		d->nw = 3; /* too small to have a fourth distinct page */
	uintptr_t wbus = 0;
	for (int i = 0; i < d->nw; i++) {
		uint64_t *tmp = malloc(d->psz);
		if (!tmp)
			return fail("malloc", -ENOMEM);
		fill_pattern(tmp, written[i], d->psz, true);
		bool ok = guarded_copy(d->a + written[i], tmp, d->psz, &wbus);
		free(tmp);
		d->inv[written[i] / d->psz] = 1;
		if (!ok) {
			msg("SIGBUS at %p writing page at %" PRIu64 " (the pager refused: %s)", (void *)wbus,
			    written[i], vmo_strerror(vmo_get_error(d->obj, written[i])));
			return 1;
		}
	}
	return 0;
}

/* 4. every byte, through both mappings */
static int demo_verify(struct demo *d)
{
	int rc;
	uint64_t vpages = 0, vbad = 0;
	uintptr_t vbus = 0;
	progress_begin("verifying", d->size + (d->size - d->quarter));
	vbad += verify_view(d, "A", d->a, 0, &vpages, &vbus);
	if (!vbus)
		vbad += verify_view(d, "B", d->b, d->quarter, &vpages, &vbus);
	progress_end();
	if (vbus) {
		msg("SIGBUS at %p while verifying", (void *)vbus);
		return 1;
	}
	struct vmo_stats s3;
	if ((rc = vmo_object_stats(d->obj, &s3)))
		return fail("vmo_object_stats", rc);
	char b1[32], b2[32];
	uint64_t npages = d->size / d->psz;
	if (d->j) {
		json_object(d->j, "written");
		json_u64(d->j, "pages", (uint64_t)d->nw);
		json_u64(d->j, "resident", s3.resident);
		json_u64(d->j, "dirty", s3.dirty);
		json_end(d->j);
		if (vbad) {
			json_object(d->j, "verified");
			json_u64(d->j, "pages", npages);
			json_u64(d->j, "mismatched", vbad);
			json_end(d->j);
			return 1;
		}
	} else {
		printf("written:     %d pages through A, seen through B; %s resident, %s dirty\n", d->nw,
		       human(s3.resident, b1, sizeof b1), human(s3.dirty, b2, sizeof b2));
		if (vbad) {
			printf("verified %" PRIu64 " pages: %" PRIu64 " MISMATCHED\n", npages, vbad);
			return 1;
		}
	}
	if (vpages != npages + (d->size - d->quarter) / d->psz) {
		msg("verified %" PRIu64 " page views, expected %" PRIu64, vpages,
		    npages + (d->size - d->quarter) / d->psz);
		return 1;
	}
	return 0;
}

/* 5. Writeback (Hurd pager_sync / pager_return): vmo_sync writes the pages
 * the demo wrote to the file through the pager's write callback; pread shows
 * they are there (and a neighbour unchanged); with an extended run, every
 * page of the file is checked.  *before: the object's stats before it. */
static int demo_sync(struct demo *d, struct vmo_stats *before)
{
	struct vmo_stats after;
	int rc;
	if ((rc = vmo_object_stats(d->obj, before)))
		return fail("vmo_object_stats", rc);
	uint64_t t0 = now_ns();
	if ((rc = vmo_sync(d->obj, VMO_WAIT)))
		return fail("vmo_sync", rc);
	uint64_t t1 = now_ns();
	if ((rc = vmo_object_stats(d->obj, &after)))
		return fail("vmo_object_stats", rc);
	for (int i = 0; i < d->nw; i++)
		if (check_file_page(d, d->fd, d->written[i], true))
			return 1;
	uint64_t nb = d->written[0] - d->psz;
	if (check_file_page(d, d->fd, nb, demo_inverted(d, nb)))
		return 1;
	char b1[32];
	if (d->j) {
		json_object(d->j, "writeback");
		json_u64(d->j, "pages", after.writebacks - before->writebacks);
		json_double(d->j, "ms", (double)(t1 - t0) / 1e6);
		json_bool(d->j, "ok", true);
		json_end(d->j);
	} else {
		printf("writeback:   vmo_sync wrote %" PRIu64 " pages in %.2f ms; the file holds them (pread): OK\n",
		       after.writebacks - before->writebacks, (double)(t1 - t0) / 1e6);
	}
	if (d->extended && verify_file(d, d->fd))
		return 1;
	if (after.dirty) {
		msg("%s still dirty after vmo_sync", human(after.dirty, b1, sizeof b1));
		return 1;
	}
	return 0;
}

/* Then vmo_return drops every page from memory, and the written pages,
 * touched again through B, come back from the file. */
static int demo_return(struct demo *d, const struct vmo_stats *before)
{
	struct vmo_stats after;
	int rc;
	uint64_t t0 = now_ns();
	if ((rc = vmo_return(d->obj, VMO_WAIT)))
		return fail("vmo_return", rc);
	uint64_t t1 = now_ns();
	if ((rc = vmo_object_stats(d->obj, &after)))
		return fail("vmo_object_stats", rc);
	char b1[32];
	if (!d->j)
		printf("return:      vmo_return dropped %s in %.2f ms (%s resident now)",
		       human(before->resident - after.resident, b1, sizeof b1), (double)(t1 - t0) / 1e6,
		       human(after.resident, (char[32]){ 0 }, 32));
	uint64_t *want = malloc(d->psz), *got = malloc(d->psz);
	int ret = 0;
	if (!want || !got) {
		ret = fail("malloc", -ENOMEM);
		goto out;
	}
	for (int i = 0; i < d->nw && !ret; i++) {
		uint64_t pg = d->written[i];
		uintptr_t bus = 0;
		fill_pattern(want, pg, d->psz, true);
		if (!guarded_copy(got, d->b + (pg - d->quarter), d->psz, &bus)) {
			if (!d->j)
				printf("\n");
			msg("SIGBUS re-reading page %" PRIu64 " (pager error: %s)", pg,
			    vmo_strerror(vmo_get_error(d->obj, pg)));
			ret = 1;
		} else if (memcmp(want, got, d->psz)) {
			if (!d->j)
				printf("\n");
			msg("MISMATCH: page %" PRIu64 " re-read from the file after vmo_return", pg);
			ret = 1;
		}
	}
	if (d->j) {
		json_object(d->j, "return");
		json_u64(d->j, "dropped", before->resident - after.resident);
		json_double(d->j, "ms", (double)(t1 - t0) / 1e6);
		json_u64(d->j, "resident", after.resident);
		json_bool(d->j, "reread_ok", !ret);
		json_end(d->j);
	} else if (!ret) {
		printf("; written pages re-read from the file: OK\n");
	}
out:
	free(want);
	free(got);
	return ret;
}

/* The most the object held (--budget), its stats, the engine's (extended
 * runs), and the final OK line. */
static int demo_report(struct demo *d)
{
	int rc;
	struct vmo_stats s3;
	sampler_stop(&d->sm);
	if ((rc = vmo_object_stats(d->obj, &s3)))
		return fail("vmo_object_stats", rc);
	char b1[32], b2[32];
	if (d->j) {
		if (d->budget) {
			sampler_note(&d->sm, s3.resident);
			json_object(d->j, "budget_run");
			json_u64(d->j, "budget", d->budget);
			json_u64(d->j, "max_resident", atomic_load(&d->sm.max));
			json_u64(d->j, "samples", d->sm.samples);
			json_u64(d->j, "evictions", s3.evictions);
			json_u64(d->j, "writebacks", s3.writebacks);
			json_end(d->j);
		}
		json_stats(d->j, "object_stats", &s3);
		struct vmo_stats es; /* always: the engine's are as cheap as the object's */
		if ((rc = vmo_engine_stats(d->eng, &es)))
			return fail("vmo_engine_stats", rc);
		json_stats(d->j, "engine_stats", &es);
		json_object(d->j, "verified");
		json_u64(d->j, "pages", d->size / d->psz);
		json_u64(d->j, "mismatched", 0);
		json_end(d->j);
		return 0;
	}
	if (d->budget) {
		sampler_note(&d->sm, s3.resident);
		uint64_t mx = atomic_load(&d->sm.max);
		printf("budget:      %s; max resident observed %" PRIu64 " B (%s) over %" PRIu64 " samples; %" PRIu64
		       " pages evicted, %" PRIu64 " written back\n",
		       human(d->budget, b1, sizeof b1), mx, human(mx, b2, sizeof b2), d->sm.samples, s3.evictions,
		       s3.writebacks);
	}
	printf("object stats:\n");
	print_stats(stdout, "  ", &s3);
	if (d->extended) {
		struct vmo_stats es;
		if ((rc = vmo_engine_stats(d->eng, &es)))
			return fail("vmo_engine_stats", rc);
		printf("engine stats:\n");
		print_stats(stdout, "  ", &es);
	}
	printf("verified %" PRIu64 " pages: OK (every byte of %s through A, %s through B)\n", d->size / d->psz,
	       human(d->size, b1, sizeof b1), human(d->size - d->quarter, b2, sizeof b2));
	return 0;
}

/* Undo demo_map, demo_open and demo_start, whatever they got to make; ret
 * (the exit status so far) becomes 1 if undoing fails. */
static int demo_close(struct demo *d, int ret)
{
	int rc;
	sampler_stop(&d->sm);
	if (d->b && (rc = vmo_unmap(d->obj, d->b, d->size - d->quarter)))
		ret = fail("vmo_unmap B", rc);
	if (d->a && (rc = vmo_unmap(d->obj, d->a, d->size)))
		ret = fail("vmo_unmap A", rc);
	if (d->obj)
		vmo_object_unref(d->obj);
	if (d->fd >= 0)
		close(d->fd);
	free(d->inv);
	if ((rc = vmo_engine_destroy(d->eng)))
		ret = fail("vmo_engine_destroy", rc);
	return ret;
}

static int cmd_demo(int argc, char **argv)
{
	struct demo d = { .size = 64ull << 20, .psz = 4096, .nthreads = 2, .fd = -1 };
	bool json = false;
	int rc = demo_parse(argc, argv, &d, &json);
	if (rc)
		return rc;
	/* With --json every run past the command line writes one object, its
	 * last member "ok": what the phases reached is in it, the reasons of a
	 * failure on standard error. */
	struct json j;
	if (json) {
		json_begin(&j, stdout);
		d.j = &j;
	}
	int ret = demo_start(&d);
	if (!ret) {
		struct vmo_stats before;
		struct touches t = { .rpages = 0 };
		ret = demo_open(&d) || demo_map(&d) || demo_random(&d, &t) || demo_scan(&d, &t) || demo_write(&d) ||
		      demo_verify(&d) || demo_sync(&d, &before) || demo_return(&d, &before) || demo_report(&d);
		ret = demo_close(&d, ret);
	}
	if (d.j) {
		json_bool(d.j, "ok", ret == 0);
		json_finish(d.j);
	}
	return ret;
}

const struct cli_cmd cli_cmd_demo = {
	"demo", cmd_demo,
	"[--size N] [--threads N] [--page-size N] [--no-readahead] [--budget N]\n"
	"         [--write-pct P] [--dirty-async] [--json] [--[no-]progress]",
	"The main job: create a temp file of --size bytes (default 64M) holding a known\n"
	"pattern, page it through libvmo's file pager into an object mapped twice at\n"
	"different offsets, touch random pages from --threads threads (default 2) and\n"
	"scan sequentially, verify every byte, write a few pages through one mapping and\n"
	"read them through the other, write them back to the file (vmo_sync), drop every\n"
	"page (vmo_return) and read them again; print the kernel features, stats and\n"
	"timings.  Exits 1 on any mismatch.\n"
	"--budget N: cap the object's resident memory at N bytes (one page up to\n"
	"--size), so the run evicts; report the most it held, and the engine's stats.\n"
	"--write-pct P: P% (0 to 100, default 0) of the random touches write their page\n"
	"(the inverted pattern), so dirty pages are written back and evicted; after\n"
	"vmo_sync every page of the file is checked with pread.\n"
	"--dirty-async: track dirty pages with UFFD_FEATURE_WP_ASYNC + PAGEMAP_SCAN\n"
	"(VMO_ENGINE_DIRTY_ASYNC), first writes without a trap; exits 1 where the\n"
	"kernel lacks them.\n"
	"--json: the same results as one JSON object on standard output (sizes in\n"
	"bytes, times in ms; its last member \"ok\"), messages still on standard error.\n"
	"--progress, --no-progress: the progress line of each phase on standard\n"
	"error (default: shown when standard error is a terminal).",
};
