/* SPDX-License-Identifier: MIT */
/* vmo sum: the XXH3 64-bit checksum of files read through vmo mappings, in
 * the form xxhsum -H3 prints, so `xxhsum -c` checks it (and the other way
 * round).  XXH3 comes from libxxhash; SHA-256 is left to sha256sum, which
 * can read the same data from `vmo cat FILE`. */
#include "stream.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

static int xxh3_update(void *arg, const void *buf, size_t len)
{
	if (XXH3_64bits_update(arg, buf, len) != XXH_OK) {
		msg("XXH3_64bits_update failed");
		return 1;
	}
	return 0;
}

/* The same checksum with plain pread(2): the reference vmo is checked
 * against.  (pread from 0: open_input left a block device's offset at its
 * end.) */
static int sum_reference(const char *path, XXH3_state_t *st)
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
	progress_begin("reading", fsize);
	for (off_t off = 0;;) {
		ssize_t r = pread(fd, buf, CHUNK, off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			msg("reading '%s': %s", path, strerror(errno));
			rc = 1;
			break;
		}
		if (r == 0)
			break;
		if ((rc = xxh3_update(st, buf, (size_t)r)))
			break;
		off += r;
		progress_add((uint64_t)r);
	}
	progress_end();
	free(buf);
	close(fd);
	return rc;
}

/* One file: its line on standard output, the vmo counters on standard
 * error.  0, or 1 after a message. */
static int sum_one(const char *path, uint32_t page_size, bool no_ra, bool reference, XXH3_state_t *st)
{
	int rc;
	if (XXH3_64bits_reset(st) != XXH_OK) {
		msg("XXH3_64bits_reset failed");
		return 1;
	}
	if (reference) {
		if ((rc = sum_reference(path, st)))
			return rc;
	} else {
		struct stream s = { .path = path, .length = UINT64_MAX, .no_readahead = no_ra, .page_size = page_size };
		if ((rc = stream_file(&s, xxh3_update, st)))
			return rc;
		char b[32];
		fprintf(stderr, "vmo sum: %s: %s in %.1f ms; faults %" PRIu64 ", pages read %" PRIu64
			" (read ahead %" PRIu64 ")\n",
			path, human(s.bytes, b, sizeof b), (double)s.ns / 1e6, s.st.faults, s.st.pages_read,
			s.st.readahead);
	}
	/* xxhsum -H3's line (xxHash 0.8.1, BSD style): "XXH3 (FILE) = 16 hex digits",
	 * the hash's canonical (big-endian) form, which is the number in hex. */
	printf("XXH3 (%s) = %016" PRIx64 "\n", path, (uint64_t)XXH3_64bits_digest(st));
	return 0;
}

static int cmd_sum(int argc, char **argv)
{
	const char *psize = NULL, **pos = calloc((size_t)argc, sizeof *pos);
	bool reference = false, no_ra = false, prog_on = false, prog_off = false;
	const struct opt opts[] = {
		{ "--page-size", true, &psize, NULL },
		{ "--no-readahead", false, NULL, &no_ra },
		{ "--reference", false, NULL, &reference },
		{ "--progress", false, NULL, &prog_on },
		{ "--no-progress", false, NULL, &prog_off },
		{ NULL, false, NULL, NULL },
	};
	if (!pos)
		return fail("calloc", -ENOMEM);
	int npos, rc = parse_opts(argc, argv, opts, pos, argc, &npos);
	if (!rc && npos < 1)
		rc = usage_error("missing FILE (usage: vmo sum [--page-size N] [--no-readahead] [--reference] FILE...)");
	uint32_t page_size = 0;
	if (!rc && psize)
		rc = parse_page_size(psize, &page_size);
	if (!rc)
		rc = progress_setup(prog_on, prog_off, false);
	/* every file, as xxhsum: one that fails is said and the rest still summed */
	XXH3_state_t *st = rc ? NULL : XXH3_createState();
	if (!rc && !st)
		rc = fail("XXH3_createState", -ENOMEM);
	int ret = rc;
	for (int i = 0; i < npos && !rc; i++) {
		if (sum_one(pos[i], page_size, no_ra, reference, st))
			ret = 1;
		if (fflush(stdout)) { /* each line as soon as its file is done */
			msg("writing to standard output: %s", strerror(errno));
			ret = 1;
			break;
		}
	}
	XXH3_freeState(st);
	free(pos);
	return ret;
}

const struct cli_cmd cli_cmd_sum = {
	"sum", cmd_sum, "[--page-size N] [--no-readahead] [--reference] [--[no-]progress] FILE...",
	"Print the XXH3 64-bit checksum of each FILE read through a vmo mapping,\n"
	"as `xxhsum -H3` prints it (\"XXH3 (FILE) = 16 hex digits\"), so\n"
	"`xxhsum -c` can check the output; faults and pages read go to standard\n"
	"error.  --reference: compute it with plain pread(2) instead, to check vmo\n"
	"against.  A file that cannot be read is said, the others still summed,\n"
	"and the exit status is 1.  (For SHA-256: `vmo cat FILE | sha256sum`.)\n"
	"--progress, --no-progress: the progress line on standard error (default:\n"
	"shown when standard error is a terminal).",
};
