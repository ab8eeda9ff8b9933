/* SPDX-License-Identifier: MIT */
/* internal.h - declarations shared by libvmo's source files (vmo__ names). */
#ifndef VMO_INTERNAL_H
#define VMO_INTERNAL_H

#include "vmo.h"

#include <errno.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMO_LIKELY(x) __builtin_expect(!!(x), 1)
#define VMO_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define VMO_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* Thread-local variables that a signal handler may touch (selfserve.c):
 * in the static TLS block, so that no access ever allocates (a library
 * loaded with dlopen would otherwise get them lazily, with malloc). */
#define VMO__TLS _Thread_local __attribute__((tls_model("initial-exec")))
#define VMO_PAGE 4096u
#define VMO_MAX_PAGE_SIZE (2u << 20)

/* Logging: silent unless vmo_set_log() or VMO_LOG=error|warn|info|debug. */
void vmo__log(enum vmo_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define vmo__err(...) vmo__log(VMO_LOG_ERROR, __VA_ARGS__)
#define vmo__warn(...) vmo__log(VMO_LOG_WARN, __VA_ARGS__)
#define vmo__info(...) vmo__log(VMO_LOG_INFO, __VA_ARGS__)
#define vmo__debug(...) vmo__log(VMO_LOG_DEBUG, __VA_ARGS__)

/* In a fork()ed child, before it logs: the log's lock made free again. */
void vmo__log_atfork_child(void);

/* Record the detailed reason for the last failure in this thread. */
void vmo__set_detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* -EOPNOTSUPP, with a detail: call is for the pager's side, not for an
 * object opened from a server. */
int vmo__not_on_client(const char *call);
/* pthread_create with every signal blocked in the new thread: the
 * library's threads take none of the program's signals (a program that
 * waits for them with sigwait, or leaves them to their default action,
 * gets them on its own threads).  0 or -errno. */
int vmo__thread_create(pthread_t *t, void *(*fn)(void *), void *arg);
/* Hand a stats struct s (ssize bytes, beginning with uint32_t size and
 * version) to a caller whose struct has size bytes: the caller's may be
 * older (smaller) or newer (larger) than this library's, so what both know
 * is filled, the rest zeroed, and size/version say which (vmo.h). */
void vmo__sized_out(void *out, size_t size, void *s, size_t ssize, uint32_t version);
/* No detail (before a call whose failure may or may not set one). */
void vmo__clear_detail(void);

static inline bool vmo__is_pow2(uint64_t x) { return x && !(x & (x - 1)); }
static inline uint64_t vmo__align_up(uint64_t x, uint64_t a) { return (x + a - 1) & ~(a - 1); }
static inline uint64_t vmo__align_down(uint64_t x, uint64_t a) { return x & ~(a - 1); }
/* a + b without overflow into *r; false on overflow. */
static inline bool vmo__add_ok(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_add_overflow(a, b, r); }

/* Are len bytes at p (any alignment) all zero? */
bool vmo__all_zero(const void *p, size_t len);
/* pread until len bytes or end of file (EINTR retried): bytes read, or -errno. */
long vmo__pread_full(int fd, void *buf, size_t len, uint64_t off);
/* The number a file such as /proc/sys/vm/max_map_count holds, or dflt. */
long vmo__read_long(const char *path, long dflt);
/* pwrite all len bytes (EINTR retried): 0, or -errno (-EIO if nothing more
 * can be written). */
int vmo__pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* The stores vmo ships register what frees a range of their store (their
 * ops table -> punch), for vmo_discard*(VMO_PUNCH): after punch(ctx, off,
 * len) the range reads as zeros.  Registering again is harmless. */
typedef int (*vmo__punch_fn)(void *ctx, uint64_t off, uint64_t len);
void vmo__pager_punch_register(const struct vmo_pager_ops *ops, vmo__punch_fn punch);
vmo__punch_fn vmo__pager_punch_find(const struct vmo_pager_ops *ops);

/* Monotonic nanoseconds. */
uint64_t vmo__now_ns(void);

#endif
