/* SPDX-License-Identifier: MIT */
/* uri.c - stores chosen by URI: vmo_store_open, vmo_object_create_uri.
 * docs/stores.md has the grammar.  Each store keeps what it opened: a
 * file: store its descriptor, a swap: store a reference on the process's
 * swap file of that path (one per path, closed with its last object), a
 * compressed store its lower store. */
#include "internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void vmo__nbd_bind(void *ctx, struct vmo_object *obj);
bool vmo__nbd_is(const struct vmo_pager_ops *ops);

/* ---- a wrapper that owns what the store was opened over ----------------------------- */

struct swapfile { /* the process's swap file of a path (by device and inode) */
	struct swapfile *next;
	dev_t dev;
	ino_t ino;
	char *path;
	struct vmo_swap *sw;
	long refs;
};
static pthread_mutex_t swap_mu = PTHREAD_MUTEX_INITIALIZER;
static struct swapfile *swapfiles;

struct owned {
	const struct vmo_pager_ops *ops; /* the store's */
	void *ctx;
	int fd;              /* file: ours to close, or -1 */
	struct swapfile *sf; /* swap: our reference, or NULL */
};

static int o_read(void *c, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct owned *o = c;
	return o->ops->read(o->ctx, off, buf, len, flags);
}

static int o_write(void *c, uint64_t off, const void *buf, size_t len)
{
	struct owned *o = c;
	return o->ops->write(o->ctx, off, buf, len);
}

static int o_extent(void *c, uint64_t *size)
{
	struct owned *o = c;
	return o->ops->report_extent ? o->ops->report_extent(o->ctx, size) : -EOPNOTSUPP;
}

static int o_sync(void *c)
{
	struct owned *o = c;
	return o->ops->sync ? o->ops->sync(o->ctx) : 0;
}

static void swapfile_put(struct swapfile *sf)
{
	pthread_mutex_lock(&swap_mu);
	if (--sf->refs == 0) {
		for (struct swapfile **p = &swapfiles; *p; p = &(*p)->next)
			if (*p == sf) {
				*p = sf->next;
				break;
			}
		vmo_swap_close(sf->sw);
		free(sf->path);
		free(sf);
	}
	pthread_mutex_unlock(&swap_mu);
}

static void o_release(void *c)
{
	struct owned *o = c;
	if (o->ops->release)
		o->ops->release(o->ctx);
	if (o->fd >= 0)
		close(o->fd);
	if (o->sf)
		swapfile_put(o->sf);
	free(o);
}

static int o_punch(void *c, uint64_t off, uint64_t len)
{
	struct owned *o = c;
	vmo__punch_fn p = vmo__pager_punch_find(o->ops);
	return p ? p(o->ctx, off, len) : -EOPNOTSUPP;
}

static const struct vmo_pager_ops owned_ops = {
	.read = o_read, .write = o_write, .report_extent = o_extent, .sync = o_sync, .release = o_release,
};

static int own(const struct vmo_pager_ops *ops, void *ctx, int fd, struct swapfile *sf,
	       const struct vmo_pager_ops **out_ops, void **out_ctx)
{
	struct owned *o = malloc(sizeof *o);
	if (!o) {
		if (ops->release)
			ops->release(ctx);
		if (fd >= 0)
			close(fd);
		if (sf)
			swapfile_put(sf);
		return -ENOMEM;
	}
	*o = (struct owned){ ops, ctx, fd, sf };
	vmo__pager_punch_register(&owned_ops, o_punch);
	*out_ops = &owned_ops;
	*out_ctx = o;
	return 0;
}

/* ---- parsing ------------------------------------------------------------------------ */

/* "64M" etc. into *v; false if not a size. */
static bool parse_size(const char *s, size_t n, uint64_t *v)
{
	if (!n)
		return false;
	uint64_t x = 0;
	size_t i = 0;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
		if (x > (UINT64_MAX - 9) / 10)
			return false;
		x = x * 10 + (uint64_t)(s[i] - '0');
	}
	if (i == 0)
		return false;
	unsigned shift = 0;
	if (i < n) {
		switch (s[i]) {
		case 'k': case 'K': shift = 10; break;
		case 'm': case 'M': shift = 20; break;
		case 'g': case 'G': shift = 30; break;
		case 't': case 'T': shift = 40; break;
		default: return false;
		}
		i++;
		if (i < n && (s[i] == 'i' || s[i] == 'B')) /* (KiB, MB: the same here) */
			i++;
		if (i < n && s[i] == 'B')
			i++;
	}
	if (i != n || (shift && x > (UINT64_MAX >> shift)))
		return false;
	*v = x << shift;
	return true;
}

static int bad(const char *uri, const char *why)
{
	vmo__set_detail("store URI \"%s\": %s (file:PATH, swap:PATH, lz4[,budget=SIZE][,level=N][:LOWER], "
			"zstd[...][:LOWER], nbd://..., nbd+unix://...)",
			uri, why);
	return -EINVAL;
}

static int open_file(const char *uri, const char *path, uint64_t size, const struct vmo_pager_ops **ops, void **ctx)
{
	if (!*path)
		return bad(uri, "file: needs a path");
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		vmo__set_detail("store %s: %s", uri, strerror(e));
		return -e;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || (size && (uint64_t)st.st_size < size && ftruncate(fd, (off_t)size) < 0)) {
		int e = errno;
		vmo__set_detail("store %s: growing it to %llu bytes: %s", uri, (unsigned long long)size, strerror(e));
		close(fd);
		return -e;
	}
	const struct vmo_pager_ops *fops;
	void *fctx;
	int rc = vmo_pager_file(fd, 0, &fops, &fctx);
	if (rc) {
		close(fd);
		return rc;
	}
	return own(fops, fctx, fd, NULL, ops, ctx);
}

static int open_swap(const char *uri, const char *path, uint64_t size, const struct vmo_pager_ops **ops, void **ctx)
{
	if (!*path)
		return bad(uri, "swap: needs a path (a file or a directory)");
	if (!size || size % 4096)
		return bad(uri, "a swap: object needs a size, a multiple of 4096");
	/* The same file (or directory) under any spelling: one handle. */
	struct stat st;
	if (stat(path, &st) < 0) {
		int fd = errno == ENOENT ? open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600) : -1;
		if (fd < 0 || fstat(fd, &st) < 0) {
			int e = errno;
			if (fd >= 0)
				close(fd);
			vmo__set_detail("store %s: %s", uri, strerror(e));
			return -e;
		}
		close(fd);
	}
	pthread_mutex_lock(&swap_mu);
	struct swapfile *sf = swapfiles;
	while (sf && (sf->dev != st.st_dev || sf->ino != st.st_ino))
		sf = sf->next;
	int rc = 0;
	if (!sf) {
		sf = calloc(1, sizeof *sf);
		if (!sf || !(sf->path = strdup(path))) {
			free(sf);
			pthread_mutex_unlock(&swap_mu);
			return -ENOMEM;
		}
		sf->dev = st.st_dev;
		sf->ino = st.st_ino;
		rc = vmo_swap_open(path, &sf->sw);
		if (rc) {
			free(sf->path);
			free(sf);
			pthread_mutex_unlock(&swap_mu);
			return rc;
		}
		sf->next = swapfiles;
		swapfiles = sf;
	}
	sf->refs++;
	pthread_mutex_unlock(&swap_mu);
	const struct vmo_pager_ops *sops;
	void *sctx;
	rc = vmo_pager_swap(sf->sw, size, &sops, &sctx);
	if (rc) {
		swapfile_put(sf);
		return rc;
	}
	return own(sops, sctx, -1, sf, ops, ctx);
}

static int store_open(const char *uri, uint64_t size, uint32_t page_size, const struct vmo_pager_ops **ops,
		      void **ctx, int depth);

static int open_compress(const char *uri, const char *spec, uint64_t size, uint32_t page_size,
			 const struct vmo_pager_ops **ops, void **ctx, int depth)
{
	struct vmo_compress_opts co = { .page_size = page_size };
	const char *p = spec;
	if (!strncmp(p, "lz4", 3)) {
		co.algo = VMO_COMPRESS_LZ4;
		p += 3;
	} else {
		co.algo = VMO_COMPRESS_ZSTD;
		p += 4;
	}
	while (*p == ',') {
		p++;
		size_t n = strcspn(p, ",:");
		if (!strncmp(p, "budget=", 7)) {
			if (!parse_size(p + 7, n - 7, &co.budget))
				return bad(uri, "budget= takes a size (bytes, or with K, M, G, T)");
		} else if (!strncmp(p, "level=", 6)) {
			char *end;
			errno = 0;
			long l = strtol(p + 6, &end, 10);
			if (end != p + n || n == 6 || errno || (p[6] != '-' && (p[6] < '0' || p[6] > '9')) ||
			    l < -1000000 || l > 1000000)
				return bad(uri, "level= takes a number (lz4: 1 to 65537; zstd: its levels)");
			co.level = (int32_t)l;
		} else {
			return bad(uri, "a compressed store takes budget= and level=");
		}
		p += n;
	}
	if (*p && *p != ':')
		return bad(uri, "after lz4/zstd and its options comes \":\" and the lower store, or nothing");
	if (*p == ':' && p[1]) {
		if (depth >= 4)
			return bad(uri, "more than 4 stores stacked");
		int rc = store_open(p + 1, size, page_size, &co.lower, &co.lower_ctx, depth + 1);
		if (rc)
			return rc;
		if (!size && co.lower->report_extent)
			co.lower->report_extent(co.lower_ctx, &size);
	}
	co.size = size;
	if (!co.size) {
		if (co.lower && co.lower->release)
			co.lower->release(co.lower_ctx);
		return bad(uri, "a compressed store without a lower store needs a size");
	}
	int rc = vmo_pager_compress(&co, ops, ctx);
	if (rc && co.lower && co.lower->release)
		co.lower->release(co.lower_ctx);
	return rc;
}

VMO_API int vmo_store_open(const char *uri, uint64_t size, uint32_t page_size, const struct vmo_pager_ops **ops,
			   void **ctx)
{
	if (!uri || !ops || !ctx) {
		vmo__set_detail("vmo_store_open: %s is missing", !uri ? "uri" : "an output");
		return -EINVAL;
	}
	return store_open(uri, size, page_size, ops, ctx, 0);
}

static int store_open(const char *uri, uint64_t size, uint32_t page_size, const struct vmo_pager_ops **ops,
		      void **ctx, int depth)
{
	if (!strncmp(uri, "file:", 5))
		return open_file(uri, uri + 5, size, ops, ctx);
	if (!strncmp(uri, "swap:", 5))
		return open_swap(uri, uri + 5, size, ops, ctx);
	if ((!strncmp(uri, "lz4", 3) && (uri[3] == ':' || uri[3] == ',' || !uri[3])) ||
	    (!strncmp(uri, "zstd", 4) && (uri[4] == ':' || uri[4] == ',' || !uri[4])))
		return open_compress(uri, uri, size, page_size, ops, ctx, depth);
	if (!strncmp(uri, "nbd://", 6) || !strncmp(uri, "nbds://", 7) || !strncmp(uri, "nbd+unix://", 11) ||
	    !strncmp(uri, "nbds+unix://", 12) || !strncmp(uri, "nbd+vsock://", 12) || !strncmp(uri, "nbds+vsock://", 13)) {
		struct vmo_nbd_opts no = { .uri = uri };
		const struct vmo_pager_ops *nops;
		void *nctx;
		int rc = vmo_pager_nbd(&no, &nops, &nctx);
		if (rc)
			return rc;
		uint64_t have = 0;
		nops->report_extent(nctx, &have);
		if (size > have) {
			nops->release(nctx);
			vmo__set_detail("store %s: the export has %llu bytes, fewer than the %llu asked for", uri,
					(unsigned long long)have, (unsigned long long)size);
			return -EINVAL;
		}
		*ops = nops;
		*ctx = nctx;
		return 0;
	}
	return bad(uri, "unknown kind");
}

VMO_API int vmo_object_create_uri(struct vmo_engine *eng, const char *uri, const struct vmo_object_opts *opts,
				  struct vmo_object **out)
{
	if (!eng || !uri || !out) {
		vmo__set_detail("vmo_object_create_uri: %s is missing", !eng ? "eng" : !uri ? "uri" : "out");
		return -EINVAL;
	}
	struct vmo_object_opts oo = opts ? *opts : (struct vmo_object_opts){ 0 };
	const struct vmo_pager_ops *ops;
	void *ctx;
	int rc = vmo_store_open(uri, oo.size, oo.page_size, &ops, &ctx);
	if (rc)
		return rc;
	if (!oo.size && ops->report_extent) {
		uint64_t sz = 0;
		if (ops->report_extent(ctx, &sz) == 0 && sz) {
			uint32_t ps = oo.page_size ? oo.page_size : 4096;
			oo.size = sz - sz % ps; /* (whole pages: a tail shorter than a page is left out) */
		}
	}
	rc = vmo_object_create(eng, ops, ctx, &oo, out);
	if (rc) {
		if (ops->release)
			ops->release(ctx);
		return rc;
	}
	/* An NBD store's reads are supplied asynchronously where the engine
	 * can (MINOR faults). */
	if (vmo__nbd_is(ops) && (vmo_engine_features(eng) & VMO_FEAT_MINOR))
		vmo__nbd_bind(ctx, *out);
	return 0;
}
