/*
 * atomic.c: an atomic integer shared by reference (Go's atomic.Int64).
 *
 * No lock: `v` is only ever touched by atomic operations. The value is
 * kept unsigned so that add wraps around (two's complement) with no
 * undefined behaviour, as Go's does; it is converted back on the way out.
 */
#include "internal.h"

struct conc_atomic {
  conc_obj hdr;
  _Atomic uint64_t v;
};

static void atomic_destroy(conc_obj *o) { free(o); }

const conc_type conc_atomic_type = {"conc.atomic", atomic_destroy};

conc_atomic *conc_atomic_new(int64_t v) {
  conc_atomic *a = calloc(1, sizeof *a);
  if (a == NULL) return NULL;
  conc_obj_init(&a->hdr, &conc_atomic_type);
  atomic_init(&a->v, (uint64_t)v);
  return a;
}

int64_t conc_atomic_load(conc_atomic *a) { return (int64_t)atomic_load(&a->v); }

void conc_atomic_store(conc_atomic *a, int64_t v) {
  atomic_store(&a->v, (uint64_t)v);
}

int64_t conc_atomic_add(conc_atomic *a, int64_t delta) {
  return (int64_t)(atomic_fetch_add(&a->v, (uint64_t)delta) + (uint64_t)delta);
}

int64_t conc_atomic_swap(conc_atomic *a, int64_t v) {
  return (int64_t)atomic_exchange(&a->v, (uint64_t)v);
}

int conc_atomic_cas(conc_atomic *a, int64_t old, int64_t v) {
  uint64_t expected = (uint64_t)old;
  return atomic_compare_exchange_strong(&a->v, &expected, (uint64_t)v);
}
