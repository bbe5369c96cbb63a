/* transfer.c: moving what one stream reads to another's writer. The step
 * (cn_reader_transfer) moves what is buffered now; the pump
 * (cn_transfer_start) drives the step from its own waiters' callbacks, so a
 * whole transfer runs in C and its caller hears once, at the end.
 *
 * Who calls whom: the public API calls in; this file calls the reader and
 * writer of both streams through the public API and the waiter internals.
 * It lives above both halves, so that the reader never calls a writer. */
#include <string.h>
#include "stream.h"

/* The step hands the buffered bytes (the scratch view or the buffer, in
 * place) to the writer, straight to the kernel when the writer is idle
 * (cn_writer_write_now: no copy, no flush task), as long as the writer's
 * pending bytes stay at or below its mark, so the writer holds at most its
 * mark plus one chunk. Not consuming is the back-pressure on the reader: its
 * buffer fills to the cap and it stops. */
int cn_reader_transfer(cn_stream *from, cn_stream *to, uint64_t *moved) {
  for (;;) {
    int wst = cn_writer_status(to);
    if (wst) return wst;
    if (cn_stream_is_closing(to)) return CN_ECLOSED;
    if (cn_writer_pending(to) > cn_writer_hwm(to)) return CN_TRANSFER_WAIT_WRITER;
    size_t n;
    const char *p = cn_reader_peek(from, &n);
    if (n == 0) {
      int rst = cn_reader_status(from);
      if (rst == UV_EOF) return 0;
      if (rst) return rst;
      return from->state == CN_STREAM_OPEN ? CN_TRANSFER_WAIT_READER : CN_ECLOSED;
    }
    int rc = cn_writer_write_now(to, p, n);
    if (rc < 0) return rc;
    cn_reader_consume(from, n);
    *moved += n;
  }
}

/* ---- the pump. It runs while it holds its streams (from_ non-NULL); the
 * caller's waiter is the one link in done_ meanwhile, so cancelling that
 * waiter reaches release() through the waiter's cancel hook. */

static cn_waiter *caller_waiter(cn_transfer *t) {
  cn_list *link = cn_list_first(&t->done_);
  return link ? CN_CONTAINER_OF(link, cn_waiter, link_) : NULL;
}

/* Stops the pump's own waits (a queued delivery too) and lets go of the
 * streams; the pump never runs again. */
static void release(cn_transfer *t) {
  if (!t->from_) return;
  cn_waiter_cancel(&t->on_input_);
  cn_waiter_cancel(&t->on_room_);
  cn_stream *from = t->from_, *to = t->to_;
  t->from_ = t->to_ = NULL;
  cn_stream_unref(from);
  cn_stream_unref(to);
}

static void on_caller_cancel(void *owner) { release(owner); }

/* The end: the side that failed is read, and the writer closed at EOF if
 * asked, before the streams are let go. */
static int end(cn_transfer *t, int status) {
  if (status < 0)
    t->writer_failed_ = cn_writer_status(t->to_) || cn_stream_is_closing(t->to_);
  else if (t->close_writer_)
    cn_writer_close(t->to_);
  release(t);
  return status;
}

/* Moves what is there, then waits where the step says (CN_TRANSFER_RUNNING),
 * or ends (its result). A wake-up's status is not read: the step tells
 * bytes, room and every end apart. */
static int pump(cn_transfer *t) {
  int rc = cn_reader_transfer(t->from_, t->to_, &t->moved_);
  if (rc == CN_TRANSFER_WAIT_READER)
    rc = cn_reader_wait(t->from_, &t->on_input_, 1);
  else if (rc == CN_TRANSFER_WAIT_WRITER)
    rc = cn_writer_wait(t->to_, &t->on_room_, cn_writer_hwm(t->to_));
  else
    return end(t, rc);
  return rc < 0 ? end(t, rc) : CN_TRANSFER_RUNNING; /* CN_EBUSY: another waiter took the reader */
}

/* The caller's waiter fires last, since its callback may free t. */
static void on_wake(cn_waiter *w, int status) {
  cn_transfer *t = w->data;
  (void)status;
  int rc = pump(t);
  if (rc != CN_TRANSFER_RUNNING) cn__waiter_fire(caller_waiter(t), rc);
}

int cn_transfer_start(cn_transfer *t, cn_stream *from, cn_stream *to, int close_writer, cn_waiter *done) {
  if (cn_reader_is_busy(from) || cn_writer_room_awaited(to)) return CN_EBUSY;
  memset(t, 0, sizeof *t);
  t->from_ = from;
  t->to_ = to;
  t->close_writer_ = close_writer;
  cn_stream_ref(from);
  cn_stream_ref(to);
  cn_waiter_init(&t->on_input_, on_wake, t);
  cn_waiter_init(&t->on_room_, on_wake, t);
  cn_list_init(&t->done_);
  int rc = pump(t); /* what is already buffered moves now */
  if (rc == CN_TRANSFER_RUNNING) {
    cn__waiter_attach(&t->done_, done, from->loop, 0);
    cn__waiter_on_cancel(done, on_caller_cancel, t);
  }
  return rc;
}

uint64_t cn_transfer_moved(const cn_transfer *t) { return t->moved_; }
int cn_transfer_writer_failed(const cn_transfer *t) { return t->writer_failed_; }

void cn_transfer_stop(cn_transfer *t) {
  if (t->from_) cn_waiter_cancel(caller_waiter(t)); /* its hook releases the pump */
}
