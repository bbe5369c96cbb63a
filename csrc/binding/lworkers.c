/* lworkers.c: worker states for the parallel server (coronet.net_workers).
 * A worker is an OS thread with a Lua state and a loop of its own; it talks
 * to the state that started it only through channels (the core's
 * cn_channel), whose messages are strings. Lua values never cross states. */
#include <stdlib.h>
#include <string.h>
#include <lualib.h>
#include "lbinding.h"

#define LCN_CHANNEL "coronet.channel"
#define LCN_WORKER "coronet.worker"

typedef struct {
  cn_channel *ch; /* NULL once released */
} channel_box;

/* What a worker thread needs; it owns this block and frees it at its end. */
typedef struct {
  lua_Integer id;
  char *config, *path, *cpath; /* copies: the starting state may be gone */
  cn_channel *to_main, *inbox; /* a reference each */
} worker_args;

typedef struct {
  cn_thread *thread; /* NULL once joined */
  cn_channel *inbox; /* a reference, to ask a worker still running to abort */
} worker_box;

static channel_box *check_channel(lua_State *L, int idx) {
  channel_box *b = luaL_checkudata(L, idx, LCN_CHANNEL);
  if (!b->ch) luaL_error(L, "channel was released");
  return b;
}

/* Pushes a box holding a new reference to ch. */
static void push_channel(lua_State *L, cn_channel *ch) {
  channel_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->ch = NULL;
  luaL_setmetatable(L, LCN_CHANNEL);
  cn_channel_ref(ch);
  b->ch = ch;
}

/* core.channel() -> a new channel. */
static int l_channel(lua_State *L) {
  channel_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->ch = NULL;
  luaL_setmetatable(L, LCN_CHANNEL);
  int rc = cn_channel_new(&b->ch);
  if (rc < 0) return luaL_error(L, "coronet: cannot make a channel: %s", cn_strerror(rc));
  return 1;
}

/* channel:send(string): never waits; any number of states may send. */
static int l_send(lua_State *L) {
  channel_box *b = check_channel(L, 1);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  int rc = cn_channel_send(b->ch, p, n);
  if (rc < 0) return luaL_error(L, "coronet: channel send failed: %s", cn_strerror(rc));
  return 0;
}

/* Pushes the oldest message and returns 1, or returns 0 if none is queued. */
static int push_message(lua_State *L, cn_channel *ch) {
  char *p;
  size_t n;
  int rc = cn_channel_take(ch, &p, &n);
  if (rc == UV_EAGAIN) return 0;
  if (rc < 0) return luaL_error(L, "coronet: channel receive failed: %s", cn_strerror(rc));
  lua_pushlstring(L, p, n); /* on a memory error p leaks once: the state is failing anyway */
  free(p);
  return 1;
}

static int receive_k(lua_State *L, int status, lua_KContext kctx) {
  (void)status;
  int st = lcn_fiber_status(L);
  if (st < 0) return lcn_fail(L, st, "channel receive", NULL);
  if (push_message(L, check_channel(L, (int)kctx)->ch)) return 1;
  return lcn_fail(L, CN_ECLOSED, "channel receive", NULL); /* another taker emptied it */
}

/* channel:receive([timeout]) -> string, or nil, err, code ("timeout",
 * "cancelled", "busy" while another fiber waits on it). */
static int l_receive(lua_State *L) {
  channel_box *b = check_channel(L, 1);
  if (push_message(L, b->ch)) return 1;
  lcn_fiber *f = lcn_fiber_current(L);
  lua_Integer deadline = lcn_deadline(L, 2, -1);
  int rc = cn_channel_wait(b->ch, f->ctx->loop, &f->waiter);
  if (rc < 0) return lcn_fail(L, rc, "channel receive", NULL);
  return lcn_fiber_wait(L, f, deadline, NULL, NULL, receive_k, 1);
}

/* channel:try_receive() -> the oldest message, or nil. */
static int l_try_receive(lua_State *L) {
  if (push_message(L, check_channel(L, 1)->ch)) return 1;
  lua_pushnil(L);
  return 1;
}

static int l_channel_gc(lua_State *L) {
  channel_box *b = luaL_checkudata(L, 1, LCN_CHANNEL);
  if (b->ch) cn_channel_unref(b->ch);
  b->ch = NULL;
  return 0;
}

/* ------------------------------------------------------------ worker side */

static void set_path(lua_State *L, const char *field, const char *value) {
  lua_getglobal(L, "package");
  lua_pushstring(L, value);
  lua_setfield(L, -2, field);
  lua_pop(L, 1);
}

/* In the worker's state: require("coronet.net_workers").worker_main(id, config, to_main, inbox). */
static int run_worker(lua_State *L) {
  worker_args *a = lua_touserdata(L, 1);
  set_path(L, "path", a->path);
  set_path(L, "cpath", a->cpath);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "coronet.net_workers");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "worker_main");
  lua_pushinteger(L, a->id);
  lua_pushstring(L, a->config);
  push_channel(L, a->to_main);
  push_channel(L, a->inbox);
  lua_call(L, 4, 0);
  return 0;
}

/* Sends "<kind>\n<id>\n<text>": the messages the C side of a worker sends
 * (Lua's own messages are built in coronet.net_workers). */
static void send_plain(worker_args *a, const char *kind, const char *text) {
  char head[64];
  int n = snprintf(head, sizeof head, "%s\n%lld\n", kind, (long long)a->id);
  size_t len = strlen(text);
  char *msg = malloc((size_t)n + len);
  if (!msg) return;
  memcpy(msg, head, (size_t)n);
  memcpy(msg + n, text, len);
  cn_channel_send(a->to_main, msg, (size_t)n + len);
  free(msg);
}

static void free_args(worker_args *a) {
  if (a->to_main) cn_channel_unref(a->to_main);
  if (a->inbox) cn_channel_unref(a->inbox);
  free(a->config);
  free(a->path);
  free(a->cpath);
  free(a);
}

/* The thread's body. Whatever happens, the main state hears "exited" last. */
static void worker_main(void *arg) {
  worker_args *a = arg;
  lua_State *L = luaL_newstate();
  if (!L) {
    send_plain(a, "crashed", "cannot make a Lua state: out of memory");
  } else {
    luaL_openlibs(L);
    lua_pushcfunction(L, run_worker);
    lua_pushlightuserdata(L, a);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
      const char *msg = lua_tostring(L, -1);
      send_plain(a, "crashed", msg ? msg : "(error object is not a string)");
    }
    lua_close(L);
  }
  send_plain(a, "exited", "");
  free_args(a);
}

static char *copy_string(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

static const char *package_field(lua_State *L, const char *field) {
  lua_getglobal(L, "package");
  const char *s = lua_istable(L, -1) ? (lua_getfield(L, -1, field), lua_tostring(L, -1)) : NULL;
  return s ? s : "";
}

/* core.worker_start(id, config, to_main, inbox) -> worker: a thread whose new
 * Lua state (standard libraries, this state's package.path and cpath) runs
 * coronet.net_workers.worker_main(id, config, to_main, inbox). */
static int l_worker_start(lua_State *L) {
  lua_Integer id = luaL_checkinteger(L, 1);
  const char *config = luaL_checkstring(L, 2);
  channel_box *to_main = check_channel(L, 3), *inbox = check_channel(L, 4);
  worker_box *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->thread = NULL;
  box->inbox = NULL;
  luaL_setmetatable(L, LCN_WORKER);
  int top = lua_gettop(L);
  worker_args *a = calloc(1, sizeof *a);
  if (!a) return luaL_error(L, "out of memory");
  a->id = id;
  a->config = copy_string(config);
  a->path = copy_string(package_field(L, "path"));
  a->cpath = copy_string(package_field(L, "cpath"));
  lua_settop(L, top);
  cn_channel_ref(a->to_main = to_main->ch);
  cn_channel_ref(a->inbox = inbox->ch);
  int rc = a->config && a->path && a->cpath ? cn_thread_start(&box->thread, worker_main, a) : UV_ENOMEM;
  if (rc < 0) {
    free_args(a);
    return luaL_error(L, "coronet: cannot start a worker thread: %s", cn_strerror(rc));
  }
  cn_channel_ref(box->inbox = inbox->ch);
  return 1;
}

/* worker:join(): waits, blocking this thread, until the worker's thread has
 * ended (call it after its "exited" message: then it returns at once). */
static int l_worker_join(lua_State *L) {
  worker_box *box = luaL_checkudata(L, 1, LCN_WORKER);
  if (box->thread) cn_thread_join(box->thread);
  box->thread = NULL;
  return 0;
}

/* A worker collected while its thread runs (its starting state closes
 * without having stopped it: a host that drives the loop itself) is asked to
 * abort first, then joined: the join waits only for its close, unless its
 * handler computes without ever yielding. */
static int l_worker_gc(lua_State *L) {
  worker_box *box = luaL_checkudata(L, 1, LCN_WORKER);
  if (box->thread) {
    static const char abort_msg[] = "abort";
    cn_channel_send(box->inbox, abort_msg, sizeof abort_msg - 1);
    cn_thread_join(box->thread);
    box->thread = NULL;
  }
  if (box->inbox) cn_channel_unref(box->inbox);
  box->inbox = NULL;
  return 0;
}

int lcn_open_workers(lua_State *L) {
  static const luaL_Reg channel_methods[] = {
      {"send", l_send}, {"receive", l_receive}, {"try_receive", l_try_receive}, {NULL, NULL}};
  static const luaL_Reg worker_methods[] = {{"join", l_worker_join}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"channel", l_channel}, {"worker_start", l_worker_start}, {NULL, NULL}};
  luaL_newmetatable(L, LCN_CHANNEL);
  lua_pushcfunction(L, l_channel_gc);
  lua_setfield(L, -2, "__gc");
  lua_newtable(L);
  lcn_setfuncs(L, channel_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newmetatable(L, LCN_WORKER);
  lua_pushcfunction(L, l_worker_gc);
  lua_setfield(L, -2, "__gc");
  lua_newtable(L);
  lcn_setfuncs(L, worker_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lcn_setfuncs(L, funcs);
  return 0;
}
