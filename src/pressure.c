/* SPDX-License-Identifier: MIT */
/* pressure.c - memory pressure: the headroom the process has left (the
 * machine, its memory cgroup v1 or v2), and the one watcher thread of the
 * process (PSI triggers, cgroup events) that its subscribers share.  See
 * pressure.h. */
#include "pressure.h"
#include "internal.h"

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Process-wide view of where memory figures live (resolved once)           */

static struct {
	int version;          /* 0 none, 1, 2 */
	char dir[PATH_MAX];   /* the group's directory */
	char root[PATH_MAX];  /* the hierarchy's mount point (v2 limit walk) */
	int meminfo_fd;
	int usage_fd;         /* v1 memory.usage_in_bytes / v2 memory.current */
	int stat_fd;          /* memory.stat */
	uint64_t mem_total;
} g = { .meminfo_fd = -1, .usage_fd = -1, .stat_fd = -1 };
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static int open_ro(const char *dir, const char *name)
{
	char p[PATH_MAX + 64];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	return open(p, O_RDONLY | O_CLOEXEC);
}

/* pread the whole (small) file from offset 0 into buf, NUL-terminated. */
static ssize_t read_fd(int fd, char *buf, size_t cap)
{
	if (fd < 0)
		return -EBADF;
	size_t n = 0;
	while (n + 1 < cap) {
		ssize_t r = pread(fd, buf + n, cap - 1 - n, (off_t)n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = 0;
	return (ssize_t)n;
}

static int read_u64_file(const char *dir, const char *name, uint64_t *v)
{
	int fd = open_ro(dir, name);
	if (fd < 0)
		return -errno;
	char buf[64];
	ssize_t n = read_fd(fd, buf, sizeof buf);
	close(fd);
	if (n <= 0)
		return n < 0 ? (int)n : -ENODATA;
	if (!strncmp(buf, "max", 3)) {
		*v = UINT64_MAX;
		return 0;
	}
	char *end;
	unsigned long long x = strtoull(buf, &end, 10);
	if (end == buf)
		return -EINVAL;
	*v = x;
	return 0;
}

/* The value of "key <n>" in a key/value text (memory.stat, meminfo). */
static bool kv_find(const char *text, const char *key, uint64_t *v)
{
	size_t kl = strlen(key);
	for (const char *p = text; p && *p;) {
		if (!strncmp(p, key, kl) && (p[kl] == ' ' || p[kl] == ':' || p[kl] == '\t')) {
			const char *q = p + kl;
			while (*q == ' ' || *q == ':' || *q == '\t')
				q++;
			*v = strtoull(q, NULL, 10);
			return true;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return false;
}

/* Find the mount point and root of the v1 memory hierarchy (want_v2 false)
 * or of a v2 hierarchy, from /proc/self/mountinfo: the nth (from 0) such
 * mount. */
static bool find_mount(bool want_v2, int nth, char *mnt, char *mroot)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return false;
	char *line = NULL;
	size_t cap = 0;
	bool found = false;
	while (!found && getline(&line, &cap, f) > 0) {
		char root[PATH_MAX], mp[PATH_MAX];
		if (sscanf(line, "%*s %*s %*s %4095s %4095s", root, mp) != 2)
			continue;
		char *dash = strstr(line, " - ");
		if (!dash)
			continue;
		char fstype[64], src[256], opts[1024];
		if (sscanf(dash + 3, "%63s %255s %1023s", fstype, src, opts) < 3)
			continue;
		if (want_v2 ? !strcmp(fstype, "cgroup2")
			    : (!strcmp(fstype, "cgroup") && strstr(opts, "memory") &&
			       (strstr(opts, ",memory") || !strncmp(opts, "memory", 6)))) {
			if (nth-- > 0)
				continue;
			snprintf(mnt, PATH_MAX, "%s", mp);
			snprintf(mroot, PATH_MAX, "%s", root);
			found = true;
		}
	}
	free(line);
	fclose(f);
	return found;
}

/* dir = mount point + (path relative to the mount's root). */
static void join_cg(char *out, const char *mnt, const char *mroot, const char *path)
{
	size_t rl = strlen(mroot);
	if (strcmp(mroot, "/") && !strncmp(path, mroot, rl))
		path += rl;
	if (!strcmp(path, "/"))
		path = "";
	snprintf(out, PATH_MAX, "%s%s", mnt, path);
}

static void resolve(void)
{
	g.meminfo_fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
	char buf[4096];
	if (read_fd(g.meminfo_fd, buf, sizeof buf) > 0) {
		uint64_t kb;
		if (kv_find(buf, "MemTotal", &kb))
			g.mem_total = kb * 1024;
	}
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return;
	char *line = NULL;
	size_t cap = 0;
	char v1path[PATH_MAX] = "", v2path[PATH_MAX] = "";
	bool have_v1 = false, have_v2 = false;
	while (getline(&line, &cap, f) > 0) {
		line[strcspn(line, "\n")] = 0;
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = 0;
		const char *ctrls = c1 + 1, *path = c2 + 1;
		if (!*ctrls && !strncmp(line, "0", 1)) {
			snprintf(v2path, sizeof v2path, "%s", path);
			have_v2 = true;
		} else {
			/* controllers are comma-separated */
			char tmp[256];
			snprintf(tmp, sizeof tmp, ",%s,", ctrls);
			if (strstr(tmp, ",memory,")) {
				snprintf(v1path, sizeof v1path, "%s", path);
				have_v1 = true;
			}
		}
	}
	free(line);
	fclose(f);
	char mnt[PATH_MAX], mroot[PATH_MAX];
	if (have_v1 && find_mount(false, 0, mnt, mroot)) {
		join_cg(g.dir, mnt, mroot, v1path);
		snprintf(g.root, sizeof g.root, "%s", mnt);
		g.usage_fd = open_ro(g.dir, "memory.usage_in_bytes");
		g.stat_fd = open_ro(g.dir, "memory.stat");
		if (g.usage_fd >= 0 && g.stat_fd >= 0) {
			g.version = 1;
			return;
		}
	}
	/* v2: the cgroup2 mount where the group has the memory controller (a
	 * hybrid system may mount cgroup2 more than once, or without it; the
	 * root group has no memory.current). */
	for (int nth = 0; have_v2 && find_mount(true, nth, mnt, mroot); nth++) {
		if (g.usage_fd >= 0)
			close(g.usage_fd);
		if (g.stat_fd >= 0)
			close(g.stat_fd);
		join_cg(g.dir, mnt, mroot, v2path);
		snprintf(g.root, sizeof g.root, "%s", mnt);
		g.usage_fd = open_ro(g.dir, "memory.current");
		g.stat_fd = open_ro(g.dir, "memory.stat");
		if (g.usage_fd >= 0 && g.stat_fd >= 0) {
			g.version = 2;
			return;
		}
	}
	if (g.usage_fd >= 0)
		close(g.usage_fd);
	if (g.stat_fd >= 0)
		close(g.stat_fd);
	g.usage_fd = g.stat_fd = -1;
	g.dir[0] = 0;
	g.version = 0;
}

const char *vmo__mem_cgroup_dir(void)
{
	pthread_once(&g_once, resolve);
	return g.dir;
}

/* A group's usage and reclaimable file cache from its memory.current /
 * memory.usage_in_bytes and memory.stat (left in buf). */
static int cg_usage(int usage_fd, int stat_fd, char *buf, size_t cap, uint64_t *usage, uint64_t *reclaim)
{
	char ub[64];
	ssize_t n = read_fd(usage_fd, ub, sizeof ub);
	ssize_t s = read_fd(stat_fd, buf, cap);
	if (n <= 0 || s <= 0)
		return -ENODATA;
	*usage = strtoull(ub, NULL, 10);
	uint64_t a = 0, b = 0;
	if (g.version == 1) {
		kv_find(buf, "total_inactive_file", &a);
		kv_find(buf, "total_active_file", &b);
	} else {
		kv_find(buf, "inactive_file", &a);
		kv_find(buf, "active_file", &b);
	}
	*reclaim = a + b < *usage ? a + b : *usage;
	return 0;
}

/* v2: a group's own limit, the smaller of memory.max and memory.high. */
static uint64_t v2_level_limit(const char *d)
{
	uint64_t lim = UINT64_MAX, v;
	if (read_u64_file(d, "memory.max", &v) == 0 && v < lim)
		lim = v;
	if (read_u64_file(d, "memory.high", &v) == 0 && v < lim)
		lim = v;
	return lim;
}

/* v2: walk from the group up to (not including) the hierarchy's root.  Each
 * group with a limit of its own bounds the headroom by limit - (its usage -
 * its reclaimable file cache): an ancestor's usage includes the siblings'.
 * Sets *lim to the smallest limit, *head to the smallest headroom, and
 * *events_dir (if not NULL) to the group whose limit leaves the least
 * headroom ("" if none has a limit).  own_used: the group's own figure;
 * buf: scratch space. */
static void v2_walk(uint64_t own_used, char *buf, size_t cap, uint64_t *lim, uint64_t *head,
		    char *events_dir)
{
	char d[PATH_MAX];
	snprintf(d, sizeof d, "%s", g.dir);
	size_t rl = strlen(g.root);
	*lim = *head = UINT64_MAX;
	if (events_dir)
		events_dir[0] = 0;
	for (bool own = true; strlen(d) > rl; own = false) {
		uint64_t l = v2_level_limit(d);
		if (l != UINT64_MAX) {
			uint64_t used = own_used;
			if (!own) {
				int ufd = open_ro(d, "memory.current"), sfd = open_ro(d, "memory.stat");
				uint64_t u, r;
				/* unreadable: at least the group's own usage is in it */
				if (cg_usage(ufd, sfd, buf, cap, &u, &r) == 0 && u - r > used)
					used = u - r;
				if (ufd >= 0)
					close(ufd);
				if (sfd >= 0)
					close(sfd);
			}
			uint64_t h = l > used ? l - used : 0;
			if (h < *head) {
				*head = h;
				if (events_dir)
					snprintf(events_dir, PATH_MAX, "%s", d);
			}
			if (l < *lim)
				*lim = l;
		}
		char *s = strrchr(d, '/');
		if (!s || (size_t)(s - d) < rl)
			break;
		*s = 0;
	}
}

int vmo__mem_query(struct vmo__mem *m)
{
	pthread_once(&g_once, resolve);
	memset(m, 0, sizeof *m);
	m->avail = UINT64_MAX;
	m->cg_limit = UINT64_MAX;
	char buf[8192];
	int rc = -ENOENT;
	if (read_fd(g.meminfo_fd, buf, sizeof buf) > 0) {
		uint64_t kb;
		if (kv_find(buf, "MemAvailable", &kb)) {
			m->avail = kb * 1024;
			rc = 0;
		}
	}
	m->cg_version = g.version;
	uint64_t cg_head = UINT64_MAX;
	if (g.version && cg_usage(g.usage_fd, g.stat_fd, buf, sizeof buf, &m->cg_usage, &m->cg_reclaim) == 0) {
		uint64_t used = m->cg_usage - m->cg_reclaim, lim = UINT64_MAX;
		if (g.version == 1) {
			if (kv_find(buf, "hierarchical_memory_limit", &lim) && lim >= (UINT64_MAX >> 2))
				lim = UINT64_MAX; /* "unlimited" is PAGE_COUNTER_MAX pages */
			if (lim != UINT64_MAX)
				cg_head = lim > used ? lim - used : 0;
		} else {
			v2_walk(used, buf, sizeof buf, &lim, &cg_head, NULL);
		}
		m->cg_limit = lim;
		rc = 0;
	}
	m->headroom = m->avail < cg_head ? m->avail : cg_head;
	return rc;
}

uint64_t vmo__mem_headroom(void)
{
	struct vmo__mem m;
	vmo__mem_query(&m);
	return m.headroom;
}

uint64_t vmo__mem_default_margin(void)
{
	struct vmo__mem m;
	vmo__mem_query(&m);
	uint64_t base = g.mem_total ? g.mem_total : (uint64_t)1 << 32;
	if (m.cg_limit < base)
		base = m.cg_limit;
	uint64_t mg = base / 16;
	if (mg > ((uint64_t)1 << 30))
		mg = (uint64_t)1 << 30;
	if (mg < ((uint64_t)64 << 20))
		mg = (uint64_t)64 << 20;
	return mg;
}


/* ------------------------------------------------------------------------ */
/* The watcher: one thread for the process, shared by its subscribers       */

/* What the thread polls for everybody (the v1 usage thresholds, one per
 * subscriber, come after these). */
enum { SRC_WAKE, SRC_PSI, SRC_CG_PSI, SRC_CG_MED, SRC_CG_CRIT, SRC_CG_EV, SRC_MAX };

/* v2 memory.events counters the watcher follows, and what their growth means */
static const struct {
	const char *key;
	int level;
} v2_events[] = {
	/* Over memory.high / at memory.max: the group is being reclaimed.  Page
	 * cache alone keeps a group there (its steady state), so these only wake
	 * the watcher at once; the headroom check that follows decides. */
	{ "high", VMO__PRESSURE_NONE },
	{ "max", VMO__PRESSURE_NONE },
	{ "oom", VMO__PRESSURE_CRITICAL },      /* reclaim failed */
	{ "oom_kill", VMO__PRESSURE_CRITICAL }, /* somebody in the group was killed */
};

/* memory.events waking the thread more often than this in EV_WINDOW_MS
 * means that reading it does not re-arm it (the kernel notifies at most every
 * 10 ms): a busy loop, so it is dropped. */
#define EV_WINDOW_MS 100u
#define EV_WAKES_MAX 220u

struct vmo__pressure_sub {
	struct vmo__pressure_sub *next; /* W.subs, or W.grave once it left */
	void (*cb)(void *arg, int level);
	void *arg;
	uint64_t margin;
	uint32_t poll_ms;
	uint64_t id;       /* never reused: names it in the thread's poll set */
	unsigned epoch;    /* W.epoch when it subscribed (fork) */
	/* under W.mu: */
	uint64_t next_tick, last_cb; /* ms, CLOCK_MONOTONIC */
	int pending;                 /* level to deliver, -1 none */
	bool thr_fired;              /* its v1 threshold signalled */
	int thr_fd, thr_aux;         /* v1: usage threshold eventfd, the file it is bound to */
};

enum { IDLE, RUNNING, STOPPING };

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* a callback returned; the thread stopped */
	int state;
	pthread_t thread;
	/* Subscribers in subscription order; those that left with a v1 eventfd
	 * the thread may be polling (it closes them, or the last unsubscribe
	 * does once it has joined the thread). */
	struct vmo__pressure_sub *subs, *grave;
	unsigned nsubs, nthr;            /* subscribers; of which with a v1 threshold */
	struct vmo__pressure_sub *cur;   /* whose callback runs now */
	uint64_t next_id;
	unsigned epoch;                  /* bumped in a forked child */
	unsigned sources;                /* VMO__PRESSURE_SRC_* of the shared sources */
	/* The shared sources: the thread's while it runs (it drops the ones that
	 * fail), the starter's and stopper's otherwise. */
	int fd[SRC_MAX];
	int aux[SRC_MAX]; /* v1: the control file the eventfd is bound to */
	uint64_t ev[VMO_ARRAY_SIZE(v2_events)]; /* v2: memory.events as last read */
} W = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
static pthread_once_t w_once = PTHREAD_ONCE_INIT;

static int psi_trigger(const char *path, uint32_t stall, uint32_t window)
{
	int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	char t[64];
	int n = snprintf(t, sizeof t, "some %u %u", stall, window);
	if (write(fd, t, (size_t)n + 1) < 0) {
		int err = -errno;
		/* Unprivileged triggers need a window that is a multiple of 2 s:
		 * keep the same stall ratio over 2 s. */
		if ((err == -EINVAL || err == -EPERM) && window % 2000000) {
			uint64_t st = (uint64_t)stall * 2000000 / window;
			n = snprintf(t, sizeof t, "some %llu %u", (unsigned long long)st, 2000000u);
			if (write(fd, t, (size_t)n + 1) >= 0)
				return fd;
		}
		close(fd);
		return err;
	}
	return fd;
}

/* cgroup v1: an eventfd signalled by the kernel for `args` on file `name`. */
static int v1_event(const char *name, const char *args, int *aux)
{
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (efd < 0)
		return -errno;
	int cfd = open_ro(g.dir, name);
	int ctl = -1;
	char p[PATH_MAX + 64];
	snprintf(p, sizeof p, "%s/cgroup.event_control", g.dir);
	if (cfd >= 0)
		ctl = open(p, O_WRONLY | O_CLOEXEC);
	int err = 0;
	if (cfd < 0 || ctl < 0) {
		err = -errno;
	} else {
		char t[128];
		int n = snprintf(t, sizeof t, "%d %d %s", efd, cfd, args);
		if (write(ctl, t, (size_t)n) < 0)
			err = -errno;
	}
	if (ctl >= 0)
		close(ctl);
	if (err) {
		if (cfd >= 0)
			close(cfd);
		close(efd);
		return err;
	}
	*aux = cfd;
	return efd;
}

/* v2: read memory.events (which also re-arms its notification: kernfs
 * reports a change with POLLPRI | POLLERR until the file is read again) and
 * return the level that the growth of its counters since the last read
 * means, or -1 if it cannot be read. */
static int v2_events_level(void)
{
	char buf[512];
	if (read_fd(W.fd[SRC_CG_EV], buf, sizeof buf) <= 0)
		return -1;
	int level = VMO__PRESSURE_NONE;
	for (size_t k = 0; k < VMO_ARRAY_SIZE(v2_events); k++) {
		uint64_t v = 0;
		kv_find(buf, v2_events[k].key, &v);
		if (v > W.ev[k] && v2_events[k].level > level)
			level = v2_events[k].level;
		W.ev[k] = v;
	}
	return level;
}

/* v2: watch memory.events of the group whose limit leaves the least headroom
 * (the process's own or an ancestor: a limit reached up there counts there). */
static int v2_events_open(void)
{
	char buf[8192], d[PATH_MAX];
	uint64_t u, r, lim, head;
	if (cg_usage(g.usage_fd, g.stat_fd, buf, sizeof buf, &u, &r))
		return -ENODATA;
	v2_walk(u - r, buf, sizeof buf, &lim, &head, d);
	if (!d[0])
		return -ENOENT; /* no limit up the tree: none to reach */
	int fd = open_ro(d, "memory.events");
	if (fd < 0)
		return -errno;
	W.fd[SRC_CG_EV] = fd;
	if (v2_events_level() < 0) { /* the baseline */
		close(fd);
		W.fd[SRC_CG_EV] = -1;
		return -EIO;
	}
	vmo__debug("pressure: watching %s/memory.events", d);
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void close_sub_files(struct vmo__pressure_sub *s)
{
	if (s->thr_fd >= 0)
		close(s->thr_fd);
	if (s->thr_aux >= 0)
		close(s->thr_aux);
	s->thr_fd = s->thr_aux = -1;
}

/* Close and free the subscribers that left with files open.  Under W.mu, by
 * the thread (which no longer polls them) or once it is gone. */
static void bury_locked(void)
{
	for (struct vmo__pressure_sub *s = W.grave, *nx; s; s = nx) {
		nx = s->next;
		close_sub_files(s);
		free(s);
	}
	W.grave = NULL;
}

static void close_sources(void)
{
	for (int i = 0; i < SRC_MAX; i++) {
		if (W.fd[i] >= 0)
			close(W.fd[i]);
		if (W.aux[i] >= 0)
			close(W.aux[i]);
		W.fd[i] = W.aux[i] = -1;
	}
	W.sources = 0;
}

/* Make the thread look at the subscribers again (under W.mu, running). */
static void wake_locked(void)
{
	uint64_t one = 1;
	if (write(W.fd[SRC_WAKE], &one, sizeof one) < 0)
		vmo__warn("pressure: cannot wake the watcher: %s", strerror(errno));
}

/* Call the pending callbacks, one at a time, in subscription order, without
 * W.mu (held on entry and on return).  A subscriber that leaves meanwhile is
 * no longer in the list, so it is not called; its unsubscribe waits while
 * W.cur is it. */
static void deliver_locked(void)
{
	for (;;) {
		struct vmo__pressure_sub *s = W.subs;
		while (s && s->pending < 0)
			s = s->next;
		if (!s || W.state != RUNNING)
			return;
		int level = s->pending;
		s->pending = -1;
		W.cur = s;
		pthread_mutex_unlock(&W.mu);
		s->cb(s->arg, level);
		pthread_mutex_lock(&W.mu);
		W.cur = NULL;
		pthread_cond_broadcast(&W.cv);
	}
}

static void *watch_main(void *unused)
{
	(void)unused;
	struct pollfd *pf = NULL;
	uint64_t *who = NULL; /* per pollfd: its SRC_*, or SRC_MAX + a subscriber's id */
	size_t cap = 0;
	uint64_t win = now_ms();
	unsigned ev_wakes = 0; /* memory.events wake-ups in the window from win */
	pthread_mutex_lock(&W.mu);
	while (W.state == RUNNING) {
		/* The poll set: the shared sources, the subscribers' v1 thresholds. */
		bury_locked();
		size_t need = SRC_MAX + W.nthr;
		if (need > cap) {
			struct pollfd *npf = realloc(pf, need * sizeof *pf);
			if (npf)
				pf = npf;
			uint64_t *nwho = realloc(who, need * sizeof *who);
			if (nwho)
				who = nwho;
			if (npf && nwho)
				cap = need; /* else: poll what fits, ticks go on */
		}
		nfds_t n = 0;
		for (int i = 0; i < SRC_MAX && n < cap; i++) {
			if (W.fd[i] < 0)
				continue;
			pf[n].fd = W.fd[i];
			/* PSI triggers and kernfs files (memory.events) always
			 * poll readable: only POLLPRI says something happened */
			pf[n].events = (i == SRC_PSI || i == SRC_CG_PSI || i == SRC_CG_EV) ? POLLPRI : POLLIN;
			pf[n].revents = 0;
			who[n++] = (uint64_t)i;
		}
		for (struct vmo__pressure_sub *s = W.subs; s && n < cap; s = s->next) {
			if (s->thr_fd < 0)
				continue;
			pf[n].fd = s->thr_fd;
			pf[n].events = POLLIN;
			pf[n].revents = 0;
			who[n++] = SRC_MAX + s->id;
		}
		/* Sleep until the earliest subscriber's tick (or a wake-up). */
		uint64_t t = now_ms();
		int timeout = -1;
		for (struct vmo__pressure_sub *s = W.subs; s; s = s->next) {
			uint64_t d = s->next_tick > t ? s->next_tick - t : 0;
			if (d > INT_MAX)
				d = INT_MAX;
			if (timeout < 0 || d < (uint64_t)timeout)
				timeout = (int)d;
		}
		pthread_mutex_unlock(&W.mu);

		int r = poll(pf, n, timeout);
		int err = r < 0 ? errno : 0;
		if (r < 0 && err != EINTR) {
			vmo__warn("pressure: poll: %s", strerror(err));
			usleep(100 * 1000);
		}
		/* woken by a source or a signal, not by the wake-up eventfd or a tick */
		bool woke = err == EINTR;
		int level = VMO__PRESSURE_NONE;
		for (nfds_t k = 0; r > 0 && k < n; k++) {
			if (!pf[k].revents)
				continue;
			uint64_t i = who[k];
			if (i == SRC_WAKE || i >= SRC_MAX) {
				uint64_t v;
				if (read(pf[k].fd, &v, sizeof v) < 0) { /* clear the eventfd */
				}
				woke |= i >= SRC_MAX; /* a v1 threshold: looked up below */
				continue;
			}
			woke = true;
			if (i == SRC_CG_EV) {
				uint64_t tw = now_ms();
				if (tw - win >= EV_WINDOW_MS) {
					win = tw;
					ev_wakes = 0;
				}
				int l = ++ev_wakes > EV_WAKES_MAX ? -1 : v2_events_level();
				if (l < 0) {
					vmo__debug("pressure: memory.events unreadable or stuck; dropping it");
					close(W.fd[i]);
					W.fd[i] = -1;
				} else if (l > level) {
					level = l;
				}
				continue;
			}
			if (pf[k].revents & (POLLERR | POLLNVAL)) {
				/* a PSI trigger whose file went away (group removed) */
				vmo__debug("pressure: source %d failed; dropping it", (int)i);
				close(W.fd[i]);
				W.fd[i] = -1;
				continue;
			}
			if (i != SRC_PSI && i != SRC_CG_PSI) {
				uint64_t v;
				if (read(W.fd[i], &v, sizeof v) < 0) { /* clear the eventfd */
				}
			}
			int l = i == SRC_CG_CRIT ? VMO__PRESSURE_CRITICAL
				: i == SRC_CG_MED ? VMO__PRESSURE_LOW
						  : VMO__PRESSURE_SOME;
			if (l > level)
				level = l;
		}
		/* Every wake-up (event or tick) also looks at the headroom, once for
		 * all; each subscriber holds it against its own margin. */
		t = now_ms();
		uint64_t h = vmo__mem_headroom();

		pthread_mutex_lock(&W.mu);
		if (W.state != RUNNING)
			break;
		for (nfds_t k = 0; r > 0 && k < n; k++) {
			if (!pf[k].revents || who[k] < SRC_MAX)
				continue;
			for (struct vmo__pressure_sub *s = W.subs; s; s = s->next)
				if (SRC_MAX + s->id == who[k])
					s->thr_fired = true;
		}
		for (struct vmo__pressure_sub *s = W.subs; s; s = s->next) {
			bool tick = t >= s->next_tick;
			if (tick)
				s->next_tick = t + s->poll_ms;
			int l = level;
			if (s->thr_fired && l < VMO__PRESSURE_LOW)
				l = VMO__PRESSURE_LOW; /* its usage crossed limit - margin */
			s->thr_fired = false;
			int hl = h < s->margin / 2 ? VMO__PRESSURE_CRITICAL
				 : h < s->margin   ? VMO__PRESSURE_LOW
						   : VMO__PRESSURE_NONE;
			if (!tick && l == VMO__PRESSURE_NONE) {
				/* Only woken (memory.events "max"/"high", a signal):
				 * report a short headroom at once, but not more often
				 * than every quarter tick (at its limit a group notifies
				 * every 10 ms); with the headroom fine (page cache at
				 * the limit) it is no tick.  Woken by a subscriber
				 * coming or going: nothing to report. */
				if (!woke || hl == VMO__PRESSURE_NONE || t - s->last_cb < s->poll_ms / 4)
					continue;
			}
			if (hl > l)
				l = hl;
			s->last_cb = t;
			s->pending = l;
		}
		deliver_locked();
	}
	pthread_mutex_unlock(&W.mu);
	free(pf);
	free(who);
	return NULL;
}

/* Open the shared sources and start the thread (under W.mu, IDLE). */
static int start_locked(void)
{
	for (int i = 0; i < SRC_MAX; i++)
		W.fd[i] = W.aux[i] = -1;
	memset(W.ev, 0, sizeof W.ev);
	W.sources = 0;
	W.fd[SRC_WAKE] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (W.fd[SRC_WAKE] < 0)
		return -errno;
	int fd = psi_trigger("/proc/pressure/memory", 100000, 1000000);
	if (fd >= 0) {
		W.fd[SRC_PSI] = fd;
		W.sources |= VMO__PRESSURE_SRC_PSI;
	} else {
		vmo__debug("pressure: no trigger on /proc/pressure/memory: %s", strerror(-fd));
	}
	if (g.version == 2) {
		char p[PATH_MAX + 32];
		snprintf(p, sizeof p, "%s/memory.pressure", g.dir);
		fd = psi_trigger(p, 100000, 1000000);
		if (fd >= 0) {
			W.fd[SRC_CG_PSI] = fd;
			W.sources |= VMO__PRESSURE_SRC_CG_PSI;
		}
		int err = v2_events_open();
		if (!err)
			W.sources |= VMO__PRESSURE_SRC_CG_EVENTS;
		else
			vmo__debug("pressure: no v2 memory.events: %s", strerror(-err));
	}
	if (g.version == 1) {
		fd = v1_event("memory.pressure_level", "medium", &W.aux[SRC_CG_MED]);
		if (fd >= 0) {
			W.fd[SRC_CG_MED] = fd;
			W.sources |= VMO__PRESSURE_SRC_CG_LEVEL;
		}
		fd = v1_event("memory.pressure_level", "critical", &W.aux[SRC_CG_CRIT]);
		if (fd >= 0) {
			W.fd[SRC_CG_CRIT] = fd;
			W.sources |= VMO__PRESSURE_SRC_CG_LEVEL;
		}
	}
	int rc = vmo__thread_create(&W.thread, watch_main, NULL);
	if (rc) {
		close_sources();
		return rc;
	}
	W.state = RUNNING;
	vmo__debug("pressure: watcher started (sources %#x)", W.sources);
	return 0;
}

/* fork(): W.mu is held across it, so that the child sees a consistent W.  The
 * child has no watcher thread: it forgets the parent's watcher and
 * subscribers (an inherited subscriber, of another epoch, may only be
 * unsubscribed, which frees it). */
static void fork_prepare(void)
{
	pthread_mutex_lock(&W.mu);
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&W.mu);
}

static void fork_child(void)
{
	if (W.state != IDLE) {
		close_sources();
		bury_locked();
		W.subs = NULL;
		W.nsubs = W.nthr = 0;
		W.cur = NULL;
		W.state = IDLE;
	}
	W.epoch++;
	pthread_cond_init(&W.cv, NULL); /* no waiter of the parent's is here */
	pthread_mutex_unlock(&W.mu);
}

static void w_init(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

int vmo__pressure_subscribe(const struct vmo__pressure_opts *o, void (*cb)(void *arg, int level),
			    void *arg, struct vmo__pressure_sub **out)
{
	if (!cb || !out)
		return -EINVAL;
	pthread_once(&g_once, resolve);
	pthread_once(&w_once, w_init);
	struct vmo__pressure_sub *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	if (o) {
		s->margin = o->margin;
		s->poll_ms = o->poll_ms;
	}
	if (!s->margin)
		s->margin = vmo__mem_default_margin();
	if (!s->poll_ms)
		s->poll_ms = 100;
	s->cb = cb;
	s->arg = arg;
	s->pending = -1;
	s->thr_fd = s->thr_aux = -1;
	if (g.version == 1) {
		/* v1: the kernel signals usage crossing limit - margin: this
		 * subscriber's own (the margins differ) */
		struct vmo__mem m;
		vmo__mem_query(&m);
		if (m.cg_limit != UINT64_MAX && m.cg_limit > s->margin) {
			char a[32];
			snprintf(a, sizeof a, "%" PRIu64, m.cg_limit - s->margin);
			int fd = v1_event("memory.usage_in_bytes", a, &s->thr_aux);
			if (fd >= 0)
				s->thr_fd = fd;
			else
				vmo__debug("pressure: no v1 usage threshold: %s", strerror(-fd));
		}
	}
	pthread_mutex_lock(&W.mu);
	while (W.state == STOPPING) /* the last subscriber is joining the thread */
		pthread_cond_wait(&W.cv, &W.mu);
	if (W.state == IDLE) {
		int rc = start_locked();
		if (rc) {
			pthread_mutex_unlock(&W.mu);
			close_sub_files(s);
			free(s);
			return rc;
		}
	}
	s->id = ++W.next_id;
	s->epoch = W.epoch;
	s->next_tick = now_ms() + s->poll_ms;
	struct vmo__pressure_sub **pp = &W.subs;
	while (*pp)
		pp = &(*pp)->next;
	*pp = s;
	W.nsubs++;
	if (s->thr_fd >= 0)
		W.nthr++;
	wake_locked(); /* its tick may come before the thread's timeout */
	pthread_mutex_unlock(&W.mu);
	*out = s;
	return 0;
}

void vmo__pressure_unsubscribe(struct vmo__pressure_sub *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&W.mu);
	if (s->epoch != W.epoch) {
		/* subscribed in the parent before fork(): no thread here to leave */
		pthread_mutex_unlock(&W.mu);
		close_sub_files(s);
		free(s);
		return;
	}
	struct vmo__pressure_sub **pp = &W.subs;
	while (*pp && *pp != s)
		pp = &(*pp)->next;
	if (!*pp) {
		pthread_mutex_unlock(&W.mu);
		vmo__warn("pressure: unsubscribing %p, which is not subscribed", (void *)s);
		return;
	}
	*pp = s->next;
	W.nsubs--;
	/* Out of the list, the thread will not pick it again; wait for the call
	 * it may be in (never from the callback itself: it would wait here for
	 * ever). */
	while (W.cur == s)
		pthread_cond_wait(&W.cv, &W.mu);
	bool keep = false;
	if (s->thr_fd >= 0) {
		/* the thread may be polling its eventfd: it closes it */
		W.nthr--;
		s->next = W.grave;
		W.grave = s;
		keep = true;
	}
	if (W.nsubs == 0 && W.state == RUNNING) {
		W.state = STOPPING;
		wake_locked();
		pthread_t th = W.thread;
		pthread_mutex_unlock(&W.mu);
		pthread_join(th, NULL);
		pthread_mutex_lock(&W.mu);
		bury_locked();
		close_sources();
		W.state = IDLE;
		pthread_cond_broadcast(&W.cv); /* subscribers waiting to start a new one */
		vmo__debug("pressure: watcher stopped");
	}
	pthread_mutex_unlock(&W.mu);
	if (!keep)
		free(s);
}

unsigned vmo__pressure_sources(void)
{
	pthread_mutex_lock(&W.mu);
	unsigned src = 0;
	if (W.state == RUNNING)
		src = W.sources | (W.nthr ? VMO__PRESSURE_SRC_CG_THRESHOLD : 0);
	pthread_mutex_unlock(&W.mu);
	return src;
}
