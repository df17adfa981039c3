/* test_request.c - rebuilding a queued entry for its upstream: URL, auth carrier, envelope dsn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cmocka.h>

#include "auth.h"
#include "codec.h"
#include "request.h"

#define REAL_KEY "a6f431e198734105aef464f6e702351f"
#define REAL_SECRET "563b78f7bc1941828df0e5ebd79cc17a"

static struct config_project project = { .name = "vod_be", .key = REAL_KEY, .secret = REAL_SECRET, .id = 20 };
static struct config_upstream upstream = {
	.name = "wow", .url = "http://127.0.0.1:9001/pfx", .tls = false, .host = "127.0.0.1", .port = 9001,
	.path_prefix = "/pfx",
};

static struct entry item(const char *endpoint, const char *query, const char *headers, int carrier,
			      bool secret, const char *body)
{
	struct entry it = {
		.method = "POST", .endpoint = endpoint, .query = query, .headers = headers,
		.client_ip = "10.0.0.1, 127.0.0.1", .sdk_key = "wow", .event_id = "", .carrier = carrier,
		.has_secret = secret, .body = body, .body_len = strlen(body),
	};
	return it;
}

static const char *header(const struct request *rq, const char *name)
{
	for (size_t i = 0; i < rq->nh; i++)
		if (strcasecmp(rq->h[i].name, name) == 0)
			return rq->h[i].value;
	return NULL;
}

static void test_header_carrier(void **state)
{
	struct entry it = item("store/", "",
				    "Content-Type: application/json\nX-Sentry-Auth: Sentry sentry_key=wow, "
				    "sentry_version=7, sentry_client=raven/1, sentry_secret=vod_be\n",
				    AUTH_X_SENTRY_AUTH, true, "{\"a\":1}");
	struct request rq;

	(void)state;
	assert_int_equal(request_build(&rq, &upstream, &project, &it), REQUEST_OK);
	assert_string_equal(rq.uri, "/pfx/api/20/store/");
	assert_false(rq.get);
	assert_string_equal(header(&rq, "X-Sentry-Auth"), "Sentry sentry_key=" REAL_KEY
			    ", sentry_version=7, sentry_client=raven/1, sentry_secret=" REAL_SECRET);
	assert_string_equal(header(&rq, "Content-Type"), "application/json");
	assert_string_equal(header(&rq, "X-Forwarded-For"), "10.0.0.1, 127.0.0.1");
	assert_ptr_equal(rq.body, it.body);  /* a store body passes through untouched, uncopied */
	assert_null(rq.head);
	assert_true(rq.body_in_entry);
	request_release(&rq);

	/* The SDK sent no secret: the real one is not added. */
	it.headers = "X-Sentry-Auth: Sentry sentry_key=wow, sentry_version=7\n";
	it.has_secret = false;
	assert_int_equal(request_build(&rq, &upstream, &project, &it), REQUEST_OK);
	assert_string_equal(header(&rq, "X-Sentry-Auth"), "Sentry sentry_key=" REAL_KEY ", sentry_version=7");
	request_release(&rq);
}

static void test_query_carrier(void **state)
{
	struct entry it = item("envelope/", "sentry_version=7&sentry_key=wow&sentry_client=sentry.javascript.node%2F11.12.0",
				    "User-Agent: node\n", AUTH_QUERY, false, "{}\n{\"type\":\"session\"}\n{}");
	struct request rq;

	(void)state;
	assert_int_equal(request_build(&rq, &upstream, &project, &it), REQUEST_OK);
	assert_string_equal(rq.uri, "/pfx/api/20/envelope/?sentry_version=7&sentry_key=" REAL_KEY
				    "&sentry_client=sentry.javascript.node%2F11.12.0");
	assert_null(header(&rq, "X-Sentry-Auth"));  /* never a second carrier */
	assert_null(header(&rq, "Authorization"));
	request_release(&rq);
}

static void test_basic_and_path_key(void **state)
{
	struct entry it = item("unreal/{key}/", "", "Authorization: Basic d293OnZvZF9iZQ==\n", AUTH_BASIC, true, "x");
	struct request rq;
	char *expect = auth_rewrite_basic(REAL_KEY, REAL_SECRET);

	(void)state;
	assert_int_equal(request_build(&rq, &upstream, &project, &it), REQUEST_OK);
	assert_string_equal(header(&rq, "Authorization"), expect);
	assert_string_equal(rq.uri, "/pfx/api/20/unreal/" REAL_KEY "/");
	request_release(&rq);
	free(expect);

	it = item("cron/nightly/{key}", "status=ok", "", AUTH_PATH, false, "");
	it.method = "GET";
	assert_int_equal(request_build(&rq, &upstream, &project, &it), REQUEST_OK);
	assert_true(rq.get);
	assert_string_equal(rq.uri, "/pfx/api/20/cron/nightly/" REAL_KEY "?status=ok");
	request_release(&rq);
}

/* Config endpoints may take PUT and PATCH: the method reaches the upstream as the SDK sent it. */
static void test_method_kept(void **state)
{
	static const char *const sent[][2] = { { "POST", "POST" }, { "GET", "GET" }, { "PUT", "PUT" },
					       { "PATCH", "PATCH" }, { "BREW", "POST" } };
	struct entry it = item("integration/hook/", "", "", AUTH_X_SENTRY_AUTH, false, "");
	struct request rq;

	(void)state;
	for (size_t i = 0; i < sizeof(sent) / sizeof(sent[0]); i++) {
		it.method = sent[i][0];
		assert_int_equal(request_build(&rq, &upstream, &project, &it), REQUEST_OK);
		assert_string_equal(rq.method, sent[i][1]);
		assert_int_equal(rq.get, strcmp(sent[i][0], "GET") == 0);
		request_release(&rq);
	}
}

static void test_envelope_dsn_rewritten(void **state)
{
	const char *rest = "\n{\"type\":\"event\",\"length\":5}\nabcde\n";
	char body[512];
	struct entry it;
	struct request rq;
	size_t hlen;

	(void)state;
	snprintf(body, sizeof(body), "{\"dsn\":\"http://wow@relay:9000/1\",\"trace\":{\"public_key\":\"wow\"}}%s", rest);
	it = item("envelope/", "", "", AUTH_ENVELOPE, false, body);
	assert_int_equal(request_build(&rq, &upstream, &project, &it), REQUEST_OK);
	assert_string_equal(rq.uri, "/pfx/api/20/envelope/");
	/* The new header line goes first; the rest is sent from the entry's own body, uncopied. */
	assert_non_null(rq.head);
	hlen = strcspn(body, "\n");
	assert_null(memchr(rq.head, '\n', rq.head_len));
	assert_non_null(strstr(rq.head, "\"dsn\":\"http://" REAL_KEY "@127.0.0.1:9001/pfx/20\""));
	assert_non_null(strstr(rq.head, "\"public_key\":\"" REAL_KEY "\""));
	assert_true(rq.body_in_entry);
	assert_ptr_equal(rq.body, it.body + hlen);
	assert_int_equal(rq.body_len, strlen(rest));
	assert_memory_equal(rq.body, rest, strlen(rest));  /* everything after line 1 is identical */
	request_release(&rq);
}

static void test_envelope_gzip_dsn_rewritten(void **state)
{
	const char *plain = "{\"dsn\":\"http://wow@relay:9000/1\"}\n{\"type\":\"session\"}\n{\"sid\":\"x\"}";
	char *packed, *decoded;
	size_t packed_len, decoded_len;
	struct entry it;
	struct request rq;

	(void)state;
	assert_int_equal(codec_encode(CODEC_GZIP, plain, strlen(plain), &packed, &packed_len), 0);
	it = item("envelope/", "", "Content-Encoding: gzip\n", AUTH_ENVELOPE, false, "");
	it.body = packed;
	it.body_len = packed_len;
	assert_int_equal(request_build(&rq, &upstream, &project, &it), REQUEST_OK);
	assert_string_equal(header(&rq, "Content-Encoding"), "gzip");
	assert_int_equal(codec_decode(CODEC_GZIP, rq.body, rq.body_len, 1 << 20, 0, &decoded, &decoded_len), 0);
	assert_non_null(strstr(decoded, "http://" REAL_KEY "@127.0.0.1:9001/pfx/20"));
	assert_string_equal(strchr(decoded, '\n'), strchr(plain, '\n'));
	free(decoded);
	request_release(&rq);

	/* No dsn in the header: the compressed body goes out as it came, not re-encoded. */
	free(packed);
	assert_int_equal(codec_encode(CODEC_GZIP, "{}\n{\"type\":\"session\"}\n{}", 24, &packed, &packed_len), 0);
	it.body = packed;
	it.body_len = packed_len;
	assert_int_equal(request_build(&rq, &upstream, &project, &it), REQUEST_OK);
	assert_ptr_equal(rq.body, packed);
	request_release(&rq);
	free(packed);
}

static void test_host_and_dsn(void **state)
{
	struct config_upstream u = upstream;
	char buf[256];

	(void)state;
	request_host(&u, buf, sizeof(buf));
	assert_string_equal(buf, "127.0.0.1:9001");
	u.tls = true;
	u.port = 443;
	u.host = "sentry.example";
	u.path_prefix = "";
	request_host(&u, buf, sizeof(buf));
	assert_string_equal(buf, "sentry.example");
	request_dsn(&u, "k", 7, buf, sizeof(buf));
	assert_string_equal(buf, "https://k@sentry.example/7");
	u.host = "::1";
	u.port = 8443;
	request_host(&u, buf, sizeof(buf));
	assert_string_equal(buf, "[::1]:8443");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_carrier),
		cmocka_unit_test(test_query_carrier),
		cmocka_unit_test(test_basic_and_path_key),
		cmocka_unit_test(test_method_kept),
		cmocka_unit_test(test_envelope_dsn_rewritten),
		cmocka_unit_test(test_envelope_gzip_dsn_rewritten),
		cmocka_unit_test(test_host_and_dsn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
