/*
 * llimiter.c: conc.limiter, x/time/rate's Limiter, and the reservations
 * it hands out (conc.reservation), as Lua userdata. Both are conc
 * objects: a worker that receives one shares the same bucket.
 *
 * Rates are events per second, math.huge for no limit (Go's rate.Inf);
 * times are seconds. lim:wait is the only call that blocks.
 */
#include <math.h>
#include "lcheck.h"
#include "lconc.h"

static conc_limiter *checklim(lua_State *L) {
  return (conc_limiter *)lconc_check_obj(L, 1, &conc_limiter_type);
}

static conc_reservation *checkres(lua_State *L) {
  return (conc_reservation *)lconc_check_obj(L, 1, &conc_reservation_type);
}

static double check_rate(lua_State *L, int idx) {
  lua_Number r = lconc_checknumber(L, idx);
  lconc_argcheck(L, r >= 0, idx,  /* NaN fails too */
                 "rate must be >= 0 events per second (math.huge: no limit)");
  return (double)r;
}

static int64_t check_burst(lua_State *L, int idx) {
  lua_Integer b = lconc_checkinteger(L, idx);
  lconc_argcheck(L, b >= 0, idx, "burst must be >= 0");
  return (int64_t)b;
}

/* The optional number of events at idx (default 1). */
static int64_t opt_n(lua_State *L, int idx) {
  lua_Integer n = lconc_optinteger(L, idx, 1);
  lconc_argcheck(L, n >= 0, idx, "n must be >= 0");
  return (int64_t)n;
}

/* conc.limiter(rate, burst) -> a full bucket of `burst` tokens, refilled
 * at `rate` tokens per second */
static int lim_new(lua_State *L) {
  double rate = check_rate(L, 1);
  int64_t burst = check_burst(L, 2);
  conc_limiter *l = conc_limiter_new(rate, burst);
  if (l == NULL) return luaL_error(L, "conc.limiter: not enough memory");
  lconc_push_obj(L, (conc_obj *)l);
  return 1;
}

/* lim:allow([n = 1]) -> whether n events may happen now */
static int lim_allow(lua_State *L) {
  conc_limiter *l = checklim(L);
  int64_t n = opt_n(L, 2);
  lua_pushboolean(L, conc_limiter_allow(l, conc_now(), n));
  return 1;
}

/* lim:wait([n = 1] [, timeout | ctx]) -> true | nil, reason. Fails at
 * once, without taking tokens, when n exceeds the burst, when ctx is
 * canceled, or when the tokens would come after the timeout ("timeout")
 * or the context's deadline. */
typedef struct lim_call {
  conc_limiter *l;
  int64_t n;
  lconc_wait w;
} lim_call;

static int lim_wait_op(void *p) {
  lim_call *a = (lim_call *)p;
  return conc_limiter_wait(a->l, a->n, a->w.deadline, a->w.ctx);
}

static int lim_wait_end(lua_State *L, const lim_call *a, int rc) {
  if (rc == CONC_OK) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  if (rc == CONC_ERATEBURST)
    lua_pushfstring(L, "rate: Wait(n=%I) exceeds limiter's burst %I",
                    (lua_Integer)a->n, (lua_Integer)conc_limiter_burst(a->l));
  else if (rc == CONC_ERATEDEADLINE)
    lua_pushfstring(L, "rate: Wait(n=%I) would exceed context deadline",
                    (lua_Integer)a->n);
  else return lconc_push_fail(L, rc, "conc.limiter:wait");
  return 2;
}

static int lim_wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return lim_wait_end(L, (lim_call *)lconc_op_area_k(L), lconc_call_result(L));
}

static int lim_wait(lua_State *L) {
  lim_call local, *a = (lim_call *)lconc_op_area(L, &local, sizeof local);
  a->l = checklim(L);
  int wait_at; /* (n, ctx) or Go's (ctx, n) */
  a->n = opt_n(L, lconc_count_wait_at(L, 2, &wait_at));
  lconc_check_wait(L, wait_at, &a->w);
  lconc_blocking(L, "limiter wait");
  return lim_wait_end(L, a, lconc_call(L, lim_wait_op, a, 0, lim_wait_k));
}

/* lim:reserve([n = 1]) -> a conc.reservation: the n tokens are taken now,
 * and res:delay() says how long to wait before acting */
static int lim_reserve(lua_State *L) {
  conc_limiter *l = checklim(L);
  int64_t n = opt_n(L, 2);
  conc_reservation *r = conc_limiter_reserve(l, conc_now(), n);
  if (r == NULL)
    return luaL_error(L, "conc.limiter:reserve: not enough memory");
  lconc_push_obj(L, (conc_obj *)r);
  return 1;
}

/* lim:set_limit(rate): reservations already made keep their times */
static int lim_set_limit(lua_State *L) {
  conc_limiter *l = checklim(L);
  conc_limiter_set_limit(l, conc_now(), check_rate(L, 2));
  return 0;
}

static int lim_set_burst(lua_State *L) {
  conc_limiter *l = checklim(L);
  conc_limiter_set_burst(l, conc_now(), check_burst(L, 2));
  return 0;
}

/* lim:limit() -> events per second (math.huge: no limit) */
static int lim_limit(lua_State *L) {
  double r = conc_limiter_limit(checklim(L));
  lua_pushnumber(L, r >= CONC_RATE_INF ? (lua_Number)HUGE_VAL : (lua_Number)r);
  return 1;
}

static int lim_burst(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)conc_limiter_burst(checklim(L)));
  return 1;
}

/* lim:tokens() -> tokens available now (negative while reservations
 * wait for theirs) */
static int lim_tokens(lua_State *L) {
  lua_pushnumber(L, conc_limiter_tokens(checklim(L), conc_now()));
  return 1;
}

/* ---- reservations ------------------------------------------------------- */

/* res:ok() -> whether the limiter can grant it (n <= burst) */
static int res_ok(lua_State *L) {
  lua_pushboolean(L, conc_reservation_ok(checkres(L)));
  return 1;
}

/* res:delay() -> seconds to wait before acting: 0 now, math.huge never */
static int res_delay(lua_State *L) {
  conc_time d = conc_reservation_delay(checkres(L), conc_now());
  lua_pushnumber(L,
                 d == CONC_NEVER ? (lua_Number)HUGE_VAL : (lua_Number)d / 1e9);
  return 1;
}

/* res:cancel(): gives back the tokens later reservations do not already
 * count on (nothing once the time to act has passed; only once) */
static int res_cancel(lua_State *L) {
  conc_reservation_cancel(checkres(L), conc_now());
  return 0;
}

void lconc_open_limiter(lua_State *L) {
  static const luaL_Reg lim_m[] = {{"allow", lim_allow},
                                   {"wait", lim_wait},
                                   {"reserve", lim_reserve},
                                   {"set_limit", lim_set_limit},
                                   {"set_burst", lim_set_burst},
                                   {"limit", lim_limit},
                                   {"burst", lim_burst},
                                   {"tokens", lim_tokens},
                                   {NULL, NULL}};
  static const luaL_Reg res_m[] = {{"ok", res_ok},
                                   {"delay", res_delay},
                                   {"cancel", res_cancel},
                                   {NULL, NULL}};
  lconc_declare(&conc_limiter_type, lim_m, NULL, NULL);
  lconc_declare(&conc_reservation_type, res_m, NULL, NULL);
  lua_pushcfunction(L, lim_new);
  lua_setfield(L, -2, "limiter");
}
