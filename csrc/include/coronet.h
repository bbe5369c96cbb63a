/*
 * coronet.h: the public C core API. Plain C99 over libuv; no Lua.
 *
 * Ownership in one paragraph: every object here (loop, stream, server,
 * connect operation, timer) is allocated by the core and freed by the core,
 * in the close callback of the libuv handle it embeds. Callers hold streams
 * through counted references (cn_stream_ref/unref). A waiting caller hands
 * in a cn_waiter it owns; the core calls its callback exactly once (result,
 * negative error, or an error when the object closes) unless the caller
 * cancels it first with cn_waiter_cancel. A callback never runs inside the
 * call that registered it: the core defers it to the next loop turn.
 *
 * Errors are negative ints: libuv's codes plus the CN_E* codes below.
 */
#ifndef CORONET_H
#define CORONET_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- errors */

/* coronet's own codes: name (stable string), kind (Eio category or NULL), message. */
#define CN_ERRNO_MAP(XX)                                                          \
  XX(TIMEOUT, -30001, "timeout", "timeout", "operation timed out")               \
  XX(CLOSED, -30002, "closed", NULL, "connection closed")                        \
  XX(BUSY, -30003, "busy", NULL, "another fiber is already waiting here")        \
  XX(CANCELLED, -30004, "cancelled", NULL, "operation cancelled")                \
  XX(LINE_TOO_LONG, -30005, "line_too_long", NULL, "line exceeds buffer size")   \
  XX(STALLED, -30006, "stalled", NULL, "unflushed data exceeded buffer age limit") \
  XX(NOADDR, -30007, "no_matching_addresses", "no_matching_addresses",           \
     "no address matched")                                                       \
  XX(TLS_HANDSHAKE, -30008, "tls_handshake", "tls", "TLS handshake failed")     \
  XX(TLS_VERIFY, -30009, "tls_verify", "tls", "TLS certificate verification failed") \
  XX(TLS_TRUNCATED, -30010, "tls_truncated", "tls",                              \
     "TLS stream truncated: the peer closed without close_notify")               \
  XX(TLS_PROTOCOL, -30011, "tls_protocol", "tls", "TLS protocol error")          \
  XX(TLS_CONFIG, -30012, "tls_config", "tls", "invalid TLS configuration")

enum {
#define CN__ERRNO_ENUM(name, value, str, kind, msg) CN_E##name = value,
  CN_ERRNO_MAP(CN__ERRNO_ENUM)
#undef CN__ERRNO_ENUM
  CN_E_MAX_ = 0
};

/* Stable code string: "timeout", "closed", ... or libuv's name ("ECONNREFUSED").
 * UV_EOF reads as "closed" and UV_ECANCELED as "cancelled". Never NULL. */
const char *cn_err_name(int err);
/* Eio's category ("refused", "timeout", "connection_reset", "no_matching_addresses") or NULL. */
const char *cn_err_kind(int err);
/* Human message. Never NULL. */
const char *cn_strerror(int err);
/* The positive errno behind a libuv code, or 0 for coronet's own codes. */
int cn_err_errno(int err);

/* ------------------------------------------------------------- addresses */

typedef struct cn_addr {
  struct sockaddr_storage ss; /* AF_INET, AF_INET6 or AF_UNIX */
  socklen_t len;
} cn_addr;

/* An IPv4 or IPv6 literal and a port (0..65535). UV_EINVAL if not a literal. */
int cn_addr_ip(cn_addr *out, const char *ip, int port);
/* A unix socket path. UV_ENAMETOOLONG if it does not fit sun_path (libuv would truncate). */
int cn_addr_unix(cn_addr *out, const char *path);
/* Copy a sockaddr the kernel gave us (len as returned by accept/getsockname). */
int cn_addr_from_sockaddr(cn_addr *out, const struct sockaddr *sa, socklen_t len);
int cn_addr_family(const cn_addr *a); /* AF_INET, AF_INET6, AF_UNIX */
int cn_addr_port(const cn_addr *a);   /* -1 for unix */
/* The IP text ("127.0.0.1", "::1") or the unix path ("" when unnamed) into buf. */
int cn_addr_host(const cn_addr *a, char *buf, size_t size);
/* "127.0.0.1:80", "[::1]:80" or the unix path. Returns the length written (truncating like snprintf). */
int cn_addr_format(const cn_addr *a, char *buf, size_t size);
int cn_addr_equal(const cn_addr *a, const cn_addr *b);

/* ------------------------------------------------------------------ loop */

typedef struct cn_loop cn_loop;

/* A task posted to run on the next loop turn, FIFO. The caller owns the
 * memory and keeps it alive while it is queued. Fields are private. */
typedef struct cn_task cn_task;
typedef void (*cn_task_fn)(cn_task *task);
struct cn_task {
  cn_task *next_;
  cn_task_fn fn_;
  int queued_;
};

/* An intrusive list link (circular, with a sentinel head). Private. */
typedef struct cn_list {
  struct cn_list *next, *prev;
} cn_list;

/* A waiter: the caller's slot for one pending result. Fields are private
 * except `data`, which belongs to the caller. */
typedef struct cn_waiter cn_waiter;
typedef void (*cn_wait_cb)(cn_waiter *w, int status);
struct cn_waiter {
  cn_list link_;            /* in the list of the object waited on */
  cn_wait_cb cb_;
  size_t want_;             /* reader: bytes wanted; writer: pending bytes allowed */
  int status_;              /* for a deferred delivery */
  cn_task task_;            /* for a deferred delivery */
  cn_loop *loop_;
  void (*on_cancel_)(void *owner); /* the object waited on, told when its waiter leaves */
  void *owner_;
  void *data;
};

/* Log sink for events an operator must hear about (accept errors...). */
typedef void (*cn_log_fn)(void *data, const char *msg);

/* A new core loop. host == NULL: coronet owns a fresh uv_loop_t. Otherwise
 * coronet borrows the host's loop and never closes it. */
int cn_loop_new(cn_loop **out, uv_loop_t *host);
uv_loop_t *cn_loop_uv(cn_loop *loop);
/* Runs uv_run once in `mode`. UV_EBUSY if the loop is already running (uv_run is not re-entrant). */
int cn_loop_run(cn_loop *loop, uv_run_mode mode);
int cn_loop_running(const cn_loop *loop);
/* Whether a pass of the loop has anything to do: an active or closing handle, a request or a task. */
int cn_loop_alive(cn_loop *loop);
void cn_loop_stop(cn_loop *loop);
uint64_t cn_loop_now(cn_loop *loop); /* loop time, ms, as cached at the start of the turn */
/* Refreshes the loop time (uv_update_time): a deadline taken after CPU work
 * in the same turn must count from now, not from the turn's start. */
void cn_loop_update_time(cn_loop *loop);
double cn_loop_hrnow(void);          /* monotonic seconds */
int cn_loop_backend_fd(cn_loop *loop);
/* Milliseconds the loop would block in poll: 0 with work due, -1 with nothing scheduled. */
int cn_loop_backend_timeout(cn_loop *loop);
/* Queue fn(task) for the next loop turn (before the loop next blocks). No-op if already queued. */
void cn_loop_post(cn_loop *loop, cn_task *task, cn_task_fn fn);
/* Remove a queued task; it will not run. Safe if not queued. */
void cn_loop_unpost(cn_loop *loop, cn_task *task);
/* Streams, servers, connect operations, datagram sockets, signal and poll watchers and child
 * processes not yet fully
 * closed (timers belong to their owners and are not counted). A connect
 * operation abandoned during DNS stops counting at once; its lookup finishes
 * in the threadpool and frees itself later (dns.c; lookups are never counted). */
size_t cn_loop_live(const cn_loop *loop);
/* Start closing every stream, server, connect operation, datagram socket, signal and poll watcher.
 * Streams flush (bounded by their close timeout) unless `abort`; waiters get
 * CN_ECLOSED. */
void cn_loop_close_all(cn_loop *loop, int abort);
/* Frees the loop. Requires cn_loop_live() == 0 and no queued task; closes an owned uv loop
 * (running it until its own handles are closed). */
void cn_loop_free(cn_loop *loop);
/* Silent until a logger is set. */
void cn_loop_set_logger(cn_loop *loop, cn_log_fn fn, void *data);
/* Logs through the loop's logger, at most CN_LOG_BURST lines per second (excess lines are counted and summarised). */
void cn_loop_logf(cn_loop *loop, const char *fmt, ...);
/* Loop-wide counters (totals since the loop was made, closed objects
 * included) and gauges (now), for an operator to scrape. Each counter is
 * counted beside the per-stream or per-server counter it totals. */
typedef struct cn_loop_stats {
  uint64_t accepted;         /* connections taken by every server (cn_server_stats.accepted) */
  uint64_t refused;          /* a server at max_connections stopped accepting with a client waiting in
                              * its backlog (left there, not closed); counted by the accept loop, at most
                              * once each time it reaches the limit */
  uint64_t dropped;          /* accepted and closed at once in drop mode (cn_server_stats.dropped) */
  uint64_t accept_errors;    /* cn_server_stats.accept_errors of every server */
  uint64_t bytes_in;         /* read by every stream, closed ones included */
  uint64_t bytes_out;        /* handed to the kernel by every stream, closed ones included */
  uint64_t connections_open; /* gauge: streams (of any kind) whose handle is not closed yet */
  uint64_t timers_pending;   /* gauge: cn_timer started and neither fired, stopped nor closed */
  uint64_t dns_in_flight;    /* gauge: getaddrinfo/getnameinfo requests out in the threadpool that an
                              * owner still waits for (one abandoned stops counting at once, as in
                              * cn_loop_live: its worker may finish after the loop is freed) */
  double loop_lag;           /* gauge, seconds: how late timers fired after their due time, the
                              * largest in the current and previous second of loop time (0 when
                              * none fired for 2 s) */
} cn_loop_stats;
/* Fills *out; walks the open streams to add their bytes (no work on the I/O path). */
void cn_loop_stats_get(const cn_loop *loop, cn_loop_stats *out);
/* Ignore SIGPIPE if it is at its default (libuv writes with write(2)). */
void cn_ignore_sigpipe(void);

/* ---------------------------------------------------------------- waiter */

void cn_waiter_init(cn_waiter *w, cn_wait_cb cb, void *data);
/* Detach w from whatever it waits on: its callback will not run. Safe if idle.
 * The object waited on hears of it at once (a reader re-evaluates reading, a
 * signal watcher with no waiter left closes). */
void cn_waiter_cancel(cn_waiter *w);
int cn_waiter_pending(const cn_waiter *w);

/* ----------------------------------------------------------------- timer */

typedef struct cn_timer cn_timer;
typedef void (*cn_timer_cb)(cn_timer *t, void *data);

int cn_timer_new(cn_loop *loop, cn_timer **out);
/* One shot after `ms`; restarting replaces the previous schedule. The callback runs from the loop. */
void cn_timer_start(cn_timer *t, uint64_t ms, cn_timer_cb cb, void *data);
void cn_timer_stop(cn_timer *t);
/* Stops and frees the timer (after libuv's close callback); its callback never runs again. */
void cn_timer_close(cn_timer *t);

/* ---------------------------------------------------------------- signal */

/* Waits for one delivery of signal `signum`: w->cb(w, signum) runs from the
 * loop, or w->cb(w, CN_ECLOSED) if the loop closes first. The watcher then
 * frees itself. While it waits it keeps the loop alive; cancelling the
 * waiter (cn_waiter_cancel) closes the watcher. */
int cn_signal_wait(cn_loop *loop, int signum, cn_waiter *w);
/* The number of a signal name ("SIGTERM", "TERM", "INT"...), or 0. */
int cn_signal_number(const char *name);

/* ------------------------------------------------------------------ poll */

/* Waits once for a descriptor of the caller's (a pipe, a socket made
 * elsewhere) to become ready for any of `events` (UV_READABLE, UV_WRITABLE,
 * UV_PRIORITIZED, or-ed; others are UV_EINVAL): w->cb(w, events) runs from
 * the loop with those that fired (> 0), or a negative error libuv reports
 * (UV_EBADF on an error condition of the descriptor), or CN_ECLOSED if
 * cn_loop_close_all comes first. The watcher (counted by cn_loop_live) then
 * frees itself; cancelling w closes it. The descriptor stays the caller's:
 * it is never closed, but libuv makes it non-blocking. Fails now: UV_EBADF
 * when fd is not open, UV_EEXIST when a handle of this loop already watches
 * it (a coronet socket, listener, datagram socket or another wait: libuv
 * allows one watcher per descriptor), or libuv's error (UV_EPERM for a
 * regular file, which epoll cannot watch). */
int cn_poll_wait(cn_loop *loop, int fd, int events, cn_waiter *w);
/* 1 if a handle of this loop (not closing) holds fd, else 0. */
int cn_poll_is_watched(cn_loop *loop, int fd);

/* ---------------------------------------------------------------- stream */

/* One connected (or connectable) stream with its buffered reader and
 * writer: a tcp or unix socket, a pipe or FIFO, or a terminal. Counted: whoever holds a pointer holds a reference. The fd
 * closes when cn_stream_close is called, when both halves are closed, or when
 * the last reference goes. The memory goes when the fd is closed and the last
 * reference is dropped. */
typedef struct cn_stream cn_stream;

typedef struct cn_stream_opts {
  size_t reader_buffer_size; /* cap on buffered input (longest line); 0 = default 64 KiB */
  size_t writer_buffer_size; /* high-water mark for cn_writer_wait users; 0 = default 64 KiB */
  uint64_t buffer_age_limit_ms; /* unflushed data older than this closes with CN_ESTALLED; 0 = keep (unlimited at first) */
  uint64_t close_timeout_ms;    /* bound on the final flush; 0 = default 5 s */
} cn_stream_opts;

/* A fresh, unconnected TCP socket of `family` (AF_INET or AF_INET6) for bind-before-connect. */
int cn_stream_new_tcp(cn_loop *loop, int family, cn_stream **out);
/* What a stream's descriptor is. TCP-only behaviour (nodelay by default,
 * the keepalive and nodelay options, the reset on abort, the pending-error
 * check at EOF) applies to CN_STREAM_TCP alone; the unread-input drain at
 * close to sockets alone. */
enum { CN_STREAM_TCP, CN_STREAM_UNIX, CN_STREAM_PIPE, CN_STREAM_TTY };
int cn_stream_kind(const cn_stream *s);

/* Adopt a descriptor libuv can stream: a connected tcp or unix stream
 * socket, a pipe or FIFO end, a terminal. On success the stream owns fd
 * (closing the stream closes it); on failure the caller keeps it. Errors:
 * UV_EBADF (not open), UV_EINVAL (a regular file, a directory, a device
 * other than a terminal, a datagram or listening socket: nothing libuv can
 * stream), UV_EEXIST (the loop already watches fd). Non-blocking mode is set
 * on the open file description, which every copy of fd shares (a dup, the
 * other end of a fork); a terminal is reopened by libuv first, so its mode
 * stays private. A half the descriptor cannot do (the read end of a pipe
 * cannot send) is closed from the start: closing the other half then
 * closes fd. */
int cn_stream_open_fd(cn_loop *loop, int fd, cn_stream **out);
/* The same over a duplicate of fd (F_DUPFD_CLOEXEC, numbered 3 or more):
 * closing the stream never closes the caller's fd, though the non-blocking
 * mode set on a pipe or socket is shared with it. */
int cn_stream_open_dup(cn_loop *loop, int fd, cn_stream **out);
void cn_stream_ref(cn_stream *s);
void cn_stream_unref(cn_stream *s);
void cn_stream_configure(cn_stream *s, const cn_stream_opts *opts);
cn_loop *cn_stream_loop(const cn_stream *s);
int cn_stream_bind(cn_stream *s, const cn_addr *addr);
int cn_stream_fileno(const cn_stream *s);
int cn_stream_is_unix(const cn_stream *s);
int cn_stream_peername(const cn_stream *s, cn_addr *out);
int cn_stream_sockname(const cn_stream *s, cn_addr *out);
int cn_stream_set_nodelay(cn_stream *s, int on);
int cn_stream_set_keepalive(cn_stream *s, int on, unsigned delay_s);
int cn_stream_set_reuseaddr(cn_stream *s, int on);
/* Reads a boolean socket option back: *on is 0 or 1. */
typedef enum { CN_OPT_NODELAY, CN_OPT_KEEPALIVE, CN_OPT_REUSEADDR } cn_sockopt;
int cn_stream_get_option(const cn_stream *s, cn_sockopt opt, int *on);
/* shutdown(2) for "receive" (SHUT_RD semantics: the reader closes) and "send" (writer closes). */
int cn_stream_shutdown(cn_stream *s, int how /* SHUT_RD, SHUT_WR, SHUT_RDWR */);
/* Graceful close: reader closes, writer flushes (bounded), shuts down, then the fd closes. Idempotent. */
void cn_stream_close(cn_stream *s);
/* Immediate close with `status` delivered to every waiter (CN_ECLOSED, CN_ESTALLED...).
 * Unflushed bytes are dropped, and a connected TCP stream sends a reset so
 * that the peer can tell (the writer's stall and close-timeout closes are
 * aborts too). Idempotent. */
void cn_stream_abort(cn_stream *s, int status);
int cn_stream_is_closing(const cn_stream *s);
int cn_stream_is_closed(const cn_stream *s); /* the fd is closed */
/* w->cb runs once the fd is closed (status 0). */
void cn_stream_close_wait(cn_stream *s, cn_waiter *w);


/* ---------------------------------------------------------------- reader */

/* The buffered bytes, contiguous; valid until the next core call on this stream. */
const char *cn_reader_peek(cn_stream *s, size_t *len);
/* Drop n buffered bytes (n <= buffered). Allowed while a waiter waits: its
 * wait then counts from what is left. */
void cn_reader_consume(cn_stream *s, size_t n);
size_t cn_reader_buffered(const cn_stream *s);
size_t cn_reader_capacity(const cn_stream *s);
/* 0 while more may come; UV_EOF or a negative error once the peer is done
 * (delivered only after every buffered byte was offered); CN_ECLOSED once closed. */
int cn_reader_status(const cn_stream *s);
/* Wait until more than the current buffered bytes are available, or at least
 * `want` are buffered (the buffer grows past its cap for this wait), or the
 * stream ends. Status 0, or the end status. CN_EBUSY if another waiter waits. */
int cn_reader_wait(cn_stream *s, cn_waiter *w, size_t want);
/* 1 while a waiter is attached (a second reader would get CN_EBUSY). */
int cn_reader_is_busy(const cn_stream *s);
/* Watch for the next read event without reading: w->cb(w, status) runs once,
 * from the read callback when bytes arrive (status 0, even if the waiter
 * consumed them all) or the input ends (its end status: UV_EOF,
 * UV_ECONNRESET...), or on the next loop turn when the reader or the stream
 * closes (CN_ECLOSED, or an abort's status). If the input has already ended
 * or the reader is closed, it runs on the next loop turn with that status. Any number of watchers may
 * wait beside the one waiter; they never start reading, never change how much
 * is read (a full buffer stays paused: consume to read on) and never make
 * the reader busy. cn_waiter_cancel detaches. A callback run from the read
 * callback may close the stream and drop its references (the read callback
 * holds one until it ends). Returns 0. */
int cn_reader_watch(cn_stream *s, cn_waiter *w);
/* Reader half closes: no more reads, waiter gets CN_ECLOSED. */
void cn_reader_close(cn_stream *s);
int cn_reader_is_closed(const cn_stream *s);
/* Moves the bytes buffered in `from` to the writer of `to` (no copy but the
 * writer's own), adding their count to *moved, while the writer's pending
 * bytes are at or below its high-water mark. Returns 0 at from's EOF with
 * everything moved; CN_TRANSFER_WAIT_READER when nothing is buffered (wait
 * with cn_reader_wait(from, w, 1), then call again); CN_TRANSFER_WAIT_WRITER
 * above the mark (wait with cn_writer_wait(to, w, cn_writer_hwm(to))); or a
 * negative error: the reader's (after its buffered bytes moved), the
 * writer's, or CN_ECLOSED once either stream closes. Shuts nothing down. */
enum { CN_TRANSFER_WAIT_READER = 1, CN_TRANSFER_WAIT_WRITER = 2, CN_TRANSFER_RUNNING = 3 };
int cn_reader_transfer(cn_stream *from, cn_stream *to, uint64_t *moved);

/* ---------------------------------------------------------------- transfer */

/* A pump: cn_reader_transfer driven from the core's own callbacks, so that
 * no caller code runs per chunk. It moves bytes with the step's
 * back-pressure (the writer holds at most its mark plus one chunk, the
 * reader pauses at its cap) until from's EOF, then shuts to's sending side
 * down if close_writer (cn_writer_close). Its result: 0 at EOF, or the error
 * that ended it (the reader's after its buffered bytes moved, the writer's,
 * CN_ECLOSED once either stream or half closes, CN_EBUSY if another waiter
 * took the reader). The caller owns the struct and keeps it alive until the
 * pump ended or was stopped; the pump holds a reference to each stream while
 * it runs. Fields are private. */
typedef struct cn_transfer {
  cn_stream *from_, *to_; /* NULL once it ended or was stopped */
  cn_waiter on_input_, on_room_;
  cn_list done_; /* the caller's waiter while it runs */
  uint64_t moved_;
  int close_writer_, writer_failed_;
} cn_transfer;

/* Starts the pump: what is buffered moves now. CN_TRANSFER_RUNNING while
 * it runs: `done` then fires exactly once with the result, never inside this
 * call, and cn_waiter_cancel(done) stops the pump (its own waits dropped, its
 * references let go; done never fires). Otherwise the result now (EOF
 * already there, an error; CN_EBUSY if a waiter already waits to read `from`
 * or for room in `to`), and done is not used. from == to echoes. */
int cn_transfer_start(cn_transfer *t, cn_stream *from, cn_stream *to, int close_writer, cn_waiter *done);
/* The bytes moved so far; readable at any time, also after the end or a cancel. */
uint64_t cn_transfer_moved(const cn_transfer *t);
/* After a failure: 1 if the writer's side failed (it has an error or is
 * closing), 0 if the reader's did. */
int cn_transfer_writer_failed(const cn_transfer *t);
/* Stops a running pump as cancelling its done waiter does (done never
 * fires). Idempotent; a no-op on a zeroed struct or an ended pump. */
void cn_transfer_stop(cn_transfer *t);

/* ---------------------------------------------------------------- writer */

/* Queue n bytes. Never waits: small writes in one loop turn are coalesced into
 * one system call before the loop next blocks. Fails with the writer's sticky
 * error (CN_ECLOSED after close, CN_ESTALLED, EPIPE...), or UV_ENOTCONN on a
 * socket not yet connected; a failed write queues nothing. */
int cn_writer_write(cn_stream *s, const char *p, size_t n);
/* As cn_writer_write, but on an idle writer (nothing pending or in flight)
 * the bytes go to the kernel now, by one non-blocking write, and only what it
 * does not take is queued: no copy and no flush task when it takes all. For
 * bytes that leave one at a time (the transfer's chunks); small writes that
 * should share a system call use cn_writer_write. */
int cn_writer_write_now(cn_stream *s, const char *p, size_t n);
/* Bytes accepted but not yet taken by the kernel. */
size_t cn_writer_pending(const cn_stream *s);
size_t cn_writer_hwm(const cn_stream *s);
/* Wait until at most `max_pending` bytes are pending (0: the kernel has all).
 * CN_EBUSY if another waiter waits. */
int cn_writer_wait(cn_stream *s, cn_waiter *w, size_t max_pending);
/* Nonzero while a waiter waits for room (max_pending > 0, a write above the
 * mark). Bytes appended meanwhile would pass the waiting write's, which it
 * appends only when woken: a caller that keeps writes in call order refuses
 * them (CN_EBUSY) instead, even below the mark (raised since the wait began). */
int cn_writer_room_awaited(cn_stream *s);
/* Flush (bounded by the close timeout), then shut down the sending side. Idempotent. */
void cn_writer_close(cn_stream *s);
int cn_writer_is_closed(const cn_stream *s);
int cn_writer_status(const cn_stream *s);
/* Nonzero once accepted bytes were discarded unsent (an abort, a write error,
 * a final flush cut short): a flush can then no longer succeed. */
int cn_writer_dropped(const cn_stream *s);
uint64_t cn_stream_bytes_in(const cn_stream *s);
uint64_t cn_stream_bytes_out(const cn_stream *s);

/* --------------------------------------------------------------- process */

/* A child process (uv_spawn) whose stdin and stdout are pipes to this one
 * (socket pairs, as libuv makes them); its stderr is this process's. One
 * owner holds it from cn_process_spawn until cn_process_close. Closing never
 * kills the child: the process stays in the loop's live set, keeping the
 * loop alive, until the child has exited and been reaped; the memory goes
 * once both the owner and the handle are done. A child still running when
 * the loop closes everything (cn_loop_close_all, and so the end of
 * coronet.run or the Lua state's close) is sent SIGTERM, or SIGKILL for an
 * abort, and reaped when it ends. */
typedef struct cn_process cn_process;

typedef struct cn_process_opts {
  const char *file; /* the program: a path, or a name looked up in PATH */
  char **args;      /* NULL-terminated; args[0] is the program's name */
  char **env;       /* "NAME=value" strings, NULL-terminated; NULL: this process's environment */
  const char *cwd;  /* NULL: this process's directory */
} cn_process_opts;

/* Starts the child. On success *child_stdin (write to it; its reader is
 * closed) and *child_stdout (read from it) are connected streams, one
 * reference each for the caller; closing child_stdin's writer shuts the
 * pipe down and the child reads EOF. On failure (UV_ENOENT for a program
 * not found, UV_EACCES, UV_EMFILE...) nothing is left open. */
int cn_process_spawn(cn_loop *loop, const cn_process_opts *opts, cn_process **out, cn_stream **child_stdin,
                     cn_stream **child_stdout);
int cn_process_pid(const cn_process *p);
/* Sends signum to the child. UV_ESRCH once it has exited (its pid may be
 * reused), CN_ECLOSED once the loop closed it. */
int cn_process_kill(cn_process *p, int signum);
/* w->cb(w, 0) runs once the child has exited (on the next loop turn if it
 * already has); CN_ECLOSED if the owner closes the process first. Several
 * waiters may wait. */
void cn_process_exit_wait(cn_process *p, cn_waiter *w);
/* 1 once the child has exited, with its exit code and the signal that
 * ended it (0 if none); 0 while it runs. */
int cn_process_exit_status(const cn_process *p, int64_t *code, int *signal);
/* The owner lets go: exit waiters get CN_ECLOSED (deferred); the child
 * runs on, and is reaped when it exits. Call once; do not use p after. */
void cn_process_close(cn_process *p);

/* ------------------------------------------------------------------- dns */

/* One lookup on libuv's threadpool (getaddrinfo or getnameinfo). The owner
 * holds the op from start until cn_dns_close; the op is not in the loop's
 * live set (like a timer, it belongs to its owner). */
typedef struct cn_dns cn_dns;

#define CN_DNS_MAX_HOST 255 /* bytes in a DNS name (RFC 1035) */

typedef struct cn_dns_query {
  const char *host;    /* a DNS name or an IP literal; required */
  size_t host_len;     /* its length; 0 = strlen(host). A name with a NUL byte
                        * or over CN_DNS_MAX_HOST bytes fails with UV_EAI_NONAME, at once */
  const char *service; /* a port number as text or a service name ("http"), or NULL (port 0) */
  int family;          /* AF_UNSPEC, AF_INET or AF_INET6 */
  int socktype;        /* 0 (stream and datagram), SOCK_STREAM or SOCK_DGRAM */
} cn_dns_query;

/* Starts getaddrinfo. w->cb runs once, from the loop: 0 (then read
 * cn_dns_addrinfo) or a negative code (UV_EAI_NONAME, UV_EAI_SERVICE...).
 * Fails now, and the callback never runs, on a bad name or no memory. */
int cn_dns_getaddrinfo(cn_loop *loop, const cn_dns_query *q, cn_waiter *w, cn_dns **out);
/* Starts getnameinfo of an IP address with NI_* flags (NI_DGRAM...). w->cb as above,
 * then read cn_dns_host and cn_dns_service. A unix address fails now with UV_EAI_FAMILY. */
int cn_dns_getnameinfo(cn_loop *loop, const cn_addr *addr, int flags, cn_waiter *w, cn_dns **out);
/* After a successful getaddrinfo: the resolver's list, in its order, owned by op. */
const struct addrinfo *cn_dns_addrinfo(const cn_dns *op);
/* After a successful getnameinfo: the host name and service, owned by op. */
const char *cn_dns_host(const cn_dns *op);
const char *cn_dns_service(const cn_dns *op);
/* Walks a getaddrinfo list: the address after *cursor (NULL: from the start)
 * that no earlier entry gave, skipping raw-socket entries (getaddrinfo
 * lists each address once per socket type). Returns 1 with *out set, 0 at
 * the end. Pure: no I/O. */
int cn_dns_next_address(const struct addrinfo *list, const struct addrinfo **cursor, cn_addr *out);
/* Ends the op, whatever its state: after the callback it is freed now;
 * before, it is detached (its callback never runs, the waiter is dropped)
 * and freed when the threadpool is done with it, never waited for. */
void cn_dns_close(cn_dns *op);

/* ------------------------------------------------------------------- udp */

/* A datagram socket over uv_udp_t. One owner holds it from cn_udp_new; the
 * core frees it in its close callback, after the waiters of
 * cn_udp_close_wait have run: the owner drops its pointer there. */
typedef struct cn_udp cn_udp;

/* One piece of a datagram to send. */
typedef struct cn_slice {
  const char *p;
  size_t n;
} cn_slice;

#define CN_UDP_MAX_IPV4 65507 /* 65535 - 20 (IP header) - 8 (UDP header) */
#define CN_UDP_MAX_IPV6 65527 /* 65535 - 8: the IPv6 header is not counted */
#define CN_UDP_MAX_PARTS 16   /* slices per cn_udp_send */

enum { CN_UDP_REUSEADDR = 1, CN_UDP_REUSEPORT = 2 };

/* A socket of `family` (AF_INET or AF_INET6), not bound yet (the first send
 * or receive binds it to a port the kernel picks). */
int cn_udp_new(cn_loop *loop, int family, cn_udp **out);
/* Binds to addr (of the socket's family). CN_UDP_REUSEPORT sets SO_REUSEPORT
 * on the descriptor first (libuv 1.44 has no flag for it). */
int cn_udp_bind(cn_udp *u, const cn_addr *addr, unsigned flags);
int cn_udp_family(const cn_udp *u);
int cn_udp_sockname(const cn_udp *u, cn_addr *out);
int cn_udp_fileno(const cn_udp *u);
/* Sends one datagram made of nparts slices (at most CN_UDP_MAX_PARTS). Returns 0
 * when the kernel took it (w is not used), 1 when it was queued (as a copy:
 * the slices may go) and w->cb runs once with 0 or an error, or a negative
 * error now: UV_EMSGSIZE above CN_UDP_MAX_IPV4/6 bytes, UV_EAFNOSUPPORT for an
 * address of another family, CN_EBUSY while another send waits, CN_ECLOSED. */
int cn_udp_send(cn_udp *u, const cn_addr *to, const cn_slice *parts, size_t nparts, cn_waiter *w);
/* Waits for one datagram: w->cb runs from the loop with its length (>= 0;
 * 0 for an empty datagram) or a negative error; CN_ECLOSED if the socket
 * closes first. Only while that callback runs does cn_udp_datagram give the
 * bytes (in the loop's read scratch, never copied) and the sender. Reading
 * runs only while a waiter waits, so no datagram is taken that nobody
 * receives. CN_EBUSY if another waiter waits. */
int cn_udp_recv(cn_udp *u, cn_waiter *w);
const char *cn_udp_datagram(const cn_udp *u, size_t *len, cn_addr *from);
/* Starts closing: waiters get CN_ECLOSED (deferred), the descriptor closes. Idempotent. */
void cn_udp_close(cn_udp *u);
int cn_udp_is_closing(const cn_udp *u);
/* w->cb(w, 0) from the close callback; u is freed right after. */
void cn_udp_close_wait(cn_udp *u, cn_waiter *w);

/* --------------------------------------------------------------- connect */

typedef struct cn_connect cn_connect;

typedef struct cn_connect_opts {
  const char *host;       /* DNS name or literal (with port); or NULL */
  size_t host_len;        /* its length; 0 = strlen(host). A name with a NUL byte
                           * or over 255 bytes fails with UV_EAI_NONAME, at once */
  int port;
  const cn_addr *addr;    /* an explicit address (ip or unix); used when host is NULL */
  uint64_t timeout_ms;    /* one deadline for DNS and every attempt; 0 = none */
  uint64_t attempt_timeout_ms; /* bound on each address's attempt; 0 = an equal share of
                                * what is left of timeout_ms among the addresses left */
  cn_stream *socket;      /* optional unconnected tcp stream to connect (a reference is taken) */
  const cn_addr *addrs;   /* explicit addresses, tried in order (copied); used when host is NULL */
  size_t naddrs;          /* their number; addr is ignored when it is not 0 */
  uint64_t happy_eyeballs_delay_ms; /* 0 = one attempt at a time; else RFC 8305: see below */
} cn_connect_opts;

/* Start connecting: DNS on libuv's threadpool, then every address in
 * getaddrinfo order, the next one when an attempt fails or takes longer than
 * its bound. With happy_eyeballs_delay_ms (RFC 8305), IPv6 and IPv4
 * addresses alternate, and the next attempt also starts when the latest has
 * neither connected nor failed within the delay; earlier attempts go on, the
 * first to connect wins and the others are closed. w->cb runs once with 0 (then call cn_connect_take) or an error:
 * CN_ETIMEOUT, CN_ENOADDR, ECONNREFUSED, EAI_* ... (the last attempt's error).
 * With `socket`, only addresses of the socket's family are considered and
 * the socket gets exactly one attempt; if it fails, the socket is closed. */
int cn_connect_start(cn_loop *loop, const cn_connect_opts *opts, cn_waiter *w, cn_connect **out);
/* After the callback: the connected stream (a reference passes to the caller) and frees op. */
int cn_connect_take(cn_connect *op, cn_stream **out);
/* Abandon the operation: an attached waiter gets UV_ECANCELED (deferred); a DNS
 * lookup in flight is detached; the op frees itself. Do not use op afterwards. */
void cn_connect_abort(cn_connect *op);
/* The address last attempted (or the one given), for error messages; NULL before DNS answered.
 * Once the callback ran: the winner's address, or the address of the attempt that failed last. */
const cn_addr *cn_connect_last_addr(const cn_connect *op);
/* Before cn_connect_take: how many addresses were tried, in the order they
 * were started; attempt i's address (into *addr) and outcome: 0 for the one
 * that connected (or one still out), else its error (UV_ECANCELED for one
 * closed because another won). */
size_t cn_connect_attempt_count(const cn_connect *op);
int cn_connect_attempt(const cn_connect *op, size_t i, cn_addr *addr);

/* ---------------------------------------------------------------- server */

typedef struct cn_server cn_server;
/* A new connection: conn is a new reference the callback must take over;
 * peer is the client's address as accept gave it (valid during the call). */
typedef void (*cn_server_conn_fn)(cn_server *srv, cn_stream *conn, const cn_addr *peer, void *data);

typedef struct cn_server_opts {
  unsigned max_connections;       /* 0 = default 10000 */
  unsigned max_accepts_per_batch; /* 0 = default 64 */
  int backlog;                    /* 0 = default 511 (unless exact_backlog) */
  int reuseport;                  /* SO_REUSEPORT, set before bind */
  int exact_backlog;              /* pass backlog to listen(2) as given, 0 included */
  int remove_stale;               /* unix: remove a socket file left at the path before bind */
  int paused;                     /* start paused: accept only for credit (cn_server_pause) */
} cn_server_opts;

typedef struct cn_server_stats {
  uint64_t accepted, dropped, accept_errors, bytes_in, bytes_out;
  unsigned connections;
} cn_server_stats;

/* Bind and listen on addr (tcp or unix). The listener accepts with its own
 * loop (accept4 on a poll handle), at most max_connections at once. */
int cn_server_listen(cn_loop *loop, const cn_addr *addr, const cn_server_opts *opts,
                     cn_server_conn_fn on_conn, void *data, cn_server **out);
/* Listen on a socket the caller made (already bound); the server owns it from now on. */
int cn_server_listen_fd(cn_loop *loop, int fd, const cn_server_opts *opts,
                        cn_server_conn_fn on_conn, void *data, cn_server **out);
void cn_server_ref(cn_server *srv);
void cn_server_unref(cn_server *srv);
/* Stop accepting and close the listener; no on_conn call after this returns.
 * close_existing closes every live connection at once too (waiters get
 * CN_ECLOSED; one with unflushed bytes is reset, as by cn_stream_abort).
 * Idempotent; a later call may add close_existing. */
void cn_server_close(cn_server *srv, int close_existing);
/* w->cb(0) once what the latest cn_server_close asked for is done: the
 * listener is closed and, if close_existing was asked (by that call or an
 * earlier one), every connection too. */
void cn_server_close_wait(cn_server *srv, cn_waiter *w);
int cn_server_is_closed(const cn_server *srv);
/* What the latest cn_server_close asked for is done (as for cn_server_close_wait). */
int cn_server_is_close_finished(const cn_server *srv);
void cn_server_set_drop(cn_server *srv, int drop);
void cn_server_stats_get(const cn_server *srv, cn_server_stats *out);
unsigned cn_server_num_connections(const cn_server *srv);
int cn_server_address(const cn_server *srv, cn_addr *out);
int cn_server_fileno(const cn_server *srv);
/* Paused, the server accepts nothing but its credit: cn_server_add_credit(n)
 * lets it accept n more connections (each goes to on_conn as usual), and a
 * negative n takes credit back (never below 0). Unpausing accepts freely
 * again; pausing (or unpausing) clears the credit. The listening socket stays
 * open while paused: clients wait in its backlog. */
void cn_server_pause(cn_server *srv, int paused);
void cn_server_add_credit(cn_server *srv, int n);
/* 0 = the default (10000). Lowering it closes no connection. */
void cn_server_set_max_connections(cn_server *srv, unsigned max_connections);
/* Cuts every live connection at once (waiters get CN_ECLOSED, unflushed
 * bytes are dropped and a reset is sent) and leaves the listener open. */
void cn_server_abort_connections(cn_server *srv);
/* Per-connection stream options applied to every accepted connection. */
void cn_server_set_stream_opts(cn_server *srv, const cn_stream_opts *opts);
/* Accepts one pending connection now, never waiting, through the accept
 * loop's own path (counters, max_connections, stream options, drop mode,
 * EMFILE back-off), on a paused server whatever its credit (which it does
 * not spend) or on a running one. Returns 0 with *out a new reference the
 * caller owns and *peer the client's address; on_conn is not called.
 * UV_EAGAIN when no client is pending, and also at max_connections (no
 * client can be accepted now; cn_server_wait_pending waits for room too, so
 * a loop of wait and accept does not spin); CN_ECLOSED once closing has
 * started; another negative code on an accept error (EMFILE...: the server
 * then backs off, logging, as its accept loop does). A connection dropped
 * (drop mode) or failing on its own is skipped for the next one, at most
 * max_accepts_per_batch in one call. */
int cn_server_accept_pending(cn_server *srv, cn_stream **out, cn_addr *peer);
/* On a paused server: w->cb(w, 0) runs from the loop (never inside this
 * call) once a client waits in the backlog and there is room for it (below
 * max_connections, not backing off); it accepts nothing, and a client
 * already pending shows on the next turn. w->cb(w, CN_ECLOSED) if the
 * server starts closing first. It polls with the server's own poll handle;
 * cancelling w stops the polling it started. Fails now (the callback never
 * runs): CN_ECLOSED once closing has started, CN_EBUSY on a server that is
 * not paused (its accept loop takes every client itself). */
int cn_server_wait_pending(cn_server *srv, cn_waiter *w);

/* --------------------------------------------------------------- channel */

/* A queue of messages (byte strings, copied) between threads that each run
 * their own loop: any thread sends, one receiver at a time waits. The queue
 * is guarded by a mutex; a waiting receiver is woken through a uv_async_t on
 * its own loop, made for the wait and closed after it (nothing polls, and a
 * channel nobody waits on keeps no loop alive). Counted: each holder (a
 * sender, a receiver) keeps a reference; the last unref frees the channel
 * and any message still queued. */
typedef struct cn_channel cn_channel;
int cn_channel_new(cn_channel **out);
void cn_channel_ref(cn_channel *ch);   /* any thread */
void cn_channel_unref(cn_channel *ch); /* any thread */
/* Queues a copy of p[0..n) and wakes the waiting receiver. Any thread. UV_ENOMEM. */
int cn_channel_send(cn_channel *ch, const char *p, size_t n);
/* Receiver: takes the oldest message (*p from malloc: free it), or UV_EAGAIN when none is queued. */
int cn_channel_take(cn_channel *ch, char **p, size_t *n);
/* Receiver, on the thread running `loop`: w->cb(w, 0) runs from that loop
 * once a message is queued (on the next turn at the earliest, even when one
 * already is). Cancelling w ends the wait. CN_EBUSY while another waits. */
int cn_channel_wait(cn_channel *ch, cn_loop *loop, cn_waiter *w);

/* ---------------------------------------------------------------- thread */

/* An OS thread running fn(arg). Join it exactly once; join frees it. */
typedef struct cn_thread cn_thread;
int cn_thread_start(cn_thread **out, void (*fn)(void *arg), void *arg);
int cn_thread_join(cn_thread *t);

/* ------------------------------------------------------------------- tls */

/* A TLS engine over OpenSSL memory BIOs: no sockets, no libuv, no blocking.
 * The caller moves bytes: ciphertext the peer sent goes in with
 * cn_tls_feed, ciphertext to send comes out with cn_tls_take_out, and
 * plaintext goes through cn_tls_read and cn_tls_write. After EVERY call on a
 * connection (a handshake step, a read, a write, a shutdown, an error
 * included: it may have queued an alert) the caller sends what
 * cn_tls_take_out gives.
 *
 * Errors: CN_ETLS_HANDSHAKE (the handshake failed: garbage instead of a
 * hello, no common protocol, version or ALPN, the peer closed mid-handshake),
 * CN_ETLS_VERIFY (a certificate was missing or failed verification, ours as
 * reported by the peer's alert or the peer's as checked here),
 * CN_ETLS_TRUNCATED (the peer's transport ended without close_notify),
 * CN_ETLS_PROTOCOL (a bad record or an alert after the handshake),
 * CN_ETLS_CONFIG (options: a file missing or unreadable, a key not matching
 * its certificate, a bad ALPN name or session), UV_ENOMEM. Each comes with a
 * message naming the cause (OpenSSL's reason, the verification error, the
 * file): cn_tls_conn_message, or the msg buffer of cn_tls_ctx_new. Every
 * call clears OpenSSL's per-thread error queue before and after itself, so
 * no error leaks from one connection to another. */
typedef struct cn_tls_ctx cn_tls_ctx;
typedef struct cn_tls_conn cn_tls_conn;

typedef struct cn_tls_ctx_opts {
  int server;              /* 1: a server context; 0: a client one */
  int no_verify;           /* client: skip verifying the server (verification is on by default) */
  const char *ca_file;     /* client: trust these (PEM) instead of the system store */
  const char *ca_path;     /* client: a hashed directory of CAs, instead of the system store */
  const char *cert_file;   /* PEM chain: required for a server, optional for a client */
  const char *key_file;    /* PEM key: given exactly when cert_file is; checked to match it */
  const char *client_ca_file; /* server: request a client certificate and require one verified by these */
  const char *const *alpn; /* protocol names ("h2", "http/1.1"), most preferred first; NULL = none */
  size_t alpn_count;
} cn_tls_ctx_opts;

/* A context: one SSL_CTX (TLS 1.2 at least) for one server or one client
 * configuration, shared by its connections. Counted: *out holds the first
 * reference and each connection holds one. On failure (CN_ETLS_CONFIG,
 * UV_ENOMEM) *out is NULL and msg (if msg_size > 0) says why, naming the
 * file. A server offered ALPN names it shares none of fails the handshake. */
int cn_tls_ctx_new(cn_tls_ctx **out, const cn_tls_ctx_opts *opts, char *msg, size_t msg_size);
void cn_tls_ctx_ref(cn_tls_ctx *ctx);
void cn_tls_ctx_unref(cn_tls_ctx *ctx);
int cn_tls_ctx_is_server(const cn_tls_ctx *ctx);

/* One connection's engine, as ctx's side (client or server). Holds a
 * reference to ctx. 0 or UV_ENOMEM. */
int cn_tls_conn_new(cn_tls_conn **out, cn_tls_ctx *ctx);
/* Client, before the first handshake step: the name sent as SNI and, when
 * the context verifies, checked against the server's certificate; an IP
 * literal is checked against the certificate's IP addresses and not sent
 * (SNI carries host names only). Without it no name is checked. UV_EINVAL
 * on a server; CN_ETLS_CONFIG if OpenSSL refuses the name. */
int cn_tls_set_server_name(cn_tls_conn *c, const char *name);
/* Client, before the first handshake step: a session from cn_tls_session
 * to resume. CN_ETLS_CONFIG if the bytes are not one; UV_EINVAL on a server. */
int cn_tls_set_session(cn_tls_conn *c, const void *data, size_t len);
void cn_tls_conn_free(cn_tls_conn *c);

/* The engine asks for more ciphertext from the peer: feed some and call again. */
enum { CN_TLS_WANT_READ = 1 };

/* Ciphertext received from the peer (copied). 0 or UV_ENOMEM. */
int cn_tls_feed(cn_tls_conn *c, const char *data, size_t len);
/* The peer's transport has ended: reads then give UV_EOF after its
 * close_notify, CN_ETLS_TRUNCATED without one, CN_ETLS_HANDSHAKE before the
 * handshake is done. */
void cn_tls_feed_eof(cn_tls_conn *c);
/* Ciphertext fed and not yet decrypted, plus plaintext decrypted and not
 * yet read: while non-zero, cn_tls_read may give bytes without more input. */
size_t cn_tls_in_pending(const cn_tls_conn *c);

/* One step of the handshake: 0 when it is done, CN_TLS_WANT_READ, or an error. */
int cn_tls_handshake(cn_tls_conn *c);
int cn_tls_handshake_done(const cn_tls_conn *c);
/* Plaintext into buf: 0 with *nread > 0, CN_TLS_WANT_READ (nothing decrypted
 * yet: feed more), UV_EOF (the peer's close_notify), or an error. Drives the
 * handshake first if it is not done. */
int cn_tls_read(cn_tls_conn *c, char *buf, size_t size, size_t *nread);
/* Encrypts all of data (TLS records queued for cn_tls_take_out): 0,
 * CN_TLS_WANT_READ while the handshake is not done (nothing taken),
 * CN_ECLOSED after cn_tls_shutdown, or an error. */
int cn_tls_write(cn_tls_conn *c, const char *data, size_t len);
/* Queues close_notify once; no-op before the handshake is done or after a
 * fatal error (a fatal error has queued its alert already). 0. */
int cn_tls_shutdown(cn_tls_conn *c);

/* Ciphertext waiting to be sent, and taking up to size bytes of it into buf
 * (returns how many). */
size_t cn_tls_out_pending(const cn_tls_conn *c);
size_t cn_tls_take_out(cn_tls_conn *c, char *buf, size_t size);

/* What the last error on c was about (OpenSSL's reason, the verification
 * error), "" before any. Valid until the next call on c. */
const char *cn_tls_conn_message(const cn_tls_conn *c);

/* The negotiated parameters, once the handshake is done (UV_EINVAL before).
 * The strings live as long as c. */
typedef struct cn_tls_info {
  const char *version;       /* "TLSv1.3" */
  const char *cipher;        /* "TLS_AES_256_GCM_SHA384" */
  const char *alpn;          /* the protocol selected (not NUL-terminated), NULL if none */
  size_t alpn_len;
  int peer_certificate;      /* the peer showed a certificate */
  int verified;              /* ...and it was verified (chain, dates, and the name a client set) */
  int reused;                /* the session was resumed */
} cn_tls_info;
int cn_tls_get_info(const cn_tls_conn *c, cn_tls_info *out);
/* The peer certificate's subject, RFC 2253 ("CN=localhost"), into buf like
 * snprintf: returns the full length, 0 without a peer certificate. */
size_t cn_tls_peer_subject(const cn_tls_conn *c, char *buf, size_t size);
/* Client: the session to resume later, serialised (DER), into buf if it
 * fits; returns its full length, or 0 when there is none to resume yet (in
 * TLS 1.3 the server's ticket arrives after the handshake, with the first
 * read). */
size_t cn_tls_session(const cn_tls_conn *c, unsigned char *buf, size_t size);

/* TLS on a connected stream: the engine c (from cn_tls_conn_new, its
 * server name and session set) becomes the stream's, stacked on its
 * transport, so the reader and writer carry plaintext from now on; bytes
 * the reader holds unread are the engine's first input (starttls). The
 * handshake starts on the next loop turn: w->cb(w, 0) when it is done, or
 * w->cb(w, err) with a CN_ETLS_* code (cn_tls_conn_message says why), the
 * transport's error, or CN_ECLOSED if the stream closes first. Cancelling
 * w (cn_waiter_cancel: a timeout, a cancelled fiber) abandons the
 * handshake: on the next turn it ends with CN_ECLOSED, failing a write made
 * meanwhile, and the caller closes the stream. Afterwards a
 * read ends with UV_EOF after the peer's close_notify, CN_ETLS_TRUNCATED
 * without one, the transport's error after a reset (UV_ECONNRESET, even
 * mid-record); closing the writer sends close_notify before the shutdown.
 * Fails now (c stays the caller's, the callback never runs): CN_EBUSY if
 * the writer holds bytes, a reader waits, or the stream has TLS already, CN_ECLOSED,
 * UV_ENOTCONN, the reader's end status, UV_ENOMEM. */
int cn_stream_start_tls(cn_stream *s, cn_tls_conn *c, cn_waiter *w);
/* The stream's TLS engine (info, session, messages), owned by the stream; NULL on a plain stream. */
cn_tls_conn *cn_stream_tls(cn_stream *s);

#ifdef __cplusplus
}
#endif
#endif
