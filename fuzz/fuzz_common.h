/*
 * fuzz_common.h: what the libFuzzer targets share: the Lua state they
 * decode into, and the codec's tag numbers (copied from the format at
 * the top of csrc/lua/codec.c, which keeps them private).
 */
#ifndef CONC_FUZZ_COMMON_H
#define CONC_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include "../csrc/lua/lconc.h"

enum {
  T_NIL, T_FALSE, T_TRUE, T_INT, T_FLOAT, T_STR, T_TABLE, T_REF, T_FUNC,
  T_MODULE, T_OBJ, T_ENV
};
enum { F_BACKREFS = 1, F_CODE = 2 };

/* Prints why and aborts: libFuzzer saves the input as a crash. */
#define FUZZ_ASSERT(cond, ...)                                         \
  do {                                                                 \
    if (!(cond)) {                                                     \
      fprintf(stderr, "%s:%d: assertion failed: %s: ", __FILE__,       \
              __LINE__, #cond);                                        \
      fprintf(stderr, __VA_ARGS__);                                    \
      fputc('\n', stderr);                                             \
      abort();                                                         \
    }                                                                  \
  } while (0)

/*
 * The state every input decodes into: the standard libraries and
 * conc.core. package.path and cpath are emptied so that a module name in
 * a message (T_MODULE makes the decoder call require) can load nothing
 * from disk: only the modules already loaded can be named.
 */
static lua_State *fuzz_state(void) {
  static lua_State *L;
  if (L) return L;
  L = luaL_newstate();
  if (L == NULL) abort();
  luaL_openlibs(L);
  luaL_requiref(L, "conc.core", luaopen_conc_core, 0);
  lua_pop(L, 1);
  lua_getglobal(L, "package");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "path");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
  return L;
}

/* Protected: decodes the message (a light userdata at 1) with
 * lconc_decode, which frees it whatever happens. Returns the values. */
static int fuzz_decode_call(lua_State *L) {
  conc_msg *m = (conc_msg *)lua_touserdata(L, 1);
  lua_settop(L, 0);
  return lconc_decode(L, m, "fuzz", LCONC_VALUE);
}

#endif
