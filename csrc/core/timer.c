/*
 * timer.c: one timer thread serves every timer (conc.after, tickers,
 * timers, context deadlines).
 *
 * Scheduled timers sit in a binary min-heap ordered by `when`; the heap
 * holds one reference to each. The thread parks (through the waiter)
 * until the earliest deadline; a start that becomes the new earliest
 * wakes it. Firing happens with no lock held: the thread pops what is
 * due under the lock, then calls each timer's fire function. A stop or
 * reset bumps the timer's generation, which lets a fire function drop a
 * firing that became stale while it was on its way.
 *
 * Deadlock detection counts "busy" timers: scheduled, or popped and not
 * yet done firing (a firing may wake a thread counted as asleep).
 *
 * Locking: `timers.lock` guards the heap and every timer's `when`,
 * `period`, `index` and `gen`. Fire functions run without it and take
 * their own locks; the timer lock is never taken while they are held...
 * except by conc_timer_stop/start, which take only it (it is a leaf).
 */
#include <sched.h>
#include <stdio.h>
#include "internal.h"

struct conc_timer {
  atomic_long refs;
  conc_time when, period;   /* timers.lock */
  size_t index;             /* heap position, NOT_SCHEDULED (timers.lock) */
  atomic_uint_fast64_t gen; /* bumped under timers.lock, read anywhere */
  conc_timer_fn fire;
  void *arg;
  void (*drop)(void *arg);
  conc_tick_fn tick;        /* channel timers: builds the message */
  conc_chan *chan;          /* channel timers: weak (timers.lock), NULL
                             * once the channel is being destroyed */
  /* Firings of generation flight_gen taken but not done (timers.lock),
   * and whether a channel firing of it sent its value (the channel's
   * lock). A receiver (conc__timer_run_due) and the timer thread may
   * fire one timer at once, a stale generation's beside the current
   * one's: only the current one's firings count here, and a stale one
   * writes neither (it once cleared the current one's flag, and a stop
   * then called a schedule whose value never came inactive). */
  int in_flight;
  uint64_t flight_gen;  /* (timers.lock) */
  /* Atomic: set by a firing under the channel's lock, cleared by
   * take_due under timers.lock; a ticker's next tick may be taken while
   * a receiver's firing of the last one sends (either order is right). */
  atomic_bool sent;
};

#define NOT_SCHEDULED SIZE_MAX
#define BATCH 64

static struct {
  conc__lock_t lock;
  conc_timer **heap;
  size_t len, size;
  bool started;             /* the thread exists */
  bool sleeping;            /* the thread is parked (or about to be) */
  conc_waiter *w;           /* the thread's waiter */
} timers = {CONC_LOCK_INIT, NULL, 0, 0, false, false, NULL};

/* ---- objects ------------------------------------------------------------ */

conc_timer *conc_timer_new(conc_timer_fn fire, void *arg,
                           void (*drop)(void *arg)) {
  conc_timer *t = calloc(1, sizeof *t);
  if (t == NULL) return NULL;
  atomic_init(&t->refs, 1);
  atomic_init(&t->gen, 0);
  CONC_HB_ATOMIC(&t->gen);  /* Helgrind: atomics read without */
  CONC_HB_ATOMIC(&t->sent); /* the lock their writers hold */
  t->index = NOT_SCHEDULED;
  t->fire = fire;
  t->arg = arg;
  t->drop = drop;
  return t;
}

static void timer_retain(conc_timer *t) {
  atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

void conc_timer_release(conc_timer *t) {
  CONC_HB_BEFORE(t);  /* every release happens before the free */
  if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1) return;
  CONC_HB_AFTER(t);
  CONC_HB_FORGET(t);
  if (t->drop) t->drop(t->arg);
  free(t);
}

uint64_t conc_timer_gen(conc_timer *t) {
  return atomic_load_explicit(&t->gen, memory_order_acquire);
}

/* ---- the heap (timers.lock held) ---------------------------------------- */

static void heap_set(size_t i, conc_timer *t) {
  timers.heap[i] = t;
  t->index = i;
}

static void sift_up(size_t i) {
  conc_timer *t = timers.heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (timers.heap[parent]->when <= t->when) break;
    heap_set(i, timers.heap[parent]);
    i = parent;
  }
  heap_set(i, t);
}

static void sift_down(size_t i) {
  conc_timer *t = timers.heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= timers.len) break;
    if (c + 1 < timers.len && timers.heap[c + 1]->when < timers.heap[c]->when)
      c++;
    if (t->when <= timers.heap[c]->when) break;
    heap_set(i, timers.heap[c]);
    i = c;
  }
  heap_set(i, t);
}

static bool heap_push(conc_timer *t) {
  if (timers.len == timers.size) {
    size_t size = timers.size ? timers.size * 2 : 64;
    conc_timer **h = realloc(timers.heap, size * sizeof *h);
    if (h == NULL) return false;
    timers.heap = h;
    timers.size = size;
  }
  heap_set(timers.len++, t);
  sift_up(t->index);
  return true;
}

static void heap_remove(conc_timer *t) {
  size_t i = t->index;
  conc_timer *last = timers.heap[--timers.len];
  t->index = NOT_SCHEDULED;
  if (last == t) return;
  heap_set(i, last);
  sift_down(i);
  sift_up(last->index);
}

/* ---- the thread --------------------------------------------------------- */

/* Takes t, due at `now`, for a firing: out of the heap, or a ticker to
 * its next tick (skipping missed ones, on its grid: Go's). Returns the
 * generation fired, and in *due when it was due (what its value says,
 * as Go 1.23's sendTime: a firing late by a loaded machine, or made by
 * a receiver long after, still reads the deadline); the firing holds a
 * reference to t until fire_taken ends it. timers.lock held. */
static uint64_t take_due(conc_timer *t, conc_time now, bool *one_shot,
                         conc_time *due) {
  uint64_t gen = atomic_load_explicit(&t->gen, memory_order_relaxed);
  *one_shot = t->period == 0;
  *due = t->when < now ? t->when : now;
  if (t->flight_gen != gen) t->in_flight = 0; /* a stale one's count */
  t->in_flight++;
  t->flight_gen = gen;
  atomic_store_explicit(&t->sent, false, memory_order_relaxed);
  if (t->period > 0) {
    /* The first tick after now, when + period * k. */
    conc_time missed = (now - *due) / t->period;
    t->when = conc__time_add(*due, t->period * (1 + missed));
    sift_down(t->index);
    timer_retain(t);  /* the firing's reference; the heap keeps its own */
  } else {
    heap_remove(t);   /* the heap's reference passes to the firing; */
  }                   /* it stays busy until the firing is done */
  return gen;
}

/* Fires t as take_due took it, with no lock held, and ends the firing. */
static void fire_taken(conc_timer *t, conc_time due, uint64_t gen,
                       bool one_shot) {
  t->fire(t, t->arg, due, gen);
  conc__lock(&timers.lock);
  if (t->flight_gen == gen) t->in_flight--; /* else a stale one: not counted */
  conc__unlock(&timers.lock);
  if (one_shot) conc__timers_busy_add(-1); /* after its wake-ups */
  conc_timer_release(t);
}

/* Pops what is due at `now` into batch; returns how many. timers.lock
 * held. */
static int pop_due(conc_time now, conc_timer **batch, uint64_t *gens,
                   bool *one_shot, conc_time *dues) {
  int n = 0;
  while (n < BATCH && timers.len > 0 && timers.heap[0]->when <= now) {
    batch[n] = timers.heap[0];
    gens[n] = take_due(batch[n], now, &one_shot[n], &dues[n]);
    n++;
  }
  return n;
}

static void *timer_main(void *unused) {
  (void)unused;
  conc_timer *batch[BATCH];
  uint64_t gens[BATCH];
  bool one_shot[BATCH];
  conc_time dues[BATCH];
  conc__lock(&timers.lock);
  timers.w = conc__waiter_self();
  for (;;) {
    conc_time now = conc_now();
    int n = pop_due(now, batch, gens, one_shot, dues);
    if (n == 0) {
      conc_time next = timers.len ? timers.heap[0]->when : CONC_NEVER;
      conc__waiter_arm(timers.w);
      timers.sleeping = true;
      conc__unlock(&timers.lock);
      conc__waiter_park(timers.w, next);
      conc__lock(&timers.lock);
      timers.sleeping = false;
      continue;
    }
    conc__unlock(&timers.lock);
    for (int i = 0; i < n; i++)
      fire_taken(batch[i], dues[i], gens[i], one_shot[i]);
    conc__lock(&timers.lock);
  }
  return NULL;
}

/* Starts the thread once. timers.lock held. */
static bool ensure_thread(void) {
  if (timers.started) return true;
  pthread_t tid;
  pthread_attr_t attr;
  CONC_CHECK(pthread_attr_init(&attr));
  CONC_CHECK(pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED));
  sigset_t old_mask; /* the thread blocks conc's signals (signal.c) */
  conc_signal_block(&old_mask);
  int rc = pthread_create(&tid, &attr, timer_main, NULL);
  conc_signal_restore(&old_mask);
  CONC_CHECK(pthread_attr_destroy(&attr));
  timers.started = rc == 0;
  return timers.started;
}

/* ---- start and stop ----------------------------------------------------- */

/* Unschedules t: 1 if it was scheduled. timers.lock held; the heap's
 * reference is returned to the caller through *drop_ref. */
static int unschedule(conc_timer *t) {
  atomic_fetch_add_explicit(&t->gen, 1, memory_order_release);
  if (t->index == NOT_SCHEDULED) return 0;
  heap_remove(t);
  conc__timers_busy_add(-1);
  return 1;
}

int conc_timer_start(conc_timer *t, conc_time when, conc_time period) {
  conc_waiter *wake = NULL;
  conc__lock(&timers.lock);
  int was = unschedule(t);
  if (!ensure_thread()) {
    conc__unlock(&timers.lock);
    if (was) conc_timer_release(t);
    return CONC_ETHREAD;
  }
  t->when = when;
  t->period = period;
  if (!was) timer_retain(t); /* the heap's reference */
  if (!heap_push(t)) {
    conc__unlock(&timers.lock);
    conc_timer_release(t);
    return CONC_ENOMEM;
  }
  conc__timers_busy_add(1); /* it may wake someone: no deadlock yet */
  if (t->index == 0 && timers.sleeping && conc__waiter_claim(timers.w, 0)) {
    timers.sleeping = false;
    wake = timers.w;
  }
  conc__unlock(&timers.lock);
  if (wake) conc__waiter_wake(wake);
  return was;
}

int conc_timer_stop(conc_timer *t) {
  conc__lock(&timers.lock);
  int was = unschedule(t);
  conc__unlock(&timers.lock);
  if (was) conc_timer_release(t); /* the heap's reference */
  return was;
}

/* ---- channel timers ----------------------------------------------------- */

/* The channel of t, retained, or NULL if it is gone: a channel being
 * destroyed clears t->chan under timers.lock before it is freed, and
 * until then its count is zero, which conc_try_retain sees. */
static conc_chan *chan_of(conc_timer *t) {
  conc__lock(&timers.lock);
  conc_chan *c = t->chan;
  if (c && !conc_try_retain((conc_obj *)c)) c = NULL;
  conc__unlock(&timers.lock);
  return c;
}

static void chan_fire(conc_timer *t, void *arg, conc_time now, uint64_t gen) {
  (void)arg;
  conc_chan *c = chan_of(t);
  if (c == NULL) return; /* nobody can receive it any more */
  conc_msg m;
  conc_waiter *wake = NULL;
  t->tick(&m, now);
  conc__lock(&c->lock);
  /* Checked under the channel lock: a stop that bumped gen drains the
   * channel after, under the same lock, so no stale value survives. */
  bool current = conc_timer_gen(t) == gen;
  int rc = current ? conc__chan_try_send(c, &m, &wake) : CONC_EAGAIN;
  if (current)
    atomic_store_explicit(&t->sent, rc == CONC_OK, memory_order_relaxed);
  conc__unlock(&c->lock);
  if (rc != CONC_OK) conc_msg_free(&m);
  if (wake) conc__waiter_wake(wake);
  conc_release((conc_obj *)c); /* may destroy it: no lock held */
}

conc_timer *conc_timer_new_chan(conc_chan *c, conc_tick_fn make) {
  if (c->timer != NULL) return NULL; /* a channel owns one timer at most */
  conc_timer *t = conc_timer_new(chan_fire, NULL, NULL);
  if (t == NULL) return NULL;
  t->tick = make;
  t->chan = c; /* weak: a ticker nobody can receive from stops */
  timer_retain(t); /* the channel's reference */
  c->timer = t;
  return t;
}

/*
 * Go 1.23: once a timer's deadline has passed, a receive from its
 * channel finds the value, a non-blocking one (select with default,
 * try_recv) too: the receiver runs the timer if the timer thread has not
 * yet. Called by every receive from a timer's channel (conc_chan_recv, a
 * select's receive case) before it takes the channel's lock. A firing
 * the timer thread has taken but not finished is waited for: it is a
 * lock and a send away, and the value must be there when this returns.
 */
void conc__timer_run_due(conc_timer *t) {
  conc_time now = conc_now();
  conc__lock(&timers.lock);
  while (t->in_flight > 0 &&
         t->flight_gen == atomic_load_explicit(&t->gen, memory_order_relaxed)) {
    conc__unlock(&timers.lock);
    sched_yield();
    conc__lock(&timers.lock);
  }
  if (t->index == NOT_SCHEDULED || t->when > now) {
    conc__unlock(&timers.lock);
    return;
  }
  bool one_shot;
  conc_time due;
  uint64_t gen = take_due(t, now, &one_shot, &due);
  conc__unlock(&timers.lock);
  fire_taken(t, due, gen, one_shot);
}

void conc__timer_chan_gone(conc_timer *t) {
  conc__lock(&timers.lock);
  t->chan = NULL;
  int was = unschedule(t);
  conc__unlock(&timers.lock);
  if (was) conc_timer_release(t); /* the heap's reference */
  /* The channel's reference: t lives until here, as the analyzer, which
   * does not follow reference counts, cannot tell. */
  conc_timer_release(t); /* NOLINT(clang-analyzer-unix.Malloc) */
}

int conc_timer_stop_chan(conc_timer *t, conc_chan *c) {
  conc__lock(&timers.lock);
  /* A firing in flight counts only for the stop that made it stale (a
   * second stop finds the generation moved on). */
  bool in_flight = t->in_flight > 0 &&
                   t->flight_gen ==
                       atomic_load_explicit(&t->gen, memory_order_relaxed);
  int was = unschedule(t);
  conc__unlock(&timers.lock);
  if (was) conc_timer_release(t); /* the heap's reference */
  conc_msg m;
  conc_waiter *wake;
  conc__lock(&c->lock);
  /* A firing under way that did not send (it has not decided yet, or
   * it saw our new generation) delivers nothing: the timer was active. */
  bool dropping = in_flight &&
                  !atomic_load_explicit(&t->sent, memory_order_relaxed);
  int drained = conc__chan_try_recv(c, &m, &wake) == CONC_OK;
  conc__unlock(&c->lock);
  if (drained) conc_msg_free(&m);
  if (wake) conc__waiter_wake(wake); /* a sender on C, if any */
  return was || dropping || drained;
}
