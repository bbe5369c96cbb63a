/* test_writer.c: the writer hands the kernel at most max_chunk bytes per
 * system call and sends the rest after, so a buffer longer than a uv_buf_t
 * can describe (4 GiB) is split, never cut. The test lowers the stream's
 * max_chunk to 7 bytes and checks that every byte arrives, in order, over a
 * socketpair: through the queued path (a small write) and the direct path
 * (a write past CN_DIRECT_WRITE_MIN on an idle writer). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include "check.h"
#include "socket_peer.h"
#include "stream.h"

#define SMALL 10000u
#define LARGE 40000u
#define CHUNK 7u

static socket_peer peer; /* the socketpair's other end */

/* Turns the loop without blocking, reading the peer's end between turns
 * (small writes fill a socket buffer long before their bytes do). */
static void run_until(cn_loop *loop, const int *flag) {
  int turns = 0;
  while (!*flag && cn_loop_run(loop, UV_RUN_NOWAIT) >= 0 && ++turns < 10000000) socket_peer_drain(&peer);
  CHECK(*flag);
}

static void run_to_end(cn_loop *loop) {
  int turns = 0;
  while (cn_loop_run(loop, UV_RUN_ONCE) > 0 && ++turns < 100000) {
  }
  CHECK(turns < 100000);
}

static void on_flushed(cn_waiter *w, int status) {
  CHECK_EQ_INT(status, 0);
  *(int *)w->data = 1;
}

static void test_split_writes(void) {
  cn_loop *loop;
  int fds[2];
  cn_stream *s;
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  if (!CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0)) return;
  if (!CHECK_EQ_INT(cn_stream_open_fd(loop, fds[0], &s), 0)) return;
  s->w.max_chunk = CHUNK;

  size_t total = SMALL + LARGE;
  char *sent = malloc(total);
  peer.fd = fds[1];
  peer.buf = malloc(total);
  peer.cap = total;
  for (size_t i = 0; i < total; i++) sent[i] = (char)('a' + i % 23);
  CHECK_EQ_INT(cn_writer_write(s, sent, SMALL), 0);
  int flushed = 0;
  cn_waiter w;
  cn_waiter_init(&w, on_flushed, &flushed);
  CHECK_EQ_INT(cn_writer_wait(s, &w, 0), 0);
  run_until(loop, &flushed);
  CHECK_EQ_INT(cn_writer_write(s, sent + SMALL, LARGE), 0); /* idle and large: the direct path */
  flushed = 0;
  CHECK_EQ_INT(cn_writer_wait(s, &w, 0), 0);
  run_until(loop, &flushed);

  CHECK_EQ_SIZE(cn_writer_pending(s), 0);
  CHECK_EQ_SIZE(cn_stream_bytes_out(s), total);
  socket_peer_drain(&peer);
  CHECK_EQ_SIZE(peer.len, total);
  CHECK(memcmp(sent, peer.buf, total) == 0);
  char extra;
  CHECK(read(fds[1], &extra, 1) < 0 && errno == EAGAIN);

  cn_stream_abort(s, CN_ECLOSED);
  cn_stream_unref(s);
  run_to_end(loop);
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  cn_loop_free(loop);
  close(fds[1]);
  free(sent);
  free(peer.buf);
}

int main(void) {
  test_split_writes();
  return check_summary();
}
