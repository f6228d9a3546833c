/*
 * pages.c: the first chunk of every worker state's heap (see pages.h).
 *
 * Why not malloc: a new state writes the start of its first chunk at
 * once, and on this kind of machine the first write to a fresh page costs
 * 10-14 us (bench/c/first_touch.c). From malloc, a chunk's pages fault
 * one by one, and more in malloc itself: a thread's arena grows page by
 * page, each growth an mprotect and a fault on the new top. 100,000
 * parked tasks are 100,000 new states (B19).
 *
 * Blocks come from regions of 128 blocks (2 MB, one mapping each). On
 * this machine the first touch of a 4 KB page from user code costs ~4-10
 * us even after the kernel populated it, while a huge page populated in
 * one madvise costs nothing at its first touch (core/hugemap.h). So
 * while fewer than SMALL_REGIONS are live a region is of 4 KB pages, a
 * block's populated when it is handed out (a program with a few hundred
 * tasks then holds what they use), and every further region is a huge
 * page, present at once: B19's 30,000 tasks 4.66 -> 3.69 s (`bench/ab`). A
 * region keeps its pages while its blocks are free, so a state made
 * after another closed faults nothing. A region all of whose blocks are
 * free is unmapped (one system call for 128 blocks, not one a block: each
 * such call flushes every thread's TLB), except one, kept for the next
 * states. Regions with a free block are on a list.
 */
#include "pages.h"
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include "../core/hugemap.h"

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

#define WORDS (CONC_HUGE_BYTES / LPAGES_BLOCK / 64) /* of free bits */

typedef struct lpages_region {
  char *base;
  uint64_t free[WORDS]; /* bit i of word w: block 64 w + i is free */
  int nfree;
  int huge; /* present whole; else a block is populated when handed out */
  struct lpages_region *prev, *next; /* on `partial` while nfree > 0 */
} region;

#define REGION_BLOCKS ((int)(64 * WORDS))
/* Regions of 4 KB pages made before any huge one: a program with up to
 * 512 live states holds only what they use (B6's 200 parked tasks: 26 KB
 * each, against 42 KB with huge regions from the second on, each 2 MB
 * present whole, two at once when two threads make one together). */
#define SMALL_REGIONS 4

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static region *partial; /* the regions with a free block */
static int empty;       /* regions on it with every block free */
static int live;        /* regions mapped */

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

/* A new region, made with no lock held (a huge one is made present at
 * once: ~0.5 ms). */
static region *new_region(int huge) {
  region *r = calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  r->huge = huge;
  r->base = conc__huge_map(huge);
  if (r->base == NULL) {
    free(r);
    return NULL;
  }
  LSAN_ROOT(r->base, CONC_HUGE_BYTES);
  for (size_t w = 0; w < WORDS; w++) r->free[w] = UINT64_MAX;
  r->nfree = REGION_BLOCKS;
  return r;
}

void *lpages_get(lpages_region **owner) {
  pthread_mutex_lock(&lock);
  region *r = partial;
  if (r == NULL) {
    int huge = live++ >= SMALL_REGIONS;
    pthread_mutex_unlock(&lock);
    r = new_region(huge);
    pthread_mutex_lock(&lock);
    if (r == NULL) {
      live--;
      pthread_mutex_unlock(&lock);
      return NULL;
    }
    list_add(r); /* another thread's new one may be there too: both stay */
    empty++;
  }
  size_t w = 0;
  while (r->free[w] == 0) w++; /* nfree > 0: one word has a bit */
  int i = __builtin_ctzll(r->free[w]);
  if (r->nfree == REGION_BLOCKS) empty--;
  r->free[w] &= ~((uint64_t)1 << i);
  if (--r->nfree == 0) list_remove(r);
  pthread_mutex_unlock(&lock);
  char *p = r->base + (64 * w + (size_t)i) * LPAGES_BLOCK;
  if (!r->huge) conc__huge_populate(p, LPAGES_BLOCK); /* a no-op if present */
  *owner = r;
  return p;
}

void lpages_put(void *p, lpages_region *r) {
  size_t i = (size_t)((char *)p - r->base) / LPAGES_BLOCK;
  pthread_mutex_lock(&lock);
  if (r->nfree == 0) list_add(r);
  r->free[i / 64] |= (uint64_t)1 << (i % 64);
  bool drop = false;
  if (++r->nfree == REGION_BLOCKS) {
    drop = empty > 0; /* one empty region is kept */
    if (drop) {
      list_remove(r);
      live--;
    } else {
      empty++;
    }
  }
  pthread_mutex_unlock(&lock);
  if (drop) {
    LSAN_UNROOT(r->base, CONC_HUGE_BYTES);
    conc__huge_unmap(r->base);
    free(r);
  }
}
