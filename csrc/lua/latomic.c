/*
 * latomic.c: conc.atomic, an integer shared by reference between
 * workers (Go's atomic.Int64): every worker holding it sees one value.
 */
#include "lconc.h"
#include "lcheck.h"

#define ATOMIC(L) ((conc_atomic *)lconc_check_obj(L, 1, &conc_atomic_type))

/* conc.atomic([n = 0]) */
static int atomic_new(lua_State *L) {
  lua_Integer n = lconc_optinteger(L, 1, 0);
  conc_atomic *a = conc_atomic_new((int64_t)n);
  if (a == NULL) return luaL_error(L, "conc.atomic: not enough memory");
  lconc_push_obj(L, (conc_obj *)a);
  return 1;
}

static int a_load(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)conc_atomic_load(ATOMIC(L)));
  return 1;
}

static int a_store(lua_State *L) {
  conc_atomic *a = ATOMIC(L);
  conc_atomic_store(a, (int64_t)lconc_checkinteger(L, 2));
  return 0;
}

/* a:add([delta = 1]) -> the new value */
static int a_add(lua_State *L) {
  conc_atomic *a = ATOMIC(L);
  int64_t delta = (int64_t)lconc_optinteger(L, 2, 1);
  lua_pushinteger(L, (lua_Integer)conc_atomic_add(a, delta));
  return 1;
}

/* a:swap(n) -> the old value */
static int a_swap(lua_State *L) {
  conc_atomic *a = ATOMIC(L);
  int64_t v = (int64_t)lconc_checkinteger(L, 2);
  lua_pushinteger(L, (lua_Integer)conc_atomic_swap(a, v));
  return 1;
}

/* a:compare_and_swap(old, new) -> whether it was old (and is new now) */
static int a_cas(lua_State *L) {
  conc_atomic *a = ATOMIC(L);
  int64_t old = (int64_t)lconc_checkinteger(L, 2);
  int64_t v = (int64_t)lconc_checkinteger(L, 3);
  lua_pushboolean(L, conc_atomic_cas(a, old, v));
  return 1;
}

void lconc_open_atomic(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"load", a_load}, {"store", a_store},          {"add", a_add},
      {"swap", a_swap}, {"compare_and_swap", a_cas}, {NULL, NULL}};
  lconc_declare(&conc_atomic_type, methods, NULL, NULL);
  lua_pushcfunction(L, atomic_new);
  lua_setfield(L, -2, "atomic");
}
