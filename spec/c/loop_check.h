/* loop_check.h: running a core loop in the C tests that use one. */
#ifndef CN_LOOP_CHECK_H
#define CN_LOOP_CHECK_H

#include "check.h"
#include "coronet.h"

/* Runs the loop until *flag is set (bounded in turns, so a lost callback
 * fails the check instead of hanging the test). */
static inline void check_run_until(cn_loop *loop, const int *flag) {
  int turns = 0;
  while (!*flag && cn_loop_run(loop, UV_RUN_ONCE) >= 0 && ++turns < 100000) {
  }
  CHECK(*flag);
}

#endif
