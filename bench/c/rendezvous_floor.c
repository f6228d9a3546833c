/*
 * rendezvous_floor.c: the least a lock-based rendezvous between two
 * threads costs on this machine, for reading B1 against.
 *
 * Two threads pass an integer back and forth over two "channels", as B1
 * does, with the least such a channel can do: a lock word and a waiter
 * pointer on one cache line, and a mailbox line per thread. A receiver
 * that finds no sender links its mailbox under the lock and spins on
 * it; a sender takes the lock, writes the value and the flag into the
 * waiting receiver's mailbox, unlocks. (A sender that comes first leaves
 * its value in the channel and spins until a receiver takes it.) No
 * parking, no select, no timeouts, no Lua: what is left is the cache
 * lines that must cross between the cores, each way: the channel's line
 * and the mailbox's.
 *
 *   cc -O2 -pthread bench/c/rendezvous_floor.c -o /tmp/floor && /tmp/floor
 *
 * prints "<ns> ns/roundtrip" (median of 5 runs of 200,000).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct mailbox {
  _Alignas(64) atomic_uint full;
  long value;
} mailbox;

typedef struct channel {
  _Alignas(64) atomic_uint lock;
  mailbox *waiter;   /* a parked receiver, or a parked sender */
  long value;        /* a parked sender's value */
  int has_value;
} channel;

static channel ping, pong;
static mailbox box[2];
enum { N = 200000, RUNS = 5 };

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void lock(atomic_uint *l) {
  unsigned free_ = 0;
  while (!atomic_compare_exchange_weak(l, &free_, 1)) free_ = 0;
}

static void unlock(atomic_uint *l) {
  atomic_store_explicit(l, 0, memory_order_release);
}

static void spin_until_full(mailbox *me) {
  while (!atomic_load_explicit(&me->full, memory_order_acquire))
    __builtin_ia32_pause();
}

static void send(channel *c, long v, mailbox *me) {
  lock(&c->lock);
  mailbox *r = c->waiter;
  if (r != NULL) {  /* a receiver waits: hand it the value */
    c->waiter = NULL;
    r->value = v;
    atomic_store_explicit(&r->full, 1, memory_order_release);
    unlock(&c->lock);
    return;
  }
  c->value = v;
  c->has_value = 1;
  c->waiter = me;
  atomic_store_explicit(&me->full, 0, memory_order_relaxed);
  unlock(&c->lock);
  spin_until_full(me);  /* until a receiver took it */
}

static long recv(channel *c, mailbox *me) {
  lock(&c->lock);
  if (c->has_value) {  /* a sender waits: take its value, release it */
    long v = c->value;
    mailbox *s = c->waiter;
    c->has_value = 0;
    c->waiter = NULL;
    atomic_store_explicit(&s->full, 1, memory_order_release);
    unlock(&c->lock);
    return v;
  }
  atomic_store_explicit(&me->full, 0, memory_order_relaxed);
  c->waiter = me;
  unlock(&c->lock);
  spin_until_full(me);
  return me->value;
}

static void *partner(void *arg) {
  (void)arg;
  for (int r = 0; r < RUNS; r++)
    for (int i = 0; i < N; i++) send(&pong, recv(&ping, &box[1]) + 1, &box[1]);
  return NULL;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(void) {
  pthread_t t;
  if (pthread_create(&t, NULL, partner, NULL) != 0) return 1;
  double ns[RUNS];
  long x = 0;
  for (int r = 0; r < RUNS; r++) {
    long long t0 = now_ns();
    for (int i = 0; i < N; i++) {
      send(&ping, x, &box[0]);
      x = recv(&pong, &box[0]);
    }
    ns[r] = (double)(now_ns() - t0) / N;
  }
  pthread_join(t, NULL);
  if (x != (long)N * RUNS) return 1;
  qsort(ns, RUNS, sizeof ns[0], by_value);
  printf("%.1f ns/roundtrip\n", ns[RUNS / 2]);
  return 0;
}
