/* test_slot.c - hash slots against known vectors (CRC16/XMODEM, CLUSTER KEYSLOT), hash tag rules,
 * the key of each command sentryq sends, MOVED/ASK errors and CLUSTER SLOTS replies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entry.h"
#include "slot.h"

static unsigned ks(const char *key)
{
	return slot_of(key, strlen(key));
}

static void test_crc16(void **state)
{
	assert_int_equal(slot_crc16("123456789", 9), 0x31C3);
	assert_int_equal(slot_crc16("", 0), 0);
	assert_int_equal(slot_crc16("A", 1), 0x58E5);
}

/* Slots as redis-server 7's CLUSTER KEYSLOT gives them. */
static void test_known_slots(void **state)
{
	assert_int_equal(ks("foo"), 12182);
	assert_int_equal(ks("bar"), 5061);
	assert_int_equal(ks("hello"), 866);
	assert_int_equal(ks("somekey"), 11058);
	assert_int_equal(ks(""), 0);
	assert_int_equal(slot_of("a\0b", 3), slot_crc16("a\0b", 3) & 16383);  /* binary-safe */
}

static void test_hash_tags(void **state)
{
	assert_int_equal(ks("{user1000}.following"), ks("{user1000}.followers"));
	assert_int_equal(ks("{user1000}.following"), ks("user1000"));
	assert_int_equal(ks("foo{}{bar}"), slot_crc16("foo{}{bar}", 10) & 16383);  /* empty tag: whole key */
	assert_int_equal(ks("foo{{bar}}zap"), ks("{bar"));                          /* from the first '{' */
	assert_int_equal(ks("foo{bar}{zap}"), ks("bar"));                           /* to the first '}' */
	assert_int_equal(ks("{bar"), slot_crc16("{bar", 4) & 16383);                 /* unclosed: whole key */
	assert_int_equal(ks("}bar{x}"), ks("x"));
}

/* The keys sentryq's cluster layout gives one route share its slot; other routes spread. */
static void test_route_keys_share_a_slot(void **state)
{
	char q[ENTRY_KEY_MAX], b[ENTRY_KEY_MAX], d[ENTRY_KEY_MAX], m[ENTRY_KEY_MAX], body[ENTRY_KEY_MAX], mb[ENTRY_KEY_MAX];

	assert_int_equal(entry_cluster_stream_key("sentryq:", "up", "app", q, sizeof(q)), 0);
	assert_string_equal(q, "sentryq:{up:app}q");
	assert_int_equal(entry_cluster_sibling_key(q, ENTRY_CLUSTER_BYTES, b, sizeof(b)), 0);
	assert_string_equal(b, "sentryq:{up:app}bytes");
	assert_int_equal(entry_cluster_sibling_key(q, ENTRY_CLUSTER_DEAD, d, sizeof(d)), 0);
	assert_string_equal(d, "sentryq:{up:app}dead");
	assert_int_equal(entry_cluster_mirror_key("sentryq:", "up", "app", "other", "copy", m, sizeof(m)), 0);
	assert_string_equal(m, "sentryq:{up:app}m:other:copy");
	assert_int_equal(entry_cluster_body_key(m, "host-9000", 1700000000000LL, 7, body, sizeof(body)), 0);
	assert_string_equal(body, "sentryq:{up:app}b:host-9000:1700000000000-7");
	assert_int_equal(entry_cluster_sibling_key(m, ENTRY_CLUSTER_BYTES, mb, sizeof(mb)), 0);
	assert_string_equal(mb, b);  /* a mirror copy is counted with its source route */
	assert_int_equal(ks(q), ks(b));
	assert_int_equal(ks(q), ks(d));
	assert_int_equal(ks(q), ks(m));
	assert_int_equal(ks(q), ks(body));
	assert_int_equal(ks(q), ks("up:app"));
	assert_int_equal(entry_cluster_sibling_key("sentryq:q:up:app", "bytes", b, sizeof(b)), -1);  /* no tag */
	assert_int_equal(entry_cluster_stream_key("sentryq:", "up", "app", q, 10), -1);
}

static int key_of(int argc, const char **argv)
{
	return slot_command_key(argc, argv, NULL);
}

static void test_command_keys(void **state)
{
	assert_int_equal(key_of(3, (const char *[]){ "XADD", "k", "*" }), 1);
	assert_int_equal(key_of(2, (const char *[]){ "get", "k" }), 1);
	assert_int_equal(key_of(5, (const char *[]){ "EVAL", "s", "2", "k1", "k2" }), 3);
	assert_int_equal(key_of(4, (const char *[]){ "EVAL", "s", "0", "a" }), -1);
	assert_int_equal(key_of(6, (const char *[]){ "XGROUP", "CREATE", "k", "g", "0", "MKSTREAM" }), 2);
	assert_int_equal(key_of(3, (const char *[]){ "MEMORY", "USAGE", "k" }), 2);
	assert_int_equal(key_of(3, (const char *[]){ "XINFO", "STREAM", "k" }), 2);
	assert_int_equal(key_of(9, (const char *[]){ "XREADGROUP", "GROUP", "g", "c", "COUNT", "5", "STREAMS", "k",
						  ">" }), 7);
	assert_int_equal(key_of(3, (const char *[]){ "WAIT", "1", "100" }), -1);
	assert_int_equal(key_of(2, (const char *[]){ "CLUSTER", "SLOTS" }), -1);
	assert_int_equal(key_of(1, (const char *[]){ "PING" }), -1);
	assert_int_equal(key_of(1, (const char *[]){ "XLEN" }), -1);
	assert_int_equal(slot_command_key(3, (const char *[]){ "XADDX", "k", "*" }, (const size_t[]){ 4, 1, 1 }), 1);
}

static enum slot_redirect redir(const char *err, unsigned *slot, char *host, int *port)
{
	return slot_redirect_parse(err, strlen(err), slot, host, SLOT_HOST_MAX, port);
}

static void test_redirects(void **state)
{
	char host[SLOT_HOST_MAX];
	unsigned slot = 0;
	int port = 0;

	assert_int_equal(redir("MOVED 3999 127.0.0.1:6381", &slot, host, &port), SLOT_REDIRECT_MOVED);
	assert_int_equal(slot, 3999);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 6381);
	assert_int_equal(redir("ASK 16383 redis-2.example:7000", &slot, host, &port), SLOT_REDIRECT_ASK);
	assert_int_equal(slot, 16383);
	assert_string_equal(host, "redis-2.example");
	assert_int_equal(port, 7000);
	assert_int_equal(redir("MOVED 1 [::1]:6380", &slot, host, &port), SLOT_REDIRECT_MOVED);
	assert_string_equal(host, "::1");
	assert_int_equal(redir("MOVED 1 ::1:6380", &slot, host, &port), SLOT_REDIRECT_MOVED);
	assert_string_equal(host, "::1");
	assert_int_equal(redir("MOVED 2 :6380", &slot, host, &port), SLOT_REDIRECT_MOVED);
	assert_string_equal(host, "");
	assert_int_equal(port, 6380);
	assert_int_equal(redir("TRYAGAIN Multiple keys request during rehashing of slot", &slot, host, &port),
			 SLOT_REDIRECT_TRYAGAIN);
	assert_int_equal(redir("CLUSTERDOWN The cluster is down", &slot, host, &port), SLOT_REDIRECT_DOWN);
	assert_int_equal(redir("ERR wrong number of arguments", &slot, host, &port), SLOT_REDIRECT_NONE);
	assert_int_equal(redir("MOVED 16384 127.0.0.1:1", &slot, host, &port), SLOT_REDIRECT_BAD);
	assert_int_equal(redir("MOVED x 127.0.0.1:1", &slot, host, &port), SLOT_REDIRECT_BAD);
	assert_int_equal(redir("MOVED 1 127.0.0.1", &slot, host, &port), SLOT_REDIRECT_BAD);
	assert_int_equal(redir("MOVED 1 127.0.0.1:0", &slot, host, &port), SLOT_REDIRECT_BAD);
	assert_int_equal(redir("MOVED 1 127.0.0.1:99999", &slot, host, &port), SLOT_REDIRECT_BAD);
	assert_int_equal(redir("ASK 1", &slot, host, &port), SLOT_REDIRECT_BAD);
}

/* Replies on the heap: a tiny builder. */
static redisReply *r_int(long long v)
{
	redisReply *r = calloc(1, sizeof(*r));

	r->type = REDIS_REPLY_INTEGER;
	r->integer = v;
	return r;
}

static redisReply *r_str(const char *s)
{
	redisReply *r = calloc(1, sizeof(*r));

	r->type = REDIS_REPLY_STRING;
	r->str = strdup(s);
	r->len = strlen(s);
	return r;
}

static redisReply *r_arr(size_t n, ...)
{
	redisReply *r = calloc(1, sizeof(*r));
	va_list ap;

	r->type = REDIS_REPLY_ARRAY;
	r->elements = n;
	r->element = calloc(n ? n : 1, sizeof(*r->element));
	va_start(ap, n);
	for (size_t i = 0; i < n; i++)
		r->element[i] = va_arg(ap, redisReply *);
	va_end(ap);
	return r;
}

static void test_slot_map(void **state)
{
	redisReply *r = r_arr(3,
		r_arr(4, r_int(0), r_int(5460), r_arr(3, r_str("127.0.0.1"), r_int(7000), r_str("id1")),
		      r_arr(3, r_str("127.0.0.1"), r_int(7003), r_str("id4"))),
		r_arr(3, r_int(5461), r_int(10922), r_arr(2, r_str(""), r_int(7001))),
		r_arr(3, r_int(10923), r_int(16383), r_arr(4, r_str("?"), r_int(7002), r_str("id3"), r_arr(0))));
	struct slot_range *m;
	size_t n;

	assert_int_equal(slot_map_parse(r, &m, &n), SLOT_MAP_OK);
	assert_int_equal(n, 3);
	assert_int_equal(m[0].start, 0);
	assert_int_equal(m[0].end, 5460);
	assert_string_equal(m[0].host, "127.0.0.1");
	assert_int_equal(m[0].port, 7000);
	assert_string_equal(m[1].host, "");
	assert_string_equal(m[2].host, "");
	assert_int_equal(m[2].port, 7002);
	assert_int_equal(slot_map_uncovered(m, n), 0);
	assert_int_equal(slot_map_uncovered(m, 2), 16384 - 10923);
	free(m);
	freeReplyObject(r);

	r = r_arr(1, r_arr(3, r_int(0), r_int(16384), r_arr(2, r_str("h"), r_int(1))));
	assert_int_equal(slot_map_parse(r, &m, &n), SLOT_MAP_BAD);
	freeReplyObject(r);
	r = r_arr(1, r_arr(3, r_int(9), r_int(3), r_arr(2, r_str("h"), r_int(1))));
	assert_int_equal(slot_map_parse(r, &m, &n), SLOT_MAP_BAD);
	freeReplyObject(r);
	r = r_arr(1, r_arr(2, r_int(0), r_int(3)));
	assert_int_equal(slot_map_parse(r, &m, &n), SLOT_MAP_BAD);
	freeReplyObject(r);
	r = r_str("ERR This instance has cluster support disabled");
	r->type = REDIS_REPLY_ERROR;
	assert_int_equal(slot_map_parse(r, &m, &n), SLOT_MAP_BAD);
	assert_null(m);
	freeReplyObject(r);
	r = r_arr(0);
	assert_int_equal(slot_map_parse(r, &m, &n), SLOT_MAP_OK);
	assert_int_equal(n, 0);
	assert_int_equal(slot_map_uncovered(m, n), 16384);
	free(m);
	freeReplyObject(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc16),
		cmocka_unit_test(test_known_slots),
		cmocka_unit_test(test_hash_tags),
		cmocka_unit_test(test_route_keys_share_a_slot),
		cmocka_unit_test(test_command_keys),
		cmocka_unit_test(test_redirects),
		cmocka_unit_test(test_slot_map),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
