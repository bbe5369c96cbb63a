/* buf.c: the byte FIFO declared in buf.h. */
#include "buf.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define CN_BUF_MIN_CAP 4096u

void cn_buf_init(cn_buf *b) {
  b->base = NULL;
  b->start = b->end = b->cap = 0;
}

void cn_buf_free(cn_buf *b) {
  free(b->base);
  cn_buf_init(b);
}

static void compact(cn_buf *b) {
  size_t len = cn_buf_len(b);
  if (b->start == 0) return;
  memmove(b->base, b->base + b->start, len);
  b->start = 0;
  b->end = len;
}

/* Doubling from CN_BUF_MIN_CAP until `need` fits. need <= PTRDIFF_MAX, so the
 * doubling cannot wrap; the result is clamped to what malloc can ever give. */
static size_t grown_cap(size_t cap, size_t need) {
  size_t c = cap < CN_BUF_MIN_CAP ? CN_BUF_MIN_CAP : cap;
  while (c < need) c *= 2;
  return c > (size_t)PTRDIFF_MAX ? (size_t)PTRDIFF_MAX : c;
}

/* A fresh block holding the data at offset 0; the old block survives a
 * failed malloc untouched (realloc would have to compact it first). */
static int grow(cn_buf *b, size_t need) {
  size_t len = cn_buf_len(b);
  size_t cap = grown_cap(b->cap, need);
  char *p = malloc(cap);
  if (p == NULL) return UV_ENOMEM;
  if (len > 0) memcpy(p, b->base + b->start, len);
  free(b->base);
  b->base = p;
  b->start = 0;
  b->end = len;
  b->cap = cap;
  return 0;
}

int cn_buf_reserve(cn_buf *b, size_t n) {
  size_t len = cn_buf_len(b);
  if (b->cap - b->end >= n) return 0;
  if (b->cap - len >= n) {
    compact(b);
    return 0;
  }
  /* No allocation beyond PTRDIFF_MAX can succeed; fail without asking malloc. */
  if (n > (size_t)PTRDIFF_MAX - len) return UV_ENOMEM;
  return grow(b, len + n);
}

void cn_buf_commit(cn_buf *b, size_t n) {
  assert(n <= b->cap - b->end);
  b->end += n;
}

void cn_buf_consume(cn_buf *b, size_t n) {
  assert(n <= cn_buf_len(b));
  b->start += n;
  if (b->start == b->end) b->start = b->end = 0;
}

int cn_buf_append(cn_buf *b, const char *p, size_t n) {
  int err;
  if (n == 0) return 0;
  err = cn_buf_reserve(b, n);
  if (err) return err;
  memcpy(b->base + b->end, p, n);
  b->end += n;
  return 0;
}

void cn_buf_swap(cn_buf *a, cn_buf *b) {
  cn_buf t = *a;
  *a = *b;
  *b = t;
}
