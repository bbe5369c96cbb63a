/* lstream.c: the socket class. A socket userdata holds the connection's one
 * core reference; its reader and writer userdata keep it alive. */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include "lbinding.h"

#define LCN_DEFAULT_CONNECT_TIMEOUT 10.0

lcn_conn *lcn_new_conn(lua_State *L) {
  lcn_conn *c = lua_newuserdatauv(L, sizeof *c, 3); /* user values: reader, writer, peer address */
  c->s = NULL;
  c->connect_timeout = LCN_DEFAULT_CONNECT_TIMEOUT;
  c->read_timeout = c->write_timeout = -1;
  lcn_set_class(L, c, LCN_C_SOCKET);
  return c;
}

void lcn_push_conn(lua_State *L, cn_stream *s) { lcn_new_conn(L)->s = s; }

void lcn_conn_set_peer(lua_State *L, int conn_idx, const cn_addr *peer) {
  conn_idx = lua_absindex(L, conn_idx);
  lcn_push_address(L, peer);
  lcn_conn_keep_peer(L, conn_idx, -1);
  lua_pop(L, 1);
}

void lcn_conn_keep_peer(lua_State *L, int conn_idx, int addr_idx) {
  conn_idx = lua_absindex(L, conn_idx);
  lua_pushvalue(L, addr_idx);
  lua_setiuservalue(L, conn_idx, 3);
}

/* Pushes the peer address remembered for the socket (or the reader or
 * writer's socket) at idx and returns 1; pushes nothing and returns 0 if none. */
int lcn_conn_push_peer(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  int half = lcn_test(L, idx, LCN_C_READER) || lcn_test(L, idx, LCN_C_WRITER);
  if (half) {
    lua_getiuservalue(L, idx, 1);
    idx = lua_absindex(L, -1);
  }
  int found = lcn_test(L, idx, LCN_C_SOCKET) && lua_getiuservalue(L, idx, 3) == LUA_TUSERDATA;
  if (!found && lcn_test(L, idx, LCN_C_SOCKET)) lua_pop(L, 1);
  if (half) lua_remove(L, found ? -2 : -1);
  return found;
}

lcn_conn *lcn_check_conn(lua_State *L, int idx) { return lcn_check(L, idx, LCN_C_SOCKET); }

cn_stream *lcn_conn_stream(lua_State *L, lcn_conn *c) {
  if (!c->s) luaL_error(L, "socket was released");
  return c->s;
}

void lcn_push_half(lua_State *L, int conn_idx, int cls) {
  int slot = cls == LCN_C_READER ? 1 : 2;
  conn_idx = lua_absindex(L, conn_idx);
  if (lua_getiuservalue(L, conn_idx, slot) != LUA_TNIL) return;
  lua_pop(L, 1);
  lcn_half *h = lua_newuserdatauv(L, sizeof *h, 1);
  h->conn = lcn_check_conn(L, conn_idx);
  h->closed = 0;
  lcn_set_class(L, h, cls);
  lua_pushvalue(L, conn_idx);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, conn_idx, slot);
}

static cn_stream *check_open(lua_State *L, lcn_conn **out) {
  lcn_conn *c = lcn_check_conn(L, 1);
  if (out) *out = c;
  return lcn_conn_stream(L, c);
}

static int push_name(lua_State *L, int peer) {
  cn_stream *s = check_open(L, NULL);
  cn_addr a;
  int rc = peer ? cn_stream_peername(s, &a) : cn_stream_sockname(s, &a);
  if (rc < 0) return lcn_fail(L, rc, peer ? "getpeername" : "getsockname", NULL);
  lcn_push_address(L, &a);
  return 1;
}

static int l_getpeername(lua_State *L) { return push_name(L, 1); }
static int l_getsockname(lua_State *L) { return push_name(L, 0); }

static int l_reader(lua_State *L) {
  lcn_check_conn(L, 1);
  lcn_push_half(L, 1, LCN_C_READER);
  return 1;
}

static int l_writer(lua_State *L) {
  lcn_check_conn(L, 1);
  lcn_push_half(L, 1, LCN_C_WRITER);
  return 1;
}

/* socket:setoption(name, value): "tcp-nodelay", "keepalive" (value true/false or seconds), "reuseaddr". */
static int l_setoption(lua_State *L) {
  cn_stream *s = check_open(L, NULL);
  static const char *const names[] = {"tcp-nodelay", "keepalive", "reuseaddr", NULL};
  int opt = luaL_checkoption(L, 2, NULL, names);
  int on = lua_isnumber(L, 3) ? lua_tonumber(L, 3) > 0 : lua_toboolean(L, 3);
  int rc;
  if (cn_stream_is_closing(s)) /* as getfd: the descriptor may be gone at any moment */
    rc = CN_ECLOSED;
  else if (opt == 0)
    rc = cn_stream_set_nodelay(s, on);
  else if (opt == 1)
    rc = cn_stream_set_keepalive(s, on, lua_isnumber(L, 3) ? (unsigned)lua_tointeger(L, 3) : 0);
  else
    rc = cn_stream_set_reuseaddr(s, on);
  if (rc < 0) return lcn_fail(L, rc, "setoption", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* socket:getoption(name) -> boolean: "tcp-nodelay", "keepalive", "reuseaddr". */
static int l_getoption(lua_State *L) {
  cn_stream *s = check_open(L, NULL);
  static const char *const names[] = {"tcp-nodelay", "keepalive", "reuseaddr", NULL};
  cn_sockopt opt = (cn_sockopt)luaL_checkoption(L, 2, NULL, names);
  int on, rc = cn_stream_is_closing(s) ? CN_ECLOSED : cn_stream_get_option(s, opt, &on);
  if (rc < 0) return lcn_fail(L, rc, "getoption", NULL);
  lua_pushboolean(L, on);
  return 1;
}

/* socket:shutdown("send"|"receive"|"both") */
static int l_shutdown(lua_State *L) {
  cn_stream *s = check_open(L, NULL);
  static const char *const hows[] = {"receive", "send", "both", NULL};
  static const int how_of[] = {SHUT_RD, SHUT_WR, SHUT_RDWR};
  int how = luaL_checkoption(L, 2, "both", hows);
  int rc = cn_stream_shutdown(s, how_of[how]);
  if (rc < 0) return lcn_fail_stream(L, rc, "shutdown", s);
  lua_pushboolean(L, 1);
  return 1;
}

/* socket:getfd() -> the descriptor, or nil, err, "closed" once closing has
 * started (the number would name a descriptor that is, or soon will be, gone). */
static int l_getfd(lua_State *L) {
  cn_stream *s = check_open(L, NULL);
  int fd = cn_stream_is_closing(s) ? CN_ECLOSED : cn_stream_fileno(s);
  if (fd < 0) return lcn_fail(L, fd, "getfd", NULL);
  lua_pushinteger(L, fd);
  return 1;
}

/* socket:settimeouts(connect, send, read): seconds, false for none, nil to keep. */
static int l_settimeouts(lua_State *L) {
  lcn_conn *c = lcn_check_conn(L, 1);
  double *fields[] = {&c->connect_timeout, &c->write_timeout, &c->read_timeout};
  for (int i = 0; i < 3; i++)
    if (!lua_isnoneornil(L, i + 2)) *fields[i] = lcn_opt_seconds(L, i + 2, -1);
  lua_settop(L, 1);
  return 1;
}

static int l_gettimeouts(lua_State *L) {
  lcn_conn *c = lcn_check_conn(L, 1);
  double v[] = {c->connect_timeout, c->write_timeout, c->read_timeout};
  for (int i = 0; i < 3; i++) {
    if (v[i] < 0)
      lua_pushboolean(L, 0);
    else
      lua_pushnumber(L, v[i]);
  }
  return 3;
}

/* socket:bind(address) before connecting. */
static int l_bind(lua_State *L) {
  cn_stream *s = check_open(L, NULL);
  cn_addr a;
  lcn_check_address(L, 2, &a);
  int rc = cn_stream_is_closing(s) ? CN_ECLOSED : cn_stream_bind(s, &a);
  if (rc < 0) return lcn_fail(L, rc, "bind", &a);
  lua_pushboolean(L, 1);
  return 1;
}

/* socket:close(): starts the graceful close of both halves; never waits. */
static int l_close(lua_State *L) {
  lcn_conn *c = lcn_check_conn(L, 1);
  if (c->s) cn_stream_close(c->s);
  return 0;
}

/* socket:abort(): closes at once, dropping unflushed bytes. */
static int l_abort(lua_State *L) {
  lcn_conn *c = lcn_check_conn(L, 1);
  if (c->s) cn_stream_abort(c->s, CN_ECLOSED);
  return 0;
}

static int l_is_closed(lua_State *L) {
  lcn_conn *c = lcn_check_conn(L, 1);
  lua_pushboolean(L, !c->s || cn_stream_is_closing(c->s));
  return 1;
}

/* socket:close_finished([timeout]) -> true once the descriptor is closed. */
static int l_close_finished(lua_State *L) {
  cn_stream *s = check_open(L, NULL);
  lua_Integer deadline = lcn_deadline(L, 2, -1);
  if (cn_stream_is_closed(s)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lcn_fiber *f = lcn_fiber_current(L);
  cn_stream_close_wait(s, &f->waiter);
  return lcn_fiber_wait(L, f, deadline, NULL, NULL, lcn_true_k, (lua_KContext)"close_finished");
}

static int l_stats(lua_State *L) {
  cn_stream *s = check_open(L, NULL);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, (lua_Integer)cn_stream_bytes_in(s));
  lua_setfield(L, -2, "bytes_in");
  lua_pushinteger(L, (lua_Integer)cn_stream_bytes_out(s));
  lua_setfield(L, -2, "bytes_out");
  return 1;
}

static int l_gc(lua_State *L) {
  lcn_conn *c = lcn_check_conn(L, 1);
  if (c->s) cn_stream_unref(c->s);
  c->s = NULL;
  return 0;
}

static int l_tostring(lua_State *L) {
  lcn_conn *c = lcn_check_conn(L, 1);
  cn_addr a;
  char text[160] = "unconnected";
  if (!c->s)
    strcpy(text, "released");
  else if (cn_stream_is_closing(c->s))
    strcpy(text, "closed");
  else if (cn_stream_kind(c->s) == CN_STREAM_PIPE)
    strcpy(text, "pipe");
  else if (cn_stream_kind(c->s) == CN_STREAM_TTY)
    strcpy(text, "terminal");
  else if (cn_stream_peername(c->s, &a) == 0 && cn_addr_format(&a, text, sizeof text) == 0)
    strcpy(text, "unnamed unix socket"); /* a socket pair's end */
  lua_pushfstring(L, "coronet.socket (%s): %p", text, (void *)c);
  return 1;
}

/* core.tcp_socket(family) -> an unconnected socket for bind-before-connect. */
static int l_tcp_socket(lua_State *L) {
  static const char *const families[] = {"inet", "inet6", NULL};
  int fam = luaL_checkoption(L, 1, "inet", families) == 0 ? AF_INET : AF_INET6;
  lcn_conn *c = lcn_new_conn(L); /* the box first: nothing to leak if making it fails */
  cn_stream *s;
  int rc = cn_stream_new_tcp(lcn_ctx_get(L)->loop, fam, &s);
  if (rc < 0) return lcn_fail(L, rc, "socket", NULL);
  c->s = s;
  return 1;
}

/* What a descriptor libuv refused (UV_EINVAL) is, for the message. */
static const char *what_fd_is(int fd) {
  struct stat st;
  int type = 0;
  socklen_t len = sizeof type;
  if (fstat(fd, &st) < 0) return "not open";
  if (S_ISREG(st.st_mode)) return "a regular file";
  if (S_ISDIR(st.st_mode)) return "a directory";
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) return "a device, not a terminal";
  if (S_ISSOCK(st.st_mode) && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type != SOCK_STREAM)
    return "a datagram socket";
  if (S_ISSOCK(st.st_mode)) return "a listening socket";
  return "not a stream";
}

/* nil, err, code naming the descriptor: "descriptor 5: bad file descriptor
 * (EBADF)", or for one libuv cannot stream "descriptor 5 is a regular file:
 * libuv cannot stream it (EINVAL)". */
static int fail_fd(lua_State *L, int err, int fd) {
  char what[96];
  snprintf(what, sizeof what, "descriptor %d", fd);
  lcn_fail(L, err, what, NULL);
  if (err == UV_EINVAL) {
    lua_pushfstring(L, "descriptor %d is %s: libuv cannot stream it (%s)", fd, what_fd_is(fd), cn_err_name(err));
    lua_setfield(L, -3, "message");
  }
  return 3;
}

/* Adopts fd (the stream owns it on success) into the socket box on top. */
static int adopt(lua_State *L, int fd) {
  lcn_conn *c = lcn_check_conn(L, -1);
  cn_stream *s;
  int rc = cn_stream_open_fd(lcn_ctx_get(L)->loop, fd, &s);
  if (rc < 0) return rc;
  c->s = s;
  return 0;
}

/* core.adopt_fd(fd) -> socket over an inherited descriptor (a connected
 * socket, a pipe, a terminal), which the socket then owns. */
static int l_adopt_fd(lua_State *L) {
  lua_Integer fd = luaL_checkinteger(L, 1);
  luaL_argcheck(L, fd >= 0 && fd <= INT_MAX, 1, "not a file descriptor");
  lcn_new_conn(L); /* the box first: nothing to leak if making it fails */
  int rc = adopt(L, (int)fd);
  return rc < 0 ? fail_fd(L, rc, (int)fd) : 1;
}

/* The descriptor argument of open_descriptor: an integer >= 0 or an open Lua file. */
static int check_descriptor(lua_State *L) {
  luaL_Stream *file = luaL_testudata(L, 1, LUA_FILEHANDLE);
  if (file) {
    if (!file->closef) luaL_error(L, "attempt to use a closed file");
    return fileno(file->f);
  }
  int is_int = 0;
  lua_Integer fd = lua_type(L, 1) == LUA_TNUMBER ? lua_tointegerx(L, 1, &is_int) : 0;
  if (!is_int) luaL_typeerror(L, 1, "descriptor (integer) or file");
  luaL_argcheck(L, fd >= 0 && fd <= INT_MAX, 1, "not a file descriptor");
  return (int)fd;
}

/* core.open_descriptor(fd | file) -> socket over a duplicate of the
 * descriptor, or nil, err, code. The caller's descriptor stays its own. */
static int l_open_descriptor(lua_State *L) {
  int fd = check_descriptor(L);
  lcn_conn *c = lcn_new_conn(L); /* the box first: nothing to leak if making it fails */
  cn_stream *s;
  int rc = cn_stream_open_dup(lcn_ctx_get(L)->loop, fd, &s);
  if (rc < 0) return fail_fd(L, rc, fd);
  c->s = s;
  return 1;
}

/* The one place where options are read and checked: socket:configure,
 * tcp.connect (through core.check_stream_options) and tcp.Server.create
 * (core.listen) all come here. A bad value raises, naming the function the
 * user called and the option. */
static int bad_option(lua_State *L, const char *fn, const char *name, const char *what) {
  return luaL_error(L, "%s: option '%s' must be %s (got %s)", fn, name, what, luaL_tolstring(L, -1, NULL));
}

lua_Integer lcn_opt_count(lua_State *L, int idx, const char *fn, const char *name, lua_Integer max) {
  lua_Integer v = 0; /* absent: the core's default */
  lua_getfield(L, idx, name);
  if (!lua_isnil(L, -1)) {
    int ok = lua_type(L, -1) == LUA_TNUMBER;
    if (ok) v = lua_tointegerx(L, -1, &ok);
    if (!ok || v < 1 || v > max) bad_option(L, fn, name, "a positive integer");
  }
  lua_pop(L, 1);
  return v;
}

/* Seconds to whole milliseconds, rounded up so that no positive duration
 * becomes 0 (which the core reads as "default" or "off"); huge values
 * (math.huge included) saturate far beyond any real run. */
static uint64_t seconds_to_ms(double s) {
  const double max_ms = 0x1p52;
  double ms = s * 1000.0;
  if (ms >= max_ms) return (uint64_t)max_ms;
  uint64_t whole = (uint64_t)ms;
  if ((double)whole < ms) whole++;
  return whole ? whole : 1;
}

/* A duration in seconds, >= 0 (or > 0 unless allow_zero); 0 ms when absent. */
static uint64_t opt_ms(lua_State *L, int idx, const char *fn, const char *name, int allow_zero) {
  uint64_t ms = 0;
  lua_getfield(L, idx, name);
  if (!lua_isnil(L, -1)) {
    double s = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
    if (!(s > 0 || (allow_zero && s == 0))) /* NaN fails both */
      bad_option(L, fn, name, allow_zero ? "a number of seconds >= 0" : "a number of seconds > 0");
    ms = seconds_to_ms(s);
  }
  lua_pop(L, 1);
  return ms;
}

void lcn_read_stream_opts(lua_State *L, int idx, const char *fn, cn_stream_opts *o) {
  memset(o, 0, sizeof *o);
  if (lua_isnoneornil(L, idx)) return;
  if (!lua_istable(L, idx)) luaL_error(L, "%s: options must be a table (got %s)", fn, luaL_typename(L, idx));
  o->reader_buffer_size = (size_t)lcn_opt_count(L, idx, fn, "reader_buffer_size", LUA_MAXINTEGER);
  o->writer_buffer_size = (size_t)lcn_opt_count(L, idx, fn, "writer_buffer_size", LUA_MAXINTEGER);
  o->buffer_age_limit_ms = opt_ms(L, idx, fn, "buffer_age_limit", 0);
  /* 0 s means "do not wait": the shortest bound the core has, 1 ms (its 0 is the 5 s default). */
  o->close_timeout_ms = opt_ms(L, idx, fn, "close_timeout", 1);
}

/* socket:configure(opts): applies reader_buffer_size, writer_buffer_size,
 * buffer_age_limit and close_timeout. Returns the socket. */
static int l_configure(lua_State *L) {
  cn_stream *s = check_open(L, NULL);
  luaL_checktype(L, 2, LUA_TTABLE);
  cn_stream_opts o;
  lcn_read_stream_opts(L, 2, "socket:configure", &o);
  cn_stream_configure(s, &o);
  lua_settop(L, 1);
  return 1;
}

/* core.check_stream_options(opts, fn): raises as configure would, naming fn
 * (tcp.connect checks its options before connecting). */
static int l_check_stream_options(lua_State *L) {
  cn_stream_opts o;
  lcn_read_stream_opts(L, 1, luaL_checkstring(L, 2), &o);
  return 0;
}

int lcn_open_stream(lua_State *L) {
  static const luaL_Reg methods[] = {{"getpeername", l_getpeername},
                                     {"getsockname", l_getsockname},
                                     {"reader", l_reader},
                                     {"writer", l_writer},
                                     {"setoption", l_setoption},
                                     {"getoption", l_getoption},
                                     {"shutdown", l_shutdown},
                                     {"getfd", l_getfd},
                                     {"settimeouts", l_settimeouts},
                                     {"gettimeouts", l_gettimeouts},
                                     {"bind", l_bind},
                                     {"close", l_close},
                                     {"abort", l_abort},
                                     {"is_closed", l_is_closed},
                                     {"close_finished", l_close_finished},
                                     {"stats", l_stats},
                                     {"configure", l_configure},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", l_gc}, {"__close", l_close}, {"__tostring", l_tostring}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
      {"tcp_socket", l_tcp_socket},
      {"adopt_fd", l_adopt_fd},
      {"open_descriptor", l_open_descriptor},
      {"check_stream_options", l_check_stream_options},
      {NULL, NULL}};
  lcn_new_class(L, LCN_C_SOCKET, methods, meta);
  lcn_setfuncs(L, funcs);
  return 0;
}
