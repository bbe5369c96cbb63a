/* reader.c: the buffered reader. Reads go into the loop's scratch buffer
 * while nothing is buffered, so the waiting fiber consumes them in place and
 * only leftovers are copied into the stream's own (pooled) buffer. Reading
 * runs while there is room below the cap, or a waiter wants more, and stops
 * otherwise (back-pressure). Watchers only hear of read events: they never
 * make the reader read, nor read more.
 *
 * Who calls whom: stream.c and the public API call in; this file calls the
 * stream's top transport (read_start, read_stop; transport.h), which sends
 * its read events back through cn__reader_on_alloc and cn__reader_on_read.
 * Upward it only tells stream.c that the reader is done
 * (cn__stream_maybe_finish) or that the stream must end (cn_stream_abort);
 * it never calls the writer. */
#include <string.h>
#include "stream.h"

void cn__reader_init(cn_stream *s) {
  cn_buf_init(&s->r.buf);
  s->r.cap = CN_DEFAULT_READER_SIZE;
  cn_list_init(&s->r.waiters);
  cn_list_init(&s->r.watchers);
}

static cn_waiter *waiter_of(cn_stream *s) {
  cn_list *link = cn_list_first(&s->r.waiters);
  return link ? CN_CONTAINER_OF(link, cn_waiter, link_) : NULL;
}

size_t cn_reader_buffered(const cn_stream *s) { return s->r.view_len + cn_buf_len(&s->r.buf); }
size_t cn_reader_capacity(const cn_stream *s) { return s->r.cap; }
int cn_reader_is_closed(const cn_stream *s) { return s->r.closed; }
int cn_reader_is_busy(const cn_stream *s) { return !cn_list_empty(&s->r.waiters); }

int cn_reader_status(const cn_stream *s) {
  if (s->r.closed) return CN_ECLOSED;
  return s->r.status;
}

const char *cn_reader_peek(cn_stream *s, size_t *len) {
  if (s->r.view_len) {
    *len = s->r.view_len;
    return s->r.view;
  }
  *len = cn_buf_len(&s->r.buf);
  return cn_buf_data(&s->r.buf);
}

/* Another caller (a non-waiting read) consumed n bytes under a waiting read:
 * what the waiter needs is now n bytes nearer (a line's terminator, the
 * next byte). An exact read then wakes early and waits again, which is
 * harmless; a wait left at its old size could miss the bytes it needs. */
static void shrink_wait(cn_stream *s, size_t n) {
  cn_waiter *w = waiter_of(s);
  if (w) w->want_ -= CN_MIN(n, w->want_);
}

void cn_reader_consume(cn_stream *s, size_t n) {
  cn_reader *r = &s->r;
  CN_ASSERT(n <= cn_reader_buffered(s));
  shrink_wait(s, n);
  if (r->view_len) {
    r->view += n;
    r->view_len -= n;
  } else {
    cn_buf_consume(&r->buf, n);
    if (cn_buf_len(&r->buf) == 0) cn__loop_buf_release(s->loop, &r->buf);
  }
  /* Consuming only makes room (the wait it shrank shrinks by as much as the
   * buffer): a reader that reads goes on reading, and only a stopped one
   * may have to start. */
  if (!r->reading) cn__reader_update(s);
}

/* The size the buffer may reach: its cap, or more while a waiter needs more. */
static size_t target_size(cn_stream *s) {
  cn_waiter *w = waiter_of(s);
  return (w && w->want_ > s->r.cap) ? w->want_ : s->r.cap;
}

static int should_read(cn_stream *s) {
  const cn_reader *r = &s->r;
  return s->connected && s->state == CN_STREAM_OPEN && !r->closed && r->status == 0 &&
         cn_reader_buffered(s) < target_size(s);
}

/* Reading could not start: the input ends with that error, as if read had
 * returned it, so a waiter hears of it (on the next turn: this runs inside
 * calls of the waiter's owner) instead of waiting for bytes that cannot come. */
static void end_input(cn_stream *s, int err) {
  s->r.status = err;
  cn__reader_fail_waiters(s, err, 1);
}

static void stop_reading(cn_stream *s) {
  cn_transport *t = cn__transport_top(s);
  t->vt->read_stop(s, t);
  s->r.reading = 0;
}

void cn__reader_update(cn_stream *s) {
  int want = should_read(s);
  if (want && !s->r.reading) {
    cn_transport *t = cn__transport_top(s);
    int rc = t->vt->read_start(s, t);
    if (rc == 0)
      s->r.reading = 1;
    else
      end_input(s, rc);
  } else if (!want && s->r.reading) {
    stop_reading(s);
  }
}

void cn__reader_on_alloc(cn_stream *s, size_t suggested, uv_buf_t *out) {
  cn_reader *r = &s->r;
  size_t len = cn_buf_len(&r->buf), target = target_size(s), room = 0;
  (void)suggested;
  out->base = NULL;
  out->len = 0;
  if (len == 0 && target <= CN_SCRATCH_SIZE) {
    out->base = cn__loop_scratch_lend(s->loop, &room); /* returned at the end of on_read */
    out->len = CN_MIN(room, target);
    if (out->base) return;
  }
  if (len >= target) return; /* full: on_read stops reading (a safety net; updates stop it first) */
  cn__loop_buf_acquire(s->loop, &r->buf);
  size_t want = CN_MIN(target - len, (size_t)CN_SCRATCH_SIZE);
  if (cn_buf_reserve(&r->buf, want) < 0) {
    r->out_of_memory = 1; /* libuv reports UV_ENOBUFS, which then ends the reader */
    return;
  }
  out->base = cn_buf_tail(&r->buf, &room);
  out->len = CN_MIN(room, target - len);
}

/* Wakes the waiter if its wait is satisfied; runs from libuv's read callback. */
static void notify(cn_stream *s) {
  cn_waiter *w = waiter_of(s);
  if (w && (cn_reader_buffered(s) >= w->want_ || s->r.status)) cn__waiter_fire(w, s->r.status);
}

/* Every watcher hears of the read event (status 0: bytes arrived, else how
 * the input ended); one that watches again from its callback waits for the
 * next event. They run inside the scratch's lending span, as the waiter
 * does: a woken fiber may consume the bytes in place. */
static void tell_watchers(cn_stream *s, int status) { cn__waiters_fire_all(&s->r.watchers, status, 0); }

/* Whatever the fiber left in the scratch view moves into the stream's buffer. */
static void keep_leftovers(cn_stream *s) {
  cn_reader *r = &s->r;
  if (!r->view_len) return;
  const char *p = r->view;
  size_t n = r->view_len;
  r->view = NULL;
  r->view_len = 0;
  if (r->closed) return;
  cn__loop_buf_acquire(s->loop, &r->buf);
  if (cn_buf_append(&r->buf, p, n) < 0) cn_stream_abort(s, UV_ENOMEM);
}

/* Handles one read; the scratch, if lent for it, is still out. */
static void handle_read(cn_stream *s, ssize_t nread, const uv_buf_t *buf, int lent) {
  cn_reader *r = &s->r;
  if (nread == 0) return; /* EAGAIN */
  if (nread == UV_ENOBUFS && !r->out_of_memory) { /* no room, which is no error */
    cn__reader_update(s);
    return;
  }
  cn_stream_ref(s); /* the woken fiber may drop its references */
  if (nread > 0) {
    s->bytes_in += (uint64_t)nread;
    if (lent) {
      r->view = buf->base;
      r->view_len = (size_t)nread;
    } else {
      cn_buf_commit(&r->buf, (size_t)nread);
    }
    notify(s);
    tell_watchers(s, 0);
    keep_leftovers(s);
    CN_ASSERT(r->view_len == 0); /* nothing points into the scratch past the span */
  } else {
    r->status = (int)nread;
    notify(s);
    tell_watchers(s, r->status);
  }
  cn__reader_update(s);
  cn_stream_unref(s);
}

/* The lending span of the scratch ends here, whatever the fiber woken in
 * handle_read did (the loop outlives every stream). */
void cn__reader_on_read(cn_stream *s, ssize_t nread, const uv_buf_t *buf) {
  cn_loop *loop = s->loop;
  int lent = cn__loop_scratch_owns(loop, buf->base);
  handle_read(s, nread, buf, lent);
  if (lent) cn__loop_scratch_return(loop);
}

/* A waiter that leaves (timeout, cancel, interrupt) may have been what kept
 * reading on past the cap: the reader decides again without it. */
static void on_waiter_cancelled(void *owner) { cn__reader_update(owner); }

int cn_reader_wait(cn_stream *s, cn_waiter *w, size_t want) {
  if (!cn_list_empty(&s->r.waiters)) return CN_EBUSY;
  cn__waiter_attach(&s->r.waiters, w, s->loop, want);
  cn__waiter_on_cancel(w, on_waiter_cancelled, s);
  int status = cn_reader_status(s);
  /* A new waiter only raises the target: a reader that reads goes on. */
  if (status || cn_reader_buffered(s) >= want)
    cn__waiter_fire_later(w, status);
  else if (!s->r.reading)
    cn__reader_update(s);
  return 0;
}

int cn_reader_watch(cn_stream *s, cn_waiter *w) {
  cn__waiter_attach(&s->r.watchers, w, s->loop, 0);
  int status = cn_reader_status(s);
  if (status) cn__waiter_fire_later(w, status);
  return 0;
}

/* Every end of the reader (EOF, read error, close, abort, release) comes
 * through here, so the watchers hear of it with the waiter. */
void cn__reader_fail_waiters(cn_stream *s, int status, int later) {
  cn__waiters_fire_all(&s->r.waiters, status, later);
  cn__waiters_fire_all(&s->r.watchers, status, later);
}

void cn__reader_release(cn_stream *s) {
  s->r.view = NULL;
  s->r.view_len = 0;
  cn__loop_buf_release(s->loop, &s->r.buf);
  cn__reader_fail_waiters(s, CN_ECLOSED, 0);
}

void cn_reader_close(cn_stream *s) {
  cn_reader *r = &s->r;
  if (r->closed) return;
  r->closed = 1;
  cn__reader_update(s);
  r->view = NULL;
  r->view_len = 0;
  cn__loop_buf_release(s->loop, &r->buf);
  cn__reader_fail_waiters(s, CN_ECLOSED, 1);
  cn__stream_maybe_finish(s);
}

/* The bytes the reader holds came from below the transport t being pushed
 * on top: they go to t (which copies them), not to whoever reads. Reading
 * through the old top stops; the push restarts it through t. */
int cn__reader_hand_off(cn_stream *s, cn_transport *t) {
  cn_reader *r = &s->r;
  size_t n;
  const char *p = cn_reader_peek(s, &n);
  if (r->reading) stop_reading(s);
  int rc = n ? t->vt->adopt(s, t, p, n) : 0;
  if (rc < 0) return rc;
  if (r->view_len) {
    r->view = NULL;
    r->view_len = 0;
  } else {
    cn__loop_buf_release(s->loop, &r->buf);
  }
  return 0;
}
