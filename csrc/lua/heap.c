/*
 * heap.c: size classes for a lua_State's small blocks (see heap.h).
 *
 * Lua tells the allocator the size of every block it frees or resizes
 * (osize), so a block needs no header: its class is osize's. A class is
 * a free list threaded through its free blocks; an empty one takes the
 * next bytes of the current chunk. Chunks grow from 8 KB to 256 KB and
 * are freed together with the heap.
 *
 * The one case that could fail where Lua forbids it: shrinking a big
 * block (from malloc) to a small size, which moves it into a class
 * (Lua assumes a shrink never fails). If no small block can be had, the
 * big block stays where it is and is remembered as `oversize`, so that
 * its eventual free goes to free(). Memory runs out for that first.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "heap.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define GRAIN 16
#define NCLASS (LHEAP_SMALL / GRAIN)
#define CHUNK_FIRST (8u << 10)
#define CHUNK_MAX (256u << 10)
#define NOVERSIZE 8

typedef struct free_block {
  struct free_block *next;
} free_block;

typedef struct chunk {
  struct chunk *next;
  size_t size;  /* bytes, this header included */
} chunk;

struct lheap {
  free_block *free[NCLASS];  /* class c: blocks of (c + 1) * GRAIN bytes */
  char *bump, *end;          /* the current chunk's bytes not yet carved */
  chunk *chunks;
  size_t next_size;          /* the next chunk's size */
  size_t chunk_bytes;
  int noversize;
  void *oversize[NOVERSIZE]; /* big blocks Lua takes for small ones */
};

static atomic_size_t all_chunk_bytes;  /* every heap's, for conc.stats */

static inline int class_of(size_t n) { return (int)((n - 1) / GRAIN); }

lheap *lheap_new(void) {
  lheap *h = calloc(1, sizeof *h);
  if (h != NULL) h->next_size = CHUNK_FIRST;
  return h;
}

void lheap_free(lheap *h) {
  if (h == NULL) return;
  for (int i = 0; i < h->noversize; i++) free(h->oversize[i]);
  atomic_fetch_sub_explicit(&all_chunk_bytes, h->chunk_bytes,
                            memory_order_relaxed);
  chunk *c = h->chunks;
  while (c != NULL) {
    chunk *next = c->next;
    UNPOISON(c, c->size);
    free(c);
    c = next;
  }
  free(h);
}

size_t lheap_chunk_bytes(const lheap *h) { return h->chunk_bytes; }

size_t lheap_all_chunk_bytes(void) {
  return atomic_load_explicit(&all_chunk_bytes, memory_order_relaxed);
}

/* A new chunk to carve from (the old one's tail, under one block of the
 * class asked for, is left unused). */
static int grow(lheap *h) {
  size_t size = h->next_size;
  chunk *c = malloc(size);
  if (c == NULL) return 0;
  c->size = size;
  c->next = h->chunks;
  h->chunks = c;
  h->chunk_bytes += size;
  atomic_fetch_add_explicit(&all_chunk_bytes, size, memory_order_relaxed);
  if (h->next_size < CHUNK_MAX) h->next_size *= 2;
  /* Blocks start GRAIN-aligned: Lua's blocks hold doubles and pointers. */
  h->bump = (char *)c + ((sizeof *c + GRAIN - 1) & ~(size_t)(GRAIN - 1));
  h->end = (char *)c + size;
  POISON(h->bump, (size_t)(h->end - h->bump));
  return 1;
}

static void *small_alloc(lheap *h, size_t n) {
  int c = class_of(n);
  size_t size = (size_t)(c + 1) * GRAIN;
  free_block *b = h->free[c];
  if (b != NULL) {
    UNPOISON(b, size);
    h->free[c] = b->next;
    return b;
  }
  if ((size_t)(h->end - h->bump) < size && !grow(h)) return NULL;
  void *p = h->bump;
  h->bump += size;
  UNPOISON(p, size);
  return p;
}

/* Where p is among the oversize blocks, or -1. */
static int find_oversize(const lheap *h, const void *p) {
  for (int i = 0; i < h->noversize; i++)
    if (h->oversize[i] == p) return i;
  return -1;
}

static void small_free(lheap *h, void *p, size_t n) {
  int i;
  if (h->noversize > 0 && (i = find_oversize(h, p)) >= 0) {
    h->oversize[i] = h->oversize[--h->noversize];
    free(p);
    return;
  }
  int c = class_of(n);
  free_block *b = (free_block *)p;
  b->next = h->free[c];
  h->free[c] = b;
  POISON((char *)p + sizeof *b, (size_t)(c + 1) * GRAIN - sizeof *b);
}

void *lheap_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  lheap *h = (lheap *)ud;
  if (ptr == NULL) {  /* osize is a type tag then */
    if (nsize == 0) return NULL;
    return nsize <= LHEAP_SMALL ? small_alloc(h, nsize) : malloc(nsize);
  }
  int osmall = osize <= LHEAP_SMALL;
  if (nsize == 0) {
    if (osmall) small_free(h, ptr, osize);
    else free(ptr);
    return NULL;
  }
  int i;
  if (osmall && h->noversize > 0 && (i = find_oversize(h, ptr)) >= 0) {
    /* An oversize block resized: it is malloc's, whatever its size. */
    void *p = realloc(ptr, nsize);
    if (p == NULL) return nsize <= osize ? ptr : NULL;  /* still oversize */
    if (nsize <= LHEAP_SMALL) h->oversize[i] = p;
    else h->oversize[i] = h->oversize[--h->noversize];
    return p;
  }
  if (nsize > LHEAP_SMALL) {
    if (!osmall) return realloc(ptr, nsize);
    void *p = malloc(nsize);  /* a small block outgrows the classes */
    if (p == NULL) return NULL;
    memcpy(p, ptr, osize);
    small_free(h, ptr, osize);
    return p;
  }
  if (osmall) {
    /* Within the classes: a block changing class moves; a shrink that
     * finds no block keeps its own (big enough, only wasteful). */
    if (class_of(nsize) == class_of(osize)) return ptr;
    void *p = small_alloc(h, nsize);
    if (p == NULL) return nsize < osize ? ptr : NULL;
    memcpy(p, ptr, nsize < osize ? nsize : osize);
    small_free(h, ptr, osize);
    return p;
  }
  /* A big block shrinks into the classes. */
  void *p = small_alloc(h, nsize);
  if (p == NULL) {
    if (h->noversize == NOVERSIZE) {  /* out of memory, again and again */
      fputs("conc: fatal: out of memory shrinking a Lua block\n", stderr);
      abort();
    }
    h->oversize[h->noversize++] = ptr;
    return ptr;
  }
  memcpy(p, ptr, nsize);
  free(ptr);
  return p;
}
