/*
 * lcheck.c: argument checks whose errors name the function and the
 * object type (see lcheck.h). Everything here but the checks' fast paths
 * runs only when an error is about to be raised: it may search tables.
 */
#include <stdbool.h>
#include <string.h>
#include "lcheck.h"

/* If the table at tidx holds the value at fidx under a string key,
 * pushes that key and returns true. */
static bool push_key_of(lua_State *L, int tidx, int fidx) {
  if (!lua_istable(L, tidx)) return false;
  lua_pushnil(L);
  while (lua_next(L, tidx)) {                   /* key, value */
    if (lua_type(L, -2) == LUA_TSTRING && lua_rawequal(L, -1, fidx)) {
      lua_pop(L, 1);                            /* key */
      return true;
    }
    lua_pop(L, 1);
  }
  return false;
}

/* Pushes "conc.<key>" or "conc.signal.<key>" if the function at fidx is
 * one of the module's; returns whether it did (else the stack is as it
 * was). */
static bool push_module_name(lua_State *L, int fidx, const char *name) {
  int top = lua_gettop(L);
  const char *prefix = NULL;
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);  /* loaded */
  lua_getfield(L, top + 1, "conc.core");                 /* loaded, conc */
  /* The name it was called by first: one function may have two names
   * (background and todo). */
  if (name && lua_istable(L, top + 2) &&
      (lua_getfield(L, top + 2, name), lua_rawequal(L, -1, fidx))) {
    lua_pushstring(L, name);                             /* ..., f, key */
    prefix = "conc.";
  } else if (lua_settop(L, top + 2), push_key_of(L, top + 2, fidx)) {
    prefix = "conc.";
  } else if (lua_istable(L, top + 2)) {
    lua_getfield(L, top + 2, "signal");                  /* ..., signal */
    if (push_key_of(L, top + 3, fidx)) prefix = "conc.signal.";
  }
  if (prefix == NULL) {
    lua_settop(L, top);
    return false;
  }
  lua_pushfstring(L, "%s%s", prefix, lua_tostring(L, -1));
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);                                /* name */
  return true;
}

/* `type` if given, else the conc type name of self (index 1: its
 * __name, if it is conc's), else NULL. Leaves the stack as it was. */
static const char *self_type(lua_State *L, const char *type) {
  if (type) return type;
  if (lua_gettop(L) >= 1 && luaL_getmetafield(L, 1, "__name") == LUA_TSTRING) {
    const char *name = lua_tostring(L, -1);
    bool ours = strncmp(name, "conc.", 5) == 0;
    lua_pop(L, 1);  /* the metatable keeps the string alive */
    if (ours) return name;
  }
  return NULL;
}

/* Pushes the name the methods of type tname (its metatable's __index,
 * a table or a C closure over one) have the function at fidx under: the
 * name it was called by if that is one of them (a method may have two),
 * else the first found. Returns whether it did (else the stack is as it
 * was). `local f = ch.send; f(ch, ...)` is still conc.chan:send. */
static bool push_method_name(lua_State *L, int fidx, const char *tname,
                             const char *name) {
  int top = lua_gettop(L);
  if (luaL_getmetatable(L, tname) != LUA_TTABLE ||
      lua_getfield(L, -1, "__index") == LUA_TNIL) {
    lua_settop(L, top);
    return false;
  }
  lua_remove(L, -2);                            /* the metatable */
  if (lua_type(L, -1) == LUA_TFUNCTION && lua_getupvalue(L, -1, 1) != NULL)
    lua_remove(L, -2);                          /* the closure's methods */
  int t = lua_gettop(L);
  if (name && lua_istable(L, t) &&
      (lua_getfield(L, t, name), lua_rawequal(L, -1, fidx))) {
    lua_pushstring(L, name);
  } else if (lua_settop(L, t), !push_key_of(L, t, fidx)) {
    lua_settop(L, top);
    return false;
  }
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
  return true;
}

const char *lconc_push_fname(lua_State *L, const char *type) {
  lua_Debug ar;
  if (!lua_getstack(L, 0, &ar) || !lua_getinfo(L, "nf", &ar))
    return lua_pushliteral(L, "?");
  int f = lua_gettop(L);                        /* the running function */
  if (push_module_name(L, f, ar.name)) {
    lua_remove(L, f);
    return lua_tostring(L, -1);
  }
  const char *tname = self_type(L, type);
  const char *name = ar.name ? ar.name : "?";
  if (tname && push_method_name(L, f, tname, ar.name)) {
    const char *s = lua_pushfstring(L, "%s:%s", tname, lua_tostring(L, -1));
    lua_replace(L, f);
    lua_settop(L, f);
    return s;
  }
  lua_pop(L, 1);
  if (tname) return lua_pushfstring(L, "%s:%s", tname, name);
  return lua_pushstring(L, name);
}

/* luaL_argerror's numbering (a method's self is not counted), with the
 * function named as lconc_push_fname names it. */
static int argerror_typed(lua_State *L, int arg, const char *extramsg,
                          const char *type) {
  lua_Debug ar;
  bool method = lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) &&
                ar.namewhat && strcmp(ar.namewhat, "method") == 0;
  const char *fname = lconc_push_fname(L, type);
  if (method && --arg == 0)
    return luaL_error(L, "%s: bad self (%s)", fname, extramsg);
  return luaL_error(L, "%s: bad argument #%d (%s)", fname, arg, extramsg);
}

int lconc_argerror(lua_State *L, int arg, const char *extramsg) {
  return argerror_typed(L, arg, extramsg, NULL);
}

int lconc_typeerror(lua_State *L, int arg, const char *tname) {
  const char *got;
  if (luaL_getmetafield(L, arg, "__name") == LUA_TSTRING)
    got = lua_tostring(L, -1);
  else if (lua_type(L, arg) == LUA_TLIGHTUSERDATA) got = "light userdata";
  else got = luaL_typename(L, arg);
  const char *msg = lua_pushfstring(L, "%s expected, got %s", tname, got);
  /* A bad self of a conc method: the expected type is self's type. */
  const char *type = arg == 1 && strncmp(tname, "conc.", 5) == 0 ? tname : NULL;
  return argerror_typed(L, arg, msg, type);
}

lua_Integer lconc_checkinteger(lua_State *L, int arg) {
  int isnum;
  lua_Integer d = lua_tointegerx(L, arg, &isnum);
  if (!isnum) {
    if (lua_isnumber(L, arg))
      lconc_argerror(L, arg, "number has no integer representation");
    else lconc_typeerror(L, arg, lua_typename(L, LUA_TNUMBER));
  }
  return d;
}

lua_Integer lconc_optinteger(lua_State *L, int arg, lua_Integer d) {
  return lua_isnoneornil(L, arg) ? d : lconc_checkinteger(L, arg);
}

lua_Number lconc_checknumber(lua_State *L, int arg) {
  int isnum;
  lua_Number d = lua_tonumberx(L, arg, &isnum);
  if (!isnum) lconc_typeerror(L, arg, lua_typename(L, LUA_TNUMBER));
  return d;
}

void lconc_checktype(lua_State *L, int arg, int t) {
  if (lua_type(L, arg) != t) lconc_typeerror(L, arg, lua_typename(L, t));
}

void lconc_checkany(lua_State *L, int arg) {
  if (lua_type(L, arg) == LUA_TNONE) lconc_argerror(L, arg, "value expected");
}

const char *lconc_checklstring(lua_State *L, int arg, size_t *len) {
  const char *s = lua_tolstring(L, arg, len);
  if (s == NULL) {
    lconc_typeerror(L, arg, lua_typename(L, LUA_TSTRING));
    return "";  /* (never: it raises) */
  }
  return s;
}

int lconc_checkoption(lua_State *L, int arg, const char *def,
                      const char *const lst[]) {
  const char *name = def && lua_isnoneornil(L, arg) ? def
                                                    : lconc_checkstring(L, arg);
  for (int i = 0; lst[i]; i++)
    if (strcmp(lst[i], name) == 0) return i;
  return lconc_argerror(L, arg,
                        lua_pushfstring(L, "invalid option '%s'", name));
}

/* Lua's own memory error (LUA_ERRMEM, which a task's memory limit then
 * reports as "ran out of memory"): a block no allocator gives (1 EiB).
 * A C function cannot raise that status otherwise. */
int lconc_raise_nomem(lua_State *L) {
  lua_newuserdatauv(L, (size_t)1 << 60, 0);
  return luaL_error(L, "not enough memory"); /* (not reached) */
}

void lconc_checkstack(lua_State *L, int n, const char *msg) {
  if (lua_checkstack(L, n)) return;
  /* Refused far below the stack's limit: no memory for it (a task's
   * memory limit), not too many values. */
  if (lua_gettop(L) + n < LUAI_MAXSTACK - 1000) lconc_raise_nomem(L);
  if (msg) luaL_error(L, "stack overflow (%s)", msg);
  luaL_error(L, "stack overflow");
}
