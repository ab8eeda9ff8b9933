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

/* The kernel's batched fill: every page of a fresh memfd mapping (shmem, as
 * vmo's objects) touched in order, a minimal handler answering each fault
 * with one UFFDIO_COPY of run pages; ns per page. */
double run_copy_runs(const char *src, size_t npages, size_t run);

/* The self-service floor: the same touches, each fault a SIGBUS that the
 * faulting thread answers itself with one UFFDIO_COPY (UFFD_FEATURE_SIGBUS);
 * -1 where the kernel lacks it. */
double run_floor_sigbus(const char *src, size_t npages, const uint32_t *order, size_t n);

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
