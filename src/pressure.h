/* SPDX-License-Identifier: MIT */
/* pressure.h - memory pressure for the process: how many bytes it may still
 * use (the machine's MemAvailable, its memory cgroup, v1 or v2), and one
 * shared watcher thread that tells its subscribers when memory runs short.
 *
 * Two parts, usable on their own:
 *
 *   vmo__mem_query() / vmo__mem_headroom(): a cheap snapshot (a few pread()s
 *   on files kept open; about 10-30 us) of the memory the process may still
 *   take before it is reclaimed against or OOM-killed:
 *       headroom = min(MemAvailable of the machine,
 *                      cgroup limit - (cgroup usage - reclaimable file cache))
 *   where the cgroup limit is the effective (hierarchical) one: v1
 *   memory.stat:hierarchical_memory_limit, v2 the smallest memory.max /
 *   memory.high from the process's group up to the root.  On v2 each group
 *   on the way that has a limit of its own bounds the headroom with its own
 *   usage (memory.current - file cache; siblings count there), so headroom
 *   may be less than the formula with the process's group's usage.
 *
 *   vmo__pressure_subscribe(): one watcher thread per process, whoever
 *   subscribes (each engine's evictor, each yield cache).  The first
 *   subscriber starts it, the last one to unsubscribe stops it (joined, its
 *   files closed); a subscriber that comes while it stops waits and starts
 *   a new one.  Each subscriber gives a callback, a margin (bytes of
 *   headroom it wants kept) and a tick period; the thread calls
 *   cb(arg, level) when pressure appears, and every poll_ms of that
 *   subscriber as a tick, so that the owner can compare its usage with
 *   vmo__mem_headroom().  The sources are opened once, for everybody:
 *     - a PSI trigger "some 100000 1000000" (a 100 ms stall per second; a
 *       2 s window, same ratio, where unprivileged triggers need it) on
 *       /proc/pressure/memory (POLLPRI) -> VMO__PRESSURE_SOME;
 *     - cgroup v2: the same trigger on the group's memory.pressure;
 *     - cgroup v2: memory.events (POLLPRI) of the group whose limit left the
 *       least headroom when the watcher started: "oom" / "oom_kill" grown
 *       -> VMO__PRESSURE_CRITICAL; "high" / "max" grown only wake the
 *       watcher for the headroom check below (page cache alone keeps a group
 *       at its limit);
 *     - cgroup v1: memory.pressure_level "medium" / "critical" (eventfds via
 *       cgroup.event_control) -> LOW / CRITICAL;
 *   and, per subscriber, since it depends on the margin:
 *     - cgroup v1: an eventfd on memory.usage_in_bytes crossing
 *       limit - margin -> VMO__PRESSURE_LOW for that subscriber;
 *     - the headroom, read once per wake-up and held against each margin:
 *       headroom < margin -> LOW, < margin / 2 -> CRITICAL.
 *   A subscriber's level is the highest of the shared event's, its own v1
 *   threshold's and its headroom's.  Any source that is missing (no PSI, no
 *   cgroup, not allowed) is skipped; the ticks always run.
 *
 *   When: each subscriber's cb is called on each of its ticks (every
 *   poll_ms from its subscription, whatever happens in between: the thread
 *   sleeps until the earliest tick of all), on every PSI / v1 / oom event,
 *   and when memory.events (or a signal) wakes the thread with that
 *   subscriber's headroom below its margin, at most every poll_ms / 4 of its
 *   own.  memory.events waking the thread more than 220 times in 100 ms
 *   means that reading it does not re-arm it: it is dropped.
 *
 *   Callbacks run on the watcher thread, one at a time, in subscription
 *   order, without any lock of the watcher held: a slow callback delays the
 *   others' (the engine's only sets a cap and kicks its evictor; the cache's
 *   shrinks).  vmo__pressure_subscribe() and vmo__pressure_unsubscribe() may
 *   be called from any thread at any time, also while callbacks run (they
 *   take the watcher's mutex, which no callback runs under).  Subscribing
 *   from a callback works; unsubscribing NEVER from a callback (it waits for
 *   the callback to return, or for the thread to end: from the thread itself
 *   that never happens), nor while holding a lock that the subscriber's own
 *   callback takes (the same wait).  Once vmo__pressure_unsubscribe(s) has
 *   returned, s's callback is not running and never runs again.
 *
 *   fork(): the child has no watcher thread; it forgets the parent's (a
 *   subscriber inherited from the parent may only be unsubscribed, which
 *   just frees it), and its first subscriber starts its own.
 *
 * Used by the yield cache (src/cache.c) and the engine's evictor
 * (src/evictor.c).  Every call returns 0 / a value, or -errno; nothing is
 * printed except via vmo__log. */
#ifndef VMO_PRESSURE_H
#define VMO_PRESSURE_H

#include <stdint.h>

enum vmo__pressure {
	VMO__PRESSURE_NONE = 0,     /* periodic tick: check headroom if you like */
	VMO__PRESSURE_SOME = 1,     /* PSI: tasks stalled on memory in the window */
	VMO__PRESSURE_LOW = 2,      /* cgroup/machine headroom below the margin */
	VMO__PRESSURE_CRITICAL = 3, /* below half the margin, cgroup oom, or v1 "critical" */
};

struct vmo__mem {
	uint64_t avail;        /* MemAvailable of the machine, bytes */
	uint64_t cg_limit;     /* effective cgroup limit; UINT64_MAX if none */
	uint64_t cg_usage;     /* the process's group's usage, bytes (0 if no cgroup) */
	uint64_t cg_reclaim;   /* of which reclaimable file cache */
	uint64_t headroom;     /* min(avail, cg_limit - (cg_usage - cg_reclaim)); v2: see above */
	int cg_version;        /* 0 none, 1, 2 */
};

/* Fill *m (all fields).  Thread-safe. */
int vmo__mem_query(struct vmo__mem *m);
/* Just the headroom in bytes (UINT64_MAX if nothing could be read). */
uint64_t vmo__mem_headroom(void);
/* A margin that suits the process's limit: max(64 MiB, min(limit, total RAM) / 16). */
uint64_t vmo__mem_default_margin(void);
/* The process's memory cgroup directory ("" if none), for messages and tests. */
const char *vmo__mem_cgroup_dir(void);

struct vmo__pressure_opts {
	uint64_t margin;  /* bytes of headroom to keep; 0 = vmo__mem_default_margin() */
	uint32_t poll_ms; /* this subscriber's tick period; 0 = 100 */
};

struct vmo__pressure_sub;
/* Subscribe cb(arg, level) to the process's watcher (started if it is not
 * running).  o may be NULL (defaults).  -EINVAL without cb or out; -ENOMEM,
 * or what eventfd() / pthread_create() say when the watcher cannot start. */
int vmo__pressure_subscribe(const struct vmo__pressure_opts *o, void (*cb)(void *arg, int level),
			    void *arg, struct vmo__pressure_sub **out);
/* Leave (NULL is fine): returns once s's callback is not running and will
 * not run again; the last subscriber stops the thread.  Never from a
 * callback (see above). */
void vmo__pressure_unsubscribe(struct vmo__pressure_sub *s);
/* Which sources the watcher listens to now (VMO__PRESSURE_SRC_* bits; 0
 * when nobody subscribes).  CG_THRESHOLD: some subscriber has its v1
 * usage threshold. */
#define VMO__PRESSURE_SRC_PSI (1u << 0)
#define VMO__PRESSURE_SRC_CG_PSI (1u << 1)
#define VMO__PRESSURE_SRC_CG_THRESHOLD (1u << 2)
#define VMO__PRESSURE_SRC_CG_LEVEL (1u << 3)
#define VMO__PRESSURE_SRC_CG_EVENTS (1u << 4)
unsigned vmo__pressure_sources(void);

#endif
