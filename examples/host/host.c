/*
 * host.c: a C program that embeds Lua and conc (docs/embedding.md).
 *
 *   host SCRIPT [N]      (make host-example builds and runs it)
 *
 * Its own sensor thread, which knows nothing of Lua, produces N numbered
 * readings ("17:23.50", sequence number and degrees) into a conc channel
 * with conc.h's conc_chan_send, each message built by conc_lua.h's
 * conc_lua_msg_string; then it closes the channel and sends how many it
 * produced (conc_lua_msg_integer) on a second one. The Lua script (it
 * gets both channels as arguments) consumes the readings with a worker
 * pool whose workers require host.calib, a C module of this program that
 * exists in a worker's state only because conc_lua_set_state_init
 * registered it there. The host prints the script's account of the
 * readings and exits non-zero unless each one was consumed exactly once.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <lauxlib.h>
#include <lualib.h>
#include "conc_lua.h"
#include "calib.h"

typedef struct sensor {
  conc_chan *readings, *produced;
  long n;
} sensor;

/* The sensor thread: a plain pthread, no lua_State. A send waits while
 * the channel is full (the pool is behind): backpressure, as in Go. */
static void *sensor_main(void *arg) {
  sensor *s = (sensor *)arg;
  long sent = 0;
  for (long seq = 1; seq <= s->n; seq++) {
    char line[64];
    double celsius = 20.0 + (double)(seq % 50) / 10.0;
    int len = snprintf(line, sizeof line, "%ld:%.2f", seq, celsius);
    conc_msg m;
    if (conc_lua_msg_string(&m, line, (size_t)len) != CONC_OK) break;
    if (conc_chan_send(s->readings, &m, CONC_NEVER) != CONC_OK) {
      conc_msg_free(&m);  /* still ours: the channel was closed */
      break;
    }
    sent++;
  }
  conc_chan_close(s->readings);
  conc_msg m;
  conc_lua_msg_integer(&m, sent);
  if (conc_chan_send(s->produced, &m, CONC_NEVER) != CONC_OK)
    conc_msg_free(&m);
  return NULL;
}

static void preload(lua_State *L, const char *name, lua_CFunction open) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, open);
  lua_setfield(L, -2, name);
  lua_pop(L, 1);
}

/* require(name), leaving its value on the stack; 0 if it failed (the
 * message is printed). */
static int require_module(lua_State *L, const char *name) {
  lua_getglobal(L, "require");
  lua_pushstring(L, name);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK) return 1;
  fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
  lua_pop(L, 1);
  return 0;
}

/* Run by conc on every lua_State it makes for a worker, on the worker's
 * thread: this program's C modules, for `require` to find. */
static int init_worker_state(lua_State *L) {
  preload(L, "host.calib", luaopen_host_calib);
  return 0;
}

/* Runs the script with (readings, produced) as its arguments; it
 * returns produced, consumed, missing and duplicated counts. 0 if they
 * account for every reading exactly once. */
static int run_script(lua_State *L, const char *script, sensor *s) {
  if (luaL_loadfile(L, script) != LUA_OK) {
    fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
    return 1;
  }
  conc_lua_push_chan(L, s->readings);
  conc_lua_push_chan(L, s->produced);
  if (lua_pcall(L, 2, 4, 0) != LUA_OK) {
    fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
    return 1;
  }
  lua_Integer got[4];
  for (int i = 0; i < 4; i++) got[i] = lua_tointeger(L, i - 4);
  lua_pop(L, 4);
  if (!require_module(L, "host.calib")) return 1;
  lua_getfield(L, -1, "calls");
  lua_call(L, 0, 1);
  lua_Integer calls = lua_tointeger(L, -1);
  lua_pop(L, 2);
  printf("host: %lld readings produced, %lld consumed once each, "
         "%lld missing, %lld duplicated\n", (long long)got[0],
         (long long)got[1], (long long)got[2], (long long)got[3]);
  int ok = got[0] == s->n && got[1] == s->n && got[2] == 0 && got[3] == 0 &&
           calls == s->n;
  if (!ok)
    fprintf(stderr, "host: expected %ld of each, and as many calibrations "
            "(host.calib counted %lld)\n", s->n, (long long)calls);
  return !ok;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: host SCRIPT [N]\n");
    return 2;
  }
  sensor s = {conc_chan_new(16), conc_chan_new(1),
              argc > 2 ? atol(argv[2]) : 2000};
  if (s.readings == NULL || s.produced == NULL || s.n < 0) return 2;
  /* Before any worker exists: every worker's state gets host.calib. */
  conc_lua_set_state_init(init_worker_state);
  /* The sensor thread is not a conc worker: while it computes the next
   * reading, the workers and the script may all wait on channels with
   * no deadline, which conc would otherwise report as a deadlock. */
  conc_deadlock_mode(CONC_DEADLOCK_OFF);

  lua_State *L = luaL_newstate();
  if (L == NULL) return 2;
  luaL_openlibs(L);
  /* The conc linked into this program, not a conc/core.so on the cpath;
   * the facade "conc" (lua/conc/init.lua) comes from package.path. */
  preload(L, "conc.core", luaopen_conc_core);
  preload(L, "host.calib", luaopen_host_calib);
  /* conc_lua_push_chan needs conc open in L. */
  if (!require_module(L, "conc")) return 1;
  lua_pop(L, 1);

  pthread_t tid;
  if (pthread_create(&tid, NULL, sensor_main, &s) != 0) return 2;
  int rc = run_script(L, argv[1], &s);
  if (rc != 0) conc_chan_close(s.readings);  /* unblock the sensor */
  pthread_join(tid, NULL);
  lua_close(L);
  conc_release((conc_obj *)s.readings);
  conc_release((conc_obj *)s.produced);
  return rc;
}
