/*
  The C test programs' checks: one "ok - ..." or "FAIL (file:line) - ..."
  line each (flushed, so a crash loses none), counted; the program ends
  with CHECK_SUMMARY(), the "N passed, N failed" line scripts/test.sh
  reads, and returns its exit code.
*/
#ifndef AKM_CHECK_H
#define AKM_CHECK_H

#include <stdio.h>

static int passed, failed;

#define CHECK(cond, ...)                                                      \
  do {                                                                        \
    if (cond) {                                                               \
      passed++;                                                               \
      printf("ok - ");                                                        \
    } else {                                                                  \
      failed++;                                                               \
      printf("FAIL (%s:%d) - ", __FILE__, __LINE__);                          \
    }                                                                         \
    printf(__VA_ARGS__);                                                      \
    printf("\n");                                                             \
    fflush(stdout);                                                           \
  } while (0)

#define CHECK_SUMMARY() (printf("%d passed, %d failed\n", passed, failed), failed ? 1 : 0)

#endif
