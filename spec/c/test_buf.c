/* test_buf.c: unit tests for csrc/core/buf.c. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>
#include "buf.h"
#include "check.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

static char pattern(size_t i) { return (char)(i * 7 + 3); }

static void fill(char *p, size_t from, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) p[i] = pattern(from + i);
}

/* The buffered bytes are pattern(from), pattern(from+1), ... */
static int holds_pattern(const cn_buf *b, size_t from, size_t n) {
  size_t i;
  if (cn_buf_len(b) != n) return 0;
  for (i = 0; i < n; i++)
    if (cn_buf_data(b)[i] != pattern(from + i)) return 0;
  return 1;
}

static int append_pattern(cn_buf *b, size_t from, size_t n) {
  char *tmp = malloc(n);
  int err;
  fill(tmp, from, n);
  err = cn_buf_append(b, tmp, n);
  free(tmp);
  return err;
}

static int same_fields(const cn_buf *a, const cn_buf *b) {
  return a->base == b->base && a->start == b->start && a->end == b->end && a->cap == b->cap;
}

static void test_init_free(void) {
  cn_buf b;
  cn_buf_init(&b);
  CHECK(b.base == NULL);
  CHECK_EQ_SIZE(cn_buf_len(&b), 0);
  CHECK_EQ_SIZE(b.cap, 0);
  cn_buf_free(&b); /* free of a never-used buffer */
  CHECK(b.base == NULL);

  CHECK_EQ_INT(append_pattern(&b, 0, 100), 0);
  cn_buf_consume(&b, 10);
  cn_buf_free(&b);
  CHECK(b.base == NULL);
  CHECK_EQ_SIZE(b.start, 0);
  CHECK_EQ_SIZE(b.end, 0);
  CHECK_EQ_SIZE(b.cap, 0);
  /* reusable after free */
  CHECK_EQ_INT(append_pattern(&b, 5, 10), 0);
  CHECK(holds_pattern(&b, 5, 10));
  cn_buf_free(&b);
}

static void test_reserve_sizes(void) {
  cn_buf b;
  cn_buf_init(&b);
  CHECK_EQ_INT(cn_buf_reserve(&b, 0), 0);
  CHECK_EQ_SIZE(b.cap, 0); /* nothing asked, nothing allocated */
  CHECK_EQ_INT(cn_buf_reserve(&b, 1), 0);
  CHECK_EQ_SIZE(b.cap, 4096);
  CHECK(b.base != NULL);
  CHECK_EQ_INT(cn_buf_reserve(&b, 4096), 0);
  CHECK_EQ_SIZE(b.cap, 4096);
  CHECK_EQ_INT(cn_buf_reserve(&b, 4097), 0);
  CHECK_EQ_SIZE(b.cap, 8192);
  cn_buf_free(&b);

  cn_buf_init(&b);
  CHECK_EQ_INT(cn_buf_reserve(&b, 20000), 0);
  CHECK_EQ_SIZE(b.cap, 32768); /* 4096 doubled until it fits */
  cn_buf_free(&b);
}

static void test_append_exact_and_doubling(void) {
  cn_buf b;
  cn_buf_init(&b);
  CHECK_EQ_INT(append_pattern(&b, 0, 4096), 0);
  CHECK_EQ_SIZE(b.cap, 4096);
  CHECK(holds_pattern(&b, 0, 4096));
  CHECK_EQ_INT(append_pattern(&b, 4096, 1), 0);
  CHECK_EQ_SIZE(b.cap, 8192);
  CHECK(holds_pattern(&b, 0, 4097));
  CHECK_EQ_INT(append_pattern(&b, 4097, 10000), 0);
  CHECK_EQ_SIZE(b.cap, 16384);
  CHECK(holds_pattern(&b, 0, 14097));
  cn_buf_free(&b);
}

static void test_append_empty(void) {
  cn_buf b;
  cn_buf_init(&b);
  CHECK_EQ_INT(cn_buf_append(&b, NULL, 0), 0);
  CHECK(b.base == NULL);
  CHECK_EQ_SIZE(cn_buf_len(&b), 0);
  cn_buf_free(&b);
}

static void test_tail_commit(void) {
  cn_buf b;
  size_t avail;
  char *t;
  cn_buf_init(&b);
  CHECK_EQ_INT(cn_buf_reserve(&b, 10), 0);
  t = cn_buf_tail(&b, &avail);
  CHECK_EQ_SIZE(avail, 4096);
  CHECK(t == b.base);
  fill(t, 0, 10);
  cn_buf_commit(&b, 10);
  CHECK(holds_pattern(&b, 0, 10));
  t = cn_buf_tail(&b, &avail);
  CHECK_EQ_SIZE(avail, 4086);
  CHECK(t == b.base + 10);
  fill(t, 10, avail);
  cn_buf_commit(&b, avail);
  CHECK(holds_pattern(&b, 0, 4096));
  cn_buf_tail(&b, &avail);
  CHECK_EQ_SIZE(avail, 0);
  cn_buf_commit(&b, 0);
  CHECK_EQ_SIZE(cn_buf_len(&b), 4096);
  cn_buf_free(&b);
}

static void test_consume(void) {
  cn_buf b;
  cn_buf_init(&b);
  CHECK_EQ_INT(append_pattern(&b, 0, 100), 0);
  cn_buf_consume(&b, 0);
  CHECK(holds_pattern(&b, 0, 100));
  cn_buf_consume(&b, 30);
  CHECK_EQ_SIZE(b.start, 30);
  CHECK(holds_pattern(&b, 30, 70));
  cn_buf_consume(&b, 69);
  CHECK(holds_pattern(&b, 99, 1));
  cn_buf_consume(&b, 1);
  CHECK_EQ_SIZE(cn_buf_len(&b), 0);
  CHECK_EQ_SIZE(b.start, 0); /* rewound */
  CHECK_EQ_SIZE(b.end, 0);
  CHECK_EQ_SIZE(b.cap, 4096); /* the block stays */
  cn_buf_free(&b);
}

static void test_compaction_without_growth(void) {
  cn_buf b, before;
  cn_buf_init(&b);
  CHECK_EQ_INT(append_pattern(&b, 0, 4000), 0);
  cn_buf_consume(&b, 3000);
  before = b;
  /* 96 bytes free at the end: enough for 50, no move */
  CHECK_EQ_INT(cn_buf_reserve(&b, 50), 0);
  CHECK(same_fields(&b, &before));
  /* 500 do not fit at the end but do after compaction */
  CHECK_EQ_INT(cn_buf_reserve(&b, 500), 0);
  CHECK(b.base == before.base);
  CHECK_EQ_SIZE(b.cap, 4096);
  CHECK_EQ_SIZE(b.start, 0);
  CHECK_EQ_SIZE(b.end, 1000);
  CHECK(holds_pattern(&b, 3000, 1000));
  /* exactly all free space after compaction */
  cn_buf_consume(&b, 10);
  CHECK_EQ_INT(cn_buf_reserve(&b, 4096 - 990), 0);
  CHECK_EQ_SIZE(b.cap, 4096);
  CHECK(holds_pattern(&b, 3010, 990));
  cn_buf_free(&b);
}

static void test_growth_after_partial_consume(void) {
  cn_buf b;
  size_t avail;
  cn_buf_init(&b);
  CHECK_EQ_INT(append_pattern(&b, 0, 4096), 0);
  cn_buf_consume(&b, 100);
  /* 100 bytes would fit after compaction; 200 need growth */
  CHECK_EQ_INT(cn_buf_reserve(&b, 200), 0);
  CHECK_EQ_SIZE(b.cap, 8192);
  CHECK_EQ_SIZE(b.start, 0);
  CHECK(holds_pattern(&b, 100, 3996));
  cn_buf_tail(&b, &avail);
  CHECK(avail >= 200);
  CHECK_EQ_INT(append_pattern(&b, 4096, 200), 0);
  CHECK(holds_pattern(&b, 100, 4196));
  cn_buf_free(&b);
}

/* Many appends and consumes of odd sizes against a running model. */
static void test_fifo_model(void) {
  cn_buf b;
  size_t in = 0, out = 0, round;
  int ok = 1;
  cn_buf_init(&b);
  for (round = 0; round < 200; round++) {
    size_t add = (round * 977) % 3001, take;
    ok &= append_pattern(&b, in, add) == 0;
    in += add;
    take = (round * 1409) % (in - out + 1);
    cn_buf_consume(&b, take);
    out += take;
    ok &= holds_pattern(&b, out, in - out);
  }
  CHECK(ok);
  CHECK(b.cap >= in - out);
  cn_buf_free(&b);
}

static void test_swap(void) {
  cn_buf a, b, a0, b0;
  cn_buf_init(&a);
  cn_buf_init(&b);
  CHECK_EQ_INT(append_pattern(&a, 0, 10), 0);
  CHECK_EQ_INT(append_pattern(&b, 50, 5000), 0);
  cn_buf_consume(&b, 7);
  a0 = a;
  b0 = b;
  cn_buf_swap(&a, &b);
  CHECK(same_fields(&a, &b0));
  CHECK(same_fields(&b, &a0));
  CHECK(holds_pattern(&a, 57, 4993));
  CHECK(holds_pattern(&b, 0, 10));
  cn_buf_free(&b);
  cn_buf_swap(&a, &b); /* with an empty buffer */
  CHECK(a.base == NULL);
  CHECK(holds_pattern(&b, 57, 4993));
  cn_buf_free(&a);
  cn_buf_free(&b);
}

/* Requests no allocator can meet fail before malloc, leaving the buffer alone. */
static void test_huge_reserve(void) {
  cn_buf b, before;
  char byte = 'x';
  cn_buf_init(&b);
  before = b;
  CHECK_EQ_INT(cn_buf_reserve(&b, SIZE_MAX), UV_ENOMEM);
  CHECK(same_fields(&b, &before));

  CHECK_EQ_INT(append_pattern(&b, 0, 5000), 0);
  cn_buf_consume(&b, 1000);
  before = b;
  CHECK_EQ_INT(cn_buf_reserve(&b, SIZE_MAX), UV_ENOMEM);
  CHECK_EQ_INT(cn_buf_reserve(&b, SIZE_MAX - 3999), UV_ENOMEM); /* len + n would wrap to 0 */
  CHECK_EQ_INT(cn_buf_reserve(&b, (size_t)PTRDIFF_MAX - 3999), UV_ENOMEM);
  CHECK_EQ_INT(cn_buf_append(&b, &byte, SIZE_MAX), UV_ENOMEM);
  CHECK(same_fields(&b, &before));
  CHECK(holds_pattern(&b, 1000, 4000));
  cn_buf_free(&b);
}

/* A real malloc failure, provoked with an address-space limit. ASan reserves
 * terabytes of shadow memory and aborts on failed allocations, so skip it there. */
static void test_malloc_failure(void) {
#ifndef UNDER_ASAN
  cn_buf b, before;
  struct rlimit old, lim;
  if (!CHECK_EQ_INT(getrlimit(RLIMIT_AS, &old), 0)) return;
  cn_buf_init(&b);
  CHECK_EQ_INT(append_pattern(&b, 0, 5000), 0);
  cn_buf_consume(&b, 1000);
  before = b;
  lim = old;
  lim.rlim_cur = (rlim_t)256 << 20;
  if (old.rlim_cur != RLIM_INFINITY && old.rlim_cur < lim.rlim_cur) lim.rlim_cur = old.rlim_cur;
  if (CHECK_EQ_INT(setrlimit(RLIMIT_AS, &lim), 0)) {
    int err = cn_buf_reserve(&b, (size_t)1 << 30);
    CHECK_EQ_INT(setrlimit(RLIMIT_AS, &old), 0);
    CHECK_EQ_INT(err, UV_ENOMEM);
    CHECK(same_fields(&b, &before));
    CHECK(holds_pattern(&b, 1000, 4000));
  }
  cn_buf_free(&b);
#endif
}

int main(void) {
  test_init_free();
  test_reserve_sizes();
  test_append_exact_and_doubling();
  test_append_empty();
  test_tail_commit();
  test_consume();
  test_compaction_without_growth();
  test_growth_after_partial_consume();
  test_fifo_model();
  test_swap();
  test_huge_reserve();
  test_malloc_failure();
  return check_summary();
}
