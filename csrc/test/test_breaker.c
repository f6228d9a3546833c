/*
 * test_breaker.c: the circuit breaker (csrc/core/breaker.c) without Lua.
 * Times are passed explicitly, so the state machine is checked exactly.
 */
#include "check.h"

#define S ((conc_time)1000000000)

static void rel(void *o) { conc_release((conc_obj *)o); }

static conc_breaker *new_breaker(int64_t failures, int64_t successes,
                                 int64_t probes, conc_time timeout) {
  conc_breaker_config cfg = {failures, successes, probes, timeout};
  conc_breaker *b = conc_breaker_new(&cfg, NULL);
  CHECK(b != NULL);
  return b;
}

/* One call at now with the given outcome; returns begin's code and
 * the last change seen (begin's or end's) in *ch. */
static int call(conc_breaker *b, conc_time now, int outcome,
                conc_breaker_change *ch) {
  uint64_t ticket;
  conc_breaker_change c1, c2;
  int rc = conc_breaker_begin(b, now, &ticket, &c1);
  *ch = c1;
  if (rc != CONC_OK) return rc;
  conc_breaker_end(b, now, ticket, outcome, &c2);
  if (c2.from >= 0) {
    CHECK(c1.from < 0);  /* one change per call at most */
    *ch = c2;
  }
  return rc;
}

static void trips_after_consecutive_failures(void) {
  conc_breaker *b = new_breaker(3, 1, 1, 30 * S);
  conc_breaker_change ch;
  conc_time t = 1000 * S;
  CHECK_RC(call(b, t, CONC_CALL_FAILURE, &ch), CONC_OK);
  CHECK_RC(call(b, t, CONC_CALL_FAILURE, &ch), CONC_OK);
  CHECK_RC(call(b, t, CONC_CALL_SUCCESS, &ch), CONC_OK);  /* resets the run */
  CHECK_RC(call(b, t, CONC_CALL_FAILURE, &ch), CONC_OK);
  CHECK_RC(call(b, t, CONC_CALL_FAILURE, &ch), CONC_OK);
  conc_breaker_counts c;
  conc_breaker_counts_get(b, &c);
  CHECK_EQ(c.requests, 5);
  CHECK_EQ(c.failures, 4);
  CHECK_EQ(c.successes, 1);
  CHECK_EQ(c.consecutive_failures, 2);
  CHECK(ch.from < 0);
  CHECK_RC(call(b, t, CONC_CALL_FAILURE, &ch), CONC_OK);
  CHECK(ch.from == CONC_BREAKER_CLOSED && ch.to == CONC_BREAKER_OPEN);
  conc_breaker_counts_get(b, &c);
  CHECK_EQ(c.requests, 0);  /* a new state, new counts */
  CHECK_RC(call(b, t + 30 * S - 1, CONC_CALL_SUCCESS, &ch), CONC_EBREAKEROPEN);
  CHECK_EQ(conc_breaker_state(b, t + 30 * S - 1, &ch), CONC_BREAKER_OPEN);
  rel(b);
}

static void half_open_closes_after_successes(void) {
  conc_breaker *b = new_breaker(1, 2, 1, 10 * S);
  conc_breaker_change ch;
  conc_time t = 1000 * S;
  CHECK_RC(call(b, t, CONC_CALL_FAILURE, &ch), CONC_OK);
  /* The timeout counts from the opening: at t + 10 s it is half-open. */
  CHECK_EQ(conc_breaker_state(b, t + 10 * S, &ch), CONC_BREAKER_HALF_OPEN);
  CHECK(ch.from == CONC_BREAKER_OPEN && ch.to == CONC_BREAKER_HALF_OPEN);
  CHECK_RC(call(b, t + 10 * S, CONC_CALL_SUCCESS, &ch), CONC_OK);
  CHECK(ch.from < 0);  /* one success of two */
  CHECK_RC(call(b, t + 10 * S, CONC_CALL_SUCCESS, &ch), CONC_OK);
  CHECK(ch.from == CONC_BREAKER_HALF_OPEN && ch.to == CONC_BREAKER_CLOSED);
  CHECK_EQ(conc_breaker_state(b, t + 10 * S, &ch), CONC_BREAKER_CLOSED);
  rel(b);
}

static void half_open_failure_reopens(void) {
  conc_breaker *b = new_breaker(1, 3, 1, 10 * S);
  conc_breaker_change ch;
  conc_time t = 1000 * S;
  CHECK_RC(call(b, t, CONC_CALL_FAILURE, &ch), CONC_OK);
  CHECK_RC(call(b, t + 10 * S, CONC_CALL_SUCCESS, &ch), CONC_OK);
  CHECK(ch.from == CONC_BREAKER_OPEN && ch.to == CONC_BREAKER_HALF_OPEN);
  CHECK_RC(call(b, t + 10 * S, CONC_CALL_FAILURE, &ch), CONC_OK);
  CHECK(ch.from == CONC_BREAKER_HALF_OPEN && ch.to == CONC_BREAKER_OPEN);
  /* Open again for a full timeout from this opening. */
  CHECK_RC(call(b, t + 19 * S, CONC_CALL_SUCCESS, &ch), CONC_EBREAKEROPEN);
  CHECK_RC(call(b, t + 20 * S, CONC_CALL_SUCCESS, &ch), CONC_OK);
  rel(b);
}

static void probes_bound_calls_at_once(void) {
  conc_breaker *b = new_breaker(1, 1, 2, 0);
  conc_breaker_change ch;
  conc_time t = 1000 * S;
  CHECK_RC(call(b, t, CONC_CALL_FAILURE, &ch), CONC_OK);
  uint64_t k1, k2, k3;
  CHECK_RC(conc_breaker_begin(b, t + 1, &k1, &ch), CONC_OK);
  CHECK(ch.to == CONC_BREAKER_HALF_OPEN);
  CHECK_RC(conc_breaker_begin(b, t + 1, &k2, &ch), CONC_OK);
  CHECK_RC(conc_breaker_begin(b, t + 1, &k3, &ch), CONC_ETOOMANYPROBES);
  /* An abandoned call gives its place back and counts nothing. */
  conc_breaker_end(b, t + 1, k2, CONC_CALL_ABANDON, &ch);
  CHECK(ch.from < 0);
  conc_breaker_counts c;
  conc_breaker_counts_get(b, &c);
  CHECK_EQ(c.requests, 1);
  CHECK_RC(conc_breaker_begin(b, t + 1, &k3, &ch), CONC_OK);
  conc_breaker_end(b, t + 1, k1, CONC_CALL_SUCCESS, &ch);
  CHECK(ch.to == CONC_BREAKER_CLOSED);
  /* k3 was admitted half-open: its failure, ended closed, is ignored. */
  conc_breaker_end(b, t + 1, k3, CONC_CALL_FAILURE, &ch);
  CHECK(ch.from < 0);
  conc_breaker_counts_get(b, &c);
  CHECK_EQ(c.failures, 0);
  CHECK_EQ(conc_breaker_state(b, t + 1, &ch), CONC_BREAKER_CLOSED);
  rel(b);
}

static void on_change_is_kept(void) {
  conc_breaker_config cfg = {5, 1, 1, S};
  conc_msg m;
  msg_int(&m, 42);
  conc_breaker *b = conc_breaker_new(&cfg, &m);
  conc_msg out;
  CHECK_EQ(conc_breaker_on_change(b, &out), 1);
  CHECK_EQ(msg_take_int(&out), 42);
  CHECK_EQ(conc_breaker_on_change(b, &out), 1);  /* a copy each time */
  CHECK_EQ(msg_take_int(&out), 42);
  rel(b);
  b = new_breaker(5, 1, 1, S);
  CHECK_EQ(conc_breaker_on_change(b, &out), 0);
  rel(b);
}

typedef struct race_work {
  conc_breaker *b;
  pthread_barrier_t go;
  atomic_long admitted, changes, refused;
} race_work;

/* Calls failing until refused, counting admissions and changes. */
static void *fail_until_refused(void *p) {
  race_work *x = (race_work *)p;
  pthread_barrier_wait(&x->go);
  for (;;) {
    conc_breaker_change ch;
    int rc = call(x->b, conc_now(), CONC_CALL_FAILURE, &ch);
    if (ch.from >= 0) atomic_fetch_add(&x->changes, 1);
    if (rc != CONC_OK) break;
    atomic_fetch_add(&x->admitted, 1);
  }
  return NULL;
}

/* Threads racing: it opens once, after at least `failures` calls, and
 * then refuses everyone (each admitted call has ended). */
static void threads_open_it_once(void) {
  enum { N = 8, FAILURES = 50 };
  race_work x;
  memset(&x, 0, sizeof x);
  x.b = new_breaker(FAILURES, 1, 1, 3600 * S);
  pthread_t t[N];
  CHECK_PT(pthread_barrier_init(&x.go, NULL, N));
  for (int i = 0; i < N; i++)
    CHECK_PT(pthread_create(&t[i], NULL, fail_until_refused, &x));
  for (int i = 0; i < N; i++) CHECK_PT(pthread_join(t[i], NULL));
  CHECK_EQ(atomic_load(&x.changes), 1);
  long admitted = atomic_load(&x.admitted);
  CHECK(admitted >= FAILURES && admitted < FAILURES + N);
  conc_breaker_change ch;
  CHECK_EQ(conc_breaker_state(x.b, conc_now(), &ch), CONC_BREAKER_OPEN);
  pthread_barrier_destroy(&x.go);
  rel(x.b);
}

static const check_test tests[] = {
    {"trips_after_consecutive_failures", trips_after_consecutive_failures},
    {"half_open_closes_after_successes", half_open_closes_after_successes},
    {"half_open_failure_reopens", half_open_failure_reopens},
    {"probes_bound_calls_at_once", probes_bound_calls_at_once},
    {"on_change_is_kept", on_change_is_kept},
    {"threads_open_it_once", threads_open_it_once},
    {NULL, NULL}};

int main(int argc, char **argv) {
  return check_main("test_breaker", tests, argc, argv);
}
