/* ltimer.c: waiting for a signal (sleep and deadlines live with the fibers). */
#include "lbinding.h"

static int signal_k(lua_State *L, int status, lua_KContext kctx) {
  (void)status;
  (void)kctx;
  int st = lcn_fiber_status(L);
  if (st < 0) return lcn_fail(L, st, "signal wait", NULL);
  lua_pushinteger(L, st);
  return 1;
}

static int check_signal(lua_State *L, int idx) {
  const char *name = luaL_checkstring(L, idx);
  int signum = cn_signal_number(name);
  if (!signum) return luaL_argerror(L, idx, lua_pushfstring(L, "unknown signal name '%s'", name));
  return signum;
}

/* core.signal_wait(name) -> signum | nil, err, code: waits for one delivery. */
static int l_signal_wait(lua_State *L) {
  int signum = check_signal(L, 1);
  lcn_fiber *f = lcn_fiber_current(L);
  if (f->cancelled) return lcn_fail(L, CN_ECANCELLED, "signal wait", NULL);
  /* A wait given up (cancel, interrupt) closes the watcher: the core hears of it through the waiter. */
  int rc = cn_signal_wait(f->ctx->loop, signum, &f->waiter);
  if (rc < 0) return lcn_fail(L, rc, "signal wait", NULL);
  return lcn_fiber_wait(L, f, -1, NULL, NULL, signal_k, 0);
}

/* core.signal_number(name) -> the signal's number, or nil for an unknown name. */
static int l_signal_number(lua_State *L) {
  int signum = cn_signal_number(luaL_checkstring(L, 1));
  if (signum)
    lua_pushinteger(L, signum);
  else
    lua_pushnil(L);
  return 1;
}

int lcn_open_timer(lua_State *L) {
  static const luaL_Reg funcs[] = {{"signal_wait", l_signal_wait}, {"signal_number", l_signal_number}, {NULL, NULL}};
  lcn_setfuncs(L, funcs);
  return 0;
}
