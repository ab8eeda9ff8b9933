#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/syscall.h>
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

long t_max_map_count(void)
{
	long v = 0;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
	if (!f || fscanf(f, "%ld", &v) != 1)
		t_skip("cannot read vm.max_map_count");
	fclose(f);
	return v;
}

int t_fork_run(void (*fn)(void *), void *arg)
{
	pid_t pid = t_fork_start(fn, arg);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		CHECK(errno == EINTR);
	return st;
}

pid_t t_fork_start(void (*fn)(void *), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		fn(arg);
		_exit(0);
	}
	return pid;
}

const char *t_sig_code_name(int sig, int code)
{
	static _Thread_local char buf[32];
	switch (code) {
	case SI_QUEUE:
		return "SI_QUEUE";
	case SI_TKILL:
		return "SI_TKILL";
	case SI_USER:
		return "SI_USER";
	default:
		break;
	}
	if (sig == SIGBUS) {
		switch (code) {
		case BUS_ADRALN:
			return "BUS_ADRALN";
		case BUS_ADRERR:
			return "BUS_ADRERR";
		case BUS_OBJERR:
			return "BUS_OBJERR";
		case BUS_MCEERR_AR:
			return "BUS_MCEERR_AR";
		case BUS_MCEERR_AO:
			return "BUS_MCEERR_AO";
		default:
			break;
		}
	} else if (sig == SIGSEGV) {
		switch (code) {
		case SEGV_MAPERR:
			return "SEGV_MAPERR";
		case SEGV_ACCERR:
			return "SEGV_ACCERR";
		default:
			break;
		}
	}
	snprintf(buf, sizeof buf, "si_code %d", code);
	return buf;
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

/* ---- probing an access that may raise SIGBUS/SIGSEGV ------------------------ */

static _Thread_local sigjmp_buf t_jb;
static _Thread_local volatile sig_atomic_t t_armed;
static _Thread_local volatile int t_got_sig, t_got_code;
static _Thread_local void *volatile t_got_addr;
static _Thread_local volatile pid_t t_got_tid;

static void t_on_signal(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (!t_armed) {
		/* not a probe: die of it as if there were no handler */
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	t_armed = 0;
	t_got_sig = sig;
	t_got_code = si->si_code;
	t_got_addr = si->si_addr;
	t_got_tid = (pid_t)syscall(SYS_gettid);
	siglongjmp(t_jb, 1);
}

static void t_sig_install_once(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = t_on_signal;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGBUS, &sa, NULL) == 0);
	CHECK(sigaction(SIGSEGV, &sa, NULL) == 0);
}

void t_sig_install(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	CHECK_OK(pthread_once(&once, t_sig_install_once));
}

static void t_sig_reset(void)
{
	t_got_sig = 0;
	t_got_code = 0;
	t_got_addr = NULL;
	t_got_tid = 0;
}

static int t_sig_result(struct t_sig *info)
{
	if (info)
		*info = (struct t_sig){ .sig = t_got_sig, .code = t_got_code, .addr = t_got_addr, .tid = t_got_tid };
	return t_got_sig;
}

int t_probe_read(volatile const uint64_t *p, uint64_t *val, struct t_sig *info)
{
	t_sig_install();
	t_sig_reset();
	if (sigsetjmp(t_jb, 1))
		return t_sig_result(info);
	t_armed = 1;
	uint64_t v = *p;
	t_armed = 0;
	if (val)
		*val = v;
	return t_sig_result(info);
}

int t_probe_write(volatile uint64_t *p, uint64_t val, struct t_sig *info)
{
	t_sig_install();
	t_sig_reset();
	if (sigsetjmp(t_jb, 1))
		return t_sig_result(info);
	t_armed = 1;
	*p = val;
	t_armed = 0;
	return t_sig_result(info);
}
