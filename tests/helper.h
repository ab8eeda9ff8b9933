/* helper.h - shared test helpers: checks that abort with a location, skips
 * (exit 77 with a reason), temp files, timing, fork-and-wait, and probing a
 * memory access that may raise SIGBUS/SIGSEGV. */
#ifndef VMO_TEST_HELPER_H
#define VMO_TEST_HELPER_H

#include "vmo.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#define CHECK(cond)                                                                         \
	do {                                                                                \
		if (!(cond)) {                                                              \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                            \
		}                                                                           \
	} while (0)

/* Check that an int expression equals an expected value (prints both). */
#define CHECK_EQ(expr, want)                                                                    \
	do {                                                                                    \
		long long got_ = (long long)(expr), want_ = (long long)(want);                  \
		if (got_ != want_) {                                                            \
			fprintf(stderr, "%s:%d: %s == %lld, expected %lld (%s)\n", __FILE__, __LINE__, \
				#expr, got_, want_, got_ < 0 ? vmo_strerror((int)got_) : "");       \
			abort();                                                                \
		}                                                                               \
	} while (0)

#define CHECK_OK(expr) CHECK_EQ((expr), 0)

/* Print a reason and exit 77 (ctest counts it as skipped). */
void t_skip(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* Skip unless an engine can be created here (prints vmo_last_error_detail()). */
void t_require_uffd(void);
/* A new engine with `workers` threads, or abort. */
struct vmo_engine *t_engine(unsigned workers);
/* Create a temporary file of `size` bytes in $TMPDIR (or /tmp), unlinked;
 * returns the fd.  If fill, every 8-byte word holds t_pattern(offset). */
int t_tmpfile(uint64_t size, bool fill);
static inline uint64_t t_pattern(uint64_t off) { return (off * 0x9E3779B97F4A7C15ull) ^ 0x5bd1e995ull; }
/* xorshift PRNG */
static inline uint64_t t_rand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}
uint64_t t_now_ns(void);
/* vm.max_map_count, or a skip (exit 77) where it cannot be read. */
long t_max_map_count(void);
/* Run fn(arg) in a forked child; return its wait status. */
int t_fork_run(void (*fn)(void *), void *arg);
/* Start fn(arg) in a forked child (stdio flushed first) and return its pid
 * without waiting; the child _exits 0 when fn returns.  For running several
 * children at once (wait for them with waitpid). */
pid_t t_fork_start(void (*fn)(void *), void *arg);
/* The name of a SIGBUS/SIGSEGV si_code ("BUS_ADRERR", "SI_QUEUE", ...), or
 * "si_code <n>" in a static buffer for others. */
const char *t_sig_code_name(int sig, int code);
/* Resident set of this process, in kB, from /proc/self/smaps_rollup (Rss). */
long t_rss_kb(void);

/* ---- probing an access that may raise SIGBUS/SIGSEGV ----------------------
 * A probe arms a per-thread sigjmp_buf (so several threads can probe at
 * once), does the one access and disarms.  A SIGBUS/SIGSEGV raised while
 * armed jumps back out of the probe (sigsetjmp(..., 1): the signal mask is
 * restored) and the probe returns the signal number; one raised anywhere
 * else resets the signal to SIG_DFL and re-raises it, so a real crash still
 * kills the test.  The handlers use SA_NODEFER. */
struct t_sig {
	int sig, code; /* signal number and si_code; 0 when no signal */
	void *addr;    /* si_addr */
	pid_t tid;     /* thread the signal was delivered to */
};
/* Install the SIGBUS and SIGSEGV handlers (once; later calls do nothing).
 * The probes call it too. */
void t_sig_install(void);
/* Read the word at p: 0 and *val (if val), or the signal number the read
 * raised (*val untouched).  If info, it gets the signal's details (all zero
 * when none). */
int t_probe_read(volatile const uint64_t *p, uint64_t *val, struct t_sig *info);
/* Write val to the word at p: 0, or the signal number the write raised. */
int t_probe_write(volatile uint64_t *p, uint64_t val, struct t_sig *info);

#endif
