/* test_reader_watch.c: cn_reader_watch from plain C over a socketpair.
 * Watchers hear of every read event (bytes, the end, a close) once, from the
 * loop, never inside the call that attached them; any number wait at once;
 * they never make the reader read past its cap; a cancelled one never runs;
 * and one whose callback closes the stream and drops the last reference
 * leaves the others (and the read callback) safe. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include "check.h"
#include "stream.h"

#define CAP 64u

static int in_start;
#define STARTING(call) (in_start = 1, (call), in_start = 0)

typedef struct watch {
  cn_waiter w;
  cn_stream *s;
  int fired, status, again, close_stream;
  size_t most; /* the most bytes buffered at a wake-up */
} watch;

static void on_event(cn_waiter *w, int status) {
  watch *x = w->data;
  CHECK(!in_start);
  x->fired++;
  x->status = status;
  if (status) return; /* the end: a close tells on a later turn, when the stream may be gone */
  if (cn_reader_buffered(x->s) > x->most) x->most = cn_reader_buffered(x->s);
  if (x->close_stream) {
    cn_stream_abort(x->s, CN_ECLOSED);
    cn_stream_unref(x->s); /* the last reference: the read callback holds its own */
    return;
  }
  if (x->again) STARTING(cn_reader_watch(x->s, &x->w));
}

static void watch_init(watch *x, cn_stream *s) {
  memset(x, 0, sizeof *x);
  x->s = s;
  cn_waiter_init(&x->w, on_event, x);
}

static void turn(cn_loop *loop, int times) {
  for (int i = 0; i < times; i++) cn_loop_run(loop, UV_RUN_NOWAIT);
}

static void run_to_end(cn_loop *loop) {
  int turns = 0;
  while (cn_loop_run(loop, UV_RUN_ONCE) > 0 && ++turns < 100000) {
  }
  CHECK(turns < 100000);
}

/* A stream over one end of a socketpair with a CAP-byte reader; fds[1] is the peer. */
static int open_pair(cn_loop **loop, cn_stream **s, int fds[2]) {
  if (!CHECK_EQ_INT(cn_loop_new(loop, NULL), 0)) return 0;
  if (!CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0)) return 0;
  if (!CHECK_EQ_INT(cn_stream_open_fd(*loop, fds[0], s), 0)) return 0;
  cn_stream_opts o;
  memset(&o, 0, sizeof o);
  o.reader_buffer_size = CAP;
  cn_stream_configure(*s, &o);
  return 1;
}

static void close_pair(cn_loop *loop, cn_stream *s, int fds[2]) {
  if (s) {
    cn_stream_abort(s, CN_ECLOSED);
    cn_stream_unref(s);
  }
  run_to_end(loop);
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  cn_loop_free(loop);
  if (fds[1] >= 0) close(fds[1]);
}

static void test_bytes_end_and_cancel(void) {
  cn_loop *loop;
  cn_stream *s;
  int fds[2];
  watch a, b, gone, late;
  if (!open_pair(&loop, &s, fds)) return;
  watch_init(&a, s);
  watch_init(&b, s);
  watch_init(&gone, s);
  STARTING(cn_reader_watch(s, &a.w));
  STARTING(cn_reader_watch(s, &b.w));
  STARTING(cn_reader_watch(s, &gone.w));
  cn_waiter_cancel(&gone.w);
  turn(loop, 5);
  CHECK_EQ_INT(a.fired, 0); /* nothing arrived yet */
  CHECK(write(fds[1], "hello", 5) == 5);
  turn(loop, 5);
  CHECK_EQ_INT(a.fired, 1);
  CHECK_EQ_INT(b.fired, 1);
  CHECK_EQ_INT(a.status, 0);
  CHECK_EQ_INT(gone.fired, 0);
  CHECK_EQ_SIZE(cn_reader_buffered(s), 5);
  CHECK(!cn_reader_is_busy(s)); /* watchers are not the waiter */
  STARTING(cn_reader_watch(s, &a.w));
  close(fds[1]);
  fds[1] = -1;
  turn(loop, 5);
  CHECK_EQ_INT(a.fired, 2);
  CHECK_EQ_INT(a.status, UV_EOF);
  CHECK_EQ_INT(b.fired, 1); /* it did not watch again */
  watch_init(&late, s);
  STARTING(cn_reader_watch(s, &late.w)); /* the input already ended: next turn */
  CHECK_EQ_INT(late.fired, 0);
  turn(loop, 2);
  CHECK_EQ_INT(late.fired, 1);
  CHECK_EQ_INT(late.status, UV_EOF);
  CHECK_EQ_SIZE(cn_reader_buffered(s), 5); /* the bytes stay */
  close_pair(loop, s, fds);
}

/* A watcher that always watches again and never consumes: the reader stops at its cap. */
static void test_cap_holds(void) {
  cn_loop *loop;
  cn_stream *s;
  int fds[2];
  watch a;
  char data[CAP * 10];
  if (!open_pair(&loop, &s, fds)) return;
  watch_init(&a, s);
  a.again = 1;
  STARTING(cn_reader_watch(s, &a.w));
  memset(data, 'c', sizeof data);
  CHECK(write(fds[1], data, sizeof data) == (ssize_t)sizeof data);
  turn(loop, 50);
  CHECK(a.fired >= 1);
  CHECK(a.most <= CAP);
  CHECK_EQ_SIZE(cn_reader_buffered(s), CAP);
  int before = a.fired;
  cn_reader_consume(s, CAP); /* room again: reading restarts and the watcher hears of it */
  turn(loop, 50);
  CHECK(a.fired > before);
  CHECK(a.most <= CAP);
  CHECK_EQ_SIZE(cn_reader_buffered(s), CAP);
  close_pair(loop, s, fds);
  CHECK_EQ_INT(a.status, CN_ECLOSED);
}

/* The first watcher closes the stream and drops its last reference from its callback. */
static void test_close_from_callback(void) {
  cn_loop *loop;
  cn_stream *s;
  int fds[2];
  watch closer, other;
  if (!open_pair(&loop, &s, fds)) return;
  watch_init(&closer, s);
  watch_init(&other, s);
  closer.close_stream = 1;
  STARTING(cn_reader_watch(s, &closer.w));
  STARTING(cn_reader_watch(s, &other.w));
  CHECK(write(fds[1], "x", 1) == 1);
  turn(loop, 5);
  CHECK_EQ_INT(closer.fired, 1);
  CHECK_EQ_INT(other.fired, 1);
  CHECK_EQ_INT(other.status, 0); /* it was told of the bytes, in the same event */
  run_to_end(loop);
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  cn_loop_free(loop);
  close(fds[1]);
}

/* Closing the reader, or aborting the stream, tells every watcher on the next turn. */
static void test_close_tells(void) {
  for (int abort = 0; abort <= 1; abort++) {
    cn_loop *loop;
    cn_stream *s;
    int fds[2];
    watch a;
    if (!open_pair(&loop, &s, fds)) return;
    watch_init(&a, s);
    STARTING(cn_reader_watch(s, &a.w));
    in_start = 1;
    if (abort)
      cn_stream_abort(s, CN_ECLOSED);
    else
      cn_reader_close(s);
    in_start = 0;
    turn(loop, 2);
    CHECK_EQ_INT(a.fired, 1);
    CHECK_EQ_INT(a.status, CN_ECLOSED);
    close_pair(loop, s, fds);
  }
}

int main(void) {
  test_bytes_end_and_cancel();
  test_cap_holds();
  test_close_from_callback();
  test_close_tells();
  return check_summary();
}
