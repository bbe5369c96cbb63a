/* test_pending.c: the polling interface of the core, from plain C. A
 * paused server's cn_server_wait_pending tells of a client in the backlog
 * (never inside the call, accepting nothing), cancelling it stops the
 * polling; cn_server_accept_pending takes one client without on_conn;
 * cn_poll_wait watches a descriptor of the caller's and refuses one that a
 * handle of the loop already holds. */
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include "check.h"
#include "coronet.h"

static int conns; /* on_conn calls: none expected */

static void on_conn(cn_server *srv, cn_stream *conn, const cn_addr *peer, void *data) {
  (void)srv;
  (void)peer;
  (void)data;
  conns++;
  cn_stream_abort(conn, CN_ECLOSED);
  cn_stream_unref(conn);
}

typedef struct {
  int calls, status;
} outcome;

static void record(cn_waiter *w, int status) {
  outcome *o = w->data;
  o->calls++;
  o->status = status;
}

/* Runs the loop until o heard, for at most about 2 s: a wait that never
 * fires fails its check instead of hanging the test. */
static void run_until(cn_loop *loop, const outcome *o) {
  for (int turns = 0; !o->calls && turns < 2000; turns++) {
    cn_loop_run(loop, UV_RUN_NOWAIT);
    if (!o->calls) usleep(1000);
  }
}

static void drain(cn_loop *loop) {
  for (int turns = 0; cn_loop_live(loop) > 0 && turns < 1000; turns++) cn_loop_run(loop, UV_RUN_NOWAIT);
}

static cn_server *paused_server(cn_loop *loop) {
  cn_server_opts opts = {0};
  cn_addr addr;
  cn_server *srv = NULL;
  opts.paused = 1;
  cn_addr_ip(&addr, "127.0.0.1", 0);
  CHECK_EQ_INT(cn_server_listen(loop, &addr, &opts, on_conn, NULL, &srv), 0);
  return srv;
}

/* A blocking client of srv; the kernel completes the handshake at once. */
static int connect_to(cn_server *srv) {
  cn_addr addr;
  cn_server_address(srv, &addr);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&addr.ss, addr.len) == 0);
  return fd;
}

static void test_wait_then_accept(void) {
  cn_loop *loop;
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  cn_server *srv = paused_server(loop);
  cn_stream *s = NULL;
  cn_addr peer;
  CHECK_EQ_INT(cn_server_accept_pending(srv, &s, &peer), UV_EAGAIN);
  int client = connect_to(srv);
  outcome o = {0, 1};
  cn_waiter w;
  cn_waiter_init(&w, record, &o);
  CHECK_EQ_INT(cn_server_wait_pending(srv, &w), 0);
  CHECK_EQ_INT(o.calls, 0); /* never inside the call, though a client is pending */
  run_until(loop, &o);
  CHECK_EQ_INT(o.calls, 1);
  CHECK_EQ_INT(o.status, 0);
  cn_server_stats st;
  cn_server_stats_get(srv, &st);
  CHECK_EQ_INT((long long)st.accepted, 0); /* it accepted nothing */
  if (CHECK_EQ_INT(cn_server_accept_pending(srv, &s, &peer), 0)) {
    CHECK_EQ_INT(cn_server_num_connections(srv), 1);
    cn_stream_close(s);
    cn_stream_unref(s);
  }
  CHECK_EQ_INT(conns, 0);
  close(client);
  cn_server_close(srv, 0);
  cn_server_unref(srv);
  drain(loop);
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  cn_loop_free(loop);
}

static void test_cancel_stops_polling(void) {
  cn_loop *loop;
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  cn_server *srv = paused_server(loop);
  CHECK_EQ_INT(cn_loop_alive(loop), 0); /* paused: nothing polls */
  outcome o = {0, 1};
  cn_waiter w;
  cn_waiter_init(&w, record, &o);
  CHECK_EQ_INT(cn_server_wait_pending(srv, &w), 0);
  CHECK(cn_loop_alive(loop)); /* the wait polls */
  cn_waiter_cancel(&w);
  CHECK_EQ_INT(cn_loop_alive(loop), 0); /* and stops with it */
  int client = connect_to(srv);
  cn_loop_run(loop, UV_RUN_NOWAIT);
  CHECK_EQ_INT(o.calls, 0);
  close(client);
  cn_server_close(srv, 0);
  cn_server_unref(srv);
  drain(loop);
  cn_loop_free(loop);
}

static void test_close_and_refusals(void) {
  cn_loop *loop;
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  cn_server *srv = paused_server(loop);
  outcome o = {0, 1};
  cn_waiter w;
  cn_waiter_init(&w, record, &o);
  CHECK_EQ_INT(cn_server_wait_pending(srv, &w), 0);
  cn_server_close(srv, 0);
  CHECK_EQ_INT(o.calls, 0); /* deferred to the loop */
  run_until(loop, &o);
  CHECK_EQ_INT(o.calls, 1);
  CHECK_EQ_INT(o.status, CN_ECLOSED);
  CHECK_EQ_INT(cn_server_wait_pending(srv, &w), CN_ECLOSED);
  cn_stream *s = NULL;
  cn_addr peer;
  CHECK_EQ_INT(cn_server_accept_pending(srv, &s, &peer), CN_ECLOSED);
  cn_server_unref(srv);
  cn_server_opts opts = {0};
  cn_addr addr;
  cn_addr_ip(&addr, "127.0.0.1", 0);
  CHECK_EQ_INT(cn_server_listen(loop, &addr, &opts, on_conn, NULL, &srv), 0);
  CHECK_EQ_INT(cn_server_wait_pending(srv, &w), CN_EBUSY); /* not paused */
  CHECK(!cn_waiter_pending(&w));
  cn_server_close(srv, 0);
  cn_server_unref(srv);
  drain(loop);
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  cn_loop_free(loop);
}

static int log_lines;

static void count_log(void *data, const char *msg) {
  (void)data;
  (void)msg;
  log_lines++;
}

/* Out of descriptors: the error comes back (counted, logged, the server
 * backing off as its loop does); a wait meanwhile fires once the back-off
 * ends, and the client is taken then. */
static void test_emfile(void) {
  cn_loop *loop;
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  cn_loop_set_logger(loop, count_log, NULL);
  cn_server *srv = paused_server(loop);
  int client = connect_to(srv);
  int lowest_free = dup(0);
  close(lowest_free);
  struct rlimit old, low;
  getrlimit(RLIMIT_NOFILE, &old);
  low = old;
  low.rlim_cur = (rlim_t)lowest_free;
  CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
  cn_stream *s = NULL;
  cn_addr peer;
  int rc = cn_server_accept_pending(srv, &s, &peer);
  setrlimit(RLIMIT_NOFILE, &old);
  CHECK_EQ_INT(rc, UV_EMFILE);
  cn_server_stats st;
  cn_server_stats_get(srv, &st);
  CHECK_EQ_INT((long long)st.accept_errors, 1);
  CHECK_EQ_INT(log_lines, 1);
  /* Linux keeps the client queued on EMFILE; valgrind's accept wrapper
   * takes it and closes it. A second client is pending either way. */
  int second = connect_to(srv);
  outcome o = {0, 1};
  cn_waiter w;
  cn_waiter_init(&w, record, &o);
  CHECK_EQ_INT(cn_server_wait_pending(srv, &w), 0);
  run_until(loop, &o);
  CHECK_EQ_INT(o.status, 0);
  if (CHECK_EQ_INT(cn_server_accept_pending(srv, &s, &peer), 0)) {
    cn_stream_close(s);
    cn_stream_unref(s);
  }
  close(client);
  close(second);
  cn_server_close(srv, 0);
  cn_server_unref(srv);
  drain(loop);
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  cn_loop_free(loop);
}

static void test_poll_wait(void) {
  cn_loop *loop;
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  int pair[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
  outcome o = {0, 0};
  cn_waiter w;
  cn_waiter_init(&w, record, &o);
  CHECK_EQ_INT(cn_poll_wait(loop, pair[0], 0, &w), UV_EINVAL);
  CHECK_EQ_INT(cn_poll_wait(loop, pair[0], UV_DISCONNECT, &w), UV_EINVAL);
  CHECK_EQ_INT(cn_poll_wait(loop, -1, UV_READABLE, &w), UV_EBADF);
  CHECK_EQ_INT(cn_poll_wait(loop, pair[0], UV_READABLE, &w), 0);
  CHECK_EQ_SIZE(cn_loop_live(loop), 1);
  CHECK(cn_poll_is_watched(loop, pair[0]));
  outcome o2 = {0, 0};
  cn_waiter w2;
  cn_waiter_init(&w2, record, &o2);
  CHECK_EQ_INT(cn_poll_wait(loop, pair[0], UV_WRITABLE, &w2), UV_EEXIST);
  CHECK(write(pair[1], "x", 1) == 1);
  CHECK_EQ_INT(o.calls, 0);
  run_until(loop, &o);
  CHECK_EQ_INT(o.status, UV_READABLE);
  drain(loop);
  CHECK(!cn_poll_is_watched(loop, pair[0]));
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);

  /* cancelled: the watcher closes */
  CHECK_EQ_INT(cn_poll_wait(loop, pair[1], UV_READABLE, &w2), 0);
  cn_waiter_cancel(&w2);
  drain(loop);
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  CHECK_EQ_INT(o2.calls, 0);

  /* a server's listening descriptor is taken */
  cn_server *srv = paused_server(loop);
  CHECK_EQ_INT(cn_poll_wait(loop, cn_server_fileno(srv), UV_READABLE, &w2), UV_EEXIST);
  cn_server_close(srv, 0);
  cn_server_unref(srv);

  /* so is a datagram socket's */
  cn_udp *u;
  cn_addr any;
  cn_addr_ip(&any, "127.0.0.1", 0);
  if (CHECK_EQ_INT(cn_udp_new(loop, AF_INET, &u), 0)) {
    CHECK_EQ_INT(cn_udp_bind(u, &any, 0), 0);
    CHECK(cn_poll_is_watched(loop, cn_udp_fileno(u)));
    CHECK_EQ_INT(cn_poll_wait(loop, cn_udp_fileno(u), UV_READABLE, &w2), UV_EEXIST);
    cn_udp_close(u);
  }
  drain(loop);

  /* close_all ends a wait with CN_ECLOSED, later */
  o2.calls = 0;
  CHECK_EQ_INT(cn_poll_wait(loop, pair[1], UV_READABLE, &w2), 0);
  cn_loop_close_all(loop, 0);
  CHECK_EQ_INT(o2.calls, 0);
  run_until(loop, &o2);
  CHECK_EQ_INT(o2.status, CN_ECLOSED);
  drain(loop);
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  close(pair[0]);
  close(pair[1]);
  CHECK_EQ_INT(cn_poll_wait(loop, pair[1], UV_READABLE, &w2), UV_EBADF);
  cn_loop_free(loop);
}

int main(void) {
  test_wait_then_accept();
  test_cancel_stops_polling();
  test_close_and_refusals();
  test_emfile();
  test_poll_wait();
  return check_summary();
}
