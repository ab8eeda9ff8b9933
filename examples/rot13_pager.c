/* SPDX-License-Identifier: MIT */
/* rot13_pager: a complete pager in a page of code -- copy it and change read().
 *
 * The "store" is a string kept ROT13-encoded.  The pager decodes it on the
 * way in (read) and encodes it on the way out (write).  The program maps the
 * object and prints it: plain text appears, though no plain copy exists until
 * a page is touched.  Then it writes through the mapping and syncs: the store
 * receives the change, encoded.  Build:  cc rot13_pager.c $(pkg-config --cflags --libs libvmo)
 */
#include <vmo.h>

#include <stdio.h>
#include <string.h>

static char store[] = "Uryyb sebz n hfre-yriry cntre! Guvf grkg jnf qrpbqrq ba svefg gbhpu.\n";

static char rot13(char c)
{
	if (c >= 'a' && c <= 'z')
		return (char)('a' + (c - 'a' + 13) % 26);
	if (c >= 'A' && c <= 'Z')
		return (char)('A' + (c - 'A' + 13) % 26);
	return c;
}

/* Called on a worker thread when a page is first touched.  off and len are
 * multiples of the object's page size; len may cover several pages (read-
 * ahead).  Fill all of buf and return 0, or return -errno: the toucher then
 * gets SIGBUS and vmo_get_error() gives that errno.  Never print zeros by
 * accident: every byte of buf must be set. */
static int rot13_read(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags)
{
	const char *s = ctx;
	size_t n = strlen(s);
	(void)flags; /* could set VMO_READ_WRITELOCK: hear of the first write */
	for (size_t i = 0; i < len; i++)
		((char *)buf)[i] = off + i < n ? rot13(s[off + i]) : 0;
	return 0;
}

/* Called to write dirty pages back (vmo_sync, vmo_return, eviction). */
static int rot13_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
	char *s = ctx;
	size_t n = strlen(s);
	for (size_t i = 0; i < len && off + i < n; i++)
		s[off + i] = rot13(((const char *)buf)[i]);
	return 0;
}

/* Called once, when the object is gone: no callback follows.  Free what
 * the pager owns here (this one owns nothing). */
static void rot13_release(void *ctx)
{
	(void)ctx;
	printf("released\n");
}

/* The table of callbacks; those left NULL get vmo's defaults. */
static const struct vmo_pager_ops rot13_ops = { .read = rot13_read, .write = rot13_write,
						.release = rot13_release };

int main(void)
{
	struct vmo_engine *eng;
	struct vmo_object *obj;
	void *p = NULL;
	/* One engine per process: a userfaultfd and its fault-service threads. */
	int rc = vmo_engine_create(NULL, &eng);
	if (rc) {
		fprintf(stderr, "vmo_engine_create: %s\n%s\n", vmo_strerror(rc), vmo_last_error_detail());
		return 1;
	}
	/* An object of one 4 KiB page (the size is rounded up to the page size;
	 * without .size, vmo would ask the pager's report_extent). */
	struct vmo_object_opts oo = { .size = sizeof store };
	if ((rc = vmo_object_create(eng, &rot13_ops, store, &oo, &obj)) ||
	    (rc = vmo_map(obj, 0, vmo_object_size(obj), VMO_PROT_READ | VMO_PROT_WRITE, &p))) {
		fprintf(stderr, "vmo: %s\n", vmo_strerror(rc));
		return 1;
	}
	fputs(p, stdout); /* the first touch faults; rot13_read fills the page */

	memcpy(p, "HELLO", 5);         /* a first write: the page becomes dirty */
	rc = vmo_sync(obj, VMO_WAIT);  /* rot13_write stores it, encoded */
	printf("store after sync: %s", rc ? vmo_strerror(rc) : store);

	struct vmo_stats st;
	if (vmo_object_stats(obj, &st) == 0)
		printf("faults=%llu pages_read=%llu\n", (unsigned long long)st.faults,
		       (unsigned long long)st.pages_read);
	/* Tear down in order: mappings, our reference, then the engine.  The
	 * last reference writes dirty pages back and calls release; a view
	 * unmapped by other means (munmap) would have vmo's thread do that
	 * later, so wait until the object is really gone before reusing what
	 * the pager uses: after vmo_object_unref_wait returns 0, nothing of
	 * vmo touches store again (-ETIMEDOUT: a view still holds it). */
	if ((rc = vmo_unmap(obj, p, vmo_object_size(obj))))
		fprintf(stderr, "vmo_unmap: %s\n", vmo_strerror(rc));
	if ((rc = vmo_object_unref_wait(obj, 5000)))
		fprintf(stderr, "vmo_object_unref_wait: %s\n", vmo_strerror(rc));
	printf("store when gone: %s", store);
	if ((rc = vmo_engine_destroy(eng)))
		fprintf(stderr, "vmo_engine_destroy: %s\n", vmo_strerror(rc));
	return rc ? 1 : 0;
}
