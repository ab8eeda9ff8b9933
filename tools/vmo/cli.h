/* SPDX-License-Identifier: MIT */
/* The shared kit of the `vmo` tool: messages, command-line values, the
 * subcommand table type, reports both `info` and `demo` print, and guarded
 * reads of a mapping that may raise SIGBUS.  cli.c implements it.
 *
 * Exit status of every subcommand: 0 success, 1 failure at run time (a vmo
 * call failed, data did not match), EXIT_USAGE (2) bad command line (the
 * message names the argument). */
#ifndef VMO_TOOL_CLI_H
#define VMO_TOOL_CLI_H

#include "json.h"
#include "vmo.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define EXIT_USAGE 2

/* Byte counts of memcpy and read(2) buffers in cat, sum and demo. */
#define CHUNK (1u << 20)

/* ------------------------------------------------------------------------ */
/* Subcommands                                                              */

struct cli_cmd {
	const char *name;
	int (*fn)(int argc, char **argv); /* argv[0] is the subcommand's name */
	const char *args;                 /* "[--offset N] ... FILE", "" for none */
	const char *summary;              /* lines after the first are indented under it */
};

/* One per subcommand file (demo.c, cat.c, ...); main.c lists them. */
extern const struct cli_cmd cli_cmd_demo, cli_cmd_cat, cli_cmd_sum, cli_cmd_info, cli_cmd_server, cli_cmd_share,
    cli_cmd_store, cli_cmd_run, cli_cmd_stats;

/* "vmo demo", ... as the prefix of every message from now on. */
void cli_set_command(const char *name);

/* Print text, indenting every line after the first by four spaces. */
void cli_put_indented(FILE *f, const char *text);

/* Does argv (after the subcommand, up to a "--") ask for --help or -h? */
bool cli_wants_help(int argc, char **argv);

/* "usage: vmo NAME ARGS" and the command's text, on standard output. */
void cli_cmd_usage(const struct cli_cmd *c);

/* ------------------------------------------------------------------------ */
/* Messages (all on standard error, prefixed "vmo CMD: ")                   */

void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A bad command line: say what is wrong, point at help; returns EXIT_USAGE. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A vmo call failed: name it and print vmo_strerror(rc); returns 1. */
int fail(const char *what, int rc);

/* The engine could not be created: the library's detailed reason too; 1. */
int engine_fail(int rc);

uint64_t now_ns(void);

/* "64 MiB", "4 KiB", "123 B": exact when a whole number of units (else
 * approximate from 1 MiB up, "1.5 MiB").  The tool's only size formatter. */
const char *human(uint64_t n, char *buf, size_t len);
/* The same, always rounded to one decimal from 1 KiB up ("12.5 MiB"). */
const char *human_approx(uint64_t n, char *buf, size_t len);

/* ------------------------------------------------------------------------ */
/* Progress of long work: one line on standard error, rewritten with '\r' at
 * most four times a second ("vmo sum: reading 12.5 MiB of 40.0 MiB (31%),
 * 250.3 MiB/s"), erased at the end of each phase and before any message.
 * Shown when standard error is a terminal (and, for a command whose data
 * goes to standard output, that is not one), or as --progress and
 * --no-progress say. */

/* After the command line: on, off (--progress, --no-progress; both is a
 * usage error: EXIT_USAGE), writes_stdout (the command's data goes there). */
int progress_setup(bool on, bool off, bool writes_stdout);

/* A phase of total bytes; "what" is a short gerund ("reading"), kept. */
void progress_begin(const char *what, uint64_t total);

/* n more bytes done; from any thread; draws when due. */
void progress_add(uint64_t n);

/* Erase the line now (the next draw brings it back); msg() does. */
void progress_clear(void);

/* The phase is over: erase the line. */
void progress_end(void);

/* ------------------------------------------------------------------------ */
/* Command-line values: each returns 0 or, after a message naming opt,
 * EXIT_USAGE.                                                              */

/* A byte count: decimal digits with an optional K, M, G or T suffix (powers
 * of 1024; "KiB", "k", "MB" ... are accepted).  Rejects garbage, signs,
 * overflow, zero unless allow_zero. */
int parse_size(const char *opt, const char *s, bool allow_zero, uint64_t *out);

/* --page-size: 4K times a power of two, up to 2M. */
int parse_page_size(const char *s, uint32_t *out);

/* A small option parser: --name VALUE, --name=VALUE, flags, and positional
 * arguments (at most npos_max, into pos).  opts ends with a NULL name. */
struct opt {
	const char *name;  /* "--size" */
	bool has_value;
	const char **value; /* where the value goes (has_value) */
	bool *flag;         /* set when seen (!has_value) */
};

int parse_opts(int argc, char **argv, const struct opt *opts, const char **pos, int npos_max, int *npos);

/* ------------------------------------------------------------------------ */
/* Reports                                                                  */

struct feature {
	unsigned bit; /* VMO_FEAT_* */
	const char *name;
	const char *what;
};

extern const struct feature features[];
extern const size_t nfeatures;

/* "minor wp poison ... (missing: move)" and a newline. */
void print_features_line(FILE *f, unsigned feat);

/* Every field of struct vmo_stats, one per line (the size/version header excepted). */
void print_stats(FILE *f, const char *indent, const struct vmo_stats *st);

/* --json: "key": {"minor": true, "wp": false, ...}, every feature named. */
void json_features(struct json *j, const char *key, unsigned feat);

/* --json: "key": {"resident": N, ...}, every field of struct vmo_stats under
 * its name in vmo.h (bytes for resident, dirty, budget, pinned; else counts). */
void json_stats(struct json *j, const char *key, const struct vmo_stats *st);

/* ------------------------------------------------------------------------ */
/* SIGBUS: a page the pager could not supply.  Reads of a mapping that may
 * fault go through guarded sections; a SIGBUS inside one jumps back out of
 * it with the faulting address instead of killing the process.            */

/* Once per process, before the first guarded section. */
void install_sigbus(void);

/* Run fn(arg); false (and *bad = the faulting address) if it got SIGBUS.
 * Nothing fn changes may live in guarded()'s own frame: it is abandoned on
 * SIGBUS. */
bool guarded(void (*fn)(void *), void *arg, uintptr_t *bad);

/* memcpy to or from a mapping; false (*bad = faulting address) on SIGBUS. */
bool guarded_copy(void *dst, const void *src, size_t n, uintptr_t *bad);

#endif
