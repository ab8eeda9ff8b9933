/* SPDX-License-Identifier: MIT */
/* test_kill: a process killed with SIGKILL right after vmo_sync returned
 * loses nothing it synced.  A child maps a file through vmo, writes pages,
 * syncs, tells the parent, and keeps writing (unsynced); the parent kills it
 * at once and reads the file: every synced page is there. */
#include "helper.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define PS 4096u
#define NPAGES 2048u

static char path[4096];
static int pipefd[2];

static void child(int round)
{
	int fd = open(path, O_RDWR);
	CHECK(fd >= 0);
	struct vmo_engine *eng = t_engine(2);
	const struct vmo_pager_ops *ops;
	void *ctx;
	CHECK_OK(vmo_pager_file(fd, 0, &ops, &ctx));
	struct vmo_object_opts oo = { .budget = NPAGES * PS / 4 }; /* eviction too */
	struct vmo_object *o;
	CHECK_OK(vmo_object_create(eng, ops, ctx, &oo, &o));
	void *a;
	CHECK_OK(vmo_map(o, 0, NPAGES * PS, VMO_PROT_READ | VMO_PROT_WRITE, &a));
	uint64_t *p = a;
	for (uint64_t pg = 0; pg < NPAGES; pg += 3)
		p[pg * PS / 8] = ((uint64_t)round << 32) | pg;
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	char c = 's';
	CHECK(write(pipefd[1], &c, 1) == 1);
	/* Unsynced writes after the sync: may or may not reach the file. */
	for (uint64_t n = 0;; n++)
		p[((n * 7) % NPAGES) * PS / 8 + 1] = n;
}

static void case_killed_after_sync(void)
{
	t_require_uffd();
	snprintf(path, sizeof path, "/tmp/vmo-kill-XXXXXX");
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	CHECK(ftruncate(fd, NPAGES * PS) == 0);
	for (int round = 1; round <= 5; round++) {
		CHECK(pipe(pipefd) == 0);
		fflush(NULL);
		pid_t pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			close(pipefd[0]);
			child(round);
			_exit(0);
		}
		close(pipefd[1]);
		char c;
		alarm(60);
		CHECK(read(pipefd[0], &c, 1) == 1);
		kill(pid, SIGKILL);
		int st;
		CHECK(waitpid(pid, &st, 0) == pid);
		alarm(0);
		CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
		close(pipefd[0]);
		uint64_t w;
		for (uint64_t pg = 0; pg < NPAGES; pg += 3) {
			CHECK(pread(fd, &w, 8, (off_t)(pg * PS)) == 8);
			if (w != (((uint64_t)round << 32) | pg)) {
				fprintf(stderr, "round %d page %llu: %#llx\n", round, (unsigned long long)pg,
					(unsigned long long)w);
				abort();
			}
		}
	}
	close(fd);
	unlink(path);
}

int main(int argc, char **argv)
{
	return t_main(argc, argv, T_CASES({ "killed-after-sync", case_killed_after_sync }));
}
