/*
 * worker.c: running conc.go's tasks, each in a lua_State of its own.
 *
 * A task is light by default: the scheduler (core/proc.c) runs it as a
 * coroutine of a pooled state, a turn at a time, on whichever of its
 * threads is free; a blocking call parks it (lconc_call, below). A task
 * started with {locked = true} has a thread of its own, from a pool:
 * when it ends, its thread parks (spinning first) with its state ready,
 * so the next locked conc.go is a hand-off rather than a thread and
 * state creation; an idle thread exits after IDLE_SECONDS, and at most
 * MAX_IDLE threads stay idle. Every task starts with fresh globals (the
 * standard libraries, see fresh_globals); package.loaded persists
 * between tasks of a state, so modules load once per state.
 *
 * Lock order: pool.lock is a leaf (nothing else is taken while it is
 * held, except the waiter claim, which is lock-free).
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <lualib.h>
#include "../core/internal.h"
#include "heap.h"
#include "lcheck.h"
#include "worker.h"

#define IDLE_SECONDS 5.0
#define IDLE_GC_SECONDS 0.02
/* Idle threads kept (each ~30 KB until it times out): enough that a
 * burst of workers (a pool, a fan-out) finds threads ready next time. */
#define MAX_IDLE 256
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define STACK_SIZE (8u << 20)
#else
#define STACK_SIZE (1u << 20)
#endif

typedef struct pool_thread {
  lua_State *L;
  conc_waiter *w;               /* its waiter, set before it first idles */
  lconc_task *task;             /* the task handed to it (pool.lock) */
  struct pool_thread *next_idle;
} pool_thread;

/* The pool. `lock` guards every field. */
static struct {
  conc__lock_t lock;
  pool_thread *idle;            /* idle threads, most recent first */
  int nidle;
  int threads;                  /* live threads, idle or not */
  lconc_task *running;          /* tasks not yet finished */
} pool = {CONC_LOCK_INIT, NULL, 0, 0, NULL};

static CONC_TLS int64_t current_id;
static const char worker_key = 'w';    /* registry: this is a worker */

int64_t lconc_current_id(void) { return current_id; }

int lconc_is_worker_state(lua_State *L) {
  int is = lua_rawgetp(L, LUA_REGISTRYINDEX, &worker_key) != LUA_TNIL;
  lua_pop(L, 1);
  return is;
}

typedef struct state_mem state_mem;
static state_mem *mem_of(lua_State *L);
static bool mem_refused(const state_mem *m);

int lconc_memory_refused(lua_State *L) {
  return lconc_is_worker_state(L) && mem_refused(mem_of(L));
}

static const char task_local_key = 't';  /* registry: see worker.h */

void lconc_push_task_local(lua_State *L, const char *key, const char *mt_mode) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &task_local_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &task_local_key);
  }
  if (lua_getfield(L, -1, key) != LUA_TTABLE) {  /* locals, nil */
    lua_pop(L, 1);
    if (mt_mode != NULL) lconc_new_weak_table(L, mt_mode);
    else lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, key);
  }
  lua_remove(L, -2);
}

/* ---- tasks -------------------------------------------------------------- */

/*
 * Failed tasks whose error no join has returned, oldest first: a
 * deadlock report names them before the threads (note_failed). In Go the
 * worker's panic would have ended the program with its message; here its
 * error waits for a join, and a main script that waits for what the
 * worker never sent saw only "all workers are asleep". failed_lock is a
 * leaf: note_failed takes it under the scheduler's lock.
 */
static conc__lock_t failed_lock = CONC_LOCK_INIT;
static lconc_task *failed_head, *failed_tail;

static void failed_link(lconc_task *t) {
  conc__lock(&failed_lock);
  t->fnext = NULL;
  t->fprev = failed_tail;
  if (failed_tail) failed_tail->fnext = t;
  else failed_head = t;
  failed_tail = t;
  t->in_failed = true;
  conc__unlock(&failed_lock);
}

static void failed_unlink(lconc_task *t) {
  conc__lock(&failed_lock);
  if (t->in_failed) {
    if (t->fprev) t->fprev->fnext = t->fnext;
    else failed_head = t->fnext;
    if (t->fnext) t->fnext->fprev = t->fprev;
    else failed_tail = t->fprev;
    t->in_failed = false;
  }
  conc__unlock(&failed_lock);
}

/* Appends "worker N failed and was never joined: <error>" for the failed
 * tasks nobody joined (at most 10, each error cut at 4 KB) to the report
 * in buf, within size bytes; a task named there is not named again when
 * its handle is collected. */
#define NOTE_FAILED_MAX 10
#define NOTE_ERROR_MAX 4096

static void note_failed(char *buf, size_t size) {
  size_t n = strlen(buf);
  int shown = 0, more = 0;
  conc__lock(&failed_lock);
  for (lconc_task *t = failed_head; t; t = t->fnext) {
    if (atomic_load(&t->observed)) continue;
    if (shown == NOTE_FAILED_MAX || n + 256 >= size) {
      more++;
      continue;
    }
    size_t len;
    const char *err = lconc_msg_string(&t->result, &len);
    int k = err != NULL
                ? snprintf(buf + n, size - n,
                           "worker %lld failed and was never joined: %.*s\n\n",
                           (long long)t->id,
                           (int)(len > NOTE_ERROR_MAX ? NOTE_ERROR_MAX : len),
                           err)
                : snprintf(buf + n, size - n,
                           "worker %lld failed and was never joined: "
                           "(error object is a %s value)\n\n",
                           (long long)t->id, lconc_msg_type_name(&t->result));
    if (k < 0) break;
    n = (size_t)k >= size - n ? size - 1 : n + (size_t)k;
    atomic_store(&t->observed, 1);
    shown++;
  }
  conc__unlock(&failed_lock);
  if (more > 0 && n + 64 < size)
    snprintf(buf + n, size - n, "... and %d more failed worker%s\n\n", more,
             more > 1 ? "s" : "");
}

static void task_destroy(conc_obj *o) {
  lconc_task *t = (lconc_task *)o;
  /* in_failed is set before the running thread's release and cleared
   * only here: read without the lock (a global lock every task paid). */
  if (t->in_failed) failed_unlink(t);
  if (atomic_load(&t->state) == TASK_FAILED && !atomic_load(&t->observed)) {
    size_t len;
    const char *err = lconc_msg_string(&t->result, &len);
    if (err != NULL)
      fprintf(stderr, "conc: worker %lld failed and was never joined: %.*s\n",
              (long long)t->id, (int)len, err);
    else  /* as lua5.4 words an error it cannot print */
      fprintf(stderr,
              "conc: worker %lld failed and was never joined: "
              "(error object is a %s value)\n",
              (long long)t->id, lconc_msg_type_name(&t->result));
  }
  if (atomic_load(&t->state) != TASK_RUNNING) conc_msg_free(&t->result);
  if (t->owner) conc_release(t->owner);
  conc_release(&t->done->hdr);
  free(t);
}

const conc_type lconc_task_type = {"conc.worker", task_destroy};

static void list_add(lconc_task *t) {
  conc__lock(&pool.lock);
  t->prev = NULL;
  t->next = pool.running;
  if (pool.running) pool.running->prev = t;
  pool.running = t;
  conc__unlock(&pool.lock);
}

static void list_remove(lconc_task *t) {
  conc__lock(&pool.lock);
  if (t->prev) t->prev->next = t->next;
  else pool.running = t->next;
  if (t->next) t->next->prev = t->prev;
  conc__unlock(&pool.lock);
}

/* Tasks started and not finished (pool.lock held). */
static int count_running(void) {
  int n = 0;
  for (lconc_task *t = pool.running; t; t = t->next) n++;
  return n;
}

void lconc_get_pool_stats(lconc_pool_stats *out) {
  conc__lock(&pool.lock);
  out->running = count_running();
  out->threads = pool.threads;
  out->idle = pool.nidle;
  conc__unlock(&pool.lock);
  out->heap_bytes = lheap_all_chunk_bytes();
}

static int running_tasks(void) {
  conc__lock(&pool.lock);
  int n = count_running();
  conc__unlock(&pool.lock);
  return n;
}

/*
 * A worker that has made its last channel operation may still be
 * returning when the main script ends (a <close> that closes a channel,
 * a deferred wg:done(), encoding its results): the joiner or ranger it
 * released ran on, and the script ended first. Such a worker ends within
 * microseconds when it has a core, and within a scheduler time slice
 * when it must wait for one (measured from its last send to its end,
 * 2,000 runs, load 5 on 2 cores: median 0.2-2 us, 99.9th percentile
 * 0.07-1.7 ms, at most 2.3-4.1 ms), so the report waits up to EXIT_GRACE for
 * the workers still awake. Workers asleep with no deadline cannot end
 * by themselves (the main script is done), so once every remaining one
 * is, the report does not wait longer; with no worker left it returns
 * at once.
 */
#define EXIT_GRACE 0.05
#define EXIT_POLL 0.0002

void lconc_report_running(void) {
  conc_time deadline = conc_deadline_in(EXIT_GRACE);
  while (running_tasks() > 0 && conc__awake_threads() > 1 /* and main */) {
    conc_time now = conc_now();
    if (now >= deadline) break;
    conc_time next = conc_deadline_in(EXIT_POLL);
    conc_sleep_until(next < deadline ? next : deadline);
  }
  /* The ids are copied under the lock and written after it: a worker
   * that ends meanwhile must not wait on stderr. */
  long long ids[10];
  int shown = 0;
  conc__lock(&pool.lock);
  int n = count_running();
  for (lconc_task *t = pool.running; t && shown < 10; t = t->next)
    ids[shown++] = (long long)t->id;
  conc__unlock(&pool.lock);
  if (n == 0) return;
  fprintf(stderr,
          "conc: the main script ended with %d worker%s still "
          "running (id",
          n, n > 1 ? "s" : "");
  for (int i = 0; i < shown; i++)
    fprintf(stderr, "%s %lld", i ? "," : (n > 1 ? "s" : ""), ids[i]);
  fprintf(stderr, "%s); they end with the process\n", n > 10 ? ", ..." : "");
}

/* ---- states ------------------------------------------------------------- */

/*
 * Libraries opened when a task first names them (through the __index of
 * its globals) rather than when the state is made: most workers never
 * touch most of them, and a parked worker's memory is mostly its
 * lua_State. Only base, package and string are open from the start
 * (string because every string reaches it through its metatable, whose
 * __index must be the string table itself, as in a fresh lua5.4).
 * Each opener also takes the library's fingerprint (see watch below).
 */
enum {
  W_STRING,
  W_TABLE,
  W_COROUTINE,
  W_MATH,
  W_IO,
  W_OS,
  W_UTF8,
  W_DEBUG,
  W_STRING_META,
  W_FILE_META,    /* the metatable of files, which getmetatable reaches */
  W_FILE_METHODS, /* and its __index */
  W_COUNT
};

#define W_LIBS W_STRING_META /* lazy_libs' count: the watches before */

static void watch_lib(lua_State *L, int which);
static void watch_table(lua_State *L, int idx, int which);

#define WATCHED_OPENER(fname, opener, which) \
  static int fname(lua_State *L) {           \
    opener(L);                               \
    watch_lib(L, which);                     \
    return 1;                                \
  }
static int fill_string(lua_State *L);
WATCHED_OPENER(open_table, luaopen_table, W_TABLE)
/* A task runs in a coroutine of its state, which its code must not see:
 * at its top level, as in a main chunk, coroutine.running() says main,
 * isyieldable() says no, and yield() raises as lua5.4's does. */
static bool at_task_top(lua_State *L);
static int co_running(lua_State *L) {
  int ismain = lua_pushthread(L);
  lua_pushboolean(L, ismain || at_task_top(L));
  return 2;
}
static int co_isyieldable(lua_State *L) {
  lua_State *co = lua_isnoneornil(L, 1) ? L : lua_tothread(L, 1);
  luaL_argexpected(L, co != NULL, 1, "coroutine");
  lua_pushboolean(L, lua_isyieldable(co) && !at_task_top(co));
  return 1;
}
static int co_yield (lua_State *L) {
  if (at_task_top(L))
    return luaL_error(L, "attempt to yield from outside a coroutine");
  return lua_yield(L, lua_gettop(L));
}
static int co_resume(lua_State *L);
static int co_wrap(lua_State *L);
static int open_coroutine(lua_State *L) {
  luaopen_coroutine(L);
  static const luaL_Reg hidden[] = {
      {"running", co_running}, {"isyieldable", co_isyieldable},
      {"yield", co_yield },    {"resume", co_resume},
      {"wrap", co_wrap},       {NULL, NULL}};
  luaL_setfuncs(L, hidden, 0);
  watch_lib(L, W_COROUTINE);
  return 1;
}
WATCHED_OPENER(open_math, luaopen_math, W_MATH)
/* The library functions that may block in the kernel for long (a read
 * from a terminal, pipe or socket, a wait for a child) are wrapped: see
 * leave_main. */
typedef struct blocking_fn {
  const char *name;
  int kind; /* LM_ */
} blocking_fn;
static void wrap_blocking(lua_State *L, int idx, const blocking_fn fns[]);
enum {
  LM_ALWAYS,
  LM_POPEN,
  LM_NAMED, /* when argument 1 is a file name (io.input, io.output) */
  LM_SELF,
  LM_INPUT,
  LM_SELF_LINES,
  LM_IO_LINES,
  LM_CLOSE
};
static int open_io(lua_State *L) {
  luaopen_io(L);
  static const blocking_fn io_fns[] = {
      {"read", LM_INPUT},  {"lines", LM_IO_LINES}, {"close", LM_CLOSE},
      {"popen", LM_POPEN}, {"open", LM_ALWAYS},    {"tmpfile", LM_ALWAYS},
      {"input", LM_NAMED}, {"output", LM_NAMED},   {NULL, 0}};
  wrap_blocking(L, -1, io_fns);
  static const blocking_fn methods[] = {{"read", LM_SELF},
                                        {"lines", LM_SELF_LINES},
                                        {"close", LM_CLOSE},
                                        {NULL, 0}};
  /* (__close: a <close> file's pclose waits for its child too) */
  static const blocking_fn meta[] = {{"__close", LM_CLOSE}, {NULL, 0}};
  if (luaL_getmetatable(L, LUA_FILEHANDLE) == LUA_TTABLE &&
      lua_getfield(L, -1, "__index") == LUA_TTABLE) {
    wrap_blocking(L, -1, methods);
    wrap_blocking(L, -2, meta);
    watch_table(L, -1, W_FILE_METHODS);
    watch_table(L, -2, W_FILE_META);
  }
  lua_settop(L, -3); /* the method table and the metatable (or nils) */
  watch_lib(L, W_IO);
  return 1;
}
static void close_state(lua_State *L);

/* os.exit in a task's state: Lua's, but `close` closes the state as conc
 * does, its allocator's record and heap too (Lua's lua_close left them:
 * a leak LeakSanitizer reported at the exit, whose status it made 1). */
static int task_exit(lua_State *L) {
  int status;
  if (lua_isboolean(L, 1))
    status = lua_toboolean(L, 1) ? EXIT_SUCCESS : EXIT_FAILURE;
  else status = (int)luaL_optinteger(L, 1, EXIT_SUCCESS);
  if (lua_toboolean(L, 2)) close_state(L);
  exit(status); /* NOLINT(concurrency-mt-unsafe): as Lua's os.exit */
}

static int open_os(lua_State *L) {
  luaopen_os(L);
  lua_pushcfunction(L, task_exit);
  lua_setfield(L, -2, "exit");
  static const blocking_fn os_fns[] = {{"execute", LM_ALWAYS}, {NULL, 0}};
  wrap_blocking(L, -1, os_fns);
  watch_lib(L, W_OS);
  return 1;
}
WATCHED_OPENER(open_utf8, luaopen_utf8, W_UTF8)
static int debug_setmetatable(lua_State *L);
static int debug_getmetatable(lua_State *L);
static int open_debug(lua_State *L) {
  luaopen_debug(L);
  lua_pushcfunction(L, debug_setmetatable);
  lua_setfield(L, -2, "setmetatable");
  lua_pushcfunction(L, debug_getmetatable);
  lua_setfield(L, -2, "getmetatable");
  watch_lib(L, W_DEBUG);
  return 1;
}

/* In W_ order: lazy_libs[i] is watched as W_i. */
static const luaL_Reg lazy_libs[] = {{LUA_STRLIBNAME, fill_string},
                                     {LUA_TABLIBNAME, open_table},
                                     {LUA_COLIBNAME, open_coroutine},
                                     {LUA_MATHLIBNAME, open_math},
                                     {LUA_IOLIBNAME, open_io},
                                     {LUA_OSLIBNAME, open_os},
                                     {LUA_UTF8LIBNAME, open_utf8},
                                     {LUA_DBLIBNAME, open_debug},
                                     {NULL, NULL}};

/* What luaopen_base puts in the globals (Lua 5.4: 24 functions, _G and
 * _VERSION); only a size hint for the table. */
#define BASE_GLOBALS 26

static const char lazy_mt_key = 'l';  /* registry: the globals' metatable */
static const char require_key = 'r';  /* registry: package's require */
static const char io_files_key = 'f'; /* registry: io's default files */

/* Whether the globals table at env is the state's current one and has
 * had lazy library i (state_mem's globals_libs); marks it as had. */
static bool globals_had(lua_State *L, int env, int i);
static void globals_mark(lua_State *L, int env, int i);

/* __index(env, k) of task globals: opens a lazy library on first use. */
static int lazy_index(lua_State *L) {
  const char *k = lua_tostring(L, 2);
  for (const luaL_Reg *lib = lazy_libs; k && lib->name; lib++) {
    if (strcmp(k, lib->name) != 0) continue;
    /* These globals had it, and the task took it out (`os = nil`, to
     * sandbox a chunk): nil, not the library again. */
    int i = (int)(lib - lazy_libs);
    if (globals_had(L, 1, i)) return 0;
    luaL_requiref(L, lib->name, lib->func, 0);      /* env, k, lib */
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_rawset(L, 1);                                /* env[k] = lib */
    globals_mark(L, 1, i);
    return 1;
  }
  return 0;
}

/* __newindex(env, k, v) of task globals: a rawset; but a library these
 * globals do not have yet that is set to nil (`os = nil` before any use
 * of os) is marked as theirs, taken out: lazy_index then reads it as
 * nil rather than open it for the next read. */
static int lazy_newindex(lua_State *L) {
  const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
  for (const luaL_Reg *lib = lazy_libs; k && lua_isnil(L, 3) && lib->name;
       lib++) {
    if (strcmp(k, lib->name) != 0) continue;
    globals_mark(L, 1, (int)(lib - lazy_libs));
    break;
  }
  lua_settop(L, 3);
  lua_rawset(L, 1);
  return 0;
}

/*
 * A state's memory: its own heap (heap.h), and the counter of a task's
 * memory limit.
 *
 * A task may be given a memory limit (conc.go's memory_limit option):
 * while it runs, its state allocates through a counter, and over the
 * limit the allocator refuses, Lua raises "not enough memory", and the
 * task fails with a message that names the limit. Its small blocks come
 * from malloc meanwhile (heap.h): blocks freed into one of the heap's
 * size classes serve no other, so Lua's count would not bound the heap.
 * Other tasks allocate without counting (the counter cost ~1.5% of
 * B3's producer's instructions), and a limited task's counter starts from
 * Lua's own count. Only the state's own thread uses its counter.
 */
#define PACKAGE_FIELDS 6
#define SEARCHERS_MAX 8 /* Lua 5.4 has 4 */

typedef struct state_mem {
  lheap *heap;
  size_t used, limit;  /* limit 0: none */
  /* Lifted for conc's reporting (limit_end): the room that was left,
   * for the task's own code that still runs (limit_again). */
  size_t room;
  bool lifted;
  bool hit;            /* a refusal happened during this task */
  bool warn_on, warn_cont;  /* warn(): "@on" seen; a message continues */
  /* The standard libraries as opened, and the string metatable: each
   * table's address (NULL: not open), its metatable's and the
   * fingerprint of its contents then, to tell whether a task changed
   * them (setmetatable(math, mt) too). */
  struct {
    const void *table, *meta;
    uint64_t print;
  } watch[W_COUNT];
  /* The globals table fresh_globals made last, and its fingerprint
   * then: a task that left it as it was leaves it to the next. */
  const void *globals;
  uint64_t globals_print;
  /* The lazy libraries it has had (bit i: lazy_libs[i]): given by
   * fresh_globals or by lazy_index, or set to nil (lazy_newindex). One
   * of them missing now was taken out by the task: it reads as nil. */
  unsigned globals_libs;
  /* package as opened (watch_package): the table, its fields but path
   * and cpath, and its searchers, by identity. */
  const void *package, *package_meta, *package_was[PACKAGE_FIELDS];
  const void *searchers_was[SEARCHERS_MAX];
  lua_Unsigned searchers_n;
  bool string_filled;  /* the string table has the library (see below) */
  bool string_dirty;   /* a task wrote into it, or the stand-in, before */
  /* A task reached the string metatable (see string_meta_same). */
  bool string_meta_exposed;
  bool string_filling; /* fill_string is under way */
  bool garbage;        /* pooled since a task ran, not collected since */
  /* A task set a metatable with __gc since the last full collection:
   * the state is collected before another task runs in it, so a Lua
   * finalizer never runs inside an unrelated task (see state_put). */
  bool finalizers;
  bool close_after;      /* replace it once its finalizers have run */
  lua_State *fin_next;   /* in the queue of states to finalize */
} state_mem;

static const char *const package_fields[] = {
    "config", "loaded", "loadlib", "preload", "searchers", "searchpath"};
#define PACKAGE_SEARCHERS 4 /* package_fields' index of "searchers" */

static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  state_mem *m = (state_mem *)ud;
  size_t old = ptr ? osize : 0;  /* with no block, osize is a type tag */
  if (m->limit && nsize > old && m->used + (nsize - old) > m->limit) {
    m->hit = true;
    return NULL;
  }
  void *p = lheap_alloc(m->heap, ptr, osize, nsize);
  if (p != NULL || nsize == 0) m->used = m->used - old + nsize;
  return p;
}

static void *heap_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  return lheap_alloc(((state_mem *)ud)->heap, ptr, osize, nsize);
}

/* The bytes L's blocks take now, by Lua's own count. */
static size_t bytes_in_use(lua_State *L) {
  return (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 +
         (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
}

static state_mem *mem_of(lua_State *L) {
  void *ud;
  lua_getallocf(L, &ud);
  return (state_mem *)ud;
}

static bool mem_refused(const state_mem *m) { return m->hit; }

static bool globals_had(lua_State *L, int env, int i) {
  const state_mem *m = mem_of(L);
  return lua_topointer(L, env) == m->globals && (m->globals_libs >> i & 1u);
}

static void globals_mark(lua_State *L, int env, int i) {
  state_mem *m = mem_of(L);
  if (lua_topointer(L, env) == m->globals) m->globals_libs |= 1u << i;
}

/* ---- what a task may leave behind --------------------------------------- */

/*
 * A task must start as in a fresh state, whatever the last task on its
 * thread did. What is cheap to put back is put back after every task
 * (reset_state): the collector's mode and parameters and whether it runs,
 * the debug hook, io's default input and output, warn()'s switch, the
 * metatables of the types other than string and userdata, math.random's
 * seed. What is not (the contents of a standard library table, which
 * every later task would see, or the string metatable) is detected
 * instead (state_changed), and the thread replaces its state; so is a
 * change to package.loaded's metatable (conc's, which its require and
 * codec rely on).
 *
 * Detection compares fingerprints: a sum over a table's entries of a
 * hash of each key and value by identity (address for collectable
 * values, bits for the others), so adding, removing or replacing an
 * entry changes it. A false alarm only costs a new state. Only the
 * libraries a state has opened are checked (string and its metatable:
 * 27 entries, ~0.5 us a task).
 */
/* Lua 5.4's defaults (lgc.h; not in its public headers). */
#define GC_PAUSE 200
#define GC_STEPMUL 100
#define GC_STEPSIZE 13

static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9u;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebu;
  return x ^ (x >> 31);
}

/* A value's identity: the address of a collectable value (or a light C
 * function or light userdata), else its type and bits. lua_topointer
 * first, as most entries of a library or the globals are functions and
 * tables: one API call for them (the fingerprints are ~30% of B4's
 * instructions otherwise). */
static uint64_t value_bits(lua_State *L, int idx) {
  const void *p = lua_topointer(L, idx);
  if (p != NULL) return (uint64_t)(uintptr_t)p;
  int type = lua_type(L, idx);
  uint64_t bits = 0;
  if (type == LUA_TNUMBER) {
    if (lua_isinteger(L, idx)) {
      bits = (uint64_t)lua_tointeger(L, idx);
    } else {
      lua_Number n = lua_tonumber(L, idx);
      memcpy(&bits, &n, sizeof bits < sizeof n ? sizeof bits : sizeof n);
      type += 16;
    }
  } else if (type == LUA_TBOOLEAN) {
    bits = (uint64_t)lua_toboolean(L, idx);
  }
  return mix64(bits ^ ((uint64_t)type << 56));
}

/* The fingerprint of the table at idx (order-independent). */
static uint64_t fingerprint(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  uint64_t sum = 0, n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    sum += mix64(value_bits(L, -2) * 31 + value_bits(L, -1));
    n++;
    lua_settop(L, -2);
  }
  return sum + mix64(n);
}

/* The address of the metatable of the table at idx, or NULL. */
static const void *meta_of(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx)) return NULL;
  const void *meta = lua_topointer(L, -1);
  lua_pop(L, 1);
  return meta;
}

static void watch_table(lua_State *L, int idx, int which) {
  state_mem *m = mem_of(L);
  m->watch[which].table = lua_topointer(L, idx);
  m->watch[which].meta = meta_of(L, idx);
  m->watch[which].print = fingerprint(L, idx);
}

/*
 * package (on top) as opened. Its fields and searchers are compared by
 * identity (lua_topointer) rather than fingerprinted: a fingerprint of
 * its 12 entries cost ~5k instructions a task (B4 +15%), these reads
 * ~1.5k. New fields are not seen (require reads none); path and cpath
 * are set for every task (set_path). The values are anchored in the
 * registry (an address cannot come back as another value's), but for
 * light C functions (loadlib, searchpath), whose address no other value
 * can take.
 *
 * One registry table, `names_key`, holds the names the checks read by
 * index (a name read from there costs a fifth of lua_pushstring's ~200
 * instructions: 8 of them were 4% of B4's), then those anchors, sized to
 * fit: a parked task's state is a few hundred bytes short of its first
 * heap chunk, and a second table (or a bigger size class for this one)
 * took it past (B6 26.6 -> 30.6 KB a task, B20 2328 -> 2762 MB).
 *   1..W_LIBS       lazy_libs' names, then "package" (NAME_PACKAGE)
 *   FIELD_NAME + i  package_fields[i]
 *   after them      the anchors
 */
static const char names_key = 'n';
#define NAME_PACKAGE (W_LIBS + 1)
#define FIELD_NAME (NAME_PACKAGE + 1)

/* Whether the value on top needs an anchor (see above). */
static bool needs_anchor(lua_State *L) {
  if (!lua_iscfunction(L, -1)) return lua_topointer(L, -1) != NULL;
  if (lua_getupvalue(L, -1, 1) == NULL) return false; /* a light one */
  lua_pop(L, 1);
  return true;
}

/* Pushes package[package_fields[i]] (package on top). */
static void push_field(lua_State *L, int i) {
  lua_pushstring(L, package_fields[i]);
  lua_rawget(L, -2);
}

static void watch_package(lua_State *L) {
  state_mem *m = mem_of(L);
  m->package = lua_topointer(L, -1);
  m->package_meta = meta_of(L, -1);
  int anchors = 0;
  for (int i = 0; i < PACKAGE_FIELDS; i++) {
    push_field(L, i);
    anchors += needs_anchor(L);
    lua_pop(L, 1);
  }
  m->searchers_n = 0;
  push_field(L, PACKAGE_SEARCHERS);
  if (lua_istable(L, -1) && lua_rawlen(L, -1) <= SEARCHERS_MAX)
    m->searchers_n = lua_rawlen(L, -1);
  lua_pop(L, 1);
  lua_createtable(L,
                  FIELD_NAME - 1 + PACKAGE_FIELDS + anchors +
                      (int)m->searchers_n,
                  0);
  lua_Integer at = 1;
  for (int i = 0; i < W_LIBS; i++) {
    lua_pushstring(L, lazy_libs[i].name);
    lua_rawseti(L, -2, at++);
  }
  lua_pushliteral(L, LUA_LOADLIBNAME);
  lua_rawseti(L, -2, at++);
  for (int i = 0; i < PACKAGE_FIELDS; i++) {
    lua_pushstring(L, package_fields[i]);
    lua_rawseti(L, -2, at++);
  }
  lua_insert(L, -2); /* names, package */
  for (int i = 0; i < PACKAGE_FIELDS; i++) {
    push_field(L, i);
    m->package_was[i] = lua_topointer(L, -1);
    if (needs_anchor(L)) lua_rawseti(L, -3, at++);
    else lua_pop(L, 1);
  }
  if (m->searchers_n > 0) {
    push_field(L, PACKAGE_SEARCHERS);
    for (lua_Unsigned k = 1; k <= m->searchers_n; k++) {
      lua_rawgeti(L, -1, (lua_Integer)k);
      m->searchers_was[k - 1] = lua_topointer(L, -1);
      lua_rawseti(L, -4, at++);
    }
    lua_pop(L, 1);
  }
  lua_insert(L, -2); /* package, names */
  lua_rawsetp(L, LUA_REGISTRYINDEX, &names_key);
}

/* Whether package (loaded, at -1, holds it; names_key's table below
 * it) is not as watch_package found it. */
static bool package_changed(lua_State *L, const state_mem *m) {
  lua_rawgeti(L, -2, NAME_PACKAGE);
  lua_rawget(L, -2);
  bool changed = lua_topointer(L, -1) != m->package || !lua_istable(L, -1) ||
                 meta_of(L, -1) != m->package_meta;
  lua_pushvalue(L, -3);
  lua_insert(L, -2); /* names, package */
  for (int i = 0; !changed && i < PACKAGE_FIELDS; i++) {
    lua_rawgeti(L, -2, FIELD_NAME + i);
    lua_rawget(L, -2);
    changed = lua_topointer(L, -1) != m->package_was[i];
    if (!changed && i == PACKAGE_SEARCHERS && m->searchers_n > 0) {
      changed = lua_rawlen(L, -1) != m->searchers_n;  /* the same table */
      for (lua_Unsigned k = 1; !changed && k <= m->searchers_n; k++) {
        lua_rawgeti(L, -1, (lua_Integer)k);
        changed = lua_topointer(L, -1) != m->searchers_was[k - 1];
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  return changed;
}

/* Called by each library's opener with the library on top (the string
 * library's is fill_string, below). */
static void watch_lib(lua_State *L, int which) {
  if (!lua_istable(L, -1)) return;
  watch_table(L, -1, which);
  if (which == W_IO) {  /* its default files, to put them back */
    lua_createtable(L, 2, 0);
    lua_getfield(L, LUA_REGISTRYINDEX, "_IO_input");
    lua_rawseti(L, -2, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, "_IO_output");
    lua_rawseti(L, -2, 2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &io_files_key);
  }
}

/* Whether the table at idx (or none, if it is not a table) is the one
 * watched as `which`, unchanged. Pops it. */
static bool same_as_watched(lua_State *L, state_mem *m, int which) {
  bool same = lua_istable(L, -1)
                  ? m->watch[which].table == lua_topointer(L, -1) &&
                        m->watch[which].meta == meta_of(L, -1) &&
                        m->watch[which].print == fingerprint(L, -1)
                  : m->watch[which].table == NULL && lua_isnil(L, -1);
  lua_pop(L, 1);
  return same;
}

/*
 * Whether the string metatable (on top; popped) is as watched. Its
 * fingerprint (~2.6k instructions, 6% of B4's) only once a task of this
 * state has reached it, by getmetatable or debug.getmetatable or
 * debug.setmetatable on a string (the only ways Lua code has, the
 * binding's own: see unlazy): until then, no task could have changed its
 * contents, and its identity says enough. Once reached, always: a task
 * may keep it somewhere a later one finds it.
 */
static bool string_meta_same(lua_State *L, state_mem *m) {
  if (m->string_meta_exposed) return same_as_watched(L, m, W_STRING_META);
  bool same = lua_topointer(L, -1) == m->watch[W_STRING_META].table;
  lua_pop(L, 1);
  return same;
}

/* Whether the task changed what cannot be put back cheaply: a standard
 * library table (in package.loaded under its name), package's fields
 * or searchers, or the string metatable. */
static bool state_changed(lua_State *L) {
  state_mem *m = mem_of(L);
  bool changed = m->string_dirty;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &names_key);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);  /* names, loaded */
  for (int i = 0; !changed && lazy_libs[i].name; i++) {
    lua_rawgeti(L, -2, i + 1);
    lua_rawget(L, -2);  /* raw: a task may have given loaded a metatable */
    changed = !same_as_watched(L, m, i);
  }
  changed = changed || package_changed(L, m);
  lua_pop(L, 2);
  lua_pushliteral(L, "");
  if (!lua_getmetatable(L, -1)) lua_pushnil(L);
  changed = changed || !string_meta_same(L, m);
  lua_pop(L, 1);
  /* Files' methods: getmetatable(io.stdout).__index.write = f would
   * reach every later task (and pass by leave_main's wrappers). */
  if (!changed && m->watch[W_FILE_META].table != NULL) {
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_FILEHANDLE);
    if (lua_istable(L, -1)) {
      lua_pushliteral(L, "__index");
      lua_rawget(L, -2);
    } else {
      lua_pushnil(L);
    }
    changed = !same_as_watched(L, m, W_FILE_METHODS);
    changed = !same_as_watched(L, m, W_FILE_META) || changed;
  }
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getmetatable(L, -1)) {  /* none, or the codec's, unchanged */
    changed = changed || !lconc_codec_loaded_meta(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return changed;
}

/* Puts back what a task may have changed that is cheap to put back
 * (see above). Runs protected, in clean_body. */
static int reset_state(lua_State *L) {
  state_mem *m = mem_of(L);
  lua_sethook(L, NULL, 0, 0);
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &task_local_key);
  /* Only if stopped: a restart also zeroes the collector's debt, so the
   * next task's first allocation would run a step (~4,700 instructions
   * a task in B4, callgrind) however little garbage there is. */
  if (!lua_gc(L, LUA_GCISRUNNING)) lua_gc(L, LUA_GCRESTART);
  lua_gc(L, LUA_GCINC, GC_PAUSE, GC_STEPMUL, GC_STEPSIZE);
  m->warn_on = m->warn_cont = false;
  static const int types[] = {LUA_TNIL,      LUA_TBOOLEAN,       LUA_TNUMBER,
                              LUA_TFUNCTION, LUA_TLIGHTUSERDATA, LUA_TTHREAD};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    switch (types[i]) {  /* a value of each type, to reach its metatable */
      case LUA_TNIL: lua_pushnil(L); break;
      case LUA_TBOOLEAN: lua_pushboolean(L, 0); break;
      case LUA_TNUMBER: lua_pushinteger(L, 0); break;
      case LUA_TFUNCTION: lua_pushcfunction(L, reset_state); break;
      case LUA_TLIGHTUSERDATA: lua_pushlightuserdata(L, NULL); break;
      default: lua_pushthread(L); break;
    }
    if (lua_getmetatable(L, -1)) {
      lua_pop(L, 1);
      lua_pushnil(L);
      lua_setmetatable(L, -2);
    }
    lua_pop(L, 1);
  }
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &io_files_key) == LUA_TTABLE) {
    lua_rawgeti(L, -1, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "_IO_input");
    lua_rawgeti(L, -1, 2);
    lua_setfield(L, LUA_REGISTRYINDEX, "_IO_output");
  }
  lua_pop(L, 1);
  if (m->watch[W_MATH].table != NULL) {  /* a fresh state seeds randomly */
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushliteral(L, LUA_MATHLIBNAME);
    lua_rawget(L, -2);     /* unchanged: state_changed looked */
    lua_pushliteral(L, "randomseed");
    lua_rawget(L, -2);
    /* A seed of its own: randomseed() with none takes the time in whole
     * seconds and the state's address (Lua 5.4.4), the same for every
     * task this state runs within a second. */
    lua_pushinteger(L, (lua_Integer)(((uint64_t)conc__rand() << 32) |
                                     conc__rand()));
    lua_pushinteger(L, (lua_Integer)conc_now());
    lua_call(L, 2, 0);
    lua_pop(L, 2);
  }
  return 0;
}

/* Protected: sets *changed (the light userdata at 1) and, if the state
 * is to be kept, puts back what is cheap to. Reads only raw fields: no
 * code of the task's runs here. */
static void fresh_globals(lua_State *L);
static bool globals_untouched(lua_State *L);

static int clean_body(lua_State *L) {
  bool *changed = (bool *)lua_touserdata(L, 1);
  lua_settop(L, 0);
  *changed = state_changed(L);
  if (*changed) return 0;
  /* Now, not when the next task starts: the old globals (a pub/sub or a
   * ticker a task left in a global) are garbage for the collection of
   * the idle state, which ran with them still current before. With the
   * collector stopped: a step here would run the task's finalizers in
   * its name (reset_state restarts it). */
  if (!globals_untouched(L)) {
    lua_gc(L, LUA_GCSTOP);
    fresh_globals(L);
  }
  reset_state(L);
  return 0;
}

/* After a task: true if the thread must replace its state (the task
 * changed it, or memory ran out while looking). */
static bool clean_state(lua_State *L) {
  bool changed = true;
  lua_settop(L, 0);
  lua_pushcfunction(L, clean_body);
  lua_pushlightuserdata(L, &changed);
  return lua_pcall(L, 1, 0, 0) != LUA_OK || changed;
}

/* What luaL_newstate would set (the state is made with lua_newstate, to
 * have its heap from its first block): a panic message, and warnings
 * on stderr once "@on" turned them on. */
static int on_panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "conc: PANIC: unprotected error in a worker's state (%s)\n",
          msg ? msg : "error object is not a string");
  return 0;  /* Lua aborts */
}

/* As lauxlib's: off, only a one-piece "@on" counts; on, a message's first
 * piece may be "@off" or "@on"; the rest is written out. */
static void on_warn(void *ud, const char *msg, int tocont) {
  state_mem *m = (state_mem *)ud;
  if (!m->warn_cont && !tocont && msg[0] == '@') {  /* a control message */
    if (strcmp(msg, "@on") == 0) m->warn_on = true;
    else if (strcmp(msg, "@off") == 0) m->warn_on = false;
    return;
  }
  if (!m->warn_on) return;
  if (!m->warn_cont) fputs("Lua warning: ", stderr);
  fputs(msg, stderr);
  if (!tocont) fputs("\n", stderr);
  m->warn_cont = tocont != 0;
}

/* ---- the string library, filled on first use ---------------------------- */

/*
 * Every string reaches the string library through its metatable, whose
 * __index must be the string table itself (getmetatable("").__index.f =
 * fn is a common idiom). Opening the library in every state cost a
 * parked worker 7.4 KB (B6), so the string table starts empty: T, in
 * package.loaded and every task's globals, and the __index of a
 * stand-in string metatable whose arithmetic events fill it first. The
 * first read of a field T lacks (its own __index), `pairs(T)` or a
 * string's arithmetic fills it from luaopen_string, makes T the __index
 * of the real string metatable and watches both. A task that wrote into
 * T or the stand-in before that changed the state (its writes could not
 * be told from the library's own fields after).
 */
static const char string_key = 's';  /* registry: T */

/* Protected: fills T (at 1) from luaopen_string and makes it the
 * __index of the real string metatable. */
static int fill_string_body(lua_State *L) {
  const int t = 1;
  luaopen_string(L);        /* T, S: S's metatable is every string's now */
  lua_pushnil(L);
  while (lua_next(L, -2)) {                           /* T, S, k, v */
    lua_pushvalue(L, -2);
    if (lua_rawget(L, t) == LUA_TNIL) {               /* T, S, k, v, nil */
      lua_pop(L, 1);
      lua_pushvalue(L, -2);
      lua_insert(L, -2);                              /* T, S, k, k, v */
      lua_rawset(L, t);
    } else {
      lua_pop(L, 2);  /* the task's own field stays (it is dirty) */
    }
  }
  lua_pop(L, 1);                                      /* T */
  lua_pushnil(L);
  lua_setmetatable(L, t);
  lua_pushliteral(L, "");
  lua_getmetatable(L, -1);                            /* T, "", mt */
  lua_pushvalue(L, t);
  lua_setfield(L, -2, "__index");
  watch_table(L, -1, W_STRING_META);
  lua_pop(L, 2);
  watch_table(L, t, W_STRING);
  return 0;
}

/* Pushes T, filled. A fill that fails (a task's memory limit) raises its
 * error with T part-filled: the state is then marked changed (replaced
 * after the task) and the task's next use of a string function fills
 * again, rather than every later task finding T empty. */
static int fill_string(lua_State *L) {
  state_mem *m = mem_of(L);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &string_key);     /* T */
  /* (filling: a finalizer the fill ran reads T as it is) */
  if (m->string_filled || m->string_filling) return 1;
  int t = lua_gettop(L);
  lua_pushvalue(L, t);
  bool touched = !same_as_watched(L, m, W_STRING);
  lua_pushliteral(L, "");
  if (!lua_getmetatable(L, -1)) lua_pushnil(L);       /* T, "", mt */
  touched = !same_as_watched(L, m, W_STRING_META) || touched;
  lua_pop(L, 1);
  bool dirty = m->string_dirty || touched;
  m->string_dirty = true; /* until the fill is whole */
  m->string_filling = true;
  lua_pushcfunction(L, fill_string_body);
  lua_pushvalue(L, t);
  int rc = lua_pcall(L, 1, 0, 0);
  m->string_filling = false;
  if (rc != LUA_OK) lua_error(L);
  m->string_filled = true;
  m->string_dirty = dirty;
  return 1;
}

/* T's __index(T, k) and __pairs(T), until it is filled. */
static int string_table_index(lua_State *L) {
  fill_string(L);
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

static int string_table_pairs(lua_State *L) {
  fill_string(L);
  lua_getglobal(L, "next");
  if (!lua_isfunction(L, -1)) {  /* a task without next: the base one */
    lua_pop(L, 1);
    lua_pushcfunction(L, luaopen_base);
    lua_call(L, 0, 1);
    lua_getfield(L, -1, "next");
    lua_remove(L, -2);
  }
  lua_insert(L, -2);
  lua_pushnil(L);
  return 3;                      /* next, T, nil */
}

#define LAZY_STRING_ARITH(fname, op, nargs) \
  static int fname(lua_State *L) {          \
    fill_string(L);                         \
    lua_settop(L, nargs);                   \
    lua_arith(L, op);                       \
    return 1;                               \
  }
LAZY_STRING_ARITH(lazy_string_add, LUA_OPADD, 2)
LAZY_STRING_ARITH(lazy_string_sub, LUA_OPSUB, 2)
LAZY_STRING_ARITH(lazy_string_mul, LUA_OPMUL, 2)
LAZY_STRING_ARITH(lazy_string_mod, LUA_OPMOD, 2)
LAZY_STRING_ARITH(lazy_string_pow, LUA_OPPOW, 2)
LAZY_STRING_ARITH(lazy_string_div, LUA_OPDIV, 2)
LAZY_STRING_ARITH(lazy_string_idiv, LUA_OPIDIV, 2)
LAZY_STRING_ARITH(lazy_string_unm, LUA_OPUNM, 1)

/* The events the string library's metatable answers (Lua 5.4), but
 * __index, which is T. */
static const luaL_Reg lazy_string_meta[] = {{"__add", lazy_string_add},
                                            {"__sub", lazy_string_sub},
                                            {"__mul", lazy_string_mul},
                                            {"__mod", lazy_string_mod},
                                            {"__pow", lazy_string_pow},
                                            {"__div", lazy_string_div},
                                            {"__idiv", lazy_string_idiv},
                                            {"__unm", lazy_string_unm},
                                            {NULL, NULL}};

/* Makes T (in package.loaded and the registry) and the stand-in string
 * metatable, and watches both. */
static void make_string_table(lua_State *L) {
  lua_createtable(L, 0, 0);                           /* T */
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, string_table_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, string_table_pairs);
  lua_setfield(L, -2, "__pairs");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &string_key);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, LUA_STRLIBNAME);
  lua_pop(L, 1);
  watch_table(L, -1, W_STRING);
  lua_pushliteral(L, "");
  luaL_newlibtable(L, lazy_string_meta);
  luaL_setfuncs(L, lazy_string_meta, 0);
  lua_pushvalue(L, -3);
  lua_setfield(L, -2, "__index");                     /* T, "", mt */
  watch_table(L, -1, W_STRING_META);
  lua_setmetatable(L, -2);
  lua_pop(L, 2);
}

/* Opens the libraries and conc's registry entries (protected: memory
 * may run out, and a worker's state has no one to catch a panic). */
static int setup_state(lua_State *L) {
  luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
  luaL_requiref(L, LUA_LOADLIBNAME, luaopen_package, 1);
  watch_package(L);
  lua_pop(L, 2);
  lua_getglobal(L, "require");  /* fresh globals get it from here */
  lua_rawsetp(L, LUA_REGISTRYINDEX, &require_key);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (const luaL_Reg *lib = lazy_libs; lib->name; lib++) {
    lua_pushcfunction(L, lib->func);
    lua_setfield(L, -2, lib->name);
  }
  lua_pushcfunction(L, luaopen_conc_core);
  lua_setfield(L, -2, "conc.core");
  lua_pop(L, 1);
  make_string_table(L);
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, lazy_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, lazy_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &lazy_mt_key);
  lua_pushboolean(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &worker_key);
  /* The host's hook sees the libraries as a task does, opened on first
   * use (a module it loads may use table or string). */
  lua_pushglobaltable(L);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &lazy_mt_key);
  lua_setmetatable(L, -2);
  lua_pop(L, 1);
  lconc_call_state_init(L);  /* the host's modules (conc_lua.h) */
  return 0;
}

static void close_state(lua_State *L) {
  state_mem *m = mem_of(L);
  lua_close(L);
  lheap_free(m->heap);
  free(m);
}

/* A state with the standard libraries (math, io, os, utf8 and debug
 * open on first use), conc.core preloaded (it is this very module: no
 * search of the cpath). What else conc needs in the state (metatables,
 * codec buffers) is made when first used, so a parked worker costs little
 * more than its lua_State. */
static lua_State *new_state(void) {
  state_mem *m = calloc(1, sizeof *m);
  if (m == NULL) return NULL;
  m->heap = lheap_new();
  lua_State *L = m->heap ? lua_newstate(heap_alloc, m) : NULL;
  if (L == NULL) {
    lheap_free(m->heap);
    free(m);
    return NULL;
  }
  lua_atpanic(L, on_panic);
  lua_setwarnf(L, on_warn, m);
  lua_pushcfunction(L, setup_state);  /* no allocation: a light function */
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    close_state(L);
    return NULL;
  }
  return L;
}

/* Whether the metatable at mt (a table or nil) makes a finalizable
 * object: Lua looks at its raw __gc field, when it is set. */
static void note_finalizer(lua_State *L, int mt) {
  if (lua_type(L, mt) != LUA_TTABLE) return;
  lua_pushliteral(L, "__gc");
  if (lua_rawget(L, mt) != LUA_TNIL) mem_of(L)->finalizers = true;
  lua_pop(L, 1);
}

/*
 * A task's globals table has a metatable (the lazy libraries' __index)
 * where a fresh state's has none: code that reads or replaces it
 * (strict.lua's `getmetatable(_G) or {}`, then its own __index) would
 * hide the libraries not opened yet, and a change to it reached every
 * later task. So the four functions that reach a metatable first open
 * every library into a table that has it and take it away: the task
 * then sees, and may change, what a fresh state has.
 */
static void unlazy(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) return;
  idx = lua_absindex(L, idx);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &lazy_mt_key);
  bool lazy = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  if (!lazy) return;
  for (const luaL_Reg *lib = lazy_libs; lib->name; lib++) {
    lua_pushstring(L, lib->name);
    if (lua_rawget(L, idx) == LUA_TNIL) {
      luaL_requiref(L, lib->name, lib->func, 0);
      lua_setfield(L, idx, lib->name); /* (no metatable: raw) */
    }
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  lua_setmetatable(L, idx);
}

/* A task reaches the string metatable: see string_meta_same. */
static void note_string_meta(lua_State *L) {
  if (lua_type(L, 1) == LUA_TSTRING) mem_of(L)->string_meta_exposed = true;
}

/* getmetatable(v) in a worker: the base library's, after unlazy. */
static int worker_getmetatable(lua_State *L) {
  luaL_checkany(L, 1);
  unlazy(L, 1);
  note_string_meta(L);
  if (!lua_getmetatable(L, 1)) {
    lua_pushnil(L);
    return 1;
  }
  luaL_getmetafield(L, 1, "__metatable");
  return 1;
}

/* setmetatable(t, mt) in a worker: the base library's, which it repeats
 * (its errors included), after unlazy, and a note of a finalizer
 * (state_mem). */
static int worker_setmetatable(lua_State *L) {
  int t = lua_type(L, 2);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
  if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
    return luaL_error(L, "cannot change a protected metatable");
  lua_settop(L, 2);
  unlazy(L, 1);
  note_finalizer(L, 2);
  lua_setmetatable(L, 1);
  return 1;
}

/* debug.getmetatable(v): the debug library's, after unlazy. */
static int debug_getmetatable(lua_State *L) {
  luaL_checkany(L, 1);
  unlazy(L, 1);
  note_string_meta(L);
  if (!lua_getmetatable(L, 1)) lua_pushnil(L);
  return 1;
}

/* debug.setmetatable(v, mt): the debug library's, with the same note. */
static int debug_setmetatable(lua_State *L) {
  int t = lua_type(L, 2);
  luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
  lua_settop(L, 2);
  unlazy(L, 1);
  note_string_meta(L);
  note_finalizer(L, 2);
  lua_setmetatable(L, 1);
  return 1;
}

/* print(...) in a worker: as the base library's, but the line is
 * written with one fwrite, so lines printed by workers at once never
 * mix (the base print writes each piece apart). */
static int worker_print(lua_State *L) {
  int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  size_t len;
  const char *line = lua_tolstring(L, -1, &len);
  fwrite(line, 1, len, stdout);
  fflush(stdout);
  return 0;
}

/*
 * Makes a new globals table current and package.loaded._G: the base
 * library opened into it afresh, require, and the libraries opened so
 * far; its metatable opens the others. (Rebuilt rather than copied from
 * a pristine table, so a parked worker keeps one globals table, not two.)
 * A new table, not the old one emptied: a module an earlier task loaded
 * (package.loaded persists) keeps the old one as its _ENV, with the
 * globals it defined as it loaded (function helper() ... end), which it
 * needs; emptied, such a module failed in every later task.
 */
static void fresh_globals(lua_State *L) {
  int n = BASE_GLOBALS + 2;  /* and require, package */
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  for (const luaL_Reg *lib = lazy_libs; lib->name; lib++) {
    n += lua_getfield(L, -1, lib->name) == LUA_TTABLE;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_createtable(L, 0, n);  /* no rehash as it fills */
  lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  lua_pushcfunction(L, luaopen_base);
  lua_call(L, 0, 1);                                 /* env */
  lua_pushcfunction(L, worker_print);
  lua_setfield(L, -2, "print");
  lua_pushcfunction(L, worker_setmetatable);
  lua_setfield(L, -2, "setmetatable");
  lua_pushcfunction(L, worker_getmetatable);
  lua_setfield(L, -2, "getmetatable");
  lua_rawgetp(L, LUA_REGISTRYINDEX, &require_key);
  lua_setfield(L, -2, "require");
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);   /* env, loaded */
  lua_getfield(L, -1, LUA_LOADLIBNAME);
  lua_setfield(L, -3, LUA_LOADLIBNAME);
  unsigned libs = 0;
  for (const luaL_Reg *lib = lazy_libs; lib->name; lib++) {
    if (lua_getfield(L, -1, lib->name) == LUA_TTABLE) {
      lua_setfield(L, -3, lib->name);
      libs |= 1u << (lib - lazy_libs);
    } else {
      lua_pop(L, 1);
    }
  }
  lua_pushliteral(L, LUA_GNAME);
  lua_pushvalue(L, -3);
  lua_rawset(L, -3);                                 /* loaded._G = env */
  lua_pop(L, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &lazy_mt_key);
  lua_setmetatable(L, -2);
  state_mem *m = mem_of(L);
  m->globals = lua_topointer(L, -1);
  m->globals_print = fingerprint(L, -1);
  m->globals_libs = libs;
  lua_pop(L, 1);
}

/* Whether the globals table is as fresh_globals left it: the same
 * table, the same contents (a library a task opened on first use is in
 * it now: it is rebuilt once for that), its metatable, loaded._G. */
static bool globals_untouched(lua_State *L) {
  state_mem *m = mem_of(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  bool same = m->globals != NULL && lua_topointer(L, -1) == m->globals;
  if (same) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &lazy_mt_key);
    if (!lua_getmetatable(L, -2)) lua_pushnil(L);
    same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  if (same) {
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushliteral(L, LUA_GNAME);
    lua_rawget(L, -2);
    same = lua_rawequal(L, -1, -3);
    lua_pop(L, 2);
  }
  same = same && fingerprint(L, -1) == m->globals_print;
  lua_pop(L, 1);
  return same;
}

static void set_path(lua_State *L, const char *field, const char *value) {
  if (value == NULL) return;
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "package");
  if (lua_istable(L, -1)) {
    /* Usually what the last task set: then no new string. */
    const char *now = lua_getfield(L, -1, field) == LUA_TSTRING
                          ? lua_tostring(L, -1)
                          : NULL;
    bool same = now != NULL && strcmp(now, value) == 0;
    lua_pop(L, 1);
    if (!same) {
      lua_pushstring(L, value);
      lua_setfield(L, -2, field);
    }
  }
  lua_pop(L, 2);
}

/* Publishes the outcome. The thread's reference goes before done is
 * closed, so a failure nobody will join is reported before a joiner (or
 * the end of the program) can see the task as finished. */
static void end_task(lconc_task *t, int state) {
  conc_chan *done = t->done;
  conc_retain((conc_obj *)done);
  atomic_store(&t->state, state);
  list_remove(t);
  if (state == TASK_FAILED && !atomic_load(&t->observed)) failed_link(t);
  conc_release(&t->hdr);
  conc__chan_close_owned(done);
  conc_release((conc_obj *)done);
  conc__live_add(-1);  /* after its wake-ups: see sched.c */
}

/* A task's memory limit applies from here (see state_mem). */
static void limit_begin(lua_State *L, const lconc_task *t) {
  state_mem *m = mem_of(L);
  m->hit = false;
  m->lifted = false;
  if (t->memory_limit == 0) return;
  /* What the last task in this state left is collected first: counted
   * in the base, it was room the task could take once a collection
   * freed it (100 MB of a string dropped: 82 MB live under a 1 MB
   * limit). No finalizer can run here (see `finalizers`). */
  lua_gc(L, LUA_GCCOLLECT);
  m->garbage = false;
  m->used = bytes_in_use(L);
  m->limit = m->used + t->memory_limit;
  lheap_use_malloc(m->heap, 1);
  lua_setallocf(L, counting_alloc, m);
}

/* The limit is lifted (conc's reporting needs memory), its room kept
 * for limit_again. */
static void limit_lift(lua_State *L) {
  state_mem *m = mem_of(L);
  if (m->limit == 0) return;
  m->room = m->used < m->limit ? m->limit - m->used : 0;
  m->lifted = true;
  lua_setallocf(L, heap_alloc, m);
  m->limit = 0;
  lheap_use_malloc(m->heap, 0);
}

/* The limit is lifted. True if the task ran out of memory: it ended
 * with a memory error (the message handler is not called for one) after
 * a refusal; a refusal the emergency collection made good, then another
 * error, is that error. */
static bool limit_end(lua_State *L, int status) {
  limit_lift(L);
  return mem_of(L)->hit && status == LUA_ERRMEM;
}

/* The task is over: its limit's record goes (a state's next task may
 * fail before its limit_begin: light_start's). */
static void limit_done(lua_State *L) {
  state_mem *m = mem_of(L);
  m->lifted = false;
  m->hit = false;
}

/* The limit again, with the room it had when lifted: for the task's own
 * code that runs after conc's reporting began (its <close> methods after
 * an error, its finalizers), which the limit bounds as it bounded the
 * body. limit_lift lifts it again. */
static void limit_again(lua_State *L) {
  state_mem *m = mem_of(L);
  if (!m->lifted) return;
  m->used = bytes_in_use(L);
  m->limit = m->used + m->room;
  if (m->limit == 0) m->limit = 1; /* no room: still a limit */
  lheap_use_malloc(m->heap, 1);
  lua_setallocf(L, counting_alloc, m);
}

/* ---- running a task ----------------------------------------------------- */

/* The message handler (upvalue 1: the task): appends the traceback and
 * where the task was spawned to a string error (lerrhint.c, which also
 * hints at fresh globals for a nil global). Any
 * other error value travels as it is (a number stays a number, as a Go
 * user expects of a value), unless the codec cannot carry it: then the
 * error is its text, why it could not travel, and the traceback. */
/* The error value at err (the top): true if it travels as it is (not a
 * string); else it becomes a string (its text, and why it cannot
 * travel, for a value that is not one), still at err and the top. */
static bool error_travels(lua_State *L, int err) {
  if (lua_type(L, err) == LUA_TSTRING) return false;
  conc_msg m;
  if (lconc_encode_protected(L, err, 1, &m, "conc.go", LCONC_ERROR, 1) == 0) {
    conc_msg_free(&m);
    lua_settop(L, err);
    return true;
  }
  lconc_tostring_safe(L, err); /* err, why, text */
  lua_pushfstring(L, "%s (%s)", lua_tostring(L, -1), lua_tostring(L, -2));
  lua_replace(L, err);
  lua_settop(L, err);
  return false;
}

static int traceback(lua_State *L) {
  const lconc_task *t = lua_touserdata(L, lua_upvalueindex(1));
  lua_settop(L, 1);
  /* conc's reporting, not counted (as a light task's): the limit is
   * lifted while it runs, and back for the <close> methods after. */
  limit_lift(L);
  if (!error_travels(L, 1)) lconc_errhint_traceback(L, &t->site);
  limit_again(L);
  return 1;
}

/* Protected body: prepare the state, decode fn and its arguments (run_task
 * frees the call message again after an error), call it. */
/* A task's state before its function: its spawner's paths, fresh
 * globals (L's stack emptied). */
static void prepare_state(lua_State *L, const lconc_task *t) {
  lua_settop(L, 0);
  set_path(L, "path", t->path);
  set_path(L, "cpath", t->cpath);
  /* A new state's first (clean_body makes them afresh after a task) */
  if (mem_of(L)->globals == NULL) fresh_globals(L);
}

static int task_body(lua_State *L) {
  lconc_task *t = (lconc_task *)lua_touserdata(L, 1);
  prepare_state(L, t);
  int n = lconc_decode_in(L, &t->call, "conc.go", LCONC_ARG);
  lua_call(L, n - 1, LUA_MULTRET);
  return lua_gettop(L);
}

/* What the protected finish needs to know and tells back. */
typedef struct outcome {
  lconc_task *t;
  int ok;
  bool out_of_memory;
} outcome;

/* Protected: encodes the outcome (the values above the outcome pointer:
 * results, or one error value) into t->result; sets o->ok. */
static int finish_body(lua_State *L) {
  outcome *o = (outcome *)lua_touserdata(L, 1);
  lconc_task *t = o->t;
  if (!o->ok && o->out_of_memory) {
    lua_settop(L, 1);
    lua_pushfstring(L,
                    "conc.go: worker %I ran out of memory: its limit "
                    "is %I bytes",
                    (lua_Integer)t->id, (lua_Integer)t->memory_limit);
  }
  int n = lua_gettop(L) - 1;
  if (lconc_encode_protected(L, 2, n, &t->result, "conc.go", LCONC_RESULT, 1) ==
      0)
    return 0;
  /* The results (or error) could not travel: that is the error now. */
  if (!o->ok) lconc_tostring_safe(L, 2);
  o->ok = 0;
  lconc_encode(L, -1, 1, &t->result, "conc.go", LCONC_VALUE, 1);
  return 0;
}

/* Encodes the outcome: the values on L above index base. */
static int finish(lua_State *L, lconc_task *t, int ok, bool oom, int base) {
  outcome o = {t, ok, oom};
  int n = lua_gettop(L) - base;
  lua_pushcfunction(L, finish_body);
  lua_insert(L, base + 1);
  lua_pushlightuserdata(L, &o);
  lua_insert(L, base + 2);
  if (lua_pcall(L, n + 1, 0, 0) != LUA_OK) {  /* out of memory */
    lconc_msg_from_string(&t->result, "conc.go: not enough memory");
    return 0;
  }
  return o.ok;
}

/* A locked task's thread whose state holds garbage its tasks left (a
 * pub/sub whose subscribers wait for its close): counted as a pending
 * timer from before the task ends until idle_wait collects it or the
 * state is closed, as the pool's states are swept (its own thread). */
static CONC_TLS bool locked_garbage;

static void locked_garbage_set(bool on) {
  if (locked_garbage == on) return;
  locked_garbage = on;
  conc__timers_busy_add(on ? 1 : -1); /* off: after its wake-ups */
}

/* Runs t in L; true if L must be replaced before the next task (the
 * task changed what a fresh state would not have, see clean_state). */
static bool run_task(lua_State *L, lconc_task *t) {
  current_id = t->id;
  conc__thread_enter(t->id);
  /* What the last task left is this running task's state's now: only it
   * collects it, and if it waits for good, so does that garbage. */
  locked_garbage_set(false);
  lua_settop(L, 0);
  lua_pushlightuserdata(L, t);
  lua_pushcclosure(L, traceback, 1);
  lua_pushcfunction(L, task_body);
  lua_pushlightuserdata(L, t);
  limit_begin(L, t);
  int status = lua_pcall(L, 1, LUA_MULTRET, 1);
  conc_msg_free(&t->call);  /* if an error left it undecoded: else a no-op */
  bool oom = limit_end(L, status);
  int ok = status == LUA_OK;
  if (t->on_end) t->on_end(t, L, ok, 1);
  free(t->path);
  free(t->cpath);
  t->path = t->cpath = NULL;
  ok = finish(L, t, ok, oom, 1);
  lua_settop(L, 0);
  current_id = 0;
  lconc_blocking(NULL, NULL); /* the state may be closed before the next task */
  /* Counted still: a finalizer that waits for good there is a deadlock. */
  if (t->memory_limit) { /* give it back now; its finalizers limited */
    limit_again(L);
    lua_gc(L, LUA_GCCOLLECT);
    limit_lift(L);
  }
  limit_done(L);
  conc__thread_leave();
  /* Before the task ends: its spawner may hand the thread the next one
   * at once, and a thread still busy here would not be found idle. */
  bool replace = clean_state(L);
  /* Its finalizers run next (thread_main): counted live from before its
   * end, or a joiner's wait could look like a deadlock meanwhile. */
  if (mem_of(L)->finalizers) conc__live_add(1);
  locked_garbage_set(true);
  end_task(t, ok ? TASK_DONE : TASK_FAILED);
  return replace;
}

/* A task that could not start (no state): it fails with a message. */
static void fail_task(lconc_task *t, const char *why) {
  conc_msg_free(&t->call);
  free(t->path);
  free(t->cpath);
  lconc_msg_from_string(&t->result, why);
  if (t->on_end) t->on_end(t, NULL, 0, 0);
  end_task(t, TASK_FAILED);
}

/* Parks the thread on the idle list until a task comes or the deadline
 * passes; returns the task, or NULL (then it is off the list). */
static lconc_task *idle_park(pool_thread *p, conc_time deadline) {
  conc__lock(&pool.lock);
  p->task = NULL;
  conc__waiter_arm(p->w);
  p->next_idle = pool.idle;
  pool.idle = p;
  pool.nidle++;
  conc__unlock(&pool.lock);
  if (conc__waiter_park(p->w, deadline) != CONC_SEL_TIMEOUT)
    return p->task; /* the spawner unlinked us and set task */
  conc__lock(&pool.lock);
  for (pool_thread **q = &pool.idle; *q; q = &(*q)->next_idle)
    if (*q == p) {
      *q = p->next_idle;
      pool.nidle--;
      break;
    }
  conc__unlock(&pool.lock);
  return NULL;
}

/* Idles the thread; returns its next task, or NULL to exit. A thread
 * idle for IDLE_GC_SECONDS collects its state's garbage first, so the
 * objects its last task dropped are released (memory returns to its
 * baseline once a program goes quiet), and gives back its heap's chunks
 * that hold nothing any more (freed blocks stay in the heap, see
 * heap.h); after IDLE_SECONDS it exits. */
static lconc_task *idle_wait(pool_thread *p) {
  conc__lock(&pool.lock);
  bool full = pool.nidle >= MAX_IDLE;
  conc__unlock(&pool.lock);
  if (full) return NULL;
  lconc_task *t = idle_park(p, conc_deadline_in(IDLE_GC_SECONDS));
  if (t != NULL) return t;
  lua_gc(p->L, LUA_GCCOLLECT);
  lheap_trim(mem_of(p->L)->heap);
  locked_garbage_set(false);
  return idle_park(p, conc_deadline_in(IDLE_SECONDS));
}

static bool finalize(lua_State *L, bool queued);

static void *thread_main(void *arg) {
  pool_thread *p = (pool_thread *)arg;
  conc__waiter_adopt(p->w); /* made by the spawner */
  lconc_task *t = p->task;
  p->L = new_state();
  if (p->L == NULL) {
    fail_task(t, "conc.go: cannot create a lua_State");
  } else {
    while (t != NULL) {
      bool replace = run_task(p->L, t);
      /* A locked task's finalizers run after it too (see state_put),
       * on its thread, before the next task. */
      if (mem_of(p->L)->finalizers) {
        replace = finalize(p->L, false) || replace;
        conc__live_add(-1); /* its close, if any, is locked_garbage's */
      }
      if (replace) {
        close_state(p->L);
        locked_garbage_set(false);
        if ((p->L = new_state()) == NULL) break;
      }
      t = idle_wait(p);
    }
    if (p->L != NULL) close_state(p->L);
    locked_garbage_set(false);
  }
  conc__lock(&pool.lock);
  pool.threads--;
  conc__unlock(&pool.lock);
  free(p);
  return NULL;
}

/* Hands t to an idle thread; false if there is none. */
static bool hand_off(lconc_task *t) {
  conc__lock(&pool.lock);
  while (pool.idle != NULL) {
    pool_thread *p = pool.idle;
    pool.idle = p->next_idle;
    pool.nidle--;
    if (conc__waiter_claim(p->w, 0)) {
      p->task = t;
      conc__unlock(&pool.lock);
      conc__waiter_wake(p->w);
      return true;
    }
    /* It timed out and is leaving (it finds itself unlinked). */
  }
  conc__unlock(&pool.lock);
  return false;
}

static int new_thread(lconc_task *t) {
  pool_thread *p = calloc(1, sizeof *p);
  if (p == NULL) return CONC_ENOMEM;
  p->w = conc__waiter_new();
  if (p->w == NULL) {
    free(p);
    return CONC_ENOMEM;
  }
  p->task = t;
  pthread_attr_t attr;
  CONC_CHECK(pthread_attr_init(&attr));
  CONC_CHECK(pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED));
  CONC_CHECK(pthread_attr_setstacksize(&attr, STACK_SIZE));
  conc__lock(&pool.lock);
  pool.threads++;
  conc__unlock(&pool.lock);
  pthread_t tid;
  sigset_t old_mask; /* the thread blocks conc's signals (signal.c) */
  conc_signal_block(&old_mask);
  int rc = pthread_create(&tid, &attr, thread_main, p);
  conc_signal_restore(&old_mask);
  CONC_CHECK(pthread_attr_destroy(&attr));
  if (rc != 0) {
    conc__lock(&pool.lock);
    pool.threads--;
    conc__unlock(&pool.lock);
    conc__waiter_release(p->w);
    free(p);
    return CONC_ETHREAD;
  }
  return CONC_OK;
}

/* ---- light tasks: run by the scheduler (proc.c) ------------------------- */

/*
 * A light task runs in a coroutine of a pooled state (the state's main
 * thread prepares it and encodes its outcome), resumed by whichever
 * scheduler thread picks it up; between its turns its state is still.
 * It yields for three reasons: a blocking call parked it (lconc_call;
 * its fiber holds the call), the scheduler preempted it (a count hook
 * set from SIGURG's handler), or its own code yielded at the top level
 * (coroutine.yield or conc.gosched: it only lets others run first).
 */
enum { Y_NONE, Y_PARK, Y_PREEMPT };

static void set_hooks(void);

#define MAX_POOLED_STATES 256

/* The pool of states, and the queue of states whose finalizers are to
 * run (no bound: each is a finished task's, and a thread's idle work
 * empties it; closing one when a pool was full ran them in the ending
 * task). */
static struct {
  conc__lock_t lock;
  lua_State *free[MAX_POOLED_STATES];
  int n;
  lua_State *fin_head, *fin_tail;
} states = {CONC_LOCK_INIT, {0}, 0, NULL, NULL};

static const char co_key = 'c'; /* registry: the state's coroutine */

/* The task this thread runs now, and its coroutine (the signal handler
 * reads it). */
static CONC_TLS lconc_task *cur_task;
static CONC_TLS lua_State *volatile cur_co;

static bool at_task_top(lua_State *L) {
  return cur_task != NULL && L == cur_task->co;
}

static lua_State *state_get(void) {
  conc__lock(&states.lock);
  lua_State *L = states.n > 0 ? states.free[--states.n] : NULL;
  conc__unlock(&states.lock);
  return L ? L : new_state();
}

/* Into the pool as it is (closed if the pool is full). */
static void state_put_clean(lua_State *L) {
  conc__lock(&states.lock);
  bool pooled = states.n < MAX_POOLED_STATES;
  if (pooled) states.free[states.n++] = L;
  conc__unlock(&states.lock);
  if (!pooled) close_state(L);
}

/*
 * States the main script's thread put back with garbage (its tasks'
 * turns ran there) are collected by that thread when its wait is about
 * to sleep, with no task to run (collect_main_garbage): the Ps' threads
 * may all be asleep already, and nothing woke one for them (a pub/sub a
 * task dropped stayed alive, its subscribers open, in 3 runs of 10).
 * Only plain pooled states: those with finalizers are idle work, for a
 * P's thread.
 */
static atomic_bool main_garbage;

/* A state back in the pool gives back what its last task's garbage took
 * when that is much (a parked state's heap is a few KB). */
#define BIG_HEAP (256u << 10)

/* A state whose task set a finalizer (a metatable with __gc) is queued
 * for collect_pooled to collect, which a thread does in its idle work,
 * where no task runs and its P can be handed on (proc.c): the finalizers
 * then run in no task's name (Go runs them in a goroutine of their own),
 * never inside a later unrelated task (blaming it for what they do, or
 * waiting for it: a finalizer that waits for a task that would run in
 * its own state waited for ever). While it waits in the queue it counts
 * as a pending timer does (its finalizers may wake a waiter: no
 * deadlock yet) and as idle work (a thread is woken for it). Once they
 * have run it is replaced if `replace` (the task changed what a fresh
 * state would not have), else pooled. */
static void state_put(lua_State *L, bool replace) {
  state_mem *m = mem_of(L);
  lheap *h = m->heap;
  m->garbage = true;
  if (m->finalizers) {
    m->close_after = replace;
    m->fin_next = NULL;
    conc__timers_busy_add(1); /* before anyone may take it */
    conc__lock(&states.lock);
    if (states.fin_tail) mem_of(states.fin_tail)->fin_next = L;
    else states.fin_head = L;
    states.fin_tail = L;
    conc__unlock(&states.lock);
    conc__sched_idle_work_add(1); /* after: a thread woken finds it */
    return;
  }
  if (replace) {
    close_state(L);
    return;
  }
  if (lheap_chunk_bytes(h) > BIG_HEAP) {
    lua_gc(L, LUA_GCCOLLECT);
    lheap_trim(h);
    m->garbage = false;
  }
  bool by_main = m->garbage && conc__sched_on_main(); /* (before: it is */
  state_put_clean(L); /* anyone's after) */
  if (by_main && !atomic_load_explicit(&main_garbage, memory_order_relaxed))
    atomic_store(&main_garbage, true);
}

/* States take_garbage gave out, not yet back (see the sweep below). */
static atomic_int collecting;

/* A state to collect: the first queued for its finalizers (if
 * `finalizers`), else a pooled one with garbage; NULL if none. A pooled
 * one is counted in `collecting` until the collector is done with it
 * (a queued one's finalizers count as a live thread: see finalize). */
static lua_State *take_garbage(bool finalizers) {
  conc__lock(&states.lock);
  lua_State *L = finalizers ? states.fin_head : NULL;
  bool queued = L != NULL;
  if (queued) {
    states.fin_head = mem_of(L)->fin_next;
    if (states.fin_head == NULL) states.fin_tail = NULL;
  } else {
    for (int i = 0; i < states.n; i++)
      if (mem_of(states.free[i])->garbage) {
        L = states.free[i];
        states.free[i] = states.free[--states.n];
        break;
      }
  }
  if (L != NULL && !queued) atomic_fetch_add(&collecting, 1);
  conc__unlock(&states.lock);
  if (queued) conc__sched_idle_work_add(-1); /* taken up */
  return L;
}

/* Collects a pooled state take_garbage gave out and pools it again. */
static void collect_one(lua_State *L) {
  lua_gc(L, LUA_GCCOLLECT);
  lheap_trim(mem_of(L)->heap);
  mem_of(L)->garbage = false;
  state_put_clean(L);
  atomic_fetch_sub(&collecting, 1);
}

/* Runs the finalizers of a state taken from the queue (queued), or of a
 * locked task's thread after its task; true if the state must be
 * replaced. This thread counts as a live one meanwhile, in the deadlock
 * check's terms, so that one that waits for good is a deadlock (reported
 * as "finalizers"), as in Go; the caller ends that count once it has
 * closed or pooled the state (closing it releases what its tasks left,
 * which may wake a waiter: a count ended before let a false deadlock be
 * reported).
 * What they changed is undone, or the state replaced, as after a task.
 * One that makes a new finalizable object leaves it to the state's next
 * collection (taking it for idle work again would loop). */
static bool finalize(lua_State *L, bool queued) {
  state_mem *m = mem_of(L);
  if (queued) conc__live_add(1); /* else run_task counted it */
  conc__thread_enter(-1);
  if (queued) conc__timers_busy_add(-1); /* now this thread's */
  lua_gc(L, LUA_GCCOLLECT);
  conc__thread_leave();
  m->finalizers = false;
  m->garbage = false;
  const void *globals = m->globals;
  if (clean_state(L)) return true;
  /* The check replaced the globals a finalizer changed: the old ones
   * are garbage, for the sweep to see. */
  m->garbage = m->globals != globals;
  lheap_trim(m->heap);
  return false;
}

static void run_finalizers(lua_State *L) {
  bool close = mem_of(L)->close_after;
  if (finalize(L, true) || close) close_state(L);
  else state_put_clean(L);
  conc__live_add(-1); /* after what closing it released woke its waiters */
}

/* A scheduler thread about to sleep (nothing to run) collects the
 * garbage of the pooled states that ran a task since their last
 * collection, and gives back their heaps' empty chunks: what a finished
 * task dropped (conc objects included) is released once the program goes
 * quiet, as an idle worker thread did before light tasks. One state at a
 * time out of the pool: a finalizer that blocks holds only its own.
 * COLLECT_AT_ONCE states, then on while no task waits: with 8 at most,
 * 50 tasks that ended on a thread that then slept left 42 states, and
 * what they held (a pub/sub whose subscribers wait for its close, a
 * ticker that keeps a deadlock from being seen), until each ran a task
 * again. */
#define COLLECT_AT_ONCE 8
#define COLLECT_MAX 4096 /* at one time, however many keep coming */

/* A deadlock about to be reported (sched.c's sweep hook): if pooled
 * states hold uncollected garbage, whose release may wake a waiter (a
 * pub/sub a finished task held closes its subscribers), a P's thread
 * collects them first, counted as a pending timer meanwhile (a false
 * report in 1 run of 20 at MAXPROCS 8, racing the idle collection). */
static atomic_bool sweeping;

static void collect_pooled_some(bool all);

static bool sweep_before_deadlock(void) {
  /* (one being collected counts: what it releases may wake someone).
   * Read under the pool's lock, which take_garbage holds as it moves a
   * state from the pool into `collecting`: read before it, a state taken
   * in between was in neither place (a false report, 1 run in ~700). */
  conc__lock(&states.lock);
  bool any = atomic_load(&collecting) > 0;
  for (int i = 0; i < states.n && !any; i++)
    any = mem_of(states.free[i])->garbage;
  conc__unlock(&states.lock);
  if (!any) return false;
  if (atomic_exchange(&sweeping, true)) return true; /* under way */
  conc__timers_busy_add(1);
  conc__sched_idle_work_add(1);
  return true;
}

static void collect_pooled(void) {
  bool sweep = atomic_exchange(&sweeping, false);
  collect_pooled_some(sweep);
  if (sweep) {
    conc__sched_idle_work_add(-1);
    conc__timers_busy_add(-1); /* the check runs again */
  }
}

static void collect_pooled_some(bool all) {
  for (int k = 0; k < COLLECT_MAX;) {
    if (!all && k >= COLLECT_AT_ONCE && conc__sched_work_waiting()) return;
    lua_State *L = take_garbage(true);
    if (L == NULL) return;
    if (mem_of(L)->finalizers) { /* all queued: only pooled ones count */
      run_finalizers(L);
      continue;
    }
    k++;
    collect_one(L);
  }
}

static void collect_main_garbage(void) {
  if (!atomic_load_explicit(&main_garbage, memory_order_relaxed) ||
      !atomic_exchange(&main_garbage, false))
    return;
  for (int k = 0; k < COLLECT_AT_ONCE; k++) {
    lua_State *L = take_garbage(false);
    if (L == NULL) return;
    collect_one(L);
  }
}

/* The state's coroutine, made on first use (protected: memory). */
static int get_co(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &co_key) != LUA_TTHREAD) {
    lua_pop(L, 1);
    lua_newthread(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &co_key);
  }
  return 1;
}

/* Protected on the state's main thread: the task's function and its
 * arguments, ready on the coroutine (left on top of L). */
static int light_setup(lua_State *L) {
  lconc_task *t = (lconc_task *)lua_touserdata(L, 1);
  prepare_state(L, t);
  get_co(L);
  lua_State *co = lua_tothread(L, -1);
  int n = lconc_decode_in(L, &t->call, "conc.go", LCONC_ARG);
  lconc_checkstack(co, n + LUA_MINSTACK, "conc.go: too many arguments");
  lua_xmove(L, co, n);
  t->nargs = n - 1;
  return 1; /* the coroutine: kept on L while the task lives */
}

static lconc_task *parkable(lua_State *L);
static void preempt_hook(lua_State *L, lua_Debug *ar);

/*
 * conc's preemption check on co (from the preemption signal's handler,
 * on the task's thread): a count hook that fires at its next
 * instruction. A coroutine with a debug hook of the task's own
 * (debug.sethook: a profiler, a coverage tool) is preempted too: conc's
 * check takes the hook's place until it fires, and gives it back then
 * (unhook_preempt), so the task's hook misses that one event. Before,
 * such a task was never preempted, and a main script's wait whose
 * thread ran it waited as long as it computed (for good in a loop),
 * Ctrl-C included. Not a count hook of more than KEEP_COUNT_MAX
 * instructions: given back, its countdown starts again (Lua's API
 * cannot read how far it had gone), so one longer than a slice (an
 * instruction budget, `error` after 1e7) would never fire in a task
 * preempted each slice; such a task is not preempted (its processor
 * goes to another thread after 20 ms, as a comparator's).
 */
#define KEEP_COUNT_MAX 10000
static void hook_preempt(lconc_task *t, lua_State *co) {
  lua_Hook h = lua_gethook(co);
  int mask = lua_gethookmask(co), count = lua_gethookcount(co);
  if (h == preempt_hook) return;
  /* Caught inside the task's own lua_sethook, between its writes of the
   * hook and of the mask: the next signal looks again. */
  if ((h == NULL) != (mask == 0)) return;
  if (h != NULL) {
    if (t == NULL) return; /* nowhere to keep it */
    if ((mask & LUA_MASKCOUNT) && count > KEEP_COUNT_MAX) return;
    /* Its own entry (one a signal left when the check did not fire
     * before co ended: resume_step takes those off), else a free one. */
    int i = t->kept[0].co == co ? 0 : t->kept[1].co == co ? 1 : -1;
    if (i < 0) i = t->kept[0].co == NULL ? 0 : t->kept[1].co == NULL ? 1 : -1;
    if (i < 0) return;
    t->kept[i].hook = h;
    t->kept[i].mask = mask;
    t->kept[i].count = count;
    atomic_signal_fence(memory_order_seq_cst);
    t->kept[i].co = co;
    atomic_signal_fence(memory_order_seq_cst);
  }
  lua_sethook(co, preempt_hook, LUA_MASKCOUNT, 1);
}

/* Takes conc's check off L: the task's own hook back, if it replaced one.
 * A signal meanwhile finds conc's check still there (and leaves it) until
 * the task's hook is back (then keeps that one again). */
static void unhook_preempt(lconc_task *t, lua_State *L) {
  if (lua_gethook(L) != preempt_hook) return;
  for (int i = 0; t != NULL && i < 2; i++) {
    if (t->kept[i].co != L) continue;
    lua_Hook h = t->kept[i].hook;
    int mask = t->kept[i].mask, count = t->kept[i].count;
    t->kept[i].co = NULL;
    atomic_signal_fence(memory_order_seq_cst);
    lua_sethook(L, h, mask, count);
    return;
  }
  lua_sethook(L, NULL, 0, 0);
}

static void preempt_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lconc_task *t = parkable(L); /* its coroutine, or one it resumed */
  if (t != NULL) {
    unhook_preempt(t, L);
    t->yield_reason = Y_PREEMPT;
    t->yield_from = L;
    lua_yield(L, 0);
    return;
  }
  /* In a C function that cannot yield: look again a little later (the
   * task's own hook back meanwhile, if it has one: the next signal looks
   * again). The main script's thread running it (helping) sets it aside
   * instead, and goes back to the main script's wait, whose time may be
   * up. */
  unhook_preempt(cur_task, L);
  if (lua_gethook(L) == NULL) lua_sethook(L, preempt_hook, LUA_MASKCOUNT, 1000);
  if (conc__sched_helped_pause()) unhook_preempt(cur_task, L);
}

/* SIGURG's handler (proc.c): as lua.c's Ctrl-C handler does, it only
 * sets a hook, on the coroutine that runs: the task's, or the innermost
 * one it resumed through conc's coroutine.resume or wrap (a loop inside
 * one ran on unpreempted: the hook is per coroutine), whose yield then
 * passes up to the task as a blocking call's does. A coroutine with a
 * debug hook of its own has it set aside for conc's check (see
 * hook_preempt). */
static void preempt_signal(void) {
  lua_State *co = cur_co;
  lconc_task *t = cur_task;
  if (co == NULL) return;
  int depth = t != NULL ? t->depth : 0; /* this thread's: no race */
  if (depth > 0 && co != t->L) co = t->chain[depth - 1].co;
  hook_preempt(t, co);
  /* Outside the body (outside_begin): the <close>s an error left run on
   * the coroutine, as lua_resetthread closes it. */
  lua_State *body = t != NULL && co == t->L ? t->co : NULL;
  if (body != NULL) hook_preempt(t, body);
}

/*
 * A task's code outside its coroutine: decoding its call (which loads
 * the modules it names), and its outcome (an error's __tostring, the
 * results' __conc_export, <close> handlers an error runs, an errgroup's
 * encoding). preempt_signal hooks the state's own thread meanwhile: it
 * cannot yield, but the main script's thread running the task (helping)
 * sets the turn aside there as it does in the body's C calls; before, a
 * wait with a timeout in the main script was held until that code ended
 * (forever for a __tostring that loops).
 */
static void outside_begin(lua_State *L) { cur_co = L; }

static void outside_end(lconc_task *t) {
  cur_co = NULL; /* first: a signal now hooks nothing */
  unhook_preempt(t, t->L);
  if (t->co) unhook_preempt(t, t->co);
}

/* The error at the top of co (a task that raised), as the message
 * handler of a locked task makes it, on top of L. */
static void light_error(lua_State *L, lua_State *co) {
  lua_xmove(co, L, 1);
  if (error_travels(L, lua_gettop(L))) return;
  lconc_errhint_traceback_of(L, co, 0, &cur_task->site);
  lua_replace(L, -2);
}

/* Closes co's pending <close> variables (lua_resetthread) under the
 * task's memory limit again: they are its code, bounded as its body was
 * (a locked task's close inside its protected call, limited). Sets
 * *oom if one ran out of memory there. */
static int close_limited(lua_State *L, lua_State *co, bool *oom) {
  limit_again(L);
  int closed = lua_resetthread(co);
  if (closed == LUA_ERRMEM && mem_refused(mem_of(L))) *oom = true;
  limit_lift(L);
  return closed;
}

/* What light_outcome found besides the outcome. */
typedef struct ending {
  bool dead; /* co must be replaced */
  bool oom; /* a closing method ran out of the task's memory */
} ending;

/* The task ended (status: lua_resume's, or the setup's): its outcome,
 * then its state back to the pool and its waiter back. */
/* Protected: the outcome of co (1: co, 2: lua_resume's status, 3: its
 * count of results, 4: a light userdata, an ending) onto L, results or
 * the error with its traceback. An error
 * leaves co's <close> variables open: they close here, after the
 * traceback was taken, with the error as their second argument; one
 * that raises makes its error the task's, as in a locked task (a pcall:
 * the last error wins). */
static int light_outcome(lua_State *L) {
  lua_State *co = (lua_State *)lua_touserdata(L, 1);
  int status = (int)lua_tointeger(L, 2), nres = (int)lua_tointeger(L, 3);
  ending *e = (ending *)lua_touserdata(L, 4);
  lua_settop(L, 0);
  if (status == LUA_OK) {
    lconc_checkstack(L, nres + LUA_MINSTACK, "conc.go: too many results");
    lua_xmove(co, L, nres);
    return lua_gettop(L);
  }
  if (status == LUA_ERRMEM) lua_xmove(co, L, 1);
  else light_error(L, co); /* L: the outcome, traceback and all */
  lconc_checkstack(co, 1, "conc.go: error");
  lua_pushvalue(L, 1); /* what closing methods get: the outcome, as a */
  lua_xmove(L, co, 1); /* locked task's get its message handler's */
  e->dead = true; /* an error ended it: it is replaced */
  if (close_limited(L, co, &e->oom) != LUA_OK && lua_gettop(co) >= 1) {
    lua_xmove(co, L, 1); /* L: outcome, the error after closing */
    if (!lua_rawequal(L, 1, 2)) { /* a closing method raised */
      /* Its traceback: the frames the first error unwound (closing took
       * them from co: "stack traceback:" was left empty), as lua5.4's
       * message handler shows them below the closing method. */
      const char *first = lua_type(L, 1) == LUA_TSTRING ? lua_tostring(L, 1)
                                                        : NULL;
      const char *frames = first ? strstr(first, "\nstack traceback:") : NULL;
      bool travels = error_travels(L, 2);
      if (!travels && frames != NULL) {
        lua_pushfstring(L, "%s%s", lua_tostring(L, 2), frames);
        lua_replace(L, 2);
      } else if (!travels) { /* of what is left */
        lconc_errhint_traceback_of(L, co, 0, &cur_task->site);
        lua_replace(L, 2);
      }
      lua_replace(L, 1);
    }
    lua_settop(L, 1);
  }
  return 1;
}

static void light_end(lconc_task *t, int status, int nres) {
  lua_State *L = t->L, *co = t->co;
  conc__g *g = &t->g;
  outside_begin(L);
  bool oom = limit_end(L, status); /* first: reporting needs memory */
  conc_msg_free(&t->call);
  lua_settop(L, 1); /* the coroutine (or the setup's error) */
  if (co != NULL) {
    lua_pop(L, 1); /* still in the registry */
    ending e = {false, false};
    lua_pushcfunction(L, light_outcome); /* a light function: no block */
    lua_pushlightuserdata(L, co);
    lua_pushinteger(L, status);
    lua_pushinteger(L, nres);
    lua_pushlightuserdata(L, &e);
    if (lua_pcall(L, 4, LUA_MULTRET, 0) != LUA_OK) {
      status = LUA_ERRMEM; /* its message is Lua's, made in advance */
      if (!e.dead) e.dead = close_limited(L, co, &e.oom) != LUA_OK;
    }
    oom = oom || e.oom;
    lua_settop(co, 0);
    lua_sethook(co, NULL, 0, 0); /* its debug.sethook, as reset_state's */
    t->kept[0].co = t->kept[1].co = NULL;
    if (e.dead) { /* a coroutine an error ended is replaced */
      /* Out of the task first: a collection below may free it (the
       * memory limit's, or a step of finish's), and a preemption signal
       * (preempt_signal) and outside_end hooked t->co: freed memory. */
      t->co = NULL;
      lua_pushnil(L);
      lua_rawsetp(L, LUA_REGISTRYINDEX, &co_key); /* no new block */
    }
  }
  int ok = status == LUA_OK;
  if (t->on_end) t->on_end(t, L, ok, 0);
  free(t->path);
  free(t->cpath);
  t->path = t->cpath = NULL;
  ok = finish(L, t, ok, oom, 0);
  lua_settop(L, 0);
  lconc_blocking(NULL, NULL);
  if (t->memory_limit) { /* counted still, as run_task's */
    limit_again(L);
    lua_gc(L, LUA_GCCOLLECT);
    limit_lift(L);
    mem_of(L)->finalizers = false; /* they ran */
  }
  limit_done(L);
  outside_end(t);
  conc__waiter_leave(g->w);
  state_put(L, clean_state(L));
  t->L = t->co = NULL;
  g->w->g = NULL;
  conc__waiter_release(g->w);
  conc__g_end(g);
  end_task(t, ok ? TASK_DONE : TASK_FAILED); /* t may be freed now */
}

/* First turn: a state, the task's function ready in its coroutine. */
static bool light_start(lconc_task *t) {
  lua_State *L = state_get();
  if (L == NULL) {
    conc__waiter_release(t->g.w);
    conc__g_end(&t->g);
    fail_task(t, "conc.go: cannot create a lua_State");
    return false;
  }
  t->L = L;
  t->depth = 0;
  conc__waiter_enter(t->g.w, t->id);
  lua_settop(L, 0);
  lua_pushlightuserdata(L, t);
  if (!lua_checkstack(L, 8)) {
    light_end(t, LUA_ERRMEM, 0);
    return false;
  }
  /* The handler is made before the limit applies (unprotected here). */
  lua_pushcclosure(L, traceback, 1);
  limit_begin(L, t);
  lua_pushcfunction(L, light_setup);
  lua_pushlightuserdata(L, t);
  outside_begin(L);
  int status = lua_pcall(L, 1, 1, 1);
  outside_end(t);
  lua_remove(L, 1);
  if (status != LUA_OK) {
    light_end(t, status, 0);
    return false;
  }
  t->co = lua_tothread(L, 1);
  return true;
}

/*
 * lua_resume for a turn. Under ThreadSanitizer it runs in a TSan fiber
 * of its own (a context with its own shadow call stack, no new stack):
 * a park leaves the binding's frames by lua_yieldk's longjmp, which TSan
 * does not see from the uninstrumented Lua library, so their shadow
 * frames would pile up on the thread's context (and overflow it, at 64 K
 * frames); they go with the fiber instead. Switching synchronizes, as a
 * thread's own code would be ordered.
 */
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
/* One turn fiber per thread, made anew every 256 turns (making one per
 * turn made a ping-pong ~100x slower under TSan). */
static CONC_TLS void *turn_fiber;
static CONC_TLS int turns_in_fiber;
static int tsan_resume(lua_State *co, lua_State *from, int nargs, int *nres) {
  void *me = __tsan_get_current_fiber();
  if (turn_fiber != NULL && ++turns_in_fiber >= 256) {
    __tsan_destroy_fiber(turn_fiber);
    turn_fiber = NULL;
  }
  if (turn_fiber == NULL) {
    turn_fiber = __tsan_create_fiber(0);
    turns_in_fiber = 0;
  }
  __tsan_switch_to_fiber(turn_fiber, 0);
  int status = lua_resume(co, from, nargs, nres);
  __tsan_switch_to_fiber(me, 0);
  return status;
}
#else
#define tsan_resume lua_resume
#endif

/* The scheduler's run function: one turn of the task. */
static int light_run(conc__g *g) {
  lconc_task *t = (lconc_task *)g->ud;
  lconc_thread_save saved;
  lconc_thread_enter_task(&saved);
  lconc_task *outer = cur_task;
  int64_t outer_id = current_id;
  cur_task = t;
  current_id = t->id;
  int r = CONC_G_DONE;
  if (t->L != NULL || light_start(t)) {
    lua_State *co = t->co;
    unhook_preempt(t, co);
    t->yield_reason = Y_NONE;
    int nres = 0, nargs = t->nargs;
    t->nargs = 0;
    cur_co = co;
    int status = tsan_resume(co, t->L, nargs, &nres);
    cur_co = NULL;
    if (status == LUA_YIELD && t->yield_reason == Y_PARK) {
      r = CONC_G_PARKED;
    } else if (status == LUA_YIELD) {
      lua_pop(co, nres); /* a yield of its own: values go nowhere */
      r = CONC_G_YIELDED;
    } else {
      light_end(t, status, nres);
    }
  }
  cur_task = outer;
  current_id = outer_id;
  lconc_thread_leave_task(&saved);
  return r;
}

/* The scheduler's hooks, set once, when conc.core is first opened:
 * before any scheduler thread (conc.set_maxprocs starts some) reads them. */
void lconc_sched_init(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  CONC_CHECK(pthread_once(&once, set_hooks));
}

/* A spawn that failed: undoes lconc_spawn's first steps (the count, the
 * list, the running reference) and drops the call. */
static void unspawn(lconc_task *t) {
  conc__live_add(-1);
  list_remove(t);
  conc_msg_free(&t->call);
  free(t->path);
  free(t->cpath);
  t->path = t->cpath = NULL;
  conc_release(&t->hdr);
}

static int start_light(lconc_task *t) {
  t->g.ud = t;
  t->g.w = conc__waiter_new();
  if (t->g.w == NULL) {
    unspawn(t);
    return CONC_ENOMEM;
  }
  t->g.w->g = &t->g;
  int rc = conc__g_start(&t->g);
  if (rc != CONC_OK) {
    conc__waiter_release(t->g.w);
    t->g.w = NULL;
    unspawn(t);
  }
  return rc;
}

/* ---- blocking calls of light tasks -------------------------------------- */

/* The task L belongs to, when a yield of L reaches the scheduler: L is
 * the task's coroutine, or the innermost coroutine resumed through conc's
 * coroutine.resume or wrap from a thread that could (see co_resume). */
static lconc_task *parkable(lua_State *L) {
  lconc_task *t = cur_task;
  if (t == NULL || !lua_isyieldable(L)) return NULL;
  if (L == t->co) return t;
  if (t->depth > 0 && t->chain[t->depth - 1].co == L &&
      t->chain[t->depth - 1].ok)
    return t;
  return NULL;
}

/*
 * coroutine.resume and wrap in a task's state: as the base library's, but
 * a conc blocking call (or conc.gosched) inside the coroutine parks the
 * whole task: the resume yields its own caller in turn, up to the task,
 * and when the task is woken, resumes the coroutine again. Other yields
 * are the coroutine's own, as usual.
 */
static int resume_step(lua_State *L, lua_State *co, int narg, lua_KFunction k);

/* Resumes co with narg values from L's top; returns what the base
 * library's auxresume does: the count of results moved to L, or -1 with
 * the error on L's top. Propagates a conc yield (does not return). */
static int resume_step(lua_State *L, lua_State *co, int narg, lua_KFunction k) {
  lconc_task *t = cur_task;
  if (narg > 0 || lua_status(co) == LUA_OK) {
    if (!lua_checkstack(co, narg)) {
      lua_pushliteral(L, "too many arguments to resume");
      return -1;
    }
    lua_xmove(L, co, narg);
  }
  bool pushed = false;
  if (t != NULL) {
    if (t->depth < (int)(sizeof t->chain / sizeof t->chain[0])) {
      t->chain[t->depth].co = co;
      t->chain[t->depth].ok = parkable(L) != NULL;
      /* The entry before the count: SIGURG's handler, on this thread,
       * reads the innermost entry (preempt_signal). */
      atomic_signal_fence(memory_order_seq_cst);
      t->depth++;
      pushed = true;
    }
  }
  int nres;
  int status = lua_resume(co, L, narg, &nres);
  /* Only the entry pushed here is popped: co resuming itself (an error)
   * must not pop its resumer's entry for it. */
  if (pushed) t->depth--;
  bool conc_yield = status == LUA_YIELD && t != NULL &&
                    t->yield_reason != Y_NONE && t->yield_from == co;
  /* co ended, failed or yielded of its own with conc's check not fired
   * (it left from inside a C call, or by a tail call): the check goes,
   * and the hook it set aside comes back (its `kept` entry, stale
   * otherwise, could be matched by a later coroutine at co's address).
   * That preemption is lost; the next signal asks again. */
  if (t != NULL && !conc_yield) unhook_preempt(t, co);
  if (conc_yield) {
    /* A conc yield: pass it on. Every level pops its entry on the way
     * out, and the continuations push them again on the way back in when
     * the task is woken (k resumes co here again): an entry kept while
     * parked was pushed a second time then, under the inner one, and the
     * stale inner entry later made a coroutine count as parkable where
     * it was not (its waiter queued, then the yield refused: a value
     * taken and lost) and took the preemption hook. */
    t->yield_from = L;
    return lua_yieldk(L, 0, (lua_KContext)co, k);
  }
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushliteral(L, "too many results to resume");
      return -1;
    }
    lua_xmove(co, L, nres);
    return nres;
  }
  lua_xmove(co, L, 1);
  return -1;
}

/* resume's outcome as coroutine.resume returns it. */
static int resume_result(lua_State *L, int r) {
  if (r < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_insert(L, -(r + 1));
  return r + 1;
}

static int co_resume_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return resume_result(L, resume_step(L, (lua_State *)ctx, 0, co_resume_k));
}

static int co_resume(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co != NULL, 1, "coroutine");
  return resume_result(L, resume_step(L, co, lua_gettop(L) - 1, co_resume_k));
}

/* wrap's outcome: the values, or the error raised again (with where the
 * wrapped function was called, for a string, as the base library). */
static int wrap_result(lua_State *L, lua_State *co, int r) {
  if (r >= 0) return r;
  int stat = lua_status(co);
  if (stat != LUA_OK && stat != LUA_YIELD) {
    stat = lua_resetthread(co); /* its <close> variables */
    lua_xmove(co, L, 1);
  }
  if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
  }
  return lua_error(L);
}

static int wrapped_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lua_State *co = (lua_State *)ctx;
  return wrap_result(L, co, resume_step(L, co, 0, wrapped_k));
}

static int wrapped(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  return wrap_result(L, co, resume_step(L, co, lua_gettop(L), wrapped_k));
}

static int co_wrap(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State *co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, wrapped, 1);
  return 1;
}

void *lconc_op_area(lua_State *L, void *local, size_t size) {
  lconc_task *t = parkable(L);
  if (t == NULL) return local;
  if (size > sizeof t->op_area) lconc_internal_error("lconc_op_area: size");
  return t->op_area;
}

void *lconc_op_area_k(lua_State *L) {
  (void)L;
  return cur_task->op_area;
}

static void run_op(void *arg) {
  lconc_task *t = (lconc_task *)arg;
  t->op_rc = t->op(t->op_arg);
}

int lconc_would_park(lua_State *L) { return parkable(L) != NULL; }

int lconc_call(lua_State *L, lconc_op_fn op, void *arg, lua_KContext ctx,
               lua_KFunction k) {
  lconc_task *t = parkable(L);
  if (t == NULL) return op(arg);
  t->op = op;
  t->op_arg = arg;
  conc__fiber *f = conc__fiber_get();
  if (f == NULL) return op(arg); /* no memory for one: block the thread */
  if (conc__fiber_run(f, run_op, t)) {
    conc__fiber_put(f);
    return t->op_rc;
  }
  t->g.fiber = f; /* the scheduler goes on with it when woken */
  t->yield_reason = Y_PARK;
  t->yield_from = L;
  return lua_yieldk(L, 0, ctx, k);
}

/*
 * A task the main script's thread runs (while the main script waits)
 * that blocks in foreign C holds the main script until that call
 * returns: a rendezvous it finished, a timeout, a shutdown signal all
 * wait for a child process or a read (Go's main goroutine is never held
 * by another's system call). Nothing can move a turn off a thread once
 * it is in C, so the standard library's calls that may block for long
 * yield first there (as conc.gosched: the task goes to the global queue,
 * which a P's thread runs) and make the call where the task goes on:
 * io.popen, os.execute and opening a file (a FIFO's open waits for its
 * writer) always; a read, a lines iterator's read and a close when the
 * stream is a pipe, a socket or a terminal (a close waits for a popen's
 * child), and any close while a popen is under way (glibc's popen
 * flushes every stream, holding its list of streams, which fclose
 * takes: a read blocked on one stream held them all). Writes, and reads
 * of files, stay (leaving costs a yield and a thread's wake, 20-30 us: a
 * logger task writing for the main script went from 0.9 to 33 us a
 * line). Where the task cannot yield, or no other thread can be had,
 * the call is made at once.
 *
 * The wrapper calls the library's C function itself, in its own frame,
 * so the function's errors name it and its caller's line as before; a
 * lines iterator's wrapper carries the iterator's upvalues (wrap_iter).
 */
static bool stream_may_block(FILE *f) {
  struct stat st;
  int fd = f ? fileno(f) : -1;
  if (fd < 0 || fstat(fd, &st) != 0) return false;
  return S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) ||
         (S_ISCHR(st.st_mode) && isatty(fd));
}

/* The open stream of the file handle at idx, else NULL. */
static FILE *stream_at(lua_State *L, int idx) {
  luaL_Stream *p = (luaL_Stream *)luaL_testudata(L, idx, LUA_FILEHANDLE);
  return p != NULL && p->closef != NULL ? p->f : NULL;
}

static FILE *default_stream(lua_State *L, const char *key) {
  lua_getfield(L, LUA_REGISTRYINDEX, key);
  FILE *f = stream_at(L, -1);
  lua_pop(L, 1);
  return f;
}

static atomic_int popens; /* io.popen calls under way, in any task */

static bool call_may_block(lua_State *L, int kind) {
  switch (kind) {
    case LM_ALWAYS:
    case LM_POPEN: return true;
    case LM_NAMED: return lua_type(L, 1) == LUA_TSTRING;
    case LM_SELF:
    case LM_SELF_LINES: return stream_may_block(stream_at(L, 1));
    case LM_INPUT: return stream_may_block(default_stream(L, "_IO_input"));
    case LM_IO_LINES: /* a file name: it opens one */
      return !lua_isnoneornil(L, 1) ||
             stream_may_block(default_stream(L, "_IO_input"));
    default: /* LM_CLOSE */
      return atomic_load_explicit(&popens, memory_order_relaxed) > 0 ||
             stream_may_block(lua_isnone(L, 1) ? default_stream(L, "_IO_output")
                                               : stream_at(L, 1));
  }
}

static int leave_iter(lua_State *L);

/* Replaces the lines iterator at idx (a C closure) by a leave_iter
 * closure with the same upvalues, at the same places, and the iterator
 * after them: leave_iter calls its C function in its own frame, which
 * reads them as its own, so its errors name it 'for iterator' at the
 * caller's line, as before. */
static void wrap_iter(lua_State *L, int idx) {
  if (lua_tocfunction(L, idx) == NULL) return;
  int k = 0;
  lconc_checkstack(L, 2, NULL);
  while (lua_getupvalue(L, idx, k + 1) != NULL) {
    k++;
    lconc_checkstack(L, 2, NULL);
  }
  lua_pushvalue(L, idx);
  lua_pushcclosure(L, leave_iter, k + 1);
  lua_replace(L, idx);
}

/* Calls the wrapped function in this frame; a lines iterator over a
 * stream that may block is wrapped in turn (the file is at 1 then). */
static int call_wrapped(lua_State *L) {
  lua_CFunction fn = lua_tocfunction(L, lua_upvalueindex(1));
  int kind = (int)lua_tointeger(L, lua_upvalueindex(2));
  /* Counted only with arguments io.popen takes: it raises on the
   * others, before it flushes, and the count would stay one too high
   * (every close on the main thread would leave it, a yield each). */
  bool counted = false;
  if (kind == LM_POPEN) { /* (no conversions: the arguments stay) */
    int t = lua_type(L, 2);
    const char *mode = t <= LUA_TNIL      ? "r"
                       : t == LUA_TSTRING ? lua_tostring(L, 2)
                                          : NULL;
    counted = lua_isstring(L, 1) && mode != NULL &&
              (mode[0] == 'r' || mode[0] == 'w') && mode[1] == '\0';
  }
  if (counted) atomic_fetch_add(&popens, 1);
  int n = fn(L);
  if (counted) atomic_fetch_sub(&popens, 1);
  if ((kind == LM_SELF_LINES || kind == LM_IO_LINES) && n >= 1 &&
      stream_may_block(stream_at(L, 1))) {
    int it = lua_gettop(L) - n + 1;
    wrap_iter(L, it);
  }
  return n;
}

/* Yields so that the task goes on on another thread, if it runs on the
 * main script's and can; then k. */
static int leave_then(lua_State *L, lua_KFunction k) {
  lconc_task *t;
  if (!conc__sched_should_leave_main() || (t = parkable(L)) == NULL)
    return k(L, LUA_OK, 0);
  t->yield_reason = Y_PREEMPT;
  t->yield_from = L;
  return lua_yieldk(L, 0, 0, k);
}

static int leave_main_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return call_wrapped(L);
}

static int leave_main(lua_State *L) {
  if (!call_may_block(L, (int)lua_tointeger(L, lua_upvalueindex(2))))
    return call_wrapped(L);
  return leave_then(L, leave_main_k);
}

static int leave_iter_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  int last = 1; /* the iterator, after its upvalues (see wrap_iter) */
  while (lua_type(L, lua_upvalueindex(last + 1)) != LUA_TNONE) last++;
  return lua_tocfunction(L, lua_upvalueindex(last))(L);
}

static int leave_iter(lua_State *L) { return leave_then(L, leave_iter_k); }

/* Replaces each named function of the table at idx (a C function with
 * no upvalues, as Lua 5.4's are: else it is left) by a leave_main
 * closure over it. */
static void wrap_blocking(lua_State *L, int idx, const blocking_fn fns[]) {
  idx = lua_absindex(L, idx);
  int top = lua_gettop(L);
  for (int i = 0; fns[i].name; i++) {
    lua_getfield(L, idx, fns[i].name);
    if (lua_tocfunction(L, -1) == NULL || lua_getupvalue(L, -1, 1) != NULL) {
      lua_settop(L, top); /* (and the upvalue, if any) */
      continue;
    }
    lua_pushinteger(L, fns[i].kind);
    lua_pushcclosure(L, leave_main, 2);
    lua_setfield(L, idx, fns[i].name);
  }
}

int lconc_call_result(lua_State *L) {
  (void)L;
  return cur_task->op_rc;
}

static int gosched_k(lua_State *L, int status, lua_KContext ctx) {
  (void)L;
  (void)status;
  (void)ctx;
  return 0;
}

int lconc_gosched(lua_State *L) {
  lconc_task *t = parkable(L);
  if (t == NULL) { /* the main script runs a ready task, if any (not a
                    * task that cannot yield here: helping nests once) */
    if (cur_task == NULL) conc__sched_help();
    /* A task that cannot yield here lets the others run all the same:
     * its turn set aside (on the main script's thread), or its P handed
     * to another thread while it goes on (Go: Gosched yields the P). */
    else if (!conc__sched_helped_pause()) conc__sched_hand_off();
    return 0;
  }
  t->yield_reason = Y_PREEMPT;
  t->yield_from = L;
  return lua_yieldk(L, 0, 0, gosched_k);
}

/* What a thread keeps of the turn it runs (the scheduler's ctx hook:
 * the main thread swaps it when a helped turn is suspended, proc.c). */
typedef struct turn_ctx {
  lconc_task *task;
  lua_State *co;
  int64_t id;
  lconc_thread_save thread;
  void *tsan_fiber; /* under TSan: tsan_resume's turn fiber */
  int tsan_turns;
} turn_ctx;
_Static_assert(sizeof(turn_ctx) <= CONC__CTX_WORDS * sizeof(void *),
               "turn_ctx fits the scheduler's area");

static void ctx_get(turn_ctx *c) {
  c->task = cur_task;
  c->co = cur_co;
  c->id = current_id;
  lconc_thread_get(&c->thread);
#if defined(__SANITIZE_THREAD__)
  c->tsan_fiber = turn_fiber;
  c->tsan_turns = turns_in_fiber;
#else
  c->tsan_fiber = NULL;
  c->tsan_turns = 0;
#endif
}

static void ctx_set(const turn_ctx *c) {
  cur_task = c->task;
  cur_co = c->co;
  current_id = c->id;
  lconc_thread_leave_task(&c->thread);
#if defined(__SANITIZE_THREAD__)
  turn_fiber = c->tsan_fiber;
  turns_in_fiber = c->tsan_turns;
#endif
}

/* (The area is copied in and out: it is the scheduler's words, not a
 * turn_ctx.) */
static void turn_ctx_op(void **area, int op) {
  turn_ctx a, now;
  memcpy(&a, area, sizeof a);
  ctx_get(&now);
  if (op == CONC__CTX_SAVE) {
    a = now;
    /* The turn keeps the TSan fiber it runs in; the thread, should the
     * turn be suspended, makes another. */
    a.tsan_fiber = NULL;
    a.tsan_turns = 0;
  } else if (op == CONC__CTX_SWAP) {
    ctx_set(&a);
    a = now;
  } else {
#if defined(__SANITIZE_THREAD__)
    if (now.tsan_fiber != NULL && now.tsan_fiber != a.tsan_fiber)
      __tsan_destroy_fiber(now.tsan_fiber); /* the ended turn's */
#endif
    ctx_set(&a);
  }
  memcpy(area, &a, sizeof a);
}

static void set_hooks(void) {
  static const conc__sched_hooks hooks = {light_run, preempt_signal,
                                          collect_pooled, turn_ctx_op,
                                          collect_main_garbage};
  conc__sched_set_hooks(&hooks);
  conc__set_deadlock_sweep(sweep_before_deadlock);
  conc__set_deadlock_note(note_failed);
}

int lconc_spawn(lconc_task *t) {
  conc_retain(&t->hdr); /* the running thread's reference */
  conc__live_add(1); /* live from now: the spawner is running */
  list_add(t);
  if (!t->locked) return start_light(t);
  if (hand_off(t)) return CONC_OK;
  int rc = new_thread(t);
  if (rc != CONC_OK) unspawn(t);
  return rc;
}
