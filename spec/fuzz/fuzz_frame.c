/* fuzz_frame.c: libFuzzer target for the framing scanner (csrc/core/frame.c).
 * Input: two bytes for the cap (1..2048), one mode byte (even: lines; odd: a
 * delimiter of 1..4 bytes that follow), then chunks (fuzz_input.h). The
 * stream is framed twice, once whole and once chunk by chunk as a reader
 * would see it arrive; the frames must be the same whatever the split, and
 * each frame must be what the scanner promises (frame.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "coronet.h"
#include "frame.h"
#include "fuzz_input.h"

enum { FRAME, TOO_LONG, TAIL };

typedef struct frame_event {
  int kind;
  size_t len, consumed;
} frame_event;

typedef struct framer {
  size_t max;
  const char *delim; /* NULL: lines */
  size_t dlen;
  uint8_t *buf;      /* bytes not yet framed */
  size_t len;
  frame_event *events;
  size_t nevents;
} framer;

static void record(framer *f, int kind, size_t len, size_t consumed) {
  frame_event *e = &f->events[f->nevents++];
  e->kind = kind;
  e->len = len;
  e->consumed = consumed;
}

static int same_event(const frame_event *a, const frame_event *b) {
  return a->kind == b->kind && a->len == b->len && a->consumed == b->consumed;
}

static void drop(framer *f, size_t n) {
  memmove(f->buf, f->buf + n, f->len - n);
  f->len -= n;
}

/* A line: ends at its first "\n", within the cap; one "\r" before it is not content. */
static void check_line(const framer *f, size_t line_len, size_t consumed) {
  const char *p = (const char *)f->buf;
  FUZZ_CHECK(consumed >= 1 && consumed <= f->len && consumed <= f->max);
  FUZZ_CHECK(p[consumed - 1] == '\n');
  FUZZ_CHECK(memchr(p, '\n', consumed - 1) == NULL);
  FUZZ_CHECK(line_len == consumed - 1 || (line_len == consumed - 2 && p[line_len] == '\r'));
}

/* A delimited frame: ends at the first occurrence of the delimiter, within the cap. */
static void check_delim(const framer *f, size_t before, size_t consumed) {
  const char *p = (const char *)f->buf;
  FUZZ_CHECK(consumed == before + f->dlen && consumed <= f->len && consumed <= f->max);
  FUZZ_CHECK(memcmp(p + before, f->delim, f->dlen) == 0);
  FUZZ_CHECK(memmem(p, before + f->dlen - 1, f->delim, f->dlen) == NULL);
}

static int scan_one(framer *f, size_t *len, size_t *consumed) {
  const char *p = (const char *)f->buf;
  int r;
  if (f->delim == NULL) {
    r = cn_frame_line(p, f->len, f->max, len, consumed);
    if (r == 1) check_line(f, *len, *consumed);
  } else {
    r = cn_frame_delim(p, f->len, f->delim, f->dlen, f->max, len, consumed);
    if (r == 1) check_delim(f, *len, *consumed);
  }
  return r;
}

/* Frames what the buffer holds; a too-long frame gives up `max` bytes, as a
 * caller reading the capped bytes raw would. */
static void scan(framer *f) {
  for (;;) {
    size_t len = 0, consumed = 0;
    int r = scan_one(f, &len, &consumed);
    if (r == 1) {
      record(f, FRAME, len, consumed);
      drop(f, consumed);
    } else if (r == CN_ELINE_TOO_LONG) {
      FUZZ_CHECK(f->len >= f->max);
      record(f, TOO_LONG, f->max, f->max);
      drop(f, f->max);
    } else {
      FUZZ_CHECK(r == 0 && f->len < f->max);
      return;
    }
  }
}

static void feed(framer *f, const uint8_t *p, size_t n) {
  memcpy(f->buf + f->len, p, n);
  f->len += n;
  scan(f);
}

static void finish(framer *f) {
  if (f->len > 0) record(f, TAIL, f->len, f->len);
  f->len = 0;
}

static void framer_init(framer *f, size_t max, const char *delim, size_t dlen, size_t total) {
  f->max = max;
  f->delim = delim;
  f->dlen = dlen;
  f->len = 0;
  f->nevents = 0;
  f->buf = malloc(total + 1);
  f->events = malloc((total + 1) * sizeof *f->events); /* at most one event per byte, plus the tail */
  FUZZ_CHECK(f->buf != NULL && f->events != NULL);
}

static void framer_free(framer *f) {
  free(f->buf);
  free(f->events);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  framer whole, split;
  fuzz_chunks chunks;
  const uint8_t *chunk, *stream;
  const char *delim = NULL;
  size_t max, dlen = 0, total, k;
  if (size < 3) return 0;
  max = 1 + (size_t)((data[0] | data[1] << 8) % 2048);
  if (data[2] & 1) {
    dlen = 1 + (size_t)(data[2] >> 1) % 4;
    if (size < 3 + dlen) return 0;
    delim = (const char *)data + 3;
  }
  chunks.p = data + 3 + dlen;
  chunks.n = size - 3 - dlen;
  stream = fuzz_join(chunks, &total);

  framer_init(&whole, max, delim, dlen, total);
  feed(&whole, stream, total);
  finish(&whole);

  framer_init(&split, max, delim, dlen, total);
  while (fuzz_next_chunk(&chunks, &chunk, &k)) feed(&split, chunk, k);
  finish(&split);

  FUZZ_CHECK(whole.nevents == split.nevents);
  for (size_t i = 0; i < whole.nevents; i++) FUZZ_CHECK(same_event(&whole.events[i], &split.events[i]));
  framer_free(&whole);
  framer_free(&split);
  free((void *)stream);
  return 0;
}
