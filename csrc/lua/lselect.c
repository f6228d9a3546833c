/*
 * lselect.c: conc.select, Go's select statement.
 *
 *   local i, v, ok = conc.select{
 *     {"recv", ch1},           -- case 1: v, ok as ch1:recv() gives them
 *     {"send", ch2, value},    -- case 2
 *     default = true,          -- optional: do not block ("default")
 *     timeout = 0.5,           -- optional: give up after 0.5 s ("timeout")
 *   }
 *
 * A case whose channel is nil, or a nil case, is never ready (Go's nil
 * channel). Among ready cases one is chosen uniformly at random.
 */
#include <stdbool.h>
#include <string.h>
#include "lcheck.h"
#include "lconc.h"

#define SMALL 8
/* The most cases a select takes (docs/API.md names it). */
#define MAX_CASES 4096
_Static_assert(MAX_CASES == 4096, "select_ names the limit");

static void free_sends(conc_case *cases, int n, int except) {
  for (int i = 0; i < n; i++)
    if (i != except && cases[i].chan && cases[i].op == CONC_SEND)
      conc_msg_free(&cases[i].msg);
}

/* Fills cases[k] from case table #k+1 (at stack top). 0, or 1 with an
 * error message pushed (nothing owned by cases[k] then). */
static int read_case(lua_State *L, conc_case *cs, int k) {
  memset(cs, 0, sizeof *cs);
  if (lua_isnil(L, -1)) return 0;
  if (!lua_istable(L, -1)) {
    lua_pushfstring(L, "conc.select: case #%d must be a table, got %s", k,
                    luaL_typename(L, -1));
    return 1;
  }
  lua_rawgeti(L, -1, 1);
  const char *op = lua_tostring(L, -1);
  lua_pop(L, 1);
  if (op && strcmp(op, "recv") == 0) cs->op = CONC_RECV;
  else if (op && strcmp(op, "send") == 0) cs->op = CONC_SEND;
  else {
    lua_pushfstring(L,
                    "conc.select: case #%d: first field must be "
                    "\"recv\" or \"send\"",
                    k);
    return 1;
  }
  lua_rawgeti(L, -1, 2);
  if (lua_isnil(L, -1)) {  /* a nil channel: never ready */
    lua_pop(L, 1);
    return 0;
  }
  int recv_only;
  conc_chan *c = lconc_test_chan(L, -1, &recv_only);
  if (c == NULL) {
    lua_pop(L, 1);
    lua_pushfstring(L, "conc.select: case #%d: conc.chan expected", k);
    return 1;
  }
  /* The channel (or its view) stays on the stack, below the case table,
   * until the select returns: encoding a later case's value can run Lua
   * code (an export hook, a finalizer) that drops the case table, and a
   * collection would free the channel under the select. Across a park
   * too: a yield keeps the stack below it. */
  lua_insert(L, -2);
  if (cs->op == CONC_SEND && recv_only) {  /* Go does not compile it */
    lua_pushfstring(L,
                    "conc.select: case #%d: send on receive-only "
                    "channel",
                    k);
    return 1;
  }
  if (cs->op == CONC_SEND) {
    char fname[48];
    snprintf(fname, sizeof fname, "conc.select: case #%d", k);
    lua_rawgeti(L, -1, 3);
    int err = lconc_encode_protected(L, -1, 1, &cs->msg, fname, LCONC_VALUE, 1);
    if (err) {
      lua_remove(L, -2);  /* the value; the message stays on top */
      return 1;
    }
    lua_pop(L, 1);
  }
  cs->chan = c;  /* kept alive by the stack (above) */
  return 0;
}

/* The deadline from the options; *has_default: a default case. */
static conc_time select_deadline(lua_State *L, int *has_default) {
  lua_pushvalue(L, lua_upvalueindex(1)); /* "default" (no lookup of the C
                                           string each call) */
  lua_gettable(L, 1);
  *has_default = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(2)); /* "timeout" */
  lua_gettable(L, 1);
  conc_time deadline = CONC_NEVER;
  if (!lua_isnil(L, -1)) {
    if (!lua_isnumber(L, -1))
      luaL_error(L, "conc.select: timeout must be a number of seconds");
    lua_Number s = lua_tonumber(L, -1);
    if (s != s) luaL_error(L, "conc.select: timeout is NaN");
    deadline = conc_deadline_in(s);
  }
  lua_pop(L, 1);
  return *has_default ? CONC_NOWAIT : deadline;
}

static int select_results(lua_State *L, conc_case *cases, int n, int r,
                          int closed_send, int has_default) {
  if (r < 0) {
    free_sends(cases, n, -1);
    if (r == CONC_ENOMEM)
      return luaL_error(L, "conc.select: not enough memory");
    if (lconc_aborted(r)) return lconc_raise_abort(L, r, "conc.select");
    if (r == CONC_ERECVONLY)  /* read_case refuses those first */
      return luaL_error(L, "conc.select: send on receive-only channel");
    lua_pushstring(L, has_default ? "default" : "timeout");
    return 1;
  }
  free_sends(cases, n, closed_send ? -1 : r);
  if (closed_send)
    return luaL_error(L, "conc.select: case #%d: send on closed channel",
                      r + 1);
  lua_pushinteger(L, r + 1);
  if (cases[r].op == CONC_SEND) return 1;
  if (!cases[r].ok) {
    lua_pushnil(L);
    lua_pushboolean(L, 0);
    return 3;
  }
  lconc_decode(L, &cases[r].msg, "conc.select", LCONC_VALUE);
  lua_pushboolean(L, 1);
  return 3;
}

/* A select's call (in the task's area when it may park): its cases
 * there when they fit, else in a userdata on the Lua stack. */
typedef struct sel_call {
  conc_case *cases;
  conc_time deadline;
  int n, closed_send, has_default;
} sel_call;
#define AREA_CASES \
  ((LCONC_OP_AREA - sizeof(sel_call)) / sizeof(conc_case))

typedef struct sel_local {
  sel_call call;
  conc_case small[SMALL];
} sel_local;
_Static_assert(AREA_CASES >= 1, "the op area holds a case");

static int select_op(void *p) {
  sel_call *a = (sel_call *)p;
  return conc_select(a->cases, a->n, a->deadline, &a->closed_send);
}

static int select_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  sel_call *a = (sel_call *)lconc_op_area_k(L);
  return select_results(L, a->cases, a->n, lconc_call_result(L), a->closed_send,
                        a->has_default);
}

/* Whether the key on top is one of the options (upvalues 1-3). */
static bool is_option(lua_State *L) {
  for (int i = 1; i <= 3; i++)
    if (lua_rawequal(L, -1, lua_upvalueindex(i))) return true;
  return false;
}

/* Refuses a key of the select's table that is neither a case (1..n) nor
 * an option: a misspelled `default` would make the select block (Go's
 * compiler refuses the like). Only the keys after the sequence's border
 * are visited (the options, as a rule). */
static void check_keys(lua_State *L, lua_Integer n) {
  lua_Integer border = (lua_Integer)lua_rawlen(L, 1);
  if (border > 0) lua_pushinteger(L, border);
  else lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    int isint = 0;
    lua_Integer k = lua_tointegerx(L, -1, &isint);
    if (lua_type(L, -1) == LUA_TNUMBER && isint && k >= 1 && k <= n) continue;
    if (lua_type(L, -1) == LUA_TSTRING && is_option(L)) continue;
    luaL_error(L,
               "conc.select: unknown field '%s' (a select takes its cases "
               "1..n and the options default, timeout and n)",
               luaL_tolstring(L, -1, NULL));
  }
}

static int select_(lua_State *L) {
  lconc_checktype(L, 1, LUA_TTABLE);
  int has_default;
  conc_time deadline = select_deadline(L, &has_default);
  lua_pushvalue(L, lua_upvalueindex(3)); /* "n" */
  lua_gettable(L, 1);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  if (!lua_isnil(L, -1)) {  /* a number (not a string); 2.0 is 2 */
    int isint = 0;
    if (lua_type(L, -1) == LUA_TNUMBER) n = lua_tointegerx(L, -1, &isint);
    if (!isint || n < 0)
      luaL_error(L, "conc.select: n must be a non-negative integer");
  }
  lua_pop(L, 1);
  lconc_argcheck(L, n <= MAX_CASES, 1, "too many cases (4096 at most)");
  check_keys(L, n);
  sel_local local;
  sel_call *a = (sel_call *)lconc_op_area(L, &local, LCONC_OP_AREA);
  int in_area = a != &local.call;
  size_t room = in_area ? AREA_CASES : SMALL;
  conc_case *cases = in_area ? (conc_case *)(a + 1) : local.small;
  if ((size_t)n > room) /* a userdata: collected even if an error is raised */
    cases = lua_newuserdatauv(L, (size_t)n * sizeof *cases, 0);
  /* Room for the channels read_case keeps, before any value is encoded
   * (nothing to free if this raises). */
  lconc_checkstack(L, (int)n + LUA_MINSTACK, "conc.select: too many cases");
  for (int k = 0; k < n; k++) {
    lua_rawgeti(L, 1, k + 1);
    if (read_case(L, &cases[k], k + 1)) {
      free_sends(cases, k, -1);
      luaL_where(L, 1); /* where it was called, as luaL_error says */
      lua_insert(L, -2);
      lua_concat(L, 2);
      return lua_error(L);
    }
    lua_pop(L, 1);
  }
  a->cases = cases;
  a->n = (int)n;
  a->closed_send = 0;
  a->has_default = has_default;
  /* A case ready now is taken without the wait's machinery (a select
   * polls its cases in a random order either way). */
  a->deadline = CONC_NOWAIT;
  int r = select_op(a);
  if (r == CONC_EAGAIN && deadline != CONC_NOWAIT) {
    a->deadline = deadline;
    lconc_blocking(L, n == 0 ? "select with no channel" : "select");
    r = lconc_call(L, select_op, a, 0, select_k);
  }
  return select_results(L, cases, (int)n, r, a->closed_send, has_default);
}

void lconc_open_select(lua_State *L) {
  lua_pushliteral(L, "default");
  lua_pushliteral(L, "timeout");
  lua_pushliteral(L, "n");
  lua_pushcclosure(L, select_, 3);
  lua_setfield(L, -2, "select");
}
