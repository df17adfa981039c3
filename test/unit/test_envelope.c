/* test_envelope.c - event ids, dsn parsing and header rewrite on samples from real SDK requests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "envelope.h"

/* Header lines copied from /work/shared/fixtures/sdk-requests (file named per sample). */
#define HDR_BROWSER_TUNNEL_2 \
	"{\"event_id\":\"cbf6763643cb4ea784fc55d4dd94af80\",\"sent_at\":\"2026-11-27T23:07:58.021Z\"," \
	"\"sdk\":{\"name\":\"sentry.javascript.browser\",\"version\":\"11.12.0\"}," \
	"\"dsn\":\"http://wow@127.0.0.1:29517/1\",\"trace\":{\"environment\":\"capture\"," \
	"\"release\":\"relay-corpus@1.0.0\",\"public_key\":\"wow\"," \
	"\"trace_id\":\"f9356a1792ca4192bfe0cabdf95e2347\"}}"
#define HDR_NODE_TUNNEL_2 \
	"{\"sent_at\":\"2026-11-27T23:06:00.547Z\",\"sdk\":{\"name\":\"sentry.javascript.node\"," \
	"\"version\":\"11.12.0\"},\"dsn\":\"http://wow@127.0.0.1:29517/1\"}"
#define HDR_NODE_EXCEPTION_2 \
	"{\"event_id\":\"bf1d1a926b6b4d8cab9bbcc3943093b2\",\"sent_at\":\"2026-11-27T23:05:37.839Z\"," \
	"\"sdk\":{\"name\":\"sentry.javascript.node\",\"version\":\"11.12.0\"}," \
	"\"trace\":{\"environment\":\"capture\",\"release\":\"relay-corpus@1.0.0\"," \
	"\"public_key\":\"wow\",\"trace_id\":\"96764f2015b4465c85fe3dae173ac855\"}}"
#define HDR_PYTHON_TRANSACTION_1 \
	"{\"event_id\":\"1c4d64bc873f4146ac57dd57b9d70a79\",\"sent_at\":\"2026-11-27T23:04:12.589839Z\"," \
	"\"trace\":{\"trace_id\":\"283b87f71a9944e0bb46a9f2aac41661\",\"public_key\":\"wow\"," \
	"\"sample_rate\":\"1.0\",\"release\":\"relay-corpus@1.0.0\",\"environment\":\"capture\"," \
	"\"transaction\":\"nightly-report\"}}"
#define HDR_NODE_LOGS_1 "{\"sdk\":{\"name\":\"sentry.javascript.node\",\"version\":\"11.12.0\"}}"
#define HDR_PYTHON_SESSION_3 "{}"

/* raven-message-unicode-1 store body (after base64 + zlib), raw UTF-8 as raven sends it. */
static const char raven_store[] =
	"{\"level\":\"warning\",\"tags\":{\"\xe8\xaf\xad\xe8\xa8\x80\":\"\xe4\xb8\xad\xe6\x96\x87\"},"
	"\"message\":\"\xe6\x95\xb0\xe6\x8d\xae\xe5\xba\x93 (\xd0\xbe\xd1\x88\xd0\xb8\xd0\xb1\xd0\xba"
	"\xd0\xb0, \xe2\x9c\x93 \xc3\xa9moji \xf0\x9f\x9a\x80)\",\"user\":{},\"extra\":{\"node\":"
	"\"v20.20.2\"},\"breadcrumbs\":{\"values\":[]},\"request\":{},\"modules\":{},\"server_name\":"
	"\"capture-host\",\"environment\":\"capture\",\"event_id\":\"8087289a8a3142748357ba2d1c236df9\","
	"\"timestamp\":\"2026-11-27T23:07:29\",\"project\":\"1\",\"platform\":\"node\","
	"\"release\":\"relay-corpus@1.0.0\"}";

/* Items after the header: length-delimited binary payload with NUL, '\n' and bytes >= 0x80. */
static const char items[] = "\n{\"type\":\"event\"}\n{\"message\":\"x\"}\n"
	"{\"type\":\"attachment\",\"length\":8,\"filename\":\"dump.bin\"}\n\0\n\xff\xfe\r\n\x80!";
#define ITEMS_LEN (sizeof(items) - 1)

static enum envelope_result event_id(const char *body, char *id)
{
	return envelope_event_id(body, strlen(body), id);
}

static void test_header_len(void **state)
{
	assert_int_equal(envelope_header_len("{}\n{\"type\":\"x\"}", 15), 2);
	assert_int_equal(envelope_header_len("{}", 2), 2);
	assert_int_equal(envelope_header_len("\n", 1), 0);
	assert_int_equal(envelope_header_len("", 0), 0);
	assert_int_equal(envelope_header_len("{}\n", 2), 2); /* len bounds the scan */
}

static void test_event_id_fixtures(void **state)
{
	char id[ENVELOPE_ID_LEN + 1];

	assert_int_equal(event_id(HDR_BROWSER_TUNNEL_2 "\n{\"type\":\"event\"}\n{}", id), ENVELOPE_OK);
	assert_string_equal(id, "cbf6763643cb4ea784fc55d4dd94af80");
	assert_int_equal(event_id(HDR_NODE_EXCEPTION_2 "\n{\"type\":\"event\"}", id), ENVELOPE_OK);
	assert_string_equal(id, "bf1d1a926b6b4d8cab9bbcc3943093b2");
	assert_int_equal(event_id(HDR_PYTHON_TRANSACTION_1, id), ENVELOPE_OK); /* header-only body */
	assert_string_equal(id, "1c4d64bc873f4146ac57dd57b9d70a79");
}

static void test_event_id_forms(void **state)
{
	char id[ENVELOPE_ID_LEN + 1];

	assert_int_equal(event_id("{\"event_id\":\"CBF67636-43CB-4EA7-84FC-55D4DD94AF80\"}\n", id), ENVELOPE_OK);
	assert_string_equal(id, "cbf6763643cb4ea784fc55d4dd94af80");
	assert_int_equal(event_id("{\"event_id\":\"ABCDEF0123456789ABCDEF0123456789\"}", id), ENVELOPE_OK);
	assert_string_equal(id, "abcdef0123456789abcdef0123456789");
	/* absent: session, logs and {} headers from the fixtures */
	assert_int_equal(event_id(HDR_NODE_TUNNEL_2 "\n{\"type\":\"session\"}", id), ENVELOPE_NONE);
	assert_int_equal(event_id(HDR_NODE_LOGS_1 "\n{}", id), ENVELOPE_NONE);
	assert_int_equal(event_id(HDR_PYTHON_SESSION_3 "\n{\"type\":\"session\"}", id), ENVELOPE_NONE);
	/* malformed */
	assert_int_equal(event_id("{\"event_id\":\"cbf6763643cb4ea784fc55d4dd94af8\"}", id), ENVELOPE_MALFORMED);
	assert_int_equal(event_id("{\"event_id\":\"cbf6763643cb4ea784fc55d4dd94af8g\"}", id), ENVELOPE_MALFORMED);
	assert_int_equal(event_id("{\"event_id\":\"cbf67636-43cb4ea7-84fc-55d4dd94af80a\"}", id), ENVELOPE_MALFORMED);
	assert_int_equal(event_id("{\"event_id\":null}", id), ENVELOPE_MALFORMED);
	/* An unterminated header still yields its id: the scan does not validate the envelope (Sentry
	 * does, and answers 400); the id is only what sentryq echoes to the SDK. */
	assert_int_equal(event_id("{\"event_id\":\"cbf6763643cb4ea784fc55d4dd94af80\"", id), ENVELOPE_OK);
	assert_int_equal(event_id("[\"cbf6763643cb4ea784fc55d4dd94af80\"]", id), ENVELOPE_NONE);
	assert_int_equal(event_id("", id), ENVELOPE_NONE);
	assert_int_equal(event_id("\n{\"event_id\":\"cbf6763643cb4ea784fc55d4dd94af80\"}", id), ENVELOPE_NONE);
}

static enum envelope_result store_id(const char *body, char *id)
{
	return envelope_store_event_id(body, strlen(body), id);
}

static void test_store_event_id(void **state)
{
	char id[ENVELOPE_ID_LEN + 1];

	assert_int_equal(store_id(raven_store, id), ENVELOPE_OK);
	assert_string_equal(id, "8087289a8a3142748357ba2d1c236df9");
	/* nested keys, "event_id" as a value, and strings with braces and escaped quotes first */
	assert_int_equal(store_id(" \r\n{\"extra\":{\"event_id\":\"11111111111111111111111111111111\"},"
				  "\"list\":[{\"event_id\":\"22222222222222222222222222222222\"}],"
				  "\"tag\":\"event_id\",\"msg\":\"a \\\"}] {\\\\\",\"x\\\"event_id\":1,"
				  "\"event_id\" : \"3ED6E920-66E4-4623-9F5E-AC87E71BA6E5\"}", id), ENVELOPE_OK);
	assert_string_equal(id, "3ed6e92066e446239f5eac87e71ba6e5");
	/* only nested: not found */
	assert_int_equal(store_id("{\"extra\":{\"event_id\":\"11111111111111111111111111111111\"}}", id), ENVELOPE_NONE);
	assert_int_equal(store_id("{\"a\":1}{\"event_id\":\"11111111111111111111111111111111\"}", id), ENVELOPE_NONE);
	assert_int_equal(store_id("{\"level\":\"error\"}", id), ENVELOPE_NONE);
	assert_int_equal(store_id("{\"event_id\":null}", id), ENVELOPE_MALFORMED);
	assert_int_equal(store_id("{\"event_id\":\"xyz\"}", id), ENVELOPE_MALFORMED);
	assert_int_equal(store_id("{\"event_id\":\"11111111111111111111111111111111", id), ENVELOPE_MALFORMED);
	assert_int_equal(store_id("[{\"event_id\":\"11111111111111111111111111111111\"}]", id), ENVELOPE_NONE);
	assert_int_equal(store_id("eJyrVkrLz1eyUkpKLFKqBQA", id), ENVELOPE_NONE); /* raven's base64 form */
	assert_int_equal(store_id("", id), ENVELOPE_NONE);
}

/* 1 MiB body, id at the very end, after a huge string holding fake keys. */
static void test_store_event_id_large(void **state)
{
	static const char tail[] = "\"},\"event_id\":\"44444444444444444444444444444444\"}";
	static const char fake[] = "{\\\"event_id\\\":\\\"55555555555555555555555555555555\\\"}";
	size_t n = 1024 * 1024, t = sizeof(tail) - 1;
	char *b = malloc(n), id[ENVELOPE_ID_LEN + 1];

	memcpy(b, "{\"extra\":{\"blob\":\"", 18);
	for (size_t i = 18; i < n - t; i++)
		b[i] = fake[i % (sizeof(fake) - 1)];
	b[n - t - 1] = ' '; /* never end the blob on a backslash */
	memcpy(b + n - t, tail, t);
	assert_int_equal(envelope_store_event_id(b, n, id), ENVELOPE_OK);
	assert_string_equal(id, "44444444444444444444444444444444");
	free(b);
}

static enum envelope_result dsn(const char *hdr, char *key, size_t keylen, long *pid)
{
	return envelope_dsn(hdr, strlen(hdr), key, keylen, pid);
}

static void test_dsn(void **state)
{
	char key[64];
	long pid = 0;

	assert_int_equal(dsn(HDR_BROWSER_TUNNEL_2 "\n{\"type\":\"event\"}", key, sizeof(key), &pid), ENVELOPE_OK);
	assert_string_equal(key, "wow");
	assert_int_equal(pid, 1);
	assert_int_equal(dsn("{\"dsn\":\"https://key:secret@host/prefix/42\"}", key, sizeof(key), &pid), ENVELOPE_OK);
	assert_string_equal(key, "key");
	assert_int_equal(pid, 42);
	assert_int_equal(dsn("{\"dsn\":\"https://0123456789abcdef0123456789abcdef:@o1.ingest.sentry.io:8443"
			     "/a/b/4507/?x=1\"}", key, sizeof(key), &pid), ENVELOPE_OK);
	assert_string_equal(key, "0123456789abcdef0123456789abcdef");
	assert_int_equal(pid, 4507);
	assert_int_equal(dsn("{\"dsn\":\"threaded+https://k@h/7\"}", key, sizeof(key), &pid), ENVELOPE_OK);
	assert_int_equal(pid, 7);
	/* absent */
	assert_int_equal(dsn(HDR_NODE_EXCEPTION_2, key, sizeof(key), &pid), ENVELOPE_NONE);
	assert_int_equal(dsn(HDR_PYTHON_SESSION_3, key, sizeof(key), &pid), ENVELOPE_NONE);
	assert_int_equal(dsn("{\"dsn\":null}", key, sizeof(key), &pid), ENVELOPE_NONE);
}

static void test_dsn_malformed(void **state)
{
	static const char *const bad[] = {
		"{\"dsn\":\"http://wow@127.0.0.1:29517/abc\"}", "{\"dsn\":\"http://wow@127.0.0.1:29517/0\"}",
		"{\"dsn\":\"http://wow@127.0.0.1:29517/1x\"}", "{\"dsn\":\"http://wow@127.0.0.1:29517/\"}",
		"{\"dsn\":\"http://wow@127.0.0.1:29517\"}", "{\"dsn\":\"http://127.0.0.1:29517/1\"}",
		"{\"dsn\":\"http://@127.0.0.1/1\"}", "{\"dsn\":\"http://:secret@127.0.0.1/1\"}",
		"{\"dsn\":\"http://wow@/1\"}", "{\"dsn\":\"wow@127.0.0.1/1\"}", "{\"dsn\":\"\"}",
		"{\"dsn\":\"http://w w@h/1\"}", "{\"dsn\":\"http://wow@h/1234567890123456789\"}",
		"{\"dsn\":42}", "{\"dsn\":{}}", "not json", "",
	};
	char key[64];
	long pid = 99;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (dsn(bad[i], key, sizeof(key), &pid) != ENVELOPE_MALFORMED)
			fail_msg("accepted %s", bad[i]);
	}
	assert_int_equal(pid, 99);
	/* key must fit with its NUL */
	assert_int_equal(dsn("{\"dsn\":\"http://abcd@h/1\"}", key, 4, &pid), ENVELOPE_MALFORMED);
	assert_int_equal(dsn("{\"dsn\":\"http://abcd@h/1\"}", key, 5, &pid), ENVELOPE_OK);
	assert_string_equal(key, "abcd");
}

/* header + items; returns malloc'd body of *len bytes. */
static char *with_items(const char *hdr, size_t *len)
{
	size_t h = strlen(hdr);
	char *b = malloc(h + ITEMS_LEN);

	memcpy(b, hdr, h);
	memcpy(b + h, items, ITEMS_LEN);
	*len = h + ITEMS_LEN;
	return b;
}

static void test_rewrite_tunnel(void **state)
{
	static const char want[] =
		"{\"event_id\":\"cbf6763643cb4ea784fc55d4dd94af80\",\"sent_at\":\"2026-11-27T23:07:58.021Z\","
		"\"sdk\":{\"name\":\"sentry.javascript.browser\",\"version\":\"11.12.0\"},"
		"\"dsn\":\"https://a6f4d2@o9.ingest.sentry.io/77\",\"trace\":{\"environment\":\"capture\","
		"\"release\":\"relay-corpus@1.0.0\",\"public_key\":\"a6f4d2\","
		"\"trace_id\":\"f9356a1792ca4192bfe0cabdf95e2347\"}}";
	size_t len, outlen, wl = sizeof(want) - 1;
	char *body = with_items(HDR_BROWSER_TUNNEL_2, &len), *out = NULL;

	assert_int_equal(envelope_rewrite(body, len, "https://a6f4d2@o9.ingest.sentry.io/77", "wow",
					  "a6f4d2", &out, &outlen), ENVELOPE_OK);
	/* same key order, compact, every byte after the header line untouched */
	assert_int_equal(outlen, wl + ITEMS_LEN);
	assert_memory_equal(out, want, wl);
	assert_memory_equal(out + wl, items, ITEMS_LEN);
	free(out);
	free(body);
}

static void test_rewrite_partial(void **state)
{
	char *out = NULL, key[16];
	size_t len, outlen;
	long pid;
	char *body = with_items(HDR_BROWSER_TUNNEL_2, &len);

	/* public_key differs from old_key: only the dsn changes */
	assert_int_equal(envelope_rewrite(body, len, "http://nk@h/5", "other", "nk", &out, &outlen), ENVELOPE_OK);
	assert_non_null(strstr(out, "\"public_key\":\"wow\""));
	assert_int_equal(envelope_dsn(out, outlen, key, sizeof(key), &pid), ENVELOPE_OK);
	assert_string_equal(key, "nk");
	assert_int_equal(pid, 5);
	free(out);
	free(body);
	/* no dsn: only trace.public_key; header-only body stays without a newline */
	assert_int_equal(envelope_rewrite(HDR_NODE_EXCEPTION_2, strlen(HDR_NODE_EXCEPTION_2),
					  "http://nk@h/5", "wow", "nk", &out, &outlen), ENVELOPE_OK);
	assert_int_equal(outlen, strlen(HDR_NODE_EXCEPTION_2) - 1);
	assert_string_equal(out, "{\"event_id\":\"bf1d1a926b6b4d8cab9bbcc3943093b2\",\"sent_at\":"
			    "\"2026-11-27T23:05:37.839Z\",\"sdk\":{\"name\":\"sentry.javascript.node\","
			    "\"version\":\"11.12.0\"},\"trace\":{\"environment\":\"capture\",\"release\":"
			    "\"relay-corpus@1.0.0\",\"public_key\":\"nk\",\"trace_id\":"
			    "\"96764f2015b4465c85fe3dae173ac855\"}}");
	free(out);
}

static void test_rewrite_nothing(void **state)
{
	char *out = (char *)"untouched";
	size_t len, outlen = 7;
	char *body = with_items(HDR_NODE_EXCEPTION_2, &len);

	assert_int_equal(envelope_rewrite(body, len, "http://nk@h/5", "other", "nk", &out, &outlen), ENVELOPE_NONE);
	assert_int_equal(envelope_rewrite(body, len, NULL, NULL, NULL, &out, &outlen), ENVELOPE_NONE);
	free(body);
	body = with_items(HDR_PYTHON_SESSION_3, &len);
	assert_int_equal(envelope_rewrite(body, len, "http://nk@h/5", "wow", "nk", &out, &outlen), ENVELOPE_NONE);
	/* already the wanted values */
	assert_int_equal(envelope_rewrite(HDR_NODE_TUNNEL_2, strlen(HDR_NODE_TUNNEL_2),
					  "http://wow@127.0.0.1:29517/1", "a", "b", &out, &outlen), ENVELOPE_NONE);
	assert_string_equal(out, "untouched");
	assert_int_equal(outlen, 7);
	free(body);
	/* malformed header */
	assert_int_equal(envelope_rewrite("{\"dsn\":", 7, "x", NULL, NULL, &out, &outlen), ENVELOPE_MALFORMED);
	assert_int_equal(envelope_rewrite("\n{}", 3, "x", NULL, NULL, &out, &outlen), ENVELOPE_MALFORMED);
	assert_string_equal(out, "untouched");
}

/* Unknown fields, nesting, unicode (raw, not \u-escaped) and numbers survive the rewrite. */
static void test_rewrite_preserves(void **state)
{
	static const char hdr[] = "{\"x_custom\":{\"a\":[1,2,{\"b\":null}],\"c\":true},"
		"\"dsn\":\"http://wow@127.0.0.1:29517/1\",\"release\":\"\xe7\x89\x88\xe6\x9c\xac-\\u00e9\","
		"\"n\":-12,\"f\":0.5,\"trace\":{\"public_key\":\"wow\"}}\n{}";
	static const char want[] = "{\"x_custom\":{\"a\":[1,2,{\"b\":null}],\"c\":true},"
		"\"dsn\":\"http://nk@h/5\",\"release\":\"\xe7\x89\x88\xe6\x9c\xac-\xc3\xa9\","
		"\"n\":-12,\"f\":0.5,\"trace\":{\"public_key\":\"nk\"}}\n{}";
	char *out;
	size_t outlen;

	assert_int_equal(envelope_rewrite(hdr, sizeof(hdr) - 1, "http://nk@h/5", "wow", "nk",
					  &out, &outlen), ENVELOPE_OK);
	assert_int_equal(outlen, sizeof(want) - 1);
	assert_string_equal(out, want);
	free(out);
}

static void check_uuid4(const char *id)
{
	assert_int_equal(strlen(id), ENVELOPE_ID_LEN);
	assert_int_equal(strspn(id, "0123456789abcdef"), ENVELOPE_ID_LEN);
	assert_int_equal(id[12], '4');
	assert_non_null(strchr("89ab", id[16]));
}

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, ENVELOPE_ID_LEN);
}

static void test_new_id(void **state)
{
	enum { N = 20000 };
	char (*ids)[ENVELOPE_ID_LEN + 1] = malloc(N * sizeof(*ids));
	int seen_variant[4] = { 0 };

	for (int i = 0; i < N; i++) {
		envelope_new_id(ids[i]);
		check_uuid4(ids[i]);
		seen_variant[strchr("89ab", ids[i][16]) - "89ab"] = 1;
	}
	qsort(ids, N, sizeof(*ids), cmp_id);
	for (int i = 1; i < N; i++)
		assert_true(memcmp(ids[i - 1], ids[i], ENVELOPE_ID_LEN) != 0);
	for (int i = 0; i < 4; i++)
		assert_true(seen_variant[i]); /* the variant nibble keeps 2 random bits */
	free(ids);
}

/* A forked child must not replay the parent's sequence. */
static void test_new_id_fork(void **state)
{
	char parent[ENVELOPE_ID_LEN + 1], child[ENVELOPE_ID_LEN + 1];
	int fd[2], status;

	envelope_new_id(parent); /* seeded before the fork */
	assert_int_equal(pipe(fd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		envelope_new_id(child);
		_exit(write(fd[1], child, ENVELOPE_ID_LEN) == ENVELOPE_ID_LEN ? 0 : 1);
	}
	envelope_new_id(parent);
	assert_int_equal(read(fd[0], child, ENVELOPE_ID_LEN), ENVELOPE_ID_LEN);
	child[ENVELOPE_ID_LEN] = '\0';
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	check_uuid4(child);
	assert_string_not_equal(parent, child);
	close(fd[0]);
	close(fd[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_len),
		cmocka_unit_test(test_event_id_fixtures),
		cmocka_unit_test(test_event_id_forms),
		cmocka_unit_test(test_store_event_id),
		cmocka_unit_test(test_store_event_id_large),
		cmocka_unit_test(test_dsn),
		cmocka_unit_test(test_dsn_malformed),
		cmocka_unit_test(test_rewrite_tunnel),
		cmocka_unit_test(test_rewrite_partial),
		cmocka_unit_test(test_rewrite_nothing),
		cmocka_unit_test(test_rewrite_preserves),
		cmocka_unit_test(test_new_id),
		cmocka_unit_test(test_new_id_fork),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
