/*
 * msg.c: reference-counted objects and owned messages.
 */
#include <string.h>
#include "internal.h"

/* ---- live objects per type (for conc.stats) ---------------------------- */

#define MAX_TYPES 32
static struct {
  _Atomic(const conc_type *) type;
  atomic_long live;
} counts[MAX_TYPES];

/* The counter of `type`, claiming a free slot the first time. */
static atomic_long *count_of(const conc_type *type) {
  for (int i = 0; i < MAX_TYPES; i++) {
    const conc_type *t = atomic_load(&counts[i].type);
    if (t == type) return &counts[i].live;
    if (t == NULL) {
      const conc_type *expected = NULL;
      if (atomic_compare_exchange_strong(&counts[i].type, &expected, type) ||
          expected == type)
        return &counts[i].live;
    }
  }
  return NULL;  /* more types than slots: not counted */
}

int conc_obj_counts(const char **names, long *n, int max) {
  int k = 0;
  for (int i = 0; i < MAX_TYPES; i++) {
    const conc_type *t = atomic_load(&counts[i].type);
    if (t == NULL) break;
    if (k < max) {
      names[k] = t->name;
      n[k] = atomic_load(&counts[i].live);
    }
    k++;
  }
  return k;
}

void conc_obj_init(conc_obj *o, const conc_type *type) {
  atomic_init(&o->refs, 1);
  o->type = type;
  atomic_long *c = count_of(type);
  if (c) atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

void conc_retain(conc_obj *o) {
  atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
}

/*
 * Objects whose count reached zero while this thread was destroying
 * another (the previous channel held by a channel's buffered message,
 * a context's parent) are destroyed one after the other by the
 * outermost release, not each inside the last: that recursed once per
 * link, and a chain of 20,000 channels (100,000 contexts) overflowed a
 * task's stack. The array is the thread's only while a release runs.
 */
static CONC_TLS bool dying_active;
static CONC_TLS int dying_n, dying_cap;
static CONC_TLS conc_obj **dying_v;

static void destroy(conc_obj *o) {
  atomic_long *c = count_of(o->type);
  if (c) atomic_fetch_sub_explicit(c, 1, memory_order_relaxed);
  o->type->destroy(o);
}

void conc_release(conc_obj *o) {
  CONC_HB_BEFORE(o);  /* every release happens before the destroy */
  if (atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) != 1) return;
  CONC_HB_AFTER(o);
  CONC_HB_FORGET(o);  /* the address may be reused by a new object */
  if (dying_active) {
    if (dying_n == dying_cap) {
      int cap = dying_cap ? 2 * dying_cap : 16;
      conc_obj **v = realloc(dying_v, (size_t)cap * sizeof *v);
      if (v == NULL) { /* no memory: here, recursing as before */
        destroy(o);
        return;
      }
      dying_v = v;
      dying_cap = cap;
    }
    dying_v[dying_n++] = o;
    return;
  }
  dying_active = true;
  destroy(o);
  while (dying_n > 0) destroy(dying_v[--dying_n]);
  dying_active = false;
  free(dying_v);
  dying_v = NULL;
  dying_cap = 0;
}

static bool is_inline(const conc_msg *m) {
  return m->nrefs == 0 && m->len <= CONC_MSG_INLINE;
}

/*
 * A message that does not fit inline lives in one heap block: a count
 * of the messages sharing it, then nrefs object pointers, then the
 * bytes. Nothing writes to a block after conc_msg_init, so a copy
 * shares it (one atomic increment, however big the value): pub/sub
 * hands every subscriber the message it encoded once, a Once's or a
 * map's readers copy without allocating. The block's object references
 * are held once, by the block, and released with it.
 */
typedef struct msg_block {
  atomic_long shares;
  _Alignas(conc_obj *) unsigned char rest[];  /* refs, then bytes */
} msg_block;

static msg_block *block_of(const conc_msg *m) {
  return (msg_block *)(void *)m->u.big.data;
}

int conc_msg_init(conc_msg *m, const void *data, size_t len,
                  conc_obj *const *refs, uint32_t nrefs) {
  if (len > UINT32_MAX) return CONC_ENOMEM;
  m->len = (uint32_t)len;
  m->nrefs = nrefs;
  if (is_inline(m)) {
    if (len) memcpy(m->u.small, data, len);
    return CONC_OK;
  }
  size_t refbytes = (size_t)nrefs * sizeof(conc_obj *);
  msg_block *b = malloc(sizeof *b + refbytes + len + 1);
  if (b == NULL) return CONC_ENOMEM;
  atomic_init(&b->shares, 1);
  if (refbytes) memcpy(b->rest, refs, refbytes);
  if (len) memcpy(b->rest + refbytes, data, len);
  m->u.big.data = (unsigned char *)b;
  return CONC_OK;
}

const unsigned char *conc_msg_data(const conc_msg *m) {
  if (is_inline(m)) return m->u.small;
  return block_of(m)->rest + (size_t)m->nrefs * sizeof(conc_obj *);
}

conc_obj *conc_msg_ref(const conc_msg *m, uint32_t i) {
  conc_obj *o;
  memcpy(&o, block_of(m)->rest + (size_t)i * sizeof(conc_obj *),
         sizeof(conc_obj *));
  return o;
}

void conc_msg_free(conc_msg *m) {
  if (is_inline(m)) return;
  msg_block *b = block_of(m);
  CONC_HB_BEFORE(b);  /* every share's reads happen before the free */
  if (atomic_fetch_sub_explicit(&b->shares, 1, memory_order_acq_rel) == 1) {
    CONC_HB_AFTER(b);
    CONC_HB_FORGET(b);
    for (uint32_t i = 0; i < m->nrefs; i++) conc_release(conc_msg_ref(m, i));
    free(b);
  }
  m->len = 0;
  m->nrefs = 0;
}

/* Never fails now (a share); the int stays for the API's sake. */
int conc_msg_copy(conc_msg *dst, const conc_msg *src) {
  if (!is_inline(src))
    atomic_fetch_add_explicit(&block_of(src)->shares, 1, memory_order_relaxed);
  *dst = *src;
  return CONC_OK;
}

int conc_try_retain(conc_obj *o) {
  long r = atomic_load_explicit(&o->refs, memory_order_relaxed);
  while (r > 0)
    if (atomic_compare_exchange_weak_explicit(&o->refs, &r, r + 1,
                                              memory_order_acquire,
                                              memory_order_relaxed))
      return 1;
  return 0;
}

int conc_msg_equal(const conc_msg *a, const conc_msg *b) {
  if (a->len != b->len || a->nrefs != b->nrefs) return 0;
  for (uint32_t i = 0; i < a->nrefs; i++)
    if (conc_msg_ref(a, i) != conc_msg_ref(b, i)) return 0;
  return memcmp(conc_msg_data(a), conc_msg_data(b), a->len) == 0;
}
