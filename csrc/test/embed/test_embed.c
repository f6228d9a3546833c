/*
 * test_embed.c: conc_lua.h from a host's side, linked with libconc.a
 * (make lib-check builds and runs it; SAN=asan under ASan + UBSan).
 * Each test runs in a child process of its own (check.h), so each sets
 * the state-init hook and makes its main state afresh.
 */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <unistd.h>
#include <math.h>
#include <lauxlib.h>
#include <lualib.h>
#include "../check.h"
#include "conc_lua.h"

/* ---- a host ------------------------------------------------------------- */

static void preload(lua_State *L, const char *name, lua_CFunction open) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, open);
  lua_setfield(L, -2, name);
  lua_pop(L, 1);
}

/* Runs chunk `code` with the n values on top of the stack as its
 * arguments, keeping `nres` results; fails the test if it raises. */
static void run(lua_State *L, const char *code, int n, int nres) {
  if (luaL_loadstring(L, code) != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    CHECK(0);
  }
  lua_insert(L, -n - 1);
  if (lua_pcall(L, n, nres, 0) != LUA_OK) {
    fprintf(stderr, "Lua error: %s\n", lua_tostring(L, -1));
    CHECK(0);
  }
}

/* The main state of a host: the libraries, conc.core from this program
 * (no cpath: LUA_CPATH_5_4 is empty), then require "conc". */
static lua_State *new_host(void) {
  lua_State *L = luaL_newstate();
  CHECK(L != NULL);
  luaL_openlibs(L);
  preload(L, "conc.core", luaopen_conc_core);
  run(L, "require('conc')", 0, 0);
  return L;
}

/* embed.mod: a C module only the hook can give a worker. */
static int mod_answer(lua_State *L) {
  lua_pushinteger(L, 42);
  return 1;
}

/* echo(v): v through a message and back (conc_lua.h in a task). */
static int mod_echo(lua_State *L) {
  conc_msg m;
  if (conc_lua_to_msg(L, 1, &m) != LUA_OK) return lua_error(L);
  return conc_lua_push_msg(L, &m);
}

static int open_mod(lua_State *L) {
  lua_newtable(L);
  lua_pushcfunction(L, mod_answer);
  lua_setfield(L, -2, "answer");
  lua_pushcfunction(L, mod_echo);
  lua_setfield(L, -2, "echo");
  return 1;
}

static int good_init(lua_State *L) {
  preload(L, "embed.mod", open_mod);
  lua_pushinteger(L, 1);
  lua_setglobal(L, "set_by_hook");  /* tasks never see it */
  return 0;
}

static int failing_init(lua_State *L) {
  return luaL_error(L, "no sensors here");
}

/* ---- the state-init hook ------------------------------------------------ */

static void test_hook_gives_workers_the_module(void) {
  conc_lua_set_state_init(good_init);
  lua_State *L = new_host();
  run(L,
      "local conc = require('conc')\n"
      "local hs = {}\n"
      "for i = 1, 4 do\n"
      "  hs[i] = conc.go(function()\n"
      "    local mod = require('embed.mod')\n"
      "    return mod.answer(), rawget(_G, 'set_by_hook'), mod.echo({i})\n"
      "  end)\n"
      "end\n"
      "for i = 1, 4 do\n"
      "  local ok, v, g, e = hs[i]:join()\n"
      "  assert(ok and v == 42, tostring(v))\n"
      "  assert(g == nil, 'a global the hook set reached a task')\n"
      /* conc_lua.h works in a task that never required conc (it said
       * "conc.core is not open" unless the state's last task had) */
      "  assert(type(e) == 'table' and e[1] == i, tostring(e))\n"
      "end\n",
      0, 0);
  lua_close(L);
}

/* The hook's Lua code sees the standard libraries as a task does (they
 * open on first use): they were nil in it. */
static int libs_init(lua_State *L) {
  if (luaL_dostring(L,
                    "local t = {} table.insert(t, string.rep('x', 2)) "
                    "assert(math.max(1, 2) == 2 and os.time() > 0 and "
                    "io.write and coroutine.wrap and utf8.char and "
                    "debug.traceback) "
                    "package.preload['embed.lib'] = function() "
                    "return {v = t[1]} end") != LUA_OK)
    return lua_error(L);
  return 0;
}

static void test_hook_sees_the_libraries(void) {
  conc_lua_set_state_init(libs_init);
  lua_State *L = new_host();
  run(L,
      "local conc = require('conc')\n"
      "local ok, v = conc.go(function() return require('embed.lib').v end)"
      ":join()\n"
      "assert(ok and v == 'xx', tostring(v))\n",
      0, 0);
  lua_close(L);
}

static void test_without_hook_workers_lack_the_module(void) {
  lua_State *L = new_host();
  preload(L, "embed.mod", open_mod);  /* the main state's, not workers' */
  run(L,
      "local conc = require('conc')\n"
      "assert(require('embed.mod').answer() == 42)\n"
      "local ok, err = conc.go(function() return require('embed.mod') end)"
      ":join()\n"
      "assert(not ok and err:find(\"module 'embed.mod' not found\", 1, "
      "true), err)\n",
      0, 0);
  lua_close(L);
}

/* What fd 2 received while `step` ran (the code run, or the state
 * closed, by the two below). */
typedef struct stderr_step {
  lua_State *L;
  const char *code; /* NULL: close L */
} stderr_step;

static void capture_stderr(const stderr_step *step, char *out, size_t size) {
  FILE *tmp = tmpfile();
  CHECK(tmp != NULL);
  fflush(stderr);
  int saved = dup(2);
  CHECK(saved >= 0 && dup2(fileno(tmp), 2) == 2);
  if (step->code != NULL) run(step->L, step->code, 0, 0);
  else lua_close(step->L);
  fflush(stderr);
  CHECK(dup2(saved, 2) == 2);
  close(saved);
  CHECK(fseek(tmp, 0, SEEK_SET) == 0);
  size_t n = fread(out, 1, size - 1, tmp);
  out[n] = '\0';
  fclose(tmp);
}

/* Reads what the code wrote on stderr (fd 2) while it ran. */
static void run_capturing_stderr(lua_State *L, const char *code, char *out,
                                 size_t size) {
  stderr_step step = {L, code};
  capture_stderr(&step, out, size);
}

/* What a state's close wrote on stderr. */
static void close_capturing_stderr(lua_State *L, char *out, size_t size) {
  stderr_step step = {L, NULL};
  capture_stderr(&step, out, size);
}

static void test_failing_hook_fails_the_task_and_says_why(void) {
  conc_lua_set_state_init(failing_init);
  lua_State *L = new_host();
  char err[1024];
  run_capturing_stderr(
      L,
      "local conc = require('conc')\n"
      "local ok, err = conc.go(function() return 1 end):join()\n"
      "assert(ok == false and err:find('cannot create a lua_State', 1, "
      "true), tostring(err))\n",
      err, sizeof err);
  CHECK(strstr(err,
               "conc: conc_lua_set_state_init's function failed: "
               "no sensors here\n") != NULL);
  /* A later task gets a new state, and a new call of the hook. */
  conc_lua_set_state_init(good_init);
  run(L,
      "local conc = require('conc')\n"
      "local ok, v = conc.go(function() return require('embed.mod')"
      ".answer() end):join()\n"
      "assert(ok and v == 42, tostring(v))\n",
      0, 0);
  lua_close(L);
}

/* ---- objects ------------------------------------------------------------ */

static int check_chan_body(lua_State *L) {
  conc_lua_check(L, 1, &conc_chan_type);
  return 0;
}

static long refs(conc_chan *c) { return atomic_load(&((conc_obj *)c)->refs); }

static void test_push_and_get_objects(void) {
  lua_State *L = new_host();
  conc_chan *c = conc_chan_new(4);
  CHECK(c != NULL);
  conc_lua_push_chan(L, c);
  conc_lua_push(L, (conc_obj *)c);
  CHECK(lua_rawequal(L, -1, -2));  /* one object, one Lua value */
  CHECK_EQ(refs(c), 2);            /* ours, and the Lua value's */
  CHECK(conc_lua_test(L, -1, &conc_chan_type) == (conc_obj *)c);
  CHECK(conc_lua_test(L, -1, NULL) == (conc_obj *)c);
  CHECK(conc_lua_test(L, -1, &conc_mutex_type) == NULL);
  int ro = -1;
  CHECK(conc_lua_to_chan(L, -1, &ro) == c && ro == 0);
  lua_pushinteger(L, 5);
  CHECK(conc_lua_test(L, -1, NULL) == NULL);
  CHECK(conc_lua_to_chan(L, -1, NULL) == NULL);
  lua_pushcfunction(L, check_chan_body);
  lua_insert(L, -2);
  CHECK(lua_pcall(L, 1, 0, 0) != LUA_OK);
  /* Lua's own wording: the host's function is no conc method. */
  CHECK(strstr(lua_tostring(L, -1),
               "bad argument #1 to '?' (conc.chan expected, got number)") ||
        strstr(lua_tostring(L, -1), "bad argument #1 (conc.chan expected"));
  CHECK(strstr(lua_tostring(L, -1), "conc.chan:") == NULL);
  lua_pop(L, 2);
  /* The Lua side sends on it and hands back a receive-only view. */
  run(L, "local ch = ...; assert(ch:send('hi')); return ch:recv_only()", 1, 1);
  CHECK(conc_lua_test(L, -1, &conc_chan_type) == NULL);
  CHECK(conc_lua_to_chan(L, -1, &ro) == c && ro == 1);
  conc_msg m;
  CHECK_RC(conc_chan_recv(c, &m, CONC_NOWAIT), CONC_OK);
  CHECK_EQ(conc_lua_push_msg(L, &m), 1);
  CHECK(strcmp(lua_tostring(L, -1), "hi") == 0);
  /* Dropping the Lua values gives back their references, not ours. */
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  CHECK_EQ(refs(c), 1);
  conc_lua_msg_boolean(&m, 1);
  CHECK_RC(conc_chan_send(c, &m, CONC_NOWAIT), CONC_OK);
  lua_close(L);
  conc_release((conc_obj *)c);
}

/* ---- messages ----------------------------------------------------------- */

static void send(conc_chan *c, conc_msg *m) {
  CHECK_RC(conc_chan_send(c, m, CONC_NOWAIT), CONC_OK);
}

static void test_messages_built_in_c_decode_in_lua(void) {
  lua_State *L = new_host();
  conc_chan *c = conc_chan_new(64), *other = conc_chan_new(0);
  conc_msg m;
  conc_lua_msg_nil(&m);
  send(c, &m);
  conc_lua_msg_boolean(&m, 1);
  send(c, &m);
  conc_lua_msg_boolean(&m, 0);
  send(c, &m);
  const lua_Integer ints[] = {0,
                              -1,
                              1,
                              63,
                              64,
                              -64,
                              -65,
                              (lua_Integer)1 << 40,
                              LUA_MININTEGER,
                              LUA_MAXINTEGER};
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
    conc_lua_msg_integer(&m, ints[i]);
    send(c, &m);
  }
  conc_lua_msg_number(&m, 0.5);
  send(c, &m);
  conc_lua_msg_number(&m, -HUGE_VAL);
  send(c, &m);
  conc_lua_msg_number(&m, 3.0);  /* stays a float */
  send(c, &m);
  CHECK_RC(conc_lua_msg_string(&m, "", 0), CONC_OK);
  send(c, &m);
  CHECK_RC(conc_lua_msg_string(&m, "a\0b", 3), CONC_OK);
  send(c, &m);
  static char big[100000];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (char)('a' + i % 26);
  CHECK_RC(conc_lua_msg_string(&m, big, 127), CONC_OK);
  send(c, &m);
  CHECK_RC(conc_lua_msg_string(&m, big, 128), CONC_OK);
  send(c, &m);
  CHECK_RC(conc_lua_msg_string(&m, big, sizeof big), CONC_OK);
  CHECK(m.len > CONC_MSG_INLINE);
  send(c, &m);
  CHECK_RC(conc_lua_msg_object(&m, (conc_obj *)other), CONC_OK);
  send(c, &m);
  CHECK_EQ(refs(other), 2);  /* ours and the message's */
  conc_lua_push_chan(L, c);
  conc_lua_push_chan(L, other);
  run(L,
      "local ch, other = ...\n"
      "local function nxt()\n"
      "  local v, ok = ch:recv(0)\n"
      "  assert(ok == true, 'a message is missing')\n"
      "  return v\n"
      "end\n"
      "local function int(want)\n"
      "  local v = nxt()\n"
      "  assert(math.type(v) == 'integer' and v == want, tostring(v))\n"
      "end\n"
      "local function float(want)\n"
      "  local v = nxt()\n"
      "  assert(math.type(v) == 'float' and v == want, tostring(v))\n"
      "end\n"
      "assert(nxt() == nil)\n"
      "assert(nxt() == true)\n"
      "assert(nxt() == false)\n"
      "for _, want in ipairs{0, -1, 1, 63, 64, -64, -65, 1 << 40,\n"
      "                      math.mininteger, math.maxinteger} do\n"
      "  int(want)\n"
      "end\n"
      "float(0.5); float(-math.huge); float(3.0)\n"
      "assert(nxt() == '')\n"
      "assert(nxt() == 'a\\0b')\n"
      "local abc = ('abcdefghijklmnopqrstuvwxyz'):rep(4000)\n"
      "assert(nxt() == abc:sub(1, 127))\n"
      "assert(nxt() == abc:sub(1, 128))\n"
      "assert(nxt() == abc:sub(1, 100000))\n"
      "assert(rawequal(nxt(), other))\n"
      "assert(ch:len() == 0)\n",
      2, 0);
  lua_close(L);
  CHECK_EQ(refs(other), 1);
  conc_release((conc_obj *)c);
  conc_release((conc_obj *)other);
}

static void test_values_through_a_state(void) {
  lua_State *L = new_host();
  run(L,
      "return {n = 3, list = {'a', 'b'}, f = function(x) return x * 2 "
      "end}",
      0, 1);
  conc_msg m;
  CHECK_RC(conc_lua_to_msg(L, -1, &m), LUA_OK);
  lua_pop(L, 1);
  CHECK_EQ(conc_lua_push_msg(L, &m), 1);
  run(L,
      "local t = ...; assert(t.n == 3 and t.list[2] == 'b' and "
      "t.f(21) == 42)",
      1, 0);
  run(L, "return coroutine.create(print)", 0, 1);
  CHECK_RC(conc_lua_to_msg(L, -1, &m), LUA_ERRRUN);
  CHECK(strstr(lua_tostring(L, -1), "conc_lua_to_msg: ") != NULL);
  CHECK(strstr(lua_tostring(L, -1), "coroutine") != NULL);
  conc_msg_free(&m);  /* empty: harmless */
  lua_close(L);
}

static int push_body(lua_State *L) {
  conc_lua_push(L, (conc_obj *)lua_touserdata(L, 1));
  return 1;
}

static int push_msg_body(lua_State *L) {
  conc_lua_push_msg(L, (conc_msg *)lua_touserdata(L, 1));
  return 1;
}

static void test_a_state_without_conc_is_refused(void) {
  lua_State *L = luaL_newstate();  /* conc never opened here */
  conc_chan *c = conc_chan_new(0);
  lua_pushcfunction(L, push_body);
  lua_pushlightuserdata(L, c);
  CHECK(lua_pcall(L, 1, 1, 0) != LUA_OK);
  CHECK(strstr(lua_tostring(L, -1),
               "conc_lua_push: conc.core is not open "
               "in this lua_State"));
  CHECK_EQ(refs(c), 1);
  /* A heap message: ASan's leak check sees it if it is not freed. */
  static char text[1000];
  conc_msg m;
  CHECK_RC(conc_lua_msg_string(&m, text, sizeof text), CONC_OK);
  lua_pushcfunction(L, push_msg_body);
  lua_pushlightuserdata(L, &m);
  CHECK(lua_pcall(L, 1, 1, 0) != LUA_OK);
  CHECK(strstr(lua_tostring(L, -1),
               "conc_lua_push_msg: conc.core is not "
               "open"));
  lua_close(L);
  conc_release((conc_obj *)c);
}

/* A host thread with a state of its own, which spawns, receives and
 * joins 2000 times. */
static void *own_state(void *arg) {
  lua_State *L = new_host();
  run(L,
      "local conc = require(\"conc\") "
      "for i = 1, 2000 do local c = conc.chan() "
      "local h = conc.go(function(c) c:send(i) end, c) "
      "assert(c:recv() == i) assert(h:join()) end",
      0, 0);
  lua_close(L);
  *(int *)arg = 1;
  return NULL;
}

static void test_states_on_two_threads_at_once(void) {
  /* Both took the main script's part, and ran tasks on its one slot at
   * once: SIGSEGV in 9 runs of 10. Now the second is a host's. Host
   * threads: deadlock detection off, as embedding.md says. */
  conc_deadlock_mode(CONC_DEADLOCK_OFF);
  int done[2] = {0, 0};
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    CHECK(pthread_create(&t[i], NULL, own_state, &done[i]) == 0);
  for (int i = 0; i < 2; i++) CHECK(pthread_join(t[i], NULL) == 0);
  CHECK_EQ(done[0] + done[1], 2);
}

/* The host's signal message maker stays the host's (every state's open
 * of conc.core, a task's require "conc" among them, replaced it). */
static void host_message(conc_msg *m, int sig) {
  conc_lua_msg_integer(m, 1000 + sig);
}

static void test_host_signal_message_stays(void) {
  conc_deadlock_mode(CONC_DEADLOCK_OFF);
  conc_signal_set_message(host_message);
  lua_State *L = new_host();
  run(L, "require('conc').go(function() require('conc') end):join()", 0, 0);
  conc_chan *c = conc_chan_new(1);
  CHECK_RC(conc_signal_notify(c, SIGUSR1), CONC_OK);
  CHECK(kill(getpid(), SIGUSR1) == 0);
  conc_msg m;
  CHECK_RC(conc_chan_recv(c, &m, conc_deadline_in(5)), CONC_OK);
  CHECK_RC(conc_lua_push_msg(L, &m), 1);
  CHECK_EQ(lua_tointeger(L, -1), 1000 + SIGUSR1);
  CHECK_RC(conc_signal_stop((conc_obj *)c), CONC_OK);
  conc_release((conc_obj *)c);
  lua_close(L);
}

/* Scripts one after another, each in a state of its own on the host's
 * thread: the second's waits run ready tasks as the first's do. The
 * first's close ended the main script's part for good, and the second
 * ran none (its tasks all went to the Ps' threads). */
static lua_Integer helped_in_joins(lua_State *L) {
  run(L,
      "local conc = require('conc') local before = conc.stats().helped "
      "for i = 1, 500 do "
      "  local ok, v = conc.go(function(i) return i end, i):join() "
      "  assert(ok and v == i) "
      "end "
      "return conc.stats().helped - before",
      0, 1);
  lua_Integer n = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return n;
}

static void test_next_state_on_the_thread_helps(void) {
  conc_deadlock_mode(CONC_DEADLOCK_OFF);
  for (int i = 0; i < 3; i++) {
    lua_State *L = new_host();
    CHECK(helped_in_joins(L) > 0);
    lua_close(L);
  }
}

/* Two states of the host's thread share the part: the first's close
 * left it to the second, which ran no task after. */
static void test_second_state_keeps_the_part(void) {
  conc_deadlock_mode(CONC_DEADLOCK_OFF);
  lua_State *first = new_host(), *second = new_host();
  CHECK(helped_in_joins(first) > 0);
  lua_close(first);
  CHECK(helped_in_joins(second) > 0);
  lua_close(second);
}

/* A second state of the host's thread closes while the first, the main
 * script, runs on: its close is not the main script's end (it reported
 * the first's running workers as abandoned). */
static void test_second_state_close_is_not_the_end(void) {
  conc_deadlock_mode(CONC_DEADLOCK_OFF);
  lua_State *first = new_host();
  run(first,
      "local conc = require('conc') gate = conc.chan() "
      "h = conc.go(function(g) return g:recv() end, gate)",
      0, 0);
  lua_State *second = new_host();
  char out[4096];
  close_capturing_stderr(second, out, sizeof out);
  CHECK(strstr(out, "the main script ended") == NULL);
  run(first,
      "gate:send(7) local ok, v = h:join() assert(ok and v == 7, tostring(v))",
      0, 0);
  close_capturing_stderr(first, out, sizeof out);
  CHECK(strstr(out, "the main script ended") == NULL); /* none left */
}

/* Ctrl-C as lua.c takes it (its handler sets a hook on the main state):
 * it ends the first state's wait after a second state of the thread was
 * opened and closed (the second took Ctrl-C away, then nothing had it),
 * and while the second is open. */
static lua_State *interrupted;
static void stop_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted!");
}
/* lua.c's laction: lua_sethook is what the Lua manual allows a signal
 * handler to call (it only stores the hook and its mask). */
static void on_sigint(int sig) {
  signal(sig, SIG_DFL);
  /* NOLINTNEXTLINE(bugprone-signal-handler,cert-sig30-c,cert-msc54-cpp) */
  lua_sethook(interrupted, stop_hook,
              LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
}
static void *send_sigint(void *arg) {
  (void)arg;
  usleep(100000);
  kill(getpid(), SIGINT);
  return NULL;
}

static void ctrl_c_ends_the_wait(bool keep_second) {
  conc_deadlock_mode(CONC_DEADLOCK_OFF);
  lua_State *first = new_host(), *second = new_host();
  if (!keep_second) lua_close(second);
  interrupted = first;
  signal(SIGINT, on_sigint);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, send_sigint, NULL) == 0);
  /* Nothing sends: only Ctrl-C ends it (the test's timeout else). */
  run(first,
      "local ch = require('conc').chan() local ok, e = pcall(ch.recv, ch) "
      "assert(not ok and tostring(e):find('interrupted!'), tostring(e))",
      0, 0);
  CHECK(pthread_join(t, NULL) == 0);
  if (keep_second) lua_close(second);
  lua_close(first);
}

static void test_ctrl_c_after_a_second_state_closed(void) {
  ctrl_c_ends_the_wait(false);
}

static void test_ctrl_c_while_a_second_state_is_open(void) {
  ctrl_c_ends_the_wait(true);
}

static const check_test tests[] = {
    {"second_state_close_is_not_the_end",
     test_second_state_close_is_not_the_end},
    {"ctrl_c_after_a_second_state_closed",
     test_ctrl_c_after_a_second_state_closed},
    {"ctrl_c_while_a_second_state_is_open",
     test_ctrl_c_while_a_second_state_is_open},
    {"hook_sees_the_libraries", test_hook_sees_the_libraries},
    {"host_signal_message_stays", test_host_signal_message_stays},
    {"next_state_on_the_thread_helps", test_next_state_on_the_thread_helps},
    {"second_state_keeps_the_part", test_second_state_keeps_the_part},
    {"states_on_two_threads_at_once", test_states_on_two_threads_at_once},
    {"hook_gives_workers_the_module", test_hook_gives_workers_the_module},
    {"without_hook_workers_lack_the_module",
     test_without_hook_workers_lack_the_module},
    {"failing_hook_fails_the_task_and_says_why",
     test_failing_hook_fails_the_task_and_says_why},
    {"push_and_get_objects", test_push_and_get_objects},
    {"messages_built_in_c_decode_in_lua",
     test_messages_built_in_c_decode_in_lua},
    {"values_through_a_state", test_values_through_a_state},
    {"a_state_without_conc_is_refused", test_a_state_without_conc_is_refused},
    {NULL, NULL}};

int main(int argc, char **argv) {
  return check_main("test_embed", tests, argc, argv);
}
