/*
 * lchan.c: conc.chan, channels as Lua userdata.
 *
 * Outcomes are return values (a closed channel, a timeout); what Go
 * panics on raises, worded as Go words it.
 *
 * Receive-only channels: those conc owns and hands out (h:done(),
 * ctx:done(), timer.C...; flagged in the core) and views
 * (ch:recv_only(), Go's <-chan T: an object of their own type, so that
 * they stay receive-only wherever they travel). Both take every method
 * of a channel; send, try_send, close and <close> raise on them.
 */
#include "lcheck.h"
#include "lconc.h"

conc_chan *lconc_test_chan(lua_State *L, int idx, int *recv_only) {
  conc_chan *c = (conc_chan *)lconc_test_obj(L, idx, &conc_chan_type);
  int view = 0;
  if (c == NULL) {
    conc_obj *v = lconc_test_obj(L, idx, &conc_chan_view_type);
    if (v != NULL) c = conc_chan_view_chan((conc_chan_view *)v);
    view = v != NULL;
  }
  if (recv_only) *recv_only = view || (c && conc_chan_recv_only(c));
  return c;
}

/* Argument 1 as a channel (a channel or a view); *recv_only as
 * lconc_test_chan sets it. */
static conc_chan *checkchan_ro(lua_State *L, int *recv_only) {
  conc_chan *c = lconc_test_chan(L, 1, recv_only);
  if (c == NULL)  /* raises the type error (or "already released") */
    c = (conc_chan *)lconc_check_obj(L, 1, &conc_chan_type);
  return c;
}

/* Argument 1 as a channel to receive from. */
static conc_chan *checkchan(lua_State *L) { return checkchan_ro(L, NULL); }

/* Argument 1 as a channel to send on or close ("send on", "close of"):
 * raises, as Go's compiler refuses it, on a receive-only one. */
static conc_chan *check_writable(lua_State *L, const char *fname,
                                 const char *what) {
  int recv_only;
  conc_chan *c = checkchan_ro(L, &recv_only);
  if (recv_only) luaL_error(L, "%s: %s receive-only channel", fname, what);
  return c;
}

/* conc.chan([capacity]) */
static int chan_new(lua_State *L) {
  lua_Integer cap = lconc_optinteger(L, 1, 0);
  lconc_argcheck(L, cap >= 0 && cap <= 0x7fffffff, 1,
                 "capacity must be an integer from 0 to 2^31-1");
  conc_chan *c = conc_chan_new((size_t)cap);
  if (c == NULL) return luaL_error(L, "conc.chan: not enough memory");
  lconc_push_obj(L, (conc_obj *)c);
  return 1;
}

/* A send's end: CONC_OK; raises on a closed channel; else returns the
 * failure code (timeout, would block, a canceled context). */
static int send_end(lua_State *L, const char *fname, lconc_wait_call *a,
                    int rc) {
  if (rc == CONC_OK) return CONC_OK;
  conc_msg_free(&a->cs.msg);
  if (rc == CONC_ECLOSED)
    return luaL_error(L, "%s: send on closed channel", fname);
  if (lconc_aborted(rc)) return lconc_raise_abort(L, rc, fname);
  return rc;
}

/* Starts a send within w (k: where a parked send goes on). */
static int do_send(lua_State *L, const char *fname, const lconc_wait *w,
                   lua_KFunction k) {
  lconc_wait_call local, *a = lconc_wait_area(L, &local);
  a->cs.chan = check_writable(L, fname, "send on");
  a->cs.op = CONC_SEND;
  a->w = *w;
  if (lua_isnone(L, 2)) return luaL_error(L, "%s: value expected", fname);
  lconc_encode(L, 2, 1, &a->cs.msg, fname, LCONC_VALUE, 1);
  lconc_blocking(L, "chan send");
  return send_end(L, fname, a, lconc_wait_op_k(L, a, 0, k));
}

static int send_result(lua_State *L, int rc) {
  if (rc != CONC_OK) return lconc_push_fail(L, rc, "conc.chan:send");
  lua_pushboolean(L, 1);
  return 1;
}

static int chan_send_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  lconc_wait_call *a;
  int rc = lconc_wait_done(L, &a);
  return send_result(L, send_end(L, "conc.chan:send", a, rc));
}

/* ch:send(v [, timeout | ctx]) -> true | nil, reason */
static int chan_send(lua_State *L) {
  lconc_wait w;
  lconc_check_wait(L, 3, &w);
  return send_result(L, do_send(L, "conc.chan:send", &w, chan_send_k));
}

static int chan_try_send(lua_State *L) {
  lconc_wait w = {CONC_NOWAIT, NULL};
  lua_pushboolean(L, do_send(L, "conc.chan:try_send", &w, NULL) == CONC_OK);
  return 1;
}

/* A receive's end: v, true | nil, false (closed) | nil, nil, reason. */
static int recv_end(lua_State *L, lconc_wait_call *a, int rc, const char *fname,
                    const char *reason) {
  if (lconc_aborted(rc)) return lconc_raise_abort(L, rc, "conc.chan:recv");
  if (rc == CONC_OK) {
    lconc_decode(L, &a->cs.msg, fname, LCONC_VALUE);
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

static int do_recv(lua_State *L, const lconc_wait *w, const char *fname,
                   const char *reason, lua_KFunction k) {
  lconc_wait_call local, *a = lconc_wait_area(L, &local);
  a->cs.chan = checkchan(L);
  a->cs.op = CONC_RECV;
  a->w = *w;
  lconc_blocking(L, "chan receive");
  int rc = lconc_wait_op_k(L, a, 0, k);
  return recv_end(L, a, rc, fname, reason);
}

static int chan_recv_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  lconc_wait_call *a;
  int rc = lconc_wait_done(L, &a);
  return recv_end(L, a, rc, "conc.chan:recv", "timeout");
}

/* ch:recv([timeout | ctx]) */
static int chan_recv(lua_State *L) {
  lconc_wait w;
  lconc_check_wait(L, 2, &w);
  return do_recv(L, &w, "conc.chan:recv", "timeout", chan_recv_k);
}

static int chan_try_recv(lua_State *L) {
  lconc_wait w = {CONC_NOWAIT, NULL};
  return do_recv(L, &w, "conc.chan:try_recv", "would block", NULL);
}

static int chan_close(lua_State *L) {
  conc_chan *c = check_writable(L, "conc.chan:close", "close of");
  if (conc_chan_close(c) == CONC_ECLOSED)
    return luaL_error(L, "conc.chan:close: close of closed channel");
  return 0;
}

/* __close: a <close> channel is closed at the end of its scope (Go's
 * `defer close(ch)`); one closed already is left as it is. A
 * receive-only one raises as close does: Go would not compile
 * `defer close(ro)`, and a silent no-op would hide the mistake. */
static int chan_scope_close(lua_State *L) {
  conc_chan_close(check_writable(L, "conc.chan:close", "close of"));
  return 0;
}

/* ch:recv_only() -> a receive-only view of ch (ch itself if it is one
 * already, or a channel conc owns) */
static int chan_recv_only(lua_State *L) {
  int recv_only;
  conc_chan *c = checkchan_ro(L, &recv_only);
  lua_settop(L, 1);
  if (recv_only) return 1;
  conc_chan_view *v = conc_chan_view_new(c);
  if (v == NULL) return luaL_error(L, "conc.chan:recv_only: not enough memory");
  lconc_push_obj(L, (conc_obj *)v);
  return 1;
}

/* What __eq compares: a view's channel, else the object itself. */
static conc_obj *identity(lua_State *L, int idx) {
  conc_chan *c = lconc_test_chan(L, idx, NULL);
  return c ? (conc_obj *)c : lconc_to_obj(L, idx);
}

/* __eq: a view equals its channel (and every other view of it). */
static int chan_eq(lua_State *L) {
  conc_obj *a = identity(L, 1);
  lua_pushboolean(L, a != NULL && a == identity(L, 2));
  return 1;
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
static int next_end(lua_State *L, lconc_wait_call *a, int rc) {
  if (lconc_aborted(rc)) return lconc_raise_abort(L, rc, "conc.chan:range");
  if (rc != CONC_OK) return 0;
  return lconc_decode(L, &a->cs.msg, "conc.chan:range", LCONC_VALUE);
}

static int chan_next_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  lconc_wait_call *a;
  int rc = lconc_wait_done(L, &a);
  return next_end(L, a, rc);
}

static int chan_next(lua_State *L) {
  lconc_wait_call local, *a = lconc_wait_area(L, &local);
  a->cs.chan = checkchan(L);
  a->cs.op = CONC_RECV;
  a->w.deadline = CONC_NEVER;
  a->w.ctx = NULL;
  lconc_blocking(L, "chan range");
  return next_end(L, a, lconc_wait_op_k(L, a, 0, chan_next_k));
}

/* for v in ch:range() do ... end: receives until the channel is closed. */
static int chan_range(lua_State *L) {
  checkchan(L);
  lua_pushcfunction(L, chan_next);
  lua_pushvalue(L, 1);
  return 2;
}

void lconc_open_chan(lua_State *L) {
  static const luaL_Reg methods[] = {{"send", chan_send},
                                     {"recv", chan_recv},
                                     {"try_send", chan_try_send},
                                     {"try_recv", chan_try_recv},
                                     {"close", chan_close},
                                     {"len", chan_len},
                                     {"cap", chan_cap},
                                     {"range", chan_range},
                                     {"recv_only", chan_recv_only},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__len", chan_len},
                                  {"__close", chan_scope_close},
                                  {"__eq", chan_eq},
                                  {NULL, NULL}};
  lconc_declare(&conc_chan_type, methods, meta, NULL);
  lconc_declare(&conc_chan_view_type, methods, meta, NULL);
  lua_pushcfunction(L, chan_new);
  lua_setfield(L, -2, "chan");
}
