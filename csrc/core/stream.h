/* stream.h: the stream struct shared by stream.c, reader.c, writer.c,
 * transport.c, connect.c and server.c. Internal. */
#ifndef CN_STREAM_H
#define CN_STREAM_H

#include "buf.h"
#include "internal.h"
#include "transport.h"

typedef struct cn_reader {
  cn_buf buf;           /* leftover bytes; storage only while non-empty */
  const char *view;     /* bytes read into the loop's scratch, offered during the read callback */
  size_t view_len;
  size_t cap;           /* reader_buffer_size */
  int status;           /* 0, then UV_EOF or an error once the peer is done */
  int reading;          /* reading through the top transport (read_start) */
  int out_of_memory;    /* on_alloc could not grow the buffer */
  int closed;
  cn_list waiters;      /* at most one */
  cn_list watchers;     /* any number; told of the next read event, never counted in what is read */
} cn_reader;

typedef struct cn_writer {
  cn_buf pending;       /* accepted, not yet handed to the kernel */
  cn_buf flushing;      /* handed to the transport's write, in flight */
  cn_task flush_task;
  cn_list waiters;      /* at most one */
  cn_timer *timer;      /* buffer age limit, or close timeout once closing */
  size_t hwm;
  size_t max_chunk;     /* most bytes handed to one system call (uv_buf_t lengths are unsigned) */
  size_t in_flight_len; /* bytes of `flushing` in the write in flight */
  uint64_t age_limit_ms, close_timeout_ms;
  uint64_t pending_since, flushing_since;
  int status;           /* sticky error */
  int in_flight, closing, shutting_down, shut;
  int dropped;          /* accepted bytes were discarded unsent */
} cn_writer;

enum { CN_STREAM_OPEN, CN_STREAM_CLOSING, CN_STREAM_CLOSED };

/* The plain transport has at most one request in flight (its one user
 * writes, then shuts down), so both share one block that idle connections
 * never get. */
union cn__plain_req {
  uv_write_t write;
  uv_shutdown_t shutdown;
};

struct cn_stream {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_tty_t tty;
  } h;
  cn_transport base;    /* the plain transport over h; base.above: those stacked on it */
  union cn__plain_req *req; /* the base's request in flight: made on first use */
  cn__object obj;
  cn_loop *loop;
  unsigned refs;
  int state;
  int kind;             /* CN_STREAM_TCP, _UNIX, _PIPE or _TTY */
  int connected;
  int lingering;        /* dropping input until the peer's EOF before closing */
  int shared;           /* a duplicate (cn_stream_open_dup): the socket is also the caller's, so
                         * closing closes this descriptor only: no shutdown, no reset, no drain */
  cn_reader r;
  cn_writer w;
  cn_list close_waiters;
  void (*on_closed)(cn_stream *s, void *data); /* the server's hook: frees its slot */
  void *on_closed_data;
  cn_list server_link;
  uint64_t bytes_in, bytes_out;
};

/* The layer the reader and writer use (transport.h). */
static inline cn_transport *cn__transport_top(cn_stream *s) {
  cn_transport *t = &s->base;
  while (t->above) t = t->above;
  return t;
}

/* stream.c */
int cn__stream_new(cn_loop *loop, int kind, cn_stream **out);
/* A new unix stream with its pipe handle initialised, not yet connected. */
int cn__stream_new_pipe(cn_loop *loop, cn_stream **out);
/* cn_stream_open_fd for a descriptor whose kind the caller knows (the
 * server's accepted sockets): no system calls to find it out. */
int cn__stream_open_fd_as(cn_loop *loop, int fd, int kind, cn_stream **out);
/* The socket is connected: apply defaults and start reading. A half the
 * descriptor cannot do (libuv opened it read-only or write-only: a pipe's
 * end) is closed at once. */
void cn__stream_connected(cn_stream *s);
/* Closes the fd if both halves are done. */
void cn__stream_maybe_finish(cn_stream *s);
/* Closes at once like cn_stream_abort, but resets only if unflushed bytes are dropped. */
void cn__stream_cut(cn_stream *s, int status);
/* The status a read of nread < 0 ends the input with: a reset libuv
 * reported as UV_EOF is told apart (the plain transport asks). */
ssize_t cn__stream_end_status(cn_stream *s, ssize_t nread);
/* Start uv_close now; waiters get `status`. */
void cn__stream_close_handle(cn_stream *s, int status);
/* Installs t on top of the stream's transports (transport.h says how). 0,
 * or: CN_ECLOSED once either half or the stream closes, UV_ENOTCONN before
 * connect, the reader's end status once the input ended, CN_EBUSY while the
 * writer holds bytes, or adopt's error (nothing is changed then). */
int cn__stream_push_transport(cn_stream *s, cn_transport *t);

/* reader.c */
void cn__reader_init(cn_stream *s);
void cn__reader_update(cn_stream *s);
/* The top transport's read events. */
void cn__reader_on_alloc(cn_stream *s, size_t suggested, uv_buf_t *out);
void cn__reader_on_read(cn_stream *s, ssize_t nread, const uv_buf_t *buf);
/* Stops reading and hands the unconsumed bytes to t's adopt (a push). */
int cn__reader_hand_off(cn_stream *s, cn_transport *t);
void cn__reader_fail_waiters(cn_stream *s, int status, int later);
void cn__reader_release(cn_stream *s);

/* writer.c */
void cn__writer_init(cn_stream *s);
/* The top transport's write events. */
void cn__writer_on_written(cn_stream *s, int status);
void cn__writer_on_shut(cn_stream *s, int status);
int cn__writer_done(const cn_stream *s);
void cn__writer_fail_waiters(cn_stream *s, int status, int later);
void cn__writer_release(cn_stream *s);

/* Pooled 4 KiB blocks, so that idle connections hold no buffer and busy
 * ones do not call malloc for every message (loop.c). */
#define CN_BLOCK_SIZE 4096u
void cn__loop_buf_acquire(cn_loop *loop, cn_buf *b);
void cn__loop_buf_release(cn_loop *loop, cn_buf *b);

#endif
