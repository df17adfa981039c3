/* test_ratelimit.c - Sentry's 429 headers into separate limits: each with its own seconds,
 * categories, scope and reason; Retry-After and the 60 s default when no limit is valid. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "ratelimit.h"

#define B(x) CATEGORY_BIT(CAT_##x)

static void expect(const struct ratelimit *rl, double secs, bool all, category_mask cats,
		   enum ratelimit_scope scope, const char *reason)
{
	assert_float_equal(rl->seconds, secs, 1e-9);
	assert_int_equal(rl->all, all);
	assert_int_equal(rl->categories, cats);
	assert_int_equal(rl->scope, scope);
	assert_string_equal(rl->reason, reason);
}

/* The one limit Retry-After (or the default) gives: everything, key scope, no reason. */
static void expect_fallback(const char *limits, const char *retry_after, double secs)
{
	struct ratelimit_set s;

	memset(&s, 0x5a, sizeof(s));
	ratelimit_parse(limits, retry_after, &s);
	if (s.n != 1)
		fail_msg("\"%s\" / \"%s\": %zu limits, want the fallback", limits ? limits : "(null)",
			 retry_after ? retry_after : "(null)", s.n);
	expect(&s.l[0], secs, true, CATEGORY_ALL, RATELIMIT_KEY, "");
}

/* A header with exactly one limit lasting secs (or, secs < 0, none: the 60 s fallback). */
static void expect_seconds(const char *limits, double secs)
{
	struct ratelimit_set s;

	ratelimit_parse(limits, NULL, &s);
	assert_int_equal(s.n, 1);
	if (secs < 0) {
		expect(&s.l[0], RATELIMIT_DEFAULT_SECONDS, true, CATEGORY_ALL, RATELIMIT_KEY, "");
		return;
	}
	if (s.l[0].seconds < secs - 1e-9 || s.l[0].seconds > secs + 1e-9)
		fail_msg("\"%s\": %g s, want %g", limits, s.l[0].seconds, secs);
	assert_int_equal(s.l[0].categories, B(ERROR));
	assert_int_equal(s.l[0].scope, RATELIMIT_PROJECT);
}

static void test_protocol_example(void **state)
{
	struct ratelimit_set s;

	(void)state;
	ratelimit_parse("60:transaction:key, 2700:default;error;security:organization", "5", &s);
	assert_int_equal(s.n, 2);
	expect(&s.l[0], 60, false, B(TRANSACTION), RATELIMIT_KEY, "");
	expect(&s.l[1], 2700, false, B(DEFAULT) | B(ERROR) | B(SECURITY), RATELIMIT_ORGANIZATION, "");
}

static void test_each_limit_keeps_its_own_fields(void **state)
{
	struct ratelimit_set s;

	(void)state;
	ratelimit_parse("10:error:project:quota_exceeded, 20:transaction;span:key:spike_protection,"
			"30::organization:org_quota, 40:session", NULL, &s);
	assert_int_equal(s.n, 4);
	expect(&s.l[0], 10, false, B(ERROR), RATELIMIT_PROJECT, "quota_exceeded");
	expect(&s.l[1], 20, false, B(TRANSACTION) | B(SPAN), RATELIMIT_KEY, "spike_protection");
	expect(&s.l[2], 30, true, CATEGORY_ALL, RATELIMIT_ORGANIZATION, "org_quota");
	expect(&s.l[3], 40, false, B(SESSION), RATELIMIT_KEY, "");  /* no scope: key */
}

static void test_unknown_only_limits_stay_separate(void **state)
{
	struct ratelimit_set s;

	(void)state;
	/* Neither category is known: two limits that hold nothing, not one merged or dropped. */
	ratelimit_parse("3600:x:project, 10:y:organization", "7", &s);
	assert_int_equal(s.n, 2);
	expect(&s.l[0], 3600, false, 0, RATELIMIT_PROJECT, "");
	expect(&s.l[1], 10, false, 0, RATELIMIT_ORGANIZATION, "");
}

static void test_categories(void **state)
{
	struct ratelimit_set s;

	(void)state;
	/* empty (or blank) categories: every category */
	ratelimit_parse("5::key, 6: \t :project, 7:", NULL, &s);
	assert_int_equal(s.n, 3);
	expect(&s.l[0], 5, true, CATEGORY_ALL, RATELIMIT_KEY, "");
	expect(&s.l[1], 6, true, CATEGORY_ALL, RATELIMIT_PROJECT, "");
	expect(&s.l[2], 7, true, CATEGORY_ALL, RATELIMIT_KEY, "");
	/* unknown and indexed names are dropped, known ones kept */
	ratelimit_parse("5:error;bogus;transaction_indexed;replay:key", NULL, &s);
	assert_int_equal(s.n, 1);
	expect(&s.l[0], 5, false, B(ERROR) | B(REPLAY), RATELIMIT_KEY, "");
	/* only unknown names: the limit holds nothing (not "everything"), and Retry-After is unused */
	ratelimit_parse("5:bogus;span_indexed:key", "99", &s);
	assert_int_equal(s.n, 1);
	expect(&s.l[0], 5, false, 0, RATELIMIT_KEY, "");
	/* "other" is sentryq's bucket, never something Sentry limits */
	ratelimit_parse("5:other:key", NULL, &s);
	assert_int_equal(s.n, 1);
	expect(&s.l[0], 5, false, 0, RATELIMIT_KEY, "");
}

static void test_scopes(void **state)
{
	struct ratelimit_set s;

	(void)state;
	ratelimit_parse("1:error:key,2:error:project,3:error:organization,4:error:team,5:error:Organization,"
			"6:error,7:error:", NULL, &s);
	assert_int_equal(s.n, 7);
	assert_int_equal(s.l[0].scope, RATELIMIT_KEY);
	assert_int_equal(s.l[1].scope, RATELIMIT_PROJECT);
	assert_int_equal(s.l[2].scope, RATELIMIT_ORGANIZATION);
	for (size_t i = 3; i < 7; i++)  /* unknown, wrong case, absent, empty: key */
		assert_int_equal(s.l[i].scope, RATELIMIT_KEY);
	assert_string_equal(ratelimit_scope_name(RATELIMIT_KEY), "key");
	assert_string_equal(ratelimit_scope_name(RATELIMIT_PROJECT), "project");
	assert_string_equal(ratelimit_scope_name(RATELIMIT_ORGANIZATION), "organization");
	assert_string_equal(ratelimit_scope_name((enum ratelimit_scope)42), "key");
}

static void test_reason(void **state)
{
	char hdr[512], want[RATELIMIT_REASON_MAX];
	struct ratelimit_set s;

	(void)state;
	ratelimit_parse("5:error:key:Quota_Exceeded.v2-x", NULL, &s);
	assert_string_equal(s.l[0].reason, "Quota_Exceeded.v2-x");
	/* anything outside [A-Za-z0-9_.-] is dropped (the reason goes into logs and our own header) */
	ratelimit_parse("5:error:key:bad reason;\"<x>\"\t\x01\xc3\xa9!=/ok", NULL, &s);
	assert_string_equal(s.l[0].reason, "badreasonxok");
	ratelimit_parse("5:error:key:  spaced  ", NULL, &s);
	assert_string_equal(s.l[0].reason, "spaced");
	ratelimit_parse("5:error:key:", NULL, &s);
	assert_string_equal(s.l[0].reason, "");
	/* bounded: a 200-character reason keeps its first RATELIMIT_REASON_MAX - 1 */
	memset(want, 'r', sizeof(want) - 1);
	want[sizeof(want) - 1] = '\0';
	snprintf(hdr, sizeof(hdr), "5:error:key:%0200d", 0);
	memset(hdr + 12, 'r', 200);
	ratelimit_parse(hdr, NULL, &s);
	assert_int_equal(s.n, 1);
	assert_int_equal(strlen(s.l[0].reason), RATELIMIT_REASON_MAX - 1);
	assert_string_equal(s.l[0].reason, want);
	/* a reason full of dropped characters does not use up the bound */
	snprintf(hdr, sizeof(hdr), "5:error:key:%0100dabc", 0);
	memset(hdr + 12, '!', 100);
	ratelimit_parse(hdr, NULL, &s);
	assert_string_equal(s.l[0].reason, "abc");
}

static void test_metric_bucket_namespaces(void **state)
{
	struct ratelimit_set s;

	(void)state;
	ratelimit_parse("1:metric_bucket:organization:quota:custom,"
			"2:metric_bucket:organization:quota:spans;custom;sessions,"
			"3:metric_bucket:organization:quota:,"
			"4:metric_bucket:organization:quota,"
			"5:metric_bucket:organization:quota:spans;sessions,"
			"6:metric_bucket;error:organization:quota:spans,"
			"7:metric_bucket:organization:quota: custom ,"
			"8:metric_bucket:organization:quota:customer,"
			"9:error:organization:quota:spans", NULL, &s);
	assert_int_equal(s.n, 9);
	/* "custom" among the namespaces, or no namespaces: SDK metrics are held */
	for (size_t i = 0; i < 4; i++)
		if (s.l[i].categories != B(METRIC_BUCKET))
			fail_msg("limit %zu does not hold metric_bucket", i + 1);
	/* namespaces without "custom": not what an SDK sends, so metric_bucket is dropped */
	expect(&s.l[4], 5, false, 0, RATELIMIT_ORGANIZATION, "quota");
	expect(&s.l[5], 6, false, B(ERROR), RATELIMIT_ORGANIZATION, "quota");
	assert_int_equal(s.l[6].categories, B(METRIC_BUCKET));  /* trimmed */
	assert_int_equal(s.l[7].categories, 0);                 /* "customer" is not "custom" */
	/* namespaces only concern metric_bucket */
	assert_int_equal(s.l[8].categories, B(ERROR));
	/* an all-categories limit stays all-categories whatever its namespaces */
	ratelimit_parse("10::organization:quota:spans", NULL, &s);
	assert_int_equal(s.n, 1);
	assert_true(s.l[0].all);
}

static void test_seconds(void **state)
{
	char huge[128];

	(void)state;
	expect_seconds("0.5:error:project", 0.5);
	expect_seconds("1.25:error:project", 1.25);
	expect_seconds("0:error:project", 0);
	expect_seconds("  42  :error:project", 42);
	expect_seconds("3e2:error:project", 300);
	/* huge: capped at one day */
	expect_seconds("86400:error:project", RATELIMIT_MAX_SECONDS);
	expect_seconds("86400.5:error:project", RATELIMIT_MAX_SECONDS);
	expect_seconds("999999:error:project", RATELIMIT_MAX_SECONDS);
	expect_seconds("1e9:error:project", RATELIMIT_MAX_SECONDS);
	expect_seconds("1e300:error:project", RATELIMIT_MAX_SECONDS);
	/* a long but valid number is huge too, not garbage */
	snprintf(huge, sizeof(huge), "%s:error:project", "9999999999999999999999999999999999999999");
	expect_seconds(huge, RATELIMIT_MAX_SECONDS);
	snprintf(huge, sizeof(huge), "%s:error:project", "00000000000000000000000000000000000000030");
	expect_seconds(huge, 30);
	/* negative, NaN, infinite, garbage: the limit is skipped (here: nothing left, 60 s for all) */
	expect_seconds("-3:error:project", -1);
	expect_seconds("-0.5:error:project", -1);
	expect_seconds("nan:error:project", -1);
	expect_seconds("NaN:error:project", -1);
	expect_seconds("inf:error:project", -1);
	expect_seconds("-inf:error:project", -1);
	expect_seconds("infinity:error:project", -1);
	expect_seconds("abc:error:project", -1);
	expect_seconds("5s:error:project", -1);
	expect_seconds("5 5:error:project", -1);
	expect_seconds(":error:project", -1);
	expect_seconds("  :error:project", -1);
	expect_seconds("5", -1);  /* no categories field */
}

static void test_bad_limits_are_skipped(void **state)
{
	struct ratelimit_set s;

	(void)state;
	ratelimit_parse("abc:error:project, 5:error:project, -1::key, , nan::key,7:transaction", NULL, &s);
	assert_int_equal(s.n, 2);
	expect(&s.l[0], 5, false, B(ERROR), RATELIMIT_PROJECT, "");
	expect(&s.l[1], 7, false, B(TRANSACTION), RATELIMIT_KEY, "");
}

static void test_whitespace(void **state)
{
	struct ratelimit_set s;

	(void)state;
	ratelimit_parse("  60 : transaction ; span : key : why ,\t10 :: organization\t, ,,  ", "1", &s);
	assert_int_equal(s.n, 2);
	expect(&s.l[0], 60, false, B(TRANSACTION) | B(SPAN), RATELIMIT_KEY, "why");
	expect(&s.l[1], 10, true, CATEGORY_ALL, RATELIMIT_ORGANIZATION, "");
}

static void test_retry_after(void **state)
{
	(void)state;
	/* used when there is no limit header, or when it yields no valid limit */
	expect_fallback(NULL, "30", 30);
	expect_fallback(NULL, " 30 ", 30);
	expect_fallback(NULL, "2.5", 2.5);
	expect_fallback(NULL, "0", 0);
	expect_fallback("", "4", 4);
	expect_fallback("garbage", "9", 9);
	expect_fallback("abc:error:key, -5::key", "9", 9);
	expect_fallback(", ,", "9", 9);
	/* an HTTP-date, garbage, negative or absent Retry-After: Sentry's 60 s */
	expect_fallback(NULL, "Wed, 21 Oct 2015 07:28:00 GMT", 60);
	expect_fallback(NULL, "soon", 60);
	expect_fallback(NULL, "", 60);
	expect_fallback(NULL, "-5", 60);
	expect_fallback(NULL, "inf", 60);
	expect_fallback(NULL, "nan", 60);
	expect_fallback(NULL, NULL, 60);
	expect_fallback("garbage", NULL, 60);
	/* capped like a limit */
	expect_fallback(NULL, "999999", RATELIMIT_MAX_SECONDS);
}

static void test_retry_after_unused_with_a_valid_limit(void **state)
{
	struct ratelimit_set s;

	(void)state;
	ratelimit_parse("5:error:key", "3000", &s);
	assert_int_equal(s.n, 1);
	expect(&s.l[0], 5, false, B(ERROR), RATELIMIT_KEY, "");
	ratelimit_parse("garbage, 5::project", "3000", &s);
	assert_int_equal(s.n, 1);
	expect(&s.l[0], 5, true, CATEGORY_ALL, RATELIMIT_PROJECT, "");
}

static void test_more_than_max_limits(void **state)
{
	char hdr[2048];
	size_t n = 0;
	struct ratelimit_set s;

	(void)state;
	/* invalid limits first: they do not take places */
	n += (size_t)snprintf(hdr + n, sizeof(hdr) - n, "x:error:key, -1:error:key, ");
	for (int i = 1; i <= RATELIMIT_MAX + 5; i++)
		n += (size_t)snprintf(hdr + n, sizeof(hdr) - n, "%s%d:error:project:r%d", i > 1 ? ", " : "", i, i);
	assert_true(n < sizeof(hdr));
	ratelimit_parse(hdr, "1", &s);
	assert_int_equal(s.n, RATELIMIT_MAX);
	for (int i = 0; i < RATELIMIT_MAX; i++) {
		char r[8];

		snprintf(r, sizeof(r), "r%d", i + 1);
		expect(&s.l[i], i + 1, false, B(ERROR), RATELIMIT_PROJECT, r);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_protocol_example),
		cmocka_unit_test(test_each_limit_keeps_its_own_fields),
		cmocka_unit_test(test_unknown_only_limits_stay_separate),
		cmocka_unit_test(test_categories),
		cmocka_unit_test(test_scopes),
		cmocka_unit_test(test_reason),
		cmocka_unit_test(test_metric_bucket_namespaces),
		cmocka_unit_test(test_seconds),
		cmocka_unit_test(test_bad_limits_are_skipped),
		cmocka_unit_test(test_whitespace),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_retry_after_unused_with_a_valid_limit),
		cmocka_unit_test(test_more_than_max_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
