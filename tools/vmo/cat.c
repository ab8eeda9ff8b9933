/* SPDX-License-Identifier: MIT */
/* vmo cat: stream a file (or part of it) through a vmo mapping. */
#include "stream.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

static int write_all(void *arg, const void *buf, size_t len)
{
	(void)arg;
	const char *p = buf;
	while (len) {
		ssize_t w = write(STDOUT_FILENO, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			msg("writing to standard output: %s", strerror(errno));
			return 1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static int cmd_cat(int argc, char **argv)
{
	const char *offset = NULL, *length = NULL, *psize = NULL, *pos[1];
	bool no_ra = false, prog_on = false, prog_off = false;
	const struct opt opts[] = {
		{ "--offset", true, &offset, NULL },
		{ "--length", true, &length, NULL },
		{ "--page-size", true, &psize, NULL },
		{ "--no-readahead", false, NULL, &no_ra },
		{ "--progress", false, NULL, &prog_on },
		{ "--no-progress", false, NULL, &prog_off },
		{ NULL, false, NULL, NULL },
	};
	int npos, rc = parse_opts(argc, argv, opts, pos, 1, &npos);
	if (rc)
		return rc;
	if (npos != 1)
		return usage_error("missing FILE (usage: vmo cat [--offset N] [--length N] [--page-size N] [--no-readahead] FILE)");
	struct stream s = { .path = pos[0], .length = UINT64_MAX, .no_readahead = no_ra };
	if (offset && (rc = parse_size("--offset", offset, true, &s.offset)))
		return rc;
	if (s.offset > INT64_MAX)
		return usage_error("--offset: '%s' is too large", offset);
	if (length && (rc = parse_size("--length", length, false, &s.length)))
		return rc;
	if (psize && (rc = parse_page_size(psize, &s.page_size)))
		return rc;
	if ((rc = progress_setup(prog_on, prog_off, true)))
		return rc;
	return stream_file(&s, write_all, NULL);
}

const struct cli_cmd cli_cmd_cat = {
	"cat", cmd_cat, "[--offset N] [--length N] [--page-size N] [--no-readahead] [--[no-]progress] FILE",
	"Write FILE (from --offset, --length bytes, clipped at end of file) to\n"
	"standard output, read through vmo mappings over the file pager.\n"
	"--progress, --no-progress: the progress line on standard error (default:\n"
	"shown when standard error is a terminal and standard output is not).",
};
