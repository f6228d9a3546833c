/*
 * hugemap.c: see hugemap.h.
 */
#include "hugemap.h"
#include <stdint.h>
#include <sys/mman.h>

void *conc__huge_map(int huge) {
  size_t n = CONC_HUGE_BYTES;
  /* Twice the size, then the unaligned ends cut off: a huge page must
   * start at a 2 MB boundary. */
  char *m = mmap(NULL, 2 * n, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return NULL;
  char *p = (char *)(((uintptr_t)m + n - 1) & ~(uintptr_t)(n - 1));
  if (p > m) munmap(m, (size_t)(p - m));
  if (p + n < m + 2 * n) munmap(p + n, (size_t)(m + 2 * n - (p + n)));
  if (huge) {
#ifdef MADV_HUGEPAGE
    (void)madvise(p, n, MADV_HUGEPAGE); /* THP "madvise" mode: asked for */
#endif
    conc__huge_populate(p, n);
  }
  return p;
}

void conc__huge_populate(void *p, size_t n) {
#ifdef MADV_POPULATE_WRITE
  (void)madvise(p, n, MADV_POPULATE_WRITE); /* else: faults, later */
#else
  (void)p;
  (void)n;
#endif
}

void conc__huge_unmap(void *p) { munmap(p, CONC_HUGE_BYTES); }
