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

static char dir[64];

static void cleanup(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd))
		fprintf(stderr, "bench: could not remove %s\n", dir);
}

int main(void)
{
	int rounds = (int)env_ul("VMO_BENCH_ROUNDS", 9), ops = (int)env_ul("VMO_BENCH_OPS", 2000);
	char *buf = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(buf, 1, 65536);
	snprintf(dir, sizeof dir, "/dev/shm/vmo-bench-cache-XXXXXX");
	if (!mkdtemp(dir))
		die("mkdtemp", -errno);
	atexit(cleanup);
	struct vmo_cache *local;
	int rc = vmo_cache_create(&(struct vmo_cache_opts){ .flags = VMO_CACHE_NO_PRESSURE }, &local);
	if (rc)
		die("vmo_cache_create", rc);
	double l4 = pairs(local, buf, 4096, rounds, ops), l64 = pairs(local, buf, 65536, rounds, ops);
	vmo_cache_destroy(local);

	char vmod[512], sock[128], store[128];
	const char *env = getenv("VMOD");
	if (env && *env) {
		snprintf(vmod, sizeof vmod, "%s", env);
	} else {
		char self[400];
		ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
		self[n > 0 ? n : 0] = 0;
		char *s = strrchr(self, '/');
		if (s)
			*s = 0;
		snprintf(vmod, sizeof vmod, "%s/../vmod", self);
	}
	snprintf(sock, sizeof sock, "%s/vmod.sock", dir);
	snprintf(store, sizeof store, "%s/store", dir);
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		execl(vmod, "vmod", "--socket", sock, "--dir", store, "--log-level", "warn", (char *)NULL);
		_exit(127);
	}
	struct vmo_cache *remote = NULL;
	for (int i = 0; i < 400 && (rc = vmo_cache_connect(sock, 0, &remote)); i++)
		usleep(10000);
	if (rc) {
		kill(pid, SIGKILL);
		die("vmo_cache_connect to vmod (is it built? VMOD names it)", rc);
	}
	double r4 = pairs(remote, buf, 4096, rounds, ops), r64 = pairs(remote, buf, 65536, rounds, ops);
	vmo_cache_destroy(remote);
	kill(pid, SIGTERM);
	int st;
	waitpid(pid, &st, 0);
	printf("yield_get_4k_local_ns=%.0f\n", l4);
	printf("yield_get_4k_vmod_ns=%.0f\n", r4);
	printf("yield_get_4k_vmod_vs_local=%.1f\n", r4 / l4);
	printf("yield_get_64k_local_ns=%.0f\n", l64);
	printf("yield_get_64k_vmod_ns=%.0f\n", r64);
	printf("yield_get_64k_vmod_vs_local=%.1f\n", r64 / l64);
	return 0;
}
