/* lcoronet.c: luaopen_coronet_core. The per-state context, the class
 * helpers and the loop-driving functions; the other l*.c files add theirs. */
#include <string.h>
#include "coronet_lua.h"
#include "lbinding.h"

static const char lcn_ctx_key = 'c';

static const char *const class_names[LCN_C_COUNT] = {LCN_FIBER,  LCN_SOCKET,  LCN_READER, LCN_WRITER,
                                                     LCN_SERVER, LCN_ADDRESS, LCN_CONNECT, LCN_DATAGRAM,
                                                     LCN_PROCESS};

lcn_ctx *lcn_ctx_get(lua_State *L) {
  lcn_ctx *ctx = lua_touserdata(L, lua_upvalueindex(1));
  if (ctx) return ctx;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &lcn_ctx_key);
  ctx = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (!ctx) luaL_error(L, "coronet.core is not loaded in this Lua state");
  return ctx;
}

/* The tags' targets: only their addresses matter. */
static const char class_tags[LCN_C_COUNT];

/* Every method call starts here, so it costs two API calls and a compare:
 * a full userdata (light ones have no length) large enough to hold a tag,
 * whose tag is this class's. (static: lcn_check gets it inlined rather than
 * called through the module's symbol table.) */
static void *test_class(lua_State *L, int idx, int cls) {
  lcn_tag *box = lua_touserdata(L, idx);
  if (!box || lua_rawlen(L, idx) < sizeof *box) return NULL;
  return *box == &class_tags[cls] ? box : NULL;
}

void *lcn_test(lua_State *L, int idx, int cls) { return test_class(L, idx, cls); }

void *lcn_check(lua_State *L, int idx, int cls) {
  void *p = test_class(L, idx, cls);
  if (!p) luaL_typeerror(L, idx, class_names[cls]);
  return p;
}

void lcn_set_class(lua_State *L, void *box, int cls) {
  *(lcn_tag *)box = &class_tags[cls];
  luaL_setmetatable(L, class_names[cls]);
}

void lcn_setfuncs(lua_State *L, const luaL_Reg *funcs) {
  lua_pushlightuserdata(L, lcn_ctx_get(L));
  luaL_setfuncs(L, funcs, 1);
}

void lcn_new_class(lua_State *L, int cls, const luaL_Reg *methods, const luaL_Reg *meta) {
  luaL_newmetatable(L, class_names[cls]);
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

/* A duration of LCN_MAX_SECONDS or more (math.huge, 1e300) means no
 * deadline, as false does: waiting that long is waiting forever, and a run
 * whose main fiber sleeps forever with nothing else alive still reports a
 * deadlock instead of hanging. Below it, seconds convert to milliseconds
 * without overflow. */
double lcn_check_seconds(lua_State *L, int idx) {
  double s = luaL_checknumber(L, idx);
  luaL_argcheck(L, s == s, idx, "duration is NaN");
  luaL_argcheck(L, s >= 0, idx, "duration must be >= 0 seconds");
  return s < LCN_MAX_SECONDS ? s : -1;
}

double lcn_opt_seconds(lua_State *L, int idx, double def) {
  if (lua_isnoneornil(L, idx)) return def;
  if (lua_isboolean(L, idx) && !lua_toboolean(L, idx)) return -1;
  return lcn_check_seconds(L, idx);
}

void lcn_check_opt_seconds(lua_State *L, int idx, const char *fn, const char *name) {
  if (lua_isnil(L, idx) || (lua_isboolean(L, idx) && !lua_toboolean(L, idx))) return;
  if (lua_type(L, idx) == LUA_TNUMBER && lua_tonumber(L, idx) >= 0) return; /* NaN fails */
  luaL_error(L, "%s: option '%s' must be a number of seconds >= 0, or false for none (got %s)", fn, name,
             luaL_tolstring(L, idx, NULL));
}

uint64_t lcn_opt_bound_ms(lua_State *L, int idx, const char *fn, const char *name) {
  lua_getfield(L, idx, name);
  double s = -1;
  if (!lua_isnil(L, -1) && !(lua_isboolean(L, -1) && !lua_toboolean(L, -1))) {
    s = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
    if (!(s >= 0)) /* NaN fails too */
      luaL_error(L, "%s: option '%s' must be a number of seconds >= 0, or false for none (got %s)", fn, name,
                 luaL_tolstring(L, -1, NULL));
  }
  lua_pop(L, 1);
  if (s < 0 || s >= LCN_MAX_SECONDS) return 0;
  uint64_t ms = (uint64_t)(s * 1000.0 + 0.5);
  return ms ? ms : 1;
}

lua_Integer lcn_ms(double seconds) { return seconds < 0 ? -1 : (lua_Integer)(seconds * 1000.0 + 0.5); }

/* The loop runs when someone runs it through us, or when a fiber is being
 * resumed: that proves a host runs the loop it lent us. */
static int loop_running(lcn_ctx *ctx) { return cn_loop_running(ctx->loop) || ctx->current != NULL; }

static int loop_alive(lcn_ctx *ctx) { return cn_loop_alive(ctx->loop); }

static void on_step_timeout(cn_timer *t, void *data) {
  (void)t;
  (void)data; /* only ends the poll */
}

/* One pass that polls at most ms: a timer bounds it, stopped again after.
 * The clock is read first: after a host's long frame the loop's cached time
 * is stale, the timer would be due already, fire before the poll, and leave
 * the poll unbounded. */
static int run_once_for(lcn_ctx *ctx, lua_Integer ms) {
  if (!ctx->step_timer && cn_timer_new(ctx->loop, &ctx->step_timer) < 0) return UV_ENOMEM;
  cn_loop_update_time(ctx->loop);
  cn_timer_start(ctx->step_timer, (uint64_t)ms, on_step_timeout, ctx);
  int rc = cn_loop_run(ctx->loop, UV_RUN_ONCE);
  cn_timer_stop(ctx->step_timer);
  return rc;
}

/* core.run_once([timeout]) -> alive: one pass of the loop. No timeout: wait
 * until something happens; true or 0: do not wait; seconds: wait at most that. */
static int l_run_once(lua_State *L) {
  lcn_ctx *ctx = lcn_ctx_get(L);
  lua_Integer ms = -1;
  if (lua_isboolean(L, 1))
    ms = lua_toboolean(L, 1) ? 0 : -1;
  else if (!lua_isnoneornil(L, 1))
    ms = lcn_ms(lcn_check_seconds(L, 1)); /* none (-1): until something happens */
  if (loop_running(ctx)) return luaL_error(L, "the coronet loop is already running (uv_run is not re-entrant)");
  lua_State *saved = ctx->L;
  ctx->L = L;
  int rc;
  if (ms == 0 || (ms > 0 && !loop_alive(ctx)))
    rc = cn_loop_run(ctx->loop, UV_RUN_NOWAIT);
  else if (ms > 0)
    rc = run_once_for(ctx, ms);
  else
    rc = cn_loop_run(ctx->loop, UV_RUN_ONCE);
  ctx->L = saved;
  if (rc < 0) return luaL_error(L, "coronet: cannot run the loop: %s", cn_strerror(rc));
  lua_pushboolean(L, loop_alive(ctx));
  return 1;
}

static int l_is_running(lua_State *L) {
  lcn_ctx *ctx = lcn_ctx_get(L);
  lua_pushboolean(L, ctx->running || loop_running(ctx));
  return 1;
}

/* core.stop_pass(): the pass of the loop running now ends before the loop
 * next blocks (a driver outside coronet.run saw its condition come true). */
static int l_stop_pass(lua_State *L) {
  cn_loop_stop(lcn_ctx_get(L)->loop);
  return 0;
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

static void set_field(lua_State *L, const char *name, uint64_t v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, name);
}

/* core.loop_stats() -> a fresh table: the core's cn_loop_stats and the fibers not yet dead. */
static int l_loop_stats(lua_State *L) {
  lcn_ctx *ctx = lcn_ctx_get(L);
  cn_loop_stats st;
  cn_loop_stats_get(ctx->loop, &st);
  uint64_t fibers = 0;
  for (cn_list *link = ctx->fibers.next; link != &ctx->fibers; link = link->next) fibers++;
  lua_createtable(L, 0, 11);
  set_field(L, "connections_open", st.connections_open);
  set_field(L, "accepted", st.accepted);
  set_field(L, "refused", st.refused);
  set_field(L, "dropped", st.dropped);
  set_field(L, "accept_errors", st.accept_errors);
  set_field(L, "bytes_in", st.bytes_in);
  set_field(L, "bytes_out", st.bytes_out);
  set_field(L, "fibers_alive", fibers);
  set_field(L, "timers_pending", st.timers_pending);
  set_field(L, "dns_in_flight", st.dns_in_flight);
  lua_pushnumber(L, st.loop_lag);
  lua_setfield(L, -2, "loop_lag");
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

/* Runs on the logger's thread, protected: logger(msg). */
static int call_logger(lua_State *T) {
  lcn_ctx *ctx = lua_touserdata(T, 1);
  const char *msg = lua_touserdata(T, 2);
  lua_rawgeti(T, LUA_REGISTRYINDEX, ctx->logger_ref);
  lua_pushstring(T, msg);
  lua_call(T, 1, 0);
  return 0;
}

/* The core calls this from libuv callbacks and from fibers alike, so the
 * logger runs on a thread of its own (never a suspended or dead one), and
 * everything that can raise, allocation included, runs under the pcall:
 * nothing escapes into libuv. It cannot wait; its errors are dropped. */
static void log_to_lua(void *data, const char *msg) {
  lcn_ctx *ctx = data;
  lua_State *T = ctx->logger;
  if (!T || !lua_checkstack(T, 3)) return;
  lua_pushcfunction(T, call_logger);
  lua_pushlightuserdata(T, ctx);
  lua_pushlightuserdata(T, (void *)msg);
  if (lua_pcall(T, 2, 0, 0) != LUA_OK) lua_pop(T, 1);
}

/* core.set_logger(fn|nil). The logger's thread is made once and kept for
 * the state's life: a logger may replace itself while it runs on it. */
static int l_set_logger(lua_State *L) {
  lcn_ctx *ctx = lcn_ctx_get(L);
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
  if (lua_isfunction(L, 1) && !ctx->logger) {
    lua_State *T = lua_newthread(L);
    ctx->logger_thread_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    ctx->logger = T;
  }
  cn_loop_set_logger(ctx->loop, NULL, NULL);
  luaL_unref(L, LUA_REGISTRYINDEX, ctx->logger_ref);
  ctx->logger_ref = LUA_NOREF;
  if (!lua_isfunction(L, 1)) return 0;
  lua_pushvalue(L, 1);
  ctx->logger_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  cn_loop_set_logger(ctx->loop, log_to_lua, ctx);
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
  if (ctx->step_timer) cn_timer_close(ctx->step_timer);
  ctx->step_timer = NULL;
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
  /* The main thread, even when the module is first required from a
   * coroutine (which may later be suspended or dead). */
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  ctx->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  ctx->failure_ref = ctx->logger_ref = ctx->logger_thread_ref = LUA_NOREF;
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
                                   {"stop_pass", l_stop_pass},
                                   {"take_failure", l_take_failure},
                                   {"has_failure", l_has_failure},
                                   {"close_all", l_close_all},
                                   {"live", l_live},
                                   {"loop_stats", l_loop_stats},
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
  lcn_open_poll(L);
  lcn_open_stream(L);
  lcn_open_reader(L);
  lcn_open_writer(L);
  lcn_open_connect(L);
  lcn_open_server(L);
  lcn_open_dns(L);
  lcn_open_udp(L);
  lcn_open_process(L);
  lcn_open_workers(L);
  lcn_open_tls(L);
  return 1;
}
