/* SPDX-License-Identifier: MIT */
/* vmo sum: FNV-1a 64 of a file read through a vmo mapping. */
#include "stream.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FNV_BASIS 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static int fnv_update(void *arg, const void *buf, size_t len)
{
	uint64_t h = *(uint64_t *)arg;
	const unsigned char *p = buf;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= FNV_PRIME;
	}
	*(uint64_t *)arg = h;
	return 0;
}

/* The same checksum with plain read(2): the reference vmo is checked against. */
static int sum_reference(const char *path, uint64_t *h)
{
	int fd;
	uint64_t fsize;
	int rc = open_input(path, &fd, &fsize);
	if (rc)
		return rc;
	char *buf = malloc(CHUNK);
	if (!buf) {
		close(fd);
		return fail("malloc", -ENOMEM);
	}
	for (;;) {
		ssize_t r = read(fd, buf, CHUNK);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			msg("reading '%s': %s", path, strerror(errno));
			rc = 1;
			break;
		}
		if (r == 0)
			break;
		fnv_update(h, buf, (size_t)r);
	}
	free(buf);
	close(fd);
	return rc;
}

static int cmd_sum(int argc, char **argv)
{
	const char *psize = NULL, *pos[1];
	bool reference = false, no_ra = false;
	const struct opt opts[] = {
		{ "--page-size", true, &psize, NULL },
		{ "--no-readahead", false, NULL, &no_ra },
		{ "--reference", false, NULL, &reference },
		{ NULL, false, NULL, NULL },
	};
	int npos, rc = parse_opts(argc, argv, opts, pos, 1, &npos);
	if (rc)
		return rc;
	if (npos != 1)
		return usage_error("missing FILE (usage: vmo sum [--page-size N] [--no-readahead] [--reference] FILE)");
	struct stream s = { .path = pos[0], .length = UINT64_MAX, .no_readahead = no_ra };
	if (psize && (rc = parse_page_size(psize, &s.page_size)))
		return rc;
	uint64_t h = FNV_BASIS;
	if (reference) {
		if ((rc = sum_reference(s.path, &h)))
			return rc;
	} else {
		if ((rc = stream_file(&s, fnv_update, &h)))
			return rc;
		char b[32];
		fprintf(stderr, "vmo sum: %s in %.1f ms; faults %" PRIu64 ", pages read %" PRIu64
			" (read ahead %" PRIu64 ")\n",
			human(s.bytes, b, sizeof b), (double)s.ns / 1e6, s.st.faults, s.st.pages_read,
			s.st.readahead);
	}
	printf("%016" PRIx64 "  %s\n", h, s.path);
	return 0;
}

const struct cli_cmd cli_cmd_sum = {
	"sum", cmd_sum, "[--page-size N] [--no-readahead] [--reference] FILE",
	"Print the FNV-1a 64-bit checksum (offset basis 0xcbf29ce484222325, prime\n"
	"0x100000001b3, over every byte) of FILE read through a vmo mapping, as 16\n"
	"hex digits and the name; faults and pages read go to standard error.\n"
	"--reference: compute it with plain read(2) instead, to check vmo against.",
};
