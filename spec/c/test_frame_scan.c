/* test_frame_scan.c: cn_frame_delim finds what a naive scan finds, on every
 * short span over a small alphabet and on spans dense with the delimiter's
 * first byte (past the false starts after which frame.c hands over to
 * memmem). */
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "coronet.h"
#include "frame.h"

/* The reference: the first delim ending within the first max bytes. */
static int naive(const char *p, size_t n, const char *d, size_t dlen, size_t max, size_t *before) {
  size_t lim = n < max ? n : max;
  for (size_t at = 0; at + dlen <= lim; at++)
    if (memcmp(p + at, d, dlen) == 0) {
      *before = at;
      return 1;
    }
  return n >= max ? CN_ELINE_TOO_LONG : 0;
}

static void agree(const char *p, size_t n, const char *d, size_t max) {
  size_t dlen = strlen(d), before = 0, used = 0, want = 0;
  int expect = naive(p, n, d, dlen, max, &want);
  int got = cn_frame_delim(p, n, d, dlen, max, &before, &used);
  CHECK_EQ_INT(got, expect);
  if (expect == 1) {
    CHECK_EQ_SIZE(before, want);
    CHECK_EQ_SIZE(used, want + dlen);
  }
}

/* Every span of up to 7 bytes over "\r\na" against a few delimiters and bounds. */
static void test_every_short_span(void) {
  static const char alphabet[] = "\r\na";
  static const char *const delims[] = {"\r\n\r\n", "\r\n", "\n", "a\r", "\r\r\r"};
  char span[8];
  for (size_t n = 0; n <= 7; n++) {
    size_t count = 1;
    for (size_t i = 0; i < n; i++) count *= 3;
    for (size_t k = 0; k < count; k++) {
      size_t v = k;
      for (size_t i = 0; i < n; i++, v /= 3) span[i] = alphabet[v % 3];
      for (size_t d = 0; d < sizeof delims / sizeof *delims; d++)
        for (size_t max = 1; max <= 9; max += 2) agree(span, n, delims[d], max);
    }
  }
}

/* Many false starts before the match, after it and with none at all. */
static void test_dense_false_starts(void) {
  char span[4096];
  for (size_t at = 0; at < 200; at++) { /* at every offset, so at the hand-over too */
    for (size_t i = 0; i < sizeof span; i++) span[i] = at % 2 && i % 3 == 2 ? 'x' : '\r';
    memcpy(span + at, "\r\n\r\n", 4);
    agree(span, sizeof span, "\r\n\r\n", sizeof span);
    agree(span, sizeof span, "\r\n\r\n", at + 3); /* the match ends past max */
  }
  memset(span, '\r', sizeof span);
  agree(span, sizeof span, "\r\n", sizeof span);
  span[sizeof span - 1] = '\n';
  agree(span, sizeof span, "\r\n", sizeof span);
  agree(span, sizeof span, "\r\r\r\n", sizeof span);
}

int main(void) {
  test_every_short_span();
  test_dense_false_starts();
  return check_summary();
}
