/* engine.c - engines: the userfaultfd, the worker pool (start, inhibit,
 * resume, as libpager's workers), engine-wide statistics. */
#include "core.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <signal.h>
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

/* Serve fault messages: with the inhibit count respected, as libpager's
 * workers. */
static void serve_batch(struct vmo_engine *eng, struct uffd_msg *msgs, int n)
{
	pthread_mutex_lock(&eng->wmu);
	while (eng->inhibit)
		pthread_cond_wait(&eng->wcv, &eng->wmu);
	eng->active++;
	pthread_mutex_unlock(&eng->wmu);

	for (int i = 0; i < n; i++)
		vmo__handle_fault(eng, &msgs[i]);

	pthread_mutex_lock(&eng->wmu);
	if (--eng->active == 0)
		pthread_cond_broadcast(&eng->wcv);
	pthread_mutex_unlock(&eng->wmu);
}

/* Fault messages another worker read while draining events. */
static int take_stash(struct vmo_engine *eng, struct uffd_msg *msgs, int max)
{
	if (!atomic_load_explicit(&eng->stashed, memory_order_relaxed))
		return 0;
	pthread_mutex_lock(&eng->stash_mu);
	int n = eng->nstash < (size_t)max ? (int)eng->nstash : max;
	memcpy(msgs, eng->stash + eng->nstash - (size_t)n, (size_t)n * sizeof *msgs);
	eng->nstash -= (size_t)n;
	atomic_store(&eng->stashed, eng->nstash);
	pthread_mutex_unlock(&eng->stash_mu);
	return n;
}

/* A worker waits in poll(2), then reads without blocking under space_lock
 * (see core.h: an event counts as handled once read, so it is applied
 * before anyone acts on view addresses again). */
static void *worker_main(void *arg)
{
	struct vmo_engine *eng = arg;
	struct uffd_msg msgs[MSGS_PER_READ];
	int old;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	pthread_cleanup_push(worker_cleanup, NULL);
	vmo__worker_buf_init();
	int busy = 0;
	for (;;) {
		int n = take_stash(eng, msgs, MSGS_PER_READ);
		if (n) {
			serve_batch(eng, msgs, n);
			continue;
		}
		/* Cancellation (engine stop) is allowed only while blocked in poll. */
		struct pollfd pfd[2] = { { .fd = eng->u.fd, .events = POLLIN }, { .fd = eng->stash_efd, .events = POLLIN } };
		pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
		int pr = poll(pfd, 2, -1);
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
		if (pr <= 0)
			continue;
		if (pfd[1].revents & POLLIN) {
			uint64_t v;
			if (read(eng->stash_efd, &v, sizeof v) < 0 && errno != EAGAIN)
				vmo__debug("stash eventfd: %s", strerror(errno));
			continue; /* the stash, at the top */
		}
		/* poll wakes every worker for one message: the ones that find
		 * the lock taken (another is reading) go back to wait rather than
		 * queue behind it (measured: that queue cost random first touches
		 * a few percent); a few times in a row, and they wait for it (the
		 * holder may be a long view walk). */
		n = vmo__space_read(eng, msgs, MSGS_PER_READ, busy >= 4);
		if (n == -EBUSY) {
			busy++;
			sched_yield();
			continue;
		}
		busy = 0;
		if (n < 0 && n != -EINTR) {
			vmo__err("worker: reading userfaultfd: %s", strerror(-n));
			usleep(1000);
		}
		if (n > 0)
			serve_batch(eng, msgs, n);
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
	eng->running = false;
}

static int start_workers(struct vmo_engine *eng)
{
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

static unsigned features_of(const struct vmo__uffd *u)
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
	if (!u->user_mode_only)
		f |= VMO_FEAT_KERNEL_FAULTS;
	if ((f & VMO_FEAT_MINOR) && (f & VMO_FEAT_WP) && vmo__uffd_continue_wp_supported())
		f |= VMO_FEAT_CONTINUE_WP;
	if ((u->features & UFFD_FEATURE_EVENT_UNMAP) && (u->features & UFFD_FEATURE_EVENT_REMAP))
		f |= VMO_FEAT_EVENTS;
	return f;
}

VMO_API int vmo_engine_create(const struct vmo_engine_opts *opts, struct vmo_engine **out)
{
	static const struct vmo_engine_opts defaults;
	if (!out)
		return -EINVAL;
	if (!opts)
		opts = &defaults;
	if (opts->flags & ~(VMO_ENGINE_NO_WORKERS | VMO_ENGINE_NO_PRESSURE | VMO_ENGINE_USER_MODE_ONLY |
			    VMO_ENGINE_DIRTY_ASYNC))
		return -EINVAL;
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
	eng->pagemap_fd = -1;
	eng->stash_efd = -1;
	if (opts->flags & VMO_ENGINE_DIRTY_ASYNC) {
		need |= UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_PAGEFAULT_FLAG_WP |
			UFFD_FEATURE_MINOR_SHMEM;
		want |= UFFD_FEATURE_WP_ASYNC;
		if (!vmo__pagemap_scan_supported()) {
			vmo__set_detail("VMO_ENGINE_DIRTY_ASYNC needs PAGEMAP_SCAN (Linux 6.7)");
			free(eng);
			return -EOPNOTSUPP;
		}
		eng->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		if (eng->pagemap_fd < 0) {
			int err = -errno;
			free(eng);
			return err;
		}
		eng->async = true;
	}
	int rc = vmo__uffd_open(&eng->u, want, need,
				VMO__UFFD_NONBLOCK | ((opts->flags & VMO_ENGINE_USER_MODE_ONLY) ? VMO__UFFD_USER_ONLY : 0));
	if (rc) {
		if (eng->pagemap_fd >= 0)
			close(eng->pagemap_fd);
		free(eng);
		return rc;
	}
	eng->features = features_of(&eng->u);
	eng->flags = opts->flags;
	eng->budget_hi = opts->budget;
	eng->budget_lo = opts->budget_low ? opts->budget_low : opts->budget - opts->budget / 8;
	eng->nworkers = opts->workers ? opts->workers : DEFAULT_WORKERS;
	pthread_rwlock_init(&eng->maps_lock, NULL);
	/* Writer-preferring: readers of the userfaultfd (writers here) must not
	 * wait behind a stream of view walks. */
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&eng->space_lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&eng->stash_mu, NULL);
	eng->stash_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (eng->stash_efd < 0) {
		rc = -errno;
		goto fail;
	}
	eng->u.drain = vmo__space_drain;
	eng->u.drain_arg = eng;
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
	vmo__debug("engine: uffd fd %d%s, features %#llx, %u workers", eng->u.fd,
		   eng->u.dev ? " (/dev/userfaultfd)" : "", (unsigned long long)eng->u.features, eng->nworkers);
	*out = eng;
	return 0;
fail:
	if (eng->pagemap_fd >= 0)
		close(eng->pagemap_fd);
	if (eng->stash_efd >= 0)
		close(eng->stash_efd);
	vmo__uffd_close(&eng->u);
	free(eng->threads);
	free(eng);
	return rc;
}

VMO_API int vmo_engine_destroy(struct vmo_engine *eng)
{
	if (!eng)
		return -EINVAL;
	/* The evictor holds references on objects only under evict_mu: once we
	 * have it, the count is the user's. */
	pthread_mutex_lock(&eng->evict_mu);
	pthread_mutex_lock(&eng->objs_mu);
	long n = eng->nobjs;
	pthread_mutex_unlock(&eng->objs_mu);
	pthread_mutex_unlock(&eng->evict_mu);
	if (n)
		return -EBUSY;
	if (eng->running)
		stop_workers(eng);
	vmo__evictor_stop(eng);
	if (eng->pagemap_fd >= 0)
		close(eng->pagemap_fd);
	vmo__uffd_close(&eng->u);
	pthread_rwlock_destroy(&eng->maps_lock);
	pthread_rwlock_destroy(&eng->space_lock);
	pthread_mutex_destroy(&eng->stash_mu);
	pthread_mutex_destroy(&eng->wmu);
	pthread_cond_destroy(&eng->wcv);
	pthread_mutex_destroy(&eng->objs_mu);
	free(eng->stash);
	close(eng->stash_efd);
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
	while (eng->active)
		pthread_cond_wait(&eng->wcv, &eng->wmu);
	pthread_mutex_unlock(&eng->wmu);
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
	else if (--eng->inhibit == 0)
		pthread_cond_broadcast(&eng->wcv);
	pthread_mutex_unlock(&eng->wmu);
	return rc;
}

VMO_API unsigned vmo_engine_features(const struct vmo_engine *eng)
{
	return eng ? eng->features : 0;
}

VMO_API int vmo_engine_stats(struct vmo_engine *eng, struct vmo_stats *st)
{
	if (!eng || !st)
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
	return 0;
}
