/* lerror.c: turns a negative core code and its context into coronet's error
 * value: a table with code, kind, message, errno and address, whose
 * tostring is the message and which concatenates with strings. */
#include <string.h>
#include "lbinding.h"

/* The message and the address text are made when first read (most errors
 * on a busy server are EOFs nobody prints): until then the table keeps the
 * operation at [1], the code at [2], the address value at [3] and a
 * detail for the message's end (OpenSSL's reason) at [4]. */
enum { ERR_WHAT = 1, ERR_CODE = 2, ERR_WHERE = 3, ERR_DETAIL = 4 };

/* Pops the address value (or nil) on top; leaves the error value there. */
static void push_error_with_address(lua_State *L, int err, const char *what) {
  lua_createtable(L, 3, 4);
  lua_insert(L, -2);
  lua_rawseti(L, -2, ERR_WHERE);
  lua_pushstring(L, cn_err_name(err));
  lua_setfield(L, -2, "code");
  const char *kind = cn_err_kind(err);
  if (kind) {
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
  }
  if (cn_err_errno(err)) {
    lua_pushinteger(L, cn_err_errno(err));
    lua_setfield(L, -2, "errno");
  }
  if (what) {
    lua_pushstring(L, what);
    lua_rawseti(L, -2, ERR_WHAT);
  }
  lua_pushinteger(L, err);
  lua_rawseti(L, -2, ERR_CODE);
  luaL_setmetatable(L, LCN_ERROR);
}

void lcn_push_error(lua_State *L, int err, const char *what, const cn_addr *addr) {
  if (addr)
    lcn_push_address(L, addr);
  else
    lua_pushnil(L);
  push_error_with_address(L, err, what);
}

int lcn_fail(lua_State *L, int err, const char *what, const cn_addr *addr) {
  lua_pushnil(L);
  lcn_push_error(L, err, what, addr);
  lua_pushstring(L, cn_err_name(err));
  return 3;
}

void lcn_error_add_detail(lua_State *L, int idx, const char *detail) {
  if (!detail || !detail[0]) return;
  idx = lua_absindex(L, idx);
  lua_pushstring(L, detail);
  lua_rawseti(L, idx, ERR_DETAIL);
}

/* A TLS failure of s's engine: its reason (OpenSSL's), else NULL. */
static const char *tls_detail(int err, cn_stream *s) {
  const char *kind = cn_err_kind(err);
  cn_tls_conn *tc = s && kind && strcmp(kind, "tls") == 0 ? cn_stream_tls(s) : NULL;
  return tc ? cn_tls_conn_message(tc) : NULL;
}

/* Names the peer: the address remembered for the object at index 1 (a
 * socket, reader or writer), else what the kernel still says. */
int lcn_fail_stream(lua_State *L, int err, const char *what, cn_stream *s) {
  cn_addr peer;
  lua_pushnil(L);
  if (!lcn_conn_push_peer(L, 1)) {
    if (s && cn_stream_peername(s, &peer) == 0)
      lcn_push_address(L, &peer);
    else
      lua_pushnil(L);
  }
  push_error_with_address(L, err, what);
  lcn_error_add_detail(L, -1, tls_detail(err, s));
  lua_pushstring(L, cn_err_name(err));
  return 3;
}

/* __index: makes message and address on first use. */
static int l_index(lua_State *L) {
  const char *key = lua_tostring(L, 2);
  if (!key || (strcmp(key, "message") != 0 && strcmp(key, "address") != 0)) return 0;
  lua_settop(L, 2);
  if (lua_rawgeti(L, 1, ERR_CODE) != LUA_TNUMBER) return 0; /* made whole by core.error */
  int err = (int)lua_tointeger(L, 3);
  const char *what = lua_rawgeti(L, 1, ERR_WHAT) == LUA_TSTRING ? lua_tostring(L, 4) : NULL;
  const char *where = NULL;
  if (lua_rawgeti(L, 1, ERR_WHERE) != LUA_TNIL) {
    where = luaL_tolstring(L, 5, NULL);
    lua_pushvalue(L, -1);
    lua_setfield(L, 1, "address");
  }
  if (what && where)
    lua_pushfstring(L, "%s %s: %s (%s)", what, where, cn_strerror(err), cn_err_name(err));
  else if (what)
    lua_pushfstring(L, "%s: %s (%s)", what, cn_strerror(err), cn_err_name(err));
  else
    lua_pushfstring(L, "%s (%s)", cn_strerror(err), cn_err_name(err));
  if (lua_rawgeti(L, 1, ERR_DETAIL) == LUA_TSTRING) {
    lua_pushfstring(L, "%s: %s", lua_tostring(L, -2), lua_tostring(L, -1));
    lua_replace(L, -3);
  }
  lua_pop(L, 1);
  lua_setfield(L, 1, "message");
  lua_pushvalue(L, 2);
  lua_rawget(L, 1);
  return 1;
}

static int l_tostring(lua_State *L) {
  lua_getfield(L, 1, "message");
  return 1;
}

static int l_concat(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  luaL_tolstring(L, 2, NULL);
  lua_concat(L, 2);
  return 1;
}

/* core.error(code_string, message[, address]) -> an error value for Lua-made failures. */
static int l_new_error(lua_State *L) {
  const char *code = luaL_checkstring(L, 1);
  const char *message = luaL_checkstring(L, 2);
  lua_createtable(L, 0, 4);
  lua_pushstring(L, code);
  lua_setfield(L, -2, "code");
  lua_pushstring(L, message);
  lua_setfield(L, -2, "message");
  if (!lua_isnoneornil(L, 3)) {
    lua_pushvalue(L, 3);
    lua_setfield(L, -2, "address");
  }
  luaL_setmetatable(L, LCN_ERROR);
  return 1;
}

/* core.error_of(code_int) -> the error value of a core code, for specs and tools. */
static int l_error_of(lua_State *L) {
  lcn_push_error(L, (int)luaL_checkinteger(L, 1), NULL, NULL);
  return 1;
}

int lcn_open_error(lua_State *L) {
  static const luaL_Reg meta[] = {
      {"__tostring", l_tostring}, {"__concat", l_concat}, {"__index", l_index}, {NULL, NULL}};
  luaL_newmetatable(L, LCN_ERROR);
  luaL_setfuncs(L, meta, 0);
  lua_pushstring(L, LCN_ERROR);
  lua_setfield(L, -2, "__name");
  lua_setfield(L, -2, "error_metatable");
  static const luaL_Reg funcs[] = {{"error", l_new_error}, {"error_of", l_error_of}, {NULL, NULL}};
  lcn_setfuncs(L, funcs);
  return 0;
}
