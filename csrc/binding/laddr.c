/* laddr.c: address values (IPv4, IPv6, unix path) with tostring, equality
 * and the fields family, ip, port and path. */
#include <string.h>
#include <sys/un.h>
#include "lbinding.h"

/* A server hands every handler its client's address, and idle connections
 * keep it: the userdata holds only the bytes the sockaddr needs (16 for
 * IPv4, not the 128 of sockaddr_storage). */
typedef struct {
  lcn_tag tag;
  socklen_t len;
  unsigned char sa[];
} lcn_addr_box;

void lcn_push_address(lua_State *L, const cn_addr *a) {
  lcn_addr_box *box = lua_newuserdatauv(L, sizeof *box + a->len, 0);
  box->len = a->len;
  memcpy(box->sa, &a->ss, a->len);
  lcn_set_class(L, box, LCN_C_ADDRESS);
}

void lcn_check_address(lua_State *L, int idx, cn_addr *out) {
  lcn_addr_box *box = lcn_check(L, idx, LCN_C_ADDRESS);
  memset(out, 0, sizeof *out);
  memcpy(&out->ss, box->sa, box->len);
  out->len = box->len;
}

static const char *family_name(const cn_addr *a) {
  switch (cn_addr_family(a)) {
  case AF_INET: return "inet";
  case AF_INET6: return "inet6";
  default: return "unix";
  }
}

static int l_index(lua_State *L) {
  cn_addr addr, *a = &addr;
  lcn_check_address(L, 1, a);
  const char *key = luaL_checkstring(L, 2);
  char host[128];
  int is_unix = cn_addr_family(a) == AF_UNIX;
  if (strcmp(key, "family") == 0) {
    lua_pushstring(L, family_name(a));
  } else if (strcmp(key, "port") == 0 && !is_unix) {
    lua_pushinteger(L, cn_addr_port(a));
  } else if ((strcmp(key, "ip") == 0 && !is_unix) || (strcmp(key, "path") == 0 && is_unix)) {
    cn_addr_host(a, host, sizeof host);
    lua_pushstring(L, host);
  } else {
    lua_pushnil(L);
  }
  return 1;
}

static int l_tostring(lua_State *L) {
  char text[160];
  cn_addr a;
  lcn_check_address(L, 1, &a);
  cn_addr_format(&a, text, sizeof text);
  lua_pushstring(L, text);
  return 1;
}

/* Lua calls __eq for any two userdata when one has it: an address is never
 * equal to another kind of value, and comparing never raises. */
static int l_eq(lua_State *L) {
  cn_addr a, b;
  int both = lcn_test(L, 1, LCN_C_ADDRESS) && lcn_test(L, 2, LCN_C_ADDRESS);
  if (both) {
    lcn_check_address(L, 1, &a);
    lcn_check_address(L, 2, &b);
  }
  lua_pushboolean(L, both && cn_addr_equal(&a, &b));
  return 1;
}

/* core.address_ip(ip, port) -> address; raises on a malformed literal or port. */
static int l_address_ip(lua_State *L) {
  const char *ip = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  luaL_argcheck(L, port >= 0 && port <= 65535, 2, "port must be 0..65535");
  cn_addr a;
  if (cn_addr_ip(&a, ip, (int)port) < 0) return luaL_argerror(L, 1, "not an IPv4 or IPv6 address literal");
  lcn_push_address(L, &a);
  return 1;
}

/* core.address_unix(path) -> address; raises if the path does not fit sun_path. */
static int l_address_unix(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  cn_addr a;
  luaL_argcheck(L, strlen(path) == len, 1, "unix socket path contains a NUL byte");
  int rc = cn_addr_unix(&a, path);
  if (rc == UV_ENAMETOOLONG)
    return luaL_argerror(L, 1, lua_pushfstring(L, "unix socket path is %d bytes, longer than the %d that sun_path holds",
                                               (int)len, (int)sizeof(((struct sockaddr_un *)0)->sun_path) - 1));
  if (rc < 0) return luaL_argerror(L, 1, "empty unix socket path");
  lcn_push_address(L, &a);
  return 1;
}

static int l_is_address(lua_State *L) {
  lua_pushboolean(L, lcn_test(L, 1, LCN_C_ADDRESS) != NULL);
  return 1;
}

int lcn_open_address(lua_State *L) {
  static const luaL_Reg meta[] = {{"__index", l_index}, {"__tostring", l_tostring}, {"__eq", l_eq}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
      {"address_ip", l_address_ip}, {"address_unix", l_address_unix}, {"is_address", l_is_address}, {NULL, NULL}};
  luaL_newmetatable(L, LCN_ADDRESS);
  lcn_setfuncs(L, meta);
  lua_pop(L, 1);
  lcn_setfuncs(L, funcs);
  return 0;
}
