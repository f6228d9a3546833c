/*
 * test_select.c: select (csrc/core/select.c) without Lua.
 */
#include "peek.h"

static conc_case recv_case(conc_chan *c) {
  conc_case cs;
  memset(&cs, 0, sizeof cs);
  cs.chan = c;
  cs.op = CONC_RECV;
  return cs;
}

static conc_case send_case(conc_chan *c, int64_t v) {
  conc_case cs;
  memset(&cs, 0, sizeof cs);
  cs.chan = c;
  cs.op = CONC_SEND;
  msg_int_big(&cs.msg, v, 64);
  return cs;
}

static void put(conc_chan *c, int64_t v) {
  conc_msg m;
  msg_int(&m, v);
  CHECK_RC(conc_chan_send(c, &m, CONC_NOWAIT), CONC_OK);
}

static void release_all(conc_chan **c, int n) {
  for (int i = 0; i < n; i++) conc_release((conc_obj *)c[i]);
}

/* ---- readiness --------------------------------------------------------- */

static void ready_recv_chosen(void) {
  conc_chan *c[3] = {conc_chan_new(1), conc_chan_new(1), conc_chan_new(0)};
  for (int which = 0; which < 2; which++) {
    put(c[which], 10 + which);
    conc_case cs[3] = {recv_case(c[0]), recv_case(c[1]), recv_case(c[2])};
    int closed_send = -1;
    CHECK_EQ(conc_select(cs, 3, CONC_NEVER, &closed_send), which);
    CHECK_EQ(closed_send, 0);
    CHECK_EQ(cs[which].ok, 1);
    CHECK_EQ(msg_take_int(&cs[which].msg), 10 + which);
    CHECK_EQ(conc_chan_len(c[which]), 0);
  }
  release_all(c, 3);
}

static void ready_send_chosen(void) {
  conc_chan *full = conc_chan_new(1), *room = conc_chan_new(1);
  put(full, 1);
  conc_case cs[2] = {send_case(full, 7), send_case(room, 8)};
  int closed_send = -1;
  CHECK_EQ(conc_select(cs, 2, CONC_NEVER, &closed_send), 1);
  CHECK_EQ(closed_send, 0);
  CHECK_EQ(msg_take_int(&cs[0].msg), 7);  /* the case that did not fire */
  conc_msg m;
  CHECK_RC(conc_chan_recv(room, &m, CONC_NOWAIT), CONC_OK);
  CHECK_EQ(msg_take_int(&m), 8);
  conc_release((conc_obj *)full);
  conc_release((conc_obj *)room);
}

static void default_when_nothing_ready(void) {
  conc_chan *a = conc_chan_new(0), *b = conc_chan_new(1);
  put(b, 1);  /* b is full: a send on it is not ready */
  conc_case cs[3] = {recv_case(a), send_case(a, 2), send_case(b, 3)};
  int closed_send = -1;
  CHECK_RC(conc_select(cs, 3, CONC_NOWAIT, &closed_send), CONC_EAGAIN);
  CHECK_EQ(closed_send, 0);
  CHECK_EQ(msg_take_int(&cs[1].msg), 2);  /* send cases keep theirs */
  CHECK_EQ(msg_take_int(&cs[2].msg), 3);
  CHECK_EQ(conc_chan_len(b), 1);
  CHECK_EQ(peek_parked(a, 1) + peek_parked(a, 0), 0);
  conc_release((conc_obj *)a);
  conc_release((conc_obj *)b);
}

static void timeout(void) {
  conc_chan *a = conc_chan_new(0), *b = conc_chan_new(0);
  conc_case cs[2] = {recv_case(a), send_case(b, 4)};
  int closed_send = -1;
  conc_time d = in_ms(30);
  CHECK_RC(conc_select(cs, 2, d, &closed_send), CONC_ETIMEDOUT);
  CHECK(conc_now() >= d);
  CHECK_EQ(closed_send, 0);
  CHECK_EQ(msg_take_int(&cs[1].msg), 4);
  /* Pass 3 unlinked every sudog: nobody is parked any more. */
  CHECK_EQ(peek_parked(a, 1) + peek_parked(b, 0), 0);
  conc_msg m;
  msg_int(&m, 1);
  CHECK_RC(conc_chan_send(a, &m, CONC_NOWAIT), CONC_EAGAIN);
  CHECK_RC(conc_chan_recv(b, &m, CONC_NOWAIT), CONC_EAGAIN);
  conc_release((conc_obj *)a);
  conc_release((conc_obj *)b);
}

static void null_channels_ignored(void) {
  conc_chan *c = conc_chan_new(4);
  int closed_send;
  for (int i = 0; i < 100; i++) {
    put(c, i);
    conc_case cs[3] = {recv_case(NULL), recv_case(c), recv_case(NULL)};
    CHECK_EQ(conc_select(cs, 3, CONC_NEVER, &closed_send), 1);
    CHECK_EQ(msg_take_int(&cs[1].msg), i);
  }
  conc_case none[2] = {recv_case(NULL), recv_case(NULL)};
  CHECK_RC(conc_select(none, 2, CONC_NOWAIT, &closed_send), CONC_EAGAIN);
  conc_time d = in_ms(20);
  CHECK_RC(conc_select(none, 2, d, &closed_send), CONC_ETIMEDOUT);
  CHECK(conc_now() >= d);
  CHECK_RC(conc_select(NULL, 0, CONC_NOWAIT, &closed_send), CONC_EAGAIN);
  d = in_ms(10);
  CHECK_RC(conc_select(NULL, 0, d, &closed_send), CONC_ETIMEDOUT);
  CHECK(conc_now() >= d);
  conc_release((conc_obj *)c);
}

/* ---- closed channels --------------------------------------------------- */

static void closed_recv_and_send(void) {
  conc_chan *c = conc_chan_new(0), *other = conc_chan_new(0);
  CHECK_RC(conc_chan_close(c), CONC_OK);
  conc_case r[2] = {recv_case(other), recv_case(c)};
  int closed_send = -1;
  CHECK_EQ(conc_select(r, 2, CONC_NEVER, &closed_send), 1);
  CHECK_EQ(r[1].ok, 0);
  CHECK_EQ(closed_send, 0);
  conc_case s[2] = {recv_case(other), send_case(c, 9)};
  CHECK_EQ(conc_select(s, 2, CONC_NEVER, &closed_send), 1);
  CHECK_EQ(closed_send, 1);
  CHECK_EQ(msg_take_int(&s[1].msg), 9);  /* not sent: still ours */
  conc_release((conc_obj *)c);
  conc_release((conc_obj *)other);
}

typedef struct parked_sel {
  conc_case cs[2];
  int rc, closed_send;
} parked_sel;

static void *select_thread(void *p) {
  parked_sel *ps = (parked_sel *)p;
  ps->rc = conc_select(ps->cs, 2, CONC_NEVER, &ps->closed_send);
  return NULL;
}

/* A close while the select is parked: a send case reports closed_send,
 * a receive case ok = 0. */
static void closed_while_parked(void) {
  for (int op = 0; op < 2; op++) {
    conc_chan *idle = conc_chan_new(0), *c = conc_chan_new(0);
    parked_sel ps;
    ps.cs[0] = recv_case(idle);
    ps.cs[1] = op ? send_case(c, 5) : recv_case(c);
    pthread_t t = spawn(select_thread, &ps);
    wait_parked(c, !op, 1);
    CHECK_RC(conc_chan_close(c), CONC_OK);
    join(t);
    CHECK_EQ(ps.rc, 1);
    CHECK_EQ(ps.cs[1].ok, 0);
    CHECK_EQ(ps.closed_send, op);
    if (op) CHECK_EQ(msg_take_int(&ps.cs[1].msg), 5);
    CHECK_EQ(peek_parked(idle, 1), 0);
    conc_release((conc_obj *)idle);
    conc_release((conc_obj *)c);
  }
}

/* A parked select is completed by a plain send or receive on one case. */
static void parked_select_completed(void) {
  for (int round = 0; round < 50; round++) {
    conc_chan *a = conc_chan_new(0), *b = conc_chan_new(0);
    parked_sel ps;
    int recv = round % 2;
    ps.cs[0] = recv_case(a);
    ps.cs[1] = recv ? recv_case(b) : send_case(b, round);
    pthread_t t = spawn(select_thread, &ps);
    wait_parked(b, recv, 1);
    conc_msg m;
    if (recv) {
      msg_int_big(&m, round, 99);
      CHECK_RC(conc_chan_send(b, &m, CONC_NEVER), CONC_OK);
    } else {
      CHECK_RC(conc_chan_recv(b, &m, CONC_NEVER), CONC_OK);
      CHECK_EQ(msg_take_int(&m), round);
    }
    join(t);
    CHECK_EQ(ps.rc, 1);
    CHECK_EQ(ps.closed_send, 0);
    if (recv) {
      CHECK_EQ(ps.cs[1].ok, 1);
      CHECK_EQ(msg_take_int(&ps.cs[1].msg), round);
    }
    CHECK_EQ(peek_parked(a, 1), 0);
    conc_release((conc_obj *)a);
    conc_release((conc_obj *)b);
  }
}

/* ---- fairness ---------------------------------------------------------- */

/*
 * Uniform choice among ready cases. Closed channels are always ready, so
 * each of `n` trials chooses among k cases. Each count is Binomial(n,
 * 1/k); the bound is 8 standard deviations, which a fair select exceeds
 * with probability below 1e-14 per count: it cannot flake, and a select
 * that prefers the first (or last) ready case fails it by far.
 */
static void check_uniform(const long *counts, int k, long n) {
  double p = 1.0 / k, mean = (double)n * p, var = mean * (1 - p);
  for (int i = 0; i < k; i++) {
    double dev = (double)counts[i] - mean;
    if (dev * dev > 64 * var) {  /* |dev| > 8 sd, without libm */
      fprintf(stderr,
              "case %d chosen %ld times of %ld (expected %.0f,"
              " variance %.0f)\n",
              i, counts[i], n, mean, var);
      CHECK(!"select is not uniform");
    }
  }
}

static void fairness_uniform(void) {
  enum { K = 5 };
  long n = scaled(100000, 5);
  conc_chan *c[K];
  conc_case cs[K];
  long counts[K] = {0};
  for (int i = 0; i < K; i++) {
    c[i] = conc_chan_new(i % 2);
    CHECK_RC(conc_chan_close(c[i]), CONC_OK);
  }
  for (long t = 0; t < n; t++) {
    for (int i = 0; i < K; i++) cs[i] = recv_case(c[i]);
    int closed_send;
    int rc = conc_select(cs, K, CONC_NOWAIT, &closed_send);
    CHECK(rc >= 0 && rc < K);
    counts[rc]++;
  }
  check_uniform(counts, K, n);
  release_all(c, K);
}

/* Only the ready cases share the choice, wherever they sit; one
 * channel named by several cases counts once per case. */
static void fairness_among_ready_only(void) {
  enum { K = 6 };
  long n = scaled(60000, 5);
  conc_chan *closed = conc_chan_new(0), *idle = conc_chan_new(0);
  CHECK_RC(conc_chan_close(closed), CONC_OK);
  long counts[K] = {0}, ready[3] = {0};
  for (long t = 0; t < n; t++) {
    conc_case cs[K] = {recv_case(idle),   recv_case(closed), recv_case(NULL),
                       recv_case(closed), recv_case(idle),   recv_case(closed)};
    int closed_send;
    int rc = conc_select(cs, K, CONC_NOWAIT, &closed_send);
    CHECK(rc == 1 || rc == 3 || rc == 5);
    counts[rc]++;
  }
  ready[0] = counts[1];
  ready[1] = counts[3];
  ready[2] = counts[5];
  check_uniform(ready, 3, n);
  conc_release((conc_obj *)closed);
  conc_release((conc_obj *)idle);
}

/* More cases than the on-stack scratch (16): the allocated path. */
static void many_cases(void) {
  enum { K = 40 };
  conc_chan *c[K];
  for (int i = 0; i < K; i++) c[i] = conc_chan_new(1);
  for (int round = 0; round < 200; round++) {
    int which = (round * 7) % K;
    put(c[which], round);
    conc_case cs[K];
    for (int i = 0; i < K; i++) cs[i] = recv_case(c[i]);
    int closed_send;
    CHECK_EQ(conc_select(cs, K, CONC_NEVER, &closed_send), which);
    CHECK_EQ(msg_take_int(&cs[which].msg), round);
  }
  conc_case cs[K];
  for (int i = 0; i < K; i++) cs[i] = recv_case(c[i]);
  int closed_send;
  conc_time d = in_ms(10);
  CHECK_RC(conc_select(cs, K, d, &closed_send), CONC_ETIMEDOUT);
  for (int i = 0; i < K; i++) CHECK_EQ(peek_parked(c[i], 1), 0);
  release_all(c, K);
}

/* ---- many threads selecting over shared channels ----------------------- */

#define ST_PRODUCERS 3
#define ST_CONSUMERS 3

typedef struct shared_sel {
  conc_chan *a, *b;        /* a unbuffered, b buffered */
  conc_chan *quit;         /* closed when the producers are done */
  long per_producer;
  atomic_int next_id;
  atomic_long via_a, via_b, received, sum;
  atomic_uchar *seen;
  pthread_barrier_t start;
} shared_sel;

/* Producers send each value through whichever of a and b is ready. */
static void *sel_producer(void *p) {
  shared_sel *x = (shared_sel *)p;
  int64_t id = atomic_fetch_add(&x->next_id, 1);
  pthread_barrier_wait(&x->start);
  for (long i = 0; i < x->per_producer; i++) {
    conc_case cs[2] = {send_case(x->a, id * x->per_producer + i),
                       send_case(x->b, id * x->per_producer + i)};
    int closed_send;
    int rc = conc_select(cs, 2, CONC_NEVER, &closed_send);
    CHECK(rc == 0 || rc == 1);
    CHECK_EQ(closed_send, 0);
    conc_msg_free(&cs[1 - rc].msg);  /* the copy that was not sent */
    atomic_fetch_add(rc == 0 ? &x->via_a : &x->via_b, 1);
  }
  return NULL;
}

/* Consumers select over a, b and quit; once quit is closed they drain b
 * (a has no buffer) without blocking and stop. */
static void *sel_consumer(void *p) {
  shared_sel *x = (shared_sel *)p;
  long n = 0, sum = 0;
  pthread_barrier_wait(&x->start);
  conc_chan *quit = x->quit;
  for (;;) {
    conc_case cs[3] = {recv_case(x->a), recv_case(x->b), recv_case(quit)};
    int closed_send;
    int rc = conc_select(cs, 3, quit ? CONC_NEVER : CONC_NOWAIT, &closed_send);
    if (rc == CONC_EAGAIN) break;  /* quit, and nothing left */
    CHECK(rc >= 0 && rc <= 2);
    if (rc == 2) {
      CHECK_EQ(cs[2].ok, 0);
      quit = NULL;  /* a NULL case: never ready again */
      continue;
    }
    CHECK_EQ(cs[rc].ok, 1);
    int64_t v = msg_take_int(&cs[rc].msg);
    CHECK(v >= 0 && v < ST_PRODUCERS * x->per_producer);
    CHECK_EQ(atomic_fetch_add(&x->seen[v], 1), 0);
    n++;
    sum += v;
  }
  atomic_fetch_add(&x->received, n);
  atomic_fetch_add(&x->sum, sum);
  return NULL;
}

static void many_threads_shared_channels(void) {
  shared_sel *x = calloc(1, sizeof *x);
  x->a = conc_chan_new(0);
  x->b = conc_chan_new(4);
  x->quit = conc_chan_new(0);
  x->per_producer = scaled(20000, 8);
  long total = ST_PRODUCERS * x->per_producer;
  x->seen = calloc((size_t)total, sizeof *x->seen);
  CHECK_PT(pthread_barrier_init(&x->start, NULL, ST_PRODUCERS + ST_CONSUMERS));
  pthread_t prod[ST_PRODUCERS], cons[ST_CONSUMERS];
  for (int i = 0; i < ST_CONSUMERS; i++) cons[i] = spawn(sel_consumer, x);
  for (int i = 0; i < ST_PRODUCERS; i++) prod[i] = spawn(sel_producer, x);
  for (int i = 0; i < ST_PRODUCERS; i++) join(prod[i]);
  CHECK_RC(conc_chan_close(x->quit), CONC_OK);
  for (int i = 0; i < ST_CONSUMERS; i++) join(cons[i]);
  CHECK_EQ(atomic_load(&x->via_a) + atomic_load(&x->via_b), total);
  CHECK_EQ(atomic_load(&x->received), total);
  CHECK_EQ(atomic_load(&x->sum), total * (total - 1) / 2);
  for (long v = 0; v < total; v++) CHECK_EQ(x->seen[v], 1);
  CHECK_EQ(conc_chan_len(x->b), 0);
  CHECK_EQ(peek_parked(x->a, 0) + peek_parked(x->a, 1), 0);
  CHECK_EQ(peek_parked(x->b, 0) + peek_parked(x->b, 1), 0);
  pthread_barrier_destroy(&x->start);
  conc_release((conc_obj *)x->a);
  conc_release((conc_obj *)x->b);
  conc_release((conc_obj *)x->quit);
  free(x->seen);
  free(x);
}

/* Selects with short deadlines race senders: each delivered value is
 * received exactly once, whether the select timed out or not. */
typedef struct sel_race {
  conc_chan *a, *b;
  atomic_int stop;
  long sent, sent_sum;
} sel_race;

static void *sel_race_sender(void *p) {
  sel_race *r = (sel_race *)p;
  for (int64_t v = 1; !atomic_load(&r->stop); v++) {
    conc_msg m;
    msg_int(&m, v);
    if (conc_chan_send(v % 2 ? r->a : r->b, &m, CONC_NOWAIT) == CONC_OK) {
      r->sent++;
      r->sent_sum += v;
    }
  }
  return NULL;
}

static void timeouts_race_senders(void) {
  sel_race *r = calloc(1, sizeof *r);
  r->a = conc_chan_new(0);
  r->b = conc_chan_new(0);
  pthread_t t = spawn(sel_race_sender, r);
  long got = 0, got_sum = 0, rounds = scaled(20000, 4);
  for (long i = 0; i < rounds; i++) {
    conc_case cs[2] = {recv_case(r->a), recv_case(r->b)};
    int closed_send;
    int rc = conc_select(cs, 2, conc_now() + (i % 40) * 1000, &closed_send);
    if (rc == CONC_ETIMEDOUT) continue;
    CHECK(rc == 0 || rc == 1);
    got++;
    got_sum += msg_take_int(&cs[rc].msg);
  }
  atomic_store(&r->stop, 1);
  join(t);
  CHECK_EQ(r->sent, got);
  CHECK_EQ(r->sent_sum, got_sum);
  conc_release((conc_obj *)r->a);
  conc_release((conc_obj *)r->b);
  free(r);
}

/*
 * Selects over buffered channels only, where wakers do not complete the
 * case but wake the select to retry (and a select that then takes
 * another case passes the wake-up on). Producers send (producer, seq)
 * through whichever of two buffered channels has room, with short
 * deadlines; consumers receive with short deadlines until both channels
 * are closed and drained. Every value arrives exactly once, and from a
 * given channel each consumer sees a producer's values in order.
 */
enum { BUF_PRODUCERS = 3, BUF_CONSUMERS = 3 };

typedef struct buf_sel {
  conc_chan *ch[2];
  long per_producer;
  atomic_int next_id, producers_left;
  atomic_long received, timeouts;
  atomic_uchar *seen;
} buf_sel;

static void *buf_producer(void *p) {
  buf_sel *x = (buf_sel *)p;
  int64_t id = atomic_fetch_add(&x->next_id, 1);
  for (long i = 0; i < x->per_producer;) {
    int64_t v = id * x->per_producer + i;
    conc_case cs[2] = {send_case(x->ch[0], v), send_case(x->ch[1], v)};
    int closed_send;
    int rc = conc_select(cs, 2, conc_now() + 200000, &closed_send);
    CHECK_EQ(closed_send, 0);
    if (rc == CONC_ETIMEDOUT) {
      conc_msg_free(&cs[0].msg);
      conc_msg_free(&cs[1].msg);
      atomic_fetch_add(&x->timeouts, 1);
      continue;  /* the same value again */
    }
    CHECK(rc == 0 || rc == 1);
    conc_msg_free(&cs[1 - rc].msg);
    i++;
  }
  if (atomic_fetch_sub(&x->producers_left, 1) == 1) {
    CHECK_RC(conc_chan_close(x->ch[0]), CONC_OK);
    CHECK_RC(conc_chan_close(x->ch[1]), CONC_OK);
  }
  return NULL;
}

static void *buf_consumer(void *p) {
  buf_sel *x = (buf_sel *)p;
  int64_t last[2][BUF_PRODUCERS];
  for (int c = 0; c < 2; c++)
    for (int k = 0; k < BUF_PRODUCERS; k++) last[c][k] = -1;
  conc_chan *live[2] = {x->ch[0], x->ch[1]};
  long n = 0;
  while (live[0] || live[1]) {
    conc_case cs[2] = {recv_case(live[0]), recv_case(live[1])};
    int closed_send;
    int rc = conc_select(cs, 2, conc_now() + 200000, &closed_send);
    if (rc == CONC_ETIMEDOUT) {
      atomic_fetch_add(&x->timeouts, 1);
      continue;
    }
    CHECK(rc == 0 || rc == 1);
    if (!cs[rc].ok) {  /* closed and drained: never ready again */
      live[rc] = NULL;
      continue;
    }
    int64_t v = msg_take_int(&cs[rc].msg);
    CHECK(v >= 0 && v < BUF_PRODUCERS * x->per_producer);
    CHECK_EQ(atomic_fetch_add(&x->seen[v], 1), 0);
    int64_t prod = v / x->per_producer, seq = v % x->per_producer;
    CHECK(seq > last[rc][prod]);
    last[rc][prod] = seq;
    n++;
  }
  atomic_fetch_add(&x->received, n);
  return NULL;
}

static void buffered_selects_exactly_once(void) {
  static const size_t caps[][2] = {{1, 1}, {1, 3}, {2, 64}};
  for (int round = 0; round < 3; round++) {
    buf_sel *x = calloc(1, sizeof *x);
    x->ch[0] = conc_chan_new(caps[round][0]);
    x->ch[1] = conc_chan_new(caps[round][1]);
    x->per_producer = scaled(20000, 8);
    atomic_init(&x->producers_left, BUF_PRODUCERS);
    x->seen = calloc((size_t)(BUF_PRODUCERS * x->per_producer), 1);
    pthread_t t[BUF_PRODUCERS + BUF_CONSUMERS];
    for (int i = 0; i < BUF_CONSUMERS; i++) t[i] = spawn(buf_consumer, x);
    for (int i = 0; i < BUF_PRODUCERS; i++)
      t[BUF_CONSUMERS + i] = spawn(buf_producer, x);
    for (int i = 0; i < BUF_PRODUCERS + BUF_CONSUMERS; i++)
      CHECK_EQ(pthread_join(t[i], NULL), 0);
    CHECK_EQ(atomic_load(&x->received), BUF_PRODUCERS * x->per_producer);
    for (long v = 0; v < BUF_PRODUCERS * x->per_producer; v++)
      CHECK_EQ(x->seen[v], 1);
    release_all(x->ch, 2);
    free(x->seen);
    free(x);
  }
}

/*
 * A select S waits on buffered a and b; a receiver R waits on a behind
 * it. (This test checked the pass-on of a wake-up when S, woken by a's
 * value to retry, took b's instead. A send now serves the waiters in
 * queue order, so S fires with a's value; the pass-on still guards the
 * rarer retries: repro_ring_inflight_waiters' select form.)
 */
typedef struct kick_run {
  conc_chan *a, *b;
  conc_waiter *_Atomic s_waiter, *_Atomic r_waiter;
  int s_rc, r_rc;
  int64_t s_value;
} kick_run;

/* Waits until the thread that publishes its waiter in *w sleeps (its
 * futex word says SLEEPING: past its spin, no longer polling). */
static void wait_asleep(conc_waiter *_Atomic *w) {
  while (atomic_load(w) == NULL) sched_yield();
  while (atomic_load(&atomic_load(w)->state) != 1) sched_yield();
}

static void *kick_select(void *p) {
  kick_run *k = (kick_run *)p;
  atomic_store(&k->s_waiter, conc__waiter_self());
  conc_case cs[2] = {recv_case(k->a), recv_case(k->b)};
  int closed_send;
  k->s_rc = conc_select(cs, 2, CONC_NEVER, &closed_send);
  if (k->s_rc >= 0) k->s_value = msg_take_int(&cs[k->s_rc].msg);
  return NULL;
}

static void *kick_receiver(void *p) {
  kick_run *k = (kick_run *)p;
  atomic_store(&k->r_waiter, conc__waiter_self());
  conc_msg m;
  k->r_rc = conc_chan_recv(k->a, &m, conc_now() + 5000000000LL);
  if (k->r_rc == CONC_OK) conc_msg_free(&m);
  return NULL;
}

/* A plain send serves the waiters of a buffered channel in queue order:
 * the select S, parked first, fires with a's value; R, behind it, gets
 * the next one. */
static void select_served_in_order(void) {
  for (int round = 0; round < 30; round++) {
    kick_run k = {
        conc_chan_new(1), conc_chan_new(1), NULL, NULL, -100, -100, 0};
    pthread_t s = spawn(kick_select, &k);
    wait_parked(k.a, 1, 1);
    wait_asleep(&k.s_waiter);
    pthread_t r = spawn(kick_receiver, &k);
    wait_parked(k.a, 1, 2);
    wait_asleep(&k.r_waiter);
    put(k.a, 1);
    CHECK_EQ(pthread_join(s, NULL), 0);
    CHECK_EQ(k.s_rc, 0);
    CHECK_EQ(k.s_value, 1);
    put(k.a, 2);
    CHECK_EQ(pthread_join(r, NULL), 0);
    CHECK_RC(k.r_rc, CONC_OK);
    conc_chan *c[2] = {k.a, k.b};
    release_all(c, 2);
  }
}

typedef struct after_run {
  conc_chan *c;
  int rc;
} after_run;

static void *after_sender(void *p) {
  after_run *a = (after_run *)p;
  conc_msg m;
  msg_int(&m, 1);
  a->rc = conc_chan_send(a->c, &m, CONC_NEVER);
  return NULL;
}

static void *after_select(void *p) {
  after_run *a = (after_run *)p;
  conc_case cs[1] = {send_case(a->c, 2)};
  int closed_send;
  a->rc = conc_select(cs, 1, CONC_NEVER, &closed_send);
  return NULL;
}

/* A select's send case on a buffered channel goes after the senders
 * parked there, as a plain send does: with room made by a pop whose
 * serve has not come yet, a select that does not wait serves the parked
 * sender W with it and finds no room left (its default); one that waits
 * serves W, parks behind it and is served by the next receive. (Pass 1
 * took the room for itself: W's value came after the select's.) */
static void select_goes_after_waiters(void) {
  for (int waits = 0; waits < 2; waits++) {
    for (int round = 0; round < 20; round++) {
      conc_chan *c = conc_chan_new(1);
      put(c, 0);
      after_run w = {c, -100}, s = {c, -100};
      pthread_t wt = spawn(after_sender, &w);
      wait_parked(c, 0, 1);
      CHECK_EQ(peek_pop_unserved(c), 0); /* its serve not come yet */
      pthread_t st;
      if (waits) {
        st = spawn(after_select, &s);
        CHECK_EQ(pthread_join(wt, NULL), 0); /* the select served W */
        wait_parked(c, 0, 1);                /* and parked behind it */
      } else {
        conc_case cs[1] = {send_case(c, 2)};
        int closed_send;
        CHECK_RC(conc_select(cs, 1, CONC_NOWAIT, &closed_send), CONC_EAGAIN);
        conc_msg_free(&cs[0].msg);
        CHECK_EQ(pthread_join(wt, NULL), 0);
      }
      CHECK_RC(w.rc, CONC_OK);
      conc_msg m;
      CHECK_RC(conc_chan_recv(c, &m, CONC_NEVER), CONC_OK);
      CHECK_EQ(msg_take_int(&m), 1);
      if (waits) {
        CHECK_EQ(pthread_join(st, NULL), 0);
        CHECK_EQ(s.rc, 0);
        CHECK_RC(conc_chan_recv(c, &m, CONC_NOWAIT), CONC_OK);
        CHECK_EQ(msg_take_int(&m), 2);
      }
      CHECK_RC(conc_chan_recv(c, &m, CONC_NOWAIT), CONC_EAGAIN);
      conc_release((conc_obj *)c);
    }
  }
}

/* A select woken to retry keeps its place: it was at the head of its
 * queue, so it does not go after the waiter W behind it (as a plain wait
 * woken so does not). S waits on buffered a (and b); W waits on a
 * behind it. A push P1 claims a's position 0 and has not written it; a
 * select's send under the lock pushes 2 at position 1 and wakes S, at the
 * head, to retry; S's restart waits on b's lock (held here) while P1
 * writes 1 without its serve (its thread between the slot and the look
 * at the receivers). S must get 1, W 2. (S's pass 1 served W first.) */
typedef struct retry_run {
  conc_chan *a, *b;
  int64_t s_got, w_got;
} retry_run;

static void *retry_select(void *p) {
  retry_run *r = (retry_run *)p;
  conc_case cs[2] = {recv_case(r->a), recv_case(r->b)};
  int closed_send;
  CHECK_EQ(conc_select(cs, 2, CONC_NEVER, &closed_send), 0);
  r->s_got = msg_take_int(&cs[0].msg);
  return NULL;
}

static void *retry_receiver(void *p) {
  retry_run *r = (retry_run *)p;
  conc_msg m;
  CHECK_RC(conc_chan_recv(r->a, &m, CONC_NEVER), CONC_OK);
  r->w_got = msg_take_int(&m);
  return NULL;
}

static void select_retry_keeps_its_place(void) {
  for (int round = 0; round < 10; round++) {
    retry_run r = {conc_chan_new(4), conc_chan_new(1), -1, -1};
    pthread_t s = spawn(retry_select, &r);
    wait_parked(r.a, 1, 1);
    pthread_t w = spawn(retry_receiver, &r);
    wait_parked(r.a, 1, 2);
    size_t p1 = peek_claim_push(r.a); /* P1, in flight */
    conc__lock(&r.b->lock);                      /* S's restart waits */
    conc_case cs[1] = {send_case(r.a, 2)};
    int closed_send;
    CHECK_EQ(conc_select(cs, 1, CONC_NOWAIT, &closed_send), 0);
    /* S asleep on b's lock (its futex word says a waiter sleeps) */
    while (atomic_load(&r.b->lock.v) != 2) sched_yield();
    peek_finish_push(r.a, p1, 1); /* without its serve */
    conc__unlock(&r.b->lock);
    CHECK_EQ(pthread_join(s, NULL), 0);
    CHECK_EQ(pthread_join(w, NULL), 0);
    CHECK_EQ(r.s_got, 1);
    CHECK_EQ(r.w_got, 2);
    conc_chan *c[2] = {r.a, r.b};
    release_all(c, 2);
  }
}

/* closed_send may be NULL; an op that is neither recv nor send is
 * EINVAL (it segfaulted, and was taken for a receive). */
static void null_closed_send_and_bad_op(void) {
  conc_chan *c[1] = {conc_chan_new(1)};
  put(c[0], 7);
  conc_case cs[1] = {recv_case(c[0])};
  CHECK_EQ(conc_select(cs, 1, CONC_NEVER, NULL), 0);
  CHECK_EQ(msg_take_int(&cs[0].msg), 7);
  cs[0] = recv_case(c[0]);
  cs[0].op = 7;
  int closed_send = -1;
  CHECK_RC(conc_select(cs, 1, CONC_NOWAIT, &closed_send), CONC_EINVAL);
  release_all(c, 1);
}

static const check_test tests[] = {
    {"null_closed_send_and_bad_op", null_closed_send_and_bad_op},
    {"ready_recv_chosen", ready_recv_chosen},
    {"ready_send_chosen", ready_send_chosen},
    {"default_when_nothing_ready", default_when_nothing_ready},
    {"timeout", timeout},
    {"null_channels_ignored", null_channels_ignored},
    {"closed_recv_and_send", closed_recv_and_send},
    {"closed_while_parked", closed_while_parked},
    {"parked_select_completed", parked_select_completed},
    {"fairness_uniform", fairness_uniform},
    {"fairness_among_ready_only", fairness_among_ready_only},
    {"many_cases", many_cases},
    {"many_threads_shared_channels", many_threads_shared_channels},
    {"timeouts_race_senders", timeouts_race_senders},
    {"buffered_selects_exactly_once", buffered_selects_exactly_once},
    {"select_served_in_order", select_served_in_order},
    {"select_goes_after_waiters", select_goes_after_waiters},
    {"select_retry_keeps_its_place", select_retry_keeps_its_place},
    {NULL, NULL}};

int main(int argc, char **argv) {
  return check_main("test_select", tests, argc, argv);
}
