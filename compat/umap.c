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
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *e = getenv(name);
	if (!e || !*e)
		return dflt;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(e, &end, 0);
	if (errno || *end || e[0] == '-') {
		fprintf(stderr, "vmo-umap: %s=\"%s\" is not a number: ignored (%llu)\n", name, e,
			(unsigned long long)dflt);
		return dflt;
	}
	return v;
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
	cfg.bufsize = env_u64("UMAP_BUFSIZE", mem_available() / 10 * 9 / cfg.page_size);
	if (!cfg.bufsize)
		cfg.bufsize = 1;
	cfg.fillers = env_u64("UMAP_PAGE_FILLERS", ncpu ? ncpu : 1);
	if (!cfg.fillers || cfg.fillers > 64)
		cfg.fillers = cfg.fillers ? 64 : 1;
	cfg.evictors = env_u64("UMAP_PAGE_EVICTORS", ncpu ? ncpu : 1);
	cfg.read_ahead = env_u64("UMAP_READ_AHEAD", 0);
	cfg.max_fault_events = env_u64("UMAP_MAX_FAULT_EVENTS", 256);
	cfg.high = (int)env_u64("UMAP_EVICT_HIGH_WATER_THRESHOLD", 90);
	cfg.low = (int)env_u64("UMAP_EVICT_LOW_WATER_THRESHOLD", 70);
	if (cfg.high < 1 || cfg.high > 100)
		cfg.high = 90;
	if (cfg.low < 0 || cfg.low >= cfg.high)
		cfg.low = cfg.high * 7 / 9;
	const char *ll = getenv("UMAP_LOG_LEVEL");
	if (ll && *ll) {
		enum vmo_log_level l = !strcasecmp(ll, "DEBUG")     ? VMO_LOG_DEBUG
				       : !strcasecmp(ll, "INFO")    ? VMO_LOG_INFO
				       : !strcasecmp(ll, "WARNING") ? VMO_LOG_WARN
								    : VMO_LOG_ERROR;
		/* (vmo's own VMO_LOG, when set, wins) */
		setenv("VMO_LOG", l == VMO_LOG_DEBUG ? "debug" : l == VMO_LOG_INFO ? "info" : l == VMO_LOG_WARN ? "warn" : "error", 0);
		vmo_set_log(NULL, NULL, l); /* (the environment read again) */
	}
	uint64_t buf_bytes = cfg.bufsize * cfg.page_size;
	struct vmo_engine_opts eo = {
		.workers = (unsigned)cfg.fillers,
		.budget = buf_bytes / 100 * (uint64_t)cfg.high,
		.budget_low = buf_bytes / 100 * (uint64_t)cfg.low,
	};
	if (!eo.budget)
		eo.budget = cfg.page_size;
	if (eo.budget_low >= eo.budget)
		eo.budget_low = 0;
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

void *umap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
{
	if (ready())
		return UMAP_FAILED;
	if (!length || fd < 0 || offset < 0 || (uint64_t)offset % cfg.page_size || (prot & ~(PROT_READ | PROT_WRITE)) ||
	    !(prot & PROT_READ) || (flags & ~(MAP_PRIVATE | MAP_SHARED | MAP_FIXED)) ||
	    ((flags & MAP_FIXED) && (!addr || (uintptr_t)addr % cfg.page_size))) {
		errno = EINVAL;
		return UMAP_FAILED;
	}
	if ((prot & PROT_WRITE) && !umap_has_write_support()) {
		errno = ENOTSUP;
		return UMAP_FAILED;
	}
	size_t len = (length + cfg.page_size - 1) / cfg.page_size * cfg.page_size;
	const struct vmo_pager_ops *ops;
	void *ctx;
	int rc = vmo_pager_file(fd, (uint64_t)offset, &ops, &ctx);
	struct vmo_object *obj = NULL;
	struct vmo_object_opts oo = { .size = len, .page_size = (uint32_t)cfg.page_size,
				      .readahead_max = (uint32_t)cfg.read_ahead };
	if (cfg.read_ahead == 0)
		oo.readahead_max = 0; /* (vmo's default) */
	if (!rc) {
		rc = vmo_object_create(eng, ops, ctx, &oo, &obj);
		if (rc && ops->release)
			ops->release(ctx);
	}
	void *p = addr;
	bool mapped = false;
	if (!rc) {
		unsigned mf = VMO_PROT_READ | ((prot & PROT_WRITE) ? VMO_PROT_WRITE : 0) | ((flags & MAP_FIXED) ? VMO_MAP_FIXED : 0);
		rc = vmo_map(obj, 0, len, mf, &p);
		mapped = rc == 0;
	}
	struct region *r = NULL;
	if (!rc && !(r = calloc(1, sizeof *r)))
		rc = -ENOMEM;
	if (rc) {
		if (mapped)
			vmo_unmap(obj, p, len);
		if (obj)
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

int uunmap(void *addr, size_t length)
{
	if (ready())
		return -1;
	pthread_mutex_lock(&mu);
	struct region **pr = &regions;
	while (*pr && (*pr)->addr != addr)
		pr = &(*pr)->next;
	struct region *r = *pr;
	size_t len = (length + cfg.page_size - 1) / cfg.page_size * cfg.page_size;
	if (!r || (length && len != r->len)) {
		pthread_mutex_unlock(&mu);
		errno = EINVAL;
		return -1;
	}
	*pr = r->next;
	pthread_mutex_unlock(&mu);
	int rc = vmo_sync(r->obj, VMO_WAIT);
	int urc = vmo_unmap(r->obj, r->addr, r->len);
	vmo_object_unref(r->obj); /* (written back again, if need be, and released) */
	free(r);
	if (rc || urc) {
		errno = -(rc ? rc : urc);
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
		uint64_t off = (uint64_t)(paddr - r->addr) / cfg.page_size * cfg.page_size;
		uint64_t end = (uint64_t)(paddr - r->addr) + size;
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
