/* test_transfer.c: the transfer pump (cn_transfer_start) from plain C over
 * two socketpairs: src reads what its peer writes, the pump moves it to
 * dst's writer, dst's peer reads it. Every byte arrives in order and EOF
 * shuts dst's sending side down; the caller's waiter fires exactly once,
 * never inside the start; the writer never holds more than its mark plus
 * one chunk while dst's peer does not read; a cancel mid-wait stops the
 * pump for good; a close of the destination mid-transfer ends it with the
 * writer's side named, even after the test dropped its own reference. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include "check.h"
#include "stream.h"

#define CAP 4096u /* src's reader buffer */
#define HWM 8192u /* dst's writer mark */

static int in_start;

typedef struct fixture {
  cn_loop *loop;
  cn_stream *src, *dst;
  int src_peer, dst_peer; /* the test's ends */
  cn_transfer t;
  cn_waiter done;
  int fired, status;
} fixture;

static void on_done(cn_waiter *w, int status) {
  fixture *f = w->data;
  CHECK(!in_start);
  f->fired++;
  f->status = status;
}

static void turn(cn_loop *loop, int times) {
  for (int i = 0; i < times; i++) cn_loop_run(loop, UV_RUN_NOWAIT);
}

static int open_stream(cn_loop *loop, cn_stream **s, int *peer, size_t cap, size_t hwm) {
  int fds[2];
  if (!CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0)) return 0;
  CHECK(fcntl(fds[1], F_SETFL, O_NONBLOCK) == 0);
  if (!CHECK_EQ_INT(cn_stream_open_fd(loop, fds[0], s), 0)) return 0;
  cn_stream_opts o;
  memset(&o, 0, sizeof o);
  o.reader_buffer_size = cap;
  o.writer_buffer_size = hwm;
  cn_stream_configure(*s, &o);
  *peer = fds[1];
  return 1;
}

static int setup(fixture *f) {
  memset(f, 0, sizeof *f);
  if (!CHECK_EQ_INT(cn_loop_new(&f->loop, NULL), 0)) return 0;
  if (!open_stream(f->loop, &f->src, &f->src_peer, CAP, 0)) return 0;
  if (!open_stream(f->loop, &f->dst, &f->dst_peer, 0, HWM)) return 0;
  cn_waiter_init(&f->done, on_done, f);
  return 1;
}

static void start(fixture *f, int close_writer) {
  in_start = 1;
  CHECK_EQ_INT(cn_transfer_start(&f->t, f->src, f->dst, close_writer, &f->done), CN_TRANSFER_RUNNING);
  in_start = 0;
}

/* Closes what the test still holds and checks that nothing is left. */
static void teardown(fixture *f) {
  int turns = 0;
  if (f->src) {
    cn_stream_abort(f->src, CN_ECLOSED);
    cn_stream_unref(f->src);
  }
  if (f->dst) {
    cn_stream_abort(f->dst, CN_ECLOSED);
    cn_stream_unref(f->dst);
  }
  while (cn_loop_run(f->loop, UV_RUN_ONCE) > 0 && ++turns < 100000) {
  }
  CHECK_EQ_SIZE(cn_loop_live(f->loop), 0);
  cn_loop_free(f->loop);
  close(f->src_peer);
  close(f->dst_peer);
}

/* Reads what dst's peer has, checking it continues the pattern at *next. */
static size_t drain(int fd, size_t *next, int *eof) {
  char buf[65536];
  size_t got = 0;
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n; i++)
      if (!CHECK_EQ_INT(buf[i], (char)((*next + (size_t)i) % 251))) return got;
    *next += (size_t)n;
    got += (size_t)n;
  }
  if (n == 0) *eof = 1;
  return got;
}

/* Writes the pattern from *next to `end` as far as the socket takes it. */
static void feed(int fd, size_t *next, size_t end) {
  char buf[16384];
  while (*next < end) {
    size_t n = end - *next < sizeof buf ? end - *next : sizeof buf;
    for (size_t i = 0; i < n; i++) buf[i] = (char)((*next + i) % 251);
    ssize_t k = write(fd, buf, n);
    if (k <= 0) return;
    *next += (size_t)k;
  }
}

static void test_bytes_and_eof(void) {
  fixture f;
  const size_t total = 4u << 20;
  size_t sent = 0, received = 0;
  int eof = 0, turns = 0;
  if (!setup(&f)) return;
  start(&f, 1);
  CHECK_EQ_INT(f.fired, 0);
  CHECK(cn_reader_is_busy(f.src)); /* the pump's own wait */
  while (!eof && ++turns < 100000) {
    feed(f.src_peer, &sent, total);
    if (sent == total && f.src_peer >= 0) shutdown(f.src_peer, SHUT_WR);
    cn_loop_run(f.loop, UV_RUN_NOWAIT);
    drain(f.dst_peer, &received, &eof);
  }
  CHECK_EQ_INT(f.fired, 1);
  CHECK_EQ_INT(f.status, 0);
  CHECK_EQ_SIZE(received, total);
  CHECK_EQ_SIZE((size_t)cn_transfer_moved(&f.t), total);
  CHECK(eof); /* close_writer shut dst's sending side down */
  CHECK(cn_writer_is_closed(f.dst));
  cn_transfer_stop(&f.t); /* after the end: a no-op */
  turn(f.loop, 3);
  CHECK_EQ_INT(f.fired, 1);
  teardown(&f);
}

/* Bytes and EOF before the start: it ends at once, the bytes moved, with
 * 0 and no callback; the writer is left open without close_writer. */
static void test_eof_at_once(void) {
  fixture f;
  if (!setup(&f)) return;
  CHECK(write(f.src_peer, "abc", 3) == 3);
  shutdown(f.src_peer, SHUT_WR);
  CHECK_EQ_INT(cn_reader_wait(f.src, &f.done, 4), 0); /* let the reader see the EOF */
  turn(f.loop, 3);
  CHECK_EQ_INT(f.fired, 1);
  CHECK_EQ_INT(f.status, UV_EOF);
  f.fired = 0;
  CHECK_EQ_INT(cn_transfer_start(&f.t, f.src, f.dst, 0, &f.done), 0);
  CHECK_EQ_SIZE((size_t)cn_transfer_moved(&f.t), 3);
  CHECK_EQ_SIZE(cn_writer_pending(f.dst), 0); /* the idle writer sent them at once */
  CHECK_EQ_SIZE((size_t)cn_stream_bytes_out(f.dst), 3);
  CHECK(!cn_writer_is_closed(f.dst));
  cn_transfer_stop(&f.t); /* ended: a no-op */
  turn(f.loop, 3);
  CHECK_EQ_INT(f.fired, 0);
  teardown(&f);
}

/* dst's peer never reads: the writer holds at most its mark plus one chunk
 * (a chunk is at most src's cap), src's reader stops at its cap; once the
 * peer reads, the transfer goes on. */
static void test_back_pressure(void) {
  fixture f;
  size_t sent = 0, received = 0, most = 0;
  int eof = 0;
  if (!setup(&f)) return;
  start(&f, 1);
  for (int i = 0; i < 200; i++) {
    feed(f.src_peer, &sent, 64u << 20);
    cn_loop_run(f.loop, UV_RUN_NOWAIT);
    if (cn_writer_pending(f.dst) > most) most = cn_writer_pending(f.dst);
    CHECK(cn_reader_buffered(f.src) <= CAP);
  }
  CHECK(most <= HWM + CAP);
  CHECK(cn_writer_pending(f.dst) > HWM); /* it waits for room */
  CHECK(sent < 64u << 20);               /* and src's peer is held back */
  uint64_t held = cn_transfer_moved(&f.t);
  for (int i = 0; i < 200; i++) {
    drain(f.dst_peer, &received, &eof);
    cn_loop_run(f.loop, UV_RUN_NOWAIT);
  }
  CHECK(cn_transfer_moved(&f.t) > held);
  CHECK_EQ_INT(f.fired, 0);
  teardown(&f);
  CHECK_EQ_INT(f.fired, 1); /* the abort ended it */
  CHECK_EQ_INT(f.status, CN_ECLOSED);
}

/* A cancel while the pump waits for bytes: done never fires, the reader is
 * free again, bytes that come later stay in src. */
static void test_cancel_mid_wait(void) {
  fixture f;
  if (!setup(&f)) return;
  start(&f, 1);
  CHECK(write(f.src_peer, "abc", 3) == 3);
  turn(f.loop, 5);
  CHECK_EQ_SIZE((size_t)cn_transfer_moved(&f.t), 3);
  cn_waiter_cancel(&f.done);
  CHECK(!cn_reader_is_busy(f.src));
  CHECK(write(f.src_peer, "defg", 4) == 4);
  turn(f.loop, 5);
  CHECK_EQ_SIZE((size_t)cn_transfer_moved(&f.t), 3);
  CHECK_EQ_SIZE(cn_reader_buffered(f.src), 4);
  CHECK(!cn_writer_is_closed(f.dst));
  cn_transfer_stop(&f.t); /* after a cancel: a no-op */
  teardown(&f);
  CHECK_EQ_INT(f.fired, 0);
}

/* cn_transfer_stop at once, and a cancel on the turn the pump's own
 * wake-up is queued (a reader close tells on the next turn): done never
 * fires, and nothing more moves. */
static void test_stop_and_cancel_while_queued(void) {
  fixture f;
  size_t sent = 0;
  if (!setup(&f)) return;
  start(&f, 1);
  cn_transfer_stop(&f.t);
  cn_transfer_stop(&f.t);
  CHECK(!cn_reader_is_busy(f.src));
  feed(f.src_peer, &sent, 1000);
  turn(f.loop, 5);
  CHECK_EQ_INT(f.fired, 0);
  CHECK_EQ_SIZE(cn_writer_pending(f.dst), 0);
  CHECK_EQ_SIZE((size_t)cn_transfer_moved(&f.t), 0);
  cn_reader_consume(f.src, cn_reader_buffered(f.src));
  start(&f, 1);
  cn_reader_close(f.src); /* the pump's wait fails on the next turn */
  cn_waiter_cancel(&f.done);
  turn(f.loop, 5);
  CHECK_EQ_INT(f.fired, 0);
  CHECK(!cn_writer_is_closed(f.dst));
  teardown(&f);
}

/* Another waiter on the reader, or one waiting for room in the writer: CN_EBUSY now. */
static void test_busy(void) {
  fixture f;
  cn_waiter other;
  if (!setup(&f)) return;
  cn_waiter_init(&other, on_done, &f);
  CHECK_EQ_INT(cn_reader_wait(f.src, &other, 1), 0);
  CHECK_EQ_INT(cn_transfer_start(&f.t, f.src, f.dst, 1, &f.done), CN_EBUSY);
  cn_waiter_cancel(&other);
  CHECK_EQ_INT(cn_writer_wait(f.dst, &other, 0), 0); /* waits to flush: no room awaited */
  start(&f, 1);
  cn_waiter_cancel(&f.done);
  cn_waiter_cancel(&other);
  teardown(&f);
  CHECK_EQ_INT(f.fired, 0);
}

/* dst closes while the pump waits for room (its peer never reads), and the
 * test drops its reference at once: the pump ends with CN_ECLOSED on the
 * writer's side, once, on a later turn. */
static void test_destination_closes(void) {
  fixture f;
  size_t sent = 0;
  if (!setup(&f)) return;
  start(&f, 1);
  for (int i = 0; i < 100; i++) {
    feed(f.src_peer, &sent, 64u << 20);
    cn_loop_run(f.loop, UV_RUN_NOWAIT);
  }
  CHECK(cn_writer_pending(f.dst) > HWM);
  CHECK_EQ_INT(f.fired, 0);
  in_start = 1;
  cn_stream_abort(f.dst, CN_ECLOSED);
  cn_stream_unref(f.dst);
  in_start = 0;
  f.dst = NULL;
  turn(f.loop, 5);
  CHECK_EQ_INT(f.fired, 1);
  CHECK_EQ_INT(f.status, CN_ECLOSED);
  CHECK_EQ_INT(cn_transfer_writer_failed(&f.t), 1);
  teardown(&f);
  CHECK_EQ_INT(f.fired, 1);
}

/* dst closes while the pump waits for bytes: it ends once they come. */
static void test_destination_closes_while_reading(void) {
  fixture f;
  if (!setup(&f)) return;
  start(&f, 1);
  turn(f.loop, 3);
  cn_writer_close(f.dst);
  turn(f.loop, 3);
  CHECK_EQ_INT(f.fired, 0);
  CHECK(write(f.src_peer, "x", 1) == 1);
  turn(f.loop, 5);
  CHECK_EQ_INT(f.fired, 1);
  CHECK_EQ_INT(f.status, CN_ECLOSED);
  CHECK_EQ_INT(cn_transfer_writer_failed(&f.t), 1);
  CHECK_EQ_SIZE((size_t)cn_transfer_moved(&f.t), 0);
  teardown(&f);
}

/* The source resets: the reader's error, on the reader's side. */
static void test_source_fails(void) {
  fixture f;
  if (!setup(&f)) return;
  start(&f, 1);
  CHECK(write(f.src_peer, "hello", 5) == 5);
  turn(f.loop, 3);
  cn_reader_close(f.src);
  turn(f.loop, 3);
  CHECK_EQ_INT(f.fired, 1);
  CHECK_EQ_INT(f.status, CN_ECLOSED);
  CHECK_EQ_INT(cn_transfer_writer_failed(&f.t), 0);
  CHECK_EQ_SIZE((size_t)cn_transfer_moved(&f.t), 5);
  CHECK(!cn_writer_is_closed(f.dst)); /* only EOF closes the writer */
  teardown(&f);
}

int main(void) {
  test_bytes_and_eof();
  test_eof_at_once();
  test_back_pressure();
  test_cancel_mid_wait();
  test_stop_and_cancel_while_queued();
  test_busy();
  test_destination_closes();
  test_destination_closes_while_reading();
  test_source_fails();
  return check_summary();
}
