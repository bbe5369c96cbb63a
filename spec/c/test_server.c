/* test_server.c: the listener's own accept loop never spins and never stops
 * for good on errors of the listening socket itself. A listener shut down
 * under the server (shutdown(2) on its descriptor) makes every accept fail
 * with EINVAL while the poll reports a hang-up at every turn: the server
 * must log, pause (doubling) and try again, not loop at full speed. */
#include <string.h>
#include <sys/socket.h>
#include "check.h"
#include "coronet.h"

static struct {
  int lines, conns;
} seen;

static void count_log(void *data, const char *msg) {
  (void)data;
  (void)msg;
  seen.lines++;
}

static void on_conn(cn_server *srv, cn_stream *conn, const cn_addr *peer, void *data) {
  (void)srv;
  (void)peer;
  (void)data;
  seen.conns++;
  cn_stream_abort(conn, CN_ECLOSED);
  cn_stream_unref(conn);
}

static void on_timer(cn_timer *t, void *data) {
  (void)t;
  *(int *)data = 1;
}

static void test_broken_listener_backs_off(void) {
  cn_loop *loop;
  cn_server *srv;
  cn_addr addr;
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  cn_loop_set_logger(loop, count_log, NULL);
  CHECK_EQ_INT(cn_addr_ip(&addr, "127.0.0.1", 0), 0);
  if (!CHECK_EQ_INT(cn_server_listen(loop, &addr, NULL, on_conn, NULL, &srv), 0)) return;
  CHECK(shutdown(cn_server_fileno(srv), SHUT_RDWR) == 0);

  cn_timer *timer;
  int done = 0, turns = 0;
  CHECK_EQ_INT(cn_timer_new(loop, &timer), 0);
  cn_timer_start(timer, 300, on_timer, &done);
  while (!done && turns < 100000) {
    cn_loop_run(loop, UV_RUN_ONCE);
    turns++;
  }
  cn_server_stats stats;
  cn_server_stats_get(srv, &stats);
  CHECK(done);
  CHECK(turns < 100);               /* paused between tries, not spinning */
  CHECK(stats.accept_errors >= 3);  /* and tried again after each pause */
  CHECK(seen.lines >= 1 && seen.lines <= 12); /* said so, at a bounded rate */
  CHECK_EQ_INT(seen.conns, 0);

  cn_timer_close(timer);
  cn_server_close(srv, 1);
  cn_server_unref(srv);
  while (cn_loop_run(loop, UV_RUN_ONCE) > 0 && ++turns < 100000) {
  }
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  cn_loop_free(loop);
}

int main(void) {
  test_broken_listener_backs_off();
  return check_summary();
}
