/* tls_transport.c: TLS as a transport stacked on a stream (transport.h),
 * over the engine of tls.c. Below it: ciphertext, read into the loop's
 * scratch and fed to the engine (a copy) before anything else runs, so the
 * scratch is back before the reader above borrows it and an idle TLS
 * connection holds no read buffer of its own; the engine's output written
 * below one write at a time. Above it: plaintext, decrypted straight into the buffers the reader
 * gives (alloc/read pairs), and the writer's plaintext encrypted in its
 * write call.
 *
 * Reading below goes on whatever the reader does while the handshake runs
 * (it needs the peer's answers); after it, only while the reader reads, so
 * a full reader stops the peer through TCP as on a plain stream.
 *
 * The handshake starts from a posted task after the push (never inside the
 * call that asked for it), and its end wakes the handshake waiter. */
#include <stdlib.h>
#include <string.h>
#include "stream.h"

/* Ciphertext read below at once: a whole TLS record and its header (no
 * more: the engine's input buffer keeps its largest size). Fits the scratch. */
#define TLS_READ_SIZE (16u * 1024u + 512u)

typedef struct tls_layer {
  cn_transport t;       /* first: the stack links to it */
  cn_stream *s;
  cn_tls_conn *conn;
  cn_buf out;           /* ciphertext in the write below in flight */
  uv_buf_t *held;       /* a write from above made before the handshake ended */
  unsigned nheld;
  cn_list waiters;      /* the handshake's: at most one */
  cn_task kick;         /* the next pump, posted */
  int failed;           /* the input's error from below, or the handshake's: the reader's end */
  int eof;              /* the input below ended (fed to the engine) */
  int handshaking;
  int abandoned;        /* the handshake's waiter gave up (timeout, cancel): end it */
  int reading_up;       /* the layer above reads (read_start) */
  int reading_below;
  int writing_below;    /* a write below is in flight */
  int upper_write;      /* a write from above waits for its ciphertext to go below */
  int upper_shutdown;   /* a shutdown from above waits for the ciphertext before it */
  int closed;
} tls_layer;

static tls_layer *layer_of(cn_transport *t) { return (tls_layer *)t; }
static cn_transport *below(tls_layer *x) { return cn__transport_below(x->s, &x->t); }

/* ----------------------------------------------------------- to below */

static void set_below_reading(tls_layer *x, int on) {
  cn_transport *b;
  if (on == x->reading_below || x->closed) return;
  b = below(x);
  if (on) {
    int rc = b->vt->read_start(x->s, b);
    if (rc < 0) {
      if (!x->failed) x->failed = rc;
      return;
    }
  } else {
    b->vt->read_stop(x->s, b);
  }
  x->reading_below = on;
}

/* The handshake needs the peer's answers; after it the reader's pace rules. */
static void update_below_reading(tls_layer *x) {
  set_below_reading(x, !x->failed && !x->eof && (x->handshaking || x->reading_up));
}

/* Writes the engine's pending ciphertext below, unless a write is in flight
 * (its completion calls this again). Returns 0 or the write's error. */
static int flush_out(tls_layer *x) {
  size_t n = cn_tls_out_pending(x->conn), room;
  cn_transport *b;
  uv_buf_t buf;
  int rc;
  if (x->writing_below || n == 0 || x->closed) return 0;
  if (cn_buf_reserve(&x->out, n) < 0) return UV_ENOMEM;
  cn_buf_commit(&x->out, cn_tls_take_out(x->conn, cn_buf_tail(&x->out, &room), n));
  buf = uv_buf_init(cn_buf_data(&x->out), (unsigned)cn_buf_len(&x->out));
  b = below(x);
  rc = b->vt->write(x->s, b, &buf, 1);
  if (rc == 0) x->writing_below = 1;
  return rc;
}

/* Encrypts the bytes of a write from above (all or none). */
static int encrypt(tls_layer *x, const uv_buf_t *bufs, unsigned nbufs) {
  for (unsigned i = 0; i < nbufs; i++) {
    int rc = cn_tls_write(x->conn, bufs[i].base, bufs[i].len);
    if (rc) return rc;
  }
  return 0;
}

/* ----------------------------------------------------------- to above */

/* The write from above, then a shutdown from above, complete once their
 * ciphertext has gone below (or failed to). */
static void write_done(tls_layer *x, int status) {
  cn_transport *b;
  if (x->closed) return;
  if (x->upper_write) {
    x->upper_write = 0;
    cn__transport_up_written(x->s, &x->t, status);
  }
  /* The written event may have started more (the writer's next chunk, or
   * its shutdown and our close_notify): the shutdown below waits for all. */
  if (!x->upper_shutdown || x->closed || x->upper_write || (x->writing_below && status == 0)) return;
  x->upper_shutdown = 0;
  b = below(x);
  if (status == 0) status = b->vt->shutdown(x->s, b);
  /* 1: the layer below has nothing to send (close sends the FIN): shut now. */
  if (status != 0) cn__transport_up_shut(x->s, &x->t, status < 0 ? status : 0);
}

/* Everything queued went below: what waited for it completes. */
static void settle_writes(tls_layer *x) {
  if (!x->writing_below && !x->closed && (x->upper_write || x->upper_shutdown) && !x->held)
    write_done(x, 0);
}

/* Decrypts into the reader's buffers while it reads; ends its input once. */
static void deliver(tls_layer *x) {
  while (x->reading_up && !x->closed && !x->handshaking) {
    uv_buf_t b;
    size_t n = 0;
    int rc;
    cn__transport_up_alloc(x->s, &x->t, 64u * 1024u, &b);
    if (b.len == 0) {
      cn__transport_up_read(x->s, &x->t, UV_ENOBUFS, &b);
      return;
    }
    rc = cn_tls_read(x->conn, b.base, b.len, &n);
    /* The input below failed (a reset): that, not the truncation it caused, is the cause. */
    if ((rc == CN_TLS_WANT_READ || rc == CN_ETLS_TRUNCATED) && x->failed) rc = x->failed;
    if (rc == 0) {
      cn__transport_up_read(x->s, &x->t, (ssize_t)n, &b);
    } else if (rc == CN_TLS_WANT_READ) {
      cn__transport_up_read(x->s, &x->t, 0, &b); /* nothing yet: gives the buffer back */
      return;
    } else {
      x->reading_up = 0;
      cn__transport_up_read(x->s, &x->t, rc, &b);
      return;
    }
  }
}

/* The handshake is over: its waiter hears how, and a write made meanwhile goes out or fails. */
static void handshake_over(tls_layer *x, int status) {
  x->handshaking = 0;
  if (status < 0) {
    x->failed = status;
    set_below_reading(x, 0);
  }
  cn__waiters_fire_all(&x->waiters, status, 0);
  if (!x->held) return;
  if (status == 0) status = encrypt(x, x->held, x->nheld);
  free(x->held);
  x->held = NULL;
  if (status < 0) write_done(x, status);
}

/* One step of the handshake; 0 while it waits for the peer. */
static int step_handshake(tls_layer *x) {
  int rc = cn_tls_handshake(x->conn);
  int wrc = flush_out(x);
  if (rc == CN_TLS_WANT_READ) {
    if (!wrc && !x->failed) return 0;
    rc = wrc ? wrc : x->failed;
  }
  handshake_over(x, rc ? rc : wrc);
  return 1;
}

/* Moves everything on after something changed: input came, the reader
 * started reading, the handshake is to start, a write is to settle. */
static void pump(tls_layer *x) {
  /* The stream closing (its writer shuts down), or its waiter giving up,
   * ends a handshake not done. */
  if (x->handshaking && (x->upper_shutdown || x->abandoned)) handshake_over(x, CN_ECLOSED);
  if (x->handshaking && !step_handshake(x)) {
    update_below_reading(x);
    return;
  }
  deliver(x);
  if (!x->closed && flush_out(x) < 0) set_below_reading(x, 0);
  settle_writes(x);
  update_below_reading(x);
}

static void kick_task(cn_task *task) { pump(CN_CONTAINER_OF(task, tls_layer, kick)); }
static void kick(tls_layer *x) { cn_loop_post(x->s->loop, &x->kick, kick_task); }

/* The handshake's waiter was cancelled (its timeout, its fiber cancelled):
 * nobody waits for the handshake, so it ends, failing a write held for it
 * (else a close would wait for that write until its close_timeout). From a
 * task: this runs inside the canceller's call. */
static void abandon(void *owner) {
  tls_layer *x = owner;
  if (x->closed || !x->handshaking) return;
  x->abandoned = 1;
  kick(x);
}

/* ---------------------------------------------------- the vtable: above */

static int tls_read_start(cn_stream *s, cn_transport *t) {
  tls_layer *x = layer_of(t);
  (void)s;
  x->reading_up = 1;
  /* What the engine holds (or how the input ended) goes up from a task. */
  if (cn_tls_in_pending(x->conn) || x->failed || x->eof)
    kick(x);
  else
    update_below_reading(x);
  return 0;
}

static void tls_read_stop(cn_stream *s, cn_transport *t) {
  tls_layer *x = layer_of(t);
  (void)s;
  x->reading_up = 0;
  update_below_reading(x);
}

static int tls_write(cn_stream *s, cn_transport *t, const uv_buf_t *bufs, unsigned nbufs) {
  tls_layer *x = layer_of(t);
  int rc;
  (void)s;
  CN_ASSERT(!x->upper_write);
  if (x->failed) return x->failed;
  if (x->handshaking) { /* kept until it ends, as the caller keeps the bytes */
    if (!(x->held = malloc(nbufs * sizeof *bufs))) return UV_ENOMEM;
    memcpy(x->held, bufs, nbufs * sizeof *bufs);
    x->nheld = nbufs;
  } else if ((rc = encrypt(x, bufs, nbufs)) < 0 || (rc = flush_out(x)) < 0) {
    return rc;
  }
  x->upper_write = 1;
  if (!x->writing_below && !x->handshaking) kick(x); /* the written event, from a task */
  return 0;
}

static int tls_try_write(cn_stream *s, cn_transport *t, const uv_buf_t *bufs, unsigned nbufs) {
  (void)s, (void)t, (void)bufs, (void)nbufs;
  return UV_ENOTSUP;
}

/* close_notify, after the ciphertext before it, then the shutdown below. */
static int tls_shutdown(cn_stream *s, cn_transport *t) {
  tls_layer *x = layer_of(t);
  (void)s;
  cn_tls_shutdown(x->conn);
  x->upper_shutdown = 1;
  if (flush_out(x) < 0 || !x->writing_below) kick(x);
  return 0;
}

static int tls_adopt(cn_stream *s, cn_transport *t, const char *p, size_t n) {
  (void)s;
  return cn_tls_feed(layer_of(t)->conn, p, n);
}

static void tls_close(cn_stream *s, cn_transport *t) {
  tls_layer *x = layer_of(t);
  x->closed = 1;
  x->reading_up = 0;
  cn_loop_unpost(s->loop, &x->kick);
  cn__waiters_fire_all(&x->waiters, CN_ECLOSED, 1);
}

static void tls_release(cn_stream *s, cn_transport *t) {
  tls_layer *x = layer_of(t);
  (void)s;
  cn_tls_conn_free(x->conn);
  cn_buf_free(&x->out);
  free(x->held);
  free(x);
}

/* ---------------------------------------------------- the vtable: below */

/* Lends the loop's scratch (internal.h's rule) for one read below; tls_read
 * returns it as soon as the engine has copied the bytes. */
static void tls_alloc(cn_stream *s, cn_transport *t, size_t suggested, uv_buf_t *out) {
  size_t size;
  char *scratch = cn__loop_scratch_lend(s->loop, &size);
  (void)t, (void)suggested;
  *out = uv_buf_init(scratch, scratch ? TLS_READ_SIZE : 0); /* 0: libuv reports UV_ENOBUFS */
}

static void tls_read(cn_stream *s, cn_transport *t, ssize_t nread, const uv_buf_t *buf) {
  tls_layer *x = layer_of(t);
  int rc = 0;
  if (nread > 0 && !x->closed) rc = cn_tls_feed(x->conn, buf->base, (size_t)nread);
  if (cn__loop_scratch_owns(s->loop, buf->base)) cn__loop_scratch_return(s->loop);
  if (nread == 0 || x->closed) return;
  if (nread > 0) {
    if (rc < 0 && !x->failed) x->failed = rc;
  } else {
    cn_tls_feed_eof(x->conn);
    x->eof = 1;
    set_below_reading(x, 0);
    if (nread != UV_EOF && !x->failed) x->failed = (int)nread; /* a reset: no TLS end to wait for */
  }
  pump(x);
}

static void tls_written(cn_stream *s, cn_transport *t, int status) {
  tls_layer *x = layer_of(t);
  (void)s;
  x->writing_below = 0;
  cn_buf_consume(&x->out, cn_buf_len(&x->out));
  if (x->closed) return;
  if (status == 0) status = flush_out(x);
  if (status < 0)
    write_done(x, status);
  else
    settle_writes(x);
}

static void tls_shut(cn_stream *s, cn_transport *t, int status) {
  if (!layer_of(t)->closed) cn__transport_up_shut(s, t, status);
}

static const cn_transport_vt tls_vt = {
    .read_start = tls_read_start, .read_stop = tls_read_stop, .write = tls_write,
    .try_write = tls_try_write, .shutdown = tls_shutdown, .adopt = tls_adopt,
    .close = tls_close, .release = tls_release, .alloc = tls_alloc,
    .read = tls_read, .written = tls_written, .shut = tls_shut,
};

/* ------------------------------------------------------------- public */

cn_tls_conn *cn_stream_tls(cn_stream *s) {
  for (cn_transport *t = s->base.above; t; t = t->above)
    if (t->vt == &tls_vt) return layer_of(t)->conn;
  return NULL;
}

int cn_stream_start_tls(cn_stream *s, cn_tls_conn *c, cn_waiter *w) {
  tls_layer *x;
  int rc;
  /* A reader waiting in another fiber expects bytes of the old protocol. */
  if (cn_stream_tls(s) || cn_reader_is_busy(s)) return CN_EBUSY;
  if (!(x = calloc(1, sizeof *x))) return UV_ENOMEM;
  x->t.vt = &tls_vt;
  x->s = s;
  x->conn = c;
  x->handshaking = 1;
  cn_buf_init(&x->out);
  cn_list_init(&x->waiters);
  if ((rc = cn__stream_push_transport(s, &x->t)) < 0) {
    free(x);
    return rc;
  }
  cn__waiter_attach(&x->waiters, w, s->loop, 0);
  cn__waiter_on_cancel(w, abandon, x);
  kick(x);
  return 0;
}
