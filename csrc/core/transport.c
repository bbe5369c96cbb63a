/* transport.c: the plain transport (the base of every stream's stack, over
 * its libuv handle) and the routing of transport events up the stack.
 * Calls come down from the reader and writer (or a stacked transport);
 * this file calls libuv below and sends its events up, to a stacked
 * transport's vtable or to the reader's and writer's event entries
 * (cn__reader_on_*, cn__writer_on_*). It never opens or closes the handle:
 * that is stream.c's. */
#include <stdlib.h>
#include "stream.h"

cn_transport *cn__transport_below(cn_stream *s, cn_transport *t) {
  cn_transport *below = &s->base;
  while (below->above != t) below = below->above;
  return below;
}

/* Inlined into the base's libuv callbacks: a read costs a plain stream one
 * test more than a direct call to the reader. */
static inline void up_alloc(cn_stream *s, cn_transport *from, size_t suggested, uv_buf_t *out) {
  cn_transport *up = from->above;
  if (up)
    up->vt->alloc(s, up, suggested, out);
  else
    cn__reader_on_alloc(s, suggested, out);
}

static inline void up_read(cn_stream *s, cn_transport *from, ssize_t nread, const uv_buf_t *buf) {
  cn_transport *up = from->above;
  if (up)
    up->vt->read(s, up, nread, buf);
  else
    cn__reader_on_read(s, nread, buf);
}

void cn__transport_up_alloc(cn_stream *s, cn_transport *from, size_t suggested, uv_buf_t *out) {
  up_alloc(s, from, suggested, out);
}

void cn__transport_up_read(cn_stream *s, cn_transport *from, ssize_t nread, const uv_buf_t *buf) {
  up_read(s, from, nread, buf);
}

void cn__transport_up_written(cn_stream *s, cn_transport *from, int status) {
  cn_transport *up = from->above;
  if (up)
    up->vt->written(s, up, status);
  else
    cn__writer_on_written(s, status);
}

void cn__transport_up_shut(cn_stream *s, cn_transport *from, int status) {
  cn_transport *up = from->above;
  if (up)
    up->vt->shut(s, up, status);
  else
    cn__writer_on_shut(s, status);
}

/* ------------------------------------------------------------ the plain one */

static void plain_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *out) {
  cn_stream *s = CN_CONTAINER_OF(handle, cn_stream, h.handle);
  up_alloc(s, &s->base, suggested, out);
}

/* The end's status comes from stream.c, which knows the descriptor: a call
 * of another file, so that the bytes' path keeps no stack frame. */
static void plain_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  cn_stream *s = CN_CONTAINER_OF(stream, cn_stream, h.stream);
  if (nread < 0) nread = cn__stream_end_status(s, nread);
  up_read(s, &s->base, nread, buf);
}

static int plain_read_start(cn_stream *s, cn_transport *t) {
  (void)t;
  return uv_read_start(&s->h.stream, plain_alloc, plain_read);
}

static void plain_read_stop(cn_stream *s, cn_transport *t) {
  (void)t;
  uv_read_stop(&s->h.stream);
}

/* The request block, made on first use; freed with the stream. */
static union cn__plain_req *request(cn_stream *s) {
  if (!s->req) s->req = malloc(sizeof *s->req);
  return s->req;
}

static void on_written(uv_write_t *req, int status) {
  cn_stream *s = req->data;
  cn__transport_up_written(s, &s->base, status);
}

static int plain_write(cn_stream *s, cn_transport *t, const uv_buf_t *bufs, unsigned nbufs) {
  union cn__plain_req *req = request(s);
  (void)t;
  if (!req) return UV_ENOMEM;
  req->write.data = s;
  return uv_write(&req->write, &s->h.stream, bufs, nbufs, on_written);
}

static int plain_try_write(cn_stream *s, cn_transport *t, const uv_buf_t *bufs, unsigned nbufs) {
  (void)t;
  return uv_try_write(&s->h.stream, bufs, nbufs);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  cn_stream *s = req->data;
  cn__transport_up_shut(s, &s->base, status);
}

/* When both sides are done, close() itself sends our FIN: no shutdown(2).
 * A shared socket (cn_stream_open_dup) is the caller's to shut down. */
static int plain_shutdown(cn_stream *s, cn_transport *t) {
  (void)t;
  if ((s->r.status == UV_EOF && s->r.closed) || s->shared) return 1;
  union cn__plain_req *req = request(s);
  if (!req) return UV_ENOMEM;
  req->shutdown.data = s;
  return uv_shutdown(&req->shutdown, &s->h.stream, on_shutdown);
}

static const cn_transport_vt plain_vt = {
    .read_start = plain_read_start,
    .read_stop = plain_read_stop,
    .write = plain_write,
    .try_write = plain_try_write,
    .shutdown = plain_shutdown,
};

void cn__transport_init_plain(cn_stream *s) {
  s->base.vt = &plain_vt;
  s->base.above = NULL;
}
