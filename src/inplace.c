/* SPDX-License-Identifier: MIT */
/* inplace.c - objects over data the caller already has (a microkernel vm_object's
 * create_in_place): a range of its memory, or of a file.  The object's
 * pager is the memory or file pager over it (writes go back there); what is
 * in memory already is put into the object when it is made (an offer: no
 * pager read), so touching it costs a mapping, not a read.  For memory,
 * that is every page the process has touched (mincore); for a file, the
 * pages in its page cache (no I/O to copy them).  Pages that are not there
 * come from the pager on demand as usual. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define RUN (256u << 10)

/* Offer to o the pages of [0, len) that vec says are resident, reading
 * each run with rd(arg, off, buf, n). */
static int offer_resident(struct vmo_object *o, const unsigned char *vec, uint64_t len,
			  int (*rd)(void *arg, uint64_t off, void *buf, size_t n), void *arg)
{
	size_t ps = vmo_object_page_size(o);
	char *buf = malloc(RUN);
	if (!buf)
		return -ENOMEM;
	int rc = 0;
	uint64_t npg = len / VMO_PAGE;
	for (uint64_t p = 0; p < npg && !rc;) {
		/* an object page is offered if all its system pages are resident */
		uint64_t per = ps / VMO_PAGE, opg = p / per;
		bool all = true;
		for (uint64_t k = opg * per; k < (opg + 1) * per && k < npg; k++)
			all = all && (vec[k] & 1);
		if (!all) {
			p = (opg + 1) * per;
			continue;
		}
		uint64_t off = opg * ps;
		size_t n = ps <= RUN ? ps : 0;
		if (!n) { /* (pages larger than the buffer: none here; RUN >= 256 KiB, pages <= 2 MiB) */
			char *big = malloc(ps);
			if (!big) {
				rc = -ENOMEM;
				break;
			}
			rc = rd(arg, off, big, ps);
			if (!rc)
				rc = vmo_object_offer(o, off, ps, big, 0);
			free(big);
		} else {
			rc = rd(arg, off, buf, n);
			if (!rc)
				rc = vmo_object_offer(o, off, n, buf, 0);
		}
		p = (opg + 1) * per;
	}
	free(buf);
	return rc;
}

struct memsrc {
	const char *p;
};
static int mem_rd(void *arg, uint64_t off, void *buf, size_t n)
{
	memcpy(buf, ((struct memsrc *)arg)->p + off, n);
	return 0;
}

struct filesrc {
	int fd;
	uint64_t base;
};
static int file_rd(void *arg, uint64_t off, void *buf, size_t n)
{
	struct filesrc *f = arg;
	long r = vmo__pread_full(f->fd, buf, n, f->base + off);
	if (r < 0)
		return (int)r;
	memset((char *)buf + r, 0, n - (size_t)r); /* (past the end of the file: zeros, as the file pager) */
	return 0;
}

static int check(uint64_t len, const struct vmo_object_opts *opts, struct vmo_object_opts *oo)
{
	*oo = opts ? *opts : (struct vmo_object_opts){ 0 };
	size_t ps = oo->page_size ? oo->page_size : VMO_PAGE;
	if (!len || len % ps || (oo->size && oo->size != len) || oo->max_size ||
	    (oo->flags & (VMO_OBJ_GROWS_UP | VMO_OBJ_GROWS_DOWN))) {
		vmo__set_detail("vmo_object_create_in_place: len a nonzero multiple of the page size; opts.size "
				"0 or len; no growth");
		return -EINVAL;
	}
	oo->size = len;
	return 0;
}

VMO_API int vmo_object_create_in_place(struct vmo_engine *eng, void *addr, uint64_t len,
				       const struct vmo_object_opts *opts, struct vmo_object **out)
{
	struct vmo_object_opts oo;
	if (!eng || !addr || !out || ((uintptr_t)addr & (VMO_PAGE - 1)))
		return -EINVAL;
	int rc = check(len, opts, &oo);
	if (rc)
		return rc;
	unsigned char *vec = malloc(len / VMO_PAGE);
	if (!vec)
		return -ENOMEM;
	if (mincore(addr, len, vec) < 0) {
		rc = -errno;
		free(vec);
		vmo__set_detail("vmo_object_create_in_place: [%p, +%#llx) is not all mapped memory", addr,
				(unsigned long long)len);
		return rc;
	}
	const struct vmo_pager_ops *ops;
	void *ctx;
	struct vmo_object *o;
	if ((rc = vmo_pager_mem(addr, len, &ops, &ctx)) || (rc = vmo_object_create(eng, ops, ctx, &oo, &o))) {
		free(vec);
		return rc;
	}
	struct memsrc ms = { addr };
	rc = offer_resident(o, vec, len, mem_rd, &ms);
	free(vec);
	if (rc) {
		vmo_object_unref(o);
		return rc;
	}
	*out = o;
	return 0;
}

VMO_API int vmo_object_create_in_place_file(struct vmo_engine *eng, int fd, uint64_t off, uint64_t len,
					    const struct vmo_object_opts *opts, struct vmo_object **out)
{
	struct vmo_object_opts oo;
	if (!eng || fd < 0 || !out || (off & (VMO_PAGE - 1)))
		return -EINVAL;
	int rc = check(len, opts, &oo);
	if (rc)
		return rc;
	/* What of the range is in the page cache: mincore of a mapping of it
	 * (mapping faults nothing in). */
	void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)off);
	if (m == MAP_FAILED) {
		rc = -errno;
		vmo__set_detail("vmo_object_create_in_place_file: mapping the range: %s", strerror(errno));
		return rc;
	}
	unsigned char *vec = malloc(len / VMO_PAGE);
	if (!vec || mincore(m, len, vec) < 0) {
		rc = vec ? -errno : -ENOMEM;
		free(vec);
		munmap(m, len);
		return rc;
	}
	munmap(m, len);
	const struct vmo_pager_ops *ops;
	void *ctx;
	struct vmo_object *o;
	if ((rc = vmo_pager_file(fd, off, &ops, &ctx)) || (rc = vmo_object_create(eng, ops, ctx, &oo, &o))) {
		free(vec);
		return rc;
	}
	struct filesrc fs = { fd, off };
	rc = offer_resident(o, vec, len, file_rd, &fs);
	free(vec);
	if (rc) {
		vmo_object_unref(o);
		return rc;
	}
	*out = o;
	return 0;
}
