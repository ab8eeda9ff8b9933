/* SPDX-License-Identifier: MIT */
/* maxrss: run a program and print its peak resident set (KiB) on stderr,
 * last line, as "maxrss_kb=N"; exit with its status.
 *
 *   maxrss PROGRAM [ARGS...]
 *
 * For tests/test_run.sh, which compares a program's peak RSS under vmo run
 * with its plain one.  A small program of its own because the peak the
 * kernel reports for a child (getrusage RUSAGE_CHILDREN, wait4) includes
 * what the process had before exec: a child forked by python3 or bash
 * starts at the size of its parent, and this one is small. */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: maxrss PROGRAM [ARGS...]\n");
		return 2;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		execvp(argv[1], &argv[1]);
		perror(argv[1]);
		_exit(127);
	}
	int st;
	struct rusage ru;
	if (wait4(pid, &st, 0, &ru) != pid) {
		perror("wait4");
		return 1;
	}
	fprintf(stderr, "maxrss_kb=%ld\n", ru.ru_maxrss);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
