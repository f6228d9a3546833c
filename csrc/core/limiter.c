/*
 * limiter.c: a rate limiter, golang.org/x/time/rate's token bucket.
 *
 * No thread and no timer: the bucket is brought up to date from the
 * monotonic clock whenever it is used (advance). A reservation takes its
 * tokens at once, even those that have not come yet: the bucket goes
 * negative and the reservation's time to act is when it is back at zero.
 * So reservations queue in time, not in a list, and `last_event` (the
 * latest time to act handed out) tells a cancel how many of its tokens
 * later reservations already count on (those are not given back).
 *
 * Arithmetic follows x/time/rate exactly (durations truncated to whole
 * nanoseconds, the infinite limit as DBL_MAX so that 0 * limit is 0),
 * with every float-to-integer conversion clamped (Go's wraps silently,
 * C's would be undefined).
 *
 * Locking: each limiter has one lock, a leaf. A reservation holds its
 * limiter and uses its lock.
 */
#include "internal.h"

/* Go's rate.InfDuration: the wait of what never comes. */
#define INF_DURATION INT64_MAX

/* What a reservation granted; constant once made. */
typedef struct rsv {
  bool ok;
  int64_t tokens;
  conc_time time_to_act;
  double limit;          /* the limit when it was made */
} rsv;

struct conc_limiter {
  conc_obj hdr;
  conc__lock_t lock;     /* guards every field below */
  double limit;          /* tokens per second; CONC_RATE_INF: no limit */
  int64_t burst;
  double tokens;         /* at `last`; negative while reservations wait */
  conc_time last;        /* when `tokens` was last brought up to date */
  conc_time last_event;  /* latest time to act granted (past or future) */
};

struct conc_reservation {
  conc_obj hdr;
  conc_limiter *lim;     /* retained; constant */
  rsv r;                 /* constant */
  bool canceled;         /* lim->lock */
};

static bool infinite(double limit) { return limit >= CONC_RATE_INF; }

/* The time it takes to accumulate `tokens` at `limit`, truncated to
 * nanoseconds as Go's durationFromTokens; INF_DURATION if never. */
static conc_time dur_from_tokens(double limit, double tokens) {
  if (limit <= 0) return INF_DURATION;
  double ns = 1e9 * (tokens / limit);
  if (!(ns < 9.2e18)) return INF_DURATION;  /* NaN too */
  if (ns < -9.2e18) return -INF_DURATION;
  return (conc_time)ns;
}

/* The tokens accumulated in d at `limit`, whole seconds apart from the
 * rest to keep precision (Go's tokensFromDuration, golang.org/issue/34861). */
static double tokens_from_dur(double limit, conc_time d) {
  if (limit <= 0) return 0;
  conc_time whole = d / 1000000000;  /* whole seconds, truncated */
  double sec = (double)whole * limit;
  double nsec = (double)(d % 1000000000) * limit;
  return sec + nsec / 1e9;
}

/* The bucket at now, without changing l: returns the time it is brought
 * to (never before `last`) and sets *tokens. Lock held. */
static conc_time advance(const conc_limiter *l, conc_time now, double *tokens) {
  if (now < l->last) {
    *tokens = l->tokens;
    return l->last;
  }
  /* As x/time/rate's advance now: the elapsed time is not capped first
   * at what would fill the bucket (truncated to whole nanoseconds, that
   * cap lost up to a nanosecond's tokens: an idle bucket never read as
   * full, one that fills in under a nanosecond never refilled); the sum
   * is capped instead, in a double, where an old `last` cannot
   * overflow. */
  double t = l->tokens + tokens_from_dur(l->limit, now - l->last);
  if (t > (double)l->burst) t = (double)l->burst;
  *tokens = t;
  return now;
}

/* Reserves n tokens at now if they come within max_future (Go's
 * reserveN). Lock held. */
static rsv reserve(conc_limiter *l, conc_time now, int64_t n,
                   conc_time max_future) {
  rsv r = {0};
  if (infinite(l->limit)) {
    r.ok = true;
    r.tokens = n;
    r.time_to_act = now;
    r.limit = l->limit;
    return r;
  }
  if (l->limit == 0) {  /* never refills: Go spends the burst itself */
    r.ok = n <= l->burst;
    if (r.ok) l->burst -= n;
    r.tokens = r.ok ? n : 0;
    r.time_to_act = now;
    return r;  /* its time to act is now: a later cancel gives nothing */
  }
  double tokens;
  now = advance(l, now, &tokens);
  tokens -= (double)n;
  conc_time wait = tokens < 0 ? dur_from_tokens(l->limit, -tokens) : 0;
  r.limit = l->limit;
  r.ok = n <= l->burst && wait <= max_future;
  if (!r.ok) return r;
  r.tokens = n;
  r.time_to_act = conc__time_add(now, wait);
  l->last = now;
  l->tokens = tokens;
  l->last_event = r.time_to_act;
  return r;
}

/* Gives back what r reserved, less what reservations made after it
 * already count on (Go's CancelAt). Lock held. */
static void cancel(conc_limiter *l, const rsv *r, conc_time now) {
  if (!r->ok || infinite(l->limit) || r->tokens == 0 || r->time_to_act < now)
    return;
  if (r->limit == 0) return;  /* acted at once (Go's rate-0 case) */
  double restore = (double)r->tokens -
                   tokens_from_dur(r->limit, l->last_event - r->time_to_act);
  if (restore <= 0) return;
  double tokens;
  now = advance(l, now, &tokens);
  tokens += restore;
  if (tokens > (double)l->burst) tokens = (double)l->burst;
  l->last = now;
  l->tokens = tokens;
  if (r->time_to_act == l->last_event) {
    /* It was the latest: the one before it becomes the latest. */
    conc_time d = dur_from_tokens(r->limit, (double)r->tokens);
    conc_time prev = d >= r->time_to_act ? 0 : r->time_to_act - d;
    if (prev >= now) l->last_event = prev;
  }
}

/* ---- the limiter -------------------------------------------------------- */

static void limiter_destroy(conc_obj *o) { free(o); }

const conc_type conc_limiter_type = {"conc.limiter", limiter_destroy};

conc_limiter *conc_limiter_new(double limit, int64_t burst) {
  conc_limiter *l = calloc(1, sizeof *l);
  if (l == NULL) return NULL;
  conc_obj_init(&l->hdr, &conc_limiter_type);
  l->limit = infinite(limit) ? CONC_RATE_INF : limit;
  l->burst = burst;
  l->tokens = (double)burst;  /* initially full */
  l->last = conc_now();
  return l;
}

int conc_limiter_allow(conc_limiter *l, conc_time now, int64_t n) {
  conc__lock(&l->lock);
  rsv r = reserve(l, now, n, 0);
  conc__unlock(&l->lock);
  return r.ok;
}

conc_reservation *conc_limiter_reserve(conc_limiter *l, conc_time now,
                                       int64_t n) {
  conc_reservation *res = calloc(1, sizeof *res);
  if (res == NULL) return NULL;
  conc_obj_init(&res->hdr, &conc_reservation_type);
  conc_retain(&l->hdr);
  res->lim = l;
  conc__lock(&l->lock);
  res->r = reserve(l, now, n, INF_DURATION);
  conc__unlock(&l->lock);
  return res;
}

/* Parks the calling thread until `when`, or until ctx (if not NULL) is
 * canceled: CONC_OK, the context's error, or (the main script's wait)
 * CONC_EINTR / CONC_EDEADLOCK when Ctrl-C or a deadlock ended it. */
static int sleep_until(conc_limiter *l, conc_time when, conc_ctx *ctx) {
  if (ctx == NULL) {
    /* A timed park that only an abort claims: it ends at `when`. */
    conc_waiter *w = conc__waiter_self();
    conc__waiter_arm(w);
    conc__waiting_on(w, "limiter wait", l, true);
    int fired = conc__waiter_park(w, when);
    return fired == CONC_SEL_INTERRUPT || fired == CONC_SEL_DEADLOCK
               ? conc__abort_code(fired)
               : CONC_OK;
  }
  conc_case cs = {conc_ctx_done(ctx), CONC_RECV, {0}, 0};
  int closed_send = 0;
  int rc = conc_select(&cs, 1, when, &closed_send);
  if (rc == CONC_ETIMEDOUT) return CONC_OK;
  if (rc == CONC_EINTR || rc == CONC_EDEADLOCK) return rc;
  /* Done is closed only by a cancel, after it sets the error. */
  int err = conc_ctx_err(ctx);
  if (err == 0) conc__fatal("limiter wait: a live context's done fired", 0);
  return err;
}

int conc_limiter_wait(conc_limiter *l, int64_t n, conc_time deadline,
                      conc_ctx *ctx) {
  conc__lock(&l->lock);
  bool too_many = n > l->burst && !infinite(l->limit);
  conc__unlock(&l->lock);
  if (too_many) return CONC_ERATEBURST;
  int err = ctx ? conc_ctx_err(ctx) : 0;
  if (err) return err;
  conc_time now = conc_now();
  conc_time ctx_deadline = ctx ? conc_ctx_deadline(ctx) : CONC_NEVER;
  bool by_ctx = ctx_deadline < deadline;
  if (by_ctx) deadline = ctx_deadline;
  /* A deadline already past still lets through what needs no wait. */
  conc_time max_future = deadline == CONC_NEVER ? INF_DURATION
                         : deadline > now       ? deadline - now
                                                : 0;
  conc__lock(&l->lock);
  rsv r = reserve(l, now, n, max_future);
  conc__unlock(&l->lock);
  if (!r.ok) return by_ctx ? CONC_ERATEDEADLINE : CONC_ETIMEDOUT;
  if (r.time_to_act <= now) return CONC_OK;
  int rc = sleep_until(l, r.time_to_act, ctx);
  if (rc != CONC_OK) {  /* canceled: others may go sooner */
    conc__lock(&l->lock);
    cancel(l, &r, conc_now());
    conc__unlock(&l->lock);
  }
  return rc;
}

void conc_limiter_set_limit(conc_limiter *l, conc_time now, double limit) {
  conc__lock(&l->lock);
  l->last = advance(l, now, &l->tokens);
  l->limit = infinite(limit) ? CONC_RATE_INF : limit;
  conc__unlock(&l->lock);
}

void conc_limiter_set_burst(conc_limiter *l, conc_time now, int64_t burst) {
  conc__lock(&l->lock);
  l->last = advance(l, now, &l->tokens);
  l->burst = burst;
  conc__unlock(&l->lock);
}

double conc_limiter_limit(conc_limiter *l) {
  conc__lock(&l->lock);
  double limit = l->limit;
  conc__unlock(&l->lock);
  return limit;
}

int64_t conc_limiter_burst(conc_limiter *l) {
  conc__lock(&l->lock);
  int64_t burst = l->burst;
  conc__unlock(&l->lock);
  return burst;
}

double conc_limiter_tokens(conc_limiter *l, conc_time now) {
  double tokens;
  conc__lock(&l->lock);
  advance(l, now, &tokens);
  conc__unlock(&l->lock);
  return tokens;
}

/* ---- reservations ------------------------------------------------------- */

static void reservation_destroy(conc_obj *o) {
  conc_reservation *res = (conc_reservation *)o;
  conc_release(&res->lim->hdr);
  free(res);
}

const conc_type conc_reservation_type = {"conc.reservation",
                                         reservation_destroy};

int conc_reservation_ok(conc_reservation *res) { return res->r.ok; }

conc_time conc_reservation_delay(conc_reservation *res, conc_time now) {
  if (!res->r.ok) return CONC_NEVER;
  return res->r.time_to_act > now ? res->r.time_to_act - now : 0;
}

void conc_reservation_cancel(conc_reservation *res, conc_time now) {
  conc_limiter *l = res->lim;
  conc__lock(&l->lock);
  if (!res->canceled) {
    res->canceled = true;
    cancel(l, &res->r, now);
  }
  conc__unlock(&l->lock);
}
