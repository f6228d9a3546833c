/*
 * worker.h: workers (conc.go), shared by worker.c (threads, states,
 * running a task) and lworker.c (the Lua handle).
 */
#ifndef LCONC_WORKER_H
#define LCONC_WORKER_H

#include "lconc.h"
#include "../core/internal.h"
#include "lerrhint.h"

enum { TASK_RUNNING = 0, TASK_DONE = 1, TASK_FAILED = 2 };

/*
 * One call of conc.go. Shared by the handles (one reference per lua_State
 * that holds one) and the thread running it (one reference until it is
 * done). `call`, `path` and `cpath` belong to the running thread; `ok`
 * and `result` are written once, before `done` is closed, and only read
 * after (the channel's lock orders them).
 */
typedef struct lconc_task {
  conc_obj hdr;
  int64_t id;
  conc_msg call;          /* fn and its arguments */
  size_t memory_limit;    /* bytes its state may use beyond its own, 0 */
  char *path, *cpath;     /* the spawner's package.path and cpath */
  conc_chan *done;        /* closed when the task has finished */
  atomic_int state;       /* TASK_RUNNING, TASK_DONE or TASK_FAILED */
  atomic_int observed;    /* a join has returned the outcome */
  conc_msg result;        /* the results, or the error */
  struct lconc_task *prev, *next;  /* the list of running tasks */
  /* Failed, its error not joined yet (worker.c's failed list). */
  struct lconc_task *fprev, *fnext;
  bool in_failed;
  /* Run by the task's thread once fn has returned (ok) or raised, with
   * its results or its error on L above index base (it may pop them);
   * L is NULL when the task could not start (t->result says why). For
   * what owns the task's outcome (errgroup, wg:go), whose state is
   * `owner` (retained; released with the task). Set before the spawn. */
  void (*on_end)(struct lconc_task *t, lua_State *L, int ok, int base);
  conc_obj *owner;
  bool locked;            /* a thread of its own (conc.go's option) */
  /* A light task (not locked): the scheduler's part, and what the
   * thread running it keeps between its turns. */
  conc__g g;
  lua_State *L, *co;      /* its state and the coroutine it runs in */
  int nargs;              /* for the first resume */
  int yield_reason;       /* why its coroutine yielded (worker.c) */
  lua_State *yield_from;  /* the coroutine a conc yield started in */
  /* Coroutines of the task resumed through conc's coroutine.resume and
   * wrap, innermost last: a blocking call in one parks the whole task
   * when every resume down to the task can yield (`ok`). */
  struct {
    lua_State *co;
    bool ok;
  } chain[16];
  int depth;
  /* Debug hooks of the task's own (debug.sethook) that a preemption set
   * aside for conc's check until it fires (worker.c's hook_preempt): at
   * most the running coroutine's and the body's. Its thread's alone:
   * written by the preemption signal's handler and the task's code. */
  struct {
    lua_State *volatile co; /* NULL: free */
    lua_Hook hook;
    int mask, count;
  } kept[2];
  int (*op)(void *);      /* its blocking call on its fiber (lconc_call) */
  void *op_arg;
  int op_rc;
  _Alignas(16) char op_area[LCONC_OP_AREA];  /* that call's arguments */
  lconc_site site;        /* where it was spawned (its traceback's end) */
} lconc_task;

CONC_API extern const conc_type lconc_task_type;

/* A task for conc.go's call: fn and its n - 1 arguments at stack index
 * first (encoded now: raises if they cannot travel, naming `label` and
 * fn as argument #argno), with the caller's package paths. NULL when
 * memory runs out (nothing to free then). */
CONC_API lconc_task *lconc_task_new(lua_State *L, int first, int n,
                                    size_t memory_limit, const char *label,
                                    int argno);
/* Drops a task that was never spawned (its call and paths with it). */
CONC_API void lconc_task_discard(lconc_task *t);

/* Starts task on a pooled or new thread; CONC_ETHREAD if none can be had.
 * Takes call, path and cpath over even on failure. */
CONC_API int lconc_spawn(lconc_task *task);
/* Gives the scheduler its hooks (luaopen_conc_core, once). */
CONC_API void lconc_sched_init(void);
/* What a task runs when it ends, whatever ended it (see on_end), and
 * for whom (retained by the task). */
typedef struct lconc_end_hook {
  void (*fn)(struct lconc_task *t, lua_State *L, int ok, int base);
  conc_obj *owner;
} lconc_end_hook;
/* Starts a worker running `call` (from lconc_encode_call; taken over,
 * whatever happens) that nobody will join: the pools' and stages'
 * workers, with an end hook (NULL: none; run only if it started).
 * CONC_OK, or why it could not start. */
CONC_API int lconc_go_detached(lua_State *L, conc_msg *call,
                               const lconc_end_hook *hook);
/* The id of the task the calling thread runs (0: not a worker). */
CONC_API int64_t lconc_current_id(void);
/* Marks L as a worker's state (its close is not the program's end). */
CONC_API int lconc_is_worker_state(lua_State *L);
/* Whether L is a worker's state whose task's memory limit refused an
 * allocation (a failure then is most likely for want of memory). */
CONC_API int lconc_memory_refused(lua_State *L);
/* Reports, on stderr, the workers still running when the main state is
 * closed (the program ends; they are abandoned as Go abandons them). */
CONC_API void lconc_report_running(void);

typedef struct lconc_pool_stats {
  int running;   /* workers started and not finished */
  int threads;   /* pool threads, busy or idle */
  int idle;      /* idle pool threads */
  size_t heap_bytes;  /* the worker states' heaps (heap.h), in chunks */
} lconc_pool_stats;
CONC_API void lconc_get_pool_stats(lconc_pool_stats *out);

#endif
