/* SPDX-License-Identifier: MIT */
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
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

/* ---- named cases -------------------------------------------------------------- */

static const struct t_case *t_cur;     /* the running case, or NULL */
static pid_t t_cur_pid;                 /* ... in this process */
static pthread_t t_cur_thread;          /* ... on this thread */
static sigjmp_buf t_case_jb;            /* t_skip_case jumps back here */
static struct vmo_engine *t_shared_eng; /* t_shared_engine */
static unsigned t_shared_workers;

void t_abort(void)
{
	const struct t_case *c = t_cur;
	if (c)
		fprintf(stderr, "case %s: FAILED\n", c->name);
	abort();
}

const char *t_case_name(void)
{
	const struct t_case *c = t_cur;
	return c ? c->name : NULL;
}

static void t_usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s [--list] [NAME...]\n"
		"  --list   print the names of the cases, one a line\n"
		"  NAME     run only the cases of that name, or matching that glob ('a-*');\n"
		"           without NAME, $T_CASES (globs separated by commas) selects, else every case\n",
		prog);
}

static bool t_name_ok(const char *name)
{
	if (!name || !*name)
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      strchr("-_./+=:", *p)))
			return false;
	return true;
}

size_t t_select(int argc, char **argv, const char *const *names, size_t n, bool *sel)
{
	const char *prog = argc > 0 ? argv[0] : "test";
	for (size_t i = 0; i < n; i++) {
		if (!t_name_ok(names[i])) {
			fprintf(stderr, "%s: bad case name '%s' (letters, digits, -_./+=: only)\n", prog,
				names[i] ? names[i] : "(null)");
			abort();
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(names[i], names[j]) == 0) {
				fprintf(stderr, "%s: two cases named '%s'\n", prog, names[i]);
				abort();
			}
	}
	bool list = false;
	int npat = 0;
	for (int a = 1; a < argc; a++) {
		if (strcmp(argv[a], "--list") == 0 || strcmp(argv[a], "-l") == 0) {
			list = true;
		} else if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) {
			t_usage(stdout, prog);
			exit(0);
		} else if (argv[a][0] == '-') {
			fprintf(stderr, "%s: unknown option %s\n", prog, argv[a]);
			t_usage(stderr, prog);
			exit(2);
		} else {
			npat++;
		}
	}
	if (list) {
		for (size_t i = 0; i < n; i++)
			printf("%s\n", names[i]);
		fflush(stdout);
		exit(0);
	}
	size_t k = 0;
	if (npat) {
		for (size_t i = 0; i < n; i++)
			sel[i] = false;
		for (int a = 1; a < argc; a++) {
			bool any = false;
			for (size_t i = 0; i < n; i++)
				if (strcmp(argv[a], names[i]) == 0 || fnmatch(argv[a], names[i], 0) == 0) {
					any = true;
					sel[i] = true;
				}
			if (!any) {
				fprintf(stderr, "%s: no case matches '%s' (--list lists them)\n", prog, argv[a]);
				exit(2);
			}
		}
	} else {
		const char *env = getenv("T_CASES");
		for (size_t i = 0; i < n; i++)
			sel[i] = !env || !*env;
		if (env && *env) {
			char *copy = strdup(env), *save = NULL;
			CHECK(copy);
			for (char *g = strtok_r(copy, ",", &save); g; g = strtok_r(NULL, ",", &save))
				for (size_t i = 0; i < n; i++)
					if (strcmp(g, names[i]) == 0 || fnmatch(g, names[i], 0) == 0)
						sel[i] = true;
			free(copy);
		}
	}
	for (size_t i = 0; i < n; i++)
		k += sel[i];
	if (k == 0) {
		printf("SKIP: no case matches T_CASES=%s\n", getenv("T_CASES"));
		fflush(stdout);
		exit(77);
	}
	return k;
}

/* Run one case; false if it was skipped (t_skip_case jumped back). */
static bool t_run_one(const struct t_case *c)
{
	t_cur_pid = getpid();
	t_cur_thread = pthread_self();
	t_cur = c;
	if (sigsetjmp(t_case_jb, 1)) {
		t_cur = NULL;
		return false;
	}
	c->fn();
	t_cur = NULL;
	return true;
}

int t_main(int argc, char **argv, const struct t_case *cases, size_t n)
{
	const char **names = calloc(n ? n : 1, sizeof *names);
	bool *sel = calloc(n ? n : 1, sizeof *sel);
	CHECK(names && sel);
	for (size_t i = 0; i < n; i++)
		names[i] = cases[i].name;
	size_t k = t_select(argc, argv, names, n, sel);
	size_t passed = 0, skipped = 0;
	for (size_t i = 0; i < n; i++) {
		if (!sel[i])
			continue;
		if (t_run_one(&cases[i])) {
			printf("case %s: ok\n", cases[i].name);
			passed++;
		} else {
			skipped++;
		}
		fflush(stdout);
	}
	if (t_shared_eng) {
		CHECK_OK(vmo_engine_destroy(t_shared_eng));
		t_shared_eng = NULL;
	}
	free(names);
	free(sel);
	printf("%zu case%s: %zu ok, %zu skipped\n", k, k == 1 ? "" : "s", passed, skipped);
	fflush(stdout);
	return passed ? 0 : 77;
}

void t_skip_case(const char *fmt, ...)
{
	char why[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	const struct t_case *c = t_cur;
	if (!c || getpid() != t_cur_pid || !pthread_equal(pthread_self(), t_cur_thread))
		t_skip("%s", why);
	printf("case %s: skipped (%s)\n", c->name, why);
	fflush(stdout);
	siglongjmp(t_case_jb, 1);
}

static const struct {
	unsigned bit;
	const char *name;
} t_features[] = {
	{ VMO_FEAT_MINOR, "minor" },
	{ VMO_FEAT_WP, "wp" },
	{ VMO_FEAT_POISON, "poison" },
	{ VMO_FEAT_MOVE, "move" },
	{ VMO_FEAT_WP_ASYNC, "wp-async" },
	{ VMO_FEAT_PAGEMAP_SCAN, "pagemap-scan" },
	{ VMO_FEAT_THREAD_ID, "thread-id" },
	{ VMO_FEAT_KERNEL_FAULTS, "kernel-faults" },
	{ VMO_FEAT_CONTINUE_WP, "continue-wp" },
	{ VMO_FEAT_EVENTS, "events" },
};

const char *t_feature_names(unsigned mask)
{
	static _Thread_local char buf[256];
	size_t len = 0;
	buf[0] = 0;
	for (size_t i = 0; i < sizeof t_features / sizeof t_features[0]; i++)
		if (mask & t_features[i].bit) {
			len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", len ? " " : "", t_features[i].name);
			mask &= ~t_features[i].bit;
		}
	if (mask)
		snprintf(buf + len, sizeof buf - len, "%s%#x", len ? " " : "", mask);
	return buf;
}

void t_require_features(struct vmo_engine *eng, unsigned mask)
{
	unsigned missing = mask & ~vmo_engine_features(eng);
	if (missing)
		t_skip_case("the engine lacks kernel feature%s %s (not in this kernel, or VMO_DISABLE)",
			    (missing & (missing - 1)) ? "s" : "", t_feature_names(missing));
}

struct vmo_engine *t_shared_engine(unsigned workers)
{
	if (!t_shared_eng) {
		t_shared_eng = t_engine(workers);
		t_shared_workers = workers;
	}
	CHECK_EQ(workers, t_shared_workers);
	return t_shared_eng;
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
	/* A self-service engine's fault (VMO_ENGINE_SELF_SERVICE, or
	 * VMO_SELF_SERVICE=1 for the whole suite) is vmo's to serve: a handler
	 * installed after vmo's asks it first (docs/api.md). */
	if (sig == SIGBUS && vmo_handle_sigbus(sig, si, uc))
		return;
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

/* ---- a counting memory store ------------------------------------------------ */

static int ts_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct t_store *s = ctx;
	(void)flags;
	if (s->delay_us)
		usleep(s->delay_us);
	if (s->fail_pg >= 0 && (uint64_t)s->fail_pg * 4096 >= off && (uint64_t)s->fail_pg * 4096 < off + len)
		return -EIO;
	s->reads += (long)(len / 4096);
	memcpy(buf, (char *)s->data + off, len);
	return 0;
}

static int ts_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct t_store *s = ctx;
	s->writes += (long)(len / 4096);
	memcpy((char *)s->data + off, buf, len);
	return 0;
}

static int ts_extent(void *ctx, uint64_t *size)
{
	struct t_store *s = ctx;
	*size = s->extent ? s->extent : s->size;
	return 0;
}

static void ts_release(void *ctx)
{
	struct t_store *s = ctx;
	s->releases++;
}

const struct vmo_pager_ops t_store_ops = {
	.read = ts_read, .write = ts_write, .report_extent = ts_extent, .release = ts_release,
};

struct t_store *t_store_new(uint64_t size, uint64_t salt)
{
	struct t_store *s = calloc(1, sizeof *s);
	CHECK(s);
	s->data = malloc(size);
	CHECK(s->data);
	s->size = size;
	s->fail_pg = -1;
	for (uint64_t i = 0; i < size / 8; i++)
		s->data[i] = salt ? t_pattern(i * 8) ^ (salt - 1) : 0;
	return s;
}

void t_store_free(struct t_store *s)
{
	free(s->data);
	free(s);
}
