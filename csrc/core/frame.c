/* frame.c: line and delimiter scanning declared in frame.h. */
#include "frame.h"

#include <assert.h>
#include <string.h>
#include "coronet.h"

/* Neither frame found: too long once the span holds `max` bytes. */
static int incomplete(size_t n, size_t max) { return n >= max ? CN_ELINE_TOO_LONG : 0; }

int cn_frame_line(const char *p, size_t n, size_t max, size_t *line_len, size_t *consumed) {
  size_t lim = n < max ? n : max;
  const char *nl = lim > 0 ? memchr(p, '\n', lim) : NULL;
  size_t len;
  if (nl == NULL) return incomplete(n, max);
  len = (size_t)(nl - p);
  *consumed = len + 1;
  if (len > 0 && p[len - 1] == '\r') len--;
  *line_len = len;
  return 1;
}

/* How many false starts find_delim takes before it hands over to memmem. */
#define FALSE_STARTS 16

/* The first delim in p[0..lim), lim >= dlen. memchr finds each candidate
 * start and one compare checks it: far cheaper than memmem on what this
 * scans (an HTTP head has one "\r" a line; memmem sets up a shift table per
 * call). A span dense with the delimiter's first byte goes to memmem after a
 * few false starts, so the worst case stays linear. */
static const char *find_delim(const char *p, size_t lim, const char *delim, size_t dlen) {
  const char *at = p, *last = p + (lim - dlen); /* the last place a match can start */
  for (int misses = 0; misses < FALSE_STARTS; misses++) {
    at = memchr(at, (unsigned char)delim[0], (size_t)(last - at) + 1);
    if (at == NULL) return NULL;
    if (memcmp(at + 1, delim + 1, dlen - 1) == 0) return at;
    if (at == last) return NULL;
    at++;
  }
  return memmem(at, (size_t)(p + lim - at), delim, dlen);
}

int cn_frame_delim(const char *p, size_t n, const char *delim, size_t dlen, size_t max,
                   size_t *before, size_t *consumed) {
  size_t lim = n < max ? n : max;
  const char *d;
  assert(dlen >= 1);
  /* Searching only the first lim bytes finds exactly the matches ending by max. */
  d = lim >= dlen ? find_delim(p, lim, delim, dlen) : NULL;
  if (d == NULL) return incomplete(n, max);
  *before = (size_t)(d - p);
  *consumed = *before + dlen;
  return 1;
}
