/*
 * lsched.c: what the binding tells the core about Lua threads, and what
 * it shows of them: the sleep hook (where a thread waits, for the
 * deadlock report and the dump), conc.workers(), conc.stats() and
 * conc.set_deadlock_mode().
 */
#include <stdio.h>
#include <string.h>
#include "lcheck.h"
#include "../core/internal.h"
#include "lconc.h"
#include "worker.h"

/* The Lua state of the blocking call the calling thread is in. */
static CONC_TLS lua_State *blocking_state;

/* Whether the calling thread runs the main script. */
static CONC_TLS bool main_thread;

void lconc_blocking(lua_State *L, const char *label) {
  blocking_state = L;
  conc_wait_label(label);
  if (main_thread) lconc_interrupt_arm();
}

/* Appends s to buf (size bytes, *n used), truncating; keeps it ended. */
static void append(char *buf, size_t size, size_t *n, const char *s) {
  size_t len = strlen(s);
  if (len > size - 1 - *n) len = size - 1 - *n;
  memcpy(buf + *n, s, len);
  *n += len;
  buf[*n] = '\0';
}

/* Appends the decimal digits of v (v >= 0). */
static void append_int(char *buf, size_t size, size_t *n, int v) {
  char digits[12];
  int k = (int)sizeof digits - 1;
  digits[k] = '\0';
  do digits[--k] = (char)('0' + v % 10);
  while ((v /= 10) > 0 && k > 0);
  append(buf, size, n, digits + k);
}

/* The sleep hook: runs on the sleeping thread itself, so reading its
 * own stack is safe. Writes "file:line" of the nearest Lua frames. No
 * printf: this runs on every sleep of a worker, and a deep stack here
 * would cost each parked worker another page of memory. */
static void where_hook(char *buf, size_t size) {
  lua_State *L = blocking_state;
  lua_Debug ar;
  size_t n = 0;
  buf[0] = '\0';
  for (int level = 0, shown = 0;
       L && shown < 3 && n + 1 < size && lua_getstack(L, level, &ar); level++) {
    if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0) continue;
    if (shown++) append(buf, size, &n, " < ");
    append(buf, size, &n, ar.short_src);
    append(buf, size, &n, ":");
    append_int(buf, size, &n, ar.currentline);
  }
}

int lconc_raise_deadlock(lua_State *L, const char *fname) {
  return luaL_error(L, "%s: %s", fname, conc_deadlock_report());
}

void lconc_thread_enter_task(lconc_thread_save *s) {
  s->blocking = blocking_state;
  s->main = main_thread;
  main_thread = false;
}

void lconc_thread_get(lconc_thread_save *s) {
  s->blocking = blocking_state;
  s->main = main_thread;
}

void lconc_thread_leave_task(const lconc_thread_save *s) {
  blocking_state = s->blocking;
  main_thread = s->main;
}

void lconc_main_enter(void) {
  conc_set_sleep_hook(where_hook);
  main_thread = true;
  conc__sched_main_thread();
  if (conc__waiter_self()->counted) return;
  conc__live_add(1);
  conc__thread_enter(0);
}

/* conc.set_deadlock_mode("exit" | "error" | "off") */
static int set_deadlock_mode(lua_State *L) {
  static const char *const modes[] = {"exit", "error", "off", NULL};
  static const int values[] = {CONC_DEADLOCK_EXIT, CONC_DEADLOCK_ERROR,
                               CONC_DEADLOCK_OFF};
  conc_deadlock_mode(values[lconc_checkoption(L, 1, NULL, modes)]);
  return 0;
}

/* Describes every counted thread, however many: returns the array (a
 * userdata left on the stack, so an error frees it) and its length. The
 * count may grow between looking and copying: then it looks again. */
static conc_thread_info *thread_infos(lua_State *L, int *n) {
  int room = conc_threads(NULL, 0) + 16;
  for (;;) {
    conc_thread_info *info = lua_newuserdatauv(L, (size_t)room * sizeof *info,
                                               0);
    *n = conc_threads(info, room);
    if (*n <= room) return info;
    lua_pop(L, 1);
    room = *n + 16;
  }
}

/* conc.workers() -> an array of {id, state, waiting_in, object, where,
 * age}, one per live worker and the main script (id 0). */
static int workers(lua_State *L) {
  static const char *const states[] = {"running", "blocked", "waiting"};
  int n;
  conc_thread_info *info = thread_infos(L, &n);
  conc_time now = conc_now();
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, (lua_Integer)info[i].id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, info[i].what && info[i].state == CONC_THREAD_WAITING &&
                              strcmp(info[i].what, "sleep") == 0
                          ? "sleeping"
                          : states[info[i].state]);
    lua_setfield(L, -2, "state");
    if (info[i].what) {
      lua_pushstring(L, info[i].what);
      lua_setfield(L, -2, "waiting_in");
    }
    if (info[i].obj) {
      lua_pushfstring(L, "%p", info[i].obj);
      lua_setfield(L, -2, "object");
    }
    if (info[i].where[0] && info[i].state == CONC_THREAD_BLOCKED) {
      lua_pushstring(L, info[i].where);
      lua_setfield(L, -2, "where");
    }
    lua_pushnumber(L, (lua_Number)(now - info[i].since) / 1e9);
    lua_setfield(L, -2, "age");
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* conc.stats() -> {workers, threads, idle_threads, messages, heap_bytes,
 * objects = {["conc.chan"] = n, ...}} */
static int stats(lua_State *L) {
  lconc_pool_stats ps;
  lconc_get_pool_stats(&ps);
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, ps.running);
  lua_setfield(L, -2, "workers");
  lua_pushinteger(L, (lua_Integer)conc_messages_sent());
  lua_setfield(L, -2, "messages");
  lua_pushinteger(L, (lua_Integer)ps.heap_bytes);
  lua_setfield(L, -2, "heap_bytes");
  conc__sched_stats ss;
  conc__sched_get_stats(&ss);
  lua_pushinteger(L, ss.procs);
  lua_setfield(L, -2, "procs");
  /* threads: the scheduler's and the locked tasks' */
  lua_pushinteger(L, ss.threads + ps.threads);
  lua_setfield(L, -2, "threads");
  lua_pushinteger(L, ss.idle_threads + ps.idle);
  lua_setfield(L, -2, "idle_threads");
  lua_pushinteger(L, ps.running);
  lua_setfield(L, -2, "tasks");
  lua_pushinteger(L, ss.tasks_run);
  lua_setfield(L, -2, "turns");
  lua_pushinteger(L, ss.steals);
  lua_setfield(L, -2, "steals");
  lua_pushinteger(L, ss.preemptions);
  lua_setfield(L, -2, "preemptions");
  lua_pushinteger(L, ss.handoffs);
  lua_setfield(L, -2, "handoffs");
  lua_pushinteger(L, ss.helped);
  lua_setfield(L, -2, "helped");
  lua_pushinteger(L, ss.thread_blocks);
  lua_setfield(L, -2, "thread_blocks");
  lua_pushinteger(L, ss.thread_failures);
  lua_setfield(L, -2, "thread_failures");
  lua_pushinteger(L, ss.spinning);
  lua_setfield(L, -2, "spinning");
  lua_pushinteger(L, ss.global_queue);
  lua_setfield(L, -2, "global_queue");
  lua_createtable(L, ss.procs, 0);
  for (int i = 0; i < ss.procs && i < 64; i++) {
    lua_pushinteger(L, ss.queue[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "run_queues");
  const char *names[64];
  long counts[64];
  int k = conc_obj_counts(names, counts, 64);
  lua_createtable(L, 0, k);
  for (int i = 0; i < k && i < 64; i++) {
    lua_pushinteger(L, counts[i]);
    lua_setfield(L, -2, names[i]);
  }
  lua_setfield(L, -2, "objects");
  return 1;
}

/* conc.set_maxprocs([n]) -> the previous value: how many threads run
 * tasks at once (Go's GOMAXPROCS); n < 1 or none only reads it. */
static int set_maxprocs(lua_State *L) {
  lua_Integer n = lconc_optinteger(L, 1, 0);
  lconc_argcheck(L, n <= 64, 1, "at most 64");
  lua_pushinteger(L, conc__sched_maxprocs((int)n));
  return 1;
}

void lconc_open_sched(lua_State *L) {
  static const luaL_Reg funcs[] = {{"set_maxprocs", set_maxprocs},
                                   {"gosched", lconc_gosched},
                                   {"set_deadlock_mode", set_deadlock_mode},
                                   {"workers", workers},
                                   {"stats", stats},
                                   {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
}
