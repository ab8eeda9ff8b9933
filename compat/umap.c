/* SPDX-License-Identifier: MIT */
/* umap.c - UMap's C API on vmo's public API (libvmo-umap; docs/umap.md).
 *
 * One engine for the process, made at the first umap() from UMap's
 * environment variables (read once):
 *   UMAP_PAGESIZE        the objects' page size (default: the system's)
 *   UMAP_BUFSIZE         pages the buffer holds (default: 90% of available
 *                        memory): the engine's budget, with
 *   UMAP_EVICT_HIGH_WATER_THRESHOLD / _LOW_  percentages of it (90 / 70):
 *                        eviction starts above the high mark, stops at the low
 *   UMAP_PAGE_FILLERS    the engine's fault workers (default: the CPUs, at
 *                        most 64)
 *   UMAP_PAGE_EVICTORS   reported only: vmo has one background evictor
 *   UMAP_READ_AHEAD      pages read ahead of a fault (default 0: vmo's own
 *                        sequential read-ahead then; set, the most per fault)
 *   UMAP_MAX_FAULT_EVENTS  reported only (default 256)
 *   UMAP_LOG_LEVEL       ERROR, WARNING, INFO or DEBUG: vmo's log on stderr
 * Each region is an object over the file's pager at the offset given, mapped
 * once; a table of regions (by address) serves uunmap, prefetch and pin. */
#include "umap/umap.h"
#include <vmo.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

struct region {
	struct region *next;
	char *addr;
	size_t len;
	struct vmo_object *obj;
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct vmo_engine *eng;
static int init_err; /* errno of making the engine, or 0 */
static struct region *regions;
static struct {
	uint64_t page_size, bufsize, fillers, evictors, read_ahead, max_fault_events;
	int high, low;
} cfg;

/* A number from the environment, as UMap reads it: decimal; unset, empty
 * or 0 gives the default. */
static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *e = getenv(name);
	while (e && (*e == ' ' || *e == '\t'))
		e++;
	if (!e || !*e)
		return dflt;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(e, &end, 10);
	if (errno || *end || e[0] < '0' || e[0] > '9') {
		fprintf(stderr, "vmo-umap: %s=\"%s\" is not a number: ignored (%llu)\n", name, e,
			(unsigned long long)dflt);
		return dflt;
	}
	return v ? v : dflt;
}

static uint64_t mem_available(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[128];
	unsigned long long kb = 0;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return (uint64_t)kb << 10;
}

static void log_stderr(void *arg, enum vmo_log_level level, const char *msg)
{
	(void)arg;
	static const char *name[] = { "error", "warn", "info", "debug" };
	fprintf(stderr, "vmo-umap %s: %s\n", (unsigned)level < 4 ? name[level] : "?", msg);
}

static void init(void)
{
	long sys = sysconf(_SC_PAGESIZE);
	uint64_t ncpu = (uint64_t)sysconf(_SC_NPROCESSORS_ONLN);
	cfg.page_size = env_u64("UMAP_PAGESIZE", (uint64_t)sys);
	if (cfg.page_size < (uint64_t)sys || cfg.page_size % (uint64_t)sys || (cfg.page_size & (cfg.page_size - 1)) ||
	    cfg.page_size > (2u << 20)) {
		fprintf(stderr, "vmo-umap: UMAP_PAGESIZE=%llu: a power of two multiple of %ld up to 2 MiB; using %ld\n",
			(unsigned long long)cfg.page_size, sys, sys);
		cfg.page_size = (uint64_t)sys;
	}
	uint64_t dbuf = mem_available() / 10 * 9 / cfg.page_size;
	cfg.bufsize = env_u64("UMAP_BUFSIZE", dbuf ? dbuf : 1);
	cfg.fillers = env_u64("UMAP_PAGE_FILLERS", ncpu ? ncpu : 1);
	if (!cfg.fillers || cfg.fillers > 64)
		cfg.fillers = cfg.fillers ? 64 : 1;
	cfg.evictors = env_u64("UMAP_PAGE_EVICTORS", ncpu ? ncpu : 1);
	cfg.read_ahead = env_u64("UMAP_READ_AHEAD", 0);
	cfg.max_fault_events = env_u64("UMAP_MAX_FAULT_EVENTS", 256);
	uint64_t hi = env_u64("UMAP_EVICT_HIGH_WATER_THRESHOLD", 90), lo = env_u64("UMAP_EVICT_LOW_WATER_THRESHOLD", 70);
	cfg.high = hi <= 100 ? (int)hi : 90;
	cfg.low = lo < (uint64_t)cfg.high ? (int)lo : cfg.high * 7 / 9;
	const char *ll = getenv("UMAP_LOG_LEVEL");
	const char *vl = getenv("VMO_LOG");
	if (ll && *ll && !(vl && *vl)) { /* (vmo's own VMO_LOG, when set, wins) */
		enum vmo_log_level l = !strcasecmp(ll, "DEBUG")     ? VMO_LOG_DEBUG
				       : !strcasecmp(ll, "INFO")    ? VMO_LOG_INFO
				       : !strcasecmp(ll, "WARNING") ? VMO_LOG_WARN
								    : VMO_LOG_ERROR;
		vmo_set_log(log_stderr, NULL, l);
	}
	/* (a buffer past what can be counted in bytes: no budget at all) */
	uint64_t buf_bytes = cfg.bufsize > UINT64_MAX / cfg.page_size ? 0 : cfg.bufsize * cfg.page_size;
	struct vmo_engine_opts eo = { .workers = (unsigned)cfg.fillers };
	if (buf_bytes) {
		eo.budget = buf_bytes / 100 * (uint64_t)cfg.high;
		if (eo.budget < cfg.page_size)
			eo.budget = cfg.page_size;
		eo.budget_low = buf_bytes / 100 * (uint64_t)cfg.low;
		if (eo.budget_low >= eo.budget)
			eo.budget_low = eo.budget - 1;
		if (!eo.budget_low)
			eo.budget_low = 1; /* (0 would be vmo's default, 7/8 of the budget) */
	}
	int rc = vmo_engine_create(&eo, &eng);
	if (rc) {
		fprintf(stderr, "vmo-umap: %s (%s)\n", vmo_strerror(rc), vmo_last_error_detail());
		init_err = -rc == VMO_ENOUFFD ? EPERM : -rc;
		eng = NULL;
	}
}

static int ready(void)
{
	pthread_once(&once, init);
	if (!eng) {
		errno = init_err ? init_err : ENOSYS;
		return -1;
	}
	return 0;
}

/* The region holding p (under mu). */
static struct region *find(const void *p)
{
	for (struct region *r = regions; r; r = r->next)
		if ((const char *)p >= r->addr && (const char *)p < r->addr + r->len)
			return r;
	return NULL;
}

/* The file pager, with writes clipped at the region's end in the file: the
 * last umap page may run past `length`, and a write-back of it must not
 * grow the file (mmap never does). */
struct clip {
	const struct vmo_pager_ops *ops;
	void *ctx;
	uint64_t limit; /* bytes of the region that are the file's */
};

static int c_read(void *c, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct clip *k = c;
	return k->ops->read(k->ctx, off, buf, len, flags);
}

static int c_write(void *c, uint64_t off, const void *buf, size_t len)
{
	struct clip *k = c;
	if (off >= k->limit)
		return 0;
	return k->ops->write(k->ctx, off, buf, k->limit - off < len ? (size_t)(k->limit - off) : len);
}

static int c_sync(void *c)
{
	struct clip *k = c;
	return k->ops->sync ? k->ops->sync(k->ctx) : 0;
}

static void c_release(void *c)
{
	struct clip *k = c;
	if (k->ops->release)
		k->ops->release(k->ctx);
	free(k);
}

static const struct vmo_pager_ops clip_ops = { .read = c_read, .write = c_write, .sync = c_sync, .release = c_release };

/* An address for len bytes aligned to the umap page size (UMap's regions
 * start on a umap page): reserve, align, let go; vmo_map places there. */
static void *aligned_spot(size_t len)
{
	size_t extra = cfg.page_size;
	char *r = mmap(NULL, len + extra, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r == MAP_FAILED)
		return NULL;
	char *a = (char *)(((uintptr_t)r + extra - 1) & ~(uintptr_t)(extra - 1));
	munmap(r, len + extra);
	return a;
}

void *umap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
{
	if (ready())
		return UMAP_FAILED;
	if (!length || length > SIZE_MAX - cfg.page_size || offset < 0 || (uint64_t)offset % cfg.page_size ||
	    (prot & ~(PROT_READ | PROT_WRITE)) || !(prot & PROT_READ) ||
	    (flags & ~(MAP_PRIVATE | MAP_SHARED | MAP_FIXED)) ||
	    ((flags & MAP_FIXED) && (!addr || (uintptr_t)addr % cfg.page_size))) {
		errno = EINVAL;
		return UMAP_FAILED;
	}
	int fl = fd < 0 ? -1 : fcntl(fd, F_GETFL);
	if (fl < 0 || (fl & O_ACCMODE) == O_WRONLY) {
		errno = EBADF; /* (as mmap: a descriptor that is not open for reading) */
		return UMAP_FAILED;
	}
	if ((prot & PROT_WRITE) && (fl & O_ACCMODE) == O_RDONLY) {
		errno = EACCES; /* (as mmap: writes could never reach the file) */
		return UMAP_FAILED;
	}
	if ((prot & PROT_WRITE) && !umap_has_write_support()) {
		errno = ENOTSUP;
		return UMAP_FAILED;
	}
	size_t len = (length + cfg.page_size - 1) / cfg.page_size * cfg.page_size;
	if (flags & MAP_FIXED) {
		/* As mmap's MAP_FIXED, what is mapped there goes; not a region of
		 * ours (its pages would be lost unwritten): EEXIST. */
		pthread_mutex_lock(&mu);
		bool overlap = false;
		for (struct region *q = regions; q; q = q->next)
			overlap |= (char *)addr < q->addr + q->len && q->addr < (char *)addr + len;
		pthread_mutex_unlock(&mu);
		if (overlap) {
			errno = EEXIST;
			return UMAP_FAILED;
		}
	}
	struct clip *k = calloc(1, sizeof *k);
	if (!k) {
		errno = ENOMEM;
		return UMAP_FAILED;
	}
	k->limit = length;
	int rc = vmo_pager_file(fd, (uint64_t)offset, &k->ops, &k->ctx);
	if (rc) {
		free(k);
		errno = -rc;
		return UMAP_FAILED;
	}
	struct vmo_object *obj = NULL;
	struct vmo_object_opts oo = { .size = len, .page_size = (uint32_t)cfg.page_size,
				      .readahead_max = (uint32_t)cfg.read_ahead };
	rc = vmo_object_create(eng, &clip_ops, k, &oo, &obj);
	if (rc) {
		c_release(k);
		errno = -rc;
		return UMAP_FAILED;
	}
	unsigned mf = VMO_PROT_READ | ((prot & PROT_WRITE) ? VMO_PROT_WRITE : 0) | VMO_MAP_FIXED;
	void *p = addr;
	rc = -EEXIST;
	for (int tries = 0; rc == -EEXIST && tries < 8; tries++) {
		if (!(flags & MAP_FIXED)) {
			p = cfg.page_size > (uint64_t)sysconf(_SC_PAGESIZE) ? aligned_spot(len) : NULL;
			if (!p)
				mf &= ~VMO_MAP_FIXED; /* (the system's page size: any address is aligned) */
		} else {
			munmap(addr, len); /* (just before: the object's own mappings are made by now) */
		}
		rc = vmo_map(obj, 0, len, mf, &p);
		if (flags & MAP_FIXED)
			break;
	}
	struct region *r = NULL;
	if (!rc && !(r = calloc(1, sizeof *r))) {
		vmo_unmap(obj, p, len);
		rc = -ENOMEM;
	}
	if (rc) {
		vmo_object_unref(obj);
		errno = -rc;
		return UMAP_FAILED;
	}
	r->addr = p;
	r->len = len;
	r->obj = obj;
	pthread_mutex_lock(&mu);
	r->next = regions;
	regions = r;
	pthread_mutex_unlock(&mu);
	return p;
}

/* length is not looked at, as in UMap (a region goes whole). */
int uunmap(void *addr, size_t length)
{
	(void)length;
	if (ready())
		return -1;
	pthread_mutex_lock(&mu);
	struct region **pr = &regions;
	while (*pr && (*pr)->addr != addr)
		pr = &(*pr)->next;
	struct region *r = *pr;
	if (!r) {
		pthread_mutex_unlock(&mu);
		errno = EINVAL;
		return -1;
	}
	/* Written back first, the region kept if that fails (the caller may
	 * retry; nothing written is thrown away). */
	int rc = vmo_sync(r->obj, VMO_WAIT);
	if (rc) {
		pthread_mutex_unlock(&mu);
		errno = -rc;
		return -1;
	}
	*pr = r->next;
	pthread_mutex_unlock(&mu);
	int urc = vmo_unmap(r->obj, r->addr, r->len);
	vmo_object_unref(r->obj);
	free(r);
	if (urc) {
		errno = -urc;
		return -1;
	}
	return 0;
}

int umap_flush(void)
{
	if (ready())
		return -1;
	int first = 0;
	pthread_mutex_lock(&mu);
	for (struct region *r = regions; r; r = r->next) {
		int rc = vmo_sync(r->obj, VMO_WAIT);
		if (rc && !first)
			first = rc;
	}
	pthread_mutex_unlock(&mu);
	if (first) {
		errno = -first;
		return -1;
	}
	return 0;
}

void umap_prefetch(int npages, struct umap_prefetch_item *page_array)
{
	if (ready() || npages <= 0 || !page_array)
		return;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < npages; i++) {
		struct region *r = find(page_array[i].page_base_addr);
		if (!r)
			continue;
		uint64_t off = (uint64_t)((char *)page_array[i].page_base_addr - r->addr) / cfg.page_size * cfg.page_size;
		int rc = vmo_object_prefetch(r->obj, off, cfg.page_size, 0);
		if (rc && rc != -EEXIST)
			fprintf(stderr, "vmo-umap: umap_prefetch of %p: %s\n", page_array[i].page_base_addr, vmo_strerror(rc));
	}
	pthread_mutex_unlock(&mu);
}

void umap_fetch_and_pin(char *paddr, uint64_t size)
{
	if (ready() || !paddr || !size)
		return;
	pthread_mutex_lock(&mu);
	struct region *r = find(paddr);
	if (r) {
		uint64_t rel = (uint64_t)(paddr - r->addr);
		uint64_t off = rel / cfg.page_size * cfg.page_size;
		uint64_t end = size > r->len - rel ? r->len : rel + size;
		end = (end + cfg.page_size - 1) / cfg.page_size * cfg.page_size;
		if (end > r->len)
			end = r->len;
		int rc = vmo_object_pin(r->obj, off, end - off);
		if (rc)
			fprintf(stderr, "vmo-umap: umap_fetch_and_pin of %p+%llu: %s (%s)\n", (void *)paddr,
				(unsigned long long)size, vmo_strerror(rc), vmo_last_error_detail());
	} else {
		fprintf(stderr, "vmo-umap: umap_fetch_and_pin: %p is not in a region\n", (void *)paddr);
	}
	pthread_mutex_unlock(&mu);
}

int umap_has_write_support(void)
{
	if (ready())
		return 0;
	unsigned need = VMO_FEAT_WP;
	return (vmo_engine_features(eng) & need) == need;
}

uint64_t umapcfg_get_umap_page_size(void)
{
	pthread_once(&once, init);
	return cfg.page_size;
}

uint64_t umapcfg_get_max_fault_events(void)
{
	pthread_once(&once, init);
	return cfg.max_fault_events;
}

uint64_t umapcfg_get_num_fillers(void)
{
	pthread_once(&once, init);
	return cfg.fillers;
}

uint64_t umapcfg_get_num_evictors(void)
{
	pthread_once(&once, init);
	return cfg.evictors;
}

uint64_t umapcfg_get_max_pages_in_buffer(void)
{
	pthread_once(&once, init);
	return cfg.bufsize;
}

uint64_t umapcfg_get_read_ahead(void)
{
	pthread_once(&once, init);
	return cfg.read_ahead;
}

int umapcfg_get_evict_low_water_threshold(void)
{
	pthread_once(&once, init);
	return cfg.low;
}

int umapcfg_get_evict_high_water_threshold(void)
{
	pthread_once(&once, init);
	return cfg.high;
}
