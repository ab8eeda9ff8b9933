/* SPDX-License-Identifier: MIT */
/* vmo server: speak to a running server (vmod): list its objects, their
 * statistics and the server's, sync them, drop their caches. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int open_obj(struct vmo_client *cl, const char *name, struct vmo_object **o)
{
	int rc = vmo_client_open(cl, name, VMO_OPEN_RDONLY, 0, 0, o);
	if (rc) {
		msg("opening \"%s\": %s (%s)", name, vmo_strerror(rc), vmo_last_error_detail());
		return 1;
	}
	return 0;
}

static int cmd_server(int argc, char **argv)
{
	const char *sock = NULL, *pos[2];
	int npos;
	bool json = false;
	const struct opt opts[] = { { "--socket", true, &sock, NULL },
				    { "--json", false, NULL, &json },
				    { NULL, false, NULL, NULL } };
	int rc = parse_opts(argc, argv, opts, pos, 2, &npos);
	if (rc)
		return rc;
	if (npos < 1)
		return usage_error("say what to do: list, clients, stats [NAME], sync NAME, drop NAME or cache");
	const char *what = pos[0], *name = npos > 1 ? pos[1] : NULL;
	bool needs_name = !strcmp(what, "sync") || !strcmp(what, "drop");
	if (strcmp(what, "list") && strcmp(what, "stats") && strcmp(what, "cache") && strcmp(what, "clients") &&
	    !needs_name)
		return usage_error("unknown action \"%s\": list, clients, stats, sync, drop or cache", what);
	if (needs_name && !name)
		return usage_error("%s needs an object NAME", what);
	if ((!strcmp(what, "list") || !strcmp(what, "cache") || !strcmp(what, "clients")) && name)
		return usage_error("%s takes no NAME", what);
	if (json && needs_name)
		return usage_error("--json: only with list, clients, stats or cache, not %s", what);
	/* --json: one object on standard output, begun once the server answered */
	struct json jb, *j = json ? &jb : NULL;
	if (!strcmp(what, "cache")) {
		/* the system-wide yield cache: this user's part of it */
		struct vmo_cache *c;
		struct vmo_cache_stats cs;
		if ((rc = vmo_cache_connect(sock, 0, &c))) {
			msg("the server's yield cache: %s (%s)", vmo_strerror(rc), vmo_last_error_detail());
			return 1;
		}
		rc = vmo_cache_stats(c, &cs);
		vmo_cache_destroy(c);
		if (rc)
			return fail("vmo_cache_stats", rc);
		if (j) {
			json_begin(j, stdout);
			json_u64(j, "uid", (uint64_t)geteuid());
			json_u64(j, "blocks", cs.blocks);
			json_u64(j, "bytes", cs.bytes);
			json_u64(j, "yields", cs.yields);
			json_u64(j, "hits", cs.hits);
			json_u64(j, "misses", cs.misses);
			json_u64(j, "forgotten_blocks", cs.forgotten_blocks);
			json_u64(j, "forgotten_bytes", cs.forgotten_bytes);
			if (cs.cap == UINT64_MAX)
				json_str(j, "cap", NULL); /* nothing limits it */
			else
				json_u64(j, "cap", cs.cap);
			json_u64(j, "pressure_events", cs.pressure_events);
			json_bool(j, "ok", true);
			json_finish(j);
			return 0;
		}
		char b1[32], b2[32];
		printf("yield cache of uid %u on the server:\n", (unsigned)geteuid());
		printf("  blocks          %llu (%s)\n", (unsigned long long)cs.blocks, human(cs.bytes, b1, sizeof b1));
		printf("  yields          %llu (hits %llu, misses %llu)\n", (unsigned long long)cs.yields,
		       (unsigned long long)cs.hits, (unsigned long long)cs.misses);
		printf("  forgotten       %llu blocks (%s)\n", (unsigned long long)cs.forgotten_blocks,
		       human(cs.forgotten_bytes, b2, sizeof b2));
		if (cs.cap == UINT64_MAX)
			printf("  cap             none\n");
		else
			printf("  cap             %s\n", human(cs.cap, b1, sizeof b1));
		printf("  pressure events %llu\n", (unsigned long long)cs.pressure_events);
		return 0;
	}
	struct vmo_client *cl;
	if ((rc = vmo_client_connect(sock, &cl))) {
		msg("connecting to %s: %s (%s)", sock ? sock : vmo_server_default_path(), vmo_strerror(rc),
		    vmo_last_error_detail());
		return 1;
	}
	int ret = 0;
	char b1[32], b2[32];
	if (j) {
		json_begin(j, stdout);
		if (strcmp(what, "stats"))
			json_array(j, what); /* "list": [...], "clients": [...] */
	}
	if (!strcmp(what, "clients")) {
		uint64_t cur = 0;
		struct vmo_client_info e[16];
		if (!j)
			printf("%8s %6s %6s %8s %6s %10s %12s\n", "PID", "UID", "GID", "OBJECTS", "VIEWS", "REQUESTS",
			       "FAULTS");
		do {
			int n = vmo_client_clients(cl, &cur, e, 16);
			if (n < 0) {
				ret = fail("vmo_client_clients", n);
				break;
			}
			for (int i = 0; i < n && j; i++) {
				json_object(j, NULL);
				json_int(j, "pid", e[i].pid);
				json_u64(j, "uid", e[i].uid);
				json_u64(j, "gid", e[i].gid);
				json_u64(j, "objects", e[i].objects);
				json_u64(j, "views", e[i].views);
				json_u64(j, "requests", e[i].requests);
				json_u64(j, "faults", e[i].faults);
				json_end(j);
			}
			for (int i = 0; i < n && !j; i++)
				printf("%8d %6u %6u %8u %6u %10llu %12llu\n", (int)e[i].pid, (unsigned)e[i].uid,
				       (unsigned)e[i].gid, e[i].objects, e[i].views, (unsigned long long)e[i].requests,
				       (unsigned long long)e[i].faults);
		} while (cur);
	} else if (!strcmp(what, "list")) {
		uint64_t cur = 0;
		struct vmo_client_entry e[16];
		if (!j)
			printf("%-40s %12s %10s\n", "NAME", "SIZE", "PAGE");
		do {
			int n = vmo_client_list(cl, &cur, e, 16);
			if (n < 0) {
				ret = fail("vmo_client_list", n);
				break;
			}
			for (int i = 0; i < n && j; i++) {
				json_object(j, NULL);
				json_str(j, "name", e[i].name);
				json_u64(j, "size", e[i].size);
				json_u64(j, "page_size", e[i].page_size);
				json_end(j);
			}
			for (int i = 0; i < n && !j; i++)
				printf("%-40s %12s %10s\n", e[i].name, human(e[i].size, b1, sizeof b1),
				       human(e[i].page_size, b2, sizeof b2));
		} while (cur);
	} else if (!strcmp(what, "stats")) {
		struct vmo_stats st;
		if (!name) {
			if ((rc = vmo_client_server_stats(cl, &st))) {
				ret = fail("vmo_client_server_stats", rc);
			} else if (j) {
				json_str(j, "name", NULL); /* the whole server */
				json_stats(j, "stats", &st);
			} else {
				printf("server (every object, every client):\n");
				print_stats(stdout, "  ", &st);
			}
		} else {
			struct vmo_object *o;
			if (!(ret = open_obj(cl, name, &o))) {
				if ((rc = vmo_object_stats(o, &st))) {
					ret = fail("vmo_object_stats", rc);
				} else if (j) {
					json_str(j, "name", name);
					json_u64(j, "size", vmo_object_size(o));
					json_stats(j, "stats", &st);
				} else {
					printf("%s (%s):\n", name, human(vmo_object_size(o), b1, sizeof b1));
					print_stats(stdout, "  ", &st);
				}
				vmo_object_unref(o);
			}
		}
	} else {
		struct vmo_object *o;
		if (!(ret = open_obj(cl, name, &o))) {
			/* drop: vmo_return, which writes back and drops the clean pages */
			rc = !strcmp(what, "sync") ? vmo_sync(o, VMO_WAIT) : vmo_return(o, VMO_WAIT);
			if (rc)
				ret = fail(!strcmp(what, "sync") ? "vmo_sync" : "vmo_return", rc);
			else
				printf("%s: %s\n", name, !strcmp(what, "sync") ? "written back" : "written back and dropped");
			vmo_object_unref(o);
		}
	}
	if (j) { /* on a failure too: the object is complete, "ok" says */
		if (strcmp(what, "stats"))
			json_end(j);
		json_bool(j, "ok", ret == 0);
		json_finish(j);
	}
	vmo_client_close(cl);
	return ret;
}

const struct cli_cmd cli_cmd_server = {
	"server", cmd_server, "[--socket PATH] [--json] list | clients | stats [NAME] | sync NAME | drop NAME | cache",
	"Speak to a running server (vmod; --socket, else $VMO_SERVER, else its\n"
	"default socket): list the objects it serves, or its clients (of this\n"
	"user; all for root) with their objects, views, requests and faults;\n"
	"print the statistics of one object or of the whole server, write an\n"
	"object's dirty pages back (sync)\n"
	"or write them back and drop its pages from memory (drop); cache: the\n"
	"statistics of this user's part of the server's system-wide yield cache.\n"
	"--json (list, clients, stats, cache): one JSON object on standard output,\n"
	"sizes in bytes (stats: {\"name\": NAME or null, \"stats\": {\"resident\": ...,\n"
	"named as in struct vmo_stats}, \"ok\": true}).",
};
