/* test_auth.c - credential parsing for every carrier, carrier conflicts, and byte-exact rewrites. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"

/* Each carrier alone, through the one public entry point. */
static int parse_header(const char *value, struct auth_info *ai, const char **why)
{
	int status;

	return auth_from_request(value, NULL, NULL, false, ai, &status, why);
}

static int parse_query(const char *query, struct auth_info *ai, const char **why)
{
	int status;

	return auth_from_request(NULL, NULL, query, false, ai, &status, why);
}

static int parse_basic(const char *value, struct auth_info *ai, const char **why)
{
	int status;

	return auth_from_request(NULL, value, NULL, false, ai, &status, why);
}

#define PY_HEADER "Sentry sentry_key=wow, sentry_version=7, sentry_client=sentry.python/1.9.10, sentry_secret=vod_be"
#define REAL_KEY "a6f4c1d2e3b4a5968778695a4b3c2d1e"
#define REAL_SECRET "563b1d2e3f4a5b6c7d8e9f0a1b2c3d4e"

/* Parse a header expecting failure; returns the reason and checks nothing secret leaked. */
static const char *header_fails(const char *value)
{
	struct auth_info ai;
	const char *why = NULL;

	assert_int_equal(parse_header(value, &ai, &why), -1);
	assert_non_null(why);
	return why;
}

static int request_status(const char *xsa, const char *authz, const char *query, const char **why)
{
	struct auth_info ai;
	int status = 0;

	assert_int_equal(auth_from_request(xsa, authz, query, false, &ai, &status, why), -1);
	assert_non_null(*why);
	return status;
}

static void test_header_python(void **state)
{
	struct auth_info ai;
	const char *why = NULL;

	assert_int_equal(parse_header(PY_HEADER, &ai, &why), 0);
	assert_string_equal(ai.key, "wow");
	assert_string_equal(ai.secret, "vod_be");
	assert_true(ai.has_secret);
	assert_int_equal(ai.version, 7);
}

static void test_header_raven(void **state)
{
	struct auth_info ai;
	const char *why = NULL;

	assert_int_equal(parse_header(
		"Sentry sentry_timestamp=1328055286.51, sentry_client=raven-python/6.10.0, "
		"sentry_version=5, sentry_key=wow, sentry_secret=vod_be", &ai, &why), 0);
	assert_string_equal(ai.key, "wow");
	assert_string_equal(ai.secret, "vod_be");
	assert_int_equal(ai.version, 5);
}

static void test_header_lenient(void **state)
{
	struct auth_info ai;
	const char *why = NULL;

	assert_int_equal(parse_header("Sentry   sentry_key = abc ,sentry_version=7", &ai, &why), 0);
	assert_string_equal(ai.key, "abc");
	assert_false(ai.has_secret);
	assert_string_equal(ai.secret, "");
	assert_int_equal(ai.version, 7);

	assert_int_equal(parse_header("sentry sentry_key=abc", &ai, &why), 0);
	assert_string_equal(ai.key, "abc");
	assert_int_equal(ai.version, 7);   /* default when absent */

	assert_int_equal(parse_header("SENTRY sentry_key=\"q\", sentry_version=7.0", &ai, &why), 0);
	assert_string_equal(ai.key, "q");
	assert_int_equal(ai.version, 7);

	/* empty secret is not a secret */
	assert_int_equal(parse_header("Sentry sentry_key=abc, sentry_secret=", &ai, &why), 0);
	assert_false(ai.has_secret);
}

static void test_header_errors(void **state)
{
	assert_string_equal(header_fails("Sentry sentry_version=7, sentry_client=x"), "missing sentry_key");
	assert_string_equal(header_fails("Sentry sentry_key=, sentry_version=7"), "bad sentry DSN public key");
	assert_string_equal(header_fails("Sentry sentry_key=a b"), "bad sentry DSN public key");
	assert_string_equal(header_fails("Sentry sentry_key=a, sentry_key=b"), "duplicated auth field");
	assert_string_equal(header_fails("Sentry sentry_key=a, sentry_version=8"), "unsupported sentry_version");
	assert_string_equal(header_fails("Sentry sentry_key=a, sentry_version=abc"), "invalid sentry_version");
	assert_string_equal(header_fails("Sentry sentry_key=a, sentry_version="), "invalid sentry_version");
	/* Not "Sentry ...": Sentry ignores the header, so nothing authenticates the request. */
	assert_string_equal(header_fails("Bearer sentry_key=a"), "missing authorization information");
	/* 401 causes win over 400 causes, as in Relay */
	assert_string_equal(header_fails("Sentry sentry_key=, sentry_version=x"), "invalid sentry_version");

	char big[AUTH_FIELD_MAX + 32] = "Sentry sentry_key=";
	size_t n = strlen(big);
	memset(big + n, 'k', AUTH_FIELD_MAX);
	big[n + AUTH_FIELD_MAX] = '\0';
	assert_string_equal(header_fails(big), "bad sentry DSN public key");
	big[n + AUTH_FIELD_MAX - 1] = '\0';   /* exactly AUTH_FIELD_MAX-1 fits */
	struct auth_info ai;
	const char *why;
	assert_int_equal(parse_header(big, &ai, &why), 0);
	assert_int_equal(strlen(ai.key), AUTH_FIELD_MAX - 1);
}

static void test_query_js(void **state)
{
	struct auth_info ai;
	const char *why = NULL;

	assert_int_equal(parse_query("sentry_version=7&sentry_key=wow&sentry_client=sentry.javascript.browser%2F7.50.0",
					  &ai, &why), 0);
	assert_string_equal(ai.key, "wow");
	assert_false(ai.has_secret);
	assert_int_equal(ai.version, 7);

	assert_int_equal(parse_query("sentry_key=wow&sentry_secret=vod_be", &ai, &why), 0);
	assert_string_equal(ai.secret, "vod_be");
	assert_true(ai.has_secret);

	assert_int_equal(parse_query("?sentry_key=w%6Fw&sentry%5Fsecret=a+b%2Fc", &ai, &why), 0);
	assert_string_equal(ai.key, "wow");
	assert_string_equal(ai.secret, "a b/c");

	assert_int_equal(parse_query("sentry_version=7&sentry_client=x", &ai, &why), -1);
	assert_string_equal(why, "missing sentry_key");
	assert_int_equal(parse_query("sentry_key=a&sentry_key=a", &ai, &why), -1);
	assert_string_equal(why, "duplicated auth field");
	assert_int_equal(parse_query("sentry_key=a%00b", &ai, &why), -1);
	assert_string_equal(why, "bad sentry DSN public key");
	assert_int_equal(parse_query("sentry_key=a&sentry_version=9", &ai, &why), -1);
	assert_string_equal(why, "unsupported sentry_version");
}

static void test_basic(void **state)
{
	struct auth_info ai;
	const char *why = NULL;

	/* "wow:vod_be" */
	assert_int_equal(parse_basic("Basic d293OnZvZF9iZQ==", &ai, &why), 0);
	assert_string_equal(ai.key, "wow");
	assert_string_equal(ai.secret, "vod_be");
	assert_true(ai.has_secret);
	/* "wow:" */
	assert_int_equal(parse_basic("basic d293Og==", &ai, &why), 0);
	assert_string_equal(ai.key, "wow");
	assert_false(ai.has_secret);
	/* "wow" without a colon: the whole thing is the key */
	assert_int_equal(parse_basic("Basic d293", &ai, &why), 0);
	assert_string_equal(ai.key, "wow");
	assert_int_equal(parse_basic("Basic !!!", &ai, &why), -1);
	assert_string_equal(why, "invalid basic authorization");
	/* ":x" -> empty key */
	assert_int_equal(parse_basic("Basic Ong=", &ai, &why), -1);
	assert_string_equal(why, "bad sentry DSN public key");
}

static void test_from_request_single(void **state)
{
	struct auth_info ai;
	int status = 0;
	const char *why = NULL;

	assert_int_equal(auth_from_request(PY_HEADER, NULL, NULL, false, &ai, &status, &why), 0);
	assert_int_equal(ai.carrier, AUTH_X_SENTRY_AUTH);
	assert_string_equal(ai.key, "wow");

	assert_int_equal(auth_from_request(NULL, PY_HEADER, "foo=1", false, &ai, &status, &why), 0);
	assert_int_equal(ai.carrier, AUTH_AUTHORIZATION);

	assert_int_equal(auth_from_request(NULL, "Basic d293OnZvZF9iZQ==", NULL, false, &ai, &status, &why), 0);
	assert_int_equal(ai.carrier, AUTH_BASIC);
	assert_string_equal(ai.secret, "vod_be");

	assert_int_equal(auth_from_request(NULL, NULL, "sentry_key=wow&x=1", false, &ai, &status, &why), 0);
	assert_int_equal(ai.carrier, AUTH_QUERY);

	/* a non-Sentry X-Sentry-Auth / Authorization is not a carrier */
	assert_int_equal(auth_from_request("Bearer zzz", "Bearer tok", "sentry_key=wow", false,
					   &ai, &status, &why), 0);
	assert_int_equal(ai.carrier, AUTH_QUERY);
}

static void test_from_request_conflicts(void **state)
{
	const char *why = NULL;
	struct auth_info ai;
	int status = 0;

	/* even a query without sentry_key counts as a second carrier */
	assert_int_equal(request_status(PY_HEADER, NULL, "sentry_version=7&sentry_client=x", &why), 401);
	assert_string_equal(why, "multiple authorization payloads detected");
	assert_int_equal(request_status(PY_HEADER, "Sentry sentry_key=wow", NULL, &why), 401);
	assert_string_equal(why, "multiple authorization payloads detected");
	assert_int_equal(request_status(NULL, "Basic d293", "sentry_key=wow", &why), 401);

	assert_int_equal(request_status(NULL, NULL, NULL, &why), 401);
	assert_string_equal(why, "missing authorization information");
	assert_int_equal(request_status("Token x", NULL, "a=b", &why), 401);
	assert_string_equal(why, "missing authorization information");

	/* the query alone without a key */
	assert_int_equal(request_status(NULL, NULL, "sentry_version=7&sentry_client=x", &why), 401);
	assert_string_equal(why, "missing sentry_key");
	/* status follows the cause */
	assert_int_equal(request_status("Sentry sentry_key=w, sentry_version=8", NULL, NULL, &why), 400);
	assert_int_equal(request_status("Sentry sentry_key=w, sentry_version=x", NULL, NULL, &why), 401);

	assert_int_equal(auth_from_request(NULL, NULL, NULL, true, &ai, &status, &why), 0);
	assert_int_equal(ai.carrier, AUTH_NONE);
	assert_string_equal(ai.key, "");
}

static void test_why_has_no_secret(void **state)
{
	const char *why = NULL;

	/* every failure message is static text; spot-check it never echoes what was sent */
	assert_int_equal(request_status("Sentry sentry_key=w w, sentry_secret=TOPSECRET", NULL, NULL, &why), 400);
	assert_null(strstr(why, "TOPSECRET"));
	assert_null(strstr(why, "w w"));
}

static void check_rewrite(char *got, const char *want)
{
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void test_rewrite_header(void **state)
{
	check_rewrite(auth_rewrite_header(PY_HEADER, REAL_KEY, REAL_SECRET),
		      "Sentry sentry_key=" REAL_KEY ", sentry_version=7, sentry_client=sentry.python/1.9.10, "
		      "sentry_secret=" REAL_SECRET);
	/* drop the secret at the end, in the middle, first */
	check_rewrite(auth_rewrite_header(PY_HEADER, REAL_KEY, NULL),
		      "Sentry sentry_key=" REAL_KEY ", sentry_version=7, sentry_client=sentry.python/1.9.10");
	check_rewrite(auth_rewrite_header("Sentry sentry_key=wow, sentry_secret=s, sentry_version=7", "K", NULL),
		      "Sentry sentry_key=K, sentry_version=7");
	check_rewrite(auth_rewrite_header("Sentry sentry_secret=s,sentry_key=wow", "K", NULL),
		      "Sentry sentry_key=K");
	/* no secret sent: none is added */
	check_rewrite(auth_rewrite_header("Sentry sentry_key=wow, sentry_version=7", "K", REAL_SECRET),
		      "Sentry sentry_key=K, sentry_version=7");
	/* odd spacing and quotes survive */
	check_rewrite(auth_rewrite_header("Sentry   sentry_key = abc ,sentry_version=7", "K", NULL),
		      "Sentry   sentry_key = K ,sentry_version=7");
	check_rewrite(auth_rewrite_header("Sentry sentry_key=\"abc\", sentry_timestamp=1.5", "K", NULL),
		      "Sentry sentry_key=\"K\", sentry_timestamp=1.5");

	/* the rewrite parses back to the new credentials */
	struct auth_info ai;
	const char *why;
	char *h = auth_rewrite_header(PY_HEADER, REAL_KEY, REAL_SECRET);
	assert_int_equal(parse_header(h, &ai, &why), 0);
	assert_string_equal(ai.key, REAL_KEY);
	assert_string_equal(ai.secret, REAL_SECRET);
	free(h);
}

static void test_rewrite_query(void **state)
{
	check_rewrite(auth_rewrite_query("sentry_version=7&sentry_key=wow&sentry_client=sentry.javascript.browser%2F7.50.0",
					 REAL_KEY, NULL),
		      "sentry_version=7&sentry_key=" REAL_KEY "&sentry_client=sentry.javascript.browser%2F7.50.0");
	check_rewrite(auth_rewrite_query("sentry_key=wow&sentry_secret=vod_be&a=%20+x", "K", "S"),
		      "sentry_key=K&sentry_secret=S&a=%20+x");
	check_rewrite(auth_rewrite_query("sentry_key=wow&sentry_secret=vod_be&a=%20+x", "K", NULL),
		      "sentry_key=K&a=%20+x");
	check_rewrite(auth_rewrite_query("sentry_secret=vod_be&sentry_key=wow", "K", NULL),
		      "sentry_key=K");
	check_rewrite(auth_rewrite_query("?a=1&&sentry_key=wow", "K", NULL), "?a=1&&sentry_key=K");
	check_rewrite(auth_rewrite_query("sentry_key=wow", "K", "S"), "sentry_key=K");
	/* new values are percent-encoded; an encoded name is still recognised, and written plain
	 * (Sentry reads a query only when "sentry_" is in it as such) */
	check_rewrite(auth_rewrite_query("sentry%5Fkey=wow&sentry_secret=x", "a b/c&d", "s=1"),
		      "sentry_key=a%20b%2Fc%26d&sentry_secret=s%3D1");
	check_rewrite(auth_rewrite_query("sentry%5Fkey=wow&sentry_secret=x", "K", NULL), "sentry_key=K");

	struct auth_info ai;
	const char *why;
	char *q = auth_rewrite_query("sentry_key=wow&sentry_secret=x", "k+y", "s&t");
	assert_int_equal(parse_query(q, &ai, &why), 0);
	assert_string_equal(ai.key, "k+y");
	assert_string_equal(ai.secret, "s&t");
	free(q);
}

static void test_rewrite_basic(void **state)
{
	struct auth_info ai;
	const char *why;

	check_rewrite(auth_rewrite_basic("wow", "vod_be"), "Basic d293OnZvZF9iZQ==");
	check_rewrite(auth_rewrite_basic("wow", NULL), "Basic d293Og==");
	char *b = auth_rewrite_basic(REAL_KEY, REAL_SECRET);
	assert_int_equal(parse_basic(b, &ai, &why), 0);
	assert_string_equal(ai.key, REAL_KEY);
	assert_string_equal(ai.secret, REAL_SECRET);
	free(b);
}

static void test_url_decode(void **state)
{
	struct auth_info ai;
	const char *why;

	/* '+' is a space, %XX a byte, a broken escape stays as it is. */
	assert_int_equal(parse_query("sentry_key=k&sentry_secret=a%2Fb+c%zz%4", &ai, &why), 0);
	assert_string_equal(ai.secret, "a/b c%zz%4");
	assert_int_equal(parse_query("sentry_key=abc&sentry_secret=x%2", &ai, &why), 0);
	assert_string_equal(ai.secret, "x%2");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_python),
		cmocka_unit_test(test_header_raven),
		cmocka_unit_test(test_header_lenient),
		cmocka_unit_test(test_header_errors),
		cmocka_unit_test(test_query_js),
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_from_request_single),
		cmocka_unit_test(test_from_request_conflicts),
		cmocka_unit_test(test_why_has_no_secret),
		cmocka_unit_test(test_rewrite_header),
		cmocka_unit_test(test_rewrite_query),
		cmocka_unit_test(test_rewrite_basic),
		cmocka_unit_test(test_url_decode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
