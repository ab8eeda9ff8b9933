/* SPDX-License-Identifier: MIT */
/* calls: the memory calls `vmo run` interposes (tools/run/preload.c), each
 * with the kernel's semantics checked, in an unmodified program.  Run plain
 * and under `vmo run` by tests/test_run.sh; the two outputs must be equal.
 *
 *   calls [--churn MIB] [--timeout S] [CHECK...]   (no CHECK: all but "hugepage")
 *
 * Every mapping is at least 1 MiB (vmo run takes anonymous private ones of
 * 256 KiB or more).  Between filling a mapping and checking it, "churn"
 * writes a separate region of --churn MiB (default 16): with a budget below
 * that, the checked pages have been evicted to the store by then, so the
 * calls act on pages that are not resident.
 *
 * The program installs its own SIGSEGV and SIGBUS handler before anything
 * else (as programs with their own fault handling do); an access that must
 * fault is probed with it (sigsetjmp), and one that faults unexpectedly is a
 * failure with the address.  Each check prints "ok NAME" or "FAIL NAME: why";
 * exit 0 when all passed.  A check that hangs is stopped by alarm(2) after
 * --timeout seconds (default 60): "FAIL NAME: still running after S s", exit 3. */
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MiB (1ul << 20)
#define PAGE 4096ul

static sigjmp_buf probe_env;
static volatile sig_atomic_t probing, probe_sig;
static const char *current = "";
static size_t churn_mib = 16;
static unsigned timeout_s = 60;
static char *churn_mem;
static int failed;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (probing) {
		probe_sig = sig;
		siglongjmp(probe_env, 1);
	}
	char buf[160];
	int n = snprintf(buf, sizeof buf, "FAIL %s: unexpected signal %d at %p\n", current, sig, si->si_addr);
	ssize_t w = write(1, buf, (size_t)n);
	(void)w;
	_exit(4);
}

static void on_alarm(int sig)
{
	(void)sig;
	char buf[160];
	int n = snprintf(buf, sizeof buf, "FAIL %s: still running after %u s\n", current, timeout_s);
	ssize_t w = write(1, buf, (size_t)n);
	(void)w;
	_exit(3);
}

/* The signal an access to p raises (0: none). */
static int probe(volatile char *p, int write)
{
	probe_sig = 0;
	probing = 1;
	if (sigsetjmp(probe_env, 1) == 0) {
		if (write)
			*p = 1;
		else
			(void)*p;
	}
	probing = 0;
	return probe_sig;
}

static uint64_t pat(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void fill(void *p, size_t len, uint64_t seed)
{
	uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = pat(seed + i);
}

/* The first word of [p, p+len) that is not the pattern seeded at seed, or -1. */
static long bad_word(const void *p, size_t len, uint64_t seed)
{
	const uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != pat(seed + i))
			return (long)i;
	return -1;
}

static long nonzero_word(const void *p, size_t len)
{
	const uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		if (w[i])
			return (long)i;
	return -1;
}

static void churn(void)
{
	static uint64_t round;
	round++;
	for (size_t i = 0; i < churn_mib * MiB; i += PAGE)
		*(uint64_t *)(churn_mem + i) = round + i;
}

#define FAIL(...)                                          \
	do {                                               \
		printf("FAIL %s: ", current);              \
		printf(__VA_ARGS__);                       \
		printf("\n");                              \
		failed = 1;                                \
		return;                                    \
	} while (0)

static char *map(size_t len)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		printf("FAIL %s: mmap %zu MiB: %m\n", current, len / MiB);
		exit(1);
	}
	return p;
}

/* mremap: growth (MREMAP_MAYMOVE) keeps the bytes and adds zeros; a shrink
 * keeps the head and the tail is gone (an access faults). */
static void c_mremap(void)
{
	char *p = map(1 * MiB);
	fill(p, 1 * MiB, 1);
	churn();
	char *q = mremap(p, 1 * MiB, 16 * MiB, MREMAP_MAYMOVE);
	if (q == MAP_FAILED)
		FAIL("mremap 1 -> 16 MiB: %m");
	long b = bad_word(q, 1 * MiB, 1);
	if (b >= 0)
		FAIL("after growth, word %ld of the old bytes differs", b);
	if ((b = nonzero_word(q + 1 * MiB, 15 * MiB)) >= 0)
		FAIL("after growth, word %ld of the new part is not zero", b);
	fill(q, 16 * MiB, 2);
	churn();
	char *r = mremap(q, 16 * MiB, 2 * MiB, 0);
	if (r != q)
		FAIL("mremap 16 -> 2 MiB in place: %p (was %p)", (void *)r, (void *)q);
	if ((b = bad_word(r, 2 * MiB, 2)) >= 0)
		FAIL("after shrinking, word %ld differs", b);
	int sig = probe(r + 2 * MiB + PAGE, 0);
	if (sig != SIGSEGV)
		FAIL("reading past the shrunk end: signal %d, expected SIGSEGV", sig);
	/* growth again, of a mapping whose pages were evicted */
	churn();
	char *s = mremap(r, 2 * MiB, 24 * MiB, MREMAP_MAYMOVE);
	if (s == MAP_FAILED)
		FAIL("mremap 2 -> 24 MiB: %m");
	if ((b = bad_word(s, 2 * MiB, 2)) >= 0)
		FAIL("after the second growth, word %ld differs", b);
	if ((b = nonzero_word(s + 2 * MiB, 22 * MiB)) >= 0)
		FAIL("after the second growth, word %ld of the new part is not zero", b);
	munmap(s, 24 * MiB);
	printf("ok %s\n", current);
}

/* madvise(MADV_DONTNEED): the range reads as zeros after, the rest is kept. */
static void c_dontneed(void)
{
	char *p = map(4 * MiB);
	fill(p, 4 * MiB, 3);
	churn();
	if (madvise(p + 1 * MiB, 1 * MiB + 3 * PAGE, MADV_DONTNEED))
		FAIL("madvise: %m");
	long b = nonzero_word(p + 1 * MiB, 1 * MiB + 3 * PAGE);
	if (b >= 0)
		FAIL("word %ld of the dropped range is not zero", b);
	if ((b = bad_word(p, 1 * MiB, 3)) >= 0)
		FAIL("word %ld before the range differs", b);
	size_t after = 2 * MiB + 3 * PAGE;
	if ((b = bad_word(p + after, 4 * MiB - after, 3 + after / 8)) >= 0)
		FAIL("word %ld after the range differs", b);
	/* the dropped range is usable again */
	fill(p + 1 * MiB, 1 * MiB, 4);
	churn();
	if ((b = bad_word(p + 1 * MiB, 1 * MiB, 4)) >= 0)
		FAIL("rewritten range: word %ld differs", b);
	munmap(p, 4 * MiB);
	printf("ok %s\n", current);
}

/* madvise(MADV_FREE): each page reads as it was or as zeros (the kernel
 * may free it any time); a page written after keeps what was written. */
static void c_free(void)
{
	char *p = map(4 * MiB);
	fill(p, 4 * MiB, 5);
	churn();
	if (madvise(p + 1 * MiB, 2 * MiB, MADV_FREE))
		FAIL("madvise: %m");
	for (size_t off = 1 * MiB; off < 3 * MiB; off += PAGE)
		if (bad_word(p + off, PAGE, 5 + off / 8) >= 0 && nonzero_word(p + off, PAGE) >= 0)
			FAIL("page at +%zu KiB is neither its old bytes nor zeros", off >> 10);
	long b;
	if ((b = bad_word(p, 1 * MiB, 5)) >= 0 || (b = bad_word(p + 3 * MiB, 1 * MiB, 5 + 3 * MiB / 8)) >= 0)
		FAIL("outside the range, word %ld differs", b);
	fill(p + 1 * MiB, 2 * MiB, 6);
	churn();
	if ((b = bad_word(p + 1 * MiB, 2 * MiB, 6)) >= 0)
		FAIL("rewritten after MADV_FREE: word %ld differs", b);
	munmap(p, 4 * MiB);
	printf("ok %s\n", current);
}

/* munmap of part of a mapping: an access there faults (SIGSEGV), the rest
 * is kept. */
static void c_munmap(void)
{
	char *p = map(3 * MiB);
	fill(p, 3 * MiB, 7);
	churn();
	if (munmap(p + 1 * MiB, 1 * MiB))
		FAIL("munmap: %m");
	for (size_t off = 1 * MiB; off < 2 * MiB; off += 256 * 1024) {
		int sig = probe(p + off, 0);
		if (sig != SIGSEGV)
			FAIL("reading +%zu KiB after munmap: signal %d, expected SIGSEGV", off >> 10, sig);
		if ((sig = probe(p + off, 1)) != SIGSEGV)
			FAIL("writing +%zu KiB after munmap: signal %d, expected SIGSEGV", off >> 10, sig);
	}
	long b;
	if ((b = bad_word(p, 1 * MiB, 7)) >= 0 || (b = bad_word(p + 2 * MiB, 1 * MiB, 7 + 2 * MiB / 8)) >= 0)
		FAIL("the mapping's other parts: word %ld differs", b);
	munmap(p, 1 * MiB);
	munmap(p + 2 * MiB, 1 * MiB);
	printf("ok %s\n", current);
}

/* mmap(MAP_FIXED) anonymous over the middle of a mapping: zeros there, the
 * rest kept. */
static void c_fixed(void)
{
	char *p = map(4 * MiB);
	fill(p, 4 * MiB, 8);
	churn();
	char *q = mmap(p + 1 * MiB, 1 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (q != p + 1 * MiB)
		FAIL("mmap MAP_FIXED: %p, expected %p (%m)", (void *)q, (void *)(p + 1 * MiB));
	long b = nonzero_word(q, 1 * MiB);
	if (b >= 0)
		FAIL("word %ld of the new mapping is not zero", b);
	if ((b = bad_word(p, 1 * MiB, 8)) >= 0 || (b = bad_word(p + 2 * MiB, 2 * MiB, 8 + 2 * MiB / 8)) >= 0)
		FAIL("around the new mapping, word %ld differs", b);
	fill(q, 1 * MiB, 9);
	churn();
	if ((b = bad_word(q, 1 * MiB, 9)) >= 0)
		FAIL("the new mapping, written: word %ld differs", b);
	munmap(p, 4 * MiB);
	printf("ok %s\n", current);
}

/* mprotect(PROT_READ): reads see the data (also pages not resident, and
 * pages never touched: zeros), a write faults (SIGSEGV) and changes
 * nothing; back to read-write, writes work. */
static void c_mprotect(void)
{
	char *p = map(4 * MiB);
	fill(p, 2 * MiB, 10); /* the upper 2 MiB never touched */
	churn();
	if (mprotect(p, 4 * MiB, PROT_READ))
		FAIL("mprotect PROT_READ: %m");
	long b = bad_word(p, 2 * MiB, 10);
	if (b >= 0)
		FAIL("read-only: word %ld differs", b);
	if ((b = nonzero_word(p + 2 * MiB, 2 * MiB)) >= 0)
		FAIL("read-only, never written: word %ld is not zero", b);
	int sig;
	if ((sig = probe(p + 5 * PAGE, 1)) != SIGSEGV && sig != SIGBUS)
		FAIL("a write to a read-only page: signal %d, expected SIGSEGV", sig);
	if ((sig = probe(p + 3 * MiB, 1)) != SIGSEGV && sig != SIGBUS)
		FAIL("a write to a read-only page never written: signal %d, expected SIGSEGV", sig);
	if ((b = bad_word(p, 2 * MiB, 10)) >= 0)
		FAIL("after the refused writes: word %ld differs", b);
	if (mprotect(p, 4 * MiB, PROT_READ | PROT_WRITE))
		FAIL("mprotect PROT_READ|PROT_WRITE: %m");
	fill(p, 4 * MiB, 11);
	churn();
	if ((b = bad_word(p, 4 * MiB, 11)) >= 0)
		FAIL("read-write again: word %ld differs", b);
	/* PROT_NONE: even a read faults */
	if (mprotect(p, 1 * MiB, PROT_NONE))
		FAIL("mprotect PROT_NONE: %m");
	if ((sig = probe(p + PAGE, 0)) != SIGSEGV)
		FAIL("a read of a PROT_NONE page: signal %d, expected SIGSEGV", sig);
	munmap(p, 4 * MiB);
	printf("ok %s\n", current);
}

/* realloc of big blocks, growing and shrinking: the bytes kept. */
static void c_realloc(void)
{
	size_t len = 1 * MiB;
	char *p = malloc(len);
	if (!p)
		FAIL("malloc: %m");
	fill(p, len, 12);
	const size_t sizes[] = { 3 * MiB, 7 * MiB, 13 * MiB, 2 * MiB, 6 * MiB };
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		size_t nlen = sizes[k];
		churn();
		char *q = realloc(p, nlen);
		if (!q)
			FAIL("realloc to %zu MiB: %m", nlen / MiB);
		p = q;
		size_t keep = len < nlen ? len : nlen;
		long b = bad_word(p, keep, 12);
		if (b >= 0)
			FAIL("realloc %zu -> %zu MiB: word %ld differs", len / MiB, nlen / MiB, b);
		if (nlen > len)
			fill(p + len, nlen - len, 12 + len / 8);
		len = nlen;
	}
	free(p);
	/* many big blocks at once, freed in another order, allocated again */
	char *blk[24];
	for (int i = 0; i < 24; i++) {
		blk[i] = malloc((size_t)(i % 6 + 1) * 512 * 1024);
		if (!blk[i])
			FAIL("malloc: %m");
		fill(blk[i], (size_t)(i % 6 + 1) * 512 * 1024, 100 + (uint64_t)i * 1000000);
	}
	churn();
	for (int i = 0; i < 24; i += 2)
		free(blk[i]);
	for (int i = 1; i < 24; i += 2) {
		long b = bad_word(blk[i], (size_t)(i % 6 + 1) * 512 * 1024, 100 + (uint64_t)i * 1000000);
		if (b >= 0)
			FAIL("block %d: word %ld differs", i, b);
		free(blk[i]);
	}
	printf("ok %s\n", current);
}

/* madvise(MADV_HUGEPAGE) on a mapping, then writes (numpy does this for
 * every array of 4 MiB or more): the writes finish and are kept. */
static void c_hugepage(void)
{
	char *p = map(8 * MiB);
	madvise(p, 8 * MiB, MADV_HUGEPAGE); /* (EINVAL without THP: fine) */
	fill(p, 8 * MiB, 13);
	churn();
	long b = bad_word(p, 8 * MiB, 13);
	if (b >= 0)
		FAIL("word %ld differs", b);
	munmap(p, 8 * MiB);
	printf("ok %s\n", current);
}

static const struct {
	const char *name;
	void (*fn)(void);
	int by_default;
} checks[] = {
	{ "mremap", c_mremap, 1 },     { "dontneed", c_dontneed, 1 }, { "free", c_free, 1 },
	{ "munmap", c_munmap, 1 },     { "fixed", c_fixed, 1 },       { "mprotect", c_mprotect, 1 },
	{ "realloc", c_realloc, 1 },   { "hugepage", c_hugepage, 0 },
};
#define NCHECKS (sizeof checks / sizeof checks[0])

int main(int argc, char **argv)
{
	/* the program's own handlers, before anything else */
	struct sigaction sa = { .sa_sigaction = on_fault, .sa_flags = SA_SIGINFO | SA_NODEFER };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	signal(SIGALRM, on_alarm);
	setvbuf(stdout, NULL, _IOLBF, 0);
	int i = 1;
	for (; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
		if (!strcmp(argv[i], "--churn")) {
			churn_mib = strtoul(argv[i + 1], NULL, 10);
		} else if (!strcmp(argv[i], "--timeout")) {
			timeout_s = (unsigned)strtoul(argv[i + 1], NULL, 10);
		} else {
			fprintf(stderr, "calls: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	churn_mem = map((churn_mib ? churn_mib : 1) * MiB);
	int ran = 0;
	for (size_t k = 0; k < NCHECKS; k++) {
		int want = i == argc ? checks[k].by_default : 0;
		for (int j = i; j < argc; j++)
			want |= !strcmp(argv[j], checks[k].name);
		if (!want)
			continue;
		current = checks[k].name;
		alarm(timeout_s);
		checks[k].fn();
		alarm(0);
		ran++;
	}
	for (int j = i; j < argc; j++) {
		size_t k = 0;
		while (k < NCHECKS && strcmp(argv[j], checks[k].name))
			k++;
		if (k == NCHECKS) {
			fprintf(stderr, "calls: no check named %s\n", argv[j]);
			return 2;
		}
	}
	printf("%d checks, %s\n", ran, failed ? "FAILED" : "all passed");
	return failed;
}
