/*
 * lcloser.c: what a call that runs Lua code owes its object when that
 * code never comes back.
 *
 * once:call and cb:call run fn with a continuation, so a light task may
 * park in it, and fn may also yield its own coroutine (lua_pcallk allows
 * it). A coroutine suspended there can be closed (coroutine.close) or
 * dropped, and then the continuation never runs: the once would stay
 * "running" (every later caller waiting forever) and the breaker's
 * probe place would stay taken. A closer is a to-be-closed userdata in
 * the call's own frame: Lua closes it when the call returns or raises
 * (disarmed by then: nothing happens) and when the coroutine is closed;
 * its __gc covers a dropped coroutine. Armed, it runs the object's
 * abandon function once. As Go: a Once whose f exits by runtime.Goexit
 * is done; a breaker call that never ends gives its place back.
 */
#include <stdbool.h>
#include "lconc.h"

struct lconc_closer {
  int (*abandon)(lua_State *L, conc_obj *obj, uint64_t data);
  conc_obj *obj; /* retained while armed: its box may be collected first */
  uint64_t data;
  bool in_slot; /* pushed and not closed yet */
  bool fired;   /* abandon ran: the call must not finish again */
};

static int closer_close(lua_State *L) {
  lconc_closer *c = (lconc_closer *)lua_touserdata(L, 1);
  c->in_slot = false;
  conc_obj *obj = c->obj;
  if (obj == NULL) return 0;
  c->obj = NULL;
  /* A coroutine a finalizer brought back may yet resume fn, which then
   * returns to its continuation: which must know. */
  c->fired = true;
  lua_settop(L, 0);
  int failed = c->abandon(L, obj, c->data);
  conc_release(obj);
  return failed ? lua_error(L) : 0;
}

static const char closer_name[] = "conc.closer";
/* registry: a table with weak values whose [1] is the state's spare
 * closer. A call reuses it when no frame holds it (a new userdata with a
 * finalizer for every breaker call cost it ~100 ns); held weakly, one in
 * the slot of a dropped coroutine is still collected, and fires. */
static const char spare_key = 'c';

static lconc_closer *new_closer(lua_State *L) {
  lconc_closer *c = (lconc_closer *)lua_newuserdatauv(L, sizeof *c, 0);
  c->obj = NULL;
  static const luaL_Reg meta[] = {
      {"__close", closer_close}, {"__gc", closer_close}, {NULL, NULL}};
  lconc_push_meta(L, closer_name, meta);
  lua_setmetatable(L, -2);
  return c;
}

lconc_closer *lconc_push_closer(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &spare_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 1, 1);
    lua_pushliteral(L, "v");
    lua_setfield(L, -2, "__mode");
    lua_pushvalue(L, -1);
    lua_setmetatable(L, -2); /* its own metatable: weak values */
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &spare_key);
  }
  lconc_closer *c = NULL;
  if (lua_rawgeti(L, -1, 1) == LUA_TUSERDATA) { /* spares, spare */
    c = (lconc_closer *)lua_touserdata(L, -1);
    if (c->in_slot) c = NULL;
  }
  if (c == NULL) { /* none yet, or in a frame: a new spare */
    lua_pop(L, 1);
    c = new_closer(L);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, 1);
  }
  lua_remove(L, -2);
  c->obj = NULL;
  c->data = 0;
  c->in_slot = true;
  c->fired = false;
  lua_toclose(L, -1);
  return c;
}

void lconc_closer_arm(lconc_closer *c,
                      int (*abandon)(lua_State *, conc_obj *, uint64_t),
                      conc_obj *obj, uint64_t data) {
  c->abandon = abandon;
  c->data = data;
  conc_retain(obj);
  c->obj = obj;
}

bool lconc_closer_disarm(lconc_closer *c, uint64_t *data) {
  conc_obj *obj = c->obj;
  c->obj = NULL;
  if (obj != NULL) conc_release(obj);
  if (data != NULL) *data = c->data;
  return !c->fired;
}
