/*
 * test_heap.c: a worker state's allocator (csrc/lua/heap.c), built into
 * this test with malloc, realloc and free wrapped: to count what goes to
 * malloc and to make it fail on demand. Under ASan, heap.c poisons free
 * blocks, so a use after free within a class is reported too. The
 * first chunks' source (csrc/lua/pages.c) is tested here too.
 */
#include "check.h"
#include <sys/mman.h>
#include "../lua/pages.c" /* the first chunks: with the real malloc */

static int fail_malloc;      /* malloc and realloc return NULL */
static long big_frees;       /* free() calls that reached the system */

static void *test_malloc(size_t n) { return fail_malloc ? NULL : malloc(n); }
static void *test_realloc(void *p, size_t n) {
  return fail_malloc ? NULL : realloc(p, n);
}
static void test_free(void *p) {
  if (p != NULL) big_frees++;
  free(p);
}

#define malloc(n) test_malloc(n)
#define realloc(p, n) test_realloc(p, n)
#define free(p) test_free(p)
#include "../lua/heap.c"
#undef malloc
#undef realloc
#undef free

/* Fills n bytes at p with a pattern of seed; checks it. */
static void fill(void *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    ((unsigned char *)p)[i] = (unsigned char)(seed + i);
}
static int filled(const void *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    if (((const unsigned char *)p)[i] != (unsigned char)(seed + i)) return 0;
  return 1;
}

static void *alloc(lheap *h, void *p, size_t o, size_t n) {
  return lheap_alloc(h, p, o, n);
}

/* Blocks of every small size and some big ones hold their bytes apart;
 * a freed block is the next one of its class. */
static void blocks_are_disjoint_and_reused(void) {
  lheap *h = lheap_new();
  CHECK(h != NULL);
  enum { N = 600 };
  void *p[N];
  for (unsigned i = 0; i < N; i++) {
    size_t n = 1 + i % 300;  /* 1..300: every class, and malloc's */
    p[i] = alloc(h, NULL, 5, n);  /* osize: a type tag (a table) */
    CHECK(p[i] != NULL);
    CHECK(((uintptr_t)p[i] & 15) == 0 || n > LHEAP_SMALL);
    fill(p[i], n, i);
  }
  for (unsigned i = 0; i < N; i++) CHECK(filled(p[i], 1 + i % 300, i));
  void *q = p[100];  /* 101 bytes: class 6 */
  CHECK(alloc(h, q, 101, 0) == NULL);
  CHECK(alloc(h, NULL, 0, 97) == q);  /* the same class: reused first */
  for (unsigned i = 0; i < N; i++) alloc(h, p[i], 1 + i % 300, 0);
  CHECK(h->chunk_bytes >= CHUNK_FIRST);
  lheap_free(h);
}

/* Resizing keeps the bytes, across classes and to and from malloc. */
static void resizing_keeps_content(void) {
  lheap *h = lheap_new();
  static const size_t sizes[] = {8, 16, 17, 40, 200, 256, 257, 1000, 64, 3};
  void *p = alloc(h, NULL, 0, 5);
  size_t n = 5;
  fill(p, n, 7);
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    size_t m = sizes[k];
    void *q = alloc(h, p, n, m);
    CHECK(q != NULL);
    CHECK(filled(q, n < m ? n : m, 7));
    fill(q, m, 7);
    if (m <= LHEAP_SMALL && n <= LHEAP_SMALL && class_of(m) == class_of(n))
      CHECK(q == p);  /* the same class: no move */
    p = q;
    n = m;
  }
  alloc(h, p, n, 0);
  lheap_free(h);
}

/* Every block goes back: the heap and its chunks are freed whole, and
 * the system frees count only what went to malloc. */
static void free_returns_everything(void) {
  lheap *h = lheap_new();
  big_frees = 0;
  void *small = alloc(h, NULL, 0, 100);
  void *big = alloc(h, NULL, 0, 5000);
  alloc(h, small, 100, 0);
  CHECK_EQ(big_frees, 0);
  alloc(h, big, 5000, 0);
  CHECK_EQ(big_frees, 1);
  size_t before = lheap_all_chunk_bytes();
  CHECK(before >= h->chunk_bytes);
  size_t mine = h->chunk_bytes;
  lheap_free(h);  /* ASan: no leak */
  CHECK_EQ(lheap_all_chunk_bytes(), before - mine);
}

/* A big block shrinking to a small size when no small block can be had
 * stays put (a shrink never fails), and later goes to free(), resized or
 * not; the heap tells it from its own blocks by address. */
static void shrink_without_memory_keeps_the_block(void) {
  lheap *h = lheap_new();
  void *mine = alloc(h, NULL, 0, 40);  /* a chunk, and a block of it */
  while ((size_t)(h->end - h->bump) >= 16) alloc(h, NULL, 0, 16);
  void *big = alloc(h, NULL, 0, 1000);
  fill(big, 1000, 3);
  fail_malloc = 1;
  void *p = alloc(h, big, 1000, 100);
  CHECK(p == big);          /* a shrink never fails */
  CHECK(filled(p, 100, 3));
  CHECK(h->mixed);
  CHECK(alloc(h, p, 100, 200) == NULL);  /* a growth may fail */
  CHECK(alloc(h, p, 100, 50) == p);      /* a shrink stays */
  fail_malloc = 0;
  void *q = alloc(h, p, 50, 120);        /* realloc'd, still malloc's */
  CHECK(q != NULL && filled(q, 50, 3));
  big_frees = 0;
  alloc(h, q, 120, 0);
  CHECK_EQ(big_frees, 1);   /* free(), not a class */
  alloc(h, mine, 40, 0);
  CHECK_EQ(big_frees, 1);   /* the heap's own: its class */
  CHECK(alloc(h, NULL, 0, 33) == mine);
  lheap_free(h);
}

/* Every shrink succeeds: a big block whose realloc fails stays, a small
 * one that cannot move keeps its block's front (the rest becomes a free
 * block). A block that is not Lua's (osize 0) is left alone. */
static void shrinks_do_not_fail(void) {
  lheap *h = lheap_new();
  void *big = alloc(h, NULL, 0, 4000);
  fill(big, 4000, 9);
  fail_malloc = 1;
  CHECK(alloc(h, big, 4000, 1000) == big);  /* realloc failed: kept */
  CHECK(filled(big, 1000, 9));
  fail_malloc = 0;
  alloc(h, big, 1000, 0);
  void *s = alloc(h, NULL, 0, 200);          /* class 12 */
  fill(s, 200, 4);
  while ((size_t)(h->end - h->bump) >= 16) alloc(h, NULL, 0, 16);
  fail_malloc = 1;
  CHECK(alloc(h, s, 200, 40) == s);          /* class 2: no block, kept */
  CHECK(filled(s, 40, 4));
  CHECK(alloc(h, NULL, 0, 150) == (char *)s + 48);  /* its rest, 9 */
  fail_malloc = 0;
  int x;
  CHECK(alloc(h, &x, 0, 0) == NULL);  /* osize 0: left alone */
  lheap_free(h);
}

/* With no memory for a chunk, a block comes from a bigger class, whose
 * rest becomes a free block; a block growing within its class stays
 * (and, under ASan, becomes addressable up to its new size). */
static void borrows_from_bigger_classes(void) {
  lheap *h = lheap_new();
  void *b = alloc(h, NULL, 0, 250);
  CHECK(alloc(h, b, 250, 0) == NULL);  /* class 15 now holds one */
  while ((size_t)(h->end - h->bump) >= 16) alloc(h, NULL, 0, 16);
  fail_malloc = 1;
  CHECK(alloc(h, NULL, 0, 20) == b);   /* class 1, from 15 */
  CHECK(alloc(h, NULL, 0, 224) == (char *)b + 32);  /* the rest: 13 */
  CHECK(alloc(h, NULL, 0, 20) == NULL);  /* nothing left */
  fail_malloc = 0;
  void *q = alloc(h, NULL, 0, 17);
  fill(q, 17, 1);
  CHECK(alloc(h, q, 17, 32) == q);  /* class 1 still */
  fill(q, 32, 1);
  CHECK(filled(q, 32, 1));
  lheap_free(h);
}

/* Trimming gives back the chunks whose blocks are all free and keeps the
 * others, their blocks usable; lent and split blocks count right. */
static void trim_gives_back_free_chunks(void) {
  lheap *h = lheap_new();
  enum { N = 20000 };
  static void *p[N];
  for (int i = 0; i < N; i++) {
    p[i] = alloc(h, NULL, 0, 48);
    fill(p[i], 48, (unsigned)i);
  }
  size_t all = h->chunk_bytes;
  CHECK(all > 900000);
  CHECK_EQ(lheap_trim(h), 0);  /* nothing free */
  for (int i = 100; i < N; i++) alloc(h, p[i], 48, 0);
  size_t given = lheap_trim(h);
  CHECK(given > all / 2);
  CHECK_EQ(h->chunk_bytes, all - given);
  for (int i = 0; i < 100; i++) CHECK(filled(p[i], 48, (unsigned)i));
  for (int i = 100; i < N; i++) {  /* the rest serves again */
    p[i] = alloc(h, NULL, 0, 48);
    fill(p[i], 48, (unsigned)i);
  }
  for (int i = 0; i < N; i++) CHECK(filled(p[i], 48, (unsigned)i));
  /* Split blocks: shrink some within the classes, with no memory for a
   * chunk: a block of a bigger class is lent, or the block kept. */
  static void *rest[CHUNK_MAX / 16];
  int nrest = 0;
  while ((size_t)(h->end - h->bump) >= 16)
    rest[nrest++] = alloc(h, NULL, 0, 16);
  fail_malloc = 1;
  for (int i = 0; i < 50; i++) {  /* kept and split, or lent and split */
    p[i] = alloc(h, p[i], 48, 16);
    CHECK(p[i] != NULL && filled(p[i], 16, (unsigned)i));
  }
  fail_malloc = 0;
  for (int i = 0; i < N; i++) alloc(h, p[i], i < 50 ? 16 : 48, 0);
  for (int i = 0; i < nrest; i++) alloc(h, rest[i], 16, 0);
  for (int i = 0; i < 10; i++) lheap_trim(h);
  CHECK(h->chunk_bytes <= CHUNK_MAX);  /* the current chunk only */
  lheap_free(h);
}

/* While use_malloc is on, small blocks are malloc's; after, they are
 * still freed to malloc, and the heap's own blocks to their classes. */
static void malloc_while_limited(void) {
  lheap *h = lheap_new();
  void *mine = alloc(h, NULL, 0, 64);
  size_t chunks = h->chunk_bytes;
  lheap_use_malloc(h, 1);
  enum { N = 1000 };
  static void *p[N];
  for (int i = 0; i < N; i++) {
    p[i] = alloc(h, NULL, 0, 1 + (size_t)i % 256);
    fill(p[i], 1 + (size_t)i % 256, (unsigned)i);
  }
  CHECK_EQ(h->chunk_bytes, chunks);  /* no chunk grew */
  void *moved = alloc(h, mine, 64, 100);   /* out of the classes */
  CHECK(moved != mine);
  lheap_use_malloc(h, 0);
  big_frees = 0;
  for (int i = 0; i < N; i++) {
    size_t n = 1 + (size_t)i % 256;
    CHECK(filled(p[i], n, (unsigned)i));
    if (i % 2) p[i] = alloc(h, p[i], n, n / 2 + 1);  /* stays malloc's */
    CHECK(filled(p[i], i % 2 ? n / 2 + 1 : n, (unsigned)i));
    alloc(h, p[i], i % 2 ? n / 2 + 1 : n, 0);
  }
  CHECK_EQ(big_frees, N);
  alloc(h, moved, 100, 0);
  CHECK_EQ(big_frees, N + 1);
  CHECK(alloc(h, NULL, 0, 60) == mine);   /* its class kept it */
  lheap_free(h);
}

/* CONC_HEAP=off: every block goes to malloc and free. */
static void passthrough_when_off(void) {
  setenv("CONC_HEAP", "off", 1);
  lheap *h = lheap_new();
  void *p = alloc(h, NULL, 0, 24);
  big_frees = 0;
  alloc(h, p, 24, 0);
  CHECK_EQ(big_frees, 1);
  CHECK_EQ(h->chunk_bytes, 0);
  lheap_free(h);
}

/* Random allocations, resizes and frees against a record of what each
 * block must hold, in phases with small blocks from malloc, with malloc
 * failing now and then, trimming now and then; at the end, with
 * everything freed, a trim leaves the current chunk only. */
static void random_operations(void) {
  lheap *h = lheap_new();
  enum { SLOTS = 512 };
  void *p[SLOTS] = {0};
  size_t n[SLOTS] = {0};
  unsigned seed[SLOTS] = {0};
  uint32_t x = 12345;
  for (long op = 0; op < scaled(400000, 4); op++) {
    x = x * 1664525u + 1013904223u;
    unsigned i = (x >> 8) % SLOTS;
    size_t m = (x >> 20) % 8 == 0 ? 257 + (x >> 17) % 2000  /* malloc.s */
                                  : 1 + (x >> 17) % 256;
    if (op % 50000 == 0) lheap_trim(h);
    if (op % 30000 == 0) lheap_use_malloc(h, (int)(op / 30000) % 3 == 1);
    fail_malloc = (x >> 4) % 64 == 0;
    if (p[i] == NULL) {
      p[i] = alloc(h, NULL, 0, m);
      if (p[i] == NULL) {
        CHECK(fail_malloc);
        continue;
      }
    } else if ((x & 3) == 0) {
      CHECK(filled(p[i], n[i], seed[i]));
      alloc(h, p[i], n[i], 0);
      p[i] = NULL;
      continue;
    } else {
      CHECK(filled(p[i], n[i], seed[i]));
      void *q = alloc(h, p[i], n[i], m);
      if (q == NULL) {  /* only a growth may fail, keeping the block */
        CHECK(fail_malloc && m > n[i]);
        continue;
      }
      p[i] = q;
      CHECK(filled(p[i], n[i] < m ? n[i] : m, seed[i]));
    }
    n[i] = m;
    seed[i] = (unsigned)op;
    fill(p[i], m, seed[i]);
  }
  fail_malloc = 0;
  for (unsigned i = 0; i < SLOTS; i++)
    if (p[i]) {
      CHECK(filled(p[i], n[i], seed[i]));
      alloc(h, p[i], n[i], 0);
    }
  lheap_trim(h);
  CHECK(h->chunk_bytes <= CHUNK_MAX);
  lheap_free(h);
}

/* Blocks over LHEAP_SMALL up to LHEAP_BIG come from the chunks while
 * they have room (a freed one serves its class again); bigger ones, and
 * any once the chunk is full, from malloc. A big block shrinking in place
 * (no memory for a move) gives its rest back in class-sized pieces, so
 * the chunk still holds nothing once everything is freed.
 * clang-tidy's analyzer does not follow in_chunks's binary search from
 * here (it reports frees of class blocks that cannot happen): the body
 * is hidden from it, not from the compilers that build and run it. */
static void big_classes(void) {
#ifndef __clang_analyzer__
  lheap *h = lheap_new();
  void *a = alloc(h, NULL, 0, 1000); /* class 1024 */
  CHECK(a != NULL && in_chunks(h, a));
  fill(a, 1000, 5);
  CHECK(filled(a, 1000, 5));
  alloc(h, a, 1000, 0);
  CHECK(alloc(h, NULL, 0, 900) == a); /* the same class: reused */
  fill(a, 900, 6);
  void *c = alloc(h, a, 900, 1500); /* a bigger class: moved */
  CHECK(c != a && in_chunks(h, c) && filled(c, 900, 6));
  enum { MAX = 2048 };
  static void *small[MAX];
  int n = 0;
  while ((size_t)(h->end - h->bump) >= 16 && n < MAX)
    small[n++] = alloc(h, NULL, 0, 16);
  CHECK((size_t)(h->end - h->bump) < 16);
  void *g = alloc(h, NULL, 0, 1000); /* class 1024: a's old block */
  CHECK(g == a);
  void *m = alloc(h, NULL, 0, 1000); /* none left: malloc's */
  CHECK(m != NULL && !in_chunks(h, m));
  fail_malloc = 1;
  void *d = alloc(h, c, 1500, 40); /* no block anywhere: shrinks in place */
  CHECK(d == c && filled(d, 40, 6));
  fail_malloc = 0;
  /* Its rest, 1536 - 48 bytes, is two blocks: 1408 and 80. */
  void *e = alloc(h, NULL, 0, 1400);
  CHECK(e == (char *)c + 48);
  void *f = alloc(h, NULL, 0, 80);
  CHECK(f == (char *)c + 48 + 1408);
  alloc(h, f, 80, 0);
  alloc(h, e, 1400, 0);
  alloc(h, d, 40, 0);
  alloc(h, m, 1000, 0);
  alloc(h, g, 1000, 0);
  void *b = alloc(h, NULL, 0, LHEAP_BIG + 1); /* no class: malloc's */
  CHECK(b != NULL && !in_chunks(h, b));
  alloc(h, b, LHEAP_BIG + 1, 0);
  for (int i = 0; i < n; i++) alloc(h, small[i], 16, 0);
  CHECK_EQ(h->nchunks, 1);
  lheap_trim(h); /* the only chunk holds nothing: it starts over */
  CHECK(h->bump == (char *)h->chunks + CHUNK_HEAD);
  lheap_free(h);
#endif
}

/* Whether all of the n bytes at p (page-aligned) are present. */
static int present(void *p, size_t n) {
  unsigned char vec[CONC_HUGE_BYTES / 4096];
  CHECK(n <= sizeof vec * 4096);
  CHECK(mincore(p, n, vec) == 0);
  for (size_t i = 0; i < (n + 4095) / 4096; i++)
    if (!(vec[i] & 1)) return 0;
  return 1;
}

/* The first chunks' source: blocks apart, page-aligned, writable, present
 * when handed out (the first regions' block by block, the next ones'
 * whole, as huge pages); given back, every wholly free region but one is
 * unmapped, and a block given back is the next one handed out. */
static void pages_blocks_come_back(void) {
  /* the small regions, then most of a huge one */
  enum { N = (SMALL_REGIONS + 1) * REGION_BLOCKS - 20 };
  void *p[N];
  lpages_region *owner[N];
  for (unsigned i = 0; i < N; i++) {
    p[i] = lpages_get(&owner[i]);
    CHECK(p[i] != NULL && owner[i] != NULL);
    CHECK(((uintptr_t)p[i] & 4095) == 0);
    CHECK(present(p[i], LPAGES_BLOCK));
    fill(p[i], LPAGES_BLOCK, i);
  }
  CHECK_EQ(live, SMALL_REGIONS + 1);
  CHECK(!owner[0]->huge && !owner[N - 1 - REGION_BLOCKS]->huge);
  CHECK(owner[N - 1]->huge);
  CHECK(owner[REGION_BLOCKS] != owner[0]);
  /* a huge region's blocks are present before they are handed out */
  CHECK(present(owner[N - 1]->base, CONC_HUGE_BYTES));
  for (unsigned i = 0; i < N; i++) {
    CHECK(filled(p[i], LPAGES_BLOCK, i)); /* so none overlaps another */
    CHECK(owner[i]->base <= (char *)p[i]);
    CHECK((char *)p[i] < owner[i]->base + CONC_HUGE_BYTES);
  }
  lpages_put(p[7], owner[7]);
  lpages_region *r;
  CHECK(lpages_get(&r) == p[7] && r == owner[7]);
  for (unsigned i = 0; i < N; i++) lpages_put(p[i], owner[i]);
  CHECK_EQ(empty, 1);
  CHECK_EQ(live, 1);
  CHECK(partial != NULL && partial->next == NULL); /* the one kept */
  CHECK_EQ(partial->nfree, REGION_BLOCKS);
  void *q = lpages_get(&r);
  CHECK(q != NULL && r == partial);
  CHECK(present(q, LPAGES_BLOCK));
  CHECK_EQ(empty, 0);
  lpages_put(q, r);
  CHECK_EQ(empty, 1);
}

static const check_test tests[] = {
    {"blocks_are_disjoint_and_reused", blocks_are_disjoint_and_reused},
    {"resizing_keeps_content", resizing_keeps_content},
    {"free_returns_everything", free_returns_everything},
    {"shrink_without_memory_keeps_the_block",
     shrink_without_memory_keeps_the_block},
    {"shrinks_do_not_fail", shrinks_do_not_fail},
    {"borrows_from_bigger_classes", borrows_from_bigger_classes},
    {"trim_gives_back_free_chunks", trim_gives_back_free_chunks},
    {"malloc_while_limited", malloc_while_limited},
    {"passthrough_when_off", passthrough_when_off},
    {"random_operations", random_operations},
    {"big_classes", big_classes},
    {"pages_blocks_come_back", pages_blocks_come_back},
    {NULL, NULL}};

int main(int argc, char **argv) {
  return check_main("test_heap", tests, argc, argv);
}
