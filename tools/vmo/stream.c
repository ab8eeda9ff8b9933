/* SPDX-License-Identifier: MIT */
/* Streaming a file through vmo mappings (cat, sum); see stream.h. */
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The file is read in windows: one object per window, over the file pager
 * at base = the window's file offset, mapped read-only, copied out, then
 * unmapped and released so memory stays bounded by one window.  (When the
 * engine budget lands, one object with vmo_object_set_budget() would do.) */
#define WINDOW (32ull << 20)

/* Open path for reading, regular file or block device; exit-status style rc:
 * a file that cannot be opened (missing, a directory, no permission) is a
 * failed operation, 1, as for cat(1), not a usage error. */
int open_input(const char *path, int *fd_out, uint64_t *size_out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		msg("'%s': %s", path, strerror(errno));
		return 1;
	}
	struct stat sb;
	int e = 0;
	uint64_t size = 0;
	if (fstat(fd, &sb) < 0) {
		e = errno;
	} else if (S_ISREG(sb.st_mode)) {
		size = (uint64_t)sb.st_size;
	} else if (S_ISBLK(sb.st_mode)) {
		off_t end = lseek(fd, 0, SEEK_END);
		if (end < 0)
			e = errno;
		else
			size = (uint64_t)end;
	} else {
		close(fd);
		msg("'%s': %s", path,
		    S_ISDIR(sb.st_mode) ? "Is a directory" : "not a regular file or block device (it cannot be paged)");
		return 1;
	}
	if (e) {
		close(fd);
		msg("'%s': %s", path, strerror(e));
		return 1;
	}
	*fd_out = fd;
	*size_out = size;
	return 0;
}

/* Clip [offset, offset+length) to the file; exit-status style rc. */
static int clip_range(struct stream *s, uint64_t fsize)
{
	if (s->offset > fsize)
		return usage_error("--offset %" PRIu64 " is past the end of '%s' (%" PRIu64 " bytes)", s->offset,
				   s->path, fsize);
	if (s->length > fsize - s->offset)
		s->length = fsize - s->offset; /* clipped at end of file, as head -c */
	return 0;
}

/* One window: [s->offset + done, + wlen) of the file, through one object and
 * one read-only mapping, copied out CHUNK bytes at a time into buf and fed to
 * fn.  0 or an exit status. */
static int stream_window(struct stream *s, struct vmo_engine *eng, int fd, uint64_t done, uint64_t wlen,
			 char *buf, consume_fn fn, void *arg)
{
	const struct vmo_pager_ops *ops;
	void *ctx;
	int rc, ret = 0;
	if ((rc = vmo_pager_file(fd, s->offset + done, &ops, &ctx)))
		return fail("vmo_pager_file", rc);
	struct vmo_object_opts oo = {
		.flags = s->no_readahead ? VMO_OBJ_NO_READAHEAD : 0,
		.page_size = s->page_size,
		.size = wlen, /* rounded up to the page size; the tail reads as zeros */
	};
	struct vmo_object *obj;
	if ((rc = vmo_object_create(eng, ops, ctx, &oo, &obj))) {
		if (ops->release)
			ops->release(ctx); /* the object never took ctx over */
		return fail("vmo_object_create", rc);
	}
	size_t mlen = (size_t)vmo_object_size(obj);
	void *base = NULL;
	if ((rc = vmo_map(obj, 0, mlen, VMO_PROT_READ, &base))) {
		ret = fail("vmo_map", rc);
		vmo_object_unref(obj);
		return ret;
	}
	for (uint64_t w = 0; w < wlen; w += CHUNK) {
		size_t n = wlen - w < CHUNK ? (size_t)(wlen - w) : CHUNK;
		uintptr_t bad = 0;
		if (!guarded_copy(buf, (char *)base + w, n, &bad)) {
			uint64_t off = bad - (uintptr_t)base;
			int perr = vmo_get_error(obj, off & ~(uint64_t)(vmo_object_page_size(obj) - 1));
			msg("'%s': page at file offset %" PRIu64 " could not be read: %s", s->path,
			    s->offset + done + off, perr ? vmo_strerror(perr) : "SIGBUS");
			ret = 1;
			break;
		}
		if ((rc = fn(arg, buf, n))) {
			ret = rc;
			break;
		}
		s->bytes += n;
		progress_add(n);
	}
	if ((rc = vmo_unmap(obj, base, mlen)) && !ret)
		ret = fail("vmo_unmap", rc);
	vmo_object_unref(obj);
	return ret;
}

int stream_file(struct stream *s, consume_fn fn, void *arg)
{
	int fd;
	uint64_t fsize;
	int rc = open_input(s->path, &fd, &fsize);
	if (rc)
		return rc;
	if ((rc = clip_range(s, fsize))) {
		close(fd);
		return rc;
	}
	s->bytes = 0;
	s->ns = 0;
	memset(&s->st, 0, sizeof s->st);
	if (!s->length) { /* nothing to map (an object is never empty) */
		close(fd);
		return 0;
	}
	char *buf = malloc(CHUNK);
	if (!buf) {
		close(fd);
		return fail("malloc", -ENOMEM);
	}
	install_sigbus();
	struct vmo_engine *eng = NULL;
	int ret = 0;
	if ((rc = vmo_engine_create(NULL, &eng))) {
		ret = engine_fail(rc);
		goto out;
	}
	uint64_t t0 = now_ns();
	progress_begin("reading", s->length);
	for (uint64_t done = 0; done < s->length && !ret;) {
		uint64_t wlen = s->length - done < WINDOW ? s->length - done : WINDOW;
		ret = stream_window(s, eng, fd, done, wlen, buf, fn, arg);
		done += wlen;
	}
	progress_end();
	s->ns = now_ns() - t0;
	/* engine stats include objects already released */
	if ((rc = vmo_engine_stats(eng, &s->st)) && !ret)
		ret = fail("vmo_engine_stats", rc);
	if ((rc = vmo_engine_destroy(eng)) && !ret)
		ret = fail("vmo_engine_destroy", rc);
out:
	free(buf);
	close(fd);
	return ret;
}
