/* channel.c: messages between threads, each with its own loop. Any thread
 * sends; one receiver waits on its loop. The queue is guarded by a mutex, and
 * a waiting receiver is woken through a uv_async_t made for that wait on the
 * receiver's loop (uv_async_send is the one libuv call that is safe from
 * another thread): nothing polls, and a channel nobody waits on keeps no
 * loop alive. Also the thin thread wrapper the worker servers start with. */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

typedef struct message {
  struct message *next;
  size_t len;
  char data[];
} message;

/* The receiver's wake-up for one wait: lives from cn_channel_wait until its
 * async handle's close callback. */
typedef struct wake {
  uv_async_t async;
  cn_channel *ch;   /* a reference while attached */
  cn_list waiters;  /* the one waiter */
} wake;

struct cn_channel {
  uv_mutex_t lock; /* guards everything below */
  message *head, *tail;
  unsigned refs;
  wake *wake;      /* the receiver's wait in progress, or NULL */
};

int cn_channel_new(cn_channel **out) {
  cn_channel *ch = calloc(1, sizeof *ch);
  if (!ch) return UV_ENOMEM;
  int rc = uv_mutex_init(&ch->lock);
  if (rc < 0) {
    free(ch);
    return rc;
  }
  ch->refs = 1;
  *out = ch;
  return 0;
}

void cn_channel_ref(cn_channel *ch) {
  uv_mutex_lock(&ch->lock);
  ch->refs++;
  uv_mutex_unlock(&ch->lock);
}

void cn_channel_unref(cn_channel *ch) {
  uv_mutex_lock(&ch->lock);
  CN_ASSERT(ch->refs > 0);
  unsigned left = --ch->refs;
  uv_mutex_unlock(&ch->lock);
  if (left > 0) return;
  CN_ASSERT(ch->wake == NULL); /* a wait holds a reference */
  while (ch->head) {
    message *m = ch->head;
    ch->head = m->next;
    free(m);
  }
  uv_mutex_destroy(&ch->lock);
  free(ch);
}

/* Under the lock: the wait (if any) is no longer the channel's; the caller
 * closes its handle and drops its reference outside the lock. */
static wake *detach_wake(cn_channel *ch) {
  wake *wk = ch->wake;
  ch->wake = NULL;
  return wk;
}

int cn_channel_send(cn_channel *ch, const char *p, size_t n) {
  message *m = malloc(sizeof *m + n);
  if (!m) return UV_ENOMEM;
  m->next = NULL;
  m->len = n;
  memcpy(m->data, p, n);
  uv_mutex_lock(&ch->lock);
  if (ch->tail)
    ch->tail->next = m;
  else
    ch->head = m;
  ch->tail = m;
  /* Only under the lock: the receiver closes the handle after detaching it
   * under the same lock, so no send can reach a closing handle. */
  if (ch->wake) uv_async_send(&ch->wake->async);
  uv_mutex_unlock(&ch->lock);
  return 0;
}

int cn_channel_take(cn_channel *ch, char **p, size_t *n) {
  uv_mutex_lock(&ch->lock);
  message *m = ch->head;
  if (m) {
    ch->head = m->next;
    if (!ch->head) ch->tail = NULL;
  }
  uv_mutex_unlock(&ch->lock);
  if (!m) return UV_EAGAIN;
  char *copy = malloc(m->len ? m->len : 1);
  if (!copy) { /* put it back: nothing is lost */
    uv_mutex_lock(&ch->lock);
    m->next = ch->head;
    ch->head = m;
    if (!ch->tail) ch->tail = m;
    uv_mutex_unlock(&ch->lock);
    return UV_ENOMEM;
  }
  memcpy(copy, m->data, m->len);
  *p = copy;
  *n = m->len;
  free(m);
  return 0;
}

static void on_wake_closed(uv_handle_t *handle) { free(CN_CONTAINER_OF(handle, wake, async)); }

/* Ends a wait whose wake the receiver detached: its handle closes and its
 * reference on the channel goes. */
static void end_wake(wake *wk) {
  cn_channel *ch = wk->ch;
  wk->ch = NULL;
  uv_close((uv_handle_t *)&wk->async, on_wake_closed);
  cn_channel_unref(ch);
}

static void on_async(uv_async_t *handle) {
  wake *wk = CN_CONTAINER_OF(handle, wake, async);
  if (!wk->ch) return; /* the wait was cancelled meanwhile */
  uv_mutex_lock(&wk->ch->lock);
  int mine = wk->ch->wake == wk;
  if (mine) detach_wake(wk->ch);
  uv_mutex_unlock(&wk->ch->lock);
  if (!mine) return;
  cn_list *link = cn_list_first(&wk->waiters);
  end_wake(wk);
  if (link) cn__waiter_fire(CN_CONTAINER_OF(link, cn_waiter, link_), 0);
}

static void on_cancel(void *owner) {
  wake *wk = owner;
  uv_mutex_lock(&wk->ch->lock);
  int mine = wk->ch->wake == wk;
  if (mine) detach_wake(wk->ch);
  uv_mutex_unlock(&wk->ch->lock);
  if (mine) end_wake(wk);
}

int cn_channel_wait(cn_channel *ch, cn_loop *loop, cn_waiter *w) {
  wake *wk = calloc(1, sizeof *wk);
  if (!wk) return UV_ENOMEM;
  int rc = uv_async_init(cn_loop_uv(loop), &wk->async, on_async);
  if (rc < 0) {
    free(wk);
    return rc;
  }
  cn_list_init(&wk->waiters);
  cn_channel_ref(ch);
  wk->ch = ch;
  uv_mutex_lock(&ch->lock);
  if (ch->wake) { /* one receiver at a time */
    uv_mutex_unlock(&ch->lock);
    end_wake(wk);
    return CN_EBUSY;
  }
  ch->wake = wk;
  /* A message already queued wakes the wait on the next turn, never now. */
  if (ch->head) uv_async_send(&wk->async);
  uv_mutex_unlock(&ch->lock);
  cn__waiter_attach(&wk->waiters, w, loop, 0);
  cn__waiter_on_cancel(w, on_cancel, wk);
  return 0;
}

/* ---------------------------------------------------------------- thread */

struct cn_thread {
  uv_thread_t tid;
  void (*fn)(void *arg);
  void *arg;
};

static void thread_main(void *arg) {
  cn_thread *t = arg;
  t->fn(t->arg);
}

int cn_thread_start(cn_thread **out, void (*fn)(void *arg), void *arg) {
  cn_thread *t = malloc(sizeof *t);
  if (!t) return UV_ENOMEM;
  t->fn = fn;
  t->arg = arg;
  int rc = uv_thread_create(&t->tid, thread_main, t);
  if (rc < 0) {
    free(t);
    return rc;
  }
  *out = t;
  return 0;
}

int cn_thread_join(cn_thread *t) {
  int rc = uv_thread_join(&t->tid);
  free(t);
  return rc;
}
