/* SPDX-License-Identifier: MIT */
/* The shared kit of the `vmo` tool (cli.h): messages, command-line values,
 * usage helpers, reports, guarded reads.  The library prints nothing;
 * everything printed comes from the tool. */
#include "cli.h"

#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */

static const char *cur_cmd = "vmo"; /* "vmo demo", ... for messages */

void cli_set_command(const char *name)
{
	static char buf[64];
	snprintf(buf, sizeof buf, "vmo %s", name);
	cur_cmd = buf;
}

void msg(const char *fmt, ...)
{
	va_list ap;
	progress_clear();
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", cur_cmd);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* A bad command line: say what is wrong, point at help, exit status 2. */
int usage_error(const char *fmt, ...)
{
	va_list ap;
	progress_clear();
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", cur_cmd);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nTry 'vmo help'.\n");
	va_end(ap);
	return EXIT_USAGE;
}

/* A vmo call failed: name it and print vmo_strerror(rc). */
int fail(const char *what, int rc)
{
	msg("%s: %s", what, vmo_strerror(rc));
	return 1;
}

/* The engine could not be created: the library's detailed reason too. */
int engine_fail(int rc)
{
	msg("cannot create a vmo engine: %s", vmo_strerror(rc));
	const char *d = vmo_last_error_detail();
	if (d && *d)
		fprintf(stderr, "%s\n", d);
	return 1;
}

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The tool's one size formatter, two faces: human() is exact when n is a
 * whole number of units ("64 MiB", "12800 KiB", "123 B"), else approximate
 * from 1 MiB up; human_approx() always rounds to one decimal past 1 KiB
 * ("12.5 MiB"), for counts that change as they are watched (progress). */
static const char *format_size(uint64_t n, bool exact, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;
	uint64_t v = n;
	while (exact && u < 4 && v >= 1024 && v % 1024 == 0)
		v /= 1024, u++;
	if (u == 0 && n >= (exact ? 1024 * 1024 : 1024)) { /* not a whole number of KiB: approximate */
		double d = (double)n;
		while (u < 4 && d >= 1024)
			d /= 1024, u++;
		snprintf(buf, len, "%.1f %s", d, unit[u]);
	} else {
		snprintf(buf, len, "%" PRIu64 " %s", v, unit[u]);
	}
	return buf;
}

const char *human(uint64_t n, char *buf, size_t len) { return format_size(n, true, buf, len); }

const char *human_approx(uint64_t n, char *buf, size_t len) { return format_size(n, false, buf, len); }

/* ------------------------------------------------------------------------ */
/* Progress: one line on standard error, rewritten in place with '\r'.  Any
 * thread may add to the count; a thread that finds a redraw due (every
 * PROGRESS_NS; the first only once PROGRESS_NS has passed, so quick work
 * shows nothing, unless --progress asked for it) draws unless another is
 * drawing.  The line goes out with write(2) in one piece, so it never
 * interleaves with stdio's buffers; a message (msg) erases it first. */

#define PROGRESS_NS 250000000ull /* at most four redraws a second */

static bool prog_enabled;     /* decided by progress_setup */
static bool prog_forced;      /* --progress: the first line at once */
static const char *prog_what; /* NULL: no phase running */
static uint64_t prog_total, prog_t0;
static _Atomic uint64_t prog_done, prog_next;
static atomic_flag prog_drawing = ATOMIC_FLAG_INIT;
static size_t prog_width; /* characters on the line now, 0 when clear */

int progress_setup(bool on, bool off, bool writes_stdout)
{
	if (on && off)
		return usage_error("--progress and --no-progress: give one of them");
	if (on || off)
		prog_enabled = prog_forced = on;
	else /* data on a terminal shows its own progress, and would break the line */
		prog_enabled = isatty(STDERR_FILENO) && !(writes_stdout && isatty(STDOUT_FILENO));
	return 0;
}

static void prog_write(const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(STDERR_FILENO, s, n);
		if (w <= 0)
			return; /* progress is a courtesy: never an error */
		s += w;
		n -= (size_t)w;
	}
}

/* Erase the line: back to its start, spaces over it, back again. */
static void prog_erase(void)
{
	char sp[256];
	if (!prog_width)
		return;
	size_t n = prog_width < sizeof sp - 2 ? prog_width : sizeof sp - 2;
	sp[0] = '\r';
	memset(sp + 1, ' ', n);
	sp[n + 1] = '\r';
	prog_write(sp, n + 2);
	prog_width = 0;
}

static void prog_draw(uint64_t done, uint64_t t)
{
	char line[256], b1[32], b2[32], b3[32];
	double secs = (double)(t - prog_t0) / 1e9;
	uint64_t rate = secs > 0 ? (uint64_t)((double)done / secs) : 0;
	int n = snprintf(line, sizeof line, "\r%s: %s %s of %s (%u%%), %s/s", cur_cmd, prog_what,
			 human_approx(done, b1, sizeof b1), human_approx(prog_total, b2, sizeof b2),
			 prog_total ? (unsigned)(done * 100 / prog_total) : 100u, human_approx(rate, b3, sizeof b3));
	if (n < 0)
		return;
	size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
	struct winsize ws;
	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && len > ws.ws_col)
		len = ws.ws_col; /* one column short of the width ('\r' takes none): a full line would wrap */
	size_t w = len - 1;
	if (w < prog_width) { /* shorter than before: blank the rest */
		size_t pad = prog_width - w;
		if (pad > sizeof line - len)
			pad = sizeof line - len;
		memset(line + len, ' ', pad);
		len += pad;
	}
	prog_write(line, len);
	prog_width = w;
}

void progress_begin(const char *what, uint64_t total)
{
	if (!prog_enabled)
		return;
	prog_what = what;
	prog_total = total;
	prog_t0 = now_ns();
	atomic_store(&prog_done, 0);
	atomic_store(&prog_next, prog_forced ? prog_t0 : prog_t0 + PROGRESS_NS);
}

void progress_add(uint64_t n)
{
	if (!prog_what)
		return;
	uint64_t done = atomic_fetch_add_explicit(&prog_done, n, memory_order_relaxed) + n;
	uint64_t t = now_ns();
	if (t < atomic_load_explicit(&prog_next, memory_order_relaxed))
		return;
	if (atomic_flag_test_and_set(&prog_drawing))
		return; /* another thread is drawing */
	if (prog_what && t >= atomic_load(&prog_next)) {
		prog_draw(done, t);
		atomic_store(&prog_next, t + PROGRESS_NS);
	}
	atomic_flag_clear(&prog_drawing);
}

void progress_clear(void)
{
	if (!prog_enabled)
		return;
	while (atomic_flag_test_and_set(&prog_drawing))
		; /* a drawing thread is done within a write */
	prog_erase();
	atomic_flag_clear(&prog_drawing);
}

void progress_end(void)
{
	if (!prog_what)
		return;
	progress_clear();
	prog_what = NULL;
}

/* ------------------------------------------------------------------------ */
/* Usage                                                                    */

void cli_put_indented(FILE *f, const char *text)
{
	for (const char *p = text; *p; p++) {
		fputc(*p, f);
		if (*p == '\n')
			fputs("    ", f);
	}
}

bool cli_wants_help(int argc, char **argv)
{
	for (int j = 1; j < argc && strcmp(argv[j], "--"); j++)
		if (!strcmp(argv[j], "--help") || !strcmp(argv[j], "-h"))
			return true;
	return false;
}

void cli_cmd_usage(const struct cli_cmd *c)
{
	printf("usage: vmo %s %s\n    ", c->name, c->args);
	cli_put_indented(stdout, c->summary);
	putchar('\n');
}

/* ------------------------------------------------------------------------ */
/* Command-line values                                                      */

/* Parse a byte count: decimal digits with an optional K, M, G or T suffix
 * (powers of 1024; "KiB", "k", "MB" ... are accepted).  Rejects garbage,
 * signs, overflow, zero unless allow_zero.  opt names the argument. */
int parse_size(const char *opt, const char *s, bool allow_zero, uint64_t *out)
{
	if (!s || !*s)
		return usage_error("%s: empty value (expected a size such as 4096, 64K, 16M, 2G)", opt);
	const char *p = s;
	uint64_t v = 0;
	if (*p < '0' || *p > '9')
		return usage_error("%s: '%s' is not a size (expected digits with an optional K/M/G/T suffix)", opt, s);
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return usage_error("%s: '%s' is too large", opt, s);
		v = v * 10 + d;
	}
	unsigned shift = 0;
	switch (*p) {
	case '\0': break;
	case 'k': case 'K': shift = 10; p++; break;
	case 'm': case 'M': shift = 20; p++; break;
	case 'g': case 'G': shift = 30; p++; break;
	case 't': case 'T': shift = 40; p++; break;
	default:
		return usage_error("%s: '%s' has an unknown suffix (use K, M, G or T)", opt, s);
	}
	if (shift && (!strcmp(p, "iB") || !strcmp(p, "B")))
		p += strlen(p);
	if (*p)
		return usage_error("%s: '%s' is not a size (trailing '%s')", opt, s, p);
	if (shift && v > (UINT64_MAX >> shift))
		return usage_error("%s: '%s' is too large", opt, s);
	v <<= shift;
	if (!v && !allow_zero)
		return usage_error("%s: must not be zero", opt);
	*out = v;
	return 0;
}

/* A small option parser: --name VALUE, --name=VALUE, flags, and positional
 * arguments.  Every error names the argument and returns exit status 2. */
int parse_opts(int argc, char **argv, const struct opt *opts, const char **pos, int npos_max, int *npos)
{
	*npos = 0;
	bool only_pos = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!only_pos && !strcmp(a, "--")) {
			only_pos = true;
			continue;
		}
		if (!only_pos && a[0] == '-' && a[1]) {
			const char *eq = strchr(a, '=');
			size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
			const struct opt *o = opts;
			for (; o->name; o++)
				if (strlen(o->name) == nlen && !strncmp(o->name, a, nlen))
					break;
			if (!o->name)
				return usage_error("unknown option '%.*s'", (int)nlen, a);
			if (!o->has_value) {
				if (eq)
					return usage_error("option %s takes no value", o->name);
				*o->flag = true;
			} else if (eq) {
				*o->value = eq + 1;
			} else if (i + 1 < argc) {
				*o->value = argv[++i];
			} else {
				return usage_error("option %s needs a value", o->name);
			}
			continue;
		}
		if (*npos >= npos_max)
			return usage_error("unexpected argument '%s'", a);
		pos[(*npos)++] = a;
	}
	return 0;
}

int parse_page_size(const char *s, uint32_t *out)
{
	uint64_t v = 0;
	int rc = parse_size("--page-size", s, false, &v);
	if (rc)
		return rc;
	if (v < 4096 || v > (2u << 20) || (v & (v - 1)))
		return usage_error("--page-size: '%s' must be 4K times a power of two, up to 2M", s);
	*out = (uint32_t)v;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Reports                                                                  */

const struct feature features[] = {
	{ VMO_FEAT_MINOR, "minor", "MINOR faults on shmem (UFFDIO_CONTINUE, 5.14): cheap re-mapping of resident pages" },
	{ VMO_FEAT_WP, "wp", "write-protect on shmem (6.1): first-write tracking, dirty pages" },
	{ VMO_FEAT_POISON, "poison", "UFFDIO_POISON (6.6): a failed read is the kernel's own SIGBUS (else a queued one)" },
	{ VMO_FEAT_MOVE, "move", "UFFDIO_MOVE (6.8): pages moved rather than copied" },
	{ VMO_FEAT_WP_ASYNC, "wp-async", "UFFD_FEATURE_WP_ASYNC (6.7): dirty tracking without a trap per page" },
	{ VMO_FEAT_PAGEMAP_SCAN, "pagemap-scan", "PAGEMAP_SCAN (6.7): collect dirty pages in one call" },
	{ VMO_FEAT_THREAD_ID, "thread-id", "UFFD_FEATURE_THREAD_ID (4.14): the faulting thread is known" },
	{ VMO_FEAT_CONTINUE_WP, "continue-wp",
	  "UFFDIO_CONTINUE_MODE_WP (6.5): pages shared between views mapped write-protected; unlock callbacks" },
	{ VMO_FEAT_EVENTS, "events", "UNMAP/REMAP events (4.11): a view the program unmaps or moves itself is followed" },
	{ VMO_FEAT_SIGBUS, "sigbus", "UFFD_FEATURE_SIGBUS (4.14): self-service faults (VMO_ENGINE_SELF_SERVICE), the faulting thread serves itself" },
};

const size_t nfeatures = sizeof features / sizeof features[0];

/* "minor wp poison ... (missing: move)" */
void print_features_line(FILE *f, unsigned feat)
{
	const char *sep = "";
	for (size_t i = 0; i < nfeatures; i++)
		if (feat & features[i].bit) {
			fprintf(f, "%s%s", sep, features[i].name);
			sep = " ";
		}
	if (!*sep)
		fprintf(f, "(none)");
	sep = " (missing: ";
	for (size_t i = 0; i < nfeatures; i++)
		if (!(feat & features[i].bit)) {
			fprintf(f, "%s%s", sep, features[i].name);
			sep = " ";
		}
	if (*sep != ' ')
		fprintf(f, ")");
	fputc('\n', f);
}

void json_features(struct json *j, const char *key, unsigned feat)
{
	json_object(j, key);
	for (size_t i = 0; i < nfeatures; i++)
		json_bool(j, features[i].name, feat & features[i].bit);
	json_end(j);
}

/* Every field, named as in struct vmo_stats (vmo.h), in its order. */
void json_stats(struct json *j, const char *key, const struct vmo_stats *st)
{
	json_object(j, key);
	json_u64(j, "resident", st->resident);
	json_u64(j, "dirty", st->dirty);
	json_u64(j, "faults", st->faults);
	json_u64(j, "missing_faults", st->missing_faults);
	json_u64(j, "minor_faults", st->minor_faults);
	json_u64(j, "wp_faults", st->wp_faults);
	json_u64(j, "pages_read", st->pages_read);
	json_u64(j, "readahead", st->readahead);
	json_u64(j, "writebacks", st->writebacks);
	json_u64(j, "evictions", st->evictions);
	json_u64(j, "errors", st->errors);
	json_u64(j, "mappings", st->mappings);
	json_u64(j, "write_errors", st->write_errors);
	json_u64(j, "budget", st->budget);
	json_u64(j, "pinned", st->pinned);
	json_u64(j, "large_fill", st->large_fill);
	json_end(j);
}

/* Every field of struct vmo_stats, one per line: the library's own print. */
void print_stats(FILE *f, const char *indent, const struct vmo_stats *st)
{
	fflush(f);
	vmo_stats_print(st, fileno(f), indent);
}

/* ------------------------------------------------------------------------ */
/* SIGBUS: a page the pager could not supply.  Reads of a mapping that may
 * fault go through guarded sections; a SIGBUS inside one jumps back out of
 * it with the faulting address instead of killing the process.  The handler
 * is installed with SA_NODEFER, so sigsetjmp need not save the mask (which
 * would cost a syscall per section). */

static _Thread_local sigjmp_buf *bus_jmp;
static _Thread_local uintptr_t bus_addr;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (bus_jmp) {
		bus_addr = (uintptr_t)si->si_addr;
		siglongjmp(*bus_jmp, 1);
	}
	signal(sig, SIG_DFL); /* not ours: die of it */
	raise(sig);
}

void install_sigbus(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

/* Run fn(arg); false (and *bad = the faulting address) if it got SIGBUS.
 * Nothing fn changes may live in this frame: it is abandoned on SIGBUS. */
bool guarded(void (*fn)(void *), void *arg, uintptr_t *bad)
{
	sigjmp_buf jb;
	if (sigsetjmp(jb, 0)) {
		bus_jmp = NULL;
		*bad = bus_addr;
		return false;
	}
	bus_jmp = &jb;
	fn(arg);
	bus_jmp = NULL;
	return true;
}

struct copy_args {
	void *dst;
	const void *src;
	size_t n;
};

static void do_copy(void *arg)
{
	struct copy_args *c = arg;
	/* Touch the pages in address order first: glibc's memcpy copies large
	 * blocks in interleaved page stripes, an order vmo's read-ahead does not
	 * recognise as sequential. */
	for (size_t i = 0; i < c->n; i += 4096)
		(void)*((const volatile char *)c->src + i);
	memcpy(c->dst, c->src, c->n);
}

/* memcpy to or from a mapping; false (*bad = faulting address) on SIGBUS.
 * Copy in user mode: the kernel itself (write(2) straight from a mapping)
 * would get EFAULT on a page not yet supplied, since vmo's userfaultfd may be
 * opened UFFD_USER_MODE_ONLY. */
bool guarded_copy(void *dst, const void *src, size_t n, uintptr_t *bad)
{
	struct copy_args c = { dst, src, n };
	return guarded(do_copy, &c, bad);
}

