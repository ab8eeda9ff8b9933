/* SPDX-License-Identifier: MIT */
/* space.h - address spaces: where views live and faults come from.
 *
 * A space is one mm: its userfaultfd, the process (pid, pidfd), its pagemap
 * descriptor, whether it serves kernel-mode faults, and its address-sorted
 * table of views.  Every kernel operation on a view goes through the view's
 * space and its table of operations (struct vmo__space_ops): the local
 * process is one space (madvise, signals by getpid()); a space adopted from
 * another process's userfaultfd (received over SCM_RIGHTS, or taken with
 * pidfd_getfd) is another (process_madvise, pidfd-addressed signals,
 * /proc/PID/pagemap).  userfaultfd ioctls act on the descriptor's mm
 * whoever calls them, so registering, supplying, waking and protecting are
 * the same for both.
 *
 * Events (the program unmapping or moving part of a view) arrive on the
 * space's userfaultfd and count as handled once read, so reading the
 * descriptor and applying its events happen under the space's lock held for
 * writing, and whatever acts on view addresses the kernel would not check
 * for us (madvise, PAGEMAP_SCAN, supply ioctls) holds it for reading
 * (vmo__space_enter): it never acts on a range the program has unmapped
 * and perhaps mapped again.
 *
 * Nothing here knows pages or pagers: this layer sits below the object's
 * page machinery and calls nothing above it. */
#ifndef VMO_SPACE_H
#define VMO_SPACE_H

#include "internal.h"
#include "uffd.h"
#include "vtree.h"

#include <pthread.h>
#include <sys/types.h>

struct vmo__space;
struct vmo_object;

/* A view's flags: VMO_PROT_* (vmo.h), and this one: the process maps the
 * memfd MAP_PRIVATE from a read-only descriptor (a read-only client of a
 * server: the kernel registers no shared mapping it may not write).  Pages
 * go into the memfd and are mapped with CONTINUE, never UFFDIO_COPY (which
 * would give the process a private copy, not the object's page). */
#define VMO__VIEW_PRIVATE (1u << 16)

/* A view: [addr, addr+len) of a space shows object bytes [off, off+len).
 * Its address, length and offset never change: when the program unmaps or
 * moves part of a view (UNMAP/REMAP events), the view is retired and new
 * ones made for the pieces. */
struct vmo_map {
	struct vmo__space *space;
	struct vmo_object *obj;
	uintptr_t addr;
	size_t len;
	uint64_t off; /* object offset of addr */
	unsigned flags;
	bool wp;      /* registered with WP: first writes trap */
	/* One reference while the view is in the tables, one per worker using
	 * it (vmo__map_lookup_get .. vmo__map_put); freed with the last. */
	_Atomic int refs;
	_Atomic bool dead; /* out of the tables */
	_Atomic uint8_t inherit; /* VMO_INHERIT_* (fork.c) */
	/* read-ahead: where a sequential access would fault next, and the window */
	_Atomic uint64_t ra_next;
	_Atomic uint32_t ra_window;
	struct vmo__vnode anode; /* space's tree, by address (sp->maps_lock) */
	struct vmo__vnode onode; /* object's tree, by offset (the object's lock) */
};

/* The kernel operations on a space.  Each returns 0 (or a count) or -errno;
 * -ENOENT/-ESRCH mean the range (or the whole mm) is gone. */
struct vmo__space_ops {
	const char *kind;
	int (*reg)(struct vmo__space *sp, void *addr, size_t len, uint64_t modes);
	int (*unreg)(struct vmo__space *sp, void *addr, size_t len);
	int (*copy)(struct vmo__space *sp, void *dst, const void *src, size_t len, bool wp, bool wake, size_t *done);
	int (*cont)(struct vmo__space *sp, void *dst, size_t len, bool wp, bool wake, size_t *done);
	int (*poison)(struct vmo__space *sp, void *dst, size_t len);
	int (*wake)(struct vmo__space *sp, void *addr, size_t len);
	int (*protect)(struct vmo__space *sp, void *addr, size_t len, bool wp, bool wake);
	/* Drop the page-table entries of [addr, addr+len) (the memory stays in
	 * the object): the next access faults.  -EOPNOTSUPP where the space
	 * cannot (another process, on a kernel without process_madvise of
	 * MADV_DONTNEED). */
	int (*zap)(struct vmo__space *sp, void *addr, size_t len);
	/* SIGBUS at addr to thread tid of the space (when poison cannot). */
	int (*sigbus)(struct vmo__space *sp, pid_t tid, uintptr_t addr);
	/* PAGEMAP_SCAN: report and protect again what was written (async WP). */
	int (*scan_written)(struct vmo__space *sp, uintptr_t start, uintptr_t end,
			    void (*cb)(void *arg, uintptr_t s, uintptr_t e), void *arg);
};

/* A source of work in the engine's epoll set. */
enum { VMO__SRC_UFFD = 1, VMO__SRC_PIDFD, VMO__SRC_STASH };
struct vmo__source {
	int kind;
	struct vmo__space *sp;
};

struct vmo__space {
	struct vmo__spaces *set;
	const struct vmo__space_ops *ops;
	struct vmo__uffd u;
	unsigned features; /* VMO_FEAT_* its userfaultfd offers */
	bool local;        /* the calling process */
	bool sigbus_mode;  /* UFFD_FEATURE_SIGBUS: faults are the threads' own (selfserve.c) */
	pid_t pid;
	int pidfd;         /* -1 for the local space */
	int pagemap_fd;    /* /proc/PID/pagemap, for async dirty collection; -1 */
	_Atomic bool dead; /* the process is gone: no views, no more faults */
	_Atomic uint64_t faults; /* fault messages served (a server's per-client count) */
	_Atomic bool doomed; /* its mm is gone (ESRCH): reap it */

	/* views by address, for fault lookup */
	pthread_rwlock_t maps_lock;
	struct vmo__vtree maps;
	/* see above: events under it for writing, view actions for reading */
	pthread_rwlock_t lock;
	/* a fault at an address no view covers, seen again and again */
	_Atomic uintptr_t unknown_addr;
	_Atomic int unknown_count;

	struct vmo__source usrc, psrc; /* epoll data: the userfaultfd, the pidfd */
	struct vmo__space *next;       /* set's list (or its graveyard), under set->mu */
	/* Lifetime of a closed space (vmo__space_close): one reference per
	 * view (vmo_map.space) and one while it is open; freed once none is
	 * left and every worker has passed the top of its loop since (it may
	 * hold the pointer from an epoll event or the stash until then). */
	_Atomic long refs;
	uint64_t *snap; /* the workers' passes when it was closed */
};

/* What the layer above (objects) does when a view comes or goes: link it in
 * the object's offset tree, the reference a view holds on its object, and
 * (async tracking) a view the program unmapped took what was written
 * through it along: the object counts those pages dirty.  Called under the
 * space's lock, never the object's. */
struct vmo__view_hooks {
	void (*link)(struct vmo_object *obj, struct vmo_map *m);
	void (*unlink)(struct vmo_object *obj, struct vmo_map *m);
	void (*ref)(struct vmo_object *obj);
	void (*unref)(struct vmo_object *obj);
	void (*lost_writes)(struct vmo_object *obj, uint64_t off, uint64_t len);
};

/* All spaces of an engine: the epoll set the workers wait on, and the stash
 * of fault messages read while draining events. */
struct vmo__spaces {
	const struct vmo__view_hooks *hooks;
	bool async; /* async tracking (WP_ASYNC + PAGEMAP_SCAN) */
	int epfd;
	pthread_mutex_t mu; /* list, stash */
	struct vmo__space *list;
	struct vmo__space *local;
	struct vmo__stashed {
		struct vmo__space *sp;
		struct uffd_msg msg;
	} *stash;
	size_t nstash, stash_cap;
	_Atomic size_t stashed;
	int stash_efd; /* an eventfd in the epoll set: stashed messages */
	struct vmo__source stash_src;
	/* Wakes put off (vmo__space_wake_later), under mu. */
	struct vmo__late {
		struct vmo__space *sp;
		uintptr_t addr;
		size_t len;
		uint64_t due;
		pid_t tid; /* the thread signalled (0: wake regardless) */
	} *late;
	size_t nlate, late_cap;
	_Atomic size_t nlate_any;
	/* Closed spaces waiting to be freed (under mu), and each worker's
	 * count of passes through the top of its loop (vmo__spaces_pass). */
	struct vmo__space *grave;
	_Atomic size_t ngrave;
	_Atomic uint64_t *passes;
	unsigned npasses;
};

/* The set: its epoll descriptor and stash eventfd. */
int vmo__spaces_init(struct vmo__spaces *set, const struct vmo__view_hooks *hooks, bool async);
/* Free every space, then the set (no worker runs). */
void vmo__spaces_fini(struct vmo__spaces *set);
/* Make the local space from an open userfaultfd (it owns it from here). */
int vmo__space_local(struct vmo__spaces *set, struct vmo__uffd *u, int pagemap_fd, struct vmo__space **out);
/* Adopt another process's userfaultfd (fd, owned from here; its UFFDIO_API
 * already done by that process with uffd_features): faults in its views
 * come to this engine's workers.  pid is that process; its exit retires
 * every view of the space (vmo__space_reap). */
int vmo__space_adopt(struct vmo__spaces *set, int fd, uint64_t uffd_features, pid_t pid, struct vmo__space **out);
/* The process of sp has exited: retire its views (called by a worker when
 * its pidfd polls readable).  The struct stays until the engine goes (the
 * epoll set may still hand it to a worker); its descriptors too. */
void vmo__space_reap(struct vmo__space *sp);
/* Close sp for good (its process left the engine: a client that
 * disconnected): its views are retired as if unmapped (left registered:
 * the process keeps its userfaultfd and must not see holes turn into zero
 * pages), it leaves the epoll set, and it is freed, descriptors and all,
 * once nothing can reach it (refs, above). */
void vmo__space_close(struct vmo__space *sp);
/* The workers: n of them start (0: all stopped).  Called while none runs. */
int vmo__spaces_workers(struct vmo__spaces *set, unsigned n);
/* Worker i is at the top of its loop, holding no space: free the closed
 * spaces nothing reaches any more. */
void vmo__spaces_pass(struct vmo__spaces *set, unsigned i);
/* The epoll timeout for a worker: t (ms, -1 forever), at most half a
 * second: a closed space waits for every worker to pass. */
int vmo__spaces_timeout(struct vmo__spaces *set, int t);
/* VMO_FEAT_* a userfaultfd with these negotiated features offers. */
unsigned vmo__space_features(const struct vmo__uffd *u);

/* Views.  A new view (addr, len, off, flags of an existing mapping in sp
 * of obj's memfd) is registered with sp's userfaultfd and linked in the
 * space's and the object's tables; it holds a reference on obj (taken by
 * the caller). */
int vmo__view_attach(struct vmo__space *sp, struct vmo_object *obj, uintptr_t addr, size_t len, uint64_t off,
		     unsigned flags, bool wp, struct vmo_map **out);
/* Take the view at exactly [addr, addr+len) of obj out of the space's table
 * (marked dead), making the range inaccessible first when local; the caller
 * then waits for its users (vmo__view_quiesce) and finishes (detach). */
struct vmo_map *vmo__view_take(struct vmo__space *sp, struct vmo_object *obj, uintptr_t addr, size_t len);
void vmo__view_quiesce(struct vmo_map *m);
/* Out of the object's table and of the userfaultfd; drops the tables'
 * reference. */
void vmo__view_detach(struct vmo_map *m);

/* Find the view of sp holding addr, with a reference (NULL if none). */
struct vmo_map *vmo__map_lookup_get(struct vmo__space *sp, uintptr_t addr);
void vmo__map_get(struct vmo_map *m);
void vmo__map_put(struct vmo_map *m);

/* Read and apply pending events of sp, keeping fault messages for the
 * workers (the EAGAIN hook of the supply ioctls); true if the caller must
 * give up: it held sp's lock for reading (vmo__space_enter), which was let
 * go meanwhile, and its view went (or it acts on no view). */
bool vmo__space_drain(void *sp);
/* Act on view m's addresses (m NULL: on an address of sp no view covers)
 * with sp's lock held for reading: false if m (or the space) is gone.
 * Never nested. */
bool vmo__space_enter(struct vmo__space *sp, struct vmo_map *m);
void vmo__space_exit(struct vmo__space *sp);
/* Read up to n messages and apply the events among them, under sp's lock;
 * the fault messages are left in msgs (compacted); returns their count, or
 * 0 / -errno as vmo__uffd_read. */
int vmo__space_read(struct vmo__space *sp, struct uffd_msg *msgs, int n);
/* Wake [addr, addr+len) of sp in a while (about 50 ms): a thread sent a
 * SIGBUS in a fault is woken by the signal itself when its wait is
 * interruptible (every user-mode fault); one that is not (a kernel-mode
 * fault through get_user_pages) needs a wake, but waking the range at once
 * would also wake other threads waiting on that page, whose own messages
 * are still queued: their second fault would be a second, stale SIGBUS.
 * The late wake happens only if tid's SIGBUS is still pending then (its
 * wait did not end): a thread that took its signal is not woken into a
 * duplicate fault either. */
void vmo__space_wake_later(struct vmo__space *sp, uintptr_t addr, size_t len, pid_t tid);
/* Run the wakes that are due; milliseconds until the next, or -1. */
int vmo__spaces_run_late(struct vmo__spaces *set);
/* SIGBUS at addr to thread tid of sp (when UFFDIO_POISON cannot), then the
 * wait it may be in is ended (the signal, or a late wake). */
void vmo__space_sigbus(struct vmo__space *sp, pid_t tid, uintptr_t addr, size_t len);
/* The fault this thread is serving in a SIGBUS-mode space (selfserve.c):
 * a failure marks it (the SIGBUS is then passed on to the program) instead
 * of a signal being queued. */
struct vmo__ss_fail {
	pid_t tid;
	bool failed;
};
extern VMO__TLS struct vmo__ss_fail *vmo__ss_cur;
/* Return once every event already read from any space is applied. */
void vmo__spaces_barrier(struct vmo__spaces *set);
/* Arm the space's userfaultfd again in the epoll set (one-shot). */
int vmo__space_rearm(struct vmo__space *sp);
/* Fault messages another thread read while draining events. */
int vmo__space_take_stash(struct vmo__spaces *set, struct vmo__stashed *out, int max);

#endif
