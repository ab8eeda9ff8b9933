/* SPDX-License-Identifier: MIT */
/* test_umap: libvmo-umap, UMap's C API on vmo, built against the compat
 * header alone (umap/umap.h; no vmo.h), with UMap's environment variables
 * set before the first call:
 *   - the umapcfg_* getters report them;
 *   - a read-only region of a file bigger than the buffer (UMAP_BUFSIZE),
 *     read by two threads: every word right;
 *   - the offset is honoured (UMap ignores it: a documented difference);
 *   - a read-write region: writes reach the file on umap_flush (seen with
 *     pread), and the rest on uunmap;
 *   - umap_prefetch, then the pages read right;
 *   - umap_fetch_and_pin: the pinned pages stay resident (mincore) while the
 *     rest of the region is read through a buffer much smaller than it;
 *   - bad arguments: UMAP_FAILED / -1 with errno EINVAL;
 *   - fork: a child touching the region dies by SIGSEGV, never reads zeros.
 * Exit 77 where userfaultfd cannot be had. */
#include "umap/umap.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		fprintf(stderr, "test_umap:%d: ", __LINE__);                                       \
		fprintf(stderr, __VA_ARGS__);                                                      \
		fputc('\n', stderr);                                                               \
		exit(1);                                                                           \
	} while (0)
#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			FAIL("CHECK failed: %s (errno %d: %s)", #c, errno, strerror(errno));      \
	} while (0)

#define PS 8192u             /* UMAP_PAGESIZE below */
#define FILE_BYTES (4u << 20) /* 512 umap pages; the buffer holds 64 */

static uint64_t word(uint64_t off) { return (off * 0x9E3779B97F4A7C15ull) ^ 0x5bd1e995ull; }

static int make_file(void)
{
	char path[] = "/tmp/vmo-umap-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	unlink(path);
	uint64_t *buf = malloc(FILE_BYTES);
	CHECK(buf != NULL);
	for (uint64_t i = 0; i < FILE_BYTES / 8; i++)
		buf[i] = word(i * 8);
	CHECK(pwrite(fd, buf, FILE_BYTES, 0) == (ssize_t)FILE_BYTES);
	free(buf);
	return fd;
}

struct reader {
	const uint64_t *p;
	uint64_t first, n, base;
	int bad;
};

static void *read_main(void *arg)
{
	struct reader *r = arg;
	for (uint64_t i = r->first; i < r->first + r->n; i++)
		if (r->p[i] != word(r->base + i * 8))
			r->bad++;
	return NULL;
}

static void case_config(void)
{
	CHECK(umapcfg_get_umap_page_size() == PS);
	CHECK(umapcfg_get_max_pages_in_buffer() == 64);
	CHECK(umapcfg_get_num_fillers() == 3);
	CHECK(umapcfg_get_num_evictors() == 2);
	CHECK(umapcfg_get_evict_high_water_threshold() == 80);
	CHECK(umapcfg_get_evict_low_water_threshold() == 50);
	CHECK(umapcfg_get_read_ahead() == 2);
	CHECK(umapcfg_get_max_fault_events() == 128);
	printf("config: page %llu, buffer %llu pages, %llu fillers: as the environment says\n",
	       (unsigned long long)umapcfg_get_umap_page_size(), (unsigned long long)umapcfg_get_max_pages_in_buffer(),
	       (unsigned long long)umapcfg_get_num_fillers());
}

static void case_read(int fd)
{
	uint64_t *p = umap(NULL, FILE_BYTES, PROT_READ, UMAP_PRIVATE, fd, 0);
	if (p == UMAP_FAILED && (errno == EPERM || errno == ENOSYS || errno == EACCES)) {
		printf("skipped: userfaultfd cannot be had here (%s)\n", strerror(errno));
		exit(77);
	}
	CHECK(p != UMAP_FAILED);
	struct reader r[2] = { { p, 0, FILE_BYTES / 16, 0, 0 }, { p, FILE_BYTES / 16, FILE_BYTES / 16, 0, 0 } };
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&th[i], NULL, read_main, &r[i]) == 0);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	CHECK(r[0].bad == 0 && r[1].bad == 0);
	CHECK(uunmap(p, FILE_BYTES) == 0);
	printf("read: %u MiB through a %u KiB buffer by two threads, every word right\n", FILE_BYTES >> 20,
	       64 * PS >> 10);
}

static void case_offset(int fd)
{
	uint64_t off = 1u << 20;
	uint64_t *p = umap(NULL, 64 * PS, PROT_READ, UMAP_PRIVATE, fd, (off_t)off);
	CHECK(p != UMAP_FAILED);
	for (uint64_t i = 0; i < 64 * PS / 8; i += 97)
		if (p[i] != word(off + i * 8))
			FAIL("offset: word %llu is not the file's at %#llx", (unsigned long long)i,
			     (unsigned long long)(off + i * 8));
	CHECK(uunmap(p, 64 * PS) == 0);
	printf("offset: honoured\n");
}

static void case_write(int fd)
{
	uint64_t *p = umap(NULL, FILE_BYTES, PROT_READ | PROT_WRITE, UMAP_PRIVATE, fd, 0);
	CHECK(p != UMAP_FAILED);
	uint64_t npg = FILE_BYTES / PS;
	for (uint64_t pg = 0; pg < npg; pg += 3)
		p[pg * PS / 8 + 5] = 0xabcd000000000000ull | pg;
	CHECK(umap_flush() == 0);
	for (uint64_t pg = 0; pg < npg; pg++) { /* in the file now, while still mapped */
		uint64_t w;
		CHECK(pread(fd, &w, 8, (off_t)(pg * PS + 40)) == 8);
		if (w != (pg % 3 ? word(pg * PS + 40) : 0xabcd000000000000ull | pg))
			FAIL("after umap_flush, page %llu of the file holds %#llx", (unsigned long long)pg,
			     (unsigned long long)w);
	}
	for (uint64_t pg = 1; pg < npg; pg += 3)
		p[pg * PS / 8 + 6] = 0xef00000000000000ull | pg;
	CHECK(uunmap(p, FILE_BYTES) == 0);
	for (uint64_t pg = 1; pg < npg; pg += 3) {
		uint64_t w;
		CHECK(pread(fd, &w, 8, (off_t)(pg * PS + 48)) == 8);
		if (w != (0xef00000000000000ull | pg))
			FAIL("after uunmap, page %llu of the file holds %#llx", (unsigned long long)pg, (unsigned long long)w);
	}
	/* put the file back */
	for (uint64_t pg = 0; pg < npg; pg++) {
		uint64_t w[2] = { word(pg * PS + 40), word(pg * PS + 48) };
		CHECK(pwrite(fd, w, 16, (off_t)(pg * PS + 40)) == 16);
	}
	printf("write: umap_flush and uunmap put every write in the file\n");
}

static void case_prefetch(int fd)
{
	uint64_t *p = umap(NULL, FILE_BYTES, PROT_READ, UMAP_PRIVATE, fd, 0);
	CHECK(p != UMAP_FAILED);
	struct umap_prefetch_item it[16];
	for (int i = 0; i < 16; i++)
		it[i].page_base_addr = (char *)p + (uint64_t)(i * 5) * PS;
	umap_prefetch(16, it);
	for (int i = 0; i < 16; i++) {
		const uint64_t *q = it[i].page_base_addr;
		uint64_t base = (uint64_t)(i * 5) * PS;
		for (uint64_t k = 0; k < PS / 8; k += 31)
			if (q[k] != word(base + k * 8))
				FAIL("prefetched page %d wrong", i);
	}
	CHECK(uunmap(p, FILE_BYTES) == 0);
	printf("prefetch: 16 pages, read right\n");
}

static void case_pin(int fd)
{
	uint64_t *p = umap(NULL, FILE_BYTES, PROT_READ, UMAP_PRIVATE, fd, 0);
	CHECK(p != UMAP_FAILED);
	umap_fetch_and_pin((char *)p, 16 * PS);
	struct reader r = { p, 0, FILE_BYTES / 8, 0, 0 };
	read_main(&r); /* the whole region through the 64-page buffer */
	CHECK(r.bad == 0);
	unsigned char vec[16 * PS / 4096];
	CHECK(mincore(p, 16 * PS, vec) == 0);
	for (size_t i = 0; i < sizeof vec; i++)
		if (!(vec[i] & 1))
			FAIL("pinned page %zu (4 KiB) is not resident after the region was read through", i);
	CHECK(uunmap(p, FILE_BYTES) == 0);
	printf("pin: 16 pinned pages stayed resident while 512 went through a 64-page buffer\n");
}

static void case_errors(int fd)
{
	errno = 0;
	CHECK(umap(NULL, FILE_BYTES, PROT_READ | PROT_EXEC, UMAP_PRIVATE, fd, 0) == UMAP_FAILED && errno == EINVAL);
	errno = 0;
	CHECK(umap(NULL, FILE_BYTES, PROT_READ, UMAP_PRIVATE, fd, 4096) == UMAP_FAILED && errno == EINVAL);
	errno = 0;
	CHECK(umap(NULL, 0, PROT_READ, UMAP_PRIVATE, fd, 0) == UMAP_FAILED && errno == EINVAL);
	errno = 0;
	CHECK(umap(NULL, PS, PROT_READ, UMAP_PRIVATE, -1, 0) == UMAP_FAILED && errno == EBADF);
	errno = 0;
	CHECK(uunmap((void *)0x1000, PS) == -1 && errno == EINVAL);
	/* writable over a read-only descriptor: EACCES, as mmap */
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	int ro = open(path, O_RDONLY);
	CHECK(ro >= 0);
	errno = 0;
	CHECK(umap(NULL, PS, PROT_READ | PROT_WRITE, UMAP_PRIVATE, ro, 0) == UMAP_FAILED && errno == EACCES);
	close(ro);
	printf("errors: EINVAL for a bad prot, offset, length and region, EBADF for a bad descriptor, EACCES for "
	       "writes over a read-only one\n");
}

/* UMap's regions start on a umap page; a region's last page, past the
 * length asked for, never grows the file when written back; UMAP_FIXED
 * over a mapping that is not a region replaces it. */
static void case_edges(int fd)
{
	for (int i = 0; i < 16; i++) {
		void *q = umap(NULL, 3 * PS, PROT_READ, UMAP_PRIVATE, fd, 0);
		CHECK(q != UMAP_FAILED);
		if ((uintptr_t)q % PS)
			FAIL("region %p is not aligned to the umap page size %u", q, PS);
		CHECK(uunmap(q, 3 * PS) == 0);
	}
	char tmpl[] = "/tmp/vmo-umap-short-XXXXXX";
	int sfd = mkstemp(tmpl);
	CHECK(sfd >= 0);
	unlink(tmpl);
	CHECK(ftruncate(sfd, 5000) == 0);
	char *q = umap(NULL, 5000, PROT_READ | PROT_WRITE, UMAP_PRIVATE, sfd, 0);
	CHECK(q != UMAP_FAILED);
	q[4999] = 'b';
	q[6000] = 'x'; /* (past the file, in the region's last page) */
	CHECK(umap_flush() == 0);
	CHECK(uunmap(q, 5000) == 0);
	struct stat st;
	CHECK(fstat(sfd, &st) == 0 && st.st_size == 5000);
	char c;
	CHECK(pread(sfd, &c, 1, 4999) == 1 && c == 'b');
	close(sfd);
	void *res = mmap(NULL, 4 * PS, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(res != MAP_FAILED);
	char *aligned = (char *)(((uintptr_t)res + PS - 1) & ~(uintptr_t)(PS - 1));
	uint64_t *f = umap(aligned, 2 * PS, PROT_READ, UMAP_PRIVATE | UMAP_FIXED, fd, 0);
	CHECK(f == (uint64_t *)aligned);
	CHECK(f[3] == word(24));
	errno = 0;
	CHECK(umap(aligned, PS, PROT_READ, UMAP_PRIVATE | UMAP_FIXED, fd, 0) == UMAP_FAILED && errno == EEXIST);
	CHECK(uunmap(f, 2 * PS) == 0);
	printf("edges: regions aligned to the umap page; a short file not grown; UMAP_FIXED replaces a mapping, "
	       "not a region\n");
}

static void case_fork(int fd)
{
	volatile uint64_t *p = umap(NULL, FILE_BYTES, PROT_READ, UMAP_PRIVATE, fd, 0);
	CHECK(p != UMAP_FAILED);
	CHECK(p[1] == word(8));
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		uint64_t v = p[1];
		_exit(v == 0 ? 10 : 11);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSEGV)
		FAIL("fork: the child %s", WIFEXITED(st) && WEXITSTATUS(st) == 10 ? "READ ZEROS" : "was not stopped by SIGSEGV");
	CHECK(uunmap((void *)p, FILE_BYTES) == 0);
	printf("fork: a child touching the region gets SIGSEGV, never zeros\n");
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	setenv("UMAP_PAGESIZE", "8192", 1);
	setenv("UMAP_BUFSIZE", "64", 1);
	setenv("UMAP_PAGE_FILLERS", "3", 1);
	setenv("UMAP_PAGE_EVICTORS", "2", 1);
	setenv("UMAP_EVICT_HIGH_WATER_THRESHOLD", "80", 1);
	setenv("UMAP_EVICT_LOW_WATER_THRESHOLD", "50", 1);
	setenv("UMAP_READ_AHEAD", "2", 1);
	setenv("UMAP_MAX_FAULT_EVENTS", "128", 1);
	int fd = make_file();
	case_config();
	case_read(fd);
	CHECK(umap_has_write_support() == 0 || umap_has_write_support() == 1);
	case_offset(fd);
	if (umap_has_write_support())
		case_write(fd);
	else
		printf("write: skipped (no write-protect faults on shmem here)\n");
	case_prefetch(fd);
	case_pin(fd);
	case_errors(fd);
	if (umap_has_write_support())
		case_edges(fd);
	case_fork(fd);
	close(fd);
	printf("test_umap: ok\n");
	return 0;
}
