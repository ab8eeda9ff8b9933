/* SPDX-License-Identifier: MIT */
/* test_budget: resident memory stays under the budget.  Random reads from 2
 * threads over an object 4x its budget; the object's stats, the memfd's
 * allocated blocks and /proc/self/smaps_rollup (Pss_Shmem) are sampled and
 * never pass the budget plus one reclaim batch.  Then an engine budget over
 * two objects, a budget change at run time, and notify_evict. */
#include "helper.h"

#include <dirent.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#define PS 4096u
#define NPAGES 16384u /* 64 MiB */
#define SLACK (2u << 20)

static void *base;
static _Atomic int stop;
static _Atomic uint64_t evicted;

static int pat_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	for (size_t i = 0; i < len / 8; i++)
		((uint64_t *)buf)[i] = t_pattern(off + i * 8);
	return 0;
}
static void pat_evict(void *ctx, uint64_t off, size_t len) { evicted += len; }
static const struct vmo_pager_ops pat_ops = { .read = pat_read, .notify_evict = pat_evict };

/* Bytes allocated by this process's vmo memfds. */
static uint64_t memfd_bytes(void)
{
	uint64_t sum = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	while ((e = readdir(d))) {
		char p[300], target[300];
		snprintf(p, sizeof p, "/proc/self/fd/%s", e->d_name);
		ssize_t n = readlink(p, target, sizeof target - 1);
		if (n <= 0)
			continue;
		target[n] = 0;
		if (strstr(target, "memfd:vmo")) {
			struct stat st;
			if (stat(p, &st) == 0)
				sum += (uint64_t)st.st_blocks * 512;
		}
	}
	closedir(d);
	return sum;
}

static long rss_shmem_kb(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "re");
	char line[256];
	long kb = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "Pss_Shmem: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

static void *reader(void *arg)
{
	uint64_t r = 77 + (uintptr_t)arg;
	while (!stop) {
		uint64_t pg = t_rand(&r) % NPAGES;
		uint64_t w = *(volatile uint64_t *)((char *)base + pg * PS + 8);
		if (w != t_pattern(pg * PS + 8)) {
			fprintf(stderr, "page %llu: bad data\n", (unsigned long long)pg);
			abort();
		}
	}
	return NULL;
}

/* An object 4x its budget, random reads from 2 threads; then a lower budget
 * at run time. */
static void case_object(void)
{
	struct vmo_engine *eng = t_engine(2);
	const uint64_t budget = NPAGES * PS / 4;
	struct vmo_object_opts oo = { .size = NPAGES * PS, .budget = budget };
	struct vmo_object *o;
	CHECK_OK(vmo_object_create(eng, &pat_ops, NULL, &oo, &o));
	CHECK_OK(vmo_map(o, 0, NPAGES * PS, VMO_PROT_READ, &base));
	pthread_t th[2];
	for (uintptr_t i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, reader, (void *)i);
	uint64_t max_st = 0, max_fd = 0;
	long max_rss = 0;
	for (int i = 0; i < 300; i++) {
		struct vmo_stats st;
		CHECK_OK(vmo_object_stats(o, &st));
		uint64_t fdb = memfd_bytes();
		long rss = rss_shmem_kb();
		if (st.resident > max_st)
			max_st = st.resident;
		if (fdb > max_fd)
			max_fd = fdb;
		if (rss > max_rss)
			max_rss = rss;
		usleep(5000);
	}
	stop = 1;
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(o, &st));
	printf("budget=%llu max_stats=%llu max_memfd=%llu max_pss_shmem=%ld kB evictions=%llu faults=%llu minor=%llu\n",
	       (unsigned long long)budget, (unsigned long long)max_st, (unsigned long long)max_fd, max_rss,
	       (unsigned long long)st.evictions, (unsigned long long)st.faults, (unsigned long long)st.minor_faults);
	CHECK(st.evictions > 0);
	CHECK(max_st <= budget + SLACK);
	CHECK(max_fd <= budget + SLACK);
	CHECK(max_rss > 0 && (uint64_t)max_rss * 1024 <= budget + SLACK);
	CHECK(max_st >= budget / 2); /* and the budget is used, not starved */
	CHECK_EQ(evicted, st.evictions * PS);
	CHECK_EQ(st.budget, budget);

	/* Lower the budget at run time: the object shrinks at once. */
	CHECK_OK(vmo_object_set_budget(o, budget / 4, 0));
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK(st.resident <= budget / 4 + SLACK);
	CHECK(memfd_bytes() <= budget / 4 + SLACK);
	CHECK_OK(vmo_object_set_budget(o, 0, 0)); /* no cap */
	CHECK_OK(vmo_unmap(o, base, NPAGES * PS));
	vmo_object_unref(o);
	CHECK_EQ(memfd_bytes(), 0);
	CHECK_OK(vmo_engine_destroy(eng));
}

/* An engine budget shared by two objects. */
static void case_engine(void)
{
	struct vmo_engine *eng = t_engine(2);
	CHECK_OK(vmo_engine_set_budget(eng, 8u << 20, 0));
	struct vmo_object *a, *b;
	struct vmo_object_opts o2 = { .size = 32u << 20 };
	CHECK_OK(vmo_object_create(eng, &pat_ops, NULL, &o2, &a));
	CHECK_OK(vmo_object_create(eng, &pat_ops, NULL, &o2, &b));
	void *pa, *pb;
	CHECK_OK(vmo_map(a, 0, 32u << 20, VMO_PROT_READ, &pa));
	CHECK_OK(vmo_map(b, 0, 32u << 20, VMO_PROT_READ, &pb));
	uint64_t emax = 0;
	for (uint64_t off = 0; off < (32u << 20); off += PS) {
		CHECK_EQ(*(volatile uint64_t *)((char *)pa + off), t_pattern(off));
		CHECK_EQ(*(volatile uint64_t *)((char *)pb + off), t_pattern(off));
		struct vmo_stats es;
		if (off % (64 * PS) == 0) {
			CHECK_OK(vmo_engine_stats(eng, &es));
			if (es.resident > emax)
				emax = es.resident;
		}
	}
	struct vmo_stats es;
	CHECK_OK(vmo_engine_stats(eng, &es));
	printf("engine: max_resident=%llu resident=%llu budget=%llu\n", (unsigned long long)emax,
	       (unsigned long long)es.resident, (unsigned long long)es.budget);
	CHECK(emax <= (8u << 20) + SLACK);
	CHECK(memfd_bytes() <= (8u << 20) + SLACK);
	CHECK_OK(vmo_unmap(a, pa, 32u << 20));
	CHECK_OK(vmo_unmap(b, pb, 32u << 20));
	vmo_object_unref(a);
	vmo_object_unref(b);
	CHECK_OK(vmo_engine_destroy(eng));
}

/* Large pages with read-ahead on: the budget holds too (a read-ahead
 * cluster is never more than a quarter of the budget). */
static void case_large_pages(void)
{
	struct vmo_engine *eng;
	struct vmo_object *a;
	void *pa;
	CHECK_OK(vmo_engine_create(NULL, &eng));
	static const uint32_t sizes[] = { 65536, 2u << 20 };
	for (int k = 0; k < 2; k++) {
		struct vmo_object_opts o4 = { .size = 32u << 20, .page_size = sizes[k], .budget = 4u << 20 };
		CHECK_OK(vmo_object_create(eng, &pat_ops, NULL, &o4, &a));
		CHECK_OK(vmo_map(a, 0, 32u << 20, VMO_PROT_READ, &pa));
		uint64_t mx = 0, r = 99;
		for (int pass = 0; pass < 2; pass++)
			for (uint64_t i = 0; i < (32u << 20) / PS; i++) {
				uint64_t off = pass ? (t_rand(&r) % ((32u << 20) / PS)) * PS : i * PS;
				CHECK_EQ(*(volatile uint64_t *)((char *)pa + off), t_pattern(off));
				struct vmo_stats s4;
				CHECK_OK(vmo_object_stats(a, &s4));
				if (s4.resident > mx)
					mx = s4.resident;
			}
		printf("page size %u: budget 4 MiB, max resident %llu\n", sizes[k], (unsigned long long)mx);
		CHECK(mx <= (4u << 20) + sizes[k]);
		CHECK_OK(vmo_unmap(a, pa, 32u << 20));
		vmo_object_unref(a);
	}
	CHECK_OK(vmo_engine_destroy(eng));
}

/* The last unref and then destroy, while the evictor works on the
 * object: destroy must not see a reference it does not own (-EBUSY). */
static void case_unref_then_destroy(void)
{
	struct vmo_engine *eng;
	struct vmo_object *a;
	void *pa;
	for (int i = 0; i < 40; i++) {
		struct vmo_engine_opts eo = { .budget = 1u << 20 };
		CHECK_OK(vmo_engine_create(&eo, &eng));
		struct vmo_object_opts o3 = { .size = 4u << 20 };
		CHECK_OK(vmo_object_create(eng, &pat_ops, NULL, &o3, &a));
		CHECK_OK(vmo_map(a, 0, 4u << 20, VMO_PROT_READ, &pa));
		for (uint64_t off = 0; off < (4u << 20); off += PS)
			CHECK_EQ(*(volatile uint64_t *)((char *)pa + off), t_pattern(off));
		CHECK_OK(vmo_sync(a, 0)); /* queue background work on it */
		CHECK_OK(vmo_unmap(a, pa, 4u << 20));
		vmo_object_unref(a);
		CHECK_OK(vmo_engine_destroy(eng));
	}
}

int main(int argc, char **argv)
{
	return t_main(argc, argv,
		      T_CASES({ "object", case_object }, { "engine", case_engine }, { "large-pages", case_large_pages },
			      { "unref-then-destroy", case_unref_then_destroy }));
}
