/*
 * signal.c: signals as channel sends (Go's os/signal), and Ctrl-C for
 * the main script's waits. No Lua here, and nothing but a forward runs
 * in a signal handler.
 *
 * Delivery. The first notify starts one thread, which takes conc's
 * signals with sigwaitinfo and turns each into non-blocking sends (or
 * context cancellations) for the targets notified of it. Every thread
 * conc starts (workers, the timer thread, this one) blocks those signals
 * from birth (conc_signal_block around pthread_create), so the kernel
 * gives a process-directed signal to a thread of the host (the main
 * thread). While a signal is notified its action is `forward`, which
 * sends it on to the signal thread (tgkill: a system call, safe in a
 * handler), where it stays pending until sigwaitinfo takes it: the
 * default action is off whichever thread the kernel picks, and no code
 * but the forward runs in the handler. Stopping the last target of a
 * signal puts back the action saved when the first was notified (lua.c's
 * SIGINT handler, say). A signal that reaches the thread with no target
 * left (in flight during a stop, or sent to a host whose threads all
 * block it) gets the action it has now: the thread unblocks it for
 * itself and raises it again.
 *
 * Interrupts. lua.c runs a chunk with a SIGINT handler that sets a Lua
 * hook, which raises "interrupted!" at the next instruction; a thread
 * parked in a conc wait runs none. So before the main script's thread
 * sleeps in a wait (conc__interrupt_before_sleep), conc puts its own
 * handler, `wrap_sigint`, in front of the host's (looked at each time:
 * lua.c installs its handler again for each chunk it runs). It calls the
 * host's handler, then asks the host (conc_set_interrupt_pending)
 * whether that asked the main script to stop; if so it ends the wait
 * (conc_interrupt_main). A Ctrl-C that came earlier, while the wait was
 * being set up or spun, is caught by the same question asked before the
 * sleep. SIG_DFL and SIG_IGN are left alone: a host with no handler dies
 * of Ctrl-C, or ignores it, as it would without conc. While SIGINT is
 * notified its action is `forward`, and the wrapper stays out.
 *
 * Locking: sig_lock guards the targets, the per-signal counts and saved
 * actions, and every sigaction call conc makes (so a notify on a worker
 * and the main thread's look at SIGINT never interleave). Order:
 * sig_lock, then a channel's lock (a send) or a context's (a cancel);
 * neither path ever takes sig_lock.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>
#include <sys/syscall.h>
#include "internal.h"

#define NSIG_CONC 64  /* conc's signals are all numbered below this */

static const int handled[] = {SIGHUP,  SIGINT,  SIGQUIT, SIGUSR1,
                              SIGUSR2, SIGALRM, SIGTERM, SIGWINCH};

/* A channel or a context notified of the signals in `mask`. */
typedef struct target {
  struct target *next;
  conc_obj *obj;        /* retained */
  bool is_ctx;
  uint64_t mask;        /* bit sig: notified of sig */
} target;

static conc__lock_t sig_lock = CONC_LOCK_INIT;
static target *targets;                     /* sig_lock */
static int notified[NSIG_CONC];             /* sig_lock: targets per sig */
static struct sigaction saved[NSIG_CONC];   /* sig_lock: action before */
static bool started;                        /* sig_lock */
static atomic_int sig_tid;                  /* the signal thread, once up */
static _Atomic(conc_signal_msg_fn) make_msg;
static _Atomic(int (*)(void)) pending_fn;
/* The host's SIGINT handler that wrap_sigint calls (written under
 * sig_lock, before wrap_sigint is installed in front of it). */
static struct sigaction host_sigint;

static void wrap_locked(void);

static uint64_t bit(int sig) { return (uint64_t)1 << sig; }

int conc_signal_handled(int sig) {
  for (size_t i = 0; i < sizeof handled / sizeof handled[0]; i++)
    if (handled[i] == sig) return 1;
  return 0;
}

static void handled_set(sigset_t *set) {
  sigemptyset(set);
  for (size_t i = 0; i < sizeof handled / sizeof handled[0]; i++)
    sigaddset(set, handled[i]);
}

void conc_signal_block(sigset_t *old) {
  sigset_t set;
  handled_set(&set);
  CONC_CHECK(pthread_sigmask(SIG_BLOCK, &set, old));
}

void conc_signal_restore(const sigset_t *old) {
  CONC_CHECK(pthread_sigmask(SIG_SETMASK, old, NULL));
}

void conc_signal_set_message(conc_signal_msg_fn make) {
  atomic_store(&make_msg, make);
}

void conc__signal_default_message(conc_signal_msg_fn make) {
  conc_signal_msg_fn none = NULL;
  atomic_compare_exchange_strong(&make_msg, &none, make);
}

void conc_set_interrupt_pending(int (*pending)(void)) {
  atomic_store(&pending_fn, pending);
}

/* ---- delivery --------------------------------------------------------- */

/* The handler of a notified signal, on a thread that does not block it:
 * hands it to the signal thread, where it is blocked, so it stays
 * pending there until sigwaitinfo takes it. */
static void forward(int sig) {
  int saved_errno = errno;
  syscall(SYS_tgkill, (int)getpid(), atomic_load(&sig_tid), sig);
  errno = saved_errno;
}

/* One delivery (sig_lock held, so a stop that returned sees none). */
static void deliver_to(target *t, int sig) {
  conc_msg m;
  atomic_load (&make_msg)(&m, sig);
  if (t->is_ctx) {  /* the message becomes the cause (taken over) */
    conc_ctx_cancel((conc_ctx *)t->obj, CONC_ECANCELED, &m);
    return;
  }
  conc_chan *c = (conc_chan *)t->obj;
  conc_waiter *wake = NULL;
  conc__lock(&c->lock);
  int rc = conc__chan_try_send(c, &m, &wake);  /* never blocks: Go's */
  conc__unlock(&c->lock);
  if (rc != CONC_OK) conc_msg_free(&m);  /* full (or closed): missed */
  if (wake) conc__waiter_wake(wake);
}

/* Nobody is notified of sig any more: it gets the action it has now, on
 * this thread, as if conc had never taken it. */
static void reraise(int sig) {
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  CONC_CHECK(pthread_sigmask(SIG_UNBLOCK, &one, NULL));
  raise(sig);  /* delivered before raise returns: it is unblocked */
  CONC_CHECK(pthread_sigmask(SIG_BLOCK, &one, NULL));
}

/* With no target, the signal is raised again under sig_lock: a notify
 * in between would install `forward`, which on this thread (where the
 * signal is then unblocked) would send it back here forever. */
static void deliver(int sig) {
  bool any = false;
  conc__lock(&sig_lock);
  for (target *t = targets; t; t = t->next)
    if (t->mask & bit(sig)) {
      deliver_to(t, sig);
      any = true;
    }
  if (!any) reraise(sig);
  conc__unlock(&sig_lock);
}

static void *signal_main(void *arg) {
  (void)arg;
  sigset_t set;
  handled_set(&set);  /* blocked here since birth */
  atomic_store(&sig_tid, (int)syscall(SYS_gettid));
  for (;;) {
    int sig = sigwaitinfo(&set, NULL);
    if (sig > 0) deliver(sig);  /* else EINTR: another signal's handler */
  }
  return NULL;
}

/* Starts the signal thread once (sig_lock held) and waits until it has
 * said who it is, which `forward` needs: a wait of microseconds, once
 * per process, before any signal is taken over. */
static int start_locked(void) {
  if (started) return CONC_OK;
  pthread_attr_t attr;
  CONC_CHECK(pthread_attr_init(&attr));
  CONC_CHECK(pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED));
  sigset_t old;
  conc_signal_block(&old);
  pthread_t tid;
  int rc = pthread_create(&tid, &attr, signal_main, NULL);
  conc_signal_restore(&old);
  CONC_CHECK(pthread_attr_destroy(&attr));
  if (rc != 0) return CONC_ETHREAD;
  started = true;
  while (atomic_load(&sig_tid) == 0) sched_yield();
  return CONC_OK;
}

static target *find_locked(const conc_obj *obj) {
  for (target *t = targets; t; t = t->next)
    if (t->obj == obj) return t;
  return NULL;
}

/* The first target of sig: its action becomes `forward` (sig_lock). */
static void take_over(int sig) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  /* the host's system calls go on */
  CONC_CHECK(sigaction(sig, &sa, &saved[sig]));
}

static int notify(conc_obj *obj, bool is_ctx, int sig) {
  if (!conc_signal_handled(sig)) return CONC_EINVAL;
  conc__lock(&sig_lock);
  int rc = start_locked();
  target *t = rc == CONC_OK ? find_locked(obj) : NULL;
  if (rc == CONC_OK && t == NULL) {
    t = calloc(1, sizeof *t);
    if (t == NULL) rc = CONC_ENOMEM;
    else {
      conc_retain(obj);
      t->obj = obj;
      t->is_ctx = is_ctx;
      /* While anything is notified, a signal may wake a waiter, as a
       * pending timer may: no deadlock (Go's signal watcher does the
       * same to its deadlock check). */
      if (targets == NULL) conc__timers_busy_add(1);
      t->next = targets;
      targets = t;
    }
  }
  if (rc == CONC_OK && !(t->mask & bit(sig))) {
    t->mask |= bit(sig);
    if (notified[sig]++ == 0) take_over(sig);
  }
  conc__unlock(&sig_lock);
  return rc;
}

int conc_signal_notify(conc_chan *c, int sig) {
  return notify(&c->hdr, false, sig);
}

int conc_signal_notify_ctx(conc_ctx *ctx, int sig) {
  return notify((conc_obj *)ctx, true, sig);
}

int conc_signal_stop(conc_obj *obj) {
  conc__lock(&sig_lock);
  target **link = &targets;
  while (*link && (*link)->obj != obj) link = &(*link)->next;
  target *t = *link;
  if (t) {
    *link = t->next;
    for (int sig = 1; sig < NSIG_CONC; sig++)
      if ((t->mask & bit(sig)) && --notified[sig] == 0) {
        CONC_CHECK(sigaction(sig, &saved[sig], NULL));  /* as before */
        /* The host's Ctrl-C handler is back: wrapped now, as the next
         * sleep may not look (it looks at most every WRAP_CHECK_NS, and
         * a wait just before the stop may have looked). */
        if (sig == SIGINT && atomic_load(&pending_fn) != NULL) wrap_locked();
      }
  }
  bool last = t != NULL && targets == NULL;
  conc__unlock(&sig_lock);
  if (t == NULL) return CONC_EINVAL;
  if (last) conc__timers_busy_add(-1);  /* checks for a deadlock now */
  conc_release(t->obj);  /* no lock held: it may be destroyed */
  free(t);
  return CONC_OK;
}

/* ---- the main script's interrupt ---------------------------------------- */

static bool is_handler(const struct sigaction *sa) {
  if (sa->sa_flags & SA_SIGINFO) return true;
  return sa->sa_handler != SIG_DFL && sa->sa_handler != SIG_IGN;
}

/* SIGINT's action while the host has a handler and nobody is notified:
 * the host's handler, then the question whether it asked the main script
 * to stop. */
static void wrap_sigint(int sig, siginfo_t *info, void *uc) {
  int saved_errno = errno;
  if (host_sigint.sa_flags & SA_SIGINFO)
    host_sigint.sa_sigaction(sig, info, uc);
  else host_sigint.sa_handler(sig);
  int (*pending)(void) = atomic_load(&pending_fn);
  if (pending && pending()) conc_interrupt_main();
  errno = saved_errno;
}

/* Puts wrap_sigint in front of the host's SIGINT handler, unless it is
 * there already, SIGINT is notified, or the host has no handler. */
#define WRAP_CHECK_NS 10000000 /* 10 ms */

static void wrap_locked(void) {
  struct sigaction cur;
  if (notified[SIGINT] == 0 && sigaction(SIGINT, NULL, &cur) == 0 &&
      is_handler(&cur) &&
      !((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == wrap_sigint)) {
    host_sigint = cur;
    struct sigaction sa = cur;
    sa.sa_sigaction = wrap_sigint;
    sa.sa_flags = cur.sa_flags | SA_SIGINFO;
    CONC_CHECK(sigaction(SIGINT, &sa, NULL));
  }
}

static void wrap_host_sigint(void) {
  conc__lock(&sig_lock);
  wrap_locked();
  conc__unlock(&sig_lock);
}

bool conc__interrupt_pending(void) {
  int (*pending)(void) = atomic_load(&pending_fn);
  return pending != NULL && pending() != 0;
}

bool conc__interrupt_before_sleep(void) {
  if (atomic_load(&pending_fn) == NULL) return false; /* never asks */
  /* Looking at the host's handler is a system call: at most once every
   * WRAP_CHECK_NS (a main script receiving from a busy channel sleeps
   * ~100,000 times a second; the check then cost B2 60% of its rate).
   * A host that installs its handler anew (lua.c, per chunk) is wrapped
   * again within that time. */
  static atomic_llong next_check;
  conc_time now = conc_now();
  if (now >= atomic_load_explicit(&next_check, memory_order_relaxed)) {
    atomic_store_explicit(&next_check, now + WRAP_CHECK_NS,
                          memory_order_relaxed);
    wrap_host_sigint();
  }
  return conc__interrupt_pending();
}
