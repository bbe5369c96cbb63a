/* stream.c: one stream: a tcp or unix socket, a pipe or a terminal. Owns
 * the libuv handle, counts its references, and runs the one close sequence:
 * stop reading, flush (bounded), shut down, close the fd.
 *
 * Who calls whom: the public API and the core's connect.c, server.c and
 * process.c call in; this file calls the reader and writer (reader.c,
 * writer.c), which call the stream's top transport (transport.h), whose
 * base reads and writes the handle this file opens and closes. Events come
 * back up: the transport's to the reader and writer, theirs to this file
 * (cn__stream_maybe_finish: a half is done). A stacked transport is pushed
 * here, and closed and released with the handle. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "stream.h"

static void close_for_loop(cn__object *obj, int abort) {
  cn_stream *s = CN_CONTAINER_OF(obj, cn_stream, obj);
  if (abort)
    cn_stream_abort(s, CN_ECLOSED);
  else
    cn_stream_close(s);
}

void cn__stream_add_stats(const cn__object *obj, cn_loop_stats *st) {
  if (obj->close_all != close_for_loop) return;
  const cn_stream *s = CN_CONTAINER_OF(obj, cn_stream, obj);
  st->connections_open++;
  st->bytes_in += s->bytes_in;
  st->bytes_out += s->bytes_out;
}

int cn__stream_new(cn_loop *loop, int kind, cn_stream **out) {
  cn_stream *s = calloc(1, sizeof *s);
  if (!s) return UV_ENOMEM;
  s->loop = loop;
  s->refs = 1;
  s->kind = kind;
  cn_list_init(&s->close_waiters);
  cn_list_init(&s->server_link);
  cn__transport_init_plain(s);
  cn__reader_init(s);
  cn__writer_init(s);
  cn__object_add(loop, &s->obj, close_for_loop);
  *out = s;
  return 0;
}

/* Frees a stream whose handle was never initialised. */
static void discard(cn_stream *s) {
  cn__object_remove(s->loop, &s->obj);
  free(s);
}

int cn__stream_new_pipe(cn_loop *loop, cn_stream **out) {
  cn_stream *s;
  int rc = cn__stream_new(loop, CN_STREAM_UNIX, &s);
  if (rc < 0) return rc;
  rc = uv_pipe_init(cn_loop_uv(loop), &s->h.pipe, 0);
  if (rc < 0) {
    discard(s);
    return rc;
  }
  *out = s;
  return 0;
}

int cn_stream_new_tcp(cn_loop *loop, int family, cn_stream **out) {
  cn_stream *s;
  int rc = cn__stream_new(loop, CN_STREAM_TCP, &s);
  if (rc < 0) return rc;
  rc = uv_tcp_init_ex(cn_loop_uv(loop), &s->h.tcp, (unsigned)family);
  if (rc < 0) {
    discard(s);
    return rc;
  }
  *out = s;
  return 0;
}

static int is_listening(int fd) {
  int on = 0;
  socklen_t len = sizeof on;
  return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on;
}

/* The stream kind of fd, or why it cannot be one: UV_EBADF when it is not
 * open, UV_EINVAL for what libuv cannot stream (epoll refuses regular files
 * and devices; a datagram or listening socket carries no byte stream). */
static int kind_of_fd(int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0) return uv_translate_sys_error(errno);
  switch (uv_guess_handle(fd)) {
  case UV_TTY:
    return CN_STREAM_TTY;
  case UV_TCP:
    return is_listening(fd) ? UV_EINVAL : CN_STREAM_TCP;
  case UV_NAMED_PIPE: /* a unix stream socket, or a pipe or FIFO */
    if (!S_ISSOCK(st.st_mode)) return CN_STREAM_PIPE;
    return is_listening(fd) ? UV_EINVAL : CN_STREAM_UNIX;
  default:
    return UV_EINVAL;
  }
}

static int init_handle(cn_stream *s, int fd) {
  uv_loop_t *uv = cn_loop_uv(s->loop);
  switch (s->kind) {
  case CN_STREAM_TCP:
    return uv_tcp_init(uv, &s->h.tcp);
  case CN_STREAM_TTY:
    return uv_tty_init(uv, &s->h.tty, fd, 0);
  default:
    return uv_pipe_init(uv, &s->h.pipe, 0);
  }
}

/* libuv reopens a terminal so that its non-blocking mode stays private: the
 * handle then holds a new descriptor, and fd (dup2'd onto the reopened
 * terminal) is ours to close. */
static int open_handle(cn_stream *s, int fd) {
  uv_os_fd_t held;
  switch (s->kind) {
  case CN_STREAM_TCP:
    return uv_tcp_open(&s->h.tcp, fd);
  case CN_STREAM_TTY:
    if (uv_fileno(&s->h.handle, &held) == 0 && held != fd) close(fd);
    return 0;
  default:
    return uv_pipe_open(&s->h.pipe, fd);
  }
}

int cn_stream_open_fd(cn_loop *loop, int fd, cn_stream **out) {
  int kind = kind_of_fd(fd);
  return kind < 0 ? kind : cn__stream_open_fd_as(loop, fd, kind, out);
}

int cn__stream_open_fd_as(cn_loop *loop, int fd, int kind, cn_stream **out) {
  cn_stream *s;
  int rc = cn__stream_new(loop, kind, &s);
  if (rc < 0) return rc;
  rc = init_handle(s, fd);
  if (rc < 0) {
    discard(s);
    return rc;
  }
  rc = open_handle(s, fd);
  if (rc < 0) {
    /* The handle holds no fd after a failed open: closing it leaves the caller's fd alone. */
    cn__stream_close_handle(s, CN_ECLOSED);
    cn_stream_unref(s);
    return rc;
  }
  cn__stream_connected(s);
  *out = s;
  return 0;
}

int cn_stream_open_dup(cn_loop *loop, int fd, cn_stream **out) {
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3); /* never 0-2, which name the process's stdio */
  if (copy < 0) return uv_translate_sys_error(errno);
  int rc = cn_stream_open_fd(loop, copy, out);
  if (rc < 0)
    close(copy);
  else
    (*out)->shared = 1;
  return rc;
}

int cn_stream_kind(const cn_stream *s) { return s->kind; }

static int is_socket(const cn_stream *s) { return s->kind == CN_STREAM_TCP || s->kind == CN_STREAM_UNIX; }

/* A socket whose state (its sending side, its linger, its input) is ours alone to change. */
static int owns_socket(const cn_stream *s) { return is_socket(s) && !s->shared; }

void cn__stream_connected(cn_stream *s) {
  s->connected = 1;
  if (s->kind == CN_STREAM_TCP) (void)uv_tcp_nodelay(&s->h.tcp, 1); /* a latency default; a socket that refuses it still works */
  if (!uv_is_writable(&s->h.stream)) cn_writer_close(s);
  if (!uv_is_readable(&s->h.stream))
    cn_reader_close(s);
  else
    cn__reader_update(s);
}

void cn_stream_ref(cn_stream *s) { s->refs++; }

void cn_stream_unref(cn_stream *s) {
  CN_ASSERT(s->refs > 0);
  if (--s->refs > 0) return;
  if (s->state == CN_STREAM_CLOSED)
    free(s);
  else if (s->state == CN_STREAM_OPEN)
    cn_stream_close(s);
}

void cn_stream_configure(cn_stream *s, const cn_stream_opts *o) {
  if (o->reader_buffer_size) s->r.cap = o->reader_buffer_size;
  if (o->writer_buffer_size) s->w.hwm = o->writer_buffer_size;
  if (o->buffer_age_limit_ms) s->w.age_limit_ms = o->buffer_age_limit_ms;
  if (o->close_timeout_ms) s->w.close_timeout_ms = o->close_timeout_ms;
  cn__reader_update(s);
}

cn_loop *cn_stream_loop(const cn_stream *s) { return s->loop; }
int cn_stream_is_unix(const cn_stream *s) { return s->kind == CN_STREAM_UNIX; }

int cn_stream_bind(cn_stream *s, const cn_addr *addr) {
  if (s->kind != CN_STREAM_TCP || s->state != CN_STREAM_OPEN) return UV_EINVAL;
  return uv_tcp_bind(&s->h.tcp, (const struct sockaddr *)&addr->ss, 0);
}

int cn_stream_fileno(const cn_stream *s) {
  uv_os_fd_t fd;
  if (s->state != CN_STREAM_OPEN) return CN_ECLOSED;
  int rc = uv_fileno(&s->h.handle, &fd);
  return rc < 0 ? rc : fd;
}

static int name_of(const cn_stream *s, cn_addr *out, int peer) {
  int fd = cn_stream_fileno(s);
  if (fd < 0) return fd;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int rc = peer ? getpeername(fd, (struct sockaddr *)&ss, &len) : getsockname(fd, (struct sockaddr *)&ss, &len);
  if (rc < 0) return uv_translate_sys_error(errno);
  return cn_addr_from_sockaddr(out, (struct sockaddr *)&ss, len);
}

int cn_stream_peername(const cn_stream *s, cn_addr *out) { return name_of(s, out, 1); }
int cn_stream_sockname(const cn_stream *s, cn_addr *out) { return name_of(s, out, 0); }

int cn_stream_set_nodelay(cn_stream *s, int on) {
  if (s->kind != CN_STREAM_TCP) return UV_ENOTSUP;
  if (s->state != CN_STREAM_OPEN) return CN_ECLOSED;
  return uv_tcp_nodelay(&s->h.tcp, on);
}

int cn_stream_set_keepalive(cn_stream *s, int on, unsigned delay_s) {
  if (s->kind != CN_STREAM_TCP) return UV_ENOTSUP;
  if (s->state != CN_STREAM_OPEN) return CN_ECLOSED;
  return uv_tcp_keepalive(&s->h.tcp, on, delay_s ? delay_s : 60);
}

int cn_stream_set_reuseaddr(cn_stream *s, int on) {
  if (!is_socket(s)) return UV_ENOTSUP;
  int fd = cn_stream_fileno(s);
  if (fd < 0) return fd;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0) return uv_translate_sys_error(errno);
  return 0;
}

int cn_stream_get_option(const cn_stream *s, cn_sockopt opt, int *on) {
  static const int levels[] = {IPPROTO_TCP, SOL_SOCKET, SOL_SOCKET};
  static const int names[] = {TCP_NODELAY, SO_KEEPALIVE, SO_REUSEADDR};
  int fd = cn_stream_fileno(s), value = 0;
  socklen_t len = sizeof value;
  if (fd < 0) return fd;
  if (!is_socket(s) || (s->kind != CN_STREAM_TCP && opt != CN_OPT_REUSEADDR)) return UV_ENOTSUP;
  if (getsockopt(fd, levels[opt], names[opt], &value, &len) < 0) return uv_translate_sys_error(errno);
  *on = value != 0;
  return 0;
}

int cn_stream_shutdown(cn_stream *s, int how) {
  if (s->state != CN_STREAM_OPEN) return CN_ECLOSED;
  if (how == SHUT_RD || how == SHUT_RDWR) {
    int fd = cn_stream_fileno(s);
    if (fd >= 0 && s->connected && owns_socket(s)) shutdown(fd, SHUT_RD);
    cn_reader_close(s);
  }
  if (how == SHUT_WR || how == SHUT_RDWR) cn_writer_close(s);
  return 0;
}

void cn_stream_close(cn_stream *s) {
  if (s->state != CN_STREAM_OPEN) return;
  if (!s->connected) {
    cn__stream_close_handle(s, CN_ECLOSED);
    return;
  }
  cn_reader_close(s);
  cn_writer_close(s);
}

/* An abort cuts whatever was still queued, so a connected TCP stream sends
 * a reset (SO_LINGER 0, as uv_tcp_close_reset does; that call refuses while
 * a shutdown is pending, setsockopt does not): the peer then reads
 * ECONNRESET, not a clean end it would take for the whole message. Every
 * abort does this, the writer's own ones included (a stalled writer, a
 * final flush out of time): each cuts data. */
static void arm_reset(cn_stream *s) {
  struct linger now = {1, 0};
  int fd = cn_stream_fileno(s);
  if (s->kind != CN_STREAM_TCP || s->shared || !s->connected || fd < 0) return;
  (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &now, sizeof now); /* if refused, the close is a plain one */
}

void cn_stream_abort(cn_stream *s, int status) {
  if (s->state != CN_STREAM_OPEN) return;
  arm_reset(s);
  cn__stream_close_handle(s, status);
}

/* A close the program did not ask of this stream (its server closing every
 * connection) resets only if it drops bytes: the peer of an idle connection
 * sees a clean end. */
void cn__stream_cut(cn_stream *s, int status) {
  if (s->state != CN_STREAM_OPEN) return;
  if (cn_writer_pending(s) > 0) arm_reset(s);
  cn__stream_close_handle(s, status);
}

int cn_stream_is_closing(const cn_stream *s) {
  return s->state != CN_STREAM_OPEN || (s->r.closed && s->w.closing);
}
int cn_stream_is_closed(const cn_stream *s) { return s->state == CN_STREAM_CLOSED; }

void cn_stream_close_wait(cn_stream *s, cn_waiter *w) {
  cn__waiter_attach(&s->close_waiters, w, s->loop, 0);
  if (s->state == CN_STREAM_CLOSED) cn__waiter_fire_later(w, 0);
}

/* How the input ended. libuv reports UV_EOF without reading again when the
 * poll says the peer hung up right after a short read, and a reset (an
 * aborted peer) then looks like a clean end. The socket's pending error,
 * left unread by that shortcut, tells the two apart. Linux records a reset
 * that came after the peer's FIN as EPIPE (tcp_reset in CLOSE_WAIT): the
 * input had ended cleanly, as read() itself then says, so that is EOF. */
ssize_t cn__stream_end_status(cn_stream *s, ssize_t nread) {
  int fd = cn_stream_fileno(s), err = 0;
  socklen_t len = sizeof err;
  if (nread != UV_EOF || fd < 0 || s->kind == CN_STREAM_PIPE || s->kind == CN_STREAM_TTY) return nread;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err && err != EPIPE)
    return uv_translate_sys_error(err);
  return UV_EOF;
}

/* Closing a socket whose receive queue holds unread bytes makes Linux send a
 * reset instead of a FIN, and the peer may then lose data we already
 * flushed. So when unread bytes are found at close, they are dropped and the
 * stream lingers: it reads and drops until the peer's EOF, within the close
 * timeout, and only then closes. (Bytes that arrive only after the close
 * still meet a reset; nothing waits for a peer that sent nothing.) */
#define CN_DISCARD_READS 16

#define CN_DISCARD_CHUNK 4096u

/* Reads and drops what is queued now; returns 1 if there was anything. Only
 * sockets of our own: a pipe or a terminal sends no reset, draining a
 * terminal would eat the user's typing, and a shared socket's input is the
 * caller's to read. This
 * may run inside another reader's lending span (a fiber resumed by its read
 * callback closes this stream), so it reads into its own stack, never the
 * loop's scratch; the linger reads the rest. */
static int discard_unread(cn_stream *s) {
  int fd = cn_stream_fileno(s), found = 0;
  if (!s->connected || !owns_socket(s) || s->r.status != 0 || fd < 0) return 0;
  char sink[CN_DISCARD_CHUNK];
  for (int i = 0; i < CN_DISCARD_READS; i++) {
    ssize_t n = read(fd, sink, sizeof sink);
    if (n <= 0) break;
    s->bytes_in += (uint64_t)n;
    found = 1;
  }
  return found;
}

/* The lingering stream borrows the scratch like a reader (libuv calls these
 * two back to back) and drops what it reads. */
static void linger_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *out) {
  cn_stream *s = CN_CONTAINER_OF(handle, cn_stream, h.handle);
  size_t size;
  (void)suggested;
  out->base = cn__loop_scratch_lend(s->loop, &size);
  out->len = size;
}

static void linger_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  cn_stream *s = CN_CONTAINER_OF(stream, cn_stream, h.stream);
  if (cn__loop_scratch_owns(s->loop, buf->base)) cn__loop_scratch_return(s->loop);
  if (nread > 0) s->bytes_in += (uint64_t)nread;
  if (nread < 0) cn__stream_close_handle(s, CN_ECLOSED);
}

static void on_linger_timeout(cn_timer *t, void *data) {
  (void)t;
  cn__stream_close_handle(data, CN_ECLOSED);
}

/* The linger reads the handle under every transport: the reader is closed,
 * and a stacked transport has no more to say (its side is shut). */
static int start_linger(cn_stream *s) {
  if (!s->w.shut || s->w.status) return 0; /* no FIN sent: nothing to wait for */
  if (!s->w.timer && cn_timer_new(s->loop, &s->w.timer) < 0) return 0;
  uv_read_stop(&s->h.stream);
  s->r.reading = 0;
  if (uv_read_start(&s->h.stream, linger_alloc, linger_read) < 0) return 0;
  s->lingering = 1;
  cn_timer_start(s->w.timer, s->w.close_timeout_ms, on_linger_timeout, s);
  return 1;
}

void cn__stream_maybe_finish(cn_stream *s) {
  if (s->state != CN_STREAM_OPEN || s->lingering || !s->r.closed || !cn__writer_done(s)) return;
  if (discard_unread(s) && start_linger(s)) return;
  cn__stream_close_handle(s, CN_ECLOSED);
}

/* The stacked transports stop when the handle starts closing, top first. */
static void close_transports(cn_stream *s) {
  for (cn_transport *t = cn__transport_top(s); t != &s->base; t = cn__transport_below(s, t)) t->vt->close(s, t);
}

/* Once the handle is closed no event can reach them: they are freed. */
static void release_transports(cn_stream *s) {
  cn_transport *t = s->base.above;
  s->base.above = NULL;
  while (t) {
    cn_transport *next = t->above;
    t->vt->release(s, t);
    t = next;
  }
  free(s->req);
  s->req = NULL;
}

static void on_handle_closed(uv_handle_t *handle) {
  cn_stream *s = CN_CONTAINER_OF(handle, cn_stream, h.handle);
  /* The guard comes first: the waiters released below and the server's hook
   * may run user code (a fiber resumed at once) that drops the last reference. */
  s->refs++;
  s->state = CN_STREAM_CLOSED;
  cn__object_remove(s->loop, &s->obj);
  cn_loop_stats *totals = cn__loop_stats(s->loop); /* its bytes move from the live set to the totals */
  totals->bytes_in += s->bytes_in;
  totals->bytes_out += s->bytes_out;
  cn__reader_release(s);
  cn__writer_release(s);
  release_transports(s);
  if (s->on_closed) s->on_closed(s, s->on_closed_data);
  cn__waiters_fire_all(&s->close_waiters, 0, 0);
  cn_stream_unref(s);
}

void cn__stream_close_handle(cn_stream *s, int status) {
  s->state = CN_STREAM_CLOSING;
  s->r.closed = 1;
  if (!s->w.status) s->w.status = status;
  cn__reader_fail_waiters(s, status, 1);
  cn__writer_fail_waiters(s, status, 1);
  if (s->w.timer) {
    cn_timer_close(s->w.timer);
    s->w.timer = NULL;
  }
  cn_loop_unpost(s->loop, &s->w.flush_task);
  close_transports(s);
  uv_close(&s->h.handle, on_handle_closed);
}

int cn__stream_push_transport(cn_stream *s, cn_transport *t) {
  CN_ASSERT(t->vt->adopt && t->vt->close && t->vt->release && t->vt->alloc && t->vt->read &&
            t->vt->written && t->vt->shut);
  if (s->state != CN_STREAM_OPEN || s->r.closed || s->w.closing) return CN_ECLOSED;
  if (!s->connected) return UV_ENOTCONN;
  if (s->r.status) return s->r.status;
  if (cn_writer_pending(s)) return CN_EBUSY;
  int rc = cn__reader_hand_off(s, t);
  if (rc == 0) {
    cn__transport_top(s)->above = t;
    t->above = NULL;
  }
  cn__reader_update(s);
  return rc;
}
