/* loop.c: cn_loop, the core's state for one uv_loop_t: owned or borrowed,
 * the queue of tasks for the next turn, the set of live objects, the read
 * scratch buffer and the rate-limited logger. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "stream.h"

struct cn_loop {
  uv_loop_t *uv;
  uv_loop_t owned;
  int is_owned;
  int running;
  uv_prepare_t prepare; /* runs queued tasks before the loop blocks */
  uv_idle_t idle;       /* keeps the poll from blocking while tasks remain */
  cn_task *head, *tail;
  size_t ntasks;
  cn_list objects;
  size_t live;
  char *scratch;        /* see the lending rule in internal.h */
  int scratch_lent;
  cn_log_fn log_fn;
  void *log_data;
  uint64_t log_window_ms;
  unsigned log_count, log_suppressed;
  int handles_closed;
  struct cn__spare *spares;
  unsigned nspares;
  cn_loop_stats stats;  /* counters; bytes of closed streams only */
  uint64_t lag_window_ms, lag_max_ms, lag_prev_max_ms; /* see cn__loop_note_lag */
};

static void free_spares(cn_loop *loop);

/* Passes of the task queue per loop turn before yielding to I/O. */
#define CN_TASK_PASSES 16

static void run_tasks(uv_prepare_t *handle);

static void idle_noop(uv_idle_t *handle) { (void)handle; }

int cn_loop_new(cn_loop **out, uv_loop_t *host) {
  cn_loop *loop = calloc(1, sizeof *loop);
  if (!loop) return UV_ENOMEM;
  if (host) {
    loop->uv = host;
  } else {
    int rc = uv_loop_init(&loop->owned);
    if (rc < 0) {
      free(loop);
      return rc;
    }
    loop->uv = &loop->owned;
    loop->is_owned = 1;
  }
  /* Neither can fail (libuv only links the handle into the loop). */
  int rc = uv_prepare_init(loop->uv, &loop->prepare);
  CN_ASSERT(rc == 0);
  rc = uv_idle_init(loop->uv, &loop->idle);
  CN_ASSERT(rc == 0);
  (void)rc;
  cn_list_init(&loop->objects);
  *out = loop;
  return 0;
}

uv_loop_t *cn_loop_uv(cn_loop *loop) { return loop->uv; }
int cn_loop_running(const cn_loop *loop) { return loop->running; }
int cn_loop_alive(cn_loop *loop) { return loop->head != NULL || uv_loop_alive(loop->uv); }
void cn_loop_stop(cn_loop *loop) { uv_stop(loop->uv); }
uint64_t cn_loop_now(cn_loop *loop) { return uv_now(loop->uv); }
void cn_loop_update_time(cn_loop *loop) { uv_update_time(loop->uv); }
double cn_loop_hrnow(void) { return (double)uv_hrtime() / 1e9; }
int cn_loop_backend_fd(cn_loop *loop) { return uv_backend_fd(loop->uv); }
int cn_loop_backend_timeout(cn_loop *loop) {
  if (loop->head) return 0;
  return uv_loop_alive(loop->uv) ? uv_backend_timeout(loop->uv) : -1; /* -1: nothing scheduled */
}

int cn_loop_run(cn_loop *loop, uv_run_mode mode) {
  if (loop->running) return UV_EBUSY;
  loop->running = 1;
  int rc = uv_run(loop->uv, mode);
  loop->running = 0;
  return rc;
}

void cn_loop_post(cn_loop *loop, cn_task *task, cn_task_fn fn) {
  if (task->queued_) return;
  task->fn_ = fn;
  task->next_ = NULL;
  task->queued_ = 1;
  if (loop->tail)
    loop->tail->next_ = task;
  else
    loop->head = task;
  loop->tail = task;
  loop->ntasks++;
  if (!uv_is_active((uv_handle_t *)&loop->prepare)) (void)uv_prepare_start(&loop->prepare, run_tasks); /* fails only without a callback */
}

void cn_loop_unpost(cn_loop *loop, cn_task *task) {
  if (!task->queued_) return;
  cn_task *prev = NULL, *t = loop->head;
  while (t && t != task) {
    prev = t;
    t = t->next_;
  }
  CN_ASSERT(t == task);
  if (prev)
    prev->next_ = task->next_;
  else
    loop->head = task->next_;
  if (loop->tail == task) loop->tail = prev;
  loop->ntasks--;
  task->queued_ = 0;
  task->next_ = NULL;
}

/* Runs the tasks queued when the pass starts; tasks they queue run in the
 * next pass. After CN_TASK_PASSES the loop polls I/O without blocking and
 * comes back, so a fiber that keeps re-queuing itself cannot starve I/O. */
static void run_tasks(uv_prepare_t *handle) {
  cn_loop *loop = CN_CONTAINER_OF(handle, cn_loop, prepare);
  for (int pass = 0; pass < CN_TASK_PASSES && loop->head; pass++) {
    /* A pass runs at most the tasks queued when it starts (fewer if some are unposted). */
    for (size_t n = loop->ntasks; n > 0 && loop->head; n--) {
      cn_task *t = loop->head;
      loop->head = t->next_;
      if (!loop->head) loop->tail = NULL;
      t->next_ = NULL;
      t->queued_ = 0;
      loop->ntasks--;
      t->fn_(t);
    }
  }
  if (loop->head) {
    if (!uv_is_active((uv_handle_t *)&loop->idle)) (void)uv_idle_start(&loop->idle, idle_noop); /* as above */
  } else {
    uv_prepare_stop(&loop->prepare);
    uv_idle_stop(&loop->idle);
  }
}

void cn__object_add(cn_loop *loop, cn__object *obj, void (*close_all)(cn__object *, int)) {
  obj->close_all = close_all;
  cn_list_push(&loop->objects, &obj->link);
  loop->live++;
}

void cn__object_remove(cn_loop *loop, cn__object *obj) {
  CN_ASSERT(loop->live > 0);
  cn_list_remove(&obj->link);
  loop->live--;
}

size_t cn_loop_live(const cn_loop *loop) { return loop->live; }

cn_loop_stats *cn__loop_stats(cn_loop *loop) { return &loop->stats; }

/* The lag reported is the largest of the timers fired in the current and the
 * previous one-second window, not the last timer's alone: a late deadline in
 * the binding is re-armed for 1 ms (so that the poll runs first), and that
 * timer, on time, would hide the lag at once. */
#define CN_LAG_WINDOW_MS 1000u

void cn__loop_note_lag(cn_loop *loop, uint64_t now, uint64_t lag_ms) {
  uint64_t age = now - loop->lag_window_ms;
  if (age >= CN_LAG_WINDOW_MS) {
    loop->lag_prev_max_ms = age < 2 * CN_LAG_WINDOW_MS ? loop->lag_max_ms : 0;
    loop->lag_max_ms = 0;
    loop->lag_window_ms = now;
  }
  loop->lag_max_ms = CN_MAX(loop->lag_max_ms, lag_ms);
}

static double recent_lag(const cn_loop *loop) {
  uint64_t age = uv_now(loop->uv) - loop->lag_window_ms, ms = 0;
  if (age < CN_LAG_WINDOW_MS)
    ms = CN_MAX(loop->lag_max_ms, loop->lag_prev_max_ms);
  else if (age < 2 * CN_LAG_WINDOW_MS)
    ms = loop->lag_max_ms;
  return (double)ms / 1000.0;
}

void cn_loop_stats_get(const cn_loop *loop, cn_loop_stats *out) {
  *out = loop->stats;
  out->loop_lag = recent_lag(loop);
  for (const cn_list *link = loop->objects.next; link != &loop->objects; link = link->next)
    cn__stream_add_stats(CN_CONTAINER_OF(link, cn__object, link), out);
}

/* close_all may remove the object (and others) from the set, so walk a snapshot
 * by always restarting from objects not yet visited. */
void cn_loop_close_all(cn_loop *loop, int abort) {
  cn_list visited;
  cn_list_init(&visited);
  cn_list *link;
  while ((link = cn_list_first(&loop->objects)) != NULL) {
    cn__object *obj = CN_CONTAINER_OF(link, cn__object, link);
    cn_list_remove(link);
    cn_list_push(&visited, link);
    obj->close_all(obj, abort);
  }
  /* Move the survivors (still closing) back into the set. */
  while ((link = cn_list_first(&visited)) != NULL) {
    cn_list_remove(link);
    cn_list_push(&loop->objects, link);
  }
}

char *cn__loop_scratch_lend(cn_loop *loop, size_t *size) {
  CN_ASSERT(!loop->scratch_lent);
  *size = 0;
  if (loop->scratch_lent) return NULL;
  if (!loop->scratch) loop->scratch = malloc(CN_SCRATCH_SIZE);
  if (!loop->scratch) return NULL;
  loop->scratch_lent = 1;
  *size = CN_SCRATCH_SIZE;
  return loop->scratch;
}

int cn__loop_scratch_owns(const cn_loop *loop, const char *p) { return p && p == loop->scratch; }

void cn__loop_scratch_return(cn_loop *loop) {
  CN_ASSERT(loop->scratch_lent);
  loop->scratch_lent = 0;
}

static void close_walk(uv_handle_t *handle, void *arg) {
  (void)arg;
  if (!uv_is_closing(handle)) uv_close(handle, NULL);
}

/* For a borrowed loop the host runs these close callbacks later; the
 * struct goes with the last of them. */
static void handle_closed(uv_handle_t *handle) {
  cn_loop *loop = handle->data;
  if (++loop->handles_closed == 2 && !loop->is_owned) free(loop);
}

void cn_loop_free(cn_loop *loop) {
  CN_ASSERT(loop->live == 0 && loop->head == NULL && !loop->scratch_lent);
  free(loop->scratch);
  loop->scratch = NULL;
  free_spares(loop);
  loop->prepare.data = loop->idle.data = loop;
  uv_close((uv_handle_t *)&loop->prepare, handle_closed);
  uv_close((uv_handle_t *)&loop->idle, handle_closed);
  if (!loop->is_owned) return;
  uv_walk(loop->uv, close_walk, NULL);
  uv_run(loop->uv, UV_RUN_DEFAULT);
  uv_loop_close(loop->uv);
  free(loop);
}

void cn_loop_set_logger(cn_loop *loop, cn_log_fn fn, void *data) {
  loop->log_fn = fn;
  loop->log_data = data;
}

/* At most CN_LOG_BURST lines per second; the rest are counted and reported
 * with the first line of the next window. */
void cn_loop_logf(cn_loop *loop, const char *fmt, ...) {
  if (!loop->log_fn) return;
  uint64_t now = uv_now(loop->uv);
  if (now - loop->log_window_ms >= 1000) {
    if (loop->log_suppressed) {
      char note[96];
      snprintf(note, sizeof note, "coronet: %u similar messages suppressed", loop->log_suppressed);
      loop->log_fn(loop->log_data, note);
    }
    loop->log_window_ms = now;
    loop->log_count = loop->log_suppressed = 0;
  }
  if (loop->log_count >= CN_LOG_BURST) {
    loop->log_suppressed++;
    return;
  }
  loop->log_count++;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  loop->log_fn(loop->log_data, msg);
}

void cn_ignore_sigpipe(void) {
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
  }
}

/* A spare block pool: buffers that empty give their block back, and the
 * next buffer to need one takes it. At most CN_POOL_MAX spares are kept. */
#define CN_POOL_MAX 256

typedef struct cn__spare {
  struct cn__spare *next;
} cn__spare;

void cn__loop_buf_acquire(cn_loop *loop, cn_buf *b) {
  if (b->base || !loop->spares) return;
  cn__spare *block = loop->spares;
  loop->spares = block->next;
  loop->nspares--;
  b->base = (char *)block;
  b->cap = CN_BLOCK_SIZE;
  b->start = b->end = 0;
}

void cn__loop_buf_release(cn_loop *loop, cn_buf *b) {
  if (!b->base) return;
  if (b->cap == CN_BLOCK_SIZE && loop->nspares < CN_POOL_MAX) {
    cn__spare *block = (cn__spare *)b->base;
    block->next = loop->spares;
    loop->spares = block;
    loop->nspares++;
    cn_buf_init(b);
  } else {
    cn_buf_free(b);
  }
}

static void free_spares(cn_loop *loop) {
  while (loop->spares) {
    cn__spare *next = loop->spares->next;
    free(loop->spares);
    loop->spares = next;
  }
  loop->nspares = 0;
}
