/* SPDX-License-Identifier: MIT */
/* wire_fuzz - libFuzzer target for the wire protocol's parser (src/wire.c).
 * The first byte of an input is the number of descriptors that came with
 * the message (its value mod 3: 0, 1 or 2), the rest is the packet.  The
 * parser must take any bytes without reading past them (ASan) or undefined
 * behaviour (UBSan); a message it accepts must have the descriptor count
 * its type says, re-encode to the very same bytes (the encoding is
 * canonical) and parse again to the same message.  A refused one must
 * leave a detail.  Any mismatch aborts: a crash for libFuzzer.
 * scripts/fuzz.sh builds and runs it (seed corpus: fuzz/corpus/wire/). */
#include "internal.h"
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const struct vmo__wire_msg *m)
{
	fprintf(stderr, "wire_fuzz: %s (type %u %s, seq %u): %s\n", what, m->type, vmo__wire_type_name(m->type),
		m->seq, vmo_last_error_detail());
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vmo__wire_msg m, m2;
	static uint8_t b[VMO__WIRE_MAX];
	if (size < 1)
		return 0;
	int nfds = data[0] % 3;
	vmo__set_detail("%s", ""); /* (logs nothing unless VMO_LOG is set) */
	int r = vmo__wire_parse(data + 1, size - 1, nfds, &m);
	(void)vmo__wire_type_name(m.type);
	(void)vmo__wire_is_request(m.type);
	if (r < 0) {
		if (r != -EPROTO && r != -EPROTONOSUPPORT && r != -EMSGSIZE && r != -EBADMSG && r != -EINVAL)
			fail("unexpected error code", &m);
		if (strncmp(vmo_last_error_detail(), "wire: ", 6) != 0)
			fail("refused without a detail", &m);
		return 0;
	}
	if (vmo__wire_type_fds(m.type) != nfds)
		fail("accepted with the wrong descriptor count", &m);
	int n = vmo__wire_encode(&m, b, sizeof b);
	if (n < 0)
		fail("accepted but does not re-encode", &m);
	if ((size_t)n != size - 1 || memcmp(b, data + 1, (size_t)n) != 0)
		fail("re-encoded to other bytes", &m);
	if (vmo__wire_parse(b, (size_t)n, nfds, &m2) != 0)
		fail("re-encoded but does not parse", &m);
	if (memcmp(&m, &m2, sizeof m) != 0)
		fail("parsed again to another message", &m);
	return 0;
}
