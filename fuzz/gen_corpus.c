/* SPDX-License-Identifier: MIT */
/* gen_corpus DIR - write the seed corpus of wire_fuzz: one file per sample
 * of fuzz/wire_samples.h (every message type once, and some at their
 * limits), each the byte the fuzz target reads as the descriptor count,
 * then the encoded message; and two of protocol version 2 (a HELLO and an
 * ERROR), which the parser refuses but reads as far as the versioning
 * rule says.  The files are committed (fuzz/corpus/wire/); run this after a
 * change to the protocol, and tests/white/test_wire checks they agree:
 *	build/fuzz/wire_gen_corpus fuzz/corpus/wire */
#include "internal.h"
#include "wire.h"
#include "wire_samples.h"

#include <stdio.h>
#include <stdlib.h>

static void put(const char *dir, const char *name, int nfds, const uint8_t *b, size_t len)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fputc(nfds, f) == EOF || fwrite(b, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	static struct wire_sample s[64];
	uint8_t b[VMO__WIRE_MAX];
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	size_t n = wire_samples(s);
	for (size_t i = 0; i < n; i++) {
		int len = vmo__wire_encode(&s[i].m, b, sizeof b);
		if (len < 0) {
			fprintf(stderr, "gen_corpus: %s: %s (%s)\n", s[i].name, vmo_strerror(len), vmo_last_error_detail());
			return 1;
		}
		put(argv[1], s[i].name, vmo__wire_type_fds(s[i].m.type), b, (size_t)len);
		if (s[i].m.type == VMO__WIRE_HELLO || (s[i].m.type == VMO__WIRE_ERROR && !strcmp(s[i].name, "error"))) {
			b[4] = 2; /* the header's version, little-endian */
			if (s[i].m.type == VMO__WIRE_HELLO) {
				b[16] = 2; /* a range of 2..3 */
				b[18] = 3;
			}
			put(argv[1], s[i].m.type == VMO__WIRE_HELLO ? "hello_v2" : "error_v2", 0, b, (size_t)len);
		}
	}
	return 0;
}
