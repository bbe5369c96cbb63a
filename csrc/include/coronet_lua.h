/* coronet_lua.h: for C programs that embed Lua and coronet. */
#ifndef CORONET_LUA_H
#define CORONET_LUA_H

#include <lua.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Opens the module (what `require "coronet.core"` calls). Preload it with
 * luaL_requiref or package.preload when coronet is linked into the host. */
int luaopen_coronet_core(lua_State *L);

/* Makes coronet in state L use the host's libuv loop instead of creating its
 * own. Call before the module is first opened in L. The host then drives the
 * loop (uv_run, or coronet.step from Lua); coronet never closes it. Returns 0,
 * or UV_EBUSY if coronet is already open in L. */
int coronet_lua_attach_loop(lua_State *L, uv_loop_t *loop);

#ifdef __cplusplus
}
#endif
#endif
