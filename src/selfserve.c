/* SPDX-License-Identifier: MIT */
/* selfserve.c - self-service faults (VMO_ENGINE_SELF_SERVICE): the thread
 * that touches a page serves its own fault.
 *
 * By default a fault is a message on the userfaultfd: the faulting thread
 * sleeps in the kernel, a worker wakes, serves it and wakes the thread.  On
 * these virtual machines the two wake-ups cost more than the fault itself
 * (docs/performance.md).  With UFFD_FEATURE_SIGBUS the kernel queues no
 * message: the faulting thread gets SIGBUS (BUS_ADRERR at the address), for
 * missing, minor and write-protect faults alike.  vmo's SIGBUS handler finds
 * the view, builds the message the kernel would have sent and serves it on
 * the faulting thread through the same code as a worker (fault.c), then
 * returns: the access runs again and finds its page.
 *
 *   - The kind of fault comes from the x86 page-fault error code in the
 *     signal's context: bit 0 set (a protection fault on a present page) is
 *     a write-protect fault; otherwise the page is missing in this view
 *     (the page's state says whether from the memfd too).
 *   - A page another thread is filling or evicting is not waited for: the
 *     handler yields the CPU and returns; the access faults again.
 *   - Only objects whose pager declared its callbacks async-signal-safe
 *     (VMO_OBJ_SIGNAL_SAFE) are served in the handler.  The faults of the
 *     others are handed to this engine's hand-off threads (a lock-free
 *     stack, a semaphore), and the faulting thread waits on a futex for the
 *     answer: the default path's cost, from a handler.  So are all faults
 *     while the engine is inhibited (vmo_engine_inhibit).
 *   - A failure (the pager's error, the object shut down, a page outside the
 *     object) is not poison and not a queued signal: the space's sigbus
 *     operation marks the request failed (space.c, vmo__ss_cur) and the
 *     handler passes the SIGBUS on to the handler it found installed (or the
 *     default action: the access faults again and the process dies of the
 *     kernel's SIGBUS, as on the default path).
 *   - A SIGBUS that is not a fault in a view of a self-service engine of this
 *     process (another mapping's, one sent with kill, a fork()ed child's) is
 *     passed on too.
 *
 * The handler is installed when the first such engine is made, and again by
 * vmo_map when the program replaced it (what it found is what it passes on
 * to); programs that install theirs later call vmo_handle_sigbus first.
 * It takes the locks the workers take (pthread mutexes and rwlocks, never
 * held by a thread while it touches a view) and allocates nothing on the
 * path that succeeds; the error paths log.  Engines are found in a fixed
 * table; a handler in progress holds the count that vmo_engine_destroy
 * waits for before it frees anything. */
#include "core.h"

#include <linux/futex.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define MAX_ENGINES 64

/* A fault handed to a hand-off thread: on the faulting thread's stack until
 * done is set. */
struct ss_req {
	struct ss_req *next;
	struct vmo__space *sp;
	struct uffd_msg msg;
	struct vmo__ss_fail fail;
	_Atomic uint32_t done;
};

struct vmo__selfserve {
	struct vmo_engine *eng;
	_Atomic(struct ss_req *) head;
	sem_t sem;
	pthread_t *threads;
	unsigned nthreads;
	_Atomic bool stop;
};

static struct vmo_engine *_Atomic engines[MAX_ENGINES];
static _Atomic long in_handler; /* handlers that may hold an engine pointer */
static pthread_mutex_t install_mu = PTHREAD_MUTEX_INITIALIZER;
/* The disposition found when the handler was installed (last): passed on
 * to.  Each install writes the next of a few slots and then points prev at
 * it, so a handler reading the one before is not written under (until the
 * program has replaced vmo's handler that many more times). */
#define PREV_SLOTS 16
static struct sigaction prev_slots[PREV_SLOTS];
static unsigned prev_next;
static struct sigaction *_Atomic prev;
static int force_all = -1; /* VMO_SELF_SERVICE=all: every object served in the handler */

static void on_sigbus(int sig, siginfo_t *si, void *uc);

/* The last page this thread faulted on in a handler, and how many times in
 * a row (a diagnostic: handle()). */
static VMO__TLS uintptr_t same_addr;
static VMO__TLS unsigned long same_count;

static pid_t my_tid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

static void futex_wait(_Atomic uint32_t *w, uint32_t val)
{
	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *w)
{
	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* ---- passing a signal on ------------------------------------------------ */

static void pass_on(int sig, siginfo_t *si, void *uc)
{
	struct sigaction *p = atomic_load(&prev);
	if (p && (p->sa_flags & SA_SIGINFO) && p->sa_sigaction) {
		p->sa_sigaction(sig, si, uc);
		return;
	}
	if (p && p->sa_handler != SIG_DFL && p->sa_handler != SIG_IGN) {
		p->sa_handler(sig);
		return;
	}
	/* The default action (a fault's SIGBUS cannot be ignored): the handler
	 * goes, and the signal comes again with nobody to catch it, the
	 * fault's when the access runs again, another's raised now. */
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	sigaction(sig, &dfl, NULL);
	if (si->si_code <= 0)
		raise(sig);
}

int vmo__selfserve_install(void)
{
	pthread_mutex_lock(&install_mu);
	struct sigaction cur;
	int rc = 0;
	if (sigaction(SIGBUS, NULL, &cur) < 0) {
		rc = -errno;
	} else if (!((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_sigbus)) {
		struct sigaction *p = &prev_slots[prev_next++ % PREV_SLOTS];
		*p = cur;
		atomic_store(&prev, p);
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_sigaction = on_sigbus;
		/* Every signal stays blocked while it runs: no other
		 * handler of the program may run in the middle and touch
		 * a page this one is filling (it would wait for it
		 * forever), and a fault inside it (a pager touching the
		 * object's mappings) kills the process instead of
		 * recursing.  Signals that come meanwhile wait until the
		 * fault is served (SIGKILL does not). */
		sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
		sigfillset(&sa.sa_mask);
		if (sigaction(SIGBUS, &sa, NULL) < 0)
			rc = -errno;
		else if (cur.sa_handler != SIG_DFL)
			vmo__debug("self-service faults: SIGBUS handler installed, passing on to the program's");
	}
	pthread_mutex_unlock(&install_mu);
	return rc;
}

/* ---- serving ------------------------------------------------------------- */

/* Serve fault messages of sp, with the inhibit count respected, as
 * libpager's workers: the engine's workers and the hand-off threads. */
void vmo__serve_batch(struct vmo_engine *eng, struct vmo__space *sp, const struct uffd_msg *msgs, int n)
{
	pthread_mutex_lock(&eng->wmu);
	while (eng->inhibit)
		pthread_cond_wait(&eng->wcv, &eng->wmu);
	eng->active++;
	pthread_mutex_unlock(&eng->wmu);

	for (int i = 0; i < n; i++)
		vmo__handle_fault(eng, sp, &msgs[i]);

	pthread_mutex_lock(&eng->wmu);
	if (--eng->active == 0)
		pthread_cond_broadcast(&eng->wcv);
	pthread_mutex_unlock(&eng->wmu);
}

/* One fault, with the inhibit count respected.  In a handler the engine's
 * mutex and condition variable cannot be waited on: the fault counts itself
 * in ss_active (which vmo_engine_inhibit waits out) and is handed off if
 * the engine is inhibited. */
static bool serve_here(struct vmo_engine *eng, struct vmo__space *sp, const struct uffd_msg *msg, bool *failed)
{
	atomic_fetch_add(&eng->ss_active, 1);
	if (atomic_load(&eng->ss_inhibited)) {
		atomic_fetch_sub(&eng->ss_active, 1);
		return false;
	}
	struct vmo__ss_fail fail = { .tid = (pid_t)msg->arg.pagefault.feat.ptid };
	struct vmo__ss_fail *saved = vmo__ss_cur;
	vmo__ss_cur = &fail;
	vmo__handle_fault(eng, sp, msg);
	vmo__ss_cur = saved;
	atomic_fetch_sub(&eng->ss_active, 1);
	*failed = fail.failed;
	return true;
}

static bool hand_off(struct vmo_engine *eng, struct vmo__space *sp, const struct uffd_msg *msg)
{
	struct vmo__selfserve *ss = eng->ss;
	struct ss_req rq = { .sp = sp, .msg = *msg, .fail = { .tid = (pid_t)msg->arg.pagefault.feat.ptid } };
	struct ss_req *h = atomic_load(&ss->head);
	do
		rq.next = h;
	while (!atomic_compare_exchange_weak(&ss->head, &h, &rq));
	sem_post(&ss->sem);
	while (!atomic_load(&rq.done))
		futex_wait(&rq.done, 0);
	return rq.fail.failed;
}

static void *hand_off_main(void *arg)
{
	struct vmo__selfserve *ss = arg;
	int old;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	vmo__on_vmo_thread = true;
	for (;;) {
		while (sem_wait(&ss->sem) < 0)
			;
		if (atomic_load(&ss->stop))
			break;
		struct ss_req *list = atomic_exchange(&ss->head, NULL);
		/* oldest first */
		struct ss_req *rev = NULL;
		while (list) {
			struct ss_req *n = list->next;
			list->next = rev;
			rev = list;
			list = n;
		}
		while (rev) {
			struct ss_req *rq = rev;
			rev = rq->next;
			vmo__ss_cur = &rq->fail;
			vmo__serve_batch(ss->eng, rq->sp, &rq->msg, 1);
			vmo__ss_cur = NULL;
			/* (rq is the faulting thread's once done is set) */
			atomic_store(&rq->done, 1);
			futex_wake(&rq->done);
		}
	}
	vmo__worker_buf_free();
	return NULL;
}

/* The signal is a fault in a view of a self-service engine of ours: serve
 * it (1), or say that it is not ours to serve or failed (0). */
static int handle(siginfo_t *si, void *uc)
{
	if (si->si_code != BUS_ADRERR) {
		vmo__debug("SIGBUS si_code %d at %p: not a fault of vmo's to serve", si->si_code, si->si_addr);
		return 0; /* a queued SIGBUS (SI_QUEUE), poison, another cause */
	}
	uintptr_t addr = (uintptr_t)si->si_addr;
	int r = 0;
	atomic_fetch_add(&in_handler, 1);
	pid_t pid = -1;
	for (int i = 0; i < MAX_ENGINES; i++) {
		struct vmo_engine *eng = atomic_load(&engines[i]);
		if (!eng)
			continue;
		struct vmo__space *sp = eng->local;
		if (pid < 0)
			pid = getpid();
		if (sp->pid != pid)
			continue; /* in a fork()ed child: its parent's engine */
		struct vmo_map *m = vmo__map_lookup_get(sp, addr);
		if (!m)
			continue;
		struct vmo_object *o = m->obj;
		uint64_t pg = (addr - m->addr + m->off) >> o->page_shift;
		uint8_t s = ps_get(o, pg);
		/* The same page faulting again and again without progress is a
		 * bug (a page left in a transient state, or taken back before
		 * every access): say so once, with its state. */
		if ((addr & ~(uintptr_t)(VMO_PAGE - 1)) == same_addr) {
			if (++same_count == 1000000)
				vmo__warn("self-service: the access at %#lx faulted a million times in a row (page "
					  "state %u): no progress",
					  (unsigned long)addr, (unsigned)s);
		} else {
			same_addr = addr & ~(uintptr_t)(VMO_PAGE - 1);
			same_count = 0;
		}
		bool safe = force_all > 0 || (o->flags & VMO_OBJ_SIGNAL_SAFE);
		vmo__map_put(m);
		if (s == PS_FILLING || s == PS_EVICTING || s == PS_PENDING) {
			/* Another thread has it: run again when it is done. */
			sched_yield();
			r = 1;
			break;
		}
		struct uffd_msg msg;
		memset(&msg, 0, sizeof msg);
		msg.event = UFFD_EVENT_PAGEFAULT;
		msg.arg.pagefault.address = addr;
		msg.arg.pagefault.feat.ptid = (uint32_t)my_tid();
#if defined(__x86_64__)
		unsigned long err = (unsigned long)((ucontext_t *)uc)->uc_mcontext.gregs[REG_ERR];
		if (err & 1) /* present: the write-protect bit */
			msg.arg.pagefault.flags = UFFD_PAGEFAULT_FLAG_WP | UFFD_PAGEFAULT_FLAG_WRITE;
		else if (ps_resident(s))
			msg.arg.pagefault.flags = UFFD_PAGEFAULT_FLAG_MINOR;
#else
		(void)uc;
#endif
		bool failed = false;
		if (!safe || !serve_here(eng, sp, &msg, &failed))
			failed = hand_off(eng, sp, &msg);
		r = !failed;
		if (failed)
			vmo__debug("self-service fault at %#lx (flags %#llx) failed: SIGBUS passed on", (unsigned long)addr,
				   (unsigned long long)msg.arg.pagefault.flags);
		break;
	}
	atomic_fetch_sub(&in_handler, 1);
	return r;
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;
	int r = handle(si, uc);
	errno = saved;
	if (!r)
		pass_on(sig, si, uc);
}

VMO_API int vmo_handle_sigbus(int sig, void *info, void *ucontext)
{
	if (sig != SIGBUS || !info || !ucontext)
		return 0;
	int saved = errno;
	int r = handle((siginfo_t *)info, ucontext);
	errno = saved;
	return r;
}

/* ---- engines ------------------------------------------------------------- */

bool vmo__selfserve_wanted(void)
{
	const char *e = getenv("VMO_SELF_SERVICE");
	if (force_all < 0)
		force_all = e && !strcmp(e, "all");
	return e && *e && strcmp(e, "0");
}

int vmo__selfserve_start(struct vmo_engine *eng)
{
#if !defined(__x86_64__)
	vmo__set_detail("VMO_ENGINE_SELF_SERVICE needs x86-64 for now (the fault's error code)");
	return -EOPNOTSUPP;
#endif
	if (force_all < 0)
		(void)vmo__selfserve_wanted();
	struct vmo__selfserve *ss = calloc(1, sizeof *ss);
	if (!ss)
		return -ENOMEM;
	ss->eng = eng;
	sem_init(&ss->sem, 0, 0);
	ss->nthreads = eng->nworkers;
	ss->threads = calloc(ss->nthreads, sizeof *ss->threads);
	if (!ss->threads) {
		free(ss);
		return -ENOMEM;
	}
	vmo__worker_buf_key_init();
	int rc = vmo__selfserve_install();
	if (rc) {
		free(ss->threads);
		free(ss);
		return rc;
	}
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	unsigned i;
	for (i = 0; i < ss->nthreads; i++) {
		rc = -pthread_create(&ss->threads[i], NULL, hand_off_main, ss);
		if (rc)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	ss->nthreads = i;
	if (rc) {
		eng->ss = ss;
		vmo__selfserve_stop(eng);
		return rc;
	}
	eng->ss = ss;
	eng->ss_install = vmo__selfserve_install;
	for (int k = 0; k < MAX_ENGINES; k++) {
		struct vmo_engine *none = NULL;
		if (atomic_compare_exchange_strong(&engines[k], &none, eng))
			return 0;
	}
	vmo__set_detail("VMO_ENGINE_SELF_SERVICE: at most %d such engines at once", MAX_ENGINES);
	vmo__selfserve_stop(eng);
	return -EMFILE;
}

void vmo__selfserve_stop(struct vmo_engine *eng)
{
	struct vmo__selfserve *ss = eng->ss;
	if (!ss)
		return;
	for (int k = 0; k < MAX_ENGINES; k++) {
		struct vmo_engine *me = eng;
		atomic_compare_exchange_strong(&engines[k], &me, NULL);
	}
	/* A handler that read the table before may still hold eng. */
	eng->ss_install = NULL;
	while (atomic_load(&in_handler))
		sched_yield();
	atomic_store(&ss->stop, true);
	for (unsigned i = 0; i < ss->nthreads; i++)
		sem_post(&ss->sem);
	for (unsigned i = 0; i < ss->nthreads; i++)
		pthread_join(ss->threads[i], NULL);
	sem_destroy(&ss->sem);
	free(ss->threads);
	free(ss);
	eng->ss = NULL;
}
