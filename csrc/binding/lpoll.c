/* lpoll.c: waiting for readiness of a descriptor of the user's (Procord's
 * waiter_custom), one wait per descriptor, over the core's cn_poll. */
#include <limits.h>
#include "lbinding.h"

/* nil, err, code with a message naming the descriptor. */
static int poll_fail(lua_State *L, int err, int fd) {
  return lcn_fail(L, err, lua_pushfstring(L, "poll wait on descriptor %d", fd), NULL);
}

/* A string of the letters r, w, e (read, write, exceptional), at least one. */
static int check_events(lua_State *L, int idx) {
  size_t len;
  const char *s = luaL_checklstring(L, idx, &len);
  int events = 0;
  for (size_t i = 0; i < len; i++) {
    switch (s[i]) {
      case 'r': events |= UV_READABLE; break;
      case 'w': events |= UV_WRITABLE; break;
      case 'e': events |= UV_PRIORITIZED; break;
      default: return luaL_argerror(L, idx, "events must be letters of \"rwe\"");
    }
  }
  if (!events) return luaL_argerror(L, idx, "events must name at least one of \"rwe\"");
  return events;
}

static int check_fd(lua_State *L, int idx) {
  lua_Integer fd = luaL_checkinteger(L, idx);
  luaL_argcheck(L, fd >= 0 && fd <= INT_MAX, idx, "descriptor must be an integer >= 0");
  return (int)fd;
}

/* The letters of the events that fired, in the order r, w, e; kctx is the descriptor. */
static int poll_k(lua_State *L, int status, lua_KContext kctx) {
  (void)status;
  int st = lcn_fiber_status(L);
  if (st < 0) return poll_fail(L, st, (int)kctx);
  char letters[3];
  size_t n = 0;
  if (st & UV_READABLE) letters[n++] = 'r';
  if (st & UV_WRITABLE) letters[n++] = 'w';
  if (st & UV_PRIORITIZED) letters[n++] = 'e';
  lua_pushlstring(L, letters, n);
  return 1;
}

/* core.poll_wait(fd, events [, timeout]) -> letters that fired | nil, err,
 * code ("EBADF", "EEXIST", "timeout", "cancelled", "closed"). A timeout or
 * cancel detaches the waiter, which closes the watcher. */
static int l_poll_wait(lua_State *L) {
  int fd = check_fd(L, 1);
  int events = check_events(L, 2);
  lua_Integer deadline = lcn_deadline(L, 3, -1);
  lcn_fiber *f = lcn_fiber_current(L);
  if (f->cancelled) return poll_fail(L, CN_ECANCELLED, fd);
  int rc = cn_poll_wait(f->ctx->loop, fd, events, &f->waiter);
  if (rc < 0) return poll_fail(L, rc, fd);
  return lcn_fiber_wait(L, f, deadline, NULL, NULL, poll_k, (lua_KContext)fd);
}

/* core.is_watched(fd) -> whether a handle of coronet's loop holds fd. */
static int l_is_watched(lua_State *L) {
  int fd = check_fd(L, 1);
  lua_pushboolean(L, cn_poll_is_watched(lcn_ctx_get(L)->loop, fd));
  return 1;
}

int lcn_open_poll(lua_State *L) {
  static const luaL_Reg funcs[] = {{"poll_wait", l_poll_wait}, {"is_watched", l_is_watched}, {NULL, NULL}};
  lcn_setfuncs(L, funcs);
  return 0;
}
