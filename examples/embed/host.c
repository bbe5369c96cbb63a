/* host.c: a C program that embeds Lua and coronet, linked in statically.
 *
 *   embed_host path/to/server.lua [repo-root]
 *
 * The repository root (for package.path, so `require "coronet"` finds
 * lua/coronet/) is argv[2], or else two directories above server.lua.
 *
 * Two modes:
 *   default                    coronet owns its loop; server.lua calls coronet.run.
 *   CORONET_EMBED_HOST_LOOP=1  the host owns a uv_loop_t and hands it to coronet
 *                              (coronet_lua_attach_loop) before the module opens;
 *                              server.lua only spawns its fiber and sets the global
 *                              `embed_done`, and the host runs the loop with uv_run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <uv.h>
#include "coronet_lua.h"

/* The repository root: argv[2], or dirname(server.lua)/../.. */
static void repo_root(const char *script, const char *given, char *out, size_t size) {
  if (given) {
    snprintf(out, size, "%s", given);
    return;
  }
  const char *slash = strrchr(script, '/');
  if (!slash)
    snprintf(out, size, "../..");
  else
    snprintf(out, size, "%.*s/../..", (int)(slash - script), script);
}

/* package.path = ROOT/lua/?.lua;ROOT/lua/?/init.lua;<previous> */
static void set_package_path(lua_State *L, const char *root) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  const char *old = lua_tostring(L, -1);
  lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;%s", root, root, old ? old : "");
  lua_setfield(L, -3, "path");
  lua_pop(L, 2);
}

static int report(lua_State *L, const char *what) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "embed_host: %s: %s\n", what, msg ? msg : "(error object is not a string)");
  lua_pop(L, 1);
  return 1;
}

/* After the host's uv_run: raise a fiber's uncaught error, and insist that
 * server.lua got to its end. */
static const char check_outcome[] =
    "local core = require 'coronet.core'\n"
    "local has, err = core.take_failure()\n"
    "if has then error(err, 0) end\n"
    "if not embed_done then error('the loop stopped before server.lua finished', 0) end\n";

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s path/to/server.lua [repo-root]\n", argv[0]);
    return 2;
  }
  const char *script = argv[1];
  const char *mode = getenv("CORONET_EMBED_HOST_LOOP");
  int host_loop = mode && strcmp(mode, "1") == 0;
  char root[4096];
  repo_root(script, argc > 2 ? argv[2] : NULL, root, sizeof root);

  uv_loop_t loop;
  if (host_loop && uv_loop_init(&loop) != 0) {
    fprintf(stderr, "embed_host: uv_loop_init failed\n");
    return 1;
  }

  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "embed_host: cannot create a Lua state\n");
    return 1;
  }
  luaL_openlibs(L);
  set_package_path(L, root);

  int failed = 0;
  if (host_loop) {
    int rc = coronet_lua_attach_loop(L, &loop); /* before the module first opens */
    if (rc != 0) {
      fprintf(stderr, "embed_host: coronet_lua_attach_loop: %s\n", uv_strerror(rc));
      failed = 1;
    }
  }
  if (!failed) {
    /* The module is linked in: preload it instead of searching package.cpath. */
    luaL_requiref(L, "coronet.core", luaopen_coronet_core, 0);
    lua_pop(L, 1);

    /* arg, as the stand-alone interpreter would set it. */
    lua_createtable(L, 0, 1);
    lua_pushstring(L, script);
    lua_rawseti(L, -2, 0);
    lua_setglobal(L, "arg");

    if (luaL_loadfile(L, script) != LUA_OK || lua_pcall(L, 0, 0, 0) != LUA_OK) failed = report(L, script);
  }
  if (!failed && host_loop) {
    uv_run(&loop, UV_RUN_DEFAULT); /* the host drives; coronet's callbacks run in here */
    if (luaL_loadstring(L, check_outcome) != LUA_OK || lua_pcall(L, 0, 0, 0) != LUA_OK)
      failed = report(L, "after uv_run");
  }

  lua_close(L); /* closes whatever coronet still has open and frees its loop state */
  if (host_loop) {
    uv_run(&loop, UV_RUN_DEFAULT); /* the close callbacks of coronet's own handles */
    int rc = uv_loop_close(&loop);
    if (rc != 0) {
      fprintf(stderr, "embed_host: uv_loop_close: %s\n", uv_strerror(rc));
      failed = 1;
    }
  }
  return failed;
}
