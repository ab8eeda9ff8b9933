/* map.c - views of an object in the address space: each is a MAP_SHARED
 * mapping of the object's memfd registered with the engine's userfaultfd,
 * kept in an address-sorted table for fault lookup. */
#include "core.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Index of the first mapping whose end is above addr. */
static size_t lower_bound(struct vmo_engine *eng, uintptr_t addr)
{
	size_t lo = 0, hi = eng->nmaps;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		struct vmo_map *m = eng->maps[mid];
		if (m->addr + m->len <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct vmo_map *vmo__map_lookup_get(struct vmo_engine *eng, uintptr_t addr)
{
	struct vmo_map *found = NULL;
	pthread_rwlock_rdlock(&eng->maps_lock);
	size_t i = lower_bound(eng, addr);
	if (i < eng->nmaps && eng->maps[i]->addr <= addr) {
		found = eng->maps[i];
		atomic_fetch_add_explicit(&found->busy, 1, memory_order_acquire);
	}
	pthread_rwlock_unlock(&eng->maps_lock);
	return found;
}

static int table_insert(struct vmo_engine *eng, struct vmo_map *m)
{
	pthread_rwlock_wrlock(&eng->maps_lock);
	if (eng->nmaps == eng->maps_cap) {
		size_t cap = eng->maps_cap ? eng->maps_cap * 2 : 64;
		struct vmo_map **n = realloc(eng->maps, cap * sizeof *n);
		if (!n) {
			pthread_rwlock_unlock(&eng->maps_lock);
			return -ENOMEM;
		}
		eng->maps = n;
		eng->maps_cap = cap;
	}
	size_t i = lower_bound(eng, m->addr);
	memmove(&eng->maps[i + 1], &eng->maps[i], (eng->nmaps - i) * sizeof *eng->maps);
	eng->maps[i] = m;
	eng->nmaps++;
	pthread_rwlock_unlock(&eng->maps_lock);
	return 0;
}

/* Remove the mapping that starts at addr with length len; NULL if none. */
static struct vmo_map *table_remove(struct vmo_engine *eng, struct vmo_object *obj, uintptr_t addr, size_t len)
{
	struct vmo_map *m = NULL;
	pthread_rwlock_wrlock(&eng->maps_lock);
	size_t i = lower_bound(eng, addr);
	if (i < eng->nmaps && eng->maps[i]->addr == addr && eng->maps[i]->len == len && eng->maps[i]->obj == obj) {
		m = eng->maps[i];
		memmove(&eng->maps[i], &eng->maps[i + 1], (eng->nmaps - i - 1) * sizeof *eng->maps);
		eng->nmaps--;
	}
	pthread_rwlock_unlock(&eng->maps_lock);
	return m;
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
	void *hint = NULL;
	int mflags = MAP_SHARED;
	if (flags & VMO_MAP_FIXED) {
		hint = *addr;
		if (!hint || ((uintptr_t)hint & (VMO_PAGE - 1)))
			return -EINVAL;
		mflags |= MAP_FIXED_NOREPLACE;
	}
	if (atomic_load(&obj->dead))
		return -VMO_ESHUTDOWN;
	struct vmo_engine *eng = obj->eng;
	struct vmo_map *m = calloc(1, sizeof *m);
	if (!m)
		return -ENOMEM;
	int prot = ((flags & VMO_PROT_READ) ? PROT_READ : 0) | ((flags & VMO_PROT_WRITE) ? PROT_WRITE | PROT_READ : 0);
	void *p = mmap(hint, len, prot, mflags, obj->memfd, (off_t)off);
	int rc;
	if (p == MAP_FAILED) {
		rc = -errno;
		goto fail_free;
	}
	if ((flags & VMO_MAP_FIXED) && p != hint) { /* old kernels ignore NOREPLACE */
		munmap(p, len);
		rc = -EEXIST;
		goto fail_free;
	}
	/* A child must never see this range turn into zero pages. */
	if (madvise(p, len, MADV_DONTFORK) < 0) {
		rc = -errno;
		goto fail_unmap;
	}
	m->obj = obj;
	m->addr = (uintptr_t)p;
	m->len = len;
	m->off = off;
	m->flags = flags;
	m->wp = obj->track && (flags & VMO_PROT_WRITE);
	m->ra_window = 1;
	uint64_t modes = UFFDIO_REGISTER_MODE_MISSING;
	if (eng->features & VMO_FEAT_MINOR)
		modes |= UFFDIO_REGISTER_MODE_MINOR;
	if (m->wp)
		modes |= UFFDIO_REGISTER_MODE_WP;
	rc = vmo__uffd_register(&eng->u, p, len, modes);
	if (rc)
		goto fail_unmap;
	/* Pages already in memory (another view touched them): with MINOR faults
	 * they are mapped on first touch, write-protected while clean. */
	vmo_object_ref(obj);
	rc = table_insert(eng, m);
	if (rc) {
		vmo_object_unref(obj);
		goto fail_unmap;
	}
	pthread_mutex_lock(&obj->mu);
	m->onext = obj->maps;
	obj->maps = m;
	obj->nmaps++;
	obj->nwmaps += m->wp;
	pthread_mutex_unlock(&obj->mu);
	*addr = p;
	return 0;
fail_unmap:
	munmap(p, len);
fail_free:
	free(m);
	return rc;
}

VMO_API int vmo_unmap(struct vmo_object *obj, void *addr, size_t len)
{
	if (!obj || !addr || !len)
		return -EINVAL;
	struct vmo_engine *eng = obj->eng;
	struct vmo_map *m = table_remove(eng, obj, (uintptr_t)addr, len);
	if (!m)
		return -EINVAL;
	/* No worker can find it now; wait for those that already have. */
	while (atomic_load_explicit(&m->busy, memory_order_acquire))
		sched_yield();
	/* Async tracking: what was written through this view is known only to
	 * its page table, which munmap throws away.  Collect it first. */
	if (eng->async && m->wp)
		vmo__collect_written(obj, m->off >> obj->page_shift, (m->off + m->len) >> obj->page_shift);
	pthread_mutex_lock(&obj->mu);
	for (struct vmo_map **pp = &obj->maps; *pp; pp = &(*pp)->onext)
		if (*pp == m) {
			*pp = m->onext;
			break;
		}
	obj->nmaps--;
	obj->nwmaps -= m->wp;
	pthread_mutex_unlock(&obj->mu);
	/* munmap without unregistering first: between the two, a touch would
	 * allocate a zero page in the memfd.  Then wake whoever still waits on
	 * the range: they fault again on an unmapped range (SIGSEGV). */
	munmap(addr, len);
	vmo__uffd_wake(&eng->u, addr, len);
	free(m);
	vmo_object_unref(obj);
	return 0;
}
