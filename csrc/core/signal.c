/* signal.c: one-shot signal watchers, for graceful shutdown on SIGTERM/SIGINT. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

struct cn_signal {
  uv_signal_t handle;
  cn__object obj;
  cn_loop *loop;
  cn_list waiters;
};

static void on_closed(uv_handle_t *handle) {
  cn_signal *sig = CN_CONTAINER_OF(handle, cn_signal, handle);
  cn__object_remove(sig->loop, &sig->obj);
  free(sig);
}

static void stop(cn_signal *sig, int status) {
  if (uv_is_closing((uv_handle_t *)&sig->handle)) return;
  cn__waiters_fire_all(&sig->waiters, status, 0);
  uv_close((uv_handle_t *)&sig->handle, on_closed);
}

static void on_signal(uv_signal_t *handle, int signum) { stop(CN_CONTAINER_OF(handle, cn_signal, handle), signum); }

/* A waiter detached by its owner leaves a watcher with nobody to tell: it closes at the next signal or loop close. */
static void close_for_loop(cn__object *obj, int abort) {
  (void)abort;
  cn_signal *sig = CN_CONTAINER_OF(obj, cn_signal, obj);
  if (uv_is_closing((uv_handle_t *)&sig->handle)) return;
  cn__waiters_fire_all(&sig->waiters, CN_ECLOSED, 1);
  uv_close((uv_handle_t *)&sig->handle, on_closed);
}

int cn_signal_wait(cn_loop *loop, int signum, cn_waiter *w, cn_signal **out) {
  cn_signal *sig = calloc(1, sizeof *sig);
  if (!sig) return UV_ENOMEM;
  uv_signal_init(cn_loop_uv(loop), &sig->handle);
  int rc = uv_signal_start_oneshot(&sig->handle, on_signal, signum);
  if (rc < 0) {
    uv_close((uv_handle_t *)&sig->handle, (uv_close_cb)free);
    return rc;
  }
  sig->loop = loop;
  cn_list_init(&sig->waiters);
  cn__object_add(loop, &sig->obj, close_for_loop);
  cn__waiter_attach(&sig->waiters, w, loop, 0);
  *out = sig;
  return 0;
}

/* w is linked only while it waits on sig, and sig closes only after its
 * waiters are unlinked: a linked w proves sig is alive and not closing. */
void cn_signal_cancel(cn_signal *sig, cn_waiter *w) {
  if (!cn_list_linked(&w->link_)) return;
  cn_list_remove(&w->link_);
  if (cn_list_empty(&sig->waiters)) uv_close((uv_handle_t *)&sig->handle, on_closed);
}

int cn_signal_number(const char *name) {
  static const struct {
    const char *name;
    int number;
  } table[] = {{"TERM", SIGTERM}, {"INT", SIGINT}, {"HUP", SIGHUP}, {"QUIT", SIGQUIT},
               {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"WINCH", SIGWINCH}};
  if (strncmp(name, "SIG", 3) == 0) name += 3;
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (strcmp(name, table[i].name) == 0) return table[i].number;
  return 0;
}
