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

/* core.signal_wait(name) -> signum | nil, err, code: waits for one delivery. */
static int l_signal_wait(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  int signum = cn_signal_number(name);
  if (!signum) return luaL_argerror(L, 1, lua_pushfstring(L, "unknown signal name '%s'", name));
  lcn_fiber *f = lcn_fiber_current(L);
  if (f->cancelled) return lcn_fail(L, CN_ECANCELLED, "signal wait", NULL);
  int rc = cn_signal_wait(f->ctx->loop, signum, &f->waiter);
  if (rc < 0) return lcn_fail(L, rc, "signal wait", NULL);
  return lcn_fiber_wait(L, f, -1, NULL, NULL, signal_k, 0);
}

int lcn_open_timer(lua_State *L) {
  static const luaL_Reg funcs[] = {{"signal_wait", l_signal_wait}, {NULL, NULL}};
  lcn_setfuncs(L, funcs);
  return 0;
}
