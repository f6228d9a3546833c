/*
 * repro_ring_inflight_waiters.c: a buffered channel's operation that
 * has claimed its position but not yet finished (a push preempted
 * between its claim of `tail` and its store of the slot's lap: "in
 * flight") used to strand a waiter (csrc/core/chan.c, buffered_op).
 *
 * The receive side, in two forms:
 * - "arrive": push P1 is in flight at position 0 and push P2 has
 *   completed position 1 when two receivers arrive. They parked, as the
 *   slot at `head` was not ready; P1's completion then woke one, and the
 *   other slept for ever beside a buffered value (found by review after
 *   a blocking operation's first try stopped reading `tail`). Now the
 *   look that decides to park is exact: they wait for P1 instead.
 * - "parked": two receivers park on an empty ring; then P1 claims
 *   position 0, and P2 completes position 1 having read no waiter (a
 *   legitimate order: its load of the wait count ran before they linked;
 *   here its wake-up is skipped by hand). P1's completion wakes one
 *   receiver, which takes value 1; the other must be woken for value 2:
 *   a woken waiter that succeeds passes the wake-up on.
 * The same with a select parked first (it is the one woken, and passes
 * the wake-up on for the case it did, as a plain receive does).
 * The send side, "parked" form: two senders park on a full ring; a pop
 * is in flight at `head`, a later pop completes without waking; the
 * in-flight pop's completion wakes one sender, which must pass it on.
 *
 * Run: csrc/test/repro/run.sh repro_ring_inflight_waiters
 * Exit 0: every waiter finished; exit 1: one was stranded.
 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include "../peek.h"

enum { CAP = 4, WAITERS = 2 };

static conc_chan *c;
static int64_t got[WAITERS];
static int rcs[WAITERS];

static void *receiver(void *arg) {
  int k = (int)(intptr_t)arg;
  conc_msg m;
  rcs[k] = conc_chan_recv(c, &m, CONC_NEVER);
  if (rcs[k] == CONC_OK) got[k] = msg_take_int(&m);
  return NULL;
}

/* Receives with a select: a case on c and one on a channel that never
 * gets a value. */
static void *select_receiver(void *arg) {
  int k = (int)(intptr_t)arg;
  conc_chan *never = conc_chan_new(1);
  conc_case cases[2] = {{c, CONC_RECV, {0}, 0}, {never, CONC_RECV, {0}, 0}};
  int closed_send;
  int r = conc_select(cases, 2, CONC_NEVER, &closed_send);
  rcs[k] = r == 0 ? CONC_OK : r;
  if (r == 0) got[k] = msg_take_int(&cases[0].msg);
  conc_release((conc_obj *)never);
  return NULL;
}

static void *sender(void *arg) {
  int k = (int)(intptr_t)arg;
  conc_msg m;
  msg_int(&m, 100 + k);
  rcs[k] = conc_chan_send(c, &m, CONC_NEVER);
  return NULL;
}

/* Claims the next push's position, as ring_push's compare-and-swap does,
 * and returns it; the push is then in flight. */
static size_t claim_push(void) { return atomic_fetch_add(&c->tail, 1); }
static size_t claim_pop(void) { return atomic_fetch_add(&c->head, 1); }

/* Wakes one waiter of q to retry, as claim_retry does after a push or
 * pop completes. */
static void wake_one(conc_waitq *q) {
  if (atomic_load(&q->n) == 0) return;
  conc__lock(&c->lock);
  conc_sudog *s = conc__waitq_claim(q);
  conc_waiter *w = NULL;
  if (s != NULL) {
    s->ok = CONC_SUDOG_RETRY;
    w = s->w;
  }
  conc__unlock(&c->lock);
  if (w != NULL) conc__waiter_wake(w);
}

/* Completes a push claimed at pos with value v; wakes a receiver if
 * `wake`. */
static void finish_push(size_t pos, int64_t v, int wake) {
  conc_slot *s = &c->slots[pos % CAP];
  conc_msg m;
  msg_int(&m, v);
  conc__msg_move(&s->msg, &m);
  atomic_store(&s->lap, 2 * (pos - pos % CAP) + 1);
  if (wake) wake_one(&c->recvq);
}

/* Completes a pop claimed at pos (drops its value); wakes a sender if
 * `wake`. */
static void finish_pop(size_t pos, int wake) {
  conc_slot *s = &c->slots[pos % CAP];
  conc_msg_free(&s->msg);
  atomic_store(&s->lap, 2 * (pos + CAP - pos % CAP));
  if (wake) wake_one(&c->sendq);
}

/* Waits up to 300 ms for n waiters parked on c. */
static int parked(int recv, int n) {
  int k = 0;
  for (int i = 0; i < 300 && (k = peek_parked(c, recv)) < n; i++) usleep(1000);
  return k;
}

/* Joins the waiters, giving them 2 s; returns how many are stuck. */
static int stuck(pthread_t *t) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += 2;
  int n = 0;
  for (int k = 0; k < WAITERS; k++)
    if (pthread_timedjoin_np(t[k], NULL, &ts) != 0) n++;
  return n;
}

static void start(pthread_t *t, void *(*fn)(void *)) {
  for (int k = 0; k < WAITERS; k++) {
    rcs[k] = -99;
    got[k] = -1;
    CHECK_PT(pthread_create(&t[k], NULL, fn, (void *)(intptr_t)k));
  }
}

static int recv_arrive(void) {
  c = conc_chan_new(CAP);
  size_t p1 = claim_push();
  conc_msg m;
  msg_int(&m, 2);
  CHECK_RC(conc_chan_send(c, &m, CONC_NOWAIT), CONC_OK);  /* P2 */
  pthread_t t[WAITERS];
  start(t, receiver);
  int np = parked(1, WAITERS);
  finish_push(p1, 1, 1);
  int n = stuck(t);
  printf("recv, arrive: %d parked behind the push in flight, %d stuck\n", np,
         n);
  return n;
}

/* Two receivers park on an empty ring, `first` (a plain receive or a
 * select) before the other, so that it is the one woken. */
static int recv_parked(void *(*first)(void *), const char *what) {
  c = conc_chan_new(CAP);
  pthread_t t[WAITERS];
  for (int k = 0; k < WAITERS; k++) {
    rcs[k] = -99;
    got[k] = -1;
  }
  CHECK_PT(pthread_create(&t[0], NULL, first, (void *)0));
  parked(1, 1);
  CHECK_PT(pthread_create(&t[1], NULL, receiver, (void *)1));
  int np = parked(1, WAITERS);
  size_t p1 = claim_push(), p2 = claim_push();
  finish_push(p2, 2, 0);  /* it read no waiter */
  finish_push(p1, 1, 1);
  int n = stuck(t);
  printf("%s, parked: %d parked, %d stuck (len %zu)\n", what, np, n,
         conc_chan_len(c));
  return n;
}

static int send_parked(void) {
  c = conc_chan_new(CAP);
  for (int i = 0; i < CAP; i++) {
    conc_msg m;
    msg_int(&m, i);
    CHECK_RC(conc_chan_send(c, &m, CONC_NOWAIT), CONC_OK);
  }
  pthread_t t[WAITERS];
  start(t, sender);
  int np = parked(0, WAITERS);
  size_t q1 = claim_pop(), q2 = claim_pop();
  finish_pop(q2, 0);  /* it read no waiter */
  finish_pop(q1, 1);
  int n = stuck(t);
  printf("send, parked: %d parked, %d stuck (len %zu)\n", np, n,
         conc_chan_len(c));
  return n;
}

int main(void) {
  int n = recv_arrive() + recv_parked(receiver, "recv") +
          recv_parked(select_receiver, "select") + send_parked();
  fflush(stdout);
  _exit(n ? 1 : 0);  /* stuck threads: do not wait for them */
}
