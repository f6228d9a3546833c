/*
 * lconc.c: luaopen_conc_core, the C module conc.core.
 */
#include <dlfcn.h>
#include <pthread.h>
#include "worker.h"

/*
 * The program ends with the main state: say which workers it abandons.
 * The main thread keeps counting as a live thread until the process
 * ends: finalizers still to run (those of objects made before conc was
 * loaded run after this one) may wait in conc, and a wait that nothing
 * can end must be reported as a deadlock, not hang the exit silently.
 */
/*
 * The main script's states: the first state that opens conc.core on a
 * thread that is not a worker's claims the main script's part (its
 * thread runs tasks while it waits, and is the one deadlock detection
 * counts besides the workers) until it closes; another state opened on
 * that thread meanwhile shares it. A state opened on another thread
 * meanwhile is a host's: its waits block its own thread, as a host
 * thread's calls of conc.h do. Two threads both taking the main
 * script's part ran tasks on one scheduler slot at once (SIGSEGV).
 */
static pthread_mutex_t main_lock = PTHREAD_MUTEX_INITIALIZER;
/* An open state that claimed it (its sentinel's block). The oldest is
 * the main script: Ctrl-C is looked for in its main thread (a host's
 * second state, opened and closed while the first runs, took Ctrl-C
 * away from it); only the last one's close ends the main script's part
 * and reports the workers still running. */
typedef struct main_state {
  lua_State *main;  /* the state's main thread */
  struct main_state *next;
} main_state;
static main_state *main_states; /* oldest first (main_lock) */
static pthread_t main_tid;      /* their thread, while there are any */

/* Whether L takes (or shares) the main script's part; *first: it is the
 * only state that has it. */
static bool claim_main(lua_State *L, main_state *node, bool *first) {
  pthread_mutex_lock(&main_lock);
  bool mine = main_states == NULL || pthread_equal(main_tid, pthread_self());
  *first = main_states == NULL;
  if (mine) {
    main_tid = pthread_self();
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    node->main = lua_tothread(L, -1);
    lua_pop(L, 1);
    node->next = NULL;
    main_state **q = &main_states;
    while (*q) q = &(*q)->next;
    *q = node;
  }
  pthread_mutex_unlock(&main_lock);
  return mine;
}

static int main_state_closing(lua_State *L) {
  main_state *node = lua_touserdata(L, 1);
  pthread_mutex_lock(&main_lock);
  bool was_oldest = main_states == node;
  for (main_state **q = &main_states; *q; q = &(*q)->next)
    if (*q == node) {
      *q = node->next;
      break;
    }
  main_state *oldest = main_states;
  pthread_mutex_unlock(&main_lock);
  lconc_blocking(NULL, NULL);  /* the state it names is closing */
  if (oldest != NULL) {
    /* Another state of this thread is open: it is still the main
     * script, and now the one Ctrl-C is looked for in. */
    if (was_oldest) lconc_interrupt_init(oldest->main);
    return 0;
  }
  lconc_interrupt_close();
  /* The main script ran its last line: its thread runs no more tasks
   * (a task it took while it waits here would hold the exit), until a
   * state opened on it later claims the part again (an embedder's next
   * script). */
  conc__sched_main_done();
  lconc_report_running();
  return 0;
}

/* Keeps this shared object loaded for the life of the process: worker
 * threads run its code after the state that loaded it has closed (and
 * lua_close unloads C modules). Linking with -z nodelete does the same;
 * this also covers builds that do not. */
static void pin_module(void) {
  Dl_info info;
  if (dladdr((void *)pin_module, &info) && info.dli_fname)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

int luaopen_conc_core(lua_State *L) {
  pin_module();
  lconc_sched_init();
  if (lua_getfield(L, LUA_REGISTRYINDEX, "conc.core") == LUA_TNIL) {
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "conc.core");
    lconc_codec_init(L);
  }
  lua_pop(L, 1);
  if (!lconc_is_worker_state(L) &&
      lua_getfield(L, LUA_REGISTRYINDEX, "conc.main_sentinel") == LUA_TNIL) {
    /* A sentinel collected when the main state closes (it is created
     * first, so it is finalized after every handle of that state). */
    main_state *node = lua_newuserdatauv(L, sizeof *node, 0);
    bool first;
    if (claim_main(L, node, &first)) {
      lua_createtable(L, 0, 1);
      lua_pushcfunction(L, main_state_closing);
      lua_setfield(L, -2, "__gc");
      lua_setmetatable(L, -2);
      lua_setfield(L, LUA_REGISTRYINDEX, "conc.main_sentinel");
      lconc_main_enter();
      if (first) lconc_interrupt_init(node->main);
    }
  }
  lua_settop(L, 0);
  lua_newtable(L);
  lconc_open_chan(L);
  lconc_open_select(L);
  lconc_open_worker(L);
  lconc_open_map(L);
  lconc_open_sched(L);
  lconc_open_time(L);
  lconc_open_ctx(L);
  lconc_open_sync(L);
  lconc_open_limiter(L);
  lconc_open_breaker(L);
  lconc_open_sem(L);
  lconc_open_errgroup(L);
  lconc_open_atomic(L);
  lconc_open_signal(L);
  lconc_open_pubsub(L);
  lconc_open_merge(L);
  lconc_open_workpool(L);
  return 1;
}
