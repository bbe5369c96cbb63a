/* tls.c: a TLS engine over OpenSSL memory BIOs (the contract is in
 * coronet.h, "tls"). It never touches a socket: ciphertext from the peer is
 * written into one memory BIO, ciphertext to send is read out of another,
 * so the caller's transport decides when bytes move and nothing here can
 * block the loop.
 *
 * OpenSSL keeps its errors in a per-thread queue. Every public call here
 * empties it on entry and again before it returns (after turning the
 * queued error into a code and a message), so an error of one connection
 * can never be reported by the next one served on the same thread. */
#include <arpa/inet.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include "internal.h"

struct cn_tls_ctx {
  SSL_CTX *ssl_ctx;
  unsigned refs;
  int server;
  int verify;             /* peers' certificates are checked (client: unless no_verify; server: client_ca_file) */
  unsigned char *alpn;    /* server: the names it accepts, most preferred first, in wire format */
  unsigned int alpn_len;
};

struct cn_tls_conn {
  cn_tls_ctx *ctx;
  SSL *ssl;
  BIO *in;                /* ciphertext fed from the peer, read by OpenSSL */
  BIO *out;               /* ciphertext OpenSSL wrote, taken by the caller */
  int eof;                /* the peer's transport has ended */
  int established;        /* the handshake has completed (SSL_is_init_finished turns false
                           * again while TLS 1.3 post-handshake messages are processed) */
  int failed;             /* the fatal error, returned by every later call */
  char message[256];
};

static void set_message(char *buf, size_t size, const char *fmt, ...) {
  va_list ap;
  if (size == 0) return;
  va_start(ap, fmt);
  vsnprintf(buf, size, fmt, ap);
  va_end(ap);
}

/* The reason of OpenSSL's first queued error: the root cause (the entries
 * after it are its callers passing it on). A system error reads as strerror. */
static const char *first_reason(void) {
  static const char unknown[] = "unknown OpenSSL error";
  unsigned long e = ERR_peek_error();
  const char *reason;
  if (e == 0) return unknown;
  if (ERR_SYSTEM_ERROR(e)) return strerror(ERR_GET_REASON(e));
  reason = ERR_reason_error_string(e);
  return reason ? reason : unknown;
}

/* ------------------------------------------------------------- context */

/* Fills msg with "<what>: <OpenSSL's reason>", empties the queue, CN_ETLS_CONFIG. */
static int config_error(char *msg, size_t msg_size, const char *what) {
  set_message(msg, msg_size, "%s: %s", what, first_reason());
  ERR_clear_error();
  return CN_ETLS_CONFIG;
}

static int file_error(char *msg, size_t msg_size, const char *option, const char *path) {
  char what[PATH_MAX + 64];
  snprintf(what, sizeof what, "%s '%s'", option, path);
  return config_error(msg, msg_size, what);
}

static int mismatch_error(char *msg, size_t msg_size, const cn_tls_ctx_opts *o) {
  char what[2 * PATH_MAX + 64];
  snprintf(what, sizeof what, "key_file '%s' does not match cert_file '%s'", o->key_file, o->cert_file);
  return config_error(msg, msg_size, what);
}

static int load_identity(cn_tls_ctx *ctx, const cn_tls_ctx_opts *o, char *msg, size_t msg_size) {
  if (!o->cert_file != !o->key_file) {
    set_message(msg, msg_size, "cert_file and key_file go together: %s is missing",
                o->cert_file ? "key_file" : "cert_file");
    return CN_ETLS_CONFIG;
  }
  if (!o->cert_file) {
    if (!o->server) return 0;
    set_message(msg, msg_size, "a TLS server needs cert_file and key_file");
    return CN_ETLS_CONFIG;
  }
  if (SSL_CTX_use_certificate_chain_file(ctx->ssl_ctx, o->cert_file) != 1)
    return file_error(msg, msg_size, "cert_file", o->cert_file);
  /* Loading a key checks it against the certificate already: a mismatch shows there. */
  if (SSL_CTX_use_PrivateKey_file(ctx->ssl_ctx, o->key_file, SSL_FILETYPE_PEM) != 1)
    return ERR_GET_REASON(ERR_peek_error()) == X509_R_KEY_VALUES_MISMATCH
               ? mismatch_error(msg, msg_size, o)
               : file_error(msg, msg_size, "key_file", o->key_file);
  return SSL_CTX_check_private_key(ctx->ssl_ctx) == 1 ? 0 : mismatch_error(msg, msg_size, o);
}

/* Client: verify the server against ca_file/ca_path, else the system store. */
static int load_server_trust(cn_tls_ctx *ctx, const cn_tls_ctx_opts *o, char *msg, size_t msg_size) {
  if (o->ca_file || o->ca_path) {
    if (SSL_CTX_load_verify_locations(ctx->ssl_ctx, o->ca_file, o->ca_path) != 1)
      return o->ca_file ? file_error(msg, msg_size, "ca_file", o->ca_file)
                        : file_error(msg, msg_size, "ca_path", o->ca_path);
  } else if (ctx->verify && SSL_CTX_set_default_verify_paths(ctx->ssl_ctx) != 1) {
    return config_error(msg, msg_size, "the system's CA store");
  }
  SSL_CTX_set_verify(ctx->ssl_ctx, ctx->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
  return 0;
}

/* Server: ask for a client certificate and require one that client_ca_file verifies. */
static int load_client_trust(cn_tls_ctx *ctx, const cn_tls_ctx_opts *o, char *msg, size_t msg_size) {
  STACK_OF(X509_NAME) *names;
  if (!o->client_ca_file) return 0;
  if (SSL_CTX_load_verify_locations(ctx->ssl_ctx, o->client_ca_file, NULL) != 1 ||
      !(names = SSL_load_client_CA_file(o->client_ca_file)))
    return file_error(msg, msg_size, "client_ca_file", o->client_ca_file);
  SSL_CTX_set_client_CA_list(ctx->ssl_ctx, names);
  SSL_CTX_set_verify(ctx->ssl_ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
  return 0;
}

/* The names as ALPN's wire format: each one prefixed by its length byte. */
static int alpn_wire(cn_tls_ctx *ctx, const cn_tls_ctx_opts *o, char *msg, size_t msg_size) {
  size_t i, total = 0;
  unsigned char *p;
  for (i = 0; i < o->alpn_count; i++) {
    size_t n = strlen(o->alpn[i]);
    if (n == 0 || n > 255) {
      set_message(msg, msg_size, "alpn name %zu is %s", i + 1, n ? "longer than 255 bytes" : "empty");
      return CN_ETLS_CONFIG;
    }
    total += 1 + n;
  }
  if (total > UINT_MAX) return CN_ETLS_CONFIG;
  if (!(ctx->alpn = p = malloc(total ? total : 1))) return UV_ENOMEM;
  for (i = 0; i < o->alpn_count; i++) {
    size_t n = strlen(o->alpn[i]);
    *p++ = (unsigned char)n;
    memcpy(p, o->alpn[i], n);
    p += n;
  }
  ctx->alpn_len = (unsigned int)total;
  return 0;
}

/* Server: the first of our names the client offered. Offered none of them:
 * the handshake fails (RFC 7301's no_application_protocol), rather than
 * going on to speak a protocol the client did not ask for. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
  cn_tls_ctx *ctx = arg;
  unsigned char *chosen;
  if (SSL_select_next_proto(&chosen, outlen, ctx->alpn, ctx->alpn_len, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

static int set_alpn(cn_tls_ctx *ctx, const cn_tls_ctx_opts *o, char *msg, size_t msg_size) {
  int err;
  if (o->alpn_count == 0) return 0;
  if ((err = alpn_wire(ctx, o, msg, msg_size))) return err;
  if (ctx->server) {
    SSL_CTX_set_alpn_select_cb(ctx->ssl_ctx, select_alpn, ctx);
    return 0;
  }
  /* set_alpn_protos returns 0 on success, unlike its neighbours. */
  return SSL_CTX_set_alpn_protos(ctx->ssl_ctx, ctx->alpn, ctx->alpn_len) == 0
             ? 0
             : config_error(msg, msg_size, "alpn");
}

static int configure(cn_tls_ctx *ctx, const cn_tls_ctx_opts *o, char *msg, size_t msg_size) {
  static const unsigned char session_id_context[] = "coronet";
  int err;
  if (SSL_CTX_set_min_proto_version(ctx->ssl_ctx, TLS1_2_VERSION) != 1)
    return config_error(msg, msg_size, "minimum protocol version");
  /* Idle connections give their record buffers back; a peer may not renegotiate. */
  SSL_CTX_set_mode(ctx->ssl_ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(ctx->ssl_ctx, SSL_OP_NO_RENEGOTIATION);
  if ((err = load_identity(ctx, o, msg, msg_size))) return err;
  if (ctx->server) {
    /* Sessions resume only with a context id set when client certificates are verified. */
    SSL_CTX_set_session_id_context(ctx->ssl_ctx, session_id_context, sizeof session_id_context - 1);
    err = load_client_trust(ctx, o, msg, msg_size);
  } else {
    err = load_server_trust(ctx, o, msg, msg_size);
  }
  return err ? err : set_alpn(ctx, o, msg, msg_size);
}

static void ctx_free(cn_tls_ctx *ctx) {
  SSL_CTX_free(ctx->ssl_ctx);
  free(ctx->alpn);
  free(ctx);
}

int cn_tls_ctx_new(cn_tls_ctx **out, const cn_tls_ctx_opts *o, char *msg, size_t msg_size) {
  cn_tls_ctx *ctx;
  int err;
  *out = NULL;
  set_message(msg, msg_size, "%s", "");
  ERR_clear_error();
  if (!(ctx = calloc(1, sizeof *ctx))) return UV_ENOMEM;
  ctx->refs = 1;
  ctx->server = o->server != 0;
  ctx->verify = ctx->server ? o->client_ca_file != NULL : !o->no_verify;
  ctx->ssl_ctx = SSL_CTX_new(ctx->server ? TLS_server_method() : TLS_client_method());
  err = ctx->ssl_ctx ? configure(ctx, o, msg, msg_size) : UV_ENOMEM;
  ERR_clear_error();
  if (err) {
    ctx_free(ctx);
    return err;
  }
  *out = ctx;
  return 0;
}

void cn_tls_ctx_ref(cn_tls_ctx *ctx) { ctx->refs++; }

void cn_tls_ctx_unref(cn_tls_ctx *ctx) {
  CN_ASSERT(ctx->refs > 0);
  if (--ctx->refs == 0) ctx_free(ctx);
}

int cn_tls_ctx_is_server(const cn_tls_ctx *ctx) { return ctx->server; }

/* ---------------------------------------------------------- connection */

int cn_tls_conn_new(cn_tls_conn **out, cn_tls_ctx *ctx) {
  cn_tls_conn *c;
  *out = NULL;
  ERR_clear_error();
  if (!(c = calloc(1, sizeof *c))) return UV_ENOMEM;
  c->ssl = SSL_new(ctx->ssl_ctx);
  c->in = BIO_new(BIO_s_mem());
  c->out = BIO_new(BIO_s_mem());
  if (!c->ssl || !c->in || !c->out) {
    SSL_free(c->ssl);
    BIO_free(c->in);
    BIO_free(c->out);
    free(c);
    ERR_clear_error();
    return UV_ENOMEM;
  }
  /* An empty input BIO means "wait for more", until cn_tls_feed_eof. */
  BIO_set_mem_eof_return(c->in, -1);
  SSL_set_bio(c->ssl, c->in, c->out); /* the SSL owns both BIOs now */
  if (ctx->server)
    SSL_set_accept_state(c->ssl);
  else
    SSL_set_connect_state(c->ssl);
  c->ctx = ctx;
  cn_tls_ctx_ref(ctx);
  *out = c;
  return 0;
}

void cn_tls_conn_free(cn_tls_conn *c) {
  if (!c) return;
  SSL_free(c->ssl);
  cn_tls_ctx_unref(c->ctx);
  free(c);
  ERR_clear_error();
}

/* Whether the handshake has completed, noting it the first time it has. */
static int established(cn_tls_conn *c) {
  if (!c->established && SSL_is_init_finished(c->ssl)) c->established = 1;
  return c->established;
}

/* Ends a call: records msg (OpenSSL's first reason when NULL; "" after a
 * success) as c's message, empties the queue, returns err. */
static int conn_result(cn_tls_conn *c, int err, const char *msg) {
  set_message(c->message, sizeof c->message, "%s", msg ? msg : first_reason());
  ERR_clear_error();
  return err;
}

static int is_ip_literal(const char *name) {
  unsigned char addr[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
}

int cn_tls_set_server_name(cn_tls_conn *c, const char *name) {
  int ok;
  if (c->ctx->server) return UV_EINVAL;
  ERR_clear_error();
  if (is_ip_literal(name))
    ok = !c->ctx->verify || X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name) == 1;
  else
    ok = SSL_set_tlsext_host_name(c->ssl, name) == 1 &&
         (!c->ctx->verify || SSL_set1_host(c->ssl, name) == 1);
  return ok ? conn_result(c, 0, "") : conn_result(c, CN_ETLS_CONFIG, NULL);
}

int cn_tls_set_session(cn_tls_conn *c, const void *data, size_t len) {
  const unsigned char *p = data;
  SSL_SESSION *session;
  int ok;
  if (c->ctx->server) return UV_EINVAL;
  ERR_clear_error();
  session = len <= LONG_MAX ? d2i_SSL_SESSION(NULL, &p, (long)len) : NULL;
  if (!session || p != (const unsigned char *)data + len) {
    SSL_SESSION_free(session);
    return conn_result(c, CN_ETLS_CONFIG, "session is not a serialised TLS session");
  }
  ok = SSL_set_session(c->ssl, session) == 1;
  SSL_SESSION_free(session); /* the SSL holds its own reference */
  return ok ? conn_result(c, 0, "") : conn_result(c, CN_ETLS_CONFIG, NULL);
}

int cn_tls_feed(cn_tls_conn *c, const char *data, size_t len) {
  ERR_clear_error();
  while (len > 0) {
    int n = BIO_write(c->in, data, (int)CN_MIN(len, (size_t)INT_MAX));
    if (n <= 0) return conn_result(c, UV_ENOMEM, "out of memory");
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

void cn_tls_feed_eof(cn_tls_conn *c) {
  c->eof = 1;
  BIO_set_mem_eof_return(c->in, 0); /* an empty input BIO now reads as end of stream */
}

size_t cn_tls_in_pending(const cn_tls_conn *c) {
  return BIO_ctrl_pending(c->in) + (size_t)SSL_pending(c->ssl);
}

/* Peer alerts saying it rejected our certificate (or our lack of one). */
static int is_certificate_alert(int reason) {
  switch (reason) {
  case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
  case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
  case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
  case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
  case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
  case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
  case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    return 1;
  default:
    return 0;
  }
}

/* The transport ended with no close_notify: mid-handshake, or truncation. */
static int eof_error(cn_tls_conn *c) {
  if (!c->established)
    return conn_result(c, CN_ETLS_HANDSHAKE, "the peer closed the connection during the handshake");
  return conn_result(c, CN_ETLS_TRUNCATED, "the peer closed the connection without close_notify");
}

/* A fatal error, classified by OpenSSL's first queued reason. */
static int fatal_error(cn_tls_conn *c) {
  unsigned long e = ERR_peek_error();
  int reason = ERR_GET_LIB(e) == ERR_LIB_SSL ? ERR_GET_REASON(e) : 0;
  int err;
  if (c->eof && (e == 0 || reason == SSL_R_UNEXPECTED_EOF_WHILE_READING))
    err = eof_error(c);
  else if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED)
    err = conn_result(c, CN_ETLS_VERIFY, X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)));
  else if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE || is_certificate_alert(reason))
    err = conn_result(c, CN_ETLS_VERIFY, NULL);
  else
    err = conn_result(c, c->established ? CN_ETLS_PROTOCOL : CN_ETLS_HANDSHAKE, NULL);
  c->failed = err;
  return err;
}

/* What an SSL call that did not succeed (returned r) means for the caller. */
static int outcome(cn_tls_conn *c, int r) {
  int status = SSL_get_error(c->ssl, r);
  established(c);
  switch (status) {
  case SSL_ERROR_WANT_READ:
    ERR_clear_error();
    return CN_TLS_WANT_READ;
  case SSL_ERROR_ZERO_RETURN:
    ERR_clear_error();
    return UV_EOF;
  default: /* SSL_ERROR_SSL, or SSL_ERROR_SYSCALL: the input BIO's end of stream */
    return fatal_error(c);
  }
}

int cn_tls_handshake(cn_tls_conn *c) {
  int r;
  if (c->failed) return c->failed;
  if (c->established) return 0;
  ERR_clear_error();
  r = SSL_do_handshake(c->ssl);
  if (r == 1) {
    c->established = 1;
    return conn_result(c, 0, "");
  }
  return outcome(c, r);
}

int cn_tls_handshake_done(const cn_tls_conn *c) { return !c->failed && c->established; }

int cn_tls_read(cn_tls_conn *c, char *buf, size_t size, size_t *nread) {
  CN_ASSERT(size > 0);
  *nread = 0;
  if (c->failed) return c->failed;
  ERR_clear_error();
  if (SSL_read_ex(c->ssl, buf, size, nread) == 1) {
    established(c);
    ERR_clear_error();
    return 0;
  }
  return outcome(c, 0);
}

int cn_tls_write(cn_tls_conn *c, const char *data, size_t len) {
  size_t written;
  if (c->failed) return c->failed;
  if (SSL_get_shutdown(c->ssl) & SSL_SENT_SHUTDOWN) return CN_ECLOSED;
  if (!c->established) return CN_TLS_WANT_READ;
  if (len == 0) return 0;
  ERR_clear_error();
  /* Without SSL_MODE_ENABLE_PARTIAL_WRITE this takes all of data or none,
   * and a memory BIO always takes all. */
  if (SSL_write_ex(c->ssl, data, len, &written) == 1) return 0;
  return outcome(c, 0);
}

int cn_tls_shutdown(cn_tls_conn *c) {
  int r;
  if (c->failed || !c->established || (SSL_get_shutdown(c->ssl) & SSL_SENT_SHUTDOWN))
    return 0;
  ERR_clear_error();
  /* 0: our close_notify is queued and the peer's has not come; 1: both. */
  r = SSL_shutdown(c->ssl);
  if (r >= 0) return conn_result(c, 0, "");
  r = outcome(c, r);
  return r == CN_TLS_WANT_READ ? 0 : r;
}

size_t cn_tls_out_pending(const cn_tls_conn *c) { return BIO_ctrl_pending(c->out); }

size_t cn_tls_take_out(cn_tls_conn *c, char *buf, size_t size) {
  int n = BIO_read(c->out, buf, (int)CN_MIN(size, (size_t)INT_MAX));
  return n > 0 ? (size_t)n : 0;
}

const char *cn_tls_conn_message(const cn_tls_conn *c) { return c->message; }

/* ---------------------------------------------------------------- info */

int cn_tls_get_info(const cn_tls_conn *c, cn_tls_info *out) {
  const unsigned char *alpn;
  unsigned int alpn_len;
  X509 *peer;
  if (!cn_tls_handshake_done(c)) return UV_EINVAL;
  memset(out, 0, sizeof *out);
  out->version = SSL_get_version(c->ssl);
  out->cipher = SSL_get_cipher_name(c->ssl);
  SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
  out->alpn = alpn_len ? (const char *)alpn : NULL;
  out->alpn_len = alpn_len;
  peer = SSL_get0_peer_certificate(c->ssl);
  out->peer_certificate = peer != NULL;
  out->verified = peer && c->ctx->verify && SSL_get_verify_result(c->ssl) == X509_V_OK;
  out->reused = SSL_session_reused(c->ssl);
  return 0;
}

size_t cn_tls_peer_subject(const cn_tls_conn *c, char *buf, size_t size) {
  X509 *peer = SSL_get0_peer_certificate(c->ssl);
  BIO *text;
  char *data;
  long len;
  if (!peer) return 0;
  ERR_clear_error();
  if (!(text = BIO_new(BIO_s_mem()))) return 0;
  X509_NAME_print_ex(text, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
  len = BIO_get_mem_data(text, &data);
  if (len < 0) len = 0;
  if (size > 0) {
    size_t n = CN_MIN((size_t)len, size - 1);
    memcpy(buf, data, n);
    buf[n] = '\0';
  }
  BIO_free(text);
  ERR_clear_error();
  return (size_t)len;
}

size_t cn_tls_session(const cn_tls_conn *c, unsigned char *buf, size_t size) {
  SSL_SESSION *session = SSL_get_session(c->ssl);
  int len;
  if (c->ctx->server || !session || !SSL_SESSION_is_resumable(session)) return 0;
  ERR_clear_error();
  len = i2d_SSL_SESSION(session, NULL);
  if (len > 0 && (size_t)len <= size) {
    unsigned char *p = buf;
    i2d_SSL_SESSION(session, &p);
  }
  ERR_clear_error();
  return len > 0 ? (size_t)len : 0;
}
