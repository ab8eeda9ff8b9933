/* SPDX-License-Identifier: MIT */
/* bench/fault: cost of first touches, vmo against the floor of the mechanism.
 *
 *   floor   a minimal userfaultfd handler (bench/lib/common.h): one thread,
 *           blocking read, UFFDIO_COPY of one page from RAM, nothing else
 *   vmo     an object over the memory pager (pages served from RAM)
 *   kernel  mmap of the same data in a file already in the page cache
 *
 *   selfserve  the same object on a VMO_ENGINE_SELF_SERVICE engine, created
 *           VMO_OBJ_SIGNAL_SAFE: the faulting thread serves itself in its
 *           SIGBUS handler (target: <= 0.5x the floor, random)
 *   sigbus floor  the self-service mechanism alone: a SIGBUS handler that
 *           answers its own fault with one UFFDIO_COPY
 *   spin    vmo with workers that poll their userfaultfds for VMO_BENCH_SPIN_US
 *           (50) before they block; the CPU time the process used per page is
 *           reported beside the default's (what the spinning burns)
 *   large   sequential with 2 MiB clusters (readahead_max 512) with 4 KiB
 *           folios (shmem_enabled never), against copy512, and with 2 MiB
 *           ones (within_size: filled by writing the memfd), against memcpy
 *           (target <= 2x) and against pwrite of the same bytes into a fresh
 *           memfd (the fill's own copy and allocation); root only: the global setting is switched for
 *           those runs and restored
 *   copy64  the kernel's batched fill: a minimal handler answering each
 *           fault of a sequential scan of a memfd with one UFFDIO_COPY of
 *           64 pages (vmo's read-ahead window), target for vmo's scan
 *           <= 1.2x; memcpy of the same bytes is reported beside it
 *
 * Random: every page of the region touched once in a random order.
 * Sequential: every page in order, vmo with read-ahead and without.
 * Each figure is the median of REPS runs, interleaved; ratios are taken
 * within this run.  Then a percentile pass: the random first touches of the
 * floor, vmo, kernel mmap, self-service and its floor once more, each touch
 * timed on its own (KEY_p50_ns, _p99_ns, _max_ns; VMO_BENCH_SAMPLES=DIR
 * writes the samples there, for bench/plot).  Env: VMO_BENCH_PAGES (32768), VMO_BENCH_REPS (5),
 * VMO_BENCH_WORKERS (engine default). */
#include "lib/common.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

static size_t npages;
static char *src;

/* Touch every page in order[]; returns ns per page and checks the data.
 * With lat (the percentile pass), each touch is timed on its own. */
static double touch(const char *base, const uint32_t *order, struct samples *lat)
{
	uint64_t sum = 0, t0 = now_ns();
	if (lat) {
		for (size_t i = 0; i < npages; i++) {
			const volatile uint64_t *p = (const volatile uint64_t *)(base + (size_t)order[i] * PG);
			uint64_t a = now_ns();
			sum += *p;
			samples_add(lat, now_ns() - a);
		}
	} else {
		for (size_t i = 0; i < npages; i++)
			sum += *(const volatile uint64_t *)(base + (size_t)order[i] * PG);
	}
	uint64_t t1 = now_ns();
	if (sum == 42)
		printf("#\n");
	for (size_t i = 0; i < npages; i += 97)
		if (memcmp(base + i * PG, src + i * PG, PG)) {
			fprintf(stderr, "bench/fault: data mismatch at page %zu\n", i);
			exit(1);
		}
	return (double)(t1 - t0) / (double)npages;
}

static struct vmo_engine *eng, *eng_ss, *eng_spin;

static double cpu_ns(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e9 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e3;
}

/* An object over the memory pager on engine e (readahead_max ra, 0: the
 * default), its pages touched in order[] (each timed into lat if given). */
static double run_vmo_lat(struct vmo_engine *e, const uint32_t *order, uint32_t flags, uint32_t ra, struct vmo_stats *st,
			  struct samples *lat)
{
	struct vmo_object_opts oo = { .flags = flags, .readahead_max = ra };
	void *base;
	struct vmo_object *obj = bench_mem_object(e, src, npages, &oo, &base);
	double ns = touch(base, order, lat);
	if (st)
		vmo_object_stats(obj, st);
	vmo_unmap(obj, base, npages * PG);
	vmo_object_unref(obj);
	return ns;
}

static double run_vmo_on(struct vmo_engine *e, const uint32_t *order, uint32_t flags, uint32_t ra, struct vmo_stats *st)
{
	return run_vmo_lat(e, order, flags, ra, st, NULL);
}

static double run_vmo(const uint32_t *order, uint32_t flags, struct vmo_stats *st)
{
	return run_vmo_on(eng, order, flags, 0, st);
}

/* shmem's global shmem_enabled (a memfd's large folios): read, and set
 * for the large-folio runs when root; restored at exit. */
static const char *knob = "/sys/kernel/mm/transparent_hugepage/shmem_enabled";
static char knob_old[32];

static void knob_restore(void)
{
	FILE *f;
	if (knob_old[0] && (f = fopen(knob, "we"))) {
		fputs(knob_old, f);
		fclose(f);
	}
}

static bool knob_set(const char *v)
{
	char buf[128] = "";
	FILE *f = fopen(knob, "re");
	if (!f)
		return false;
	if (!fgets(buf, sizeof buf, f))
		buf[0] = 0;
	fclose(f);
	if (!knob_old[0]) {
		char *a = strchr(buf, '['), *b = a ? strchr(a, ']') : NULL;
		if (!a || !b)
			return false;
		snprintf(knob_old, sizeof knob_old, "%.*s", (int)(b - a - 1), a + 1);
		atexit(knob_restore);
	}
	f = fopen(knob, "we");
	if (!f)
		return false;
	bool ok = fputs(v, f) >= 0;
	return fclose(f) == 0 && ok;
}

static int datafd = -1;

static double run_kernel(const uint32_t *order, struct samples *lat)
{
	char *p = mmap(NULL, npages * PG, PROT_READ, MAP_SHARED, datafd, 0);
	if (p == MAP_FAILED)
		die("mmap", -errno);
	double ns = touch(p, order, lat);
	munmap(p, npages * PG);
	return ns;
}

int main(void)
{
	npages = env_ul("VMO_BENCH_PAGES", 32768);
	int reps = (int)env_ul("VMO_BENCH_REPS", 5);
	if (reps < 1 || reps > 64 || npages < 64 || npages > (1ul << 24))
		die("VMO_BENCH_PAGES / VMO_BENCH_REPS out of range", -EINVAL);
	src = make_data(npages, 88172645463325252ull);
	uint32_t *order_rand = make_perm(npages, 12345);
	uint32_t *order_seq = malloc(npages * sizeof *order_seq);
	for (size_t i = 0; i < npages; i++)
		order_seq[i] = (uint32_t)i;
	char path[] = "/tmp/vmo-bench-XXXXXX";
	datafd = mkstemp(path);
	if (datafd < 0 || write(datafd, src, npages * PG) != (ssize_t)(npages * PG))
		die("data file", -errno);
	unlink(path);
	fsync(datafd);

	struct vmo_engine_opts eo = { .workers = (unsigned)env_ul("VMO_BENCH_WORKERS", 0),
				      .flags = (uint32_t)env_ul("VMO_BENCH_ENGINE_FLAGS", 0) };
	int rc = vmo_engine_create(&eo, &eng);
	if (rc)
		die(vmo_last_error_detail(), rc);

	/* Self-service: where the kernel has UFFD_FEATURE_SIGBUS. */
	eo.flags |= VMO_ENGINE_SELF_SERVICE;
	rc = vmo_engine_create(&eo, &eng_ss);
	if (rc) {
		fprintf(stderr, "bench/fault: no self-service engine (%s): %s\n", vmo_strerror(rc), vmo_last_error_detail());
		eng_ss = NULL;
	}

	/* Spin before blocking: workers poll for this long after their last
	 * work before they sleep (VMO_SPIN_US; VMO_BENCH_SPIN_US, 50). */
	char spin[32];
	snprintf(spin, sizeof spin, "%lu", env_ul("VMO_BENCH_SPIN_US", 50));
	setenv("VMO_SPIN_US", spin, 1);
	eo.flags &= ~VMO_ENGINE_SELF_SERVICE;
	if ((rc = vmo_engine_create(&eo, &eng_spin)))
		die(vmo_last_error_detail(), rc);
	unsetenv("VMO_SPIN_US");

	double fr[64], vr[64], kr[64], fs[64], vs[64], vsn[64], ks[64], ssr[64], sss[64], c64[64], mc[64], sf[64];
	double spr[64], cpu_v[64], cpu_sp[64], l4[64], ll[64], lls[64], c512[64], w4[64], wl[64];
	struct vmo_stats st_large = { 0 };
	/* Large folios: both configurations, when this process may switch
	 * shmem_enabled (root); else only the one the machine has. */
	bool can_switch = knob_set("never");
	struct vmo_stats st_seq = { 0 };
	run_floor(src, npages, order_seq, npages); /* warm up */
	for (int r = 0; r < reps; r++) {
		fr[r] = run_floor(src, npages, order_rand, npages);
		double c0 = cpu_ns();
		vr[r] = run_vmo(order_rand, 0, NULL);
		double c1 = cpu_ns();
		spr[r] = run_vmo_on(eng_spin, order_rand, 0, 0, NULL);
		double c2 = cpu_ns();
		cpu_v[r] = (c1 - c0) / (double)npages;
		cpu_sp[r] = (c2 - c1) / (double)npages;
		sf[r] = run_floor_sigbus(src, npages, order_rand, npages);
		if (eng_ss) {
			ssr[r] = run_vmo_on(eng_ss, order_rand, VMO_OBJ_SIGNAL_SAFE, 0, NULL);
			sss[r] = run_vmo_on(eng_ss, order_seq, VMO_OBJ_SIGNAL_SAFE, 0, NULL);
		}
		c64[r] = run_copy_runs(src, npages, 64);
		c512[r] = run_copy_runs(src, npages, 512);
		mc[r] = run_memcpy(src, npages);
		if (can_switch) {
			l4[r] = run_vmo_on(eng, order_seq, 0, 512, NULL); /* 4 KiB folios */
			w4[r] = run_memfd_write(src, npages);
			knob_set("within_size");
			/* (untimed: the first 2 MiB folios after a while cost
			 * compaction and the hypervisor's first touch) */
			run_memfd_write(src, npages);
			ll[r] = run_vmo_on(eng, order_seq, 0, 512, &st_large);
			wl[r] = run_memfd_write(src, npages);
			lls[r] = eng_ss ? run_vmo_on(eng_ss, order_seq, VMO_OBJ_SIGNAL_SAFE, 512, NULL) : 0;
			knob_set("never");
		}
		kr[r] = run_kernel(order_rand, NULL);
		fs[r] = run_floor(src, npages, order_seq, npages);
		vs[r] = run_vmo(order_seq, 0, &st_seq);
		vsn[r] = run_vmo(order_seq, VMO_OBJ_NO_READAHEAD, NULL);
		ks[r] = run_kernel(order_seq, NULL);
	}
	/* The percentile pass: the random first touches once more, each timed
	 * on its own (two clock reads around it, in every sample: printed as
	 * timer_overhead_ns), after the runs the means come from. */
	struct samples lat_floor, lat_vmo, lat_kernel, lat_ss = { 0 }, lat_sf = { 0 };
	samples_init(&lat_floor, npages);
	samples_init(&lat_vmo, npages);
	samples_init(&lat_kernel, npages);
	run_floor_timed(src, npages, order_rand, npages, &lat_floor);
	run_vmo_lat(eng, order_rand, 0, 0, NULL, &lat_vmo);
	run_kernel(order_rand, &lat_kernel);
	if (eng_ss) {
		samples_init(&lat_ss, npages);
		samples_init(&lat_sf, npages);
		run_vmo_lat(eng_ss, order_rand, VMO_OBJ_SIGNAL_SAFE, 0, NULL, &lat_ss);
		run_floor_sigbus_timed(src, npages, order_rand, npages, &lat_sf);
	}
	double mfr = median(fr, reps), mvr = median(vr, reps), mkr = median(kr, reps);
	double mfs = median(fs, reps), mvs = median(vs, reps), mvsn = median(vsn, reps), mks = median(ks, reps);
	printf("pages=%zu\nreps=%d\n", npages, reps);
	printf("random_floor_ns_per_page=%.0f\n", mfr);
	printf("random_vmo_ns_per_page=%.0f\n", mvr);
	printf("random_kernel_mmap_ns_per_page=%.0f\n", mkr);
	printf("random_kernel_mmap_over_floor=%.4f\n", mkr / mfr);
	figure_target("random_vmo_over_floor", 3, mvr / mfr, "<=", 1.15);
	printf("seq_floor_ns_per_page=%.0f\n", mfs);
	printf("seq_vmo_ns_per_page=%.0f\n", mvs);
	printf("seq_vmo_noreadahead_ns_per_page=%.0f\n", mvsn);
	printf("seq_kernel_mmap_ns_per_page=%.0f\n", mks);
	printf("seq_kernel_mmap_over_floor=%.4f\n", mks / mfs);
	figure_target("seq_readahead_speedup", 2, mvsn / mvs, ">=", 5);
	printf("seq_vmo_over_floor=%.3f\n", mvs / mfs);
	printf("seq_faults_per_page=%.4f\n", (double)st_seq.faults / (double)npages);
	double mspr = median(spr, reps);
	printf("random_spin_us=%s\n", spin);
	printf("random_spin_ns_per_page=%.0f\n", mspr);
	printf("random_spin_over_floor=%.3f\n", mspr / mfr);
	printf("random_spin_over_vmo=%.3f\n", mspr / mvr);
	printf("random_vmo_cpu_ns_per_page=%.0f\n", median(cpu_v, reps));
	printf("random_spin_cpu_ns_per_page=%.0f\n", median(cpu_sp, reps));
	vmo_engine_destroy(eng_spin);
	double mc64 = median(c64, reps), mmc = median(mc, reps);
	printf("seq_copy64_ns_per_page=%.0f\n", mc64);
	printf("seq_memcpy_ns_per_page=%.0f\n", mmc);
	figure_target("seq_vmo_over_copy64", 3, mvs / mc64, "<=", 1.2);
	printf("seq_vmo_over_memcpy=%.2f\n", mvs / mmc);
	double mc512 = median(c512, reps);
	printf("seq_copy512_ns_per_page=%.0f\n", mc512);
	if (can_switch) {
		double ml4 = median(l4, reps), mll = median(ll, reps);
		printf("seq_ra512_vmo_ns_per_page=%.0f\n", ml4);
		figure_target("seq_ra512_vmo_over_copy512", 3, ml4 / mc512, "<=", 1.2);
		printf("seq_large_vmo_ns_per_page=%.0f\n", mll);
		printf("seq_large_pages_by_write=%.3f\n", (double)st_large.large_fill / (double)npages);
		figure_target("seq_large_vmo_over_memcpy", 2, mll / mmc, "<=", 2.0);
		printf("seq_large_vmo_over_ra512_4k=%.3f\n", mll / ml4);
		double mw4 = median(w4, reps), mwl = median(wl, reps);
		printf("seq_memfd_write_4k_ns_per_page=%.0f\n", mw4);
		printf("seq_memfd_write_large_ns_per_page=%.0f\n", mwl);
		printf("seq_large_vmo_over_memfd_write=%.2f\n", mll / mwl);
		if (eng_ss) {
			double mlls = median(lls, reps);
			printf("seq_large_selfserve_ns_per_page=%.0f\n", mlls);
			printf("seq_large_selfserve_over_memcpy=%.2f\n", mlls / mmc);
		}
	} else {
		printf("seq_large=skipped (cannot switch %s: not root?)\n", knob);
	}
	if (eng_ss) {
		double mssr = median(ssr, reps), msss = median(sss, reps);
		printf("random_selfserve_ns_per_page=%.0f\n", mssr);
		figure_target("random_selfserve_over_floor", 3, mssr / mfr, "<=", 0.5);
		double msf = median(sf, reps);
		printf("random_sigbus_floor_ns_per_page=%.0f\n", msf);
		printf("random_sigbus_floor_over_floor=%.3f\n", msf / mfr);
		printf("random_selfserve_over_sigbus_floor=%.3f\n", mssr / msf);
		printf("seq_selfserve_ns_per_page=%.0f\n", msss);
		printf("seq_selfserve_over_copy64=%.3f\n", msss / mc64);
		vmo_engine_destroy(eng_ss);
	}
	printf("timer_overhead_ns=%llu\n", (unsigned long long)timer_overhead_ns());
	samples_report(&lat_floor, "random_floor");
	samples_report(&lat_vmo, "random_vmo");
	samples_report(&lat_kernel, "random_kernel_mmap");
	if (lat_ss.v) {
		samples_report(&lat_ss, "random_selfserve");
		samples_report(&lat_sf, "random_sigbus_floor");
	}
	vmo_engine_destroy(eng);
	return 0;
}
