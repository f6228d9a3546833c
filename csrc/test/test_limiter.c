/*
 * test_limiter.c: the rate limiter (csrc/core/limiter.c) without Lua.
 * Most tests pass explicit times, as x/time/rate's own tests do, so the
 * arithmetic is checked exactly; the waits are checked with lower bounds.
 */
#include <math.h>
#include "check.h"

#define MS CHECK_MS

static void rel(void *o) { conc_release((conc_obj *)o); }

/* Tokens at t, to a thousandth. */
static long long milli_tokens(conc_limiter *l, conc_time t) {
  double m = conc_limiter_tokens(l, t) * 1000;  /* no libm here */
  return (long long)(m < 0 ? m - 0.5 : m + 0.5);
}

static void allow_burst_then_refill(void) {
  conc_limiter *l = conc_limiter_new(10, 5);
  conc_time t0 = conc_now();
  for (int i = 0; i < 5; i++) CHECK(conc_limiter_allow(l, t0, 1));
  CHECK(!conc_limiter_allow(l, t0, 1));
  CHECK(!conc_limiter_allow(l, t0 + 99 * MS, 1));  /* 0.99 of a token */
  CHECK(conc_limiter_allow(l, t0 + 100 * MS, 1));
  CHECK(!conc_limiter_allow(l, t0 + 100 * MS, 1));
  CHECK(conc_limiter_allow(l, t0 + 1000 * MS, 5));  /* full again */
  CHECK(!conc_limiter_allow(l, t0 + 1000 * MS, 1));
  /* Never more than the burst, however long it rests. */
  CHECK_EQ(milli_tokens(l, t0 + 1000000 * MS), 5000);
  CHECK(!conc_limiter_allow(l, t0 + 1000000 * MS, 6));
  CHECK(conc_limiter_allow(l, t0 + 1000000 * MS, 0));
  rel(l);
}

static void reserve_moves_time_forward(void) {
  conc_limiter *l = conc_limiter_new(10, 2);
  conc_time t0 = conc_now();
  conc_reservation *a = conc_limiter_reserve(l, t0, 2);
  conc_reservation *b = conc_limiter_reserve(l, t0, 1);
  conc_reservation *c = conc_limiter_reserve(l, t0, 1);
  conc_reservation *big = conc_limiter_reserve(l, t0, 3);
  CHECK(conc_reservation_ok(a) && conc_reservation_ok(b));
  CHECK_EQ(conc_reservation_delay(a, t0), 0);
  CHECK_EQ(conc_reservation_delay(b, t0), 100 * MS);
  CHECK_EQ(conc_reservation_delay(c, t0), 200 * MS);
  CHECK_EQ(conc_reservation_delay(c, t0 + 150 * MS), 50 * MS);
  CHECK_EQ(conc_reservation_delay(c, t0 + 300 * MS), 0);
  CHECK(!conc_reservation_ok(big));  /* more than the burst: never */
  CHECK_EQ(conc_reservation_delay(big, t0), CONC_NEVER);
  CHECK_EQ(milli_tokens(l, t0), -2000);
  CHECK_EQ(milli_tokens(l, t0 + 200 * MS), 0);
  /* allow does not queue behind reservations: nothing before 300 ms. */
  CHECK(!conc_limiter_allow(l, t0 + 250 * MS, 1));
  CHECK(conc_limiter_allow(l, t0 + 300 * MS, 1));
  rel(a);
  rel(b);
  rel(c);
  rel(big);
  rel(l);
}

static void cancel_gives_back_unclaimed_tokens(void) {
  conc_limiter *l = conc_limiter_new(10, 2);
  conc_time t0 = conc_now();
  CHECK(conc_limiter_allow(l, t0, 2));
  conc_reservation *b = conc_limiter_reserve(l, t0, 1);   /* at 100 ms */
  conc_reservation *c = conc_limiter_reserve(l, t0, 1);   /* at 200 ms */
  /* b's token is counted on by c: cancelling b gives nothing back. */
  conc_reservation_cancel(b, t0);
  CHECK_EQ(milli_tokens(l, t0), -2000);
  /* c is the latest: its token comes back, and the next waits 200 ms. */
  conc_reservation_cancel(c, t0);
  CHECK_EQ(milli_tokens(l, t0), -1000);
  conc_reservation_cancel(c, t0);  /* only once */
  CHECK_EQ(milli_tokens(l, t0), -1000);
  conc_reservation *d = conc_limiter_reserve(l, t0, 1);
  CHECK_EQ(conc_reservation_delay(d, t0), 200 * MS);
  /* Cancelling after the time to act gives nothing back. */
  conc_reservation_cancel(d, t0 + 250 * MS);
  CHECK_EQ(milli_tokens(l, t0 + 250 * MS), 500);
  rel(b);
  rel(c);
  rel(d);
  rel(l);
}

static void infinite_and_zero_limits(void) {
  conc_limiter *inf = conc_limiter_new(INFINITY, 0);
  conc_time t0 = conc_now();
  CHECK(conc_limiter_limit(inf) == CONC_RATE_INF);
  CHECK(conc_limiter_allow(inf, t0, 1000000));  /* the burst is ignored */
  CHECK_RC(conc_limiter_wait(inf, 1000000, CONC_NEVER, NULL), CONC_OK);
  rel(inf);
  /* Rate 0 (x/time/rate's special case): events spend the burst. */
  conc_limiter *zero = conc_limiter_new(0, 3);
  for (int i = 0; i < 3; i++) CHECK(conc_limiter_allow(zero, t0, 1));
  CHECK_EQ(conc_limiter_burst(zero), 0);
  CHECK(!conc_limiter_allow(zero, t0 + 1000000 * MS, 1));  /* never refills */
  /* At once, not a wait of 292 years: n exceeds the burst left. */
  CHECK_RC(conc_limiter_wait(zero, 1, in_ms(10), NULL), CONC_ERATEBURST);
  conc_reservation *r = conc_limiter_reserve(zero, t0, 1);
  CHECK(!conc_reservation_ok(r));
  conc_reservation_cancel(r, t0);  /* harmless: it reserved nothing */
  rel(r);
  rel(zero);
}

static void set_limit_and_burst(void) {
  conc_limiter *l = conc_limiter_new(10, 1);
  conc_time t0 = conc_now();
  CHECK(conc_limiter_allow(l, t0, 1));
  conc_limiter_set_limit(l, t0, 100);          /* refills 10x faster now */
  CHECK(!conc_limiter_allow(l, t0 + 9 * MS, 1));
  CHECK(conc_limiter_allow(l, t0 + 10 * MS, 1));
  conc_limiter_set_burst(l, t0 + 10 * MS, 4);  /* room for 4 */
  CHECK_EQ(conc_limiter_burst(l), 4);
  CHECK(conc_limiter_allow(l, t0 + 50 * MS, 4));
  CHECK(conc_limiter_limit(l) == 100);
  conc_limiter_set_limit(l, t0 + 50 * MS, INFINITY);
  CHECK(conc_limiter_allow(l, t0 + 50 * MS, 100));
  rel(l);
}

static void wait_paces_events(void) {
  conc_limiter *l = conc_limiter_new(100, 1);  /* one per 10 ms */
  conc_time t0 = conc_now();
  for (int i = 0; i < 6; i++)
    CHECK_RC(conc_limiter_wait(l, 1, CONC_NEVER, NULL), CONC_OK);
  conc_time took = conc_now() - t0;
  CHECK(took >= 49 * MS);  /* the first is free, then 5 x 10 ms */
  rel(l);
}

static void wait_fails_before_waiting(void) {
  conc_limiter *l = conc_limiter_new(1, 2);
  CHECK_RC(conc_limiter_wait(l, 3, CONC_NEVER, NULL), CONC_ERATEBURST);
  CHECK(conc_limiter_allow(l, conc_now(), 2));
  conc_time t0 = conc_now();
  /* The token comes in ~1 s: a 50 ms timeout fails at once. */
  CHECK_RC(conc_limiter_wait(l, 1, in_ms(50), NULL), CONC_ETIMEDOUT);
  conc_ctx *bg = conc_ctx_background();
  conc_ctx *dl = conc_ctx_new(bg, in_ms(50), NULL, NULL);
  CHECK_RC(conc_limiter_wait(l, 1, CONC_NEVER, dl), CONC_ERATEDEADLINE);
  CHECK(conc_now() - t0 < 40 * MS);
  conc_ctx *gone = conc_ctx_new(bg, CONC_NEVER, NULL, NULL);
  conc_ctx_cancel(gone, CONC_ECANCELED, NULL);
  CHECK_RC(conc_limiter_wait(l, 1, CONC_NEVER, gone), CONC_ECANCELED);
  /* Nothing was reserved by the failures. */
  CHECK(conc_limiter_tokens(l, conc_now()) > -0.5);
  rel(gone);
  rel(dl);
  rel(bg);
  rel(l);
}

typedef struct cancel_work {
  conc_limiter *l;
  conc_ctx *ctx;
  int rc;
} cancel_work;

static void *wait_with_ctx(void *p) {
  cancel_work *x = (cancel_work *)p;
  x->rc = conc_limiter_wait(x->l, 1, CONC_NEVER, x->ctx);
  return NULL;
}

static void canceled_wait_gives_tokens_back(void) {
  conc_limiter *l = conc_limiter_new(0.5, 1);  /* a token every 2 s */
  CHECK(conc_limiter_allow(l, conc_now(), 1));
  conc_ctx *bg = conc_ctx_background();
  cancel_work x = {l, conc_ctx_new(bg, CONC_NEVER, NULL, NULL), 1};
  pthread_t t;
  CHECK_PT(pthread_create(&t, NULL, wait_with_ctx, &x));
  while (conc_limiter_tokens(l, conc_now()) > -0.5)
    sched_yield();  /* reserved */
  conc_ctx_cancel(x.ctx, CONC_ECANCELED, NULL);
  CHECK_PT(pthread_join(t, NULL));
  CHECK_RC(x.rc, CONC_ECANCELED);
  CHECK(conc_limiter_tokens(l, conc_now()) > -0.5);  /* its token is back */
  rel(x.ctx);
  rel(bg);
  rel(l);
}

typedef struct race_work {
  conc_limiter *l;
  pthread_barrier_t go;
  atomic_long allowed;
} race_work;

static void *allow_until_refused(void *p) {
  race_work *x = (race_work *)p;
  pthread_barrier_wait(&x->go);
  while (conc_limiter_allow(x->l, conc_now(), 1))
    atomic_fetch_add(&x->allowed, 1);
  return NULL;
}

/* With no refill, N threads racing share exactly the burst. */
static void threads_share_exactly_the_burst(void) {
  enum { N = 8 };
  race_work x;
  memset(&x, 0, sizeof x);
  x.l = conc_limiter_new(0, 10000);
  pthread_t t[N];
  CHECK_PT(pthread_barrier_init(&x.go, NULL, N));
  for (int i = 0; i < N; i++)
    CHECK_PT(pthread_create(&t[i], NULL, allow_until_refused, &x));
  for (int i = 0; i < N; i++) CHECK_PT(pthread_join(t[i], NULL));
  CHECK_EQ(atomic_load(&x.allowed), 10000);
  pthread_barrier_destroy(&x.go);
  rel(x.l);
}

static const check_test tests[] = {
    {"allow_burst_then_refill", allow_burst_then_refill},
    {"reserve_moves_time_forward", reserve_moves_time_forward},
    {"cancel_gives_back_unclaimed_tokens", cancel_gives_back_unclaimed_tokens},
    {"infinite_and_zero_limits", infinite_and_zero_limits},
    {"set_limit_and_burst", set_limit_and_burst},
    {"wait_paces_events", wait_paces_events},
    {"wait_fails_before_waiting", wait_fails_before_waiting},
    {"canceled_wait_gives_tokens_back", canceled_wait_gives_tokens_back},
    {"threads_share_exactly_the_burst", threads_share_exactly_the_burst},
    {NULL, NULL}};

int main(int argc, char **argv) {
  return check_main("test_limiter", tests, argc, argv);
}
