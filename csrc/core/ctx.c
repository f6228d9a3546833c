/*
 * ctx.c: contexts, as Go's context package.
 *
 * A context is canceled once, with an error (ECANCELED or EDEADLINE) and
 * an optional cause; cancellation closes its `done` channel, so waiting
 * for "X or cancellation" is always a select, and cancels every
 * descendant. A child holds a reference to its parent; a parent holds
 * only weak pointers to its children (a child that nobody holds any more
 * unlinks itself when destroyed), so dropping a context never leaks it.
 * A deadline is a timer whose firing cancels with EDEADLINE; while it is
 * scheduled the timer holds a reference to the context.
 *
 * Locking: ctx->lock guards err, cause and the children list; a child's
 * sibling links and `linked` are guarded by its parent's lock. No two
 * context locks are ever held at once: cancel detaches the children under
 * its lock and cancels them after releasing it. Cancel closes `done`
 * under ctx->lock (so the order is a context's lock, then its done
 * channel's, then the scheduler's locks its wake-ups take); nothing takes
 * a context lock while it holds one of those.
 */
#include <string.h>
#include "internal.h"

struct conc_ctx {
  conc_obj hdr;
  conc__lock_t lock;
  conc_ctx *parent;          /* retained; NULL for the background */
  conc_chan *done;           /* closed on cancellation */
  atomic_int err;            /* 0, CONC_ECANCELED or CONC_EDEADLINE */
  bool has_cause;
  conc_msg cause;
  conc_time deadline;        /* the earliest of its own and its parent's */
  bool has_value;
  conc_msg key, value;
  conc_timer *timer;         /* the deadline, or NULL */
  conc_ctx *children;        /* weak pointers (lock) */
  conc_ctx *prev, *next;     /* siblings (parent->lock) */
  bool linked;               /* in the parent's list (parent->lock) */
  atomic_bool settled;       /* canceled, and so is every descendant */
};

static void ctx_destroy(conc_obj *o);
const conc_type conc_ctx_type = {"conc.ctx", ctx_destroy};

static conc_ctx *background;
static pthread_once_t background_once = PTHREAD_ONCE_INIT;

static conc_ctx *ctx_alloc(void) {
  conc_ctx *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->done = conc__chan_new_owned(0);  /* closed by cancel alone */
  if (c->done == NULL) {
    free(c);
    return NULL;
  }
  conc_obj_init(&c->hdr, &conc_ctx_type);
  c->deadline = CONC_NEVER;
  return c;
}

static void make_background(void) {
  background = ctx_alloc();
  if (background == NULL) conc__fatal("conc_ctx_background", 12);
}

conc_ctx *conc_ctx_background(void) {
  pthread_once(&background_once, make_background);
  conc_retain(&background->hdr);
  return background;
}

/* Unlinks child from its parent's list (if it is still there). */
static void unlink_from_parent(conc_ctx *child) {
  conc_ctx *p = child->parent;
  if (p == NULL) return;
  conc__lock(&p->lock);
  if (child->linked) {
    if (child->prev) child->prev->next = child->next;
    else p->children = child->next;
    if (child->next) child->next->prev = child->prev;
    child->linked = false;
  }
  conc__unlock(&p->lock);
}

static void ctx_destroy(conc_obj *o) {
  conc_ctx *c = (conc_ctx *)o;
  unlink_from_parent(c);
  if (c->timer) {
    conc_timer_stop(c->timer);
    conc_timer_release(c->timer);
  }
  if (c->has_cause) conc_msg_free(&c->cause);
  if (c->has_value) {
    conc_msg_free(&c->key);
    conc_msg_free(&c->value);
  }
  conc_release((conc_obj *)c->done);
  if (c->parent) conc_release(&c->parent->hdr);
  free(c);
}

/* The timer's firing: the deadline has come. */
static void deadline_fire(conc_timer *t, void *arg, conc_time now,
                          uint64_t gen) {
  (void)t, (void)now, (void)gen;
  conc_ctx *c = (conc_ctx *)arg;
  conc_ctx_cancel(c, CONC_EDEADLINE, NULL);
  conc_release(&c->hdr);  /* the scheduled timer's reference */
}

/* Links child under parent unless parent is canceled already; returns
 * the parent's error (0 if linked). */
static int link_to_parent(conc_ctx *child, conc_ctx *p, conc_msg *cause,
                          int *has_cause) {
  conc__lock(&p->lock);
  int err = atomic_load(&p->err);
  if (err == 0) {
    child->next = p->children;
    child->prev = NULL;
    if (p->children) p->children->prev = child;
    p->children = child;
    child->linked = true;
  } else {
    *has_cause = p->has_cause && conc_msg_copy(cause, &p->cause) == CONC_OK;
  }
  conc__unlock(&p->lock);
  return err;
}

/* Schedules the deadline timer (made before c was linked, so a cancel
 * from the parent sees it). A cancel may have come first or may come
 * meanwhile; conc_timer_stop returns 1 exactly once for one schedule, so
 * the timer's reference is dropped exactly once either way. */
static int arm_deadline(conc_ctx *c) {
  conc_retain(&c->hdr);  /* held while the timer is scheduled */
  int rc = conc_timer_start(c->timer, c->deadline, 0);
  if (rc < 0) {  /* no timer thread, or no memory for the schedule */
    conc_release(&c->hdr);
    return rc;
  }
  if (atomic_load(&c->err) && conc_timer_stop(c->timer))
    conc_release(&c->hdr);  /* canceled before it was scheduled */
  return CONC_OK;
}

conc_ctx *conc__ctx_make(conc_ctx *parent, conc_time deadline, conc_msg *key,
                         conc_msg *value, int *rc) {
  *rc = CONC_ENOMEM;
  conc_ctx *c = ctx_alloc();
  if (c == NULL) return NULL;
  conc_retain(&parent->hdr);
  c->parent = parent;
  c->deadline = deadline < parent->deadline ? deadline : parent->deadline;
  bool own_deadline = deadline < parent->deadline;  /* else the parent's */
  /* A deadline clamped to CONC_LATEST (a timeout too large to count in
   * nanoseconds, math.huge included: 292 years away) is recorded but not
   * scheduled: its timer could not fire while the process lives, and a
   * scheduled timer would hold the context until then and count as
   * pending, which turns deadlock detection off. */
  bool timed = own_deadline && deadline < CONC_LATEST;
  if (timed && deadline > conc_now()) {
    c->timer = conc_timer_new(deadline_fire, c, NULL);
    if (c->timer == NULL) {
      conc_release(&c->hdr);
      return NULL;
    }
  }
  conc_msg cause;
  int has_cause = 0;
  int err = link_to_parent(c, parent, &cause, &has_cause);
  if (err) {
    conc_ctx_cancel(c, err, has_cause ? &cause : NULL);
  } else if (timed) {
    if (c->timer == NULL) conc_ctx_cancel(c, CONC_EDEADLINE, NULL); /* past */
    else if ((*rc = arm_deadline(c)) != CONC_OK) {
      conc_release(&c->hdr);
      return NULL;
    }
  }
  if (key) { /* only now: on failure above they are still the caller's */
    c->key = *key;
    c->value = *value;
    c->has_value = true;
  }
  *rc = CONC_OK;
  return c;
}

conc_ctx *conc_ctx_new(conc_ctx *parent, conc_time deadline, conc_msg *key,
                       conc_msg *value) {
  int rc;
  return conc__ctx_make(parent, deadline, key, value, &rc);
}

/* Detaches the children that are still alive (retained) into an array;
 * c->lock held. Returns how many (-1: out of memory, none detached). */
static int take_children(conc_ctx *c, conc_ctx ***out) {
  int n = 0;
  for (conc_ctx *k = c->children; k; k = k->next) n++;
  conc_ctx **list = n ? malloc((size_t)n * sizeof *list) : NULL;
  if (n && list == NULL) return -1;
  int live = 0;
  for (conc_ctx *k = c->children; k; k = k->next) {
    k->linked = false;
    if (conc_try_retain(&k->hdr)) list[live++] = k;
  }
  c->children = NULL;
  *out = list;
  return live;
}

/* c's own cancellation: its error and cause set and its done closed,
 * under its lock (Go closes under c.mu too: a child linked after sees
 * the parent's done closed), its live children detached (retained)
 * into *kids, *n of them. False if c was canceled already. */
static bool cancel_one(conc_ctx *c, int err, conc_msg *cause, conc_ctx ***kids,
                       int *n) {
  conc__lock(&c->lock);
  if (atomic_load(&c->err) != 0) {
    conc__unlock(&c->lock);
    if (cause) conc_msg_free(cause);
    /* Canceled by another call, which may still be canceling its
     * descendants: as Go's cancel, which takes c.mu that the first holds
     * until then, this one returns once they are (a second cancel()
     * returned while children of the first still read live). Short:
     * what the first does is a few closes a descendant. */
    while (!atomic_load(&c->settled)) sched_yield();
    return false;
  }
  *n = take_children(c, kids);
  if (*n < 0) conc__fatal("conc_ctx_cancel: malloc", 12);
  if (cause) {
    c->cause = *cause;
    c->has_cause = true;
  }
  atomic_store(&c->err, err); /* before the close: see conc_ctx_err */
  conc__chan_close_owned(c->done);
  conc__unlock(&c->lock);
  if (c->timer && conc_timer_stop(c->timer))
    conc_release(&c->hdr); /* the timer will not fire: its reference */
  return true;
}

static conc_ctx **grow(conc_ctx **todo, int cap) {
  conc_ctx **more = realloc(todo, (size_t)cap * sizeof *more);
  if (more == NULL) conc__fatal("conc_ctx_cancel: malloc", 12);
  return more;
}

/* The descendants are canceled from a worklist, not by recursion: a
 * chain of 6,000 nested contexts overflowed a task's stack. Each gets a
 * copy of c's cause. (A child's unlink from its parent is not needed:
 * take_children took it out of the list.) */
int conc_ctx_cancel(conc_ctx *c, int err, conc_msg *cause) {
  /* Any other error read as "live" (0: done closed, err none, and a wait
   * on it aborted) or "unknown error". */
  if (err != CONC_ECANCELED && err != CONC_EDEADLINE) return CONC_EINVAL;
  bool has_cause = cause != NULL;
  conc_ctx **todo = NULL;
  int n = 0;
  if (!cancel_one(c, err, cause, &todo, &n)) return 0;
  for (int i = 0, j = n - 1; i < j; i++, j--) { /* popped in list order */
    conc_ctx *t = todo[i];
    todo[i] = todo[j];
    todo[j] = t;
  }
  int cap = n, nsettle = 0, capsettle = 0;
  conc_ctx **settle = NULL; /* canceled here, settled at the end */
  while (n > 0) {
    conc_ctx *k = todo[--n];
    conc_msg copy;
    int has = has_cause && conc_msg_copy(&copy, &c->cause) == CONC_OK;
    conc_ctx **kids = NULL;
    int kn = 0;
    if (cancel_one(k, err, has ? &copy : NULL, &kids, &kn) && kn > 0) {
      if (n + kn > cap) {
        cap = 2 * (n + kn);
        todo = grow(todo, cap);
      }
      for (int i = kn - 1; i >= 0; i--) /* taken in their list's order */
        todo[n++] = kids[i];
    }
    free(kids);
    if (nsettle == capsettle) {
      capsettle = capsettle ? 2 * capsettle : 16;
      settle = grow(settle, capsettle);
    }
    settle[nsettle++] = k;
  }
  free(todo);
  for (int i = 0; i < nsettle; i++) {
    atomic_store(&settle[i]->settled, true);
    conc_release(&settle[i]->hdr);
  }
  free(settle);
  atomic_store(&c->settled, true);
  unlink_from_parent(c);
  return 1;
}

int conc_ctx_err(conc_ctx *c) {
  int err = atomic_load(&c->err);
  /* Set just before done is closed: until the close is seen, none, as
   * Go's "If Done is not yet closed, Err returns nil" (err() read
   * "context canceled" while done():try_recv() said it would block). */
  return err != 0 && conc_chan_closed(c->done) ? err : 0;
}

conc_chan *conc_ctx_done(conc_ctx *c) { return c->done; }

conc_time conc_ctx_deadline(conc_ctx *c) { return c->deadline; }

int conc_ctx_cause(conc_ctx *c, conc_msg *out) {
  conc__lock(&c->lock);
  int has = c->has_cause && conc_msg_copy(out, &c->cause) == CONC_OK;
  conc__unlock(&c->lock);
  return has;
}

int conc_ctx_value(conc_ctx *c, const conc_msg *key, conc_msg *out) {
  for (; c; c = c->parent) /* key and value never change: no lock */
    if (c->has_value && conc_msg_equal(&c->key, key))
      return conc_msg_copy(out, &c->value) == CONC_OK;
  return 0;
}
