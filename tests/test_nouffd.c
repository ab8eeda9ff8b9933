/* SPDX-License-Identifier: MIT */
/* test_nouffd: when userfaultfd cannot be had, vmo_engine_create() fails
 * with -VMO_ENOUFFD and vmo_last_error_detail() names the cause and the fix
 * (vm.unprivileged_userfaultfd, /dev/userfaultfd).  In a forked child, a raw
 * seccomp BPF filter makes the userfaultfd syscall fail with EPERM, and the
 * child drops to uid 65534 so that /dev/userfaultfd (root, 0600) cannot be
 * opened.  With the filter alone (still root), vmo falls back to
 * /dev/userfaultfd and serves pages; as uid 65534 without the filter it gets
 * a user-mode-only userfaultfd even with vm.unprivileged_userfaultfd=0. */
#include "helper.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__x86_64__)
#define ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH AUDIT_ARCH_AARCH64
#elif defined(__i386__)
#define ARCH AUDIT_ARCH_I386
#else
#define ARCH 0
#endif

/* userfaultfd() -> EPERM; everything else allowed. */
static int block_userfaultfd(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_userfaultfd, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof f / sizeof f[0], .filter = f };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
		return -errno;
	/* the filter works: the raw syscall now fails with EPERM */
	if (syscall(SYS_userfaultfd, 0) >= 0 || errno != EPERM)
		return -EPROTO;
	return 0;
}

static int pipefd[2];

static void report(const char *msg)
{
	(void)!write(pipefd[1], msg, strlen(msg));
}

/* Exit codes: 0 ok; 2 filter failed; 3 setresuid failed; 4 wrong rc; 5 detail
 * lacks the sysctl; 6 lacks the device; 7 strerror lacks it; 8 detail lacks the
 * syscall's error; 9 handle written on failure. */
static void child_blocked(void *arg)
{
	(void)arg;
	alarm(20);
	if (block_userfaultfd())
		_exit(2);
	if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
		_exit(3);
	struct vmo_engine *e = (void *)0x1000;
	int rc = vmo_engine_create(NULL, &e);
	const char *d = vmo_last_error_detail();
	char buf[1024];
	snprintf(buf, sizeof buf, "rc=%d (%s)\ndetail: %s\n", rc, vmo_strerror(rc), d);
	report(buf);
	if (rc != -VMO_ENOUFFD)
		_exit(4);
	if (e != (void *)0x1000)
		_exit(9);
	if (!strstr(d, "vm.unprivileged_userfaultfd"))
		_exit(5);
	if (!strstr(d, "/dev/userfaultfd"))
		_exit(6);
	const char *s = vmo_strerror(-VMO_ENOUFFD);
	if (!strstr(s, "vm.unprivileged_userfaultfd") || !strstr(s, "/dev/userfaultfd"))
		_exit(7);
	/* the detail gives both errors: the syscall's EPERM, the device's EACCES */
	if (!strstr(d, strerror(EPERM)) || !strstr(d, strerror(EACCES)))
		_exit(8);
	/* a second try fails the same way (nothing was cached half-open) */
	if (vmo_engine_create(NULL, &e) != -VMO_ENOUFFD)
		_exit(4);
	_exit(0);
}

/* arg NULL: the syscall blocked but /dev/userfaultfd usable (root): vmo
 * falls back to the device.  arg non-NULL: no filter, uid 65534 with
 * vm.unprivileged_userfaultfd=0: UFFD_USER_MODE_ONLY still gets one. */
static void child_fallback(void *arg)
{
	alarm(20);
	if (arg) {
		if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
			_exit(3);
	} else if (block_userfaultfd()) {
		_exit(2);
	}
	struct vmo_engine *e;
	int rc = vmo_engine_create(NULL, &e);
	if (rc)
		_exit(4);
	static uint64_t data[1024];
	for (int i = 0; i < 1024; i++)
		data[i] = t_pattern((uint64_t)i * 8);
	const struct vmo_pager_ops *ops;
	void *ctx;
	struct vmo_object *o;
	void *p = NULL;
	if (vmo_pager_mem(data, sizeof data, &ops, &ctx) || vmo_object_create(e, ops, ctx, NULL, &o) ||
	    vmo_map(o, 0, sizeof data, VMO_PROT_READ, &p))
		_exit(5);
	const uint64_t *w = p;
	for (int i = 0; i < 1024; i += 100)
		if (w[i] != t_pattern((uint64_t)i * 8))
			_exit(6);
	if (vmo_unmap(o, p, sizeof data))
		_exit(7);
	vmo_object_unref(o);
	if (vmo_engine_destroy(e))
		_exit(8);
	_exit(0);
}

static void run(void (*fn)(void *), void *arg, const char *name)
{
	CHECK(pipe(pipefd) == 0);
	int st = t_fork_run(fn, arg);
	close(pipefd[1]);
	char buf[2048];
	ssize_t n = read(pipefd[0], buf, sizeof buf - 1);
	close(pipefd[0]);
	buf[n > 0 ? n : 0] = 0;
	printf("%s: %s\n", name, buf);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "%s: child status %#x (exit %d)\n", name, st, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		abort();
	}
}

/* strerror names the cause in any case */
static void case_strerror(void)
{
	const char *s = vmo_strerror(-VMO_ENOUFFD);
	CHECK(strstr(s, "vm.unprivileged_userfaultfd") && strstr(s, "/dev/userfaultfd"));
	CHECK(strcmp(vmo_strerror(VMO_ENOUFFD), s) == 0);
}

/* What the children need: a seccomp arch, root, the device. */
static void require_root_and_device(void)
{
	if (ARCH == 0)
		t_skip_case("no seccomp audit arch known for this CPU");
	if (geteuid() != 0)
		t_skip_case("needs root to drop to uid 65534 (and to open /dev/userfaultfd for the fallback)");
	if (access("/dev/userfaultfd", F_OK) != 0)
		t_skip_case("no /dev/userfaultfd on this machine");
}

static void case_blocked(void)
{
	require_root_and_device();
	run(child_blocked, NULL, "blocked");
}

static void case_fallback_dev(void)
{
	require_root_and_device();
	run(child_fallback, NULL, "fallback to /dev/userfaultfd");
}

static void case_user_mode_only(void)
{
	require_root_and_device();
	run(child_fallback, "", "unprivileged, UFFD_USER_MODE_ONLY");
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	return t_main(argc, argv,
		      T_CASES({ "strerror", case_strerror }, { "blocked", case_blocked },
			      { "fallback-dev", case_fallback_dev }, { "user-mode-only", case_user_mode_only }));
}
