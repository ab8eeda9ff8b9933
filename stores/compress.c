/* SPDX-License-Identifier: MIT */
/* compress.c - compressed memory (zswap in user space, per object):
 * vmo_pager_compress.  docs/stores.md.
 *
 * Each page written back is compressed (lz4 or zstd, from Debian's liblz4
 * and libzstd) into a buffer of its own; a page that does not compress
 * below its size is kept as it is.  An entry per page (an array mapped
 * MAP_NORESERVE: memory only for the parts written) says where the page is:
 * nowhere yet (the lower store's, or zeros), in memory (its buffer), or in
 * the lower store.  The pages in memory are on a list in the order they
 * were written (the oldest at the head); past the budget the oldest go to
 * the lower store, raw, so that a read from there needs no decompression.
 *
 * Locking: one mutex per store over the entries, the list and the byte
 * count.  Compression and decompression run outside it (a read copies the
 * compressed bytes out first); so does the lower store's I/O.  A page being
 * spilled stays readable from memory until the lower store has it; a write
 * that replaces it meanwhile wins (the spill then drops its copy). */
#include "internal.h"

#include <lz4.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <zstd.h>

enum { E_NONE, E_MEM, E_LOWER, E_ZERO /* punched: zeros, whatever the lower store has */ };

struct centry {
	void *data;    /* E_MEM: the stored bytes */
	uint32_t len;  /* their length; == page size: raw */
	uint8_t state;
	bool spilling; /* off the list, on its way to the lower store */
	uint64_t prev, next; /* the list, by page index + 1 (0: none) */
};

#define CSTORE_MAGIC 0x636d7073u /* "cmps": vmo_pager_compress_stats checks its ctx */

struct cstore {
	uint32_t magic;
	uint32_t algo;
	int level;
	uint64_t size;
	uint32_t ps;
	uint64_t npages;
	uint64_t budget;
	const struct vmo_pager_ops *lower;
	void *lctx;
	struct centry *e;
	size_t maplen;
	pthread_mutex_t mu;
	/* One spill at a time: the lower store gets a page's versions in the
	 * order they were spilled (a slow spill of an older version never lands
	 * after a newer one), and never two writes of a page at once. */
	pthread_mutex_t spill_mu;
	uint64_t head, tail; /* index + 1 */
	uint64_t pages, stored, raw;
	_Atomic uint64_t bytes_in, bytes_out, spilled, lower_reads, zero_reads;
};

/* ---- per-thread scratch: buffers and zstd contexts ------------------------------ */

struct scratch {
	char *buf; /* compressBound(ps) bytes */
	size_t cap;
	ZSTD_CCtx *cc;
	ZSTD_DCtx *dc;
};

static pthread_key_t sc_key;
static pthread_once_t sc_once = PTHREAD_ONCE_INIT;

static void sc_free(void *p)
{
	struct scratch *s = p;
	free(s->buf);
	ZSTD_freeCCtx(s->cc);
	ZSTD_freeDCtx(s->dc);
	free(s);
}

static void sc_init(void)
{
	pthread_key_create(&sc_key, sc_free);
}

static struct scratch *scratch(size_t cap)
{
	pthread_once(&sc_once, sc_init);
	struct scratch *s = pthread_getspecific(sc_key);
	if (!s) {
		if (!(s = calloc(1, sizeof *s)))
			return NULL;
		pthread_setspecific(sc_key, s);
	}
	if (s->cap < cap) {
		char *b = realloc(s->buf, cap);
		if (!b)
			return NULL;
		s->buf = b;
		s->cap = cap;
	}
	return s;
}

static size_t bound(const struct cstore *c)
{
	size_t a = (size_t)LZ4_compressBound((int)c->ps), b = ZSTD_compressBound(c->ps);
	/* (half for compressed bytes, half for a page: aligned as a page is) */
	return 2 * vmo__align_up(a > b ? a : b, 64);
}

/* Compress a page into s->buf: its length (== ps: keep it raw), or -errno. */
static long squeeze(struct cstore *c, struct scratch *s, const void *page)
{
	size_t cap = s->cap / 2;
	if (c->algo == VMO_COMPRESS_ZSTD) {
		if (!s->cc && !(s->cc = ZSTD_createCCtx()))
			return -ENOMEM;
		size_t n = ZSTD_compressCCtx(s->cc, s->buf, cap, page, c->ps, c->level);
		if (ZSTD_isError(n))
			return c->ps; /* (as incompressible) */
		return n < c->ps ? (long)n : (long)c->ps;
	}
	int n = LZ4_compress_fast(page, s->buf, (int)c->ps, (int)cap, c->level);
	return n > 0 && (uint32_t)n < c->ps ? n : (long)c->ps;
}

static int expand(struct cstore *c, struct scratch *s, const void *src, uint32_t len, void *page)
{
	if (len == c->ps) {
		memcpy(page, src, c->ps);
		return 0;
	}
	if (c->algo == VMO_COMPRESS_ZSTD) {
		if (!s->dc && !(s->dc = ZSTD_createDCtx()))
			return -ENOMEM;
		size_t n = ZSTD_decompressDCtx(s->dc, page, c->ps, src, len);
		if (ZSTD_isError(n) || n != c->ps) {
			vmo__set_detail("compressed store: zstd: %s", ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short page");
			return -EIO;
		}
		return 0;
	}
	int n = LZ4_decompress_safe(src, page, (int)len, (int)c->ps);
	if (n != (int)c->ps) {
		vmo__set_detail("compressed store: lz4: a stored page does not decompress");
		return -EIO;
	}
	return 0;
}

/* ---- the list (under mu) ------------------------------------------------------------ */

static void unlink_e(struct cstore *c, uint64_t i)
{
	struct centry *x = &c->e[i];
	if (x->prev)
		c->e[x->prev - 1].next = x->next;
	else
		c->head = x->next;
	if (x->next)
		c->e[x->next - 1].prev = x->prev;
	else
		c->tail = x->prev;
	x->prev = x->next = 0;
}

static void append_e(struct cstore *c, uint64_t i)
{
	struct centry *x = &c->e[i];
	x->prev = c->tail;
	x->next = 0;
	if (c->tail)
		c->e[c->tail - 1].next = i + 1;
	else
		c->head = i + 1;
	c->tail = i + 1;
}

static void prepend_e(struct cstore *c, uint64_t i)
{
	struct centry *x = &c->e[i];
	x->next = c->head;
	x->prev = 0;
	if (c->head)
		c->e[c->head - 1].prev = i + 1;
	else
		c->tail = i + 1;
	c->head = i + 1;
}

/* Drop page i's bytes from memory (under mu). */
static void forget_e(struct cstore *c, uint64_t i)
{
	struct centry *x = &c->e[i];
	if (x->state != E_MEM)
		return;
	if (!x->spilling)
		unlink_e(c, i);
	c->stored -= x->len;
	c->pages--;
	if (x->len == c->ps)
		c->raw--;
	free(x->data);
	x->data = NULL;
	x->len = 0;
	x->spilling = false;
	x->state = E_NONE; /* (the caller says what it is now) */
}

/* ---- spilling to the lower store ------------------------------------------------------ */

/* Move the oldest pages to the lower store until the stored bytes fit the
 * budget.  0 or the lower store's -errno. */
static int spill(struct cstore *c, struct scratch *s)
{
	char *page = s->buf + s->cap / 2;
	pthread_mutex_lock(&c->spill_mu);
	int ret = 0;
	for (;;) {
		pthread_mutex_lock(&c->mu);
		if (c->stored <= c->budget || !c->head) {
			pthread_mutex_unlock(&c->mu);
			break;
		}
		uint64_t i = c->head - 1;
		struct centry *x = &c->e[i];
		unlink_e(c, i);
		x->spilling = true;
		void *data = x->data;
		int rc = expand(c, s, data, x->len, page);
		pthread_mutex_unlock(&c->mu);
		if (!rc)
			rc = c->lower->write(c->lctx, i * c->ps, page, c->ps);
		pthread_mutex_lock(&c->mu);
		if (x->state == E_MEM && x->data == data && x->spilling) {
			if (rc) { /* back at the head: tried first again */
				x->spilling = false;
				prepend_e(c, i);
			} else {
				forget_e(c, i);
				x->state = E_LOWER;
				atomic_fetch_add(&c->spilled, 1);
			}
		} /* (else it was written again meanwhile: the newer bytes stay) */
		pthread_mutex_unlock(&c->mu);
		if (rc) {
			ret = rc;
			break;
		}
	}
	pthread_mutex_unlock(&c->spill_mu);
	return ret;
}

/* ---- the pager ------------------------------------------------------------------------- */

static int c_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct cstore *c = ctx;
	(void)flags;
	if (off % c->ps || len % c->ps || off > c->size || len > c->size - off)
		return -EINVAL;
	struct scratch *s = scratch(bound(c));
	if (!s)
		return -ENOMEM;
	for (size_t at = 0; at < len;) {
		uint64_t i = (off + at) / c->ps;
		char *page = (char *)buf + at;
		pthread_mutex_lock(&c->mu);
		struct centry *x = &c->e[i];
		if (x->state == E_MEM) {
			uint32_t n = x->len;
			memcpy(s->buf, x->data, n);
			pthread_mutex_unlock(&c->mu);
			int rc = expand(c, s, s->buf, n, page);
			if (rc)
				return rc;
			at += c->ps;
			continue;
		}
		bool zero = x->state == E_ZERO;
		pthread_mutex_unlock(&c->mu);
		/* not in memory: a run of such pages from the lower store (or of
		 * punched ones: zeros) */
		size_t run = c->ps;
		pthread_mutex_lock(&c->mu);
		while (at + run < len && c->e[i + run / c->ps].state != E_MEM &&
		       (c->e[i + run / c->ps].state == E_ZERO) == zero)
			run += c->ps;
		pthread_mutex_unlock(&c->mu);
		if (c->lower && !zero) {
			int rc = c->lower->read(c->lctx, off + at, page, run, flags);
			if (rc)
				return rc == -EINPROGRESS ? -EIO : rc;
			atomic_fetch_add(&c->lower_reads, run / c->ps);
		} else {
			memset(page, 0, run);
			atomic_fetch_add(&c->zero_reads, run / c->ps);
		}
		at += run;
	}
	return 0;
}

static int c_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct cstore *c = ctx;
	if (off % c->ps || len % c->ps || off > c->size || len > c->size - off)
		return -EINVAL;
	struct scratch *s = scratch(bound(c));
	if (!s)
		return -ENOMEM;
	for (size_t at = 0; at < len; at += c->ps) {
		uint64_t i = (off + at) / c->ps;
		const char *page = (const char *)buf + at;
		long n = squeeze(c, s, page);
		if (n < 0)
			return (int)n;
		void *data = malloc((size_t)n);
		if (!data)
			return -ENOMEM;
		memcpy(data, n == (long)c->ps ? page : s->buf, (size_t)n);
		pthread_mutex_lock(&c->mu);
		struct centry *x = &c->e[i];
		uint64_t old = x->state == E_MEM ? x->len : 0;
		uint8_t prev = x->state == E_MEM ? E_NONE : x->state;
		if (!c->lower && c->budget && c->stored - old + (uint64_t)n > c->budget) {
			pthread_mutex_unlock(&c->mu);
			free(data);
			vmo__set_detail("compressed store: full (budget %llu bytes, %llu stored) and no lower store",
					(unsigned long long)c->budget, (unsigned long long)c->stored);
			return -ENOSPC;
		}
		forget_e(c, i);
		x->data = data;
		x->len = (uint32_t)n;
		x->state = E_MEM;
		append_e(c, i);
		c->stored += (uint64_t)n;
		c->pages++;
		if ((uint32_t)n == c->ps)
			c->raw++;
		pthread_mutex_unlock(&c->mu);
		atomic_fetch_add(&c->bytes_in, c->ps);
		atomic_fetch_add(&c->bytes_out, (uint64_t)n);
		if (c->lower && c->budget && c->stored > c->budget) {
			int rc = spill(c, s);
			if (rc) {
				/* The lower store fails: this page is not kept either (the
				 * write fails, vmo keeps it dirty), so that the budget
				 * holds while the lower store is down. */
				pthread_mutex_lock(&c->mu);
				if (x->state == E_MEM && x->data == data && !x->spilling) {
					forget_e(c, i);
					x->state = prev; /* (vmo keeps the page dirty: it is not read from here) */
				}
				pthread_mutex_unlock(&c->mu);
				return rc;
			}
		}
	}
	return 0;
}

static int c_extent(void *ctx, uint64_t *size)
{
	*size = ((struct cstore *)ctx)->size;
	return 0;
}

static int c_sync(void *ctx)
{
	struct cstore *c = ctx;
	return c->lower && c->lower->sync ? c->lower->sync(c->lctx) : 0;
}

static void c_release(void *ctx)
{
	struct cstore *c = ctx;
	for (uint64_t i = c->head; i;) {
		uint64_t n = c->e[i - 1].next;
		free(c->e[i - 1].data);
		i = n;
	}
	munmap(c->e, c->maplen);
	c->magic = 0;
	if (c->lower && c->lower->release)
		c->lower->release(c->lctx);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->spill_mu);
	free(c);
}

/* vmo_discard(VMO_PUNCH): the pages go from memory, and from the lower
 * store where it can free them too; they read as zeros. */
static int c_punch(void *ctx, uint64_t off, uint64_t len)
{
	struct cstore *c = ctx;
	if (off % c->ps || len % c->ps || off > c->size || len > c->size - off)
		return -EINVAL;
	pthread_mutex_lock(&c->mu);
	for (uint64_t i = off / c->ps; i < (off + len) / c->ps; i++) {
		forget_e(c, i);
		c->e[i].state = E_ZERO;
	}
	pthread_mutex_unlock(&c->mu);
	vmo__punch_fn lp = c->lower ? vmo__pager_punch_find(c->lower) : NULL;
	if (lp && lp(c->lctx, off, len))
		vmo__debug("compressed store: the lower store could not free [%#llx, +%#llx)",
			   (unsigned long long)off, (unsigned long long)len);
	return 0;
}

static const struct vmo_pager_ops compress_ops = {
	.read = c_read,
	.write = c_write,
	.report_extent = c_extent,
	.sync = c_sync,
	.release = c_release,
};

VMO_API int vmo_pager_compress(const struct vmo_compress_opts *o, const struct vmo_pager_ops **ops, void **ctx)
{
	vmo__pager_punch_register(&compress_ops, c_punch);
	if (!o || !ops || !ctx) {
		vmo__set_detail("vmo_pager_compress: %s is missing", !o ? "opts" : "an output");
		return -EINVAL;
	}
	uint32_t ps = o->page_size ? o->page_size : 4096;
	uint32_t algo = o->algo ? o->algo : VMO_COMPRESS_LZ4;
	if (algo != VMO_COMPRESS_LZ4 && algo != VMO_COMPRESS_ZSTD) {
		vmo__set_detail("vmo_pager_compress: algo %u: VMO_COMPRESS_LZ4 or VMO_COMPRESS_ZSTD", algo);
		return -EINVAL;
	}
	if (!vmo__is_pow2(ps) || ps < 4096 || ps > VMO_MAX_PAGE_SIZE || !o->size || o->size % ps) {
		vmo__set_detail("vmo_pager_compress: size %llu and page size %u: a power of two from 4096 to 2 MiB, "
				"and a non-zero multiple of it",
				(unsigned long long)o->size, ps);
		return -EINVAL;
	}
	if (o->lower && (!o->lower->read || !o->lower->write)) {
		vmo__set_detail("vmo_pager_compress: the lower store needs read and write");
		return -EINVAL;
	}
	int level = o->level;
	if (algo == VMO_COMPRESS_ZSTD) {
		if (!level)
			level = ZSTD_CLEVEL_DEFAULT;
		if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()) {
			vmo__set_detail("vmo_pager_compress: zstd level %d: %d to %d", level, ZSTD_minCLevel(),
					ZSTD_maxCLevel());
			return -EINVAL;
		}
	} else {
		if (!level)
			level = 1;
		if (level < 1 || level > 65537) {
			vmo__set_detail("vmo_pager_compress: lz4 level (acceleration) %d: 1 to 65537", level);
			return -EINVAL;
		}
	}
	struct cstore *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->magic = CSTORE_MAGIC;
	c->algo = algo;
	c->level = level;
	c->size = o->size;
	c->ps = ps;
	c->npages = o->size / ps;
	c->budget = o->budget;
	c->lower = o->lower;
	c->lctx = o->lower_ctx;
	c->maplen = vmo__align_up(c->npages * sizeof(struct centry), VMO_PAGE);
	void *p = mmap(NULL, c->maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		free(c);
		return -ENOMEM;
	}
	c->e = p;
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->spill_mu, NULL);
	*ops = &compress_ops;
	*ctx = c;
	return 0;
}

VMO_API int vmo_pager_compress_stats_sized(void *ctx, struct vmo_compress_stats *out, size_t size)
{
	if (!ctx || !out || size < 8)
		return -EINVAL;
	struct cstore *c = ctx;
	if (c->magic != CSTORE_MAGIC) {
		vmo__set_detail("vmo_pager_compress_stats: ctx is not a compressed store's");
		return -EINVAL;
	}
	struct vmo_compress_stats s;
	memset(&s, 0, sizeof s);
	pthread_mutex_lock(&c->mu);
	s.pages = c->pages;
	s.stored_bytes = c->stored;
	s.raw_pages = c->raw;
	pthread_mutex_unlock(&c->mu);
	s.bytes_in = atomic_load(&c->bytes_in);
	s.bytes_out = atomic_load(&c->bytes_out);
	s.spilled = atomic_load(&c->spilled);
	s.lower_reads = atomic_load(&c->lower_reads);
	s.zero_reads = atomic_load(&c->zero_reads);
	vmo__sized_out(out, size, &s, sizeof s, VMO_COMPRESS_STATS_VERSION);
	return 0;
}
