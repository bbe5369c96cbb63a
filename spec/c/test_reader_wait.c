/* test_reader_wait.c: a wait for more than the cap, made while the reader is
 * reading (here from the previous waiter's callback, inside the read event),
 * keeps it reading past the cap until the new waiter has its bytes: adding a
 * waiter only raises the reader's target, so cn_reader_wait leaves a reading
 * reader as it is. And a wait on a stopped reader (full to its cap) starts
 * it again. Over a socketpair. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include "check.h"
#include "stream.h"

#define CAP 4u
#define BIG_WANT 20u

static struct {
  cn_stream *s;
  cn_waiter second;
  int first_fired, second_fired, second_status;
} t;

static void on_second(cn_waiter *w, int status) {
  (void)w;
  t.second_fired = 1;
  t.second_status = status;
}

/* Runs inside the read event, while the reader reads. */
static void on_first(cn_waiter *w, int status) {
  (void)w;
  CHECK_EQ_INT(status, 0);
  t.first_fired = 1;
  CHECK(t.s->r.reading);
  cn_waiter_init(&t.second, on_second, NULL);
  CHECK_EQ_INT(cn_reader_wait(t.s, &t.second, BIG_WANT), 0);
}

static void turn_until(cn_loop *loop, const int *flag) {
  for (int i = 0; i < 1000 && !*flag; i++) cn_loop_run(loop, UV_RUN_NOWAIT);
  CHECK(*flag);
}

static void test_wait_past_cap_while_reading(void) {
  cn_loop *loop;
  int fds[2];
  cn_waiter first;
  memset(&t, 0, sizeof t);
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  if (!CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0)) return;
  if (!CHECK_EQ_INT(cn_stream_open_fd(loop, fds[0], &t.s), 0)) return;
  t.s->r.cap = CAP;
  cn_waiter_init(&first, on_first, NULL);
  CHECK_EQ_INT(cn_reader_wait(t.s, &first, 1), 0);
  CHECK(write(fds[1], "0123456789", 10) == 10);
  turn_until(loop, &t.first_fired);
  CHECK(t.s->r.reading); /* 10 buffered, past the cap of 4: the wait for 20 keeps it on */
  CHECK(write(fds[1], "abcdefghij", 10) == 10);
  turn_until(loop, &t.second_fired);
  CHECK_EQ_INT(t.second_status, 0);
  CHECK_EQ_SIZE(cn_reader_buffered(t.s), BIG_WANT);
  CHECK(!t.s->r.reading); /* no waiter and past the cap: stopped */

  /* Stopped and full: a wait for more starts it again. */
  CHECK(write(fds[1], "klmno", 5) == 5);
  t.second_fired = 0;
  cn_waiter_init(&t.second, on_second, NULL);
  CHECK_EQ_INT(cn_reader_wait(t.s, &t.second, BIG_WANT + 5), 0);
  CHECK(t.s->r.reading);
  turn_until(loop, &t.second_fired);
  CHECK_EQ_SIZE(cn_reader_buffered(t.s), BIG_WANT + 5);

  cn_stream_abort(t.s, CN_ECLOSED);
  cn_stream_unref(t.s);
  for (int i = 0; i < 100000 && cn_loop_run(loop, UV_RUN_ONCE) > 0; i++) {
  }
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  cn_loop_free(loop);
  close(fds[1]);
}

int main(void) {
  test_wait_past_cap_while_reading();
  return check_summary();
}
