/* SPDX-License-Identifier: MIT */
/* vmod - the default pager: a server of memory objects (docs/vmod.md).
 *
 * Objects are files in a directory (the store), created on a client's first
 * open with VMO_OPEN_CREATE and served with the library's file pager; their
 * owner, group and mode are those of the file, so they survive a restart of
 * vmod.  Objects named anon.* are anonymous: backed by the store that
 * --anon-store names (a URI, docs/stores.md; by default the swap file
 * DIR/.swap shared by all of them, its slots freed when an object goes, the
 * file emptied when it is opened), never kept.  An object is dropped (written
 * back, then released) when its last client closes it, unless its creator
 * asked to keep it (VMO_OPEN_CACHE, Sprite's may_cache): then it stays until
 * vmod stops.  One engine serves every client, under one budget.
 *
 * vmod also keeps the system-wide yield cache (MINIX VM's cache across
 * processes): clients yield blocks to it with vmo_cache_connect and the
 * usual vmo_cache_* calls, a cache per user, forgotten under pressure.
 *
 * Options come from the command line and a config file (the same names,
 * `name = value`), the command line winning.  Logs go to stderr through the
 * library's log function (the journal, under systemd).  SIGTERM and SIGINT
 * stop it cleanly: clients are disconnected, every object written back. */
#include <vmo.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct config {
	char socket[PATH_MAX];
	char dir[PATH_MAX];
	char config[PATH_MAX];
	unsigned socket_mode;
	unsigned object_mode;
	uint64_t budget;
	unsigned workers;
	uint64_t default_size;
	uint64_t max_size;
	unsigned max_clients;
	int log_level;
	uint64_t cache_budget;
	bool no_cache;
	char anon_store[PATH_MAX]; /* a store URI; "" = swap:DIR/.swap */
};

static struct config cfg;
static struct vmo_engine *eng;
static struct vmo_server *srv;
static pthread_mutex_t create_mu = PTHREAD_MUTEX_INITIALIZER;
static int dirfd_ = -1;

/* ---- logging ---------------------------------------------------------------------- */

static void logf_(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(int level, const char *fmt, ...)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	if (level > cfg.log_level)
		return;
	va_list ap;
	va_start(ap, fmt);
	char msg[1024];
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "vmod: %s: %s\n", names[level], msg);
}

static void lib_log(void *arg, enum vmo_log_level level, const char *msg)
{
	(void)arg;
	logf_((int)level, "libvmo: %s", msg);
}

/* The store's ops (a file's, or the anonymous objects' store), with a
 * release that also closes the file and says so. */
struct obj_ctx {
	const struct vmo_pager_ops *fops;
	void *fctx;
	int fd;            /* the object's file, or -1 (anonymous) */
	char name[256];
};

static int o_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	struct obj_ctx *c = ctx;
	return c->fops->read(c->fctx, off, buf, len, flags);
}
static int o_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct obj_ctx *c = ctx;
	return c->fops->write(c->fctx, off, buf, len);
}
static int o_sync(void *ctx)
{
	struct obj_ctx *c = ctx;
	return c->fops->sync ? c->fops->sync(c->fctx) : 0;
}
static void o_release(void *ctx)
{
	struct obj_ctx *c = ctx;
	if (c->fops->release)
		c->fops->release(c->fctx);
	if (c->fd >= 0)
		close(c->fd);
	logf_(VMO_LOG_INFO, "object %s released", c->name);
	free(c);
}
static const struct vmo_pager_ops obj_ops = { .read = o_read, .write = o_write, .sync = o_sync, .release = o_release };
static const struct vmo_pager_ops anon_ops = { .read = o_read, .write = o_write, .release = o_release };

/* ---- opening objects ---------------------------------------------------------------- */

static bool is_anon(const char *name)
{
	return !strncmp(name, "anon.", 5);
}

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static int on_open(void *arg, struct vmo_server *s, const struct vmo_open_request *req)
{
	(void)arg;
	pthread_mutex_lock(&create_mu);
	int rc = 0, fd = -1;
	struct obj_ctx *c = NULL;
	struct vmo_object *obj = NULL;
	size_t ps = req->page_size ? req->page_size : 4096;
	uint64_t size;
	uid_t uid;
	gid_t gid;
	unsigned mode;
	bool anon = is_anon(req->name);
	if (anon) {
		if (!(req->flags & VMO_OPEN_CREATE)) {
			rc = -ENOENT;
			goto out;
		}
		size = round_up(req->size ? req->size : cfg.default_size, ps);
		uid = req->uid;
		gid = req->gid;
		mode = 0600; /* anonymous: its creator's */
	} else {
		int oflags = O_RDWR | O_CLOEXEC | ((req->flags & VMO_OPEN_CREATE) ? O_CREAT : 0);
		fd = openat(dirfd_, req->name, oflags, cfg.object_mode);
		if (fd < 0) {
			rc = -errno;
			goto out;
		}
		struct stat st;
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			rc = fd < 0 ? -errno : -EINVAL;
			goto out;
		}
		if (st.st_size == 0 && (req->flags & VMO_OPEN_CREATE)) {
			/* new: its size, and its owner the client that made it */
			size = round_up(req->size ? req->size : cfg.default_size, ps);
			if (ftruncate(fd, (off_t)size) < 0) {
				rc = -errno;
				goto out;
			}
			if (geteuid() == 0 && fchown(fd, req->uid, req->gid) < 0)
				logf_(VMO_LOG_WARN, "chown of %s: %s", req->name, strerror(errno));
			fstat(fd, &st);
			logf_(VMO_LOG_INFO, "created %s: %llu bytes for uid %u", req->name, (unsigned long long)size,
			      (unsigned)req->uid);
		} else {
			size = round_up((uint64_t)st.st_size, ps);
		}
		uid = st.st_uid;
		gid = st.st_gid;
		mode = st.st_mode & 0666;
	}
	if (!size || size > cfg.max_size) {
		logf_(VMO_LOG_WARN, "open %s by uid %u: size %llu is 0 or above --max-size", req->name, (unsigned)req->uid,
		      (unsigned long long)size);
		rc = -EFBIG;
		goto out;
	}
	c = calloc(1, sizeof *c);
	if (!c) {
		rc = -ENOMEM;
		goto out;
	}
	c->fd = fd;
	snprintf(c->name, sizeof c->name, "%s", req->name);
	if (anon) {
		rc = vmo_store_open(cfg.anon_store, size, (uint32_t)ps, &c->fops, &c->fctx);
		if (rc)
			logf_(VMO_LOG_WARN, "anonymous store %s: %s", cfg.anon_store, vmo_last_error_detail());
	} else {
		rc = vmo_pager_file(fd, 0, &c->fops, &c->fctx);
	}
	if (rc)
		goto out;
	struct vmo_object_opts oo = { .size = size, .page_size = ps };
	rc = vmo_object_create(eng, anon ? &anon_ops : &obj_ops, c, &oo, &obj);
	if (rc) {
		if (c->fops->release)
			c->fops->release(c->fctx);
		goto out;
	}
	c = NULL; fd = -1; /* the object's now */
	bool keep = !anon && (req->flags & VMO_OPEN_CACHE);
	rc = vmo_server_publish(s, req->name, obj, uid, gid, mode | (keep ? 0 : VMO_PUBLISH_CLOSE_IDLE));
	vmo_object_unref(obj); /* the server holds it */
	if (!rc)
		logf_(VMO_LOG_DEBUG, "serving %s (%s%s)", req->name, anon ? "anonymous" : "file", keep ? ", kept" : "");
out:
	free(c);
	if (fd >= 0)
		close(fd);
	pthread_mutex_unlock(&create_mu);
	if (rc && rc != -EEXIST && rc != -ENOENT)
		logf_(VMO_LOG_WARN, "open %s by uid %u: %s", req->name, (unsigned)req->uid, vmo_strerror(rc));
	return rc;
}

/* ---- options ------------------------------------------------------------------------- */

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -1;
	int shift = 0;
	switch (*end) {
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	case 'T': case 't': shift = 40; end++; break;
	}
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: vmod [OPTIONS]\n"
		   "The default pager of libvmo %s: serves memory objects to other processes (docs/vmod.md).\n\n"
		   "  --socket PATH        listen here (default: %s)\n"
		   "  --dir DIR            the store: one file per object (default: /var/lib/vmod for root,\n"
		   "                       $XDG_DATA_HOME/vmod or ~/.local/share/vmod else)\n"
		   "  --config FILE        read options from FILE, `name = value` lines (default /etc/vmod.conf\n"
		   "                       if it exists); the command line wins\n"
		   "  --socket-mode OCTAL  permissions of the socket (default 0600)\n"
		   "  --object-mode OCTAL  permissions of a new object's file (default 0600)\n"
		   "  --budget N           memory for all objects' pages (default: none)\n"
		   "  --workers N          fault-serving threads (default 2)\n"
		   "  --default-size N     size of a new object whose client gave none (default 1G)\n"
		   "  --max-size N         the largest object (default 1T)\n"
		   "  --max-clients N      (default 256)\n"
		   "  --cache-budget N     bytes of yielded blocks each user may keep (default: as memory allows)\n"
		   "  --no-cache           serve no yield cache (vmo_cache_connect)\n"
		   "  --anon-store URI     where anon.* objects' pages go (default swap:DIR/.swap; e.g.\n"
		   "                       lz4,budget=1G:swap:DIR/.swap, nbd://host/export; docs/stores.md)\n"
		   "  --log-level LEVEL    error, warn, info or debug (default info)\n"
		   "  --version, --help\n"
		   "Sizes take a K, M, G or T suffix.  Exit: 0 stopped by SIGTERM/SIGINT, 1 failure, 2 bad option.\n",
		vmo_version(), vmo_server_default_path());
}

enum { O_SOCKET = 1, O_DIR, O_CONFIG, O_SMODE, O_OMODE, O_BUDGET, O_WORKERS, O_DSIZE, O_MSIZE, O_MCLIENTS,
       O_LOG, O_CBUDGET, O_NOCACHE, O_ASTORE, O_VERSION, O_HELP };
static const struct option longopts[] = {
	{ "socket", required_argument, NULL, O_SOCKET },
	{ "dir", required_argument, NULL, O_DIR },
	{ "config", required_argument, NULL, O_CONFIG },
	{ "socket-mode", required_argument, NULL, O_SMODE },
	{ "object-mode", required_argument, NULL, O_OMODE },
	{ "budget", required_argument, NULL, O_BUDGET },
	{ "workers", required_argument, NULL, O_WORKERS },
	{ "default-size", required_argument, NULL, O_DSIZE },
	{ "max-size", required_argument, NULL, O_MSIZE },
	{ "max-clients", required_argument, NULL, O_MCLIENTS },
	{ "log-level", required_argument, NULL, O_LOG },
	{ "cache-budget", required_argument, NULL, O_CBUDGET },
	{ "no-cache", no_argument, NULL, O_NOCACHE },
	{ "anon-store", required_argument, NULL, O_ASTORE },
	{ "version", no_argument, NULL, O_VERSION },
	{ "help", no_argument, NULL, O_HELP },
	{ 0 },
};

/* Set option id to val; -1 with a message naming it if val is bad. */
static int set_opt(int id, const char *name, const char *val)
{
	uint64_t v;
	char *end;
	switch (id) {
	case O_SOCKET:
	case O_DIR:
	case O_CONFIG: {
		char *dst = id == O_SOCKET ? cfg.socket : id == O_DIR ? cfg.dir : cfg.config;
		if (!*val || strlen(val) >= PATH_MAX)
			goto bad;
		strcpy(dst, val);
		return 0;
	}
	case O_SMODE:
	case O_OMODE: {
		unsigned long m = strtoul(val, &end, 8);
		if (*end || !*val || m & ~0777ul)
			goto bad;
		*(id == O_SMODE ? &cfg.socket_mode : &cfg.object_mode) = (unsigned)m;
		return 0;
	}
	case O_BUDGET:
	case O_CBUDGET:
		if (parse_size(val, id == O_BUDGET ? &cfg.budget : &cfg.cache_budget))
			goto bad;
		return 0;
	case O_NOCACHE:
		cfg.no_cache = true;
		return 0;
	case O_ASTORE:
		if (!*val || strlen(val) >= PATH_MAX)
			goto bad;
		strcpy(cfg.anon_store, val);
		return 0;
	case O_DSIZE:
	case O_MSIZE:
		if (parse_size(val, &v) || !v)
			goto bad;
		*(id == O_DSIZE ? &cfg.default_size : &cfg.max_size) = v;
		return 0;
	case O_WORKERS:
	case O_MCLIENTS:
		if (parse_size(val, &v) || !v || v > 4096)
			goto bad;
		*(id == O_WORKERS ? &cfg.workers : &cfg.max_clients) = (unsigned)v;
		return 0;
	case O_LOG:
		for (int l = 0; l < 4; l++)
			if (!strcmp(val, (const char *[]){ "error", "warn", "info", "debug" }[l])) {
				cfg.log_level = l;
				return 0;
			}
		goto bad;
	}
bad:
	fprintf(stderr, "vmod: bad value \"%s\" for %s (vmod --help)\n", val, name);
	return -1;
}

/* The config file: `name = value` lines, # comments. */
static int read_config(const char *path, bool must, const bool *given)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		if (!must && errno == ENOENT)
			return 0;
		fprintf(stderr, "vmod: config file %s: %s\n", path, strerror(errno));
		return -1;
	}
	char line[PATH_MAX + 64];
	int lineno = 0, rc = 0;
	while (fgets(line, sizeof line, f)) {
		lineno++;
		char *p = line + strspn(line, " \t");
		if (*p == '#' || *p == '\n' || !*p)
			continue;
		char *eq = strchr(p, '=');
		char *nl = strchr(p, '\n');
		if (nl)
			*nl = 0;
		if (!eq) {
			fprintf(stderr, "vmod: %s:%d: not `name = value`\n", path, lineno);
			rc = -1;
			break;
		}
		char *name = p, *val = eq + 1, *e = eq;
		while (e > name && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		*e = 0;
		val += strspn(val, " \t");
		for (char *t = val + strlen(val); t > val && (t[-1] == ' ' || t[-1] == '\t');)
			*--t = 0;
		const struct option *o = longopts;
		for (; o->name; o++)
			if (!strcmp(o->name, name) && o->val != O_CONFIG && o->val != O_HELP && o->val != O_VERSION)
				break;
		if (!o->name) {
			fprintf(stderr, "vmod: %s:%d: unknown option \"%s\"\n", path, lineno, name);
			rc = -1;
			break;
		}
		if (given[o->val]) /* the command line wins */
			continue;
		char label[300];
		snprintf(label, sizeof label, "%s (%s:%d)", name, path, lineno);
		if (o->has_arg == no_argument) { /* a flag: `name = yes` */
			if (strcmp(val, "yes") && strcmp(val, "true") && strcmp(val, "1")) {
				if (!strcmp(val, "no") || !strcmp(val, "false") || !strcmp(val, "0"))
					continue;
				fprintf(stderr, "vmod: bad value \"%s\" for %s (yes or no)\n", val, label);
				rc = -1;
				break;
			}
			val = "";
		}
		if (set_opt(o->val, label, val)) {
			rc = -1;
			break;
		}
	}
	fclose(f);
	return rc;
}

static void defaults(void)
{
	snprintf(cfg.socket, sizeof cfg.socket, "%s", vmo_server_default_path());
	if (geteuid() == 0) {
		strcpy(cfg.dir, "/var/lib/vmod");
	} else {
		const char *x = getenv("XDG_DATA_HOME"), *h = getenv("HOME");
		if (x && *x)
			snprintf(cfg.dir, sizeof cfg.dir, "%s/vmod", x);
		else
			snprintf(cfg.dir, sizeof cfg.dir, "%s/.local/share/vmod", h && *h ? h : "/tmp");
	}
	cfg.socket_mode = 0600;
	cfg.object_mode = 0600;
	cfg.workers = 2;
	cfg.default_size = 1ull << 30;
	cfg.max_size = 1ull << 40;
	cfg.max_clients = 256;
	cfg.log_level = VMO_LOG_INFO;
}

/* mkdir -p of the directory holding path (mode 0755), and of dir itself. */
static int mkdirs(const char *path, bool parent_only)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof buf, "%s", path);
	if (parent_only) {
		char *s = strrchr(buf, '/');
		if (!s || s == buf)
			return 0;
		*s = 0;
	}
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || !*p) {
			char c = *p;
			*p = 0;
			if (mkdir(buf, 0755) < 0 && errno != EEXIST)
				return -errno;
			if (!c)
				break;
			*p = c;
		}
	}
	return 0;
}

/* Socket activation (systemd's LISTEN_FDS): the first descriptor, 3. */
static int activated_fd(void)
{
	const char *pid = getenv("LISTEN_PID"), *n = getenv("LISTEN_FDS");
	if (!pid || !n || (pid_t)strtol(pid, NULL, 10) != getpid() || strtol(n, NULL, 10) < 1)
		return -1;
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	fcntl(3, F_SETFD, FD_CLOEXEC);
	return 3;
}

int main(int argc, char **argv)
{
	/* The signals main waits for (sigwait, below) are blocked before any
	 * thread starts, so that no thread (the library's, a sanitizer's) takes
	 * one with its default action. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	defaults();
	bool given[O_HELP + 1] = { 0 };
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == O_HELP) {
			usage(stdout);
			return 0;
		}
		if (c == O_VERSION) {
			printf("vmod (libvmo) %s\n", vmo_version());
			return 0;
		}
		if (c == '?' || c == ':') {
			fprintf(stderr, "vmod: see vmod --help\n");
			return 2;
		}
		given[c] = true;
		if (set_opt(c, longopts[c - 1].name, optarg ? optarg : ""))
			return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "vmod: unexpected argument \"%s\" (vmod --help)\n", argv[optind]);
		return 2;
	}
	if (read_config(given[O_CONFIG] ? cfg.config : "/etc/vmod.conf", given[O_CONFIG], given))
		return 2;
	vmo_set_log(lib_log, NULL, (enum vmo_log_level)cfg.log_level);

	int rc = mkdirs(cfg.dir, false);
	if (rc || (dirfd_ = open(cfg.dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC)) < 0) {
		logf_(VMO_LOG_ERROR, "store directory %s: %s", cfg.dir, strerror(rc ? -rc : errno));
		return 1;
	}
	/* Anonymous objects: the swap file by default (emptied when opened:
	 * they do not outlive vmod).  The URI is tried now, so that a bad one
	 * stops vmod at start, not at a client's first open. */
	if (!cfg.anon_store[0] && snprintf(cfg.anon_store, sizeof cfg.anon_store, "swap:%s/.swap", cfg.dir) >= PATH_MAX) {
		logf_(VMO_LOG_ERROR, "--dir %s is too long", cfg.dir);
		return 1;
	}
	{
		const struct vmo_pager_ops *tops;
		void *tctx;
		rc = vmo_store_open(cfg.anon_store, 1u << 20, 4096, &tops, &tctx);
		if (rc) {
			logf_(VMO_LOG_ERROR, "--anon-store %s: %s (%s)", cfg.anon_store, vmo_strerror(rc),
			      vmo_last_error_detail());
			return 1;
		}
		if (tops->release)
			tops->release(tctx);
	}
	struct vmo_engine_opts eo = { .workers = cfg.workers, .budget = cfg.budget };
	rc = vmo_engine_create(&eo, &eng);
	if (rc) {
		logf_(VMO_LOG_ERROR, "engine: %s (%s)", vmo_strerror(rc), vmo_last_error_detail());
		return 1;
	}
	struct vmo_server_opts so = {
		.listen_fd = activated_fd(),
		.mode = cfg.socket_mode,
		.max_clients = cfg.max_clients,
		.open = on_open,
		.cache = cfg.no_cache ? NULL : &(struct vmo_cache_opts){ .budget = cfg.cache_budget },
	};
	if (so.listen_fd < 0) {
		so.path = cfg.socket;
		if (mkdirs(cfg.socket, true))
			logf_(VMO_LOG_WARN, "making the directory of %s: %s", cfg.socket, strerror(errno));
	}
	signal(SIGPIPE, SIG_IGN);
	rc = vmo_server_create(eng, &so, &srv);
	if (rc) {
		logf_(VMO_LOG_ERROR, "listening on %s: %s (%s)", so.path ? so.path : "the activated socket",
		      vmo_strerror(rc), vmo_last_error_detail());
		vmo_engine_destroy(eng);
		return 1;
	}
	logf_(VMO_LOG_INFO, "serving %s on %s (libvmo %s, features %#x)", cfg.dir,
	      so.path ? so.path : "the activated socket", vmo_version(), vmo_engine_features(eng));
	if (so.path)
		printf("vmod: ready on %s\n", so.path), fflush(stdout);
	for (;;) {
		int sig;
		if (sigwait(&set, &sig))
			continue;
		if (sig == SIGHUP)
			continue;
		logf_(VMO_LOG_INFO, "%s: stopping", strsignal(sig));
		break;
	}
	vmo_server_destroy(srv); /* clients disconnected, objects written back */
	rc = vmo_engine_destroy(eng);
	if (rc)
		logf_(VMO_LOG_ERROR, "engine: %s", vmo_strerror(rc));
	return rc ? 1 : 0;
}
