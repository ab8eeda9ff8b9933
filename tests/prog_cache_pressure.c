/* SPDX-License-Identifier: MIT */
/* prog_cache_pressure.c - helper for tests/test_cache_pressure.sh.
 *
 *   prog_cache_pressure hold TOTAL_MIB BLOCK_KIB SECONDS
 *       Yields TOTAL_MIB of distinct blocks into a yield cache (no budget:
 *       "as much as memory allows"), then keeps yielding and getting until
 *       SECONDS have passed since the start, checking that every hit returns
 *       exactly the bytes yielded (idle every other second, so that the
 *       cache's own watcher has to act alone).  Prints a status line per second and, at
 *       the end, key=value lines.  Exit 0 unless a check failed.
 *
 *       With PROG_CACHE_SERVER=SOCKET the cache is vmod's system-wide one
 *       (vmo_cache_connect): the blocks live in vmod.
 *
 *   prog_cache_pressure hog MIB[,MIB...] HOLD_MS
 *       Grows its anonymous memory to each size in turn (touching every
 *       page), holding each for HOLD_MS, then frees it all and exits 0.
 */
#include "helper.h"

#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

static uint64_t word(uint64_t id, uint64_t off) { return (id << 32) ^ off ^ 0xa5a5a5a5a5a5a5a5ull; }

static void fill(uint64_t *w, size_t len, uint64_t id)
{
	for (size_t i = 0; i < len / 8; i++)
		w[i] = word(id, i);
}
static bool check(const uint64_t *w, size_t len, uint64_t id)
{
	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != word(id, i))
			return false;
	return true;
}

static int hold(uint64_t total_mib, size_t block_kib, double seconds)
{
	const size_t len = block_kib * 1024;
	struct vmo_cache *c;
	/* PROG_CACHE_FLAGS: cache flags, e.g. 1 (NO_PRESSURE) to see the test fail */
	struct vmo_cache_opts o = { .flags = (uint32_t)strtoul(getenv("PROG_CACHE_FLAGS") ?: "0", NULL, 0) };
	/* PROG_CACHE_SERVER: a socket of vmod: its system-wide cache instead */
	const char *srv = getenv("PROG_CACHE_SERVER");
	if (srv && *srv)
		CHECK_OK(vmo_cache_connect(srv, 0, &c));
	else
		CHECK_OK(vmo_cache_create(&o, &c));
	uint64_t *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(buf != MAP_FAILED);
	uint64_t t0 = t_now_ns(), last = t0, s = 42, t_filled = 0;
	uint64_t next_id = 0, held_max = 0, hits = 0, misses = 0;
	uint64_t nblocks = total_mib * 1024 / block_kib;
	struct vmo_cache_stats st;
	for (;;) {
		uint64_t now = t_now_ns();
		bool filling = next_id < nblocks;
		if (!filling && !t_filled)
			t_filled = now;
		/* At least 3 s of gets after filling, however long filling took (a
		 * loaded machine yields slower and would otherwise get nothing). */
		if (!filling && now - t0 > (uint64_t)(seconds * 1e9) && now - t_filled > 3000000000ull)
			break;
		if (!filling && ((now - t0) / 1000000000ull) % 2) {
			/* every other second: idle, only the cache's own thread watches */
			usleep(10000);
		} else if (filling || t_rand(&s) % 2) {
			fill(buf, len, next_id);
			CHECK_OK(vmo_cache_yield(c, next_id, buf, len));
			next_id++;
		} else {
			/* a recent block: likely still there */
			uint64_t back = 1 + t_rand(&s) % 256;
			uint64_t id = next_id > back ? next_id - back : 0;
			int rc = vmo_cache_get(c, id, buf, len);
			if (rc == 0) {
				if (!check(buf, len, id)) {
					fprintf(stderr, "hold: block %llu came back wrong\n", (unsigned long long)id);
					return 1;
				}
				hits++;
			} else {
				CHECK_EQ(rc, -ENOENT);
				misses++;
			}
		}
		CHECK_OK(vmo_cache_stats(c, &st));
		if (st.bytes > held_max)
			held_max = st.bytes;
		if (now - last > 1000000000ull) {
			last = now;
			printf("hold: t=%.1fs yielded=%lluMiB held=%lluMiB cap=%lluMiB forgotten=%lluMiB "
			       "events=%llu rss=%ldMiB\n",
			       (double)(now - t0) / 1e9, (unsigned long long)(next_id * len >> 20),
			       (unsigned long long)(st.bytes >> 20), (unsigned long long)(st.cap >> 20),
			       (unsigned long long)(st.forgotten_bytes >> 20),
			       (unsigned long long)st.pressure_events, t_rss_kb() / 1024);
			fflush(stdout);
		}
	}
	CHECK_OK(vmo_cache_stats(c, &st));
	printf("yielded_mib=%llu\nheld_max_mib=%llu\nheld_end_mib=%llu\nforgotten_mib=%llu\nhits=%llu\n"
	       "misses=%llu\npressure_events=%llu\n",
	       (unsigned long long)(next_id * len >> 20), (unsigned long long)(held_max >> 20),
	       (unsigned long long)(st.bytes >> 20), (unsigned long long)(st.forgotten_bytes >> 20),
	       (unsigned long long)hits, (unsigned long long)misses, (unsigned long long)st.pressure_events);
	vmo_cache_destroy(c);
	munmap(buf, len);
	return 0;
}

static int hog(const char *sizes, long hold_ms)
{
	char *p = NULL;
	size_t have = 0;
	const size_t reserve = (size_t)8 << 30;
	p = mmap(NULL, reserve, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CHECK(p != MAP_FAILED);
	for (const char *s = sizes; *s;) {
		char *end;
		size_t want = (size_t)strtoull(s, &end, 10) << 20;
		if (want > reserve)
			want = reserve;
		if (want > have) {
			for (size_t off = have; off < want; off += 4096)
				p[off] = 1;
		} else if (want < have) {
			madvise(p + want, have - want, MADV_DONTNEED);
		}
		have = want;
		printf("hog: %zu MiB rss=%ldMiB\n", have >> 20, t_rss_kb() / 1024);
		fflush(stdout);
		usleep((useconds_t)hold_ms * 1000);
		s = *end == ',' ? end + 1 : end;
	}
	munmap(p, reserve);
	printf("hog: done\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 5 && !strcmp(argv[1], "hold"))
		return hold(strtoull(argv[2], NULL, 10), strtoull(argv[3], NULL, 10), atof(argv[4]));
	if (argc >= 4 && !strcmp(argv[1], "hog"))
		return hog(argv[2], atol(argv[3]));
	fprintf(stderr, "usage: %s hold TOTAL_MIB BLOCK_KIB SECONDS | hog MIB[,MIB...] HOLD_MS\n", argv[0]);
	return 2;
}
