/* SPDX-License-Identifier: MIT */
/* test_transient: a failure of vmo's own resources is not the pager's error.
 * The process is driven to vm.max_map_count (no new mapping can be made),
 * then pages are touched and a dirty object is synced.  A fault must still
 * be served (the workers hold their buffers from the start), a failed sync
 * must leave the pages dirty, and nothing may be recorded as a page error:
 * once mappings are free again, every page reads right, vmo_get_error() is 0
 * and the next sync stores the data.  (Before the fix, the first fault of a
 * worker mapped its buffer there, failed, and marked the page failed with
 * ENOMEM for good: SIGBUS on every later touch.) */
#include "helper.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096u
#define NPG 256

struct store {
	uint64_t data[NPG * PG / 8];
	_Atomic unsigned writes;
};

static int st_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct store *s = ctx;
	(void)flags;
	memcpy(buf, (char *)s->data + off, len);
	return 0;
}

static int st_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct store *s = ctx;
	memcpy((char *)s->data + off, buf, len);
	s->writes++;
	return 0;
}

static const struct vmo_pager_ops ops = { .read = st_read, .write = st_write };

/* Map single pages, alternating protections so that none merge, until the
 * kernel refuses (vm.max_map_count).  Returns how many were made. */
static size_t exhaust(void **v, size_t cap)
{
	size_t n = 0;
	while (n < cap) {
		void *p = mmap(NULL, PG, (n & 1) ? PROT_READ : PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			break;
		v[n++] = p;
	}
	return n;
}

static void release(void **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		munmap(v[i], PG);
}

static void case_map_limit(void)
{
#if defined(__SANITIZE_ADDRESS__)
	/* ASan maps its own shadow and allocator memory on demand: at the map
	 * limit it aborts before vmo is reached. */
	t_skip_case("needs all of vm.max_map_count, which ASan's own mappings cannot do without");
#endif
	long maxmap = t_max_map_count();
	if (maxmap > 1000000)
		t_skip_case("vm.max_map_count is %ld: too many mappings to exhaust in a test", maxmap);

	alarm(120); /* a hang is a failure (SIGALRM), not a CI timeout */
	struct vmo_engine *eng = t_engine(2);
	struct store *s = calloc(1, sizeof *s);
	CHECK(s);
	for (size_t i = 0; i < NPG * PG / 8; i++)
		s->data[i] = t_pattern(i * 8);
	/* Read-ahead on: a sequential scan asks for clusters of up to 64 pages,
	 * more than any buffer a worker needed before the limit. */
	struct vmo_object_opts oo = { .size = NPG * PG };
	struct vmo_object *o;
	CHECK_OK(vmo_object_create(eng, &ops, s, &oo, &o));
	uint64_t *p;
	CHECK_OK(vmo_map(o, 0, NPG * PG, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&p));
	t_sig_install();
	/* Dirty a few pages now, to sync under the limit. */
	for (unsigned pg = 0; pg < 8; pg++)
		p[pg * PG / 8 + 1] = 0xD1D1D1D1u + pg;

	size_t cap = (size_t)maxmap + 16;
	void **v = calloc(cap, sizeof *v);
	CHECK(v);
	size_t n = exhaust(v, cap);
	/* Touch untouched pages at the limit: served, or at worst this one
	 * access fails; never a page marked failed. */
	int served = 0, failed = 0;
	for (unsigned pg = 16; pg < NPG; pg++) {
		uint64_t val = 0;
		int sig = t_probe_read(&p[pg * PG / 8 + 3], &val, NULL);
		if (sig == 0 && val == t_pattern((uint64_t)pg * PG + 24))
			served++;
		else if (sig == SIGBUS)
			failed++;
		else
			CHECK(!"wrong data or signal at the map limit");
	}
	/* A sync at the limit may fail for want of a buffer; the pages stay dirty. */
	int sync_rc = vmo_sync(o, VMO_WAIT);
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(o, &st));
	uint64_t dirty_at_limit = st.dirty;
	release(v, n);
	free(v);
	printf("at the limit (%zu extra mappings): %d pages served, %d faults failed; sync %s, %llu dirty bytes\n", n,
	       served, failed, sync_rc ? vmo_strerror(sync_rc) : "ok", (unsigned long long)dirty_at_limit);
	if (sync_rc)
		CHECK_EQ(dirty_at_limit, 8 * PG);

	/* Free again: nothing was recorded against the pages. */
	for (unsigned pg = 0; pg < NPG; pg++) {
		CHECK_EQ(vmo_get_error(o, (uint64_t)pg * PG), 0);
		uint64_t val = 0;
		CHECK_EQ(t_probe_read(&p[pg * PG / 8 + 3], &val, NULL), 0);
		CHECK_EQ(val, t_pattern((uint64_t)pg * PG + 24));
	}
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	for (unsigned pg = 0; pg < 8; pg++)
		CHECK_EQ(s->data[pg * PG / 8 + 1], 0xD1D1D1D1u + pg);
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK_EQ(st.dirty, 0);
	CHECK_EQ(st.errors, 0);
	CHECK_OK(vmo_unmap(o, p, NPG * PG));
	vmo_object_unref(o);
	CHECK_OK(vmo_engine_destroy(eng));
	free(s);
}

int main(int argc, char **argv)
{
	return t_main(argc, argv, T_CASES({ "map-limit", case_map_limit }));
}
