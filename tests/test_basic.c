/* SPDX-License-Identifier: MIT */
/* test_basic: one object over the memory pager, mapped read-write; every page
 * reads the pager's data; writes are visible through a second mapping at a
 * different offset; stats count what happened. */
#include "helper.h"

#include <sys/mman.h>

static void case_two_views(void)
{
	struct vmo_engine *eng = t_engine(2);
	const size_t size = 4 << 20;
	uint64_t *data = malloc(size);
	CHECK(data);
	for (size_t i = 0; i < size / 8; i++)
		data[i] = t_pattern(i * 8);
	const struct vmo_pager_ops *ops;
	void *ctx;
	CHECK_OK(vmo_pager_mem(data, size, &ops, &ctx));
	struct vmo_object *obj;
	CHECK_OK(vmo_object_create(eng, ops, ctx, NULL, &obj));
	CHECK_EQ(vmo_object_size(obj), size);

	void *a = NULL, *b = NULL;
	CHECK_OK(vmo_map(obj, 0, size, VMO_PROT_READ | VMO_PROT_WRITE, &a));
	CHECK_OK(vmo_map(obj, 1 << 20, 2 << 20, VMO_PROT_READ, &b));
	uint64_t *pa = a, *pb = b;
	for (size_t i = 0; i < size / 8; i += 512)
		CHECK_EQ(pa[i], t_pattern(i * 8));
	for (size_t i = 0; i < (2 << 20) / 8; i += 512)
		CHECK_EQ(pb[i], t_pattern((1 << 20) + i * 8));
	/* a write through a is seen through b */
	pa[(1 << 20) / 8 + 3] = 0x1234;
	CHECK_EQ(pb[3], 0x1234);

	struct vmo_stats st;
	CHECK_OK(vmo_object_stats(obj, &st));
	printf("faults=%llu missing=%llu minor=%llu wp=%llu read=%llu ra=%llu resident=%llu dirty=%llu\n",
	       (unsigned long long)st.faults, (unsigned long long)st.missing_faults,
	       (unsigned long long)st.minor_faults, (unsigned long long)st.wp_faults,
	       (unsigned long long)st.pages_read, (unsigned long long)st.readahead,
	       (unsigned long long)st.resident, (unsigned long long)st.dirty);
	CHECK_EQ(st.resident, size);
	CHECK_EQ(st.pages_read, size / 4096);
	CHECK(st.readahead > 0);
	CHECK_EQ(st.mappings, 2);
	CHECK(st.dirty >= 4096);

	CHECK_OK(vmo_unmap(obj, a, size));
	CHECK_OK(vmo_unmap(obj, b, 2 << 20));
	vmo_object_unref(obj);
	CHECK_OK(vmo_engine_destroy(eng));
	free(data);
}

int main(int argc, char **argv)
{
	return t_main(argc, argv, T_CASES({ "two-views", case_two_views }));
}
