/* SPDX-License-Identifier: MIT */
/* preload.c - libvmo-run.so: what `vmo run` preloads into a program
 * (docs/run.md).  The program's anonymous private mmaps of at least
 * VMO_RUN_MIN_MAP bytes, and its heap (heap.c), get their memory from
 * segments (ranges.c): vmo objects over a store, under one budget.  Small
 * and special mappings (stacks, executable, shared, file-backed, huge
 * pages) stay with the kernel, and so does anything vmo cannot take: the
 * call then goes to the kernel as it was made, with one message.
 *
 * Which calls are followed, and how (the kernel's semantics kept):
 *   mmap      taken: a range of a segment, made to the asked protection;
 *             MAP_FIXED over a segment: anonymous private -> the range is
 *             punched (zeros) and stays vmo's; anything else -> the
 *             kernel's, and the range is left to it for good
 *   munmap    the range punched (VMO_PUNCH: its pages and the store's copy
 *             go), made PROT_NONE (a stray access faults as after munmap),
 *             and given back
 *   mremap    shrink: the tail given back; grow: in place when the next
 *             range is free, else (MREMAP_MAYMOVE) a new range and a copy
 *   madvise   DONTNEED, FREE, REMOVE: punched (reads as zeros after, as on
 *             anonymous memory); WILLNEED: prefetched; PAGEOUT: written
 *             back and evicted; DOFORK, DONTFORK, WIPEONFORK, KEEPONFORK:
 *             ignored (fork is vmo's: a copy-on-write clone); HUGEPAGE,
 *             NOHUGEPAGE, COLLAPSE: ignored (see adv_piece); the rest go
 *             to the kernel
 *   mprotect  not interposed: the kernel's protection of the view applies
 *   fork      the child gets a copy-on-write clone of each segment, served
 *             by this process's engine (vmo_inherit); in the child nothing
 *             new is taken (vmo's handles are the parent's)
 * Calls made by jemalloc itself (its metadata, the kernel arena), by
 * libvmo, and on vmo's threads go straight to the kernel. */
#include "run.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif
#ifndef MADV_COLD
#define MADV_COLD 20
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

VR_TLS int vr__inside;
struct vmo_engine *vr__eng;
struct vr_config vr__cfg;
static _Atomic bool ready; /* set once init is done; cleared in a fork()ed child */
static uintptr_t je_lo, je_hi; /* jemalloc's text: its own mmaps are the kernel's */
static _Atomic uint64_t n_taken, n_fallback;

/* ---- raw system calls (no interposition, no errno games of our own) ------- */

void *vr__sys_mmap(void *addr, size_t len, int prot, int flags, int fd, long off)
{
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

int vr__sys_munmap(void *addr, size_t len)
{
	return (int)syscall(SYS_munmap, addr, len);
}

int vr__sys_mprotect(void *addr, size_t len, int prot)
{
	return (int)syscall(SYS_mprotect, addr, len, prot);
}

void vr__log(const char *fmt, ...)
{
	char buf[1024];
	int n = snprintf(buf, sizeof buf, "vmo run[%d]: ", (int)getpid());
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
	va_end(ap);
	n += m < 0 ? 0 : m;
	if (n > (int)sizeof buf - 2)
		n = (int)sizeof buf - 2;
	buf[n++] = '\n';
	ssize_t w = write(2, buf, (size_t)n);
	(void)w;
}

/* ---- inside: a program thread calling into libvmo ---------------------------- */

struct inside {
	unsigned arena;
};

static void enter(struct inside *g)
{
	g->arena = ~0u;
	if (vr__inside++ == 0)
		vr__heap_enter(&g->arena);
}

static void leave(struct inside *g)
{
	if (--vr__inside == 0)
		vr__heap_leave(g->arena);
}

static bool pass(void *ret)
{
	uintptr_t r = (uintptr_t)ret;
	return !atomic_load_explicit(&ready, memory_order_acquire) || vr__inside || (r >= je_lo && r < je_hi);
}

/* ---- vmo's threads: libvmo's pthread_create is wrapped (-Wl,--wrap) --------- */

int __real_pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);

struct tramp {
	void *(*fn)(void *);
	void *arg;
};

static void *tramp_main(void *p)
{
	vr__inside = VR_VMO_THREAD;
	vr__heap_bind_kernel();
	struct tramp t = *(struct tramp *)p;
	free(p);
	return t.fn(t.arg);
}

int __wrap_pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	struct inside g;
	enter(&g);
	struct tramp *t = malloc(sizeof *t);
	leave(&g);
	if (!t)
		return EAGAIN;
	t->fn = fn;
	t->arg = arg;
	int rc = __real_pthread_create(th, attr, tramp_main, t);
	if (rc)
		free(t);
	return rc;
}

/* ---- configuration ------------------------------------------------------------ */

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	unsigned shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: break;
	}
	if (*end == 'i' || *end == 'B')
		end += *end == 'i' && end[1] == 'B' ? 2 : 1;
	if (*end || (shift && v > (~0ull >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static int env_size(const char *name, uint64_t *out)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return 0;
	if (parse_size(v, out)) {
		vr__log("%s=\"%s\" is not a size (bytes, or with K, M, G, T)", name, v);
		return -EINVAL;
	}
	return 0;
}

static int config(void)
{
	struct vr_config *c = &vr__cfg;
	c->seg_size = 64ull << 30;
	c->min_map = 256u << 10;
	c->page_size = 4096;
	c->max_segs = 16;
	c->heap = true;
	c->children = true;
	uint64_t v;
	int rc = 0;
	rc |= env_size("VMO_RUN_BUDGET", &c->budget);
	rc |= env_size("VMO_RUN_SEGMENT", &c->seg_size);
	rc |= env_size("VMO_RUN_MIN_MAP", &c->min_map);
	v = c->page_size;
	rc |= env_size("VMO_RUN_PAGE_SIZE", &v);
	if (!rc && (v < 4096 || v > (2u << 20) || (v & (v - 1)))) {
		vr__log("VMO_RUN_PAGE_SIZE=%llu: a power of two from 4K to 2M", (unsigned long long)v);
		rc = -EINVAL;
	}
	c->page_size = (uint32_t)v;
	if (!rc && (c->seg_size < (64u << 20) || c->seg_size > (1ull << 44))) {
		vr__log("VMO_RUN_SEGMENT: from 64M to 16T");
		rc = -EINVAL;
	}
	const char *s;
	if ((s = getenv("VMO_RUN_MAX_SEGMENTS")) && *s) {
		c->max_segs = (unsigned)strtoul(s, NULL, 10);
		if (!c->max_segs || c->max_segs > VR_MAX_SEGS) {
			vr__log("VMO_RUN_MAX_SEGMENTS=%s: from 1 to %d", s, VR_MAX_SEGS);
			rc = -EINVAL;
		}
	}
	if ((s = getenv("VMO_RUN_HEAP")) && *s)
		c->heap = strcmp(s, "0") != 0;
	if ((s = getenv("VMO_RUN_CHILDREN")) && *s)
		c->children = strcmp(s, "0") != 0;
	if ((s = getenv("VMO_RUN_VERBOSE")) && *s)
		c->verbose = atoi(s);
	s = getenv("VMO_RUN_STORE");
	if (s && *s) {
		snprintf(c->store, sizeof c->store, "%s", s);
	} else {
		/* compressed memory, spilling to an unnamed swap file in
		 * $TMPDIR past the budget (or 1 GiB): a tier, never -ENOSPC */
		const char *tmp = getenv("TMPDIR");
		uint64_t cb = c->budget ? c->budget : 1ull << 30;
		snprintf(c->store, sizeof c->store, "lz4,budget=%llu:swap:%s", (unsigned long long)cb,
			 tmp && *tmp ? tmp : "/tmp");
	}
	return rc;
}

/* LD_PRELOAD without libvmo-run.so (and the libjemalloc.so.2 vmo run adds),
 * for the programs this one execs.  Edited in place, in the string the
 * environment holds: a program may build its children's environment from
 * main's envp, which setenv does not change (bash does). */
extern char **environ;

static void strip_preload(void)
{
	for (char **e = environ; e && *e; e++) {
		if (strncmp(*e, "LD_PRELOAD=", 11))
			continue;
		char *v = *e + 11, *out = v;
		for (char *tok = v; *tok;) {
			size_t n = strcspn(tok, ": ");
			bool drop = (n == 16 && !strncmp(tok, "libjemalloc.so.2", 16)) ||
				    (memmem(tok, n, "libvmo-run", 10) != NULL);
			if (!drop && n) {
				if (out != v)
					*out++ = ':';
				memmove(out, tok, n);
				out += n;
			}
			tok += n;
			while (*tok == ':' || *tok == ' ')
				tok++;
		}
		*out = 0;
	}
}

static int find_jemalloc(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	uintptr_t sym = (uintptr_t)arg;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
			continue;
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
		if (sym >= lo && sym < hi) {
			je_lo = lo;
			je_hi = hi;
			return 1;
		}
	}
	return 0;
}

static void *stats_main(void *arg);
static void stats_at_exit_setup(void);

/* Is the malloc the program calls jemalloc's?  Not when jemalloc came in
 * only as this library's dependency: libc's, earlier in the lookup order,
 * wins.  (Interposing malloc is glibc's documented way to replace it.) */
static bool jemalloc_is_malloc(void)
{
	/* Not by comparing addresses: a non-PIE program (Debian's python3)
	 * has malloc's address be a stub of its own.  jemalloc knows its own
	 * allocations ("arenas.lookup"). */
	int (*ctl)(const char *, void *, size_t *, void *, size_t) =
		(int (*)(const char *, void *, size_t *, void *, size_t))dlsym(RTLD_DEFAULT, "mallctl");
	void *p = malloc(64);
	unsigned ind;
	size_t sz = sizeof ind;
	bool ok = ctl && p && ctl("arenas.lookup", &ind, &sz, &p, sizeof p) == 0;
	free(p);
	return ok;
}

__attribute__((constructor)) static void vr_init(void)
{
	if (getenv("VMO_RUN_OFF"))
		return;
	struct inside g;
	bool je = false; /* jemalloc is the program's malloc */
	enter(&g);
	if (config()) {
		vr__log("not paging this program: fix the setting above (its memory stays the kernel's)");
		goto out;
	}
	if (!vr__cfg.children)
		strip_preload();
	void *me = dlsym(RTLD_DEFAULT, "mallctl");
	if (me)
		dl_iterate_phdr(find_jemalloc, me);
	/* The kernel arena before any of vmo's threads exists: each binds
	 * to it as it starts (tramp_main), and this thread is inside. */
	je = me && jemalloc_is_malloc();
	if (je && vr__heap_prepare() == 0) {
		unsigned dummy;
		vr__heap_enter(&dummy);
		g.arena = dummy;
	}
	struct vmo_engine_opts eo = { .budget = vr__cfg.budget };
	int rc = vmo_engine_create(&eo, &vr__eng);
	if (rc) {
		vr__log("not paging this program: %s (%s)", vmo_strerror(rc), vmo_last_error_detail());
		goto out;
	}
	if (!(vmo_engine_features(vr__eng) & VMO_FEAT_KERNEL_FAULTS)) {
		/* A user-mode-only userfaultfd: the program's own system calls
		 * into memory not yet supplied (a read(2) into its heap) would
		 * fail with EFAULT instead of waiting.  Nothing is taken. */
		vr__log("not paging this program: this userfaultfd serves user-mode faults only, so its system calls "
			"into paged memory would fail (EFAULT); allow kernel faults with `sysctl "
			"vm.unprivileged_userfaultfd=1` or access to /dev/userfaultfd (vmo info says more)");
		goto out;
	}
	if ((rc = vr__seg_add(vr__cfg.seg_size))) {
		vr__log("not paging this program: no segment (see above)");
		goto out;
	}
	if (vr__cfg.heap) {
		if (!(vmo_engine_features(vr__eng) & VMO_FEAT_CONTINUE_WP)) {
			/* jemalloc's arenas would live in the segments, and a
			 * fork()ed child (whose postfork handler touches them)
			 * would have no copy of them. */
			vr__log("the heap stays the kernel's: a fork()ed child could not have a copy of it "
				"(UFFDIO_CONTINUE_MODE_WP, Linux 6.5); large mmaps are still paged");
		} else if (!je) {
			vr__log("the heap stays the kernel's: jemalloc is not the program's malloc (LD_PRELOAD "
				"must name libjemalloc.so.2 as vmo run does; MALLOC_CONF must leave narenas alone)");
		} else if ((rc = vr__heap_init())) {
			vr__log("the heap stays the kernel's: jemalloc's hooks: %s", vmo_strerror(rc));
		}
	}
	if (je && !vr__heap_on)
		vr__heap_decay_default();
	stats_at_exit_setup();
	/* With every signal blocked, as libvmo's threads: the program's
	 * signals (a SIGTERM it reads from a signalfd, say) are not ours. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_t th;
	if (__wrap_pthread_create(&th, NULL, stats_main, NULL) == 0)
		pthread_detach(th);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	atomic_store_explicit(&ready, true, memory_order_release);
	if (vr__cfg.verbose)
		vr__log("paging: budget %llu MiB, store %s, heap %s, mmaps of %llu KiB or more",
			(unsigned long long)(vr__cfg.budget >> 20), vr__cfg.store, vr__heap_on ? "yes" : "no",
			(unsigned long long)(vr__cfg.min_map >> 10));
out:
	if (je && !vr__heap_on)
		vr__heap_decay_default();
	leave(&g);
}

/* ---- taking and giving back ranges -------------------------------------------- */

static uint64_t pgsz(void)
{
	return vr__cfg.page_size;
}

/* Punch [a, a+len) of segment s (page-aligned to 4 KiB): whole object
 * pages are punched from the object, the bytes of partial ones zeroed. */
static void punch(struct vr_seg *s, char *a, size_t len)
{
	uint64_t ps = pgsz(), off = (uint64_t)(a - s->base);
	uint64_t lo = (off + ps - 1) & ~(ps - 1), hi = (off + len) & ~(ps - 1);
	struct inside g;
	if (lo > off)
		memset(a, 0, (size_t)((lo < off + len ? lo : off + len) - off));
	if (hi < off + len && hi >= lo)
		memset(s->base + hi, 0, (size_t)(off + len - hi));
	if (hi > lo) {
		enter(&g);
		int rc = vmo_discard_range(s->obj, lo, hi - lo, VMO_PUNCH | VMO_WAIT);
		leave(&g);
		if (rc)
			vr__log("punching %llu KiB: %s", (unsigned long long)((hi - lo) >> 10), vmo_strerror(rc));
	}
}

static void give_back(struct vr_seg *s, char *a, size_t len)
{
	vr__sys_mprotect(a, len, PROT_READ | PROT_WRITE); /* (a part may be PROT_NONE or read-only) */
	punch(s, a, len);
	vr__sys_mprotect(a, len, PROT_NONE);
	vr__range_free(a, len);
}

static void *take(size_t len, int prot)
{
	uint64_t ps = pgsz();
	size_t L = (len + ps - 1) & ~(ps - 1);
	void *p = vr__range_alloc(L, ps);
	if (!p) {
		struct inside g;
		enter(&g);
		int rc = vr__seg_add(L > vr__cfg.seg_size ? L : vr__cfg.seg_size);
		leave(&g);
		if (!rc)
			p = vr__range_alloc(L, ps);
	}
	if (!p)
		return NULL;
	if (vr__sys_mprotect(p, L, prot)) {
		vr__range_free(p, L);
		return NULL;
	}
	atomic_fetch_add(&n_taken, 1);
	return p;
}

static void fallback_note(size_t len)
{
	static _Atomic int once;
	atomic_fetch_add(&n_fallback, 1);
	if (!atomic_exchange(&once, 1))
		vr__log("a mapping of %zu KiB stays the kernel's: the segments are full (VMO_RUN_MAX_SEGMENTS, "
			"VMO_RUN_SEGMENT); later ones are counted in the stats", len >> 10);
}

/* Apply fn to the parts of [a, a+len) in segments; the rest is done by
 * outside(a, len) (may be NULL). */
static int pieces(char *a, size_t len, void (*fn)(struct vr_seg *, char *, size_t, void *),
		  int (*outside)(char *, size_t, void *), void *arg)
{
	int rc = 0;
	char *end = a + len;
	while (a < end) {
		struct vr_seg *s = vr__seg_of(a);
		if (s) {
			char *e = s->base + s->size < end ? s->base + s->size : end;
			fn(s, a, (size_t)(e - a), arg);
			a = e;
			continue;
		}
		/* up to the next segment */
		char *next = end;
		unsigned n = atomic_load(&vr__nsegs);
		for (unsigned i = 0; i < n; i++)
			if (vr__segs[i].base > a && vr__segs[i].base < next)
				next = vr__segs[i].base;
		if (outside && outside(a, (size_t)(next - a), arg))
			rc = -1;
		a = next;
	}
	return rc;
}

static bool touches_segment(const void *addr, size_t len)
{
	const char *a = addr;
	unsigned n = atomic_load_explicit(&vr__nsegs, memory_order_acquire);
	for (unsigned i = 0; i < n; i++)
		if (a < vr__segs[i].base + vr__segs[i].size && a + len > vr__segs[i].base)
			return true;
	return false;
}

/* ---- mmap ----------------------------------------------------------------------- */

static void fixed_anon(struct vr_seg *s, char *a, size_t len, void *arg)
{
	int prot = *(int *)arg;
	vr__sys_mprotect(a, len, PROT_READ | PROT_WRITE);
	punch(s, a, len);
	vr__range_free(a, len);
	vr__range_take(a, len);
	vr__sys_mprotect(a, len, prot);
}

static void fixed_foreign(struct vr_seg *s, char *a, size_t len, void *arg)
{
	(void)arg;
	vr__sys_mprotect(a, len, PROT_READ | PROT_WRITE);
	punch(s, a, len);
	vr__range_free(a, len);
	vr__range_take(a, len); /* the kernel's from now on: never handed out again */
}

static void *do_mmap(void *ret, void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (pass(ret) || !len)
		return vr__sys_mmap(addr, len, prot, flags, fd, off);
	bool anon_private = (flags & MAP_ANONYMOUS) && (flags & MAP_TYPE) == MAP_PRIVATE;
	if (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) {
		if (((uintptr_t)addr & 4095) || !touches_segment(addr, len))
			return vr__sys_mmap(addr, len, prot, flags, fd, off);
		if (flags & MAP_FIXED_NOREPLACE) {
			errno = EEXIST;
			return MAP_FAILED;
		}
		len = (len + 4095) & ~(size_t)4095;
		if (anon_private && !(flags & (MAP_HUGETLB | MAP_GROWSDOWN | MAP_LOCKED)) && !(prot & PROT_EXEC)) {
			pieces(addr, len, fixed_anon, NULL, &prot);
			/* parts outside segments: the kernel's */
			return addr;
		}
		pieces(addr, len, fixed_foreign, NULL, NULL);
		return vr__sys_mmap(addr, len, prot, flags, fd, off);
	}
	/* PROT_NONE: a reservation (a JIT's, a runtime's heap), made usable
	 * piece by piece with mprotect, which is not followed: the kernel's. */
	if (!anon_private || len < vr__cfg.min_map || (prot & PROT_EXEC) || prot == PROT_NONE ||
	    (flags & (MAP_HUGETLB | MAP_GROWSDOWN | MAP_STACK | MAP_LOCKED | MAP_32BIT)))
		return vr__sys_mmap(addr, len, prot, flags, fd, off);
	void *p = take(len, prot);
	if (p)
		return p;
	fallback_note(len);
	return vr__sys_mmap(addr, len, prot, flags, fd, off);
}

static void *ret_mmap(void *p)
{
	if ((uintptr_t)p > (uintptr_t)-4096) {
		errno = -(int)(intptr_t)p;
		return MAP_FAILED;
	}
	return p;
}

__attribute__((visibility("default"))) void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	void *p = do_mmap(__builtin_return_address(0), addr, len, prot, flags, fd, off);
	return p == MAP_FAILED ? p : ret_mmap(p);
}

/* (the same call: off_t is 64 bits here) */
__attribute__((visibility("default"), alias("mmap"))) void *mmap64(void *addr, size_t len, int prot, int flags,
								  int fd, off_t off);

/* ---- munmap --------------------------------------------------------------------- */

static void unmap_piece(struct vr_seg *s, char *a, size_t len, void *arg)
{
	(void)arg;
	give_back(s, a, len);
}

static int unmap_outside(char *a, size_t len, void *arg)
{
	(void)arg;
	return vr__sys_munmap(a, len);
}

static int sysret(long r)
{
	if (r < 0 && r > -4096) {
		errno = (int)-r;
		return -1;
	}
	return (int)r;
}

__attribute__((visibility("default"))) int munmap(void *addr, size_t len)
{
	if (pass(__builtin_return_address(0)) || ((uintptr_t)addr & 4095) || !len || !touches_segment(addr, len))
		return sysret(vr__sys_munmap(addr, len));
	len = (len + 4095) & ~(size_t)4095;
	/* (a part outside the segments the kernel refuses: EINVAL, as for the whole) */
	if (pieces(addr, len, unmap_piece, unmap_outside, NULL))
		return sysret(-EINVAL);
	return 0;
}

/* ---- madvise ------------------------------------------------------------------- */

struct adv {
	int advice;
	int rc;
};

static void adv_piece(struct vr_seg *s, char *a, size_t len, void *arg)
{
	struct adv *ad = arg;
	uint64_t off = (uint64_t)(a - s->base), ps = pgsz();
	struct inside g;
	switch (ad->advice) {
	case MADV_DONTNEED:
	case MADV_FREE:
	case MADV_REMOVE:
	case MADV_DONTNEED_LOCKED:
		punch(s, a, len);
		break;
	case MADV_WILLNEED: {
		uint64_t lo = off & ~(ps - 1), hi = (off + len + ps - 1) & ~(ps - 1);
		enter(&g);
		vmo_object_prefetch(s->obj, lo, hi - lo, 0);
		leave(&g);
		break;
	}
	case MADV_PAGEOUT: {
		uint64_t lo = (off + ps - 1) & ~(ps - 1), hi = (off + len) & ~(ps - 1);
		if (hi > lo) {
			enter(&g);
			vmo_return_range(s->obj, lo, hi - lo, 0);
			leave(&g);
		}
		break;
	}
	case MADV_DOFORK:
	case MADV_DONTFORK:
	case MADV_WIPEONFORK:
	case MADV_KEEPONFORK:
	case MADV_COLD:
		break;
	case MADV_HUGEPAGE:
	case MADV_NOHUGEPAGE:
	case MADV_COLLAPSE:
		/* Ignored: vmo decides the folios of its objects (it fills
		 * in large ones where shmem allows, docs/design.md); and the
		 * advice splits the segment's VMA, which cuts read-ahead at
		 * the boundary (numpy advises it on arrays of 4 MiB and
		 * more; before 0.5 that made faults there come back for
		 * ever). */
		break;
	default:
		if (syscall(SYS_madvise, a, len, ad->advice))
			ad->rc = -errno;
	}
}

static int adv_outside(char *a, size_t len, void *arg)
{
	struct adv *ad = arg;
	long r = syscall(SYS_madvise, a, len, ad->advice);
	if (r)
		ad->rc = -errno;
	return 0;
}

__attribute__((visibility("default"))) int madvise(void *addr, size_t len, int advice)
{
	if (pass(__builtin_return_address(0)) || ((uintptr_t)addr & 4095) || !len || !touches_segment(addr, len))
		return (int)syscall(SYS_madvise, addr, len, advice);
	struct adv ad = { advice, 0 };
	pieces(addr, (len + 4095) & ~(size_t)4095, adv_piece, adv_outside, &ad);
	if (ad.rc) {
		errno = -ad.rc;
		return -1;
	}
	return 0;
}

__attribute__((visibility("default"))) int posix_madvise(void *addr, size_t len, int advice)
{
	/* POSIX_MADV_DONTNEED is advice only in glibc: nothing to do */
	if (advice == POSIX_MADV_DONTNEED)
		return 0;
	int saved = errno;
	int rc = madvise(addr, len, advice) ? errno : 0;
	errno = saved;
	return rc;
}

/* ---- mremap --------------------------------------------------------------------- */

__attribute__((visibility("default"))) void *mremap(void *old, size_t olen, size_t nlen, int flags, ...)
{
	void *naddr = NULL;
	if (flags & MREMAP_FIXED) {
		va_list ap;
		va_start(ap, flags);
		naddr = va_arg(ap, void *);
		va_end(ap);
	}
	struct vr_seg *s;
	if (pass(__builtin_return_address(0)) || ((uintptr_t)old & 4095) || !olen ||
	    !(s = vr__seg_span(old, (olen + 4095) & ~(size_t)4095))) {
		if (!pass(__builtin_return_address(0)) && olen && touches_segment(old, olen)) {
			errno = EFAULT; /* (straddles a segment's edge: not one mapping) */
			return MAP_FAILED;
		}
		return ret_mmap((void *)syscall(SYS_mremap, old, olen, nlen, flags, naddr));
	}
	if ((flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED)) || !nlen || ((flags & MREMAP_FIXED) && !(flags & MREMAP_MAYMOVE))) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	char *a = old;
	olen = (olen + 4095) & ~(size_t)4095;
	nlen = (nlen + 4095) & ~(size_t)4095;
	if (!(flags & MREMAP_FIXED)) {
		if (nlen <= olen) {
			if (nlen < olen)
				give_back(s, a + nlen, olen - nlen);
			return old;
		}
		if (vr__seg_span(a, nlen) == s && vr__range_take(a + olen, nlen - olen)) {
			vr__sys_mprotect(a + olen, nlen - olen, PROT_READ | PROT_WRITE);
			return old;
		}
		if (!(flags & MREMAP_MAYMOVE)) {
			errno = ENOMEM;
			return MAP_FAILED;
		}
	}
	/* moved: a new range (or the fixed address), the bytes copied */
	void *p;
	if (flags & MREMAP_FIXED)
		p = mmap(naddr, nlen, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	else
		p = take(nlen, PROT_READ | PROT_WRITE);
	if (!p || p == MAP_FAILED) {
		p = vr__sys_mmap(NULL, nlen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if ((uintptr_t)p > (uintptr_t)-4096) {
			errno = ENOMEM;
			return MAP_FAILED;
		}
		fallback_note(nlen);
	}
	memcpy(p, old, olen < nlen ? olen : nlen);
	give_back(s, a, olen);
	return p;
}

/* ---- fork ----------------------------------------------------------------------- */

__attribute__((visibility("default"))) pid_t fork(void)
{
	static pid_t (*real_fork)(void);
	if (!real_fork)
		real_fork = (pid_t(*)(void))dlsym(RTLD_NEXT, "fork");
	if (!atomic_load(&ready))
		return real_fork();
	struct inside g;
	enter(&g); /* libvmo's fork handlers run inside */
	pid_t pid = real_fork();
	if (pid == 0) {
		atomic_store(&ready, false); /* the engine is the parent's */
		vr__ranges_atfork_child();
	}
	leave(&g);
	return pid;
}

/* ---- stats: `vmo stats PID` reads them from an abstract unix socket ------------- */

static int stats_text(char *buf, size_t cap)
{
	struct vmo_stats st;
	vmo_engine_stats(vr__eng, &st);
	uint64_t used, size;
	vr__range_totals(&used, &size);
	struct vmo_compress_stats cs, sum = { 0 };
	unsigned n = atomic_load(&vr__nsegs);
	bool compressed = false;
	for (unsigned i = 0; i < n; i++)
		if (vmo_pager_compress_stats(vmo_object_ctx(vr__segs[i].obj), &cs) == 0) {
			compressed = true;
			sum.pages += cs.pages;
			sum.stored_bytes += cs.stored_bytes;
			sum.bytes_in += cs.bytes_in;
			sum.bytes_out += cs.bytes_out;
			sum.spilled += cs.spilled;
		}
	long rss_kb = 0, hwm_kb = 0;
	FILE *f = fopen("/proc/self/status", "r");
	if (f) {
		char line[256];
		while (fgets(line, sizeof line, f)) {
			sscanf(line, "VmRSS: %ld", &rss_kb);
			sscanf(line, "VmHWM: %ld", &hwm_kb);
		}
		fclose(f);
	}
	int k = snprintf(buf, cap,
			 "pid=%d\nbudget=%llu\nresident=%llu\ndirty=%llu\nfaults=%llu\nmissing_faults=%llu\nminor_faults=%llu\n"
			 "wp_faults=%llu\npages_read=%llu\n"
			 "writebacks=%llu\nevictions=%llu\nerrors=%llu\nsegments=%u\naddress_space=%llu\n"
			 "allocated=%llu\nheap=%d\nmaps_taken=%llu\nmaps_kernel=%llu\nrss=%llu\npeak_rss=%llu\n"
			 "store=%s\n",
			 (int)getpid(), (unsigned long long)vr__cfg.budget, (unsigned long long)st.resident,
			 (unsigned long long)st.dirty, (unsigned long long)st.faults,
			 (unsigned long long)st.missing_faults, (unsigned long long)st.minor_faults,
			 (unsigned long long)st.wp_faults, (unsigned long long)st.pages_read, (unsigned long long)st.writebacks,
			 (unsigned long long)st.evictions, (unsigned long long)st.errors, n,
			 (unsigned long long)size, (unsigned long long)used, vr__heap_on,
			 (unsigned long long)atomic_load(&n_taken), (unsigned long long)atomic_load(&n_fallback),
			 (unsigned long long)rss_kb << 10, (unsigned long long)hwm_kb << 10, vr__cfg.store);
	if (compressed && k > 0 && (size_t)k < cap)
		k += snprintf(buf + k, cap - (size_t)k,
			      "store_pages=%llu\nstore_bytes=%llu\nstore_spilled=%llu\ncompression_ratio=%.2f\n",
			      (unsigned long long)sum.pages, (unsigned long long)sum.stored_bytes,
			      (unsigned long long)sum.spilled,
			      sum.bytes_out ? (double)sum.bytes_in / (double)sum.bytes_out : 0.0);
	return k;
}

static void *stats_main(void *arg)
{
	(void)arg;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int n = snprintf(sa.sun_path + 1, sizeof sa.sun_path - 1, "vmo-run.%d", (int)getpid());
	if (bind(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) ||
	    listen(fd, 4)) {
		close(fd);
		return NULL;
	}
	char buf[4096];
	for (;;) {
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			break;
		}
		struct ucred cr;
		socklen_t cl = sizeof cr;
		if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0 && (cr.uid == getuid() || cr.uid == 0)) {
			int k = stats_text(buf, sizeof buf);
			if (k > 0) {
				ssize_t w = write(c, buf, (size_t)k < sizeof buf ? (size_t)k : sizeof buf - 1);
				(void)w;
			}
		}
		close(c);
	}
	close(fd);
	return NULL;
}

/* VMO_RUN_STATS=1: the counters on the program's stderr at exit, through
 * a copy of it taken at start (programs close their stderr before they
 * exit: coreutils do); VMO_RUN_STATS=PATH: appended to that file. */
static int stats_fd = -1;

static void stats_at_exit_setup(void)
{
	const char *s = getenv("VMO_RUN_STATS");
	if (!s || !*s || !strcmp(s, "0"))
		return;
	if (!strcmp(s, "1"))
		stats_fd = fcntl(2, F_DUPFD_CLOEXEC, 100);
	else if ((stats_fd = open(s, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0)
		vr__log("VMO_RUN_STATS=%s: %s", s, strerror(errno));
}

__attribute__((destructor)) static void vr_fini(void)
{
	if (stats_fd < 0 || !atomic_load(&ready))
		return;
	char buf[4096];
	struct inside g;
	enter(&g);
	int k = stats_text(buf, sizeof buf);
	leave(&g);
	if (k > 0) {
		ssize_t w = write(stats_fd, buf, (size_t)k < sizeof buf ? (size_t)k : sizeof buf - 1);
		(void)w;
	}
}
