/* dns.c: name lookups on libuv's threadpool, the one DNS mechanism behind
 * connect and the net module's getaddrinfo and getnameinfo. An owner that
 * gives up on a lookup detaches it: a getaddrinfo already running in a
 * worker thread cannot be stopped, and waiting for it would make a cancel
 * or a timeout as slow as the resolver, so the op frees itself when the
 * worker is done. */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

struct cn_dns {
  union {
    uv_getaddrinfo_t ai;
    uv_getnameinfo_t ni;
  } req;
  cn_list waiters;         /* the owner's one waiter, until its callback */
  struct addrinfo *results;
  cn_loop *loop;
  int running;             /* the request is still out in the threadpool (counted in dns_in_flight until detached) */
  int detached;            /* the owner is gone: free once the request is back */
};

int cn__dns_copy_host(char *buf, const char *host, size_t len) {
  if (!len) len = strlen(host);
  if (len > CN_DNS_MAX_HOST || memchr(host, '\0', len)) return UV_EAI_NONAME;
  memcpy(buf, host, len);
  buf[len] = '\0';
  return 0;
}

static void release(cn_dns *op) {
  if (op->results) uv_freeaddrinfo(op->results);
  free(op);
}

/* The request is back from the threadpool: deliver, or free a detached op. */
static void done(cn_dns *op, int status) {
  op->running = 0;
  if (op->detached) {
    release(op); /* the loop may be gone: a detached op stopped counting when detached */
    return;
  }
  cn__loop_stats(op->loop)->dns_in_flight--;
  cn__waiters_fire_all(&op->waiters, status, 0);
}

static void on_addrinfo(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  cn_dns *op = CN_CONTAINER_OF(req, cn_dns, req.ai);
  op->results = res;
  done(op, status);
}

static void on_nameinfo(uv_getnameinfo_t *req, int status, const char *host, const char *service) {
  (void)host; /* both point into req */
  (void)service;
  done(CN_CONTAINER_OF(req, cn_dns, req.ni), status);
}

static cn_dns *new_op(cn_loop *loop, cn_waiter *w) {
  cn_dns *op = calloc(1, sizeof *op);
  if (!op) return NULL;
  op->loop = loop;
  cn_list_init(&op->waiters);
  cn__waiter_attach(&op->waiters, w, loop, 0);
  return op;
}

static void started(cn_dns *op) {
  op->running = 1;
  cn__loop_stats(op->loop)->dns_in_flight++;
}

/* Undoes new_op when the request could not start: the callback never runs. */
static int fail_start(cn_dns *op, cn_waiter *w, int rc) {
  cn_list_remove(&w->link_);
  free(op);
  return rc;
}

int cn_dns_getaddrinfo(cn_loop *loop, const cn_dns_query *q, cn_waiter *w, cn_dns **out) {
  char host[CN_DNS_MAX_HOST + 1];
  int rc = cn__dns_copy_host(host, q->host, q->host_len);
  if (rc < 0) return rc;
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = q->family;
  hints.ai_socktype = q->socktype;
  cn_dns *op = new_op(loop, w);
  if (!op) return UV_ENOMEM;
  rc = uv_getaddrinfo(cn_loop_uv(loop), &op->req.ai, on_addrinfo, host, q->service, &hints);
  if (rc < 0) return fail_start(op, w, rc);
  started(op);
  *out = op;
  return 0;
}

int cn_dns_getnameinfo(cn_loop *loop, const cn_addr *addr, int flags, cn_waiter *w, cn_dns **out) {
  int family = cn_addr_family(addr);
  if (family != AF_INET && family != AF_INET6) return UV_EAI_FAMILY;
  cn_dns *op = new_op(loop, w);
  if (!op) return UV_ENOMEM;
  int rc = uv_getnameinfo(cn_loop_uv(loop), &op->req.ni, on_nameinfo, (const struct sockaddr *)&addr->ss, flags);
  if (rc < 0) return fail_start(op, w, rc);
  started(op);
  *out = op;
  return 0;
}

const struct addrinfo *cn_dns_addrinfo(const cn_dns *op) { return op->results; }
const char *cn_dns_host(const cn_dns *op) { return op->req.ni.host; }
const char *cn_dns_service(const cn_dns *op) { return op->req.ni.service; }

static int same_address(const struct addrinfo *a, const struct addrinfo *b) {
  return a->ai_addrlen == b->ai_addrlen && memcmp(a->ai_addr, b->ai_addr, a->ai_addrlen) == 0;
}

/* An entry worth returning: not a raw socket, and its address not given earlier. */
static int is_new(const struct addrinfo *list, const struct addrinfo *ai) {
  if (ai->ai_socktype == SOCK_RAW || !ai->ai_addr) return 0;
  for (const struct addrinfo *earlier = list; earlier != ai; earlier = earlier->ai_next)
    if (earlier->ai_socktype != SOCK_RAW && earlier->ai_addr && same_address(earlier, ai)) return 0;
  return 1;
}

int cn_dns_next_address(const struct addrinfo *list, const struct addrinfo **cursor, cn_addr *out) {
  const struct addrinfo *ai = *cursor ? (*cursor)->ai_next : list;
  for (; ai; ai = ai->ai_next) {
    if (!is_new(list, ai) || cn_addr_from_sockaddr(out, ai->ai_addr, ai->ai_addrlen) < 0) continue;
    *cursor = ai;
    return 1;
  }
  *cursor = NULL;
  return 0;
}

/* uv_cancel succeeds only while the request still waits in the queue; its
 * callback then runs with UV_EAI_CANCELED, and frees the detached op. */
void cn_dns_close(cn_dns *op) {
  cn_list *link;
  while ((link = cn_list_first(&op->waiters)) != NULL) cn_waiter_cancel(CN_CONTAINER_OF(link, cn_waiter, link_));
  if (!op->running) {
    release(op);
    return;
  }
  op->detached = 1;
  cn__loop_stats(op->loop)->dns_in_flight--;
  uv_cancel((uv_req_t *)&op->req);
}
