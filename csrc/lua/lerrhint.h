/*
 * lerrhint.h: what a worker's error says beyond Lua's own message.
 *
 *  - Where the worker was started, as Go's "created by" line: the spawn
 *    records its call site (lconc_site_capture, cheap: no allocation, no
 *    Lua string) and the worker's message handler appends it to the
 *    traceback (lconc_errhint_traceback).
 *  - A hint when a global is nil because a task starts with fresh
 *    globals: "attempt to call a nil value (global 'process'); globals
 *    of the main script are not visible in workers, pass it as an
 *    argument or an upvalue".
 */
#ifndef LCONC_ERRHINT_H
#define LCONC_ERRHINT_H

#include <stdint.h>
#include "lconc.h"

/* Where a worker was started: the first Lua frame above the spawning C
 * function, and the worker that spawned it (0: the main script). */
typedef struct lconc_site {
  int line;                /* 0: no Lua frame was found */
  int64_t by;              /* the spawning worker's id, 0: main script */
  char src[LUA_IDSIZE];    /* the chunk's short name, as tracebacks show */
} lconc_site;

/* Records in *s where the running C function (conc.go, wg:go, ...) was
 * called from in L. */
CONC_API void lconc_site_capture(lua_State *L, lconc_site *s);

/* Pushes "created by conc.go in the main script at x.lua:10" (or "in
 * worker 3"); an empty string if nothing was recorded. */
CONC_API void lconc_site_push(lua_State *L, const lconc_site *s);

/* Replaces the string at the top of L by itself with the fresh-globals
 * hint added, if it is the error of calling or indexing a nil global. */
CONC_API void lconc_errhint_globals(lua_State *L);

/* For a worker's message handler: the error string at the top becomes
 * the hinted message, the traceback of L (from level 1) and the
 * "created by" line of `site` (NULL: none). Pushes the result. */
CONC_API void lconc_errhint_traceback(lua_State *L, const lconc_site *site);
/* The same for the stack of co (a task's coroutine that an error ended,
 * its frames still there) from `level`, pushed on L. */
CONC_API void lconc_errhint_traceback_of(lua_State *L, lua_State *co, int level,
                                         const lconc_site *site);

#endif
