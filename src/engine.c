/* SPDX-License-Identifier: MIT */
/* engine.c - engines: the userfaultfd, the worker pool (start, inhibit,
 * resume, as libpager's workers), engine-wide statistics. */
#include "core.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_WORKERS 256
#define DEFAULT_WORKERS 2
#define MSGS_PER_READ 16

static void worker_cleanup(void *arg)
{
	(void)arg;
	vmo__worker_buf_free();
}

/* Fault messages another thread read while draining events. */
static bool serve_stash(struct vmo_engine *eng)
{
	struct vmo__stashed st[MSGS_PER_READ];
	int n = vmo__space_take_stash(&eng->spaces, st, MSGS_PER_READ);
	for (int i = 0; i < n;) {
		struct uffd_msg msgs[MSGS_PER_READ];
		struct vmo__space *sp = st[i].sp;
		int k = 0;
		for (; i < n && st[i].sp == sp; i++)
			msgs[k++] = st[i].msg;
		vmo__serve_batch(eng, sp, msgs, k);
	}
	return n > 0;
}

/* A worker waits in epoll_wait on every space's userfaultfd (one-shot: the
 * one handed a descriptor reads what is there, arms it again for the next
 * worker, then serves what it read), every adopted process's pidfd (its
 * exit), and the stash eventfd.  Reading happens under the space's lock
 * (space.h: an event counts as handled once read, so it is applied before
 * anyone acts on view addresses again).  Worker count does not grow with
 * the number of spaces. */
static uint64_t env_spin_ns(void)
{
	const char *e = getenv("VMO_SPIN_US");
	if (!e || !*e)
		return 0;
	char *end;
	unsigned long v = strtoul(e, &end, 10);
	if (*end || v > 100000) {
		vmo__warn("VMO_SPIN_US=%s: not a number of microseconds up to 100000; ignored", e);
		return 0;
	}
	return (uint64_t)v * 1000;
}

static void *worker_main(void *arg)
{
	struct vmo_engine *eng = arg;
	struct uffd_msg msgs[MSGS_PER_READ];
	int old;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	pthread_cleanup_push(worker_cleanup, NULL);
	vmo__on_vmo_thread = true;
	vmo__worker_buf_init();
	unsigned self = atomic_fetch_add(&eng->ready, 1);
	for (;;) {
		/* Holding no space here: closed ones may be freed (space.h). */
		vmo__spaces_pass(&eng->spaces, self);
		if (serve_stash(eng))
			continue;
		/* Cancellation (engine stop) is allowed only while blocked here. */
		int timeout = vmo__spaces_timeout(&eng->spaces, vmo__spaces_run_late(&eng->spaces));
		struct epoll_event ev;
		/* Spin before blocking (VMO_SPIN_US, default 0: measured in
		 * docs/performance.md, it did not pay here): poll the set
		 * without sleeping for up to that long after the last work. */
		int pr = 0;
		if (eng->spin_ns) {
			uint64_t until = vmo__now_ns() + eng->spin_ns;
			while ((pr = epoll_wait(eng->spaces.epfd, &ev, 1, 0)) == 0 && vmo__now_ns() < until)
				;
		}
		if (pr <= 0) {
			pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
			pr = epoll_wait(eng->spaces.epfd, &ev, 1, timeout);
			pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
		}
		if (pr <= 0)
			continue;
		struct vmo__source *src = ev.data.ptr;
		if (src->kind == VMO__SRC_STASH) {
			uint64_t v;
			if (read(eng->spaces.stash_efd, &v, sizeof v) < 0 && errno != EAGAIN)
				vmo__debug("stash eventfd: %s", strerror(errno));
			continue; /* the stash, at the top */
		}
		struct vmo__space *sp = src->sp;
		if (src->kind == VMO__SRC_PIDFD) {
			vmo__space_reap(sp);
			continue;
		}
		/* (re-armed inside, before views it retired are released: their
		 * object's writeback must not hold up the space's faults) */
		int n = vmo__space_read(sp, msgs, MSGS_PER_READ);
		if (n < 0 && n != -EINTR) {
			vmo__err("worker: reading userfaultfd: %s", strerror(-n));
			usleep(1000);
		}
		if (n > 0)
			vmo__serve_batch(eng, sp, msgs, n);
		if (atomic_load(&sp->doomed))
			vmo__space_reap(sp); /* its mm went without its pidfd saying so (exec) */
	}
	pthread_cleanup_pop(1);
	return NULL;
}

static void stop_workers(struct vmo_engine *eng)
{
	for (unsigned i = 0; i < eng->nworkers; i++)
		pthread_cancel(eng->threads[i]);
	for (unsigned i = 0; i < eng->nworkers; i++)
		pthread_join(eng->threads[i], NULL);
	vmo__spaces_workers(&eng->spaces, 0);
	atomic_store(&eng->ready, 0);
	eng->running = false;
}

static int start_workers(struct vmo_engine *eng)
{
	int wrc = vmo__spaces_workers(&eng->spaces, eng->nworkers);
	if (wrc)
		return wrc;
	sigset_t all, old;
	sigfillset(&all);
	/* Workers block every signal: they belong to the library. */
	pthread_sigmask(SIG_SETMASK, &all, &old);
	unsigned i;
	int rc = 0;
	for (i = 0; i < eng->nworkers; i++) {
		rc = -pthread_create(&eng->threads[i], NULL, worker_main, eng);
		if (rc)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	/* Return with the workers set up (their supply buffers mapped): the
	 * program's address space does not change behind it afterwards (a
	 * worker scheduled late mapped its buffer while the program counted its
	 * mappings, under load). */
	while (atomic_load(&eng->ready) < i)
		sched_yield();
	if (rc) {
		unsigned want = eng->nworkers;
		eng->nworkers = i; /* stop the ones started, keep the count asked */
		stop_workers(eng);
		eng->nworkers = want;
		return rc;
	}
	eng->running = true;
	return 0;
}

/* What the spaces do when a view comes or goes (space.h): the object's side,
 * wired here, above both. */
static const struct vmo__view_hooks view_hooks = {
	.link = vmo__views_link,
	.unlink = vmo__views_unlink,
	.ref = vmo__object_get,
	.unref = vmo__object_put,
	.lost_writes = vmo__views_lost_writes,
};

VMO_API int vmo_engine_create(const struct vmo_engine_opts *opts, struct vmo_engine **out)
{
	static const struct vmo_engine_opts defaults;
	if (!out)
		return -EINVAL;
	if (!opts)
		opts = &defaults;
	if (opts->flags & ~(VMO_ENGINE_NO_WORKERS | VMO_ENGINE_NO_PRESSURE | VMO_ENGINE_USER_MODE_ONLY |
			    VMO_ENGINE_DIRTY_ASYNC | VMO_ENGINE_SELF_SERVICE))
		return -EINVAL;
	uint32_t flags = opts->flags;
	uint64_t spin_ns = env_spin_ns();
	/* VMO_SELF_SERVICE=1 (or =all, which also serves every object in the
	 * handler as if VMO_OBJ_SIGNAL_SAFE): every engine self-service, to run
	 * a program or the test suite that way. */
	if (vmo__selfserve_wanted())
		flags |= VMO_ENGINE_SELF_SERVICE;
	if (opts->budget_low > opts->budget)
		return -EINVAL;
	if (opts->workers > MAX_WORKERS)
		return -EINVAL;
	for (size_t i = 0; i < VMO_ARRAY_SIZE(opts->reserved); i++)
		if (opts->reserved[i])
			return -EINVAL;

	struct vmo_engine *eng = calloc(1, sizeof *eng);
	if (!eng)
		return -ENOMEM;
	uint64_t want = UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_PAGEFAULT_FLAG_WP |
			UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_POISON |
			UFFD_FEATURE_MOVE | UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP;
	/* THREAD_ID: a refused first write (and, without POISON, a failed read)
	 * is a SIGBUS sent to the faulting thread. */
	uint64_t need = UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_THREAD_ID;
	int pagemap_fd = -1;
	struct vmo__uffd u;
	if (flags & VMO_ENGINE_SELF_SERVICE) {
		want |= UFFD_FEATURE_SIGBUS;
		need |= UFFD_FEATURE_SIGBUS;
	}
	if (opts->flags & VMO_ENGINE_DIRTY_ASYNC) {
		need |= UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_PAGEFAULT_FLAG_WP |
			UFFD_FEATURE_MINOR_SHMEM;
		want |= UFFD_FEATURE_WP_ASYNC;
		if (!vmo__pagemap_scan_supported()) {
			vmo__set_detail("VMO_ENGINE_DIRTY_ASYNC needs PAGEMAP_SCAN (Linux 6.7)");
			free(eng);
			return -EOPNOTSUPP;
		}
		pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		if (pagemap_fd < 0) {
			int err = -errno;
			free(eng);
			return err;
		}
		eng->async = true;
	}
	int rc = vmo__uffd_open(&u, want, need,
				VMO__UFFD_NONBLOCK | ((opts->flags & VMO_ENGINE_USER_MODE_ONLY) ? VMO__UFFD_USER_ONLY : 0));
	if (rc) {
		if (pagemap_fd >= 0)
			close(pagemap_fd);
		free(eng);
		return rc;
	}
	rc = vmo__spaces_init(&eng->spaces, &view_hooks, eng->async);
	if (rc) {
		vmo__uffd_close(&u);
		if (pagemap_fd >= 0)
			close(pagemap_fd);
		free(eng);
		return rc;
	}
	rc = vmo__space_local(&eng->spaces, &u, pagemap_fd, &eng->local);
	if (rc) {
		vmo__spaces_fini(&eng->spaces);
		vmo__uffd_close(&u);
		if (pagemap_fd >= 0)
			close(pagemap_fd);
		free(eng);
		return rc;
	}
	eng->features = eng->local->features;
	eng->flags = flags;
	eng->spin_ns = spin_ns;
	eng->budget_hi = opts->budget;
	eng->budget_lo = opts->budget_low ? opts->budget_low : opts->budget - opts->budget / 8;
	eng->nworkers = opts->workers ? opts->workers : DEFAULT_WORKERS;
	pthread_mutex_init(&eng->wmu, NULL);
	pthread_cond_init(&eng->wcv, NULL);
	pthread_mutex_init(&eng->objs_mu, NULL);
	eng->threads = calloc(eng->nworkers, sizeof *eng->threads);
	if (!eng->threads) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = vmo__evictor_start(eng);
	if (rc)
		goto fail;
	if (!(opts->flags & VMO_ENGINE_NO_WORKERS)) {
		rc = start_workers(eng);
		if (rc) {
			vmo__evictor_stop(eng);
			goto fail;
		}
	}
	if (flags & VMO_ENGINE_SELF_SERVICE) {
		rc = vmo__selfserve_start(eng);
		if (rc) {
			if (eng->running)
				stop_workers(eng);
			vmo__evictor_stop(eng);
			goto fail;
		}
	}
	vmo__debug("engine: uffd fd %d%s, features %#llx, %u workers", eng->local->u.fd,
		   eng->local->u.dev ? " (/dev/userfaultfd)" : "", (unsigned long long)eng->local->u.features,
		   eng->nworkers);
	*out = eng;
	return 0;
fail:
	vmo__spaces_fini(&eng->spaces); /* and the local space's descriptors */
	free(eng->threads);
	free(eng);
	return rc;
}

VMO_API int vmo_engine_destroy(struct vmo_engine *eng)
{
	if (!eng)
		return -EINVAL;
	/* Objects kept by may_cache go now (written back, released). */
	for (;;) {
		struct vmo_object *c = NULL;
		pthread_mutex_lock(&eng->objs_mu);
		for (struct vmo_object *o = eng->objs; o && !c; o = o->next)
			if (o->cached)
				c = o;
		if (c)
			c->cached = false;
		pthread_mutex_unlock(&eng->objs_mu);
		if (!c)
			break;
		atomic_store(&c->may_cache, false);
		vmo__object_put(c);
	}
	/* Objects only fork()ed children keep (fork.c) do not make it busy:
	 * the children are cut off (their own watchers serve what they have)
	 * once nothing else does.  Counted first: the count waits out the
	 * children's teardowns in flight, so that the engine's count below
	 * includes only what is still there. */
	long held = eng->fork_objects ? eng->fork_objects(eng, false) : 0;
	/* The evictor holds references on objects only under evict_mu: once we
	 * have it, the count is the user's. */
	pthread_mutex_lock(&eng->evict_mu);
	pthread_mutex_lock(&eng->objs_mu);
	long n = eng->nobjs;
	pthread_mutex_unlock(&eng->objs_mu);
	pthread_mutex_unlock(&eng->evict_mu);
	if (eng->fork_objects) {
		if (n > held)
			return -EBUSY;
		eng->fork_objects(eng, true);
		pthread_mutex_lock(&eng->evict_mu);
		pthread_mutex_lock(&eng->objs_mu);
		n = eng->nobjs;
		pthread_mutex_unlock(&eng->objs_mu);
		pthread_mutex_unlock(&eng->evict_mu);
	}
	if (n)
		return -EBUSY;
	/* VMO_SHOW_STATS=1: the engine's counters on standard error (as
	 * mimalloc's MIMALLOC_SHOW_STATS at exit) */
	const char *show = getenv("VMO_SHOW_STATS");
	if (show && *show && strcmp(show, "0")) {
		struct vmo_stats st;
		if (vmo_engine_stats(eng, &st) == 0) {
			dprintf(2, "vmo: engine statistics (libvmo %s)\n", vmo_version());
			vmo_stats_print(&st, 2, "  ");
		}
	}
	vmo__selfserve_stop(eng);
	if (eng->running)
		stop_workers(eng);
	vmo__evictor_stop(eng);
	vmo__spaces_fini(&eng->spaces);
	pthread_mutex_destroy(&eng->wmu);
	pthread_cond_destroy(&eng->wcv);
	pthread_mutex_destroy(&eng->objs_mu);
	free(eng->threads);
	free(eng);
	return 0;
}

VMO_API int vmo_engine_start(struct vmo_engine *eng)
{
	if (!eng)
		return -EINVAL;
	pthread_mutex_lock(&eng->wmu);
	int rc = eng->running ? -EALREADY : start_workers(eng);
	pthread_mutex_unlock(&eng->wmu);
	return rc;
}

VMO_API int vmo_engine_inhibit(struct vmo_engine *eng)
{
	if (!eng)
		return -EINVAL;
	pthread_mutex_lock(&eng->wmu);
	eng->inhibit++;
	atomic_store(&eng->ss_inhibited, true);
	while (eng->active)
		pthread_cond_wait(&eng->wcv, &eng->wmu);
	pthread_mutex_unlock(&eng->wmu);
	/* Self-service faults being served in a handler (selfserve.c): those
	 * that begin from now on are handed to the workers, who wait. */
	while (atomic_load(&eng->ss_active))
		sched_yield();
	return 0;
}

VMO_API int vmo_engine_resume(struct vmo_engine *eng)
{
	if (!eng)
		return -EINVAL;
	pthread_mutex_lock(&eng->wmu);
	int rc = 0;
	if (eng->inhibit == 0)
		rc = -EINVAL;
	else if (--eng->inhibit == 0) {
		atomic_store(&eng->ss_inhibited, false);
		pthread_cond_broadcast(&eng->wcv);
	}
	pthread_mutex_unlock(&eng->wmu);
	return rc;
}

VMO_API unsigned vmo_engine_features(const struct vmo_engine *eng)
{
	return eng ? eng->features : 0;
}

VMO_API int vmo_engine_stats_sized(struct vmo_engine *eng, struct vmo_stats *out, size_t size)
{
	struct vmo_stats s, *st = &s;
	if (!eng || !out || size < offsetof(struct vmo_stats, resident))
		return -EINVAL;
	pthread_mutex_lock(&eng->objs_mu);
	*st = eng->gone;
	st->resident = st->dirty = st->mappings = 0;
	st->budget = vmo__engine_cap(eng); /* the budget, or the pressure cap below it */
	for (struct vmo_object *o = eng->objs; o; o = o->next) {
		struct vmo_stats os;
		vmo_object_stats(o, &os);
		vmo__stats_add(st, &os);
		st->resident += os.resident;
		st->dirty += os.dirty;
		st->mappings += os.mappings;
	}
	pthread_mutex_unlock(&eng->objs_mu);
	vmo__sized_out(out, size, &s, sizeof s, VMO_STATS_VERSION);
	return 0;
}
