/*
 * chan.c: channels with Go's semantics.
 *
 * An unbuffered channel is a rendezvous: a sender returns only once a
 * receiver has taken its message (directly from the sender's sudog). A
 * buffered channel is a FIFO ring of `cap` messages. Close wakes every
 * waiter: receivers see "closed", senders fail with ECLOSED (Go panics).
 *
 * Locking: one lock per channel (c->lock). A waiter to wake is collected
 * while the lock is held and woken after it is released. select.c takes
 * several channel locks, in address order.
 */
#include <string.h>
#include "internal.h"

/* The buffered count: written under the lock, read anywhere. */
static size_t count_of(const conc_chan *c) {
  return atomic_load_explicit(&c->count, memory_order_relaxed);
}

static void set_count(conc_chan *c, size_t n) {
  atomic_store_explicit(&c->count, n, memory_order_relaxed);
}

static void chan_destroy(conc_obj *o) {
  conc_chan *c = (conc_chan *)o;
  for (size_t i = 0; i < count_of(c); i++)
    conc_msg_free(&c->buf[(c->head + i) % c->cap]);
  free(c->buf);
  CONC_HB_FORGET(&c->lock);  /* a new channel may reuse the address */
  free(c);
}

const conc_type conc_chan_type = {"conc.chan", chan_destroy};

conc_chan *conc_chan_new(size_t cap) {
  conc_chan *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  if (cap > 0) {
    c->buf = calloc(cap, sizeof *c->buf);
    if (c->buf == NULL) {
      free(c);
      return NULL;
    }
  }
  conc_obj_init(&c->hdr, &conc_chan_type);
  c->cap = cap;
  return c;
}

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

/* Called with c->lock held. */
int conc__chan_try_send(conc_chan *c, conc_msg *m, conc_waiter **wake) {
  *wake = NULL;
  if (c->closed) return CONC_ECLOSED;
  conc_sudog *s = conc__waitq_claim(&c->recvq);
  if (s != NULL) {  /* a receiver waits: hand the message over */
    conc__msg_move(s->elem, m);
    s->ok = 1;
    *wake = s->w;
    count_delivered();
    return CONC_OK;
  }
  size_t n = count_of(c);
  if (n < c->cap) {
    conc__msg_move(&c->buf[(c->head + n) % c->cap], m);
    set_count(c, n + 1);
    return CONC_OK;
  }
  return CONC_EAGAIN;
}

/* Called with c->lock held. */
int conc__chan_try_recv(conc_chan *c, conc_msg *out, conc_waiter **wake) {
  *wake = NULL;
  conc_sudog *s = conc__waitq_claim(&c->sendq);
  if (s != NULL) {
    if (c->cap == 0) {
      conc__msg_move(out, s->elem);  /* rendezvous: from the sender */
    } else {            /* full buffer: take the head, append the sender's */
      conc__msg_move(out, &c->buf[c->head]);
      conc__msg_move(&c->buf[c->head], s->elem);
      c->head = (c->head + 1) % c->cap;
    }
    s->ok = 1;
    *wake = s->w;
    count_delivered();
    return CONC_OK;
  }
  size_t n = count_of(c);
  if (n > 0) {
    count_delivered();
    conc__msg_move(out, &c->buf[c->head]);
    c->head = (c->head + 1) % c->cap;
    set_count(c, n - 1);
    return CONC_OK;
  }
  return c->closed ? CONC_ECLOSED : CONC_EAGAIN;
}

/* Links a sudog on q (lock held), unlocks, parks; returns the result. */
static int wait_on(conc_chan *c, conc_waitq *q, conc_msg *elem,
                   conc_time deadline) {
  conc_waiter *w = conc__waiter_self();
  /* The sudog and a receive slot share the lines the waker writes. */
  struct {
    conc_sudog sd;
    conc_msg slot;
  } __attribute__((aligned(64))) local;
  conc_sudog *sdp = &local.sd;
  memset(sdp, 0, sizeof *sdp);
  bool recv = q == &c->recvq;
  sdp->w = w;
  sdp->elem = recv ? &local.slot : elem;
  conc__waiter_arm(w);
  conc__waiting_on(w, recv ? "chan receive" : "chan send", c, true);
  conc__waitq_push(q, sdp);
  conc__unlock(&c->lock);
  int fired = conc__waiter_park(w, deadline);
  if (fired < 0) {  /* timed out, or a deadlock ended the wait */
    conc__lock(&c->lock);
    conc__waitq_remove(q, sdp);
    conc__unlock(&c->lock);
    return fired == CONC_SEL_TIMEOUT ? CONC_ETIMEDOUT : CONC_EDEADLOCK;
  }
  if (!sdp->ok) return CONC_ECLOSED;
  if (recv) conc__msg_move(elem, &local.slot);
  return CONC_OK;
}

/* Spin conditions: a buffered channel about to have room, or a value.
 * They read without the lock; the operation is retried under it. */
static bool has_room(const void *c) {
  const conc_chan *ch = (const conc_chan *)c;
  return count_of(ch) < ch->cap;
}

static bool has_value(const void *c) {
  return count_of((const conc_chan *)c) > 0;
}

/*
 * One channel operation. When a buffered channel is full (send) or empty
 * (receive), the other side is usually a moment away: spin on the count
 * first, so the value goes through the buffer instead of a park and a
 * wake-up per message.
 */
static int chan_op(conc_chan *c, conc_msg *m, conc_time deadline, bool send) {
  conc_waiter *wake;
  conc__lock(&c->lock);
  int rc = send ? conc__chan_try_send(c, m, &wake)
                : conc__chan_try_recv(c, m, &wake);
  if (rc == CONC_EAGAIN && deadline != CONC_NOWAIT && c->cap > 0) {
    conc__unlock(&c->lock);
    conc__spin_until(send ? has_room : has_value, c, deadline);
    conc__lock(&c->lock);
    rc = send ? conc__chan_try_send(c, m, &wake)
              : conc__chan_try_recv(c, m, &wake);
  }
  if (rc == CONC_EAGAIN && deadline != CONC_NOWAIT)
    return wait_on(c, send ? &c->sendq : &c->recvq, m, deadline);
  conc__unlock(&c->lock);
  if (wake) conc__waiter_wake(wake);
  return rc;
}

int conc_chan_send(conc_chan *c, conc_msg *m, conc_time deadline) {
  return chan_op(c, m, deadline, true);
}

int conc_chan_recv(conc_chan *c, conc_msg *out, conc_time deadline) {
  return chan_op(c, out, deadline, false);
}

/* Claims every waiter of q (ok = 0) and chains them on *list. */
static void claim_all(conc_waitq *q, conc_sudog **list) {
  conc_sudog *s;
  while ((s = conc__waitq_claim(q)) != NULL) {
    s->ok = 0;
    s->next = *list;  /* s is ours until woken: reuse its link */
    *list = s;
  }
}

int conc_chan_close(conc_chan *c) {
  conc_sudog *list = NULL;
  conc__lock(&c->lock);
  if (c->closed) {
    conc__unlock(&c->lock);
    return CONC_ECLOSED;
  }
  c->closed = true;
  claim_all(&c->recvq, &list);
  claim_all(&c->sendq, &list);
  conc__unlock(&c->lock);
  while (list != NULL) {
    conc_sudog *next = list->next;  /* read before the owner may return */
    conc__waiter_wake(list->w);
    list = next;
  }
  return CONC_OK;
}

size_t conc_chan_len(conc_chan *c) {
  conc__lock(&c->lock);
  size_t n = count_of(c);
  conc__unlock(&c->lock);
  return n;
}

size_t conc_chan_cap(const conc_chan *c) { return c->cap; }

int conc_chan_closed(conc_chan *c) {
  conc__lock(&c->lock);
  int closed = c->closed;
  conc__unlock(&c->lock);
  return closed;
}
