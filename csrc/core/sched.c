/*
 * sched.c: what the core knows about the threads that run Lua (the main
 * script's and the workers'): how many are live, how many wait with no
 * deadline, and on what. From that, Go's deadlock check: when every live
 * thread waits for good, no timer is pending (or firing) and so nothing
 * can wake anyone, the program can never go on.
 *
 * Counting: `live` counts a worker from its spawn (by the spawner, which
 * is running) to its end (after its last wake-ups); `conc__blocked`
 * counts threads asleep with no deadline. A thread marks itself asleep,
 * then looks at its claim, and counts itself only if unclaimed; a
 * claimer clears the mark (conc__claimed) as it wins the claim, before
 * the claimed thread runs. So a thread about to be woken is never
 * counted as blocked (the count may briefly be low, never high), and
 * deadlock() still confirms each thread's own flags before it reports.
 *
 * Locking: sched_lock guards the list of counted threads and the report;
 * it is a leaf. The counters are atomics.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "internal.h"

atomic_int conc__blocked;
static atomic_int live;
static atomic_int timers_busy;
static atomic_int mode;  /* CONC_DEADLOCK_EXIT by default (0) */
static atomic_bool main_gone;  /* the main script ended: no more checks */
static _Atomic(conc_sleep_hook) sleep_hook;
static conc__lock_t sched_lock = CONC_LOCK_INIT;
static conc_waiter *all;              /* counted threads (sched_lock) */
/* The last deadlock (sched_lock): a line a thread, as Go's report has a
 * stack a goroutine (50-250 bytes a line: some 600 lines or more; then
 * a count). */
static char report[65536];
/* The main script's waiter, for conc_interrupt_main (a signal handler
 * reads it: an atomic, never locked). */
static _Atomic(conc_waiter *) main_waiter;

void conc_deadlock_mode(int m) { atomic_store(&mode, m); }

conc_waiter *conc__main_waiter(void) { return atomic_load(&main_waiter); }

/* The main script's thread exits: its waiter goes back on the free list,
 * where a task may take it, and conc_interrupt_main must not claim that
 * task's wait. (A SIGINT handler that loaded it just before may still:
 * the window of a thread's exit.) */
void conc__main_waiter_gone(conc_waiter *w) {
  conc_waiter *expected = w;
  atomic_compare_exchange_strong(&main_waiter, &expected, NULL);
}

void conc_wait_label(const char *label) { conc__waiter_self()->label = label; }

void conc_set_sleep_hook(conc_sleep_hook hook) {
  atomic_store(&sleep_hook, hook);
}

const char *conc_deadlock_report(void) { return report; }

static void deadlock(void);

static _Atomic(bool (*)(void)) sweep_hook;

void conc__set_deadlock_sweep(bool (*sweep)(void)) {
  atomic_store(&sweep_hook, sweep);
}

static _Atomic(void (*)(char *, size_t)) note_hook;

void conc__set_deadlock_note(void (*note)(char *buf, size_t size)) {
  atomic_store(&note_hook, note);
}

/* Checks the condition; called whenever it may have become true: a
 * thread fell asleep for good, a worker ended, a timer finished. */
static void check(void) {
  int b = atomic_load(&conc__blocked);
  if (b > 0 && b == atomic_load(&live) && atomic_load(&timers_busy) == 0 &&
      atomic_load(&mode) != CONC_DEADLOCK_OFF && !atomic_load(&main_gone))
    deadlock();
}

void conc__live_add(int delta) {
  atomic_fetch_add(&live, delta);
  if (delta < 0) check();
}

int conc__awake_threads(void) {
  return atomic_load_explicit(&live, memory_order_relaxed) -
         atomic_load_explicit(&conc__blocked, memory_order_relaxed);
}

void conc__main_ended(void) { atomic_store(&main_gone, true); }

void conc__timers_busy_add(int delta) {
  atomic_fetch_add(&timers_busy, delta);
  if (delta < 0) check();
}

void conc__thread_enter(int64_t id) {
  conc__waiter_enter(conc__waiter_self(), id);
}

void conc__waiter_enter(conc_waiter *w, int64_t id) {
  conc__lock(&sched_lock);
  w->id = id;
  w->since = conc_now();
  atomic_store(&w->what, NULL);
  w->label = NULL;  /* a reused waiter: no name left from before */
  w->where[0] = '\0';
  w->counted = true;
  if (id == 0) atomic_store(&main_waiter, w);
  w->prev_all = NULL;
  w->next_all = all;
  if (all) all->prev_all = w;
  all = w;
  conc__unlock(&sched_lock);
}

static void unlink_counted(conc_waiter *w) {  /* sched_lock held */
  if (w->prev_all) w->prev_all->next_all = w->next_all;
  else all = w->next_all;
  if (w->next_all) w->next_all->prev_all = w->prev_all;
  w->counted = false;
}

void conc__thread_leave(void) { conc__waiter_leave(conc__waiter_self()); }

void conc__waiter_leave(conc_waiter *w) {
  conc__lock(&sched_lock);
  if (w->counted) unlink_counted(w);
  conc__unlock(&sched_lock);
}

void conc__thread_gone(conc_waiter *w) {
  conc__lock(&sched_lock);
  bool counted = w->counted;
  if (counted) unlink_counted(w);
  conc__unlock(&sched_lock);
  if (counted) conc__live_add(-1);
}

/* One line of the report for w, into line. */
static int describe(const conc_waiter *w, char *line, size_t size) {
  char who[48];
  if (w->id == 0) snprintf(who, sizeof who, "main");
  else if (w->id < 0) snprintf(who, sizeof who, "finalizers");
  else snprintf(who, sizeof who, "worker %lld", (long long)w->id);
  const char *what = atomic_load(&w->what);
  return snprintf(line, size, "%s: %s %s%s%s\n", who,
                  atomic_load(&w->asleep) ? "waits in" : "runs",
                  what ? what : "?", w->where[0] ? " at " : "", w->where);
}

/* Appends a line for each counted thread to buf (sched_lock held): the
 * main script's and the finalizers' first, then the workers'; whole
 * lines only, and the count of those that did not fit. */
static void describe_all(char *buf, size_t size) {
  size_t n = strlen(buf);
  int left_out = 0;
  char line[sizeof((conc_waiter *)0)->where + 128];
  for (int workers = 0; workers <= 1; workers++)
    for (const conc_waiter *w = all; w; w = w->next_all) {
      if ((w->id > 0) != workers) continue;
      int k = describe(w, line, sizeof line);
      if (k < 0) continue;
      if ((size_t)k >= sizeof line) { /* cut: still a line */
        k = (int)sizeof line - 1;
        line[k - 1] = '\n';
      }
      if (left_out || n + (size_t)k + 64 >= size) { /* room for the count */
        left_out++;
        continue;
      }
      memcpy(buf + n, line, (size_t)k + 1);
      n += (size_t)k;
    }
  if (left_out) snprintf(buf + n, size - n, "... and %d more\n", left_out);
}

/* The counters say every live thread is asleep: confirm it thread by
 * thread (sched_lock held). The counters are updated by sleepers and
 * claimers without a lock; sleep_begin keeps them from running ahead
 * of the flags, and a report that exits the process rests on what each
 * thread says of itself as well: asleep, and not claimed, for each of
 * `live` threads. */
static bool all_asleep(void) {
  int n = 0;
  for (conc_waiter *w = all; w; w = w->next_all, n++)
    if (!atomic_load(&w->asleep) || atomic_load(&w->selected) != CONC_SEL_NONE)
      return false;
  return n == atomic_load(&live);
}

/* Whether every live thread is asleep, no timer pending (sched_lock
 * held): the counters, then each thread's word. */
static bool deadlocked_locked(void) {
  return atomic_load(&conc__blocked) == atomic_load(&live) &&
         atomic_load(&timers_busy) == 0 && all_asleep();
}

/* Every live thread is asleep for good: report, then exit or fail the
 * main script's wait. Called by the last one to fall asleep. */
static void deadlock(void) {
  /* Confirmed first: counters that agree by chance (a thread between
   * its updates) cost no collection pass. */
  conc__lock(&sched_lock);
  bool dead = deadlocked_locked();
  conc__unlock(&sched_lock);
  if (!dead) return;
  /* Garbage not collected yet may wake a waiter (a pub/sub dropped closes
   * its subscribers): the hook has it collected first, counted as a
   * pending timer meanwhile, and the check runs again after. */
  bool (*sweep)(void) = atomic_load(&sweep_hook);
  if (sweep && sweep()) return;
  conc__lock(&sched_lock);
  if (!deadlocked_locked()) {
    conc__unlock(&sched_lock);  /* someone woke meanwhile */
    return;
  }
  snprintf(report, sizeof report, "all workers are asleep - deadlock!\n\n");
  /* What failed unseen first (a worker's error: often the cause), in at
   * most half the report, then the threads. */
  void (*note)(char *, size_t) = atomic_load(&note_hook);
  if (note) note(report, sizeof report / 2);
  describe_all(report, sizeof report);
  conc_waiter *main_w = NULL;
  for (conc_waiter *x = all; x; x = x->next_all)
    if (x->id == 0 && atomic_load(&x->abortable) && atomic_load(&x->asleep))
      main_w = x;
  bool raise = atomic_load(&mode) == CONC_DEADLOCK_ERROR && main_w &&
               conc__waiter_claim(main_w, CONC_SEL_DEADLOCK);
  conc__unlock(&sched_lock);
  if (raise) {  /* main_w may be w itself: the wake ends its park loop */
    conc__waiter_wake(main_w);
    return;
  }
  fprintf(stderr, "fatal error: %s", report);
  fflush(stderr);
  _exit(2);
}

/* Async-signal-safe (atomics and a futex wake): a SIGINT handler calls
 * it, on the main thread itself or on another. Only a wait that says it
 * can be aborted (`what` set, `abortable`) is claimed: it then unlinks
 * what it linked and returns EINTR. A claim that loses (a waker won, or
 * the wait is over and `selected` holds its outcome) changes nothing. */
int conc_interrupt_main(void) {
  conc_waiter *w = atomic_load(&main_waiter);
  if (w == NULL ||
      atomic_load_explicit(&w->what, memory_order_acquire) == NULL ||
      !atomic_load(&w->abortable) || !conc__waiter_claim(w, CONC_SEL_INTERRUPT))
    return 0;
  conc__waiter_wake(w);
  return 1;
}

void conc__sleep_begin(conc_waiter *w) {
  if (!w->counted) return;
  conc_sleep_hook hook = atomic_load(&sleep_hook);
  char where[sizeof w->where] = "";
  if (hook) hook(where, sizeof where);
  /* Only this thread writes its `where` (readers lock): a wait in a loop
   * finds it unchanged, and takes no lock that every sleeper shares. */
  if (strcmp(w->where, where) != 0) {
    conc__lock(&sched_lock);
    memcpy(w->where, where, sizeof where);
    conc__unlock(&sched_lock);
  }
  atomic_store(&w->asleep, 1);
  /* Claimed already (before the store, so the claimer saw no flag and
   * uncounted nothing): not asleep, never counted. Looked at before the
   * count goes up, so the count never includes a thread about to run;
   * a claimer that did take the flag has subtracted one: repay it. */
  if (atomic_load(&w->selected) != CONC_SEL_NONE) {
    if (!atomic_exchange(&w->asleep, 0)) atomic_fetch_add(&conc__blocked, 1);
    return;
  }
  atomic_fetch_add(&conc__blocked, 1);
  check();
}

void conc__sleep_end(conc_waiter *w) {
  if (atomic_exchange(&w->asleep, 0)) atomic_fetch_sub(&conc__blocked, 1);
}

int conc_threads(conc_thread_info *out, int max) {
  int n = 0;
  conc__lock(&sched_lock);
  for (conc_waiter *w = all; w; w = w->next_all, n++) {
    if (n >= max) continue;
    conc_thread_info *t = &out[n];
    t->id = w->id;
    t->since = w->since;
    bool waits = atomic_load(&w->what) != NULL;
    t->state = atomic_load(&w->asleep) ? CONC_THREAD_BLOCKED
               : waits                 ? CONC_THREAD_WAITING
                                       : CONC_THREAD_RUNNING;
    t->what = atomic_load(&w->what);
    t->obj = atomic_load(&w->obj);
    memcpy(t->where, w->where, sizeof t->where);
  }
  conc__unlock(&sched_lock);
  return n;
}
