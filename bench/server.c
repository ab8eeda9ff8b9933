/* SPDX-License-Identifier: MIT */
/* bench/server: the same work through vmod and in this process.
 *
 * vmod (the real daemon, started here on a store directory in /dev/shm with
 * a socket of its own) serves an object that is a file of its store; the
 * baseline is this process's engine serving the same kind of object (the
 * file pager on a file in the same tmpfs), measured in the same run.
 *
 *   random first touch: NPAGES pages read once each in random order, each a
 *     fault served (through vmod: by vmod's workers, in this process's
 *     address space through its adopted userfaultfd); target <= 1.3x;
 *   sequential scan: every page in order (read-ahead in both);
 *   sync of 1 MiB: 256 pages written, then vmo_sync(VMO_WAIT) (through vmod:
 *     one request, the writeback there), the median of ROUNDS.
 *
 * Environment: VMO_BENCH_PAGES (default 32768), VMO_BENCH_ROUNDS (20),
 * VMOD (the vmod binary; default: next to this program's directory). */
#include "lib/common.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static size_t npages;
static int rounds;

struct run {
	double random_ns, seq_ns, sync_us;
};

/* The three figures on object o (fresh: nothing resident). */
static void measure(struct vmo_object *o, struct run *r, const uint32_t *perm)
{
	volatile char *p;
	size_t len = npages * PG;
	int rc = vmo_map(o, 0, len, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&p);
	if (rc)
		die("vmo_map", rc);
	uint64_t sum = 0, t0 = now_ns();
	for (size_t i = 0; i < npages; i++)
		sum += p[(size_t)perm[i] * PG];
	r->random_ns = (double)(now_ns() - t0) / (double)npages;
	if ((rc = vmo_return(o, VMO_WAIT)))
		die("vmo_return", rc);
	t0 = now_ns();
	for (size_t i = 0; i < npages; i++)
		sum += p[i * PG];
	r->seq_ns = (double)(now_ns() - t0) / (double)npages;
	double *v = calloc((size_t)rounds, sizeof *v);
	for (int k = 0; k < rounds; k++) {
		for (size_t i = 0; i < 256; i++)
			p[(((size_t)k * 256 + i) % npages) * PG] = (char)(k + 1);
		t0 = now_ns();
		if ((rc = vmo_sync(o, VMO_WAIT)))
			die("vmo_sync", rc);
		v[k] = (double)(now_ns() - t0) / 1e3;
	}
	r->sync_us = median(v, rounds);
	free(v);
	if (sum == 42)
		fputc(' ', stderr);
	vmo_unmap(o, (void *)p, len);
}

int main(void)
{
	npages = env_ul("VMO_BENCH_PAGES", 32768);
	rounds = (int)env_ul("VMO_BENCH_ROUNDS", 20);
	uint32_t *perm = make_perm(npages, 7);
	/* In this process: the file pager on a tmpfs file. */
	char path[] = "/dev/shm/vmo-bench-server-XXXXXX";
	int fd = mkstemp(path);
	if (fd >= 0)
		unlink(path);
	if (fd < 0 || ftruncate(fd, (off_t)(npages * PG)))
		die("local store file", -errno);
	struct vmo_engine *eng;
	int rc = vmo_engine_create(NULL, &eng);
	if (rc)
		die("vmo_engine_create", rc);
	const struct vmo_pager_ops *ops;
	void *ctx;
	if ((rc = vmo_pager_file(fd, 0, &ops, &ctx)))
		die("vmo_pager_file", rc);
	struct vmo_object *o;
	struct vmo_object_opts oo = { .size = npages * PG };
	if ((rc = vmo_object_create(eng, ops, ctx, &oo, &o)))
		die("vmo_object_create", rc);
	struct run local;
	measure(o, &local, perm);
	vmo_object_unref(o);
	vmo_engine_destroy(eng);
	close(fd);

	/* Through vmod. */
	char sock[128];
	int pid = bench_start_vmod(sock, sizeof sock);
	struct vmo_client *cl;
	if ((rc = vmo_client_connect(sock, &cl)))
		die("vmo_client_connect", rc);
	if ((rc = vmo_client_open(cl, "bench", VMO_OPEN_RDWR | VMO_OPEN_CREATE, npages * PG, 0, &o)))
		die("vmo_client_open", rc);
	struct run remote;
	measure(o, &remote, perm);
	vmo_object_unref(o);
	vmo_client_close(cl);
	bench_stop_vmod(pid);

	printf("pages=%zu\n", npages);
	printf("random_touch_local_ns=%.0f\n", local.random_ns);
	printf("random_touch_vmod_ns=%.0f\n", remote.random_ns);
	figure_target("random_touch_vmod_vs_local", 2, remote.random_ns / local.random_ns, "<=", 1.3);
	printf("seq_scan_local_ns_per_page=%.0f\n", local.seq_ns);
	printf("seq_scan_vmod_ns_per_page=%.0f\n", remote.seq_ns);
	printf("seq_scan_vmod_vs_local=%.2f\n", remote.seq_ns / local.seq_ns);
	printf("sync_1mib_local_us=%.0f\n", local.sync_us);
	printf("sync_1mib_vmod_us=%.0f\n", remote.sync_us);
	printf("sync_1mib_vmod_vs_local=%.2f\n", remote.sync_us / local.sync_us);
	free(perm);
	return 0;
}
