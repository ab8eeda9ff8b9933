/* test_torture: writers, a syncer and the evictor at once, and no write is
 * lost.  An object over a real file, 4x larger than its budget; WRITERS
 * threads write whole random pages (each owns the pages pg % WRITERS == id,
 * so the last value of every page is known), reading back some of their own
 * pages as they go; a syncer thread calls vmo_sync in a loop and samples the
 * resident size against the budget.  Afterwards: unmap, release, and a fresh
 * open of the file holds exactly the last value written to every page.
 * Run twice: with the synchronous first-write trap (the default), and with
 * asynchronous dirty tracking (VMO_ENGINE_DIRTY_ASYNC). */
#include "helper.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#define PS 4096u
#define NPAGES 8192u /* 32 MiB */
#define BUDGET (NPAGES * PS / 4)
#define WRITERS 3
#define SLACK (2u << 20) /* one reclaim batch (a chunk) */

static uint32_t ref[NPAGES];   /* last sequence written to each page (0: never) */
static void *base;
static _Atomic int stop;
static _Atomic uint64_t max_resident;
static struct vmo_object *obj;

static void fill_page(uint64_t *p, uint64_t pg, uint32_t seq)
{
	for (unsigned i = 0; i < PS / 8; i++)
		p[i] = (pg << 40) ^ ((uint64_t)seq << 12) ^ i;
}

static void check_page(const uint64_t *p, uint64_t pg, uint32_t seq, const char *when)
{
	for (unsigned i = 0; i < PS / 8; i++) {
		uint64_t want = seq ? (pg << 40) ^ ((uint64_t)seq << 12) ^ i : t_pattern(pg * PS + i * 8);
		if (p[i] != want) {
			fprintf(stderr, "%s: page %llu word %u: %#llx, expected %#llx (seq %u)\n", when,
				(unsigned long long)pg, i, (unsigned long long)p[i], (unsigned long long)want, seq);
			abort();
		}
	}
}

static void *writer(void *arg)
{
	uint64_t id = (uint64_t)(uintptr_t)arg;
	uint64_t rnd = 0x1234567 + id * 7919;
	uint32_t seq = 0;
	for (int n = 0; n < 20000; n++) {
		uint64_t pg = (t_rand(&rnd) % (NPAGES / WRITERS)) * WRITERS + id;
		if (pg >= NPAGES)
			continue;
		uint64_t *p = (uint64_t *)((char *)base + pg * PS);
		if (t_rand(&rnd) % 4 == 0) {
			check_page(p, pg, ref[pg], "during the run");
		} else {
			ref[pg] = ++seq + (uint32_t)(id << 24);
			fill_page(p, pg, ref[pg]);
		}
	}
	return NULL;
}

static void *syncer(void *arg)
{
	(void)arg;
	int syncs = 0;
	while (!stop) {
		CHECK_OK(vmo_sync(obj, VMO_WAIT));
		syncs++;
		struct vmo_stats st;
		CHECK_OK(vmo_object_stats(obj, &st));
		if (st.resident > max_resident)
			max_resident = st.resident;
		usleep(2000);
	}
	printf("syncs=%d\n", syncs);
	return NULL;
}

static void run(uint32_t engine_flags)
{
	memset(ref, 0, sizeof ref);
	stop = 0;
	max_resident = 0;
	const char *dir = getenv("TMPDIR");
	char path[4096];
	snprintf(path, sizeof path, "%s/vmo-torture-XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	{
		uint64_t *buf = malloc(PS);
		for (uint64_t pg = 0; pg < NPAGES; pg++) {
			for (unsigned i = 0; i < PS / 8; i++)
				buf[i] = t_pattern(pg * PS + i * 8);
			CHECK(pwrite(fd, buf, PS, (off_t)(pg * PS)) == PS);
		}
		free(buf);
	}
	struct vmo_engine_opts eo = { .workers = 2, .flags = engine_flags };
	struct vmo_engine *eng;
	CHECK_OK(vmo_engine_create(&eo, &eng));
	const struct vmo_pager_ops *ops;
	void *ctx;
	CHECK_OK(vmo_pager_file(fd, 0, &ops, &ctx));
	struct vmo_object_opts oo = { .budget = BUDGET };
	CHECK_OK(vmo_object_create(eng, ops, ctx, &oo, &obj));
	CHECK_EQ(vmo_object_size(obj), NPAGES * PS);
	CHECK_OK(vmo_map(obj, 0, NPAGES * PS, VMO_PROT_READ | VMO_PROT_WRITE, &base));

	pthread_t w[WRITERS], s;
	pthread_create(&s, NULL, syncer, NULL);
	for (uintptr_t i = 0; i < WRITERS; i++)
		pthread_create(&w[i], NULL, writer, (void *)i);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(w[i], NULL);
	stop = 1;
	pthread_join(s, NULL);

	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(obj, &st));
	printf("flags=%#x resident=%llu max_resident=%llu budget=%u evictions=%llu writebacks=%llu faults=%llu wp=%llu\n",
	       engine_flags, (unsigned long long)st.resident, (unsigned long long)max_resident, BUDGET,
	       (unsigned long long)st.evictions, (unsigned long long)st.writebacks, (unsigned long long)st.faults,
	       (unsigned long long)st.wp_faults);
	CHECK(st.evictions > 0);  /* the evictor really ran */
	CHECK(st.writebacks > 0);
	CHECK(max_resident <= BUDGET + SLACK);
	CHECK(st.resident <= BUDGET + SLACK);

	/* Every page, through the mapping, before the final sync. */
	for (uint64_t pg = 0; pg < NPAGES; pg++)
		check_page((uint64_t *)((char *)base + pg * PS), pg, ref[pg], "before close");
	CHECK_OK(vmo_sync(obj, VMO_WAIT));
	CHECK_OK(vmo_unmap(obj, base, NPAGES * PS));
	vmo_object_unref(obj);
	CHECK_OK(vmo_engine_destroy(eng));
	close(fd);

	/* A fresh open of the same file. */
	fd = open(path, O_RDONLY);
	CHECK(fd >= 0);
	uint64_t *buf = malloc(PS);
	for (uint64_t pg = 0; pg < NPAGES; pg++) {
		CHECK(pread(fd, buf, PS, (off_t)(pg * PS)) == PS);
		check_page(buf, pg, ref[pg], "after reopen");
	}
	free(buf);
	close(fd);
	unlink(path);
}

int main(void)
{
	t_require_uffd();
	run(0);
	struct vmo_engine *e;
	struct vmo_engine_opts eo = { .flags = VMO_ENGINE_DIRTY_ASYNC };
	int rc = vmo_engine_create(&eo, &e);
	if (rc == -EOPNOTSUPP) {
		printf("async dirty tracking not offered by this kernel: %s\n", vmo_last_error_detail());
	} else {
		CHECK_OK(rc);
		CHECK_OK(vmo_engine_destroy(e));
		run(VMO_ENGINE_DIRTY_ASYNC);
	}
	printf("ok\n");
	return 0;
}
