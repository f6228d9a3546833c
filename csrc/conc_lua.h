/*
 * conc_lua.h: the public C API of conc's Lua binding, for a C program
 * that embeds Lua and conc (a host). With conc.h it is what libconc.a
 * and libconc.so export; docs/embedding.md shows how the pieces fit.
 *
 * Threads: a function taking a lua_State follows Lua's rule (call it on
 * the thread that runs L, or with L otherwise yours alone); the message
 * builders take no state and may be called on any thread, as may every
 * function of conc.h.
 *
 * Precondition: conc.core is open in the lua_State these functions are
 * given (require "conc", or luaopen_conc_core called on it); they raise
 * a Lua error that names the function otherwise.
 */
#ifndef CONC_LUA_H
#define CONC_LUA_H

#include <lua.h>
#include "conc.h"

/* The Lua module conc.core exports its opener in every build. */
#if defined(__GNUC__)
#define CONC_LUA_OPENER __attribute__((visibility("default")))
#else
#define CONC_LUA_OPENER
#endif

/* ---- the module ------------------------------------------------------ */

/*
 * Opens conc.core in L and returns its table (the Lua facade "conc",
 * lua/conc/init.lua, requires it). A host that links libconc registers
 * it before anything requires conc, e.g.
 *   luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
 *   lua_pushcfunction(L, luaopen_conc_core);
 *   lua_setfield(L, -2, "conc.core");
 * so that the copy of conc in the program is the one Lua uses (a
 * conc/core.so found on package.cpath would be a second copy). Worker
 * states get it preloaded by conc itself. The first state that opens it
 * on a thread other than a worker's is the main script's.
 */
CONC_LUA_OPENER int luaopen_conc_core(lua_State *L);

/* ---- conc objects in a lua_State ------------------------------------- */

/*
 * Pushes o as its Lua value: a userdata with its type's methods (a
 * conc_chan is a conc.chan, usable with every method the Lua API
 * documents). The Lua value holds a reference of its own: the caller's
 * references are untouched. Within one state an object is always the
 * same Lua value. Raises a Lua error (out of memory, conc.core not
 * open) as any lua_push* that allocates may; nothing is retained then.
 */
CONC_PUBLIC void conc_lua_push(lua_State *L, conc_obj *o);
/*
 * The conc object at stack index idx if it is one of `type` (NULL: of
 * any type), else NULL. Borrowed: it lives at least as long as the Lua
 * value; conc_retain it to keep it beyond that.
 */
CONC_PUBLIC conc_obj *conc_lua_test(lua_State *L, int idx,
                                    const conc_type *type);
/* As conc_lua_test, but raises Lua's usual argument error
 * ("bad argument #1 to 'f' (conc.chan expected, got number)") instead
 * of returning NULL. `type` may not be NULL here. */
CONC_PUBLIC conc_obj *conc_lua_check(lua_State *L, int idx,
                                     const conc_type *type);

/* conc_lua_push for a channel. */
CONC_PUBLIC void conc_lua_push_chan(lua_State *L, conc_chan *c);
/*
 * The channel at idx: a conc.chan, or the channel behind a receive-only
 * view of one (what ch:recv_only(), ctx:done() or conc.after give).
 * NULL if it is neither. *recv_only (if not NULL) is set to 1 when the
 * Lua side may not send on it or close it (a view, or a channel conc
 * owns), so a host should not either. Borrowed, as conc_lua_test.
 */
CONC_PUBLIC conc_chan *conc_lua_to_chan(lua_State *L, int idx, int *recv_only);

/* ---- messages a Lua receiver can decode --------------------------------- */

/*
 * A value sent on a channel is a conc_msg in the codec's format. These
 * build one holding a single value, for a thread with no lua_State (a
 * host's sensor thread): a receiver in Lua gets that value from
 * ch:recv(), range or select. The message is the caller's (pass it to
 * conc_chan_send, or conc_msg_free it). The void ones cannot fail: their
 * message lives inline.
 */
CONC_PUBLIC void conc_lua_msg_nil(conc_msg *m);
CONC_PUBLIC void conc_lua_msg_boolean(conc_msg *m, int b);
CONC_PUBLIC void conc_lua_msg_integer(conc_msg *m, lua_Integer i);
CONC_PUBLIC void conc_lua_msg_number(conc_msg *m, lua_Number n);
/* A Lua string of len bytes (any bytes). CONC_OK, or CONC_ENOMEM (the
 * message is then empty: freeing it is harmless). */
CONC_PUBLIC int conc_lua_msg_string(conc_msg *m, const char *s, size_t len);
/* A conc object, received as its Lua value (the message retains o; the
 * caller's reference is untouched). CONC_OK, or CONC_ENOMEM (the
 * message is then empty). */
CONC_PUBLIC int conc_lua_msg_object(conc_msg *m, conc_obj *o);

/*
 * Any value, through a state: encodes the value at idx into *m as
 * ch:send would (tables, functions, conc objects by reference...).
 * LUA_OK, or LUA_ERRRUN with the reason pushed ("conc_lua_to_msg:
 * value: cannot transfer a userdata"; *m is then empty). Raises only if
 * memory runs out.
 */
CONC_PUBLIC int conc_lua_to_msg(lua_State *L, int idx, conc_msg *m);
/*
 * Decodes *m into L (a message from conc_chan_recv, say) and frees it,
 * whatever happens: pushes its values and returns how many (1 for a
 * channel's message), or returns -1 with the reason pushed (a module the
 * message names that L cannot load). Raises only for a corrupt message
 * or if memory runs out.
 */
CONC_PUBLIC int conc_lua_push_msg(lua_State *L, conc_msg *m);

/* ---- the states conc makes for workers ---------------------------------- */

/*
 * The host's part in every lua_State conc creates for a worker: fn is
 * called once per state, on the thread that makes it (a light task's
 * state then runs on whichever scheduler thread is free: nothing of the
 * host's may be tied to that thread), after the standard
 * libraries, package and conc.core's preload entry are set up and before
 * any task runs there, as a protected lua_CFunction with no arguments
 * (its results are dropped). It is the place to register the host's C
 * modules, so that a worker can require them:
 *   luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
 *   lua_pushcfunction(L, luaopen_host_calib);
 *   lua_setfield(L, -2, "host.calib");
 * or to open them at once with luaL_requiref(L, name, fn, 0). Globals it
 * sets are not seen: every task starts with fresh globals. It should
 * leave the standard libraries alone (conc opens them on first use).
 *
 * If fn raises, the state is discarded and the task that was to run in
 * it fails (its join returns false with an error), and conc writes
 * "conc: conc_lua_set_state_init's function failed: <error>" on stderr.
 * A later task gets a new state and a new call of fn.
 *
 * Set it once, before the first conc.go (or pool, stage...): states made
 * before keep what they had. NULL: none (the default).
 */
CONC_PUBLIC void conc_lua_set_state_init(lua_CFunction fn);

#endif
