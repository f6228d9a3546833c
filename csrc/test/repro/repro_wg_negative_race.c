/*
 * repro_wg_negative_race.c: a rejected negative Add (ENEGATIVE) that
 * races other Adds corrupts the WaitGroup (csrc/core/sync.c,
 * conc_wg_add).
 *
 * conc_wg_add applies the delta first (atomic_fetch_add) and undoes it
 * when the result is negative. Between the two, other threads see the
 * transient negative count:
 *
 *  (a) lost wake-up: count 1, a waiter holds the wait channel. Thread A
 *      adds -1 (1 -> 0: the legitimate last Done); thread B adds -1 too
 *      (0 -> -1: rejected). If A reads the count under the lock while it
 *      is -1, A does not close the channel; B then restores 0. The count
 *      is 0 but the waiter is never released (Wait hangs for ever).
 *  (b) early release: count 1, waiter waiting. A adds -2 (1 -> -1,
 *      rejected), B adds +1 (-1 -> 0): B sees 0, takes the zero path and
 *      closes the channel; A restores: count 2. The waiter was released
 *      although two tasks are outstanding.
 *
 * In Lua the rejected Add is `wg:add(-n)` raising "negative WaitGroup
 * counter", which a pcall can catch, so the program goes on with a
 * corrupted WaitGroup. (Go panics there, so its program dies instead.)
 *
 * Run: csrc/test/repro/run.sh repro_wg_negative_race
 * Exit 0: neither seen in 10 s; exit 1: the bug (counts printed).
 */
#include <stdio.h>
#include "../check.h"


static inline void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* One adder thread lives for the whole run; each round, main sets up a
 * WaitGroup, bumps `go` and adds delta[0] while the adder, spinning on
 * `go`, adds delta[1] at the same moment. */
static conc_wg *_Atomic wg;
static int64_t delta[2];
static atomic_long go, done;
static atomic_int quit;

static void *adder(void *p) {
  (void)p;
  for (long round = 1;; round++) {
    while (atomic_load(&go) < round && !atomic_load(&quit)) relax();
    if (atomic_load(&quit)) return NULL;
    conc_wg_add(atomic_load(&wg), delta[1]);
    atomic_fetch_add(&done, 1);
  }
}

/* Runs one round; counts what went wrong. */
static void one_round(long round, int64_t d0, int64_t d1, long *lost,
                      long *early) {
  conc_wg *g = conc_wg_new();
  conc_wg_add(g, 1);
  conc_chan *z = conc_wg_wait_chan(g);
  atomic_store(&wg, g);
  delta[0] = d0;
  delta[1] = d1;
  atomic_store(&go, round);
  conc_wg_add(g, delta[0]);
  while (atomic_load(&done) < round) relax();
  int64_t count = conc_wg_count(g);
  int closed = conc_chan_closed(z);
  if (count == 0 && !closed) (*lost)++;
  if (count > 0 && closed) (*early)++;
  conc_release((conc_obj *)z);
  conc_release((conc_obj *)g);
}

int main(void) {
  pthread_t a = spawn(adder, NULL);
  long lost = 0, early = 0, round = 0;
  conc_time until = in_ms(10000);  /* or until both kinds are seen */
  while (conc_now() < until && (lost == 0 || early == 0)) {
    round++;
    if (round % 2) one_round(round, -1, -1, &lost, &early);  /* (a) */
    else one_round(round, -2, +1, &lost, &early);            /* (b) */
  }
  atomic_store(&quit, 1);
  join(a);
  printf(
      "%ld rounds: %ld lost wake-ups (count 0, waiter never released),"
      " %ld early releases (count > 0, waiter released)\n",
      round, lost, early);
  return (lost + early) ? 1 : 0;
}
