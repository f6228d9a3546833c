/*
 * pages.h: page-aligned blocks for the first chunk of a worker state's
 * heap (heap.c), populated in one system call rather than page fault by
 * page fault (pages.c says why). Any thread may get and put.
 */
#ifndef CONC_LPAGES_H
#define CONC_LPAGES_H

#include "../conc.h" /* CONC_API: hidden in every build */

/* The block's size: a fresh state with a parked task's function fits. */
#define LPAGES_BLOCK (16u << 10)

typedef struct lpages_region lpages_region;

/* A block of LPAGES_BLOCK bytes, its pages present (NULL: no memory);
 * *owner is told where it came from, for lpages_put. */
CONC_API void *lpages_get(lpages_region **owner);
/* Gives a block back. */
CONC_API void lpages_put(void *p, lpages_region *owner);

#endif
