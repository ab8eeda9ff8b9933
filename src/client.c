/* SPDX-License-Identifier: MIT */
/* client.c - objects opened from a server (docs/server.md): the connection,
 * the proxy object whose public calls go to the server, and what happens to
 * the process's faults when the server is gone.
 *
 * The client opens a userfaultfd and hands it to the server (ADOPT), which
 * registers each mapping the client attaches and serves its faults.  The
 * client keeps its own descriptor: if the server dies or ends the
 * connection, the registrations stay (closing the last descriptor would
 * drop them, and the kernel would fill holes with zero pages: data
 * invented), and the client's watcher thread serves the descriptor itself:
 * it wakes every thread that waited on a message the server read and never
 * answered, then maps pages that are in memory (MINOR), lets writes through
 * (WP), and answers a page not in memory with SIGBUS (UFFDIO_POISON, or the
 * signal to the faulting thread where poison is missing).  Never zeros,
 * never a hang. */
#include "core.h"
#include "cache.h"
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
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

struct cmap { /* a mapping of an object of this client */
	struct cmap *next;
	struct vmo_object *obj;
	uintptr_t addr;
	size_t len;
};

struct vmo_client {
	int fd;
	pthread_mutex_t mu; /* one request at a time; seq */
	uint32_t seq;
	_Atomic long refs;  /* the program's, each object's, each mapping's */
	struct vmo__uffd u;
	int stopfd;
	pthread_t th;
	_Atomic bool gone; /* the server closed the connection */
	pthread_mutex_t vmu; /* maps */
	struct cmap *maps;
};

struct cobj {
	struct vmo_client *cl;
	uint64_t id;
	int fd; /* the memfd, or a read-only descriptor of it */
	bool rw;
};

static struct cobj *co(const struct vmo_object *o)
{
	return o->ctx;
}

/* ---- requests ---------------------------------------------------------------- */

static int gone_error(void)
{
	vmo__set_detail("the server closed the connection (it exited or dropped this client): open the object "
			"again on a new connection");
	return -ECONNRESET;
}

/* Send m (seq set here) and wait for its reply; an ERROR becomes its errno,
 * with the server's message as the detail; a reply of another type than
 * want is -EPROTO. */
static int request(struct vmo_client *cl, struct vmo__wire_msg *m, const int *fds, int nfds, uint16_t want,
		   struct vmo__wire_msg *r, int *rfd)
{
	pthread_mutex_lock(&cl->mu);
	if (atomic_load(&cl->gone)) {
		pthread_mutex_unlock(&cl->mu);
		return gone_error();
	}
	m->seq = ++cl->seq;
	int rc = vmo__wire_send(cl->fd, m, fds, nfds);
	int got[VMO__WIRE_MAX_FDS], ngot = 0;
	while (!rc) {
		rc = vmo__wire_recv(cl->fd, r, got, &ngot);
		if (!rc && r->seq != m->seq) { /* (a stale answer: not ours) */
			for (int i = 0; i < ngot; i++)
				close(got[i]);
			continue;
		}
		break;
	}
	pthread_mutex_unlock(&cl->mu);
	if (rc == -ECONNRESET || rc == -EPIPE || rc == -ENOTCONN) {
		atomic_store(&cl->gone, true);
		return gone_error();
	}
	if (rc)
		return rc;
	if (r->type == VMO__WIRE_ERROR) {
		for (int i = 0; i < ngot; i++)
			close(got[i]);
		vmo__set_detail("server: %s", r->u.error.msg);
		return r->u.error.err;
	}
	if (r->type != want) {
		for (int i = 0; i < ngot; i++)
			close(got[i]);
		vmo__set_detail("the server answered %s to a %s", vmo__wire_type_name(r->type),
				vmo__wire_type_name(m->type));
		return -EPROTO;
	}
	if (rfd)
		*rfd = ngot ? got[0] : -1;
	else
		for (int i = 0; i < ngot; i++)
			close(got[i]);
	return 0;
}

/* ---- when the server is gone ---------------------------------------------------- */

static void orphan(struct vmo_client *cl)
{
	/* Threads whose fault message the server read and never answered
	 * wait until woken: wake every mapping; they fault again, to us. */
	pthread_mutex_lock(&cl->vmu);
	for (struct cmap *m = cl->maps; m; m = m->next)
		vmo__uffd_wake(&cl->u, (void *)m->addr, m->len);
	pthread_mutex_unlock(&cl->vmu);
	vmo__warn("the server closed the connection: faults on pages not in memory get SIGBUS");
	vmo__uffd_serve_orphan(&cl->u, cl->stopfd);
}

static void *watch_main(void *arg)
{
	struct vmo_client *cl = arg;
	vmo__on_vmo_thread = true;
	for (;;) {
		struct pollfd pf[2] = { { .fd = cl->fd, .events = POLLRDHUP }, { .fd = cl->stopfd, .events = POLLIN } };
		if (poll(pf, 2, -1) < 0 && errno != EINTR)
			return NULL;
		if (pf[1].revents)
			return NULL;
		if (pf[0].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
			break;
	}
	atomic_store(&cl->gone, true);
	orphan(cl);
	return NULL;
}

/* ---- the connection --------------------------------------------------------------- */

static void client_put(struct vmo_client *cl)
{
	if (atomic_fetch_sub(&cl->refs, 1) != 1)
		return;
	uint64_t one = 1;
	if (write(cl->stopfd, &one, sizeof one) < 0)
		vmo__debug("client stop eventfd: %s", strerror(errno));
	pthread_join(cl->th, NULL);
	close(cl->stopfd);
	close(cl->fd);
	vmo__uffd_close(&cl->u);
	pthread_mutex_destroy(&cl->mu);
	pthread_mutex_destroy(&cl->vmu);
	free(cl);
}

VMO_API const char *vmo_server_default_path(void)
{
	static __thread char buf[256];
	const char *e = getenv("VMO_SERVER");
	if (e && *e)
		return e;
	if (geteuid() == 0)
		return "/run/vmod/vmod.sock";
	const char *x = getenv("XDG_RUNTIME_DIR");
	if (x && *x)
		snprintf(buf, sizeof buf, "%s/vmod.sock", x);
	else
		snprintf(buf, sizeof buf, "/tmp/vmod-%u.sock", (unsigned)geteuid());
	return buf;
}

VMO_API int vmo_client_connect(const char *path, struct vmo_client **out)
{
	if (!out)
		return -EINVAL;
	if (!path)
		path = vmo_server_default_path();
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sa.sun_path) {
		vmo__set_detail("socket path \"%s\" is longer than %zu bytes", path, sizeof sa.sun_path - 1);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	struct vmo_client *cl = calloc(1, sizeof *cl);
	if (!cl)
		return -ENOMEM;
	cl->u.fd = -1;
	cl->stopfd = -1;
	pthread_mutex_init(&cl->mu, NULL);
	pthread_mutex_init(&cl->vmu, NULL);
	atomic_store(&cl->refs, 1);
	int rc;
	cl->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (cl->fd < 0 || connect(cl->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		rc = -errno;
		vmo__set_detail("connecting to the server at %s: %s%s", path, strerror(errno),
				errno == ENOENT || errno == ECONNREFUSED ? " (is vmod running? VMO_SERVER names the socket)"
									 : "");
		goto fail;
	}
	struct vmo__wire_msg m = { .type = VMO__WIRE_HELLO }, r;
	m.u.hello.min_version = VMO__WIRE_VERSION_MIN;
	m.u.hello.max_version = VMO__WIRE_VERSION;
	rc = request(cl, &m, NULL, 0, VMO__WIRE_HELLO_OK, &r, NULL);
	if (rc)
		goto fail;
	if (r.u.hello_ok.version < VMO__WIRE_VERSION_MIN || r.u.hello_ok.version > VMO__WIRE_VERSION) {
		vmo__set_detail("the server chose protocol version %u; this library speaks %u..%u",
				r.u.hello_ok.version, VMO__WIRE_VERSION_MIN, VMO__WIRE_VERSION);
		rc = -EPROTONOSUPPORT;
		goto fail;
	}
	/* Our userfaultfd, for the server to serve.  Not the one of a local
	 * engine: this one's faults are the server's. */
	uint64_t want = UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_PAGEFAULT_FLAG_WP |
			UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_POISON |
			UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP;
	rc = vmo__uffd_open(&cl->u, want, UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_THREAD_ID, VMO__UFFD_NONBLOCK);
	if (rc)
		goto fail;
	m = (struct vmo__wire_msg){ .type = VMO__WIRE_ADOPT };
	m.u.adopt.uffd_features = cl->u.features;
	rc = request(cl, &m, &cl->u.fd, 1, VMO__WIRE_OK, &r, NULL);
	if (rc)
		goto fail;
	cl->stopfd = eventfd(0, EFD_CLOEXEC);
	if (cl->stopfd < 0) {
		rc = -errno;
		goto fail;
	}
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&cl->th, NULL, watch_main, cl);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		goto fail;
	*out = cl;
	return 0;
fail:
	if (cl->stopfd >= 0)
		close(cl->stopfd);
	if (cl->fd >= 0)
		close(cl->fd);
	vmo__uffd_close(&cl->u);
	pthread_mutex_destroy(&cl->mu);
	pthread_mutex_destroy(&cl->vmu);
	free(cl);
	return rc;
}

VMO_API int vmo_client_close(struct vmo_client *cl)
{
	if (!cl)
		return -EINVAL;
	client_put(cl);
	return 0;
}

VMO_API int vmo_client_list(struct vmo_client *cl, uint64_t *cursor, struct vmo_client_entry *e, size_t n)
{
	if (!cl || !cursor || (!e && n))
		return -EINVAL;
	size_t k = 0;
	while (k < n) {
		struct vmo__wire_msg m = { .type = VMO__WIRE_LIST }, r;
		m.u.list.cursor = *cursor;
		int rc = request(cl, &m, NULL, 0, VMO__WIRE_LIST_OK, &r, NULL);
		if (rc)
			return rc;
		uint32_t i = 0;
		for (; i < r.u.list_ok.n && k < n; i++, k++) {
			snprintf(e[k].name, sizeof e[k].name, "%s", r.u.list_ok.e[i].name);
			e[k].size = r.u.list_ok.e[i].size;
			e[k].page_size = r.u.list_ok.e[i].page_size;
		}
		if (i < r.u.list_ok.n) { /* more than asked for: resume at the first not taken */
			*cursor = m.u.list.cursor + i;
			return (int)k;
		}
		*cursor = r.u.list_ok.next;
		if (!*cursor)
			break;
	}
	return (int)k;
}

VMO_API int vmo_client_clients(struct vmo_client *cl, uint64_t *cursor, struct vmo_client_info *e, size_t n)
{
	if (!cl || !cursor || (!e && n))
		return -EINVAL;
	size_t k = 0;
	while (k < n) {
		struct vmo__wire_msg m = { .type = VMO__WIRE_CLIENTS }, r;
		m.u.list.cursor = *cursor;
		int rc = request(cl, &m, NULL, 0, VMO__WIRE_CLIENTS_OK, &r, NULL);
		if (rc)
			return rc;
		uint32_t i = 0;
		for (; i < r.u.clients_ok.n && k < n; i++, k++) {
			const struct vmo__wire_client *w = &r.u.clients_ok.e[i];
			e[k] = (struct vmo_client_info){ .pid = (pid_t)w->pid, .uid = w->uid, .gid = w->gid,
							 .objects = w->objects, .views = w->views,
							 .requests = w->requests, .faults = w->faults };
		}
		if (i < r.u.clients_ok.n) { /* resume at the first not taken */
			*cursor = m.u.list.cursor + i;
			return (int)k;
		}
		*cursor = r.u.clients_ok.next;
		if (!*cursor)
			break;
	}
	return (int)k;
}

static void stats_from_wire(struct vmo_stats *st, const struct vmo__wire_msg *r)
{
	/* (a server of another version sends fewer or more: what both know) */
	uint64_t v[16] = { 0 };
	for (uint32_t i = 0; i < r->u.stats_ok.n && i < 16; i++)
		v[i] = r->u.stats_ok.v[i];
	_Static_assert(sizeof *st == 8 + sizeof v, "struct vmo_stats: a header and 16 u64");
	memcpy((char *)st + 8, v, sizeof v);
}

VMO_API int vmo_client_server_stats_sized(struct vmo_client *cl, struct vmo_stats *out, size_t size)
{
	if (!cl || !out || size < 8)
		return -EINVAL;
	struct vmo__wire_msg m = { .type = VMO__WIRE_STATS }, r;
	m.u.id.id = 0;
	int rc = request(cl, &m, NULL, 0, VMO__WIRE_STATS_OK, &r, NULL);
	if (rc)
		return rc;
	struct vmo_stats s;
	memset(&s, 0, sizeof s);
	stats_from_wire(&s, &r);
	vmo__sized_out(out, size, &s, sizeof s, VMO_STATS_VERSION);
	return 0;
}

/* ---- the proxy object --------------------------------------------------------------- */

static int px_map(struct vmo_object *o, uint64_t off, size_t len, unsigned flags, void **addr)
{
	struct cobj *c = co(o);
	struct vmo_client *cl = c->cl;
	if ((flags & VMO_PROT_WRITE) && !c->rw) {
		vmo__set_detail("vmo_map: the object was opened read-only (VMO_OPEN_RDONLY)");
		return -EACCES;
	}
	if (atomic_load(&cl->gone))
		return gone_error();
	struct cmap *cm = calloc(1, sizeof *cm);
	if (!cm)
		return -ENOMEM;
	int prot = (flags & VMO_PROT_WRITE) ? PROT_READ | PROT_WRITE : PROT_READ;
	/* Read-only: a private mapping of the read-only descriptor (the kernel
	 * registers no shared mapping the process may not write); the server
	 * maps the object's pages into it, and no write of ours can reach
	 * them (a write would make a private copy). */
	int mflags = c->rw ? MAP_SHARED : MAP_PRIVATE;
	void *hint = NULL;
	if (flags & VMO_MAP_FIXED) {
		hint = *addr;
		mflags |= MAP_FIXED_NOREPLACE;
	}
	void *p = mmap(hint, len, prot, mflags, c->fd, (off_t)off);
	if (p == MAP_FAILED) {
		int err = -errno;
		free(cm);
		return err;
	}
	if ((flags & VMO_MAP_FIXED) && p != hint) {
		munmap(p, len);
		free(cm);
		return -EEXIST;
	}
	madvise(p, len, MADV_DONTFORK); /* a child must never see it turn into zero pages */
	struct vmo__wire_msg m = { .type = VMO__WIRE_ATTACH }, r;
	m.u.attach.id = c->id;
	m.u.attach.addr = (uint64_t)(uintptr_t)p;
	m.u.attach.len = len;
	m.u.attach.off = off;
	m.u.attach.prot = flags & (VMO_PROT_READ | VMO_PROT_WRITE);
	/* In the list first: if the server dies while attaching, the watcher
	 * wakes this range too. */
	cm->obj = o;
	cm->addr = (uintptr_t)p;
	cm->len = len;
	pthread_mutex_lock(&cl->vmu);
	cm->next = cl->maps;
	cl->maps = cm;
	pthread_mutex_unlock(&cl->vmu);
	int rc = request(cl, &m, NULL, 0, VMO__WIRE_OK, &r, NULL);
	if (rc) {
		pthread_mutex_lock(&cl->vmu);
		for (struct cmap **pm = &cl->maps; *pm; pm = &(*pm)->next)
			if (*pm == cm) {
				*pm = cm->next;
				break;
			}
		pthread_mutex_unlock(&cl->vmu);
		munmap(p, len);
		free(cm);
		return rc;
	}
	/* The mapping holds the object (and through it the connection): the
	 * object is closed on the server only once no mapping of it is left
	 * (the server would unregister a range still mapped here). */
	vmo_object_ref(o);
	*addr = p;
	return 0;
}

static int px_unmap(struct vmo_object *o, void *addr, size_t len)
{
	struct cobj *c = co(o);
	struct vmo_client *cl = c->cl;
	struct cmap *cm = NULL;
	pthread_mutex_lock(&cl->vmu);
	for (struct cmap **pm = &cl->maps; *pm; pm = &(*pm)->next)
		if ((*pm)->obj == o && (*pm)->addr == (uintptr_t)addr && (*pm)->len == len) {
			cm = *pm;
			*pm = cm->next;
			break;
		}
	pthread_mutex_unlock(&cl->vmu);
	if (!cm)
		return -EINVAL;
	/* Inaccessible first, as a local unmap: between the server's
	 * unregister and our munmap a touch would put a zero page in the
	 * object. */
	mprotect(addr, len, PROT_NONE);
	if (!atomic_load(&cl->gone)) {
		struct vmo__wire_msg m = { .type = VMO__WIRE_DETACH }, r;
		m.u.detach.id = c->id;
		m.u.detach.addr = (uint64_t)(uintptr_t)addr;
		m.u.detach.len = len;
		int rc = request(cl, &m, NULL, 0, VMO__WIRE_OK, &r, NULL);
		if (rc && rc != -ECONNRESET)
			vmo__debug("client: DETACH: %s", vmo_last_error_detail());
	}
	munmap(addr, len);
	free(cm);
	vmo_object_unref(o);
	return 0;
}

static int px_range(struct vmo_object *o, int what, uint64_t off, uint64_t len, unsigned flags)
{
	struct cobj *c = co(o);
	if (what == VMO__RANGE_DISCARD && !c->rw) {
		vmo__set_detail("vmo_discard: the object was opened read-only");
		return -EACCES;
	}
	struct vmo__wire_msg m = { .type = what == VMO__RANGE_SYNC     ? VMO__WIRE_SYNC
					  : what == VMO__RANGE_RETURN ? VMO__WIRE_RETURN
								      : VMO__WIRE_DISCARD },
			     r;
	m.u.range.id = c->id;
	m.u.range.off = off;
	m.u.range.len = len;
	m.u.range.flags = flags;
	return request(c->cl, &m, NULL, 0, VMO__WIRE_OK, &r, NULL);
}

static int px_stats(struct vmo_object *o, struct vmo_stats *st)
{
	struct cobj *c = co(o);
	struct vmo__wire_msg m = { .type = VMO__WIRE_STATS }, r;
	m.u.id.id = c->id;
	int rc = request(c->cl, &m, NULL, 0, VMO__WIRE_STATS_OK, &r, NULL);
	if (!rc)
		stats_from_wire(st, &r);
	return rc;
}

static void px_release(struct vmo_object *o)
{
	struct cobj *c = co(o);
	struct vmo_client *cl = c->cl;
	if (!atomic_load(&cl->gone)) {
		struct vmo__wire_msg m = { .type = VMO__WIRE_CLOSE }, r;
		m.u.id.id = c->id;
		request(cl, &m, NULL, 0, VMO__WIRE_OK, &r, NULL);
	}
	close(c->fd);
	free(c);
	free(o);
	client_put(cl);
}

static const struct vmo__proxy_ops proxy_ops = {
	.map = px_map,
	.unmap = px_unmap,
	.range = px_range,
	.stats = px_stats,
	.release = px_release,
};

VMO_API int vmo_client_open(struct vmo_client *cl, const char *name, unsigned flags, uint64_t size,
			    size_t page_size, struct vmo_object **out)
{
	if (!cl || !name || !out || (flags & ~(VMO_OPEN_RDWR | VMO_OPEN_CREATE | VMO_OPEN_CACHE)))
		return -EINVAL;
	size_t nl = strlen(name);
	if (!vmo__wire_name_ok(name, nl)) {
		vmo__set_detail("vmo_client_open: name \"%.40s\" is not 1-255 bytes of [A-Za-z0-9._-]", name);
		return -EINVAL;
	}
	if (size >= VMO__WIRE_OFF_LIMIT || (page_size && (page_size < VMO_PAGE || page_size > (2u << 20) ||
							   (page_size & (page_size - 1))))) {
		vmo__set_detail("vmo_client_open: size or page_size out of range");
		return -EINVAL;
	}
	struct vmo__wire_msg m = { .type = VMO__WIRE_OPEN }, r;
	m.u.open.flags = (flags & VMO_OPEN_RDWR ? VMO__WIRE_O_RDWR : VMO__WIRE_O_RDONLY) |
			 (flags & VMO_OPEN_CREATE ? VMO__WIRE_O_CREATE : 0) | (flags & VMO_OPEN_CACHE ? VMO__WIRE_O_CACHE : 0);
	m.u.open.size = size;
	m.u.open.page_size = (uint32_t)page_size;
	memcpy(m.u.open.name, name, nl + 1);
	int fd = -1;
	int rc = request(cl, &m, NULL, 0, VMO__WIRE_OPEN_OK, &r, &fd);
	if (rc)
		return rc;
	struct vmo_object *o = calloc(1, sizeof *o);
	struct cobj *c = calloc(1, sizeof *c);
	if (!o || !c || fd < 0) {
		free(o);
		free(c);
		if (fd >= 0)
			close(fd);
		return fd < 0 ? -EPROTO : -ENOMEM;
	}
	c->cl = cl;
	c->id = r.u.open_ok.id;
	c->fd = fd;
	c->rw = r.u.open_ok.flags & VMO__WIRE_O_RDWR;
	o->proxy = &proxy_ops;
	o->ctx = c;
	o->memfd = -1;
	o->size = r.u.open_ok.size;
	o->page_size = r.u.open_ok.page_size;
	o->page_shift = (uint32_t)__builtin_ctz(o->page_size);
	o->npages = o->size >> o->page_shift;
	atomic_store(&o->urefs, 1);
	atomic_store(&o->refs, 1);
	atomic_fetch_add(&cl->refs, 1);
	*out = o;
	return 0;
}

/* ---- a cache whose blocks the server holds ------------------------------------------- */

struct ccache {
	struct vmo_client *cl;
	pthread_mutex_t mu; /* the window: one block in flight */
	char *win;
	size_t winlen;
};

static int cc_yield(void *ctx, uint64_t id, void *addr, size_t len)
{
	struct ccache *cc = ctx;
	if (len > cc->winlen) {
		vmo__set_detail("a block through the server is at most the window (%zu bytes)", cc->winlen);
		return -EINVAL;
	}
	pthread_mutex_lock(&cc->mu);
	memcpy(cc->win, addr, len);
	struct vmo__wire_msg m = { .type = VMO__WIRE_CACHE_YIELD }, r;
	m.u.block = (struct vmo__wire_block){ .id = id, .off = 0, .len = len };
	int rc = request(cc->cl, &m, NULL, 0, VMO__WIRE_OK, &r, NULL);
	pthread_mutex_unlock(&cc->mu);
	if (!rc)
		memset(addr, 0, len); /* as the local cache: the range reads zeros */
	return rc;
}

static int cc_get(void *ctx, uint64_t id, void *addr, size_t len)
{
	struct ccache *cc = ctx;
	if (len > cc->winlen) {
		vmo__set_detail("a block through the server is at most the window (%zu bytes)", cc->winlen);
		return -EINVAL;
	}
	pthread_mutex_lock(&cc->mu);
	struct vmo__wire_msg m = { .type = VMO__WIRE_CACHE_GET }, r;
	m.u.block = (struct vmo__wire_block){ .id = id, .off = 0, .len = len };
	int rc = request(cc->cl, &m, NULL, 0, VMO__WIRE_OK, &r, NULL);
	if (!rc)
		memcpy(addr, cc->win, len);
	pthread_mutex_unlock(&cc->mu);
	return rc;
}

static int cc_forget(void *ctx, uint64_t id, bool all)
{
	struct ccache *cc = ctx;
	struct vmo__wire_msg m = { .type = VMO__WIRE_CACHE_FORGET }, r;
	m.u.forget = (struct vmo__wire_forget){ .id = all ? 0 : id, .all = all };
	return request(cc->cl, &m, NULL, 0, VMO__WIRE_OK, &r, NULL);
}

static int cc_stats(void *ctx, struct vmo_cache_stats *st)
{
	struct ccache *cc = ctx;
	struct vmo__wire_msg m = { .type = VMO__WIRE_CACHE_STATS }, r;
	int rc = request(cc->cl, &m, NULL, 0, VMO__WIRE_STATS_OK, &r, NULL);
	if (rc)
		return rc;
	size_t n = (sizeof *st - 8) / 8;
	if (r.u.stats_ok.n < n)
		n = r.u.stats_ok.n;
	memcpy((char *)st + 8, r.u.stats_ok.v, n * 8);
	return 0;
}

static void cc_destroy(void *ctx)
{
	struct ccache *cc = ctx;
	munmap(cc->win, cc->winlen);
	pthread_mutex_destroy(&cc->mu);
	client_put(cc->cl);
	free(cc);
}

static const struct vmo__cache_proxy_ops cache_proxy_ops = {
	.yield = cc_yield,
	.get = cc_get,
	.forget = cc_forget,
	.stats = cc_stats,
	.destroy = cc_destroy,
};

VMO_API int vmo_cache_connect(const char *path, size_t window, struct vmo_cache **out)
{
	if (!out || (window & (VMO_PAGE - 1)) || window > (1u << 30))
		return -EINVAL;
	if (!window)
		window = 4u << 20;
	struct vmo_client *cl;
	int rc = vmo_client_connect(path, &cl);
	if (rc)
		return rc;
	struct ccache *cc = calloc(1, sizeof *cc);
	int fd = memfd_create("vmo-cache-window", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (!cc || fd < 0) {
		rc = fd < 0 ? -errno : -ENOMEM;
		goto fail;
	}
	if (ftruncate(fd, (off_t)window) < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
		rc = -errno;
		goto fail;
	}
	cc->win = mmap(NULL, window, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (cc->win == MAP_FAILED) {
		rc = -errno;
		goto fail;
	}
	cc->winlen = window;
	cc->cl = cl;
	pthread_mutex_init(&cc->mu, NULL);
	struct vmo__wire_msg m = { .type = VMO__WIRE_CACHE_OPEN }, r;
	m.u.cache_open.window = window;
	rc = request(cl, &m, &fd, 1, VMO__WIRE_OK, &r, NULL);
	close(fd);
	fd = -1;
	if (rc)
		goto fail_map;
	*out = vmo__cache_proxy_new(&cache_proxy_ops, cc);
	if (!*out) {
		rc = -ENOMEM;
		goto fail_map;
	}
	return 0;
fail_map:
	munmap(cc->win, window);
	pthread_mutex_destroy(&cc->mu);
fail:
	if (fd >= 0)
		close(fd);
	free(cc);
	vmo_client_close(cl);
	return rc;
}
