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

int cn_frame_delim(const char *p, size_t n, const char *delim, size_t dlen, size_t max,
                   size_t *before, size_t *consumed) {
  size_t lim = n < max ? n : max;
  const char *d;
  assert(dlen >= 1);
  /* Searching only the first lim bytes finds exactly the matches ending by max. */
  d = lim >= dlen ? memmem(p, lim, delim, dlen) : NULL;
  if (d == NULL) return incomplete(n, max);
  *before = (size_t)(d - p);
  *consumed = *before + dlen;
  return 1;
}
