/* lconnect.c: core.connect(opts) connects and waits. A timeout, a cancel or
 * an interrupt (fiber:interrupt) aborts the core operation. */
#include <string.h>
#include "lbinding.h"

/* The host name, as given, is the box's user value (for messages). */
typedef struct lcn_connect_box {
  lcn_tag tag;
  cn_connect *op; /* NULL once taken or aborted */
  cn_addr where;  /* for messages */
  int have_where;
  int port;
} lcn_connect_box;

static lcn_connect_box *check_op(lua_State *L) { return lcn_check(L, 1, LCN_C_CONNECT); }

static void abort_op(lcn_connect_box *box) {
  if (!box->op) return;
  cn_connect_abort(box->op);
  box->op = NULL;
}

static void abort_for_fiber(lcn_fiber *f) { abort_op(f->abort_data); }

/* "connect to host:port" or the address; for error values. The message
 * stays on the stack until lcn_fail has copied it: a popped string may be
 * collected by the first allocation. The box is at index 1. */
static int fail(lua_State *L, lcn_connect_box *box, int err) {
  if (box->have_where) return lcn_fail(L, err, "connect to", &box->where);
  if (lua_getiuservalue(L, 1, 1) != LUA_TSTRING) { /* addresses that were never tried */
    lua_pop(L, 1);
    return lcn_fail(L, err, "connect", NULL);
  }
  lua_pop(L, 1);
  lua_pushliteral(L, "connect to ");
  lua_getiuservalue(L, 1, 1);
  lua_pushfstring(L, ":%d", box->port);
  lua_concat(L, 3); /* lua_concat keeps a NUL byte in the name; "%s" would cut it */
  int n = lcn_fail(L, err, lua_tostring(L, -1), NULL);
  lua_remove(L, -n - 1);
  lua_getiuservalue(L, 1, 1);
  lua_setfield(L, -3, "address");
  return n;
}

/* Keeps the address last tried, for messages once the operation is gone. */
static void remember_target(lcn_connect_box *box) {
  const cn_addr *last = cn_connect_last_addr(box->op);
  if (!last) return;
  box->where = *last;
  box->have_where = 1;
}

/* Pushes {{address = a, code = "ECONNREFUSED"}, ...}: every address tried,
 * in the order the attempts started, with its outcome. */
static void push_attempts(lua_State *L, const cn_connect *op) {
  size_t n = cn_connect_attempt_count(op);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    cn_addr a;
    int code = cn_connect_attempt(op, i, &a);
    lua_createtable(L, 0, 2);
    lcn_push_address(L, &a);
    lua_setfield(L, -2, "address");
    if (code < 0) {
      lua_pushstring(L, cn_err_name(code));
      lua_setfield(L, -2, "code");
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

/* A failure carries the list of attempts as err.attempts. */
static int fail_with_attempts(lua_State *L, lcn_connect_box *box, int err, int attempts) {
  int n = fail(L, box, err);
  lua_pushvalue(L, attempts);
  lua_setfield(L, -3, "attempts"); /* nil, err, code, attempts */
  return n;
}

static int take(lua_State *L, lcn_connect_box *box) {
  cn_stream *s;
  remember_target(box);
  push_attempts(L, box->op);
  int attempts = lua_gettop(L);
  int rc = cn_connect_take(box->op, &s);
  box->op = NULL;
  if (rc < 0) return fail_with_attempts(L, box, rc, attempts);
  lua_pop(L, 1);
  if (lua_isuserdata(L, 2)) { /* the caller's socket is now connected */
    cn_stream_unref(s);
    lua_settop(L, 2);
  } else {
    lcn_push_conn(L, s);
  }
  if (box->have_where) lcn_conn_set_peer(L, -1, &box->where);
  return 1;
}

static int wait_k(lua_State *L, int status, lua_KContext kctx) {
  (void)status;
  (void)kctx;
  lcn_connect_box *box = check_op(L);
  int st = lcn_fiber_status(L);
  if (st == 0 && box->op) return take(L, box);
  if (st == 0) st = UV_ECANCELED;
  if (box->op) {
    if (st != UV_ECANCELED) return take(L, box);
    remember_target(box);
  }
  abort_op(box);
  return fail(L, box, st);
}

static int l_gc(lua_State *L) {
  abort_op(check_op(L));
  return 0;
}

/* addresses = {address, ...} (at idx), in a userdata the box keeps as its
 * second user value: a bad entry raises without leaking a C buffer. */
static void read_addresses(lua_State *L, int idx, cn_connect_opts *o, int box_idx) {
  lua_Integer n = luaL_len(L, idx);
  luaL_argcheck(L, n > 0 && n <= 1024, 1, "'addresses' must be a non-empty array of addresses (at most 1024)");
  cn_addr *list = lua_newuserdatauv(L, (size_t)n * sizeof *list, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, idx, i);
    lcn_check_address(L, -1, &list[i - 1]);
    lua_pop(L, 1);
  }
  lua_setiuservalue(L, box_idx, 2);
  o->addrs = list;
  o->naddrs = (size_t)n;
}

/* The host string becomes the box's user value, which keeps it alive while
 * the core reads it. Its full length goes to the core, which refuses a
 * name with a NUL byte or over 255 bytes (EAI_NONAME) rather than cut it. */
static void read_target(lua_State *L, int idx, cn_connect_opts *o, lcn_connect_box *box, int box_idx) {
  if (lua_getfield(L, idx, "addresses") != LUA_TNIL) {
    read_addresses(L, lua_absindex(L, -1), o, box_idx);
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  lua_getfield(L, idx, "host");
  lua_getfield(L, idx, "port");
  lua_getfield(L, idx, "address");
  if (lua_isstring(L, -3)) {
    o->host = lua_tolstring(L, -3, &o->host_len);
    o->port = box->port = (int)luaL_checkinteger(L, -2);
    lua_pushvalue(L, -3);
    lua_setiuservalue(L, box_idx, 1);
  } else {
    lcn_check_address(L, -1, &box->where);
    box->have_where = 1;
    o->addr = &box->where;
  }
  lua_pop(L, 3);
}

/* core.connect{host=, port=} | {address=} | {addresses={...}}, timeout=, attempt_timeout=, caller=,
 * happy_eyeballs_delay=, socket=} -> socket | nil, err, code (err.attempts lists each address tried) */
static int l_connect(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lcn_ctx *ctx = lcn_ctx_get(L);
  lcn_fiber *f = lcn_fiber_current(L);
  lcn_connect_box *box = lua_newuserdatauv(L, sizeof *box, 2);
  memset(box, 0, sizeof *box);
  lcn_set_class(L, box, LCN_C_CONNECT);
  cn_connect_opts o;
  memset(&o, 0, sizeof o);
  read_target(L, 1, &o, box, 2);
  lua_getfield(L, 1, "caller"); /* the function the user called, for option errors */
  const char *caller = lua_isstring(L, -1) ? lua_tostring(L, -1) : "connect";
  o.timeout_ms = lcn_opt_bound_ms(L, 1, caller, "timeout");
  o.attempt_timeout_ms = lcn_opt_bound_ms(L, 1, caller, "attempt_timeout");
  o.happy_eyeballs_delay_ms = lcn_opt_bound_ms(L, 1, caller, "happy_eyeballs_delay");
  lua_pop(L, 1);
  lua_getfield(L, 1, "socket"); /* index 3: the caller's socket or nil */
  if (!lua_isnil(L, 3)) o.socket = lcn_conn_stream(L, lcn_check_conn(L, 3));
  lua_replace(L, 1);
  lua_insert(L, 1); /* 1 box, 2 socket-or-nil */
  if (f->cancelled) return fail(L, box, CN_ECANCELLED);
  int rc = cn_connect_start(ctx->loop, &o, &f->waiter, &box->op);
  if (rc < 0) return fail(L, box, rc);
  return lcn_fiber_wait(L, f, -1, abort_for_fiber, box, wait_k, 0);
}

int lcn_open_connect(lua_State *L) {
  static const luaL_Reg methods[] = {{NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", l_gc}, {NULL, NULL}};
  lcn_new_class(L, LCN_C_CONNECT, methods, meta);
  static const luaL_Reg funcs[] = {{"connect", l_connect}, {NULL, NULL}};
  lcn_setfuncs(L, funcs);
  return 0;
}
