/* test_buffer.c - the in-memory FIFO used while Redis is away: order, the byte bound, copies that
 * outlive the caller's memory, the send cursor through take, rewind and remove, and the copies of
 * a mirrored request pushed all or none. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buffer.h"

#define B(x) CATEGORY_BIT(CAT_##x)
#define NOW_MS 1700000000777LL

static struct entry make(const char *event_id, const char *body, size_t body_len)
{
	struct entry e = {
		.method = "POST", .endpoint = "envelope/", .query = "", .headers = "X-Sentry-Auth: Sentry sentry_key=k\n",
		.client_ip = "192.0.2.1", .sdk_key = "k", .event_id = event_id, .carrier = 1, .has_secret = false,
		.categories = B(ERROR), .body = body, .body_len = body_len, .received_ms = 1, .first_ms = 0,
	};
	return e;
}

/* Push an entry whose event_id is `id` into stream `stream`. */
static enum buffer_result push(struct buffer *b, const char *stream, const char *id, bool force)
{
	struct entry e = make(id, "{}", 2);

	return buffer_push(b, stream, &e, force, NOW_MS);
}

static const char *id_of(const struct buffer_item *it)
{
	assert_non_null(it);
	return buffer_item_entry(it)->event_id;
}

/* The bytes one item of push() counts for. */
static size_t item_size(void)
{
	struct buffer *b = buffer_new((size_t)-1);
	size_t n;

	assert_non_null(b);
	assert_int_equal(push(b, "s", "a", false), BUFFER_OK);
	n = buffer_bytes(b);
	buffer_free(b);
	return n;
}

static void test_fifo_order(void **state)
{
	struct buffer *b = buffer_new(1 << 20);
	struct buffer_item *it;

	(void)state;
	assert_non_null(b);
	assert_int_equal(buffer_count(b), 0);
	assert_int_equal(buffer_bytes(b), 0);
	assert_true(buffer_all_taken(b));
	assert_null(buffer_take(b));
	assert_int_equal(push(b, "s1", "a", false), BUFFER_OK);
	assert_int_equal(push(b, "s2", "b", false), BUFFER_OK);
	assert_int_equal(push(b, "s1", "c", false), BUFFER_OK);
	assert_int_equal(buffer_count(b), 3);
	assert_false(buffer_all_taken(b));
	it = buffer_take(b);
	assert_string_equal(id_of(it), "a");
	assert_string_equal(buffer_item_stream(it), "s1");
	it = buffer_take(b);
	assert_string_equal(id_of(it), "b");
	assert_string_equal(buffer_item_stream(it), "s2");
	it = buffer_take(b);
	assert_string_equal(id_of(it), "c");
	assert_null(buffer_take(b));
	assert_true(buffer_all_taken(b));
	/* taking does not remove: only buffer_remove does */
	assert_int_equal(buffer_count(b), 3);
	while ((it = buffer_next(b, NULL)) != NULL)
		buffer_remove(b, it);
	assert_int_equal(buffer_count(b), 0);
	assert_int_equal(buffer_bytes(b), 0);
	/* a push after everything was taken is the next to take */
	assert_int_equal(push(b, "s", "d", false), BUFFER_OK);
	assert_false(buffer_all_taken(b));
	assert_string_equal(id_of(buffer_take(b)), "d");
	buffer_free(b);
}

static void test_byte_bound(void **state)
{
	size_t sz = item_size();
	struct buffer *b = buffer_new(2 * sz);

	(void)state;
	assert_true(sz > 0);
	assert_int_equal(push(b, "s", "a", false), BUFFER_OK);
	assert_int_equal(buffer_bytes(b), sz);
	assert_int_equal(push(b, "s", "b", false), BUFFER_OK);  /* exactly at the bound */
	assert_int_equal(buffer_bytes(b), 2 * sz);
	assert_int_equal(push(b, "s", "c", false), BUFFER_FULL);
	assert_int_equal(buffer_count(b), 2);
	assert_int_equal(buffer_bytes(b), 2 * sz);
	/* force: already accepted (from the spool), the bound does not apply */
	assert_int_equal(push(b, "s", "c", true), BUFFER_OK);
	assert_int_equal(push(b, "s", "d", true), BUFFER_OK);
	assert_int_equal(buffer_count(b), 4);
	assert_int_equal(buffer_bytes(b), 4 * sz);
	assert_int_equal(push(b, "s", "e", false), BUFFER_FULL);
	/* room comes back as items leave */
	buffer_remove(b, buffer_next(b, NULL));
	buffer_remove(b, buffer_next(b, NULL));
	assert_int_equal(push(b, "s", "e", false), BUFFER_FULL);
	buffer_remove(b, buffer_next(b, NULL));
	assert_int_equal(buffer_bytes(b), sz);
	assert_int_equal(push(b, "s", "e", false), BUFFER_OK);
	buffer_free(b);
	/* a zero bound takes nothing unforced */
	b = buffer_new(0);
	assert_int_equal(push(b, "s", "a", false), BUFFER_FULL);
	assert_int_equal(buffer_count(b), 0);
	assert_int_equal(push(b, "s", "a", true), BUFFER_OK);
	assert_int_equal(buffer_count(b), 1);
	buffer_free(b);
}

static void test_bytes_count_body_and_strings(void **state)
{
	static char big[1000];
	struct buffer *b = buffer_new((size_t)-1);
	struct entry e = make("a", "", 0);
	size_t base, with_body, with_strings;

	(void)state;
	assert_int_equal(buffer_push(b, "s", &e, false, NOW_MS), BUFFER_OK);
	base = buffer_bytes(b);
	e.body = big;
	e.body_len = sizeof(big);
	assert_int_equal(buffer_push(b, "s", &e, false, NOW_MS), BUFFER_OK);
	with_body = buffer_bytes(b) - base;
	assert_int_equal(with_body, base + sizeof(big));
	e.body_len = 0;
	e.headers = "X-Sentry-Auth: Sentry sentry_key=k\nA-Much-Longer-Header: with a value\n";
	assert_int_equal(buffer_push(b, "stream-name", &e, false, NOW_MS), BUFFER_OK);
	with_strings = buffer_bytes(b) - base - with_body;
	assert_int_equal(with_strings, base + strlen("A-Much-Longer-Header: with a value\n") + strlen("tream-name"));
	buffer_free(b);
}

static void test_received_ms(void **state)
{
	struct buffer *b = buffer_new(1 << 20);
	struct entry e = make("a", "{}", 2);

	(void)state;
	e.received_ms = 0;
	assert_int_equal(buffer_push(b, "s", &e, false, NOW_MS), BUFFER_OK);
	e.received_ms = 1234;
	assert_int_equal(buffer_push(b, "s", &e, true, NOW_MS), BUFFER_OK);
	assert_int_equal(buffer_item_entry(buffer_take(b))->received_ms, NOW_MS);
	assert_int_equal(buffer_item_entry(buffer_take(b))->received_ms, 1234);
	assert_int_equal(e.received_ms, 1234);  /* the caller's entry is not written */
	buffer_free(b);
}

static void test_copies_are_independent(void **state)
{
	char stream[] = "sentryq:q:up:1", method[] = "POST", endpoint[] = "minidump/", query[] = "a=1",
	     headers[] = "H: v\n", ip[] = "2001:db8::1", key[] = "pubkey", id[] = "0123456789abcdef0123456789abcdef",
	     body[] = "bin\0ary\xff\0";
	struct entry e = {
		.method = method, .endpoint = endpoint, .query = query, .headers = headers, .client_ip = ip,
		.sdk_key = key, .event_id = id, .carrier = 3, .has_secret = true,
		.categories = B(ATTACHMENT) | B(OTHER), .body = body, .body_len = sizeof(body) - 1,
		.received_ms = 77, .first_ms = 66,
	};
	struct buffer *b = buffer_new(1 << 20);
	const struct entry *c;
	struct buffer_item *it;

	(void)state;
	assert_int_equal(buffer_push(b, stream, &e, false, NOW_MS), BUFFER_OK);
	/* the caller's memory changes (a request buffer reused) */
	memset(stream, 'X', sizeof(stream) - 1);
	memset(method, 'X', sizeof(method) - 1);
	memset(endpoint, 'X', sizeof(endpoint) - 1);
	memset(query, 'X', sizeof(query) - 1);
	memset(headers, 'X', sizeof(headers) - 1);
	memset(ip, 'X', sizeof(ip) - 1);
	memset(key, 'X', sizeof(key) - 1);
	memset(id, 'X', sizeof(id) - 1);
	memset(body, 'X', sizeof(body) - 1);
	it = buffer_take(b);
	c = buffer_item_entry(it);
	assert_string_equal(buffer_item_stream(it), "sentryq:q:up:1");
	assert_string_equal(c->method, "POST");
	assert_string_equal(c->endpoint, "minidump/");
	assert_string_equal(c->query, "a=1");
	assert_string_equal(c->headers, "H: v\n");
	assert_string_equal(c->client_ip, "2001:db8::1");
	assert_string_equal(c->sdk_key, "pubkey");
	assert_string_equal(c->event_id, "0123456789abcdef0123456789abcdef");
	assert_int_equal(c->body_len, 9);
	assert_memory_equal(c->body, "bin\0ary\xff\0", 9);
	assert_ptr_not_equal(c->body, body);
	assert_int_equal(c->carrier, 3);
	assert_true(c->has_secret);
	assert_int_equal(c->categories, B(ATTACHMENT) | B(OTHER));
	assert_int_equal(c->received_ms, 77);
	assert_int_equal(c->first_ms, 66);
	buffer_free(b);
}

static void test_rewind(void **state)
{
	struct buffer *b = buffer_new(1 << 20);

	(void)state;
	buffer_rewind(b);  /* empty: harmless */
	assert_null(buffer_take(b));
	push(b, "s", "a", false);
	push(b, "s", "b", false);
	push(b, "s", "c", false);
	assert_string_equal(id_of(buffer_take(b)), "a");
	assert_string_equal(id_of(buffer_take(b)), "b");
	/* a lost connection: everything goes out again, from the head */
	buffer_rewind(b);
	assert_false(buffer_all_taken(b));
	assert_string_equal(id_of(buffer_take(b)), "a");
	assert_string_equal(id_of(buffer_take(b)), "b");
	assert_string_equal(id_of(buffer_take(b)), "c");
	assert_true(buffer_all_taken(b));
	buffer_rewind(b);
	buffer_remove(b, buffer_take(b));  /* "a" confirmed */
	buffer_rewind(b);
	assert_string_equal(id_of(buffer_take(b)), "b");
	buffer_free(b);
}

static void test_remove_under_cursor(void **state)
{
	struct buffer *b = buffer_new(1 << 20);
	struct buffer_item *a, *bi, *c;

	(void)state;
	push(b, "s", "a", false);
	push(b, "s", "b", false);
	push(b, "s", "c", false);
	a = buffer_take(b);
	bi = buffer_next(b, a);   /* the cursor is on "b" */
	assert_string_equal(id_of(bi), "b");
	buffer_remove(b, bi);
	assert_string_equal(id_of(buffer_take(b)), "c");
	assert_true(buffer_all_taken(b));
	/* the tail under the cursor: nothing left to take */
	push(b, "s", "d", false);
	c = buffer_next(b, buffer_next(b, a));
	assert_string_equal(id_of(c), "d");
	buffer_remove(b, c);
	assert_true(buffer_all_taken(b));
	assert_null(buffer_take(b));
	/* the head under the cursor (nothing taken yet) */
	buffer_rewind(b);
	buffer_remove(b, a);
	assert_string_equal(id_of(buffer_take(b)), "c");
	assert_int_equal(buffer_count(b), 1);
	/* removing a taken item leaves the cursor alone */
	push(b, "s", "e", false);
	buffer_remove(b, buffer_next(b, NULL));
	assert_string_equal(id_of(buffer_take(b)), "e");
	assert_int_equal(buffer_count(b), 1);
	buffer_remove(b, buffer_next(b, NULL));
	assert_int_equal(buffer_count(b), 0);
	assert_int_equal(buffer_bytes(b), 0);
	assert_null(buffer_next(b, NULL));
	buffer_free(b);
}

static void test_next_walk(void **state)
{
	static const char *const want[] = { "a", "b", "c", "d" };
	struct buffer *b = buffer_new(1 << 20);
	struct buffer_item *it;
	size_t k = 0;

	(void)state;
	assert_null(buffer_next(b, NULL));
	for (size_t i = 0; i < 4; i++)
		push(b, i % 2 ? "odd" : "even", want[i], false);
	buffer_take(b);
	buffer_take(b);
	/* every item, taken or not, in order */
	for (it = buffer_next(b, NULL); it != NULL; it = buffer_next(b, it), k++) {
		assert_true(k < 4);
		assert_string_equal(id_of(it), want[k]);
		assert_string_equal(buffer_item_stream(it), k % 2 ? "odd" : "even");
	}
	assert_int_equal(k, 4);
	/* without the middle ones */
	it = buffer_next(b, buffer_next(b, NULL));
	buffer_remove(b, buffer_next(b, it));
	buffer_remove(b, it);
	it = buffer_next(b, NULL);
	assert_string_equal(id_of(it), "a");
	it = buffer_next(b, it);
	assert_string_equal(id_of(it), "d");
	assert_null(buffer_next(b, it));
	/* the cursor was on "c", now gone: "d" is next */
	assert_string_equal(id_of(buffer_take(b)), "d");
	buffer_free(b);
}

static void test_counts_return_to_zero(void **state)
{
	struct buffer *b = buffer_new(1 << 20);
	size_t sz = item_size();
	struct buffer_item *it;

	(void)state;
	for (int i = 0; i < 100; i++) {
		char id[8];

		snprintf(id, sizeof(id), "%d", i);
		assert_int_equal(push(b, "s", id, false), BUFFER_OK);
	}
	assert_int_equal(buffer_count(b), 100);
	assert_true(buffer_bytes(b) >= 100 * sz);
	/* confirmed in a different order than sent */
	while ((it = buffer_take(b)) != NULL)
		if (atoi(buffer_item_entry(it)->event_id) % 2)
			buffer_remove(b, it);
	assert_int_equal(buffer_count(b), 50);
	while ((it = buffer_next(b, NULL)) != NULL)
		buffer_remove(b, it);
	assert_int_equal(buffer_count(b), 0);
	assert_int_equal(buffer_bytes(b), 0);
	assert_true(buffer_all_taken(b));
	/* freeing a buffer that still holds items releases them (the sanitizer run checks) */
	push(b, "s", "x", false);
	push(b, "s", "y", false);
	buffer_free(b);
	buffer_free(NULL);
}

/* The bytes one copy of make("a", "{}", 2) counts for in `stream`. */
static size_t item_size_in(const char *stream)
{
	struct buffer *b = buffer_new((size_t)-1);
	size_t n;

	assert_non_null(b);
	assert_int_equal(push(b, stream, "a", false), BUFFER_OK);
	n = buffer_bytes(b);
	buffer_free(b);
	return n;
}

static void test_push_each_all_in_order(void **state)
{
	static const char *const streams[] = { "sq:q:wow:vod_be", "sq:q:saas:vod_saas", "sq:q:wow:other" };
	struct buffer *b = buffer_new(1 << 20);
	struct entry e = make("m", "mirrored\0body", 13);
	struct buffer_item *it;
	size_t want = 0;

	(void)state;
	assert_int_equal(push(b, "before", "x", false), BUFFER_OK);
	assert_int_equal(buffer_push_each(b, streams, 3, &e, false, NOW_MS), BUFFER_OK);
	assert_int_equal(push(b, "after", "y", false), BUFFER_OK);
	assert_int_equal(buffer_count(b), 5);
	assert_string_equal(id_of(buffer_take(b)), "x");
	/* one copy per stream, in the order given, right behind what was there */
	for (size_t i = 0; i < 3; i++) {
		const struct entry *c;

		it = buffer_take(b);
		c = buffer_item_entry(it);
		assert_string_equal(buffer_item_stream(it), streams[i]);
		assert_string_equal(c->event_id, "m");
		assert_string_equal(c->headers, e.headers);
		assert_int_equal(c->body_len, 13);
		assert_memory_equal(c->body, "mirrored\0body", 13);
		assert_ptr_not_equal(c->body, e.body);
		assert_int_equal(c->categories, B(ERROR));
		assert_int_equal(c->received_ms, 1);
	}
	assert_string_equal(id_of(buffer_take(b)), "y");
	assert_null(buffer_take(b));
	/* each copy is an item of its own: removing one leaves the others */
	it = buffer_next(b, buffer_next(b, NULL));  /* the first copy */
	assert_string_equal(buffer_item_stream(it), streams[0]);
	buffer_remove(b, it);
	it = buffer_next(b, buffer_next(b, NULL));
	assert_string_equal(buffer_item_stream(it), streams[1]);
	assert_int_equal(buffer_count(b), 4);
	/* the bytes are the sum of what each copy would count alone */
	buffer_free(b);
	b = buffer_new((size_t)-1);
	for (size_t i = 0; i < 3; i++)
		want += item_size_in(streams[i]);
	e = make("a", "{}", 2);
	assert_int_equal(buffer_push_each(b, streams, 3, &e, false, NOW_MS), BUFFER_OK);
	assert_int_equal(buffer_bytes(b), want);
	/* one stream is buffer_push */
	assert_int_equal(buffer_push_each(b, streams, 1, &e, false, NOW_MS), BUFFER_OK);
	assert_int_equal(buffer_bytes(b), want + item_size_in(streams[0]));
	assert_int_equal(buffer_count(b), 4);
	buffer_free(b);
}

static void test_push_each_all_or_none(void **state)
{
	static const char *const streams[] = { "s", "mirror-one", "mirror-two-longer" };
	size_t one = item_size_in("s"), total = one + item_size_in("mirror-one") + item_size_in("mirror-two-longer");
	struct entry e = make("a", "{}", 2);
	struct buffer *b;

	(void)state;
	/* exactly at the bound: all in */
	b = buffer_new(total);
	assert_int_equal(buffer_push_each(b, streams, 3, &e, false, NOW_MS), BUFFER_OK);
	assert_int_equal(buffer_count(b), 3);
	assert_int_equal(buffer_bytes(b), total);
	buffer_free(b);
	/* one byte short: none in, though the first copies alone would fit */
	b = buffer_new(total - 1);
	assert_int_equal(buffer_push_each(b, streams, 3, &e, false, NOW_MS), BUFFER_FULL);
	assert_int_equal(buffer_count(b), 0);
	assert_int_equal(buffer_bytes(b), 0);
	assert_null(buffer_take(b));
	/* the copies fit on their own, not behind what the buffer holds */
	assert_int_equal(push(b, "s", "x", false), BUFFER_OK);
	assert_int_equal(buffer_push_each(b, streams, 3, &e, false, NOW_MS), BUFFER_FULL);
	assert_int_equal(buffer_count(b), 1);
	assert_int_equal(buffer_bytes(b), one);
	assert_string_equal(id_of(buffer_take(b)), "x");
	assert_null(buffer_take(b));
	/* force (from the spool): the bound does not apply, all go in */
	assert_int_equal(buffer_push_each(b, streams, 3, &e, true, NOW_MS), BUFFER_OK);
	assert_int_equal(buffer_count(b), 4);
	assert_int_equal(buffer_bytes(b), one + total);
	assert_string_equal(buffer_item_stream(buffer_take(b)), "s");
	assert_string_equal(buffer_item_stream(buffer_take(b)), "mirror-one");
	assert_string_equal(buffer_item_stream(buffer_take(b)), "mirror-two-longer");
	buffer_free(b);
	/* a zero bound takes no copies unforced */
	b = buffer_new(0);
	assert_int_equal(buffer_push_each(b, streams, 2, &e, false, NOW_MS), BUFFER_FULL);
	assert_int_equal(buffer_count(b), 0);
	assert_int_equal(buffer_push_each(b, streams, 2, &e, true, NOW_MS), BUFFER_OK);
	assert_int_equal(buffer_count(b), 2);
	buffer_free(b);
}

static void test_push_each_stream_count(void **state)
{
	const char *streams[BUFFER_STREAMS_MAX + 1];
	char names[BUFFER_STREAMS_MAX + 1][16];
	struct entry e = make("a", "{}", 2);
	struct buffer *b = buffer_new((size_t)-1);

	(void)state;
	for (size_t i = 0; i <= BUFFER_STREAMS_MAX; i++) {
		snprintf(names[i], sizeof(names[i]), "s%zu", i);
		streams[i] = names[i];
	}
	/* no stream, or more than BUFFER_STREAMS_MAX: refused, nothing pushed, even forced */
	assert_int_not_equal(buffer_push_each(b, streams, 0, &e, false, NOW_MS), BUFFER_OK);
	assert_int_not_equal(buffer_push_each(b, streams, 0, &e, true, NOW_MS), BUFFER_OK);
	assert_int_not_equal(buffer_push_each(b, streams, BUFFER_STREAMS_MAX + 1, &e, false, NOW_MS), BUFFER_OK);
	assert_int_not_equal(buffer_push_each(b, streams, BUFFER_STREAMS_MAX + 1, &e, true, NOW_MS), BUFFER_OK);
	assert_int_equal(buffer_count(b), 0);
	assert_int_equal(buffer_bytes(b), 0);
	assert_null(buffer_take(b));
	/* BUFFER_STREAMS_MAX is taken */
	assert_int_equal(buffer_push_each(b, streams, BUFFER_STREAMS_MAX, &e, false, NOW_MS), BUFFER_OK);
	assert_int_equal(buffer_count(b), BUFFER_STREAMS_MAX);
	for (size_t i = 0; i < BUFFER_STREAMS_MAX; i++)
		assert_string_equal(buffer_item_stream(buffer_take(b)), names[i]);
	assert_null(buffer_take(b));
	buffer_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fifo_order),
		cmocka_unit_test(test_byte_bound),
		cmocka_unit_test(test_bytes_count_body_and_strings),
		cmocka_unit_test(test_received_ms),
		cmocka_unit_test(test_copies_are_independent),
		cmocka_unit_test(test_rewind),
		cmocka_unit_test(test_remove_under_cursor),
		cmocka_unit_test(test_next_walk),
		cmocka_unit_test(test_counts_return_to_zero),
		cmocka_unit_test(test_push_each_all_in_order),
		cmocka_unit_test(test_push_each_all_or_none),
		cmocka_unit_test(test_push_each_stream_count),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
