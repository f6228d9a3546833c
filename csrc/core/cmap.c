/*
 * cmap.c: conc_map, a concurrent hash map (Go's sync.Map semantics).
 *
 * The map is split into NSHARDS shards by the top bits of the key's hash;
 * each shard is a chained hash table with its own reader-writer lock, so
 * calls on keys of different shards never meet. Values are messages: a
 * load copies the stored message under the read lock (a struct copy for
 * an inline message) and the caller decodes the copy after the lock is
 * released. A replaced or removed message is freed only after its shard
 * is unlocked, because freeing releases objects and a release may run a
 * destructor.
 *
 * The reader-writer lock is distributed, so that loads scale: a
 * pthread_rwlock (one shared counter) makes every load write the same
 * cache line, and two workers loading the same keys ran slower together
 * than one alone. Here a reader counts itself in a counter of its own
 * CPU's slot (slots[cpu].n[shard], a cache line no other CPU writes), then
 * checks the shard's `writing` flag; a writer takes the shard's mutex,
 * raises `writing`, then waits until every slot's counter for the shard
 * is zero. Both sides use sequentially consistent operations (a store
 * then a load, Dekker style), so at least one of them sees the other: a
 * reader that sees `writing` leaves again and waits on the mutex. A
 * reader uncounts itself on the counter it counted on (it may have moved
 * to another CPU since). A load therefore writes no cache line that
 * another CPU uses, unless the value holds objects (their counts).
 *
 * Lock order: shard locks in increasing shard index. A call on one key
 * holds one shard lock; snapshot (read) and clear (write) hold all of
 * them, taken in index order. A writer holds its shard's mutex while it
 * waits for readers, who never wait for anything while counted except,
 * in snapshot, a higher shard's writer. Nothing else is locked while a
 * shard is held (malloc and conc_retain aside), and no callback runs.
 */
#include <sched.h>
#include <stdalign.h>
#include <string.h>
#include <unistd.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include "internal.h"
#include "cmap.h"

#define SHARD_BITS 6
#define NSHARDS (1u << SHARD_BITS)
#define MIN_BUCKETS 8
#define MAX_SLOTS 64           /* reader slots: one per CPU, up to this */
#define WRITER_SPINS 256       /* before a writer sleeps on its readers */

/* One key and its value, in one allocation. */
typedef struct entry {
  struct entry *next;     /* the bucket's chain */
  uint64_t hash;
  conc_msg val;
  size_t klen;
  unsigned char kind;
  unsigned char key[];
} entry;

/*
 * A shard. The shard lock (below) guards buckets, nbuckets and every
 * entry reachable from them; count is written under the write lock and
 * read by len without any lock (hence atomic). `wlock` serialises
 * writers; `writing` is 1 while a writer holds or waits for the shard
 * (written under wlock, read by everyone); `sleeping` is the futex word
 * of a writer asleep until its readers leave. Aligned to a cache line so
 * two shards never share one. Invariant: count entries are linked in
 * buckets; nbuckets is 0 (no table yet) or a power of 2.
 */
typedef struct shard {
  alignas(64) conc__lock_t wlock;
  atomic_uint writing;
  atomic_uint sleeping;
  entry **buckets;
  size_t nbuckets;
  atomic_size_t count;
} shard;

/* A reader slot: how many readers of this slot's CPU hold each shard.
 * A cache line (or four) that only that CPU's readers write. */
typedef struct rslot {
  alignas(64) atomic_uint n[NSHARDS];
} rslot;

/* Every field is set once by conc_map_new and only read after. */
struct conc_map {
  conc_obj hdr;
  uint64_t seed;
  unsigned nslots;        /* a power of 2 */
  shard *shards;          /* NSHARDS of them */
  rslot *slots;           /* nslots of them */
};

/* ---- hashing ------------------------------------------------------------ */

static uint64_t fmix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

/* Mixes one 8-byte word into h. */
static uint64_t mix_word(uint64_t h, uint64_t w) {
  h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
  return h ^ (h >> 29);
}

/* A 64-bit hash of kind and bytes, seeded per map. */
static uint64_t hash_key(uint64_t seed, const conc_map_key *k) {
  const unsigned char *p = k->data;
  size_t n = k->len;
  uint64_t h = seed ^ ((uint64_t)k->kind << 56) ^ (n * 0x9e3779b97f4a7c15ULL);
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    h = mix_word(h, w);
  }
  if (n > 0) {
    uint64_t w = 0;
    memcpy(&w, p, n);
    h = mix_word(h, w);
  }
  return fmix64(h);
}

static unsigned shard_index(uint64_t h) {
  return (unsigned)(h >> (64 - SHARD_BITS));
}

/* ---- the shard lock ----------------------------------------------------- */

static void futex_wait(atomic_uint *addr, unsigned val) {
  syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(atomic_uint *addr) {
  syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* A number for the calling thread, for when the CPU is unknown. */
static unsigned thread_number(void) {
  static atomic_uint next;
  static CONC_TLS unsigned mine;
  if (mine == 0) mine = atomic_fetch_add(&next, 1) + 1;
  return mine;
}

/* The calling thread's reader slot: its CPU's (cheap to ask, via rseq or
 * the vDSO), so threads running at once rarely share one. */
static rslot *my_slot(conc_map *m) {
  int cpu = sched_getcpu();
  unsigned i = cpu >= 0 ? (unsigned)cpu : thread_number();
  return &m->slots[i & (m->nslots - 1)];
}

/* Leaves shard i, counted on *n; wakes a writer asleep waiting for it. */
static void rdunlock(conc_map *m, unsigned i, atomic_uint *n) {
  shard *s = &m->shards[i];
  atomic_fetch_sub_explicit(n, 1, memory_order_seq_cst);
  if (atomic_load_explicit(&s->writing, memory_order_seq_cst) &&
      atomic_exchange_explicit(&s->sleeping, 0, memory_order_seq_cst))
    futex_wake(&s->sleeping);
}

/* Enters shard i for reading; returns the counter to pass to rdunlock. */
static atomic_uint *rdlock(conc_map *m, unsigned i) {
  shard *s = &m->shards[i];
  for (;;) {
    atomic_uint *n = &my_slot(m)->n[i];
    atomic_fetch_add_explicit(n, 1, memory_order_seq_cst);
    if (!atomic_load_explicit(&s->writing, memory_order_seq_cst)) return n;
    rdunlock(m, i, n);         /* a writer is in or coming: let it be */
    conc__lock(&s->wlock);     /* and wait until it is done */
    conc__unlock(&s->wlock);
  }
}

/* True if no reader is counted in shard i. */
static bool no_readers(conc_map *m, unsigned i) {
  for (unsigned c = 0; c < m->nslots; c++)
    if (atomic_load_explicit(&m->slots[c].n[i], memory_order_seq_cst))
      return false;
  return true;
}

/* Takes shard i for writing: the mutex, then waits out the readers
 * (spinning a little, then asleep until the last one wakes it). */
static void wrlock(conc_map *m, unsigned i) {
  shard *s = &m->shards[i];
  conc__lock(&s->wlock);
  atomic_store_explicit(&s->writing, 1, memory_order_seq_cst);
  for (int spins = 0; !no_readers(m, i); spins++) {
    if (spins < WRITER_SPINS) {
      conc__cpu_relax();
      continue;
    }
    atomic_store_explicit(&s->sleeping, 1, memory_order_seq_cst);
    if (no_readers(m, i)) break;
    futex_wait(&s->sleeping, 1);
  }
  atomic_store_explicit(&s->sleeping, 0, memory_order_relaxed);
}

static void wrunlock(conc_map *m, unsigned i) {
  shard *s = &m->shards[i];
  atomic_store_explicit(&s->writing, 0, memory_order_seq_cst);
  conc__unlock(&s->wlock);
}

/* Sets up a shard whose memory is zeroed (which unlocks wlock). */
static void shard_init(shard *s) {
  atomic_init(&s->writing, 0);
  atomic_init(&s->sleeping, 0);
  s->buckets = NULL;
  s->nbuckets = 0;
  atomic_init(&s->count, 0);
}

/* One slot per CPU the machine may have, rounded up to a power of 2
 * (asked once: sysconf reads files). */
static unsigned slot_count(void) {
  static atomic_uint cached;
  unsigned n = atomic_load_explicit(&cached, memory_order_relaxed);
  if (n != 0) return n;
  long ncpu = sysconf(_SC_NPROCESSORS_CONF);
  for (n = 1; n < MAX_SLOTS && (long)n < ncpu; n *= 2) continue;
  atomic_store_explicit(&cached, n, memory_order_relaxed);
  return n;
}

/* ---- values ------------------------------------------------------------- */

/* Values compare with conc_msg_equal: the same encoded bytes and the same
 * object references (compare_and_swap, compare_and_delete). */

/* An empty message: what a value moved out of a slot leaves behind. */
static void msg_clear(conc_msg *m) {
  m->len = 0;
  m->nrefs = 0;
}

/* ---- one shard's table (callers hold its lock) -------------------------- */

static int key_equal(const entry *e, uint64_t h, const conc_map_key *k) {
  return e->hash == h && e->kind == k->kind && e->klen == k->len &&
         memcmp(e->key, k->data, k->len) == 0;
}

/* The link that points at k's entry, or NULL if k is absent. Called with
 * the shard held for reading or writing. */
static entry **find(shard *s, uint64_t h, const conc_map_key *k) {
  if (s->nbuckets == 0) return NULL;
  entry **link = &s->buckets[h & (s->nbuckets - 1)];
  for (; *link != NULL; link = &(*link)->next)
    if (key_equal(*link, h, k)) return link;
  return NULL;
}

/* Doubles the bucket array (or makes the first one). A failed allocation
 * is not an error: the chains only get longer. Write lock held. */
static void grow(shard *s) {
  size_t n = s->nbuckets ? s->nbuckets * 2 : MIN_BUCKETS;
  entry **b = calloc(n, sizeof *b);
  if (b == NULL) return;
  for (size_t i = 0; i < s->nbuckets; i++) {
    entry *e = s->buckets[i], *next;
    for (; e != NULL; e = next) {
      next = e->next;
      e->next = b[e->hash & (n - 1)];
      b[e->hash & (n - 1)] = e;
    }
  }
  free(s->buckets);
  s->buckets = b;
  s->nbuckets = n;
}

/* Adds k (absent) with value *v, which the map then owns. CONC_OK or
 * CONC_ENOMEM (nothing changed). Write lock held. */
static int insert(shard *s, uint64_t h, const conc_map_key *k, conc_msg *v) {
  size_t count = atomic_load_explicit(&s->count, memory_order_relaxed);
  if (count >= s->nbuckets) grow(s);
  if (s->nbuckets == 0) return CONC_ENOMEM;
  entry *e = malloc(sizeof *e + k->len);
  if (e == NULL) return CONC_ENOMEM;
  e->hash = h;
  e->val = *v;
  e->klen = k->len;
  e->kind = k->kind;
  if (k->len) memcpy(e->key, k->data, k->len);
  entry **b = &s->buckets[h & (s->nbuckets - 1)];
  e->next = *b;
  *b = e;
  atomic_store_explicit(&s->count, count + 1, memory_order_relaxed);
  return CONC_OK;
}

/* Unlinks the entry at *link and returns it. Write lock held. */
static entry *unlink_entry(shard *s, entry **link) {
  entry *e = *link;
  *link = e->next;
  size_t count = atomic_load_explicit(&s->count, memory_order_relaxed);
  atomic_store_explicit(&s->count, count - 1, memory_order_relaxed);
  return e;
}

/* Frees an entry that is linked nowhere, with its value. No lock held. */
static void entry_free(entry *e) {
  conc_msg_free(&e->val);
  free(e);
}

/* Frees every entry of a bucket array, and the array. No lock held (the
 * array is detached, or the map is being destroyed). */
static void buckets_free(entry **buckets, size_t n) {
  for (size_t i = 0; i < n; i++) {
    entry *e = buckets[i], *next;
    for (; e != NULL; e = next) {
      next = e->next;
      entry_free(e);
    }
  }
  free(buckets);
}

/* ---- the object --------------------------------------------------------- */

/* Runs when the last reference goes: nobody else can see the map. */
static void map_destroy(conc_obj *o) {
  conc_map *m = (conc_map *)o;
  for (unsigned i = 0; i < NSHARDS; i++) {
    shard *s = &m->shards[i];
    buckets_free(s->buckets, s->nbuckets);
  }
  free(m->slots);
  free(m->shards);
  free(m);
}

const conc_type conc_map_type = {"conc.map", map_destroy};

conc_map *conc_map_new(void) {
  conc_map *m = calloc(1, sizeof *m);
  if (m == NULL) return NULL;
  m->nslots = slot_count();
  m->shards = aligned_alloc(alignof(shard), NSHARDS * sizeof(shard));
  m->slots = aligned_alloc(alignof(rslot), m->nslots * sizeof(rslot));
  if (m->shards == NULL || m->slots == NULL) {
    free(m->shards);
    free(m->slots);
    free(m);
    return NULL;
  }
  memset(m->shards, 0, NSHARDS * sizeof(shard));
  for (unsigned i = 0; i < NSHARDS; i++) shard_init(&m->shards[i]);
  for (unsigned c = 0; c < m->nslots; c++)
    for (unsigned i = 0; i < NSHARDS; i++) atomic_init(&m->slots[c].n[i], 0);
  m->seed = ((uint64_t)conc__rand() << 32) | conc__rand();
  conc_obj_init(&m->hdr, &conc_map_type);
  return m;
}

/* ---- calls on one key --------------------------------------------------- */

/* Each call hashes its key once: h picks the shard (i) and the bucket. */

int conc_map_load(conc_map *m, const conc_map_key *k, conc_msg *out) {
  uint64_t h = hash_key(m->seed, k);
  unsigned i = shard_index(h);
  atomic_uint *n = rdlock(m, i);
  entry **link = find(&m->shards[i], h, k);
  int rc = link ? conc_msg_copy(out, &(*link)->val) : 0;
  rdunlock(m, i, n);
  return rc == CONC_OK && link ? 1 : rc;
}

int conc_map_store(conc_map *m, const conc_map_key *k, conc_msg *v) {
  uint64_t h = hash_key(m->seed, k);
  unsigned i = shard_index(h);
  conc_msg old;
  msg_clear(&old);
  wrlock(m, i);
  entry **link = find(&m->shards[i], h, k);
  int rc = CONC_OK;
  if (link) {
    old = (*link)->val;
    (*link)->val = *v;
  } else {
    rc = insert(&m->shards[i], h, k, v);
  }
  wrunlock(m, i);
  conc_msg_free(&old);
  return rc;
}

int conc_map_load_or_store(conc_map *m, const conc_map_key *k, conc_msg *v,
                           conc_msg *actual) {
  uint64_t h = hash_key(m->seed, k);
  unsigned i = shard_index(h);
  wrlock(m, i);
  shard *s = &m->shards[i];
  entry **link = find(s, h, k);
  int rc = link ? conc_msg_copy(actual, &(*link)->val) : insert(s, h, k, v);
  wrunlock(m, i);
  return rc == CONC_OK && link ? 1 : rc;
}

int conc_map_load_and_delete(conc_map *m, const conc_map_key *k,
                             conc_msg *out) {
  uint64_t h = hash_key(m->seed, k);
  unsigned i = shard_index(h);
  wrlock(m, i);
  shard *s = &m->shards[i];
  entry **link = find(s, h, k);
  entry *e = link ? unlink_entry(s, link) : NULL;
  wrunlock(m, i);
  if (e == NULL) return 0;
  if (out) {
    *out = e->val;
    msg_clear(&e->val);
  }
  entry_free(e);
  return 1;
}

int conc_map_swap(conc_map *m, const conc_map_key *k, conc_msg *v,
                  conc_msg *prev) {
  uint64_t h = hash_key(m->seed, k);
  unsigned i = shard_index(h);
  wrlock(m, i);
  entry **link = find(&m->shards[i], h, k);
  int rc;
  if (link) {
    *prev = (*link)->val;
    (*link)->val = *v;
    rc = 1;
  } else {
    rc = insert(&m->shards[i], h, k, v);
  }
  wrunlock(m, i);
  return rc;
}

int conc_map_compare_and_swap(conc_map *m, const conc_map_key *k,
                              const conc_msg *old, conc_msg *new_v) {
  uint64_t h = hash_key(m->seed, k);
  unsigned i = shard_index(h);
  conc_msg prev;
  msg_clear(&prev);
  wrlock(m, i);
  entry **link = find(&m->shards[i], h, k);
  int swapped = link && conc_msg_equal(&(*link)->val, old);
  if (swapped) {
    prev = (*link)->val;
    (*link)->val = *new_v;
  }
  wrunlock(m, i);
  conc_msg_free(&prev);
  return swapped;
}

int conc_map_compare_and_delete(conc_map *m, const conc_map_key *k,
                                const conc_msg *old) {
  uint64_t h = hash_key(m->seed, k);
  unsigned i = shard_index(h);
  wrlock(m, i);
  shard *s = &m->shards[i];
  entry **link = find(s, h, k);
  entry *e = NULL;
  if (link && conc_msg_equal(&(*link)->val, old)) e = unlink_entry(s, link);
  wrunlock(m, i);
  if (e == NULL) return 0;
  entry_free(e);
  return 1;
}

/* ---- calls on the whole map --------------------------------------------- */

size_t conc_map_len(conc_map *m) {
  size_t n = 0;
  for (unsigned i = 0; i < NSHARDS; i++)
    n += atomic_load_explicit(&m->shards[i].count, memory_order_relaxed);
  return n;
}

void conc_map_clear(conc_map *m) {
  entry **buckets[NSHARDS];
  size_t nbuckets[NSHARDS];
  for (unsigned i = 0; i < NSHARDS; i++) wrlock(m, i);
  for (unsigned i = 0; i < NSHARDS; i++) {
    shard *s = &m->shards[i];
    buckets[i] = s->buckets;
    nbuckets[i] = s->nbuckets;
    s->buckets = NULL;
    s->nbuckets = 0;
    atomic_store_explicit(&s->count, 0, memory_order_relaxed);
  }
  for (unsigned i = NSHARDS; i-- > 0;) wrunlock(m, i);
  for (unsigned i = 0; i < NSHARDS; i++) buckets_free(buckets[i], nbuckets[i]);
}

/* Sums entries and key bytes over every shard. All shards held. */
static void measure(conc_map *m, size_t *n, size_t *keybytes) {
  *n = 0;
  *keybytes = 0;
  for (unsigned i = 0; i < NSHARDS; i++) {
    shard *s = &m->shards[i];
    for (size_t b = 0; b < s->nbuckets; b++)
      for (entry *e = s->buckets[b]; e != NULL; e = e->next) {
        (*n)++;
        *keybytes += e->klen;
      }
  }
}

/* Copies every entry into the allocated snapshot (out->n of them were
 * counted); CONC_ENOMEM if a value cannot be copied (out->n then counts
 * the items filled). All shards held. */
static int fill(conc_map *m, conc_map_snap *out) {
  size_t n = out->n, at = 0;
  out->n = 0;
  for (unsigned i = 0; i < NSHARDS; i++) {
    shard *s = &m->shards[i];
    for (size_t b = 0; b < s->nbuckets; b++)
      for (entry *e = s->buckets[b]; e != NULL && out->n < n; e = e->next) {
        conc_map_item *it = &out->items[out->n];
        if (conc_msg_copy(&it->val, &e->val) != CONC_OK) return CONC_ENOMEM;
        if (e->klen) memcpy(out->keys + at, e->key, e->klen);
        it->key.data = out->keys + at;
        it->key.len = e->klen;
        it->key.kind = e->kind;
        at += e->klen;
        out->n++;
      }
  }
  return CONC_OK;
}

int conc_map_snapshot(conc_map *m, conc_map_snap *out) {
  atomic_uint *held[NSHARDS];
  size_t keybytes;
  int rc = CONC_ENOMEM;
  memset(out, 0, sizeof *out);
  for (unsigned i = 0; i < NSHARDS; i++) held[i] = rdlock(m, i);
  measure(m, &out->n, &keybytes);
  out->items = malloc((out->n ? out->n : 1) * sizeof *out->items);
  out->keys = malloc(keybytes ? keybytes : 1);
  if (out->items && out->keys) rc = fill(m, out);
  else out->n = 0;
  for (unsigned i = NSHARDS; i-- > 0;) rdunlock(m, i, held[i]);
  if (rc != CONC_OK) conc_map_snap_free(out);
  return rc;
}

void conc_map_snap_free(conc_map_snap *s) {
  for (size_t i = 0; i < s->n; i++) conc_msg_free(&s->items[i].val);
  free(s->items);
  free(s->keys);
  memset(s, 0, sizeof *s);
}
