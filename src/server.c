/* SPDX-License-Identifier: MIT */
/* server.c - serving objects to other processes (docs/server.md): the
 * listening socket, one thread per client, the published objects.
 *
 * A client says HELLO, hands over its userfaultfd (ADOPT: the engine adopts
 * it as an address space, space.h), opens objects by name (OPEN: checked
 * against its SO_PEERCRED credentials and the object's owner and mode; the
 * reply carries the object's memfd, or for a read-only open a descriptor
 * the client cannot write through), maps them and attaches each mapping as
 * a view (ATTACH: checked against /proc/PID/maps), and asks for sync,
 * return, discard and stats.  Its connection ending, for whatever reason,
 * closes its space: the views are retired (left registered: the process, if
 * alive, keeps its userfaultfd and serves what remains itself, client.c),
 * its handles dropped, and nothing of it stays in the server.
 *
 * Nothing a client sends is trusted: wire.c checks every message, and here
 * every id, range and address is checked against what this client opened,
 * may access and has mapped, before anything acts on it. */
#include "core.h"
#include "wire.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_MAX_CLIENTS 256
#define DEFAULT_MAX_OBJECTS 1024
#define NSTATS 16 /* u64 fields of struct vmo_stats after its header */

struct pub {
	struct pub *next;
	char name[VMO__WIRE_NAME_MAX + 1];
	struct vmo_object *obj;
	uid_t uid;
	gid_t gid;
	unsigned mode;
	bool close_idle; /* VMO_PUBLISH_CLOSE_IDLE */
	bool listed;     /* in srv->pubs */
	bool closing;    /* close_idle, last handle gone: being released */
	int rofd;        /* read-only descriptor of the memfd, for read-only opens */
	int handles;     /* clients' handles on it */
	long refs;       /* the list's, one per handle (under srv->mu) */
};

struct handle {
	struct handle *next;
	uint64_t id;
	struct pub *p;
	bool rw;
};

struct cview { /* a view the client attached */
	struct cview *next;
	uint64_t id;
	uintptr_t addr;
	size_t len;
};

struct ucache { /* the yield cache of one user */
	struct ucache *next;
	uid_t uid;
	struct vmo_cache *c;
};

struct conn {
	struct vmo_server *srv;
	char *win; /* the client's cache window, mapped */
	size_t winlen;
	struct conn *next;
	int fd;
	pthread_t th;
	struct ucred cred;
	bool hello;
	struct vmo__space *sp;
	struct handle *handles;
	_Atomic unsigned nhandles;
	uint64_t next_id;
	struct cview *views;
	_Atomic unsigned nviews;
	_Atomic uint64_t requests;
	/* faults of a closed space (its count, kept when it closed); sp is
	 * set and closed under srv->mu, so that do_clients may read another
	 * connection's space there */
	uint64_t faults;
	bool sp_closed;
	_Atomic bool done;
};

struct vmo_server {
	struct vmo_engine *eng;
	struct vmo_server_opts opts;
	char *path; /* the socket file we made, unlinked at the end */
	int lfd, stopfd;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* a closing pub went */
	struct pub *pubs;
	struct vmo_cache_opts cache_opts;
	bool cache;
	struct ucache *caches;
	struct conn *conns;
	unsigned nconns;
	bool stopping;
};

/* ---- published objects ---------------------------------------------------- */

static struct pub *pub_find(struct vmo_server *srv, const char *name)
{
	for (struct pub *p = srv->pubs; p; p = p->next)
		if (!strcmp(p->name, name))
			return p;
	return NULL;
}

static void pub_unlist(struct vmo_server *srv, struct pub *p)
{
	for (struct pub **pp = &srv->pubs; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			p->listed = false;
			return;
		}
}

/* Drop a reference (srv->mu held; let go and taken again around the
 * object's release, which writes back). */
static void pub_put(struct vmo_server *srv, struct pub *p)
{
	if (--p->refs > 0)
		return;
	pthread_mutex_unlock(&srv->mu);
	vmo_object_unref(p->obj);
	if (p->rofd >= 0)
		close(p->rofd);
	pthread_mutex_lock(&srv->mu);
	if (p->listed) /* (a closing pub stays listed until its data is out) */
		pub_unlist(srv, p);
	free(p);
	pthread_cond_broadcast(&srv->cv);
}

VMO_API int vmo_server_publish(struct vmo_server *srv, const char *name, struct vmo_object *obj, uid_t uid,
			       gid_t gid, unsigned mode)
{
	if (!srv || !name || !obj || (mode & ~(0666u | VMO_PUBLISH_CLOSE_IDLE)))
		return -EINVAL;
	if (!vmo__wire_name_ok(name, strlen(name))) {
		vmo__set_detail("vmo_server_publish: name \"%.40s\" is not 1-255 bytes of [A-Za-z0-9._-] "
				"(nor \".\" or \"..\")",
				name);
		return -EINVAL;
	}
	if (obj->proxy || obj->eng != srv->eng) {
		vmo__set_detail("vmo_server_publish: the object is not one of the server's engine");
		return -EINVAL;
	}
	struct pub *p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	snprintf(p->name, sizeof p->name, "%s", name);
	p->obj = obj;
	p->uid = uid;
	p->gid = gid;
	p->mode = mode & 0666u;
	p->close_idle = mode & VMO_PUBLISH_CLOSE_IDLE;
	p->rofd = -1;
	p->refs = 1;
	p->listed = true;
	/* Clients get descriptors of the memfd: none may shrink it under the
	 * other processes' mappings (SIGBUS there, data gone), and one opened
	 * read-only may not reopen it for writing through /proc/self/fd: the
	 * file is the server's, mode 0600 (docs/server.md, trust). */
	if (fcntl(obj->memfd, F_ADD_SEALS, F_SEAL_SHRINK) < 0 && errno != EPERM)
		vmo__warn("publish %s: sealing the memfd against shrinking: %s", name, strerror(errno));
	if (fchmod(obj->memfd, 0600) < 0)
		vmo__warn("publish %s: fchmod of the memfd: %s", name, strerror(errno));
	pthread_mutex_lock(&srv->mu);
	if (pub_find(srv, name)) {
		pthread_mutex_unlock(&srv->mu);
		free(p);
		vmo__set_detail("vmo_server_publish: \"%s\" is published already", name);
		return -EEXIST;
	}
	vmo_object_ref(obj);
	p->next = srv->pubs;
	srv->pubs = p;
	pthread_mutex_unlock(&srv->mu);
	return 0;
}

VMO_API int vmo_server_unpublish(struct vmo_server *srv, const char *name)
{
	if (!srv || !name)
		return -EINVAL;
	pthread_mutex_lock(&srv->mu);
	struct pub *p = pub_find(srv, name);
	if (!p || p->closing) {
		pthread_mutex_unlock(&srv->mu);
		return -ENOENT;
	}
	pub_unlist(srv, p);
	pub_put(srv, p);
	pthread_mutex_unlock(&srv->mu);
	return 0;
}

VMO_API int vmo_server_object_clients(struct vmo_server *srv, const char *name)
{
	if (!srv || !name)
		return -EINVAL;
	pthread_mutex_lock(&srv->mu);
	struct pub *p = pub_find(srv, name);
	int n = p && !p->closing ? p->handles : -ENOENT;
	pthread_mutex_unlock(&srv->mu);
	return n;
}

/* May a client with cred open p for reading (and writing)? */
static bool allowed(const struct pub *p, const struct ucred *cred, bool rw)
{
	if (cred->uid == 0)
		return true;
	unsigned bits = cred->uid == p->uid ? p->mode >> 6 : cred->gid == p->gid ? p->mode >> 3 : p->mode;
	unsigned need = rw ? 6 : 4;
	return (bits & need) == need;
}

/* ---- one client ------------------------------------------------------------- */

static int reply_error(struct conn *c, uint32_t seq, int err, const char *what)
{
	struct vmo__wire_msg r;
	const char *d = vmo_last_error_detail();
	if (d && *d)
		vmo__wire_make_error(&r, seq, err, "%s: %s", what, d);
	else
		vmo__wire_make_error(&r, seq, err, "%s: %s", what, vmo_strerror(err));
	return vmo__wire_send(c->fd, &r, NULL, 0);
}

static int reply_ok(struct conn *c, uint32_t seq, uint64_t val)
{
	struct vmo__wire_msg r = { .type = VMO__WIRE_OK, .seq = seq };
	r.u.ok.val = val;
	return vmo__wire_send(c->fd, &r, NULL, 0);
}

static struct handle *handle_find(struct conn *c, uint64_t id)
{
	for (struct handle *h = c->handles; h; h = h->next)
		if (h->id == id)
			return h;
	return NULL;
}

static int do_hello(struct conn *c, const struct vmo__wire_msg *m)
{
	int v = vmo__wire_negotiate(m->u.hello.min_version, m->u.hello.max_version);
	if (v < 0)
		return reply_error(c, m->seq, v, "HELLO");
	struct vmo__wire_msg r = { .type = VMO__WIRE_HELLO_OK, .seq = m->seq };
	r.u.hello_ok.version = (uint16_t)v;
	r.u.hello_ok.max_fds = VMO__WIRE_MAX_FDS;
	r.u.hello_ok.max_msg = VMO__WIRE_MAX;
	r.u.hello_ok.features = 0;
	r.u.hello_ok.list_max = VMO__WIRE_LIST_MAX;
	r.u.hello_ok.max_objects = c->srv->opts.max_objects;
	c->hello = true;
	return vmo__wire_send(c->fd, &r, NULL, 0);
}

/* The listed pub of that name with a reference, waiting out one being
 * released; NULL if none.  srv->mu held. */
static struct pub *pub_get(struct vmo_server *srv, const char *name)
{
	for (;;) {
		struct pub *p = pub_find(srv, name);
		if (!p)
			return NULL;
		if (!p->closing) {
			p->refs++;
			return p;
		}
		pthread_cond_wait(&srv->cv, &srv->mu);
	}
}

static int do_open(struct conn *c, const struct vmo__wire_msg *m)
{
	struct vmo_server *srv = c->srv;
	const struct vmo__wire_open *o = &m->u.open;
	bool rw = o->flags & VMO__WIRE_O_RDWR;
	if (atomic_load(&c->nhandles) >= srv->opts.max_objects) {
		vmo__set_detail("this client has %u objects open, the server's limit", atomic_load(&c->nhandles));
		return reply_error(c, m->seq, -EMFILE, "OPEN");
	}
	pthread_mutex_lock(&srv->mu);
	struct pub *p = pub_get(srv, o->name);
	pthread_mutex_unlock(&srv->mu);
	if (!p && srv->opts.open) {
		struct vmo_open_request req = {
			.name = o->name,
			.flags = (rw ? VMO_OPEN_RDWR : 0) | (o->flags & VMO__WIRE_O_CREATE ? VMO_OPEN_CREATE : 0) |
				 (o->flags & VMO__WIRE_O_CACHE ? VMO_OPEN_CACHE : 0),
			.size = o->size,
			.page_size = o->page_size,
			.uid = c->cred.uid,
			.gid = c->cred.gid,
			.pid = c->cred.pid,
		};
		vmo__clear_detail();
		int rc = srv->opts.open(srv->opts.arg, srv, &req);
		if (rc && rc != -EEXIST) /* (EEXIST: another client's open made it) */
			return reply_error(c, m->seq, rc < 0 ? rc : -EIO, "OPEN");
		pthread_mutex_lock(&srv->mu);
		p = pub_get(srv, o->name);
		pthread_mutex_unlock(&srv->mu);
	}
	if (!p) {
		vmo__set_detail("no object \"%s\" on this server", o->name);
		return reply_error(c, m->seq, -ENOENT, "OPEN");
	}
	int err = 0, fd = p->obj->memfd;
	if (!allowed(p, &c->cred, rw)) {
		vmo__set_detail("\"%s\" (owner %u, group %u, mode %03o) may not be opened %s by uid %u", o->name,
				(unsigned)p->uid, (unsigned)p->gid, p->mode, rw ? "for writing" : "for reading",
				(unsigned)c->cred.uid);
		err = -EACCES;
	} else if (!rw) {
		/* A read-only client gets a descriptor opened read-only: it can
		 * neither map it shared-writable nor mprotect its mapping so. */
		pthread_mutex_lock(&srv->mu);
		if (p->rofd < 0) {
			char path[64];
			snprintf(path, sizeof path, "/proc/self/fd/%d", p->obj->memfd);
			p->rofd = open(path, O_RDONLY | O_CLOEXEC);
			if (p->rofd < 0) {
				err = -errno;
				vmo__set_detail("reopening the object's memfd read-only (%s): %s", path, strerror(errno));
			}
		}
		fd = p->rofd;
		pthread_mutex_unlock(&srv->mu);
	}
	struct handle *h = err ? NULL : calloc(1, sizeof *h);
	if (!err && !h)
		err = -ENOMEM;
	if (err) {
		pthread_mutex_lock(&srv->mu);
		pub_put(srv, p);
		pthread_mutex_unlock(&srv->mu);
		return reply_error(c, m->seq, err, "OPEN");
	}
	h->id = ++c->next_id;
	h->p = p;
	h->rw = rw;
	h->next = c->handles;
	c->handles = h;
	c->nhandles++;
	pthread_mutex_lock(&srv->mu);
	p->handles++;
	pthread_mutex_unlock(&srv->mu);
	struct vmo__wire_msg r = { .type = VMO__WIRE_OPEN_OK, .seq = m->seq };
	r.u.open_ok.id = h->id;
	r.u.open_ok.size = p->obj->size;
	r.u.open_ok.page_size = p->obj->page_size;
	r.u.open_ok.flags = rw ? VMO__WIRE_O_RDWR : VMO__WIRE_O_RDONLY;
	return vmo__wire_send(c->fd, &r, &fd, 1);
}

static int do_adopt(struct conn *c, const struct vmo__wire_msg *m, int fd)
{
	if (c->sp) {
		close(fd);
		vmo__set_detail("this client's userfaultfd was adopted already");
		return reply_error(c, m->seq, -EALREADY, "ADOPT");
	}
	struct vmo__space *sp;
	int rc = vmo__space_adopt(&c->srv->eng->spaces, fd, m->u.adopt.uffd_features, c->cred.pid, &sp);
	if (rc) {
		close(fd);
		return reply_error(c, m->seq, rc, "ADOPT");
	}
	pthread_mutex_lock(&c->srv->mu);
	c->sp = sp;
	pthread_mutex_unlock(&c->srv->mu);
	return reply_ok(c, m->seq, 0);
}

/* Is [addr, addr+len) of process pid one mapping of the file st at offset
 * off, shared or private as said?  A check against honest mistakes (the
 * client could change its mappings right after): a wrong range could only
 * ever hurt the client itself, whose own memory it is. */
static int check_mapping(pid_t pid, uintptr_t addr, size_t len, uint64_t off, const struct stat *st, bool shared)
{
	char path[64], line[512];
	snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f) {
		/* (not ours to read: a server that is not root serving another
		 * user; the check is for mistakes, go without it) */
		vmo__debug("server: %s: %s; the mapping is not checked", path, strerror(errno));
		return 0;
	}
	int rc = -EINVAL;
	while (fgets(line, sizeof line, f)) {
		unsigned long long a, b, o, ino;
		unsigned maj, min;
		char perms[8];
		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu", &a, &b, perms, &o, &maj, &min, &ino) != 7)
			continue;
		if (addr < a || addr >= b)
			continue;
		if (addr + len <= b && ino == st->st_ino && makedev(maj, min) == st->st_dev &&
		    o + (addr - a) == off && perms[3] == (shared ? 's' : 'p'))
			rc = 0;
		break;
	}
	fclose(f);
	if (rc)
		vmo__set_detail("[%#lx, +%#zx) of process %d is not a %s mapping of the object at offset %#llx",
				(unsigned long)addr, len, (int)pid, shared ? "shared" : "private",
				(unsigned long long)off);
	return rc;
}

static int do_attach(struct conn *c, const struct vmo__wire_msg *m)
{
	const struct vmo__wire_attach *a = &m->u.attach;
	if (!c->sp) {
		vmo__set_detail("ADOPT first");
		return reply_error(c, m->seq, -EPROTO, "ATTACH");
	}
	struct handle *h = handle_find(c, a->id);
	if (!h) {
		vmo__set_detail("no object %llu open on this connection", (unsigned long long)a->id);
		return reply_error(c, m->seq, -EBADF, "ATTACH");
	}
	struct vmo_object *obj = h->p->obj;
	uint64_t end;
	if ((a->off | a->len | a->addr) & (obj->page_size - 1) || !vmo__add_ok(a->off, a->len, &end) ||
	    end > obj->size) {
		vmo__set_detail("range [%#llx, +%#llx) at %#llx: not within the object or not aligned to its page "
				"size",
				(unsigned long long)a->off, (unsigned long long)a->len, (unsigned long long)a->addr);
		return reply_error(c, m->seq, -EINVAL, "ATTACH");
	}
	bool write = a->prot & VMO_PROT_WRITE;
	if (write && !h->rw) {
		vmo__set_detail("the object was opened read-only");
		return reply_error(c, m->seq, -EACCES, "ATTACH");
	}
	struct stat st;
	if (fstat(obj->memfd, &st) < 0)
		return reply_error(c, m->seq, -errno, "ATTACH");
	int rc = check_mapping(c->cred.pid, (uintptr_t)a->addr, (size_t)a->len, a->off, &st, h->rw);
	if (rc)
		return reply_error(c, m->seq, rc, "ATTACH");
	struct cview *v = calloc(1, sizeof *v);
	if (!v)
		return reply_error(c, m->seq, -ENOMEM, "ATTACH");
	unsigned flags = (a->prot & (VMO_PROT_READ | VMO_PROT_WRITE)) | (h->rw ? 0 : VMO__VIEW_PRIVATE);
	struct vmo_map *vm;
	rc = vmo__view_attach(c->sp, obj, (uintptr_t)a->addr, (size_t)a->len, a->off, flags, obj->track && write,
			      &vm);
	if (rc) {
		free(v);
		if (rc == -EBUSY)
			vmo__set_detail("the range is registered with a userfaultfd already");
		return reply_error(c, m->seq, rc, "ATTACH");
	}
	v->id = h->id;
	v->addr = (uintptr_t)a->addr;
	v->len = (size_t)a->len;
	v->next = c->views;
	c->views = v;
	atomic_fetch_add(&c->nviews, 1);
	return reply_ok(c, m->seq, 0);
}

/* Detach a view of the client (its own munmap may have retired it
 * already: then there is nothing to take). */
static void view_drop(struct conn *c, struct cview *v, struct vmo_object *obj)
{
	struct vmo_map *vm = vmo__view_take(c->sp, obj, v->addr, v->len);
	if (vm) {
		vmo__view_quiesce(vm);
		vmo__view_detach(vm);
	}
}

static int do_detach(struct conn *c, const struct vmo__wire_msg *m)
{
	const struct vmo__wire_detach *d = &m->u.detach;
	struct handle *h = handle_find(c, d->id);
	for (struct cview **pv = &c->views; h && *pv; pv = &(*pv)->next) {
		struct cview *v = *pv;
		if (v->id != d->id || v->addr != d->addr || v->len != d->len)
			continue;
		*pv = v->next;
		view_drop(c, v, h->p->obj);
		free(v);
		atomic_fetch_sub(&c->nviews, 1);
		return reply_ok(c, m->seq, 0);
	}
	vmo__set_detail("no view [%#llx, +%#llx) of object %llu on this connection", (unsigned long long)d->addr,
			(unsigned long long)d->len, (unsigned long long)d->id);
	return reply_error(c, m->seq, -ENOENT, "DETACH");
}

static int do_range(struct conn *c, const struct vmo__wire_msg *m)
{
	const struct vmo__wire_range *r = &m->u.range;
	const char *what = vmo__wire_type_name(m->type);
	struct handle *h = handle_find(c, r->id);
	if (!h) {
		vmo__set_detail("no object %llu open on this connection", (unsigned long long)r->id);
		return reply_error(c, m->seq, -EBADF, what);
	}
	int rc;
	vmo__clear_detail();
	if (m->type == VMO__WIRE_SYNC) {
		rc = vmo_sync_range(h->p->obj, r->off, r->len, r->flags);
	} else if (m->type == VMO__WIRE_RETURN) {
		rc = vmo_return_range(h->p->obj, r->off, r->len, r->flags);
	} else if (!h->rw) {
		vmo__set_detail("the object was opened read-only: discarding drops its data");
		rc = -EACCES;
	} else {
		rc = vmo_discard_range(h->p->obj, r->off, r->len, r->flags);
	}
	return rc ? reply_error(c, m->seq, rc, what) : reply_ok(c, m->seq, 0);
}

static int do_stats(struct conn *c, const struct vmo__wire_msg *m)
{
	struct vmo_stats st;
	int rc;
	if (m->u.id.id == 0) {
		rc = vmo_engine_stats(c->srv->eng, &st);
	} else {
		struct handle *h = handle_find(c, m->u.id.id);
		if (!h) {
			vmo__set_detail("no object %llu open on this connection", (unsigned long long)m->u.id.id);
			return reply_error(c, m->seq, -EBADF, "STATS");
		}
		rc = vmo_object_stats(h->p->obj, &st);
	}
	if (rc)
		return reply_error(c, m->seq, rc, "STATS");
	struct vmo__wire_msg r = { .type = VMO__WIRE_STATS_OK, .seq = m->seq };
	r.u.stats_ok.id = m->u.id.id;
	r.u.stats_ok.n = NSTATS;
	_Static_assert(sizeof st == 8 + NSTATS * 8, "struct vmo_stats: a header and NSTATS u64");
	memcpy(r.u.stats_ok.v, (const char *)&st + 8, NSTATS * 8);
	return vmo__wire_send(c->fd, &r, NULL, 0);
}

/* Drop handle h and the views through it. */
static void handle_close(struct conn *c, struct handle *h)
{
	struct vmo_server *srv = c->srv;
	for (struct cview **pv = &c->views; *pv;) {
		struct cview *v = *pv;
		if (v->id != h->id) {
			pv = &v->next;
			continue;
		}
		*pv = v->next;
		if (c->sp)
			view_drop(c, v, h->p->obj);
		free(v);
		atomic_fetch_sub(&c->nviews, 1);
	}
	for (struct handle **ph = &c->handles; *ph; ph = &(*ph)->next)
		if (*ph == h) {
			*ph = h->next;
			break;
		}
	c->nhandles--;
	struct pub *p = h->p;
	free(h);
	pthread_mutex_lock(&srv->mu);
	if (--p->handles == 0 && p->close_idle && p->listed && !p->closing) {
		/* Kept listed, closing, until its data is written back: an open
		 * of the name meanwhile waits, then gets a new object that
		 * reads what this one wrote. */
		p->closing = true;
		p->refs--; /* the list's */
	}
	pub_put(srv, p);
	pthread_mutex_unlock(&srv->mu);
}

static int do_close(struct conn *c, const struct vmo__wire_msg *m)
{
	struct handle *h = handle_find(c, m->u.id.id);
	if (!h) {
		vmo__set_detail("no object %llu open on this connection", (unsigned long long)m->u.id.id);
		return reply_error(c, m->seq, -EBADF, "CLOSE");
	}
	handle_close(c, h);
	return reply_ok(c, m->seq, 0);
}

static int do_list(struct conn *c, const struct vmo__wire_msg *m)
{
	struct vmo_server *srv = c->srv;
	struct vmo__wire_msg r = { .type = VMO__WIRE_LIST_OK, .seq = m->seq };
	uint64_t pos = 0, start = m->u.list.cursor;
	pthread_mutex_lock(&srv->mu);
	for (struct pub *p = srv->pubs; p; p = p->next) {
		if (p->closing || !allowed(p, &c->cred, false))
			continue;
		if (pos++ < start)
			continue;
		if (r.u.list_ok.n == VMO__WIRE_LIST_MAX) {
			r.u.list_ok.next = pos - 1;
			break;
		}
		struct vmo__wire_entry *e = &r.u.list_ok.e[r.u.list_ok.n++];
		e->size = p->obj->size;
		e->page_size = p->obj->page_size;
		snprintf(e->name, sizeof e->name, "%s", p->name);
	}
	pthread_mutex_unlock(&srv->mu);
	return vmo__wire_send(c->fd, &r, NULL, 0);
}

/* ---- the yield cache ------------------------------------------------------------- */

static struct vmo_cache *user_cache(struct conn *c, int *err)
{
	struct vmo_server *srv = c->srv;
	pthread_mutex_lock(&srv->mu);
	struct ucache *u = srv->caches;
	while (u && u->uid != c->cred.uid)
		u = u->next;
	if (!u && (u = calloc(1, sizeof *u))) {
		u->uid = c->cred.uid;
		*err = vmo_cache_create(&srv->cache_opts, &u->c);
		if (*err) {
			free(u);
			u = NULL;
		} else {
			u->next = srv->caches;
			srv->caches = u;
		}
	} else if (!u) {
		*err = -ENOMEM;
	}
	pthread_mutex_unlock(&srv->mu);
	return u ? u->c : NULL;
}

static int do_cache(struct conn *c, const struct vmo__wire_msg *m, int fd)
{
	const char *what = vmo__wire_type_name(m->type);
	if (!c->srv->cache) {
		if (fd >= 0)
			close(fd);
		vmo__set_detail("this server serves no yield cache");
		return reply_error(c, m->seq, -EOPNOTSUPP, what);
	}
	if (m->type == VMO__WIRE_CACHE_OPEN) {
		/* The window must stay as long as we map it: sealed against
		 * shrinking (else a client's ftruncate is our SIGBUS). */
		struct stat st;
		int seals = fcntl(fd, F_GET_SEALS);
		int err = 0;
		if (c->win)
			err = -EALREADY;
		else if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size < m->u.cache_open.window ||
			 seals < 0 || !(seals & F_SEAL_SHRINK))
			err = -EINVAL;
		void *p = err ? MAP_FAILED
			      : mmap(NULL, m->u.cache_open.window, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
		if (!err && p == MAP_FAILED)
			err = -errno;
		if (err) {
			vmo__set_detail("the cache window must be a memfd of at least %llu bytes sealed with "
					"F_SEAL_SHRINK, given once",
					(unsigned long long)m->u.cache_open.window);
			return reply_error(c, m->seq, err, what);
		}
		c->win = p;
		c->winlen = (size_t)m->u.cache_open.window;
		return reply_ok(c, m->seq, 0);
	}
	if (!c->win) {
		vmo__set_detail("CACHE_OPEN first");
		return reply_error(c, m->seq, -EPROTO, what);
	}
	int err = 0;
	struct vmo_cache *uc = user_cache(c, &err);
	if (!uc)
		return reply_error(c, m->seq, err, what);
	const struct vmo__wire_block *b = &m->u.block;
	int rc;
	switch (m->type) {
	case VMO__WIRE_CACHE_YIELD:
	case VMO__WIRE_CACHE_GET:
		if (b->off > c->winlen || b->len > c->winlen - b->off) {
			vmo__set_detail("[%#llx, +%#llx) is not within the window of %zu bytes", (unsigned long long)b->off,
					(unsigned long long)b->len, c->winlen);
			return reply_error(c, m->seq, -EINVAL, what);
		}
		rc = m->type == VMO__WIRE_CACHE_YIELD ? vmo_cache_yield(uc, b->id, c->win + b->off, (size_t)b->len)
						      : vmo_cache_get(uc, b->id, c->win + b->off, (size_t)b->len);
		return rc ? reply_error(c, m->seq, rc, what) : reply_ok(c, m->seq, b->len);
	case VMO__WIRE_CACHE_FORGET:
		rc = m->u.forget.all ? vmo_cache_forget_all(uc) : vmo_cache_forget(uc, m->u.forget.id);
		return rc ? reply_error(c, m->seq, rc, what) : reply_ok(c, m->seq, 0);
	default: { /* CACHE_STATS */
		struct vmo_cache_stats st;
		if ((rc = vmo_cache_stats(uc, &st)))
			return reply_error(c, m->seq, rc, what);
		struct vmo__wire_msg r = { .type = VMO__WIRE_STATS_OK, .seq = m->seq };
		enum { N = (sizeof st - 8) / 8 };
		_Static_assert(N <= VMO__WIRE_STATS_MAX, "cache stats fit a STATS_OK");
		r.u.stats_ok.n = N;
		memcpy(r.u.stats_ok.v, (const char *)&st + 8, N * 8);
		return vmo__wire_send(c->fd, &r, NULL, 0);
	}
	}
}

/* The clients: a client sees those of its own uid, uid 0 sees all (a
 * process list of other users is theirs). */
static int do_clients(struct conn *c, const struct vmo__wire_msg *m)
{
	struct vmo_server *srv = c->srv;
	struct vmo__wire_msg r = { .type = VMO__WIRE_CLIENTS_OK, .seq = m->seq };
	uint64_t pos = 0, start = m->u.list.cursor;
	pthread_mutex_lock(&srv->mu);
	for (struct conn *o = srv->conns; o; o = o->next) {
		if (atomic_load(&o->done) || (c->cred.uid != 0 && o->cred.uid != c->cred.uid))
			continue;
		if (pos++ < start)
			continue;
		if (r.u.clients_ok.n == VMO__WIRE_CLIENTS_MAX) {
			r.u.clients_ok.next = pos - 1;
			break;
		}
		struct vmo__wire_client *e = &r.u.clients_ok.e[r.u.clients_ok.n++];
		e->pid = (uint32_t)o->cred.pid;
		e->uid = o->cred.uid;
		e->gid = o->cred.gid;
		e->objects = atomic_load(&o->nhandles);
		e->views = atomic_load(&o->nviews);
		e->requests = atomic_load(&o->requests);
		e->faults = o->sp && !o->sp_closed ? atomic_load(&o->sp->faults) : o->faults;
	}
	pthread_mutex_unlock(&srv->mu);
	return vmo__wire_send(c->fd, &r, NULL, 0);
}

static void conn_end(struct conn *c)
{
	if (c->win)
		munmap(c->win, c->winlen);
	/* Views first (as if unmapped; left registered: the process keeps its
	 * userfaultfd), then the handles. */
	if (c->sp) {
		pthread_mutex_lock(&c->srv->mu);
		c->faults = atomic_load(&c->sp->faults);
		c->sp_closed = true;
		pthread_mutex_unlock(&c->srv->mu);
		vmo__space_close(c->sp);
	}
	while (c->views) {
		struct cview *v = c->views;
		c->views = v->next;
		free(v);
	}
	atomic_store(&c->nviews, 0);
	while (c->handles)
		handle_close(c, c->handles);
	/* (closed once the thread is joined: the descriptor number stays ours
	 * while vmo_server_destroy may shut it down) */
	shutdown(c->fd, SHUT_RDWR);
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	int fds[VMO__WIRE_MAX_FDS], nfds;
	for (;;) {
		struct vmo__wire_msg m;
		vmo__clear_detail(); /* (a reply's detail is this request's) */
		int rc = vmo__wire_recv(c->fd, &m, fds, &nfds);
		if (rc == -ECONNRESET || rc == -EBADF || rc == -ENOTCONN)
			break;
		if (rc) {
			/* Malformed (wire.h says which): answered, and the next
			 * message read; a socket error other than those ends it. */
			if (rc != -EPROTO && rc != -EPROTONOSUPPORT && rc != -EBADMSG && rc != -EINVAL &&
			    rc != -EMSGSIZE)
				break;
			vmo__debug("server: client %d sent a bad message: %s", (int)c->cred.pid,
				   vmo_last_error_detail());
			if (reply_error(c, m.seq, rc, "bad message") == -ECONNRESET)
				break;
			continue;
		}
		if (!vmo__wire_is_request(m.type)) {
			vmo__set_detail("a %s is a reply, not a request", vmo__wire_type_name(m.type));
			rc = reply_error(c, m.seq, -EPROTO, "bad message");
		} else if (atomic_fetch_add(&c->requests, 1), !c->hello && m.type != VMO__WIRE_HELLO) {
			vmo__set_detail("HELLO first");
			rc = reply_error(c, m.seq, -EPROTO, vmo__wire_type_name(m.type));
		} else {
			switch (m.type) {
			case VMO__WIRE_HELLO: rc = do_hello(c, &m); break;
			case VMO__WIRE_OPEN: rc = do_open(c, &m); break;
			case VMO__WIRE_ADOPT: rc = do_adopt(c, &m, fds[0]); nfds = 0; break;
			case VMO__WIRE_ATTACH: rc = do_attach(c, &m); break;
			case VMO__WIRE_DETACH: rc = do_detach(c, &m); break;
			case VMO__WIRE_SYNC:
			case VMO__WIRE_RETURN:
			case VMO__WIRE_DISCARD: rc = do_range(c, &m); break;
			case VMO__WIRE_STATS: rc = do_stats(c, &m); break;
			case VMO__WIRE_CLOSE: rc = do_close(c, &m); break;
			case VMO__WIRE_LIST: rc = do_list(c, &m); break;
			case VMO__WIRE_CACHE_OPEN: rc = do_cache(c, &m, fds[0]); nfds = 0; break;
			case VMO__WIRE_CACHE_YIELD:
			case VMO__WIRE_CACHE_GET:
			case VMO__WIRE_CACHE_FORGET:
			case VMO__WIRE_CACHE_STATS: rc = do_cache(c, &m, -1); break;
			case VMO__WIRE_CLIENTS: rc = do_clients(c, &m); break;
			default: rc = reply_error(c, m.seq, -EPROTO, "unknown request"); break;
			}
		}
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		if (rc == -ECONNRESET || rc == -EPIPE)
			break;
	}
	vmo__debug("server: client %d (uid %u) left", (int)c->cred.pid, (unsigned)c->cred.uid);
	conn_end(c);
	atomic_store(&c->done, true);
	return NULL;
}

/* ---- the listener ------------------------------------------------------------ */

/* Join the threads of clients that left.  srv->mu held. */
static void reap_conns(struct vmo_server *srv, bool all)
{
	for (struct conn **pc = &srv->conns; *pc;) {
		struct conn *c = *pc;
		if (!all && !atomic_load(&c->done)) {
			pc = &c->next;
			continue;
		}
		*pc = c->next;
		srv->nconns--;
		pthread_mutex_unlock(&srv->mu);
		pthread_join(c->th, NULL);
		close(c->fd);
		free(c);
		pthread_mutex_lock(&srv->mu);
	}
}

static void *listen_main(void *arg)
{
	struct vmo_server *srv = arg;
	vmo__on_vmo_thread = false;
	for (;;) {
		struct pollfd pf[2] = { { .fd = srv->lfd, .events = POLLIN }, { .fd = srv->stopfd, .events = POLLIN } };
		if (poll(pf, 2, 1000) < 0 && errno != EINTR)
			break;
		pthread_mutex_lock(&srv->mu);
		reap_conns(srv, false);
		bool stop = srv->stopping;
		pthread_mutex_unlock(&srv->mu);
		if (stop)
			break;
		if (!(pf[0].revents & POLLIN))
			continue;
		int fd = accept4(srv->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				usleep(10000);
			continue;
		}
		struct conn *c = calloc(1, sizeof *c);
		socklen_t cl = sizeof c->cred;
		if (!c || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->cred, &cl) < 0) {
			free(c);
			close(fd);
			continue;
		}
		pthread_mutex_lock(&srv->mu);
		if (srv->nconns >= srv->opts.max_clients) {
			pthread_mutex_unlock(&srv->mu);
			struct vmo__wire_msg r;
			vmo__wire_make_error(&r, 0, -EUSERS, "the server has %u clients, its limit", srv->opts.max_clients);
			vmo__wire_send(fd, &r, NULL, 0);
			close(fd);
			free(c);
			continue;
		}
		c->srv = srv;
		c->fd = fd;
		if (vmo__thread_create(&c->th, conn_main, c)) {
			/* (no thread: nothing of it to reap) */
			pthread_mutex_unlock(&srv->mu);
			close(fd);
			free(c);
			continue;
		}
		c->next = srv->conns;
		srv->conns = c;
		srv->nconns++;
		pthread_mutex_unlock(&srv->mu);
	}
	return NULL;
}

static int listen_on(const char *path, unsigned mode)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sa.sun_path) {
		vmo__set_detail("socket path \"%s\" is longer than %zu bytes", path, sizeof sa.sun_path - 1);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A socket file nobody listens on (a server that died) is replaced;
	 * one a live server listens on is not. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
		close(fd);
		vmo__set_detail("a server already listens on %s", path);
		return -EADDRINUSE;
	}
	if (errno == ECONNREFUSED)
		unlink(path);
	close(fd);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Created with the mode asked, never wider for a moment. */
	mode_t old = umask(0777 & ~mode);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (rc < 0 || chmod(path, mode) < 0 || listen(fd, 64) < 0) {
		rc = -errno;
		vmo__set_detail("listening on %s: %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	return fd;
}

VMO_API int vmo_server_create(struct vmo_engine *eng, const struct vmo_server_opts *opts, struct vmo_server **out)
{
	if (!eng || !opts || !out)
		return -EINVAL;
	if (opts->mode & ~0777u) {
		vmo__set_detail("vmo_server_create: mode %#o is not permission bits", opts->mode);
		return -EINVAL;
	}
	struct vmo_server *srv = calloc(1, sizeof *srv);
	if (!srv)
		return -ENOMEM;
	srv->eng = eng;
	srv->opts = *opts;
	if (!srv->opts.mode)
		srv->opts.mode = 0600;
	if (!srv->opts.max_clients)
		srv->opts.max_clients = DEFAULT_MAX_CLIENTS;
	if (!srv->opts.max_objects)
		srv->opts.max_objects = DEFAULT_MAX_OBJECTS;
	srv->opts.path = NULL;
	if (opts->cache) {
		srv->cache_opts = *opts->cache;
		srv->cache = true;
	}
	srv->opts.cache = NULL;
	int rc;
	if (opts->path) {
		srv->path = strdup(opts->path);
		rc = srv->path ? listen_on(opts->path, srv->opts.mode) : -ENOMEM;
	} else {
		int type = 0, acc = 0;
		socklen_t l = sizeof type, l2 = sizeof acc;
		rc = opts->listen_fd;
		if (rc < 0 || getsockopt(rc, SOL_SOCKET, SO_TYPE, &type, &l) < 0 ||
		    getsockopt(rc, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l2) < 0 || type != SOCK_SEQPACKET || !acc) {
			vmo__set_detail("vmo_server_create: no path, and listen_fd %d is not a listening "
					"SOCK_SEQPACKET socket",
					opts->listen_fd);
			rc = -EINVAL;
		}
	}
	if (rc < 0) {
		free(srv->path);
		free(srv);
		return rc;
	}
	srv->lfd = rc;
	srv->stopfd = eventfd(0, EFD_CLOEXEC);
	pthread_mutex_init(&srv->mu, NULL);
	pthread_cond_init(&srv->cv, NULL);
	if (srv->stopfd < 0 || (rc = vmo__thread_create(&srv->th, listen_main, srv))) {
		rc = srv->stopfd < 0 ? -errno : rc;
		if (srv->stopfd >= 0)
			close(srv->stopfd);
		close(srv->lfd);
		if (srv->path)
			unlink(srv->path);
		free(srv->path);
		free(srv);
		return rc;
	}
	*out = srv;
	return 0;
}

VMO_API int vmo_server_destroy(struct vmo_server *srv)
{
	if (!srv)
		return -EINVAL;
	pthread_mutex_lock(&srv->mu);
	srv->stopping = true;
	pthread_mutex_unlock(&srv->mu);
	uint64_t one = 1;
	if (write(srv->stopfd, &one, sizeof one) < 0)
		vmo__debug("server stop eventfd: %s", strerror(errno));
	pthread_join(srv->th, NULL);
	close(srv->lfd);
	if (srv->path)
		unlink(srv->path);
	/* End every client's connection: each thread finishes its request,
	 * then cleans up after its client. */
	pthread_mutex_lock(&srv->mu);
	for (struct conn *c = srv->conns; c; c = c->next)
		if (!atomic_load(&c->done))
			shutdown(c->fd, SHUT_RDWR);
	reap_conns(srv, true);
	while (srv->pubs) {
		struct pub *p = srv->pubs;
		pub_unlist(srv, p);
		if (!p->closing)
			pub_put(srv, p);
	}
	while (srv->caches) {
		struct ucache *u = srv->caches;
		srv->caches = u->next;
		vmo_cache_destroy(u->c);
		free(u);
	}
	pthread_mutex_unlock(&srv->mu);
	close(srv->stopfd);
	pthread_mutex_destroy(&srv->mu);
	pthread_cond_destroy(&srv->cv);
	free(srv->path);
	free(srv);
	return 0;
}
