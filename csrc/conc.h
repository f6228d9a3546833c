/*
 * conc.h: the public C API of conc's core.
 *
 * The core knows no Lua. It provides reference-counted objects, owned
 * messages (opaque byte buffers plus the objects they reference), one way
 * to block (the waiter), channels with Go's semantics and select.
 *
 * Conventions: functions return 0 (CONC_OK) or a negative CONC_E* code;
 * conc_strerror turns a code into text. A failed system primitive (a
 * pthread call that cannot fail when used correctly) aborts the process.
 * Times are int64 nanoseconds of CLOCK_MONOTONIC (conc_now()).
 */
#ifndef CONC_H
#define CONC_H

#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>

#if defined(__GNUC__)
#define CONC_API __attribute__((visibility("hidden")))
#else
#define CONC_API
#endif

/* ---- error codes --------------------------------------------------- */

#define CONC_ERRNO_MAP(X)                                        \
  X(ECLOSED, -1, "channel closed")                               \
  X(ETIMEDOUT, -2, "timeout")                                    \
  X(EAGAIN, -3, "would block")                                   \
  X(ENOMEM, -4, "out of memory")                                 \
  X(EINVAL, -5, "invalid argument")                              \
  X(ETHREAD, -6, "cannot create thread")                         \
  X(ECANCELED, -7, "context canceled")                           \
  X(EDEADLINE, -8, "context deadline exceeded")                  \
  X(ENEGATIVE, -9, "negative WaitGroup counter")                 \
  X(ENOTLOCKED, -10, "unlock of unlocked mutex")                 \
  X(EDEADLOCK, -11, "all workers are asleep - deadlock!")         \
  X(EOVERFLOW, -12, "WaitGroup counter overflow")                \
  X(ERECVONLY, -13, "receive-only channel")

enum {
  CONC_OK = 0,
#define CONC_ERRNO_ENUM(name, code, text) CONC_##name = code,
  CONC_ERRNO_MAP(CONC_ERRNO_ENUM)
#undef CONC_ERRNO_ENUM
};

CONC_API const char *conc_strerror(int code);

/* ---- time ------------------------------------------------------------ */

typedef int64_t conc_time;           /* monotonic nanoseconds */
#define CONC_NEVER INT64_MAX         /* a deadline that never comes */
#define CONC_NOWAIT ((conc_time)0)   /* a deadline already past: poll */
/* The latest finite deadline (~292 years of uptime). A timeout too long
 * for int64 nanoseconds is clamped to it, never taken as CONC_NEVER: a
 * wait with a timeout, however long, is a wait with a deadline (it is
 * never part of a deadlock). */
#define CONC_LATEST (INT64_MAX - 1)

CONC_API conc_time conc_now(void);
/* Seconds from now as a deadline: <= 0, -inf and NaN mean CONC_NOWAIT;
 * past CONC_LATEST (+inf included) it is CONC_LATEST. */
CONC_API conc_time conc_deadline_in(double seconds);
/* A time in seconds of conc_now's clock as a deadline, clamped the same
 * way (<= 0 and NaN: CONC_NOWAIT; past CONC_LATEST: CONC_LATEST). */
CONC_API conc_time conc_deadline_at(double seconds);
/* Seconds as a duration in nanoseconds: 0 for <= 0 and NaN, at least 1
 * for any positive value, at most CONC_LATEST. */
CONC_API conc_time conc_duration(double seconds);

/* ---- reference-counted objects ------------------------------------- */

typedef struct conc_obj conc_obj;
typedef struct conc_type {
  const char *name;                  /* e.g. "conc.chan": the Lua __name */
  void (*destroy)(conc_obj *o);      /* frees the object; never blocks */
} conc_type;

/* Every shared object starts with this header, so a pointer to any
 * object (conc_chan *...) converts to conc_obj * and back. */
struct conc_obj {
  atomic_long refs;
  const conc_type *type;
};

CONC_API void conc_obj_init(conc_obj *o, const conc_type *type);
CONC_API void conc_retain(conc_obj *o);
CONC_API void conc_release(conc_obj *o);   /* destroys at zero */
/* Retains o unless its count already reached zero (it is being
 * destroyed); for holders of weak pointers. */
CONC_API int conc_try_retain(conc_obj *o);

/* ---- messages -------------------------------------------------------- */

/*
 * A message is an owned, encoded value: bytes plus the conc objects it
 * references (each retained once by the message). Short messages with no
 * references live inline, so moving them through a channel allocates
 * nothing. A message is moved by copying the struct; whoever holds it last
 * calls conc_msg_free.
 */
#define CONC_MSG_INLINE 112

typedef struct conc_msg {
  uint32_t len;                      /* bytes of encoded data */
  uint32_t nrefs;                    /* objects referenced */
  union {
    unsigned char small[CONC_MSG_INLINE];
    struct {
      unsigned char *data;           /* heap: nrefs pointers, then bytes */
    } big;
  } u;
} conc_msg;

/* Builds a message from bytes and objects (each already retained by the
 * caller; ownership of those references passes to the message). */
CONC_API int conc_msg_init(conc_msg *m, const void *data, size_t len,
                           conc_obj *const *refs, uint32_t nrefs);
CONC_API const unsigned char *conc_msg_data(const conc_msg *m);
CONC_API conc_obj *conc_msg_ref(const conc_msg *m, uint32_t i);
CONC_API void conc_msg_free(conc_msg *m);   /* releases refs, frees data */
/* A second message with the same content. A message too big to be
 * inline shares its (immutable) heap block with its copies: a copy is an
 * atomic increment, and the block and its references go with the last
 * conc_msg_free. CONC_OK always (kept an int for callers that check). */
CONC_API int conc_msg_copy(conc_msg *dst, const conc_msg *src);

/* ---- waiting ---------------------------------------------------------- */

typedef struct conc_waiter conc_waiter;

/* Parks the calling thread until deadline; 0 when it came, ETIMEDOUT. */
CONC_API int conc_sleep_until(conc_time deadline);

/* ---- scheduling facts: deadlock detection and the worker dump --------- */

/*
 * When the main script and every worker wait with no deadline, no timer
 * is pending and nothing else can wake them, the program is deadlocked,
 * as Go's runtime says. EXIT (the default) prints
 * "fatal error: all workers are asleep - deadlock!" and what each waits
 * on, then exits with status 2; ERROR makes the main script's wait fail
 * with CONC_EDEADLOCK instead (when it waits in a channel operation or
 * select; otherwise it exits as EXIT); OFF disables the check (for hosts
 * whose own threads use conc objects).
 */
enum { CONC_DEADLOCK_EXIT = 0, CONC_DEADLOCK_ERROR = 1, CONC_DEADLOCK_OFF = 2 };
CONC_API void conc_deadlock_mode(int mode);
/* The dump of the last deadlock (ERROR mode), or "". */
CONC_API const char *conc_deadlock_report(void);

/* Run by a main or worker thread just before it sleeps with no deadline,
 * to describe where it is (the binding writes the Lua location). */
typedef void (*conc_sleep_hook)(char *where, size_t size);
CONC_API void conc_set_sleep_hook(conc_sleep_hook hook);

/* Names the calling thread's waits from now on, for the deadlock report
 * and conc_threads (`label` must be a static string; NULL: the core's own
 * names, "chan receive"...). A binding whose blocking call is made of
 * core waits ("worker join" is a receive on a done channel) names it
 * before each call, so the report says what the program called. */
CONC_API void conc_wait_label(const char *label);

enum { CONC_THREAD_RUNNING, CONC_THREAD_BLOCKED, CONC_THREAD_WAITING };
typedef struct conc_thread_info {
  int64_t id;            /* 0: the main script */
  int state;             /* RUNNING; BLOCKED (no deadline); WAITING (one) */
  conc_time since;       /* when it started */
  const char *what;      /* what it waits in, or NULL */
  const void *obj;
  char where[200];       /* its Lua location when it went to sleep */
} conc_thread_info;
/* Describes up to max main/worker threads; returns how many there are
 * (out may be NULL when max is 0: a count). */
CONC_API int conc_threads(conc_thread_info *out, int max);
/* Live objects per type: up to max (name, count) pairs; returns count. */
CONC_API int conc_obj_counts(const char **names, long *counts, int max);
/* Messages sent on channels so far (approximate while sends run). */
CONC_API long long conc_messages_sent(void);

/* ---- channels --------------------------------------------------------- */

typedef struct conc_chan conc_chan;
CONC_API extern const conc_type conc_chan_type;

CONC_API conc_chan *conc_chan_new(size_t cap);          /* NULL: ENOMEM */
/* Sends *m. On CONC_OK the message belongs to the channel; on any error
 * it still belongs to the caller. ECLOSED: closed (Go panics). ETIMEDOUT:
 * deadline passed, EAGAIN when deadline == CONC_NOWAIT. */
CONC_API int conc_chan_send(conc_chan *c, conc_msg *m, conc_time deadline);
/* Receives into *out (owned by the caller on CONC_OK). ECLOSED: closed and
 * drained. ETIMEDOUT / EAGAIN as for send. */
CONC_API int conc_chan_recv(conc_chan *c, conc_msg *out, conc_time deadline);
/* ECLOSED if it was closed already. */
CONC_API int conc_chan_close(conc_chan *c);
/*
 * Whether c is receive-only: a channel conc owns and hands out (a
 * context's done channel, a timer's, a wait channel of a WaitGroup or a
 * Once). Only conc sends on it or closes it, when what it announces has
 * happened; conc_chan_send, conc_chan_close and select's send cases
 * refuse it with ERECVONLY, so no host can fake that event.
 */
CONC_API int conc_chan_recv_only(const conc_chan *c);
CONC_API size_t conc_chan_len(conc_chan *c);
CONC_API size_t conc_chan_cap(const conc_chan *c);
CONC_API int conc_chan_closed(conc_chan *c);

/*
 * A receive-only view of a channel, Go's `<-chan T`: an object of its
 * own type that holds (retains) the channel, for an API that hands out a
 * channel only to receive from. The binding refuses sends and closes
 * through it; a C host gets the channel back with conc_chan_view_chan
 * (borrowed: it lives as long as the view).
 */
typedef struct conc_chan_view conc_chan_view;
CONC_API extern const conc_type conc_chan_view_type;
CONC_API conc_chan_view *conc_chan_view_new(conc_chan *c);  /* NULL: ENOMEM */
CONC_API conc_chan *conc_chan_view_chan(const conc_chan_view *v);

/* ---- select ------------------------------------------------------------ */

enum { CONC_RECV = 1, CONC_SEND = 2 };

typedef struct conc_case {
  conc_chan *chan;                   /* NULL: the case is never ready */
  int op;                            /* CONC_RECV or CONC_SEND */
  conc_msg msg;                      /* send: the value; recv: the result */
  int ok;                            /* recv: 1 value, 0 closed */
} conc_case;

/*
 * Waits until one case can proceed, choosing uniformly at random among the
 * ready ones, and performs it. Returns the index of the case, or EAGAIN
 * (deadline == CONC_NOWAIT, Go's default) or ETIMEDOUT. A send case that
 * fired owns nothing any more; the others keep their messages. A send
 * case on a closed channel returns its index with *closed_send set (Go
 * panics there). ERECVONLY, before anything is done, if a send case is on
 * a receive-only channel.
 */
CONC_API int conc_select(conc_case *cases, int n, conc_time deadline,
                         int *closed_send);

/* ---- timers (one timer thread serves them all) ------------------------ */

typedef struct conc_timer conc_timer;
/*
 * Called by the timer thread, with no lock held, when t fires; `gen` is
 * t's generation when it fired: compare it with conc_timer_gen() under
 * the lock that guards what fire does, to drop a firing that a stop or
 * reset made stale.
 */
typedef void (*conc_timer_fn)(conc_timer *t, void *arg, conc_time now,
                              uint64_t gen);

/* A stopped timer; `drop(arg)` runs when the timer is destroyed. */
CONC_API conc_timer *conc_timer_new(conc_timer_fn fire, void *arg,
                                    void (*drop)(void *arg));
CONC_API void conc_timer_release(conc_timer *t);
/* (Re)schedules t at `when`, then every `period` ns if period > 0.
 * Returns 1 if it was scheduled before (Go's Reset result). */
CONC_API int conc_timer_start(conc_timer *t, conc_time when,
                              conc_time period);
/* Unschedules t; 1 if it was scheduled (Go's Stop result). */
CONC_API int conc_timer_stop(conc_timer *t);
CONC_API uint64_t conc_timer_gen(conc_timer *t);

/* A timer that sends on a channel: make(&m, now) builds each message,
 * which is sent only if the channel has room (a slow reader misses ticks,
 * as in Go). As in Go, c owns the timer: whoever holds c keeps the timer
 * running, and when c is freed the timer stops. The timer holds c only
 * weakly, so dropping c (and the returned reference) frees both. A
 * channel owns at most one timer. */
typedef void (*conc_tick_fn)(conc_msg *m, conc_time now);
CONC_API conc_timer *conc_timer_new_chan(conc_chan *c, conc_tick_fn make);
/* Stops it and drops a value it sent that nobody has received yet, so no
 * stale value is received after it returns (Go 1.23). 1 if the timer was
 * active (scheduled, or its value still unreceived). */
CONC_API int conc_timer_stop_chan(conc_timer *t, conc_chan *c);

/* ---- contexts ------------------------------------------------------------ */

typedef struct conc_ctx conc_ctx;
CONC_API extern const conc_type conc_ctx_type;

/* The root context: never canceled, no deadline, no value. Retained. */
CONC_API conc_ctx *conc_ctx_background(void);
/* A child of parent, canceled with it. deadline: CONC_NEVER for none.
 * key/value: NULL, or messages that pass to the context. */
CONC_API conc_ctx *conc_ctx_new(conc_ctx *parent, conc_time deadline,
                                conc_msg *key, conc_msg *value);
/* Cancels ctx and its descendants with err (ECANCELED or EDEADLINE) and
 * an optional cause (taken over; NULL for none). 1 if this call did it,
 * 0 if it was canceled already (then the cause is freed). */
CONC_API int conc_ctx_cancel(conc_ctx *ctx, int err, conc_msg *cause);
/* 0 while live, else ECANCELED or EDEADLINE. */
CONC_API int conc_ctx_err(conc_ctx *ctx);
/* The channel closed on cancellation (borrowed: lives as long as ctx;
 * receive-only). */
CONC_API conc_chan *conc_ctx_done(conc_ctx *ctx);
CONC_API conc_time conc_ctx_deadline(conc_ctx *ctx);
/* Copies the cause into *out: 1 if there is one. */
CONC_API int conc_ctx_cause(conc_ctx *ctx, conc_msg *out);
/* Copies the value of the nearest context with an equal key: 1 if found.*/
CONC_API int conc_ctx_value(conc_ctx *ctx, const conc_msg *key,
                            conc_msg *out);
/* Same bytes and the same object references. */
CONC_API int conc_msg_equal(const conc_msg *a, const conc_msg *b);

/* ---- sync ------------------------------------------------------------------ */

typedef struct conc_wg conc_wg;
typedef struct conc_mutex conc_mutex;
typedef struct conc_rwmutex conc_rwmutex;
typedef struct conc_cond conc_cond;
typedef struct conc_once conc_once;
CONC_API extern const conc_type conc_wg_type, conc_mutex_type,
    conc_rwmutex_type, conc_cond_type, conc_once_type;

CONC_API conc_wg *conc_wg_new(void);
/* ENEGATIVE if the counter would go below zero, EOVERFLOW past INT64_MAX
 * (it is left unchanged either way). */
CONC_API int conc_wg_add(conc_wg *wg, int64_t delta);
CONC_API int64_t conc_wg_count(conc_wg *wg);
/* NULL if the counter is zero, else a channel closed when it reaches
 * zero (retained for the caller; receive-only). */
CONC_API conc_chan *conc_wg_wait_chan(conc_wg *wg);
/* Whether c, from conc_wg_wait_chan, was released by the counter
 * reaching zero: what a waiter that saw c closed checks. */
CONC_API int conc_wg_released(conc_wg *wg, conc_chan *c);

CONC_API conc_mutex *conc_mutex_new(void);
CONC_API void conc_mutex_lock(conc_mutex *m);
CONC_API int conc_mutex_trylock(conc_mutex *m);      /* 1 if locked */
CONC_API int conc_mutex_unlock(conc_mutex *m);       /* or ENOTLOCKED */

CONC_API conc_rwmutex *conc_rwmutex_new(void);
CONC_API void conc_rwmutex_lock(conc_rwmutex *m);
CONC_API void conc_rwmutex_rlock(conc_rwmutex *m);
CONC_API int conc_rwmutex_trylock(conc_rwmutex *m);
CONC_API int conc_rwmutex_tryrlock(conc_rwmutex *m);
CONC_API int conc_rwmutex_unlock(conc_rwmutex *m);   /* or ENOTLOCKED */
CONC_API int conc_rwmutex_runlock(conc_rwmutex *m);  /* or ENOTLOCKED */

/* A condition variable whose lock is a conc_mutex (retained). */
CONC_API conc_cond *conc_cond_new(conc_mutex *m);
CONC_API conc_mutex *conc_cond_mutex(conc_cond *c);
/* Unlocks the mutex, waits for a signal, locks it again. ENOTLOCKED if
 * the mutex was not locked. */
CONC_API int conc_cond_wait(conc_cond *c);
CONC_API void conc_cond_signal(conc_cond *c);
CONC_API void conc_cond_broadcast(conc_cond *c);

enum { CONC_ONCE_RUN = 0, CONC_ONCE_DONE = 1, CONC_ONCE_WAIT = 2 };
CONC_API conc_once *conc_once_new(void);
/* RUN: the caller must run the function, then conc_once_finish. DONE:
 * the outcome is ready. WAIT: *wait is a channel (retained,
 * receive-only) closed when the runner finishes. */
CONC_API int conc_once_begin(conc_once *o, conc_chan **wait);
/* Stores the outcome (taken over) and wakes the waiters. */
CONC_API void conc_once_finish(conc_once *o, conc_msg *outcome, int failed);
/* Copies the outcome: 1 if fn failed (the copy is the error). */
CONC_API int conc_once_outcome(conc_once *o, conc_msg *out);

/* ---- pub/sub (pubsub.c) ----------------------------------------------------- */

typedef struct conc_pubsub conc_pubsub;
CONC_API extern const conc_type conc_pubsub_type;

CONC_API conc_pubsub *conc_pubsub_new(void);   /* NULL: ENOMEM */
/* Subscribes `id` to the topics (byte strings of the given lengths) with
 * a receive-only channel of capacity cap, returned retained in *out. An
 * id subscribed already is replaced (its old channel is closed). */
CONC_API int conc_pubsub_subscribe(conc_pubsub *ps, const char *id,
                                   size_t idlen, const char *const *topics,
                                   const size_t *lens, size_t ntopics,
                                   size_t cap, conc_chan **out);
/* Removes `id` and closes its channel: 1 if it was subscribed. */
CONC_API int conc_pubsub_unsubscribe(conc_pubsub *ps, const char *id,
                                     size_t len);
/* Gives every subscriber of `topic` a copy of *m (which stays the
 * caller's) without blocking: a full channel misses it, and its
 * subscriber's dropped count grows. Returns how many received it, or
 * ENOMEM. */
CONC_API int conc_pubsub_publish(conc_pubsub *ps, const char *topic,
                                 size_t len, const conc_msg *m);
/* Messages `id` missed; -1 if it is not subscribed. */
CONC_API int64_t conc_pubsub_dropped(conc_pubsub *ps, const char *id,
                                     size_t len);
CONC_API size_t conc_pubsub_count(conc_pubsub *ps);

/* ---- fan-in (merge.c) -------------------------------------------------------- */

/*
 * A receive-only channel that receives from the n inputs (each retained)
 * until every one is closed and drained, or ctx (if not NULL) is
 * canceled: then it reads as closed. No thread forwards anything: a
 * receive on it (conc_chan_recv, or a case of conc_select) is a select
 * over its live inputs, so each value is received exactly once, by the
 * merged channel's receiver, and an unbuffered input's sender is
 * released by that receiver. Inputs may be merged channels themselves
 * (up to CONC_MERGE_DEPTH deep: EINVAL beyond). The merged channel is
 * returned retained in *out.
 */
#define CONC_MERGE_DEPTH 8
CONC_API int conc_merge_new(conc_chan *const *in, size_t n, conc_ctx *ctx,
                            conc_chan **out);

/* ---- worker pools and pipeline stages (workpool.c) ------------------------- */

/*
 * The shared state of a pool of n workers (conc.workpool) or a pipeline
 * stage (conc.stage): the channel its workers take jobs from, the one
 * they put results on, an optional context that stops them, and the
 * count of workers still running. The workers themselves are the
 * binding's; each calls conc_workpool_exit once when it stops, and the
 * last one closes `results` and the pool's done channel.
 */
typedef struct conc_workpool conc_workpool;
CONC_API extern const conc_type conc_workpool_type;

/* jobs and results are retained. own_jobs: close() closes jobs (a pool's
 * own queue; a stage's input is its producer's to close). */
CONC_API conc_workpool *conc_workpool_new(int workers, conc_chan *jobs,
                                          conc_chan *results, conc_ctx *ctx,
                                          int own_jobs);
/* The channels and context, borrowed (they live as long as p). */
CONC_API conc_chan *conc_workpool_jobs(conc_workpool *p);
CONC_API conc_chan *conc_workpool_results(conc_workpool *p);
CONC_API conc_ctx *conc_workpool_ctx(conc_workpool *p);
/* Takes no more jobs: closes the queue (once); 1 if this call did. */
CONC_API int conc_workpool_close(conc_workpool *p);
CONC_API int conc_workpool_closed(conc_workpool *p);
/* A worker stops; the last closes results and the done channel. */
CONC_API void conc_workpool_exit(conc_workpool *p);
/* Workers still running. */
CONC_API int conc_workpool_live(conc_workpool *p);
/* A channel closed once every worker has stopped (borrowed). */
CONC_API conc_chan *conc_workpool_done(conc_workpool *p);
/* Workers that never started (a spawn failed): counted as stopped. */
CONC_API void conc_workpool_unstarted(conc_workpool *p, int n);

#endif
