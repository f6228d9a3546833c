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
static int main_states;     /* open states that claimed it (main_lock) */
static pthread_t main_tid;  /* their thread, while main_states > 0 */

static bool claim_main(void) {
  pthread_mutex_lock(&main_lock);
  bool mine = main_states == 0 || pthread_equal(main_tid, pthread_self());
  if (mine) {
    main_tid = pthread_self();
    main_states++;
  }
  pthread_mutex_unlock(&main_lock);
  return mine;
}

static int main_state_closing(lua_State *L) {
  (void)L;
  pthread_mutex_lock(&main_lock);
  bool last = --main_states == 0;
  pthread_mutex_unlock(&main_lock);
  lconc_blocking(NULL, NULL);  /* the state it names is closing */
  lconc_interrupt_close();
  /* The main script ran its last line: its thread runs no more tasks
   * (a task it took while it waits here would hold the exit), until a
   * state opened on it later claims the part again (an embedder's next
   * script). Not while another state of its own is open: that one is
   * still the main script. */
  if (last) conc__sched_main_done();
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
      lua_getfield(L, LUA_REGISTRYINDEX, "conc.main_sentinel") == LUA_TNIL &&
      claim_main()) {
    /* A sentinel collected when the main state closes (it is created
     * first, so it is finalized after every handle of that state). */
    lua_newuserdatauv(L, 1, 0);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, main_state_closing);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, "conc.main_sentinel");
    lconc_main_enter();
    lconc_interrupt_init(L);
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
