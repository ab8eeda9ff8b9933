/* SPDX-License-Identifier: MIT */
/* Streaming a file through vmo mappings: what `vmo cat` and `vmo sum` share.
 * stream.c implements it. */
#ifndef VMO_TOOL_STREAM_H
#define VMO_TOOL_STREAM_H

#include "cli.h"

/* Takes each piece of the file in order; nonzero (an exit status) stops. */
typedef int (*consume_fn)(void *arg, const void *buf, size_t len);

struct stream {
	const char *path;
	uint64_t offset, length; /* length UINT64_MAX: to end of file */
	uint32_t page_size;
	bool no_readahead;
	/* results */
	uint64_t bytes, ns;
	struct vmo_stats st;
};

/* Open path for reading, regular file or block device; 0, or 1 after a
 * message (missing, a directory, ...). */
int open_input(const char *path, int *fd_out, uint64_t *size_out);

/* Feed [s->offset, s->offset + s->length) of s->path, clipped at end of file,
 * to fn in pieces of at most CHUNK bytes, read through vmo mappings; fill in
 * the results; progress as progress_setup decided.  0 or an exit status. */
int stream_file(struct stream *s, consume_fn fn, void *arg);

#endif
