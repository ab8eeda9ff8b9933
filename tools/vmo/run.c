/* SPDX-License-Identifier: MIT */
/* vmo run: run an unmodified program with its large anonymous memory and
 * its heap paged by vmo (docs/run.md); vmo stats PID: what such a program's
 * vmo is doing now.
 *
 * `vmo run` only sets the environment libvmo-run.so reads (VMO_RUN_*), puts
 * that library in LD_PRELOAD, and execs the program: the program's pid,
 * exit status and signals are its own. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef VMO_RUN_LIB_INSTALLED
#define VMO_RUN_LIB_INSTALLED "/usr/local/lib/vmo/libvmo-run.so"
#endif

/* The preload library: $VMO_RUN_LIB, next to this executable (a build
 * tree), or where it is installed (relative to the executable first, so a
 * moved prefix works). */
static int find_lib(char *out, size_t len)
{
	const char *e = getenv("VMO_RUN_LIB");
	if (e && *e) {
		if (access(e, R_OK)) {
			msg("VMO_RUN_LIB=%s: %s", e, strerror(errno));
			return -1;
		}
		snprintf(out, len, "%s", e);
		return 0;
	}
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n > 0) {
		self[n] = 0;
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = 0;
			const char *rel[] = { "/libvmo-run.so", "/" VMO_RUN_LIB_REL };
			for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
				int k = snprintf(out, len, "%s%s", self, rel[i]);
				if (k > 0 && (size_t)k < len && access(out, R_OK) == 0)
					return 0;
			}
		}
	}
	snprintf(out, len, "%s", VMO_RUN_LIB_INSTALLED);
	if (access(out, R_OK) == 0)
		return 0;
	msg("libvmo-run.so not found (next to vmo, in %s, or in $VMO_RUN_LIB)", VMO_RUN_LIB_INSTALLED);
	return -1;
}

/* Is a the option name, as "--name" or "--name=VALUE"? */
static bool is_opt(const char *a, const char *name)
{
	size_t n = strlen(name);
	return !strncmp(a, name, n) && (a[n] == 0 || a[n] == '=');
}

/* A size option into the environment as plain bytes, what libvmo-run.so
 * reads; 0 or EXIT_USAGE (after a message naming the option). */
static int size_env(const char *opt, const char *val, bool allow_zero, uint64_t lo, uint64_t hi, const char *var)
{
	uint64_t v;
	if (parse_size(opt, val, allow_zero, &v))
		return EXIT_USAGE;
	if ((lo && v < lo) || (hi && v > hi))
		return usage_error("%s %s: from %lluM to %lluT", opt, val, (unsigned long long)(lo >> 20),
				   (unsigned long long)(hi >> 40));
	char num[32];
	snprintf(num, sizeof num, "%llu", (unsigned long long)v);
	setenv(var, num, 1);
	return 0;
}

static int cmd_run(int argc, char **argv)
{
	const char *budget = NULL, *store = NULL, *page_size = NULL, *min_map = NULL, *segment = NULL;
	bool no_heap = false, no_children = false, stats = false, verbose = false;
	const char *stats_file = NULL;
	int i = 1;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--")) {
			i++;
			break;
		}
		if (a[0] != '-')
			break;
		const char **val = NULL;
		if (is_opt(a, "--budget"))
			val = &budget;
		else if (is_opt(a, "--store"))
			val = &store;
		else if (is_opt(a, "--page-size"))
			val = &page_size;
		else if (is_opt(a, "--min-map"))
			val = &min_map;
		else if (is_opt(a, "--segment"))
			val = &segment;
		else if (!strcmp(a, "--no-heap"))
			no_heap = true;
		else if (!strcmp(a, "--no-children"))
			no_children = true;
		else if (!strcmp(a, "--stats"))
			stats = true;
		else if (!strncmp(a, "--stats=", 8))
			stats_file = a + 8;
		else if (!strcmp(a, "--verbose") || !strcmp(a, "-v"))
			verbose = true;
		else
			return usage_error("unknown option %s", a);
		if (val) {
			const char *eq = strchr(a, '=');
			if (eq) {
				*val = eq + 1;
			} else if (i + 1 < argc) {
				*val = argv[++i];
			} else {
				return usage_error("%s needs a value", a);
			}
		}
	}
	if (i >= argc)
		return usage_error("no program to run (vmo run [OPTIONS] -- PROGRAM [ARGS...])");
	if ((budget && size_env("--budget", budget, false, 0, 0, "VMO_RUN_BUDGET")) ||
	    (min_map && size_env("--min-map", min_map, true, 0, 0, "VMO_RUN_MIN_MAP")) ||
	    (segment && size_env("--segment", segment, false, 64u << 20, 1ull << 44, "VMO_RUN_SEGMENT")))
		return EXIT_USAGE;
	if (page_size) {
		uint32_t ps;
		char num[32];
		if (parse_page_size(page_size, &ps))
			return EXIT_USAGE;
		snprintf(num, sizeof num, "%u", ps);
		setenv("VMO_RUN_PAGE_SIZE", num, 1);
	}
	if (store) {
		/* Checked here, so a typo is a usage error and not a
		 * program run without vmo. */
		const struct vmo_pager_ops *ops;
		void *ctx;
		int rc = vmo_store_open(store, 1u << 20, 0, &ops, &ctx);
		if (rc) {
			msg("--store %s: %s", store, vmo_strerror(rc));
			if (*vmo_last_error_detail())
				msg("%s", vmo_last_error_detail());
			return rc == -EINVAL ? EXIT_USAGE : 1;
		}
		if (ops->release)
			ops->release(ctx);
		setenv("VMO_RUN_STORE", store, 1);
	}
	if (no_heap)
		setenv("VMO_RUN_HEAP", "0", 1);
	if (no_children)
		setenv("VMO_RUN_CHILDREN", "0", 1);
	if (stats_file && !*stats_file)
		return usage_error("--stats=FILE needs a file name");
	if (stats || stats_file)
		setenv("VMO_RUN_STATS", stats_file ? stats_file : "1", 1);
	if (verbose)
		setenv("VMO_RUN_VERBOSE", "1", 1);
	char lib[PATH_MAX];
	if (find_lib(lib, sizeof lib))
		return 1;
	const char *old = getenv("LD_PRELOAD");
	char pre[PATH_MAX * 2];
	/* jemalloc named too: a library's own dependencies come after the
	 * program's (libc's malloc) in the order symbols are looked up; a
	 * preloaded one comes before. */
	snprintf(pre, sizeof pre, "%s:libjemalloc.so.2%s%s", lib, old && *old ? ":" : "", old && *old ? old : "");
	setenv("LD_PRELOAD", pre, 1);
	execvp(argv[i], &argv[i]);
	msg("%s: %s", argv[i], strerror(errno));
	return errno == ENOENT ? 127 : 126;
}

const struct cli_cmd cli_cmd_run = {
	"run", cmd_run,
	"[--budget N] [--store URI] [--page-size N] [--min-map N] [--segment N] [--no-heap] [--no-children] "
	"[--stats[=FILE]] [--verbose] -- PROGRAM [ARGS...]",
	"Run PROGRAM, unmodified, with its heap and its anonymous mmaps of --min-map\n"
	"(256K) or more paged by vmo under --budget (resident bytes; default: no\n"
	"cap, memory given back under pressure).  --store: where pages go\n"
	"(default lz4 compressed memory of up to the budget, then an unnamed swap\n"
	"file in $TMPDIR; swap:PATH, zstd, nbd://... as in vmo store).\n"
	"--no-heap: only the mmaps.  --no-children: programs it execs run without\n"
	"vmo (default: each under vmo, with a budget of its own).  --stats: print\n"
	"the counters at exit (on stderr, or appended to FILE).  While it runs: vmo stats PID.  docs/run.md."
};

static int cmd_stats(int argc, char **argv)
{
	bool json = false;
	const char *pidarg = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (pidarg || argv[i][0] == '-')
			return usage_error("unexpected argument %s (vmo stats [--json] PID)", argv[i]);
		else
			pidarg = argv[i];
	}
	if (!pidarg)
		return usage_error("one process id (vmo stats [--json] PID)");
	char *end;
	long pid = strtol(pidarg, &end, 10);
	if (*end || pid <= 0 || pid > INT_MAX)
		return usage_error("%s is not a process id", pidarg);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail("socket", -errno);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int n = snprintf(sa.sun_path + 1, sizeof sa.sun_path - 1, "vmo-run.%ld", pid);
	if (connect(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n))) {
		int e = errno;
		close(fd);
		msg("process %ld does not run under vmo run (%s)", pid, strerror(e));
		return 1;
	}
	char buf[8192];
	size_t total = 0;
	ssize_t k;
	while (total < sizeof buf - 1 && (k = read(fd, buf + total, sizeof buf - 1 - total)) > 0)
		total += (size_t)k;
	close(fd);
	buf[total] = 0;
	if (total == 0) {
		msg("process %ld sent nothing (another user's process?)", pid);
		return 1;
	}
	if (!json) {
		fputs(buf, stdout);
		return fflush(stdout) ? 1 : 0;
	}
	/* key=value lines: numbers as numbers, the rest as strings */
	struct json j;
	json_begin(&j, stdout);
	for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = 0;
		const char *v = eq + 1;
		char *e2;
		errno = 0;
		unsigned long long u = strtoull(v, &e2, 10);
		if (*v && !*e2 && !errno && *v != '-') {
			json_u64(&j, line, u);
			continue;
		}
		double d = strtod(v, &e2);
		if (*v && !*e2)
			json_double(&j, line, d);
		else
			json_str(&j, line, v);
	}
	json_finish(&j);
	return fflush(stdout) ? 1 : 0;
}

const struct cli_cmd cli_cmd_stats = {
	"stats", cmd_stats, "[--json] PID",
	"What vmo does for a program running under vmo run: budget, resident,\n"
	"faults, evictions, segments, the store's size and compression ratio,\n"
	"one key=value per line (--json: one JSON object, numbers as numbers)."
};
