/*
 * lconc.h: what the Lua binding's files share. Only csrc/lua includes
 * lua.h; the core (csrc/core) never does.
 */
#ifndef LCONC_H
#define LCONC_H

#include <stdbool.h>
#include <stdlib.h>
#include <lua.h>
#include <lauxlib.h>
#include "../conc_lua.h"

/* ---- conc objects as userdata (lobj.c) --------------------------------- */

/* The userdata of every conc object: a box holding one reference. */
/* A conc object's userdata. `seal` marks it as conc's own (see lobj.c):
 * checking a method's self is two API calls, no metatable lookup. */
typedef struct lconc_box {
  conc_obj *o;               /* NULL once released (by a hand-called __gc) */
  const conc_type *type;
  uintptr_t seal;
} lconc_box;

/* Declares the Lua class of a conc object type (once per process; each
 * state creates the metatable when it first meets such an object):
 * __name = type->name, __gc, __eq, __tostring, the `meta` metamethods,
 * and __index = the methods table, or if `index` is given, that
 * function with the methods table as its upvalue 1 (for fields such as
 * timer.C). */
CONC_API void lconc_declare(const conc_type *type, const luaL_Reg *methods,
                            const luaL_Reg *meta, lua_CFunction index);
/* Pushes the userdata of o, taking over one reference the caller owns.
 * Within one lua_State the same object is always the same userdata. If
 * it raises (out of memory), the reference is released all the same. */
CONC_API void lconc_push_obj(lua_State *L, conc_obj *o);
/* Pushes o's box, taking a reference of its own (the caller keeps its):
 * if it raises (no memory), it took none. */
CONC_API void lconc_push_obj_shared(lua_State *L, conc_obj *o);
/* Pushes a new empty table whose metatable has __mode = mode ("k", "v"). */
CONC_API void lconc_new_weak_table(lua_State *L, const char *mode);
/* Pushes the metatable registered as `name`, made with `funcs` (and
 * __name) if there is none yet: registered only once whole, where
 * luaL_newmetatable registers it empty, and a memory error while it was
 * filled left one without its __close in the state for good. */
CONC_API void lconc_push_meta(lua_State *L, const char *name,
                              const luaL_Reg *funcs);
/* Tells L's collector that a userdata just made holds `bytes` of memory
 * it does not see (a task, a channel's ring), so that it collects as
 * often as if Lua had allocated them: else a loop that makes and drops
 * such objects grows the C heap for long between collections. Nothing
 * while the collector is stopped (collectgarbage "stop"). */
CONC_API void lconc_gc_pressure(lua_State *L, size_t bytes);
/* The object at idx if it is a conc object of `type`, else raises a type
 * error naming the argument. */
CONC_API conc_obj *lconc_check_obj(lua_State *L, int idx,
                                   const conc_type *type);
/* The same, raising in Lua's own wording (a host's conc_lua_check). */
CONC_API conc_obj *lconc_check_obj_plain(lua_State *L, int idx,
                                         const conc_type *type);
/* The object at idx if it is a conc object of `type`, else NULL. */
CONC_API conc_obj *lconc_test_obj(lua_State *L, int idx, const conc_type *type);
/* The object at idx if it is any conc object, else NULL. */
CONC_API conc_obj *lconc_to_obj(lua_State *L, int idx);

/* ---- channels (lchan.c) ------------------------------------------------- */

/* The channel at idx if it is a conc.chan or a receive-only view of one
 * (conc.chan.recv_only), else NULL. *recv_only (if not NULL) is set when
 * user code may not send on it or close it: a view, or a channel conc
 * owns (conc_chan_recv_only). */
CONC_API conc_chan *lconc_test_chan(lua_State *L, int idx, int *recv_only);


/* ---- bounded waits (lwait.c) -------------------------------------------- */

/* How long a blocking call may wait: until deadline, or until ctx (if not
 * NULL; borrowed from the argument) is canceled. */
typedef struct lconc_wait {
  conc_time deadline;
  conc_ctx *ctx;
} lconc_wait;

/* Reads argument idx: nil/none (forever), seconds, or a conc.ctx. */
CONC_API void lconc_check_wait(lua_State *L, int idx, lconc_wait *w);
/* For a method taking ([n] [, timeout | ctx]) at idx: returns where its
 * count is (read it with a default), and *wait_at where its wait is. A
 * context first is Go's order, x/sync's Acquire(ctx, n) and
 * x/time/rate's WaitN(ctx, n): the count, if any, follows it. */
CONC_API int lconc_count_wait_at(lua_State *L, int idx, int *wait_at);
/* Performs one channel operation within w. Returns CONC_OK, ECLOSED
 * (receive: closed and drained; send: closed), ETIMEDOUT or EAGAIN
 * (deadline), or the context's error. A send's message is the caller's
 * again unless CONC_OK. */
CONC_API int lconc_wait_op(conc_case *cs, const lconc_wait *w);
/* Waits within w until c, a channel nobody sends on, is closed (the
 * shape of every "until it is done" wait: join, wg:wait, once). A
 * canceled context fails it even if c is closed already (Go checks
 * ctx.Err() first); c NULL means done. CONC_OK once closed, else the
 * code as lconc_wait_op gives it (CONC_EDEADLOCK included: the caller
 * raises it, after letting go of what it holds). */
CONC_API int lconc_wait_closed(lua_State *L, const char *label, conc_chan *c,
                               const lconc_wait *w);
/*
 * The same two waits, for a light task that may park (see lconc_call):
 * `a` from lconc_wait_area; if the wait parks, k runs when it is over
 * and lconc_wait_done(L) gives its code (and the area, whose `keep` the
 * caller may use for what it must hold across the wait).
 */
typedef struct lconc_wait_call {
  conc_case cs;
  lconc_wait w;
  void *keep, *keep2;
  int64_t keep_n;
  int closed_wait;  /* lconc_wait_closed's shape */
} lconc_wait_call;
CONC_API lconc_wait_call *lconc_wait_area(lua_State *L, lconc_wait_call *local);
CONC_API int lconc_wait_op_k(lua_State *L, lconc_wait_call *a, lua_KContext ctx,
                             lua_KFunction k);
CONC_API int lconc_wait_closed_k(lua_State *L, const char *label, conc_chan *c,
                                 lconc_wait_call *a, lua_KContext ctx,
                                 lua_KFunction k);
CONC_API int lconc_wait_done(lua_State *L, lconc_wait_call **a);
/* A wait saw an owned channel fire while what it announces has not
 * happened (so it was closed by something other than its owner): prints
 * "conc: internal error: <what>" and aborts. Never returns. */
CONC_API _Noreturn void lconc_internal_error(const char *what);
/* Pushes the fail tuple for a wait that ended without success:
 * nil, "timeout" | "context canceled" | "context deadline exceeded";
 * raises for a deadlock (CONC_EDEADLOCK, the main script's wait). */
CONC_API int lconc_push_fail(lua_State *L, int rc, const char *fname);

/* ---- the codec (codec.c) ------------------------------------------------ */

/* How a failure names the value: "argument #k", "result #k", "value" (a
 * single value, as sent on a channel) or "error value" (a worker's). */
typedef enum { LCONC_ARG, LCONC_RESULT, LCONC_VALUE, LCONC_ERROR } lconc_what;

/*
 * Encodes the n values at stack index first.. into *m. Raises a Lua error
 * `fname: argument #k, field 'a.b': cannot transfer a userdata` (holding
 * no lock, having retained nothing) if a value cannot be transferred.
 * `argbase` numbers the first value (for LCONC_ARG / LCONC_RESULT).
 */
CONC_API void lconc_encode(lua_State *L, int first, int n, conc_msg *m,
                           const char *fname, lconc_what what, int argbase);
/* As lconc_encode, but returns an error message (pushed) instead of
 * raising: 0 on success, 1 with the message on the stack. */
CONC_API int lconc_encode_protected(lua_State *L, int first, int n, conc_msg *m,
                                    const char *fname, lconc_what what,
                                    int argbase);
/* Encodes conc.go's call, fn and its n - 1 arguments at first, as
 * lconc_encode does, with the Lua functions of package.preload (those
 * that can travel) ahead of them: decoding the call installs them in the
 * worker's package.preload before anything else arrives. An error names
 * `label` (the function called) and the value at first as argument
 * #argno (a method's self is not counted). */
CONC_API void lconc_encode_call(lua_State *L, int first, int n, conc_msg *m,
                                const char *label, int argno);
/* Pushes the values of *m and frees it; returns how many it pushed. A
 * module value the receiver cannot load frees *m and raises
 * `fname: value, field 'f': module 'util' cannot be loaded here: ...`
 * (`what` names the values as lconc_encode does). */
CONC_API int lconc_decode(lua_State *L, conc_msg *m, const char *fname,
                          lconc_what what);
/* As lconc_decode, without a protected call of its own, for a caller
 * that runs protected already and frees *m again after an error (a
 * second conc_msg_free is harmless: the first leaves *m empty). A worker
 * decodes its call so: a protected call costs its parked thread another
 * page of stack (B6: 3.7 KB a worker). */
CONC_API int lconc_decode_in(lua_State *L, conc_msg *m, const char *fname,
                             lconc_what what);
/* As lconc_decode, but for that error returns -1 with only the message
 * pushed (a corrupt message or running out of memory still raises). */
CONC_API int lconc_decode_protected(lua_State *L, conc_msg *m,
                                    const char *fname, lconc_what what);

/* The string of a message holding exactly one string, or NULL. */
CONC_API const char *lconc_msg_string(const conc_msg *m, size_t *len);
/* The Lua type of the first value of *m ("table", "conc object"...). */
CONC_API const char *lconc_msg_type_name(const conc_msg *m);
/* A message holding one number (what timers send). */
CONC_API void lconc_msg_from_number(conc_msg *m, lua_Number n);
/* A message holding one short string (an error text); never fails for
 * texts of up to 40 bytes (longer ones are cut). */
CONC_API void lconc_msg_from_string(conc_msg *m, const char *text);

/* Pushes tostring(value at idx); if its __tostring fails, a description
 * of its type instead. Raises only if memory runs out. */
CONC_API void lconc_tostring_safe(lua_State *L, int idx);

/* Whether the table at idx is the metatable the codec gives
 * package.loaded, unchanged (its __newindex and nothing else). */
CONC_API int lconc_codec_loaded_meta(lua_State *L, int idx);
/* Per-state setup of the codec (module lookup, scratch buffers). */
CONC_API void lconc_codec_init(lua_State *L);

/* ---- registration of the binding's parts -------------------------------- */

/* A call that runs Lua code (which may yield, and whose coroutine may
 * then be closed or dropped) marks its frame with a closer (lcloser.c):
 * pushed at the top, to-be-closed, unarmed (raises only when memory runs
 * out); armed, its closing or collection runs abandon(L, obj, data) once
 * (obj retained meanwhile), which returns 0, or 1 with an error on L's
 * top to raise. */
typedef struct lconc_closer lconc_closer;
CONC_API lconc_closer *lconc_push_closer(lua_State *L);
CONC_API void lconc_closer_arm(lconc_closer *c,
                               int (*abandon)(lua_State *L, conc_obj *obj,
                                              uint64_t data),
                               conc_obj *obj, uint64_t data);
/* Disarms c (if armed) and sets *data (if not NULL) to the data it was
 * armed with; false if abandon ran already (the call's coroutine was
 * collected, then brought back by a finalizer and resumed): the call
 * must not finish its object again. */
CONC_API bool lconc_closer_disarm(lconc_closer *c, uint64_t *data);

CONC_API void lconc_open_chan(lua_State *L);     /* lchan.c */
CONC_API void lconc_open_select(lua_State *L);   /* lselect.c */
CONC_API void lconc_open_worker(lua_State *L);   /* lworker.c */
CONC_API void lconc_open_time(lua_State *L);     /* ltime.c */
CONC_API void lconc_open_ctx(lua_State *L);      /* lctx.c */
CONC_API void lconc_open_sync(lua_State *L);     /* lsync.c */
CONC_API void lconc_open_map(lua_State *L);      /* lmap.c */
CONC_API void lconc_open_sched(lua_State *L);    /* lsched.c */
CONC_API void lconc_open_limiter(lua_State *L);  /* llimiter.c */
CONC_API void lconc_open_breaker(lua_State *L);  /* lbreaker.c */
CONC_API void lconc_open_sem(lua_State *L);      /* lsem.c */
CONC_API void lconc_open_errgroup(lua_State *L); /* lerrgroup.c */
CONC_API void lconc_open_atomic(lua_State *L);   /* latomic.c */

/* ---- semaphores (lsem.c) ------------------------------------------------ */

/* Acquires n of s within w, waiting (named `label`) through the one
 * wait path. CONC_OK when acquired; else nothing is held and the code
 * is the wait's (ETIMEDOUT, EAGAIN, the context's error, EDEADLOCK) or
 * ENOMEM. n must be in 0..size. */
CONC_API int lconc_sem_acquire(lua_State *L, const char *label, conc_sem *s,
                               int64_t n, const lconc_wait *w);
/* The same, parking a light task (see lconc_wait_closed_k); in k,
 * lconc_sem_acquire_done(L) gives the code. */
CONC_API int lconc_sem_acquire_k(lua_State *L, const char *label, conc_sem *s,
                                 int64_t n, const lconc_wait *w,
                                 lua_KContext ctx, lua_KFunction k);
CONC_API int lconc_sem_acquire_done(lua_State *L);
CONC_API void lconc_open_signal(lua_State *L);   /* lsignal.c */

/* ---- Ctrl-C and the main script (lsignal.c) ----------------------------- */

/* M is the main thread of the main script's state (the one that loaded
 * conc on the main thread): remembers it (lua.c's SIGINT handler sets
 * its hook), and tells the core how to ask whether Ctrl-C was pressed. */
CONC_API void lconc_interrupt_init(lua_State *M);
/* The main script's state is closing: no more questions to it. */
CONC_API void lconc_interrupt_close(void);
/* A blocking call of the main script begins: remembers the hook, so a
 * change to it (lua.c's handler ran) means "interrupt the wait". */
CONC_API void lconc_interrupt_arm(void);
CONC_API void lconc_open_pubsub(lua_State *L);   /* lpubsub.c */
CONC_API void lconc_open_merge(lua_State *L);    /* lmerge.c */
CONC_API void lconc_open_workpool(lua_State *L); /* lworkpool.c */

/* ---- threads (lsched.c) ------------------------------------------------- */

/* Call at the start of every binding function that may block, with the
 * name its waits show in the deadlock report and conc.workers() ("worker
 * join", "mutex lock"...; a static string): the name stays until the next
 * call, so a blocking call that did not name itself would show another's.
 * The sleep hook reads where in L the thread waits. (NULL, NULL: the
 * thread leaves its task.) */
CONC_API void lconc_blocking(lua_State *L, const char *label);
/* The thread's binding-level state while it runs a light task (the main
 * script's thread runs tasks while it waits): saved, then put back. */
typedef struct lconc_thread_save {
  lua_State *blocking;
  int main;
} lconc_thread_save;
CONC_API void lconc_thread_enter_task(lconc_thread_save *s);
CONC_API void lconc_thread_leave_task(const lconc_thread_save *s);
/* The calling thread's, as lconc_thread_enter_task saves it. */
CONC_API void lconc_thread_get(lconc_thread_save *s);

/* Pushes the table under `key` in L's task-local table, made on first
 * use (with metatable mt_mode's __mode, if not NULL): the binding's
 * caches of values decoded for the running task. A pooled state drops
 * them after each task, so no later task sees the values (nor their
 * globals); in the main state they last as long as it. */
CONC_API void lconc_push_task_local(lua_State *L, const char *key,
                                    const char *mt_mode);

/* ---- blocking calls of light tasks (worker.c) --------------------------- */

/*
 * A blocking call runs its core function through lconc_call. On a light
 * task that can yield, the function runs on a fiber; if it parks, the
 * task's state yields (lua_yieldk with k and ctx) and lconc_call does not
 * return: the thread runs other tasks, and when the call is done k runs
 * (lconc_call_result gives its code). Elsewhere (the main script, a
 * locked task, a coroutine of a task, a C function with no continuation)
 * the function runs here and blocks the thread.
 *
 * What op reads and writes must outlive a yield: take it from
 * lconc_op_area (the task's own area when the call may park, else
 * `local`, the caller's), and keep Lua values on the Lua stack.
 */
#define LCONC_OP_AREA 512
typedef int (*lconc_op_fn)(void *arg);
CONC_API void *lconc_op_area(lua_State *L, void *local, size_t size);
/* In k: the area lconc_op_area gave. */
CONC_API void *lconc_op_area_k(lua_State *L);
/* Whether a blocking call made in L now would park a task (L is a
 * light task's, where it can yield) rather than block the thread. */
CONC_API int lconc_would_park(lua_State *L);
CONC_API int lconc_call(lua_State *L, lconc_op_fn op, void *arg,
                        lua_KContext ctx, lua_KFunction k);
CONC_API int lconc_call_result(lua_State *L);
/* conc.gosched(): a task yields its thread to others (Go's Gosched). */
CONC_API int lconc_gosched(lua_State *L);

/* Raises "fname: all workers are asleep - deadlock!" and the report. */
CONC_API int lconc_raise_deadlock(lua_State *L, const char *fname);
/* Whether a wait's code says it was aborted: a deadlock, or the main
 * script's Ctrl-C. Either raises, through lconc_raise_abort. */
#define lconc_aborted(rc) ((rc) == CONC_EDEADLOCK || (rc) == CONC_EINTR)
/* Raises for an aborted wait: the deadlock report (lconc_raise_deadlock)
 * or, for CONC_EINTR, "interrupted!" as lua.c's Ctrl-C does (lsignal.c
 * takes back the hook lua.c's handler set, so it does not raise again).*/
CONC_API int lconc_raise_abort(lua_State *L, int rc, const char *fname);
/* The main script's thread starts counting as a Lua thread (for good:
 * see main_state_closing in lconc.c). */
CONC_API void lconc_main_enter(void);

/* ---- the host's hook (lhost.c) ------------------------------------------ */

/* Runs the function the host set with conc_lua_set_state_init (if any)
 * on L, a new worker's state, from the state's protected setup: if it
 * raises, says so on stderr and raises, and the state is discarded. */
CONC_API void lconc_call_state_init(lua_State *L);

#endif
