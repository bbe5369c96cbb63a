/* lserver.c: the server class. Each accepted connection starts a fiber
 * running the Lua on_connection function with the new socket. A server is
 * anchored in the registry from listen until its close has finished, so
 * dropping the Lua value does not stop it, and a server closed by anyone
 * (run's teardown included) is released. */
#include <limits.h>
#include <string.h>
#include "lbinding.h"

typedef struct lcn_server {
  lcn_tag tag;
  cn_server *srv;
  lcn_ctx *ctx;
  cn_waiter finished; /* on the core server's close: releases the anchor */
  int anchor;         /* registry ref from listen until the core server's close finished */
} lcn_server;

static lcn_server *check_server(lua_State *L) {
  lcn_server *b = lcn_check(L, 1, LCN_C_SERVER);
  if (!b->srv) luaL_error(L, "server was released");
  return b;
}

/* Calls fn(ud) under lua_pcall on the main thread: a libuv-to-Lua entry must
 * not unwind through libuv (a memory error, or a hook that raises). On
 * failure the error value is left on the stack. */
static int call_protected(lua_State *L, lua_CFunction fn, void *ud) {
  lua_pushcfunction(L, fn);
  lua_pushlightuserdata(L, ud);
  return lua_pcall(L, 1, 0, 0);
}

static int release_anchor(lua_State *L) {
  int *ref = lua_touserdata(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, *ref);
  return 0;
}

/* The core server's close finished, whoever started it (server:close, the
 * end of coronet.run, the state closing): no on_conn call can come any
 * more, so the box (with the handler and everything it holds) may go. The
 * box may be collected during the unref: it is not touched afterwards. */
static void on_finished(cn_waiter *w, int status) {
  lcn_server *b = w->data;
  lua_State *L = b->ctx->L;
  int ref = b->anchor;
  (void)status;
  b->anchor = LUA_NOREF;
  if (call_protected(L, release_anchor, &ref) != LUA_OK) lua_pop(L, 1); /* the slot is cleared before unref can fail */
}

typedef struct {
  lcn_server *b;
  cn_stream *conn;
  const cn_addr *peer;
  int taken; /* a socket box holds conn */
} accepted;

/* Spawns on_connection(arg, socket, address) in a new fiber. */
static int spawn_handler(lua_State *L) {
  accepted *a = lua_touserdata(L, 1);
  lcn_conn *c = lcn_new_conn(L);
  c->s = a->conn;
  a->taken = 1;
  int sock = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->b->anchor);
  lua_getiuservalue(L, -1, 1);
  lua_getiuservalue(L, -2, 2);
  lua_remove(L, -3);
  lua_pushvalue(L, sock);
  lcn_push_address(L, a->peer);
  lcn_conn_keep_peer(L, sock, -1); /* the socket remembers its peer: the handler's address value */
  lcn_spawn(L, 3);
  return 0;
}

/* From the accept loop. If starting the handler fails (out of memory), the
 * connection is closed and the failure logged; the server goes on. */
static void on_conn(cn_server *srv, cn_stream *conn, const cn_addr *peer, void *data) {
  accepted a = {data, conn, peer, 0};
  lua_State *L = a.b->ctx->L;
  (void)srv;
  if (call_protected(L, spawn_handler, &a) == LUA_OK) return;
  cn_stream_abort(conn, CN_ECLOSED); /* before any allocation can collect the box holding conn */
  if (!a.taken) cn_stream_unref(conn);
  char where[160];
  cn_addr_format(peer, where, sizeof where);
  const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(error object is not a string)";
  cn_loop_logf(a.b->ctx->loop, "coronet: connection from %s dropped: starting its handler failed: %s", where, msg);
  lua_pop(L, 1);
}

#define LISTEN_FN "tcp.Server.create" /* named in option errors unless opts.caller names the caller */

static int opt_flag(lua_State *L, int idx, const char *name) {
  lua_getfield(L, idx, name);
  int on = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return on;
}

/* Options: those of tcp.Server.create, and for coronet.net: paused (start
 * accepting nothing), exact_backlog (backlog as given, 0 included),
 * remove_stale (a stale unix socket file is removed before bind). */
static void read_opts(lua_State *L, int idx, cn_server_opts *o, cn_stream_opts *so) {
  memset(o, 0, sizeof *o);
  const char *fn = LISTEN_FN;
  if (lua_istable(L, idx) && lua_getfield(L, idx, "caller") == LUA_TSTRING) fn = lua_tostring(L, -1);
  if (lua_istable(L, idx)) lua_pop(L, 1); /* the table keeps the string alive */
  lcn_read_stream_opts(L, idx, fn, so);
  if (!lua_istable(L, idx)) return;
  o->max_connections = (unsigned)lcn_opt_count(L, idx, fn, "max_connections", UINT_MAX);
  o->max_accepts_per_batch = (unsigned)lcn_opt_count(L, idx, fn, "max_accepts_per_batch", UINT_MAX);
  o->reuseport = opt_flag(L, idx, "reuse_port");
  o->remove_stale = opt_flag(L, idx, "remove_stale");
  o->paused = opt_flag(L, idx, "paused");
  o->exact_backlog = opt_flag(L, idx, "exact_backlog");
  if (o->exact_backlog) {
    lua_getfield(L, idx, "backlog");
    lua_Integer n = luaL_optinteger(L, -1, 0);
    lua_pop(L, 1);
    luaL_argcheck(L, n >= 0 && n <= INT_MAX, idx, "backlog must be an integer >= 0");
    o->backlog = (int)n;
  } else {
    o->backlog = (int)lcn_opt_count(L, idx, fn, "backlog", INT_MAX);
  }
}

/* core.listen(address | fd, opts, on_connection, arg) -> server | nil, err, code.
 * Each connection runs on_connection(arg, socket, peer_address) in a new fiber. Never waits. */
static int l_listen(lua_State *L) {
  cn_addr where, *addr = NULL;
  if (!lua_isinteger(L, 1)) {
    lcn_check_address(L, 1, &where);
    addr = &where;
  }
  luaL_checktype(L, 3, LUA_TFUNCTION);
  lcn_ctx *ctx = lcn_ctx_get(L);
  cn_server_opts o;
  cn_stream_opts so;
  read_opts(L, 2, &o, &so);
  /* The box, its user values and its anchor come first: nothing after the
   * listen allocates, so a memory error cannot leave a listener unowned. */
  lcn_server *b = lua_newuserdatauv(L, sizeof *b, 2);
  b->srv = NULL;
  b->ctx = ctx;
  b->anchor = LUA_NOREF;
  cn_waiter_init(&b->finished, on_finished, b);
  lcn_set_class(L, b, LCN_C_SERVER);
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, 4);
  lua_setiuservalue(L, -2, 2);
  lua_pushvalue(L, -1);
  b->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
  int rc = addr ? cn_server_listen(ctx->loop, addr, &o, on_conn, b, &b->srv)
                : cn_server_listen_fd(ctx->loop, (int)lua_tointeger(L, 1), &o, on_conn, b, &b->srv);
  if (rc < 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, b->anchor);
    b->anchor = LUA_NOREF;
    return lcn_fail(L, rc, "listen on", addr);
  }
  cn_server_set_stream_opts(b->srv, &so);
  cn_server_close_wait(b->srv, &b->finished);
  return 1;
}

/* server:close([close_existing]) : idempotent; no connection starts a
 * handler afterwards. The server stays anchored until its close finishes. */
static int l_close(lua_State *L) {
  lcn_server *b = check_server(L);
  cn_server_close(b->srv, lua_toboolean(L, 2));
  return 0;
}

/* server:close_wait([timeout]) -> true once the listener (and, if asked, every connection) is closed. */
static int l_close_wait(lua_State *L) {
  lcn_server *b = check_server(L);
  lua_Integer deadline = lcn_deadline(L, 2, -1);
  if (cn_server_is_close_finished(b->srv)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lcn_fiber *f = lcn_fiber_current(L);
  cn_server_close_wait(b->srv, &f->waiter);
  return lcn_fiber_wait(L, f, deadline, NULL, NULL, lcn_true_k, (lua_KContext)"server close");
}

static int l_is_closed(lua_State *L) {
  lua_pushboolean(L, cn_server_is_closed(check_server(L)->srv));
  return 1;
}

static int l_is_close_finished(lua_State *L) {
  lua_pushboolean(L, cn_server_is_close_finished(check_server(L)->srv));
  return 1;
}

static int l_num_connections(lua_State *L) {
  lua_pushinteger(L, cn_server_num_connections(check_server(L)->srv));
  return 1;
}

static int l_address(lua_State *L) {
  cn_addr a;
  cn_server_address(check_server(L)->srv, &a);
  lcn_push_address(L, &a);
  return 1;
}

/* server:fileno() -> the listening descriptor, or nil, err, "closed" once
 * closing has started (the number would name a descriptor that is, or soon
 * will be, gone), as socket:getfd() does. */
static int l_fileno(lua_State *L) {
  cn_server *srv = check_server(L)->srv;
  int fd = cn_server_is_closed(srv) ? CN_ECLOSED : cn_server_fileno(srv);
  if (fd < 0) return lcn_fail(L, fd, "listening socket", NULL);
  lua_pushinteger(L, fd);
  return 1;
}

/* server:pause(bool): paused, it accepts only for its credit. */
static int l_pause(lua_State *L) {
  cn_server_pause(check_server(L)->srv, lua_toboolean(L, 2));
  return 0;
}

/* server:add_credit(n): a paused server may accept n more connections (n < 0 takes back). */
static int l_add_credit(lua_State *L) {
  lcn_server *b = check_server(L);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_argcheck(L, n >= -INT_MAX && n <= INT_MAX, 2, "credit out of range");
  cn_server_add_credit(b->srv, (int)n);
  return 0;
}

/* server:set_max_connections(n): n >= 1, or nil for the default. */
static int l_set_max_connections(lua_State *L) {
  lcn_server *b = check_server(L);
  lua_Integer n = luaL_optinteger(L, 2, 0);
  luaL_argcheck(L, n >= 0 && n <= UINT_MAX, 2, "max_connections out of range");
  cn_server_set_max_connections(b->srv, (unsigned)n);
  return 0;
}

/* server:abort_connections(): cuts every live connection; the listener stays. */
static int l_abort_connections(lua_State *L) {
  cn_server_abort_connections(check_server(L)->srv);
  return 0;
}

static int l_set_drop(lua_State *L) {
  cn_server_set_drop(check_server(L)->srv, lua_toboolean(L, 2));
  return 0;
}

/* server:try_accept() -> socket, address | nil (no client can be accepted
 * now: none pending, or at max_connections) | nil, err, code. Never waits;
 * the socket is the accept loop's (stream options applied), no handler runs. */
static int l_try_accept(lua_State *L) {
  cn_server *srv = check_server(L)->srv;
  lcn_conn *c = lcn_new_conn(L); /* the box first: a memory error cannot leak the stream */
  int sock = lua_gettop(L);
  cn_addr peer;
  int rc = cn_server_accept_pending(srv, &c->s, &peer);
  if (rc == UV_EAGAIN) {
    lua_pushnil(L);
    return 1;
  }
  if (rc < 0) {
    cn_server_address(srv, &peer);
    return lcn_fail(L, rc, "accept on", &peer);
  }
  lcn_push_address(L, &peer);
  lcn_conn_keep_peer(L, sock, -1); /* the socket remembers its peer, as the accept loop's do */
  return 2;
}

/* server:wait_pending([timeout]) -> true once a client waits to be accepted
 * (and there is room for it) | nil, err, code ("closed", "timeout",
 * "cancelled"). Accepts nothing. Raises on a server that is not paused. */
static int l_wait_pending(lua_State *L) {
  cn_server *srv = check_server(L)->srv;
  lua_Integer deadline = lcn_deadline(L, 2, -1);
  lcn_fiber *f = lcn_fiber_current(L);
  if (f->cancelled) return lcn_fail(L, CN_ECANCELLED, "wait for a client", NULL);
  int rc = cn_server_wait_pending(srv, &f->waiter);
  if (rc == CN_EBUSY) return luaL_error(L, "server:wait_pending: the server is not paused: it accepts every client itself");
  if (rc < 0) {
    cn_addr where;
    cn_server_address(srv, &where);
    return lcn_fail(L, rc, "wait for a client on", &where);
  }
  return lcn_fiber_wait(L, f, deadline, NULL, NULL, lcn_true_k, (lua_KContext)"wait for a client");
}

static void set_count(lua_State *L, const char *name, uint64_t v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, name);
}

static int l_stats(lua_State *L) {
  cn_server_stats st;
  cn_server_stats_get(check_server(L)->srv, &st);
  lua_createtable(L, 0, 6);
  set_count(L, "connections", st.connections);
  set_count(L, "accepted", st.accepted);
  set_count(L, "dropped", st.dropped);
  set_count(L, "accept_errors", st.accept_errors);
  set_count(L, "bytes_in", st.bytes_in);
  set_count(L, "bytes_out", st.bytes_out);
  return 1;
}

static int l_gc(lua_State *L) {
  lcn_server *b = lcn_check(L, 1, LCN_C_SERVER);
  if (!b->srv) return 0;
  cn_waiter_cancel(&b->finished); /* only when the state closes is an open server collected */
  cn_server_close(b->srv, 0);
  cn_server_unref(b->srv);
  b->srv = NULL;
  return 0;
}

int lcn_open_server(lua_State *L) {
  static const luaL_Reg methods[] = {{"close", l_close},
                                     {"close_wait", l_close_wait},
                                     {"is_closed", l_is_closed},
                                     {"is_close_finished", l_is_close_finished},
                                     {"num_connections", l_num_connections},
                                     {"address", l_address},
                                     {"fileno", l_fileno},
                                     {"set_drop_incoming_connections", l_set_drop},
                                     {"stats", l_stats},
                                     {"pause", l_pause},
                                     {"add_credit", l_add_credit},
                                     {"set_max_connections", l_set_max_connections},
                                     {"abort_connections", l_abort_connections},
                                     {"try_accept", l_try_accept},
                                     {"wait_pending", l_wait_pending},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", l_gc}, {NULL, NULL}};
  lcn_new_class(L, LCN_C_SERVER, methods, meta);
  static const luaL_Reg funcs[] = {{"listen", l_listen}, {NULL, NULL}};
  lcn_setfuncs(L, funcs);
  return 0;
}
