/*
 * repro_wg_wait_abort.c: conc_wg_wait_chan (csrc/core/sync.c) aborts
 * the process when a Wait at zero races an Add(+1).
 *
 *   conc__lock(&wg->lock);
 *   if (atomic_load(&wg->count) != 0) { ...create/retain wg->zero... }
 *   conc__unlock(&wg->lock);
 *   if (c == NULL && atomic_load(&wg->count) != 0)       <- re-read
 *     conc__fatal("conc_wg_wait_chan: malloc", 12);
 *
 * The out-of-memory check re-reads the counter after the lock is
 * released: if the count was 0 under the lock (c stays NULL: nothing to
 * wait for) and another thread's Add(1) lands just after, the process
 * aborts with "conc: fatal: conc_wg_wait_chan: malloc failed: Cannot
 * allocate memory", although no allocation failed. (Go documents Add at
 * zero concurrent with Wait as a misuse, but it never kills the process
 * for it; a Lua program that reuses a WaitGroup can hit this.)
 *
 * Run: csrc/test/repro/run.sh repro_wg_wait_abort
 * Exit 0: not reproduced in 5 s; the bug aborts the process (SIGABRT).
 */
#include <stdio.h>
#include "../check.h"

static conc_wg *wg;
static atomic_int stop;

static void *adder(void *p) {
  (void)p;
  while (!atomic_load(&stop)) {
    conc_wg_add(wg, 1);
    conc_wg_add(wg, -1);
  }
  return NULL;
}

int main(void) {
  wg = conc_wg_new();
  pthread_t t = spawn(adder, NULL);
  conc_time until = in_ms(5000);
  long waits = 0;
  while (conc_now() < until) {
    conc_chan *c = conc_wg_wait_chan(wg);
    if (c) conc_release((conc_obj *)c);
    waits++;
  }
  atomic_store(&stop, 1);
  join(t);
  printf("not reproduced in %ld waits\n", waits);
  conc_release((conc_obj *)wg);
  return 0;
}
