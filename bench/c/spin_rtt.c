/*
 * spin_rtt.c: the machine's cross-core round trip, for reading the other
 * numbers. Two threads pass a counter back and forth through two atomic
 * words, spinning (no conc, no Lua, no kernel): each round trip moves
 * two cache lines between the cores, the least any hand-off can cost.
 * On a VM the figure depends on where the host runs the two vCPUs at the
 * moment, and B1/B2 (hand-offs and cache-line traffic) move with it, so
 * bench/run records it next to every conc run.
 * Prints "<ns> ns/roundtrip" (the median of 5 batches of 20,000).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BATCH 20000
#define BATCHES 5

static _Alignas(64) atomic_long ping;
static _Alignas(64) atomic_long pong;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static void *echo(void *arg) {
  (void)arg;
  for (long i = 1; i <= (long)BATCH * BATCHES; i++) {
    while (atomic_load_explicit(&ping, memory_order_acquire) != i) relax();
    atomic_store_explicit(&pong, i, memory_order_release);
  }
  return NULL;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(void) {
  pthread_t t;
  if (pthread_create(&t, NULL, echo, NULL) != 0) return 1;
  double ns[BATCHES];
  long i = 0;
  for (int b = 0; b < BATCHES; b++) {
    double t0 = now();
    for (int k = 0; k < BATCH; k++) {
      i++;
      atomic_store_explicit(&ping, i, memory_order_release);
      while (atomic_load_explicit(&pong, memory_order_acquire) != i) relax();
    }
    ns[b] = (now() - t0) / BATCH;
  }
  pthread_join(t, NULL);
  qsort(ns, BATCHES, sizeof ns[0], by_value);
  printf("%.1f ns/roundtrip\n", ns[BATCHES / 2]);
  return 0;
}
