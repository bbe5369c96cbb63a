/* signal.c: one-shot signal watchers, for graceful shutdown on SIGTERM/SIGINT. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

typedef struct cn_signal {
  uv_signal_t handle;
  cn__object obj;
  cn_loop *loop;
  cn_list waiters;
} cn_signal;

static void on_closed(uv_handle_t *handle) {
  cn_signal *sig = CN_CONTAINER_OF(handle, cn_signal, handle);
  cn__object_remove(sig->loop, &sig->obj);
  free(sig);
}

/* A watcher that failed to start was never in the live set. */
static void free_unstarted(uv_handle_t *handle) { free(CN_CONTAINER_OF(handle, cn_signal, handle)); }

/* The handle starts closing before any waiter hears of it: a woken fiber may
 * close everything (a graceful-shutdown handler), and must then find this
 * watcher already closing. The struct lives until on_closed, after this. */
static void stop(cn_signal *sig, int status, int later) {
  if (uv_is_closing((uv_handle_t *)&sig->handle)) return;
  uv_close((uv_handle_t *)&sig->handle, on_closed);
  cn__waiters_fire_all(&sig->waiters, status, later);
}

static void on_signal(uv_signal_t *handle, int signum) { stop(CN_CONTAINER_OF(handle, cn_signal, handle), signum, 0); }

static void close_for_loop(cn__object *obj, int abort) {
  (void)abort;
  stop(CN_CONTAINER_OF(obj, cn_signal, obj), CN_ECLOSED, 1);
}

/* Nobody waits any more: the watcher would only keep the loop alive. */
static void on_waiter_cancelled(void *owner) {
  cn_signal *sig = owner;
  if (cn_list_empty(&sig->waiters)) stop(sig, CN_ECLOSED, 1);
}

int cn_signal_wait(cn_loop *loop, int signum, cn_waiter *w) {
  cn_signal *sig = calloc(1, sizeof *sig);
  if (!sig) return UV_ENOMEM;
  int rc = uv_signal_init(cn_loop_uv(loop), &sig->handle);
  if (rc < 0) {
    free(sig);
    return rc;
  }
  rc = uv_signal_start_oneshot(&sig->handle, on_signal, signum);
  if (rc < 0) {
    uv_close((uv_handle_t *)&sig->handle, free_unstarted);
    return rc;
  }
  sig->loop = loop;
  cn_list_init(&sig->waiters);
  cn__object_add(loop, &sig->obj, close_for_loop);
  cn__waiter_attach(&sig->waiters, w, loop, 0);
  cn__waiter_on_cancel(w, on_waiter_cancelled, sig);
  return 0;
}

int cn_signal_number(const char *name) {
  static const struct {
    const char *name;
    int number;
  } table[] = {{"TERM", SIGTERM}, {"INT", SIGINT}, {"HUP", SIGHUP}, {"QUIT", SIGQUIT},
               {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"WINCH", SIGWINCH}, {"KILL", SIGKILL}};
  if (strncmp(name, "SIG", 3) == 0) name += 3;
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (strcmp(name, table[i].name) == 0) return table[i].number;
  return 0;
}
