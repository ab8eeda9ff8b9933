/* SPDX-License-Identifier: MIT */
/* test_maps: thousands of mappings in one process: 5000 small mappings of one
 * object at varying offsets plus 100 objects, all reading the right data and
 * seeing each other's writes; unmapping gives back the address space (mincore
 * says ENOMEM, /proc/self/maps is back to where it was) and the memory (the
 * objects' memfds are closed once the last reference goes); VMO_MAP_FIXED at
 * a free address works and at an occupied one is -EEXIST with the occupant
 * untouched; a write to a read-only mapping is SIGSEGV and changes nothing. */
#include "helper.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096u
#define NMAPS 5000
#define NOBJ 100
#define BIGPG 256 /* pages of the shared object */

static int salt_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	uint64_t salt = (uint64_t)(uintptr_t)ctx;
	(void)flags;
	uint64_t *w = buf;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = t_pattern(off + i * 8) ^ salt;
	return 0;
}

static const struct vmo_pager_ops salt_ops = { .read = salt_read };

static uint64_t want(uint64_t salt, uint64_t off)
{
	return t_pattern(off) ^ salt;
}

/* Lines of /proc/self/maps (containing what, if not NULL). */
static int count_maps(const char *what)
{
	FILE *f = fopen("/proc/self/maps", "re");
	CHECK(f);
	int n = 0;
	char line[1024];
	while (fgets(line, sizeof line, f))
		n += !what || strstr(line, what);
	fclose(f);
	return n;
}

/* Open file descriptors that are vmo's memfds. */
static int count_memfds(void)
{
	DIR *d = opendir("/proc/self/fd");
	CHECK(d);
	struct dirent *e;
	int n = 0;
	while ((e = readdir(d))) {
		char path[300], target[300];
		snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
		ssize_t k = readlink(path, target, sizeof target - 1);
		if (k <= 0)
			continue;
		target[k] = 0;
		if (strstr(target, "memfd:vmo"))
			n++;
	}
	closedir(d);
	return n;
}

static bool mapped(void *p)
{
	unsigned char vec;
	if (mincore(p, PG, &vec) == 0)
		return true;
	CHECK_EQ(errno, ENOMEM);
	return false;
}

struct m {
	void *p;
	uint64_t off;
	size_t len;
	unsigned prot;
};

static void case_many_views(void)
{
	alarm(50);
	setvbuf(stdout, NULL, _IONBF, 0);
	t_sig_install();

	/* warm up: worker stacks and malloc arenas that outlive an engine */
	struct vmo_engine *eng = t_engine(2);
	{
		struct vmo_object *w;
		struct vmo_object_opts wo = { .size = PG };
		CHECK_OK(vmo_object_create(eng, &salt_ops, NULL, &wo, &w));
		void *wp = NULL;
		CHECK_OK(vmo_map(w, 0, PG, VMO_PROT_READ, &wp));
		CHECK_EQ(*(volatile uint64_t *)wp, want(0, 0));
		CHECK_OK(vmo_unmap(w, wp, PG));
		vmo_object_unref(w);
		CHECK_OK(vmo_engine_destroy(eng));
	}
	int maps0 = count_maps(NULL), fds0 = count_memfds();
	eng = t_engine(2);
	const uint64_t salt = 0x1111;
	struct vmo_object_opts oo = { .size = BIGPG * PG };
	struct vmo_object *big;
	CHECK_OK(vmo_object_create(eng, &salt_ops, (void *)(uintptr_t)salt, &oo, &big));

	/* 5000 mappings of one object at varying offsets and lengths */
	static struct m ms[NMAPS];
	uint64_t t0 = t_now_ns();
	for (int i = 0; i < NMAPS; i++) {
		uint64_t pg = ((uint64_t)i * 37) % (BIGPG - 3);
		ms[i].off = pg * PG;
		ms[i].len = (size_t)(1 + i % 3) * PG;
		ms[i].prot = i % 4 == 0 ? VMO_PROT_READ : VMO_PROT_READ | VMO_PROT_WRITE;
		int rc = vmo_map(big, ms[i].off, ms[i].len, ms[i].prot, &ms[i].p);
		if (rc) {
			fprintf(stderr, "mapping %d failed: %s\n", i, vmo_strerror(rc));
			abort();
		}
	}
	uint64_t map_ms = (t_now_ns() - t0) / 1000000;
	/* 100 more objects, one mapping each */
	static struct vmo_object *objs[NOBJ];
	static void *op[NOBJ];
	for (int i = 0; i < NOBJ; i++) {
		struct vmo_object_opts o2 = { .size = 16 * PG };
		CHECK_OK(vmo_object_create(eng, &salt_ops, (void *)(uintptr_t)(i + 1), &o2, &objs[i]));
		CHECK_OK(vmo_map(objs[i], 0, 16 * PG, VMO_PROT_READ | VMO_PROT_WRITE, &op[i]));
	}
	CHECK_EQ(count_memfds(), fds0 + NOBJ + 1);
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(big, &st));
	CHECK_EQ(st.mappings, NMAPS);
	CHECK_OK(vmo_engine_stats(eng, &st));
	CHECK_EQ(st.mappings, NMAPS + NOBJ);
	CHECK(count_maps("memfd:vmo") >= 2000); /* adjacent views may merge */

	/* every page of every mapping reads right */
	t0 = t_now_ns();
	for (int i = 0; i < NMAPS; i++) {
		const uint64_t *w = ms[i].p;
		for (size_t k = 0; k < ms[i].len / PG; k++) {
			size_t word = (size_t)(i + k) % (PG / 8);
			uint64_t off = ms[i].off + k * PG + word * 8;
			CHECK_EQ(w[k * PG / 8 + word], want(salt, off));
		}
	}
	for (int i = 0; i < NOBJ; i++) {
		const uint64_t *w = op[i];
		for (size_t k = 0; k < 16; k++)
			CHECK_EQ(w[k * PG / 8 + k], want((uint64_t)i + 1, k * PG + k * 8));
	}
	uint64_t read_ms = (t_now_ns() - t0) / 1000000;
	/* a write through one mapping is seen by every mapping of that page */
	uint64_t *w1 = ms[1].p; /* object page 37, read-write */
	CHECK(ms[1].prot & VMO_PROT_WRITE);
	w1[9] = 0xabcdabcd;
	int seen = 0;
	for (int i = 0; i < NMAPS; i++)
		if (ms[i].off <= 37 * PG && 37 * PG < ms[i].off + ms[i].len) {
			CHECK_EQ(((uint64_t *)ms[i].p)[(37 * PG - ms[i].off) / 8 + 9], 0xabcdabcd);
			seen++;
		}
	CHECK(seen > 20);
	printf("%d mappings in %llu ms, all read in %llu ms; write seen through %d mappings\n", NMAPS + NOBJ,
	       (unsigned long long)map_ms, (unsigned long long)read_ms, seen);

	/* a write to a read-only mapping: SIGSEGV, nothing changed (touched and
	 * untouched pages) */
	CHECK(ms[0].prot == VMO_PROT_READ);
	volatile uint64_t *ro = ms[0].p;
	struct t_sig info;
	CHECK_EQ(t_probe_write(ro, 1, &info), SIGSEGV);
	CHECK_EQ(info.code, SEGV_ACCERR);
	CHECK(info.addr == (void *)ro);
	CHECK_EQ(ro[0], want(salt, 0));
	struct vmo_object *o3;
	struct vmo_object_opts o3o = { .size = 4 * PG };
	CHECK_OK(vmo_object_create(eng, &salt_ops, (void *)7, &o3o, &o3));
	void *rop = NULL, *rwp = NULL;
	CHECK_OK(vmo_map(o3, 0, 4 * PG, VMO_PROT_READ, &rop));
	CHECK_EQ(t_probe_write((volatile uint64_t *)rop + PG / 8 * 2, 1, NULL), SIGSEGV); /* never touched */
	CHECK_OK(vmo_map(o3, 0, 4 * PG, VMO_PROT_READ | VMO_PROT_WRITE, &rwp));
	CHECK_EQ(((volatile uint64_t *)rwp)[PG / 8 * 2], want(7, 2 * PG));
	CHECK_EQ(((volatile uint64_t *)rop)[PG / 8 * 2], want(7, 2 * PG));

	/* VMO_MAP_FIXED: a free address works ... */
	void *hole = mmap(NULL, 8 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(hole != MAP_FAILED);
	CHECK(munmap(hole, 8 * PG) == 0);
	void *fx = hole;
	CHECK_OK(vmo_map(o3, PG, 2 * PG, VMO_PROT_READ | VMO_PROT_WRITE | VMO_MAP_FIXED, &fx));
	CHECK(fx == hole);
	CHECK_EQ(((volatile uint64_t *)fx)[PG / 8 + 3], want(7, 2 * PG + 24));
	/* ... an occupied one is -EEXIST and the occupant is untouched */
	uint64_t *anon = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(anon != MAP_FAILED);
	anon[0] = 0x7777;
	anon[PG / 8] = 0x8888;
	void *occ = anon;
	CHECK_EQ(vmo_map(o3, 0, PG, VMO_PROT_READ | VMO_MAP_FIXED, &occ), -EEXIST);
	occ = (char *)anon + PG; /* partly overlapping: starts inside, runs past */
	CHECK_EQ(vmo_map(o3, 0, 2 * PG, VMO_PROT_READ | VMO_MAP_FIXED, &occ), -EEXIST);
	occ = (char *)fx - PG; /* runs into the fixed vmo mapping */
	CHECK_EQ(vmo_map(o3, 0, 2 * PG, VMO_PROT_READ | VMO_MAP_FIXED, &occ), -EEXIST);
	CHECK_EQ(anon[0], 0x7777);
	CHECK_EQ(anon[PG / 8], 0x8888);
	CHECK_EQ(((volatile uint64_t *)fx)[3], want(7, PG + 24));
	CHECK_OK(vmo_object_stats(o3, &st));
	CHECK_EQ(st.mappings, 3);
	munmap(anon, 2 * PG);

	/* unmap everything, in a scattered order; each address is gone at once */
	for (int k = 0; k < NMAPS; k++) {
		int i = (int)(((uint64_t)k * 2971) % NMAPS);
		CHECK(mapped(ms[i].p));
		CHECK_OK(vmo_unmap(big, ms[i].p, ms[i].len));
		for (size_t j = 0; j < ms[i].len / PG; j++)
			CHECK(!mapped((char *)ms[i].p + j * PG));
	}
	CHECK_OK(vmo_object_stats(big, &st));
	CHECK_EQ(st.mappings, 0);
	for (int i = 0; i < NOBJ; i++) {
		CHECK_OK(vmo_unmap(objs[i], op[i], 16 * PG));
		CHECK(!mapped(op[i]));
	}
	CHECK_OK(vmo_unmap(o3, rop, 4 * PG));
	CHECK_OK(vmo_unmap(o3, rwp, 4 * PG));
	CHECK_OK(vmo_unmap(o3, fx, 2 * PG));
	CHECK(!mapped(fx));
	CHECK_OK(vmo_engine_stats(eng, &st));
	CHECK_EQ(st.mappings, 0);
	CHECK_EQ(count_maps("memfd:vmo"), 0); /* no view of any object is left */
	/* the memory goes with the last reference */
	CHECK_EQ(count_memfds(), fds0 + NOBJ + 2);
	vmo_object_unref(big);
	for (int i = 0; i < NOBJ; i++)
		vmo_object_unref(objs[i]);
	vmo_object_unref(o3);
	CHECK_EQ(count_memfds(), fds0);
	CHECK_OK(vmo_engine_destroy(eng));
	int maps1 = count_maps(NULL);
	printf("/proc/self/maps: %d lines before, %d after\n", maps0, maps1);
#ifndef __SANITIZE_ADDRESS__ /* ASan's allocator maps regions of its own */
	CHECK(maps1 <= maps0 + 16); /* thread stacks, arenas, a PSI watcher may stay; not one per object */
#endif
}

/* A view the program splits into several VMAs (mprotect, madvise: here
 * MADV_HUGEPAGE on a middle part, and read-only a part further on): a
 * read-ahead cluster that crosses a boundary cannot be copied in one
 * UFFDIO_COPY (the kernel takes one VMA at a time, -ENOENT); the faulting
 * page still comes in, with the right data, and nothing spins.  (It did:
 * every fault came back for ever.) */
static void case_split_vma(void)
{
	struct vmo_engine *eng = t_shared_engine(2);
	const uint64_t npg = 2048, salt = 0x5e11;
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, &salt_ops, (void *)(uintptr_t)salt,
				   &(struct vmo_object_opts){ .size = npg * PG, .readahead_max = 64 }, &obj));
	char *v = NULL;
	CHECK_OK(vmo_map(obj, 0, npg * PG, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&v));
	int before = count_maps(NULL);
	/* boundaries at pages 100, 612 (advice) and 1000, 1100 (protection) */
	CHECK_OK(madvise(v + 100 * PG, 512 * PG, MADV_HUGEPAGE));
	CHECK_OK(mprotect(v + 1000 * PG, 100 * PG, PROT_READ));
	CHECK(count_maps(NULL) >= before + 2);
	alarm(30);
	for (uint64_t pg = 0; pg < npg; pg++) {
		uint64_t got = *(volatile uint64_t *)(v + pg * PG + 8);
		if (got != want(salt, pg * PG + 8)) {
			fprintf(stderr, "page %llu: %#llx\n", (unsigned long long)pg, (unsigned long long)got);
			CHECK(0);
		}
	}
	alarm(0);
	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(obj, &st));
	printf("faults %llu, pages read %llu for %llu pages\n", (unsigned long long)st.faults,
	       (unsigned long long)st.pages_read, (unsigned long long)npg);
	CHECK(st.faults < npg / 4); /* read-ahead still works away from the boundaries */
	CHECK_OK(vmo_unmap(obj, v, npg * PG));
	vmo_object_unref(obj);
}

int main(int argc, char **argv)
{
	return t_main(argc, argv, T_CASES({ "many-views", case_many_views }, { "split-vma", case_split_vma }));
}
