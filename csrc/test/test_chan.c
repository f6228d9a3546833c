/*
 * test_chan.c: channels (csrc/core/chan.c) without Lua.
 */
#include "peek.h"

/* ---- buffered FIFO ----------------------------------------------------- */

static void buffered_fifo(void) {
  conc_chan *c = conc_chan_new(8);
  CHECK(c != NULL);
  CHECK_EQ(conc_chan_cap(c), 8);
  for (int i = 0; i < 8; i++) {
    conc_msg m;
    msg_int(&m, i);
    CHECK_RC(conc_chan_send(c, &m, CONC_NOWAIT), CONC_OK);
    CHECK_EQ(conc_chan_len(c), i + 1);
  }
  conc_msg extra;
  msg_int(&extra, 99);
  CHECK_RC(conc_chan_send(c, &extra, CONC_NOWAIT), CONC_EAGAIN);
  CHECK_EQ(msg_take_int(&extra), 99);  /* still the caller's */
  for (int i = 0; i < 8; i++) {
    conc_msg m;
    CHECK_RC(conc_chan_recv(c, &m, CONC_NOWAIT), CONC_OK);
    CHECK_EQ(msg_take_int(&m), i);
  }
  conc_msg m;
  CHECK_RC(conc_chan_recv(c, &m, CONC_NOWAIT), CONC_EAGAIN);
  CHECK_EQ(conc_chan_len(c), 0);
  conc_release((conc_obj *)c);
}

/* The ring wraps around many times; big (heap) messages keep their bytes
 * and ownership moves with them (ASan sees any leak or double free). */
static void buffered_ring_wraps(void) {
  conc_chan *c = conc_chan_new(3);
  int64_t next_in = 0, next_out = 0;
  for (int round = 0; round < 100; round++) {
    int burst = 1 + round % 3;
    for (int k = 0; k < burst; k++) {
      conc_msg m;
      msg_int_big(&m, next_in++, 100);
      CHECK_RC(conc_chan_send(c, &m, CONC_NOWAIT), CONC_OK);
    }
    for (int k = 0; k < burst; k++) {
      conc_msg m;
      CHECK_RC(conc_chan_recv(c, &m, CONC_NOWAIT), CONC_OK);
      CHECK_EQ(msg_take_int(&m), next_out++);
    }
  }
  /* Destroying a channel frees the messages still buffered. */
  for (int k = 0; k < 3; k++) {
    conc_msg m;
    msg_int_big(&m, k, 200);
    CHECK_RC(conc_chan_send(c, &m, CONC_NOWAIT), CONC_OK);
  }
  conc_retain((conc_obj *)c);
  conc_release((conc_obj *)c);
  CHECK_EQ(conc_chan_len(c), 3);
  conc_release((conc_obj *)c);
}

/* ---- unbuffered rendezvous --------------------------------------------- */

static void unbuffered_nowait(void) {
  conc_chan *c = conc_chan_new(0);
  CHECK_EQ(conc_chan_cap(c), 0);
  conc_msg m;
  msg_int(&m, 1);
  CHECK_RC(conc_chan_send(c, &m, CONC_NOWAIT), CONC_EAGAIN);
  CHECK_RC(conc_chan_recv(c, &m, CONC_NOWAIT), CONC_EAGAIN);
  /* Nobody receives: a send with a deadline times out, it does not
   * complete into a buffer. */
  CHECK_RC(conc_chan_send(c, &m, in_ms(20)), CONC_ETIMEDOUT);
  CHECK_EQ(conc_chan_len(c), 0);
  CHECK_EQ(msg_take_int(&m), 1);
  conc_release((conc_obj *)c);
}

#define RDV_N 2000

typedef struct rdv {
  conc_chan *c;
  conc_msg slots[RDV_N];   /* the receiver's destinations */
  atomic_long received;    /* receives that have returned */
} rdv;

static void *rdv_receiver(void *p) {
  rdv *r = (rdv *)p;
  for (int i = 0; i < RDV_N; i++) {
    CHECK_RC(conc_chan_recv(r->c, &r->slots[i], CONC_NEVER), CONC_OK);
    atomic_store(&r->received, i + 1);
  }
  return NULL;
}

/*
 * A sender returns only after a receiver has taken the message. When
 * send i returns, receive i has begun, so receives 0..i-1 have returned
 * and been counted: received >= i. A sender that could return without a
 * receiver (as into a buffer) runs ahead of the count. Each value
 * arrives in order.
 */
static void rendezvous_run(int recv_first, int big) {
  rdv *r = calloc(1, sizeof *r);
  r->c = conc_chan_new(0);
  pthread_t t = spawn(rdv_receiver, r);
  for (int i = 0; i < RDV_N; i++) {
    if (recv_first) wait_parked(r->c, 1, 1);
    conc_msg m;
    if (big) msg_int_big(&m, i, i);
    else msg_int(&m, i);
    CHECK_RC(conc_chan_send(r->c, &m, CONC_NEVER), CONC_OK);
    CHECK(atomic_load(&r->received) >= i);
  }
  join(t);
  for (int i = 0; i < RDV_N; i++) CHECK_EQ(msg_take_int(&r->slots[i]), i);
  conc_release((conc_obj *)r->c);
  free(r);
}

static void unbuffered_rendezvous(void) {
  rendezvous_run(0, 0);
  rendezvous_run(0, 1);
}

static void unbuffered_receiver_parked_first(void) { rendezvous_run(1, 1); }

typedef struct one_send {
  conc_chan *c;
  int64_t v;
  int rc;
} one_send;

static void *send_one(void *p) {
  one_send *s = (one_send *)p;
  conc_msg m;
  msg_int_big(&m, s->v, 80);
  s->rc = conc_chan_send(s->c, &m, CONC_NEVER);
  if (s->rc != CONC_OK) conc_msg_free(&m);  /* still ours on error */
  return NULL;
}

/* The sender parks first; a receiver takes straight from it. */
static void unbuffered_sender_parked_first(void) {
  conc_chan *c = conc_chan_new(0);
  for (int i = 0; i < 200; i++) {
    one_send s = {c, i, 1};
    pthread_t t = spawn(send_one, &s);
    wait_parked(c, 0, 1);
    conc_msg m;
    CHECK_RC(conc_chan_recv(c, &m, CONC_NEVER), CONC_OK);
    CHECK_EQ(msg_take_int(&m), i);
    join(t);
    CHECK_RC(s.rc, CONC_OK);
  }
  conc_release((conc_obj *)c);
}

/* A full buffered channel: the parked sender's value joins the tail when
 * a receiver takes the head, so order is kept. */
static void buffered_full_sender_parked(void) {
  conc_chan *c = conc_chan_new(2);
  conc_msg m;
  msg_int(&m, 0);
  CHECK_RC(conc_chan_send(c, &m, CONC_NOWAIT), CONC_OK);
  msg_int(&m, 1);
  CHECK_RC(conc_chan_send(c, &m, CONC_NOWAIT), CONC_OK);
  one_send s = {c, 2, 1};
  pthread_t t = spawn(send_one, &s);
  wait_parked(c, 0, 1);
  for (int i = 0; i < 3; i++) {
    CHECK_RC(conc_chan_recv(c, &m, CONC_NEVER), CONC_OK);
    CHECK_EQ(msg_take_int(&m), i);
  }
  join(t);
  CHECK_RC(s.rc, CONC_OK);
  CHECK_EQ(conc_chan_len(c), 0);
  conc_release((conc_obj *)c);
}

/* ---- close ------------------------------------------------------------- */

static void close_drains_then_closed(void) {
  conc_chan *c = conc_chan_new(4);
  for (int i = 0; i < 3; i++) {
    conc_msg m;
    msg_int_big(&m, i, 60);
    CHECK_RC(conc_chan_send(c, &m, CONC_NOWAIT), CONC_OK);
  }
  CHECK_EQ(conc_chan_closed(c), 0);
  CHECK_RC(conc_chan_close(c), CONC_OK);
  CHECK_EQ(conc_chan_closed(c), 1);
  CHECK_RC(conc_chan_close(c), CONC_ECLOSED);  /* close twice */
  conc_msg m;
  msg_int_big(&m, 7, 60);
  CHECK_RC(conc_chan_send(c, &m, CONC_NEVER), CONC_ECLOSED);
  CHECK_RC(conc_chan_send(c, &m, CONC_NOWAIT), CONC_ECLOSED);
  CHECK_EQ(msg_take_int(&m), 7);  /* a failed send leaves it ours */
  for (int i = 0; i < 3; i++) {
    CHECK_RC(conc_chan_recv(c, &m, CONC_NEVER), CONC_OK);
    CHECK_EQ(msg_take_int(&m), i);
  }
  for (int k = 0; k < 3; k++) {
    CHECK_RC(conc_chan_recv(c, &m, CONC_NEVER), CONC_ECLOSED);
    CHECK_RC(conc_chan_recv(c, &m, CONC_NOWAIT), CONC_ECLOSED);
    CHECK_RC(conc_chan_recv(c, &m, in_ms(10)), CONC_ECLOSED);
  }
  conc_release((conc_obj *)c);

  c = conc_chan_new(0);  /* unbuffered: closed at once */
  CHECK_RC(conc_chan_close(c), CONC_OK);
  CHECK_RC(conc_chan_recv(c, &m, CONC_NEVER), CONC_ECLOSED);
  CHECK_RC(conc_chan_close(c), CONC_ECLOSED);
  conc_release((conc_obj *)c);
}

#define WAKE_K 6

typedef struct blocked {
  conc_chan *c;
  int rc[WAKE_K];
  atomic_int next;
} blocked;

static void *recv_blocked(void *p) {
  blocked *b = (blocked *)p;
  int i = atomic_fetch_add(&b->next, 1);
  conc_msg m;
  b->rc[i] = conc_chan_recv(b->c, &m, CONC_NEVER);
  if (b->rc[i] == CONC_OK) conc_msg_free(&m);
  return NULL;
}

static void *send_blocked(void *p) {
  blocked *b = (blocked *)p;
  int i = atomic_fetch_add(&b->next, 1);
  conc_msg m;
  msg_int_big(&m, i, 90);
  b->rc[i] = conc_chan_send(b->c, &m, CONC_NEVER);
  if (b->rc[i] != CONC_OK) CHECK_EQ(msg_take_int(&m), i);
  return NULL;
}

static void close_wakes(int recv, size_t cap) {
  blocked *b = calloc(1, sizeof *b);
  b->c = conc_chan_new(cap);
  for (size_t i = 0; i < cap; i++) {  /* fill it so senders block */
    conc_msg m;
    msg_int(&m, -1);
    CHECK_RC(conc_chan_send(b->c, &m, CONC_NOWAIT), CONC_OK);
  }
  pthread_t t[WAKE_K];
  for (int i = 0; i < WAKE_K; i++)
    t[i] = spawn(recv ? recv_blocked : send_blocked, b);
  wait_parked(b->c, recv, WAKE_K);
  CHECK_RC(conc_chan_close(b->c), CONC_OK);
  for (int i = 0; i < WAKE_K; i++) join(t[i]);
  for (int i = 0; i < WAKE_K; i++) CHECK_RC(b->rc[i], CONC_ECLOSED);
  CHECK_EQ(peek_parked(b->c, 0) + peek_parked(b->c, 1), 0);
  conc_release((conc_obj *)b->c);
  free(b);
}

static void close_wakes_receivers(void) { close_wakes(1, 0); }

static void close_wakes_senders(void) {
  close_wakes(0, 0);
  close_wakes(0, 2);
}

/* ---- many producers, many consumers ------------------------------------ */

#define MP_PRODUCERS 4
#define MP_CONSUMERS 4

typedef struct mpmc {
  conc_chan *c;
  long per_producer;
  atomic_int next_id;
  atomic_long received, sum;
  atomic_uchar *seen;      /* per message: times received */
  pthread_barrier_t start;
} mpmc;

static void *mp_producer(void *p) {
  mpmc *x = (mpmc *)p;
  int64_t id = atomic_fetch_add(&x->next_id, 1);
  pthread_barrier_wait(&x->start);
  for (long i = 0; i < x->per_producer; i++) {
    conc_msg m;
    int64_t v = id * x->per_producer + i;
    if (i % 4 == 0) msg_int_big(&m, v, 72);
    else msg_int(&m, v);
    CHECK_RC(conc_chan_send(x->c, &m, CONC_NEVER), CONC_OK);
  }
  return NULL;
}

static void *mp_consumer(void *p) {
  mpmc *x = (mpmc *)p;
  long n = 0, sum = 0;
  pthread_barrier_wait(&x->start);
  for (;;) {
    conc_msg m;
    int rc = conc_chan_recv(x->c, &m, CONC_NEVER);
    if (rc == CONC_ECLOSED) break;
    CHECK_RC(rc, CONC_OK);
    int64_t v = msg_take_int(&m);
    CHECK(v >= 0 && v < MP_PRODUCERS * x->per_producer);
    CHECK_EQ(atomic_fetch_add(&x->seen[v], 1), 0);  /* exactly once */
    n++;
    sum += v;
  }
  atomic_fetch_add(&x->received, n);
  atomic_fetch_add(&x->sum, sum);
  return NULL;
}

static void mpmc_run(size_t cap, long per_producer) {
  mpmc *x = calloc(1, sizeof *x);
  x->c = conc_chan_new(cap);
  x->per_producer = per_producer;
  long total = MP_PRODUCERS * per_producer;
  x->seen = calloc((size_t)total, sizeof *x->seen);
  CHECK_PT(pthread_barrier_init(&x->start, NULL, MP_PRODUCERS + MP_CONSUMERS));
  pthread_t prod[MP_PRODUCERS], cons[MP_CONSUMERS];
  for (int i = 0; i < MP_CONSUMERS; i++) cons[i] = spawn(mp_consumer, x);
  for (int i = 0; i < MP_PRODUCERS; i++) prod[i] = spawn(mp_producer, x);
  for (int i = 0; i < MP_PRODUCERS; i++) join(prod[i]);
  CHECK_RC(conc_chan_close(x->c), CONC_OK);
  for (int i = 0; i < MP_CONSUMERS; i++) join(cons[i]);
  CHECK_EQ(atomic_load(&x->received), total);
  CHECK_EQ(atomic_load(&x->sum), total * (total - 1) / 2);
  for (long v = 0; v < total; v++) CHECK_EQ(x->seen[v], 1);
  pthread_barrier_destroy(&x->start);
  conc_release((conc_obj *)x->c);
  free(x->seen);
  free(x);
}

static void mpmc_unbuffered(void) { mpmc_run(0, scaled(20000, 8)); }
static void mpmc_buffered_1(void) { mpmc_run(1, scaled(20000, 8)); }
static void mpmc_buffered_64(void) { mpmc_run(64, scaled(50000, 8)); }

/* ---- deadlines --------------------------------------------------------- */

static void deadline_timeouts(void) {
  conc_chan *c = conc_chan_new(0);
  conc_msg m;
  conc_time d = in_ms(30);
  CHECK_RC(conc_chan_recv(c, &m, d), CONC_ETIMEDOUT);
  CHECK(conc_now() >= d);  /* never earlier than the deadline */
  /* The timed-out receiver left no sudog behind: a poll finds nobody. */
  msg_int(&m, 5);
  CHECK_RC(conc_chan_send(c, &m, CONC_NOWAIT), CONC_EAGAIN);
  d = in_ms(15);
  CHECK_RC(conc_chan_send(c, &m, d), CONC_ETIMEDOUT);
  CHECK(conc_now() >= d);
  CHECK_RC(conc_chan_recv(c, &m, CONC_NOWAIT), CONC_EAGAIN);
  CHECK_EQ(msg_take_int(&m), 5);
  /* A deadline already past is a timeout, not a poll. */
  CHECK_RC(conc_chan_recv(c, &m, conc_now() - 1), CONC_ETIMEDOUT);
  conc_release((conc_obj *)c);

  c = conc_chan_new(1);  /* a full buffer times out senders */
  msg_int(&m, 1);
  CHECK_RC(conc_chan_send(c, &m, CONC_NEVER), CONC_OK);
  msg_int_big(&m, 2, 100);
  d = in_ms(20);
  CHECK_RC(conc_chan_send(c, &m, d), CONC_ETIMEDOUT);
  CHECK(conc_now() >= d);
  CHECK_EQ(msg_take_int(&m), 2);
  CHECK_RC(conc_chan_recv(c, &m, d), CONC_OK);
  CHECK_EQ(msg_take_int(&m), 1);
  d = in_ms(20);
  CHECK_RC(conc_chan_recv(c, &m, d), CONC_ETIMEDOUT);  /* empty buffer */
  CHECK(conc_now() >= d);
  conc_release((conc_obj *)c);
}

typedef struct race {
  conc_chan *c;
  long rounds;
  int waiter_recv;  /* the timed side receives (else it sends) */
  atomic_int stop;
  long sent, got;
  int64_t sent_sum, got_sum;
} race;

/* The polling side: sends (or receives) without waiting, until told. */
static void *race_poller(void *p) {
  race *r = (race *)p;
  for (int64_t v = 1; !atomic_load(&r->stop); v++) {
    conc_msg m;
    if (r->waiter_recv) {
      msg_int(&m, v);
      if (conc_chan_send(r->c, &m, CONC_NOWAIT) == CONC_OK) {
        r->sent++;
        r->sent_sum += v;
      }
    } else if (conc_chan_recv(r->c, &m, CONC_NOWAIT) == CONC_OK) {
      r->got++;
      r->got_sum += msg_take_int(&m);
    }
  }
  return NULL;
}

/*
 * Timeouts race hand-overs: one side waits with deadlines a few
 * microseconds away, the other polls. Every value a send delivered was
 * received exactly once: no timed-out receiver swallowed one, no
 * timed-out sender's value arrived. (Both sides' waits are plain: a
 * timeout and a hand-off race for the channel lock, not for a claim.)
 */
static void deadline_race(int waiter_recv) {
  race *r = calloc(1, sizeof *r);
  r->c = conc_chan_new(0);
  r->rounds = scaled(20000, 4);
  r->waiter_recv = waiter_recv;
  pthread_t t = spawn(race_poller, r);
  for (long i = 0; i < r->rounds; i++) {
    conc_time deadline = conc_now() + (i % 50) * 1000;
    conc_msg m;
    int rc;
    if (waiter_recv) {
      if ((rc = conc_chan_recv(r->c, &m, deadline)) == CONC_OK) {
        r->got++;
        r->got_sum += msg_take_int(&m);
      }
    } else {
      msg_int(&m, i + 1);
      if ((rc = conc_chan_send(r->c, &m, deadline)) == CONC_OK) {
        r->sent++;
        r->sent_sum += i + 1;
      } else {
        conc_msg_free(&m);
      }
    }
    if (rc != CONC_OK) CHECK_RC(rc, CONC_ETIMEDOUT);
  }
  atomic_store(&r->stop, 1);
  join(t);
  CHECK(r->got > 0);
  CHECK_EQ(r->sent, r->got);
  CHECK_EQ(r->sent_sum, r->got_sum);
  conc_release((conc_obj *)r->c);
  free(r);
}

static void deadline_races_handover(void) { deadline_race(1); }
static void deadline_races_handover_send(void) { deadline_race(0); }

/*
 * A receive that does not wait must succeed whenever a completed send's
 * value is still in the buffer, even while another sender's push is
 * unfinished (it claimed an earlier slot of the ring and has not written
 * it yet): the ring then waits for that push rather than say "empty".
 * The receiver counts completed sends before each try; a failed try
 * with more completed sends than received values is a false "empty".
 */
typedef struct nowait_run {
  conc_chan *c;
  atomic_long completed;
  int per_sender;
} nowait_run;

static void *nowait_sender(void *p) {
  nowait_run *r = (nowait_run *)p;
  for (int i = 0; i < r->per_sender; i++) {
    conc_msg m;
    msg_int(&m, i);
    CHECK_RC(conc_chan_send(r->c, &m, CONC_NEVER), CONC_OK);
    atomic_fetch_add(&r->completed, 1);
  }
  return NULL;
}

static void nowait_recv_sees_completed_sends(void) {
  enum { SENDERS = 8 };
  nowait_run r = {conc_chan_new(4096), 0, 40000};
  pthread_t t[SENDERS];
  for (int k = 0; k < SENDERS; k++) t[k] = spawn(nowait_sender, &r);
  long received = 0, false_empty = 0;
  while (received < (long)SENDERS * r.per_sender) {
    long done = atomic_load(&r.completed);
    conc_msg m;
    int rc = conc_chan_recv(r.c, &m, CONC_NOWAIT);
    if (rc == CONC_OK) {
      conc_msg_free(&m);
      received++;
    } else {
      CHECK_RC(rc, CONC_EAGAIN);
      if (done > received) false_empty++;
    }
  }
  for (int k = 0; k < SENDERS; k++) CHECK_EQ(pthread_join(t[k], NULL), 0);
  CHECK_EQ(false_empty, 0);
  conc_release((conc_obj *)r.c);
}

/* Writes a value into the slot of a push whose position was claimed
 * (a push "in flight"), 50 ms later, on a thread of its own. */
typedef struct late_push {
  conc_chan *c;
  size_t pos;
} late_push;

static void *finish_push(void *p) {
  late_push *lp = (late_push *)p;
  usleep(50000);
  peek_finish_push(lp->c, lp->pos, 100);
  return NULL;
}

/* A receive that does not wait, with a push in flight and a later one
 * done, waits for the first and takes its value, even when the queue of
 * receivers holds a stale waiter (one that timed out and has not yet
 * unlinked): a stale waiter is not one that goes first (after_waiters
 * said "empty" here). */
static void nowait_recv_past_stale_waiter(void) {
  conc_chan *c = conc_chan_new(4);
  conc_waiter *w = conc__waiter_new();
  conc_sudog sd;
  memset(&sd, 0, sizeof sd);
  sd.w = w;
  sd.handoff = true;
  conc__waiter_arm(w);
  CHECK(conc__waiter_claim(w, CONC_SEL_TIMEOUT)); /* it timed out */
  conc__lock(&c->lock);
  conc__waitq_push(&c->recvq, &sd);
  conc__unlock(&c->lock);
  late_push lp = {c, peek_claim_push(c)};
  conc_msg m;
  msg_int(&m, 7);
  CHECK_RC(conc_chan_send(c, &m, CONC_NOWAIT), CONC_OK);
  pthread_t t = spawn(finish_push, &lp);
  conc_msg out;
  CHECK_RC(conc_chan_recv(c, &out, CONC_NOWAIT), CONC_OK);
  CHECK_EQ(msg_take_int(&out), 100);
  CHECK_RC(conc_chan_recv(c, &out, CONC_NOWAIT), CONC_OK);
  CHECK_EQ(msg_take_int(&out), 7);
  CHECK_EQ(pthread_join(t, NULL), 0);
  conc__lock(&c->lock);
  conc__waitq_remove(&c->recvq, &sd); /* the owner's unlink: done already */
  conc__unlock(&c->lock);
  conc__waiter_release(w);
  conc_release((conc_obj *)c);
}

static const check_test tests[] = {
    {"buffered_fifo", buffered_fifo},
    {"buffered_ring_wraps", buffered_ring_wraps},
    {"unbuffered_nowait", unbuffered_nowait},
    {"unbuffered_rendezvous", unbuffered_rendezvous},
    {"unbuffered_receiver_parked_first", unbuffered_receiver_parked_first},
    {"unbuffered_sender_parked_first", unbuffered_sender_parked_first},
    {"buffered_full_sender_parked", buffered_full_sender_parked},
    {"close_drains_then_closed", close_drains_then_closed},
    {"close_wakes_receivers", close_wakes_receivers},
    {"close_wakes_senders", close_wakes_senders},
    {"mpmc_unbuffered", mpmc_unbuffered},
    {"mpmc_buffered_1", mpmc_buffered_1},
    {"mpmc_buffered_64", mpmc_buffered_64},
    {"deadline_timeouts", deadline_timeouts},
    {"deadline_races_handover_send", deadline_races_handover_send},
    {"deadline_races_handover", deadline_races_handover},
    {"nowait_recv_sees_completed_sends", nowait_recv_sees_completed_sends},
    {"nowait_recv_past_stale_waiter", nowait_recv_past_stale_waiter},
    {NULL, NULL}};

int main(int argc, char **argv) {
  return check_main("test_chan", tests, argc, argv);
}
