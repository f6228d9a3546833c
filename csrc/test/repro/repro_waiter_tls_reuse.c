/*
 * repro_waiter_tls_reuse.c: a thread's waiter goes back on the free list
 * when the thread exits (waiter_exit, the destructor of waiter_key in
 * csrc/core/waiter.c), but the thread-local `tls_waiter` still points at
 * it. Code that runs later in the same thread's exit (another thread-
 * specific destructor, e.g. one that closes a lua_State whose __gc sends
 * on a channel) calls conc__waiter_self(), gets that waiter back, and
 * may park on it while a new thread has taken the same waiter from the
 * free list: two threads share one waiter (wake-ups and claims cross).
 * waiter_exit runs on the exiting thread, so it could clear tls_waiter
 * (and a later conc__waiter_self would then take a fresh one).
 *
 * Run: csrc/test/repro/run.sh repro_waiter_tls_reuse
 * Exit 0: the waiters differ; exit 1: the bug (the same waiter twice).
 */
#include <stdio.h>
#include <semaphore.h>
#include "../peek.h"

static pthread_key_t late_key;  /* created after conc's: runs after it */
static sem_t freed, taken, got, hold;
static conc_waiter *in_exit, *fresh;

static void late_destructor(void *p) {
  (void)p;
  sem_post(&freed);             /* waiter_exit has run */
  sem_wait(&taken);             /* a new thread took a waiter */
  in_exit = conc__waiter_self();
}

static void *exiting(void *p) {
  (void)p;
  conc__waiter_self();
  pthread_setspecific(late_key, (void *)1);
  return NULL;
}

static void *newcomer(void *p) {
  (void)p;
  fresh = conc__waiter_self();
  sem_post(&got);
  sem_wait(&hold);  /* alive (holding its waiter) until a is done */
  return NULL;
}

int main(void) {
  conc__waiter_self();          /* creates conc's key first */
  CHECK_PT(pthread_key_create(&late_key, late_destructor));
  sem_init(&freed, 0, 0);
  sem_init(&taken, 0, 0);
  sem_init(&got, 0, 0);
  sem_init(&hold, 0, 0);
  pthread_t a = spawn(exiting, NULL);
  sem_wait(&freed);
  pthread_t b = spawn(newcomer, NULL);  /* while a is still alive */
  sem_wait(&got);
  sem_post(&taken);
  join(a);
  sem_post(&hold);
  join(b);
  printf(
      "waiter used in the exiting thread's destructor: %p, waiter "
      "handed to the next thread: %p\n",
      (void *)in_exit, (void *)fresh);
  return in_exit == fresh ? 1 : 0;
}
