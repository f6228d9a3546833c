/*
 * lworkpool.c: conc.workpool (the chapter's generic worker pool, as a
 * shared object) and conc.stage (a pipeline stage: a channel of fn(v)
 * for each v of its input). Both are a conc_workpool (workpool.c) plus
 * n conc.go workers running flow_worker below.
 *
 * The user's function is encoded once, with the worker's loop and the
 * pool, into one call message; each worker's call is a copy of it, which
 * shares the encoding (msg.c). The loop is a C function of this module,
 * so it travels by name. The channels jobs and results go through are
 * plain channels the pool keeps; users get receive-only views of them.
 */
#include <stdbool.h>
#include <string.h>
#include "lcheck.h"
#include "worker.h"

enum { MODE_POOL = 0, MODE_STAGE = 1 };

static conc_workpool *checkpool(lua_State *L, int idx) {
  return (conc_workpool *)lconc_check_obj(L, idx, &conc_workpool_type);
}

/* ---- the workers ------------------------------------------------------- */

/* Builds a pool's result for the job at `job` from the protected call of
 * fn on it (status; its two results, or the error, on top), as {job =,
 * ok = true, value =} or {job =, ok = false, err =}. A function fails by
 * raising or by returning nil, err with err neither nil nor false (Go's
 * non-nil error, as the breaker and errgroup have it). */
static void pool_result(lua_State *L, int status, int job) {
  bool ok = status == LUA_OK || status == LUA_YIELD;
  if (!ok) lua_pushnil(L);                   /* error, nil */
  bool failed = !ok || (lua_isnil(L, -2) && lua_toboolean(L, -1));
  /* The value (-2), the error raised (-2), or the err of nil, err (-1). */
  int v = lua_absindex(L, ok && failed ? -1 : -2);
  lua_createtable(L, 0, 3);                  /* r1, r2, t */
  lua_pushvalue(L, job);
  lua_setfield(L, -2, "job");
  lua_pushboolean(L, !failed);
  lua_setfield(L, -2, "ok");
  lua_pushvalue(L, v);
  lua_setfield(L, -2, failed ? "err" : "value");
  lua_insert(L, -3);                         /* t, r1, r2 */
  lua_pop(L, 2);
}

/* Encodes the value at the top into *m; a stage raises if it cannot
 * travel. A pool's result always travels, losing as little as it must:
 * a job that cannot travel back (fn consumed it: a socket it served)
 * leaves `job` out and says why in `job_error`; then a value that cannot
 * travel makes the result a failure whose `err` says why. */
static void encode_result(lua_State *L, int mode, conc_msg *m, int job) {
  int top = lua_gettop(L);
  if (mode == MODE_STAGE) {
    lconc_encode(L, top, 1, m, "conc.stage", LCONC_RESULT, 1);
    return;
  }
  if (lconc_encode_protected(L, top, 1, m, "conc.workpool", LCONC_VALUE, 1) ==
      0)
    return;
  lua_pop(L, 1);
  conc_msg probe;
  if (lconc_encode_protected(L, job, 1, &probe, "conc.workpool: job",
                             LCONC_VALUE, 1) == 0) {
    conc_msg_free(&probe);
  } else {                                   /* t, why */
    lua_setfield(L, top, "job_error");
    lua_pushnil(L);
    lua_setfield(L, top, "job");
    if (lconc_encode_protected(L, top, 1, m, "conc.workpool", LCONC_VALUE, 1) ==
        0)
      return;
    lua_pop(L, 1);
  }
  lua_getfield(L, top, "ok");                /* t, ok */
  const char *field = lua_toboolean(L, -1) ? "value" : "err";
  lua_pop(L, 1);
  if (lconc_encode_protected(L, top, 1, m, "conc.workpool", LCONC_VALUE, 1) !=
      0) {      /* t, why */
    if (field[0] == 'e') { /* the error's own text first, as join gives it */
      lua_getfield(L, top, "err");
      lconc_tostring_safe(L, -1);            /* t, why, err, text */
      lua_pushfstring(L, "%s (%s)", lua_tostring(L, -1), lua_tostring(L, -3));
      lua_replace(L, -4);
      lua_pop(L, 2);                         /* t, text (why) */
    }
    lua_pushnil(L);
    lua_setfield(L, top, field);
    lua_pushboolean(L, 0);
    lua_setfield(L, top, "ok");
    lua_setfield(L, top, "err");
  }
  lconc_encode(L, top, 1, m, "conc.workpool", LCONC_VALUE, 1);
  lua_settop(L, top);
}

/*
 * The loop of a pool's or a stage's worker, protected: 1 the pool, 2 fn,
 * 3 the mode; the job at 4. Written as steps with continuations (the
 * receive, fn's call, the send), so that a light task running it parks
 * in any of them, fn's own blocking calls included, instead of holding
 * its thread. Each step returns false when the loop ends.
 */
static int mode_of(lua_State *L) { return (int)lua_tointeger(L, 3); }

static bool after_send(lconc_wait_call *a, int rc) {
  if (rc == CONC_OK) return true;
  conc_msg_free(&a->cs.msg);  /* ctx ended */
  return false;
}

static int send_k(lua_State *L, int status, lua_KContext ctx);

/* Sends the result on top (the job at 4). */
static bool send_result(lua_State *L) {
  int mode = mode_of(L);
  conc_workpool *p = checkpool(L, 1);
  lconc_wait_call local, *a = lconc_wait_area(L, &local);
  a->cs = (conc_case){conc_workpool_results(p), CONC_SEND, {0}, 0};
  a->w = (lconc_wait){CONC_NEVER, conc_workpool_ctx(p)};
  encode_result(L, mode, &a->cs.msg, 4);
  lconc_blocking(L, mode == MODE_POOL ? "workpool result" : "stage send");
  return after_send(a, lconc_wait_op_k(L, a, 0, send_k));
}

static bool after_pool_call(lua_State *L, int status) {
  pool_result(L, status, 4);
  return send_result(L);
}

static bool after_stage_call(lua_State *L) {
  if (lua_isnil(L, -1)) return true;  /* nil: nothing to pass on */
  return send_result(L);
}

static int loop_from_recv(lua_State *L);

static int pool_call_k(lua_State *L, int status, lua_KContext ctx) {
  (void)ctx;
  return after_pool_call(L, status) ? loop_from_recv(L) : 0;
}

static int stage_call_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return after_stage_call(L) ? loop_from_recv(L) : 0;
}

static bool after_recv(lua_State *L, lconc_wait_call *a, int rc) {
  if (rc != CONC_OK) return false;  /* closed and drained, or ctx ended */
  if (mode_of(L) == MODE_STAGE) {
    lconc_decode(L, &a->cs.msg, "conc.stage", LCONC_VALUE);  /* 4: job */
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 4);
    lua_callk(L, 1, 1, 0, stage_call_k);
    return after_stage_call(L);
  }
  /* A job that cannot arrive (a module this worker cannot load) is a
   * failed result too: never fatal to the worker. */
  if (lconc_decode_protected(L, &a->cs.msg, "conc.workpool", LCONC_VALUE) < 0) {
    lua_createtable(L, 0, 2);            /* why, t */
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "ok");
    lua_insert(L, -2);
    lua_setfield(L, -2, "err");
    lua_pushnil(L);
    lua_insert(L, 4);                    /* 4: no job; t */
    return send_result(L);
  }
  lua_pushvalue(L, 2);                   /* 4: the job */
  lua_pushvalue(L, 4);
  int status = lua_pcallk(L, 1, 2, 0, 0, pool_call_k);
  return after_pool_call(L, status);
}

static int recv_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  lconc_wait_call *a;
  int rc = lconc_wait_done(L, &a);
  return after_recv(L, a, rc) ? loop_from_recv(L) : 0;
}

static int send_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  lconc_wait_call *a;
  int rc = lconc_wait_done(L, &a);
  return after_send(a, rc) ? loop_from_recv(L) : 0;
}

static int loop_from_recv(lua_State *L) {
  for (;;) {
    lua_settop(L, 3);
    conc_workpool *p = checkpool(L, 1);
    lconc_wait_call local, *a = lconc_wait_area(L, &local);
    a->cs = (conc_case){conc_workpool_jobs(p), CONC_RECV, {0}, 0};
    a->w = (lconc_wait){CONC_NEVER, conc_workpool_ctx(p)};
    lconc_blocking(L,
                   mode_of(L) == MODE_POOL ? "workpool job" : "stage receive");
    if (!after_recv(L, a, lconc_wait_op_k(L, a, 0, recv_k))) return 0;
  }
}

static int worker_loop(lua_State *L) {
  checkpool(L, 1);
  return loop_from_recv(L);
}

static int flow_k(lua_State *L, int status, lua_KContext ctx) {
  (void)ctx;
  if (status != LUA_OK && status != LUA_YIELD) return lua_error(L);
  return 0;
}

/* conc.core._flow_worker(pool, fn, mode): a pool's or a stage's worker.
 * Whatever ends the loop, the worker is counted out of the pool (the
 * last one closes the results); an error then goes on as the worker's. */
static int flow_worker(lua_State *L) {
  checkpool(L, 1);
  lua_settop(L, 3);
  lua_pushcfunction(L, worker_loop);
  lua_insert(L, 1);                          /* loop, p, fn, mode */
  lua_pushvalue(L, 2);
  lua_insert(L, 1);      /* p: keeps the pool alive below the call */
  return flow_k(L, lua_pcallk(L, 3, 0, 0, 0, flow_k), 0);
}

/* A pool's or stage's worker is counted out when its task ends, however
 * it ends: also when its call could not even be decoded (an upvalue of
 * fn from a module this worker cannot load), before flow_worker ran;
 * counting out in flow_worker left such a pool waiting forever. */
static void worker_ended(lconc_task *t, lua_State *L, int ok, int base) {
  (void)L, (void)ok, (void)base;
  conc_workpool_exit((conc_workpool *)t->owner);
}

/* Starts n workers of p running fn (at fn_idx) in `mode`; raises, after
 * counting out those that did not start, if none could. */
static void start_workers(lua_State *L, conc_workpool *p, int pool_idx,
                          int fn_idx, int n, int mode, const char *fname) {
  int top = lua_gettop(L);
  lua_pushcfunction(L, flow_worker);
  lua_pushvalue(L, pool_idx);
  lua_pushvalue(L, fn_idx);
  lua_pushinteger(L, mode);
  conc_msg call;
  /* fn encoded once; an error names it as the argument it was */
  lconc_encode_call(L, top + 1, 4, &call, fname, fn_idx - 2);
  lua_settop(L, top);
  lconc_end_hook hook = {worker_ended, (conc_obj *)p};
  int started = 0, rc = CONC_OK;
  for (int i = 0; i < n && rc == CONC_OK; i++) {
    conc_msg copy;
    conc_msg_copy(&copy, &call);  /* shares the encoding */
    rc = lconc_go_detached(L, &copy, &hook);
    if (rc == CONC_OK) started++;
  }
  conc_msg_free(&call);
  conc_workpool_unstarted(p, n - started);
  if (started == 0)
    luaL_error(L, "%s: cannot start a worker: %s", fname, conc_strerror(rc));
}

/* ---- options ------------------------------------------------------------ */

/* The most workers a pool or a stage starts (each is a task, all started
 * before it returns: a billion asked for took memory until killed). */
#define MAX_WORKERS 100000

/* Reads integer option `key` of the table at idx (def if absent), an
 * integer from min to max. */
static lua_Integer int_option(lua_State *L, int idx, const char *key,
                              lua_Integer def, lua_Integer min, lua_Integer max,
                              const char *fname) {
  if (lua_isnoneornil(L, idx)) return def;
  lua_getfield(L, idx, key);
  lua_Integer v = def;
  if (!lua_isnil(L, -1)) {
    int isint;
    v = lua_tointegerx(L, -1, &isint);
    if (!isint || v < min || v > max)
      luaL_error(L, "%s: %s must be an integer from %d to %s", fname, key,
                 (int)min, max == MAX_WORKERS ? "100000" : "2^31-1");
  }
  lua_pop(L, 1);
  return v;
}

/* The option ctx of the table at idx, borrowed (or NULL). */
static conc_ctx *ctx_option(lua_State *L, int idx, const char *fname) {
  if (lua_isnoneornil(L, idx)) return NULL;
  lua_getfield(L, idx, "ctx");
  conc_ctx *ctx = NULL;
  if (!lua_isnil(L, -1)) {
    ctx = (conc_ctx *)lconc_test_obj(L, -1, &conc_ctx_type);
    if (ctx == NULL) luaL_error(L, "%s: ctx must be a conc.ctx", fname);
  }
  lua_pop(L, 1);  /* the options table keeps it alive */
  return ctx;
}

/* Raises for an options table with a key not in `known`. */
static void check_keys(lua_State *L, int idx, const char *const *known,
                       const char *fname) {
  if (lua_isnoneornil(L, idx)) return;
  lconc_checktype(L, idx, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    int found = 0;
    if (lua_type(L, -1) == LUA_TSTRING)
      for (int i = 0; known[i] && !found; i++)
        found = strcmp(lua_tostring(L, -1), known[i]) == 0;
    if (!found) {
      lconc_tostring_safe(L, -1);
      luaL_error(L, "%s: unknown option '%s'", fname, lua_tostring(L, -1));
    }
  }
}

/* A pool over new or given channels, pushed; jobs and results released
 * to it. */
static conc_workpool *push_pool(lua_State *L, int n, conc_chan *jobs,
                                conc_chan *results, conc_ctx *ctx, int own_jobs,
                                const char *fname) {
  conc_workpool *p = jobs && results
                         ? conc_workpool_new(n, jobs, results, ctx, own_jobs)
                         : NULL;
  if (own_jobs && jobs) conc_release((conc_obj *)jobs);
  if (results) conc_release((conc_obj *)results);
  if (p == NULL) luaL_error(L, "%s: not enough memory", fname);
  lconc_push_obj(L, (conc_obj *)p);
  return p;
}

/* Pushes a receive-only view of c. */
static void push_view(lua_State *L, conc_chan *c, const char *fname) {
  conc_chan_view *v = conc_chan_view_new(c);
  if (v == NULL) luaL_error(L, "%s: not enough memory", fname);
  lconc_push_obj(L, (conc_obj *)v);
}

/* ---- conc.stage --------------------------------------------------------- */

/* conc.stage(input, fn [, {workers = 1, buffer = 0, ctx = ctx}])
 * -> a receive-only channel of fn(v) for each v of input */
static int stage_new(lua_State *L) {
  static const char *const known[] = {"workers", "buffer", "ctx", NULL};
  const char *fname = "conc.stage";
  conc_chan *input = lconc_test_chan(L, 1, NULL);
  if (input == NULL) lconc_typeerror(L, 1, "conc.chan");
  lconc_checktype(L, 2, LUA_TFUNCTION);
  check_keys(L, 3, known, fname);
  int n = (int)int_option(L, 3, "workers", 1, 1, MAX_WORKERS, fname);
  lua_Integer buffer = int_option(L, 3, "buffer", 0, 0, INT32_MAX, fname);
  conc_ctx *ctx = ctx_option(L, 3, fname);
  conc_chan *out = conc_chan_new((size_t)buffer);
  conc_workpool *p = push_pool(L, n, input, out, ctx, 0, fname);
  start_workers(L, p, lua_gettop(L), 2, n, MODE_STAGE, fname);
  push_view(L, conc_workpool_results(p), fname);
  return 1;
}

/* ---- conc.workpool ------------------------------------------------------ */

/* conc.workpool(n, fn [, {queue = 2 * n, results = 2 * n, ctx = ctx}]) */
static int pool_new(lua_State *L) {
  static const char *const known[] = {"queue", "results", "ctx", NULL};
  const char *fname = "conc.workpool";
  lua_Integer n = lconc_checkinteger(L, 1);
  lconc_argcheck(L, n >= 1 && n <= MAX_WORKERS, 1,
                 "workers must be an integer from 1 to 100000");
  lconc_checktype(L, 2, LUA_TFUNCTION);
  check_keys(L, 3, known, fname);
  lua_Integer queue = int_option(L, 3, "queue", 2 * n, 0, INT32_MAX, fname);
  lua_Integer rcap = int_option(L, 3, "results", 2 * n, 0, INT32_MAX, fname);
  conc_ctx *ctx = ctx_option(L, 3, fname);
  conc_chan *jobs = conc_chan_new((size_t)queue);
  conc_chan *results = conc_chan_new((size_t)rcap);
  if (jobs == NULL && results) conc_release((conc_obj *)results);
  conc_workpool *p = push_pool(L, (int)n, jobs, jobs ? results : NULL, ctx, 1,
                               fname);
  start_workers(L, p, lua_gettop(L), 2, (int)n, MODE_POOL, fname);
  return 1;
}

/* A submit's end: CONC_OK; raises after close. */
static int submit_end(lua_State *L, lconc_wait_call *a, int rc,
                      const char *fname) {
  if (rc == CONC_OK) return CONC_OK;
  conc_msg_free(&a->cs.msg);
  conc_ctx *ctx = conc_workpool_ctx(checkpool(L, 1));
  if (rc == CONC_ECLOSED) {  /* close() came while it waited, */
    if (ctx && conc_ctx_err(ctx)) return conc_ctx_err(ctx);  /* or ctx */
    return luaL_error(L, "%s: submit on closed pool", fname);
  }
  if (rc == CONC_EDEADLOCK) return lconc_raise_deadlock(L, fname);
  return rc;
}

/* Sends the job at 2 within w (k: where a parked submit goes on). */
static int submit(lua_State *L, const lconc_wait *w, const char *fname,
                  lua_KFunction k) {
  conc_workpool *p = checkpool(L, 1);
  if (lua_isnone(L, 2)) return luaL_error(L, "%s: job expected", fname);
  if (conc_workpool_closed(p))
    return luaL_error(L, "%s: submit on closed pool", fname);
  conc_ctx *ctx = conc_workpool_ctx(p);
  if (ctx && conc_ctx_err(ctx)) return conc_ctx_err(ctx);
  lconc_wait_call local, *a = lconc_wait_area(L, &local);
  a->cs = (conc_case){conc_workpool_jobs(p), CONC_SEND, {0}, 0};
  a->w = *w;
  lconc_encode(L, 2, 1, &a->cs.msg, fname, LCONC_VALUE, 1);
  lconc_blocking(L, "workpool submit");
  return submit_end(L, a, lconc_wait_op_k(L, a, 0, k), fname);
}

static int submit_result(lua_State *L, int rc) {
  if (rc != CONC_OK) return lconc_push_fail(L, rc, "conc.workpool:submit");
  lua_pushboolean(L, 1);
  return 1;
}

static int submit_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  lconc_wait_call *a;
  int rc = lconc_wait_done(L, &a);
  return submit_result(L, submit_end(L, a, rc, "conc.workpool:submit"));
}

/* p:submit(job [, timeout | ctx]) -> true | nil, reason */
static int pool_submit(lua_State *L) {
  lconc_wait w;
  lconc_check_wait(L, 3, &w);
  return submit_result(L, submit(L, &w, "conc.workpool:submit", submit_k));
}

/* p:try_submit(job) -> boolean (false: the queue is full) */
static int pool_try_submit(lua_State *L) {
  lconc_wait w = {CONC_NOWAIT, NULL};
  checkpool(L, 1);
  if (lua_isnone(L, 2)) /* before the settop below makes it a nil */
    return luaL_error(L, "conc.workpool:try_submit: job expected");
  lua_settop(L, 2);
  lua_pushboolean(L,
                  submit(L, &w, "conc.workpool:try_submit", NULL) == CONC_OK);
  return 1;
}

/* p:results() -> a receive-only channel of {job =, ok =, value | err =} */
static int pool_results(lua_State *L) {
  push_view(L, conc_workpool_results(checkpool(L, 1)), "conc.workpool:results");
  return 1;
}

/* Waits within w until every worker has stopped (the function's name
 * is ctx: "conc.workpool:close" or ":wait"). */
static int stopped_end(lua_State *L, int rc, const char *fname) {
  if (rc == CONC_OK && conc_workpool_live(checkpool(L, 1)) != 0)
    lconc_internal_error("a pool's done channel closed with workers left");
  if (rc != CONC_OK) return lconc_push_fail(L, rc, fname);
  lua_pushboolean(L, 1);
  return 1;
}

static int stopped_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return stopped_end(L, lconc_wait_done(L, NULL), (const char *)ctx);
}

static int wait_stopped(lua_State *L, conc_workpool *p, const lconc_wait *w,
                        const char *label, const char *fname) {
  lconc_wait_call local, *a = lconc_wait_area(L, &local);
  a->w = *w;
  int rc = lconc_wait_closed_k(L, label, conc_workpool_done(p), a,
                               (lua_KContext)fname, stopped_k);
  return stopped_end(L, rc, fname);
}

/* p:close(): no more jobs; waits until the queued ones are done (and the
 * results channel closed) */
static int pool_close(lua_State *L) {
  conc_workpool *p = checkpool(L, 1);
  conc_workpool_close(p);
  lconc_wait forever = {CONC_NEVER, NULL};
  return wait_stopped(L, p, &forever, "workpool close", "conc.workpool:close");
}

/* p:wait([timeout | ctx]) -> true once every worker has stopped (after
 * close, or the pool's context ended) | nil, reason */
static int pool_wait(lua_State *L) {
  conc_workpool *p = checkpool(L, 1);
  lconc_wait w;
  lconc_check_wait(L, 2, &w);
  return wait_stopped(L, p, &w, "workpool wait", "conc.workpool:wait");
}

/* p:len(): jobs queued, not yet taken by a worker */
static int pool_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)
                         conc_chan_len(conc_workpool_jobs(checkpool(L, 1))));
  return 1;
}

/* p:workers(): workers still running */
static int pool_workers(lua_State *L) {
  lua_pushinteger(L, conc_workpool_live(checkpool(L, 1)));
  return 1;
}

void lconc_open_workpool(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"submit", pool_submit},   {"try_submit", pool_try_submit},
      {"results", pool_results}, {"close", pool_close},
      {"wait", pool_wait},       {"len", pool_len},
      {"workers", pool_workers}, {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__len", pool_len}, {NULL, NULL}};
  lconc_declare(&conc_workpool_type, methods, meta, NULL);
  lua_pushcfunction(L, pool_new);
  lua_setfield(L, -2, "workpool");
  lua_pushcfunction(L, stage_new);
  lua_setfield(L, -2, "stage");
  lua_pushcfunction(L, flow_worker);  /* travels by this name */
  lua_setfield(L, -2, "_flow_worker");
}
