/*
 * errgroup.c: golang.org/x/sync/errgroup's Group, its state in C so that
 * every worker holding the group (to call g:go from it, or to wait) sees
 * one counter, one limit, one first error.
 *
 * Counting: `wg` counts the functions from their go (before any wait
 * for the limit) to their end, so Wait never misses one and the limit
 * cannot change under a function that waits for it. The limit is a
 * semaphore (x/sync's is a channel of tokens), replaced only while
 * nothing is counted.
 *
 * `running` counts the same functions for running(), but a function
 * leaves it before its unit of the limit goes back, so a function let
 * in by that unit is never counted beside it (running() stays within
 * the limit plus the callers waiting in go); it leaves wg last, so Wait
 * returns with every unit back (a try_go after it finds one free).
 *
 * Locking: `lock` guards limit, sem, errors, nerrors and running, and
 * orders a count taken by go against set_limit's check. Under it we may
 * take the semaphore's lock (try_begin) and increment wg (no lock); the
 * context is canceled and wg decremented after it is released.
 */
#include "internal.h"

struct conc_errgroup {
  conc_obj hdr;
  conc__lock_t lock;
  conc_ctx *ctx;        /* owned; set at creation, then read-only */
  conc_wg *wg;          /* owned; counts running (and starting) functions */
  conc_sem *sem;        /* lock: the limit's semaphore, or NULL */
  int64_t limit;        /* lock: -1 for none */
  conc_msg *errors;     /* lock: every failure, the first one first */
  size_t nerrors, cap;  /* lock */
  int64_t running;      /* lock: counted and not yet done (running()) */
};

static void eg_destroy(conc_obj *o) {
  conc_errgroup *g = (conc_errgroup *)o;
  for (size_t i = 0; i < g->nerrors; i++) conc_msg_free(&g->errors[i]);
  free(g->errors);
  if (g->sem) conc_release((conc_obj *)g->sem);
  conc_release((conc_obj *)g->wg);
  conc_release((conc_obj *)g->ctx);
  free(g);
}

const conc_type conc_errgroup_type = {"conc.errgroup", eg_destroy};

conc_errgroup *conc_errgroup_new(conc_ctx *parent) {
  conc_errgroup *g = calloc(1, sizeof *g);
  if (g == NULL) return NULL;
  conc_ctx *bg = parent ? NULL : conc_ctx_background();
  g->ctx = conc_ctx_new(parent ? parent : bg, CONC_NEVER, NULL, NULL);
  if (bg) conc_release((conc_obj *)bg);
  g->wg = conc_wg_new();
  if (g->ctx == NULL || g->wg == NULL) {
    if (g->ctx) conc_release((conc_obj *)g->ctx);
    if (g->wg) conc_release((conc_obj *)g->wg);
    free(g);
    return NULL;
  }
  conc_obj_init(&g->hdr, &conc_errgroup_type);
  g->limit = -1;
  return g;
}

conc_ctx *conc_errgroup_ctx(conc_errgroup *g) { return g->ctx; }

/* One more function counted (lock held): never fails below INT64_MAX. */
static void count_one(conc_errgroup *g) {
  if (conc_wg_add(g->wg, 1) != CONC_OK)
    conc__fatal("conc_errgroup: counter overflow", 75);
  g->running++;
}

void conc_errgroup_begin(conc_errgroup *g, conc_sem **sem) {
  conc__lock(&g->lock);
  count_one(g);
  *sem = g->sem;
  if (*sem) conc_retain((conc_obj *)*sem);
  conc__unlock(&g->lock);
}

int conc_errgroup_try_begin(conc_errgroup *g) {
  conc__lock(&g->lock);
  int ok = g->sem == NULL || conc_sem_try_acquire(g->sem, 1);
  if (ok) count_one(g);
  conc__unlock(&g->lock);
  return ok;
}

/* Appends err to the failures (lock held); true if it is the first. */
static bool record(conc_errgroup *g, conc_msg *err) {
  if (g->nerrors == g->cap) {
    size_t cap = g->cap ? 2 * g->cap : 4;
    conc_msg *e = realloc(g->errors, cap * sizeof *e);
    if (e == NULL) conc__fatal("conc_errgroup: malloc", 12);
    g->errors = e;
    g->cap = cap;
  }
  g->errors[g->nerrors++] = *err;
  return g->nerrors == 1;
}

void conc_errgroup_done(conc_errgroup *g, conc_msg *err, int held) {
  conc_msg cause;
  bool first = false;
  conc__lock(&g->lock);
  if (err) {
    first = record(g, err);
    if (first && conc_msg_copy(&cause, err) != CONC_OK)
      conc__fatal("conc_errgroup: malloc", 12);
  }
  conc_sem *sem = held ? g->sem : NULL;  /* unchanged while counted */
  g->running--; /* before its unit goes back: running() stays bounded */
  conc__unlock(&g->lock);
  if (first) conc_ctx_cancel(g->ctx, CONC_ECANCELED, &cause);
  if (sem && conc_sem_release(sem, 1) != CONC_OK)
    conc__fatal("conc_errgroup: limit released more than held", 22);
  conc_wg_add(g->wg, -1); /* last: Wait returns with every unit back */
}

int conc_errgroup_set_limit(conc_errgroup *g, int64_t n) {
  conc_sem *sem = n < 0 ? NULL : conc_sem_new(n);
  if (n >= 0 && sem == NULL) return CONC_ENOMEM;
  conc__lock(&g->lock);
  if (conc_wg_count(g->wg) != 0) {
    conc__unlock(&g->lock);
    if (sem) conc_release((conc_obj *)sem);
    return CONC_EBUSY;
  }
  conc_sem *old = g->sem;
  g->sem = sem;
  g->limit = n < 0 ? -1 : n;
  conc__unlock(&g->lock);
  if (old) conc_release((conc_obj *)old);
  return CONC_OK;
}

int64_t conc_errgroup_limit(conc_errgroup *g) {
  conc__lock(&g->lock);
  int64_t n = g->limit;
  conc__unlock(&g->lock);
  return n;
}

int64_t conc_errgroup_running(conc_errgroup *g) {
  conc__lock(&g->lock);
  int64_t n = g->running;
  conc__unlock(&g->lock);
  return n;
}

conc_chan *conc_errgroup_wait_chan(conc_errgroup *g) {
  return conc_wg_wait_chan(g->wg);
}

int conc_errgroup_finish(conc_errgroup *g, conc_msg *first) {
  conc_msg cause;
  conc__lock(&g->lock);
  int failed = g->nerrors > 0;
  if (failed && (conc_msg_copy(first, &g->errors[0]) != CONC_OK ||
                 conc_msg_copy(&cause, &g->errors[0]) != CONC_OK))
    conc__fatal("conc_errgroup: malloc", 12);
  conc__unlock(&g->lock);
  /* Canceled already if a function failed: then this changes nothing. */
  conc_ctx_cancel(g->ctx, CONC_ECANCELED, failed ? &cause : NULL);
  return failed;
}

size_t conc_errgroup_nerrors(conc_errgroup *g) {
  conc__lock(&g->lock);
  size_t n = g->nerrors;
  conc__unlock(&g->lock);
  return n;
}

int conc_errgroup_error(conc_errgroup *g, size_t i, conc_msg *out) {
  conc__lock(&g->lock);
  int found = i < g->nerrors;
  if (found && conc_msg_copy(out, &g->errors[i]) != CONC_OK)
    conc__fatal("conc_errgroup: malloc", 12);
  conc__unlock(&g->lock);
  return found;
}
