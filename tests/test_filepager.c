/* SPDX-License-Identifier: MIT */
/* test_filepager: the file pager over a real temporary file: the data equals
 * the file (read(2) of the same range); the size comes from report_extent
 * when opts.size is 0 (rounded up to a page, the tail past EOF zero); an
 * object larger than the file reads zeros past EOF; a base offset shifts
 * everything; a write-only fd is -EBADF; a read error from the file (a
 * directory) reaches the toucher as SIGBUS and vmo_get_error; release frees
 * the context (LeakSanitizer would see it otherwise). */
#include "helper.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <unistd.h>

#define PG 4096u

static void check_equal_file(int fd, uint64_t base, const void *map, uint64_t len)
{
	char *buf = malloc(len);
	CHECK(buf);
	memset(buf, 0, len);
	ssize_t n = pread(fd, buf, len, (off_t)base);
	CHECK(n >= 0); /* past EOF: zeros (buf was zeroed) */
	if (memcmp(buf, map, len) != 0) {
		for (uint64_t i = 0; i < len; i++)
			if (buf[i] != ((const char *)map)[i]) {
				fprintf(stderr, "byte %#llx (file offset %#llx) differs\n", (unsigned long long)i,
					(unsigned long long)(base + i));
				break;
			}
		abort();
	}
	free(buf);
}

static void test_extent(struct vmo_engine *eng, int fd, uint64_t fsize)
{
	const struct vmo_pager_ops *ops;
	void *ctx;
	CHECK_OK(vmo_pager_file(fd, 0, &ops, &ctx));
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, ops, ctx, NULL, &obj)); /* size from report_extent */
	uint64_t size = vmo_object_size(obj);
	CHECK_EQ(size, (fsize + PG - 1) / PG * PG);
	void *a = NULL;
	CHECK_OK(vmo_map(obj, 0, size, VMO_PROT_READ, &a));
	check_equal_file(fd, 0, a, size);
	/* the bytes after EOF in the last page are zeros */
	for (uint64_t i = fsize; i < size; i++)
		CHECK_EQ(((const char *)a)[i], 0);
	const uint64_t *w = a;
	CHECK_EQ(w[(fsize / 8) - 1], t_pattern(fsize - (fsize % 8) - 8));
	CHECK_OK(vmo_unmap(obj, a, size));
	vmo_object_unref(obj);
}

static void test_past_eof(struct vmo_engine *eng, int fd, uint64_t fsize)
{
	const struct vmo_pager_ops *ops;
	void *ctx;
	CHECK_OK(vmo_pager_file(fd, 0, &ops, &ctx));
	const uint64_t size = 4 << 20; /* larger than the file */
	struct vmo_object_opts oo = { .size = size };
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, ops, ctx, &oo, &obj));
	CHECK_EQ(vmo_object_size(obj), size);
	void *a = NULL;
	CHECK_OK(vmo_map(obj, 0, size, VMO_PROT_READ, &a));
	/* random pages first (first touches in no order), then everything */
	uint64_t rnd = 99;
	for (int i = 0; i < 200; i++) {
		uint64_t off = (t_rand(&rnd) % (size / 8)) * 8;
		uint64_t want = off + 8 <= fsize ? t_pattern(off) : 0;
		if (off < fsize && off + 8 > fsize)
			continue; /* the word straddling EOF */
		CHECK_EQ(((const volatile uint64_t *)a)[off / 8], want);
	}
	check_equal_file(fd, 0, a, size);
	for (uint64_t off = (fsize + PG - 1) / PG * PG; off < size; off += PG / 2)
		CHECK_EQ(((const uint64_t *)a)[off / 8], 0);
	CHECK_OK(vmo_unmap(obj, a, size));
	vmo_object_unref(obj);
}

static void test_base(struct vmo_engine *eng, int fd, uint64_t fsize)
{
	const uint64_t base = 64 * 1024 + 8; /* any byte offset */
	const struct vmo_pager_ops *ops;
	void *ctx;
	CHECK_OK(vmo_pager_file(fd, base, &ops, &ctx));
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, ops, ctx, NULL, &obj));
	uint64_t size = vmo_object_size(obj);
	CHECK_EQ(size, (fsize - base + PG - 1) / PG * PG);
	void *a = NULL;
	CHECK_OK(vmo_map(obj, PG, size - PG, VMO_PROT_READ, &a)); /* at an object offset too */
	check_equal_file(fd, base + PG, a, size - PG);
	/* object offset X is file offset base + X */
	CHECK_EQ(((const uint64_t *)a)[0], t_pattern(base + PG));
	CHECK_OK(vmo_unmap(obj, a, size - PG));
	vmo_object_unref(obj);

	/* a base at or past EOF: report_extent gives 0, which is no size */
	CHECK_OK(vmo_pager_file(fd, fsize + PG, &ops, &ctx));
	struct vmo_object *o2 = (void *)0x1000;
	CHECK_EQ(vmo_object_create(eng, ops, ctx, NULL, &o2), -EINVAL);
	CHECK(o2 == (void *)0x1000);
	ops->release(ctx); /* the caller still owns the context */
}

static void test_bad_fds(void)
{
	const struct vmo_pager_ops *ops = NULL;
	void *ctx = NULL;
	const char *dir = getenv("TMPDIR");
	char path[4096];
	snprintf(path, sizeof path, "%s/vmo-wo-XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	int wo = open(path, O_WRONLY | O_CLOEXEC);
	CHECK(wo >= 0);
	unlink(path);
	close(fd);
	CHECK_EQ(vmo_pager_file(wo, 0, &ops, &ctx), -EBADF);
	CHECK(ops == NULL && ctx == NULL);
	close(wo);
	CHECK_EQ(vmo_pager_file(wo, 0, &ops, &ctx), -EBADF); /* closed */
	CHECK_EQ(vmo_pager_file(1000000, 0, &ops, &ctx), -EBADF);
}

/* A descriptor whose reads fail (a directory: EISDIR): SIGBUS and the errno. */
static sigjmp_buf jb;
static volatile int armed;

static void on_bus(int sig)
{
	if (!armed) {
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	armed = 0;
	siglongjmp(jb, sig);
}

static void test_read_error(struct vmo_engine *eng)
{
	int dfd = open(getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", O_RDONLY | O_DIRECTORY);
	CHECK(dfd >= 0);
	const struct vmo_pager_ops *ops;
	void *ctx;
	CHECK_OK(vmo_pager_file(dfd, 0, &ops, &ctx));
	struct vmo_object_opts oo = { .size = 4 * PG };
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, ops, ctx, &oo, &obj));
	void *a = NULL;
	CHECK_OK(vmo_map(obj, 0, 4 * PG, VMO_PROT_READ, &a));
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_bus;
	sa.sa_flags = SA_NODEFER;
	CHECK(sigaction(SIGBUS, &sa, &old) == 0);
	volatile uint64_t v = 1;
	int sig = sigsetjmp(jb, 1);
	if (!sig) {
		armed = 1;
		v = ((const volatile uint64_t *)a)[PG / 8];
		armed = 0;
	}
	CHECK(sigaction(SIGBUS, &old, NULL) == 0);
	CHECK_EQ(sig, SIGBUS);
	CHECK_EQ(v, 1);
	CHECK_EQ(vmo_get_error(obj, PG), -EISDIR);
	CHECK_OK(vmo_unmap(obj, a, 4 * PG));
	vmo_object_unref(obj);
	close(dfd);
}

/* Writing back the last, partial page of a file does not grow the file
 * when the object took its size from the file. */
static void test_no_growth(struct vmo_engine *eng)
{
	const uint64_t fsize = 3 * 4096 + 1000;
	int fd = t_tmpfile(fsize, true);
	const struct vmo_pager_ops *ops;
	void *ctx;
	CHECK_OK(vmo_pager_file(fd, 0, &ops, &ctx));
	struct vmo_object *o;
	CHECK_OK(vmo_object_create(eng, ops, ctx, NULL, &o));
	CHECK_EQ(vmo_object_size(o), 4 * 4096);
	char *p;
	CHECK_OK(vmo_map(o, 0, 4 * 4096, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&p));
	p[3 * 4096 + 10] = 'x';    /* inside the file's tail */
	p[3 * 4096 + 2000] = 'y';  /* past the end of file: not stored */
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	struct stat st;
	CHECK(fstat(fd, &st) == 0);
	CHECK_EQ(st.st_size, fsize);
	char c;
	CHECK(pread(fd, &c, 1, 3 * 4096 + 10) == 1);
	CHECK_EQ(c, 'x');
	CHECK_OK(vmo_unmap(o, p, 4 * 4096));
	vmo_object_unref(o);
	close(fd);
}

/* The file the first three cases read: 1 MiB + 1000 bytes (not a page
 * multiple) of t_pattern, through a read-only descriptor (enough); made
 * once, left open until exit. */
#define FSIZE ((uint64_t)(1 << 20) + 1000)
static int shared_fd(void)
{
	static int fd = -1;
	if (fd < 0) {
		int rw = t_tmpfile(FSIZE, true);
		char path[64];
		snprintf(path, sizeof path, "/proc/self/fd/%d", rw);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		CHECK(fd >= 0);
		close(rw);
	}
	return fd;
}

static void case_extent(void) { test_extent(t_shared_engine(2), shared_fd(), FSIZE); }
static void case_past_eof(void) { test_past_eof(t_shared_engine(2), shared_fd(), FSIZE); }
static void case_base(void) { test_base(t_shared_engine(2), shared_fd(), FSIZE); }
static void case_read_error(void) { test_read_error(t_shared_engine(2)); }
static void case_no_growth(void) { test_no_growth(t_shared_engine(2)); }

int main(int argc, char **argv)
{
	alarm(50);
	setvbuf(stdout, NULL, _IONBF, 0);
	return t_main(argc, argv,
		      T_CASES({ "extent", case_extent }, { "past-eof", case_past_eof }, { "base", case_base },
			      { "bad-fds", test_bad_fds }, { "read-error", case_read_error },
			      { "no-growth", case_no_growth }));
}
