/* SPDX-License-Identifier: MIT */
/* umap.h - LLNL UMap's C API on vmo (libvmo-umap; docs/umap.md).
 *
 * Written from UMap's documentation and its published function signatures
 * (no UMap code), so that a program written for UMap builds and runs
 * against vmo by relinking: -lvmo-umap instead of -lumap.  The differences,
 * where UMap's behaviour is a known defect, are vmo's and are listed in
 * docs/umap.md: the file offset is honoured; fork() never gives a child
 * zeros; MAP_SHARED is accepted; a failed read of the file is SIGBUS, never
 * a zero page.
 *
 * UMap's C++ interface (Umap::umap_ex with a Umap::Store) is not provided. */
#ifndef VMO_UMAP_H
#define VMO_UMAP_H

#ifdef __cplusplus
#include <cstddef>
#include <cstdint>
#else
#include <stddef.h>
#include <stdint.h>
#endif
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Map length bytes of the file fd from offset (a multiple of the umap page
 * size, UMAP_PAGESIZE) at addr (with UMAP_FIXED) or where the system
 * chooses; prot PROT_READ, or PROT_READ|PROT_WRITE.  Pages are read from
 * the file on first touch and written back on umap_flush and uunmap, under
 * a buffer of UMAP_BUFSIZE pages.  UMAP_FAILED and errno on failure. */
void *umap(void *addr, size_t length, int prot, int flags, int fd, off_t offset);
/* Write the region's dirty pages back, then unmap it.  0, or -1 and errno. */
int uunmap(void *addr, size_t length);
/* Write every region's dirty pages back (and fdatasync the files).  0, or
 * -1 and errno (the first failure; the others are still tried). */
int umap_flush(void);

struct umap_prefetch_item {
	void *page_base_addr;
};
/* Read these pages ahead of demand (asynchronously: a later touch waits for
 * the read in flight rather than asking again). */
void umap_prefetch(int npages, struct umap_prefetch_item *page_array);
/* Read [paddr, paddr+size) if absent and keep it resident: never evicted
 * (counted against the buffer).  vmo has no unpin in UMap's API: the pages
 * stay until uunmap. */
void umap_fetch_and_pin(char *paddr, uint64_t size);
/* 1 when write faults are tracked (the kernel's write-protect faults on
 * shmem, probed at run time), else 0: regions are then read-only. */
int umap_has_write_support(void);

uint64_t umapcfg_get_umap_page_size(void);
uint64_t umapcfg_get_max_fault_events(void);
uint64_t umapcfg_get_num_fillers(void);
uint64_t umapcfg_get_num_evictors(void);
uint64_t umapcfg_get_max_pages_in_buffer(void);
uint64_t umapcfg_get_read_ahead(void);
int umapcfg_get_evict_low_water_threshold(void);
int umapcfg_get_evict_high_water_threshold(void);

#ifdef __cplusplus
}
#endif

#define UMAP_PRIVATE MAP_PRIVATE /* UMap's one mode: pages shared with the file through umap's buffer */
#define UMAP_FIXED MAP_FIXED
#define UMAP_FAILED ((void *)-1)

#endif
