/* SPDX-License-Identifier: MIT */
/* vmo - the command-line tool of libvmo.
 *
 *   vmo demo   the main job: a file-backed object, two mappings, threads,
 *              random and sequential first touches, full verification,
 *              writeback to the file and re-reading (demo.c)
 *   vmo cat    stream a file (or part of it) through a vmo mapping (cat.c)
 *   vmo sum    XXH3 64 of files read through a vmo mapping, as xxhsum -H3
 *              prints it (sum.c)
 *   vmo info   what the running kernel offers, or why userfaultfd is not
 *              there (info.c)
 *   vmo server speak to a running server (vmod): list, stats, sync, drop
 *              (server.c)
 *   vmo share  two processes share one object served by vmod (share.c)
 *   vmo run    an unmodified program paged by vmo (run.c, tools/run/)
 *   vmo stats  what vmo does in a program under vmo run (run.c)
 *   vmo help   usage (here); vmo help CMD: that command's; vmo --version
 *
 * Subcommands live in the table `commands` below: a new one (for instance
 * `vmo stats` for writeback/eviction counters, or `vmo cache` for the yield
 * cache) is a file NAME.c defining `const struct cli_cmd cli_cmd_NAME` around
 * a function `static int cmd_NAME(int argc, char **argv)`, declared in
 * cli.h, plus one row here.  cli.c is the kit they share (messages, values,
 * progress, reports); json.c the --json writer; stream.c the file streaming
 * of cat and sum.
 *
 * Exit status: 0 success, 1 failure at run time (a vmo call failed, data did
 * not match, a file could not be opened, standard output could not be
 * written), 2 bad command line (the message names the argument; `vmo` alone
 * is one: the usage goes to standard error).  The library prints nothing;
 * everything printed comes from these files. */
#include "cli.h"

#include <errno.h>
#include <string.h>

static int cmd_help(int argc, char **argv);

static const struct cli_cmd cli_cmd_help = { "help", cmd_help, "", "This text." };

static const struct cli_cmd *const commands[] = {
	&cli_cmd_demo,
	&cli_cmd_cat,
	&cli_cmd_sum,
	&cli_cmd_info,
	&cli_cmd_server,
	&cli_cmd_share,
	&cli_cmd_store,
	&cli_cmd_run,
	&cli_cmd_stats,
	/* To come: "cache", the yield cache (vmo_cache_*). */
	&cli_cmd_help,
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
	fprintf(f, "usage: vmo COMMAND [OPTIONS]\n\n"
		   "Memory objects paged on demand by user-level pagers (libvmo %d.%d.%d).\n\n"
		   "Commands:\n",
		VMO_VERSION_MAJOR, VMO_VERSION_MINOR, VMO_VERSION_PATCH);
	for (size_t i = 0; i < NCOMMANDS; i++) {
		const struct cli_cmd *c = commands[i];
		fprintf(f, "  vmo %s%s%s\n    ", c->name, *c->args ? " " : "", c->args);
		cli_put_indented(f, c->summary);
		fputs("\n\n", f);
	}
	fprintf(f, "Sizes (N) are bytes, with an optional K, M, G or T suffix (powers of 1024).\n"
		   "--page-size: the unit in which faults are served, 4K times a power of two up\n"
		   "to 2M (default 4K).  --no-readahead: serve exactly the faulting page.\n"
		   "vmo --version: the versions of the tool and the library.  vmo help COMMAND:\n"
		   "that command's options.  --json (demo, info, server): one JSON object on\n"
		   "standard output.  --progress, --no-progress (demo, cat, sum, store): the\n"
		   "progress line on standard error, by default shown on a terminal.\n"
		   "Exit status: 0 ok, 1 failure (a vmo call, a file, data that did not\n"
		   "match), 2 bad command line.\n");
}

/* "vmo help": every command; "vmo help CMD": that command's usage, as
 * "vmo CMD --help". */
static int cmd_help(int argc, char **argv)
{
	if (argc > 2) {
		fprintf(stderr, "vmo help: unexpected argument '%s' (vmo help [COMMAND])\nTry 'vmo help'.\n", argv[2]);
		return EXIT_USAGE;
	}
	if (argc == 2 && strcmp(argv[1], "--help") && strcmp(argv[1], "-h")) {
		for (size_t i = 0; i < NCOMMANDS; i++)
			if (!strcmp(argv[1], commands[i]->name)) {
				cli_set_command(commands[i]->name);
				cli_cmd_usage(commands[i]);
				return 0;
			}
		fprintf(stderr, "vmo help: unknown command '%s'\nTry 'vmo help'.\n", argv[1]);
		return EXIT_USAGE;
	}
	usage(stdout);
	return 0;
}

/* Run the command line; the exit status. */
static int run(int argc, char **argv)
{
	if (argc >= 2 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))) {
		/* the library's version and the one the tool was built with */
		printf("vmo %s (libvmo %s)\n", VMO_VERSION_STRING, vmo_version());
		return 0;
	}
	if (argc < 2) { /* no command: a usage error, as for any tool that needs one */
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return cmd_help(1, argv);
	if (!strcmp(argv[1], "help"))
		return cmd_help(argc - 1, argv + 1);
	for (size_t i = 0; i < NCOMMANDS; i++) {
		const struct cli_cmd *c = commands[i];
		if (strcmp(argv[1], c->name))
			continue;
		cli_set_command(c->name);
		if (cli_wants_help(argc - 1, argv + 1)) { /* "vmo CMD --help" */
			cli_cmd_usage(c);
			return 0;
		}
		return c->fn(argc - 1, argv + 1);
	}
	fprintf(stderr, "vmo: unknown command '%s'\nTry 'vmo help'.\n", argv[1]);
	return EXIT_USAGE;
}

int main(int argc, char **argv)
{
	int rc = run(argc, argv);
	/* Output that could not be written is a failure, whatever printed it
	 * (`vmo sum F >/dev/full`): the error may have come at an earlier
	 * flush (ferror) or comes now. */
	errno = 0;
	if ((fflush(stdout) || ferror(stdout)) && !rc) {
		msg("writing to standard output: %s", errno ? strerror(errno) : "write error");
		rc = 1;
	}
	return rc;
}
