/* unit: a minimal TAP producer for the engine's C unit tests.
 *
 * Each test is a function; UNIT_RUN prints "ok N - name" or "not ok N - name"
 * followed by the failed checks as "# file:line: expr". test/run-all counts
 * the lines. A test returns early on its first failed check. */
#ifndef RELOCFS_UNIT_H
#define RELOCFS_UNIT_H

#include <stdio.h>
#include <string.h>
#include <stdlib.h>

static int unit_n, unit_failed, unit_cur_failed;

#define CHECK(expr)                                                          \
	do {                                                                 \
		if (!(expr)) {                                               \
			printf("# %s:%d: CHECK(%s) failed\n", __FILE__,      \
			       __LINE__, #expr);                             \
			unit_cur_failed = 1;                                 \
			return;                                              \
		}                                                            \
	} while (0)

#define CHECK_EQ(a, b)                                                       \
	do {                                                                 \
		long long unit_a_ = (long long)(a), unit_b_ = (long long)(b); \
		if (unit_a_ != unit_b_) {                                    \
			printf("# %s:%d: %s == %s failed: %lld != %lld\n",   \
			       __FILE__, __LINE__, #a, #b, unit_a_, unit_b_); \
			unit_cur_failed = 1;                                 \
			return;                                              \
		}                                                            \
	} while (0)

#define CHECK_STR(a, b)                                                      \
	do {                                                                 \
		const char *unit_a_ = (a), *unit_b_ = (b);                   \
		if (unit_a_ == NULL || unit_b_ == NULL ||                    \
		    strcmp(unit_a_, unit_b_) != 0) {                         \
			printf("# %s:%d: %s == %s failed: \"%s\" != \"%s\"\n", \
			       __FILE__, __LINE__, #a, #b,                   \
			       unit_a_ ? unit_a_ : "(null)",                 \
			       unit_b_ ? unit_b_ : "(null)");                \
			unit_cur_failed = 1;                                 \
			return;                                              \
		}                                                            \
	} while (0)

#define UNIT_RUN(fn)                                                         \
	do {                                                                 \
		unit_cur_failed = 0;                                         \
		fn();                                                        \
		unit_n++;                                                    \
		printf("%s %d - %s\n", unit_cur_failed ? "not ok" : "ok",    \
		       unit_n, #fn);                                         \
		unit_failed += unit_cur_failed;                              \
		fflush(stdout);                                              \
	} while (0)

#define UNIT_DONE() (printf("1..%d\n", unit_n), unit_failed ? 1 : 0)

#endif
