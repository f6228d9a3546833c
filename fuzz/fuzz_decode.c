/*
 * fuzz_decode.c: libFuzzer target for the value codec's decoder
 * (lconc_decode in csrc/lua/codec.c).
 *
 * The input is the byte content of a message (a conc_msg with no object
 * references). Decoding runs inside lua_pcall; malformed input must end
 * in a Lua error, never in a crash, a sanitizer report or a leak (run
 * with -fsanitize=fuzzer,address,undefined and detect_leaks=1).
 *
 * Inputs that contain the byte T_FUNC (8) anywhere are rejected: the
 * codec loads a function's bytecode with luaL_loadbufferx(..., "b"), and
 * Lua's undump does not defend against malicious bytecode (crashes in
 * lundump.c/lvm.c are Lua's, by design, not ours). Messages come from
 * conc's own encoder, so that is no attack surface in conc itself.
 */
#include "fuzz_common.h"


/* Decoded values are walked, to touch every table and string the
 * decoder built; `seen` (an absolute index) marks visited tables. */
static void walk(lua_State *L, int idx, int seen, int depth) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    volatile char sink = len ? s[len - 1] : 0;
    (void)sink;
    return;
  }
  if (lua_type(L, idx) != LUA_TTABLE) return;
  if (depth > 250 || !lua_checkstack(L, 4)) return;
  lua_pushvalue(L, idx);
  int visited = lua_rawget(L, seen) != LUA_TNIL;
  lua_pop(L, 1);
  if (visited) return;
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, seen);
  (void)lua_rawlen(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {                  /* ..., k, v */
    walk(L, -2, seen, depth + 1);
    walk(L, -1, seen, depth + 1);
    lua_pop(L, 1);                            /* ..., k */
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (memchr(data, T_FUNC, size) != NULL) return -1;  /* see above */
  lua_State *L = fuzz_state();
  conc_msg m;
  int rc = conc_msg_init(&m, data, size, NULL, 0);
  if (rc != CONC_OK) return 0;
  int base = lua_gettop(L);
  lua_pushcfunction(L, fuzz_decode_call);
  lua_pushlightuserdata(L, &m);
  if (lua_pcall(L, 1, LUA_MULTRET, 0) == LUA_OK) {
    int n = lua_gettop(L) - base;
    lua_newtable(L);                          /* values..., seen */
    int seen = lua_gettop(L);
    for (int i = 1; i <= n; i++) walk(L, base + i, seen, 0);
  } else {
    FUZZ_ASSERT(lua_type(L, -1) == LUA_TSTRING,
                "a decode error is not a message");
  }
  lua_settop(L, base);
  return 0;
}
