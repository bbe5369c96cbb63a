/* ldns.c: core.getaddrinfo and core.getnameinfo wait for a lookup of the
 * core's dns.c. A wait that ends early (timeout, cancel) or a lookup box
 * that is collected detaches the lookup: it finishes in the threadpool and
 * frees itself, and nobody waits for it. */
#include <string.h>
#include <sys/socket.h>
#include <netdb.h>
#include "lbinding.h"

#define LCN_DNS "coronet.dns"

/* The lookup in progress; a userdata so that its __gc detaches a lookup
 * whose fiber was collected with the state. */
typedef struct lcn_dns_box {
  cn_dns *op; /* NULL once closed */
} lcn_dns_box;

/* Stack slots shared by both calls and their continuations. */
enum { ARG_WHAT = 1, ARG_TIMEOUT = 4, SLOT_BOX = 5 };

static void close_op(lcn_dns_box *box) {
  if (!box->op) return;
  cn_dns_close(box->op);
  box->op = NULL;
}

static void abort_for_fiber(lcn_fiber *f) { close_op(f->abort_data); }

static int l_box_gc(lua_State *L) {
  close_op(lua_touserdata(L, 1));
  return 0;
}

static lcn_dns_box *push_box(lua_State *L) {
  lcn_dns_box *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->op = NULL;
  luaL_setmetatable(L, LCN_DNS);
  return box;
}

/* "getaddrinfo <host>[:<service>]", or "getnameinfo <address>". */
static int fail(lua_State *L, int err, const char *call) {
  if (lua_type(L, ARG_WHAT) != LUA_TSTRING) {
    cn_addr a;
    lcn_check_address(L, ARG_WHAT, &a);
    return lcn_fail(L, err, call, &a);
  }
  if (lua_type(L, 2) == LUA_TSTRING)
    lua_pushfstring(L, "%s %s:%s", call, lua_tostring(L, ARG_WHAT), lua_tostring(L, 2));
  else
    lua_pushfstring(L, "%s %s", call, lua_tostring(L, ARG_WHAT));
  int n = lcn_fail(L, err, lua_tostring(L, -1), NULL);
  lua_remove(L, -n - 1);
  return n;
}

/* Pushes the distinct addresses of the answer, in the resolver's order. */
static void push_addresses(lua_State *L, const cn_dns *op) {
  const struct addrinfo *list = cn_dns_addrinfo(op), *cursor = NULL;
  cn_addr a;
  lua_Integer n = 0;
  lua_newtable(L);
  while (cn_dns_next_address(list, &cursor, &a)) {
    lcn_push_address(L, &a);
    lua_rawseti(L, -2, ++n);
  }
}

static int getaddrinfo_k(lua_State *L, int status, lua_KContext kctx) {
  (void)status;
  (void)kctx;
  lcn_dns_box *box = lua_touserdata(L, SLOT_BOX);
  int st = lcn_fiber_status(L);
  if (st < 0) { /* the lookup was detached already if the wait ended early */
    close_op(box);
    return fail(L, st, "getaddrinfo");
  }
  push_addresses(L, box->op); /* may raise (memory): __gc then frees the op */
  close_op(box);
  return 1;
}

/* Starts the lookup (or fails at once) and waits for it. */
static int start_and_wait(lua_State *L, lcn_fiber *f, lcn_dns_box *box, int rc, lua_KFunction k, const char *call) {
  if (rc < 0) return fail(L, rc, call);
  lua_Integer deadline = lcn_deadline(L, ARG_TIMEOUT, -1);
  return lcn_fiber_wait(L, f, deadline, abort_for_fiber, box, k, 0);
}

static const char *const socktype_names[] = {"any", "stream", "datagram", NULL};
static const int socktypes[] = {0, SOCK_STREAM, SOCK_DGRAM};

/* core.getaddrinfo(host, service|nil, "any"|"stream"|"datagram", timeout|nil)
 * -> {address...} | nil, err, code. The service is a port number as text
 * or a service name; the Lua module checks port ranges. A host with a NUL
 * byte or over 255 bytes fails with EAI_NONAME, as connect does. */
static int l_getaddrinfo(lua_State *L) {
  cn_dns_query q;
  memset(&q, 0, sizeof q);
  q.host = luaL_checklstring(L, 1, &q.host_len);
  size_t service_len = 0;
  q.service = luaL_optlstring(L, 2, NULL, &service_len);
  luaL_argcheck(L, !q.service || strlen(q.service) == service_len, 2, "service contains a NUL byte");
  q.socktype = socktypes[luaL_checkoption(L, 3, "any", socktype_names)];
  q.family = AF_UNSPEC;
  if (!lua_isnoneornil(L, ARG_TIMEOUT)) lcn_opt_seconds(L, ARG_TIMEOUT, -1); /* raises on a bad one */
  lua_settop(L, ARG_TIMEOUT);
  lcn_fiber *f = lcn_fiber_current(L);
  lcn_dns_box *box = push_box(L);
  if (f->cancelled) return fail(L, CN_ECANCELLED, "getaddrinfo");
  int rc = q.host_len == 0 ? UV_EAI_NONAME : cn_dns_getaddrinfo(lcn_ctx_get(L)->loop, &q, &f->waiter, &box->op);
  return start_and_wait(L, f, box, rc, getaddrinfo_k, "getaddrinfo");
}

static int getnameinfo_k(lua_State *L, int status, lua_KContext kctx) {
  (void)status;
  (void)kctx;
  lcn_dns_box *box = lua_touserdata(L, SLOT_BOX);
  int st = lcn_fiber_status(L);
  if (st < 0) { /* the lookup was detached already if the wait ended early */
    close_op(box);
    return fail(L, st, "getnameinfo");
  }
  lua_pushstring(L, cn_dns_host(box->op));
  lua_pushstring(L, cn_dns_service(box->op));
  close_op(box);
  return 2;
}

/* core.getnameinfo(address, datagram, [_], timeout|nil) -> host, service | nil, err, code.
 * `datagram` looks the port up as a UDP service (NI_DGRAM). */
static int l_getnameinfo(lua_State *L) {
  cn_addr a;
  lcn_check_address(L, 1, &a);
  int family = cn_addr_family(&a);
  luaL_argcheck(L, family == AF_INET || family == AF_INET6, 1, "not an IP address (a unix address has no name)");
  int flags = lua_toboolean(L, 2) ? NI_DGRAM : 0;
  if (!lua_isnoneornil(L, ARG_TIMEOUT)) lcn_opt_seconds(L, ARG_TIMEOUT, -1);
  lua_settop(L, ARG_TIMEOUT);
  lcn_fiber *f = lcn_fiber_current(L);
  lcn_dns_box *box = push_box(L);
  if (f->cancelled) return fail(L, CN_ECANCELLED, "getnameinfo");
  int rc = cn_dns_getnameinfo(lcn_ctx_get(L)->loop, &a, flags, &f->waiter, &box->op);
  return start_and_wait(L, f, box, rc, getnameinfo_k, "getnameinfo");
}

int lcn_open_dns(lua_State *L) {
  static const luaL_Reg meta[] = {{"__gc", l_box_gc}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"getaddrinfo", l_getaddrinfo}, {"getnameinfo", l_getnameinfo}, {NULL, NULL}};
  luaL_newmetatable(L, LCN_DNS);
  luaL_setfuncs(L, meta, 0);
  lua_pop(L, 1);
  lcn_setfuncs(L, funcs);
  return 0;
}
