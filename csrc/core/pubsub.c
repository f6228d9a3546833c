/*
 * pubsub.c: publish/subscribe, the chapter's PubSub made shared.
 *
 * Each subscriber has a buffered, receive-only channel of its own. A
 * publish never blocks: a subscriber whose channel is full misses the
 * message and its `dropped` count grows (Go's `select { case ch <- msg:
 * default: }`). The message is encoded once by the caller; every
 * subscriber receives a copy, which shares the encoded block (msg.c), so
 * a publish to 100 subscribers costs 100 increments, not 100 encodings.
 *
 * Locking: `lock` guards the subscriber list and every subscriber's
 * fields. A publish holds it while it tries each channel (taking that
 * channel's lock inside it: lock order pubsub, then channel; a channel
 * lock is a leaf), so an unsubscribe cannot close a channel under a
 * publish; the receivers it must wake are collected and woken after both
 * locks are released. Go's PubSub uses an RWMutex so that publishers run
 * side by side; here each publish is a few hundred nanoseconds of
 * try-sends, which the plain lock serializes without readers' counts.
 */
#include <string.h>
#include "internal.h"

typedef struct ps_str {
  size_t len;
  char *s;
} ps_str;

typedef struct ps_sub {
  struct ps_sub *next;
  ps_str id;
  ps_str *topics;
  size_t ntopics;
  conc_chan *ch;            /* owned: closed on unsubscribe */
  int64_t dropped;          /* messages it missed, its channel full */
} ps_sub;

struct conc_pubsub {
  conc_obj hdr;
  conc__lock_t lock;
  ps_sub *subs;             /* lock */
  size_t nsubs;             /* lock */
};

static bool str_eq(const ps_str *a, const char *s, size_t len) {
  return a->len == len && memcmp(a->s, s, len) == 0;
}

static bool str_dup(ps_str *dst, const char *s, size_t len) {
  dst->len = len;
  dst->s = malloc(len + 1);
  if (dst->s == NULL) return false;
  memcpy(dst->s, s, len);
  dst->s[len] = '\0';
  return true;
}

/* Frees sub; closes its channel first (its readers' range ends). */
static void sub_free(ps_sub *sub) {
  if (sub->ch) {
    conc__chan_close_owned(sub->ch);
    conc_release(&sub->ch->hdr);
  }
  for (size_t i = 0; i < sub->ntopics; i++) free(sub->topics[i].s);
  free(sub->topics);
  free(sub->id.s);
  free(sub);
}

static void pubsub_destroy(conc_obj *o) {
  conc_pubsub *ps = (conc_pubsub *)o;
  while (ps->subs) {
    ps_sub *next = ps->subs->next;
    sub_free(ps->subs);
    ps->subs = next;
  }
  free(ps);
}

const conc_type conc_pubsub_type = {"conc.pubsub", pubsub_destroy};

conc_pubsub *conc_pubsub_new(void) {
  conc_pubsub *ps = calloc(1, sizeof *ps);
  if (ps == NULL) return NULL;
  conc_obj_init(&ps->hdr, &conc_pubsub_type);
  return ps;
}

/* A new subscriber, not linked; NULL when memory runs out. */
static ps_sub *sub_new(const char *id, size_t idlen, const char *const *topics,
                       const size_t *lens, size_t ntopics, size_t cap) {
  ps_sub *sub = calloc(1, sizeof *sub);
  if (sub == NULL) return NULL;
  bool ok = str_dup(&sub->id, id, idlen) &&
            (ntopics == 0 ||
             (sub->topics = calloc(ntopics, sizeof *sub->topics)) != NULL);
  for (size_t i = 0; ok && i < ntopics; i++, sub->ntopics++)
    ok = str_dup(&sub->topics[i], topics[i], lens[i]);
  if (ok) ok = (sub->ch = conc__chan_new_owned(cap)) != NULL;
  if (!ok) {
    sub_free(sub);
    return NULL;
  }
  return sub;
}

/* The link that points at the subscriber `id` (or at NULL). Lock held. */
static ps_sub **find(conc_pubsub *ps, const char *id, size_t len) {
  ps_sub **link = &ps->subs;
  while (*link && !str_eq(&(*link)->id, id, len)) link = &(*link)->next;
  return link;
}

int conc_pubsub_subscribe(conc_pubsub *ps, const char *id, size_t idlen,
                          const char *const *topics, const size_t *lens,
                          size_t ntopics, size_t cap, conc_chan **out) {
  ps_sub *sub = sub_new(id, idlen, topics, lens, ntopics, cap);
  if (sub == NULL) return CONC_ENOMEM;
  conc_retain(&sub->ch->hdr);
  *out = sub->ch;
  conc__lock(&ps->lock);
  ps_sub **link = find(ps, id, idlen);
  ps_sub *old = *link;
  sub->next = old ? old->next : NULL;
  *link = sub;  /* replaces a subscriber of the same id, in place */
  if (old == NULL) ps->nsubs++;
  conc__unlock(&ps->lock);
  if (old) sub_free(old);  /* closes its channel: no lock held */
  return CONC_OK;
}

int conc_pubsub_unsubscribe(conc_pubsub *ps, const char *id, size_t len) {
  conc__lock(&ps->lock);
  ps_sub **link = find(ps, id, len);
  ps_sub *sub = *link;
  if (sub) {
    *link = sub->next;
    ps->nsubs--;
  }
  conc__unlock(&ps->lock);
  if (sub) sub_free(sub);
  return sub != NULL;
}

static bool subscribed(const ps_sub *sub, const char *topic, size_t len) {
  for (size_t i = 0; i < sub->ntopics; i++)
    if (str_eq(&sub->topics[i], topic, len)) return true;
  return false;
}

/* Tries to give sub a copy of m (ps->lock held); a full channel misses
 * it. True if delivered; *wake as conc__chan_try_send sets it. */
static bool offer(ps_sub *sub, const conc_msg *m, conc_waiter **wake) {
  conc_msg copy;
  conc_msg_copy(&copy, m);
  conc__lock(&sub->ch->lock);
  int rc = conc__chan_try_send(sub->ch, &copy, wake);
  conc__unlock(&sub->ch->lock);
  if (rc == CONC_OK) return true;
  conc_msg_free(&copy);
  sub->dropped++;
  return false;
}

#define WAKES_ON_STACK 32

int conc_pubsub_publish(conc_pubsub *ps, const char *topic, size_t len,
                        const conc_msg *m) {
  conc_waiter *stack[WAKES_ON_STACK], **wakes = stack;
  size_t nwakes = 0;
  int reached = 0;
  conc__lock(&ps->lock);
  if (ps->nsubs > WAKES_ON_STACK &&
      (wakes = malloc(ps->nsubs * sizeof *wakes)) == NULL) {
    conc__unlock(&ps->lock);
    return CONC_ENOMEM;
  }
  for (ps_sub *sub = ps->subs; sub; sub = sub->next) {
    if (!subscribed(sub, topic, len)) continue;
    conc_waiter *w;
    if (offer(sub, m, &w)) reached++;
    if (w) wakes[nwakes++] = w;
  }
  conc__unlock(&ps->lock);
  for (size_t i = 0; i < nwakes; i++) conc__waiter_wake(wakes[i]);
  if (wakes != stack) free(wakes);
  return reached;
}

int64_t conc_pubsub_dropped(conc_pubsub *ps, const char *id, size_t len) {
  conc__lock(&ps->lock);
  ps_sub *sub = *find(ps, id, len);
  int64_t n = sub ? sub->dropped : -1;
  conc__unlock(&ps->lock);
  return n;
}

size_t conc_pubsub_count(conc_pubsub *ps) {
  conc__lock(&ps->lock);
  size_t n = ps->nsubs;
  conc__unlock(&ps->lock);
  return n;
}
