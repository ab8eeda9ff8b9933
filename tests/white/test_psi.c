/* test_psi: the memory watcher of src/psi.h on its own (white-box; moved out
 * of test_cache): figures that make sense (available memory, the cgroup's
 * limit and usage, the headroom, the default margin), ticks that come, a PSI
 * trigger that can be had (also as an unprivileged user). */
#include "helper.h"
#include "psi.h"

#include <errno.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

static _Atomic int ticks;
static void tick_cb(void *arg, int level)
{
	(void)arg;
	CHECK(level >= VMO__PRESSURE_NONE && level <= VMO__PRESSURE_CRITICAL);
	atomic_fetch_add(&ticks, 1);
}

static void psi_child(void *arg)
{
	(void)arg;
	if (setgid(65534) || setuid(65534))
		_exit(3);
	struct vmo__psi *w;
	struct vmo__psi_opts o = { .poll_ms = 20 };
	if (vmo__psi_watch(&o, tick_cb, NULL, &w))
		_exit(4);
	unsigned src = vmo__psi_sources(w);
	vmo__psi_stop(w);
	_exit(src & VMO__PSI_SRC_PSI ? 0 : 5);
}

/* vmo__mem_query and the default margin: figures that make sense */
static void case_mem_query(void)
{
	struct vmo__mem m;
	CHECK_OK(vmo__mem_query(&m));
	CHECK(m.avail > 0 && m.avail != UINT64_MAX);
	CHECK(m.headroom <= m.avail);
	if (m.cg_version) {
		CHECK(m.cg_usage > 0);
		CHECK(m.cg_reclaim <= m.cg_usage);
		if (m.cg_limit != UINT64_MAX)
			CHECK(m.headroom <= m.cg_limit);
	}
	uint64_t mg = vmo__mem_default_margin();
	CHECK(mg >= (64u << 20) && mg <= (1u << 30));
	printf("memory: avail %llu MiB, cgroup v%d '%s' limit %lld MiB usage %llu MiB, headroom %llu MiB\n",
	       (unsigned long long)(m.avail >> 20), m.cg_version, vmo__mem_cgroup_dir(),
	       m.cg_limit == UINT64_MAX ? -1ll : (long long)(m.cg_limit >> 20),
	       (unsigned long long)(m.cg_usage >> 20), (unsigned long long)(m.headroom >> 20));
}

/* the watcher: ticks that come; a PSI trigger, also as uid 65534 */
static void case_watch(void)
{
	struct vmo__psi *w;
	struct vmo__psi_opts o = { .poll_ms = 20 };
	atomic_store(&ticks, 0);
	CHECK_OK(vmo__psi_watch(&o, tick_cb, NULL, &w));
	unsigned src = vmo__psi_sources(w);
	usleep(300 * 1000);
	vmo__psi_stop(w);
	int n = atomic_load(&ticks);
	CHECK(n >= 5 && n <= 40);
	printf("watcher: sources %#x, %d ticks in 300 ms\n", src, n);
	bool psi_here = access("/proc/pressure/memory", R_OK) == 0;
	if (psi_here)
		CHECK(src & VMO__PSI_SRC_PSI);
	if (psi_here && geteuid() == 0) {
		int st = t_fork_run(psi_child, NULL);
		CHECK(WIFEXITED(st));
		CHECK_EQ(WEXITSTATUS(st), 0);
	}
	CHECK_EQ(vmo__psi_watch(NULL, NULL, NULL, &w), -EINVAL);
	vmo__psi_stop(NULL);
}

int main(int argc, char **argv)
{
	return t_main(argc, argv, T_CASES({ "mem-query", case_mem_query }, { "watch", case_watch }));
}
