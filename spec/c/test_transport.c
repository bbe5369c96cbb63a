/* test_transport.c: a transport stacked on the plain one (transport.h).
 * The test's own layer XORs every byte with its key, both ways, so the peer
 * (the raw other end of a socketpair) sees only encoded bytes. It proves
 * that the reader, the writer (queued and direct paths, with a try_write
 * that says "not supported"), shutdown and close work through a stacked
 * layer and through two; that the bytes the reader held when the layer was
 * pushed reach the layer (and come back decoded), pushed between turns or
 * from inside the read callback; what a push refuses; that an abort with a
 * write in flight or input undelivered frees every layer once; and that a
 * layer can handshake as TLS must: write below on its own and read below
 * while the reader does not read, holding the writer's bytes meanwhile. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include "check.h"
#include "stream.h"

#define K1 0x5a
#define K2 0x21
#define BIG 200000u

static int released; /* layers freed, over the whole test */

typedef struct xor_layer {
  cn_transport t;  /* first: the stack links to it */
  cn_stream *s;
  unsigned char key;
  cn_buf in;       /* decoded input not yet given to the layer above (from adopt) */
  char *out;       /* the encoded copy of the write in flight (or held) */
  size_t out_len;
  cn_task deliver;
  int reading, closed, shuts;
  /* The toy handshake: the layer sends a greeting and reads the peer's key
   * byte itself, whatever the reader does, holding the writer's bytes. */
  int handshaking, greeting_in_flight, held;
  char peer_key;
} xor_layer;

static xor_layer *layer_of(cn_transport *t) { return (xor_layer *)t; }

static void encode(char *p, size_t n, unsigned char key) {
  for (size_t i = 0; i < n; i++) p[i] = (char)(p[i] ^ key);
}

/* Gives the adopted input to the layer above, as reads; once it is all
 * taken, reading goes on from below. Runs from a task: never inside
 * read_start (transport.h). */
static void deliver_task(cn_task *task) {
  xor_layer *x = CN_CONTAINER_OF(task, xor_layer, deliver);
  cn_stream *s = x->s;
  while (x->reading && cn_buf_len(&x->in)) {
    uv_buf_t b;
    cn__transport_up_alloc(s, &x->t, cn_buf_len(&x->in), &b);
    if (b.len == 0) {
      cn__transport_up_read(s, &x->t, UV_ENOBUFS, &b);
      return;
    }
    size_t n = CN_MIN((size_t)b.len, cn_buf_len(&x->in));
    memcpy(b.base, cn_buf_data(&x->in), n);
    cn_buf_consume(&x->in, n);
    cn__transport_up_read(s, &x->t, (ssize_t)n, &b);
  }
  if (x->reading) {
    cn_transport *below = cn__transport_below(s, &x->t);
    CHECK_EQ_INT(below->vt->read_start(s, below), 0);
  }
}

static int x_read_start(cn_stream *s, cn_transport *t) {
  xor_layer *x = layer_of(t);
  x->reading = 1;
  if (cn_buf_len(&x->in)) {
    cn_loop_post(s->loop, &x->deliver, deliver_task);
    return 0;
  }
  if (x->handshaking) return 0; /* reading below already */
  cn_transport *below = cn__transport_below(s, t);
  return below->vt->read_start(s, below);
}

static void x_read_stop(cn_stream *s, cn_transport *t) {
  xor_layer *x = layer_of(t);
  x->reading = 0;
  cn_loop_unpost(s->loop, &x->deliver);
  if (x->handshaking) return; /* the handshake reads on */
  cn_transport *below = cn__transport_below(s, t);
  below->vt->read_stop(s, below);
}

/* Encodes the copy and writes it below. */
static int send_out(cn_stream *s, xor_layer *x) {
  encode(x->out, x->out_len, x->key);
  uv_buf_t b = uv_buf_init(x->out, (unsigned)x->out_len);
  cn_transport *below = cn__transport_below(s, &x->t);
  int rc = below->vt->write(s, below, &b, 1);
  if (rc < 0) {
    free(x->out);
    x->out = NULL;
  }
  return rc;
}

static int x_write(cn_stream *s, cn_transport *t, const uv_buf_t *bufs, unsigned nbufs) {
  xor_layer *x = layer_of(t);
  size_t total = 0, at = 0;
  for (unsigned i = 0; i < nbufs; i++) total += bufs[i].len;
  CHECK(x->out == NULL); /* one write in flight */
  x->out = malloc(total);
  if (!x->out) return UV_ENOMEM;
  for (unsigned i = 0; i < nbufs; i++) {
    memcpy(x->out + at, bufs[i].base, bufs[i].len);
    at += bufs[i].len;
  }
  x->out_len = total;
  if (x->handshaking || x->greeting_in_flight) {
    x->held = 1; /* sent once the handshake is done: its written event comes then */
    return 0;
  }
  return send_out(s, x);
}

/* The writer's bytes held during the handshake go now, after the greeting. */
static void send_held(cn_stream *s, xor_layer *x) {
  if (!x->held || x->handshaking || x->greeting_in_flight) return;
  x->held = 0;
  int rc = send_out(s, x);
  if (rc < 0) cn__transport_up_written(s, &x->t, rc); /* from an event: not inside the writer's call */
}

static const char greeting[] = "HELLO";

/* The layer writes below on its own and reads below whatever the reader
 * does, as a TLS handshake must (transport.h). */
static int start_handshake(cn_stream *s, xor_layer *x) {
  cn_transport *below = cn__transport_below(s, &x->t);
  uv_buf_t b = uv_buf_init((char *)greeting, sizeof greeting - 1);
  x->handshaking = 1;
  int rc = below->vt->write(s, below, &b, 1);
  if (rc < 0) return rc;
  x->greeting_in_flight = 1;
  return x->reading ? 0 : below->vt->read_start(s, below);
}

/* The peer's key byte ends the handshake; reading below goes on only if the
 * reader reads. */
static void finish_handshake(cn_stream *s, xor_layer *x, ssize_t nread) {
  if (nread == 0 || !CHECK(nread == 1)) return;
  x->key = (unsigned char)x->peer_key;
  x->handshaking = 0;
  if (!x->reading) {
    cn_transport *below = cn__transport_below(s, &x->t);
    below->vt->read_stop(s, below);
  }
  send_held(s, x);
}

static int x_try_write(cn_stream *s, cn_transport *t, const uv_buf_t *bufs, unsigned nbufs) {
  (void)s, (void)t, (void)bufs, (void)nbufs;
  return UV_ENOTSUP;
}

static int x_shutdown(cn_stream *s, cn_transport *t) {
  cn_transport *below = cn__transport_below(s, t);
  layer_of(t)->shuts++;
  return below->vt->shutdown(s, below);
}

static int x_adopt(cn_stream *s, cn_transport *t, const char *p, size_t n) {
  xor_layer *x = layer_of(t);
  size_t at = cn_buf_len(&x->in);
  (void)s;
  int rc = cn_buf_append(&x->in, p, n);
  if (rc == 0) encode(cn_buf_data(&x->in) + at, n, x->key);
  return rc;
}

static void x_close(cn_stream *s, cn_transport *t) {
  xor_layer *x = layer_of(t);
  CHECK(!x->closed);
  x->closed = 1;
  x->reading = 0;
  cn_loop_unpost(s->loop, &x->deliver);
}

static void x_release(cn_stream *s, cn_transport *t) {
  xor_layer *x = layer_of(t);
  (void)s;
  CHECK(x->closed);
  cn_buf_free(&x->in);
  free(x->out);
  free(x);
  released++;
}

/* The reader's buffer, decoded in place; the layer's own byte while it
 * handshakes (the reader may not be reading). */
static void x_alloc(cn_stream *s, cn_transport *t, size_t suggested, uv_buf_t *out) {
  xor_layer *x = layer_of(t);
  if (x->handshaking)
    *out = uv_buf_init(&x->peer_key, 1);
  else
    cn__transport_up_alloc(s, t, suggested, out);
}

static void x_read(cn_stream *s, cn_transport *t, ssize_t nread, const uv_buf_t *buf) {
  xor_layer *x = layer_of(t);
  if (x->handshaking) {
    finish_handshake(s, x, nread);
    return;
  }
  if (nread > 0) encode(buf->base, (size_t)nread, x->key);
  cn__transport_up_read(s, t, nread, buf);
}

static void x_written(cn_stream *s, cn_transport *t, int status) {
  xor_layer *x = layer_of(t);
  if (x->greeting_in_flight) { /* the layer's own write: the writer hears nothing */
    x->greeting_in_flight = 0;
    if (!x->closed && CHECK_EQ_INT(status, 0)) send_held(s, x);
    return;
  }
  free(x->out);
  x->out = NULL;
  if (!x->closed) cn__transport_up_written(s, t, status);
}

static void x_shut(cn_stream *s, cn_transport *t, int status) {
  if (!layer_of(t)->closed) cn__transport_up_shut(s, t, status);
}

static const cn_transport_vt xor_vt = {
    .read_start = x_read_start, .read_stop = x_read_stop, .write = x_write,
    .try_write = x_try_write, .shutdown = x_shutdown, .adopt = x_adopt,
    .close = x_close, .release = x_release, .alloc = x_alloc,
    .read = x_read, .written = x_written, .shut = x_shut,
};

static xor_layer *new_layer(cn_stream *s, unsigned char key) {
  xor_layer *x = calloc(1, sizeof *x);
  x->t.vt = &xor_vt;
  x->s = s;
  x->key = key;
  cn_buf_init(&x->in);
  return x;
}

/* ------------------------------------------------------------ the harness */

static cn_loop *loop;
static cn_stream *s;
static int peer; /* the raw other end */
static int done;

static void on_done(cn_waiter *w, int status) {
  *(int *)w->data = status;
  done = 1;
}

/* Turns the loop until a callback set `done`, draining the peer into sink
 * (when given) between turns, as a slow peer would. */
static void run_until_done(char *sink, size_t cap, size_t *got) {
  int turns = 0;
  while (!done && cn_loop_run(loop, UV_RUN_NOWAIT) >= 0 && ++turns < 10000000) {
    while (sink && *got < cap) {
      ssize_t k = read(peer, sink + *got, cap - *got);
      if (k <= 0) break;
      *got += (size_t)k;
    }
  }
  CHECK(done);
}

static int wait_read(size_t want) {
  cn_waiter w;
  int status = 1;
  cn_waiter_init(&w, on_done, &status);
  done = 0;
  CHECK_EQ_INT(cn_reader_wait(s, &w, want), 0);
  run_until_done(NULL, 0, NULL);
  return status;
}

static int wait_flushed(char *sink, size_t cap, size_t *got) {
  cn_waiter w;
  int status = 1;
  cn_waiter_init(&w, on_done, &status);
  done = 0;
  CHECK_EQ_INT(cn_writer_wait(s, &w, 0), 0);
  run_until_done(sink, cap, got);
  return status;
}

static void wait_closed(void) {
  cn_waiter w;
  int status = 1;
  cn_waiter_init(&w, on_done, &status);
  done = 0;
  cn_stream_close_wait(s, &w);
  run_until_done(NULL, 0, NULL);
  CHECK_EQ_INT(status, 0);
}

static void open_pair(void) {
  int fds[2];
  CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0);
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
  CHECK_EQ_INT(cn_stream_open_fd(loop, fds[0], &s), 0);
  peer = fds[1];
}

static void close_pair(void) {
  cn_stream_unref(s);
  int turns = 0;
  while (cn_loop_run(loop, UV_RUN_ONCE) > 0 && ++turns < 100000) {
  }
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  cn_loop_free(loop);
  if (peer >= 0) close(peer);
}

/* Turns the loop until the peer reads the end of our sending side. */
static void run_until_peer_eof(void) {
  char c;
  ssize_t k = -1;
  int turns = 0;
  while ((k = read(peer, &c, 1)) < 0 && errno == EAGAIN && ++turns < 100000) cn_loop_run(loop, UV_RUN_ONCE);
  CHECK_EQ_INT(k, 0);
}

static void peer_send(const char *p, size_t n, unsigned char key) {
  char buf[64];
  memcpy(buf, p, n);
  encode(buf, n, key);
  CHECK(write(peer, buf, n) == (ssize_t)n);
}

/* The reader's next bytes are `text` (decoded), which is then consumed. */
static void check_read(const char *text) {
  size_t n = strlen(text), len;
  CHECK_EQ_INT(wait_read(n), 0);
  const char *p = cn_reader_peek(s, &len);
  if (CHECK(len >= n)) CHECK(memcmp(p, text, n) == 0);
  cn_reader_consume(s, n);
}

/* The peer received exactly `text`, encoded with key. */
static void check_peer_got(const char *text, unsigned char key) {
  char buf[64];
  size_t n = strlen(text);
  ssize_t k = read(peer, buf, sizeof buf);
  if (!CHECK_EQ_INT(k, (ssize_t)n)) return;
  encode(buf, n, key);
  CHECK(memcmp(buf, text, n) == 0);
}

/* ----------------------------------------------------------------- tests */

/* Both ways, small and large writes, then the peer's EOF and our shutdown,
 * through `layers` stacked layers (the peer sees every key applied). */
static void test_round_trip(int layers) {
  int before = released;
  unsigned char key = 0;
  xor_layer *top = NULL;
  open_pair();
  for (int i = 0; i < layers; i++) {
    top = new_layer(s, i ? K2 : K1);
    key ^= top->key;
    CHECK_EQ_INT(cn__stream_push_transport(s, &top->t), 0);
  }
  CHECK(cn__transport_top(s) == &top->t);

  CHECK_EQ_INT(cn_writer_write(s, "hello", 5), 0);
  CHECK_EQ_INT(wait_flushed(NULL, 0, NULL), 0);
  check_peer_got("hello", key);
  peer_send("world", 5, key);
  check_read("world");

  /* Past the direct-write size: try_write says "not supported", so it queues. */
  char *big = malloc(BIG), *got = malloc(BIG);
  size_t n = 0;
  for (size_t i = 0; i < BIG; i++) big[i] = (char)(i % 251);
  CHECK_EQ_INT(cn_writer_write(s, big, BIG), 0);
  CHECK_EQ_INT(wait_flushed(got, BIG, &n), 0);
  while (n < BIG) {
    ssize_t k = read(peer, got + n, BIG - n);
    if (!CHECK(k > 0)) break;
    n += (size_t)k;
  }
  encode(got, n, key);
  CHECK(n == BIG && memcmp(big, got, BIG) == 0);
  CHECK_EQ_SIZE(cn_stream_bytes_out(s), 5 + BIG);
  free(big);
  free(got);

  cn_writer_close(s); /* shuts down through every layer */
  CHECK_EQ_INT(top->shuts, 1);
  run_until_peer_eof();
  peer_send("bye", 3, key);
  CHECK(shutdown(peer, SHUT_WR) == 0);
  check_read("bye");
  CHECK_EQ_INT(wait_read(1), UV_EOF);
  cn_reader_close(s); /* both halves done: the handle closes */
  wait_closed();
  CHECK_EQ_INT(released - before, layers);
  close_pair();
}

/* Bytes that arrived before the push (the reader holds them) go to the
 * layer and come back decoded, ahead of later ones. */
static void test_hand_off_between_turns(void) {
  int before = released;
  open_pair();
  peer_send("early", 5, K1);
  CHECK_EQ_INT(wait_read(5), 0); /* the waiter leaves them: kept in the reader's buffer */
  CHECK_EQ_SIZE(cn_reader_buffered(s), 5);
  xor_layer *x = new_layer(s, K1);
  CHECK_EQ_INT(cn__stream_push_transport(s, &x->t), 0);
  CHECK_EQ_SIZE(cn_reader_buffered(s), 0); /* given to the layer, not to the program */
  CHECK_EQ_SIZE(cn_buf_len(&x->in), 5);
  peer_send("later", 5, K1);
  check_read("early");
  check_read("later");
  cn_stream_abort(s, CN_ECLOSED);
  wait_closed();
  CHECK_EQ_INT(released - before, 1);
  close_pair();
}

/* A push from inside the read callback (a fiber woken by the read calls
 * starttls): the bytes are still the loop's scratch view. */
static xor_layer *pushed_in_callback;
static void push_on_read(cn_waiter *w, int status) {
  CHECK_EQ_INT(status, 0);
  CHECK_EQ_SIZE(cn_reader_buffered(s), 5);
  *(int *)w->data = cn__stream_push_transport(s, &pushed_in_callback->t);
  CHECK_EQ_SIZE(cn_reader_buffered(s), 0);
  done = 1;
}

static void test_hand_off_in_read_callback(void) {
  int before = released, rc = 1;
  open_pair();
  pushed_in_callback = new_layer(s, K1);
  peer_send("first", 5, K1);
  cn_waiter w;
  cn_waiter_init(&w, push_on_read, &rc);
  done = 0;
  CHECK_EQ_INT(cn_reader_wait(s, &w, 5), 0);
  run_until_done(NULL, 0, NULL);
  CHECK_EQ_INT(rc, 0);
  check_read("first");
  peer_send("next", 4, K1);
  check_read("next");
  cn_stream_abort(s, CN_ECLOSED);
  wait_closed();
  CHECK_EQ_INT(released - before, 1);
  close_pair();
}

/* What a push refuses, and that a refused push changes nothing. */
static void test_push_refused(void) {
  open_pair();
  xor_layer *x = new_layer(s, K1);
  CHECK_EQ_INT(cn_writer_write(s, "plain", 5), 0); /* queued, not flushed yet */
  CHECK_EQ_INT(cn__stream_push_transport(s, &x->t), CN_EBUSY);
  CHECK(cn__transport_top(s) == &s->base);
  CHECK_EQ_INT(wait_flushed(NULL, 0, NULL), 0);
  check_peer_got("plain", 0); /* the old top sent it, unencoded */
  CHECK(shutdown(peer, SHUT_WR) == 0);
  CHECK_EQ_INT(wait_read(1), UV_EOF);
  CHECK_EQ_INT(cn__stream_push_transport(s, &x->t), UV_EOF);
  cn_reader_close(s);
  CHECK_EQ_INT(cn__stream_push_transport(s, &x->t), CN_ECLOSED);
  CHECK(cn__transport_top(s) == &s->base);
  x->closed = 1; /* never pushed: the test frees it */
  x_release(s, &x->t);
  cn_stream_close(s);
  wait_closed();
  close_pair();
}

/* An abort while the layer's delivery task is posted: the task never runs
 * (ASan would see it touch freed memory), the layer is freed once. */
static void test_abort_with_delivery_posted(void) {
  int before = released;
  open_pair();
  peer_send("held", 4, K1);
  CHECK_EQ_INT(wait_read(4), 0);
  xor_layer *x = new_layer(s, K1);
  CHECK_EQ_INT(cn__stream_push_transport(s, &x->t), 0);
  CHECK(x->reading && cn_buf_len(&x->in) == 4); /* its delivery task is posted */
  cn_stream_abort(s, CN_ECLOSED);
  wait_closed();
  CHECK_EQ_INT(released - before, 1);
  close_pair();
}

/* An abort with a write in flight below the layer (the peer reads nothing):
 * the layer is closed, ignores the cancelled write, and is freed once. */
static void test_abort_mid_write(void) {
  int before = released;
  open_pair();
  xor_layer *x = new_layer(s, K1);
  CHECK_EQ_INT(cn__stream_push_transport(s, &x->t), 0);
  char *big = calloc(1, 20 * BIG); /* more than the socket buffers hold */
  CHECK_EQ_INT(cn_writer_write(s, big, 20 * BIG), 0);
  CHECK_EQ_INT(cn_loop_run(loop, UV_RUN_NOWAIT) >= 0, 1);
  CHECK(x->out != NULL); /* in flight: the socket buffer is full */
  cn_stream_abort(s, CN_ECLOSED);
  wait_closed();
  CHECK_EQ_INT(released - before, 1);
  free(big);
  close_pair();
}

/* A reader with room for 2 bytes stops reading inside the read event that
 * filled it: the layer stops mid-batch, keeps the rest, and gives it when
 * the program consumed and reading restarted. */
static void test_hand_off_to_a_small_reader(void) {
  static const char text[] = "abcdefg";
  cn_stream_opts o = {.reader_buffer_size = 2};
  open_pair();
  peer_send(text, 7, K1);
  CHECK_EQ_INT(wait_read(7), 0); /* a wait may grow the buffer past its cap */
  cn_stream_configure(s, &o);
  xor_layer *x = new_layer(s, K1);
  CHECK_EQ_INT(cn__stream_push_transport(s, &x->t), 0);
  size_t at = 0;
  for (int rounds = 0; at < 7 && rounds < 10; rounds++) {
    size_t len;
    CHECK_EQ_INT(wait_read(1), 0);
    const char *p = cn_reader_peek(s, &len);
    CHECK(len <= 2 && at + len <= 7 && memcmp(p, text + at, len) == 0);
    if (at == 0) CHECK(!x->reading && cn_buf_len(&x->in) == 5); /* stopped mid-batch */
    at += len;
    cn_reader_consume(s, len);
  }
  CHECK_EQ_SIZE(at, 7);
  CHECK_EQ_SIZE(cn_buf_len(&x->in), 0);
  cn_stream_abort(s, CN_ECLOSED);
  wait_closed();
  close_pair();
}

/* The peer is gone: the write fails below the layer, and the error comes
 * up through it to the writer; a reader waiting through the layer hears
 * the abort that follows. */
static void test_errors_come_up(void) {
  open_pair();
  xor_layer *x = new_layer(s, K1);
  CHECK_EQ_INT(cn__stream_push_transport(s, &x->t), 0);
  close(peer);
  peer = -1;
  CHECK_EQ_INT(cn_writer_write(s, "lost", 4), 0);
  CHECK_EQ_INT(wait_flushed(NULL, 0, NULL), UV_EPIPE);
  CHECK_EQ_INT(cn_writer_status(s), UV_EPIPE);
  CHECK_EQ_INT(wait_read(1), UV_EOF);
  cn_stream_abort(s, CN_ECLOSED);
  wait_closed();
  close_pair();
}

/* Reads exactly n bytes at the peer, turning the loop meanwhile. */
static void peer_recv(char *buf, size_t n) {
  size_t got = 0;
  int turns = 0;
  while (got < n && ++turns < 100000) {
    ssize_t k = read(peer, buf + got, n - got);
    if (k > 0)
      got += (size_t)k;
    else if (!CHECK(k < 0 && errno == EAGAIN))
      break;
    else
      cn_loop_run(loop, UV_RUN_NOWAIT);
  }
  CHECK_EQ_SIZE(got, n);
}

/* The layer handshakes under a reader that has stopped reading through it
 * (closed here; a full buffer stops it the same way): it writes its
 * greeting and reads the peer's answer below on its own, and the writer's
 * bytes wait for the handshake, then go out encoded with the new key. */
static void test_handshake_under_a_stopped_reader(void) {
  int before = released;
  char buf[8];
  open_pair();
  xor_layer *x = new_layer(s, 0);
  CHECK_EQ_INT(cn__stream_push_transport(s, &x->t), 0);
  CHECK_EQ_INT(start_handshake(s, x), 0);
  cn_reader_close(s);
  CHECK(!x->reading && x->handshaking);
  CHECK_EQ_INT(cn_writer_write(s, "after", 5), 0);
  peer_recv(buf, 5);
  CHECK(memcmp(buf, greeting, 5) == 0);
  CHECK(read(peer, buf, 1) < 0 && errno == EAGAIN); /* the writer's bytes are held */
  char key = K1;
  CHECK(write(peer, &key, 1) == 1);
  CHECK_EQ_INT(wait_flushed(NULL, 0, NULL), 0);
  CHECK(!x->handshaking && x->key == K1);
  check_peer_got("after", K1);
  cn_writer_close(s); /* both halves done: shut down through the layer, closed */
  CHECK_EQ_INT(x->shuts, 1);
  wait_closed();
  CHECK_EQ_INT(read(peer, buf, 1), 0);
  CHECK_EQ_INT(released - before, 1);
  close_pair();
}

/* The peer's end came first and the reader is closed: the layer is still
 * asked to end its side (TLS sends close_notify), and the plain transport
 * under it skips shutdown(2), since the close sends the FIN. */
static void test_layer_shuts_after_the_peers_end(void) {
  char c;
  open_pair();
  xor_layer *x = new_layer(s, K1);
  CHECK_EQ_INT(cn__stream_push_transport(s, &x->t), 0);
  CHECK(shutdown(peer, SHUT_WR) == 0);
  CHECK_EQ_INT(wait_read(1), UV_EOF);
  cn_stream_close(s);
  CHECK_EQ_INT(x->shuts, 1);
  wait_closed();
  CHECK_EQ_INT(read(peer, &c, 1), 0);
  close_pair();
}

int main(void) {
  cn_ignore_sigpipe(); /* the peer that is gone */
  test_round_trip(1);
  test_round_trip(2);
  test_hand_off_between_turns();
  test_hand_off_in_read_callback();
  test_push_refused();
  test_abort_with_delivery_posted();
  test_abort_mid_write();
  test_hand_off_to_a_small_reader();
  test_errors_come_up();
  test_handshake_under_a_stopped_reader();
  test_layer_shuts_after_the_peers_end();
  return check_summary();
}
