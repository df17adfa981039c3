/* test_endpoint.c - Sentry's ingest endpoint table and the path matcher: every built-in endpoint,
 * DSN path prefixes, project ids at their bounds, '/' runs, and segments too long to keep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "endpoint.h"

#define B(x) CATEGORY_BIT(CAT_##x)
#define ATTACH (B(ATTACHMENT) | B(ATTACHMENT_ITEM))

static enum endpoint_result match(const char *path, struct endpoint_match *m)
{
	return endpoint_match(endpoint_builtin(), path, m);
}

/* path matches endpoint `name`, with this stored form and path key. */
static void matches(const char *path, const char *name, const char *stored, const char *key, long long pid)
{
	struct endpoint_match m;
	enum endpoint_result r = match(path, &m);

	if (r != EP_MATCHED)
		fail_msg("%s: result %d, want %s", path, (int)r, name);
	assert_non_null(m.ep);
	if (strcmp(m.ep->name, name) != 0)
		fail_msg("%s: matched %s, want %s", path, m.ep->name, name);
	assert_string_equal(m.stored, stored);
	assert_string_equal(m.path_key, key);
	assert_int_equal(m.project_id, pid);
}

static void no_match(const char *path, enum endpoint_result want)
{
	struct endpoint_match m;
	enum endpoint_result r;

	memset(&m, 0x5a, sizeof(m));
	r = match(path, &m);
	if (r != want)
		fail_msg("%s: result %d, want %d", path, (int)r, (int)want);
	assert_null(m.ep);
	assert_string_equal(m.path_key, "");
	assert_string_equal(m.stored, "");
}

static const struct endpoint *by_path(const char *path)
{
	struct endpoint_match m;

	assert_int_equal(match(path, &m), EP_MATCHED);
	return m.ep;
}

static void test_builtin_paths(void **state)
{
	(void)state;
	matches("/api/1/store/", "store", "store/", "", 1);
	matches("/api/42/envelope/", "envelope", "envelope/", "", 42);
	matches("/api/1/minidump/", "minidump", "minidump/", "", 1);
	matches("/api/1/minidump", "minidump", "minidump", "", 1);
	matches("/api/1/unreal/0123456789abcdef0123456789abcdef/", "unreal", "unreal/{key}/",
		"0123456789abcdef0123456789abcdef", 1);
	matches("/api/3/security/", "security", "security/", "", 3);
	matches("/api/3/csp-report/", "csp_report", "csp-report/", "", 3);
	matches("/api/3/nel/", "nel", "nel/", "", 3);
	matches("/api/5/events/cbf6763643cb4ea784fc55d4dd94af80/attachments/", "attachments",
		"events/cbf6763643cb4ea784fc55d4dd94af80/attachments/", "", 5);
	matches("/api/7/cron/my-monitor/pubkey/", "cron", "cron/my-monitor/{key}/", "pubkey", 7);
	matches("/api/7/cron/my-monitor/pubkey", "cron", "cron/my-monitor/{key}", "pubkey", 7);
	matches("/api/7/cron/my-monitor/", "cron", "cron/my-monitor/", "", 7);
	matches("/api/7/cron/my-monitor", "cron", "cron/my-monitor", "", 7);
}

static void test_near_misses(void **state)
{
	static const char *const paths[] = {
		"/api/1/store", "/api/1/envelope", "/api/1/unknown/", "/api/1/STORE/", "/api/1/store/x",
		"/api/1/store/extra/", "/api/1/stor/", "/api/1/", "/api/1", "/api/", "/api", "/status", "/", "",
		"/api/x/store/", "/api/-1/store/", "/api/+1/store/", "/api/1x/store/", "/api/ 1/store/",
		"/myapi/1/store/", "/api1/store/", "api/1/store/", "/api/1/unreal/", "/api/1/unreal/key",
		"/api/1/unreal/key/x/", "/api/1/events/attachments/", "/api/1/events/id/attachments",
		"/api/1/events/id/", "/api/1/cron/", "/api/1/cron", "/api/1/cron/slug/key/extra/",
		"/api/1/cron/slug/key//", "/api/1/security", "/api/1/nel", "/api/1/csp-report",
		"/api/1/minidump//", "/api/1/minidump/x",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		no_match(paths[i], EP_NOT_FOUND);
}

static void test_dsn_path_prefix(void **state)
{
	(void)state;
	matches("/sentry/api/1/store/", "store", "store/", "", 1);
	matches("/a/b/c/api/4507/envelope/", "envelope", "envelope/", "", 4507);
	/* the last "/api/<digits>/" counts */
	matches("/api/7/b/api/9/envelope/", "envelope", "envelope/", "", 9);
	matches("/api/1/api/2/store/", "store", "store/", "", 2);
	matches("/api/x/api/3/store/", "store", "store/", "", 3);
	matches("/api/api/3/store/", "store", "store/", "", 3);
	/* a later "/api/" without digits is part of the endpoint, which then does not exist */
	no_match("/api/3/api/x/store/", EP_NOT_FOUND);
}

static void test_project_ids(void **state)
{
	(void)state;
	matches("/api/1/store/", "store", "store/", "", 1);
	matches("/api/9223372036854775807/store/", "store", "store/", "", 9223372036854775807LL);
	matches("/api/9223372036854775806/envelope/", "envelope", "envelope/", "", 9223372036854775806LL);
	no_match("/api/0/store/", EP_BAD_PROJECT_ID);
	no_match("/api/000/store/", EP_BAD_PROJECT_ID);
	no_match("/api/9223372036854775808/store/", EP_BAD_PROJECT_ID);
	no_match("/api/9223372036854775810/store/", EP_BAD_PROJECT_ID);
	no_match("/api/18446744073709551615/store/", EP_BAD_PROJECT_ID);   /* 2^64 - 1 */
	no_match("/api/18446744073709551616/store/", EP_BAD_PROJECT_ID);   /* wraps to 0 in 64 bits */
	no_match("/api/99999999999999999999/store/", EP_BAD_PROJECT_ID);
	no_match("/api/99999999999999999999999999999999999999/store/", EP_BAD_PROJECT_ID);
	no_match("/prefix/api/0/store/", EP_BAD_PROJECT_ID);
}

static void test_normalise(void **state)
{
	char out[ENDPOINT_PATH_MAX];

	(void)state;
	endpoint_normalise("//api//1//store//", out, sizeof(out));
	assert_string_equal(out, "/api/1/store/");
	endpoint_normalise("/api/1/store/", out, sizeof(out));
	assert_string_equal(out, "/api/1/store/");
	endpoint_normalise("/////", out, sizeof(out));
	assert_string_equal(out, "/");
	endpoint_normalise("a//b///c", out, sizeof(out));
	assert_string_equal(out, "a/b/c");
	endpoint_normalise("", out, sizeof(out));
	assert_string_equal(out, "");
	endpoint_normalise("/sentry//api/1/cron///slug//key", out, sizeof(out));
	assert_string_equal(out, "/sentry/api/1/cron/slug/key");
	/* a normalised path then matches */
	endpoint_normalise("//api//1//store//", out, sizeof(out));
	matches(out, "store", "store/", "", 1);
}

static void test_normalise_truncates(void **state)
{
	char out[16];

	(void)state;
	memset(out, 'x', sizeof(out));
	endpoint_normalise("/api/1/store/", out, 5);
	assert_string_equal(out, "/api");
	assert_int_equal(out[5], 'x');
	/* collapsed slashes do not count against len */
	memset(out, 'x', sizeof(out));
	endpoint_normalise("////a////b", out, 4);
	assert_string_equal(out, "/a/");
	assert_int_equal(out[4], 'x');
	endpoint_normalise("/api/1/store/", out, 1);
	assert_string_equal(out, "");
	out[0] = 'x';
	endpoint_normalise("/api/1/store/", out, 0);  /* nothing written */
	assert_int_equal(out[0], 'x');
	/* exactly fitting */
	endpoint_normalise("//api//1//store//", out, 14);
	assert_string_equal(out, "/api/1/store/");
	endpoint_normalise("//api//1//store//", out, 13);
	assert_string_equal(out, "/api/1/store");
}

static void test_long_segments(void **state)
{
	char path[2 * ENDPOINT_PATH_MAX], seg[ENDPOINT_PATH_MAX + 576];
	struct endpoint_match m;

	(void)state;
	/* the longest key that fits path_key, and one more */
	memset(seg, 'k', ENDPOINT_KEY_MAX - 1);
	seg[ENDPOINT_KEY_MAX - 1] = '\0';
	snprintf(path, sizeof(path), "/api/1/unreal/%s/", seg);
	assert_int_equal(match(path, &m), EP_MATCHED);
	assert_int_equal(strlen(m.path_key), ENDPOINT_KEY_MAX - 1);
	assert_string_equal(m.stored, "unreal/{key}/");
	memset(seg, 'k', ENDPOINT_KEY_MAX);
	seg[ENDPOINT_KEY_MAX] = '\0';
	snprintf(path, sizeof(path), "/api/1/unreal/%s/", seg);
	no_match(path, EP_NOT_FOUND);
	snprintf(path, sizeof(path), "/api/1/cron/slug/%s/", seg);
	no_match(path, EP_NOT_FOUND);
	/* far longer than any buffer */
	memset(seg, 'k', sizeof(seg) - 1);
	seg[sizeof(seg) - 1] = '\0';
	snprintf(path, sizeof(path), "/api/1/unreal/%s/", seg);
	no_match(path, EP_NOT_FOUND);
	/* a "*" segment is kept in stored: the longest that fits ENDPOINT_STORED_MAX, and one more */
	memset(seg, 'e', 491);
	seg[491] = '\0';
	snprintf(path, sizeof(path), "/api/1/events/%s/attachments/", seg);
	assert_int_equal(match(path, &m), EP_MATCHED);
	assert_int_equal(strlen(m.stored), ENDPOINT_STORED_MAX - 1);
	seg[491] = 'e';
	seg[492] = '\0';
	snprintf(path, sizeof(path), "/api/1/events/%s/attachments/", seg);
	no_match(path, EP_NOT_FOUND);
	memset(seg, 's', 600);
	seg[600] = '\0';
	snprintf(path, sizeof(path), "/api/1/cron/%s/", seg);
	no_match(path, EP_NOT_FOUND);
	snprintf(path, sizeof(path), "/api/1/cron/%s/key/", seg);
	no_match(path, EP_NOT_FOUND);
}

static void test_endpoint_fields(void **state)
{
	const struct endpoint *ep;

	(void)state;
	ep = by_path("/api/1/store/");
	assert_int_equal(ep->methods, EP_POST | EP_GET);
	assert_int_equal(ep->status, 200);
	assert_int_equal(ep->reply, EP_REPLY_ID);
	assert_int_equal(ep->body, EP_BODY_OPTIONAL);
	assert_int_equal(ep->limit, EP_LIMIT_EVENT);
	assert_int_equal(ep->kind, EP_KIND_STORE);
	ep = by_path("/api/1/envelope/");
	assert_int_equal(ep->methods, EP_POST);
	assert_int_equal(ep->status, 200);
	assert_int_equal(ep->reply, EP_REPLY_ID);
	assert_int_equal(ep->body, EP_BODY_REQUIRED);
	assert_int_equal(ep->limit, EP_LIMIT_ENVELOPE);
	assert_int_equal(ep->kind, EP_KIND_ENVELOPE);
	ep = by_path("/api/1/minidump/");
	assert_int_equal(ep->reply, EP_REPLY_UUID);
	assert_int_equal(ep->limit, EP_LIMIT_ATTACHMENT);
	assert_int_equal(ep->kind, EP_KIND_OPAQUE);
	assert_int_equal(ep->categories, ATTACH | B(ERROR));
	ep = by_path("/api/1/unreal/k/");
	assert_int_equal(ep->reply, EP_REPLY_UUID);
	assert_int_equal(ep->limit, EP_LIMIT_ATTACHMENTS);
	assert_int_equal(ep->categories, ATTACH | B(ERROR));
	ep = by_path("/api/1/security/");
	assert_int_equal(ep->reply, EP_REPLY_EMPTY);
	assert_int_equal(ep->mime, EP_MIME_SECURITY);
	assert_int_equal(ep->categories, B(SECURITY));
	assert_int_equal(by_path("/api/1/csp-report/")->mime, EP_MIME_SECURITY);
	ep = by_path("/api/1/nel/");
	assert_int_equal(ep->mime, EP_MIME_NEL);
	assert_int_equal(ep->categories, B(SECURITY));
	ep = by_path("/api/1/events/e/attachments/");
	assert_int_equal(ep->status, 201);
	assert_int_equal(ep->limit, EP_LIMIT_ATTACHMENTS);
	assert_int_equal(ep->categories, ATTACH);
	ep = by_path("/api/1/cron/s/k/");
	assert_int_equal(ep->methods, EP_POST | EP_GET);
	assert_int_equal(ep->status, 202);
	assert_int_equal(ep->body, EP_BODY_OPTIONAL);
	assert_int_equal(ep->categories, B(MONITOR));
	assert_int_equal(by_path("/api/1/cron/s/")->status, 202);
	/* every opaque endpoint names its categories (nothing else would say what it carries) */
	for (size_t i = 0; i < endpoint_builtin()->n; i++) {
		const struct endpoint *e = &endpoint_builtin()->v[i];

		assert_non_null(e->name);
		assert_non_null(e->pattern);
		assert_true(e->methods != 0);
		if (e->kind == EP_KIND_OPAQUE && e->categories == 0)
			fail_msg("%s carries no category", e->name);
	}
}

static void test_tunnel(void **state)
{
	const struct endpoint *t = endpoint_tunnel();

	(void)state;
	assert_non_null(t);
	assert_string_equal(t->name, "tunnel");
	assert_string_equal(t->pattern, "envelope/");
	assert_int_equal(t->methods, EP_POST);
	assert_int_equal(t->status, 200);
	assert_int_equal(t->reply, EP_REPLY_ID);
	assert_int_equal(t->body, EP_BODY_REQUIRED);
	assert_int_equal(t->mime, EP_MIME_ANY);
	assert_int_equal(t->limit, EP_LIMIT_ENVELOPE);
	assert_int_equal(t->kind, EP_KIND_ENVELOPE);
	assert_int_equal(t->categories, 0);
	/* not one of the table's: a path never matches it */
	for (size_t i = 0; i < endpoint_builtin()->n; i++)
		assert_ptr_not_equal(&endpoint_builtin()->v[i], t);
	assert_string_equal(by_path("/api/1/envelope/")->name, "envelope");
}

static void test_other_tables(void **state)
{
	static const struct endpoint eps[] = {
		{ "first", "x/*/", EP_POST, 200, EP_REPLY_EMPTY, EP_BODY_OPTIONAL, EP_MIME_ANY, EP_LIMIT_EVENT,
		  EP_KIND_OPAQUE, 0, false, 0 },
		{ "second", "x/y/", EP_POST, 200, EP_REPLY_EMPTY, EP_BODY_OPTIONAL, EP_MIME_ANY, EP_LIMIT_EVENT,
		  EP_KIND_OPAQUE, 0, false, 0 },
		{ "keyed", "k/{key}/*/?", EP_POST, 200, EP_REPLY_EMPTY, EP_BODY_OPTIONAL, EP_MIME_ANY, EP_LIMIT_EVENT,
		  EP_KIND_OPAQUE, 0, false, 0 },
	};
	const struct endpoint_table t = { eps, 3 }, empty = { eps, 0 };
	struct endpoint_match m;

	(void)state;
	/* the first pattern that matches wins */
	assert_int_equal(endpoint_match(&t, "/api/1/x/y/", &m), EP_MATCHED);
	assert_string_equal(m.ep->name, "first");
	assert_string_equal(m.stored, "x/y/");
	assert_int_equal(endpoint_match(&t, "/api/1/k/secret/tail", &m), EP_MATCHED);
	assert_string_equal(m.ep->name, "keyed");
	assert_string_equal(m.path_key, "secret");
	assert_string_equal(m.stored, "k/{key}/tail");
	assert_int_equal(endpoint_match(&t, "/api/1/store/", &m), EP_NOT_FOUND);
	assert_int_equal(endpoint_match(&empty, "/api/1/x/y/", &m), EP_NOT_FOUND);
	assert_null(m.ep);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_builtin_paths),
		cmocka_unit_test(test_near_misses),
		cmocka_unit_test(test_dsn_path_prefix),
		cmocka_unit_test(test_project_ids),
		cmocka_unit_test(test_normalise),
		cmocka_unit_test(test_normalise_truncates),
		cmocka_unit_test(test_long_segments),
		cmocka_unit_test(test_endpoint_fields),
		cmocka_unit_test(test_tunnel),
		cmocka_unit_test(test_other_tables),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
