/* SPDX-License-Identifier: MIT */
/* blockcache_fuse.c - a read-only FUSE file system over one file, whose block
 * reads go through a vmo yield cache the way MINIX's mfs uses VM "yield".
 *
 *   blockcache_fuse [--block KIB] [--pool N] [--budget MIB] FILE MOUNTPOINT [FUSE options]
 *
 * MOUNTPOINT then holds two files: one named like FILE, with FILE's bytes,
 * and ".cache_stats", the yield cache's figures as key=value lines.  FILE is
 * read with O_DIRECT and the mount uses direct_io, so neither the kernel's
 * page cache of FILE nor FUSE's own caches get in front of the yield cache:
 * every read(2) on the mount comes here and is served from a pool of a few
 * block buffers, the yield cache, or FILE.  Unmount with fusermount3 -u.
 *
 * Needs libfuse3 (scripts/deps.sh installs it); built only when pkg-config
 * finds fuse3.
 */
#define FUSE_USE_VERSION 31
#include <fuse.h>
#include <vmo.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATS_NAME ".cache_stats"

struct buf {
	uint64_t blk;
	uint64_t used;
	char *data;
};

static struct {
	pthread_mutex_t mu;
	int fd;
	char name[256];
	uint64_t size;
	size_t bs;
	struct vmo_cache *cache;
	struct buf *pool;
	unsigned npool;
	uint64_t tick, disk_reads, pool_hits, cache_hits;
} fs = { .mu = PTHREAD_MUTEX_INITIALIZER };

static int read_disk(uint64_t blk, char *data)
{
	size_t got = 0;
	while (got < fs.bs) {
		ssize_t n = pread(fs.fd, data + got, fs.bs - got, (off_t)(blk * fs.bs + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		got += (size_t)n;
		if (n == 0 || got < fs.bs) { /* end of file (a short read with O_DIRECT too) */
			memset(data + got, 0, fs.bs - got);
			break;
		}
	}
	fs.disk_reads++;
	return 0;
}

/* Block blk in one of the pool's buffers (fs.mu held). */
static int get_block(uint64_t blk, const char **out)
{
	struct buf *victim = &fs.pool[0];
	fs.tick++;
	for (unsigned i = 0; i < fs.npool; i++) {
		struct buf *b = &fs.pool[i];
		if (b->blk == blk) {
			b->used = fs.tick;
			fs.pool_hits++;
			*out = b->data;
			return 0;
		}
		if (b->used < victim->used)
			victim = b;
	}
	int rc = victim->blk != UINT64_MAX
			 ? vmo_cache_yield_get(fs.cache, victim->blk, blk, victim->data, fs.bs)
			 : vmo_cache_get(fs.cache, blk, victim->data, fs.bs);
	if (rc == 0) {
		fs.cache_hits++;
	} else {
		victim->blk = UINT64_MAX; /* its block went to the cache */
		if (rc != -ENOENT)
			return rc;
		if ((rc = read_disk(blk, victim->data)) < 0)
			return rc;
	}
	victim->blk = blk;
	victim->used = fs.tick;
	*out = victim->data;
	return 0;
}

static int stats_text(char *t, size_t cap)
{
	struct vmo_cache_stats st;
	vmo_cache_stats(fs.cache, &st);
	return snprintf(t, cap,
			"block_bytes=%zu\ndisk_reads=%llu\npool_hits=%llu\ncache_hits=%llu\nblocks=%llu\n"
			"bytes=%llu\nyields=%llu\nhits=%llu\nmisses=%llu\nforgotten_blocks=%llu\n"
			"forgotten_bytes=%llu\ncap=%llu\n",
			fs.bs, (unsigned long long)fs.disk_reads, (unsigned long long)fs.pool_hits,
			(unsigned long long)fs.cache_hits, (unsigned long long)st.blocks,
			(unsigned long long)st.bytes, (unsigned long long)st.yields,
			(unsigned long long)st.hits, (unsigned long long)st.misses,
			(unsigned long long)st.forgotten_blocks, (unsigned long long)st.forgotten_bytes,
			(unsigned long long)st.cap);
}

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	(void)fi;
	memset(st, 0, sizeof *st);
	if (!strcmp(path, "/")) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		return 0;
	}
	if (path[0] == '/' && !strcmp(path + 1, fs.name)) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)fs.size;
		return 0;
	}
	if (!strcmp(path, "/" STATS_NAME)) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = 4096; /* direct_io: the real length is what read returns */
		return 0;
	}
	return -ENOENT;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void)off;
	(void)fi;
	(void)flags;
	if (strcmp(path, "/"))
		return -ENOENT;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	fill(buf, fs.name, NULL, 0, 0);
	fill(buf, STATS_NAME, NULL, 0, 0);
	return 0;
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	if (strcmp(path + 1, fs.name) && strcmp(path, "/" STATS_NAME))
		return -ENOENT;
	if ((fi->flags & O_ACCMODE) != O_RDONLY)
		return -EROFS;
	fi->direct_io = 1; /* every read comes here: the yield cache is the cache */
	return 0;
}

static int fs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	if (!strcmp(path, "/" STATS_NAME)) {
		char t[1024];
		pthread_mutex_lock(&fs.mu);
		int n = stats_text(t, sizeof t);
		pthread_mutex_unlock(&fs.mu);
		if (off >= n)
			return 0;
		size_t k = (size_t)n - (size_t)off < size ? (size_t)n - (size_t)off : size;
		memcpy(buf, t + off, k);
		return (int)k;
	}
	if (off < 0 || (uint64_t)off >= fs.size)
		return 0;
	if ((uint64_t)off + size > fs.size)
		size = (size_t)(fs.size - (uint64_t)off);
	size_t done = 0;
	pthread_mutex_lock(&fs.mu);
	while (done < size) {
		uint64_t pos = (uint64_t)off + done;
		const char *data = NULL;
		int rc = get_block(pos / fs.bs, &data);
		if (rc < 0) {
			pthread_mutex_unlock(&fs.mu);
			return done ? (int)done : rc;
		}
		size_t in = (size_t)(pos % fs.bs), k = fs.bs - in;
		if (k > size - done)
			k = size - done;
		memcpy(buf + done, data + in, k);
		done += k;
	}
	pthread_mutex_unlock(&fs.mu);
	return (int)done;
}

static void fs_destroy(void *data)
{
	(void)data;
	vmo_cache_destroy(fs.cache);
	fs.cache = NULL;
}

static const struct fuse_operations ops = {
	.getattr = fs_getattr,
	.readdir = fs_readdir,
	.open = fs_open,
	.read = fs_read,
	.destroy = fs_destroy,
};

int main(int argc, char **argv)
{
	size_t block_kib = 64;
	unsigned pool = 8;
	uint64_t budget_mib = 0;
	int i = 1;
	for (; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
		if (!strcmp(argv[i], "--block"))
			block_kib = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--pool"))
			pool = (unsigned)strtoul(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--budget"))
			budget_mib = strtoull(argv[i + 1], NULL, 0);
		else
			break;
	}
	if (argc - i < 2 || !block_kib || block_kib % 4 || !pool) {
		fprintf(stderr,
			"usage: %s [--block KIB] [--pool N] [--budget MIB] FILE MOUNTPOINT [FUSE options]\n",
			argv[0]);
		return 2;
	}
	const char *file = argv[i];
	fs.fd = open(file, O_RDONLY | O_CLOEXEC | O_DIRECT);
	if (fs.fd < 0 && errno == EINVAL)
		fs.fd = open(file, O_RDONLY | O_CLOEXEC); /* no O_DIRECT on this file system */
	if (fs.fd < 0) {
		fprintf(stderr, "blockcache_fuse: %s: %s\n", file, strerror(errno));
		return 1;
	}
	struct stat sb;
	fstat(fs.fd, &sb);
	fs.size = (uint64_t)sb.st_size;
	const char *base = strrchr(file, '/');
	snprintf(fs.name, sizeof fs.name, "%s", base ? base + 1 : file);
	fs.bs = block_kib * 1024;
	fs.npool = pool;
	fs.pool = calloc(pool, sizeof *fs.pool);
	for (unsigned k = 0; k < pool; k++) {
		fs.pool[k].blk = UINT64_MAX;
		fs.pool[k].data = mmap(NULL, fs.bs, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (fs.pool[k].data == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
	}
	/* The cache is made here; its watcher thread survives fuse_main's
	 * daemonising only with -f (foreground), which we add. */
	struct vmo_cache_opts co = { .budget = budget_mib << 20 };
	int rc = vmo_cache_create(&co, &fs.cache);
	if (rc) {
		fprintf(stderr, "blockcache_fuse: vmo_cache_create: %s\n", vmo_strerror(rc));
		return 1;
	}
	/* fuse_main's argv: program, mountpoint, options..., -f, -o ro */
	char **fa = calloc((size_t)argc + 4, sizeof *fa);
	int n = 0;
	fa[n++] = argv[0];
	for (int k = i + 1; k < argc; k++)
		fa[n++] = argv[k];
	fa[n++] = "-f";
	fa[n++] = "-o";
	fa[n++] = "ro";
	rc = fuse_main(n, fa, &ops, NULL);
	free(fa);
	if (fs.cache)
		vmo_cache_destroy(fs.cache);
	return rc;
}
