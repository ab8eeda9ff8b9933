/* SPDX-License-Identifier: MIT */
/* mem.c - a pager over a caller-owned memory buffer (tests, examples). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct mem_pager {
	char *buf;
	uint64_t size;
};

static int mem_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct mem_pager *m = ctx;
	(void)flags;
	size_t n = off >= m->size ? 0 : (m->size - off < len ? (size_t)(m->size - off) : len);
	memcpy(buf, m->buf + off, n);
	memset((char *)buf + n, 0, len - n);
	return 0;
}

static int mem_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct mem_pager *m = ctx;
	size_t n = off >= m->size ? 0 : (m->size - off < len ? (size_t)(m->size - off) : len);
	memcpy(m->buf + off, buf, n);
	return 0;
}

static int mem_extent(void *ctx, uint64_t *size)
{
	*size = ((struct mem_pager *)ctx)->size;
	return 0;
}

static void mem_release(void *ctx)
{
	free(ctx);
}

static const struct vmo_pager_ops mem_ops = {
	.read = mem_read,
	.write = mem_write,
	.report_extent = mem_extent,
	.release = mem_release,
};

static int mem_punch(void *ctx, uint64_t off, uint64_t len)
{
	struct mem_pager *m = ctx;
	if (off < m->size)
		memset(m->buf + off, 0, m->size - off < len ? (size_t)(m->size - off) : (size_t)len);
	return 0;
}

VMO_API int vmo_pager_mem(void *buf, uint64_t size, const struct vmo_pager_ops **ops, void **ctx)
{
	vmo__pager_punch_register(&mem_ops, mem_punch);
	if (!buf || !size || !ops || !ctx)
		return -EINVAL;
	struct mem_pager *m = malloc(sizeof *m);
	if (!m)
		return -ENOMEM;
	m->buf = buf;
	m->size = size;
	*ops = &mem_ops;
	*ctx = m;
	return 0;
}
