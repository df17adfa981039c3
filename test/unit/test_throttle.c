/* test_throttle.c - the rate limits in force: per project and per upstream, each for its own
 * categories and time; what is held, what an SDK is told, and how limits end. `now` is always a
 * fixed number here, never the clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "throttle.h"

#define B(x) CATEGORY_BIT(CAT_##x)
#define T0 1000.0

static void apply(struct throttle *t, const char *up, const char *project, const char *limits, double now)
{
	struct ratelimit_set s;

	ratelimit_parse(limits, NULL, &s);
	assert_int_equal(throttle_apply(t, up, project, &s, now), 0);
}

/* One limit of cats for secs at key scope, without going through the parser. */
static void apply_one(struct throttle *t, const char *up, const char *project, bool all, category_mask cats,
		      enum ratelimit_scope scope, double secs, double now)
{
	struct ratelimit_set s;

	memset(&s, 0, sizeof(s));
	s.n = 1;
	s.l[0].seconds = secs;
	s.l[0].all = all;
	s.l[0].categories = all ? CATEGORY_ALL : cats;
	s.l[0].scope = scope;
	assert_int_equal(throttle_apply(t, up, project, &s, now), 0);
}

static void held_is(const struct throttle *t, const char *up, const char *project, category_mask cats,
		    double now, double want)
{
	double got = throttle_held(t, up, project, cats, now);

	if (got < want - 1e-9 || got > want + 1e-9)
		fail_msg("held(%s, %s, %#x, %g) = %g, want %g", up, project, (unsigned)cats, now, got, want);
}

struct seen {
	size_t n;
	struct throttle_active a[64];
	char up[64][32], project[64][32], reason[64][RATELIMIT_REASON_MAX];
	bool org[64];
};

static void collect(void *arg, const struct throttle_active *a)
{
	struct seen *s = arg;

	assert_true(s->n < 64);
	s->a[s->n] = *a;
	snprintf(s->up[s->n], sizeof(s->up[0]), "%s", a->upstream);
	snprintf(s->project[s->n], sizeof(s->project[0]), "%s", a->project != NULL ? a->project : "");
	snprintf(s->reason[s->n], sizeof(s->reason[0]), "%s", a->reason);
	s->org[s->n] = a->project == NULL;
	s->n++;
}

static size_t count_active(const struct throttle *t, double now)
{
	struct seen s = { .n = 0 };

	throttle_each(t, now, collect, &s);
	return s.n;
}

static void test_nothing_limited(void **state)
{
	struct throttle *t = throttle_new();
	char buf[64];
	double secs = -1;

	(void)state;
	assert_non_null(t);
	held_is(t, "u", "p", CATEGORY_ALL, T0, 0);
	assert_false(throttle_all_limited(t, "u", "p", B(ERROR), T0, &secs));
	assert_false(throttle_blocked(t, "u", "p", T0, &secs));
	assert_int_equal(throttle_header(t, "u", "p", T0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	assert_int_equal(count_active(t, T0), 0);
	throttle_prune(t, T0);
	throttle_free(t);
	throttle_free(NULL);
}

static void test_project_limit_holds_only_its_categories(void **state)
{
	struct throttle *t = throttle_new();

	(void)state;
	apply(t, "u", "p1", "60:transaction:key", T0);
	held_is(t, "u", "p1", B(TRANSACTION), T0, 60);
	held_is(t, "u", "p1", B(ERROR), T0, 0);
	held_is(t, "u", "p1", B(ERROR) | B(DEFAULT) | B(SPAN), T0, 0);
	held_is(t, "u", "p1", B(OTHER), T0, 0);
	/* another project of the same upstream, the same project name on another upstream */
	held_is(t, "u", "p2", B(TRANSACTION), T0, 0);
	held_is(t, "v", "p1", B(TRANSACTION), T0, 0);
	/* time left shrinks, then nothing once it is over */
	held_is(t, "u", "p1", B(TRANSACTION), T0 + 30, 30);
	held_is(t, "u", "p1", B(TRANSACTION), T0 + 59.5, 0.5);
	held_is(t, "u", "p1", B(TRANSACTION), T0 + 60, 0);
	held_is(t, "u", "p1", B(TRANSACTION), T0 + 1000, 0);
	/* project scope is per project too */
	apply(t, "u", "p1", "30:error:project", T0);
	held_is(t, "u", "p1", B(ERROR), T0, 30);
	held_is(t, "u", "p2", B(ERROR), T0, 0);
	throttle_free(t);
}

static void test_held_while_any_category_is_limited(void **state)
{
	struct throttle *t = throttle_new();

	(void)state;
	apply(t, "u", "p", "30:error:key, 60:transaction:key", T0);
	/* an envelope with an event and a transaction waits for the later of the two */
	held_is(t, "u", "p", B(ERROR) | B(TRANSACTION), T0, 60);
	held_is(t, "u", "p", B(ERROR) | B(SESSION), T0, 30);
	held_is(t, "u", "p", B(TRANSACTION) | B(SESSION), T0 + 40, 20);
	held_is(t, "u", "p", B(ERROR) | B(SESSION), T0 + 40, 0);
	held_is(t, "u", "p", B(SESSION) | B(SPAN) | B(OTHER), T0, 0);
	throttle_free(t);
}

static void test_no_category_is_never_held(void **state)
{
	struct throttle *t = throttle_new();
	double secs = -1;

	(void)state;
	apply(t, "u", "p", "60::key, 60::organization, 60:error:project", T0);
	/* a client report (no category) goes even under an all-categories limit */
	held_is(t, "u", "p", 0, T0, 0);
	assert_false(throttle_all_limited(t, "u", "p", 0, T0, &secs));
	assert_true(secs == -1);
	throttle_free(t);
}

static void test_unknown_categories_hold_nothing(void **state)
{
	struct throttle *t = throttle_new();
	char buf[64];
	double secs;

	(void)state;
	apply(t, "u", "p", "3600:x:project, 10:y:organization", T0);
	held_is(t, "u", "p", CATEGORY_ALL, T0, 0);
	held_is(t, "u", "p", B(OTHER), T0, 0);
	assert_false(throttle_blocked(t, "u", "p", T0, &secs));
	assert_int_equal(throttle_header(t, "u", "p", T0, buf, sizeof(buf)), 0);
	assert_int_equal(count_active(t, T0), 0);
	throttle_free(t);
}

static void test_all_categories_limit(void **state)
{
	struct throttle *t = throttle_new();
	double secs = -1;

	(void)state;
	apply(t, "u", "p", "10::key", T0);
	for (int c = 0; c < CAT__COUNT; c++)
		held_is(t, "u", "p", CATEGORY_BIT(c), T0, 10);  /* CAT_OTHER included */
	held_is(t, "u", "p", CATEGORY_ALL, T0 + 4, 6);
	assert_true(throttle_blocked(t, "u", "p", T0 + 2.5, &secs));
	assert_float_equal(secs, 7.5, 1e-9);
	assert_true(throttle_all_limited(t, "u", "p", CATEGORY_ALL, T0, &secs));
	assert_float_equal(secs, 10, 1e-9);
	held_is(t, "u", "q", B(ERROR), T0, 0);
	assert_false(throttle_blocked(t, "u", "q", T0, &secs));
	assert_false(throttle_blocked(t, "u", "p", T0 + 10, &secs));
	held_is(t, "u", "p", B(ERROR), T0 + 10, 0);
	throttle_free(t);
}

static void test_organization_scope(void **state)
{
	struct throttle *t = throttle_new();
	double secs;

	(void)state;
	/* a 429 for project p1 with an organization limit: every project of upstream u */
	apply(t, "u", "p1", "100:error:organization", T0);
	held_is(t, "u", "p1", B(ERROR), T0, 100);
	held_is(t, "u", "p2", B(ERROR), T0, 100);
	held_is(t, "u", "never-seen", B(ERROR), T0, 100);
	held_is(t, "u", "p2", B(TRANSACTION), T0, 0);
	held_is(t, "v", "p1", B(ERROR), T0, 0);
	held_is(t, "v", "p2", B(ERROR), T0, 0);
	assert_false(throttle_blocked(t, "u", "p2", T0, &secs));  /* not all categories */
	/* an organization-wide all-categories limit blocks every project of u, none of v */
	apply(t, "u", "p1", "50::organization", T0);
	assert_true(throttle_blocked(t, "u", "p3", T0, &secs));
	assert_float_equal(secs, 50, 1e-9);
	assert_false(throttle_blocked(t, "v", "p3", T0, &secs));
	/* both scopes count together: the later end wins */
	apply(t, "u", "p2", "200:error:key", T0);
	held_is(t, "u", "p2", B(ERROR), T0, 200);
	held_is(t, "u", "p1", B(ERROR), T0, 100);
	throttle_free(t);
}

static void test_all_limited(void **state)
{
	struct throttle *t = throttle_new();
	double secs = -1;

	(void)state;
	apply(t, "u", "p", "30:error:key, 60:transaction:organization", T0);
	assert_true(throttle_all_limited(t, "u", "p", B(ERROR) | B(TRANSACTION), T0, &secs));
	assert_float_equal(secs, 60, 1e-9);  /* the longest time left among them */
	assert_true(throttle_all_limited(t, "u", "p", B(ERROR), T0 + 10, &secs));
	assert_float_equal(secs, 20, 1e-9);
	/* one category not covered: false, and retry_after is left alone */
	secs = -1;
	assert_false(throttle_all_limited(t, "u", "p", B(ERROR) | B(SPAN), T0, &secs));
	assert_false(throttle_all_limited(t, "u", "p", B(ERROR) | B(TRANSACTION), T0 + 30, &secs));
	assert_false(throttle_all_limited(t, "u", "p", B(ERROR) | B(TRANSACTION), T0 + 100, &secs));
	assert_false(throttle_all_limited(t, "u", "p", 0, T0, &secs));
	assert_true(secs == -1);
	assert_true(throttle_all_limited(t, "u", "p", B(TRANSACTION), T0 + 30, &secs));
	assert_float_equal(secs, 30, 1e-9);
	/* another project: only the organization's transaction limit */
	assert_false(throttle_all_limited(t, "u", "q", B(ERROR) | B(TRANSACTION), T0, &secs));
	assert_true(throttle_all_limited(t, "u", "q", B(TRANSACTION), T0, &secs));
	/* an all-categories limit covers what no named limit does */
	apply(t, "u", "p", "10::key", T0);
	assert_true(throttle_all_limited(t, "u", "p", B(ERROR) | B(SPAN) | B(OTHER), T0, &secs));
	assert_float_equal(secs, 30, 1e-9);  /* span for 10 s, error for 30 s */
	assert_false(throttle_all_limited(t, "u", "p", B(ERROR) | B(SPAN), T0 + 10, &secs));
	throttle_free(t);
}

static void test_blocked_only_by_all_categories(void **state)
{
	struct throttle *t = throttle_new();
	double secs = -1;

	(void)state;
	/* every named category limited is still not "blocked": only an all-categories limit is */
	apply_one(t, "u", "p", false, CATEGORY_ALL, RATELIMIT_KEY, 100, T0);
	held_is(t, "u", "p", B(ERROR), T0, 100);
	assert_false(throttle_blocked(t, "u", "p", T0, &secs));
	assert_true(secs == -1);
	apply(t, "u", "p", "20::project, 40::organization", T0);
	assert_true(throttle_blocked(t, "u", "p", T0, &secs));
	assert_float_equal(secs, 40, 1e-9);
	assert_true(throttle_blocked(t, "u", "p", T0 + 39.5, &secs));
	assert_float_equal(secs, 0.5, 1e-9);
	assert_false(throttle_blocked(t, "u", "p", T0 + 40, &secs));
	throttle_free(t);
}

static void test_header_format(void **state)
{
	struct throttle *t = throttle_new();
	char buf[THROTTLE_HEADER_MAX];
	size_t n;

	(void)state;
	apply(t, "u", "p", "60:span;transaction:key:quota, 10::project, "
		       "2700:default;error;security:organization:org_quota", T0);
	/* whole seconds left, rounded up; names in table order; "" for all; the organization's last */
	n = throttle_header(t, "u", "p", T0 + 0.25, buf, sizeof(buf));
	assert_string_equal(buf, "60:transaction;span:key:quota, 10::project, "
				 "2700:default;error;security:organization:org_quota");
	assert_int_equal(n, strlen(buf));
	n = throttle_header(t, "u", "p", T0, buf, sizeof(buf));
	assert_string_equal(buf, "60:transaction;span:key:quota, 10::project, "
				 "2700:default;error;security:organization:org_quota");
	n = throttle_header(t, "u", "p", T0 + 9.75, buf, sizeof(buf));
	assert_string_equal(buf, "51:transaction;span:key:quota, 1::project, "
				 "2691:default;error;security:organization:org_quota");
	/* expired ones leave the header */
	n = throttle_header(t, "u", "p", T0 + 10, buf, sizeof(buf));
	assert_string_equal(buf, "50:transaction;span:key:quota, 2690:default;error;security:organization:org_quota");
	/* another project of u sees only the organization's */
	n = throttle_header(t, "u", "q", T0 + 0.5, buf, sizeof(buf));
	assert_string_equal(buf, "2700:default;error;security:organization:org_quota");
	assert_int_equal(n, strlen(buf));
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(throttle_header(t, "v", "p", T0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	assert_int_equal(throttle_header(t, "u", "p", T0 + 5000, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	throttle_free(t);
}

/* Every buffer size: NUL-terminated within len, never written past, and whole limits only. */
static void test_header_truncation(void **state)
{
	static const char full[] = "60:transaction:key:quota, 10::project, 2700:error:organization";
	static const char *const prefixes[] = { "", "60:transaction:key:quota", "60:transaction:key:quota, 10::project",
						full };
	struct throttle *t = throttle_new();
	char buf[sizeof(full) + 16];

	(void)state;
	apply(t, "u", "p", "60:transaction:key:quota, 10::project, 2700:error:organization", T0);
	for (size_t len = 0; len <= sizeof(full) + 1; len++) {
		size_t n, k;

		memset(buf, 'x', sizeof(buf));
		n = throttle_header(t, "u", "p", T0, buf, len);
		for (size_t i = len; i < sizeof(buf); i++)
			if (buf[i] != 'x')
				fail_msg("len %zu: byte %zu written", len, i);
		if (len == 0) {
			assert_int_equal(n, 0);
			continue;
		}
		assert_true(memchr(buf, '\0', len) != NULL);
		assert_int_equal(n, strlen(buf));
		for (k = 0; k < 4; k++)
			if (strcmp(buf, prefixes[k]) == 0)
				break;
		if (k == 4)
			fail_msg("len %zu: \"%s\" is not whole limits", len, buf);
		/* as much as fits: the next whole limit would not have */
		if (k < 3 && strlen(prefixes[k + 1]) < len)
			fail_msg("len %zu: \"%s\" stops short", len, buf);
	}
	throttle_free(t);
}

static void test_extending_never_shortens(void **state)
{
	struct throttle *t = throttle_new();
	struct seen s = { .n = 0 };

	(void)state;
	apply(t, "u", "p", "60:error:key:first", T0);
	apply(t, "u", "p", "10:error:key:second", T0 + 10);  /* would end at T0 + 20 */
	held_is(t, "u", "p", B(ERROR), T0 + 10, 50);
	held_is(t, "u", "p", B(ERROR), T0 + 30, 30);
	apply(t, "u", "p", "100:error:key:third", T0 + 10);  /* ends later: extended */
	held_is(t, "u", "p", B(ERROR), T0 + 10, 100);
	throttle_each(t, T0 + 10, collect, &s);
	assert_int_equal(s.n, 1);  /* the same limit, not a second one */
	assert_string_equal(s.reason[0], "third");
	/* the same categories at another scope, or an overlapping set, are limits of their own */
	apply(t, "u", "p", "5:error:project, 5:error;default:key", T0 + 10);
	assert_int_equal(count_active(t, T0 + 10), 3);
	held_is(t, "u", "p", B(ERROR), T0 + 10, 100);
	held_is(t, "u", "p", B(DEFAULT), T0 + 10, 5);
	throttle_free(t);
}

static void test_more_than_per_scope_limits(void **state)
{
	struct throttle *t = throttle_new();

	(void)state;
	assert_true(THROTTLE_PER_SCOPE + 3 <= CAT__COUNT);
	/* 16 distinct limits, category i for 100 + 10 i seconds */
	for (int i = 0; i < THROTTLE_PER_SCOPE; i++)
		apply_one(t, "u", "p", false, CATEGORY_BIT(i), RATELIMIT_KEY, 100 + 10 * i, T0);
	assert_int_equal(count_active(t, T0), THROTTLE_PER_SCOPE);
	/* a 17th, longer: the soonest to end (category 0) makes room */
	apply_one(t, "u", "p", false, CATEGORY_BIT(THROTTLE_PER_SCOPE), RATELIMIT_KEY, 500, T0);
	assert_int_equal(count_active(t, T0), THROTTLE_PER_SCOPE);
	held_is(t, "u", "p", CATEGORY_BIT(THROTTLE_PER_SCOPE), T0, 500);
	held_is(t, "u", "p", CATEGORY_BIT(0), T0, 0);
	for (int i = 1; i < THROTTLE_PER_SCOPE; i++)
		held_is(t, "u", "p", CATEGORY_BIT(i), T0, 100 + 10 * i);
	/* an 18th that ends before all of them: dropped, it would go first anyway */
	apply_one(t, "u", "p", false, CATEGORY_BIT(THROTTLE_PER_SCOPE + 1), RATELIMIT_KEY, 50, T0);
	held_is(t, "u", "p", CATEGORY_BIT(THROTTLE_PER_SCOPE + 1), T0, 0);
	held_is(t, "u", "p", CATEGORY_BIT(1), T0, 110);
	/* later, with category 1 expired: its place is taken */
	apply_one(t, "u", "p", false, CATEGORY_BIT(THROTTLE_PER_SCOPE + 2), RATELIMIT_KEY, 5, T0 + 115);
	held_is(t, "u", "p", CATEGORY_BIT(THROTTLE_PER_SCOPE + 2), T0 + 115, 5);
	held_is(t, "u", "p", CATEGORY_BIT(2), T0 + 115, 5);
	/* the organization's limits and other projects have places of their own */
	apply_one(t, "u", "p", false, CATEGORY_BIT(0), RATELIMIT_ORGANIZATION, 30, T0);
	apply_one(t, "u", "q", false, CATEGORY_BIT(0), RATELIMIT_KEY, 40, T0);
	held_is(t, "u", "p", CATEGORY_BIT(0), T0, 30);
	held_is(t, "u", "q", CATEGORY_BIT(0), T0, 40);
	held_is(t, "u", "p", CATEGORY_BIT(THROTTLE_PER_SCOPE), T0, 500);
	throttle_free(t);
}

static void test_each_reports_limits_in_force(void **state)
{
	struct throttle *t = throttle_new();
	struct seen s = { .n = 0 };
	int org = -1, key = -1;

	(void)state;
	apply(t, "u", "p", "10:error:key:short, 100::organization:org", T0);
	throttle_each(t, T0 + 4, collect, &s);
	assert_int_equal(s.n, 2);
	for (int i = 0; i < 2; i++)
		*(s.org[i] ? &org : &key) = i;
	assert_true(org >= 0 && key >= 0);
	assert_string_equal(s.up[key], "u");
	assert_string_equal(s.project[key], "p");
	assert_float_equal(s.a[key].seconds_left, 6, 1e-9);
	assert_false(s.a[key].all);
	assert_int_equal(s.a[key].categories, B(ERROR));
	assert_int_equal(s.a[key].scope, RATELIMIT_KEY);
	assert_string_equal(s.reason[key], "short");
	assert_string_equal(s.up[org], "u");
	assert_float_equal(s.a[org].seconds_left, 96, 1e-9);
	assert_true(s.a[org].all);
	assert_int_equal(s.a[org].scope, RATELIMIT_ORGANIZATION);
	assert_string_equal(s.reason[org], "org");
	/* expired ones are skipped */
	s.n = 0;
	throttle_each(t, T0 + 10, collect, &s);
	assert_int_equal(s.n, 1);
	assert_true(s.org[0]);
	throttle_free(t);
}

static void test_prune_drops_expired(void **state)
{
	struct throttle *t = throttle_new();
	struct seen s = { .n = 0 };

	(void)state;
	apply(t, "u", "p", "10:error:key, 100:transaction:key, 20::organization", T0);
	apply(t, "v", "p", "5:error:key", T0);
	assert_int_equal(count_active(t, T0), 4);
	throttle_prune(t, T0 + 50);
	/* asked about a time before they ended, pruned limits are gone: they were forgotten */
	throttle_each(t, T0, collect, &s);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.a[0].categories, B(TRANSACTION));
	held_is(t, "u", "p", B(ERROR), T0, 0);
	held_is(t, "u", "p", B(TRANSACTION), T0, 100);
	/* what is still in force survives, and new limits are taken after a prune */
	apply(t, "v", "p", "5:error:key", T0 + 50);
	held_is(t, "v", "p", B(ERROR), T0 + 50, 5);
	throttle_prune(t, T0 + 1000);
	assert_int_equal(count_active(t, T0), 0);
	throttle_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nothing_limited),
		cmocka_unit_test(test_project_limit_holds_only_its_categories),
		cmocka_unit_test(test_held_while_any_category_is_limited),
		cmocka_unit_test(test_no_category_is_never_held),
		cmocka_unit_test(test_unknown_categories_hold_nothing),
		cmocka_unit_test(test_all_categories_limit),
		cmocka_unit_test(test_organization_scope),
		cmocka_unit_test(test_all_limited),
		cmocka_unit_test(test_blocked_only_by_all_categories),
		cmocka_unit_test(test_header_format),
		cmocka_unit_test(test_header_truncation),
		cmocka_unit_test(test_extending_never_shortens),
		cmocka_unit_test(test_more_than_per_scope_limits),
		cmocka_unit_test(test_each_reports_limits_in_force),
		cmocka_unit_test(test_prune_drops_expired),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
