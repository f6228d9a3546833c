/*
 * lmerge.c: conc.merge, fan-in done in C (merge.c): no worker, no thread
 * per input. The result is a receive-only conc.chan; every channel
 * method and conc.select take it.
 */
#include "lconc.h"
#include "lcheck.h"

_Static_assert(CONC_MERGE_MAX == 4096, "TOO_MANY names the limit");
#define TOO_MANY "conc.merge: too many inputs (4096 channels at most, " \
                 "nested merges included)"

/* conc.merge({ch, ...} [, ctx]) -> a receive-only channel */
static int merge_new(lua_State *L) {
  lconc_checktype(L, 1, LUA_TTABLE);
  conc_ctx *ctx = NULL;
  if (!lua_isnoneornil(L, 2))
    ctx = (conc_ctx *)lconc_check_obj(L, 2, &conc_ctx_type);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  if (n > CONC_MERGE_MAX) return luaL_error(L, TOO_MANY);
  /* A userdata holds the array, so a type error below frees it. */
  conc_chan **in = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *in, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    in[i - 1] = lconc_test_chan(L, -1, NULL);
    if (in[i - 1] == NULL)
      return luaL_error(L,
                        "conc.merge: element #%d is a %s, not a "
                        "conc.chan",
                        (int)i, luaL_typename(L, -1));
    lua_pop(L, 1);  /* the list keeps it alive */
  }
  conc_chan *out;
  int rc = conc_merge_new(in, (size_t)n, ctx, &out);
  if (rc == CONC_EINVAL)
    return luaL_error(L,
                      "conc.merge: merged channels nested more than %d "
                      "deep",
                      CONC_MERGE_DEPTH);
  if (rc == CONC_EOVERFLOW) return luaL_error(L, TOO_MANY);
  if (rc != CONC_OK) return luaL_error(L, "conc.merge: not enough memory");
  lconc_push_obj(L, (conc_obj *)out);
  return 1;
}

void lconc_open_merge(lua_State *L) {
  lua_pushcfunction(L, merge_new);
  lua_setfield(L, -2, "merge");
}
