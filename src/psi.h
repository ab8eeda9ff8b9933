/* psi.h - memory-pressure signals for the process: the machine's PSI, the
 * process's memory cgroup (v1 or v2), and how many bytes it may still use.
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
 *   vmo__psi_watch(): a thread that calls cb(arg, level) when pressure
 *   appears, and every poll_ms as a tick (level VMO__PRESSURE_NONE) so the
 *   owner can compare its usage with vmo__mem_headroom().  It listens to:
 *     - a PSI trigger "some <stall_us> <window_us>" on /proc/pressure/memory
 *       (POLLPRI) -> VMO__PRESSURE_SOME;
 *     - cgroup v2: the same trigger on the group's memory.pressure;
 *     - cgroup v2: memory.events (POLLPRI) of the group whose limit leaves
 *       the least headroom: "oom" / "oom_kill" grown -> VMO__PRESSURE_CRITICAL;
 *       "high" / "max" grown only wake the watcher for the headroom check
 *       below (page cache alone keeps a group at its limit);
 *     - cgroup v1: an eventfd on memory.usage_in_bytes crossing
 *       limit - margin (cgroup.event_control) -> VMO__PRESSURE_LOW, and on
 *       memory.pressure_level "medium" / "critical" -> LOW / CRITICAL;
 *     - the poll: headroom < margin -> LOW, < margin / 2 -> CRITICAL.
 *   Any source that is missing (no PSI, no cgroup, not allowed) is skipped;
 *   the poll always runs.  cb is called on every tick (every poll_ms,
 *   whatever happens in between), on every PSI / v1 / oom event, and when
 *   memory.events wakes the thread with the headroom below the margin (at
 *   most every poll_ms / 4).  Callbacks run on the watcher thread, one at a time; they must not
 *   call vmo__psi_stop() on their own watcher.
 *
 * Used by the yield cache (src/cache.c) and the engine's evictor (src/evict.c).
 * Every call returns 0 / a value, or -errno; nothing is printed except via
 * vmo__log. */
#ifndef VMO_PSI_H
#define VMO_PSI_H

#include <stdint.h>

enum vmo__pressure {
	VMO__PRESSURE_NONE = 0,     /* periodic tick: check headroom if you like */
	VMO__PRESSURE_SOME = 1,     /* PSI: tasks stalled on memory in the window */
	VMO__PRESSURE_LOW = 2,      /* cgroup/machine headroom below the margin */
	VMO__PRESSURE_CRITICAL = 3, /* below half the margin, or v1 "critical" */
};

struct vmo__psi_opts {
	uint32_t stall_us;  /* PSI "some" stall per window; 0 = 100000 */
	uint32_t window_us; /* PSI window, 500000..10000000; 0 = 1000000 */
	uint32_t poll_ms;   /* tick period; 0 = 100 */
	uint32_t flags;     /* VMO__PSI_* */
	uint64_t margin;    /* bytes of headroom to keep; 0 = vmo__mem_default_margin() */
};
#define VMO__PSI_NO_PSI (1u << 0)    /* do not open PSI triggers */
#define VMO__PSI_NO_CGROUP (1u << 1) /* no cgroup events (v1 eventfds, v2 memory.events) */

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

struct vmo__psi;
int vmo__psi_watch(const struct vmo__psi_opts *o, void (*cb)(void *arg, int level), void *arg,
		   struct vmo__psi **out);
/* Stop the thread, close everything, free w (NULL is fine). */
void vmo__psi_stop(struct vmo__psi *w);
/* Which sources the watcher listens to (VMO__PSI_SRC_* bits). */
#define VMO__PSI_SRC_PSI (1u << 0)
#define VMO__PSI_SRC_CG_PSI (1u << 1)
#define VMO__PSI_SRC_CG_THRESHOLD (1u << 2)
#define VMO__PSI_SRC_CG_LEVEL (1u << 3)
#define VMO__PSI_SRC_CG_EVENTS (1u << 4)
unsigned vmo__psi_sources(const struct vmo__psi *w);

#endif
