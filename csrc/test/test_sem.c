/*
 * test_sem.c: the weighted semaphore (csrc/core/sem.c) without Lua.
 */
#include "check.h"

static void rel(void *o) { conc_release((conc_obj *)o); }

/* Acquires n, waiting as long as it takes (deadline: CONC_NEVER), or
 * until deadline; 1 if acquired. */
static int acquire_until(conc_sem *s, int64_t n, conc_time deadline) {
  conc_sem_wait *w = NULL;
  int rc = conc_sem_acquire(s, n, &w);
  if (rc == CONC_OK) return 1;
  CHECK_RC(rc, CONC_EAGAIN);
  conc_msg m;
  rc = conc_chan_recv(conc_sem_wait_chan(w), &m, deadline);
  CHECK(rc == CONC_ECLOSED || rc == CONC_ETIMEDOUT);
  int granted = conc_sem_wait_end(s, w);
  if (rc == CONC_ECLOSED) CHECK_EQ(granted, 1);
  return granted;
}

static void sem_counts_and_misuse(void) {
  conc_sem *s = conc_sem_new(3);
  CHECK_EQ(conc_sem_size(s), 3);
  CHECK_EQ(conc_sem_try_acquire(s, 2), 1);
  CHECK_EQ(conc_sem_try_acquire(s, 2), 0);  /* 1 left */
  CHECK_EQ(conc_sem_try_acquire(s, 1), 1);
  CHECK_EQ(conc_sem_held(s), 3);
  CHECK_RC(conc_sem_release(s, 4), CONC_EHELD);
  CHECK_EQ(conc_sem_held(s), 3);            /* left as it was */
  CHECK_RC(conc_sem_release(s, 3), CONC_OK);
  CHECK_RC(conc_sem_release(s, 1), CONC_EHELD);
  conc_sem_wait *w = NULL, *w1 = NULL;
  CHECK_RC(conc_sem_acquire(s, -1, &w), CONC_EINVAL);
  CHECK_EQ(conc_sem_try_acquire(s, 4), 0);
  CHECK_RC(conc_sem_acquire(s, 0, &w), CONC_OK);
  /* Never fits: it waits (x/sync), outside the queue, holding nobody up */
  CHECK_RC(conc_sem_acquire(s, 4, &w), CONC_EAGAIN);
  CHECK_RC(conc_sem_acquire(s, 3, &w1), CONC_OK);
  CHECK_RC(conc_sem_acquire(s, 1, &w1), CONC_EAGAIN);  /* full: queued */
  CHECK_RC(conc_sem_release(s, 3), CONC_OK);
  CHECK_EQ(conc_chan_closed(conc_sem_wait_chan(w1)), 1);
  CHECK_EQ(conc_sem_wait_end(s, w1), 1);
  CHECK_EQ(conc_chan_closed(conc_sem_wait_chan(w)), 0);
  CHECK_EQ(conc_sem_wait_end(s, w), 0);
  CHECK_RC(conc_sem_release(s, 1), CONC_OK);
  CHECK_EQ(conc_sem_held(s), 0);
  /* A limit of 0 (an errgroup's): every request of 1 waits so */
  conc_sem *z = conc_sem_new(0);
  CHECK_RC(conc_sem_acquire(z, 1, &w), CONC_EAGAIN);
  CHECK_EQ(conc_sem_wait_end(z, w), 0);
  CHECK_RC(conc_sem_acquire(z, 0, &w), CONC_OK);
  rel(z);
  CHECK(conc_sem_new(-1) == NULL);
  rel(s);
}

/* A request queued behind one that does not fit waits, even if it would
 * fit itself: the large one is not starved. */
static void sem_large_acquire_does_not_starve(void) {
  conc_sem *s = conc_sem_new(2);
  CHECK_EQ(conc_sem_try_acquire(s, 1), 1);
  conc_sem_wait *big = NULL, *small = NULL;
  CHECK_RC(conc_sem_acquire(s, 2, &big), CONC_EAGAIN);
  CHECK_RC(conc_sem_acquire(s, 1, &small), CONC_EAGAIN);  /* 1 is free */
  CHECK_EQ(conc_sem_try_acquire(s, 1), 0);  /* someone waits */
  CHECK_RC(conc_sem_release(s, 1), CONC_OK);
  CHECK_EQ(conc_chan_closed(conc_sem_wait_chan(big)), 1);
  CHECK_EQ(conc_chan_closed(conc_sem_wait_chan(small)), 0);
  CHECK_EQ(conc_sem_wait_end(s, big), 1);
  CHECK_RC(conc_sem_release(s, 2), CONC_OK);
  CHECK_EQ(conc_chan_closed(conc_sem_wait_chan(small)), 1);
  CHECK_EQ(conc_sem_wait_end(s, small), 1);
  CHECK_RC(conc_sem_release(s, 1), CONC_OK);
  CHECK_EQ(conc_sem_held(s), 0);
  rel(s);
}

/* A request at the head that gives up lets the ones behind it go. */
static void sem_canceled_head_lets_others_go(void) {
  conc_sem *s = conc_sem_new(4);
  CHECK_EQ(conc_sem_try_acquire(s, 2), 1);
  conc_sem_wait *big = NULL, *a = NULL, *b = NULL;
  CHECK_RC(conc_sem_acquire(s, 4, &big), CONC_EAGAIN);
  CHECK_RC(conc_sem_acquire(s, 1, &a), CONC_EAGAIN);
  CHECK_RC(conc_sem_acquire(s, 1, &b), CONC_EAGAIN);
  CHECK_EQ(acquire_until(s, 1, in_ms(5)), 0);  /* times out, queued last */
  CHECK_EQ(conc_sem_wait_end(s, big), 0);      /* gives up */
  CHECK_EQ(conc_chan_closed(conc_sem_wait_chan(a)), 1);
  CHECK_EQ(conc_chan_closed(conc_sem_wait_chan(b)), 1);
  CHECK_EQ(conc_sem_wait_end(s, a), 1);
  CHECK_EQ(conc_sem_wait_end(s, b), 1);
  CHECK_EQ(conc_sem_held(s), 4);
  rel(s);
}

/* Granted while it was giving up: the caller holds the weight. */
static void sem_granted_before_end(void) {
  conc_sem *s = conc_sem_new(1);
  CHECK_EQ(conc_sem_try_acquire(s, 1), 1);
  conc_sem_wait *w = NULL;
  CHECK_RC(conc_sem_acquire(s, 1, &w), CONC_EAGAIN);
  CHECK_RC(conc_sem_release(s, 1), CONC_OK);
  CHECK_EQ(conc_sem_wait_end(s, w), 1);
  CHECK_EQ(conc_sem_held(s), 1);
  CHECK_RC(conc_sem_release(s, 1), CONC_OK);
  rel(s);
}

/* More waiters than one grant batch are all woken by one release. */
static void sem_release_grants_many(void) {
  enum { N = 40 };
  conc_sem *s = conc_sem_new(N);
  CHECK_EQ(conc_sem_try_acquire(s, N), 1);
  conc_sem_wait *w[N];
  for (int i = 0; i < N; i++)
    CHECK_RC(conc_sem_acquire(s, 1, &w[i]), CONC_EAGAIN);
  CHECK_RC(conc_sem_release(s, N), CONC_OK);
  for (int i = 0; i < N; i++) CHECK_EQ(conc_sem_wait_end(s, w[i]), 1);
  CHECK_EQ(conc_sem_held(s), N);
  rel(s);
}

typedef struct sem_work {
  conc_sem *s;
  int64_t weight;
  long rounds;
  atomic_long total;
} sem_work;

/* Weight inside the critical section now, and at most, all threads. */
static atomic_long inside, max_inside;

static void *sem_worker(void *p) {
  sem_work *x = (sem_work *)p;
  for (long i = 0; i < x->rounds; i++) {
    CHECK_EQ(acquire_until(x->s, x->weight, CONC_NEVER), 1);
    long in = atomic_fetch_add(&inside, x->weight) + x->weight;
    long m = atomic_load(&max_inside);
    while (in > m && !atomic_compare_exchange_weak(&max_inside, &m, in)) {
    }
    atomic_fetch_add(&x->total, 1);
    atomic_fetch_sub(&inside, x->weight);
    CHECK_RC(conc_sem_release(x->s, x->weight), CONC_OK);
  }
  return NULL;
}

/* Eight threads, weights 1 and 2, never more than the size inside. */
static void sem_threads_bounded(void) {
  enum { T = 8 };
  sem_work light = {.weight = 1}, heavy = {.weight = 2};
  conc_sem *s = conc_sem_new(3);
  light.s = heavy.s = s;
  light.rounds = heavy.rounds = scaled(2000, 10);
  pthread_t th[T];
  for (int i = 0; i < T; i++)
    th[i] = spawn(sem_worker, i % 2 ? (void *)&light : (void *)&heavy);
  for (int i = 0; i < T; i++) join(th[i]);
  CHECK_EQ(atomic_load(&light.total) + atomic_load(&heavy.total),
           T * light.rounds);
  CHECK(atomic_load(&max_inside) <= 3);
  CHECK_EQ(conc_sem_held(s), 0);
  rel(s);
}

static const check_test tests[] = {
    {"sem_counts_and_misuse", sem_counts_and_misuse},
    {"sem_large_acquire_does_not_starve", sem_large_acquire_does_not_starve},
    {"sem_canceled_head_lets_others_go", sem_canceled_head_lets_others_go},
    {"sem_granted_before_end", sem_granted_before_end},
    {"sem_release_grants_many", sem_release_grants_many},
    {"sem_threads_bounded", sem_threads_bounded},
    {NULL, NULL}};

int main(int argc, char **argv) {
  return check_main("test_sem", tests, argc, argv);
}
