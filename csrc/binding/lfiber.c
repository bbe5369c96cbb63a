/* lfiber.c: fibers. The only caller of lua_resume. A fiber is a Lua thread
 * with a small struct (its userdata) that the core's callbacks wake. It is
 * anchored in the registry from spawn until it dies, so a waiting fiber is
 * never collected; a waiter is resumed only while it still waits on that
 * operation, and only from a libuv callback or a task of the next turn. */
#include <string.h>
#include "lbinding.h"

#if LUA_VERSION_RELEASE_NUM >= 50406
#define lcn_closethread(co, from) lua_closethread(co, from)
#else
#define lcn_closethread(co, from) lua_resetthread(co)
#endif

/* The fiber L runs as: the one being resumed, if L is its thread. (The
 * thread's extra space is not ours to use: threads made before luaopen carry
 * whatever the host left there.) */
static lcn_fiber *fiber_of(lua_State *L) {
  lcn_fiber *f = lcn_ctx_get(L)->current;
  return f && f->co == L ? f : NULL;
}

static void resume(lcn_fiber *f, int nargs);

#define LCN_MAX_WAITS_AFTER_CANCEL 1000

/* A cancelled fiber's waits (and bare yields) return at once; one that
 * ignores that and keeps going would spin forever and keep run from ending,
 * so past a bound it is unwound with an error instead. */
static const char unwinding_msg[] = "coronet: this fiber was cancelled but keeps waiting (%d waits since): unwinding it";

static int unwind_if_ignoring_cancel(lua_State *L, lcn_fiber *f) {
  if (++f->waits_after_cancel <= LCN_MAX_WAITS_AFTER_CANCEL) return 0;
  return luaL_error(L, unwinding_msg, f->waits_after_cancel - 1);
}

lcn_fiber *lcn_fiber_current(lua_State *L) {
  lcn_fiber *f = fiber_of(L);
  if (f == NULL || f->co != L || f->state != LCN_RUNNING)
    luaL_error(L, "this call waits, so it must run in a coronet fiber: start one with coronet.spawn(fn) "
                  "or coronet.run(fn) (a coroutine made with coroutine.create cannot wait)");
  /* Checked before anything attaches: a failed yield would leave a waiter
   * pointing at a fiber that is not waiting (and later freed). */
  if (!lua_isyieldable(L))
    luaL_error(L, "coronet: this call waits, but the fiber cannot yield here: it runs inside a C function "
                  "(a table.sort comparator, a string.gsub callback, a metamethod, a load reader...); "
                  "wait outside it");
  /* Every call that returns "cancelled" counts, whichever path it takes. */
  if (f->cancelled) unwind_if_ignoring_cancel(L, f);
  return f;
}

static void on_wake(cn_waiter *w, int status);

/* Ends the current wait; the fiber may then be resumed once. */
static void end_wait(lcn_fiber *f, int status) {
  f->status = status;
  f->abort = NULL;
  f->parked = 0;
  f->ticket++;
  if (f->timer) cn_timer_stop(f->timer);
}

/* Detaches the fiber from what it waits on, so that no callback can wake it
 * (the core object hears of the cancel through the waiter). */
static void detach(lcn_fiber *f) {
  cn_waiter_cancel(&f->waiter);
  if (f->abort) f->abort(f);
  f->abort = NULL;
}

static void on_wake(cn_waiter *w, int status) {
  lcn_fiber *f = w->data;
  if (f->state != LCN_WAITING) return;
  end_wait(f, status);
  resume(f, 0);
}

/* A deadline that fires late (the loop was busy, e.g. a fiber computed past
 * it) has not seen the I/O that became ready meanwhile: libuv runs timers
 * before it polls. Such a deadline waits 1 ms more, once, so that the poll
 * delivers what is already there before the wait times out. */
#define LCN_LATE_MS 1

static void on_deadline(cn_timer *t, void *data) {
  lcn_fiber *f = data;
  if (f->state != LCN_WAITING) return;
  if (!f->graced && (lua_Integer)cn_loop_now(f->ctx->loop) > f->deadline + LCN_LATE_MS) {
    f->graced = 1;
    cn_timer_start(t, 1, on_deadline, f); /* not 0: libuv would run it again before polling */
    return;
  }
  detach(f);
  end_wait(f, CN_ETIMEOUT);
  resume(f, 0);
}

static void resume_task(cn_task *task) {
  lcn_fiber *f = (lcn_fiber *)((char *)task - offsetof(lcn_fiber, task));
  if (f->state == LCN_READY) resume(f, 0);
}

static void start_task(cn_task *task) {
  lcn_fiber *f = (lcn_fiber *)((char *)task - offsetof(lcn_fiber, task));
  if (f->state == LCN_NEW) resume(f, lua_gettop(f->co) - 1);
}

/* Makes a waiting fiber runnable on the next turn with `status`. */
static void wake_later(lcn_fiber *f, int status) {
  detach(f);
  end_wait(f, status);
  f->state = LCN_READY;
  cn_loop_post(f->ctx->loop, &f->task, resume_task);
}

/* Every wait resumes here first. Only lfiber's resume (which makes the
 * fiber current) may continue it: a stray coroutine.resume from Lua code
 * gets nil and a message and the fiber yields again, still waiting, so the
 * real wake-up arrives once, later. Values a resume passed are dropped. */
static int continue_k(lua_State *L, int status, lua_KContext kctx) {
  lcn_fiber *f = (lcn_fiber *)kctx;
  lua_settop(L, f->base);
  if (f->ctx->current != f) {
    lua_pushnil(L);
    lua_pushliteral(L, "coronet: this fiber waits in coronet, which alone resumes it "
                       "(a stray coroutine.resume is refused)");
    return lua_yieldk(L, 2, kctx, continue_k);
  }
  return f->k(L, status, f->kctx);
}

static int suspend(lua_State *L, lcn_fiber *f, lua_KFunction k, lua_KContext kctx) {
  f->k = k;
  f->kctx = kctx;
  f->base = lua_gettop(L);
  return lua_yieldk(L, 0, (lua_KContext)f, continue_k);
}

int lcn_fiber_wait(lua_State *L, lcn_fiber *f, lua_Integer deadline_ms, lcn_abort_fn abort, void *abort_data,
                   lua_KFunction k, lua_KContext kctx) {
  f->abort = abort;
  f->abort_data = abort_data;
  int early = f->cancelled ? CN_ECANCELLED : 0;
  lua_Integer now = (lua_Integer)cn_loop_now(f->ctx->loop);
  if (!early && deadline_ms >= 0 && deadline_ms <= now) early = CN_ETIMEOUT;
  if (early) { /* the outcome is known now: no yield */
    detach(f);
    end_wait(f, early);
    return k(L, LUA_OK, kctx);
  }
  if (deadline_ms >= 0) {
    if (!f->timer && cn_timer_new(f->ctx->loop, &f->timer) < 0) {
      detach(f);
      return luaL_error(L, "out of memory");
    }
    f->deadline = deadline_ms;
    f->graced = 0;
    cn_timer_start(f->timer, (uint64_t)(deadline_ms - now), on_deadline, f);
  }
  f->state = LCN_WAITING;
  return suspend(L, f, k, kctx);
}

int lcn_fiber_status(lua_State *L) { return fiber_of(L)->status; }

/* Loop time now, fresh: CPU work earlier in this turn does not shorten a deadline. */
static lua_Integer fresh_now(cn_loop *loop) {
  cn_loop_update_time(loop);
  return (lua_Integer)cn_loop_now(loop);
}

/* The continuation of a wait whose only result is success: true, or
 * nil, err, code naming `what` (a static string passed as the context). */
int lcn_true_k(lua_State *L, int status, lua_KContext what) {
  (void)status;
  int st = lcn_fiber_status(L);
  if (st < 0) return lcn_fail(L, st, (const char *)what, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

lua_Integer lcn_deadline(lua_State *L, int idx, double default_seconds) {
  if (default_seconds < 0 && lua_isnoneornil(L, idx)) return -1;
  double s = lcn_opt_seconds(L, idx, default_seconds);
  if (s < 0) return -1;
  return fresh_now(lcn_ctx_get(L)->loop) + lcn_ms(s);
}

/* Records the first uncaught error; the run raises it. */
void lcn_fiber_fail(lcn_ctx *ctx, lua_State *from, int idx) {
  if (ctx->failure_ref != LUA_NOREF) return;
  lua_pushvalue(from, idx);
  ctx->failure_ref = luaL_ref(from, LUA_REGISTRYINDEX);
  cn_loop_stop(ctx->loop);
}

static void finish(lcn_fiber *f) {
  lcn_ctx *ctx = f->ctx;
  f->state = LCN_DEAD;
  cn_list_remove(&f->link);
  if (f->timer) {
    cn_timer_close(f->timer);
    f->timer = NULL;
  }
  lua_settop(f->co, 0);
  luaL_unref(f->co, LUA_REGISTRYINDEX, f->ref);
  f->ref = LUA_NOREF;
  /* coronet.run checks after each pass whether its main fiber is done: end
   * the pass now rather than letting the loop block in poll first. */
  if (ctx->running) cn_loop_stop(ctx->loop);
}

/* Unwinds a cancelled fiber found at a bare yield: raises at the fiber's
 * next instruction, once. */
static void unwind_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "coronet: this fiber was cancelled but keeps yielding: unwinding it");
}

/* A bare coroutine.yield() in a fiber: it runs again next turn. It counts
 * as a wait, so a cancelled fiber polling this way is unwound too. */
static void after_bare_yield(lcn_fiber *f) {
  f->state = LCN_READY;
  /* (A fiber with a hook of its own, a debugger's, keeps it and is not unwound.) */
  if (f->cancelled && ++f->waits_after_cancel > LCN_MAX_WAITS_AFTER_CANCEL && lua_gethook(f->co) == NULL)
    lua_sethook(f->co, unwind_hook, LUA_MASKCOUNT, 1);
  cn_loop_post(f->ctx->loop, &f->task, resume_task);
}

static void resume(lcn_fiber *f, int nargs) {
  lua_State *co = f->co;
  lcn_ctx *ctx = f->ctx;
  lcn_fiber *outer = ctx->current; /* NULL: fibers are only resumed from the loop */
  int nres;
  if (f->state != LCN_NEW && lua_status(co) != LUA_YIELD) { /* a stray resume ran it to its end */
    finish(f);
    return;
  }
  f->state = LCN_RUNNING;
  ctx->current = f;
  int rc = lua_resume(co, NULL, nargs, &nres);
  ctx->current = outer;
  if (rc == LUA_YIELD) {
    lua_pop(co, nres);
    if (f->state == LCN_RUNNING) after_bare_yield(f);
    return;
  }
  if (rc != LUA_OK) {
    lcn_fiber_fail(f->ctx, co, -1);
    lcn_closethread(co, NULL); /* runs the fiber's pending <close> variables */
  }
  finish(f);
}

/* Pops a function and its nargs arguments; pushes the new fiber, which starts on the next turn. */
void lcn_spawn(lua_State *L, int nargs) {
  lcn_ctx *ctx = lcn_ctx_get(L);
  lcn_fiber *f = lua_newuserdatauv(L, sizeof *f, 1);
  memset(f, 0, sizeof *f);
  f->state = LCN_DEAD; /* closed until fully built: its __gc then does nothing */
  f->ref = LUA_NOREF;
  lcn_set_class(L, f, LCN_C_FIBER);
  lua_State *co = lua_newthread(L);
  lua_setiuservalue(L, -2, 1);
  lua_insert(L, -(nargs + 2)); /* fiber below the function and its arguments */
  lua_xmove(L, co, nargs + 1);
  f->co = co;
  f->ctx = ctx;
  cn_waiter_init(&f->waiter, on_wake, f);
  lua_pushvalue(L, -1);
  f->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  cn_list_push(&ctx->fibers, &f->link);
  f->state = LCN_NEW;
  cn_loop_post(ctx->loop, &f->task, start_task);
}

/* core.spawn(fn, ...) -> fiber: starts fn(...) on the next loop turn. */
static int l_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lcn_spawn(L, lua_gettop(L) - 1);
  return 1;
}

static lcn_fiber *check_fiber(lua_State *L, int idx) { return lcn_check(L, idx, LCN_C_FIBER); }

/* Cancellation comes from outside (fiber:cancel, sticky) or from a switch,
 * for the scope it opened in this fiber and until that scope closes (so the
 * switch's caller is not left cancelled). A protected section (a switch
 * waiting for its own fibers and resources) is reached by neither, except
 * from the scopes opened inside it: a switch run in a release function is
 * still cancelled by its own failure. */
#define LCN_MAX_SCOPES 64 /* one bit each in cancelled_scopes */

/* The bits of the scopes of depth 1..depth. */
static uint64_t scopes_upto(int depth) { return depth >= LCN_MAX_SCOPES ? ~(uint64_t)0 : ((uint64_t)1 << depth) - 1; }

static int cancel_wanted(const lcn_fiber *f) {
  return f->cancel_requested || (f->cancelled_scopes & scopes_upto(f->scope_depth)) != 0;
}

/* Whether a cancel reaches the fiber's waits, past its protected section. */
static int cancel_reaches(const lcn_fiber *f) {
  if (!f->shield) return cancel_wanted(f);
  return (f->cancelled_scopes & scopes_upto(f->scope_depth) & ~scopes_upto(f->shield - 1)) != 0;
}

static void update_cancelled(lcn_fiber *f) {
  f->cancelled = cancel_reaches(f);
  if (!f->cancelled) f->waits_after_cancel = 0; /* a scope's cancel ended: a fresh count next time */
  if (f->cancelled && f->state == LCN_WAITING) wake_later(f, CN_ECANCELLED);
}

static void cancel(lcn_fiber *f) {
  f->cancel_requested = 1;
  update_cancelled(f);
}

/* fiber:cancel(): the current wait and every later one return "cancelled". */
static int l_cancel(lua_State *L) {
  cancel(check_fiber(L, 1));
  return 0;
}

/* fiber:interrupt(ticket) -> bool: ends that one wait with "cancelled" (not sticky). */
static int l_interrupt(lua_State *L) {
  lcn_fiber *f = check_fiber(L, 1);
  lua_Integer ticket = luaL_checkinteger(L, 2);
  int ok = f->state == LCN_WAITING && f->ticket == ticket;
  if (ok) wake_later(f, CN_ECANCELLED);
  lua_pushboolean(L, ok);
  return 1;
}

/* fiber:is_cancelled(): cancelled from outside, or within a cancelled scope. */
static int l_is_cancelled(lua_State *L) {
  lua_pushboolean(L, cancel_wanted(check_fiber(L, 1)));
  return 1;
}

/* The running fiber, for the scope calls (which never wait). */
static lcn_fiber *running_fiber(lua_State *L) {
  lcn_fiber *f = fiber_of(L);
  if (!f || f->state != LCN_RUNNING) luaL_error(L, "coronet: a switch must run in a coronet fiber (coronet.spawn)");
  return f;
}

/* core.scope_open() -> depth: opens a cancel scope in the running fiber. */
static int l_scope_open(lua_State *L) {
  lcn_fiber *f = running_fiber(L);
  if (f->scope_depth >= LCN_MAX_SCOPES) return luaL_error(L, "coronet.switch: more than %d switches nested in one fiber", LCN_MAX_SCOPES);
  lua_pushinteger(L, ++f->scope_depth);
  return 1;
}

/* core.scope_close(depth): closes the innermost scope, which must be depth;
 * a cancel of that scope ends with it. */
static int l_scope_close(lua_State *L) {
  lcn_fiber *f = running_fiber(L);
  luaL_argcheck(L, luaL_checkinteger(L, 1) == f->scope_depth && f->scope_depth > 0, 1, "not the innermost scope");
  f->scope_depth--;
  f->cancelled_scopes &= scopes_upto(f->scope_depth);
  update_cancelled(f);
  return 0;
}

/* fiber:cancel_scope(depth): cancels the fiber's waits while the scope of
 * that depth is open (a scope already closed is ignored). */
static int l_cancel_scope(lua_State *L) {
  lcn_fiber *f = check_fiber(L, 1);
  lua_Integer depth = luaL_checkinteger(L, 2);
  if (depth < 1 || depth > f->scope_depth) return 0;
  f->cancelled_scopes |= (uint64_t)1 << (depth - 1);
  update_cancelled(f);
  return 0;
}

/* core.protect(true) -> token: enters a protected section of the running
 * fiber, which shields it from cancels from outside and from the scopes
 * already open; core.protect(false, token) leaves it. Sections nest. */
static int l_protect(lua_State *L) {
  lcn_fiber *f = running_fiber(L);
  if (lua_toboolean(L, 1)) {
    lua_pushinteger(L, f->shield);
    f->shield = f->scope_depth + 1;
  } else {
    lua_Integer token = luaL_checkinteger(L, 2);
    luaL_argcheck(L, f->shield > 0 && token >= 0 && token < f->shield, 2, "no protected section is open");
    f->shield = (int)token;
  }
  update_cancelled(f);
  return lua_toboolean(L, 1);
}

static int l_is_dead(lua_State *L) {
  lua_pushboolean(L, check_fiber(L, 1)->state == LCN_DEAD);
  return 1;
}

/* fiber:ticket() -> the number of the wait the fiber is in (or will enter next). */
static int l_ticket(lua_State *L) {
  lua_pushinteger(L, check_fiber(L, 1)->ticket);
  return 1;
}

/* core.unpark(fiber, ticket) -> bool: wakes a fiber parked in that wait, on the next turn. */
static int l_unpark(lua_State *L) {
  lcn_fiber *f = check_fiber(L, 1);
  lua_Integer ticket = luaL_checkinteger(L, 2);
  int ok = f->state == LCN_WAITING && f->parked && f->ticket == ticket;
  if (ok) wake_later(f, 0);
  lua_pushboolean(L, ok);
  return 1;
}

static int park_k(lua_State *L, int status, lua_KContext kctx) {
  (void)status;
  int st = lcn_fiber_status(L);
  if (kctx && st == CN_ETIMEOUT) st = 0; /* a sleep ends by its deadline */
  if (st < 0) return lcn_fail(L, st, kctx ? "sleep" : "wait", NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.park([timeout]) -> true | nil, err, code: waits until core.unpark. */
static int l_park(lua_State *L) {
  lcn_fiber *f = lcn_fiber_current(L);
  lua_Integer deadline = lcn_deadline(L, 1, -1);
  f->parked = 1;
  return lcn_fiber_wait(L, f, deadline, NULL, NULL, park_k, 0);
}

/* core.sleep(seconds) -> true | nil, err, "cancelled". sleep(0) yields to
 * the other fibers ready this turn. */
static int l_sleep(lua_State *L) {
  lua_Integer ms = lcn_ms(lcn_check_seconds(L, 1));
  lcn_fiber *f = lcn_fiber_current(L);
  if (ms == 0 && !f->cancelled) {
    wake_later(f, CN_ETIMEOUT);
    return suspend(L, f, park_k, 1);
  }
  lua_Integer deadline = ms < 0 ? -1 : fresh_now(f->ctx->loop) + ms; /* -1: until cancelled */
  return lcn_fiber_wait(L, f, deadline, NULL, NULL, park_k, 1);
}

/* core.current() -> the running fiber, or nil outside one. */
static int l_current(lua_State *L) {
  lcn_fiber *f = fiber_of(L);
  if (f && f->co == L && f->ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, f->ref);
  } else {
    lua_pushnil(L);
  }
  return 1;
}

void lcn_fibers_cancel_all(lcn_ctx *ctx) {
  for (cn_list *link = ctx->fibers.next; link != &ctx->fibers; link = link->next)
    cancel((lcn_fiber *)((char *)link - offsetof(lcn_fiber, link)));
}

static int l_cancel_all(lua_State *L) {
  lcn_fibers_cancel_all(lcn_ctx_get(L));
  return 0;
}

static int l_fiber_count(lua_State *L) {
  lcn_ctx *ctx = lcn_ctx_get(L);
  lua_Integer n = 0;
  for (cn_list *link = ctx->fibers.next; link != &ctx->fibers; link = link->next) n++;
  lua_pushinteger(L, n);
  return 1;
}

/* Only when the state closes can a live fiber be collected: detach it from the core. */
static int l_fiber_gc(lua_State *L) {
  lcn_fiber *f = check_fiber(L, 1);
  if (f->state == LCN_DEAD) return 0;
  detach(f);
  cn_loop_unpost(f->ctx->loop, &f->task);
  if (f->timer) cn_timer_close(f->timer);
  f->timer = NULL;
  cn_list_remove(&f->link);
  f->state = LCN_DEAD;
  return 0;
}

static int l_fiber_tostring(lua_State *L) {
  static const char *const names[] = {"new", "running", "waiting", "ready", "dead"};
  lcn_fiber *f = check_fiber(L, 1);
  lua_pushfstring(L, "coronet.fiber (%s%s): %p", names[f->state], f->cancelled ? ", cancelled" : "", (void *)f);
  return 1;
}

int lcn_open_fiber(lua_State *L) {
  static const luaL_Reg methods[] = {{"cancel", l_cancel},       {"is_cancelled", l_is_cancelled}, {"interrupt", l_interrupt},
                                     {"is_dead", l_is_dead},     {"ticket", l_ticket},        {"cancel_scope", l_cancel_scope},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", l_fiber_gc}, {"__tostring", l_fiber_tostring}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"spawn", l_spawn},         {"park", l_park},
                                   {"unpark", l_unpark},       {"sleep", l_sleep},
                                   {"current", l_current},     {"cancel_all", l_cancel_all},
                                   {"fiber_count", l_fiber_count}, {"scope_open", l_scope_open},
                                   {"scope_close", l_scope_close}, {"protect", l_protect},
                                   {NULL, NULL}};
  lcn_new_class(L, LCN_C_FIBER, methods, meta);
  lcn_setfuncs(L, funcs);
  return 0;
}
