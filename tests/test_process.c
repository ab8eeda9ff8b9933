/* SPDX-License-Identifier: MIT */
/* test_process: another process's memory (vmo_process_open / _transact /
 * _close) with a real child:
 *  - read-write: batches of ranges read from and written to the child's
 *    memory (more ranges than one system call takes), the child sees the
 *    writes, the parent the child's data;
 *  - partial: a batch that runs into an unmapped range stops there with
 *    -EFAULT and the bytes done before it;
 *  - eperm: a process of another user (as uid 65534, the test re-executed)
 *    may not open ours: -EPERM, and nothing is written (root);
 *  - exited: a process that has exited: -ESRCH, never another process that
 *    got its pid. */
#include "helper.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096u
#define NBUF (64u * PG)

static char *shared_buf; /* the same address in the forked child */

/* The child: waits for a byte on fd; 'c' checks what the parent wrote and
 * answers 'k' or 'x'; 'q' exits.  Only system calls and memory accesses
 * (forked from a process with threads). */
static void child_loop(int in, int out)
{
	for (;;) {
		char c;
		if (read(in, &c, 1) != 1)
			_exit(2);
		if (c == 'q')
			_exit(0);
		char r = 'k';
		for (unsigned i = 0; i < NBUF; i++)
			if ((unsigned char)shared_buf[i] != (unsigned char)(i * 7 + 3))
				r = 'x';
		if (write(out, &r, 1) != 1)
			_exit(3);
	}
}

static pid_t spawn(int *to, int *from)
{
	int a[2], b[2];
	CHECK_OK(pipe(a));
	CHECK_OK(pipe(b));
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(a[1]);
		close(b[0]);
		child_loop(a[0], b[1]);
	}
	close(a[0]);
	close(b[1]);
	*to = a[1];
	*from = b[0];
	return pid;
}

static void reap(pid_t pid, int to, int from)
{
	char q = 'q';
	CHECK(write(to, &q, 1) == 1);
	int st;
	CHECK_EQ(waitpid(pid, &st, 0), pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(to);
	close(from);
}

static void case_read_write(void)
{
	for (unsigned i = 0; i < NBUF; i++)
		shared_buf[i] = (char)(i ^ 0x5a);
	int to, from;
	pid_t pid = spawn(&to, &from);
	/* ours changes after the fork; the child keeps what it had */
	memset(shared_buf, 0, NBUF);
	struct vmo_process *p;
	CHECK_OK(vmo_process_open(pid, &p));
	/* read it back in 1,300 ranges of 50 bytes (more than one call takes) */
	enum { N = 1300, L = 50 };
	struct vmo_transfer *t = calloc(N, sizeof *t);
	char *got = malloc((size_t)N * L);
	for (unsigned i = 0; i < N; i++)
		t[i] = (struct vmo_transfer){ (uint64_t)(uintptr_t)(shared_buf + (size_t)i * L), got + (size_t)i * L, L };
	size_t done = 0;
	CHECK_OK(vmo_process_transact(p, t, N, 0, &done));
	CHECK_EQ(done, (size_t)N * L);
	for (unsigned i = 0; i < N * L; i++)
		CHECK_EQ((unsigned char)got[i], (unsigned char)(i ^ 0x5a));
	/* write the pattern the child checks, in pages */
	char *src = malloc(NBUF);
	for (unsigned i = 0; i < NBUF; i++)
		src[i] = (char)(i * 7 + 3);
	struct vmo_transfer w[64];
	for (unsigned i = 0; i < 64; i++)
		w[i] = (struct vmo_transfer){ (uint64_t)(uintptr_t)(shared_buf + (size_t)i * PG), src + (size_t)i * PG, PG };
	CHECK_OK(vmo_process_transact(p, w, 64, VMO_PROCESS_WRITE, &done));
	CHECK_EQ(done, NBUF);
	char c = 'c', r = 0;
	CHECK(write(to, &c, 1) == 1);
	CHECK(read(from, &r, 1) == 1);
	CHECK_EQ(r, 'k');
	CHECK_EQ(vmo_process_transact(p, w, 1, 1u << 4, NULL), -EINVAL);
	CHECK_OK(vmo_process_close(p));
	reap(pid, to, from);
	free(t);
	free(got);
	free(src);
}

static void case_partial(void)
{
	/* two mapped pages of the child, then an address nothing is mapped at */
	char *area = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(area != MAP_FAILED);
	memset(area, 0x42, 3 * PG);
	int to, from;
	pid_t pid = spawn(&to, &from);
	struct vmo_process *p;
	CHECK_OK(vmo_process_open(pid, &p));
	char buf[3 * PG];
	struct vmo_transfer t[3] = {
		{ (uint64_t)(uintptr_t)area, buf, PG },
		{ (uint64_t)(uintptr_t)(area + PG), buf + PG, PG },
		{ 4096, buf + 2 * PG, PG }, /* nothing mapped there */
	};
	size_t done = 0;
	CHECK_EQ(vmo_process_transact(p, t, 3, 0, &done), -EFAULT);
	CHECK_EQ(done, 2 * PG);
	CHECK_EQ(buf[2 * PG - 1], 0x42);
	CHECK_OK(vmo_process_close(p));
	reap(pid, to, from);
	munmap(area, 3 * PG);
}

static void case_exited(void)
{
	int to, from;
	pid_t pid = spawn(&to, &from);
	struct vmo_process *p;
	CHECK_OK(vmo_process_open(pid, &p));
	reap(pid, to, from);
	char b;
	struct vmo_transfer t = { (uint64_t)(uintptr_t)shared_buf, &b, 1 };
	CHECK_EQ(vmo_process_transact(p, &t, 1, 0, NULL), -ESRCH);
	CHECK_OK(vmo_process_close(p));
	CHECK_EQ(vmo_process_open(pid, &p), -ESRCH);
	CHECK_EQ(vmo_process_open(0, &p), -EINVAL);
}

/* As uid 65534 (re-executed: the test has threads), open process PID. */
static int eperm_main(pid_t target)
{
	if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
		return 10;
	struct vmo_process *p;
	int rc = vmo_process_open(target, &p);
	printf("%d\n", rc);
	return rc == -EPERM ? 0 : 1;
}

static void case_eperm(void)
{
	if (geteuid() != 0)
		t_skip_case("needs root (to run a child as another user)");
	shared_buf[0] = 'A';
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		char arg[32];
		snprintf(arg, sizeof arg, "%d", (int)getppid());
		execl("/proc/self/exe", "test_process", "--eperm", arg, (char *)NULL);
		_exit(127);
	}
	int st;
	CHECK_EQ(waitpid(pid, &st, 0), pid);
	CHECK(WIFEXITED(st));
	CHECK_EQ(WEXITSTATUS(st), 0);
	CHECK_EQ(shared_buf[0], 'A');
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--eperm"))
		return eperm_main((pid_t)atoi(argv[2]));
	alarm(60);
	shared_buf = mmap(NULL, NBUF, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(shared_buf != MAP_FAILED);
	return t_main(argc, argv,
		      T_CASES({ "read-write", case_read_write }, { "partial", case_partial }, { "eperm", case_eperm },
			      { "exited", case_exited }));
}
