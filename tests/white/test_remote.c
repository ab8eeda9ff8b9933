/* SPDX-License-Identifier: MIT */
/* test_remote (white-box): one engine serves the faults of a second
 * process.  The child creates its userfaultfd, maps the object's memfd and
 * sends the userfaultfd over a Unix socket (SCM_RIGHTS); the parent's engine
 * adopts it as a space (vmo__space_adopt), attaches the child's range as a
 * view, and from then on supplies the child's pages, tracks its writes,
 * writes them back and evicts them under a budget.  A child killed while
 * one of its faults is in the pager disturbs nothing else: the fault's
 * supply fails quietly, the space is reaped when the pidfd says the process
 * exited, and the object goes on paging the parent's own view.  Uses
 * internal calls (the server API comes with vmod). */
#include "core.h"
#include "helper.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096u
#define NPG 256

struct store {
	uint64_t *data;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int block_pg; /* a read of this page waits for `go` */
	int in_read, go;
	_Atomic long reads;
};

static int st_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct store *s = ctx;
	(void)flags;
	uint64_t b = (uint64_t)s->block_pg * PG;
	if (s->block_pg >= 0 && b >= off && b < off + len) {
		pthread_mutex_lock(&s->mu);
		s->in_read = 1;
		pthread_cond_broadcast(&s->cv);
		while (!s->go)
			pthread_cond_wait(&s->cv, &s->mu);
		pthread_mutex_unlock(&s->mu);
	}
	s->reads++;
	memcpy(buf, (char *)s->data + off, len);
	return 0;
}

static int st_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct store *s = ctx;
	memcpy((char *)s->data + off, buf, len);
	return 0;
}

static const struct vmo_pager_ops ops = { .read = st_read, .write = st_write };

static struct store *store_new(void)
{
	struct store *s = calloc(1, sizeof *s);
	CHECK(s);
	s->data = malloc((size_t)NPG * PG);
	CHECK(s->data);
	for (size_t i = 0; i < (size_t)NPG * PG / 8; i++)
		s->data[i] = t_pattern(i * 8);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->block_pg = -1;
	return s;
}

/* ---- the child -------------------------------------------------------------- */

struct hello {
	uint64_t features;
	uint64_t addr;
};

static void send_fd(int sock, int fd, const void *data, size_t len)
{
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	char cbuf[CMSG_SPACE(sizeof(int))];
	memset(cbuf, 0, sizeof cbuf);
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof fd);
	CHECK(sendmsg(sock, &mh, 0) == (ssize_t)len);
}

static int recv_fd(int sock, void *data, size_t len)
{
	struct iovec iov = { .iov_base = data, .iov_len = len };
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
	CHECK(recvmsg(sock, &mh, 0) == (ssize_t)len);
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	CHECK(c && c->cmsg_type == SCM_RIGHTS);
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof fd);
	return fd;
}

static char wait_cmd(int sock)
{
	char c = 0;
	if (read(sock, &c, 1) != 1)
		_exit(3);
	return c;
}

static void say(int sock, char c)
{
	if (write(sock, &c, 1) != 1)
		_exit(4);
}

/* The child: only system calls and plain memory accesses (it was forked
 * from a threaded parent). */
static void child_main(int sock, int memfd)
{
	int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	if (uffd < 0)
		_exit(10);
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MINOR_SHMEM |
					      UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_HUGETLBFS_SHMEM |
					      UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_EVENT_UNMAP |
					      UFFD_FEATURE_EVENT_REMAP };
	if (ioctl(uffd, UFFDIO_API, &api))
		_exit(11);
	uint64_t *p = mmap(NULL, (size_t)NPG * PG, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (p == MAP_FAILED)
		_exit(12);
	struct hello h = { .features = api.features, .addr = (uint64_t)(uintptr_t)p };
	send_fd(sock, uffd, &h, sizeof h);
	close(uffd);
	for (;;) {
		char c = wait_cmd(sock);
		if (c == 'r') { /* read every page: the parent's pattern, or what we wrote */
			for (uint64_t pg = 0; pg < NPG; pg++) {
				uint64_t want = pg < NPG / 2 ? 0xC0DE0000ull + pg : t_pattern(pg * PG + 8);
				if (p[pg * PG / 8 + 1] != want && p[pg * PG / 8 + 1] != t_pattern(pg * PG + 8))
					_exit(20);
				if (p[pg * PG / 8 + 2] != t_pattern(pg * PG + 16))
					_exit(21);
			}
			say(sock, 'k');
		} else if (c == 'w') { /* write the first half */
			for (uint64_t pg = 0; pg < NPG / 2; pg++)
				p[pg * PG / 8 + 1] = 0xC0DE0000ull + pg;
			say(sock, 'k');
		} else if (c == 'v') { /* verify the writes survived writeback and eviction */
			for (uint64_t pg = 0; pg < NPG; pg++) {
				uint64_t want = pg < NPG / 2 ? 0xC0DE0000ull + pg : t_pattern(pg * PG + 8);
				if (p[pg * PG / 8 + 1] != want)
					_exit(22);
			}
			say(sock, 'k');
		} else if (c == 'b') { /* touch the blocked page: the parent kills us meanwhile */
			say(sock, 'k');
			(void)*(volatile uint64_t *)&p[(NPG - 1) * PG / 8];
			_exit(30); /* not reached: killed in the fault */
		} else if (c == 'q') {
			_exit(0);
		}
	}
}

/* ---- the parent -------------------------------------------------------------- */

static void cmd(int sock, char c)
{
	CHECK(write(sock, &c, 1) == 1);
	char r = 0;
	CHECK(read(sock, &r, 1) == 1);
	CHECK_EQ(r, 'k');
}

static uint64_t mappings(struct vmo_object *o)
{
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(o, &st));
	return st.mappings;
}

static void case_serve_child(void)
{
	t_require_uffd();
	struct vmo_engine *eng = t_engine(2);
	if (!(vmo_engine_features(eng) & VMO_FEAT_WP))
		t_skip_case("no write-protect faults for shmem (VMO_FEAT_WP)");
	struct store *s = store_new();
	struct vmo_object *o;
	struct vmo_object_opts oo = { .size = (uint64_t)NPG * PG };
	CHECK_OK(vmo_object_create(eng, &ops, s, &oo, &o));
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		child_main(sv[1], o->memfd);
	}
	close(sv[1]);
	struct hello h;
	int fd = recv_fd(sv[0], &h, sizeof h);
	struct vmo__space *sp;
	CHECK_OK(vmo__space_adopt(&eng->spaces, fd, h.features, pid, &sp));
	CHECK(sp->features & VMO_FEAT_WP);
	struct vmo_map *m;
	CHECK_OK(vmo__view_attach(sp, o, (uintptr_t)h.addr, (size_t)NPG * PG, 0, VMO_PROT_READ | VMO_PROT_WRITE,
				  o->track, &m));
	CHECK_EQ(mappings(o), 1);

	/* the child reads: every page comes from our pager */
	cmd(sv[0], 'r');
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK(st.faults > 0);
	CHECK_EQ(st.resident, (uint64_t)NPG * PG);
	/* the child writes: tracked (write-protect faults in its space) */
	cmd(sv[0], 'w');
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK_EQ(st.dirty, (uint64_t)NPG / 2 * PG);
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	for (uint64_t pg = 0; pg < NPG; pg++)
		CHECK_EQ(s->data[pg * PG / 8 + 1], pg < NPG / 2 ? 0xC0DE0000ull + pg : t_pattern(pg * PG + 8));
	/* written back, so protected again: a second round of writes traps again */
	cmd(sv[0], 'w');
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK_EQ(st.dirty, (uint64_t)NPG / 2 * PG);
	/* evicted under a budget: the child's pages go, and come back on touch */
	CHECK_OK(vmo_object_set_budget(o, 16 * PG, 0));
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK(st.resident <= 16 * PG);
	CHECK(st.evictions > 0);
	CHECK_OK(vmo_object_set_budget(o, 0, 0));
	long reads0 = s->reads;
	cmd(sv[0], 'v');
	CHECK(s->reads > reads0);

	/* killed mid-fault: the read of the last page blocks until we let it go.
	 * Everything out of memory first: the child's last read may still be
	 * finishing (a page being filled is not evicted), so until none is left. */
	for (int i = 0; i < 1000; i++) {
		CHECK_OK(vmo_return(o, VMO_WAIT));
		CHECK_OK(vmo_object_stats(o, &st));
		if (!st.resident)
			break;
		usleep(1000);
	}
	CHECK_EQ(st.resident, 0);
	s->block_pg = NPG - 1;
	cmd(sv[0], 'b');
	pthread_mutex_lock(&s->mu);
	while (!s->in_read)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	CHECK_OK(kill(pid, SIGKILL));
	int status;
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	pthread_mutex_lock(&s->mu);
	s->go = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	/* the space is reaped (its pidfd): its view goes */
	for (int i = 0; i < 2000 && mappings(o); i++)
		usleep(1000);
	CHECK_EQ(mappings(o), 0);
	CHECK(atomic_load(&sp->dead));
	/* nothing else disturbed: our own view pages, the data is all there */
	uint64_t *v;
	CHECK_OK(vmo_map(o, 0, (size_t)NPG * PG, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	for (uint64_t pg = 0; pg < NPG; pg++) {
		CHECK_EQ(v[pg * PG / 8 + 1], pg < NPG / 2 ? 0xC0DE0000ull + pg : t_pattern(pg * PG + 8));
		CHECK_EQ(v[pg * PG / 8 + 2], t_pattern(pg * PG + 16));
	}
	v[3] = 77;
	CHECK_OK(vmo_sync(o, VMO_WAIT));
	CHECK_EQ(s->data[3], 77);
	CHECK_OK(vmo_object_stats(o, &st));
	CHECK_EQ(st.errors, 0);
	CHECK_OK(vmo_unmap(o, v, (size_t)NPG * PG));
	vmo_object_unref(o);
	close(sv[0]);
	CHECK_OK(vmo_engine_destroy(eng));
	free(s->data);
	free(s);
}

int main(int argc, char **argv)
{
	alarm(120); /* a hang is a failure */
	return t_main(argc, argv, T_CASES({ "serve-child", case_serve_child }));
}
