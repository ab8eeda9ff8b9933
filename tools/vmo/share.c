/* SPDX-License-Identifier: MIT */
/* vmo share: two processes share one object served by vmod.  This process
 * opens (or creates) the object and maps it; a second one, started here,
 * opens the same object through the server and writes the first half; this
 * one sees every byte at once in its own mapping, writes the second half,
 * and the other checks it; both sync to the server's store. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t tag(uint64_t pg, uint64_t who)
{
	return (pg * 0x9E3779B97F4A7C15ull) ^ (who << 56) ^ 0x5bd1e995ull;
}

static int open_map(const char *sock, const char *name, uint64_t size, struct vmo_client **cl,
		    struct vmo_object **o, uint64_t **p)
{
	int rc = vmo_client_connect(sock, cl);
	if (rc) {
		msg("connecting to %s: %s (%s); start vmod first", sock ? sock : vmo_server_default_path(),
		    vmo_strerror(rc), vmo_last_error_detail());
		return 1;
	}
	if ((rc = vmo_client_open(*cl, name, VMO_OPEN_RDWR | VMO_OPEN_CREATE, size, 0, o))) {
		msg("opening \"%s\": %s (%s)", name, vmo_strerror(rc), vmo_last_error_detail());
		return 1;
	}
	if ((rc = vmo_map(*o, 0, vmo_object_size(*o), VMO_PROT_READ | VMO_PROT_WRITE, (void **)p)))
		return fail("vmo_map", rc);
	return 0;
}

/* Write (or check) the tag of `who` in the first word of pages [a, b). */
static uint64_t fill(uint64_t *p, uint64_t a, uint64_t b, uint64_t who, bool check)
{
	uint64_t bad = 0;
	for (uint64_t pg = a; pg < b; pg++) {
		if (check)
			bad += p[pg * 512] != tag(pg, who);
		else
			p[pg * 512] = tag(pg, who);
	}
	return bad;
}

static int peer(const char *sock, const char *name)
{
	struct vmo_client *cl;
	struct vmo_object *o;
	uint64_t *p;
	if (open_map(sock, name, 0, &cl, &o, &p))
		return 1;
	uint64_t n = vmo_object_size(o) / 4096;
	fill(p, 0, n / 2, 1, false);
	int rc = vmo_sync(o, VMO_WAIT);
	printf("wrote %d\n", rc);
	fflush(stdout);
	char line[64];
	if (!fgets(line, sizeof line, stdin))
		return 1;
	uint64_t bad = fill(p, n / 2, n, 2, true);
	printf("checked %llu\n", (unsigned long long)bad);
	fflush(stdout);
	vmo_unmap(o, p, vmo_object_size(o));
	vmo_object_unref(o);
	vmo_client_close(cl);
	return bad ? 1 : 0;
}

static int cmd_share(int argc, char **argv)
{
	const char *sock = NULL, *size_s = NULL, *pos[1];
	bool is_peer = false;
	int npos;
	const struct opt opts[] = { { "--socket", true, &sock, NULL },
				    { "--size", true, &size_s, NULL },
				    { "--peer", false, NULL, &is_peer },
				    { NULL, false, NULL, NULL } };
	int rc = parse_opts(argc, argv, opts, pos, 1, &npos);
	if (rc)
		return rc;
	const char *name = npos ? pos[0] : "share-demo";
	uint64_t size = 64ull << 20;
	if (size_s && (rc = parse_size("--size", size_s, false, &size)))
		return rc;
	if (size % 4096 || size < 8192)
		return usage_error("--size must be a multiple of 4K, at least 8K");
	if (is_peer)
		return peer(sock, name);

	struct vmo_client *cl;
	struct vmo_object *o;
	uint64_t *p;
	if (open_map(sock, name, size, &cl, &o, &p))
		return 1;
	size = vmo_object_size(o);
	uint64_t n = size / 4096;
	char b[32];
	printf("process %d: opened \"%s\" on %s (%s), mapped\n", (int)getpid(), name,
	       sock ? sock : vmo_server_default_path(), human(size, b, sizeof b));
	/* The other process: this program again, through the same server. */
	int to[2], from[2];
	if (pipe(to) || pipe(from))
		return fail("pipe", -errno);
	pid_t pid = fork();
	if (pid < 0)
		return fail("fork", -errno);
	if (pid == 0) {
		dup2(to[0], 0);
		dup2(from[1], 1);
		close(to[1]);
		close(from[0]);
		char *args[] = { "vmo", "share", "--peer", (char *)name, sock ? "--socket" : NULL, (char *)sock, NULL };
		execv("/proc/self/exe", args);
		_exit(127);
	}
	close(to[0]);
	close(from[1]);
	FILE *in = fdopen(from[0], "r"), *out = fdopen(to[1], "w");
	char line[64];
	uint64_t t0 = now_ns();
	if (!fgets(line, sizeof line, in) || strcmp(line, "wrote 0\n")) {
		msg("the other process failed: %s", line);
		return 1;
	}
	uint64_t bad = fill(p, 0, n / 2, 1, true);
	printf("process %d: wrote %llu pages and synced; process %d sees %s of them in its own mapping\n", (int)pid,
	       (unsigned long long)(n / 2), (int)getpid(), bad ? "NOT all" : "every one");
	fill(p, n / 2, n, 2, false);
	fprintf(out, "check\n");
	fflush(out);
	if (!fgets(line, sizeof line, in) || strcmp(line, "checked 0\n")) {
		msg("the other process did not see our writes: %s", line);
		bad++;
	} else {
		printf("process %d: wrote %llu pages; process %d sees every one\n", (int)getpid(),
		       (unsigned long long)(n - n / 2), (int)pid);
	}
	int st;
	waitpid(pid, &st, 0);
	if ((rc = vmo_sync(o, VMO_WAIT)))
		return fail("vmo_sync", rc);
	struct vmo_stats s;
	if (!vmo_object_stats(o, &s))
		printf("server: %llu faults served for both processes, %llu pages read from its store, %llu written "
		       "back (%.1f ms)\n",
		       (unsigned long long)s.faults, (unsigned long long)s.pages_read,
		       (unsigned long long)s.writebacks, (double)(now_ns() - t0) / 1e6);
	vmo_unmap(o, p, size);
	vmo_object_unref(o);
	vmo_client_close(cl);
	if (bad || !WIFEXITED(st) || WEXITSTATUS(st)) {
		msg("FAILED: the two processes did not see the same bytes");
		return 1;
	}
	printf("ok: two processes shared \"%s\" through the server, every byte seen by both, synced\n", name);
	return 0;
}

const struct cli_cmd cli_cmd_share = {
	"share", cmd_share, "[--socket PATH] [--size N] [NAME]",
	"Two processes share one object served by vmod (NAME, default share-demo,\n"
	"created with --size, default 64M): a second process writes half of it,\n"
	"this one sees every byte at once, writes the other half, the second\n"
	"checks it; both sync to the server's store.",
};
