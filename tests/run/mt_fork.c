/* SPDX-License-Identifier: MIT */
/* mt_fork: a multi-threaded program that forks and execs, unmodified, for
 * tests/test_run.sh (run plain and under `vmo run`; the outputs must be equal).
 *
 *   mt_fork [MIB]          (default 32)
 *
 * Half of MIB is heap (malloc'd blocks of 4 KiB to 1 MiB), half two large
 * anonymous mmaps.  Four threads write a pattern over all of it (each its
 * own pages, interleaved), and the parent checks it.  Then, while a fifth
 * thread keeps writing a buffer of its own:
 *   - fork: the parent writes generation 2 over everything and only then
 *     lets the child look; the child must see generation 1 (its copy as of
 *     the fork), writes generation 3 over its copy and checks it; the
 *     parent, after the child exits, must still see generation 2;
 *   - fork + exec /bin/echo, and fork + exec of this program itself
 *     ("mt_fork --exec-child": a small job of its own), each waited for.
 * Lines on stdout say what was checked; exit 0 when everything held. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define MiB (1ul << 20)
#define PAGE 4096ul
#define NTHREADS 4

struct region {
	uint64_t *w;
	size_t words;
	uint64_t id;
};

static struct region *reg;
static size_t nreg;

static uint64_t pat(uint64_t region, size_t i, unsigned gen)
{
	uint64_t x = region * 0x100000001b3ull + i * 0x9e3779b97f4a7c15ull + gen * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

struct job {
	int t;
	unsigned gen;
	int check; /* 0: write, 1: check */
	long bad;
};

/* Thread t owns the pages p of every region with p % NTHREADS == t. */
static void *worker(void *arg)
{
	struct job *j = arg;
	for (size_t r = 0; r < nreg; r++) {
		struct region *g = &reg[r];
		for (size_t i = 0; i < g->words; i++) {
			if ((i / (PAGE / 8)) % NTHREADS != (size_t)j->t)
				continue;
			uint64_t v = pat(g->id, i, j->gen);
			if (!j->check)
				g->w[i] = v;
			else if (g->w[i] != v)
				j->bad++;
		}
	}
	return NULL;
}

/* All regions written (check 0) or checked (1) with generation gen, by
 * NTHREADS threads; the number of words that differ. */
static long pass(unsigned gen, int check)
{
	pthread_t th[NTHREADS];
	struct job jobs[NTHREADS];
	for (int t = 0; t < NTHREADS; t++) {
		jobs[t] = (struct job){ t, gen, check, 0 };
		if (pthread_create(&th[t], NULL, worker, &jobs[t])) {
			perror("pthread_create");
			exit(1);
		}
	}
	long bad = 0;
	for (int t = 0; t < NTHREADS; t++) {
		pthread_join(th[t], NULL);
		bad += jobs[t].bad;
	}
	return bad;
}

static atomic_int stop;
static void *busy(void *arg)
{
	uint64_t *b = arg;
	for (uint64_t n = 0; !atomic_load(&stop); n++)
		b[(n * 512) % (2 * MiB / 8)] = n;
	return NULL;
}

static int run_child(char *const argv[])
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return -1;
	}
	if (pid == 0) {
		execv(argv[0], argv);
		perror(argv[0]);
		_exit(127);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int exec_child(void)
{
	/* a job of its own: 8 MiB of heap and 8 MiB of mmap, written and checked */
	size_t n = 8 * MiB / 8;
	uint64_t *a = malloc(n * 8);
	uint64_t *b = mmap(NULL, n * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!a || b == MAP_FAILED)
		return 1;
	for (size_t i = 0; i < n; i++) {
		a[i] = pat(1000, i, 7);
		b[i] = pat(1001, i, 7);
	}
	long bad = 0;
	for (size_t i = 0; i < n; i++)
		bad += (a[i] != pat(1000, i, 7)) + (b[i] != pat(1001, i, 7));
	printf("exec child: 16 MiB written and read back, %ld words differ\n", bad);
	return bad != 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1 && !strcmp(argv[1], "--exec-child"))
		return exec_child();
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 32;
	if (mib < 4) {
		fprintf(stderr, "usage: mt_fork [MIB >= 4]\n");
		return 2;
	}
	int failed = 0;
	/* heap: blocks of 4 KiB .. 1 MiB, up to mib/2 */
	size_t heap = mib * MiB / 2, got = 0, sizes[] = { 4096, 65536, 1 * MiB, 24576, 262144, 524288 };
	reg = calloc(heap / 4096 + 3, sizeof *reg);
	for (size_t k = 0; got < heap; k++) {
		size_t len = sizes[k % 6] < heap - got ? sizes[k % 6] : heap - got;
		len &= ~7ul;
		if (!len)
			break;
		uint64_t *p = malloc(len);
		if (!p) {
			perror("malloc");
			return 1;
		}
		reg[nreg] = (struct region){ p, len / 8, nreg };
		nreg++;
		got += len;
	}
	size_t heap_blocks = nreg;
	for (int m = 0; m < 2; m++) {
		size_t len = mib * MiB / 4;
		uint64_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
		reg[nreg] = (struct region){ p, len / 8, nreg };
		nreg++;
	}
	printf("%zu MiB: %zu heap blocks, 2 mmaps, %d threads\n", mib, heap_blocks, NTHREADS);
	pass(1, 0);
	long bad = pass(1, 1);
	printf("generation 1 written by %d threads: %ld words differ\n", NTHREADS, bad);
	failed |= bad != 0;

	/* a thread running through the forks */
	uint64_t *bb = malloc(2 * MiB);
	pthread_t bt;
	pthread_create(&bt, NULL, busy, bb);

	int go[2], done[2];
	if (pipe(go) || pipe(done))
		return 1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		char c;
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(1);
		long b1 = pass(1, 1);
		pass(3, 0);
		long b3 = pass(3, 1);
		printf("fork child: sees generation 1 (as of the fork): %ld words differ; its generation 3: %ld differ\n",
		       b1, b3);
		fflush(stdout);
		_exit(b1 || b3);
	}
	close(go[0]);
	pass(2, 0); /* after the fork, before the child looks */
	if (write(go[1], "x", 1) != 1)
		return 1;
	int st;
	waitpid(pid, &st, 0);
	int crc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	printf("fork child: exit %d\n", crc);
	failed |= crc != 0;
	bad = pass(2, 1);
	printf("parent after the child: generation 2: %ld words differ\n", bad);
	failed |= bad != 0;

	char *echo[] = { "/bin/echo", "exec of /bin/echo from a fork", NULL };
	int rc = run_child(echo);
	printf("/bin/echo: exit %d\n", rc);
	failed |= rc != 0;
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return 1;
	self[n] = 0;
	char *me[] = { self, "--exec-child", NULL };
	rc = run_child(me);
	printf("exec of itself: exit %d\n", rc);
	failed |= rc != 0;

	atomic_store(&stop, 1);
	pthread_join(bt, NULL);
	bad = pass(2, 1);
	printf("parent at the end: generation 2: %ld words differ\n", bad);
	failed |= bad != 0;
	printf("%s\n", failed ? "FAILED" : "all held");
	return failed;
}
