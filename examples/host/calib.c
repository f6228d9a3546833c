/*
 * calib.c: host.calib, a C module the example host links into itself.
 * No .so exists for it, so a lua_State can require it only if the host
 * registered it there: the main state at start, and every worker's
 * state through conc_lua_set_state_init (host.c). Its call counter is
 * one C variable for the whole process, which every state's adjust
 * increments: the host checks that each reading was calibrated once.
 */
#include <stdatomic.h>
#include <lauxlib.h>
#include "calib.h"

/* The sensor's calibration: reads 2% high, with a 0.5 degree offset. */
#define GAIN 0.98
#define OFFSET (-0.5)

static atomic_long calls;

static int adjust(lua_State *L) {
  lua_Number raw = luaL_checknumber(L, 1);
  atomic_fetch_add(&calls, 1);
  lua_pushnumber(L, raw * GAIN + OFFSET);
  return 1;
}

static int ncalls(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)atomic_load(&calls));
  return 1;
}

int luaopen_host_calib(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"adjust", adjust}, {"calls", ncalls}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
