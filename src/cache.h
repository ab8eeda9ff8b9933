/* SPDX-License-Identifier: MIT */
/* cache.h - what the yield cache (cache.c) offers the layers above it:
 * caches whose blocks live elsewhere (a server's, client.c), on which the
 * public vmo_cache_* calls dispatch through a table of operations. */
#ifndef VMO_CACHE_H
#define VMO_CACHE_H

#include "internal.h"

#include <stdbool.h>

struct vmo__cache_proxy_ops {
	int (*yield)(void *ctx, uint64_t id, void *addr, size_t len);
	int (*get)(void *ctx, uint64_t id, void *addr, size_t len);
	int (*forget)(void *ctx, uint64_t id, bool all);
	int (*stats)(void *ctx, struct vmo_cache_stats *st);
	void (*destroy)(void *ctx);
};

/* A cache that is only that: every call dispatched to ops with ctx. */
struct vmo_cache *vmo__cache_proxy_new(const struct vmo__cache_proxy_ops *ops, void *ctx);

#endif
