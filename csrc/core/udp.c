/* udp.c: a datagram socket. Receiving reads into the loop's read scratch
 * only while a waiter waits, and hands the datagram to that waiter inside
 * the read callback (the lending span of internal.h), so a datagram costs
 * no allocation here; the waiter copies what it keeps. Sending tries the
 * kernel first and queues a copy only when the socket's buffer is full. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "internal.h"

struct cn_udp {
  cn__object obj;
  uv_udp_t handle;
  cn_loop *loop;
  int family;
  int closing;
  int reading;               /* uv_udp_recv_start is in effect */
  cn_list recv_waiters;      /* at most one */
  cn_list close_waiters;
  struct udp_send *waited_send; /* the queued send a waiter waits on, or NULL */
  const char *dgram;         /* the datagram being delivered, in the scratch */
  size_t dgram_len;
  cn_addr from;
};

/* A send the kernel could not take at once: a copy of the datagram. */
typedef struct udp_send {
  uv_udp_send_t req;
  cn_udp *u;
  cn_list waiters;
  char data[];
} udp_send;

static void on_closed(uv_handle_t *handle) {
  cn_udp *u = CN_CONTAINER_OF(handle, cn_udp, handle);
  cn__object_remove(u->loop, &u->obj);
  cn__waiters_fire_all(&u->close_waiters, 0, 0);
  free(u);
}

void cn_udp_close(cn_udp *u) {
  if (u->closing) return;
  u->closing = 1;
  cn__waiters_fire_all(&u->recv_waiters, CN_ECLOSED, 1);
  if (u->waited_send) cn__waiters_fire_all(&u->waited_send->waiters, CN_ECLOSED, 1);
  u->waited_send = NULL;
  uv_close((uv_handle_t *)&u->handle, on_closed); /* queued sends end with UV_ECANCELED first */
}

static void close_for_loop(cn__object *obj, int abort) {
  (void)abort;
  cn_udp_close(CN_CONTAINER_OF(obj, cn_udp, obj));
}

int cn_udp_new(cn_loop *loop, int family, cn_udp **out) {
  if (family != AF_INET && family != AF_INET6) return UV_EAFNOSUPPORT;
  cn_udp *u = calloc(1, sizeof *u);
  if (!u) return UV_ENOMEM;
  int rc = uv_udp_init_ex(cn_loop_uv(loop), &u->handle, (unsigned)family); /* makes the descriptor now */
  if (rc < 0) {
    free(u);
    return rc;
  }
  u->loop = loop;
  u->family = family;
  cn_list_init(&u->recv_waiters);
  cn_list_init(&u->close_waiters);
  cn__object_add(loop, &u->obj, close_for_loop);
  *out = u;
  return 0;
}

int cn_udp_family(const cn_udp *u) { return u->family; }
int cn_udp_is_closing(const cn_udp *u) { return u->closing; }

void cn_udp_close_wait(cn_udp *u, cn_waiter *w) { cn__waiter_attach(&u->close_waiters, w, u->loop, 0); }

static int set_reuseport(cn_udp *u) {
  int on = 1, fd = cn_udp_fileno(u);
  if (fd < 0) return fd;
  return setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) < 0 ? uv_translate_sys_error(errno) : 0;
}

int cn_udp_bind(cn_udp *u, const cn_addr *addr, unsigned flags) {
  if (u->closing) return CN_ECLOSED;
  if (cn_addr_family(addr) != u->family) return UV_EAFNOSUPPORT;
  if (flags & CN_UDP_REUSEPORT) {
    int rc = set_reuseport(u);
    if (rc < 0) return rc;
  }
  return uv_udp_bind(&u->handle, (const struct sockaddr *)&addr->ss, flags & CN_UDP_REUSEADDR ? UV_UDP_REUSEADDR : 0);
}

int cn_udp_fileno(const cn_udp *u) {
  uv_os_fd_t fd;
  int rc = uv_fileno((const uv_handle_t *)&u->handle, &fd);
  return rc < 0 ? rc : fd;
}

int cn_udp_sockname(const cn_udp *u, cn_addr *out) {
  if (u->closing) return CN_ECLOSED;
  int len = (int)sizeof out->ss;
  memset(out, 0, sizeof *out);
  int rc = uv_udp_getsockname(&u->handle, (struct sockaddr *)&out->ss, &len);
  out->len = (socklen_t)len;
  return rc;
}

/* ------------------------------------------------------------- sending */

static void on_sent(uv_udp_send_t *req, int status) {
  udp_send *s = CN_CONTAINER_OF(req, udp_send, req);
  if (s->u->waited_send == s) s->u->waited_send = NULL;
  cn__waiters_fire_all(&s->waiters, status, 0);
  free(s);
}

/* The waiter gave up (timeout, cancel): the send goes on, unwaited. */
static void on_send_cancel(void *owner) {
  cn_udp *u = owner;
  u->waited_send = NULL;
}

static size_t total_size(const cn_slice *parts, size_t nparts) {
  size_t n = 0;
  for (size_t i = 0; i < nparts; i++) n += parts[i].n;
  return n;
}

static int queue_copy(cn_udp *u, const cn_addr *to, const cn_slice *parts, size_t nparts, size_t size, cn_waiter *w) {
  udp_send *s = malloc(sizeof *s + (size ? size : 1));
  if (!s) return UV_ENOMEM;
  size_t at = 0;
  for (size_t i = 0; i < nparts; i++) {
    memcpy(s->data + at, parts[i].p, parts[i].n);
    at += parts[i].n;
  }
  uv_buf_t buf = uv_buf_init(s->data, (unsigned)size);
  int rc = uv_udp_send(&s->req, &u->handle, &buf, 1, (const struct sockaddr *)&to->ss, on_sent);
  if (rc < 0) {
    free(s);
    return rc;
  }
  s->u = u;
  cn_list_init(&s->waiters);
  cn__waiter_attach(&s->waiters, w, u->loop, 0);
  cn__waiter_on_cancel(w, on_send_cancel, u);
  u->waited_send = s;
  return 1;
}

int cn_udp_send(cn_udp *u, const cn_addr *to, const cn_slice *parts, size_t nparts, cn_waiter *w) {
  if (u->closing) return CN_ECLOSED;
  if (cn_addr_family(to) != u->family) return UV_EAFNOSUPPORT;
  if (nparts > CN_UDP_MAX_PARTS) return UV_EINVAL;
  size_t size = total_size(parts, nparts);
  if (size > (u->family == AF_INET ? CN_UDP_MAX_IPV4 : CN_UDP_MAX_IPV6)) return UV_EMSGSIZE;
  if (u->waited_send) return CN_EBUSY;
  uv_buf_t bufs[CN_UDP_MAX_PARTS];
  bufs[0] = uv_buf_init((char *)"", 0); /* libuv wants one buffer, even for an empty datagram */
  for (size_t i = 0; i < nparts; i++) bufs[i] = uv_buf_init((char *)parts[i].p, (unsigned)parts[i].n);
  unsigned nbufs = nparts ? (unsigned)nparts : 1;
  int rc = uv_udp_try_send(&u->handle, bufs, nbufs, (const struct sockaddr *)&to->ss);
  if (rc >= 0) return 0;
  if (rc != UV_EAGAIN) return rc;
  return queue_copy(u, to, parts, nparts, size, w);
}

/* ----------------------------------------------------------- receiving */

static void stop_if_unwanted(cn_udp *u) {
  if (!u->reading || !cn_list_empty(&u->recv_waiters) || u->closing) return;
  uv_udp_recv_stop(&u->handle);
  u->reading = 0;
}

static void on_recv_cancel(void *owner) { stop_if_unwanted(owner); }

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  cn_udp *u = CN_CONTAINER_OF(handle, cn_udp, handle);
  size_t size;
  char *p = cn__loop_scratch_lend(u->loop, &size);
  (void)suggested;
  *buf = uv_buf_init(p, (unsigned)size); /* empty if lent out: libuv reports UV_ENOBUFS */
}

static void return_scratch(cn_udp *u, const uv_buf_t *buf) {
  if (cn__loop_scratch_owns(u->loop, buf->base)) cn__loop_scratch_return(u->loop);
}

/* The waiter runs (and may resume a fiber) while the datagram is in the
 * scratch; it may wait again, close the socket or do anything else. libuv
 * stops its batch of reads when the callback stopped reading. */
static void on_recv(uv_udp_t *handle, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags) {
  cn_udp *u = CN_CONTAINER_OF(handle, cn_udp, handle);
  (void)flags; /* the scratch holds the largest datagram: never UV_UDP_PARTIAL */
  if (nread < 0 || addr == NULL) { /* an error, or nothing more to read now */
    return_scratch(u, buf);
    if (nread < 0) cn__waiters_fire_all(&u->recv_waiters, (int)nread, 0);
    stop_if_unwanted(u);
    return;
  }
  u->dgram = buf->base;
  u->dgram_len = (size_t)nread;
  if (cn_addr_from_sockaddr(&u->from, addr, addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                                          : sizeof(struct sockaddr_in)) < 0)
    memset(&u->from, 0, sizeof u->from);
  cn__waiters_fire_all(&u->recv_waiters, (int)nread, 0);
  u->dgram = NULL;
  return_scratch(u, buf);
  stop_if_unwanted(u);
}

int cn_udp_recv(cn_udp *u, cn_waiter *w) {
  if (u->closing) return CN_ECLOSED;
  if (!cn_list_empty(&u->recv_waiters)) return CN_EBUSY;
  if (!u->reading) {
    int rc = uv_udp_recv_start(&u->handle, on_alloc, on_recv);
    if (rc < 0) return rc;
    u->reading = 1;
  }
  cn__waiter_attach(&u->recv_waiters, w, u->loop, 0);
  cn__waiter_on_cancel(w, on_recv_cancel, u);
  return 0;
}

const char *cn_udp_datagram(const cn_udp *u, size_t *len, cn_addr *from) {
  CN_ASSERT(u->dgram != NULL);
  *len = u->dgram_len;
  if (from) *from = u->from;
  return u->dgram;
}
