/* test_udp.c: the core's datagram socket from plain C, on loopback. A
 * datagram is read only while a waiter waits and is seen only inside the
 * waiter's callback; a send the kernel cannot take at once is queued as a
 * copy and its waiter hears the outcome; a second sender meanwhile gets
 * CN_EBUSY; closing ends every wait with CN_ECLOSED and frees the socket.
 * A full send buffer cannot be made on demand on loopback, so the test
 * defines sendmsg itself (the executable's symbol comes before libc's):
 * while `sends_blocked` is set it fails with EAGAIN, as a full buffer
 * would. libuv's own queue then sends with sendmmsg, a raw system call
 * that the test does not intercept. */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "loop_check.h"
#include "coronet.h"

static int sends_blocked;

typedef ssize_t (*sendmsg_fn)(int, const struct msghdr *, int);

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
  if (sends_blocked) {
    errno = EAGAIN;
    return -1;
  }
  return ((sendmsg_fn)dlsym(RTLD_NEXT, "sendmsg"))(fd, msg, flags);
}

typedef struct {
  cn_udp *u;
  int calls, status;
  char data[16];
  size_t len;
  cn_addr from;
} outcome;

/* Copies the datagram: it is valid only during this call. */
static void on_datagram(cn_waiter *w, int status) {
  outcome *o = w->data;
  o->calls++;
  o->status = status;
  if (status < 0) return;
  const char *p = cn_udp_datagram(o->u, &o->len, &o->from);
  memcpy(o->data, p, o->len < sizeof o->data ? o->len : sizeof o->data);
}

static void on_status(cn_waiter *w, int status) {
  outcome *o = w->data;
  o->calls++;
  o->status = status;
}

static void run_to_end(cn_loop *loop) {
  int turns = 0;
  while (cn_loop_run(loop, UV_RUN_ONCE) > 0 && ++turns < 100000) {
  }
  CHECK(turns < 100000);
}

static cn_udp *bound(cn_loop *loop, cn_addr *where) {
  cn_udp *u = NULL;
  cn_addr any;
  cn_addr_ip(&any, "127.0.0.1", 0);
  if (!CHECK_EQ_INT(cn_udp_new(loop, AF_INET, &u), 0)) return NULL;
  CHECK_EQ_INT(cn_udp_bind(u, &any, 0), 0);
  CHECK_EQ_INT(cn_udp_sockname(u, where), 0);
  return u;
}

static void test_send_and_receive(void) {
  cn_loop *loop;
  cn_addr at_a, at_b;
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  cn_udp *a = bound(loop, &at_a), *b = bound(loop, &at_b);
  outcome got = {.u = b};
  cn_waiter w;
  cn_waiter_init(&w, on_datagram, &got);
  cn_slice parts[] = {{"hel", 3}, {"lo", 2}};
  CHECK_EQ_INT(cn_udp_send(a, &at_b, parts, 2, &w), 0); /* taken at once: w unused */
  CHECK_EQ_INT(cn_udp_recv(b, &w), 0);
  CHECK_EQ_INT(got.calls, 0); /* never inside the starting call */
  cn_waiter other;
  cn_waiter_init(&other, on_datagram, &got);
  CHECK_EQ_INT(cn_udp_recv(b, &other), CN_EBUSY);
  check_run_until(loop, &got.calls);
  CHECK_EQ_INT(got.status, 5);
  CHECK_EQ_SIZE(got.len, 5);
  CHECK(memcmp(got.data, "hello", 5) == 0);
  CHECK(cn_addr_equal(&got.from, &at_a));
  cn_addr v6;
  cn_addr_ip(&v6, "::1", 9);
  CHECK_EQ_INT(cn_udp_send(a, &v6, parts, 2, &w), UV_EAFNOSUPPORT);
  static char big[CN_UDP_MAX_IPV4 + 1];
  cn_slice too_big = {big, sizeof big};
  CHECK_EQ_INT(cn_udp_send(a, &at_b, &too_big, 1, &w), UV_EMSGSIZE);
  cn_udp_close(a);
  cn_udp_close(b);
  run_to_end(loop);
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  cn_loop_free(loop);
}

/* Blocked sends: queued (1), the waiter hears 0 once the kernel takes the
 * datagram, which then arrives whole. */
static void test_queued_send(void) {
  cn_loop *loop;
  cn_addr at_a, at_b;
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  cn_udp *a = bound(loop, &at_a), *b = bound(loop, &at_b);
  outcome sent = {.u = a}, got = {.u = b};
  cn_waiter w, second, rw;
  cn_waiter_init(&w, on_status, &sent);
  cn_waiter_init(&second, on_status, &sent);
  cn_waiter_init(&rw, on_datagram, &got);
  char text[] = "queued";
  cn_slice part = {text, 6}, one = {"x", 1};
  sends_blocked = 1;
  CHECK_EQ_INT(cn_udp_send(a, &at_b, &part, 1, &w), 1);
  memcpy(text, "XXXXXX", 6); /* the core sends its copy */
  CHECK_EQ_INT(cn_udp_send(a, &at_b, &one, 1, &second), CN_EBUSY);
  CHECK_EQ_INT(sent.calls, 0);
  sends_blocked = 0;
  check_run_until(loop, &sent.calls);
  CHECK_EQ_INT(sent.status, 0);
  CHECK_EQ_INT(cn_udp_recv(b, &rw), 0);
  check_run_until(loop, &got.calls);
  CHECK_EQ_SIZE(got.len, 6);
  CHECK(memcmp(got.data, "queued", 6) == 0);
  /* Queued again, then closed before the kernel takes it: CN_ECLOSED. */
  sent.calls = 0;
  sends_blocked = 1;
  CHECK_EQ_INT(cn_udp_send(a, &at_b, &part, 1, &w), 1);
  cn_udp_close(a);
  sends_blocked = 0;
  check_run_until(loop, &sent.calls);
  CHECK_EQ_INT(sent.status, CN_ECLOSED);
  cn_udp_close(b);
  run_to_end(loop);
  CHECK_EQ_INT(sent.calls, 1);
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  cn_loop_free(loop);
}

/* A waiter that gives up leaves the queued send running, and the next
 * sender is not busy. */
static void test_cancelled_send_waiter(void) {
  cn_loop *loop;
  cn_addr at_a, at_b;
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  cn_udp *a = bound(loop, &at_a), *b = bound(loop, &at_b);
  outcome sent = {.u = a};
  cn_waiter w;
  cn_waiter_init(&w, on_status, &sent);
  cn_slice part = {"abc", 3};
  sends_blocked = 1;
  CHECK_EQ_INT(cn_udp_send(a, &at_b, &part, 1, &w), 1);
  cn_waiter_cancel(&w);
  CHECK_EQ_INT(cn_udp_send(a, &at_b, &part, 1, &w), 1); /* queued behind it, not busy */
  sends_blocked = 0;
  check_run_until(loop, &sent.calls);
  CHECK_EQ_INT(sent.status, 0);
  cn_udp_close(a);
  cn_udp_close(b);
  run_to_end(loop);
  CHECK_EQ_INT(sent.calls, 1);
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  cn_loop_free(loop);
}

static void test_close_while_waiting(void) {
  cn_loop *loop;
  cn_addr at;
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  cn_udp *u = bound(loop, &at);
  outcome got = {.u = u}, closed = {0};
  cn_waiter w, done;
  cn_waiter_init(&w, on_datagram, &got);
  cn_waiter_init(&done, on_status, &closed);
  CHECK_EQ_INT(cn_udp_recv(u, &w), 0);
  cn_udp_close_wait(u, &done);
  cn_udp_close(u);
  CHECK_EQ_INT(got.calls, 0);
  run_to_end(loop);
  CHECK_EQ_INT(got.calls, 1);
  CHECK_EQ_INT(got.status, CN_ECLOSED);
  CHECK_EQ_INT(closed.calls, 1);
  CHECK_EQ_INT(closed.status, 0);
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  cn_loop_free(loop);
}

int main(void) {
  test_send_and_receive();
  test_queued_send();
  test_cancelled_send_waiter();
  test_close_while_waiting();
  return check_summary();
}
