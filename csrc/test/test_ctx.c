/*
 * test_ctx.c: contexts (csrc/core/ctx.c) without Lua.
 *
 * Whether a context was freed is seen through its done channel: the test
 * keeps a reference to the channel, so the channel's count drops from 2
 * to 1 exactly when the context is destroyed. (ASan's leak check at the
 * end of each test catches the rest, and churn_under_cancel checks the
 * core's count of live contexts.)
 */
#include "check.h"

static void rel(void *o) { conc_release((conc_obj *)o); }

static conc_ctx *child(conc_ctx *parent) {
  conc_ctx *c = conc_ctx_new(parent, CONC_NEVER, NULL, NULL);
  CHECK(c != NULL);
  return c;
}

static long refs(void *o) { return atomic_load(&((conc_obj *)o)->refs); }

/* A reference to ctx's done channel, to watch ctx die. */
static conc_chan *watch(conc_ctx *ctx) {
  conc_chan *d = conc_ctx_done(ctx);
  conc_retain((conc_obj *)d);
  return d;
}

/* Released a probe whose context must be gone. */
static void check_freed(conc_chan *probe) {
  CHECK_EQ(refs(probe), 1);
  rel(probe);
}

static void wait_closed(conc_chan *c) {
  conc_msg m;
  CHECK_RC(conc_chan_recv(c, &m, CONC_NEVER), CONC_ECLOSED);
}

static void msg_str(conc_msg *m, const char *s) {
  CHECK_RC(conc_msg_init(m, s, strlen(s), NULL, 0), CONC_OK);
}

/* ---- basics ------------------------------------------------------------ */

static void background_is_never_done(void) {
  conc_ctx *bg = conc_ctx_background();
  conc_ctx *bg2 = conc_ctx_background();
  CHECK(bg == bg2);
  CHECK_EQ(conc_ctx_err(bg), 0);
  CHECK_EQ(conc_ctx_deadline(bg), CONC_NEVER);
  CHECK_EQ(conc_chan_closed(conc_ctx_done(bg)), 0);
  conc_msg key, out;
  msg_str(&key, "k");
  CHECK_EQ(conc_ctx_value(bg, &key, &out), 0);
  CHECK_EQ(conc_ctx_cause(bg, &out), 0);
  rel(bg2);
  rel(bg);
  bg = conc_ctx_background();  /* still alive: the process holds it */
  CHECK_EQ(conc_ctx_err(bg), 0);
  rel(bg);
}

static void cancel_once_with_cause(void) {
  conc_ctx *bg = conc_ctx_background();
  conc_ctx *c = child(bg);
  CHECK_EQ(conc_ctx_err(c), 0);
  conc_msg cause, cause2, out;
  msg_int_big(&cause, 77, 120);
  msg_int_big(&cause2, 78, 120);
  CHECK_EQ(conc_ctx_cancel(c, CONC_ECANCELED, &cause), 1);
  CHECK_EQ(conc_ctx_cancel(c, CONC_ECANCELED, &cause2), 0);  /* freed */
  CHECK_EQ(conc_ctx_cancel(c, CONC_EDEADLINE, NULL), 0);
  CHECK_RC(conc_ctx_err(c), CONC_ECANCELED);
  CHECK_EQ(conc_chan_closed(conc_ctx_done(c)), 1);
  CHECK_EQ(conc_ctx_cause(c, &out), 1);
  CHECK_EQ(msg_take_int(&out), 77);
  CHECK_EQ(conc_ctx_cause(c, &out), 1);  /* a copy each time */
  CHECK_EQ(msg_take_int(&out), 77);
  CHECK_EQ(conc_ctx_err(bg), 0);  /* the parent is untouched */
  conc_ctx *d = child(bg);        /* no cause */
  CHECK_EQ(conc_ctx_cancel(d, CONC_ECANCELED, NULL), 1);
  CHECK_EQ(conc_ctx_cause(d, &out), 0);
  rel(d);
  rel(c);
  rel(bg);
}

/* ---- propagation ------------------------------------------------------- */

#define TREE 15  /* a binary tree: node i has children 2i+1 and 2i+2 */

typedef struct waiter_arg {
  conc_ctx *ctx;
  pthread_barrier_t *ready;
  int err;
  int64_t cause;
} waiter_arg;

static void *wait_done(void *p) {
  waiter_arg *a = (waiter_arg *)p;
  conc_chan *d = conc_ctx_done(a->ctx);
  pthread_barrier_wait(a->ready);
  wait_closed(d);
  a->err = conc_ctx_err(a->ctx);
  conc_msg out;
  a->cause = conc_ctx_cause(a->ctx, &out) ? msg_take_int(&out) : -1;
  return NULL;
}

/* Cancelling a node cancels its whole subtree, in other threads parked
 * on their done channels, with the same cause; the rest stays live. */
static void cancel_propagates_down(void) {
  conc_ctx *bg = conc_ctx_background();
  conc_ctx *node[TREE];
  for (int i = 0; i < TREE; i++)
    node[i] = child(i == 0 ? bg : node[(i - 1) / 2]);
  pthread_barrier_t ready;
  CHECK_PT(pthread_barrier_init(&ready, NULL, TREE + 1));
  waiter_arg args[TREE];
  pthread_t t[TREE];
  for (int i = 0; i < TREE; i++) {
    args[i] = (waiter_arg){node[i], &ready, 0, 0};
    t[i] = spawn(wait_done, &args[i]);
  }
  pthread_barrier_wait(&ready);
  /* Cancel node 1's subtree first: 1, 3, 4, 7, 8, 9, 10. */
  conc_msg cause;
  msg_int_big(&cause, 1, 64);
  CHECK_EQ(conc_ctx_cancel(node[1], CONC_ECANCELED, &cause), 1);
  for (int i = 0; i < TREE; i++) {
    int in_sub = i == 1 || i == 3 || i == 4 || (i >= 7 && i <= 10);
    if (in_sub) {
      join(t[i]);
      CHECK_RC(args[i].err, CONC_ECANCELED);
      CHECK_EQ(args[i].cause, 1);
    } else {
      CHECK_EQ(conc_ctx_err(node[i]), 0);
    }
  }
  msg_int_big(&cause, 2, 64);
  CHECK_EQ(conc_ctx_cancel(node[0], CONC_ECANCELED, &cause), 1);
  for (int i = 0; i < TREE; i++) {
    int in_sub = i == 1 || i == 3 || i == 4 || (i >= 7 && i <= 10);
    if (in_sub) continue;
    join(t[i]);
    CHECK_RC(args[i].err, CONC_ECANCELED);
    CHECK_EQ(args[i].cause, 2);
  }
  CHECK_EQ(conc_ctx_err(bg), 0);
  for (int i = TREE - 1; i >= 0; i--) rel(node[i]);
  pthread_barrier_destroy(&ready);
  rel(bg);
}

/* A child of a cancelled parent is born cancelled, with its cause. */
static void child_of_canceled(void) {
  conc_ctx *bg = conc_ctx_background();
  conc_ctx *p = child(bg);
  conc_msg cause, out;
  msg_str(&cause, "stop");
  CHECK_EQ(conc_ctx_cancel(p, CONC_EDEADLINE, &cause), 1);
  conc_ctx *c = child(p);
  CHECK_RC(conc_ctx_err(c), CONC_EDEADLINE);
  CHECK_EQ(conc_chan_closed(conc_ctx_done(c)), 1);
  CHECK_EQ(conc_ctx_cause(c, &out), 1);
  CHECK_EQ(out.len, 4);
  CHECK(memcmp(conc_msg_data(&out), "stop", 4) == 0);
  conc_msg_free(&out);
  rel(c);
  rel(p);
  rel(bg);
}

/* Several threads cancel the same context: exactly one call does it. */
typedef struct cancel_race {
  conc_ctx *ctx;
  pthread_barrier_t go;
  atomic_int wins;
} cancel_race;

static void *cancel_it(void *p) {
  cancel_race *x = (cancel_race *)p;
  conc_msg cause;
  msg_int_big(&cause, 5, 80);
  pthread_barrier_wait(&x->go);
  atomic_fetch_add(&x->wins, conc_ctx_cancel(x->ctx, CONC_ECANCELED, &cause));
  return NULL;
}

static void concurrent_cancel_one_wins(void) {
  conc_ctx *bg = conc_ctx_background();
  for (long round = 0; round < scaled(100, 5); round++) {
    cancel_race x;
    memset(&x, 0, sizeof x);
    x.ctx = child(bg);
    conc_ctx *kids[4];
    for (int i = 0; i < 4; i++) kids[i] = child(x.ctx);
    CHECK_PT(pthread_barrier_init(&x.go, NULL, 4));
    pthread_t t[4];
    for (int i = 0; i < 4; i++) t[i] = spawn(cancel_it, &x);
    for (int i = 0; i < 4; i++) join(t[i]);
    CHECK_EQ(atomic_load(&x.wins), 1);
    for (int i = 0; i < 4; i++) {
      CHECK_RC(conc_ctx_err(kids[i]), CONC_ECANCELED);
      rel(kids[i]);
    }
    pthread_barrier_destroy(&x.go);
    rel(x.ctx);
  }
  rel(bg);
}

/* ---- deadlines --------------------------------------------------------- */

static void deadline_fires(void) {
  conc_ctx *bg = conc_ctx_background();
  conc_time d = in_ms(30);
  conc_ctx *c = conc_ctx_new(bg, d, NULL, NULL);
  CHECK_EQ(conc_ctx_deadline(c), d);
  conc_ctx *kid = child(c);                        /* inherits it */
  CHECK_EQ(conc_ctx_deadline(kid), d);
  conc_ctx *later = conc_ctx_new(c, d + 1000 * CHECK_MS, NULL, NULL);
  CHECK_EQ(conc_ctx_deadline(later), d);           /* the earlier wins */
  conc_ctx *sooner = conc_ctx_new(c, d - 10 * CHECK_MS, NULL, NULL);
  CHECK_EQ(conc_ctx_deadline(sooner), d - 10 * CHECK_MS);
  wait_closed(conc_ctx_done(sooner));
  CHECK(conc_now() >= d - 10 * CHECK_MS);
  CHECK_RC(conc_ctx_err(sooner), CONC_EDEADLINE);
  int e = conc_ctx_err(c);
  if (conc_now() < d) CHECK_EQ(e, 0);              /* not upwards */
  wait_closed(conc_ctx_done(c));
  CHECK(conc_now() >= d);
  CHECK_RC(conc_ctx_err(c), CONC_EDEADLINE);
  wait_closed(conc_ctx_done(kid));
  CHECK_RC(conc_ctx_err(kid), CONC_EDEADLINE);
  wait_closed(conc_ctx_done(later)); /* (siblings: in no set order) */
  CHECK_RC(conc_ctx_err(later), CONC_EDEADLINE);
  conc_msg out;
  CHECK_EQ(conc_ctx_cause(c, &out), 0);
  /* A deadline already past: born cancelled. */
  conc_ctx *past = conc_ctx_new(bg, conc_now() - 1, NULL, NULL);
  CHECK_RC(conc_ctx_err(past), CONC_EDEADLINE);
  CHECK_EQ(conc_chan_closed(conc_ctx_done(past)), 1);
  rel(past);
  rel(sooner);
  rel(later);
  rel(kid);
  rel(c);
  rel(bg);
}

/* A cancel before the deadline wins; the deadline does not change it.
 * (The deadline leaves room for a slow start: under TSan, with the
 * other core busy, making the context took over 15 ms once.) */
static void cancel_before_deadline(void) {
  conc_ctx *bg = conc_ctx_background();
  conc_time d = in_ms(150);
  conc_ctx *c = conc_ctx_new(bg, d, NULL, NULL);
  CHECK_EQ(conc_ctx_cancel(c, CONC_ECANCELED, NULL), 1);
  conc_ctx *probe_ctx = conc_ctx_new(bg, d + 5 * CHECK_MS, NULL, NULL);
  wait_closed(conc_ctx_done(probe_ctx));  /* d has passed */
  CHECK_RC(conc_ctx_err(c), CONC_ECANCELED);
  rel(probe_ctx);
  rel(c);
  rel(bg);
}

/* ---- values ------------------------------------------------------------ */

static conc_ctx *with_value(conc_ctx *parent, const char *k, int64_t v,
                            size_t vlen) {
  conc_msg key, value;
  msg_str(&key, k);
  msg_int_big(&value, v, vlen);
  conc_ctx *c = conc_ctx_new(parent, CONC_NEVER, &key, &value);
  CHECK(c != NULL);
  return c;
}

static int64_t lookup(conc_ctx *c, const char *k) {
  conc_msg key, out;
  msg_str(&key, k);
  int found = conc_ctx_value(c, &key, &out);
  conc_msg_free(&key);
  return found ? msg_take_int(&out) : -1;
}

static void values_nearest_wins(void) {
  conc_ctx *bg = conc_ctx_background();
  const char *longkey =
      "a key longer than the forty-eight bytes a message keeps inline";
  conc_ctx *a = with_value(bg, "user", 1, 16);
  conc_ctx *b = child(a);
  conc_ctx *c = with_value(b, "trace", 2, 200);
  conc_ctx *d = with_value(c, "user", 3, 8);        /* shadows a's */
  conc_ctx *e = with_value(d, longkey, 4, 60);
  CHECK_EQ(lookup(e, "user"), 3);
  CHECK_EQ(lookup(e, "trace"), 2);
  CHECK_EQ(lookup(e, longkey), 4);
  CHECK_EQ(lookup(c, "user"), 1);
  CHECK_EQ(lookup(b, "user"), 1);
  CHECK_EQ(lookup(b, "trace"), -1);
  CHECK_EQ(lookup(e, "use"), -1);    /* a prefix is not equal */
  CHECK_EQ(lookup(e, "users"), -1);
  CHECK_EQ(lookup(bg, "user"), -1);
  /* Values survive cancellation. */
  CHECK_EQ(conc_ctx_cancel(a, CONC_ECANCELED, NULL), 1);
  CHECK_EQ(lookup(e, "user"), 3);
  CHECK_RC(conc_ctx_err(e), CONC_ECANCELED);
  rel(a);  /* the chain holds its ancestors: still readable */
  rel(b);
  rel(c);
  rel(d);
  CHECK_EQ(lookup(e, "trace"), 2);
  rel(e);
  rel(bg);
}

/* ---- lifetimes --------------------------------------------------------- */

static void dropping_frees(void) {
  conc_ctx *bg = conc_ctx_background();

  conc_ctx *c = child(bg);  /* dropped uncancelled: freed, unlinked */
  conc_chan *probe = watch(c);
  rel(c);
  check_freed(probe);

  conc_ctx *p = child(bg);  /* a parent outlives ... */
  conc_chan *pprobe = watch(p);
  c = child(p);
  probe = watch(c);
  rel(p);
  CHECK_EQ(refs(pprobe), 2);  /* ... while its child holds it */
  rel(c);
  check_freed(probe);
  check_freed(pprobe);

  p = child(bg);            /* a dropped child leaves the parent's list */
  c = child(p);
  probe = watch(c);
  rel(c);
  check_freed(probe);
  CHECK_EQ(conc_ctx_cancel(p, CONC_ECANCELED, NULL), 1);  /* no UAF */
  rel(p);

  c = conc_ctx_new(bg, in_ms(60000), NULL, NULL);  /* a far deadline */
  probe = watch(c);
  rel(c);
  CHECK_EQ(refs(probe), 2);  /* the scheduled timer keeps it (as Go) */
  /* (Go requires cancel; without it the context lives until its
   * deadline. Here we cannot reach it any more to cancel.) */
  rel(probe);

  c = conc_ctx_new(bg, in_ms(60000), NULL, NULL);  /* cancelled: freed */
  probe = watch(c);
  CHECK_EQ(conc_ctx_cancel(c, CONC_ECANCELED, NULL), 1);
  rel(c);
  check_freed(probe);

  c = conc_ctx_new(bg, in_ms(5), NULL, NULL);  /* its deadline fired */
  probe = watch(c);
  wait_closed(probe);
  rel(c);
  /* The timer thread drops its reference right after cancelling; a
   * later context's deadline fires after that. */
  conc_ctx *sentinel = conc_ctx_new(bg, in_ms(1), NULL, NULL);
  wait_closed(conc_ctx_done(sentinel));
  rel(sentinel);
  check_freed(probe);

  conc_ctx *v = with_value(bg, "k", 9, 100);  /* values freed too */
  probe = watch(v);
  rel(v);
  check_freed(probe);
  rel(bg);
}

/* Threads create and drop children of a shared parent while another
 * cancels it: every child ends cancelled or freed, nothing leaks. */
typedef struct churn {
  conc_ctx *parent;
  pthread_barrier_t go;
  long rounds;
} churn;

/* As check_freed, for a context another thread may still hold for a
 * moment: its count must reach 1 within 5 s. */
static void await_freed(conc_chan *probe) {
  conc_time until = conc_now() + 5000000000LL; /* 5 s, in ns */
  while (refs(probe) != 1 && conc_now() < until) sched_yield();
  check_freed(probe);
}

static void *churn_thread(void *p) {
  churn *x = (churn *)p;
  pthread_barrier_wait(&x->go);
  for (long i = 0; i < x->rounds; i++) {
    conc_ctx *c = child(x->parent);
    conc_ctx *g = child(c);
    if (i % 3 == 0) conc_ctx_cancel(g, CONC_ECANCELED, NULL);
    rel(c);  /* g holds c */
    if (i % 2) {
      conc_chan *probe = watch(g);
      rel(g);
      /* A cancel of the parent running now holds g while it passes the
       * cancel down (take_children): g goes when that cancel lets go. */
      await_freed(probe);
    } else {
      rel(g);
    }
  }
  return NULL;
}

static void churn_under_cancel(void) {
  conc_ctx *bg = conc_ctx_background();
  long ctxs = live_of("conc.ctx"), chans = live_of("conc.chan");
  for (int round = 0; round < 4; round++) {
    churn x;
    x.parent = child(bg);
    x.rounds = scaled(3000, 6);
    CHECK_PT(pthread_barrier_init(&x.go, NULL, 4));
    pthread_t t[3];
    for (int i = 0; i < 3; i++) t[i] = spawn(churn_thread, &x);
    pthread_barrier_wait(&x.go);
    conc_msg cause;
    msg_int_big(&cause, round, 70);
    CHECK_EQ(conc_ctx_cancel(x.parent, CONC_ECANCELED, &cause), 1);
    for (int i = 0; i < 3; i++) join(t[i]);
    conc_chan *probe = watch(x.parent);
    rel(x.parent);
    check_freed(probe);
    pthread_barrier_destroy(&x.go);
  }
  CHECK_EQ(live_of("conc.ctx"), ctxs);    /* every context was freed */
  CHECK_EQ(live_of("conc.chan"), chans);  /* and its done channel */
  rel(bg);
}

/* Only ECANCELED and EDEADLINE: another err left done closed with err
 * 0 ("live"), and a wait on it aborted. */
static void cancel_refuses_other_errors(void) {
  conc_ctx *bg = conc_ctx_background();
  conc_ctx *c = child(bg);
  conc_msg cause;
  msg_int_big(&cause, 5, 120);
  CHECK_RC(conc_ctx_cancel(c, 0, &cause), CONC_EINVAL);
  CHECK_RC(conc_ctx_cancel(c, CONC_ETIMEDOUT, NULL), CONC_EINVAL);
  CHECK_EQ(conc_ctx_err(c), 0);
  CHECK_EQ(conc_chan_closed(conc_ctx_done(c)), 0);
  CHECK_EQ(conc_ctx_cancel(c, CONC_ECANCELED, &cause), 1); /* still ours */
  CHECK_RC(conc_ctx_err(c), CONC_ECANCELED);
  rel(c);
  rel(bg);
}

static const check_test tests[] = {
    {"cancel_refuses_other_errors", cancel_refuses_other_errors},
    {"background_is_never_done", background_is_never_done},
    {"cancel_once_with_cause", cancel_once_with_cause},
    {"cancel_propagates_down", cancel_propagates_down},
    {"child_of_canceled", child_of_canceled},
    {"concurrent_cancel_one_wins", concurrent_cancel_one_wins},
    {"deadline_fires", deadline_fires},
    {"cancel_before_deadline", cancel_before_deadline},
    {"values_nearest_wins", values_nearest_wins},
    {"dropping_frees", dropping_frees},
    {"churn_under_cancel", churn_under_cancel},
    {NULL, NULL}};

int main(int argc, char **argv) {
  return check_main("test_ctx", tests, argc, argv);
}
