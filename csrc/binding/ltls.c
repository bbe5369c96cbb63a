/* ltls.c: TLS for sockets (coronet.tls documents the Lua side). A context
 * userdata holds one cn_tls_ctx; tls_start stacks an engine on a socket and
 * waits for its handshake; tls_info reads what was negotiated. */
#include <stdlib.h>
#include <string.h>
#include "lbinding.h"

#define LCN_TLS_CONTEXT "coronet.tls_context"
#define MAX_ALPN 32

typedef struct tls_box {
  cn_tls_ctx *ctx; /* NULL until made, and after __gc */
} tls_box;

static cn_tls_ctx *check_context(lua_State *L, int idx) {
  tls_box *b = luaL_checkudata(L, idx, LCN_TLS_CONTEXT);
  if (!b->ctx) luaL_argerror(L, idx, "TLS context was released");
  return b->ctx;
}

/* opts[name]: a string or nil; anything else raises naming the option. */
static const char *opt_string(lua_State *L, int idx, const char *name) {
  const char *s;
  int t = lua_getfield(L, idx, name);
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return NULL;
  }
  if (t != LUA_TSTRING) luaL_error(L, "tls: option '%s' must be a string (got %s)", name, luaL_typename(L, -1));
  s = lua_tostring(L, -1);
  lua_pop(L, 1); /* still anchored by the options table */
  return s;
}

/* opts.alpn: an array of names, into names[] (anchored by the table). */
static size_t opt_alpn(lua_State *L, int idx, const char **names) {
  size_t n = 0;
  if (lua_getfield(L, idx, "alpn") == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  if (!lua_istable(L, -1)) luaL_error(L, "tls: option 'alpn' must be an array of protocol names");
  for (lua_Integer i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; i++) {
    if (lua_type(L, -1) != LUA_TSTRING || n == MAX_ALPN)
      luaL_error(L, "tls: option 'alpn' must be an array of at most %d protocol names", MAX_ALPN);
    names[n++] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  return n;
}

/* core.tls_context(opts, is_server) -> context, or nil, err, "tls_config". */
static int l_tls_context(lua_State *L) {
  const char *alpn[MAX_ALPN];
  cn_tls_ctx_opts o;
  char msg[1024];
  tls_box *b;
  int rc;
  luaL_checktype(L, 1, LUA_TTABLE);
  memset(&o, 0, sizeof o);
  o.server = lua_toboolean(L, 2);
  o.cert_file = opt_string(L, 1, "cert_file");
  o.key_file = opt_string(L, 1, "key_file");
  o.ca_file = opt_string(L, 1, "ca_file");
  o.ca_path = opt_string(L, 1, "ca_path");
  o.client_ca_file = opt_string(L, 1, "client_ca_file");
  lua_getfield(L, 1, "verify");
  if (!lua_isnil(L, -1) && !lua_isboolean(L, -1)) luaL_error(L, "tls: option 'verify' must be a boolean");
  o.no_verify = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
  lua_pop(L, 1);
  o.alpn_count = opt_alpn(L, 1, alpn);
  o.alpn = alpn;
  b = lua_newuserdatauv(L, sizeof *b, 0); /* the box first: an OOM cannot leak a context */
  b->ctx = NULL;
  luaL_setmetatable(L, LCN_TLS_CONTEXT);
  rc = cn_tls_ctx_new(&b->ctx, &o, msg, sizeof msg);
  if (rc < 0) {
    lua_pushnil(L);
    lcn_push_error(L, rc, msg[0] ? msg : "tls", NULL);
    lua_pushstring(L, cn_err_name(rc));
    return 3;
  }
  return 1;
}

static int l_context_gc(lua_State *L) {
  tls_box *b = luaL_checkudata(L, 1, LCN_TLS_CONTEXT);
  if (b->ctx) cn_tls_ctx_unref(b->ctx);
  b->ctx = NULL;
  return 0;
}

/* nil, err, code for a TLS failure on the socket at 1, the engine's reason
 * (OpenSSL's, or the verification error) added to the message. The engine
 * may not be the stream's yet (a bad session option). */
static int tls_fail(lua_State *L, int err, const char *what, cn_tls_conn *tc) {
  int n = lcn_fail_stream(L, err, what, lcn_check_conn(L, 1)->s);
  if (tc) lcn_error_add_detail(L, -2, cn_tls_conn_message(tc));
  return n;
}

/* A handshake that did not end well (an error, the peer's refusal, a
 * timeout, a cancel) leaves no usable stream: the TLS state is unknown to
 * both ends. The socket is closed (gracefully: an alert OpenSSL queued still
 * goes out), so every later call on it says "closed". */
static int start_k(lua_State *L, int status, lua_KContext kctx) {
  int st = lcn_fiber_status(L);
  lcn_conn *c = lcn_check_conn(L, 1);
  (void)status, (void)kctx;
  if (st < 0) {
    int n = tls_fail(L, st, "TLS handshake with", c->s ? cn_stream_tls(c->s) : NULL);
    if (c->s) cn_stream_close(c->s);
    return n;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* A new engine for ctx, with the client's server name and session. */
static int new_engine(lua_State *L, cn_tls_ctx *ctx, cn_tls_conn **out) {
  const char *name = luaL_optstring(L, 3, NULL);
  size_t session_len = 0;
  const char *session = luaL_optlstring(L, 4, NULL, &session_len);
  int rc = cn_tls_conn_new(out, ctx);
  if (rc == 0 && name && !cn_tls_ctx_is_server(ctx)) rc = cn_tls_set_server_name(*out, name);
  if (rc == 0 && session && !cn_tls_ctx_is_server(ctx)) rc = cn_tls_set_session(*out, session, session_len);
  return rc;
}

/* core.tls_start(socket, context[, server_name[, session[, timeout]]]) ->
 * true once the handshake is done, or nil, err, code. */
static int l_tls_start(lua_State *L) {
  lcn_conn *c = lcn_check_conn(L, 1);
  cn_stream *s = lcn_conn_stream(L, c);
  cn_tls_ctx *ctx = check_context(L, 2);
  lua_Integer deadline = lcn_deadline(L, 5, -1);
  lcn_fiber *f = lcn_fiber_current(L); /* raises before anything is made */
  cn_tls_conn *tc = NULL;
  if (cn_stream_is_closing(s)) return lcn_fail_stream(L, CN_ECLOSED, "starttls", s);
  if (cn_stream_tls(s)) luaL_error(L, "socket:starttls: the socket has TLS already");
  int rc = new_engine(L, ctx, &tc);
  if (rc < 0) {
    int n = tls_fail(L, rc, "starttls", tc);
    cn_tls_conn_free(tc);
    return n;
  }
  rc = cn_stream_start_tls(s, tc, &f->waiter);
  if (rc < 0) {
    cn_tls_conn_free(tc);
    return lcn_fail_stream(L, rc, "starttls", s);
  }
  return lcn_fiber_wait(L, f, deadline, NULL, NULL, start_k, 0);
}

static void set_string(lua_State *L, const char *key, const char *p, size_t n) {
  if (!p) return;
  lua_pushlstring(L, p, n);
  lua_setfield(L, -2, key);
}

static void set_boolean(lua_State *L, const char *key, int on) {
  lua_pushboolean(L, on);
  lua_setfield(L, -2, key);
}

static void set_subject(lua_State *L, cn_tls_conn *tc) {
  char buf[512];
  size_t n = cn_tls_peer_subject(tc, buf, sizeof buf);
  if (n > 0) set_string(L, "peer_subject", buf, n < sizeof buf ? n : sizeof buf - 1);
}

static void set_session(lua_State *L, cn_tls_conn *tc) {
  size_t n = cn_tls_session(tc, NULL, 0);
  unsigned char *p;
  if (n == 0 || !(p = malloc(n))) return;
  cn_tls_session(tc, p, n);
  set_string(L, "session", (const char *)p, n);
  free(p);
}

/* core.tls_info(socket) -> {version, cipher, alpn, peer_subject, verified,
 * reused, session}, or nil for a plain socket or a handshake not done. */
static int l_tls_info(lua_State *L) {
  lcn_conn *c = lcn_check_conn(L, 1);
  cn_tls_conn *tc = c->s ? cn_stream_tls(c->s) : NULL;
  cn_tls_info info;
  if (!tc || cn_tls_get_info(tc, &info) < 0) {
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, 0, 7);
  set_string(L, "version", info.version, strlen(info.version));
  set_string(L, "cipher", info.cipher, strlen(info.cipher));
  set_string(L, "alpn", info.alpn, info.alpn_len);
  set_boolean(L, "peer_certificate", info.peer_certificate);
  set_boolean(L, "verified", info.verified);
  set_boolean(L, "reused", info.reused);
  set_subject(L, tc);
  set_session(L, tc);
  return 1;
}

int lcn_open_tls(lua_State *L) {
  static const luaL_Reg meta[] = {{"__gc", l_context_gc}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
      {"tls_context", l_tls_context}, {"tls_start", l_tls_start}, {"tls_info", l_tls_info}, {NULL, NULL}};
  luaL_newmetatable(L, LCN_TLS_CONTEXT);
  luaL_setfuncs(L, meta, 0);
  lua_pop(L, 1);
  lcn_setfuncs(L, funcs);
  return 0;
}
