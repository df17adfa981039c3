/* test_legacyq.c - the old pipeline's records: parsed (timestamps as the Lua script wrote them,
 * repeated headers, every malformed shape, no credential in a reason), paired with their bodies
 * (absent, overwritten by a later record of the same second, a content-length that differs), and
 * translated into the entry ingest would queue (each carrier, routing rules 1-4, the tunnel, DSN
 * path prefixes, kept headers and their spelling, every refusal); Redis addresses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "legacyq.h"
#include "route.h"

#define KEY_VOD "a6f431e198734105aef464f6e702351f"
#define SEC_VOD "563b78f7bc1941828df0e5ebd79cc17a"
#define KEY_WEB "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
#define ID1 "0123456789abcdef0123456789abcdef"
#define AUTH_VOD "Sentry sentry_key=wow, sentry_version=7, sentry_client=raven-python/6.10, sentry_secret=vod_be"
#define STORE_BODY "{\"event_id\":\"" ID1 "\",\"message\":\"m\"}"

static struct config_project wow_projects[] = {
	{ .name = (char *)"vod_be", .key = (char *)KEY_VOD, .secret = (char *)SEC_VOD, .id = 20 },
	{ .name = (char *)"web", .key = (char *)KEY_WEB, .secret = NULL, .id = 21 },
};
static struct config_upstream upstreams[] = {
	{ .name = (char *)"wow", .projects = wow_projects, .nprojects = 2 },
};

static struct config make_config(bool with_default)
{
	struct config c;

	memset(&c, 0, sizeof(c));
	c.max_body_size = 8192;
	c.limit_event = c.limit_envelope = c.limit_attachment = c.limit_attachments = 4096;
	c.redis_prefix = (char *)"sq:";
	c.tunnel_path = (char *)"/tunnel";
	c.upstreams = upstreams;
	c.nupstreams = 1;
	if (with_default) {
		c.default_upstream = (char *)"wow";
		c.default_project = (char *)"web";
	}
	return c;
}

struct fx {
	struct config cfg, cfg_default;
	struct route *rt, *rt_default;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	f->cfg = make_config(false);
	f->cfg_default = make_config(true);
	f->rt = route_new(&f->cfg);
	f->rt_default = route_new(&f->cfg_default);
	*state = f;
	return f->rt != NULL && f->rt_default != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	route_free(f->rt);
	route_free(f->rt_default);
	free(f);
	return 0;
}

static void parse_ok(const char *text, struct legacyq_record *rec)
{
	char why[LEGACYQ_WHY_MAX] = "";
	enum legacyq_result r = legacyq_parse(text, strlen(text), rec, why, sizeof(why));

	if (r != LEGACYQ_OK)
		print_message("parse: %s\n", why);
	assert_int_equal(r, LEGACYQ_OK);
}

static void parse_bad(const char *text, const char *want)
{
	struct legacyq_record rec;
	char why[LEGACYQ_WHY_MAX] = "";

	assert_int_equal(legacyq_parse(text, strlen(text), &rec, why, sizeof(why)), LEGACYQ_MALFORMED);
	if (strstr(why, want) == NULL)
		print_message("why %s, want %s\n", why, want);
	assert_non_null(strstr(why, want));
	assert_null(strstr(why, "vod_be"));
	assert_null(strstr(why, "wow"));
	legacyq_record_free(&rec);
}

/* A record as the Lua script pushed it: cjson of {uri, timestamp, header}. */
static char *record(const char *uri, const char *ts, const char *headers)
{
	size_t n = strlen(uri) + strlen(ts) + strlen(headers) + 64;
	char *s = malloc(n);

	assert_non_null(s);
	snprintf(s, n, "{\"uri\":\"%s\",\"timestamp\":%s,\"header\":{%s}}", uri, ts, headers);
	return s;
}

/* ---- parsing ---- */

static void test_parse_record(void **state)
{
	char *text = record("\\/api\\/1\\/store\\/", "1700000000",
			    "\"host\":\"old.example\",\"x-sentry-auth\":\"" AUTH_VOD "\","
			    "\"content-type\":\"application/json\",\"content-length\":\"39\","
			    "\"accept-language\":[\"de\",\"en\"]");
	struct legacyq_record rec;
	char key[LEGACYQ_KEY_MAX];

	(void)state;
	parse_ok(text, &rec);
	assert_string_equal(rec.uri, "/api/1/store/");
	assert_string_equal(rec.suffix, "1700000000");
	assert_int_equal(rec.time_ms, 1700000000000LL);
	assert_int_equal(rec.content_length, 39);
	assert_int_equal(rec.nh, 6);
	assert_string_equal(rec.hname[0], "host");
	assert_string_equal(rec.hname[4], "accept-language");
	assert_string_equal(rec.hval[4], "de");
	assert_string_equal(rec.hname[5], "accept-language");
	assert_string_equal(rec.hval[5], "en");
	assert_int_equal(legacyq_body_key("sentry:body:", &rec, key, sizeof(key)), 0);
	assert_string_equal(key, "sentry:body:1700000000");
	assert_int_equal(legacyq_body_key("sentry:body:", &rec, key, 22), -1);
	legacyq_record_free(&rec);
	legacyq_record_free(&rec);  /* twice is harmless */
	free(text);
}

static void test_parse_timestamps(void **state)
{
	struct legacyq_record rec;

	(void)state;
	/* ngx.now(): a float, appended with Lua's tostring (%.14g) */
	parse_ok("{\"uri\":\"/api/1/store/\",\"timestamp\":1700000000.125,\"header\":{}}", &rec);
	assert_string_equal(rec.suffix, "1700000000.125");
	assert_int_equal(rec.time_ms, 1700000000125LL);
	assert_int_equal(rec.content_length, -1);
	legacyq_record_free(&rec);
	parse_ok("{\"uri\":\"/api/1/store/\",\"timestamp\":\"1700000001\",\"header\":{}}", &rec);
	assert_string_equal(rec.suffix, "1700000001");
	assert_int_equal(rec.time_ms, 1700000001000LL);
	legacyq_record_free(&rec);
	/* milliseconds already; a string that is no number keys the body all the same */
	parse_ok("{\"uri\":\"/api/1/store/\",\"timestamp\":1700000000123,\"header\":{}}", &rec);
	assert_int_equal(rec.time_ms, 1700000000123LL);
	legacyq_record_free(&rec);
	parse_ok("{\"uri\":\"/api/1/store/\",\"timestamp\":\"abc-1\",\"header\":{}}", &rec);
	assert_string_equal(rec.suffix, "abc-1");
	assert_int_equal(rec.time_ms, 0);
	legacyq_record_free(&rec);
}

static void test_parse_malformed(void **state)
{
	char big[LEGACYQ_RECORD_MAX + 2];
	struct legacyq_record rec;
	char why[LEGACYQ_WHY_MAX];
	char *many;
	size_t n = 0;

	(void)state;
	parse_bad("", "not JSON");
	parse_bad("{\"uri\":\"/api/1/store/?sentry_key=wow&sentry_secret=vod_be\",", "not JSON");
	parse_bad("[1,2]", "not a JSON object");
	parse_bad("{\"timestamp\":1,\"header\":{}}", "no uri");
	parse_bad("{\"uri\":\"\",\"timestamp\":1,\"header\":{}}", "no uri");
	parse_bad("{\"uri\":7,\"timestamp\":1,\"header\":{}}", "no uri");
	parse_bad("{\"uri\":\"api/1/store/\",\"timestamp\":1,\"header\":{}}", "not a request target");
	parse_bad("{\"uri\":\"/api/1/store/\",\"header\":{}}", "no timestamp");
	parse_bad("{\"uri\":\"/api/1/store/\",\"timestamp\":true,\"header\":{}}", "timestamp");
	parse_bad("{\"uri\":\"/api/1/store/\",\"timestamp\":\"1 2\",\"header\":{}}", "timestamp");
	parse_bad("{\"uri\":\"/api/1/store/\",\"timestamp\":\"\",\"header\":{}}", "timestamp");
	parse_bad("{\"uri\":\"/api/1/store/\",\"timestamp\":1}", "no header object");
	parse_bad("{\"uri\":\"/api/1/store/\",\"timestamp\":1,\"header\":[]}", "no header object");
	parse_bad("{\"uri\":\"/api/1/store/\",\"timestamp\":1,\"header\":{\"x\":1}}", "not a string");
	parse_bad("{\"uri\":\"/api/1/store/\",\"timestamp\":1,\"header\":{\"x\":[\"a\",null]}}", "not a string");
	parse_bad("{\"uri\":\"/a\",\"uri\":\"/b\",\"timestamp\":1,\"header\":{}}", "not JSON");
	/* a NUL inside a string would cut the header value short: refused by the JSON parser */
	parse_bad("{\"uri\":\"/api/1/store/\",\"timestamp\":1,\"header\":{\"x\":\"a\\u0000b\"}}", "not JSON");

	many = malloc(LEGACYQ_HEADERS_MAX * 8 + 64);
	assert_non_null(many);
	n += (size_t)sprintf(many, "{\"uri\":\"/x\",\"timestamp\":1,\"header\":{\"a\":[");
	for (int i = 0; i <= LEGACYQ_HEADERS_MAX; i++)
		n += (size_t)sprintf(many + n, "%s\"v\"", i ? "," : "");
	sprintf(many + n, "]}}");
	parse_bad(many, "more than 256 header values");
	free(many);

	memset(big, ' ', sizeof(big));
	assert_int_equal(legacyq_parse(big, sizeof(big), &rec, why, sizeof(why)), LEGACYQ_MALFORMED);
	assert_non_null(strstr(why, "over"));
	legacyq_record_free(&rec);
}

/* ---- pairing ---- */

static void test_pair(void **state)
{
	struct legacyq_record a, b, nolen;
	const char *none_later[] = { "6", NULL, "7" };
	const char *next_same[] = { "5" };
	const char *far_same[] = { "6", NULL, "7", "8", "5", "9" };
	char why[LEGACYQ_WHY_MAX];

	(void)state;
	parse_ok("{\"uri\":\"/x\",\"timestamp\":5,\"header\":{\"content-length\":\"4\"}}", &a);
	parse_ok("{\"uri\":\"/y\",\"timestamp\":5,\"header\":{\"content-length\":\"3\"}}", &b);
	parse_ok("{\"uri\":\"/z\",\"timestamp\":6,\"header\":{\"content-length\":\"x3\"}}", &nolen);
	assert_int_equal(nolen.content_length, -1);

	assert_int_equal(legacyq_pair(&a, NULL, 0, NULL, 0, why, sizeof(why)), LEGACYQ_UNPAIRED);
	assert_string_equal(why, "the body key is absent");
	/* a later record of the same second overwrote a's body: the next one, or one further on
	 * (another record between them, or one that is no record) */
	assert_int_equal(legacyq_pair(&a, next_same, 1, "abcd", 4, why, sizeof(why)), LEGACYQ_UNPAIRED);
	assert_string_equal(why, "overwritten by a later record of the same second");
	assert_int_equal(legacyq_pair(&a, far_same, 6, "abcd", 4, why, sizeof(why)), LEGACYQ_UNPAIRED);
	assert_string_equal(why, "overwritten by a later record of the same second");
	/* ... only as far as the caller looked */
	assert_int_equal(legacyq_pair(&a, far_same, 4, "abcd", 4, why, sizeof(why)), LEGACYQ_OK);
	assert_int_equal(legacyq_pair(&b, none_later, 3, "abc", 3, why, sizeof(why)), LEGACYQ_OK);
	assert_int_equal(legacyq_pair(&b, NULL, 0, "abc", 3, why, sizeof(why)), LEGACYQ_OK);
	/* the last of its second, but the body is not as long as its content-length */
	assert_int_equal(legacyq_pair(&a, none_later, 3, "abc", 3, why, sizeof(why)), LEGACYQ_UNPAIRED);
	assert_non_null(strstr(why, "the body is 3 bytes, its content-length 4"));
	/* no content-length (chunked): any length; an empty body is a body */
	assert_int_equal(legacyq_pair(&nolen, NULL, 0, "", 0, why, sizeof(why)), LEGACYQ_OK);
	legacyq_record_free(&a);
	legacyq_record_free(&b);
	legacyq_record_free(&nolen);
}

/* ---- translation ---- */

static enum legacyq_result translate(const struct config *cfg, const struct route *rt, const char *text,
				     const char *body, size_t blen, struct legacyq_entry *out, char *why)
{
	struct legacyq_record rec;
	enum legacyq_result r;

	parse_ok(text, &rec);
	why[0] = '\0';
	r = legacyq_translate(&rec, cfg, rt, body, blen, out, why, LEGACYQ_WHY_MAX);
	/* no reason ever shows a key, a secret or a project name */
	assert_null(strstr(why, KEY_VOD));
	assert_null(strstr(why, SEC_VOD));
	assert_null(strstr(why, "vod_be"));
	legacyq_record_free(&rec);
	return r;
}

static void test_store_rule1(void **state)
{
	struct fx *f = *state;
	char *text = record("/api/1/store/", "1700000000",
			    "\"host\":\"old.example\",\"x-sentry-auth\":\"" AUTH_VOD "\",\"content-type\":\"application/json\","
			    "\"user-agent\":\"raven-python/6.10\",\"content-length\":\"39\",\"x-forwarded-for\":\"10.1.2.3\","
			    "\"accept-language\":[\"de\",\"en\"],\"cookie\":\"c=1\"");
	char why[LEGACYQ_WHY_MAX];
	struct legacyq_entry le;

	assert_int_equal(translate(&f->cfg, f->rt, text, STORE_BODY, strlen(STORE_BODY), &le, why), LEGACYQ_OK);
	assert_ptr_equal(le.upstream, &upstreams[0]);
	assert_ptr_equal(le.project, &wow_projects[0]);
	assert_string_equal(le.stream, "sq:q:wow:vod_be");
	assert_string_equal(le.route, "wow/20");
	assert_string_equal(le.e.method, "POST");
	assert_string_equal(le.e.endpoint, "store/");
	assert_string_equal(le.e.query, "");
	/* kept headers only, in the record's order, spelled as ingest's table spells them */
	assert_string_equal(le.e.headers, "X-Sentry-Auth: " AUTH_VOD "\nContent-Type: application/json\n"
					  "User-Agent: raven-python/6.10\nAccept-Language: de\nAccept-Language: en\n");
	assert_string_equal(le.e.client_ip, "10.1.2.3");
	assert_string_equal(le.e.sdk_key, "wow");
	assert_string_equal(le.e.event_id, ID1);
	assert_int_equal(le.e.carrier, AUTH_X_SENTRY_AUTH);
	assert_true(le.e.has_secret);
	assert_int_equal(le.e.categories, CATEGORY_BIT(CAT_ERROR) | CATEGORY_BIT(CAT_DEFAULT));
	assert_ptr_equal(le.e.body, STORE_BODY);
	assert_int_equal(le.e.body_len, strlen(STORE_BODY));
	assert_int_equal(le.e.received_ms, 0);
	assert_int_equal(le.e.first_ms, 1700000000000LL);
	legacyq_entry_free(&le);
	legacyq_entry_free(&le);
	free(text);
}

static void test_query_auth_rule2_and_prefix(void **state)
{
	struct fx *f = *state;
	const char *env = "{\"event_id\":\"" ID1 "\"}\n{\"type\":\"transaction\"}\n{}\n";
	char *text = record("\\/sentry\\/\\/api\\/21\\/envelope\\/?sentry_key=wow&sentry_version=7#frag", "1",
			    "\"x-sentry-auth\":\"Sentry sentry_key=ignored\",\"content-type\":\"application/x-sentry-envelope\"");
	char why[LEGACYQ_WHY_MAX];
	struct legacyq_entry le;

	/* X-Sentry-Auth and the query together: two carriers, as ingest answers */
	assert_int_equal(translate(&f->cfg, f->rt, text, env, strlen(env), &le, why), LEGACYQ_REFUSED);
	assert_string_equal(why, "401 multiple authorization payloads detected");
	legacyq_entry_free(&le);
	free(text);

	text = record("\\/sentry\\/\\/api\\/21\\/envelope\\/?sentry_key=wow&sentry_version=7#frag", "1",
		      "\"content-type\":\"application/x-sentry-envelope\"");
	assert_int_equal(translate(&f->cfg, f->rt, text, env, strlen(env), &le, why), LEGACYQ_OK);
	assert_string_equal(le.route, "wow/21");
	assert_string_equal(le.stream, "sq:q:wow:web");
	assert_string_equal(le.e.endpoint, "envelope/");
	assert_string_equal(le.e.query, "sentry_key=wow&sentry_version=7");
	assert_int_equal(le.e.carrier, AUTH_QUERY);
	assert_false(le.e.has_secret);
	assert_string_equal(le.e.headers, "Content-Type: application/x-sentry-envelope\n");
	assert_string_equal(le.e.client_ip, "");
	assert_string_equal(le.e.event_id, ID1);
	assert_int_equal(le.e.categories, CATEGORY_BIT(CAT_TRANSACTION));
	legacyq_entry_free(&le);
	free(text);
}

static void test_envelope_dsn_rule3_and_tunnel(void **state)
{
	struct fx *f = *state;
	const char *env = "{\"dsn\":\"https://" KEY_VOD "@o1.ingest.example/20\"}\n{\"type\":\"session\"}\n{}\n";
	char *text = record("/api/20/envelope/", "1", "\"content-type\":\"application/x-sentry-envelope\"");
	char why[LEGACYQ_WHY_MAX];
	struct legacyq_entry le;

	assert_int_equal(translate(&f->cfg, f->rt, text, env, strlen(env), &le, why), LEGACYQ_OK);
	assert_int_equal(le.e.carrier, AUTH_ENVELOPE);
	assert_string_equal(le.e.sdk_key, KEY_VOD);
	assert_string_equal(le.route, "wow/20");
	assert_int_equal(le.e.categories, CATEGORY_BIT(CAT_SESSION));
	legacyq_entry_free(&le);
	free(text);

	/* the configured tunnel path: forwarded to envelope/, its own query dropped */
	text = record("/tunnel?o=1", "1", "\"content-type\":\"text/plain\"");
	assert_int_equal(translate(&f->cfg, f->rt, text, env, strlen(env), &le, why), LEGACYQ_OK);
	assert_string_equal(le.e.endpoint, "envelope/");
	assert_string_equal(le.e.query, "");
	assert_int_equal(le.e.carrier, AUTH_ENVELOPE);
	legacyq_entry_free(&le);
	free(text);
}

static void test_unroutable_and_default(void **state)
{
	struct fx *f = *state;
	char *text = record("/api/1/store/", "1", "\"x-sentry-auth\":\"Sentry sentry_key=nobody, sentry_secret=vod_be\"");
	char why[LEGACYQ_WHY_MAX];
	struct legacyq_entry le;

	assert_int_equal(translate(&f->cfg, f->rt, text, "{}", 2, &le, why), LEGACYQ_UNROUTABLE);
	assert_non_null(strstr(why, "403"));
	assert_null(strstr(why, "nobody"));
	legacyq_entry_free(&le);
	/* with default_route, rule 4 takes it */
	assert_int_equal(translate(&f->cfg_default, f->rt_default, text, "{}", 2, &le, why), LEGACYQ_OK);
	assert_string_equal(le.route, "wow/21");
	assert_string_equal(le.e.sdk_key, "nobody");
	legacyq_entry_free(&le);
	free(text);
}

static void refused(struct fx *f, const char *uri, const char *headers, const char *body, size_t blen,
		    enum legacyq_result want, const char *why_want)
{
	char *text = record(uri, "1", headers);
	char why[LEGACYQ_WHY_MAX];
	struct legacyq_entry le;

	assert_int_equal(translate(&f->cfg, f->rt, text, body, blen, &le, why), want);
	if (strstr(why, why_want) == NULL)
		print_message("why %s, want %s\n", why, why_want);
	assert_non_null(strstr(why, why_want));
	legacyq_entry_free(&le);
	free(text);
}

static void test_refusals(void **state)
{
	struct fx *f = *state;
	const char *xsa = "\"x-sentry-auth\":\"" AUTH_VOD "\"";
	static char longh[20000];
	char big[9000];
	size_t n;

	memset(big, 'x', sizeof(big));
	refused(f, "/api/1/nothing/", xsa, "{}", 2, LEGACYQ_REFUSED, "404 not an ingest endpoint");
	refused(f, "/store/", xsa, "{}", 2, LEGACYQ_REFUSED, "404");
	refused(f, "/api/0/store/", xsa, "{}", 2, LEGACYQ_REFUSED, "400 invalid project id");
	refused(f, "/api/1/store/", "\"content-type\":\"application/json\"", "{}", 2, LEGACYQ_REFUSED,
		"401 missing authorization information");
	refused(f, "/api/1/store/", xsa, big, sizeof(big), LEGACYQ_REFUSED, "413 request body exceeds listen.max_body_size");
	refused(f, "/api/1/store/", xsa, big, 5000, LEGACYQ_REFUSED, "413 request body exceeds the endpoint's size limit");
	refused(f, "/api/1/store/", "\"x-sentry-auth\":\"" AUTH_VOD "\",\"content-encoding\":\"lzma\"", "{}", 2,
		LEGACYQ_REFUSED, "415 unsupported Content-Encoding");
	refused(f, "/api/1/store/", "\"x-sentry-auth\":\"" AUTH_VOD "\",\"content-encoding\":\"gzip\"", "{}", 2,
		LEGACYQ_REFUSED, "400 invalid body");
	refused(f, "/api/1/security/", "\"x-sentry-auth\":\"" AUTH_VOD "\",\"content-type\":\"text/plain\"", "{}", 2,
		LEGACYQ_REFUSED, "415 unsupported Content-Type");
	refused(f, "/api/1/envelope/", xsa, "", 0, LEGACYQ_REFUSED, "400 empty request body");
	refused(f, "/api/1/store/", "\"x-sentry-auth\":\"" AUTH_VOD "\",\"user-agent\":\"a\\r\\nX-Injected: 1\"", "{}", 2,
		LEGACYQ_MALFORMED, "a User-Agent value has a line break");
	refused(f, "/api/1/store/", "\"x-sentry-auth\":\"" AUTH_VOD "\",\"x-forwarded-for\":\"1.2.3.4\\n5\"", "{}", 2,
		LEGACYQ_MALFORMED, "X-Forwarded-For value has a line break");

	/* kept headers over ingest's 16 KiB bound: 431, as make_pending answers */
	n = (size_t)sprintf(longh, "\"x-sentry-auth\":\"" AUTH_VOD "\",\"user-agent\":\"");
	memset(longh + n, 'u', 17000);
	strcpy(longh + n + 17000, "\"");
	refused(f, "/api/1/store/", longh, "{}", 2, LEGACYQ_REFUSED, "431 request headers too large");
}

static void test_absolute_uri_and_slashes(void **state)
{
	struct fx *f = *state;
	char *text = record("http://old.example:8080//api//1//store//?sentry_key=wow&sentry_secret=vod_be", "1", "");
	char why[LEGACYQ_WHY_MAX];
	struct legacyq_entry le;

	assert_int_equal(translate(&f->cfg, f->rt, text, STORE_BODY, strlen(STORE_BODY), &le, why), LEGACYQ_OK);
	assert_string_equal(le.e.endpoint, "store/");
	assert_string_equal(le.e.query, "sentry_key=wow&sentry_secret=vod_be");
	assert_int_equal(le.e.carrier, AUTH_QUERY);
	assert_true(le.e.has_secret);
	assert_string_equal(le.route, "wow/20");
	assert_string_equal(le.e.headers, "");
	legacyq_entry_free(&le);
	free(text);
}

/* ---- addresses ---- */

static void addr_ok(const char *s, const char *host, int port, int db)
{
	char h[64], why[LEGACYQ_WHY_MAX];
	int p = -1, d = -1;

	assert_int_equal(legacyq_parse_address(s, h, sizeof(h), &p, &d, why, sizeof(why)), LEGACYQ_OK);
	assert_string_equal(h, host);
	assert_int_equal(p, port);
	assert_int_equal(d, db);
}

static void addr_bad(const char *s)
{
	char h[16], why[LEGACYQ_WHY_MAX] = "";
	int p, d;

	assert_int_equal(legacyq_parse_address(s, h, sizeof(h), &p, &d, why, sizeof(why)), LEGACYQ_MALFORMED);
	assert_non_null(strstr(why, "HOST:PORT"));
}

static void test_addresses(void **state)
{
	(void)state;
	addr_ok("127.0.0.1:6379", "127.0.0.1", 6379, 0);
	addr_ok("redis-old:6380/3", "redis-old", 6380, 3);
	addr_ok("[::1]:6379/15", "::1", 6379, 15);
	addr_ok("h:65535/0", "h", 65535, 0);
	addr_bad("");
	addr_bad("localhost");
	addr_bad(":6379");
	addr_bad("h:");
	addr_bad("h:0");
	addr_bad("h:65536");
	addr_bad("h:63x9");
	addr_bad("h:6379/");
	addr_bad("h:6379/-1");
	addr_bad("h:6379/1/2");
	addr_bad("::1:6379");
	addr_bad("[::1]6379");
	addr_bad("a host:1");
	addr_bad("a-very-long-host-name:1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_record),
		cmocka_unit_test(test_parse_timestamps),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_pair),
		cmocka_unit_test_setup_teardown(test_store_rule1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query_auth_rule2_and_prefix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_envelope_dsn_rule3_and_tunnel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unroutable_and_default, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_absolute_uri_and_slashes, setup, teardown),
		cmocka_unit_test(test_addresses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
