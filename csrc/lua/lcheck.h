/*
 * lcheck.h: argument checks whose errors name conc's function and the
 * object type, "conc.chan:send: bad argument #1 (number expected, got
 * string)", where lauxlib's say only "bad argument #1 to 'send'". Drop-in
 * replacements for the luaL_check* family: same arguments, same results;
 * the name is worked out only when an error is raised (lcheck.c), so a
 * successful check costs what lauxlib's does.
 */
#ifndef LCONC_CHECK_H
#define LCONC_CHECK_H

#include "lconc.h"

/* Pushes the qualified name of the running C function: "conc.chan" for a
 * function of the module, "conc.chan:send" for a method (of `type` if
 * not NULL, else of self's conc type), or the name Lua knows it by. */
CONC_API const char *lconc_push_fname(lua_State *L, const char *type);

/* As luaL_argerror: "<fname>: bad argument #arg (extramsg)"; a method's
 * arguments are counted after self, and a bad self says "bad self". */
CONC_API int lconc_argerror(lua_State *L, int arg, const char *extramsg);
/* As luaL_typeerror: "<tname> expected, got <type or __name>". */
CONC_API int lconc_typeerror(lua_State *L, int arg, const char *tname);

CONC_API lua_Integer lconc_checkinteger(lua_State *L, int arg);
CONC_API lua_Integer lconc_optinteger(lua_State *L, int arg, lua_Integer d);
CONC_API lua_Number lconc_checknumber(lua_State *L, int arg);
CONC_API void lconc_checktype(lua_State *L, int arg, int t);
CONC_API void lconc_checkany(lua_State *L, int arg);
CONC_API const char *lconc_checklstring(lua_State *L, int arg, size_t *len);
#define lconc_checkstring(L, arg) lconc_checklstring(L, (arg), NULL)
CONC_API int lconc_checkoption(lua_State *L, int arg, const char *def,
                               const char *const lst[]);

/* As luaL_checkstack, but a refusal far below Lua's stack limit is
 * memory: it raises Lua's memory error (lconc_raise_nomem), so a task
 * under a memory limit reports that, not "stack overflow (msg)". */
CONC_API void lconc_checkstack(lua_State *L, int n, const char *msg);
CONC_API int lconc_raise_nomem(lua_State *L);

#define lconc_argcheck(L, cond, arg, extramsg) \
  ((void)((cond) || lconc_argerror(L, (arg), (extramsg))))
#define lconc_argexpected(L, cond, arg, tname) \
  ((void)((cond) || lconc_typeerror(L, (arg), (tname))))

#endif
