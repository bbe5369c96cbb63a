/* lwriter.c: the writer class. write() never copies twice and never waits
 * at or below the high-water mark; above it the fiber waits until the kernel
 * has taken enough, and only then takes its bytes (a failed write takes
 * nothing). */
#include <locale.h>
#include <stdio.h>
#include <string.h>
#include "lbinding.h"

static lcn_half *check_writer(lua_State *L) {
  lcn_half *h = lcn_check(L, 1, LCN_C_WRITER);
  if (h->closed) luaL_error(L, "writer is closed");
  return h;
}

static cn_stream *stream_of(lua_State *L) { return lcn_conn_stream(L, check_writer(L)->conn); }

/* The stream of the writer at 1, open or closed: a continuation must report
 * a close that happened during its wait, not raise about it. */
static cn_stream *waited_stream(lua_State *L) { return ((lcn_half *)lua_touserdata(L, 1))->conn->s; }

/* Raises unless the argument at idx is a string, a number, or an array of
 * them (a plain table: one with a metatable, such as a value with
 * __tostring, would be written as nothing, so it is refused). */
static void check_table_arg(lua_State *L, int idx, int t) {
  if (t != LUA_TTABLE) luaL_typeerror(L, idx, "string or array of strings");
  luaL_argcheck(L, !lua_getmetatable(L, idx), idx, "a table with a metatable: convert it with tostring first");
  lua_Integer len = (lua_Integer)lua_rawlen(L, idx);
  luaL_argcheck(L, len > 0, idx, "an empty table (expected an array of strings)");
  for (lua_Integer i = 1; i <= len; i++) {
    int it = lua_rawgeti(L, idx, i);
    lua_pop(L, 1);
    if (it != LUA_TSTRING && it != LUA_TNUMBER)
      luaL_error(L, "bad argument #%d to 'write' (item %d is a %s, not a string)", idx - 1, (int)i,
                 lua_typename(L, it));
  }
}

/* The decimal digits of v, as tostring gives them, written backwards from
 * end; returns where they start. */
static char *format_integer(lua_Integer v, char *end) {
  lua_Unsigned u = v < 0 ? 0u - (lua_Unsigned)v : (lua_Unsigned)v; /* mininteger too */
  char *p = end;
  do {
    *--p = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) *--p = '-';
  return p;
}

/* A float as tostring writes it (lobject.c's tostringbuff): Lua's number
 * format, and ".0" after what would read as an integer. Returns the length. */
static size_t format_float(lua_Number v, char *buf, size_t size) {
  int len = lua_number2str(buf, size - 2, v);
  if (len < 0 || (size_t)len >= size - 2) len = (int)size - 3; /* cannot happen with Lua's formats */
  if (buf[strspn(buf, "-0123456789")] == '\0') {
    buf[len++] = lua_getlocaledecpoint();
    buf[len++] = '0';
  }
  return (size_t)len;
}

/* Appends the string or number at idx (of type t). A number is formatted
 * here rather than by lua_tolstring, which would make a Lua string of it:
 * an allocation per number written. */
static int write_value(lua_State *L, cn_stream *s, int idx, int t) {
  if (t == LUA_TNUMBER) {
    char buf[64]; /* 19 digits and a sign; "%.14g" needs at most 23 */
    if (lua_isinteger(L, idx)) {
      char *end = buf + sizeof buf, *p = format_integer(lua_tointeger(L, idx), end);
      return cn_writer_write(s, p, (size_t)(end - p));
    }
    return cn_writer_write(s, buf, format_float(lua_tonumber(L, idx), buf, sizeof buf));
  }
  size_t n;
  const char *p = lua_tolstring(L, idx, &n);
  return cn_writer_write(s, p, n);
}

static int append_table(lua_State *L, cn_stream *s, int idx) {
  lua_Integer len = (lua_Integer)lua_rawlen(L, idx);
  for (lua_Integer k = 1; k <= len; k++) {
    int t = lua_rawgeti(L, idx, k);
    int rc = write_value(L, s, -1, t);
    lua_pop(L, 1);
    if (rc < 0) return rc;
  }
  return 0;
}

/* Appends the arguments from 2 on, already checked. */
static int append_args(lua_State *L, cn_stream *s) {
  int top = lua_gettop(L);
  for (int i = 2; i <= top; i++) {
    int t = lua_type(L, i);
    int rc = t == LUA_TTABLE ? append_table(L, s, i) : write_value(L, s, i, t);
    if (rc < 0) return rc;
  }
  return 0;
}

static int try_write(lua_State *L, cn_stream *s, lua_Integer deadline);

static int write_k(lua_State *L, int status, lua_KContext deadline) {
  (void)status;
  int st = lcn_fiber_status(L);
  if (st < 0) return lcn_fail_stream(L, st, "write to", waited_stream(L));
  return try_write(L, waited_stream(L), (lua_Integer)deadline);
}

/* Accepts the arguments once the pending bytes are at or below the mark.
 * The wait comes first, so a write that fails (busy, timeout, cancelled,
 * closed) has taken none of its bytes and may be retried as it is. */
static int try_write(lua_State *L, cn_stream *s, lua_Integer deadline) {
  if (cn_writer_pending(s) > cn_writer_hwm(s) && cn_writer_status(s) == 0) {
    lcn_fiber *f = lcn_fiber_current(L);
    int rc = cn_writer_wait(s, &f->waiter, cn_writer_hwm(s));
    if (rc < 0) return lcn_fail_stream(L, rc, "write to", s);
    return lcn_fiber_wait(L, f, deadline, NULL, NULL, write_k, (lua_KContext)deadline);
  }
  int rc = append_args(L, s);
  if (rc < 0) return lcn_fail_stream(L, rc, "write to", s);
  lua_pushboolean(L, 1);
  return 1;
}

/* writer:write(...) -> true | nil, err, code. Returns at once while the
 * pending bytes are at or below the high-water mark; above it, waits until
 * they are, then accepts the bytes. */
static int l_write(lua_State *L) {
  lcn_half *h = check_writer(L);
  cn_stream *s = lcn_conn_stream(L, h->conn);
  int top = lua_gettop(L);
  for (int i = 2; i <= top; i++) {
    int t = lua_type(L, i);
    if (t != LUA_TSTRING && t != LUA_TNUMBER) check_table_arg(L, i, t);
  }
  /* Another fiber's write waits for room: ours would pass its bytes. */
  if (cn_writer_room_awaited(s)) return lcn_fail_stream(L, CN_EBUSY, "write to", s);
  lua_Integer deadline = -1;
  if (cn_writer_pending(s) > cn_writer_hwm(s)) deadline = lcn_deadline(L, top + 1, h->conn->write_timeout);
  return try_write(L, s, deadline);
}

static int flush_k(lua_State *L, int status, lua_KContext kctx) {
  (void)status;
  (void)kctx;
  int st = lcn_fiber_status(L);
  if (st < 0) return lcn_fail_stream(L, st, "flush to", waited_stream(L));
  lua_pushboolean(L, 1);
  return 1;
}

/* writer:flush([timeout]) -> true once the kernel has every byte written so
 * far. On a closed writer it waits for the close's own final flush, and
 * fails with the close's status once bytes were dropped (an abort, the close
 * timeout): "closed" alone only means that nothing more may be written. */
static int l_flush(lua_State *L) {
  lcn_half *h = lcn_check(L, 1, LCN_C_WRITER);
  cn_stream *s = lcn_conn_stream(L, h->conn);
  lua_Integer deadline = lcn_deadline(L, 2, h->conn->write_timeout); /* a bad timeout raises even with nothing to flush */
  int st = cn_writer_status(s);
  if (st < 0 && (st != CN_ECLOSED || cn_writer_dropped(s))) return lcn_fail_stream(L, st, "flush to", s);
  if (cn_writer_pending(s) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_settop(L, 1);
  lcn_fiber *f = lcn_fiber_current(L);
  int rc = cn_writer_wait(s, &f->waiter, 0);
  if (rc < 0) return lcn_fail_stream(L, rc, "flush to", s);
  return lcn_fiber_wait(L, f, deadline, NULL, NULL, flush_k, 0);
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

/* Closed through this object, by the socket, or by an abort. */
static int is_closed(const lcn_half *h) {
  cn_stream *s = h->conn->s;
  return h->closed || !s || cn_writer_is_closed(s) || cn_stream_is_closing(s);
}

static int l_is_closed(lua_State *L) {
  lua_pushboolean(L, is_closed(lcn_check(L, 1, LCN_C_WRITER)));
  return 1;
}

static int l_socket(lua_State *L) {
  lcn_check(L, 1, LCN_C_WRITER);
  lua_getiuservalue(L, 1, 1);
  return 1;
}

static int l_tostring(lua_State *L) {
  lcn_half *h = lcn_check(L, 1, LCN_C_WRITER);
  lua_pushfstring(L, "coronet.writer (%s): %p", is_closed(h) ? "closed" : "open", (void *)h);
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
