/* writer.c: the buffered writer. Writes append to `pending` and are flushed
 * by one task just before the loop next blocks, so small writes made in one
 * turn leave in one system call. The flush tries a direct write first; what
 * the kernel does not take goes out by a queued write from `flushing` while new
 * writes keep appending to `pending`. Large writes on an idle writer skip the
 * copy and go straight to the kernel, as do all of cn_writer_write_now's (the
 * transfer's chunks, which gain nothing by waiting for company).
 *
 * Who calls whom: stream.c and the public API call in; this file calls the
 * stream's top transport (write, try_write, shutdown; transport.h), which
 * sends its events back through cn__writer_on_written and
 * cn__writer_on_shut. Upward it only tells stream.c that the writer is done
 * (cn__stream_maybe_finish) or that the stream must end (cn_stream_abort);
 * it never calls the reader. */
#include "stream.h"

/* A write this large, with nothing queued, is tried directly before copying. */
#define CN_DIRECT_WRITE_MIN (16u * 1024u)
/* uv_buf_t holds an unsigned length: past 4 GiB a cast would cut it. Every
 * system call gets at most this much and the rest follows (a C test lowers
 * the stream's max_chunk to see the splitting). */
#define CN_MAX_WRITE_CHUNK ((size_t)1 << 30)

static void flush(cn_stream *s);
static void on_timer(cn_timer *t, void *data);

static void flush_task(cn_task *task) {
  cn_writer *w = CN_CONTAINER_OF(task, cn_writer, flush_task);
  flush(CN_CONTAINER_OF(w, cn_stream, w));
}

void cn__writer_init(cn_stream *s) {
  cn_writer *w = &s->w;
  cn_buf_init(&w->pending);
  cn_buf_init(&w->flushing);
  cn_list_init(&w->waiters);
  w->hwm = CN_DEFAULT_WRITER_HWM;
  w->max_chunk = CN_MAX_WRITE_CHUNK;
  w->close_timeout_ms = CN_DEFAULT_CLOSE_TIMEOUT_MS;
}

size_t cn_writer_pending(const cn_stream *s) { return cn_buf_len(&s->w.pending) + cn_buf_len(&s->w.flushing); }
size_t cn_writer_hwm(const cn_stream *s) { return s->w.hwm; }
int cn_writer_is_closed(const cn_stream *s) { return s->w.closing; }
int cn_writer_status(const cn_stream *s) { return s->w.status ? s->w.status : (s->w.closing ? CN_ECLOSED : 0); }
uint64_t cn_stream_bytes_in(const cn_stream *s) { return s->bytes_in; }
uint64_t cn_stream_bytes_out(const cn_stream *s) { return s->bytes_out; }

int cn_writer_dropped(const cn_stream *s) { return s->w.dropped; }

int cn__writer_done(const cn_stream *s) { return s->w.closing && (s->w.shut || s->w.status); }

static cn_waiter *waiter_of(cn_stream *s) {
  cn_list *link = cn_list_first(&s->w.waiters);
  return link ? CN_CONTAINER_OF(link, cn_waiter, link_) : NULL;
}

int cn_writer_room_awaited(cn_stream *s) {
  const cn_waiter *w = waiter_of(s);
  return w && w->want_ > 0;
}

/* Wakes the waiter once pending bytes are at or below what it allows. */
static void notify(cn_stream *s) {
  cn_waiter *w = waiter_of(s);
  if (w && cn_writer_pending(s) <= w->want_) cn__waiter_fire(w, 0);
}

void cn__writer_fail_waiters(cn_stream *s, int status, int later) {
  cn__waiters_fire_all(&s->w.waiters, status, later);
}

void cn__writer_release(cn_stream *s) {
  if (cn_writer_pending(s)) s->w.dropped = 1;
  cn__loop_buf_release(s->loop, &s->w.pending);
  cn__loop_buf_release(s->loop, &s->w.flushing);
  cn__writer_fail_waiters(s, s->w.status ? s->w.status : CN_ECLOSED, 0);
}

/* A write error ends the sending side; the reader may still drain what the
 * peer sent. The waiter hears of it on the next turn: fail() also runs
 * inside cn_writer_write, a call of the waiter's owner. */
static void fail(cn_stream *s, int err) {
  cn_writer *w = &s->w;
  if (!w->status) w->status = err;
  if (cn_buf_len(&w->pending)) w->dropped = 1;
  cn__loop_buf_release(s->loop, &w->pending);
  cn__writer_fail_waiters(s, err, 1);
  cn__stream_maybe_finish(s);
}

void cn__writer_on_shut(cn_stream *s, int status) {
  (void)status; /* ENOTCONN when the peer already went: the side is shut either way */
  s->w.shut = 1;
  cn__stream_maybe_finish(s);
}

static void start_shutdown(cn_stream *s) {
  cn_writer *w = &s->w;
  if (w->shutting_down || s->state != CN_STREAM_OPEN) return;
  w->shutting_down = 1;
  if (w->timer) cn_timer_stop(w->timer);
  cn_transport *t = cn__transport_top(s);
  if (t->vt->shutdown(s, t) != 0) { /* nothing to send, or failed: shut either way */
    w->shut = 1;
    cn__stream_maybe_finish(s);
  }
}

/* Everything was taken by the kernel. */
static void flushed(cn_stream *s) {
  cn__loop_buf_release(s->loop, &s->w.pending);
  if (s->w.timer && !s->w.closing) cn_timer_stop(s->w.timer);
  if (s->w.closing) start_shutdown(s);
  notify(s);
}

static int ensure_timer(cn_stream *s) {
  if (s->w.timer) return 0;
  return cn_timer_new(s->loop, &s->w.timer);
}

/* The age limit applies to the oldest byte the kernel has not taken. */
static void arm_age_timer(cn_stream *s) {
  cn_writer *w = &s->w;
  if (!w->age_limit_ms || w->closing || ensure_timer(s) < 0) return;
  uint64_t age = cn_loop_now(s->loop) - w->flushing_since;
  uint64_t left = age >= w->age_limit_ms ? 0 : w->age_limit_ms - age;
  cn_timer_start(w->timer, left, on_timer, s);
}

/* At most max_chunk bytes of p, as libuv takes them. */
static uv_buf_t chunk(const cn_stream *s, const char *p, size_t n) {
  return uv_buf_init((char *)p, (unsigned)CN_MIN(n, s->w.max_chunk));
}

/* What the transport took of p at once: a count (0 when it would block or
 * has no such fast path, as TLS may not), or an error. */
static int try_write(cn_stream *s, const char *p, size_t n) {
  uv_buf_t b = chunk(s, p, n);
  cn_transport *t = cn__transport_top(s);
  int k = t->vt->try_write(s, t, &b, 1);
  return k == UV_EAGAIN || k == UV_ENOTSUP ? 0 : k;
}

/* Hands the next chunk of `flushing` to the transport's write. */
static void write_flushing(cn_stream *s) {
  cn_writer *w = &s->w;
  uv_buf_t b = chunk(s, cn_buf_data(&w->flushing), cn_buf_len(&w->flushing));
  cn_transport *t = cn__transport_top(s);
  int rc = t->vt->write(s, t, &b, 1);
  if (rc < 0) {
    fail(s, rc);
    return;
  }
  w->in_flight = 1;
  w->in_flight_len = b.len;
  arm_age_timer(s);
}

void cn__writer_on_written(cn_stream *s, int status) {
  cn_writer *w = &s->w;
  w->in_flight = 0;
  if (status < 0) {
    if (status != UV_ECANCELED) fail(s, status);
    return;
  }
  s->bytes_out += w->in_flight_len;
  cn_buf_consume(&w->flushing, w->in_flight_len);
  if (cn_buf_len(&w->flushing)) {
    write_flushing(s);
    return;
  }
  cn__loop_buf_release(s->loop, &w->flushing);
  flush(s);
}

static void start_write(cn_stream *s) {
  cn_writer *w = &s->w;
  cn_buf_swap(&w->pending, &w->flushing);
  w->flushing_since = w->pending_since;
  write_flushing(s);
}

static void flush(cn_stream *s) {
  cn_writer *w = &s->w;
  if (w->in_flight || s->state != CN_STREAM_OPEN || w->status || !s->connected) return;
  size_t len = cn_buf_len(&w->pending);
  if (len) {
    int n = try_write(s, cn_buf_data(&w->pending), len);
    if (n < 0) {
      fail(s, n);
      return;
    }
    if (n > 0) {
      s->bytes_out += (uint64_t)n;
      cn_buf_consume(&w->pending, (size_t)n);
    }
    if (cn_buf_len(&w->pending)) {
      start_write(s);
      notify(s);
      return;
    }
  }
  flushed(s);
}

/* Hands a large write straight to the kernel; returns how much it took. */
static size_t write_direct(cn_stream *s, const char *p, size_t n, int *err) {
  int k = try_write(s, p, n);
  if (k < 0) {
    *err = k;
    return 0;
  }
  s->bytes_out += (uint64_t)k;
  return (size_t)k;
}

/* Queues n bytes, but an idle writer first offers a write of at least
 * direct_min bytes to the kernel at once. */
static int write_from(cn_stream *s, const char *p, size_t n, size_t direct_min) {
  cn_writer *w = &s->w;
  int status = cn_writer_status(s);
  if (status) return status;
  if (s->state != CN_STREAM_OPEN) return CN_ECLOSED;
  /* Refused rather than kept: bytes queued before connect would have no
   * flush to send them, and a caller could not tell them from sent ones. */
  if (!s->connected) return UV_ENOTCONN;
  if (n == 0) return 0;
  int idle = !w->in_flight && cn_buf_len(&w->pending) == 0;
  if (idle && n >= direct_min) {
    int err = 0;
    size_t k = write_direct(s, p, n, &err);
    if (err) {
      fail(s, err);
      return err;
    }
    p += k;
    n -= k;
    if (n == 0) return 0;
  }
  if (cn_buf_len(&w->pending) == 0) w->pending_since = cn_loop_now(s->loop);
  cn__loop_buf_acquire(s->loop, &w->pending);
  int rc = cn_buf_append(&w->pending, p, n);
  if (rc < 0) return rc;
  if (!w->in_flight) cn_loop_post(s->loop, &w->flush_task, flush_task);
  return 0;
}

int cn_writer_write(cn_stream *s, const char *p, size_t n) { return write_from(s, p, n, CN_DIRECT_WRITE_MIN); }

int cn_writer_write_now(cn_stream *s, const char *p, size_t n) { return write_from(s, p, n, 1); }

int cn_writer_wait(cn_stream *s, cn_waiter *waiter, size_t max_pending) {
  if (!cn_list_empty(&s->w.waiters)) return CN_EBUSY;
  cn__waiter_attach(&s->w.waiters, waiter, s->loop, max_pending);
  int status = s->w.status;
  if (status || cn_writer_pending(s) <= max_pending) cn__waiter_fire_later(waiter, status);
  return 0;
}

static void on_timer(cn_timer *t, void *data) {
  cn_stream *s = data;
  cn_writer *w = &s->w;
  (void)t;
  if (w->closing) {
    cn_stream_abort(s, CN_ETIMEOUT); /* the final flush ran out of time */
  } else if (w->in_flight) {
    if (cn_loop_now(s->loop) - w->flushing_since >= w->age_limit_ms)
      cn_stream_abort(s, CN_ESTALLED);
    else
      arm_age_timer(s);
  }
}

void cn_writer_close(cn_stream *s) {
  cn_writer *w = &s->w;
  if (w->closing || s->state != CN_STREAM_OPEN) return;
  w->closing = 1;
  if (w->status || !s->connected) {
    w->shut = 1;
    cn__writer_fail_waiters(s, w->status ? w->status : CN_ECLOSED, 1);
    cn__stream_maybe_finish(s);
    return;
  }
  /* A fiber blocked above the mark is told now; the flush goes on without it. */
  cn__writer_fail_waiters(s, CN_ECLOSED, 1);
  if (cn_writer_pending(s) == 0) {
    start_shutdown(s);
    return;
  }
  if (ensure_timer(s) == 0) cn_timer_start(w->timer, w->close_timeout_ms, on_timer, s);
  if (!w->in_flight) cn_loop_post(s->loop, &w->flush_task, flush_task);
}
