/*
 * lerrgroup.c: conc.errgroup, x/sync/errgroup's Group with its context,
 * as a conc object: g:go works from any worker that holds the group.
 *
 * Each function runs in a conc.go worker (its call encoded once, by
 * g:go); the worker reports its outcome to the group from its own
 * thread (task_end, the task's on_end hook), before its results would
 * be encoded: a raise, or a return of nil and a non-nil error, is a
 * failure, whose error value travels to the group by copy.
 */
#include "worker.h"
#include "lcheck.h"

#define EG(L) ((conc_errgroup *)lconc_check_obj(L, 1, &conc_errgroup_type))

/* What error(nil) reads as: still a failure, said plainly, the same in
 * wait, errors() and the context's cause. */
#define NIL_ERROR "errgroup: a function failed with a nil error"

/* conc.errgroup([parent]) -> g, ctx */
static int eg_new(lua_State *L) {
  conc_ctx *parent = NULL;
  if (!lua_isnoneornil(L, 1))
    parent = (conc_ctx *)lconc_check_obj(L, 1, &conc_ctx_type);
  conc_errgroup *g = conc_errgroup_new(parent);
  if (g == NULL) return luaL_error(L, "conc.errgroup: not enough memory");
  lconc_push_obj(L, (conc_obj *)g);
  conc_ctx *ctx = conc_errgroup_ctx(g);
  lconc_push_obj_shared(L, (conc_obj *)ctx);
  return 2;
}

/* Protected: encodes the error value at 2 into the message at 1; a
 * value that cannot travel is replaced by its text. */
static int encode_error(lua_State *L) {
  conc_msg *m = (conc_msg *)lua_touserdata(L, 1);
  if (lconc_encode_protected(L, 2, 1, m, "conc.errgroup", LCONC_VALUE, 1) == 0)
    return 0;
  lconc_tostring_safe(L, 2);
  lconc_encode(L, -1, 1, m, "conc.errgroup", LCONC_VALUE, 1);
  return 0;
}

/* The error of a task that failed: the value at idx of L, or (L NULL:
 * it never started) the task's own error. Never raises. */
static void take_error(lconc_task *t, lua_State *L, int idx, conc_msg *m) {
  if (L == NULL) {
    if (conc_msg_copy(m, &t->result) != CONC_OK)
      lconc_msg_from_string(m, "conc.errgroup: not enough memory");
    return;
  }
  if (lua_isnil(L, idx)) {
    lconc_msg_from_string(m, NIL_ERROR);
    return;
  }
  if (lua_checkstack(L, 3)) {
    lua_pushcfunction(L, encode_error);
    lua_pushlightuserdata(L, m);
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 2, 0, 0) == LUA_OK) return;
    lua_pop(L, 1);
  }
  lconc_msg_from_string(m, "conc.errgroup: not enough memory");
}

/* The task's on_end hook, run by its worker: reports the outcome to the
 * group. The group owns it, so the task's own failure is not reported
 * as never joined, and its results are dropped unencoded. */
static void task_end(lconc_task *t, lua_State *L, int ok, int base) {
  conc_errgroup *g = (conc_errgroup *)t->owner;
  atomic_store(&t->observed, 1);
  conc_msg err;
  int failed = 0;
  if (L == NULL || !ok) {
    take_error(t, L, base + 1, &err);
    failed = 1;
  } else if (lua_gettop(L) >= base + 2 && lua_isnil(L, base + 1) &&
             lua_toboolean(L, base + 2)) { /* returned nil, err: err
                                              neither nil nor false */
    take_error(t, L, base + 2, &err);
    failed = 1;
  }
  if (L) lua_settop(L, base);
  conc_errgroup_done(g, failed ? &err : NULL, 1);
}

/* Spawns t, counted in g (through the limit): a spawn the system
 * refuses is that function's failure, so wait reports it. */
static void spawn_in(lconc_task *t, conc_errgroup *g) {
  conc_retain((conc_obj *)g);
  t->owner = (conc_obj *)g;
  t->on_end = task_end;
  int rc = lconc_spawn(t);
  if (rc != CONC_OK) {
    conc_msg err;
    lconc_msg_from_string(&err, "conc.errgroup:go: cannot create thread");
    conc_errgroup_done(g, &err, 1);
  }
  conc_release(&t->hdr);
}

/* The task for fn(...) at 2..: encoded before anything is counted. */
static lconc_task *new_task(lua_State *L, const char *fname) {
  lconc_checktype(L, 2, LUA_TFUNCTION);
  lconc_task *t = lconc_task_new(L, 2, lua_gettop(L) - 1, 0, fname, 1);
  if (t == NULL) luaL_error(L, "%s: not enough memory", fname);
  return t;
}

/* g:go(fn, ...): runs fn(...) in a worker; waits first while the group
 * is at its limit */
/* The end of g:go's wait for a place; the task and the semaphore are on
 * top of the stack (light userdata: they outlive a parked wait). */
static int eg_go_end(lua_State *L, int rc) {
  conc_errgroup *g = EG(L);
  lconc_task *t = (lconc_task *)lua_touserdata(L, -2);
  conc_release((conc_obj *)lua_touserdata(L, -1));
  lua_pop(L, 2);
  if (rc != CONC_OK) {  /* nothing held: uncount, then raise */
    conc_errgroup_done(g, NULL, 0);
    lconc_task_discard(t);
    if (lconc_aborted(rc))  /* Ctrl-C or a deadlock */
      return lconc_raise_abort(L, rc, "conc.errgroup:go");
    return luaL_error(L, "conc.errgroup:go: %s", conc_strerror(rc));
  }
  spawn_in(t, g);
  return 0;
}

static int eg_go_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return eg_go_end(L, lconc_sem_acquire_done(L));
}

static int eg_go(lua_State *L) {
  conc_errgroup *g = EG(L);
  lconc_task *t = new_task(L, "conc.errgroup:go");
  conc_sem *sem;
  conc_errgroup_begin(g, &sem);
  if (sem) {
    lconc_wait forever = {CONC_NEVER, NULL};
    /* Pushing allocates nothing (light userdata, stack room checked). */
    lconc_checkstack(L, 2, NULL);
    lua_pushlightuserdata(L, t);
    lua_pushlightuserdata(L, sem);
    return eg_go_end(L, lconc_sem_acquire_k(L, "errgroup go", sem, 1, &forever,
                                            0, eg_go_k));
  }
  spawn_in(t, g);
  return 0;
}

/* g:try_go(fn, ...) -> false if the group is at its limit, else true
 * (fn(...) runs in a worker) */
static int eg_try_go(lua_State *L) {
  conc_errgroup *g = EG(L);
  lconc_task *t = new_task(L, "conc.errgroup:try_go");
  if (!conc_errgroup_try_begin(g)) {
    lconc_task_discard(t);
    lua_pushboolean(L, 0);
    return 1;
  }
  spawn_in(t, g);
  lua_pushboolean(L, 1);
  return 1;
}

/* g:set_limit(n): at most n functions at once (negative: no limit);
 * raises while functions are running */
static int eg_set_limit(lua_State *L) {
  conc_errgroup *g = EG(L);
  lua_Integer n = lconc_checkinteger(L, 2);
  int rc = conc_errgroup_set_limit(g, (int64_t)n);
  if (rc == CONC_EBUSY)
    return luaL_error(L,
                      "conc.errgroup:set_limit: errgroup: modify limit "
                      "while %I workers in the group are still active",
                      (lua_Integer)conc_errgroup_running(g));
  if (rc != CONC_OK)
    return luaL_error(L, "conc.errgroup:set_limit: not enough memory");
  return 0;
}

/* g:wait([timeout | ctx]) -> true | nil, err (the first error). When
 * every function has ended it cancels the group's context; a wait that
 * times out (nil, "timeout") leaves the group running. */
static int eg_wait_end(lua_State *L, lconc_wait_call *a, int rc) {
  conc_errgroup *g = EG(L);
  conc_chan *zero = (conc_chan *)a->keep;
  if (zero) conc_release((conc_obj *)zero);
  if (rc != CONC_OK) return lconc_push_fail(L, rc, "conc.errgroup:wait");
  conc_msg first;
  if (!conc_errgroup_finish(g, &first)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_settop(L, 0);
  lua_pushnil(L);
  lconc_decode_protected(L, &first, "conc.errgroup:wait", LCONC_VALUE);
  lua_settop(L, 2);  /* a message that cannot arrive is the error */
  if (lua_isnil(L, 2)) {  /* a failure's error is never nil */
    lua_pushliteral(L, NIL_ERROR);
    lua_replace(L, 2);
  }
  return 2;
}

static int eg_wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  lconc_wait_call *a;
  int rc = lconc_wait_done(L, &a);
  return eg_wait_end(L, a, rc);
}

static int eg_wait(lua_State *L) {
  conc_errgroup *g = EG(L);
  lconc_wait_call local, *a = lconc_wait_area(L, &local);
  lconc_check_wait(L, 2, &a->w);
  conc_chan *zero = conc_errgroup_wait_chan(g);
  a->keep = zero;
  int rc = lconc_wait_closed_k(L, "errgroup wait", zero, a, 0, eg_wait_k);
  return eg_wait_end(L, a, rc);
}

/* g:errors() -> a list of every failure's error so far, the first one
 * (wait's) first */
static int eg_errors(lua_State *L) {
  conc_errgroup *g = EG(L);
  size_t n = conc_errgroup_nerrors(g);
  lua_createtable(L, (int)n, 0);
  conc_msg m;
  for (size_t i = 0; conc_errgroup_error(g, i, &m); i++) {
    int top = lua_gettop(L);
    lconc_decode_protected(L, &m, "conc.errgroup:errors", LCONC_VALUE);
    lua_settop(L, top + 1);
    lua_rawseti(L, top, (lua_Integer)i + 1);
  }
  return 1;
}

/* g:limit() -> the limit, or -1 */
static int eg_limit(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)conc_errgroup_limit(EG(L)));
  return 1;
}

/* g:running() -> functions started (or waiting to) and not ended */
static int eg_running(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)conc_errgroup_running(EG(L)));
  return 1;
}

void lconc_open_errgroup(lua_State *L) {
  static const luaL_Reg methods[] = {{"go", eg_go},
                                     {"try_go", eg_try_go},
                                     {"set_limit", eg_set_limit},
                                     {"wait", eg_wait},
                                     {"errors", eg_errors},
                                     {"limit", eg_limit},
                                     {"running", eg_running},
                                     {NULL, NULL}};
  lconc_declare(&conc_errgroup_type, methods, NULL, NULL);
  lua_pushcfunction(L, eg_new);
  lua_setfield(L, -2, "errgroup");
}
