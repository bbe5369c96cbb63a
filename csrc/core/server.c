/* server.c: a listener with its own accept loop. libuv's uv_listen accepts
 * one connection past any limit and, on EMFILE, accepts and closes pending
 * clients; so the server polls the listening socket and calls accept4 itself:
 * no accept at max_connections, at most max_accepts_per_batch per turn, and a
 * back-off on resource errors that never spins and never stops for good.
 * A paused server also serves callers that poll (Procord):
 * cn_server_accept_pending takes one client through the same accept path,
 * and cn_server_wait_pending waits on the same poll handle. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "stream.h"

#define CN_DEFAULT_MAX_CONNECTIONS 10000u
#define CN_DEFAULT_ACCEPTS_PER_BATCH 64u
#define CN_DEFAULT_BACKLOG 511
#define CN_BACKOFF_MIN_MS 10u
#define CN_BACKOFF_MAX_MS 1000u

struct cn_server {
  uv_poll_t poll;
  cn__object obj;
  cn_loop *loop;
  int fd;
  unsigned refs;
  cn_server_opts opts;
  cn_stream_opts stream_opts;
  cn_server_conn_fn on_conn;
  void *data;
  cn_list conns;
  cn_list close_waiters;
  cn_list pending_waiters; /* cn_server_wait_pending: told when a client waits in the backlog */
  cn_server_stats stats; /* bytes of closed connections; live ones are summed on demand */
  cn_addr addr;
  cn_timer *backoff;
  unsigned backoff_ms;
  int polling, drop, closing, close_existing, listener_closed, finished, unlink_path, in_live_set;
  int paused;      /* accepts only for its credit (cn_server_pause) */
  unsigned credit; /* connections a paused server may still accept */
  dev_t file_dev; /* the unix socket file this server bound, to remove only that one */
  ino_t file_ino;
};

static void on_readable(uv_poll_t *handle, int status, int events);
static void back_off(cn_server *srv, int err);

/* Each counter also counts in the loop's totals (cn_loop_stats). */
static void count_accept_error(cn_server *srv) {
  srv->stats.accept_errors++;
  cn__loop_stats(srv->loop)->accept_errors++;
}

static void set_polling(cn_server *srv, int on) {
  if (on == srv->polling) return;
  if (!on) {
    uv_poll_stop(&srv->poll);
    srv->polling = 0;
    return;
  }
  int rc = uv_poll_start(&srv->poll, UV_READABLE, on_readable);
  if (rc < 0) {
    back_off(srv, rc); /* logs, and tries again when the pause ends */
    return;
  }
  srv->polling = 1;
}

/* A connection could be taken now, were one pending. */
static int has_room(const cn_server *srv) {
  return !srv->closing && !(srv->backoff_ms && srv->backoff) && srv->stats.connections < srv->opts.max_connections;
}

static int may_accept(const cn_server *srv) { return has_room(srv) && (!srv->paused || srv->credit > 0); }

/* The one poll handle serves both the accept loop and the waiters of
 * cn_server_wait_pending (libuv allows one watcher per descriptor). */
static void update_polling(cn_server *srv) {
  set_polling(srv, may_accept(srv) || (has_room(srv) && !cn_list_empty(&srv->pending_waiters)));
}

/* What the latest close asked for is done: the listener is closed and, if
 * close_existing was asked (then or later), every connection too. */
static int close_done(const cn_server *srv) {
  return srv->listener_closed && (!srv->close_existing || srv->stats.connections == 0);
}

/* Close waiters hear once close_done holds. `finished` (out of the live
 * set) is set the first time; a later close(srv, 1) makes new waiters wait
 * for the connections again. */
static void check_finished(cn_server *srv) {
  if (!close_done(srv)) return;
  srv->refs++; /* the guard comes first: a woken waiter may release the server */
  if (!srv->finished) {
    srv->finished = 1;
    cn__object_remove(srv->loop, &srv->obj);
    srv->in_live_set = 0;
  }
  cn__waiters_fire_all(&srv->close_waiters, 0, 0);
  cn_server_unref(srv);
}

static void on_conn_closed(cn_stream *s, void *data) {
  cn_server *srv = data;
  cn_list_remove(&s->server_link);
  srv->stats.connections--;
  srv->stats.bytes_in += s->bytes_in;
  srv->stats.bytes_out += s->bytes_out;
  update_polling(srv);
  check_finished(srv);
}

static void on_backoff_end(cn_timer *t, void *data) {
  cn_server *srv = data;
  (void)t;
  cn_timer_close(srv->backoff);
  srv->backoff = NULL;
  update_polling(srv);
}

/* Out of descriptors or memory, or the poll failed: pause accepting,
 * doubling the pause each time, and say so. */
static void back_off(cn_server *srv, int err) {
  srv->backoff_ms = srv->backoff_ms ? CN_MIN(srv->backoff_ms * 2, CN_BACKOFF_MAX_MS) : CN_BACKOFF_MIN_MS;
  char where[128];
  cn_addr_format(&srv->addr, where, sizeof where);
  cn_loop_logf(srv->loop, "coronet: accept on %s failed: %s; pausing accepts for %u ms", where,
               cn_strerror(err), srv->backoff_ms);
  if (!srv->backoff && cn_timer_new(srv->loop, &srv->backoff) < 0) return;
  set_polling(srv, 0);
  cn_timer_start(srv->backoff, srv->backoff_ms, on_backoff_end, srv);
}

/* Makes the stream of an accepted descriptor, counted as the server's
 * connection; 0, or an error once the descriptor is closed. */
static int adopt(cn_server *srv, int fd, const cn_addr *peer, cn_stream **out) {
  cn_stream *s;
  int kind = cn_addr_family(peer) == AF_UNIX ? CN_STREAM_UNIX : CN_STREAM_TCP;
  int rc = cn__stream_open_fd_as(srv->loop, fd, kind, &s);
  if (rc < 0) {
    close(fd);
    count_accept_error(srv);
    return rc;
  }
  cn_stream_configure(s, &srv->stream_opts);
  cn_list_push(&srv->conns, &s->server_link);
  srv->stats.connections++;
  s->on_closed = on_conn_closed;
  s->on_closed_data = srv;
  *out = s;
  return 0;
}

/* Errors that belong to one pending connection: accept(2) says to retry as
 * for EAGAIN, and the next connection may be fine. */
static int is_connection_error(int err) {
  switch (err) {
    case EPROTO: case ENOPROTOOPT: case EHOSTDOWN: case ENONET: case EHOSTUNREACH:
    case ENETDOWN: case ENETUNREACH: case EPERM:
      return 1;
    default:
      return 0;
  }
}

enum { SKIPPED = 0, TOOK = 1 };

/* The one accept path, for the accept loop and cn_server_accept_pending.
 * Returns TOOK with *out a new connection (a reference for the caller) and
 * *peer its address; SKIPPED when that connection went (dropped, or an error
 * of its own: the next may be fine); or a negative code to stop: UV_EAGAIN
 * when no client is pending, else the error the server now backs off for.
 * Only the accept loop (for_credit) spends a paused server's credit. */
static int take_one(cn_server *srv, int for_credit, cn_stream **out, cn_addr *peer) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int fd = accept4(srv->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) return UV_EAGAIN;
    if (err == EINTR || err == ECONNABORTED) return SKIPPED;
    count_accept_error(srv);
    if (is_connection_error(err)) {
      char where[128];
      cn_addr_format(&srv->addr, where, sizeof where);
      cn_loop_logf(srv->loop, "coronet: accept on %s failed: %s", where, strerror(err));
      return SKIPPED;
    }
    /* Out of descriptors or memory, or the listener itself is broken (EINVAL
     * once it was shut down, whose poll then reports a hang-up at every turn):
     * retrying at once would spin. */
    back_off(srv, uv_translate_sys_error(err));
    return uv_translate_sys_error(err);
  }
  srv->backoff_ms = 0;
  srv->stats.accepted++;
  cn__loop_stats(srv->loop)->accepted++;
  if (for_credit && srv->paused && srv->credit > 0) srv->credit--;
  if (srv->drop) {
    close(fd);
    srv->stats.dropped++;
    cn__loop_stats(srv->loop)->dropped++;
    return SKIPPED;
  }
  if (cn_addr_from_sockaddr(peer, (struct sockaddr *)&ss, len) < 0) *peer = srv->addr;
  return adopt(srv, fd, peer, out) < 0 ? SKIPPED : TOOK;
}

/* One accept for the accept loop; returns 0 to go on, 1 to stop this batch. */
static int accept_one(cn_server *srv) {
  cn_stream *s = NULL;
  cn_addr peer;
  int rc = take_one(srv, 1, &s, &peer);
  if (rc == TOOK) srv->on_conn(srv, s, &peer, srv->data);
  return rc < 0;
}

/* On POLLERR libuv stops the poll handle and reports UV_EBADF: the server
 * would stop accepting without a word. It logs, pauses and polls again. */
static void on_poll_error(cn_server *srv, int status) {
  srv->polling = 0; /* libuv stopped it */
  count_accept_error(srv);
  if (!srv->closing) back_off(srv, status);
}

/* The accept loop stops at max_connections and stops polling, so clients
 * arriving later go unseen (they wait in the backlog, or the kernel turns
 * them away when it is full); a client already waiting when it stops is
 * seen, with one poll(2) on this path only, and counted as refused. */
static void count_refusal(cn_server *srv) {
  if (srv->closing || srv->stats.connections < srv->opts.max_connections) return;
  struct pollfd pfd = {.fd = srv->fd, .events = POLLIN};
  if (poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN)) cn__loop_stats(srv->loop)->refused++;
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  cn_server *srv = CN_CONTAINER_OF(handle, cn_server, poll);
  (void)events;
  if (status < 0) {
    on_poll_error(srv, status);
    return;
  }
  srv->refs++; /* a handler or a woken waiter may close and release the server */
  cn__waiters_fire_all(&srv->pending_waiters, 0, 0);
  for (unsigned i = 0; i < srv->opts.max_accepts_per_batch && may_accept(srv); i++)
    if (accept_one(srv)) break;
  count_refusal(srv);
  if (!srv->closing) update_polling(srv);
  cn_server_unref(srv);
}

static void close_for_loop(cn__object *obj, int abort) {
  (void)abort;
  cn_server_close(CN_CONTAINER_OF(obj, cn_server, obj), 0);
}

static void apply_defaults(cn_server_opts *o) {
  if (!o->max_connections) o->max_connections = CN_DEFAULT_MAX_CONNECTIONS;
  if (!o->max_accepts_per_batch) o->max_accepts_per_batch = CN_DEFAULT_ACCEPTS_PER_BATCH;
  if (o->backlog <= 0 && !o->exact_backlog) o->backlog = CN_DEFAULT_BACKLOG;
}

/* listen(2)'s backlog: the default for <= 0, unless asked to pass it as
 * given (0 included: a queue that is full at once, for tests and callers
 * that want no waiting room). */
static int backlog_of(const cn_server_opts *opts) {
  if (opts && opts->exact_backlog) return opts->backlog < 0 ? 0 : opts->backlog;
  return opts && opts->backlog > 0 ? opts->backlog : CN_DEFAULT_BACKLOG;
}

static int start(cn_loop *loop, int fd, const cn_server_opts *opts, cn_server_conn_fn on_conn, void *data,
                 cn_server **out) {
  if (listen(fd, backlog_of(opts)) < 0) return uv_translate_sys_error(errno);
  cn_server *srv = calloc(1, sizeof *srv);
  if (!srv) return UV_ENOMEM;
  if (opts) srv->opts = *opts;
  apply_defaults(&srv->opts);
  int rc = uv_poll_init_socket(cn_loop_uv(loop), &srv->poll, fd);
  if (rc < 0) {
    free(srv);
    return rc;
  }
  srv->loop = loop;
  srv->fd = fd;
  srv->refs = 1;
  srv->on_conn = on_conn;
  srv->data = data;
  cn_list_init(&srv->conns);
  cn_list_init(&srv->close_waiters);
  cn_list_init(&srv->pending_waiters);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) cn_addr_from_sockaddr(&srv->addr, (struct sockaddr *)&ss, len);
  cn__object_add(loop, &srv->obj, close_for_loop);
  srv->in_live_set = 1;
  srv->paused = srv->opts.paused;
  update_polling(srv);
  *out = srv;
  return 0;
}

/* A socket file left at a unix path (by a server that died without closing)
 * makes bind fail with EADDRINUSE. Asked to, the server removes it first, as
 * Eio does with reuse_addr; a file that is not a socket stays. */
static void remove_stale_socket_file(const cn_addr *addr) {
  const char *path = ((const struct sockaddr_un *)&addr->ss)->sun_path;
  struct stat st;
  if (path[0] && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path);
}

static int bind_socket(const cn_addr *addr, const cn_server_opts *opts, int *out) {
  int family = cn_addr_family(addr), on = 1;
  if (family == AF_UNIX && opts && opts->remove_stale) remove_stale_socket_file(addr);
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return uv_translate_sys_error(errno);
  if (family != AF_UNIX) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (opts && opts->reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) < 0) {
    int err = uv_translate_sys_error(errno);
    close(fd);
    return err;
  }
  if (bind(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0) {
    int err = uv_translate_sys_error(errno);
    close(fd);
    return err;
  }
  *out = fd;
  return 0;
}

static const char *unix_path(const cn_server *srv) { return ((const struct sockaddr_un *)&srv->addr.ss)->sun_path; }

/* Remembers which file bind made: the path may later name another file (the
 * file removed and a newer server bound there), which close must leave alone. */
static void remember_file(cn_server *srv, const cn_addr *addr) {
  struct stat st;
  srv->addr = *addr;
  if (stat(unix_path(srv), &st) < 0) return; /* nothing to remove at close */
  srv->file_dev = st.st_dev;
  srv->file_ino = st.st_ino;
  srv->unlink_path = 1;
}

static void remove_file(const cn_server *srv) {
  struct stat st;
  if (!srv->unlink_path || lstat(unix_path(srv), &st) < 0) return;
  if (st.st_dev == srv->file_dev && st.st_ino == srv->file_ino) unlink(unix_path(srv));
}

int cn_server_listen(cn_loop *loop, const cn_addr *addr, const cn_server_opts *opts, cn_server_conn_fn on_conn,
                     void *data, cn_server **out) {
  int fd = -1;
  int rc = bind_socket(addr, opts, &fd);
  if (rc < 0) return rc;
  rc = start(loop, fd, opts, on_conn, data, out);
  if (rc < 0) {
    close(fd);
    if (cn_addr_family(addr) == AF_UNIX) unlink(((const struct sockaddr_un *)&addr->ss)->sun_path);
    return rc;
  }
  if (cn_addr_family(addr) == AF_UNIX) remember_file(*out, addr);
  return 0;
}

int cn_server_listen_fd(cn_loop *loop, int fd, const cn_server_opts *opts, cn_server_conn_fn on_conn, void *data,
                        cn_server **out) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return uv_translate_sys_error(errno);
  return start(loop, fd, opts, on_conn, data, out);
}

void cn_server_ref(cn_server *srv) { srv->refs++; }

/* Connections outlive a server closed without close_existing: they forget it. */
static void detach_connections(cn_server *srv) {
  cn_list *link;
  while ((link = cn_list_first(&srv->conns)) != NULL) {
    cn_stream *s = CN_CONTAINER_OF(link, cn_stream, server_link);
    cn_list_remove(link);
    s->on_closed = NULL;
    s->on_closed_data = NULL;
  }
}

void cn_server_unref(cn_server *srv) {
  CN_ASSERT(srv->refs > 0);
  if (--srv->refs > 0) return;
  if (srv->finished) {
    detach_connections(srv);
    free(srv);
  } else {
    cn_server_close(srv, 0);
  }
}

static void on_listener_closed(uv_handle_t *handle) {
  cn_server *srv = CN_CONTAINER_OF(handle, cn_server, poll);
  close(srv->fd);
  remove_file(srv);
  srv->listener_closed = 1;
  check_finished(srv);
  cn_server_unref(srv); /* the reference cn_server_close took */
}

static void abort_connections(cn_server *srv) {
  cn_list *link;
  for (link = srv->conns.next; link != &srv->conns; link = link->next)
    cn__stream_cut(CN_CONTAINER_OF(link, cn_stream, server_link), CN_ECLOSED);
}

void cn_server_close(cn_server *srv, int close_existing) {
  if (close_existing && !srv->close_existing) {
    srv->close_existing = 1;
    abort_connections(srv);
  }
  if (srv->closing) return;
  srv->closing = 1;
  if (srv->backoff) {
    cn_timer_close(srv->backoff);
    srv->backoff = NULL;
  }
  set_polling(srv, 0);
  cn__waiters_fire_all(&srv->pending_waiters, CN_ECLOSED, 1);
  srv->refs++; /* released by on_listener_closed */
  uv_close((uv_handle_t *)&srv->poll, on_listener_closed);
}

void cn_server_abort_connections(cn_server *srv) { abort_connections(srv); }

void cn_server_pause(cn_server *srv, int paused) {
  srv->paused = paused;
  srv->credit = 0;
  if (!srv->closing) update_polling(srv);
}

void cn_server_add_credit(cn_server *srv, int n) {
  if (n < 0)
    srv->credit = (unsigned)-n > srv->credit ? 0 : srv->credit - (unsigned)-n;
  else
    srv->credit += (unsigned)n;
  if (!srv->closing) update_polling(srv);
}

void cn_server_set_max_connections(cn_server *srv, unsigned max_connections) {
  srv->opts.max_connections = max_connections ? max_connections : CN_DEFAULT_MAX_CONNECTIONS;
  if (!srv->closing) update_polling(srv);
}

void cn_server_close_wait(cn_server *srv, cn_waiter *w) {
  cn__waiter_attach(&srv->close_waiters, w, srv->loop, 0);
  if (close_done(srv)) cn__waiter_fire_later(w, 0);
}

/* At most a batch of tries: in drop mode, or past connections that fail on
 * their own, the call stays bounded; UV_EAGAIN then, as the loop's batch
 * ends, and the next call goes on. At max_connections nothing is taken
 * (UV_EAGAIN: no client can be accepted now), as the accept loop takes
 * none; cn_server_wait_pending waits for room too, so a polling loop does
 * not spin. */
int cn_server_accept_pending(cn_server *srv, cn_stream **out, cn_addr *peer) {
  if (srv->closing) return CN_ECLOSED;
  int rc = UV_EAGAIN;
  for (unsigned i = 0; i < srv->opts.max_accepts_per_batch; i++) {
    if (srv->stats.connections >= srv->opts.max_connections) {
      rc = UV_EAGAIN;
      break;
    }
    rc = take_one(srv, 0, out, peer);
    if (rc != SKIPPED) break;
    rc = UV_EAGAIN;
  }
  update_polling(srv); /* at max_connections now, or backing off */
  return rc == TOOK ? 0 : rc;
}

static void on_pending_waiter_cancelled(void *owner) { update_polling(owner); }

int cn_server_wait_pending(cn_server *srv, cn_waiter *w) {
  if (srv->closing) return CN_ECLOSED;
  if (!srv->paused) return CN_EBUSY;
  cn__waiter_attach(&srv->pending_waiters, w, srv->loop, 0);
  cn__waiter_on_cancel(w, on_pending_waiter_cancelled, srv);
  update_polling(srv); /* a client already pending shows at the next poll */
  return 0;
}

int cn_server_is_closed(const cn_server *srv) { return srv->closing; }
int cn_server_is_close_finished(const cn_server *srv) { return close_done(srv); }
void cn_server_set_drop(cn_server *srv, int drop) { srv->drop = drop; }
unsigned cn_server_num_connections(const cn_server *srv) { return srv->stats.connections; }
int cn_server_fileno(const cn_server *srv) { return srv->listener_closed ? CN_ECLOSED : srv->fd; }

int cn_server_address(const cn_server *srv, cn_addr *out) {
  *out = srv->addr;
  return 0;
}

void cn_server_set_stream_opts(cn_server *srv, const cn_stream_opts *opts) { srv->stream_opts = *opts; }

void cn_server_stats_get(const cn_server *srv, cn_server_stats *out) {
  *out = srv->stats;
  for (const cn_list *link = srv->conns.next; link != &srv->conns; link = link->next) {
    const cn_stream *s = CN_CONTAINER_OF(link, cn_stream, server_link);
    out->bytes_in += s->bytes_in;
    out->bytes_out += s->bytes_out;
  }
}
