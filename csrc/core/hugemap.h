/*
 * hugemap.h: 2 MB regions, aligned, either in a huge page present at
 * once or in 4 KB pages made present part by part.
 *
 * On this kind of machine (a VM with shadow page tables) the first write
 * from user code to a fresh 4 KB page costs 10-14 us, and still 4-6 us
 * after the kernel populated it (MADV_POPULATE_WRITE, ~1 us a page),
 * while a transparent huge page populated in one madvise costs ~0.25 us
 * per 4 KB in all (bench/c/first_touch.c; bench/run prints its figures).
 * So memory that many new states need at once (their first heap chunks,
 * lua/pages.c) comes from such mappings. Where the kernel has no huge
 * page to give (THP off, memory fragmented) the mapping is of 4 KB
 * pages, populated the same way.
 */
#ifndef CONC_HUGEMAP_H
#define CONC_HUGEMAP_H

#include <stddef.h>
#include "../conc.h" /* CONC_API: hidden in every build */

#define CONC_HUGE_BYTES ((size_t)2 << 20)

/* CONC_HUGE_BYTES bytes aligned to them (NULL: no memory): if `huge`,
 * in a huge page, present; else reserved in 4 KB pages, none present
 * (conc__huge_populate makes a part present when it is needed). */
CONC_API void *conc__huge_map(int huge);
/* Makes n bytes at p present in one system call. */
CONC_API void conc__huge_populate(void *p, size_t n);
/* Unmaps what conc__huge_map returned. */
CONC_API void conc__huge_unmap(void *p);

#endif
