/* SPDX-License-Identifier: MIT */
/* process.c - another process's memory (Lunaix's procvm remote
 * transactions): open a process by pid (held by a pidfd), then read and
 * write ranges of its address space in batches with process_vm_readv /
 * process_vm_writev, with the bytes done and the errno when a range fails.
 *
 * The kernel checks ptrace access (PTRACE_MODE_ATTACH_REALCREDS) on every
 * call, before it copies anything: a process we may not trace is -EPERM at
 * open (probed with a one-byte read of address 0, which fails with EPERM
 * before the address is looked at, or EFAULT after) and changes nothing.
 * process_vm_* take a pid, not a pidfd: before each batch the pidfd says
 * whether the process has exited, so a pid reused since is not written to
 * (a window of one system call remains; docs/api.md). */
#include "internal.h"

#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

struct vmo_process {
	pid_t pid;
	int pidfd;
};

static bool exited(const struct vmo_process *p)
{
	struct pollfd pf = { .fd = p->pidfd, .events = POLLIN };
	return poll(&pf, 1, 0) == 1;
}

VMO_API int vmo_process_open(pid_t pid, struct vmo_process **out)
{
	if (pid <= 0 || !out)
		return -EINVAL;
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0) {
		int err = -errno;
		vmo__set_detail("vmo_process_open: pidfd_open(%d): %s", (int)pid, strerror(errno));
		return err;
	}
	/* May we?  A read of address 0: EPERM if ptrace rules say no, EFAULT
	 * (nothing there) if they say yes. */
	char c;
	struct iovec l = { &c, 1 }, r = { NULL, 1 };
	if (process_vm_readv(pid, &l, 1, &r, 1, 0) < 0 && errno != EFAULT) {
		int err = -errno;
		if (errno == EPERM)
			vmo__set_detail("vmo_process_open: not allowed to access process %d's memory (ptrace "
					"rules: same user and not more privileged, or CAP_SYS_PTRACE; "
					"kernel.yama.ptrace_scope)",
					(int)pid);
		else
			vmo__set_detail("vmo_process_open: process %d: %s", (int)pid, strerror(errno));
		close(fd);
		return err;
	}
	struct vmo_process *p = malloc(sizeof *p);
	if (!p) {
		close(fd);
		return -ENOMEM;
	}
	p->pid = pid;
	p->pidfd = fd;
	*out = p;
	return 0;
}

VMO_API int vmo_process_close(struct vmo_process *p)
{
	if (!p)
		return -EINVAL;
	close(p->pidfd);
	free(p);
	return 0;
}

#define BATCH 512 /* iovec pairs per system call (IOV_MAX is 1024) */

VMO_API int vmo_process_transact(struct vmo_process *p, const struct vmo_transfer *t, size_t n, unsigned flags,
				 size_t *done)
{
	size_t dummy;
	if (!done)
		done = &dummy;
	*done = 0;
	if (!p || (!t && n) || (flags & ~VMO_PROCESS_WRITE))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!t[i].local && t[i].len) {
			vmo__set_detail("vmo_process_transact: transfer %zu has no local buffer", i);
			return -EINVAL;
		}
	bool wr = flags & VMO_PROCESS_WRITE;
	struct iovec l[BATCH], r[BATCH];
	for (size_t i = 0; i < n;) {
		if (exited(p)) {
			vmo__set_detail("vmo_process_transact: process %d has exited", (int)p->pid);
			return -ESRCH;
		}
		size_t k = 0, want = 0;
		for (; k < BATCH && i + k < n; k++) {
			l[k] = (struct iovec){ t[i + k].local, t[i + k].len };
			r[k] = (struct iovec){ (void *)(uintptr_t)t[i + k].remote, t[i + k].len };
			want += t[i + k].len;
		}
		ssize_t got = wr ? process_vm_writev(p->pid, l, (unsigned long)k, r, (unsigned long)k, 0)
				 : process_vm_readv(p->pid, l, (unsigned long)k, r, (unsigned long)k, 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			int err = -errno;
			vmo__set_detail("vmo_process_transact: %s process %d: %s (after %zu bytes)",
					wr ? "writing" : "reading", (int)p->pid, strerror(errno), *done);
			return err;
		}
		*done += (size_t)got;
		if ((size_t)got < want) {
			/* A range stopped it (not mapped, or not writable): its
			 * errno, from that range alone. */
			size_t at = 0, j = 0;
			while (j < k && at + t[i + j].len <= (size_t)got)
				at += t[i + j++].len;
			size_t skip = (size_t)got - at;
			struct iovec ll = { (char *)t[i + j].local + skip, t[i + j].len - skip };
			struct iovec rr = { (char *)(uintptr_t)t[i + j].remote + skip, t[i + j].len - skip };
			ssize_t g2 = wr ? process_vm_writev(p->pid, &ll, 1, &rr, 1, 0)
					: process_vm_readv(p->pid, &ll, 1, &rr, 1, 0);
			int err = g2 < 0 ? -errno : -EFAULT;
			if (g2 > 0)
				*done += (size_t)g2;
			vmo__set_detail("vmo_process_transact: transfer %zu (remote %#llx): %s", i + j,
					(unsigned long long)t[i + j].remote, strerror(-err));
			return err;
		}
		i += k;
	}
	return 0;
}
