/*
 * check.h: the tiny harness of conc's C tests (csrc/test/test_*.c).
 *
 * A test file lists its tests in a `check_test` table and ends with
 *   int main(int argc, char **argv) {
 *     return check_main("test_chan", tests, argc, argv);
 *   }
 * check_main runs each test in a child process of its own (fork before
 * the core starts any thread), so a failed CHECK, a sanitizer report or a
 * leak fails that test only, and a test that hangs is killed after
 * CONC_TEST_TIMEOUT seconds (default 30) and counted as failed. It prints
 * one line per test and then exactly `<name>: N passed, M failed`, and
 * returns non-zero if anything failed. Arguments name the tests to run.
 *
 * A CHECK that fails prints file:line and the expression, then exits
 * non-zero. Tests order threads with the core's own primitives, pthread
 * barriers, or by polling core state; sleeps only ever measure time.
 */
#ifndef CONC_CHECK_H
#define CONC_CHECK_H

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../conc.h"

#define CHECK_UNUSED __attribute__((unused))

#define CHECK(cond)                                                    \
  do {                                                                 \
    if (!(cond)) {                                                     \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
              #cond);                                                  \
      exit(1);                                                         \
    }                                                                  \
  } while (0)

/* Compares two integers and prints both values on failure. */
#define CHECK_EQ(a, b)                                                   \
  do {                                                                   \
    long long check_a_ = (long long)(a), check_b_ = (long long)(b);      \
    if (check_a_ != check_b_) {                                          \
      fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld != %lld)\n", \
              __FILE__, __LINE__, #a, #b, check_a_, check_b_);           \
      exit(1);                                                           \
    }                                                                    \
  } while (0)

/* Like CHECK_EQ for core return codes: prints their conc_strerror. */
#define CHECK_RC(call, expected)                                        \
  do {                                                                  \
    int check_rc_ = (call), check_ex_ = (expected);                     \
    if (check_rc_ != check_ex_) {                                       \
      fprintf(stderr, "%s:%d: CHECK_RC failed: %s returned %d (%s), "   \
              "expected %d (%s)\n", __FILE__, __LINE__, #call,          \
              check_rc_, conc_strerror(check_rc_), check_ex_,           \
              conc_strerror(check_ex_));                                \
      exit(1);                                                          \
    }                                                                   \
  } while (0)

/* A pthread call that must succeed. */
#define CHECK_PT(call) CHECK_RC(call, 0)

typedef struct check_test {
  const char *name;
  void (*fn)(void);
} check_test;

/* ---- messages: the core does not interpret bytes ----------------------- */

/* A message holding the 8 bytes of v (inline: no allocation). */
static CHECK_UNUSED void msg_int(conc_msg *m, int64_t v) {
  CHECK_RC(conc_msg_init(m, &v, sizeof v, NULL, 0), CONC_OK);
}

/* A message too long to live inline (CONC_MSG_INLINE + 1 + extra % 100
 * bytes, on the heap, so ASan sees its ownership) that carries v in its
 * first 8 bytes; the rest is a pattern derived from v. */
static CHECK_UNUSED void msg_int_big(conc_msg *m, int64_t v, size_t extra) {
  unsigned char buf[CONC_MSG_INLINE + 128];
  size_t len = CONC_MSG_INLINE + 1 + extra % 100;
  memcpy(buf, &v, sizeof v);
  for (size_t i = sizeof v; i < len; i++) buf[i] = (unsigned char)(v + i);
  CHECK_RC(conc_msg_init(m, buf, len, NULL, 0), CONC_OK);
  CHECK(m->len > CONC_MSG_INLINE);
}

/* The integer in a message built by msg_int or msg_int_big; checks the
 * big pattern too. */
static CHECK_UNUSED int64_t msg_get_int(const conc_msg *m) {
  int64_t v;
  CHECK(m->len >= sizeof v);
  const unsigned char *d = conc_msg_data(m);
  memcpy(&v, d, sizeof v);
  for (size_t i = sizeof v; i < m->len; i++)
    CHECK(d[i] == (unsigned char)(v + i));
  return v;
}

/* Takes the integer out of a message and frees it. */
static CHECK_UNUSED int64_t msg_take_int(conc_msg *m) {
  int64_t v = msg_get_int(m);
  conc_msg_free(m);
  return v;
}

/* ---- time -------------------------------------------------------------- */

#define CHECK_MS ((conc_time)1000000)

static CHECK_UNUSED conc_time in_ms(int64_t ms) {
  return conc_now() + ms * CHECK_MS;
}

/* Whether we run under ThreadSanitizer (used to scale loop counts). */
static CHECK_UNUSED int check_tsan(void) {
#if defined(__SANITIZE_THREAD__)
  return 1;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
  return 1;
#else
  return 0;
#endif
#else
  return 0;
#endif
}

/* n, or n / div under ThreadSanitizer (which is 5-15 times slower). */
static CHECK_UNUSED long scaled(long n, long div) {
  return check_tsan() ? (n / div > 0 ? n / div : 1) : n;
}

/* ---- threads ----------------------------------------------------------- */

/* Live objects of a type, from the core's own count (conc.stats). */
static CHECK_UNUSED long live_of(const char *type) {
  const char *names[32];
  long counts[32];
  int n = conc_obj_counts(names, counts, 32);
  for (int i = 0; i < n && i < 32; i++)
    if (strcmp(names[i], type) == 0) return counts[i];
  return 0;
}

static CHECK_UNUSED pthread_t spawn(void *(*fn)(void *), void *arg) {
  pthread_t t;
  CHECK_PT(pthread_create(&t, NULL, fn, arg));
  return t;
}

static CHECK_UNUSED void join(pthread_t t) { CHECK_PT(pthread_join(t, NULL)); }

/* Runs fn(arg) in a child process with its stderr caught in buf (n
 * bytes, NUL-terminated); returns its wait status. For what must end a
 * process (an abort, an exit with Go's status). */
static CHECK_UNUSED int in_child(void (*fn)(void *), void *arg, char *buf,
                                 size_t n) {
  int fds[2];
  CHECK(pipe(fds) == 0);
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    fn(arg);
    _exit(0);
  }
  close(fds[1]);
  size_t got = 0;
  ssize_t k;
  while (got < n - 1 && (k = read(fds[0], buf + got, n - 1 - got)) > 0)
    got += (size_t)k;
  buf[got] = '\0';
  close(fds[0]);
  int status;
  CHECK(waitpid(pid, &status, 0) == pid);
  return status;
}

/* ---- the runner -------------------------------------------------------- */

/* Runs one test in a child; 1 if it passed. */
static int check_run_one(const check_test *t, unsigned timeout) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    return 0;
  }
  if (pid == 0) {
    alarm(timeout);  /* SIGALRM ends a test that hangs */
    t->fn();
    fflush(stdout);
    exit(0);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) {
      perror("waitpid");
      return 0;
    }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 1;
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
    fprintf(stderr, "  %s: timed out after %u s (a hang)\n", t->name, timeout);
  else if (WIFSIGNALED(status))
    fprintf(stderr, "  %s: killed by signal %d\n", t->name, WTERMSIG(status));
  return 0;
}

static int check_selected(const char *name, int argc, char **argv) {
  if (argc < 2) return 1;
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], name) == 0) return 1;
  return 0;
}

static CHECK_UNUSED int check_main(const char *suite, const check_test *tests,
                                   int argc, char **argv) {
  const char *env = getenv("CONC_TEST_TIMEOUT");
  unsigned timeout = env ? (unsigned)strtoul(env, NULL, 10) : 30;
  if (timeout == 0) timeout = 30;
  int passed = 0, failed = 0;
  for (const check_test *t = tests; t->name; t++) {
    if (!check_selected(t->name, argc, argv)) continue;
    conc_time t0 = conc_now();
    int ok = check_run_one(t, timeout);
    printf("%s %s.%s (%.0f ms)\n", ok ? "ok  " : "FAIL", suite, t->name,
           (double)(conc_now() - t0) / 1e6);
    if (ok) passed++;
    else failed++;
  }
  printf("%s: %d passed, %d failed\n", suite, passed, failed);
  return failed ? 1 : 0;
}

#endif
