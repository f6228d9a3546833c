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
 *   merged channel (a context canceled already is looked at first, so a
 *   canceled merge reads as closed even while its inputs hold values);
 * - an input that is a merged channel is expanded in turn.
 *
 * Why not forwarding hooks (an input's send moving its value into the
 * merged channel's buffer, in the sender's thread): a value would then
 * sit in a buffer nobody asked for, taken from its input before anyone
 * wanted it (Go's fan-in goroutine holds at most one), and a full output
 * would need the hook to block the sender or queue without bound. The
 * select keeps Go's semantics exactly and costs nothing while nobody
 * receives. Its price is paid per receive: a first non-blocking pass over
 * the inputs (lock-free for buffered ones), and, only if none is ready,
 * a select over all of them (see docs/DESIGN.md).
 *
 * Locking: none of its own. The inputs, their count and the context are
 * fixed at creation; `dead` flags and `live` are atomics (a flag is set
 * once, by the exchange that wins; that winner decrements `live`, and
 * whoever takes it to zero closes the merged channel). Channel locks are
 * taken only by the channel operations and selects it calls.
 */
#include <string.h>
#include "internal.h"

struct conc_merge {
  conc_chan **in;           /* retained; fixed */
  atomic_bool *dead;        /* in[k] was seen closed and drained */
  size_t n;
  atomic_size_t live;       /* inputs not dead */
  conc_ctx *ctx;            /* retained, or NULL; fixed */
  atomic_uint next;         /* where the next fast pass starts */
  int depth;                /* 1 + the deepest merged input's */
};

void conc__merge_free(struct conc_merge *m) {
  for (size_t k = 0; k < m->n; k++) conc_release(&m->in[k]->hdr);
  if (m->ctx) conc_release((conc_obj *)m->ctx);
  free(m->in);
  free(m->dead);
  free(m);
}

static int depth_of(conc_chan *const *in, size_t n) {
  int depth = 1;
  for (size_t k = 0; k < n; k++)
    if (in[k]->merge && in[k]->merge->depth + 1 > depth)
      depth = in[k]->merge->depth + 1;
  return depth;
}

int conc_merge_new(conc_chan *const *in, size_t n, conc_ctx *ctx,
                   conc_chan **out) {
  int depth = depth_of(in, n);
  if (depth > CONC_MERGE_DEPTH) return CONC_EINVAL;
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

/* ---- the expanded select ------------------------------------------------ */

/* Where an expanded case came from. */
typedef struct xmeta {
  int origin;          /* the caller's case */
  conc_chan *owner;    /* the merged channel this is an input of, or NULL */
  size_t k;            /* its index there */
  conc_chan *closes;   /* a merged channel's own case (or its context's):
                        * firing means that channel is closed; else NULL */
  bool ctx;            /* its context's done: close `closes` first */
} xmeta;

typedef struct xsel {
  conc_case *cs;
  xmeta *meta;
  int n, max;
} xsel;

/* Cases a merged channel expands to (its live inputs, itself, its
 * context), counted as expand() will add them, or more. */
static int count_cases(const conc_chan *c) {
  const struct conc_merge *m = c->merge;
  int n = 1 + (m->ctx != NULL);
  for (size_t k = 0; k < m->n; k++)
    if (!atomic_load(&m->dead[k]))
      n += m->in[k]->merge ? count_cases(m->in[k]) : 1;
  return n;
}

static void add(xsel *x, conc_chan *chan, xmeta meta) {
  if (x->n == x->max) return;  /* cannot happen: counted first */
  conc_case *cs = &x->cs[x->n];
  cs->chan = chan;
  cs->op = CONC_RECV;
  cs->ok = 0;
  x->meta[x->n++] = meta;
}

/* Adds merged channel c's cases; it is input k of owner (or NULL). */
static void expand(xsel *x, conc_chan *c, int origin, conc_chan *owner,
                   size_t k) {
  struct conc_merge *m = c->merge;
  add(x, c, (xmeta){origin, owner, k, c, false});
  if (m->ctx) add(x, conc_ctx_done(m->ctx), (xmeta){origin, owner, k, c, true});
  for (size_t j = 0; j < m->n; j++) {
    if (atomic_load(&m->dead[j])) continue;
    if (m->in[j]->merge) expand(x, m->in[j], origin, c, j);
    else add(x, m->in[j], (xmeta){origin, c, j, NULL, false});
  }
}

/* What one round of the expanded select came to. */
enum { ROUND_AGAIN = -1000 };

/* Interprets expanded case i, which fired: the caller's case index, or
 * ROUND_AGAIN when an input or a nested merge closed (marked dead). */
static int settle(conc_case *cases, const xsel *x, int i) {
  const xmeta *mt = &x->meta[i];
  conc_case *cs = &cases[mt->origin];
  if (mt->closes == NULL) {
    if (mt->owner == NULL || x->cs[i].ok) {  /* a value, or a plain case */
      conc__msg_move(&cs->msg, &x->cs[i].msg);
      cs->ok = x->cs[i].ok;
      return mt->origin;
    }
    drop(mt->owner, mt->k);  /* an input closed and drained */
    return ROUND_AGAIN;
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
      expand(x, c, i, NULL, 0);
    } else {
      x->cs[x->n] = cases[i];  /* a send keeps its message until it fires */
      x->meta[x->n++] = (xmeta){i, NULL, 0, NULL, false};
    }
  }
  int rc = conc__select_plain(x->cs, x->n, deadline, closed_send);
  return rc < 0 ? rc : settle(cases, x, rc);
}

#define XSMALL 32

int conc__merge_select(conc_case *cases, int n, conc_time deadline,
                       int *closed_send) {
  for (;;) {
    int total = 0;
    for (int i = 0; i < n; i++) {
      conc_chan *c = cases[i].chan;
      if (c && c->merge && closed_now(c)) return i;  /* ok stays 0 */
      total += c && c->merge ? count_cases(c) : 1;
    }
    conc_case cs_small[XSMALL];
    xmeta meta_small[XSMALL];
    xsel x = {cs_small, meta_small, 0, total};
    if (total > XSMALL) {
      x.cs = malloc((size_t)total * sizeof *x.cs);
      x.meta = malloc((size_t)total * sizeof *x.meta);
    }
    int rc = x.cs && x.meta ? round_of(cases, n, deadline, closed_send, &x)
                            : CONC_ENOMEM;
    if (x.cs != cs_small) free(x.cs);
    if (x.meta != meta_small) free(x.meta);
    if (rc != ROUND_AGAIN) return rc;
  }
}

/* ---- a plain receive ------------------------------------------------------ */

/* One non-blocking pass over the live inputs, from a rotating start (so
 * no input is always first). OK, ECLOSED (all closed), or EAGAIN. */
static int poll_inputs(conc_chan *c, conc_msg *out) {
  struct conc_merge *m = c->merge;
  if (m->n == 0) return CONC_ECLOSED;
  size_t start = atomic_fetch_add_explicit(&m->next, 1,
                                           memory_order_relaxed) % m->n;
  for (size_t t = 0; t < m->n; t++) {
    size_t k = (start + t) % m->n;
    if (atomic_load_explicit(&m->dead[k], memory_order_relaxed)) continue;
    int rc = conc_chan_recv(m->in[k], out, CONC_NOWAIT);
    if (rc == CONC_OK) return CONC_OK;
    if (rc == CONC_ECLOSED) drop(c, k);
  }
  return conc_chan_closed(c) ? CONC_ECLOSED : CONC_EAGAIN;
}

int conc__merge_recv(conc_chan *c, conc_msg *out, conc_time deadline) {
  if (closed_now(c)) return CONC_ECLOSED;
  int rc = poll_inputs(c, out);
  if (rc != CONC_EAGAIN || deadline == CONC_NOWAIT) return rc;
  conc_case cs = {c, CONC_RECV, {0}, 0};
  int closed_send;
  rc = conc__merge_select(&cs, 1, deadline, &closed_send);
  if (rc < 0) return rc;
  if (!cs.ok) return CONC_ECLOSED;
  conc__msg_move(out, &cs.msg);
  return CONC_OK;
}
