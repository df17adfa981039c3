/* test_fleetsync.c - the fleet's records (pure part of src/fleetsync.c): a 429's limits as
 * per-category fields and back as the limits they were, the upstream records, the probe gate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "fleetsync.h"

static const struct ratelimit *find(const struct ratelimit_set *s, enum ratelimit_scope scope, const char *reason)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->l[i].scope == scope && strcmp(s->l[i].reason, reason) == 0)
			return &s->l[i];
	return NULL;
}

/* What the read script answers for the fields the write script was given ("<ms> <reason>"). */
static void as_read(const struct fleetsync_field *f, size_t n, const char **names, const char **values,
		    char buf[][FLEETSYNC_TAIL_MAX], long long elapsed_ms)
{
	for (size_t i = 0; i < n; i++) {
		snprintf(buf[i], FLEETSYNC_TAIL_MAX, "%lld %s", f[i].ms - elapsed_ms, f[i].reason);
		names[i] = f[i].name;
		values[i] = buf[i];
	}
}

static void test_round_trip_by_category(void **state)
{
	struct ratelimit_set in, out;
	struct fleetsync_field f[FLEETSYNC_FIELDS_MAX];
	const char *names[FLEETSYNC_FIELDS_MAX], *values[FLEETSYNC_FIELDS_MAX];
	char buf[FLEETSYNC_FIELDS_MAX][FLEETSYNC_TAIL_MAX];
	const struct ratelimit *l;
	size_t n;

	(void)state;
	ratelimit_parse("20:transaction;span:key:quota, 3600::organization, 5:error:project", NULL, &in);
	assert_int_equal(in.n, 3);
	n = fleetsync_encode_limits(&in, f, FLEETSYNC_FIELDS_MAX);
	assert_int_equal(n, 4);
	assert_string_equal(f[0].name, "key:transaction");
	assert_int_equal(f[0].ms, 20000);
	assert_string_equal(f[0].reason, "quota");
	assert_string_equal(f[1].name, "key:span");
	assert_string_equal(f[2].name, "organization:all");
	assert_int_equal(f[2].ms, 3600000);
	assert_string_equal(f[3].name, "project:error");
	/* Read back 1.5 s later: the same three limits, each with what is left of it. */
	as_read(f, n, names, values, buf, 1500);
	assert_int_equal(fleetsync_decode_limits(names, values, n, &out), FLEETSYNC_DECODED);
	assert_int_equal(out.n, 3);
	l = find(&out, RATELIMIT_KEY, "quota");
	assert_non_null(l);
	assert_false(l->all);
	assert_int_equal(l->categories, CATEGORY_BIT(CAT_TRANSACTION) | CATEGORY_BIT(CAT_SPAN));
	assert_float_equal(l->seconds, 18.5, 1e-9);
	l = find(&out, RATELIMIT_ORGANIZATION, "");
	assert_non_null(l);
	assert_true(l->all);
	assert_float_equal(l->seconds, 3598.5, 1e-9);
	l = find(&out, RATELIMIT_PROJECT, "");
	assert_non_null(l);
	assert_int_equal(l->categories, CATEGORY_BIT(CAT_ERROR));
}

/* Two limits naming one category in one scope: one field, the longer one. */
static void test_one_field_per_category_the_longest(void **state)
{
	struct ratelimit_set in;
	struct fleetsync_field f[FLEETSYNC_FIELDS_MAX];

	(void)state;
	ratelimit_parse("5:transaction:key:a, 30:transaction;error:key:b", NULL, &in);
	assert_int_equal(fleetsync_encode_limits(&in, f, FLEETSYNC_FIELDS_MAX), 2);
	assert_string_equal(f[0].name, "key:transaction");
	assert_int_equal(f[0].ms, 30000);
	assert_string_equal(f[0].reason, "b");
	assert_string_equal(f[1].name, "key:error");
	/* Bounded by max. */
	assert_int_equal(fleetsync_encode_limits(&in, f, 1), 1);
}

/* Fields of different times (two 429s) stay apart; garbage is skipped, the rest decoded. */
static void test_decode_groups_and_skips(void **state)
{
	const char *names[] = { "key:transaction", "key:span", "key:error", "nope:error", "key:bogus", "key:all",
				"key:error", NULL };
	const char *values[] = { "20000", "19800", "4000 x", "1000", "1000", "-5", "12 bad reason", "1000" };
	struct ratelimit_set out;
	const struct ratelimit *l;

	(void)state;
	assert_int_equal(fleetsync_decode_limits(names, values, 8, &out), FLEETSYNC_SKIPPED);
	assert_int_equal(out.n, 2);
	l = find(&out, RATELIMIT_KEY, "");
	assert_non_null(l);
	assert_int_equal(l->categories, CATEGORY_BIT(CAT_TRANSACTION) | CATEGORY_BIT(CAT_SPAN));
	assert_float_equal(l->seconds, 20.0, 1e-9);
	l = find(&out, RATELIMIT_KEY, "x");
	assert_non_null(l);
	assert_int_equal(l->categories, CATEGORY_BIT(CAT_ERROR));
	assert_float_equal(l->seconds, 4.0, 1e-9);
	assert_int_equal(fleetsync_decode_limits(names, values, 0, &out), FLEETSYNC_DECODED);
	assert_int_equal(out.n, 0);
}

static void test_state_records(void **state)
{
	char buf[64];

	(void)state;
	assert_int_equal(fleetsync_format_state(FLEETSYNC_DOWN, "relay-a:12", buf, sizeof(buf)), 15);
	assert_string_equal(buf, "down relay-a:12");
	assert_int_equal(fleetsync_parse_state(buf, strlen(buf)), FLEETSYNC_DOWN);
	assert_int_equal(fleetsync_format_state(FLEETSYNC_UP, "b", buf, sizeof(buf)), 4);
	assert_int_equal(fleetsync_parse_state(buf, strlen(buf)), FLEETSYNC_UP);
	assert_int_equal(fleetsync_format_state(FLEETSYNC_UP, "a-long-id", buf, 5), 0);
	assert_int_equal(fleetsync_format_state(FLEETSYNC_UNKNOWN, "a", buf, sizeof(buf)), 0);
	assert_int_equal(fleetsync_parse_state("", 0), FLEETSYNC_UNKNOWN);
	assert_int_equal(fleetsync_parse_state("downtown", 8), FLEETSYNC_UNKNOWN);
	assert_int_equal(fleetsync_parse_state("upx", 3), FLEETSYNC_UNKNOWN);
	assert_int_equal(fleetsync_parse_state(NULL, 0), FLEETSYNC_UNKNOWN);
	assert_string_equal(fleetsync_state_name(FLEETSYNC_DOWN), "down");
	assert_string_equal(fleetsync_state_name(FLEETSYNC_UNKNOWN), "unknown");
}

/* Only the lease holder probes, while the fleet's records are fresh; without them, everyone. */
static void test_gate(void **state)
{
	(void)state;
	assert_false(fleetsync_gate(true, 0, 10.0));
	assert_true(fleetsync_gate(true, 12.0, 10.0));
	assert_false(fleetsync_gate(true, 10.0, 10.0));
	assert_true(fleetsync_gate(false, 0, 10.0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_by_category),
		cmocka_unit_test(test_one_field_per_category_the_longest),
		cmocka_unit_test(test_decode_groups_and_skips),
		cmocka_unit_test(test_state_records),
		cmocka_unit_test(test_gate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
