/* poll.c: one-shot readiness watchers over descriptors of the caller's,
 * for Procord's waiter_custom. Modelled on signal.c: the watcher frees
 * itself once it fired or nobody waits any more. */
#include <fcntl.h>
#include <stdlib.h>
#include "internal.h"

#define ALL_EVENTS (UV_READABLE | UV_WRITABLE | UV_PRIORITIZED)

typedef struct cn_poll {
  uv_poll_t handle;
  cn__object obj;
  cn_loop *loop;
  cn_list waiters;
  int events;
} cn_poll;

static void on_closed(uv_handle_t *handle) {
  cn_poll *p = CN_CONTAINER_OF(handle, cn_poll, handle);
  cn__object_remove(p->loop, &p->obj);
  free(p);
}

/* A watcher that failed to start was never in the live set. */
static void free_unstarted(uv_handle_t *handle) { free(CN_CONTAINER_OF(handle, cn_poll, handle)); }

/* The handle starts closing before the waiter hears: a woken fiber may
 * close everything, and must find this watcher already closing. */
static void stop(cn_poll *p, int status, int later) {
  if (uv_is_closing((uv_handle_t *)&p->handle)) return;
  uv_close((uv_handle_t *)&p->handle, on_closed);
  cn__waiters_fire_all(&p->waiters, status, later);
}

/* libuv may report what was not asked for (a hang-up as UV_DISCONNECT):
 * only the events asked for end the wait. */
static void on_event(uv_poll_t *handle, int status, int events) {
  cn_poll *p = CN_CONTAINER_OF(handle, cn_poll, handle);
  if (status < 0) {
    stop(p, status, 0);
    return;
  }
  events &= p->events;
  if (events) stop(p, events, 0);
}

static void close_for_loop(cn__object *obj, int abort) {
  (void)abort;
  stop(CN_CONTAINER_OF(obj, cn_poll, obj), CN_ECLOSED, 1);
}

/* Nobody waits any more: the watcher would only keep the loop alive. */
static void on_waiter_cancelled(void *owner) {
  cn_poll *p = owner;
  if (cn_list_empty(&p->waiters)) stop(p, CN_ECLOSED, 1);
}

typedef struct {
  int fd;
  int found;
} fd_search;

static void match_fd(uv_handle_t *handle, void *arg) {
  fd_search *search = arg;
  uv_os_fd_t fd;
  if (uv_fileno(handle, &fd) == 0 && fd == search->fd) search->found = 1;
}

/* uv_fileno knows every handle that holds a descriptor (tcp, pipe, udp,
 * poll) and refuses closing ones; libuv's internal handles are not walked. */
int cn_poll_is_watched(cn_loop *loop, int fd) {
  fd_search search = {fd, 0};
  uv_walk(cn_loop_uv(loop), match_fd, &search);
  return search.found;
}

static int check_fd(cn_loop *loop, int fd, int events) {
  if (!events || (events & ~ALL_EVENTS)) return UV_EINVAL;
  if (fd < 0 || fcntl(fd, F_GETFD) < 0) return UV_EBADF;
  if (cn_poll_is_watched(loop, fd)) return UV_EEXIST;
  return 0;
}

int cn_poll_wait(cn_loop *loop, int fd, int events, cn_waiter *w) {
  int rc = check_fd(loop, fd, events);
  if (rc < 0) return rc;
  cn_poll *p = calloc(1, sizeof *p);
  if (!p) return UV_ENOMEM;
  rc = uv_poll_init(cn_loop_uv(loop), &p->handle, fd);
  if (rc < 0) {
    free(p);
    return rc;
  }
  rc = uv_poll_start(&p->handle, events, on_event);
  if (rc < 0) {
    uv_close((uv_handle_t *)&p->handle, free_unstarted);
    return rc;
  }
  p->loop = loop;
  p->events = events;
  cn_list_init(&p->waiters);
  cn__object_add(loop, &p->obj, close_for_loop);
  cn__waiter_attach(&p->waiters, w, loop, 0);
  cn__waiter_on_cancel(w, on_waiter_cancelled, p);
  return 0;
}
