/* transport.h: the seam under a stream's reader and writer. Internal.
 *
 * A transport moves bytes for the layer above it: it reads (delivering
 * bytes, or how the input ended, as alloc/read events like libuv's), writes
 * a gather list (a written event when done), shuts its sending side down
 * (a shut event) and is closed with the stream. The reader and writer talk
 * only to the stream's top transport; only the base knows libuv.
 *
 * Stack. Every stream has one base transport, embedded in it: the plain
 * one over the stream's libuv handle (tcp, unix, pipe, tty; transport.c).
 * Others stack on it: each takes the bytes of the layer below and gives
 * the layer above bytes of its own (TLS: ciphertext below, plaintext
 * above). A stacked transport is a struct of its own that starts with a
 * cn_transport; it calls the layer below through cn__transport_below, and
 * sends its events up through the cn__transport_up_* calls, which reach
 * the layer above or, from the top, the reader and writer. Memory: the base
 * costs a plain stream two pointers (its vtable and `above`); a stacked
 * transport allocates what it needs.
 *
 * Installing one on a connected stream (starttls): cn__stream_push_transport
 * (stream.h). It refuses while the writer holds bytes (they were meant for
 * the old top: flush first). It stops the reader's reading through the old
 * top, hands the bytes the reader holds unconsumed to the new transport's
 * adopt (they came from below before the push: the peer's first handshake
 * bytes, say), links the transport on top, and restarts reading through it.
 * Nothing in it runs a callback: what the new transport does next (a
 * client's first handshake flight) it starts itself, after the push.
 *
 * Contracts, for a transport and the layer above it:
 * - Events never run inside the call that asked for them (Rule 3): a
 *   stacked transport that already holds input for the layer above when
 *   read_start is called delivers it from a posted task (cn_loop_post).
 * - Reading: between read_start and read_stop, each read event (an end or
 *   an error included) comes right after its own alloc event, which gave
 *   its buffer, with nothing in between (libuv's pairing: the reader lends
 *   the loop's scratch in alloc and takes it back in read). An alloc
 *   answered with an empty buffer (no room)
 *   is followed by read(UV_ENOBUFS), and the bytes stay with the transport
 *   until the next read_start. read_stop may be called inside a read event:
 *   no alloc or read event follows until read_start, even mid-batch.
 *   nread > 0: bytes; 0: nothing (EAGAIN); < 0: the input ended (UV_EOF) or
 *   failed, once. A stacked transport reads from below into memory of its
 *   own or into the buffer the layer above gave it, never into the loop's
 *   scratch, which the reader above borrows (Rule 11).
 * - A stacked transport may keep its layer below reading while the layer
 *   above does not read (a handshake needs the peer's answer while the
 *   reader's buffer is full), and may write below on its own (handshake
 *   records, close_notify); it alone then orders its writes below.
 * - Writing: at most one write or shutdown is in flight from the layer
 *   above; the buffers (not the uv_buf_t array) stay valid until the
 *   written event, which says all bytes were taken (status 0), or why not.
 *   try_write takes what it can now and reports how much (>= 0), or
 *   UV_EAGAIN, or UV_ENOTSUP when the transport has no such fast path (TLS
 *   may say so): the caller then writes. Never while a write is in flight.
 * - shutdown follows the last written event; 0: one shut event follows;
 *   1: nothing needs sending (the plain one when close will send the FIN,
 *   or on a shared socket), < 0: failed; neither has an event, and the side
 *   counts as shut. A stacked transport sends its own end (close_notify)
 *   and then shuts the layer below down, which decides for itself.
 * - Closing belongs to the stream (stream.c): when its handle starts to
 *   close, each stacked transport's close is called (top first): it stops
 *   its timers and tasks and makes no further call down or up, though events
 *   from below may still arrive (cancelled writes: ignore them); once the
 *   handle is closed, release frees it. Before that, once the reader is
 *   closed and the shut event went up, the stream may linger: it reads and
 *   drops the peer's last bytes from the handle itself (stream.c), so a
 *   stacked transport whose side is shut makes no more calls down.
 */
#ifndef CN_TRANSPORT_H
#define CN_TRANSPORT_H

#include "coronet.h"

typedef struct cn_transport cn_transport;
typedef struct cn_transport_vt cn_transport_vt;

struct cn_transport {
  const cn_transport_vt *vt;
  cn_transport *above; /* the layer its events go to; NULL: the reader and writer */
};

struct cn_transport_vt {
  /* Calls from the layer above. */
  int (*read_start)(cn_stream *s, cn_transport *t);
  void (*read_stop)(cn_stream *s, cn_transport *t);
  int (*write)(cn_stream *s, cn_transport *t, const uv_buf_t *bufs, unsigned nbufs);
  int (*try_write)(cn_stream *s, cn_transport *t, const uv_buf_t *bufs, unsigned nbufs);
  int (*shutdown)(cn_stream *s, cn_transport *t);
  /* A stacked transport's own life (the base has none: NULL). */
  int (*adopt)(cn_stream *s, cn_transport *t, const char *p, size_t n); /* input from before the push */
  void (*close)(cn_stream *s, cn_transport *t);
  void (*release)(cn_stream *s, cn_transport *t);
  /* Events from the layer below (a stacked transport's; the base's are NULL). */
  void (*alloc)(cn_stream *s, cn_transport *t, size_t suggested, uv_buf_t *out);
  void (*read)(cn_stream *s, cn_transport *t, ssize_t nread, const uv_buf_t *buf);
  void (*written)(cn_stream *s, cn_transport *t, int status);
  void (*shut)(cn_stream *s, cn_transport *t, int status);
};

/* The plain transport over the stream's libuv handle, as the stream's base. */
void cn__transport_init_plain(cn_stream *s);
/* The layer the reader and writer use: cn__transport_top, inline in stream.h. */
/* The layer under t (t is stacked on s). */
cn_transport *cn__transport_below(cn_stream *s, cn_transport *t);

/* A transport's events, to the layer above `from` (the reader and writer at the top). */
void cn__transport_up_alloc(cn_stream *s, cn_transport *from, size_t suggested, uv_buf_t *out);
void cn__transport_up_read(cn_stream *s, cn_transport *from, ssize_t nread, const uv_buf_t *buf);
void cn__transport_up_written(cn_stream *s, cn_transport *from, int status);
void cn__transport_up_shut(cn_stream *s, cn_transport *from, int status);

#endif
