/*
 * lworker.c: conc.go and the worker handle (conc.worker).
 */
#include <stdbool.h>
#include <string.h>
#include "lcheck.h"
#include "../core/internal.h"
#include "worker.h"

static lconc_task *checktask(lua_State *L) {
  return (lconc_task *)lconc_check_obj(L, 1, &lconc_task_type);
}

/* A malloc'd copy of package[field], or NULL. */
static char *package_field(lua_State *L, const char *field) {
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "package");
  char *copy = NULL;
  if (lua_istable(L, -1) && lua_getfield(L, -1, field) == LUA_TSTRING)
    copy = strdup(lua_tostring(L, -1));
  lua_pop(L, lua_istable(L, -1) ? 2 : 3);
  return copy;
}

/* Raises for a key of the options table at index 1 that conc.go does
 * not know (a misspelt `memory_limt` would otherwise run unlimited). */
static void check_option_keys(lua_State *L) {
  static const char *const known[] = {"memory_limit", "locked", NULL};
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    bool found = false;
    if (lua_type(L, -1) == LUA_TSTRING)
      for (int i = 0; known[i] && !found; i++)
        found = strcmp(lua_tostring(L, -1), known[i]) == 0;
    if (!found) {
      lconc_tostring_safe(L, -1);
      luaL_error(L,
                 "conc.go: unknown option '%s' (options are: "
                 "memory_limit, locked)",
                 lua_tostring(L, -1));
    }
  }
}

/* Reads conc.go's options table at index 1: the memory limit, and
 * whether the task has a thread of its own (*locked). */
static size_t go_options(lua_State *L, bool *locked) {
  check_option_keys(L);
  lua_getfield(L, 1, "locked");
  if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
    luaL_error(L, "conc.go: locked must be a boolean");
  *locked = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 1, "memory_limit");
  lua_Integer limit = 0;
  if (!lua_isnil(L, -1)) {
    int isint;
    limit = lua_tointegerx(L, -1, &isint);
    if (!isint || limit <= 0)
      luaL_error(L,
                 "conc.go: memory_limit must be a positive integer "
                 "(bytes)");
  }
  lua_pop(L, 1);
  return (size_t)limit;
}

/* A task running `call` (taken over, whatever happens), not started;
 * NULL if memory ran out. */
static lconc_task *task_from_call(lua_State *L, conc_msg *call,
                                  size_t memory_limit) {
  lconc_task *t = calloc(1, sizeof *t);
  conc_chan *done = t ? conc__chan_new_owned(0) : NULL;  /* end_task's */
  if (done == NULL) {
    free(t);
    conc_msg_free(call);
    return NULL;
  }
  conc_obj_init(&t->hdr, &lconc_task_type);
  t->call = *call;
  t->memory_limit = memory_limit;
  t->done = done;
  t->path = package_field(L, "path");
  t->cpath = package_field(L, "cpath");
  lconc_site_capture(L, &t->site);
  static atomic_llong next_id = 1;
  t->id = atomic_fetch_add(&next_id, 1);
  return t;
}

lconc_task *lconc_task_new(lua_State *L, int first, int n, size_t memory_limit,
                           const char *label, int argno) {
  conc_msg call;
  lconc_encode_call(L, first, n, &call, label, argno);
  return task_from_call(L, &call, memory_limit);
}

void lconc_task_discard(lconc_task *t) {
  conc_msg_free(&t->call);
  free(t->path);
  free(t->cpath);
  t->path = t->cpath = NULL;
  conc_release(&t->hdr);
}

/* Starts a task running `call` (taken over, whatever happens), with
 * its end hook (NULL: none) and owner (retained here): *out holds the
 * creator's reference. CONC_ENOMEM or the spawn's error. */
static int spawn_call(lua_State *L, conc_msg *call, size_t memory_limit,
                      bool locked, const lconc_end_hook *hook,
                      lconc_task **out) {
  lconc_task *t = task_from_call(L, call, memory_limit);
  if (t == NULL) return CONC_ENOMEM;
  t->locked = locked;
  if (hook) {
    t->on_end = hook->fn;
    t->owner = hook->owner;
    conc_retain(hook->owner);
  }
  int rc = lconc_spawn(t);
  if (rc != CONC_OK) {
    conc_release(&t->hdr);
    return rc;
  }
  *out = t;
  return CONC_OK;
}

/* conc.go([options,] fn, ...) -> handle | nil, message, "spawn" */
static int go(lua_State *L) {
  size_t memory_limit = 0;
  bool locked = false;
  int first = 1;
  if (lua_istable(L, 1)) {  /* options first */
    /* A callable table is a function to run to a Go reader, but it
     * cannot travel (a table with a metatable): say so rather than
     * take it for options. */
    if (luaL_getmetafield(L, 1, "__call") != LUA_TNIL)
      return luaL_error(L,
                        "conc.go: argument #1 is a callable table, "
                        "which cannot be run in a worker (it has a "
                        "metatable); wrap it in a function");
    if (lua_getmetatable(L, 1))
      return luaL_error(L,
                        "conc.go: the options table must be a plain "
                        "table (it has a metatable)");
    memory_limit = go_options(L, &locked);
    first = 2;
  }
  lconc_checktype(L, first, LUA_TFUNCTION);
  conc_msg call;
  lconc_encode_call(L, first, lua_gettop(L) - first + 1, &call, "conc.go",
                    first);
  lconc_task *t;
  int rc = spawn_call(L, &call, memory_limit, locked, NULL, &t);
  if (rc != CONC_OK) {  /* as a spawn the system refuses: a return value */
    lua_pushnil(L);
    lua_pushfstring(L, "conc.go: %s",
                    rc == CONC_ENOMEM ? "not enough memory"
                                      : conc_strerror(rc));
    lua_pushliteral(L, "spawn");
    return 3;
  }
  lconc_push_obj(L, &t->hdr);
  lconc_gc_pressure(L, sizeof *t + sizeof(conc_chan));  /* and its done */
  return 1;
}

int lconc_go_detached(lua_State *L, conc_msg *call,
                      const lconc_end_hook *hook) {
  lconc_task *t;
  int rc = spawn_call(L, call, 0, false, hook, &t);
  if (rc == CONC_OK) conc_release(&t->hdr);  /* runs on, unobserved */
  return rc;
}

/* After t's done channel was seen closed. end_task sets the state
 * before it closes done, and nobody else can close it (it is
 * receive-only); had something else closed it, join would decode a
 * result not yet written. */
static void check_finished(lconc_task *t) {
  if (atomic_load(&t->state) == TASK_RUNNING)
    lconc_internal_error("a running worker's done channel was closed");
}

/* h:join() -> true, results... | false, error (with the traceback) */
static int join_end(lua_State *L, int rc) {
  lconc_task *t = checktask(L);
  if (lconc_aborted(rc)) return lconc_raise_abort(L, rc, "conc.worker:join");
  check_finished(t);
  atomic_store(&t->observed, 1);
  int ok = atomic_load(&t->state) == TASK_DONE;
  lua_settop(L, 1);
  lua_pushboolean(L, ok);
  conc_msg copy;
  if (conc_msg_copy(&copy, &t->result) != CONC_OK)
    return luaL_error(L, "conc.worker:join: not enough memory");
  int n = lconc_decode_protected(L, &copy, "conc.worker:join", LCONC_RESULT);
  if (n >= 0) return 1 + n;
  lua_pushboolean(L, 0);  /* results that cannot arrive: a failure */
  lua_replace(L, 2);
  return 2;
}

static int join_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return join_end(L, lconc_wait_done(L, NULL));
}

static int w_join(lua_State *L) {
  lconc_task *t = checktask(L);
  lconc_wait_call local, *a = lconc_wait_area(L, &local);
  a->w.deadline = CONC_NEVER;
  a->w.ctx = NULL;
  return join_end(L,
                  lconc_wait_closed_k(L, "worker join", t->done, a, 0, join_k));
}

/* h:wait([timeout | ctx]) -> true when finished; false, reason when
 * the timeout passed or the context was canceled first */
static int wait_end(lua_State *L, int rc) {
  lconc_task *t = checktask(L);
  if (lconc_aborted(rc)) return lconc_raise_abort(L, rc, "conc.worker:wait");
  if (rc == CONC_OK) {
    check_finished(t);
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_pushstring(L, rc == CONC_EAGAIN ? "timeout" : conc_strerror(rc));
  return 2;
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return wait_end(L, lconc_wait_done(L, NULL));
}

static int w_wait(lua_State *L) {
  lconc_task *t = checktask(L);
  lconc_wait_call local, *a = lconc_wait_area(L, &local);
  lconc_check_wait(L, 2, &a->w);
  return wait_end(L,
                  lconc_wait_closed_k(L, "worker wait", t->done, a, 0, wait_k));
}

/* h:done() -> a channel closed when the worker has finished */
static int w_done(lua_State *L) {
  lconc_task *t = checktask(L);
  lconc_push_obj_shared(L, (conc_obj *)t->done);
  return 1;
}

static int w_id(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)checktask(L)->id);
  return 1;
}

/* h:status() -> "running", "done" or "failed" */
static int w_status(lua_State *L) {
  static const char *const names[] = {"running", "done", "failed"};
  lua_pushstring(L, names[atomic_load(&checktask(L)->state)]);
  return 1;
}

/* conc.id() -> the id of the calling worker, 0 in the main script */
static int current(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lconc_current_id());
  return 1;
}

void lconc_open_worker(lua_State *L) {
  static const luaL_Reg methods[] = {{"join", w_join},     {"wait", w_wait},
                                     {"done", w_done},     {"id", w_id},
                                     {"status", w_status}, {NULL, NULL}};
  lconc_declare(&lconc_task_type, methods, NULL, NULL);
  lua_pushcfunction(L, go);
  lua_setfield(L, -2, "go");
  lua_pushcfunction(L, current);
  lua_setfield(L, -2, "id");
}
