/* SPDX-License-Identifier: MIT */
/* bench/lib/common.h - shared by the benchmarks (built once, as the static
 * library vmo_benchutil, from bench/lib/common.c): timing, medians, data,
 * and the floor: a minimal userfaultfd handler (one thread, blocking read,
 * UFFDIO_COPY of one page from RAM, nothing else).
 *
 * now_ns and xorshift stay inline here: the benchmarks call them inside
 * their timed loops, where an out-of-line call would add to the figures. */
#ifndef VMO_BENCH_COMMON_H
#define VMO_BENCH_COMMON_H

#include "vmo.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define PG 4096ul

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
	return *x;
}

/* ---- figures with a target ------------------------------------------------
 *
 * A figure with a target prints three lines:
 *
 *   KEY=VALUE
 *   KEY_target=<=T   (lower is better: met when VALUE <= T)  or  >=T (higher)
 *   KEY_status=met   or  KEY_status=missed
 *
 * The direction is part of the target's value, so a reader (bench/run's
 * summary, bench/plot) needs nothing but the output.  VALUE is compared as
 * printed (rounded to `decimals`), so what a reader checks by eye agrees. */
void figure_target(const char *key, int decimals, double value, const char *dir, double target);

/* ---- latency samples and percentiles ---------------------------------------
 *
 * One sample per operation (ns), stored into room allocated beforehand so
 * that adding one in a timed loop is a store and an increment.  Timing each
 * operation costs two clock reads (timer_overhead_ns says how much: it is in
 * every sample), so the benchmarks take percentiles in a pass of their own,
 * beside the untimed runs their means come from. */
struct samples {
	uint64_t *v;
	size_t n, cap;
};

void samples_init(struct samples *s, size_t cap);
void samples_free(struct samples *s);

static inline void samples_add(struct samples *s, uint64_t ns)
{
	if (s->n < s->cap)
		s->v[s->n++] = ns;
}

/* The q-quantile (0 < q <= 1, nearest rank) of s; sorts s->v. */
uint64_t samples_quantile(struct samples *s, double q);

/* Prints KEY_p50_ns, KEY_p99_ns, KEY_max_ns, KEY_mean_ns (the pass's own
 * mean: beside the percentiles, it shows how much of it the tail is) and
 * KEY_samples; and, when
 * VMO_BENCH_SAMPLES names a directory, writes the samples into
 * DIR/PROGRAM.KEY.ns, one number (ns) a line, in the order taken (for
 * bench/plot).  Sorts s->v (the file is written first). */
void samples_report(struct samples *s, const char *key);

/* The cost of one now_ns() pair with nothing between: the floor of every
 * sample (median of many, ns). */
uint64_t timer_overhead_ns(void);

/* "bench: WHAT: <vmo_strerror(err)>" on stderr, then exit(1). */
_Noreturn void die(const char *what, int err);

/* The median of v[0..n) (sorts v). */
double median(double *v, int n);

/* The environment variable NAME as a number (strtoul base 0), or def when
 * unset or empty. */
unsigned long env_ul(const char *name, unsigned long def);

/* npages of random data in RAM. */
char *make_data(size_t npages, uint64_t seed);

/* A random permutation of 0..n-1 (malloc'd). */
uint32_t *make_perm(size_t n, uint64_t seed);

/* An object over the memory pager serving npages of src; untracked (the
 * pager without its write callback) unless tracked.  Dies on any error. */
struct vmo_object *bench_mem_create(struct vmo_engine *eng, char *src, size_t npages,
				    const struct vmo_object_opts *oo, bool tracked);

/* The same, tracked, mapped read-write at *base. */
struct vmo_object *bench_mem_object(struct vmo_engine *eng, char *src, size_t npages,
				    const struct vmo_object_opts *oo, void **base);

/* The floor: touch (read one word of) pages order[0..n) of a fresh region of
 * npages served by a minimal userfaultfd handler from src; returns ns per
 * touch. */
double run_floor(const char *src, size_t npages, const uint32_t *order, size_t n);
/* The same, each touch timed into lat (its percentile pass). */
double run_floor_timed(const char *src, size_t npages, const uint32_t *order, size_t n, struct samples *lat);

/* The kernel's batched fill: every page of a fresh memfd mapping (shmem, as
 * vmo's objects) touched in order, a minimal handler answering each fault
 * with one UFFDIO_COPY of run pages; ns per page. */
double run_copy_runs(const char *src, size_t npages, size_t run);

/* The self-service floor: the same touches, each fault a SIGBUS that the
 * faulting thread answers itself with one UFFDIO_COPY (UFFD_FEATURE_SIGBUS);
 * -1 where the kernel lacks it. */
double run_floor_sigbus(const char *src, size_t npages, const uint32_t *order, size_t n);
double run_floor_sigbus_timed(const char *src, size_t npages, const uint32_t *order, size_t n, struct samples *lat);

/* memcpy of npages from src into memory already mapped and written once
 * (the second of two copies); ns per page. */
double run_memcpy(const char *src, size_t npages);
/* The same bytes written into a fresh memfd in 2 MiB pwrites: the copy and
 * the allocation of its folios (large ones where shmem gives them), no
 * fault and no handler; ns per page. */
double run_memfd_write(const char *src, size_t npages);

/* The real vmod, for the benchmarks that go through it: a fresh directory
 * under /dev/shm (removed at exit) holds its store and socket; the binary is
 * $VMOD, else ../vmod from this program's directory.  Returns vmod's pid;
 * the socket's path goes into sock.  bench_stop_vmod: SIGTERM, wait. */
int bench_start_vmod(char *sock, size_t socklen);
void bench_stop_vmod(int pid);

#endif
