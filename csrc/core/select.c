/*
 * select.c: Go's select over any number of send and receive cases.
 *
 * Three passes, as in Go's runtime: (1) with every channel locked, poll
 * the cases in a random order and perform the first that is ready; (2)
 * if none is, link one sudog per case on its channel's queue and park;
 * (3) once woken (or timed out), unlink the sudogs that did not fire.
 * The waiter's claim (a compare-and-swap) makes exactly one case win.
 * On a buffered channel a select takes its turn among the channel's
 * waiters, as a plain send or receive does: pass 1 serves the waiters
 * of a case's own side before the case may go, and a waker does a
 * parked case for the select in its turn (CONC_SUDOG_DONE, see chan.c's
 * serve_locked), or wakes it to poll again (CONC_SUDOG_RETRY).
 *
 * Lock order: channel locks are taken in increasing address order,
 * each channel once however many cases name it. No other lock is held
 * while they are.
 */
#include <string.h>
#include "internal.h"

#define SMALL 16

typedef struct sel_scratch {
  int order[SMALL];        /* poll order (a random permutation) */
  conc_chan *locks[SMALL]; /* distinct channels, sorted by address */
  conc_sudog sudogs[SMALL];
} sel_scratch;

static int by_address(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)*(conc_chan *const *)a;
  uintptr_t y = (uintptr_t)*(conc_chan *const *)b;
  return (x > y) - (x < y);
}

/* Sorts chans by address and drops duplicates; returns the new count.
 * A select has a few cases, as a rule: an insertion sort then (qsort's
 * call per comparison cost B8 ~5% of a select). */
static int sort_unique(conc_chan **chans, int n) {
  if (n <= SMALL) {
    for (int i = 1; i < n; i++) {
      conc_chan *c = chans[i];
      int j = i;
      for (; j > 0 && (uintptr_t)chans[j - 1] > (uintptr_t)c; j--)
        chans[j] = chans[j - 1];
      chans[j] = c;
    }
  } else {
    qsort(chans, (size_t)n, sizeof *chans, by_address);
  }
  int k = 0;
  for (int i = 0; i < n; i++)
    if (k == 0 || chans[k - 1] != chans[i]) chans[k++] = chans[i];
  return k;
}

static void lock_all(conc_chan **locks, int n) {
  for (int i = 0; i < n; i++) conc__lock(&locks[i]->lock);
}

static void unlock_all(conc_chan **locks, int n) {
  for (int i = n - 1; i >= 0; i--) conc__unlock(&locks[i]->lock);
}

/* Pass 1, every lock held: performs the first ready case in `order`.
 * Returns its index or CONC_EAGAIN; *wake is set as by the try_ calls,
 * and the waiters served on the way are chained on *served. `head`: the
 * case whose sudog was woken to retry (-1: none), which was at the head
 * of its queue and does not go after the waiters behind it (a plain
 * wait woken so does not either: chan.c's buffered_op). */
static int poll_cases(conc_case *cases, const int *order, int n,
                      conc_waiter **wake, conc_sudog **served, int head,
                      int *closed_send) {
  for (int k = 0; k < n; k++) {
    int i = order[k];
    conc_case *cs = &cases[i];
    conc_chan *c = cs->chan;
    /* On a buffered channel, the waiters of the case's own side go
     * first (in Go's runtime, room in a buffer means no sender waits):
     * served with the room (values) there is, the case is not ready
     * while some are left. */
    const conc_waitq *own = cs->op == CONC_SEND ? &c->sendq : &c->recvq;
    if (c->cap > 0 && i != head &&
        atomic_load_explicit(&own->n, memory_order_relaxed) &&
        !atomic_load_explicit(&c->closed, memory_order_relaxed) &&
        !conc__chan_serve_own(c, cs->op, served))
      continue;
    int rc;
    if (cs->op == CONC_SEND) {
      rc = conc__chan_try_send(c, &cs->msg, wake);
      if (rc == CONC_ECLOSED) *closed_send = 1;
    } else {
      rc = conc__chan_try_recv(c, &cs->msg, wake);
      cs->ok = rc == CONC_OK;
    }
    if (rc != CONC_EAGAIN) return i;
  }
  return CONC_EAGAIN;
}

/* park_on_all's "poll again": a waker said retry (CONC_SUDOG_RETRY). */
#define RESTART (-1000)

/* Passes 2 and 3: park on every case, then unlink what did not fire.
 * Returns the case that fired, a failure, or RESTART (*head: the case
 * woken to retry). `served`: the waiters pass 1 served, to wake once the
 * locks are released. */
static int park_on_all(conc_case *cases, const int *order, int n,
                       conc_chan **locks, int nlocks, conc_sudog *sudogs,
                       conc_sudog *served, conc_time deadline, int *closed_send,
                       int *head) {
  conc_waiter *w = conc__waiter_self();
  conc__waiter_arm(w);
  conc__waiting_on(w, "select",
                   n == 1 ? (const void *)cases[order[0]].chan : NULL, true);
  for (int k = 0; k < n; k++) {
    int i = order[k];
    conc_sudog *sd = &sudogs[k];
    memset(sd, 0, sizeof *sd);
    sd->w = w;
    sd->index = i;
    sd->elem = &cases[i].msg;
    conc_chan *c = cases[i].chan;
    /* A buffered channel's waker may do this case for it, in the order
     * of its queue (chan.c's serve_locked): the select then fires with
     * it, as when an unbuffered channel's partner takes the message. */
    sd->handoff = c->cap > 0;
    conc__waitq_push(cases[i].op == CONC_SEND ? &c->sendq : &c->recvq, sd);
  }
  /* The waiter's half of the Dekker pairing (see conc__waitq_push), as
   * a plain wait's (chan.c's park_buffered): room (a value) that a
   * lock-free operation made without seeing our sudogs is served now,
   * from the head of its queue, in order; this select may be the one
   * served (it then wakes itself, and its other sudogs are stale). */
  for (int k = 0; k < n; k++) {
    conc_case *cs = &cases[order[k]];
    if (cs->chan->cap > 0) conc__chan_serve_ready(cs->chan, cs->op, &served);
  }
  unlock_all(locks, nlocks);
  conc__wake_list(served);
  int fired = conc__waiter_park(w, deadline);
  int result = fired == CONC_SEL_TIMEOUT ? CONC_ETIMEDOUT
                                         : conc__abort_code(fired);
  for (int k = 0; k < n; k++) {
    int i = order[k];
    conc_chan *c = cases[i].chan;
    if (i == fired) {  /* the waker unlinked it and filled it in */
      int ok = sudogs[k].ok;
      if (ok == CONC_SUDOG_RETRY) {
        result = RESTART;
        *head = i;
      } else {
        result = i;
        if (cases[i].op == CONC_SEND) *closed_send = ok == CONC_SUDOG_CLOSED;
        else cases[i].ok = ok == CONC_SUDOG_DONE;
      }
      continue;
    }
    conc__lock(&c->lock);
    conc__waitq_remove(cases[i].op == CONC_SEND ? &c->sendq : &c->recvq,
                       &sudogs[k]);
    conc__unlock(&c->lock);
  }
  return result;
}

/* A select that was woken to retry passes the wake-up on, for each of
 * its buffered cases that is ready for someone else: the ones it did
 * not do, which its wake-up may have been meant for, and the one it did
 * (as a plain operation does, see chan.c buffered_op). */
static void pass_on(const conc_case *cases, const int *order, int n) {
  for (int k = 0; k < n; k++) {
    int i = order[k];
    if (cases[i].chan->cap > 0) conc__chan_kick(cases[i].chan, cases[i].op);
  }
}

int conc__shuffle_cases(const conc_case *cases, int n, int *order) {
  int live = 0;
  for (int i = 0; i < n; i++) {  /* inside-out Fisher-Yates shuffle */
    if (cases[i].chan == NULL) continue;
    int j = (int)(conc__rand() % (uint32_t)(live + 1));
    if (j != live) order[live] = order[j];
    order[j] = i;
    live++;
  }
  return live;
}

static int select_with(conc_case *cases, int n, conc_time deadline,
                       int *closed_send, int *order, conc_chan **locks,
                       conc_sudog *sudogs) {
  int live = conc__shuffle_cases(cases, n, order);
  for (int k = 0; k < live; k++) {
    const conc_case *cs = &cases[order[k]];
    locks[k] = cs->chan;
    /* A due timer's value is there for a select (Go 1.23's timers). */
    if (cs->op == CONC_RECV && cs->chan->timer)
      conc__timer_run_due(cs->chan->timer);
  }
  if (live == 0) {  /* only nil channels: never ready (Go blocks) */
    if (deadline == CONC_NOWAIT) return CONC_EAGAIN;
    conc_waiter *w = conc__waiter_self();
    conc__waiter_arm(w);
    conc__waiting_on(w, "select with no channel", NULL, true);
    int r = conc__waiter_park(w, deadline);
    return r == CONC_SEL_TIMEOUT ? CONC_ETIMEDOUT : conc__abort_code(r);
  }
  int nlocks = sort_unique(locks, live);
  bool retried = false;
  int head = -1;
  for (;;) {
    lock_all(locks, nlocks);
    conc_waiter *wake = NULL;
    conc_sudog *served = NULL;
    int rc = poll_cases(cases, order, live, &wake, &served, head, closed_send);
    head = -1;
    if (rc == CONC_EAGAIN && deadline != CONC_NOWAIT &&
        !(retried && deadline != CONC_NEVER && conc_now() >= deadline)) {
      rc = park_on_all(cases, order, live, locks, nlocks, sudogs, served,
                       deadline, closed_send, &head);
      if (rc == RESTART) {
        retried = true;
        continue;
      }
    } else {
      unlock_all(locks, nlocks);
      conc__wake_list(served);
      if (wake) conc__waiter_wake(wake);
      if (rc == CONC_EAGAIN && deadline != CONC_NOWAIT) rc = CONC_ETIMEDOUT;
    }
    if (retried) pass_on(cases, order, live);
    return rc;
  }
}

int conc_select(conc_case *cases, int n, conc_time deadline, int *closed_send) {
  int unused;
  if (closed_send == NULL) closed_send = &unused; /* optional, as documented */
  *closed_send = 0;
  bool merged = false;
  for (int i = 0; i < n; i++) {
    cases[i].ok = 0;
    if (cases[i].chan && cases[i].op != CONC_SEND && cases[i].op != CONC_RECV)
      return CONC_EINVAL; /* (it was taken for a receive before) */
    if (cases[i].chan && cases[i].op == CONC_SEND && cases[i].chan->recv_only)
      return CONC_ERECVONLY;
    merged |= cases[i].chan && cases[i].chan->merge;
  }
  /* A merged channel's case stands for its inputs: merge.c expands it
   * and selects over the expansion with conc__select_plain. */
  if (merged) return conc__merge_select(cases, n, deadline, closed_send);
  return conc__select_plain(cases, n, deadline, closed_send);
}

int conc__select_plain(conc_case *cases, int n, conc_time deadline,
                       int *closed_send) {
  *closed_send = 0;
  for (int i = 0; i < n; i++) cases[i].ok = 0;
  if (n <= SMALL) {
    sel_scratch s;
    return select_with(cases, n, deadline, closed_send, s.order, s.locks,
                       s.sudogs);
  }
  int *order = malloc((size_t)n * sizeof *order);
  conc_chan **locks = malloc((size_t)n * sizeof *locks);
  conc_sudog *sudogs = malloc((size_t)n * sizeof *sudogs);
  int rc = CONC_ENOMEM;
  if (order && locks && sudogs)
    rc = select_with(cases, n, deadline, closed_send, order, locks, sudogs);
  free(order);
  free(locks);
  free(sudogs);
  return rc;
}
