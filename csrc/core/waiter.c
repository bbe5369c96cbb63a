/* waiter.c: attaching a caller's waiter to an object and delivering its one
 * result, now (from a libuv callback) or on the next loop turn. */
#include "internal.h"

void cn_waiter_init(cn_waiter *w, cn_wait_cb cb, void *data) {
  cn_list_init(&w->link_);
  w->cb_ = cb;
  w->want_ = 0;
  w->status_ = 0;
  w->task_.queued_ = 0;
  w->task_.next_ = NULL;
  w->loop_ = NULL;
  w->on_cancel_ = NULL;
  w->owner_ = NULL;
  w->data = data;
}

int cn_waiter_pending(const cn_waiter *w) { return cn_list_linked(&w->link_) || w->task_.queued_; }

/* Leaves the object's list; the object is no longer told. */
static void unlink_waiter(cn_waiter *w) {
  if (cn_list_linked(&w->link_)) cn_list_remove(&w->link_);
  w->on_cancel_ = NULL;
  w->owner_ = NULL;
}

/* The owner gives up: the object waited on is told after the waiter left,
 * since the wait it served may have kept something running. */
void cn_waiter_cancel(cn_waiter *w) {
  void (*on_cancel)(void *) = cn_list_linked(&w->link_) ? w->on_cancel_ : NULL;
  void *owner = w->owner_;
  unlink_waiter(w);
  if (w->task_.queued_) cn_loop_unpost(w->loop_, &w->task_);
  if (on_cancel) on_cancel(owner);
}

void cn__waiter_attach(cn_list *head, cn_waiter *w, cn_loop *loop, size_t want) {
  CN_ASSERT(!cn_waiter_pending(w));
  w->loop_ = loop;
  w->want_ = want;
  w->on_cancel_ = NULL;
  w->owner_ = NULL;
  cn_list_push(head, &w->link_);
}

void cn__waiter_on_cancel(cn_waiter *w, void (*fn)(void *owner), void *owner) {
  CN_ASSERT(cn_list_linked(&w->link_));
  w->on_cancel_ = fn;
  w->owner_ = owner;
}

void cn__waiter_fire(cn_waiter *w, int status) {
  unlink_waiter(w);
  if (w->task_.queued_) cn_loop_unpost(w->loop_, &w->task_);
  w->cb_(w, status);
}

static void deliver_later(cn_task *task) {
  cn_waiter *w = CN_CONTAINER_OF(task, cn_waiter, task_);
  w->cb_(w, w->status_);
}

void cn__waiter_fire_later(cn_waiter *w, int status) {
  unlink_waiter(w);
  w->status_ = status;
  cn_loop_post(w->loop_, &w->task_, deliver_later);
}

/* Fires every waiter attached now; one that re-attaches from its callback
 * waits for the next event instead of looping here. */
void cn__waiters_fire_all(cn_list *head, int status, int later) {
  cn_list batch, *link;
  cn_list_init(&batch);
  if (!cn_list_empty(head)) {
    batch.next = head->next;
    batch.prev = head->prev;
    batch.next->prev = &batch;
    batch.prev->next = &batch;
    cn_list_init(head);
  }
  while ((link = cn_list_first(&batch)) != NULL) {
    cn_waiter *w = CN_CONTAINER_OF(link, cn_waiter, link_);
    if (later)
      cn__waiter_fire_later(w, status);
    else
      cn__waiter_fire(w, status);
  }
}
