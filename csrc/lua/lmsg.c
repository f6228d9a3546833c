/*
 * lmsg.c: messages of one value built in C (conc_lua.h), for a host's
 * thread that has no lua_State: what a Lua receiver decodes exactly as
 * if a Lua sender had sent the value. The bytes are the codec's (see
 * codec.c): the flags byte (0: no tables, code or preload), then one
 * tagged value.
 */
#include <string.h>
#include "lconc.h"
#include "codec.h"

/* A tag with no payload: inline, so conc_msg_init cannot fail. */
static void msg_tag(conc_msg *m, int tag) {
  unsigned char buf[2] = {0, (unsigned char)tag};
  conc_msg_init(m, buf, sizeof buf, NULL, 0);
}

void conc_lua_msg_nil(conc_msg *m) { msg_tag(m, T_NIL); }

void conc_lua_msg_boolean(conc_msg *m, int b) {
  msg_tag(m, b ? T_TRUE : T_FALSE);
}

/* Writes v as the codec's varint (7 bits a byte, low first); returns
 * its length (at most 10). */
static size_t varint(unsigned char *out, uint64_t v) {
  size_t n = 0;
  for (;;) {
    out[n] = (unsigned char)(v & 0x7f);
    v >>= 7;
    if (v == 0) return n + 1;
    out[n++] |= 0x80;
  }
}

void conc_lua_msg_integer(conc_msg *m, lua_Integer i) {
  unsigned char buf[2 + 10] = {0, T_INT};
  /* zigzag: small magnitudes of either sign take few bytes */
  uint64_t z = ((uint64_t)i << 1) ^ (uint64_t)(i < 0 ? -1 : 0);
  conc_msg_init(m, buf, 2 + varint(buf + 2, z), NULL, 0);
}

void conc_lua_msg_number(conc_msg *m, lua_Number n) {
  /* The codec carries a float as its 8 bytes; lua_Number is a double
   * in the Lua this is built against (luaconf.h's default). */
  _Static_assert(sizeof n == 8, "the codec's floats are 8 bytes");
  unsigned char buf[2 + sizeof n] = {0, T_FLOAT};
  memcpy(buf + 2, &n, sizeof n);
  conc_msg_init(m, buf, sizeof buf, NULL, 0);
}

int conc_lua_msg_string(conc_msg *m, const char *s, size_t len) {
  unsigned char head[2 + 10] = {0, T_STR};
  size_t nhead = 2 + varint(head + 2, len);
  if (len > UINT32_MAX - nhead) {  /* a message's length is 32 bits */
    memset(m, 0, sizeof *m);
    return CONC_ENOMEM;
  }
  unsigned char small[CONC_MSG_INLINE];
  unsigned char *buf = nhead + len > sizeof small ? malloc(nhead + len) : small;
  if (buf == NULL) {
    memset(m, 0, sizeof *m);
    return CONC_ENOMEM;
  }
  memcpy(buf, head, nhead);
  if (len) memcpy(buf + nhead, s, len);
  int rc = conc_msg_init(m, buf, nhead + len, NULL, 0);
  if (buf != small) free(buf);
  if (rc != CONC_OK) memset(m, 0, sizeof *m);
  return rc;
}

int conc_lua_msg_object(conc_msg *m, conc_obj *o) {
  unsigned char buf[3] = {0, T_OBJ, 0};  /* reference #0 */
  conc_retain(o);  /* the message's own */
  int rc = conc_msg_init(m, buf, sizeof buf, &o, 1);
  if (rc != CONC_OK) {
    conc_release(o);
    memset(m, 0, sizeof *m);
  }
  return rc;
}
