/*
 * test_waiter.c: the waiter, wait queues, the internal lock and the
 * clock (csrc/core/waiter.c), through csrc/core/internal.h.
 */
#include "peek.h"

/* ---- deadlines --------------------------------------------------------- */

/* A park with a deadline and no waker times out, never before it. */
static void park_times_out_not_early(void) {
  static const int64_t us[] = {0, 1, 10, 100, 1000, 5000, 20000, 50000};
  conc_waiter *w = conc__waiter_self();
  for (size_t i = 0; i < sizeof us / sizeof us[0]; i++) {
    for (int rep = 0; rep < 3; rep++) {
      conc_time d = conc_now() + us[i] * 1000;
      conc__waiter_arm(w);
      CHECK_EQ(conc__waiter_park(w, d), CONC_SEL_TIMEOUT);
      CHECK(conc_now() >= d);
    }
  }
  conc__waiter_arm(w);  /* a deadline already past */
  CHECK_EQ(conc__waiter_park(w, conc_now() - 1000), CONC_SEL_TIMEOUT);
  /* Once timed out, the waiter claimed itself: nobody else can. */
  CHECK(!conc__waiter_claim(w, 3));
}

static void sleep_until_not_early(void) {
  for (int ms = 0; ms <= 20; ms += 5) {
    conc_time d = in_ms(ms);
    CHECK_RC(conc_sleep_until(d), CONC_OK);
    CHECK(conc_now() >= d);
  }
  CHECK_RC(conc_sleep_until(conc_now() - 1), CONC_OK);
}

static void clock_and_deadline_in(void) {
  conc_time a = conc_now(), b = conc_now();
  CHECK(a > 0 && b >= a);
  CHECK_EQ(conc_deadline_in(0), CONC_NOWAIT);
  CHECK_EQ(conc_deadline_in(-1), CONC_NOWAIT);
  CHECK_EQ(conc_deadline_in(__builtin_nan("")), CONC_NOWAIT);  /* NaN */
  /* Clamped, never "forever": a long timeout is still a deadline. */
  CHECK(conc_deadline_in(9e9) < CONC_LATEST);  /* fits: a plain one */
  CHECK(conc_deadline_in(9e9) > conc_now());
  CHECK_EQ(conc_deadline_in(1e10), CONC_LATEST);
  CHECK_EQ(conc_deadline_in(1e300), CONC_LATEST);
  CHECK_EQ(conc_deadline_in(__builtin_inf()), CONC_LATEST);
  CHECK_EQ(conc_deadline_in(-__builtin_inf()), CONC_NOWAIT);
  CHECK_EQ(conc_deadline_at(1e10), CONC_LATEST);
  CHECK_EQ(conc_deadline_at(__builtin_inf()), CONC_LATEST);
  CHECK_EQ(conc_deadline_at(__builtin_nan("")), CONC_NOWAIT);
  CHECK_EQ(conc_deadline_at(2.5), (conc_time)2500000000);
  CHECK_EQ(conc_duration(1e-12), 1);
  CHECK_EQ(conc_duration(-1), 0);
  CHECK_EQ(conc_duration(__builtin_inf()), CONC_LATEST);
  CHECK_EQ(conc__time_add(CONC_LATEST - 5, 10), CONC_LATEST);
  conc_time before = conc_now();
  conc_time d = conc_deadline_in(0.5);
  conc_time after = conc_now();
  CHECK(d >= before + 500 * CHECK_MS && d <= after + 500 * CHECK_MS);
}

static void strerror_names_every_code(void) {
  CHECK(strcmp(conc_strerror(CONC_OK), "ok") == 0);
  CHECK(strcmp(conc_strerror(CONC_ECLOSED), "channel closed") == 0);
  CHECK(strcmp(conc_strerror(CONC_ETIMEDOUT), "timeout") == 0);
  CHECK(strcmp(conc_strerror(CONC_ENOTLOCKED), "unlock of unlocked mutex") ==
        0);
  for (int code = -1; code >= CONC_ENOTLOCKED; code--)
    CHECK(strcmp(conc_strerror(code), "unknown error") != 0);
  CHECK(strcmp(conc_strerror(-1000), "unknown error") == 0);
  CHECK(strcmp(conc_strerror(5), "unknown error") == 0);
}

/* ---- claim and wake ---------------------------------------------------- */

#define CLAIMERS 4

typedef struct claim_race {
  pthread_barrier_t armed;     /* the owner armed its waiter */
  pthread_barrier_t done;      /* the round is over */
  conc_waiter *w;
  atomic_int winners;
  int winner;
  int parked_result;
  long rounds;
  int deadline_us;             /* 0: park forever; else race a timeout */
  atomic_long timeouts;
} claim_race;

/* The owner: arms, lets the claimers race, parks, reports. */
static void *claim_owner(void *p) {
  claim_race *r = (claim_race *)p;
  r->w = conc__waiter_self();
  for (long i = 0; i < r->rounds; i++) {
    conc__waiter_arm(r->w);
    pthread_barrier_wait(&r->armed);
    conc_time d = r->deadline_us ? conc_now() + (i % r->deadline_us) * 1000
                                 : CONC_NEVER;
    r->parked_result = conc__waiter_park(r->w, d);
    pthread_barrier_wait(&r->done);
    pthread_barrier_wait(&r->done);  /* the main thread checked */
  }
  return NULL;
}

typedef struct claimer_arg {
  claim_race *r;
  int index;
} claimer_arg;

static void *claimer(void *p) {
  claimer_arg *a = (claimer_arg *)p;
  claim_race *r = a->r;
  for (long i = 0; i < r->rounds; i++) {
    pthread_barrier_wait(&r->armed);
    if (conc__waiter_claim(r->w, a->index)) {
      atomic_fetch_add(&r->winners, 1);
      r->winner = a->index;  /* only the one winner writes */
      conc__waiter_wake(r->w);
    }
    pthread_barrier_wait(&r->done);
    pthread_barrier_wait(&r->done);
  }
  return NULL;
}

/*
 * Several threads race to claim one parked waiter: exactly one claim
 * wins, and the park returns the winner's index. With a deadline as well,
 * either one claim wins or the timeout does, never both.
 */
static void claim_race_run(int deadline_us, long rounds) {
  claim_race *r = calloc(1, sizeof *r);
  r->rounds = rounds;
  r->deadline_us = deadline_us;
  CHECK_PT(pthread_barrier_init(&r->armed, NULL, CLAIMERS + 2));
  CHECK_PT(pthread_barrier_init(&r->done, NULL, CLAIMERS + 2));
  claimer_arg args[CLAIMERS];
  pthread_t t[CLAIMERS];
  pthread_t owner = spawn(claim_owner, r);
  for (int i = 0; i < CLAIMERS; i++) {
    args[i] = (claimer_arg){r, i + 1};
    t[i] = spawn(claimer, &args[i]);
  }
  long timeouts = 0;
  for (long i = 0; i < rounds; i++) {
    pthread_barrier_wait(&r->armed);
    pthread_barrier_wait(&r->done);
    int winners = atomic_exchange(&r->winners, 0);
    if (r->parked_result == CONC_SEL_TIMEOUT) {
      CHECK(deadline_us != 0);
      CHECK_EQ(winners, 0);
      timeouts++;
    } else {
      CHECK_EQ(winners, 1);
      CHECK_EQ(r->parked_result, r->winner);
    }
    pthread_barrier_wait(&r->done);
  }
  join(owner);
  for (int i = 0; i < CLAIMERS; i++) join(t[i]);
  if (deadline_us == 0) CHECK_EQ(timeouts, 0);
  pthread_barrier_destroy(&r->armed);
  pthread_barrier_destroy(&r->done);
  free(r);
}

static void claim_exactly_one_wins(void) { claim_race_run(0, scaled(3000, 3)); }

static void claim_races_timeout(void) { claim_race_run(30, scaled(3000, 3)); }

/* Claimed and woken before it parks: the park returns at once. */
static void wake_before_park(void) {
  conc_waiter *w = conc__waiter_self();
  conc__waiter_arm(w);
  CHECK(conc__waiter_claim(w, 7));
  CHECK(!conc__waiter_claim(w, 8));
  conc__waiter_wake(w);
  CHECK_EQ(conc__waiter_park(w, CONC_NEVER), 7);
  conc__waiter_arm(w);  /* re-armed, it can be claimed again */
  CHECK(conc__waiter_claim(w, 0));
  conc__waiter_wake(w);
  CHECK_EQ(conc__waiter_park(w, in_ms(1000)), 0);
}

/* Claimed, but woken only well after the deadline: the park must wait
 * for the wake (the waker is completing an operation for it), not time
 * out. */
typedef struct late_wake {
  conc_waiter *w;
  pthread_barrier_t b;
  conc_time deadline;
} late_wake;

static void *late_waker(void *p) {
  late_wake *x = (late_wake *)p;
  CHECK(conc__waiter_claim(x->w, 2));
  pthread_barrier_wait(&x->b);     /* claimed before the park begins */
  pthread_barrier_wait(&x->b);     /* the deadline is set */
  conc_sleep_until(x->deadline + 10 * CHECK_MS);  /* measured delay */
  conc__waiter_wake(x->w);
  return NULL;
}

static void claimed_park_ignores_deadline(void) {
  late_wake x;
  x.w = conc__waiter_self();
  CHECK_PT(pthread_barrier_init(&x.b, NULL, 2));
  conc__waiter_arm(x.w);
  pthread_t t = spawn(late_waker, &x);
  pthread_barrier_wait(&x.b);
  x.deadline = in_ms(10);
  pthread_barrier_wait(&x.b);
  CHECK_EQ(conc__waiter_park(x.w, x.deadline), 2);
  CHECK(conc_now() >= x.deadline + 10 * CHECK_MS);
  join(t);
  pthread_barrier_destroy(&x.b);
}

/* Each thread has its own waiter, stable for the thread's life. */
static void *own_waiter(void *p) {
  conc_waiter **out = (conc_waiter **)p;
  *out = conc__waiter_self();
  CHECK(conc__waiter_self() == *out);
  return NULL;
}

typedef struct two_waiters {
  pthread_barrier_t b;
  conc_waiter *w[2];
} two_waiters;

static void *hold_waiter(void *p) {
  two_waiters *x = (two_waiters *)p;
  /* PTHREAD_BARRIER_SERIAL_THREAD is -1 in glibc: the check is wrong. */
  /* NOLINTNEXTLINE(bugprone-posix-return) */
  int i = pthread_barrier_wait(&x->b) == PTHREAD_BARRIER_SERIAL_THREAD;
  x->w[i] = conc__waiter_self();
  pthread_barrier_wait(&x->b);  /* both alive at once */
  return NULL;
}

static void waiter_per_thread(void) {
  conc_waiter *mine = conc__waiter_self();
  CHECK(mine != NULL && conc__waiter_self() == mine);
  conc_waiter *other = NULL;
  join(spawn(own_waiter, &other));
  CHECK(other != NULL && other != mine);
  two_waiters x;
  memset(&x, 0, sizeof x);
  CHECK_PT(pthread_barrier_init(&x.b, NULL, 2));
  pthread_t a = spawn(hold_waiter, &x), b = spawn(hold_waiter, &x);
  join(a);
  join(b);
  CHECK(x.w[0] && x.w[1] && x.w[0] != x.w[1]);
  CHECK(x.w[0] != mine && x.w[1] != mine);
  pthread_barrier_destroy(&x.b);
}

/* ---- wait queues ------------------------------------------------------- */

static void waitq_fifo_and_stale(void) {
  conc_waiter w[4];
  conc_sudog s[4];
  conc_waitq q = {NULL, NULL, 0};
  memset(s, 0, sizeof s);
  for (int i = 0; i < 4; i++) {
    conc__waiter_arm(&w[i]);
    s[i].w = &w[i];
    s[i].index = 10 + i;
    conc__waitq_push(&q, &s[i]);
    CHECK(s[i].linked);
  }
  CHECK_EQ(peek_qlen(&q), 4);
  conc__waitq_remove(&q, &s[2]);  /* from the middle */
  CHECK(!s[2].linked);
  conc__waitq_remove(&q, &s[2]);  /* twice: harmless */
  CHECK_EQ(peek_qlen(&q), 3);
  CHECK(conc__waiter_claim(&w[0], 99));  /* s[0] is stale now */
  conc_sudog *got = conc__waitq_claim(&q);
  CHECK(got == &s[1]);
  CHECK_EQ(atomic_load(&w[1].selected), 11);
  CHECK(!s[0].linked && !s[1].linked);
  got = conc__waitq_claim(&q);
  CHECK(got == &s[3]);
  CHECK(conc__waitq_claim(&q) == NULL);
  CHECK(q.head == NULL && q.tail == NULL);
}

/* ---- the internal lock ------------------------------------------------- */

typedef struct locked {
  conc__lock_t lock;
  long counter;   /* lock */
  long per_thread;
} locked;

static void *lock_incr(void *p) {
  locked *x = (locked *)p;
  for (long i = 0; i < x->per_thread; i++) {
    conc__lock(&x->lock);
    x->counter++;
    conc__unlock(&x->lock);
  }
  return NULL;
}

static void internal_lock_excludes(void) {
  locked x = {CONC_LOCK_INIT, 0, scaled(200000, 10)};
  pthread_t t[4];
  for (int i = 0; i < 4; i++) t[i] = spawn(lock_incr, &x);
  for (int i = 0; i < 4; i++) join(t[i]);
  CHECK_EQ(x.counter, 4 * x.per_thread);
  CHECK_EQ(atomic_load(&x.lock.v), 0);
}

static void rand_varies(void) {
  uint32_t first = conc__rand(), or_bits = 0, and_bits = ~0u;
  int same = 0;
  for (int i = 0; i < 1000; i++) {
    uint32_t r = conc__rand();
    same += r == first;
    or_bits |= r;
    and_bits &= r;
  }
  CHECK(same < 3);
  CHECK_EQ(or_bits, 0xffffffffu);
  CHECK_EQ(and_bits, 0);
}

static const check_test tests[] = {
    {"park_times_out_not_early", park_times_out_not_early},
    {"sleep_until_not_early", sleep_until_not_early},
    {"clock_and_deadline_in", clock_and_deadline_in},
    {"strerror_names_every_code", strerror_names_every_code},
    {"claim_exactly_one_wins", claim_exactly_one_wins},
    {"claim_races_timeout", claim_races_timeout},
    {"wake_before_park", wake_before_park},
    {"claimed_park_ignores_deadline", claimed_park_ignores_deadline},
    {"waiter_per_thread", waiter_per_thread},
    {"waitq_fifo_and_stale", waitq_fifo_and_stale},
    {"internal_lock_excludes", internal_lock_excludes},
    {"rand_varies", rand_varies},
    {NULL, NULL}};

int main(int argc, char **argv) {
  return check_main("test_waiter", tests, argc, argv);
}
