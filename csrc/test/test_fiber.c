/*
 * test_fiber.c: wait fibers (core/fiber.c): a call runs on one, suspends
 * and resumes, and one that comes within a page of the bottom of its
 * stack aborts the process rather than run into the next fiber's.
 */
#include "../core/internal.h"
#include "check.h"

static void count_up(void *arg) { ++*(int *)arg; }

/* fn returns: the run says so; the same fiber runs the next call. */
static void runs_and_is_reused(void) {
  conc__fiber *f = conc__fiber_get();
  CHECK(f != NULL);
  int n = 0;
  for (int i = 0; i < 100; i++) CHECK(conc__fiber_run(f, count_up, &n));
  CHECK_EQ(n, 100);
  conc__fiber_put(f);
}

static void suspend_between(void *arg) {
  int *n = arg;
  ++*n;
  CHECK(conc__fiber_current() != NULL);
  conc__fiber_suspend();
  ++*n;
}

/* A suspended call keeps its frame; resume finishes it. */
static void suspends_and_resumes(void) {
  conc__fiber *f = conc__fiber_get();
  int n = 0;
  CHECK(!conc__fiber_run(f, suspend_between, &n));
  CHECK_EQ(n, 1);
  CHECK(conc__fiber_current() == NULL);
  CHECK(conc__fiber_resume(f));
  CHECK_EQ(n, 2);
  conc__fiber_put(f);
}

/* Writes `bytes` of stack below its own frame (each one: a page left
 * untouched by a frame that skipped it would not be seen). */
static void use_stack(size_t bytes) {
  volatile char buf[bytes];
  /* A loop, not memset: no library call (or lazy symbol resolution, ~3 KB
   * of stack) at the bottom. */
  for (size_t i = 0; i < bytes; i++) buf[i] = 0x5a;
  (void)buf;
}

static void deep_but_not_too_deep(void *arg) {
  size_t size = *(size_t *)arg;
  use_stack(size / 2); /* well past the top page, far from the bottom */
}

/* A call that leaves the top page but stays a page off the bottom
 * returns, on every fiber it ran on. */
static void deep_call_returns(void) {
  conc__fiber *f = conc__fiber_get();
  size_t size;
  (void)conc__fiber_stack(f, &size);
  CHECK(conc__fiber_run(f, deep_but_not_too_deep, &size));
  CHECK(conc__fiber_run(f, count_up, &(int){0}));
  conc__fiber_put(f);
}

typedef struct to_bottom {
  conc__fiber *f;
} to_bottom;

static void down_to_the_last_page(void *arg) {
  to_bottom *t = arg;
  size_t size;
  char *stack = conc__fiber_stack(t->f, &size);
  char here;
  /* From below use_stack's frame down past the watched word (one page
   * above the bottom) by 64 bytes plus that frame's size (< 1 KB): still
   * within this fiber's stack. */
  size_t bytes = (size_t)(&here - (stack + 4096 - 64));
  use_stack(bytes);
}

static void overflow_in_child(void *arg) {
  (void)arg;
  to_bottom t = {conc__fiber_get()};
  conc__fiber_run(t.f, down_to_the_last_page, &t); /* aborts */
}

/* A call that comes within a page of the bottom aborts the process with
 * a message when its fiber switches back (in a child process). */
static void overflow_aborts(void) {
  char buf[1024];
  int status = in_child(overflow_in_child, NULL, buf, sizeof buf);
  CHECK(WIFSIGNALED(status));
  CHECK_EQ(WTERMSIG(status), SIGABRT);
  CHECK(strstr(buf, "a fiber's stack came within a page of overflowing") !=
        NULL);
}

static const check_test tests[] = {
    {"runs_and_is_reused", runs_and_is_reused},
    {"suspends_and_resumes", suspends_and_resumes},
    {"deep_call_returns", deep_call_returns},
    {"overflow_aborts", overflow_aborts},
    {NULL, NULL}};

int main(int argc, char **argv) {
  return check_main("test_fiber", tests, argc, argv);
}
