/*
 * heap.c: size classes for a lua_State's small blocks (see heap.h).
 *
 * Lua tells the allocator the size of every block it frees or resizes
 * (osize), so a block needs no header: its class is osize's. A class is
 * a free list threaded through its free blocks; an empty one takes the
 * next bytes of the current chunk. Chunks grow from 16 KB (the first
 * from pages.h, populated in one go, not fault by fault) to 256 KB; the
 * heap keeps their addresses sorted (`index`), to find a block's chunk.
 * A block's real size is always its class's size (a bigger block lent
 * to a smaller class gives the rest back as a block of its own), so a
 * chunk whose carved bytes are all on free lists holds nothing.
 *
 * Freed blocks stay in their class, so a heap keeps the most it ever
 * held of each class. lheap_trim gives back the chunks all of whose
 * blocks are free: it counts each chunk's free bytes by walking the free
 * lists (O(free blocks x log chunks)); an idle worker calls it once its
 * garbage is collected.
 *
 * Bigger blocks: up to LHEAP_BIG, a block has a class too, 128 bytes
 * apart, and comes from its free list or from the current chunk while it
 * has room (a chunk is never made for one, but the first); else from
 * malloc. A fresh state's own big blocks (its global state, string
 * table, stacks, the globals' hash part) then share its first chunk
 * with its small ones: one chunk, populated at once (pages.c), instead
 * of eleven mallocs a state, each a page fault on fresh memory. A big
 * block is told from malloc's by address (in_chunks). A block shrinking
 * in place gives its rest back as class-sized blocks (two when the rest
 * is no class's size), so the free lists still account for every byte.
 *
 * Small blocks from malloc: while lheap_use_malloc is on (a task with a
 * memory limit, which must behave as malloc does: a block freed in one
 * class serves another) small blocks come from malloc, and when a big
 * block shrinks to a small size and no small block can be had, it stays
 * where it is (Lua assumes a shrink never fails). Either way the heap
 * becomes `mixed` for good: from then on, a small block is freed into a
 * class only if it lies in a chunk, else with free().
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
#include "pages.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define GRAIN 16
#define NSMALL (LHEAP_SMALL / GRAIN)
/* Blocks over LHEAP_SMALL, up to LHEAP_BIG, have classes 128 bytes apart
 * (see "Bigger blocks" at the top). */
#define BIG_GRAIN 128
#define NCLASS (NSMALL + (LHEAP_BIG - LHEAP_SMALL) / BIG_GRAIN)
#define CHUNK_FIRST LPAGES_BLOCK /* from pages.h: populated at once */
#define CHUNK_MAX (256u << 10)

typedef struct free_block {
  struct free_block *next;
} free_block;

typedef struct chunk {
  struct chunk *next;
  size_t size;        /* bytes, this header included */
  char *carved_end;   /* where carving stopped (the current one: bump) */
  lpages_region *pages; /* from lpages_get (NULL: from malloc) */
} chunk;

/* Blocks start GRAIN-aligned after the header: Lua's blocks hold
 * doubles and pointers, and malloc's alignment is 16. */
#define CHUNK_HEAD ((sizeof(chunk) + GRAIN - 1) & ~(size_t)(GRAIN - 1))

struct lheap {
  int passthrough;           /* CONC_HEAP=off: malloc for every block */
  int use_malloc;            /* small blocks from malloc for now */
  int mixed;                 /* some small blocks are malloc's */
  free_block *free[NCLASS];  /* class c: blocks of class_size(c) bytes */
  char *bump, *end;          /* the current chunk's bytes not yet carved */
  chunk *chunks;             /* the current one first */
  chunk **index;             /* every chunk, by address */
  size_t nchunks, index_cap;
  size_t next_size;          /* the next chunk's size */
  size_t chunk_bytes;
};

static atomic_size_t all_chunk_bytes;  /* every heap's, for conc.stats */

static inline int class_of(size_t n) {
  return n <= LHEAP_SMALL ? (int)((n - 1) / GRAIN)
                          : NSMALL + (int)((n - LHEAP_SMALL - 1) / BIG_GRAIN);
}
static inline size_t class_size(int c) {
  return c < NSMALL ? (size_t)(c + 1) * GRAIN
                    : LHEAP_SMALL + (size_t)(c - NSMALL + 1) * BIG_GRAIN;
}

/* Looked up for each heap (a state is made once per worker thread): a
 * flag cached between threads would be a race to Helgrind, which does
 * not know C11 atomics. */
static int passthrough(void) {
  /* getenv races only with setenv, which conc never calls. */
  const char *e = getenv("CONC_HEAP");  /* NOLINT(concurrency-mt-unsafe) */
  return e != NULL && strcmp(e, "off") == 0;
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
  if (add)
    atomic_fetch_add_explicit(&all_chunk_bytes, add, memory_order_relaxed);
  if (sub)
    atomic_fetch_sub_explicit(&all_chunk_bytes, sub, memory_order_relaxed);
}

/* A chunk back where it came from. */
static void chunk_free(chunk *c) {
  UNPOISON(c, c->size);
  if (c->pages != NULL) lpages_put(c, c->pages);
  else free(c);
}

void lheap_free(lheap *h) {
  if (h == NULL) return;
  count_chunk_bytes(h, 0, h->chunk_bytes);
  chunk *c = h->chunks;
  while (c != NULL) {
    chunk *next = c->next;
    chunk_free(c);
    c = next;
  }
  free(h->index);
  free(h);
}

void lheap_use_malloc(lheap *h, int on) {
  h->use_malloc = on;
  if (on) h->mixed = 1;
}

size_t lheap_all_chunk_bytes(void) {
  return atomic_load_explicit(&all_chunk_bytes, memory_order_relaxed);
}

/* ---- chunks ------------------------------------------------------------- */

/* The position in the index of the last chunk at or below p (0 if none). */
static size_t index_of(const lheap *h, const void *p) {
  size_t lo = 0, hi = h->nchunks;  /* index[lo] <= p < index[hi] */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if ((uintptr_t)h->index[mid] <= (uintptr_t)p) lo = mid;
    else hi = mid;
  }
  return lo;
}

/* Whether p lies in one of the heap's chunks. */
static int in_chunks(const lheap *h, const void *p) {
  if (h->nchunks == 0) return 0;
  const chunk *c = h->index[index_of(h, p)];
  return (uintptr_t)p >= (uintptr_t)c && (uintptr_t)p < (uintptr_t)c + c->size;
}

/* A new chunk to carve from (the old one's tail, under one block of the
 * class asked for, stays unused). */
static int grow(lheap *h) {
  if (h->nchunks == h->index_cap) {
    size_t cap = h->index_cap ? h->index_cap * 2 : 16;
    chunk **ix = realloc(h->index, cap * sizeof *ix);
    if (ix == NULL) return 0;
    h->index = ix;
    h->index_cap = cap;
  }
  size_t size = h->next_size;
  lpages_region *pages = NULL;
  chunk *c = size == LPAGES_BLOCK ? lpages_get(&pages) : malloc(size);
  if (c == NULL) return 0;
  size_t at = h->nchunks == 0 ? 0 : index_of(h, c) + 1;
  if (at == 1 && (uintptr_t)c < (uintptr_t)h->index[0]) at = 0;
  memmove(h->index + at + 1, h->index + at,
          (h->nchunks - at) * sizeof *h->index);
  h->index[at] = c;
  h->nchunks++;
  if (h->chunks != NULL) h->chunks->carved_end = h->bump;
  c->size = size;
  c->pages = pages;
  c->next = h->chunks;
  h->chunks = c;
  count_chunk_bytes(h, size, 0);
  if (h->next_size < CHUNK_MAX) h->next_size *= 2;
  h->bump = (char *)c + CHUNK_HEAD;
  h->end = (char *)c + size;
  POISON(h->bump, (size_t)(h->end - h->bump));
  return 1;
}

/* ---- free lists --------------------------------------------------------- */

/* The next free block after b (its link read under ASan's poison). */
static free_block *next_of(free_block *b) {
  UNPOISON(b, sizeof *b);
  free_block *next = b->next;
  POISON(b, sizeof *b);
  return next;
}

static void push_class(lheap *h, void *p, int c) {
  free_block *b = (free_block *)p;
  UNPOISON(b, sizeof *b);
  b->next = h->free[c];
  h->free[c] = b;
  POISON(p, class_size(c));
}

static void *pop_class(lheap *h, int c) {
  free_block *b = h->free[c];
  if (b == NULL) return NULL;
  h->free[c] = next_of(b);
  return b;
}

/* A block of class `have` now serves class `c` (smaller): the rest of it
 * goes back to the classes, as one block of the rest's size, or as two
 * when that size is no class's (a bigger class and a small one). */
static void split(lheap *h, void *p, int have, int c) {
  char *rest = (char *)p + class_size(c);
  size_t r = class_size(have) - class_size(c); /* a multiple of GRAIN */
  while (r > 0) {
    size_t piece = r;
    if (r > LHEAP_SMALL) /* the biggest class size that fits */
      piece = r < LHEAP_SMALL + BIG_GRAIN
                  ? LHEAP_SMALL
                  : LHEAP_SMALL + (r - LHEAP_SMALL) / BIG_GRAIN * BIG_GRAIN;
    push_class(h, rest, class_of(piece));
    rest += piece;
    r -= piece;
  }
}

/* A block of n bytes: from its class, else carved, else from a new
 * chunk, else from a bigger class. Under ASan only its n bytes are
 * addressable. */
static void *small_alloc(lheap *h, size_t n) {
  int c = class_of(n);
  size_t size = class_size(c);
  void *p = pop_class(h, c);
  if (p == NULL) {
    if ((h->bump != NULL && (size_t)(h->end - h->bump) >= size) || grow(h)) {
      p = h->bump;
      h->bump += size;
    } else {
      for (int k = c + 1; k < NSMALL && p == NULL; k++)
        if ((p = pop_class(h, k)) != NULL) split(h, p, k, c);
      if (p == NULL) return NULL;
    }
  }
  UNPOISON(p, n);
  return p;
}

/* A block of n bytes (LHEAP_SMALL < n <= LHEAP_BIG): from its class, else
 * carved from the current chunk if it fits (a chunk is made only if
 * there is none), else NULL: then malloc's. */
static void *big_alloc(lheap *h, size_t n) {
  int c = class_of(n);
  size_t size = class_size(c);
  void *p = pop_class(h, c);
  if (p == NULL) {
    if (h->nchunks == 0 && !grow(h)) return NULL;
    if ((size_t)(h->end - h->bump) < size) return NULL;
    p = h->bump;
    h->bump += size;
  }
  UNPOISON(p, n);
  return p;
}

/* A new block of n bytes where it belongs: the classes, else malloc. */
static void *new_block(lheap *h, size_t n) {
  if (h->use_malloc || n > LHEAP_BIG) return malloc(n);
  if (n <= LHEAP_SMALL) return small_alloc(h, n);
  void *p = big_alloc(h, n);
  return p != NULL ? p : malloc(n);
}

/* ---- giving chunks back ------------------------------------------------- */

size_t lheap_chunk_bytes(const lheap *h) { return h->chunk_bytes; }

size_t lheap_trim(lheap *h) {
  if (h->passthrough || h->chunks == NULL) return 0;
  h->chunks->carved_end = h->bump;
  size_t n = h->nchunks;
  size_t *free_bytes = calloc(n, sizeof *free_bytes);
  if (free_bytes == NULL) return 0;
  for (int k = 0; k < NCLASS; k++)
    for (free_block *b = h->free[k]; b; b = next_of(b))
      free_bytes[index_of(h, b)] += class_size(k);
  /* Wholly free: every byte carved from it is on a free list. Marked by
   * setting its count to SIZE_MAX. */
  for (size_t i = 0; i < n; i++) {
    const chunk *c = h->index[i];
    size_t carved = (size_t)(c->carved_end - (const char *)c) - CHUNK_HEAD;
    if (free_bytes[i] == carved) free_bytes[i] = SIZE_MAX;
  }
  for (int k = 0; k < NCLASS; k++) {
    free_block **link = &h->free[k];
    for (free_block *b = *link; b; b = next_of(b)) {
      if (free_bytes[index_of(h, b)] == SIZE_MAX) continue;
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
  size_t given = 0;
  for (chunk **link = &h->chunks; *link;) {
    chunk *c = *link;
    if (free_bytes[index_of(h, c)] != SIZE_MAX) {
      link = &c->next;
    } else if (c == h->chunks) {
      h->bump = (char *)c + CHUNK_HEAD;
      POISON(h->bump, (size_t)(h->end - h->bump));
      link = &c->next;
    } else {
      *link = c->next;
      given += c->size;
      c->carved_end = NULL;  /* dropped from the index below */
    }
  }
  size_t kept = 0;
  for (size_t i = 0; i < n; i++) {
    chunk *c = h->index[i];
    if (c->carved_end == NULL) {
      chunk_free(c);
    } else {
      h->index[kept++] = c;
    }
  }
  h->nchunks = kept;
  free(free_bytes);
  count_chunk_bytes(h, 0, given);
  return given;
}

/* ---- the allocator ------------------------------------------------------ */

/* realloc, except that a failed shrink keeps the block. */
static void *big_realloc(void *ptr, size_t osize, size_t nsize) {
  void *p = realloc(ptr, nsize);
  if (p == NULL && nsize <= osize) return ptr; /* still valid and big enough */
  return p;
}

/* Whether a small-sized block is malloc's (see the top). */
static inline int is_malloced(const lheap *h, const void *p) {
  return h->mixed && !in_chunks(h, p);
}

void *lheap_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  lheap *h = (lheap *)ud;
  if (h->passthrough) {
    if (nsize > 0) return big_realloc(ptr, ptr ? osize : 0, nsize);
    free(ptr);
    return NULL;
  }
  if (ptr == NULL) { /* osize is a type tag then */
    if (nsize == 0) return NULL;
    return new_block(h, nsize);
  }
  if (osize == 0) {
    /* Not Lua (it always says a block's size): a C module that frees
     * through the state's allocator without it. The block's class is
     * unknown; it is left alone, and cannot be resized. */
    return NULL;
  }
  if (osize > LHEAP_SMALL && !(osize <= LHEAP_BIG && in_chunks(h, ptr))) {
    if (nsize == 0) {
      free(ptr);
      return NULL;
    }
    if (nsize > LHEAP_SMALL || h->use_malloc)
      return big_realloc(ptr, osize, nsize);
    void *p = small_alloc(h, nsize); /* a shrink into the classes */
    if (p == NULL) {
      h->mixed = 1; /* it stays malloc's (see the top) */
      return ptr;
    }
    memcpy(p, ptr, nsize);
    free(ptr);
    return p;
  }
  if (osize <= LHEAP_SMALL && is_malloced(h, ptr)) {
    if (nsize == 0) {
      free(ptr);
      return NULL;
    }
    return big_realloc(ptr, osize, nsize); /* stays malloc's */
  }
  /* A block of the classes. */
  int oc = class_of(osize);
  if (nsize == 0) {
    push_class(h, ptr, oc);
    return NULL;
  }
  if (nsize > LHEAP_SMALL || h->use_malloc) {
    if (!h->use_malloc && nsize <= LHEAP_BIG && class_of(nsize) == oc) {
      UNPOISON(ptr, nsize);
      return ptr;
    }
    void *p = new_block(h, nsize); /* a bigger class, or malloc */
    if (p == NULL && nsize > osize) return NULL;
    if (p == NULL) { /* a shrink keeps its block's front */
      split(h, ptr, oc, class_of(nsize));
      return ptr;
    }
    memcpy(p, ptr, nsize < osize ? nsize : osize);
    push_class(h, ptr, oc);
    return p;
  }
  int nc = class_of(nsize);
  if (nc == oc) {
    UNPOISON(ptr, nsize);
    return ptr;
  }
  void *p = small_alloc(h, nsize);
  if (p == NULL) {
    if (nc > oc) return NULL;
    split(h, ptr, oc, nc); /* a shrink keeps its block's front */
    return ptr;
  }
  memcpy(p, ptr, nsize < osize ? nsize : osize);
  push_class(h, ptr, oc);
  return p;
}
