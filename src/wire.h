/* SPDX-License-Identifier: MIT */
/* wire.h - the wire protocol between a vmo server and its clients: the one
 * module both sides use to build, send, receive and check messages
 * (docs/wire.md is the reference: layout, limits, versioning, trust).
 *
 * Transport: AF_UNIX, SOCK_SEQPACKET; one message per packet, at most
 * VMO__WIRE_MAX bytes and VMO__WIRE_MAX_FDS descriptors (SCM_RIGHTS).  A
 * message is a 16-byte little-endian header (magic "VMOW", version, type,
 * len, seq) and a fixed payload per type; strings are length-prefixed and
 * bounded.  Encoding is canonical: reserved bytes are zero and every length
 * is exact, so a message that parses re-encodes to the same bytes.
 *
 * vmo__wire_parse trusts no byte: it reads only buf[0..len), checks the
 * header, the type, the count of descriptors that came with the message,
 * the exact payload size and every field's range before filling *out, and
 * takes any bytes.  vmo__wire_encode checks the same rules (it parses what
 * it wrote), so a side never sends what the other must reject.
 *
 * Errors (negative errno), each with a detail (vmo__set_detail) saying what
 * and where:
 *   -EMSGSIZE         the message is larger than VMO__WIRE_MAX (or the
 *                     ancillary data was truncated: too many descriptors);
 *   -EPROTO           malformed: shorter than its header or its payload,
 *                     wrong magic, a len field that is not the packet's
 *                     size, an unknown type, a payload of the wrong size,
 *                     nonzero reserved bytes;
 *   -EPROTONOSUPPORT  a message of another protocol version; the detail
 *                     names both versions (and the peer's range for a
 *                     HELLO), and out->version, type and seq are set (with
 *                     the payload of a HELLO or an ERROR, whose layout is
 *                     the same in every version) so a server can answer;
 *   -EBADMSG          the wrong number of descriptors for the type (a
 *                     request that carries none got one, or one that needs
 *                     one got none);
 *   -EINVAL           a field out of range: a zero length, off + len past
 *                     2^63, a misaligned address, unknown flag bits, a bad
 *                     object name, an error code that is no errno...
 * After a failure past the header (-EPROTONOSUPPORT, -EBADMSG, -EINVAL and
 * most -EPROTO), out->type and out->seq hold the header's, so that the
 * reply can carry the same seq; out is zeroed otherwise. */
#ifndef VMO_WIRE_H
#define VMO_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMO__WIRE_MAGIC 0x574f4d56u /* "VMOW" on the wire (little-endian) */
#define VMO__WIRE_VERSION 1         /* the version this code speaks */
#define VMO__WIRE_VERSION_MIN 1     /* the oldest it accepts */
#define VMO__WIRE_HDR 16            /* bytes of the header */
#define VMO__WIRE_MAX 4096          /* bytes of a message at most, header included */
#define VMO__WIRE_MAX_FDS 2         /* descriptors with one message at most */
#define VMO__WIRE_NAME_MAX 255      /* bytes of an object name at most */
#define VMO__WIRE_LIST_MAX 14       /* names in one LIST_OK at most */
#define VMO__WIRE_STATS_MAX 32      /* counters in one STATS_OK at most */
#define VMO__WIRE_CLIENTS_MAX 64    /* entries in one CLIENTS_OK at most */
#define VMO__WIRE_ERRMSG_MAX 255    /* bytes of an ERROR's message at most */
#define VMO__WIRE_OFF_LIMIT (1ull << 63) /* off + len, and a size, at most this */
#define VMO__WIRE_ADDR_LIMIT (1ull << 57) /* addr + len at most this (5-level paging) */
#define VMO__WIRE_ALIGN 4096u       /* addresses, offsets and lengths: multiples of this */

/* Message types.  A request is answered by the reply named with it, or by
 * ERROR; OK and ERROR may answer any request. */
enum vmo__wire_type {
	VMO__WIRE_HELLO = 1, /* -> HELLO_OK */
	VMO__WIRE_HELLO_OK = 2,
	VMO__WIRE_OPEN = 3, /* -> OPEN_OK + the object's memfd */
	VMO__WIRE_OPEN_OK = 4,
	VMO__WIRE_ADOPT = 5,   /* + the client's userfaultfd -> OK */
	VMO__WIRE_ATTACH = 6,  /* -> OK */
	VMO__WIRE_DETACH = 7,  /* -> OK */
	VMO__WIRE_SYNC = 8,    /* -> OK */
	VMO__WIRE_RETURN = 9,  /* -> OK */
	VMO__WIRE_DISCARD = 10, /* -> OK */
	VMO__WIRE_STATS = 11,  /* -> STATS_OK */
	VMO__WIRE_STATS_OK = 12,
	VMO__WIRE_CLOSE = 13, /* -> OK */
	VMO__WIRE_LIST = 14,  /* -> LIST_OK */
	VMO__WIRE_LIST_OK = 15,
	VMO__WIRE_OK = 16,
	VMO__WIRE_ERROR = 17,
	/* the yield cache of the server, shared by its clients */
	VMO__WIRE_CACHE_OPEN = 18,   /* + the client's window memfd -> OK */
	VMO__WIRE_CACHE_YIELD = 19,  /* -> OK */
	VMO__WIRE_CACHE_GET = 20,    /* -> OK (val: bytes got), ERROR -ENOENT on a miss */
	VMO__WIRE_CACHE_FORGET = 21, /* -> OK */
	VMO__WIRE_CACHE_STATS = 22,  /* -> STATS_OK (id 0: the u64 fields of struct vmo_cache_stats) */
	VMO__WIRE_CLIENTS = 23,      /* (payload: struct vmo__wire_list) -> CLIENTS_OK */
	VMO__WIRE_CLIENTS_OK = 24,
	VMO__WIRE_NTYPES /* one past the last */
};

/* OPEN and OPEN_OK flags: exactly one of RDONLY and RDWR.  In OPEN, CREATE
 * asks to create the object if it does not exist; in OPEN_OK it says this
 * open created it. */
#define VMO__WIRE_O_RDONLY (1u << 0)
#define VMO__WIRE_O_RDWR (1u << 1)
#define VMO__WIRE_O_CREATE (1u << 2)
/* OPEN: keep the object after the last close (Sprite's may_cache); a hint
 * the server may ignore */
#define VMO__WIRE_O_CACHE (1u << 3)
/* ATTACH prot: VMO_PROT_READ, optionally with VMO_PROT_WRITE (vmo.h) */
/* SYNC / RETURN / DISCARD flags: VMO_WAIT (vmo.h) */

struct vmo__wire_hello {
	uint16_t min_version, max_version; /* the client's range, 1 <= min <= max */
	uint64_t features;                 /* VMO__WIRE_F_* the client can use (none yet) */
};
struct vmo__wire_hello_ok {
	uint16_t version;     /* the one chosen, in the client's range */
	uint16_t max_fds;     /* <= VMO__WIRE_MAX_FDS */
	uint32_t max_msg;     /* bytes, 256..VMO__WIRE_MAX */
	uint64_t features;    /* of the client's, those the server uses */
	uint32_t list_max;    /* names per LIST_OK, 1..VMO__WIRE_LIST_MAX */
	uint32_t max_objects; /* objects a client may hold open; 0 = no limit */
};
struct vmo__wire_open {
	uint32_t flags;     /* VMO__WIRE_O_* */
	uint32_t page_size; /* 0 (the object's, or the server's default) or 4096 << k, <= 2 MiB */
	uint64_t size;      /* bytes (< VMO__WIRE_OFF_LIMIT); 0 = the object's */
	char name[VMO__WIRE_NAME_MAX + 1]; /* NUL-terminated (vmo__wire_name_ok) */
};
struct vmo__wire_open_ok {
	uint64_t id;        /* the object, for this client; never 0 */
	uint64_t size;      /* bytes */
	uint32_t page_size; /* 4096 << k, <= 2 MiB */
	uint32_t flags;     /* VMO__WIRE_O_*: the access granted; CREATE if created */
};
struct vmo__wire_adopt {
	uint64_t uffd_features; /* the features the userfaultfd was created with */
};
struct vmo__wire_attach {
	uint64_t id;   /* object */
	uint64_t addr; /* where the client mapped the memfd: aligned, nonzero */
	uint64_t len;  /* aligned, nonzero; addr + len <= VMO__WIRE_ADDR_LIMIT */
	uint64_t off;  /* object offset: aligned; off + len <= VMO__WIRE_OFF_LIMIT */
	uint32_t prot; /* VMO_PROT_READ [| VMO_PROT_WRITE] */
};
struct vmo__wire_detach {
	uint64_t id, addr, len; /* as in ATTACH */
};
struct vmo__wire_range { /* SYNC, RETURN, DISCARD */
	uint64_t id, off, len;  /* aligned, len nonzero, off + len <= VMO__WIRE_OFF_LIMIT */
	uint32_t flags;         /* VMO_WAIT */
};
struct vmo__wire_id { /* STATS (id 0: the server's totals), CLOSE (id != 0) */
	uint64_t id;
};
struct vmo__wire_stats_ok {
	uint64_t id;
	uint32_t n;                        /* counters, <= VMO__WIRE_STATS_MAX */
	uint64_t v[VMO__WIRE_STATS_MAX];   /* the u64 fields of struct vmo_stats, in order */
};
struct vmo__wire_list {
	uint64_t cursor; /* 0 to start, then the last LIST_OK's next */
};
struct vmo__wire_list_ok {
	uint64_t next; /* cursor for the next LIST; 0: no more */
	uint32_t n;    /* entries, <= VMO__WIRE_LIST_MAX */
	struct vmo__wire_entry {
		uint64_t size;
		uint32_t page_size; /* 4096 << k, <= 2 MiB */
		char name[VMO__WIRE_NAME_MAX + 1];
	} e[VMO__WIRE_LIST_MAX];
};
struct vmo__wire_cache_open {
	uint64_t window; /* bytes of the window memfd that comes with it: aligned, nonzero */
};
struct vmo__wire_block { /* CACHE_YIELD, CACHE_GET */
	uint64_t id;       /* the block's id (any value) */
	uint64_t off, len; /* where in the window: aligned, len nonzero, off + len <= VMO__WIRE_OFF_LIMIT */
};
struct vmo__wire_forget {
	uint64_t id;
	uint32_t all; /* 1: every block of this client's user (id ignored), else 0 */
};
struct vmo__wire_clients_ok {
	uint64_t next; /* cursor for the next CLIENTS; 0: no more */
	uint32_t n;    /* entries, <= VMO__WIRE_CLIENTS_MAX */
	struct vmo__wire_client {
		uint32_t pid, uid, gid;
		uint32_t objects, views; /* open now */
		uint64_t requests, faults; /* served so far */
	} e[VMO__WIRE_CLIENTS_MAX];
};
struct vmo__wire_ok {
	uint64_t val; /* 0 unless the request says otherwise */
};
struct vmo__wire_error {
	int32_t err; /* a negative errno, -4095..-1 */
	char msg[VMO__WIRE_ERRMSG_MAX + 1]; /* printable ASCII, NUL-terminated; may be empty */
};

struct vmo__wire_msg {
	uint16_t type;    /* enum vmo__wire_type */
	uint16_t version; /* parse: the header's; encode ignores it (writes VMO__WIRE_VERSION) */
	uint32_t seq;     /* chosen by the requester, echoed by the reply */
	union {
		struct vmo__wire_hello hello;
		struct vmo__wire_hello_ok hello_ok;
		struct vmo__wire_open open;
		struct vmo__wire_open_ok open_ok;
		struct vmo__wire_adopt adopt;
		struct vmo__wire_attach attach;
		struct vmo__wire_detach detach;
		struct vmo__wire_range range;  /* SYNC, RETURN, DISCARD */
		struct vmo__wire_id id;        /* STATS, CLOSE */
		struct vmo__wire_stats_ok stats_ok;
		struct vmo__wire_list list; /* LIST, CLIENTS */
		struct vmo__wire_clients_ok clients_ok;
		struct vmo__wire_list_ok list_ok;
		struct vmo__wire_ok ok;
		struct vmo__wire_error error;
		struct vmo__wire_cache_open cache_open;
		struct vmo__wire_block block; /* CACHE_YIELD, CACHE_GET */
		struct vmo__wire_forget forget;
	} u;
};

/* Encode m into buf[0..cap): the bytes written, or -errno: -ENOSPC (cap too
 * small), or what vmo__wire_parse would say of the result (an unknown type,
 * a field out of range, a name not NUL-terminated within its array...). */
int vmo__wire_encode(const struct vmo__wire_msg *m, void *buf, size_t cap);
/* Check and decode one message of len bytes that came with nfds
 * descriptors: 0, or -errno (above).  out is written whatever happens. */
int vmo__wire_parse(const void *buf, size_t len, int nfds, struct vmo__wire_msg *out);

/* One packet of len bytes with nfds descriptors (SCM_RIGHTS, at most 8):
 * bytes sent, or -errno (EINTR retried, no SIGPIPE).  The framing under
 * vmo__wire_send, for a protocol of its own (fork.c's handshake). */
ssize_t vmo__sock_send(int sock, const void *buf, size_t len, const int *fds, int nfds);
/* One packet into buf (cap bytes): its length (0: the peer closed), or
 * -errno (EINTR retried).  The descriptors that came with it, close-on-exec,
 * into fds (maxfds at most; more are closed), their count in *nfds;
 * *flags gets msg_flags (MSG_TRUNC, MSG_CTRUNC). */
ssize_t vmo__sock_recv(int sock, void *buf, size_t cap, int *fds, int maxfds, int *nfds, int *flags);

/* Send m with nfds descriptors (exactly vmo__wire_type_fds(m->type)) as one
 * packet: 0, or -errno (-EINVAL/-EPROTO... from encoding, -ECONNRESET if the
 * peer is gone, -EAGAIN on a non-blocking socket, other errors of sendmsg).
 * EINTR is retried; no SIGPIPE. */
int vmo__wire_send(int sock, const struct vmo__wire_msg *m, const int *fds, int nfds);
/* Receive one packet and parse it.  fds has room for VMO__WIRE_MAX_FDS;
 * *nfds gets how many came with the message (0 on failure).  Descriptors
 * are received close-on-exec.  0, or -errno: -ECONNRESET when the peer has
 * closed (or sent an empty packet), -EMSGSIZE for a packet too large or
 * with too many descriptors, -EAGAIN, errors of recvmsg, or vmo__wire_parse's;
 * on any failure every descriptor that came is closed.  EINTR is retried. */
int vmo__wire_recv(int sock, struct vmo__wire_msg *m, int *fds, int *nfds);

/* "HELLO", "OPEN_OK", ...; "unknown" for a type that is none. */
const char *vmo__wire_type_name(uint16_t type);
/* The number of descriptors a message of this type carries (0 or 1);
 * -1 for an unknown type. */
int vmo__wire_type_fds(uint16_t type);
/* A request (sent by a client), as opposed to a reply. */
bool vmo__wire_is_request(uint16_t type);
/* Whether name[0..len) is an object name: 1..VMO__WIRE_NAME_MAX bytes of
 * [A-Za-z0-9._-], neither "." nor "..". */
bool vmo__wire_name_ok(const char *name, size_t len);
/* The version to speak with a peer whose range is [min, max]: the highest
 * both know, or -EPROTONOSUPPORT with a detail naming both ranges. */
int vmo__wire_negotiate(uint16_t min, uint16_t max);
/* Make m an ERROR answering seq: err (a negative errno; anything else
 * becomes -EIO) and a message from fmt, truncated to VMO__WIRE_ERRMSG_MAX
 * bytes with anything not printable ASCII made '?'. */
void vmo__wire_make_error(struct vmo__wire_msg *m, uint32_t seq, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
