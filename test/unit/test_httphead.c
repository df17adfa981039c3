/* test_httphead.c - request framing: heads, lengths, chunks, pipelining, and every refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "httphead.h"

/* Feed a whole buffer in pieces of `step` bytes; count events. Returns the last event. */
struct run {
	int heads, dones;
	enum httphead_event last;
	size_t consumed;
};

static struct run feed_all(struct httphead *h, const char *p, size_t n, size_t step)
{
	struct run r = { 0, 0, HH_EV_MORE, 0 };

	while (r.consumed <= n) {
		size_t piece = n - r.consumed < step ? n - r.consumed : step, used;
		enum httphead_event ev = httphead_feed(h, p + r.consumed, piece, &used);

		r.consumed += used;
		r.last = ev;
		if (ev == HH_EV_HEAD)
			r.heads++;
		else if (ev == HH_EV_DONE)
			r.dones++, httphead_next(h);
		else if (ev == HH_EV_ERROR || (ev == HH_EV_MORE && r.consumed == n))
			break;
	}
	return r;
}

static void expect_error(const char *req, enum httphead_error e)
{
	struct httphead h;
	struct run r;

	for (size_t step = 1; step <= strlen(req); step += 7) {
		httphead_init(&h, 8192);
		r = feed_all(&h, req, strlen(req), step);
		if (r.last != HH_EV_ERROR || h.error != e)
			fail_msg("step %zu: %s -> event %d error %d, want error %d", step, req, r.last, h.error, e);
	}
}

static void test_simple_requests(void **state)
{
	static const char two[] = "POST /api/1/store/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
				  "GET /status HTTP/1.1\r\nHost: x\r\n\r\n";
	struct httphead h;

	(void)state;
	for (size_t step = 1; step <= sizeof(two); step++) {
		struct run r;

		httphead_init(&h, 8192);
		r = feed_all(&h, two, sizeof(two) - 1, step);
		assert_int_equal(r.heads, 2);
		assert_int_equal(r.dones, 2);
		assert_int_equal(r.consumed, sizeof(two) - 1);
	}
}

static void test_head_fields(void **state)
{
	static const char req[] = "PUT /x HTTP/1.0\nContent-Length:  12 \nExpect: 100-continue\n\n";
	struct httphead h;
	size_t used;

	(void)state;
	httphead_init(&h, 8192);
	assert_int_equal(httphead_feed(&h, req, strlen(req), &used), HH_EV_HEAD);
	assert_int_equal(used, strlen(req));
	assert_int_equal(h.method, HH_PUT);
	assert_int_equal(h.minor, 0);
	assert_true(h.has_length);
	assert_int_equal(h.length, 12);
	assert_true(h.expect_continue);
	assert_false(h.chunked);
	assert_int_equal(httphead_feed(&h, "0123456789ab", 12, &used), HH_EV_DONE);
	assert_int_equal(h.body_bytes, 12);
}

static void test_chunked(void **state)
{
	static const char req[] = "POST /e HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"
				  "5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: y\r\n\r\n"
				  "GET / HTTP/1.1\r\n\r\n";
	struct httphead h;

	(void)state;
	for (size_t step = 1; step < 20; step++) {
		struct run r;

		httphead_init(&h, 8192);
		r = feed_all(&h, req, strlen(req), step);
		assert_int_equal(r.dones, 2);
		assert_int_equal(r.consumed, strlen(req));
	}
}

static void test_long_request_line(void **state)
{
	char req[4096];
	struct httphead h;
	size_t used;

	(void)state;
	snprintf(req, sizeof(req), "GET /api/1/store/?sentry_data=%0*d HTTP/1.1\r\n\r\n", 2000, 7);
	httphead_init(&h, 8192);
	assert_int_equal(httphead_feed(&h, req, strlen(req), &used), HH_EV_HEAD);
	assert_int_equal(h.minor, 1);
	snprintf(req, sizeof(req), "GET /api/1/store/?sentry_data=%0*d HTTP/2.0\r\n\r\n", 2000, 7);
	expect_error(req, HH_BAD_VERSION);
}

static void test_refusals(void **state)
{
	(void)state;
	expect_error("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", HH_DUPLICATE_LENGTH);
	expect_error("POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 190\r\n\r\n", HH_DUPLICATE_LENGTH);
	expect_error("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		     HH_LENGTH_AND_CHUNKED);
	expect_error("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", HH_BAD_TRANSFER);
	expect_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
		     HH_BAD_TRANSFER);
	expect_error("POST / HTTP/1.1\r\nContent-Length: 5x\r\n\r\n", HH_BAD_LENGTH);
	expect_error("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", HH_BAD_LENGTH);
	expect_error("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", HH_BAD_LENGTH);
	expect_error("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", HH_BAD_LENGTH);
	expect_error("FOO / HTTP/1.1\r\n\r\n", HH_UNKNOWN_METHOD);
	expect_error("get / HTTP/1.1\r\n\r\n", HH_UNKNOWN_METHOD);
	expect_error("GET / HTTP/2\r\n\r\n", HH_BAD_VERSION);
	expect_error("GET /\r\n\r\n", HH_BAD_REQUEST_LINE);
	expect_error("GET\r\n\r\n", HH_BAD_REQUEST_LINE);
	expect_error("GET / HTTP/1.1\r\nNoColon\r\n\r\n", HH_BAD_HEADER);
	expect_error("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", HH_BAD_HEADER);
	expect_error("GET / HTTP/1.1\r\nA: b\x01\r\n\r\n", HH_BAD_HEADER);
	expect_error("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", HH_BAD_HEADER);
	expect_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", HH_BAD_CHUNK);
	expect_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", HH_BAD_CHUNK);
	expect_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", HH_BAD_CHUNK);
	assert_int_equal(httphead_status(HH_HEAD_TOO_LARGE), 431);
	assert_int_equal(httphead_status(HH_UNKNOWN_METHOD), 501);
	assert_int_equal(httphead_status(HH_DUPLICATE_LENGTH), 400);
	assert_string_equal(httphead_detail(HH_BAD_CHUNK), "malformed chunked body");
}

static void test_head_bound(void **state)
{
	char req[9000];
	struct httphead h;
	struct run r;
	int n;

	(void)state;
	n = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nX-Big: %0*d\r\n\r\n", 5000, 1);
	httphead_init(&h, 4096);
	r = feed_all(&h, req, (size_t)n, 100);
	assert_int_equal(r.last, HH_EV_ERROR);
	assert_int_equal(h.error, HH_HEAD_TOO_LARGE);
	httphead_init(&h, 8192);
	r = feed_all(&h, req, (size_t)n, 100);
	assert_int_equal(r.dones, 1);
}

/* The smuggling attempt of the review: a GET whose "body" frames a second request. The reader
 * reports the GET's framing (a length) so the listener can refuse it; a second Content-Length in
 * a later request is refused outright. */
static void test_smuggled_request(void **state)
{
	static const char req[] = "GET /api/1/store/?sentry_key=wow HTTP/1.1\r\nContent-Length: 60\r\n\r\n"
				  "POST /api/20/envelope/ HTTP/1.1\r\nHost: attacker\r\nContent-Length: 190\r\n\r\n";
	struct httphead h;
	size_t used;

	(void)state;
	httphead_init(&h, 8192);
	assert_int_equal(httphead_feed(&h, req, strlen(req), &used), HH_EV_HEAD);
	assert_int_equal(h.method, HH_GET);
	assert_true(h.has_length && h.length == 60);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_requests),
		cmocka_unit_test(test_head_fields),
		cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_long_request_line),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_head_bound),
		cmocka_unit_test(test_smuggled_request),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
