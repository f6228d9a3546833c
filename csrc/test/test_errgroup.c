/*
 * test_errgroup.c: the errgroup's state (csrc/core/errgroup.c) and the
 * atomic integer (csrc/core/atomic.c) without Lua: threads stand in for
 * the binding's workers.
 */
#include "check.h"

static void rel(void *o) { conc_release((conc_obj *)o); }

static void wait_closed(conc_chan *c) {
  conc_msg m;
  CHECK_RC(conc_chan_recv(c, &m, CONC_NEVER), CONC_ECLOSED);
}

/* The first failure cancels ctx with itself as the cause; every failure
 * is kept, in order; finish returns the first. */
static void eg_first_error_wins(void) {
  conc_errgroup *g = conc_errgroup_new(NULL);
  conc_ctx *ctx = conc_errgroup_ctx(g);
  conc_sem *sem = NULL;
  for (int i = 0; i < 3; i++) {
    conc_errgroup_begin(g, &sem);
    CHECK(sem == NULL);  /* no limit */
  }
  CHECK_EQ(conc_errgroup_running(g), 3);
  conc_errgroup_done(g, NULL, 1);
  CHECK_EQ(conc_ctx_err(ctx), 0);
  conc_msg e1, e2, got;
  msg_int(&e1, 11);
  msg_int(&e2, 22);
  conc_errgroup_done(g, &e1, 1);
  CHECK_EQ(conc_ctx_err(ctx), CONC_ECANCELED);
  CHECK_EQ(conc_ctx_cause(ctx, &got), 1);
  CHECK_EQ(msg_take_int(&got), 11);
  conc_chan *zero = conc_errgroup_wait_chan(g);
  CHECK(zero != NULL && !conc_chan_closed(zero));
  conc_errgroup_done(g, &e2, 1);
  wait_closed(zero);
  rel(zero);
  CHECK(conc_errgroup_wait_chan(g) == NULL);
  CHECK_EQ(conc_errgroup_finish(g, &got), 1);
  CHECK_EQ(msg_take_int(&got), 11);
  CHECK_EQ(conc_errgroup_nerrors(g), 2);
  CHECK_EQ(conc_errgroup_error(g, 1, &got), 1);
  CHECK_EQ(msg_take_int(&got), 22);
  CHECK_EQ(conc_errgroup_error(g, 2, &got), 0);
  rel(g);
}

/* finish cancels the context even when nothing failed; a parent's
 * cancellation reaches the group's context. */
static void eg_finish_and_parent(void) {
  conc_ctx *bg = conc_ctx_background();
  conc_ctx *parent = conc_ctx_new(bg, CONC_NEVER, NULL, NULL);
  conc_errgroup *g = conc_errgroup_new(parent);
  conc_msg first;
  CHECK_EQ(conc_errgroup_finish(g, &first), 0);
  CHECK_EQ(conc_ctx_err(conc_errgroup_ctx(g)), CONC_ECANCELED);
  conc_errgroup *g2 = conc_errgroup_new(parent);
  conc_ctx_cancel(parent, CONC_ECANCELED, NULL);
  CHECK_EQ(conc_ctx_err(conc_errgroup_ctx(g2)), CONC_ECANCELED);
  rel(g);
  rel(g2);
  rel(parent);
  rel(bg);
}

/* The limit: try_begin refuses at it; set_limit refuses while counted. */
static void eg_limit(void) {
  conc_errgroup *g = conc_errgroup_new(NULL);
  CHECK_EQ(conc_errgroup_limit(g), -1);
  CHECK_RC(conc_errgroup_set_limit(g, 2), CONC_OK);
  CHECK_EQ(conc_errgroup_limit(g), 2);
  CHECK_EQ(conc_errgroup_try_begin(g), 1);
  CHECK_EQ(conc_errgroup_try_begin(g), 1);
  CHECK_EQ(conc_errgroup_try_begin(g), 0);
  CHECK_EQ(conc_errgroup_running(g), 2);
  CHECK_RC(conc_errgroup_set_limit(g, 5), CONC_EBUSY);
  CHECK_EQ(conc_errgroup_limit(g), 2);
  conc_sem *sem = NULL;
  conc_errgroup_begin(g, &sem);  /* counted; must wait for a unit */
  CHECK(sem != NULL);
  conc_sem_wait *w = NULL;
  CHECK_RC(conc_sem_acquire(sem, 1, &w), CONC_EAGAIN);
  conc_errgroup_done(g, NULL, 1);  /* a unit back: granted to w */
  CHECK_EQ(conc_sem_wait_end(sem, w), 1);
  rel(sem);
  conc_errgroup_done(g, NULL, 1);
  conc_errgroup_done(g, NULL, 1);
  CHECK_EQ(conc_errgroup_running(g), 0);
  CHECK_RC(conc_errgroup_set_limit(g, -1), CONC_OK);
  CHECK_EQ(conc_errgroup_try_begin(g), 1);
  conc_errgroup_done(g, NULL, 0);
  rel(g);
}

typedef struct eg_work {
  conc_errgroup *g;
  conc_atomic *ran, *inside, *max;
} eg_work;

static void *eg_worker(void *p) {
  eg_work *x = (eg_work *)p;
  int64_t n = conc_atomic_add(x->inside, 1);
  for (int64_t m = conc_atomic_load(x->max);
       n > m && !conc_atomic_cas(x->max, m, n); m = conc_atomic_load(x->max)) {
  }
  conc_atomic_add(x->ran, 1);
  conc_atomic_add(x->inside, -1);
  conc_errgroup_done(x->g, NULL, 1);
  return NULL;
}

/* Many functions through a limit of 3, from one spawner: every one runs
 * once, never more than 3 at once; the atomics count exactly. */
static void eg_threads_limited(void) {
  enum { N = 200 };
  eg_work x = {conc_errgroup_new(NULL), conc_atomic_new(0), conc_atomic_new(0),
               conc_atomic_new(0)};
  CHECK_RC(conc_errgroup_set_limit(x.g, 3), CONC_OK);
  pthread_t th[N];
  for (int i = 0; i < N; i++) {
    conc_sem *sem = NULL;
    conc_errgroup_begin(x.g, &sem);
    conc_sem_wait *w = NULL;
    if (conc_sem_acquire(sem, 1, &w) == CONC_EAGAIN) {
      wait_closed(conc_sem_wait_chan(w));
      CHECK_EQ(conc_sem_wait_end(sem, w), 1);
    }
    rel(sem);
    th[i] = spawn(eg_worker, &x);
  }
  conc_chan *zero = conc_errgroup_wait_chan(x.g);
  if (zero) {
    wait_closed(zero);
    rel(zero);
  }
  for (int i = 0; i < N; i++) join(th[i]);
  CHECK_EQ(conc_atomic_load(x.ran), N);
  CHECK(conc_atomic_load(x.max) <= 3);
  CHECK_EQ(conc_errgroup_running(x.g), 0);
  rel(x.g);
  rel(x.ran);
  rel(x.inside);
  rel(x.max);
}

static void atomic_ops_wrap(void) {
  conc_atomic *a = conc_atomic_new(INT64_MAX);
  CHECK(conc_atomic_add(a, 1) == INT64_MIN);
  conc_atomic_store(a, 5);
  CHECK_EQ(conc_atomic_swap(a, 9), 5);
  CHECK_EQ(conc_atomic_cas(a, 5, 1), 0);
  CHECK_EQ(conc_atomic_cas(a, 9, 1), 1);
  CHECK_EQ(conc_atomic_load(a), 1);
  rel(a);
}

static const check_test tests[] = {
    {"eg_first_error_wins", eg_first_error_wins},
    {"eg_finish_and_parent", eg_finish_and_parent},
    {"eg_limit", eg_limit},
    {"eg_threads_limited", eg_threads_limited},
    {"atomic_ops_wrap", atomic_ops_wrap},
    {NULL, NULL}};

int main(int argc, char **argv) {
  return check_main("test_errgroup", tests, argc, argv);
}
