/* check.h: a header-only test harness for the C unit tests. A failed check
 * prints file:line and the expression and the test goes on; main() returns
 * check_summary(). Every check macro yields 1 if it passed, so a test can
 * guard what follows: if (CHECK(p != NULL)) use(p); */
#ifndef CN_CHECK_H
#define CN_CHECK_H

#include <stdio.h>
#include <string.h>

static struct {
  unsigned checks, failures;
} check_state;

static inline int check_tally(int ok) {
  check_state.checks++;
  if (!ok) check_state.failures++;
  return ok;
}

static inline int check_record(int ok, const char *file, int line, const char *expr) {
  if (!check_tally(ok)) fprintf(stderr, "%s:%d: check failed: %s\n", file, line, expr);
  return ok;
}

static inline int check_eq_int(long long a, long long b, const char *file, int line,
                               const char *ea, const char *eb) {
  if (!check_tally(a == b))
    fprintf(stderr, "%s:%d: check failed: %s == %s (%lld vs %lld)\n", file, line, ea, eb, a, b);
  return a == b;
}

static inline int check_eq_size(size_t a, size_t b, const char *file, int line,
                                const char *ea, const char *eb) {
  if (!check_tally(a == b))
    fprintf(stderr, "%s:%d: check failed: %s == %s (%zu vs %zu)\n", file, line, ea, eb, a, b);
  return a == b;
}

/* NULL equals only NULL. */
static inline int check_eq_str(const char *a, const char *b, const char *file, int line,
                               const char *ea, const char *eb) {
  int ok = a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
  if (!check_tally(ok))
    fprintf(stderr, "%s:%d: check failed: %s == %s (\"%s\" vs \"%s\")\n", file, line, ea, eb,
            a ? a : "(null)", b ? b : "(null)");
  return ok;
}

#define CHECK(cond) check_record((cond) ? 1 : 0, __FILE__, __LINE__, #cond)
#define CHECK_EQ_INT(a, b) check_eq_int((long long)(a), (long long)(b), __FILE__, __LINE__, #a, #b)
#define CHECK_EQ_SIZE(a, b) check_eq_size((size_t)(a), (size_t)(b), __FILE__, __LINE__, #a, #b)
#define CHECK_EQ_STR(a, b) check_eq_str((a), (b), __FILE__, __LINE__, #a, #b)

/* Prints "N checks, M failures"; the process exit status. */
static inline int check_summary(void) {
  printf("%u checks, %u failures\n", check_state.checks, check_state.failures);
  return check_state.failures == 0 ? 0 : 1;
}

#endif
