/* test_tls.c: the TLS engine (csrc/core/tls.c) with no sockets: a client and
 * a server engine pumped against each other in memory. The certificates
 * come from spec/tls/make_certs.sh, in the directory named by
 * CORONET_TLS_CERTS (ctest sets it) or argv[1]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include "check.h"
#include "coronet.h"

static const char *cert_dir;

/* The path of a file in the certificate directory (one of a few static slots). */
static const char *cert(const char *name) {
  static char paths[8][1024];
  static unsigned next;
  char *p = paths[next++ % 8];
  snprintf(p, sizeof paths[0], "%s/%s", cert_dir, name);
  return p;
}

static int queue_empty(void) { return ERR_peek_error() == 0; }

static cn_tls_ctx *server_ctx_with(cn_tls_ctx_opts o) {
  cn_tls_ctx *ctx = NULL;
  char msg[512];
  o.server = 1;
  if (!o.cert_file) o.cert_file = cert("server.pem");
  if (!o.key_file) o.key_file = cert("server.key");
  if (!CHECK_EQ_INT(cn_tls_ctx_new(&ctx, &o, msg, sizeof msg), 0)) fprintf(stderr, "  %s\n", msg);
  return ctx;
}

static cn_tls_ctx *client_ctx_with(cn_tls_ctx_opts o) {
  cn_tls_ctx *ctx = NULL;
  char msg[512];
  if (!o.ca_file) o.ca_file = cert("ca.pem");
  if (!CHECK_EQ_INT(cn_tls_ctx_new(&ctx, &o, msg, sizeof msg), 0)) fprintf(stderr, "  %s\n", msg);
  return ctx;
}

static cn_tls_ctx *server_ctx(void) { return server_ctx_with((cn_tls_ctx_opts){0}); }
static cn_tls_ctx *client_ctx(void) { return client_ctx_with((cn_tls_ctx_opts){0}); }

/* A client and a server connection, freed together. */
typedef struct pair {
  cn_tls_conn *client, *server;
  int client_rc, server_rc; /* the last handshake results */
} pair;

static pair pair_new(cn_tls_ctx *client, cn_tls_ctx *server, const char *server_name) {
  pair p = {NULL, NULL, CN_TLS_WANT_READ, CN_TLS_WANT_READ};
  CHECK_EQ_INT(cn_tls_conn_new(&p.client, client), 0);
  CHECK_EQ_INT(cn_tls_conn_new(&p.server, server), 0);
  if (server_name) CHECK_EQ_INT(cn_tls_set_server_name(p.client, server_name), 0);
  return p;
}

static void pair_free(pair *p) {
  cn_tls_conn_free(p->client);
  cn_tls_conn_free(p->server);
}

/* Moves all pending ciphertext from `from` to `to`, `chunk` bytes at a time. */
static size_t transfer(cn_tls_conn *from, cn_tls_conn *to, size_t chunk) {
  char buf[70000];
  size_t moved = 0, n;
  if (chunk > sizeof buf) chunk = sizeof buf;
  while ((n = cn_tls_take_out(from, buf, chunk)) > 0) {
    CHECK_EQ_INT(cn_tls_feed(to, buf, n), 0);
    moved += n;
  }
  return moved;
}

/* Steps both handshakes, exchanging their output, until both are done or
 * one failed (its alert then delivered to the other, which steps once more). */
static void handshake(pair *p) {
  int round;
  for (round = 0; round < 20; round++) {
    if (p->client_rc > 0) p->client_rc = cn_tls_handshake(p->client);
    transfer(p->client, p->server, 4096);
    if (p->server_rc > 0) p->server_rc = cn_tls_handshake(p->server);
    transfer(p->server, p->client, 4096);
    if (p->client_rc <= 0 && p->server_rc <= 0) return;
    if (p->client_rc < 0 || p->server_rc < 0) {
      if (p->client_rc > 0) p->client_rc = cn_tls_handshake(p->client);
      if (p->server_rc > 0) p->server_rc = cn_tls_handshake(p->server);
      return;
    }
  }
}

/* Reads whatever `c` can decrypt now into buf; returns the last result. */
static int read_available(cn_tls_conn *c, char *buf, size_t size, size_t *got) {
  size_t n;
  int rc;
  *got = 0;
  while (*got < size && (rc = cn_tls_read(c, buf + *got, size - *got, &n)) == 0) *got += n;
  return *got == size ? 0 : rc;
}

static char pattern(size_t i) { return (char)(i * 31 + (i >> 9)); }

/* -------------------------------------------------------------- tests */

static void test_handshake_and_info(void) {
  cn_tls_ctx *cctx = client_ctx(), *sctx = server_ctx();
  pair p = pair_new(cctx, sctx, "localhost");
  cn_tls_info info;
  char subject[128];
  CHECK(!cn_tls_handshake_done(p.client));
  CHECK_EQ_INT(cn_tls_get_info(p.client, &info), UV_EINVAL);
  handshake(&p);
  CHECK_EQ_INT(p.client_rc, 0);
  CHECK_EQ_INT(p.server_rc, 0);
  CHECK(cn_tls_handshake_done(p.client) && cn_tls_handshake_done(p.server));
  CHECK(queue_empty());
  if (CHECK_EQ_INT(cn_tls_get_info(p.client, &info), 0)) {
    CHECK_EQ_STR(info.version, "TLSv1.3");
    CHECK(info.cipher != NULL && strlen(info.cipher) > 0);
    CHECK(info.alpn == NULL);
    CHECK(info.peer_certificate);
    CHECK(info.verified);
    CHECK(!info.reused);
  }
  CHECK_EQ_SIZE(cn_tls_peer_subject(p.client, subject, sizeof subject), strlen("CN=localhost"));
  CHECK_EQ_STR(subject, "CN=localhost");
  CHECK_EQ_SIZE(cn_tls_peer_subject(p.client, subject, 4), strlen("CN=localhost"));
  CHECK_EQ_STR(subject, "CN=");
  if (CHECK_EQ_INT(cn_tls_get_info(p.server, &info), 0)) {
    CHECK(!info.peer_certificate);
    CHECK(!info.verified);
  }
  CHECK_EQ_SIZE(cn_tls_peer_subject(p.server, subject, sizeof subject), 0);
  CHECK_EQ_INT(cn_tls_ctx_is_server(sctx), 1);
  CHECK_EQ_INT(cn_tls_ctx_is_server(cctx), 0);
  /* The connections hold their contexts: dropping ours first is safe. */
  cn_tls_ctx_unref(cctx);
  cn_tls_ctx_unref(sctx);
  pair_free(&p);
}

/* An IP literal is checked against the certificate's IP addresses. */
static void test_ip_address_names(void) {
  cn_tls_ctx *cctx = client_ctx(), *sctx = server_ctx();
  pair ok = pair_new(cctx, sctx, "127.0.0.1");
  pair ok6 = pair_new(cctx, sctx, "::1");
  pair bad = pair_new(cctx, sctx, "10.1.2.3");
  handshake(&ok);
  CHECK_EQ_INT(ok.client_rc, 0);
  handshake(&ok6);
  CHECK_EQ_INT(ok6.client_rc, 0);
  handshake(&bad);
  CHECK_EQ_INT(bad.client_rc, CN_ETLS_VERIFY);
  CHECK_EQ_STR(cn_tls_conn_message(bad.client), "IP address mismatch");
  pair_free(&ok);
  pair_free(&ok6);
  pair_free(&bad);
  cn_tls_ctx_unref(cctx);
  cn_tls_ctx_unref(sctx);
}

/* Sends `total` pattern bytes from one side to the other through odd write,
 * transfer and read sizes; the receiver sees them all, in order. */
static void stream_bytes(cn_tls_conn *from, cn_tls_conn *to, size_t total) {
  static const size_t writes[] = {1, 7, 1000, 16383, 16385, 65537, 3};
  static const size_t chunks[] = {1, 13, 4099, 17000, 65536};
  static const size_t reads[] = {5, 333, 16384, 70000};
  char *src = malloc(total), *dst = malloc(total);
  size_t i, sent = 0, got = 0, step = 0;
  for (i = 0; i < total; i++) src[i] = pattern(i);
  while (got < total && step < 100000) {
    size_t w = writes[step % 7], n;
    if (w > total - sent) w = total - sent;
    if (w > 0 && CHECK_EQ_INT(cn_tls_write(from, src + sent, w), 0)) sent += w;
    transfer(from, to, chunks[step % 5]);
    while (got < total) {
      size_t want = reads[step % 4] < total - got ? reads[step % 4] : total - got;
      int rc = cn_tls_read(to, dst + got, want, &n);
      if (rc == CN_TLS_WANT_READ) break;
      if (!CHECK_EQ_INT(rc, 0)) goto out;
      got += n;
    }
    step++;
  }
out:
  CHECK_EQ_SIZE(got, total);
  CHECK(memcmp(src, dst, total) == 0);
  CHECK_EQ_SIZE(cn_tls_in_pending(to), 0);
  free(src);
  free(dst);
}

static void test_data_both_ways(void) {
  cn_tls_ctx *cctx = client_ctx(), *sctx = server_ctx();
  pair p = pair_new(cctx, sctx, "localhost");
  handshake(&p);
  if (CHECK_EQ_INT(p.client_rc, 0)) {
    stream_bytes(p.client, p.server, 1u << 20);
    stream_bytes(p.server, p.client, 1u << 20);
    stream_bytes(p.client, p.server, 12345);
  }
  CHECK_EQ_INT(cn_tls_write(p.client, "", 0), 0);
  CHECK(queue_empty());
  pair_free(&p);
  cn_tls_ctx_unref(cctx);
  cn_tls_ctx_unref(sctx);
}

/* Before the handshake a write takes nothing; a read drives the handshake. */
static void test_io_before_handshake(void) {
  cn_tls_ctx *cctx = client_ctx(), *sctx = server_ctx();
  pair p = pair_new(cctx, sctx, "localhost");
  char buf[16];
  size_t n;
  CHECK_EQ_INT(cn_tls_write(p.client, "early", 5), CN_TLS_WANT_READ);
  CHECK_EQ_SIZE(cn_tls_out_pending(p.client), 0);
  CHECK_EQ_INT(cn_tls_shutdown(p.client), 0); /* nothing to close yet */
  CHECK_EQ_SIZE(cn_tls_out_pending(p.client), 0);
  CHECK_EQ_INT(cn_tls_read(p.client, buf, sizeof buf, &n), CN_TLS_WANT_READ);
  CHECK(cn_tls_out_pending(p.client) > 0); /* the ClientHello */
  CHECK_EQ_INT(cn_tls_read(p.server, buf, sizeof buf, &n), CN_TLS_WANT_READ);
  transfer(p.client, p.server, 100);
  CHECK_EQ_INT(cn_tls_read(p.server, buf, sizeof buf, &n), CN_TLS_WANT_READ);
  transfer(p.server, p.client, 100);
  CHECK_EQ_INT(cn_tls_read(p.client, buf, sizeof buf, &n), CN_TLS_WANT_READ);
  CHECK(cn_tls_handshake_done(p.client));
  CHECK_EQ_INT(cn_tls_write(p.client, "hello", 5), 0);
  transfer(p.client, p.server, 100);
  CHECK_EQ_INT(cn_tls_read(p.server, buf, sizeof buf, &n), 0);
  CHECK(n == 5 && memcmp(buf, "hello", 5) == 0);
  CHECK(cn_tls_handshake_done(p.server));
  pair_free(&p);
  cn_tls_ctx_unref(cctx);
  cn_tls_ctx_unref(sctx);
}

static void test_alpn(void) {
  const char *client_names[] = {"h2", "http/1.1"};
  const char *server_names[] = {"http/1.1", "h2"};
  const char *other[] = {"imap"};
  cn_tls_ctx *cctx = client_ctx_with((cn_tls_ctx_opts){.alpn = client_names, .alpn_count = 2});
  cn_tls_ctx *plain_cctx = client_ctx();
  cn_tls_ctx *sctx = server_ctx_with((cn_tls_ctx_opts){.alpn = server_names, .alpn_count = 2});
  cn_tls_ctx *other_sctx = server_ctx_with((cn_tls_ctx_opts){.alpn = other, .alpn_count = 1});
  cn_tls_info info;
  pair both = pair_new(cctx, sctx, "localhost");
  pair none_offered = pair_new(plain_cctx, sctx, "localhost");
  pair no_overlap = pair_new(cctx, other_sctx, "localhost");

  handshake(&both); /* the server's preference wins */
  if (CHECK_EQ_INT(both.client_rc, 0) && CHECK_EQ_INT(cn_tls_get_info(both.client, &info), 0))
    CHECK(info.alpn_len == 8 && memcmp(info.alpn, "http/1.1", 8) == 0);
  if (CHECK_EQ_INT(cn_tls_get_info(both.server, &info), 0))
    CHECK(info.alpn_len == 8 && memcmp(info.alpn, "http/1.1", 8) == 0);

  handshake(&none_offered); /* a client offering none gets none */
  if (CHECK_EQ_INT(none_offered.client_rc, 0) && CHECK_EQ_INT(cn_tls_get_info(none_offered.server, &info), 0))
    CHECK(info.alpn == NULL && info.alpn_len == 0);

  handshake(&no_overlap);
  CHECK_EQ_INT(no_overlap.server_rc, CN_ETLS_HANDSHAKE);
  CHECK_EQ_INT(no_overlap.client_rc, CN_ETLS_HANDSHAKE);
  CHECK(strstr(cn_tls_conn_message(no_overlap.client), "no application protocol") != NULL);
  CHECK(queue_empty());

  pair_free(&both);
  pair_free(&none_offered);
  pair_free(&no_overlap);
  cn_tls_ctx_unref(cctx);
  cn_tls_ctx_unref(plain_cctx);
  cn_tls_ctx_unref(sctx);
  cn_tls_ctx_unref(other_sctx);
}

/* The client rejects the server: tls_verify with OpenSSL's verification
 * message; the server hears the client's alert as tls_verify too. */
static void expect_rejected(cn_tls_ctx *cctx, cn_tls_ctx *sctx, const char *name, const char *why) {
  pair p = pair_new(cctx, sctx, name);
  char buf[8];
  size_t n;
  handshake(&p);
  CHECK_EQ_INT(p.client_rc, CN_ETLS_VERIFY);
  if (!CHECK_EQ_STR(cn_tls_conn_message(p.client), why)) fprintf(stderr, "  (%s)\n", name);
  CHECK_EQ_INT(p.server_rc, CN_ETLS_VERIFY);
  CHECK(strlen(cn_tls_conn_message(p.server)) > 0);
  /* The failure sticks, and nothing is left queued for the next connection. */
  CHECK_EQ_INT(cn_tls_handshake(p.client), CN_ETLS_VERIFY);
  CHECK_EQ_INT(cn_tls_read(p.client, buf, sizeof buf, &n), CN_ETLS_VERIFY);
  CHECK_EQ_INT(cn_tls_write(p.client, "x", 1), CN_ETLS_VERIFY);
  CHECK_EQ_INT(cn_tls_shutdown(p.client), 0);
  CHECK(queue_empty());
  pair_free(&p);
}

static void test_verify_failures(void) {
  cn_tls_ctx *cctx = client_ctx(), *sctx = server_ctx();
  cn_tls_ctx *untrusting = client_ctx_with((cn_tls_ctx_opts){.ca_file = cert("other_ca.pem")});
  cn_tls_ctx *expired = server_ctx_with(
      (cn_tls_ctx_opts){.cert_file = cert("expired.pem"), .key_file = cert("expired.key")});
  cn_tls_ctx *unverifying = client_ctx_with((cn_tls_ctx_opts){.ca_file = cert("other_ca.pem"), .no_verify = 1});
  pair p;
  cn_tls_info info;

  expect_rejected(untrusting, sctx, "localhost", "unable to get local issuer certificate");
  expect_rejected(cctx, sctx, "example.com", "hostname mismatch");
  expect_rejected(cctx, expired, "localhost", "certificate has expired");

  /* verify = false: the handshake goes on, and the peer reads as not verified. */
  p = pair_new(unverifying, expired, "example.com");
  handshake(&p);
  if (CHECK_EQ_INT(p.client_rc, 0) && CHECK_EQ_INT(cn_tls_get_info(p.client, &info), 0)) {
    CHECK(info.peer_certificate);
    CHECK(!info.verified);
  }
  pair_free(&p);

  cn_tls_ctx_unref(cctx);
  cn_tls_ctx_unref(sctx);
  cn_tls_ctx_unref(untrusting);
  cn_tls_ctx_unref(expired);
  cn_tls_ctx_unref(unverifying);
}

static void test_client_certificates(void) {
  cn_tls_ctx *sctx = server_ctx_with((cn_tls_ctx_opts){.client_ca_file = cert("ca.pem")});
  cn_tls_ctx *anonymous = client_ctx();
  cn_tls_ctx *identified = client_ctx_with(
      (cn_tls_ctx_opts){.cert_file = cert("client.pem"), .key_file = cert("client.key")});
  pair p;
  cn_tls_info info;
  char buf[64];
  size_t n;

  p = pair_new(identified, sctx, "localhost");
  handshake(&p);
  CHECK_EQ_INT(p.client_rc, 0);
  if (CHECK_EQ_INT(p.server_rc, 0) && CHECK_EQ_INT(cn_tls_get_info(p.server, &info), 0)) {
    CHECK(info.peer_certificate);
    CHECK(info.verified);
    cn_tls_peer_subject(p.server, buf, sizeof buf);
    CHECK_EQ_STR(buf, "CN=coronet test client");
  }
  pair_free(&p);

  /* Missing: the server fails the handshake; in TLS 1.3 the client has
   * finished its own and hears the server's alert at its first read. */
  p = pair_new(anonymous, sctx, "localhost");
  handshake(&p);
  CHECK_EQ_INT(p.server_rc, CN_ETLS_VERIFY);
  CHECK_EQ_STR(cn_tls_conn_message(p.server), "peer did not return a certificate");
  CHECK_EQ_INT(cn_tls_read(p.client, buf, sizeof buf, &n), CN_ETLS_VERIFY);
  CHECK(strstr(cn_tls_conn_message(p.client), "certificate required") != NULL);
  CHECK(queue_empty());
  pair_free(&p);

  cn_tls_ctx_unref(sctx);
  cn_tls_ctx_unref(anonymous);
  cn_tls_ctx_unref(identified);
}

static void test_close_notify_and_truncation(void) {
  cn_tls_ctx *cctx = client_ctx(), *sctx = server_ctx();
  pair p = pair_new(cctx, sctx, "localhost");
  char buf[64];
  size_t got;
  handshake(&p);
  /* close_notify after data: the data, then a clean EOF, even after the transport ends. */
  CHECK_EQ_INT(cn_tls_write(p.client, "last words", 10), 0);
  CHECK_EQ_INT(cn_tls_shutdown(p.client), 0);
  CHECK_EQ_INT(cn_tls_shutdown(p.client), 0); /* once only */
  CHECK_EQ_INT(cn_tls_write(p.client, "more", 4), CN_ECLOSED);
  transfer(p.client, p.server, 7);
  cn_tls_feed_eof(p.server);
  CHECK_EQ_INT(read_available(p.server, buf, sizeof buf, &got), UV_EOF);
  CHECK(got == 10 && memcmp(buf, "last words", 10) == 0);
  CHECK_EQ_INT(cn_tls_read(p.server, buf, sizeof buf, &got), UV_EOF);
  /* The other way, no close_notify: the data, then tls_truncated. */
  CHECK_EQ_INT(cn_tls_write(p.server, "cut", 3), 0);
  transfer(p.server, p.client, 2);
  cn_tls_feed_eof(p.client);
  CHECK_EQ_INT(read_available(p.client, buf, sizeof buf, &got), CN_ETLS_TRUNCATED);
  CHECK(got == 3 && memcmp(buf, "cut", 3) == 0);
  CHECK(strstr(cn_tls_conn_message(p.client), "close_notify") != NULL);
  CHECK_EQ_INT(cn_tls_read(p.client, buf, sizeof buf, &got), CN_ETLS_TRUNCATED);
  CHECK(queue_empty());
  pair_free(&p);

  /* The transport ending mid-handshake is a handshake failure. */
  p = pair_new(cctx, sctx, "localhost");
  CHECK_EQ_INT(cn_tls_handshake(p.client), CN_TLS_WANT_READ);
  transfer(p.client, p.server, 4096);
  CHECK_EQ_INT(cn_tls_handshake(p.server), CN_TLS_WANT_READ);
  cn_tls_feed_eof(p.client);
  CHECK_EQ_INT(cn_tls_handshake(p.client), CN_ETLS_HANDSHAKE);
  CHECK(strstr(cn_tls_conn_message(p.client), "during the handshake") != NULL);
  pair_free(&p);
  cn_tls_ctx_unref(cctx);
  cn_tls_ctx_unref(sctx);
}

/* One connection's session: handshake, then the ticket the server sends
 * after it, read by the client. Returns its length (copied into buf). */
static size_t first_session(cn_tls_ctx *cctx, cn_tls_ctx *sctx, unsigned char *buf, size_t size) {
  pair p = pair_new(cctx, sctx, "localhost");
  char plain[16];
  size_t n, len;
  handshake(&p);
  CHECK_EQ_SIZE(cn_tls_session(p.server, buf, size), 0); /* servers have none to give */
  transfer(p.server, p.client, 4096);
  CHECK_EQ_INT(cn_tls_read(p.client, plain, sizeof plain, &n), CN_TLS_WANT_READ);
  len = cn_tls_session(p.client, buf, size);
  CHECK(len > 0 && len <= size);
  CHECK_EQ_SIZE(cn_tls_session(p.client, NULL, 0), len);
  pair_free(&p);
  return len;
}

static void test_session_reuse(void) {
  cn_tls_ctx *cctx = client_ctx(), *sctx = server_ctx();
  unsigned char session[8192];
  size_t len = first_session(cctx, sctx, session, sizeof session);
  pair p;
  cn_tls_info info;
  CHECK_EQ_INT(cn_tls_conn_new(&p.client, cctx), 0);
  CHECK_EQ_INT(cn_tls_conn_new(&p.server, sctx), 0);
  p.client_rc = p.server_rc = CN_TLS_WANT_READ;
  CHECK_EQ_INT(cn_tls_set_server_name(p.client, "localhost"), 0);
  CHECK_EQ_INT(cn_tls_set_session(p.client, session, len), 0);
  CHECK_EQ_INT(cn_tls_set_session(p.server, session, len), UV_EINVAL);
  CHECK_EQ_INT(cn_tls_set_server_name(p.server, "localhost"), UV_EINVAL);
  handshake(&p);
  if (CHECK_EQ_INT(p.client_rc, 0) && CHECK_EQ_INT(cn_tls_get_info(p.client, &info), 0)) {
    CHECK(info.reused);
    CHECK(info.verified); /* as verified when the session was made */
  }
  if (CHECK_EQ_INT(cn_tls_get_info(p.server, &info), 0)) CHECK(info.reused);
  pair_free(&p);

  /* Bytes that are not a session are refused before any handshake. */
  CHECK_EQ_INT(cn_tls_conn_new(&p.client, cctx), 0);
  CHECK_EQ_INT(cn_tls_set_session(p.client, "not a session", 13), CN_ETLS_CONFIG);
  CHECK(strstr(cn_tls_conn_message(p.client), "session") != NULL);
  CHECK_EQ_INT(cn_tls_set_session(p.client, session, len - 1), CN_ETLS_CONFIG);
  CHECK(queue_empty());
  cn_tls_conn_free(p.client);
  cn_tls_ctx_unref(cctx);
  cn_tls_ctx_unref(sctx);
}

/* Whatever is not a ClientHello fails the server's handshake, with a reason. */
static void expect_garbage_refused(const char *bytes, size_t len) {
  cn_tls_ctx *sctx = server_ctx();
  cn_tls_conn *server;
  CHECK_EQ_INT(cn_tls_conn_new(&server, sctx), 0);
  CHECK_EQ_INT(cn_tls_feed(server, bytes, len), 0);
  CHECK_EQ_INT(cn_tls_handshake(server), CN_ETLS_HANDSHAKE);
  CHECK(strlen(cn_tls_conn_message(server)) > 0);
  CHECK(queue_empty());
  cn_tls_conn_free(server);
  cn_tls_ctx_unref(sctx);
}

static void test_garbage_hello(void) {
  static const char http[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
  char noise[600];
  size_t i;
  for (i = 0; i < sizeof noise; i++) noise[i] = pattern(i * 7919);
  noise[0] = 0x16; /* a handshake record type, then nonsense */
  expect_garbage_refused(http, sizeof http - 1);
  expect_garbage_refused(noise, sizeof noise);
}

/* A bad context option fails cn_tls_ctx_new with tls_config and a message
 * containing `expect`. */
static void expect_config_error(cn_tls_ctx_opts o, const char *expect) {
  cn_tls_ctx *ctx = (cn_tls_ctx *)&ctx; /* not NULL: the call must set it */
  char msg[512];
  CHECK_EQ_INT(cn_tls_ctx_new(&ctx, &o, msg, sizeof msg), CN_ETLS_CONFIG);
  CHECK(ctx == NULL);
  if (!CHECK(strstr(msg, expect) != NULL)) fprintf(stderr, "  message: %s\n  expected: %s\n", msg, expect);
  CHECK(queue_empty());
}

static void test_config_errors(void) {
  const char *empty[] = {""};
  char expect[1200], missing[1024];
  snprintf(missing, sizeof missing, "%s", cert("no-such.pem"));
  snprintf(expect, sizeof expect, "cert_file '%s': No such file or directory", missing);
  expect_config_error((cn_tls_ctx_opts){.server = 1, .cert_file = missing, .key_file = cert("server.key")},
                      expect);
  snprintf(expect, sizeof expect, "key_file '%s': No such file or directory", missing);
  expect_config_error((cn_tls_ctx_opts){.server = 1, .cert_file = cert("server.pem"), .key_file = missing},
                      expect);
  snprintf(expect, sizeof expect, "key_file '%s' does not match cert_file '%s'", cert("wrong.key"),
           cert("server.pem"));
  expect_config_error(
      (cn_tls_ctx_opts){.server = 1, .cert_file = cert("server.pem"), .key_file = cert("wrong.key")},
      expect);
  snprintf(expect, sizeof expect, "cert_file '%s': no start line", cert("garbage.pem"));
  expect_config_error(
      (cn_tls_ctx_opts){.server = 1, .cert_file = cert("garbage.pem"), .key_file = cert("server.key")},
      expect);
  snprintf(expect, sizeof expect, "key_file '%s'", cert("garbage.pem"));
  expect_config_error(
      (cn_tls_ctx_opts){.server = 1, .cert_file = cert("server.pem"), .key_file = cert("garbage.pem")},
      expect);
  expect_config_error((cn_tls_ctx_opts){.server = 1}, "a TLS server needs cert_file and key_file");
  expect_config_error((cn_tls_ctx_opts){.cert_file = cert("client.pem")}, "key_file is missing");
  snprintf(expect, sizeof expect, "ca_file '%s': No such file or directory", missing);
  expect_config_error((cn_tls_ctx_opts){.ca_file = missing}, expect);
  snprintf(expect, sizeof expect, "client_ca_file '%s'", missing);
  expect_config_error((cn_tls_ctx_opts){.server = 1, .cert_file = cert("server.pem"),
                                        .key_file = cert("server.key"), .client_ca_file = missing},
                      expect);
  expect_config_error((cn_tls_ctx_opts){.alpn = empty, .alpn_count = 1}, "alpn name 1 is empty");
}

/* Without ca_file the client trusts the system store, which does not know
 * the test CA: verification fails, as it must. */
static void test_system_store(void) {
  cn_tls_ctx *cctx = NULL, *sctx = server_ctx();
  cn_tls_ctx_opts o = {0};
  char msg[256];
  pair p;
  if (!CHECK_EQ_INT(cn_tls_ctx_new(&cctx, &o, msg, sizeof msg), 0)) {
    cn_tls_ctx_unref(sctx);
    return;
  }
  p = pair_new(cctx, sctx, "localhost");
  handshake(&p);
  CHECK_EQ_INT(p.client_rc, CN_ETLS_VERIFY);
  CHECK_EQ_STR(cn_tls_conn_message(p.client), "unable to get local issuer certificate");
  pair_free(&p);
  cn_tls_ctx_unref(cctx);
  cn_tls_ctx_unref(sctx);
}

/* A corrupted record after the handshake is a protocol error, not EOF. */
static void test_corrupted_record(void) {
  cn_tls_ctx *cctx = client_ctx(), *sctx = server_ctx();
  pair p = pair_new(cctx, sctx, "localhost");
  char buf[256];
  size_t n;
  handshake(&p);
  transfer(p.server, p.client, 4096); /* the tickets */
  CHECK_EQ_INT(cn_tls_write(p.client, "payload", 7), 0);
  n = cn_tls_take_out(p.client, buf, sizeof buf);
  buf[n - 3] ^= 0x55;
  CHECK_EQ_INT(cn_tls_feed(p.server, buf, n), 0);
  CHECK_EQ_INT(cn_tls_read(p.server, buf, sizeof buf, &n), CN_ETLS_PROTOCOL);
  CHECK(strlen(cn_tls_conn_message(p.server)) > 0);
  CHECK(cn_tls_out_pending(p.server) > 0); /* its alert, for the caller to send */
  CHECK(queue_empty());
  pair_free(&p);
  cn_tls_ctx_unref(cctx);
  cn_tls_ctx_unref(sctx);
}

int main(int argc, char **argv) {
  cert_dir = argc > 1 ? argv[1] : getenv("CORONET_TLS_CERTS");
  if (!cert_dir) {
    fprintf(stderr, "test_tls: give the certificate directory (spec/tls/make_certs.sh DIR) "
                    "as argument or CORONET_TLS_CERTS\n");
    return 1;
  }
  test_handshake_and_info();
  test_ip_address_names();
  test_data_both_ways();
  test_io_before_handshake();
  test_alpn();
  test_verify_failures();
  test_client_certificates();
  test_close_notify_and_truncation();
  test_session_reuse();
  test_garbage_hello();
  test_config_errors();
  test_system_store();
  test_corrupted_record();
  return check_summary();
}
