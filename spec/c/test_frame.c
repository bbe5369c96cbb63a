/* test_frame.c: unit tests for csrc/core/frame.c. */
#include <string.h>
#include "check.h"
#include "coronet.h"
#include "frame.h"

/* cn_frame_line over a string literal (its bytes, not its NUL). */
static int line(const char *s, size_t max, size_t *len, size_t *used) {
  return cn_frame_line(s, strlen(s), max, len, used);
}

static int delim(const char *s, const char *d, size_t max, size_t *before, size_t *used) {
  return cn_frame_delim(s, strlen(s), d, strlen(d), max, before, used);
}

static void test_line_terminators(void) {
  size_t len = 99, used = 99;
  CHECK_EQ_INT(line("abc\n", 100, &len, &used), 1);
  CHECK_EQ_SIZE(len, 3);
  CHECK_EQ_SIZE(used, 4);
  CHECK_EQ_INT(line("abc\r\n", 100, &len, &used), 1);
  CHECK_EQ_SIZE(len, 3);
  CHECK_EQ_SIZE(used, 5);
  CHECK_EQ_INT(line("abc\r\r\n", 100, &len, &used), 1); /* only one "\r" goes */
  CHECK_EQ_SIZE(len, 4);
  CHECK_EQ_SIZE(used, 6);
  CHECK_EQ_INT(line("\n", 100, &len, &used), 1);
  CHECK_EQ_SIZE(len, 0);
  CHECK_EQ_SIZE(used, 1);
  CHECK_EQ_INT(line("\r\n", 100, &len, &used), 1);
  CHECK_EQ_SIZE(len, 0);
  CHECK_EQ_SIZE(used, 2);
  CHECK_EQ_INT(line("\n\r\n", 100, &len, &used), 1); /* the "\r" after is the next line's */
  CHECK_EQ_SIZE(len, 0);
  CHECK_EQ_SIZE(used, 1);
}

static void test_line_lone_cr(void) {
  size_t len = 0, used = 0;
  CHECK_EQ_INT(line("abc\r", 100, &len, &used), 0);
  CHECK_EQ_INT(line("abc\rdef", 100, &len, &used), 0);
  CHECK_EQ_INT(line("\r", 100, &len, &used), 0);
  CHECK_EQ_INT(line("a\rb\n", 100, &len, &used), 1);
  CHECK_EQ_SIZE(len, 3);
  CHECK_EQ_SIZE(used, 4);
}

static void test_line_first_and_binary(void) {
  size_t len = 0, used = 0;
  CHECK_EQ_INT(line("ab\ncd\n", 100, &len, &used), 1);
  CHECK_EQ_SIZE(len, 2);
  CHECK_EQ_SIZE(used, 3);
  CHECK_EQ_INT(cn_frame_line("a\0b\nz", 5, 100, &len, &used), 1); /* NUL is data */
  CHECK_EQ_SIZE(len, 3);
  CHECK_EQ_SIZE(used, 4);
  /* n bounds the search: the "\n" past n is not seen */
  CHECK_EQ_INT(cn_frame_line("abc\n", 3, 100, &len, &used), 0);
}

static void test_line_empty(void) {
  size_t len = 0, used = 0;
  CHECK_EQ_INT(cn_frame_line(NULL, 0, 100, &len, &used), 0);
  CHECK_EQ_INT(cn_frame_line("", 0, 1, &len, &used), 0);
  CHECK_EQ_INT(cn_frame_line(NULL, 0, 0, &len, &used), CN_ELINE_TOO_LONG);
}

/* "abcd\n": the terminator is byte 5. */
static void test_line_max(void) {
  size_t len = 0, used = 0;
  CHECK_EQ_INT(line("abcd\n", 6, &len, &used), 1);
  len = used = 0;
  CHECK_EQ_INT(line("abcd\n", 5, &len, &used), 1); /* exactly max */
  CHECK_EQ_SIZE(len, 4);
  CHECK_EQ_SIZE(used, 5);
  CHECK_EQ_INT(line("abcd\n", 4, &len, &used), CN_ELINE_TOO_LONG);
  CHECK_EQ_INT(line("abcdefgh\n", 4, &len, &used), CN_ELINE_TOO_LONG);
  /* "\r\n" straddling max */
  CHECK_EQ_INT(line("abc\r\n", 4, &len, &used), CN_ELINE_TOO_LONG);
  CHECK_EQ_INT(line("abc\r\n", 5, &len, &used), 1);
  CHECK_EQ_SIZE(len, 3);
}

static void test_line_incomplete(void) {
  size_t len = 0, used = 0;
  CHECK_EQ_INT(line("abc", 4, &len, &used), 0);                 /* max - 1 */
  CHECK_EQ_INT(line("abcd", 4, &len, &used), CN_ELINE_TOO_LONG); /* max */
  CHECK_EQ_INT(line("abcde", 4, &len, &used), CN_ELINE_TOO_LONG); /* max + 1 */
  CHECK_EQ_INT(line("abc\r", 4, &len, &used), CN_ELINE_TOO_LONG);
}

/* The reader's loop: take frames one after another. */
static void test_line_sequence(void) {
  const char *s = "one\r\ntwo\n\nthree";
  size_t off = 0, n = strlen(s), len = 0, used = 0;
  CHECK_EQ_INT(cn_frame_line(s + off, n - off, 64, &len, &used), 1);
  CHECK(len == 3 && memcmp(s + off, "one", 3) == 0);
  off += used;
  CHECK_EQ_INT(cn_frame_line(s + off, n - off, 64, &len, &used), 1);
  CHECK(len == 3 && memcmp(s + off, "two", 3) == 0);
  off += used;
  CHECK_EQ_INT(cn_frame_line(s + off, n - off, 64, &len, &used), 1);
  CHECK_EQ_SIZE(len, 0);
  off += used;
  CHECK_EQ_INT(cn_frame_line(s + off, n - off, 64, &len, &used), 0);
  CHECK_EQ_SIZE(off, 10);
}

static void test_delim_basic(void) {
  size_t before = 99, used = 99;
  CHECK_EQ_INT(delim("abc--def", "--", 100, &before, &used), 1);
  CHECK_EQ_SIZE(before, 3);
  CHECK_EQ_SIZE(used, 5);
  CHECK_EQ_INT(delim("--x", "--", 100, &before, &used), 1);
  CHECK_EQ_SIZE(before, 0);
  CHECK_EQ_SIZE(used, 2);
  CHECK_EQ_INT(delim("a,b,c", ",", 100, &before, &used), 1); /* the first one */
  CHECK_EQ_SIZE(before, 1);
  CHECK_EQ_SIZE(used, 2);
  CHECK_EQ_INT(delim("aaab", "aab", 100, &before, &used), 1); /* overlapping prefix */
  CHECK_EQ_SIZE(before, 1);
  CHECK_EQ_SIZE(used, 4);
  CHECK_EQ_INT(delim("abc\r\n", "\n", 100, &before, &used), 1); /* no "\r" stripping */
  CHECK_EQ_SIZE(before, 4);
  CHECK_EQ_SIZE(used, 5);
  CHECK_EQ_INT(cn_frame_delim("ab\0\0cd", 6, "\0\0", 2, 100, &before, &used), 1);
  CHECK_EQ_SIZE(before, 2);
  CHECK_EQ_SIZE(used, 4);
  CHECK_EQ_INT(cn_frame_delim("a\0b\0\0", 5, "\0\0", 2, 100, &before, &used), 1);
  CHECK_EQ_SIZE(before, 3);
}

static void test_delim_incomplete(void) {
  size_t before = 0, used = 0;
  CHECK_EQ_INT(delim("abcdef", "--", 100, &before, &used), 0);
  CHECK_EQ_INT(delim("abc\r\n\r", "\r\n\r\n", 100, &before, &used), 0); /* partial at the end */
  CHECK_EQ_INT(delim("abc\r\n\r", "\r\n\r\n", 6, &before, &used), CN_ELINE_TOO_LONG);
  CHECK_EQ_INT(delim("ab", "abc", 100, &before, &used), 0); /* delimiter longer than data */
  CHECK_EQ_INT(delim("ab", "abc", 2, &before, &used), CN_ELINE_TOO_LONG);
  CHECK_EQ_INT(delim("abc", "--", 4, &before, &used), 0);                 /* max - 1 */
  CHECK_EQ_INT(delim("abcd", "--", 4, &before, &used), CN_ELINE_TOO_LONG); /* max */
  CHECK_EQ_INT(delim("abcde", "--", 4, &before, &used), CN_ELINE_TOO_LONG); /* max + 1 */
  CHECK_EQ_INT(cn_frame_delim(NULL, 0, "x", 1, 100, &before, &used), 0);
  CHECK_EQ_INT(cn_frame_delim(NULL, 0, "x", 1, 0, &before, &used), CN_ELINE_TOO_LONG);
}

/* "abcXYZ": the delimiter ends at byte 6. */
static void test_delim_max(void) {
  size_t before = 0, used = 0;
  CHECK_EQ_INT(delim("abcXYZ", "XYZ", 7, &before, &used), 1);
  before = used = 0;
  CHECK_EQ_INT(delim("abcXYZ", "XYZ", 6, &before, &used), 1); /* ends exactly at max */
  CHECK_EQ_SIZE(before, 3);
  CHECK_EQ_SIZE(used, 6);
  CHECK_EQ_INT(delim("abcXYZ", "XYZ", 5, &before, &used), CN_ELINE_TOO_LONG); /* straddles max */
  CHECK_EQ_INT(delim("abcXYZ", "XYZ", 3, &before, &used), CN_ELINE_TOO_LONG); /* starts at max */
  CHECK_EQ_INT(delim("abcXY", "XYZ", 5, &before, &used), CN_ELINE_TOO_LONG);
  CHECK_EQ_INT(delim("xxxxx--", "--", 4, &before, &used), CN_ELINE_TOO_LONG);
  /* n bounds the search too */
  CHECK_EQ_INT(cn_frame_delim("abcXYZ", 5, "XYZ", 3, 100, &before, &used), 0);
}

int main(void) {
  test_line_terminators();
  test_line_lone_cr();
  test_line_first_and_binary();
  test_line_empty();
  test_line_max();
  test_line_incomplete();
  test_line_sequence();
  test_delim_basic();
  test_delim_incomplete();
  test_delim_max();
  return check_summary();
}
