/* SPDX-License-Identifier: MIT */
/* test_badargs: bad arguments to every public function of vmo.h's core
 * sections (engines, pagers, objects, mappings, stats, errors) give -EINVAL
 * (or the documented errno) and change nothing: out pointers are not
 * written, no object or mapping appears or goes, no pager callback runs, the
 * address space is unchanged, and an existing mapping still works.  Also the
 * surface itself: vmo_version and the version macros, the VMO_E* codes, and
 * the sized stats calls with older (smaller) and newer (larger) structs. */
#include "helper.h"


#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096u
#define NPG 32
#define SIZE ((uint64_t)NPG * PG)

static _Atomic int calls, extent_calls, releases;
static int extent_rc;
static uint64_t extent_size;

static int p_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	(void)ctx;
	(void)flags;
	uint64_t *w = buf;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = t_pattern(off + i * 8);
	atomic_fetch_add(&calls, 1);
	return 0;
}

static int p_extent(void *ctx, uint64_t *size)
{
	(void)ctx;
	atomic_fetch_add(&extent_calls, 1);
	*size = extent_size;
	return extent_rc;
}

static void p_release(void *ctx)
{
	(void)ctx;
	atomic_fetch_add(&releases, 1);
}

static const struct vmo_pager_ops ops_ok = { .read = p_read, .report_extent = p_extent, .release = p_release };
static const struct vmo_pager_ops ops_noread = { .report_extent = p_extent, .release = p_release };
static const struct vmo_pager_ops ops_noextent = { .read = p_read, .release = p_release };

#define SENTINEL ((void *)0x5a5a5000)

/* Number of lines in /proc/self/maps: no mapping may appear or vanish. */
static int count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	CHECK(f);
	int n = 0, c;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

struct snap {
	struct vmo_stats st;
	struct vmo_stats est;
	int maps;
	int calls, releases;
};

static void take(struct snap *s, struct vmo_engine *eng, struct vmo_object *obj)
{
	CHECK_OK(vmo_object_stats(obj, &s->st));
	CHECK_OK(vmo_engine_stats(eng, &s->est));
	s->maps = count_maps();
	s->calls = atomic_load(&calls);
	s->releases = atomic_load(&releases);
}

/* Nothing changed since *s, and the mapping at view still reads right. */
static void unchanged(const struct snap *s, struct vmo_engine *eng, struct vmo_object *obj, volatile uint64_t *view,
		      int line)
{
	struct snap now;
	take(&now, eng, obj);
	if (now.st.mappings != s->st.mappings || now.st.resident != s->st.resident ||
	    now.st.faults != s->st.faults || now.st.pages_read != s->st.pages_read ||
	    now.st.errors != s->st.errors || now.est.mappings != s->est.mappings || now.maps != s->maps ||
	    now.calls != s->calls || now.releases != s->releases) {
		fprintf(stderr, "line %d: state changed: mappings %llu->%llu resident %llu->%llu faults %llu->%llu "
				"engine mappings %llu->%llu /proc maps %d->%d pager calls %d->%d releases %d->%d\n",
			line, (unsigned long long)s->st.mappings, (unsigned long long)now.st.mappings,
			(unsigned long long)s->st.resident, (unsigned long long)now.st.resident,
			(unsigned long long)s->st.faults, (unsigned long long)now.st.faults,
			(unsigned long long)s->est.mappings, (unsigned long long)now.est.mappings, s->maps, now.maps,
			s->calls, now.calls, s->releases, now.releases);
		abort();
	}
	/* the existing mapping still works (page 0 is already in memory) */
	CHECK_EQ(view[1], t_pattern(8));
	CHECK_EQ(view[(NPG - 1) * PG / 8 + 1], t_pattern((NPG - 1) * PG + 8));
}

#define UNCHANGED() unchanged(&s0, eng, obj, view, __LINE__)

static void engine_args(void)
{
	struct vmo_engine *e = SENTINEL;
	CHECK_EQ(vmo_engine_create(NULL, NULL), -EINVAL);
	struct vmo_engine_opts o = { 0 };
	CHECK_EQ(vmo_engine_create(&o, NULL), -EINVAL);
	o.flags = 1u << 7;
	CHECK_EQ(vmo_engine_create(&o, &e), -EINVAL);
	o.flags = 1u << 31;
	CHECK_EQ(vmo_engine_create(&o, &e), -EINVAL);
	o.flags = 0;
	o.workers = 100000; /* workers too many */
	CHECK_EQ(vmo_engine_create(&o, &e), -EINVAL);
	o.workers = ~0u;
	CHECK_EQ(vmo_engine_create(&o, &e), -EINVAL);
	o.workers = 0;
	for (size_t i = 0; i < sizeof o.reserved / sizeof o.reserved[0]; i++) {
		o.reserved[i] = 1;
		CHECK_EQ(vmo_engine_create(&o, &e), -EINVAL);
		o.reserved[i] = 0;
	}
	CHECK(e == SENTINEL);

	CHECK_EQ(vmo_engine_destroy(NULL), -EINVAL);
	CHECK_EQ(vmo_engine_start(NULL), -EINVAL);
	CHECK_EQ(vmo_engine_inhibit(NULL), -EINVAL);
	CHECK_EQ(vmo_engine_resume(NULL), -EINVAL);
	CHECK_EQ(vmo_engine_features(NULL), 0);
	struct vmo_stats st;
	CHECK_EQ(vmo_engine_stats(NULL, &st), -EINVAL);
}

static void pager_args(void)
{
	const struct vmo_pager_ops *ops = SENTINEL;
	void *ctx = SENTINEL;
	char buf[64];
	CHECK_EQ(vmo_pager_mem(NULL, 64, &ops, &ctx), -EINVAL);
	CHECK_EQ(vmo_pager_mem(buf, 0, &ops, &ctx), -EINVAL);
	CHECK_EQ(vmo_pager_mem(buf, 64, NULL, &ctx), -EINVAL);
	CHECK_EQ(vmo_pager_mem(buf, 64, &ops, NULL), -EINVAL);
	CHECK_EQ(vmo_pager_file(-1, 0, &ops, &ctx), -EINVAL);
	int fd = t_tmpfile(PG, false);
	CHECK_EQ(vmo_pager_file(fd, 0, NULL, &ctx), -EINVAL);
	CHECK_EQ(vmo_pager_file(fd, 0, &ops, NULL), -EINVAL);
	CHECK_EQ(vmo_pager_file(fd, UINT64_MAX - 10, &ops, &ctx), -EINVAL); /* base + off overflows off_t */
	close(fd);
	CHECK_EQ(vmo_pager_file(fd, 0, &ops, &ctx), -EBADF); /* closed */
	CHECK(ops == SENTINEL && ctx == SENTINEL);
	CHECK(vmo_pager_zero() != NULL && vmo_pager_zero()->read != NULL);
}

static void object_create_args(struct vmo_engine *eng)
{
	struct vmo_object *o = SENTINEL;
	struct vmo_object_opts oo = { .size = SIZE };
	int c0 = calls, r0 = releases;
	CHECK_EQ(vmo_object_create(NULL, &ops_ok, NULL, &oo, &o), -EINVAL);
	CHECK_EQ(vmo_object_create(eng, NULL, NULL, &oo, &o), -EINVAL);
	CHECK_EQ(vmo_object_create(eng, &ops_noread, NULL, &oo, &o), -EINVAL);
	CHECK_EQ(vmo_object_create(eng, &ops_ok, NULL, &oo, NULL), -EINVAL);
	/* unknown flags */
	oo.flags = 1u << 9;
	CHECK_EQ(vmo_object_create(eng, &ops_ok, NULL, &oo, &o), -EINVAL);
	oo.flags = 1u << 31;
	CHECK_EQ(vmo_object_create(eng, &ops_ok, NULL, &oo, &o), -EINVAL);
	oo.flags = 0;
	/* bad page sizes */
	static const uint32_t bad_ps[] = { 1, 512, 2048, 3000, 4095, 4097, 8192 + 1, 3 * 4096, 12288, 4u << 20,
					   8u << 20, 1u << 31, 0xffffffffu };
	for (size_t i = 0; i < sizeof bad_ps / sizeof bad_ps[0]; i++) {
		oo.page_size = bad_ps[i];
		oo.size = 4u << 20;
		int rc = vmo_object_create(eng, &ops_ok, NULL, &oo, &o);
		if (rc != -EINVAL) {
			fprintf(stderr, "page size %u: %d\n", bad_ps[i], rc);
			abort();
		}
	}
	oo.page_size = 0;
	oo.size = SIZE;
	/* a protection mask of unknown bits; names empty or too long; may_cache
	 * without a name; reserved fields */
	oo.prot = 1u << 5;
	CHECK_EQ(vmo_object_create(eng, &ops_ok, NULL, &oo, &o), -EINVAL);
	oo.prot = 0;
	oo.name = "";
	CHECK_EQ(vmo_object_create(eng, &ops_ok, NULL, &oo, &o), -EINVAL);
	oo.name = "0123456789012345678901234567890123456789012345678901234567890123"; /* 64 */
	CHECK_EQ(vmo_object_create(eng, &ops_ok, NULL, &oo, &o), -EINVAL);
	oo.name = NULL;
	oo.flags = VMO_OBJ_MAY_CACHE;
	CHECK_EQ(vmo_object_create(eng, &ops_ok, NULL, &oo, &o), -EINVAL);
	oo.flags = 0;
	for (size_t i = 0; i < sizeof oo.reserved / sizeof oo.reserved[0]; i++) {
		oo.reserved[i] = 1;
		CHECK_EQ(vmo_object_create(eng, &ops_ok, NULL, &oo, &o), -EINVAL);
		oo.reserved[i] = 0;
	}
	/* sizes: absurd; 0 without report_extent; report_extent saying 0 or failing */
	oo.size = UINT64_MAX;
	CHECK_EQ(vmo_object_create(eng, &ops_ok, NULL, &oo, &o), -EINVAL);
	oo.size = UINT64_MAX - PG + 2; /* rounds up past the top */
	CHECK_EQ(vmo_object_create(eng, &ops_ok, NULL, &oo, &o), -EINVAL);
	oo.size = 0;
	CHECK_EQ(vmo_object_create(eng, &ops_noextent, NULL, &oo, &o), -EINVAL);
	extent_size = 0;
	extent_rc = 0;
	CHECK_EQ(vmo_object_create(eng, &ops_ok, NULL, &oo, &o), -EINVAL);
	extent_size = UINT64_MAX;
	CHECK_EQ(vmo_object_create(eng, &ops_ok, NULL, &oo, &o), -EINVAL);
	extent_size = SIZE;
	extent_rc = -EIO; /* the pager's error comes back as is */
	CHECK_EQ(vmo_object_create(eng, &ops_ok, NULL, &oo, &o), -EIO);
	extent_rc = 0;
	CHECK(o == SENTINEL);
	/* a failed create calls no read and no release: the caller keeps ctx */
	CHECK_EQ(calls, c0);
	CHECK_EQ(releases, r0);
	/* and left no object behind: the engine's stats count none */
	struct vmo_stats st;
	CHECK_OK(vmo_engine_stats(eng, &st));
	CHECK_EQ(st.mappings, 0);
	CHECK_EQ(st.resident, 0);
}

static void object_args(struct vmo_engine *eng, struct vmo_object *obj, volatile uint64_t *view)
{
	struct snap s0;
	take(&s0, eng, obj);
	vmo_object_ref(NULL);   /* no crash */
	vmo_object_unref(NULL); /* no crash */
	CHECK_EQ(vmo_object_shutdown(NULL), -EINVAL);
	CHECK_EQ(vmo_object_size(NULL), 0);
	CHECK_EQ(vmo_object_page_size(NULL), 0);
	CHECK(vmo_object_ctx(NULL) == NULL);
	CHECK_EQ(vmo_object_size(obj), SIZE);
	CHECK_EQ(vmo_object_page_size(obj), PG);
	CHECK(vmo_object_ctx(obj) == NULL);

	struct vmo_stats st;
	CHECK_EQ(vmo_object_stats(NULL, &st), -EINVAL);
	CHECK_EQ(vmo_object_stats(obj, NULL), -EINVAL);
	CHECK_EQ(vmo_engine_stats(eng, NULL), -EINVAL);

	CHECK_EQ(vmo_get_error(NULL, 0), -EINVAL);
	CHECK_EQ(vmo_get_error(obj, SIZE), -EINVAL);
	CHECK_EQ(vmo_get_error(obj, UINT64_MAX), -EINVAL);
	CHECK_EQ(vmo_get_error(obj, SIZE - 1), 0);
	CHECK_EQ(vmo_clear_error(NULL, 0), -EINVAL);
	CHECK_EQ(vmo_clear_error(obj, SIZE), -EINVAL);
	CHECK_EQ(vmo_clear_error(obj, UINT64_MAX), -EINVAL);
	UNCHANGED();
}

static void map_args(struct vmo_engine *eng, struct vmo_object *obj, struct vmo_object *obj64k,
		     volatile uint64_t *view)
{
	struct snap s0;
	take(&s0, eng, obj);
	void *p = SENTINEL;
	const unsigned RW = VMO_PROT_READ | VMO_PROT_WRITE;
	CHECK_EQ(vmo_map(NULL, 0, PG, RW, &p), -EINVAL);
	CHECK_EQ(vmo_map(obj, 0, PG, RW, NULL), -EINVAL);
	CHECK_EQ(vmo_map(obj, 0, 0, RW, &p), -EINVAL);            /* zero length */
	CHECK_EQ(vmo_map(obj, 1, PG, RW, &p), -EINVAL);           /* unaligned offset */
	CHECK_EQ(vmo_map(obj, PG - 1, PG, RW, &p), -EINVAL);
	CHECK_EQ(vmo_map(obj, 0, PG + 1, RW, &p), -EINVAL);       /* unaligned length */
	CHECK_EQ(vmo_map(obj, 0, 100, RW, &p), -EINVAL);
	CHECK_EQ(vmo_map(obj, SIZE, PG, RW, &p), -EINVAL);        /* beyond the object */
	CHECK_EQ(vmo_map(obj, 0, SIZE + PG, RW, &p), -EINVAL);
	CHECK_EQ(vmo_map(obj, SIZE - PG, 2 * PG, RW, &p), -EINVAL);
	CHECK_EQ(vmo_map(obj, UINT64_MAX - PG + 1, 2 * PG, RW, &p), -EINVAL); /* off + len wraps */
	CHECK_EQ(vmo_map(obj, PG, (size_t)0 - PG, RW, &p), -EINVAL);           /* off + len wraps */
	CHECK_EQ(vmo_map(obj, 0, (size_t)0 - PG, RW, &p), -EINVAL);
	CHECK_EQ(vmo_map(obj, 0, PG, 0, &p), -EINVAL);            /* no access at all */
	CHECK_EQ(vmo_map(obj, 0, PG, VMO_MAP_FIXED, &p), -EINVAL);
	CHECK_EQ(vmo_map(obj, 0, PG, RW | (1u << 2), &p), -EINVAL); /* unknown flags */
	CHECK_EQ(vmo_map(obj, 0, PG, RW | (1u << 7), &p), -EINVAL);
	CHECK_EQ(vmo_map(obj, 0, PG, RW | (1u << 31), &p), -EINVAL);
	CHECK(p == SENTINEL);
	void *q = NULL; /* FIXED at NULL, at an unaligned address */
	CHECK_EQ(vmo_map(obj, 0, PG, RW | VMO_MAP_FIXED, &q), -EINVAL);
	q = (void *)((uintptr_t)view + 100);
	CHECK_EQ(vmo_map(obj, 0, PG, RW | VMO_MAP_FIXED, &q), -EINVAL);
	CHECK(q == (void *)((uintptr_t)view + 100));
	/* an object with 64 KiB pages: 4 KiB-aligned but not page-aligned */
	CHECK_EQ(vmo_map(obj64k, PG, 64 * 1024, RW, &p), -EINVAL);
	CHECK_EQ(vmo_map(obj64k, 0, PG, RW, &p), -EINVAL);
	CHECK_EQ(vmo_map(obj64k, 0, 64 * 1024 + PG, RW, &p), -EINVAL);
	CHECK(p == SENTINEL);
	UNCHANGED();

	/* vmo_unmap with anything but a whole mapping made by vmo_map */
	CHECK_EQ(vmo_unmap(NULL, (void *)view, SIZE), -EINVAL);
	CHECK_EQ(vmo_unmap(obj, NULL, SIZE), -EINVAL);
	CHECK_EQ(vmo_unmap(obj, (void *)view, 0), -EINVAL);
	CHECK_EQ(vmo_unmap(obj, (void *)view, SIZE - PG), -EINVAL);      /* wrong length */
	CHECK_EQ(vmo_unmap(obj, (void *)view, SIZE + PG), -EINVAL);
	CHECK_EQ(vmo_unmap(obj, (void *)view, PG), -EINVAL);
	CHECK_EQ(vmo_unmap(obj, (void *)((uintptr_t)view + PG), SIZE - PG), -EINVAL); /* wrong address */
	CHECK_EQ(vmo_unmap(obj, (void *)((uintptr_t)view + 1), SIZE), -EINVAL);
	CHECK_EQ(vmo_unmap(obj, (void *)((uintptr_t)view - PG), SIZE), -EINVAL);
	CHECK_EQ(vmo_unmap(obj64k, (void *)view, SIZE), -EINVAL); /* another object's mapping */
	CHECK_EQ(vmo_unmap(obj, (void *)&s0, SIZE), -EINVAL);     /* not a mapping at all */
	UNCHANGED();
}

static void engine_state_args(struct vmo_engine *eng, struct vmo_object *obj, volatile uint64_t *view)
{
	struct snap s0;
	take(&s0, eng, obj);
	/* resume without inhibit; inhibit/resume nest and balance */
	CHECK_EQ(vmo_engine_resume(eng), -EINVAL);
	CHECK_OK(vmo_engine_inhibit(eng));
	CHECK_OK(vmo_engine_resume(eng));
	CHECK_EQ(vmo_engine_resume(eng), -EINVAL);
	/* already running */
	CHECK_EQ(vmo_engine_start(eng), -EALREADY);
	/* destroy with an object alive: -EBUSY and nothing changed */
	CHECK_EQ(vmo_engine_destroy(eng), -EBUSY);
	UNCHANGED();
	/* the engine still serves new faults after all that */
	CHECK_EQ(view[5 * PG / 8 + 2], t_pattern(5 * PG + 16));
}

static void case_strerror(void)
{
	CHECK(vmo_strerror(-EINVAL) != NULL && vmo_strerror(0) != NULL && vmo_strerror(123456) != NULL);
	CHECK(vmo_strerror(-VMO_ESHUTDOWN) != NULL && vmo_last_error_detail() != NULL);
	/* vmo's codes lie past every errno (MAX_ERRNO, 4095), with texts of their own */
	CHECK(VMO_EBASE == 4096 && VMO_ENOUFFD >= VMO_EBASE && VMO_ESHUTDOWN >= VMO_EBASE);
	CHECK(!strcmp(vmo_strerror(VMO_ESHUTDOWN), vmo_strerror(-VMO_ESHUTDOWN)));
	CHECK(strcmp(vmo_strerror(-VMO_ESHUTDOWN), strerror(VMO_ESHUTDOWN)) != 0);
	CHECK(strcmp(vmo_strerror(-VMO_ENOUFFD), strerror(VMO_ENOUFFD)) != 0);
	CHECK(!strcmp(vmo_strerror(-EINVAL), strerror(EINVAL)));
	/* names: errno's, vmo's, either sign; never NULL */
	CHECK(!strcmp(vmo_err_name(-EIO), "EIO") && !strcmp(vmo_err_name(ENOSPC), "ENOSPC"));
	CHECK(!strcmp(vmo_err_name(-VMO_ENOUFFD), "VMO_ENOUFFD") && !strcmp(vmo_err_name(VMO_ESHUTDOWN), "VMO_ESHUTDOWN"));
	CHECK(!strcmp(vmo_err_name(0), "0") && !strcmp(vmo_err_name(123456), "unknown"));
	CHECK(!strcmp(vmo_err_name(-2147483647 - 1), "unknown"));
}

/* The version: one string at run time, the same as the macros at compile time. */
static void case_version(void)
{
	char want[64];
	snprintf(want, sizeof want, "%d.%d.%d", VMO_VERSION_MAJOR, VMO_VERSION_MINOR, VMO_VERSION_PATCH);
	CHECK(!strcmp(VMO_VERSION_STRING, want));
	CHECK(vmo_version() != NULL && !strcmp(vmo_version(), VMO_VERSION_STRING));
	CHECK_EQ(VMO_VERSION, (VMO_VERSION_MAJOR << 16) | (VMO_VERSION_MINOR << 8) | VMO_VERSION_PATCH);
#if VMO_VERSION < VMO_VERSION_NUMBER(0, 1, 0)
#error "VMO_VERSION must be usable in #if"
#endif
}

/* The stats structs grow at their end: a smaller (older) caller gets what it
 * knows and nothing past it is written; a larger (newer) one gets the
 * library's fields and zeros after them; less than the header is -EINVAL. */
struct stats_old { /* a caller that knew only resident */
	uint32_t size, version;
	uint64_t resident;
	uint64_t canary;
};
struct stats_new { /* a caller with fields this library lacks */
	struct vmo_stats st;
	uint64_t future[3];
};

static void check_sized(int (*fn)(void *, struct vmo_stats *, size_t), void *h)
{
	struct vmo_stats st;
	memset(&st, 0xa5, sizeof st);
	CHECK_EQ(fn(h, &st, 0), -EINVAL);
	CHECK_EQ(fn(h, &st, 7), -EINVAL);
	CHECK_EQ(st.size, 0xa5a5a5a5u); /* untouched */
	CHECK_OK(fn(h, &st, 8)); /* the header alone */
	CHECK_EQ(st.size, 8);
	CHECK_EQ(st.version, VMO_STATS_VERSION);
	CHECK_EQ(st.resident, 0xa5a5a5a5a5a5a5a5ull);

	struct vmo_stats full;
	CHECK_OK(fn(h, &full, sizeof full));
	CHECK_EQ(full.size, sizeof full);
	CHECK_EQ(full.version, VMO_STATS_VERSION);

	struct stats_old old = { .canary = 0x5a5a5a5a5a5a5a5aull };
	CHECK_OK(fn(h, (struct vmo_stats *)&old, offsetof(struct stats_old, canary)));
	CHECK_EQ(old.size, offsetof(struct stats_old, canary));
	CHECK_EQ(old.version, VMO_STATS_VERSION);
	CHECK_EQ(old.resident, full.resident);
	CHECK_EQ(old.canary, 0x5a5a5a5a5a5a5a5aull);

	struct stats_new nw;
	memset(&nw, 0xa5, sizeof nw);
	CHECK_OK(fn(h, &nw.st, sizeof nw));
	CHECK_EQ(nw.st.size, sizeof(struct vmo_stats));
	CHECK_EQ(nw.st.version, VMO_STATS_VERSION);
	CHECK_EQ(nw.st.resident, full.resident);
	CHECK_EQ(nw.st.mappings, full.mappings);
	for (size_t i = 0; i < 3; i++)
		CHECK_EQ(nw.future[i], 0);
}

static int object_stats_fn(void *h, struct vmo_stats *st, size_t size) { return vmo_object_stats_sized(h, st, size); }
static int engine_stats_fn(void *h, struct vmo_stats *st, size_t size) { return vmo_engine_stats_sized(h, st, size); }

static void case_stats_sized(void)
{
	struct vmo_engine *eng = t_shared_engine(2);
	struct vmo_object_opts oo = { .size = SIZE };
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, vmo_pager_zero(), NULL, &oo, &obj));
	void *v = NULL;
	CHECK_OK(vmo_map(obj, 0, SIZE, VMO_PROT_READ, &v));
	CHECK_EQ(((volatile uint64_t *)v)[0], 0); /* one page in memory: resident is not 0 */
	check_sized(object_stats_fn, obj);
	check_sized(engine_stats_fn, eng);
	CHECK_EQ(vmo_object_stats_sized(NULL, &(struct vmo_stats){ 0 }, sizeof(struct vmo_stats)), -EINVAL);
	CHECK_EQ(vmo_engine_stats_sized(eng, NULL, sizeof(struct vmo_stats)), -EINVAL);
	/* the macros pass the size of the caller's struct */
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(obj, &st));
	CHECK_EQ(st.size, sizeof st);
	CHECK(st.resident >= PG);
	CHECK_OK(vmo_engine_stats(eng, &st));
	CHECK_EQ(st.size, sizeof st);
	CHECK_OK(vmo_unmap(obj, v, SIZE));
	vmo_object_unref(obj);
}

static void case_object_create_args(void) { object_create_args(t_shared_engine(2)); }

/* An object with a view (two pages in memory): bad calls on it, its views
 * and its engine change nothing. */
static void case_live_object_args(void)
{
	struct vmo_engine *eng = t_shared_engine(2);
	struct vmo_object_opts oo = { .flags = VMO_OBJ_NO_READAHEAD, .size = SIZE };
	struct vmo_object *obj, *obj64k;
	CHECK_OK(vmo_object_create(eng, &ops_ok, NULL, &oo, &obj));
	struct vmo_object_opts o64 = { .page_size = 64 * 1024, .size = 1 << 20 };
	CHECK_OK(vmo_object_create(eng, &ops_ok, NULL, &o64, &obj64k));
	void *v = NULL;
	CHECK_OK(vmo_map(obj, 0, SIZE, VMO_PROT_READ | VMO_PROT_WRITE, &v));
	volatile uint64_t *view = v;
	CHECK_EQ(view[1], t_pattern(8));
	CHECK_EQ(view[(NPG - 1) * PG / 8 + 1], t_pattern((NPG - 1) * PG + 8));
	/* the worker counts a page just after the copy woke the faulting thread */
	struct vmo_stats st;
	uint64_t t0 = t_now_ns();
	do {
		CHECK_OK(vmo_object_stats(obj, &st));
	} while (st.resident != 2 * PG && t_now_ns() - t0 < 2000000000ull);
	CHECK_EQ(st.resident, 2 * PG);

	object_args(eng, obj, view);
	map_args(eng, obj, obj64k, view);
	engine_state_args(eng, obj, view);

	/* a correct unmap works after all the wrong ones; then the same again is wrong */
	CHECK_OK(vmo_unmap(obj, v, SIZE));
	CHECK_EQ(vmo_unmap(obj, v, SIZE), -EINVAL);
	int r0 = releases;
	vmo_object_unref(obj);
	vmo_object_unref(obj64k);
	CHECK_EQ(releases, r0 + 2);
}

/* vmo_stats_print: every counter on its line, after the indent; errors. */
static void case_stats_print(void)
{
	struct vmo_stats st;
	memset(&st, 0, sizeof st);
	st.resident = 3u << 20;
	st.faults = 12;
	st.missing_faults = 7;
	st.large_fill = 512;
	int pfd[2];
	CHECK_OK(pipe(pfd));
	CHECK_OK(vmo_stats_print(&st, pfd[1], ">> "));
	close(pfd[1]);
	char buf[2048] = "";
	ssize_t n = read(pfd[0], buf, sizeof buf - 1);
	close(pfd[0]);
	CHECK(n > 0);
	CHECK(strstr(buf, ">> resident        3 MiB\n") != NULL);
	CHECK(strstr(buf, ">> faults          12 (missing 7, minor 0, wp 0)\n") != NULL);
	CHECK(strstr(buf, "filled in large folios 512)") != NULL);
	CHECK(strstr(buf, ">> budget          none\n") != NULL);
	CHECK_EQ(vmo_stats_print(NULL, 1, NULL), -EINVAL);
	CHECK_EQ(vmo_stats_print(&st, -1, NULL), -EBADF);
}

int main(int argc, char **argv)
{
	alarm(60);
	setvbuf(stdout, NULL, _IONBF, 0);
	/* One malloc arena: a background thread of vmo (the pressure watcher's
	 * first fopen, a worker's first malloc) would otherwise map an arena of
	 * its own whenever it first allocates, and the count of mappings, which
	 * no bad call may change, would move for that.  Seen on a slow VM. */
	mallopt(M_ARENA_MAX, 1);
	return t_main(argc, argv,
		      T_CASES({ "engine-args", engine_args }, { "pager-args", pager_args }, { "strerror", case_strerror },
			      { "version", case_version }, { "stats-sized", case_stats_sized },
			      { "stats-print", case_stats_print },
			      { "object-create-args", case_object_create_args },
			      { "live-object-args", case_live_object_args }));
}
