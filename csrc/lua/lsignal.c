/*
 * lsignal.c: conc.signal (Go's os/signal: notify, stop, and
 * NotifyContext as conc.signal.context), and Ctrl-C in the main
 * script's waits. The core (csrc/core/signal.c) receives the signals on
 * a thread of its own and sends their names; this file names them and
 * answers the core's question "was the main script asked to stop?".
 *
 * That question: lua.c's SIGINT handler stops a running chunk by setting
 * a hook on the main state (lstop, which raises "interrupted!"). A
 * blocking call of the main script remembers the hook it began with
 * (lconc_interrupt_arm); a different one means the handler ran. The
 * interrupted call then puts the hook back as it was (as lstop would
 * have) and raises "interrupted!" itself: the script ends as it does
 * when Ctrl-C stops a plain loop, with lua.c's message and status.
 */
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include "lconc.h"
#include "lcheck.h"
#include "../core/internal.h"

static const struct {
  const char *name;
  int sig;
} names[] = {{"SIGHUP", SIGHUP},   {"SIGINT", SIGINT},    {"SIGQUIT", SIGQUIT},
             {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2},  {"SIGALRM", SIGALRM},
             {"SIGTERM", SIGTERM}, {"SIGWINCH", SIGWINCH}};
#define NNAMES ((int)(sizeof names / sizeof names[0]))

/* The message a delivery sends: the signal's name (the core's callback,
 * run on its signal thread; short strings never fail). */
static void make_msg(conc_msg *m, int sig) {
  const char *name = "SIGNAL";
  for (int i = 0; i < NNAMES; i++)
    if (names[i].sig == sig) name = names[i].name;
  lconc_msg_from_string(m, name);
}

/* Argument idx as a signal number; raises for an unknown name. */
static int check_signal(lua_State *L, int idx, const char *fname) {
  const char *s = lconc_checkstring(L, idx);
  for (int i = 0; i < NNAMES; i++)
    if (strcmp(names[i].name, s) == 0) return names[i].sig;
  return luaL_error(L, "%s: unknown signal '%s'", fname, s);
}

/* Notifies target of the signals named by arguments first..last (all of
 * conc's signals if none is named, as Go's Notify does). The names are
 * checked before anything is notified. */
static void notify_all(lua_State *L, int first, int last, conc_obj *target,
                       bool ctx, const char *fname) {
  for (int i = first; i <= last; i++) check_signal(L, i, fname);
  int n = last >= first ? last - first + 1 : NNAMES;
  for (int k = 0; k < n; k++) {
    int sig = last >= first ? check_signal(L, first + k, fname) : names[k].sig;
    int rc = ctx ? conc_signal_notify_ctx((conc_ctx *)target, sig)
                 : conc_signal_notify((conc_chan *)target, sig);
    if (rc != CONC_OK) luaL_error(L, "%s: %s", fname, conc_strerror(rc));
  }
}

/* conc.signal.notify(ch, "SIGINT", ...): each signal is sent on ch by
 * name, never blocking (a full channel misses it) */
static int s_notify(lua_State *L) {
  int ro;
  conc_chan *c = lconc_test_chan(L, 1, &ro);
  if (c == NULL) lconc_typeerror(L, 1, "conc.chan");
  if (ro)
    return luaL_error(L, "conc.signal.notify: send to receive-only channel");
  notify_all(L, 2, lua_gettop(L), (conc_obj *)c, false, "conc.signal.notify");
  return 0;
}

/* conc.signal.stop(ch): no more signals on ch once it returns; a signal
 * nobody is notified of any more gets its action back */
static int s_stop(lua_State *L) {
  conc_chan *c = lconc_test_chan(L, 1, NULL);
  if (c == NULL) lconc_typeerror(L, 1, "conc.chan");
  conc_signal_stop((conc_obj *)c);  /* not notified: nothing to do */
  return 0;
}

/* ---- conc.signal.context: the stop function is a conc object ---------- */

typedef struct lsigstop {
  conc_obj hdr;
  conc_ctx *ctx;
} lsigstop;

static void sigstop_destroy(conc_obj *o) {
  conc_release((conc_obj *)((lsigstop *)o)->ctx);
  free(o);
}

static const conc_type sigstop_type = {"conc.signal.stop", sigstop_destroy};

/* stop(): unregisters the signals and cancels the context (Go's stop);
 * idempotent; also __close. */
static int sigstop_call(lua_State *L) {
  lsigstop *s = (lsigstop *)lconc_check_obj(L, 1, &sigstop_type);
  conc_signal_stop((conc_obj *)s->ctx);
  conc_ctx_cancel(s->ctx, CONC_ECANCELED, NULL);
  return 0;
}

/* conc.signal.context(parent, "SIGINT", ...) -> ctx, stop: ctx is
 * canceled (its cause the signal's name) when one of them arrives */
static int s_context(lua_State *L) {
  conc_ctx *parent = (conc_ctx *)lconc_check_obj(L, 1, &conc_ctx_type);
  int last = lua_gettop(L);
  for (int i = 2; i <= last; i++) check_signal(L, i, "conc.signal.context");
  lsigstop *s = calloc(1, sizeof *s);
  conc_ctx *ctx = s ? conc_ctx_new(parent, CONC_NEVER, NULL, NULL) : NULL;
  if (ctx == NULL) {
    free(s);
    return luaL_error(L, "conc.signal.context: not enough memory");
  }
  conc_obj_init(&s->hdr, &sigstop_type);
  s->ctx = ctx;  /* the stop function's reference */
  conc_retain((conc_obj *)ctx);
  lconc_push_obj(L, (conc_obj *)ctx);  /* taken over: pushed first, so */
  lconc_push_obj(L, &s->hdr);          /* an error below frees both */
  notify_all(L, 2, last, (conc_obj *)ctx, true, "conc.signal.context");
  return 2;
}

/* ---- Ctrl-C and the main script ----------------------------------------- */

/* The main script's main thread, and its hook when its current blocking
 * call began. Written by the main thread; read by it, and by a SIGINT
 * handler (the main thread's own, as conc's threads block SIGINT). */
static _Atomic(lua_State *) main_L;
static _Atomic(lua_Hook) hook0;
static atomic_int mask0, count0;

static int interrupt_pending(void) {
  lua_State *M = atomic_load_explicit(&main_L, memory_order_relaxed);
  return M &&
         lua_gethook(M) != atomic_load_explicit(&hook0, memory_order_relaxed);
}

void lconc_interrupt_init(lua_State *M) {
  atomic_store(&main_L, M);
  lconc_interrupt_arm();
  conc_set_interrupt_pending(interrupt_pending);
}

void lconc_interrupt_close(void) { atomic_store(&main_L, NULL); }

void lconc_interrupt_arm(void) {
  lua_State *M = atomic_load_explicit(&main_L, memory_order_relaxed);
  if (M == NULL) return;
  /* Called at each of the main script's blocking calls: stores only
   * what changed (a store per call made their cache line, which other
   * threads read, bounce between cores: B2 lost half its rate). */
  lua_Hook h = lua_gethook(M);
  int mask = lua_gethookmask(M), count = lua_gethookcount(M);
  if (atomic_load_explicit(&hook0, memory_order_relaxed) != h)
    atomic_store_explicit(&hook0, h, memory_order_relaxed);
  if (atomic_load_explicit(&mask0, memory_order_relaxed) != mask)
    atomic_store_explicit(&mask0, mask, memory_order_relaxed);
  if (atomic_load_explicit(&count0, memory_order_relaxed) != count)
    atomic_store_explicit(&count0, count, memory_order_relaxed);
}

int lconc_raise_abort(lua_State *L, int rc, const char *fname) {
  if (rc != CONC_EINTR) return lconc_raise_deadlock(L, fname);
  lua_State *M = atomic_load(&main_L);
  if (M && interrupt_pending())  /* lua.c's stop hook: it has done its job */
    lua_sethook(M, atomic_load(&hook0), atomic_load(&mask0),
                atomic_load(&count0));
  return luaL_error(L, "interrupted!");
}

void lconc_open_signal(lua_State *L) {
  static const luaL_Reg funcs[] = {{"notify", s_notify},
                                   {"stop", s_stop},
                                   {"context", s_context},
                                   {NULL, NULL}};
  static const luaL_Reg stop_meta[] = {
      {"__call", sigstop_call}, {"__close", sigstop_call}, {NULL, NULL}};
  static const luaL_Reg no_methods[] = {{NULL, NULL}};
  lconc_declare(&sigstop_type, no_methods, stop_meta, NULL);
  /* Unless the host set its own: every state's open replaced it. */
  conc__signal_default_message(make_msg);
  lua_createtable(L, 0, 3);
  luaL_setfuncs(L, funcs, 0);
  lua_setfield(L, -2, "signal");
}
