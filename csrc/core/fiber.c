/*
 * fiber.c: wait stacks, where a light task's blocking call runs.
 *
 * A task's Lua code runs on its thread's own stack; a conc call that may
 * block (a channel operation, a lock...) runs its core function on a
 * small stack of its own, a fiber. If the core function parks (the
 * waiter's park, see waiter.c), the fiber switches back to the thread,
 * the task's Lua state yields (lua_yieldk) and the thread runs another
 * task; the fiber keeps the core function's frames (its sudogs, linked
 * in wait queues) until the task is woken, on whichever thread is free,
 * which switches into the fiber again to finish the call. Only the core
 * runs on fibers: no Lua, no printf. So a parked task costs its state
 * plus the fiber's touched page, and every blocking call of the core,
 * present or future, parks a task without being rewritten.
 *
 * Fibers come from slabs of SLAB fibers (one mapping each, so 100,000
 * parked tasks make 1,600 mappings, far from vm.max_map_count) with no
 * guard pages between them; only the pages a fiber's calls reach are
 * committed (one, for the core's paths). A fiber whose calls reached the
 * bottom page of its stack is taken for an overflow and aborts (see
 * check_canary).
 *
 * The switch is a few instructions on x86-64 (the callee-saved registers,
 * the stack pointer, the SSE and x87 control words); elsewhere it is
 * ucontext's, which also saves the signal mask (a system call). ASan,
 * TSan and Valgrind are told about every switch and every stack.
 */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include "internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define FIBER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FIBER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define FIBER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FIBER_TSAN 1
#endif
#endif

#ifdef FIBER_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef FIBER_TSAN
#include <sanitizer/tsan_interface.h>
#endif
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h> /* (it includes valgrind.h) */
#define FIBER_VALGRIND 1
#endif

/* Bytes of each fiber's stack. The core's deepest blocking path (a
 * select's scratch, the sleep hook's Lua frame walk) takes ~2 KB; the
 * sanitizers' frames are several times larger. */
#if defined(FIBER_ASAN) || defined(FIBER_TSAN)
#define FIBER_STACK (128u << 10)
#else
#define FIBER_STACK (32u << 10)
#endif
#define SLAB 64

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

struct conc__fiber {
  void *sp;                 /* its saved stack pointer (x86-64) */
  void *ret_sp;             /* the thread's, while the fiber runs */
#if !defined(__x86_64__)
  ucontext_t uc, ret_uc;
#endif
  char *stack; /* its `size` bytes (a wait fiber: the canary first) */
  size_t size;
  bool guarded; /* a big fiber: a guard page below its stack */
  void (*fn)(void *);
  void *arg;
  bool done; /* fn returned */
  conc__fiber *next_free;
#ifdef FIBER_ASAN
  void *fake_thread; /* ASan's fake stacks: the thread's, saved */
  void *fake_fiber; /* while the fiber runs, and the fiber's */
  const void *ret_bottom; /* the thread stack's, for the way back */
  size_t ret_size;
#endif
#ifdef FIBER_TSAN
  void *tsan; /* this fiber, and the thread's, to TSan */
  void *tsan_ret;
  /* The TSan fiber current in it when it switched out (code on a helper
   * fiber switches TSan fibers itself: worker.c's tsan_resume); NULL:
   * its own. */
  void *tsan_in;
#endif
#ifdef FIBER_VALGRIND
  unsigned vg_id;
#endif
};

#if defined(__x86_64__)
/* conc__fiber_swap(&save, to): saves the callee-saved registers and the
 * control words on the current stack, stores its pointer in *save, and
 * continues on the stack `to` (as saved by an earlier swap, or as made
 * by fiber_prepare). Visibility hidden, as everything of the module's. */
__asm__(
    ".text\n"
    ".p2align 4\n"
    ".globl conc__fiber_swap\n"
    ".hidden conc__fiber_swap\n"
    ".type conc__fiber_swap,@function\n"
    "conc__fiber_swap:\n"
    "  pushq %rbp\n"
    "  pushq %rbx\n"
    "  pushq %r12\n"
    "  pushq %r13\n"
    "  pushq %r14\n"
    "  pushq %r15\n"
    "  subq $8, %rsp\n"
    "  stmxcsr (%rsp)\n"
    "  fnstcw 4(%rsp)\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  ldmxcsr (%rsp)\n"
    "  fldcw 4(%rsp)\n"
    "  addq $8, %rsp\n"
    "  popq %r15\n"
    "  popq %r14\n"
    "  popq %r13\n"
    "  popq %r12\n"
    "  popq %rbx\n"
    "  popq %rbp\n"
    "  ret\n"
    ".size conc__fiber_swap, .-conc__fiber_swap\n"
    /* A fresh fiber's first return lands here: rbx holds the fiber,
     * r12 the C entry, which never returns. */
    ".p2align 4\n"
    ".type conc__fiber_start, @function\n"
    "conc__fiber_start:\n"
    "  movq %rbx, %rdi\n"
    "  callq *%r12\n"
    "  ud2\n"
    ".size conc__fiber_start, .-conc__fiber_start\n");
void conc__fiber_swap(void **save, void *to);
extern char conc__fiber_start[];
#endif

static conc__lock_t pool_lock = CONC_LOCK_INIT;
static conc__fiber *pool_free; /* pool_lock */
static atomic_long fibers_made;
static CONC_TLS conc__fiber *cached; /* one per thread, hot */
static CONC_TLS conc__fiber *running; /* the fiber this thread is in */

static void entry(void *p);
#if !defined(__x86_64__)
/* makecontext passes ints: the fiber's address in two halves. */
static void entry_uc(unsigned hi, unsigned lo) {
  entry((void *)(((uintptr_t)hi << 32) | (uintptr_t)lo));
}
#endif

/* Points the fiber at its start: its function runs on the next switch. */
static void fiber_prepare(conc__fiber *f) {
  f->done = false;
#ifdef FIBER_TSAN
  /* TSan's context for it, made on its first use rather than with its
   * slab: each costs ~0.8 MB cleared under TSan's thread registry lock,
   * and a slab's 64 at once (on several threads at once, at a program's
   * start) held a task's thread for hundreds of milliseconds with little
   * CPU, which the monitor takes for a thread blocked in C. */
  if (f->tsan == NULL) f->tsan = __tsan_create_fiber(0);
#endif
#if defined(__x86_64__)
  uintptr_t top = ((uintptr_t)(f->stack + f->size)) & ~(uintptr_t)15;
  uint64_t *sp = (uint64_t *)top;
  /* After the swap's ret, rsp is 16-aligned at conc__fiber_start, so
   * its call enters `entry` as the ABI wants (rsp + 8 aligned). */
  *--sp = (uint64_t)(uintptr_t)conc__fiber_start; /* ret address */
  *--sp = 0; /* rbp */
  *--sp = (uint64_t)(uintptr_t)f; /* rbx */
  *--sp = (uint64_t)(uintptr_t)entry; /* r12 */
  *--sp = 0; /* r13 */
  *--sp = 0; /* r14 */
  *--sp = 0; /* r15 */
  *--sp = 0x1F80u | ((uint64_t)0x037Fu << 32); /* mxcsr, x87 cw */
  f->sp = sp;
#else
  CONC_CHECK(getcontext(&f->uc));
  f->uc.uc_stack.ss_sp = f->stack;
  f->uc.uc_stack.ss_size = f->size;
  f->uc.uc_link = NULL;
  makecontext(&f->uc, (void (*)(void))entry_uc, 2,
              (unsigned)((uintptr_t)f >> 32), (unsigned)(uintptr_t)f);
#endif
}

/* A fiber's stack has no guard page: instead, the word one page above
 * its bottom must still be zero when it switches back. A fiber whose
 * calls came that deep is within a page of overflowing (the core's paths
 * take ~2 KB of FIBER_STACK): the process aborts before it corrupts the
 * next fiber's stack. That word is read only once the fiber's calls have
 * left its top page (the lowest word of that page, the last one a call
 * reaches there, is no longer zero): the first read of an untouched page
 * costs a fault of several us here (the zero page's too: 5% of B19's
 * time went to it, and a read-populated page a page of RSS), and most
 * fibers never go past their top page. */
#define TOP_PAGE_END(f) ((f)->stack + (f)->size - 4096)
static void check_depth(const conc__fiber *f) {
#ifdef FIBER_VALGRIND
  /* Memcheck takes stack a call has popped for out of bounds: this word
   * is read on purpose (a client request: a few no-op instructions). */
  VALGRIND_MAKE_MEM_DEFINED(TOP_PAGE_END(f), sizeof(uint64_t));
#endif
  if (!f->guarded && *(const volatile uint64_t *)TOP_PAGE_END(f) != 0 &&
      *(const volatile uint64_t *)(f->stack + 4096) != 0) {
    fprintf(stderr,
            "conc: fatal: a fiber's stack came within a page of "
            "overflowing\n");
    abort();
  }
}

/* Makes SLAB fibers in one mapping and puts all but one in the pool. */
static conc__fiber *new_slab(void) {
  size_t bytes = (size_t)SLAB * FIBER_STACK;
  char *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  conc__fiber *fs = calloc(SLAB, sizeof *fs);
  if (mem == MAP_FAILED || fs == NULL) {
    if (mem != MAP_FAILED) munmap(mem, bytes);
    free(fs);
    return NULL;
  }
  for (int i = 0; i < SLAB; i++) {
    conc__fiber *f = &fs[i];
    f->stack = mem + (size_t)i * FIBER_STACK;
    f->size = FIBER_STACK;
#ifdef MADV_POPULATE_WRITE
    /* Its top page, the one a parked call uses, in one go: a first touch
     * costs ~10 us here, populating ~1 us a page (TOOLCHAIN.md). */
    (void)madvise(f->stack + FIBER_STACK - 4096, 4096, MADV_POPULATE_WRITE);
#endif
#ifdef FIBER_VALGRIND
    f->vg_id = VALGRIND_STACK_REGISTER(f->stack, f->stack + FIBER_STACK);
#endif
  }
  atomic_fetch_add(&fibers_made, SLAB);
  conc__lock(&pool_lock);
  for (int i = 1; i < SLAB; i++) {
    fs[i].next_free = pool_free;
    pool_free = &fs[i];
  }
  conc__unlock(&pool_lock);
  return &fs[0];
}

conc__fiber *conc__fiber_new_big(size_t size) {
  size_t page = 4096, bytes = size + page;
  char *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1,
                   0);
  conc__fiber *f = calloc(1, sizeof *f);
  if (mem == MAP_FAILED || f == NULL ||
      mprotect(mem, page, PROT_NONE) != 0) { /* the guard, below */
    if (mem != MAP_FAILED) munmap(mem, bytes);
    free(f);
    return NULL;
  }
  f->stack = mem + page;
  f->size = size;
  f->guarded = true;
#ifdef FIBER_VALGRIND
  f->vg_id = VALGRIND_STACK_REGISTER(f->stack, f->stack + size);
#endif
  return f; /* (its TSan context: fiber_prepare, on first use) */
}

void conc__fiber_free_big(conc__fiber *f) {
#ifdef FIBER_ASAN
  /* Its suspended frames' redzones would be found by whatever is mapped
   * here next. */
  ASAN_UNPOISON_MEMORY_REGION(f->stack, f->size);
#endif
#ifdef FIBER_TSAN
  if (f->tsan != NULL) __tsan_destroy_fiber(f->tsan);
#endif
#ifdef FIBER_VALGRIND
  VALGRIND_STACK_DEREGISTER(f->vg_id);
#endif
  munmap(f->stack - 4096, f->size + 4096);
  free(f);
}

conc__fiber *conc__fiber_get(void) {
  conc__fiber *f = cached;
  if (f != NULL) {
    cached = NULL;
    return f;
  }
  conc__lock(&pool_lock);
  f = pool_free;
  if (f) pool_free = f->next_free;
  conc__unlock(&pool_lock);
  if (f == NULL) f = new_slab();
  return f; /* NULL: no memory (the caller blocks its thread instead) */
}

void conc__fiber_put(conc__fiber *f) {
  if (cached == NULL) {
    cached = f;
    return;
  }
  conc__lock(&pool_lock);
  f->next_free = pool_free;
  pool_free = f;
  conc__unlock(&pool_lock);
}

long conc__fibers_made(void) { return atomic_load(&fibers_made); }

char *conc__fiber_stack(const conc__fiber *f, size_t *size) {
  *size = f->size;
  return f->stack;
}

void conc__fiber_release_cached(void) {
  conc__fiber *f = cached;
  if (f == NULL) return;
  cached = NULL;
  conc__lock(&pool_lock);
  f->next_free = pool_free;
  pool_free = f;
  conc__unlock(&pool_lock);
}

/* ---- switching ---------------------------------------------------------- */

/* Thread (or the fiber it runs: a wait fiber runs inside a big one) ->
 * fiber f (from conc__fiber_run or conc__fiber_resume). */
static void switch_in(conc__fiber *f) {
  conc__fiber *outer = running;
  running = f;
#ifdef FIBER_TSAN
  f->tsan_ret = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(f->tsan_in ? f->tsan_in : f->tsan, 0);
#endif
#ifdef FIBER_ASAN
  __sanitizer_start_switch_fiber(&f->fake_thread, f->stack, f->size);
#endif
#if defined(__x86_64__)
  conc__fiber_swap(&f->ret_sp, f->sp);
#else
  CONC_CHECK(swapcontext(&f->ret_uc, &f->uc));
#endif
#ifdef FIBER_ASAN
  __sanitizer_finish_switch_fiber(f->fake_thread, NULL, NULL);
#endif
  running = outer;
  check_depth(f);
}

/* Fiber f -> the thread that switched in (from park, or at the end). */
static void switch_out(conc__fiber *f, bool last) {
#ifdef FIBER_TSAN
  void *in = __tsan_get_current_fiber();
  f->tsan_in = in == f->tsan ? NULL : in;
  __tsan_switch_to_fiber(f->tsan_ret, 0);
#endif
#ifdef FIBER_ASAN
  __sanitizer_start_switch_fiber(last ? NULL : &f->fake_fiber, f->ret_bottom,
                                 f->ret_size);
#else
  (void)last;
#endif
#if defined(__x86_64__)
  conc__fiber_swap(&f->sp, f->ret_sp);
#else
  CONC_CHECK(swapcontext(&f->uc, &f->ret_uc));
#endif
#ifdef FIBER_ASAN
  __sanitizer_finish_switch_fiber(f->fake_fiber, &f->ret_bottom, &f->ret_size);
#endif
}

static void entry(void *p) {
  conc__fiber *f = (conc__fiber *)p;
#ifdef FIBER_ASAN
  __sanitizer_finish_switch_fiber(NULL, &f->ret_bottom, &f->ret_size);
#endif
  for (;;) {
    f->fn(f->arg);
    f->done = true;
    switch_out(f, false); /* reused: the next run comes back here */
  }
}

bool conc__fiber_run(conc__fiber *f, void (*fn)(void *), void *arg) {
  f->fn = fn;
  f->arg = arg;
  if (f->sp == NULL) fiber_prepare(f); /* first use */
  f->done = false;
  switch_in(f);
  return f->done;
}

bool conc__fiber_resume(conc__fiber *f) {
  switch_in(f);
  return f->done;
}

conc__fiber *conc__fiber_current(void) { return running; }

void conc__fiber_suspend(void) {
  conc__fiber *f = running;
  switch_out(f, false);
}
