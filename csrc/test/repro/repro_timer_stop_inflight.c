/*
 * repro_timer_stop_inflight.c: conc_timer_stop_chan (csrc/core/timer.c)
 * returns 0 ("already expired") for a timer that never delivered its
 * value. When the timer thread has taken the timer off the heap (its
 * firing is in flight: pop_due, then t->tick, then chan_fire locks the
 * channel), conc_timer_stop finds it unscheduled (0), the channel is
 * still empty (0), and chan_fire then drops the value because the
 * generation changed. The header promises "1 if the timer was active
 * (scheduled, or its value still unreceived)", and Go 1.23's Stop
 * returns true here (no value was or will be delivered). With the result
 * 0, the classic idiom
 *     if not t:stop() then t.C:recv() end
 * blocks for ever.
 *
 * Run: csrc/test/repro/run.sh repro_timer_stop_inflight
 * Exit 0: not seen; exit 1: the bug (how often it happened).
 */
#include <stdio.h>
#include "../check.h"

/* A tick that takes a while widens the in-flight window. */
static void slow_tick(conc_msg *m, conc_time now) {
  conc_time until = conc_now() + 20000;
  while (conc_now() < until) sched_yield();
  msg_int(m, now);
}

int main(void) {
  conc_chan *c = conc_chan_new(1);
  conc_timer *t = conc_timer_new_chan(c, slow_tick);
  long rounds = 0, bad = 0;
  for (; rounds < 2000 && bad < 5; rounds++) {
    conc_timer_start(t, conc_now(), 0);  /* due at once */
    conc_time spin = conc_now() + (rounds % 30) * 1000;
    while (conc_now() < spin) sched_yield();
    int active = conc_timer_stop_chan(t, c);
    /* Let any firing in flight finish, then look for a value. */
    conc_chan *s = conc_chan_new(1);
    conc_timer *sentinel = conc_timer_new_chan(s, slow_tick);
    conc_timer_start(sentinel, conc_now(), 0);
    conc_msg m;
    CHECK_RC(conc_chan_recv(s, &m, CONC_NEVER), CONC_OK);
    conc_msg_free(&m);
    conc_timer_release(sentinel);
    conc_release((conc_obj *)s);
    int delivered = conc_chan_recv(c, &m, CONC_NOWAIT) == CONC_OK;
    if (delivered) conc_msg_free(&m);  /* would be a second bug */
    if (!active && !delivered) bad++;
  }
  printf(
      "%ld rounds: stop_chan returned 0 for %ld timers that never "
      "delivered a value\n",
      rounds, bad);
  conc_timer_release(t);
  conc_release((conc_obj *)c);
  return bad ? 1 : 0;
}
