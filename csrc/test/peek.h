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

#endif
