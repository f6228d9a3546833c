/*
 * fuzz_roundtrip.c: libFuzzer target for the value codec: the input is a
 * recipe that builds Lua values; they are encoded with
 * lconc_encode_protected, decoded with lconc_decode (in lua_pcall), and
 * the results must be structurally equal to the originals. Any mismatch
 * aborts.
 *
 * The recipe is a byte program for a small stack machine. Each opcode
 * byte is taken modulo OP_COUNT; operands follow (a missing byte reads
 * as 0):
 *   NIL FALSE TRUE           push the value
 *   INT <8 bytes>            push an integer
 *   SMALLINT <1 byte>        push a small signed integer
 *   FLOAT <8 bytes>          push the double with those bits (NaN, inf,
 *                            -0.0, denormals... all reachable)
 *   SPECIAL <1 byte>         push one of a list of awkward floats
 *   STR <len> <bytes>        push a string (zeros included)
 *   LONGSTR <len> <fill>     push a string of 4 * len bytes (zeros
 *                            every 7th byte)
 *   TABLE                    push a new table (at most MAX_TABLES)
 *   OLDTABLE <i>             push table number i % ntables (sharing,
 *                            cycles)
 *   SET <i>                  pop v, pop k; table[i % ntables][k] = v
 *                            (skipped if k is nil or NaN)
 *   APPEND <i>               pop v; table i gets v at #t + 1
 *   MODULE <i>               push a value that travels by name: string,
 *                            string.format, _G (as the globals), math,
 *                            table.concat, print, conc.core
 *   POP DUP                  stack manipulation
 *   BAD                      push a value the codec refuses (a table
 *                            with a metatable or a coroutine)
 * At the end the top 1-4 values are encoded (with, if any table was
 * made, the list of all tables after them, so every table is reachable
 * as a value and the comparison can pair them first).
 *
 * Equality: scalars by type and value (integers and floats distinct,
 * NaN equals NaN, -0.0 differs from 0.0), strings by bytes, values that
 * travel by name must be the very same value, and tables must map one
 * to one (a bijection between original and decoded tables, so sharing
 * and cycles are preserved) with equal contents.
 */
#include <math.h>
#include "fuzz_common.h"

enum {
  OP_NIL, OP_FALSE, OP_TRUE, OP_INT, OP_SMALLINT, OP_FLOAT, OP_SPECIAL,
  OP_STR, OP_LONGSTR, OP_TABLE, OP_OLDTABLE, OP_SET, OP_APPEND, OP_MODULE,
  OP_POP, OP_DUP, OP_BAD, OP_COUNT
};

#define MAX_TABLES 64
#define MAX_STACK 64

typedef struct recipe {
  const uint8_t *p, *end;
} recipe;

static uint8_t byte(recipe *r) { return r->p < r->end ? *r->p++ : 0; }

static void bytes(recipe *r, void *out, size_t n) {
  unsigned char *o = (unsigned char *)out;
  for (size_t i = 0; i < n; i++) o[i] = byte(r);
}

/* Stack layout while building: 1 = the tables (array), 2 = objects the
 * codec refuses (kept alive), 3.. = the values. */
enum { TABLES = 1, BADS = 2, VALUES = 3 };

static int ntables(lua_State *L) { return (int)lua_rawlen(L, TABLES); }

static void push_special(lua_State *L, uint8_t i) {
  static const double v[] = {0.0, -0.0, INFINITY, -INFINITY, 0.5,
                             1e308, 5e-324, 9007199254740993.0,
                             9223372036854775808.0, -1.5, 3.0, 2.0e-310};
  size_t n = sizeof v / sizeof *v;
  if (i % (n + 2) == n) lua_pushnumber(L, (lua_Number)NAN);
  else if (i % (n + 2) == n + 1) lua_pushnumber(L, -(lua_Number)NAN);
  else lua_pushnumber(L, v[i % (n + 2)]);
}

static void push_module_value(lua_State *L, uint8_t i) {
  static const char *const names[][2] = {
      {"string", NULL}, {"string", "format"}, {"_G", NULL},
      {"math", NULL},   {"table", "concat"},  {"_G", "print"},
      {"conc.core", NULL}};
  const char *const *n = names[i % (sizeof names / sizeof *names)];
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, n[0]);
  if (n[1]) lua_getfield(L, -1, n[1]);
  else lua_pushvalue(L, -1);
  lua_replace(L, -3);
  lua_pop(L, 1);
}

/* Runs the recipe; returns 1 if it pushed a value the codec refuses. */
static int build(lua_State *L, recipe *r) {
  int bad = 0;
  while (r->p < r->end) {
    int op = byte(r) % OP_COUNT;
    int top = lua_gettop(L), nvalues = top - VALUES + 1;
    if (nvalues >= MAX_STACK && op != OP_POP && op != OP_SET &&
        op != OP_APPEND)
      continue;
    switch (op) {
      case OP_NIL: lua_pushnil(L); break;
      case OP_FALSE: lua_pushboolean(L, 0); break;
      case OP_TRUE: lua_pushboolean(L, 1); break;
      case OP_INT: {
        int64_t v;
        bytes(r, &v, sizeof v);
        lua_pushinteger(L, (lua_Integer)v);
        break;
      }
      case OP_SMALLINT: lua_pushinteger(L, (int8_t)byte(r)); break;
      case OP_FLOAT: {
        double v;
        bytes(r, &v, sizeof v);
        lua_pushnumber(L, v);
        break;
      }
      case OP_SPECIAL: push_special(L, byte(r)); break;
      case OP_STR: {
        char buf[256];
        size_t len = byte(r);
        bytes(r, buf, len);
        lua_pushlstring(L, buf, len);
        break;
      }
      case OP_LONGSTR: {
        char buf[1024];
        size_t len = 4 * (size_t)byte(r);
        uint8_t fill = byte(r);
        for (size_t i = 0; i < len; i++)
          buf[i] = i % 7 == 0 ? 0 : (char)(fill + i);
        lua_pushlstring(L, buf, len);
        break;
      }
      case OP_TABLE:
        if (ntables(L) >= MAX_TABLES) break;
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawseti(L, TABLES, ntables(L) + 1);
        break;
      case OP_OLDTABLE: {
        uint8_t i = byte(r);
        if (ntables(L) == 0) break;
        lua_rawgeti(L, TABLES, i % ntables(L) + 1);
        break;
      }
      case OP_SET: {
        uint8_t i = byte(r);
        if (nvalues < 2 || ntables(L) == 0) break;
        int kt = lua_type(L, -2);
        int nan_key = kt == LUA_TNUMBER && !lua_isinteger(L, -2) &&
                      isnan(lua_tonumber(L, -2));
        if (kt != LUA_TNIL && !nan_key) {
          lua_rawgeti(L, TABLES, i % ntables(L) + 1);  /* k, v, t */
          lua_insert(L, -3);                           /* t, k, v */
          lua_rawset(L, -3);                           /* t */
          lua_pop(L, 1);
        } else {
          lua_pop(L, 2);
        }
        break;
      }
      case OP_APPEND: {
        uint8_t i = byte(r);
        if (nvalues < 1 || ntables(L) == 0) break;
        lua_rawgeti(L, TABLES, i % ntables(L) + 1);    /* v, t */
        lua_insert(L, -2);                             /* t, v */
        lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
        lua_pop(L, 1);
        break;
      }
      case OP_MODULE: push_module_value(L, byte(r)); break;
      case OP_POP:
        if (nvalues > 0) lua_pop(L, 1);
        break;
      case OP_DUP:
        if (nvalues > 0) lua_pushvalue(L, -1);
        break;
      case OP_BAD:
        if (byte(r) % 2) {
          lua_newtable(L);
          lua_newtable(L);
          lua_setmetatable(L, -2);
        } else {
          lua_newthread(L);
        }
        lua_pushvalue(L, -1);
        lua_rawseti(L, BADS, (lua_Integer)lua_rawlen(L, BADS) + 1);
        bad = 1;
        break;
    }
  }
  return bad;
}

/* ---- structural equality ----------------------------------------------- */

typedef struct cmp {
  lua_State *L;
  int created;   /* set of the tables the recipe made */
  int map, rev;  /* original -> decoded, decoded -> original */
  int work;      /* pairs to compare: [2k-1] original, [2k] decoded */
  int nwork;
} cmp;

static int is_created(cmp *c, int idx) {
  lua_pushvalue(c->L, idx);
  int yes = lua_rawget(c->L, c->created) != LUA_TNIL;
  lua_pop(c->L, 1);
  return yes;
}

static void fail(const char *why) {
  fprintf(stderr, "fuzz_roundtrip: mismatch: %s\n", why);
  abort();
}

/* Compares values a and b; pairs of created tables are matched through
 * the bijection and queued for a content comparison. */
static void equal(cmp *c, int a, int b) {
  lua_State *L = c->L;
  a = lua_absindex(L, a);
  b = lua_absindex(L, b);
  int ta = lua_type(L, a);
  if (ta != lua_type(L, b)) fail("types differ");
  switch (ta) {
    case LUA_TNIL: return;
    case LUA_TBOOLEAN:
      if (lua_toboolean(L, a) != lua_toboolean(L, b)) fail("booleans");
      return;
    case LUA_TNUMBER:
      if (lua_isinteger(L, a) != lua_isinteger(L, b))
        fail("integer against float");
      if (lua_isinteger(L, a)) {
        if (lua_tointeger(L, a) != lua_tointeger(L, b)) fail("integers");
      } else {
        lua_Number x = lua_tonumber(L, a), y = lua_tonumber(L, b);
        if (isnan(x) || isnan(y)) {
          if (!(isnan(x) && isnan(y))) fail("NaN against a number");
        } else if (memcmp(&x, &y, sizeof x) != 0) {
          fail("floats (bits)");
        }
      }
      return;
    case LUA_TSTRING: {
      size_t la, lb;
      const char *sa = lua_tolstring(L, a, &la);
      const char *sb = lua_tolstring(L, b, &lb);
      if (la != lb || memcmp(sa, sb, la) != 0) fail("strings");
      return;
    }
    case LUA_TTABLE:
      if (!is_created(c, a)) {  /* the globals, a module table */
        if (!lua_rawequal(L, a, b)) fail("a named table is not itself");
        return;
      }
      lua_pushvalue(L, a);
      if (lua_rawget(L, c->map) != LUA_TNIL) {
        if (!lua_rawequal(L, -1, b)) fail("sharing not preserved");
        lua_pop(L, 1);
        return;
      }
      lua_pop(L, 1);
      lua_pushvalue(L, b);
      if (lua_rawget(L, c->rev) != LUA_TNIL) fail("two tables merged");
      lua_pop(L, 1);
      if (lua_rawequal(L, a, b)) fail("decoded to the original table");
      lua_pushvalue(L, a);
      lua_pushvalue(L, b);
      lua_rawset(L, c->map);
      lua_pushvalue(L, b);
      lua_pushvalue(L, a);
      lua_rawset(L, c->rev);
      lua_pushvalue(L, a);
      lua_rawseti(L, c->work, ++c->nwork);
      lua_pushvalue(L, b);
      lua_rawseti(L, c->work, ++c->nwork);
      return;
    default:  /* functions (by name), threads: identity */
      if (!lua_rawequal(L, a, b)) fail("a named value is not itself");
  }
}

static int count_entries(lua_State *L, int t) {
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    n++;
    lua_pop(L, 1);
  }
  return n;
}

/* Compares the contents of the original table a with the decoded b.
 * Every created table is paired already (the list of all tables came
 * first), so a table key translates through the map. */
static void equal_contents(cmp *c, int a, int b) {
  lua_State *L = c->L;
  if (count_entries(L, a) != count_entries(L, b)) fail("entry counts");
  lua_pushnil(L);
  while (lua_next(L, a)) {                 /* k, v */
    lua_pushvalue(L, -2);                  /* k, v, k */
    if (lua_type(L, -1) == LUA_TTABLE && is_created(c, -1)) {
      if (lua_rawget(L, c->map) == LUA_TNIL) fail("unpaired table key");
    }                                      /* k, v, k' */
    if (lua_rawget(L, b) == LUA_TNIL) fail("missing key");  /* k, v, v' */
    equal(c, -2, -1);
    lua_pop(L, 2);                         /* k */
  }
}

static void compare(lua_State *L, int orig, int dec, int n) {
  if (!lua_checkstack(L, 40)) fail("no stack");
  cmp c = {L, 0, 0, 0, 0, 0};
  lua_newtable(L);
  c.created = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, TABLES)) {            /* the set of created tables */
    lua_pushboolean(L, 1);
    lua_rawset(L, c.created);
  }
  lua_pushvalue(L, TABLES);                /* and their list itself */
  lua_pushboolean(L, 1);
  lua_rawset(L, c.created);
  lua_newtable(L);
  c.map = lua_gettop(L);
  lua_newtable(L);
  c.rev = lua_gettop(L);
  lua_newtable(L);
  c.work = lua_gettop(L);
  for (int i = n - 1; i >= 0; i--)  /* the table list (last) first */
    equal(&c, orig + i, dec + i);
  for (int k = 1; k < c.nwork; k += 2) {
    lua_rawgeti(L, c.work, k);
    lua_rawgeti(L, c.work, k + 1);
    int top = lua_gettop(L);
    equal_contents(&c, top - 1, top);
    lua_pop(L, 2);
  }
  lua_pop(L, 4);
}

/* ---- the target -------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = fuzz_state();
  lua_settop(L, 0);
  lua_checkstack(L, MAX_STACK + 40);
  lua_newtable(L);                                  /* TABLES */
  lua_newtable(L);                                  /* BADS */
  recipe r = {data, data + size};
  int bad = build(L, &r);
  int nvalues = lua_gettop(L) - VALUES + 1;
  int n = size > 0 ? 1 + data[0] % 4 : 1;
  if (nvalues == 0) lua_pushnil(L), nvalues = 1;
  if (n > nvalues) n = nvalues;
  int first = lua_gettop(L) - n + 1;
  if (ntables(L) > 0) {       /* every table reachable as a value */
    lua_pushvalue(L, TABLES);
    n++;
  }
  conc_msg m;
  if (lconc_encode_protected(L, first, n, &m, "fuzz", LCONC_VALUE, 1)) {
    FUZZ_ASSERT(bad, "encode refused a transferable value: %s",
                lua_tostring(L, -1));
    FUZZ_ASSERT(lua_type(L, -1) == LUA_TSTRING &&
                    strstr(lua_tostring(L, -1), "cannot transfer"),
                "odd encode error");
    lua_settop(L, 0);
    return 0;
  }
  int orig = first;
  int top = lua_gettop(L);
  lua_pushcfunction(L, fuzz_decode_call);
  lua_pushlightuserdata(L, &m);
  int st = lua_pcall(L, 1, LUA_MULTRET, 0);
  FUZZ_ASSERT(st == LUA_OK, "decode failed: %s", lua_tostring(L, -1));
  FUZZ_ASSERT(lua_gettop(L) - top == n, "decoded %d values of %d",
              lua_gettop(L) - top, n);
  compare(L, orig, top + 1, n);
  lua_settop(L, 0);
  return 0;
}
