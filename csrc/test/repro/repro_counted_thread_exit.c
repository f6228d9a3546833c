/*
 * A host thread that ran a main state (counted as a Lua thread, as
 * lconc_main_enter makes it, and never uncounted: it counts until it
 * ends) exited while still linked in the scheduler's list of threads.
 * Its waiter went back to the free list, the next thread reused it and
 * linked it a second time: the list became a loop, and conc_threads
 * (conc.workers()) spun forever under the scheduler's lock. Found by
 * review. Exits 0 when the ended thread is gone from the list and the
 * count, 1 otherwise.
 */
#include <pthread.h>
#include <stdio.h>
#include "../../core/internal.h"

/* What lconc_main_enter does for a host thread that requires conc. */
static void *host(void *arg) {
  (void)arg;
  conc__live_add(1);
  conc__thread_enter(0);
  return NULL;  /* the thread ends, still counted */
}

static int run_host(void) {
  pthread_t t;
  if (pthread_create(&t, NULL, host, NULL) != 0) return -1;
  return pthread_join(t, NULL);
}

int main(void) {
  conc_deadlock_mode(CONC_DEADLOCK_OFF);
  for (int round = 1; round <= 3; round++) {
    if (run_host() != 0) return 2;
    int listed = conc_threads(NULL, 0);
    int awake = conc__awake_threads();
    if (listed != 0 || awake != 0) {
      fprintf(stderr,
              "round %d: %d threads listed and %d counted awake "
              "after the host threads ended\n",
              round, listed, awake);
      return 1;
    }
  }
  return 0;
}
