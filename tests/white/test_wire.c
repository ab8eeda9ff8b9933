/* SPDX-License-Identifier: MIT */
/* test_wire (white-box): the wire protocol of served objects (src/wire.h,
 * docs/wire.md).  Every message type goes through encode and parse, and
 * through a real SOCK_SEQPACKET socketpair with its descriptor; then every
 * class of malformed message is refused with its errno: truncated at every
 * byte, oversized, wrong magic, another version (-EPROTONOSUPPORT with a
 * detail naming both), unknown types, a len field lying either way,
 * descriptors where none belong and none where one must be (and none of
 * them leaked: /proc/self/fd is counted before and after), bad names,
 * offsets and lengths out of range.  The committed seed corpus of the fuzz
 * target (fuzz/corpus/wire/) must match the samples, and a short random
 * mutation run checks the fuzz target's property (what parses re-encodes
 * to the same bytes) in every build, without clang.  Needs no
 * userfaultfd. */
#include "helper.h"
#include "internal.h"
#include "wire.h"
#include "wire_samples.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static struct wire_sample samples[64];
static size_t nsamples;

static void load_samples(void)
{
	if (!nsamples)
		nsamples = wire_samples(samples);
	CHECK(nsamples >= VMO__WIRE_NTYPES - 1);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	CHECK(d);
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static bool cloexec(int fd)
{
	int f = fcntl(fd, F_GETFD);
	CHECK(f >= 0);
	return f & FD_CLOEXEC;
}

static bool fd_open(int fd) { return fcntl(fd, F_GETFD) >= 0; }

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

/* Encode a sample (CHECKed) into b: its length. */
static size_t enc(const struct vmo__wire_msg *m, uint8_t *b)
{
	int n = vmo__wire_encode(m, b, VMO__WIRE_MAX);
	if (n < 0)
		fprintf(stderr, "encode %s: %s\n", vmo__wire_type_name(m->type), vmo_last_error_detail());
	CHECK(n >= VMO__WIRE_HDR);
	return (size_t)n;
}

static const struct vmo__wire_msg *sample_of(uint16_t type)
{
	load_samples();
	for (size_t i = 0; i < nsamples; i++)
		if (samples[i].m.type == type)
			return &samples[i].m;
	CHECK(!"no sample of the type");
	return NULL;
}

/* parse with the type's own descriptor count */
static int parse(const uint8_t *b, size_t len, struct vmo__wire_msg *out)
{
	uint16_t type = len >= 8 ? (uint16_t)(b[6] | b[7] << 8) : 0;
	int nfds = vmo__wire_type_fds(type);
	return vmo__wire_parse(b, len, nfds < 0 ? 0 : nfds, out);
}

/* The message with `field` (a payload offset) overwritten, parsed. */
static int parse_patched(uint16_t type, size_t at, unsigned width, uint64_t v)
{
	uint8_t b[VMO__WIRE_MAX];
	struct vmo__wire_msg out;
	size_t n = enc(sample_of(type), b);
	CHECK(VMO__WIRE_HDR + at + width <= n);
	uint8_t *p = b + VMO__WIRE_HDR + at;
	if (width == 2)
		wr16(p, (uint16_t)v);
	else if (width == 4)
		wr32(p, (uint32_t)v);
	else
		wr64(p, v);
	return parse(b, n, &out);
}

static bool same(const struct vmo__wire_msg *a, const struct vmo__wire_msg *parsed)
{
	struct vmo__wire_msg x = *a;
	x.version = VMO__WIRE_VERSION;
	return !memcmp(&x, parsed, sizeof x);
}

static int sockpair(int sv[2])
{
	return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
}

/* Send raw bytes with nfds descriptors (fds) as one packet. */
static void send_raw(int sock, const void *b, size_t len, const int *fds, int nfds)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int) * 32)];
	} c;
	struct iovec iov = { .iov_base = (void *)b, .iov_len = len };
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
	CHECK_EQ(sendmsg(sock, &mh, MSG_NOSIGNAL), (long)len);
}

/* recv on sock must fail with err, leaving no descriptor behind. */
static void recv_refused(int sock, int err)
{
	struct vmo__wire_msg m;
	int fds[VMO__WIRE_MAX_FDS] = { -1, -1 }, nfds = 7;
	CHECK_EQ(vmo__wire_recv(sock, &m, fds, &nfds), err);
	CHECK_EQ(nfds, 0);
}

/* ---- round trips -------------------------------------------------------- */

static void case_roundtrip(void)
{
	uint8_t b[VMO__WIRE_MAX], b2[VMO__WIRE_MAX];
	struct vmo__wire_msg out;
	bool seen[VMO__WIRE_NTYPES] = { false };
	load_samples();
	for (size_t i = 0; i < nsamples; i++) {
		const struct vmo__wire_msg *m = &samples[i].m;
		size_t n = enc(m, b);
		CHECK_EQ(b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24, VMO__WIRE_MAGIC);
		CHECK(!memcmp(b, "VMOW", 4));
		CHECK_EQ(b[8] | b[9] << 8, n);
		CHECK_OK(parse(b, n, &out));
		CHECK(same(m, &out));
		CHECK_EQ(vmo__wire_encode(&out, b2, sizeof b2), (long)n);
		CHECK(!memcmp(b, b2, n));
		CHECK(strcmp(vmo__wire_type_name(m->type), "unknown"));
		/* the exact room is enough, one byte less is not */
		CHECK_EQ(vmo__wire_encode(m, b2, n), (long)n);
		CHECK_EQ(vmo__wire_encode(m, b2, n - 1), -ENOSPC);
		seen[m->type] = true;
	}
	for (unsigned t = 1; t < VMO__WIRE_NTYPES; t++)
		CHECK(seen[t]);
	/* the table */
	CHECK(!strcmp(vmo__wire_type_name(VMO__WIRE_OPEN_OK), "OPEN_OK"));
	CHECK(!strcmp(vmo__wire_type_name(0), "unknown"));
	CHECK(!strcmp(vmo__wire_type_name(VMO__WIRE_NTYPES), "unknown"));
	CHECK_EQ(vmo__wire_type_fds(VMO__WIRE_OPEN_OK), 1);
	CHECK_EQ(vmo__wire_type_fds(VMO__WIRE_ADOPT), 1);
	CHECK_EQ(vmo__wire_type_fds(VMO__WIRE_OPEN), 0);
	CHECK_EQ(vmo__wire_type_fds(999), -1);
	CHECK(vmo__wire_is_request(VMO__WIRE_HELLO) && vmo__wire_is_request(VMO__WIRE_LIST));
	CHECK(!vmo__wire_is_request(VMO__WIRE_OK) && !vmo__wire_is_request(VMO__WIRE_LIST_OK));
	CHECK(!vmo__wire_is_request(0));
}

/* A descriptor standing for what a message carries: a memfd (OPEN_OK) or
 * an eventfd (ADOPT: the module does not look at what the fd is). */
static int carried_fd(uint16_t type)
{
	int fd = type == VMO__WIRE_OPEN_OK ? memfd_create("wire", MFD_CLOEXEC) : eventfd(0, EFD_CLOEXEC);
	CHECK(fd >= 0);
	return fd;
}

static void case_socketpair(void)
{
	int sv[2];
	load_samples();
	int before = count_fds();
	CHECK_OK(sockpair(sv));
	for (size_t i = 0; i < nsamples; i++) {
		const struct vmo__wire_msg *m = &samples[i].m;
		int want = vmo__wire_type_fds(m->type), mine = -1;
		if (want)
			mine = carried_fd(m->type);
		CHECK_OK(vmo__wire_send(sv[0], m, &mine, want));
		struct vmo__wire_msg out;
		int fds[VMO__WIRE_MAX_FDS] = { -1, -1 }, nfds = -1;
		CHECK_OK(vmo__wire_recv(sv[1], &out, fds, &nfds));
		CHECK(same(m, &out));
		CHECK_EQ(nfds, want);
		if (want) {
			struct stat a, b;
			CHECK(fds[0] >= 0 && fds[0] != mine);
			CHECK(cloexec(fds[0]));
			CHECK_OK(fstat(mine, &a));
			CHECK_OK(fstat(fds[0], &b));
			CHECK(a.st_ino == b.st_ino && a.st_dev == b.st_dev); /* the same file */
			close(fds[0]);
			close(mine);
		}
		/* the other way too (the socket is symmetric) */
		if (!want) {
			CHECK_OK(vmo__wire_send(sv[1], m, NULL, 0));
			CHECK_OK(vmo__wire_recv(sv[0], &out, fds, &nfds));
			CHECK(same(m, &out));
		}
	}
	/* a send with the wrong number of descriptors is refused before anything goes */
	int fd = carried_fd(VMO__WIRE_OPEN_OK);
	CHECK_EQ(vmo__wire_send(sv[0], sample_of(VMO__WIRE_HELLO), &fd, 1), -EINVAL);
	CHECK_EQ(vmo__wire_send(sv[0], sample_of(VMO__WIRE_OPEN_OK), NULL, 0), -EINVAL);
	int bad = -1;
	CHECK_EQ(vmo__wire_send(sv[0], sample_of(VMO__WIRE_OPEN_OK), &bad, 1), -EBADF);
	struct vmo__wire_msg m = *sample_of(VMO__WIRE_SYNC);
	m.u.range.len = 0;
	CHECK_EQ(vmo__wire_send(sv[0], &m, NULL, 0), -EINVAL); /* encode checks as parse does */
	close(fd);
	/* nothing was sent by the refused calls */
	CHECK_OK(fcntl(sv[1], F_SETFL, O_NONBLOCK));
	recv_refused(sv[1], -EAGAIN);
	close(sv[0]);
	close(sv[1]);
	CHECK_EQ(count_fds(), before);
}

static void case_peer_closed(void)
{
	int sv[2];
	CHECK_OK(sockpair(sv));
	close(sv[0]);
	recv_refused(sv[1], -ECONNRESET);
	/* and no SIGPIPE from a send to a closed peer */
	CHECK_EQ(vmo__wire_send(sv[1], sample_of(VMO__WIRE_HELLO), NULL, 0), -ECONNRESET);
	close(sv[1]);
	/* an empty packet is taken as the end too, and its descriptor closed */
	CHECK_OK(sockpair(sv));
	int before = count_fds();
	int fd = carried_fd(VMO__WIRE_ADOPT);
	send_raw(sv[0], "", 0, &fd, 1);
	close(fd);
	recv_refused(sv[1], -ECONNRESET);
	CHECK_EQ(count_fds(), before);
	close(sv[0]);
	close(sv[1]);
}

/* ---- malformed ---------------------------------------------------------- */

static void case_truncated(void)
{
	uint8_t b[VMO__WIRE_MAX];
	struct vmo__wire_msg out;
	load_samples();
	for (size_t i = 0; i < nsamples; i++) {
		size_t n = enc(&samples[i].m, b);
		for (size_t k = 0; k < n; k++) {
			/* cut, the len field still saying n */
			CHECK_EQ(parse(b, k, &out), -EPROTO);
			if (k < VMO__WIRE_HDR)
				continue;
			/* cut, and the len field made to agree */
			uint8_t c[VMO__WIRE_MAX];
			memcpy(c, b, k);
			wr32(c + 8, (uint32_t)k);
			int r = parse(c, k, &out);
			if (r != -EPROTO)
				fprintf(stderr, "%s cut at %zu: %d\n", samples[i].name, k, r);
			CHECK_EQ(r, -EPROTO);
			CHECK_EQ(out.type, samples[i].m.type); /* the header's, for the answer */
			CHECK_EQ(out.seq, samples[i].m.seq);
		}
	}
	/* through a socket */
	int sv[2];
	CHECK_OK(sockpair(sv));
	size_t n = enc(sample_of(VMO__WIRE_ATTACH), b);
	send_raw(sv[0], b, n - 1, NULL, 0);
	recv_refused(sv[1], -EPROTO);
	send_raw(sv[0], b, 5, NULL, 0);
	recv_refused(sv[1], -EPROTO);
	close(sv[0]);
	close(sv[1]);
}

static void case_oversized(void)
{
	static uint8_t b[2 * VMO__WIRE_MAX];
	struct vmo__wire_msg out;
	size_t n = enc(sample_of(VMO__WIRE_LIST_OK), b);
	/* trailing bytes, the len field agreeing: the payload's size is wrong */
	memset(b + n, 0, 8);
	wr32(b + 8, (uint32_t)n + 8);
	CHECK_EQ(parse(b, n + 8, &out), -EPROTO);
	n = enc(sample_of(VMO__WIRE_OK), b);
	wr32(b + 8, (uint32_t)n + 1);
	CHECK_EQ(parse(b, n + 1, &out), -EPROTO);
	/* past the limit */
	wr32(b + 8, VMO__WIRE_MAX + 1);
	CHECK_EQ(parse(b, VMO__WIRE_MAX + 1, &out), -EMSGSIZE);
	CHECK_EQ(out.type, VMO__WIRE_OK);
	wr32(b + 8, 2 * VMO__WIRE_MAX);
	CHECK_EQ(parse(b, 2 * VMO__WIRE_MAX, &out), -EMSGSIZE);
	/* through a socket, with a descriptor that must not stay */
	int sv[2];
	CHECK_OK(sockpair(sv));
	int before = count_fds();
	int fd = carried_fd(VMO__WIRE_ADOPT);
	send_raw(sv[0], b, VMO__WIRE_MAX + 1, &fd, 1);
	send_raw(sv[0], b, 2 * VMO__WIRE_MAX, NULL, 0);
	close(fd);
	recv_refused(sv[1], -EMSGSIZE);
	recv_refused(sv[1], -EMSGSIZE);
	CHECK_EQ(count_fds(), before);
	/* and the next message is read whole */
	CHECK_OK(vmo__wire_send(sv[0], sample_of(VMO__WIRE_CLOSE), NULL, 0));
	int fds[VMO__WIRE_MAX_FDS], nfds;
	CHECK_OK(vmo__wire_recv(sv[1], &out, fds, &nfds));
	CHECK(same(sample_of(VMO__WIRE_CLOSE), &out));
	close(sv[0]);
	close(sv[1]);
}

static void case_magic(void)
{
	uint8_t b[VMO__WIRE_MAX];
	struct vmo__wire_msg out;
	size_t n = enc(sample_of(VMO__WIRE_HELLO), b);
	for (int i = 0; i < 4; i++) {
		b[i] ^= 0x20; /* "vMOW", ... */
		CHECK_EQ(parse(b, n, &out), -EPROTO);
		CHECK(strstr(vmo_last_error_detail(), "magic"));
		CHECK_EQ(out.type, 0); /* not ours: nothing of it is read */
		b[i] ^= 0x20;
	}
	memset(b, 0, 16);
	CHECK_EQ(parse(b, n, &out), -EPROTO);
}

static void case_version(void)
{
	uint8_t b[VMO__WIRE_MAX];
	struct vmo__wire_msg out;
	/* any message of another version */
	size_t n = enc(sample_of(VMO__WIRE_SYNC), b);
	for (unsigned v = 0; v < 4; v++) {
		if (v == VMO__WIRE_VERSION)
			continue;
		wr16(b + 4, (uint16_t)v);
		CHECK_EQ(parse(b, n, &out), -EPROTONOSUPPORT);
		CHECK_EQ(out.version, v);
		CHECK_EQ(out.type, VMO__WIRE_SYNC);
		CHECK_EQ(out.seq, sample_of(VMO__WIRE_SYNC)->seq);
		char want[64];
		snprintf(want, sizeof want, "speaks version %u, this side 1..1", v);
		CHECK(strstr(vmo_last_error_detail(), want));
	}
	wr16(b + 4, 0xffff);
	CHECK_EQ(parse(b, n, &out), -EPROTONOSUPPORT);

	/* a HELLO of version 2, for versions 2..3: its range is read (frozen layout) */
	n = enc(sample_of(VMO__WIRE_HELLO), b);
	wr16(b + 4, 2);
	wr16(b + 16, 2);
	wr16(b + 18, 3);
	CHECK_EQ(parse(b, n, &out), -EPROTONOSUPPORT);
	CHECK_EQ(out.type, VMO__WIRE_HELLO);
	CHECK_EQ(out.u.hello.min_version, 2);
	CHECK_EQ(out.u.hello.max_version, 3);
	CHECK(strstr(vmo_last_error_detail(), "version 2 (range 2..3), this side 1..1"));
	/* a version-1 HELLO whose range leaves 1 out: parses, negotiation refuses */
	wr16(b + 4, 1);
	CHECK_OK(parse(b, n, &out));
	CHECK_EQ(vmo__wire_negotiate(out.u.hello.min_version, out.u.hello.max_version), -EPROTONOSUPPORT);
	CHECK(strstr(vmo_last_error_detail(), "the peer speaks versions 2..3, this side 1..1"));
	CHECK_EQ(vmo__wire_negotiate(1, 1), 1);
	CHECK_EQ(vmo__wire_negotiate(1, 9), 1);
	CHECK_EQ(vmo__wire_negotiate(0, 0), -EPROTONOSUPPORT);
	CHECK_EQ(vmo__wire_negotiate(3, 2), -EPROTONOSUPPORT);

	/* an ERROR of version 2 is read too */
	n = enc(sample_of(VMO__WIRE_ERROR), b);
	wr16(b + 4, 2);
	CHECK_EQ(parse(b, n, &out), -EPROTONOSUPPORT);
	CHECK_EQ(out.u.error.err, -ENOENT);
	CHECK(!strcmp(out.u.error.msg, sample_of(VMO__WIRE_ERROR)->u.error.msg));

	/* both sides, over a socket: a version-2 client's HELLO, the server's
	 * ERROR naming both, which the client reads */
	int sv[2];
	CHECK_OK(sockpair(sv));
	n = enc(sample_of(VMO__WIRE_HELLO), b);
	wr16(b + 4, 2);
	wr16(b + 16, 2);
	wr16(b + 18, 2);
	wr32(b + 12, 77);
	send_raw(sv[0], b, n, NULL, 0);
	int fds[VMO__WIRE_MAX_FDS], nfds;
	int r = vmo__wire_recv(sv[1], &out, fds, &nfds);
	CHECK_EQ(r, -EPROTONOSUPPORT);
	CHECK_EQ(out.seq, 77);
	struct vmo__wire_msg e;
	vmo__wire_make_error(&e, out.seq, r, "%s", vmo_last_error_detail());
	CHECK_OK(vmo__wire_send(sv[1], &e, NULL, 0));
	CHECK_OK(vmo__wire_recv(sv[0], &out, fds, &nfds));
	CHECK_EQ(out.type, VMO__WIRE_ERROR);
	CHECK_EQ(out.seq, 77);
	CHECK_EQ(out.u.error.err, -EPROTONOSUPPORT);
	CHECK(strstr(out.u.error.msg, "version 2 (range 2..2), this side 1..1"));
	close(sv[0]);
	close(sv[1]);
}

static void case_unknown_type(void)
{
	uint8_t b[VMO__WIRE_MAX];
	struct vmo__wire_msg out;
	size_t n = enc(sample_of(VMO__WIRE_STATS), b);
	const unsigned bad[] = { 0, VMO__WIRE_NTYPES, VMO__WIRE_NTYPES + 1, 0x100 + VMO__WIRE_STATS, 0xffff };
	for (size_t i = 0; i < VMO_ARRAY_SIZE(bad); i++) {
		wr16(b + 6, (uint16_t)bad[i]);
		CHECK_EQ(vmo__wire_parse(b, n, 0, &out), -EPROTO);
		CHECK(strstr(vmo_last_error_detail(), "unknown message type"));
		CHECK_EQ(out.type, bad[i]);
	}
	struct vmo__wire_msg m = *sample_of(VMO__WIRE_STATS);
	m.type = VMO__WIRE_NTYPES;
	CHECK_EQ(vmo__wire_encode(&m, b, sizeof b), -EINVAL);
}

static void case_len_lies(void)
{
	uint8_t b[VMO__WIRE_MAX];
	struct vmo__wire_msg out;
	load_samples();
	for (size_t i = 0; i < nsamples; i++) {
		size_t n = enc(&samples[i].m, b);
		const uint32_t lies[] = { 0, 1, VMO__WIRE_HDR, (uint32_t)n - 1, (uint32_t)n + 1, (uint32_t)n + 4096,
					  VMO__WIRE_MAX, VMO__WIRE_MAX + 1, 0x7fffffff, 0xffffffff };
		for (size_t k = 0; k < VMO_ARRAY_SIZE(lies); k++) {
			if (lies[k] == n)
				continue;
			wr32(b + 8, lies[k]);
			CHECK_EQ(parse(b, n, &out), -EPROTO);
		}
	}
	/* inner lengths lying: a name or a message longer or shorter than its bytes */
	uint8_t c[VMO__WIRE_MAX];
	size_t n = enc(sample_of(VMO__WIRE_OPEN), c);
	for (int d = -3; d <= 3; d++) {
		if (!d)
			continue;
		memcpy(b, c, n);
		wr16(b + VMO__WIRE_HDR + 16, (uint16_t)(strlen(sample_of(VMO__WIRE_OPEN)->u.open.name) + d));
		CHECK_EQ(parse(b, n, &out), -EPROTO);
	}
	memcpy(b, c, n);
	wr16(b + VMO__WIRE_HDR + 16, 0xffff);
	CHECK_EQ(parse(b, n, &out), -EPROTO);
	n = enc(sample_of(VMO__WIRE_ERROR), c);
	memcpy(b, c, n);
	wr16(b + VMO__WIRE_HDR + 4, 0xffff);
	CHECK_EQ(parse(b, n, &out), -EPROTO);
	n = enc(sample_of(VMO__WIRE_STATS_OK), c);
	memcpy(b, c, n);
	wr32(b + VMO__WIRE_HDR + 8, 13); /* 13 counters said, 14 sent */
	CHECK_EQ(parse(b, n, &out), -EPROTO);
	wr32(b + VMO__WIRE_HDR + 8, 0xffffffff);
	CHECK_EQ(parse(b, n, &out), -EINVAL); /* more than the limit */
	n = enc(sample_of(VMO__WIRE_LIST_OK), c);
	for (uint32_t k = 0; k < 5; k++) {
		if (k == 3)
			continue;
		memcpy(b, c, n);
		wr32(b + VMO__WIRE_HDR + 8, k);
		CHECK_EQ(parse(b, n, &out), -EPROTO);
	}
	memcpy(b, c, n);
	wr16(b + VMO__WIRE_HDR + 16 + 12, 200); /* the first entry's name */
	CHECK_EQ(parse(b, n, &out), -EPROTO);
}

static void case_fds(void)
{
	uint8_t b[VMO__WIRE_MAX];
	struct vmo__wire_msg out;
	/* parse: the count given */
	load_samples();
	for (size_t i = 0; i < nsamples; i++) {
		size_t n = enc(&samples[i].m, b);
		int want = vmo__wire_type_fds(samples[i].m.type);
		for (int k = -1; k <= 3; k++)
			if (k != want)
				CHECK_EQ(vmo__wire_parse(b, n, k, &out), -EBADMSG);
	}

	/* recv: what came is closed whenever the message is refused */
	int sv[2], fd[24];
	CHECK_OK(sockpair(sv));
	int before = count_fds();
	for (int i = 0; i < 24; i++)
		fd[i] = carried_fd(VMO__WIRE_OPEN_OK);
	int during = count_fds();
	size_t n = enc(sample_of(VMO__WIRE_HELLO), b);
	send_raw(sv[0], b, n, fd, 1); /* one where none belongs */
	recv_refused(sv[1], -EBADMSG);
	send_raw(sv[0], b, n, fd, 2);
	recv_refused(sv[1], -EBADMSG);
	n = enc(sample_of(VMO__WIRE_ADOPT), b);
	send_raw(sv[0], b, n, NULL, 0); /* none where one must be */
	recv_refused(sv[1], -EBADMSG);
	send_raw(sv[0], b, n, fd, 2); /* two where one must be */
	recv_refused(sv[1], -EBADMSG);
	send_raw(sv[0], b, n, fd, 3); /* more than a message may carry */
	recv_refused(sv[1], -EBADMSG);
	send_raw(sv[0], b, n, fd, 24); /* more than the receiver has room for */
	recv_refused(sv[1], -EMSGSIZE);
	/* a descriptor with a message refused for another reason */
	b[0] ^= 1;
	send_raw(sv[0], b, n, fd, 1);
	recv_refused(sv[1], -EPROTO);
	b[0] ^= 1;
	wr16(b + 4, 9);
	send_raw(sv[0], b, n, fd, 1);
	recv_refused(sv[1], -EPROTONOSUPPORT);
	/* ADOPT with one, accepted */
	wr16(b + 4, VMO__WIRE_VERSION);
	send_raw(sv[0], b, n, fd, 1);
	int got[VMO__WIRE_MAX_FDS] = { -1, -1 }, ngot = 0;
	CHECK_OK(vmo__wire_recv(sv[1], &out, got, &ngot));
	CHECK_EQ(ngot, 1);
	CHECK(fd_open(got[0]) && cloexec(got[0]));
	close(got[0]);
	CHECK_EQ(count_fds(), during);
	for (int i = 0; i < 24; i++)
		close(fd[i]);
	CHECK_EQ(count_fds(), before);
	close(sv[0]);
	close(sv[1]);
}

static void case_names(void)
{
	static const char *const good[] = { "a", "...", ".a", "a.", "a..b", "-", "_", "db.main-1_x", "A0" };
	static const char *const bad[] = { "", ".", "..", "a/b", "/", "a b", "a\tb", "caf\xc3\xa9", "a\\b",
					   "a:b", "a*", "../x", "a\nb" };
	uint8_t b[VMO__WIRE_MAX];
	struct vmo__wire_msg m = *sample_of(VMO__WIRE_OPEN), out;
	for (size_t i = 0; i < VMO_ARRAY_SIZE(good); i++) {
		CHECK(vmo__wire_name_ok(good[i], strlen(good[i])));
		strcpy(m.u.open.name, good[i]);
		size_t n = enc(&m, b);
		CHECK_OK(parse(b, n, &out));
		CHECK(!strcmp(out.u.open.name, good[i]));
	}
	for (size_t i = 0; i < VMO_ARRAY_SIZE(bad); i++) {
		CHECK(!vmo__wire_name_ok(bad[i], strlen(bad[i])));
		strcpy(m.u.open.name, bad[i]);
		CHECK_EQ(vmo__wire_encode(&m, b, sizeof b), -EINVAL);
		CHECK(strstr(vmo_last_error_detail(), "bad object name"));
	}
	/* 255 bytes is the most; 256 bytes is refused, a name without a NUL too */
	wire_sample_name(m.u.open.name, VMO__WIRE_NAME_MAX, 1);
	size_t n = enc(&m, b);
	CHECK_OK(parse(b, n, &out));
	CHECK_EQ(strlen(out.u.open.name), VMO__WIRE_NAME_MAX);
	memset(m.u.open.name, 'a', sizeof m.u.open.name);
	CHECK_EQ(vmo__wire_encode(&m, b, sizeof b), -EINVAL);
	char big[300];
	memset(big, 'a', sizeof big);
	CHECK(!vmo__wire_name_ok(big, 256));
	CHECK(vmo__wire_name_ok(big, 255));
	/* on the wire: a NUL inside, a 256-byte name (the len agreeing) */
	strcpy(m.u.open.name, "abc");
	n = enc(&m, b);
	b[VMO__WIRE_HDR + 20 + 1] = 0;
	CHECK_EQ(parse(b, n, &out), -EINVAL);
	b[VMO__WIRE_HDR + 20 + 1] = '/';
	CHECK_EQ(parse(b, n, &out), -EINVAL);
	uint8_t c[VMO__WIRE_MAX];
	memcpy(c, b, VMO__WIRE_HDR + 20);
	memset(c + VMO__WIRE_HDR + 20, 'a', 256);
	wr16(c + VMO__WIRE_HDR + 16, 256);
	wr32(c + 8, VMO__WIRE_HDR + 20 + 256);
	CHECK_EQ(parse(c, VMO__WIRE_HDR + 20 + 256, &out), -EINVAL);
	/* a name in a LIST_OK entry too */
	struct vmo__wire_msg l = *sample_of(VMO__WIRE_LIST_OK);
	strcpy(l.u.list_ok.e[2].name, "..");
	CHECK_EQ(vmo__wire_encode(&l, b, sizeof b), -EINVAL);
	l.u.list_ok.e[2].name[0] = 0;
	CHECK_EQ(vmo__wire_encode(&l, b, sizeof b), -EINVAL);
}

static void case_ranges(void)
{
	const uint64_t L = VMO__WIRE_OFF_LIMIT, A = VMO__WIRE_ADDR_LIMIT;
	/* SYNC / RETURN / DISCARD: id 0, off 8, len 16, flags 24 (payload offsets) */
	const uint16_t rt[] = { VMO__WIRE_SYNC, VMO__WIRE_RETURN, VMO__WIRE_DISCARD };
	for (size_t i = 0; i < VMO_ARRAY_SIZE(rt); i++) {
		CHECK_EQ(parse_patched(rt[i], 16, 8, 0), -EINVAL);          /* len 0 */
		CHECK_EQ(parse_patched(rt[i], 16, 8, 100), -EINVAL);        /* misaligned */
		CHECK_EQ(parse_patched(rt[i], 8, 8, 4095), -EINVAL);
		CHECK_EQ(parse_patched(rt[i], 8, 8, L), -EINVAL);           /* off + len past 2^63 */
		CHECK_EQ(parse_patched(rt[i], 8, 8, ~0ull << 12), -EINVAL); /* off + len wraps */
		CHECK_EQ(parse_patched(rt[i], 8, 8, L - (1 << 20)), 0);     /* ends at 2^63 exactly */
		CHECK_EQ(parse_patched(rt[i], 0, 8, 0), -EINVAL);           /* id 0 */
		CHECK_EQ(parse_patched(rt[i], 24, 4, 2), -EINVAL);          /* unknown flag */
		CHECK_EQ(parse_patched(rt[i], 28, 4, 1), -EPROTO);          /* reserved */
	}
	struct vmo__wire_msg m = *sample_of(VMO__WIRE_SYNC);
	uint8_t b[VMO__WIRE_MAX];
	m.u.range.off = ~0ull << 12;
	m.u.range.len = 1ull << 13;
	CHECK_EQ(vmo__wire_encode(&m, b, sizeof b), -EINVAL);
	CHECK(strstr(vmo_last_error_detail(), "past 2^63"));

	/* ATTACH: id 0, addr 8, len 16, off 24, prot 32 */
	const uint16_t at = VMO__WIRE_ATTACH;
	CHECK_EQ(parse_patched(at, 16, 8, 0), -EINVAL);
	CHECK_EQ(parse_patched(at, 8, 8, 0), -EINVAL);               /* addr 0 */
	CHECK_EQ(parse_patched(at, 8, 8, 0x7f0000000001ull), -EINVAL);
	CHECK_EQ(parse_patched(at, 8, 8, A), -EINVAL);               /* past 2^57 */
	CHECK_EQ(parse_patched(at, 8, 8, ~0ull << 12), -EINVAL);     /* wraps */
	CHECK_EQ(parse_patched(at, 24, 8, L), -EINVAL);
	CHECK_EQ(parse_patched(at, 24, 8, 12), -EINVAL);
	CHECK_EQ(parse_patched(at, 16, 8, ~0ull << 12), -EINVAL);
	CHECK_EQ(parse_patched(at, 32, 4, 0), -EINVAL);              /* prot none */
	CHECK_EQ(parse_patched(at, 32, 4, VMO_PROT_WRITE), -EINVAL); /* write without read */
	CHECK_EQ(parse_patched(at, 32, 4, 4 | VMO_PROT_READ), -EINVAL);
	CHECK_EQ(parse_patched(at, 32, 4, VMO_PROT_READ), 0);
	CHECK_EQ(parse_patched(at, 36, 4, 1), -EPROTO);
	CHECK_EQ(parse_patched(at, 0, 8, 0), -EINVAL);
	/* DETACH: id 0, addr 8, len 16 */
	CHECK_EQ(parse_patched(VMO__WIRE_DETACH, 16, 8, 0), -EINVAL);
	CHECK_EQ(parse_patched(VMO__WIRE_DETACH, 8, 8, A - 4096), -EINVAL);
	CHECK_EQ(parse_patched(VMO__WIRE_DETACH, 0, 8, 0), -EINVAL);
	/* CLOSE needs an id; STATS takes 0 (the server's totals) */
	CHECK_EQ(parse_patched(VMO__WIRE_CLOSE, 0, 8, 0), -EINVAL);
	CHECK_EQ(parse_patched(VMO__WIRE_STATS, 0, 8, 0), 0);
}

static void case_fields(void)
{
	/* HELLO: min 0, max 2, reserved 4 */
	CHECK_EQ(parse_patched(VMO__WIRE_HELLO, 0, 2, 0), -EINVAL);
	CHECK_EQ(parse_patched(VMO__WIRE_HELLO, 0, 2, 2), -EINVAL); /* min > max */
	CHECK_EQ(parse_patched(VMO__WIRE_HELLO, 2, 2, 7), 0);
	CHECK_EQ(parse_patched(VMO__WIRE_HELLO, 4, 4, 1), -EPROTO);
	/* HELLO_OK: version 0, max_fds 2, max_msg 4, list_max 16 */
	CHECK_EQ(parse_patched(VMO__WIRE_HELLO_OK, 0, 2, 0), -EINVAL);
	CHECK_EQ(parse_patched(VMO__WIRE_HELLO_OK, 2, 2, 3), -EINVAL);
	CHECK_EQ(parse_patched(VMO__WIRE_HELLO_OK, 4, 4, VMO__WIRE_MAX + 1), -EINVAL);
	CHECK_EQ(parse_patched(VMO__WIRE_HELLO_OK, 4, 4, 100), -EINVAL);
	CHECK_EQ(parse_patched(VMO__WIRE_HELLO_OK, 16, 4, 0), -EINVAL);
	CHECK_EQ(parse_patched(VMO__WIRE_HELLO_OK, 16, 4, VMO__WIRE_LIST_MAX + 1), -EINVAL);
	/* OPEN: flags 0, page_size 4, size 8, reserved 18 */
	CHECK_EQ(parse_patched(VMO__WIRE_OPEN, 0, 4, 0), -EINVAL); /* no access mode */
	CHECK_EQ(parse_patched(VMO__WIRE_OPEN, 0, 4, VMO__WIRE_O_RDONLY | VMO__WIRE_O_RDWR), -EINVAL);
	CHECK_EQ(parse_patched(VMO__WIRE_OPEN, 0, 4, VMO__WIRE_O_RDONLY | 16), -EINVAL);
	CHECK_EQ(parse_patched(VMO__WIRE_OPEN, 0, 4, VMO__WIRE_O_RDONLY), 0);
	CHECK_EQ(parse_patched(VMO__WIRE_OPEN, 4, 4, 0), 0);
	CHECK_EQ(parse_patched(VMO__WIRE_OPEN, 4, 4, 2048), -EINVAL);
	CHECK_EQ(parse_patched(VMO__WIRE_OPEN, 4, 4, 12288), -EINVAL);
	CHECK_EQ(parse_patched(VMO__WIRE_OPEN, 4, 4, 4u << 20), -EINVAL);
	CHECK_EQ(parse_patched(VMO__WIRE_OPEN, 4, 4, 2u << 20), 0);
	CHECK_EQ(parse_patched(VMO__WIRE_OPEN, 8, 8, VMO__WIRE_OFF_LIMIT + 1), -EINVAL);
	CHECK_EQ(parse_patched(VMO__WIRE_OPEN, 8, 8, 12345), 0); /* sizes need not be aligned */
	CHECK_EQ(parse_patched(VMO__WIRE_OPEN, 18, 2, 1), -EPROTO);
	/* OPEN_OK: id 0, size 8, page_size 16, flags 20 */
	CHECK_EQ(parse_patched(VMO__WIRE_OPEN_OK, 0, 8, 0), -EINVAL);
	CHECK_EQ(parse_patched(VMO__WIRE_OPEN_OK, 16, 4, 0), -EINVAL);
	CHECK_EQ(parse_patched(VMO__WIRE_OPEN_OK, 20, 4, 0), -EINVAL);
	CHECK_EQ(parse_patched(VMO__WIRE_OPEN_OK, 8, 8, ~0ull), -EINVAL);
	/* STATS_OK: reserved 12 */
	CHECK_EQ(parse_patched(VMO__WIRE_STATS_OK, 12, 4, 1), -EPROTO);
	/* LIST_OK: reserved 12; the first entry: page_size 16+8, reserved 16+14, size 16 */
	CHECK_EQ(parse_patched(VMO__WIRE_LIST_OK, 12, 4, 1), -EPROTO);
	CHECK_EQ(parse_patched(VMO__WIRE_LIST_OK, 24, 4, 3000), -EINVAL);
	CHECK_EQ(parse_patched(VMO__WIRE_LIST_OK, 30, 2, 1), -EPROTO);
	CHECK_EQ(parse_patched(VMO__WIRE_LIST_OK, 16, 8, ~0ull), -EINVAL);
	/* ERROR: err 0, reserved 6, message bytes 8.. */
	CHECK_EQ(parse_patched(VMO__WIRE_ERROR, 0, 4, 0), -EINVAL);
	CHECK_EQ(parse_patched(VMO__WIRE_ERROR, 0, 4, 5), -EINVAL);
	CHECK_EQ(parse_patched(VMO__WIRE_ERROR, 0, 4, (uint32_t)-4096), -EINVAL);
	CHECK_EQ(parse_patched(VMO__WIRE_ERROR, 0, 4, (uint32_t)-1), 0);
	CHECK_EQ(parse_patched(VMO__WIRE_ERROR, 6, 2, 1), -EPROTO);
	CHECK_EQ(parse_patched(VMO__WIRE_ERROR, 8, 2, 0x0a41), -EINVAL); /* "A\n" */
	CHECK_EQ(parse_patched(VMO__WIRE_ERROR, 8, 2, 0x0041), -EINVAL); /* a NUL */
	CHECK_EQ(parse_patched(VMO__WIRE_ERROR, 8, 2, 0x8041), -EINVAL);
	/* encode refuses counts past the arrays */
	uint8_t b[VMO__WIRE_MAX];
	struct vmo__wire_msg m = *sample_of(VMO__WIRE_STATS_OK);
	m.u.stats_ok.n = VMO__WIRE_STATS_MAX + 1;
	CHECK_EQ(vmo__wire_encode(&m, b, sizeof b), -EINVAL);
	m = *sample_of(VMO__WIRE_LIST_OK);
	m.u.list_ok.n = 1000;
	CHECK_EQ(vmo__wire_encode(&m, b, sizeof b), -EINVAL);
	m = *sample_of(VMO__WIRE_ERROR);
	memset(m.u.error.msg, 'x', sizeof m.u.error.msg);
	CHECK_EQ(vmo__wire_encode(&m, b, sizeof b), -EINVAL);
	/* vmo__wire_make_error: bounded, printable, a real errno */
	vmo__wire_make_error(&m, 5, -ENOSPC, "full\n\x01%s", "!");
	CHECK_EQ(m.type, VMO__WIRE_ERROR);
	CHECK_EQ(m.seq, 5);
	CHECK_EQ(m.u.error.err, -ENOSPC);
	CHECK(!strcmp(m.u.error.msg, "full?" "?!"));
	char big[1000];
	memset(big, 'y', sizeof big - 1);
	big[sizeof big - 1] = 0;
	vmo__wire_make_error(&m, 6, 17, "%s", big);
	CHECK_EQ(m.u.error.err, -EIO);
	CHECK_EQ(strlen(m.u.error.msg), VMO__WIRE_ERRMSG_MAX);
	struct vmo__wire_msg out;
	size_t n = enc(&m, b);
	CHECK_OK(parse(b, n, &out));
	CHECK(same(&m, &out));
}

/* ---- the fuzz target's corpus and property ------------------------------ */

#ifndef VMO_WIRE_CORPUS
#define VMO_WIRE_CORPUS "fuzz/corpus/wire"
#endif

static void case_corpus(void)
{
	load_samples();
	uint8_t b[VMO__WIRE_MAX], f[2 * VMO__WIRE_MAX];
	struct vmo__wire_msg out;
	for (size_t i = 0; i < nsamples; i++) {
		char path[512];
		snprintf(path, sizeof path, "%s/%s", VMO_WIRE_CORPUS, samples[i].name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			fprintf(stderr, "%s: %s (regenerate: build/fuzz/wire_gen_corpus fuzz/corpus/wire)\n", path,
				strerror(errno));
		CHECK(fd >= 0);
		ssize_t n = read(fd, f, sizeof f);
		close(fd);
		size_t m = enc(&samples[i].m, b);
		if (n != (ssize_t)m + 1 || f[0] != vmo__wire_type_fds(samples[i].m.type) || memcmp(f + 1, b, m))
			fprintf(stderr, "%s differs from the sample (regenerate: build/fuzz/wire_gen_corpus "
					"fuzz/corpus/wire)\n", path);
		CHECK(n == (ssize_t)m + 1 && f[0] == vmo__wire_type_fds(samples[i].m.type) && !memcmp(f + 1, b, m));
		CHECK_OK(vmo__wire_parse(f + 1, m, f[0] % 3, &out));
	}
	/* and any other file in it (what fuzzing found and was kept) parses or is refused */
	DIR *d = opendir(VMO_WIRE_CORPUS);
	CHECK(d);
	struct dirent *e;
	int files = 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[512];
		snprintf(path, sizeof path, "%s/%s", VMO_WIRE_CORPUS, e->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		CHECK(fd >= 0);
		ssize_t n = read(fd, f, sizeof f);
		close(fd);
		CHECK(n >= 0);
		if (n > 0)
			(void)vmo__wire_parse(f + 1, (size_t)n - 1, f[0] % 3, &out);
		files++;
	}
	closedir(d);
	CHECK(files >= (int)nsamples);
}

/* What wire_fuzz checks, on random mutations of the samples: flipped bits,
 * bytes set to edge values, cuts and growths, with len fixed up or not. */
static void case_mutate(void)
{
	static const uint8_t edge[] = { 0, 1, 2, 0x7f, 0x80, 0xfe, 0xff, 0x10, 0x20, 14, 32 };
	uint8_t b[VMO__WIRE_MAX + 64], c[VMO__WIRE_MAX];
	struct vmo__wire_msg m, m2;
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	unsigned accepted = 0, iters = 300000;
	load_samples();
	for (unsigned it = 0; it < iters; it++) {
		const struct wire_sample *s = &samples[t_rand(&seed) % nsamples];
		size_t n = enc(&s->m, b);
		unsigned muts = 1 + (unsigned)(t_rand(&seed) % 4);
		for (unsigned k = 0; k < muts; k++) {
			uint64_t r = t_rand(&seed);
			size_t at = (r >> 8) % n;
			switch (r % 5) {
			case 0:
				b[at] ^= (uint8_t)(1u << ((r >> 40) % 8));
				break;
			case 1:
				b[at] = edge[(r >> 40) % sizeof edge];
				break;
			case 2:
				n = at; /* cut */
				break;
			case 3:
				if (n + 8 <= sizeof b) {
					memset(b + n, (int)(r >> 48), 8);
					n += 8;
				}
				break;
			case 4:
				if (n >= VMO__WIRE_HDR)
					wr32(b + 8, (uint32_t)n); /* len made to agree */
				break;
			}
			if (!n)
				break;
		}
		int nfds = (int)(t_rand(&seed) % 4 == 0 ? t_rand(&seed) % 3 : (uint64_t)(vmo__wire_type_fds(s->m.type)));
		int r = vmo__wire_parse(b, n, nfds, &m);
		if (r < 0) {
			CHECK(r == -EPROTO || r == -EPROTONOSUPPORT || r == -EMSGSIZE || r == -EBADMSG || r == -EINVAL);
			continue;
		}
		accepted++;
		CHECK_EQ(vmo__wire_type_fds(m.type), nfds);
		int k = vmo__wire_encode(&m, c, sizeof c);
		CHECK_EQ(k, (long)n);
		CHECK(!memcmp(b, c, n));
		CHECK_OK(vmo__wire_parse(c, n, nfds, &m2));
		CHECK(!memcmp(&m, &m2, sizeof m));
	}
	CHECK(accepted > iters / 50); /* (the mutations do reach the payload checks) */
}

int main(int argc, char **argv)
{
	alarm(120);
	signal(SIGPIPE, SIG_DFL); /* a send must not raise it: it would kill the test */
	return t_main(argc, argv,
		      T_CASES({ "roundtrip", case_roundtrip }, { "socketpair", case_socketpair },
			      { "peer-closed", case_peer_closed }, { "truncated", case_truncated },
			      { "oversized", case_oversized }, { "magic", case_magic }, { "version", case_version },
			      { "unknown-type", case_unknown_type }, { "len-lies", case_len_lies }, { "fds", case_fds },
			      { "names", case_names }, { "ranges", case_ranges }, { "fields", case_fields },
			      { "corpus", case_corpus }, { "mutate", case_mutate }));
}
