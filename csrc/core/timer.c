/* timer.c: one-shot timers over uv_timer_t, shared by sleeps, deadlines,
 * buffer age limits and close timeouts. */
#include <stdlib.h>
#include "internal.h"

struct cn_timer {
  uv_timer_t handle;
  cn_loop *loop;
  cn_timer_cb cb;
  void *data;
  uint64_t due;    /* loop time (ms) it is due at, to measure the loop's lag */
};

/* Timers belong to their owner (a fiber, a writer, a connect operation),
 * not to the loop's live set: the owner closes them. */
static void on_closed(uv_handle_t *handle) { free(CN_CONTAINER_OF(handle, cn_timer, handle)); }

int cn_timer_new(cn_loop *loop, cn_timer **out) {
  cn_timer *t = calloc(1, sizeof *t);
  if (!t) return UV_ENOMEM;
  int rc = uv_timer_init(cn_loop_uv(loop), &t->handle);
  if (rc < 0) {
    free(t);
    return rc;
  }
  t->loop = loop;
  *out = t;
  return 0;
}

static int is_pending(const cn_timer *t) { return uv_is_active((const uv_handle_t *)&t->handle); }

/* The timer left the pending gauge (fired, stopped or closed). */
static void forget(cn_timer *t) {
  cn_loop_stats *st = cn__loop_stats(t->loop);
  CN_ASSERT(st->timers_pending > 0);
  st->timers_pending--;
}

/* libuv runs timers with the loop time updated at the start of the turn, so
 * now - due is how long the loop was kept from turning: its lag. */
static void on_fire(uv_timer_t *handle) {
  cn_timer *t = CN_CONTAINER_OF(handle, cn_timer, handle);
  uint64_t now = cn_loop_now(t->loop);
  forget(t);
  cn__loop_note_lag(t->loop, now, now > t->due ? now - t->due : 0);
  t->cb(t, t->data);
}

void cn_timer_start(cn_timer *t, uint64_t ms, cn_timer_cb cb, void *data) {
  CN_ASSERT(!uv_is_closing((uv_handle_t *)&t->handle));
  t->cb = cb;
  t->data = data;
  if (!is_pending(t)) cn__loop_stats(t->loop)->timers_pending++;
  t->due = cn_loop_now(t->loop) + ms;
  int rc = uv_timer_start(&t->handle, on_fire, ms, 0);
  CN_ASSERT(rc == 0); /* fails only for a closing handle or no callback */
  (void)rc;
}

void cn_timer_stop(cn_timer *t) {
  if (is_pending(t)) forget(t);
  uv_timer_stop(&t->handle);
}

void cn_timer_close(cn_timer *t) {
  if (uv_is_closing((uv_handle_t *)&t->handle)) return;
  if (is_pending(t)) forget(t);
  uv_close((uv_handle_t *)&t->handle, on_closed);
}
