/* fuzz_reader.c: libFuzzer target for the core reader (csrc/core/reader.c)
 * through its public API (cn_reader_peek/consume/wait). A socketpair stands
 * in for the peer: each chunk of the input (fuzz_input.h) is written to one
 * end and read by the core from the other before the next chunk goes, so
 * the fuzzer chooses how the stream arrives. Header: two bytes for the
 * reader's cap (1..4096), one mode byte (even: lines, framed like the Lua
 * reader's read_line; odd: raw reads of varying sizes, waits of varying
 * sizes), one seed byte. Whatever the chunking, the bytes consumed must be
 * the stream, in order, and the lines must be those of the whole stream. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include "coronet.h"
#include "frame.h"
#include "fuzz_input.h"

#define SPIN_LIMIT 100000 /* loop turns a chunk may take to arrive: more is a stall */

typedef struct consumer {
  cn_stream *s;
  cn_waiter w;
  size_t cap;
  int raw;
  uint32_t rng;
  uint8_t *out; /* every byte consumed, in order */
  size_t out_len;
  size_t *lines; /* consumed length of each frame (0 for a too-long cut) */
  size_t nlines;
  int done;
} consumer;

static cn_loop *loop;

static uint32_t next_random(consumer *c) {
  c->rng = c->rng * 1103515245u + 12345u;
  return c->rng >> 16;
}

/* How many of the n buffered bytes to consume now; 0 waits for more. */
static size_t decide(consumer *c, const char *p, size_t n) {
  size_t len, consumed;
  int r;
  if (n == 0) return 0;
  if (c->raw) return 1 + next_random(c) % n;
  r = cn_frame_line(p, n, c->cap, &len, &consumed);
  if (r == 1) {
    c->lines[c->nlines++] = consumed;
    return consumed;
  }
  if (r == CN_ELINE_TOO_LONG) {
    c->lines[c->nlines++] = 0;
    return c->cap; /* the capped bytes, read raw */
  }
  return 0;
}

static void take(consumer *c, const char *p, size_t n) {
  memcpy(c->out + c->out_len, p, n);
  c->out_len += n;
  cn_reader_consume(c->s, n);
}

static void on_wake(cn_waiter *w, int status);

/* Consumes what the buffer allows, then waits for more or ends at EOF. */
static void pump(consumer *c) {
  for (;;) {
    size_t n = 0, k;
    const char *p = cn_reader_peek(c->s, &n);
    FUZZ_CHECK(n == cn_reader_buffered(c->s));
    k = decide(c, p, n);
    if (k > 0) {
      take(c, p, k);
      continue;
    }
    if (cn_reader_status(c->s) != 0) {
      FUZZ_CHECK(cn_reader_status(c->s) == UV_EOF);
      if (n > 0) take(c, p, n); /* the unterminated tail */
      c->done = 1;
      return;
    }
    size_t extra = c->raw ? next_random(c) % (2 * c->cap) : 0;
    FUZZ_CHECK(cn_reader_wait(c->s, &c->w, n + 1 + extra) == 0);
    return;
  }
}

static void on_wake(cn_waiter *w, int status) {
  consumer *c = w->data;
  FUZZ_CHECK(status == 0 || status == UV_EOF);
  pump(c);
}

/* The frames of the whole stream, as decide() cuts them. */
static size_t reference_lines(const uint8_t *p, size_t n, size_t cap, size_t *lines) {
  size_t count = 0, len, consumed;
  for (;;) {
    int r = cn_frame_line((const char *)p, n, cap, &len, &consumed);
    if (r == 0) return count;
    if (r == CN_ELINE_TOO_LONG) {
      lines[count++] = 0;
      consumed = cap;
    } else {
      lines[count++] = consumed;
    }
    p += consumed;
    n -= consumed;
  }
}

static void run_until(int (*done)(void *), void *arg) {
  int spins = 0;
  while (!done(arg) && spins++ < SPIN_LIMIT) cn_loop_run(loop, UV_RUN_NOWAIT);
  FUZZ_CHECK(done(arg));
}

typedef struct arrival {
  consumer *c;
  uint64_t written;
} arrival;

static int chunk_arrived(void *arg) {
  arrival *a = arg;
  return cn_stream_bytes_in(a->c->s) == a->written;
}
static int consumer_done(void *arg) { return ((consumer *)arg)->done; }
static int loop_empty(void *arg) { return cn_loop_live(arg) == 0; }

static void write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t k = write(fd, p, n);
    FUZZ_CHECK(k > 0);
    p += k;
    n -= (size_t)k;
  }
}

static void feed(consumer *c, int peer, fuzz_chunks chunks) {
  arrival a = {c, 0};
  const uint8_t *chunk;
  size_t k;
  pump(c);
  while (fuzz_next_chunk(&chunks, &chunk, &k)) {
    if (k == 0) continue;
    write_all(peer, chunk, k);
    a.written += k;
    run_until(chunk_arrived, &a);
  }
  FUZZ_CHECK(shutdown(peer, SHUT_WR) == 0);
  run_until(consumer_done, c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  consumer c;
  cn_stream_opts opts;
  fuzz_chunks chunks;
  uint8_t *stream;
  size_t total, *expected, nexpected;
  int sv[2];
  if (size < 4) return 0;
  if (loop == NULL) FUZZ_CHECK(cn_loop_new(&loop, NULL) == 0);
  memset(&c, 0, sizeof c);
  c.cap = 1 + (size_t)((data[0] | data[1] << 8) % 4096);
  c.raw = data[2] & 1;
  c.rng = data[3];
  chunks.p = data + 4;
  chunks.n = size - 4;
  stream = fuzz_join(chunks, &total);
  c.out = malloc(total + 1);
  c.lines = malloc((total + 1) * sizeof *c.lines);
  expected = malloc((total + 1) * sizeof *expected);
  FUZZ_CHECK(c.out && c.lines && expected);

  FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  FUZZ_CHECK(cn_stream_open_fd(loop, sv[0], &c.s) == 0);
  memset(&opts, 0, sizeof opts);
  opts.reader_buffer_size = c.cap;
  cn_stream_configure(c.s, &opts);
  cn_waiter_init(&c.w, on_wake, &c);
  feed(&c, sv[1], chunks);

  FUZZ_CHECK(c.out_len == total && memcmp(c.out, stream, total) == 0);
  if (!c.raw) {
    nexpected = reference_lines(stream, total, c.cap, expected);
    FUZZ_CHECK(c.nlines == nexpected);
    FUZZ_CHECK(memcmp(c.lines, expected, nexpected * sizeof *expected) == 0);
  }
  close(sv[1]);
  cn_stream_close(c.s);
  cn_stream_unref(c.s);
  run_until(loop_empty, loop);
  free(stream);
  free(c.out);
  free(c.lines);
  free(expected);
  return 0;
}
