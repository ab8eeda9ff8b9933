/* SPDX-License-Identifier: MIT */
/* A program built against an installed vmo (tests/test_install.sh): an
 * object over the memory pager, mapped, read and written back. */
#include <vmo.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
	static char data[4 * 4096];
	memset(data, 'v', sizeof data);
	const struct vmo_pager_ops *ops;
	void *ctx;
	struct vmo_engine *eng;
	struct vmo_object *obj;
	char *p = NULL;
	int rc;
	if ((rc = vmo_engine_create(NULL, &eng))) {
		fprintf(stderr, "vmo_engine_create: %s\n", vmo_strerror(rc));
		return rc == -VMO_ENOUFFD ? 77 : 1;
	}
	if ((rc = vmo_pager_mem(data, sizeof data, &ops, &ctx)) ||
	    (rc = vmo_object_create(eng, ops, ctx, &(struct vmo_object_opts){ .size = sizeof data }, &obj)) ||
	    (rc = vmo_map(obj, 0, sizeof data, VMO_PROT_READ | VMO_PROT_WRITE, (void **)&p))) {
		fprintf(stderr, "vmo: %s\n", vmo_strerror(rc));
		return 1;
	}
	int ok = p[4096 + 7] == 'v';
	p[2 * 4096] = 'w';
	if ((rc = vmo_sync(obj, VMO_WAIT))) {
		fprintf(stderr, "vmo_sync: %s\n", vmo_strerror(rc));
		return 1;
	}
	ok = ok && data[2 * 4096] == 'w';
	vmo_unmap(obj, p, sizeof data);
	vmo_object_unref(obj);
	if ((rc = vmo_engine_destroy(eng))) {
		fprintf(stderr, "vmo_engine_destroy: %s\n", vmo_strerror(rc));
		return 1;
	}
	printf("%s %s\n", vmo_version(), ok ? "ok" : "WRONG DATA");
	return ok ? 0 : 1;
}
