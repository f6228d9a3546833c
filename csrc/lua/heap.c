/*
 * heap.c: size classes for a lua_State's small blocks (see heap.h).
 *
 * Lua tells the allocator the size of every block it frees or resizes
 * (osize), so a block needs no header: its class is osize's. A class is
 * a free list threaded through its free blocks; an empty one takes the
 * next bytes of the current chunk. Chunks grow from 8 KB to 256 KB.
 *
 * Freed blocks stay in their class, so a heap keeps the most it ever
 * held of each class. lheap_trim gives back the chunks all of whose
 * blocks are free: it counts each chunk's free bytes by walking the free
 * lists (O(free blocks x log chunks)), so it runs when it pays: when an
 * idle worker has collected its garbage, and when a task's memory limit
 * stops the heap's growth after enough was freed.
 *
 * The one case that could fail where Lua forbids it: shrinking a big
 * block (from malloc) to a small size, which moves it into a class
 * (Lua assumes a shrink never fails). If no block of that class or a
 * bigger one can be had, the big block stays where it is and is
 * remembered as `oversize`, so that its eventual free goes to free().
 * Only past NOVERSIZE such blocks at once, memory exhausted each time,
 * does the shrink fail (Lua 5.4 copes: it raises a memory error or
 * keeps the old block, which stays valid).
 *
 * CONC_HEAP=off in the environment makes every heap plain malloc,
 * realloc and free (`make valgrind` and `make helgrind` set it, so that
 * memcheck sees each block).
 */
#include <stdatomic.h>
#include <stdint.h>
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
  size_t size;        /* bytes, this header included */
  char *carved_end;   /* where carving stopped (the current one: bump) */
} chunk;

/* Blocks start GRAIN-aligned after the header: Lua's blocks hold
 * doubles and pointers, and malloc's alignment is 16. */
#define CHUNK_HEAD ((sizeof(chunk) + GRAIN - 1) & ~(size_t)(GRAIN - 1))

struct lheap {
  int passthrough;           /* CONC_HEAP=off: malloc for every block */
  free_block *free[NCLASS];  /* class c: blocks of (c + 1) * GRAIN bytes */
  char *bump, *end;          /* the current chunk's bytes not yet carved */
  chunk *chunks;             /* the current one first */
  size_t next_size;          /* the next chunk's size */
  size_t chunk_bytes;
  size_t chunk_limit;        /* chunk_bytes may not pass it (0: none) */
  size_t freed;              /* bytes freed into classes since a trim */
  int noversize;
  void *oversize[NOVERSIZE]; /* big blocks Lua takes for small ones */
};

static atomic_size_t all_chunk_bytes;  /* every heap's, for conc.stats */

static inline int class_of(size_t n) { return (int)((n - 1) / GRAIN); }
static inline size_t class_size(int c) { return (size_t)(c + 1) * GRAIN; }

static int passthrough(void) {
  static atomic_int mode;  /* 0 unknown, 1 heap, 2 off */
  int m = atomic_load_explicit(&mode, memory_order_relaxed);
  if (m == 0) {
    const char *e = getenv("CONC_HEAP");
    m = e != NULL && strcmp(e, "off") == 0 ? 2 : 1;
    atomic_store_explicit(&mode, m, memory_order_relaxed);
  }
  return m == 2;
}

lheap *lheap_new(void) {
  lheap *h = calloc(1, sizeof *h);
  if (h != NULL) {
    h->next_size = CHUNK_FIRST;
    h->passthrough = passthrough();
  }
  return h;
}

static void count_chunk_bytes(lheap *h, size_t add, size_t sub) {
  h->chunk_bytes = h->chunk_bytes + add - sub;
  if (add) atomic_fetch_add_explicit(&all_chunk_bytes, add, memory_order_relaxed);
  if (sub) atomic_fetch_sub_explicit(&all_chunk_bytes, sub, memory_order_relaxed);
}

void lheap_free(lheap *h) {
  if (h == NULL) return;
  for (int i = 0; i < h->noversize; i++) free(h->oversize[i]);
  count_chunk_bytes(h, 0, h->chunk_bytes);
  chunk *c = h->chunks;
  while (c != NULL) {
    chunk *next = c->next;
    UNPOISON(c, c->size);
    free(c);
    c = next;
  }
  free(h);
}

void lheap_limit(lheap *h, size_t more) {
  h->chunk_limit = more ? h->chunk_bytes + more : 0;
}

size_t lheap_chunk_bytes(const lheap *h) { return h->chunk_bytes; }

size_t lheap_all_chunk_bytes(void) {
  return atomic_load_explicit(&all_chunk_bytes, memory_order_relaxed);
}

/* ---- giving chunks back ------------------------------------------------- */

static int by_address(const void *a, const void *b) {
  uintptr_t x = (uintptr_t) * (chunk *const *)a;
  uintptr_t y = (uintptr_t) * (chunk *const *)b;
  return x < y ? -1 : x > y;
}

/* The index in v (n chunks, by address) of the chunk holding p. */
static size_t chunk_index(chunk *const *v, size_t n, const void *p) {
  size_t lo = 0, hi = n;  /* v[lo] <= p < v[hi] */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if ((uintptr_t)v[mid] <= (uintptr_t)p) lo = mid;
    else hi = mid;
  }
  return lo;
}

/* The next free block after b (its link read under ASan's poison). */
static free_block *next_of(free_block *b) {
  UNPOISON(b, sizeof *b);
  free_block *next = b->next;
  POISON(b, sizeof *b);
  return next;
}

size_t lheap_trim(lheap *h) {
  h->freed = 0;
  if (h->passthrough || h->chunks == NULL) return 0;
  h->chunks->carved_end = h->bump;
  size_t n = 0;
  for (chunk *c = h->chunks; c; c = c->next) n++;
  chunk **v = malloc(n * sizeof *v);
  size_t *free_bytes = calloc(n, sizeof *free_bytes);
  if (v == NULL || free_bytes == NULL) {
    free(v);
    free(free_bytes);
    return 0;
  }
  n = 0;
  for (chunk *c = h->chunks; c; c = c->next) v[n++] = c;
  qsort(v, n, sizeof *v, by_address);
  for (int k = 0; k < NCLASS; k++)
    for (free_block *b = h->free[k]; b; b = next_of(b))
      free_bytes[chunk_index(v, n, b)] += class_size(k);
  /* Wholly free: every byte carved from it is in a free list. Marked by
   * setting its count to SIZE_MAX. */
  size_t given = 0;
  for (size_t i = 0; i < n; i++) {
    size_t carved = (size_t)(v[i]->carved_end - (char *)v[i]) - CHUNK_HEAD;
    if (free_bytes[i] == carved) free_bytes[i] = SIZE_MAX;
  }
  for (int k = 0; k < NCLASS; k++) {
    free_block **link = &h->free[k];
    for (free_block *b = *link; b; b = next_of(b)) {
      if (free_bytes[chunk_index(v, n, b)] == SIZE_MAX) continue;
      UNPOISON(link, sizeof *link);  /* a block's link, or the list head */
      *link = b;
      if (link != &h->free[k]) POISON(link, sizeof *link);
      link = &b->next;
    }
    UNPOISON(link, sizeof *link);
    *link = NULL;
    if (link != &h->free[k]) POISON(link, sizeof *link);
  }
  /* Free them, except the current chunk, which starts over. */
  for (chunk **link = &h->chunks; *link;) {
    chunk *c = *link;
    if (free_bytes[chunk_index(v, n, c)] != SIZE_MAX) {
      link = &c->next;
    } else if (c == h->chunks) {
      h->bump = (char *)c + CHUNK_HEAD;
      POISON(h->bump, (size_t)(h->end - h->bump));
      link = &c->next;
    } else {
      *link = c->next;
      given += c->size;
      UNPOISON(c, c->size);
      free(c);
    }
  }
  free(v);
  free(free_bytes);
  count_chunk_bytes(h, 0, given);
  return given;
}

/* ---- blocks ----------------------------------------------------------------- */

/* A new chunk to carve from, with room for a block of `need` bytes (the
 * old one's tail, under one block of the class asked for, is left
 * unused); within chunk_limit, if one is set. */
static int grow(lheap *h, size_t need) {
  size_t size = h->next_size;
  if (h->chunk_limit) {
    size_t room = h->chunk_limit > h->chunk_bytes
                      ? h->chunk_limit - h->chunk_bytes : 0;
    if (room < size) size = room;
    if (size < CHUNK_HEAD + need) return 0;
  }
  chunk *c = malloc(size);
  if (c == NULL) return 0;
  if (h->chunks != NULL) h->chunks->carved_end = h->bump;
  c->size = size;
  c->next = h->chunks;
  h->chunks = c;
  count_chunk_bytes(h, size, 0);
  if (h->next_size < CHUNK_MAX) h->next_size *= 2;
  h->bump = (char *)c + CHUNK_HEAD;
  h->end = (char *)c + size;
  POISON(h->bump, (size_t)(h->end - h->bump));
  return 1;
}

/* Takes the first block of class c; NULL if there is none. */
static void *pop_class(lheap *h, int c) {
  free_block *b = h->free[c];
  if (b == NULL) return NULL;
  h->free[c] = next_of(b);
  return b;
}

/* A block of n bytes: from its class, else carved, else from a new
 * chunk, else from a bigger class. Under a chunk limit, a heap that
 * freed enough since its last trim trims before it gives up. Under
 * ASan only its n bytes are addressable. */
static void *small_alloc(lheap *h, size_t n) {
  int c = class_of(n);
  size_t size = class_size(c);
  void *p = pop_class(h, c);
  if (p == NULL) {
    if (h->bump != NULL && (size_t)(h->end - h->bump) >= size) {
      p = h->bump;
      h->bump += size;
    } else if (grow(h, size) ||
               (h->chunk_limit && h->freed >= h->chunk_bytes / 4 &&
                lheap_trim(h) > 0 && grow(h, size))) {
      p = h->bump;
      h->bump += size;
    } else {
      for (int k = c + 1; k < NCLASS && p == NULL; k++) p = pop_class(h, k);
      if (p == NULL) return NULL;
    }
  }
  UNPOISON(p, n);
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
  UNPOISON(b, sizeof *b);
  b->next = h->free[c];
  h->free[c] = b;
  h->freed += class_size(c);
  POISON(p, class_size(c));
}

/* realloc, except that a failed shrink keeps the block. */
static void *big_realloc(void *ptr, size_t osize, size_t nsize) {
  void *p = realloc(ptr, nsize);
  return p != NULL || nsize > osize ? p : ptr;
}

void *lheap_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  lheap *h = (lheap *)ud;
  if (h->passthrough) {
    if (nsize > 0) return big_realloc(ptr, ptr ? osize : 0, nsize);
    free(ptr);
    return NULL;
  }
  if (ptr == NULL) {  /* osize is a type tag then */
    if (nsize == 0) return NULL;
    return nsize <= LHEAP_SMALL ? small_alloc(h, nsize) : malloc(nsize);
  }
  if (osize == 0) {
    /* Not Lua (it always says a block's size): a C module that frees
     * through the state's allocator without it. The block's class is
     * unknown; it is left alone, and cannot be resized. */
    return NULL;
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
    void *p = big_realloc(ptr, osize, nsize);
    if (p == NULL) return NULL;  /* a growth that failed: still oversize */
    if (nsize <= LHEAP_SMALL) h->oversize[i] = p;
    else h->oversize[i] = h->oversize[--h->noversize];
    return p;
  }
  if (nsize > LHEAP_SMALL) {
    if (!osmall) return big_realloc(ptr, osize, nsize);
    void *p = malloc(nsize);  /* a small block outgrows the classes */
    if (p == NULL) return NULL;
    memcpy(p, ptr, osize);
    small_free(h, ptr, osize);
    return p;
  }
  if (osmall) {
    /* Within the classes: a block changing class moves; a shrink that
     * finds no block keeps its own (big enough, only wasteful). */
    if (class_of(nsize) == class_of(osize)) {
      UNPOISON(ptr, nsize);
      return ptr;
    }
    void *p = small_alloc(h, nsize);
    if (p == NULL) return nsize < osize ? ptr : NULL;
    memcpy(p, ptr, nsize < osize ? nsize : osize);
    small_free(h, ptr, osize);
    return p;
  }
  /* A big block shrinks into the classes. */
  void *p = small_alloc(h, nsize);
  if (p == NULL) {
    if (h->noversize == NOVERSIZE) return NULL;  /* see the top */
    h->oversize[h->noversize++] = ptr;
    return ptr;
  }
  memcpy(p, ptr, nsize);
  free(ptr);
  return p;
}
