/*
 * conc.h: the public C API of conc's core.
 *
 * The core knows no Lua. It provides reference-counted objects, owned
 * messages (opaque byte buffers plus the objects they reference), one way
 * to block (the waiter), channels with Go's semantics and select.
 *
 * Conventions: functions return 0 (CONC_OK) or a negative CONC_E* code;
 * conc_strerror turns a code into text. A failed system primitive (a
 * pthread call that cannot fail when used correctly) aborts the process.
 * Times are int64 nanoseconds of CLOCK_MONOTONIC (conc_now()).
 */
#ifndef CONC_H
#define CONC_H

#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>

#if defined(__GNUC__)
#define CONC_API __attribute__((visibility("hidden")))
#else
#define CONC_API
#endif

/* ---- error codes --------------------------------------------------- */

#define CONC_ERRNO_MAP(X)                                        \
  X(ECLOSED, -1, "channel closed")                               \
  X(ETIMEDOUT, -2, "timeout")                                    \
  X(EAGAIN, -3, "would block")                                   \
  X(ENOMEM, -4, "out of memory")                                 \
  X(EINVAL, -5, "invalid argument")                              \
  X(ETHREAD, -6, "cannot create thread")

enum {
  CONC_OK = 0,
#define CONC_ERRNO_ENUM(name, code, text) CONC_##name = code,
  CONC_ERRNO_MAP(CONC_ERRNO_ENUM)
#undef CONC_ERRNO_ENUM
};

CONC_API const char *conc_strerror(int code);

/* ---- time ------------------------------------------------------------ */

typedef int64_t conc_time;           /* monotonic nanoseconds */
#define CONC_NEVER INT64_MAX         /* a deadline that never comes */
#define CONC_NOWAIT ((conc_time)0)   /* a deadline already past: poll */

CONC_API conc_time conc_now(void);
/* Seconds (a Lua number) from now as a deadline; <= 0 means CONC_NOWAIT. */
CONC_API conc_time conc_deadline_in(double seconds);

/* ---- reference-counted objects ------------------------------------- */

typedef struct conc_obj conc_obj;
typedef struct conc_type {
  const char *name;                  /* e.g. "conc.chan": the Lua __name */
  void (*destroy)(conc_obj *o);      /* frees the object; never blocks */
} conc_type;

/* Every shared object starts with this header, so a pointer to any
 * object (conc_chan *...) converts to conc_obj * and back. */
struct conc_obj {
  atomic_long refs;
  const conc_type *type;
};

CONC_API void conc_obj_init(conc_obj *o, const conc_type *type);
CONC_API void conc_retain(conc_obj *o);
CONC_API void conc_release(conc_obj *o);   /* destroys at zero */

/* ---- messages -------------------------------------------------------- */

/*
 * A message is an owned, encoded value: bytes plus the conc objects it
 * references (each retained once by the message). Short messages with no
 * references live inline, so moving them through a channel allocates
 * nothing. A message is moved by copying the struct; whoever holds it last
 * calls conc_msg_free.
 */
#define CONC_MSG_INLINE 48

typedef struct conc_msg {
  uint32_t len;                      /* bytes of encoded data */
  uint32_t nrefs;                    /* objects referenced */
  union {
    unsigned char small[CONC_MSG_INLINE];
    struct {
      unsigned char *data;           /* heap: nrefs pointers, then bytes */
    } big;
  } u;
} conc_msg;

/* Builds a message from bytes and objects (each already retained by the
 * caller; ownership of those references passes to the message). */
CONC_API int conc_msg_init(conc_msg *m, const void *data, size_t len,
                           conc_obj *const *refs, uint32_t nrefs);
CONC_API const unsigned char *conc_msg_data(const conc_msg *m);
CONC_API conc_obj *conc_msg_ref(const conc_msg *m, uint32_t i);
CONC_API void conc_msg_free(conc_msg *m);   /* releases refs, frees data */
/* A second message with the same content (its own references). */
CONC_API int conc_msg_copy(conc_msg *dst, const conc_msg *src);

/* ---- waiting ---------------------------------------------------------- */

typedef struct conc_waiter conc_waiter;

/* Parks the calling thread until deadline; 0 when it came, ETIMEDOUT. */
CONC_API int conc_sleep_until(conc_time deadline);

/* ---- channels --------------------------------------------------------- */

typedef struct conc_chan conc_chan;
CONC_API extern const conc_type conc_chan_type;

CONC_API conc_chan *conc_chan_new(size_t cap);          /* NULL: ENOMEM */
/* Sends *m. On CONC_OK the message belongs to the channel; on any error
 * it still belongs to the caller. ECLOSED: closed (Go panics). ETIMEDOUT:
 * deadline passed, EAGAIN when deadline == CONC_NOWAIT. */
CONC_API int conc_chan_send(conc_chan *c, conc_msg *m, conc_time deadline);
/* Receives into *out (owned by the caller on CONC_OK). ECLOSED: closed and
 * drained. ETIMEDOUT / EAGAIN as for send. */
CONC_API int conc_chan_recv(conc_chan *c, conc_msg *out, conc_time deadline);
/* ECLOSED if it was closed already. */
CONC_API int conc_chan_close(conc_chan *c);
CONC_API size_t conc_chan_len(conc_chan *c);
CONC_API size_t conc_chan_cap(const conc_chan *c);
CONC_API int conc_chan_closed(conc_chan *c);

/* ---- select ------------------------------------------------------------ */

enum { CONC_RECV = 1, CONC_SEND = 2 };

typedef struct conc_case {
  conc_chan *chan;                   /* NULL: the case is never ready */
  int op;                            /* CONC_RECV or CONC_SEND */
  conc_msg msg;                      /* send: the value; recv: the result */
  int ok;                            /* recv: 1 value, 0 closed */
} conc_case;

/*
 * Waits until one case can proceed, choosing uniformly at random among the
 * ready ones, and performs it. Returns the index of the case, or EAGAIN
 * (deadline == CONC_NOWAIT, Go's default) or ETIMEDOUT. A send case that
 * fired owns nothing any more; the others keep their messages. A send
 * case on a closed channel returns its index with *closed_send set (Go
 * panics there).
 */
CONC_API int conc_select(conc_case *cases, int n, conc_time deadline,
                         int *closed_send);

#endif
