/*
 * breaker.c: a circuit breaker (closed, open, half-open), shared by every
 * worker that holds it.
 *
 * The shape is gobreaker's (sony/gobreaker): each state is a generation
 * with its own counts; a call is admitted in one generation and its
 * outcome counts only if the breaker is still in that generation when it
 * ends (a slow call that fails after the breaker opened must not count
 * toward the next state). The timeout counts from the opening, not from
 * the last failure: while it is open no call runs, so no failure could
 * push it back. Unlike gobreaker, half-open bounds the calls running at
 * once (`probes`), not the calls per half-open period, and closing takes
 * `successes` consecutive successes, so the two are set apart.
 *
 * The breaker runs no code of its users: a call that changes the state
 * reports it (conc_breaker_change), and the binding runs on_change after
 * every lock is released.
 *
 * Locking: one lock per breaker, a leaf.
 */
#include "internal.h"

struct conc_breaker {
  conc_obj hdr;
  conc_breaker_config cfg;    /* constant */
  conc_msg on_change;         /* constant; valid if has_on_change */
  bool has_on_change;
  conc__lock_t lock;          /* guards every field below */
  int state;                  /* CONC_BREAKER_* */
  uint64_t gen;               /* bumped at each change of state */
  conc_time expiry;           /* open: when it turns half-open */
  int64_t probes;             /* half-open: calls of this gen running */
  conc_breaker_counts counts; /* this gen's */
};

static void breaker_destroy(conc_obj *o) {
  conc_breaker *b = (conc_breaker *)o;
  if (b->has_on_change) conc_msg_free(&b->on_change);
  free(b);
}

const conc_type conc_breaker_type = {"conc.breaker", breaker_destroy};

const char *conc_breaker_state_name(int state) {
  switch (state) {
    case CONC_BREAKER_CLOSED: return "closed";
    case CONC_BREAKER_OPEN: return "open";
    case CONC_BREAKER_HALF_OPEN: return "half-open";
    default: return "?";
  }
}

conc_breaker *conc_breaker_new(const conc_breaker_config *cfg,
                               conc_msg *on_change) {
  conc_breaker *b = calloc(1, sizeof *b);
  if (b == NULL) {
    if (on_change) conc_msg_free(on_change);
    return NULL;
  }
  conc_obj_init(&b->hdr, &conc_breaker_type);
  b->cfg = *cfg;
  if (on_change) {
    b->on_change = *on_change;
    b->has_on_change = true;
  }
  b->state = CONC_BREAKER_CLOSED;
  return b;
}

/* Starts a new generation in state `to`, and says so in *ch. Lock held. */
static void set_state(conc_breaker *b, int to, conc_time now,
                      conc_breaker_change *ch) {
  ch->from = b->state;
  ch->to = to;
  b->state = to;
  b->gen++;
  b->probes = 0;
  memset(&b->counts, 0, sizeof b->counts);
  if (to == CONC_BREAKER_OPEN) b->expiry = conc__time_add(now, b->cfg.timeout);
}

/* An open breaker whose timeout has passed turns half-open. Lock held. */
static void update(conc_breaker *b, conc_time now, conc_breaker_change *ch) {
  if (b->state == CONC_BREAKER_OPEN && now >= b->expiry)
    set_state(b, CONC_BREAKER_HALF_OPEN, now, ch);
}

int conc_breaker_begin(conc_breaker *b, conc_time now, uint64_t *ticket,
                       conc_breaker_change *ch) {
  int rc = CONC_OK;
  ch->from = -1;
  conc__lock(&b->lock);
  update(b, now, ch);
  if (b->state == CONC_BREAKER_OPEN) {
    rc = CONC_EBREAKEROPEN;
  } else if (b->state == CONC_BREAKER_HALF_OPEN && b->probes >= b->cfg.probes) {
    rc = CONC_ETOOMANYPROBES;
  } else {
    if (b->state == CONC_BREAKER_HALF_OPEN) b->probes++;
    b->counts.requests++;
    *ticket = b->gen;
  }
  conc__unlock(&b->lock);
  return rc;
}

/* Counts a success of this generation; enough of them close a half-open
 * breaker. Lock held. */
static void on_success(conc_breaker *b, conc_time now,
                       conc_breaker_change *ch) {
  b->counts.successes++;
  b->counts.consecutive_successes++;
  b->counts.consecutive_failures = 0;
  if (b->state == CONC_BREAKER_HALF_OPEN &&
      b->counts.consecutive_successes >= b->cfg.successes)
    set_state(b, CONC_BREAKER_CLOSED, now, ch);
}

/* Counts a failure of this generation: enough of them open a closed
 * breaker, one opens a half-open one. Lock held. */
static void on_failure(conc_breaker *b, conc_time now,
                       conc_breaker_change *ch) {
  b->counts.failures++;
  b->counts.consecutive_failures++;
  b->counts.consecutive_successes = 0;
  if (b->state == CONC_BREAKER_HALF_OPEN ||
      b->counts.consecutive_failures >= b->cfg.failures)
    set_state(b, CONC_BREAKER_OPEN, now, ch);
}

void conc_breaker_end(conc_breaker *b, conc_time now, uint64_t ticket,
                      int outcome, conc_breaker_change *ch) {
  ch->from = -1;
  conc__lock(&b->lock);
  update(b, now, ch);
  if (ticket == b->gen) {  /* else admitted in an earlier state: ignored */
    if (b->state == CONC_BREAKER_HALF_OPEN) b->probes--;
    if (outcome == CONC_CALL_SUCCESS) on_success(b, now, ch);
    else if (outcome == CONC_CALL_FAILURE) on_failure(b, now, ch);
    else b->counts.requests--;  /* abandoned: as if never admitted */
  }
  conc__unlock(&b->lock);
}

int conc_breaker_state(conc_breaker *b, conc_time now,
                       conc_breaker_change *ch) {
  ch->from = -1;
  conc__lock(&b->lock);
  update(b, now, ch);
  int state = b->state;
  conc__unlock(&b->lock);
  return state;
}

void conc_breaker_counts_get(conc_breaker *b, conc_breaker_counts *out) {
  conc__lock(&b->lock);
  *out = b->counts;
  conc__unlock(&b->lock);
}

int conc_breaker_on_change(conc_breaker *b, conc_msg *out) {
  if (!b->has_on_change) return 0;
  int rc = conc_msg_copy(out, &b->on_change);
  return rc == CONC_OK ? 1 : rc;
}
