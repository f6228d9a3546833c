/*
 * waiter.c: the one way a thread blocks in conc, plus the clock.
 *
 * Each thread has one waiter (thread-local, so it lives exactly as long as
 * the thread). Parking spins briefly first: on a multi-core machine the
 * partner of a rendezvous usually answers within a microsecond or two,
 * and a futex sleep plus wake costs several. Only then does it sleep on
 * the futex word `state`.
 *
 * Lifetime: a waker may call futex_wake on `state` after the waiter has
 * seen WOKEN and returned, even after its thread has exited. So waiters
 * are never freed: a thread's waiter goes back to a free list when the
 * thread exits and is reused by a later thread. A stray wake-up of a
 * reused waiter is harmless: every sleeper re-checks its state and loops.
 */
#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "internal.h"

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#else
#error "conc's waiter needs Linux futexes; port conc__waiter_park first"
#endif


/* How long a parking thread spins before it sleeps, in nanoseconds. */
#define SPIN_NS 20000

/* A plain wait's hand-off stays on the waiter's first line for messages
 * of up to 8 bytes (an integer; see struct conc_waiter). */
_Static_assert(sizeof(conc_sudog) == 40, "the sudog packs into 40 bytes");
_Static_assert(offsetof(conc_waiter, slot.u) == 56,
               "the waiter's first line ends with 8 bytes of the slot");

static CONC_TLS conc_waiter *tls_waiter;
static pthread_key_t waiter_key;
static pthread_once_t waiter_key_once = PTHREAD_ONCE_INIT;
static conc__lock_t free_lock = CONC_LOCK_INIT;
static conc_waiter *free_waiters;  /* free_lock */
static CONC_TLS uint64_t tls_rand;
static int ncpu;  /* the processors it may use (once: ncpu_once) */
static pthread_once_t ncpu_once = PTHREAD_ONCE_INIT;

void conc__fatal(const char *what, int err) {
  char buf[128];  /* strerror_r: strerror is not thread-safe (GNU's
                   * returns the text, in buf or static) */
  fprintf(stderr, "conc: fatal: %s failed: %s\n", what,
          strerror_r(err, buf, sizeof buf));
  abort();
}

const char *conc_strerror(int code) {
  switch (code) {
    case CONC_OK: return "ok";
#define CONC_ERRNO_TEXT(name, c, text) case CONC_##name: return text;
      CONC_ERRNO_MAP(CONC_ERRNO_TEXT)
#undef CONC_ERRNO_TEXT
    default: return "unknown error";
  }
}

/* ---- clock ------------------------------------------------------------- */

conc_time conc_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (conc_time)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Below this many seconds, seconds * 1e9 fits int64 (9.2e18 < 2^63). */
#define SECONDS_FIT 9.2e9

conc_time conc_duration(double seconds) {
  if (!(seconds > 0)) return 0;  /* NaN too */
  if (seconds >= SECONDS_FIT) return CONC_LATEST;  /* +inf too */
  conc_time ns = (conc_time)(seconds * 1e9);
  return ns > 0 ? ns : 1;
}

conc_time conc_deadline_at(double seconds) {
  if (!(seconds > 0)) return CONC_NOWAIT;
  return conc_duration(seconds);
}

conc_time conc_deadline_in(double seconds) {
  if (!(seconds > 0)) return CONC_NOWAIT;
  return conc__time_add(conc_now(), conc_duration(seconds));
}

static struct timespec to_timespec(conc_time t) {
  struct timespec ts;
  ts.tv_sec = (time_t)(t / 1000000000);
  ts.tv_nsec = (long)(t % 1000000000);
  return ts;
}

/* ---- random numbers (xorshift64*, per thread) --------------------------- */

uint32_t conc__rand(void) {
  uint64_t x = tls_rand;
  if (x == 0) x = (uint64_t)conc_now() ^ (uint64_t)(uintptr_t)&tls_rand ^ 1;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  tls_rand = x;
  return (uint32_t)((x * 0x2545F4914F6CDD1DULL) >> 32);
}

/* ---- the waiter --------------------------------------------------------- */

/* The thread exits: its waiter goes back on the free list. */
static void waiter_exit(void *p) {
  conc_waiter *w = (conc_waiter *)p;
  /* A thread still counted as a Lua thread (a host's thread that ran a
   * main state: it counts until it ends) leaves the count and the list
   * of threads first: its waiter is about to be reused. */
  if (w->counted) conc__thread_gone(w);
  conc__main_waiter_gone(w);
  tls_waiter = NULL;  /* a later destructor must not use the freed one */
  conc__waiter_release(w);
}

void conc__waiter_release(conc_waiter *w) {
  conc__lock(&free_lock);
  w->next_free = free_waiters;
  free_waiters = w;
  conc__unlock(&free_lock);
}

static void make_waiter_key(void) {
  CONC_CHECK(pthread_key_create(&waiter_key, waiter_exit));
}

conc_waiter *conc__waiter_new(void) {
  CONC_CHECK(pthread_once(&waiter_key_once, make_waiter_key));
  conc__lock(&free_lock);
  conc_waiter *w = free_waiters;
  if (w) free_waiters = w->next_free;
  conc__unlock(&free_lock);
  if (w == NULL) {
    w = aligned_alloc(_Alignof(conc_waiter), sizeof *w);  /* its lines */
    if (w != NULL) {
      memset(w, 0, sizeof *w);
      CONC_HB_FUTEX_WORD(&w->state);  /* never freed */
    }
  }
  return w;
}

void conc__waiter_adopt(conc_waiter *w) {
  CONC_CHECK(pthread_setspecific(waiter_key, w));
  tls_waiter = w;
}

conc_waiter *conc__waiter_swap(conc_waiter *w) {
  conc_waiter *old = tls_waiter;
  tls_waiter = w;
  return old;
}

conc_waiter *conc__waiter_self(void) {
  conc_waiter *w = tls_waiter;
  if (w != NULL) return w;
  w = conc__waiter_new();
  if (w == NULL) conc__fatal("conc__waiter_self: aligned_alloc", 12);
  conc__waiter_adopt(w);
  return w;
}

void conc__waiter_arm(conc_waiter *w) {
  atomic_store_explicit(&w->state, CONC_W_WAITING, memory_order_relaxed);
  atomic_store_explicit(&w->selected, CONC_SEL_NONE, memory_order_relaxed);
}

bool conc__waiter_claim(conc_waiter *w, int index) {
  int expected = CONC_SEL_NONE;
  /* Sequentially consistent, with conc__claimed's load of `asleep`: the
   * other half of sleep_begin's store of `asleep` and load of
   * `selected` (neither side can miss the other). */
  if (!atomic_compare_exchange_strong(&w->selected, &expected, index))
    return false;
  /* The won claim happens before the claimed thread's park returns
   * (which cannot be before the wake that follows this claim). */
  CONC_HB_BEFORE(&w->selected);
  if (atomic_load(&w->asleep)) conc__claimed(w);
  return true;
}

static void futex_wake(atomic_uint *addr) {
  syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* ---- the internal lock's slow paths ------------------------------------- */

/* Contended: spin briefly (critical sections are a few dozen
 * nanoseconds), then sleep on the futex with the word at 2 (waiters). */
void conc__lock_slow(conc__lock_t *l) {
  for (int i = 0; i < 200; i++) {
    conc__cpu_relax();
    unsigned c = atomic_load_explicit(&l->v, memory_order_relaxed);
    if (c == 0 && atomic_compare_exchange_weak_explicit(&l->v, &c, 1,
                                                        memory_order_acquire,
                                                        memory_order_relaxed))
      return;
  }
  while (atomic_exchange_explicit(&l->v, 2, memory_order_acquire) != 0)
    syscall(SYS_futex, &l->v, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
}

void conc__unlock_wake(conc__lock_t *l) { futex_wake(&l->v); }

/* Sleeps while *addr == val, until woken or the absolute deadline. */
static void futex_wait(atomic_uint *addr, unsigned val, conc_time deadline) {
  struct timespec ts, *tsp = NULL;
  if (deadline != CONC_NEVER) {
    ts = to_timespec(deadline);
    tsp = &ts;
  }
  /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time. */
  syscall(SYS_futex, addr, FUTEX_WAIT_BITSET_PRIVATE, val, tsp, NULL,
          FUTEX_BITSET_MATCH_ANY);
}

void conc__waiter_wake(conc_waiter *w) {
  CONC_HB_BEFORE(w);  /* the waker's work, before WOKEN can be seen */
  unsigned old = atomic_exchange_explicit(&w->state, CONC_W_WOKEN,
                                          memory_order_acq_rel);
  /* Only this wake saw it asleep: a parked task is made runnable once. */
  if (old == CONC_W_PARKED) {
    CONC_HB_AFTER(&w->state); /* the parker's commit_park */
    conc__ready(w->g);
  } else if (old == CONC_W_SLEEPING) futex_wake(&w->state);
}

void conc__waiter_poke(conc_waiter *w) {
  unsigned s = CONC_W_SLEEPING;
  if (atomic_compare_exchange_strong(&w->state, &s, CONC_W_WAITING))
    futex_wake(&w->state);
}

bool conc__waiter_wake_spinning(conc_waiter *w) {
  CONC_HB_BEFORE(w);  /* as in conc__waiter_wake */
  unsigned waiting = CONC_W_WAITING;
  return atomic_compare_exchange_strong_explicit(&w->state, &waiting,
                                                 CONC_W_WOKEN,
                                                 memory_order_acq_rel,
                                                 memory_order_acquire);
}

static bool woken(const conc_waiter *w) {
  return atomic_load_explicit(&w->state, memory_order_acquire) == CONC_W_WOKEN;
}

/* The processors this process may run on (its affinity mask: taskset,
 * a cpuset), which is what spinning needs; all those online if the mask
 * cannot be read. Pinned to one, a spinner would only hold the core the
 * thread it waits for needs (ping-pong under `taskset -c 0` took 57 us
 * a round trip with the online count, the spin budget burnt each time). */
static int usable_cpus(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return (int)sysconf(_SC_NPROCESSORS_ONLN);
}

static void look_up_cpus(void) {
  ncpu = usable_cpus();
  CONC_HB_BEFORE(&ncpu);
}

/* Looked up once, by whichever thread asks first (the scheduler's
 * threads and the waits do). */
int conc__cpus(void) {
  pthread_once(&ncpu_once, look_up_cpus);
  CONC_HB_AFTER(&ncpu); /* pthread_once's edge, which Helgrind misses */
  return ncpu;
}

bool conc__spin_until(bool (*ready)(const void *arg), const void *arg,
                      conc_time deadline) {
  int n = conc__cpus();
  /* With one CPU, spinning only delays the other side, and so does a
   * task that spins on its fiber: its thread has other tasks, and the
   * one that would answer may be queued behind it (a buffered ping-pong
   * at MAXPROCS 1: 20 us a turn; sieve2: a sched_yield a turn). Often
   * ready already (the main script's thread ran the task that answers):
   * then no clock read. */
  if (n < 2 || conc__fiber_current() != NULL || ready(arg)) return ready(arg);
  conc_time limit = conc_now() + SPIN_NS;
  if (limit > deadline) limit = deadline;
  /* With more Lua threads awake than cores, a spinner would hold the
   * core that the thread it waits for needs. Yield it instead: the other
   * thread runs now, and if it makes us ready within the budget nobody
   * pays for a futex sleep and wake. (B5, 6 threads on 2 cores: sleeping
   * at once made 10,000 context switches for 200k jobs, 2.3 M jobs/s;
   * yielding, ~900 and 7.5-8 M jobs/s.) */
  if (conc__awake_threads() > n) {
    for (;;) {
      if (ready(arg)) return true;
      sched_yield();
      if (conc_now() >= limit) return ready(arg);
    }
  }
  for (;;) {
    for (int i = 0; i < 64; i++) {
      if (ready(arg)) return true;
      conc__cpu_relax();
    }
    if (conc_now() >= limit) return ready(arg);
  }
}

static bool woken_p(const void *w) { return woken((const conc_waiter *)w); }

/* The main script's thread waits: it runs ready tasks meanwhile, one at
 * a time, until its wait is over or there are none. */
static void help_while_waiting(conc_waiter *w, conc_time deadline) {
  for (;;) {
    if (woken(w) || (deadline != CONC_NEVER && conc_now() >= deadline)) return;
    if (!conc__sched_help()) break;
    /* A Ctrl-C while it ran a task: the host's handler only marked the
     * main script, which runs no Lua of its own while it helps (and ready
     * tasks could keep it helping for ever): end an abortable wait now,
     * as the wrapped handler does for a sleeping one. */
    if (atomic_load_explicit(&w->abortable, memory_order_relaxed) &&
        conc__interrupt_pending())
      conc_interrupt_main();
  }
  if (!woken(w)) conc__sched_main_idle(); /* then it sleeps */
}

/* A light task parks: its fiber switches back to the scheduler, which
 * commits the park (waiting -> sleeping) once the task's state has
 * yielded, or runs it again at once if a wake came first. A timer made
 * by the scheduler for the deadline makes it runnable again with the
 * state put back to waiting; it then looks at the deadline here. */
static int park_task(conc_waiter *w, conc_time deadline, bool claim_timeout) {
  conc__g *g = w->g;
  for (;;) {
    if (woken(w)) break;
    if (deadline != CONC_NEVER && conc_now() >= deadline) {
      if (!claim_timeout) {
        conc__sleep_end(w);
        conc__waiting_done(w);
        return CONC_SEL_TIMEOUT;  /* unclaimed: the caller looks */
      }
      if (conc__waiter_claim(w, CONC_SEL_TIMEOUT)) break;
      deadline = CONC_NEVER;  /* claimed by a waker: its wake is near */
      continue;
    }
    g->deadline = deadline;
    conc__fiber_suspend();
  }
  conc__sleep_end(w);
  conc__waiting_done(w);
  int fired = atomic_load_explicit(&w->selected, memory_order_acquire);
  CONC_HB_AFTER(w);
  CONC_HB_AFTER(&w->selected);
  return fired;
}

/* Parks (see conc__waiter_park). At the deadline: if claim_timeout,
 * claims the waiter with CONC_SEL_TIMEOUT (or, claimed by a waker, waits
 * for its wake); if not, returns CONC_SEL_TIMEOUT unclaimed (a plain
 * wait: see conc__waiter_park_plain). */
static int park(conc_waiter *w, conc_time deadline, bool claim_timeout,
                bool spin) {
  /* The main script's thread runs the ready tasks first (the one it
   * has just woken is likely the one that will answer). */
  if (w->id == 0 && w->counted && w->g == NULL) help_while_waiting(w, deadline);
  if (spin) conc__spin_until(woken_p, w, deadline); /* not on a fiber */
  /* The main script's abortable wait, about to sleep: a Ctrl-C since it
   * began ends it (one during the sleep wakes it: conc_interrupt_main). */
  if (!woken(w) && w->id == 0 && w->counted &&
      atomic_load_explicit(&w->abortable, memory_order_relaxed) &&
      conc__interrupt_before_sleep() &&
      conc__waiter_claim(w, CONC_SEL_INTERRUPT)) {
    conc__waiting_done(w);
    return CONC_SEL_INTERRUPT;
  }
  if (!woken(w)) {
    conc__flush_delivered();
    if (deadline == CONC_NEVER) conc__sleep_begin(w);
    if (conc__fiber_current() != NULL)
      return park_task(w, deadline, claim_timeout);
    /* The main script's thread runs ready tasks while it waits (a
     * ping-pong with a task stays on this thread); a task that cannot
     * yield hands its processor on before its thread sleeps. */
    bool blocking_task = w->g != NULL;
    bool helps = !blocking_task && w->id == 0 && w->counted;
    if (blocking_task) conc__sched_block_begin();
    else if (helps) help_while_waiting(w, deadline);
    for (;;) {
      unsigned s = CONC_W_WAITING;
      if (!atomic_compare_exchange_strong_explicit(&w->state, &s,
                                                   CONC_W_SLEEPING,
                                                   memory_order_acq_rel,
                                                   memory_order_acquire) &&
          s == CONC_W_WOKEN)
        break;
      /* A turn suspended on this thread was woken (conc__sched_help):
       * asleep first, then look, against conc__waiter_poke. */
      atomic_thread_fence(memory_order_seq_cst); /* (C11's Dekker) */
      if (helps && conc__sched_pinned_ready() &&
          !(deadline != CONC_NEVER && conc_now() >= deadline)) {
        unsigned z = CONC_W_SLEEPING;
        if (atomic_compare_exchange_strong(&w->state, &z, CONC_W_WAITING))
          help_while_waiting(w, deadline);
        continue;
      }
      if (deadline != CONC_NEVER && conc_now() >= deadline) {
        if (!claim_timeout) {
          conc__sleep_end(w);
          conc__waiting_done(w);
          if (blocking_task) conc__sched_block_end();
          return CONC_SEL_TIMEOUT;  /* unclaimed: the caller looks */
        }
        if (conc__waiter_claim(w, CONC_SEL_TIMEOUT)) break;
        deadline = CONC_NEVER;  /* claimed by a waker: its wake is near */
        continue;
      }
      futex_wait(&w->state, CONC_W_SLEEPING, deadline);
    }
    conc__sleep_end(w);
    if (blocking_task) conc__sched_block_end();
  }
  conc__waiting_done(w);
  int fired = atomic_load_explicit(&w->selected, memory_order_acquire);
  CONC_HB_AFTER(w);              /* the wake (none on a timeout) */
  CONC_HB_AFTER(&w->selected);   /* and the claim that won */
  return fired;
}

int conc__waiter_park(conc_waiter *w, conc_time deadline) {
  return park(w, deadline, true, true);
}

int conc__waiter_park_plain(conc_waiter *w, conc_time deadline) {
  return park(w, deadline, false, true);
}

/* A sleep parks on the waiter (nobody wakes it, so it does not spin):
 * so the main script's sleep can be interrupted like any other wait. */
int conc_sleep_until(conc_time deadline) {
  conc_waiter *w = conc__waiter_self();
  conc__waiter_arm(w);
  conc__waiting_on(w, "sleep", NULL, true);  /* never asleep for good */
  int fired = park(w, deadline, true, false);
  return fired >= 0 || fired == CONC_SEL_TIMEOUT ? CONC_OK
                                                 : conc__abort_code(fired);
}

/* ---- wait queues (the caller holds the queue's lock) -------------------- */

void conc__waitq_push(conc_waitq *q, conc_sudog *s) {
  s->next = NULL;
  s->prev = q->tail;
  if (q->tail) q->tail->next = s;
  else q->head = s;
  q->tail = s;
  s->linked = true;
  /* Sequentially consistent, and before the pusher looks again at what
   * it waits for: a lock-free waker (chan.c's ring) changes that state,
   * then loads n; one of the two sees the other. */
  atomic_fetch_add(&q->n, 1);
}

void conc__waitq_push_front(conc_waitq *q, conc_sudog *s) {
  s->prev = NULL;
  s->next = q->head;
  if (q->head) q->head->prev = s;
  else q->tail = s;
  q->head = s;
  s->linked = true;
  atomic_fetch_add(&q->n, 1); /* as conc__waitq_push's */
}

void conc__waitq_remove(conc_waitq *q, conc_sudog *s) {
  if (!s->linked) return;
  if (s->prev) s->prev->next = s->next;
  else q->head = s->next;
  if (s->next) s->next->prev = s->prev;
  else q->tail = s->prev;
  s->prev = s->next = NULL;
  s->linked = false;
  atomic_fetch_sub_explicit(&q->n, 1, memory_order_relaxed);
}

conc_sudog *conc__waitq_claim(conc_waitq *q) {
  conc_sudog *s;
  while ((s = q->head) != NULL) {
    /* Its line, to write: a plain wait's whole hand-off is on it. */
    conc__prefetch_write(s);
    conc__waitq_remove(q, s);
    /* A plain wait (see struct conc_waiter) never claims itself, but a
     * deadlock abort may have claimed it (sched.c): then it is stale. */
    if (conc__waiter_claim(s->w, s->index)) return s;
    /* Stale: its select fired elsewhere or timed out. Dropped. */
  }
  return NULL;
}
