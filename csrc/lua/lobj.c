/*
 * lobj.c: conc objects as Lua userdata.
 *
 * A userdata is a box holding one reference to a core object; __gc drops
 * it (and never blocks). Each lua_State interns its boxes in a table with
 * weak values keyed by the object's address, so an object received twice
 * is the same Lua value both times (usable as a table key, rawequal).
 * Lua clears weak values before it runs finalizers, so a dying box is
 * never found again.
 */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include "lconc.h"
#include "lcheck.h"

static const char objects_key = 'o';  /* registry: address -> box */

/*
 * Seals. A box's seal mixes its own address and type with a secret made
 * once per process. Lua code cannot read a userdata's bytes, and no
 * other library makes a userdata of a box's size holding such a word,
 * so "a userdata of this size whose seal matches" is a conc object of
 * that type: the check of every method's self is two API calls and a
 * comparison, and methods need no upvalues (nothing per state).
 */
/* Read at every method call on every thread: a cache line of its own
 * (a neighbour written often made each read a miss). */
static struct {
  _Alignas(64) atomic_uintptr_t v;
} seal_secret; /* its alignment pads it to a line: nothing shares it */

static uintptr_t seal_of(const lconc_box *b, const conc_type *type) {
  uintptr_t x = ((uintptr_t)b ^ ((uintptr_t)type << 1)) *
                (uintptr_t)0x9E3779B97F4A7C15u;
  return x ^ atomic_load_explicit(&seal_secret.v, memory_order_relaxed);
}

/* The box at idx if it is one (of any type), else NULL. */
static lconc_box *sealed_box(lua_State *L, int idx) {
  lconc_box *b = (lconc_box *)lua_touserdata(L, idx);
  if (b == NULL || lua_rawlen(L, idx) != sizeof *b ||
      b->seal != seal_of(b, b->type))
    return NULL;
  return b;
}

void lconc_new_weak_table(lua_State *L, const char *mode) {
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushstring(L, mode);
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
}

static void push_weak_table(lua_State *L, const void *key, const char *mode) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) != LUA_TNIL) return;
  lua_pop(L, 1);
  lconc_new_weak_table(L, mode);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

/* __gc, a closure over its class's type: it releases only a box of that
 * class (someone may call it by hand on anything). */
static int obj_gc(lua_State *L) {
  const conc_type *type = (const conc_type *)
      lua_touserdata(L, lua_upvalueindex(1));
  conc_obj *o = lconc_test_obj(L, 1, type);
  if (o == NULL) return 0;
  ((lconc_box *)lua_touserdata(L, 1))->o = NULL;
  conc_release(o);
  return 0;
}

static int obj_eq(lua_State *L) {
  conc_obj *a = lconc_to_obj(L, 1), *b = lconc_to_obj(L, 2);
  lua_pushboolean(L, a != NULL && a == b);
  return 1;
}

static int obj_tostring(lua_State *L) {
  conc_obj *o = lconc_to_obj(L, 1);
  lua_pushfstring(L, "%s: %p", o ? o->type->name : "conc.object", (void *)o);
  return 1;
}

/* ---- classes: declared once per process, created lazily per state ---- */

typedef struct lclass {
  const conc_type *type;
  const luaL_Reg *methods, *meta;
  lua_CFunction index;
} lclass;

#define MAX_CLASSES 32
static lclass classes[MAX_CLASSES];
static atomic_int nclasses;  /* entries below it are complete */
static pthread_mutex_t declare_lock = PTHREAD_MUTEX_INITIALIZER;

static const lclass *find_class(const conc_type *type) {
  int n = atomic_load_explicit(&nclasses, memory_order_acquire);
  for (int i = 0; i < n; i++)
    if (classes[i].type == type) return &classes[i];
  return NULL;
}

void lconc_declare(const conc_type *type, const luaL_Reg *methods,
                   const luaL_Reg *meta, lua_CFunction index) {
  pthread_mutex_lock(&declare_lock);
  if (atomic_load_explicit(&seal_secret.v, memory_order_relaxed) == 0)
    atomic_store_explicit(&seal_secret.v,
                          ((uintptr_t)conc_now() ^ (uintptr_t)&declare_lock) |
                              1,
                          memory_order_relaxed);
  int n = atomic_load_explicit(&nclasses, memory_order_relaxed);
  if (find_class(type) == NULL && n < MAX_CLASSES) {
    classes[n] = (lclass){type, methods, meta, index};
    atomic_store_explicit(&nclasses, n + 1, memory_order_release);
  }
  pthread_mutex_unlock(&declare_lock);
}

/* Pushes the metatable of `type` in L, creating it on first use (a
 * worker's state pays only for the classes it meets). */
static void push_class(lua_State *L, const conc_type *type) {
  static const luaL_Reg meta[] = {
      {"__eq", obj_eq}, {"__tostring", obj_tostring}, {NULL, NULL}};
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, type) == LUA_TTABLE) return;
  lua_pop(L, 1);
  const lclass *c = find_class(type);
  if (c == NULL) {
    luaL_error(L, "conc: no class declared for %s", type->name);
    return;  /* not reached: luaL_error does not return */
  }
  luaL_newmetatable(L, type->name);          /* mt */
  luaL_setfuncs(L, meta, 0);
  lua_pushlightuserdata(L, (void *)type);
  lua_pushcclosure(L, obj_gc, 1);
  lua_setfield(L, -2, "__gc");
  if (c->meta) luaL_setfuncs(L, c->meta, 0);
  lua_newtable(L);                           /* mt, methods */
  luaL_setfuncs(L, c->methods, 0);
  if (c->index) lua_pushcclosure(L, c->index, 1);  /* fields, then methods */
  lua_setfield(L, -2, "__index");            /* mt */
  lua_pushvalue(L, -1);  /* under the type's address: no string lookup */
  lua_rawsetp(L, LUA_REGISTRYINDEX, type);
}

void lconc_push_meta(lua_State *L, const char *name, const luaL_Reg *funcs) {
  if (luaL_getmetatable(L, name) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_createtable(L, 0, 4);
  luaL_setfuncs(L, funcs, 0);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, name);
}

/* What the collector is told a new box holds in C (a guess: the
 * object's struct, lock and queues; a channel's ring, a context's
 * children, more), reported in steps of ACCOUNT_STEP. Unseen, that
 * memory let dropped objects pile up: the interning table, sized for
 * the last cycle's boxes, is live and sets the next cycle's threshold,
 * so each cycle let more garbage in (a loop making mutexes: 700 MB RSS
 * after 12 M; with contexts, 4.5 GB). Per thread, not per state: a
 * hint for whichever state makes the next box. */
#define OBJ_C_BYTES 256
#define ACCOUNT_STEP 8192
static _Thread_local size_t unaccounted;

/* Pushes o's box: `owned`, the caller's reference is taken over (and
 * left the caller's if this raises); else one is taken when the box
 * holds o, so a raise (no memory) takes none. */
static void push_box(lua_State *L, conc_obj *o, bool owned) {
  push_weak_table(L, &objects_key, "v");     /* objects */
  if (lua_rawgetp(L, -1, o) == LUA_TUSERDATA &&
      ((lconc_box *)lua_touserdata(L, -1))->o == o) {
    if (owned) conc_release(o); /* the interned box holds a reference */
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 1);  /* none, or a box finalized by hand: a new one */
  lconc_box *b = (lconc_box *)lua_newuserdatauv(L, sizeof *b, 0);
  b->o = NULL;  /* consistent until the metatable (with __gc) is set */
  b->type = o->type;
  b->seal = seal_of(b, o->type);
  push_class(L, o->type);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, -3, o);                     /* objects, box */
  if (!owned) conc_retain(o);
  b->o = o;  /* last: until here a raise leaves the reference the caller's */
  lua_remove(L, -2);
  if ((unaccounted += OBJ_C_BYTES) >= ACCOUNT_STEP) {
    unaccounted = 0;
    lconc_gc_pressure(L, ACCOUNT_STEP);
  }
}

static int push_shared_body(lua_State *L) {
  push_box(L, (conc_obj *)lua_touserdata(L, 1), false);
  return 1;
}

/* The box is made in a protected call: a raise (no memory, a task's
 * memory limit) left the reference the caller's, and no caller gave it
 * back (every constructor leaked its new object: a ticker went on
 * firing). Now it is released on every path. */
void lconc_push_obj(lua_State *L, conc_obj *o) {
  lua_pushcfunction(L, push_shared_body);
  lua_pushlightuserdata(L, o);
  int status = lua_pcall(L, 1, 1, 0);
  conc_release(o); /* the box holds one of its own, or there is none */
  if (status == LUA_ERRMEM) lconc_raise_nomem(L);
  if (status != LUA_OK) lua_error(L);
}

void lconc_push_obj_shared(lua_State *L, conc_obj *o) { push_box(L, o, false); }

void lconc_gc_pressure(lua_State *L, size_t bytes) {
  /* LUA_GCSTEP with n > 0 adds n KB to the collector's debt and steps
   * if it is due; it would also run a stopped collector: ask first. */
  if (bytes < 512 || !lua_gc(L, LUA_GCISRUNNING)) return;
  size_t kb = (bytes + 512) / 1024;
  lua_gc(L, LUA_GCSTEP, kb > INT_MAX ? INT_MAX : (int)kb);
}

conc_obj *lconc_to_obj(lua_State *L, int idx) {
  lconc_box *b = sealed_box(L, idx);
  return b ? b->o : NULL;
}

conc_obj *lconc_test_obj(lua_State *L, int idx, const conc_type *type) {
  lconc_box *b = sealed_box(L, idx);
  return b && b->type == type ? b->o : NULL;
}

/* As lconc_check_obj, in Lua's own wording (luaL_typeerror's): for a
 * host's C function (conc_lua_check), which conc's wording would name as
 * a method of the type ("conc.chan:f: bad argument #1 ..."). */
conc_obj *lconc_check_obj_plain(lua_State *L, int idx, const conc_type *type) {
  lconc_box *b = sealed_box(L, idx);
  if (b == NULL || b->type != type) luaL_typeerror(L, idx, type->name);
  if (b->o == NULL) luaL_argerror(L, idx, "object already released");
  return b->o;
}

conc_obj *lconc_check_obj(lua_State *L, int idx, const conc_type *type) {
  lconc_box *b = sealed_box(L, idx);
  if (b == NULL || b->type != type) {
    lconc_typeerror(L, idx, type->name);  /* raises */
    return NULL;
  }
  if (b->o == NULL) lconc_argerror(L, idx, "object already released");
  return b->o;
}
