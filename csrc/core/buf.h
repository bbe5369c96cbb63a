/* buf.h: a byte FIFO over one heap block. No libuv. Readable bytes are
 * [base+start, base+end); free space is [base+end, base+cap). */
#ifndef CN_BUF_H
#define CN_BUF_H

#include <stddef.h>

typedef struct cn_buf {
  char *base;
  size_t start, end, cap;
} cn_buf;

void cn_buf_init(cn_buf *b);
/* Frees the block; the buffer is empty and reusable afterwards. */
void cn_buf_free(cn_buf *b);
static inline size_t cn_buf_len(const cn_buf *b) { return b->end - b->start; }
/* NULL for a buffer with no block (NULL + 0 is undefined in C). */
static inline char *cn_buf_data(const cn_buf *b) { return b->base ? b->base + b->start : NULL; }
/* Ensure at least n free bytes after the data: compact first, grow (doubling) if needed.
 * Returns 0, or UV_ENOMEM leaving the buffer unchanged. */
int cn_buf_reserve(cn_buf *b, size_t n);
/* The free span after the data; *avail receives its size. */
static inline char *cn_buf_tail(cn_buf *b, size_t *avail) {
  *avail = b->cap - b->end;
  return b->base ? b->base + b->end : NULL;
}
/* Mark n bytes of the free span as data (n <= available). */
void cn_buf_commit(cn_buf *b, size_t n);
/* Drop n bytes from the front (n <= len); an emptied buffer rewinds to offset 0. */
void cn_buf_consume(cn_buf *b, size_t n);
/* Copy n bytes to the end. 0 or UV_ENOMEM (nothing appended). */
int cn_buf_append(cn_buf *b, const char *p, size_t n);
/* Exchange two buffers (the writer swaps its pending and in-flight halves). */
void cn_buf_swap(cn_buf *a, cn_buf *b);

#endif
