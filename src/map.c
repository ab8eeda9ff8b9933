/* SPDX-License-Identifier: MIT */
/* map.c - vmo_map and vmo_unmap: views of an object in the local space
 * (views.c has the object's side of views, space.c the space's). */
#include "core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- vmo_map, vmo_unmap ----------------------------------------------------------- */
/* ENOMEM from mmap/madvise/register is most often the per-process limit on
 * mappings: each view is one. */
static int map_enomem(void)
{
	long max = vmo__read_long("/proc/sys/vm/max_map_count", -1);
	vmo__set_detail("out of memory for a new mapping: most often the process is at vm.max_map_count "
			"(%ld mappings; each view is one): unmap views, or raise it (sysctl -w "
			"vm.max_map_count=N)",
			max);
	return -ENOMEM;
}

VMO_API int vmo_map(struct vmo_object *obj, uint64_t off, size_t len, unsigned flags, void **addr)
{
	if (!obj || !addr || !len)
		return -EINVAL;
	if (flags & ~(VMO_PROT_READ | VMO_PROT_WRITE | VMO_MAP_FIXED))
		return -EINVAL;
	if (!(flags & (VMO_PROT_READ | VMO_PROT_WRITE)))
		return -EINVAL;
	uint64_t end;
	if ((off | len) & (obj->page_size - 1) || !vmo__add_ok(off, len, &end) || end > obj->size)
		return -EINVAL;
	if ((flags & VMO_MAP_FIXED) && (!*addr || ((uintptr_t)*addr & (VMO_PAGE - 1))))
		return -EINVAL;
	if (!obj->proxy && (flags & (VMO_PROT_READ | VMO_PROT_WRITE) & ~obj->prot)) {
		vmo__set_detail("vmo_map: the object's protection (opts.prot %#x) does not allow %s", obj->prot,
				flags & VMO_PROT_WRITE ? "writing" : "reading");
		return -EACCES;
	}
	if (obj->proxy)
		return obj->proxy->map(obj, off, len, flags, addr);
	void *hint = NULL;
	int mflags = MAP_SHARED, rc0;
	if (flags & VMO_MAP_FIXED) {
		hint = *addr;
		if (!hint || ((uintptr_t)hint & (VMO_PAGE - 1)))
			return -EINVAL;
		mflags |= MAP_FIXED_NOREPLACE;
	}
	if (atomic_load(&obj->dead))
		return -VMO_ESHUTDOWN;
	struct vmo_engine *eng = obj->eng;
	/* Self-service: vmo's SIGBUS handler must be the one installed (the
	 * program may have put its own in since; vmo's passes on to it). */
	if (eng->ss_install && (rc0 = eng->ss_install()) < 0)
		return rc0;
	struct vmo_map *m;
	int prot = ((flags & VMO_PROT_READ) ? PROT_READ : 0) | ((flags & VMO_PROT_WRITE) ? PROT_WRITE | PROT_READ : 0);
	void *p = mmap(hint, len, prot, mflags, obj->memfd, (off_t)off);
	int rc;
	if (p == MAP_FAILED) {
		rc = errno == ENOMEM ? map_enomem() : -errno;
		return rc;
	}
	if ((flags & VMO_MAP_FIXED) && p != hint) { /* old kernels ignore NOREPLACE */
		munmap(p, len);
		rc = -EEXIST;
		return rc;
	}
	/* A child must never see this range turn into zero pages. */
	if (madvise(p, len, MADV_DONTFORK) < 0) {
		rc = errno == ENOMEM ? map_enomem() : -errno;
		goto fail_unmap;
	}
	rc = vmo__view_attach(eng->local, obj, (uintptr_t)p, len, off, flags,
			      obj->track && (flags & VMO_PROT_WRITE), &m);
	if (rc) {
		if (rc == -ENOMEM)
			rc = map_enomem();
		goto fail_unmap;
	}
	*addr = p;
	return 0;
fail_unmap:
	munmap(p, len);
	return rc;
}

VMO_API int vmo_unmap(struct vmo_object *obj, void *addr, size_t len)
{
	if (!obj || !addr || !len)
		return -EINVAL;
	if (obj->proxy)
		return obj->proxy->unmap(obj, addr, len);
	struct vmo_engine *eng = obj->eng;
	struct vmo_map *m = vmo__view_take(eng->local, obj, (uintptr_t)addr, len);
	if (!m)
		return -EINVAL;
	vmo__view_quiesce(m);
	/* Async tracking: what was written through this view is known only to
	 * its page table, which munmap throws away.  Collect it first. */
	if (eng->async && m->wp)
		vmo__collect_written(obj, m->off >> obj->page_shift, (m->off + m->len) >> obj->page_shift, m);
	/* Out of the userfaultfd before the munmap, so that our own munmap is
	 * not an UNMAP event (which would wait for a worker to read it).  The
	 * range was made inaccessible first: between the unregister and the
	 * munmap a touch would otherwise put a zero page into the memfd (silent
	 * zeros in every other view).  Whoever still acts on the view
	 * (protecting it for writeback) held a reference, waited for above, or
	 * finds it dead.  The detach drops the tables' reference: keep ours
	 * until the range is gone. */
	vmo__map_get(m);
	vmo__view_detach(m);
	munmap(addr, len);
	vmo__map_put(m);
	return 0;
}
