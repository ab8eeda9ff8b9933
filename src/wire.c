/* SPDX-License-Identifier: MIT */
/* wire.c - the wire protocol of served objects (wire.h, docs/wire.md):
 * encoding, the checking parser, and sending and receiving one message with
 * its descriptors over a SOCK_SEQPACKET socket.  Calls only log.c. */
#include "internal.h"
#include "wire.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* ---- the types ---------------------------------------------------------- */

static const struct wire_type {
	const char *name;
	uint8_t fds;     /* descriptors that come with it */
	bool request;    /* sent by a client */
	bool var;        /* payload: at least `size` bytes (a length says the rest) */
	uint16_t size;   /* payload bytes (the fixed part) */
} types[VMO__WIRE_NTYPES] = {
	[VMO__WIRE_HELLO] = { "HELLO", 0, true, false, 16 },
	[VMO__WIRE_HELLO_OK] = { "HELLO_OK", 0, false, false, 24 },
	[VMO__WIRE_OPEN] = { "OPEN", 0, true, true, 20 },
	[VMO__WIRE_OPEN_OK] = { "OPEN_OK", 1, false, false, 24 },
	[VMO__WIRE_ADOPT] = { "ADOPT", 1, true, false, 8 },
	[VMO__WIRE_ATTACH] = { "ATTACH", 0, true, false, 40 },
	[VMO__WIRE_DETACH] = { "DETACH", 0, true, false, 24 },
	[VMO__WIRE_SYNC] = { "SYNC", 0, true, false, 32 },
	[VMO__WIRE_RETURN] = { "RETURN", 0, true, false, 32 },
	[VMO__WIRE_DISCARD] = { "DISCARD", 0, true, false, 32 },
	[VMO__WIRE_STATS] = { "STATS", 0, true, false, 8 },
	[VMO__WIRE_STATS_OK] = { "STATS_OK", 0, false, true, 16 },
	[VMO__WIRE_CLOSE] = { "CLOSE", 0, true, false, 8 },
	[VMO__WIRE_LIST] = { "LIST", 0, true, false, 8 },
	[VMO__WIRE_LIST_OK] = { "LIST_OK", 0, false, true, 16 },
	[VMO__WIRE_OK] = { "OK", 0, false, false, 8 },
	[VMO__WIRE_ERROR] = { "ERROR", 0, false, true, 8 },
	[VMO__WIRE_CACHE_OPEN] = { "CACHE_OPEN", 1, true, false, 8 },
	[VMO__WIRE_CACHE_YIELD] = { "CACHE_YIELD", 0, true, false, 24 },
	[VMO__WIRE_CACHE_GET] = { "CACHE_GET", 0, true, false, 24 },
	[VMO__WIRE_CACHE_FORGET] = { "CACHE_FORGET", 0, true, false, 16 },
	[VMO__WIRE_CACHE_STATS] = { "CACHE_STATS", 0, true, false, 8 },
	[VMO__WIRE_CLIENTS] = { "CLIENTS", 0, true, false, 8 },
	[VMO__WIRE_CLIENTS_OK] = { "CLIENTS_OK", 0, false, true, 16 },
};

#define ENTRY_HDR 16 /* a LIST_OK entry before its name */

/* The largest message of each variable type fits in VMO__WIRE_MAX. */
_Static_assert(VMO__WIRE_HDR + 20 + VMO__WIRE_NAME_MAX <= VMO__WIRE_MAX, "OPEN fits");
_Static_assert(VMO__WIRE_HDR + 16 + 8 * VMO__WIRE_STATS_MAX <= VMO__WIRE_MAX, "STATS_OK fits");
_Static_assert(VMO__WIRE_HDR + 16 + VMO__WIRE_LIST_MAX * (ENTRY_HDR + VMO__WIRE_NAME_MAX) <= VMO__WIRE_MAX,
	       "LIST_OK fits");
_Static_assert(VMO__WIRE_HDR + 8 + VMO__WIRE_ERRMSG_MAX <= VMO__WIRE_MAX, "ERROR fits");
#define CLIENT_SIZE 40 /* a CLIENTS_OK entry */
_Static_assert(VMO__WIRE_HDR + 16 + VMO__WIRE_CLIENTS_MAX * CLIENT_SIZE <= VMO__WIRE_MAX, "CLIENTS_OK fits");
_Static_assert(VMO__WIRE_VERSION_MIN <= VMO__WIRE_VERSION, "version range");

static const struct wire_type *type_of(uint16_t t)
{
	return t < VMO__WIRE_NTYPES && types[t].name ? &types[t] : NULL;
}

const char *vmo__wire_type_name(uint16_t type)
{
	const struct wire_type *t = type_of(type);
	return t ? t->name : "unknown";
}

int vmo__wire_type_fds(uint16_t type)
{
	const struct wire_type *t = type_of(type);
	return t ? t->fds : -1;
}

bool vmo__wire_is_request(uint16_t type)
{
	const struct wire_type *t = type_of(type);
	return t && t->request;
}

/* ---- little-endian fields ----------------------------------------------- */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static void wr32(uint8_t *p, uint32_t v)
{
	wr16(p, (uint16_t)v);
	wr16(p + 2, (uint16_t)(v >> 16));
}
static void wr64(uint8_t *p, uint64_t v)
{
	wr32(p, (uint32_t)v);
	wr32(p + 4, (uint32_t)(v >> 32));
}

/* ---- checks ------------------------------------------------------------- */

bool vmo__wire_name_ok(const char *name, size_t len)
{
	if (len < 1 || len > VMO__WIRE_NAME_MAX)
		return false;
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

static bool printable(const uint8_t *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

static bool page_size_ok(uint64_t ps) { return ps >= VMO_PAGE && ps <= VMO_MAX_PAGE_SIZE && vmo__is_pow2(ps); }
static bool aligned(uint64_t x) { return (x & (VMO__WIRE_ALIGN - 1)) == 0; }

/* The reason a message is refused, as the detail: "wire: TYPE seq N: why". */
static int refuse(int err, const struct vmo__wire_msg *m, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(int err, const struct vmo__wire_msg *m, const char *fmt, ...)
{
	char why[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	if (m && m->type)
		vmo__set_detail("wire: %s (type %u, seq %u): %s", vmo__wire_type_name(m->type), m->type, m->seq,
				why);
	else
		vmo__set_detail("wire: %s", why);
	return err;
}

/* An object range [off, off+len): aligned, len nonzero, within the limit. */
static int check_range(const struct vmo__wire_msg *m, uint64_t off, uint64_t len)
{
	uint64_t end;
	if (!len)
		return refuse(-EINVAL, m, "zero length");
	if (!aligned(off) || !aligned(len))
		return refuse(-EINVAL, m, "offset %#llx or length %#llx not a multiple of %u",
			      (unsigned long long)off, (unsigned long long)len, VMO__WIRE_ALIGN);
	if (!vmo__add_ok(off, len, &end) || end > VMO__WIRE_OFF_LIMIT)
		return refuse(-EINVAL, m, "offset %#llx + length %#llx past 2^63", (unsigned long long)off,
			      (unsigned long long)len);
	return 0;
}

/* An address range of the client: nonzero, aligned, within the limit. */
static int check_addr(const struct vmo__wire_msg *m, uint64_t addr, uint64_t len)
{
	uint64_t end;
	if (!len)
		return refuse(-EINVAL, m, "zero length");
	if (!addr || !aligned(addr) || !aligned(len))
		return refuse(-EINVAL, m, "address %#llx or length %#llx zero or not a multiple of %u",
			      (unsigned long long)addr, (unsigned long long)len, VMO__WIRE_ALIGN);
	if (!vmo__add_ok(addr, len, &end) || end > VMO__WIRE_ADDR_LIMIT)
		return refuse(-EINVAL, m, "address %#llx + length %#llx past 2^57", (unsigned long long)addr,
			      (unsigned long long)len);
	return 0;
}

static int check_id(const struct vmo__wire_msg *m, uint64_t id)
{
	return id ? 0 : refuse(-EINVAL, m, "object id 0");
}

/* OPEN / OPEN_OK flags: known bits, exactly one access mode. */
static int check_oflags(const struct vmo__wire_msg *m, uint32_t f)
{
	uint32_t acc = f & (VMO__WIRE_O_RDONLY | VMO__WIRE_O_RDWR);
	if (f & ~(VMO__WIRE_O_RDONLY | VMO__WIRE_O_RDWR | VMO__WIRE_O_CREATE | VMO__WIRE_O_CACHE))
		return refuse(-EINVAL, m, "unknown flags %#x", f);
	if (acc != VMO__WIRE_O_RDONLY && acc != VMO__WIRE_O_RDWR)
		return refuse(-EINVAL, m, "flags %#x: not exactly one of RDONLY and RDWR", f);
	return 0;
}

/* A name of n bytes at p (n within the packet): into dst, NUL-terminated. */
static int take_name(const struct vmo__wire_msg *m, const uint8_t *p, size_t n, char *dst)
{
	if (!vmo__wire_name_ok((const char *)p, n))
		return refuse(-EINVAL, m, "bad object name (%zu bytes; 1..%u of [A-Za-z0-9._-], not . or ..)", n,
			      VMO__WIRE_NAME_MAX);
	memcpy(dst, p, n);
	dst[n] = 0;
	return 0;
}

static int reserved(const struct vmo__wire_msg *m, uint64_t v)
{
	return v ? refuse(-EPROTO, m, "reserved bytes not zero") : 0;
}

/* ---- parse -------------------------------------------------------------- */

/* The layouts every version shares: a HELLO's version range, an ERROR.
 * Read for a message of another version, as far as it holds together. */
static void parse_frozen(const uint8_t *p, size_t plen, struct vmo__wire_msg *m)
{
	if (m->type == VMO__WIRE_HELLO && plen >= 4) {
		m->u.hello.min_version = rd16(p);
		m->u.hello.max_version = rd16(p + 2);
	} else if (m->type == VMO__WIRE_ERROR && plen >= 8) {
		size_t n = rd16(p + 4);
		m->u.error.err = (int32_t)rd32(p);
		if (n <= VMO__WIRE_ERRMSG_MAX && n <= plen - 8) {
			for (size_t i = 0; i < n; i++)
				m->u.error.msg[i] = p[8 + i] >= 0x20 && p[8 + i] <= 0x7e ? (char)p[8 + i] : '?';
		}
	}
}

static int parse_payload(const uint8_t *p, size_t plen, struct vmo__wire_msg *m)
{
	int r;
	switch (m->type) {
	case VMO__WIRE_HELLO: {
		struct vmo__wire_hello *h = &m->u.hello;
		h->min_version = rd16(p);
		h->max_version = rd16(p + 2);
		h->features = rd64(p + 8);
		if ((r = reserved(m, rd32(p + 4))))
			return r;
		if (h->min_version < 1 || h->min_version > h->max_version)
			return refuse(-EINVAL, m, "version range %u..%u", h->min_version, h->max_version);
		return 0;
	}
	case VMO__WIRE_HELLO_OK: {
		struct vmo__wire_hello_ok *h = &m->u.hello_ok;
		h->version = rd16(p);
		h->max_fds = rd16(p + 2);
		h->max_msg = rd32(p + 4);
		h->features = rd64(p + 8);
		h->list_max = rd32(p + 16);
		h->max_objects = rd32(p + 20);
		if (h->version < 1)
			return refuse(-EINVAL, m, "version 0");
		if (h->max_fds > VMO__WIRE_MAX_FDS || h->max_msg < 256 || h->max_msg > VMO__WIRE_MAX ||
		    h->list_max < 1 || h->list_max > VMO__WIRE_LIST_MAX)
			return refuse(-EINVAL, m, "limits out of range (fds %u, message %u, list %u)", h->max_fds,
				      h->max_msg, h->list_max);
		return 0;
	}
	case VMO__WIRE_OPEN: {
		struct vmo__wire_open *o = &m->u.open;
		size_t n = rd16(p + 16);
		o->flags = rd32(p);
		o->page_size = rd32(p + 4);
		o->size = rd64(p + 8);
		if ((r = reserved(m, rd16(p + 18))))
			return r;
		if (plen != 20 + n)
			return refuse(-EPROTO, m, "payload of %zu bytes for a name of %zu", plen, n);
		if ((r = check_oflags(m, o->flags)))
			return r;
		if (o->page_size && !page_size_ok(o->page_size))
			return refuse(-EINVAL, m, "page size %u", o->page_size);
		if (o->size > VMO__WIRE_OFF_LIMIT)
			return refuse(-EINVAL, m, "size %#llx past 2^63", (unsigned long long)o->size);
		return take_name(m, p + 20, n, o->name);
	}
	case VMO__WIRE_OPEN_OK: {
		struct vmo__wire_open_ok *o = &m->u.open_ok;
		o->id = rd64(p);
		o->size = rd64(p + 8);
		o->page_size = rd32(p + 16);
		o->flags = rd32(p + 20);
		if ((r = check_id(m, o->id)) || (r = check_oflags(m, o->flags)))
			return r;
		if (!page_size_ok(o->page_size))
			return refuse(-EINVAL, m, "page size %u", o->page_size);
		if (o->size > VMO__WIRE_OFF_LIMIT)
			return refuse(-EINVAL, m, "size %#llx past 2^63", (unsigned long long)o->size);
		return 0;
	}
	case VMO__WIRE_ADOPT:
		m->u.adopt.uffd_features = rd64(p);
		return 0;
	case VMO__WIRE_ATTACH: {
		struct vmo__wire_attach *a = &m->u.attach;
		a->id = rd64(p);
		a->addr = rd64(p + 8);
		a->len = rd64(p + 16);
		a->off = rd64(p + 24);
		a->prot = rd32(p + 32);
		if ((r = reserved(m, rd32(p + 36))) || (r = check_id(m, a->id)) ||
		    (r = check_addr(m, a->addr, a->len)) || (r = check_range(m, a->off, a->len)))
			return r;
		if (!(a->prot & VMO_PROT_READ) || (a->prot & ~(VMO_PROT_READ | VMO_PROT_WRITE)))
			return refuse(-EINVAL, m, "prot %#x (READ, or READ|WRITE)", a->prot);
		return 0;
	}
	case VMO__WIRE_DETACH: {
		struct vmo__wire_detach *d = &m->u.detach;
		d->id = rd64(p);
		d->addr = rd64(p + 8);
		d->len = rd64(p + 16);
		if ((r = check_id(m, d->id)) || (r = check_addr(m, d->addr, d->len)))
			return r;
		return 0;
	}
	case VMO__WIRE_SYNC:
	case VMO__WIRE_RETURN:
	case VMO__WIRE_DISCARD: {
		struct vmo__wire_range *g = &m->u.range;
		g->id = rd64(p);
		g->off = rd64(p + 8);
		g->len = rd64(p + 16);
		g->flags = rd32(p + 24);
		if ((r = reserved(m, rd32(p + 28))) || (r = check_id(m, g->id)) ||
		    (r = check_range(m, g->off, g->len)))
			return r;
		if (g->flags & ~VMO_WAIT)
			return refuse(-EINVAL, m, "unknown flags %#x", g->flags);
		return 0;
	}
	case VMO__WIRE_STATS:
		m->u.id.id = rd64(p);
		return 0;
	case VMO__WIRE_CLOSE:
		m->u.id.id = rd64(p);
		return check_id(m, m->u.id.id);
	case VMO__WIRE_STATS_OK: {
		struct vmo__wire_stats_ok *s = &m->u.stats_ok;
		uint32_t n = rd32(p + 8);
		s->id = rd64(p);
		if ((r = reserved(m, rd32(p + 12))))
			return r;
		if (n > VMO__WIRE_STATS_MAX)
			return refuse(-EINVAL, m, "%u counters (at most %u)", n, VMO__WIRE_STATS_MAX);
		if (plen != 16 + 8 * (size_t)n)
			return refuse(-EPROTO, m, "payload of %zu bytes for %u counters", plen, n);
		s->n = n;
		for (uint32_t i = 0; i < n; i++)
			s->v[i] = rd64(p + 16 + 8 * (size_t)i);
		return 0;
	}
	case VMO__WIRE_LIST:
		m->u.list.cursor = rd64(p);
		return 0;
	case VMO__WIRE_LIST_OK: {
		struct vmo__wire_list_ok *l = &m->u.list_ok;
		uint32_t n = rd32(p + 8);
		size_t pos = 16;
		l->next = rd64(p);
		if ((r = reserved(m, rd32(p + 12))))
			return r;
		if (n > VMO__WIRE_LIST_MAX)
			return refuse(-EINVAL, m, "%u entries (at most %u)", n, VMO__WIRE_LIST_MAX);
		for (uint32_t i = 0; i < n; i++) {
			struct vmo__wire_entry *e = &l->e[i];
			size_t k;
			if (plen - pos < ENTRY_HDR)
				return refuse(-EPROTO, m, "entry %u cut short", i);
			e->size = rd64(p + pos);
			e->page_size = rd32(p + pos + 8);
			k = rd16(p + pos + 12);
			if ((r = reserved(m, rd16(p + pos + 14))))
				return r;
			pos += ENTRY_HDR;
			if (plen - pos < k)
				return refuse(-EPROTO, m, "entry %u: a name of %zu bytes past the end", i, k);
			if (!page_size_ok(e->page_size))
				return refuse(-EINVAL, m, "entry %u: page size %u", i, e->page_size);
			if (e->size > VMO__WIRE_OFF_LIMIT)
				return refuse(-EINVAL, m, "entry %u: size %#llx past 2^63", i, (unsigned long long)e->size);
			if ((r = take_name(m, p + pos, k, e->name)))
				return r;
			pos += k;
		}
		if (pos != plen)
			return refuse(-EPROTO, m, "%zu bytes after the last entry", plen - pos);
		l->n = n;
		return 0;
	}
	case VMO__WIRE_OK:
		m->u.ok.val = rd64(p);
		return 0;
	case VMO__WIRE_CACHE_OPEN:
		m->u.cache_open.window = rd64(p);
		return check_range(m, 0, m->u.cache_open.window);
	case VMO__WIRE_CACHE_YIELD:
	case VMO__WIRE_CACHE_GET:
		m->u.block.id = rd64(p);
		m->u.block.off = rd64(p + 8);
		m->u.block.len = rd64(p + 16);
		return check_range(m, m->u.block.off, m->u.block.len);
	case VMO__WIRE_CACHE_FORGET:
		m->u.forget.id = rd64(p);
		m->u.forget.all = rd32(p + 8);
		if ((r = reserved(m, rd32(p + 12))))
			return r;
		if (m->u.forget.all > 1)
			return refuse(-EINVAL, m, "all = %u (0 or 1)", m->u.forget.all);
		if (m->u.forget.all && m->u.forget.id)
			return refuse(-EINVAL, m, "forget all with an id");
		return 0;
	case VMO__WIRE_CACHE_STATS:
		return reserved(m, (uint32_t)(rd64(p) | rd64(p) >> 32));
	case VMO__WIRE_CLIENTS:
		m->u.list.cursor = rd64(p);
		return 0;
	case VMO__WIRE_CLIENTS_OK: {
		struct vmo__wire_clients_ok *k = &m->u.clients_ok;
		k->next = rd64(p);
		k->n = rd32(p + 8);
		if ((r = reserved(m, rd32(p + 12))))
			return r;
		if (k->n > VMO__WIRE_CLIENTS_MAX)
			return refuse(-EINVAL, m, "%u entries, at most %u", k->n, VMO__WIRE_CLIENTS_MAX);
		if (plen != 16 + (size_t)k->n * CLIENT_SIZE)
			return refuse(-EPROTO, m, "payload of %zu bytes for %u entries", plen, k->n);
		for (uint32_t i = 0; i < k->n; i++) {
			const uint8_t *q = p + 16 + (size_t)i * CLIENT_SIZE;
			struct vmo__wire_client *e = &k->e[i];
			e->pid = rd32(q);
			e->uid = rd32(q + 4);
			e->gid = rd32(q + 8);
			e->objects = rd32(q + 12);
			e->views = rd32(q + 16);
			if ((r = reserved(m, rd32(q + 20))))
				return r;
			e->requests = rd64(q + 24);
			e->faults = rd64(q + 32);
		}
		return 0;
	}
	case VMO__WIRE_ERROR: {
		struct vmo__wire_error *e = &m->u.error;
		size_t n = rd16(p + 4);
		e->err = (int32_t)rd32(p);
		if ((r = reserved(m, rd16(p + 6))))
			return r;
		if (plen != 8 + n)
			return refuse(-EPROTO, m, "payload of %zu bytes for a message of %zu", plen, n);
		if (e->err >= 0 || e->err < -4095)
			return refuse(-EINVAL, m, "error code %d (a negative errno)", e->err);
		if (n > VMO__WIRE_ERRMSG_MAX || !printable(p + 8, n))
			return refuse(-EINVAL, m, "message of %zu bytes, at most %u of printable ASCII", n,
				      VMO__WIRE_ERRMSG_MAX);
		memcpy(e->msg, p + 8, n);
		e->msg[n] = 0;
		return 0;
	}
	}
	return refuse(-EPROTO, m, "no payload parser"); /* (not reached: type_of checked it) */
}

int vmo__wire_parse(const void *buf, size_t len, int nfds, struct vmo__wire_msg *out)
{
	const uint8_t *b = buf;
	const struct wire_type *t;
	int r;

	memset(out, 0, sizeof *out);
	if (len < VMO__WIRE_HDR)
		return refuse(-EPROTO, NULL, "%zu bytes, shorter than the %u-byte header", len, VMO__WIRE_HDR);
	if (rd32(b) != VMO__WIRE_MAGIC)
		return refuse(-EPROTO, NULL, "bad magic %#x (not a vmo message)", rd32(b));
	out->version = rd16(b + 4);
	out->type = rd16(b + 6);
	out->seq = rd32(b + 12);
	if (len > VMO__WIRE_MAX)
		return refuse(-EMSGSIZE, out, "%zu bytes, more than %u", len, VMO__WIRE_MAX);
	if (rd32(b + 8) != len)
		return refuse(-EPROTO, out, "length field %u, message of %zu bytes", rd32(b + 8), len);
	if (out->version < VMO__WIRE_VERSION_MIN || out->version > VMO__WIRE_VERSION) {
		parse_frozen(b + VMO__WIRE_HDR, len - VMO__WIRE_HDR, out);
		if (out->type == VMO__WIRE_HELLO && len - VMO__WIRE_HDR >= 4)
			return refuse(-EPROTONOSUPPORT, out,
				      "protocol version mismatch: the peer speaks version %u (range %u..%u), "
				      "this side %u..%u",
				      out->version, out->u.hello.min_version, out->u.hello.max_version,
				      VMO__WIRE_VERSION_MIN, VMO__WIRE_VERSION);
		return refuse(-EPROTONOSUPPORT, out,
			      "protocol version mismatch: the peer speaks version %u, this side %u..%u", out->version,
			      VMO__WIRE_VERSION_MIN, VMO__WIRE_VERSION);
	}
	if (!(t = type_of(out->type)))
		return refuse(-EPROTO, out, "unknown message type");
	if (nfds != t->fds)
		return refuse(-EBADMSG, out, "%d descriptors with the message, %u expected", nfds, t->fds);
	size_t plen = len - VMO__WIRE_HDR;
	if (t->var ? plen < t->size : plen != t->size)
		return refuse(-EPROTO, out, "payload of %zu bytes, %s%u expected", plen, t->var ? "at least " : "",
			      t->size);
	r = parse_payload(b + VMO__WIRE_HDR, plen, out);
	if (r < 0) { /* nothing half-parsed is left behind: only the header */
		uint16_t v = out->version, ty = out->type;
		uint32_t seq = out->seq;
		memset(out, 0, sizeof *out);
		out->version = v;
		out->type = ty;
		out->seq = seq;
	}
	return r;
}

/* ---- encode ------------------------------------------------------------- */

/* Write a NUL-terminated name (at most max bytes, within its array of
 * max + 1) as its bytes: the length, or -EINVAL when it has no NUL. */
static int put_name(const struct vmo__wire_msg *m, const char *name, uint8_t *dst)
{
	size_t n = strnlen(name, VMO__WIRE_NAME_MAX + 1);
	if (n > VMO__WIRE_NAME_MAX)
		return refuse(-EINVAL, m, "object name not NUL-terminated within %u bytes", VMO__WIRE_NAME_MAX);
	memcpy(dst, name, n);
	return (int)n;
}

int vmo__wire_encode(const struct vmo__wire_msg *m, void *buf, size_t cap)
{
	uint8_t b[VMO__WIRE_MAX];
	uint8_t *p = b + VMO__WIRE_HDR;
	const struct wire_type *t = type_of(m->type);
	size_t plen;
	int n;

	if (!t)
		return refuse(-EINVAL, m, "encode: unknown message type");
	memset(b, 0, sizeof b);
	plen = t->size;
	switch (m->type) {
	case VMO__WIRE_HELLO:
		wr16(p, m->u.hello.min_version);
		wr16(p + 2, m->u.hello.max_version);
		wr64(p + 8, m->u.hello.features);
		break;
	case VMO__WIRE_HELLO_OK:
		wr16(p, m->u.hello_ok.version);
		wr16(p + 2, m->u.hello_ok.max_fds);
		wr32(p + 4, m->u.hello_ok.max_msg);
		wr64(p + 8, m->u.hello_ok.features);
		wr32(p + 16, m->u.hello_ok.list_max);
		wr32(p + 20, m->u.hello_ok.max_objects);
		break;
	case VMO__WIRE_OPEN:
		wr32(p, m->u.open.flags);
		wr32(p + 4, m->u.open.page_size);
		wr64(p + 8, m->u.open.size);
		if ((n = put_name(m, m->u.open.name, p + 20)) < 0)
			return n;
		wr16(p + 16, (uint16_t)n);
		plen += (size_t)n;
		break;
	case VMO__WIRE_OPEN_OK:
		wr64(p, m->u.open_ok.id);
		wr64(p + 8, m->u.open_ok.size);
		wr32(p + 16, m->u.open_ok.page_size);
		wr32(p + 20, m->u.open_ok.flags);
		break;
	case VMO__WIRE_ADOPT:
		wr64(p, m->u.adopt.uffd_features);
		break;
	case VMO__WIRE_ATTACH:
		wr64(p, m->u.attach.id);
		wr64(p + 8, m->u.attach.addr);
		wr64(p + 16, m->u.attach.len);
		wr64(p + 24, m->u.attach.off);
		wr32(p + 32, m->u.attach.prot);
		break;
	case VMO__WIRE_DETACH:
		wr64(p, m->u.detach.id);
		wr64(p + 8, m->u.detach.addr);
		wr64(p + 16, m->u.detach.len);
		break;
	case VMO__WIRE_SYNC:
	case VMO__WIRE_RETURN:
	case VMO__WIRE_DISCARD:
		wr64(p, m->u.range.id);
		wr64(p + 8, m->u.range.off);
		wr64(p + 16, m->u.range.len);
		wr32(p + 24, m->u.range.flags);
		break;
	case VMO__WIRE_STATS:
	case VMO__WIRE_CLOSE:
		wr64(p, m->u.id.id);
		break;
	case VMO__WIRE_STATS_OK:
		if (m->u.stats_ok.n > VMO__WIRE_STATS_MAX)
			return refuse(-EINVAL, m, "encode: %u counters (at most %u)", m->u.stats_ok.n,
				      VMO__WIRE_STATS_MAX);
		wr64(p, m->u.stats_ok.id);
		wr32(p + 8, m->u.stats_ok.n);
		for (uint32_t i = 0; i < m->u.stats_ok.n; i++)
			wr64(p + 16 + 8 * i, m->u.stats_ok.v[i]);
		plen += 8 * (size_t)m->u.stats_ok.n;
		break;
	case VMO__WIRE_LIST:
		wr64(p, m->u.list.cursor);
		break;
	case VMO__WIRE_LIST_OK:
		if (m->u.list_ok.n > VMO__WIRE_LIST_MAX)
			return refuse(-EINVAL, m, "encode: %u entries (at most %u)", m->u.list_ok.n,
				      VMO__WIRE_LIST_MAX);
		wr64(p, m->u.list_ok.next);
		wr32(p + 8, m->u.list_ok.n);
		for (uint32_t i = 0; i < m->u.list_ok.n; i++) {
			const struct vmo__wire_entry *e = &m->u.list_ok.e[i];
			uint8_t *q = p + plen; /* fits: the static assertion on LIST_OK */
			wr64(q, e->size);
			wr32(q + 8, e->page_size);
			if ((n = put_name(m, e->name, q + ENTRY_HDR)) < 0)
				return n;
			wr16(q + 12, (uint16_t)n);
			plen += ENTRY_HDR + (size_t)n;
		}
		break;
	case VMO__WIRE_OK:
		wr64(p, m->u.ok.val);
		break;
	case VMO__WIRE_CACHE_OPEN:
		wr64(p, m->u.cache_open.window);
		break;
	case VMO__WIRE_CACHE_YIELD:
	case VMO__WIRE_CACHE_GET:
		wr64(p, m->u.block.id);
		wr64(p + 8, m->u.block.off);
		wr64(p + 16, m->u.block.len);
		break;
	case VMO__WIRE_CACHE_FORGET:
		wr64(p, m->u.forget.id);
		wr32(p + 8, m->u.forget.all);
		break;
	case VMO__WIRE_CACHE_STATS:
		break;
	case VMO__WIRE_CLIENTS:
		wr64(p, m->u.list.cursor);
		break;
	case VMO__WIRE_CLIENTS_OK: {
		const struct vmo__wire_clients_ok *k = &m->u.clients_ok;
		if (k->n > VMO__WIRE_CLIENTS_MAX)
			return refuse(-EINVAL, m, "encode: %u entries, at most %u", k->n, VMO__WIRE_CLIENTS_MAX);
		wr64(p, k->next);
		wr32(p + 8, k->n);
		for (uint32_t i = 0; i < k->n; i++) {
			uint8_t *q = p + 16 + (size_t)i * CLIENT_SIZE;
			const struct vmo__wire_client *e = &k->e[i];
			wr32(q, e->pid);
			wr32(q + 4, e->uid);
			wr32(q + 8, e->gid);
			wr32(q + 12, e->objects);
			wr32(q + 16, e->views);
			wr64(q + 24, e->requests);
			wr64(q + 32, e->faults);
		}
		plen += (size_t)k->n * CLIENT_SIZE;
		break;
	}
	case VMO__WIRE_ERROR: {
		size_t k = strnlen(m->u.error.msg, sizeof m->u.error.msg);
		if (k > VMO__WIRE_ERRMSG_MAX)
			return refuse(-EINVAL, m, "encode: message not NUL-terminated within %u bytes",
				      VMO__WIRE_ERRMSG_MAX);
		wr32(p, (uint32_t)m->u.error.err);
		wr16(p + 4, (uint16_t)k);
		memcpy(p + 8, m->u.error.msg, k);
		plen += k;
		break;
	}
	}
	size_t len = VMO__WIRE_HDR + plen;
	wr32(b, VMO__WIRE_MAGIC);
	wr16(b + 4, VMO__WIRE_VERSION);
	wr16(b + 6, m->type);
	wr32(b + 8, (uint32_t)len);
	wr32(b + 12, m->seq);

	/* What the peer will check, checked here: parse what was written. */
	struct vmo__wire_msg chk;
	int r = vmo__wire_parse(b, len, t->fds, &chk);
	if (r < 0)
		return r;
	if (len > cap)
		return refuse(-ENOSPC, m, "encode: %zu bytes, room for %zu", len, cap);
	memcpy(buf, b, len);
	return (int)len;
}

/* ---- helpers for the two sides ------------------------------------------ */

int vmo__wire_negotiate(uint16_t min, uint16_t max)
{
	uint16_t v = max < VMO__WIRE_VERSION ? max : VMO__WIRE_VERSION;
	if (min > max || v < min || v < VMO__WIRE_VERSION_MIN) {
		vmo__set_detail("wire: protocol version mismatch: the peer speaks versions %u..%u, this side %u..%u",
				min, max, VMO__WIRE_VERSION_MIN, VMO__WIRE_VERSION);
		return -EPROTONOSUPPORT;
	}
	return v;
}

void vmo__wire_make_error(struct vmo__wire_msg *m, uint32_t seq, int err, const char *fmt, ...)
{
	memset(m, 0, sizeof *m);
	m->type = VMO__WIRE_ERROR;
	m->seq = seq;
	m->u.error.err = err < 0 && err >= -4095 ? err : -EIO;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m->u.error.msg, sizeof m->u.error.msg, fmt, ap);
	va_end(ap);
	for (char *c = m->u.error.msg; *c; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
			*c = '?';
}

/* ---- the socket --------------------------------------------------------- */

/* Descriptors one packet may carry, either way (vmo__sock_send/recv). */
#define SOCK_MAX_FDS 8

ssize_t vmo__sock_send(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int) * SOCK_MAX_FDS)];
	} c;
	if (nfds < 0 || nfds > SOCK_MAX_FDS)
		return -EINVAL;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (nfds) {
		memset(&c, 0, sizeof c);
		mh.msg_control = c.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
	}
	ssize_t r;
	do
		r = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

ssize_t vmo__sock_recv(int sock, void *buf, size_t cap, int *fds, int maxfds, int *nfds, int *flags)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int) * SOCK_MAX_FDS) + CMSG_SPACE(sizeof(struct ucred))];
	} c;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr mh;
	ssize_t n;
	*nfds = 0;
	do {
		memset(&mh, 0, sizeof mh);
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = c.b;
		mh.msg_controllen = sizeof c.b;
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len < CMSG_LEN(0))
			continue;
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		const unsigned char *d = CMSG_DATA(cm);
		for (size_t i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, d + i * sizeof(int), sizeof fd);
			if (*nfds < maxfds)
				fds[(*nfds)++] = fd;
			else
				close(fd); /* (more than the caller takes) */
		}
	}
	*flags = mh.msg_flags;
	return n;
}

int vmo__wire_send(int sock, const struct vmo__wire_msg *m, const int *fds, int nfds)
{
	uint8_t buf[VMO__WIRE_MAX];
	int n = vmo__wire_encode(m, buf, sizeof buf);
	if (n < 0)
		return n;
	if (nfds != vmo__wire_type_fds(m->type) || (nfds && !fds))
		return refuse(-EINVAL, m, "send: %d descriptors given, %d needed", nfds, vmo__wire_type_fds(m->type));
	for (int i = 0; i < nfds; i++)
		if (fds[i] < 0)
			return refuse(-EBADF, m, "send: descriptor %d", fds[i]);

	ssize_t r = vmo__sock_send(sock, buf, (size_t)n, fds, nfds);
	if (r < 0)
		return r == -EPIPE ? -ECONNRESET : (int)r;
	if (r != n) /* (a SOCK_SEQPACKET send is all or nothing) */
		return refuse(-EIO, m, "send: %zd of %d bytes sent", r, n);
	return 0;
}

/* Descriptors one recvmsg can bring at most: room for more than a message
 * may carry, so that a peer sending too many is told apart (and for
 * SCM_CREDENTIALS if the socket has SO_PASSCRED). */
#define RECV_FDS SOCK_MAX_FDS

/* The type and seq of a message refused before parsing (too large), for
 * the answer, when its header is one of ours. */
static void peek_header(const uint8_t *b, size_t len, struct vmo__wire_msg *m)
{
	if (len >= VMO__WIRE_HDR && rd32(b) == VMO__WIRE_MAGIC) {
		m->version = rd16(b + 4);
		m->type = rd16(b + 6);
		m->seq = rd32(b + 12);
	}
}

int vmo__wire_recv(int sock, struct vmo__wire_msg *m, int *fds, int *nfds)
{
	uint8_t buf[VMO__WIRE_MAX];
	int got[RECV_FDS];
	int ng = 0, r, flags = 0;

	*nfds = 0;
	memset(m, 0, sizeof *m);
	ssize_t n = vmo__sock_recv(sock, buf, sizeof buf, got, RECV_FDS, &ng, &flags);
	if (n < 0)
		return (int)n;

	if (n == 0) {
		r = refuse(-ECONNRESET, NULL, "the peer closed the connection (or sent an empty message)");
	} else if (flags & (MSG_TRUNC | MSG_CTRUNC)) {
		peek_header(buf, (size_t)n, m);
		r = refuse(-EMSGSIZE, m->type ? m : NULL, "a message of more than %u bytes or %u descriptors",
			   VMO__WIRE_MAX, VMO__WIRE_MAX_FDS);
	} else {
		/* (more than VMO__WIRE_MAX_FDS descriptors: -EBADMSG, as any
		 * count the type does not take) */
		r = vmo__wire_parse(buf, (size_t)n, ng, m);
	}
	if (r < 0) {
		for (int i = 0; i < ng; i++)
			close(got[i]);
		return r;
	}
	for (int i = 0; i < ng; i++)
		fds[i] = got[i];
	*nfds = ng;
	return 0;
}
