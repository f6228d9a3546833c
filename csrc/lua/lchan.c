/*
 * lchan.c: conc.chan, channels as Lua userdata.
 *
 * Outcomes are return values (a closed channel, a timeout); what Go
 * panics on raises, worded as Go words it.
 */
#include "lconc.h"

static conc_chan *checkchan(lua_State *L) {
  return (conc_chan *)lconc_check_obj(L, 1, &conc_chan_type);
}

/* conc.chan([capacity]) */
static int chan_new(lua_State *L) {
  lua_Integer cap = luaL_optinteger(L, 1, 0);
  luaL_argcheck(L, cap >= 0 && cap <= 0x7fffffff, 1,
                "capacity must be an integer from 0 to 2^31-1");
  conc_chan *c = conc_chan_new((size_t)cap);
  if (c == NULL) return luaL_error(L, "conc.chan: not enough memory");
  lconc_push_obj(L, (conc_obj *)c);
  return 1;
}

/* Sends within w: true; raises on a closed channel; else returns the
 * failure code (timeout, would block, a canceled context). */
static int do_send(lua_State *L, const char *fname, const lconc_wait *w) {
  conc_case cs;
  cs.chan = checkchan(L);
  cs.op = CONC_SEND;
  if (lua_isnone(L, 2)) return luaL_error(L, "%s: value expected", fname);
  lconc_encode(L, 2, 1, &cs.msg, fname, LCONC_VALUE, 1);
  lconc_blocking(L);
  int rc = lconc_wait_op(&cs, w);
  if (rc == CONC_OK) return CONC_OK;
  conc_msg_free(&cs.msg);
  if (rc == CONC_ECLOSED)
    return luaL_error(L, "%s: send on closed channel", fname);
  if (rc == CONC_EDEADLOCK) return lconc_raise_deadlock(L, fname);
  return rc;
}

/* ch:send(v [, timeout | ctx]) -> true | nil, reason */
static int chan_send(lua_State *L) {
  lconc_wait w;
  lconc_check_wait(L, 3, &w);
  int rc = do_send(L, "conc.chan:send", &w);
  if (rc != CONC_OK) return lconc_push_fail(L, rc, "conc.chan:send");
  lua_pushboolean(L, 1);
  return 1;
}

static int chan_try_send(lua_State *L) {
  lconc_wait w = {CONC_NOWAIT, NULL};
  lua_pushboolean(L, do_send(L, "conc.chan:try_send", &w) == CONC_OK);
  return 1;
}

/* Receives within w: v, true | nil, false (closed) | nil, nil, reason. */
static int do_recv(lua_State *L, const lconc_wait *w, const char *fname,
                   const char *reason) {
  conc_case cs;
  cs.chan = checkchan(L);
  cs.op = CONC_RECV;
  lconc_blocking(L);
  int rc = lconc_wait_op(&cs, w);
  if (rc == CONC_EDEADLOCK) return lconc_raise_deadlock(L, "conc.chan:recv");
  if (rc == CONC_OK) {
    lconc_decode(L, &cs.msg, fname, LCONC_VALUE);
    lua_pushboolean(L, 1);
    return 2;
  }
  lua_pushnil(L);
  if (rc == CONC_ECLOSED) {
    lua_pushboolean(L, 0);
    return 2;
  }
  lua_pushnil(L);
  lua_pushstring(L, rc == CONC_EAGAIN ? reason : conc_strerror(rc));
  return 3;
}

/* ch:recv([timeout | ctx]) */
static int chan_recv(lua_State *L) {
  lconc_wait w;
  lconc_check_wait(L, 2, &w);
  return do_recv(L, &w, "conc.chan:recv", "timeout");
}

static int chan_try_recv(lua_State *L) {
  lconc_wait w = {CONC_NOWAIT, NULL};
  return do_recv(L, &w, "conc.chan:try_recv", "would block");
}

static int chan_close(lua_State *L) {
  if (conc_chan_close(checkchan(L)) == CONC_ECLOSED)
    return luaL_error(L, "conc.chan:close: close of closed channel");
  return 0;
}

/* __close: a <close> channel is closed at the end of its scope (Go's
 * `defer close(ch)`); one closed already is left as it is. */
static int chan_scope_close(lua_State *L) {
  conc_chan_close(checkchan(L));
  return 0;
}

static int chan_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)conc_chan_len(checkchan(L)));
  return 1;
}

static int chan_cap(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)conc_chan_cap(checkchan(L)));
  return 1;
}

/* The iterator of range: the next value, or nothing once closed. */
static int chan_next(lua_State *L) {
  conc_chan *c = checkchan(L);
  conc_msg m;
  lconc_blocking(L);
  int rc = conc_chan_recv(c, &m, CONC_NEVER);
  if (rc == CONC_EDEADLOCK) return lconc_raise_deadlock(L, "conc.chan:range");
  if (rc != CONC_OK) return 0;
  return lconc_decode(L, &m, "conc.chan:range", LCONC_VALUE);
}

/* for v in ch:range() do ... end: receives until the channel is closed. */
static int chan_range(lua_State *L) {
  checkchan(L);
  lua_pushcfunction(L, chan_next);
  lua_pushvalue(L, 1);
  return 2;
}

void lconc_open_chan(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"send", chan_send},         {"recv", chan_recv},
      {"try_send", chan_try_send}, {"try_recv", chan_try_recv},
      {"close", chan_close},       {"len", chan_len},
      {"cap", chan_cap},           {"range", chan_range},
      {NULL, NULL}};
  static const luaL_Reg meta[] = {
      {"__len", chan_len}, {"__close", chan_scope_close}, {NULL, NULL}};
  lconc_declare(&conc_chan_type, methods, meta, NULL);
  lua_pushcfunction(L, chan_new);
  lua_setfield(L, -2, "chan");
}
