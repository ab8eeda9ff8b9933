/* vmo - the command-line tool of libvmo.
 *
 *   vmo demo   the main job: a file-backed object, two mappings, threads,
 *              random and sequential first touches, full verification,
 *              writeback to the file and re-reading
 *   vmo cat    stream a file (or part of it) through a vmo mapping
 *   vmo sum    FNV-1a 64 of a file read through a vmo mapping
 *   vmo info   what the running kernel offers, or why userfaultfd is not there
 *   vmo help   usage
 *
 * Subcommands live in the table `commands` below: a new one (for instance
 * `vmo stats` for writeback/eviction counters, or `vmo cache` for the yield
 * cache) is a function `int cmd_NAME(int argc, char **argv)` plus one row.
 *
 * Exit status: 0 success, 1 failure at run time (a vmo call failed, data did
 * not match), 2 bad command line (the message names the argument).  The
 * library prints nothing; everything printed comes from this file. */
#include "vmo.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define EXIT_USAGE 2

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */

static const char *cur_cmd = "vmo"; /* "vmo demo", ... for messages */

static void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void msg(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", cur_cmd);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* A bad command line: say what is wrong, point at help, exit status 2. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", cur_cmd);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nTry 'vmo help'.\n");
	va_end(ap);
	return EXIT_USAGE;
}

/* A vmo call failed: name it and print vmo_strerror(rc). */
static int fail(const char *what, int rc)
{
	msg("%s: %s", what, vmo_strerror(rc));
	return 1;
}

/* The engine could not be created: the library's detailed reason too. */
static int engine_fail(int rc)
{
	msg("cannot create a vmo engine: %s", vmo_strerror(rc));
	const char *d = vmo_last_error_detail();
	if (d && *d)
		fprintf(stderr, "%s\n", d);
	return 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* "64 MiB", "4 KiB", "123 B": exact when a whole number of units. */
static const char *human(uint64_t n, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;
	uint64_t v = n;
	while (u < 4 && v >= 1024 && v % 1024 == 0)
		v /= 1024, u++;
	if (u == 0 && n >= 1024 * 1024) { /* not a whole number of KiB: approximate */
		double d = (double)n;
		while (u < 4 && d >= 1024)
			d /= 1024, u++;
		snprintf(buf, len, "%.1f %s", d, unit[u]);
	} else {
		snprintf(buf, len, "%" PRIu64 " %s", v, unit[u]);
	}
	return buf;
}

/* ------------------------------------------------------------------------ */
/* Command-line values                                                      */

/* Parse a byte count: decimal digits with an optional K, M, G or T suffix
 * (powers of 1024; "KiB", "k", "MB" ... are accepted).  Rejects garbage,
 * signs, overflow, zero unless allow_zero.  opt names the argument. */
static int parse_size(const char *opt, const char *s, bool allow_zero, uint64_t *out)
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
struct opt {
	const char *name;  /* "--size" */
	bool has_value;
	const char **value; /* where the value goes (has_value) */
	bool *flag;         /* set when seen (!has_value) */
};

static int parse_opts(int argc, char **argv, const struct opt *opts, const char **pos, int npos_max,
		      int *npos)
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

static int parse_page_size(const char *s, uint32_t *out)
{
	uint64_t v;
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

static const struct {
	unsigned bit;
	const char *name;
	const char *what;
} features[] = {
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
};

/* "minor wp poison ... (missing: move)" */
static void print_features_line(FILE *f, unsigned feat)
{
	const char *sep = "";
	for (size_t i = 0; i < sizeof features / sizeof features[0]; i++)
		if (feat & features[i].bit) {
			fprintf(f, "%s%s", sep, features[i].name);
			sep = " ";
		}
	if (!*sep)
		fprintf(f, "(none)");
	sep = " (missing: ";
	for (size_t i = 0; i < sizeof features / sizeof features[0]; i++)
		if (!(feat & features[i].bit)) {
			fprintf(f, "%s%s", sep, features[i].name);
			sep = " ";
		}
	if (*sep != ' ')
		fprintf(f, ")");
	fputc('\n', f);
}

/* Every field of struct vmo_stats, one per line (reserved fields excepted).
 * Keep in step with include/vmo.h. */
static void print_stats(FILE *f, const char *indent, const struct vmo_stats *st)
{
	char b[32];
	fprintf(f, "%sresident        %s\n", indent, human(st->resident, b, sizeof b));
	fprintf(f, "%sdirty           %s\n", indent, human(st->dirty, b, sizeof b));
	fprintf(f, "%sfaults          %" PRIu64 " (missing %" PRIu64 ", minor %" PRIu64 ", wp %" PRIu64 ")\n",
		indent, st->faults, st->missing_faults, st->minor_faults, st->wp_faults);
	fprintf(f, "%spages read      %" PRIu64 " (read ahead %" PRIu64 ")\n", indent, st->pages_read,
		st->readahead);
	fprintf(f, "%swritebacks      %" PRIu64 " pages (write errors %" PRIu64 ")\n", indent,
		st->writebacks, st->write_errors);
	fprintf(f, "%sevictions       %" PRIu64 " pages\n", indent, st->evictions);
	fprintf(f, "%spager errors    %" PRIu64 "\n", indent, st->errors);
	fprintf(f, "%smappings        %" PRIu64 "\n", indent, st->mappings);
	if (st->budget)
		fprintf(f, "%sbudget          %s\n", indent, human(st->budget, b, sizeof b));
	else
		fprintf(f, "%sbudget          none\n", indent);
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

static void install_sigbus(void)
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
static bool guarded(void (*fn)(void *), void *arg, uintptr_t *bad)
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
static bool guarded_copy(void *dst, const void *src, size_t n, uintptr_t *bad)
{
	struct copy_args c = { dst, src, n };
	return guarded(do_copy, &c, bad);
}

/* ------------------------------------------------------------------------ */
/* Streaming a file through vmo mappings (cat, sum)                        */

/* The file is read in windows: one object per window, over the file pager
 * at base = the window's file offset, mapped read-only, copied out, then
 * unmapped and released so memory stays bounded by one window.  (When the
 * engine budget lands, one object with vmo_object_set_budget() would do.) */
#define WINDOW (32ull << 20)
#define CHUNK (1u << 20)

typedef int (*consume_fn)(void *arg, const void *buf, size_t len);

struct stream {
	const char *path;
	uint64_t offset, length; /* length UINT64_MAX: to end of file */
	uint32_t page_size;
	bool no_readahead;
	/* results */
	uint64_t bytes, ns;
	struct vmo_stats st;
};

/* Open path for reading, regular file or block device; exit-status style rc. */
static int open_input(const char *path, int *fd_out, uint64_t *size_out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return usage_error("FILE '%s': %s", path, strerror(errno));
	struct stat sb;
	if (fstat(fd, &sb) < 0) {
		int e = errno;
		close(fd);
		return usage_error("FILE '%s': %s", path, strerror(e));
	}
	uint64_t size;
	if (S_ISREG(sb.st_mode)) {
		size = (uint64_t)sb.st_size;
	} else if (S_ISBLK(sb.st_mode)) {
		off_t end = lseek(fd, 0, SEEK_END);
		if (end < 0) {
			int e = errno;
			close(fd);
			return usage_error("FILE '%s': %s", path, strerror(e));
		}
		size = (uint64_t)end;
	} else {
		close(fd);
		return usage_error("FILE '%s': not a regular file or block device (it cannot be paged)", path);
	}
	*fd_out = fd;
	*size_out = size;
	return 0;
}

/* Clip [offset, offset+length) to the file; exit-status style rc. */
static int clip_range(struct stream *s, uint64_t fsize)
{
	if (s->offset > fsize)
		return usage_error("--offset %" PRIu64 " is past the end of '%s' (%" PRIu64 " bytes)", s->offset,
				   s->path, fsize);
	if (s->length > fsize - s->offset)
		s->length = fsize - s->offset; /* clipped at end of file, as head -c */
	return 0;
}

static int stream_file(struct stream *s, consume_fn fn, void *arg)
{
	int fd;
	uint64_t fsize;
	int rc = open_input(s->path, &fd, &fsize);
	if (rc)
		return rc;
	if ((rc = clip_range(s, fsize))) {
		close(fd);
		return rc;
	}
	s->bytes = 0;
	s->ns = 0;
	memset(&s->st, 0, sizeof s->st);
	if (!s->length) { /* nothing to map (an object is never empty) */
		close(fd);
		return 0;
	}
	char *buf = malloc(CHUNK);
	if (!buf) {
		close(fd);
		return fail("malloc", -ENOMEM);
	}
	install_sigbus();
	struct vmo_engine *eng = NULL;
	int ret = 0;
	if ((rc = vmo_engine_create(NULL, &eng))) {
		ret = engine_fail(rc);
		goto out;
	}
	uint64_t t0 = now_ns();
	for (uint64_t done = 0; done < s->length && !ret;) {
		uint64_t wlen = s->length - done < WINDOW ? s->length - done : WINDOW;
		const struct vmo_pager_ops *ops;
		void *ctx;
		if ((rc = vmo_pager_file(fd, s->offset + done, &ops, &ctx))) {
			ret = fail("vmo_pager_file", rc);
			break;
		}
		struct vmo_object_opts oo = {
			.flags = s->no_readahead ? VMO_OBJ_NO_READAHEAD : 0,
			.page_size = s->page_size,
			.size = wlen, /* rounded up to the page size; the tail reads as zeros */
		};
		struct vmo_object *obj;
		if ((rc = vmo_object_create(eng, ops, ctx, &oo, &obj))) {
			if (ops->release)
				ops->release(ctx); /* the object never took ctx over */
			ret = fail("vmo_object_create", rc);
			break;
		}
		size_t mlen = (size_t)vmo_object_size(obj);
		void *base = NULL;
		if ((rc = vmo_map(obj, 0, mlen, VMO_PROT_READ, &base))) {
			ret = fail("vmo_map", rc);
			vmo_object_unref(obj);
			break;
		}
		for (uint64_t w = 0; w < wlen; w += CHUNK) {
			size_t n = wlen - w < CHUNK ? (size_t)(wlen - w) : CHUNK;
			uintptr_t bad = 0;
			if (!guarded_copy(buf, (char *)base + w, n, &bad)) {
				uint64_t off = bad - (uintptr_t)base;
				int perr = vmo_get_error(obj, off & ~(uint64_t)(vmo_object_page_size(obj) - 1));
				msg("'%s': page at file offset %" PRIu64 " could not be read: %s", s->path,
				    s->offset + done + off, perr ? vmo_strerror(perr) : "SIGBUS");
				ret = 1;
				break;
			}
			if ((rc = fn(arg, buf, n))) {
				ret = rc;
				break;
			}
			s->bytes += n;
		}
		if ((rc = vmo_unmap(obj, base, mlen)) && !ret)
			ret = fail("vmo_unmap", rc);
		vmo_object_unref(obj);
		done += wlen;
	}
	s->ns = now_ns() - t0;
	/* engine stats include objects already released */
	if ((rc = vmo_engine_stats(eng, &s->st)) && !ret)
		ret = fail("vmo_engine_stats", rc);
	if ((rc = vmo_engine_destroy(eng)) && !ret)
		ret = fail("vmo_engine_destroy", rc);
out:
	free(buf);
	close(fd);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* vmo cat                                                                  */

static int write_all(void *arg, const void *buf, size_t len)
{
	(void)arg;
	const char *p = buf;
	while (len) {
		ssize_t w = write(STDOUT_FILENO, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			msg("writing to standard output: %s", strerror(errno));
			return 1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static int cmd_cat(int argc, char **argv)
{
	const char *offset = NULL, *length = NULL, *psize = NULL, *pos[1];
	bool no_ra = false;
	const struct opt opts[] = {
		{ "--offset", true, &offset, NULL },
		{ "--length", true, &length, NULL },
		{ "--page-size", true, &psize, NULL },
		{ "--no-readahead", false, NULL, &no_ra },
		{ NULL, false, NULL, NULL },
	};
	int npos, rc = parse_opts(argc, argv, opts, pos, 1, &npos);
	if (rc)
		return rc;
	if (npos != 1)
		return usage_error("missing FILE (usage: vmo cat [--offset N] [--length N] [--page-size N] FILE)");
	struct stream s = { .path = pos[0], .length = UINT64_MAX, .no_readahead = no_ra };
	if (offset && (rc = parse_size("--offset", offset, true, &s.offset)))
		return rc;
	if (s.offset > INT64_MAX)
		return usage_error("--offset: '%s' is too large", offset);
	if (length && (rc = parse_size("--length", length, false, &s.length)))
		return rc;
	if (psize && (rc = parse_page_size(psize, &s.page_size)))
		return rc;
	return stream_file(&s, write_all, NULL);
}

/* ------------------------------------------------------------------------ */
/* vmo sum                                                                  */

#define FNV_BASIS 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static int fnv_update(void *arg, const void *buf, size_t len)
{
	uint64_t h = *(uint64_t *)arg;
	const unsigned char *p = buf;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= FNV_PRIME;
	}
	*(uint64_t *)arg = h;
	return 0;
}

/* The same checksum with plain read(2): the reference vmo is checked against. */
static int sum_reference(const char *path, uint64_t *h)
{
	int fd;
	uint64_t fsize;
	int rc = open_input(path, &fd, &fsize);
	if (rc)
		return rc;
	char *buf = malloc(CHUNK);
	if (!buf) {
		close(fd);
		return fail("malloc", -ENOMEM);
	}
	for (;;) {
		ssize_t r = read(fd, buf, CHUNK);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			msg("reading '%s': %s", path, strerror(errno));
			rc = 1;
			break;
		}
		if (r == 0)
			break;
		fnv_update(h, buf, (size_t)r);
	}
	free(buf);
	close(fd);
	return rc;
}

static int cmd_sum(int argc, char **argv)
{
	const char *psize = NULL, *pos[1];
	bool reference = false, no_ra = false;
	const struct opt opts[] = {
		{ "--page-size", true, &psize, NULL },
		{ "--no-readahead", false, NULL, &no_ra },
		{ "--reference", false, NULL, &reference },
		{ NULL, false, NULL, NULL },
	};
	int npos, rc = parse_opts(argc, argv, opts, pos, 1, &npos);
	if (rc)
		return rc;
	if (npos != 1)
		return usage_error("missing FILE (usage: vmo sum [--page-size N] [--no-readahead] [--reference] FILE)");
	struct stream s = { .path = pos[0], .length = UINT64_MAX, .no_readahead = no_ra };
	if (psize && (rc = parse_page_size(psize, &s.page_size)))
		return rc;
	uint64_t h = FNV_BASIS;
	if (reference) {
		if ((rc = sum_reference(s.path, &h)))
			return rc;
	} else {
		if ((rc = stream_file(&s, fnv_update, &h)))
			return rc;
		char b[32];
		fprintf(stderr, "vmo sum: %s in %.1f ms; faults %" PRIu64 ", pages read %" PRIu64
			" (read ahead %" PRIu64 ")\n",
			human(s.bytes, b, sizeof b), (double)s.ns / 1e6, s.st.faults, s.st.pages_read,
			s.st.readahead);
	}
	printf("%016" PRIx64 "  %s\n", h, s.path);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* vmo info                                                                 */

static int cmd_info(int argc, char **argv)
{
	const char *pos[1];
	int npos;
	const struct opt opts[] = { { NULL, false, NULL, NULL } };
	int rc = parse_opts(argc, argv, opts, pos, 0, &npos);
	if (rc)
		return rc;
	struct utsname u;
	printf("libvmo %d.%d.%d", VMO_VERSION_MAJOR, VMO_VERSION_MINOR, VMO_VERSION_PATCH);
	if (uname(&u) == 0)
		printf(" on %s %s %s", u.sysname, u.release, u.machine);
	printf("\n");
	struct vmo_engine *eng;
	if ((rc = vmo_engine_create(NULL, &eng))) {
		printf("userfaultfd: NOT AVAILABLE (%s)\n", vmo_strerror(rc));
		const char *d = vmo_last_error_detail();
		if (d && *d)
			printf("%s\n", d);
		return 1;
	}
	unsigned feat = vmo_engine_features(eng);
	printf("userfaultfd: available\n");
	printf("kernel features:\n");
	for (size_t i = 0; i < sizeof features / sizeof features[0]; i++)
		printf("  %-3s %-13s %s\n", feat & features[i].bit ? "yes" : "no", features[i].name,
		       features[i].what);
	const char *dis = getenv("VMO_DISABLE");
	if (dis && *dis)
		printf("VMO_DISABLE=%s: those mechanisms are treated as missing (fallbacks in use)\n", dis);
	printf("page sizes: 4 KiB .. 2 MiB (powers of two)\n");
	if ((rc = vmo_engine_destroy(eng)))
		return fail("vmo_engine_destroy", rc);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* vmo demo: the main job                                                   */

/* The data every byte is checked against: word at offset o. */
static inline uint64_t pattern(uint64_t o) { return (o * 0x9E3779B97F4A7C15ull) ^ 0x5bd1e995ull; }

static void fill_pattern(uint64_t *p, uint64_t off, size_t len, bool invert)
{
	for (size_t i = 0; i < len / 8; i++)
		p[i] = invert ? ~pattern(off + i * 8) : pattern(off + i * 8);
}

static inline uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

struct demo {
	uint64_t size, quarter, half; /* object bytes; mapping B starts at quarter */
	uint32_t psz;
	unsigned nthreads;
	unsigned write_pct; /* of the random touches, this percentage writes */
	char *a, *b; /* A = [0, size) read-write; B = [quarter, size) read-only */
	struct vmo_object *obj;
	/* inv[page]: the page holds the inverted pattern (it was written).  Each
	 * random-phase thread sets only the entries of its own pages. */
	unsigned char *inv;
};

/* Does page off hold the inverted (written) pattern? */
static inline bool demo_inverted(const struct demo *d, uint64_t off) { return d->inv[off / d->psz] != 0; }

/* The object offset of the page holding addr in mapping A or B. */
static uint64_t demo_offset(const struct demo *d, uintptr_t addr)
{
	uintptr_t a = (uintptr_t)d->a, b = (uintptr_t)d->b;
	uint64_t off = 0;
	if (addr >= a && addr - a < d->size)
		off = addr - a;
	else if (b && addr >= b && addr - b < d->size - d->quarter)
		off = d->quarter + (addr - b);
	return off / d->psz * d->psz;
}

struct toucher {
	struct demo *d;
	unsigned id;
	uint64_t pages, writes, ns, bad;
	uintptr_t bus; /* SIGBUS address, 0 if none */
	pthread_t th;
};

/* Touch this thread's share of [0, half) in a random order, through A or
 * (for pages B also covers) B, picked at random; check one word per page.
 * write_pct percent of the touches (spread evenly over the random order)
 * then write the whole page through A with the inverted pattern, a value
 * derived from the page's offset, so verification stays exact. */
struct touch_args {
	struct toucher *t;
	const uint64_t *order;
	uint64_t n, seed;
};

static void touch_loop(void *arg)
{
	struct touch_args *ta = arg;
	struct toucher *t = ta->t;
	const struct demo *d = t->d;
	for (uint64_t i = 0; i < ta->n; i++) {
		uint64_t pg = ta->order[i] * d->psz;
		uint64_t off = pg + (xorshift(&ta->seed) % (d->psz / 8)) * 8;
		const char *p = (off >= d->quarter && (ta->seed & 1)) ? d->b + (off - d->quarter) : d->a + off;
		if (*(const volatile uint64_t *)p != pattern(off))
			t->bad++;
		t->pages++;
		if ((i + 1) * d->write_pct / 100 > i * d->write_pct / 100) {
			fill_pattern((uint64_t *)(void *)(d->a + pg), pg, d->psz, true);
			d->inv[pg / d->psz] = 1;
			t->writes++;
		}
	}
}

static void *touch_random(void *arg)
{
	struct toucher *t = arg;
	struct demo *d = t->d;
	uint64_t npg = d->half / d->psz;
	uint64_t mine = npg / d->nthreads + (t->id < npg % d->nthreads);
	uint64_t *order = malloc((mine ? mine : 1) * sizeof *order);
	if (!order) {
		t->bad = UINT64_MAX;
		return NULL;
	}
	for (uint64_t i = 0; i < mine; i++)
		order[i] = t->id + i * d->nthreads;
	uint64_t seed = 0x2545F4914F6CDD1Dull + t->id * 0x9E3779B97F4A7C15ull;
	for (uint64_t i = mine; i > 1; i--) {
		uint64_t j = xorshift(&seed) % i, x = order[i - 1];
		order[i - 1] = order[j];
		order[j] = x;
	}
	struct touch_args ta = { t, order, mine, seed };
	uint64_t t0 = now_ns();
	guarded(touch_loop, &ta, &t->bus);
	t->ns = now_ns() - t0;
	free(order);
	return NULL;
}

/* Scan [half, size) in order through B; one word per page checked. */
struct scan_args {
	const struct demo *d;
	uint64_t bad;
};

static void scan_loop(void *arg)
{
	struct scan_args *sa = arg;
	const struct demo *d = sa->d;
	for (uint64_t off = d->half; off < d->size; off += d->psz)
		if (*(const volatile uint64_t *)(d->b + (off - d->quarter)) != pattern(off))
			sa->bad++;
}

static int scan_sequential(struct demo *d, uint64_t *ns, uint64_t *bad, uintptr_t *bus)
{
	struct scan_args sa = { d, 0 };
	uint64_t t0 = now_ns();
	bool ok = guarded(scan_loop, &sa, bus);
	*ns = now_ns() - t0;
	*bad = sa.bad;
	return ok ? 0 : 1;
}

/* Compare [view_off, size) of view (mapping the object from view_off) with
 * the pattern, written pages (d->inv) with the inverse.  Returns mismatching
 * pages; reports the first. */
static uint64_t verify_view(struct demo *d, const char *name, const char *view, uint64_t view_off,
			    uint64_t *pages, uintptr_t *bus)
{
	uint64_t *want = malloc(d->psz), *got = malloc(d->psz), nbad = 0;
	if (!want || !got) {
		free(want);
		free(got);
		return UINT64_MAX;
	}
	for (uint64_t off = view_off; off < d->size; off += d->psz) {
		fill_pattern(want, off, d->psz, demo_inverted(d, off));
		if (!guarded_copy(got, view + (off - view_off), d->psz, bus)) {
			nbad++;
			break;
		}
		(*pages)++;
		if (memcmp(want, got, d->psz)) {
			if (!nbad++) {
				size_t w = 0;
				while (want[w] == got[w])
					w++;
				msg("MISMATCH through mapping %s at object offset %" PRIu64 ": expected %016" PRIx64
				    ", read %016" PRIx64, name, off + w * 8, want[w], got[w]);
			}
		}
	}
	free(want);
	free(got);
	return nbad;
}

/* Create the backing file: size bytes of pattern, in TMPDIR, unlinked. */
static int make_pattern_file(uint64_t size, int *fd_out)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	snprintf(path, sizeof path, "%s/vmo-demo-XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path);
	if (fd < 0) {
		msg("cannot create a temporary file in %s: %s", dir && *dir ? dir : "/tmp", strerror(errno));
		return 1;
	}
	unlink(path);
	uint64_t *buf = malloc(CHUNK);
	if (!buf) {
		close(fd);
		return fail("malloc", -ENOMEM);
	}
	for (uint64_t off = 0; off < size; off += CHUNK) {
		size_t n = size - off < CHUNK ? (size_t)(size - off) : CHUNK;
		fill_pattern(buf, off, n, false);
		ssize_t w = pwrite(fd, buf, n, (off_t)off);
		if (w != (ssize_t)n) {
			msg("writing the temporary file: %s", w < 0 ? strerror(errno) : "short write (disk full?)");
			free(buf);
			close(fd);
			return 1;
		}
	}
	free(buf);
	*fd_out = fd;
	return 0;
}

/* Read page off of the file with pread and compare it with the pattern. */
static int check_file_page(const struct demo *d, int fd, uint64_t off, bool inverted)
{
	uint64_t *want = malloc(d->psz), *got = malloc(d->psz);
	int ret = 1;
	if (!want || !got) {
		fail("malloc", -ENOMEM);
		goto out;
	}
	fill_pattern(want, off, d->psz, inverted);
	ssize_t r = pread(fd, got, d->psz, (off_t)off);
	if (r != (ssize_t)d->psz) {
		msg("reading the file back at %" PRIu64 ": %s", off, r < 0 ? strerror(errno) : "short read");
		goto out;
	}
	if (memcmp(want, got, d->psz)) {
		msg("MISMATCH: the file at %" PRIu64 " does not hold the %s data", off,
		    inverted ? "written" : "original");
		goto out;
	}
	ret = 0;
out:
	free(want);
	free(got);
	return ret;
}

/* After vmo_sync: every page of the file, read with pread, holds what the
 * object holds (the pattern, or its inverse for pages written), whether the
 * sync or the evictor wrote it back. */
static int verify_file(const struct demo *d, int fd)
{
	uint64_t *want = malloc(d->psz), *got = malloc(CHUNK > d->psz ? CHUNK : d->psz);
	uint64_t ninv = 0;
	int ret = 1;
	if (!want || !got) {
		fail("malloc", -ENOMEM);
		goto out;
	}
	size_t chunk = CHUNK > d->psz ? CHUNK : d->psz; /* a multiple of the page size */
	for (uint64_t off = 0; off < d->size; off += chunk) {
		size_t n = d->size - off < chunk ? (size_t)(d->size - off) : chunk;
		ssize_t r = pread(fd, got, n, (off_t)off);
		if (r != (ssize_t)n) {
			msg("reading the file back at %" PRIu64 ": %s", off, r < 0 ? strerror(errno) : "short read");
			goto out;
		}
		for (size_t po = 0; po < n; po += d->psz) {
			bool inv = demo_inverted(d, off + po);
			ninv += inv;
			fill_pattern(want, off + po, d->psz, inv);
			if (memcmp(want, (char *)got + po, d->psz)) {
				msg("MISMATCH: the file at %" PRIu64 " does not hold the %s data after vmo_sync",
				    off + po, inv ? "written" : "original");
				goto out;
			}
		}
	}
	char b[32];
	printf("file:        every page of the %s file is right after vmo_sync (pread), %" PRIu64
	       " written: OK\n", human(d->size, b, sizeof b), ninv);
	ret = 0;
out:
	free(want);
	free(got);
	return ret;
}

/* Writeback (Hurd pager_sync / pager_return): vmo_sync writes the pages the
 * demo wrote to the file through the pager's write callback; pread shows they
 * are there (and a neighbour unchanged).  Then vmo_return drops every page
 * from memory, and the written pages, touched again through B, come back
 * from the file. */
static int demo_writeback(struct demo *d, int fd, const uint64_t *written, int nw, bool whole_file)
{
	struct vmo_stats before, after;
	int rc;
	if ((rc = vmo_object_stats(d->obj, &before)))
		return fail("vmo_object_stats", rc);
	uint64_t t0 = now_ns();
	if ((rc = vmo_sync(d->obj, VMO_WAIT)))
		return fail("vmo_sync", rc);
	uint64_t t1 = now_ns();
	if ((rc = vmo_object_stats(d->obj, &after)))
		return fail("vmo_object_stats", rc);
	for (int i = 0; i < nw; i++)
		if (check_file_page(d, fd, written[i], true))
			return 1;
	if (check_file_page(d, fd, written[0] - d->psz, demo_inverted(d, written[0] - d->psz)))
		return 1;
	char b1[32];
	printf("writeback:   vmo_sync wrote %" PRIu64 " pages in %.2f ms; the file holds them (pread): OK\n",
	       after.writebacks - before.writebacks, (double)(t1 - t0) / 1e6);
	if (whole_file && verify_file(d, fd))
		return 1;
	if (after.dirty) {
		msg("%s still dirty after vmo_sync", human(after.dirty, b1, sizeof b1));
		return 1;
	}

	t0 = now_ns();
	if ((rc = vmo_return(d->obj, VMO_WAIT)))
		return fail("vmo_return", rc);
	t1 = now_ns();
	if ((rc = vmo_object_stats(d->obj, &after)))
		return fail("vmo_object_stats", rc);
	printf("return:      vmo_return dropped %s in %.2f ms (%s resident now)",
	       human(before.resident - after.resident, b1, sizeof b1), (double)(t1 - t0) / 1e6,
	       human(after.resident, (char[32]){ 0 }, 32));
	uint64_t *want = malloc(d->psz), *got = malloc(d->psz);
	int ret = 0;
	if (!want || !got) {
		ret = fail("malloc", -ENOMEM);
		goto out;
	}
	for (int i = 0; i < nw && !ret; i++) {
		uintptr_t bus = 0;
		fill_pattern(want, written[i], d->psz, true);
		if (!guarded_copy(got, d->b + (written[i] - d->quarter), d->psz, &bus)) {
			printf("\n");
			msg("SIGBUS re-reading page %" PRIu64 " (pager error: %s)", written[i],
			    vmo_strerror(vmo_get_error(d->obj, written[i])));
			ret = 1;
		} else if (memcmp(want, got, d->psz)) {
			printf("\n");
			msg("MISMATCH: page %" PRIu64 " re-read from the file after vmo_return", written[i]);
			ret = 1;
		}
	}
	if (!ret)
		printf("; written pages re-read from the file: OK\n");
out:
	free(want);
	free(got);
	return ret;
}

/* With --budget: a thread samples the object's resident bytes (every
 * 100 us) for the whole run, to report the most it held. */
struct sampler {
	struct vmo_object *obj;
	atomic_bool stop;
	_Atomic uint64_t max;
	uint64_t samples;
	pthread_t th;
	bool running;
};

static void sampler_note(struct sampler *sm, uint64_t resident)
{
	uint64_t m = atomic_load(&sm->max);
	while (resident > m && !atomic_compare_exchange_weak(&sm->max, &m, resident))
		;
}

static void *sampler_run(void *arg)
{
	struct sampler *sm = arg;
	const struct timespec nap = { 0, 100000 };
	while (!atomic_load(&sm->stop)) {
		struct vmo_stats st;
		if (vmo_object_stats(sm->obj, &st) == 0)
			sampler_note(sm, st.resident);
		sm->samples++;
		nanosleep(&nap, NULL);
	}
	return NULL;
}

static void sampler_stop(struct sampler *sm)
{
	if (!sm->running)
		return;
	atomic_store(&sm->stop, true);
	pthread_join(sm->th, NULL);
	sm->running = false;
}

static int cmd_demo(int argc, char **argv)
{
	const char *size_s = NULL, *threads_s = NULL, *psize_s = NULL, *budget_s = NULL, *wpct_s = NULL,
		   *pos[1];
	bool no_ra = false, dirty_async = false;
	const struct opt opts[] = {
		{ "--size", true, &size_s, NULL },
		{ "--threads", true, &threads_s, NULL },
		{ "--page-size", true, &psize_s, NULL },
		{ "--no-readahead", false, NULL, &no_ra },
		{ "--budget", true, &budget_s, NULL },
		{ "--write-pct", true, &wpct_s, NULL },
		{ "--dirty-async", false, NULL, &dirty_async },
		{ NULL, false, NULL, NULL },
	};
	int npos, rc = parse_opts(argc, argv, opts, pos, 0, &npos);
	if (rc)
		return rc;
	struct demo d = { .size = 64ull << 20, .psz = 4096, .nthreads = 2 };
	if (size_s && (rc = parse_size("--size", size_s, false, &d.size)))
		return rc;
	if (threads_s) {
		uint64_t n;
		char *end;
		errno = 0;
		if (threads_s[0] < '0' || threads_s[0] > '9' ||
		    (n = strtoull(threads_s, &end, 10), errno || *end) || n < 1 || n > 64)
			return usage_error("--threads: '%s' must be a number from 1 to 64", threads_s);
		d.nthreads = (unsigned)n;
	}
	if (psize_s && (rc = parse_page_size(psize_s, &d.psz)))
		return rc;
	if (d.size % d.psz || d.size / d.psz < 4)
		return usage_error("--size: '%s' must be a multiple of the page size (%" PRIu32
				   ") and at least 4 pages", size_s ? size_s : "64M", d.psz);
	if (d.size > (16ull << 30))
		return usage_error("--size: '%s' is more than the demo's limit of 16G", size_s);
	uint64_t budget = 0;
	if (budget_s) {
		if ((rc = parse_size("--budget", budget_s, false, &budget)))
			return rc;
		char b[32];
		if (budget < d.psz)
			return usage_error("--budget: '%s' is less than one page (%s)", budget_s,
					   human(d.psz, b, sizeof b));
		if (budget > d.size)
			return usage_error("--budget: '%s' is more than the demo's size (%s)", budget_s,
					   human(d.size, b, sizeof b));
	}
	if (wpct_s) {
		uint64_t n;
		char *end;
		errno = 0;
		if (wpct_s[0] < '0' || wpct_s[0] > '9' || (n = strtoull(wpct_s, &end, 10), errno || *end) ||
		    n > 100)
			return usage_error("--write-pct: '%s' must be a whole number from 0 to 100", wpct_s);
		d.write_pct = (unsigned)n;
	}
	d.quarter = d.size / 4 / d.psz * d.psz;
	d.half = d.size / 2 / d.psz * d.psz;
	/* Anything beyond the default run: say more, print the engine's stats. */
	bool extended = budget_s || wpct_s || dirty_async;

	install_sigbus();
	char b1[32], b2[32];
	printf("vmo demo: a %s file paged through libvmo's file pager; page size %s, %u threads, "
	       "read-ahead %s\n",
	       human(d.size, b1, sizeof b1), human(d.psz, b2, sizeof b2), d.nthreads, no_ra ? "off" : "on");

	struct vmo_engine *eng;
	struct vmo_engine_opts eo = { .flags = dirty_async ? VMO_ENGINE_DIRTY_ASYNC : 0 };
	if ((rc = vmo_engine_create(&eo, &eng))) {
		if (dirty_async && rc == -EOPNOTSUPP) {
			msg("--dirty-async: the kernel refuses asynchronous dirty tracking: %s", vmo_strerror(rc));
			const char *det = vmo_last_error_detail();
			if (det && *det)
				fprintf(stderr, "%s\n", det);
			return 1;
		}
		return engine_fail(rc);
	}
	printf("kernel:      ");
	print_features_line(stdout, vmo_engine_features(eng));
	if (extended) {
		printf("dirty:       %s\n",
		       dirty_async ? "tracked asynchronously (VMO_ENGINE_DIRTY_ASYNC: UFFD_FEATURE_WP_ASYNC + "
				     "PAGEMAP_SCAN): first writes are tracked without a trap"
				   : "first-write trap (write-protect fault per clean page written)");
		if (budget)
			printf("memory:      --budget: the object may hold %s (low water 7/8 of it)%s\n",
			       human(budget, b1, sizeof b1), budget < d.size ? ": the run evicts" : "");
		printf("writes:      %u%% of the random touches write their page (inverted pattern)\n",
		       d.write_pct);
	}

	int ret = 1, fd = -1;
	d.a = d.b = NULL;
	struct sampler sm = { .running = false };
	d.inv = calloc(d.size / d.psz, 1);
	if (!d.inv) {
		fail("calloc", -ENOMEM);
		goto out_engine;
	}
	if (make_pattern_file(d.size, &fd))
		goto out_engine;

	const struct vmo_pager_ops *ops;
	void *ctx;
	if ((rc = vmo_pager_file(fd, 0, &ops, &ctx))) {
		fail("vmo_pager_file", rc);
		goto out_file;
	}
	/* size 0: the pager's report_extent gives the file's size */
	struct vmo_object_opts oo = { .flags = no_ra ? VMO_OBJ_NO_READAHEAD : 0, .page_size = d.psz,
				      .budget = budget };
	if ((rc = vmo_object_create(eng, ops, ctx, &oo, &d.obj))) {
		if (ops->release)
			ops->release(ctx);
		fail("vmo_object_create", rc);
		goto out_file;
	}
	if (vmo_object_size(d.obj) != d.size) {
		msg("object size %" PRIu64 " != file size %" PRIu64, vmo_object_size(d.obj), d.size);
		goto out_obj;
	}
	void *va = NULL, *vb = NULL;
	if ((rc = vmo_map(d.obj, 0, d.size, VMO_PROT_READ | VMO_PROT_WRITE, &va))) {
		fail("vmo_map A", rc);
		goto out_obj;
	}
	d.a = va;
	if ((rc = vmo_map(d.obj, d.quarter, d.size - d.quarter, VMO_PROT_READ, &vb))) {
		fail("vmo_map B", rc);
		goto out_unmap;
	}
	d.b = vb;
	printf("mappings:    A = [0, %s) read-write at %p; B = [%s, %s) read-only at %p\n",
	       human(d.size, b1, sizeof b1), va, human(d.quarter, b2, sizeof b2),
	       human(d.size, (char[32]){ 0 }, 32), vb);

	if (budget) {
		sm.obj = d.obj;
		if ((rc = pthread_create(&sm.th, NULL, sampler_run, &sm))) {
			fail("pthread_create", -rc);
			goto out_unmap;
		}
		sm.running = true;
	}

	/* 1. random first touches of [0, half) by nthreads threads */
	struct vmo_stats s0, s1, s2;
	if ((rc = vmo_object_stats(d.obj, &s0))) {
		fail("vmo_object_stats", rc);
		goto out_unmap;
	}
	struct toucher *t = calloc(d.nthreads, sizeof *t);
	if (!t) {
		fail("calloc", -ENOMEM);
		goto out_unmap;
	}
	unsigned started = 0;
	uint64_t tw0 = now_ns();
	for (; started < d.nthreads; started++) {
		t[started].d = &d;
		t[started].id = started;
		if ((rc = pthread_create(&t[started].th, NULL, touch_random, &t[started]))) {
			fail("pthread_create", -rc);
			break;
		}
	}
	uint64_t rpages = 0, rbad = 0, rns = 0, rwrites = 0;
	uintptr_t rbus = 0;
	for (unsigned i = 0; i < started; i++) {
		pthread_join(t[i].th, NULL);
		rpages += t[i].pages;
		rwrites += t[i].writes;
		rbad += t[i].bad;
		rns += t[i].ns;
		if (t[i].bus && !rbus)
			rbus = t[i].bus;
	}
	uint64_t rwall = now_ns() - tw0;
	free(t);
	if (started < d.nthreads)
		goto out_unmap;
	if (rbus) {
		msg("SIGBUS at %p during the random touches (pager error: %s)", (void *)rbus,
		    vmo_strerror(vmo_get_error(d.obj, demo_offset(&d, rbus))));
		goto out_unmap;
	}
	if ((rc = vmo_object_stats(d.obj, &s1))) {
		fail("vmo_object_stats", rc);
		goto out_unmap;
	}
	sampler_note(&sm, s1.resident);

	/* 2. a sequential scan of [half, size) through B */
	uint64_t sns = 0, sbad = 0;
	uintptr_t sbus = 0;
	if (scan_sequential(&d, &sns, &sbad, &sbus)) {
		msg("SIGBUS at %p during the sequential scan (pager error: %s)", (void *)sbus,
		    vmo_strerror(vmo_get_error(d.obj, demo_offset(&d, sbus))));
		goto out_unmap;
	}
	if ((rc = vmo_object_stats(d.obj, &s2))) {
		fail("vmo_object_stats", rc);
		goto out_unmap;
	}
	sampler_note(&sm, s2.resident);
	uint64_t spages = (d.size - d.half) / d.psz;
	double r_lat = rpages ? (double)rns / (double)rpages : 0;
	double r_wall = rpages ? (double)rwall / (double)rpages : 0;
	double s_lat = spages ? (double)sns / (double)spages : 0;
	printf("random:      %" PRIu64 " pages by %u threads in %.1f ms: %.0f ns/page latency, "
	       "%.0f ns/page throughput; %" PRIu64 " faults, %" PRIu64 " read ahead",
	       rpages, d.nthreads, (double)rwall / 1e6, r_lat, r_wall, s1.faults - s0.faults,
	       s1.readahead - s0.readahead);
	if (d.write_pct)
		printf("; %" PRIu64 " pages written (%" PRIu64 " wp faults)", rwrites,
		       s1.wp_faults - s0.wp_faults);
	printf("\n");
	printf("sequential:  %" PRIu64 " pages in %.1f ms: %.0f ns/page; %" PRIu64 " faults, %" PRIu64
	       " read ahead (%.1fx faster per page than random)\n",
	       spages, (double)sns / 1e6, s_lat, s2.faults - s1.faults, s2.readahead - s1.readahead,
	       s_lat > 0 ? r_lat / s_lat : 0);
	if (rbad || sbad) {
		msg("MISMATCH: %" PRIu64 " pages read wrong data during the touches", rbad + sbad);
		goto out_unmap;
	}

	/* 3. write a few pages through A; B must see them at once */
	uint64_t written[4] = { d.quarter, d.half, d.size - d.psz, d.quarter + ((d.half - d.quarter) / 2 / d.psz) * d.psz };
	int nw = 4;
	if (written[3] == d.quarter)
		nw = 3; /* too small to have a fourth distinct page */
	uintptr_t wbus = 0;
	for (int i = 0; i < nw; i++) {
		uint64_t *tmp = malloc(d.psz);
		if (!tmp) {
			fail("malloc", -ENOMEM);
			goto out_unmap;
		}
		fill_pattern(tmp, written[i], d.psz, true);
		bool ok = guarded_copy(d.a + written[i], tmp, d.psz, &wbus);
		free(tmp);
		d.inv[written[i] / d.psz] = 1;
		if (!ok) {
			msg("SIGBUS at %p writing page at %" PRIu64 " (the pager refused: %s)", (void *)wbus,
			    written[i], vmo_strerror(vmo_get_error(d.obj, written[i])));
			goto out_unmap;
		}
	}

	/* 4. every byte, through both mappings */
	uint64_t vpages = 0, vbad = 0;
	uintptr_t vbus = 0;
	vbad += verify_view(&d, "A", d.a, 0, &vpages, &vbus);
	if (!vbus)
		vbad += verify_view(&d, "B", d.b, d.quarter, &vpages, &vbus);
	if (vbus) {
		msg("SIGBUS at %p while verifying", (void *)vbus);
		goto out_unmap;
	}
	struct vmo_stats s3;
	if ((rc = vmo_object_stats(d.obj, &s3))) {
		fail("vmo_object_stats", rc);
		goto out_unmap;
	}
	printf("written:     %d pages through A, seen through B; %s resident, %s dirty\n", nw,
	       human(s3.resident, b1, sizeof b1), human(s3.dirty, b2, sizeof b2));
	uint64_t npages = d.size / d.psz;
	if (vbad) {
		printf("verified %" PRIu64 " pages: %" PRIu64 " MISMATCHED\n", npages, vbad);
		goto out_unmap;
	}
	if (vpages != npages + (d.size - d.quarter) / d.psz) {
		msg("verified %" PRIu64 " page views, expected %" PRIu64, vpages,
		    npages + (d.size - d.quarter) / d.psz);
		goto out_unmap;
	}

	/* 5. write back, check the file, drop the pages, read them again */
	if (demo_writeback(&d, fd, written, nw, extended))
		goto out_unmap;
	sampler_stop(&sm);
	if ((rc = vmo_object_stats(d.obj, &s3))) {
		fail("vmo_object_stats", rc);
		goto out_unmap;
	}
	if (budget) {
		sampler_note(&sm, s3.resident);
		uint64_t mx = atomic_load(&sm.max);
		printf("budget:      %s; max resident observed %" PRIu64 " B (%s) over %" PRIu64 " samples; %" PRIu64
		       " pages evicted, %" PRIu64 " written back\n",
		       human(budget, b1, sizeof b1), mx, human(mx, b2, sizeof b2), sm.samples, s3.evictions,
		       s3.writebacks);
	}
	printf("object stats:\n");
	print_stats(stdout, "  ", &s3);
	if (extended) {
		struct vmo_stats es;
		if ((rc = vmo_engine_stats(eng, &es))) {
			fail("vmo_engine_stats", rc);
			goto out_unmap;
		}
		printf("engine stats:\n");
		print_stats(stdout, "  ", &es);
	}
	printf("verified %" PRIu64 " pages: OK (every byte of %s through A, %s through B)\n", npages,
	       human(d.size, b1, sizeof b1), human(d.size - d.quarter, b2, sizeof b2));
	ret = 0;

out_unmap:
	sampler_stop(&sm);
	if (d.b && (rc = vmo_unmap(d.obj, d.b, d.size - d.quarter)))
		ret = fail("vmo_unmap B", rc);
	if (d.a && (rc = vmo_unmap(d.obj, d.a, d.size)))
		ret = fail("vmo_unmap A", rc);
out_obj:
	vmo_object_unref(d.obj);
out_file:
	close(fd);
out_engine:
	free(d.inv);
	if ((rc = vmo_engine_destroy(eng)))
		ret = fail("vmo_engine_destroy", rc);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* The table of subcommands                                                 */

static int cmd_help(int argc, char **argv);

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv); /* argv[0] is the subcommand's name */
	const char *args;
	const char *help; /* lines after the first are indented under it */
} commands[] = {
	{ "demo", cmd_demo,
	  "[--size N] [--threads N] [--page-size N] [--no-readahead] [--budget N]\n"
	  "         [--write-pct P] [--dirty-async]",
	  "The main job: create a temp file of --size bytes (default 64M) holding a known\n"
	  "pattern, page it through libvmo's file pager into an object mapped twice at\n"
	  "different offsets, touch random pages from --threads threads (default 2) and\n"
	  "scan sequentially, verify every byte, write a few pages through one mapping and\n"
	  "read them through the other, write them back to the file (vmo_sync), drop every\n"
	  "page (vmo_return) and read them again; print the kernel features, stats and\n"
	  "timings.  Exits 1 on any mismatch.\n"
	  "--budget N: cap the object's resident memory at N bytes (one page up to\n"
	  "--size), so the run evicts; report the most it held, and the engine's stats.\n"
	  "--write-pct P: P% (0 to 100, default 0) of the random touches write their page\n"
	  "(the inverted pattern), so dirty pages are written back and evicted; after\n"
	  "vmo_sync every page of the file is checked with pread.\n"
	  "--dirty-async: track dirty pages with UFFD_FEATURE_WP_ASYNC + PAGEMAP_SCAN\n"
	  "(VMO_ENGINE_DIRTY_ASYNC), first writes without a trap; exits 1 where the\n"
	  "kernel lacks them." },
	{ "cat", cmd_cat, "[--offset N] [--length N] [--page-size N] [--no-readahead] FILE",
	  "Write FILE (from --offset, --length bytes, clipped at end of file) to\n"
	  "standard output, read through vmo mappings over the file pager." },
	{ "sum", cmd_sum, "[--page-size N] [--no-readahead] [--reference] FILE",
	  "Print the FNV-1a 64-bit checksum (offset basis 0xcbf29ce484222325, prime\n"
	  "0x100000001b3, over every byte) of FILE read through a vmo mapping, as 16\n"
	  "hex digits and the name; faults and pages read go to standard error.\n"
	  "--reference: compute it with plain read(2) instead, to check vmo against." },
	{ "info", cmd_info, "",
	  "What the running kernel offers vmo (userfaultfd features), or why\n"
	  "userfaultfd cannot be used here and how to fix that." },
	/* To come: { "stats", ... } writeback and eviction counters of a run
	 * under a budget (print_stats() prints every field); { "cache", ... }
	 * the yield cache (vmo_cache_*). */
	{ "help", cmd_help, "", "This text." },
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
	fprintf(f, "usage: vmo COMMAND [OPTIONS]\n\n"
		   "Memory objects paged on demand by user-level pagers (libvmo %d.%d.%d).\n\n"
		   "Commands:\n",
		VMO_VERSION_MAJOR, VMO_VERSION_MINOR, VMO_VERSION_PATCH);
	for (size_t i = 0; i < NCOMMANDS; i++) {
		fprintf(f, "  vmo %s%s%s\n    ", commands[i].name, *commands[i].args ? " " : "", commands[i].args);
		for (const char *p = commands[i].help; *p; p++) {
			fputc(*p, f);
			if (*p == '\n')
				fputs("    ", f);
		}
		fputs("\n\n", f);
	}
	fprintf(f, "Sizes (N) are bytes, with an optional K, M, G or T suffix (powers of 1024).\n"
		   "--page-size: the unit in which faults are served, 4K times a power of two up\n"
		   "to 2M (default 4K).  --no-readahead: serve exactly the faulting page.\n"
		   "Exit status: 0 ok, 1 failure, 2 bad command line.\n");
}

static int cmd_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	usage(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return cmd_help(argc, argv);
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (!strcmp(argv[1], commands[i].name)) {
			static char name[64];
			snprintf(name, sizeof name, "vmo %s", commands[i].name);
			cur_cmd = name;
			/* "vmo CMD --help" */
			for (int j = 2; j < argc && strcmp(argv[j], "--"); j++)
				if (!strcmp(argv[j], "--help") || !strcmp(argv[j], "-h")) {
					printf("usage: vmo %s %s\n    ", commands[i].name, commands[i].args);
					for (const char *p = commands[i].help; *p; p++) {
						putchar(*p);
						if (*p == '\n')
							fputs("    ", stdout);
					}
					putchar('\n');
					return 0;
				}
			int rc = commands[i].run(argc - 1, argv + 1);
			if (fflush(stdout) && !rc) {
				msg("writing to standard output: %s", strerror(errno));
				rc = 1;
			}
			return rc;
		}
	fprintf(stderr, "vmo: unknown command '%s'\nTry 'vmo help'.\n", argv[1]);
	return EXIT_USAGE;
}
