/*
 * state_floor.c: what a Lua 5.4 state costs before any task code runs,
 * for reading B6 (the memory of a parked task) against.
 *
 * A light task is a lua_State of its own (fresh globals: nothing one
 * task does is seen by another) with a coroutine that runs the task.
 * This prints Lua's own count (collectgarbage "count", in bytes) of a
 * bare state and of what each piece adds: the base library, package
 * (require needs it), the coroutine, then the rest of the standard
 * libraries, which conc opens only when a task first uses them.
 *
 *   cc -O2 bench/c/state_floor.c -I/usr/include/lua5.4 -llua5.4 \
 *      -o /tmp/state_floor && /tmp/state_floor
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>

static long used(lua_State *L) {
  return (long)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + lua_gc(L, LUA_GCCOUNTB, 0);
}

static void open_lib(lua_State *L, const char *name, lua_CFunction f) {
  luaL_requiref(L, name, f, 1);
  lua_pop(L, 1);
}

int main(void) {
  lua_State *L = luaL_newstate();
  if (L == NULL) return 1;
  lua_gc(L, LUA_GCCOLLECT, 0);
  long bare = used(L), last = bare;
  printf("%-24s %6ld B\n", "lua_newstate", bare);
  open_lib(L, LUA_GNAME, luaopen_base);
  printf("%-24s %6ld B\n", "+ base library", used(L) - last);
  last = used(L);
  open_lib(L, LUA_LOADLIBNAME, luaopen_package);
  printf("%-24s %6ld B\n", "+ package", used(L) - last);
  last = used(L);
  lua_newthread(L);
  printf("%-24s %6ld B\n", "+ a coroutine", used(L) - last);
  long floor = used(L);
  printf("%-24s %6ld B\n", "= a task's floor", floor);
  luaL_openlibs(L);
  lua_gc(L, LUA_GCCOLLECT, 0);
  printf("%-24s %6ld B (luaL_openlibs)\n", "all libraries open", used(L));
  lua_close(L);
  return 0;
}
