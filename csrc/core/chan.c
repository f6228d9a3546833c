/*
 * chan.c: channels with Go's semantics.
 *
 * An unbuffered channel is a rendezvous: a sender returns only once a
 * receiver has taken its message (straight from the sender's waiter).
 * A buffered channel is a FIFO ring of `cap` messages that pushes and
 * pops without a lock (see struct conc_chan in internal.h); only waiting
 * takes the lock. Close wakes every waiter: receivers see "closed" once
 * the buffer is drained, senders fail with ECLOSED (Go panics).
 *
 * Locking: one lock per channel (c->lock). A waiter to wake is collected
 * while the lock is held and woken after it is released. select.c takes
 * several channel locks, in address order.
 *
 * Why a lock-free ring: with one lock, every operation moved the lock's
 * cache line between the producer's and the consumer's cores (about
 * 430 ns a message between two threads, bench B2); with the ring a
 * message moves one slot's line, and neither side writes a line the
 * other side writes, unless one of them waits.
 */
#include <sched.h>
#include <string.h>
#include "internal.h"

/* Set in `tail` by close: pushes from then on fail. */
#define RING_CLOSED ((size_t)1 << (sizeof(size_t) * 8 - 1))

static void chan_destroy(conc_obj *o) {
  conc_chan *c = (conc_chan *)o;
  if (c->timer) conc__timer_chan_gone(c->timer);  /* nobody can receive */
  if (c->merge) conc__merge_free(c->merge);
  size_t head = atomic_load_explicit(&c->head, memory_order_relaxed);
  size_t tail = atomic_load_explicit(&c->tail, memory_order_relaxed);
  for (size_t pos = head; pos != (tail & ~RING_CLOSED); pos++)
    conc_msg_free(&c->slots[pos % c->cap].msg);
#ifdef CONC_VALGRIND
  for (size_t i = 0; i < c->cap; i++) CONC_HB_FORGET(&c->slots[i].lap);
#endif
  free(c->slots_raw);
  CONC_HB_FORGET(&c->lock);  /* a new channel may reuse the address */
  free(c);
}

const conc_type conc_chan_type = {"conc.chan", chan_destroy};

conc_chan *conc_chan_new(size_t cap) {
  conc_chan *c = aligned_alloc(_Alignof(conc_chan), sizeof *c);
  if (c == NULL) return NULL;
  memset(c, 0, sizeof *c);
  if (cap > 0) {
    /* calloc: a big ring's pages stay untouched until used (lap 0 is
     * zero); one spare slot to align the ring to a cache line. */
    if (cap >= SIZE_MAX / sizeof(conc_slot) ||
        (c->slots_raw = calloc(cap + 1, sizeof(conc_slot))) == NULL) {
      free(c);
      return NULL;
    }
    uintptr_t p = (uintptr_t)c->slots_raw;
    c->slots = (conc_slot *)((p + 63) & ~(uintptr_t)63);
  }
  conc_obj_init(&c->hdr, &conc_chan_type);
  c->cap = cap;
  c->pow2 = cap > 0 && (cap & (cap - 1)) == 0;
  return c;
}

conc_chan *conc__chan_new_owned(size_t cap) {
  conc_chan *c = conc_chan_new(cap);
  if (c) c->recv_only = true;  /* before anyone else can see c */
  return c;
}

int conc_chan_recv_only(const conc_chan *c) { return c->recv_only; }

/* ---- receive-only views ------------------------------------------------ */

struct conc_chan_view {
  conc_obj hdr;
  conc_chan *c;             /* retained; never changes */
};

static void view_destroy(conc_obj *o) {
  conc_chan_view *v = (conc_chan_view *)o;
  conc_release(&v->c->hdr);
  free(v);
}

const conc_type conc_chan_view_type = {"conc.chan.recv_only", view_destroy};

conc_chan_view *conc_chan_view_new(conc_chan *c) {
  conc_chan_view *v = malloc(sizeof *v);
  if (v == NULL) return NULL;
  conc_obj_init(&v->hdr, &conc_chan_view_type);
  conc_retain(&c->hdr);
  v->c = c;
  return v;
}

conc_chan *conc_chan_view_chan(const conc_chan_view *v) { return v->c; }

/* Messages delivered (taken by a receiver): counted per thread, added to
 * the total in batches so that channels share no counter cache line. */
static atomic_llong sent_total;
static CONC_TLS int sent_here;

static void count_delivered(void) {
  if (++sent_here == 256) {
    atomic_fetch_add_explicit(&sent_total, sent_here, memory_order_relaxed);
    sent_here = 0;
  }
}

void conc__flush_delivered(void) {
  if (sent_here == 0) return;
  atomic_fetch_add_explicit(&sent_total, sent_here, memory_order_relaxed);
  sent_here = 0;
}

long long conc_messages_sent(void) {
  return atomic_load_explicit(&sent_total, memory_order_relaxed) + sent_here;
}

/* ---- the ring (buffered channels): no lock ---------------------------- */

static size_t slot_of(const conc_chan *c, size_t pos) {
  return c->pow2 ? pos & (c->cap - 1) : pos % c->cap;
}

/* A push or pop that claimed its position has not finished with the
 * slot yet: it is a few instructions away, unless its thread was
 * preempted; then give it the processor. */
static void wait_in_flight(unsigned *spins) {
  if (++*spins < 64) conc__cpu_relax();
  else sched_yield();
}

/*
 * Asks for the next slot's cache line, to write it: the line is with
 * the other side (its last pop or push), and fetching it while this
 * thread goes on keeps the next push or pop from stalling on it. That
 * stall is most of a streaming channel's cost between cores: each
 * push or pop ends in a locked instruction, which waits for the slot's
 * line (B2, cores ~0.5 us apart: 5.0 M msg/s without, 9.5 M with).
 * Called only by a first try that found its slot ready, so the ring was
 * not full (empty) just before and the next slot is seldom the one the
 * other side works on (when this push fills the ring it is: a hint
 * wasted, nothing worse); and not in a small ring, where it soon is.
 */
static inline void prefetch_next(const conc_chan *c, size_t pos) {
  if (c->cap < 16) return;
  conc__prefetch_write(&c->slots[slot_of(c, pos + 1)]);
}

/* OK, EAGAIN (full) or ECLOSED. On OK the ring owns *m.
 * exact: EAGAIN only when the ring is full (a pop still copying out of
 * the slot is waited for). Not exact: EAGAIN as soon as the slot is not
 * free, without reading `head` (a blocking send then waits on the slot
 * anyway): in a steady stream that read made the consumer's next pop
 * fetch its own `head` line back, a cross-core transfer a message. */
static int ring_push(conc_chan *c, conc_msg *m, bool exact) {
  unsigned spins = 0;
  size_t pos = atomic_load_explicit(&c->tail, memory_order_relaxed);
  for (;;) {
    if (pos & RING_CLOSED) return CONC_ECLOSED;
    size_t i = slot_of(c, pos);
    conc_slot *s = &c->slots[i];
    size_t lap = atomic_load_explicit(&s->lap, memory_order_acquire);
    ptrdiff_t d = (ptrdiff_t)(lap - 2 * (pos - i));
    if (d == 0) {  /* the slot is free for position pos: claim pos */
      if (atomic_compare_exchange_weak_explicit(&c->tail, &pos, pos + 1,
                                                memory_order_relaxed,
                                                memory_order_relaxed)) {
        CONC_HB_AFTER(&s->lap);
        if (!exact) prefetch_next(c, pos);
        conc__msg_move(&s->msg, m);
        CONC_HB_BEFORE(&s->lap);
        /* Sequentially consistent: before the load of recvq.n that
         * follows (the other half is conc__waitq_push). */
        atomic_store(&s->lap, lap + 1);
        return CONC_OK;
      }
    } else if (d < 0) {
      /* The slot still holds the previous lap's message: full, or its
       * pop has claimed it and is copying it out. (The spin and park
       * conditions look at the slot only, so `head` is read here once
       * per wait, not once per poll.) */
      if (!exact) return CONC_EAGAIN;
      size_t head = atomic_load(&c->head);
      if ((ptrdiff_t)(pos - head) >= (ptrdiff_t)c->cap) return CONC_EAGAIN;
      wait_in_flight(&spins);
      pos = atomic_load_explicit(&c->tail, memory_order_relaxed);
    } else {  /* another push took pos */
      pos = atomic_load_explicit(&c->tail, memory_order_relaxed);
    }
  }
}

/* OK, EAGAIN (empty) or ECLOSED (closed and drained). exact: as for
 * ring_push; not exact, EAGAIN as soon as the slot is not written,
 * without reading `tail` (the line every push writes). */
static int ring_pop(conc_chan *c, conc_msg *out, bool exact) {
  unsigned spins = 0;
  size_t pos = atomic_load_explicit(&c->head, memory_order_relaxed);
  for (;;) {
    size_t i = slot_of(c, pos);
    conc_slot *s = &c->slots[i];
    size_t lap = atomic_load_explicit(&s->lap, memory_order_acquire);
    ptrdiff_t d = (ptrdiff_t)(lap - (2 * (pos - i) + 1));
    if (d == 0) {  /* message pos is there: claim it */
      if (atomic_compare_exchange_weak_explicit(&c->head, &pos, pos + 1,
                                                memory_order_relaxed,
                                                memory_order_relaxed)) {
        CONC_HB_AFTER(&s->lap);
        if (!exact) prefetch_next(c, pos);
        conc__msg_move(out, &s->msg);
        CONC_HB_BEFORE(&s->lap);
        atomic_store(&s->lap, 2 * (pos + c->cap - i));  /* as in push */
        return CONC_OK;
      }
    } else if (d < 0) {
      /* Not written yet: empty, or its push is copying it in (a later
       * push may be complete already: wait for this one, as the values
       * are in the channel). */
      if (!exact) return CONC_EAGAIN;
      size_t tail = atomic_load(&c->tail);
      if ((tail & ~RING_CLOSED) == pos)
        return (tail & RING_CLOSED) ? CONC_ECLOSED : CONC_EAGAIN;
      wait_in_flight(&spins);
      pos = atomic_load_explicit(&c->head, memory_order_relaxed);
    } else {  /* another pop took pos */
      pos = atomic_load_explicit(&c->head, memory_order_relaxed);
    }
  }
}

/* Whether retrying a push (pop) could succeed: the slot at `tail` is
 * free (the one at `head` is written), or the channel is closed. They
 * read the slot a push or pop reads anyway, not the other side's
 * position: spinning on them moves no line the other side writes but
 * that slot. Used as spin and park conditions; their loads are
 * sequentially consistent, for the Dekker pairing with the slot stores
 * (see conc__waitq_push). */
bool conc__chan_can_send(const conc_chan *c) {
  size_t pos = atomic_load(&c->tail);
  if (pos & RING_CLOSED) return true;
  size_t i = slot_of(c, pos);
  size_t lap = atomic_load(&c->slots[i].lap);
  return (ptrdiff_t)(lap - 2 * (pos - i)) >= 0;
}

bool conc__chan_can_recv(const conc_chan *c) {
  size_t pos = atomic_load(&c->head);
  size_t i = slot_of(c, pos);
  size_t lap = atomic_load(&c->slots[i].lap);
  return (ptrdiff_t)(lap - (2 * (pos - i) + 1)) >= 0 || atomic_load(&c->closed);
}

static bool can_send(const void *c) { return conc__chan_can_send(c); }
static bool can_recv(const void *c) { return conc__chan_can_recv(c); }

/*
 * After a push (q: recvq) or a pop (q: sendq): claims one waiter of the
 * other side, to be woken (once no lock is held) to try again. NULL if
 * nobody waits. `locked`: the caller holds c->lock.
 */
static conc_waiter *claim_retry(conc_chan *c, conc_waitq *q, bool locked) {
  if (atomic_load(&q->n) == 0) return NULL;  /* the Dekker half: seq_cst */
  if (!locked) conc__lock(&c->lock);
  conc_sudog *s = conc__waitq_claim(q);
  conc_waiter *w = NULL;
  if (s != NULL) {
    s->ok = CONC_SUDOG_RETRY;
    w = s->w;
  }
  if (!locked) conc__unlock(&c->lock);
  return w;
}

/* Wakes the waiters chained on list (by their `next`), no lock held. */
void conc__wake_list(conc_sudog *list) {
  while (list != NULL) {
    conc_sudog *next = list->next;  /* read before the owner may return */
    conc__waiter_wake(list->w);
    list = next;
  }
}

/*
 * After a push (q: recvq) or a pop (q: sendq) that did not hold the
 * lock: serves the waiters of the other side in the order they came, as
 * Go's runtime does. A blocking send (receive) parked on the ring has
 * its operation done for it here, under the lock, with the room (value)
 * just made, rather than being woken to race for it (an operation that
 * has not waited gives way to the waiters: after_waiters). A select's
 * case is done for it the same way (the select fires with it). A waiter
 * whose operation fails here (an operation took the room first, between
 * the look and the claim) is woken to retry.
 * Each operation done here is one more push (pop): the other side's
 * waiters are looked at after it, as after any (the Dekker half, see
 * conc__waitq_push); and while room (values) remains, the next waiter is
 * served (the pass-on of buffered_op).
 *
 * With no room (value) left at the look, the waiters keep their places:
 * an operation that never waited took it, and the pop (push) that makes
 * room next serves them; or a pop (push) is in flight on the slot, and
 * serves them once done.
 */
static void serve_locked(conc_chan *c, conc_waitq *q, conc_sudog **list) {
  bool send = q == &c->sendq;
  for (;;) {
    conc_sudog *head = q->head;
    /* A head already claimed (timed out, interrupted, or a select that
     * fired elsewhere) is stale: dropped, not taken for a waiter that
     * goes first (after_waiters would report a full or empty ring). */
    while (head != NULL &&
           atomic_load_explicit(&head->w->selected, memory_order_acquire) !=
               CONC_SEL_NONE) {
      conc__waitq_remove(q, head);
      head = q->head;
    }
    if (head == NULL || (head->handoff && !(send ? conc__chan_can_send(c)
                                                 : conc__chan_can_recv(c))))
      return;
    conc_sudog *s = conc__waitq_claim(q);
    if (s == NULL) return;
    int rc = !s->handoff ? CONC_EAGAIN
             : send      ? ring_push(c, s->elem, true)
                         : ring_pop(c, s->elem, true);
    s->ok = rc == CONC_OK ? CONC_SUDOG_DONE : CONC_SUDOG_RETRY;
    s->next = *list;  /* s is ours until woken: reuse its link */
    *list = s;
    if (rc != CONC_OK) return;
    if (!send) count_delivered();
    conc_sudog *o = conc__waitq_claim(send ? &c->recvq : &c->sendq);
    if (o != NULL) {
      o->ok = CONC_SUDOG_RETRY;
      o->next = *list;
      *list = o;
    }
  }
}

static void serve(conc_chan *c, conc_waitq *q) {
  if (atomic_load(&q->n) == 0) return;  /* the Dekker half: seq_cst */
  conc_sudog *list = NULL;
  conc__lock(&c->lock);
  serve_locked(c, q, &list);
  conc__unlock(&c->lock);
  conc__wake_list(list);
}

/* See internal.h: select.c's passes use them too. */
bool conc__chan_serve_own(conc_chan *c, int op, conc_sudog **list) {
  conc_waitq *own = op == CONC_SEND ? &c->sendq : &c->recvq;
  if (atomic_load_explicit(&own->n, memory_order_relaxed) == 0) return true;
  serve_locked(c, own, list);
  return atomic_load_explicit(&own->n, memory_order_relaxed) == 0;
}

bool conc__chan_serve_ready(conc_chan *c, int op, conc_sudog **list) {
  bool send = op == CONC_SEND;
  if (!(send ? conc__chan_can_send(c) : conc__chan_can_recv(c))) return false;
  serve_locked(c, send ? &c->sendq : &c->recvq, list);
  return true;
}

/*
 * A send (receive) that finds senders (receivers) parked comes after
 * them, as in Go's runtime: under the lock it serves them with the room
 * (values) there is, and does its own operation only if none is left
 * waiting. EAGAIN: it is to wait behind them (or the ring is full,
 * empty). Taken until the operation has parked: one that was woken to
 * retry was at the head of the queue, ahead of those linked now.
 */
static int after_waiters(conc_chan *c, conc_msg *m, bool send) {
  conc_sudog *list = NULL;
  conc__lock(&c->lock);
  int rc = CONC_EAGAIN;
  if (conc__chan_serve_own(c, send ? CONC_SEND : CONC_RECV, &list))
    rc = send ? ring_push(c, m, true) : ring_pop(c, m, true);
  conc__unlock(&c->lock);
  conc__wake_list(list);
  return rc;
}

void conc__chan_kick(conc_chan *c, int op) {
  bool send = op == CONC_SEND;
  if (!(send ? conc__chan_can_send(c) : conc__chan_can_recv(c))) return;
  conc_waiter *w = claim_retry(c, send ? &c->sendq : &c->recvq, false);
  if (w != NULL) conc__waiter_wake(w);
}

/* ---- one operation, lock held (select.c, timer.c) ---------------------- */

static bool ring_empty(const conc_chan *c) {
  size_t tail = atomic_load(&c->tail) & ~RING_CLOSED;
  return tail == atomic_load(&c->head);
}

/* A plain wait (see struct conc_waiter) that this thread completed is
 * woken at once, while the lock is held, if it still spins: the wake is
 * one more write to the line just written, and the waiting thread then
 * reads that line back once (waking it after unlocking let its polling
 * take the line in between). True if so; a sleeper is woken the usual
 * way, after unlocking. */
static bool done_plain(conc_sudog *s) {
  return conc__sudog_plain(s) && conc__waiter_wake_spinning(s->w);
}

/* Called with c->lock held. */
int conc__chan_try_send(conc_chan *c, conc_msg *m, conc_waiter **wake) {
  *wake = NULL;
  /* `closed` is stable under the lock (a receiver may link its sudog
   * just after a close; it will see the close and unlink). */
  if (atomic_load_explicit(&c->closed, memory_order_relaxed))
    return CONC_ECLOSED;
  /* A parked receiver is handed the value: always when unbuffered;
   * when buffered, only if the ring is empty (nothing to overtake), as
   * Go does, so that the value is that receiver's (a timer's stop,
   * draining the ring, cannot take it back from under it). */
  if (c->cap == 0 || (atomic_load(&c->recvq.n) > 0 && ring_empty(c))) {
    conc_sudog *s = conc__waitq_claim(&c->recvq);
    if (s != NULL) {
      conc__msg_move(s->elem, m);
      s->ok = CONC_SUDOG_DONE;
      *wake = done_plain(s) ? NULL : s->w;
      count_delivered();
      return CONC_OK;
    }
  }
  if (c->cap == 0) return CONC_EAGAIN;
  int rc = ring_push(c, m, true);
  if (rc == CONC_OK) *wake = claim_retry(c, &c->recvq, true);
  return rc;
}

/* Called with c->lock held. */
int conc__chan_try_recv(conc_chan *c, conc_msg *out, conc_waiter **wake) {
  *wake = NULL;
  if (c->cap > 0) {
    int rc = ring_pop(c, out, true);
    if (rc == CONC_OK) {
      count_delivered();
      *wake = claim_retry(c, &c->sendq, true);
    }
    return rc;
  }
  conc_sudog *s = conc__waitq_claim(&c->sendq);
  if (s == NULL)
    return atomic_load_explicit(&c->closed, memory_order_relaxed) ? CONC_ECLOSED
                                                                  : CONC_EAGAIN;
  conc__msg_move(out, s->elem);  /* rendezvous: from the sender */
  s->ok = CONC_SUDOG_DONE;
  *wake = done_plain(s) ? NULL : s->w;
  count_delivered();
  return CONC_OK;
}

/* ---- unbuffered: the lock, and a rendezvous ----------------------------- */

/* Links the thread's own sudog on q (lock held), unlocks, parks; returns
 * the result. A plain wait: it never claims itself, and at its deadline
 * looks under the lock whether a waker took it (see
 * conc__waiter_park_plain). */
static int wait_on(conc_chan *c, conc_waitq *q, conc_msg *elem,
                   conc_time deadline) {
  conc_waiter *w = conc__waiter_self();
  conc_sudog *sdp = &w->sd;
  memset(sdp, 0, sizeof *sdp);
  bool recv = q == &c->recvq;
  sdp->w = w;
  sdp->elem = &w->slot;  /* a send's message waits there too (a copy:
                          * *elem is the caller's until it is taken) */
  if (!recv) conc__msg_move(&w->slot, elem);
  conc__waiter_arm(w);
  conc__waiting_on(w, recv ? "chan receive" : "chan send", c, true);
  conc__waitq_push(q, sdp);
  conc__unlock(&c->lock);
  int fired = conc__waiter_park_plain(w, deadline);
  if (fired < 0) {  /* timed out, or a deadlock or interrupt ended it */
    conc__lock(&c->lock);
    bool taken = !sdp->linked;  /* by a waker, or dropped as stale */
    conc__waitq_remove(q, sdp);
    conc__unlock(&c->lock);
    /* An abort claimed it: no waker can have. */
    if (fired != CONC_SEL_TIMEOUT) return conc__abort_code(fired);
    if (!taken) return CONC_ETIMEDOUT;
    /* A waker claimed it before the deadline passed here: its wake is on
     * the way (it may wait until the waker unlocks). */
    conc__waiting_on(w, recv ? "chan receive" : "chan send", c, true);
    conc__waiter_park(w, CONC_NEVER);
  }
  if (sdp->ok == CONC_SUDOG_CLOSED) return CONC_ECLOSED;
  if (recv) conc__msg_move(elem, &w->slot);
  return CONC_OK;
}

static int unbuffered_op(conc_chan *c, conc_msg *m, conc_time deadline,
                         bool send) {
  conc_waiter *wake;
  conc__lock(&c->lock);
  int rc = send ? conc__chan_try_send(c, m, &wake)
                : conc__chan_try_recv(c, m, &wake);
  if (rc == CONC_EAGAIN && deadline != CONC_NOWAIT)
    return wait_on(c, send ? &c->sendq : &c->recvq, m, deadline);
  conc__unlock(&c->lock);
  if (wake) conc__waiter_wake(wake);
  return rc;
}

/* ---- buffered: the ring, and a park when it is full or empty ---------- */

/* Links a sudog on q and parks until a waker says retry (EAGAIN), the
 * deadline passes or a deadlock; or a waker did the operation for it
 * (OK: serve_locked pushed the sender's *m, or a pop or a locked send
 * put a receiver's value in *m). */
static int park_buffered(conc_chan *c, conc_waitq *q, conc_msg *m,
                         conc_time deadline) {
  bool send = q == &c->sendq;
  conc_waiter *w = conc__waiter_self();
  conc_sudog sd;
  conc_msg slot;
  memset(&sd, 0, sizeof sd);
  sd.w = w;
  sd.elem = send ? m : &slot;
  sd.handoff = true;
  conc__lock(&c->lock);
  conc__waiter_arm(w);
  conc__waiting_on(w, send ? "chan send" : "chan receive", c, true);
  conc__waitq_push(q, &sd);
  /* The waiter's half of the Dekker pairing (see conc__waitq_push): the
   * slot is looked at after linking. Room (a value) made by an
   * operation that did not see us is served here, from the head of the
   * queue, in order (we may be the one served: then we wake ourselves).
   * Not by claiming ourselves to retry, which would pass those ahead. */
  conc_sudog *list = NULL;
  conc__chan_serve_ready(c, send ? CONC_SEND : CONC_RECV, &list);
  conc__unlock(&c->lock);
  conc__wake_list(list);
  int fired = conc__waiter_park(w, deadline);
  if (fired >= 0) {  /* the waker unlinked it */
    if (sd.ok != CONC_SUDOG_DONE) return CONC_EAGAIN;
    if (!send) conc__msg_move(m, &slot);  /* a send's went into the ring */
    return CONC_OK;
  }
  conc__lock(&c->lock);
  conc__waitq_remove(q, &sd);
  conc__unlock(&c->lock);
  return fired == CONC_SEL_TIMEOUT ? CONC_ETIMEDOUT : conc__abort_code(fired);
}

/*
 * A full (send) or empty (receive) ring: the other side is usually a
 * moment away, so spin on the slot first; then park. Every push or pop
 * that finds waiters on the other side serves them (serve_locked); an
 * operation that finds waiters on its own side, before it has parked,
 * goes after them (after_waiters).
 *
 * The first try of a blocking operation is not exact: it does not tell
 * "full" from "an operation in flight" (see ring_push). Every later try
 * is, so the decision to time out or to park is made on an exact look,
 * which waits for an operation in flight (yielding, and past the
 * deadline if that operation's thread was preempted): a timeout is
 * reported only when the ring was empty (full) at a look made after
 * the deadline.
 *
 * A waiter can still park behind an operation in flight while later ones
 * are complete (the spin and park conditions look at one slot, and a
 * completed push wakes only waiters already linked); the one in flight
 * then wakes a single waiter. So a waiter that was woken and succeeds
 * passes the wake-up on, to the next waiter of its side, if the ring is
 * still ready for it.
 */
static int buffered_op(conc_chan *c, conc_msg *m, conc_time deadline,
                       bool send) {
  bool exact = deadline == CONC_NOWAIT, spun = false, woken = false;
  bool parked = false; /* until then, waiters of its side go first */
  for (;;) {
    int rc = !parked && atomic_load(send ? &c->sendq.n : &c->recvq.n) != 0
                 ? after_waiters(c, m, send)
             : send ? ring_push(c, m, exact)
                    : ring_pop(c, m, exact);
    if (rc == CONC_OK) {
      if (!send) count_delivered();
      serve(c, send ? &c->recvq : &c->sendq);
      if (woken) conc__chan_kick(c, send ? CONC_SEND : CONC_RECV);
      return rc;
    }
    if (rc != CONC_EAGAIN || deadline == CONC_NOWAIT) return rc;
    if (!spun) {
      spun = true;
      bool ready = conc__spin_until(send ? can_send : can_recv, c, deadline);
      if (ready || !exact) {
        exact = true;
        continue;
      }
    }
    if (deadline != CONC_NEVER && conc_now() >= deadline) return CONC_ETIMEDOUT;
    rc = park_buffered(c, send ? &c->sendq : &c->recvq, m, deadline);
    parked = true;
    if (rc != CONC_EAGAIN && rc != CONC_ETIMEDOUT) return rc;
    /* Woken to retry: try again. Timed out: one exact try first, which
     * finds a value (room) that came just before the deadline, and then
     * the deadline check above reports the timeout. */
    woken = rc == CONC_EAGAIN;
    spun = rc == CONC_ETIMEDOUT;
  }
}

int conc_chan_send(conc_chan *c, conc_msg *m, conc_time deadline) {
  if (c->recv_only) return CONC_ERECVONLY;
  return c->cap > 0 ? buffered_op(c, m, deadline, true)
                    : unbuffered_op(c, m, deadline, true);
}

int conc_chan_recv(conc_chan *c, conc_msg *out, conc_time deadline) {
  if (c->merge) return conc__merge_recv(c, out, deadline);
  if (c->timer) conc__timer_run_due(c->timer);
  return c->cap > 0 ? buffered_op(c, out, deadline, false)
                    : unbuffered_op(c, out, deadline, false);
}

/* Claims every waiter of q and chains them on *list. */
static void claim_all(conc_waitq *q, int ok, conc_sudog **list) {
  conc_sudog *s;
  while ((s = conc__waitq_claim(q)) != NULL) {
    s->ok = ok;
    s->next = *list;  /* s is ours until woken: reuse its link */
    *list = s;
  }
}

int conc_chan_close(conc_chan *c) {
  return c->recv_only ? CONC_ERECVONLY : conc__chan_close_owned(c);
}

int conc__chan_close_owned(conc_chan *c) {
  conc_sudog *list = NULL;
  conc__lock(&c->lock);
  if (atomic_load_explicit(&c->closed, memory_order_relaxed)) {
    conc__unlock(&c->lock);
    return CONC_ECLOSED;
  }
  /* Buffered: pushes after this fail; receivers drain, then see it
   * (`closed` after the bit: whoever sees it finds `tail` final). */
  if (c->cap > 0) atomic_fetch_or(&c->tail, RING_CLOSED);
  atomic_store(&c->closed, true);
  int ok = c->cap > 0 ? CONC_SUDOG_RETRY : CONC_SUDOG_CLOSED;
  claim_all(&c->recvq, ok, &list);
  claim_all(&c->sendq, ok, &list);
  conc__unlock(&c->lock);
  conc__wake_list(list);
  return CONC_OK;
}

/* A timer's channel reads as Go 1.23's: unbuffered, with nothing in it
 * (its value is there for a receive, conc__timer_run_due). */
size_t conc_chan_len(conc_chan *c) {
  if (c->cap == 0 || c->timer) return 0;
  size_t head = atomic_load(&c->head);
  size_t tail = atomic_load(&c->tail) & ~RING_CLOSED;
  ptrdiff_t n = (ptrdiff_t)(tail - head);
  return n <= 0 ? 0 : (size_t)n > c->cap ? c->cap : (size_t)n;
}

size_t conc_chan_cap(const conc_chan *c) { return c->timer ? 0 : c->cap; }

int conc_chan_closed(conc_chan *c) { return atomic_load(&c->closed); }
