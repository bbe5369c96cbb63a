/* test_tls_stream.c: TLS as a transport on streams (tls_transport.c): two
 * streams over a socketpair, a client and a server engine pushed on them,
 * the reader and writer used as on any stream. Certificates: as
 * test_tls.c (CORONET_TLS_CERTS or argv[1]). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include "check.h"
#include "coronet.h"

static const char *cert_dir;
static cn_loop *loop;
static cn_stream *cs, *ss; /* client and server ends */
static cn_tls_ctx *client_ctx, *server_ctx;

static const char *cert(const char *name) {
  static char paths[4][1024];
  static unsigned next;
  char *p = paths[next++ % 4];
  snprintf(p, sizeof paths[0], "%s/%s", cert_dir, name);
  return p;
}

typedef struct outcome {
  int done, status;
} outcome;

static void on_done(cn_waiter *w, int status) {
  outcome *o = w->data;
  o->done = 1;
  o->status = status;
}

/* Runs the loop until every outcome given is done (bounded). */
static void run_until(outcome *a, outcome *b) {
  int turns = 0;
  while (!(a->done && (!b || b->done)) && cn_loop_run(loop, UV_RUN_ONCE) >= 0 && ++turns < 100000) {
  }
  CHECK(a->done && (!b || b->done));
}

static void open_pair(void) {
  int fds[2];
  CHECK_EQ_INT(cn_loop_new(&loop, NULL), 0);
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
  CHECK_EQ_INT(cn_stream_open_fd(loop, fds[0], &cs), 0);
  CHECK_EQ_INT(cn_stream_open_fd(loop, fds[1], &ss), 0);
}

static void close_pair(void) {
  int turns = 0;
  cn_stream_close(cs);
  cn_stream_close(ss);
  cn_stream_unref(cs);
  cn_stream_unref(ss);
  while (cn_loop_run(loop, UV_RUN_ONCE) > 0 && ++turns < 100000) {
  }
  CHECK_EQ_SIZE(cn_loop_live(loop), 0);
  cn_loop_free(loop);
}

static cn_tls_conn *client_conn(const char *name) {
  cn_tls_conn *c = NULL;
  CHECK_EQ_INT(cn_tls_conn_new(&c, client_ctx), 0);
  CHECK_EQ_INT(cn_tls_set_server_name(c, name), 0);
  return c;
}

static cn_tls_conn *server_conn(void) {
  cn_tls_conn *c = NULL;
  CHECK_EQ_INT(cn_tls_conn_new(&c, server_ctx), 0);
  return c;
}

/* Both handshakes over the pair; their outcomes in *co and *so. */
static void handshake(const char *name, outcome *co, outcome *so) {
  cn_waiter cw, sw;
  cn_tls_conn *c = client_conn(name), *srv = server_conn();
  cn_waiter_init(&cw, on_done, co);
  cn_waiter_init(&sw, on_done, so);
  if (!CHECK_EQ_INT(cn_stream_start_tls(cs, c, &cw), 0)) cn_tls_conn_free(c);
  if (!CHECK_EQ_INT(cn_stream_start_tls(ss, srv, &sw), 0)) cn_tls_conn_free(srv);
  CHECK(!co->done && !so->done); /* never inside the call */
  run_until(co, so);
}

/* Reads exactly n bytes from s into p; returns the reader's status. */
static int read_exactly(cn_stream *s, char *p, size_t n) {
  size_t got = 0;
  while (got < n) {
    size_t len;
    const char *q = cn_reader_peek(s, &len);
    if (len == 0) {
      outcome o = {0, 0};
      cn_waiter w;
      cn_waiter_init(&w, on_done, &o);
      if (cn_reader_wait(s, &w, 1) < 0) return cn_reader_status(s);
      run_until(&o, NULL);
      if (o.status) return o.status;
      continue;
    }
    len = len < n - got ? len : n - got;
    memcpy(p + got, q, len);
    cn_reader_consume(s, len);
    got += len;
  }
  return 0;
}

static int wait_end(cn_stream *s) {
  outcome o = {0, 0};
  cn_waiter w;
  size_t len;
  cn_reader_peek(s, &len);
  CHECK_EQ_SIZE(len, 0);
  cn_waiter_init(&w, on_done, &o);
  if (cn_reader_wait(s, &w, 1) < 0) return cn_reader_status(s);
  run_until(&o, NULL);
  return o.status;
}

/* Writes n pattern bytes from `from` while `to` reads them back. */
static void stream_bytes(cn_stream *from, cn_stream *to, size_t n) {
  char *src = malloc(n), *dst = malloc(n);
  for (size_t i = 0; i < n; i++) src[i] = (char)(i * 131 + 7);
  CHECK_EQ_INT(cn_writer_write(from, src, n), 0);
  CHECK_EQ_INT(read_exactly(to, dst, n), 0);
  CHECK(memcmp(src, dst, n) == 0);
  free(src);
  free(dst);
}

/* ----------------------------------------------------------------- tests */

static void test_round_trip_and_close_notify(void) {
  outcome co = {0, 0}, so = {0, 0};
  cn_tls_info info;
  char buf[16];
  open_pair();
  CHECK(cn_stream_tls(cs) == NULL);
  handshake("localhost", &co, &so);
  CHECK_EQ_INT(co.status, 0);
  CHECK_EQ_INT(so.status, 0);
  if (CHECK(cn_stream_tls(cs) != NULL) && CHECK_EQ_INT(cn_tls_get_info(cn_stream_tls(cs), &info), 0))
    CHECK(info.verified);
  stream_bytes(cs, ss, 5);
  stream_bytes(ss, cs, 1u << 20);
  stream_bytes(cs, ss, 3u << 20);
  /* Closing the client's writer sends close_notify: the server reads a clean EOF. */
  CHECK_EQ_INT(cn_writer_write(cs, "bye", 3), 0);
  cn_writer_close(cs);
  CHECK_EQ_INT(read_exactly(ss, buf, 3), 0);
  CHECK(memcmp(buf, "bye", 3) == 0);
  CHECK_EQ_INT(wait_end(ss), UV_EOF);
  /* The other way still works (half close), then the server closes too. */
  stream_bytes(ss, cs, 1000);
  cn_writer_close(ss);
  CHECK_EQ_INT(wait_end(cs), UV_EOF);
  close_pair();
}

static void test_truncation(void) {
  outcome co = {0, 0}, so = {0, 0};
  open_pair();
  handshake("localhost", &co, &so);
  stream_bytes(cs, ss, 10);
  cn_stream_abort(cs, CN_ECLOSED); /* no close_notify */
  CHECK_EQ_INT(wait_end(ss), CN_ETLS_TRUNCATED);
  close_pair();
}

static void test_verify_failure(void) {
  outcome co = {0, 0}, so = {0, 0};
  open_pair();
  handshake("example.com", &co, &so);
  CHECK_EQ_INT(co.status, CN_ETLS_VERIFY);
  CHECK_EQ_STR(cn_tls_conn_message(cn_stream_tls(cs)), "hostname mismatch");
  CHECK_EQ_INT(so.status, CN_ETLS_VERIFY); /* the client's alert */
  CHECK_EQ_INT(wait_end(cs), CN_ETLS_VERIFY);
  close_pair();
}

/* A server reading plain bytes sees the ClientHello first, then starts TLS
 * with it still buffered (starttls): nothing is lost. */
static void test_starttls_with_buffered_hello(void) {
  outcome co = {0, 0}, so = {0, 0}, ro = {0, 0};
  cn_waiter cw, sw, rw;
  cn_tls_conn *c = client_conn("localhost"), *srv;
  open_pair();
  CHECK_EQ_INT(cn_writer_write(cs, "STARTTLS\n", 9), 0);
  cn_waiter_init(&cw, on_done, &co);
  cn_waiter_init(&rw, on_done, &ro);
  CHECK_EQ_INT(cn_reader_wait(ss, &rw, 10), 0); /* the line and at least a byte of the hello */
  /* Once the plain line is flushed, the client starts TLS. */
  {
    outcome fo = {0, 0};
    cn_waiter fw;
    cn_waiter_init(&fw, on_done, &fo);
    CHECK_EQ_INT(cn_writer_wait(cs, &fw, 0), 0);
    run_until(&fo, NULL);
  }
  CHECK_EQ_INT(cn_stream_start_tls(cs, c, &cw), 0);
  run_until(&ro, NULL);
  {
    size_t len;
    const char *p = cn_reader_peek(ss, &len);
    CHECK(len > 9 && memcmp(p, "STARTTLS\n", 9) == 0);
    cn_reader_consume(ss, 9);
  }
  srv = server_conn();
  cn_waiter_init(&sw, on_done, &so);
  CHECK_EQ_INT(cn_stream_start_tls(ss, srv, &sw), 0);
  run_until(&co, &so);
  CHECK_EQ_INT(co.status, 0);
  CHECK_EQ_INT(so.status, 0);
  stream_bytes(cs, ss, 100);
  stream_bytes(ss, cs, 100);
  srv = server_conn();
  CHECK_EQ_INT(cn_stream_start_tls(ss, srv, &sw), CN_EBUSY); /* refused: srv stays ours */
  cn_tls_conn_free(srv);
  close_pair();
}

/* Garbage instead of a ClientHello fails the server's handshake. */
static void test_garbage_hello(void) {
  outcome so = {0, 0};
  cn_waiter sw;
  open_pair();
  CHECK_EQ_INT(cn_writer_write(cs, "GET / HTTP/1.1\r\n\r\n", 18), 0);
  cn_waiter_init(&sw, on_done, &so);
  CHECK_EQ_INT(cn_stream_start_tls(ss, server_conn(), &sw), 0);
  run_until(&so, NULL);
  CHECK_EQ_INT(so.status, CN_ETLS_HANDSHAKE);
  CHECK(strlen(cn_tls_conn_message(cn_stream_tls(ss))) > 0);
  close_pair();
}

/* The stream closing mid-handshake: the waiter hears CN_ECLOSED, all is freed. */
static void test_close_mid_handshake(void) {
  outcome so = {0, 0};
  cn_waiter sw;
  open_pair();
  cn_waiter_init(&sw, on_done, &so);
  CHECK_EQ_INT(cn_stream_start_tls(ss, server_conn(), &sw), 0);
  cn_loop_run(loop, UV_RUN_NOWAIT);
  cn_stream_close(ss);
  run_until(&so, NULL);
  CHECK_EQ_INT(so.status, CN_ECLOSED);
  close_pair();
}

/* The handshake's waiter cancelled (a timeout, a cancelled fiber): the
 * handshake ends, and a write held for it fails at once with CN_ECLOSED
 * (else a close would wait for it until the close timeout). */
static void test_cancelled_handshake_fails_held_write(void) {
  outcome co = {0, 0};
  cn_waiter cw;
  int turns = 0;
  open_pair();
  cn_waiter_init(&cw, on_done, &co);
  CHECK_EQ_INT(cn_stream_start_tls(cs, client_conn("localhost"), &cw), 0);
  CHECK_EQ_INT(cn_writer_write(cs, "held", 4), 0);
  cn_loop_run(loop, UV_RUN_NOWAIT); /* the hello goes out; the server side is silent */
  cn_waiter_cancel(&cw);
  while (cn_writer_status(cs) == 0 && ++turns < 1000) cn_loop_run(loop, UV_RUN_NOWAIT);
  CHECK_EQ_INT(cn_writer_status(cs), CN_ECLOSED);
  CHECK(!co.done); /* a cancelled waiter is never told */
  close_pair();
}

/* A reader waiting (in another fiber, for bytes of the plain protocol): busy. */
static void test_start_while_reader_waits(void) {
  outcome ro = {0, 0};
  cn_waiter rw, cw;
  cn_tls_conn *c = client_conn("localhost");
  open_pair();
  cn_waiter_init(&rw, on_done, &ro);
  cn_waiter_init(&cw, on_done, &ro);
  CHECK_EQ_INT(cn_reader_wait(cs, &rw, 1), 0);
  CHECK_EQ_INT(cn_stream_start_tls(cs, c, &cw), CN_EBUSY);
  CHECK(cn_stream_tls(cs) == NULL);
  cn_tls_conn_free(c);
  cn_waiter_cancel(&rw);
  close_pair();
}

int main(int argc, char **argv) {
  char msg[256];
  cn_tls_ctx_opts co = {0}, so = {0};
  cert_dir = argc > 1 ? argv[1] : getenv("CORONET_TLS_CERTS");
  if (!cert_dir) {
    fprintf(stderr, "test_tls_stream: give the certificate directory as argument or CORONET_TLS_CERTS\n");
    return 1;
  }
  cn_ignore_sigpipe();
  co.ca_file = cert("ca.pem");
  so.server = 1;
  so.cert_file = cert("server.pem");
  so.key_file = cert("server.key");
  CHECK_EQ_INT(cn_tls_ctx_new(&client_ctx, &co, msg, sizeof msg), 0);
  CHECK_EQ_INT(cn_tls_ctx_new(&server_ctx, &so, msg, sizeof msg), 0);
  test_round_trip_and_close_notify();
  test_truncation();
  test_verify_failure();
  test_starttls_with_buffered_hello();
  test_garbage_hello();
  test_close_mid_handshake();
  test_cancelled_handshake_fails_held_write();
  test_start_while_reader_waits();
  cn_tls_ctx_unref(client_ctx);
  cn_tls_ctx_unref(server_ctx);
  return check_summary();
}
