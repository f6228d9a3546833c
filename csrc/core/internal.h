/*
 * internal.h: what the core's files share and nobody else sees.
 *
 * The waiter is the one way to block. A thread that must wait links one
 * sudog per wait queue it waits on (a channel's sendq or recvq, later a
 * mutex's queue...), each pointing at the thread's waiter, then parks.
 * Whoever makes progress possible claims the waiter with a compare-and-
 * swap on `selected` (only one claim ever wins, which is what makes
 * select pick exactly one case), completes the operation for it while
 * holding the queue's lock, and wakes it after releasing that lock. A
 * plain channel wait (not a select) that still spins is woken under the
 * lock instead, and never claims itself: see struct conc_waiter.
 */
#ifndef CONC_INTERNAL_H
#define CONC_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "../conc.h"

#define conc__unused(x) ((void)(x))

/* Thread-locals in the initial-exec model: static TLS, never malloc'd and
 * freed per thread (dynamic TLS of a dlopen'd module is), and cheaper. */
#define CONC_TLS _Thread_local __attribute__((tls_model("initial-exec")))

/* A broken pthread primitive is a bug, not an outcome: abort. */
CONC_API _Noreturn void conc__fatal(const char *what, int err);
#define CONC_CHECK(call)                           \
  do {                                             \
    int conc__rc = (call);                         \
    if (conc__rc != 0) conc__fatal(#call, conc__rc); \
  } while (0)

/*
 * Happens-before annotations for Helgrind (`make helgrind`), which knows
 * pthreads but not C11 atomics, our futex lock or the waiter protocol.
 * CONC_HB_BEFORE(p) in one thread and CONC_HB_AFTER(p) in another that
 * observed its effect (the same address p names the edge) make the first
 * happen before the second. CONC_HB_FORGET(p) drops what p accumulated,
 * for an address about to be freed. Only a build with -DCONC_VALGRIND
 * (build-helgrind/) compiles them in; otherwise they are nothing at all.
 */
#ifdef CONC_VALGRIND
#include <valgrind/helgrind.h>
#define CONC_HB_BEFORE(p) ANNOTATE_HAPPENS_BEFORE(p)
#define CONC_HB_AFTER(p) ANNOTATE_HAPPENS_AFTER(p)
#define CONC_HB_FORGET(p) ANNOTATE_HAPPENS_BEFORE_FORGET_ALL(p)
/* *p is a futex word: only atomic operations and the kernel touch it,
 * so no access to it is a data race (Helgrind takes a relaxed atomic
 * store for a plain one). Its edges are annotated where it is used. */
#define CONC_HB_FUTEX_WORD(p) ANNOTATE_BENIGN_RACE_SIZED(p, sizeof *(p), "")
/* *p is a C11 atomic (Helgrind would take its relaxed loads for races). */
#define CONC_HB_ATOMIC(p) ANNOTATE_BENIGN_RACE_SIZED(p, sizeof *(p), "")
#else
#define CONC_HB_ATOMIC(p) ((void)0)
#define CONC_HB_BEFORE(p) ((void)0)
#define CONC_HB_AFTER(p) ((void)0)
#define CONC_HB_FORGET(p) ((void)0)
#define CONC_HB_FUTEX_WORD(p) ((void)0)
#endif

/*
 * The core's internal lock: a futex word (0 free, 1 held, 2 held with
 * sleepers). Uncontended it costs one compare-and-swap to take and one
 * exchange to release; contended it spins briefly, then sleeps. Zero
 * (CONC_LOCK_INIT, or calloc) is an unlocked lock; nothing to destroy.
 */
typedef struct conc__lock_t {
  atomic_uint v;
} conc__lock_t;
#define CONC_LOCK_INIT {0}

CONC_API void conc__lock_slow(conc__lock_t *l);
CONC_API void conc__unlock_wake(conc__lock_t *l);

static inline void conc__lock(conc__lock_t *l) {
  unsigned c = 0;
  if (!atomic_compare_exchange_strong_explicit(&l->v, &c, 1,
                                               memory_order_acquire,
                                               memory_order_relaxed))
    conc__lock_slow(l);
  CONC_HB_AFTER(l);  /* every earlier unlock happened before */
}

static inline void conc__unlock(conc__lock_t *l) {
  CONC_HB_BEFORE(l);
  if (atomic_exchange_explicit(&l->v, 0, memory_order_release) == 2)
    conc__unlock_wake(l);
}

/* Asks for p's cache line, to write it, without waiting for it. */
static inline void conc__prefetch_write(const void *p) {
#if defined(__x86_64__) || defined(__i386__)
  __asm__ __volatile__("prefetchw %0" : : "m"(*(const char *)p));
#else
  __builtin_prefetch(p, 1, 3);
#endif
}

/* t + d (d >= 0), clamped to CONC_LATEST instead of overflowing: a
 * deadline far away stays a deadline (never CONC_NEVER). */
static inline conc_time conc__time_add(conc_time t, conc_time d) {
  return d > CONC_LATEST - t ? CONC_LATEST : t + d;
}

/* A spin-wait hint to the processor. */
static inline void conc__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* ---- waiter ----------------------------------------------------------- */

typedef struct conc_sudog conc_sudog;
struct conc_sudog {
  conc_sudog *prev, *next;  /* links in one wait queue (its lock guards) */
  conc_waiter *w;
  conc_msg *elem;           /* send: the message; recv: where it goes */
  int32_t index;            /* the case index claimed on success */
  unsigned char ok;         /* set by the waker: a CONC_SUDOG_ value */
  bool linked;              /* in a queue now (guarded by the queue lock) */
  bool handoff;             /* a buffered channel's waker may do its
                             * operation for it (chan.c: park_buffered) */
};  /* 40 bytes: see struct conc_waiter's first line */

/* What a waker tells the sudog's owner. */
enum {
  CONC_SUDOG_CLOSED = 0,  /* the channel closed */
  CONC_SUDOG_DONE = 1,    /* the operation was done for it */
  CONC_SUDOG_RETRY = 2    /* buffered channel: try the operation again */
};

enum {
  CONC_SEL_NONE = -1,
  CONC_SEL_TIMEOUT = -2,
  CONC_SEL_DEADLOCK = -3,
  CONC_SEL_INTERRUPT = -5  /* the main script's wait, interrupted */
};

/* The code a wait ended by an abort returns: a deadlock or an interrupt
 * (both claim the waiter, so no waker can have completed it). */
static inline int conc__abort_code(int fired) {
  return fired == CONC_SEL_INTERRUPT ? CONC_EINTR : CONC_EDEADLOCK;
}

/*
 * One per thread. `state` and `selected` are the wake-up protocol. The
 * rest serves deadlock detection and the worker dump (sched.c): a
 * "counted" thread is the main script's or a worker's. Only the owner
 * writes them: `what`, `obj` and `abortable` as relaxed atomics, the
 * others under the sched lock, where other threads read them.
 *
 * A plain wait (an unbuffered channel operation, not a select) uses the
 * waiter's own sudog `sd` and message slot `slot`: with `state` and
 * `selected` they start the waiter's first cache line (with the first 8
 * bytes of the message: an integer), so that the thread that completes
 * the wait writes one line, in one burst, and the waiting thread, which
 * polls `state`, reads that line back once. (A hand-off through the
 * sudog and slot on the waiter's stack, plus its waiter, touched three
 * lines.) Fields the owner writes at every wait (`what`, `obj`,
 * `abortable`) are kept off the lines a waker reads.
 */
struct conc_waiter {
  atomic_uint state;     /* futex word: WAITING, SLEEPING or WOKEN */
  atomic_int selected;   /* CONC_SEL_NONE until one claim wins */
  conc_sudog sd;         /* a plain wait's sudog (see above) */
  conc_msg slot;         /* where a plain receive's message lands */
  atomic_int asleep;     /* counted as blocked for good right now */
  bool counted;
  int64_t id;            /* 0: the main script, else the worker's id */
  conc_time since;       /* when its task started */
  char where[200];       /* the Lua location, filled by the sleep hook */
  conc_waiter *next_all, *prev_all;  /* counted threads (sched lock) */
  conc_waiter *next_free;
  _Atomic(const char *) what;  /* what it waits in ("chan receive"...) */
  _Atomic(const void *) obj;   /* on which object, or NULL */
  const char *label;     /* the caller's name for its waits, or NULL
                          * (conc_wait_label; only the owner uses it) */
  atomic_bool abortable; /* its wait can end with CONC_SEL_DEADLOCK */
  struct conc__g *g;     /* a light task's waiter: its task (proc.c) */
} __attribute__((aligned(64)));

/* The waiter's `state`: the futex word. PARKED: a light task's park,
 * committed by the scheduler (its wake makes the task runnable; the
 * futex is not used). */
enum {
  CONC_W_WAITING = 0,
  CONC_W_SLEEPING = 1,
  CONC_W_WOKEN = 2,
  CONC_W_PARKED = 3
};

/* A waiter for a thread about to start (NULL: out of memory), which the
 * thread makes its own with conc__waiter_adopt before anything else: a
 * thread conc creates cannot then fail for want of one. */
CONC_API conc_waiter *conc__waiter_new(void);
CONC_API void conc__waiter_adopt(conc_waiter *w);
/* Puts back a waiter no thread adopted. */
CONC_API void conc__waiter_release(conc_waiter *w);
/* The calling thread's waiter (never freed; reused after the thread). */
CONC_API conc_waiter *conc__waiter_self(void);
/* Arms the waiter before it is linked into any queue. */
CONC_API void conc__waiter_arm(conc_waiter *w);
/* The waker's compare-and-swap: true if this claim won. */
CONC_API bool conc__waiter_claim(conc_waiter *w, int index);
/* Wakes a claimed waiter. Call with no lock held; touches only *w. */
CONC_API void conc__waiter_wake(conc_waiter *w);
/* Wakes a claimed waiter that has not gone to sleep (it spins): true;
 * false if it sleeps, and then conc__waiter_wake is still to be called,
 * with no lock held. May be called with a lock held: no system call. */
CONC_API bool conc__waiter_wake_spinning(conc_waiter *w);
/* Whether s is its waiter's own sudog, for a plain wait (its completer
 * wakes it under the queue's lock if it spins: chan.c). */
static inline bool conc__sudog_plain(const conc_sudog *s) {
  return s == &s->w->sd;
}
/*
 * Parks until woken or deadline. Returns the index that claimed it, or
 * CONC_SEL_TIMEOUT when the deadline passed and the waiter claimed itself
 * (nobody else will complete an operation for it then).
 */
CONC_API int conc__waiter_park(conc_waiter *w, conc_time deadline);
/*
 * As park, for a plain wait (see struct conc_waiter), which never claims
 * itself: its completer claims it while holding the lock of the queue
 * it is on. At the deadline this returns CONC_SEL_TIMEOUT unclaimed; the
 * caller then takes the queue's lock: if the sudog is still linked it
 * unlinks it (a timeout), else a waker took it and its wake is on the
 * way (conc__waiter_park with CONC_NEVER waits for it).
 */
CONC_API int conc__waiter_park_plain(conc_waiter *w, conc_time deadline);

/* The main script's thread is about to sleep in an abortable wait
 * (signal.c): true if the host asked it to stop, so the wait must end
 * now; on the way, puts conc's SIGINT wrapper back in front of the
 * host's handler if the host replaced it. */
CONC_API bool conc__interrupt_before_sleep(void);
/* Whether the host asked the main script to stop (a Ctrl-C), without
 * wrapping its handler: cheap, for the main thread between helped turns. */
CONC_API bool conc__interrupt_pending(void);

/* Says what the calling thread is about to wait on (for the dump): the
 * name its caller gave (conc_wait_label), else the core's own `what`. */
static inline void conc__waiting_on(conc_waiter *w, const char *what,
                                    const void *obj, bool abortable) {
  if (w->label) what = w->label;
  /* abortable before what: an abort (conc_interrupt_main, on any thread
   * or in a handler) that sees this wait's `what` sees its flag. A wait
   * that is not abortable still retries if an abort that read the flags
   * of the wait before claims it (mutex_lock). */
  atomic_store_explicit(&w->abortable, abortable, memory_order_relaxed);
  atomic_store_explicit(&w->obj, obj, memory_order_relaxed);
  atomic_store_explicit(&w->what, what, memory_order_release);
}

/* Says the calling thread waits no more (for the dump). */
static inline void conc__waiting_done(conc_waiter *w) {
  atomic_store_explicit(&w->what, NULL, memory_order_relaxed);
  atomic_store_explicit(&w->abortable, false, memory_order_relaxed);
}

/* ---- scheduling facts: deadlock detection (sched.c) --------------------- */

/* The calling thread runs the main script (id 0) or a worker's task. */
CONC_API void conc__thread_enter(int64_t id);
CONC_API void conc__thread_leave(void);
/* The same for a light task's waiter (proc.c), whichever thread runs it. */
CONC_API void conc__waiter_enter(conc_waiter *w, int64_t id);
CONC_API void conc__waiter_leave(conc_waiter *w);
/* Makes w the calling thread's waiter for now (a thread running a light
 * task uses the task's); returns the one it replaces. */
CONC_API conc_waiter *conc__waiter_swap(conc_waiter *w);
/* If w's thread sleeps in its park, wakes it without waking its wait
 * (it looks for other work, then sleeps again). */
CONC_API void conc__waiter_poke(conc_waiter *w);
/* The main script's waiter (NULL before it first waits). */
CONC_API conc_waiter *conc__main_waiter(void);
CONC_API void conc__main_waiter_gone(conc_waiter *w);
/* Live Lua threads: a worker counts from its spawn to its end. */
CONC_API void conc__live_add(int delta);
/* Lua threads live and not asleep for good (an estimate, for spinning). */
CONC_API int conc__awake_threads(void);
/* The main script ended: the program is ending, stop checking. */
CONC_API void conc__main_ended(void);
/* A thread that ends while still counted as a Lua thread (w its waiter):
 * leaves the list of threads and the live count. */
CONC_API void conc__thread_gone(conc_waiter *w);
/* Timers that may still wake someone: scheduled or firing. */
CONC_API void conc__timers_busy_add(int delta);
/* Called before a deadlock is reported: true if it had something
 * collected that may still wake a waiter (the report waits for it). */
CONC_API void conc__set_deadlock_sweep(bool (*sweep)(void));
/* note(buf, size) appends to the deadlock report in buf (its first line
 * there) what it has to say, within size bytes in all (a leaf lock at
 * most: it runs under the scheduler's). The binding names the failed
 * workers nobody joined. */
CONC_API void conc__set_deadlock_note(void (*note)(char *buf, size_t size));
/* Park's accounting around a sleep with no deadline. */
CONC_API void conc__sleep_begin(conc_waiter *w);
CONC_API void conc__sleep_end(conc_waiter *w);
/* A claim won on w: it is no longer asleep for good. */
static inline void conc__claimed(conc_waiter *w);

/* ---- fibers: where a light task's blocking call runs (fiber.c) ---------- */

typedef struct conc__fiber conc__fiber;
/* A fiber, or NULL when no memory can be had for one. */
CONC_API conc__fiber *conc__fiber_get(void);
CONC_API void conc__fiber_put(conc__fiber *f);
/* Runs fn(arg) on f: true when it returned, false when it suspended
 * (conc__fiber_suspend, called on f); then conc__fiber_resume goes on. */
CONC_API bool conc__fiber_run(conc__fiber *f, void (*fn)(void *), void *arg);
CONC_API bool conc__fiber_resume(conc__fiber *f);
CONC_API void conc__fiber_suspend(void);
/* The fiber the calling thread runs on, or NULL. */
CONC_API conc__fiber *conc__fiber_current(void);
CONC_API long conc__fibers_made(void);
/* f's stack: its lowest byte, and its size in *size (for tests). */
CONC_API char *conc__fiber_stack(const conc__fiber *f, size_t *size);
/* A fiber of its own with a stack of `size` bytes and a guard page, for
 * Lua code (the main script's thread runs helped tasks on one). NULL if
 * no memory. */
CONC_API conc__fiber *conc__fiber_new_big(size_t size);
/* Unmaps a fiber conc__fiber_new_big made (between its runs). */
CONC_API void conc__fiber_free_big(conc__fiber *f);
/* A thread that ends gives back the spare fiber it kept. */
CONC_API void conc__fiber_release_cached(void);

/* ---- light tasks: the M:N scheduler (proc.c) ---------------------------- */

/* What the runtime's run function says of the task it ran. */
enum { CONC_G_PARKED = 0, CONC_G_YIELDED = 1, CONC_G_DONE = 2 };

typedef struct conc__g {
  conc_waiter *w;          /* its waiter (w->g is the task) */
  conc__fiber *fiber;      /* its blocking call in progress, or NULL */
  struct conc__g *next;    /* a run queue's link */
  void *ud;                /* the runtime's task */
  conc_time deadline;      /* its park's (CONC_NEVER: none) */
  int timer_idx;           /* its place in the timer heap, or -1 */
  conc_time queued;        /* when it was put in a "next" slot */
  /* A task the main script's thread ran that blocked where it cannot
   * yield: its turn, suspended on a helper fiber, is the main thread's
   * to go on with (see conc__sched_help). */
  struct conc__helper *helper;
  atomic_bool pinned;      /* when woken: to the main thread's queue */
  struct conc__g *pinned_next;
} conc__g;

/* Runs g until it parks (its fiber holds a blocking call: the scheduler
 * commits the park), yields (preempted: runnable again) or ends (the
 * runtime has freed it). */
typedef int (*conc__run_fn)(conc__g *g);
typedef struct conc__sched_hooks {
  conc__run_fn run;
  /* In a signal handler, on a thread running a task for too long: ask
   * the task to yield soon (async-signal-safe). */
  void (*preempt)(void);
  /* A scheduler thread is about to sleep, with nothing to run. */
  void (*idle)(void);
  /* The runtime's per-thread state of a turn (the task it runs, ...),
   * CONC__CTX_WORDS words: op CONC__CTX_SAVE copies it into area (as a
   * context that runs no task of its own yet), CONC__CTX_SWAP swaps
   * it with area, CONC__CTX_RESTORE sets it from area. */
  void (*ctx)(void **area, int op);
  /* The main script's thread is about to sleep in a wait, with no task
   * to run (it collects what it left to collect: see worker.c). */
  void (*main_idle)(void);
} conc__sched_hooks;
enum { CONC__CTX_SAVE, CONC__CTX_SWAP, CONC__CTX_RESTORE };
#define CONC__CTX_WORDS 8
CONC_API void conc__sched_set_hooks(const conc__sched_hooks *h);
/* A new task: runnable (CONC_OK), or CONC_ETHREAD: the scheduler's
 * monitor thread could not be started, and g is not. */
CONC_API int conc__g_start(conc__g *g);
/* The thread runs the main script: while it waits, it runs tasks. */
CONC_API void conc__sched_main_thread(void);
/* The main script ended: its thread runs no more tasks. */
CONC_API void conc__sched_main_done(void);
/* The main script makes a channel operation (see proc.c). */
CONC_API void conc__sched_main_progress(void);
/* Called by park: the main script's thread waits; runs one ready task
 * if there is one (true). */
CONC_API bool conc__sched_help(void);
/* The main script's thread: its wait found no task to run (hooks). */
CONC_API void conc__sched_main_idle(void);
/* Whether the calling thread is the main script's. */
CONC_API bool conc__sched_on_main(void);
/* On the main script's thread, in a task's turn it runs (helping) that
 * computes where it cannot yield and was asked to: suspends the turn,
 * pinned and ready, so that the main script's wait (its time may be up)
 * goes on; returns when its next wait runs the turn on (true). Anywhere
 * else false, at once. */
CONC_API bool conc__sched_helped_pause(void);
/* In a task's turn the main script's thread runs, while another thread
 * could take the task: a call that may block in foreign C should yield
 * first, so that the task goes on elsewhere (the main script's wait
 * cannot end while its thread is in that call). */
CONC_API bool conc__sched_should_leave_main(void);
/* A task that cannot yield blocks its thread: hand its processor on. */
/* Idle work waits (delta > 0: a pooled state's finalizers) or was taken
 * up (delta < 0): a thread that finds nothing else to run does it
 * (conc__sched_hooks.idle); while some waits, a thread is woken for it
 * whenever a processor is idle. */
/* Sets the signal message maker if none is set yet (conc.core's own,
 * which a host's conc_signal_set_message replaces or precedes). */
CONC_API void conc__signal_default_message(conc_signal_msg_fn make);
CONC_API void conc__sched_idle_work_add(int delta);
/* Whether a task waits in the calling thread's run queue or the global
 * one (idle work stops early for it). */
CONC_API bool conc__sched_work_waiting(void);
CONC_API void conc__sched_block_begin(void);
/* The same, not counted as a block (conc.gosched where it cannot yield:
 * the others run on while it goes on). */
CONC_API void conc__sched_hand_off(void);
CONC_API void conc__sched_block_end(void);
/* A turn suspended on the main thread is runnable (its waits look). */
CONC_API bool conc__sched_pinned_ready(void);
/* A task ended (the runtime frees it after). */
CONC_API void conc__g_end(conc__g *g);
/* Wakes a task parked on its fiber (waiter.c's wake). */
CONC_API void conc__ready(conc__g *g);
CONC_API int conc__sched_maxprocs(int n);  /* n <= 0: only reads */
typedef struct conc__sched_stats {
  long tasks_run, steals, preemptions, handoffs, helped, thread_blocks;
  long thread_failures;      /* threads conc could not start */
  int procs, threads, idle_threads, spinning, global_queue;
  int queue[64];            /* per processor: local queue + next slot */
} conc__sched_stats;
CONC_API void conc__sched_get_stats(conc__sched_stats *out);

/* ---- wait queues -------------------------------------------------------- */

typedef struct conc_waitq {
  conc_sudog *head, *tail;
  atomic_int n;             /* sudogs linked; read without the lock */
} conc_waitq;

CONC_API void conc__waitq_push(conc_waitq *q, conc_sudog *s);
/* Waiters queued on m now (tests order threads with it). */
CONC_API int conc__mutex_waiters(conc_mutex *m);
/* Links s first in q (a waiter that goes back to where it was). */
CONC_API void conc__waitq_push_front(conc_waitq *q, conc_sudog *s);
CONC_API void conc__waitq_remove(conc_waitq *q, conc_sudog *s);
/* Removes and returns the first sudog whose waiter this claim wins,
 * dropping stale ones (already claimed elsewhere) on the way. */
CONC_API conc_sudog *conc__waitq_claim(conc_waitq *q);

/* ---- channels (shared with select.c) ----------------------------------- */

/*
 * A channel. Unbuffered, it is Go's: `lock` guards every field, and a
 * sender hands its message to a parked receiver (or waits for one).
 *
 * Buffered, its messages go through a lock-free ring (Vyukov's bounded
 * queue): `tail` and `head` count pushes and pops, slot pos % cap holds
 * message pos, and its `lap` says whose turn it is. Pushes and pops take
 * no lock. The lock guards the wait queues and `closed`; a thread that
 * finds the ring full or empty links a sudog under it, and whoever pushes
 * or pops then (and sees the queue's n > 0) serves the waiters of the
 * other side in order: does a parked send's (receive's) or select
 * case's operation for it (CONC_SUDOG_DONE), or wakes it to retry
 * (CONC_SUDOG_RETRY); see chan.c's serve_locked. Close sets
 * RING_CLOSED in `tail` (so exactly the pushes before it succeed) and
 * wakes everyone to retry.
 */
typedef struct conc_slot {
  /* Vyukov's sequence number, doubled (so that "full at pos" and "free
   * for pos + cap" differ even when cap is 1), minus twice the slot's
   * index (so that calloc's zero is the start): 2 * (pos - i) when free
   * for a push at pos, one more when that push is done. */
  atomic_size_t lap;
  conc_msg msg;
} __attribute__((aligned(64))) conc_slot;

struct conc_chan {
  conc_obj hdr;
  conc__lock_t lock;
  atomic_bool closed;       /* written under the lock */
  conc_waitq recvq, sendq;
  size_t cap;
  bool pow2;                /* cap is a power of two: pos & (cap - 1) */
  bool recv_only;           /* conc owns it: set at creation, then read */
  conc_slot *slots;         /* cap slots (aligned), or NULL */
  void *slots_raw;          /* what was allocated for them */
  conc_timer *timer;        /* a timer sending on it, owned (or NULL) */
  struct conc_merge *merge; /* a merged channel's inputs (merge.c), owned;
                             * set at creation, then read */
  /* Written by every push / every pop: one cache line each. */
  _Alignas(64) atomic_size_t tail;
  _Alignas(64) atomic_size_t head;
  char pad_[64 - sizeof(atomic_size_t)];
};

/* A receive-only channel (conc_chan_recv_only): conc alone closes it,
 * with conc__chan_close_owned, or sends on it, with conc__chan_try_send
 * (a timer). NULL: ENOMEM. */
CONC_API conc_chan *conc__chan_new_owned(size_t cap);
/* Closes c, receive-only or not; ECLOSED if it was closed already. */
CONC_API int conc__chan_close_owned(conc_chan *c);

/* Tries the operation with c->lock held. Returns CONC_OK (done),
 * CONC_ECLOSED (closed: recv drained / send on closed) or CONC_EAGAIN.
 * *wake is set to a waiter to wake after unlocking, or NULL. */
CONC_API int conc__chan_try_send(conc_chan *c, conc_msg *m, conc_waiter **wake);
CONC_API int conc__chan_try_recv(conc_chan *c, conc_msg *out,
                                 conc_waiter **wake);

/* Buffered c, its lock held: serves the waiters of op's own side
 * (CONC_SEND: the senders) from the head of their queue with the room
 * (values) there is, as chan.c's serve_locked; the served are chained
 * on *list, to be woken with conc__wake_list once no lock is held.
 * serve_own: an operation that has not waited goes after those waiting;
 * true if none is left, so it may go now. serve_ready: a waiter that has
 * just linked its sudog serves its queue if c is ready for op (it may
 * be served itself); true if it was. */
CONC_API bool conc__chan_serve_own(conc_chan *c, int op, conc_sudog **list);
CONC_API bool conc__chan_serve_ready(conc_chan *c, int op, conc_sudog **list);
/* Wakes the waiters chained on list (by their `next`), no lock held. */
CONC_API void conc__wake_list(conc_sudog *list);

/* Whether a push (pop) on buffered c could proceed now, or c closed. */
CONC_API bool conc__chan_can_send(const conc_chan *c);
CONC_API bool conc__chan_can_recv(const conc_chan *c);
/* A waiter woken to retry passes the wake-up on: if c is ready for op
 * (CONC_SEND or CONC_RECV) and someone waits for it, one of them is
 * woken to retry. Called by a plain operation that was woken and then
 * succeeded (others may have parked behind an operation in flight, which
 * wakes one waiter only), and by a select that was woken, for each of
 * its buffered cases (the wake-up may have been meant for one it did
 * not do). */
CONC_API void conc__chan_kick(conc_chan *c, int op);

/* conc_ctx_new, which says why it made none in *rc: CONC_ENOMEM, or
 * its deadline's timer could not be scheduled (CONC_ETHREAD: no timer
 * thread). */
CONC_API conc_ctx *conc__ctx_make(conc_ctx *parent, conc_time deadline,
                                  conc_msg *key, conc_msg *value, int *rc);

/* The processors this process may run on (its affinity mask). */
CONC_API int conc__cpus(void);

/* Spins while ready(arg) is false, up to the spin budget (and never past
 * deadline); returns ready(arg). For waits that are usually short. A
 * task on its fiber only looks: its thread has other tasks to run, one
 * of which may be the one that would make it ready. */
CONC_API bool conc__spin_until(bool (*ready)(const void *arg), const void *arg,
                               conc_time deadline);

/* Adds this thread's count of delivered messages to the total (a
 * thread does it before it sleeps, so conc.stats() sees it). */
CONC_API void conc__flush_delivered(void);

/* Moves a message: copies only the bytes in use (the header and the
 * inline bytes, or the heap pointer), so a small message touches one
 * cache line of its destination instead of the whole slot. */
static inline void conc__msg_move(conc_msg *dst, const conc_msg *src) {
  size_t n = src->nrefs == 0 && src->len <= CONC_MSG_INLINE
                 ? src->len
                 : sizeof src->u.big.data;
  dst->len = src->len;
  dst->nrefs = src->nrefs;
  memcpy(&dst->u, &src->u, n);
}

/* The channel of timer t is being destroyed: t stops and the channel's
 * reference to it is dropped (chan.c's destroy). */
CONC_API void conc__timer_chan_gone(conc_timer *t);
/* A receive from the channel of timer t is about to look: fires t now
 * if it is due (Go 1.23's synchronous timer channels; timer.c). */
CONC_API void conc__timer_run_due(conc_timer *t);

/* ---- merged channels (merge.c) ------------------------------------------ */

/* A receive on merged channel c (c->merge set): conc_chan_recv's. */
CONC_API int conc__merge_recv(conc_chan *c, conc_msg *out, conc_time deadline);
/* conc_select when some case is on a merged channel. */
CONC_API int conc__merge_select(conc_case *cases, int n, conc_time deadline,
                                int *closed_send);
/* conc_select over cases with no merged channel among them (a merged
 * channel's own case, in merge.c's expansion, is a plain receive that
 * fires when it is closed). */
CONC_API int conc__select_plain(conc_case *cases, int n, conc_time deadline,
                                int *closed_send);
/* Frees a merged channel's inputs (chan.c's destroy). */
CONC_API void conc__merge_free(struct conc_merge *m);

/* ---- small random numbers for select's fairness ------------------------ */
CONC_API uint32_t conc__rand(void);
/* Fills order with the indices of the cases whose channel is not NULL,
 * in a uniformly random order (select.c); returns how many. */
CONC_API int conc__shuffle_cases(const conc_case *cases, int n, int *order);

CONC_API extern atomic_int conc__blocked;

static inline void conc__claimed(conc_waiter *w) {
  if (atomic_exchange(&w->asleep, 0)) atomic_fetch_sub(&conc__blocked, 1);
}

#endif
