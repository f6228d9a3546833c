/*
 * pages.c: the first chunk of every worker state's heap (see pages.h).
 *
 * Why not malloc: a new state writes the start of its first chunk at
 * once, and on this kind of machine the first touch of a fresh page is a
 * page fault of ~10 us, where populating pages with one madvise costs
 * ~1 us a page (TOOLCHAIN.md). From malloc, a chunk's pages fault one by
 * one, and more in malloc itself: a thread's arena grows page by page,
 * each growth an mprotect and a fault on the new top. 100,000 parked
 * tasks are 100,000 new states (B19); `perf stat -e page-faults` of
 * 20,000 of them: 116,000 faults before, 56,000 with this and fiber.c's
 * read-populated check page.
 *
 * Blocks come from regions of 64 blocks (1 MB), one mapping each, with
 * a bit a block for "free" and one for "populated": a block's first
 * POPULATED bytes are populated when it is first handed out (a region is
 * reserved, not touched, until then), and it keeps its pages while free,
 * so a state made after another closed faults nothing. A region all of
 * whose blocks are free is unmapped (one system call for 64 blocks, not
 * one a block: each such call flushes every thread's TLB), except one,
 * kept for the next states. Regions with a free block are on a list; a
 * state takes a populated block first.
 */
#include "pages.h"
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
/* A region holds the only pointers to a state's malloc'd blocks (a
 * table's parts, the string table): LeakSanitizer must scan it as it
 * scans malloc's memory, or it reports them all at exit. */
#define LSAN_ROOT(p, n) __lsan_register_root_region((p), (n))
#define LSAN_UNROOT(p, n) __lsan_unregister_root_region((p), (n))
#else
#define LSAN_ROOT(p, n) ((void)(p), (void)(n))
#define LSAN_UNROOT(p, n) ((void)(p), (void)(n))
#endif

#define REGION_BLOCKS 64 /* the bits of a uint64_t */
#define ALL_FREE UINT64_MAX
/* The bytes of a block populated when it is first handed out: all of
 * it, as a fresh state fills it (its small blocks, and its bigger ones:
 * its global state, string table, stacks; heap.c). B19's 20,000 parked
 * tasks: 19,000 page faults, against 56,000 with the first 8 KB
 * populated and 116,000 with malloc's chunks, at the same peak RSS. */
#define POPULATED LPAGES_BLOCK

typedef struct lpages_region {
  char *base;
  uint64_t free;      /* bit i: block i is free */
  uint64_t populated; /* bit i: block i's pages are present */
  struct lpages_region *prev, *next; /* on `partial` while free != 0 */
} region;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static region *partial; /* the regions with a free block */
static int empty;       /* regions on it with every block free */

static void populate(void *p, size_t n) {
#ifdef MADV_POPULATE_WRITE
  (void)madvise(p, n, MADV_POPULATE_WRITE); /* else: faults, as malloc's */
#else
  (void)p;
  (void)n;
#endif
}

static void list_add(region *r) {
  r->prev = NULL;
  r->next = partial;
  if (partial != NULL) partial->prev = r;
  partial = r;
}

static void list_remove(region *r) {
  if (r->prev != NULL) r->prev->next = r->next;
  else partial = r->next;
  if (r->next != NULL) r->next->prev = r->prev;
}

static region *new_region(void) {
  region *r = calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  void *m = mmap(NULL, (size_t)REGION_BLOCKS * LPAGES_BLOCK,
                 PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) {
    free(r);
    return NULL;
  }
  LSAN_ROOT(m, (size_t)REGION_BLOCKS * LPAGES_BLOCK);
  r->base = m;
  r->free = ALL_FREE;
  return r;
}

void *lpages_get(lpages_region **owner) {
  pthread_mutex_lock(&lock);
  region *r = partial;
  if (r == NULL && (r = new_region()) != NULL) {
    list_add(r);
    empty++;
  }
  if (r == NULL) {
    pthread_mutex_unlock(&lock);
    return NULL;
  }
  uint64_t ready = r->free & r->populated;
  int i = __builtin_ctzll(ready ? ready : r->free);
  uint64_t bit = (uint64_t)1 << i;
  bool fresh = !(r->populated & bit);
  if (r->free == ALL_FREE) empty--;
  r->free &= ~bit;
  r->populated |= bit;
  if (r->free == 0) list_remove(r);
  pthread_mutex_unlock(&lock);
  char *p = r->base + (size_t)i * LPAGES_BLOCK;
  if (fresh) populate(p, POPULATED);
  *owner = r;
  return p;
}

void lpages_put(void *p, lpages_region *r) {
  int i = (int)(((char *)p - r->base) / LPAGES_BLOCK);
  pthread_mutex_lock(&lock);
  if (r->free == 0) list_add(r);
  r->free |= (uint64_t)1 << i;
  bool drop = false;
  if (r->free == ALL_FREE) {
    drop = empty > 0; /* one empty region is kept */
    if (drop) list_remove(r);
    else empty++;
  }
  pthread_mutex_unlock(&lock);
  if (drop) {
    LSAN_UNROOT(r->base, (size_t)REGION_BLOCKS * LPAGES_BLOCK);
    munmap(r->base, (size_t)REGION_BLOCKS * LPAGES_BLOCK);
    free(r);
  }
}
