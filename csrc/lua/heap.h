/*
 * heap.h: the allocator of a worker's lua_State.
 *
 * Lua allocates and frees small blocks all the time (a table, its array
 * and hash parts, a string): building the message {id=i, name="task-"..i,
 * tags={1,2,3}} takes six blocks. Through realloc/free each cost ~100
 * instructions (callgrind, glibc 2.36); from a free list of the state's
 * own, about ten. So a worker's state takes its blocks of up to
 * LHEAP_SMALL bytes from size classes (16 bytes apart) carved out of
 * chunks it owns, blocks up to LHEAP_BIG from classes 128 bytes apart
 * while its chunks have room, and bigger ones from malloc. Only the state's thread
 * allocates from it (a lua_State is used by one thread at a time), so it
 * takes no lock.
 *
 * Freed small blocks go back to their class, not to malloc: what a task's
 * garbage took stays with the state until lheap_trim gives back the
 * chunks that hold nothing (an idle worker trims after its garbage
 * collection, see worker.c).
 */
#ifndef CONC_LHEAP_H
#define CONC_LHEAP_H

#include <stddef.h>
#include "../conc.h"  /* CONC_API: hidden in every build */

#define LHEAP_SMALL 256
/* Blocks up to LHEAP_BIG have classes too, carved from the chunks while
 * they have room (heap.c): a fresh state's bigger blocks (its global
 * state, string table, stacks, hash parts) then share its first chunk. */
#define LHEAP_BIG 2048

typedef struct lheap lheap;

/* A new, empty heap (NULL: out of memory). */
CONC_API lheap *lheap_new(void);
/* Frees the heap and its chunks; after lua_close of its state. */
CONC_API void lheap_free(lheap *h);
/* A lua_Alloc over h (ud: the heap). */
CONC_API void *lheap_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
/* While on, small blocks come from malloc, as malloc's reuse suits a
 * memory limit (a block freed in one class serves no other); after, the
 * heap tells malloc's small blocks from its own by address. */
CONC_API void lheap_use_malloc(lheap *h, int on);
/* Gives back to malloc every chunk none of whose blocks is in use;
 * returns the bytes given back. */
CONC_API size_t lheap_trim(lheap *h);
/* Bytes this heap took from malloc for its chunks. */
CONC_API size_t lheap_chunk_bytes(const lheap *h);
/* Bytes every heap alive took from malloc for its chunks. */
CONC_API size_t lheap_all_chunk_bytes(void);

#endif
