/* process.c: a child process over uv_spawn, its stdin and stdout as core
 * streams. The owner holds the process until cn_process_close; the handle
 * stays open until the child has exited (closing a uv_process_t earlier
 * would stop libuv from reaping it, leaving a zombie), so the struct goes
 * when both are done: the owner let go, or the loop closed everything, and
 * the handle's close callback ran. */
#include <signal.h>
#include <stdlib.h>
#include "stream.h"

struct cn_process {
  uv_process_t handle;
  cn__object obj;
  cn_loop *loop;
  cn_list exit_waiters;
  int64_t exit_code;
  int term_signal;
  int pid;
  int exited;
  int owned;         /* the owner has not called cn_process_close */
  int close_asked;   /* the loop closes everything: close once exited */
  int closing;       /* uv_close started */
  int handle_closed; /* its close callback ran */
};

static void on_closed(uv_handle_t *handle) {
  cn_process *p = CN_CONTAINER_OF(handle, cn_process, handle);
  cn__object_remove(p->loop, &p->obj);
  p->handle_closed = 1;
  if (!p->owned) free(p);
}

static void close_handle(cn_process *p) {
  if (p->closing) return;
  p->closing = 1;
  uv_close((uv_handle_t *)&p->handle, on_closed);
}

static void maybe_close(cn_process *p) {
  if (p->exited && (!p->owned || p->close_asked)) close_handle(p);
}

static void on_child_exit(uv_process_t *handle, int64_t code, int term_signal) {
  cn_process *p = CN_CONTAINER_OF(handle, cn_process, handle);
  p->exited = 1;
  p->exit_code = code;
  p->term_signal = term_signal;
  cn__waiters_fire_all(&p->exit_waiters, 0, 0); /* may close p: close_handle is idempotent */
  maybe_close(p);
}

/* The loop is closing everything: a child still running is asked to end
 * (SIGKILL for an abort, which nothing may delay), and the handle closes
 * once it has exited. If the signal cannot be sent, the child is gone or
 * not ours to reap: the handle closes now. */
static void close_for_loop(cn__object *obj, int abort) {
  cn_process *p = CN_CONTAINER_OF(obj, cn_process, obj);
  p->close_asked = 1;
  if (!p->exited && uv_process_kill(&p->handle, abort ? SIGKILL : SIGTERM) < 0) {
    cn__waiters_fire_all(&p->exit_waiters, CN_ECLOSED, 1);
    close_handle(p);
    return;
  }
  maybe_close(p);
}

/* Both pipes are made before the spawn; libuv opens them in it. */
static int new_pipes(cn_loop *loop, cn_stream **in, cn_stream **out) {
  int rc = cn__stream_new_pipe(loop, in);
  if (rc < 0) return rc;
  rc = cn__stream_new_pipe(loop, out);
  if (rc < 0) {
    cn__stream_close_handle(*in, CN_ECLOSED);
    cn_stream_unref(*in);
  }
  return rc;
}

static void drop_pipe(cn_stream *s) {
  cn__stream_close_handle(s, CN_ECLOSED);
  cn_stream_unref(s);
}

static void free_unspawned(uv_handle_t *handle) { free(CN_CONTAINER_OF(handle, cn_process, handle)); }

static void set_stdio(uv_stdio_container_t stdio[3], cn_stream *in, cn_stream *out) {
  stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE; /* the child reads it */
  stdio[0].data.stream = &in->h.stream;
  stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[1].data.stream = &out->h.stream;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = 2;
}

int cn_process_spawn(cn_loop *loop, const cn_process_opts *opts, cn_process **out, cn_stream **child_stdin,
                     cn_stream **child_stdout) {
  cn_process *p = calloc(1, sizeof *p);
  if (!p) return UV_ENOMEM;
  cn_stream *in, *outs;
  int rc = new_pipes(loop, &in, &outs);
  if (rc < 0) {
    free(p);
    return rc;
  }
  uv_stdio_container_t stdio[3];
  set_stdio(stdio, in, outs);
  uv_process_options_t o = {0};
  o.exit_cb = on_child_exit;
  o.file = opts->file;
  o.args = opts->args;
  o.env = opts->env;
  o.cwd = opts->cwd;
  o.stdio_count = 3;
  o.stdio = stdio;
  rc = uv_spawn(cn_loop_uv(loop), &p->handle, &o);
  if (rc < 0) {
    /* libuv may have opened the pipes and always initialised the handle. */
    drop_pipe(in);
    drop_pipe(outs);
    uv_close((uv_handle_t *)&p->handle, free_unspawned);
    return rc;
  }
  p->loop = loop;
  p->pid = p->handle.pid;
  p->owned = 1;
  cn_list_init(&p->exit_waiters);
  cn__object_add(loop, &p->obj, close_for_loop);
  cn__stream_connected(in); /* the child's stdin is write-only here: its reader closes */
  cn__stream_connected(outs);
  *out = p;
  *child_stdin = in;
  *child_stdout = outs;
  return 0;
}

int cn_process_pid(const cn_process *p) { return p->pid; }

int cn_process_kill(cn_process *p, int signum) {
  if (p->exited) return UV_ESRCH; /* the pid may already name another process */
  if (p->closing) return CN_ECLOSED;
  return uv_process_kill(&p->handle, signum);
}

void cn_process_exit_wait(cn_process *p, cn_waiter *w) {
  cn__waiter_attach(&p->exit_waiters, w, p->loop, 0);
  if (p->exited)
    cn__waiter_fire_later(w, 0);
  else if (p->closing)
    cn__waiter_fire_later(w, CN_ECLOSED);
}

int cn_process_exit_status(const cn_process *p, int64_t *code, int *signal) {
  if (!p->exited) return 0;
  *code = p->exit_code;
  *signal = p->term_signal;
  return 1;
}

void cn_process_close(cn_process *p) {
  CN_ASSERT(p->owned);
  p->owned = 0;
  cn__waiters_fire_all(&p->exit_waiters, CN_ECLOSED, 1);
  if (p->handle_closed)
    free(p);
  else
    maybe_close(p);
}
