/* test_core_echo.c: drives the C core from plain C (no Lua) over loopback:
 * an echo server and a client exchanging 100 KiB, a refused connect, a
 * timer, and an aborted connect. Every callback must run from the loop,
 * never inside the call that started it, and exactly once. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "check.h"
#include "coronet.h"

/* Set around every call that registers a callback; a callback that sees it
 * set ran inside its starting call (the core promises it never does). */
static int in_start;
#define STARTING(call) (in_start = 1, (call), in_start = 0)
#define FROM_LOOP() CHECK(!in_start)

/* Runs the loop until nothing keeps it alive (bounded, to fail rather than hang). */
static void run_to_end(cn_loop *loop) {
  int turns = 0;
  while (cn_loop_run(loop, UV_RUN_ONCE) > 0 && ++turns < 100000) {
  }
  CHECK(turns < 100000);
}

/* A TCP socket bound to 127.0.0.1 on a port the OS picks; listening if asked
 * (and never accepting). Returns the fd, the port in *port. */
static int raw_socket(int do_listen, int *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (!CHECK(fd >= 0)) return -1;
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sin;
  int ok = CHECK(bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0) &&
           (!do_listen || CHECK(listen(fd, 4) == 0)) &&
           CHECK(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
  if (!ok) {
    close(fd);
    return -1;
  }
  *port = ntohs(sin.sin_port);
  return fd;
}

/* ------------------------------------------------------------------ echo */

#define ECHO_TOTAL (100u * 1024u)

typedef struct echo_conn {
  cn_stream *s;
  cn_waiter w;
} echo_conn;

static struct {
  cn_loop *loop;
  cn_server *srv;
  cn_connect *op;
  cn_stream *client;
  cn_waiter connect_w, read_w, client_closed_w, srv_closed_w;
  char *sent, *got;
  size_t received;
  int conns, echo_ends, echo_end_status, connects, compared, client_closed, srv_closed, ends;
  size_t echoed;
} E;

static void on_srv_closed(cn_waiter *w, int status) {
  FROM_LOOP();
  CHECK(w == &E.srv_closed_w);
  CHECK_EQ_INT(status, 0);
  E.srv_closed++;
}

/* Once the client stream is closed and the server side saw the end. */
static void close_server_when_both_ended(void) {
  if (++E.ends < 2) return;
  cn_server_close(E.srv, 1);
  cn_waiter_init(&E.srv_closed_w, on_srv_closed, NULL);
  STARTING(cn_server_close_wait(E.srv, &E.srv_closed_w));
}

/* Server side: echo whatever is buffered, then wait for more; on the end, close. */
static void echo_on_data(cn_waiter *w, int status) {
  echo_conn *c = w->data;
  FROM_LOOP();
  size_t len;
  const char *p = cn_reader_peek(c->s, &len);
  if (len) {
    CHECK_EQ_INT(cn_writer_write(c->s, p, len), 0);
    E.echoed += len;
    cn_reader_consume(c->s, len);
  }
  if (status == 0 && cn_reader_status(c->s) == 0) {
    int rc;
    STARTING(rc = cn_reader_wait(c->s, &c->w, cn_reader_buffered(c->s) + 1));
    CHECK_EQ_INT(rc, 0);
    return;
  }
  E.echo_ends++;
  E.echo_end_status = status;
  cn_stream_close(c->s);
  cn_stream_unref(c->s);
  free(c);
  close_server_when_both_ended();
}

static void on_conn(cn_server *srv, cn_stream *conn, const cn_addr *peer, void *data) {
  (void)peer;
  FROM_LOOP();
  CHECK(srv == E.srv);
  CHECK(data == &E);
  E.conns++;
  echo_conn *c = malloc(sizeof *c);
  if (!CHECK(c != NULL)) {
    cn_stream_unref(conn);
    return;
  }
  c->s = conn;
  cn_waiter_init(&c->w, echo_on_data, c);
  int rc;
  STARTING(rc = cn_reader_wait(conn, &c->w, cn_reader_buffered(conn) + 1));
  CHECK_EQ_INT(rc, 0);
}

static void on_client_closed(cn_waiter *w, int status) {
  FROM_LOOP();
  CHECK_EQ_INT(status, 0);
  CHECK(cn_stream_is_closed(E.client));
  E.client_closed++;
  cn_stream_unref(E.client);
  E.client = NULL;
  close_server_when_both_ended();
}

static void client_finish(void) {
  cn_waiter_init(&E.client_closed_w, on_client_closed, NULL);
  cn_stream_close(E.client);
  STARTING(cn_stream_close_wait(E.client, &E.client_closed_w));
}

/* Client side: collect the echo; once it is all here, compare and close. */
static void client_on_data(cn_waiter *w, int status) {
  FROM_LOOP();
  size_t len;
  const char *p = cn_reader_peek(E.client, &len);
  if (len) {
    if (!CHECK(E.received + len <= ECHO_TOTAL)) len = ECHO_TOTAL - E.received;
    memcpy(E.got + E.received, p, len);
    E.received += len;
    cn_reader_consume(E.client, cn_reader_buffered(E.client));
  }
  if (E.received == ECHO_TOTAL) {
    E.compared++;
    CHECK(memcmp(E.sent, E.got, ECHO_TOTAL) == 0);
    client_finish();
    return;
  }
  if (!CHECK_EQ_INT(status, 0)) {
    client_finish();
    return;
  }
  int rc;
  STARTING(rc = cn_reader_wait(E.client, w, cn_reader_buffered(E.client) + 1));
  CHECK_EQ_INT(rc, 0);
}

static void client_on_connect(cn_waiter *w, int status) {
  FROM_LOOP();
  E.connects++;
  if (!CHECK_EQ_INT(status, 0)) return;
  if (!CHECK_EQ_INT(cn_connect_take(E.op, &E.client), 0) || !CHECK(E.client != NULL)) return;
  E.op = NULL;
  cn_addr peer;
  if (CHECK_EQ_INT(cn_stream_peername(E.client, &peer), 0)) {
    cn_addr srv_addr;
    cn_server_address(E.srv, &srv_addr);
    CHECK(cn_addr_equal(&peer, &srv_addr));
  }
  /* Several writes of mixed sizes: tiny ones that coalesce and ones large
   * enough to take the direct path. */
  static const size_t chunks[] = {1, 99, 900, 20000, 3000, 40000, 17, 6983};
  size_t off = 0;
  for (size_t i = 0; i < sizeof chunks / sizeof chunks[0] && off < ECHO_TOTAL; i++) {
    size_t n = chunks[i] < ECHO_TOTAL - off ? chunks[i] : ECHO_TOTAL - off;
    CHECK_EQ_INT(cn_writer_write(E.client, E.sent + off, n), 0);
    off += n;
  }
  if (off < ECHO_TOTAL) CHECK_EQ_INT(cn_writer_write(E.client, E.sent + off, ECHO_TOTAL - off), 0);
  cn_waiter_init(&E.read_w, client_on_data, NULL);
  int rc;
  STARTING(rc = cn_reader_wait(E.client, &E.read_w, 1));
  CHECK_EQ_INT(rc, 0);
  (void)w;
}

static void test_echo(void) {
  memset(&E, 0, sizeof E);
  E.sent = malloc(ECHO_TOTAL);
  E.got = malloc(ECHO_TOTAL);
  if (!CHECK(E.sent && E.got)) goto out;
  for (size_t i = 0; i < ECHO_TOTAL; i++) E.sent[i] = (char)((i * 7u + i / 251u) & 0xff);

  if (!CHECK_EQ_INT(cn_loop_new(&E.loop, NULL), 0)) goto out;
  cn_addr any;
  CHECK_EQ_INT(cn_addr_ip(&any, "127.0.0.1", 0), 0);
  int rc;
  STARTING(rc = cn_server_listen(E.loop, &any, NULL, on_conn, &E, &E.srv));
  if (!CHECK_EQ_INT(rc, 0)) goto free_loop;
  cn_addr addr;
  CHECK_EQ_INT(cn_server_address(E.srv, &addr), 0);
  int port = cn_addr_port(&addr);
  CHECK(port > 0 && port <= 65535);

  cn_connect_opts opts = {.addr = &addr, .timeout_ms = 5000};
  cn_waiter_init(&E.connect_w, client_on_connect, NULL);
  STARTING(rc = cn_connect_start(E.loop, &opts, &E.connect_w, &E.op));
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(E.connects, 0);

  run_to_end(E.loop);

  CHECK_EQ_INT(E.conns, 1);
  CHECK_EQ_INT(E.connects, 1);
  CHECK_EQ_INT(E.compared, 1);
  CHECK_EQ_SIZE(E.received, ECHO_TOTAL);
  CHECK_EQ_SIZE(E.echoed, ECHO_TOTAL);
  CHECK_EQ_INT(E.echo_ends, 1);
  CHECK(E.echo_end_status == UV_EOF || E.echo_end_status == CN_ECLOSED);
  CHECK_EQ_INT(E.client_closed, 1);
  CHECK_EQ_INT(E.srv_closed, 1);
  if (E.srv) {
    CHECK(cn_server_is_close_finished(E.srv));
    cn_server_stats st;
    cn_server_stats_get(E.srv, &st);
    CHECK_EQ_INT(st.accepted, 1);
    CHECK_EQ_INT(st.connections, 0);
    CHECK_EQ_INT(st.bytes_in, ECHO_TOTAL);
    CHECK_EQ_INT(st.bytes_out, ECHO_TOTAL);
    cn_server_unref(E.srv); /* the reference cn_server_listen gave us */
  }
  CHECK_EQ_SIZE(cn_loop_live(E.loop), 0);
free_loop:
  if (cn_loop_live(E.loop) == 0) cn_loop_free(E.loop);
out:
  free(E.sent);
  free(E.got);
}

/* --------------------------------------------------------------- refused */

static int refused_calls, refused_status;
static cn_connect *refused_op;

static void on_refused(cn_waiter *w, int status) {
  FROM_LOOP();
  refused_calls++;
  refused_status = status;
  cn_stream *s = (cn_stream *)w; /* poison: take must overwrite it */
  CHECK_EQ_INT(cn_connect_take(refused_op, &s), status);
  CHECK(s == NULL);
}

/* A port that is bound but not listening refuses, and stays ours meanwhile. */
static void test_refused(void) {
  int port = 0, fd = raw_socket(0, &port);
  if (fd < 0) return;
  cn_loop *loop;
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) goto out;
  cn_addr addr;
  CHECK_EQ_INT(cn_addr_ip(&addr, "127.0.0.1", port), 0);
  cn_connect_opts opts = {.addr = &addr, .timeout_ms = 5000};
  cn_waiter w;
  cn_waiter_init(&w, on_refused, NULL);
  int rc;
  STARTING(rc = cn_connect_start(loop, &opts, &w, &refused_op));
  if (CHECK_EQ_INT(rc, 0)) {
    CHECK_EQ_INT(refused_calls, 0);
    CHECK(cn_waiter_pending(&w));
    run_to_end(loop);
    CHECK_EQ_INT(refused_calls, 1);
    CHECK_EQ_INT(refused_status, UV_ECONNREFUSED);
    CHECK_EQ_STR(cn_err_kind(refused_status), "refused");
  }
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  if (cn_loop_live(loop) == 0) cn_loop_free(loop);
out:
  close(fd);
}

/* ----------------------------------------------------------------- timer */

static int timer_calls;
static uint64_t timer_started;

static void on_timer(cn_timer *t, void *data) {
  cn_loop *loop = data;
  FROM_LOOP();
  timer_calls++;
  CHECK(cn_loop_now(loop) - timer_started >= 20);
  CHECK(cn_loop_running(loop));
  CHECK_EQ_INT(cn_loop_run(loop, UV_RUN_NOWAIT), UV_EBUSY); /* uv_run is not re-entrant */
  cn_timer_close(t);
}

static void test_timer(void) {
  cn_loop *loop;
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) return;
  cn_timer *t;
  if (CHECK_EQ_INT(cn_timer_new(loop, &t), 0)) {
    timer_started = cn_loop_now(loop);
    STARTING(cn_timer_start(t, 20, on_timer, loop));
    CHECK_EQ_INT(timer_calls, 0);
    run_to_end(loop);
    CHECK_EQ_INT(timer_calls, 1);
    CHECK(!cn_loop_running(loop));
  }
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  cn_loop_free(loop);
}

/* ----------------------------------------------------------------- abort */

static int abort_calls, abort_status;

static void on_aborted(cn_waiter *w, int status) {
  FROM_LOOP();
  abort_calls++;
  abort_status = status;
  (void)w;
}

/* Aborting a connect in flight: the waiter hears UV_ECANCELED on the next
 * turn (not inside cn_connect_abort), and the operation frees itself. */
static void test_abort(void) {
  int port = 0, fd = raw_socket(1, &port); /* listens, never accepts */
  if (fd < 0) return;
  cn_loop *loop;
  if (!CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0)) goto out;
  cn_addr addr;
  CHECK_EQ_INT(cn_addr_ip(&addr, "127.0.0.1", port), 0);
  cn_connect_opts opts = {.addr = &addr, .timeout_ms = 5000};
  cn_waiter w;
  cn_waiter_init(&w, on_aborted, NULL);
  cn_connect *op;
  int rc;
  STARTING(rc = cn_connect_start(loop, &opts, &w, &op));
  if (CHECK_EQ_INT(rc, 0)) {
    STARTING(cn_connect_abort(op));
    CHECK_EQ_INT(abort_calls, 0);
    CHECK(cn_waiter_pending(&w));
    cn_loop_run(loop, UV_RUN_NOWAIT); /* the next turn */
    CHECK_EQ_INT(abort_calls, 1);
    CHECK_EQ_INT(abort_status, UV_ECANCELED);
    CHECK(!cn_waiter_pending(&w));
    run_to_end(loop);
    CHECK_EQ_INT(abort_calls, 1);
  }
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  if (cn_loop_live(loop) == 0) cn_loop_free(loop);
out:
  close(fd);
}

int main(void) {
  cn_ignore_sigpipe();
  test_echo();
  test_refused();
  test_timer();
  test_abort();
  return check_summary();
}
