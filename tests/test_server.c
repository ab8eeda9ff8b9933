/* SPDX-License-Identifier: MIT */
/* test_server: objects served to other processes (vmo_server_* and
 * vmo_client_*), with real client processes.
 *
 * The parent runs an engine and a server on a socket in a fresh mkdtemp
 * directory, over a memory store (vmo_pager_mem), a store whose read of one
 * page blocks until released, or a file store.  The clients are this same
 * program run again (fork, then at once exec of /proc/self/exe: the parent
 * has threads, so a fork-only child could not use the library):
 *
 *   test_server --child                        a client
 *   test_server --server SOCK STOREFILE BLOCK  a server over a file store
 *                                              (for the case that kills it)
 *
 * A child reads one command a line on stdin and answers one line on stdout
 * (see child_main and server_main for the commands).  The parent waits for
 * every answer with a timeout (poll) and both sides run under alarm(), so
 * a hang fails instead of holding CI; a child whose stdin closes (the
 * parent died) exits.
 *
 * Cases:
 *   two-clients           two processes share an object's memory; a sync of
 *                         one (VMO_WAIT) returns once the store has both's
 *                         writes;
 *   read-only-routes      a read-only client of another uid: every way to
 *                         write fails or writes only a private copy, and
 *                         the object does not change (root);
 *   other-uid-refused     mode 0600 refuses another uid's open; a socket of
 *                         mode 0600 refuses its connect (root);
 *   kill-client-mid-fault a client killed while its fault is in the pager
 *                         leaves the server serving, and leaking nothing
 *                         (its descriptors back to the count before it,
 *                         within 2 s);
 *   server-killed         a client whose server is SIGKILLed gets SIGBUS for
 *                         pages not in memory (a pending fault too), keeps
 *                         those in memory; a new server reads what was
 *                         synced;
 *   vmod-killed           the same with the real vmod (stopped, so that a
 *                         fault stays pending, then SIGKILLed), and a new
 *                         vmod serving the object from its file;
 *   malformed-messages    hand-made bad packets on a raw socket are each
 *                         answered with ERROR, the connection stays usable,
 *                         and a normal client is served meanwhile. */
#include <vmo.h>

#include "helper.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG 4096u
#define NPG 256u
#define SIZE ((uint64_t)NPG * PG)
#define NOBODY 65534 /* the uid and gid a child drops to */
#define ANSWER_MS 10000 /* an answer of a child: within this, or a failure */

static uint64_t pat(uint64_t pg, uint64_t word) { return t_pattern(pg * PG + word * 8); }

static void fill_pattern(uint64_t *d, uint64_t npg)
{
	for (uint64_t i = 0; i < npg * PG / 8; i++)
		d[i] = t_pattern(i * 8);
}

/* ======================================================================== */
/* The client child                                                          */

static struct {
	struct vmo_client *cl;
	struct vmo_object *obj;
	char name[256];
	bool rw;
	uint64_t *view;
	size_t len;
} C;

static void answer(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void answer(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void answer_rc(int rc)
{
	if (rc)
		answer("err %d", rc);
	else
		answer("ok");
}

/* Check word 0 of pages [a, b) against val ("check"), or every word against
 * the pattern (val NULL: "checkpat"). */
static void cmd_check(uint64_t a, uint64_t b, const uint64_t *val)
{
	if (!C.view || b > C.len / PG || a > b) {
		answer("bad range");
		return;
	}
	for (uint64_t pg = a; pg < b; pg++)
		for (uint64_t w = 0; w < (val ? 1 : PG / 8); w++) {
			uint64_t got, want = val ? *val : pat(pg, w);
			if (t_probe_read(&C.view[pg * PG / 8 + w], &got, NULL)) {
				answer("bus %llu", (unsigned long long)pg);
				return;
			}
			if (got != want) {
				answer("bad %llu got %#llx word %llu", (unsigned long long)pg, (unsigned long long)got,
				       (unsigned long long)w);
				return;
			}
		}
	answer("ok");
}

/* The descriptor of the object that came from the server: the one in
 * /proc/self/fd whose link starts with "/memfd:". */
static int find_memfd(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	int found = -1;
	for (struct dirent *e; (e = readdir(d));) {
		char p[300], l[256];
		snprintf(p, sizeof p, "/proc/self/fd/%s", e->d_name);
		ssize_t n = readlink(p, l, sizeof l - 1);
		if (n > 0) {
			l[n] = 0;
			if (!strncmp(l, "/memfd:", 7))
				found = atoi(e->d_name);
		}
	}
	closedir(d);
	return found;
}

/* "routes": every way a read-only client might write the object.  Answers
 * "ok" and what happened to the two writes that can only make a private
 * copy, or "fail ROUTE ...".  Pages 0-3 were read before (in memory and
 * mapped); 4 and 5 were not. */
static void cmd_routes(void)
{
	char why[512] = "";
#define FAIL(...)                                                \
	do {                                                     \
		snprintf(why, sizeof why, __VA_ARGS__);          \
		goto out;                                        \
	} while (0)
	if (!C.view || C.rw)
		FAIL("no read-only view");
	int rc;
	void *a = NULL;
	if ((rc = vmo_map(C.obj, 0, C.len, VMO_PROT_READ | VMO_PROT_WRITE, &a)) != -EACCES)
		FAIL("vmo_map with VMO_PROT_WRITE: %d", rc);
	if ((rc = vmo_discard(C.obj, VMO_WAIT)) != -EACCES)
		FAIL("vmo_discard: %d", rc);
	if ((rc = vmo_discard_range(C.obj, 0, PG, 0)) != -EACCES)
		FAIL("vmo_discard_range: %d", rc);
	struct vmo_object *o2 = NULL;
	if ((rc = vmo_client_open(C.cl, C.name, VMO_OPEN_RDWR, 0, 0, &o2)) != -EACCES)
		FAIL("vmo_client_open RDWR: %d", rc);

	/* The descriptor the server sent. */
	int fd = find_memfd();
	if (fd < 0)
		FAIL("no /memfd: descriptor in /proc/self/fd");
	if ((fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDONLY)
		FAIL("the memfd is open %#x, not O_RDONLY", fcntl(fd, F_GETFL) & O_ACCMODE);
	void *m = mmap(NULL, C.len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m != MAP_FAILED)
		FAIL("mmap(PROT_WRITE, MAP_SHARED) of the memfd succeeded");
	m = mmap(NULL, C.len, PROT_READ, MAP_SHARED, fd, 0);
	if (m != MAP_FAILED) {
		if (!mprotect(m, C.len, PROT_READ | PROT_WRITE))
			FAIL("mprotect(PROT_WRITE) of a MAP_SHARED mapping of the memfd succeeded");
		munmap(m, C.len);
	}
	uint64_t junk = 0xbadbadbadull;
	if (write(fd, &junk, 8) >= 0)
		FAIL("write() to the memfd succeeded");
	if (pwrite(fd, &junk, 8, 0) >= 0)
		FAIL("pwrite() to the memfd succeeded");
	if (ftruncate(fd, 0) == 0 || ftruncate(fd, (off_t)C.len * 2) == 0)
		FAIL("ftruncate of the memfd succeeded");
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, PG) == 0)
		FAIL("fallocate(PUNCH_HOLE) of the memfd succeeded");
	if (fallocate(fd, 0, (off_t)C.len, PG) == 0)
		FAIL("fallocate (grow) of the memfd succeeded");
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	int fd2 = open(path, O_RDWR);
	if (fd2 >= 0)
		FAIL("open(%s, O_RDWR) succeeded", path);
	fd2 = open(path, O_WRONLY);
	if (fd2 >= 0)
		FAIL("open(%s, O_WRONLY) succeeded", path);

	/* The read-only view. */
	char *v = (char *)C.view;
	if (madvise(v, C.len, MADV_REMOVE) == 0)
		FAIL("madvise(MADV_REMOVE) of the view succeeded");
	/* mprotect + write: at most a private copy (page 1 in memory, page 4
	 * not yet faulted in). */
	const char *mp = "refused";
	if (mprotect(v, 6 * PG, PROT_READ | PROT_WRITE) == 0) {
		mp = "private";
		for (int pg = 1; pg <= 4; pg += 3) {
			uint64_t *w = (uint64_t *)(v + pg * PG), got = 0;
			if (t_probe_write(w, 0xdead0000ull + (unsigned)pg, NULL)) {
				mp = "sigbus";
				continue;
			}
			if (t_probe_read(w, &got, NULL) || got != 0xdead0000ull + (unsigned)pg)
				FAIL("the write through mprotect to page %d reads back %#llx", pg, (unsigned long long)got);
		}
	}
	/* /proc/self/mem: FOLL_FORCE may write a private mapping (a debugger's
	 * breakpoint), but only a private copy (page 3 in memory, 5 not). */
	const char *pm = "refused";
	int memfd = open("/proc/self/mem", O_RDWR);
	if (memfd >= 0) {
		for (int pg = 3; pg <= 5; pg += 2) {
			uint64_t val = 0xbeef0000ull + (unsigned)pg, got = 0;
			if (pwrite(memfd, &val, 8, (off_t)(uintptr_t)(v + pg * PG)) == 8) {
				if (t_probe_read((uint64_t *)(v + pg * PG), &got, NULL) || got != val)
					FAIL("the /proc/self/mem write to page %d reads back %#llx", pg,
					     (unsigned long long)got);
				pm = pg == 3 ? "private" : "private-both";
			}
		}
		close(memfd);
	}
	/* Drop the private copies: the view shows the object again. */
	if (madvise(v, 6 * PG, MADV_DONTNEED))
		FAIL("madvise(MADV_DONTNEED): %s", strerror(errno));
	for (uint64_t pg = 0; pg < 6; pg++)
		for (uint64_t w = 0; w < PG / 8; w++) {
			uint64_t got;
			if (t_probe_read(&C.view[pg * PG / 8 + w], &got, NULL))
				FAIL("page %llu: SIGBUS after MADV_DONTNEED", (unsigned long long)pg);
			if (got != pat(pg, w))
				FAIL("page %llu word %llu after MADV_DONTNEED: %#llx", (unsigned long long)pg,
				     (unsigned long long)w, (unsigned long long)got);
		}
	if (mprotect(v, 6 * PG, PROT_READ))
		FAIL("mprotect back: %s", strerror(errno));
	answer("ok mprotect=%s procmem=%s", mp, pm);
	return;
out:
	answer("fail %s", why);
#undef FAIL
}

static void cmd_close(void)
{
	if (C.view)
		vmo_unmap(C.obj, C.view, C.len);
	C.view = NULL;
	if (C.obj)
		vmo_object_unref(C.obj);
	C.obj = NULL;
	if (C.cl)
		vmo_client_close(C.cl);
	C.cl = NULL;
}

/* "a,b,c": the names of the n entries. */
static const char *names_of(const struct vmo_client_entry *e, int n)
{
	static char out[16 * 257];
	size_t len = 0;
	for (int i = 0; i < n && i < 16; i++) {
		size_t l = strnlen(e[i].name, 255);
		if (i)
			out[len++] = ',';
		memcpy(out + len, e[i].name, l);
		len += l;
	}
	out[len] = 0;
	return out;
}

/* Commands (one a line; one line answered):
 *   drop                 setgroups, setresgid and setresuid to 65534
 *   connect PATH         vmo_client_connect                  ok | err -E
 *   open NAME rw|ro      vmo_client_open                     ok | err -E
 *   list                 vmo_client_list                     names a,b,...
 *   map                  the whole object (writable if rw)   ok | err -E
 *   write A B VAL        word 0 of pages [A, B) = VAL        ok | bus PG
 *   check A B VAL        word 0 of pages [A, B) == VAL?      ok | bad PG got X | bus PG
 *   checkpat A B         every word of [A, B) the pattern?   (the same)
 *   sync                 vmo_sync(VMO_WAIT)                  ok | err -E
 *   probe PG             read word 0 of page PG              val X | bus
 *   routes               cmd_routes
 *   close                unmap, unref, vmo_client_close      ok
 *   quit                 close, answer bye, exit 0 */
static int child_main(void)
{
	alarm(90);
	char line[512];
	while (fgets(line, sizeof line, stdin)) {
		char a1[300] = "", a2[300] = "";
		unsigned long long x = 0, y = 0, z = 0;
		if (!strncmp(line, "drop", 4)) {
			if (setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) || setresuid(NOBODY, NOBODY, NOBODY))
				answer("err %d", -errno);
			else
				answer("ok");
		} else if (sscanf(line, "connect %299s", a1) == 1) {
			answer_rc(vmo_client_connect(a1, &C.cl));
		} else if (sscanf(line, "open %255s %299s", a1, a2) == 2) {
			snprintf(C.name, sizeof C.name, "%s", a1);
			C.rw = !strcmp(a2, "rw");
			answer_rc(vmo_client_open(C.cl, a1, C.rw ? VMO_OPEN_RDWR : VMO_OPEN_RDONLY, 0, 0, &C.obj));
		} else if (!strncmp(line, "list", 4)) {
			struct vmo_client_entry e[16];
			uint64_t cur = 0;
			int n = vmo_client_list(C.cl, &cur, e, 16);
			if (n < 0) {
				answer("err %d", n);
				continue;
			}
			answer("names %s", names_of(e, n));
		} else if (!strncmp(line, "map", 3)) {
			C.len = vmo_object_size(C.obj);
			void *p = NULL;
			int rc = vmo_map(C.obj, 0, C.len, VMO_PROT_READ | (C.rw ? VMO_PROT_WRITE : 0), &p);
			C.view = rc ? NULL : p;
			answer_rc(rc);
		} else if (sscanf(line, "write %llu %llu %lli", &x, &y, &z) == 3) {
			uint64_t pg = x;
			for (; C.view && pg < y && pg < C.len / PG; pg++)
				if (t_probe_write(&C.view[pg * PG / 8], z, NULL))
					break;
			if (pg == y)
				answer("ok");
			else
				answer("bus %llu", (unsigned long long)pg);
		} else if (sscanf(line, "checkpat %llu %llu", &x, &y) == 2) {
			cmd_check(x, y, NULL);
		} else if (sscanf(line, "check %llu %llu %lli", &x, &y, &z) == 3) {
			uint64_t v = z;
			cmd_check(x, y, &v);
		} else if (!strncmp(line, "sync", 4)) {
			answer_rc(vmo_sync(C.obj, VMO_WAIT));
		} else if (sscanf(line, "probe %llu", &x) == 1) {
			uint64_t v = 0;
			if (!C.view || x >= C.len / PG)
				answer("bad range");
			else if (t_probe_read(&C.view[x * PG / 8], &v, NULL))
				answer("bus");
			else
				answer("val %#llx", (unsigned long long)v);
		} else if (!strncmp(line, "routes", 6)) {
			cmd_routes();
		} else if (!strncmp(line, "close", 5)) {
			cmd_close();
			answer("ok");
		} else if (!strncmp(line, "quit", 4)) {
			cmd_close();
			answer("bye");
			return 0;
		} else {
			answer("unknown command");
		}
	}
	_exit(1); /* stdin closed: the parent is gone */
}

/* ======================================================================== */
/* The server child (server-killed): a file store whose read of page BLOCK
 * says "inread BLOCK" on stdout and never returns (the parent kills it).   */

struct wrap {
	const struct vmo_pager_ops *ops;
	void *ctx;
	long block_pg;
};

static int wrap_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct wrap *w = ctx;
	uint64_t b = (uint64_t)w->block_pg * PG;
	if (w->block_pg >= 0 && b >= off && b < off + len) {
		char msg[64];
		int n = snprintf(msg, sizeof msg, "inread %ld\n", w->block_pg);
		if (write(1, msg, (size_t)n) != n)
			_exit(5);
		for (;;)
			pause();
	}
	return w->ops->read(w->ctx, off, buf, len, flags);
}

static int wrap_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct wrap *w = ctx;
	return w->ops->write(w->ctx, off, buf, len);
}

static int wrap_sync(void *ctx)
{
	struct wrap *w = ctx;
	return w->ops->sync ? w->ops->sync(w->ctx) : 0;
}

static void wrap_release(void *ctx)
{
	struct wrap *w = ctx;
	if (w->ops->release)
		w->ops->release(w->ctx);
	free(w);
}

static const struct vmo_pager_ops wrap_ops = {
	.read = wrap_read, .write = wrap_write, .sync = wrap_sync, .release = wrap_release
};

/* --server SOCK STOREFILE BLOCK: serve "obj" (NPG pages of STOREFILE,
 * owner this uid, mode 0600) on SOCK; "ready" once listening.  Commands: quit. */
static int server_main(const char *sock, const char *file, long block_pg)
{
	alarm(90);
	struct vmo_engine *eng = t_engine(2);
	int fd = open(file, O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0);
	struct wrap *w = calloc(1, sizeof *w);
	CHECK(w);
	w->block_pg = block_pg;
	CHECK_OK(vmo_pager_file(fd, 0, &w->ops, &w->ctx));
	struct vmo_object_opts oo = { .size = SIZE, .flags = VMO_OBJ_NO_READAHEAD };
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, &wrap_ops, w, &oo, &obj));
	struct vmo_server *srv;
	CHECK_OK(vmo_server_create(eng, &(struct vmo_server_opts){ .path = sock }, &srv));
	CHECK_OK(vmo_server_publish(srv, "obj", obj, geteuid(), getegid(), 0600));
	answer("ready");
	char line[128];
	while (fgets(line, sizeof line, stdin)) {
		if (!strncmp(line, "quit", 4)) {
			CHECK_OK(vmo_server_destroy(srv));
			vmo_object_unref(obj);
			CHECK_OK(vmo_engine_destroy(eng));
			close(fd);
			answer("bye");
			return 0;
		}
		answer("unknown command");
	}
	_exit(1);
}

/* ======================================================================== */
/* The parent: children                                                      */

struct child {
	pid_t pid;
	int in, out; /* its stdin (we write), its stdout (we read) */
	const char *name;
	size_t len;
	char buf[4096], line[4096];
};

/* Start this program again with args (after argv[0]). */
static void child_start(struct child *c, const char *name, const char *const *args)
{
	int in[2], out[2];
	CHECK(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0);
	char *argv[8] = { "test_server" };
	for (int i = 0; args[i]; i++) {
		CHECK(i < 6);
		argv[i + 1] = (char *)args[i];
	}
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) { /* only dup2 and exec: the parent has threads */
		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
			_exit(126);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	memset(c, 0, sizeof *c);
	c->pid = pid;
	c->in = in[1];
	c->out = out[0];
	c->name = name;
}

static void client_start(struct child *c, const char *name)
{
	child_start(c, name, (const char *const[]){ "--child", NULL });
}

static void child_send(struct child *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void child_send(struct child *c, const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(cmd, sizeof cmd - 1, fmt, ap);
	va_end(ap);
	CHECK(n > 0 && n < (int)sizeof cmd - 1);
	cmd[n++] = '\n';
	if (write(c->in, cmd, (size_t)n) != n)
		fprintf(stderr, "%s: writing a command: %s\n", c->name, strerror(errno));
}

/* Its next line of output, or NULL if none within ms (or it closed). */
static const char *child_read(struct child *c, int ms)
{
	uint64_t end = t_now_ns() + (uint64_t)ms * 1000000u;
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		if (nl) {
			size_t n = (size_t)(nl - c->buf);
			memcpy(c->line, c->buf, n);
			c->line[n] = 0;
			memmove(c->buf, nl + 1, c->len - n - 1);
			c->len -= n + 1;
			return c->line;
		}
		uint64_t now = t_now_ns();
		if (now >= end)
			return NULL;
		struct pollfd pf = { .fd = c->out, .events = POLLIN };
		int r = poll(&pf, 1, (int)((end - now) / 1000000u) + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return NULL;
		ssize_t k = read(c->out, c->buf + c->len, sizeof c->buf - 1 - c->len);
		if (k <= 0)
			return NULL;
		c->len += (size_t)k;
	}
}

/* Fail the case, saying what the child answered (or how it ended). */
static void child_fail(struct child *c, const char *cmd, const char *got, const char *want)
{
	int st = 0;
	char how[64] = "still running";
	if (waitpid(c->pid, &st, WNOHANG) == c->pid)
		snprintf(how, sizeof how, WIFEXITED(st) ? "exited %d" : "killed by signal %d",
			 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	fprintf(stderr, "%s: \"%s\" answered \"%s\", expected \"%s\" (child %s)\n", c->name, cmd,
		got ? got : "(nothing)", want, how);
	t_abort();
}

/* Send a command and check the answer: exactly want, or (want ending in
 * '*') beginning with it.  Returns the answer. */
static const char *child_expect(struct child *c, const char *want, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static const char *child_expect(struct child *c, const char *want, const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	child_send(c, "%s", cmd);
	const char *got = child_read(c, ANSWER_MS);
	size_t wl = strlen(want);
	bool match = got && (want[wl - 1] == '*' ? !strncmp(got, want, wl - 1) : !strcmp(got, want));
	if (!match)
		child_fail(c, cmd, got, want);
	return got;
}

/* Wait for the child to end within ms: its wait status (killed if it does
 * not end: a failure). */
static int child_wait(struct child *c, int ms)
{
	int st = 0;
	uint64_t end = t_now_ns() + (uint64_t)ms * 1000000u;
	for (;;) {
		pid_t r = waitpid(c->pid, &st, WNOHANG);
		CHECK(r >= 0);
		if (r == c->pid)
			break;
		if (t_now_ns() >= end) {
			fprintf(stderr, "%s: did not exit within %d ms\n", c->name, ms);
			kill(c->pid, SIGKILL);
			waitpid(c->pid, &st, 0);
			t_abort();
		}
		usleep(2000);
	}
	close(c->in);
	close(c->out);
	c->pid = 0;
	return st;
}

/* "quit", "bye", and an exit status of 0. */
static void child_quit(struct child *c)
{
	child_expect(c, "bye", "quit");
	int st = child_wait(c, ANSWER_MS);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "%s: wait status %#x after quit\n", c->name, st);
		t_abort();
	}
}

/* A client child connected to sock with name opened (rw or ro) and mapped. */
static void client_open(struct child *c, const char *name, const char *sock, const char *obj, bool rw)
{
	client_start(c, name);
	child_expect(c, "ok", "connect %s", sock);
	child_expect(c, "ok", "open %s %s", obj, rw ? "rw" : "ro");
	child_expect(c, "ok", "map");
}

/* ======================================================================== */
/* The parent: server, stores, descriptors                                   */

struct env {
	char dir[64], sock[128];
	struct vmo_engine *eng;
	struct vmo_server *srv;
	struct vmo_object *obj;
};

/* A fresh directory (mode 0711: another uid can reach a socket in it), an
 * engine, and a server on DIR/sock with that socket mode (0: 0600). */
static void env_start(struct env *e, unsigned sockmode)
{
	memset(e, 0, sizeof *e);
	snprintf(e->dir, sizeof e->dir, "/tmp/vmo-server-XXXXXX");
	CHECK(mkdtemp(e->dir));
	CHECK(chmod(e->dir, 0711) == 0);
	snprintf(e->sock, sizeof e->sock, "%s/sock", e->dir);
	e->eng = t_engine(2);
	struct vmo_server_opts so = { .path = e->sock, .mode = sockmode };
	int rc = vmo_server_create(e->eng, &so, &e->srv);
	if (rc)
		fprintf(stderr, "vmo_server_create: %s\n", vmo_last_error_detail());
	CHECK_OK(rc);
}

static void env_stop(struct env *e)
{
	CHECK_OK(vmo_server_destroy(e->srv));
	if (e->obj)
		vmo_object_unref(e->obj);
	CHECK_OK(vmo_engine_destroy(e->eng));
	CHECK(rmdir(e->dir) == 0);
}

/* An object over a memory store of NPG pages filled with the pattern. */
static uint64_t *env_mem_object(struct env *e, unsigned objflags)
{
	uint64_t *mem = malloc(SIZE);
	CHECK(mem);
	fill_pattern(mem, NPG);
	const struct vmo_pager_ops *ops;
	void *ctx;
	CHECK_OK(vmo_pager_mem(mem, SIZE, &ops, &ctx));
	struct vmo_object_opts oo = { .size = SIZE, .flags = objflags };
	CHECK_OK(vmo_object_create(e->eng, ops, ctx, &oo, &e->obj));
	return mem;
}

/* Word 0 of pages [a, b) is val (words past it the pattern), or every word
 * the pattern (val NULL). */
static void store_check(const uint64_t *d, uint64_t a, uint64_t b, const uint64_t *val)
{
	for (uint64_t pg = a; pg < b; pg++)
		for (uint64_t w = 0; w < PG / 8; w++) {
			uint64_t want = val && w == 0 ? *val : pat(pg, w);
			if (d[pg * PG / 8 + w] != want) {
				fprintf(stderr, "store page %llu word %llu: %#llx, expected %#llx\n",
					(unsigned long long)pg, (unsigned long long)w,
					(unsigned long long)d[pg * PG / 8 + w], (unsigned long long)want);
				t_abort();
			}
		}
}

/* Open descriptors of this process. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	CHECK(d);
	int n = 0;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* (the directory's own) */
}

static void list_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	for (struct dirent *e; d && (e = readdir(d));) {
		char p[300], l[256];
		snprintf(p, sizeof p, "/proc/self/fd/%s", e->d_name);
		ssize_t n = readlink(p, l, sizeof l - 1);
		if (n > 0) {
			l[n] = 0;
			fprintf(stderr, "  fd %s -> %s\n", e->d_name, l);
		}
	}
	if (d)
		closedir(d);
}

/* Wait up to ms for the count of descriptors to come back to base. */
static void fds_back_to(int base, int ms, const char *when)
{
	uint64_t end = t_now_ns() + (uint64_t)ms * 1000000u;
	int n;
	while ((n = count_fds()) != base && t_now_ns() < end)
		usleep(5000);
	if (n != base) {
		fprintf(stderr, "%s: %d descriptors open, %d before\n", when, n, base);
		list_fds();
		t_abort();
	}
}

/* Wait up to ms for no client to hold name open. */
static void clients_gone(struct env *e, const char *name, int ms)
{
	uint64_t end = t_now_ns() + (uint64_t)ms * 1000000u;
	int n;
	while ((n = vmo_server_object_clients(e->srv, name)) != 0 && t_now_ns() < end)
		usleep(5000);
	CHECK_EQ(n, 0);
}

static void require_root(void)
{
	if (geteuid() != 0)
		t_skip_case("needs root (a child changes its uid)");
}

/* ======================================================================== */
/* two-clients                                                               */

static void case_two_clients(void)
{
	t_require_uffd();
	struct env e;
	env_start(&e, 0);
	uint64_t *mem = env_mem_object(&e, 0);
	CHECK_OK(vmo_server_publish(e.srv, "shared", e.obj, geteuid(), getegid(), 0600));
	struct child a, b;
	client_open(&a, "client A", e.sock, "shared", true);
	client_open(&b, "client B", e.sock, "shared", true);
	CHECK_EQ(vmo_server_object_clients(e.srv, "shared"), 2);

	child_expect(&a, "ok", "write 0 64 1");
	child_expect(&b, "ok", "check 0 64 1"); /* at once: the same memory */
	child_expect(&b, "ok", "write 32 96 2");
	child_expect(&a, "ok", "check 32 96 2");
	child_expect(&a, "ok", "check 0 32 1");
	child_expect(&b, "ok", "checkpat 96 256");
	/* A's sync returns once the store has every write made before it, B's
	 * too (Mach's lock_completed). */
	child_expect(&a, "ok", "sync");
	uint64_t one = 1, two = 2;
	store_check(mem, 0, 32, &one);
	store_check(mem, 32, 96, &two);
	store_check(mem, 96, NPG, NULL);

	/* The server lists its clients (ours: uid 0 sees all, others their
	 * own), with their faults: A and B faulted every page they touched. */
	struct vmo_client *me;
	CHECK_OK(vmo_client_connect(e.sock, &me));
	struct vmo_client_info ci[8];
	uint64_t cur = 0;
	int nci = vmo_client_clients(me, &cur, ci, 8);
	CHECK_EQ(nci, 3);
	CHECK_EQ(cur, 0);
	for (int i = 0; i < nci; i++) {
		if (ci[i].pid != a.pid && ci[i].pid != b.pid)
			continue;
		CHECK_EQ(ci[i].objects, 1);
		CHECK_EQ(ci[i].views, 1);
		CHECK(ci[i].faults >= 64);
		CHECK(ci[i].requests >= 4);
	}
	cur = 0; /* one at a time: the cursor goes on */
	CHECK_EQ(vmo_client_clients(me, &cur, ci, 1), 1);
	CHECK(cur != 0);
	CHECK_EQ(vmo_client_clients(me, &cur, ci, 8), 2);
	CHECK_OK(vmo_client_close(me));

	child_quit(&a);
	child_quit(&b);
	clients_gone(&e, "shared", 2000);
	env_stop(&e);
	free(mem);
}

/* ======================================================================== */
/* read-only-routes                                                          */

static void case_read_only_routes(void)
{
	t_require_uffd();
	require_root();
	struct env e;
	env_start(&e, 0666);
	uint64_t *mem = env_mem_object(&e, 0);
	CHECK_OK(vmo_server_publish(e.srv, "data", e.obj, 0, 0, 0644));
	struct child c;
	client_start(&c, "client nobody");
	child_expect(&c, "ok", "drop");
	child_expect(&c, "ok", "connect %s", e.sock);
	child_expect(&c, "err -13", "open data rw"); /* 0644: not for writing by others */
	child_expect(&c, "ok", "open data ro");
	child_expect(&c, "ok", "map");
	child_expect(&c, "ok", "checkpat 0 4");
	const char *r = child_expect(&c, "ok*", "routes");
	printf("  read-only-routes: %s\n", r);
	/* Pages it did not touch: the object's data, through the server. */
	child_expect(&c, "ok", "checkpat 6 256");
	child_expect(&c, "ok", "checkpat 0 256");

	/* Not one byte changed: in the store after a sync, and in the object's
	 * memory seen through a view of the server's own. */
	CHECK_OK(vmo_sync(e.obj, VMO_WAIT));
	store_check(mem, 0, NPG, NULL);
	void *v;
	CHECK_OK(vmo_map(e.obj, 0, SIZE, VMO_PROT_READ, &v));
	store_check(v, 0, NPG, NULL);
	CHECK_OK(vmo_unmap(e.obj, v, SIZE));
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(e.obj, &st));
	CHECK_EQ(st.dirty, 0);

	child_quit(&c);
	clients_gone(&e, "data", 2000);
	env_stop(&e);
	free(mem);
}

/* ======================================================================== */
/* other-uid-refused                                                         */

static void case_other_uid_refused(void)
{
	t_require_uffd();
	require_root();
	struct env e;
	env_start(&e, 0666); /* anyone may connect */
	uint64_t *mem = env_mem_object(&e, 0);
	CHECK_OK(vmo_server_publish(e.srv, "secret", e.obj, 0, 0, 0600));
	CHECK_OK(vmo_server_publish(e.srv, "public", e.obj, 0, 0, 0644));
	/* A second server, with the default socket mode (0600). */
	char sock2[160];
	snprintf(sock2, sizeof sock2, "%s/sock2", e.dir);
	struct vmo_server *srv2;
	CHECK_OK(vmo_server_create(e.eng, &(struct vmo_server_opts){ .path = sock2 }, &srv2));
	struct stat sb;
	CHECK(stat(sock2, &sb) == 0 && (sb.st_mode & 0777) == 0600);

	struct child c;
	client_start(&c, "client nobody");
	child_expect(&c, "ok", "drop");
	child_expect(&c, "err -13", "connect %s", sock2);
	child_expect(&c, "ok", "connect %s", e.sock);
	child_expect(&c, "err -13", "open secret ro");
	child_expect(&c, "err -13", "open secret rw");
	child_expect(&c, "names public", "list"); /* a name it may not open is not listed */
	child_expect(&c, "err -13", "open public rw");
	child_expect(&c, "ok", "open public ro");
	child_quit(&c);
	CHECK_EQ(vmo_server_object_clients(e.srv, "secret"), 0);

	CHECK_OK(vmo_server_destroy(srv2));
	CHECK(access(sock2, F_OK) != 0);
	env_stop(&e);
	free(mem);
}

/* ======================================================================== */
/* kill-client-mid-fault                                                     */

struct bstore { /* a store whose read of one page waits for `go` */
	uint64_t *data;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	long block_pg;
	bool in_read, go;
};

static int bs_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct bstore *s = ctx;
	uint64_t b = (uint64_t)s->block_pg * PG;
	if (s->block_pg >= 0 && b >= off && b < off + len) {
		pthread_mutex_lock(&s->mu);
		s->in_read = true;
		pthread_cond_broadcast(&s->cv);
		while (!s->go)
			pthread_cond_wait(&s->cv, &s->mu);
		pthread_mutex_unlock(&s->mu);
	}
	memcpy(buf, (char *)s->data + off, len);
	return 0;
}

static int bs_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct bstore *s = ctx;
	memcpy((char *)s->data + off, buf, len);
	return 0;
}

static const struct vmo_pager_ops bs_ops = { .read = bs_read, .write = bs_write };

static void case_kill_client_mid_fault(void)
{
	t_require_uffd();
	struct env e;
	env_start(&e, 0);
	struct bstore s = { .block_pg = 7 };
	s.data = malloc(SIZE);
	CHECK(s.data);
	fill_pattern(s.data, NPG);
	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.cv, NULL);
	struct vmo_object_opts oo = { .size = SIZE, .flags = VMO_OBJ_NO_READAHEAD };
	CHECK_OK(vmo_object_create(e.eng, &bs_ops, &s, &oo, &e.obj));
	CHECK_OK(vmo_server_publish(e.srv, "obj", e.obj, geteuid(), getegid(), 0600));

	int base = count_fds();
	struct child a;
	client_open(&a, "client A", e.sock, "obj", true);
	child_expect(&a, "ok", "checkpat 0 4");
	child_send(&a, "probe 7");
	/* Its fault is in the pager's read: kill it there. */
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += ANSWER_MS / 1000;
	pthread_mutex_lock(&s.mu);
	int rc = 0;
	while (!s.in_read && rc == 0)
		rc = pthread_cond_timedwait(&s.cv, &s.mu, &dl);
	bool in_read = s.in_read;
	pthread_mutex_unlock(&s.mu);
	if (!in_read)
		child_fail(&a, "probe 7", child_read(&a, 0), "(blocked in the pager's read)");
	CHECK(child_read(&a, 50) == NULL); /* (blocked: no answer) */
	CHECK(kill(a.pid, SIGKILL) == 0);
	int st = child_wait(&a, ANSWER_MS);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	pthread_mutex_lock(&s.mu);
	s.go = true;
	pthread_cond_broadcast(&s.cv);
	pthread_mutex_unlock(&s.mu);
	/* Nothing of A stays in the server: its connection, userfaultfd and
	 * handle go. */
	fds_back_to(base, 2000, "after client A was killed");
	clients_gone(&e, "obj", 2000);

	/* The server goes on serving: every page, the one A's fault was
	 * reading too. */
	struct child b;
	client_open(&b, "client B", e.sock, "obj", true);
	child_expect(&b, "ok", "checkpat 0 256");
	child_expect(&b, "ok", "write 0 256 9");
	child_expect(&b, "ok", "sync");
	uint64_t nine = 9;
	store_check(s.data, 0, NPG, &nine);
	child_quit(&b);
	clients_gone(&e, "obj", 2000);
	fds_back_to(base, 2000, "after client B quit");

	env_stop(&e);
	pthread_mutex_destroy(&s.mu);
	pthread_cond_destroy(&s.cv);
	free(s.data);
}

/* ======================================================================== */
/* server-killed                                                             */

static void server_start(struct child *s, const char *sock, const char *file, long block_pg)
{
	char blk[32];
	snprintf(blk, sizeof blk, "%ld", block_pg);
	child_start(s, "server", (const char *const[]){ "--server", sock, file, blk, NULL });
	const char *r = child_read(s, ANSWER_MS);
	if (!r || strcmp(r, "ready"))
		child_fail(s, "(start)", r, "ready");
}

static uint64_t file_word(int fd, uint64_t pg, uint64_t w)
{
	uint64_t v = 0;
	CHECK(pread(fd, &v, 8, (off_t)(pg * PG + w * 8)) == 8);
	return v;
}

/* A store file at path: NPG pages of the pattern (fill_pattern), created;
 * its descriptor. */
static int pattern_file(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	uint64_t *init = malloc(SIZE);
	CHECK(init);
	fill_pattern(init, NPG);
	CHECK(pwrite(fd, init, SIZE, 0) == (ssize_t)SIZE);
	free(init);
	return fd;
}

static void case_server_killed(void)
{
	t_require_uffd();
	char dir[64], sock[128], file[128];
	snprintf(dir, sizeof dir, "/tmp/vmo-server-XXXXXX");
	CHECK(mkdtemp(dir));
	snprintf(sock, sizeof sock, "%s/sock", dir);
	snprintf(file, sizeof file, "%s/store", dir);
	int fd = pattern_file(file);

	struct child srv, c;
	server_start(&srv, sock, file, 100);
	client_open(&c, "client C", sock, "obj", true);
	child_expect(&c, "ok", "write 0 16 5");
	child_expect(&c, "ok", "sync");
	for (uint64_t pg = 0; pg < 16; pg++) /* in the file once sync returned */
		CHECK_EQ(file_word(fd, pg, 0), 5);
	child_expect(&c, "ok", "write 16 32 6"); /* not synced */

	/* A fault the server is reading when it dies. */
	child_send(&c, "probe 100");
	const char *r = child_read(&srv, ANSWER_MS);
	if (!r || strcmp(r, "inread 100"))
		child_fail(&srv, "(C probes page 100)", r, "inread 100");
	CHECK(child_read(&c, 50) == NULL); /* (C waits) */
	CHECK(kill(srv.pid, SIGKILL) == 0);
	int st = child_wait(&srv, ANSWER_MS);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	/* The pending fault: SIGBUS, never zeros, never a hang. */
	r = child_read(&c, 5000);
	if (!r || strcmp(r, "bus"))
		child_fail(&c, "probe 100 (server killed)", r, "bus");
	child_expect(&c, "bus", "probe 200"); /* never touched */
	child_expect(&c, "ok", "check 0 16 5"); /* in memory: still there */
	child_expect(&c, "ok", "check 16 32 6");
	child_expect(&c, "err -104", "sync"); /* -ECONNRESET */
	child_quit(&c);

	/* A new server on the same socket and store: what was synced is there. */
	server_start(&srv, sock, file, -1);
	struct child d;
	client_open(&d, "client D", sock, "obj", false);
	child_expect(&d, "ok", "check 0 16 5");
	child_expect(&d, "ok", "checkpat 32 256");
	child_quit(&d);
	child_quit(&srv);

	close(fd);
	CHECK(unlink(file) == 0);
	unlink(sock); /* (the killed server's; the new one unlinks its own) */
	CHECK(rmdir(dir) == 0);
}

/* ======================================================================== */
/* vmod-killed                                                               */

/* The real vmod (built next to the tests: ../vmod), on store directory
 * `dir`/store and socket `sock`; its pid, once its socket answers. */
static pid_t vmod_start(const char *dir, const char *sock)
{
	char exe[512], store[256];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 16);
	CHECK(n > 0);
	exe[n] = 0;
	char *sl = strrchr(exe, '/');
	CHECK(sl);
	strcpy(sl, "/../vmod");
	if (access(exe, X_OK))
		t_skip_case("vmod is not built (%s)", exe);
	snprintf(store, sizeof store, "%s/store", dir);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* (a test that dies leaves no vmod behind) */
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		execl(exe, "vmod", "--socket", sock, "--dir", store, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		struct vmo_client *cl;
		if (vmo_client_connect(sock, &cl) == 0) {
			CHECK_OK(vmo_client_close(cl));
			return pid;
		}
		usleep(10000);
	}
	kill(pid, SIGKILL);
	CHECK(!"vmod did not start");
	return -1;
}

/* Every thread of pid stopped (SIGSTOP takes effect asynchronously: a
 * worker may serve one more fault after kill returns). */
static void wait_stopped(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	for (int i = 0; i < 400; i++) {
		DIR *d = opendir(path);
		CHECK(d);
		bool all = true;
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			char sp[400], buf[512];
			snprintf(sp, sizeof sp, "%s/%s/stat", path, e->d_name);
			FILE *f = fopen(sp, "r");
			if (!f)
				continue;
			size_t n = fread(buf, 1, sizeof buf - 1, f);
			fclose(f);
			buf[n] = 0;
			const char *rp = strrchr(buf, ')');
			if (rp && rp[1] == ' ' && rp[2] != 'T' && rp[2] != 't')
				all = false;
		}
		closedir(d);
		if (all)
			return;
		usleep(5000);
	}
	CHECK(!"vmod did not stop");
}

/* vmod itself SIGKILLed with a fault pending: it is stopped (SIGSTOP) so
 * that the client's fault on an unread page stays pending, then killed.
 * The client gets SIGBUS within a bound, keeps what is in memory; a new
 * vmod serves the object from its file, with what was synced. */
static void case_vmod_killed(void)
{
	t_require_uffd();
	char dir[64], sock[128], file[128];
	snprintf(dir, sizeof dir, "/tmp/vmo-vmod-XXXXXX");
	CHECK(mkdtemp(dir));
	snprintf(sock, sizeof sock, "%s/sock", dir);
	snprintf(file, sizeof file, "%s/store", dir);
	CHECK_OK(mkdir(file, 0700));
	snprintf(file, sizeof file, "%s/store/obj", dir);
	int fd = pattern_file(file);

	pid_t v = vmod_start(dir, sock);
	struct child c;
	client_open(&c, "client C", sock, "obj", true);
	child_expect(&c, "ok", "write 0 16 5");
	child_expect(&c, "ok", "sync");
	for (uint64_t pg = 0; pg < 16; pg++)
		CHECK_EQ(file_word(fd, pg, 0), 5);
	child_expect(&c, "ok", "write 16 32 6"); /* not synced */
	CHECK_OK(kill(v, SIGSTOP));
	wait_stopped(v);
	child_send(&c, "probe 200"); /* pending: nobody serves it (read-ahead of 0..31 stops well before) */
	const char *early = child_read(&c, 300);
	if (early)
		child_fail(&c, "probe 200 (vmod stopped)", early, "no answer yet");
	CHECK_OK(kill(v, SIGKILL));
	int st;
	CHECK_EQ(waitpid(v, &st, 0), v);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	const char *r = child_read(&c, 5000);
	if (!r || strcmp(r, "bus"))
		child_fail(&c, "probe 200 (vmod killed)", r, "bus");
	child_expect(&c, "bus", "probe 150");
	child_expect(&c, "ok", "check 0 16 5");
	child_expect(&c, "ok", "check 16 32 6");
	child_quit(&c);

	v = vmod_start(dir, sock); /* replaces the dead one's socket file */
	struct child d;
	client_open(&d, "client D", sock, "obj", false);
	child_expect(&d, "ok", "check 0 16 5");
	child_expect(&d, "ok", "checkpat 32 256");
	child_quit(&d);
	CHECK_OK(kill(v, SIGTERM));
	CHECK_EQ(waitpid(v, &st, 0), v);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(fd);
	char cmd[160];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK_EQ(system(cmd), 0);
}

/* ======================================================================== */
/* malformed-messages                                                        */

enum { HELLO = 1, HELLO_OK = 2, OPEN = 3, OPEN_OK = 4, ATTACH = 6, STATS = 11, STATS_OK = 12, LIST = 14,
       LIST_OK = 15, ERROR = 17 };

static void le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void le32(uint8_t *p, uint32_t v) { le16(p, (uint16_t)v), le16(p + 2, (uint16_t)(v >> 16)); }
static void le64(uint8_t *p, uint64_t v) { le32(p, (uint32_t)v), le32(p + 4, (uint32_t)(v >> 32)); }
static uint32_t rd32(const uint8_t *p) { return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* A header at b: magic, version, type, len, seq. */
static void hdr(uint8_t *b, uint16_t version, uint16_t type, uint32_t len, uint32_t seq)
{
	le32(b, 0x574f4d56u);
	le16(b + 4, version);
	le16(b + 6, type);
	le32(b + 8, len);
	le32(b + 12, seq);
}

static void raw_send(int s, const void *b, size_t len, int fd)
{
	struct iovec iov = { .iov_base = (void *)b, .iov_len = len };
	char cbuf[CMSG_SPACE(sizeof(int))];
	memset(cbuf, 0, sizeof cbuf);
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (fd >= 0) {
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof cbuf;
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof fd);
	}
	CHECK(sendmsg(s, &mh, MSG_NOSIGNAL) == (ssize_t)len);
}

struct reply {
	uint16_t version, type;
	uint32_t len, seq;
	int32_t err; /* an ERROR's */
	char msg[256];
	uint8_t b[8192];
	int fd; /* one that came with it, or -1 */
};

/* The next packet from the server within 5 s (a failure otherwise), its
 * header checked. */
static void raw_recv(int s, struct reply *r)
{
	struct pollfd pf = { .fd = s, .events = POLLIN };
	CHECK(poll(&pf, 1, 5000) == 1);
	struct iovec iov = { .iov_base = r->b, .iov_len = sizeof r->b };
	char cbuf[CMSG_SPACE(sizeof(int) * 2)];
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
	ssize_t n = recvmsg(s, &mh, MSG_CMSG_CLOEXEC);
	CHECK(n >= 16);
	r->fd = -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_type == SCM_RIGHTS)
			for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
				if (r->fd < 0)
					r->fd = fd;
				else
					close(fd);
			}
	CHECK_EQ(rd32(r->b), 0x574f4d56u);
	r->version = rd16(r->b + 4);
	r->type = rd16(r->b + 6);
	r->len = rd32(r->b + 8);
	r->seq = rd32(r->b + 12);
	CHECK_EQ(r->version, 1);
	CHECK_EQ(r->len, n);
	r->err = 0;
	r->msg[0] = 0;
	if (r->type == ERROR) {
		CHECK(n >= 24);
		r->err = (int32_t)rd32(r->b + 16);
		uint16_t ml = rd16(r->b + 20);
		CHECK_EQ(n, 24 + ml);
		for (uint16_t i = 0; i < ml; i++)
			CHECK(r->b[24 + i] >= 0x20 && r->b[24 + i] <= 0x7e);
		memcpy(r->msg, r->b + 24, ml);
		r->msg[ml] = 0;
	}
}

/* Send a bad packet and check it is answered with ERROR err (0: any code)
 * carrying seq. */
static void expect_error(int s, const char *what, const void *b, size_t len, int fd, int err, uint32_t seq)
{
	raw_send(s, b, len, fd);
	struct reply r;
	raw_recv(s, &r);
	if (r.type != ERROR || (err && r.err != err) || r.seq != seq) {
		fprintf(stderr, "%s: answered type %u err %d seq %u (\"%s\"), expected ERROR %d seq %u\n", what,
			r.type, r.err, r.seq, r.msg, err, seq);
		t_abort();
	}
	if (r.fd >= 0)
		close(r.fd);
}

static size_t pkt_hello(uint8_t *b, uint32_t seq)
{
	hdr(b, 1, HELLO, 32, seq);
	le16(b + 16, 1);
	le16(b + 18, 1);
	le32(b + 20, 0);
	le64(b + 24, 0);
	return 32;
}

static size_t pkt_list(uint8_t *b, uint32_t seq)
{
	hdr(b, 1, LIST, 24, seq);
	le64(b + 16, 0);
	return 24;
}

/* (RDWR: a read-only open would make the server keep a read-only
 * descriptor of the object, one more in the count of descriptors) */
static size_t pkt_open(uint8_t *b, uint32_t seq, const char *name)
{
	size_t nl = strlen(name);
	hdr(b, 1, OPEN, (uint32_t)(36 + nl), seq);
	le32(b + 16, 2); /* RDWR */
	le32(b + 20, 0);
	le64(b + 24, 0);
	le16(b + 32, (uint16_t)nl);
	le16(b + 34, 0);
	memcpy(b + 36, name, nl);
	return 36 + nl;
}

static size_t pkt_attach(uint8_t *b, uint32_t seq, uint64_t id, uint64_t addr, uint64_t len, uint64_t off)
{
	hdr(b, 1, ATTACH, 56, seq);
	le64(b + 16, id);
	le64(b + 24, addr);
	le64(b + 32, len);
	le64(b + 40, off);
	le32(b + 48, 1); /* VMO_PROT_READ */
	le32(b + 52, 0);
	return 56;
}

/* A good request and its good reply: the connection still works. */
static void expect_reply(int s, const uint8_t *b, size_t len, uint16_t type, uint32_t seq)
{
	raw_send(s, b, len, -1);
	struct reply r;
	raw_recv(s, &r);
	if (r.type != type || r.seq != seq) {
		fprintf(stderr, "request type %u seq %u: answered type %u seq %u (err %d \"%s\"), expected type %u\n",
			rd16(b + 6), seq, r.type, r.seq, r.err, r.msg, type);
		t_abort();
	}
	if (r.fd >= 0)
		close(r.fd);
}

static void case_malformed_messages(void)
{
	t_require_uffd();
	struct env e;
	env_start(&e, 0);
	uint64_t *mem = env_mem_object(&e, 0);
	CHECK_OK(vmo_server_publish(e.srv, "obj", e.obj, geteuid(), getegid(), 0600));

	/* A normal client, before and after. */
	struct child c;
	client_open(&c, "client", e.sock, "obj", true);
	child_expect(&c, "ok", "checkpat 0 64");
	int base = count_fds(); /* (the raw connection must leave nothing) */

	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	CHECK(s >= 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	CHECK(strlen(e.sock) < sizeof sa.sun_path);
	memcpy(sa.sun_path, e.sock, strlen(e.sock) + 1);
	CHECK(connect(s, (struct sockaddr *)&sa, sizeof sa) == 0);
	uint8_t b[8192];
	memset(b, 0, sizeof b);
	size_t n;

	/* A request before HELLO. */
	n = pkt_list(b, 1);
	expect_error(s, "LIST before HELLO", b, n, -1, -EPROTO, 1);
	expect_reply(s, b, pkt_hello(b, 2), HELLO_OK, 2);
	expect_reply(s, b, pkt_list(b, 3), LIST_OK, 3);

	/* A truncated header: 5 bytes (no seq to echo). */
	hdr(b, 1, HELLO, 32, 4);
	expect_error(s, "5-byte packet", b, 5, -1, -EPROTO, 0);
	expect_reply(s, b, pkt_list(b, 5), LIST_OK, 5);

	/* Oversized: 8192 bytes, a header saying so. */
	memset(b, 0, sizeof b);
	hdr(b, 1, LIST, 8192, 6);
	expect_error(s, "8192-byte packet", b, 8192, -1, -EMSGSIZE, 6);
	expect_reply(s, b, pkt_list(b, 7), LIST_OK, 7);

	/* Another version: a HELLO of version 99 for versions 99..99. */
	hdr(b, 99, HELLO, 32, 8);
	le16(b + 16, 99);
	le16(b + 18, 99);
	le32(b + 20, 0);
	le64(b + 24, 0);
	expect_error(s, "version 99", b, 32, -1, -EPROTONOSUPPORT, 8);
	expect_reply(s, b, pkt_list(b, 9), LIST_OK, 9);

	/* An unknown type. */
	hdr(b, 1, 200, 16, 10);
	expect_error(s, "type 200", b, 16, -1, -EPROTO, 10);
	/* A reply sent as a request. */
	hdr(b, 1, HELLO_OK, 40, 11);
	le16(b + 16, 1);
	le16(b + 18, 2);
	le32(b + 20, 4096);
	le64(b + 24, 0);
	le32(b + 32, 14);
	le32(b + 36, 0);
	expect_error(s, "HELLO_OK as a request", b, 40, -1, -EPROTO, 11);
	expect_reply(s, b, pkt_list(b, 12), LIST_OK, 12);

	/* An OPEN with a descriptor: refused, and the server closes it (the
	 * pipe's read end sees the last write end go). */
	int p[2];
	CHECK(pipe2(p, O_CLOEXEC) == 0);
	n = pkt_open(b, 13, "obj");
	expect_error(s, "OPEN with an fd", b, n, p[1], -EBADMSG, 13);
	close(p[1]);
	struct pollfd pf = { .fd = p[0], .events = POLLIN };
	CHECK(poll(&pf, 1, 2000) == 1 && (pf.revents & POLLHUP));
	close(p[0]);
	expect_reply(s, b, pkt_list(b, 14), LIST_OK, 14);

	/* ATTACH out of range: off + len past 2^63 (the parser), then an id
	 * never opened, then past the end of an object opened. */
	n = pkt_attach(b, 15, 1, 0x10000, 0x2000, 0x7ffffffffffff000ull);
	expect_error(s, "ATTACH past 2^63", b, n, -1, -EINVAL, 15);
	n = pkt_attach(b, 16, 77, 0x10000, 0x2000, 0);
	expect_error(s, "ATTACH of an id not opened", b, n, -1, 0, 16);
	expect_reply(s, b, pkt_open(b, 17, "obj"), OPEN_OK, 17);
	n = pkt_attach(b, 18, 1, 0x10000, 0x2000, SIZE);
	expect_error(s, "ATTACH past the object's end", b, n, -1, 0, 18);
	n = pkt_attach(b, 19, 1, 0x10001, 0x2000, 0);
	expect_error(s, "ATTACH of a misaligned address", b, n, -1, -EINVAL, 19);

	/* Still usable, and the normal client too. */
	expect_reply(s, b, pkt_list(b, 20), LIST_OK, 20);
	hdr(b, 1, STATS, 24, 21);
	le64(b + 16, 0);
	expect_reply(s, b, 24, STATS_OK, 21);
	child_expect(&c, "ok", "checkpat 0 256");
	CHECK_EQ(vmo_server_object_clients(e.srv, "obj"), 2);
	close(s);
	fds_back_to(base, 2000, "after the raw connection closed");
	CHECK_EQ(vmo_server_object_clients(e.srv, "obj"), 1);

	struct child d; /* and a new one */
	client_open(&d, "client 2", e.sock, "obj", false);
	child_expect(&d, "ok", "checkpat 0 256");
	child_quit(&d);
	child_quit(&c);
	clients_gone(&e, "obj", 2000);
	env_stop(&e);
	free(mem);
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN); /* a child gone: write() fails, no signal */
	if (argc >= 2 && !strcmp(argv[1], "--child"))
		return child_main();
	if (argc >= 5 && !strcmp(argv[1], "--server"))
		return server_main(argv[2], argv[3], strtol(argv[4], NULL, 10));
	alarm(240);
	return t_main(argc, argv,
		      T_CASES({ "two-clients", case_two_clients }, { "read-only-routes", case_read_only_routes },
			      { "other-uid-refused", case_other_uid_refused },
			      { "kill-client-mid-fault", case_kill_client_mid_fault },
			      { "server-killed", case_server_killed }, { "vmod-killed", case_vmod_killed },
			      { "malformed-messages", case_malformed_messages }));
}
