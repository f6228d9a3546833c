/*
 * lwait.c: the optional "how long to wait" argument of blocking calls:
 * nil (forever), a number of seconds, or a context (until it is
 * canceled). A wait bounded by a context is a select with the context's
 * done channel, so it wakes the moment the context is canceled.
 */
#include <math.h>
#include <stdio.h>
#include "lcheck.h"
#include "../core/internal.h"
#include "lconc.h"

void lconc_internal_error(const char *what) {
  fprintf(stderr, "conc: internal error: %s\n", what);
  abort();
}

void lconc_check_wait(lua_State *L, int idx, lconc_wait *w) {
  w->ctx = NULL;
  w->deadline = CONC_NEVER;
  if (lua_isnoneornil(L, idx)) return;
  if (lua_isnumber(L, idx)) {  /* a number, or a string that is one */
    lua_Number s = lua_tonumber(L, idx);
    lconc_argcheck(L, !isnan(s), idx, "timeout is NaN");
    w->deadline = conc_deadline_in(s);
    return;
  }
  w->ctx = (conc_ctx *)lconc_test_obj(L, idx, &conc_ctx_type);
  if (w->ctx == NULL) lconc_typeerror(L, idx, "number of seconds or conc.ctx");
}

int lconc_count_wait_at(lua_State *L, int idx, int *wait_at) {
  bool ctx_first = lconc_test_obj(L, idx, &conc_ctx_type) != NULL;
  *wait_at = ctx_first ? idx : idx + 1;
  return ctx_first ? idx + 1 : idx;
}

int lconc_wait_op(conc_case *cs, const lconc_wait *w) {
  if (w->ctx == NULL) {
    if (cs->op == CONC_SEND)
      return conc_chan_send(cs->chan, &cs->msg, w->deadline);
    int rc = conc_chan_recv(cs->chan, &cs->msg, w->deadline);
    cs->ok = rc == CONC_OK;
    return rc;
  }
  int err = conc_ctx_err(w->ctx);
  conc_case cases[2];
  cases[0] = *cs;
  cases[1].chan = conc_ctx_done(w->ctx);
  cases[1].op = CONC_RECV;
  int closed_send = 0;
  /* An already canceled context wins over a ready operation, as the
   * caller would check ctx:err() first in Go. */
  int r = err ? err : conc_select(cases, 2, w->deadline, &closed_send);
  if (r == 1) {
    /* Cancel sets err before it closes done, and nobody else can close
     * done (it is receive-only). Had something else closed it, going on
     * would report a failure with no error, or, worse, an operation never
     * done as done; better to stop here. */
    r = conc_ctx_err(w->ctx);
    if (r == 0) lconc_internal_error("a live context's done channel fired");
  } else if (r == 0) {
    cs->msg = cases[0].msg;
    cs->ok = cases[0].ok;
    r = closed_send || (cs->op == CONC_RECV && !cs->ok) ? CONC_ECLOSED
                                                        : CONC_OK;
  }
  return r;
}

int lconc_wait_closed(lua_State *L, const char *label, conc_chan *c,
                      const lconc_wait *w) {
  lconc_wait_call a;
  a.w = *w;
  return lconc_wait_closed_k(L, label, c, &a, 0, NULL);
}

lconc_wait_call *lconc_wait_area(lua_State *L, lconc_wait_call *local) {
  return (lconc_wait_call *)lconc_op_area(L, local, sizeof *local);
}

static int wait_op_fn(void *p) {
  lconc_wait_call *a = (lconc_wait_call *)p;
  return lconc_wait_op(&a->cs, &a->w);
}

/* The code a wait ends with, as its shape says. */
static int wait_outcome(lconc_wait_call *a, int rc) {
  if (!a->closed_wait) return rc;
  if (rc == CONC_OK) conc_msg_free(&a->cs.msg);  /* never sent on */
  return rc == CONC_OK || rc == CONC_ECLOSED ? CONC_OK : rc;
}

int lconc_wait_op_k(lua_State *L, lconc_wait_call *a, lua_KContext ctx,
                    lua_KFunction k) {
  a->closed_wait = 0;
  conc__sched_main_progress();
  /* One that cannot wait never parks: no fiber for it. */
  if (a->w.deadline == CONC_NOWAIT && a->w.ctx == NULL)
    return lconc_wait_op(&a->cs, &a->w);
  /* In a task, one that can be done at once is done here too: the
   * fiber a call parks on costs two switches (B5: ~13% of its time). */
  if (a->w.ctx == NULL && lconc_would_park(L)) {
    lconc_wait now = {CONC_NOWAIT, NULL};
    int rc = lconc_wait_op(&a->cs, &now);
    if (rc != CONC_EAGAIN) return rc;
  }
  return lconc_call(L, wait_op_fn, a, ctx, k);
}

int lconc_wait_closed_k(lua_State *L, const char *label, conc_chan *c,
                        lconc_wait_call *a, lua_KContext ctx, lua_KFunction k) {
  if (a->w.ctx && conc_ctx_err(a->w.ctx)) return conc_ctx_err(a->w.ctx);
  if (c == NULL) return CONC_OK;
  a->cs = (conc_case){c, CONC_RECV, {0}, 0};
  a->closed_wait = 1;
  lconc_blocking(L, label);
  int rc = k ? lconc_call(L, wait_op_fn, a, ctx, k)
             : lconc_wait_op(&a->cs, &a->w);
  return wait_outcome(a, rc);
}

int lconc_wait_done(lua_State *L, lconc_wait_call **out) {
  lconc_wait_call *a = (lconc_wait_call *)lconc_op_area_k(L);
  if (out) *out = a;
  return wait_outcome(a, lconc_call_result(L));
}

int lconc_push_fail(lua_State *L, int rc, const char *fname) {
  if (lconc_aborted(rc)) return lconc_raise_abort(L, rc, fname);
  lua_pushnil(L);
  lua_pushstring(L, rc == CONC_EAGAIN ? "timeout" : conc_strerror(rc));
  return 2;
}
