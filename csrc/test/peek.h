/*
 * peek.h: test helpers that look inside the core (csrc/core/internal.h)
 * to order threads without sleeping: "wait until k threads are parked
 * on this channel" reads the channel's wait queues under its lock.
 */
#ifndef CONC_TEST_PEEK_H
#define CONC_TEST_PEEK_H

#include "../core/internal.h"
#include "check.h"

/* Sudogs linked on q; the caller holds the queue's lock. */
static CHECK_UNUSED int peek_qlen(const conc_waitq *q) {
  int n = 0;
  for (const conc_sudog *s = q->head; s; s = s->next) n++;
  return n;
}

/* Receivers (recv) or senders (!recv) parked on c right now. */
static CHECK_UNUSED int peek_parked(conc_chan *c, int recv) {
  conc__lock(&c->lock);
  int n = peek_qlen(recv ? &c->recvq : &c->sendq);
  conc__unlock(&c->lock);
  return n;
}

/* Waits until at least n receivers (recv) or senders are parked on c. */
static CHECK_UNUSED void wait_parked(conc_chan *c, int recv, int n) {
  while (peek_parked(c, recv) < n) sched_yield();
}

/* A buffered channel's ring worked by hand, as an operation "in flight"
 * (its position claimed, its slot not yet done) or one whose serve of
 * the other side's waiters has not come yet (its thread preempted between
 * the slot and the look at the queue). Positions are not wrapped (c's
 * lap counter, chan.c's ring_push and ring_pop). */

/* Claims the next push position; finish it with peek_finish_push. */
static CHECK_UNUSED size_t peek_claim_push(conc_chan *c) {
  return atomic_fetch_add(&c->tail, 1);
}

/* Writes v into the slot of the push claimed at pos, without serving. */
static CHECK_UNUSED void peek_finish_push(conc_chan *c, size_t pos, int64_t v) {
  size_t i = pos % c->cap;
  conc_msg m;
  msg_int(&m, v);
  conc__msg_move(&c->slots[i].msg, &m);
  atomic_store(&c->slots[i].lap, 2 * (pos - i) + 1);
}

/* Pops the head value, without serving the parked senders. */
static CHECK_UNUSED int64_t peek_pop_unserved(conc_chan *c) {
  size_t pos = atomic_fetch_add(&c->head, 1);
  size_t i = pos % c->cap;
  conc_msg out;
  conc__msg_move(&out, &c->slots[i].msg);
  atomic_store(&c->slots[i].lap, 2 * (pos + c->cap - i));
  return msg_take_int(&out);
}

#endif
