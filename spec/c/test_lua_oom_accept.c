/* test_lua_oom_accept.c: a memory error while a server starts a handler
 * (the binding's on_conn, a libuv-to-Lua entry) must not unwind through
 * libuv. The Lua state runs on an allocator that can be told to fail its
 * next allocations; a client connects, the allocator is armed, and the
 * accept that follows fails to make its socket box. The connection is
 * dropped and logged, the run goes on, and the next client is served.
 * Run from the repository root (package.path = lua/). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include "check.h"
#include "coronet_lua.h"

static int fail_next; /* allocations (not frees or shrinks) still to fail */

static void *alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  int grows = ptr == NULL || nsize > osize;
  if (grows && fail_next > 0) {
    fail_next--;
    return NULL;
  }
  return realloc(ptr, nsize);
}

/* fail_allocs(n): the next n allocations fail (Lua retries once after a full GC). */
static int l_fail_allocs(lua_State *L) {
  fail_next = (int)luaL_checkinteger(L, 1);
  return 0;
}

static int l_fails_left(lua_State *L) {
  lua_pushinteger(L, fail_next);
  return 1;
}

/* raw_connect(port) -> fd: a blocking connect to 127.0.0.1; the kernel
 * completes it before the server accepts. */
static int l_raw_connect(lua_State *L) {
  struct sockaddr_in sin = {0};
  sin.sin_family = AF_INET;
  sin.sin_port = htons((unsigned short)luaL_checkinteger(L, 1));
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) return luaL_error(L, "raw_connect failed");
  lua_pushinteger(L, fd);
  return 1;
}

static int l_raw_close(lua_State *L) {
  close((int)luaL_checkinteger(L, 1));
  return 0;
}

static const char script[] =
    "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path\n"
    "local coronet = require 'coronet'\n"
    "local core = require 'coronet.core'\n"
    "local tcp = coronet.tcp\n"
    "local logged = {}\n"
    "core.set_logger(function(msg) logged[#logged + 1] = msg end)\n"
    "local served = 0\n"
    "coronet.run(function()\n"
    "  local where = tcp.Where_to_listen.of_address(coronet.address('127.0.0.1', 0))\n"
    "  local server = assert(tcp.Server.create(where, function(_, _, w)\n"
    "    served = served + 1\n"
    "    w:write('hello\\n')\n"
    "  end))\n"
    "  local port = server:listening_on()\n"
    "  local fd = raw_connect(port)\n"
    "  fail_allocs(2)\n"
    "  coronet.sleep(0.2) -- the loop accepts fd's connection now\n"
    "  assert(fails_left() == 0, 'nothing allocated while accepting')\n"
    "  raw_close(fd)\n"
    "  local sock, r = assert(tcp.connect(tcp.Where_to_connect.of_host_and_port('127.0.0.1', port)))\n"
    "  assert(r:read_line() == 'hello', 'the next client was not served')\n"
    "  sock:close()\n"
    "  server:close():wait(2)\n"
    "end)\n"
    "assert(served == 1, 'handlers run: ' .. served)\n"
    "assert(logged[1] and logged[1]:find('dropped', 1, true), 'not logged: ' .. tostring(logged[1]))\n";

int main(void) {
  lua_State *L = lua_newstate(alloc, NULL);
  if (!CHECK(L != NULL)) return check_summary();
  luaL_openlibs(L);
  luaL_requiref(L, "coronet.core", luaopen_coronet_core, 0);
  lua_pop(L, 1);
  lua_register(L, "fail_allocs", l_fail_allocs);
  lua_register(L, "fails_left", l_fails_left);
  lua_register(L, "raw_connect", l_raw_connect);
  lua_register(L, "raw_close", l_raw_close);
  int rc = luaL_loadstring(L, script);
  if (rc == LUA_OK) rc = lua_pcall(L, 0, 0, 0);
  if (!CHECK(rc == LUA_OK)) fprintf(stderr, "script failed: %s\n", lua_tostring(L, -1));
  lua_close(L);
  return check_summary();
}
