/*
 * merge.c: fan-in without a thread. A merged channel is a receive-only
 * channel of capacity 0 that carries a list of inputs; nobody sends on
 * it. Receiving from it (conc_chan_recv, or a case of conc_select) is a
 * select over its live inputs, made by the receiver:
 *
 * - each value is received once, by whoever receives from the merged
 *   channel, straight from its input (an unbuffered input's sender is
 *   released by that receiver: a rendezvous, not a hand-off to a
 *   forwarder that then blocks on the output);
 * - an input seen closed and drained is marked dead, for good; when the
 *   last one dies the merged channel is closed, and its receivers (each
 *   of which also waits on the merged channel itself) see it closed;
 * - a context, if any, is one more case: its cancellation closes the
 *   merged channel. A canceled context is looked at first, at every
 *   level of nesting (a canceled merge reads as closed even while its
 *   inputs hold values, and a merged input of a canceled merge is not
 *   expanded: it is a closed input), and again after a value was taken
 *   through a merged channel: if its context is canceled by then, the
 *   value is dropped (as Go's forwarder drops the value it holds when
 *   ctx.Done fires) and the receive reads as closed, so no value is ever
 *   received after the merged channel was seen closed;
 * - an input that is a merged channel is expanded in turn.
 *
 * Fairness: a select picks uniformly among the CALLER's ready cases, a
 * merged channel counting as one case however many inputs it has (a
 * closed one is one ready case among the others): the caller's cases are
 * polled in a random order, a merged case by polling its inputs from a
 * random start, and the first ready one is taken. Only when none is ready
 * does the select park on the full expansion (every live input, each
 * merged channel itself and its context's done channel), and take what
 * fired when it wakes.
 *
 * Why not forwarding hooks (an input's send moving its value into the
 * merged channel's buffer, in the sender's thread): a value would then
 * sit in a buffer nobody asked for, taken from its input before anyone
 * wanted it (Go's fan-in goroutine holds at most one), and a full output
 * would need the hook to block the sender or queue without bound. The
 * select keeps Go's semantics and costs nothing while nobody receives.
 * Its price is paid per receive: a first non-blocking pass over the
 * inputs (lock-free for buffered ones), and, only if none is ready, a
 * select over all of them (see docs/DESIGN.md).
 *
 * Size: what a merged channel expands to is fixed at creation (its
 * `weight`, see conc.h) and at most CONC_MERGE_MAX (+ its own case and
 * its context's), so a select's expansion is counted once, in size_t,
 * and every write into it is bounds-checked.
 *
 * Locking: none of its own. The inputs, their count and the context are
 * fixed at creation; `dead` flags and `live` are atomics (a flag is set
 * once, by the exchange that wins; that winner decrements `live`, and
 * whoever takes it to zero closes the merged channel). Channel locks are
 * taken only by the channel operations and selects it calls.
 */
#include <limits.h>
#include <string.h>
#include "internal.h"

struct conc_merge {
  conc_chan **in;           /* retained; fixed */
  atomic_bool *dead;        /* in[k] was seen closed and drained */
  size_t n;
  atomic_size_t live;       /* inputs not dead */
  conc_ctx *ctx;            /* retained, or NULL; fixed */
  int depth;                /* 1 + the deepest merged input's */
  size_t weight;            /* what its inputs expand to (conc.h) */
};

void conc__merge_free(struct conc_merge *m) {
  for (size_t k = 0; k < m->n; k++) conc_release(&m->in[k]->hdr);
  if (m->ctx) conc_release((conc_obj *)m->ctx);
  free(m->in);
  free(m->dead);
  free(m);
}

/* The cases merged channel c expands to, at most: itself, its context's
 * done channel, and what its inputs expand to. */
static size_t cases_of(const conc_chan *c) {
  return 1 + (c->merge->ctx != NULL) + c->merge->weight;
}

static int depth_of(conc_chan *const *in, size_t n) {
  int depth = 1;
  for (size_t k = 0; k < n; k++)
    if (in[k]->merge && in[k]->merge->depth + 1 > depth)
      depth = in[k]->merge->depth + 1;
  return depth;
}

/* What in[0..n) expand to, or CONC_MERGE_MAX + 1 if that is more than
 * CONC_MERGE_MAX (counted without overflow: every term is small). */
static size_t weight_of(conc_chan *const *in, size_t n) {
  size_t weight = 0;
  for (size_t k = 0; k < n; k++) {
    size_t w = in[k]->merge ? cases_of(in[k]) : 1;
    if (w > CONC_MERGE_MAX - weight) return (size_t)CONC_MERGE_MAX + 1;
    weight += w;
  }
  return weight;
}

int conc_merge_new(conc_chan *const *in, size_t n, conc_ctx *ctx,
                   conc_chan **out) {
  int depth = depth_of(in, n);
  if (depth > CONC_MERGE_DEPTH) return CONC_EINVAL;
  size_t weight = weight_of(in, n);
  if (weight > CONC_MERGE_MAX) return CONC_EOVERFLOW;
  struct conc_merge *m = calloc(1, sizeof *m);
  conc_chan *c = m ? conc__chan_new_owned(0) : NULL;
  if (m) {
    m->in = malloc((n ? n : 1) * sizeof *m->in);
    m->dead = calloc(n ? n : 1, sizeof *m->dead);
  }
  if (c == NULL || m->in == NULL || m->dead == NULL) {
    if (m) free(m->in), free(m->dead), free(m);
    if (c) conc_release(&c->hdr);
    return CONC_ENOMEM;
  }
  for (size_t k = 0; k < n; k++) {
    conc_retain(&in[k]->hdr);
    m->in[k] = in[k];
  }
  m->n = n;
  atomic_init(&m->live, n);
  m->depth = depth;
  m->weight = weight;
  if (ctx) conc_retain((conc_obj *)ctx);
  m->ctx = ctx;
  c->merge = m;  /* before anyone else can see c */
  if (n == 0) conc__chan_close_owned(c);  /* nothing to wait for */
  *out = c;
  return CONC_OK;
}

/* in[k] of merged channel c was seen closed and drained. */
static void drop(conc_chan *c, size_t k) {
  struct conc_merge *m = c->merge;
  if (atomic_exchange(&m->dead[k], true)) return;
  if (atomic_fetch_sub(&m->live, 1) == 1) conc__chan_close_owned(c);
}

/* Whether merged channel c reads as closed now; a canceled context
 * closes it here. */
static bool closed_now(conc_chan *c) {
  conc_ctx *ctx = c->merge->ctx;
  if (ctx && conc_ctx_err(ctx)) conc__chan_close_owned(c);
  return conc_chan_closed(c);
}

/* Whether merged channel c's context is canceled (closing c): checked
 * again after a value was taken through c. Not closed_now: c closed
 * because its last input was seen closed and drained is no reason to
 * drop a value taken before that input's drain was seen. */
static bool canceled(conc_chan *c) {
  conc_ctx *ctx = c->merge->ctx;
  if (ctx == NULL || !conc_ctx_err(ctx)) return false;
  conc__chan_close_owned(c);
  return true;
}

/* ---- the non-blocking pass ---------------------------------------------- */

/* One non-blocking pass over merged channel c: its context first, then its
 * live inputs from a random start (a merged input polled in turn). OK (a
 * value in *out), ECLOSED, or EAGAIN. A value taken while c was closed
 * while c's context was being canceled is dropped: ECLOSED. */
static int poll_merged(conc_chan *c, conc_msg *out) {
  if (closed_now(c)) return CONC_ECLOSED;
  struct conc_merge *m = c->merge;
  size_t n = m->n;
  if (n == 0) return CONC_ECLOSED;
  size_t k = conc__rand() % n;  /* n <= CONC_MERGE_MAX */
  for (size_t t = 0; t < n; t++, k = k + 1 == n ? 0 : k + 1) {
    if (atomic_load_explicit(&m->dead[k], memory_order_relaxed)) continue;
    conc_chan *in = m->in[k];
    int rc = in->merge ? poll_merged(in, out)
                       : conc_chan_recv(in, out, CONC_NOWAIT);
    if (rc == CONC_OK) {
      if (!canceled(c)) return CONC_OK;
      conc_msg_free(out);
      return CONC_ECLOSED;
    }
    if (rc == CONC_ECLOSED) drop(c, k);
  }
  return conc_chan_closed(c) ? CONC_ECLOSED : CONC_EAGAIN;
}

/* Polls the caller's case i, without blocking: CONC_OK if it fired (a
 * merged case's ok says value or closed), CONC_EAGAIN, or a failure. */
static int poll_case(conc_case *cs, int *closed_send) {
  if (cs->chan->merge) {
    int rc = poll_merged(cs->chan, &cs->msg);
    if (rc == CONC_EAGAIN) return rc;
    cs->ok = rc == CONC_OK;
    return CONC_OK;
  }
  int cl = 0;
  int rc = conc__select_plain(cs, 1, CONC_NOWAIT, &cl);
  if (rc == 0) *closed_send = cl;
  return rc == 0 ? CONC_OK : rc;
}

/* Pass 1: the caller's non-nil cases in a random order (each merged
 * channel one case), the first ready one taken: its index, CONC_EAGAIN,
 * or a failure. order has room for n. */
static int poll_cases(conc_case *cases, int n, int *order, int *closed_send) {
  int live = conc__shuffle_cases(cases, n, order);
  for (int k = 0; k < live; k++) {
    int rc = poll_case(&cases[order[k]], closed_send);
    if (rc != CONC_EAGAIN) return rc == CONC_OK ? order[k] : rc;
  }
  return CONC_EAGAIN;
}

/* ---- the expanded select ------------------------------------------------ */

/* Where an expanded case came from. */
typedef struct xmeta {
  int origin;          /* the caller's case */
  conc_chan *owner;    /* the merged channel this is an input of, or NULL */
  size_t k;            /* its index there */
  conc_chan *closes;   /* a merged channel's own case (or its context's):
                        * firing means that channel is closed; else NULL */
  bool ctx;            /* its context's done: close `closes` first */
  int up;              /* owner's own case in the expansion, or -1 */
} xmeta;

typedef struct xsel {
  conc_case *cs;
  xmeta *meta;
  size_t n, max;
} xsel;

static bool add(xsel *x, conc_chan *chan, xmeta meta) {
  if (x->n >= x->max) return false;  /* cannot happen: counted first */
  conc_case *cs = &x->cs[x->n];
  cs->chan = chan;
  cs->op = CONC_RECV;
  cs->ok = 0;
  x->meta[x->n++] = meta;
  return true;
}

/* Adds merged channel c's cases; it is input k of owner (or NULL), whose
 * own case is x's case up (or -1). A closed one (a canceled context
 * closes it here) adds only its own case, which is ready: closed. */
static bool expand(xsel *x, conc_chan *c, int origin, int up, conc_chan *owner,
                   size_t k) {
  struct conc_merge *m = c->merge;
  int self = (int)x->n;
  if (!add(x, c, (xmeta){origin, owner, k, c, false, up})) return false;
  if (closed_now(c)) return true;
  if (m->ctx &&
      !add(x, conc_ctx_done(m->ctx), (xmeta){origin, owner, k, c, true, up}))
    return false;
  for (size_t j = 0; j < m->n; j++) {
    if (atomic_load(&m->dead[j])) continue;
    bool ok = m->in[j]->merge
                  ? expand(x, m->in[j], origin, self, c, j)
                  : add(x, m->in[j], (xmeta){origin, c, j, NULL, false, self});
    if (!ok) return false;
  }
  return true;
}

/* What one round of the expanded select came to. */
enum { ROUND_AGAIN = -1000 };

/* A value came through the merged channels above expanded case i: none
 * of their contexts may be canceled. Marks a canceled nested one dead in
 * its owner; true if any was. *top: the caller's one was. */
static bool closed_above(const xsel *x, size_t i, bool *top) {
  bool any = false;
  *top = false;
  for (int j = x->meta[i].up; j >= 0; j = x->meta[j].up) {
    const xmeta *u = &x->meta[j];
    if (!canceled(u->closes)) continue;
    any = true;
    if (u->owner == NULL) *top = true;
    else drop(u->owner, u->k);
  }
  return any;
}

/* Interprets expanded case i, which fired: the caller's case index, or
 * ROUND_AGAIN when an input or a nested merge closed (marked dead). */
static int settle(conc_case *cases, xsel *x, size_t i) {
  const xmeta *mt = &x->meta[i];
  conc_case *cs = &cases[mt->origin];
  if (mt->closes == NULL) {
    if (mt->owner != NULL && !x->cs[i].ok) {
      drop(mt->owner, mt->k);  /* an input closed and drained */
      return ROUND_AGAIN;
    }
    bool top;
    if (mt->owner != NULL && closed_above(x, i, &top)) {
      conc_msg_free(&x->cs[i].msg);  /* taken after a close: dropped */
      if (!top) return ROUND_AGAIN;
      cs->ok = 0;
      return mt->origin;
    }
    conc__msg_move(&cs->msg, &x->cs[i].msg);  /* a value, or a plain case */
    cs->ok = x->cs[i].ok;
    return mt->origin;
  }
  if (mt->ctx) conc__chan_close_owned(mt->closes);
  if (mt->owner == NULL) {  /* the caller's merged channel closed */
    cs->ok = 0;
    return mt->origin;
  }
  drop(mt->owner, mt->k);  /* a nested merge closed */
  return ROUND_AGAIN;
}

/* One select over the expansion of cases. */
static int round_of(conc_case *cases, int n, conc_time deadline,
                    int *closed_send, xsel *x) {
  for (int i = 0; i < n; i++) {
    conc_chan *c = cases[i].chan;
    if (c && c->merge) {
      if (!expand(x, c, i, -1, NULL, 0)) return CONC_ENOMEM;
    } else {
      if (x->n >= x->max) return CONC_ENOMEM;  /* cannot happen */
      x->cs[x->n] = cases[i];  /* a send keeps its message until it fires */
      x->meta[x->n++] = (xmeta){i, NULL, 0, NULL, false, -1};
    }
  }
  int rc = conc__select_plain(x->cs, (int)x->n, deadline, closed_send);
  return rc < 0 ? rc : settle(cases, x, (size_t)rc);
}

#define XSMALL 32

/* Parks on the full expansion of cases: the caller's case that fired,
 * ROUND_AGAIN, or a failure. */
static int park(conc_case *cases, int n, conc_time deadline, int *closed_send) {
  size_t total = 0;
  for (int i = 0; i < n; i++) {
    conc_chan *c = cases[i].chan;
    total += c && c->merge ? cases_of(c) : 1;  /* each <= MAX + 2 */
    if (total > INT_MAX) return CONC_ENOMEM;
  }
  conc_case cs_small[XSMALL];
  xmeta meta_small[XSMALL];
  xsel x = {cs_small, meta_small, 0, total};
  if (total > XSMALL) {
    x.cs = malloc(total * sizeof *x.cs);
    x.meta = malloc(total * sizeof *x.meta);
  }
  int rc = x.cs && x.meta ? round_of(cases, n, deadline, closed_send, &x)
                          : CONC_ENOMEM;
  if (x.cs != cs_small) free(x.cs);
  if (x.meta != meta_small) free(x.meta);
  return rc;
}

#define OSMALL 16

/* polled: pass 1 was just made (by conc__merge_recv), nothing ready. */
static int merge_select(conc_case *cases, int n, conc_time deadline,
                        int *closed_send, bool polled) {
  int order_small[OSMALL];
  int *order = order_small;
  if (n > OSMALL && (order = malloc((size_t)n * sizeof *order)) == NULL)
    return CONC_ENOMEM;
  int rc;
  for (;;) {
    rc = polled ? CONC_EAGAIN : poll_cases(cases, n, order, closed_send);
    polled = false;
    if (rc != CONC_EAGAIN || deadline == CONC_NOWAIT) break;
    rc = park(cases, n, deadline, closed_send);
    if (rc != ROUND_AGAIN) break;
  }
  if (order != order_small) free(order);
  return rc;
}

int conc__merge_select(conc_case *cases, int n, conc_time deadline,
                       int *closed_send) {
  return merge_select(cases, n, deadline, closed_send, false);
}

/* ---- a plain receive ---------------------------------------------------- */

int conc__merge_recv(conc_chan *c, conc_msg *out, conc_time deadline) {
  int rc = poll_merged(c, out);
  if (rc != CONC_EAGAIN || deadline == CONC_NOWAIT) return rc;
  conc_case cs = {c, CONC_RECV, {0}, 0};
  int closed_send;
  rc = merge_select(&cs, 1, deadline, &closed_send, true);
  if (rc < 0) return rc;
  if (!cs.ok) return CONC_ECLOSED;
  conc__msg_move(out, &cs.msg);
  return CONC_OK;
}
