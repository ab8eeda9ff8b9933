/* SPDX-License-Identifier: MIT */
/* cache.c - the yield cache (MINIX 3 VM "yield"; Linux cleancache's rules).
 *
 * A block is a page-aligned range of the caller's memory held under a 64-bit
 * id.  Its bytes live in a slot of the cache's own arenas: private anonymous
 * mappings, one set per size class (4 KiB << k), registered with the cache's
 * userfaultfd in write-protect mode (so that UFFDIO_MOVE may target them; no
 * page is ever write-protected, so no fault ever reaches the uffd).
 *
 * Data moves in and out of a slot either by UFFDIO_MOVE (page table entries
 * change hands: no copy, no VMA split, the caller's range is left empty and
 * reads zeros) or by memcpy (then the caller's range is zeroed with memset).
 * Blocks of at least move_min bytes are moved; a move that the kernel refuses
 * (shared or KSM page, incompatible mapping) is finished by a copy.
 *
 * One mutex guards the table, the FIFO, the slot lists and the counters; the
 * data itself is moved or copied outside it, by the thread that owns the
 * block at that moment (a block in the table belongs to the table; whoever
 * takes it out owns it).  Forgetting takes the oldest block first (FIFO: a
 * get removes the block, so no block is ever "referenced" while cached and a
 * CLOCK bit would never be set).  Forgotten blocks' pages are given back with
 * MADV_DONTNEED; up to warm_max bytes of emptied copy slots stay populated
 * for reuse (a page fault costs ~10 us here, a memcpy of 4 KiB ~0.3 us). */
#include "internal.h"
#include "cache.h"
#include "pressure.h"
#include "uffd.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define NCLASS 40
#define ARENA_MIN ((size_t)64 << 20)
#define REFILL_BYTES ((size_t)256 << 10)
/* bench/cache on this (paravirtual) machine: UFFDIO_MOVE flushes the TLB
 * page by page (~16 us per accessed page) and leaves the caller a range whose
 * every page faults again (~10 us) when it reuses its buffer, while memcpy
 * moves 4 KiB in ~0.3 us.  Moving wins only for blocks of 4 MiB and more that
 * the caller does not touch again; so by default everything is copied and
 * move_min is the caller's choice (docs/cache.md has the figures). */
#define DEFAULT_MOVE_MIN UINT64_MAX
#define KNOWN_FLAGS (VMO_CACHE_NO_PRESSURE | VMO_CACHE_COPY)

struct block {
	uint64_t id;
	size_t len;
	uintptr_t slot;
	struct block *hnext;
	struct block *prev, *next; /* FIFO, oldest at head */
	unsigned cls;
};

struct stack {
	uintptr_t *v;
	size_t n, cap;
};

struct arena {
	uintptr_t base;
	size_t size;
	struct arena *next;
};

struct cls {
	size_t size;
	uintptr_t bump, end; /* never used part of the newest arena */
	struct stack cold;   /* free, no pages */
	struct stack warm;   /* free, pages populated */
};

struct vmo_cache {
	/* a server's cache (vmo_cache_connect): everything below unused */
	const struct vmo__cache_proxy_ops *proxy;
	void *proxy_ctx;
	pthread_mutex_t mu;
	uint32_t flags;
	uint64_t budget;   /* UINT64_MAX: none */
	uint64_t move_min; /* UINT64_MAX: never move */
	bool have_uffd;
	struct vmo__uffd uffd;

	struct block **tab;
	size_t tab_mask; /* buckets - 1 */
	struct block *head, *tail;
	struct cls cls[NCLASS];
	struct arena *arenas;

	uint64_t bytes, pending, warm_bytes, warm_max;
	struct vmo_cache_stats st;

	/* Memory: the byte cap derived from the headroom, refreshed by the
	 * watcher and by yields every `refresh_step` bytes. */
	struct vmo__pressure_sub *watch;
	uint64_t margin; /* the watcher's: headroom below it is "low" */
	uint64_t keep;   /* headroom the cache leaves free: 2 * margin */
	_Atomic uint64_t mem_cap;
	_Atomic uint64_t since_refresh;
	_Atomic int refreshing;
	uint64_t refresh_step;
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */

static unsigned class_of(size_t len)
{
	unsigned k = 0;
	while (((size_t)VMO_PAGE << k) < len)
		k++;
	return k;
}

static int push(struct stack *s, uintptr_t v)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		uintptr_t *nv = realloc(s->v, cap * sizeof *nv);
		if (!nv)
			return -ENOMEM;
		s->v = nv;
		s->cap = cap;
	}
	s->v[s->n++] = v;
	return 0;
}

static uint64_t cap_now(struct vmo_cache *c)
{
	uint64_t m = atomic_load_explicit(&c->mem_cap, memory_order_relaxed);
	return m < c->budget ? m : c->budget;
}

static size_t hash_of(const struct vmo_cache *c, uint64_t id)
{
	return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 17) & c->tab_mask;
}

static struct block **lookup(struct vmo_cache *c, uint64_t id)
{
	struct block **pp = &c->tab[hash_of(c, id)];
	while (*pp && (*pp)->id != id)
		pp = &(*pp)->hnext;
	return pp;
}

static void grow_table(struct vmo_cache *c)
{
	size_t n = (c->tab_mask + 1) * 2;
	struct block **nt = calloc(n, sizeof *nt);
	if (!nt)
		return; /* keep the longer chains */
	struct block **old = c->tab;
	size_t on = c->tab_mask + 1;
	c->tab = nt;
	c->tab_mask = n - 1;
	for (size_t i = 0; i < on; i++) {
		for (struct block *b = old[i], *nx; b; b = nx) {
			nx = b->hnext;
			size_t h = hash_of(c, b->id);
			b->hnext = nt[h];
			nt[h] = b;
		}
	}
	free(old);
}

/* Take b out of the table (pp points at it) and the FIFO. */
static void unlink_block(struct vmo_cache *c, struct block **pp)
{
	struct block *b = *pp;
	*pp = b->hnext;
	if (b->prev)
		b->prev->next = b->next;
	else
		c->head = b->next;
	if (b->next)
		b->next->prev = b->prev;
	else
		c->tail = b->prev;
	b->prev = b->next = b->hnext = NULL;
	c->bytes -= b->len;
	c->st.blocks--;
}

/* Evict from the head of the FIFO until bytes + pending + need <= cap;
 * victims are chained through ->next onto *victims. */
static void shrink_locked(struct vmo_cache *c, uint64_t need, uint64_t cap, struct block **victims)
{
	while (c->head && c->bytes + c->pending + need > cap) {
		struct block *b = c->head;
		unlink_block(c, lookup(c, b->id));
		c->st.forgotten_blocks++;
		c->st.forgotten_bytes += b->len;
		b->next = *victims;
		*victims = b;
	}
}

/* ------------------------------------------------------------------------ */
/* Slots                                                                    */

static int new_arena(struct vmo_cache *c, struct cls *k)
{
	size_t size = k->size > ARENA_MIN ? k->size : ARENA_MIN;
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	madvise(p, size, MADV_NOHUGEPAGE);
	if (c->have_uffd) {
		int rc = vmo__uffd_register(&c->uffd, p, size, UFFDIO_REGISTER_MODE_WP);
		if (rc < 0)
			vmo__debug("cache: cannot register an arena (%s): copying only", strerror(-rc));
		/* Without the registration, a move into it fails and is copied. */
	}
	struct arena *a = malloc(sizeof *a);
	if (!a) {
		munmap(p, size);
		return -ENOMEM;
	}
	a->base = (uintptr_t)p;
	a->size = size;
	a->next = c->arenas;
	c->arenas = a;
	k->bump = a->base;
	k->end = a->base + size;
	return 0;
}

/* A free slot of class k.  want_warm: a populated one is welcome (the copy
 * path); otherwise it must be empty (the move path).  For the copy path
 * with no warm slot, *extra fresh slots following *slot are reserved too,
 * to be populated in one call and pushed warm (refill_done). */
static int slot_get(struct vmo_cache *c, unsigned ki, bool want_warm, uintptr_t *slot, bool *warm,
		    size_t *extra)
{
	struct cls *k = &c->cls[ki];
	*warm = false;
	*extra = 0;
	if (want_warm && k->warm.n) {
		*slot = k->warm.v[--k->warm.n];
		c->warm_bytes -= k->size;
		*warm = true;
		return 0;
	}
	if (k->cold.n) {
		*slot = k->cold.v[--k->cold.n];
		return 0;
	}
	if (k->bump + k->size > k->end) {
		int rc = new_arena(c, k);
		if (rc < 0)
			return rc;
	}
	*slot = k->bump;
	k->bump += k->size;
	if (want_warm && k->size <= REFILL_BYTES / 4) {
		size_t n = REFILL_BYTES / k->size - 1;
		size_t room = (k->end - k->bump) / k->size;
		size_t wroom = c->warm_max > c->warm_bytes ? (c->warm_max - c->warm_bytes) / k->size : 0;
		if (n > room)
			n = room;
		if (n > wroom)
			n = wroom;
		k->bump += n * k->size;
		c->warm_bytes += n * k->size; /* counted now so that others respect warm_max */
		*extra = n;
	}
	return 0;
}

static void refill_done(struct vmo_cache *c, unsigned ki, uintptr_t slot, size_t extra)
{
	struct cls *k = &c->cls[ki];
	for (size_t i = 1; i <= extra; i++) {
		if (push(&k->warm, slot + i * k->size) < 0) {
			/* cannot track it: give the pages back, lose the slot */
			madvise((void *)(slot + i * k->size), k->size, MADV_DONTNEED);
			c->warm_bytes -= k->size;
		}
	}
}

/* Return a slot: populated (warm) or empty.  Called unlocked; locks. */
static void slot_put(struct vmo_cache *c, unsigned ki, uintptr_t slot, bool populated)
{
	struct cls *k = &c->cls[ki];
	pthread_mutex_lock(&c->mu);
	if (populated && c->warm_bytes + k->size <= c->warm_max && push(&k->warm, slot) == 0) {
		c->warm_bytes += k->size;
		pthread_mutex_unlock(&c->mu);
		return;
	}
	pthread_mutex_unlock(&c->mu);
	if (populated)
		madvise((void *)slot, k->size, MADV_DONTNEED);
	pthread_mutex_lock(&c->mu);
	if (push(&k->cold, slot) < 0)
		vmo__warn("cache: out of memory: a %zu-byte slot is lost", k->size);
	pthread_mutex_unlock(&c->mu);
}

/* Give the pages of forgotten blocks back and free them. */
static void free_victims(struct vmo_cache *c, struct block *v)
{
	if (!v)
		return;
	for (struct block *b = v; b; b = b->next)
		madvise((void *)b->slot, b->len, MADV_DONTNEED);
	pthread_mutex_lock(&c->mu);
	while (v) {
		struct block *nx = v->next;
		if (push(&c->cls[v->cls].cold, v->slot) < 0)
			vmo__warn("cache: out of memory: a slot is lost");
		free(v);
		v = nx;
	}
	pthread_mutex_unlock(&c->mu);
}

/* Drop every warm slot's pages (under pressure). */
static void trim_warm(struct vmo_cache *c)
{
	for (unsigned ki = 0; ki < NCLASS; ki++) {
		struct cls *k = &c->cls[ki];
		for (;;) {
			pthread_mutex_lock(&c->mu);
			if (!k->warm.n) {
				pthread_mutex_unlock(&c->mu);
				break;
			}
			uintptr_t s = k->warm.v[--k->warm.n];
			c->warm_bytes -= k->size;
			pthread_mutex_unlock(&c->mu);
			madvise((void *)s, k->size, MADV_DONTNEED);
			pthread_mutex_lock(&c->mu);
			if (push(&k->cold, s) < 0)
				vmo__warn("cache: out of memory: a slot is lost");
			pthread_mutex_unlock(&c->mu);
		}
	}
}

/* ------------------------------------------------------------------------ */
/* Moving data                                                              */

/* Zero [p, p+n) of the caller's range after a copy. */
static void zero_range(void *p, size_t n) { memset(p, 0, n); }

/* Caller's range -> slot.  Returns true if every page was moved. */
static bool data_in(struct vmo_cache *c, uintptr_t slot, bool slot_populated, void *addr, size_t len,
		    bool move, bool zero_src)
{
	size_t done = 0;
	if (move) {
		int rc = vmo__uffd_move(&c->uffd, (void *)slot, addr, len, true, &done);
		if (rc == 0)
			return true;
		vmo__debug("cache: UFFDIO_MOVE in: %s after %zu of %zu bytes; copying", strerror(-rc), done,
			   len);
	} else if (!slot_populated) {
		/* one call instead of a page fault (~10 us here) per page */
		madvise((void *)slot, len, MADV_POPULATE_WRITE);
	}
	memcpy((char *)slot + done, (char *)addr + done, len - done);
	if (zero_src)
		zero_range((char *)addr + done, len - done);
	return false;
}

/* Slot -> caller's range.  dst_empty: the caller's range has no pages (it
 * was just moved out).  Returns true if every page was moved; *slot_left is
 * set if the slot still holds pages. */
static bool data_out(struct vmo_cache *c, uintptr_t slot, void *addr, size_t len, bool move,
		     bool dst_empty, bool *slot_left)
{
	size_t done = 0;
	*slot_left = true;
	if (move) {
		int rc = vmo__uffd_register(&c->uffd, addr, len, UFFDIO_REGISTER_MODE_WP);
		if (rc == 0) {
			/* UFFDIO_MOVE needs empty destination PTEs, and a hole in
			 * the block must read as zero at addr */
			if (!dst_empty)
				madvise(addr, len, MADV_DONTNEED);
			rc = vmo__uffd_move(&c->uffd, addr, (void *)slot, len, true, &done);
			vmo__uffd_unregister(&c->uffd, addr, len);
			if (rc == 0) {
				*slot_left = false;
				return true;
			}
			vmo__debug("cache: UFFDIO_MOVE out: %s after %zu of %zu bytes; copying",
				   strerror(-rc), done, len);
		} else {
			vmo__debug("cache: cannot register the destination (%s); copying", strerror(-rc));
		}
	} else if (len >= 64 * VMO_PAGE) {
		/* if the destination is empty, one call instead of a fault per page;
		 * below 256 KiB the call costs more than it saves on a reused buffer */
		madvise(addr, len, MADV_POPULATE_WRITE);
	}
	memcpy((char *)addr + done, (char *)slot + done, len - done);
	return false;
}

/* ------------------------------------------------------------------------ */
/* Memory headroom                                                          */

/* Recompute the memory cap from the headroom; returns it. */
static uint64_t refresh_cap(struct vmo_cache *c)
{
	struct vmo__mem m;
	vmo__mem_query(&m);
	pthread_mutex_lock(&c->mu);
	uint64_t held = c->bytes + c->pending;
	uint64_t cap;
	if (m.headroom == UINT64_MAX)
		cap = UINT64_MAX;
	else if (m.headroom >= c->keep)
		cap = held + (m.headroom - c->keep);
	else
		cap = held > c->keep - m.headroom ? held - (c->keep - m.headroom) : 0;
	atomic_store(&c->mem_cap, cap);
	c->st.cap = cap < c->budget ? cap : c->budget;
	pthread_mutex_unlock(&c->mu);
	atomic_store(&c->since_refresh, 0);
	return cap;
}

/* Shrink to `target` bytes (and drop warm slots if asked). */
static void shrink_to(struct vmo_cache *c, uint64_t target, bool warm_too)
{
	struct block *victims = NULL;
	pthread_mutex_lock(&c->mu);
	shrink_locked(c, 0, target, &victims);
	pthread_mutex_unlock(&c->mu);
	if (warm_too)
		trim_warm(c);
	free_victims(c, victims);
}

static void on_pressure(void *arg, int level)
{
	struct vmo_cache *c = arg;
	uint64_t cap = refresh_cap(c);
	pthread_mutex_lock(&c->mu);
	uint64_t held = c->bytes + c->pending;
	uint64_t bytes = c->bytes;
	if (level > VMO__PRESSURE_NONE)
		c->st.pressure_events++;
	pthread_mutex_unlock(&c->mu);
	uint64_t target = UINT64_MAX;
	if (held > cap) {
		/* over the headroom: go below it by a quarter margin more, so that
		 * the next tick does not find us over again at once */
		uint64_t over = held - cap + c->margin / 4;
		target = bytes > over ? bytes - over : 0;
	}
	if (level == VMO__PRESSURE_SOME) {
		uint64_t t = bytes - bytes / 8; /* the machine stalls: give an eighth */
		if (t < target)
			target = t;
	} else if (level >= VMO__PRESSURE_CRITICAL) {
		uint64_t t = bytes / 2;
		if (t < target)
			target = t;
	}
	if (target != UINT64_MAX || level > VMO__PRESSURE_NONE) {
		if (target != UINT64_MAX)
			vmo__debug("cache: pressure level %d: %" PRIu64 " -> %" PRIu64 " bytes (cap %" PRIu64
				   ")",
				   level, bytes, target, cap);
		shrink_to(c, target, level > VMO__PRESSURE_NONE || held > cap);
	}
}

/* ------------------------------------------------------------------------ */
/* Public calls                                                             */

static bool bad_range(const void *addr, size_t len)
{
	uint64_t end;
	return !addr || !len || ((uintptr_t)addr & (VMO_PAGE - 1)) || (len & (VMO_PAGE - 1)) ||
	       !vmo__add_ok((uintptr_t)addr, len, &end) || len > ((uint64_t)1 << 46);
}

VMO_API int vmo_cache_create(const struct vmo_cache_opts *opts, struct vmo_cache **out)
{
	if (!out)
		return -EINVAL;
	struct vmo_cache_opts o = { 0 };
	if (opts)
		o = *opts;
	if (o.flags & ~KNOWN_FLAGS || o.reserved0)
		return -EINVAL;
	for (size_t i = 0; i < VMO_ARRAY_SIZE(o.reserved); i++)
		if (o.reserved[i])
			return -EINVAL;
	if (o.move_min && (o.move_min & (VMO_PAGE - 1)) && o.move_min != UINT64_MAX)
		return -EINVAL;
	struct vmo_cache *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->mu, NULL);
	c->flags = o.flags;
	c->budget = o.budget ? o.budget : UINT64_MAX;
	c->move_min = o.move_min ? o.move_min : DEFAULT_MOVE_MIN;
	c->tab_mask = 1023;
	c->tab = calloc(c->tab_mask + 1, sizeof *c->tab);
	if (!c->tab) {
		free(c);
		return -ENOMEM;
	}
	for (unsigned k = 0; k < NCLASS; k++)
		c->cls[k].size = (size_t)VMO_PAGE << k;
	c->uffd.fd = -1;
	if (!(o.flags & VMO_CACHE_COPY) && c->move_min != UINT64_MAX) {
		int rc = vmo__uffd_open(&c->uffd, UFFD_FEATURE_MOVE, UFFD_FEATURE_MOVE, true);
		if (rc == 0)
			c->have_uffd = true;
		else
			vmo__debug("cache: no UFFDIO_MOVE (%s): copying only", vmo_strerror(rc));
	}
	if (!c->have_uffd)
		c->move_min = UINT64_MAX;
	atomic_store(&c->mem_cap, UINT64_MAX);
	c->margin = 0;
	if (!(o.flags & VMO_CACHE_NO_PRESSURE)) {
		c->margin = vmo__mem_default_margin();
		/* The cache stops growing at twice the watcher's margin, so that it
		 * gives way before anyone (the engine's evictor, the kernel) feels
		 * short of memory. */
		c->keep = 2 * c->margin;
		c->refresh_step = c->margin / 4;
		struct vmo__pressure_opts po = { .margin = c->margin };
		int rc = vmo__pressure_subscribe(&po, on_pressure, c, &c->watch);
		if (rc < 0) {
			vmo_cache_destroy(c);
			return rc;
		}
		refresh_cap(c);
		vmo__debug("cache: watching memory (sources %#x, cgroup '%s', margin %" PRIu64 ")",
			   vmo__pressure_sources(), vmo__mem_cgroup_dir(), c->margin);
	}
	/* Emptied copy slots kept populated: a little, never more than 1/16 of the budget. */
	c->warm_max = (uint64_t)16 << 20;
	if (c->budget != UINT64_MAX && c->budget / 16 < c->warm_max)
		c->warm_max = c->budget / 16;
	c->st.cap = cap_now(c);
	*out = c;
	return 0;
}

struct vmo_cache *vmo__cache_proxy_new(const struct vmo__cache_proxy_ops *ops, void *ctx)
{
	struct vmo_cache *c = calloc(1, sizeof *c);
	if (c) {
		c->proxy = ops;
		c->proxy_ctx = ctx;
	}
	return c;
}

VMO_API int vmo_cache_destroy(struct vmo_cache *c)
{
	if (!c)
		return -EINVAL;
	if (c->proxy) {
		c->proxy->destroy(c->proxy_ctx);
		free(c);
		return 0;
	}
	vmo__pressure_unsubscribe(c->watch);
	c->watch = NULL;
	for (size_t i = 0; i <= c->tab_mask; i++) {
		for (struct block *b = c->tab[i], *nx; b; b = nx) {
			nx = b->hnext;
			free(b);
		}
	}
	free(c->tab);
	for (struct arena *a = c->arenas, *nx; a; a = nx) {
		nx = a->next;
		munmap((void *)a->base, a->size);
		free(a);
	}
	for (unsigned k = 0; k < NCLASS; k++) {
		free(c->cls[k].cold.v);
		free(c->cls[k].warm.v);
	}
	if (c->have_uffd)
		vmo__uffd_close(&c->uffd);
	pthread_mutex_destroy(&c->mu);
	free(c);
	return 0;
}

/* Yield [addr, len) as id.  If got (not NULL) the block `gid` is taken out
 * of the cache in the same critical section and put at addr afterwards. */
static int yield_common(struct vmo_cache *c, uint64_t id, void *addr, size_t len, bool is_get,
			uint64_t gid)
{
	if (!c || bad_range(addr, len))
		return -EINVAL;
	bool move = len >= c->move_min;
	unsigned ki = class_of(len);
	if (ki >= NCLASS)
		return -EINVAL;
	/* Between two looks at the headroom, yields may take refresh_step bytes. */
	if (c->watch && atomic_fetch_add(&c->since_refresh, len) + len >= c->refresh_step &&
	    !atomic_exchange(&c->refreshing, 1)) {
		refresh_cap(c);
		atomic_store(&c->refreshing, 0);
	}

	struct block *nb = malloc(sizeof *nb);
	if (!nb)
		return -ENOMEM;
	struct block *victims = NULL, *got = NULL, *old = NULL;
	uintptr_t slot = 0;
	bool warm = false, keep;
	size_t extra = 0;

	pthread_mutex_lock(&c->mu);
	if (is_get) {
		struct block **pp = lookup(c, gid);
		if (*pp && (*pp)->len != len) {
			pthread_mutex_unlock(&c->mu);
			free(nb);
			return -EINVAL;
		}
		if (*pp) {
			got = *pp;
			unlink_block(c, pp);
			c->st.hits++;
		} else {
			c->st.misses++;
		}
	}
	c->st.yields++;
	uint64_t cap = cap_now(c);
	keep = len <= cap;
	if (keep) {
		shrink_locked(c, len, cap, &victims);
		int rc = slot_get(c, ki, !move, &slot, &warm, &extra);
		if (rc < 0) {
			vmo__debug("cache: no slot for %zu bytes: %s", len, strerror(-rc));
			keep = false;
		} else {
			c->pending += len;
		}
	}
	if (!keep) {
		/* cannot hold it: the yield is a forget (an older block with this id
		 * must not be found again) */
		struct block **pp = lookup(c, id);
		if (*pp) {
			old = *pp;
			unlink_block(c, pp);
		}
		c->st.forgotten_blocks++;
		c->st.forgotten_bytes += len;
	}
	pthread_mutex_unlock(&c->mu);

	bool moved_in = false;
	if (keep) {
		if (extra) { /* populate the refill batch in one call */
			madvise((void *)slot, (extra + 1) * c->cls[ki].size, MADV_POPULATE_WRITE);
			warm = true;
		}
		moved_in = data_in(c, slot, warm, addr, len, move, !got);
	} else if (!got) {
		zero_range(addr, len);
	}

	pthread_mutex_lock(&c->mu);
	if (extra)
		refill_done(c, ki, slot, extra);
	if (keep) {
		c->pending -= len;
		struct block **pp = lookup(c, id);
		if (*pp) {
			old = *pp;
			unlink_block(c, pp);
		}
		nb->id = id;
		nb->len = len;
		nb->slot = slot;
		nb->cls = ki;
		nb->prev = c->tail;
		nb->next = NULL;
		if (c->tail)
			c->tail->next = nb;
		else
			c->head = nb;
		c->tail = nb;
		pp = lookup(c, id);
		nb->hnext = NULL;
		*pp = nb;
		c->bytes += len;
		c->st.blocks++;
		if (moved_in)
			c->st.moved++;
		if (c->st.blocks > c->tab_mask + 1)
			grow_table(c);
		nb = NULL;
	}
	pthread_mutex_unlock(&c->mu);
	free(nb);
	if (old) {
		old->next = NULL;
		free_victims(c, old);
	}
	free_victims(c, victims);

	if (!is_get)
		return 0;
	if (!got)
		return -ENOENT;
	/* Put the block we took at addr.  After a full move out, addr is empty. */
	bool slot_left;
	bool mv = data_out(c, got->slot, addr, len, len >= c->move_min, moved_in, &slot_left);
	if (mv) {
		pthread_mutex_lock(&c->mu);
		c->st.moved++;
		pthread_mutex_unlock(&c->mu);
	}
	slot_put(c, got->cls, got->slot, slot_left);
	free(got);
	return 0;
}

VMO_API int vmo_cache_yield(struct vmo_cache *c, uint64_t id, void *addr, size_t len)
{
	if (c && c->proxy)
		return bad_range(addr, len) ? -EINVAL : c->proxy->yield(c->proxy_ctx, id, addr, len);
	return yield_common(c, id, addr, len, false, 0);
}

VMO_API int vmo_cache_yield_get(struct vmo_cache *c, uint64_t yield_id, uint64_t get_id, void *addr,
				size_t len)
{
	if (!c || bad_range(addr, len))
		return -EINVAL;
	if (c->proxy) { /* two requests; between them another user's block cannot come */
		int rc = c->proxy->yield(c->proxy_ctx, yield_id, addr, len);
		return rc ? rc : c->proxy->get(c->proxy_ctx, get_id, addr, len);
	}
	if (yield_id != get_id)
		return yield_common(c, yield_id, addr, len, true, get_id);
	/* Yield then get the same id: the bytes stay at addr, the id leaves. */
	int rc = vmo_cache_forget(c, yield_id);
	(void)rc;
	pthread_mutex_lock(&c->mu);
	c->st.yields++;
	c->st.hits++;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

VMO_API int vmo_cache_get(struct vmo_cache *c, uint64_t id, void *addr, size_t len)
{
	if (!c || bad_range(addr, len))
		return -EINVAL;
	if (c->proxy)
		return c->proxy->get(c->proxy_ctx, id, addr, len);
	pthread_mutex_lock(&c->mu);
	struct block **pp = lookup(c, id);
	struct block *b = *pp;
	if (!b) {
		c->st.misses++;
		pthread_mutex_unlock(&c->mu);
		return -ENOENT;
	}
	if (b->len != len) {
		pthread_mutex_unlock(&c->mu);
		return -EINVAL;
	}
	unlink_block(c, pp);
	c->st.hits++;
	pthread_mutex_unlock(&c->mu);
	bool slot_left;
	if (data_out(c, b->slot, addr, len, len >= c->move_min, false, &slot_left)) {
		pthread_mutex_lock(&c->mu);
		c->st.moved++;
		pthread_mutex_unlock(&c->mu);
	}
	slot_put(c, b->cls, b->slot, slot_left);
	free(b);
	return 0;
}

VMO_API int vmo_cache_forget(struct vmo_cache *c, uint64_t id)
{
	if (!c)
		return -EINVAL;
	if (c->proxy)
		return c->proxy->forget(c->proxy_ctx, id, false);
	pthread_mutex_lock(&c->mu);
	struct block **pp = lookup(c, id);
	struct block *b = *pp;
	if (b)
		unlink_block(c, pp);
	pthread_mutex_unlock(&c->mu);
	if (!b)
		return -ENOENT;
	b->next = NULL;
	free_victims(c, b);
	return 0;
}

VMO_API int vmo_cache_forget_all(struct vmo_cache *c)
{
	if (!c)
		return -EINVAL;
	if (c->proxy)
		return c->proxy->forget(c->proxy_ctx, 0, true);
	struct block *victims = NULL;
	pthread_mutex_lock(&c->mu);
	while (c->head) {
		struct block *b = c->head;
		unlink_block(c, lookup(c, b->id));
		b->next = victims;
		victims = b;
	}
	pthread_mutex_unlock(&c->mu);
	free_victims(c, victims);
	trim_warm(c);
	return 0;
}

VMO_API int vmo_cache_stats_sized(struct vmo_cache *c, struct vmo_cache_stats *out, size_t size)
{
	if (!c || !out || size < offsetof(struct vmo_cache_stats, blocks))
		return -EINVAL;
	struct vmo_cache_stats st;
	if (c->proxy) {
		memset(&st, 0, sizeof st);
		int rc = c->proxy->stats(c->proxy_ctx, &st);
		if (rc)
			return rc;
	} else {
		pthread_mutex_lock(&c->mu);
		st = c->st;
		st.bytes = c->bytes;
		st.idle_bytes = c->warm_bytes;
		st.cap = cap_now(c);
		pthread_mutex_unlock(&c->mu);
	}
	vmo__sized_out(out, size, &st, sizeof st, VMO_CACHE_STATS_VERSION);
	return 0;
}
