/* fuzz_input.h: the input shape the libFuzzer targets share. After a
 * target's header bytes come chunks, each one length byte and that many
 * bytes (a short last chunk takes what is left). The concatenation of the
 * chunks is the stream; the lengths are the fuzzer's chosen split of it,
 * so one stream is tried under many chunkings. */
#ifndef CN_FUZZ_INPUT_H
#define CN_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A failed property: print what broke and abort, so libFuzzer saves the input. */
#define FUZZ_CHECK(cond)                                                              \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);   \
      abort();                                                                        \
    }                                                                                 \
  } while (0)

typedef struct fuzz_chunks {
  const uint8_t *p; /* the remaining input */
  size_t n;
} fuzz_chunks;

/* The next chunk into *chunk / *len; 0 once the input is used up. */
static inline int fuzz_next_chunk(fuzz_chunks *c, const uint8_t **chunk, size_t *len) {
  size_t want;
  if (c->n == 0) return 0;
  want = c->p[0];
  c->p++;
  c->n--;
  *len = want < c->n ? want : c->n;
  *chunk = c->p;
  c->p += *len;
  c->n -= *len;
  return 1;
}

/* The whole stream (the chunks joined) into a malloc'd buffer; its length in *len. */
static inline uint8_t *fuzz_join(fuzz_chunks c, size_t *len) {
  uint8_t *all = malloc(c.n + 1);
  const uint8_t *chunk;
  size_t n = 0, k;
  FUZZ_CHECK(all != NULL);
  while (fuzz_next_chunk(&c, &chunk, &k)) {
    for (size_t i = 0; i < k; i++) all[n + i] = chunk[i];
    n += k;
  }
  *len = n;
  return all;
}

#endif
