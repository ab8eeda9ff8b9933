/* map.c - views of an object in the address space: each is a MAP_SHARED
 * mapping of the object's memfd registered with the engine's userfaultfd,
 * kept in an address-sorted table for fault lookup. */
#include "core.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The view of eng holding addr, or NULL; under maps_lock. */
static struct vmo_map *find_view(struct vmo_engine *eng, uintptr_t addr)
{
	struct vmo__vnode *n = vmo__vtree_find_le(&eng->maps, addr);
	if (!n || addr >= n->end)
		return NULL;
	return vmo__vtree_entry(n, struct vmo_map, anode);
}

struct vmo_map *vmo__map_lookup_get(struct vmo_engine *eng, uintptr_t addr)
{
	pthread_rwlock_rdlock(&eng->maps_lock);
	struct vmo_map *m = find_view(eng, addr);
	if (m)
		atomic_fetch_add_explicit(&m->refs, 1, memory_order_acquire);
	pthread_rwlock_unlock(&eng->maps_lock);
	return m;
}

void vmo__map_put(struct vmo_map *m)
{
	if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
		return;
	struct vmo_object *obj = m->obj;
	free(m);
	vmo__object_put(obj);
}

/* Put m in the engine's and the object's trees (it holds a reference on
 * its object, taken by the caller). */
static void view_link(struct vmo_map *m)
{
	struct vmo_object *obj = m->obj;
	m->anode.start = m->addr;
	m->anode.end = m->addr + m->len;
	m->onode.start = m->off;
	m->onode.end = m->off + m->len;
	atomic_store(&m->refs, 1);
	pthread_rwlock_wrlock(&obj->eng->maps_lock);
	vmo__vtree_insert(&obj->eng->maps, &m->anode);
	pthread_rwlock_unlock(&obj->eng->maps_lock);
	pthread_mutex_lock(&obj->mu);
	vmo__vtree_insert(&obj->views, &m->onode);
	obj->nmaps++;
	obj->nwmaps += m->wp;
	pthread_mutex_unlock(&obj->mu);
}

/* Take m out of the object's tree (it is already out of the engine's, under
 * maps_lock, and marked dead by whoever took it out). */
static void view_unlink_obj(struct vmo_map *m)
{
	struct vmo_object *obj = m->obj;
	pthread_mutex_lock(&obj->mu);
	vmo__vtree_remove(&obj->views, &m->onode);
	obj->nmaps--;
	obj->nwmaps -= m->wp;
	pthread_mutex_unlock(&obj->mu);
}

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
		rc = errno == ENOMEM ? map_enomem() : -errno;
		goto fail_free;
	}
	if ((flags & VMO_MAP_FIXED) && p != hint) { /* old kernels ignore NOREPLACE */
		munmap(p, len);
		rc = -EEXIST;
		goto fail_free;
	}
	/* A child must never see this range turn into zero pages. */
	if (madvise(p, len, MADV_DONTFORK) < 0) {
		rc = errno == ENOMEM ? map_enomem() : -errno;
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
	/* Registered and in the tables under space_lock: a fault at an address
	 * no view covers is poisoned under it (fault.c), never this new view. */
	pthread_rwlock_wrlock(&eng->space_lock);
	rc = vmo__uffd_register(&eng->u, p, len, modes);
	if (rc) {
		pthread_rwlock_unlock(&eng->space_lock);
		if (rc == -ENOMEM)
			rc = map_enomem();
		goto fail_unmap;
	}
	/* Pages already in memory (another view touched them): with MINOR faults
	 * they are mapped on first touch, write-protected while clean. */
	vmo__object_get(obj);
	view_link(m);
	pthread_rwlock_unlock(&eng->space_lock);
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
	/* Under space_lock: an event the kernel has handed over (the program's
	 * munmap has returned) is applied before we look. */
	pthread_rwlock_rdlock(&eng->space_lock);
	pthread_rwlock_wrlock(&eng->maps_lock);
	struct vmo_map *m = find_view(eng, (uintptr_t)addr);
	if (!m || m->addr != (uintptr_t)addr || m->len != len || m->obj != obj) {
		pthread_rwlock_unlock(&eng->maps_lock);
		pthread_rwlock_unlock(&eng->space_lock);
		return -EINVAL;
	}
	/* Inaccessible first: from here a touch is SIGSEGV, never a fault at an
	 * address no view covers (which would be SIGBUS). */
	mprotect(addr, len, PROT_NONE);
	vmo__vtree_remove(&eng->maps, &m->anode);
	atomic_store(&m->dead, true);
	pthread_rwlock_unlock(&eng->maps_lock);
	pthread_rwlock_unlock(&eng->space_lock);
	/* No worker can find it now; wait for those that already have. */
	while (atomic_load_explicit(&m->refs, memory_order_acquire) > 1)
		sched_yield();
	/* Async tracking: what was written through this view is known only to
	 * its page table, which munmap throws away.  Collect it first. */
	if (eng->async && m->wp)
		vmo__collect_written(obj, m->off >> obj->page_shift, (m->off + m->len) >> obj->page_shift);
	view_unlink_obj(m);
	/* Out of the userfaultfd before the munmap, so that our own munmap is
	 * not an UNMAP event (which would wait for a worker to read it).  The
	 * range was made inaccessible first: between the unregister and the
	 * munmap a touch would otherwise put a zero page into the memfd (silent
	 * zeros in every other view).  The unregister wakes whoever waits on the
	 * range; they fault again on an inaccessible, then unmapped, range
	 * (SIGSEGV).  Whoever still acts on the view (protecting it for
	 * writeback) holds a reference, waited for above, or finds it dead. */
	vmo__uffd_unregister(&eng->u, addr, len);
	munmap(addr, len);
	vmo__map_put(m);
	return 0;
}

/* ---- the program changed the address space under a view ------------------
 * A view the program unmaps (munmap, or mmap MAP_FIXED over it) or moves
 * (mremap) is reported by an UNMAP or REMAP event.  Views never change: one
 * that straddles the edge of the range is split into new views, then those
 * inside are dropped (UNMAP) or moved (REMAP).  Called with space_lock held
 * for writing, so nothing of vmo acts on these addresses meanwhile. */

/* Retire m (out of both trees; the tables' reference dropped); under
 * maps_lock for writing. */
static void view_retire_locked(struct vmo_engine *eng, struct vmo_map *m)
{
	vmo__vtree_remove(&eng->maps, &m->anode);
	atomic_store(&m->dead, true);
}

/* A new view showing [a, b) of m's range, at address a + shift. */
static struct vmo_map *view_piece(struct vmo_map *m, uintptr_t a, uintptr_t b, intptr_t shift)
{
	struct vmo_map *n = calloc(1, sizeof *n);
	if (!n)
		return NULL;
	n->obj = m->obj;
	n->addr = a + (uintptr_t)shift;
	n->len = b - a;
	n->off = m->off + (a - m->addr);
	n->flags = m->flags;
	n->wp = m->wp;
	n->ra_window = 1;
	vmo__object_get(m->obj);
	return n;
}

/* Async tracking keeps what was written only in the page tables: a view
 * unmapped by the program took that knowledge with it.  Count every clean
 * page it showed as dirty (written back once more; never a write lost). */
static void dirty_all(struct vmo_object *o, uint64_t off, uint64_t len)
{
	for (uint64_t pg = off >> o->page_shift; pg < (off + len) >> o->page_shift; pg++)
		ps_mark_written(o, pg);
}

/* Views retired under space_lock, released after it: the last reference
 * to an object may go with them, and its shutdown writes back (collecting
 * written pages takes space_lock). */
struct retired {
	struct vmo_map **v;
	size_t n, cap;
};

static void retire(struct retired *r, struct vmo_map *m)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct vmo_map **v = realloc(r->v, cap * sizeof *v);
		if (!v) {
			/* Keep the view's reference rather than risk the deadlock:
			 * a leak of one struct under memory exhaustion. */
			vmo__err("no memory to release a view; it is leaked");
			return;
		}
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n++] = m;
}

static void release_retired(struct retired *r)
{
	for (size_t i = 0; i < r->n; i++)
		vmo__map_put(r->v[i]);
	free(r->v);
}

/* The program unmapped [a, b) (unmap) or moved it to a + shift (remap). */
static void space_change(struct vmo_engine *eng, uintptr_t a, uintptr_t b, bool unmap, intptr_t shift,
			 struct retired *ret)
{
	enum { BATCH = 64 };
	for (;;) {
		struct vmo_map *hit[BATCH];
		int k = 0;
		pthread_rwlock_wrlock(&eng->maps_lock);
		struct vmo__vnode *n = vmo__vtree_find_le(&eng->maps, a);
		if (!n || n->end <= a)
			n = n ? vmo__vtree_next(n) : vmo__vtree_first(&eng->maps);
		for (; n && n->start < b && k < BATCH; n = vmo__vtree_next(n)) {
			hit[k++] = vmo__vtree_entry(n, struct vmo_map, anode);
		}
		for (int i = 0; i < k; i++)
			view_retire_locked(eng, hit[i]);
		pthread_rwlock_unlock(&eng->maps_lock);
		if (!k)
			return;
		for (int i = 0; i < k; i++) {
			struct vmo_map *m = hit[i];
			uintptr_t ma = m->addr, mb = m->addr + m->len;
			uintptr_t ia = ma > a ? ma : a, ib = mb < b ? mb : b; /* the part inside */
			struct vmo_map *piece[3] = {
				ma < ia ? view_piece(m, ma, ia, 0) : NULL,
				unmap ? NULL : view_piece(m, ia, ib, shift),
				ib < mb ? view_piece(m, ib, mb, 0) : NULL,
			};
			view_unlink_obj(m);
			if (unmap && m->wp && eng->async)
				dirty_all(m->obj, m->off + (ia - ma), ib - ia);
			for (int j = 0; j < 3; j++)
				if (piece[j])
					view_link(piece[j]);
			vmo__debug("view %#lx+%#zx: %s [%#lx, %#lx)%s", (unsigned long)ma, m->len,
				   unmap ? "unmapped by the program" : "moved by the program", (unsigned long)ia,
				   (unsigned long)ib, (!unmap && !piece[1]) ? " (no memory for the moved piece: dropped)" : "");
			retire(ret, m);
		}
	}
}

static void space_event(struct vmo_engine *eng, const struct uffd_msg *msg, struct retired *ret)
{
	if (msg->event == UFFD_EVENT_UNMAP)
		space_change(eng, (uintptr_t)msg->arg.remove.start, (uintptr_t)msg->arg.remove.end, true, 0, ret);
	else if (msg->event == UFFD_EVENT_REMAP)
		space_change(eng, (uintptr_t)msg->arg.remap.from, (uintptr_t)msg->arg.remap.from + msg->arg.remap.len,
			     false, (intptr_t)(msg->arg.remap.to - msg->arg.remap.from), ret);
	else
		vmo__debug("ignoring userfaultfd event %#x", msg->event);
}

/* Read up to n messages under space_lock and apply the events among them in
 * order; the faults are compacted to the front and counted. */
int vmo__space_read(struct vmo_engine *eng, struct uffd_msg *msgs, int n, bool wait_lock)
{
	struct retired ret = { 0 };
	if (!wait_lock) {
		if (pthread_rwlock_trywrlock(&eng->space_lock))
			return -EBUSY;
	} else {
		pthread_rwlock_wrlock(&eng->space_lock);
	}
	int r = vmo__uffd_read(&eng->u, msgs, n), k = 0;
	for (int i = 0; i < r; i++) {
		if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
			msgs[k++] = msgs[i];
		else
			space_event(eng, &msgs[i], &ret);
	}
	pthread_rwlock_unlock(&eng->space_lock);
	release_retired(&ret);
	return r < 0 ? r : k;
}

/* Keep fault messages read while draining, for the workers. */
static void stash(struct vmo_engine *eng, const struct uffd_msg *msgs, int r)
{
	pthread_mutex_lock(&eng->stash_mu);
	if (eng->nstash + (size_t)r > eng->stash_cap) {
		size_t cap = eng->stash_cap ? eng->stash_cap * 2 : 64;
		while (cap < eng->nstash + (size_t)r)
			cap *= 2;
		struct uffd_msg *ns = realloc(eng->stash, cap * sizeof *ns);
		if (ns) {
			eng->stash = ns;
			eng->stash_cap = cap;
		}
	}
	if (eng->nstash + (size_t)r <= eng->stash_cap) {
		memcpy(eng->stash + eng->nstash, msgs, (size_t)r * sizeof *msgs);
		eng->nstash += (size_t)r;
		atomic_store(&eng->stashed, eng->nstash);
		uint64_t one = 1;
		if (write(eng->stash_efd, &one, sizeof one) < 0) /* wake a worker in poll */
			vmo__debug("stash eventfd: %s", strerror(errno));
	} else {
		/* No memory to keep them: wake the threads, they fault again. */
		for (int i = 0; i < r; i++)
			vmo__uffd_wake(&eng->u, (void *)(uintptr_t)(msgs[i].arg.pagefault.address & ~(uint64_t)(VMO_PAGE - 1)),
				       VMO_PAGE);
	}
	pthread_mutex_unlock(&eng->stash_mu);
}

/* What this thread holds space_lock for reading for: a view, or an address
 * no view covers (tl_in without tl_view). */
static _Thread_local bool tl_in;
static _Thread_local struct vmo_map *tl_view;

bool vmo__space_enter(struct vmo_engine *eng, struct vmo_map *m)
{
	pthread_rwlock_rdlock(&eng->space_lock);
	if (m && atomic_load(&m->dead)) {
		pthread_rwlock_unlock(&eng->space_lock);
		return false;
	}
	tl_in = true;
	tl_view = m;
	return true;
}

void vmo__space_exit(struct vmo_engine *eng)
{
	tl_in = false;
	tl_view = NULL;
	pthread_rwlock_unlock(&eng->space_lock);
}

bool vmo__space_drain(void *arg)
{
	struct vmo_engine *eng = arg;
	struct uffd_msg msgs[16];
	bool in = tl_in;
	struct vmo_map *v = tl_view;
	/* Any thread may read and apply events here, whatever locks it holds
	 * (applying takes only maps_lock and obj->mu, which no ioctl caller
	 * holds): it may be the one the workers wait for.  The fault messages it
	 * reads go to the workers (stash).  A caller acting on a view holds
	 * space_lock for reading: let go of it, so that the event can be applied
	 * (by us or another thread), then take it again and see whether the view
	 * survived; one acting on an address no view covered gives up (its look
	 * is stale).  Without it, if the lock is taken, whoever holds it is
	 * reading already or will let a reader in next: give it the CPU. */
	if (in)
		pthread_rwlock_unlock(&eng->space_lock);
	int r = vmo__space_read(eng, msgs, 16, in);
	if (r > 0)
		stash(eng, msgs, r);
	else
		sched_yield();
	if (!in)
		return false;
	pthread_rwlock_rdlock(&eng->space_lock);
	return !v || atomic_load(&v->dead);
}
