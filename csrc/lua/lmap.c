/*
 * lmap.c: conc.map, Go's sync.Map as Lua userdata.
 *
 * Keys are strings, numbers or booleans, encoded for the core as a kind
 * byte and payload: a string's bytes, an integer's or a float's 8 bytes,
 * nothing for a boolean. A float with an exact integer value is the
 * integer key (as in a Lua table); NaN is refused. Values travel through
 * the codec: copies, with conc objects by reference.
 *
 * Each method checks and encodes its arguments, calls the core (which
 * takes and releases its locks), then decodes what it got: no Lua error
 * is ever raised while a core lock is held.
 */
#include <string.h>
#include "lconc.h"
#include "lcheck.h"
#include "../core/cmap.h"

CONC_API void lconc_open_map(lua_State *L);

#define SNAP_CLASS "conc.map.snapshot"

enum { KEY_STR = 1, KEY_INT, KEY_FLOAT, KEY_FALSE, KEY_TRUE };

/* A key for the core, with room for a number's bytes (k.data may point
 * into num, so an lkey is never copied). */
typedef struct lkey {
  conc_map_key k;
  union {
    lua_Integer i;
    lua_Number n;
  } num;
} lkey;

static conc_map *checkmap(lua_State *L) {
  return (conc_map *)lconc_check_obj(L, 1, &conc_map_type);
}

/* Fills *out from the key at idx, or raises naming fname. The key's bytes
 * stay valid while the value stays at idx. */
static void checkkey(lua_State *L, int idx, const char *fname, lkey *out) {
  int isint;
  switch (lua_type(L, idx)) {
    case LUA_TSTRING:
      out->k.data = lua_tolstring(L, idx, &out->k.len);
      out->k.kind = KEY_STR;
      return;
    case LUA_TNUMBER:
      out->num.i = lua_tointegerx(L, idx, &isint);  /* 1.0 -> 1 */
      out->k.kind = KEY_INT;
      if (!isint) {
        out->num.n = lua_tonumber(L, idx);
        if (out->num.n != out->num.n) luaL_error(L, "%s: key is NaN", fname);
        out->k.kind = KEY_FLOAT;
      }
      out->k.data = &out->num;
      out->k.len = sizeof out->num;
      return;
    case LUA_TBOOLEAN:
      out->k.data = "";
      out->k.len = 0;
      out->k.kind = lua_toboolean(L, idx) ? KEY_TRUE : KEY_FALSE;
      return;
    default:
      luaL_error(L, "%s: key must be a string, number or boolean, got %s",
                 fname, luaL_typename(L, idx));
  }
}

/* Pushes the Lua value of a key the core gave back. */
static void push_key(lua_State *L, const conc_map_key *k) {
  lua_Integer i;
  lua_Number n;
  switch (k->kind) {
    case KEY_STR: lua_pushlstring(L, k->data, k->len); break;
    case KEY_INT:
      memcpy(&i, k->data, sizeof i);
      lua_pushinteger(L, i);
      break;
    case KEY_FLOAT:
      memcpy(&n, k->data, sizeof n);
      lua_pushnumber(L, n);
      break;
    default: lua_pushboolean(L, k->kind == KEY_TRUE);
  }
}

static int nomem(lua_State *L, const char *fname) {
  return luaL_error(L, "%s: not enough memory", fname);
}

/* Raises unless argument idx is given (nil counts: it is a value). */
static void checkgiven(lua_State *L, int idx, const char *fname,
                       const char *what) {
  if (lua_isnone(L, idx)) luaL_error(L, "%s: %s expected", fname, what);
}

/* Encodes the value argument at idx into *v. */
static void checkvalue(lua_State *L, int idx, const char *fname, conc_msg *v) {
  checkgiven(L, idx, fname, "value");
  lconc_encode(L, idx, 1, v, fname, LCONC_VALUE, 1);
}

/* Pushes v (decoding and freeing *m) and true, or nil and false. */
static int push_found(lua_State *L, int found, conc_msg *m, const char *fname) {
  if (found) lconc_decode(L, m, fname, LCONC_VALUE);
  else lua_pushnil(L);
  lua_pushboolean(L, found);
  return 2;
}

/* conc.map() */
static int map_new(lua_State *L) {
  conc_map *m = conc_map_new();
  if (m == NULL) return nomem(L, "conc.map");
  lconc_push_obj(L, (conc_obj *)m);
  return 1;
}

/* m:load(k) -> v, true | nil, false */
static int map_load(lua_State *L) {
  const char *fname = "conc.map:load";
  conc_map *m = checkmap(L);
  lkey k;
  checkkey(L, 2, fname, &k);
  conc_msg v;
  int rc = conc_map_load(m, &k.k, &v);
  if (rc < 0) return nomem(L, fname);
  return push_found(L, rc, &v, fname);
}

/* m:store(k, v) */
static int map_store(lua_State *L) {
  const char *fname = "conc.map:store";
  conc_map *m = checkmap(L);
  lkey k;
  checkkey(L, 2, fname, &k);
  conc_msg v;
  checkvalue(L, 3, fname, &v);
  if (conc_map_store(m, &k.k, &v) == CONC_OK) return 0;
  conc_msg_free(&v);
  return nomem(L, fname);
}

/* m:load_or_store(k, v) -> actual, loaded. Stored: v itself, false. */
static int map_load_or_store(lua_State *L) {
  const char *fname = "conc.map:load_or_store";
  conc_map *m = checkmap(L);
  lkey k;
  checkkey(L, 2, fname, &k);
  conc_msg v, actual;
  checkvalue(L, 3, fname, &v);
  int rc = conc_map_load_or_store(m, &k.k, &v, &actual);
  if (rc != 0) conc_msg_free(&v);  /* loaded or failed: v is still ours */
  if (rc < 0) return nomem(L, fname);
  if (rc == 1) return push_found(L, 1, &actual, fname);
  lua_pushvalue(L, 3);
  lua_pushboolean(L, 0);
  return 2;
}

/* m:load_and_delete(k) -> v, true | nil, false */
static int map_load_and_delete(lua_State *L) {
  conc_map *m = checkmap(L);
  lkey k;
  checkkey(L, 2, "conc.map:load_and_delete", &k);
  conc_msg v;
  return push_found(L, conc_map_load_and_delete(m, &k.k, &v), &v,
                    "conc.map:load_and_delete");
}

/* m:delete(k) */
static int map_delete(lua_State *L) {
  conc_map *m = checkmap(L);
  lkey k;
  checkkey(L, 2, "conc.map:delete", &k);
  conc_map_load_and_delete(m, &k.k, NULL);
  return 0;
}

/* m:swap(k, v) -> previous, true | nil, false */
static int map_swap(lua_State *L) {
  const char *fname = "conc.map:swap";
  conc_map *m = checkmap(L);
  lkey k;
  checkkey(L, 2, fname, &k);
  conc_msg v, prev;
  checkvalue(L, 3, fname, &v);
  int rc = conc_map_swap(m, &k.k, &v, &prev);
  if (rc >= 0) return push_found(L, rc, &prev, fname);
  conc_msg_free(&v);
  return nomem(L, fname);
}

/* Encodes old (argument idx) and, if with_new, new (idx + 1). Encoding
 * errors name the argument as Lua numbers a method's arguments. */
static void check_old_new(lua_State *L, int idx, const char *fname,
                          conc_msg *old, conc_msg *new_v) {
  checkgiven(L, idx, fname, "old value");
  if (new_v) checkgiven(L, idx + 1, fname, "new value");
  lconc_encode(L, idx, 1, old, fname, LCONC_ARG, idx - 1);
  if (new_v == NULL) return;
  if (lconc_encode_protected(L, idx + 1, 1, new_v, fname, LCONC_ARG, idx)) {
    conc_msg_free(old);
    lua_error(L);
  }
}

/* m:compare_and_swap(k, old, new) -> swapped */
static int map_compare_and_swap(lua_State *L) {
  const char *fname = "conc.map:compare_and_swap";
  conc_map *m = checkmap(L);
  lkey k;
  checkkey(L, 2, fname, &k);
  conc_msg old, new_v;
  check_old_new(L, 3, fname, &old, &new_v);
  int swapped = conc_map_compare_and_swap(m, &k.k, &old, &new_v);
  conc_msg_free(&old);
  if (!swapped) conc_msg_free(&new_v);
  lua_pushboolean(L, swapped);
  return 1;
}

/* m:compare_and_delete(k, old) -> deleted */
static int map_compare_and_delete(lua_State *L) {
  const char *fname = "conc.map:compare_and_delete";
  conc_map *m = checkmap(L);
  lkey k;
  checkkey(L, 2, fname, &k);
  conc_msg old;
  check_old_new(L, 3, fname, &old, NULL);
  int deleted = conc_map_compare_and_delete(m, &k.k, &old);
  conc_msg_free(&old);
  lua_pushboolean(L, deleted);
  return 1;
}

/* m:len(), #m */
static int map_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)conc_map_len(checkmap(L)));
  return 1;
}

static int map_clear(lua_State *L) {
  conc_map_clear(checkmap(L));
  return 0;
}

/* __gc and __close of a range's snapshot: frees what was not handed out.*/
static int snap_free(lua_State *L) {
  conc_map_snap_free((conc_map_snap *)luaL_checkudata(L, 1, SNAP_CLASS));
  return 0;
}

static const luaL_Reg snap_meta[] = {
    {"__gc", snap_free}, {"__close", snap_free}, {NULL, NULL}};

/*
 * m:range(fn): fn(k, v) for each entry of a snapshot, until fn returns
 * false. The snapshot is taken at once, then no lock is held while fn
 * runs; it lives in a to-be-closed userdata, so an error in fn frees it.
 */
static int map_range(lua_State *L) {
  conc_map *m = checkmap(L);
  lconc_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  conc_map_snap *s = lua_newuserdatauv(L, sizeof *s, 0);  /* m, fn, snap */
  memset(s, 0, sizeof *s);
  lconc_push_meta(L, SNAP_CLASS, snap_meta);
  lua_setmetatable(L, -2);
  lua_toclose(L, 3);
  if (conc_map_snapshot(m, s) != CONC_OK) return nomem(L, "conc.map:range");
  for (size_t i = 0; i < s->n; i++) {
    conc_map_item *it = &s->items[i];
    lua_pushvalue(L, 2);                          /* m, fn, snap, fn */
    push_key(L, &it->key);                        /* ..., fn, k */
    conc_msg v = it->val;                         /* moved out: */
    it->val.len = it->val.nrefs = 0;              /* decode frees it */
    lconc_decode(L, &v, "conc.map:range", LCONC_VALUE);   /* ..., k, v */
    lua_call(L, 2, 1);                            /* ..., result */
    int stop = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
    lua_pop(L, 1);                                /* m, fn, snap */
    if (stop) break;
  }
  return 0;  /* closes the snapshot */
}

void lconc_open_map(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"load", map_load},
      {"store", map_store},
      {"load_or_store", map_load_or_store},
      {"load_and_delete", map_load_and_delete},
      {"delete", map_delete},
      {"swap", map_swap},
      {"compare_and_swap", map_compare_and_swap},
      {"compare_and_delete", map_compare_and_delete},
      {"range", map_range},
      {"len", map_len},
      {"clear", map_clear},
      {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__len", map_len}, {NULL, NULL}};
  lconc_declare(&conc_map_type, methods, meta, NULL);
  lua_pushcfunction(L, map_new);
  lua_setfield(L, -2, "map");
}
