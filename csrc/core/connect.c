/* connect.c: one connect operation. DNS (dns.c, on libuv's threadpool, or the
 * caller's addresses), then each address in order under one overall
 * deadline, each attempt bounded by its own share of it (or by
 * attempt_timeout_ms), so that an unreachable first address leaves time for
 * the others. One attempt at a time, or Happy Eyeballs (RFC 8305): families
 * interleaved, the next attempt started after a delay while the earlier
 * ones go on, the first to connect wins. Every attempt's outcome is kept
 * for the error report. Abandoning the operation detaches an in-flight
 * lookup instead of waiting for it. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include "stream.h"

/* One address's attempt: its own stream, request and bound. Happy Eyeballs
 * keeps several out at once. It lives until libuv calls on_connected, which
 * frees it, so that its request outlives an attempt given up (the stream's
 * close makes libuv call back with UV_ECANCELED). */
typedef struct cn_attempt {
  cn_list link;      /* in op->attempts until on_connected */
  cn_connect *op;
  uv_connect_t req;
  cn_stream *stream; /* a reference; NULL once given up */
  cn_timer *timer;   /* its bound, or NULL */
  size_t index;      /* its address in op->addrs */
  int timed_out;     /* given up for taking its bound */
} cn_attempt;

/* An outcome not known yet, in op->codes (real outcomes are 0 or negative). */
#define CN_PENDING 1

struct cn_connect {
  cn__object obj;
  cn_loop *loop;
  cn_dns *dns;             /* the lookup (dns.c) while resolving */
  cn_waiter dns_waiter;
  cn_timer *timer;         /* the overall deadline */
  cn_timer *stagger_timer; /* Happy Eyeballs: starts the next attempt */
  uint64_t deadline;       /* loop time of the overall deadline; 0 = none */
  uint64_t attempt_timeout_ms;
  uint64_t delay_ms;       /* Happy Eyeballs' delay; 0 = one attempt at a time */
  cn_stream *winner;       /* the connected stream (a reference) until taken */
  cn_stream *socket;       /* the caller's socket, if any (a reference) */
  cn_addr *addrs;          /* the addresses to try, in order */
  int *codes;              /* each one's outcome: CN_PENDING, 0 or an error */
  size_t naddrs, next;     /* next: the first one not tried yet */
  cn_list attempts;        /* attempts whose request is out */
  cn_addr target;          /* an explicit address, the one that failed last, or the winner's */
  int have_target, target_given;
  cn_list waiters;
  int status, last_error;
  int done, owner_gone, in_live_set;
  int socket_family;       /* the caller's socket's address family, or 0 */
  int socket_tried;        /* the caller's socket had its one attempt */
  int resolving;           /* the getaddrinfo request is out */
};

static void try_next(cn_connect *op, int later);

static void maybe_free(cn_connect *op) {
  if (op->owner_gone && op->in_live_set && op->done) {
    cn__object_remove(op->loop, &op->obj);
    op->in_live_set = 0;
  }
  if (!op->owner_gone || op->resolving || !cn_list_empty(&op->attempts) || op->in_live_set) return;
  free(op->addrs);
  free(op->codes);
  free(op);
}

/* Gives up an attempt's stream; libuv then calls on_connected with UV_ECANCELED. */
static void drop_stream(cn_attempt *a) {
  cn_stream *s = a->stream;
  if (!s) return;
  a->stream = NULL;
  cn_stream_abort(s, CN_ECLOSED);
  cn_stream_unref(s);
}

static void close_timer(cn_timer **t) {
  if (!*t) return;
  cn_timer_close(*t);
  *t = NULL;
}

static void record_failure(cn_connect *op, size_t i, int status) {
  op->codes[i] = status;
  op->last_error = status;
  op->target = op->addrs[i];
  op->have_target = 1;
}

/* The attempts still out end with the operation: a failure counts as
 * theirs (the latest started names the error), a success closes them. */
static void give_up_attempts(cn_connect *op, int status) {
  for (cn_list *l = op->attempts.next; l != &op->attempts; l = l->next) {
    cn_attempt *a = CN_CONTAINER_OF(l, cn_attempt, link);
    close_timer(&a->timer);
    drop_stream(a);
    if (op->codes[a->index] != CN_PENDING) continue;
    if (status < 0)
      record_failure(op, a->index, status);
    else
      op->codes[a->index] = UV_ECANCELED;
  }
}

static void finish(cn_connect *op, int status, int later) {
  if (op->done) return;
  op->done = 1;
  op->status = status;
  close_timer(&op->timer);
  close_timer(&op->stagger_timer);
  give_up_attempts(op, status);
  if (status < 0 && op->winner) {
    cn_stream_abort(op->winner, CN_ECLOSED);
    cn_stream_unref(op->winner);
    op->winner = NULL;
  }
  if (op->resolving) { /* detached: the lookup frees itself when the threadpool is done */
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

/* The attempt took its bound: give it up; on_connected, which libuv calls
 * with UV_ECANCELED once the handle is closed, counts it as a timeout. */
static void on_attempt_timeout(cn_timer *t, void *data) {
  cn_attempt *a = data;
  (void)t;
  a->timed_out = 1;
  drop_stream(a);
}

static void on_connected(uv_connect_t *req, int status) {
  cn_attempt *a = CN_CONTAINER_OF(req, cn_attempt, req);
  cn_connect *op = a->op;
  cn_list_remove(&a->link);
  close_timer(&a->timer);
  if (a->timed_out) status = CN_ETIMEOUT;
  if (op->done) {
    drop_stream(a);
    free(a);
    maybe_free(op);
    return;
  }
  if (status == 0 && a->stream) {
    op->codes[a->index] = 0;
    op->target = op->addrs[a->index];
    op->winner = a->stream;
    free(a);
    cn__stream_connected(op->winner);
    finish(op, 0, 0);
    return;
  }
  record_failure(op, a->index, status ? status : UV_ECANCELED);
  drop_stream(a);
  free(a);
  try_next(op, 0); /* a failure starts the next attempt at once */
}

static int new_stream(cn_connect *op, const cn_addr *to, cn_stream **out) {
  int family = cn_addr_family(to);
  if (op->socket) {
    cn_stream_ref(op->socket);
    *out = op->socket;
    return 0;
  }
  return family == AF_UNIX ? cn__stream_new_pipe(op->loop, out) : cn_stream_new_tcp(op->loop, family, out);
}

/* The caller's socket was made for one family: an address of another
 * family could only fail, so it is skipped rather than tried. */
static int family_fits(const cn_connect *op, const cn_addr *a) {
  return !op->socket_family || cn_addr_family(a) == op->socket_family;
}

/* This attempt's bound: attempt_timeout_ms if set, else an equal share of
 * what is left of the overall deadline among the addresses left (this one
 * included); 0 for none, as for the last address, which the overall
 * deadline bounds alone. */
static uint64_t attempt_share(const cn_connect *op) {
  if (op->attempt_timeout_ms) return op->attempt_timeout_ms;
  size_t others = op->naddrs - op->next;
  if (!op->deadline || others == 0) return 0;
  uint64_t now = cn_loop_now(op->loop);
  uint64_t left = op->deadline > now ? op->deadline - now : 1;
  uint64_t share = left / (1 + others);
  return share ? share : 1;
}

static void arm_attempt_timer(cn_connect *op, cn_attempt *a) {
  uint64_t ms = attempt_share(op);
  if (!ms || cn_timer_new(op->loop, &a->timer) < 0) return;
  cn_timer_start(a->timer, ms, on_attempt_timeout, a);
}

static int start_request(cn_attempt *a, const cn_addr *to) {
  const struct sockaddr *sa = (const struct sockaddr *)&to->ss;
  if (a->stream->kind == CN_STREAM_UNIX) {
    uv_pipe_connect(&a->req, &a->stream->h.pipe, ((const struct sockaddr_un *)sa)->sun_path, on_connected);
    return 0;
  }
  return uv_tcp_connect(&a->req, &a->stream->h.tcp, sa, on_connected);
}

/* Starts the attempt at address i. The caller's socket gets exactly one,
 * whether it fails now or later: a failed attempt closes the socket. */
static int start_attempt(cn_connect *op, size_t i) {
  cn_attempt *a = calloc(1, sizeof *a);
  if (!a) return UV_ENOMEM;
  a->op = op;
  a->index = i;
  if (op->socket) {
    CN_ASSERT(!op->socket_tried);
    op->socket_tried = 1;
  }
  op->target = op->addrs[i];
  op->have_target = 1;
  int rc = new_stream(op, &op->addrs[i], &a->stream);
  if (rc == 0) rc = start_request(a, &op->addrs[i]);
  if (rc < 0) {
    drop_stream(a);
    free(a);
    return rc;
  }
  op->codes[i] = CN_PENDING;
  cn_list_push(&op->attempts, &a->link);
  arm_attempt_timer(op, a);
  return 0;
}

static void on_stagger(cn_timer *t, void *data) {
  (void)t;
  try_next(data, 0);
}

/* Happy Eyeballs (RFC 8305): unless the attempt just started connects or
 * fails first, the next one starts after the delay; earlier ones go on. */
static void arm_stagger(cn_connect *op) {
  if (!op->delay_ms || op->socket || op->next >= op->naddrs) return;
  if (!op->stagger_timer && cn_timer_new(op->loop, &op->stagger_timer) < 0) return;
  cn_timer_start(op->stagger_timer, op->delay_ms, on_stagger, op);
}

/* Starts the next address that can be tried; once none is left and no
 * attempt is out, the operation fails with the last attempt's error. */
static void try_next(cn_connect *op, int later) {
  if (op->stagger_timer) cn_timer_stop(op->stagger_timer);
  while (op->next < op->naddrs && !op->socket_tried) {
    size_t i = op->next++;
    int rc = start_attempt(op, i);
    if (rc == 0) {
      arm_stagger(op);
      return;
    }
    record_failure(op, i, rc);
  }
  if (cn_list_empty(&op->attempts)) finish(op, op->last_error ? op->last_error : CN_ENOADDR, later);
}

/* RFC 8305 section 4: alternate the address families, starting with the
 * first address's, each family keeping its own order. */
static size_t next_of(const cn_addr *list, size_t n, size_t *cursor, int family, int same) {
  while (*cursor < n && (cn_addr_family(&list[*cursor]) == family) != same) ++*cursor;
  return *cursor < n ? (*cursor)++ : n;
}

static void interleave(cn_addr *out, const cn_addr *list, size_t n) {
  int first = cn_addr_family(&list[0]);
  size_t same = 0, other = 0;
  for (size_t k = 0; k < n; k++) {
    int want_same = k % 2 == 0;
    size_t i = next_of(list, n, want_same ? &same : &other, first, want_same);
    if (i == n) i = next_of(list, n, want_same ? &other : &same, first, !want_same);
    out[k] = list[i];
  }
}

/* The addresses to try, interleaved by family under Happy Eyeballs. */
static int set_addresses(cn_connect *op, const cn_addr *list, size_t n) {
  op->addrs = malloc((n ? n : 1) * sizeof *op->addrs);
  op->codes = malloc((n ? n : 1) * sizeof *op->codes);
  if (!op->addrs || !op->codes) return UV_ENOMEM;
  if (op->delay_ms && n > 1)
    interleave(op->addrs, list, n);
  else if (n)
    memcpy(op->addrs, list, n * sizeof *list);
  op->naddrs = n;
  return 0;
}

static int set_addrinfo(cn_connect *op, const struct addrinfo *res) {
  size_t n = 0, k = 0;
  for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) n++;
  cn_addr *list = malloc((n ? n : 1) * sizeof *list);
  if (!list) return UV_ENOMEM;
  for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
    if (cn_addr_from_sockaddr(&list[k], ai->ai_addr, ai->ai_addrlen) == 0 && family_fits(op, &list[k])) k++;
  int rc = set_addresses(op, list, k);
  free(list);
  return rc;
}

/* Runs only while op waits for the lookup: finish detaches it. */
static void on_resolved(cn_waiter *w, int status) {
  cn_connect *op = w->data;
  op->resolving = 0;
  if (status == 0) status = set_addrinfo(op, cn_dns_addrinfo(op->dns));
  cn_dns_close(op->dns);
  op->dns = NULL;
  if (status < 0) {
    finish(op, status, 0);
    return;
  }
  try_next(op, 0);
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
  if (!o->host && !o->addr && !o->naddrs) return UV_EINVAL;
  /* The deadline and the attempts' bounds count from this call, even after
   * CPU work earlier in the loop turn (libuv's timers use the cached time). */
  cn_loop_update_time(loop);
  cn_connect *op = calloc(1, sizeof *op);
  if (!op) return UV_ENOMEM;
  op->loop = loop;
  cn_list_init(&op->waiters);
  cn_list_init(&op->attempts);
  if (o->socket) {
    cn_addr bound;
    op->socket = o->socket;
    cn_stream_ref(o->socket);
    if (cn_stream_sockname(o->socket, &bound) == 0) op->socket_family = cn_addr_family(&bound);
  }
  op->attempt_timeout_ms = o->attempt_timeout_ms;
  op->delay_ms = o->happy_eyeballs_delay_ms;
  cn__object_add(loop, &op->obj, close_for_loop);
  op->in_live_set = 1;
  cn__waiter_attach(&op->waiters, w, loop, 0);
  int rc = o->naddrs && !o->host ? set_addresses(op, o->addrs, o->naddrs) : resolve(op, o);
  if (rc == 0 && op->target_given) rc = set_addresses(op, &op->target, 1);
  if (rc == 0 && o->timeout_ms && cn_timer_new(loop, &op->timer) == 0) {
    op->deadline = cn_loop_now(loop) + o->timeout_ms;
    cn_timer_start(op->timer, o->timeout_ms, on_deadline, op);
  }
  if (rc < 0) {
    cn_list_remove(&w->link_);
    op->done = op->owner_gone = 1;
    if (op->socket) cn_stream_unref(op->socket);
    maybe_free(op);
    return rc;
  }
  if (!op->resolving) try_next(op, 1); /* a failure now is delivered later (Rule 3) */
  *out = op;
  return 0;
}

int cn_connect_take(cn_connect *op, cn_stream **out) {
  int status = op->status;
  CN_ASSERT(op->done);
  *out = op->winner;
  op->winner = NULL;
  if (op->socket) cn_stream_unref(op->socket);
  op->socket = NULL;
  op->owner_gone = 1;
  maybe_free(op);
  return status;
}

void cn_connect_abort(cn_connect *op) {
  finish(op, UV_ECANCELED, 1);
  if (op->winner) { /* connected, but its owner is gone */
    cn_stream_abort(op->winner, CN_ECLOSED);
    cn_stream_unref(op->winner);
    op->winner = NULL;
  }
  if (op->socket) cn_stream_unref(op->socket);
  op->socket = NULL;
  op->owner_gone = 1;
  maybe_free(op);
}

const cn_addr *cn_connect_last_addr(const cn_connect *op) { return op->have_target ? &op->target : NULL; }

size_t cn_connect_attempt_count(const cn_connect *op) { return op->next; }

int cn_connect_attempt(const cn_connect *op, size_t i, cn_addr *addr) {
  CN_ASSERT(i < op->next);
  *addr = op->addrs[i];
  return op->codes[i] == CN_PENDING ? 0 : op->codes[i];
}
