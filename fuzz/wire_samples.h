/* SPDX-License-Identifier: MIT */
/* wire_samples.h - one valid message of every type of the wire protocol
 * (src/wire.h), and a few at their limits: the seed corpus of the fuzz
 * target (fuzz/gen_corpus.c writes it) and the round trips of
 * tests/white/test_wire.c.  Needs wire.h and vmo.h before it. */
#ifndef VMO_WIRE_SAMPLES_H
#define VMO_WIRE_SAMPLES_H

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct wire_sample {
	const char *name; /* the corpus file's name */
	struct vmo__wire_msg m;
};

/* A name of n bytes (n <= VMO__WIRE_NAME_MAX) made of the allowed bytes. */
static inline void wire_sample_name(char *dst, size_t n, unsigned salt)
{
	static const char cs[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
	for (size_t i = 0; i < n; i++)
		dst[i] = cs[(i * 7 + salt) % (sizeof cs - 1)];
	dst[n] = 0;
	if (n <= 2)
		dst[0] = 'x'; /* never "." or ".." */
}

/* Fill s[0..] (room for at least 48) and return how many: the first
 * VMO__WIRE_NTYPES - 1 are one of each type, in type order. */
static inline size_t wire_samples(struct wire_sample *s)
{
	size_t n = 0;
	struct vmo__wire_msg *m;
#define NEXT(nm, ty)                                                   \
	do {                                                           \
		s[n].name = (nm);                                      \
		m = &s[n++].m;                                         \
		memset(m, 0, sizeof *m);                               \
		m->type = (ty);                                        \
		m->seq = (uint32_t)(n * 1000 + 1);                     \
	} while (0)
	NEXT("hello", VMO__WIRE_HELLO);
	m->u.hello = (struct vmo__wire_hello){ .min_version = 1, .max_version = 1, .features = 0x5 };
	NEXT("hello_ok", VMO__WIRE_HELLO_OK);
	m->u.hello_ok = (struct vmo__wire_hello_ok){ .version = 1, .max_fds = VMO__WIRE_MAX_FDS,
						     .max_msg = VMO__WIRE_MAX, .features = 0x1,
						     .list_max = VMO__WIRE_LIST_MAX, .max_objects = 1024 };
	NEXT("open", VMO__WIRE_OPEN);
	m->u.open.flags = VMO__WIRE_O_RDWR | VMO__WIRE_O_CREATE;
	m->u.open.page_size = 4096;
	m->u.open.size = 1 << 20;
	strcpy(m->u.open.name, "db.main-1_x");
	NEXT("open_ok", VMO__WIRE_OPEN_OK);
	m->u.open_ok = (struct vmo__wire_open_ok){ .id = 7, .size = 1 << 20, .page_size = 4096,
						   .flags = VMO__WIRE_O_RDWR | VMO__WIRE_O_CREATE };
	NEXT("adopt", VMO__WIRE_ADOPT);
	m->u.adopt.uffd_features = 0x1ff;
	NEXT("attach", VMO__WIRE_ATTACH);
	m->u.attach = (struct vmo__wire_attach){ .id = 7, .addr = 0x7f0000000000ull, .len = 1 << 20, .off = 0,
						 .prot = VMO_PROT_READ | VMO_PROT_WRITE };
	NEXT("detach", VMO__WIRE_DETACH);
	m->u.detach = (struct vmo__wire_detach){ .id = 7, .addr = 0x7f0000000000ull, .len = 1 << 20 };
	NEXT("sync", VMO__WIRE_SYNC);
	m->u.range = (struct vmo__wire_range){ .id = 7, .off = 0, .len = 1 << 20, .flags = VMO_WAIT };
	NEXT("return", VMO__WIRE_RETURN);
	m->u.range = (struct vmo__wire_range){ .id = 7, .off = 4096, .len = 8192, .flags = 0 };
	NEXT("discard", VMO__WIRE_DISCARD);
	m->u.range = (struct vmo__wire_range){ .id = 7, .off = 0, .len = 4096, .flags = VMO_WAIT };
	NEXT("stats", VMO__WIRE_STATS);
	m->u.id.id = 7;
	NEXT("stats_ok", VMO__WIRE_STATS_OK);
	m->u.stats_ok.id = 7;
	m->u.stats_ok.n = 14;
	for (unsigned i = 0; i < 14; i++)
		m->u.stats_ok.v[i] = (uint64_t)i * 4096 + i;
	NEXT("close", VMO__WIRE_CLOSE);
	m->u.id.id = 7;
	NEXT("list", VMO__WIRE_LIST);
	m->u.list.cursor = 0;
	NEXT("list_ok", VMO__WIRE_LIST_OK);
	m->u.list_ok.next = 3;
	m->u.list_ok.n = 3;
	for (unsigned i = 0; i < 3; i++) {
		m->u.list_ok.e[i].size = (uint64_t)(i + 1) << 20;
		m->u.list_ok.e[i].page_size = 4096u << i;
		snprintf(m->u.list_ok.e[i].name, sizeof m->u.list_ok.e[i].name, "obj-%u", i);
	}
	NEXT("ok", VMO__WIRE_OK);
	m->u.ok.val = 0;
	NEXT("error", VMO__WIRE_ERROR);
	m->u.error.err = -ENOENT;
	strcpy(m->u.error.msg, "no object named db.main-1_x");
	NEXT("cache_open", VMO__WIRE_CACHE_OPEN);
	m->u.cache_open.window = 4 << 20;
	NEXT("cache_yield", VMO__WIRE_CACHE_YIELD);
	m->u.block = (struct vmo__wire_block){ .id = 0x1234, .off = 8192, .len = 65536 };
	NEXT("cache_get", VMO__WIRE_CACHE_GET);
	m->u.block = (struct vmo__wire_block){ .id = 0, .off = 0, .len = 4096 };
	NEXT("cache_forget", VMO__WIRE_CACHE_FORGET);
	m->u.forget = (struct vmo__wire_forget){ .id = 0x1234, .all = 0 };
	NEXT("cache_stats", VMO__WIRE_CACHE_STATS);
	NEXT("clients", VMO__WIRE_CLIENTS);
	m->u.list.cursor = 0;
	NEXT("clients_ok", VMO__WIRE_CLIENTS_OK);
	m->u.clients_ok.next = 0;
	m->u.clients_ok.n = 2;
	m->u.clients_ok.e[0] = (struct vmo__wire_client){ 100, 1000, 1000, 2, 3, 40, 5000 };
	m->u.clients_ok.e[1] = (struct vmo__wire_client){ 101, 0, 0, 0, 0, 1, 0 };

	/* at the limits */
	NEXT("open_longname", VMO__WIRE_OPEN);
	m->u.open.flags = VMO__WIRE_O_RDONLY;
	wire_sample_name(m->u.open.name, VMO__WIRE_NAME_MAX, 3);
	NEXT("stats_ok_full", VMO__WIRE_STATS_OK);
	m->u.stats_ok.id = 0;
	m->u.stats_ok.n = VMO__WIRE_STATS_MAX;
	for (unsigned i = 0; i < VMO__WIRE_STATS_MAX; i++)
		m->u.stats_ok.v[i] = ~(uint64_t)i;
	NEXT("list_ok_full", VMO__WIRE_LIST_OK);
	m->u.list_ok.next = 0;
	m->u.list_ok.n = VMO__WIRE_LIST_MAX;
	for (unsigned i = 0; i < VMO__WIRE_LIST_MAX; i++) {
		m->u.list_ok.e[i].size = VMO__WIRE_OFF_LIMIT;
		m->u.list_ok.e[i].page_size = 2u << 20;
		wire_sample_name(m->u.list_ok.e[i].name, VMO__WIRE_NAME_MAX, i);
	}
	NEXT("list_ok_empty", VMO__WIRE_LIST_OK);
	NEXT("error_long", VMO__WIRE_ERROR);
	m->u.error.err = -4095;
	memset(m->u.error.msg, '~', VMO__WIRE_ERRMSG_MAX);
	NEXT("clients_ok_full", VMO__WIRE_CLIENTS_OK);
	m->u.clients_ok.next = 77;
	m->u.clients_ok.n = VMO__WIRE_CLIENTS_MAX;
	for (unsigned i = 0; i < VMO__WIRE_CLIENTS_MAX; i++)
		m->u.clients_ok.e[i] = (struct vmo__wire_client){ i + 2, i, i, i, i, ~0ull, ~0ull - i };
	NEXT("cache_forget_all", VMO__WIRE_CACHE_FORGET);
	m->u.forget = (struct vmo__wire_forget){ .id = 0, .all = 1 };
	NEXT("attach_top", VMO__WIRE_ATTACH);
	m->u.attach = (struct vmo__wire_attach){ .id = ~0ull, .addr = VMO__WIRE_ADDR_LIMIT - 4096, .len = 4096,
						 .off = VMO__WIRE_OFF_LIMIT - 4096, .prot = VMO_PROT_READ };
#undef NEXT
	return n;
}

#endif
