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
#include <signal.h>

/*
 * Visibility. CONC_PUBLIC marks the API a host links: what this header
 * and conc_lua.h declare. libconc.a and libconc.so (`make lib`, built
 * with -DCONC_BUILD_LIB) export exactly that, and a host's declarations
 * of it (no macro defined) are of default visibility. The Lua module
 * conc/core.so (built with -DCONC_BUILD_MODULE: the Makefile, the
 * rockspec) hides it and exports only luaopen_conc_core: were its
 * conc_* symbols exported, a process holding both the module and
 * libconc would bind one copy's calls to the other's functions (two
 * schedulers sharing half their state). CONC_API marks conc's own
 * functions shared between its files: hidden in every build.
 */
#if defined(__GNUC__)
#define CONC_API __attribute__((visibility("hidden")))
#if defined(CONC_BUILD_MODULE) && !defined(CONC_BUILD_LIB)
#define CONC_PUBLIC CONC_API
#else
#define CONC_PUBLIC __attribute__((visibility("default")))
#endif
#else
#define CONC_API
#define CONC_PUBLIC
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
  X(ERECVONLY, -13, "receive-only channel")                      \
  X(EHELD, -14, "released more than held")                       \
  X(EBUSY, -15, "busy")                                          \
  X(ERATEBURST, -40, "rate: Wait(n) exceeds limiter's burst")    \
  X(ERATEDEADLINE, -41, "rate: Wait(n) would exceed context deadline") \
  X(EBREAKEROPEN, -42, "circuit breaker is open")                \
  X(ETOOMANYPROBES, -43, "too many probes")                     \
  X(EINTR, -16, "interrupted")

enum {
  CONC_OK = 0,
#define CONC_ERRNO_ENUM(name, code, text) CONC_##name = (code),
  CONC_ERRNO_MAP(CONC_ERRNO_ENUM)
#undef CONC_ERRNO_ENUM
};

CONC_PUBLIC const char *conc_strerror(int code);

/* ---- time ------------------------------------------------------------ */

typedef int64_t conc_time;           /* monotonic nanoseconds */
#define CONC_NEVER INT64_MAX         /* a deadline that never comes */
#define CONC_NOWAIT ((conc_time)0)   /* a deadline already past: poll */
/* The latest finite deadline (~292 years of uptime). A timeout too long
 * for int64 nanoseconds is clamped to it, never taken as CONC_NEVER: a
 * wait with a timeout, however long, is a wait with a deadline (it is
 * never part of a deadlock). */
#define CONC_LATEST (INT64_MAX - 1)

CONC_PUBLIC conc_time conc_now(void);
/* Seconds from now as a deadline: <= 0, -inf and NaN mean CONC_NOWAIT;
 * past CONC_LATEST (+inf included) it is CONC_LATEST. */
CONC_PUBLIC conc_time conc_deadline_in(double seconds);
/* A time in seconds of conc_now's clock as a deadline, clamped the same
 * way (<= 0 and NaN: CONC_NOWAIT; past CONC_LATEST: CONC_LATEST). */
CONC_PUBLIC conc_time conc_deadline_at(double seconds);
/* Seconds as a duration in nanoseconds: 0 for <= 0 and NaN, at least 1
 * for any positive value, at most CONC_LATEST. */
CONC_PUBLIC conc_time conc_duration(double seconds);

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

CONC_PUBLIC void conc_obj_init(conc_obj *o, const conc_type *type);
CONC_PUBLIC void conc_retain(conc_obj *o);
CONC_PUBLIC void conc_release(conc_obj *o);   /* destroys at zero */
/* Retains o unless its count already reached zero (it is being
    * destroyed); for holders of weak pointers. */
CONC_PUBLIC int conc_try_retain(conc_obj *o);

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
CONC_PUBLIC int conc_msg_init(conc_msg *m, const void *data, size_t len,
                              conc_obj *const *refs, uint32_t nrefs);
CONC_PUBLIC const unsigned char *conc_msg_data(const conc_msg *m);
CONC_PUBLIC conc_obj *conc_msg_ref(const conc_msg *m, uint32_t i);
CONC_PUBLIC void conc_msg_free(conc_msg *m);   /* releases refs, frees data */
/* A second message with the same content. A message too big to be
    * inline shares its (immutable) heap block with its copies: a copy is an
    * atomic increment, and the block and its references go with the last
    * conc_msg_free. CONC_OK always (kept an int for callers that check). */
CONC_PUBLIC int conc_msg_copy(conc_msg *dst, const conc_msg *src);

/* ---- waiting ---------------------------------------------------------- */

typedef struct conc_waiter conc_waiter;

/* Parks the calling thread until deadline: 0 when it came, EINTR when
 * the main script's wait was interrupted (conc_interrupt_main),
 * EDEADLOCK when it never can come (CONC_NEVER) and deadlock detection
 * finds the program deadlocked in ERROR mode. */
CONC_PUBLIC int conc_sleep_until(conc_time deadline);

/* ---- scheduling facts: deadlock detection and the worker dump --------- */

/*
 * When the main script and every worker wait with no deadline, no timer
 * is pending and nothing else can wake them, the program is deadlocked,
 * as Go's runtime says. EXIT (the default) prints
 * "fatal error: all workers are asleep - deadlock!" and what each waits
 * on, then exits with status 2; ERROR makes the main script's wait fail
 * with CONC_EDEADLOCK instead, whatever it waits in (a channel
 * operation, select, a lock, a cond, which returns holding its mutex, a
 * wait group, a sleep without deadline); OFF disables the check (for
 * hosts whose own threads use conc objects).
 */
enum { CONC_DEADLOCK_EXIT = 0, CONC_DEADLOCK_ERROR = 1, CONC_DEADLOCK_OFF = 2 };
CONC_PUBLIC void conc_deadlock_mode(int mode);
/* The dump of the last deadlock (ERROR mode), or "". */
CONC_PUBLIC const char *conc_deadlock_report(void);

/* Run by a main or worker thread just before it sleeps with no deadline,
 * to describe where it is (the binding writes the Lua location). */
typedef void (*conc_sleep_hook)(char *where, size_t size);
CONC_PUBLIC void conc_set_sleep_hook(conc_sleep_hook hook);

/* Names the calling thread's waits from now on, for the deadlock report
 * and conc_threads (`label` must be a static string; NULL: the core's own
 * names, "chan receive"...). A binding whose blocking call is made of
 * core waits ("worker join" is a receive on a done channel) names it
 * before each call, so the report says what the program called. */
CONC_PUBLIC void conc_wait_label(const char *label);

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
CONC_PUBLIC int conc_threads(conc_thread_info *out, int max);
/* Live objects per type: up to max (name, count) pairs; returns count. */
CONC_PUBLIC int conc_obj_counts(const char **names, long *counts, int max);
/* Messages sent on channels so far (approximate while sends run). */
CONC_PUBLIC long long conc_messages_sent(void);

/* ---- channels --------------------------------------------------------- */

typedef struct conc_chan conc_chan;
CONC_PUBLIC extern const conc_type conc_chan_type;

CONC_PUBLIC conc_chan *conc_chan_new(size_t cap);          /* NULL: ENOMEM */
/* Sends *m. On CONC_OK the message belongs to the channel; on any error
    * it still belongs to the caller. ECLOSED: closed (Go panics). ETIMEDOUT:
    * deadline passed, EAGAIN when deadline == CONC_NOWAIT. */
CONC_PUBLIC int conc_chan_send(conc_chan *c, conc_msg *m, conc_time deadline);
/* Receives into *out (owned by the caller on CONC_OK). ECLOSED: closed and
 * drained. ETIMEDOUT / EAGAIN as for send. */
CONC_PUBLIC int conc_chan_recv(conc_chan *c, conc_msg *out, conc_time deadline);
/* ECLOSED if it was closed already. */
CONC_PUBLIC int conc_chan_close(conc_chan *c);
/*
 * Whether c is receive-only: a channel conc owns and hands out (a
 * context's done channel, a timer's, a wait channel of a WaitGroup or a
 * Once). Only conc sends on it or closes it, when what it announces has
 * happened; conc_chan_send, conc_chan_close and select's send cases
 * refuse it with ERECVONLY, so no host can fake that event.
 */
CONC_PUBLIC int conc_chan_recv_only(const conc_chan *c);
CONC_PUBLIC size_t conc_chan_len(conc_chan *c);
CONC_PUBLIC size_t conc_chan_cap(const conc_chan *c);
CONC_PUBLIC int conc_chan_closed(conc_chan *c);

/*
 * A receive-only view of a channel, Go's `<-chan T`: an object of its
 * own type that holds (retains) the channel, for an API that hands out a
 * channel only to receive from. The binding refuses sends and closes
 * through it; a C host gets the channel back with conc_chan_view_chan
 * (borrowed: it lives as long as the view).
 */
typedef struct conc_chan_view conc_chan_view;
CONC_PUBLIC extern const conc_type conc_chan_view_type;
/* NULL: ENOMEM. */
CONC_PUBLIC conc_chan_view *conc_chan_view_new(conc_chan *c);
CONC_PUBLIC conc_chan *conc_chan_view_chan(const conc_chan_view *v);

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
 * panics there; closed_send may be NULL). ERECVONLY, before anything is
 * done, if a send case is on a receive-only channel; EINVAL if a case's
 * op is neither CONC_RECV nor CONC_SEND.
 */
CONC_PUBLIC int conc_select(conc_case *cases, int n, conc_time deadline,
                            int *closed_send);

/* ---- timers (one timer thread serves them all) ------------------------ */

typedef struct conc_timer conc_timer;
/*
 * Called by the timer thread, with no lock held, when t fires; `now` is
 * the time it was due (its deadline or tick, even when it fires late, as
 * Go 1.23 stamps a timer's value); `gen` is t's generation when it
 * fired: compare it with conc_timer_gen() under the lock that guards
 * what fire does, to drop a firing that a stop or reset made stale.
 */
typedef void (*conc_timer_fn)(conc_timer *t, void *arg, conc_time now,
                              uint64_t gen);

/* A stopped timer; `drop(arg)` runs when the timer is destroyed. */
CONC_PUBLIC conc_timer *conc_timer_new(conc_timer_fn fire, void *arg,
                                       void (*drop)(void *arg));
CONC_PUBLIC void conc_timer_release(conc_timer *t);
/* (Re)schedules t at `when`, then every `period` ns if period > 0.
 * Returns 1 if it was scheduled before (Go's Reset result). */
CONC_PUBLIC int conc_timer_start(conc_timer *t, conc_time when,
                                 conc_time period);
/* Unschedules t; 1 if it was scheduled (Go's Stop result). */
CONC_PUBLIC int conc_timer_stop(conc_timer *t);
CONC_PUBLIC uint64_t conc_timer_gen(conc_timer *t);

/* A timer that sends on a channel: make(&m, now) builds each message,
 * which is sent only if the channel has room (a slow reader misses ticks,
 * as in Go). As in Go, c owns the timer: whoever holds c keeps the timer
 * running, and when c is freed the timer stops. The timer holds c only
 * weakly, so dropping c (and the returned reference) frees both. A
 * channel owns at most one timer. */
typedef void (*conc_tick_fn)(conc_msg *m, conc_time now);
CONC_PUBLIC conc_timer *conc_timer_new_chan(conc_chan *c, conc_tick_fn make);
/* Stops it and drops a value it sent that nobody has received yet, so no
 * stale value is received after it returns (Go 1.23). 1 if the timer was
 * active (scheduled, or its value still unreceived). */
CONC_PUBLIC int conc_timer_stop_chan(conc_timer *t, conc_chan *c);

/* ---- contexts ----------------------------------------------------------- */

typedef struct conc_ctx conc_ctx;
CONC_PUBLIC extern const conc_type conc_ctx_type;

/* The root context: never canceled, no deadline, no value. Retained. */
CONC_PUBLIC conc_ctx *conc_ctx_background(void);
/* A child of parent, canceled with it. deadline: CONC_NEVER for none.
 * key/value: NULL, or messages that pass to the context. */
CONC_PUBLIC conc_ctx *conc_ctx_new(conc_ctx *parent, conc_time deadline,
                                   conc_msg *key, conc_msg *value);
/* Cancels ctx and its descendants with err (ECANCELED or EDEADLINE) and
 * an optional cause (taken over; NULL for none). 1 if this call did it,
 * 0 if it was canceled already (then the cause is freed); EINVAL for
 * another err (the cause is still the caller's). */
CONC_PUBLIC int conc_ctx_cancel(conc_ctx *ctx, int err, conc_msg *cause);
/* 0 while live, else ECANCELED or EDEADLINE. */
CONC_PUBLIC int conc_ctx_err(conc_ctx *ctx);
/* The channel closed on cancellation (borrowed: lives as long as ctx;
 * receive-only). */
CONC_PUBLIC conc_chan *conc_ctx_done(conc_ctx *ctx);
CONC_PUBLIC conc_time conc_ctx_deadline(conc_ctx *ctx);
/* Copies the cause into *out: 1 if there is one. */
CONC_PUBLIC int conc_ctx_cause(conc_ctx *ctx, conc_msg *out);
/* Copies the value of the nearest context with an equal key: 1 if found.*/
CONC_PUBLIC int conc_ctx_value(conc_ctx *ctx, const conc_msg *key,
                               conc_msg *out);
/* Same bytes and the same object references. */
CONC_PUBLIC int conc_msg_equal(const conc_msg *a, const conc_msg *b);

/* ---- sync --------------------------------------------------------------- */

typedef struct conc_wg conc_wg;
typedef struct conc_mutex conc_mutex;
typedef struct conc_rwmutex conc_rwmutex;
typedef struct conc_cond conc_cond;
typedef struct conc_once conc_once;
CONC_PUBLIC extern const conc_type conc_wg_type, conc_mutex_type,
    conc_rwmutex_type, conc_cond_type, conc_once_type;

CONC_PUBLIC conc_wg *conc_wg_new(void);
/* ENEGATIVE if the counter would go below zero, EOVERFLOW past INT64_MAX
 * (it is left unchanged either way). */
CONC_PUBLIC int conc_wg_add(conc_wg *wg, int64_t delta);
CONC_PUBLIC int64_t conc_wg_count(conc_wg *wg);
/* NULL if the counter is zero, else a channel closed when it reaches
 * zero (retained for the caller; receive-only). */
CONC_PUBLIC conc_chan *conc_wg_wait_chan(conc_wg *wg);
/* Whether c, from conc_wg_wait_chan, was released by the counter
 * reaching zero: what a waiter that saw c closed checks. */
CONC_PUBLIC int conc_wg_released(conc_wg *wg, conc_chan *c);

CONC_PUBLIC conc_mutex *conc_mutex_new(void);
/* 0 once locked; EINTR (the main script, interrupted) or EDEADLOCK (the
 * main script, deadlock mode ERROR) without the lock. */
CONC_PUBLIC int conc_mutex_lock(conc_mutex *m);
CONC_PUBLIC int conc_mutex_trylock(conc_mutex *m);      /* 1 if locked */
CONC_PUBLIC int conc_mutex_unlock(conc_mutex *m);       /* or ENOTLOCKED */

CONC_PUBLIC conc_rwmutex *conc_rwmutex_new(void);
/* CONC_OK once held. The main script's wait may be ended by Ctrl-C or a
 * deadlock (conc_mutex_lock too): then its code, nothing held. */
CONC_PUBLIC int conc_rwmutex_lock(conc_rwmutex *m);
CONC_PUBLIC int conc_rwmutex_rlock(conc_rwmutex *m);
CONC_PUBLIC int conc_rwmutex_trylock(conc_rwmutex *m);
CONC_PUBLIC int conc_rwmutex_tryrlock(conc_rwmutex *m);
CONC_PUBLIC int conc_rwmutex_unlock(conc_rwmutex *m);   /* or ENOTLOCKED */
CONC_PUBLIC int conc_rwmutex_runlock(conc_rwmutex *m);  /* or ENOTLOCKED */

/* A condition variable whose lock is a conc_mutex (retained). */
CONC_PUBLIC conc_cond *conc_cond_new(conc_mutex *m);
CONC_PUBLIC conc_mutex *conc_cond_mutex(conc_cond *c);
/* Unlocks the mutex, waits for a signal, locks it again. ENOTLOCKED if
 * the mutex was not locked. The main script's wait may be ended by
 * Ctrl-C or a deadlock: it returns that code holding the mutex again
 * (Go's Wait always returns with the lock held). */
CONC_PUBLIC int conc_cond_wait(conc_cond *c);
CONC_PUBLIC void conc_cond_signal(conc_cond *c);
CONC_PUBLIC void conc_cond_broadcast(conc_cond *c);

enum { CONC_ONCE_RUN = 0, CONC_ONCE_DONE = 1, CONC_ONCE_WAIT = 2 };
CONC_PUBLIC conc_once *conc_once_new(void);
/* RUN: the caller must run the function, then conc_once_finish. DONE:
 * the outcome is ready. WAIT: *wait is a channel (retained,
 * receive-only) closed when the runner finishes. */
CONC_PUBLIC int conc_once_begin(conc_once *o, conc_chan **wait);
/* Stores the outcome (taken over) and wakes the waiters. */
CONC_PUBLIC void conc_once_finish(conc_once *o, conc_msg *outcome, int failed);
/* Copies the outcome: 1 if fn failed (the copy is the error). */
CONC_PUBLIC int conc_once_outcome(conc_once *o, conc_msg *out);

/* ---- rate limiter (x/time/rate) ----------------------------------------- */

/*
 * A token bucket of `burst` tokens, refilled at `limit` tokens per second,
 * computed lazily from the clock: no thread, no timer. CONC_RATE_INF is
 * the infinite limit (every event is allowed, the burst is ignored). The
 * functions taking `now` compute at that time (conc_now() for callers
 * that are not tests), as x/time/rate's AllowN, ReserveN... do.
 */
typedef struct conc_limiter conc_limiter;
typedef struct conc_reservation conc_reservation;
CONC_PUBLIC extern const conc_type conc_limiter_type, conc_reservation_type;
#define CONC_RATE_INF 1.7976931348623157e308  /* DBL_MAX, Go's rate.Inf */

/* limit >= 0 (CONC_RATE_INF or more: infinite), burst >= 0: the
 * caller's to check (the Lua binding does; other values are undefined).
 * A full bucket. NULL: ENOMEM. */
CONC_PUBLIC conc_limiter *conc_limiter_new(double limit, int64_t burst);
/* Whether n events may happen at now (takes their tokens if so). */
CONC_PUBLIC int conc_limiter_allow(conc_limiter *l, conc_time now, int64_t n);
/* Reserves n tokens at now, however long they take to come (never fails
 * for n <= burst: later events wait behind it). NULL: ENOMEM. */
CONC_PUBLIC conc_reservation *conc_limiter_reserve(conc_limiter *l,
                                                   conc_time now, int64_t n);
/*
 * Waits until n events may happen, within deadline (CONC_NEVER: none)
 * and ctx (NULL: none). Fails before waiting: ERATEBURST when n exceeds
 * the burst (and the limit is finite); the context's error if it is
 * canceled; ERATEDEADLINE (the ctx's deadline) or ETIMEDOUT (deadline)
 * when the tokens would come after it. Canceled while it waits, it gives
 * its tokens back and returns the context's error. Parks the calling
 * thread on its waiter ("limiter wait").
 */
CONC_PUBLIC int conc_limiter_wait(conc_limiter *l, int64_t n,
                                  conc_time deadline, conc_ctx *ctx);
CONC_PUBLIC void conc_limiter_set_limit(conc_limiter *l, conc_time now,
                                        double limit);
CONC_PUBLIC void conc_limiter_set_burst(conc_limiter *l, conc_time now,
                                        int64_t burst);
CONC_PUBLIC double conc_limiter_limit(conc_limiter *l);
CONC_PUBLIC int64_t conc_limiter_burst(conc_limiter *l);
/* Tokens available at now (negative while reservations wait). */
CONC_PUBLIC double conc_limiter_tokens(conc_limiter *l, conc_time now);

/* Whether the limiter could grant it (n <= burst, or infinite limit). */
CONC_PUBLIC int conc_reservation_ok(conc_reservation *r);
/* Nanoseconds from now until it may act: 0 if it may act now,
 * CONC_NEVER if it is not ok. */
CONC_PUBLIC conc_time conc_reservation_delay(conc_reservation *r,
                                             conc_time now);
/* Gives back the tokens that later reservations did not already count
 * on, unless the time to act has passed. Only the first call does
 * anything (x/time/rate would give them back twice). */
CONC_PUBLIC void conc_reservation_cancel(conc_reservation *r, conc_time now);

/* ---- circuit breaker ---------------------------------------------------- */

/*
 * Closed: calls run; `failures` consecutive failures open it. Open: every
 * call is refused (EBREAKEROPEN) until `timeout` has passed since it
 * opened, then it is half-open. Half-open: at most `probes` calls run at
 * once (more: ETOOMANYPROBES); any failure opens it again, `successes`
 * consecutive successes close it. Counts are those of the current state:
 * a change of state clears them, and the outcome of a call admitted in an
 * earlier state is ignored (gobreaker's generations).
 */
typedef struct conc_breaker conc_breaker;
CONC_PUBLIC extern const conc_type conc_breaker_type;

enum { CONC_BREAKER_CLOSED, CONC_BREAKER_OPEN, CONC_BREAKER_HALF_OPEN };
enum { CONC_CALL_SUCCESS, CONC_CALL_FAILURE, CONC_CALL_ABANDON };

/* Each field's range is the caller's to check (the Lua binding does;
 * other values are undefined). */
typedef struct conc_breaker_config {
  int64_t failures;    /* >= 1 */
  int64_t successes;   /* >= 1 */
  int64_t probes;      /* >= 1 */
  conc_time timeout;   /* >= 0 ns */
} conc_breaker_config;

typedef struct conc_breaker_counts {
  int64_t requests, successes, failures;
  int64_t consecutive_successes, consecutive_failures;
} conc_breaker_counts;

/* A state change that a call made: from -> to (from < 0: none). Whoever
 * made it reports it (on_change) after the call returns. */
typedef struct conc_breaker_change {
  int from, to;
} conc_breaker_change;

/* A closed breaker; `on_change` (NULL: none) is taken over and kept for
 * conc_breaker_on_change. NULL: ENOMEM (on_change then freed). */
CONC_PUBLIC conc_breaker *conc_breaker_new(const conc_breaker_config *cfg,
                                           conc_msg *on_change);
/* Admits a call at now (CONC_OK, *ticket set: pass it to
 * conc_breaker_end) or refuses it (EBREAKEROPEN, ETOOMANYPROBES). */
CONC_PUBLIC int conc_breaker_begin(conc_breaker *b, conc_time now,
                                   uint64_t *ticket, conc_breaker_change *ch);
/* Records the outcome of an admitted call (CONC_CALL_*; ABANDON: it
 * never ran, it only gives its place back). */
CONC_PUBLIC void conc_breaker_end(conc_breaker *b, conc_time now,
                                  uint64_t ticket, int outcome,
                                  conc_breaker_change *ch);
/* The state at now (an open breaker whose timeout passed turns
 * half-open here, as in a call). */
CONC_PUBLIC int conc_breaker_state(conc_breaker *b, conc_time now,
                                   conc_breaker_change *ch);
CONC_PUBLIC void conc_breaker_counts_get(conc_breaker *b,
                                         conc_breaker_counts *out);
/* Copies the on_change message: 1, 0 if there is none, or ENOMEM. */
CONC_PUBLIC int conc_breaker_on_change(conc_breaker *b, conc_msg *out);
CONC_PUBLIC const char *conc_breaker_state_name(int state);
/* ---- weighted semaphore (x/sync/semaphore) ------------------------------ */

/*
 * A semaphore of `size` units of weight. Waiters are served in FIFO
 * order: a request that does not fit blocks every one behind it, so a
 * large request is never starved by small ones.
 */
typedef struct conc_sem conc_sem;
typedef struct conc_sem_wait conc_sem_wait;  /* one queued acquire */
CONC_PUBLIC extern const conc_type conc_sem_type;

CONC_PUBLIC conc_sem *conc_sem_new(int64_t size);  /* NULL: ENOMEM */
CONC_PUBLIC int64_t conc_sem_size(const conc_sem *s);
/* Weight held now (for diagnostics). */
CONC_PUBLIC int64_t conc_sem_held(conc_sem *s);
/* Acquires n (n >= 0, else EINVAL) without waiting if it fits and
 * nobody waits: CONC_OK. Else CONC_EAGAIN with *wait set to a queued
 * request: the caller waits until conc_sem_wait_chan(*wait) is closed
 * (then the weight was granted to it) or gives up, and in both cases
 * ends it with conc_sem_wait_end. A request for more than the size is
 * never granted: as in x/sync it waits until given up, outside the queue
 * (it holds no other request up). ENOMEM: nothing acquired, nothing
 * queued. */
CONC_PUBLIC int conc_sem_acquire(conc_sem *s, int64_t n, conc_sem_wait **wait);
/* The channel closed when the request is granted (borrowed: it lives
 * until conc_sem_wait_end; receive-only). */
CONC_PUBLIC conc_chan *conc_sem_wait_chan(const conc_sem_wait *wait);
/* Ends a request, granted or not, and frees it: 1 if the weight was
 * granted (the caller holds it now), 0 if the request left the queue
 * unserved (and the requests behind it that now fit are granted). */
CONC_PUBLIC int conc_sem_wait_end(conc_sem *s, conc_sem_wait *wait);
/* 1 if n was acquired at once (it fits and nobody waits), else 0. */
CONC_PUBLIC int conc_sem_try_acquire(conc_sem *s, int64_t n);
/* Gives back n and grants the waiters that now fit, in order. EHELD if
 * more than is held (nothing is released then). */
CONC_PUBLIC int conc_sem_release(conc_sem *s, int64_t n);

/* ---- atomic integer (sync/atomic.Int64) --------------------------------- */

/* An int64 shared by reference; every operation is one sequentially
 * consistent atomic instruction. Arithmetic wraps around, as Go's. */
typedef struct conc_atomic conc_atomic;
CONC_PUBLIC extern const conc_type conc_atomic_type;
CONC_PUBLIC conc_atomic *conc_atomic_new(int64_t v);  /* NULL: ENOMEM */
CONC_PUBLIC int64_t conc_atomic_load(conc_atomic *a);
CONC_PUBLIC void conc_atomic_store(conc_atomic *a, int64_t v);
CONC_PUBLIC int64_t conc_atomic_add(conc_atomic *a, int64_t delta); /* new */
CONC_PUBLIC int64_t conc_atomic_swap(conc_atomic *a, int64_t v);    /* old */
CONC_PUBLIC int conc_atomic_cas(conc_atomic *a, int64_t old, int64_t v);

/* ---- errgroup (x/sync/errgroup) ----------------------------------------- */

/*
 * A group of functions run by the binding's workers: it counts them,
 * keeps every failure (the first wins: it cancels the group's context
 * with itself as the cause), and optionally limits how many run at once
 * with a semaphore. Errors are opaque messages to the core.
 */
typedef struct conc_errgroup conc_errgroup;
CONC_PUBLIC extern const conc_type conc_errgroup_type;

/* A group whose context is a child of parent (NULL: the background). */
CONC_PUBLIC conc_errgroup *conc_errgroup_new(conc_ctx *parent);
/* Its context (borrowed: lives as long as g). */
CONC_PUBLIC conc_ctx *conc_errgroup_ctx(conc_errgroup *g);
/* Counts one more function. *sem is the limit's semaphore (retained),
 * or NULL: the caller acquires 1 of it before the function runs (and
 * the function's conc_errgroup_done gives it back). */
CONC_PUBLIC void conc_errgroup_begin(conc_errgroup *g, conc_sem **sem);
/* Counts one more function if the limit allows it now (1), else 0. */
CONC_PUBLIC int conc_errgroup_try_begin(conc_errgroup *g);
/* A counted function ended: err is NULL if it succeeded, else its error
 * (taken over). `held`: it holds a unit of the limit, given back here. */
CONC_PUBLIC void conc_errgroup_done(conc_errgroup *g, conc_msg *err, int held);
/* n < 0: no limit. EBUSY while functions are counted (nothing changes);
 * ENOMEM. */
CONC_PUBLIC int conc_errgroup_set_limit(conc_errgroup *g, int64_t n);
CONC_PUBLIC int64_t conc_errgroup_limit(conc_errgroup *g);   /* -1: none */
CONC_PUBLIC int64_t conc_errgroup_running(conc_errgroup *g);
/* NULL if no function is counted, else a channel (retained, receive-
 * only) closed when the count reaches zero. */
CONC_PUBLIC conc_chan *conc_errgroup_wait_chan(conc_errgroup *g);
/* What Wait does once the count is zero: cancels the context (cause:
 * the first error). 1 with a copy of the first error in *first if a
 * function failed, else 0. */
CONC_PUBLIC int conc_errgroup_finish(conc_errgroup *g, conc_msg *first);
/* Failures so far, in order (the first one first). */
CONC_PUBLIC size_t conc_errgroup_nerrors(conc_errgroup *g);
/* Copies failure i into *out: 1 if there is one. */
CONC_PUBLIC int conc_errgroup_error(conc_errgroup *g, size_t i, conc_msg *out);
/* ---- signals and the main script's interrupt --------------------------- */

/*
 * conc_signal_notify makes conc deliver signal `sig` as a message on c
 * (a non-blocking send: a full channel misses it, as in Go); while any
 * channel or context is notified of sig, its disposition is conc's (the
 * default action is off); when the last one stops, the action it had
 * before comes back. One thread, started by the first notify, receives
 * the signals (sigwaitinfo): every thread conc starts blocks them, so a
 * handler (the host's, or conc's forwarder) runs only on the host's
 * threads. conc_signal_notify_ctx cancels ctx (with the message as its
 * cause) instead. EINVAL: a signal conc does not handle (see
 * conc_signal_handled). Notifying the same target again adds signals.
 */
CONC_PUBLIC int conc_signal_notify(conc_chan *c, int sig);
CONC_PUBLIC int conc_signal_notify_ctx(conc_ctx *ctx, int sig);
/* Stops every delivery to target (a channel or a context): none is made
 * once this returns. 0, or EINVAL if it was not notified. */
CONC_PUBLIC int conc_signal_stop(conc_obj *target);
/* Whether conc can deliver sig: SIGHUP, SIGINT, SIGQUIT, SIGUSR1,
 * SIGUSR2, SIGALRM, SIGTERM, SIGWINCH. */
CONC_PUBLIC int conc_signal_handled(int sig);
/* The message a delivery of sig sends (and a context's cause): set once
 * by the host before the first notify (conc.core's own, a Lua string
 * like "SIGINT", is set when a state first opens it, unless the host's
 * is set already; it never replaces the host's). */
typedef void (*conc_signal_msg_fn)(conc_msg *m, int sig);
CONC_PUBLIC void conc_signal_set_message(conc_signal_msg_fn make);
/* Blocks conc's signals in the calling thread, saving the old mask in
 * *old: around pthread_create, so that a thread conc starts inherits it. */
CONC_PUBLIC void conc_signal_block(sigset_t *old);
CONC_PUBLIC void conc_signal_restore(const sigset_t *old);

/*
 * Ctrl-C while the main script waits. The main script's thread (the one
 * that made conc_main_enter's thread-enter, id 0) ends the wait it is in
 * (a channel operation, select, a mutex lock, a sleep) with EINTR when
 * conc_interrupt_main is called: async-signal-safe, for a SIGINT handler
 * (1 if a wait was ended). `pending`, set by the host, says whether the
 * host asked the main script to stop since its wait began (lua.c's
 * SIGINT handler sets a Lua hook): the main thread asks it before it
 * sleeps, and conc's SIGINT wrapper (installed then, in front of the
 * host's own handler, which it calls first) asks it after each SIGINT.
 */
CONC_PUBLIC int conc_interrupt_main(void);
CONC_PUBLIC void conc_set_interrupt_pending(int (*pending)(void));
/* ---- pub/sub (pubsub.c) ------------------------------------------------- */

typedef struct conc_pubsub conc_pubsub;
CONC_PUBLIC extern const conc_type conc_pubsub_type;

CONC_PUBLIC conc_pubsub *conc_pubsub_new(void);   /* NULL: ENOMEM */
/* Subscribes `id` to the topics (byte strings of the given lengths) with
    * a receive-only channel of capacity cap, returned retained in *out. An
    * id subscribed already is replaced (its old channel is closed). */
CONC_PUBLIC int conc_pubsub_subscribe(conc_pubsub *ps, const char *id,
                                      size_t idlen, const char *const *topics,
                                      const size_t *lens, size_t ntopics,
                                      size_t cap, conc_chan **out);
/* Removes `id` and closes its channel: 1 if it was subscribed. */
CONC_PUBLIC int conc_pubsub_unsubscribe(conc_pubsub *ps, const char *id,
                                        size_t len);
/* Gives every subscriber of `topic` a copy of *m (which stays the
 * caller's) without blocking: a full channel misses it, and its
 * subscriber's dropped count grows. Returns how many received it, or
 * ENOMEM. */
CONC_PUBLIC int conc_pubsub_publish(conc_pubsub *ps, const char *topic,
                                    size_t len, const conc_msg *m);
/* Messages `id` missed; -1 if it is not subscribed. */
CONC_PUBLIC int64_t conc_pubsub_dropped(conc_pubsub *ps, const char *id,
                                        size_t len);
CONC_PUBLIC size_t conc_pubsub_count(conc_pubsub *ps);

/* ---- fan-in (merge.c) --------------------------------------------------- */

/*
 * A receive-only channel that receives from the n inputs (each retained)
 * until every one is closed and drained, or ctx (if not NULL) is
 * canceled: then it reads as closed. No thread forwards anything: a
 * receive on it (conc_chan_recv, or a case of conc_select) is a select
 * over its live inputs, so each value is received exactly once, by the
 * merged channel's receiver, and an unbuffered input's sender is
 * released by that receiver. Inputs may be merged channels themselves
 * (up to CONC_MERGE_DEPTH deep: EINVAL beyond). What a receive expands
 * to is bounded: every input counts 1, a merged input 1 (plus 1 for its
 * context, if any) plus what it counts itself, duplicates included; more
 * than CONC_MERGE_MAX is EOVERFLOW. In a select, the merged channel is one
 * case, however many inputs it has. The merged channel is returned
 * retained in *out.
 */
#define CONC_MERGE_DEPTH 8
#define CONC_MERGE_MAX 4096
CONC_PUBLIC int conc_merge_new(conc_chan *const *in, size_t n, conc_ctx *ctx,
                               conc_chan **out);

/* ---- worker pools and pipeline stages (workpool.c) ---------------------- */

/*
 * The shared state of a pool of n workers (conc.workpool) or a pipeline
 * stage (conc.stage): the channel its workers take jobs from, the one
 * they put results on, an optional context that stops them, and the
 * count of workers still running. The workers themselves are the
 * binding's; each calls conc_workpool_exit once when it stops, and the
 * last one closes `results` and the pool's done channel.
 */
typedef struct conc_workpool conc_workpool;
CONC_PUBLIC extern const conc_type conc_workpool_type;

/* jobs and results are retained. own_jobs: close() closes jobs (a pool's
 * own queue; a stage's input is its producer's to close). */
CONC_PUBLIC conc_workpool *conc_workpool_new(int workers, conc_chan *jobs,
                                             conc_chan *results, conc_ctx *ctx,
                                             int own_jobs);
/* The channels and context, borrowed (they live as long as p). */
CONC_PUBLIC conc_chan *conc_workpool_jobs(conc_workpool *p);
CONC_PUBLIC conc_chan *conc_workpool_results(conc_workpool *p);
CONC_PUBLIC conc_ctx *conc_workpool_ctx(conc_workpool *p);
/* Takes no more jobs: closes the queue (once); 1 if this call did. */
CONC_PUBLIC int conc_workpool_close(conc_workpool *p);
CONC_PUBLIC int conc_workpool_closed(conc_workpool *p);
/* A worker stops; the last closes results and the done channel. */
CONC_PUBLIC void conc_workpool_exit(conc_workpool *p);
/* Workers still running. */
CONC_PUBLIC int conc_workpool_live(conc_workpool *p);
/* A channel closed once every worker has stopped (borrowed). */
CONC_PUBLIC conc_chan *conc_workpool_done(conc_workpool *p);
/* Workers that never started (a spawn failed): counted as stopped. */
CONC_PUBLIC void conc_workpool_unstarted(conc_workpool *p, int n);

#endif
