/*
 * codec.c: the one value codec, used by conc.go (arguments, results,
 * errors) and channels (messages).
 *
 * Format: one flags byte, then values back to back, each a tag byte and
 * its payload. Integers are zigzag varints and table headers varints (so
 * a small table message fits a channel slot's first cache line); floats
 * are 8 bytes. Tables and Lua functions are numbered in encoding order so
 * a later occurrence is a back-reference (shared subtables and cycles
 * survive). What travels:
 *   nil, booleans, integers and floats (distinct), strings (binary-safe);
 *   tables without metatables, nested, with shared references and cycles;
 *   Lua functions as bytecode (with debug info) plus their upvalues; an
 *   upvalue met before in the same message (closures over one local) is
 *   a reference to it, joined on arrival (lua_upvaluejoin);
 *   the sender's globals table as "the receiver's globals" (so an _ENV
 *   that is the globals binds to the receiving state's; any other _ENV,
 *   a sandbox, is a table like any other and is copied);
 *   functions and tables of loaded modules by name: module "m" itself,
 *   or field m.k, where m is a key of package.loaded (in _G only C
 *   functions count, so user globals are copied, never looked up);
 *   conc objects by reference (the message retains each once);
 *   a table whose metatable is a module's value (a class): its contents
 *   and the class's name (T_CLASS), the receiver's class set on arrival;
 *   a table or userdata whose metatable has __conc_export: the hook runs
 *   in the sender and returns a value and "mod.fn" (split at the last
 *   dot); the value travels (T_EXPORT) and the receiver's
 *   require(mod)[fn](value) rebuilds the object.
 * Everything else is refused before anything is sent.
 *
 * Decoding a module's value runs `require` in the receiver, and an
 * exported one its rebuilder. These are the decode steps that can fail
 * on a well-formed message: the failure
 * unwinds (d->failed) collecting where the value sat, and the error
 * names the function, the value and the module. conc.go's call message
 * also carries package.preload's Lua functions (F_PRELOAD), installed
 * before anything else is decoded, so the worker can require what its
 * creator could.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "lconc.h"
#include "codec.h"
#include "lcheck.h"
#include "worker.h"

#define MAX_DEPTH 200
_Static_assert(MAX_DEPTH == 200, "the refusals below name the limit");
#define MAX_SEGMENTS 24
#define SEGMENT_LEN 48

#define SEEN_FEW 8

typedef struct seen_entry {
  const void *p;
  int id;  /* > 0: table or function id; < 0: -(object ref index + 1) */
} seen_entry;

/* Addresses met so far: the first SEEN_FEW in an array (most messages
 * have no more: no hashing, no clearing), the rest in `t`, open
 * addressing, its size a power of 2. */
typedef struct ptrmap {
  seen_entry few[SEEN_FEW];
  int nfew;
  seen_entry *t;
  size_t size, used;
} ptrmap;

/* Where a failing value sits, innermost segment first. */
typedef struct errpath {
  int nseg;
  char seg[MAX_SEGMENTS][SEGMENT_LEN];
  char kind[MAX_SEGMENTS];  /* 'f' field, 'u' upvalue, 'k' a key */
} errpath;

/* An upvalue's place in a message: its function's id and its number
 * (at most 255), packed in one int; functions past UPVAL_MAX_FID share
 * nothing (no message has that many). */
#define UPVAL_MAX_FID (1 << 22)

/* Per-state scratch: buffers reused by every encode of that state. */
typedef struct scratch {
  unsigned char *buf;
  size_t len, size;
  conc_obj **refs;
  uint32_t nrefs, refsize;
  ptrmap seen;    /* tables, functions and objects -> their id */
  ptrmap upvals;  /* upvalue ids (lua_upvalueid) -> their place */
  int next_id;
  int flags;
  int oom;
  int in_use;
  lua_State *owner;        /* the thread of the encode in use, */
  const void *call;        /* and its call (see acquire_scratch) */
  const void *env_ptr;     /* the globals' address, once looked up */
  /* Every value the module names table names, by address (a superset
   * once some are collected): a value not here is no module's, which
   * spares most tables the lookups. Valid while mods_valid. */
  const void **mods;
  size_t mods_size, mods_used;  /* open addressing, size a power of 2 */
  int mods_valid, oom_mods;
  errpath path;
  /* The objects whose exports are being encoded, innermost first (a
   * chain through encode_export's frames; reset with the scratch). */
  const struct exporting *exporting;
} scratch;

typedef struct exporting {
  const void *obj;
  const struct exporting *outer;
} exporting;

static const char scratch_key = 's';
static const char modnames_key = 'm';
static const char dumps_key = 'd';

/* ---- buffers ------------------------------------------------------------ */

static void reserve(scratch *s, size_t n) {
  if (s->size - s->len >= n || s->oom) return;
  size_t size = s->size ? s->size : 256;
  while (size - s->len < n) size *= 2;
  unsigned char *b = realloc(s->buf, size);
  if (b == NULL) {
    s->oom = 1;
    return;
  }
  s->buf = b;
  s->size = size;
}

/* Inline, so that a fixed-size put (an integer's 8 bytes) is a move. */
static inline void put(scratch *s, const void *p, size_t n) {
  if (s->size - s->len < n) {
    reserve(s, n);
    if (s->oom) return;
  }
  memcpy(s->buf + s->len, p, n);
  s->len += n;
}

static inline void put_byte(scratch *s, int b) {
  if (s->len < s->size) {
    s->buf[s->len++] = (unsigned char)b;
    return;
  }
  unsigned char c = (unsigned char)b;
  put(s, &c, 1);
}

/* Writes v as a varint (7 bits a byte, low first) into out (room for
 * 10); returns its length. */
static size_t write_varint(unsigned char *out, uint64_t v) {
  size_t n = 0;
  do {
    out[n] = (unsigned char)(v & 0x7f);
    v >>= 7;
    if (v) out[n] |= 0x80;
    n++;
  } while (v);
  return n;
}

static inline void put_varint(scratch *s, uint64_t v) {
  if (v < 0x80) {  /* most lengths, counts and small integers */
    put_byte(s, (int)v);
    return;
  }
  unsigned char tmp[10];
  size_t n = write_varint(tmp, v);
  put(s, tmp, n);
}

/* Integers as zigzag varints: small magnitudes, either sign, take few
 * bytes. */
static uint64_t zigzag(lua_Integer v) {
  return ((uint64_t)v << 1) ^ (uint64_t)(v < 0 ? -1 : 0);
}

static lua_Integer unzigzag(uint64_t z) {
  return (lua_Integer)((z >> 1) ^ (0 - (z & 1)));
}

/* Replaces the one byte reserved at `at` by v as a varint, moving what
 * follows when v needs more than one byte. */
static void put_varint_at(scratch *s, size_t at, uint64_t v) {
  unsigned char tmp[10];
  if (s->oom) return;
  if (v < 0x80) {  /* fits its byte: most counts */
    s->buf[at] = (unsigned char)v;
    return;
  }
  size_t n = write_varint(tmp, v);
  if (n > 1) {
    reserve(s, n - 1);
    if (s->oom) return;
    memmove(s->buf + at + n, s->buf + at + 1, s->len - at - 1);
    s->len += n - 1;
  }
  memcpy(s->buf + at, tmp, n);
}

static void put_u32_at(scratch *s, size_t at, uint32_t v) {
  if (!s->oom) memcpy(s->buf + at, &v, 4);
}

/* ---- the seen map (address -> id) --------------------------------------- */

static size_t hash_ptr(const void *p, size_t size) {
  uint64_t x = (uint64_t)(uintptr_t)p;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return (size_t)x & (size - 1);
}

static int map_find(const ptrmap *m, const void *p) {
  for (int i = 0; i < m->nfew; i++)
    if (m->few[i].p == p) return m->few[i].id;
  if (m->used == 0) return 0;
  for (size_t i = hash_ptr(p, m->size);; i = (i + 1) & (m->size - 1)) {
    if (m->t[i].p == p) return m->t[i].id;
    if (m->t[i].p == NULL) return 0;
  }
}

static void map_insert(seen_entry *t, size_t size, const void *p, int id) {
  size_t i = hash_ptr(p, size);
  while (t[i].p != NULL) i = (i + 1) & (size - 1);
  t[i].p = p;
  t[i].id = id;
}

/* Adds p -> id; sets *oom if memory runs out. */
static void map_add(ptrmap *m, const void *p, int id, int *oom) {
  if (m->nfew < SEEN_FEW) {
    m->few[m->nfew].p = p;
    m->few[m->nfew++].id = id;
    return;
  }
  if ((m->used + 1) * 2 > m->size) {
    size_t size = m->size ? m->size * 2 : 64;
    seen_entry *t = calloc(size, sizeof *t);
    if (t == NULL) {
      *oom = 1;
      return;
    }
    for (size_t i = 0; i < m->size; i++)
      if (m->t[i].p) map_insert(t, size, m->t[i].p, m->t[i].id);
    free(m->t);
    m->t = t;
    m->size = size;
  }
  map_insert(m->t, m->size, p, id);
  m->used++;
}

static void map_clear(ptrmap *m) {
  m->nfew = 0;
  if (m->used) memset(m->t, 0, m->size * sizeof *m->t);
  m->used = 0;
}

static int seen_find(scratch *s, const void *p) {
  return map_find(&s->seen, p);
}

static void seen_add(scratch *s, const void *p, int id) {
  map_add(&s->seen, p, id, &s->oom);
}

/* ---- the module address set (see scratch.mods) -------------------------- */

static void mods_clear(scratch *s) {
  if (s->mods) memset(s->mods, 0, s->mods_size * sizeof *s->mods);
  s->mods_used = 0;
  s->mods_valid = 0;
}

static int mods_has(const scratch *s, const void *p) {
  if (s->mods_used == 0) return 0;
  for (size_t i = hash_ptr(p, s->mods_size);;
       i = (i + 1) & (s->mods_size - 1)) {
    if (s->mods[i] == p) return 1;
    if (s->mods[i] == NULL) return 0;
  }
}

/* Adds p; on running out of memory the set stays invalid. */
static void mods_add(scratch *s, const void *p) {
  if (mods_has(s, p)) return;
  if ((s->mods_used + 1) * 2 > s->mods_size) {
    size_t size = s->mods_size ? s->mods_size * 2 : 256;
    const void **t = calloc(size, sizeof *t);
    if (t == NULL) {
      s->oom_mods = 1;
      return;
    }
    for (size_t i = 0; i < s->mods_size; i++) {
      if (s->mods[i] == NULL) continue;
      size_t j = hash_ptr(s->mods[i], size);
      while (t[j] != NULL) j = (j + 1) & (size - 1);
      t[j] = s->mods[i];
    }
    free(s->mods);
    s->mods = t;
    s->mods_size = size;
  }
  size_t i = hash_ptr(p, s->mods_size);
  while (s->mods[i] != NULL) i = (i + 1) & (s->mods_size - 1);
  s->mods[i] = p;
  s->mods_used++;
}

static void scratch_reset(scratch *s) {
  map_clear(&s->seen);
  map_clear(&s->upvals);
  s->len = 0;
  s->nrefs = 0;
  s->next_id = 0;
  s->flags = 0;
  s->oom = 0;
  s->path.nseg = 0;
  s->env_ptr = NULL;
  s->exporting = NULL;
}

static void scratch_free(scratch *s) {
  free(s->buf);
  free(s->refs);
  free(s->seen.t);
  free(s->upvals.t);
  free(s->mods);
  memset(s, 0, sizeof *s);
}

static int scratch_gc(lua_State *L) {
  scratch_free((scratch *)lua_touserdata(L, 1));
  return 0;
}

/* ---- error paths -------------------------------------------------------- */

/* Records where the failing value was, as the recursion unwinds. */
static void add_segment(errpath *e, char kind, const char *fmt, ...) {
  if (e->nseg >= MAX_SEGMENTS) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->seg[e->nseg], SEGMENT_LEN, fmt, ap);
  va_end(ap);
  e->kind[e->nseg++] = kind;
}

static int is_identifier(const char *k, size_t len) {
  if (len == 0 || len > 40 || (k[0] >= '0' && k[0] <= '9')) return 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)k[i];
    if (!(c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
          (c >= 'A' && c <= 'Z')))
      return 0;
  }
  return 1;
}

/* Describes the key at idx as a path segment. */
static void add_key_segment(lua_State *L, errpath *e, int idx) {
  switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
      size_t len;
      const char *k = lua_tolstring(L, idx, &len);
      if (is_identifier(k, len)) add_segment(e, 'f', "%s", k);
      else add_segment(e, 'f', "[\"%.30s\"]", k);
      break;
    }
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx))
        add_segment(e, 'f', "[%lld]", (long long)lua_tointeger(L, idx));
      else add_segment(e, 'f', "[%g]", (double)lua_tonumber(L, idx));
      break;
    case LUA_TBOOLEAN:
      add_segment(e, 'f', "[%s]", lua_toboolean(L, idx) ? "true" : "false");
      break;
    default: add_segment(e, 'f', "[%s]", luaL_typename(L, idx));
  }
}

/* Names the k-th value of a message: "argument #k", "result #k", ...;
 * value 0 of a call message is its package.preload table. */
static void push_what(lua_State *L, lconc_what what, int k) {
  if (k == 0) lua_pushliteral(L, "package.preload");
  else if (what == LCONC_ARG) lua_pushfstring(L, "argument #%d", k);
  else if (what == LCONC_RESULT) lua_pushfstring(L, "result #%d", k);
  else if (what == LCONC_ERROR) lua_pushliteral(L, "error value");
  else lua_pushliteral(L, "value");
}

/* Replaces the message at the top by "fname: argument #k, field 'a.b':
 * message". */
static void locate_error(lua_State *L, const errpath *e, const char *fname,
                         lconc_what what, int k) {
  int msg = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, fname);
  luaL_addstring(&b, ": ");
  push_what(L, what, k);
  luaL_addvalue(&b);
  int in_field = 0;
  for (int i = e->nseg - 1; i >= 0; i--) {
    if (e->kind[i] == 'u') {
      if (in_field) luaL_addchar(&b, '\'');
      in_field = 0;
      lua_pushfstring(L, ", upvalue '%s'", e->seg[i]);
      luaL_addvalue(&b);
    } else if (e->kind[i] == 'k') {
      if (in_field) luaL_addchar(&b, '\'');
      in_field = 0;
      luaL_addstring(&b, ", a key");
    } else {
      if (!in_field) luaL_addstring(&b, ", field '");
      else if (e->seg[i][0] != '[') luaL_addchar(&b, '.');
      luaL_addstring(&b, e->seg[i]);
      in_field = 1;
    }
  }
  if (in_field) luaL_addchar(&b, '\'');
  luaL_addstring(&b, ": ");
  lua_pushvalue(L, msg);
  luaL_addvalue(&b);
  luaL_pushresult(&b);
  lua_replace(L, msg);
}

/* Pushes "fname: argument #k, field 'a.b': cannot transfer <what>". */
static void push_error(lua_State *L, scratch *s, const char *fname,
                       lconc_what what, int k, const char *problem) {
  lua_pushfstring(L, "cannot transfer %s", problem);
  locate_error(L, &s->path, fname, what, k);
}

/* ---- module lookup ------------------------------------------------------ */

/* Records value -> "mod" or "mod\0key" in the table at -1. A value known
 * already keeps its name, except that a module loaded under two names
 * gets the shorter (then the first in byte order): one name, whatever
 * order package.loaded is walked in. */
static void index_name(lua_State *L, int vidx, const char *mod,
                       const char *key) {
  lua_pushvalue(L, vidx);
  if (lua_rawget(L, -2) != LUA_TNIL) {
    size_t len;
    const char *old = lua_tolstring(L, -1, &len);
    size_t n = strlen(mod);
    int better = key == NULL && strlen(old) == len &&  /* old: a module */
                 (n < len || (n == len && strcmp(mod, old) < 0));
    lua_pop(L, 1);
    if (!better) return;
  } else {
    lua_pop(L, 1);
  }
  lua_pushvalue(L, vidx);
  if (key) {
    lua_pushstring(L, mod);
    lua_pushlstring(L, "\0", 1);
    lua_pushstring(L, key);
    lua_concat(L, 3);
  } else {
    lua_pushstring(L, mod);
  }
  lua_rawset(L, -3);
}

/* Pushes a weak-keyed table naming every module of package.loaded and
 * every function or table field of one (in _G: only C functions). */
static void build_modnames(lua_State *L, scratch *s) {
  mods_clear(s);
  s->oom_mods = 0;
  lconc_new_weak_table(L, "k");                           /* names */
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);   /* names, loaded */
  for (int pass = 0; pass < 2; pass++) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {                 /* names, loaded, mod, value */
      int vt = lua_type(L, -1);
      if (lua_type(L, -2) == LUA_TSTRING &&
          (vt == LUA_TTABLE || vt == LUA_TFUNCTION)) {
        const char *mod = lua_tostring(L, -2);
        lua_pushvalue(L, -4);                 /* ..., mod, value, names */
        if (pass == 0) {
          index_name(L, -2, mod, NULL);
          mods_add(s, lua_topointer(L, -2));
        } else if (vt == LUA_TTABLE) {
          int is_g = strcmp(mod, "_G") == 0;
          lua_pushnil(L);
          while (lua_next(L, -3)) {           /* ..., names, k, v */
            int t = lua_type(L, -1);
            if (lua_type(L, -2) == LUA_TSTRING &&
                ((t == LUA_TFUNCTION && (!is_g || lua_iscfunction(L, -1))) ||
                 (t == LUA_TTABLE && !is_g))) {
              lua_pushvalue(L, -3);           /* ..., names, k, v, names */
              index_name(L, -2, mod, lua_tostring(L, -3));
              mods_add(s, lua_topointer(L, -2));
              lua_pop(L, 1);
            }
            lua_pop(L, 1);
          }
        }
        lua_pop(L, 1);                        /* names, loaded, mod, value */
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);                                          /* names */
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &modnames_key);
  s->mods_valid = !s->oom_mods;
}

/* package.loaded's __newindex: a new module makes the names stale. */
static int loaded_newindex(lua_State *L) {
  lua_rawset(L, 1);
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &modnames_key);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &scratch_key) == LUA_TUSERDATA)
    ((scratch *)lua_touserdata(L, -1))->mods_valid = 0;
  lua_pop(L, 1);
  return 0;
}

/* The globals' address, looked up once per encode. */
static const void *env_pointer(lua_State *L, scratch *s) {
  if (s->env_ptr == NULL) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    s->env_ptr = lua_topointer(L, -1);
    lua_pop(L, 1);
  }
  return s->env_ptr;
}

/* Pushes the module name of the value at idx (a string), or nil, and
 * nothing else: a table traversal's stack slots above must not move.
 * rebuild: look at package.loaded again first. */
static int module_name(lua_State *L, scratch *s, int idx, int rebuild) {
  lconc_checkstack(L, 12, "conc: values nested too deeply");
  if (rebuild) {
    build_modnames(L, s);
  } else if (lua_rawgetp(L, LUA_REGISTRYINDEX, &modnames_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    build_modnames(L, s);
  }
  lua_pushvalue(L, idx);                   /* names, value */
  int found = lua_rawget(L, -2) == LUA_TSTRING;
  lua_remove(L, -2);                       /* the name, or nil */
  return found;
}

static void put_string(scratch *s, const char *p, size_t len) {
  put_varint(s, len);
  put(s, p, len);
}

/* Encodes the name at -1 ("mod" or "mod\0key") and pops it. */
static void put_module(lua_State *L, scratch *s) {
  size_t len;
  const char *name = lua_tolstring(L, -1, &len);
  size_t modlen = strlen(name);
  put_byte(s, T_MODULE);
  put_string(s, name, modlen);
  if (modlen < len) {
    put_byte(s, 1);
    put_string(s, name + modlen + 1, len - modlen - 1);
  } else {
    put_byte(s, 0);
  }
  s->flags |= F_CODE;
  lua_pop(L, 1);
}

/* ---- encoding ----------------------------------------------------------- */

static const char *encode_value(lua_State *L, scratch *s, int idx, int depth);

/* Tables and functions seen before, the globals, or module members. */
static int encode_known(lua_State *L, scratch *s, int idx) {
  const void *p = lua_topointer(L, idx);
  int id = seen_find(s, p);
  if (id > 0) {
    put_byte(s, T_REF);
    put_varint(s, (uint64_t)id);
    s->flags |= F_BACKREFS;
    return 1;
  }
  if (p == env_pointer(L, s)) {  /* the globals */
    put_byte(s, T_ENV);
    return 1;
  }
  if (s->mods_valid && !mods_has(s, p)) return 0;  /* most tables */
  if (module_name(L, s, idx, 0)) {
    put_module(L, s);
    return 1;
  }
  lua_pop(L, 1);
  return 0;
}

/* ---- user objects: classes of modules, __conc_export ------------------- */

/* A refusal worded at run time (an export's), read by push_error before
 * this thread encodes again. Not in the scratch: a bigger scratch moved
 * where a memory-limited worker runs out (see hardening_spec). */
static _Thread_local char export_err[256];

/* Calls the __conc_export hook at -1 on the value at idx (protected: a
 * raising hook is a refusal, never an escape from the encoder). Returns
 * NULL with the exported value and the rebuilder's name "mod.fn" left
 * on the stack (the hook replaced), or the refusal with the stack as it
 * was before the hook was pushed. */
static const char *call_export(lua_State *L, int idx, const char *what) {
  lua_pushvalue(L, idx);                          /* hook, v */
  if (lua_pcall(L, 1, 2, 0) != LUA_OK) {          /* err */
    lconc_tostring_safe(L, -1);
    snprintf(export_err, sizeof export_err, "%s (its __conc_export raised: %s)",
             what, lua_tostring(L, -1));
    lua_pop(L, 2);
    return export_err;
  }
  const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                    : NULL;
  const char *dot = name ? strrchr(name, '.') : NULL;
  if (dot == NULL || dot == name || dot[1] == '\0' ||
      strlen(name) != lua_rawlen(L, -1)) {
    lua_pop(L, 2);
    snprintf(export_err, sizeof export_err,
             "%s (its __conc_export must return a value and the name of "
             "the function that rebuilds it, \"module.function\")",
             what);
    return export_err;
  }
  return NULL;
}

/* Encodes the value at idx, whose metatable's __conc_export is at -1
 * (popped), as T_EXPORT: the rebuilder's module and function, then the
 * value the hook returned. The value takes its id after what it
 * contains, as the decoder can only remember it once rebuilt. */
static const char *encode_export(lua_State *L, scratch *s, int idx, int depth,
                                 const char *what) {
  if (depth > MAX_DEPTH || !lua_checkstack(L, 4)) {
    lua_pop(L, 1);
    return "a value nested too deeply (200 levels at most)";
  }
  exporting self = {lua_topointer(L, idx), s->exporting};
  for (const exporting *e = self.outer; e; e = e->outer)
    if (e->obj == self.obj) { /* its hook would be called for ever */
      lua_pop(L, 1);
      snprintf(export_err, sizeof export_err,
               "%s (the value its __conc_export returned holds the %s "
               "itself)",
               what, what + 2); /* "a table": "table" */
      return export_err;
    }
  const char *err = call_export(L, idx, what);  /* value, name */
  if (err) return err;
  size_t len;
  const char *name = lua_tolstring(L, -1, &len);
  size_t modlen = (size_t)(strrchr(name, '.') - name);
  put_byte(s, T_EXPORT);
  put_string(s, name, modlen);
  put_string(s, name + modlen + 1, len - modlen - 1);
  s->flags |= F_CODE;
  s->exporting = &self;
  err = encode_value(L, s, lua_gettop(L) - 1, depth + 1);
  s->exporting = self.outer;
  lua_pop(L, 2);
  /* One "holds" clause: an inner export's refusal that has one already
   * (an export holding its object, or nested exports) is passed on. */
  if (err && strstr(err, "(the value its __conc_export returned holds"))
    return err;
  if (err) {
    char inner[sizeof export_err];
    snprintf(inner, sizeof inner, "%s", err);  /* err may be export_err */
    snprintf(export_err, sizeof export_err,
             "%s (the value its __conc_export returned holds %.180s)", what,
             inner);
    return export_err;
  }
  seen_add(s, lua_topointer(L, idx), ++s->next_id);
  return NULL;
}

/* With the metatable of the table at idx at -1: pushes 1 and its __conc_
 * export hook if it has one; else 0, and nothing. */
static int get_export(lua_State *L, int mt) {
  lua_pushliteral(L, "__conc_export");
  if (lua_rawget(L, mt) != LUA_TNIL) return 1;
  lua_pop(L, 1);
  return 0;
}

/* Replaces the metatable at -1 by its module name ("mod" or "mod\0key")
 * and returns 1, or pops it and returns 0. A miss looks again at
 * package.loaded, as a class may have been added to its module lately
 * (a miss is a refusal anyway: it need not be fast). */
static int class_name(lua_State *L, scratch *s) {
  int mt = lua_gettop(L);
  if (!module_name(L, s, mt, 0)) {
    lua_pop(L, 1);
    if (!module_name(L, s, mt, 1)) {
      lua_pop(L, 2);
      return 0;
    }
  }
  lua_remove(L, mt);
  return 1;
}

static const char *encode_table_body(lua_State *L, scratch *s, int idx,
                                     int depth);

static const char *encode_table(lua_State *L, scratch *s, int idx, int depth) {
  if (encode_known(L, s, idx)) return NULL;
  if (depth > MAX_DEPTH || !lua_checkstack(L, 6))
    return "a table nested too deeply (200 levels at most)";
  if (lua_getmetatable(L, idx)) {                 /* mt */
    if (get_export(L, lua_gettop(L))) {           /* mt, hook */
      lua_remove(L, -2);
      return encode_export(L, s, idx, depth, "a table");
    }
    if (!class_name(L, s)) return "a table with a metatable";
    put_byte(s, T_CLASS);                         /* a class's instance: */
    put_module(L, s);                             /* its class by name, */
    return encode_table_body(L, s, idx, depth);   /* then its contents */
  }
  put_byte(s, T_TABLE);
  return encode_table_body(L, s, idx, depth);
}

/* The contents of the table at idx, after its tag. */
static const char *encode_table_body(lua_State *L, scratch *s, int idx,
                                     int depth) {
  seen_add(s, lua_topointer(L, idx), ++s->next_id);
  /* One traversal: the keys 1, 2, 3... that lua_next gives first (the
   * array part, in order) are the array section; every other pair goes
   * to the hash section. Both counts are known at the end: a byte is
   * reserved for each. (Walking 1..#t with lua_rawgeti, then lua_next
   * for the rest, went over the array part twice.) */
  size_t at_narr = s->len;
  put_byte(s, 0);
  size_t at_nhash = s->len;
  put_byte(s, 0);
  int top = lua_gettop(L) + 2;  /* a key at top - 1, its value at top */
  lua_Integer narr = 0;
  uint32_t nhash = 0;
  int in_array = 1;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (in_array) {
      if (lua_isinteger(L, top - 1) && lua_tointeger(L, top - 1) == narr + 1 &&
          narr < 0x7fffffff) {
        const char *err = encode_value(L, s, top, depth + 1);
        if (err) {
          add_segment(&s->path, 'f', "[%lld]", (long long)(narr + 1));
          lua_pop(L, 2);
          return err;
        }
        narr++;
        lua_pop(L, 1);
        continue;
      }
      in_array = 0;  /* the first pair out of sequence: the hash section */
    }
    const char *err = encode_value(L, s, top - 1, depth + 1);
    if (err) {
      add_segment(&s->path, 'k', "");
      lua_pop(L, 2);
      return err;
    }
    err = encode_value(L, s, top, depth + 1);
    if (err) {
      add_key_segment(L, &s->path, top - 1);
      lua_pop(L, 2);
      return err;
    }
    lua_pop(L, 1);
    if (++nhash > 0x7fffffff) {
      lua_pop(L, 1);
      return "a table this large (2^31-1 hash entries at most)";
    }
  }
  /* The later count first: a count longer than its byte moves what
   * follows it. */
  put_varint_at(s, at_nhash, nhash);
  put_varint_at(s, at_narr, (uint64_t)narr);
  return NULL;
}

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud) {
  (void)L;
  put((scratch *)ud, p, sz);
  return 0;
}

/* Puts the bytecode of the Lua function at idx. A closure's bytecode
 * never changes, so the state keeps each dump in a weak-keyed table:
 * spawning the same function again (a pool's workers, B4) copies bytes
 * instead of running lua_dump (~3,000 instructions for a small one). */
static void put_dump(lua_State *L, scratch *s, int idx) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &dumps_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lconc_new_weak_table(L, "k");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &dumps_key);
  }
  lua_pushvalue(L, idx);                          /* dumps, f */
  if (lua_rawget(L, -2) == LUA_TSTRING) {         /* dumps, bytes */
    size_t len;
    const char *p = lua_tolstring(L, -1, &len);
    put(s, p, len);
    lua_pop(L, 2);
    return;
  }
  lua_pop(L, 1);
  size_t start = s->len;
  lua_pushvalue(L, idx);
  lua_dump(L, dump_writer, s, 0);
  lua_pop(L, 1);
  if (!s->oom) {
    lua_pushvalue(L, idx);
    lua_pushlstring(L, (const char *)s->buf + start, s->len - start);
    lua_rawset(L, -3);
  }
  lua_pop(L, 1);
}

/* Whether an _ENV upvalue (the value at -1, named name) is an
 * environment layered over the sender's globals: a table with a
 * metatable whose __index chain of tables reaches the globals, or ends
 * in a function (which cannot be looked into: busted's environments and
 * many module systems read through to the globals that way). It binds to
 * the receiver's globals, as the globals themselves do. A table whose
 * __index chain ends elsewhere (a sandbox over a table of safe
 * functions) is refused as any table with a metatable, and a plain
 * sandbox travels as a copy: neither reaches the receiver's globals. */
#define ENV_CHAIN_MAX 100

static int is_layered_env(lua_State *L, const char *name) {
  if (name == NULL || strcmp(name, "_ENV") != 0 || !lua_istable(L, -1))
    return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  const void *globals = lua_topointer(L, -1);
  lua_pushvalue(L, -2);                         /* env, G, t */
  int found = 0;
  for (int n = 0; n < ENV_CHAIN_MAX && !found; n++) {
    if (!lua_getmetatable(L, -1)) break;        /* env, G, t, mt */
    lua_pushliteral(L, "__index");
    int type = lua_rawget(L, -2);               /* env, G, t, mt, i */
    lua_replace(L, -3);                         /* env, G, i, mt */
    lua_pop(L, 1);
    found = type == LUA_TFUNCTION ||
            (type == LUA_TTABLE && lua_topointer(L, -1) == globals);
    if (type != LUA_TTABLE) break;
  }
  lua_pop(L, 2);
  return found;
}

/* Upvalue i of the function at idx (id fid): if a function of this
 * message met its cell before, puts a reference to that place and
 * returns 1; else records this place (before the value is encoded, so a
 * closure inside the value that shares the cell refers to it) and
 * returns 0. */
static int put_shared_upvalue(lua_State *L, scratch *s, int idx, int i,
                              int fid) {
  const void *cell = lua_upvalueid(L, idx, i);
  int place = map_find(&s->upvals, cell);
  if (place) {
    put_byte(s, T_UPVAL);
    put_varint(s, (uint64_t)(place >> 8));
    put_byte(s, place & 0xff);
    s->flags |= F_BACKREFS;
    return 1;
  }
  if (cell != NULL && fid < UPVAL_MAX_FID)
    map_add(&s->upvals, cell, fid << 8 | i, &s->oom);
  return 0;
}

static const char *encode_function(lua_State *L, scratch *s, int idx,
                                   int depth) {
  if (lua_iscfunction(L, idx)) {
    /* Only by name; look again in case a module gained it lately. */
    if (encode_known(L, s, idx)) return NULL;
    if (module_name(L, s, idx, 1)) {
      put_module(L, s);
      return NULL;
    }
    lua_pop(L, 1);
    return "a C function (it belongs to no loaded module)";
  }
  if (encode_known(L, s, idx)) return NULL;
  if (depth > MAX_DEPTH || !lua_checkstack(L, 5))
    return "a function nested too deeply (200 levels at most)";
  int fid = ++s->next_id;
  seen_add(s, lua_topointer(L, idx), fid);
  s->flags |= F_CODE;
  put_byte(s, T_FUNC);
  size_t at = s->len;
  put(s, "\0\0\0\0", 4);
  put_dump(L, s, idx);
  put_u32_at(s, at, (uint32_t)(s->len - at - 4));
  lua_Debug ar;
  lua_pushvalue(L, idx);
  lua_getinfo(L, ">u", &ar);
  put_varint(s, ar.nups);
  for (int i = 1; i <= ar.nups; i++) {
    if (put_shared_upvalue(L, s, idx, i, fid)) continue;
    const char *name = lua_getupvalue(L, idx, i);
    if (is_layered_env(L, name)) {
      lua_pop(L, 1);
      put_byte(s, T_ENV);
      continue;
    }
    const char *err = encode_value(L, s, lua_gettop(L), depth + 1);
    lua_pop(L, 1);
    if (err) {
      add_segment(&s->path, 'u', "%s", name && *name ? name : "?");
      return err;
    }
  }
  return NULL;
}

/* A userdata that is no conc object travels only if its type exports
 * it (a back-reference if this message exported it already). */
static const char *encode_foreign(lua_State *L, scratch *s, int idx,
                                  int depth) {
  int id = seen_find(s, lua_topointer(L, idx));
  if (id > 0) {
    put_byte(s, T_REF);
    put_varint(s, (uint64_t)id);
    s->flags |= F_BACKREFS;
    return NULL;
  }
  if (!lua_checkstack(L, 6) || !lua_getmetatable(L, idx)) return "a userdata";
  if (!get_export(L, lua_gettop(L))) {
    lua_pop(L, 1);
    return "a userdata";
  }
  lua_remove(L, -2);                              /* hook */
  return encode_export(L, s, idx, depth, "a userdata");
}

static const char *encode_object(lua_State *L, scratch *s, int idx, int depth) {
  conc_obj *o = lconc_to_obj(L, idx);
  if (o == NULL) return encode_foreign(L, s, idx, depth);
  int id = seen_find(s, o);
  if (id == 0) {
    if (s->nrefs == s->refsize) {
      uint32_t size = s->refsize ? s->refsize * 2 : 8;
      conc_obj **r = realloc(s->refs, size * sizeof *r);
      if (r == NULL) return "a value (out of memory)";
      s->refs = r;
      s->refsize = size;
    }
    s->refs[s->nrefs] = o;
    id = -(int)(++s->nrefs);
    seen_add(s, o, id);
  }
  put_byte(s, T_OBJ);
  put_varint(s, (uint64_t)(-id - 1));
  return NULL;
}

static const char *encode_value(lua_State *L, scratch *s, int idx, int depth) {
  switch (lua_type(L, idx)) {
    case LUA_TNIL: put_byte(s, T_NIL); return NULL;
    case LUA_TBOOLEAN:
      put_byte(s, lua_toboolean(L, idx) ? T_TRUE : T_FALSE);
      return NULL;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        put_byte(s, T_INT);
        put_varint(s, zigzag(lua_tointeger(L, idx)));
      } else {
        lua_Number v = lua_tonumber(L, idx);
        put_byte(s, T_FLOAT);
        put(s, &v, sizeof v);
      }
      return NULL;
    case LUA_TSTRING: {
      size_t len;
      const char *p = lua_tolstring(L, idx, &len);
      put_byte(s, T_STR);
      put_string(s, p, len);
      return NULL;
    }
    case LUA_TTABLE: return encode_table(L, s, idx, depth);
    case LUA_TFUNCTION: return encode_function(L, s, idx, depth);
    case LUA_TUSERDATA: return encode_object(L, s, idx, depth);
    case LUA_TLIGHTUSERDATA: return "a light userdata";
    case LUA_TTHREAD: return "a coroutine";
    default: return "a value of this type";
  }
}

/* ---- the small path: scalars only, no scratch, no allocation ------------ */

#define SMALL_MAX CONC_MSG_INLINE

/* Encodes n scalar values into out (SMALL_MAX bytes); 0 if it can't. */
static size_t encode_small(lua_State *L, int first, int n, unsigned char *out) {
  size_t len = 1;
  out[0] = 0;
  for (int i = first; i < first + n; i++) {
    switch (lua_type(L, i)) {
      case LUA_TNIL:
        if (len + 1 > SMALL_MAX) return 0;
        out[len++] = T_NIL;
        break;
      case LUA_TBOOLEAN:
        if (len + 1 > SMALL_MAX) return 0;
        out[len++] = lua_toboolean(L, i) ? T_TRUE : T_FALSE;
        break;
      case LUA_TNUMBER: {
        if (len + 11 > SMALL_MAX) return 0;
        if (lua_isinteger(L, i)) {
          out[len] = T_INT;
          len += 1 + write_varint(out + len + 1, zigzag(lua_tointeger(L, i)));
        } else {
          lua_Number v = lua_tonumber(L, i);
          out[len] = T_FLOAT;
          memcpy(out + len + 1, &v, 8);
          len += 9;
        }
        break;
      }
      case LUA_TSTRING: {
        size_t sl;
        const char *p = lua_tolstring(L, i, &sl);
        if (sl > 127 || len + 2 + sl > SMALL_MAX) return 0;
        out[len] = T_STR;
        out[len + 1] = (unsigned char)sl;  /* a one-byte varint */
        memcpy(out + len + 2, p, sl);
        len += 2 + sl;
        break;
      }
      default: return 0;
    }
  }
  return len;
}

/* ---- encoding entry points ---------------------------------------------- */

/* The call running in L (its CallInfo, which lua_Debug exposes), or
 * NULL outside any call. */
static const void *current_call(lua_State *L) {
  lua_Debug ar;
  return lua_getstack(L, 0, &ar) ? (const void *)ar.i_ci : NULL;
}

/* Whether call (not the current one) is among L's active calls: the
 * frame of an encode this one is nested in. */
static int call_is_active(lua_State *L, const void *call) {
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); level++)
    if ((const void *)ar.i_ci == call) return 1;
  return 0;
}

/* An encode that raises (memory runs out in a Lua allocation) leaves its
 * scratch marked in use. A nested encode (a __gc or a __conc_export hook
 * that sends) runs in a call below the one that holds the scratch, in
 * the same thread, or in another thread: an encode in the same thread
 * whose callers do not include that call finds the mark stale and takes
 * the scratch back. (A CallInfo is reused by a later call at its depth:
 * that only makes a deeper encode borrow, which is safe.)
 *
 * Returns the state's scratch, or, when it is in use (a nested encode: a
 * __gc or a __conc_export hook that sends), a temporary one: a userdata
 * left on the stack at *temporary (0 for the state's own), so that an
 * error raised while encoding (out of memory) leaves it to the collector
 * instead of leaking it. */
static scratch *acquire_scratch(lua_State *L, int *temporary) {
  *temporary = 0;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &scratch_key) == LUA_TNIL) {
    lua_pop(L, 1);
    lconc_codec_init(L);  /* the first encode in this state */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &scratch_key);
  }
  scratch *s = (scratch *)lua_touserdata(L, -1);
  lua_pop(L, 1);  /* the registry keeps it alive */
  const void *call = current_call(L);
  if (s != NULL && s->in_use && s->owner == L && s->call != NULL &&
      !call_is_active(L, s->call))
    s->in_use = 0;  /* its encode raised (out of memory): it is free */
  if (s == NULL || s->in_use) {
    s = (scratch *)lua_newuserdatauv(L, sizeof *s, 0);
    memset(s, 0, sizeof *s);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, scratch_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);                      /* ..., tmp */
    *temporary = lua_gettop(L);
  }
  s->in_use = 1;
  s->owner = L;
  s->call = call;
  scratch_reset(s);
  return s;
}

/* Releases s; a temporary one is freed and removed from the stack (what
 * was pushed above it moves down). */
static void release_scratch(lua_State *L, scratch *s, int temporary) {
  s->in_use = 0;
  if (temporary) {
    scratch_free(s);
    lua_remove(L, temporary);
  }
}

/* Encodes the n values at first after what s holds already (its flags
 * byte at least) into *m, and releases s. 0, or 1 with the message
 * pushed. */
static int encode_into(lua_State *L, scratch *s, int temporary, int first,
                       int n, conc_msg *m, const char *fname, lconc_what what,
                       int argbase) {
  int top = lua_gettop(L);  /* restored at the end, whatever happens */
  for (int k = 0; k < n; k++) {
    const char *err = encode_value(L, s, first + k, 0);
    if (err == NULL && s->oom) err = "a value this large (out of memory)";
    if (err) {
      lua_settop(L, top);
      push_error(L, s, fname, what, argbase + k, err);
      release_scratch(L, s, temporary);
      return 1;
    }
  }
  lua_settop(L, top);
  if (!s->oom) s->buf[0] = (unsigned char)s->flags;
  for (uint32_t i = 0; i < s->nrefs; i++) conc_retain(s->refs[i]);
  int rc = s->oom ? CONC_ENOMEM
                  : conc_msg_init(m, s->buf, s->len, s->refs, s->nrefs);
  if (rc != CONC_OK) {
    for (uint32_t i = 0; i < s->nrefs; i++) conc_release(s->refs[i]);
    lua_pushfstring(L, "%s: not enough memory", fname);
  }
  release_scratch(L, s, temporary);
  return rc != CONC_OK;
}

int lconc_encode_protected(lua_State *L, int first, int n, conc_msg *m,
                           const char *fname, lconc_what what, int argbase) {
  first = lua_absindex(L, first);
  size_t len = encode_small(L, first, n, m->u.small);  /* in place */
  if (len > 0) {
    m->len = (uint32_t)len;
    m->nrefs = 0;
    return 0;
  }
  int temporary;
  scratch *s = acquire_scratch(L, &temporary);
  put_byte(s, 0);
  return encode_into(L, s, temporary, first, n, m, fname, what, argbase);
}

void lconc_encode(lua_State *L, int first, int n, conc_msg *m,
                  const char *fname, lconc_what what, int argbase) {
  if (lconc_encode_protected(L, first, n, m, fname, what, argbase))
    lua_error(L);
}

/* Pushes a table of package.preload's Lua functions (C functions cannot
 * travel) and returns 1; pushes nothing and returns 0 if there are
 * none. */
static int push_preload(lua_State *L) {
  lua_pushnil(L);                                   /* P (nil so far) */
  if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE) == LUA_TTABLE) {
    lua_pushnil(L);                                 /* P, preload, k */
    while (lua_next(L, -2)) {                       /* P, preload, k, v */
      if (lua_type(L, -2) == LUA_TSTRING && lua_isfunction(L, -1) &&
          !lua_iscfunction(L, -1)) {
        if (lua_isnil(L, -4)) {
          lua_newtable(L);
          lua_replace(L, -5);
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);                          /* P, preload, k, k, v */
        lua_rawset(L, -5);
      } else {
        lua_pop(L, 1);
      }
    }
  }
  lua_pop(L, 1);                                    /* P */
  if (!lua_isnil(L, -1)) return 1;
  lua_pop(L, 1);
  return 0;
}

/* Starts s with the flags byte and the preload table P at p, dropping
 * first the entries that cannot travel (skipped, as C functions are: a
 * loader the worker lacks fails only if required); if P still fails
 * (out of memory), s holds no preload at all. */
static void put_preload(lua_State *L, scratch *s, int p) {
  int top = lua_gettop(L);
  put_byte(s, 0);
  if (encode_value(L, s, p, 0) == NULL && !s->oom) {
    s->flags |= F_PRELOAD;
    return;
  }
  lua_settop(L, top);
  lua_pushnil(L);
  while (lua_next(L, p)) {                          /* ..., k, fn */
    scratch_reset(s);
    put_byte(s, 0);
    if (encode_value(L, s, top + 2, 0) != NULL || s->oom) {
      lua_pushvalue(L, top + 1);
      lua_pushnil(L);
      lua_rawset(L, p);                             /* drops it */
    }
    lua_settop(L, top + 1);
  }
  scratch_reset(s);
  put_byte(s, 0);
  if (encode_value(L, s, p, 0) == NULL && !s->oom) {
    s->flags |= F_PRELOAD;
    return;
  }
  lua_settop(L, top);
  scratch_reset(s);
  put_byte(s, 0);
}

void lconc_encode_call(lua_State *L, int first, int n, conc_msg *m,
                       const char *label, int argno) {
  first = lua_absindex(L, first);
  if (!push_preload(L)) {
    lconc_encode(L, first, n, m, label, LCONC_ARG, argno);
    return;
  }
  int temporary;
  scratch *s = acquire_scratch(L, &temporary);
  put_preload(L, s, lua_gettop(L));
  int failed = encode_into(L, s, temporary, first, n, m, label, LCONC_ARG,
                           argno);
  lua_remove(L, failed ? -2 : -1);                  /* P */
  if (failed) lua_error(L);
}

/* ---- decoding ----------------------------------------------------------- */

typedef struct decoder {
  const unsigned char *p, *end;
  const conc_msg *m;
  int ids;       /* stack index of the id -> value table, 0: none */
  int next_id;
  int errslot;   /* stack index for a module's load error, 0: none */
  int failed;    /* a module could not be loaded: unwinding */
  errpath path;  /* where the failing value sits (when failed) */
} decoder;

static int corrupt(lua_State *L) {
  return luaL_error(L, "conc: corrupt message");
}

static void need(lua_State *L, decoder *d, size_t n) {
  if ((size_t)(d->end - d->p) < n) corrupt(L);
}

static uint64_t get_varint_slow(lua_State *L, decoder *d) {
  uint64_t v = 0;
  const unsigned char *p = d->p;
  for (int shift = 0; shift < 64 && p < d->end; shift += 7) {
    unsigned char c = *p++;
    v |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) {
      d->p = p;
      return v;
    }
  }
  corrupt(L);
  return 0;
}

static inline uint64_t get_varint(lua_State *L, decoder *d) {
  if (d->p < d->end && !(*d->p & 0x80)) return *d->p++;  /* one byte */
  return get_varint_slow(L, d);
}

static uint32_t get_u32(lua_State *L, decoder *d) {
  uint32_t v;
  need(L, d, 4);
  memcpy(&v, d->p, 4);
  d->p += 4;
  return v;
}

static const char *get_string(lua_State *L, decoder *d, size_t *len) {
  uint64_t n = get_varint(L, d);
  need(L, d, n);
  const char *p = (const char *)d->p;
  d->p += n;
  *len = (size_t)n;
  return p;
}

static void remember(lua_State *L, decoder *d) {
  d->next_id++;
  if (d->ids) {
    lua_pushvalue(L, -1);
    lua_rawseti(L, d->ids, d->next_id);
  }
}

/* Protected: pushes require(mod)[key], or the module itself if key is
 * nil (arguments 1 and 2); raises a message naming the module. */
static int load_member(lua_State *L) {
  const char *mod = lua_tostring(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, 1);
  if (lua_rawget(L, -2) == LUA_TNIL) {   /* not loaded here yet */
    lua_getglobal(L, "require");
    lua_pushvalue(L, 1);
    int status = lua_pcall(L, 1, 1, 0);
    /* (require turns a loader's memory error into its own message) */
    if (status == LUA_ERRMEM || (status != LUA_OK && lconc_memory_refused(L)))
      return lconc_raise_nomem(L);
    if (status != LUA_OK) {
      lconc_tostring_safe(L, -1);
      return luaL_error(L, "module '%s' cannot be loaded here: %s", mod,
                        lua_tostring(L, -1));
    }
  }
  if (lua_isnil(L, 2)) return 1;
  lua_pushvalue(L, 2);
  if (!lua_istable(L, -2) || lua_gettable(L, -2) == LUA_TNIL)
    return luaL_error(L, "module '%s' has no field '%s' here", mod,
                      lua_tostring(L, 2));
  return 1;
}

/* The usual case without a protected call: the module is loaded and
 * has the field as a raw field. Pushes it and returns 1, or pushes
 * nothing and returns 0. */
static int push_loaded_member(lua_State *L, const char *mod, size_t len,
                              const char *key, size_t klen) {
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushlstring(L, mod, len);
  int t = lua_rawget(L, -2);                       /* loaded, module */
  if (t != LUA_TNIL && key == NULL) {
    lua_remove(L, -2);
    return 1;
  }
  if (t == LUA_TTABLE) {
    lua_pushlstring(L, key, klen);
    if (lua_rawget(L, -2) != LUA_TNIL) {           /* loaded, module, v */
      lua_replace(L, -3);
      lua_pop(L, 1);
      return 1;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  return 0;
}

/* Pushes require(mod)[key] (or the module itself). If that fails, pushes
 * nothing, leaves the message in d->errslot and sets d->failed. */
static void push_module(lua_State *L, decoder *d) {
  lconc_checkstack(L, 4, "conc: message nested too deeply");
  size_t len, klen = 0;
  const char *mod = get_string(L, d, &len);
  need(L, d, 1);
  int haskey = *d->p++;
  const char *key = haskey ? get_string(L, d, &klen) : NULL;
  if (push_loaded_member(L, mod, len, key, klen)) return;
  lua_pushcfunction(L, load_member);
  lua_pushlstring(L, mod, len);
  if (key) lua_pushlstring(L, key, klen);
  else lua_pushnil(L);
  int status = lua_pcall(L, 2, 1, 0);
  if (status == LUA_OK) return;
  if (status == LUA_ERRMEM) lconc_raise_nomem(L);
  if (d->errslot == 0) lua_error(L);  /* cannot happen: F_CODE is set */
  lua_replace(L, d->errslot);
  d->failed = 1;
}

static void decode_value(lua_State *L, decoder *d, int depth);

/* Room on the stack for a table, its id entry, and a key and a value
 * (a nested table checks again for itself). */
#define ROOM_PER_LEVEL 4

static void decode_table(lua_State *L, decoder *d, int depth) {
  lconc_checkstack(L, ROOM_PER_LEVEL, "conc: message nested too deeply");
  uint64_t narr = get_varint(L, d), nhash = get_varint(L, d);
  size_t left = (size_t)(d->end - d->p);
  if (narr > left || nhash > left / 2 || narr > 0x7fffffff) corrupt(L);
  lua_createtable(L, (int)narr, (int)nhash);
  remember(L, d);
  for (uint64_t i = 1; i <= narr; i++) {
    decode_value(L, d, depth + 1);
    if (d->failed) {
      add_segment(&d->path, 'f', "[%lld]", (long long)i);
      return;
    }
    lua_rawseti(L, -2, (lua_Integer)i);
  }
  for (uint64_t i = 0; i < nhash; i++) {
    decode_value(L, d, depth + 1);
    if (d->failed) {
      add_segment(&d->path, 'k', "");
      return;
    }
    if (lua_isnil(L, -1) || (lua_type(L, -1) == LUA_TNUMBER &&
                             lua_tonumber(L, -1) != lua_tonumber(L, -1)))
      corrupt(L);
    int key = lua_gettop(L);
    decode_value(L, d, depth + 1);
    if (d->failed) {
      add_key_segment(L, &d->path, key);
      return;
    }
    lua_rawset(L, -3);
  }
}

/* Makes upvalue i of the function at -1 the cell of upvalue n of the
 * function with id fid (decoded before, maybe still being decoded). */
static void join_upvalue(lua_State *L, decoder *d, int i) {
  uint64_t fid = get_varint(L, d);
  need(L, d, 1);
  int n = *d->p++;
  if (d->ids == 0 || fid == 0 || fid > (uint64_t)d->next_id) corrupt(L);
  if (lua_rawgeti(L, d->ids, (lua_Integer)fid) != LUA_TFUNCTION ||
      lua_iscfunction(L, -1) || lua_getupvalue(L, -1, n) == NULL ||
      lua_getupvalue(L, -3, i) == NULL)
    corrupt(L);
  lua_pop(L, 2);                                  /* f, other */
  lua_upvaluejoin(L, -2, i, -1, n);
  lua_pop(L, 1);
}

static void decode_function(lua_State *L, decoder *d, int depth) {
  lconc_checkstack(L, ROOM_PER_LEVEL, "conc: message nested too deeply");
  uint32_t len = get_u32(L, d);
  need(L, d, len);
  int loaded = luaL_loadbufferx(L, (const char *)d->p, len, "=conc", "b");
  if (loaded == LUA_ERRMEM) lconc_raise_nomem(L); /* as such: see below */
  if (loaded != LUA_OK) lua_error(L);
  d->p += len;
  remember(L, d);
  int f = lua_gettop(L);
  uint64_t nups = get_varint(L, d);
  if (nups > 255) corrupt(L);
  for (int i = 1; i <= (int)nups; i++) {
    if (d->p < d->end && *d->p == T_UPVAL) {
      d->p++;
      join_upvalue(L, d, i);
      continue;
    }
    decode_value(L, d, depth + 1);
    if (d->failed) {
      const char *name = lua_getupvalue(L, f, i);
      add_segment(&d->path, 'u', "%s", name && *name ? name : "?");
      return;
    }
    if (lua_setupvalue(L, f, i) == NULL) corrupt(L);
  }
}

/* Marks the decode failed with the message at -1 (popped). */
static void fail_with(lua_State *L, decoder *d) {
  if (d->errslot == 0) lua_error(L);  /* cannot happen: F_CODE is set */
  lua_replace(L, d->errslot);
  d->failed = 1;
}

/* Pushes why the class named at `name` (a T_MODULE payload, read
 * before) is no metatable here; the value found is at -1. */
static void push_class_error(lua_State *L, decoder *d,
                             const unsigned char *name) {
  decoder at = *d;
  at.p = name;
  size_t mlen, klen;
  const char *mod = get_string(L, &at, &mlen);
  lua_pushlstring(L, mod, mlen);                  /* v, mod */
  if (*at.p++) {
    const char *key = get_string(L, &at, &klen);
    lua_pushlstring(L, key, klen);                /* v, mod, key */
    lua_pushfstring(L, "class '%s.%s' is a %s here, not a table",
                    lua_tostring(L, -2), lua_tostring(L, -1),
                    luaL_typename(L, -3));
    lua_remove(L, -2);
  } else {
    lua_pushfstring(L, "class '%s' is a %s here, not a table",
                    lua_tostring(L, -1), luaL_typename(L, -2));
  }
  lua_remove(L, -2);                              /* v, message */
}

/* An instance of a module's class: the receiver's own class, found by
 * name, becomes the metatable of the copied contents. */
static void decode_class(lua_State *L, decoder *d, int depth) {
  lconc_checkstack(L, ROOM_PER_LEVEL + 1, "conc: message nested too deeply");
  need(L, d, 1);
  if (*d->p++ != T_MODULE) corrupt(L);
  const unsigned char *name = d->p;
  push_module(L, d);                              /* mt */
  if (d->failed) return;
  if (!lua_istable(L, -1)) {
    push_class_error(L, d, name);
    fail_with(L, d);
    return;
  }
  decode_table(L, d, depth);                      /* mt, t */
  if (d->failed) return;
  lua_insert(L, -2);                              /* t, mt */
  lua_setmetatable(L, -2);
}

/* Protected: calls require(mod)[fn](v) (arguments 1, 2, 3) and returns
 * what it rebuilt; raises a message naming the rebuilder if it cannot be
 * found, raises, or returns nil (nil, reason is the conc way to fail). */
static int rebuild_export(lua_State *L) {
  const char *mod = lua_tostring(L, 1), *fn = lua_tostring(L, 2);
  lua_pushcfunction(L, load_member);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  int status = lua_pcall(L, 2, 1, 0);             /* mod, fn, v, rebuild */
  if (status == LUA_ERRMEM) return lconc_raise_nomem(L);
  if (status != LUA_OK)
    return luaL_error(L, "cannot rebuild with '%s.%s': %s", mod, fn,
                      lua_tostring(L, -1));
  lua_pushvalue(L, 3);
  if (lua_pcall(L, 1, 2, 0) != LUA_OK) {          /* ..., err */
    lconc_tostring_safe(L, -1);
    return luaL_error(L, "'%s.%s' could not rebuild the value: %s", mod, fn,
                      lua_tostring(L, -1));
  }
  if (!lua_isnil(L, -2)) {                        /* ..., value, extra */
    lua_pop(L, 1);
    return 1;
  }
  if (lua_isnil(L, -1))                           /* ..., nil, reason */
    lua_pushliteral(L, "it returned nil");
  else lconc_tostring_safe(L, -1);
  return luaL_error(L, "'%s.%s' could not rebuild the value: %s", mod, fn,
                    lua_tostring(L, -1));
}

/* A value its type exported: decodes what the hook returned and hands
 * it to the rebuilder the sender named. */
static void decode_export(lua_State *L, decoder *d, int depth) {
  lconc_checkstack(L, ROOM_PER_LEVEL + 4, "conc: message nested too deeply");
  size_t mlen, flen;
  const char *mod = get_string(L, d, &mlen);
  const char *fn = get_string(L, d, &flen);
  lua_pushcfunction(L, rebuild_export);
  lua_pushlstring(L, mod, mlen);
  lua_pushlstring(L, fn, flen);
  decode_value(L, d, depth + 1);                  /* rebuild, mod, fn, v */
  if (d->failed) return;
  int status = lua_pcall(L, 3, 1, 0);
  if (status == LUA_ERRMEM) lconc_raise_nomem(L);
  if (status != LUA_OK) {
    fail_with(L, d);
    return;
  }
  remember(L, d);
}

/* Pushes one value. The caller made room for it; a table or function
 * makes room for what it pushes inside. */
static void decode_value(lua_State *L, decoder *d, int depth) {
  if (depth > MAX_DEPTH + 1) corrupt(L);
  need(L, d, 1);
  int tag = *d->p++;
  switch (tag) {
    case T_NIL: lua_pushnil(L); break;
    case T_FALSE: lua_pushboolean(L, 0); break;
    case T_TRUE: lua_pushboolean(L, 1); break;
    case T_INT: lua_pushinteger(L, unzigzag(get_varint(L, d))); break;
    case T_FLOAT: {
      lua_Number v;
      need(L, d, 8);
      memcpy(&v, d->p, 8);
      d->p += 8;
      lua_pushnumber(L, v);
      break;
    }
    case T_STR: {
      size_t len;
      const char *p = get_string(L, d, &len);
      lua_pushlstring(L, p, len);
      break;
    }
    case T_TABLE: decode_table(L, d, depth); break;
    case T_FUNC: decode_function(L, d, depth); break;
    case T_REF: {
      uint64_t id = get_varint(L, d);
      if (d->ids == 0 || id == 0 || id > (uint64_t)d->next_id) corrupt(L);
      lua_rawgeti(L, d->ids, (lua_Integer)id);
      break;
    }
    case T_MODULE: push_module(L, d); break;
    case T_OBJ: {
      uint64_t i = get_varint(L, d);
      if (i >= d->m->nrefs) corrupt(L);
      /* (a retain before a push that ran out of memory was never given
       * back: the object leaked) */
      lconc_push_obj_shared(L, conc_msg_ref(d->m, (uint32_t)i));
      break;
    }
    case T_ENV: lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS); break;
    case T_CLASS: decode_class(L, d, depth); break;
    case T_EXPORT: decode_export(L, d, depth); break;
    default: corrupt(L);
  }
}

/* Pops a call message's preload table into package.preload. */
static void install_preload(lua_State *L) {
  if (!lua_istable(L, -1)) corrupt(L);
  lconc_checkstack(L, 4, "conc: too many values");
  if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE) == LUA_TTABLE) {
    lua_pushnil(L);                          /* preload, P, k */
    while (lua_next(L, -3)) {                /* P, preload, k, fn */
      if (lua_type(L, -2) == LUA_TSTRING && lua_isfunction(L, -1)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);                   /* P, preload, k, k, fn */
        lua_rawset(L, -4);
      } else {
        lua_pop(L, 1);
      }
    }
  }
  lua_pop(L, 2);
}

/* What a decode is for: the names its error gives. */
typedef struct decode_for {
  const conc_msg *m;
  const char *fname;
  lconc_what what;
  int failed;
} decode_for;

/* Pushes every value of m and returns how many; or, when a module cannot
 * be loaded, pushes only the error naming where and returns -1. Does
 * not free m. */
static int decode_all(lua_State *L, decode_for *f) {
  const conc_msg *m = f->m;
  decoder d;
  const unsigned char *data = conc_msg_data(m);
  if (m->len < 1) return corrupt(L);
  d.p = data + 1;
  d.end = data + m->len;
  d.m = m;
  d.next_id = 0;
  d.ids = d.errslot = d.failed = 0;
  d.path.nseg = 0;
  int base = lua_gettop(L);
  /* Each value takes a byte at least: a small message makes room for
   * all of its values at once, a big one value by value. */
  int small = m->len <= CONC_MSG_INLINE;
  lconc_checkstack(L, small ? (int)m->len + 3 : 4, "conc: too many values");
  if (data[0] & F_CODE) {  /* module values: room for a load error */
    lua_pushnil(L);
    d.errslot = lua_gettop(L);
  }
  if (data[0] & F_BACKREFS) {
    lua_newtable(L);  /* below the values; removed at the end */
    d.ids = lua_gettop(L);
  }
  int first = lua_gettop(L) + 1;
  int k = data[0] & F_PRELOAD ? 0 : 1;  /* 0: the preload table */
  for (; d.p < d.end; k++) {
    if (!small) lconc_checkstack(L, 1, "conc: too many values");
    decode_value(L, &d, 0);
    if (d.failed) {
      lua_pushvalue(L, d.errslot);
      locate_error(L, &d.path, f->fname, f->what, k);
      lua_replace(L, base + 1);
      lua_settop(L, base + 1);
      f->failed = 1;
      return -1;
    }
    if (k == 0) install_preload(L);
  }
  for (int i = first - 1; i > base; i--) lua_remove(L, i);  /* helpers */
  return lua_gettop(L) - base;
}

static int decode_protected(lua_State *L) {
  decode_for *f = (decode_for *)lua_touserdata(L, 1);
  lua_pop(L, 1);
  int n = decode_all(L, f);
  return n < 0 ? 1 : n;  /* the message */
}

int lconc_decode_protected(lua_State *L, conc_msg *m, const char *fname,
                           lconc_what what) {
  decode_for f = {m, fname, what, 0};
  const unsigned char *data = conc_msg_data(m);
  if (m->len >= 1 && m->len <= CONC_MSG_INLINE && m->nrefs == 0 &&
      !(data[0] & F_CODE)) {
    /* Inline (nothing to free if an error escapes) and runs no code:
     * the common case, without a protected call. */
    return decode_all(L, &f);
  }
  int base = lua_gettop(L);
  lua_pushcfunction(L, decode_protected);
  lua_pushlightuserdata(L, &f);
  int status = lua_pcall(L, 1, LUA_MULTRET, 0);
  conc_msg_free(m);
  /* A memory error stays one (lua_error would make it a plain error,
   * and a task's memory limit would not name itself). */
  if (status == LUA_ERRMEM) lconc_raise_nomem(L);
  if (status != LUA_OK) lua_error(L);
  if (f.failed) return -1;
  return lua_gettop(L) - base;
}

int lconc_decode_in(lua_State *L, conc_msg *m, const char *fname,
                    lconc_what what) {
  decode_for f = {m, fname, what, 0};
  int n = decode_all(L, &f);
  conc_msg_free(m);
  if (f.failed) lua_error(L);  /* the message naming where */
  return n;
}

int lconc_decode(lua_State *L, conc_msg *m, const char *fname,
                 lconc_what what) {
  int n = lconc_decode_protected(L, m, fname, what);
  if (n < 0) lua_error(L);
  return n;
}

/* ---- strings without a lua_State (errors made in C) --------------------- */

const char *lconc_msg_string(const conc_msg *m, size_t *len) {
  const unsigned char *d = conc_msg_data(m);
  if (m->len < 3 || d[1] != T_STR) return NULL;
  uint64_t n = 0;
  size_t i = 2;
  for (int shift = 0; i < m->len && shift < 35; shift += 7) {
    n |= (uint64_t)(d[i] & 0x7f) << shift;
    if (!(d[i++] & 0x80)) break;
  }
  if (i + n != m->len) return NULL;
  *len = (size_t)n;
  return (const char *)d + i;
}

const char *lconc_msg_type_name(const conc_msg *m) {
  static const char *const names[] = {
      [T_NIL] = "nil",         [T_FALSE] = "boolean",
      [T_TRUE] = "boolean",    [T_INT] = "number",
      [T_FLOAT] = "number",    [T_STR] = "string",
      [T_TABLE] = "table",     [T_REF] = "table",
      [T_FUNC] = "function",   [T_MODULE] = "module member",
      [T_OBJ] = "conc object", [T_ENV] = "table",
      [T_CLASS] = "table",     [T_EXPORT] = "exported value"};
  const unsigned char *d = conc_msg_data(m);
  if (m->len < 2 || d[1] >= sizeof names / sizeof names[0]) return "no";
  return names[d[1]];
}

void lconc_msg_from_number(conc_msg *m, lua_Number n) {
  unsigned char buf[1 + 1 + sizeof n];
  buf[0] = 0;
  buf[1] = T_FLOAT;
  memcpy(buf + 2, &n, sizeof n);
  conc_msg_init(m, buf, sizeof buf, NULL, 0);  /* inline: cannot fail */
}

void lconc_msg_from_string(conc_msg *m, const char *text) {
  unsigned char buf[CONC_MSG_INLINE];
  size_t len = strlen(text);
  if (len > sizeof buf - 3) len = sizeof buf - 3;
  buf[0] = 0;
  buf[1] = T_STR;
  buf[2] = (unsigned char)len;  /* < 128: a one-byte varint */
  memcpy(buf + 3, text, len);
  conc_msg_init(m, buf, len + 3, NULL, 0);  /* inline: cannot fail */
}

/* ---- text of any value, whatever its __tostring does -------------------- */

static int tostring_body(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

void lconc_tostring_safe(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_pushcfunction(L, tostring_body);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    lua_pop(L, 1);
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, idx));
  }
}

/* ---- per-state setup ---------------------------------------------------- */

int lconc_codec_loaded_meta(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  if (!lua_next(L, idx)) return 0;          /* key, value */
  int ok = lua_type(L, -2) == LUA_TSTRING &&
           strcmp(lua_tostring(L, -2), "__newindex") == 0 &&
           lua_tocfunction(L, -1) == loaded_newindex;
  lua_pop(L, 1);
  ok = ok && !lua_next(L, idx);             /* and nothing else */
  if (!ok) lua_settop(L, idx);
  return ok;
}

void lconc_codec_init(lua_State *L) {
  scratch *s = (scratch *)lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, scratch_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &scratch_key);
  /* Learn of new modules: package.loaded gets a __newindex hook unless it
   * has a metatable of its own already. */
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (!lua_getmetatable(L, -1)) {
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, loaded_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_setmetatable(L, -2);
  } else {
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}
