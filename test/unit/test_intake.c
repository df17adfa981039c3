/* test_intake.c - the pure half of ingest: kept headers and their spelling, every body check in
 * ingest's order, the event id and categories read from store, raven, envelope and opaque bodies
 * (plain and compressed), and the credentials from each carrier, a path key and the envelope dsn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "intake.h"

#define ID1 "0123456789abcdef0123456789abcdef"
#define KEY "a6f431e198734105aef464f6e702351f"
#define CAT(x) CATEGORY_BIT(CAT_##x)

static struct config cfg_of(void)
{
	struct config c;

	memset(&c, 0, sizeof(c));
	c.max_body_size = 4096;
	c.limit_event = 1024;
	c.limit_envelope = 2048;
	c.limit_attachment = 2048;
	c.limit_attachments = 2048;
	return c;
}

static const struct endpoint *ep_of(const char *path, struct endpoint_match *m)
{
	assert_int_equal(endpoint_match(endpoint_builtin(), path, m), EP_MATCHED);
	return m->ep;
}

static enum intake_result body(const char *path, const char *ce, const char *ct, const char *b, size_t len,
			       struct intake_body *out)
{
	struct config c = cfg_of();
	struct endpoint_match m;

	enum intake_result r = intake_body(&c, ep_of(path, &m), false, "", ce, ct, b, len, out);

	intake_body_release(out);
	return r;
}

static bool is_hex32(const char *id)
{
	if (strlen(id) != 32)
		return false;
	for (; *id != '\0'; id++)
		if (strchr("0123456789abcdef", *id) == NULL)
			return false;
	return true;
}

static char *encode(enum codec_kind k, const char *s, size_t *len)
{
	char *out = NULL;

	assert_int_equal(codec_encode(k, s, strlen(s), &out, len), CODEC_OK);
	return out;
}

static char *b64(const unsigned char *in, size_t n)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc(n / 3 * 4 + 8), *o = out;

	assert_non_null(out);
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);

		*o++ = abc[v >> 18 & 63];
		*o++ = abc[v >> 12 & 63];
		*o++ = i + 1 < n ? abc[v >> 6 & 63] : '=';
		*o++ = i + 2 < n ? abc[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

/* ---- headers ---- */

static void test_header_kept_spelling(void **state)
{
	(void)state;
	assert_string_equal(intake_header_kept(NULL, "content-type", AUTH_NONE), "Content-Type");
	assert_string_equal(intake_header_kept(NULL, "CONTENT-ENCODING", AUTH_NONE), "Content-Encoding");
	assert_string_equal(intake_header_kept(NULL, "user-agent", AUTH_X_SENTRY_AUTH), "User-Agent");
	assert_string_equal(intake_header_kept(NULL, "Sentry-Trace", AUTH_NONE), "sentry-trace");
	assert_string_equal(intake_header_kept(NULL, "sec-ch-ua-platform-version", AUTH_NONE), "Sec-CH-UA-Platform-Version");
	assert_string_equal(intake_header_kept(NULL, "accept-language", AUTH_NONE), "Accept-Language");
	assert_null(intake_header_kept(NULL, "x-forwarded-for", AUTH_NONE));
	assert_null(intake_header_kept(NULL, "content-length", AUTH_NONE));
	assert_null(intake_header_kept(NULL, "host", AUTH_NONE));
	assert_null(intake_header_kept(NULL, "cookie", AUTH_NONE));
	assert_null(intake_header_kept(NULL, "", AUTH_NONE));
}

static void test_header_kept_only_the_carrier(void **state)
{
	(void)state;
	assert_string_equal(intake_header_kept(NULL, "x-sentry-auth", AUTH_X_SENTRY_AUTH), "X-Sentry-Auth");
	assert_null(intake_header_kept(NULL, "x-sentry-auth", AUTH_QUERY));
	assert_null(intake_header_kept(NULL, "X-Sentry-Auth", AUTH_AUTHORIZATION));
	assert_string_equal(intake_header_kept(NULL, "authorization", AUTH_AUTHORIZATION), "Authorization");
	assert_string_equal(intake_header_kept(NULL, "Authorization", AUTH_BASIC), "Authorization");
	assert_null(intake_header_kept(NULL, "authorization", AUTH_X_SENTRY_AUTH));
	assert_null(intake_header_kept(NULL, "authorization", AUTH_ENVELOPE));
}

/* ---- body checks, in ingest's order ---- */

static void test_body_checks(void **state)
{
	struct intake_body b;
	char big[4097];
	int status;

	(void)state;
	memset(big, 'x', sizeof(big));
	assert_int_equal(body("/api/1/store/", NULL, NULL, big, sizeof(big), &b), INTAKE_TOO_LARGE);
	/* over max_body_size wins over a bad encoding */
	assert_int_equal(body("/api/1/store/", "bogus", NULL, big, sizeof(big), &b), INTAKE_TOO_LARGE);
	assert_int_equal(body("/api/1/envelope/", NULL, NULL, "", 0, &b), INTAKE_EMPTY);
	assert_int_equal(body("/api/1/store/", "compress", NULL, "{}", 2, &b), INTAKE_BAD_ENCODING);
	assert_int_equal(body("/api/1/security/", NULL, "text/plain", "{}", 2, &b), INTAKE_BAD_TYPE);
	assert_int_equal(body("/api/1/security/", NULL, NULL, "{}", 2, &b), INTAKE_BAD_TYPE);
	assert_int_equal(body("/api/1/security/", NULL, "application/csp-report", "{}", 2, &b), INTAKE_OK);
	assert_int_equal(body("/api/1/nel/", NULL, "application/reports+json", "[]", 2, &b), INTAKE_OK);
	assert_int_equal(body("/api/1/nel/", NULL, "text/json", "[]", 2, &b), INTAKE_BAD_TYPE);
	/* limits.* applies to the decoded size: 1025 bytes of store event are over limit_event */
	assert_int_equal(body("/api/1/store/", NULL, NULL, big, 1025, &b), INTAKE_OVER_LIMIT);
	assert_int_equal(body("/api/1/store/", "gzip", NULL, "not gzip", 8, &b), INTAKE_CORRUPT);
	/* a store POST without its event is refused (Sentry: 400 "empty request body"); a GET carries
	 * it in sentry_data */
	assert_int_equal(body("/api/1/store/", NULL, NULL, "", 0, &b), INTAKE_EMPTY);
	{
		struct config c = cfg_of();
		struct endpoint_match m;

		assert_int_equal(intake_body(&c, ep_of("/api/1/store/", &m), true, "sentry_data=x", NULL, NULL, "", 0, &b),
				 INTAKE_OK);
		assert_true(is_hex32(b.event_id));
		intake_body_release(&b);
		assert_int_equal(intake_body(&c, ep_of("/api/1/store/", &m), true, "sentry_key=k", NULL, NULL, "", 0, &b),
				 INTAKE_EMPTY);
	}

	assert_string_equal(intake_reason(INTAKE_TOO_LARGE, &status), "request body exceeds listen.max_body_size");
	assert_int_equal(status, 413);
	intake_reason(INTAKE_EMPTY, &status);
	assert_int_equal(status, 400);
	intake_reason(INTAKE_BAD_ENCODING, &status);
	assert_int_equal(status, 415);
	intake_reason(INTAKE_BAD_TYPE, &status);
	assert_int_equal(status, 415);
	intake_reason(INTAKE_OVER_LIMIT, &status);
	assert_int_equal(status, 413);
	intake_reason(INTAKE_CORRUPT, &status);
	assert_int_equal(status, 400);
	assert_string_equal(intake_reason(INTAKE_NOMEM, &status), "out of memory");
	assert_int_equal(status, 503);
	assert_string_equal(intake_reason(INTAKE_OK, &status), "");
	assert_int_equal(status, 200);
}

static void test_decoded_over_limit(void **state)
{
	char plain[3000];
	struct intake_body b;
	size_t n;
	char *z;

	(void)state;
	memset(plain, 'a', sizeof(plain) - 1);
	plain[sizeof(plain) - 1] = '\0';
	z = encode(CODEC_GZIP, plain, &n);
	assert_true(n < 1024);
	/* small on the wire, 2999 bytes decoded: over the store limit (1024) and the envelope one (2048) */
	assert_int_equal(body("/api/1/store/", "gzip", NULL, z, n, &b), INTAKE_OVER_LIMIT);
	assert_int_equal(body("/api/1/envelope/", "gzip", NULL, z, n, &b), INTAKE_OVER_LIMIT);
	assert_int_equal(body("/api/1/minidump/", "gzip", NULL, z, n, &b), INTAKE_OVER_LIMIT);
	free(z);
}

/* ---- event ids and categories ---- */

static void test_store_bodies(void **state)
{
	const char *ev = "{\"event_id\":\"" ID1 "\",\"message\":\"x\"}";
	const char *tx = "{\"event_id\":\"" ID1 "\",\"type\":\"transaction\"}";
	struct intake_body b;
	char *z;
	size_t n;

	(void)state;
	assert_int_equal(body("/api/1/store/", NULL, "application/json", ev, strlen(ev), &b), INTAKE_OK);
	assert_string_equal(b.event_id, ID1);
	assert_int_equal(b.categories, CAT(ERROR) | CAT(DEFAULT));
	assert_int_equal(b.encoding, CODEC_IDENTITY);
	assert_int_equal(b.decoded_len, strlen(ev));

	assert_int_equal(body("/api/1/store/", NULL, NULL, tx, strlen(tx), &b), INTAKE_OK);
	assert_int_equal(b.categories, CAT(TRANSACTION));

	z = encode(CODEC_GZIP, ev, &n);
	assert_int_equal(body("/api/1/store/", "gzip", NULL, z, n, &b), INTAKE_OK);
	assert_string_equal(b.event_id, ID1);
	assert_int_equal(b.encoding, CODEC_GZIP);
	assert_int_equal(b.decoded_len, strlen(ev));
	free(z);

	/* no event_id: a fresh uuid4 each time */
	assert_int_equal(body("/api/1/store/", NULL, NULL, "{}", 2, &b), INTAKE_OK);
	assert_true(is_hex32(b.event_id));
	assert_string_not_equal(b.event_id, ID1);
}

static void test_raven_body(void **state)
{
	const char *ev = "{\"event_id\":\"" ID1 "\",\"type\":\"transaction\"}";
	struct intake_body b;
	char *z, *s;
	size_t n;

	(void)state;
	z = encode(CODEC_DEFLATE, ev, &n);
	s = b64((const unsigned char *)z, n);
	assert_true(s[0] == 'e' && s[1] == 'J');
	assert_int_equal(body("/api/1/store/", NULL, "application/octet-stream", s, strlen(s), &b), INTAKE_OK);
	assert_string_equal(b.event_id, ID1);
	assert_int_equal(b.categories, CAT(TRANSACTION));
	assert_int_equal(b.decoded_len, strlen(ev));
	free(z);
	free(s);
	/* starts like one but is not base64 of zlib: opaque, a fresh id, still accepted */
	assert_int_equal(body("/api/1/store/", NULL, NULL, "eJ!!not", 7, &b), INTAKE_OK);
	assert_true(is_hex32(b.event_id));
}

static void test_envelope_bodies(void **state)
{
	const char *env = "{\"event_id\":\"" ID1 "\"}\n{\"type\":\"session\"}\n{}\n{\"type\":\"attachment\",\"length\":3}\nabc\n";
	struct intake_body b;
	size_t n;
	char *z;

	(void)state;
	assert_int_equal(body("/api/1/envelope/", NULL, NULL, env, strlen(env), &b), INTAKE_OK);
	assert_string_equal(b.event_id, ID1);
	assert_int_equal(b.categories, CAT(SESSION) | CAT(ATTACHMENT) | CAT(ATTACHMENT_ITEM));
	z = encode(CODEC_ZSTD, env, &n);
	assert_int_equal(body("/api/1/envelope/", "zstd", NULL, z, n, &b), INTAKE_OK);
	assert_string_equal(b.event_id, ID1);
	assert_int_equal(b.categories, CAT(SESSION) | CAT(ATTACHMENT) | CAT(ATTACHMENT_ITEM));
	assert_int_equal(b.decoded_len, strlen(env));
	free(z);
}

static void test_opaque_bodies(void **state)
{
	struct intake_body b;

	(void)state;
	assert_int_equal(body("/api/1/minidump/", NULL, NULL, "MDMP", 4, &b), INTAKE_OK);
	assert_int_equal(b.categories, CAT(ATTACHMENT) | CAT(ATTACHMENT_ITEM) | CAT(ERROR));
	assert_true(is_hex32(b.event_id));
	assert_int_equal(body("/api/1/cron/job/" KEY "/", NULL, NULL, "", 0, &b), INTAKE_OK);
	assert_int_equal(b.categories, CAT(MONITOR));
}

/* ---- credentials ---- */

static enum intake_result auth(const char *path, const char *xsa, const char *authz, const char *query,
			       const char *b, struct auth_info *a, long *route_id, int *status)
{
	struct endpoint_match m;
	const char *why = NULL;
	enum intake_result r;

	ep_of(path, &m);
	*route_id = -99;
	/* A plain body's header line is its start: envelope_dsn reads to the first newline. */
	r = intake_auth(&m, (long)m.project_id, xsa, authz, query, b, b ? strlen(b) : 0, a, route_id, status, &why);
	if (r != INTAKE_OK) {
		assert_non_null(why);
		assert_null(strstr(why, KEY));
	}
	return r;
}

static void test_auth_carriers(void **state)
{
	struct auth_info a;
	long rid;
	int st;

	(void)state;
	assert_int_equal(auth("/api/7/store/", "Sentry sentry_key=wow, sentry_secret=vod_be, sentry_version=7", NULL,
			      "", "{}", &a, &rid, &st), INTAKE_OK);
	assert_int_equal(a.carrier, AUTH_X_SENTRY_AUTH);
	assert_string_equal(a.key, "wow");
	assert_string_equal(a.secret, "vod_be");
	assert_true(a.has_secret);
	assert_int_equal(rid, 7);

	assert_int_equal(auth("/api/7/envelope/", NULL, NULL, "sentry_key=wow&sentry_version=7", "{}\n", &a, &rid, &st),
			 INTAKE_OK);
	assert_int_equal(a.carrier, AUTH_QUERY);
	assert_false(a.has_secret);

	assert_int_equal(auth("/api/7/store/", NULL, "Sentry sentry_key=wow", "", "{}", &a, &rid, &st), INTAKE_OK);
	assert_int_equal(a.carrier, AUTH_AUTHORIZATION);

	/* two carriers, none, and a path key next to a header */
	assert_int_equal(auth("/api/7/store/", "Sentry sentry_key=wow", NULL, "sentry_key=wow", "{}", &a, &rid, &st),
			 INTAKE_UNAUTHORIZED);
	assert_int_equal(st, 401);
	assert_int_equal(auth("/api/7/store/", NULL, NULL, "", "{}", &a, &rid, &st), INTAKE_UNAUTHORIZED);
	assert_int_equal(st, 401);
	assert_int_equal(auth("/api/7/unreal/" KEY "/", "Sentry sentry_key=wow", NULL, "", "x", &a, &rid, &st),
			 INTAKE_UNAUTHORIZED);
	assert_int_equal(st, 401);
}

static void test_auth_path_key_and_envelope_dsn(void **state)
{
	const char *env = "{\"dsn\":\"http://" KEY "@relay/42\"}\n{\"type\":\"event\"}\n{}\n";
	struct endpoint_match m;
	struct auth_info a;
	struct intake_body ib;
	struct config c;
	const char *why;
	long rid;
	int st;
	size_t n;
	char *z;

	(void)state;
	assert_int_equal(auth("/api/7/unreal/" KEY "/", NULL, NULL, "", "x", &a, &rid, &st), INTAKE_OK);
	assert_int_equal(a.carrier, AUTH_PATH);
	assert_string_equal(a.key, KEY);
	assert_int_equal(rid, 7);

	/* an envelope with no other carrier: the header dsn, its project id for rule 2 */
	assert_int_equal(auth("/api/7/envelope/", NULL, NULL, "", env, &a, &rid, &st), INTAKE_OK);
	assert_int_equal(a.carrier, AUTH_ENVELOPE);
	assert_string_equal(a.key, KEY);
	assert_int_equal(rid, 42);
	assert_int_equal(auth("/api/7/envelope/", NULL, NULL, "", "{}\n", &a, &rid, &st), INTAKE_UNAUTHORIZED);
	assert_int_equal(st, 401);
	assert_int_equal(auth("/api/7/envelope/", NULL, NULL, "", "not json\n", &a, &rid, &st), INTAKE_UNAUTHORIZED);
	assert_int_equal(st, 401);

	/* the tunnel: compressed, no path id; the header line comes decoded from the body's reading */
	z = encode(CODEC_GZIP, env, &n);
	memset(&m, 0, sizeof(m));
	m.ep = endpoint_tunnel();
	c = cfg_of();
	assert_int_equal(intake_body(&c, m.ep, false, "", "gzip", "application/x-sentry-envelope", z, n, &ib), INTAKE_OK);
	assert_non_null(ib.header);
	assert_int_equal(intake_auth(&m, -1, NULL, NULL, "", ib.header, ib.header_len, &a, &rid, &st, &why), INTAKE_OK);
	intake_body_release(&ib);
	assert_int_equal(a.carrier, AUTH_ENVELOPE);
	assert_int_equal(rid, 42);
	/* undecodable: refused by the body's reading, before any credential is looked for */
	assert_int_equal(intake_body(&c, m.ep, false, "", "gzip", NULL, "junk", 4, &ib), INTAKE_CORRUPT);
	intake_reason(INTAKE_CORRUPT, &st);
	assert_int_equal(st, 400);
	free(z);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_kept_spelling),
		cmocka_unit_test(test_header_kept_only_the_carrier),
		cmocka_unit_test(test_body_checks),
		cmocka_unit_test(test_decoded_over_limit),
		cmocka_unit_test(test_store_bodies),
		cmocka_unit_test(test_raven_body),
		cmocka_unit_test(test_envelope_bodies),
		cmocka_unit_test(test_opaque_bodies),
		cmocka_unit_test(test_auth_carriers),
		cmocka_unit_test(test_auth_path_key_and_envelope_dsn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
