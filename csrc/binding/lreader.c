/* lreader.c: the reader class. Every read first tries to complete from the
 * buffered bytes (no yield); otherwise the fiber waits for more and tries
 * again. A timeout or cancel never consumes bytes (LuaSocket's receive keeps
 * its own contract and hands over the partial bytes). Stack layout of every
 * read: 1 reader, 2 and 3 the read's arguments, 4 the deadline. */
#include <stdint.h>
#include <string.h>
#include "frame.h"
#include "lbinding.h"

#define DEADLINE_IDX 4

/* A read step: pushes its results and returns their count, returns 0 after
 * setting *want (the buffered size that would let it progress), or returns a
 * negative code to fail with. */
typedef int (*read_step)(lua_State *L, cn_stream *s, size_t *want);

static lcn_half *check_reader(lua_State *L) {
  lcn_half *h = lcn_check(L, 1, LCN_C_READER);
  if (h->closed) luaL_error(L, "reader is closed");
  return h;
}

static cn_stream *stream_of(lua_State *L) { return lcn_conn_stream(L, check_reader(L)->conn); }

/* The stream of the reader at 1, which start() already checked (the
 * continuation comes back here without checking again). */
static cn_stream *checked_stream(lua_State *L) { return ((lcn_half *)lua_touserdata(L, 1))->conn->s; }

/* The end-of-stream code to report once the buffer cannot satisfy a read. */
static int end_status(cn_stream *s) { return cn_reader_status(s); }

static int step_read(lua_State *L, cn_stream *s, size_t *want) {
  size_t n;
  const char *p = cn_reader_peek(s, &n);
  lua_Integer max = lua_isnoneornil(L, 2) ? (lua_Integer)cn_reader_capacity(s) : luaL_checkinteger(L, 2);
  luaL_argcheck(L, max >= 1, 2, "max must be at least 1");
  if (n > 0) {
    if ((lua_Integer)n > max) n = (size_t)max;
    lua_pushlstring(L, p, n);
    cn_reader_consume(s, n);
    return 1;
  }
  if (end_status(s)) return end_status(s);
  *want = 1;
  return 0;
}

/* The cap rule, one for lines, delimiters and contents: a frame's bytes,
 * without its terminator, may fill the cap; only passing it fails. The
 * terminator ("\n", "\r\n" or the delimiter) never counts, so the wait for
 * it grows the buffer past the cap by at most its length. The bytes past the
 * cap decide at once: unless they are the start of a terminator, the frame is
 * too long, whatever comes later. */
static int may_end_here(const char *p, size_t n, size_t at, const char *term, size_t tlen) {
  return n - at < tlen && memcmp(p + at, term, n - at) == 0;
}

/* With n > cap bytes and no complete frame: can a terminator still start at
 * or before the cap? Only a suffix of the buffer that is a proper prefix of
 * the terminator can grow into one. */
static int may_still_end(const char *p, size_t n, size_t cap, const char *term, size_t tlen) {
  size_t from = n - tlen + 1 > n ? 0 : n - tlen + 1; /* the suffixes shorter than the terminator */
  for (size_t at = from; at <= cap; at++)
    if (may_end_here(p, n, at, term, tlen)) return 1;
  return 0;
}

static int over_cap(const char *p, size_t n, size_t cap, const char *term, size_t tlen) {
  return n > cap && !may_still_end(p, n, cap, term, tlen) ? CN_ELINE_TOO_LONG : 0;
}

static int scan_line(cn_stream *s, const char *p, size_t n, size_t *len, size_t *used) {
  size_t cap = cn_reader_capacity(s);
  int rc = cn_frame_line(p, n, cap + 2, len, used);
  if (rc == 1 && *len > cap) return CN_ELINE_TOO_LONG;
  if (rc == 0) return over_cap(p, n, cap, "\r\n", 2);
  return rc;
}

/* read_until's cap rule, with `bound` (at most the reader's cap) in place of the cap. */
static int scan_until(const char *p, size_t n, const char *delim, size_t dlen, size_t bound, size_t *before,
                      size_t *used) {
  int rc = cn_frame_delim(p, n, delim, dlen, bound + dlen, before, used);
  if (rc == 0) return over_cap(p, n, bound, delim, dlen);
  return rc;
}

/* contents and receive("*a") fail only once the peer sent more than the cap:
 * with exactly the cap buffered, the wait for one byte more finds the EOF
 * that is already there, or the byte that passes the cap. */
static int all_needs_more(cn_stream *s, size_t n, size_t *want) {
  if (n > cn_reader_capacity(s)) return CN_ELINE_TOO_LONG;
  *want = n + 1;
  return 0;
}

static int step_line(lua_State *L, cn_stream *s, size_t *want) {
  size_t n, len, used;
  const char *p = cn_reader_peek(s, &n);
  int rc = scan_line(s, p, n, &len, &used);
  if (rc == 1) {
    lua_pushlstring(L, p, len);
    cn_reader_consume(s, used);
    return 1;
  }
  if (rc < 0) return rc;
  if (end_status(s)) return end_status(s);
  *want = n + 1;
  return 0;
}

/* The until options at idx (none, or a table looked up only when given):
 * max (0 when absent) and keep, packed as max * 2 + keep. A bad max raises
 * naming fn. */
static lua_Integer until_opts(lua_State *L, int idx, const char *fn) {
  if (!lua_istable(L, idx)) return 0;
  lua_Integer max = 0;
  if (lua_getfield(L, idx, "max") != LUA_TNIL) {
    int is_int;
    max = lua_tointegerx(L, -1, &is_int);
    if (lua_type(L, -1) != LUA_TNUMBER || !is_int || max < 1)
      luaL_error(L, "%s: option 'max' must be an integer >= 1", fn);
    if (max > LUA_MAXINTEGER / 2) max = LUA_MAXINTEGER / 2; /* room for keep; the cap bounds it anyway */
  }
  lua_getfield(L, idx, "keep");
  int keep = lua_toboolean(L, -1);
  lua_pop(L, 2);
  return max * 2 + keep;
}

/* The bound on the bytes before the delimiter: min(max, cap). */
static size_t until_bound(cn_stream *s, lua_Integer packed) {
  size_t cap = cn_reader_capacity(s);
  lua_Unsigned max = (lua_Unsigned)(packed >> 1);
  return max && max < cap ? (size_t)max : cap;
}

static int step_until(lua_State *L, cn_stream *s, size_t *want) {
  size_t n, dlen, before, used;
  const char *delim = lua_tolstring(L, 2, &dlen);
  lua_Integer opts = lua_tointeger(L, 3); /* start() packed them */
  const char *p = cn_reader_peek(s, &n);
  int rc = scan_until(p, n, delim, dlen, until_bound(s, opts), &before, &used);
  if (rc == 1) {
    lua_pushlstring(L, p, opts & 1 ? used : before);
    cn_reader_consume(s, used);
    return 1;
  }
  if (rc < 0) return rc;
  if (end_status(s)) return end_status(s);
  *want = n + 1;
  return 0;
}

static int exact(lua_State *L, cn_stream *s, size_t *want, int consume) {
  size_t n;
  lua_Integer need = luaL_checkinteger(L, 2);
  luaL_argcheck(L, need >= 0, 2, "byte count must be >= 0");
  const char *p = cn_reader_peek(s, &n);
  if (n >= (size_t)need) {
    lua_pushlstring(L, p, (size_t)need);
    if (consume) cn_reader_consume(s, (size_t)need);
    return 1;
  }
  if (end_status(s)) return end_status(s);
  *want = (size_t)need;
  return 0;
}

static int step_really_read(lua_State *L, cn_stream *s, size_t *want) { return exact(L, s, want, 1); }
static int step_peek(lua_State *L, cn_stream *s, size_t *want) { return exact(L, s, want, 0); }

static int step_contents(lua_State *L, cn_stream *s, size_t *want) {
  size_t n;
  const char *p = cn_reader_peek(s, &n);
  int st = end_status(s);
  if (st == UV_EOF) {
    lua_pushlstring(L, p, n);
    cn_reader_consume(s, n);
    return 1;
  }
  if (st) return st;
  return all_needs_more(s, n, want);
}

/* receive(n): LuaSocket truncates a fractional count (2.5 reads 2 bytes). */
static size_t receive_count(lua_State *L) {
  lua_Number x = lua_tonumber(L, 2);
  luaL_argcheck(L, x >= 0, 2, "byte count must be >= 0");
  luaL_argcheck(L, x < 0x1p53, 2, "byte count too large");
  return (size_t)x;
}

/* LuaSocket's receive: the pattern at 2, the prefix at 3. */
static int receive_pattern(lua_State *L) {
  luaL_optstring(L, 3, NULL); /* the prefix: a string (or number), or none */
  if (lua_type(L, 2) == LUA_TNUMBER) return 'n';
  const char *pat = luaL_optstring(L, 2, "*l");
  if (*pat == '*') pat++;
  if (*pat == 'l' || *pat == 'a') return *pat;
  return luaL_argerror(L, 2, "invalid receive pattern");
}

/* "*l": all CRs are dropped, as LuaSocket does. */
static void push_without_cr(lua_State *L, const char *p, size_t n) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < n; i++)
    if (p[i] != '\r') luaL_addchar(&b, p[i]);
  luaL_pushresult(&b);
}

static int push_received(lua_State *L, const char *p, size_t n, int strip_cr) {
  if (lua_isstring(L, 3)) lua_pushvalue(L, 3);
  if (strip_cr)
    push_without_cr(L, p, n);
  else
    lua_pushlstring(L, p, n);
  if (lua_isstring(L, 3)) lua_concat(L, 2);
  return 1;
}

static int step_receive(lua_State *L, cn_stream *s, size_t *want) {
  size_t n, len, used;
  const char *p = cn_reader_peek(s, &n);
  int pattern = receive_pattern(L), st = end_status(s);
  if (pattern == 'n') {
    size_t need = receive_count(L);
    if (n >= need) {
      push_received(L, p, need, 0);
      cn_reader_consume(s, need);
      return 1;
    }
    if (st) return st;
    *want = need;
    return 0;
  }
  if (pattern == 'a') {
    if (st == UV_EOF) {
      push_received(L, p, n, 0);
      cn_reader_consume(s, n);
      return 1;
    }
    if (st) return st;
    return all_needs_more(s, n, want);
  }
  int rc = scan_line(s, p, n, &len, &used);
  if (rc == 1) {
    push_received(L, p, len, 1);
    cn_reader_consume(s, used);
    return 1;
  }
  if (rc < 0) return rc;
  if (st) return st;
  *want = n + 1;
  return 0;
}

/* Async-named reads fail with nil, err, code and keep every byte. */
static int fail_keep(lua_State *L, cn_stream *s, int err) { return lcn_fail_stream(L, err, "read from", s); }

/* receive hands over the partial bytes on timeout and close, as LuaSocket
 * does; "busy" (the bytes are another fiber's) and "line_too_long" hand over
 * nothing and consume nothing. */
static int fail_receive(lua_State *L, cn_stream *s, int err) {
  size_t n;
  const char *p = cn_reader_peek(s, &n);
  if (err == CN_ELINE_TOO_LONG || err == CN_EBUSY) n = 0;
  int pattern = receive_pattern(L);
  lua_pushnil(L);
  lua_pushstring(L, err == UV_EOF || err == CN_ECLOSED ? "closed" : cn_err_name(err));
  push_received(L, p, n, pattern == 'l');
  if (n) cn_reader_consume(s, n);
  return 3;
}

typedef struct {
  read_step step;
  int (*fail)(lua_State *L, cn_stream *s, int err);
  const char *name; /* the method, for messages */
} read_op;

enum { OP_READ, OP_LINE, OP_UNTIL, OP_REALLY, OP_PEEK, OP_CONTENTS, OP_RECEIVE };

static const read_op ops[] = {
    {step_read, fail_keep, "read"},         {step_line, fail_keep, "read_line"},
    {step_until, fail_keep, "read_until"},  {step_really_read, fail_keep, "really_read"},
    {step_peek, fail_keep, "peek"},         {step_contents, fail_keep, "contents"},
    {step_receive, fail_receive, "receive"},
};

static int drive(lua_State *L, int op);

static int drive_k(lua_State *L, int status, lua_KContext op) {
  (void)status;
  int st = lcn_fiber_status(L);
  if (st == CN_ETIMEOUT || st == CN_ECANCELLED) return ops[op].fail(L, checked_stream(L), st);
  return drive(L, (int)op); /* more bytes, or the end: the step decides */
}

static int drive(lua_State *L, int op) {
  cn_stream *s = checked_stream(L);
  size_t want = 0;
  int n = ops[op].step(L, s, &want);
  if (n > 0) return n;
  if (n < 0) return ops[op].fail(L, s, n);
  lcn_fiber *f = lcn_fiber_current(L);
  int rc = cn_reader_wait(s, &f->waiter, want);
  if (rc < 0) return ops[op].fail(L, s, rc);
  return lcn_fiber_wait(L, f, lua_tointeger(L, DEADLINE_IDX), NULL, NULL, drive_k, op);
}

/* Pushes the timeout given at opts_idx (0: none given, pushing nil): the
 * value itself, or its `timeout` field if it is a table. A bad one raises
 * here, naming the argument or the option (the deadline is computed later
 * from a stack slot the user never passed). */
static void push_timeout(lua_State *L, int opts_idx, const char *fn) {
  if (!opts_idx) {
    lua_pushnil(L);
  } else if (lua_istable(L, opts_idx)) {
    lua_getfield(L, opts_idx, "timeout");
    lcn_check_opt_seconds(L, -1, fn, "timeout");
  } else {
    lcn_opt_seconds(L, opts_idx, 0); /* raises on a bad one, naming its position */
    lua_pushvalue(L, opts_idx);
  }
}

/* Leaves the stack as reader, arg, arg, deadline and reads. The timeout is
 * a number (or false) or {timeout=} at opts_idx (0: none given), else the
 * socket's read timeout. */
static int start(lua_State *L, int op, int opts_idx) {
  lcn_half *h = check_reader(L);
  cn_stream *s = lcn_conn_stream(L, h->conn);
  lua_settop(L, 3);
  /* read_until's options, read once (a bad one raises before anything else). */
  lua_Integer until = op == OP_UNTIL ? until_opts(L, 3, "read_until") : 0;
  /* One reader at a time: while another fiber waits, every read (even one
   * the buffer could serve) fails with "busy" and touches no byte. */
  if (cn_reader_is_busy(s)) return ops[op].fail(L, s, CN_EBUSY);
  push_timeout(L, opts_idx, ops[op].name);
  lua_pushinteger(L, lcn_deadline(L, DEADLINE_IDX, h->conn->read_timeout));
  lua_replace(L, DEADLINE_IDX);
  if (op == OP_UNTIL) {
    lua_pushinteger(L, until);
    lua_replace(L, 3);
  }
  return drive(L, op);
}

/* reader:read([max][, opts]) -> at least one byte, at most max (default: the buffer's cap). */
static int l_read(lua_State *L) {
  if (lua_istable(L, 2) && lua_isnone(L, 3)) {
    lua_pushnil(L);
    lua_insert(L, 2);
  }
  return start(L, OP_READ, 3);
}
/* reader:read_line([opts]) -> the line without "\n" and one "\r" before it. */
static int l_read_line(lua_State *L) { return start(L, OP_LINE, 2); }
/* The delimiter at 2: a non-empty string. */
static void check_delim(lua_State *L) {
  luaL_checkstring(L, 2);
  luaL_argcheck(L, lua_rawlen(L, 2) > 0, 2, "empty delimiter");
}

/* reader:read_until(delim[, {keep=bool, max=n, timeout=}]) -> the bytes before delim (with it if keep). */
static int l_read_until(lua_State *L) {
  check_delim(L);
  return start(L, OP_UNTIL, 3);
}
/* reader:really_read(n[, opts]) -> exactly n bytes. */
static int l_really_read(lua_State *L) { return start(L, OP_REALLY, 3); }
/* reader:peek(n[, opts]) -> the next n bytes, left buffered. */
static int l_peek(lua_State *L) { return start(L, OP_PEEK, 3); }
/* reader:contents([opts]) -> everything until EOF (bounded by the cap). */
static int l_contents(lua_State *L) { return start(L, OP_CONTENTS, 2); }
/* reader:receive([pattern][, prefix]): LuaSocket's contract. */
static int l_receive(lua_State *L) {
  receive_pattern(L);
  return start(L, OP_RECEIVE, 0);
}

/* ---- Non-waiting reads: they take what is buffered now, never wait nor
 * yield (so they work anywhere, a table.sort comparator included), may run
 * while another fiber waits on the reader (they only consume), and see an
 * empty buffer once the reader, its socket or the stream is closed. */

/* The stream for a non-waiting read, or NULL when it is closed. */
static cn_stream *readable_stream(lua_State *L) {
  lcn_half *h = lcn_check(L, 1, LCN_C_READER);
  cn_stream *s = h->conn->s;
  return h->closed || !s || cn_reader_is_closed(s) ? NULL : s;
}

static const char *buffered_bytes(cn_stream *s, size_t *n) {
  *n = 0;
  return s ? cn_reader_peek(s, n) : NULL;
}

/* A byte count or offset: an integer >= 0; a string or a fraction raises. */
static size_t check_size(lua_State *L, int idx) {
  int is_int;
  lua_Integer v = lua_tointegerx(L, idx, &is_int);
  if (lua_type(L, idx) != LUA_TNUMBER) luaL_typeerror(L, idx, "integer");
  if (!is_int) luaL_argerror(L, idx, "number has no integer representation");
  luaL_argcheck(L, v >= 0, idx, "must be >= 0");
  return (size_t)v;
}

static int push_consumed(lua_State *L, cn_stream *s, const char *p, size_t n) {
  lua_pushlstring(L, p, n);
  if (n) cn_reader_consume(s, n);
  return 1;
}

/* reader:try_read_line() -> a whole buffered line (read_line's cap rule), or
 * nil. A full buffer without a line is "line_too_long": only a waiting read
 * grows the buffer past its cap, so that line could never complete. */
static int l_try_read_line(lua_State *L) {
  cn_stream *s = readable_stream(L);
  size_t n, len, used;
  const char *p = buffered_bytes(s, &n);
  int rc = s ? scan_line(s, p, n, &len, &used) : 0;
  if (rc == 0 && s && n >= cn_reader_capacity(s)) rc = CN_ELINE_TOO_LONG;
  if (rc < 0) return fail_keep(L, s, rc);
  if (rc == 0) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushlstring(L, p, len);
  cn_reader_consume(s, used);
  return 1;
}

/* The sum of the sizes at 2..top (at least one), saturated at SIZE_MAX. */
static size_t total_size(lua_State *L, int top) {
  size_t total = check_size(L, 2);
  for (int i = 3; i <= top; i++) {
    size_t size = check_size(L, i);
    total = size > SIZE_MAX - total ? SIZE_MAX : total + size;
  }
  return total;
}

/* reader:try_really_read(n, ...) -> one string per size, the consecutive
 * buffered fields of those sizes, all consumed; or nil (nothing consumed)
 * while fewer bytes than their sum are buffered. */
static int l_try_really_read(lua_State *L) {
  cn_stream *s = readable_stream(L);
  int top = lua_gettop(L), fields = top - 1;
  size_t need = total_size(L, top), n;
  const char *p = buffered_bytes(s, &n);
  if (n < need) {
    lua_pushnil(L);
    return 1;
  }
  if (fields == 1) return push_consumed(L, s, p, need);
  if (fields > LUA_MINSTACK) luaL_checkstack(L, fields, "too many sizes");
  size_t at = 0;
  for (int i = 2; i <= top; i++) {
    size_t size = (size_t)lua_tointeger(L, i);
    lua_pushlstring(L, p + at, size);
    at += size;
  }
  if (need) cn_reader_consume(s, need);
  return fields;
}

/* reader:try_read_until(delim[, {keep=, max=}]) -> the buffered bytes before
 * delim (with it if keep), consumed with it; or nil. read_until's cap rule
 * with min(max, cap); and, as try_read_line, a full buffer without the
 * delimiter is "line_too_long", since only a waiting read grows it. */
static int l_try_read_until(lua_State *L) {
  cn_stream *s = readable_stream(L);
  size_t dlen, n, before, used;
  check_delim(L);
  const char *delim = lua_tolstring(L, 2, &dlen);
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  lua_Integer opts = until_opts(L, 3, "try_read_until");
  if (!s) {
    lua_pushnil(L);
    return 1;
  }
  const char *p = buffered_bytes(s, &n);
  int rc = scan_until(p, n, delim, dlen, until_bound(s, opts), &before, &used);
  if (rc == 0 && n >= cn_reader_capacity(s)) rc = CN_ELINE_TOO_LONG;
  if (rc < 0) return fail_keep(L, s, rc);
  if (rc == 0) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushlstring(L, p, opts & 1 ? used : before);
  cn_reader_consume(s, used);
  return 1;
}

/* reader:try_read([max]) -> up to max buffered bytes (default: all), "" when none. */
static int l_try_read(lua_State *L) {
  cn_stream *s = readable_stream(L);
  size_t max = lua_isnoneornil(L, 2) ? SIZE_MAX : check_size(L, 2), n;
  const char *p = buffered_bytes(s, &n);
  return push_consumed(L, s, p, n < max ? n : max);
}

/* reader:peek_at(offset, n) -> up to n buffered bytes from offset, left buffered. */
static int l_peek_at(lua_State *L) {
  cn_stream *s = readable_stream(L);
  size_t offset = check_size(L, 2), want = check_size(L, 3), n;
  const char *p = buffered_bytes(s, &n);
  if (offset >= n) {
    lua_pushliteral(L, "");
    return 1;
  }
  n -= offset;
  lua_pushlstring(L, p + offset, n < want ? n : want);
  return 1;
}

/* reader:discard(n) -> how many bytes were dropped: min(n, buffered). */
static int l_discard(lua_State *L) {
  cn_stream *s = readable_stream(L);
  size_t drop = check_size(L, 2), n;
  buffered_bytes(s, &n);
  if (drop > n) drop = n;
  if (drop) cn_reader_consume(s, drop);
  lua_pushinteger(L, (lua_Integer)drop);
  return 1;
}

/* The continuation of wait_activity: the reader is still at 1. */
static int activity_k(lua_State *L, int status, lua_KContext unused) {
  (void)status;
  (void)unused;
  int st = lcn_fiber_status(L);
  if (st < 0) return fail_keep(L, ((lcn_half *)lua_touserdata(L, 1))->conn->s, st);
  lua_pushboolean(L, 1);
  return 1;
}

/* reader:wait_activity([timeout]) -> true at the next arrival of bytes; the
 * reader's end, its close, a timeout (none by default) or a cancel fail. It
 * watches (cn_reader_watch): any number of fibers may wait, beside a read. */
static int l_wait_activity(lua_State *L) {
  lcn_half *h = lcn_check(L, 1, LCN_C_READER);
  cn_stream *s = h->conn->s;
  lua_settop(L, 2);
  lua_Integer deadline = lcn_deadline(L, 2, -1);
  int ended = h->closed || !s ? CN_ECLOSED : cn_reader_status(s);
  if (ended) return fail_keep(L, s, ended);
  lcn_fiber *f = lcn_fiber_current(L);
  cn_reader_watch(s, &f->waiter);
  return lcn_fiber_wait(L, f, deadline, NULL, NULL, activity_k, 0);
}

/* ---- transfer_to. Stack: 1 reader, 2 writer, 3 close_writer (boolean),
 * 4 the count moved, 5 the pump (a cn_transfer box). The core's pump moves
 * the bytes with no Lua per chunk; the fiber waits once, for its end, with
 * no deadline. Cancelling the fiber's wait stops the pump (its done waiter's
 * cancel hook); the box's __gc stops it too, for a state closing under it. */

/* nil, err, code, moved. A write side failure names the writer's peer: the
 * writer goes to 1 for lcn_fail_stream, the reader stays anchored at 5. */
static int transfer_fail_on(lua_State *L, cn_stream *from, cn_stream *to, int err, int writer_side) {
  lua_settop(L, 4);
  if (writer_side && from != to) {
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_replace(L, 1);
  }
  lcn_fail_stream(L, err, writer_side ? "transfer to" : "transfer from", writer_side ? to : from);
  lua_pushvalue(L, 4);
  return 4;
}

/* The side that failed: the writer once it has an error or is closing. */
static int transfer_fail(lua_State *L, cn_stream *from, cn_stream *to, int err) {
  return transfer_fail_on(L, from, to, err, cn_writer_status(to) || cn_stream_is_closing(to));
}

/* The pump's result (0 at EOF, an error, or the fiber's cancel) as n or
 * nil, err, code, n. */
static int transfer_end(lua_State *L, int st) {
  lcn_half *rh = lua_touserdata(L, 1), *wh = lua_touserdata(L, 2);
  const cn_transfer *t = lua_touserdata(L, 5);
  int writer_failed = cn_transfer_writer_failed(t);
  lua_pushinteger(L, (lua_Integer)cn_transfer_moved(t));
  lua_replace(L, 4);
  if (st == 0) {
    if (lua_toboolean(L, 3)) wh->closed = 1; /* the pump closed it, as writer:close() */
    lua_pushvalue(L, 4);
    return 1;
  }
  /* A cancel stopped the pump: the side is read now. */
  if (st == CN_ECANCELLED || st == CN_ETIMEOUT) return transfer_fail(L, rh->conn->s, wh->conn->s, st);
  return transfer_fail_on(L, rh->conn->s, wh->conn->s, st, writer_failed);
}

static int transfer_k(lua_State *L, int status, lua_KContext unused) {
  (void)status;
  (void)unused;
  return transfer_end(L, lcn_fiber_status(L));
}

static int transfer_box_gc(lua_State *L) {
  cn_transfer_stop(lua_touserdata(L, 1));
  return 0;
}

/* A zeroed pump on the stack at 5, stopped by its __gc if still running. */
static cn_transfer *push_transfer_box(lua_State *L) {
  cn_transfer *t = lua_newuserdatauv(L, sizeof *t, 0);
  memset(t, 0, sizeof *t);
  if (luaL_newmetatable(L, "coronet.transfer")) {
    lua_pushcfunction(L, transfer_box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return t;
}

/* opts.close_writer: a boolean, true when absent. */
static int close_writer_opt(lua_State *L) {
  if (lua_isnoneornil(L, 3)) return 1;
  luaL_checktype(L, 3, LUA_TTABLE);
  int t = lua_getfield(L, 3, "close_writer");
  luaL_argcheck(L, t == LUA_TNIL || t == LUA_TBOOLEAN, 3, "option 'close_writer' must be a boolean");
  int close = t == LUA_TNIL || lua_toboolean(L, -1);
  lua_pop(L, 1);
  return close;
}

/* reader:transfer_to(writer[, {close_writer = true}]) -> n at EOF, or nil, err, code, n. */
static int l_transfer_to(lua_State *L) {
  lcn_half *rh = check_reader(L);
  lcn_half *wh = lcn_check(L, 2, LCN_C_WRITER);
  luaL_argcheck(L, !wh->closed, 2, "writer is closed");
  cn_stream *from = lcn_conn_stream(L, rh->conn), *to = lcn_conn_stream(L, wh->conn);
  int close = close_writer_opt(L);
  lcn_fiber *f = lcn_fiber_current(L); /* it may wait: only in a fiber, checked before the pump starts */
  lua_settop(L, 2);
  lua_pushboolean(L, close);
  lua_pushinteger(L, 0);
  /* Another fiber waits to read, or to write above the mark: "busy". */
  if (cn_reader_is_busy(from)) return transfer_fail_on(L, from, to, CN_EBUSY, 0);
  if (cn_writer_room_awaited(to)) return transfer_fail_on(L, from, to, CN_EBUSY, 1);
  if (rh->closed) return transfer_fail(L, from, to, CN_ECLOSED);
  cn_transfer *t = push_transfer_box(L);
  int rc = cn_transfer_start(t, from, to, close, &f->waiter);
  if (rc != CN_TRANSFER_RUNNING) return transfer_end(L, rc); /* it ended at once: no yield */
  return lcn_fiber_wait(L, f, -1, NULL, NULL, transfer_k, 0);
}

static int l_buffered(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)cn_reader_buffered(stream_of(L)));
  return 1;
}

static int l_capacity(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)cn_reader_capacity(stream_of(L)));
  return 1;
}

static int l_at_eof(lua_State *L) {
  cn_stream *s = stream_of(L);
  lua_pushboolean(L, cn_reader_buffered(s) == 0 && cn_reader_status(s) != 0);
  return 1;
}

/* reader:close(): the reading half closes; the fd closes once the writer has too. */
static int l_close(lua_State *L) {
  lcn_half *h = lcn_check(L, 1, LCN_C_READER);
  if (h->closed) return 0;
  h->closed = 1;
  if (h->conn->s) cn_reader_close(h->conn->s);
  return 0;
}

static int is_closed(const lcn_half *h) { return h->closed || !h->conn->s || cn_reader_is_closed(h->conn->s); }

static int l_is_closed(lua_State *L) {
  lua_pushboolean(L, is_closed(lcn_check(L, 1, LCN_C_READER)));
  return 1;
}

static int l_socket(lua_State *L) {
  lcn_check(L, 1, LCN_C_READER);
  lua_getiuservalue(L, 1, 1);
  return 1;
}

static int l_tostring(lua_State *L) {
  lcn_half *h = lcn_check(L, 1, LCN_C_READER);
  lua_pushfstring(L, "coronet.reader (%s): %p", is_closed(h) ? "closed" : "open", (void *)h);
  return 1;
}

int lcn_open_reader(lua_State *L) {
  static const luaL_Reg methods[] = {{"read", l_read},       {"read_line", l_read_line}, {"read_until", l_read_until},
                                     {"really_read", l_really_read}, {"peek", l_peek},   {"contents", l_contents},
                                     {"receive", l_receive}, {"buffered", l_buffered},   {"capacity", l_capacity},
                                     {"at_eof", l_at_eof},   {"close", l_close},         {"is_closed", l_is_closed},
                                     {"socket", l_socket},   {"try_read_line", l_try_read_line},
                                     {"try_really_read", l_try_really_read}, {"try_read", l_try_read},
                                     {"try_read_until", l_try_read_until},
                                     {"peek_at", l_peek_at}, {"discard", l_discard},
                                     {"wait_activity", l_wait_activity}, {"transfer_to", l_transfer_to},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", l_close}, {"__close", l_close}, {"__tostring", l_tostring}, {NULL, NULL}};
  lcn_new_class(L, LCN_C_READER, methods, meta);
  return 0;
}
