/* SPDX-License-Identifier: MIT */
/* space.c - address spaces (space.h): the local process and processes whose
 * userfaultfd was handed to us; their views, their events, and the kernel
 * operations on them. */
#include "space.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif

/* ---- kernel operations ------------------------------------------------------
 * userfaultfd ioctls act on the descriptor's mm, whoever calls them: the
 * same for every space. */

static int op_reg(struct vmo__space *sp, void *addr, size_t len, uint64_t modes)
{
	return vmo__uffd_register(&sp->u, addr, len, modes);
}
static int op_unreg(struct vmo__space *sp, void *addr, size_t len)
{
	return vmo__uffd_unregister(&sp->u, addr, len);
}
static int op_copy(struct vmo__space *sp, void *dst, const void *src, size_t len, bool wp, bool wake, size_t *done)
{
	return vmo__uffd_copy(&sp->u, dst, src, len, wp, wake, done);
}
static int op_cont(struct vmo__space *sp, void *dst, size_t len, bool wp, bool wake, size_t *done)
{
	return vmo__uffd_continue(&sp->u, dst, len, wp, wake, done);
}
static int op_poison(struct vmo__space *sp, void *dst, size_t len)
{
	return vmo__uffd_poison(&sp->u, dst, len);
}
static int op_wake(struct vmo__space *sp, void *addr, size_t len)
{
	return vmo__uffd_wake(&sp->u, addr, len);
}
static int op_protect(struct vmo__space *sp, void *addr, size_t len, bool wp, bool wake)
{
	return vmo__uffd_writeprotect(&sp->u, addr, len, wp, wake);
}
static int op_scan(struct vmo__space *sp, uintptr_t start, uintptr_t end, void (*cb)(void *, uintptr_t, uintptr_t),
		   void *arg)
{
	if (sp->pagemap_fd < 0)
		return -EOPNOTSUPP;
	return vmo__pagemap_collect_written(sp->pagemap_fd, start, end, cb, arg);
}

static int local_zap(struct vmo__space *sp, void *addr, size_t len)
{
	(void)sp;
	return madvise(addr, len, MADV_DONTNEED) ? -errno : 0;
}

/* The kernel lets a thread queue a positive (kernel-like) si_code only to
 * itself: SI_QUEUE it is, with si_addr carrying the address. */
static int queue_sigbus(pid_t pid, pid_t tid, uintptr_t addr)
{
	siginfo_t si;
	memset(&si, 0, sizeof si);
	si.si_signo = SIGBUS;
	si.si_code = SI_QUEUE;
	si.si_addr = (void *)addr;
	if (tid <= 0)
		return -ESRCH;
	return syscall(SYS_rt_tgsigqueueinfo, pid, tid, SIGBUS, &si) ? -errno : 0;
}

static int local_sigbus(struct vmo__space *sp, pid_t tid, uintptr_t addr)
{
	(void)sp;
	return queue_sigbus(getpid(), tid, addr);
}

/* Another process: process_madvise(2) takes only advice that keeps the
 * data (COLD, PAGEOUT, WILLNEED, COLLAPSE): no MADV_DONTNEED, so this
 * answers -EOPNOTSUPP, and the range keeps its entries (tried, in case a
 * kernel allows it). */
static int remote_zap(struct vmo__space *sp, void *addr, size_t len)
{
	struct iovec iov = { .iov_base = addr, .iov_len = len };
	long r = syscall(SYS_process_madvise, sp->pidfd, &iov, 1, MADV_DONTNEED, 0);
	if (r >= 0)
		return 0;
	return errno == EINVAL ? -EOPNOTSUPP : -errno;
}

static int remote_sigbus(struct vmo__space *sp, pid_t tid, uintptr_t addr)
{
	if (atomic_load(&sp->dead))
		return -ESRCH;
	return queue_sigbus(sp->pid, tid, addr);
}

/* A local space in SIGBUS mode (VMO_ENGINE_SELF_SERVICE): nobody waits in
 * the kernel (a fault is a SIGBUS to the thread, which serves it in its
 * handler or hands it to a worker and waits for the answer, selfserve.c).
 * So nothing is woken, and a failure is no poison and no queued signal: the
 * request being served is marked failed (vmo__ss_cur), and the handler
 * passes the SIGBUS on to the program. */
VMO__TLS struct vmo__ss_fail *vmo__ss_cur;

static int ss_wake(struct vmo__space *sp, void *addr, size_t len)
{
	(void)sp, (void)addr, (void)len;
	return 0;
}

static int ss_poison(struct vmo__space *sp, void *dst, size_t len)
{
	(void)sp, (void)dst, (void)len;
	return -EOPNOTSUPP;
}

static int ss_sigbus(struct vmo__space *sp, pid_t tid, uintptr_t addr)
{
	struct vmo__ss_fail *cur = vmo__ss_cur;
	if (cur && cur->tid == tid) {
		cur->failed = true;
		return 0;
	}
	/* (not the fault being served: cannot happen, but never lose it) */
	return local_sigbus(sp, tid, addr);
}

static const struct vmo__space_ops local_ops;

static const struct vmo__space_ops sigbus_ops = {
	.kind = "local, self-service",
	.reg = op_reg,
	.unreg = op_unreg,
	.copy = op_copy,
	.cont = op_cont,
	.poison = ss_poison,
	.wake = ss_wake,
	.protect = op_protect,
	.zap = local_zap,
	.sigbus = ss_sigbus,
	.scan_written = op_scan,
};

static const struct vmo__space_ops local_ops = {
	.kind = "local",
	.reg = op_reg,
	.unreg = op_unreg,
	.copy = op_copy,
	.cont = op_cont,
	.poison = op_poison,
	.wake = op_wake,
	.protect = op_protect,
	.zap = local_zap,
	.sigbus = local_sigbus,
	.scan_written = op_scan,
};

/* Another process's mm can go without its pidfd saying so (exec): its
 * ioctls then answer ESRCH, and the space is reaped by the worker. */
static int doomed(struct vmo__space *sp, int rc)
{
	if (rc == -ESRCH)
		atomic_store(&sp->doomed, true);
	return rc;
}
static int remote_copy(struct vmo__space *sp, void *dst, const void *src, size_t len, bool wp, bool wake,
		       size_t *done)
{
	return doomed(sp, vmo__uffd_copy(&sp->u, dst, src, len, wp, wake, done));
}
static int remote_cont(struct vmo__space *sp, void *dst, size_t len, bool wp, bool wake, size_t *done)
{
	return doomed(sp, vmo__uffd_continue(&sp->u, dst, len, wp, wake, done));
}
static int remote_poison(struct vmo__space *sp, void *dst, size_t len)
{
	return doomed(sp, vmo__uffd_poison(&sp->u, dst, len));
}
static int remote_protect(struct vmo__space *sp, void *addr, size_t len, bool wp, bool wake)
{
	return doomed(sp, vmo__uffd_writeprotect(&sp->u, addr, len, wp, wake));
}

static const struct vmo__space_ops remote_ops = {
	.kind = "process",
	.reg = op_reg,
	.unreg = op_unreg,
	.copy = remote_copy,
	.cont = remote_cont,
	.poison = remote_poison,
	.wake = op_wake,
	.protect = remote_protect,
	.zap = remote_zap,
	.sigbus = remote_sigbus,
	.scan_written = op_scan,
};

unsigned vmo__space_features(const struct vmo__uffd *u)
{
	unsigned f = 0;
	if (u->features & UFFD_FEATURE_MINOR_SHMEM)
		f |= VMO_FEAT_MINOR;
	if ((u->features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM) && (u->features & UFFD_FEATURE_PAGEFAULT_FLAG_WP))
		f |= VMO_FEAT_WP;
	if (u->features & UFFD_FEATURE_POISON)
		f |= VMO_FEAT_POISON;
	if (u->features & UFFD_FEATURE_MOVE)
		f |= VMO_FEAT_MOVE;
	if (vmo__uffd_kernel_features() & UFFD_FEATURE_WP_ASYNC)
		f |= VMO_FEAT_WP_ASYNC;
	if (vmo__pagemap_scan_supported())
		f |= VMO_FEAT_PAGEMAP_SCAN;
	if (u->features & UFFD_FEATURE_THREAD_ID)
		f |= VMO_FEAT_THREAD_ID;
	/* (in SIGBUS mode a system call's fault on an unsupplied page is
	 * EFAULT: nobody can serve it) */
	if (!u->user_mode_only && !(u->features & UFFD_FEATURE_SIGBUS))
		f |= VMO_FEAT_KERNEL_FAULTS;
	if (vmo__uffd_kernel_features() & UFFD_FEATURE_SIGBUS)
		f |= VMO_FEAT_SIGBUS;
	if ((f & VMO_FEAT_MINOR) && (f & VMO_FEAT_WP) && vmo__uffd_continue_wp_supported())
		f |= VMO_FEAT_CONTINUE_WP;
	if ((u->features & UFFD_FEATURE_EVENT_UNMAP) && (u->features & UFFD_FEATURE_EVENT_REMAP))
		f |= VMO_FEAT_EVENTS;
	return f;
}

/* ---- the set ------------------------------------------------------------------ */

static int epoll_add(struct vmo__spaces *set, int fd, struct vmo__source *src, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };
	return epoll_ctl(set->epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

int vmo__spaces_init(struct vmo__spaces *set, const struct vmo__view_hooks *hooks, bool async)
{
	memset(set, 0, sizeof *set);
	set->hooks = hooks;
	set->async = async;
	set->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (set->epfd < 0)
		return -errno;
	set->stash_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (set->stash_efd < 0) {
		int err = -errno;
		close(set->epfd);
		return err;
	}
	pthread_mutex_init(&set->mu, NULL);
	set->stash_src.kind = VMO__SRC_STASH;
	int rc = epoll_add(set, set->stash_efd, &set->stash_src, EPOLLIN);
	if (rc) {
		close(set->stash_efd);
		close(set->epfd);
		pthread_mutex_destroy(&set->mu);
	}
	return rc;
}

static void space_free(struct vmo__space *sp)
{
	/* Views left (a dead process's are retired already): only the
	 * engine's own, which its objects' owners must have unmapped. */
	if (sp->pidfd >= 0)
		close(sp->pidfd);
	if (sp->pagemap_fd >= 0)
		close(sp->pagemap_fd);
	vmo__uffd_close(&sp->u);
	pthread_rwlock_destroy(&sp->maps_lock);
	pthread_rwlock_destroy(&sp->lock);
	free(sp);
}

void vmo__spaces_fini(struct vmo__spaces *set)
{
	for (int l = 0; l < 2; l++) {
		struct vmo__space *sp = l ? set->grave : set->list;
		while (sp) {
			struct vmo__space *next = sp->next;
			free(sp->snap);
			space_free(sp);
			sp = next;
		}
	}
	free(set->passes);
	close(set->stash_efd);
	close(set->epfd);
	free(set->stash);
	free(set->late);
	pthread_mutex_destroy(&set->mu);
}

static struct vmo__space *space_new(struct vmo__spaces *set, const struct vmo__space_ops *ops)
{
	struct vmo__space *sp = calloc(1, sizeof *sp);
	if (!sp)
		return NULL;
	sp->set = set;
	sp->ops = ops;
	sp->pidfd = -1;
	sp->pagemap_fd = -1;
	sp->u.fd = -1;
	pthread_rwlock_init(&sp->maps_lock, NULL);
	/* Writer-preferring: readers of the userfaultfd (writers here) must not
	 * wait behind a stream of view walks. */
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&sp->lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	sp->usrc.kind = VMO__SRC_UFFD;
	sp->usrc.sp = sp;
	sp->psrc.kind = VMO__SRC_PIDFD;
	sp->psrc.sp = sp;
	atomic_store(&sp->refs, 1); /* open */
	return sp;
}

/* Into the epoll set and the list.  The userfaultfd is one-shot: the worker
 * that is handed it reads what is there and re-arms it before serving, so
 * one message wakes one worker, not all of them. */
static int space_publish(struct vmo__space *sp)
{
	struct vmo__spaces *set = sp->set;
	sp->u.drain = vmo__space_drain;
	sp->u.drain_arg = sp;
	int rc = epoll_add(set, sp->u.fd, &sp->usrc, EPOLLIN | EPOLLONESHOT);
	if (!rc && sp->pidfd >= 0) {
		/* one-shot too: one worker reaps, the others are not woken */
		rc = epoll_add(set, sp->pidfd, &sp->psrc, EPOLLIN | EPOLLONESHOT);
		if (rc)
			epoll_ctl(set->epfd, EPOLL_CTL_DEL, sp->u.fd, NULL);
	}
	if (rc)
		return rc;
	pthread_mutex_lock(&set->mu);
	sp->next = set->list;
	set->list = sp;
	pthread_mutex_unlock(&set->mu);
	return 0;
}

int vmo__space_rearm(struct vmo__space *sp)
{
	if (atomic_load(&sp->dead))
		return 0; /* out of the set */
	struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT, .data.ptr = &sp->usrc };
	if (!epoll_ctl(sp->set->epfd, EPOLL_CTL_MOD, sp->u.fd, &ev))
		return 0;
	if (errno != ENOENT) /* (ENOENT: reaped meanwhile) */
		vmo__err("arming a userfaultfd again: %s", strerror(errno));
	return -errno;
}

int vmo__space_local(struct vmo__spaces *set, struct vmo__uffd *u, int pagemap_fd, struct vmo__space **out)
{
	bool sigbus = u->features & UFFD_FEATURE_SIGBUS;
	struct vmo__space *sp = space_new(set, sigbus ? &sigbus_ops : &local_ops);
	if (!sp)
		return -ENOMEM;
	sp->u = *u;
	sp->sigbus_mode = sigbus;
	sp->features = vmo__space_features(u);
	sp->local = true;
	sp->pid = getpid();
	sp->pagemap_fd = pagemap_fd;
	int rc = space_publish(sp);
	if (rc) {
		sp->u.fd = -1; /* the caller still owns it on failure */
		sp->pagemap_fd = -1;
		space_free(sp);
		return rc;
	}
	set->local = sp;
	*out = sp;
	return 0;
}

int vmo__space_adopt(struct vmo__spaces *set, int fd, uint64_t uffd_features, pid_t pid, struct vmo__space **out)
{
	if (fd < 0 || pid <= 0)
		return -EINVAL;
	/* What the local engine needs too: shmem MISSING faults, and the
	 * faulting thread's id (a SIGBUS without poison goes to it; without
	 * it a failed page would be woken into the same fault forever). */
	uint64_t need = UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_THREAD_ID;
	if ((uffd_features & need) != need) {
		vmo__set_detail("the process's userfaultfd lacks UFFD_FEATURE_MISSING_SHMEM or "
				"UFFD_FEATURE_THREAD_ID: ask for them in its UFFDIO_API");
		return -EOPNOTSUPP;
	}
	/* Async tracking needs zapping a view before eviction (async_flush),
	 * which no kernel does in another process (process_madvise takes no
	 * MADV_DONTNEED). */
	if (set->async) {
		vmo__set_detail("VMO_ENGINE_DIRTY_ASYNC engines serve only their own process");
		return -EOPNOTSUPP;
	}
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return -errno;
	struct vmo__space *sp = space_new(set, &remote_ops);
	if (!sp) {
		close(pidfd);
		return -ENOMEM;
	}
	/* The workers read without blocking. */
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int err = -errno;
		close(pidfd);
		space_free(sp);
		return err;
	}
	sp->u.fd = fd;
	sp->u.features = uffd_features;
	sp->u.ioctls = ~0ull; /* as the kernel offers; an ioctl it lacks fails */
	sp->u.user_mode_only = true; /* unknown: claim the least */
	sp->features = vmo__space_features(&sp->u);
	sp->pid = pid;
	sp->pidfd = pidfd;
	if (set->async) {
		char path[64];
		snprintf(path, sizeof path, "/proc/%d/pagemap", (int)pid);
		sp->pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	int rc = space_publish(sp);
	if (rc) {
		sp->u.fd = -1; /* the caller still owns fd on failure */
		space_free(sp);
		return rc;
	}
	vmo__debug("space: adopted the userfaultfd of process %d (features %#llx)", (int)pid,
		   (unsigned long long)uffd_features);
	*out = sp;
	return 0;
}

/* ---- views ------------------------------------------------------------------- */

/* The view of sp holding addr, or NULL; under maps_lock. */
static struct vmo_map *find_view(struct vmo__space *sp, uintptr_t addr)
{
	struct vmo__vnode *n = vmo__vtree_find_le(&sp->maps, addr);
	if (!n || addr >= n->end)
		return NULL;
	return vmo__vtree_entry(n, struct vmo_map, anode);
}

struct vmo_map *vmo__map_lookup_get(struct vmo__space *sp, uintptr_t addr)
{
	pthread_rwlock_rdlock(&sp->maps_lock);
	struct vmo_map *m = find_view(sp, addr);
	if (m)
		atomic_fetch_add_explicit(&m->refs, 1, memory_order_acquire);
	pthread_rwlock_unlock(&sp->maps_lock);
	return m;
}

void vmo__map_get(struct vmo_map *m)
{
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_acquire);
}

void vmo__map_put(struct vmo_map *m)
{
	if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
		return;
	struct vmo_object *obj = m->obj;
	struct vmo__space *sp = m->space;
	const struct vmo__view_hooks *h = sp->set->hooks;
	free(m);
	h->unref(obj);
	atomic_fetch_sub_explicit(&sp->refs, 1, memory_order_release);
}

/* Put m in the space's and the object's trees. */
static void view_link(struct vmo_map *m)
{
	struct vmo__space *sp = m->space;
	m->anode.start = m->addr;
	m->anode.end = m->addr + m->len;
	m->onode.start = m->off;
	m->onode.end = m->off + m->len;
	atomic_store(&m->refs, 1);
	pthread_rwlock_wrlock(&sp->maps_lock);
	vmo__vtree_insert(&sp->maps, &m->anode);
	pthread_rwlock_unlock(&sp->maps_lock);
	sp->set->hooks->link(m->obj, m);
}

int vmo__view_attach(struct vmo__space *sp, struct vmo_object *obj, uintptr_t addr, size_t len, uint64_t off,
		     unsigned flags, bool wp, struct vmo_map **out)
{
	struct vmo_map *m = calloc(1, sizeof *m);
	if (!m)
		return -ENOMEM;
	m->space = sp;
	m->obj = obj;
	m->addr = addr;
	m->len = len;
	m->off = off;
	m->flags = flags;
	m->wp = wp;
	m->ra_window = 1;
	uint64_t modes = UFFDIO_REGISTER_MODE_MISSING;
	if (sp->features & VMO_FEAT_MINOR)
		modes |= UFFDIO_REGISTER_MODE_MINOR;
	if (wp)
		modes |= UFFDIO_REGISTER_MODE_WP;
	/* Registered and in the tables under the space's lock: a fault at an
	 * address no view covers is poisoned under it (fault.c), never this new
	 * view. */
	pthread_rwlock_wrlock(&sp->lock);
	if (atomic_load(&sp->dead)) {
		pthread_rwlock_unlock(&sp->lock);
		free(m);
		return -ESRCH;
	}
	int rc = sp->ops->reg(sp, (void *)addr, len, modes);
	if (rc) {
		pthread_rwlock_unlock(&sp->lock);
		free(m);
		return rc;
	}
	sp->set->hooks->ref(obj);
	atomic_fetch_add(&sp->refs, 1);
	view_link(m);
	pthread_rwlock_unlock(&sp->lock);
	*out = m;
	return 0;
}

struct vmo_map *vmo__view_take(struct vmo__space *sp, struct vmo_object *obj, uintptr_t addr, size_t len)
{
	/* Under the space's lock: an event the kernel has handed over (the
	 * program's munmap has returned) is applied before we look. */
	pthread_rwlock_rdlock(&sp->lock);
	pthread_rwlock_wrlock(&sp->maps_lock);
	struct vmo_map *m = find_view(sp, addr);
	if (!m || m->addr != addr || m->len != len || m->obj != obj) {
		pthread_rwlock_unlock(&sp->maps_lock);
		pthread_rwlock_unlock(&sp->lock);
		return NULL;
	}
	/* Inaccessible first: from here a touch is SIGSEGV, never a fault at an
	 * address no view covers (which would be SIGBUS). */
	if (sp->local)
		mprotect((void *)addr, len, PROT_NONE);
	vmo__vtree_remove(&sp->maps, &m->anode);
	atomic_store(&m->dead, true);
	pthread_rwlock_unlock(&sp->maps_lock);
	pthread_rwlock_unlock(&sp->lock);
	return m;
}

void vmo__view_quiesce(struct vmo_map *m)
{
	/* No worker can find it now; wait for those that already have. */
	while (atomic_load_explicit(&m->refs, memory_order_acquire) > 1)
		sched_yield();
}

void vmo__view_detach(struct vmo_map *m)
{
	struct vmo__space *sp = m->space;
	sp->set->hooks->unlink(m->obj, m);
	/* Out of the userfaultfd: the unregister wakes whoever waits on the
	 * range; they fault again on an inaccessible range (SIGSEGV). */
	sp->ops->unreg(sp, (void *)m->addr, m->len);
	vmo__map_put(m);
}

/* ---- the program changed the address space under a view ------------------
 * A view the program unmaps (munmap, or mmap MAP_FIXED over it) or moves
 * (mremap) is reported by an UNMAP or REMAP event.  Views never change: one
 * that straddles the edge of the range is split into new views, then those
 * inside are dropped (UNMAP) or moved (REMAP).  Called with the space's lock
 * held for writing, so nothing of vmo acts on these addresses meanwhile. */

/* A new view showing [a, b) of m's range, at address a + shift. */
static struct vmo_map *view_piece(struct vmo_map *m, uintptr_t a, uintptr_t b, intptr_t shift)
{
	struct vmo_map *n = calloc(1, sizeof *n);
	if (!n)
		return NULL;
	n->space = m->space;
	n->obj = m->obj;
	n->addr = a + (uintptr_t)shift;
	n->len = b - a;
	n->off = m->off + (a - m->addr);
	n->flags = m->flags;
	n->wp = m->wp;
	atomic_store(&n->inherit, atomic_load(&m->inherit));
	n->ra_window = 1;
	m->space->set->hooks->ref(m->obj);
	atomic_fetch_add(&m->space->refs, 1);
	return n;
}

/* Views retired under the space's lock, released after it: the last
 * reference to an object may go with them, and its shutdown writes back
 * (collecting written pages takes the lock). */
struct retired {
	struct vmo_map **v;
	size_t n, cap;
};

static void retire(struct retired *r, struct vmo_map *m)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct vmo_map **v = realloc(r->v, cap * sizeof *v);
		if (!v) {
			/* Keep the view's reference rather than risk the deadlock:
			 * a leak of one struct under memory exhaustion. */
			vmo__err("no memory to release a view; it is leaked");
			return;
		}
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n++] = m;
}

static void release_retired(struct retired *r)
{
	for (size_t i = 0; i < r->n; i++)
		vmo__map_put(r->v[i]);
	free(r->v);
}

/* The program unmapped [a, b) (unmap) or moved it to a + shift (remap). */
static void space_change(struct vmo__space *sp, uintptr_t a, uintptr_t b, bool unmap, intptr_t shift,
			 struct retired *ret)
{
	enum { BATCH = 64 };
	const struct vmo__view_hooks *h = sp->set->hooks;
	for (;;) {
		struct vmo_map *hit[BATCH];
		int k = 0;
		pthread_rwlock_wrlock(&sp->maps_lock);
		struct vmo__vnode *n = vmo__vtree_find_le(&sp->maps, a);
		if (!n || n->end <= a)
			n = n ? vmo__vtree_next(n) : vmo__vtree_first(&sp->maps);
		for (; n && n->start < b && k < BATCH; n = vmo__vtree_next(n))
			hit[k++] = vmo__vtree_entry(n, struct vmo_map, anode);
		for (int i = 0; i < k; i++) {
			vmo__vtree_remove(&sp->maps, &hit[i]->anode);
			atomic_store(&hit[i]->dead, true);
		}
		pthread_rwlock_unlock(&sp->maps_lock);
		if (!k)
			return;
		for (int i = 0; i < k; i++) {
			struct vmo_map *m = hit[i];
			uintptr_t ma = m->addr, mb = m->addr + m->len;
			uintptr_t ia = ma > a ? ma : a, ib = mb < b ? mb : b; /* the part inside */
			struct vmo_map *piece[3] = {
				ma < ia ? view_piece(m, ma, ia, 0) : NULL,
				unmap ? NULL : view_piece(m, ia, ib, shift),
				ib < mb ? view_piece(m, ib, mb, 0) : NULL,
			};
			h->unlink(m->obj, m);
			if (unmap && m->wp && sp->set->async)
				h->lost_writes(m->obj, m->off + (ia - ma), ib - ia);
			for (int j = 0; j < 3; j++)
				if (piece[j])
					view_link(piece[j]);
			vmo__debug("view %#lx+%#zx: %s [%#lx, %#lx)%s", (unsigned long)ma, m->len,
				   unmap ? "unmapped by the program" : "moved by the program", (unsigned long)ia,
				   (unsigned long)ib, (!unmap && !piece[1]) ? " (no memory for the moved piece: dropped)" : "");
			retire(ret, m);
		}
	}
}

static void space_event(struct vmo__space *sp, const struct uffd_msg *msg, struct retired *ret)
{
	if (msg->event == UFFD_EVENT_UNMAP)
		space_change(sp, (uintptr_t)msg->arg.remove.start, (uintptr_t)msg->arg.remove.end, true, 0, ret);
	else if (msg->event == UFFD_EVENT_REMAP)
		space_change(sp, (uintptr_t)msg->arg.remap.from, (uintptr_t)msg->arg.remap.from + msg->arg.remap.len,
			     false, (intptr_t)(msg->arg.remap.to - msg->arg.remap.from), ret);
	else
		vmo__debug("ignoring userfaultfd event %#x", msg->event);
}

void vmo__space_reap(struct vmo__space *sp)
{
	struct retired ret = { 0 };
	pthread_rwlock_wrlock(&sp->lock);
	if (atomic_exchange(&sp->dead, true)) {
		pthread_rwlock_unlock(&sp->lock);
		return;
	}
	/* Its mm is gone: every view with it, as if unmapped by the program
	 * (what was written and not yet synced is in the object's memory). */
	space_change(sp, 0, UINTPTR_MAX, true, 0, &ret);
	epoll_ctl(sp->set->epfd, EPOLL_CTL_DEL, sp->u.fd, NULL);
	epoll_ctl(sp->set->epfd, EPOLL_CTL_DEL, sp->pidfd, NULL);
	pthread_rwlock_unlock(&sp->lock);
	release_retired(&ret);
	vmo__debug("space: process %d exited; its views are gone", (int)sp->pid);
}

/* Read up to n messages under the space's lock and apply the events among
 * them in order; the faults are compacted to the front and counted. */
static int space_read(struct vmo__space *sp, struct uffd_msg *msgs, int n, bool wait, bool rearm)
{
	struct retired ret = { 0 };
	if (!wait) {
		if (pthread_rwlock_trywrlock(&sp->lock))
			return -EBUSY;
	} else {
		pthread_rwlock_wrlock(&sp->lock);
	}
	if (atomic_load(&sp->dead)) {
		pthread_rwlock_unlock(&sp->lock);
		return 0;
	}
	int r = vmo__uffd_read(&sp->u, msgs, n), k = 0;
	for (int i = 0; i < r; i++) {
		if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
			msgs[k++] = msgs[i];
		else
			space_event(sp, &msgs[i], &ret);
	}
	pthread_rwlock_unlock(&sp->lock);
	if (rearm)
		vmo__space_rearm(sp);
	release_retired(&ret);
	return r < 0 ? r : k;
}

int vmo__space_read(struct vmo__space *sp, struct uffd_msg *msgs, int n)
{
	return space_read(sp, msgs, n, true, true);
}

/* Keep fault messages read while draining, for the workers. */
static void stash(struct vmo__space *sp, const struct uffd_msg *msgs, int r)
{
	struct vmo__spaces *set = sp->set;
	pthread_mutex_lock(&set->mu);
	if (set->nstash + (size_t)r > set->stash_cap) {
		size_t cap = set->stash_cap ? set->stash_cap * 2 : 64;
		while (cap < set->nstash + (size_t)r)
			cap *= 2;
		struct vmo__stashed *ns = realloc(set->stash, cap * sizeof *ns);
		if (ns) {
			set->stash = ns;
			set->stash_cap = cap;
		}
	}
	if (set->nstash + (size_t)r <= set->stash_cap) {
		for (int i = 0; i < r; i++)
			set->stash[set->nstash + (size_t)i] = (struct vmo__stashed){ .sp = sp, .msg = msgs[i] };
		set->nstash += (size_t)r;
		atomic_store(&set->stashed, set->nstash);
		uint64_t one = 1;
		if (write(set->stash_efd, &one, sizeof one) < 0) /* wake a worker */
			vmo__debug("stash eventfd: %s", strerror(errno));
	} else {
		/* No memory to keep them: wake the threads, they fault again. */
		for (int i = 0; i < r; i++)
			sp->ops->wake(sp, (void *)(uintptr_t)(msgs[i].arg.pagefault.address & ~(uint64_t)(VMO_PAGE - 1)),
				      VMO_PAGE);
	}
	pthread_mutex_unlock(&set->mu);
}

int vmo__space_take_stash(struct vmo__spaces *set, struct vmo__stashed *out, int max)
{
	if (!atomic_load_explicit(&set->stashed, memory_order_relaxed))
		return 0;
	pthread_mutex_lock(&set->mu);
	int n = set->nstash < (size_t)max ? (int)set->nstash : max;
	memcpy(out, set->stash + set->nstash - (size_t)n, (size_t)n * sizeof *out);
	set->nstash -= (size_t)n;
	atomic_store(&set->stashed, set->nstash);
	pthread_mutex_unlock(&set->mu);
	return n;
}

/* ---- closing a space for good ------------------------------------------------ */

void vmo__space_close(struct vmo__space *sp)
{
	struct vmo__spaces *set = sp->set;
	vmo__space_reap(sp); /* views retired, out of the epoll set */
	pthread_mutex_lock(&set->mu);
	struct vmo__space **pp = &set->list;
	while (*pp && *pp != sp)
		pp = &(*pp)->next;
	if (!*pp) { /* closed already */
		pthread_mutex_unlock(&set->mu);
		return;
	}
	*pp = sp->next;
	if (set->npasses) {
		sp->snap = malloc(set->npasses * sizeof *sp->snap);
		for (unsigned i = 0; sp->snap && i < set->npasses; i++)
			sp->snap[i] = atomic_load(&set->passes[i]);
	}
	sp->next = set->grave;
	set->grave = sp;
	atomic_fetch_add(&set->ngrave, 1);
	atomic_fetch_sub(&sp->refs, 1); /* the open reference */
	pthread_mutex_unlock(&set->mu);
}

/* Can closed sp be freed: no view left, no stashed message or late wake
 * naming it, every worker past the top of its loop since it was closed.
 * Under set->mu. */
static bool unreachable(struct vmo__spaces *set, struct vmo__space *sp)
{
	if (atomic_load_explicit(&sp->refs, memory_order_acquire) > 0)
		return false;
	for (size_t i = 0; i < set->nstash; i++)
		if (set->stash[i].sp == sp)
			return false;
	for (size_t i = 0; i < set->nlate; i++)
		if (set->late[i].sp == sp)
			return false;
	if (set->npasses && !sp->snap)
		return false; /* (no memory for the snapshot: kept until the engine goes) */
	for (unsigned i = 0; i < set->npasses; i++)
		if (atomic_load(&set->passes[i]) == sp->snap[i])
			return false;
	return true;
}

static void bury(struct vmo__spaces *set)
{
	struct vmo__space *dead = NULL;
	pthread_mutex_lock(&set->mu);
	for (struct vmo__space **pp = &set->grave; *pp;) {
		struct vmo__space *sp = *pp;
		if (!unreachable(set, sp)) {
			pp = &sp->next;
			continue;
		}
		*pp = sp->next;
		sp->next = dead;
		dead = sp;
		atomic_fetch_sub(&set->ngrave, 1);
	}
	pthread_mutex_unlock(&set->mu);
	while (dead) {
		struct vmo__space *next = dead->next;
		vmo__debug("space: process %d's space freed", (int)dead->pid);
		free(dead->snap);
		space_free(dead);
		dead = next;
	}
}

int vmo__spaces_workers(struct vmo__spaces *set, unsigned n)
{
	_Atomic uint64_t *p = NULL;
	if (n && !(p = calloc(n, sizeof *p)))
		return -ENOMEM;
	pthread_mutex_lock(&set->mu);
	free(set->passes);
	set->passes = p;
	set->npasses = n;
	/* Snapshots of the old workers mean nothing to the new ones, and none
	 * of the old holds a space now: what waited only for them may go. */
	for (struct vmo__space *sp = set->grave; sp; sp = sp->next) {
		free(sp->snap);
		sp->snap = n ? calloc(n, sizeof *sp->snap) : NULL;
		for (unsigned i = 0; sp->snap && i < n; i++)
			sp->snap[i] = UINT64_MAX; /* any pass differs */
	}
	pthread_mutex_unlock(&set->mu);
	if (atomic_load(&set->ngrave))
		bury(set);
	return 0;
}

void vmo__spaces_pass(struct vmo__spaces *set, unsigned i)
{
	if (i < set->npasses)
		atomic_fetch_add_explicit(&set->passes[i], 1, memory_order_release);
	if (atomic_load_explicit(&set->ngrave, memory_order_relaxed))
		bury(set);
}

/* A worker asleep in epoll_wait holds no space, but it cannot say so
 * without a race (it may be returning with an event for one), so a closed
 * space waits for every worker to pass the top of its loop: none sleeps
 * longer than this (an idle engine's workers wake twice a second). */
#define PASS_MS 500

int vmo__spaces_timeout(struct vmo__spaces *set, int t)
{
	(void)set;
	return t < 0 || t > PASS_MS ? PASS_MS : t;
}

#define LATE_NS 50000000ull

/* Is SIGBUS still pending for thread tid of pid (its SigPnd in /proc)?  A
 * thread gone, or a status that cannot be read: no. */
static bool sigbus_pending(pid_t pid, pid_t tid)
{
	char path[64], buf[2048];
	snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)pid, (int)tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	const char *p = strstr(buf, "\nSigPnd:");
	if (!p)
		return true; /* cannot tell: wake */
	unsigned long long mask = strtoull(p + 8, NULL, 16);
	return mask >> (SIGBUS - 1) & 1;
}

void vmo__space_wake_later(struct vmo__space *sp, uintptr_t addr, size_t len, pid_t tid)
{
	struct vmo__spaces *set = sp->set;
	pthread_mutex_lock(&set->mu);
	if (set->nlate == set->late_cap) {
		size_t cap = set->late_cap ? set->late_cap * 2 : 16;
		struct vmo__late *v = realloc(set->late, cap * sizeof *v);
		if (v) {
			set->late = v;
			set->late_cap = cap;
		}
	}
	if (set->nlate < set->late_cap) {
		set->late[set->nlate++] = (struct vmo__late){ sp, addr, len, vmo__now_ns() + LATE_NS, tid };
		atomic_store(&set->nlate_any, set->nlate);
		pthread_mutex_unlock(&set->mu);
		uint64_t one = 1; /* a worker in epoll_wait takes the new timeout */
		if (write(set->stash_efd, &one, sizeof one) < 0)
			vmo__debug("stash eventfd: %s", strerror(errno));
		return;
	}
	pthread_mutex_unlock(&set->mu);
	sp->ops->wake(sp, (void *)addr, len); /* no memory: at once */
}

int vmo__spaces_run_late(struct vmo__spaces *set)
{
	if (!atomic_load_explicit(&set->nlate_any, memory_order_relaxed))
		return -1;
	uint64_t now = vmo__now_ns(), next = UINT64_MAX;
	struct vmo__late due[16];
	size_t nd = 0;
	pthread_mutex_lock(&set->mu);
	for (size_t i = 0; i < set->nlate;) {
		if (set->late[i].due <= now && nd < VMO_ARRAY_SIZE(due)) {
			due[nd++] = set->late[i];
			set->late[i] = set->late[--set->nlate];
			continue;
		}
		if (set->late[i].due < next)
			next = set->late[i].due;
		i++;
	}
	atomic_store(&set->nlate_any, set->nlate);
	pthread_mutex_unlock(&set->mu);
	for (size_t i = 0; i < nd; i++)
		if (!due[i].tid || sigbus_pending(due[i].sp->pid, due[i].tid))
			due[i].sp->ops->wake(due[i].sp, (void *)due[i].addr, due[i].len);
	if (nd == VMO_ARRAY_SIZE(due))
		return 0;
	if (next == UINT64_MAX)
		return -1;
	return (int)((next - now) / 1000000 + 1);
}

void vmo__space_sigbus(struct vmo__space *sp, pid_t tid, uintptr_t addr, size_t len)
{
	int rc = sp->ops->sigbus(sp, tid, addr);
	if (sp->sigbus_mode)
		return; /* (nobody waits in the kernel: no wake, now or later) */
	if (rc && rc != -ESRCH)
		vmo__warn("SIGBUS to thread %d at %#lx: %s", (int)tid, (unsigned long)addr, strerror(-rc));
	/* The signal ends the thread's wait (an interruptible one: every
	 * user-mode fault); its handler runs, and if it returns the access
	 * faults again.  A wait the signal cannot end is woken later (space.h);
	 * so is one whose signal could not be sent. */
	if (rc)
		sp->ops->wake(sp, (void *)addr, len);
	else
		vmo__space_wake_later(sp, addr, len, tid);
}

void vmo__spaces_barrier(struct vmo__spaces *set)
{
	pthread_mutex_lock(&set->mu);
	for (struct vmo__space *sp = set->list; sp; sp = sp->next) {
		pthread_rwlock_rdlock(&sp->lock);
		pthread_rwlock_unlock(&sp->lock);
	}
	pthread_mutex_unlock(&set->mu);
}

/* What this thread holds a space's lock for reading for: a view, or an
 * address no view covers (tl_in without tl_view). */
static VMO__TLS struct vmo__space *tl_in;
static VMO__TLS struct vmo_map *tl_view;

bool vmo__space_enter(struct vmo__space *sp, struct vmo_map *m)
{
	pthread_rwlock_rdlock(&sp->lock);
	if ((m && atomic_load(&m->dead)) || atomic_load(&sp->dead)) {
		pthread_rwlock_unlock(&sp->lock);
		return false;
	}
	tl_in = sp;
	tl_view = m;
	return true;
}

void vmo__space_exit(struct vmo__space *sp)
{
	tl_in = NULL;
	tl_view = NULL;
	pthread_rwlock_unlock(&sp->lock);
}

bool vmo__space_drain(void *arg)
{
	struct vmo__space *sp = arg;
	struct uffd_msg msgs[16];
	bool in = tl_in == sp;
	struct vmo_map *v = tl_view;
	/* Any thread may read and apply events here, whatever locks it holds
	 * (applying takes only maps_lock and the object's lock, which no ioctl
	 * caller holds): it may be the one the workers wait for.  The fault
	 * messages it reads go to the workers (stash).  A caller acting on a
	 * view holds the lock for reading: let go of it, so that the event can
	 * be applied (by us or another thread), then take it again and see
	 * whether the view survived; one acting on an address no view covered
	 * gives up (its look is stale).  Without it, if the lock is taken,
	 * whoever holds it is reading already or will let a reader in next:
	 * give it the CPU. */
	if (in)
		pthread_rwlock_unlock(&sp->lock);
	if (vmo__ss_cur && sp->sigbus_mode) {
		/* A self-service fault in a signal handler: it reads nothing
		 * (applying events frees views; the workers, woken by the
		 * event, apply it) and lets the workers have the lock. */
		sched_yield();
		if (!in)
			return false;
		pthread_rwlock_rdlock(&sp->lock);
		return !v || atomic_load(&v->dead) || atomic_load(&sp->dead);
	}
	int r = space_read(sp, msgs, 16, in, false);
	if (r > 0)
		stash(sp, msgs, r);
	else
		sched_yield();
	if (!in)
		return false;
	pthread_rwlock_rdlock(&sp->lock);
	return !v || atomic_load(&v->dead) || atomic_load(&sp->dead);
}
