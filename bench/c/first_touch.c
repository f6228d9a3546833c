/*
 * first_touch.c: what fresh memory costs on this machine, per 4 KB page,
 * for reading B19/B20 (100,000 new task states) and csrc/core/hugemap.c.
 *
 * Three ways to get 64 MB of fresh memory, each then written once a page
 * by user code: plain (every first write faults), populated in 4 KB
 * pages with one MADV_POPULATE_WRITE, and populated as transparent huge
 * pages (MADV_HUGEPAGE, 2 MB aligned). On a VM with shadow page tables
 * the first write from user code to a 4 KB page costs several us even
 * after the kernel populated it; a huge page's does not.
 *
 *   cc -O2 bench/c/first_touch.c -o /tmp/first_touch && /tmp/first_touch
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <time.h>

#define BYTES ((size_t)64 << 20)
#define PAGE 4096
#define HUGE ((size_t)2 << 20)

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Maps, prepares as `how` says, writes a word a page; prints per page. */
static int measure(const char *how, int populate, int huge) {
  char *m = mmap(NULL, BYTES + HUGE, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) {
    perror("mmap");
    return 1;
  }
  char *p = (char *)(((uintptr_t)m + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
  double t0 = now();
#ifdef MADV_HUGEPAGE
  if (huge) (void)madvise(p, BYTES, MADV_HUGEPAGE);
#endif
#ifdef MADV_POPULATE_WRITE
  if (populate) (void)madvise(p, BYTES, MADV_POPULATE_WRITE);
#endif
  double t1 = now();
  for (size_t i = 0; i < BYTES; i += PAGE) ((volatile char *)p)[i + 64] = 1;
  double t2 = now();
  double pages = (double)(BYTES / PAGE);
  printf("%-10s prepare %6.2f us/page, first write %6.2f us/page, "
         "total %6.2f us/page\n",
         how, (t1 - t0) / pages * 1e6, (t2 - t1) / pages * 1e6,
         (t2 - t0) / pages * 1e6);
  munmap(m, BYTES + HUGE);
  return 0;
}

int main(void) {
  int rc = measure("plain", 0, 0);
  rc |= measure("populated", 1, 0);
  rc |= measure("huge", 1, 1);
  return rc;
}
