/*
 * A cond wait takes its mutex back without letting anything abort it (Go's
 * Wait returns holding the lock), yet an interrupt that read the flags of
 * the wait before (abortable, still set) could claim the re-lock: the
 * cond wait returned without the mutex, and a later unlock freed someone
 * else's hold. Found by review. Here a thread interrupts the main waiter
 * without pause while another signals the cond under the mutex; each
 * holder marks itself in `owner`. Exits 0 if every cond wait returned
 * holding the mutex for 2 s, 1 otherwise.
 */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include "../../core/internal.h"

static conc_mutex *mu;
static conc_cond *cv;
static atomic_int stop, owner, broken;

static int nothing_pending(void) { return 0; }

/* Marks the caller as the mutex's holder; a second holder is the bug. */
static void hold(int who) {
  if (atomic_exchange(&owner, who) != 0) atomic_store(&broken, 1);
}

static void release_hold(void) { atomic_store(&owner, 0); }

static void *signaler(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    while (conc_mutex_lock(mu) != CONC_OK) {
    }
    hold(2);
    conc_cond_signal(cv);
    release_hold();
    conc_mutex_unlock(mu);
  }
  return NULL;
}

static void *interrupter(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) conc_interrupt_main();
  return NULL;
}

int main(void) {
  conc_deadlock_mode(CONC_DEADLOCK_OFF);
  conc_set_interrupt_pending(nothing_pending);
  conc__thread_enter(0);  /* the main script's thread: interruptible */
  mu = conc_mutex_new();
  cv = conc_cond_new(mu);
  pthread_t t1, t2;
  pthread_create(&t1, NULL, signaler, NULL);
  pthread_create(&t2, NULL, interrupter, NULL);
  conc_time end = conc_now() + 2000000000;
  long rounds = 0;
  while (conc_now() < end && !atomic_load(&broken)) {
    while (conc_mutex_lock(mu) != CONC_OK) {
    }
    hold(1);
    release_hold();
    conc_cond_wait(cv);  /* returns holding the mutex, interrupted or not */
    hold(1);
    release_hold();
    conc_mutex_unlock(mu);
    rounds++;
  }
  atomic_store(&stop, 1);
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  if (atomic_load(&broken)) {
    fprintf(stderr, "a cond wait returned without its mutex (round %ld)\n",
            rounds);
    return 1;
  }
  return 0;
}
