/*
 * lsem.c: conc.semaphore, a weighted semaphore (x/sync/semaphore) as a
 * conc object: shared by reference between workers, FIFO, cancelable
 * by a timeout or a context.
 */
#include "lconc.h"
#include "lcheck.h"

#define SEM(L) ((conc_sem *)lconc_check_obj(L, 1, &conc_sem_type))

/* conc.semaphore(n): a semaphore of weight n (an integer >= 0) */
static int sem_new(lua_State *L) {
  lua_Integer n = lconc_checkinteger(L, 1);
  lconc_argcheck(L, n >= 0, 1, "size must not be negative");
  conc_sem *s = conc_sem_new((int64_t)n);
  if (s == NULL) return luaL_error(L, "conc.semaphore: not enough memory");
  lconc_push_obj(L, (conc_obj *)s);
  return 1;
}

/* The weight argument at idx: [w = 1], an integer in 0..size. Asking
 * for more than the size raises: such a request can never be granted
 * (x/sync makes it wait for its context; see docs/API.md). */
static int64_t check_weight(lua_State *L, int idx, conc_sem *s,
                            const char *fname) {
  lua_Integer w = lconc_optinteger(L, idx, 1);
  lconc_argcheck(L, w >= 0, idx, "weight must not be negative");
  if (w > conc_sem_size(s))
    luaL_error(L, "%s: semaphore: weight %I exceeds the size %I", fname, w,
               (lua_Integer)conc_sem_size(s));
  return (int64_t)w;
}

/* The end of a wait for weight (a->keep: the wait, keep2: the
 * semaphore, keep_n: the weight). */
static int sem_wait_outcome(const lconc_wait_call *a, int rc) {
  conc_sem *s = (conc_sem *)a->keep2;
  int granted = conc_sem_wait_end(s, (conc_sem_wait *)a->keep);
  if (rc == CONC_OK && !granted)
    lconc_internal_error("a semaphore's ready channel closed ungranted");
  /* Granted as the wait gave up, or with the context canceled: give it
   * back, as x/sync does (the caller sees the failure only). */
  if (granted && rc == CONC_OK && a->w.ctx) rc = conc_ctx_err(a->w.ctx);
  if (granted && rc != CONC_OK) conc_sem_release(s, a->keep_n);
  return rc;
}

int lconc_sem_acquire_k(lua_State *L, const char *label, conc_sem *s, int64_t n,
                        const lconc_wait *w, lua_KContext ctx,
                        lua_KFunction k) {
  /* A context canceled before the call wins, as in x/sync. */
  if (w->ctx && conc_ctx_err(w->ctx)) return conc_ctx_err(w->ctx);
  conc_sem_wait *wait = NULL;
  int rc = conc_sem_acquire(s, n, &wait);
  if (rc != CONC_EAGAIN) return rc;
  lconc_wait_call local, *a = lconc_wait_area(L, &local);
  a->w = *w;
  a->keep = wait;
  a->keep2 = s;
  a->keep_n = n;
  rc = lconc_wait_closed_k(L, label, conc_sem_wait_chan(wait), a, ctx, k);
  return sem_wait_outcome(a, rc);
}

int lconc_sem_acquire_done(lua_State *L) {
  lconc_wait_call *a;
  int rc = lconc_wait_done(L, &a);
  return sem_wait_outcome(a, rc);
}

int lconc_sem_acquire(lua_State *L, const char *label, conc_sem *s, int64_t n,
                      const lconc_wait *w) {
  return lconc_sem_acquire_k(L, label, s, n, w, 0, NULL);
}

/* s:acquire([w = 1] [, timeout | ctx]) -> true | nil, reason */
static int acquire_end(lua_State *L, int rc) {
  if (rc == CONC_ENOMEM)
    return luaL_error(L, "conc.semaphore:acquire: not enough memory");
  if (rc != CONC_OK) return lconc_push_fail(L, rc, "conc.semaphore:acquire");
  lua_pushboolean(L, 1);
  return 1;
}

static int acquire_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return acquire_end(L, lconc_sem_acquire_done(L));
}

static int sem_acquire(lua_State *L) {
  conc_sem *s = SEM(L);
  int wait_at, at = lconc_count_wait_at(L, 2, &wait_at); /* or (ctx, w) */
  int64_t n = check_weight(L, at, s, "conc.semaphore:acquire");
  lconc_wait w;
  lconc_check_wait(L, wait_at, &w);
  return acquire_end(L, lconc_sem_acquire_k(L, "semaphore acquire", s, n, &w, 0,
                                            acquire_k));
}

/* s:try_acquire([w = 1]) -> boolean (false also when w exceeds the
 * size, as in x/sync) */
static int sem_try_acquire(lua_State *L) {
  conc_sem *s = SEM(L);
  lua_Integer w = lconc_optinteger(L, 2, 1);
  lconc_argcheck(L, w >= 0, 2, "weight must not be negative");
  lua_pushboolean(L, conc_sem_try_acquire(s, (int64_t)w));
  return 1;
}

/* s:release([w = 1]); raises when releasing more than is held */
static int sem_release(lua_State *L) {
  conc_sem *s = SEM(L);
  lua_Integer w = lconc_optinteger(L, 2, 1);
  lconc_argcheck(L, w >= 0, 2, "weight must not be negative");
  if (conc_sem_release(s, (int64_t)w) != CONC_OK)
    return luaL_error(L,
                      "conc.semaphore:release: semaphore: released "
                      "more than held");
  return 0;
}

static int sem_size(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)conc_sem_size(SEM(L)));
  return 1;
}

/* s:held() -> the weight held now (for diagnostics) */
static int sem_held(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)conc_sem_held(SEM(L)));
  return 1;
}

/* ---- s:guard([w] [, timeout | ctx]) ---------------------------------- */

/* Releases its weight once, when its <close> variable goes out of scope
 * (also on error). Its user value is the semaphore's userdata. */
typedef struct sem_guard {
  int64_t weight;
  int armed;
} sem_guard;

static const char guard_name[] = "conc.semaphore.guard";

static int guard_close(lua_State *L) {
  sem_guard *g = (sem_guard *)luaL_checkudata(L, 1, guard_name);
  if (!g->armed) return 0;
  g->armed = 0;
  lua_getiuservalue(L, 1, 1);
  conc_sem *s = (conc_sem *)lconc_check_obj(L, -1, &conc_sem_type);
  if (conc_sem_release(s, g->weight) != CONC_OK)  /* released by hand */
    return luaL_error(L,
                      "conc.semaphore.guard: semaphore: released "
                      "more than held");
  return 0;
}

/* The guard (at 2) holds its weight once acquired. */
static int guard_end(lua_State *L, int rc) {
  if (rc == CONC_ENOMEM)
    return luaL_error(L, "conc.semaphore:guard: not enough memory");
  if (rc != CONC_OK) return lconc_push_fail(L, rc, "conc.semaphore:guard");
  sem_guard *g = (sem_guard *)luaL_checkudata(L, 2, guard_name);
  g->armed = 1;
  lua_settop(L, 2);
  return 1;
}

static int guard_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return guard_end(L, lconc_sem_acquire_done(L));
}

/* The guard is made before acquiring, unarmed: making it may fail (out
 * of memory), and a failure after acquiring would leave weight held. */
static int sem_guard_new(lua_State *L) {
  conc_sem *s = SEM(L);
  int wait_at, at = lconc_count_wait_at(L, 2, &wait_at); /* or (ctx, w) */
  int64_t n = check_weight(L, at, s, "conc.semaphore:guard");
  lconc_wait w;
  lconc_check_wait(L, wait_at, &w);
  lua_settop(L, 1);
  sem_guard *g = (sem_guard *)lua_newuserdatauv(L, sizeof *g, 1);
  g->weight = n;  /* `g` is armed by guard_end, once acquired */
  g->armed = 0;
  static const luaL_Reg meta[] = {{"__close", guard_close}, {NULL, NULL}};
  lconc_push_meta(L, guard_name, meta);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);                 /* self, guard */
  return guard_end(L, lconc_sem_acquire_k(L, "semaphore acquire", s, n, &w, 0,
                                          guard_k));
}

void lconc_open_sem(lua_State *L) {
  static const luaL_Reg methods[] = {{"acquire", sem_acquire},
                                     {"try_acquire", sem_try_acquire},
                                     {"release", sem_release},
                                     {"guard", sem_guard_new},
                                     {"size", sem_size},
                                     {"held", sem_held},
                                     {NULL, NULL}};
  lconc_declare(&conc_sem_type, methods, NULL, NULL);
  lua_pushcfunction(L, sem_new);
  lua_setfield(L, -2, "semaphore");
}
