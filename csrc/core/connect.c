/* connect.c: one connect operation. DNS (dns.c), then each
 * address in getaddrinfo order under one overall deadline, each attempt
 * bounded by its own share of it (or by attempt_timeout_ms), so that an
 * unreachable first address leaves time for the others. Abandoning the
 * operation detaches an in-flight lookup instead of waiting for it. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include "stream.h"

struct cn_connect {
  cn__object obj;
  cn_loop *loop;
  cn_dns *dns;             /* the lookup (dns.c), until op is freed */
  cn_waiter dns_waiter;
  uv_connect_t req;
  cn_timer *timer;         /* the overall deadline */
  cn_timer *attempt_timer; /* the current attempt's share */
  uint64_t deadline;       /* loop time of the overall deadline; 0 = none */
  uint64_t attempt_timeout_ms;
  cn_stream *attempt;     /* the stream being connected (a reference) */
  cn_stream *socket;      /* the caller's socket, if any (a reference) */
  const struct addrinfo *next; /* in dns's results */
  cn_addr target;         /* an explicit address, or the one last tried */
  int have_target, target_given;
  cn_list waiters;
  int status, last_error;
  int done, owner_gone, in_live_set;
  int socket_family;        /* the caller's socket's address family, or 0 */
  int socket_tried;         /* the caller's socket had its one attempt */
  int attempt_timed_out;    /* the attempt was cancelled for taking its share */
  int resolving, connecting; /* libuv requests still out */
};

static void try_next(cn_connect *op);

static void maybe_free(cn_connect *op) {
  if (op->owner_gone && op->in_live_set && op->done) {
    cn__object_remove(op->loop, &op->obj);
    op->in_live_set = 0;
  }
  if (!op->owner_gone || op->resolving || op->connecting || op->in_live_set) return;
  if (op->dns) cn_dns_close(op->dns);
  free(op);
}

/* Drops the stream of a failed or abandoned attempt. */
static void drop_attempt(cn_connect *op) {
  cn_stream *s = op->attempt;
  if (!s) return;
  op->attempt = NULL;
  cn_stream_abort(s, CN_ECLOSED);
  cn_stream_unref(s);
}

static void finish(cn_connect *op, int status, int later) {
  if (op->done) return;
  op->done = 1;
  op->status = status;
  if (op->timer) {
    cn_timer_close(op->timer);
    op->timer = NULL;
  }
  if (op->attempt_timer) {
    cn_timer_close(op->attempt_timer);
    op->attempt_timer = NULL;
  }
  if (status < 0) drop_attempt(op);
  if (op->resolving) { /* detached: it frees itself when the threadpool is done */
    cn_dns_close(op->dns);
    op->dns = NULL;
    op->resolving = 0;
  }
  if (cn_list_empty(&op->waiters))
    maybe_free(op);
  else /* last: the owner's callback may take the result and free op */
    cn__waiters_fire_all(&op->waiters, status, later);
}

static void on_deadline(cn_timer *t, void *data) {
  (void)t;
  finish(data, CN_ETIMEOUT, 0);
}

static void close_for_loop(cn__object *obj, int abort) {
  (void)abort;
  finish(CN_CONTAINER_OF(obj, cn_connect, obj), CN_ECLOSED, 1);
}

/* The attempt took its share: cancel it; on_connected, which libuv calls
 * with UV_ECANCELED once the handle is closed, moves on to the next address
 * (the request cannot be reused before). */
static void on_attempt_timeout(cn_timer *t, void *data) {
  cn_connect *op = data;
  (void)t;
  op->attempt_timed_out = 1;
  drop_attempt(op);
}

static void on_connected(uv_connect_t *req, int status) {
  cn_connect *op = CN_CONTAINER_OF(req, cn_connect, req);
  op->connecting = 0;
  if (op->done) {
    maybe_free(op);
    return;
  }
  if (op->attempt_timer) cn_timer_stop(op->attempt_timer);
  if (op->attempt_timed_out) status = CN_ETIMEOUT;
  op->attempt_timed_out = 0;
  if (status == 0) {
    cn__stream_connected(op->attempt);
    finish(op, 0, 0);
    return;
  }
  op->last_error = status;
  drop_attempt(op);
  try_next(op);
}

static int new_attempt(cn_connect *op, cn_stream **out) {
  int family = cn_addr_family(&op->target);
  if (op->socket) {
    cn_stream_ref(op->socket);
    *out = op->socket;
    return 0;
  }
  return family == AF_UNIX ? cn__stream_new_pipe(op->loop, out) : cn_stream_new_tcp(op->loop, family, out);
}

/* The caller's socket was made for one family: an address of another
 * family could only fail, so it is skipped rather than tried. */
static int family_fits(const cn_connect *op, const struct addrinfo *ai) {
  return !op->socket_family || ai->ai_family == op->socket_family;
}

static unsigned addresses_left(const cn_connect *op) {
  unsigned n = 0;
  for (const struct addrinfo *ai = op->next; ai; ai = ai->ai_next) n += family_fits(op, ai);
  return n;
}

/* This attempt's bound: attempt_timeout_ms if set, else an equal share of
 * what is left of the overall deadline among the addresses left (this one
 * included); 0 for none, as for the last address, which the overall
 * deadline bounds alone. */
static uint64_t attempt_share(const cn_connect *op) {
  if (op->attempt_timeout_ms) return op->attempt_timeout_ms;
  unsigned others = addresses_left(op);
  if (!op->deadline || others == 0) return 0;
  uint64_t now = cn_loop_now(op->loop);
  uint64_t left = op->deadline > now ? op->deadline - now : 1;
  uint64_t share = left / (1 + others);
  return share ? share : 1;
}

static void arm_attempt_timer(cn_connect *op) {
  uint64_t ms = attempt_share(op);
  if (!ms) return;
  if (!op->attempt_timer && cn_timer_new(op->loop, &op->attempt_timer) < 0) return;
  cn_timer_start(op->attempt_timer, ms, on_attempt_timeout, op);
}

/* Starts the attempt at op->target. The caller's socket gets exactly one,
 * whether it fails now or later: a failed attempt closes the socket. */
static int attempt(cn_connect *op) {
  if (op->socket) {
    CN_ASSERT(!op->socket_tried);
    op->socket_tried = 1;
  }
  int rc = new_attempt(op, &op->attempt);
  if (rc < 0) return rc;
  const struct sockaddr *sa = (const struct sockaddr *)&op->target.ss;
  if (op->attempt->is_unix) {
    uv_pipe_connect(&op->req, &op->attempt->h.pipe, ((const struct sockaddr_un *)sa)->sun_path, on_connected);
  } else {
    rc = uv_tcp_connect(&op->req, &op->attempt->h.tcp, sa, on_connected);
    if (rc < 0) {
      drop_attempt(op);
      return rc;
    }
  }
  op->connecting = 1;
  arm_attempt_timer(op);
  return 0;
}

static void try_next(cn_connect *op) {
  while (op->next && !op->socket_tried) {
    const struct addrinfo *ai = op->next;
    op->next = ai->ai_next;
    if (!family_fits(op, ai)) continue;
    if (cn_addr_from_sockaddr(&op->target, ai->ai_addr, ai->ai_addrlen) < 0) continue;
    op->have_target = 1;
    int rc = attempt(op);
    if (rc == 0) return;
    op->last_error = rc;
  }
  finish(op, op->last_error ? op->last_error : CN_ENOADDR, 0);
}

/* Runs only while op waits for the lookup: finish detaches it. */
static void on_resolved(cn_waiter *w, int status) {
  cn_connect *op = w->data;
  op->resolving = 0;
  if (status < 0) {
    finish(op, status, 0);
    return;
  }
  op->next = cn_dns_addrinfo(op->dns);
  try_next(op);
}

/* A literal address needs no lookup. */
static int resolve(cn_connect *op, const cn_connect_opts *o) {
  if (!o->host) {
    op->target = *o->addr;
    op->have_target = op->target_given = 1;
    return 0;
  }
  char host[CN_DNS_MAX_HOST + 1];
  int rc = cn__dns_copy_host(host, o->host, o->host_len);
  if (rc < 0) return rc;
  if (cn_addr_ip(&op->target, host, o->port) == 0) {
    op->have_target = op->target_given = 1;
    return 0;
  }
  if (o->port < 0 || o->port > 65535) return UV_EINVAL;
  char port[8];
  snprintf(port, sizeof port, "%d", o->port);
  cn_dns_query q = {.host = host, .service = port, .family = AF_UNSPEC, .socktype = SOCK_STREAM};
  cn_waiter_init(&op->dns_waiter, on_resolved, op);
  rc = cn_dns_getaddrinfo(op->loop, &q, &op->dns_waiter, &op->dns);
  if (rc == 0) op->resolving = 1;
  return rc;
}

int cn_connect_start(cn_loop *loop, const cn_connect_opts *o, cn_waiter *w, cn_connect **out) {
  if (!o->host && !o->addr) return UV_EINVAL;
  cn_connect *op = calloc(1, sizeof *op);
  if (!op) return UV_ENOMEM;
  op->loop = loop;
  cn_list_init(&op->waiters);
  if (o->socket) {
    cn_addr bound;
    op->socket = o->socket;
    cn_stream_ref(o->socket);
    if (cn_stream_sockname(o->socket, &bound) == 0) op->socket_family = cn_addr_family(&bound);
  }
  op->attempt_timeout_ms = o->attempt_timeout_ms;
  cn__object_add(loop, &op->obj, close_for_loop);
  op->in_live_set = 1;
  cn__waiter_attach(&op->waiters, w, loop, 0);
  int rc = resolve(op, o);
  if (rc == 0 && o->timeout_ms && cn_timer_new(loop, &op->timer) == 0) {
    op->deadline = cn_loop_now(loop) + o->timeout_ms;
    cn_timer_start(op->timer, o->timeout_ms, on_deadline, op);
  }
  if (rc == 0 && op->target_given) {
    rc = attempt(op);
    if (rc < 0) {
      op->last_error = rc;
      finish(op, rc, 1);
      rc = 0;
    }
  }
  if (rc < 0) {
    cn_list_remove(&w->link_);
    op->done = op->owner_gone = 1;
    if (op->socket) cn_stream_unref(op->socket);
    maybe_free(op);
    return rc;
  }
  *out = op;
  return 0;
}

int cn_connect_take(cn_connect *op, cn_stream **out) {
  int status = op->status;
  CN_ASSERT(op->done);
  *out = NULL;
  if (status == 0) {
    *out = op->attempt;
    op->attempt = NULL;
  }
  if (op->socket) cn_stream_unref(op->socket);
  op->socket = NULL;
  op->owner_gone = 1;
  maybe_free(op);
  return status;
}

void cn_connect_abort(cn_connect *op) {
  finish(op, UV_ECANCELED, 1);
  drop_attempt(op);
  if (op->socket) cn_stream_unref(op->socket);
  op->socket = NULL;
  op->owner_gone = 1;
  maybe_free(op);
}

const cn_addr *cn_connect_last_addr(const cn_connect *op) { return op->have_target ? &op->target : NULL; }
