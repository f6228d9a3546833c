/*
 * lbreaker.c: conc.breaker, a circuit breaker whose state lives in the
 * core (csrc/core/breaker.c), shared by every worker that holds it.
 *
 * cb:call(fn, ...) runs fn in the caller. The core only admits calls and
 * counts outcomes; on_change, a Lua function given to the constructor, is
 * encoded once into the breaker and decoded in the state of whichever
 * worker made a change (cached there per breaker userdata, so a state
 * decodes it once), and it runs after the core's lock is released.
 */
#include <stdbool.h>
#include <string.h>
#include "lconc.h"
#include "lcheck.h"

static const char cache_key[] = "conc.breaker.on_change";

static conc_breaker *checkcb(lua_State *L) {
  return (conc_breaker *)lconc_check_obj(L, 1, &conc_breaker_type);
}

/* Reads integer option `name` of the table at 1 (>= 1, default def). */
static int64_t opt_count(lua_State *L, const char *name, int64_t def) {
  int64_t v = def;
  if (lua_getfield(L, 1, name) != LUA_TNIL) {
    int isint;
    lua_Integer i = lua_tointegerx(L, -1, &isint);
    if (!isint || i < 1)
      luaL_error(L, "conc.breaker: %s must be an integer >= 1", name);
    v = (int64_t)i;
  }
  lua_pop(L, 1);
  return v;
}

static conc_time opt_timeout(lua_State *L) {
  conc_time t = conc_duration(30);
  if (lua_getfield(L, 1, "timeout") != LUA_TNIL) {
    int isnum;
    lua_Number s = lua_tonumberx(L, -1, &isnum);
    if (!isnum || !(s >= 0))
      luaL_error(L, "conc.breaker: timeout must be a number of seconds >= 0");
    t = conc_duration(s);
  }
  lua_pop(L, 1);
  return t;
}

/* Refuses options it does not know (a misspelt one would be ignored). */
static void check_keys(lua_State *L) {
  static const char *const known[] = {"failures", "timeout",   "successes",
                                      "probes",   "on_change", NULL};
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    int ok = 0;
    for (int i = 0; known[i] && lua_type(L, -1) == LUA_TSTRING; i++)
      ok |= strcmp(lua_tostring(L, -1), known[i]) == 0;
    if (!ok) {
      lconc_tostring_safe(L, -1);
      luaL_error(L, "conc.breaker: unknown option '%s'", lua_tostring(L, -1));
    }
  }
}

/* conc.breaker{failures = 5, timeout = 30, successes = 1, probes = 1,
 * on_change = fn} -> a closed breaker */
static int cb_new(lua_State *L) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  lconc_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  check_keys(L);
  conc_breaker_config cfg;
  cfg.failures = opt_count(L, "failures", 5);
  cfg.successes = opt_count(L, "successes", 1);
  cfg.probes = opt_count(L, "probes", 1);
  cfg.timeout = opt_timeout(L);
  int t = lua_getfield(L, 1, "on_change");  /* 2 */
  if (t != LUA_TNIL && t != LUA_TFUNCTION)
    luaL_error(L, "conc.breaker: on_change must be a function");
  conc_msg m, *on_change = NULL;
  if (t == LUA_TFUNCTION) {  /* last: nothing may raise after it */
    lconc_encode(L, 2, 1, &m, "conc.breaker: on_change", LCONC_VALUE, 1);
    on_change = &m;
  }
  conc_breaker *b = conc_breaker_new(&cfg, on_change);
  if (b == NULL) return luaL_error(L, "conc.breaker: not enough memory");
  lconc_push_obj(L, (conc_obj *)b);
  return 1;
}

/* Pushes this state's copy of the breaker's on_change (self at 1), or
 * false if it has none. */
static void push_on_change(lua_State *L, conc_breaker *b) {
  /* Keyed by breaker userdata, weakly; for this task only (a later task
   * in the state decodes its own: fresh globals and upvalues). */
  lconc_push_task_local(L, cache_key, "k");     /* cache */
  lua_pushvalue(L, 1);
  if (lua_rawget(L, -2) != LUA_TNIL) {          /* cache, fn */
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 1);
  conc_msg m;
  int rc = conc_breaker_on_change(b, &m);
  if (rc < 0) luaL_error(L, "conc.breaker: not enough memory");
  if (rc == 0) lua_pushboolean(L, 0);
  else lconc_decode(L, &m, "conc.breaker: on_change", LCONC_VALUE);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, -2);                         /* cache, fn, self, fn */
  lua_rawset(L, -4);
  lua_remove(L, -2);                            /* fn */
}

/* Runs on_change(from, to): self, from, to are its arguments 1-3. */
static int run_on_change(lua_State *L) {
  conc_breaker *b = checkcb(L);
  push_on_change(L, b);
  if (!lua_toboolean(L, -1)) return 0;
  lua_insert(L, 2);                             /* self, fn, from, to */
  lua_call(L, 2, 0);
  return 0;
}

/* Reports a change (self at 1) in this state: false with the error of
 * on_change on top of the stack if it raised; the stack is otherwise as
 * it was. */
static int report(lua_State *L, const conc_breaker_change *ch) {
  if (ch->from < 0) return 1;
  lua_pushcfunction(L, run_on_change);
  lua_pushvalue(L, 1);
  lua_pushstring(L, conc_breaker_state_name(ch->from));
  lua_pushstring(L, conc_breaker_state_name(ch->to));
  return lua_pcall(L, 3, 0, 0) == LUA_OK;
}

static void check_callable(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TFUNCTION) return;
  if (luaL_getmetafield(L, idx, "__call") != LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  lconc_typeerror(L, idx, "function");
}

/* Whether the nres results from base say failure: nil, err with err
 * neither nil nor false (a Go function's non-nil error). */
static int failed_result(lua_State *L, int base, int nres) {
  return nres >= 2 && lua_isnil(L, base) && lua_toboolean(L, base + 1);
}

/* cb:call(fn, ...) -> fn(...)'s results | nil, "circuit breaker is open"
 * | nil, "too many probes". A raise is a failure and is raised again;
 * results nil, err are a failure and are returned. Above self, fn and
 * its arguments up to ctx, the closer holding the ticket, then fn's
 * results (or its error). */
static int cb_called(lua_State *L, int status, lua_KContext ctx) {
  conc_breaker *b = checkcb(L);
  int closer = (int)ctx + 1;
  uint64_t ticket;
  bool mine = lconc_closer_disarm((lconc_closer *)lua_touserdata(L, closer),
                                  &ticket);
  bool ok = status == LUA_OK || status == LUA_YIELD;
  int nres = lua_gettop(L) - closer;
  int outcome = !ok || failed_result(L, closer + 1, nres) ? CONC_CALL_FAILURE
                                                          : CONC_CALL_SUCCESS;
  conc_breaker_change ch;
  if (mine) { /* else its place went back already (abandoned) */
    conc_breaker_end(b, conc_now(), ticket, outcome, &ch);
    if (!report(L, &ch)) return lua_error(L);
  }
  if (!ok) return lua_error(L);                 /* fn's error, as it was */
  return nres;
}

/* A call whose fn never returned (its coroutine closed or dropped while
 * fn yielded): its place goes back, as if never admitted. */
static int cb_abandon(lua_State *L, conc_obj *obj, uint64_t ticket) {
  conc_breaker_change ch;
  conc_breaker_end((conc_breaker *)obj, conc_now(), ticket, CONC_CALL_ABANDON,
                   &ch);
  if (ch.from < 0) return 0;
  lconc_push_obj(L, obj);                       /* self, for report */
  return !report(L, &ch);
}

static int cb_call(lua_State *L) {
  conc_breaker *b = checkcb(L);
  check_callable(L, 2);
  /* What running fn needs, before the place is ours to give back */
  int top = lua_gettop(L);
  lconc_checkstack(L, top + 1, "conc.breaker:call: too many arguments");
  lconc_closer *closer = lconc_push_closer(L);
  uint64_t ticket = 0;
  conc_breaker_change ch, ch2;
  int rc = conc_breaker_begin(b, conc_now(), &ticket, &ch);
  /* Armed at once: reporting may run out of memory, and the place must
   * go back whatever raises. */
  if (rc == CONC_OK)
    lconc_closer_arm(closer, cb_abandon, (conc_obj *)b, ticket);
  if (!report(L, &ch)) {  /* on_change raised: fn will not run */
    int err = lua_gettop(L);
    if (rc == CONC_OK) {   /* give its place back (and say so) */
      lconc_closer_disarm(closer, NULL);
      conc_breaker_end(b, conc_now(), ticket, CONC_CALL_ABANDON, &ch2);
      report(L, &ch2);
      lua_settop(L, err);  /* the first error is the one raised */
    }
    return lua_error(L);
  }
  if (rc != CONC_OK) {
    lua_pushnil(L);
    lua_pushstring(L, conc_strerror(rc));
    return 2;
  }
  /* fn runs with a continuation (a light task may park in it), on copies
   * of fn and its arguments above the closer, which must stay put */
  for (int i = 2; i <= top; i++) lua_pushvalue(L, i);
  int status = lua_pcallk(L, top - 2, LUA_MULTRET, 0, (lua_KContext)top,
                          cb_called);
  return cb_called(L, status, (lua_KContext)top);
}

/* cb:state() -> "closed" | "open" | "half-open" */
static int cb_state(lua_State *L) {
  conc_breaker *b = checkcb(L);
  conc_breaker_change ch;
  int state = conc_breaker_state(b, conc_now(), &ch);
  if (!report(L, &ch)) return lua_error(L);
  lua_pushstring(L, conc_breaker_state_name(state));
  return 1;
}

static void set_count(lua_State *L, const char *name, int64_t v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, name);
}

/* cb:counts() -> {requests, successes, failures, consecutive_successes,
 * consecutive_failures} of the current state (a change clears them) */
static int cb_counts(lua_State *L) {
  conc_breaker_counts c;
  conc_breaker_counts_get(checkcb(L), &c);
  lua_createtable(L, 0, 5);
  set_count(L, "requests", c.requests);
  set_count(L, "successes", c.successes);
  set_count(L, "failures", c.failures);
  set_count(L, "consecutive_successes", c.consecutive_successes);
  set_count(L, "consecutive_failures", c.consecutive_failures);
  return 1;
}

void lconc_open_breaker(lua_State *L) {
  static const luaL_Reg cb_m[] = {{"call", cb_call},
                                  {"state", cb_state},
                                  {"counts", cb_counts},
                                  {NULL, NULL}};
  lconc_declare(&conc_breaker_type, cb_m, NULL, NULL);
  lua_pushcfunction(L, cb_new);
  lua_setfield(L, -2, "breaker");
}
