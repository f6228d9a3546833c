/*
 * test_recv_only.c: the channels the core owns and hands out (a
 * context's done, a WaitGroup's and a Once's wait channels) refuse the
 * public send, close and select send case with CONC_ERECVONLY, so a host
 * cannot fake what they announce; their owners still close them. And
 * receive-only views (conc_chan_view).
 */
#include "check.h"

static void rel(void *o) { conc_release((conc_obj *)o); }

/* Every public way to write to c fails with ERECVONLY and leaves the
 * message with the caller; c stays open. */
static void check_refuses_writes(conc_chan *c) {
  CHECK_EQ(conc_chan_recv_only(c), 1);
  conc_msg m;
  msg_int(&m, 7);
  CHECK_RC(conc_chan_send(c, &m, CONC_NOWAIT), CONC_ERECVONLY);
  CHECK_RC(conc_chan_send(c, &m, CONC_NEVER), CONC_ERECVONLY);
  CHECK_RC(conc_chan_close(c), CONC_ERECVONLY);
  conc_chan *other = conc_chan_new(1);
  CHECK(other != NULL);
  conc_case cs[2] = {{other, CONC_RECV, {0}, 0}, {c, CONC_SEND, m, 0}};
  int closed_send = -1;
  CHECK_RC(conc_select(cs, 2, CONC_NEVER, &closed_send), CONC_ERECVONLY);
  CHECK_EQ(closed_send, 0);
  conc_msg_free(&cs[1].msg);  /* still the caller's */
  CHECK_EQ(conc_chan_closed(c), 0);
  rel(other);
}

static void wait_closed(conc_chan *c) {
  conc_msg m;
  CHECK_RC(conc_chan_recv(c, &m, CONC_NEVER), CONC_ECLOSED);
}

static void ctx_done_is_recv_only(void) {
  conc_ctx *bg = conc_ctx_background();
  check_refuses_writes(conc_ctx_done(bg));
  conc_ctx *ctx = conc_ctx_new(bg, CONC_NEVER, NULL, NULL);
  CHECK(ctx != NULL);
  check_refuses_writes(conc_ctx_done(ctx));
  CHECK_EQ(conc_ctx_err(ctx), 0);
  CHECK_EQ(conc_ctx_cancel(ctx, CONC_ECANCELED, NULL), 1);
  wait_closed(conc_ctx_done(ctx));  /* its owner still closes it */
  rel(ctx);
  rel(bg);
}

static void wg_wait_chan_is_recv_only(void) {
  conc_wg *wg = conc_wg_new();
  CHECK(wg != NULL);
  CHECK_RC(conc_wg_add(wg, 1), CONC_OK);
  conc_chan *zero = conc_wg_wait_chan(wg);
  CHECK(zero != NULL);
  check_refuses_writes(zero);
  CHECK_EQ(conc_wg_released(wg, zero), 0);
  CHECK_RC(conc_wg_add(wg, -1), CONC_OK);
  wait_closed(zero);
  CHECK_EQ(conc_wg_released(wg, zero), 1);
  CHECK_RC(conc_wg_add(wg, 1), CONC_OK);  /* a new round */
  CHECK_EQ(conc_wg_released(wg, zero), 1);
  conc_chan *next = conc_wg_wait_chan(wg);
  CHECK(next != NULL && next != zero);
  CHECK_EQ(conc_wg_released(wg, next), 0);
  CHECK_RC(conc_wg_add(wg, -1), CONC_OK);
  rel(next);
  rel(zero);
  rel(wg);
}

static void once_wait_chan_is_recv_only(void) {
  conc_once *o = conc_once_new();
  CHECK(o != NULL);
  conc_chan *wait = NULL;
  CHECK_EQ(conc_once_begin(o, &wait), CONC_ONCE_RUN);
  CHECK_EQ(conc_once_begin(o, &wait), CONC_ONCE_WAIT);
  check_refuses_writes(wait);
  conc_msg outcome;
  msg_int(&outcome, 1);
  conc_once_finish(o, &outcome, 0);
  wait_closed(wait);
  CHECK_EQ(conc_once_begin(o, &wait), CONC_ONCE_DONE);
  rel(wait);
  rel(o);
}

static void user_channels_are_not(void) {
  conc_chan *c = conc_chan_new(0);
  CHECK(c != NULL);
  CHECK_EQ(conc_chan_recv_only(c), 0);
  CHECK_RC(conc_chan_close(c), CONC_OK);
  rel(c);
  CHECK(strcmp(conc_strerror(CONC_ERECVONLY), "receive-only channel") == 0);
}

static void view_holds_its_channel(void) {
  conc_chan *c = conc_chan_new(2);
  CHECK(c != NULL);
  conc_chan_view *v = conc_chan_view_new(c);
  CHECK(v != NULL);
  CHECK(((conc_obj *)v)->type == &conc_chan_view_type);
  CHECK(conc_chan_view_chan(v) == c);
  rel(c);  /* the view's reference keeps it */
  conc_msg m;
  msg_int(&m, 5);
  CHECK_RC(conc_chan_send(conc_chan_view_chan(v), &m, CONC_NOWAIT), CONC_OK);
  CHECK_EQ(conc_chan_len(conc_chan_view_chan(v)), 1);
  rel(v);  /* frees both; ASan's leak check sees the message freed too */
}

static const check_test tests[] = {
    {"ctx_done_is_recv_only", ctx_done_is_recv_only},
    {"wg_wait_chan_is_recv_only", wg_wait_chan_is_recv_only},
    {"once_wait_chan_is_recv_only", once_wait_chan_is_recv_only},
    {"user_channels_are_not", user_channels_are_not},
    {"view_holds_its_channel", view_holds_its_channel},
    {NULL, NULL}};

int main(int argc, char **argv) {
  return check_main("test_recv_only", tests, argc, argv);
}
