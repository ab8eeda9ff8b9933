/* SPDX-License-Identifier: MIT */
/* vmo store: an object in a store named by URI (docs/stores.md), written
 * and read back through a mapping under a budget smaller than it: the pages
 * go to the store and come back.  Prints the throughput, the object's
 * counters and the store's own (swap, compressed, NBD). */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* A page's words: text-like (compressible) when text, else a pattern. */
static void fill(uint64_t *p, uint64_t pg, size_t psz, bool text)
{
	static const char words[] = "pages go to the store and come back from it, word for word; ";
	if (text) {
		char *c = (char *)p;
		for (size_t i = 0; i < psz; i++)
			c[i] = words[(i + pg * 13) % (sizeof words - 1)];
		p[0] = pg;
		return;
	}
	for (size_t i = 0; i < psz / 8; i++)
		p[i] = (pg * psz + i * 8) * 0x9E3779B97F4A7C15ull ^ 0x5bd1e995ull;
}

struct pass {
	uint64_t *v;
	uint64_t npages;
	size_t psz;
	bool text;
	bool write;
	uint64_t bad_page; /* UINT64_MAX: none */
	uint64_t *buf;
};

static void run_pass(void *arg)
{
	struct pass *p = arg;
	for (uint64_t pg = 0; pg < p->npages; pg++) {
		uint64_t *at = p->v + pg * (p->psz / 8);
		progress_add(p->psz);
		fill(p->buf, pg, p->psz, p->text);
		if (p->write) {
			memcpy(at, p->buf, p->psz);
		} else if (memcmp(at, p->buf, p->psz)) {
			p->bad_page = pg;
			return;
		}
	}
}

static int cmd_store(int argc, char **argv)
{
	const char *size_s = NULL, *budget_s = NULL, *pos[1];
	bool random_data = false, prog_on = false, prog_off = false;
	const struct opt opts[] = {
		{ "--size", true, &size_s, NULL },
		{ "--budget", true, &budget_s, NULL },
		{ "--random", false, NULL, &random_data },
		{ "--progress", false, NULL, &prog_on },
		{ "--no-progress", false, NULL, &prog_off },
		{ NULL, false, NULL, NULL },
	};
	int npos, rc = parse_opts(argc, argv, opts, pos, 1, &npos);
	if (rc)
		return rc;
	if (npos != 1)
		return usage_error("missing URI (usage: vmo store [--size N] [--budget N] [--random] URI)");
	uint64_t size = 0, budget = 0;
	if (size_s && (rc = parse_size("--size", size_s, false, &size)))
		return rc;
	if (budget_s && (rc = parse_size("--budget", budget_s, false, &budget)))
		return rc;
	if ((rc = progress_setup(prog_on, prog_off, false)))
		return rc;
	struct vmo_engine *eng;
	if ((rc = vmo_engine_create(NULL, &eng)))
		return engine_fail(rc);
	struct vmo_object_opts oo = { .size = size };
	struct vmo_object *obj;
	rc = vmo_object_create_uri(eng, pos[0], &oo, &obj);
	if (rc == -EINVAL && !size && strstr(vmo_last_error_detail(), "size")) {
		vmo_engine_destroy(eng);
		return usage_error("%s (give --size)", vmo_last_error_detail());
	}
	if (rc == -EINVAL) { /* the URI itself is wrong (the detail says how) */
		vmo_engine_destroy(eng);
		return usage_error("URI '%s': %s", pos[0], vmo_last_error_detail());
	}
	if (rc) { /* a right URI that could not be opened: a missing file, no server */
		msg("%s: %s (%s)", pos[0], vmo_strerror(rc), vmo_last_error_detail());
		vmo_engine_destroy(eng);
		return 1;
	}
	size = vmo_object_size(obj);
	size_t psz = vmo_object_page_size(obj);
	if (!budget)
		budget = size / 4 > psz ? size / 4 : psz;
	vmo_object_set_budget(obj, budget, 0);
	char b1[32], b2[32];
	printf("vmo store: %s, %s under a budget of %s, %s data\n", pos[0], human(size, b1, sizeof b1),
	       human(budget, b2, sizeof b2), random_data ? "random" : "text-like");
	void *v;
	if ((rc = vmo_map(obj, 0, size, VMO_PROT_READ | VMO_PROT_WRITE, &v))) {
		vmo_object_unref(obj);
		vmo_engine_destroy(eng);
		return fail("vmo_map", rc);
	}
	install_sigbus();
	struct pass p = { v, size / psz, psz, !random_data, true, UINT64_MAX, malloc(psz) };
	if (!p.buf) {
		vmo_unmap(obj, v, size);
		vmo_object_unref(obj);
		vmo_engine_destroy(eng);
		return fail("malloc", -ENOMEM);
	}
	int ret = 0;
	uintptr_t badaddr = 0;
	uint64_t t0 = now_ns();
	progress_begin("writing", size);
	bool wrote = guarded(run_pass, &p, &badaddr);
	progress_end();
	if (!wrote) {
		msg("SIGBUS at %p writing (the store failed: %s)", (void *)badaddr,
		    vmo_strerror(vmo_get_error(obj, (uint64_t)(badaddr - (uintptr_t)v))));
		ret = 1;
	}
	int src = ret ? 0 : vmo_return(obj, VMO_WAIT);
	uint64_t t1 = now_ns();
	if (src) {
		msg("vmo_return: %s (%s)", vmo_strerror(src), vmo_last_error_detail());
		ret = 1;
	}
	p.write = false;
	bool read_back = true;
	if (!ret) {
		progress_begin("reading back", size);
		read_back = guarded(run_pass, &p, &badaddr);
		progress_end();
	}
	if (!read_back) {
		msg("SIGBUS at %p reading back (the store failed: %s)", (void *)badaddr,
		    vmo_strerror(vmo_get_error(obj, (uint64_t)(badaddr - (uintptr_t)v))));
		ret = 1;
	}
	uint64_t t2 = now_ns();
	if (!ret && p.bad_page != UINT64_MAX) {
		msg("FAILED: page %" PRIu64 " did not come back as written", p.bad_page);
		ret = 1;
	}
	if (!ret)
		printf("wrote and returned %s in %.0f ms (%.0f MiB/s), read back in %.0f ms (%.0f MiB/s): every byte "
		       "as written\n",
		       human(size, b1, sizeof b1), (double)(t1 - t0) / 1e6,
		       (double)size / 1048576.0 / ((double)(t1 - t0) / 1e9), (double)(t2 - t1) / 1e6,
		       (double)size / 1048576.0 / ((double)(t2 - t1) / 1e9));
	struct vmo_stats st;
	if (vmo_object_stats(obj, &st) == 0)
		print_stats(stdout, "  ", &st);
	void *ctx = vmo_object_ctx(obj);
	struct vmo_compress_stats cs;
	struct vmo_nbd_stats ns;
	if (vmo_pager_compress_stats(ctx, &cs) == 0)
		printf("  compressed: %" PRIu64 " bytes in, %" PRIu64 " out (ratio %.2f); %" PRIu64
		       " pages in memory (%" PRIu64 " bytes, %" PRIu64 " raw); %" PRIu64 " spilled, %" PRIu64
		       " read from below\n",
		       cs.bytes_in, cs.bytes_out, cs.bytes_out ? (double)cs.bytes_in / (double)cs.bytes_out : 0.0, cs.pages,
		       cs.stored_bytes, cs.raw_pages, cs.spilled, cs.lower_reads);
	else if (vmo_pager_nbd_stats(ctx, &ns) == 0)
		printf("  nbd: %" PRIu64 " reads, %" PRIu64 " writes, %" PRIu64 " zeroes, %" PRIu64
		       " flushes; at most %" PRIu64 " in flight; %" PRIu64 " reconnects, %" PRIu64 " retried, %" PRIu64
		       " failed\n",
		       ns.reads, ns.writes, ns.zeroes, ns.flushes, ns.inflight_peak, ns.reconnects, ns.retried, ns.failed);
	free(p.buf);
	vmo_unmap(obj, v, size);
	vmo_object_unref(obj);
	vmo_engine_destroy(eng);
	return ret;
}

const struct cli_cmd cli_cmd_store = {
	"store", cmd_store, "[--size N] [--budget N] [--random] [--[no-]progress] URI",
	"An object in the store URI names (file:PATH, swap:PATH, lz4[,budget=N]\n"
	"[:LOWER], zstd[...], nbd://..., nbd+unix://...; docs/stores.md): every\n"
	"page written through a mapping under --budget (default a quarter of\n"
	"--size, which a store with a size of its own may leave out), returned to\n"
	"the store, read back and checked; the counters of the object and of the\n"
	"store.  A URI that is wrong exits 2, one that cannot be opened 1.\n"
	"--progress, --no-progress: the progress line on standard error (default:\n"
	"shown when standard error is a terminal).",
};
