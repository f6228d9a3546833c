/*
 * sem.c: a weighted semaphore, golang.org/x/sync/semaphore's Weighted.
 *
 * A request that fits while nobody waits takes its weight at once.
 * Otherwise it joins a FIFO queue with a channel of its own (`ready`,
 * receive-only), closed when its weight is granted: the binding waits
 * for that close through the one wait path (lconc_wait_closed), so a
 * timeout, a context, deadlock detection and conc.workers() labels come
 * with it, as for a WaitGroup.
 *
 * Fairness, as x/sync explains it: requests are granted strictly in
 * order, and the first that does not fit stops the granting. Letting
 * smaller requests behind it pass would starve a large one for ever
 * under a steady stream of small ones (x/sync's TestLargeAcquireDoesntStarve).
 * A request that gives up while at the head of the queue grants those
 * behind it that now fit, or they would wait on a request that is gone.
 *
 * Locking: `lock` is a leaf. Granting marks requests under it; their
 * channels are closed after it is released (close wakes threads), in
 * batches of GRANT_BATCH, since the request that owns a channel may end
 * (and free itself) as soon as the lock is released: the channels are
 * retained while they wait to be closed.
 */
#include "internal.h"

#define GRANT_BATCH 16

struct conc_sem_wait {
  conc_sem_wait *prev, *next;  /* the queue (sem lock) */
  int64_t n;                   /* the weight asked for */
  conc_chan *ready;            /* closed once granted (owned) */
  bool granted;                /* sem lock: set when it leaves the queue */
};

/* size is fixed; `lock` guards cur and the queue. Invariant: 0 <= cur
 * <= size, and the head of the queue, if any, does not fit (else it
 * would have been granted). */
struct conc_sem {
  conc_obj hdr;
  conc__lock_t lock;
  int64_t size;
  int64_t cur;                 /* weight held */
  conc_sem_wait *head, *tail;  /* waiting requests, oldest first */
};

static void sem_destroy(conc_obj *o) {
  free(o);  /* a queued request holds a reference: the queue is empty */
}

const conc_type conc_sem_type = {"conc.semaphore", sem_destroy};

conc_sem *conc_sem_new(int64_t size) {
  if (size < 0) return NULL;
  conc_sem *s = calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  conc_obj_init(&s->hdr, &conc_sem_type);
  s->size = size;
  return s;
}

int64_t conc_sem_size(const conc_sem *s) { return s->size; }

int64_t conc_sem_held(conc_sem *s) {
  conc__lock(&s->lock);
  int64_t cur = s->cur;
  conc__unlock(&s->lock);
  return cur;
}

static void unlink_wait(conc_sem *s, conc_sem_wait *w) {
  if (w->prev) w->prev->next = w->next;
  else s->head = w->next;
  if (w->next) w->next->prev = w->prev;
  else s->tail = w->prev;
  w->prev = w->next = NULL;
}

/* Grants the requests at the head that fit, up to GRANT_BATCH of them,
 * retaining their channels into out (lock held). Returns how many;
 * GRANT_BATCH means there may be more. */
static int grant_batch(conc_sem *s, conc_chan **out) {
  int k = 0;
  while (k < GRANT_BATCH && s->head && s->size - s->cur >= s->head->n) {
    conc_sem_wait *w = s->head;
    s->cur += w->n;
    w->granted = true;
    unlink_wait(s, w);
    conc_retain((conc_obj *)w->ready);
    out[k++] = w->ready;
  }
  return k;
}

/* Closes (and releases) the k channels of a batch, with no lock held. */
static void close_batch(conc_chan **chans, int k) {
  for (int i = 0; i < k; i++) {
    conc__chan_close_owned(chans[i]);
    conc_release((conc_obj *)chans[i]);
  }
}

/* Entered with the lock held, leaves it released: grants every request
 * that now fits, in order, and wakes them. */
static void grant_and_unlock(conc_sem *s) {
  conc_chan *chans[GRANT_BATCH];
  for (;;) {
    int k = grant_batch(s, chans);
    conc__unlock(&s->lock);
    close_batch(chans, k);
    if (k < GRANT_BATCH) return;
    conc__lock(&s->lock);
  }
}

int conc_sem_try_acquire(conc_sem *s, int64_t n) {
  conc__lock(&s->lock);
  bool ok = s->head == NULL && n >= 0 && s->size - s->cur >= n;
  if (ok) s->cur += n;
  conc__unlock(&s->lock);
  return ok;
}

/* A new request for n, its channel made (outside the lock: it may
 * fail) before it is queued. */
static conc_sem_wait *new_wait(int64_t n) {
  conc_sem_wait *w = calloc(1, sizeof *w);
  if (w == NULL) return NULL;
  w->n = n;
  w->ready = conc__chan_new_owned(0);
  if (w->ready == NULL) {
    free(w);
    return NULL;
  }
  return w;
}

static void free_wait(conc_sem_wait *w) {
  conc_release((conc_obj *)w->ready);
  free(w);
}

/* A request larger than the semaphore can never be granted: as in
 * x/sync, it waits (until its wait ends otherwise: a timeout, a
 * context) outside the queue, so the requests behind it are not held
 * up by one that is doomed. An errgroup limited to 0 waits so. */
int conc_sem_acquire(conc_sem *s, int64_t n, conc_sem_wait **wait) {
  if (n < 0) return CONC_EINVAL;
  if (conc_sem_try_acquire(s, n)) return CONC_OK;
  conc_sem_wait *w = new_wait(n);
  if (w == NULL) return CONC_ENOMEM;
  conc__lock(&s->lock);
  conc_retain(&s->hdr);  /* the request's: see sem_destroy */
  if (n > s->size) {
    conc__unlock(&s->lock);
    *wait = w;
    return CONC_EAGAIN;
  }
  if (s->head == NULL && s->size - s->cur >= n) {  /* freed meanwhile */
    s->cur += n;
    conc__unlock(&s->lock);
    free_wait(w);
    conc_release(&s->hdr);
    return CONC_OK;
  }
  w->prev = s->tail;
  if (s->tail) s->tail->next = w;
  else s->head = w;
  s->tail = w;
  conc__unlock(&s->lock);
  *wait = w;
  return CONC_EAGAIN;
}

conc_chan *conc_sem_wait_chan(const conc_sem_wait *wait) { return wait->ready; }

int conc_sem_wait_end(conc_sem *s, conc_sem_wait *w) {
  conc__lock(&s->lock);
  bool granted = w->granted;
  if (granted || w->n > s->size) {  /* the latter never queued */
    conc__unlock(&s->lock);
  } else {
    bool was_head = s->head == w;
    unlink_wait(s, w);
    if (was_head) grant_and_unlock(s);  /* those behind it may fit */
    else conc__unlock(&s->lock);
  }
  free_wait(w);
  conc_release(&s->hdr);
  return granted;
}

int conc_sem_release(conc_sem *s, int64_t n) {
  conc__lock(&s->lock);
  if (n < 0 || n > s->cur) {
    conc__unlock(&s->lock);
    return CONC_EHELD;
  }
  s->cur -= n;
  if (s->head) grant_and_unlock(s);
  else conc__unlock(&s->lock);
  return CONC_OK;
}
