/*
 * repro_timer_stop_chan_wake.c: conc_timer_stop_chan (csrc/core/timer.c)
 * drains the timer's channel with conc__chan_try_recv but ignores the
 * waiter that call hands back in `wake`. If a sender is parked on the
 * channel (the channel is full and someone sends to it: t.C is an
 * ordinary conc.chan in Lua, so `t.C:send(x)` is possible), try_recv
 * claims that sender and completes its send, but nobody wakes it: the
 * sender sleeps forever (its own deadline no longer helps, because it
 * has been claimed). Its value also stays in the channel after the stop.
 *
 * Expected: the parked sender returns CONC_OK promptly after the stop.
 * Run: csrc/test/repro/run.sh repro_timer_stop_chan_wake
 * Exit 0: fixed; exit 1: the bug (the sender is still asleep after 2 s).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "../peek.h"

static void tick(conc_msg *m, conc_time now) { msg_int(m, now); }

static conc_chan *c;
static atomic_int sender_done;
static int sender_rc = 99;

static void *sender(void *p) {
  (void)p;
  conc_msg m;
  msg_int(&m, 12345);
  /* A deadline too: even so it never returns. */
  sender_rc = conc_chan_send(c, &m, in_ms(500));
  atomic_store(&sender_done, 1);
  return NULL;
}

int main(void) {
  c = conc_chan_new(1);
  conc_timer *t = conc_timer_new_chan(c, tick);
  conc_msg m;
  msg_int(&m, 1);
  CHECK_RC(conc_chan_send(c, &m, CONC_NOWAIT), CONC_OK);  /* full */
  CHECK_EQ(conc_timer_start(t, in_ms(60000), 0), 0);
  pthread_t th;
  CHECK_PT(pthread_create(&th, NULL, sender, NULL));
  pthread_detach(th);
  wait_parked(c, 0, 1);
  printf("sender parked on the full channel; calling conc_timer_stop_chan\n");
  conc_timer_stop_chan(t, c);
  conc_time until = in_ms(2000);
  while (!atomic_load(&sender_done) && conc_now() < until) sched_yield();
  if (!atomic_load(&sender_done)) {
    printf(
        "BUG: the sender was claimed by conc_timer_stop_chan but never "
        "woken (still asleep after 2 s, past its own 0.5 s deadline); "
        "channel len %zu\n",
        conc_chan_len(c));
    return 1;
  }
  printf("ok: sender returned %d (%s)\n", sender_rc, conc_strerror(sender_rc));
  return 0;
}
