/* frame.h: pure scanning of a byte span for the reader's framed reads.
 * No allocation, no libuv. Each returns 1 when the frame is complete, 0 when
 * more bytes are needed, CN_ELINE_TOO_LONG when the span already holds `max`
 * bytes without a complete frame (the caller keeps its bytes). */
#ifndef CN_FRAME_H
#define CN_FRAME_H

#include <stddef.h>

/* A line ending in "\n" found within the first `max` bytes. *line_len is the
 * content length without "\n" and without one "\r" just before it; *consumed
 * includes the terminator. */
int cn_frame_line(const char *p, size_t n, size_t max, size_t *line_len, size_t *consumed);
/* The first occurrence of delim (dlen >= 1) ending within the first `max`
 * bytes. *before is the length before the delimiter; *consumed includes it. */
int cn_frame_delim(const char *p, size_t n, const char *delim, size_t dlen, size_t max,
                   size_t *before, size_t *consumed);

#endif
