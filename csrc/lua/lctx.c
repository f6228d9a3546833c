/*
 * lctx.c: contexts (conc.ctx) and their cancel functions (conc.cancel).
 *
 * A cancel function is a conc object too, so it can be passed to workers
 * like the context; calling it (or closing it: `local ctx, cancel <close>
 * = conc.with_cancel(parent)` is Go's `defer cancel()`) cancels the
 * context; it is idempotent. Dropping a cancel function does not cancel.
 */
#include "lconc.h"
#include "lcheck.h"
#include "../core/internal.h"

typedef struct lcancel {
  conc_obj hdr;
  conc_ctx *ctx;
} lcancel;

static void cancel_destroy(conc_obj *o) {
  conc_release((conc_obj *)((lcancel *)o)->ctx);
  free(o);
}

static const conc_type cancel_type = {"conc.cancel", cancel_destroy};

static conc_ctx *checkctx(lua_State *L, int idx) {
  return (conc_ctx *)lconc_check_obj(L, idx, &conc_ctx_type);
}

/* Makes a child of parent with deadline d (CONC_NEVER: none) and pushes
 * it and its cancel function. In that order, each made just before its
 * push: a push that raises (no memory) releases its own object's
 * reference, and what was pushed before is a box the collector frees. */
static int push_new(lua_State *L, conc_ctx *parent, conc_time d,
                    const char *fname) {
  int rc; /* no memory, or no timer thread for the deadline */
  conc_ctx *ctx = conc__ctx_make(parent, d, NULL, NULL, &rc);
  if (ctx == NULL)
    return luaL_error(L, "%s: %s", fname,
                      rc == CONC_ETHREAD ? conc_strerror(rc)
                                         : "not enough memory");
  lconc_push_obj(L, (conc_obj *)ctx);
  lcancel *c = calloc(1, sizeof *c);
  if (c == NULL) return luaL_error(L, "%s: not enough memory", fname);
  conc_obj_init(&c->hdr, &cancel_type);
  conc_retain((conc_obj *)ctx);
  c->ctx = ctx;
  lconc_push_obj(L, &c->hdr);
  return 2;
}

/* conc.background(), conc.todo() -> the root context */
static int c_background(lua_State *L) {
  lconc_push_obj(L, (conc_obj *)conc_ctx_background());
  return 1;
}

static int new_cancel(lua_State *L, const char *fname) {
  conc_ctx *parent = checkctx(L, 1);
  return push_new(L, parent, CONC_NEVER, fname);
}

/* conc.with_cancel(parent) -> ctx, cancel */
static int c_with_cancel(lua_State *L) {
  return new_cancel(L, "conc.with_cancel");
}

/* conc.with_cancel_cause(parent) -> ctx, cancel: the same (every cancel
 * function takes a cause); a function of its own, so that an error
 * names the one called even where Lua knows no name for it (pcall). */
static int c_with_cancel_cause(lua_State *L) {
  return new_cancel(L, "conc.with_cancel_cause");
}

/* conc.with_deadline(parent, t) -> ctx, cancel (t on conc.now's clock) */
static int c_with_deadline(lua_State *L) {
  conc_ctx *parent = checkctx(L, 1);
  lua_Number t = lconc_checknumber(L, 2);
  lconc_argcheck(L, t == t, 2, "deadline is NaN");
  conc_time d = conc_deadline_at(t);  /* clamped: a deadline stays one */
  return push_new(L, parent, d, "conc.with_deadline");
}

/* The deadline of a timeout of s seconds: now + s, as Go's WithTimeout
 * (time.Now().Add(d)), so a negative one lies that far in the past. */
static conc_time timeout_deadline(lua_Number s) {
  if (s > 0) return conc_deadline_in(s);
  conc_time now = conc_now(), back = conc_duration(-s);
  return back < now ? now - back : 1; /* 0 would read as no deadline */
}

/* conc.with_timeout(parent, seconds) -> ctx, cancel */
static int c_with_timeout(lua_State *L) {
  conc_ctx *parent = checkctx(L, 1);
  lua_Number s = lconc_checknumber(L, 2);
  lconc_argcheck(L, s == s, 2, "timeout is NaN");
  conc_time d = timeout_deadline(s);
  return push_new(L, parent, d, "conc.with_timeout");
}

/* Checks a context key and normalizes it in place as a table key is:
 * a float with an integer value is that integer; NaN is refused. */
static void check_key(lua_State *L, int idx, const char *fname) {
  int t = lua_type(L, idx);
  if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TBOOLEAN &&
      lconc_to_obj(L, idx) == NULL)
    luaL_error(L,
               "%s: key must be a string, number, boolean or conc "
               "object, got %s",
               fname, luaL_typename(L, idx));
  if (t != LUA_TNUMBER || lua_isinteger(L, idx)) return;
  lua_Number n = lua_tonumber(L, idx);
  if (n != n) luaL_error(L, "%s: key is NaN", fname);
  lua_Integer i;
  if (lua_numbertointeger(n, &i) && (lua_Number)i == n) {
    lua_pushinteger(L, i);
    lua_replace(L, idx);
  }
}

/* conc.with_value(parent, key, value) -> ctx */
static int c_with_value(lua_State *L) {
  conc_ctx *parent = checkctx(L, 1);
  check_key(L, 2, "conc.with_value");
  lconc_checkany(L, 3);
  conc_msg key, value;
  lconc_encode(L, 2, 1, &key, "conc.with_value", LCONC_ARG, 2);
  if (lconc_encode_protected(L, 3, 1, &value, "conc.with_value", LCONC_ARG,
                             3)) {
    conc_msg_free(&key);
    return lua_error(L);
  }
  conc_ctx *ctx = conc_ctx_new(parent, CONC_NEVER, &key, &value);
  if (ctx == NULL) {
    conc_msg_free(&key);
    conc_msg_free(&value);
    return luaL_error(L, "conc.with_value: not enough memory");
  }
  lconc_push_obj(L, (conc_obj *)ctx);
  return 1;
}

/* ctx:done() -> a channel closed when ctx is canceled */
static int c_done(lua_State *L) {
  conc_chan *c = conc_ctx_done(checkctx(L, 1));
  lconc_push_obj_shared(L, (conc_obj *)c);
  return 1;
}

/* ctx:err() -> nil | "context canceled" | "context deadline exceeded" */
static int c_err(lua_State *L) {
  int err = conc_ctx_err(checkctx(L, 1));
  if (err == 0) lua_pushnil(L);
  else lua_pushstring(L, conc_strerror(err));
  return 1;
}

/* ctx:deadline() -> t, true | nil, false */
static int c_deadline(lua_State *L) {
  conc_time d = conc_ctx_deadline(checkctx(L, 1));
  if (d == CONC_NEVER) {
    lua_pushnil(L);
    lua_pushboolean(L, 0);
  } else {
    lua_pushnumber(L, (lua_Number)d / 1e9);
    lua_pushboolean(L, 1);
  }
  return 2;
}

/* ctx:value(key) -> the value of the nearest context with key, or nil */
static int c_value(lua_State *L) {
  conc_ctx *ctx = checkctx(L, 1);
  check_key(L, 2, "conc.ctx:value");
  conc_msg key, value;
  lconc_encode(L, 2, 1, &key, "conc.ctx:value", LCONC_ARG, 1);
  int found = conc_ctx_value(ctx, &key, &value);
  conc_msg_free(&key);
  if (!found) {
    lua_pushnil(L);
    return 1;
  }
  return lconc_decode(L, &value, "conc.ctx:value", LCONC_VALUE);
}

/* ctx:cause() -> the cause given to cancel, else err(), nil if live */
static int c_cause(lua_State *L) {
  conc_ctx *ctx = checkctx(L, 1);
  conc_msg cause;
  if (conc_ctx_cause(ctx, &cause))
    return lconc_decode(L, &cause, "conc.ctx:cause", LCONC_VALUE);
  return c_err(L);
}

/* cancel([cause]): cancels the context; later calls do nothing. It
 * always cancels, as Go's: a cause that cannot travel (an error object
 * with a metatable) is its text, as an errgroup's error is; one whose
 * text cannot be had either (no memory) is left out. */
static int cancel_call(lua_State *L) {
  lcancel *c = (lcancel *)lconc_check_obj(L, 1, &cancel_type);
  conc_msg cause;
  int has = !lua_isnoneornil(L, 2);
  if (has && lconc_encode_protected(L, 2, 1, &cause, "conc.cancel", LCONC_VALUE,
                                    1) != 0) {
    lua_settop(L, 2);
    lconc_tostring_safe(L, 2);
    has = lconc_encode_protected(L, 3, 1, &cause, "conc.cancel", LCONC_VALUE,
                                 1) == 0;
  }
  conc_ctx_cancel(c->ctx, CONC_ECANCELED, has ? &cause : NULL);
  return 0;
}

/* __close(cancel, err): the scope ended; the error is not a cause. */
static int cancel_close(lua_State *L) {
  lcancel *c = (lcancel *)lconc_check_obj(L, 1, &cancel_type);
  conc_ctx_cancel(c->ctx, CONC_ECANCELED, NULL);
  return 0;
}

void lconc_open_ctx(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"done", c_done},   {"err", c_err},     {"deadline", c_deadline},
      {"value", c_value}, {"cause", c_cause}, {NULL, NULL}};
  static const luaL_Reg cancel_meta[] = {
      {"__call", cancel_call}, {"__close", cancel_close}, {NULL, NULL}};
  static const luaL_Reg cancel_methods[] = {{NULL, NULL}};
  static const luaL_Reg funcs[] = {{"background", c_background},
                                   {"todo", c_background},
                                   {"with_cancel", c_with_cancel},
                                   {"with_cancel_cause", c_with_cancel_cause},
                                   {"with_timeout", c_with_timeout},
                                   {"with_deadline", c_with_deadline},
                                   {"with_value", c_with_value},
                                   {NULL, NULL}};
  lconc_declare(&conc_ctx_type, methods, NULL, NULL);
  lconc_declare(&cancel_type, cancel_methods, cancel_meta, NULL);
  luaL_setfuncs(L, funcs, 0);
}
