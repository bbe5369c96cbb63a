/* timer.c: one-shot timers over uv_timer_t, shared by sleeps, deadlines,
 * buffer age limits and close timeouts. */
#include <stdlib.h>
#include "internal.h"

struct cn_timer {
  uv_timer_t handle;
  cn_loop *loop;
  cn_timer_cb cb;
  void *data;
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

static void on_fire(uv_timer_t *handle) {
  cn_timer *t = CN_CONTAINER_OF(handle, cn_timer, handle);
  t->cb(t, t->data);
}

void cn_timer_start(cn_timer *t, uint64_t ms, cn_timer_cb cb, void *data) {
  CN_ASSERT(!uv_is_closing((uv_handle_t *)&t->handle));
  t->cb = cb;
  t->data = data;
  int rc = uv_timer_start(&t->handle, on_fire, ms, 0);
  CN_ASSERT(rc == 0); /* fails only for a closing handle or no callback */
  (void)rc;
}

void cn_timer_stop(cn_timer *t) { uv_timer_stop(&t->handle); }

void cn_timer_close(cn_timer *t) {
  if (uv_is_closing((uv_handle_t *)&t->handle)) return;
  uv_close((uv_handle_t *)&t->handle, on_closed);
}
