/* test_ratelimit.c - parsing of Sentry's 429 headers into a park duration and scope. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ratelimit.h"

static void check(const char *limits, const char *retry_after, double secs, bool org)
{
	struct ratelimit rl;

	ratelimit_parse(limits, retry_after, &rl);
	assert_float_equal(rl.seconds, secs, 0.0001);
	assert_int_equal(rl.organization, org);
}

static void test_limits_header_wins(void **state)
{
	(void)state;
	check("60:transaction:key, 2700:default;error;security:organization", "5", 2700, true);
	check("3::project", "100", 3, false);
	check("10:error:project:quota_exceeded, 20:transaction:key", NULL, 20, false);
	check("7:metric_bucket:organization:reason:custom", NULL, 7, true);
}

static void test_bad_limits_are_skipped(void **state)
{
	(void)state;
	check("abc:error:project, 5:error:project", NULL, 5, false);
	check("garbage", "9", 9, false);    /* nothing valid: fall back to Retry-After */
	check("", "4", 4, false);
	check("-3::project", NULL, 60, false);
}

static void test_retry_after_and_default(void **state)
{
	(void)state;
	check(NULL, "30", 30, false);
	check(NULL, "Wed, 21 Oct 2015 07:28:00 GMT", 60, false);
	check(NULL, NULL, 60, false);
	check(NULL, "999999", 86400, false);  /* capped at a day */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limits_header_wins),
		cmocka_unit_test(test_bad_limits_are_skipped),
		cmocka_unit_test(test_retry_after_and_default),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
