/* test_write_now.c: cn_writer_write_now on an idle writer hands the bytes to
 * the kernel inside the call (nothing pending, the peer can read them before
 * the loop turns); behind pending bytes it queues, so order holds; what the
 * kernel does not take is queued and flushed as any write; a closed writer
 * refuses. Over a socketpair. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include "check.h"
#include "socket_peer.h"
#include "stream.h"

#define BIG (1024u * 1024u)

static socket_peer peer; /* the socketpair's other end */

static void on_flushed(cn_waiter *w, int status) {
  CHECK_EQ_INT(status, 0);
  *(int *)w->data = 1;
}

/* Runs the loop, draining the peer, until the writer has nothing pending. */
static void flush_all(cn_loop *loop, cn_stream *s) {
  int flushed = 0, turns = 0;
  cn_waiter w;
  cn_waiter_init(&w, on_flushed, &flushed);
  CHECK_EQ_INT(cn_writer_wait(s, &w, 0), 0);
  while (!flushed && cn_loop_run(loop, UV_RUN_NOWAIT) >= 0 && ++turns < 10000000) socket_peer_drain(&peer);
  CHECK(flushed);
  socket_peer_drain(&peer);
}

static void end(cn_loop *loop, cn_stream *s, int fd) {
  int turns = 0;
  cn_stream_abort(s, CN_ECLOSED);
  cn_stream_unref(s);
  while (cn_loop_run(loop, UV_RUN_ONCE) > 0 && ++turns < 100000) {
  }
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  cn_loop_free(loop);
  close(fd);
  free(peer.buf);
  memset(&peer, 0, sizeof peer);
}

static cn_stream *open_pair(cn_loop **loop, size_t peer_cap) {
  int fds[2];
  cn_stream *s = NULL;
  if (!CHECK_EQ_INT(cn_loop_new(loop, NULL), 0)) exit(1);
  if (!CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0)) exit(1);
  if (!CHECK_EQ_INT(cn_stream_open_fd(*loop, fds[0], &s), 0)) exit(1);
  peer.fd = fds[1];
  peer.buf = malloc(peer_cap);
  peer.cap = peer_cap;
  peer.len = 0;
  return s;
}

/* Idle: the bytes are in the kernel when the call returns. */
static void test_idle_writes_at_once(void) {
  cn_loop *loop;
  cn_stream *s = open_pair(&loop, 64);
  CHECK_EQ_INT(cn_writer_write_now(s, "hello", 5), 0);
  CHECK_EQ_SIZE(cn_writer_pending(s), 0);
  CHECK_EQ_SIZE(cn_stream_bytes_out(s), 5);
  socket_peer_drain(&peer); /* the loop has not turned */
  CHECK_EQ_SIZE(peer.len, 5);
  CHECK(memcmp(peer.buf, "hello", 5) == 0);
  CHECK_EQ_INT(cn_writer_write_now(s, "", 0), 0);
  end(loop, s, peer.fd);
}

/* Behind pending bytes it queues: the bytes leave in the order written. */
static void test_behind_pending_queues(void) {
  cn_loop *loop;
  cn_stream *s = open_pair(&loop, 64);
  CHECK_EQ_INT(cn_writer_write(s, "ab", 2), 0);
  CHECK_EQ_INT(cn_writer_write_now(s, "cd", 2), 0);
  CHECK_EQ_SIZE(cn_writer_pending(s), 4);
  socket_peer_drain(&peer);
  CHECK_EQ_SIZE(peer.len, 0);
  flush_all(loop, s);
  CHECK_EQ_SIZE(peer.len, 4);
  CHECK(memcmp(peer.buf, "abcd", 4) == 0);
  end(loop, s, peer.fd);
}

/* More than the socket takes: the rest is queued and flushed, in order. */
static void test_rest_is_queued(void) {
  cn_loop *loop;
  cn_stream *s = open_pair(&loop, BIG);
  char *sent = malloc(BIG);
  for (size_t i = 0; i < BIG; i++) sent[i] = (char)('a' + i % 23);
  CHECK_EQ_INT(cn_writer_write_now(s, sent, BIG), 0);
  size_t taken = (size_t)cn_stream_bytes_out(s);
  CHECK(taken > 0 && taken < BIG);
  CHECK_EQ_SIZE(cn_writer_pending(s), BIG - taken);
  flush_all(loop, s);
  CHECK_EQ_SIZE(cn_stream_bytes_out(s), BIG);
  CHECK_EQ_SIZE(peer.len, BIG);
  CHECK(memcmp(sent, peer.buf, BIG) == 0);
  free(sent);
  end(loop, s, peer.fd);
}

static void test_closed_writer_refuses(void) {
  cn_loop *loop;
  cn_stream *s = open_pair(&loop, 64);
  cn_writer_close(s);
  CHECK_EQ_INT(cn_writer_write_now(s, "x", 1), CN_ECLOSED);
  CHECK_EQ_SIZE(cn_writer_pending(s), 0);
  end(loop, s, peer.fd);
}

int main(void) {
  test_idle_writes_at_once();
  test_behind_pending_queues();
  test_rest_is_queued();
  test_closed_writer_refuses();
  return check_summary();
}
