/* SPDX-License-Identifier: MIT */
/* nbd.c - a store on an NBD server (nbdkit, qemu-nbd, rbd-nbd...), with
 * libnbd: vmo_pager_nbd.  docs/stores.md.
 *
 * One I/O thread per store owns the libnbd handle: the pager's callbacks
 * put requests on a queue and wake it (an eventfd); it keeps up to
 * `inflight` commands on the wire (nbd_aio_*), polls the socket in the
 * direction libnbd asks for, and completes requests after libnbd's
 * callbacks said they are done.  Reads of an object bound to the store
 * (vmo_object_create_uri) answer -EINPROGRESS and are supplied from the I/O
 * thread (vmo_object_supply): many faults in flight at once, not one per
 * worker.  Writes, flushes and reads of an unbound store wait.
 *
 * A dropped connection: every request on the wire goes back to the front
 * of the queue (commands are idempotent: reads, writes at an offset,
 * zeroes, flush), and the thread connects again, with backoff, for up to
 * retry_ms; then, still down, the waiting requests fail with -EIO (a read:
 * SIGBUS to the faulting threads, never zeros; a write: the page stays
 * dirty, the sync that asked fails), and each later request tries one
 * connection before failing.  The connection of each attempt is counted by
 * an epoch: a callback of a closed handle's command is ignored (its request
 * was queued again).  An error the server answers on a live connection is
 * the request's error (no retry).
 *
 * A write of all zeros is sent as WRITE_ZEROES (the server may punch it)
 * where the server takes it. */
#include "internal.h"

#include <libnbd.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define NSTORE_MAGIC 0x6e626473u /* "nbds" */
#define MAX_CMD (32u << 20)      /* bytes per NBD command: requests are split */
#define MAX_TRIES 8               /* connections a request is sent on before it fails */
#define NSUP 2                   /* supplier threads (measured: bench/stores, docs/stores.md) */

enum { OP_READ, OP_WRITE, OP_ZERO, OP_FLUSH };

struct nreq {
	struct nreq *next;
	int op;
	uint64_t off;
	size_t len;
	char *buf;
	bool own_buf; /* an async read's buffer, freed when supplied */
	bool async;   /* supplied to the bound object, nobody waits */
	int parts;    /* commands on the wire */
	int err;
	uint64_t epoch; /* of the connection its commands went on */
	bool lost;    /* a command failed as the connection went: retried */
	bool done;
	uint64_t t0;  /* queued first */
	uint64_t tsub; /* put on the wire */
	int tries;    /* connections it was sent on */
};

struct nstore {
	uint32_t magic;
	char *uri;
	uint64_t size;
	uint32_t inflight;
	uint32_t retry_ms;
	_Atomic(struct vmo_object *) obj; /* bound: reads are asynchronous */

	pthread_mutex_t mu; /* the queue, done flags, stop */
	pthread_cond_t cv;
	struct nreq *qhead, *qtail;
	int efd;
	bool stop;
	pthread_t th;

	/* the I/O thread's own */
	struct nbd_handle *h;
	uint64_t epoch;
	bool can_zero, can_flush;
	struct nreq *wire; /* requests with commands on the wire */
	int nwire;
	struct nreq *finished;
	bool lost_any;
	uint64_t down_since_ns; /* 0: connected (or never tried) */
	bool gave_up;

	/* The suppliers: async reads done, supplied from threads of their own.
	 * Not the I/O thread: a supply may reclaim, which may write back
	 * through this store (the I/O thread must stay free for that), and a
	 * supply costs what a fault does (a page mapped, a thread woken: tens
	 * of microseconds), so NSUP of them keep the cores busy while the I/O
	 * thread keeps the wire full. */
	pthread_cond_t scv;
	struct nreq *shead, *stail;
	bool sstop;
	pthread_t sth[NSUP];
	int nsup;

	_Atomic uint64_t reads, writes, zeroes, flushes, bytes_read, bytes_written;
	_Atomic uint64_t reconnects, retried, failed, inflight_peak;
};

struct part {
	struct nstore *s;
	struct nreq *r;
	uint64_t epoch;
};

/* ---- connecting -------------------------------------------------------------- */

/* Connect within timeout_ms (nbd_aio_connect_uri, polled: a server that
 * accepts and never answers, or an address that drops packets, does not
 * hold the caller longer). */
static struct nbd_handle *nbd_open(const char *uri, unsigned timeout_ms, uint64_t *size, bool *can_zero,
				   bool *can_flush)
{
	struct nbd_handle *h = nbd_create();
	if (!h) {
		vmo__set_detail("nbd_create: %s", nbd_get_error());
		return NULL;
	}
	nbd_set_handle_name(h, "vmo");
	/* The URI is the program's (or vmod's configuration), not a peer's:
	 * it may name local files (tls-psk-file, tls-certificates). */
	nbd_set_uri_allow_local_file(h, true);
	uint64_t deadline = vmo__now_ns() + (uint64_t)timeout_ms * 1000000u;
	int rc = nbd_aio_connect_uri(h, uri);
	while (rc >= 0 && !nbd_aio_is_ready(h)) {
		if (nbd_aio_is_dead(h) || nbd_aio_is_closed(h)) {
			rc = -1;
			break;
		}
		uint64_t now = vmo__now_ns();
		if (now >= deadline) {
			vmo__set_detail("NBD %s: no answer within %u ms", uri, timeout_ms);
			nbd_close(h);
			errno = ETIMEDOUT;
			return NULL;
		}
		unsigned dir = nbd_aio_get_direction(h);
		struct pollfd pf = { .fd = nbd_aio_get_fd(h) };
		if (dir & LIBNBD_AIO_DIRECTION_READ)
			pf.events |= POLLIN;
		if (dir & LIBNBD_AIO_DIRECTION_WRITE)
			pf.events |= POLLOUT;
		uint64_t left_ms = (deadline - now) / 1000000u + 1;
		int n = pf.fd < 0 ? 0 : poll(&pf, 1, left_ms < 100 ? (int)left_ms : 100);
		if (n > 0 && (pf.revents & (POLLIN | POLLHUP | POLLERR)))
			rc = nbd_aio_notify_read(h);
		else if (n > 0 && (pf.revents & POLLOUT))
			rc = nbd_aio_notify_write(h);
	}
	if (rc < 0) {
		int e = nbd_get_errno() ? nbd_get_errno() : EIO;
		vmo__set_detail("NBD %s: %s", uri, nbd_get_error() ? nbd_get_error() : "connection failed");
		nbd_close(h);
		errno = e;
		return NULL;
	}
	int64_t sz = nbd_get_size(h);
	if (sz < 0) {
		int e = nbd_get_errno() ? nbd_get_errno() : EIO;
		vmo__set_detail("NBD %s: size: %s", uri, nbd_get_error());
		nbd_close(h);
		errno = e;
		return NULL;
	}
	*size = (uint64_t)sz;
	*can_zero = nbd_can_zero(h) == 1;
	*can_flush = nbd_can_flush(h) == 1;
	return h;
}

/* ---- the I/O thread -------------------------------------------------------------- */

static bool conn_error(int e)
{
	return e == ENOTCONN || e == ESHUTDOWN || e == ECONNRESET || e == EPIPE || e == ECONNABORTED ||
	       e == ETIMEDOUT;
}

/* Off the wire list, onto the finished one (the I/O thread's). */
static void finish(struct nstore *s, struct nreq *r)
{
	for (struct nreq **pr = &s->wire; *pr; pr = &(*pr)->next)
		if (*pr == r) {
			*pr = r->next;
			break;
		}
	s->nwire--;
	r->next = s->finished;
	s->finished = r;
}

/* libnbd's completion callback, on the I/O thread inside notify. */
static int part_done(void *user, int *error)
{
	struct part *p = user;
	struct nreq *r = p->r;
	if (p->epoch != p->s->epoch)
		return 1; /* (a closed connection's: the request went back on the queue) */
	if (*error && conn_error(*error)) {
		r->lost = true; /* (kept on the wire list: requeued with the connection) */
		p->s->lost_any = true;
	} else if (*error && !r->err) {
		r->err = -*error;
	}
	if (--r->parts == 0 && !r->lost)
		finish(p->s, r);
	return 1;
}

static void part_free(void *user)
{
	free(user);
}

/* Put r's commands on the wire.  r->parts keeps one hold, which the
 * caller drops.  0, or -errno (the handle may be dead). */
static int submit(struct nstore *s, struct nreq *r)
{
	r->tsub = vmo__now_ns();
	r->tries++;
	r->err = 0;
	r->lost = false;
	r->epoch = s->epoch;
	r->next = s->wire;
	s->wire = r;
	s->nwire++;
	if (r->op == OP_ZERO && !s->can_zero) {
		if (!r->buf) { /* (a punch: the server took WRITE_ZEROES before it came back without) */
			r->parts = 1;
			r->err = -EOPNOTSUPP;
			return -EOPNOTSUPP;
		}
		r->op = OP_WRITE; /* (the zeros are in buf) */
	}
	size_t n = r->op == OP_FLUSH ? 1 : (r->len + MAX_CMD - 1) / MAX_CMD;
	r->parts = (int)n + 1;
	for (size_t i = 0; i < n; i++) {
		struct part *p = malloc(sizeof *p);
		int rc = 0;
		if (!p) {
			rc = -ENOMEM;
		} else {
			*p = (struct part){ s, r, s->epoch };
			nbd_completion_callback cb = { .callback = part_done, .user_data = p, .free = part_free };
			uint64_t off = r->off + i * MAX_CMD;
			size_t len = r->op == OP_FLUSH ? 0 : (r->len - i * MAX_CMD < MAX_CMD ? r->len - i * MAX_CMD : MAX_CMD);
			int64_t c;
			switch (r->op) {
			case OP_READ: c = nbd_aio_pread(s->h, r->buf + i * MAX_CMD, len, off, cb, 0); break;
			case OP_WRITE: c = nbd_aio_pwrite(s->h, r->buf + i * MAX_CMD, len, off, cb, 0); break;
			case OP_ZERO: c = nbd_aio_zero(s->h, len, off, cb, 0); break;
			default: c = nbd_aio_flush(s->h, cb, 0); break;
			}
			if (c < 0) { /* (libnbd ran the free callback: p is gone) */
				rc = nbd_get_errno() ? -nbd_get_errno() : -EIO;
				vmo__set_detail("NBD: %s", nbd_get_error());
			}
		}
		if (rc) {
			r->parts -= (int)(n - i); /* (never on the wire) */
			if (!r->err)
				r->err = rc;
			return rc;
		}
	}
	return 0;
}

/* Append r to the list (head, tail); under mu. */
static void qpush(struct nreq **head, struct nreq **tail, struct nreq *r)
{
	r->next = NULL;
	if (*tail)
		(*tail)->next = r;
	else
		*head = r;
	*tail = r;
}

static void wake(struct nstore *s)
{
	uint64_t one = 1;
	if (write(s->efd, &one, sizeof one) < 0)
		vmo__debug("nbd: eventfd: %s", strerror(errno));
}

/* Requests of the dead connection back to the front of the queue. */
static void requeue_wire(struct nstore *s)
{
	struct nreq *back = NULL, *last = NULL;
	uint64_t now = vmo__now_ns();
	while (s->wire) {
		struct nreq *r = s->wire;
		s->wire = r->next;
		r->next = NULL;
		r->lost = false;
		/* Sent on MAX_TRIES connections that each went (a request that
		 * makes the server drop it?), or older than twice retry_ms: it
		 * fails rather than loop for ever. */
		if (r->tries >= MAX_TRIES || now - r->t0 > 2 * (uint64_t)s->retry_ms * 1000000u) {
			vmo__warn("nbd: a request to %s failed after %d connections and %llu ms: -EIO", s->uri, r->tries,
				  (unsigned long long)((now - r->t0) / 1000000u));
			r->err = -EIO;
			r->next = s->finished;
			s->finished = r;
			continue;
		}
		if (last)
			last->next = r;
		else
			back = r;
		last = r;
		atomic_fetch_add(&s->retried, 1);
	}
	s->nwire = 0;
	s->lost_any = false;
	if (!back)
		return;
	pthread_mutex_lock(&s->mu);
	last->next = s->qhead;
	s->qhead = back;
	if (!s->qtail)
		s->qtail = last;
	pthread_mutex_unlock(&s->mu);
}

static void drop_handle(struct nstore *s)
{
	if (!s->h)
		return;
	s->epoch++; /* (callbacks run by the close below are the old epoch's) */
	nbd_close(s->h);
	s->h = NULL;
	requeue_wire(s);
	if (!s->down_since_ns)
		s->down_since_ns = vmo__now_ns();
}

/* Finish r: a waiter is woken; an async read goes to the supplier. */
static void complete(struct nstore *s, struct nreq *r)
{
	if (r->err)
		atomic_fetch_add(&s->failed, 1);
	pthread_mutex_lock(&s->mu);
	if (r->async) {
		qpush(&s->shead, &s->stail, r);
		pthread_cond_signal(&s->scv);
	} else {
		r->done = true;
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
}

static void *supply_main(void *arg)
{
	struct nstore *s = arg;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->shead && !s->sstop)
			pthread_cond_wait(&s->scv, &s->mu);
		struct nreq *r = s->shead;
		if (!r)
			break;
		s->shead = r->next;
		if (!s->shead)
			s->stail = NULL;
		pthread_mutex_unlock(&s->mu);
		struct vmo_object *obj = atomic_load(&s->obj);
		int rc = r->err ? vmo_object_supply_error(obj, r->off, r->len, r->err)
				: vmo_object_supply(obj, r->off, r->len, r->buf, 0);
		if (rc && rc != -VMO_ESHUTDOWN)
			vmo__debug("nbd: supplying [%#llx, +%#zx): %s", (unsigned long long)r->off, r->len, vmo_strerror(rc));
		free(r->buf);
		free(r);
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Fail everything queued with err. */
static void fail_queue(struct nstore *s, int err)
{
	pthread_mutex_lock(&s->mu);
	struct nreq *q = s->qhead;
	s->qhead = s->qtail = NULL;
	pthread_mutex_unlock(&s->mu);
	while (q) {
		struct nreq *r = q;
		q = r->next;
		r->err = err;
		complete(s, r);
	}
}

/* Connect while down; true once connected.  Waits (backoff) until the
 * retry window is over unless `once`. */
static bool reconnect(struct nstore *s, bool once)
{
	unsigned delay_ms = 10;
	for (;;) {
		uint64_t size;
		bool z, f;
		uint64_t used = s->down_since_ns ? (vmo__now_ns() - s->down_since_ns) / 1000000u : 0;
		unsigned left = used < s->retry_ms ? s->retry_ms - (unsigned)used : 1;
		struct nbd_handle *h = nbd_open(s->uri, once ? (s->retry_ms < 1000 ? s->retry_ms : 1000) : left, &size, &z,
						&f);
		if (h) {
			if (size < s->size) {
				vmo__warn("nbd: %s came back with %llu bytes, fewer than the object's %llu: not used", s->uri,
					  (unsigned long long)size, (unsigned long long)s->size);
				nbd_close(h);
			} else {
				s->h = h;
				s->can_zero = z;
				s->can_flush = f;
				s->down_since_ns = 0;
				s->gave_up = false;
				atomic_fetch_add(&s->reconnects, 1);
				vmo__info("nbd: connected to %s again", s->uri);
				return true;
			}
		}
		if (once)
			return false;
		if (vmo__now_ns() - s->down_since_ns >= (uint64_t)s->retry_ms * 1000000u)
			return false;
		struct pollfd pf = { .fd = s->efd, .events = POLLIN };
		poll(&pf, 1, (int)delay_ms);
		pthread_mutex_lock(&s->mu);
		bool stop = s->stop && !s->qhead;
		pthread_mutex_unlock(&s->mu);
		if (stop)
			return false;
		if (delay_ms < 200) /* (a server restarting is back within that) */
			delay_ms *= 2;
	}
}

static void *io_main(void *arg)
{
	struct nstore *s = arg;
	for (;;) {
		/* down: connect again (or give up on what waits) */
		if (!s->h) {
			pthread_mutex_lock(&s->mu);
			bool work = s->qhead != NULL, stop = s->stop;
			pthread_mutex_unlock(&s->mu);
			if (!work && stop)
				break;
			if (work) {
				if (!reconnect(s, s->gave_up)) {
					if (!s->gave_up)
						vmo__err("nbd: %s is unreachable for %u ms: its requests fail (-EIO)", s->uri,
							 s->retry_ms);
					s->gave_up = true;
					fail_queue(s, -EIO);
					continue;
				}
			} else {
				struct pollfd pf = { .fd = s->efd, .events = POLLIN };
				poll(&pf, 1, -1);
				uint64_t v;
				if (read(s->efd, &v, sizeof v) < 0)
					(void)0;
				continue;
			}
		}
		/* the queue onto the wire, up to inflight commands */
		for (;;) {
			pthread_mutex_lock(&s->mu);
			struct nreq *r = (uint32_t)s->nwire < s->inflight ? s->qhead : NULL;
			if (r) {
				s->qhead = r->next;
				if (!s->qhead)
					s->qtail = NULL;
			}
			pthread_mutex_unlock(&s->mu);
			if (!r)
				break;
			int rc = submit(s, r);
			if ((uint64_t)s->nwire > atomic_load(&s->inflight_peak))
				atomic_store(&s->inflight_peak, (uint64_t)s->nwire);
			if (rc && (nbd_aio_is_dead(s->h) || nbd_aio_is_closed(s->h)))
				break; /* (r stays on the wire list: requeued with the connection) */
			if (--r->parts == 0 && !r->lost) /* the hold */
				finish(s, r);
		}
		if (s->h && !nbd_aio_is_dead(s->h) && !nbd_aio_is_closed(s->h)) {
			unsigned dir = nbd_aio_get_direction(s->h);
			struct pollfd pf[2] = { { .fd = nbd_aio_get_fd(s->h) }, { .fd = s->efd, .events = POLLIN } };
			if (dir & LIBNBD_AIO_DIRECTION_READ)
				pf[0].events |= POLLIN;
			if (dir & LIBNBD_AIO_DIRECTION_WRITE)
				pf[0].events |= POLLOUT;
			bool idle = s->nwire == 0;
			pthread_mutex_lock(&s->mu);
			bool stop = s->stop && !s->qhead && idle;
			bool more = s->qhead && (uint32_t)s->nwire < s->inflight;
			pthread_mutex_unlock(&s->mu);
			if (stop)
				break;
			/* (while requests are on the wire, wake now and then to see
			 * whether one is stuck: a connection silently gone) */
			if (!more && poll(pf, 2, s->nwire ? 100 : -1) > 0) {
				if (pf[1].revents & POLLIN) {
					uint64_t v;
					if (read(s->efd, &v, sizeof v) < 0)
						(void)0;
				}
				if (pf[0].revents & (POLLIN | POLLHUP | POLLERR))
					nbd_aio_notify_read(s->h);
				else if (pf[0].revents & POLLOUT)
					nbd_aio_notify_write(s->h);
			}
		}
		/* A request on the wire for longer than retry_ms: the connection is
		 * taken for gone (a peer that stopped answering, a network that
		 * drops packets): made again, the requests sent again. */
		bool stuck = false;
		uint64_t tnow = vmo__now_ns();
		for (struct nreq *r = s->wire; r && !stuck; r = r->next)
			stuck = tnow - r->tsub > (uint64_t)s->retry_ms * 1000000u;
		if (stuck && s->h)
			vmo__warn("nbd: %s has not answered for %u ms: connecting again", s->uri, s->retry_ms);
		if (s->h && (stuck || s->lost_any || nbd_aio_is_dead(s->h) || nbd_aio_is_closed(s->h))) {
			vmo__warn("nbd: the connection to %s dropped (%s): %d requests to retry", s->uri, nbd_get_error(),
				  s->nwire);
			drop_handle(s);
		}
		while (s->finished) {
			struct nreq *r = s->finished;
			s->finished = r->next;
			complete(s, r);
		}
	}
	if (s->h) {
		nbd_shutdown(s->h, 0);
		s->epoch++;
		nbd_close(s->h);
		s->h = NULL;
	}
	return NULL;
}

/* ---- requests --------------------------------------------------------------------- */

static void enqueue(struct nstore *s, struct nreq *r)
{
	r->t0 = vmo__now_ns();
	pthread_mutex_lock(&s->mu);
	qpush(&s->qhead, &s->qtail, r);
	pthread_mutex_unlock(&s->mu);
	wake(s);
}

static int run_sync(struct nstore *s, int op, uint64_t off, size_t len, char *buf)
{
	struct nreq r = { .op = op, .off = off, .len = len, .buf = buf };
	enqueue(s, &r);
	pthread_mutex_lock(&s->mu);
	while (!r.done)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	if (r.err)
		vmo__set_detail("NBD %s: %s [%#llx, +%#zx): %s", s->uri,
				op == OP_READ ? "read" : op == OP_FLUSH ? "flush" : "write", (unsigned long long)off, len,
				strerror(-r.err));
	return r.err;
}

static int n_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct nstore *s = ctx;
	(void)flags;
	if (off > s->size || len > s->size - off)
		return -EINVAL;
	atomic_fetch_add(&s->reads, 1);
	atomic_fetch_add(&s->bytes_read, len);
	if (atomic_load(&s->obj)) {
		struct nreq *r = calloc(1, sizeof *r);
		char *b = malloc(len);
		if (r && b) {
			*r = (struct nreq){ .op = OP_READ, .off = off, .len = len, .buf = b, .own_buf = true, .async = true };
			enqueue(s, r);
			return -EINPROGRESS;
		}
		free(r);
		free(b); /* (no memory for an async read: wait for it instead) */
	}
	return run_sync(s, OP_READ, off, len, buf);
}

static int n_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct nstore *s = ctx;
	if (off > s->size || len > s->size - off)
		return -EINVAL;
	bool z = vmo__all_zero(buf, len);
	atomic_fetch_add(z ? &s->zeroes : &s->writes, 1);
	atomic_fetch_add(&s->bytes_written, len);
	return run_sync(s, z ? OP_ZERO : OP_WRITE, off, len, (char *)buf);
}

static int n_sync(void *ctx)
{
	struct nstore *s = ctx;
	atomic_fetch_add(&s->flushes, 1);
	return run_sync(s, OP_FLUSH, 0, 0, NULL);
}

/* vmo_discard(VMO_PUNCH): WRITE_ZEROES (which the server may punch: a
 * TRIM that reads as zeros), else zeros written. */
static int n_punch(void *ctx, uint64_t off, uint64_t len)
{
	struct nstore *s = ctx;
	if (off > s->size || len > s->size - off)
		return -EINVAL;
	atomic_fetch_add(&s->zeroes, 1);
	if (s->can_zero)
		return run_sync(s, OP_ZERO, off, (size_t)len, NULL);
	size_t chunk = len < (1u << 20) ? (size_t)len : (1u << 20);
	char *z = calloc(1, chunk);
	if (!z)
		return -ENOMEM;
	int rc = 0;
	for (uint64_t at = 0; !rc && at < len; at += chunk)
		rc = run_sync(s, OP_WRITE, off + at, len - at < chunk ? (size_t)(len - at) : chunk, z);
	free(z);
	return rc;
}

static int n_extent(void *ctx, uint64_t *size)
{
	*size = ((struct nstore *)ctx)->size;
	return 0;
}

/* The supplier threads, once the I/O thread supplies no more. */
static void suppliers_stop(struct nstore *s)
{
	pthread_mutex_lock(&s->mu);
	s->sstop = true;
	pthread_cond_broadcast(&s->scv);
	pthread_mutex_unlock(&s->mu);
	for (int i = 0; i < s->nsup; i++)
		pthread_join(s->sth[i], NULL);
}

static void n_release(void *ctx)
{
	struct nstore *s = ctx;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_mutex_unlock(&s->mu);
	wake(s);
	pthread_join(s->th, NULL);
	suppliers_stop(s);
	pthread_cond_destroy(&s->scv);
	close(s->efd);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	s->magic = 0;
	free(s->uri);
	free(s);
}

static const struct vmo_pager_ops nbd_ops = {
	.read = n_read,
	.write = n_write,
	.report_extent = n_extent,
	.sync = n_sync,
	.release = n_release,
};

VMO_API int vmo_pager_nbd(const struct vmo_nbd_opts *o, const struct vmo_pager_ops **ops, void **ctx)
{
	if (!o || !o->uri || !ops || !ctx) {
		vmo__set_detail("vmo_pager_nbd: %s is missing", !o ? "opts" : !o->uri ? "opts->uri" : "an output");
		return -EINVAL;
	}
	vmo__pager_punch_register(&nbd_ops, n_punch);
	struct nstore *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->magic = NSTORE_MAGIC;
	s->inflight = o->inflight ? o->inflight : 64;
	s->retry_ms = o->retry_ms;
	if (!s->retry_ms) { /* (VMO_NBD_RETRY_MS: the default, from the environment) */
		const char *e = getenv("VMO_NBD_RETRY_MS");
		long v = e && *e ? strtol(e, NULL, 10) : 0;
		s->retry_ms = v > 0 && v < 86400000 ? (uint32_t)v : 10000;
	}
	s->efd = -1;
	if (!(s->uri = strdup(o->uri))) {
		free(s);
		return -ENOMEM;
	}
	int rc;
	s->h = nbd_open(s->uri, s->retry_ms, &s->size, &s->can_zero, &s->can_flush);
	if (!s->h) {
		/* (a URI libnbd does not take is EINVAL; a server not there ECONNREFUSED, ENOENT...) */
		rc = errno ? -errno : -EIO;
		goto fail;
	}
	s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->efd < 0) {
		rc = -errno;
		goto fail;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	pthread_cond_init(&s->scv, NULL);
	for (rc = 0; !rc && s->nsup < NSUP; s->nsup++)
		if ((rc = vmo__thread_create(&s->sth[s->nsup], supply_main, s)))
			break;
	if (!rc)
		rc = vmo__thread_create(&s->th, io_main, s);
	if (rc)
		suppliers_stop(s);
	if (rc) {
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->cv);
		pthread_cond_destroy(&s->scv);
		goto fail;
	}
	*ops = &nbd_ops;
	*ctx = s;
	return 0;
fail:
	if (s->h)
		nbd_close(s->h);
	if (s->efd >= 0)
		close(s->efd);
	free(s->uri);
	free(s);
	return rc;
}

bool vmo__nbd_is(const struct vmo_pager_ops *ops);
void vmo__nbd_bind(void *ctx, struct vmo_object *obj);

bool vmo__nbd_is(const struct vmo_pager_ops *ops)
{
	return ops == &nbd_ops;
}

/* stores/uri.c: reads of this store's object are supplied asynchronously. */
void vmo__nbd_bind(void *ctx, struct vmo_object *obj)
{
	struct nstore *s = ctx;
	atomic_store(&s->obj, obj);
}

VMO_API int vmo_pager_nbd_stats_sized(void *ctx, struct vmo_nbd_stats *out, size_t size)
{
	struct nstore *s = ctx;
	if (!s || !out || size < 8 || s->magic != NSTORE_MAGIC) {
		vmo__set_detail("vmo_pager_nbd_stats: ctx is not an NBD store's");
		return -EINVAL;
	}
	struct vmo_nbd_stats st;
	memset(&st, 0, sizeof st);
	st.size_bytes = s->size;
	st.reads = atomic_load(&s->reads);
	st.writes = atomic_load(&s->writes);
	st.zeroes = atomic_load(&s->zeroes);
	st.flushes = atomic_load(&s->flushes);
	st.bytes_read = atomic_load(&s->bytes_read);
	st.bytes_written = atomic_load(&s->bytes_written);
	st.reconnects = atomic_load(&s->reconnects);
	st.retried = atomic_load(&s->retried);
	st.failed = atomic_load(&s->failed);
	st.inflight_peak = atomic_load(&s->inflight_peak);
	vmo__sized_out(out, size, &st, sizeof st, VMO_NBD_STATS_VERSION);
	return 0;
}
