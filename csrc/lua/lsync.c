/*
 * lsync.c: the sync package as Lua userdata: conc.waitgroup, conc.mutex,
 * conc.rwmutex, conc.cond, conc.once. Every object is shared by reference
 * between workers. Misuse that Go panics on raises, in Go's words.
 */
#include "lcheck.h"
#include "worker.h"

#define CHECK(L, T, type) ((T *)lconc_check_obj(L, 1, &(type)))

static void push_new(lua_State *L, void *o, const char *fname) {
  if (o == NULL) luaL_error(L, "%s: not enough memory", fname);
  lconc_push_obj(L, (conc_obj *)o);
}

/* ---- WaitGroup ---------------------------------------------------------- */

static int wg_new(lua_State *L) {
  push_new(L, conc_wg_new(), "conc.waitgroup");
  return 1;
}

static int wg_add_delta(lua_State *L, conc_wg *wg, lua_Integer delta,
                        const char *fname) {
  int rc = conc_wg_add(wg, (int64_t)delta);
  if (rc != CONC_OK)
    return luaL_error(L, "%s: sync: %s", fname, conc_strerror(rc));
  return 0;
}

/* wg:add([delta = 1]) */
static int wg_add(lua_State *L) {
  conc_wg *wg = CHECK(L, conc_wg, conc_wg_type);
  return wg_add_delta(L, wg, lconc_optinteger(L, 2, 1), "conc.waitgroup:add");
}

/* wg:done() */
static int wg_done(lua_State *L) {
  conc_wg *wg = CHECK(L, conc_wg, conc_wg_type);
  return wg_add_delta(L, wg, -1, "conc.waitgroup:done");
}

/* A wg:go worker's on_end hook: wg:done() once fn has ended. */
static void wg_task_end(lconc_task *t, lua_State *L, int ok, int base) {
  (void)L, (void)ok, (void)base;
  conc_wg_add((conc_wg *)t->owner, -1);
}

/* wg:go(fn, ...) -> handle (Go 1.25's WaitGroup.Go): add(1), then
 * fn(...) in a worker, done() when it returns or raises. A spawn the
 * system refuses returns conc.go's fail tuple, with nothing added. */
static int wg_go(lua_State *L) {
  conc_wg *wg = CHECK(L, conc_wg, conc_wg_type);
  lconc_checktype(L, 2, LUA_TFUNCTION);
  lconc_task *t = lconc_task_new(L, 2, lua_gettop(L) - 1, 0,
                                 "conc.waitgroup:go", 1);
  if (t == NULL) return luaL_error(L, "conc.waitgroup:go: not enough memory");
  int rc = conc_wg_add(wg, 1);
  if (rc != CONC_OK) {
    lconc_task_discard(t);
    return luaL_error(L, "conc.waitgroup:go: sync: %s", conc_strerror(rc));
  }
  conc_retain((conc_obj *)wg);
  t->owner = (conc_obj *)wg;
  t->on_end = wg_task_end;
  rc = lconc_spawn(t);
  if (rc != CONC_OK) {
    conc_wg_add(wg, -1);
    conc_release(&t->hdr);
    lua_pushnil(L);
    lua_pushfstring(L, "conc.waitgroup:go: %s", conc_strerror(rc));
    lua_pushliteral(L, "spawn");
    return 3;
  }
  lconc_push_obj(L, &t->hdr);
  return 1;
}

/* wg:wait([timeout | ctx]) -> true | nil, reason */
static int wg_wait_end(lua_State *L, lconc_wait_call *a, int rc) {
  conc_wg *wg = CHECK(L, conc_wg, conc_wg_type);
  conc_chan *zero = (conc_chan *)a->keep;
  /* The counter's reaching zero closes `zero`, and nothing else can (it
   * is receive-only); had something else, wait would return true with
   * work still counted. (The counter itself may be above zero again by
   * now: a new round of add.) */
  if (zero && rc == CONC_OK && !conc_wg_released(wg, zero))
    lconc_internal_error("a WaitGroup's wait channel closed before zero");
  if (zero) conc_release((conc_obj *)zero);
  if (rc != CONC_OK) return lconc_push_fail(L, rc, "conc.waitgroup:wait");
  lua_pushboolean(L, 1);
  return 1;
}

static int wg_wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  lconc_wait_call *a;
  int rc = lconc_wait_done(L, &a);
  return wg_wait_end(L, a, rc);
}

static int wg_wait(lua_State *L) {
  conc_wg *wg = CHECK(L, conc_wg, conc_wg_type);
  lconc_wait_call local, *a = lconc_wait_area(L, &local);
  lconc_check_wait(L, 2, &a->w);
  conc_chan *zero = conc_wg_wait_chan(wg);  /* NULL: the counter is zero */
  a->keep = zero;
  int rc = lconc_wait_closed_k(L, "waitgroup wait", zero, a, 0, wg_wait_k);
  return wg_wait_end(L, a, rc);
}

/* wg:count() -> the counter now (for diagnostics) */
static int wg_count(lua_State *L) {
  lua_pushinteger(L,
                  (lua_Integer)conc_wg_count(CHECK(L, conc_wg, conc_wg_type)));
  return 1;
}

/* ---- Mutex -------------------------------------------------------------- */

static int mu_new(lua_State *L) {
  push_new(L, conc_mutex_new(), "conc.mutex");
  return 1;
}

/* A lock (or a cond wait) through lconc_call: on a task it may park. A
 * guard's lock arms the guard (at index 2) once it holds. */
typedef int (*unlock_fn)(lua_State *L);

typedef struct lock_call {
  int (*lock)(void *obj);
  void *obj;
  unlock_fn arm;
  const char *fname;
} lock_call;

static int lock_op(void *p) {
  lock_call *a = (lock_call *)p;
  return a->lock(a->obj);
}

typedef struct guard guard;
static void arm_guard(lua_State *L, unlock_fn unlock);

static int lock_end(lua_State *L, const lock_call *a, int rc) {
  if (rc == CONC_ENOTLOCKED)
    return luaL_error(L, "%s: sync: unlock of unlocked mutex", a->fname);
  /* fails only aborted (no lock held; a cond wait holds it again) */
  if (rc != CONC_OK) return lconc_raise_abort(L, rc, a->fname);
  if (a->arm == NULL) return 0;
  arm_guard(L, a->arm);
  return 1;
}

static int lock_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return lock_end(L, (lock_call *)lconc_op_area_k(L), lconc_call_result(L));
}

/* try: the lock taken at once, or 0 (NULL: none); then nothing of the
 * wait's machinery runs (Go's fast path). */
static int do_lock(lua_State *L, const char *label, const char *fname,
                   int (*lock)(void *), int (*try)(void *), void *obj,
                   unlock_fn arm) {
  lock_call local;
  if (try != NULL && try(obj)) {
    local.arm = arm;
    local.fname = fname;
    return lock_end(L, &local, CONC_OK);
  }
  lock_call *a = (lock_call *)lconc_op_area(L, &local, sizeof local);
  a->lock = lock;
  a->obj = obj;
  a->arm = arm;
  a->fname = fname;
  lconc_blocking(L, label);
  return lock_end(L, a, lconc_call(L, lock_op, a, 0, lock_k));
}

static int op_mutex_lock(void *o) { return conc_mutex_lock((conc_mutex *)o); }
static int op_rw_lock(void *o) { return conc_rwmutex_lock((conc_rwmutex *)o); }
static int op_rw_rlock(void *o) {
  return conc_rwmutex_rlock((conc_rwmutex *)o);
}
static int op_cond_wait(void *o) { return conc_cond_wait((conc_cond *)o); }
static int try_mutex(void *o) { return conc_mutex_trylock((conc_mutex *)o); }
static int try_rw_lock(void *o) {
  return conc_rwmutex_trylock((conc_rwmutex *)o);
}
static int try_rw_rlock(void *o) {
  return conc_rwmutex_tryrlock((conc_rwmutex *)o);
}

static int mu_lock_with(lua_State *L, unlock_fn arm) {
  /* (a guard's errors name the guard, the function called) */
  return do_lock(L, "mutex lock", arm ? "conc.mutex:guard" : "conc.mutex:lock",
                 op_mutex_lock, try_mutex,
                 CHECK(L, conc_mutex, conc_mutex_type), arm);
}

static int mu_lock(lua_State *L) { return mu_lock_with(L, NULL); }

static int mu_try_lock(lua_State *L) {
  lua_pushboolean(L, conc_mutex_trylock(CHECK(L, conc_mutex, conc_mutex_type)));
  return 1;
}

static int mu_unlock(lua_State *L) {
  if (conc_mutex_unlock(CHECK(L, conc_mutex, conc_mutex_type)) != CONC_OK)
    return luaL_error(L, "conc.mutex:unlock: sync: unlock of unlocked mutex");
  return 0;
}

/* ---- RWMutex ------------------------------------------------------------ */

static int rw_new(lua_State *L) {
  push_new(L, conc_rwmutex_new(), "conc.rwmutex");
  return 1;
}

#define RW(L) CHECK(L, conc_rwmutex, conc_rwmutex_type)

static int rw_lock_with(lua_State *L, unlock_fn arm) {
  return do_lock(L, "rwmutex lock",
                 arm ? "conc.rwmutex:guard" : "conc.rwmutex:lock", op_rw_lock,
                 try_rw_lock, RW(L), arm);
}

static int rw_rlock_with(lua_State *L, unlock_fn arm) {
  return do_lock(L, "rwmutex rlock",
                 arm ? "conc.rwmutex:rguard" : "conc.rwmutex:rlock",
                 op_rw_rlock, try_rw_rlock, RW(L), arm);
}

static int rw_lock(lua_State *L) { return rw_lock_with(L, NULL); }
static int rw_rlock(lua_State *L) { return rw_rlock_with(L, NULL); }

static int rw_try_lock(lua_State *L) {
  lua_pushboolean(L, conc_rwmutex_trylock(RW(L)));
  return 1;
}

static int rw_try_rlock(lua_State *L) {
  lua_pushboolean(L, conc_rwmutex_tryrlock(RW(L)));
  return 1;
}

static int rw_unlock(lua_State *L) {
  if (conc_rwmutex_unlock(RW(L)) != CONC_OK)
    return luaL_error(L,
                      "conc.rwmutex:unlock: sync: Unlock of unlocked RWMutex");
  return 0;
}

static int rw_runlock(lua_State *L) {
  if (conc_rwmutex_runlock(RW(L)) != CONC_OK)
    return luaL_error(
        L, "conc.rwmutex:runlock: sync: RUnlock of unlocked RWMutex");
  return 0;
}

/* ---- Cond --------------------------------------------------------------- */

/* conc.cond(mutex) */
static int cond_new(lua_State *L) {
  conc_mutex *m = (conc_mutex *)lconc_check_obj(L, 1, &conc_mutex_type);
  push_new(L, conc_cond_new(m), "conc.cond");
  return 1;
}

#define COND(L) CHECK(L, conc_cond, conc_cond_type)

/* c:wait(): unlocks c.L, waits for signal or broadcast, locks c.L */
/* c:wait(): an interrupted wait (Ctrl-C, a deadlock in "error" mode)
 * raises holding the mutex again, as Wait always returns holding it. */
static int cond_wait(lua_State *L) {
  return do_lock(L, "cond wait", "conc.cond:wait", op_cond_wait, NULL, COND(L),
                 NULL);
}

static int cond_signal(lua_State *L) {
  conc_cond_signal(COND(L));
  return 0;
}

static int cond_broadcast(lua_State *L) {
  conc_cond_broadcast(COND(L));
  return 0;
}

/* __index: c.L is the mutex; everything else is a method. */
static int cond_index(lua_State *L) {
  conc_cond *c = COND(L);
  const char *k = lua_tostring(L, 2);
  if (k && k[0] == 'L' && k[1] == '\0') {
    conc_mutex *m = conc_cond_mutex(c);
    lconc_push_obj_shared(L, (conc_obj *)m);
    return 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

/* ---- Once --------------------------------------------------------------- */

static int once_new(lua_State *L) {
  push_new(L, conc_once_new(), "conc.once");
  return 1;
}

/* What the runner shares with the other callers. */
typedef struct once_outcome {
  conc_msg msg;
  int failed;
} once_outcome;

/* Protected: encodes the values at 2.. (fn's results, or its error if
 * out->failed) for the other callers. Values that cannot travel make the
 * outcome an error naming them (an error value that cannot travel: its
 * text). Raises only when memory runs out. */
static int once_share(lua_State *L) {
  once_outcome *out = (once_outcome *)lua_touserdata(L, 1);
  int n = lua_gettop(L) - 1;
  if (lconc_encode_protected(L, 2, n, &out->msg, "conc.once:call",
                             out->failed ? LCONC_VALUE : LCONC_RESULT, 1) == 0)
    return 0;
  if (out->failed) lconc_tostring_safe(L, 2);  /* the error's own text */
  out->failed = 1;
  lconc_encode(L, -1, 1, &out->msg, "conc.once:call", LCONC_VALUE, 1);
  return 0;
}

/* Runs fn(...) as the once's runner and publishes the outcome; returns
 * fn's results, or raises its error. Whatever happens the once finishes,
 * or every later caller would wait forever: sharing runs protected, with
 * a fixed text as the last resort, and a closer (lcloser.c) at ctx + 1
 * finishes it if fn never returns (its coroutine closed or dropped while
 * fn yielded). fn's results (or its error) are above the closer. The
 * runner gets fn's values themselves, even those that cannot travel (the
 * other callers then get the error that says so). */
static int once_ran(lua_State *L, int status, lua_KContext ctx) {
  conc_once *o = CHECK(L, conc_once, conc_once_type);
  int closer = (int)ctx + 1, base = closer + 1;
  int ok = status == LUA_OK || status == LUA_YIELD;
  int n = lua_gettop(L) - closer; /* results, or the error, at base.. */
  once_outcome out = {.failed = !ok};
  int shared = lua_checkstack(L, n + 2);
  if (shared) {
    lua_pushcfunction(L, once_share);
    lua_pushlightuserdata(L, &out);
    for (int i = base; i < base + n; i++) lua_pushvalue(L, i);
    shared = lua_pcall(L, n + 1, 0, 0) == LUA_OK;
    if (!shared) lua_pop(L, 1);
  }
  if (!shared) {
    out.failed = 1;
    lconc_msg_from_string(&out.msg, "conc.once:call: not enough memory");
  }
  if (lconc_closer_disarm((lconc_closer *)lua_touserdata(L, closer), NULL))
    conc_once_finish(o, &out.msg, out.failed);
  else conc_msg_free(&out.msg); /* done already, as abandoned */
  if (!ok) return lua_error(L);
  return n;
}

/* A runner whose fn never returned: the once is done, with an error for
 * every later caller (Go: f that exits by runtime.Goexit). */
static int once_abandon(lua_State *L, conc_obj *obj, uint64_t data) {
  (void)L;
  (void)data;
  conc_msg m;
  lconc_msg_from_string(&m,
                        "conc.once:call: fn did not return (its "
                        "coroutine was closed or collected)");
  conc_once_finish((conc_once *)obj, &m, 1);
  return 0;
}

/* fn runs with a continuation: a light task running it may park in it
 * (the once object is kept alive by the userdata at 1). Above the once,
 * fn and its arguments up to top, then the closer, then copies of them
 * for the call (a to-be-closed slot must stay where it is). */
static int once_run(lua_State *L, conc_once *o, int top) {
  lconc_closer_arm((lconc_closer *)lua_touserdata(L, top + 1), once_abandon,
                   (conc_obj *)o, 0);
  for (int i = 2; i <= top; i++) lua_pushvalue(L, i);
  int status = lua_pcallk(L, top - 2, LUA_MULTRET, 0, (lua_KContext)top,
                          once_ran);
  return once_ran(L, status, (lua_KContext)top);
}

/* The outcome, for every caller but the runner. */
static int once_outcome_push(lua_State *L) {
  conc_msg outcome;
  int failed = conc_once_outcome(CHECK(L, conc_once, conc_once_type), &outcome);
  lua_settop(L, 0);
  int n = lconc_decode(L, &outcome, "conc.once:call", LCONC_RESULT);
  if (failed) return lua_error(L);
  return n;
}

static int once_wait_end(lua_State *L, lconc_wait_call *a, int rc) {
  conc_once *o = CHECK(L, conc_once, conc_once_type);
  conc_release((conc_obj *)a->keep);
  if (lconc_aborted(rc)) return lconc_raise_abort(L, rc, "conc.once:call");
  /* The runner's finish closes it, once the outcome is stored; had
   * something else, the outcome read below would not be there yet. */
  conc_chan *wait = NULL;
  if (conc_once_begin(o, &wait) != CONC_ONCE_DONE)
    lconc_internal_error("a Once's wait channel closed while it runs");
  return once_outcome_push(L);
}

static int once_wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  lconc_wait_call *a;
  int rc = lconc_wait_done(L, &a);
  return once_wait_end(L, a, rc);
}

/* once:call(fn, ...) -> fn's results, computed once for every caller in
 * every worker; an error in fn is raised to every caller. */
static int once_call(lua_State *L) {
  conc_once *o = CHECK(L, conc_once, conc_once_type);
  lconc_checktype(L, 2, LUA_TFUNCTION);
  conc_chan *wait = NULL;
  /* What running fn needs, before the once is ours to finish: nothing
   * may raise between its begin and the closer's arming. */
  int top = lua_gettop(L);
  lconc_checkstack(L, top + 1, "conc.once:call: too many arguments");
  lconc_push_closer(L);
  int state = conc_once_begin(o, &wait);
  if (state == CONC_ONCE_RUN) return once_run(L, o, top);
  lua_settop(L, top); /* the closer, unarmed */
  if (state == CONC_ONCE_WAIT) {
    lconc_wait_call local, *a = lconc_wait_area(L, &local);
    a->w.deadline = CONC_NEVER;
    a->w.ctx = NULL;
    a->keep = wait;
    int rc = lconc_wait_closed_k(L, "once call", wait, a, 0, once_wait_k);
    return once_wait_end(L, a, rc);
  }
  return once_outcome_push(L);
}

/* ---- guards: scoped locks ----------------------------------------------- */

/*
 * A guard unlocks once, when its <close> variable goes out of scope (also
 * on error): Go's `defer mu.Unlock()`. It is a plain userdata of this
 * state whose user value is the locked object.
 */
struct guard {
  unlock_fn unlock;  /* NULL once unlocked */
};

static const char guard_name[] = "conc.guard";

static int guard_close(lua_State *L) {
  guard *g = (guard *)luaL_checkudata(L, 1, guard_name);
  unlock_fn unlock = g->unlock;
  if (unlock == NULL) return 0;
  g->unlock = NULL;
  lua_getiuservalue(L, 1, 1);  /* the locked object */
  lua_replace(L, 1);           /* becomes unlock's argument 1 */
  lua_settop(L, 1);
  return unlock(L);
}

/* Pushes an unarmed guard of the object at 1 (it unlocks nothing until
 * its `unlock` is set). */
static guard *push_guard(lua_State *L) {
  guard *g = (guard *)lua_newuserdatauv(L, sizeof *g, 1);
  g->unlock = NULL;
  static const luaL_Reg meta[] = {{"__close", guard_close}, {NULL, NULL}};
  lconc_push_meta(L, guard_name, meta);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  return g;
}

/* The guard at index 2 holds its lock now: it unlocks at scope end. */
static void arm_guard(lua_State *L, unlock_fn unlock) {
  guard *g = (guard *)luaL_checkudata(L, 2, guard_name);
  g->unlock = unlock;
  lua_settop(L, 2);
}

/* mu:guard(), rw:guard(), rw:rguard(): lock, return the guard. The
 * guard is made first, unarmed: making it may fail (out of memory),
 * and a failure after locking would leave the lock held. */
static int mu_guard(lua_State *L) {
  lua_settop(L, 1);
  push_guard(L);  /* self, guard */
  return mu_lock_with(L, mu_unlock);
}

static int rw_guard(lua_State *L) {
  lua_settop(L, 1);
  push_guard(L);
  return rw_lock_with(L, rw_unlock);
}

static int rw_rguard(lua_State *L) {
  lua_settop(L, 1);
  push_guard(L);
  return rw_rlock_with(L, rw_runlock);
}

/* ---- registration ------------------------------------------------------- */

void lconc_open_sync(lua_State *L) {
  static const luaL_Reg wg_m[] = {{"add", wg_add},   {"done", wg_done},
                                  {"wait", wg_wait}, {"count", wg_count},
                                  {"go", wg_go},     {NULL, NULL}};
  static const luaL_Reg mu_m[] = {{"lock", mu_lock},
                                  {"unlock", mu_unlock},
                                  {"try_lock", mu_try_lock},
                                  {"guard", mu_guard},
                                  {NULL, NULL}};
  static const luaL_Reg rw_m[] = {{"lock", rw_lock},
                                  {"unlock", rw_unlock},
                                  {"rlock", rw_rlock},
                                  {"runlock", rw_runlock},
                                  {"try_lock", rw_try_lock},
                                  {"try_rlock", rw_try_rlock},
                                  {"guard", rw_guard},
                                  {"rguard", rw_rguard},
                                  {NULL, NULL}};
  static const luaL_Reg cond_m[] = {{"wait", cond_wait},
                                    {"signal", cond_signal},
                                    {"broadcast", cond_broadcast},
                                    {NULL, NULL}};
  static const luaL_Reg once_m[] = {{"call", once_call}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"waitgroup", wg_new}, {"mutex", mu_new},
                                   {"rwmutex", rw_new},   {"cond", cond_new},
                                   {"once", once_new},    {NULL, NULL}};
  lconc_declare(&conc_wg_type, wg_m, NULL, NULL);
  lconc_declare(&conc_mutex_type, mu_m, NULL, NULL);
  lconc_declare(&conc_rwmutex_type, rw_m, NULL, NULL);
  lconc_declare(&conc_cond_type, cond_m, NULL, cond_index);
  lconc_declare(&conc_once_type, once_m, NULL, NULL);
  luaL_setfuncs(L, funcs, 0);
}
