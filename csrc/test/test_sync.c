/*
 * test_sync.c: WaitGroup, Mutex, RWMutex, Cond and Once
 * (csrc/core/sync.c) without Lua.
 */
#include "peek.h"

static void rel(void *o) { conc_release((conc_obj *)o); }

/* Waits for a channel to be closed. */
static void wait_closed(conc_chan *c) {
  conc_msg m;
  CHECK_RC(conc_chan_recv(c, &m, CONC_NEVER), CONC_ECLOSED);
}

/* ---- WaitGroup --------------------------------------------------------- */

static void wg_counter_and_negative(void) {
  conc_wg *wg = conc_wg_new();
  CHECK_EQ(conc_wg_count(wg), 0);
  CHECK(conc_wg_wait_chan(wg) == NULL);  /* zero: nothing to wait for */
  CHECK_RC(conc_wg_add(wg, -1), CONC_ENEGATIVE);
  CHECK_EQ(conc_wg_count(wg), 0);        /* left unchanged */
  CHECK_RC(conc_wg_add(wg, 3), CONC_OK);
  CHECK_RC(conc_wg_add(wg, 0), CONC_OK);
  CHECK_EQ(conc_wg_count(wg), 3);
  conc_chan *z = conc_wg_wait_chan(wg);
  CHECK(z != NULL);
  conc_chan *z2 = conc_wg_wait_chan(wg);
  CHECK(z2 == z);                        /* one channel per round */
  CHECK_RC(conc_wg_add(wg, -4), CONC_ENEGATIVE);
  CHECK_EQ(conc_wg_count(wg), 3);
  CHECK_RC(conc_wg_add(wg, -2), CONC_OK);
  CHECK_EQ(conc_chan_closed(z), 0);
  CHECK_RC(conc_wg_add(wg, -1), CONC_OK);
  CHECK_EQ(conc_chan_closed(z), 1);
  CHECK_EQ(conc_wg_count(wg), 0);
  CHECK(conc_wg_wait_chan(wg) == NULL);
  /* A second round gets a fresh channel. */
  CHECK_RC(conc_wg_add(wg, 1), CONC_OK);
  conc_chan *z3 = conc_wg_wait_chan(wg);
  CHECK(z3 != NULL && conc_chan_closed(z3) == 0);
  CHECK_RC(conc_wg_add(wg, -1), CONC_OK);
  CHECK_EQ(conc_chan_closed(z3), 1);
  rel(z);
  rel(z2);
  rel(z3);
  rel(wg);
}

typedef struct wg_work {
  conc_wg *wg;
  atomic_long done;
  pthread_barrier_t go;
} wg_work;

static void *wg_worker(void *p) {
  wg_work *x = (wg_work *)p;
  pthread_barrier_wait(&x->go);
  atomic_fetch_add(&x->done, 1);
  CHECK_RC(conc_wg_add(x->wg, -1), CONC_OK);
  return NULL;
}

static void *wg_waiter(void *p) {
  wg_work *x = (wg_work *)p;
  conc_chan *z = conc_wg_wait_chan(x->wg);
  pthread_barrier_wait(&x->go);
  if (z) {
    wait_closed(z);
    rel(z);
  }
  CHECK_EQ(conc_wg_count(x->wg), 0);
  CHECK_EQ(atomic_load(&x->done), 8);  /* everyone's Done came first */
  return NULL;
}

static void wg_waiters_see_all_done(void) {
  for (long round = 0; round < scaled(20, 4); round++) {
    wg_work x;
    memset(&x, 0, sizeof x);
    x.wg = conc_wg_new();
    CHECK_RC(conc_wg_add(x.wg, 8), CONC_OK);
    CHECK_PT(pthread_barrier_init(&x.go, NULL, 8 + 3));
    pthread_t t[11];
    for (int i = 0; i < 3; i++) t[i] = spawn(wg_waiter, &x);
    for (int i = 3; i < 11; i++) t[i] = spawn(wg_worker, &x);
    for (int i = 0; i < 11; i++) join(t[i]);
    pthread_barrier_destroy(&x.go);
    rel(x.wg);
  }
}

/* ---- Mutex ------------------------------------------------------------- */

typedef struct counter {
  conc_mutex *mu;
  long value;     /* mu: a plain int, no atomics */
  long per_thread;
  pthread_barrier_t go;
} counter;

static void *mutex_incr(void *p) {
  counter *x = (counter *)p;
  pthread_barrier_wait(&x->go);
  for (long i = 0; i < x->per_thread; i++) {
    if (i % 16 == 0) {
      while (!conc_mutex_trylock(x->mu)) sched_yield();
    } else {
      conc_mutex_lock(x->mu);
    }
    x->value++;
    CHECK_RC(conc_mutex_unlock(x->mu), CONC_OK);
  }
  return NULL;
}

static void mutex_exact_counter(void) {
  counter x;
  memset(&x, 0, sizeof x);
  x.mu = conc_mutex_new();
  x.per_thread = 100000;
  CHECK_PT(pthread_barrier_init(&x.go, NULL, 4));
  pthread_t t[4];
  for (int i = 0; i < 4; i++) t[i] = spawn(mutex_incr, &x);
  for (int i = 0; i < 4; i++) join(t[i]);
  CHECK_EQ(x.value, 4 * x.per_thread);
  CHECK(conc_mutex_trylock(x.mu));  /* left unlocked */
  CHECK_RC(conc_mutex_unlock(x.mu), CONC_OK);
  pthread_barrier_destroy(&x.go);
  rel(x.mu);
}

/* A thread takes the mutex, holds it 20 us and takes it again at once
 * (an unlock wakes a waiter to try again, and the unlocker, running,
 * comes back first, as in Go); another's locks must not starve: once it
 * has waited 1 ms, the unlock hands the mutex to it. Its slowest lock is
 * bounded, with room for a loaded machine. */
typedef struct hammer {
  conc_mutex *mu;
  atomic_int stop;
  atomic_long taken;
} hammer;

static void spin_us(long us) {
  conc_time until = conc_now() + us * 1000;
  while (conc_now() < until) {
  }
}

static void *mutex_hammer(void *p) {
  hammer *h = (hammer *)p;
  while (!atomic_load(&h->stop)) {
    conc_mutex_lock(h->mu);
    atomic_fetch_add(&h->taken, 1);
    spin_us(20); /* held 20 us: a waiter parks */
    CHECK_RC(conc_mutex_unlock(h->mu), CONC_OK);
  }
  return NULL;
}

static void mutex_waiter_not_starved(void) {
  hammer h;
  memset(&h, 0, sizeof h);
  h.mu = conc_mutex_new();
  pthread_t t = spawn(mutex_hammer, &h);
  while (atomic_load(&h.taken) < 100) sched_yield(); /* at it */
  conc_time worst = 0;
  long rounds = scaled(500, 4);
  for (long i = 0; i < rounds; i++) {
    conc_time t0 = conc_now();
    conc_mutex_lock(h.mu);
    conc_time took = conc_now() - t0;
    CHECK_RC(conc_mutex_unlock(h.mu), CONC_OK);
    if (took > worst) worst = took;
    spin_us(50);
  }
  atomic_store(&h.stop, 1);
  join(t);
  CHECK(worst < 100 * CHECK_MS); /* ~1 ms; 4-90 ms without the hand-over */
  CHECK(conc_mutex_trylock(h.mu)); /* left unlocked */
  CHECK_RC(conc_mutex_unlock(h.mu), CONC_OK);
  rel(h.mu);
}

/* An unlock that wakes a waiter to try again, another still queued,
 * leaves the mutex free (LOCKED clear, WAITERS set): try_lock takes it,
 * as Go's TryLock does, before the woken waiter has run. It failed until
 * that waiter ran (a review's program: 48-190 rounds of 200). */
typedef struct lockers {
  conc_mutex *mu;
  atomic_int round, done;
} lockers;

static void *lock_each_round(void *p) {
  lockers *x = (lockers *)p;
  for (int r = 1; r <= 50; r++) {
    while (atomic_load(&x->round) < r) sched_yield();
    conc_mutex_lock(x->mu);
    CHECK_RC(conc_mutex_unlock(x->mu), CONC_OK);
    atomic_fetch_add(&x->done, 1);
  }
  return NULL;
}

static void mutex_trylock_with_waiters(void) {
  lockers x;
  memset(&x, 0, sizeof x);
  x.mu = conc_mutex_new();
  pthread_t t[2];
  for (int i = 0; i < 2; i++) t[i] = spawn(lock_each_round, &x);
  int taken = 0;
  for (int r = 1; r <= 50; r++) {
    conc_mutex_lock(x.mu);
    atomic_store(&x.done, 0);
    atomic_store(&x.round, r);
    while (conc__mutex_waiters(x.mu) < 2) sched_yield(); /* both queued */
    CHECK_RC(conc_mutex_unlock(x.mu), CONC_OK); /* wakes one to retry */
    if (conc_mutex_trylock(x.mu)) {
      taken++;
      CHECK_RC(conc_mutex_unlock(x.mu), CONC_OK);
    }
    while (atomic_load(&x.done) < 2) sched_yield();
  }
  for (int i = 0; i < 2; i++) join(t[i]);
  CHECK(taken > 25); /* the woken waiter wins only if it runs first */
  rel(x.mu);
}

static void mutex_trylock_unlock(void) {
  conc_mutex *mu = conc_mutex_new();
  CHECK_RC(conc_mutex_unlock(mu), CONC_ENOTLOCKED);
  CHECK(conc_mutex_trylock(mu));
  CHECK(!conc_mutex_trylock(mu));
  CHECK_RC(conc_mutex_unlock(mu), CONC_OK);
  CHECK_RC(conc_mutex_unlock(mu), CONC_ENOTLOCKED);
  conc_mutex_lock(mu);
  CHECK(!conc_mutex_trylock(mu));
  CHECK_RC(conc_mutex_unlock(mu), CONC_OK);
  rel(mu);
}

/* ---- RWMutex ----------------------------------------------------------- */

typedef struct rw {
  conc_rwmutex *m;
  pthread_barrier_t both;
  long a, b;          /* m: written together by writers */
  long rounds;
  atomic_long reads;
} rw;

/* Two readers hold the lock at once: each waits for the other inside. */
static void *rw_reader_meets(void *p) {
  rw *x = (rw *)p;
  conc_rwmutex_rlock(x->m);
  pthread_barrier_wait(&x->both);
  CHECK(!conc_rwmutex_trylock(x->m));  /* readers exclude a writer */
  pthread_barrier_wait(&x->both);
  CHECK_RC(conc_rwmutex_runlock(x->m), CONC_OK);
  return NULL;
}

static void rwmutex_shared_readers(void) {
  rw x;
  memset(&x, 0, sizeof x);
  x.m = conc_rwmutex_new();
  CHECK_PT(pthread_barrier_init(&x.both, NULL, 2));
  pthread_t a = spawn(rw_reader_meets, &x), b = spawn(rw_reader_meets, &x);
  join(a);
  join(b);
  CHECK_RC(conc_rwmutex_runlock(x.m), CONC_ENOTLOCKED);
  CHECK_RC(conc_rwmutex_unlock(x.m), CONC_ENOTLOCKED);
  CHECK(conc_rwmutex_trylock(x.m));
  CHECK(!conc_rwmutex_tryrlock(x.m));
  CHECK(!conc_rwmutex_trylock(x.m));
  CHECK_RC(conc_rwmutex_runlock(x.m), CONC_ENOTLOCKED);
  CHECK_RC(conc_rwmutex_unlock(x.m), CONC_OK);
  CHECK(conc_rwmutex_tryrlock(x.m));
  CHECK(conc_rwmutex_tryrlock(x.m));
  CHECK_RC(conc_rwmutex_runlock(x.m), CONC_OK);
  CHECK_RC(conc_rwmutex_runlock(x.m), CONC_OK);
  pthread_barrier_destroy(&x.both);
  rel(x.m);
}

static void *rw_writer(void *p) {
  rw *x = (rw *)p;
  for (long i = 0; i < x->rounds; i++) {
    conc_rwmutex_lock(x->m);
    x->a++;
    x->b++;
    CHECK_RC(conc_rwmutex_unlock(x->m), CONC_OK);
  }
  return NULL;
}

static void *rw_reader(void *p) {
  rw *x = (rw *)p;
  for (long i = 0; i < x->rounds; i++) {
    conc_rwmutex_rlock(x->m);
    CHECK_EQ(x->a, x->b);  /* never a half-done write */
    CHECK_RC(conc_rwmutex_runlock(x->m), CONC_OK);
    atomic_fetch_add(&x->reads, 1);
  }
  return NULL;
}

static void rwmutex_writers_exclude(void) {
  rw x;
  memset(&x, 0, sizeof x);
  x.m = conc_rwmutex_new();
  x.rounds = scaled(10000, 2);
  pthread_t t[4];
  t[0] = spawn(rw_writer, &x);
  t[1] = spawn(rw_writer, &x);
  t[2] = spawn(rw_reader, &x);
  t[3] = spawn(rw_reader, &x);
  for (int i = 0; i < 4; i++) join(t[i]);
  CHECK_EQ(x.a, 2 * x.rounds);
  CHECK_EQ(x.b, 2 * x.rounds);
  CHECK_EQ(atomic_load(&x.reads), 2 * x.rounds);
  rel(x.m);
}

typedef struct rw_pref {
  conc_rwmutex *m;
  atomic_int writer_in;
} rw_pref;

static void *rw_pref_writer(void *p) {
  rw_pref *x = (rw_pref *)p;
  conc_rwmutex_lock(x->m);
  atomic_store(&x->writer_in, 1);
  CHECK_RC(conc_rwmutex_unlock(x->m), CONC_OK);
  return NULL;
}

/* A waiting writer keeps new readers out (writers do not starve), and
 * gets the lock when the last reader leaves. */
static void rwmutex_writer_preference(void) {
  rw_pref x;
  memset(&x, 0, sizeof x);
  x.m = conc_rwmutex_new();
  conc_rwmutex_rlock(x.m);
  pthread_t w = spawn(rw_pref_writer, &x);
  /* New readers get in until the writer queues, then never. */
  while (conc_rwmutex_tryrlock(x.m)) {
    CHECK_RC(conc_rwmutex_runlock(x.m), CONC_OK);
    sched_yield();
  }
  CHECK(!conc_rwmutex_tryrlock(x.m));
  CHECK_EQ(atomic_load(&x.writer_in), 0);
  CHECK_RC(conc_rwmutex_runlock(x.m), CONC_OK);  /* the last reader */
  join(w);
  CHECK_EQ(atomic_load(&x.writer_in), 1);
  CHECK(conc_rwmutex_tryrlock(x.m));
  CHECK_RC(conc_rwmutex_runlock(x.m), CONC_OK);
  rel(x.m);
}

/* ---- Cond -------------------------------------------------------------- */

#define CW 5

typedef struct cv {
  conc_mutex *mu;
  conc_cond *cond;
  int waiting, woken, go;   /* mu */
} cv;

/* Counts raw wake-ups: no predicate loop, so an extra wake shows. */
static void *cond_waiter_once(void *p) {
  cv *x = (cv *)p;
  conc_mutex_lock(x->mu);
  x->waiting++;
  CHECK_RC(conc_cond_wait(x->cond), CONC_OK);
  x->woken++;
  CHECK_RC(conc_mutex_unlock(x->mu), CONC_OK);
  return NULL;
}

/* Waits until n waiters sit in conc_cond_wait: a waiter counts itself
 * and is queued before it releases the mutex, so holding the mutex with
 * waiting == n means all n are queued. */
static void wait_waiting(cv *x, int n) {
  for (;;) {
    conc_mutex_lock(x->mu);
    int w = x->waiting;
    CHECK_RC(conc_mutex_unlock(x->mu), CONC_OK);
    if (w >= n) return;
    sched_yield();
  }
}

static int woken(cv *x) {
  conc_mutex_lock(x->mu);
  int n = x->woken;
  CHECK_RC(conc_mutex_unlock(x->mu), CONC_OK);
  return n;
}

static void cond_signal_wakes_one(void) {
  cv x;
  memset(&x, 0, sizeof x);
  x.mu = conc_mutex_new();
  x.cond = conc_cond_new(x.mu);
  CHECK(conc_cond_mutex(x.cond) == x.mu);
  conc_cond_signal(x.cond);  /* nobody waits: a no-op */
  pthread_t t[CW];
  for (int i = 0; i < CW; i++) t[i] = spawn(cond_waiter_once, &x);
  wait_waiting(&x, CW);
  for (int k = 1; k <= CW; k++) {
    conc_mutex_lock(x.mu);
    conc_cond_signal(x.cond);
    CHECK(x.woken <= k - 1);  /* it needs the mutex we hold */
    CHECK_RC(conc_mutex_unlock(x.mu), CONC_OK);
    int n;
    while ((n = woken(&x)) < k) sched_yield();
    CHECK_EQ(n, k);  /* one signal, one waiter */
  }
  for (int i = 0; i < CW; i++) join(t[i]);
  rel(x.cond);
  rel(x.mu);
}

static void cond_broadcast_wakes_all(void) {
  cv x;
  memset(&x, 0, sizeof x);
  x.mu = conc_mutex_new();
  x.cond = conc_cond_new(x.mu);
  pthread_t t[CW];
  for (int i = 0; i < CW; i++) t[i] = spawn(cond_waiter_once, &x);
  wait_waiting(&x, CW);
  conc_cond_broadcast(x.cond);
  for (int i = 0; i < CW; i++) join(t[i]);
  CHECK_EQ(x.woken, CW);
  CHECK_RC(conc_cond_wait(x.cond), CONC_ENOTLOCKED);  /* mutex not held */
  rel(x.cond);
  rel(x.mu);  /* the cond retained it: it outlived the cond's own ref */
}

/* A bounded queue: producer and consumers wait on conditions with
 * predicate loops; every item is consumed exactly once. */
typedef struct cq {
  conc_mutex *mu;
  conc_cond *not_empty;
  long items, consumed, sum, produced_sum;  /* mu */
  int closed;                               /* mu */
  long total;
} cq;

static void *cq_consumer(void *p) {
  cq *x = (cq *)p;
  conc_mutex_lock(x->mu);
  for (;;) {
    while (x->items == 0 && !x->closed)
      CHECK_RC(conc_cond_wait(x->not_empty), CONC_OK);
    if (x->items == 0) break;
    x->sum += x->items--;
    x->consumed++;
  }
  CHECK_RC(conc_mutex_unlock(x->mu), CONC_OK);
  return NULL;
}

static void cond_queue(void) {
  cq x;
  memset(&x, 0, sizeof x);
  x.mu = conc_mutex_new();
  x.not_empty = conc_cond_new(x.mu);
  x.total = scaled(20000, 5);
  pthread_t t[3];
  for (int i = 0; i < 3; i++) t[i] = spawn(cq_consumer, &x);
  for (long i = 0; i < x.total; i++) {
    conc_mutex_lock(x.mu);
    x.items++;
    x.produced_sum += x.items;
    conc_cond_signal(x.not_empty);
    CHECK_RC(conc_mutex_unlock(x.mu), CONC_OK);
  }
  conc_mutex_lock(x.mu);
  x.closed = 1;
  conc_cond_broadcast(x.not_empty);
  CHECK_RC(conc_mutex_unlock(x.mu), CONC_OK);
  for (int i = 0; i < 3; i++) join(t[i]);
  CHECK_EQ(x.consumed, x.total);
  CHECK_EQ(x.items, 0);
  rel(x.not_empty);
  rel(x.mu);
}

/* ---- Once -------------------------------------------------------------- */

#define ONCE_T 6

typedef struct once_race {
  conc_once *o;
  pthread_barrier_t go;
  atomic_int runs, waits, dones;
  int failed;
} once_race;

static void *once_thread(void *p) {
  once_race *x = (once_race *)p;
  conc_chan *wait = NULL;
  pthread_barrier_wait(&x->go);
  int st = conc_once_begin(x->o, &wait);
  if (st == CONC_ONCE_RUN) {
    atomic_fetch_add(&x->runs, 1);
    conc_msg outcome;
    msg_int_big(&outcome, 4242, 100);
    conc_once_finish(x->o, &outcome, x->failed);
  } else if (st == CONC_ONCE_WAIT) {
    atomic_fetch_add(&x->waits, 1);
    wait_closed(wait);
    rel(wait);
  } else {
    CHECK_EQ(st, CONC_ONCE_DONE);
    atomic_fetch_add(&x->dones, 1);
  }
  conc_msg out;
  CHECK_EQ(conc_once_outcome(x->o, &out), x->failed);
  CHECK_EQ(msg_take_int(&out), 4242);
  return NULL;
}

static void once_runs_once(void) {
  for (long round = 0; round < scaled(40, 4); round++) {
    once_race x;
    memset(&x, 0, sizeof x);
    x.o = conc_once_new();
    x.failed = (int)(round % 2);
    CHECK_PT(pthread_barrier_init(&x.go, NULL, ONCE_T));
    pthread_t t[ONCE_T];
    for (int i = 0; i < ONCE_T; i++) t[i] = spawn(once_thread, &x);
    for (int i = 0; i < ONCE_T; i++) join(t[i]);
    CHECK_EQ(atomic_load(&x.runs), 1);
    CHECK_EQ(atomic_load(&x.runs) + atomic_load(&x.waits) +
                 atomic_load(&x.dones),
             ONCE_T);
    conc_chan *wait = NULL;
    CHECK_EQ(conc_once_begin(x.o, &wait), CONC_ONCE_DONE);
    CHECK(wait == NULL);
    pthread_barrier_destroy(&x.go);
    rel(x.o);
  }
  conc_once *o = conc_once_new();  /* dropped before it ever ran */
  rel(o);
  o = conc_once_new();             /* dropped while "running" */
  conc_chan *wait = NULL;
  CHECK_EQ(conc_once_begin(o, &wait), CONC_ONCE_RUN);
  CHECK_EQ(conc_once_begin(o, &wait), CONC_ONCE_WAIT);
  CHECK(wait != NULL && !conc_chan_closed(wait));
  conc_msg outcome;
  msg_int(&outcome, 1);
  conc_once_finish(o, &outcome, 0);
  wait_closed(wait);
  rel(wait);
  rel(o);
}

static const check_test tests[] = {
    {"wg_counter_and_negative", wg_counter_and_negative},
    {"wg_waiters_see_all_done", wg_waiters_see_all_done},
    {"mutex_exact_counter", mutex_exact_counter},
    {"mutex_waiter_not_starved", mutex_waiter_not_starved},
    {"mutex_trylock_with_waiters", mutex_trylock_with_waiters},
    {"mutex_trylock_unlock", mutex_trylock_unlock},
    {"rwmutex_shared_readers", rwmutex_shared_readers},
    {"rwmutex_writers_exclude", rwmutex_writers_exclude},
    {"rwmutex_writer_preference", rwmutex_writer_preference},
    {"cond_signal_wakes_one", cond_signal_wakes_one},
    {"cond_broadcast_wakes_all", cond_broadcast_wakes_all},
    {"cond_queue", cond_queue},
    {"once_runs_once", once_runs_once},
    {NULL, NULL}};

int main(int argc, char **argv) {
  return check_main("test_sync", tests, argc, argv);
}
