/* lcoronet.c: luaopen_coronet_core. The per-state context, the class
 * helpers and the loop-driving functions; the other l*.c files add theirs. */
#include <string.h>
#include "coronet_lua.h"
#include "lbinding.h"

static const char lcn_ctx_key = 'c';

static const char *const class_names[LCN_C_COUNT] = {LCN_FIBER,  LCN_SOCKET,  LCN_READER, LCN_WRITER,
                                                     LCN_SERVER, LCN_ADDRESS, LCN_CONNECT};

lcn_ctx *lcn_ctx_get(lua_State *L) {
  lcn_ctx *ctx = lua_touserdata(L, lua_upvalueindex(1));
  if (ctx) return ctx;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &lcn_ctx_key);
  ctx = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (!ctx) luaL_error(L, "coronet.core is not loaded in this Lua state");
  return ctx;
}

void *lcn_test(lua_State *L, int idx, int cls) {
  void *p = lua_touserdata(L, idx);
  if (!p || !lua_getmetatable(L, idx)) return NULL;
  int same = lua_topointer(L, -1) == lcn_ctx_get(L)->metatables[cls];
  lua_pop(L, 1);
  return same ? p : NULL;
}

void *lcn_check(lua_State *L, int idx, int cls) {
  void *p = lcn_test(L, idx, cls);
  if (!p) luaL_typeerror(L, idx, class_names[cls]);
  return p;
}

void lcn_setfuncs(lua_State *L, const luaL_Reg *funcs) {
  lua_pushlightuserdata(L, lcn_ctx_get(L));
  luaL_setfuncs(L, funcs, 1);
}

void lcn_new_class(lua_State *L, int cls, const luaL_Reg *methods, const luaL_Reg *meta) {
  luaL_newmetatable(L, class_names[cls]);
  lcn_ctx_get(L)->metatables[cls] = lua_topointer(L, -1);
  lcn_setfuncs(L, meta);
  lua_newtable(L);
  lcn_setfuncs(L, methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__index");
  /* core.methods.<class> lets the Lua modules add methods written in Lua. */
  lua_getfield(L, -3, "methods");
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, class_names[cls] + sizeof "coronet." - 1);
  lua_pop(L, 3);
}

double lcn_opt_seconds(lua_State *L, int idx, double def) {
  if (lua_isnoneornil(L, idx)) return def;
  if (lua_isboolean(L, idx) && !lua_toboolean(L, idx)) return -1;
  double s = luaL_checknumber(L, idx);
  luaL_argcheck(L, s >= 0, idx, "timeout must be >= 0 seconds (false for none)");
  return s;
}

/* core.run_once(nowait) -> alive: one pass of the loop. */
static int l_run_once(lua_State *L) {
  lcn_ctx *ctx = lcn_ctx_get(L);
  if (cn_loop_running(ctx->loop)) return luaL_error(L, "the coronet loop is already running (uv_run is not re-entrant)");
  lua_State *saved = ctx->L;
  ctx->L = L;
  int alive = cn_loop_run(ctx->loop, lua_toboolean(L, 1) ? UV_RUN_NOWAIT : UV_RUN_ONCE);
  ctx->L = saved;
  lua_pushboolean(L, alive > 0);
  return 1;
}

static int l_is_running(lua_State *L) {
  lcn_ctx *ctx = lcn_ctx_get(L);
  lua_pushboolean(L, ctx->running || cn_loop_running(ctx->loop));
  return 1;
}

static int l_set_running(lua_State *L) {
  lcn_ctx_get(L)->running = lua_toboolean(L, 1);
  return 0;
}

/* core.take_failure() -> the first uncaught error since the last call, or nothing. */
static int l_take_failure(lua_State *L) {
  lcn_ctx *ctx = lcn_ctx_get(L);
  if (ctx->failure_ref == LUA_NOREF) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->failure_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, ctx->failure_ref);
  ctx->failure_ref = LUA_NOREF;
  lua_pushboolean(L, 1);
  lua_insert(L, -2);
  return 2;
}

static int l_has_failure(lua_State *L) {
  lua_pushboolean(L, lcn_ctx_get(L)->failure_ref != LUA_NOREF);
  return 1;
}

static int l_close_all(lua_State *L) {
  cn_loop_close_all(lcn_ctx_get(L)->loop, lua_toboolean(L, 1));
  return 0;
}

static int l_live(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)cn_loop_live(lcn_ctx_get(L)->loop));
  return 1;
}

static int l_now(lua_State *L) {
  lua_pushnumber(L, cn_loop_hrnow());
  return 1;
}

static int l_backend_fd(lua_State *L) {
  lua_pushinteger(L, cn_loop_backend_fd(lcn_ctx_get(L)->loop));
  return 1;
}

static int l_backend_timeout(lua_State *L) {
  int ms = cn_loop_backend_timeout(lcn_ctx_get(L)->loop);
  if (ms < 0)
    lua_pushnil(L);
  else
    lua_pushnumber(L, ms / 1000.0);
  return 1;
}

/* The logger runs on the loop's thread; it must not wait. Its errors are dropped, not raised into the loop. */
static void log_to_lua(void *data, const char *msg) {
  lcn_ctx *ctx = data;
  lua_State *L = ctx->L;
  if (ctx->logger_ref == LUA_NOREF) return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->logger_ref);
  lua_pushstring(L, msg);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
}

/* core.set_logger(fn|nil) */
static int l_set_logger(lua_State *L) {
  lcn_ctx *ctx = lcn_ctx_get(L);
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_unref(L, LUA_REGISTRYINDEX, ctx->logger_ref);
  ctx->logger_ref = LUA_NOREF;
  if (lua_isfunction(L, 1)) {
    lua_pushvalue(L, 1);
    ctx->logger_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  cn_loop_set_logger(ctx->loop, ctx->logger_ref == LUA_NOREF ? NULL : log_to_lua, ctx);
  return 0;
}

/* core.log(msg): through the same rate limit as the core's own lines. */
static int l_log(lua_State *L) {
  cn_loop_logf(lcn_ctx_get(L)->loop, "%s", luaL_checkstring(L, 1));
  return 0;
}

/* At state close: stop every fiber, close everything, drain the loop, free it. */
static int l_ctx_gc(lua_State *L) {
  lcn_ctx *ctx = lua_touserdata(L, 1);
  if (ctx->closed) return 0;
  ctx->closed = 1;
  cn_loop_set_logger(ctx->loop, NULL, NULL);
  cn_loop_close_all(ctx->loop, 1);
  if (!cn_loop_running(ctx->loop))
    while (cn_loop_live(ctx->loop) > 0 && cn_loop_run(ctx->loop, UV_RUN_ONCE) > 0) {
    }
  if (cn_loop_live(ctx->loop) == 0) cn_loop_free(ctx->loop);
  return 0;
}

static void open_ctx(lua_State *L, uv_loop_t *host_loop) {
  lcn_ctx *ctx = lua_newuserdatauv(L, sizeof *ctx, 0);
  memset(ctx, 0, sizeof *ctx);
  ctx->L = L;
  ctx->failure_ref = ctx->logger_ref = LUA_NOREF;
  cn_list_init(&ctx->fibers);
  int rc = cn_loop_new(&ctx->loop, host_loop);
  if (rc < 0) luaL_error(L, "coronet: cannot create the loop: %s", cn_strerror(rc));
  lua_newtable(L);
  lua_pushcfunction(L, l_ctx_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &lcn_ctx_key);
}

int coronet_lua_attach_loop(lua_State *L, uv_loop_t *loop) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &lcn_ctx_key);
  int exists = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (exists) return UV_EBUSY;
  cn_ignore_sigpipe();
  open_ctx(L, loop);
  return 0;
}

LUALIB_API int luaopen_coronet_core(lua_State *L) {
  static const luaL_Reg funcs[] = {{"run_once", l_run_once},
                                   {"is_running", l_is_running},
                                   {"set_running", l_set_running},
                                   {"take_failure", l_take_failure},
                                   {"has_failure", l_has_failure},
                                   {"close_all", l_close_all},
                                   {"live", l_live},
                                   {"now", l_now},
                                   {"backend_fd", l_backend_fd},
                                   {"backend_timeout", l_backend_timeout},
                                   {"set_logger", l_set_logger},
                                   {"log", l_log},
                                   {NULL, NULL}};
  lua_rawgetp(L, LUA_REGISTRYINDEX, &lcn_ctx_key);
  int fresh = lua_isnil(L, -1);
  lua_pop(L, 1);
  if (fresh) {
    cn_ignore_sigpipe();
    open_ctx(L, NULL);
  }
  lua_newtable(L);
  lcn_setfuncs(L, funcs);
  lua_newtable(L);
  lua_setfield(L, -2, "methods");
  lcn_open_error(L);
  lcn_open_fiber(L);
  lcn_open_address(L);
  lcn_open_timer(L);
  lcn_open_stream(L);
  lcn_open_reader(L);
  lcn_open_writer(L);
  lcn_open_connect(L);
  lcn_open_server(L);
  return 1;
}
