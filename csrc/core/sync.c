/*
 * sync.c: Go's sync package: WaitGroup, Mutex, RWMutex, Cond, Once.
 *
 * Blocking goes through the waiter, as everywhere: a WaitGroup's and a
 * Once's waiters wait for a channel to be closed (so they compose with a
 * context's done channel in a select); mutexes and conds keep wait queues
 * of sudogs and hand ownership directly to the waiter they wake.
 *
 * Locking: each object has one internal lock (`lock`), a leaf, except
 * that conc_cond_wait releases the cond's lock before it touches the
 * mutex.
 */
#include "internal.h"

/* ---- WaitGroup ---------------------------------------------------------- */

struct conc_wg {
  conc_obj hdr;
  atomic_llong count;   /* changed with atomics; zero handled under lock */
  atomic_bool waiting;  /* set (under lock) when a waiter made `zero` */
  conc__lock_t lock;
  conc_chan *zero;      /* lock: closed when count reaches 0, or NULL */
};

static void wg_destroy(conc_obj *o) {
  conc_wg *wg = (conc_wg *)o;
  if (wg->zero) conc_release((conc_obj *)wg->zero);
  free(wg);
}

const conc_type conc_wg_type = {"conc.waitgroup", wg_destroy};

conc_wg *conc_wg_new(void) {
  conc_wg *wg = calloc(1, sizeof *wg);
  if (wg == NULL) return NULL;
  conc_obj_init(&wg->hdr, &conc_wg_type);
  return wg;
}

int conc_wg_add(conc_wg *wg, int64_t delta) {
  long long old = atomic_load(&wg->count), v;
  do {  /* checked before it changes: a misuse leaves it as it was */
    if (__builtin_add_overflow(old, (long long)delta, &v))
      return CONC_EOVERFLOW;
    if (v < 0) return CONC_ENEGATIVE;
  } while (!atomic_compare_exchange_weak(&wg->count, &old, v));
  /* Reaching zero with nobody waiting costs nothing more. (Sequentially
   * consistent with the waiter's store of `waiting` and load of count:
   * one of the two sees the other.) */
  if (v > 0 || delta == 0 || !atomic_load(&wg->waiting)) return CONC_OK;
  conc_chan *zero = NULL;
  conc__lock(&wg->lock);
  if (atomic_load(&wg->count) == 0) {  /* still zero: release waiters */
    zero = wg->zero;
    wg->zero = NULL;
    atomic_store(&wg->waiting, false);
  }
  conc__unlock(&wg->lock);
  if (zero) {
    conc__chan_close_owned(zero);
    conc_release((conc_obj *)zero);
  }
  return CONC_OK;
}

int64_t conc_wg_count(conc_wg *wg) { return atomic_load(&wg->count); }

/* The counter's reaching zero detaches `zero` under the lock before it
 * closes it, and a waiter's reference keeps its address from being
 * reused: a detached c was released. */
int conc_wg_released(conc_wg *wg, conc_chan *c) {
  conc__lock(&wg->lock);
  int released = wg->zero != c;
  conc__unlock(&wg->lock);
  return released;
}

conc_chan *conc_wg_wait_chan(conc_wg *wg) {
  conc_chan *c = NULL;
  conc__lock(&wg->lock);
  atomic_store(&wg->waiting, true);
  if (atomic_load(&wg->count) != 0) {
    if (wg->zero == NULL && (wg->zero = conc__chan_new_owned(0)) == NULL)
      conc__fatal("conc_wg_wait_chan: malloc", 12);
    c = wg->zero;
    conc_retain((conc_obj *)c);
  }
  conc__unlock(&wg->lock);
  return c;
}

/* ---- Mutex -------------------------------------------------------------- */

enum { LOCKED = 1, WAITERS = 2 };

/*
 * state: LOCKED while held; WAITERS while the queue may not be empty (set
 * and cleared only under `lock`). Go's two modes: an unlock with waiters
 * releases the mutex and wakes the first waiter to try again, and it
 * competes with the tasks that come for it meanwhile (one that loses goes
 * back to the head of the queue); but once that waiter has waited
 * STARVING_NS (Go's starvationThresholdNs), the unlock hands the mutex to
 * it directly (it stays LOCKED), so no waiter starves. Handing it over
 * every time made every contended lock wait for a sleeper's wake-up: 1,000
 * tasks x 100 lock/unlock took 74-107 ms on 2 Ps (now 26-37), 20-24 ms
 * on one (bench/RESULTS.md, eleventh stop).
 */
#define STARVING_NS 1000000

struct conc_mutex {
  conc_obj hdr;
  atomic_int state;
  conc__lock_t lock;
  conc_waitq waiters; /* lock */
};

static void mutex_destroy(conc_obj *o) {
  conc_mutex *m = (conc_mutex *)o;
  free(m);
}

const conc_type conc_mutex_type = {"conc.mutex", mutex_destroy};

conc_mutex *conc_mutex_new(void) {
  conc_mutex *m = calloc(1, sizeof *m);
  if (m == NULL) return NULL;
  conc_obj_init(&m->hdr, &conc_mutex_type);
  return m;
}

int conc__mutex_waiters(conc_mutex *m) {
  conc__lock(&m->lock);
  int n = 0;
  for (const conc_sudog *sd = m->waiters.head; sd; sd = sd->next) n++;
  conc__unlock(&m->lock);
  return n;
}

/* Free is LOCKED clear: an unlock that woke a waiter to try again leaves
 * WAITERS set with the mutex free (Go's TryLock looks at locked and
 * starving alone). */
int conc_mutex_trylock(conc_mutex *m) {
  int s = atomic_load_explicit(&m->state, memory_order_relaxed);
  while (!(s & LOCKED))
    if (atomic_compare_exchange_weak(&m->state, &s, s | LOCKED)) return 1;
  return 0;
}

/* Parks on q (lock held by the caller, released here) until handed the
 * object; the waker completes the acquisition for us. An abortable wait
 * (the main script's mutex lock) may instead be ended by an interrupt or
 * a deadlock: it then unlinks its sudog (a waker that finds it claimed
 * skips it) and returns that code, without the object. */
static int park_on(conc__lock_t *lock, conc_waitq *q, const char *what,
                   const void *obj, bool abortable) {
  conc_waiter *w = conc__waiter_self();
  conc_sudog sd = {0};
  sd.w = w;
  conc__waiter_arm(w);
  conc__waiting_on(w, what, obj, abortable);
  conc__waitq_push(q, &sd);
  conc__unlock(lock);
  int fired = conc__waiter_park(w, CONC_NEVER);
  if (fired >= 0) return CONC_OK;
  conc__lock(lock);
  conc__waitq_remove(q, &sd);
  conc__unlock(lock);
  return conc__abort_code(fired);
}

/* A mutex waiter: its sudog (first: the queue links it) and when it
 * first parked. */
typedef struct mutex_wait {
  conc_sudog sd;
  conc_time since;
} mutex_wait;

/* Parks on m's queue (m->lock held, released here), at its head for a
 * waiter that lost the mutex after a wake-up. CONC_OK: handed the mutex;
 * CONC_EAGAIN: woken to try again; or an abort's code (unlinked). */
static int mutex_park(conc_mutex *m, mutex_wait *mw, bool abortable) {
  conc_waiter *w = conc__waiter_self();
  bool again = mw->since != 0;
  mw->sd = (conc_sudog){0};
  mw->sd.w = w;
  if (!again) mw->since = conc_now();
  conc__waiter_arm(w);
  conc__waiting_on(w, "mutex lock", m, abortable);
  if (again) conc__waitq_push_front(&m->waiters, &mw->sd);
  else conc__waitq_push(&m->waiters, &mw->sd);
  conc__unlock(&m->lock);
  int fired = conc__waiter_park(w, CONC_NEVER);
  if (fired >= 0) return mw->sd.ok == CONC_SUDOG_DONE ? CONC_OK : CONC_EAGAIN;
  conc__lock(&m->lock);
  conc__waitq_remove(&m->waiters, &mw->sd);
  conc__unlock(&m->lock);
  return conc__abort_code(fired);
}

/* A lock left with WAITERS set and an empty queue (an aborted waiter
 * unlinked itself) is still correct: the next unlock takes the slow path
 * and clears it. */
static int mutex_lock(conc_mutex *m, bool abortable) {
  if (conc_mutex_trylock(m)) return CONC_OK;
  mutex_wait mw = {.since = 0};
  conc__lock(&m->lock);
  for (;;) {
    int s = atomic_load(&m->state);
    if (!(s & LOCKED)) {
      if (atomic_compare_exchange_weak(&m->state, &s, s | LOCKED)) {
        conc__unlock(&m->lock);
        return CONC_OK;
      }
    } else if (atomic_compare_exchange_weak(&m->state, &s, s | WAITERS)) {
      int rc = mutex_park(m, &mw, abortable);
      if (rc == CONC_OK) return rc; /* handed the mutex */
      /* Not abortable (a cond wait taking its mutex back), yet claimed by
       * an abort that read the flags of the wait before: it must hold
       * the mutex when it returns, so it queues again. */
      if (rc != CONC_EAGAIN && abortable) return rc;
      conc__lock(&m->lock); /* woken to try again */
    }
  }
}

int conc_mutex_lock(conc_mutex *m) { return mutex_lock(m, true); }

int conc_mutex_unlock(conc_mutex *m) {
  int s = LOCKED;
  if (atomic_compare_exchange_strong(&m->state, &s, 0)) return CONC_OK;
  if (!(s & LOCKED)) return CONC_ENOTLOCKED;
  conc__lock(&m->lock);
  conc_sudog *next = conc__waitq_claim(&m->waiters);
  int more = m->waiters.head != NULL ? WAITERS : 0;
  if (next != NULL && conc_now() - ((mutex_wait *)next)->since >= STARVING_NS) {
    next->ok = CONC_SUDOG_DONE; /* it owns the mutex now */
    atomic_store(&m->state, LOCKED | more);
  } else {
    if (next != NULL) next->ok = CONC_SUDOG_RETRY;
    atomic_store(&m->state, more);
  }
  conc__unlock(&m->lock);
  if (next) conc__waiter_wake(next->w);
  return CONC_OK;
}

/* ---- RWMutex ------------------------------------------------------------ */

/*
 * Writer preference: a reader that arrives while a writer waits queues
 * behind it, so writers do not starve; a writer's unlock admits every
 * waiting reader before the next writer, so readers do not starve either.
 * All fields are guarded by `lock`.
 */
struct conc_rwmutex {
  conc_obj hdr;
  conc__lock_t lock;
  int readers; /* readers holding it */
  bool writer; /* a writer holds it */
  int writers_waiting;
  conc_waitq rq, wq;
};

static void rw_destroy(conc_obj *o) {
  conc_rwmutex *m = (conc_rwmutex *)o;
  free(m);
}

const conc_type conc_rwmutex_type = {"conc.rwmutex", rw_destroy};

conc_rwmutex *conc_rwmutex_new(void) {
  conc_rwmutex *m = calloc(1, sizeof *m);
  if (m == NULL) return NULL;
  conc_obj_init(&m->hdr, &conc_rwmutex_type);
  return m;
}

static bool can_read(conc_rwmutex *m) {
  return !m->writer && m->writers_waiting == 0;
}

/* An aborted reader only unlinked itself: it was never counted. */
int conc_rwmutex_rlock(conc_rwmutex *m) {
  conc__lock(&m->lock);
  if (can_read(m)) {
    m->readers++;
    conc__unlock(&m->lock);
    return CONC_OK;
  }
  return park_on(&m->lock, &m->rq, "rwmutex rlock", m, true);
}

int conc_rwmutex_tryrlock(conc_rwmutex *m) {
  conc__lock(&m->lock);
  bool ok = can_read(m);
  if (ok) m->readers++;
  conc__unlock(&m->lock);
  return ok;
}

static conc_sudog *admit_readers(conc_rwmutex *m);
static void wake_all(conc_sudog *list);

/* An aborted writer no longer waits: readers it held back (writer
 * preference) are admitted if nothing else holds them back now. */
int conc_rwmutex_lock(conc_rwmutex *m) {
  conc__lock(&m->lock);
  if (!m->writer && m->readers == 0) {
    m->writer = true;
    conc__unlock(&m->lock);
    return CONC_OK;
  }
  m->writers_waiting++;
  int rc = park_on(&m->lock, &m->wq, "rwmutex lock", m, true);
  if (rc == CONC_OK) return CONC_OK; /* handed it */
  conc__lock(&m->lock);
  m->writers_waiting--;
  conc_sudog *readers = can_read(m) ? admit_readers(m) : NULL;
  conc__unlock(&m->lock);
  wake_all(readers);
  return rc;
}

int conc_rwmutex_trylock(conc_rwmutex *m) {
  conc__lock(&m->lock);
  bool ok = !m->writer && m->readers == 0;
  if (ok) m->writer = true;
  conc__unlock(&m->lock);
  return ok;
}

/* Hands the lock to the next writer (lock held); its waiter, or NULL. */
static conc_waiter *admit_writer(conc_rwmutex *m) {
  conc_sudog *s = conc__waitq_claim(&m->wq);
  if (s == NULL) return NULL;
  m->writers_waiting--;
  m->writer = true;
  return s->w;
}

int conc_rwmutex_runlock(conc_rwmutex *m) {
  conc__lock(&m->lock);
  if (m->readers == 0) {
    conc__unlock(&m->lock);
    return CONC_ENOTLOCKED;
  }
  conc_waiter *wake = NULL;
  if (--m->readers == 0) wake = admit_writer(m);
  conc__unlock(&m->lock);
  if (wake) conc__waiter_wake(wake);
  return CONC_OK;
}

/* Claims every waiting reader and counts it in (lock held); the list
 * to wake after unlocking. */
static conc_sudog *admit_readers(conc_rwmutex *m) {
  conc_sudog *readers = NULL, *s;
  while ((s = conc__waitq_claim(&m->rq)) != NULL) {
    m->readers++;
    s->next = readers;
    readers = s;
  }
  return readers;
}

static void wake_all(conc_sudog *list) {
  while (list) {
    conc_sudog *next = list->next; /* read before its owner returns */
    conc__waiter_wake(list->w);
    list = next;
  }
}

int conc_rwmutex_unlock(conc_rwmutex *m) {
  conc__lock(&m->lock);
  if (!m->writer) {
    conc__unlock(&m->lock);
    return CONC_ENOTLOCKED;
  }
  m->writer = false;
  conc_sudog *readers = admit_readers(m); /* readers first */
  conc_waiter *wake = readers ? NULL : admit_writer(m);
  conc__unlock(&m->lock);
  wake_all(readers);
  if (wake) conc__waiter_wake(wake);
  return CONC_OK;
}

/* ---- Cond --------------------------------------------------------------- */

struct conc_cond {
  conc_obj hdr;
  conc_mutex *m; /* retained */
  conc__lock_t lock;
  conc_waitq waiters; /* lock */
};

static void cond_destroy(conc_obj *o) {
  conc_cond *c = (conc_cond *)o;
  conc_release(&c->m->hdr);
  free(c);
}

const conc_type conc_cond_type = {"conc.cond", cond_destroy};

conc_cond *conc_cond_new(conc_mutex *m) {
  conc_cond *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  conc_obj_init(&c->hdr, &conc_cond_type);
  conc_retain(&m->hdr);
  c->m = m;
  return c;
}

conc_mutex *conc_cond_mutex(conc_cond *c) { return c->m; }

int conc_cond_wait(conc_cond *c) {
  if (!(atomic_load(&c->m->state) & LOCKED)) return CONC_ENOTLOCKED;
  conc_waiter *w = conc__waiter_self();
  conc_sudog sd = {0};
  sd.w = w;
  conc__waiter_arm(w);
  conc__waiting_on(w, "cond wait", c, true);
  conc__lock(&c->lock);
  conc__waitq_push(&c->waiters, &sd); /* queued before the unlock: */
  conc__unlock(&c->lock); /* no signal can be missed */
  conc_mutex_unlock(c->m);
  int fired = conc__waiter_park(w, CONC_NEVER);
  if (fired < 0) { /* aborted: a signal now skips it (it is claimed) */
    conc__lock(&c->lock);
    conc__waitq_remove(&c->waiters, &sd);
    conc__unlock(&c->lock);
  }
  mutex_lock(c->m, false); /* Wait returns holding it, always */
  return fired < 0 ? conc__abort_code(fired) : CONC_OK;
}

void conc_cond_signal(conc_cond *c) {
  conc__lock(&c->lock);
  conc_sudog *s = conc__waitq_claim(&c->waiters);
  conc_waiter *w = s ? s->w : NULL;
  conc__unlock(&c->lock);
  if (w) conc__waiter_wake(w);
}

void conc_cond_broadcast(conc_cond *c) {
  conc_sudog *list = NULL, *s;
  conc__lock(&c->lock);
  while ((s = conc__waitq_claim(&c->waiters)) != NULL) {
    s->next = list;
    list = s;
  }
  conc__unlock(&c->lock);
  while (list) {
    conc_sudog *next = list->next;
    conc__waiter_wake(list->w);
    list = next;
  }
}

/* ---- Once --------------------------------------------------------------- */

enum { ONCE_NEW, ONCE_RUNNING, ONCE_DONE };

struct conc_once {
  conc_obj hdr;
  conc__lock_t lock;
  int state; /* lock */
  int failed; /* written before DONE, then read-only */
  conc_msg outcome; /* likewise */
  conc_chan *done; /* closed when the runner finishes */
};

static void once_destroy(conc_obj *o) {
  conc_once *x = (conc_once *)o;
  if (x->state == ONCE_DONE) conc_msg_free(&x->outcome);
  conc_release((conc_obj *)x->done);
  free(x);
}

const conc_type conc_once_type = {"conc.once", once_destroy};

conc_once *conc_once_new(void) {
  conc_once *x = calloc(1, sizeof *x);
  if (x == NULL) return NULL;
  x->done = conc__chan_new_owned(0);
  if (x->done == NULL) {
    free(x);
    return NULL;
  }
  conc_obj_init(&x->hdr, &conc_once_type);
  return x;
}

int conc_once_begin(conc_once *x, conc_chan **wait) {
  conc__lock(&x->lock);
  int st = x->state;
  if (st == ONCE_NEW) x->state = ONCE_RUNNING;
  conc__unlock(&x->lock);
  if (st == ONCE_NEW) return CONC_ONCE_RUN;
  if (st == ONCE_DONE) return CONC_ONCE_DONE;
  conc_retain((conc_obj *)x->done);
  *wait = x->done;
  return CONC_ONCE_WAIT;
}

void conc_once_finish(conc_once *x, conc_msg *outcome, int failed) {
  conc__lock(&x->lock);
  x->outcome = *outcome;
  x->failed = failed;
  x->state = ONCE_DONE;
  conc__unlock(&x->lock);
  conc__chan_close_owned(x->done);
}

int conc_once_outcome(conc_once *x, conc_msg *out) {
  if (conc_msg_copy(out, &x->outcome) != CONC_OK)
    conc__fatal("conc_once_outcome: malloc", 12);
  return x->failed;
}
