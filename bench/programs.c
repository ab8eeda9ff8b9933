/* SPDX-License-Identifier: MIT */
/* bench/programs: unmodified programs under `vmo run` (issue 15), against the
 * same programs in a memory cgroup with kernel swap, and unlimited.
 *
 * The programs (each sized to run about a second unlimited, with a peak of
 * tens of MiB; VMO_BENCH_* below):
 *   sort     GNU sort (LC_ALL=C) of a generated file of VMO_BENCH_SORT_LINES
 *            (default 200000) lines, about 34 bytes each: the file is larger
 *            than the budget
 *   numpy    python3 with numpy: arrays of VMO_BENCH_NUMPY_N (1000000)
 *            int64s generated, sorted, argsorted, summed, combined: about
 *            4x the budget allocated (skipped where no python3 has numpy:
 *            Debian's python3-numpy; VMO_BENCH_PYTHON names one)
 *   sqlite   sqlite3 :memory: with a table of VMO_BENCH_SQLITE_ROWS (150000)
 *            rows, two indexes, queries, an update and a self-join: the
 *            database is larger than the budget
 *   forkexec bench/lib/threads_forkexec: 4 threads share a table of
 *            VMO_BENCH_FORKEXEC_MIB (32) MiB, rewrite it 16 times, and each
 *            forks and execs 2 children fed from it through pipes
 *
 * For each (VMO_BENCH_ONLY=sort,sqlite picks some), every run with its
 * standard output read through md5sum and checked against the unlimited
 * run's:
 *   1. unlimited (once to warm the caches, untimed, then timed):
 *      NAME_plain_s, NAME_peak_kb (wait4's ru_maxrss: the largest of the
 *      program and the children it waited for, not their sum);
 *      NAME_budget_kb = NAME_peak_kb / 4
 *   2. `vmo run --stats=FILE` with no budget: NAME_vmo_nobudget_s (what the
 *      preload, jemalloc and vmo's faults cost without paging)
 *   3. `vmo run --budget NAME_budget_kb --stats=FILE` (the default store: lz4
 *      compressed memory of up to the budget, then a swap file in $TMPDIR):
 *      NAME_vmo_s, NAME_vmo_peak_kb, NAME_vmo_faults, NAME_vmo_evictions,
 *      NAME_vmo_writebacks (summed over every process that ran under vmo:
 *      NAME_vmo_processes), NAME_vmo_compression (the program's own store),
 *      NAME_vmo_heap (1: vmo pages the program's heap; 0: only its large
 *      mmaps, and vmo run said why on the program's stderr)
 *      With that store, vmo keeps in memory up to the budget of resident
 *      pages and up to the budget again of compressed ones: so also
 *   3b. `vmo run --budget ... --store swap:DIR` (a swap file in the work
 *      directory, nothing compressed in memory: what the kernel has in 4):
 *      NAME_vmoswap_s and the same figures
 *   4. in a memory cgroup limited to NAME_budget_kb, with a swap file
 *      swapped on for the run (kernel swap, swappiness 60):
 *      NAME_cgswap_s, NAME_cgswap_peak_kb, NAME_cgswap_majflt (wait4's
 *      major faults: swap-ins)
 *   5. the same with zswap enabled, where the kernel has it: NAME_cgzswap_s
 *      (zswap's setting is put back after the run)
 *   Every timed run also prints NAME_VARIANT_cpu_s (wait4's user + system
 *   time: steadier than wall time on a loaded machine, but blind to time
 *   spent waiting for swap I/O), NAME_VARIANT_peak_kb, and
 *   NAME_VARIANT_memstall_ms: how long some task of the machine stalled on
 *   memory during the run (PSI; any cgroup's, the run's own included).  vmo
 *   caps its engines under the machine's memory pressure (src/evictor.c),
 *   so the vmo runs all come first, before the cgroup runs whose stalls
 *   would count; another program loading the machine shows here too.
 *   NAME_vmo_over_plain, NAME_vmo_over_cgswap, NAME_vmo_over_cgzswap,
 *   NAME_vmoswap_over_cgswap, NAME_cgswap_over_plain.
 * A run that outlives VMO_BENCH_TIMEOUT seconds (default 120) is killed and
 * printed as NAME_VARIANT=timeout; one the kernel's OOM killer ends as
 * NAME_VARIANT=oom-killed; a wrong output as NAME_VARIANT=wrong-output; any
 * other failure as NAME_VARIANT=failed (with the program's last lines of
 * standard error on ours).
 *
 * Runs 4 and 5 need root (a cgroup, swapon) and a memory cgroup (v1, or v2
 * with memory.max and memory.swap.max); without them only 1-3 run, and a
 * comment says why.  The swap file, the cgroups and zswap's setting are
 * undone at exit, on an error and on SIGINT/SIGTERM/SIGHUP too (not on
 * SIGKILL: then `swapoff` the file named in the header by hand).  Files go in
 * a directory under $TMPDIR (default /var/tmp: a swap file needs a disk file
 * system, not tmpfs).  The tools: $VMO, else ../vmo beside this program's
 * directory; threads_forkexec beside this program. */
#include "lib/common.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- what must be undone at exit (also from a signal handler) ------------- */

static char workdir[256];
#define MAX_FILES 64
static char files[MAX_FILES][320]; /* created in workdir: unlinked at exit */
static int nfiles;
static char swapfile[320];
static volatile sig_atomic_t swap_active;
static char cgdir[PATH_MAX]; /* the cgroup of the current run */
static volatile sig_atomic_t cg_active;
static char zswap_saved[16]; /* zswap's "enabled" as found */
static volatile sig_atomic_t zswap_changed;
static volatile pid_t running; /* the program's process group */
static const char zswap_param[] = "/sys/module/zswap/parameters/enabled";

static void write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, s, strlen(s)) < 0) {
			/* nothing more to do from here */
		}
		close(fd);
	}
}

/* Only system calls: it runs from the signal handler too. */
static void undo(void)
{
	if (running > 0) {
		kill(-running, SIGKILL);
		while (waitpid(-running, NULL, 0) > 0 || errno == EINTR)
			;
		running = 0;
	}
	if (cg_active) {
		for (int i = 0; i < 100 && rmdir(cgdir) && errno == EBUSY; i++)
			usleep(20000);
		cg_active = 0;
	}
	if (zswap_changed) {
		write_str(zswap_param, zswap_saved);
		zswap_changed = 0;
	}
	if (swap_active) {
		if (swapoff(swapfile) == 0)
			swap_active = 0;
	}
	if (swapfile[0] && !swap_active)
		unlink(swapfile);
	for (int i = 0; i < nfiles; i++)
		unlink(files[i]);
	nfiles = 0;
	if (workdir[0])
		rmdir(workdir);
}

static void on_signal(int sig)
{
	undo();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* path of a new file NAME in workdir, remembered for undo() */
static const char *work_file(const char *name)
{
	if (nfiles == MAX_FILES)
		die("too many work files", -ENOSPC);
	snprintf(files[nfiles], sizeof files[0], "%s/%.60s", workdir, name);
	return files[nfiles++];
}

/* ---- running a program ----------------------------------------------------- */

enum outcome { RUN_OK, RUN_TIMEOUT, RUN_OOM, RUN_WRONG, RUN_FAILED };
static const char *const outcome_name[] = { "ok", "timeout", "oom-killed", "wrong-output", "failed" };

struct run {
	enum outcome outcome;
	pid_t pid;
	int status;      /* wait4's */
	double secs;     /* wall time, fork to wait4 */
	long maxrss_kb;  /* ru_maxrss */
	long majflt;     /* ru_majflt */
	double cpu_s;    /* ru_utime + ru_stime */
	long memstall_ms; /* the machine's memory pressure (PSI "some") during the run, or -1 */
	char md5[33];
};

static unsigned timeout_s;

/* /proc/pressure/memory's "some" total: microseconds in which at least one
 * task of the machine (of any cgroup) stalled on memory; -1 without PSI */
static long psi_some_us(void)
{
	FILE *f = fopen("/proc/pressure/memory", "r");
	if (!f)
		return -1;
	long v = -1;
	char line[256];
	if (fgets(line, sizeof line, f) && !strncmp(line, "some ", 5)) {
		char *t = strstr(line, "total=");
		if (t)
			v = strtol(t + 6, NULL, 10);
	}
	fclose(f);
	return v;
}

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Run argv (PATH searched) with stdin from in (or /dev/null), stdout through
 * md5sum, stderr into errpath, in its own process group; inside the cgroup
 * whose cgroup.procs is cgprocs when not NULL.  Killed after timeout_s. */
static void run_prog(char *const argv[], const char *in, const char *cgprocs, const char *errpath, struct run *r)
{
	memset(r, 0, sizeof *r);
	int out[2], res[2];
	if (pipe2(out, O_CLOEXEC) || pipe2(res, O_CLOEXEC))
		die("pipe2", -errno);
	pid_t md5 = fork();
	if (md5 < 0)
		die("fork", -errno);
	if (md5 == 0) {
		if (dup2(out[0], 0) < 0 || dup2(res[1], 1) < 0)
			_exit(126);
		execlp("md5sum", "md5sum", (char *)NULL);
		_exit(127);
	}
	int ifd = open(in ? in : "/dev/null", O_RDONLY | O_CLOEXEC);
	int efd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (ifd < 0 || efd < 0)
		die(in ? in : errpath, -errno);
	long psi0 = psi_some_us();
	uint64_t t0 = now_ns();
	pid_t pid = fork();
	if (pid < 0)
		die("fork", -errno);
	if (pid == 0) {
		/* async-signal-safe only: this process has one thread, but
		 * keep to it anyway */
		setpgid(0, 0);
		if (cgprocs) {
			int fd = open(cgprocs, O_WRONLY);
			if (fd < 0 || write(fd, "0", 1) != 1) /* "0": the writer itself */
				_exit(125);
			close(fd);
		}
		if (dup2(ifd, 0) < 0 || dup2(out[1], 1) < 0 || dup2(efd, 2) < 0)
			_exit(126);
		execvp(argv[0], argv);
		_exit(127);
	}
	setpgid(pid, pid); /* (both sides: whichever runs first) */
	r->pid = pid;
	running = pid;
	close(ifd), close(efd), close(out[0]), close(out[1]), close(res[1]);
	int pfd = pidfd_open_(pid);
	if (pfd < 0)
		die("pidfd_open (Linux 5.3 or later)", -errno);
	struct pollfd p = { .fd = pfd, .events = POLLIN };
	int64_t left_ms = (int64_t)timeout_s * 1000;
	bool timed_out = false;
	for (;;) {
		int k = poll(&p, 1, (int)(left_ms > 0 ? left_ms : 0));
		if (k > 0)
			break;
		if (k < 0 && errno != EINTR)
			die("poll", -errno);
		left_ms = (int64_t)timeout_s * 1000 - (int64_t)((now_ns() - t0) / 1000000);
		if (left_ms <= 0) {
			timed_out = true;
			kill(-pid, SIGKILL);
			break;
		}
	}
	close(pfd);
	struct rusage ru;
	while (wait4(pid, &r->status, 0, &ru) < 0)
		if (errno != EINTR)
			die("wait4", -errno);
	r->secs = (double)(now_ns() - t0) / 1e9;
	long psi1 = psi_some_us();
	r->memstall_ms = psi0 >= 0 && psi1 >= psi0 ? (psi1 - psi0) / 1000 : -1;
	if (timed_out || WIFSIGNALED(r->status))
		kill(-pid, SIGKILL); /* its children too, so that md5sum sees the end */
	running = 0;
	r->maxrss_kb = ru.ru_maxrss;
	r->majflt = ru.ru_majflt;
	r->cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
		   (double)ru.ru_stime.tv_usec / 1e6;
	char buf[64] = "";
	ssize_t n, got = 0;
	while (got < (ssize_t)sizeof buf - 1 && (n = read(res[0], buf + got, sizeof buf - 1 - (size_t)got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		got += n;
	}
	close(res[0]);
	waitpid(md5, NULL, 0);
	if (got >= 32) {
		memcpy(r->md5, buf, 32);
		r->md5[32] = 0;
	}
	if (timed_out)
		r->outcome = RUN_TIMEOUT;
	else if (!WIFEXITED(r->status) || WEXITSTATUS(r->status) != 0)
		r->outcome = RUN_FAILED;
	else
		r->outcome = RUN_OK;
}

/* argv's status quietly (0: it ran and exited 0) */
static int run_quiet(char *const argv[])
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_RDWR);
		dup2(fd, 0), dup2(fd, 1), dup2(fd, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void show_stderr(const char *label, const char *errpath)
{
	FILE *f = fopen(errpath, "r");
	if (!f)
		return;
	char lines[6][512];
	int n = 0;
	while (fgets(lines[n % 6], sizeof lines[0], f))
		n++;
	fclose(f);
	fprintf(stderr, "bench/programs: %s: its last lines of standard error:\n", label);
	for (int i = n > 6 ? n - 6 : 0; i < n; i++)
		fprintf(stderr, "  | %s", lines[i % 6]);
}

/* ---- cgroups ----------------------------------------------------------------
 *
 * v1: a group under this process's own group in the memory hierarchy, with
 * memory.limit_in_bytes; memsw stays unlimited (swap allowed) and swappiness
 * is set to the kernel's default 60.  v2: a group under the nearest of this
 * process's group, its parent, ..., the root, that has "memory" in
 * cgroup.subtree_control or can have it (a group holding processes cannot,
 * the root excepted), with memory.max and memory.swap.max=max (tests/memcg.sh
 * does the same for the tests). */

static int cg_version;
static char cg_parent[PATH_MAX];
static char cg_why[512];

static bool read_line(const char *path, char *buf, size_t len)
{
	buf[0] = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	bool ok = fgets(buf, (int)len, f) != NULL;
	fclose(f);
	if (ok)
		buf[strcspn(buf, "\n")] = 0;
	return ok;
}

static bool has_word(const char *list, const char *word, const char *seps)
{
	char tmp[1024];
	snprintf(tmp, sizeof tmp, "%s", list);
	char *save, *t;
	for (t = strtok_r(tmp, seps, &save); t; t = strtok_r(NULL, seps, &save))
		if (!strcmp(t, word))
			return true;
	return false;
}

/* this process's group in the hierarchy whose /proc/self/cgroup line's
 * controllers field is ctl ("" for v2), or false */
static bool self_cgroup(const char *ctl, char *out, size_t len)
{
	FILE *f = fopen("/proc/self/cgroup", "r");
	if (!f)
		return false;
	char line[1024];
	bool found = false;
	while (!found && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
		if (!b)
			continue;
		*b = 0;
		if (*ctl ? has_word(a + 1, ctl, ",") : (a[1] == 0 && !strncmp(line, "0", 1))) {
			snprintf(out, len, "%s", strcmp(b + 1, "/") ? b + 1 : "");
			found = true;
		}
	}
	fclose(f);
	return found;
}

static bool cg_find_v1(void)
{
	FILE *f = fopen("/proc/mounts", "r");
	if (!f)
		return false;
	char dev[256], mnt[PATH_MAX], type[64], opts[1024];
	bool found = false;
	while (fscanf(f, "%255s %4095s %63s %1023s %*d %*d", dev, mnt, type, opts) == 4)
		if (!strcmp(type, "cgroup") && has_word(opts, "memory", ",")) {
			found = true;
			break;
		}
	fclose(f);
	if (!found) {
		snprintf(cg_why, sizeof cg_why, "no cgroup v1 memory hierarchy mounted");
		return false;
	}
	char self[PATH_MAX];
	if (!self_cgroup("memory", self, sizeof self)) {
		snprintf(cg_why, sizeof cg_why, "this process is in no v1 memory group");
		return false;
	}
	int n = snprintf(cg_parent, sizeof cg_parent, "%s%s", mnt, self);
	if (n < 0 || (size_t)n >= sizeof cg_parent)
		return false;
	cg_version = 1;
	return true;
}

static bool cg_find_v2(void)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return false;
	char line[4096], mnt[PATH_MAX] = "", root[PATH_MAX] = "";
	while (fgets(line, sizeof line, f)) {
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS ... - TYPE SOURCE SUPER */
		char r[PATH_MAX], m[PATH_MAX];
		char *dash = strstr(line, " - ");
		if (!dash || sscanf(line, "%*s %*s %*s %4095s %4095s", r, m) != 2)
			continue;
		char type[64];
		if (sscanf(dash + 3, "%63s", type) != 1 || strcmp(type, "cgroup2"))
			continue;
		char ctl[1024], path[PATH_MAX + 32];
		snprintf(path, sizeof path, "%s/cgroup.controllers", m);
		if (read_line(path, ctl, sizeof ctl) && has_word(ctl, "memory", " ")) {
			snprintf(mnt, sizeof mnt, "%s", m);
			snprintf(root, sizeof root, "%s", r);
			break;
		}
	}
	fclose(f);
	if (!mnt[0]) {
		snprintf(cg_why + strlen(cg_why), sizeof cg_why - strlen(cg_why), "%sno cgroup2 hierarchy with the memory controller",
			 cg_why[0] ? "; " : "");
		return false;
	}
	char self[PATH_MAX];
	if (!self_cgroup("", self, sizeof self))
		return false;
	const char *rel = self;
	if (strcmp(root, "/")) {
		size_t rl = strlen(root);
		if (strncmp(self, root, rl) || (self[rl] && self[rl] != '/'))
			return false;
		rel = self + rl;
	}
	char d[PATH_MAX];
	int dl = snprintf(d, sizeof d, "%s%s", mnt, rel);
	if (dl < 0 || (size_t)dl >= sizeof d)
		return false;
	for (;;) {
		char p[PATH_MAX + 32], ctl[1024];
		snprintf(p, sizeof p, "%s/cgroup.subtree_control", d);
		if (read_line(p, ctl, sizeof ctl) || access(p, F_OK) == 0) {
			if (!has_word(ctl, "memory", " "))
				write_str(p, "+memory"); /* EBUSY where d holds processes */
			if (read_line(p, ctl, sizeof ctl) && has_word(ctl, "memory", " ")) {
				snprintf(cg_parent, sizeof cg_parent, "%s", d);
				cg_version = 2;
				return true;
			}
		}
		if (!strcmp(d, mnt))
			break;
		char *s = strrchr(d, '/');
		if (!s || (size_t)(s - d) < strlen(mnt))
			break;
		*s = 0;
	}
	snprintf(cg_why + strlen(cg_why), sizeof cg_why - strlen(cg_why),
		 "%sno cgroup2 group from this process's up to %.200s can enable the memory controller for a child",
		 cg_why[0] ? "; " : "", mnt);
	return false;
}

static bool cg_set(const char *file, const char *val)
{
	char p[PATH_MAX + 64];
	snprintf(p, sizeof p, "%s/%s", cgdir, file);
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool ok = write(fd, val, strlen(val)) == (ssize_t)strlen(val);
	close(fd);
	return ok;
}

/* A fresh group for one run, limited to limit bytes, swap allowed. */
static int cg_create(const char *name, uint64_t limit)
{
	int n = snprintf(cgdir, sizeof cgdir, "%s/vmo-bench-%s-%d", cg_parent, name, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof cgdir)
		return -ENAMETOOLONG;
	if (mkdir(cgdir, 0755) && errno != EEXIST)
		return -errno;
	cg_active = 1;
	char v[32];
	snprintf(v, sizeof v, "%llu", (unsigned long long)limit);
	if (cg_version == 1) {
		if (!cg_set("memory.limit_in_bytes", v))
			return -EIO;
		cg_set("memory.swappiness", "60");
	} else {
		if (!cg_set("memory.max", v))
			return -EIO;
		if (!cg_set("memory.swap.max", "max"))
			return -EIO;
	}
	return 0;
}

/* the value of "KEY N" in the group's FILE, or -1 */
static long cg_key(const char *file, const char *key)
{
	char p[PATH_MAX + 64], line[256];
	snprintf(p, sizeof p, "%s/%s", cgdir, file);
	FILE *f = fopen(p, "r");
	if (!f)
		return -1;
	long v = -1;
	size_t kl = strlen(key);
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, key, kl) && line[kl] == ' ')
			v = strtol(line + kl + 1, NULL, 10);
	fclose(f);
	return v;
}

static void cg_remove(void)
{
	for (int i = 0; i < 100 && rmdir(cgdir) && errno == EBUSY; i++)
		usleep(20000);
	cg_active = 0;
}

/* ---- the swap file ---------------------------------------------------------- */

static int swap_create(uint64_t bytes, char *why, size_t whylen)
{
	snprintf(swapfile, sizeof swapfile, "%s/swapfile", workdir);
	int fd = open(swapfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(why, whylen, "%s: %s", swapfile, strerror(errno));
		return -1;
	}
	/* written, not fallocated: a swap file must have no holes nor
	 * unwritten extents on every file system */
	static char zero[1 << 20];
	for (uint64_t done = 0; done < bytes; done += sizeof zero)
		if (write(fd, zero, sizeof zero) != (ssize_t)sizeof zero) {
			snprintf(why, whylen, "writing %.300s: %s", swapfile, strerror(errno));
			close(fd);
			return -1;
		}
	fsync(fd);
	close(fd);
	char *mk[] = { "mkswap", swapfile, NULL };
	int rc = run_quiet(mk);
	if (rc) {
		snprintf(why, whylen, "mkswap %.300s failed (status %d; util-linux's mkswap in PATH?)", swapfile, rc);
		return -1;
	}
	/* preferred over any other swap the machine has: the runs' pages go here */
	if (swapon(swapfile, SWAP_FLAG_PREFER | (32767 << SWAP_FLAG_PRIO_SHIFT))) {
		snprintf(why, whylen, "swapon %.300s: %s%s", swapfile, strerror(errno),
			 errno == EINVAL ? " (a swap file needs a disk file system such as ext4 or xfs: set TMPDIR)" : "");
		return -1;
	}
	swap_active = 1;
	return 0;
}

/* ---- vmo's --stats file ----------------------------------------------------- */

struct vstats {
	long procs, faults, evictions, writebacks;
	double compression; /* the program's own (not its children's) */
	long heap;          /* the program's: 1 when vmo pages its heap */
};

/* Sum the blocks (one per process that ran under vmo, each from pid=). */
static void read_stats(const char *path, pid_t main_pid, struct vstats *s)
{
	memset(s, 0, sizeof *s);
	s->compression = -1;
	s->heap = -1;
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	char line[512];
	long pid = 0;
	while (fgets(line, sizeof line, f)) {
		char *eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = 0;
		const char *k = line, *v = eq + 1;
		if (!strcmp(k, "pid")) {
			pid = strtol(v, NULL, 10);
			s->procs++;
		} else if (!strcmp(k, "faults")) {
			s->faults += strtol(v, NULL, 10);
		} else if (!strcmp(k, "evictions")) {
			s->evictions += strtol(v, NULL, 10);
		} else if (!strcmp(k, "writebacks")) {
			s->writebacks += strtol(v, NULL, 10);
		} else if (!strcmp(k, "compression_ratio") && pid == main_pid) {
			s->compression = strtod(v, NULL);
		} else if (!strcmp(k, "heap") && pid == main_pid) {
			s->heap = strtol(v, NULL, 10);
		}
	}
	fclose(f);
}

/* ---- the programs ------------------------------------------------------------ */

struct prog {
	const char *name;
	char *argv[8];
	const char *in;   /* stdin, or NULL */
	char why[256];    /* not run: why */
	struct run plain;
	uint64_t budget;  /* bytes */
	double vmo_s, vmoswap_s, cgswap_s, cgzswap_s; /* < 0: no figure */
};

static const char sql_fmt[] =
	"CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT);\n"
	"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %lu)\n"
	"INSERT INTO t SELECT x, (x * 2654435761) %% 1000003, printf('%%08x-%%08x-%%s', (x * 40503) %% 4294967291,\n"
	"  (x * 2246822519) %% 4294967279, substr('abcdefghijklmnopqrstuvwxyz0123456789', 1 + x %% 17, 20 + x %% 13)) FROM c;\n"
	"CREATE INDEX t_k ON t(k);\n"
	"CREATE INDEX t_v ON t(v);\n"
	"SELECT count(*), sum(k), sum(length(v)) FROM t;\n"
	"SELECT k %% 97, count(*), min(v), max(v) FROM t GROUP BY k %% 97 ORDER BY 1 LIMIT 5;\n"
	"SELECT id, k, v FROM t WHERE k BETWEEN 5000 AND 5100 ORDER BY k, id;\n"
	"SELECT v FROM t ORDER BY v DESC LIMIT 3;\n"
	"UPDATE t SET v = upper(v) WHERE id %% 3 = 0;\n"
	"SELECT count(*), sum(length(v)) FROM t WHERE v GLOB '*ABC*';\n"
	"SELECT count(*) FROM t a JOIN t b ON a.k = b.k AND a.id < b.id;\n";

static const char py_src[] =
	"import hashlib, sys\n"
	"import numpy as np\n"
	"n = int(sys.argv[1])\n"
	"rng = np.random.default_rng(1)\n"
	"a = rng.integers(0, 1 << 62, n, dtype=np.int64)\n"
	"b = np.sort(a)\n"
	"c = np.cumsum(b % 1000003)\n"
	"d = a[np.argsort(b % 7919, kind='stable')]\n"
	"e = (d ^ (b >> 3)) + c\n"
	"h = hashlib.md5()\n"
	"for x in (b, c, d, e):\n"
	"    h.update(x.tobytes())\n"
	"print(n, h.hexdigest(), int(c[-1]), int(e.max()))\n";

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f))
		die(path, -errno);
}

static bool wanted(const char *name)
{
	const char *only = getenv("VMO_BENCH_ONLY");
	return !only || !*only || has_word(only, name, ", ");
}

static char num[4][32]; /* the programs' size arguments */

static void setup_progs(struct prog *p, size_t n, const char *selfdir)
{
	for (size_t i = 0; i < n; i++) {
		if (!wanted(p[i].name)) {
			snprintf(p[i].why, sizeof p[i].why, "not in VMO_BENCH_ONLY");
			continue;
		}
		const char *name = p[i].name;
		if (!strcmp(name, "sort")) {
			unsigned long lines = env_ul("VMO_BENCH_SORT_LINES", 200000);
			const char *path = work_file("sort.in");
			FILE *f = fopen(path, "w");
			if (!f)
				die(path, -errno);
			uint64_t x = 0x9e3779b97f4a7c15ull;
			for (unsigned long l = 0; l < lines; l++)
				fprintf(f, "%016llx %lu some text\n", (unsigned long long)xorshift(&x), l);
			if (fclose(f))
				die(path, -errno);
			char *a[] = { "sort", (char *)path, NULL };
			memcpy(p[i].argv, a, sizeof a);
			char *chk[] = { "sort", "--version", NULL };
			if (run_quiet(chk))
				snprintf(p[i].why, sizeof p[i].why, "no sort in PATH");
		} else if (!strcmp(name, "numpy")) {
			const char *cands[] = { getenv("VMO_BENCH_PYTHON"), "/usr/bin/python3", "python3" };
			const char *py = NULL;
			for (size_t k = 0; k < 3 && !py; k++) {
				if (!cands[k] || !*cands[k])
					continue;
				char *chk[] = { (char *)cands[k], "-c", "import numpy", NULL };
				if (run_quiet(chk) == 0)
					py = cands[k];
			}
			if (!py) {
				snprintf(p[i].why, sizeof p[i].why,
					 "no python3 with numpy (Debian: python3-numpy, scripts/deps.sh; or VMO_BENCH_PYTHON=PATH)");
				continue;
			}
			const char *path = work_file("job.py");
			write_file(path, py_src);
			snprintf(num[0], sizeof num[0], "%lu", env_ul("VMO_BENCH_NUMPY_N", 1000000));
			char *a[] = { (char *)py, (char *)path, num[0], NULL };
			memcpy(p[i].argv, a, sizeof a);
		} else if (!strcmp(name, "sqlite")) {
			char *chk[] = { "sqlite3", "-version", NULL };
			if (run_quiet(chk)) {
				snprintf(p[i].why, sizeof p[i].why, "no sqlite3 in PATH (Debian: sqlite3, scripts/deps.sh)");
				continue;
			}
			const char *path = work_file("job.sql");
			char sql[sizeof sql_fmt + 32];
			snprintf(sql, sizeof sql, sql_fmt, env_ul("VMO_BENCH_SQLITE_ROWS", 150000));
			write_file(path, sql);
			char *a[] = { "sqlite3", ":memory:", NULL };
			memcpy(p[i].argv, a, sizeof a);
			p[i].in = path;
		} else if (!strcmp(name, "forkexec")) {
			static char exe[PATH_MAX + 32];
			snprintf(exe, sizeof exe, "%s/threads_forkexec", selfdir);
			if (access(exe, X_OK)) {
				snprintf(p[i].why, sizeof p[i].why, "%.200s was not built", exe);
				continue;
			}
			snprintf(num[1], sizeof num[1], "%lu", env_ul("VMO_BENCH_FORKEXEC_MIB", 32));
			char *a[] = { exe, num[1], "4", "16", "2", NULL };
			memcpy(p[i].argv, a, sizeof a);
		}
	}
}

/* One limited run of p: prints NAME_VARIANT_s and the rest, or
 * NAME_VARIANT=OUTCOME; returns the seconds, or -1. */
static double report_run(struct prog *p, const char *variant, struct run *r, bool oom)
{
	if (r->outcome == RUN_OK && strcmp(r->md5, p->plain.md5))
		r->outcome = RUN_WRONG;
	if (oom && r->outcome == RUN_FAILED)
		r->outcome = RUN_OOM;
	if (r->outcome != RUN_OK) {
		printf("%s_%s=%s\n", p->name, variant, outcome_name[r->outcome]);
		if (r->outcome == RUN_TIMEOUT)
			printf("%s_%s_timeout_s=%u\n", p->name, variant, timeout_s);
		return -1;
	}
	printf("%s_%s_s=%.3f\n", p->name, variant, r->secs);
	printf("%s_%s_cpu_s=%.3f\n", p->name, variant, r->cpu_s);
	if (r->memstall_ms >= 0)
		printf("%s_%s_memstall_ms=%ld\n", p->name, variant, r->memstall_ms);
	printf("%s_%s_peak_kb=%ld\n", p->name, variant, r->maxrss_kb);
	return r->secs;
}

static void ratio(const struct prog *p, const char *what, double a, double b)
{
	if (a > 0 && b > 0)
		printf("%s_%s=%.2f\n", p->name, what, a / b);
}

int main(void)
{
	timeout_s = (unsigned)env_ul("VMO_BENCH_TIMEOUT", 120);
	char self[PATH_MAX], selfdir[PATH_MAX], vmo[PATH_MAX];
	ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
	if (k <= 0)
		die("readlink /proc/self/exe", -errno);
	self[k] = 0;
	snprintf(selfdir, sizeof selfdir, "%s", self);
	*strrchr(selfdir, '/') = 0;
	const char *ev = getenv("VMO");
	if (ev && *ev)
		snprintf(vmo, sizeof vmo, "%s", ev);
	else
		snprintf(vmo, sizeof vmo, "%.*s/vmo", (int)(strrchr(selfdir, '/') - selfdir), selfdir);

	const char *tmp = getenv("TMPDIR");
	int wl = snprintf(workdir, sizeof workdir, "%s/vmo-bench-programs.XXXXXX", tmp && *tmp ? tmp : "/var/tmp");
	if (wl < 0 || (size_t)wl >= sizeof workdir)
		die("TMPDIR is too long", -ENAMETOOLONG);
	if (!mkdtemp(workdir))
		die(workdir, -errno);
	atexit(undo);
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* the same for every run: sort's order, vmo's spill file and sort's
	 * temporary files in workdir */
	setenv("LC_ALL", "C", 1);
	setenv("TMPDIR", workdir, 1);

	struct prog progs[] = { { .name = "sort" }, { .name = "numpy" }, { .name = "sqlite" }, { .name = "forkexec" } };
	const size_t np = sizeof progs / sizeof progs[0];
	setup_progs(progs, np, selfdir);

	/* vmo run there? */
	char vmo_why[256] = "";
	{
		char *chk[] = { vmo, "run", "--", "true", NULL };
		if (access(vmo, X_OK))
			snprintf(vmo_why, sizeof vmo_why, "%.200s not found (set VMO=PATH)", vmo);
		else if (run_quiet(chk))
			snprintf(vmo_why, sizeof vmo_why, "`%.150s run -- true` failed (libvmo-run.so built? jemalloc: libjemalloc-dev)", vmo);
	}
	/* cgroups and swap: root, a memory controller */
	char cg_no[700] = "";
	if (geteuid() != 0)
		snprintf(cg_no, sizeof cg_no, "not root: a memory cgroup and swapon need root");
	else if (!cg_find_v1() && !cg_find_v2())
		snprintf(cg_no, sizeof cg_no, "no memory cgroup to run in: %s", cg_why);
	bool zswap = false;
	char zswap_compressor[32] = "?", zswap_shrinker[8] = "?";
	if (!cg_no[0] && read_line(zswap_param, zswap_saved, sizeof zswap_saved) && access(zswap_param, W_OK) == 0) {
		zswap = true;
		read_line("/sys/module/zswap/parameters/compressor", zswap_compressor, sizeof zswap_compressor);
		/* (no shrinker_enabled on older kernels) */
		if (!read_line("/sys/module/zswap/parameters/shrinker_enabled", zswap_shrinker, sizeof zswap_shrinker))
			snprintf(zswap_shrinker, sizeof zswap_shrinker, "-");
	}

	printf("# budget: 25%% of each program's unlimited peak RSS; timeout %u s a run; work directory %s\n", timeout_s,
	       workdir);
	for (size_t i = 0; i < np; i++)
		if (progs[i].why[0] && strcmp(progs[i].why, "not in VMO_BENCH_ONLY"))
			printf("# %s skipped: %s\n", progs[i].name, progs[i].why);
	if (vmo_why[0])
		printf("# no vmo runs: %s\n", vmo_why);
	if (cg_no[0])
		printf("# no cgroup runs (only the unlimited and vmo figures): %s\n", cg_no);
	fflush(stdout);

	/* 1. unlimited: a warm-up, then the measured run */
	long max_peak = 0;
	for (size_t i = 0; i < np; i++) {
		struct prog *p = &progs[i];
		p->vmo_s = p->vmoswap_s = p->cgswap_s = p->cgzswap_s = -1;
		if (p->why[0])
			continue;
		char errp[64];
		snprintf(errp, sizeof errp, "%s.plain.err", p->name);
		const char *err = work_file(errp);
		for (int rep = 0; rep < 2; rep++) {
			run_prog(p->argv, p->in, NULL, err, &p->plain);
			if (p->plain.outcome != RUN_OK || !p->plain.md5[0]) {
				printf("%s_plain=%s\n", p->name, outcome_name[p->plain.outcome]);
				show_stderr(p->name, err);
				snprintf(p->why, sizeof p->why, "its unlimited run failed");
				break;
			}
		}
		if (p->why[0])
			continue;
		p->budget = ((uint64_t)p->plain.maxrss_kb * 1024 / 4) & ~(uint64_t)4095;
		if (p->plain.maxrss_kb > max_peak)
			max_peak = p->plain.maxrss_kb;
		printf("%s_plain_s=%.3f\n%s_plain_cpu_s=%.3f\n%s_peak_kb=%ld\n%s_budget_kb=%llu\n", p->name, p->plain.secs,
		       p->name, p->plain.cpu_s, p->name, p->plain.maxrss_kb, p->name, (unsigned long long)(p->budget >> 10));
		if (p->plain.memstall_ms >= 0)
			printf("%s_plain_memstall_ms=%ld\n", p->name, p->plain.memstall_ms);
		fflush(stdout);
	}

	/* 2. and 3.: every program under vmo run, before any cgroup run: a
	 * cgroup's stalls count in the machine's memory pressure, which vmo
	 * answers by capping its engines (src/evictor.c) */
	int failures = 0;
	for (size_t i = 0; i < np && !vmo_why[0]; i++) {
		struct prog *p = &progs[i];
		if (p->why[0])
			continue;
		printf("# %s under vmo run\n", p->name);
		/* 0: no budget; 1: the budget, the default store; 2: the budget,
		 * a swap file only (swap:DIR), as the kernel's */
		for (int v = 0; v < 3; v++) {
			const char *variant = v == 0 ? "vmo_nobudget" : v == 1 ? "vmo" : "vmoswap";
			bool with_budget = v > 0;
			char errp[64], statsp[64], budget[32], statsarg[PATH_MAX + 16], store[300];
			snprintf(errp, sizeof errp, "%s.%s.err", p->name, variant);
			snprintf(statsp, sizeof statsp, "%s.%s.stats", p->name, variant);
			const char *err = work_file(errp), *st = work_file(statsp);
			unlink(st);
			snprintf(statsarg, sizeof statsarg, "--stats=%s", st);
			snprintf(budget, sizeof budget, "%llu", (unsigned long long)p->budget);
			char *va[24];
			int n = 0;
			va[n++] = vmo;
			va[n++] = "run";
			if (with_budget) {
				va[n++] = "--budget";
				va[n++] = budget;
			}
			if (v == 2) {
				snprintf(store, sizeof store, "swap:%s", workdir);
				va[n++] = "--store";
				va[n++] = store;
			}
			va[n++] = statsarg;
			va[n++] = "--";
			for (int a = 0; p->argv[a]; a++)
				va[n++] = p->argv[a];
			va[n] = NULL;
			struct run r;
			run_prog(va, p->in, NULL, err, &r);
			double s = report_run(p, variant, &r, false);
			if (r.outcome == RUN_WRONG || r.outcome == RUN_FAILED)
				failures++;
			if (r.outcome == RUN_FAILED)
				show_stderr(variant, err);
			if (v == 1)
				p->vmo_s = s;
			else if (v == 2)
				p->vmoswap_s = s;
			/* the stats of a killed run are not there */
			struct vstats vs;
			read_stats(st, r.pid, &vs);
			if (vs.procs) {
				printf("%s_%s_faults=%ld\n%s_%s_evictions=%ld\n%s_%s_writebacks=%ld\n", p->name, variant,
				       vs.faults, p->name, variant, vs.evictions, p->name, variant, vs.writebacks);
				if (vs.procs > 1)
					printf("%s_%s_processes=%ld\n", p->name, variant, vs.procs);
				if (with_budget && vs.compression >= 0)
					printf("%s_%s_compression=%.2f\n", p->name, variant, vs.compression);
				/* 0: jemalloc's extents stay the kernel's, only
				 * large mmaps are paged (vmo run says why on the
				 * program's stderr) */
				if (vs.heap >= 0)
					printf("%s_%s_heap=%ld\n", p->name, variant, vs.heap);
			}
			fflush(stdout);
		}
	}

	/* the swap file: room for the largest program twice over */
	if (!cg_no[0] && max_peak) {
		uint64_t bytes = ((uint64_t)max_peak * 2048 + (64u << 20)) & ~((1ull << 20) - 1);
		char why[512];
		if (swap_create(bytes, why, sizeof why))
			snprintf(cg_no, sizeof cg_no, "%s", why);
		else
			printf("# cgroup v%d under %s; swap file %s (%llu MiB, swappiness 60); zswap %s%s%s%s%s\n", cg_version,
			       cg_parent, swapfile, (unsigned long long)(bytes >> 20),
			       zswap ? "available (a run with it enabled too; compressor " : "not available",
			       zswap ? zswap_compressor : "", zswap ? ", shrinker_enabled " : "", zswap ? zswap_shrinker : "",
			       zswap ? ")" : "");
		if (cg_no[0])
			printf("# no cgroup runs: %s\n", cg_no);
	}

	/* 4. and 5.: a memory cgroup with kernel swap, then zswap */
	for (size_t i = 0; i < np && !cg_no[0]; i++) {
		struct prog *p = &progs[i];
		if (p->why[0])
			continue;
		printf("# %s in a memory cgroup\n", p->name);
		for (int z = 0; z < (zswap ? 2 : 1); z++) {
			const char *variant = z ? "cgzswap" : "cgswap";
			char errp[64];
			snprintf(errp, sizeof errp, "%s.%s.err", p->name, variant);
			const char *err = work_file(errp);
			int rc = cg_create(p->name, p->budget);
			if (rc) {
				printf("# %s: cannot set up the cgroup %s: %s\n", variant, cgdir, strerror(-rc));
				cg_remove();
				continue;
			}
			if (z) {
				write_str(zswap_param, "Y");
				zswap_changed = 1;
			}
			char procs[PATH_MAX + 32];
			snprintf(procs, sizeof procs, "%s/cgroup.procs", cgdir);
			struct run r;
			run_prog(p->argv, p->in, procs, err, &r);
			long ooms = cg_key(cg_version == 1 ? "memory.oom_control" : "memory.events", "oom_kill");
			cg_remove();
			if (z) {
				write_str(zswap_param, zswap_saved);
				zswap_changed = 0;
			}
			double s = report_run(p, variant, &r, ooms > 0);
			if (s >= 0)
				printf("%s_%s_majflt=%ld\n", p->name, variant, r.majflt);
			else if (r.outcome == RUN_FAILED)
				show_stderr(variant, err);
			if (z)
				p->cgzswap_s = s;
			else
				p->cgswap_s = s;
			fflush(stdout);
		}
	}

	printf("# ratios (wall time)\n");
	for (size_t i = 0; i < np; i++) {
		struct prog *p = &progs[i];
		if (p->why[0])
			continue;
		ratio(p, "vmo_over_plain", p->vmo_s, p->plain.secs);
		ratio(p, "vmo_over_cgswap", p->vmo_s, p->cgswap_s);
		ratio(p, "vmo_over_cgzswap", p->vmo_s, p->cgzswap_s);
		ratio(p, "vmoswap_over_cgswap", p->vmoswap_s, p->cgswap_s);
		ratio(p, "cgswap_over_plain", p->cgswap_s, p->plain.secs);
	}
	undo();
	if (failures)
		printf("# %d vmo run(s) failed or gave a wrong output\n", failures);
	return failures ? 1 : 0;
}
