/* SPDX-License-Identifier: MIT */
/* bench/lib/threads_forkexec.c - the multi-threaded C program with fork+exec
 * that bench/programs runs unlimited, under `vmo run` and in a memory cgroup
 * (a helper program, not a benchmark: bench/run does not run it itself).
 *
 *   threads_forkexec MIB THREADS ROUNDS FORKS
 *
 * The parent mallocs one table of MIB MiB (through the program's malloc:
 * under vmo run, jemalloc's extents in vmo segments) and splits it between
 * THREADS threads.  Each thread fills its slice from a seeded generator, then
 * for each of ROUNDS rounds: rewrites every word of its slice in order (every
 * page read and dirtied) and reads 4096 words at random places; FORKS times
 * over the rounds (spread evenly) it forks and execs this program as a child
 * (`threads_forkexec --child`) to which it writes 256 KiB of its slice
 * through a pipe; the child prints a hash of what it read, and the thread
 * folds that into its own.  So threads fork while the others keep writing the
 * table (after each fork every page of the table is copy-on-write again: the
 * next pass takes a write fault on each), and every child is a fresh exec
 * (under vmo run, a program of its own with a budget of its own; its memory
 * is small).
 * The output, one line per thread in thread order, is the same at every run
 * with the same arguments. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHUNK (256u << 10)

static uint64_t *table;
static size_t words_per_thread;
static unsigned rounds, forks;
static char self[4096];

struct worker {
	pthread_t tid;
	unsigned idx;
	uint64_t hash;
	int err;
};

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdull;
}

static uint64_t xs(uint64_t *x)
{
	*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
	return *x;
}

/* The child's side: FNV-1a over stdin, printed in hex. */
static int child(void)
{
	static unsigned char buf[65536];
	uint64_t h = 0xcbf29ce484222325ull;
	size_t total = 0;
	for (;;) {
		ssize_t n = read(0, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perror("threads_forkexec --child: read");
			return 1;
		}
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			h = (h ^ buf[i]) * 0x100000001b3ull;
		total += (size_t)n;
	}
	printf("%016" PRIx64 " %zu\n", h, total);
	return 0;
}

/* Fork and exec the child, feed it len bytes of p, read back its line and
 * fold it into *h.  Pipes are close-on-exec so that a child another thread
 * forks at the same moment does not hold them open. */
static int run_child(const void *p, size_t len, uint64_t *h)
{
	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC))
		return -errno;
	if (pipe2(out, O_CLOEXEC)) {
		int e = -errno;
		close(in[0]), close(in[1]);
		return e;
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = -errno;
		close(in[0]), close(in[1]), close(out[0]), close(out[1]);
		return e;
	}
	if (pid == 0) {
		/* only async-signal-safe calls between fork and exec */
		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
			_exit(126);
		char *const argv[] = { self, "--child", NULL };
		execv(self, argv);
		_exit(127);
	}
	close(in[0]), close(out[1]);
	int rc = 0;
	const char *c = p;
	for (size_t done = 0; done < len;) {
		ssize_t n = write(in[1], c + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		done += (size_t)n;
	}
	close(in[1]);
	char line[128];
	size_t got = 0;
	for (;;) {
		ssize_t n = read(out[0], line + got, sizeof line - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == sizeof line - 1)
			break;
	}
	line[got] = 0;
	close(out[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (rc)
		return rc;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || got == 0)
		return -ECHILD;
	uint64_t ch = strtoull(line, NULL, 16);
	*h = mix(*h, ch);
	return 0;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	uint64_t *s = table + (size_t)w->idx * words_per_thread;
	size_t n = words_per_thread;
	uint64_t x = 0x2545f4914f6cdd1dull * (w->idx + 1), h = w->idx;
	for (size_t i = 0; i < n; i++)
		s[i] = xs(&x);
	for (unsigned r = 0; r < rounds; r++) {
		for (size_t i = 0; i < n; i++)
			s[i] = s[i] * 6364136223846793005ull + r;
		for (unsigned k = 0; k < 4096; k++)
			h = mix(h, s[xs(&x) % n]);
		if ((uint64_t)(r + 1) * forks / rounds == (uint64_t)r * forks / rounds)
			continue;
		size_t bytes = n * 8 < CHUNK ? n * 8 : CHUNK;
		size_t off = (size_t)r * 4096 % (n * 8 - bytes + 1);
		int rc = run_child((char *)s + off, bytes, &h);
		if (rc) {
			w->err = rc;
			return NULL;
		}
	}
	w->hash = h;
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "--child"))
		return child();
	if (argc != 5) {
		fprintf(stderr, "usage: threads_forkexec MIB THREADS ROUNDS FORKS (or --child: hash stdin)\n");
		return 2;
	}
	size_t mib = strtoul(argv[1], NULL, 0);
	unsigned nt = (unsigned)strtoul(argv[2], NULL, 0);
	rounds = (unsigned)strtoul(argv[3], NULL, 0);
	forks = (unsigned)strtoul(argv[4], NULL, 0);
	if (mib == 0 || nt == 0 || nt > 256 || rounds == 0 || forks > rounds) {
		fprintf(stderr, "threads_forkexec: MIB and ROUNDS must be > 0, THREADS from 1 to 256, FORKS at most ROUNDS\n");
		return 2;
	}
	ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
	if (k <= 0) {
		perror("threads_forkexec: readlink /proc/self/exe");
		return 1;
	}
	self[k] = 0;
	words_per_thread = (mib << 20) / 8 / nt;
	table = malloc(words_per_thread * nt * 8);
	if (!table) {
		fprintf(stderr, "threads_forkexec: malloc of %zu MiB failed\n", mib);
		return 1;
	}
	struct worker *w = calloc(nt, sizeof *w);
	if (!w)
		return 1;
	for (unsigned i = 0; i < nt; i++) {
		w[i].idx = i;
		int rc = pthread_create(&w[i].tid, NULL, work, &w[i]);
		if (rc) {
			fprintf(stderr, "threads_forkexec: pthread_create: %s\n", strerror(rc));
			return 1;
		}
	}
	int bad = 0;
	for (unsigned i = 0; i < nt; i++) {
		pthread_join(w[i].tid, NULL);
		if (w[i].err) {
			fprintf(stderr, "threads_forkexec: thread %u: a child failed: %s\n", i, strerror(-w[i].err));
			bad = 1;
		}
	}
	for (unsigned i = 0; i < nt; i++)
		printf("thread %u: %016" PRIx64 "\n", i, w[i].hash);
	free(w);
	free(table);
	return bad;
}
