/* SPDX-License-Identifier: MIT */
/* bench/evict: vmo under a memory budget.
 *
 *   random_read      random reads over a working set 4x the object's budget
 *   random_rw        the same with half the accesses writes
 *                    -> ns per fault (every kind: missing, minor, write) and
 *                       the ratio to the floor (bench/lib/common.h: a minimal
 *                       userfaultfd handler serving random first touches)
 *                    budget_over_floor: the random reads' ratio, against
 *                    a target of <= 1.15 (issue 13)
 *   evict            cost per page of dropping clean pages (vmo_return of a
 *                    fully resident object whose pages were all touched
 *                    through its view), against a target of <= 300 ns; beside it,
 *                    in the same run: the kernel alone dropping the same
 *                    touched pages of a plain memfd mapping (one fallocate per
 *                    512-page chunk, and one for the whole range), and vmo
 *                    dropping pages no view maps (vmo_unmap first: what a
 *                    reclaim after CLOCK's second chance finds), against the
 *                    kernel punching the same pages once unmapped
 *   writeback        MB/s of vmo_sync (write callbacks + fdatasync) of a fully
 *                    dirty object over the file pager, on this disk, against
 *                    plain pwrite + fdatasync of the same bytes (from memory
 *                    holding them, in 1 MiB writes) to the same file, both
 *                    overwriting blocks the file already has, alternating
 *                    which goes first; medians of VMO_BENCH_WB_REPS; against
 *                    a target of >= 0.9
 *   sweep_Ppct_*     the random reads at budgets of P% (VMO_BENCH_SWEEP):
 *                    accesses per second, faults per access, and the floor's
 *                    accesses per second at the same faults (bench/plot draws
 *                    them against the budget)
 * Then a percentile pass of the random reads and read-writes, each access
 * timed (random_read_access_p50_ns, ...; VMO_BENCH_SAMPLES=DIR writes them).
 * Env: VMO_BENCH_PAGES (16384), VMO_BENCH_REPS (3), VMO_BENCH_WB_MB (128),
 * VMO_BENCH_WB_REPS (5), VMO_BENCH_SWEEP (10,25,50,75,100; none). */
#include "lib/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

/* 3 x npages random accesses (half of them writes, with writes) under a
 * budget of pct% of the object, after a warm-up that fills the budget; with
 * lat (the percentile pass), each access timed on its own. */
static struct run run_budget(bool writes, uint64_t seed, unsigned pct, struct samples *lat)
{
	void *base;
	size_t budget_pages = npages * pct / 100;
	struct vmo_object *o = make_obj((uint64_t)budget_pages * PG, &base);
	size_t n = npages * 3;
	uint64_t sum = 0, x = seed;
	/* warm: fill the budget */
	for (size_t i = 0; i < budget_pages; i++)
		sum += *(volatile uint64_t *)((char *)base + (xorshift(&x) % npages) * PG);
	struct vmo_stats s0;
	vmo_object_stats(o, &s0);
	uint64_t t0 = now_ns();
	for (size_t i = 0; i < n; i++) {
		uint64_t r = xorshift(&x);
		volatile uint64_t *p = (volatile uint64_t *)((char *)base + (r % npages) * PG + 64);
		uint64_t a = lat ? now_ns() : 0;
		if (writes && (r >> 40) % 2)
			*p = *p + 0; /* same value: writeback stays exact; still a write fault */
		else
			sum += *p;
		if (lat)
			samples_add(lat, now_ns() - a);
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

/* ns per page to drop a fully resident clean object whose pages were all
 * touched through its view (mapped: the drop unmaps them too), or, with
 * unmapped, after the view is gone (the pages only in the memfd). */
static double run_evict(bool unmapped)
{
	void *base;
	struct vmo_object *o = make_obj(0, &base);
	uint64_t sum = 0;
	for (size_t i = 0; i < npages; i++)
		sum += *(volatile uint64_t *)((char *)base + i * PG);
	if (unmapped)
		vmo_unmap(o, base, npages * PG);
	uint64_t t0 = now_ns();
	int rc = vmo_return(o, VMO_WAIT);
	uint64_t t1 = now_ns();
	if (rc)
		die("vmo_return", rc);
	struct vmo_stats st;
	vmo_object_stats(o, &st);
	if (st.resident || sum == 42)
		die("evict left pages", -EIO);
	if (unmapped)
		vmo_object_unref(o);
	else
		drop_obj(o, base);
	return (double)(t1 - t0) / (double)npages;
}

/* The kernel alone: the same number of pages in a memfd mapped shared,
 * each touched, then punched out in runs of `run` pages (unmapped: after
 * the mapping is gone): ns per page. */
static double run_evict_kernel(size_t run, bool unmapped)
{
	size_t len = npages * PG;
	int fd = memfd_create("vmo-bench-evict", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)len))
		die("memfd", -errno);
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap", -errno);
	for (size_t off = 0; off < len; off += 1 << 20)
		if (pwrite(fd, src + off, len - off < (1u << 20) ? len - off : 1u << 20, (off_t)off) < 0)
			die("pwrite", -errno);
	uint64_t sum = 0;
	for (size_t i = 0; i < npages; i++)
		sum += *(volatile uint64_t *)(p + i * PG);
	if (unmapped)
		munmap(p, len);
	uint64_t t0 = now_ns();
	for (size_t off = 0; off < len; off += run * PG)
		if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			      (off_t)(len - off < run * PG ? len - off : run * PG)))
			die("fallocate", -errno);
	uint64_t t1 = now_ns();
	if (sum == 42)
		printf("#\n");
	if (!unmapped)
		munmap(p, len);
	close(fd);
	return (double)(t1 - t0) / (double)npages;
}

/* Writeback: a fully dirty object over a file (vmo_sync with VMO_WAIT: the
 * write callbacks, then fdatasync) against plain pwrite of the same bytes
 * from memory, in 1 MiB writes, then fdatasync.  Both overwrite the same
 * file, whose blocks are written once before (a sparse file costs its
 * first writer the block allocation: the benchmark used to give that to vmo
 * and an overwrite to plain), in alternating order; MB/s medians. */
static void run_writeback(size_t mb, int reps, double *vmo_mbs, double *plain_mbs)
{
	size_t len = mb << 20, srclen = npages * PG;
	char path[] = "/var/tmp/vmo-wb-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		die("mkstemp", -errno);
	unlink(path);
	/* plain's copy of the object's bytes, in memory it has touched */
	char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap", -errno);
	for (size_t off = 0; off < len; off += PG)
		memcpy(mem + off, src + (off % srclen), PG);
	for (size_t off = 0; off < len; off += 1 << 20)
		if (pwrite(fd, mem + off, 1 << 20, (off_t)off) != 1 << 20)
			die("pwrite", -errno);
	fdatasync(fd);
	const struct vmo_pager_ops *ops;
	void *ctx;
	int rc = vmo_pager_file(fd, 0, &ops, &ctx);
	struct vmo_object *o;
	if (rc || (rc = vmo_object_create(eng, ops, ctx, NULL, &o)))
		die("file object", rc);
	char *base;
	if ((rc = vmo_map(o, 0, len, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&base)))
		die("vmo_map", rc);
	double v[64], pl[64];
	for (int r = 0; r < reps; r++) {
		/* every page written (the same new bytes in both) */
		for (size_t off = 0; off < len; off += PG) {
			mem[off + 8 + (size_t)r] ^= 1;
			base[off + 8 + (size_t)r] ^= 1;
		}
		for (int k = 0; k < 2; k++) {
			if ((k == 0) == (r % 2 == 0)) {
				uint64_t t0 = now_ns();
				if ((rc = vmo_sync(o, VMO_WAIT)))
					die("vmo_sync", rc);
				v[r] = (double)mb / ((double)(now_ns() - t0) / 1e9);
			} else {
				uint64_t t0 = now_ns();
				for (size_t off = 0; off < len; off += 1 << 20)
					if (pwrite(fd, mem + off, 1 << 20, (off_t)off) != 1 << 20)
						die("pwrite", -errno);
				fdatasync(fd);
				pl[r] = (double)mb / ((double)(now_ns() - t0) / 1e9);
			}
		}
	}
	*vmo_mbs = median(v, reps);
	*plain_mbs = median(pl, reps);
	vmo_unmap(o, base, len);
	vmo_object_unref(o);
	munmap(mem, len);
	close(fd);
}

/* The budget sweep: the random reads at each budget of VMO_BENCH_SWEEP
 * (percentages of the object, comma-separated; "none" skips it), one run
 * each: accesses per second and faults per access, and what the floor would
 * make of the same faults (floor_ns per fault, nothing for a hit). */
static void run_sweep(double floor_ns)
{
	const char *e = getenv("VMO_BENCH_SWEEP");
	char list[256];
	snprintf(list, sizeof list, "%s", e && *e ? e : "10,25,50,75,100");
	if (!strcmp(list, "none"))
		return;
	printf("sweep_budgets_pct=%s\n", list);
	char *save = NULL;
	for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *end;
		unsigned long pct = strtoul(t, &end, 10);
		if (*end || pct < 1 || pct > 100 || npages * pct / 100 < 64) {
			fprintf(stderr, "bench/evict: VMO_BENCH_SWEEP: '%s' is not a budget in 1..100 (%% of the object, at "
					"least 64 pages), e.g. VMO_BENCH_SWEEP=10,25,50,100\n", t);
			exit(2);
		}
		struct run r = run_budget(false, 5000 + pct, (unsigned)pct, NULL);
		size_t n = npages * 3;
		double fpa = (double)r.st.faults / (double)n;
		printf("sweep_%lupct_accesses_per_s=%.0f\n", pct, 1e9 / r.ns_per_access);
		printf("sweep_%lupct_faults_per_access=%.4f\n", pct, fpa);
		printf("sweep_%lupct_ns_per_fault=%.0f\n", pct, r.st.faults ? r.ns_per_fault : 0.0);
		printf("sweep_%lupct_floor_accesses_per_s=%.0f\n", pct, fpa > 0 ? 1e9 / (fpa * floor_ns) : 0.0);
	}
}

int main(void)
{
	npages = env_ul("VMO_BENCH_PAGES", 16384);
	int reps = (int)env_ul("VMO_BENCH_REPS", 3);
	size_t wb_mb = env_ul("VMO_BENCH_WB_MB", 128);
	int wb_reps = (int)env_ul("VMO_BENCH_WB_REPS", 5);
	if (reps < 1 || reps > 64 || npages < 1024 || npages > (1ul << 22) || wb_mb < 1 || wb_mb > 4096 ||
	    wb_reps < 1 || wb_reps > 64)
		die("VMO_BENCH_PAGES / VMO_BENCH_REPS / VMO_BENCH_WB_MB / VMO_BENCH_WB_REPS out of range", -EINVAL);
	src = make_data(npages, 0xfeedbeef);
	uint32_t *perm = make_perm(npages, 777);
	struct vmo_engine_opts eo = { .flags = VMO_ENGINE_NO_PRESSURE };
	int rc = vmo_engine_create(&eo, &eng);
	if (rc)
		die(vmo_last_error_detail(), rc);

	double fl[64], rd[64], rw[64], rda[64], rwa[64], ev[64], evu[64], evk[64], evk1[64], evku[64];
	struct run last_r = { 0 }, last_w = { 0 };
	run_floor(src, npages, perm, npages); /* warm up */
	for (int r = 0; r < reps; r++) {
		fl[r] = run_floor(src, npages, perm, npages);
		last_r = run_budget(false, 1000 + (uint64_t)r, 25, NULL);
		rd[r] = last_r.ns_per_fault;
		rda[r] = last_r.ns_per_access;
		last_w = run_budget(true, 2000 + (uint64_t)r, 25, NULL);
		rw[r] = last_w.ns_per_fault;
		rwa[r] = last_w.ns_per_access;
		ev[r] = run_evict(false);
		evk[r] = run_evict_kernel(512, false);
		evk1[r] = run_evict_kernel(npages, false);
		evu[r] = run_evict(true);
		evku[r] = run_evict_kernel(npages, true);
	}
	double mfl = median(fl, reps), mrd = median(rd, reps), mrw = median(rw, reps);
	printf("pages=%zu\nbudget_fraction=0.25\nreps=%d\n", npages, reps);
	printf("floor_ns_per_fault=%.0f\n", mfl);
	printf("random_read_ns_per_fault=%.0f\n", mrd);
	printf("random_read_ns_per_access=%.0f\n", median(rda, reps));
	printf("random_read_over_floor=%.3f\n", mrd / mfl);
	figure_target("budget_over_floor", 3, mrd / mfl, "<=", 1.15);
	printf("random_read_faults=%llu\nrandom_read_minor_faults=%llu\nrandom_read_evictions=%llu\n",
	       (unsigned long long)last_r.st.faults, (unsigned long long)last_r.st.minor_faults,
	       (unsigned long long)last_r.st.evictions);
	printf("random_rw_ns_per_fault=%.0f\n", mrw);
	printf("random_rw_ns_per_access=%.0f\n", median(rwa, reps));
	printf("random_rw_over_floor=%.3f\n", mrw / mfl);
	printf("random_rw_faults=%llu\nrandom_rw_wp_faults=%llu\nrandom_rw_writebacks=%llu\n",
	       (unsigned long long)last_w.st.faults, (unsigned long long)last_w.st.wp_faults,
	       (unsigned long long)last_w.st.writebacks);
	double mev = median(ev, reps), mevk = median(evk, reps);
	figure_target("evict_ns_per_page", 0, mev, "<=", 300);
	printf("evict_kernel_ns_per_page=%.0f\nevict_kernel_one_call_ns_per_page=%.0f\nevict_over_kernel=%.3f\n", mevk,
	       median(evk1, reps), mev / mevk);
	double mevu = median(evu, reps), mevku = median(evku, reps);
	printf("evict_unmapped_ns_per_page=%.0f\nevict_unmapped_kernel_ns_per_page=%.0f\nevict_unmapped_over_kernel=%.3f\n",
	       mevu, mevku, mevu / mevku);
	double vmbs, pmbs;
	run_writeback(wb_mb, wb_reps, &vmbs, &pmbs);
	printf("writeback_mb=%zu\nwriteback_vmo_MBps=%.0f\nwriteback_plain_MBps=%.0f\nwriteback_vmo_over_plain=%.3f\n",
	       wb_mb, vmbs, pmbs, vmbs / pmbs);
	figure_target("writeback_over_plain", 3, vmbs / pmbs, ">=", 0.9);
	run_sweep(mfl);
	/* The percentile pass: the random reads and read-writes under the 25%
	 * budget once more, each access timed on its own (a hit costs about
	 * the timer; a fault tens of µs: the histogram has both). */
	struct samples lat;
	samples_init(&lat, npages * 3);
	printf("timer_overhead_ns=%llu\n", (unsigned long long)timer_overhead_ns());
	run_budget(false, 3000, 25, &lat);
	samples_report(&lat, "random_read_access");
	lat.n = 0;
	run_budget(true, 4000, 25, &lat);
	samples_report(&lat, "random_rw_access");
	samples_free(&lat);
	vmo_engine_destroy(eng);
	return 0;
}
