/*
 * ltime.c: time. conc.now, conc.sleep, conc.after, conc.timer and
 * conc.ticker, all served by the core's one timer thread.
 *
 * A timer or ticker is a conc object holding a core timer and its
 * channel `C` (capacity 1). As in Go, the channel owns the timer: the
 * timer runs while anyone holds C (a worker given only t.C still
 * receives), and stops when C is freed; the timer holds C only weakly,
 * so dropping both frees both. Timer channels receive conc.now() at the
 * moment they fire.
 */
#include <math.h>
#include "lcheck.h"
#include "../core/internal.h"
#include "lconc.h"

typedef struct ltimer {
  conc_obj hdr;
  conc_timer *t;
  conc_chan *c;
} ltimer;

/* The timer keeps running while its channel lives (a worker holding only
 * t.C still receives, as in Go): the channel owns it and stops it. */
static void ltimer_destroy(conc_obj *o) {
  ltimer *lt = (ltimer *)o;
  conc_timer_release(lt->t);
  conc_release((conc_obj *)lt->c);
  free(lt);
}

static const conc_type timer_type = {"conc.timer", ltimer_destroy};
static const conc_type ticker_type = {"conc.ticker", ltimer_destroy};

static void tick_now(conc_msg *m, conc_time now) {
  lconc_msg_from_number(m, (lua_Number)now / 1e9);
}

static lua_Number check_seconds(lua_State *L, int idx) {
  lua_Number s = lconc_checknumber(L, idx);
  lconc_argcheck(L, !isnan(s), idx, "duration is NaN");
  return s;
}

static int push_time_error(lua_State *L, const char *fname, int rc) {
  return luaL_error(L, "%s: %s", fname, conc_strerror(rc));
}

/* conc.now() -> seconds of the monotonic clock */
static int t_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)conc_now() / 1e9);
  return 1;
}

/* conc.sleep(seconds [, ctx]) -> true | nil, "context canceled" */
typedef struct sleep_call {
  conc_time deadline;
  conc_ctx *ctx;
  int err;   /* the context's error before the sleep */
} sleep_call;

static int sleep_op(void *p) {
  sleep_call *a = (sleep_call *)p;
  if (a->ctx == NULL) return conc_sleep_until(a->deadline);
  conc_case cs = {conc_ctx_done(a->ctx), CONC_RECV, {0}, 0};
  int closed_send;
  return conc_select(&cs, 1, a->deadline, &closed_send);
}

static int sleep_end(lua_State *L, sleep_call *a, int rc) {
  if (a->ctx != NULL) {
    int err = a->err;
    if (!err && rc == 0) {
      /* Done fired: cancel closes it, after setting err, and nobody
       * else can. With no error the sleep would end early as a success. */
      err = conc_ctx_err(a->ctx);
      if (err == 0) lconc_internal_error("a live context's done channel fired");
    }
    if (err) return lconc_push_fail(L, err, "conc.sleep");
    if (rc == CONC_ETIMEDOUT || rc == CONC_EAGAIN) rc = CONC_OK;
  }
  if (rc == CONC_ETIMEDOUT) rc = CONC_OK;
  if (lconc_aborted(rc)) return lconc_raise_abort(L, rc, "conc.sleep");
  lua_pushboolean(L, 1);
  return 1;
}

static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return sleep_end(L, (sleep_call *)lconc_op_area_k(L), lconc_call_result(L));
}

static int t_sleep(lua_State *L) {
  lua_Number s = check_seconds(L, 1);
  if (!lua_isnoneornil(L, 2) && lconc_test_obj(L, 2, &conc_ctx_type) == NULL)
    lconc_typeerror(L, 2, "conc.ctx");
  lconc_wait w;
  lconc_check_wait(L, 2, &w);
  sleep_call local, *a = (sleep_call *)lconc_op_area(L, &local, sizeof local);
  a->deadline = conc_deadline_in(s);
  a->ctx = w.ctx;
  a->err = w.ctx ? conc_ctx_err(w.ctx) : 0;
  lconc_blocking(L, "sleep");
  /* No wait (a canceled context, no time): as if the time passed. */
  if (a->err || !(s > 0)) return sleep_end(L, a, CONC_ETIMEDOUT);
  return sleep_end(L, a, lconc_call(L, sleep_op, a, 0, sleep_k));
}

/* When a timer set for `s` seconds is due: now for s <= 0, as Go's
 * when(d), so its value is the time it was set (conc_deadline_in's
 * CONC_NOWAIT, 0, read as a value of 0.0). */
static conc_time due_in(lua_Number s) {
  return s > 0 ? conc_deadline_in(s) : conc_now();
}

/* conc.after(seconds) -> a channel that receives conc.now() once */
static int t_after(lua_State *L) {
  lua_Number s = check_seconds(L, 1);
  conc_chan *c = conc__chan_new_owned(1);  /* only the timer sends */
  conc_timer *t = c ? conc_timer_new_chan(c, tick_now) : NULL;
  if (t == NULL) {
    if (c) conc_release((conc_obj *)c);
    return luaL_error(L, "conc.after: not enough memory");
  }
  int rc = conc_timer_start(t, due_in(s), 0);
  conc_timer_release(t);  /* the channel owns it: dropping c stops it */
  if (rc < 0) {
    conc_release((conc_obj *)c);
    return push_time_error(L, "conc.after", rc);
  }
  lconc_push_obj(L, (conc_obj *)c);
  return 1;
}

static int new_timer(lua_State *L, const conc_type *type, lua_Number s,
                     conc_time period) {
  ltimer *lt = calloc(1, sizeof *lt);
  conc_chan *c = lt ? conc__chan_new_owned(1) : NULL;  /* the timer's */
  conc_timer *t = c ? conc_timer_new_chan(c, tick_now) : NULL;
  if (t == NULL) {
    if (c) conc_release((conc_obj *)c);
    free(lt);
    return luaL_error(L, "%s: not enough memory", type->name);
  }
  conc_obj_init(&lt->hdr, type);
  lt->t = t;
  lt->c = c;
  int rc = conc_timer_start(t, due_in(s), period);
  if (rc < 0) {
    conc_release(&lt->hdr);
    return push_time_error(L, type->name, rc);
  }
  lconc_push_obj(L, &lt->hdr);
  return 1;
}

/* conc.timer(seconds) -> a timer whose C receives once */
static int t_timer(lua_State *L) {
  return new_timer(L, &timer_type, check_seconds(L, 1), 0);
}

/* conc.ticker(seconds) -> a ticker whose C receives every period */
static int t_ticker(lua_State *L) {
  lua_Number s = check_seconds(L, 1);
  lconc_argcheck(L, s > 0, 1, "non-positive interval for conc.ticker");
  return new_timer(L, &ticker_type, s, conc_duration(s));
}

static ltimer *check_any_timer(lua_State *L) {
  conc_obj *o = lconc_test_obj(L, 1, &timer_type);
  if (o == NULL) o = lconc_test_obj(L, 1, &ticker_type);
  if (o == NULL) lconc_typeerror(L, 1, "conc.timer or conc.ticker");
  return (ltimer *)o;
}

/* t:stop() -> true if it was active (Go's Stop); no stale value remains */
static int t_stop(lua_State *L) {
  ltimer *lt = check_any_timer(L);
  lua_pushboolean(L, conc_timer_stop_chan(lt->t, lt->c));
  return 1;
}

/* t:reset(seconds) -> true if it was active; a ticker keeps ticking
 * with the new period */
static int t_reset(lua_State *L) {
  ltimer *lt = check_any_timer(L);
  lua_Number s = check_seconds(L, 2);
  int ticker = lt->hdr.type == &ticker_type;
  lconc_argcheck(L, !ticker || s > 0, 2,
                 "non-positive interval for conc.ticker:reset");
  int was = conc_timer_stop_chan(lt->t, lt->c);
  int rc = conc_timer_start(lt->t, due_in(s), ticker ? conc_duration(s) : 0);
  if (rc < 0) return push_time_error(L, lt->hdr.type->name, rc);
  lua_pushboolean(L, was);
  return 1;
}

/* __index: t.C is the channel; everything else is a method. */
static int t_index(lua_State *L) {
  ltimer *lt = check_any_timer(L);
  const char *k = lua_tostring(L, 2);
  if (k && k[0] == 'C' && k[1] == '\0') {
    lconc_push_obj_shared(L, (conc_obj *)lt->c);
    return 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

void lconc_open_time(lua_State *L) {
  static const luaL_Reg funcs[] = {{"now", t_now},       {"sleep", t_sleep},
                                   {"after", t_after},   {"timer", t_timer},
                                   {"ticker", t_ticker}, {NULL, NULL}};
  static const luaL_Reg methods[] = {
      {"stop", t_stop}, {"reset", t_reset}, {NULL, NULL}};
  lconc_declare(&timer_type, methods, NULL, t_index);
  lconc_declare(&ticker_type, methods, NULL, t_index);
  luaL_setfuncs(L, funcs, 0);
}
