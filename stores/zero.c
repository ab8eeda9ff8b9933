/* SPDX-License-Identifier: MIT */
/* zero.c - the zero-fill pager: every page reads as zeros, writes vanish. */
#include "internal.h"

#include <string.h>

static int zero_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	(void)ctx;
	(void)off;
	(void)flags;
	memset(buf, 0, len);
	return 0;
}

static const struct vmo_pager_ops zero_ops = { .read = zero_read };

static int zero_punch(void *ctx, uint64_t off, uint64_t len)
{
	(void)ctx;
	(void)off;
	(void)len;
	return 0; /* (zeros already) */
}

VMO_API const struct vmo_pager_ops *vmo_pager_zero(void)
{
	vmo__pager_punch_register(&zero_ops, zero_punch);
	return &zero_ops;
}
