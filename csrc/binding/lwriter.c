/* lwriter.c: the writer class. write() never copies twice and never waits
 * below the high-water mark; above it the fiber waits until the kernel has
 * taken enough. */
#include "lbinding.h"

static lcn_half *check_writer(lua_State *L) {
  lcn_half *h = lcn_check(L, 1, LCN_C_WRITER);
  if (h->closed) luaL_error(L, "writer is closed");
  return h;
}

static cn_stream *stream_of(lua_State *L) { return lcn_conn_stream(L, check_writer(L)->conn); }

static int write_value(lua_State *L, cn_stream *s, int idx) {
  size_t n;
  const char *p = lua_tolstring(L, idx, &n);
  return cn_writer_write(s, p, n);
}

/* Strings, or arrays of strings, in any mix. */
static int write_arg(lua_State *L, cn_stream *s, int idx) {
  if (lua_type(L, idx) == LUA_TSTRING || lua_type(L, idx) == LUA_TNUMBER) return write_value(L, s, idx);
  if (!lua_istable(L, idx)) return luaL_typeerror(L, idx, "string or array of strings");
  lua_Integer len = (lua_Integer)lua_rawlen(L, idx);
  for (lua_Integer i = 1; i <= len; i++) {
    int t = lua_rawgeti(L, idx, i);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      return luaL_error(L, "bad argument #%d to 'write' (item %d is a %s, not a string)", idx - 1, (int)i,
                        lua_typename(L, t));
    int rc = write_value(L, s, -1);
    lua_pop(L, 1);
    if (rc < 0) return rc;
  }
  return 0;
}

static int drained_k(lua_State *L, int status, lua_KContext what) {
  (void)status;
  int st = lcn_fiber_status(L);
  if (st < 0) return lcn_fail_stream(L, st, what ? "flush to" : "write to", stream_of(L));
  lua_pushboolean(L, 1);
  return 1;
}

/* Waits until at most `allowed` bytes are pending. */
static int wait_drained(lua_State *L, cn_stream *s, size_t allowed, lua_Integer deadline, int is_flush) {
  lcn_fiber *f = lcn_fiber_current(L);
  int rc = cn_writer_wait(s, &f->waiter, allowed);
  if (rc < 0) return lcn_fail_stream(L, rc, is_flush ? "flush to" : "write to", s);
  return lcn_fiber_wait(L, f, deadline, NULL, NULL, drained_k, is_flush);
}

/* writer:write(...) -> true | nil, err, code. Returns at once unless pending
 * bytes pass the high-water mark. */
static int l_write(lua_State *L) {
  lcn_half *h = check_writer(L);
  cn_stream *s = lcn_conn_stream(L, h->conn);
  int top = lua_gettop(L);
  for (int i = 2; i <= top; i++) {
    int rc = write_arg(L, s, i);
    if (rc < 0) return lcn_fail_stream(L, rc, "write to", s);
  }
  if (cn_writer_pending(s) <= cn_writer_hwm(s)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_settop(L, 1);
  return wait_drained(L, s, cn_writer_hwm(s), lcn_deadline(L, 2, h->conn->write_timeout), 0);
}

/* writer:flush([timeout]) -> true once the kernel has every byte written so far. */
static int l_flush(lua_State *L) {
  lcn_half *h = check_writer(L);
  cn_stream *s = lcn_conn_stream(L, h->conn);
  int st = cn_writer_status(s);
  if (st < 0 && st != CN_ECLOSED) return lcn_fail_stream(L, st, "flush to", s);
  if (cn_writer_pending(s) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_Integer deadline = lcn_deadline(L, 2, h->conn->write_timeout);
  lua_settop(L, 1);
  return wait_drained(L, s, 0, deadline, 1);
}

static int l_pending(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)cn_writer_pending(stream_of(L)));
  return 1;
}

static int l_hwm(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)cn_writer_hwm(stream_of(L)));
  return 1;
}

/* writer:close(): flushes (bounded by close_timeout), then shuts down the
 * sending side; never waits. The fd closes once the reader has closed too. */
static int l_close(lua_State *L) {
  lcn_half *h = lcn_check(L, 1, LCN_C_WRITER);
  if (h->closed) return 0;
  h->closed = 1;
  if (h->conn->s) cn_writer_close(h->conn->s);
  return 0;
}

static int l_is_closed(lua_State *L) {
  lcn_half *h = lcn_check(L, 1, LCN_C_WRITER);
  lua_pushboolean(L, h->closed || !h->conn->s || cn_writer_is_closed(h->conn->s));
  return 1;
}

static int l_socket(lua_State *L) {
  lcn_check(L, 1, LCN_C_WRITER);
  lua_getiuservalue(L, 1, 1);
  return 1;
}

static int l_tostring(lua_State *L) {
  lcn_half *h = lcn_check(L, 1, LCN_C_WRITER);
  lua_pushfstring(L, "coronet.writer (%s): %p", h->closed ? "closed" : "open", (void *)h);
  return 1;
}

int lcn_open_writer(lua_State *L) {
  static const luaL_Reg methods[] = {{"write", l_write},   {"flush", l_flush},         {"pending", l_pending},
                                     {"hwm", l_hwm},       {"close", l_close},         {"is_closed", l_is_closed},
                                     {"socket", l_socket}, {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", l_close}, {"__close", l_close}, {"__tostring", l_tostring}, {NULL, NULL}};
  lcn_new_class(L, LCN_C_WRITER, methods, meta);
  return 0;
}
