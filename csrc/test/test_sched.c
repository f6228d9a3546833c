/*
 * test_sched.c: deadlock detection and the scheduling facts
 * (csrc/core/sched.c), without Lua. A test plays the binding's part: it
 * counts the "main script" thread (conc__live_add + conc__thread_enter
 * with id 0) and "workers" (ids > 0), as csrc/lua/lsched.c and worker.c
 * do.
 */
#include "peek.h"

static void main_enter(int mode) {
  conc_deadlock_mode(mode);
  conc__live_add(1);
  conc__thread_enter(0);
}

static void main_leave(void) {
  conc__thread_leave();
  conc__live_add(-1);
}

/* A counted worker: the spawner counts it live before it starts. */
typedef struct worker {
  int64_t id;
  void *(*fn)(void *);
  void *arg;
} worker;

static void *worker_main(void *p) {
  worker *w = (worker *)p;
  conc__thread_enter(w->id);
  w->fn(w->arg);
  conc__thread_leave();
  conc__live_add(-1);  /* after its last wake-ups */
  return NULL;
}

static pthread_t spawn_worker(worker *w) {
  conc__live_add(1);
  return spawn(worker_main, w);
}

static int contains(const char *hay, const char *needle) {
  return strstr(hay, needle) != NULL;
}

/* ---- detection --------------------------------------------------------- */

/* ERROR mode: the main script's receive that nothing can complete ends
 * with EDEADLOCK, and leaves nothing parked on the channel. */
static void deadlock_error_on_recv(void) {
  main_enter(CONC_DEADLOCK_ERROR);
  conc_chan *c = conc_chan_new(0);
  conc_msg m;
  CHECK_RC(conc_chan_recv(c, &m, CONC_NEVER), CONC_EDEADLOCK);
  CHECK_EQ(peek_parked(c, 1), 0);
  const char *r = conc_deadlock_report();
  CHECK(contains(r, "all workers are asleep - deadlock!"));
  CHECK(contains(r, "main: waits in chan receive"));
  msg_int(&m, 1);
  CHECK_RC(conc_chan_send(c, &m, CONC_NEVER), CONC_EDEADLOCK);
  CHECK_EQ(peek_parked(c, 0), 0);
  CHECK_EQ(msg_take_int(&m), 1);  /* still the sender's */
  conc_release((conc_obj *)c);
  main_leave();
}

static void deadlock_error_on_select(void) {
  main_enter(CONC_DEADLOCK_ERROR);
  conc_chan *a = conc_chan_new(0), *b = conc_chan_new(1);
  conc_msg m;
  msg_int(&m, 0);
  CHECK_RC(conc_chan_send(b, &m, CONC_NOWAIT), CONC_OK);  /* b is full */
  conc_case cs[3];
  memset(cs, 0, sizeof cs);
  cs[0].chan = a;
  cs[0].op = CONC_RECV;
  cs[1].chan = b;
  cs[1].op = CONC_SEND;
  msg_int(&cs[1].msg, 5);
  cs[2].chan = NULL;
  cs[2].op = CONC_RECV;
  int closed_send;
  CHECK_RC(conc_select(cs, 3, CONC_NEVER, &closed_send), CONC_EDEADLOCK);
  CHECK(contains(conc_deadlock_report(), "main: waits in select"));
  CHECK_EQ(peek_parked(a, 1) + peek_parked(b, 0), 0);
  CHECK_EQ(msg_take_int(&cs[1].msg), 5);
  /* A select with only nil channels deadlocks too. */
  CHECK_RC(conc_select(&cs[2], 1, CONC_NEVER, &closed_send), CONC_EDEADLOCK);
  conc_release((conc_obj *)a);
  conc_release((conc_obj *)b);
  main_leave();
}

static void tick_now(conc_msg *m, conc_time now) { msg_int(m, now); }

/* A pending timer can still wake the main script: no deadlock. */
static void pending_timer_is_no_deadlock(void) {
  main_enter(CONC_DEADLOCK_ERROR);
  conc_chan *c = conc_chan_new(1);
  conc_timer *t = conc_timer_new_chan(c, tick_now);
  conc_time when = in_ms(20);
  CHECK_EQ(conc_timer_start(t, when, 0), 0);
  conc_msg m;
  CHECK_RC(conc_chan_recv(c, &m, CONC_NEVER), CONC_OK);
  CHECK(msg_take_int(&m) >= when);
  conc_ctx *bg = conc_ctx_background();  /* a context's deadline too */
  conc_ctx *ctx = conc_ctx_new(bg, in_ms(10), NULL, NULL);
  CHECK_RC(conc_chan_recv(conc_ctx_done(ctx), &m, CONC_NEVER), CONC_ECLOSED);
  conc_release((conc_obj *)ctx);
  conc_release((conc_obj *)bg);
  conc_timer_release(t);
  conc_release((conc_obj *)c);
  main_leave();
}

typedef struct pair {
  conc_chan *a, *b;
  conc_mutex *mu;
  long rounds;
  long shared;   /* mu */
} pair;

/* The worker's half of the ping-pong: receive on a, answer on b, take
 * the mutex now and then, and select sometimes. */
static void *pong(void *p) {
  pair *x = (pair *)p;
  for (long i = 0; i < x->rounds; i++) {
    conc_msg m;
    if (i % 3 == 0) {
      conc_case cs[2];
      memset(cs, 0, sizeof cs);
      cs[0].chan = x->a;
      cs[0].op = CONC_RECV;
      cs[1].chan = NULL;
      int closed_send;
      CHECK_EQ(conc_select(cs, 2, CONC_NEVER, &closed_send), 0);
      m = cs[0].msg;
    } else {
      CHECK_RC(conc_chan_recv(x->a, &m, CONC_NEVER), CONC_OK);
    }
    int64_t v = msg_take_int(&m);
    conc_mutex_lock(x->mu);
    x->shared++;
    CHECK_RC(conc_mutex_unlock(x->mu), CONC_OK);
    msg_int(&m, v + 1);
    CHECK_RC(conc_chan_send(x->b, &m, CONC_NEVER), CONC_OK);
  }
  return NULL;
}

/*
 * No false alarm: two counted threads hand messages back and forth and
 * share a mutex, both often asleep with no deadline, never both for
 * good. A false deadlock shows as EDEADLOCK in the main thread, or as
 * the process exiting with status 2.
 */
static void no_false_deadlock(void) {
  main_enter(CONC_DEADLOCK_ERROR);
  pair x = {conc_chan_new(0), conc_chan_new(0), conc_mutex_new(),
            scaled(20000, 8), 0};
  worker w = {1, pong, &x};
  pthread_t t = spawn_worker(&w);
  for (long i = 0; i < x.rounds; i++) {
    conc_msg m;
    msg_int(&m, 2 * i);
    CHECK_RC(conc_chan_send(x.a, &m, CONC_NEVER), CONC_OK);
    conc_mutex_lock(x.mu);
    x.shared++;
    CHECK_RC(conc_mutex_unlock(x.mu), CONC_OK);
    CHECK_RC(conc_chan_recv(x.b, &m, CONC_NEVER), CONC_OK);
    CHECK_EQ(msg_take_int(&m), 2 * i + 1);
  }
  join(t);
  CHECK_EQ(x.shared, 2 * x.rounds);
  conc_release((conc_obj *)x.a);
  conc_release((conc_obj *)x.b);
  conc_release((conc_obj *)x.mu);
  main_leave();
}

typedef struct stuck {
  conc_chan *a;
  int rc;
} stuck;

static void *recv_a(void *p) {
  stuck *s = (stuck *)p;
  conc_msg m;
  s->rc = conc_chan_recv(s->a, &m, CONC_NEVER);
  return NULL;
}

/* Main and a worker both wait for good: the report names both, and the
 * main script's wait fails (the worker's stays: close releases it). */
static void deadlock_with_worker(void) {
  main_enter(CONC_DEADLOCK_ERROR);
  stuck s = {conc_chan_new(0), 99};
  worker w = {7, recv_a, &s};
  pthread_t t = spawn_worker(&w);
  wait_parked(s.a, 1, 1);
  conc_chan *b = conc_chan_new(0);
  conc_msg m;
  CHECK_RC(conc_chan_recv(b, &m, CONC_NEVER), CONC_EDEADLOCK);
  const char *r = conc_deadlock_report();
  CHECK(contains(r, "main: waits in chan receive"));
  CHECK(contains(r, "worker 7: waits in chan receive"));
  CHECK_RC(conc_chan_close(s.a), CONC_OK);
  join(t);
  CHECK_RC(s.rc, CONC_ECLOSED);
  conc_release((conc_obj *)s.a);
  conc_release((conc_obj *)b);
  main_leave();
}

static void lock_out_in_child(void *arg) {
  (void)arg;
  main_enter(CONC_DEADLOCK_EXIT);
  conc_mutex *mu = conc_mutex_new();
  conc_mutex_lock(mu);
  conc_mutex_lock(mu); /* locks itself out: not a channel wait */
}

/* EXIT mode (the default) prints Go's message and exits with status 2;
 * run in a child process of its own. */
static void deadlock_exit_mode(void) {
  char buf[4096];
  int status = in_child(lock_out_in_child, NULL, buf, sizeof buf);
  CHECK(WIFEXITED(status));
  CHECK_EQ(WEXITSTATUS(status), 2);
  CHECK(contains(buf, "fatal error: all workers are asleep - deadlock!"));
  CHECK(contains(buf, "main: waits in mutex lock"));
}

/* OFF: no check; a wait with a deadline never counts as asleep. */
static void off_mode_and_deadlines(void) {
  main_enter(CONC_DEADLOCK_ERROR);
  conc_chan *c = conc_chan_new(0);
  conc_msg m;
  CHECK_RC(conc_chan_recv(c, &m, in_ms(20)), CONC_ETIMEDOUT);
  conc_deadlock_mode(CONC_DEADLOCK_OFF);
  stuck s = {c, 99};
  pthread_t t = spawn(recv_a, &s);  /* an uncounted host thread */
  wait_parked(c, 1, 1);
  CHECK_RC(conc_chan_close(c), CONC_OK);
  join(t);
  CHECK_RC(s.rc, CONC_ECLOSED);
  conc_release((conc_obj *)c);
  main_leave();
}

/* ---- scheduling facts -------------------------------------------------- */

static void threads_listed(void) {
  main_enter(CONC_DEADLOCK_OFF);
  stuck s = {conc_chan_new(0), 99};
  worker w = {3, recv_a, &s};
  pthread_t t = spawn_worker(&w);
  wait_parked(s.a, 1, 1);
  conc_thread_info info[8];
  int n = conc_threads(info, 8);
  CHECK_EQ(n, 2);
  int seen_main = 0, seen_worker = 0;
  for (int i = 0; i < n; i++) {
    if (info[i].id == 0) {
      seen_main = 1;
      CHECK_EQ(info[i].state, CONC_THREAD_RUNNING);
    } else {
      CHECK_EQ(info[i].id, 3);
      seen_worker = 1;
      /* Parked (linked) may still be spinning before it sleeps. */
      CHECK(info[i].what && strcmp(info[i].what, "chan receive") == 0);
      CHECK(info[i].obj == s.a);
    }
  }
  CHECK(seen_main && seen_worker);
  CHECK_EQ(conc_threads(info, 1), 2);  /* the count, even if cut */
  CHECK_RC(conc_chan_close(s.a), CONC_OK);
  join(t);
  CHECK_EQ(conc_threads(info, 8), 1);
  conc_release((conc_obj *)s.a);
  main_leave();
  CHECK_EQ(conc_threads(info, 8), 0);
}

static void object_and_message_counts(void) {
  long chans = live_of("conc.chan");
  conc_chan *c[3];
  for (int i = 0; i < 3; i++) c[i] = conc_chan_new(4);
  CHECK_EQ(live_of("conc.chan"), chans + 3);
  conc_mutex *mu = conc_mutex_new();
  CHECK_EQ(live_of("conc.mutex"), 1);
  long long sent = conc_messages_sent();
  for (int i = 0; i < 1000; i++) {
    conc_msg m;
    msg_int(&m, i);
    CHECK_RC(conc_chan_send(c[i % 3], &m, CONC_NOWAIT), CONC_OK);
    CHECK_RC(conc_chan_recv(c[i % 3], &m, CONC_NOWAIT), CONC_OK);
    conc_msg_free(&m);
  }
  CHECK_EQ(conc_messages_sent() - sent, 1000);  /* this thread's count */
  for (int i = 0; i < 3; i++) conc_release((conc_obj *)c[i]);
  conc_release((conc_obj *)mu);
  CHECK_EQ(live_of("conc.chan"), chans);
  CHECK_EQ(live_of("conc.mutex"), 0);
}

/* A thread that was the main script's exits: the interrupt's pointer
 * to its waiter goes (the waiter is reused, a task's wait may get it). */
static void *main_then_exit(void *leave) {
  conc__live_add(1);
  conc__thread_enter(0);
  CHECK(conc__main_waiter() == conc__waiter_self());
  if (leave) main_leave();
  return NULL;
}

static void main_waiter_goes_with_its_thread(void) {
  conc_deadlock_mode(CONC_DEADLOCK_OFF);
  for (int leave = 0; leave <= 1; leave++) {
    pthread_join(spawn(main_then_exit, leave ? &leave : NULL), NULL);
    CHECK(conc__main_waiter() == NULL);
  }
}

static const check_test tests[] = {
    {"main_waiter_goes_with_its_thread", main_waiter_goes_with_its_thread},
    {"deadlock_error_on_recv", deadlock_error_on_recv},
    {"deadlock_error_on_select", deadlock_error_on_select},
    {"pending_timer_is_no_deadlock", pending_timer_is_no_deadlock},
    {"no_false_deadlock", no_false_deadlock},
    {"deadlock_with_worker", deadlock_with_worker},
    {"deadlock_exit_mode", deadlock_exit_mode},
    {"off_mode_and_deadlines", off_mode_and_deadlines},
    {"threads_listed", threads_listed},
    {"object_and_message_counts", object_and_message_counts},
    {NULL, NULL}};

int main(int argc, char **argv) {
  return check_main("test_sched", tests, argc, argv);
}
