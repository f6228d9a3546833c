/*
 * lsync.c: the sync package as Lua userdata: conc.waitgroup, conc.mutex,
 * conc.rwmutex, conc.cond, conc.once. Every object is shared by reference
 * between workers. Misuse that Go panics on raises, in Go's words.
 */
#include "worker.h"

#define CHECK(L, T, type) ((T *)lconc_check_obj(L, 1, &(type)))

static void push_new(lua_State *L, void *o, const char *fname) {
  if (o == NULL) luaL_error(L, "%s: not enough memory", fname);
  lconc_push_obj(L, (conc_obj *)o);
}

/* ---- WaitGroup ----------------------------------------------------------- */

static int wg_new(lua_State *L) {
  push_new(L, conc_wg_new(), "conc.waitgroup");
  return 1;
}

static int wg_add_delta(lua_State *L, conc_wg *wg, lua_Integer delta,
                        const char *fname) {
  int rc = conc_wg_add(wg, (int64_t)delta);
  if (rc != CONC_OK) return luaL_error(L, "%s: sync: %s", fname, conc_strerror(rc));
  return 0;
}

/* wg:add([delta = 1]) */
static int wg_add(lua_State *L) {
  conc_wg *wg = CHECK(L, conc_wg, conc_wg_type);
  return wg_add_delta(L, wg, luaL_optinteger(L, 2, 1), "conc.waitgroup:add");
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
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lconc_task *t = lconc_task_new(L, 2, lua_gettop(L) - 1, 0);
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
static int wg_wait(lua_State *L) {
  conc_wg *wg = CHECK(L, conc_wg, conc_wg_type);
  lconc_wait w;
  lconc_check_wait(L, 2, &w);
  conc_chan *zero = conc_wg_wait_chan(wg);  /* NULL: the counter is zero */
  int rc = lconc_wait_closed(L, "waitgroup wait", zero, &w);
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

/* wg:count() -> the counter now (for diagnostics) */
static int wg_count(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)conc_wg_count(CHECK(L, conc_wg, conc_wg_type)));
  return 1;
}

/* ---- Mutex --------------------------------------------------------------- */

static int mu_new(lua_State *L) {
  push_new(L, conc_mutex_new(), "conc.mutex");
  return 1;
}

static int mu_lock(lua_State *L) {
  conc_mutex *m = CHECK(L, conc_mutex, conc_mutex_type);
  lconc_blocking(L, "mutex lock");
  int rc = conc_mutex_lock(m);  /* fails only aborted (no lock held) */
  if (rc != CONC_OK) return lconc_raise_abort(L, rc, "conc.mutex:lock");
  return 0;
}

static int mu_try_lock(lua_State *L) {
  lua_pushboolean(L, conc_mutex_trylock(CHECK(L, conc_mutex, conc_mutex_type)));
  return 1;
}

static int mu_unlock(lua_State *L) {
  if (conc_mutex_unlock(CHECK(L, conc_mutex, conc_mutex_type)) != CONC_OK)
    return luaL_error(L, "conc.mutex:unlock: sync: unlock of unlocked mutex");
  return 0;
}

/* ---- RWMutex ---------------------------------------------------------------- */

static int rw_new(lua_State *L) {
  push_new(L, conc_rwmutex_new(), "conc.rwmutex");
  return 1;
}

#define RW(L) CHECK(L, conc_rwmutex, conc_rwmutex_type)

static int rw_lock(lua_State *L) {
  lconc_blocking(L, "rwmutex lock");
  int rc = conc_rwmutex_lock(RW(L));  /* fails only aborted, not held */
  if (rc != CONC_OK) return lconc_raise_abort(L, rc, "conc.rwmutex:lock");
  return 0;
}

static int rw_rlock(lua_State *L) {
  lconc_blocking(L, "rwmutex rlock");
  int rc = conc_rwmutex_rlock(RW(L));
  if (rc != CONC_OK) return lconc_raise_abort(L, rc, "conc.rwmutex:rlock");
  return 0;
}

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

/* ---- Cond ------------------------------------------------------------------- */

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
  lconc_blocking(L, "cond wait");
  int rc = conc_cond_wait(COND(L));
  if (rc == CONC_ENOTLOCKED)
    return luaL_error(L, "conc.cond:wait: sync: unlock of unlocked mutex");
  if (rc != CONC_OK) return lconc_raise_abort(L, rc, "conc.cond:wait");
  return 0;
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
    conc_retain((conc_obj *)m);
    lconc_push_obj(L, (conc_obj *)m);
    return 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

/* ---- Once --------------------------------------------------------------------- */

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

/* Runs fn(...) at stack 2.. as the once's runner and publishes the
 * outcome; returns fn's results, or raises its error. Whatever happens
 * the once finishes, or every later caller would wait forever: sharing
 * runs protected, with a fixed text as the last resort. The runner
 * gets fn's values themselves, even those that cannot travel (the other
 * callers then get the error that says so). */
static int once_run(lua_State *L, conc_once *o) {
  int nargs = lua_gettop(L) - 2;
  int ok = lua_pcall(L, nargs, LUA_MULTRET, 0) == LUA_OK;
  int n = lua_gettop(L) - 1;  /* results, or the error, at 2.. */
  once_outcome out = {.failed = !ok};
  int shared = lua_checkstack(L, n + 2);
  if (shared) {
    lua_pushcfunction(L, once_share);
    lua_pushlightuserdata(L, &out);
    for (int i = 2; i <= n + 1; i++) lua_pushvalue(L, i);
    shared = lua_pcall(L, n + 1, 0, 0) == LUA_OK;
    if (!shared) lua_pop(L, 1);
  }
  if (!shared) {
    out.failed = 1;
    lconc_msg_from_string(&out.msg, "conc.once:call: not enough memory");
  }
  conc_once_finish(o, &out.msg, out.failed);
  if (!ok) return lua_error(L);
  return n;
}

/* once:call(fn, ...) -> fn's results, computed once for every caller in
 * every worker; an error in fn is raised to every caller. */
static int once_call(lua_State *L) {
  conc_once *o = CHECK(L, conc_once, conc_once_type);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  conc_chan *wait = NULL;
  int state = conc_once_begin(o, &wait);
  if (state == CONC_ONCE_RUN) return once_run(L, o);
  if (state == CONC_ONCE_WAIT) {
    lconc_wait forever = {CONC_NEVER, NULL};
    int rc = lconc_wait_closed(L, "once call", wait, &forever);
    conc_release((conc_obj *)wait);
    if (lconc_aborted(rc)) return lconc_raise_abort(L, rc, "conc.once:call");
    /* The runner's finish closes it, once the outcome is stored; had
     * something else, the outcome read below would not be there yet. */
    if (conc_once_begin(o, &wait) != CONC_ONCE_DONE)
      lconc_internal_error("a Once's wait channel closed while it runs");
  }
  conc_msg outcome;
  int failed = conc_once_outcome(o, &outcome);
  lua_settop(L, 0);
  int n = lconc_decode(L, &outcome, "conc.once:call", LCONC_RESULT);
  if (failed) return lua_error(L);
  return n;
}

/* ---- guards: scoped locks ------------------------------------------------ */

/*
 * A guard unlocks once, when its <close> variable goes out of scope (also
 * on error): Go's `defer mu.Unlock()`. It is a plain userdata of this
 * state whose user value is the locked object.
 */
typedef int (*unlock_fn)(lua_State *L);

typedef struct guard {
  unlock_fn unlock;  /* NULL once unlocked */
} guard;

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
  if (luaL_newmetatable(L, guard_name)) {  /* first guard in this state */
    lua_pushcfunction(L, guard_close);
    lua_setfield(L, -2, "__close");
  }
  lua_setmetatable(L, -2);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  return g;
}

/* mu:guard(), rw:guard(), rw:rguard(): lock, return the guard. The
 * guard is made first, unarmed: making it may fail (out of memory),
 * and a failure after locking would leave the lock held. */
static int lock_guarded(lua_State *L, lua_CFunction lock, unlock_fn unlock) {
  lua_settop(L, 1);
  guard *g = push_guard(L);  /* self, guard */
  lock(L);                   /* locks self; allocates nothing */
  g->unlock = unlock;
  return 1;
}

static int mu_guard(lua_State *L) {
  return lock_guarded(L, mu_lock, mu_unlock);
}

static int rw_guard(lua_State *L) {
  return lock_guarded(L, rw_lock, rw_unlock);
}

static int rw_rguard(lua_State *L) {
  return lock_guarded(L, rw_rlock, rw_runlock);
}

/* ---- registration ---------------------------------------------------------------- */

void lconc_open_sync(lua_State *L) {
  static const luaL_Reg wg_m[] = {
      {"add", wg_add}, {"done", wg_done}, {"wait", wg_wait},
      {"count", wg_count}, {"go", wg_go}, {NULL, NULL}};
  static const luaL_Reg mu_m[] = {
      {"lock", mu_lock}, {"unlock", mu_unlock}, {"try_lock", mu_try_lock},
      {"guard", mu_guard}, {NULL, NULL}};
  static const luaL_Reg rw_m[] = {
      {"lock", rw_lock},         {"unlock", rw_unlock},
      {"rlock", rw_rlock},       {"runlock", rw_runlock},
      {"try_lock", rw_try_lock}, {"try_rlock", rw_try_rlock},
      {"guard", rw_guard},       {"rguard", rw_rguard},
      {NULL, NULL}};
  static const luaL_Reg cond_m[] = {
      {"wait", cond_wait}, {"signal", cond_signal},
      {"broadcast", cond_broadcast}, {NULL, NULL}};
  static const luaL_Reg once_m[] = {{"call", once_call}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
      {"waitgroup", wg_new}, {"mutex", mu_new}, {"rwmutex", rw_new},
      {"cond", cond_new},    {"once", once_new}, {NULL, NULL}};
  lconc_declare(&conc_wg_type, wg_m, NULL, NULL);
  lconc_declare(&conc_mutex_type, mu_m, NULL, NULL);
  lconc_declare(&conc_rwmutex_type, rw_m, NULL, NULL);
  lconc_declare(&conc_cond_type, cond_m, NULL, cond_index);
  lconc_declare(&conc_once_type, once_m, NULL, NULL);
  luaL_setfuncs(L, funcs, 0);
}
