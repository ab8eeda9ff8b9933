#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void t_skip(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stdout, "SKIP: ");
	vfprintf(stdout, fmt, ap);
	fprintf(stdout, "\n");
	va_end(ap);
	exit(77);
}

void t_require_uffd(void)
{
	struct vmo_engine *e;
	int rc = vmo_engine_create(NULL, &e);
	if (rc == -VMO_ENOUFFD)
		t_skip("%s", vmo_last_error_detail());
	CHECK_OK(rc);
	CHECK_OK(vmo_engine_destroy(e));
}

struct vmo_engine *t_engine(unsigned workers)
{
	struct vmo_engine_opts o = { .workers = workers };
	struct vmo_engine *e;
	int rc = vmo_engine_create(&o, &e);
	if (rc == -VMO_ENOUFFD)
		t_skip("%s", vmo_last_error_detail());
	CHECK_OK(rc);
	return e;
}

int t_tmpfile(uint64_t size, bool fill)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	snprintf(path, sizeof path, "%s/vmo-test-XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	unlink(path);
	CHECK(ftruncate(fd, (off_t)size) == 0);
	if (fill) {
		enum { CH = 1 << 20 };
		uint64_t *buf = malloc(CH);
		CHECK(buf);
		for (uint64_t off = 0; off < size; off += CH) {
			size_t n = size - off < CH ? (size_t)(size - off) : CH;
			for (size_t i = 0; i < n / 8; i++)
				buf[i] = t_pattern(off + i * 8);
			CHECK(pwrite(fd, buf, n, (off_t)off) == (ssize_t)n);
		}
		free(buf);
	}
	return fd;
}

uint64_t t_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int t_fork_run(void (*fn)(void *), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		fn(arg);
		_exit(0);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		CHECK(errno == EINTR);
	return st;
}

long t_rss_kb(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "re");
	if (!f)
		return -1;
	char line[256];
	long kb = -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "Rss: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}
