/* lbinding.h: internal to the Lua binding. The binding checks arguments,
 * calls the core and waits; it calls no uv_* function. */
#ifndef LCN_BINDING_H
#define LCN_BINDING_H

#include <lauxlib.h>
#include <lua.h>
#include "coronet.h"
#include "list.h" /* header-only intrusive list, shared with the core */

#define LCN_FIBER "coronet.fiber"
#define LCN_SOCKET "coronet.socket"
#define LCN_READER "coronet.reader"
#define LCN_WRITER "coronet.writer"
#define LCN_SERVER "coronet.server"
#define LCN_ADDRESS "coronet.address"
#define LCN_CONNECT "coronet.connect"
#define LCN_ERROR "coronet.error"
#define LCN_DATAGRAM "coronet.datagram_socket"
#define LCN_PROCESS "coronet.process"

/* Classes, checked by the tag at the start of every box (no string lookup
 * and no metatable fetch per call). */
enum { LCN_C_FIBER, LCN_C_SOCKET, LCN_C_READER, LCN_C_WRITER, LCN_C_SERVER, LCN_C_ADDRESS, LCN_C_CONNECT, LCN_C_DATAGRAM, LCN_C_PROCESS, LCN_C_COUNT };

/* The first member of every box of a class above: the address of that
 * class's entry in lcoronet.c's class_tags, set by lcn_set_class. Only C code can
 * write a pointer into a userdata, and only ours knows these addresses, so a
 * foreign userdata cannot pass for one of ours. */
typedef const char *lcn_tag;

/* Per lua_State context, stored in the registry under lcn_ctx_key. */
typedef struct lcn_ctx {
  cn_loop *loop;
  lua_State *L;       /* the main thread */
  cn_list fibers;     /* every fiber not yet dead */
  int running;        /* inside coronet.run */
  int failure_ref;    /* registry ref of the first uncaught error, or LUA_NOREF */
  int logger_ref;     /* registry ref of the logger function, or LUA_NOREF */
  int closed;         /* the context was finalized (lua_close): guards a second __gc */
  lua_State *logger;  /* the thread the logger runs on, anchored by logger_thread_ref */
  int logger_thread_ref;
  cn_timer *step_timer; /* bounds coronet.step(timeout); created on first use */
  struct lcn_fiber *current; /* the fiber being resumed, if any */
} lcn_ctx;

struct lcn_fiber;
/* Detaches a fiber from the core operation it waits on (timeout, cancel). */
typedef void (*lcn_abort_fn)(struct lcn_fiber *f);

enum { LCN_NEW, LCN_RUNNING, LCN_WAITING, LCN_READY, LCN_DEAD };

typedef struct lcn_fiber {
  lcn_tag tag;
  cn_waiter waiter;   /* the core operation this fiber waits on */
  cn_task task;       /* a deferred start or resume */
  cn_list link;       /* in ctx->fibers while alive */
  cn_timer *timer;    /* deadline or sleep, created on first use */
  lcn_ctx *ctx;
  lua_State *co;
  lcn_abort_fn abort;
  void *abort_data;
  int ref;            /* registry anchor from spawn until death */
  int state;
  int status;         /* the outcome the continuation reads */
  int cancelled;      /* what every wait reads: requested or scoped, and not protected */
  int cancel_requested; /* fiber:cancel(), sticky */
  int scope_depth;    /* cancel scopes open in this fiber (switches) */
  uint64_t cancelled_scopes; /* bit d-1 set: the scope of depth d is cancelled */
  int shield;         /* 0, or 1 + the scope depth the innermost protected section began at */
  int parked;         /* waiting in coronet's park (deferreds, sleep) */
  lua_Integer ticket; /* increments whenever a wait ends */
  int waits_after_cancel;
  /* The wait in progress: its continuation and context, the stack top when
   * it yielded, its deadline, and whether that deadline got its grace poll. */
  lua_KFunction k;
  lua_KContext kctx;
  int base;
  lua_Integer deadline;
  int graced;
} lcn_fiber;

/* A connection as Lua sees it: the socket userdata. The reader and writer
 * userdata point here and keep it alive through their user value. */
typedef struct lcn_conn {
  lcn_tag tag;
  cn_stream *s;       /* NULL once released */
  double connect_timeout, read_timeout, write_timeout; /* seconds; < 0 means none */
} lcn_conn;

typedef struct lcn_half {
  lcn_tag tag;
  lcn_conn *conn;
  int closed; /* this half was closed through this object */
} lcn_half;

/* lcoronet.c */
/* The context: the upvalue every binding function carries (registry fallback). */
lcn_ctx *lcn_ctx_get(lua_State *L);
/* The userdata at idx if it is of class cls; raises (check) or returns NULL (test). */
void *lcn_check(lua_State *L, int idx, int cls);
void *lcn_test(lua_State *L, int idx, int cls);
/* Makes the new box on the stack's top, whose first member is an lcn_tag, a
 * box of class cls: writes its tag and sets its metatable. */
void lcn_set_class(lua_State *L, void *box, int cls);
/* luaL_setfuncs with the context as the one upvalue. */
void lcn_setfuncs(lua_State *L, const luaL_Reg *funcs);

/* lfiber.c */
int lcn_open_fiber(lua_State *L);
/* The running fiber, checked for a wait: every waiting call calls this
 * before it attaches a waiter or starts a core operation. Raises a clear
 * error if L is not a coronet fiber (naming coronet.spawn) or cannot yield
 * here (a C boundary such as a table.sort comparator), and unwinds a
 * cancelled fiber that keeps waiting. */
lcn_fiber *lcn_fiber_current(lua_State *L);
/* Suspends the running fiber whose waiter is attached to a core operation.
 * `deadline_ms` is absolute loop time, or < 0 for none. The continuation
 * runs only when lfiber resumes the fiber (a stray coroutine.resume is
 * refused before it) and reads the outcome with lcn_fiber_status. */
int lcn_fiber_wait(lua_State *L, lcn_fiber *f, lua_Integer deadline_ms, lcn_abort_fn abort, void *abort_data,
                   lua_KFunction k, lua_KContext kctx);
int lcn_fiber_status(lua_State *L);
/* The continuation for waits that give true, or nil, err, code naming
 * `what` (a static string cast to lua_KContext). */
int lcn_true_k(lua_State *L, int status, lua_KContext what);
/* Loop time in ms after `seconds` (nil or false: none, giving -1), counted
 * from the time now, not from the loop's cached time. */
lua_Integer lcn_deadline(lua_State *L, int idx, double default_seconds);
void lcn_fibers_cancel_all(lcn_ctx *ctx);
void lcn_spawn(lua_State *L, int nargs);
void lcn_fiber_fail(lcn_ctx *ctx, lua_State *from, int idx);

/* lerror.c */
/* Pushes nil, err, code for a negative core code; `what` and `addr` build the message. Returns 3. */
int lcn_fail(lua_State *L, int err, const char *what, const cn_addr *addr);
int lcn_fail_stream(lua_State *L, int err, const char *what, cn_stream *s);
void lcn_push_error(lua_State *L, int err, const char *what, const cn_addr *addr);
/* Adds why (a cause the code alone does not tell: OpenSSL's reason) to the
 * message of the error value at idx, after its code; nothing if "" or NULL. */
void lcn_error_add_detail(lua_State *L, int idx, const char *detail);
int lcn_open_error(lua_State *L);

/* laddr.c */
void lcn_push_address(lua_State *L, const cn_addr *a);
/* Copies the address value at idx into *out; raises if it is not one. */
void lcn_check_address(lua_State *L, int idx, cn_addr *out);
int lcn_open_address(lua_State *L);

/* lstream.c, lreader.c, lwriter.c */
/* Pushes a socket box holding no stream yet (liolib's newprefile): make it
 * before the stream, then store the stream in ->s, so that a memory error
 * while making the box cannot leak a stream. */
lcn_conn *lcn_new_conn(lua_State *L);
/* Pushes a socket box for s, taking over the reference (if making the box
 * fails, s leaks: prefer lcn_new_conn before making the stream). */
void lcn_push_conn(lua_State *L, cn_stream *s);
lcn_conn *lcn_check_conn(lua_State *L, int idx);
/* Remembers the peer's address for error messages after the socket closed. */
void lcn_conn_set_peer(lua_State *L, int conn_idx, const cn_addr *peer);
/* The same with an address value already on the stack (values are immutable, so it is shared). */
void lcn_conn_keep_peer(lua_State *L, int conn_idx, int addr_idx);
int lcn_conn_push_peer(lua_State *L, int idx);
cn_stream *lcn_conn_stream(lua_State *L, lcn_conn *c);
/* Reads the stream options in the table at idx (none: all defaults), raising
 * "<fn>: option '<name>' must be ..." on a bad value. */
void lcn_read_stream_opts(lua_State *L, int idx, const char *fn, cn_stream_opts *o);
/* The integer option `name` of the table at idx: 1..max, or 0 when absent. */
lua_Integer lcn_opt_count(lua_State *L, int idx, const char *fn, const char *name, lua_Integer max);
/* Pushes the reader or writer of the socket at idx. */
void lcn_push_half(lua_State *L, int conn_idx, int cls);
int lcn_open_stream(lua_State *L);
int lcn_open_reader(lua_State *L);
int lcn_open_writer(lua_State *L);

/* lconnect.c, lserver.c, ltimer.c */
int lcn_open_connect(lua_State *L);
int lcn_open_server(lua_State *L);
int lcn_open_timer(lua_State *L);
/* lpoll.c: readiness of descriptors of the user's */
int lcn_open_poll(lua_State *L);
/* ldns.c, ludp.c */
int lcn_open_dns(lua_State *L);
int lcn_open_udp(lua_State *L);
/* lprocess.c: child processes with piped stdin and stdout */
int lcn_open_process(lua_State *L);
/* lworkers.c: channels and worker threads for coronet.net_workers */
int lcn_open_workers(lua_State *L);
/* ltls.c: TLS contexts, starttls and tls_info (coronet.tls) */
int lcn_open_tls(lua_State *L);

/* Registers class cls: a metatable with the metamethods and __index = methods. */
void lcn_new_class(lua_State *L, int cls, const luaL_Reg *methods, const luaL_Reg *meta);
/* Durations in seconds: a number >= 0 (NaN and negatives raise); from
 * LCN_MAX_SECONDS up (math.huge included) they mean none, giving -1.
 * opt: nil gives def, false gives -1 (none). */
#define LCN_MAX_SECONDS 2147483647.0 /* about 68 years */
double lcn_check_seconds(lua_State *L, int idx);
double lcn_opt_seconds(lua_State *L, int idx, double def);
/* Raises "<fn>: option '<name>' must be a number of seconds >= 0, or false
 * for none (got ...)" unless the value at idx (an option's) is nil, false or
 * such a number. */
void lcn_check_opt_seconds(lua_State *L, int idx, const char *fn, const char *name);
/* opts[name] of the table at idx as a bound for the core in milliseconds,
 * where 0 means none: nil, false and LCN_MAX_SECONDS or more give 0, any
 * other duration at least 1 ms. A bad value raises naming fn and the option. */
uint64_t lcn_opt_bound_ms(lua_State *L, int idx, const char *fn, const char *name);
/* Whole milliseconds of a checked duration, rounded; -1 stays -1 (none). */
lua_Integer lcn_ms(double seconds);

#endif
