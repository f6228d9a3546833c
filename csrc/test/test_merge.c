/*
 * test_merge.c: merged channels (fan-in with no thread) and pub/sub.
 * Every value sent on an input is received exactly once from the merged
 * channel, whatever mix of buffered and unbuffered inputs, producers and
 * consumers; the merged channel closes when every input is closed, or
 * when its context is canceled; it works as a case of conc_select and
 * as an input of another merge.
 */
#include "check.h"

static void rel(void *o) { conc_release((conc_obj *)o); }

static conc_chan *merged(conc_chan **in, size_t n, conc_ctx *ctx) {
  conc_chan *m = NULL;
  CHECK_RC(conc_merge_new(in, n, ctx, &m), CONC_OK);
  CHECK(conc_chan_recv_only(m));
  return m;
}

static void buffered_inputs_each_value_once(void) {
  conc_chan *in[3];
  for (int i = 0; i < 3; i++) in[i] = conc_chan_new(8);
  conc_chan *m = merged(in, 3, NULL);
  conc_msg v;
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 4; j++) {
      msg_int_big(&v, i * 10 + j, (size_t)j);  /* heap messages too */
      CHECK_RC(conc_chan_send(in[i], &v, CONC_NOWAIT), CONC_OK);
    }
  int seen[30] = {0};
  for (int k = 0; k < 12; k++) {
    CHECK_RC(conc_chan_recv(m, &v, CONC_NOWAIT), CONC_OK);
    seen[msg_take_int(&v)]++;
  }
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 4; j++) CHECK_EQ(seen[i * 10 + j], 1);
  CHECK_RC(conc_chan_recv(m, &v, CONC_NOWAIT), CONC_EAGAIN);
  CHECK_RC(conc_chan_recv(m, &v, in_ms(20)), CONC_ETIMEDOUT);
  for (int i = 0; i < 3; i++) CHECK_RC(conc_chan_close(in[i]), CONC_OK);
  CHECK_RC(conc_chan_recv(m, &v, CONC_NEVER), CONC_ECLOSED);
  CHECK(conc_chan_closed(m));
  CHECK_RC(conc_chan_send(m, &v, CONC_NOWAIT), CONC_ERECVONLY);
  for (int i = 0; i < 3; i++) rel(in[i]);
  rel(m);
}

static void no_inputs_is_closed(void) {
  conc_chan *m = merged(NULL, 0, NULL);
  conc_msg v;
  CHECK_RC(conc_chan_recv(m, &v, CONC_NEVER), CONC_ECLOSED);
  rel(m);
}

/* ---- producers x inputs x consumers ----------------------------------- */

#define INPUTS 4
#define PRODUCERS 2   /* per input */
#define CONSUMERS 3

typedef struct stress {
  conc_chan *in[INPUTS];
  conc_chan *m;
  long per;              /* values per producer */
  atomic_int counts[INPUTS * PRODUCERS * 2000];
  atomic_int producers_left[INPUTS];
} stress;

typedef struct prod_arg {
  stress *s;
  int input, id;
} prod_arg;

static void *producer(void *p) {
  prod_arg *a = p;
  stress *s = a->s;
  for (long i = 0; i < s->per; i++) {
    conc_msg v;
    long id = (a->input * PRODUCERS + a->id) * s->per + i;
    if (i % 3 == 0) msg_int_big(&v, id, (size_t)i);
    else msg_int(&v, id);
    CHECK_RC(conc_chan_send(s->in[a->input], &v, CONC_NEVER), CONC_OK);
  }
  if (atomic_fetch_sub(&s->producers_left[a->input], 1) == 1)
    CHECK_RC(conc_chan_close(s->in[a->input]), CONC_OK);
  return NULL;
}

static void *consumer(void *p) {
  stress *s = p;
  conc_msg v;
  int rc;
  while ((rc = conc_chan_recv(s->m, &v, CONC_NEVER)) == CONC_OK)
    atomic_fetch_add(&s->counts[msg_take_int(&v)], 1);
  CHECK_RC(rc, CONC_ECLOSED);
  return NULL;
}

/* A consumer that receives through conc_select, with a second case that
 * never fires, so the merged case is expanded inside a larger select. */
static void *select_consumer(void *p) {
  stress *s = p;
  conc_chan *never = conc_chan_new(0);
  for (;;) {
    conc_case cs[2] = {{never, CONC_RECV, {0}, 0}, {s->m, CONC_RECV, {0}, 0}};
    int closed_send;
    CHECK_RC(conc_select(cs, 2, CONC_NEVER, &closed_send), 1);
    if (!cs[1].ok) break;
    atomic_fetch_add(&s->counts[msg_take_int(&cs[1].msg)], 1);
  }
  rel(never);
  return NULL;
}

static void run_stress(size_t cap) {
  stress *s = calloc(1, sizeof *s);
  s->per = scaled(2000, 10);
  for (int i = 0; i < INPUTS; i++) {
    s->in[i] = conc_chan_new(i % 2 ? cap : 0);  /* buffered and not */
    atomic_init(&s->producers_left[i], PRODUCERS);
  }
  s->m = merged(s->in, INPUTS, NULL);
  pthread_t cons[CONSUMERS], prods[INPUTS * PRODUCERS];
  prod_arg args[INPUTS * PRODUCERS];
  for (int c = 0; c < CONSUMERS; c++)
    cons[c] = spawn(c == 0 ? select_consumer : consumer, s);
  for (int i = 0; i < INPUTS * PRODUCERS; i++) {
    args[i] = (prod_arg){s, i / PRODUCERS, i % PRODUCERS};
    prods[i] = spawn(producer, &args[i]);
  }
  for (int i = 0; i < INPUTS * PRODUCERS; i++) join(prods[i]);
  for (int c = 0; c < CONSUMERS; c++) join(cons[c]);
  for (long k = 0; k < (long)INPUTS * PRODUCERS * s->per; k++)
    CHECK_EQ(atomic_load(&s->counts[k]), 1);
  for (int i = 0; i < INPUTS; i++) rel(s->in[i]);
  rel(s->m);
  free(s);
}

static void stress_unbuffered_and_small(void) { run_stress(1); }
static void stress_unbuffered_and_big(void) { run_stress(64); }

/* ---- contexts, select, nesting ------------------------------------------ */

typedef struct waiting {
  conc_chan *m;
  int rc;
} waiting;

static void *blocked_recv(void *p) {
  waiting *w = p;
  conc_msg v;
  w->rc = conc_chan_recv(w->m, &v, CONC_NEVER);
  return NULL;
}

static void ctx_cancel_closes_and_wakes(void) {
  conc_ctx *bg = conc_ctx_background();
  conc_ctx *ctx = conc_ctx_new(bg, CONC_NEVER, NULL, NULL);
  conc_chan *in[2] = {conc_chan_new(0), conc_chan_new(4)};
  conc_chan *m = merged(in, 2, ctx);
  waiting w = {m, 99};
  pthread_t t = spawn(blocked_recv, &w);
  conc_msg v;
  CHECK_RC(conc_chan_recv(m, &v, in_ms(20)), CONC_ETIMEDOUT);
  CHECK_RC(conc_ctx_cancel(ctx, CONC_ECANCELED, NULL), 1);
  join(t);
  CHECK_RC(w.rc, CONC_ECLOSED);
  /* A canceled merge reads as closed even with values in its inputs. */
  msg_int(&v, 1);
  CHECK_RC(conc_chan_send(in[1], &v, CONC_NOWAIT), CONC_OK);
  CHECK_RC(conc_chan_recv(m, &v, CONC_NOWAIT), CONC_ECLOSED);
  CHECK(conc_chan_closed(m));
  rel(in[0]);
  rel(in[1]);
  rel(m);
  rel(ctx);
  rel(bg);
}

static void nested_merge_and_select(void) {
  conc_chan *a = conc_chan_new(2), *b = conc_chan_new(2), *c = conc_chan_new(2);
  conc_chan *ab = merged((conc_chan *[]){a, b}, 2, NULL);
  conc_chan *abc = merged((conc_chan *[]){ab, c}, 2, NULL);
  conc_msg v;
  msg_int(&v, 1);
  CHECK_RC(conc_chan_send(b, &v, CONC_NOWAIT), CONC_OK);
  msg_int(&v, 2);
  CHECK_RC(conc_chan_send(c, &v, CONC_NOWAIT), CONC_OK);
  int got = 0;
  for (int k = 0; k < 2; k++) {
    conc_case cs[1] = {{abc, CONC_RECV, {0}, 0}};
    int closed_send;
    CHECK_RC(conc_select(cs, 1, CONC_NOWAIT, &closed_send), 0);
    CHECK(cs[0].ok);
    got += (int)msg_take_int(&cs[0].msg);
  }
  CHECK_EQ(got, 3);
  conc_case cs[1] = {{abc, CONC_RECV, {0}, 0}};
  int closed_send;
  CHECK_RC(conc_select(cs, 1, CONC_NOWAIT, &closed_send), CONC_EAGAIN);
  CHECK_RC(conc_chan_close(a), CONC_OK);
  CHECK_RC(conc_chan_close(b), CONC_OK);
  CHECK_RC(conc_chan_recv(abc, &v, CONC_NOWAIT), CONC_EAGAIN);
  CHECK(conc_chan_closed(ab));  /* seen closed through abc */
  CHECK_RC(conc_chan_close(c), CONC_OK);
  CHECK_RC(conc_select(cs, 1, in_ms(1000), &closed_send), 0);
  CHECK_EQ(cs[0].ok, 0);
  rel(abc);
  rel(ab);
  rel(a);
  rel(b);
  rel(c);
}

static void too_deep_is_refused(void) {
  conc_chan *in = conc_chan_new(0), *chain[CONC_MERGE_DEPTH + 1];
  chain[0] = in;
  conc_retain((conc_obj *)in);
  for (int d = 1; d <= CONC_MERGE_DEPTH; d++)
    chain[d] = merged(&chain[d - 1], 1, NULL);
  conc_chan *out = NULL;
  CHECK_RC(conc_merge_new(&chain[CONC_MERGE_DEPTH], 1, NULL, &out),
           CONC_EINVAL);
  for (int d = 0; d <= CONC_MERGE_DEPTH; d++) rel(chain[d]);
  rel(in);
}

/* ---- review fixes: canceled nested merges, fairness, size limit -------- */

/* outer = merge{merge({a}, ctx), b}: once ctx is canceled the inner merge
 * reads as closed, so outer never yields a's values (as if a were closed),
 * whether received plainly or through a select, waiting or not. */
static void canceled_inner_merge_yields_nothing(void) {
  conc_ctx *bg = conc_ctx_background();
  for (int round = 0; round < 64; round++) {
    conc_ctx *ctx = conc_ctx_new(bg, CONC_NEVER, NULL, NULL);
    conc_chan *a = conc_chan_new(8), *b = conc_chan_new(8);
    conc_chan *inner = merged(&a, 1, ctx);
    conc_chan *outer = merged((conc_chan *[]){inner, b}, 2, NULL);
    conc_msg v;
    for (int i = 0; i < 8; i++) {
      msg_int(&v, 100 + i);
      CHECK_RC(conc_chan_send(a, &v, CONC_NOWAIT), CONC_OK);
    }
    CHECK_RC(conc_ctx_cancel(ctx, CONC_ECANCELED, NULL), 1);
    conc_chan *never = conc_chan_new(0);
    conc_case cs[2] = {{never, CONC_RECV, {0}, 0}, {outer, CONC_RECV, {0}, 0}};
    int closed_send;
    switch (round % 4) {
      case 0:
        CHECK_RC(conc_select(cs, 2, CONC_NOWAIT, &closed_send), CONC_EAGAIN);
        break;
      case 1:
        CHECK_RC(conc_select(cs, 2, in_ms(5), &closed_send), CONC_ETIMEDOUT);
        break;
      case 2:
        CHECK_RC(conc_chan_recv(outer, &v, in_ms(5)), CONC_ETIMEDOUT);
        break;
      default:
        msg_int(&v, 7);  /* b's value is the only one to come */
        CHECK_RC(conc_chan_send(b, &v, CONC_NOWAIT), CONC_OK);
        CHECK_RC(conc_select(&cs[1], 1, in_ms(1000), &closed_send), 0);
        CHECK(cs[1].ok);
        CHECK_EQ(msg_take_int(&cs[1].msg), 7);
    }
    CHECK_RC(conc_chan_close(b), CONC_OK);
    CHECK_RC(conc_chan_recv(outer, &v, in_ms(1000)), CONC_ECLOSED);
    CHECK(conc_chan_closed(inner));
    CHECK_EQ(conc_chan_len(a), 8);  /* a's values never left it */
    rel(never);
    rel(outer);
    rel(inner);
    rel(a);
    rel(b);
    rel(ctx);
  }
  rel(bg);
}

/* The top-level window: a receiver that got past the ctx check before
 * cancel() never takes a value after the merged channel was seen closed.
 * R waits on m = merge({a, b}, ctx); a value sent on a wakes it to poll
 * again, but before it runs, ctx is canceled, m is seen closed here, and
 * x is sent on b: R must not receive x (it was sent after m was seen
 * closed). */
typedef struct window {
  conc_chan *m;
  int rc;
  int64_t got;
} window;

static void *window_receiver(void *p) {
  window *w = p;
  conc_msg v;
  w->rc = conc_chan_recv(w->m, &v, in_ms(2000));
  if (w->rc == CONC_OK) w->got = msg_take_int(&v);
  return NULL;
}

static void no_value_after_seen_closed(void) {
  conc_ctx *bg = conc_ctx_background();
  for (int round = 0; round < 32; round++) {
    conc_ctx *ctx = conc_ctx_new(bg, CONC_NEVER, NULL, NULL);
    conc_chan *a = conc_chan_new(4), *b = conc_chan_new(4);
    window w = {merged((conc_chan *[]){a, b}, 2, ctx), 99, 0};
    pthread_t t = spawn(window_receiver, &w);
    usleep(10000);  /* R waits */
    conc_msg v;
    msg_int(&v, 1);
    CHECK_RC(conc_chan_send(a, &v, CONC_NOWAIT), CONC_OK);
    CHECK_RC(conc_ctx_cancel(ctx, CONC_ECANCELED, NULL), 1);
    CHECK_RC(conc_chan_recv(w.m, &v, CONC_NOWAIT), CONC_ECLOSED);  /* seen */
    msg_int(&v, 2);
    CHECK_RC(conc_chan_send(b, &v, CONC_NOWAIT), CONC_OK);
    join(t);
    CHECK(w.rc == CONC_ECLOSED || (w.rc == CONC_OK && w.got == 1));
    while (conc_chan_recv(a, &v, CONC_NOWAIT) == CONC_OK) conc_msg_free(&v);
    while (conc_chan_recv(b, &v, CONC_NOWAIT) == CONC_OK) conc_msg_free(&v);
    rel(w.m);
    rel(a);
    rel(b);
    rel(ctx);
  }
  rel(bg);
}

/* A select between a merged channel of 10 always-ready inputs and one
 * always-ready plain channel: each is one case, so each wins about half
 * the time (Go's select picks uniformly among its ready cases). */
static void merged_case_counts_once_in_select(void) {
  enum { K = 10, ROUNDS = 2000 };
  conc_chan *in[K], *plain = conc_chan_new(1);
  conc_msg v;
  for (int i = 0; i < K; i++) {
    in[i] = conc_chan_new(1);
    msg_int(&v, i);
    CHECK_RC(conc_chan_send(in[i], &v, CONC_NOWAIT), CONC_OK);
  }
  msg_int(&v, -1);
  CHECK_RC(conc_chan_send(plain, &v, CONC_NOWAIT), CONC_OK);
  conc_chan *m = merged(in, K, NULL);
  int wins[2] = {0, 0};
  for (int r = 0; r < ROUNDS; r++) {
    conc_case cs[2] = {{m, CONC_RECV, {0}, 0}, {plain, CONC_RECV, {0}, 0}};
    int closed_send;
    int rc = conc_select(cs, 2, r % 2 ? CONC_NEVER : CONC_NOWAIT, &closed_send);
    CHECK(rc == 0 || rc == 1);
    CHECK(cs[rc].ok);
    wins[rc]++;
    int64_t x = msg_get_int(&cs[rc].msg);  /* put it back: always ready */
    CHECK_RC(conc_chan_send(x < 0 ? plain : in[x], &cs[rc].msg, CONC_NOWAIT),
             CONC_OK);
  }
  CHECK(wins[0] > ROUNDS * 35 / 100 && wins[0] < ROUNDS * 65 / 100);
  CHECK(wins[1] > ROUNDS * 35 / 100 && wins[1] < ROUNDS * 65 / 100);
  /* A closed merged channel is one ready case among others, not first. */
  conc_chan *none = merged(NULL, 0, NULL);
  wins[0] = wins[1] = 0;
  for (int r = 0; r < 1000; r++) {
    conc_case cs[2] = {{none, CONC_RECV, {0}, 0}, {plain, CONC_RECV, {0}, 0}};
    int closed_send;
    int rc = conc_select(cs, 2, CONC_NOWAIT, &closed_send);
    CHECK(rc == 0 || rc == 1);
    wins[rc]++;
    if (rc == 1) {
      CHECK(cs[1].ok);
      CHECK_RC(conc_chan_send(plain, &cs[1].msg, CONC_NOWAIT), CONC_OK);
    } else {
      CHECK(!cs[0].ok);
    }
  }
  CHECK(wins[0] > 350 && wins[0] < 650);
  for (int i = 0; i < K; i++) rel(in[i]);
  rel(none);
  rel(m);
  rel(plain);
}

/* The expansion of a merge, nested merges included, is bounded: at most
 * CONC_MERGE_MAX channels; more is refused, not wrapped around. */
static void too_many_inputs_is_refused(void) {
  enum { N = CONC_MERGE_MAX };
  conc_chan **in = malloc((N + 1) * sizeof *in);
  conc_chan *c = conc_chan_new(1);
  for (int i = 0; i <= N; i++) in[i] = c;
  conc_chan *big = merged(in, N, NULL), *out = NULL;
  CHECK_RC(conc_merge_new(in, N + 1, NULL, &out), CONC_EOVERFLOW);
  conc_chan *two[2] = {big, c};
  CHECK_RC(conc_merge_new(two, 2, NULL, &out), CONC_EOVERFLOW);
  /* 64 x 64 x ... multiplies out: the old count wrapped around. */
  conc_chan *small = merged(in, 64, NULL);
  conc_chan *level = small;
  for (int i = 0; i < 64; i++) in[i] = level;
  CHECK_RC(conc_merge_new(in, 64, NULL, &out), CONC_EOVERFLOW);
  conc_chan *half = merged(in, 63, NULL);  /* 63 x (64 + 1) = 4095 */
  conc_msg v;
  msg_int(&v, 5);
  CHECK_RC(conc_chan_send(c, &v, CONC_NOWAIT), CONC_OK);
  CHECK_RC(conc_chan_recv(half, &v, in_ms(1000)), CONC_OK);
  CHECK_EQ(msg_take_int(&v), 5);
  CHECK_RC(conc_chan_recv(half, &v, in_ms(5)), CONC_ETIMEDOUT);
  rel(half);
  rel(small);
  rel(big);
  rel(c);
  free(in);
}

/* ---- pub/sub ------------------------------------------------------------ */

static void pubsub_fans_out_and_drops(void) {
  conc_pubsub *ps = conc_pubsub_new();
  const char *t1[] = {"orders", "payments"}, *t2[] = {"orders"};
  size_t l1[] = {6, 8}, l2[] = {6};
  conc_chan *c1, *c2;
  CHECK_RC(conc_pubsub_subscribe(ps, "sub1", 4, t1, l1, 2, 2, &c1), CONC_OK);
  CHECK_RC(conc_pubsub_subscribe(ps, "sub2", 4, t2, l2, 1, 1, &c2), CONC_OK);
  CHECK(conc_chan_recv_only(c1));
  conc_msg m;
  msg_int_big(&m, 7, 3);  /* shared by every copy */
  CHECK_EQ(conc_pubsub_publish(ps, "orders", 6, &m), 2);
  CHECK_EQ(conc_pubsub_publish(ps, "payments", 8, &m), 1);
  CHECK_EQ(conc_pubsub_publish(ps, "orders", 6, &m), 0);  /* both full */
  CHECK_EQ(conc_pubsub_publish(ps, "nobody", 6, &m), 0);
  conc_msg_free(&m);
  CHECK_EQ(conc_pubsub_dropped(ps, "sub1", 4), 1);
  CHECK_EQ(conc_pubsub_dropped(ps, "sub2", 4), 1);
  CHECK_EQ(conc_pubsub_dropped(ps, "sub3", 4), -1);
  conc_msg v;
  CHECK_RC(conc_chan_recv(c1, &v, CONC_NOWAIT), CONC_OK);
  CHECK_EQ(msg_take_int(&v), 7);
  CHECK_EQ(conc_pubsub_unsubscribe(ps, "sub2", 4), 1);
  CHECK_EQ(conc_pubsub_unsubscribe(ps, "sub2", 4), 0);
  CHECK_RC(conc_chan_recv(c2, &v, CONC_NOWAIT), CONC_OK);
  msg_take_int(&v);
  CHECK_RC(conc_chan_recv(c2, &v, CONC_NOWAIT), CONC_ECLOSED);
  CHECK_EQ(conc_pubsub_count(ps), 1);
  rel(ps);  /* closes sub1's channel: its readers end */
  CHECK_RC(conc_chan_recv(c1, &v, CONC_NOWAIT), CONC_OK);
  msg_take_int(&v);
  CHECK_RC(conc_chan_recv(c1, &v, CONC_NOWAIT), CONC_ECLOSED);
  rel(c1);
  rel(c2);
}

static const check_test tests[] = {
    {"buffered_inputs_each_value_once", buffered_inputs_each_value_once},
    {"no_inputs_is_closed", no_inputs_is_closed},
    {"stress_unbuffered_and_small", stress_unbuffered_and_small},
    {"stress_unbuffered_and_big", stress_unbuffered_and_big},
    {"ctx_cancel_closes_and_wakes", ctx_cancel_closes_and_wakes},
    {"nested_merge_and_select", nested_merge_and_select},
    {"too_deep_is_refused", too_deep_is_refused},
    {"canceled_inner_merge_yields_nothing",
     canceled_inner_merge_yields_nothing},
    {"no_value_after_seen_closed", no_value_after_seen_closed},
    {"merged_case_counts_once_in_select", merged_case_counts_once_in_select},
    {"too_many_inputs_is_refused", too_many_inputs_is_refused},
    {"pubsub_fans_out_and_drops", pubsub_fans_out_and_drops},
    {NULL, NULL}};

int main(int argc, char **argv) {
  return check_main("test_merge", tests, argc, argv);
}
