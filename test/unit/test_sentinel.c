/* test_sentinel.c - Sentinel addresses, and the replies of SENTINEL get-master-addr-by-name, ROLE
 * and a +switch-master message, built by hand on the stack. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "sentinel.h"

static redisReply str(const char *s)
{
	redisReply r = { .type = REDIS_REPLY_STRING, .str = (char *)s, .len = strlen(s) };

	return r;
}

static redisReply arr(redisReply **el, size_t n)
{
	redisReply r = { .type = REDIS_REPLY_ARRAY, .element = el, .elements = n };

	return r;
}

static void addr_ok(const char *s, const char *host, int port)
{
	char h[SENTINEL_HOST_MAX], why[128] = "";
	int p = 0;

	if (sentinel_parse_addr(s, h, sizeof(h), &p, why, sizeof(why)) != SENTINEL_OK)
		print_message("%s: %s\n", s, why);
	assert_int_equal(sentinel_parse_addr(s, h, sizeof(h), &p, why, sizeof(why)), SENTINEL_OK);
	assert_string_equal(h, host);
	assert_int_equal(p, port);
}

static void addr_bad(const char *s, const char *why_part)
{
	char h[SENTINEL_HOST_MAX], why[128] = "";
	int p = 0;

	assert_int_equal(sentinel_parse_addr(s, h, sizeof(h), &p, why, sizeof(why)), SENTINEL_BAD);
	if (strstr(why, why_part) == NULL)
		print_message("%s: '%s' lacks '%s'\n", s, why, why_part);
	assert_non_null(strstr(why, why_part));
	assert_int_equal(sentinel_parse_addr(s, h, sizeof(h), &p, NULL, 0), SENTINEL_BAD);  /* why optional */
}

static void test_addresses(void **state)
{
	char small[4];
	int p;

	addr_ok("127.0.0.1:26379", "127.0.0.1", 26379);
	addr_ok("sentinel-1.example.net:1", "sentinel-1.example.net", 1);
	addr_ok("s_2:65535", "s_2", 65535);
	addr_ok("redis", "redis", SENTINEL_DEFAULT_PORT);
	addr_ok("[::1]:26380", "::1", 26380);
	addr_ok("[fe80::1]", "fe80::1", SENTINEL_DEFAULT_PORT);
	addr_bad("", "host:port");
	addr_bad(":26379", "host:port");
	addr_bad("a b:1", "host:port");
	addr_bad("host:", "port must be");
	addr_bad("host:0", "port must be");
	addr_bad("host:65536", "port must be");
	addr_bad("host:123456", "port must be");
	addr_bad("host:12x", "port must be");
	addr_bad("host:1:2", "port must be");
	addr_bad("::1", "host:port");          /* IPv6 needs its brackets */
	addr_bad("[::1", "without its ']'");
	addr_bad("[::1]x", "junk after");
	addr_bad("[zz]:1", "bad IPv6");
	addr_bad("[]:1", "bad IPv6");
	assert_int_equal(sentinel_parse_addr("hostname:1", small, sizeof(small), &p, NULL, 0), SENTINEL_BAD);
}

static void test_master_reply(void **state)
{
	char h[SENTINEL_HOST_MAX], why[128];
	int p = 0;
	redisReply ip = str("10.1.2.3"), port = str("6380"), v6 = str("::1"), badport = str("x"), *el[2] = { &ip, &port };
	redisReply a = arr(el, 2), nil = { .type = REDIS_REPLY_NIL };
	redisReply err = { .type = REDIS_REPLY_ERROR, .str = (char *)"NOAUTH Authentication required.", .len = 31 };

	assert_int_equal(sentinel_master_reply(&a, h, sizeof(h), &p, why, sizeof(why)), SENTINEL_MASTER_OK);
	assert_string_equal(h, "10.1.2.3");
	assert_int_equal(p, 6380);
	el[0] = &v6;
	assert_int_equal(sentinel_master_reply(&a, h, sizeof(h), &p, why, sizeof(why)), SENTINEL_MASTER_OK);
	assert_string_equal(h, "::1");
	assert_int_equal(sentinel_master_reply(&nil, h, sizeof(h), &p, why, sizeof(why)), SENTINEL_MASTER_UNKNOWN);
	assert_int_equal(sentinel_master_reply(NULL, h, sizeof(h), &p, why, sizeof(why)), SENTINEL_MASTER_UNKNOWN);
	assert_int_equal(sentinel_master_reply(&err, h, sizeof(h), &p, why, sizeof(why)), SENTINEL_MASTER_ERROR);
	assert_string_equal(why, "NOAUTH Authentication required.");
	el[1] = &badport;
	assert_int_equal(sentinel_master_reply(&a, h, sizeof(h), &p, NULL, 0), SENTINEL_MASTER_BAD);
	el[1] = &port;
	a.elements = 1;
	assert_int_equal(sentinel_master_reply(&a, h, sizeof(h), &p, NULL, 0), SENTINEL_MASTER_BAD);
	a.elements = 2;
	el[0] = &a;  /* an array where the ip should be */
	assert_int_equal(sentinel_master_reply(&a, h, sizeof(h), &p, NULL, 0), SENTINEL_MASTER_BAD);
	assert_int_equal(sentinel_master_reply(&port, h, sizeof(h), &p, NULL, 0), SENTINEL_MASTER_BAD);
}

static void test_role(void **state)
{
	redisReply master = str("master"), slave = str("slave"), sentinel = str("sentinel"), off = { .type = REDIS_REPLY_INTEGER };
	redisReply *el[2] = { &master, &off }, a = arr(el, 2), empty = arr(NULL, 0);
	redisReply err = { .type = REDIS_REPLY_ERROR, .str = (char *)"ERR unknown command 'ROLE'", .len = 26 };

	assert_int_equal(sentinel_role_reply(&a), SENTINEL_ROLE_MASTER);
	el[0] = &slave;
	assert_int_equal(sentinel_role_reply(&a), SENTINEL_ROLE_REPLICA);
	el[0] = &sentinel;
	assert_int_equal(sentinel_role_reply(&a), SENTINEL_ROLE_OTHER);
	el[0] = &off;
	assert_int_equal(sentinel_role_reply(&a), SENTINEL_ROLE_OTHER);
	assert_int_equal(sentinel_role_reply(&empty), SENTINEL_ROLE_OTHER);
	assert_int_equal(sentinel_role_reply(&err), SENTINEL_ROLE_OTHER);
	assert_int_equal(sentinel_role_reply(&master), SENTINEL_ROLE_OTHER);  /* not an array */
	assert_int_equal(sentinel_role_reply(NULL), SENTINEL_ROLE_OTHER);
}

static enum sentinel_switch sw(const char *kind, const char *channel, const char *payload, char *h, int *p)
{
	redisReply k = str(kind), c = str(channel), m = str(payload), *el[3] = { &k, &c, &m }, a = arr(el, 3);

	return sentinel_switch_message(&a, "mymaster", h, SENTINEL_HOST_MAX, p);
}

static void test_switch_message(void **state)
{
	char h[SENTINEL_HOST_MAX];
	int p = 0;
	redisReply one = { .type = REDIS_REPLY_INTEGER, .integer = 1 }, k = str("subscribe"), c = str(SENTINEL_CHANNEL);
	redisReply *el[3] = { &k, &c, &one }, a = arr(el, 3);

	assert_int_equal(sw("message", "+switch-master", "mymaster 10.0.0.1 6379 10.0.0.2 6380", h, &p),
			 SENTINEL_SWITCH_OURS);
	assert_string_equal(h, "10.0.0.2");
	assert_int_equal(p, 6380);
	assert_int_equal(sw("message", "+switch-master", "mymaster ::1 6379 ::2 6381", h, &p), SENTINEL_SWITCH_OURS);
	assert_string_equal(h, "::2");
	assert_int_equal(p, 6381);
	assert_int_equal(sw("message", "+switch-master", "other 10.0.0.1 6379 10.0.0.2 6380", h, &p),
			 SENTINEL_SWITCH_OTHER);
	assert_int_equal(sw("message", "+switch-master", "mymasterx 1.1.1.1 1 2.2.2.2 2", h, &p), SENTINEL_SWITCH_OTHER);
	assert_int_equal(sentinel_switch_message(&a, "mymaster", h, sizeof(h), &p), SENTINEL_SWITCH_OTHER);
	assert_int_equal(sw("message", "+switch-master", "mymaster 10.0.0.1 6379 10.0.0.2", h, &p), SENTINEL_SWITCH_BAD);
	assert_int_equal(sw("message", "+switch-master", "mymaster 1 2 3 4 5", h, &p), SENTINEL_SWITCH_BAD);
	assert_int_equal(sw("message", "+switch-master", "mymaster 1.1.1.1 1 2.2.2.2 99999", h, &p), SENTINEL_SWITCH_BAD);
	assert_int_equal(sw("message", "+sdown", "mymaster 1.1.1.1 1 2.2.2.2 2", h, &p), SENTINEL_SWITCH_BAD);
	assert_int_equal(sw("pmessage", "+switch-master", "mymaster 1.1.1.1 1 2.2.2.2 2", h, &p), SENTINEL_SWITCH_BAD);
	assert_int_equal(sentinel_switch_message(NULL, "mymaster", h, sizeof(h), &p), SENTINEL_SWITCH_BAD);
	assert_int_equal(sentinel_switch_message(&one, "mymaster", h, sizeof(h), &p), SENTINEL_SWITCH_BAD);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_master_reply),
		cmocka_unit_test(test_role),
		cmocka_unit_test(test_switch_message),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
