/*
 * repro_ctx_deadline_race.c: conc_ctx_new (csrc/core/ctx.c) links a new
 * child into its parent's list (link_to_parent) before arm_deadline
 * writes child->timer and starts the timer. A concurrent cancel of the
 * parent can reach the child in between: conc_ctx_cancel(child) reads
 * child->timer with no lock (a data race: ThreadSanitizer reports it
 * with SAN=tsan) and, seeing NULL (or a timer not started yet), does not
 * stop it. The timer is then started anyway and keeps its reference to
 * the child: a cancelled context with a deadline stays alive (and keeps
 * its parent alive) until the deadline, however far it is.
 * (Go's WithDeadline checks for cancellation after arming, and cancel
 * always stops the timer.)
 *
 * Run: csrc/test/repro/run.sh repro_ctx_deadline_race
 *      SAN=tsan csrc/test/repro/run.sh repro_ctx_deadline_race
 * Exit 0: not seen; exit 1: the bug (a cancelled context outlived its
 * last reference; counts printed).
 */
#include <stdio.h>
#include "../check.h"

static conc_ctx *_Atomic parent;
static atomic_long go, done;
static atomic_int quit;

static void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* Cancels the parent of each round as soon as the round starts. */
static void *canceller(void *p) {
  (void)p;
  for (long round = 1;; round++) {
    while (atomic_load(&go) < round && !atomic_load(&quit)) relax();
    if (atomic_load(&quit)) return NULL;
    conc_ctx_cancel(atomic_load(&parent), CONC_ECANCELED, NULL);
    atomic_fetch_add(&done, 1);
  }
}

int main(void) {
  conc_ctx *bg = conc_ctx_background();
  pthread_t t = spawn(canceller, NULL);
  long rounds = 0, kept = 0;
  conc_time until = in_ms(4000);
  while (conc_now() < until && kept < 3) {
    rounds++;
    conc_ctx *p = conc_ctx_new(bg, CONC_NEVER, NULL, NULL);
    atomic_store(&parent, p);
    atomic_store(&go, rounds);
    /* A child with a far deadline, created while the parent is being
     * cancelled. */
    conc_ctx *c = conc_ctx_new(p, in_ms(3600000), NULL, NULL);
    while (atomic_load(&done) < rounds) relax();
    CHECK_RC(conc_ctx_err(c), CONC_ECANCELED);
    conc_chan *probe = conc_ctx_done(c);
    conc_retain((conc_obj *)probe);
    conc_release((conc_obj *)c);
    conc_release((conc_obj *)p);
    /* Cancelled and dropped: it must be gone now (probe count 1). */
    if (atomic_load(&((conc_obj *)probe)->refs) != 1) kept++;
    conc_release((conc_obj *)probe);
  }
  atomic_store(&quit, 1);
  join(t);
  printf(
      "%ld rounds: %ld cancelled contexts kept alive by their deadline"
      " timer after the last reference was dropped\n",
      rounds, kept);
  conc_release((conc_obj *)bg);
  return kept ? 1 : 0;
}
