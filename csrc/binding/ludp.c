/* ludp.c: the datagram socket class over the core's udp.c. The box is made
 * before the socket (liolib's newprefile) and holds the one owner pointer;
 * the core tells the box when it frees the socket (the `gone` waiter), so a
 * socket closed by anyone (close, the end of coronet.run) is never touched
 * afterwards. */
#include <string.h>
#include <sys/socket.h>
#include "lbinding.h"

typedef struct lcn_udp {
  lcn_tag tag;
  cn_udp *u;      /* NULL once the core freed it, or once collected */
  cn_waiter gone; /* on the core socket's close: clears u */
} lcn_udp;

#define LCN_DEFAULT_MAXLEN 65536 /* holds the largest datagram */

static lcn_udp *check_udp(lua_State *L) { return lcn_check(L, 1, LCN_C_DATAGRAM); }

/* The core socket while it is open, else NULL. */
static cn_udp *open_udp(lcn_udp *b) { return b->u && !cn_udp_is_closing(b->u) ? b->u : NULL; }

static void on_gone(cn_waiter *w, int status) {
  lcn_udp *b = w->data;
  (void)status;
  b->u = NULL;
}

static int fail_closed(lua_State *L, const char *what) { return lcn_fail(L, CN_ECLOSED, what, NULL); }

/* core.udp_socket(address | "inet" | "inet6", reuse_addr, reuse_port) -> socket | nil, err, code.
 * With an address the socket is bound to it. */
static int l_udp_socket(lua_State *L) {
  static const char *const families[] = {"inet", "inet6", NULL};
  cn_addr where;
  int bind = lua_type(L, 1) != LUA_TSTRING;
  if (bind) lcn_check_address(L, 1, &where);
  int family = bind ? cn_addr_family(&where) : (luaL_checkoption(L, 1, NULL, families) == 0 ? AF_INET : AF_INET6);
  luaL_argcheck(L, family == AF_INET || family == AF_INET6, 1, "a datagram socket needs an IP address, not a unix one");
  unsigned flags = (lua_toboolean(L, 2) ? CN_UDP_REUSEADDR : 0) | (lua_toboolean(L, 3) ? CN_UDP_REUSEPORT : 0);
  lcn_udp *b = lua_newuserdatauv(L, sizeof *b, 1); /* user value: the last sender's address */
  b->u = NULL;
  cn_waiter_init(&b->gone, on_gone, b);
  lcn_set_class(L, b, LCN_C_DATAGRAM);
  int rc = cn_udp_new(lcn_ctx_get(L)->loop, family, &b->u);
  if (rc < 0) return lcn_fail(L, rc, "datagram socket", NULL);
  cn_udp_close_wait(b->u, &b->gone);
  rc = bind ? cn_udp_bind(b->u, &where, flags) : 0;
  if (rc < 0) {
    cn_udp_close(b->u);
    return lcn_fail(L, rc, "bind", &where);
  }
  return 1;
}

/* ------------------------------------------------------------- sending */

/* The parts of `data` (a string or an array of strings) as slices. The
 * table keeps its strings alive while the core reads them; an array longer
 * than the core takes in one call is joined into one string (left on the
 * stack) first. */
static size_t read_parts(lua_State *L, int idx, cn_slice *parts) {
  if (!lua_istable(L, idx)) {
    parts[0].p = luaL_checklstring(L, idx, &parts[0].n);
    return 1;
  }
  lua_Integer n = luaL_len(L, idx);
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_rawgeti(L, idx, i) != LUA_TSTRING) luaL_error(L, "send: data[%d] is not a string", (int)i);
    if (i <= CN_UDP_MAX_PARTS) parts[i - 1].p = lua_tolstring(L, -1, &parts[i - 1].n);
    lua_pop(L, 1);
  }
  if (n <= CN_UDP_MAX_PARTS) return (size_t)n;
  luaL_Buffer joined;
  luaL_buffinit(L, &joined);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    luaL_addvalue(&joined);
  }
  luaL_pushresult(&joined);
  parts[0].p = lua_tolstring(L, -1, &parts[0].n);
  return 1;
}

/* "send to <address>", or "send <n> bytes to <address>" for a datagram too large. */
static int send_fail(lua_State *L, int err, const cn_addr *to, const cn_slice *parts, size_t n) {
  if (err != UV_EMSGSIZE) return lcn_fail(L, err, "send to", to);
  size_t size = 0;
  for (size_t i = 0; i < n; i++) size += parts[i].n;
  const char *what = lua_pushfstring(L, "send %I bytes to", (lua_Integer)size);
  int results = lcn_fail(L, err, what, to);
  lua_remove(L, -results - 1);
  return results;
}

static int send_k(lua_State *L, int status, lua_KContext kctx) {
  (void)status;
  (void)kctx;
  int st = lcn_fiber_status(L);
  if (st < 0) {
    cn_addr to;
    lcn_check_address(L, 2, &to);
    return lcn_fail(L, st, "send to", &to);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* sock:send(address, data) -> true | nil, err, code. `data` is a string or
 * an array of strings sent as one datagram. Waits only when the socket's
 * send buffer is full. */
static int l_send(lua_State *L) {
  lcn_udp *b = check_udp(L);
  cn_addr to;
  cn_slice parts[CN_UDP_MAX_PARTS];
  lcn_check_address(L, 2, &to);
  if (lua_type(L, 3) != LUA_TTABLE) luaL_checkstring(L, 3);
  lua_settop(L, 3);
  lcn_fiber *f = lcn_fiber_current(L);
  size_t n = read_parts(L, 3, parts);
  cn_udp *u = open_udp(b);
  if (!u) return lcn_fail(L, CN_ECLOSED, "send to", &to);
  int rc = cn_udp_send(u, &to, parts, n, &f->waiter);
  if (rc < 0) return send_fail(L, rc, &to, parts, n);
  if (rc == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return lcn_fiber_wait(L, f, -1, NULL, NULL, send_k, 0);
}

/* ----------------------------------------------------------- receiving */

/* Pushes the sender's address value. A socket usually hears from the same
 * few peers, so the last value is kept (user value 1) and given again when
 * the sender is the same: address values cannot change, and receiving then
 * allocates nothing beyond the data string. */
static void push_sender(lua_State *L, const cn_addr *from) {
  cn_addr last;
  if (lua_getiuservalue(L, 1, 1) == LUA_TUSERDATA) {
    lcn_check_address(L, -1, &last);
    if (last.len == from->len && memcmp(&last.ss, &from->ss, from->len) == 0) return;
  }
  lua_pop(L, 1);
  lcn_push_address(L, from);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, 1, 1);
}

/* The datagram is in the loop's scratch only during this continuation's
 * first run (it runs inside the core's read callback): copy it now. */
static int recv_k(lua_State *L, int status, lua_KContext maxlen) {
  (void)status;
  lcn_udp *b = check_udp(L);
  int st = lcn_fiber_status(L);
  if (st < 0) return lcn_fail(L, st, "recv", NULL);
  size_t len;
  cn_addr from;
  const char *p = cn_udp_datagram(b->u, &len, &from);
  int truncated = len > (size_t)maxlen;
  lua_pushlstring(L, p, truncated ? (size_t)maxlen : len);
  push_sender(L, &from);
  lua_pushboolean(L, truncated);
  return 3;
}

/* Reads opts.timeout (seconds, nil or false for none) as a deadline. */
static lua_Integer recv_deadline(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return -1;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_getfield(L, idx, "timeout");
  lcn_check_opt_seconds(L, -1, "recv", "timeout");
  lua_Integer deadline = lcn_deadline(L, -1, -1);
  lua_pop(L, 1);
  return deadline;
}

/* sock:recv([maxlen[, {timeout=}]]) -> data, from, truncated | nil, err, code.
 * A datagram longer than maxlen (default 65536) is cut to maxlen and
 * truncated is true; an empty datagram gives "". */
static int l_recv(lua_State *L) {
  lcn_udp *b = check_udp(L);
  lua_Integer maxlen = luaL_optinteger(L, 2, LCN_DEFAULT_MAXLEN);
  luaL_argcheck(L, maxlen >= 1, 2, "maxlen must be at least 1");
  lua_Integer deadline = recv_deadline(L, 3);
  lcn_fiber *f = lcn_fiber_current(L);
  cn_udp *u = open_udp(b);
  if (!u) return fail_closed(L, "recv");
  int rc = cn_udp_recv(u, &f->waiter);
  if (rc < 0) return lcn_fail(L, rc, "recv", NULL);
  return lcn_fiber_wait(L, f, deadline, NULL, NULL, recv_k, (lua_KContext)maxlen);
}

/* --------------------------------------------------------- the rest */

/* sock:getsockname() -> address | nil, err, code. */
static int l_getsockname(lua_State *L) {
  cn_udp *u = open_udp(check_udp(L));
  cn_addr a;
  int rc = u ? cn_udp_sockname(u, &a) : CN_ECLOSED;
  if (rc < 0) return lcn_fail(L, rc, "getsockname", NULL);
  lcn_push_address(L, &a);
  return 1;
}

/* sock:close(): starts closing; a fiber waiting in recv or send gets
 * nil, err, "closed". Idempotent, never waits. */
static int l_close(lua_State *L) {
  lcn_udp *b = check_udp(L);
  if (b->u) cn_udp_close(b->u);
  return 0;
}

static int l_is_closed(lua_State *L) {
  lua_pushboolean(L, open_udp(check_udp(L)) == NULL);
  return 1;
}

/* sock:close_finished([timeout]) -> true once the descriptor is closed. */
static int l_close_finished(lua_State *L) {
  lcn_udp *b = check_udp(L);
  lua_Integer deadline = lcn_deadline(L, 2, -1);
  if (!b->u) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lcn_fiber *f = lcn_fiber_current(L);
  cn_udp_close_wait(b->u, &f->waiter);
  return lcn_fiber_wait(L, f, deadline, NULL, NULL, lcn_true_k, (lua_KContext)"close_finished");
}

static int l_gc(lua_State *L) {
  lcn_udp *b = check_udp(L);
  if (!b->u) return 0;
  cn_waiter_cancel(&b->gone); /* the box goes first */
  cn_udp_close(b->u);
  b->u = NULL;
  return 0;
}

static int l_tostring(lua_State *L) {
  lcn_udp *b = check_udp(L);
  cn_udp *u = open_udp(b);
  cn_addr a;
  char text[160] = "closed";
  if (u && cn_udp_sockname(u, &a) == 0) cn_addr_format(&a, text, sizeof text);
  lua_pushfstring(L, "coronet.datagram_socket (%s): %p", text, (void *)b);
  return 1;
}

int lcn_open_udp(lua_State *L) {
  static const luaL_Reg methods[] = {{"send", l_send},
                                     {"recv", l_recv},
                                     {"getsockname", l_getsockname},
                                     {"close", l_close},
                                     {"is_closed", l_is_closed},
                                     {"close_finished", l_close_finished},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", l_gc}, {"__close", l_close}, {"__tostring", l_tostring}, {NULL, NULL}};
  lcn_new_class(L, LCN_C_DATAGRAM, methods, meta);
  static const luaL_Reg funcs[] = {{"udp_socket", l_udp_socket}, {NULL, NULL}};
  lcn_setfuncs(L, funcs);
  return 0;
}
