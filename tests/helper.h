/* SPDX-License-Identifier: MIT */
/* helper.h - shared test helpers: named cases (t_main: run, list, filter,
 * skip), checks that abort with a location, skips (exit 77 with a reason),
 * temp files, timing, fork-and-wait, and probing a memory access that may
 * raise SIGBUS/SIGSEGV.  Black-box: only the public API (vmo.h); see
 * tests/README.md. */
#ifndef VMO_TEST_HELPER_H
#define VMO_TEST_HELPER_H

#include "vmo.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* Print "case NAME: FAILED" (when a case is running) to stderr and abort:
 * what a failed CHECK does after printing its location. */
void t_abort(void) __attribute__((noreturn));

#define CHECK(cond)                                                                         \
	do {                                                                                \
		if (!(cond)) {                                                              \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
			t_abort();                                                          \
		}                                                                           \
	} while (0)

/* Check that an int expression equals an expected value (prints both). */
#define CHECK_EQ(expr, want)                                                                    \
	do {                                                                                    \
		long long got_ = (long long)(expr), want_ = (long long)(want);                  \
		if (got_ != want_) {                                                            \
			fprintf(stderr, "%s:%d: %s == %lld, expected %lld (%s)\n", __FILE__, __LINE__, \
				#expr, got_, want_, got_ < 0 ? vmo_strerror((int)got_) : "");       \
			t_abort();                                                              \
		}                                                                               \
	} while (0)

#define CHECK_OK(expr) CHECK_EQ((expr), 0)

/* Skip the whole program: print a reason and exit 77 (ctest counts it as
 * skipped), whatever cases ran before.  For a precondition no case can do
 * without; t_skip_case (below) skips one case. */
void t_skip(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* Skip unless an engine can be created here (prints vmo_last_error_detail()). */
void t_require_uffd(void);
/* ---- named cases ----------------------------------------------------------
 * A test program is a table of named cases that t_main runs in table order,
 * in this process, one after the other:
 *
 *	static void case_basic(void) { ... CHECK(...); ... }
 *	int main(int argc, char **argv)
 *	{
 *		alarm(60);  // process-wide setup that creates nothing may stay here
 *		return t_main(argc, argv, T_CASES({ "basic", case_basic }, { "other", case_other }));
 *	}
 *
 *   prog --list        prints the case names, one a line, and runs nothing;
 *   prog NAME...       runs the cases whose name matches one of the NAMEs,
 *                      each the exact name or an fnmatch(3) glob ('wp-*');
 *                      a NAME that matches no case is an error (exit 2);
 *   T_CASES=glob,glob  (environment) the same when no NAME is given, so that
 *                      `T_CASES='x*' ctest` filters every program: one with no
 *                      case matching is skipped (exit 77).
 * Each case prints "case NAME: ok" or "case NAME: skipped (reason)" on
 * stdout; a failed CHECK prints its location and "case NAME: FAILED" on
 * stderr and aborts the program.  Exit status: 0 when at least one case
 * passed (and none failed), 77 when every selected case was skipped.
 *
 * Names: letters, digits and "-_./+=:" (no spaces or commas), unique.
 * main must not create anything before t_main (--list creates nothing):
 * a shared engine comes from t_shared_engine, preconditions are checked
 * in the cases. */
struct t_case {
	const char *name;
	void (*fn)(void);
};
/* The array and its length, for t_main: T_CASES({ "a", case_a }, { "b", case_b }) */
#define T_CASES(...)                                                                                \
	(const struct t_case[]){ __VA_ARGS__ },                                                     \
		sizeof((const struct t_case[]){ __VA_ARGS__ }) / sizeof(struct t_case)
/* Run the selected cases (above); returns the exit status for main. */
int t_main(int argc, char **argv, const struct t_case *cases, size_t n);
/* The selection t_main makes, for a program with a runner of its own
 * (test_failpaths runs its cases in forked children): handles --list and
 * --help (exit 0), bad arguments and a NAME matching nothing (exit 2), and
 * T_CASES matching nothing (exit 77); sets sel[i] for the cases to run and
 * returns how many (at least one). */
size_t t_select(int argc, char **argv, const char *const *names, size_t n, bool *sel);
/* The running case's name, or NULL outside a case. */
const char *t_case_name(void);

/* Skip the running case: print "case NAME: skipped (reason)" and leave the
 * case at once (siglongjmp back into t_main); the next case runs.  Nothing
 * the case holds is released on the way: release it first (or skip before
 * making anything).  Only from the case's own thread; anywhere else (outside
 * a case, another thread, a forked child) it is t_skip: exit 77. */
void t_skip_case(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* Skip the running case (t_skip_case) unless eng offers every VMO_FEAT_* bit
 * in mask; the reason names the missing ones ("wp continue-wp"). */
void t_require_features(struct vmo_engine *eng, unsigned mask);
/* The names of the VMO_FEAT_* bits in mask, space-separated (as `vmo info`
 * names them), in a per-thread buffer. */
const char *t_feature_names(unsigned mask);
/* One engine with `workers` threads shared by the cases of a program: made
 * at the first call (a skip of the program if userfaultfd cannot be had),
 * the same one after; t_main destroys it (CHECK) after the last case.  A
 * case must leave it without objects of its own. */
struct vmo_engine *t_shared_engine(unsigned workers);

/* A new engine with `workers` threads; a skip of the program (t_skip) where
 * userfaultfd cannot be had, else abort on failure. */
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

/* ---- a counting memory store: the pager most cases need ---------------
 * size bytes of data (each 8-byte word t_pattern(offset) ^ salt, or zeros
 * with salt 0... see t_store_new), the pages its read and write were asked
 * for, the release calls; a read of page fail_pg fails with -EIO; each read
 * sleeps delay_us; report_extent says extent.  t_store_ops: read, write,
 * report_extent, release (the store is freed by t_store_free, not
 * release). */
struct t_store {
	uint64_t *data;
	uint64_t size;
	_Atomic long reads, writes; /* pages */
	_Atomic long releases;
	int fail_pg;       /* -1: none */
	unsigned delay_us;
	uint64_t extent;
};
extern const struct vmo_pager_ops t_store_ops;
/* salt 0: all zeros; else each word t_pattern(off) ^ (salt - 1) (salt 1 is
 * t_pattern itself). */
struct t_store *t_store_new(uint64_t size, uint64_t salt);
void t_store_free(struct t_store *s);
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
