/* SPDX-License-Identifier: MIT */
/* log.c - logging, error strings, small shared utilities. */
#include "internal.h"

#include <signal.h>

#include <limits.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static vmo_log_fn log_fn;
static void *log_arg;
static _Atomic int log_max = -2; /* -2: not read from VMO_LOG yet; -1: off */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static int env_level(void)
{
	const char *e = getenv("VMO_LOG");
	if (!e || !*e)
		return -1;
	static const char *names[] = { "error", "warn", "info", "debug" };
	for (int i = 0; i < 4; i++)
		if (!strcasecmp(e, names[i]))
			return i;
	return VMO_LOG_DEBUG;
}

VMO_API void vmo_set_log(vmo_log_fn fn, void *arg, enum vmo_log_level max_level)
{
	pthread_mutex_lock(&log_mu);
	log_fn = fn;
	log_arg = arg;
	atomic_store(&log_max, fn ? (int)max_level : env_level());
	pthread_mutex_unlock(&log_mu);
}

void vmo__log(enum vmo_log_level level, const char *fmt, ...)
{
	int max = atomic_load_explicit(&log_max, memory_order_relaxed);
	if (max == -2) {
		max = env_level();
		atomic_store(&log_max, max);
	}
	if ((int)level > max)
		return;
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&log_mu);
	if (log_fn) {
		log_fn(log_arg, level, buf);
	} else {
		static const char *tag[] = { "error", "warn", "info", "debug" };
		fprintf(stderr, "vmo %s: %s\n", tag[level], buf);
	}
	pthread_mutex_unlock(&log_mu);
}

static VMO__TLS char detail[512];

void vmo__set_detail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	/* The caller gets the error and this text with it; the log has it at
	 * debug level (a server must not fill its log at error level with
	 * every bad request of a client). */
	if (detail[0])
		vmo__log(VMO_LOG_DEBUG, "%s", detail);
}

int vmo__thread_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -rc;
}

void vmo__sized_out(void *out, size_t size, void *s, size_t ssize, uint32_t version)
{
	size_t n = size < ssize ? size : ssize;
	uint32_t hdr[2] = { (uint32_t)n, version };
	memcpy(s, hdr, sizeof hdr);
	memcpy(out, s, n);
	memset((char *)out + n, 0, size - n);
}

void vmo__clear_detail(void)
{
	detail[0] = 0;
}

int vmo__not_on_client(const char *call)
{
	vmo__set_detail("%s: not for an object opened from a server (vmo_client_open): the server's "
			"pager side does that",
			call);
	return -EOPNOTSUPP;
}

VMO_API const char *vmo_last_error_detail(void)
{
	return detail;
}

VMO_API const char *vmo_strerror(int err)
{
	if (err < 0)
		err = err == INT_MIN ? INT_MAX : -err; /* (INT_MAX: an unknown code, as INT_MIN) */
	switch (err) {
	case 0:
		return "success";
	case VMO_ENOUFFD:
		return "userfaultfd is not available (see vmo_last_error_detail(): vm.unprivileged_userfaultfd, "
		       "/dev/userfaultfd access)";
	case VMO_ESHUTDOWN:
		return "memory object was shut down";
	default:
		return strerror(err);
	}
}

VMO_API const char *vmo_err_name(int err)
{
	if (err < 0)
		err = err == INT_MIN ? INT_MAX : -err;
	switch (err) {
	case 0:
		return "0";
	case VMO_ENOUFFD:
		return "VMO_ENOUFFD";
	case VMO_ESHUTDOWN:
		return "VMO_ESHUTDOWN";
	default: {
		const char *n = strerrorname_np(err); /* glibc 2.32 */
		return n ? n : "unknown";
	}
	}
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
		snprintf(buf, len, "%llu %s", (unsigned long long)v, unit[u]);
	}
	return buf;
}

VMO_API int vmo_stats_print(const struct vmo_stats *st, int fd, const char *indent)
{
	if (!st)
		return -EINVAL;
	const char *in = indent ? indent : "";
	char b[32], b2[32], out[1024];
	unsigned long long f = st->faults, mi = st->missing_faults, mn = st->minor_faults, wp = st->wp_faults;
	int n = snprintf(out, sizeof out,
			 "%sresident        %s\n"
			 "%sdirty           %s\n"
			 "%sfaults          %llu (missing %llu, minor %llu, wp %llu)\n"
			 "%spages read      %llu (read ahead %llu, filled in large folios %llu)\n"
			 "%swritebacks      %llu pages (write errors %llu)\n"
			 "%sevictions       %llu pages\n"
			 "%spager errors    %llu\n"
			 "%smappings        %llu\n"
			 "%sbudget          %s\n"
			 "%spinned          %s\n",
			 in, human(st->resident, b, sizeof b), in, human(st->dirty, b2, sizeof b2), in, f, mi, mn, wp,
			 in, (unsigned long long)st->pages_read, (unsigned long long)st->readahead,
			 (unsigned long long)st->large_fill, in, (unsigned long long)st->writebacks,
			 (unsigned long long)st->write_errors, in, (unsigned long long)st->evictions, in,
			 (unsigned long long)st->errors, in, (unsigned long long)st->mappings, in,
			 st->budget ? human(st->budget, b, sizeof b) : "none", in,
			 human(st->pinned, b2, sizeof b2));
	if (n < 0)
		return -EINVAL;
	size_t len = (size_t)n < sizeof out ? (size_t)n : sizeof out - 1;
	for (size_t put = 0; put < len;) {
		ssize_t r = write(fd, out + put, len - put);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		put += (size_t)r;
	}
	return 0;
}

bool vmo__all_zero(const void *p, size_t len)
{
	const char *c = p;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, c + i, 8); /* (any alignment) */
		if (w)
			return false;
	}
	for (; i < len; i++)
		if (c[i])
			return false;
	return true;
}

long vmo__pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;
	while (got < len) {
		ssize_t r = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break; /* end of file */
		got += (size_t)r;
	}
	return (long)got;
}

int vmo__pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	for (size_t put = 0; put < len;) {
		ssize_t r = pwrite(fd, (const char *)buf + put, len - put, (off_t)(off + put));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO;
		put += (size_t)r;
	}
	return 0;
}

long vmo__read_long(const char *path, long dflt)
{
	long v = dflt;
	FILE *f = fopen(path, "re");
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = dflt;
		fclose(f);
	}
	return v;
}

uint64_t vmo__now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* fork.c's child handler: another thread of the parent may have held the
 * lock at the fork; the child's only thread must be able to log. */
void vmo__log_atfork_child(void)
{
	pthread_mutex_init(&log_mu, NULL);
}
