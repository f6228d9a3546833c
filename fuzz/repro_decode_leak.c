/*
 * repro_decode_leak.c: lconc_decode (csrc/lua/codec.c) leaks a heap
 * message that fails to decode on its fast path.
 *
 * For a message without the F_CODE flag and without object references,
 * lconc_decode calls decode_all directly, not under lua_pcall ("runs no
 * code: only memory can fail"), and frees the message only after it
 * returns. A malformed message raises "conc: corrupt message" from
 * inside decode_all: the longjmp skips conc_msg_free, so a message
 * longer than CONC_MSG_INLINE (112 bytes now; stored on the heap)
 * leaks. The
 * header promises "On an error ... frees *m and raises". (Encoder-made
 * messages are well formed, so in conc this needs a corrupt message or
 * an out-of-memory error in lua_createtable/lua_pushlstring, which also
 * raise there.)
 *
 * Build and run (from the repository root):
 *   cc -std=c11 -D_GNU_SOURCE -pthread -g -fsanitize=address \
 *     -I/usr/include/lua5.4 $(ls csrc/core/[a-z]*.c csrc/lua/[a-z]*.c) \
 *     fuzz/repro_decode_leak.c -o build-fuzz/repro_decode_leak \
 *     -llua5.4 -ldl && build-fuzz/repro_decode_leak
 * LeakSanitizer then reports the 129 bytes from conc_msg_init.
 */
#include "fuzz_common.h"

int main(void) {
  lua_State *L = fuzz_state();
  unsigned char bad[CONC_MSG_INLINE + 16];  /* too long to be inline */
  size_t n = sizeof bad - 4;
  bad[0] = 0;                       /* flags: no F_CODE: the fast path */
  bad[1] = T_STR;
  bad[2] = (unsigned char)n;        /* a string (a 1-byte varint) ... */
  memset(bad + 3, 'y', n);
  bad[sizeof bad - 1] = 0x55;       /* ... then an unknown tag */
  conc_msg *m = malloc(sizeof *m);  /* no copy of the pointer stays */
  if (conc_msg_init(m, bad, sizeof bad, NULL, 0) != CONC_OK) return 2;
  lua_pushcfunction(L, fuzz_decode_call);
  lua_pushlightuserdata(L, m);
  int st = lua_pcall(L, 1, LUA_MULTRET, 0);
  printf("decode: %s\n", st == LUA_OK ? "ok" : lua_tostring(L, -1));
  fflush(stdout);
  memset(m, 0, sizeof *m);
  free(m);
  lua_close(L);
  return 0;
}
