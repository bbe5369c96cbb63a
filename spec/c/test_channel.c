/* test_channel.c: messages cross threads through a cn_channel in order and
 * complete; a waiting receiver is woken from another thread (never inside
 * the call that started the wait); a cancelled wait leaves nothing behind;
 * a second receiver is refused. */
#include <stdio.h>
#include <stdlib.h>
#include "check.h"
#include "coronet.h"

#define MESSAGES 2000

static int send_failures; /* read by the main thread after the join */

static void send_numbers(void *arg) {
  cn_channel *ch = arg;
  char text[32];
  for (int i = 0; i < MESSAGES; i++) {
    int n = snprintf(text, sizeof text, "%d", i);
    if (cn_channel_send(ch, text, (size_t)n) < 0) send_failures++;
  }
  if (cn_channel_send(ch, "end", 3) < 0) send_failures++;
}

typedef struct {
  cn_channel *ch;
  cn_loop *loop;
  int next, ended, wakes, in_wait_call;
} receiver;

static void on_message(cn_waiter *w, int status);

static void wait_more(receiver *r, cn_waiter *w) {
  r->in_wait_call = 1;
  CHECK_EQ_INT(cn_channel_wait(r->ch, r->loop, w), 0);
  r->in_wait_call = 0;
}

static void on_message(cn_waiter *w, int status) {
  receiver *r = w->data;
  char *p;
  size_t n;
  CHECK_EQ_INT(status, 0);
  CHECK(!r->in_wait_call);
  r->wakes++;
  while (cn_channel_take(r->ch, &p, &n) == 0) {
    if (n == 3 && memcmp(p, "end", 3) == 0) {
      r->ended = 1;
    } else {
      char expect[32];
      int len = snprintf(expect, sizeof expect, "%d", r->next++);
      CHECK((size_t)len == n && memcmp(p, expect, n) == 0);
    }
    free(p);
  }
  if (!r->ended) wait_more(r, w);
}

static void test_messages_cross_threads_in_order(void) {
  cn_loop *loop;
  cn_channel *ch;
  cn_thread *thread;
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0) || !CHECK_EQ_INT(cn_channel_new(&ch), 0)) return;
  receiver r = {ch, loop, 0, 0, 0, 0};
  cn_waiter w;
  cn_waiter_init(&w, on_message, &r);
  wait_more(&r, &w);
  cn_waiter second;
  cn_waiter_init(&second, on_message, &r);
  CHECK_EQ_INT(cn_channel_wait(ch, loop, &second), CN_EBUSY);
  CHECK_EQ_INT(cn_thread_start(&thread, send_numbers, ch), 0);
  while (!r.ended && cn_loop_run(loop, UV_RUN_ONCE) >= 0) {
  }
  CHECK_EQ_INT(cn_thread_join(thread), 0);
  CHECK_EQ_INT(send_failures, 0);
  CHECK_EQ_INT(r.next, MESSAGES);
  CHECK(r.wakes >= 1);
  CHECK(!cn_waiter_pending(&w));
  while (cn_loop_run(loop, UV_RUN_NOWAIT) > 0) {
  }
  CHECK(!cn_loop_alive(loop)); /* the wait's async handle is gone */
  cn_channel_unref(ch);
  cn_loop_free(loop);
}

static void never(cn_waiter *w, int status) {
  (void)w;
  (void)status;
  CHECK(0);
}

static void test_cancelled_wait_leaves_nothing(void) {
  cn_loop *loop;
  cn_channel *ch;
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0) || !CHECK_EQ_INT(cn_channel_new(&ch), 0)) return;
  cn_waiter w;
  cn_waiter_init(&w, never, NULL);
  CHECK_EQ_INT(cn_channel_send(ch, "queued", 6), 0);
  CHECK_EQ_INT(cn_channel_wait(ch, loop, &w), 0); /* a message is there: woken next turn, not now */
  cn_waiter_cancel(&w);
  while (cn_loop_run(loop, UV_RUN_NOWAIT) > 0) {
  }
  CHECK(!cn_loop_alive(loop));
  char *p;
  size_t n;
  if (CHECK_EQ_INT(cn_channel_take(ch, &p, &n), 0)) { /* still queued */
    CHECK(n == 6 && memcmp(p, "queued", 6) == 0);
    free(p);
  }
  CHECK_EQ_INT(cn_channel_take(ch, &p, &n), UV_EAGAIN);
  CHECK_EQ_INT(cn_channel_send(ch, "left", 4), 0); /* freed with the channel */
  cn_channel_unref(ch);
  cn_loop_free(loop);
}

int main(void) {
  test_messages_cross_threads_in_order();
  test_cancelled_wait_leaves_nothing();
  return check_summary();
}
