/*
 * test_signal.c: signals as channel sends and the main script's
 * interrupt (csrc/core/signal.c, sched.c), without Lua. Each test runs
 * in a child process of its own (check.h), so dispositions it changes
 * die with it.
 */
#include <signal.h>
#include <unistd.h>
#include "peek.h"

/* The message of a delivery: the signal's number, as an integer. */
static void number_msg(conc_msg *m, int sig) { msg_int(m, sig); }

/* A signal sent to the process arrives on the channel, by number. */
static void notify_delivers(void) {
  conc_signal_set_message(number_msg);
  conc_chan *c = conc_chan_new(4);
  CHECK_RC(conc_signal_notify(c, SIGUSR1), CONC_OK);
  CHECK_RC(conc_signal_notify(c, SIGUSR2), CONC_OK);
  CHECK_RC(conc_signal_notify(c, SIGKILL), CONC_EINVAL);
  CHECK(kill(getpid(), SIGUSR1) == 0);
  conc_msg m;
  CHECK_RC(conc_chan_recv(c, &m, in_ms(5000)), CONC_OK);
  CHECK_EQ(msg_take_int(&m), SIGUSR1);
  CHECK(kill(getpid(), SIGUSR2) == 0);
  CHECK_RC(conc_chan_recv(c, &m, in_ms(5000)), CONC_OK);
  CHECK_EQ(msg_take_int(&m), SIGUSR2);
  CHECK_RC(conc_signal_stop((conc_obj *)c), CONC_OK);
  CHECK_RC(conc_signal_stop((conc_obj *)c), CONC_EINVAL);
  conc_release((conc_obj *)c);
}

/* A full channel misses a signal; the delivery does not wait for room
 * (the second channel, notified first so delivered to after the full
 * one, still gets every signal). */
static void full_channel_misses(void) {
  conc_signal_set_message(number_msg);
  conc_chan *log = conc_chan_new(8), *full = conc_chan_new(1);
  CHECK_RC(conc_signal_notify(log, SIGUSR1), CONC_OK);
  CHECK_RC(conc_signal_notify(full, SIGUSR1), CONC_OK);
  conc_msg m;
  for (int i = 0; i < 3; i++) {
    CHECK(kill(getpid(), SIGUSR1) == 0);
    CHECK_RC(conc_chan_recv(log, &m, in_ms(5000)), CONC_OK);
    conc_msg_free(&m);
  }
  CHECK_EQ(conc_chan_len(full), 1);
  CHECK_RC(conc_signal_stop((conc_obj *)log), CONC_OK);
  CHECK_RC(conc_signal_stop((conc_obj *)full), CONC_OK);
  conc_release((conc_obj *)log);
  conc_release((conc_obj *)full);
}

/* Stopping the last target puts the old action back. */
static void stop_restores_action(void) {
  conc_signal_set_message(number_msg);
  struct sigaction before, during, after;
  CHECK(sigaction(SIGTERM, NULL, &before) == 0);
  conc_chan *c = conc_chan_new(1);
  CHECK_RC(conc_signal_notify(c, SIGTERM), CONC_OK);
  CHECK(sigaction(SIGTERM, NULL, &during) == 0);
  CHECK(during.sa_handler != before.sa_handler);
  CHECK_RC(conc_signal_stop((conc_obj *)c), CONC_OK);
  CHECK(sigaction(SIGTERM, NULL, &after) == 0);
  CHECK(after.sa_handler == before.sa_handler);
  conc_release((conc_obj *)c);
}

/* A notified context is canceled, with the message as its cause. */
static void context_canceled(void) {
  conc_signal_set_message(number_msg);
  conc_ctx *ctx = conc_ctx_new(conc_ctx_background(), CONC_NEVER, NULL, NULL);
  CHECK_RC(conc_signal_notify_ctx(ctx, SIGHUP), CONC_OK);
  CHECK(kill(getpid(), SIGHUP) == 0);
  conc_msg m;
  CHECK_RC(conc_chan_recv(conc_ctx_done(ctx), &m, in_ms(5000)), CONC_ECLOSED);
  CHECK_RC(conc_ctx_err(ctx), CONC_ECANCELED);
  CHECK(conc_ctx_cause(ctx, &m));
  CHECK_EQ(msg_take_int(&m), SIGHUP);
  CHECK_RC(conc_signal_stop((conc_obj *)ctx), CONC_OK);
  conc_release((conc_obj *)ctx);
}

static void *interrupt_soon(void *arg) {
  (void)arg;
  while (!conc_interrupt_main()) conc_sleep_until(in_ms(1));
  return NULL;
}

/* The main script's waits end with EINTR: a receive, a mutex lock and
 * a sleep, each interrupted from another thread once it waits. */
static void main_wait_interrupted(void) {
  conc_deadlock_mode(CONC_DEADLOCK_OFF);  /* the interrupter is not counted */
  conc__live_add(1);
  conc__thread_enter(0);
  conc_chan *c = conc_chan_new(0);
  conc_msg m;
  pthread_t t = spawn(interrupt_soon, NULL);
  CHECK_RC(conc_chan_recv(c, &m, CONC_NEVER), CONC_EINTR);
  join(t);
  conc_mutex *mu = conc_mutex_new();
  CHECK_RC(conc_mutex_lock(mu), CONC_OK);
  t = spawn(interrupt_soon, NULL);
  CHECK_RC(conc_mutex_lock(mu), CONC_EINTR);
  join(t);
  CHECK_RC(conc_mutex_unlock(mu), CONC_OK);  /* still ours, and only */
  CHECK(conc_mutex_trylock(mu));
  CHECK_RC(conc_mutex_unlock(mu), CONC_OK);
  t = spawn(interrupt_soon, NULL);
  CHECK_RC(conc_sleep_until(in_ms(60000)), CONC_EINTR);
  join(t);
  CHECK_RC(conc_sleep_until(in_ms(5)), CONC_OK);  /* nothing left over */
  conc_release((conc_obj *)c);
  conc_release((conc_obj *)mu);
  conc__thread_leave();
  conc__live_add(-1);
}

static const check_test tests[] = {
    {"notify_delivers", notify_delivers},
    {"full_channel_misses", full_channel_misses},
    {"stop_restores_action", stop_restores_action},
    {"context_canceled", context_canceled},
    {"main_wait_interrupted", main_wait_interrupted},
    {NULL, NULL}};

int main(int argc, char **argv) {
  return check_main("test_signal", tests, argc, argv);
}
