/* SPDX-License-Identifier: MIT */
/* vmo.h - memory objects paged by user-level pagers, on Linux userfaultfd.
 *
 * The one public header of libvmo (with vmo_version.h, which CMake generates
 * next to it).  Conventions:
 *   - every fallible call returns 0 (or a count >= 0) on success and -errno on
 *     failure; the global errno is never the way a result is reported.  vmo's
 *     own codes (-VMO_E*) lie outside the errno space, from 4096 up, where no
 *     errno can collide with them (see VMO_EBASE);
 *   - handles are opaque; option structs are zero-initialised for defaults and
 *     unknown flag bits are rejected with -EINVAL;
 *   - structs vmo fills (the stats) begin with their size and version and
 *     grow only at their end: the call takes the caller's size and fills what
 *     both sides know (see VMO_STATS_VERSION);
 *   - the library prints nothing unless a log function is set or VMO_LOG is
 *     set in the environment (error, warn, info, debug).
 *
 * Names.  A call on a handle is vmo_<handle>_<verb>: vmo_engine_*,
 * vmo_object_*, vmo_cache_*, and vmo_pager_<kind> for the shipped pagers; a
 * call on no handle is vmo_<verb> (vmo_strerror, vmo_last_error_detail,
 * vmo_set_log, vmo_version).  One closed exception: the calls a program makes
 * on an object's pages that come from libpager and the VM (pager_sync,
 * pager_return, pager_flush, pager_get_error, vm_map) keep that verb with
 * the object implied: vmo_map, vmo_unmap, vmo_sync, vmo_return, vmo_discard
 * (and their _range forms), vmo_get_error, vmo_clear_error.  They are the
 * calls a program makes most and the names a reader of Hurd code looks for
 * (docs/names.md maps them one to one), and no engine or cache call shares
 * those verbs.  The list does not grow: any new verb on an object is
 * vmo_object_<verb>, whatever its libpager name (vmo_object_shutdown,
 * vmo_object_supply).  A struct vmo fills is taken by <call>_sized(...,
 * size), behind a macro named <call> that passes the size.
 *
 * See docs/api.md for every call's arguments, errors and thread-safety, and
 * docs/names.md for the Hurd libpager / Mach names each one corresponds to.
 */
#ifndef VMO_H
#define VMO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(VMO_BUILDING) && defined(__GNUC__)
#define VMO_API __attribute__((visibility("default")))
#else
#define VMO_API
#endif

/* VMO_VERSION_MAJOR, _MINOR, _PATCH and VMO_VERSION_STRING ("0.1.0"):
 * generated from CMakeLists.txt's project(vmo VERSION ...), where the version
 * is set, and installed next to this header. */
#include "vmo_version.h"

/* A version as one number, for #if VMO_VERSION >= VMO_VERSION_NUMBER(0, 2, 0). */
#define VMO_VERSION_NUMBER(major, minor, patch) (((major) << 16) | ((minor) << 8) | (patch))
#define VMO_VERSION VMO_VERSION_NUMBER(VMO_VERSION_MAJOR, VMO_VERSION_MINOR, VMO_VERSION_PATCH)

struct vmo_engine;
struct vmo_object;

/* ------------------------------------------------------------------------ */
/* Version, errors and logging                                              */

/* The version of the library the program runs with, as "0.1.0";
 * VMO_VERSION_STRING is the one it was compiled against. */
VMO_API const char *vmo_version(void);

/* vmo's own error codes, returned negated like errno values.  They lie
 * outside the errno space: VMO_EBASE is Linux's MAX_ERRNO + 1, and every
 * errno a system call or libc can give is below it (glibc's are below 200),
 * so a result is either -errno or -VMO_E*, never both.  They are never stored
 * in errno, strerror() does not know them (vmo_strerror does), and a pager's
 * callbacks return errno values, not these.  New codes are added from
 * VMO_EBASE up and never reused. */
#define VMO_EBASE 4096
#define VMO_ENOUFFD 4096   /* userfaultfd cannot be opened here (see vmo_last_error_detail) */
#define VMO_ESHUTDOWN 4097 /* object was shut down */

/* A description of err: an errno or a VMO_E* code, negative or positive.
 * 0 is "success"; the VMO_E* codes have their own texts; anything else is
 * strerror's.  strerror() does not know the VMO_E* codes. */
VMO_API const char *vmo_strerror(int err);
/* The symbolic name of err (negative or positive): "EIO", "ENOSPC",
 * "VMO_ENOUFFD", "0" for 0, "unknown" for a number that names nothing.
 * Never NULL; a constant string.  Since 0.4. */
VMO_API const char *vmo_err_name(int err);

/* The detailed reason for the last failure of a create call in this thread
 * (engine, object, cache), for instance which sysctl or device permission
 * blocks userfaultfd. */
VMO_API const char *vmo_last_error_detail(void);

enum vmo_log_level { VMO_LOG_ERROR = 0, VMO_LOG_WARN, VMO_LOG_INFO, VMO_LOG_DEBUG };
typedef void (*vmo_log_fn)(void *arg, enum vmo_log_level level, const char *msg);

/* Set the process-wide log function (NULL: back to the VMO_LOG variable). */
VMO_API void vmo_set_log(vmo_log_fn fn, void *arg, enum vmo_log_level max_level);

/* ------------------------------------------------------------------------ */
/* Engines: a userfaultfd, a pool of fault-service workers, a table of maps  */

#define VMO_ENGINE_NO_WORKERS (1u << 0)  /* create without workers: start later */
#define VMO_ENGINE_NO_PRESSURE (1u << 1) /* ignore memory pressure (PSI) */
/* Least privilege: try a UFFD_USER_MODE_ONLY userfaultfd first (a full one
 * only if that cannot be had).  System calls that touch a page of a mapping
 * that needs vmo (not yet supplied, not yet mapped in that view, or clean and
 * write-protected) then fail with EFAULT instead of waiting. */
#define VMO_ENGINE_USER_MODE_ONLY (1u << 2)
/* Asynchronous dirty tracking (UFFD_FEATURE_WP_ASYNC + PAGEMAP_SCAN): a first
 * write costs no trap; dirty pages are collected when written back.  Pagers
 * with an unlock callback are refused (-EINVAL): nobody is asked.  To never
 * lose a write, a page evicted from an object with writable mappings is
 * written back first (it cannot be known clean): more writes on eviction.
 * -EOPNOTSUPP where the kernel lacks WP_ASYNC or PAGEMAP_SCAN. */
#define VMO_ENGINE_DIRTY_ASYNC (1u << 3)
/* Self-service faults (UFFD_FEATURE_SIGBUS, Linux 4.14): the thread that
 * touches a page of a mapping in this process serves the fault itself, in
 * vmo's SIGBUS handler, instead of waking a worker and sleeping until it
 * answers: no wake-up on the fault path.  The pager callbacks then run in
 * a signal handler, so only objects created with VMO_OBJ_SIGNAL_SAFE are
 * served that way; the faults of other objects are handed to a worker from
 * the handler (as slow as the default path, never wrong).  What it costs
 * (docs/api.md, Self-service faults): system calls that touch a page vmo
 * must supply fail with EFAULT (no VMO_FEAT_KERNEL_FAULTS); a thread must
 * not block SIGBUS while it touches a mapping (the kernel would kill the
 * process); a program's own SIGBUS handler installed after the engine
 * (and after the last vmo_map) must call vmo_handle_sigbus() first.
 * Needs x86-64 (the fault's error code tells a write-protect fault from a
 * missing page): -EOPNOTSUPP elsewhere, or where the kernel lacks it. */
#define VMO_ENGINE_SELF_SERVICE (1u << 4)

struct vmo_engine_opts {
	uint32_t flags;      /* VMO_ENGINE_* */
	unsigned workers;    /* fault-service threads; 0 = default (2) */
	uint64_t budget;     /* resident-byte cap over all objects (high water); 0 = none */
	uint64_t budget_low; /* evict down to this (low water); 0 = budget * 7/8 */
	uint64_t reserved[5];
};

VMO_API int vmo_engine_create(const struct vmo_engine_opts *opts, struct vmo_engine **out);
/* Stops the workers and frees the engine.  Every object must have been
 * released (-EBUSY otherwise, and nothing is changed). */
VMO_API int vmo_engine_destroy(struct vmo_engine *eng);
/* Start the worker threads (after VMO_ENGINE_NO_WORKERS); -EALREADY if running. */
VMO_API int vmo_engine_start(struct vmo_engine *eng);
/* Block until every fault a worker has begun to serve is served; faults not
 * yet begun (even if already read from the userfaultfd) wait until
 * vmo_engine_resume().  Nests. */
VMO_API int vmo_engine_inhibit(struct vmo_engine *eng);
VMO_API int vmo_engine_resume(struct vmo_engine *eng);

/* Change the engine's budget (high, low water; low 0 = high * 7/8; high 0 =
 * no cap).  Pages above it are evicted, in the background and by the workers
 * before they supply more.  Dirty pages that cannot be written back (no write
 * callback, or no tracking) cannot be evicted: they may keep an object above
 * its budget. */
VMO_API int vmo_engine_set_budget(struct vmo_engine *eng, uint64_t high, uint64_t low);

/* What the running kernel offers, as VMO_FEAT_* bits. */
#define VMO_FEAT_MINOR (1u << 0)    /* MINOR faults on shmem (UFFDIO_CONTINUE) */
#define VMO_FEAT_WP (1u << 1)       /* write-protect on shmem */
#define VMO_FEAT_POISON (1u << 2)   /* UFFDIO_POISON */
#define VMO_FEAT_MOVE (1u << 3)     /* UFFDIO_MOVE */
#define VMO_FEAT_WP_ASYNC (1u << 4) /* UFFD_FEATURE_WP_ASYNC */
#define VMO_FEAT_PAGEMAP_SCAN (1u << 5)
#define VMO_FEAT_THREAD_ID (1u << 6)
#define VMO_FEAT_KERNEL_FAULTS (1u << 7) /* system calls on unsupplied pages wait */
#define VMO_FEAT_CONTINUE_WP (1u << 8)   /* UFFDIO_CONTINUE_MODE_WP (6.5) */
#define VMO_FEAT_EVENTS (1u << 9)        /* munmap/mremap of a view are reported (UNMAP/REMAP events) */
#define VMO_FEAT_SIGBUS (1u << 10)       /* UFFD_FEATURE_SIGBUS (4.14): VMO_ENGINE_SELF_SERVICE */
VMO_API unsigned vmo_engine_features(const struct vmo_engine *eng);

/* For a program that installs its own SIGBUS handler while a
 * VMO_ENGINE_SELF_SERVICE engine exists (vmo installs its handler when
 * such an engine is made, and again at each vmo_map if it was replaced,
 * passing on what is not its own to the handler it found): call this
 * first, with the handler's arguments (info is its siginfo_t *: void * here,
 * so that vmo.h needs no POSIX feature macro).  1: the signal was a fault vmo
 * served (return from the handler: the access runs again); 0: not vmo's
 * (a pager error on a vmo page too: handle it as a SIGBUS). */
VMO_API int vmo_handle_sigbus(int sig, void *info, void *ucontext);

/* ------------------------------------------------------------------------ */
/* Pagers                                                                   */

/* Flags the read callback may set in *flags. */
/* Supply write-locked (libpager's write_lock): the first write to these pages
 * asks the unlock callback, once per read.  Without it, a first write makes
 * the page dirty without asking. */
#define VMO_READ_WRITELOCK (1u << 0)

/* A pager: callbacks and the context pointer passed to each.  Offsets and
 * lengths are in bytes, multiples of the object's page size; a callback may
 * be asked for several pages at once (read-ahead, writeback clusters).
 * Callbacks run on vmo's threads (fault workers, the evictor) or on the
 * thread of a call that needs them (sync/return/discard, set_budget,
 * shutdown, the last unref or unmap, report_extent in create); several may
 * run at once.
 * They must not touch the object's own mappings.  They return 0 or -errno. */
struct vmo_pager_ops {
	/* Fill buf[0..len) with the data at off.  Required.  Or answer
	 * -EINPROGRESS: the range will be given later, from any thread, with
	 * vmo_object_supply (or failed with vmo_object_supply_error); buf is
	 * then not looked at.  Needs VMO_FEAT_MINOR. */
	int (*read)(void *ctx, uint64_t off, void *buf, size_t len, unsigned *flags);
	/* Store buf[0..len) at off.  NULL: the object's data is never written
	 * back (dirty pages are kept until discarded). */
	int (*write)(void *ctx, uint64_t off, const void *buf, size_t len);
	/* A clean range supplied with VMO_READ_WRITELOCK is about to be written.
	 * May refuse (-ENOSPC, -EDQUOT, any -errno): the writer gets SIGBUS and
	 * vmo_get_error() the errno.  Needs VMO_FEAT_WP and VMO_FEAT_MINOR
	 * (vmo_object_create: -EOPNOTSUPP). */
	int (*unlock)(void *ctx, uint64_t off, size_t len);
	/* The range was dropped from memory: clean, written back, or thrown away
	 * by vmo_discard. */
	void (*notify_evict)(void *ctx, uint64_t off, size_t len);
	/* The object's size in bytes, when vmo_object_opts.size is 0. */
	int (*report_extent)(void *ctx, uint64_t *size);
	/* Make everything write() stored durable (fsync).  NULL: nothing to do. */
	int (*sync)(void *ctx);
	/* The last reference to the object is gone; no callback follows. */
	void (*release)(void *ctx);
};

/* ------------------------------------------------------------------------ */
/* Objects                                                                  */

#define VMO_OBJ_NO_READAHEAD (1u << 0) /* serve exactly the faulting page */
/* Mach's may_cache: at the program's last vmo_object_unref the object is
 * written back but kept, pages and all, under the engine's budget; a later
 * vmo_object_create with the same name, ops and ctx gets it back (no pager
 * reads for what is still in memory).  Released (the pager's release
 * called) when the engine is destroyed, or when may_cache is turned off
 * (vmo_object_change_attributes) before the last unref.  Needs a name. */
#define VMO_OBJ_MAY_CACHE (1u << 1)
/* Objects whose extent moves (with opts.max_size): the object spans
 * offsets [0, max_size) for mappings, of which a window is valid: [0, size)
 * growing up (a heap's break), or [max_size - size, max_size) growing down
 * (a stack).  A fault in a mapping outside the window grows the window to
 * cover it with GROWS_UP (past its end) or GROWS_DOWN (below its start),
 * within max_size; any other access outside the window is SIGBUS, and an
 * address outside the mapping is the kernel's SIGSEGV.  vmo_object_size
 * gives the window's length. */
#define VMO_OBJ_GROWS_UP (1u << 2)
#define VMO_OBJ_GROWS_DOWN (1u << 3)
/* The pager's callbacks are async-signal-safe (they may run in a signal
 * handler, on the thread that touched the page: VMO_ENGINE_SELF_SERVICE).
 * vmo_pager_file's and vmo_pager_mem's are: pread/pwrite and memcpy.  Such
 * a callback must not take a lock that the program may hold while it
 * touches the object's mappings, nor allocate with malloc. */
#define VMO_OBJ_SIGNAL_SAFE (1u << 4)

struct vmo_object_opts {
	uint32_t flags;        /* VMO_OBJ_* */
	uint32_t page_size;    /* 4096 << k, up to 2 MiB; 0 = 4096 */
	uint64_t size;         /* bytes; 0 = ask report_extent */
	uint32_t readahead_max;/* pages per fault at most; 0 = default (64) */
	uint32_t prot;         /* VMO_PROT_* every mapping must stay within; 0 = read and write */
	uint64_t budget;       /* resident-byte cap for this object (high water); 0 = none */
	uint64_t budget_low;   /* evict down to this; 0 = budget * 7/8 */
	const char *name;      /* up to 63 bytes, copied; NULL = none (a microkernel vm_object's vo_name) */
	uint64_t max_size;     /* bytes the object may grow to (vmo_object_resize, VMO_OBJ_GROWS_*); 0 = size */
	uint64_t reserved[2];
};

/* Create an object paged by ops/ctx.  ops must outlive the object.  The new
 * object holds one reference, owned by the caller.  On failure release is
 * not called: ctx is still the caller's. */
VMO_API int vmo_object_create(struct vmo_engine *eng, const struct vmo_pager_ops *ops, void *ctx,
			      const struct vmo_object_opts *opts, struct vmo_object **out);
/* As vmo_object_create, with a context of ctx_size bytes allocated (zeroed)
 * by vmo and freed after the pager's release: libpager's
 * pager_create_alloc.  vmo_object_ctx gives it. */
VMO_API int vmo_object_create_alloc(struct vmo_engine *eng, const struct vmo_pager_ops *ops, size_t ctx_size,
				    const struct vmo_object_opts *opts, struct vmo_object **out);
/* libpager's pager_change_attributes: VMO_OBJ_MAY_CACHE on or off (in
 * flags; other bits -EINVAL), and readahead_max (0: unchanged). */
VMO_API int vmo_object_change_attributes(struct vmo_object *obj, uint32_t flags, uint32_t readahead_max);
/* Resize the object's window (see VMO_OBJ_GROWS_*; for another object its
 * size) to new_size bytes (rounded up to the page size; 0: ask the pager's
 * report_extent again), within opts.max_size (-EFBIG beyond).  Growing
 * makes new pages readable from the pager; shrinking drops the pages left
 * out (dirty ones unwritten, as a truncate) and makes every access to them
 * through a mapping SIGBUS (-EBUSY if one of them is pinned, or the object
 * has clones). */
VMO_API int vmo_object_resize(struct vmo_object *obj, uint64_t new_size);
/* A copy-on-write clone of src (a microkernel vm_object's duplicate_cow): it sees src as
 * it was at this moment; later writes on either side never show through
 * (src's first write to a page the clone has not read yet gives the clone
 * that page first).  ops/ctx: the clone's own pager (read and write; no
 * unlock), to which its pages are written back and from which those are
 * read again; NULL: anonymous (its pages stay in memory).  opts: as for
 * vmo_object_create, with size and page size 0 (src's).  Costs what src
 * holds dirty (it is written back first), not its size.  src must track
 * writes (-EOPNOTSUPP: a pager with a write callback, write-protect faults,
 * UFFDIO_CONTINUE_MODE_WP: Linux 6.5); clones of clones need the first
 * clone to have a pager.  The clone holds a reference on src (the program
 * may drop its own first); src cannot shrink while it has clones. */
VMO_API int vmo_object_clone(struct vmo_object *src, const struct vmo_pager_ops *ops, void *ctx,
			     const struct vmo_object_opts *opts, struct vmo_object **out);
/* The object's name ("" if none). */
VMO_API const char *vmo_object_name(const struct vmo_object *obj);
VMO_API void vmo_object_ref(struct vmo_object *obj);
/* Drop a reference.  The last one (mappings hold one each) writes dirty
 * pages back (as vmo_object_shutdown), then calls release.  The program's
 * last one, with no view left, waits for vmo's short-lived references (a
 * fault in flight, the evictor) so that this happens on the calling thread:
 * on return nothing of vmo touches ctx again. */
VMO_API void vmo_object_unref(struct vmo_object *obj);
/* Drop the caller's reference, as vmo_object_unref, then wait until the
 * object is gone: its dirty pages written back, release returned and its
 * memory freed, whichever thread drops the last reference (views the program
 * still has keep it: the last vmo_unmap, or munmap, lets it go).  timeout_ms
 * < 0: no limit; 0: do not wait.  Returns 0 once gone; -ETIMEDOUT if not yet
 * (the reference is dropped all the same: obj must not be used again, and
 * the object goes with its last view); 1 if a VMO_OBJ_MAY_CACHE object was
 * kept in the engine's cache instead (release runs when it leaves it);
 * -EDEADLK, with nothing dropped, on one of vmo's threads (a pager
 * callback); -EINVAL for NULL.  Since 0.5. */
VMO_API int vmo_object_unref_wait(struct vmo_object *obj, int timeout_ms);
/* Refuse further paging (libpager's pager_shutdown): writes dirty pages back
 * (returning that error, if any), waits for callbacks in flight, then every
 * fault on a page not in memory gets SIGBUS, and a first write to a
 * write-locked page too.  Pages in memory stay readable until unmapped.
 * Idempotent. */
VMO_API int vmo_object_shutdown(struct vmo_object *obj);
VMO_API uint64_t vmo_object_size(const struct vmo_object *obj);
VMO_API size_t vmo_object_page_size(const struct vmo_object *obj);
VMO_API void *vmo_object_ctx(const struct vmo_object *obj);

/* Asynchronous supply (Mach's memory_object_data_supply, Hurd's
 * pager_offer_page): give the data of [off, off+len) that a read answered
 * -EINPROGRESS for, from any thread.  Pages of the range not waiting for a
 * supply (in memory, never asked for, supplied already) are left as they
 * are.  flags: VMO_READ_WRITELOCK, as a read's.  off and len: multiples of
 * the page size.  0, -EINVAL, -VMO_ESHUTDOWN (the object was shut down:
 * the data is not kept), or -errno of writing it into memory (the waiting
 * threads then fault again: a new read). */
VMO_API int vmo_object_supply(struct vmo_object *obj, uint64_t off, size_t len, const void *buf, unsigned flags);
/* Fail the pages of [off, off+len) waiting for a supply with err (a
 * negative errno), as a failed read: SIGBUS to the threads that touch
 * them, vmo_get_error() says err, until vmo_clear_error. */
VMO_API int vmo_object_supply_error(struct vmo_object *obj, uint64_t off, size_t len, int err);

/* The pager's errno for the page at off if its last read (or unlock) failed,
 * 0 if none, -EINVAL if off is past the end. */
VMO_API int vmo_get_error(struct vmo_object *obj, uint64_t off);
/* Forget a failure: the page at off will be asked of the pager again. */
VMO_API int vmo_clear_error(struct vmo_object *obj, uint64_t off);

VMO_API int vmo_object_set_budget(struct vmo_object *obj, uint64_t high, uint64_t low);

/* ------------------------------------------------------------------------ */
/* Writeback (Hurd pager_sync / pager_return / pager_flush)                 */

/* Return when done.  Without it the work is queued to the engine's
 * background thread, or, when the object's queue is full, done right away. */
#define VMO_WAIT (1u << 0)
#define VMO_PUNCH (1u << 1) /* vmo_discard*: the store's copy too (a hole: zeros) */

/* Write dirty pages back through the pager and keep them in memory.  With
 * VMO_WAIT, returns after every byte written before the call is in the store
 * (write callbacks, then the pager's sync hook).  On a failed write it still
 * tries every other run, skips the sync hook and returns the first error; the
 * failed pages stay dirty and resident and the next sync retries them. */
VMO_API int vmo_sync(struct vmo_object *obj, unsigned flags);
VMO_API int vmo_sync_range(struct vmo_object *obj, uint64_t off, uint64_t len, unsigned flags);
/* Write dirty pages back, then drop every page of the range from memory. */
VMO_API int vmo_return(struct vmo_object *obj, unsigned flags);
VMO_API int vmo_return_range(struct vmo_object *obj, uint64_t off, uint64_t len, unsigned flags);
/* Drop pages WITHOUT writing them back: modifications are lost, the next
 * touch asks the pager again.  Also clears recorded errors in the range.
 * With VMO_PUNCH the store's copy goes too (fallocate's PUNCH_HOLE, NBD's
 * WRITE_ZEROES, a swap slot freed): the range reads as zeros after.  Only
 * the stores vmo ships can (file, memory, zero, swap, compressed, NBD, by
 * URI): -EOPNOTSUPP for another pager, and nothing is dropped. */
VMO_API int vmo_discard(struct vmo_object *obj, unsigned flags);
VMO_API int vmo_discard_range(struct vmo_object *obj, uint64_t off, uint64_t len, unsigned flags);

/* ------------------------------------------------------------------------ */
/* Mappings                                                                 */

#define VMO_PROT_READ (1u << 0)
#define VMO_PROT_WRITE (1u << 1)
#define VMO_MAP_FIXED (1u << 8) /* place at *addr; -EEXIST if anything is mapped there */

/* Map [off, off+len) of obj; both multiples of the object's page size.  The
 * mapping holds a reference on the object.  *addr receives the address (with
 * VMO_MAP_FIXED it gives it).  Mappings are not inherited by fork(): the
 * child has no mapping there (MADV_DONTFORK), never silent zeros, unless
 * vmo_inherit says otherwise. */
VMO_API int vmo_map(struct vmo_object *obj, uint64_t off, size_t len, unsigned flags, void **addr);
/* Unmap a whole mapping made by vmo_map (addr and len as returned/given). */
VMO_API int vmo_unmap(struct vmo_object *obj, void *addr, size_t len);

/* What a child made by fork() gets of a mapping (Mach's vm_inherit):
 *   VMO_INHERIT_NONE   nothing (the default): no mapping there, SIGSEGV;
 *   VMO_INHERIT_COPY   a copy-on-write clone of the object as it was when
 *                      fork() was called: neither side sees the other's
 *                      later writes (vmo_object_clone's requirements);
 *   VMO_INHERIT_SHARE  the object itself: each side sees the other's writes.
 * The child's mapping is served by this process's engine; when this process
 * dies or destroys the engine, pages the child has in memory stay, a page it
 * never got is SIGBUS.  fork() (not posix_spawn or vfork) does the work, in
 * pthread_atfork handlers; a failure there leaves the child without the
 * mapping and is logged.  addr, len: a whole mapping made by vmo_map.
 * -EINVAL, -EOPNOTSUPP (COPY: the object does not track writes, or no
 * UFFDIO_CONTINUE_MODE_WP; any: VMO_ENGINE_DIRTY_ASYNC), -ENOMEM.
 * docs/api.md, "fork". */
#define VMO_INHERIT_NONE 0
#define VMO_INHERIT_COPY 1
#define VMO_INHERIT_SHARE 2
VMO_API int vmo_inherit(struct vmo_object *obj, void *addr, size_t len, int inherit);

/* ------------------------------------------------------------------------ */
/* Object I/O without a mapping (Hurd's pager_memcpy), errors by range,     */
/* offer and prefetch                                                       */

/* Copy len bytes between buf and the object at off (any alignment): to the
 * object with VMO_MEMCPY_TO_OBJECT, from it otherwise.  Pages not in memory
 * are read from the pager (read ahead within the range) as a fault would;
 * written pages become dirty as by a write through a view (the pager's
 * unlock asked first where it wants that).  A page the pager fails stops
 * the copy: the errno is returned and *done (may be NULL) says how many
 * bytes were copied before it; never a SIGBUS.  0 when all were. */
#define VMO_MEMCPY_TO_OBJECT (1u << 0)
VMO_API int vmo_memcpy(struct vmo_object *obj, uint64_t off, void *buf, size_t len, unsigned flags, size_t *done);
/* The same as read(2)/write(2) would say it: the bytes copied (short when a
 * page failed: vmo_get_error at off + the count tells why), or -errno when
 * none were. */
VMO_API ssize_t vmo_object_read(struct vmo_object *obj, uint64_t off, void *buf, size_t len);
VMO_API ssize_t vmo_object_write(struct vmo_object *obj, uint64_t off, const void *buf, size_t len);
/* Copy len bytes from src at soff to dst at doff (through a buffer; the
 * two ranges of one object must not overlap); *done as vmo_memcpy. */
VMO_API int vmo_object_copy(struct vmo_object *dst, uint64_t doff, struct vmo_object *src, uint64_t soff,
			    uint64_t len, size_t *done);
/* Move whole pages from src to dst: dst gets the data (dirty), src's range
 * is discarded (absent: read from its pager again if touched).  The data is
 * copied: no kernel call moves page-cache pages between files. */
VMO_API int vmo_object_transfer(struct vmo_object *dst, uint64_t doff, struct vmo_object *src, uint64_t soff,
				uint64_t len);
/* Fail whole pages [off, off+len) with err (a negative errno): their data
 * goes (dirty or not), every access gets SIGBUS and the API err
 * (vmo_get_error, vmo_memcpy), until they are supplied again
 * (vmo_object_offer) or the error is cleared (vmo_clear_error,
 * vmo_discard). */
VMO_API int vmo_object_fail(struct vmo_object *obj, uint64_t off, uint64_t len, int err);
/* Offer whole pages nobody asked for (Mach's data_supply, libpager's
 * pager_offer_page): installed where absent (or failed), ignored where
 * present or on their way in.  VMO_OFFER_PRECIOUS: dirty, so written back
 * before they are dropped; else clean (droppable).  VMO_READ_WRITELOCK as
 * for a read. */
#define VMO_OFFER_PRECIOUS (1u << 1)
VMO_API int vmo_object_offer(struct vmo_object *obj, uint64_t off, size_t len, const void *buf, unsigned flags);
/* Ask the pager for whole pages [off, off+len) ahead of demand: read by
 * the engine's background thread, a cluster at a time (a fault on a page
 * it is reading waits for that read; a page a fault took first is not asked
 * again), then mapped into the views; with VMO_WAIT read here, returning
 * the first page's error. */
VMO_API int vmo_object_prefetch(struct vmo_object *obj, uint64_t off, uint64_t len, unsigned flags);

/* Pin whole pages [off, off+len) in memory (Sprite pins the blocks its
 * file-system cache maps; UMap's fetch-and-pin): brought in if absent,
 * never evicted (nor dropped by vmo_return or vmo_discard) while pinned,
 * counted in the budget.  Pins nest (up to 255 per page).  -ENOMEM, with a
 * detail, if the pinned pages would pass the object's or the engine's
 * budget; a page the pager fails stops it with its errno (the pages pinned
 * before it stay pinned: unpin them). */
VMO_API int vmo_object_pin(struct vmo_object *obj, uint64_t off, uint64_t len);
/* Undo one pin of each page of the range (-EINVAL if one is not pinned:
 * nothing is changed then). */
VMO_API int vmo_object_unpin(struct vmo_object *obj, uint64_t off, uint64_t len);

/* ------------------------------------------------------------------------ */
/* Another process's memory (Lunaix's procvm remote transactions)           */

struct vmo_process;
/* Open process pid (held by a pidfd).  -EPERM, with a detail, when ptrace
 * rules do not let this process at its memory (nothing changes then);
 * -ESRCH when there is none. */
VMO_API int vmo_process_open(pid_t pid, struct vmo_process **out);
VMO_API int vmo_process_close(struct vmo_process *p);
/* One range: len bytes at remote in the process, local here. */
struct vmo_transfer {
	uint64_t remote;
	void *local;
	size_t len;
};
#define VMO_PROCESS_WRITE (1u << 0) /* write the process's memory (else read it) */
/* Do the n transfers in order, in batches (process_vm_readv/writev): 0 when
 * all were done; else the errno of the range that stopped it (-EFAULT: not
 * mapped, or not writable), -ESRCH if the process exited, -EPERM, with
 * *done (may be NULL) the bytes transferred before. */
VMO_API int vmo_process_transact(struct vmo_process *p, const struct vmo_transfer *t, size_t n, unsigned flags,
				 size_t *done);

/* ------------------------------------------------------------------------ */
/* Statistics                                                               */

/* The stats structs begin with a header: size (bytes of the struct filled
 * by the library) and version.  They grow only at their end.  A *_sized call
 * takes the size of the caller's struct (at least the 8-byte header, else
 * -EINVAL), fills min(caller's size, the library's) bytes, sets size to that
 * and version to the library's, and zeroes the rest of the caller's struct:
 * a program built against a newer vmo.h reads 0 for the fields an older
 * library does not have, and can tell them by size.  The macros pass the
 * size of the struct the program was compiled with.  version changes only
 * when an existing field changes meaning. */
#define VMO_STATS_VERSION 1

struct vmo_stats {
	uint32_t size;        /* bytes the library filled */
	uint32_t version;     /* VMO_STATS_VERSION of the library */
	uint64_t resident;    /* bytes in memory */
	uint64_t dirty;       /* bytes modified and not written back */
	uint64_t faults;      /* faults served (missing + minor + write) */
	uint64_t missing_faults;
	uint64_t minor_faults;
	uint64_t wp_faults;
	uint64_t pages_read;  /* pages asked of the pager */
	uint64_t readahead;   /* of which read ahead of a fault */
	uint64_t writebacks;  /* pages written back */
	uint64_t evictions;   /* pages dropped from memory */
	uint64_t errors;      /* pager failures */
	uint64_t mappings;
	uint64_t write_errors; /* failed writebacks (the callback, or reading the page) */
	uint64_t budget;       /* current effective cap in bytes (0 = none) */
	uint64_t pinned;       /* bytes pinned (vmo_object_pin) */
	/* since 0.4: */
	uint64_t large_fill;   /* pages filled through the memfd, in large folios where shmem gives them */
};
VMO_API int vmo_object_stats_sized(struct vmo_object *obj, struct vmo_stats *st, size_t size);
VMO_API int vmo_engine_stats_sized(struct vmo_engine *eng, struct vmo_stats *st, size_t size);
/* int vmo_object_stats(struct vmo_object *obj, struct vmo_stats *st);
 * int vmo_engine_stats(struct vmo_engine *eng, struct vmo_stats *st); */
#define vmo_object_stats(obj, st) vmo_object_stats_sized((obj), (st), sizeof(struct vmo_stats))
#define vmo_engine_stats(eng, st) vmo_engine_stats_sized((eng), (st), sizeof(struct vmo_stats))
/* Print st to file descriptor fd, a counter a line ("resident  1.5 MiB",
 * "faults  123 (missing 100, minor 20, wp 3)", ...), each line after indent
 * (NULL: none).  0, or -errno (-EINVAL: st NULL; a write's error).  With
 * VMO_SHOW_STATS=1 in the environment, vmo_engine_destroy prints the
 * engine's this way on standard error.  Since 0.4. */
VMO_API int vmo_stats_print(const struct vmo_stats *st, int fd, const char *indent);

/* ------------------------------------------------------------------------ */
/* Pagers shipped with vmo (stores/)                                        */

/* Zero-fill: every page reads as zeros.  Nothing is written back: written
 * pages stay in memory (dirty) until discarded or the object is freed. */
VMO_API const struct vmo_pager_ops *vmo_pager_zero(void);

/* File: pread/pwrite on fd (opened by the caller, not closed by vmo) at
 * base + offset; a read past end of file gives zeros; sync is fdatasync.
 * When the object takes its size from the file (opts.size 0), writeback
 * never grows the file: bytes of the last page past its end are not stored.
 * The returned context is freed by the release callback. */
VMO_API int vmo_pager_file(int fd, uint64_t base, const struct vmo_pager_ops **ops, void **ctx);

/* Memory: a caller-owned buffer of size bytes (writes go into it). */
VMO_API int vmo_pager_mem(void *buf, uint64_t size, const struct vmo_pager_ops **ops, void **ctx);

/* ------------------------------------------------------------------------ */
/* Stores: where an object's pages live (docs/stores.md)                    */

/* A swap file shared by many anonymous objects (Sprite's swap files): path
 * is a file (created or emptied: nothing in it outlives the handle) or a
 * directory (an unnamed file in it).  4 KiB slots, the lowest free taken
 * first; the file is cut down when its last slots are freed, and a slot
 * freed below is punched, so the file stays as large as the data in it.
 * vmo_swap_close: -EBUSY while an object uses it. */
struct vmo_swap;
VMO_API int vmo_swap_open(const char *path, struct vmo_swap **out);
VMO_API int vmo_swap_close(struct vmo_swap *sw);
/* A pager for an anonymous object of size bytes (a multiple of 4096) in sw:
 * pages never written read as zeros; a page written back as zeros frees its
 * slot; the object's release frees all of them. */
VMO_API int vmo_pager_swap(struct vmo_swap *sw, uint64_t size, const struct vmo_pager_ops **ops, void **ctx);

#define VMO_SWAP_STATS_VERSION 1
struct vmo_swap_stats {
	uint32_t size;       /* bytes the library filled */
	uint32_t version;    /* VMO_SWAP_STATS_VERSION of the library */
	uint64_t objects;    /* pagers not released yet */
	uint64_t slots_used; /* 4 KiB slots holding data now */
	uint64_t slots_peak;
	uint64_t file_slots; /* the file's length in slots (its highest used slot) */
	uint64_t file_bytes; /* st_size */
	uint64_t disk_bytes; /* st_blocks * 512: what it takes on disk */
	uint64_t reads;      /* slots read */
	uint64_t writes;     /* slots written */
	uint64_t zero_pages; /* 4 KiB pages written as zeros (no slot) */
	uint64_t punched;    /* slots freed below the end (holes punched) */
	uint64_t truncated;  /* times the file was cut down */
};
VMO_API int vmo_swap_stats_sized(struct vmo_swap *sw, struct vmo_swap_stats *st, size_t size);
#define vmo_swap_stats(sw, st) vmo_swap_stats_sized((sw), (st), sizeof(struct vmo_swap_stats))

/* Compressed memory (zswap in user space, per object): pages written back
 * are kept compressed in memory with lz4 (speed) or zstd (ratio); a page
 * that does not compress below its size is kept as it is.  Past budget
 * bytes of stored data the oldest pages go to the lower store (a tier, not
 * a dead end); without one, a write past the budget fails (-ENOSPC: the
 * page stays dirty in memory).  A page never written comes from the lower
 * store (zeros without one).  The lower pager is the compressed store's
 * from here on (its release is called with the store's). */
#define VMO_COMPRESS_LZ4 1
#define VMO_COMPRESS_ZSTD 2
struct vmo_compress_opts {
	uint32_t algo;      /* VMO_COMPRESS_LZ4 (0 = this) or VMO_COMPRESS_ZSTD */
	int32_t level;      /* 0: the algorithm's default (lz4: acceleration 1; zstd: 3) */
	uint64_t size;      /* the object's size in bytes (required) */
	uint32_t page_size; /* the object's page size; 0 = 4096 */
	uint32_t pad;
	uint64_t budget;    /* bytes of stored (compressed) data kept in memory; 0 = no limit */
	const struct vmo_pager_ops *lower; /* NULL: none */
	void *lower_ctx;
	uint64_t reserved[4];
};
VMO_API int vmo_pager_compress(const struct vmo_compress_opts *o, const struct vmo_pager_ops **ops, void **ctx);

#define VMO_COMPRESS_STATS_VERSION 1
struct vmo_compress_stats {
	uint32_t size;          /* bytes the library filled */
	uint32_t version;       /* VMO_COMPRESS_STATS_VERSION of the library */
	uint64_t pages;         /* pages held in memory now */
	uint64_t stored_bytes;  /* bytes they take (compressed, or raw) */
	uint64_t raw_pages;     /* of them, kept as they are (incompressible) */
	uint64_t bytes_in;      /* page bytes written to the store, in all */
	uint64_t bytes_out;     /* what they compressed to */
	uint64_t spilled;       /* pages moved to the lower store */
	uint64_t lower_reads;   /* pages read from the lower store */
	uint64_t zero_reads;    /* pages read that were never written (zeros, no lower store) */
};
/* ctx: the compressed store's (vmo_object_ctx of its object). */
VMO_API int vmo_pager_compress_stats_sized(void *ctx, struct vmo_compress_stats *st, size_t size);
#define vmo_pager_compress_stats(ctx, st) vmo_pager_compress_stats_sized((ctx), (st), sizeof(struct vmo_compress_stats))

/* An NBD export (nbdkit, qemu-nbd, rbd-nbd...) through libnbd: uri as
 * nbd_connect_uri takes it (nbd://host[:port]/export, nbds:// for TLS,
 * nbd+unix:///export?socket=PATH).  Up to inflight requests on the wire;
 * reads of an object made by vmo_object_create_uri are asynchronous (many
 * faults in flight), others wait.  sync is FLUSH; a write of zeros is
 * WRITE_ZEROES (the server may punch it).  A dropped connection is made
 * again (backoff) and the requests on it sent again, for up to retry_ms;
 * then they fail with -EIO (a fault: SIGBUS, never zeros) and each later
 * request tries to connect once.  Connects at once: -errno and a detail
 * when the server cannot be reached. */
struct vmo_nbd_opts {
	const char *uri;
	uint32_t inflight;  /* requests on the wire at once; 0 = 64 */
	uint32_t retry_ms;  /* how long to try to connect again; 0 = 10000 */
	uint64_t reserved[4];
};
VMO_API int vmo_pager_nbd(const struct vmo_nbd_opts *o, const struct vmo_pager_ops **ops, void **ctx);

#define VMO_NBD_STATS_VERSION 1
struct vmo_nbd_stats {
	uint32_t size;          /* bytes the library filled */
	uint32_t version;       /* VMO_NBD_STATS_VERSION of the library */
	uint64_t size_bytes;    /* the export's size */
	uint64_t reads, writes, zeroes, flushes; /* requests */
	uint64_t bytes_read, bytes_written;
	uint64_t reconnects;    /* connections made again */
	uint64_t retried;       /* requests sent again on a new connection */
	uint64_t failed;        /* requests that failed */
	uint64_t inflight_peak; /* most requests on the wire at once */
};
VMO_API int vmo_pager_nbd_stats_sized(void *ctx, struct vmo_nbd_stats *st, size_t size);
#define vmo_pager_nbd_stats(ctx, st) vmo_pager_nbd_stats_sized((ctx), (st), sizeof(struct vmo_nbd_stats))

/* A store by URI (docs/stores.md):
 *   file:PATH        a file (created if missing, grown to size)
 *   swap:PATH        the swap file PATH (a file or a directory), one per
 *                    path in the process, shared by the objects naming it
 *   lz4[,budget=SIZE][,level=N][:LOWER]   compressed memory over LOWER,
 *   zstd[,...][:LOWER]                    any of these URIs (or none)
 *   nbd://..., nbds://..., nbd+unix://..., nbds+unix://...   an NBD export
 * SIZE: bytes, or with K, M, G, T.  size: the object's size in bytes (0:
 * the store's own: a file's, an export's, the lower store's); page_size:
 * the object's (0 = 4096).  -EINVAL with a detail naming what is wrong;
 * -errno of opening the store. */
VMO_API int vmo_store_open(const char *uri, uint64_t size, uint32_t page_size, const struct vmo_pager_ops **ops,
			   void **ctx);
/* vmo_store_open then vmo_object_create with opts (opts->size and
 * page_size given to the store; NULL: defaults); reads of an NBD store's
 * object are then asynchronous. */
VMO_API int vmo_object_create_uri(struct vmo_engine *eng, const char *uri, const struct vmo_object_opts *opts,
				  struct vmo_object **out);

/* In-place objects (a microkernel vm_object's create_in_place): an object over len bytes
 * of the caller's memory at addr (page-aligned; the memory pager: writes go
 * back there), or of a file at off (the file pager).  What is in memory
 * already (the pages of addr the process has touched; the file's pages in
 * the page cache) is in the object from the start: touching it asks the
 * pager nothing.  len: a multiple of the page size; opts as for
 * vmo_object_create (size 0 or len; no growth).  The memory must stay
 * valid, and the file open, until the object is released. */
VMO_API int vmo_object_create_in_place(struct vmo_engine *eng, void *addr, uint64_t len,
				       const struct vmo_object_opts *opts, struct vmo_object **out);
VMO_API int vmo_object_create_in_place_file(struct vmo_engine *eng, int fd, uint64_t off, uint64_t len,
					    const struct vmo_object_opts *opts, struct vmo_object **out);

/* ------------------------------------------------------------------------ */
/* The yield cache (MINIX VM "yield"): memory lent to vmo, taken back by id */

/* A process yields page-aligned ranges of its memory to the cache under a
 * 64-bit id and gets zero pages in their place; it asks for a block back by
 * id and either gets exactly the bytes it yielded or a miss (-ENOENT): the
 * cache may forget any block at any time (its byte budget, memory pressure on
 * the machine or in the process's memory cgroup).  Blocks are copied; with
 * move_min set, blocks at least that long are moved (UFFDIO_MOVE) where the
 * kernel allows it: measured slower on the machines here, so off by default.
 * Every call is thread-safe.  See docs/cache.md. */
struct vmo_cache;

#define VMO_CACHE_NO_PRESSURE (1u << 0) /* do not watch PSI / the cgroup */
#define VMO_CACHE_COPY (1u << 1)        /* always copy, never move pages */

struct vmo_cache_opts {
	uint32_t flags;    /* VMO_CACHE_* */
	uint32_t reserved0;
	uint64_t budget;   /* bytes the cache may hold; 0 = as much as memory allows */
	uint64_t move_min; /* blocks of at least this many bytes are moved, shorter
			    * ones copied; 0 = never move (the measured default,
			    * see docs/cache.md) */
	uint64_t reserved[5];
};

#define VMO_CACHE_STATS_VERSION 1

/* Begins with size and version and grows at its end, as struct vmo_stats. */
struct vmo_cache_stats {
	uint32_t size;            /* bytes the library filled */
	uint32_t version;         /* VMO_CACHE_STATS_VERSION of the library */
	uint64_t blocks;          /* blocks held now */
	uint64_t bytes;           /* bytes held now */
	uint64_t yields;
	uint64_t hits;
	uint64_t misses;
	uint64_t forgotten_blocks; /* dropped by budget or pressure */
	uint64_t forgotten_bytes;
	uint64_t moved;           /* yields/gets served without a copy */
	uint64_t cap;             /* bytes the cache may hold now: min(budget, memory);
				   * UINT64_MAX when nothing limits it */
	uint64_t idle_bytes;      /* free slots kept populated for reuse (not in bytes) */
	uint64_t pressure_events; /* PSI / cgroup signals acted on */
};

VMO_API int vmo_cache_create(const struct vmo_cache_opts *opts, struct vmo_cache **out);
/* Frees every block and the cache: 0, or -EINVAL if c is NULL (as
 * vmo_engine_destroy).  No call on c may be running or follow. */
VMO_API int vmo_cache_destroy(struct vmo_cache *c);
/* The page-aligned range [addr, addr+len) now belongs to the cache under id
 * (replacing any block with that id); the range holds zeros afterwards.
 * -EINVAL (nothing changed) for a NULL or unaligned addr, a len that is 0,
 * not a multiple of 4096, over 2^46 or wraps around; -ENOMEM.  A block larger
 * than the cache can hold is dropped at once (counted as forgotten): the
 * yield then acts as a forget of id. */
VMO_API int vmo_cache_yield(struct vmo_cache *c, uint64_t id, void *addr, size_t len);
/* Put block id back at addr (0) and take it out of the cache, or miss
 * (-ENOENT) leaving addr untouched.  len must be the block's length: a block
 * of another length gives -EINVAL and stays in the cache. */
VMO_API int vmo_cache_get(struct vmo_cache *c, uint64_t id, void *addr, size_t len);
/* Yield [addr, addr+len) as yield_id, then get get_id into the same range:
 * 0 on a hit, -ENOENT on a miss (the yield happened; addr holds zeros);
 * -EINVAL or -ENOMEM as vmo_cache_yield (then nothing happened).  When
 * yield_id == get_id the bytes stay where they are, the cache no longer holds
 * the id, and the result is 0. */
VMO_API int vmo_cache_yield_get(struct vmo_cache *c, uint64_t yield_id, uint64_t get_id, void *addr,
				size_t len);
/* Drop block id (0), or -ENOENT if the cache does not hold it. */
VMO_API int vmo_cache_forget(struct vmo_cache *c, uint64_t id);
VMO_API int vmo_cache_forget_all(struct vmo_cache *c);
VMO_API int vmo_cache_stats_sized(struct vmo_cache *c, struct vmo_cache_stats *st, size_t size);
/* int vmo_cache_stats(struct vmo_cache *c, struct vmo_cache_stats *st); */
#define vmo_cache_stats(c, st) vmo_cache_stats_sized((c), (st), sizeof(struct vmo_cache_stats))

/* ------------------------------------------------------------------------ */
/* Serving objects to other processes (docs/server.md)                      */

/* A server publishes objects of its engine by name on a Unix socket, as a
 * Hurd translator serves its files' pages with libpager; other processes
 * open them with vmo_client_open and get a struct vmo_object that maps,
 * syncs, returns, discards and reports stats like a local one.  The memory
 * is shared (a write in one process is seen by every other at once), every
 * client's faults are served by the server's engine under its budget, and
 * the server's pager writes dirty pages back.  Each client opens a
 * userfaultfd and hands it to the server; if the server goes away, the
 * client's faults on pages not in memory get SIGBUS, never zeros.  Access
 * is checked against the client's credentials (SO_PEERCRED) and the
 * object's owner and mode, as for a file. */
struct vmo_server;
struct vmo_client;

/* vmo_client_open flags, and what a server's open callback is asked. */
#define VMO_OPEN_RDONLY 0u
#define VMO_OPEN_RDWR (1u << 0)
#define VMO_OPEN_CREATE (1u << 1) /* create the object if the server has none of that name */
#define VMO_OPEN_CACHE (1u << 2)  /* ask the server to keep it after the last close (may_cache) */

/* What a client asked for, given to the server's open callback. */
struct vmo_open_request {
	const char *name;
	unsigned flags;   /* VMO_OPEN_* */
	uint64_t size;    /* bytes, 0 if the client did not say */
	size_t page_size; /* 0 if the client did not say */
	uid_t uid;        /* the client's credentials (SO_PEERCRED) */
	gid_t gid;
	pid_t pid;
};

struct vmo_server_opts {
	/* Where to listen: a socket file created here (mode below; an old
	 * socket file left by a dead server is replaced), or, with path NULL,
	 * listen_fd: a bound, listening SOCK_SEQPACKET socket (socket
	 * activation), owned by the server from here. */
	const char *path;
	int listen_fd;
	unsigned mode;        /* permissions of the socket file; 0: 0600 */
	unsigned max_clients; /* 0: 256 */
	unsigned max_objects; /* objects one client may hold open; 0: 1024 */
	/* A client opened a name nothing is published under: publish it
	 * (vmo_server_publish) and return 0, or refuse with -errno (-ENOENT).
	 * May be NULL.  Runs on the client's thread of the server. */
	int (*open)(void *arg, struct vmo_server *srv, const struct vmo_open_request *req);
	void *arg;
	/* The yield cache served to clients (vmo_cache_connect), or NULL for
	 * none: each user (uid) of the clients gets a cache of its own, made
	 * with these options (its budget is per user), so that no user gets
	 * another's blocks; every one forgets under memory pressure. */
	const struct vmo_cache_opts *cache;
};

/* Listen and serve on threads of the server's own (one per client). */
VMO_API int vmo_server_create(struct vmo_engine *eng, const struct vmo_server_opts *opts, struct vmo_server **out);
/* Stop listening, end every client's connection (their faults on pages not
 * in memory get SIGBUS from then on), drop the published objects. */
VMO_API int vmo_server_destroy(struct vmo_server *srv);
/* Publish obj under name (1-255 bytes of [A-Za-z0-9._-]) with an owner and
 * a mode (the 0666 bits of a file: read to open it, read and write to open
 * it for writing; uid 0 may do anything).  The server takes a reference.
 * -EEXIST if the name is taken. */
VMO_API int vmo_server_publish(struct vmo_server *srv, const char *name, struct vmo_object *obj, uid_t uid,
			       gid_t gid, unsigned mode);
/* In mode: take the object off the list and drop the server's reference
 * when the last client closes it (an open meanwhile waits until it is
 * released, its data written back, then asks the open callback again). */
#define VMO_PUBLISH_CLOSE_IDLE (1u << 16)
/* Take name off the list: no new opens; clients that have it open keep it. */
VMO_API int vmo_server_unpublish(struct vmo_server *srv, const char *name);
/* How many clients have name open now (-ENOENT if not published). */
VMO_API int vmo_server_object_clients(struct vmo_server *srv, const char *name);

/* The socket a client connects to when given none: $VMO_SERVER, else
 * /run/vmod/vmod.sock for root, $XDG_RUNTIME_DIR/vmod.sock (or
 * /tmp/vmod-UID.sock) for others; vmod listens there by default. */
VMO_API const char *vmo_server_default_path(void);
/* Connect to a server.  path NULL: $VMO_SERVER, else the default socket of
 * vmod (/run/vmod/vmod.sock for root, $XDG_RUNTIME_DIR/vmod.sock else).
 * The protocol versions are agreed here (-EPROTONOSUPPORT with both ranges
 * in vmo_last_error_detail when there is none in common). */
VMO_API int vmo_client_connect(const char *path, struct vmo_client **out);
/* Open an object on the server.  flags: VMO_OPEN_RDONLY or VMO_OPEN_RDWR,
 * with VMO_OPEN_CREATE; size and page_size (0: the server's choice) for an
 * object created.  The object works with vmo_map, vmo_unmap, vmo_sync*,
 * vmo_return*, vmo_discard* (read-write only), vmo_object_stats, size and
 * page size, and vmo_object_unref; the calls that belong to the pager's side
 * (supply, errors, budgets, shutdown) are -EOPNOTSUPP.  vmo_sync with
 * VMO_WAIT returns once the server's store has the data.  A read-only
 * object maps only with VMO_PROT_READ (-EACCES otherwise).  Errors of the
 * server come back as its -errno, with its message in
 * vmo_last_error_detail; -ECONNRESET once the server is gone. */
VMO_API int vmo_client_open(struct vmo_client *cl, const char *name, unsigned flags, uint64_t size,
			    size_t page_size, struct vmo_object **out);
/* Names the server lists to this client (those it may open), from *cursor
 * (0 to start; 0 again after the last): up to n entries, their count or
 * -errno. */
struct vmo_client_entry {
	char name[256];
	uint64_t size;
	size_t page_size;
};
VMO_API int vmo_client_list(struct vmo_client *cl, uint64_t *cursor, struct vmo_client_entry *e, size_t n);
/* The clients connected to the server now, from *cursor (as
 * vmo_client_list): those of this process's user, or all of them for
 * root.  Up to n entries; their count or -errno. */
struct vmo_client_info {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	unsigned objects;  /* open now */
	unsigned views;    /* mappings attached now */
	uint64_t requests; /* messages it sent */
	uint64_t faults;   /* its faults the server served */
};
VMO_API int vmo_client_clients(struct vmo_client *cl, uint64_t *cursor, struct vmo_client_info *e, size_t n);
/* The server's engine-wide statistics. */
VMO_API int vmo_client_server_stats_sized(struct vmo_client *cl, struct vmo_stats *st, size_t size);
#define vmo_client_server_stats(cl, st) vmo_client_server_stats_sized((cl), (st), sizeof(struct vmo_stats))
/* A yield cache whose blocks a server holds (MINIX VM's cache, across
 * processes): the vmo_cache_* calls work on it as on one made by
 * vmo_cache_create; vmo_cache_destroy closes it.  Blocks are copied through
 * a shared window of window bytes (0: 4 MiB; a block is at most that);
 * they belong to the client's user: every process of that user sees them,
 * no other.  path NULL: as vmo_client_connect.  -EOPNOTSUPP if the server
 * serves no cache. */
VMO_API int vmo_cache_connect(const char *path, size_t window, struct vmo_cache **out);
/* Drop the program's hold on the connection: it closes once every object
 * opened through it is unreferenced too. */
VMO_API int vmo_client_close(struct vmo_client *cl);

#ifdef __cplusplus
}
#endif
#endif /* VMO_H */
