/*
 * test_lua_guard.c: the binding's scoped locks (mu:guard(), rw:guard(),
 * rw:rguard()) when memory runs out. A Lua state whose allocator fails
 * the k-th allocation from some point on runs the guard call for k = 0,
 * 1, 2, ... until it succeeds: whichever allocation fails (the call's
 * own frame, the guard, its metatable), a guard that was not returned
 * must have left the lock free. (Making the guard after locking left it
 * held.) Built with the binding and liblua by run.sh (test_lua_*).
 */
#include <stdbool.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include "check.h"

int luaopen_conc_core(lua_State *L);

/* Growing allocations still allowed (once 0, every one fails, Lua's
 * retry after an emergency collection included); -1: no limit. */
static long budget = -1;

static void *failing_alloc(void *ud, void *p, size_t osize, size_t nsize) {
  (void)ud;
  if (nsize == 0) {
    free(p);
    return NULL;
  }
  if (nsize > (p ? osize : 0) && budget >= 0) {
    if (budget == 0) return NULL;
    budget--;
  }
  return realloc(p, nsize);
}

/* Pushes attempt() and settle() for a lock of `kind` and its `method`:
 * attempt takes a guard (kept, closed by settle with memory to spare);
 * settle returns whether the lock is then free. */
static const char chunk[] =
    "local conc, kind, method = ...\n"
    "local lock = conc[kind]()\n"
    "local last\n"
    "local function attempt()\n"
    "  local ok, g = pcall(lock[method], lock)\n"
    "  if ok then last = g end\n"
    "  return ok\n"
    "end\n"
    "local function settle()\n"
    "  if last then getmetatable(last).__close(last) end\n"
    "  last = nil\n"
    "  if not lock:try_lock() then return false end\n"
    "  lock:unlock()\n"
    "  return true\n"
    "end\n"
    "return attempt, settle\n";

/* Runs the function at idx protected, memory limited to k allocations;
 * true if it returned true. */
static bool call_with_budget(lua_State *L, int idx, long k) {
  lua_pushvalue(L, idx);
  budget = k;
  int rc = lua_pcall(L, 0, 1, 0);
  budget = -1;
  bool ok = rc == LUA_OK && lua_toboolean(L, -1);
  lua_pop(L, 1);
  return ok;
}

static void guard_case(const char *kind, const char *method) {
  lua_State *L = lua_newstate(failing_alloc, NULL);
  CHECK(L != NULL);
  luaL_openlibs(L);
  luaL_requiref(L, "conc.core", luaopen_conc_core, 0);  /* conc */
  CHECK_EQ(luaL_loadstring(L, chunk), LUA_OK);
  lua_insert(L, -2);
  lua_pushstring(L, kind);
  lua_pushstring(L, method);
  CHECK_EQ(lua_pcall(L, 3, 2, 0), LUA_OK);  /* attempt, settle */
  int failures = 0;
  long k = 0;
  for (; k < 1000; k++) {
    bool ok = call_with_budget(L, 1, k);
    CHECK(call_with_budget(L, 2, -1));  /* the lock is free either way */
    if (ok) break;
    failures++;
  }
  CHECK(k < 1000);      /* it succeeded once memory sufficed */
  CHECK(failures > 0);  /* and failed at every allocation before */
  lua_close(L);
}

static void mutex_guard(void) { guard_case("mutex", "guard"); }
static void rwmutex_guard(void) { guard_case("rwmutex", "guard"); }
static void rwmutex_rguard(void) { guard_case("rwmutex", "rguard"); }

static const check_test tests[] = {{"mutex_guard", mutex_guard},
                                   {"rwmutex_guard", rwmutex_guard},
                                   {"rwmutex_rguard", rwmutex_rguard},
                                   {NULL, NULL}};

int main(int argc, char **argv) {
  return check_main("test_lua_guard", tests, argc, argv);
}
