/* test_entry.c - a queue entry as Redis fields and back (from a field list and from a hiredis
 * reply), dead-letter fields, and the Redis key names. Replies are built by hand, on the stack. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "entry.h"
#include "slot.h"

#define B(x) CATEGORY_BIT(CAT_##x)
#define NOW_MS 1700000000999LL

static const char body_bin[] = "{\"a\":1}\n\0\x01\xff\n\0\0tail";
#define BODY_BIN_LEN (sizeof(body_bin) - 1)

static struct entry sample(void)
{
	struct entry e = {
		.method = "POST",
		.endpoint = "envelope/",
		.query = "sentry_key=abc&sentry_version=7",
		.headers = "Content-Type: application/x-sentry-envelope\nX-Sentry-Auth: Sentry sentry_key=abc\n",
		.client_ip = "203.0.113.9",
		.sdk_key = "abc",
		.event_id = "cbf6763643cb4ea784fc55d4dd94af80",
		.carrier = 2,
		.has_secret = true,
		.categories = B(ERROR) | B(DEFAULT),
		.body = body_bin,
		.body_len = BODY_BIN_LEN,
		.received_ms = 1700000000123LL,
		.first_ms = 0,
	};
	return e;
}

static void same_entry(const struct entry *a, const struct entry *b)
{
	assert_string_equal(a->method, b->method);
	assert_string_equal(a->endpoint, b->endpoint);
	assert_string_equal(a->query, b->query);
	assert_string_equal(a->headers, b->headers);
	assert_string_equal(a->client_ip, b->client_ip);
	assert_string_equal(a->sdk_key, b->sdk_key);
	assert_string_equal(a->event_id, b->event_id);
	assert_int_equal(a->carrier, b->carrier);
	assert_int_equal(a->has_secret, b->has_secret);
	assert_int_equal(a->categories, b->categories);
	assert_int_equal(a->body_len, b->body_len);
	assert_memory_equal(a->body, b->body, a->body_len);
	assert_int_equal(a->received_ms, b->received_ms);
	assert_int_equal(a->first_ms, b->first_ms);
}

/* The value of field name in f, NULL when absent. */
static const char *field(const struct entry_fields *f, const char *name, size_t *len)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->name[i], name) == 0) {
			if (len != NULL)
				*len = f->len[i];
			return f->val[i];
		}
	return NULL;
}

static enum entry_result from_fields(struct entry *out, const struct entry_fields *f)
{
	size_t nlens[ENTRY_FIELDS_MAX];

	for (size_t i = 0; i < f->n; i++)
		nlens[i] = strlen(f->name[i]);
	return entry_from_fields(out, f->name, nlens, f->val, f->len, f->n);
}

/* Fields -> entry_fields -> entry_from_fields; returns what came back in *out. */
static void round_trip(const struct entry *e, struct entry_fields *f, struct entry *out)
{
	entry_fields(e, NOW_MS, false, f);
	assert_true(f->n <= ENTRY_FIELDS_MAX);
	assert_int_equal(from_fields(out, f), ENTRY_OK);
}

/* A [k, v, k, v, ...] reply on the stack: strings point at the caller's bytes. */
struct kv {
	redisReply arr, el[2 * 32];
	redisReply *p[2 * 32];
};

static void kv_init(struct kv *kv)
{
	memset(kv, 0, sizeof(*kv));
	kv->arr.type = REDIS_REPLY_ARRAY;
	kv->arr.element = kv->p;
}

static void kv_str(struct kv *kv, const char *s, size_t len)
{
	redisReply *r = &kv->el[kv->arr.elements];

	assert_true(kv->arr.elements < 2 * 32);
	r->type = REDIS_REPLY_STRING;
	r->str = (char *)s;
	r->len = len;
	kv->p[kv->arr.elements++] = r;
}

static void kv_add(struct kv *kv, const char *name, const char *val, size_t len)
{
	kv_str(kv, name, strlen(name));
	kv_str(kv, val, len);
}

static void kv_int(struct kv *kv, long long v)
{
	redisReply *r = &kv->el[kv->arr.elements];

	assert_true(kv->arr.elements < 2 * 32);
	r->type = REDIS_REPLY_INTEGER;
	r->integer = v;
	kv->p[kv->arr.elements++] = r;
}

static void kv_from_fields(struct kv *kv, const struct entry_fields *f)
{
	for (size_t i = 0; i < f->n; i++)
		kv_add(kv, f->name[i], f->val[i], f->len[i]);
}

static void test_fields_in_order(void **state)
{
	static const char *const order[] = { "v", "m", "e", "q", "h", "ip", "k", "id", "c", "s", "t", "cat", "t0", "b" };
	struct entry e = sample();
	struct entry_fields f;
	size_t len;

	(void)state;
	e.first_ms = 1690000000000LL;
	entry_fields(&e, NOW_MS, false, &f);
	assert_int_equal(f.n, 14);
	for (size_t i = 0; i < f.n; i++) {
		assert_string_equal(f.name[i], order[i]);
		assert_true(entry_is_field(f.name[i], strlen(f.name[i])));
		if (strcmp(f.name[i], "b") != 0)
			assert_int_equal(f.len[i], strlen(f.val[i]));
	}
	assert_string_equal(field(&f, "v", NULL), "1");
	assert_string_equal(field(&f, "c", NULL), "2");
	assert_string_equal(field(&f, "s", NULL), "1");
	assert_string_equal(field(&f, "t", NULL), "1700000000123");
	assert_string_equal(field(&f, "t0", NULL), "1690000000000");
	assert_string_equal(field(&f, "cat", NULL), "default,error");
	assert_ptr_equal(field(&f, "b", &len), body_bin);  /* the body is not copied */
	assert_int_equal(len, BODY_BIN_LEN);
}

static void test_round_trip_binary_body(void **state)
{
	struct entry e = sample(), back;
	struct entry_fields f;

	(void)state;
	e.first_ms = 1690000000000LL;
	round_trip(&e, &f, &back);
	same_entry(&e, &back);
	assert_int_equal(memchr(back.body, '\0', back.body_len) != NULL, 1);
	e.has_secret = false;
	e.carrier = 0;
	round_trip(&e, &f, &back);
	assert_string_equal(field(&f, "s", NULL), "0");
	same_entry(&e, &back);
}

static void test_round_trip_empty_strings(void **state)
{
	struct entry e = sample(), back;
	struct entry_fields f;
	size_t len = 99;

	(void)state;
	e.query = e.headers = e.client_ip = e.sdk_key = e.event_id = "";
	e.body = "";
	e.body_len = 0;
	round_trip(&e, &f, &back);
	same_entry(&e, &back);
	assert_non_null(field(&f, "q", &len));
	assert_int_equal(len, 0);
	assert_non_null(back.body);  /* an empty body is a body */
}

static void test_received_and_first(void **state)
{
	struct entry e = sample(), back;
	struct entry_fields f;

	(void)state;
	/* 0 received_ms: now_ms is written */
	e.received_ms = 0;
	round_trip(&e, &f, &back);
	assert_string_equal(field(&f, "t", NULL), "1700000000999");
	assert_int_equal(back.received_ms, NOW_MS);
	/* first_ms absent: no "t0", and none read back */
	assert_null(field(&f, "t0", NULL));
	assert_int_equal(back.first_ms, 0);
	/* present: written and read */
	e.received_ms = 5;
	e.first_ms = 4;
	round_trip(&e, &f, &back);
	assert_string_equal(field(&f, "t", NULL), "5");
	assert_string_equal(field(&f, "t0", NULL), "4");
	assert_int_equal(back.received_ms, 5);
	assert_int_equal(back.first_ms, 4);
	/* the largest times fit their buffers */
	e.received_ms = 9223372036854775807LL;
	e.first_ms = 9223372036854775807LL;
	round_trip(&e, &f, &back);
	assert_int_equal(back.received_ms, 9223372036854775807LL);
	assert_int_equal(back.first_ms, 9223372036854775807LL);
}

static void test_categories_field(void **state)
{
	struct entry e = sample(), back;
	struct entry_fields f;

	(void)state;
	/* every category: no "cat" field (what entries before categories look like) */
	e.categories = CATEGORY_ALL;
	round_trip(&e, &f, &back);
	assert_null(field(&f, "cat", NULL));
	assert_int_equal(f.n, 12);
	assert_int_equal(back.categories, CATEGORY_ALL);
	/* none (a client report alone): an empty "cat", read back as none, not as all */
	e.categories = 0;
	round_trip(&e, &f, &back);
	assert_string_equal(field(&f, "cat", NULL), "");
	assert_int_equal(back.categories, 0);
	/* each category alone, CAT_OTHER (unknown envelope items) included */
	for (int c = 0; c < CAT__COUNT; c++) {
		e.categories = CATEGORY_BIT(c);
		round_trip(&e, &f, &back);
		assert_non_null(field(&f, "cat", NULL));
		if (back.categories != CATEGORY_BIT(c))
			fail_msg("category %s read back as %#x", category_name((enum category)c),
				 (unsigned)back.categories);
	}
	/* all but one: still a "cat" field, with every other name */
	e.categories = CATEGORY_ALL & ~B(ERROR);
	round_trip(&e, &f, &back);
	assert_non_null(field(&f, "cat", NULL));
	assert_null(strstr(field(&f, "cat", NULL), "error"));
	assert_int_equal(back.categories, CATEGORY_ALL & ~B(ERROR));
	e.categories = B(OTHER) | B(SESSION);
	round_trip(&e, &f, &back);
	assert_string_equal(field(&f, "cat", NULL), "session,other");
	assert_int_equal(back.categories, B(OTHER) | B(SESSION));
}

static void test_from_fields_damaged(void **state)
{
	const char *names[] = { "m", "e", "b" };
	const size_t nl[] = { 1, 1, 1 };
	const char *vals[] = { "POST", "store/", "{}" };
	const size_t vl[] = { 4, 6, 2 };
	struct entry e;

	(void)state;
	assert_int_equal(entry_from_fields(&e, names, nl, vals, vl, 3), ENTRY_OK);
	/* the rest default to "", 0 and every category */
	assert_string_equal(e.query, "");
	assert_string_equal(e.headers, "");
	assert_string_equal(e.client_ip, "");
	assert_string_equal(e.sdk_key, "");
	assert_string_equal(e.event_id, "");
	assert_int_equal(e.carrier, 0);
	assert_false(e.has_secret);
	assert_int_equal(e.received_ms, 0);
	assert_int_equal(e.categories, CATEGORY_ALL);
	/* each of method, endpoint and body missing */
	for (size_t skip = 0; skip < 3; skip++) {
		const char *n2[2], *v2[2];
		size_t nl2[2], vl2[2], k = 0;

		for (size_t i = 0; i < 3; i++)
			if (i != skip)
				n2[k] = names[i], nl2[k] = nl[i], v2[k] = vals[i], vl2[k] = vl[i], k++;
		if (entry_from_fields(&e, n2, nl2, v2, vl2, 2) != ENTRY_DAMAGED)
			fail_msg("no \"%s\" accepted", names[skip]);
	}
	/* empty method or endpoint */
	vals[0] = "";
	assert_int_equal(entry_from_fields(&e, names, nl, vals, (const size_t[]){ 0, 6, 2 }, 3), ENTRY_DAMAGED);
	vals[0] = "POST";
	vals[1] = "";
	assert_int_equal(entry_from_fields(&e, names, nl, vals, (const size_t[]){ 4, 0, 2 }, 3), ENTRY_DAMAGED);
	assert_int_equal(entry_from_fields(&e, names, nl, vals, vl, 0), ENTRY_DAMAGED);
}

static void test_from_reply(void **state)
{
	struct entry e = sample(), back;
	struct entry_fields f;
	struct kv kv;

	(void)state;
	e.first_ms = 1690000000000LL;
	entry_fields(&e, NOW_MS, false, &f);
	kv_init(&kv);
	kv_from_fields(&kv, &f);
	assert_int_equal(entry_from_reply(&back, &kv.arr), ENTRY_OK);
	same_entry(&e, &back);
	/* strings point into the reply */
	assert_ptr_equal(back.body, body_bin);
}

static void test_from_reply_dead_letter(void **state)
{
	struct entry e = sample(), back;
	struct entry_dead d = { "up1", "42", "sentryq:q:up1:42", "1700000000000-0", "max_attempts", 503, 7,
				1700000001000LL, 1700000002000LL };
	struct entry_fields f;
	struct entry_dead_fields df;
	struct kv kv;

	(void)state;
	/* a dead letter: bookkeeping first, then the entry, then a field from a later version */
	e.first_ms = 1690000000000LL;
	entry_fields(&e, NOW_MS, false, &f);
	entry_dead_fields(&d, &df);
	kv_init(&kv);
	for (size_t i = 0; i < df.n; i++)
		kv_add(&kv, df.name[i], df.val[i], strlen(df.val[i]));
	kv_from_fields(&kv, &f);
	kv_add(&kv, "future_field", "x", 1);
	kv_add(&kv, "ca", "error", 5);       /* near misses of known names */
	kv_add(&kv, "cats", "error", 5);
	assert_int_equal(entry_from_reply(&back, &kv.arr), ENTRY_OK);
	same_entry(&e, &back);
	/* the bookkeeping is there to read, and is not an entry field */
	assert_string_equal(entry_reply_field(&kv.arr, "reason")->str, "max_attempts");
	assert_string_equal(entry_reply_field(&kv.arr, "up")->str, "up1");
	assert_false(entry_is_field("up", 2));
}

/* Unknown fields do not take the places of known ones, however many come first. */
static void test_from_reply_many_unknown_fields(void **state)
{
	static char names[40][8];
	struct entry e = sample(), back;
	struct entry_fields f;
	struct {
		redisReply arr, el[2 * 60];
		redisReply *p[2 * 60];
	} kv;

	(void)state;
	memset(&kv, 0, sizeof(kv));
	kv.arr.type = REDIS_REPLY_ARRAY;
	kv.arr.element = kv.p;
	for (size_t i = 0; i < 40; i++) {
		snprintf(names[i], sizeof(names[i]), "x%zu", i);
		kv.el[2 * i] = (redisReply){ .type = REDIS_REPLY_STRING, .str = names[i], .len = strlen(names[i]) };
		kv.el[2 * i + 1] = (redisReply){ .type = REDIS_REPLY_STRING, .str = (char *)"v", .len = 1 };
	}
	kv.arr.elements = 80;
	entry_fields(&e, NOW_MS, false, &f);
	for (size_t i = 0; i < f.n; i++) {
		kv.el[kv.arr.elements++] = (redisReply){ .type = REDIS_REPLY_STRING, .str = (char *)f.name[i],
							  .len = strlen(f.name[i]) };
		kv.el[kv.arr.elements++] = (redisReply){ .type = REDIS_REPLY_STRING, .str = (char *)f.val[i],
							  .len = f.len[i] };
	}
	for (size_t i = 0; i < kv.arr.elements; i++)
		kv.p[i] = &kv.el[i];
	assert_int_equal(entry_from_reply(&back, &kv.arr), ENTRY_OK);
	same_entry(&e, &back);
}

static void test_from_reply_odd_shapes(void **state)
{
	struct entry back;
	struct kv kv;
	redisReply nil = { .type = REDIS_REPLY_NIL }, str = { .type = REDIS_REPLY_STRING, .str = (char *)"m", .len = 1 };

	(void)state;
	/* a legacy entry: no "v", "cat" or "t0"; a non-string value and a trailing key are skipped */
	kv_init(&kv);
	kv_add(&kv, "m", "GET", 3);
	kv_add(&kv, "e", "store/", 6);
	kv_str(&kv, "q", 1);
	kv_int(&kv, 5);                      /* "q" with an integer value: skipped */
	kv_int(&kv, 1);                      /* a key that is not a string: skipped with its value */
	kv_str(&kv, "GARBAGE", 7);
	kv_add(&kv, "t", "1234", 4);
	kv_add(&kv, "b", "", 0);
	kv_str(&kv, "id", 2);                /* no value */
	assert_int_equal(entry_from_reply(&back, &kv.arr), ENTRY_OK);
	assert_string_equal(back.method, "GET");
	assert_string_equal(back.endpoint, "store/");
	assert_string_equal(back.query, "");
	assert_string_equal(back.event_id, "");
	assert_int_equal(back.received_ms, 1234);
	assert_int_equal(back.first_ms, 0);
	assert_int_equal(back.categories, CATEGORY_ALL);
	assert_int_equal(back.body_len, 0);
	/* missing method, endpoint or body */
	kv_init(&kv);
	kv_add(&kv, "e", "store/", 6);
	kv_add(&kv, "b", "{}", 2);
	assert_int_equal(entry_from_reply(&back, &kv.arr), ENTRY_DAMAGED);
	kv_init(&kv);
	kv_add(&kv, "m", "POST", 4);
	kv_add(&kv, "b", "{}", 2);
	assert_int_equal(entry_from_reply(&back, &kv.arr), ENTRY_DAMAGED);
	kv_init(&kv);
	kv_add(&kv, "m", "POST", 4);
	kv_add(&kv, "e", "store/", 6);
	kv_add(&kv, "up", "u", 1);
	assert_int_equal(entry_from_reply(&back, &kv.arr), ENTRY_DAMAGED);
	/* not a list at all */
	kv_init(&kv);
	assert_int_equal(entry_from_reply(&back, &kv.arr), ENTRY_DAMAGED);
	memset(&back, 0x5a, sizeof(back));
	assert_int_equal(entry_from_reply(&back, NULL), ENTRY_DAMAGED);
	assert_null(back.method);
	assert_int_equal(entry_from_reply(&back, &nil), ENTRY_DAMAGED);
	assert_int_equal(entry_from_reply(&back, &str), ENTRY_DAMAGED);
}

static void test_reply_field(void **state)
{
	struct kv kv;
	redisReply str = { .type = REDIS_REPLY_STRING, .str = (char *)"cat", .len = 3 };
	const redisReply *v;

	(void)state;
	kv_init(&kv);
	kv_add(&kv, "cat", "error", 5);
	kv_add(&kv, "b", "a\0b", 3);
	kv_str(&kv, "status", 6);
	kv_int(&kv, 429);
	kv_str(&kv, "dangling", 8);
	v = entry_reply_field(&kv.arr, "b");
	assert_non_null(v);
	assert_int_equal(v->len, 3);
	assert_memory_equal(v->str, "a\0b", 3);
	assert_string_equal(entry_reply_field(&kv.arr, "cat")->str, "error");
	assert_null(entry_reply_field(&kv.arr, "ca"));
	assert_null(entry_reply_field(&kv.arr, "cats"));
	assert_null(entry_reply_field(&kv.arr, "error"));   /* values are not names */
	assert_null(entry_reply_field(&kv.arr, "status"));  /* not a string */
	assert_null(entry_reply_field(&kv.arr, "dangling"));
	assert_null(entry_reply_field(&kv.arr, "absent"));
	assert_null(entry_reply_field(NULL, "cat"));
	assert_null(entry_reply_field(&str, "cat"));
}

static void test_is_field(void **state)
{
	static const char *const known[] = { "v", "m", "e", "q", "h", "ip", "k", "id", "c", "s", "t", "cat", "t0", "b" };
	static const char *const other[] = { "", "up", "pr", "src", "oid", "reason", "status", "attempts", "last",
					     "dead_at", "x", "B", "ca", "cats", "t1", "body" };

	(void)state;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		assert_true(entry_is_field(known[i], strlen(known[i])));
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
		if (entry_is_field(other[i], strlen(other[i])))
			fail_msg("\"%s\" taken for an entry field", other[i]);
	assert_true(entry_is_field("t0x", 2));   /* len bounds the name */
	assert_false(entry_is_field("cat", 2));
}

static void test_dead_fields(void **state)
{
	static const char *const names[] = { "up", "pr", "src", "oid", "reason", "status", "attempts", "last",
					     "dead_at" };
	struct entry_dead d = { "up1", "42", "sentryq:q:up1:42", "1700000000000-7", "permanent", 413, 3,
				1700000001000LL, 1700000002000LL };
	struct entry_dead_fields f;

	(void)state;
	entry_dead_fields(&d, &f);
	assert_int_equal(f.n, 9);
	for (size_t i = 0; i < f.n; i++) {
		assert_string_equal(f.name[i], names[i]);
		assert_false(entry_is_field(f.name[i], strlen(f.name[i])));
	}
	assert_string_equal(f.val[0], "up1");
	assert_string_equal(f.val[1], "42");
	assert_string_equal(f.val[2], "sentryq:q:up1:42");
	assert_string_equal(f.val[3], "1700000000000-7");
	assert_string_equal(f.val[4], "permanent");
	assert_string_equal(f.val[5], "413");
	assert_string_equal(f.val[6], "3");
	assert_string_equal(f.val[7], "1700000001000");
	assert_string_equal(f.val[8], "1700000002000");
	/* a network error: status 0; the extremes fit */
	d.status = 0;
	d.attempts = 9223372036854775807LL;
	d.last_attempt_ms = -1;
	entry_dead_fields(&d, &f);
	assert_string_equal(f.val[5], "0");
	assert_string_equal(f.val[6], "9223372036854775807");
	assert_string_equal(f.val[7], "-1");
	d.status = -2147483647 - 1;
	entry_dead_fields(&d, &f);
	assert_string_equal(f.val[5], "-2147483648");
}

static void test_keys(void **state)
{
	char buf[ENTRY_KEY_MAX], prefix[129], up[65], pr[65];

	(void)state;
	assert_int_equal(entry_stream_key("sentryq:", "sentry-io", "42", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "sentryq:q:sentry-io:42");
	assert_int_equal(entry_bytes_key("sentryq:", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "sentryq:bytes");
	assert_int_equal(entry_dead_key("sentryq:", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "sentryq:dead");
	assert_int_equal(entry_stream_key("", "u", "p", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "q:u:p");
	/* exactly fitting, and one byte short (-1) */
	assert_int_equal(entry_stream_key("x:", "u", "p", buf, 8), 0);  /* "x:q:u:p" + NUL */
	assert_string_equal(buf, "x:q:u:p");
	assert_int_equal(entry_stream_key("x:", "u", "p", buf, 7), -1);
	assert_int_equal(entry_bytes_key("x:", buf, 8), 0);
	assert_int_equal(entry_bytes_key("x:", buf, 7), -1);
	assert_int_equal(entry_dead_key("x:", buf, 7), 0);
	assert_int_equal(entry_dead_key("x:", buf, 6), -1);
	assert_int_equal(entry_dead_key("x:", buf, 0), -1);
	/* the longest configured names fit ENTRY_KEY_MAX */
	memset(prefix, 'p', 128), prefix[128] = '\0';
	memset(up, 'u', 64), up[64] = '\0';
	memset(pr, '9', 64), pr[64] = '\0';
	assert_int_equal(entry_stream_key(prefix, up, pr, buf, sizeof(buf)), 0);
	assert_int_equal(strlen(buf), 128 + 2 + 64 + 1 + 64);
	assert_int_equal(entry_stream_key(prefix, up, pr, buf, 128 + 2 + 64 + 1 + 64), -1);
}

/* The fleet's keys: one hash tag, so one script reads them all in a cluster's one slot. */
static void test_fleet_keys(void **state)
{
	char a[ENTRY_KEY_MAX], b[ENTRY_KEY_MAX], c[ENTRY_KEY_MAX];

	(void)state;
	assert_int_equal(entry_fleet_state_key("sentryq:", "sentry-io", a, sizeof(a)), 0);
	assert_string_equal(a, "sentryq:{fleet}up:sentry-io");
	assert_int_equal(entry_fleet_probe_key("sentryq:", "other", b, sizeof(b)), 0);
	assert_string_equal(b, "sentryq:{fleet}probe:other");
	assert_int_equal(entry_fleet_limits_key("sentryq:", "sentry-io", "42", c, sizeof(c)), 0);
	assert_string_equal(c, "sentryq:{fleet}rl:sentry-io:42");
	assert_int_equal(slot_of(a, strlen(a)), slot_of(b, strlen(b)));
	assert_int_equal(slot_of(a, strlen(a)), slot_of(c, strlen(c)));
	assert_int_equal(entry_fleet_state_key("x:", "u", a, 13), -1);
	assert_int_equal(entry_fleet_state_key("x:", "u", a, 14), 0);  /* "x:{fleet}up:u" + NUL */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fleet_keys),
		cmocka_unit_test(test_fields_in_order),
		cmocka_unit_test(test_round_trip_binary_body),
		cmocka_unit_test(test_round_trip_empty_strings),
		cmocka_unit_test(test_received_and_first),
		cmocka_unit_test(test_categories_field),
		cmocka_unit_test(test_from_fields_damaged),
		cmocka_unit_test(test_from_reply),
		cmocka_unit_test(test_from_reply_dead_letter),
		cmocka_unit_test(test_from_reply_many_unknown_fields),
		cmocka_unit_test(test_from_reply_odd_shapes),
		cmocka_unit_test(test_reply_field),
		cmocka_unit_test(test_is_field),
		cmocka_unit_test(test_dead_fields),
		cmocka_unit_test(test_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
