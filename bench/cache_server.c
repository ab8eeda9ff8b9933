/* SPDX-License-Identifier: MIT */
/* bench/cache_server: yield + get of one block through vmod's system-wide
 * cache against the same through a cache in this process, for 4 KiB and
 * 64 KiB blocks (the median ns per yield+get pair of ROUNDS batches).
 *
 * vmod is the real daemon, started here on a store in /dev/shm with a
 * socket of its own.  Environment: VMO_BENCH_ROUNDS (default 9),
 * VMO_BENCH_OPS (pairs per batch, default 2000), VMOD (the binary;
 * default: next to this program's directory). */
#include "lib/common.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static double pairs(struct vmo_cache *c, char *buf, size_t len, int rounds, int ops)
{
	double *v = calloc((size_t)rounds, sizeof *v);
	for (int r = 0; r < rounds; r++) {
		uint64_t t0 = now_ns();
		for (int i = 0; i < ops; i++) {
			buf[0] = (char)i;
			int rc = vmo_cache_yield(c, (uint64_t)i, buf, len);
			if (rc)
				die("vmo_cache_yield", rc);
			if ((rc = vmo_cache_get(c, (uint64_t)i, buf, len)))
				die("vmo_cache_get", rc);
			if (buf[0] != (char)i)
				die("the block came back wrong", -EIO);
		}
		v[r] = (double)(now_ns() - t0) / ops;
	}
	double m = median(v, rounds);
	free(v);
	return m;
}

int main(void)
{
	int rounds = (int)env_ul("VMO_BENCH_ROUNDS", 9), ops = (int)env_ul("VMO_BENCH_OPS", 2000);
	char *buf = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(buf, 1, 65536);
	struct vmo_cache *local;
	int rc = vmo_cache_create(&(struct vmo_cache_opts){ .flags = VMO_CACHE_NO_PRESSURE }, &local);
	if (rc)
		die("vmo_cache_create", rc);
	double l4 = pairs(local, buf, 4096, rounds, ops), l64 = pairs(local, buf, 65536, rounds, ops);
	vmo_cache_destroy(local);

	char sock[128];
	int pid = bench_start_vmod(sock, sizeof sock);
	struct vmo_cache *remote;
	if ((rc = vmo_cache_connect(sock, 0, &remote)))
		die("vmo_cache_connect", rc);
	double r4 = pairs(remote, buf, 4096, rounds, ops), r64 = pairs(remote, buf, 65536, rounds, ops);
	vmo_cache_destroy(remote);
	bench_stop_vmod(pid);
	printf("yield_get_4k_local_ns=%.0f\n", l4);
	printf("yield_get_4k_vmod_ns=%.0f\n", r4);
	printf("yield_get_4k_vmod_vs_local=%.1f\n", r4 / l4);
	printf("yield_get_64k_local_ns=%.0f\n", l64);
	printf("yield_get_64k_vmod_ns=%.0f\n", r64);
	printf("yield_get_64k_vmod_vs_local=%.1f\n", r64 / l64);
	return 0;
}
