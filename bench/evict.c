/* bench/evict: vmo under a memory budget.
 *
 *   random_read      random reads over a working set 4x the object's budget
 *   random_rw        the same with half the accesses writes
 *                    -> ns per fault (every kind: missing, minor, write) and
 *                       the ratio to the floor (bench/lib/common.h: a minimal
 *                       userfaultfd handler serving random first touches)
 *   evict            cost per page of dropping clean pages (vmo_return of a
 *                    fully resident object), in batches of a chunk
 *   writeback        MB/s of vmo_sync (write callbacks + fdatasync) of a fully
 *                    dirty object over the file pager, on this disk, against
 *                    plain pwrite + fdatasync of the same bytes
 * Env: VMO_BENCH_PAGES (16384), VMO_BENCH_REPS (3), VMO_BENCH_WB_MB (128). */
#include "lib/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static size_t npages;
static char *src;
static struct vmo_engine *eng;

struct run {
	double ns_per_fault, ns_per_access;
	struct vmo_stats st;
};

static struct vmo_object *make_obj(uint64_t budget, void **base)
{
	struct vmo_object_opts oo = { .budget = budget };
	return bench_mem_object(eng, src, npages, &oo, base);
}

static void drop_obj(struct vmo_object *o, void *base)
{
	vmo_unmap(o, base, npages * PG);
	vmo_object_unref(o);
}

static struct run run_budget(bool writes, uint64_t seed)
{
	void *base;
	struct vmo_object *o = make_obj(npages * PG / 4, &base);
	size_t n = npages * 3;
	uint64_t sum = 0, x = seed;
	/* warm: fill the budget */
	for (size_t i = 0; i < npages / 4; i++)
		sum += *(volatile uint64_t *)((char *)base + (xorshift(&x) % npages) * PG);
	struct vmo_stats s0;
	vmo_object_stats(o, &s0);
	uint64_t t0 = now_ns();
	for (size_t i = 0; i < n; i++) {
		uint64_t r = xorshift(&x);
		volatile uint64_t *p = (volatile uint64_t *)((char *)base + (r % npages) * PG + 64);
		if (writes && (r >> 40) % 2)
			*p = *p + 0; /* same value: writeback stays exact; still a write fault */
		else
			sum += *p;
	}
	uint64_t t1 = now_ns();
	struct run rr;
	vmo_object_stats(o, &rr.st);
	uint64_t faults = rr.st.faults - s0.faults;
	rr.ns_per_fault = (double)(t1 - t0) / (double)(faults ? faults : 1);
	rr.ns_per_access = (double)(t1 - t0) / (double)n;
	rr.st.faults = faults;
	rr.st.evictions -= s0.evictions;
	rr.st.writebacks -= s0.writebacks;
	rr.st.wp_faults -= s0.wp_faults;
	rr.st.minor_faults -= s0.minor_faults;
	if (sum == 42)
		printf("#\n");
	drop_obj(o, base);
	return rr;
}

/* ns per page to drop a fully resident clean object. */
static double run_evict(void)
{
	void *base;
	struct vmo_object *o = make_obj(0, &base);
	uint64_t sum = 0;
	for (size_t i = 0; i < npages; i++)
		sum += *(volatile uint64_t *)((char *)base + i * PG);
	uint64_t t0 = now_ns();
	int rc = vmo_return(o, VMO_WAIT);
	uint64_t t1 = now_ns();
	if (rc)
		die("vmo_return", rc);
	struct vmo_stats st;
	vmo_object_stats(o, &st);
	if (st.resident || sum == 42)
		die("evict left pages", -EIO);
	drop_obj(o, base);
	return (double)(t1 - t0) / (double)npages;
}

/* MB/s: sync of a fully dirty object over a file, and pwrite+fdatasync. */
static void run_writeback(size_t mb, double *vmo_mbs, double *plain_mbs)
{
	size_t len = mb << 20;
	char path[] = "/var/tmp/vmo-wb-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		die("mkstemp", -errno);
	unlink(path);
	if (ftruncate(fd, (off_t)len))
		die("ftruncate", -errno);
	const struct vmo_pager_ops *ops;
	void *ctx;
	int rc = vmo_pager_file(fd, 0, &ops, &ctx);
	struct vmo_object *o;
	if (rc || (rc = vmo_object_create(eng, ops, ctx, NULL, &o)))
		die("file object", rc);
	char *base;
	if ((rc = vmo_map(o, 0, len, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&base)))
		die("vmo_map", rc);
	for (size_t off = 0; off < len; off += PG)
		memcpy(base + off, src + (off % (npages * PG)), PG);
	uint64_t t0 = now_ns();
	if ((rc = vmo_sync(o, VMO_WAIT)))
		die("vmo_sync", rc);
	uint64_t t1 = now_ns();
	*vmo_mbs = (double)mb / ((double)(t1 - t0) / 1e9);
	vmo_unmap(o, base, len);
	vmo_object_unref(o);
	/* plain: the same bytes with pwrite in 1 MiB pieces, then fdatasync */
	t0 = now_ns();
	for (size_t off = 0; off < len; off += 1 << 20)
		if (pwrite(fd, src, 1 << 20, (off_t)off) != 1 << 20)
			die("pwrite", -errno);
	fdatasync(fd);
	t1 = now_ns();
	*plain_mbs = (double)mb / ((double)(t1 - t0) / 1e9);
	close(fd);
}

int main(void)
{
	npages = env_ul("VMO_BENCH_PAGES", 16384);
	int reps = (int)env_ul("VMO_BENCH_REPS", 3);
	size_t wb_mb = env_ul("VMO_BENCH_WB_MB", 128);
	if (reps < 1 || reps > 64 || npages < 1024 || npages > (1ul << 22) || wb_mb < 1 || wb_mb > 4096)
		die("VMO_BENCH_PAGES / VMO_BENCH_REPS / VMO_BENCH_WB_MB out of range", -EINVAL);
	src = make_data(npages, 0xfeedbeef);
	uint32_t *perm = make_perm(npages, 777);
	struct vmo_engine_opts eo = { .flags = VMO_ENGINE_NO_PRESSURE };
	int rc = vmo_engine_create(&eo, &eng);
	if (rc)
		die(vmo_last_error_detail(), rc);

	double fl[64], rd[64], rw[64], rda[64], rwa[64], ev[64];
	struct run last_r = { 0 }, last_w = { 0 };
	run_floor(src, npages, perm, npages); /* warm up */
	for (int r = 0; r < reps; r++) {
		fl[r] = run_floor(src, npages, perm, npages);
		last_r = run_budget(false, 1000 + (uint64_t)r);
		rd[r] = last_r.ns_per_fault;
		rda[r] = last_r.ns_per_access;
		last_w = run_budget(true, 2000 + (uint64_t)r);
		rw[r] = last_w.ns_per_fault;
		rwa[r] = last_w.ns_per_access;
		ev[r] = run_evict();
	}
	double mfl = median(fl, reps), mrd = median(rd, reps), mrw = median(rw, reps);
	printf("pages=%zu\nbudget_fraction=0.25\nreps=%d\n", npages, reps);
	printf("floor_ns_per_fault=%.0f\n", mfl);
	printf("random_read_ns_per_fault=%.0f\n", mrd);
	printf("random_read_ns_per_access=%.0f\n", median(rda, reps));
	printf("random_read_over_floor=%.3f\n", mrd / mfl);
	printf("random_read_faults=%llu\nrandom_read_minor_faults=%llu\nrandom_read_evictions=%llu\n",
	       (unsigned long long)last_r.st.faults, (unsigned long long)last_r.st.minor_faults,
	       (unsigned long long)last_r.st.evictions);
	printf("random_rw_ns_per_fault=%.0f\n", mrw);
	printf("random_rw_ns_per_access=%.0f\n", median(rwa, reps));
	printf("random_rw_over_floor=%.3f\n", mrw / mfl);
	printf("random_rw_faults=%llu\nrandom_rw_wp_faults=%llu\nrandom_rw_writebacks=%llu\n",
	       (unsigned long long)last_w.st.faults, (unsigned long long)last_w.st.wp_faults,
	       (unsigned long long)last_w.st.writebacks);
	printf("evict_ns_per_page=%.0f\n", median(ev, reps));
	double vmbs, pmbs;
	run_writeback(wb_mb, &vmbs, &pmbs);
	printf("writeback_mb=%zu\nwriteback_vmo_MBps=%.0f\nwriteback_plain_MBps=%.0f\nwriteback_vmo_over_plain=%.3f\n",
	       wb_mb, vmbs, pmbs, vmbs / pmbs);
	vmo_engine_destroy(eng);
	return 0;
}
