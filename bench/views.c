/* SPDX-License-Identifier: MIT */
/* bench/views: many small views of one object - map, fault, sync, unmap.
 *
 * One engine, one object over the memory pager (pages served from RAM, with
 * a write callback: the object is tracked and its writable views are
 * registered for write-protect faults), and VIEWS views of one page each, at
 * random object offsets (every view a different page), mapped read-write:
 *
 *   map      vmo_map of every view                      -> ns per view
 *   fault    read one word through each view (a MISSING fault), checked
 *   write    write one word through every DIRTY_EVERY-th view (a WP fault)
 *   sync     vmo_sync(VMO_WAIT) of the whole object: one writeback run per
 *            dirty page, each of which looks at the object's views
 *   unmap    vmo_unmap of every view in a random order (seeded)
 *
 * The baseline of unmap is map, in the same run: target unmap_over_map <= 2.
 * kernel_* is the floor: the same views as plain mmaps of a memfd (no vmo,
 * no userfaultfd), read once, unmapped in the same order.  munmap of a page
 * that was touched flushes the other CPUs' TLBs, which mmap never does: an
 * unmap cannot cost less than kernel_unmap_ns_per_view, and
 * unmap_over_kernel_unmap is what vmo adds to it (1: nothing).
 * The baseline of sync is the same dirty pages synced with one view of the
 * whole object, every page in memory as well.  Also measured: the same views
 * over a pager without a write callback (untracked_*: no write-protect), and
 * SEQ_VIEWS views unmapped in the order they were mapped (seq_*, with its own
 * kernel floor: the kernel's munmap alone grows in that order too).
 * *_growth compares the last tenth of a phase with the first (map) or the
 * first with the last (unmap), in CPU time: about 1 when the cost per view
 * does not depend on how many views there are.  *_cpu_*: this thread's CPU
 * time, steadier than wall time on a loaded machine (it leaves out the time
 * other processes had the CPU).
 *
 * Every view is a VMA: VIEWS plus the process's own mappings must fit under
 * vm.max_map_count (65530 by default); VIEWS is lowered, with a message, if
 * not.  Env: VMO_BENCH_VIEWS (60000, or argv[1]), VMO_BENCH_SEQ_VIEWS
 * (VIEWS/4), VMO_BENCH_UNTRACKED_VIEWS (VIEWS; 0 skips), VMO_BENCH_DIRTY_EVERY
 * (8), VMO_BENCH_WORKERS (engine default), VMO_BENCH_ENGINE_FLAGS (0). */
#include "lib/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAP_MARGIN 1024 /* VMAs left for the library, threads, allocations */

static size_t npages; /* the object's size in pages (= views) */
static char *src;     /* the memory pager's buffer */
static uint32_t *page_of; /* view i maps object page page_of[i] */
static struct vmo_engine *eng;

static uint64_t word(size_t pg, size_t w)
{
	return ((const uint64_t *)(src + pg * PG))[w];
}

static struct vmo_object *make_object(bool tracked)
{
	struct vmo_object_opts oo = { .size = npages * PG };
	return bench_mem_create(eng, src, npages, &oo, tracked);
}

static void map_failed(const char *what, uint64_t off, int rc)
{
	fprintf(stderr, "bench/views: vmo_map of %s (object offset %#llx): %s (errno %d); detail: %s\n", what,
		(unsigned long long)off, vmo_strerror(rc), -rc, vmo_last_error_detail());
	if (rc == -ENOMEM)
		fprintf(stderr, "bench/views: (each view is a VMA: see vm.max_map_count and ulimit -v)\n");
	exit(1);
}

/* ns per item of tenth k of a phase whose clock read before item i*n/10
 * is t[i], t[10] its end. */
static double tenth(const uint64_t *t, int k, size_t n)
{
	size_t a = (size_t)k * n / 10, b = (size_t)(k + 1) * n / 10;
	return b > a ? (double)(t[k + 1] - t[k]) / (double)(b - a) : 0;
}

/* CPU time of this thread: what map and unmap cost it, without the time
 * other processes took the CPU (the machines here are shared). */
static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct views {
	size_t n;
	void **addr;
	double map_ns, fault_ns, unmap_ns; /* per view */
	double map_cpu_ns, unmap_cpu_ns;   /* per view, this thread's CPU time */
	double map_growth, unmap_growth;
};

static void map_all(struct vmo_object *o, struct views *v)
{
	uint64_t t[11], c[11];
	size_t k = 0;
	for (size_t i = 0; i < v->n; i++) {
		while (k < 10 && i == k * v->n / 10)
			c[k] = cpu_ns(), t[k++] = now_ns();
		v->addr[i] = NULL;
		int rc = vmo_map(o, (uint64_t)page_of[i] * PG, PG, VMO_PROT_READ | VMO_PROT_WRITE, &v->addr[i]);
		if (rc) {
			char what[64];
			snprintf(what, sizeof what, "view %zu of %zu", i, v->n);
			map_failed(what, (uint64_t)page_of[i] * PG, rc);
		}
	}
	t[10] = now_ns(), c[10] = cpu_ns();
	v->map_cpu_ns = (double)(c[10] - c[0]) / (double)v->n;
	v->map_ns = (double)(t[10] - t[0]) / (double)v->n;
	v->map_growth = tenth(c, 9, v->n) / tenth(c, 0, v->n);
}

/* Read word 0 through every view, in mapping order; check it. */
static void fault_all(struct views *v)
{
	uint64_t sum = 0, t0 = now_ns();
	for (size_t i = 0; i < v->n; i++)
		sum += *(const volatile uint64_t *)v->addr[i];
	uint64_t t1 = now_ns();
	if (sum == 42)
		printf("#\n");
	v->fault_ns = (double)(t1 - t0) / (double)v->n;
	for (size_t i = 0; i < v->n; i++)
		if (*(const uint64_t *)v->addr[i] != word(page_of[i], 0)) {
			fprintf(stderr, "bench/views: data mismatch in view %zu (object page %u)\n", i, page_of[i]);
			exit(1);
		}
}

/* Unmap every view, view order[j] j-th (order NULL: mapping order). */
static void unmap_all(struct vmo_object *o, struct views *v, const uint32_t *order)
{
	uint64_t t[11], c[11];
	size_t k = 0;
	for (size_t j = 0; j < v->n; j++) {
		while (k < 10 && j == k * v->n / 10)
			c[k] = cpu_ns(), t[k++] = now_ns();
		size_t i = order ? order[j] : j;
		int rc = vmo_unmap(o, v->addr[i], PG);
		if (rc) {
			fprintf(stderr, "bench/views: vmo_unmap of view %zu: %s\n", i, vmo_strerror(rc));
			exit(1);
		}
	}
	t[10] = now_ns(), c[10] = cpu_ns();
	v->unmap_cpu_ns = (double)(c[10] - c[0]) / (double)v->n;
	v->unmap_ns = (double)(t[10] - t[0]) / (double)v->n;
	v->unmap_growth = tenth(c, 0, v->n) / tenth(c, 9, v->n);
}

static uint64_t written(size_t i)
{
	return 0x5f3759df00000000ull | i;
}

/* Write word 1 of every every-th view; returns ns per write. */
static double write_some(void *const *addr, size_t n, size_t every)
{
	uint64_t t0 = now_ns();
	size_t w = 0;
	for (size_t i = 0; i < n; i += every, w++)
		((volatile uint64_t *)addr[i])[1] = written(i);
	return (double)(now_ns() - t0) / (double)w;
}

/* vmo_sync(VMO_WAIT) of o (done on this thread); returns ms, and in *cpu
 * this thread's CPU ms; checks that the pager got the words. */
static double sync_ms(struct vmo_object *o, size_t n, size_t every, double *cpu)
{
	uint64_t c0 = cpu_ns(), t0 = now_ns();
	int rc = vmo_sync(o, VMO_WAIT);
	uint64_t t1 = now_ns();
	*cpu = (double)(cpu_ns() - c0) / 1e6;
	if (rc)
		die("vmo_sync", rc);
	for (size_t i = 0; i < n; i += every)
		if (word(page_of[i], 1) != written(i)) {
			fprintf(stderr, "bench/views: page %u not written back by vmo_sync\n", page_of[i]);
			exit(1);
		}
	return (double)(t1 - t0) / 1e6;
}

/* The kernel alone: the same views as plain mmaps of a memfd holding the
 * data (no userfaultfd), each read once, unmapped in the same order (order
 * NULL: mapping order). */
static struct views kernel_views(size_t n, const uint32_t *order)
{
	struct views k = { .n = n, .addr = malloc(n * sizeof(void *)) };
	int fd = memfd_create("views-bench", MFD_CLOEXEC);
	if (fd < 0 || pwrite(fd, src, npages * PG, 0) != (ssize_t)(npages * PG))
		die("memfd", -errno);
	uint64_t t[11], c[11], sum = 0;
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		while (j < 10 && i == j * n / 10)
			c[j] = cpu_ns(), t[j++] = now_ns();
		k.addr[i] = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)page_of[i] * (off_t)PG);
		if (k.addr[i] == MAP_FAILED)
			die("mmap", -errno);
	}
	t[10] = now_ns(), c[10] = cpu_ns();
	k.map_cpu_ns = (double)(c[10] - c[0]) / (double)n;
	k.map_ns = (double)(t[10] - t[0]) / (double)n;
	k.map_growth = tenth(c, 9, n) / tenth(c, 0, n);
	t[0] = now_ns();
	for (size_t i = 0; i < n; i++)
		sum += *(const volatile uint64_t *)k.addr[i];
	k.fault_ns = (double)(now_ns() - t[0]) / (double)n;
	if (sum == 42)
		printf("#\n");
	j = 0;
	for (size_t i = 0; i < n; i++) {
		while (j < 10 && i == j * n / 10)
			c[j] = cpu_ns(), t[j++] = now_ns();
		if (munmap(k.addr[order ? order[i] : i], PG))
			die("munmap", -errno);
	}
	t[10] = now_ns(), c[10] = cpu_ns();
	k.unmap_cpu_ns = (double)(c[10] - c[0]) / (double)n;
	k.unmap_ns = (double)(t[10] - t[0]) / (double)n;
	k.unmap_growth = tenth(c, 0, n) / tenth(c, 9, n);
	close(fd);
	free(k.addr);
	k.addr = NULL;
	return k;
}

static size_t count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	size_t n = 0;
	int c;
	if (!f)
		return 0;
	while ((c = getc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

int main(int argc, char **argv)
{
	size_t nviews = argc > 1 ? strtoul(argv[1], NULL, 0) : env_ul("VMO_BENCH_VIEWS", 60000);
	size_t every = env_ul("VMO_BENCH_DIRTY_EVERY", 8);
	if (nviews < 100 || nviews > (1ul << 24) || every < 1)
		die("VMO_BENCH_VIEWS / VMO_BENCH_DIRTY_EVERY out of range", -EINVAL);
	npages = nviews;
	src = make_data(npages, 88172645463325252ull);
	page_of = make_perm(npages, 4242);
	uint32_t *order = make_perm(nviews, 777);

	struct vmo_engine_opts eo = { .workers = (unsigned)env_ul("VMO_BENCH_WORKERS", 0),
				      .flags = (uint32_t)env_ul("VMO_BENCH_ENGINE_FLAGS", 0) };
	int rc = vmo_engine_create(&eo, &eng);
	if (rc)
		die(vmo_last_error_detail(), rc);

	/* Every view is one VMA (random offsets: neighbours do not merge). */
	unsigned long max_maps = 65530;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	if (f) {
		if (fscanf(f, "%lu", &max_maps) != 1)
			max_maps = 65530;
		fclose(f);
	}
	size_t own = count_maps();
	size_t fit = max_maps > own + MAP_MARGIN ? max_maps - own - MAP_MARGIN : 0;
	if (nviews > fit) {
		printf("# views: %zu views do not fit vm.max_map_count=%lu (this process has %zu mappings, "
		       "%d kept spare): %zu views\n",
		       nviews, max_maps, own, MAP_MARGIN, fit);
		if (fit < 100)
			die("vm.max_map_count too low", -ENOMEM);
		nviews = fit;
	}
	size_t nseq = env_ul("VMO_BENCH_SEQ_VIEWS", nviews / 4);
	size_t nro = env_ul("VMO_BENCH_UNTRACKED_VIEWS", nviews);
	if (nseq > nviews)
		nseq = nviews;
	if (nro > nviews)
		nro = nviews;
	struct views v = { .n = nviews, .addr = malloc(nviews * sizeof(void *)) };
	if (nviews < npages) { /* the unmap order over the views that are there */
		size_t j = 0;
		for (size_t i = 0; i < npages; i++)
			if (order[i] < nviews)
				order[j++] = order[i];
	}

	/* Tracked: map, fault, write some, sync, unmap in random order. */
	struct vmo_object *o = make_object(true);
	struct vmo_stats st;
	map_all(o, &v);
	fault_all(&v);
	double write_ns = write_some(v.addr, v.n, every);
	double sync_cpu, sync = sync_ms(o, v.n, every, &sync_cpu);
	vmo_object_stats(o, &st);
	unmap_all(o, &v, order);
	vmo_object_unref(o);

	struct views kv = kernel_views(v.n, order);

	/* The same sync with one view of the whole object: every page read in
	 * (so the object is as full as above), the same pages written (their
	 * word 1 first cleared in the pager, so the check means this sync). */
	for (size_t i = 0; i < v.n; i += every)
		((uint64_t *)(src + (size_t)page_of[i] * PG))[1] = 0;
	o = make_object(true);
	void *wv = NULL;
	if ((rc = vmo_map(o, 0, npages * PG, VMO_PROT_READ | VMO_PROT_WRITE, &wv)))
		map_failed("one view of the whole object", 0, rc);
	char *whole = wv;
	void **one = malloc(v.n * sizeof(void *));
	for (size_t i = 0; i < v.n; i++)
		one[i] = whole + (size_t)page_of[i] * PG;
	uint64_t sum = 0;
	for (size_t p = 0; p < npages; p++)
		sum += *(const volatile uint64_t *)(whole + p * PG);
	if (sum == 42)
		printf("#\n");
	write_some(one, v.n, every);
	double sync1_cpu, sync1 = sync_ms(o, v.n, every, &sync1_cpu);
	if ((rc = vmo_unmap(o, wv, npages * PG)))
		die("vmo_unmap", rc);
	vmo_object_unref(o);
	free(one);

	/* Untracked: the same without a write callback (no write-protect). */
	struct views u = { .n = nro, .addr = v.addr };
	if (nro) {
		o = make_object(false);
		map_all(o, &u);
		fault_all(&u);
		uint32_t *uorder = nro == nviews ? order : make_perm(nro, 778);
		unmap_all(o, &u, uorder);
		if (uorder != order)
			free(uorder);
		vmo_object_unref(o);
	}

	/* Fewer views, unmapped in the order they were mapped. */
	struct views s = { .n = nseq, .addr = v.addr }, ks = { 0 };
	if (nseq) {
		ks = kernel_views(nseq, NULL);
		o = make_object(true);
		map_all(o, &s);
		fault_all(&s);
		unmap_all(o, &s, NULL);
		vmo_object_unref(o);
	}

	printf("views=%zu\nmax_map_count=%lu\ndirty_every=%zu\n", v.n, max_maps, every);
	printf("map_ns_per_view=%.0f\n", v.map_ns);
	printf("map_growth=%.2f\n", v.map_growth);
	printf("fault_ns_per_view=%.0f\n", v.fault_ns);
	printf("write_ns_per_view=%.0f\n", write_ns);
	printf("sync_dirty_pages=%zu\n", (v.n + every - 1) / every);
	printf("sync_ms=%.1f\n", sync);
	printf("sync_one_view_ms=%.1f\n", sync1);
	printf("sync_over_one_view=%.2f\n", sync / sync1);
	printf("sync_cpu_ms=%.1f\n", sync_cpu);
	printf("sync_one_view_cpu_ms=%.1f\n", sync1_cpu);
	printf("sync_over_one_view_cpu=%.2f\n", sync_cpu / sync1_cpu);
	printf("unmap_ns_per_view=%.0f\n", v.unmap_ns);
	printf("unmap_growth=%.2f\n", v.unmap_growth);
	figure_target("unmap_over_map", 2, v.unmap_ns / v.map_ns, "<=", 2);
	printf("map_cpu_ns_per_view=%.0f\n", v.map_cpu_ns);
	printf("unmap_cpu_ns_per_view=%.0f\n", v.unmap_cpu_ns);
	printf("unmap_over_map_cpu=%.2f\n", v.unmap_cpu_ns / v.map_cpu_ns);
	printf("kernel_map_ns_per_view=%.0f\n", kv.map_ns);
	printf("kernel_map_growth=%.2f\n", kv.map_growth);
	printf("kernel_fault_ns_per_view=%.0f\n", kv.fault_ns);
	printf("kernel_unmap_ns_per_view=%.0f\n", kv.unmap_ns);
	printf("kernel_unmap_growth=%.2f\n", kv.unmap_growth);
	printf("kernel_unmap_over_map=%.2f\n", kv.unmap_ns / kv.map_ns);
	printf("map_over_kernel_map=%.2f\n", v.map_ns / kv.map_ns);
	printf("unmap_over_kernel_unmap=%.2f\n", v.unmap_ns / kv.unmap_ns);
	printf("kernel_map_cpu_ns_per_view=%.0f\n", kv.map_cpu_ns);
	printf("kernel_unmap_cpu_ns_per_view=%.0f\n", kv.unmap_cpu_ns);
	printf("kernel_unmap_over_map_cpu=%.2f\n", kv.unmap_cpu_ns / kv.map_cpu_ns);
	printf("unmap_over_kernel_unmap_cpu=%.2f\n", v.unmap_cpu_ns / kv.unmap_cpu_ns);
	printf("faults=%llu\nwp_faults=%llu\nwritebacks=%llu\n", (unsigned long long)st.faults,
	       (unsigned long long)st.wp_faults, (unsigned long long)st.writebacks);
	if (nro) {
		printf("untracked_views=%zu\n", u.n);
		printf("untracked_map_ns_per_view=%.0f\n", u.map_ns);
		printf("untracked_fault_ns_per_view=%.0f\n", u.fault_ns);
		printf("untracked_unmap_ns_per_view=%.0f\n", u.unmap_ns);
		printf("untracked_unmap_over_map=%.2f\n", u.unmap_ns / u.map_ns);
		printf("untracked_unmap_over_map_cpu=%.2f\n", u.unmap_cpu_ns / u.map_cpu_ns);
	}
	if (nseq) {
		printf("seq_views=%zu\n", s.n);
		printf("seq_map_ns_per_view=%.0f\n", s.map_ns);
		printf("seq_fault_ns_per_view=%.0f\n", s.fault_ns);
		printf("seq_unmap_ns_per_view=%.0f\n", s.unmap_ns);
		printf("seq_unmap_growth=%.2f\n", s.unmap_growth);
		printf("seq_unmap_over_map=%.2f\n", s.unmap_ns / s.map_ns);
		printf("seq_unmap_over_map_cpu=%.2f\n", s.unmap_cpu_ns / s.map_cpu_ns);
		printf("seq_kernel_unmap_cpu_ns_per_view=%.0f\n", ks.unmap_cpu_ns);
		printf("seq_kernel_unmap_growth=%.2f\n", ks.unmap_growth);
		printf("seq_unmap_over_kernel_unmap_cpu=%.2f\n", s.unmap_cpu_ns / ks.unmap_cpu_ns);
	}
	free(v.addr);
	if ((rc = vmo_engine_destroy(eng)))
		die("vmo_engine_destroy", rc);
	return 0;
}
