/*
 * workpool.c: what a pool of workers (conc.workpool) and a pipeline
 * stage (conc.stage) share between the states that hold them: the
 * channel jobs come from, the one results go to, the context that stops
 * them, and how many workers still run. The workers are the binding's
 * (each a conc.go task running its loop); the last to stop closes the
 * results and the done channel, which is how a stage's output closes
 * "when its input is drained, its workers all exited", and how
 * p:close() and p:wait() know that every queued job was done.
 *
 * Locking: `lock` guards `live` and `closed`; it is a leaf (the channels
 * are closed after it is released).
 */
#include "internal.h"

struct conc_workpool {
  conc_obj hdr;
  conc__lock_t lock;
  int live;                 /* lock: workers not stopped yet */
  bool closed;              /* lock: no more jobs (close() was called) */
  bool own_jobs;            /* close() closes jobs; fixed */
  conc_chan *jobs;          /* retained; fixed */
  conc_chan *results;       /* retained; fixed */
  conc_chan *done;          /* owned: closed when live reaches 0; fixed */
  conc_ctx *ctx;            /* retained, or NULL; fixed */
};

static void workpool_destroy(conc_obj *o) {
  conc_workpool *p = (conc_workpool *)o;
  conc_release(&p->jobs->hdr);
  conc_release(&p->results->hdr);
  conc_release(&p->done->hdr);
  if (p->ctx) conc_release((conc_obj *)p->ctx);
  free(p);
}

const conc_type conc_workpool_type = {"conc.workpool", workpool_destroy};

conc_workpool *conc_workpool_new(int workers, conc_chan *jobs,
                                 conc_chan *results, conc_ctx *ctx,
                                 int own_jobs) {
  conc_workpool *p = calloc(1, sizeof *p);
  if (p == NULL || (p->done = conc__chan_new_owned(0)) == NULL) {
    free(p);
    return NULL;
  }
  conc_obj_init(&p->hdr, &conc_workpool_type);
  p->live = workers;
  p->own_jobs = own_jobs;
  conc_retain(&jobs->hdr);
  p->jobs = jobs;
  conc_retain(&results->hdr);
  p->results = results;
  if (ctx) conc_retain((conc_obj *)ctx);
  p->ctx = ctx;
  return p;
}

conc_chan *conc_workpool_jobs(conc_workpool *p) { return p->jobs; }
conc_chan *conc_workpool_results(conc_workpool *p) { return p->results; }
conc_ctx *conc_workpool_ctx(conc_workpool *p) { return p->ctx; }
conc_chan *conc_workpool_done(conc_workpool *p) { return p->done; }

int conc_workpool_close(conc_workpool *p) {
  conc__lock(&p->lock);
  bool first = !p->closed;
  p->closed = true;
  conc__unlock(&p->lock);
  if (first && p->own_jobs) conc__chan_close_owned(p->jobs);
  return first;
}

int conc_workpool_closed(conc_workpool *p) {
  conc__lock(&p->lock);
  bool closed = p->closed;
  conc__unlock(&p->lock);
  return closed;
}

/* Takes n workers off the count; the last one out closes. */
static void stopped(conc_workpool *p, int n) {
  conc__lock(&p->lock);
  p->live -= n;
  bool last = p->live == 0;
  conc__unlock(&p->lock);
  if (!last) return;
  /* No worker will take a job any more: a submitter blocked on a full
   * queue (the pool's ctx ended) must not wait forever. */
  if (p->own_jobs) conc__chan_close_owned(p->jobs);
  conc__chan_close_owned(p->results);
  conc__chan_close_owned(p->done);
}

void conc_workpool_exit(conc_workpool *p) { stopped(p, 1); }

void conc_workpool_unstarted(conc_workpool *p, int n) {
  if (n > 0) stopped(p, n);
}

int conc_workpool_live(conc_workpool *p) {
  conc__lock(&p->lock);
  int n = p->live;
  conc__unlock(&p->lock);
  return n;
}
