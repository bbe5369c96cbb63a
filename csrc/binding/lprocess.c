/* lprocess.c: the child process class over the core's process.c. The box is
 * made before the child (liolib's newprefile) and holds the one owner
 * pointer; close and __gc only let go of it (the child runs on and is
 * reaped when it exits: nothing here kills implicitly). */
#include <string.h>
#include "lbinding.h"

typedef struct lcn_process {
  lcn_tag tag;
  cn_process *p; /* NULL once closed */
} lcn_process;

static lcn_process *check_box(lua_State *L) { return lcn_check(L, 1, LCN_C_PROCESS); }

/* The open process at index 1; use after close raises. */
static cn_process *check_open(lua_State *L) {
  lcn_process *b = check_box(L);
  if (!b->p) luaL_error(L, "process was closed");
  return b->p;
}

/* A NULL-terminated array of the strings in the table at idx (argv or
 * envp), after `first` when given. The array is a userdata left on the
 * stack; the strings stay alive in the table, which the caller's stack holds. */
static char **string_array(lua_State *L, int idx, const char *first, const char *fn, const char *name) {
  lua_Integer n = luaL_len(L, idx);
  luaL_argcheck(L, n >= 0 && n < 1 << 20, idx, "too many strings");
  int skip = first ? 1 : 0;
  char **v = lua_newuserdatauv(L, sizeof *v * (size_t)(n + skip + 1), 0);
  if (first) v[0] = (char *)first;
  for (lua_Integer i = 1; i <= n; i++) {
    size_t len;
    if (lua_rawgeti(L, idx, i) != LUA_TSTRING) luaL_error(L, "%s: %s[%d] must be a string", fn, name, (int)i);
    v[i - 1 + skip] = (char *)lua_tolstring(L, -1, &len);
    if (strlen(v[i - 1 + skip]) != len) luaL_error(L, "%s: %s[%d] contains a NUL byte", fn, name, (int)i);
    lua_pop(L, 1);
  }
  v[n + skip] = NULL;
  return v;
}

/* opts.env and opts.cwd of the options table at idx (nil: inherit both). */
static void read_opts(lua_State *L, int idx, cn_process_opts *o) {
  if (lua_isnoneornil(L, idx)) return;
  luaL_argcheck(L, lua_istable(L, idx), idx, "options must be a table");
  if (lua_getfield(L, idx, "env") != LUA_TNIL) {
    if (!lua_istable(L, -1)) luaL_error(L, "spawn_process: option 'env' must be an array of \"NAME=value\" strings");
    o->env = string_array(L, lua_absindex(L, -1), NULL, "spawn_process", "env");
    lua_insert(L, -2); /* the array stays on the stack above the table */
  } else {
    lua_pop(L, 1);
  }
  if (lua_getfield(L, idx, "cwd") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "spawn_process: option 'cwd' must be a string");
    o->cwd = lua_tostring(L, -1);
  } else {
    lua_pop(L, 1);
  }
}

/* core.spawn_process(file, args, opts) -> process, stdin_socket,
 * stdout_socket | nil, err, code. */
static int l_spawn_process(lua_State *L) {
  cn_process_opts o = {0};
  o.file = luaL_checkstring(L, 1);
  lua_settop(L, 3);
  if (lua_isnil(L, 2)) {
    lua_newtable(L); /* no arguments after the program's name */
    lua_replace(L, 2);
  }
  luaL_checktype(L, 2, LUA_TTABLE);
  o.args = string_array(L, 2, o.file, "spawn_process", "args");
  read_opts(L, 3, &o);
  /* The boxes first: nothing to leak if making them fails. */
  lcn_process *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->p = NULL;
  lcn_set_class(L, b, LCN_C_PROCESS);
  lcn_conn *in = lcn_new_conn(L), *out = lcn_new_conn(L);
  cn_stream *sin, *sout;
  int rc = cn_process_spawn(lcn_ctx_get(L)->loop, &o, &b->p, &sin, &sout);
  if (rc < 0) {
    lua_pushfstring(L, "spawn %s", o.file);
    return lcn_fail(L, rc, lua_tostring(L, -1), NULL);
  }
  in->s = sin;
  out->s = sout;
  return 3;
}

static int l_pid(lua_State *L) {
  lua_pushinteger(L, cn_process_pid(check_open(L)));
  return 1;
}

/* The signal argument: a name ("SIGTERM", "TERM", "KILL"...) or a number; default SIGTERM. */
static int check_signal(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return cn_signal_number("SIGTERM");
  if (lua_isinteger(L, idx)) {
    lua_Integer n = lua_tointeger(L, idx);
    luaL_argcheck(L, n >= 0 && n < 128, idx, "not a signal number");
    return (int)n;
  }
  const char *name = luaL_checkstring(L, idx);
  int signum = cn_signal_number(name);
  if (!signum) return luaL_argerror(L, idx, lua_pushfstring(L, "unknown signal name '%s'", name));
  return signum;
}

/* process:kill([signal]) -> true | nil, err, code ("ESRCH" once the child exited). */
static int l_kill(lua_State *L) {
  cn_process *p = check_open(L);
  int rc = cn_process_kill(p, check_signal(L, 2));
  if (rc < 0) return lcn_fail(L, rc, "kill", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* Pushes code, signal (nil when none) and returns 2, or returns 0 while running. */
static int push_status(lua_State *L, cn_process *p) {
  int64_t code;
  int signum;
  if (!cn_process_exit_status(p, &code, &signum)) return 0;
  lua_pushinteger(L, (lua_Integer)code);
  if (signum)
    lua_pushinteger(L, signum);
  else
    lua_pushnil(L);
  return 2;
}

static int l_exit_status(lua_State *L) {
  if (push_status(L, check_open(L))) return 2;
  lua_pushnil(L);
  return 1;
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  int st = lcn_fiber_status(L);
  if (st < 0) return lcn_fail(L, st, "wait", NULL);
  return push_status(L, check_open(L));
}

/* process:wait([timeout]) -> code, signal | nil, err, code. */
static int l_wait(lua_State *L) {
  cn_process *p = check_open(L);
  lua_Integer deadline = lcn_deadline(L, 2, -1);
  if (push_status(L, p)) return 2;
  lcn_fiber *f = lcn_fiber_current(L);
  lua_settop(L, 1);
  cn_process_exit_wait(p, &f->waiter);
  return lcn_fiber_wait(L, f, deadline, NULL, NULL, wait_k, 0);
}

/* process:close(): lets go of the child, which runs on; idempotent. */
static int l_close(lua_State *L) {
  lcn_process *b = check_box(L);
  if (b->p) cn_process_close(b->p);
  b->p = NULL;
  return 0;
}

static int l_tostring(lua_State *L) {
  lcn_process *b = check_box(L);
  int64_t code;
  int signum;
  if (!b->p)
    lua_pushfstring(L, "coronet.process (closed): %p", (void *)b);
  else if (!cn_process_exit_status(b->p, &code, &signum))
    lua_pushfstring(L, "coronet.process (pid %d, running): %p", cn_process_pid(b->p), (void *)b);
  else if (signum)
    lua_pushfstring(L, "coronet.process (pid %d, killed by signal %d): %p", cn_process_pid(b->p), signum, (void *)b);
  else
    lua_pushfstring(L, "coronet.process (pid %d, exited %d): %p", cn_process_pid(b->p), (int)code, (void *)b);
  return 1;
}

int lcn_open_process(lua_State *L) {
  static const luaL_Reg methods[] = {{"pid", l_pid},   {"kill", l_kill},   {"exit_status", l_exit_status},
                                     {"wait", l_wait}, {"close", l_close}, {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", l_close}, {"__close", l_close}, {"__tostring", l_tostring}, {NULL, NULL}};
  lcn_new_class(L, LCN_C_PROCESS, methods, meta);
  static const luaL_Reg funcs[] = {{"spawn_process", l_spawn_process}, {NULL, NULL}};
  lcn_setfuncs(L, funcs);
  return 0;
}
