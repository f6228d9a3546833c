/*
 * proc.c: light tasks, scheduled M:N as Go schedules goroutines.
 *
 * A task (conc__g) is what conc.go starts: the runtime's Lua state plus
 * its waiter. It runs on one of `nprocs` processors (P, GOMAXPROCS), each
 * held by one OS thread (M) at a time. A P has a run queue and a "next"
 * slot: a task woken by a thread goes to that thread's next slot, so a
 * ping-pong pair stays on one core. A thread with nothing to run looks
 * at the global queue and steals half of another P's queue (and, from a
 * P whose thread has not scheduled for a few microseconds, its next
 * slot); at most one thread spins looking for work at a time, and with
 * none found it gives its P back and sleeps. A ready task wakes a
 * sleeping thread only when no thread spins and a P is idle.
 *
 * A task blocks by parking on its fiber (fiber.c, waiter.c's park_task):
 * the runtime's run function returns CONC_G_PARKED once the task's Lua
 * state has yielded, and the scheduler commits the park here
 * (commit_park: waiting -> sleeping, or runs it again if a wake came
 * first). A wake that sees it sleeping makes it runnable (conc__ready).
 *
 * The main script's thread is not a P's: while it waits in conc it runs
 * ready tasks (its own next slot first) instead of sleeping, see
 * conc__sched_help. A task that cannot yield (in a C function with no
 * continuation) blocks its thread: its P goes to another thread first
 * (conc__sched_block_begin), as Go hands off its P in a system call.
 *
 * The monitor thread: fires the timers of parked tasks' deadlines; every
 * millisecond while tasks live, hands the P of a thread stuck in one task
 * for over 1 ms without using the CPU (foreign blocking C code) to
 * another thread when other tasks wait; asks a task that computes for
 * over 10 ms while others wait to yield (SIGURG, whose handler sets a
 * count hook through the runtime); and hands on the P of one that has
 * not yielded 20 ms later (it cannot where it computes).
 *
 * Locks: S.lock (idle lists, the global queue, the list of threads) and
 * S.tlock (the timer heap) are leaves, and so is each P's queue lock;
 * none is held while another is taken, except S.tlock around a waiter's
 * state change (a CAS, no lock).
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include "internal.h"

#define MAXPROCS 64
#define RUNQ 256
#define MAINQ 8
#define SPIN_ROUNDS 40          /* a spinner's looks before it sleeps */
#define MAIN_AGE_NS 10000       /* the main thread's work left this long */
#define BLOCKED_NS 1000000      /* in foreign C this long: hand its P on */
#define PREEMPT_NS 10000000     /* computing this long: asked to yield */
#define UNYIELDING_NS 30000000  /* and still in that turn: its P goes */
#define TICK_NS 1000000         /* the monitor's period while tasks live */
#define LINGER_NS 100000000     /* it goes on ticking this long after */
#define IDLE_M_NS 2000000000LL  /* a spare thread idle this long exits */
#define RELEASE_NS 1000000000LL /* no task this long: memory goes back */

typedef struct conc__p {
  int id;
  conc__lock_t lock;             /* q, head, tail */
  conc__g *q[RUNQ];
  unsigned head, tail;
  _Atomic(conc__g *) next;
  atomic_ulong next_puts;        /* puts into `next`: its item's age */
  _Atomic(struct conc__m *) m;   /* its thread, or NULL (a hint) */
  struct conc__p *next_idle;     /* S.lock */
  bool idle;                     /* S.lock */
} conc__p;

typedef struct conc__m {
  atomic_uint word;              /* futex: its sleep when idle */
  _Atomic(conc__p *) p;
  conc__p *handed;               /* the P it was woken with (S.lock) */
  struct conc__m *next_idle, *next_all;
  _Atomic(pthread_t) tid;
  atomic_int clock;              /* its CPU clock (a clockid_t) */
  atomic_bool alive;             /* tid and clock are its thread's */
  bool dead;                     /* exited: the record is free (S.lock) */
  conc_time idle_since;          /* on the idle list since (S.lock) */
  atomic_ulong tick;             /* scheduling points */
  atomic_int in_task;            /* 0, 1 in a task, 2 its P was taken,
                                  * 3 in its idle work (IDLE_WORK) */
  bool spinning;
  bool is_main;
  unsigned long seen_tick;       /* the monitor's last look */
  conc_time turn_seen;           /* when it first saw this turn, or 0 */
  /* Time slices, as Go's schedtick: a task taken from the P's next slot
   * (woken by the one before) goes on in the slice of the turn before,
   * so a ping-pong pair is preempted as one task is (Go's inheritTime:
   * a pair restarting the slice at each hand-off kept a P for good). */
  atomic_ulong slice;
  bool inherit;                  /* the task to run came from `next` */
  bool last_urgent;              /* its last pick was an urgent task */
  unsigned long seen_slice;      /* the monitor's last look */
  conc_time slice_seen;          /* when it first saw this slice, or 0 */
  int suspect;                   /* looks in a row it used no CPU */
  conc_time seen_cpu, seen_at;
} conc__m;

static struct {
  conc__lock_t lock;
  conc__g *gq_head, *gq_tail;
  atomic_int gq_n;
  /* The global queue's first gq_urgent tasks (the last: gq_urgent_tail)
   * were readied where no P's next slot could take them: by a timer, by
   * another thread than a P's (the monitor, a host's), or by the main
   * script's thread when it could not run them itself. Each P takes them
   * at its next turn, as Go's timers ready a goroutine into the next
   * slot of the P that runs them: else they waited for a slice to end
   * behind a ping-pong pair (a 1 ms sleep took 13 ms). */
  conc__g *gq_urgent_tail;
  atomic_int gq_urgent;
  conc__p *pidle;
  atomic_int npidle;
  conc__m *midle;
  int nmidle;
  conc__m *allm;
  int nm;                        /* threads made or being made (lock) */
  atomic_int nprocs;
  int nmade;
  _Atomic(conc__p *) ps[MAXPROCS];  /* made under lock, read without */
  atomic_int nspinning;
  conc__sched_hooks hooks;
  atomic_bool started;
  _Atomic(conc__g *) main_next;
  atomic_ulong main_next_puts;
  /* Tasks a helped turn pushed out of the main script's next slot (see
   * mainq_put): a short queue of the main thread's, run by its waits. */
  conc__lock_t mq_lock;
  conc__g *mq[MAINQ];
  unsigned mq_head, mq_tail;
  atomic_int mq_n;
  atomic_long tasks_run, steals, preemptions, handoffs, helped;
  atomic_long thread_blocks;     /* tasks that blocked their thread */
  atomic_int live;               /* tasks started and not ended */
  /* timers of parked tasks: a binary heap by deadline (tlock) */
  conc__lock_t tlock;
  conc__g **heap;
  int nheap, capheap;
  atomic_uint mon_word;
  atomic_llong mon_at;           /* when the monitor wakes (0: sleeps) */
  /* Helped turns suspended on the main thread, woken (see helpers) */
  conc__g *pinned_head, *pinned_tail;  /* lock */
  atomic_int npinned;
  _Atomic(conc_waiter *) main_w;       /* the main thread's waiter */
  int max_threads;               /* CONC_MAXTHREADS (lock) */
  /* The last thread conc tried to start could not be: the main script's
   * waits run any ready task, idle Ps or not (conc__sched_help). */
  atomic_bool starved;
  atomic_bool no_helper; /* the main thread could have none: see helpers_out */
  atomic_long thread_failures;
  atomic_int idle_wanted; /* idle work waiting (worker.c's) */
} S = {
    .lock = CONC_LOCK_INIT, .tlock = CONC_LOCK_INIT, .mq_lock = CONC_LOCK_INIT};

static conc__m main_m = {.is_main = true};
static atomic_bool main_registered;
static atomic_bool main_done; /* the main script ended: it helps no more */
static CONC_TLS conc__m *self_m;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void futex_wait_word(atomic_uint *w, unsigned val, conc_time deadline) {
  struct timespec ts, *tsp = NULL;
  if (deadline != CONC_NEVER) {
    ts.tv_sec = (time_t)(deadline / 1000000000);
    ts.tv_nsec = (long)(deadline % 1000000000);
    tsp = &ts;
  }
  syscall(SYS_futex, w, FUTEX_WAIT_BITSET_PRIVATE, val, tsp, NULL,
          FUTEX_BITSET_MATCH_ANY);
}

static void futex_wake_word(atomic_uint *w) {
  syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void conc__sched_set_hooks(const conc__sched_hooks *h) { S.hooks = *h; }

/* ---- run queues -------------------------------------------------------- */

static void globrunq_put(conc__g *g) {
  g->next = NULL;
  conc__lock(&S.lock);
  if (S.gq_tail) S.gq_tail->next = g;
  else S.gq_head = g;
  S.gq_tail = g;
  atomic_fetch_add_explicit(&S.gq_n, 1, memory_order_relaxed);
  conc__unlock(&S.lock);
}

/* Puts g after the urgent tasks already there (see gq_urgent). */
static void globrunq_put_urgent(conc__g *g) {
  conc__lock(&S.lock);
  conc__g *after = S.gq_urgent_tail;
  g->next = after ? after->next : S.gq_head;
  if (after) after->next = g;
  else S.gq_head = g;
  if (g->next == NULL) S.gq_tail = g;
  S.gq_urgent_tail = g;
  atomic_fetch_add_explicit(&S.gq_urgent, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&S.gq_n, 1, memory_order_relaxed);
  conc__unlock(&S.lock);
}

static conc__g *globrunq_get_locked(void) {
  conc__g *g = S.gq_head;
  if (self_m) /* (the prefix: the head is urgent if any is) */
    self_m->last_urgent = g && atomic_load_explicit(&S.gq_urgent,
                                                    memory_order_relaxed) > 0;
  if (g) {
    S.gq_head = g->next;
    if (!S.gq_head) S.gq_tail = NULL;
    atomic_fetch_sub_explicit(&S.gq_n, 1, memory_order_relaxed);
    if (g == S.gq_urgent_tail) S.gq_urgent_tail = NULL;
    if (atomic_load_explicit(&S.gq_urgent, memory_order_relaxed) > 0)
      atomic_fetch_sub_explicit(&S.gq_urgent, 1, memory_order_relaxed);
  }
  return g;
}

static conc__g *globrunq_get(void) {
  if (atomic_load_explicit(&S.gq_n, memory_order_relaxed) == 0) return NULL;
  conc__lock(&S.lock);
  conc__g *g = globrunq_get_locked();
  conc__unlock(&S.lock);
  return g;
}

/* The first task after the urgent ones (fairness: see find_runnable). */
static conc__g *globrunq_get_plain(void) {
  if (atomic_load_explicit(&S.gq_n, memory_order_relaxed) == 0) return NULL;
  conc__lock(&S.lock);
  conc__g *after = S.gq_urgent_tail;
  conc__g *g = after ? after->next : NULL;
  if (after == NULL) {
    g = globrunq_get_locked();
  } else if (g != NULL) {
    after->next = g->next;
    if (S.gq_tail == g) S.gq_tail = after;
    atomic_fetch_sub_explicit(&S.gq_n, 1, memory_order_relaxed);
  }
  conc__unlock(&S.lock);
  return g;
}

/* Puts g on p's queue (its next slot if `next`, pushing what was there
 * to the queue); a full queue sends half of it to the global one. */
static void runq_put(conc__p *p, conc__g *g, bool next) {
  if (next) {
    atomic_fetch_add_explicit(&p->next_puts, 1, memory_order_relaxed);
    CONC_HB_BEFORE(&p->next); /* what the readier did, for the runner */
    g = atomic_exchange(&p->next, g);
    if (g == NULL) return;
  }
  conc__lock(&p->lock);
  if (p->tail - p->head < RUNQ) {
    p->q[p->tail++ % RUNQ] = g;
    conc__unlock(&p->lock);
    return;
  }
  conc__g *batch[RUNQ / 2];
  int n = 0;
  while (n < RUNQ / 2) batch[n++] = p->q[p->head++ % RUNQ];
  p->q[p->tail++ % RUNQ] = g;
  conc__unlock(&p->lock);
  for (int i = 0; i < n; i++) globrunq_put(batch[i]);
}

static bool queue_nonempty(conc__p *p) {
  conc__lock(&p->lock);
  bool more = p->head != p->tail;
  conc__unlock(&p->lock);
  return more;
}

static conc__g *runq_get(conc__p *p) {
  conc__g *g = atomic_exchange(&p->next, NULL);
  if (g) {
    CONC_HB_AFTER(&p->next);
    if (self_m) self_m->inherit = true; /* see conc__m.slice */
    return g;
  }
  conc__lock(&p->lock);
  if (p->head != p->tail) g = p->q[p->head++ % RUNQ];
  conc__unlock(&p->lock);
  return g;
}

static int runq_len(conc__p *p) {
  conc__lock(&p->lock);
  int n = (int)(p->tail - p->head);
  conc__unlock(&p->lock);
  return n + (atomic_load(&p->next) != NULL);
}

/*
 * The main thread's queue. A task the main script's thread runs (a
 * helped turn) that readies another pushes the main script's next slot
 * out. Sent to the global queue with a thread woken for it, the pushed
 * task ran on a P's thread, which slept again once it was done: in a
 * pipeline into the main script, a futex wake and a sleep for most
 * values (100,000 values through 2 stages: 0.33 s at 1 P, where the
 * consumer as a task took 0.17; 5.5 s with the other core busy). It goes
 * to this short queue instead, which the main script's waits run after
 * the next slot; a spinning thread takes from it as from the next slot
 * (after a whole round unclaimed), the monitor hands it to the global
 * queue when the main thread has not scheduled for a tick (main_flush),
 * and it is full at MAINQ (the rest as before).
 */
static bool mainq_put(conc__g *g) {
  conc__lock(&S.mq_lock);
  bool room = S.mq_tail - S.mq_head < MAINQ;
  if (room) {
    S.mq[S.mq_tail++ % MAINQ] = g;
    atomic_fetch_add(&S.mq_n, 1);
  }
  conc__unlock(&S.mq_lock);
  return room;
}

static conc__g *mainq_get(void) {
  if (atomic_load_explicit(&S.mq_n, memory_order_relaxed) == 0) return NULL;
  conc__g *g = NULL;
  conc__lock(&S.mq_lock);
  if (S.mq_head != S.mq_tail) {
    g = S.mq[S.mq_head++ % MAINQ];
    atomic_fetch_sub(&S.mq_n, 1);
  }
  conc__unlock(&S.mq_lock);
  return g;
}

/* Whether a turn on the main thread put main_next's task there. The
 * main thread's (atomic: a thread that had the main script's part before
 * a host's other thread took it keeps self_m == &main_m). */
static atomic_bool main_next_by_turn;

/* g into the main script's next slot. What it pushes out goes to the
 * main thread's queue when a turn on the main thread readied g (`helped`)
 * or the task pushed out (main_next_by_turn) and there is room, else to
 * the global queue: true then (the caller wakes a thread for it, or
 * not). */
static bool main_next_put(conc__g *g, bool helped) {
  atomic_fetch_add_explicit(&S.main_next_puts, 1, memory_order_relaxed);
  CONC_HB_BEFORE(&S.main_next);
  conc__g *out = atomic_exchange(&S.main_next, g);
  bool by_turn = atomic_load_explicit(&main_next_by_turn, memory_order_relaxed);
  atomic_store_explicit(&main_next_by_turn, helped, memory_order_relaxed);
  if (out == NULL || ((helped || by_turn) && mainq_put(out))) return false;
  globrunq_put(out);
  return true;
}

/* Steals half of victim's queue into p's (one returned to run); with
 * take_next, its next slot too when its queue is empty. */
static conc__g *steal_from(conc__p *p, conc__p *victim, bool take_next) {
  conc__g *batch[RUNQ / 2];
  int n = 0;
  conc__lock(&victim->lock);
  int have = (int)(victim->tail - victim->head);
  int want = have - have / 2;
  while (n < want) batch[n++] = victim->q[victim->head++ % RUNQ];
  conc__unlock(&victim->lock);
  if (n == 0) {
    if (!take_next) return NULL;
    conc__g *g = atomic_exchange(&victim->next, NULL);
    if (g) {
      CONC_HB_AFTER(&victim->next);
      atomic_fetch_add(&S.steals, 1);
    }
    return g;
  }
  atomic_fetch_add(&S.steals, 1);
  for (int i = 1; p && i < n; i++) runq_put(p, batch[i], false);
  for (int i = 1; !p && i < n; i++) globrunq_put(batch[i]);
  return batch[0];
}

/* One round of looking everywhere else for work. `seen` holds, for each
 * P (and the main script's thread, last), its thread's tick and its next
 * slot's puts at the round before: a next slot is taken only when
 * neither moved since (its item waited a whole round, ~2 us, and its
 * thread has not scheduled meanwhile: it is busy, or blocked). */
typedef struct seen_t {
  unsigned long tick, puts;
  conc_time since; /* the main thread's: when they were first seen */
} seen_t;

static bool aged(seen_t *seen, unsigned long tick, unsigned long puts,
                 bool first) {
  bool same = !first && seen->tick == tick && seen->puts == puts;
  seen->tick = tick;
  seen->puts = puts;
  return same;
}

/* The main script's thread's next slot and queue unclaimed for
 * MAIN_AGE_NS (its tick and the slot's puts unchanged that long). */
static bool main_aged(seen_t *s, bool first) {
  unsigned long tick = atomic_load(&main_m.tick);
  unsigned long puts = atomic_load(&S.main_next_puts);
  if (atomic_load_explicit(&S.main_next, memory_order_relaxed) == NULL &&
      atomic_load_explicit(&S.mq_n, memory_order_relaxed) == 0) {
    s->since = 0;
    return false;
  }
  conc_time now = conc_now();
  if (first || s->since == 0 || s->tick != tick || s->puts != puts) {
    s->tick = tick;
    s->puts = puts;
    s->since = now;
    return false;
  }
  return now - s->since >= MAIN_AGE_NS;
}

/* The main thread's work waits, not yet MAIN_AGE_NS old (set by
 * main_aged, which every round that got that far called). */
static bool main_work_young(const seen_t *s) {
  return s->since != 0 && conc_now() - s->since < MAIN_AGE_NS;
}

static conc__g *steal_work(conc__p *p, seen_t *seen, bool first) {
  int n = atomic_load(&S.nprocs);
  int start = (int)(conc__rand() % (uint32_t)(n > 0 ? n : 1));
  for (int k = 0; k < n; k++) {
    conc__p *v = atomic_load(&S.ps[(start + k) % n]);
    if (v == NULL || v == p) continue;
    conc__m *vm = atomic_load(&v->m); /* only a hint */
    bool take_next = aged(&seen[v->id], vm ? atomic_load(&vm->tick) : 0,
                          atomic_load(&v->next_puts), first);
    conc__g *g = steal_from(p, v, take_next);
    if (g) return g;
  }
  /* The main script's next slot and queue, if it has not come for them. */
  if (!main_aged(&seen[MAXPROCS], first)) return NULL;
  conc__g *g = NULL;
  if (atomic_load(&S.main_next) != NULL &&
      (g = atomic_exchange(&S.main_next, NULL)) != NULL)
    CONC_HB_AFTER(&S.main_next);
  if (g == NULL) g = mainq_get();
  if (g) atomic_fetch_add(&S.steals, 1);
  return g;
}

/* ---- threads and processors --------------------------------------------- */

static void *m_main(void *arg);
static void pinned_put(conc__g *g);
static void m_atomics(conc__m *m);

/* No thread could be started (err: why, 0 for the cap). Go dies of it ("failed to
 * create new OS thread"); conc goes on with the threads it has: the
 * ready tasks wait for one to come free, or for the main script's next
 * wait, which runs them (conc__sched_help). Said once on stderr, so a
 * program that slows down for it is not left to guess. */
__attribute__((cold)) static void thread_refused(int err) {
  static atomic_bool said;
  atomic_fetch_add(&S.thread_failures, 1);
  atomic_store(&S.starved, true);
  /* The main script, asleep in a wait, runs the work meanwhile (its
   * waiter is known here once it has run a task, else from sched.c). */
  conc_waiter *w = atomic_load(&S.main_w);
  if (w == NULL) w = conc__main_waiter();
  if (w) conc__waiter_poke(w);
  if (atomic_exchange(&said, true)) return;
  char buf[128];
  const char *why = buf;
  if (err == 0) { /* the cap */
    conc__lock(&S.lock);
    snprintf(buf, sizeof buf, "CONC_MAXTHREADS is %d", S.max_threads);
    conc__unlock(&S.lock);
  } else {
    why = strerror_r(err, buf, sizeof buf); /* GNU's: the text */
  }
  fprintf(stderr,
          "conc: cannot start a thread to run tasks (%s); ready tasks wait "
          "for a busy thread, or for the main script's next wait\n",
          why);
  fflush(stderr);
}

/* Starts a thread that holds p (S.lock not held). False: none could. */
static bool start_m(conc__p *p, bool spinning) {
  /* A thread that exited left its record: reused (the monitor may still
   * be looking at it, through `alive`). */
  conc__lock(&S.lock);
  bool full = S.nm >= S.max_threads;
  conc__m *m = S.allm;
  while (!full && m && !m->dead) m = m->next_all;
  if (!full) S.nm++; /* counted from now: two starts never pass the cap */
  if (!full && m) m->dead = false;
  conc__unlock(&S.lock);
  if (full) {
    thread_refused(0);
    return false;
  }
  bool fresh = m == NULL;
  if (fresh && (m = calloc(1, sizeof *m)) == NULL) {
    conc__lock(&S.lock);
    S.nm--;
    conc__unlock(&S.lock);
    thread_refused(ENOMEM);
    return false;
  }
  if (fresh) m_atomics(m);
  m->handed = p;
  m->spinning = spinning;
  pthread_attr_t attr;
  CONC_CHECK(pthread_attr_init(&attr));
  CONC_CHECK(pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED));
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  CONC_CHECK(pthread_attr_setstacksize(&attr, 8u << 20));
#else
  CONC_CHECK(pthread_attr_setstacksize(&attr, 1u << 20));
#endif
  sigset_t old;
  conc_signal_block(&old);
  pthread_t tid;
  int rc = pthread_create(&tid, &attr, m_main, m);
  conc_signal_restore(&old);
  CONC_CHECK(pthread_attr_destroy(&attr));
  clockid_t clock;
  if (rc != 0 || pthread_getcpuclockid(tid, &clock) != 0)
    clock = CLOCK_MONOTONIC;
  conc__lock(&S.lock);
  if (rc == 0) {
    atomic_store(&m->tid, tid);
    atomic_store(&m->clock, clock);
    atomic_store(&m->alive, true); /* after tid and clock: the monitor */
  } else {
    m->dead = true; /* kept for a later thread */
    S.nm--;
  }
  if (fresh) {
    m->next_all = S.allm;
    S.allm = m;
  }
  conc__unlock(&S.lock);
  if (rc != 0) thread_refused(rc);
  else atomic_store(&S.starved, false);
  return rc == 0;
}

/* Gives p to a sleeping thread, or a new one (S.lock not held). */
static void give_p(conc__p *p, bool spinning) {
  conc__lock(&S.lock);
  conc__m *m = S.midle;
  if (m) {
    S.midle = m->next_idle;
    S.nmidle--;
    m->handed = p;
    m->spinning = spinning;
    atomic_store(&p->m, m);
    atomic_store(&m->word, 1); /* under the lock: before it can idle again */
    conc__unlock(&S.lock);
    futex_wake_word(&m->word);
    if (atomic_load_explicit(&S.starved, memory_order_relaxed))
      atomic_store(&S.starved, false); /* a thread came free */
    return;
  }
  conc__unlock(&S.lock);
  if (!start_m(p, spinning)) {
    /* No thread: the P goes back idle; a later wake tries again. */
    if (spinning) atomic_fetch_sub(&S.nspinning, 1);
    conc__lock(&S.lock);
    p->idle = true;
    p->next_idle = S.pidle;
    S.pidle = p;
    atomic_fetch_add(&S.npidle, 1);
    conc__unlock(&S.lock);
  }
}

static void midle_put_locked(conc__m *m) {
  atomic_store(&m->word, 0);
  m->next_idle = S.midle;
  S.midle = m;
  S.nmidle++;
}

static conc__p *pidle_get_locked(void) {
  conc__p *p = S.pidle;
  while (p && p->id >= atomic_load(&S.nprocs)) p = p->next_idle; /* none */
  if (p == NULL) return NULL;
  /* unlink p (the list is short: at most nprocs) */
  for (conc__p **q = &S.pidle; *q; q = &(*q)->next_idle)
    if (*q == p) {
      *q = p->next_idle;
      break;
    }
  p->idle = false;
  atomic_fetch_sub(&S.npidle, 1);
  return p;
}

static void pidle_put_locked(conc__p *p) {
  atomic_store(&p->m, NULL);
  p->idle = true;
  p->next_idle = S.pidle;
  S.pidle = p;
  atomic_fetch_add(&S.npidle, 1);
}

/* Work appeared: wake a thread to look for it, unless one already spins
 * or every P is busy. */
static void wakep(void) {
  if (atomic_load_explicit(&S.npidle, memory_order_relaxed) == 0) return;
  int zero = 0;
  if (!atomic_compare_exchange_strong(&S.nspinning, &zero, 1)) return;
  conc__lock(&S.lock);
  conc__p *p = pidle_get_locked();
  conc__unlock(&S.lock);
  if (p == NULL) {
    atomic_fetch_sub(&S.nspinning, 1);
    return;
  }
  give_p(p, true);
}

/* p has work, or not: to a thread, or idle. */
static void handoff_p(conc__p *p) {
  /* p is ours: only its holder puts work in it. The global queue is
   * looked at under the lock that puts p idle: a globrunq_put after it
   * sees p idle in its wakep (else the work could wait for the
   * monitor's next look). */
  bool work = atomic_load(&p->next) != NULL || runq_len(p) > 0 ||
              atomic_load(&S.idle_wanted) > 0;
  conc__lock(&S.lock);
  work = work || atomic_load(&S.gq_n) > 0;
  if (!work) pidle_put_locked(p);
  conc__unlock(&S.lock);
  if (work) {
    atomic_fetch_add(&S.handoffs, 1);
    give_p(p, false);
  }
}

/* The atomics of an M record (Helgrind: see CONC_HB_ATOMIC). */
static void m_atomics(conc__m *m) {
  conc__unused(m); /* without -DCONC_VALGRIND, nothing to say */
  CONC_HB_ATOMIC(&m->word);
  CONC_HB_ATOMIC(&m->p);
  CONC_HB_ATOMIC(&m->tid);
  CONC_HB_ATOMIC(&m->clock);
  CONC_HB_ATOMIC(&m->alive);
  CONC_HB_ATOMIC(&m->tick);
  CONC_HB_ATOMIC(&m->slice);
  CONC_HB_ATOMIC(&m->in_task);
}

static void make_p_locked(int id) {
  conc__p *p = calloc(1, sizeof *p);
  if (p == NULL) {
    conc__fatal("proc.c: calloc", 12);
    return; /* (never: it aborts) */
  }
  CONC_HB_ATOMIC(&p->next);
  CONC_HB_ATOMIC(&p->next_puts);
  CONC_HB_ATOMIC(&p->m);
  p->id = id;
  atomic_store(&S.ps[id], p);
  pidle_put_locked(p);
}

/* ---- timers of parked tasks --------------------------------------------- */

static void heap_swap(int i, int j) {
  conc__g *t = S.heap[i];
  S.heap[i] = S.heap[j];
  S.heap[j] = t;
  S.heap[i]->timer_idx = i;
  S.heap[j]->timer_idx = j;
}

static void heap_up(int i) {
  while (i > 0 && S.heap[(i - 1) / 2]->deadline > S.heap[i]->deadline) {
    heap_swap(i, (i - 1) / 2);
    i = (i - 1) / 2;
  }
}

static void heap_down(int i) {
  for (;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    if (l < S.nheap && S.heap[l]->deadline < S.heap[m]->deadline) m = l;
    if (r < S.nheap && S.heap[r]->deadline < S.heap[m]->deadline) m = r;
    if (m == i) return;
    heap_swap(i, m);
    i = m;
  }
}

static void heap_remove_locked(conc__g *g) {
  int i = g->timer_idx;
  g->timer_idx = -1;
  S.nheap--;
  if (i != S.nheap) {
    S.heap[i] = S.heap[S.nheap];
    S.heap[i]->timer_idx = i;
    heap_down(i);
    heap_up(i);
  }
}

static void wake_monitor_by(conc_time when) {
  long long at = atomic_load(&S.mon_at);
  if (at != 0 && at <= when) return;
  atomic_fetch_add(&S.mon_word, 1);
  futex_wake_word(&S.mon_word);
}

/* With S.tlock held by the caller (commit_park). */
static void heap_push_locked(conc__g *g) {
  if (S.nheap == S.capheap) {
    int cap = S.capheap ? 2 * S.capheap : 64;
    conc__g **h = realloc(S.heap, (size_t)cap * sizeof *h);
    if (h == NULL) conc__fatal("proc.c: realloc", 12);
    S.heap = h;
    S.capheap = cap;
  }
  g->timer_idx = S.nheap;
  S.heap[S.nheap++] = g;
  heap_up(g->timer_idx);
}

static void timer_del(conc__g *g) {
  if (g->deadline == CONC_NEVER) return;
  conc__lock(&S.tlock);
  if (g->timer_idx >= 0) heap_remove_locked(g);
  conc__unlock(&S.tlock);
  g->deadline = CONC_NEVER;
}

/* Fires the timers that are due; returns the next deadline. */
static conc_time fire_timers(void) {
  conc__g *due = NULL;
  conc_time now = conc_now(), next = CONC_NEVER;
  conc__lock(&S.tlock);
  while (S.nheap > 0) {
    conc__g *g = S.heap[0];
    if (g->deadline > now) {
      next = g->deadline;
      break;
    }
    heap_remove_locked(g);
    unsigned s = CONC_W_PARKED;
    /* Parked: back to waiting, and runnable (it looks at the deadline
     * itself). Woken meanwhile: its waker readied it. */
    if (atomic_compare_exchange_strong(&g->w->state, &s, CONC_W_WAITING)) {
      g->next = due;
      due = g;
    }
  }
  conc__unlock(&S.tlock);
  while (due) {
    conc__g *g = due;
    due = g->next;
    if (atomic_load(&g->pinned)) {
      pinned_put(g);
    } else {
      globrunq_put_urgent(g);
      wakep();
    }
  }
  return next;
}

/* ---- tasks pinned to the main thread (see helpers, below) ------------- */

/* g, a helped turn suspended on the main thread, is runnable: to the
 * main thread's queue, and the main thread is woken if it sleeps in a
 * wait (its loop looks at the queue: see waiter.c's park). */
static void pinned_put(conc__g *g) {
  conc__lock(&S.lock);
  g->pinned_next = NULL;
  if (S.pinned_tail) S.pinned_tail->pinned_next = g;
  else S.pinned_head = g;
  S.pinned_tail = g;
  conc__unlock(&S.lock);
  atomic_fetch_add(&S.npinned, 1);
  conc_waiter *w = atomic_load(&S.main_w);
  if (w) conc__waiter_poke(w);
}

static conc__g *pinned_get(void) {
  if (atomic_load(&S.npinned) == 0) return NULL;
  conc__lock(&S.lock);
  conc__g *g = S.pinned_head;
  if (g) {
    S.pinned_head = g->pinned_next;
    if (S.pinned_head == NULL) S.pinned_tail = NULL;
  }
  conc__unlock(&S.lock);
  if (g) atomic_fetch_sub(&S.npinned, 1);
  return g;
}

static bool work_waiting(void);

/* Whether the main script's sleeping wait should wake to run tasks: a
 * turn pinned to it was woken, or no thread could be started for ready
 * work (then only it may run that). */
bool conc__sched_pinned_ready(void) {
  if (atomic_load(&main_done)) return false;
  return atomic_load(&S.npinned) > 0 ||
         (atomic_load(&S.starved) && !atomic_load(&S.no_helper) &&
          work_waiting());
}

/* ---- running tasks ------------------------------------------------------ */

/* The task's fiber suspended and its state yielded: it sleeps from now,
 * unless a wake came first (then it runs again soon). */
static void commit_park(conc__p *p, conc__g *g) {
  /* Once the CAS below makes it asleep, a wake may hand g to another
   * thread at once: nothing of g is read after it, except under tlock
   * for a timed park (whose next turn takes tlock first: timer_del). */
  conc_waiter *w = g->w;
  conc_time deadline = g->deadline;
  bool timed = deadline != CONC_NEVER;
  if (timed) conc__lock(&S.tlock);
  /* The fiber's frames, written here, are read by the thread that
   * resumes it: through the wake (Helgrind; C11 orders it already). */
  CONC_HB_BEFORE(&w->state);
  unsigned s = CONC_W_WAITING;
  bool parked = atomic_compare_exchange_strong(&w->state, &s, CONC_W_PARKED);
  if (parked && timed) heap_push_locked(g);
  if (timed) conc__unlock(&S.tlock);
  if (parked) {
    if (timed) wake_monitor_by(deadline);
    return;
  }
  if (atomic_load(&g->pinned)) {
    pinned_put(g);
  } else if (p) {
    runq_put(p, g, true);
  } else if (self_m == &main_m) {
    if (main_next_put(g, true)) wakep(); /* (a helped turn's park) */
  } else {
    globrunq_put(g);
    wakep();
  }
}

static void execute(conc__m *m, conc__g *g) {
  if (m->spinning) {
    m->spinning = false;
    atomic_fetch_sub(&S.nspinning, 1);
    wakep(); /* there may be more: another thread looks */
  }
  /* No clock read: the monitor times a turn from its first look at it
   * (Go's sysmon does the same), a tick late at most. */
  atomic_fetch_add_explicit(&m->tick, 1, memory_order_relaxed);
  if (!m->inherit)
    atomic_fetch_add_explicit(&m->slice, 1, memory_order_relaxed);
  m->inherit = false;
  atomic_store(&m->in_task, 1);
  atomic_fetch_add_explicit(&S.tasks_run, 1, memory_order_relaxed);
  conc_waiter *own = conc__waiter_swap(g->w);
  int r = CONC_G_PARKED;
  bool run = true;
  if (g->fiber) {
    timer_del(g);
    if (!conc__fiber_resume(g->fiber)) run = false; /* parked again */
    else {
      conc__fiber_put(g->fiber);
      g->fiber = NULL;
    }
  }
  if (run) r = S.hooks.run(g);
  conc__waiter_swap(own);
  /* Its P was taken during the turn (in_task 2): the taker clears m->p,
   * within a few instructions of taking it. */
  if (atomic_exchange(&m->in_task, 0) == 2)
    while (atomic_load(&m->p) != NULL) conc__cpu_relax();
  conc__p *p = atomic_load(&m->p);
  if (r == CONC_G_PARKED) commit_park(p, g);
  else if (r == CONC_G_YIELDED) {
    globrunq_put(g);
    wakep();
  }
}

static void stop_spinning(conc__m *m) {
  if (!m->spinning) return;
  m->spinning = false;
  atomic_fetch_sub(&S.nspinning, 1);
}

/* The idle hook runs Lua finalizers (of objects a finished task left),
 * which may take long or block: it is timed as a turn (in_task
 * IDLE_WORK), and the monitor hands m's P to another thread when it
 * lasts over BLOCKED_NS while tasks wait, as for a task in foreign C.
 * False when m lost its P so: it is on the idle list then, without one. */
#define IDLE_WORK 3

static bool idle_work(conc__m *m) {
  atomic_fetch_add_explicit(&m->tick, 1, memory_order_relaxed);
  atomic_store(&m->in_task, IDLE_WORK);
  S.hooks.idle();
  if (atomic_exchange(&m->in_task, 0) != 2) return true;
  while (atomic_load(&m->p) != NULL) conc__cpu_relax(); /* see execute */
  conc__lock(&S.lock);
  midle_put_locked(m); /* its P went on to another thread */
  conc__unlock(&S.lock);
  return false;
}

/* Whether the main script's thread is on a processor: it runs Lua, or
 * spins or helps in a wait (it is not asleep in one). It is not a P's
 * thread, but it takes a core all the same: a spinner beside it and the
 * busy Ps' threads, more threads than cores, would take turns with the
 * threads doing the work (a pipeline into the main script, 2 Ps on 2
 * cores: 7-10x slower than with 1). */
static bool main_awake(void) {
  conc_waiter *w = conc__main_waiter();
  return w != NULL && !atomic_load_explicit(&main_done, memory_order_relaxed) &&
         atomic_load_explicit(&w->state, memory_order_relaxed) !=
             CONC_W_SLEEPING;
}

/* More threads on processors than there are cores: the busy Ps' threads
 * (a spinner holds its P) and the main script's. A spinner would then
 * take turns with the threads doing the work. */
static bool oversubscribed(void) {
  int busy = atomic_load(&S.nprocs) - atomic_load(&S.npidle);
  return busy + main_awake() > conc__cpus();
}

/* Finds a task for m, which holds a P; NULL when m gave its P up. */
static conc__g *find_runnable(conc__m *m) {
  conc__p *p = atomic_load(&m->p);
  m->inherit = false;
  if (p->id >= atomic_load(&S.nprocs)) { /* retired: give it all up */
    conc__g *g;
    while ((g = runq_get(p)) != NULL) globrunq_put(g);
    stop_spinning(m);
    conc__lock(&S.lock);
    pidle_put_locked(p);
    atomic_store(&m->p, NULL);
    midle_put_locked(m);
    conc__unlock(&S.lock);
    wakep();
    return NULL;
  }
  unsigned long tick = atomic_load_explicit(&m->tick, memory_order_relaxed);
  /* Slices, not turns, for the global queue: a ping-pong pair's turns
   * count as one (Go's schedtick), else every 61st of its hand-offs gave
   * its P to the global queue, whose task then kept it for a slice. */
  unsigned long slice = atomic_load_explicit(&m->slice, memory_order_relaxed);
  conc__g *g = NULL;
  /* Fairness to idle work (finalizers), which busy threads never reach
   * otherwise (Go's finalizer goroutine gets its turns too). */
  if (tick % 61 == 0 && S.hooks.idle && atomic_load(&S.idle_wanted) > 0) {
    stop_spinning(m);
    if (!idle_work(m)) return NULL;
  }
  /* An urgent task (see gq_urgent) at every other pick at most: a
   * stream of them (thousands of sleepers waking each millisecond) took
   * every turn, and the rest waited for good. Every 61st slice the
   * first of the others, for fairness (Go's schedtick % 61). */
  bool urgent_turn = !m->last_urgent &&
                     atomic_load_explicit(&S.gq_urgent, memory_order_relaxed) >
                         0;
  m->last_urgent = false;
  /* In the slice that runs (as a next slot's task): a timer's turn
   * between a pair's hand-offs began a new slice for the pair, which a
   * sleeper every 2 ms then kept from ever being preempted. */
  if (urgent_turn && (g = globrunq_get()) != NULL) m->inherit = true;
  else if (slice % 61 == 0) g = globrunq_get_plain();
  if (!g) g = runq_get(p);
  if (!g) g = globrunq_get();
  if (g) return g;
  /* Spin: look elsewhere, a bounded number of rounds. */
  if (!m->spinning) {
    int n = atomic_load(&S.nspinning);
    if (2 * n < atomic_load(&S.nprocs) - atomic_load(&S.npidle) + 1) {
      m->spinning = true;
      atomic_fetch_add(&S.nspinning, 1);
    }
  }
  seen_t seen[MAXPROCS + 1];
  if (m->spinning) {
    /* Past its rounds while the main thread's work is younger than
     * MAIN_AGE_NS (bounded): asleep, it would wake a thread for that
     * work at once (below), which would spin as long and sleep again. */
    for (int round = 0;
         round < SPIN_ROUNDS ||
         (round < 8 * SPIN_ROUNDS && main_work_young(&seen[MAXPROCS]));
         round++) {
      if ((g = runq_get(p)) || (g = globrunq_get()) ||
          (g = steal_work(p, seen, round == 0)))
        return g;
      if (oversubscribed()) sched_yield();
      else
        for (int i = 0; i < 100; i++) conc__cpu_relax();
    }
  }
  /* Nothing. It stops spinning (before it goes idle: once on the idle
   * list a waker may take it and set `spinning` again; and before its
   * idle work, which may be long: a spinner counted meanwhile would keep
   * wakep from waking anyone). */
  stop_spinning(m);
  /* Work that came while it was counted spinning (so nobody was woken
   * for it): its own, or the global queue's. */
  if ((g = runq_get(p)) != NULL || (g = globrunq_get()) != NULL) return g;
  /* Its idle work (collecting pooled states), holding its P: a P handed
   * on meanwhile would find this thread busy. */
  if (S.hooks.idle && !idle_work(m)) return NULL;
  /* Then it gives the P back and sleeps. Looked at again after, so that
   * a wake that saw no idle P (and so woke nobody) is not missed. */
  conc__lock(&S.lock);
  g = globrunq_get_locked();
  if (g) {
    conc__unlock(&S.lock);
    return g;
  }
  pidle_put_locked(p);
  atomic_store(&m->p, NULL);
  midle_put_locked(m); /* with its P: a wake that takes the P finds it */
  conc__unlock(&S.lock);
  int n = atomic_load(&S.nprocs);
  for (int k = 0; k < n; k++) {
    conc__p *v = atomic_load(&S.ps[k]);
    if (v && (atomic_load(&v->next) || runq_len(v) > 0)) {
      wakep();
      break;
    }
  }
  if (atomic_load(&S.main_next) != NULL || atomic_load(&S.mq_n) > 0 ||
      atomic_load(&S.idle_wanted) > 0)
    wakep();
  return NULL;
}

/* An idle thread sleeps until a P is handed to it (it is on the idle
 * list already: find_runnable put it there with its P, or the caller). */
static bool m_sleep(conc__m *m) {
  for (;;) {
    conc__lock(&S.lock);
    conc__p *p = m->handed;
    m->handed = NULL;
    /* Idle for IDLE_M_NS with more idle threads than Ps: it exits (a
     * burst of hand-offs leaves no lasting crowd of threads). */
    if (p == NULL && m->idle_since != 0 &&
        conc_now() - m->idle_since > IDLE_M_NS &&
        S.nmidle > atomic_load(&S.nprocs)) {
      for (conc__m **q = &S.midle; *q; q = &(*q)->next_idle)
        if (*q == m) {
          *q = m->next_idle;
          S.nmidle--;
          S.nm--;
          atomic_store(&m->alive, false);
          m->dead = true;
          conc__unlock(&S.lock);
          conc__fiber_release_cached(); /* the thread's spare fiber */
          return false;
        }
    }
    if (p == NULL && m->idle_since == 0) m->idle_since = conc_now();
    conc__unlock(&S.lock);
    if (p) {
      m->idle_since = 0;
      atomic_fetch_add(&m->slice, 1); /* whatever its next slot holds */
      atomic_store(&p->m, m);
      atomic_store(&m->p, p);
      return true;
    }
    futex_wait_word(&m->word, 0, conc_now() + IDLE_M_NS);
  }
}

static void *m_main(void *arg) {
  conc__m *m = (conc__m *)arg;
  self_m = m;
  (void)conc__waiter_self(); /* its own, for what it does outside tasks */
  if (!m_sleep(m)) return NULL; /* takes the P it was started with */
  for (;;) {
    conc__g *g = find_runnable(m);
    if (g == NULL) { /* it is on the idle list, without its P */
      if (!m_sleep(m)) return NULL;
      continue;
    }
    execute(m, g);
    if (atomic_load(&m->p) == NULL) { /* its P was taken in its task */
      conc__lock(&S.lock);
      midle_put_locked(m);
      conc__unlock(&S.lock);
      if (!m_sleep(m)) return NULL;
    }
  }
  return NULL;
}

/* ---- the monitor -------------------------------------------------------- */

static conc_time cpu_time(conc__m *m) {
  struct timespec ts;
  if (clock_gettime((clockid_t)atomic_load(&m->clock), &ts) != 0) return 0;
  return (conc_time)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool work_waiting(void) {
  if (atomic_load(&S.gq_n) > 0 || atomic_load(&S.main_next) ||
      atomic_load(&S.mq_n) > 0)
    return true;
  int n = atomic_load(&S.nprocs);
  for (int k = 0; k < n; k++) {
    conc__p *p = atomic_load(&S.ps[k]);
    if (p && (atomic_load(&p->next) || runq_len(p) > 0)) return true;
  }
  return false;
}

/* How long the monitor has seen m in the turn it is in now (from its
 * first look at that turn), or -1 if m is not in the same turn as at
 * the last look. */
static conc_time turn_age(conc__m *m, conc_time now) {
  unsigned long tick = atomic_load(&m->tick);
  bool in = atomic_load(&m->in_task) != 0;
  bool same = in && tick == m->seen_tick && m->turn_seen != 0;
  m->seen_tick = tick;
  if (!same) m->turn_seen = in ? now : 0;
  return same ? now - m->turn_seen : -1;
}

/* How long m has been in the slice it is in now (see conc__m.slice),
 * from the monitor's first look at it; -1 if it began since. */
static conc_time slice_age(conc__m *m, conc_time now) {
  unsigned long slice = atomic_load(&m->slice);
  bool same = slice == m->seen_slice && m->slice_seen != 0;
  m->seen_slice = slice;
  if (!same) m->slice_seen = now;
  return same ? now - m->slice_seen : -1;
}

/* The main script's next slot and queue, when its thread has not
 * scheduled since the monitor's last look (it computes, is in C, sleeps
 * in a wait, is in one long turn, or the script ended): to the global
 * queue, urgent, which a busy P takes at its next turn. A spinning
 * thread steals them only when a P runs out of work: with the Ps busy,
 * tasks a helped turn had left there waited for the main script's next
 * wait (300 ms behind a computing script; a livelock while pollers kept
 * the Ps busy and the main script slept). */
static void main_flush(void) {
  /* Neither moved since the last look: what waits there has waited a
   * tick. (The main thread's tick alone: a `conc.go` then `join` from a
   * script that had not waited for a while lost its task to a P's
   * thread when the look fell between the two.) */
  static unsigned long seen_tick, seen_puts; /* the monitor's alone */
  unsigned long tick = atomic_load(&main_m.tick);
  unsigned long puts = atomic_load(&S.main_next_puts);
  bool still = tick == seen_tick && puts == seen_puts;
  seen_tick = tick;
  seen_puts = puts;
  if (!still) return;
  bool moved = false;
  conc__g *g;
  if (atomic_load(&S.main_next) != NULL &&
      (g = atomic_exchange(&S.main_next, NULL)) != NULL) {
    CONC_HB_AFTER(&S.main_next);
    globrunq_put_urgent(g);
    moved = true;
  }
  while ((g = mainq_get()) != NULL) {
    globrunq_put_urgent(g);
    moved = true;
  }
  if (moved) wakep();
}

static void look_at_threads(conc_time now) {
  conc__lock(&S.lock);
  conc__m *list = S.allm;
  conc__unlock(&S.lock);
  bool waiting = work_waiting();
  /* Idle work waiting: a thread blocked in C (or in a finalizer) past
   * BLOCKED_NS hands its P on for it too (one computing keeps it: each
   * would hand on to a new thread that collects in turn), but no task is
   * preempted for it. */
  bool idle_waiting = atomic_load(&S.idle_wanted) > 0;
  /* The main script's thread, while it runs a task: preempted too (the
   * main script waits for it to yield), never handed off (no P). */
  if (atomic_load(&main_registered)) {
    conc__m *m = &main_m;
    /* Always after a slice: the main script's own wait may have ended
     * (a timeout sets no flag), and it waits for this task to yield. */
    /* Once a slice, not at every look: the first sets the hook, which
     * stays; a turn in foreign C had a signal a millisecond, each
     * interrupting its system call (EINTR, or a restart). */
    static conc_time signalled; /* the monitor's alone */
    if (turn_age(m, now) > PREEMPT_NS && atomic_load(&m->in_task) == 1 &&
        now - signalled >= PREEMPT_NS) {
      signalled = now;
      atomic_fetch_add(&S.preemptions, 1);
      pthread_kill(atomic_load(&m->tid), SIGURG);
    }
  }
  for (conc__m *m = list; m; m = m->next_all) { /* never unlinked */
    if (!atomic_load(&m->alive)) continue;
    conc_time age = turn_age(m, now);
    conc_time in_slice = slice_age(m, now);
    conc__p *p = atomic_load(&m->p);
    bool same = age >= 0;
    conc_time cpu = same ? cpu_time(m) : 0;
    bool idle_cpu = same && cpu - m->seen_cpu < (now - m->seen_at) / 8;
    m->suspect = idle_cpu ? m->suspect + 1 : 0;
    int kind = atomic_load(&m->in_task);
    if (same && p && age > BLOCKED_NS &&
        ((waiting && (m->suspect >= 2 || kind == IDLE_WORK)) ||
         (idle_waiting && m->suspect >= 2))) {
      /* Not computing (a thread that computes but waits for a core uses
       * more than an eighth of one, on a loaded machine too): blocked in
       * C. Its P goes to another thread. Idle work (finalizers) cannot
       * be preempted: its P goes too, computing or not. */
      /* Winning in_task 1 (or IDLE_WORK) -> 2 makes the monitor the
       * owner of m's P: the thread, at its turn's end, waits for m->p
       * to be cleared. */
      if ((kind == 1 || kind == IDLE_WORK) &&
          atomic_compare_exchange_strong(&m->in_task, &kind, 2)) {
        conc__p *q = atomic_exchange(&m->p, NULL);
        atomic_store(&q->m, NULL);
        handoff_p(q);
      }
    } else if (same && waiting && age > UNYIELDING_NS && p && kind == 1 &&
               atomic_compare_exchange_strong(&m->in_task, &kind, 2)) {
      /* Asked to yield for 20 ms and still in the same turn: it cannot
       * (it computes where a task cannot yield, in a sort comparator).
       * It goes on computing on its thread, and its P goes to another,
       * as a blocked one's: the others run meanwhile. */
      conc__p *q = atomic_exchange(&m->p, NULL);
      atomic_store(&q->m, NULL);
      handoff_p(q);
    } else if (waiting && in_slice > PREEMPT_NS &&
               atomic_load(&m->in_task) == 1) {
      atomic_fetch_add(&S.preemptions, 1);
      pthread_kill(atomic_load(&m->tid), SIGURG);
    }
    m->seen_cpu = same ? cpu : cpu_time(m);
    m->seen_at = now;
  }
}

/*
 * A burst of tasks leaves malloc's arenas (one per thread that ran them)
 * holding the freed states, messages and tasks in fragments that malloc
 * gives back to the system only from an arena's top: 5,000 parked tasks
 * a round left 570 MB resident for good, 12 MB of it in use. Once no
 * task has lived for RELEASE_NS, the monitor has every arena give back
 * its free pages (malloc_trim: ~50 ms for 400 MB, 410 -> 97 MB), as Go's
 * scavenger returns the heap's free pages in the background. Not sooner:
 * a program that starts tasks again would fault them in again (~10 us a
 * page here).
 */
static void release_memory(void) {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

static void *monitor_main(void *arg) {
  (void)arg;
  conc_time last_live = 0;
  bool was_live = false;
  bool release_due = false; /* tasks lived since the last release */
  long turns_seen = 0;
  for (;;) {
    unsigned word = atomic_load(&S.mon_word);
    conc_time next = fire_timers();
    conc_time now = conc_now();
    /* Idle work waiting (finalizers) keeps it looking, as tasks do. */
    bool live = atomic_load(&S.live) > 0 || atomic_load(&S.idle_wanted) > 0;
    /* Tasks that started and ended between two looks count as live
     * then, for the release (their turns were counted). */
    long turns = atomic_load_explicit(&S.tasks_run, memory_order_relaxed);
    if (turns != turns_seen) {
      turns_seen = turns;
      last_live = now;
      release_due = true;
    }
    if (live) {
      last_live = now;
      release_due = true;
      main_flush();
      look_at_threads(now);
      /* Work nobody came for (a next slot whose owner computes): a
       * thread looks for it. */
      if (work_waiting() || atomic_load(&S.idle_wanted) > 0) wakep();
    } else if (was_live) {
      /* The last task ended: a thread that finds nothing to do runs the
       * idle hook (collecting the pooled states' garbage) before it
       * sleeps. Else, when the main script's thread ran the tasks
       * itself, nothing would collect what they left. */
      wakep();
    }
    was_live = live;
    /* Ticking on a while after the last task ended spares a program
     * that starts tasks one after another (spawn, join, spawn) a wake
     * of the monitor at each start (conc__g_start). */
    if (now - last_live < LINGER_NS && next > now + TICK_NS)
      next = now + TICK_NS;
    if (!live && release_due) {
      if (now - last_live >= RELEASE_NS) {
        release_due = false;
        release_memory();
      } else if (next > last_live + RELEASE_NS) {
        next = last_live + RELEASE_NS;
      }
    }
    atomic_store(&S.mon_at, next == CONC_NEVER ? 0 : next);
    /* Against conc__g_start: it raises live, then reads mon_at; this
     * stores mon_at, then reads live. One of the two sees the other.
     * (Whenever it would sleep past a tick: with no task live it may
     * sleep until the release below, and a start that read the mon_at
     * before, a tick from then, did not wake it.) */
    if (next > now + TICK_NS &&
        (atomic_load(&S.live) > 0 || atomic_load(&S.idle_wanted) > 0))
      continue;
    if (next > now) futex_wait_word(&S.mon_word, word, next);
  }
  return NULL;
}

static void on_sigurg(int sig) {
  (void)sig;
  if (S.hooks.preempt) S.hooks.preempt();
}

/* The environment variable name as a positive decimal integer below
 * limit, or 0 if unset or anything else ("5abc", "1.9", " 2"): as Go
 * reads GOMAXPROCS, all of it or nothing. */
static long env_count(const char *name, long limit) {
  const char *e = getenv(name);  // NOLINT(concurrency-mt-unsafe)
  if (e == NULL || *e < '0' || *e > '9') return 0;
  char *end;
  errno = 0;
  long n = strtol(e, &end, 10);
  return *end == '\0' && errno == 0 && n > 0 && n < limit ? n : 0;
}

/* The cap on threads that run tasks (Go's debug.SetMaxThreads, 10,000;
 * past it conc starts no more, see thread_refused). */
static int default_max_threads(void) {
  long n = env_count("CONC_MAXTHREADS", 1000000);
  return n > 0 ? (int)n : 10000;
}

static int default_procs(void) {
  /* Read once (pthread_once), when conc first starts a task. */
  long n = env_count("CONC_MAXPROCS", LONG_MAX);
  if (n <= 0) n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) n = 1;
  if (n > MAXPROCS) n = MAXPROCS;
  return (int)n;
}

/*
 * The monitor thread (monitor_main), started with the scheduler. No task
 * starts without it (it fires their timers, hands on the Ps of threads
 * blocked in C, preempts): if the system refused it then (no memory for
 * its stack), each task's start tries again, and fails as a spawn the
 * system refuses. Its stack is small: it runs no Lua and calls little.
 */
static atomic_bool monitor_up;
static conc__lock_t monitor_lock = CONC_LOCK_INIT;

static int start_monitor(void) {
  if (atomic_load(&monitor_up)) return 0;
  conc__lock(&monitor_lock);
  int rc = 0;
  if (!atomic_load(&monitor_up)) {
    pthread_attr_t attr;
    CONC_CHECK(pthread_attr_init(&attr));
    CONC_CHECK(pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED));
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    CONC_CHECK(pthread_attr_setstacksize(&attr, 256u << 10));
#endif
    pthread_t tid;
    sigset_t old;
    conc_signal_block(&old);
    rc = pthread_create(&tid, &attr, monitor_main, NULL);
    conc_signal_restore(&old);
    CONC_CHECK(pthread_attr_destroy(&attr));
    if (rc == 0) atomic_store(&monitor_up, true);
  }
  conc__unlock(&monitor_lock);
  return rc;
}

static void init(void) {
  CONC_HB_ATOMIC(&S.gq_n);
  CONC_HB_ATOMIC(&S.gq_urgent);
  CONC_HB_ATOMIC(&S.npidle);
  CONC_HB_ATOMIC(&S.nprocs);
  CONC_HB_ATOMIC(&S.nspinning);
  CONC_HB_ATOMIC(&S.started);
  CONC_HB_ATOMIC(&S.main_next);
  CONC_HB_ATOMIC(&S.main_next_puts);
  CONC_HB_ATOMIC(&S.mq_n);
  CONC_HB_ATOMIC(&S.live);
  CONC_HB_ATOMIC(&S.npinned);
  CONC_HB_ATOMIC(&S.main_w);
  CONC_HB_ATOMIC(&S.mon_word);
  CONC_HB_ATOMIC(&S.mon_at);
  CONC_HB_ATOMIC(&S.ps);
  CONC_HB_ATOMIC(&S.tasks_run);
  CONC_HB_ATOMIC(&S.steals);
  CONC_HB_ATOMIC(&S.preemptions);
  CONC_HB_ATOMIC(&S.handoffs);
  CONC_HB_ATOMIC(&S.helped);
  CONC_HB_ATOMIC(&S.thread_blocks);
  m_atomics(&main_m);
  CONC_HB_ATOMIC(&main_registered);
  int n = default_procs();
  atomic_store(&S.nprocs, n);
  conc__lock(&S.lock);
  S.max_threads = default_max_threads();
  for (int i = n - 1; i >= 0; i--) make_p_locked(i);
  S.nmade = n;
  conc__unlock(&S.lock);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigurg;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGURG, &sa, NULL);
  start_monitor(); /* refused: the first task's start tries again */
  atomic_store(&S.started, true);
  /* A thread for each P now, which goes idle at once: the first tasks
   * readied while the main script waits find a thread to wake rather
   * than wait for one to be made (slow under the sanitizers). */
  for (int i = 0; i < n; i++) {
    conc__lock(&S.lock);
    conc__p *p = pidle_get_locked();
    conc__unlock(&S.lock);
    if (p) give_p(p, false);
  }
}

/* ---- the runtime's side ------------------------------------------------- */

/*
 * A task woken by a thread goes to that thread's next slot, and a thread
 * is woken to look for work only when what was there before is pushed
 * out (so there is more than the slot): the waker usually parks soon and
 * runs the slot itself (a spawn then join, a ping-pong), which a thread
 * woken for it would only race for, at a system call each time. A slot
 * whose owner does not come for it is taken by a spinning thread after
 * a round (the main thread's after MAIN_AGE_NS), or handed on by the
 * monitor within a millisecond.
 */
void conc__ready(conc__g *g) {
  if (atomic_load(&g->pinned)) {
    pinned_put(g);
    return;
  }
  conc__m *m = self_m;
  conc__g *out = NULL;
  if (m == &main_m) {
    out = main_next_put(g, atomic_load(&m->in_task) == 1) ? g : NULL;
  } else {
    /* Not to its P while it lost it (2) or runs idle work (finalizers,
     * which may go on long: the task would wait in its next slot). */
    int in = m ? atomic_load(&m->in_task) : 2;
    conc__p *p = in != 2 && in != IDLE_WORK ? atomic_load(&m->p) : NULL;
    if (p) {
      runq_put(p, g, true);
      out = queue_nonempty(p) ? g : NULL; /* more than the next slot */
    } else {
      globrunq_put_urgent(g);
      out = g;
    }
  }
  if (out) wakep();
}

int conc__g_start(conc__g *g) {
  CONC_CHECK(pthread_once(&init_once, init));
  if (start_monitor() != 0) return CONC_ETHREAD;
  g->deadline = CONC_NEVER;
  g->timer_idx = -1;
  /* The monitor must tick within TICK_NS of a task's start; it is
   * woken only when it sleeps longer (see monitor_main). */
  if (atomic_fetch_add(&S.live, 1) == 0) wake_monitor_by(conc_now() + TICK_NS);
  conc__ready(g);
  return CONC_OK;
}

void conc__g_end(conc__g *g) {
  (void)g;
  atomic_fetch_sub(&S.live, 1);
}

/* A state claims the main script's part (lconc.c's claim_main): the
 * first on this thread, or the next after the one before closed. On the
 * thread that had it, it helps again as the first did (a host that runs
 * scripts one after another in new states on one thread). On another,
 * the part is a blocked wait's only: tasks whose turns were suspended on
 * the first thread's helper fibers can be resumed by that thread alone
 * (their frames may hold its thread-local addresses). */
void conc__sched_main_thread(void) {
  self_m = &main_m;
  if (atomic_load(&main_registered)) {
    if (pthread_equal(atomic_load(&main_m.tid), pthread_self()))
      atomic_store(&main_done, false);
    return;
  }
  clockid_t clock;
  if (pthread_getcpuclockid(pthread_self(), &clock) != 0)
    clock = CLOCK_MONOTONIC;
  atomic_store(&main_m.tid, pthread_self());
  atomic_store(&main_m.clock, clock);
  atomic_store(&main_registered, true);
}

void conc__sched_main_done(void) { atomic_store(&main_done, true); }

/* The main script's thread goes on through channel operations while a
 * task it woke waits in its next slot: the rule that it would run that
 * task itself at its next wait (conc__ready) fails for a producer and a
 * consumer (the main script drains a buffer, the producer it woke waits
 * for it to be empty). After MAIN_OPS_WAKE such operations, a thread is
 * woken to take the task (a spinning thread takes a next slot left a
 * whole round). */
#define MAIN_OPS_WAKE 64
void conc__sched_main_progress(void) {
  static atomic_int ops; /* the main thread's (see main_next_by_turn) */
  if (self_m != &main_m) return;
  if (atomic_load_explicit(&S.main_next, memory_order_relaxed) == NULL &&
      atomic_load_explicit(&S.mq_n, memory_order_relaxed) == 0) {
    atomic_store_explicit(&ops, 0, memory_order_relaxed);
    return;
  }
  /* (load and store, no read-modify-write: a plain counter's cost) */
  int n = atomic_load_explicit(&ops, memory_order_relaxed) + 1;
  atomic_store_explicit(&ops, n < MAIN_OPS_WAKE ? n : 0, memory_order_relaxed);
  if (n >= MAIN_OPS_WAKE) wakep();
}

/*
 * Helpers: the main script's thread runs a task's turn on a helper fiber
 * (a stack of its own, as a scheduler thread's), not on its own stack.
 * If the task then blocks where it cannot yield (a table.sort comparator,
 * a metamethod called from C), its park suspends the helper fiber
 * (park_task: the fiber is the current one) and the main script goes on
 * at once: its own wait may be over, and what the task waits for may be
 * something only the main script will do. The turn stays on that fiber,
 * pinned to the main thread (a thread's frames cannot move to another):
 * when woken, the task goes to the main thread's queue, which the main
 * script's next wait in conc runs first (a wait asleep is woken for it).
 * The runtime's per-thread state of the turn and the thread's waiter are
 * swapped out with the fiber and back in with it.
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HELPER_STACK (8u << 20)
#else
#define HELPER_STACK (1u << 20) /* as a scheduler thread's */
#endif
/* A suspended helped turn holds its helper: past the thread cap
 * (CONC_MAXTHREADS), tasks blocked where they cannot yield pile up on
 * the main thread, which alone runs the ready ones then; with 64 the
 * 65th such task left a producer they waited for unrun, for good.
 * Address space only (MAP_NORESERVE), touched as deep as a turn goes. */
#define HELPERS_MAX 4096

typedef struct conc__helper {
  conc__fiber *f;
  conc_waiter *main_w, *turn_w; /* the thread's waiter: the other one */
  void *ctx[CONC__CTX_WORDS]; /* the runtime's state: the other one */
  struct conc__helper *next_free;
} conc__helper;

/* Helpers kept for the next waits; the rest are unmapped when put back:
 * a burst of tasks blocked in comparators left hundreds of touched
 * stacks mapped for the process's life. */
#define HELPERS_KEEP 8

static conc__helper *helpers_free; /* the main thread's alone */
static int helpers_made, helpers_idle;

static conc__helper *helper_get(void) {
  conc__helper *h = helpers_free;
  if (h != NULL) {
    helpers_free = h->next_free;
    helpers_idle--;
    return h;
  }
  if (helpers_made >= HELPERS_MAX || S.hooks.ctx == NULL) return NULL;
  h = calloc(1, sizeof *h);
  if (h != NULL && (h->f = conc__fiber_new_big(HELPER_STACK)) == NULL) {
    free(h);
    h = NULL;
  }
  if (h != NULL) helpers_made++;
  return h;
}

static void helper_put(conc__helper *h) {
  atomic_store_explicit(&S.no_helper, false, memory_order_relaxed);
  if (helpers_idle >= HELPERS_KEEP) {
    conc__fiber_free_big(h->f);
    free(h);
    helpers_made--;
    return;
  }
  h->next_free = helpers_free;
  helpers_free = h;
  helpers_idle++;
}

/* No helper could be had: the main script's wait sleeps until one is
 * free (conc__sched_pinned_ready) rather than wake, fail and wake again
 * for the work it cannot run (100% of a core, for good). Said once. */
__attribute__((cold)) static void helpers_out(void) {
  static bool said; /* the main thread's alone */
  /* Only while all it has are held: one put back clears it. (A first
   * helper that could not be made leaves the waits retrying.) */
  if (helpers_made > 0 && helpers_free == NULL)
    atomic_store(&S.no_helper, true);
  if (said) return;
  said = true;
  if (helpers_made > 0)
    fprintf(stderr,
            "conc: the main script's thread holds %d tasks blocked where "
            "they cannot yield, and runs no more; ready tasks wait for a "
            "thread\n",
            helpers_made);
  else /* no memory for a helper's stack: it will try again */
    fputs(
        "conc: the main script's thread could not get a stack to run "
        "tasks on (no memory); ready tasks wait for a thread\n",
        stderr);
  fflush(stderr);
}

static void helped_turn(void *g) { execute(&main_m, (conc__g *)g); }

/* Runs a turn of g on the main thread: a new one, or one that was
 * suspended (g->helper); false if it could not (g went to the global
 * queue). */
static bool run_helped(conc__g *g) {
  conc__helper *h = g->helper;
  if (h == NULL) {
    h = helper_get();
    if (h == NULL && S.hooks.ctx == NULL) { /* a host without a runtime */
      execute(&main_m, g);
      return true;
    }
    if (h == NULL) { /* none can be had: not on this stack, which could
                      * then block on what a suspended turn holds */
      helpers_out();
      globrunq_put(g);
      wakep();
      return false;
    }
    h->main_w = conc__waiter_self();
    /* Stored once: S's line is read by every thread. */
    if (atomic_load_explicit(&S.main_w, memory_order_relaxed) != h->main_w)
      atomic_store(&S.main_w, h->main_w);
    S.hooks.ctx(h->ctx, CONC__CTX_SAVE);
    if (conc__fiber_run(h->f, helped_turn, g)) {
      helper_put(h);
      return true;
    }
  } else {
    g->helper = NULL;
    atomic_store(&g->pinned, false);
    timer_del(g);
    S.hooks.ctx(h->ctx, CONC__CTX_SWAP);
    h->main_w = conc__waiter_swap(h->turn_w);
    atomic_fetch_add_explicit(&main_m.tick, 1, memory_order_relaxed);
    atomic_store(&main_m.in_task, 1);
    if (conc__fiber_resume(h->f)) { /* the turn ended: execute's own end */
      S.hooks.ctx(h->ctx, CONC__CTX_RESTORE);
      conc__waiter_swap(h->main_w);
      helper_put(h);
      return true;
    }
  }
  /* Suspended: the task blocked where it cannot yield (park_task). */
  atomic_store(&main_m.in_task, 0);
  h->turn_w = conc__waiter_swap(h->main_w);
  S.hooks.ctx(h->ctx, CONC__CTX_SWAP);
  g->helper = h;
  atomic_store(&g->pinned, true);
  commit_park(NULL, g);
  return true;
}

bool conc__sched_helped_pause(void) {
  if (self_m != &main_m || conc__fiber_current() == NULL) return false;
  conc_waiter *w = conc__waiter_self(); /* the turn's (execute swapped) */
  if (w->g == NULL) return false;
  /* Not waiting: run_helped's commit_park must find it ready at once,
   * not park it (a waiter that never waited reads WAITING). No waker
   * touches the state of a waiter that is not in a wait. */
  atomic_store(&w->state, CONC_W_WOKEN);
  w->g->deadline = CONC_NEVER;
  atomic_fetch_add(&S.preemptions, 1);
  conc__fiber_suspend(); /* back here when the main script runs it on */
  return true;
}

/* Whether the main script's thread running a task would make more
 * threads running tasks than there are cores: every P's thread runs one
 * (none idle, none spinning) and they fill the cores. With 8 tasks on a
 * semaphore of 2 and 2 Ps on 2 cores, that third runner took turns with
 * the others, a holder lost its core, the tasks queued on the semaphore
 * and each release then handed its unit on to a parked task (a convoy:
 * a park and a wake a pair, 10x slower, B15). With a core to spare it
 * runs the task (a ping-pong with the main script stays on its thread:
 * sent away, each hand-off waited for a P's next turn). */
static bool main_would_crowd(void) {
  /* (starved: no thread could be started, it may be the only runner) */
  return !atomic_load_explicit(&S.starved, memory_order_relaxed) &&
         atomic_load_explicit(&S.npidle, memory_order_relaxed) == 0 &&
         atomic_load_explicit(&S.nspinning, memory_order_relaxed) == 0 &&
         atomic_load_explicit(&S.nprocs, memory_order_relaxed) + 1 >
             conc__cpus();
}

bool conc__sched_should_leave_main(void) {
  return self_m == &main_m && conc__fiber_current() != NULL &&
         !atomic_load_explicit(&S.starved, memory_order_relaxed);
}

bool conc__sched_help(void) {
  if (self_m != &main_m || !atomic_load(&S.started) || atomic_load(&main_done))
    return false;
  atomic_fetch_add_explicit(&main_m.tick, 1, memory_order_relaxed);
  /* A suspended turn first: it may hold what others wait for. */
  conc__g *g = pinned_get();
  if (g == NULL) {
    /* The queue first every 61st time: a pair handing the turn back and
     * forth through the next slot would keep it for good. */
    unsigned long tick = atomic_load_explicit(&main_m.tick,
                                              memory_order_relaxed);
    if (tick % 61 == 0) g = mainq_get();
    if (g == NULL && (g = atomic_exchange(&S.main_next, NULL)) != NULL)
      CONC_HB_AFTER(&S.main_next);
    if (g == NULL) g = mainq_get();
    if (g && main_would_crowd()) {
      /* A P takes them at its next turn; the queue's too, which the
       * main script's sleep would leave there (see main_flush). */
      do globrunq_put_urgent(g);
      while ((g = mainq_get()) != NULL);
      wakep(); /* (or one that went idle meanwhile) */
      return false;
    }
  }
  /* Other work only while no thread could be started for an idle P:
   * then nobody else may run it. Not while the Ps are busy: the tasks
   * then ran on one thread more than GOMAXPROCS (Go's bound), and on 2
   * cores a task holding a semaphore or a lock could lose its core to
   * one waiting for it. Nor while a P is idle: its thread, woken for
   * the work, would find it taken and sleep again. */
  bool any = !g && atomic_load(&S.starved);
  if (any) g = globrunq_get();
  if (!g && any) {
    int n = atomic_load(&S.nprocs);
    for (int k = 0; k < n && !g; k++) {
      conc__p *v = atomic_load(&S.ps[k]);
      /* Its next slot too when no thread could be started for it. */
      if (v) g = steal_from(NULL, v, atomic_load(&S.starved));
    }
  }
  if (!g || !run_helped(g)) return false;
  atomic_fetch_add_explicit(&S.helped, 1, memory_order_relaxed);
  return true;
}

void conc__sched_main_idle(void) {
  if (S.hooks.main_idle) S.hooks.main_idle();
}

bool conc__sched_on_main(void) { return self_m == &main_m; }

bool conc__sched_work_waiting(void) {
  conc__m *m = self_m;
  conc__p *p = m != NULL ? atomic_load(&m->p) : NULL;
  return atomic_load_explicit(&S.gq_n, memory_order_relaxed) > 0 ||
         (p != NULL && runq_len(p) > 0);
}

void conc__sched_idle_work_add(int delta) {
  CONC_CHECK(pthread_once(&init_once, init));
  int old = atomic_fetch_add(&S.idle_wanted, delta);
  if (old + delta <= 0) return;
  /* The monitor looks while idle work waits (see monitor_main): woken
   * for the first, as conc__g_start wakes it for the first task. */
  if (old <= 0) wake_monitor_by(conc_now() + TICK_NS);
  wakep();
}

void conc__sched_block_begin(void) {
  atomic_fetch_add_explicit(&S.thread_blocks, 1, memory_order_relaxed);
  conc__sched_hand_off();
}

void conc__sched_hand_off(void) {
  conc__m *m = self_m;
  if (m == NULL || m == &main_m) return;
  int one = 1;
  /* Its P goes, unless the monitor took it already. */
  if (!atomic_compare_exchange_strong(&m->in_task, &one, 2)) return;
  /* From now on its wakes go to the global queue, not to the P it no
   * longer holds (which may go idle, where nobody would run them). */
  conc__p *p = atomic_exchange(&m->p, NULL);
  if (p == NULL) return;
  atomic_store(&p->m, NULL);
  handoff_p(p);
}

void conc__sched_block_end(void) {
  /* The thread goes on without a P to the end of its task's turn, then
   * looks for one (execute sees in_task == 2). */
}

int conc__sched_maxprocs(int n) {
  CONC_CHECK(pthread_once(&init_once, init));
  int old = atomic_load(&S.nprocs);
  if (n <= 0) return old;
  if (n > MAXPROCS) n = MAXPROCS;
  conc__lock(&S.lock);
  for (int i = S.nmade; i < n; i++) make_p_locked(i);
  if (n > S.nmade) S.nmade = n;
  atomic_store(&S.nprocs, n);
  /* Idle Ps beyond n leave the idle list (pidle_get skips them). */
  conc__unlock(&S.lock);
  wakep();
  return old;
}

void conc__sched_get_stats(conc__sched_stats *out) {
  memset(out, 0, sizeof *out);
  out->tasks_run = atomic_load(&S.tasks_run);
  out->steals = atomic_load(&S.steals);
  out->preemptions = atomic_load(&S.preemptions);
  out->handoffs = atomic_load(&S.handoffs);
  out->helped = atomic_load(&S.helped);
  out->thread_blocks = atomic_load(&S.thread_blocks);
  out->thread_failures = atomic_load(&S.thread_failures);
  out->procs = atomic_load(&S.nprocs);
  out->spinning = atomic_load(&S.nspinning);
  out->global_queue = atomic_load(&S.gq_n);
  conc__lock(&S.lock);
  out->threads = S.nm;
  out->idle_threads = S.nmidle;
  conc__unlock(&S.lock);
  for (int k = 0; k < out->procs && k < 64; k++) {
    conc__p *p = atomic_load(&S.ps[k]);
    if (p) out->queue[k] = runq_len(p);
  }
}
