/* SPDX-License-Identifier: MIT */
/* fork.c - what a child made by fork() gets of a view: vmo_inherit (Mach's
 * vm_inherit; Lunaix's procvm_dup).  docs/api.md, "fork".
 *
 * By default a view is MADV_DONTFORK: the child has no mapping there
 * (SIGSEGV on a touch), never pages that silently turn into zeros.  A view
 * marked VMO_INHERIT_COPY is, in the child, a copy-on-write clone of the
 * object as it was when fork() was called (clone.c); VMO_INHERIT_SHARE
 * gives the child the object itself.  Either way the parent's engine
 * serves the child, exactly as a server serves a client (server.c): the
 * child's userfaultfd is adopted as an address space and the child's
 * mappings attached to it as views.
 *
 * The mechanism, in fork()'s own handlers (pthread_atfork):
 *   prepare (parent): for each engine with inherited views, a socketpair,
 *     and for each object a clone (COPY: under the source's cow_lock, the
 *     moment of the fork; dirty pages are written back first, as for any
 *     clone) or the object itself (SHARE).
 *   child: maps each target's memfd where the view was (the DONTFORK view
 *     left the range free), opens a userfaultfd of its own, sends it over
 *     the socket, and waits for the parent's answer; then a watcher thread
 *     waits for the parent's end of the socket to close.
 *   parent: adopts the descriptor (vmo__space_adopt), which registers and
 *     serves each range from now on (vmo__view_attach), answers, and keeps
 *     the socket.  fork() returns in the parent after that exchange.
 * The kernel's UFFD_FEATURE_EVENT_FORK is not used: it would register the
 * child's copy of the shared mapping (the object itself, never a copy), and
 * every fork() of the process would wait until an engine worker read the
 * event.  posix_spawn() and vfork() run no handlers and inherit nothing.
 *
 * When the child exits or execs, its end of the socket closes: the keeper
 * thread (one per process, started with the first inheriting fork) closes
 * the space, which detaches the views, whose references were the clones'
 * last.  When the parent dies or destroys the engine, the parent's end
 * closes: the child's watcher serves the child's userfaultfd itself
 * (vmo__uffd_serve_orphan): pages already in the child's memory stay
 * readable and writable, a page never supplied is SIGBUS.  Never zeros,
 * never a hang.  A grandchild inherits nothing of these (the views in the
 * child are MADV_DONTFORK too, and vmo_inherit is for the engine's own
 * process). */
#include "core.h"
#include "wire.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

/* How long one side of the exchange waits for the other: the child's
 * handler runs at once, so this is only against a child stopped or killed
 * in fork(). */
#define HANDSHAKE_MS 30000

struct hello { /* child -> parent, with the child's userfaultfd */
	uint32_t magic;
	int32_t err; /* 0, or the child's -errno (no descriptor then) */
	int32_t pid;
	uint32_t pad;
	uint64_t features;
};
#define HELLO_MAGIC 0x766d6f66u /* "vmof" */

/* ---- the process's state ------------------------------------------------------- */

struct eng_ent { /* an engine with inherited views (vmo_inherit was called) */
	struct eng_ent *next;
	struct vmo_engine *eng;
};

struct rec { /* a child served by an engine of this process */
	struct rec *next;
	uint64_t id; /* (orders the records: fork_objects counts each object once) */
	struct vmo_engine *eng;
	pid_t pid;
	int sock; /* our end; the child's watcher waits for it to close */
	struct vmo__space *sp;
	size_t nt;
	struct vmo_object **targets; /* a program reference on each: the clones live while the child does */
	bool *clone;                 /* targets[i] is a clone made for this child */
	struct vmo_object **srcs;    /* its source (which the clone holds a reference on), or NULL */
};

struct kid { /* this process as a child: what its watcher serves */
	struct kid *next;
	int sock;
	struct vmo__uffd u;
	size_t nr;
	uintptr_t *addr;
	size_t *len;
};

struct pview {
	uintptr_t addr;
	size_t len;
	uint64_t off;
	unsigned flags;
	int memfd;
	bool clone;
	struct vmo_object *target; /* the clone (our reference), or the object (a reference) */
	struct vmo_object *src;    /* a clone's source (no reference of ours) */
};

struct group { /* one engine's part of the fork in progress */
	struct vmo_engine *eng;
	int sv[2];
	size_t nv;
	struct pview *v;
};

static pthread_mutex_t fk_mu = PTHREAD_MUTEX_INITIALIZER; /* everything here; held across fork() */
static pthread_once_t fk_once = PTHREAD_ONCE_INIT;
static struct eng_ent *engines;
static struct rec *recs;
static struct kid *kids;
static int keeper_efd = -1;
static uint64_t next_rec_id = 1;
static bool keeper_running;
/* The fork in progress (prepare to parent/child). */
static struct group *plan;
static size_t nplan;
/* Teardowns in progress outside fk_mu (engine destruction waits for them). */
static pthread_mutex_t td_mu = PTHREAD_MUTEX_INITIALIZER;

static void send_fd(int sock, const void *buf, size_t len, int fd)
{
	ssize_t r = vmo__sock_send(sock, buf, len, &fd, fd >= 0 ? 1 : 0);
	if (r < 0)
		vmo__debug("fork: handshake send: %s", strerror((int)-r));
}

/* Receive one message of exactly len bytes within HANDSHAKE_MS; *fd gets a
 * descriptor sent with it (or -1; any more are closed).  0 or -errno. */
static int recv_fd(int sock, void *buf, size_t len, int *fd)
{
	*fd = -1;
	struct pollfd pf = { .fd = sock, .events = POLLIN };
	int n;
	while ((n = poll(&pf, 1, HANDSHAKE_MS)) < 0 && errno == EINTR)
		;
	if (n == 0)
		return -ETIMEDOUT;
	if (n < 0)
		return -errno;
	int nfds, flags;
	ssize_t r = vmo__sock_recv(sock, buf, len, fd, 1, &nfds, &flags);
	if (r < 0)
		return (int)r;
	if ((size_t)r != len || (flags & (MSG_TRUNC | MSG_CTRUNC))) {
		if (nfds)
			close(*fd);
		*fd = -1;
		return r == 0 ? -ECONNRESET : -EPROTO;
	}
	return 0;
}

/* ---- the parent's keeper: children that are gone --------------------------------- */

/* A record out of the list: its space closed (views retired; so that no
 * fault the workers read goes unanswered once the child's watcher takes
 * over, the space goes before the socket), then its socket (the child's
 * watcher serves from here on), under fk_mu so that no fork copies it. */
static void rec_close(struct rec *r)
{
	if (r->sp)
		vmo__space_close(r->sp);
	r->sp = NULL;
	close(r->sock);
	r->sock = -1;
}

static void rec_end(struct rec *r)
{
	/* The program's last reference on a clone waits until the retired
	 * views have let it go (a worker may still hold one), then frees it
	 * here: the engine counts no object of ours once this returns. */
	for (size_t i = 0; i < r->nt; i++)
		vmo_object_unref(r->targets[i]);
	free(r->targets);
	free(r->clone);
	free(r->srcs);
	free(r);
}

/* Has the child closed its end of the socket (exit, exec)? */
static bool child_gone(const struct rec *r)
{
	struct pollfd pf = { .fd = r->sock, .events = POLLRDHUP };
	return poll(&pf, 1, 0) > 0 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* Under fk_mu: the records of eng (NULL: of any engine), all of them or
 * only those whose child is gone, out of the list and closed (rec_close);
 * the caller ends them (end_recs) outside fk_mu, under td_mu. */
static struct rec *take_recs(struct vmo_engine *eng, bool only_gone)
{
	struct rec *gone = NULL;
	for (struct rec **pr = &recs; *pr;) {
		struct rec *r = *pr;
		if ((eng && r->eng != eng) || (only_gone && !child_gone(r))) {
			pr = &r->next;
			continue;
		}
		*pr = r->next;
		rec_close(r);
		r->next = gone;
		gone = r;
	}
	return gone;
}

static void end_recs(struct rec *gone)
{
	while (gone) {
		struct rec *r = gone;
		gone = r->next;
		vmo__debug("fork: child %d is served no more", (int)r->pid);
		rec_end(r);
	}
}

static void *keeper_main(void *arg)
{
	(void)arg;
	/* (not marked a vmo thread: its unrefs wait for the workers' views) */
	for (;;) {
		pthread_mutex_lock(&fk_mu);
		size_t n = 1;
		for (struct rec *r = recs; r; r = r->next)
			n++;
		struct pollfd *pf = calloc(n, sizeof *pf);
		if (!pf) {
			pthread_mutex_unlock(&fk_mu);
			sleep(1);
			continue;
		}
		pf[0] = (struct pollfd){ .fd = keeper_efd, .events = POLLIN };
		size_t i = 1;
		for (struct rec *r = recs; r; r = r->next)
			pf[i++] = (struct pollfd){ .fd = r->sock, .events = POLLRDHUP };
		pthread_mutex_unlock(&fk_mu);
		while (poll(pf, n, -1) < 0 && errno == EINTR)
			;
		if (pf[0].revents) {
			uint64_t v;
			if (read(keeper_efd, &v, sizeof v) < 0)
				vmo__debug("fork keeper: eventfd: %s", strerror(errno));
		}
		free(pf);
		/* The children that are gone (each record's own socket asked again,
		 * under the lock: a descriptor number polled above may have been
		 * closed and reused since) out of the list, ended outside it. */
		pthread_mutex_lock(&td_mu);
		pthread_mutex_lock(&fk_mu);
		struct rec *gone = take_recs(NULL, true);
		pthread_mutex_unlock(&fk_mu);
		end_recs(gone);
		pthread_mutex_unlock(&td_mu);
	}
	return NULL;
}

/* Under fk_mu. */
static int keeper_start(void)
{
	if (keeper_running)
		return 0;
	if (keeper_efd < 0 && (keeper_efd = eventfd(0, EFD_CLOEXEC)) < 0)
		return -errno;
	pthread_t th;
	int rc = vmo__thread_create(&th, keeper_main, NULL);
	if (rc)
		return rc;
	pthread_detach(th);
	keeper_running = true;
	return 0;
}

static void keeper_kick(void)
{
	uint64_t one = 1;
	if (keeper_efd >= 0 && write(keeper_efd, &one, sizeof one) < 0)
		vmo__debug("fork keeper: eventfd: %s", strerror(errno));
}

/* vmo_engine_destroy (engine.c, through eng->fork_objects): how many of
 * the engine's objects only its children keep (the program's references
 * are gone: each one's are all ours); with release, its children are
 * served no more (their watchers take over) and those references go. */
static long fork_objects(struct vmo_engine *eng, bool release)
{
	long n = 0;
	if (!release) {
		/* (after the keeper's teardowns in flight: their objects are gone,
		 * or counted here; and the children already gone are ended here and
		 * now, not when the keeper gets to them: a destroy right after a
		 * child's wait must not find its clone) */
		pthread_mutex_lock(&td_mu);
		pthread_mutex_lock(&fk_mu);
		struct rec *gone = take_recs(eng, true);
		pthread_mutex_unlock(&fk_mu);
		end_recs(gone);
		/* An object only the children keep: every program reference on it
		 * is ours (a target) or a clone's of ours (its source). */
		pthread_mutex_lock(&fk_mu);
		for (struct rec *r = recs; r; r = r->next)
			for (size_t i = 0; r->eng == eng && i < 2 * r->nt; i++) {
				struct vmo_object *t = i < r->nt ? r->targets[i] : r->srcs[i - r->nt];
				if (!t)
					continue;
				long ours = 0;
				bool first = true;
				for (struct rec *q = recs; q; q = q->next)
					for (size_t k = 0; q->eng == eng && k < 2 * q->nt; k++) {
						struct vmo_object *u = k < q->nt ? q->targets[k] : q->srcs[k - q->nt];
						if (u != t)
							continue;
						ours++;
						if (q->id < r->id || (q == r && k < i))
							first = false;
					}
				if (first && atomic_load(&t->urefs) == ours)
					n++;
			}
		pthread_mutex_unlock(&fk_mu);
		pthread_mutex_unlock(&td_mu);
		return n;
	}
	pthread_mutex_lock(&td_mu); /* (no teardown of the keeper's in flight) */
	pthread_mutex_lock(&fk_mu);
	struct rec *gone = take_recs(eng, false);
	for (struct eng_ent **pe = &engines; *pe; pe = &(*pe)->next)
		if ((*pe)->eng == eng) {
			struct eng_ent *e = *pe;
			*pe = e->next;
			free(e);
			break;
		}
	pthread_mutex_unlock(&fk_mu);
	keeper_kick();
	end_recs(gone);
	pthread_mutex_unlock(&td_mu);
	return 0;
}

/* ---- fork()'s handlers ------------------------------------------------------------ */

static void plan_free(bool parent)
{
	for (size_t g = 0; g < nplan; g++) {
		for (size_t i = 0; parent && i < plan[g].nv; i++) /* (one reference per run of a target) */
			if (plan[g].v[i].target && (i == 0 || plan[g].v[i].target != plan[g].v[i - 1].target))
				vmo_object_unref(plan[g].v[i].target);
		if (plan[g].sv[0] >= 0)
			close(plan[g].sv[0]);
		if (plan[g].sv[1] >= 0)
			close(plan[g].sv[1]);
		free(plan[g].v);
	}
	free(plan);
	plan = NULL;
	nplan = 0;
}

static int by_object(const void *a, const void *b)
{
	const struct pview *x = a, *y = b;
	if (x->target != y->target)
		return x->target < y->target ? -1 : 1;
	return (x->flags >> 31) < (y->flags >> 31) ? -1 : (x->flags >> 31) > (y->flags >> 31);
}

/* The engine's inherited views, each with a reference on its object
 * (target; replaced by the clone below for COPY). */
static int collect(struct vmo_engine *eng, struct group *g)
{
	struct vmo__space *sp = eng->local;
	pthread_rwlock_rdlock(&sp->maps_lock);
	size_t n = 0, cap = 0;
	for (struct vmo__vnode *x = vmo__vtree_first(&sp->maps); x; x = vmo__vtree_next(x)) {
		struct vmo_map *m = vmo__vtree_entry(x, struct vmo_map, anode);
		unsigned inh = atomic_load(&m->inherit);
		if (inh == VMO_INHERIT_NONE || atomic_load(&m->dead))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 8;
			struct pview *v = realloc(g->v, cap * sizeof *v);
			if (!v)
				break;
			g->v = v;
		}
		vmo_object_ref(m->obj);
		g->v[n++] = (struct pview){ .addr = m->addr, .len = m->len, .off = m->off,
					    .flags = (m->flags & (VMO_PROT_READ | VMO_PROT_WRITE)) |
						     (inh == VMO_INHERIT_COPY ? 1u << 31 : 0),
					    .target = m->obj };
	}
	pthread_rwlock_unlock(&sp->maps_lock);
	g->nv = n;
	qsort(g->v, n, sizeof *g->v, by_object);
	/* One target per object and mode: one clone of an object however many
	 * of its views are copied; the object itself for those shared. */
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j < n && g->v[j].target == g->v[i].target && (g->v[j].flags >> 31) == (g->v[i].flags >> 31))
			j++;
		struct vmo_object *obj = g->v[i].target, *t = obj;
		bool copy = (g->v[i].flags >> 31) != 0;
		/* (one reference per view was taken: keep one per run) */
		for (size_t k = i + 1; k < j; k++)
			vmo_object_unref(obj);
		if (copy) {
			int rc = vmo_object_clone(obj, NULL, NULL, NULL, &t);
			if (rc) {
				vmo__warn("fork: no copy of object \"%s\" for the child: %s (the child has no mapping "
					  "there)",
					  obj->name[0] ? obj->name : "?", vmo_last_error_detail());
				t = NULL;
			}
			vmo_object_unref(obj);
		}
		for (size_t k = i; k < j; k++) {
			g->v[k].target = t;
			g->v[k].clone = copy;
			g->v[k].src = copy ? obj : NULL;
			g->v[k].memfd = t ? t->memfd : -1;
			g->v[k].flags &= VMO_PROT_READ | VMO_PROT_WRITE;
		}
		i = j;
	}
	return 0;
}

static void fork_prepare(void)
{
	pthread_mutex_lock(&fk_mu);
	size_t n = 0;
	for (struct eng_ent *e = engines; e; e = e->next)
		n++;
	if (!n)
		return;
	plan = calloc(n, sizeof *plan);
	if (!plan) {
		vmo__warn("fork: no memory to plan the inherited views (the child has none)");
		return;
	}
	for (struct eng_ent *e = engines; e; e = e->next) {
		struct group *g = &plan[nplan++];
		g->eng = e->eng;
		g->sv[0] = g->sv[1] = -1;
		collect(e->eng, g);
		if (g->nv && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, g->sv) < 0) {
			vmo__warn("fork: socketpair: %s (the child has no inherited views)", strerror(errno));
			g->sv[0] = g->sv[1] = -1;
		}
	}
}

static void fork_parent(void)
{
	for (size_t gi = 0; gi < nplan; gi++) {
		struct group *g = &plan[gi];
		if (g->sv[0] < 0)
			continue;
		close(g->sv[1]);
		g->sv[1] = -1;
		struct hello h;
		int ufd, rc = recv_fd(g->sv[0], &h, sizeof h, &ufd);
		if (!rc && (h.magic != HELLO_MAGIC || (h.err == 0 && ufd < 0)))
			rc = -EPROTO;
		if (!rc && h.err)
			rc = h.err;
		struct vmo__space *sp = NULL;
		if (!rc) {
			rc = vmo__space_adopt(&g->eng->spaces, ufd, h.features, h.pid, &sp);
			if (rc)
				close(ufd);
		} else if (ufd >= 0) {
			close(ufd);
		}
		size_t attached = 0;
		for (size_t i = 0; !rc && i < g->nv; i++, attached = i) {
			struct pview *v = &g->v[i];
			if (!v->target)
				continue;
			struct vmo_map *vm;
			rc = vmo__view_attach(sp, v->target, v->addr, v->len, v->off, v->flags,
					      v->target->track && (v->flags & VMO_PROT_WRITE), &vm);
		}
		struct rec *r = NULL;
		if (!rc && (!(r = calloc(1, sizeof *r)) || !(r->targets = calloc(g->nv, sizeof *r->targets)) ||
			    !(r->clone = calloc(g->nv, sizeof *r->clone)) || !(r->srcs = calloc(g->nv, sizeof *r->srcs))))
			rc = -ENOMEM;
		if (!rc)
			rc = keeper_start();
		int32_t answer = rc;
		send_fd(g->sv[0], &answer, sizeof answer, -1);
		if (rc) {
			vmo__warn("fork: the child gets no inherited views: %s%s%s", vmo_strerror(rc),
				  vmo_last_error_detail()[0] ? ": " : "", vmo_last_error_detail());
			/* (the child unregisters its ranges too before it unmaps them:
			 * an unmap of a registered range would wait for an event
			 * nobody reads) */
			for (size_t i = 0; sp && i < attached; i++) {
				struct pview *v = &g->v[i];
				struct vmo_map *vm = v->target ? vmo__view_take(sp, v->target, v->addr, v->len) : NULL;
				if (vm) {
					vmo__view_quiesce(vm);
					vmo__view_detach(vm);
				}
			}
			if (sp)
				vmo__space_close(sp);
			if (r) {
				free(r->targets);
				free(r->clone);
				free(r->srcs);
			}
			free(r);
			continue;
		}
		/* The targets' references go to the record (one per run). */
		struct vmo_object *last = NULL;
		for (size_t i = 0; i < g->nv; i++) {
			if (g->v[i].target && g->v[i].target != last) {
				r->clone[r->nt] = g->v[i].clone;
				r->srcs[r->nt] = g->v[i].src;
				r->targets[r->nt++] = last = g->v[i].target;
			}
			g->v[i].target = NULL;
		}
		r->id = next_rec_id++;
		r->eng = g->eng;
		r->pid = h.pid;
		r->sock = g->sv[0];
		r->sp = sp;
		g->sv[0] = -1;
		r->next = recs;
		recs = r;
	}
	/* (the references of a failed group's targets go here: a clone goes) */
	plan_free(true);
	keeper_kick();
	pthread_mutex_unlock(&fk_mu);
}

static void *watch_main(void *arg)
{
	struct kid *k = arg;
	vmo__on_vmo_thread = true;
	struct pollfd pf = { .fd = k->sock, .events = POLLRDHUP };
	for (;;) {
		if (poll(&pf, 1, -1) < 0 && errno != EINTR)
			return NULL;
		if (pf.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
			break;
	}
	/* Threads whose fault message the parent read and never answered
	 * wait until woken: wake every range; they fault again, to us. */
	for (size_t i = 0; i < k->nr; i++)
		vmo__uffd_wake(&k->u, (void *)k->addr[i], k->len[i]);
	/* (and wherever the child moved them since: every user address) */
	vmo__uffd_wake(&k->u, (void *)(uintptr_t)(1ul << 20), (1ul << 47) - (1ul << 20) - VMO_PAGE);
	vmo__warn("fork: the parent no longer serves this child's inherited views: pages not in memory get "
		  "SIGBUS");
	vmo__uffd_serve_orphan(&k->u, -1);
	return NULL;
}

/* This process as the child: map the targets, hand our userfaultfd over. */
static void child_group(struct group *g)
{
	close(g->sv[0]);
	g->sv[0] = -1;
	int sock = g->sv[1];
	g->sv[1] = -1;
	struct kid *k = calloc(1, sizeof *k);
	struct hello h = { .magic = HELLO_MAGIC, .pid = getpid() };
	size_t mapped = 0;
	int rc = 0;
	if (!k || !(k->addr = calloc(g->nv ? g->nv : 1, sizeof *k->addr)) ||
	    !(k->len = calloc(g->nv ? g->nv : 1, sizeof *k->len)))
		rc = -ENOMEM;
	if (k)
		k->u.fd = -1;
	if (!rc)
		rc = vmo__uffd_open(&k->u,
				    UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MINOR_SHMEM |
					    UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_HUGETLBFS_SHMEM |
					    UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_POISON | UFFD_FEATURE_EVENT_UNMAP |
					    UFFD_FEATURE_EVENT_REMAP,
				    UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_THREAD_ID, VMO__UFFD_NONBLOCK);
	for (size_t i = 0; !rc && i < g->nv; i++) {
		struct pview *v = &g->v[i];
		if (!v->target)
			continue;
		int prot = PROT_READ | ((v->flags & VMO_PROT_WRITE) ? PROT_WRITE : 0);
		void *p = mmap((void *)v->addr, v->len, prot, MAP_SHARED | MAP_FIXED_NOREPLACE, v->memfd, (off_t)v->off);
		if (p == MAP_FAILED || p != (void *)v->addr) {
			rc = p == MAP_FAILED ? -errno : -EEXIST;
			if (p != MAP_FAILED)
				munmap(p, v->len);
			break;
		}
		madvise(p, v->len, MADV_DONTFORK);
		k->addr[mapped] = v->addr;
		k->len[mapped++] = v->len;
	}
	/* The clones' descriptors are not the child's to keep (its mappings
	 * hold the memory): were it to, the memory would outlive the clones. */
	for (size_t i = 0; i < g->nv; i++)
		if (g->v[i].clone && g->v[i].target && (i == 0 || g->v[i].memfd != g->v[i - 1].memfd))
			close(g->v[i].memfd);
	h.err = rc;
	h.features = rc ? 0 : k->u.features;
	send_fd(sock, &h, sizeof h, rc ? -1 : k->u.fd);
	int32_t answer = -EPROTO;
	int nofd;
	if (!rc) {
		rc = recv_fd(sock, &answer, sizeof answer, &nofd);
		if (nofd >= 0)
			close(nofd);
		if (!rc)
			rc = answer;
	}
	if (!rc) {
		k->sock = sock;
		k->nr = mapped;
		pthread_t th;
		rc = vmo__thread_create(&th, watch_main, k);
		if (!rc) {
			pthread_detach(th);
			k->next = kids;
			kids = k;
			return;
		}
		/* (no watcher: were the parent to die, a fault would wait for
		 * ever; better no mapping) */
		vmo__warn("fork (child): no watcher thread: %s", vmo_strerror(rc));
	} else {
		vmo__warn("fork (child): the inherited views could not be set up: %s", vmo_strerror(rc));
	}
	for (size_t i = 0; i < mapped; i++) {
		/* out of the userfaultfd first: the parent may have registered
		 * it, and an unmap of a registered range waits for an event */
		vmo__uffd_unregister(&k->u, (void *)k->addr[i], k->len[i]);
		munmap((void *)k->addr[i], k->len[i]);
	}
	close(sock);
	if (k) {
		vmo__uffd_close(&k->u);
		free(k->addr);
		free(k->len);
		free(k);
	}
}

static void fork_child(void)
{
	/* Nothing of the parent's is ours to serve or watch: its children's
	 * sockets (were we to hold them, a sibling's end would never close),
	 * its keeper, its engines; nor our parent's watcher state. */
	vmo__log_atfork_child();
	for (struct rec *r = recs; r;) {
		/* and the descriptors of the sibling's space and clones: held
		 * here, they would keep its memory after it is gone */
		struct rec *n = r->next;
		close(r->sock);
		if (r->sp) {
			close(r->sp->u.fd);
			if (r->sp->pidfd >= 0)
				close(r->sp->pidfd);
		}
		for (size_t i = 0; i < r->nt; i++)
			if (r->clone[i])
				close(r->targets[i]->memfd);
		free(r->targets);
		free(r->clone);
		free(r->srcs);
		free(r);
		r = n;
	}
	recs = NULL;
	for (struct eng_ent *e = engines; e;) {
		struct eng_ent *n = e->next;
		free(e);
		e = n;
	}
	engines = NULL;
	for (struct kid *k = kids; k;) {
		struct kid *n = k->next;
		close(k->sock);
		vmo__uffd_close(&k->u);
		free(k->addr);
		free(k->len);
		free(k);
		k = n;
	}
	kids = NULL;
	if (keeper_efd >= 0)
		close(keeper_efd);
	keeper_efd = -1;
	keeper_running = false;
	pthread_mutex_init(&td_mu, NULL); /* (the keeper may have held it) */
	for (size_t gi = 0; gi < nplan; gi++)
		if (plan[gi].sv[1] >= 0)
			child_group(&plan[gi]);
	plan_free(false);
	pthread_mutex_unlock(&fk_mu);
}

static void fk_init(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* ---- vmo_inherit ---------------------------------------------------------------- */

VMO_API int vmo_inherit(struct vmo_object *obj, void *addr, size_t len, int inherit)
{
	if (!obj || !addr || !len)
		return -EINVAL;
	if (inherit != VMO_INHERIT_NONE && inherit != VMO_INHERIT_COPY && inherit != VMO_INHERIT_SHARE) {
		vmo__set_detail("vmo_inherit: inherit is %d: VMO_INHERIT_NONE, _COPY or _SHARE", inherit);
		return -EINVAL;
	}
	if (obj->proxy)
		return vmo__not_on_client("vmo_inherit");
	struct vmo_engine *eng = obj->eng;
	if (inherit != VMO_INHERIT_NONE && eng->async) {
		vmo__set_detail("vmo_inherit: a child is served as another address space, which an engine with "
				"VMO_ENGINE_DIRTY_ASYNC cannot serve");
		return -EOPNOTSUPP;
	}
	if (inherit == VMO_INHERIT_COPY && (!obj->track || !(eng->features & VMO_FEAT_CONTINUE_WP))) {
		vmo__set_detail("vmo_inherit: VMO_INHERIT_COPY makes a clone at each fork, whose source must track "
				"writes (a pager with a write callback, write-protect faults on shmem, "
				"UFFDIO_CONTINUE_MODE_WP: Linux 6.5)");
		return -EOPNOTSUPP;
	}
	struct vmo_map *m = vmo__map_lookup_get(eng->local, (uintptr_t)addr);
	if (!m || m->obj != obj || m->addr != (uintptr_t)addr || m->len != len) {
		if (m)
			vmo__map_put(m);
		vmo__set_detail("vmo_inherit: [%p, +%#zx) is not a whole mapping of the object made by vmo_map", addr,
				len);
		return -EINVAL;
	}
	pthread_once(&fk_once, fk_init);
	int rc = 0;
	pthread_mutex_lock(&fk_mu);
	if (inherit != VMO_INHERIT_NONE) {
		struct eng_ent *e = engines;
		while (e && e->eng != eng)
			e = e->next;
		if (!e) {
			if ((e = calloc(1, sizeof *e))) {
				e->eng = eng;
				e->next = engines;
				engines = e;
				eng->fork_objects = fork_objects;
			} else {
				rc = -ENOMEM;
			}
		}
	}
	if (!rc)
		atomic_store(&m->inherit, (uint8_t)inherit);
	pthread_mutex_unlock(&fk_mu);
	vmo__map_put(m);
	return rc;
}
