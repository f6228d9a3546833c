/*
 * lhost.c: the binding's C API for a host (conc_lua.h): conc objects in
 * and out of a lua_State, values encoded and decoded through a state,
 * and the host's hook on the states conc makes for workers.
 */
#include <stdatomic.h>
#include <stdio.h>
#include "lconc.h"
#include "worker.h"

/* Raises unless conc.core was opened in L: its classes and the codec's
 * per-state setup are what these functions stand on. */
/* Open: conc.core was opened in L, or L is a worker's (conc's own state,
 * where objects and values work whether or not its task required conc:
 * a host module's calls in a task failed or not by which pooled state
 * the task got). */
static int is_open(lua_State *L) {
  int open = lua_getfield(L, LUA_REGISTRYINDEX, "conc.core") != LUA_TNIL;
  lua_pop(L, 1);
  return open || lconc_is_worker_state(L);
}

static void check_open(lua_State *L, const char *fname) {
  if (!is_open(L))
    luaL_error(L,
               "%s: conc.core is not open in this lua_State (require "
               "\"conc\" or call luaopen_conc_core first)",
               fname);
}

/* ---- objects ------------------------------------------------------------ */

void conc_lua_push(lua_State *L, conc_obj *o) {
  check_open(L, "conc_lua_push");
  lconc_push_obj_shared(L, o); /* the Lua value's own reference */
}

void conc_lua_push_chan(lua_State *L, conc_chan *c) {
  conc_lua_push(L, (conc_obj *)c);
}

conc_obj *conc_lua_test(lua_State *L, int idx, const conc_type *type) {
  return type ? lconc_test_obj(L, idx, type) : lconc_to_obj(L, idx);
}

conc_obj *conc_lua_check(lua_State *L, int idx, const conc_type *type) {
  return lconc_check_obj_plain(L, idx, type);
}

conc_chan *conc_lua_to_chan(lua_State *L, int idx, int *recv_only) {
  return lconc_test_chan(L, idx, recv_only);
}

/* ---- values through a state --------------------------------------------- */

int conc_lua_to_msg(lua_State *L, int idx, conc_msg *m) {
  idx = lua_absindex(L, idx);
  check_open(L, "conc_lua_to_msg");
  if (lconc_encode_protected(L, idx, 1, m, "conc_lua_to_msg", LCONC_VALUE, 1) ==
      0)
    return LUA_OK;
  return LUA_ERRRUN;
}

int conc_lua_push_msg(lua_State *L, conc_msg *m) {
  if (!is_open(L)) {
    conc_msg_free(m);  /* it is freed whatever happens */
    check_open(L, "conc_lua_push_msg");
  }
  return lconc_decode_protected(L, m, "conc_lua_push_msg", LCONC_VALUE);
}

/* ---- the states of workers ---------------------------------------------- */

static _Atomic(lua_CFunction) state_init;

void conc_lua_set_state_init(lua_CFunction fn) {
  atomic_store(&state_init, fn);
}

void lconc_call_state_init(lua_State *L) {
  lua_CFunction fn = atomic_load(&state_init);
  if (fn == NULL) return;
  int top = lua_gettop(L);
  lua_pushcfunction(L, fn);
  if (lua_pcall(L, 0, 0, 0) == LUA_OK) {
    lua_settop(L, top);
    return;
  }
  lconc_tostring_safe(L, -1);
  const char *why = lua_tostring(L, -1);
  /* The task that needed the state fails without this text (it is told
   * only that no state could be made): the host's error goes here. */
  fprintf(stderr, "conc: conc_lua_set_state_init's function failed: %s\n", why);
  luaL_error(L, "conc_lua_set_state_init's function failed: %s", why);
}
