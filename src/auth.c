/* auth.c - parse Sentry credentials from every carrier an SDK uses, and rewrite them in place. */
#include "auth.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "text.h"

#define SENTRY_PROTOCOL_VERSION 7
#define NAME_MAX_DECODED 32   /* longer parameter names cannot be one of ours */
#define VERSION_MAX 32

enum field { F_KEY = 0, F_SECRET, F_VERSION, F_OTHER };

/* One key=value item of a header or query, as offsets into the source string. */
struct item {
	size_t start, end;     /* the item (trimmed in a header) */
	size_t name_s, name_e;
	size_t val_s, val_e;   /* inside quotes when quoted; empty when there is no '=' */
	int has_eq;
};

/* The credential fields as sent (spans into the source), checked only once all are seen
 * so that 401 causes win over 400 causes as in Relay (parse first, validate after). */
struct raw_auth {
	const char *v[3];
	size_t n[3];
	unsigned seen;
	int dup;
	int decode;            /* query values are percent-encoded */
};

struct buf {
	char *p;
	size_t len, cap;
	int oom;
};

static int is_ws(char c)
{
	return c == ' ' || c == '\t';
}

/* Length of "<word><whitespace>" at the start of value (case-insensitive), 0 when absent. */
static size_t scheme_len(const char *value, const char *word)
{
	size_t i = 0, wl = strlen(word);

	while (is_ws(value[i]))
		i++;
	if (strncasecmp(value + i, word, wl) != 0 || !is_ws(value[i + wl]))
		return 0;
	i += wl;
	while (is_ws(value[i]))
		i++;
	return i;
}

/* Decoded length, or -1 when dst is too small (dst then holds the truncated prefix). */
static ssize_t url_decode(const char *src, size_t len, char *dst, size_t dstlen)
{
	size_t i = 0, o = 0;

	if (dstlen == 0)
		return -1;
	while (i < len) {
		char c = src[i];

		if (c == '%' && i + 2 < len && text_hexval(src[i + 1]) >= 0 && text_hexval(src[i + 2]) >= 0) {
			c = (char)(text_hexval(src[i + 1]) * 16 + text_hexval(src[i + 2]));
			i += 3;
		} else {
			if (c == '+')
				c = ' ';
			i++;
		}
		if (o + 1 >= dstlen) {
			dst[o] = '\0';
			return -1;
		}
		dst[o++] = c;
	}
	dst[o] = '\0';
	return (ssize_t)o;
}

/* Next non-empty item at or after *pos in s[0..len), split on sep; 0 at the end. */
static int next_item(const char *s, size_t len, size_t *pos, char sep, int trim, struct item *it)
{
	while (*pos < len) {
		size_t a = *pos, b = a, eq;

		while (b < len && s[b] != sep)
			b++;
		*pos = b + 1;
		while (trim && a < b && is_ws(s[a]))
			a++;
		while (trim && b > a && is_ws(s[b - 1]))
			b--;
		if (a == b)
			continue;
		for (eq = a; eq < b && s[eq] != '='; eq++)
			;
		it->start = a;
		it->end = b;
		it->name_s = a;
		it->name_e = eq;
		while (trim && it->name_e > a && is_ws(s[it->name_e - 1]))
			it->name_e--;
		it->has_eq = eq < b;
		it->val_s = it->has_eq ? eq + 1 : b;
		it->val_e = b;
		while (trim && it->val_s < b && is_ws(s[it->val_s]))
			it->val_s++;
		/* Tolerate quoted values: the quotes are syntax, not part of the credential. */
		if (trim && it->val_e - it->val_s >= 2 && s[it->val_s] == '"' && s[it->val_e - 1] == '"') {
			it->val_s++;
			it->val_e--;
		}
		return 1;
	}
	return 0;
}

static enum field field_by_name(const char *name, size_t n)
{
	static const char *const names[] = { "sentry_key", "sentry_secret", "sentry_version" };

	for (int f = F_KEY; f < F_OTHER; f++) {
		if (strlen(names[f]) == n && memcmp(name, names[f], n) == 0)
			return (enum field)f;
	}
	return F_OTHER;
}

/* Query parameter names are percent-encoded like the values. */
static enum field item_field(const char *s, const struct item *it, int query)
{
	char name[NAME_MAX_DECODED];
	ssize_t n;

	if (!query)
		return field_by_name(s + it->name_s, it->name_e - it->name_s);
	n = url_decode(s + it->name_s, it->name_e - it->name_s, name, sizeof(name));
	if (n < 0)
		return F_OTHER;
	return field_by_name(name, (size_t)n);
}

/*
 * A repeated sentry_key or sentry_secret is rejected (401 "duplicated auth field"): Sentry
 * parsers differ (last wins in some versions, first in others), and a relay that picked one
 * while the rewrite touched another could route and forward different credentials.
 * A repeated sentry_version keeps the first one; it selects nothing.
 */
static void collect(struct raw_auth *ra, const char *s, const struct item *it, int query)
{
	enum field f = item_field(s, it, query);
	size_t vs = it->val_s, ve = it->val_e;

	if (f == F_OTHER)
		return;
	if (ra->seen & (1u << f)) {
		if (f != F_VERSION)
			ra->dup = 1;
		return;
	}
	if (!query) {
		/* Sentry's header parser takes the text between the first and second '='. */
		const char *eq = memchr(s + vs, '=', ve - vs);

		if (eq != NULL)
			ve = (size_t)(eq - s);
		while (ve > vs && is_ws(s[ve - 1]))
			ve--;
	}
	ra->seen |= 1u << f;
	ra->v[f] = s + vs;
	ra->n[f] = ve - vs;
}

/* Copy (and decode) a value; -1 when it does not fit or hides a NUL. */
static int take_value(const struct raw_auth *ra, enum field f, char *dst, size_t dstlen)
{
	ssize_t n;

	if (!ra->decode) {
		if (ra->n[f] >= dstlen || memchr(ra->v[f], '\0', ra->n[f]) != NULL)
			return -1;
		memcpy(dst, ra->v[f], ra->n[f]);
		dst[ra->n[f]] = '\0';
		return 0;
	}
	n = url_decode(ra->v[f], ra->n[f], dst, dstlen);
	if (n < 0 || strlen(dst) != (size_t)n)
		return -1;
	return 0;
}

/* Integer part before the first '.', as Relay reads it (u16); -1 when unparsable. */
static int parse_version(const char *v)
{
	long n = 0;
	size_t i;

	for (i = 0; v[i] != '\0' && v[i] != '.'; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (v[i] - '0');
		if (n > UINT16_MAX)
			return -1;
	}
	return i == 0 ? -1 : (int)n;
}

/* Key rules: Sentry wants 32 chars, but our users' DSN keys are relay-side upstream names. */
static int key_valid(const char *k)
{
	if (*k == '\0')
		return 0;
	for (; *k != '\0'; k++) {
		if ((unsigned char)*k <= 0x20 || (unsigned char)*k >= 0x7f)
			return 0;
	}
	return 1;
}

static int fail(const char **why, const char *msg, int status)
{
	*why = msg;
	return status;
}

/* sentry_version as sent; a truncated copy still parses when its '.' survived. */
static int take_version(const struct raw_auth *ra)
{
	char ver[VERSION_MAX];
	size_t n = ra->n[F_VERSION] < sizeof(ver) - 1 ? ra->n[F_VERSION] : sizeof(ver) - 1;

	if (ra->decode) {
		(void)url_decode(ra->v[F_VERSION], ra->n[F_VERSION], ver, sizeof(ver));
	} else {
		memcpy(ver, ra->v[F_VERSION], n);
		ver[n] = '\0';
	}
	return parse_version(ver);
}

/* Check and store the collected fields; 0, 400 or 401 (401 causes first, as Relay). */
static int finish(const struct raw_auth *ra, struct auth_info *out, const char **why)
{
	out->version = SENTRY_PROTOCOL_VERSION;
	if (ra->dup)
		return fail(why, "duplicated auth field", 401);
	if (!(ra->seen & (1u << F_KEY)))
		return fail(why, "missing sentry_key", 401);
	if (ra->seen & (1u << F_VERSION)) {
		out->version = take_version(ra);
		if (out->version < 0)
			return fail(why, "invalid sentry_version", 401);
	}
	if (take_value(ra, F_KEY, out->key, sizeof(out->key)) < 0 || !key_valid(out->key))
		return fail(why, "bad sentry DSN public key", 400);
	if ((ra->seen & (1u << F_SECRET)) &&
	    take_value(ra, F_SECRET, out->secret, sizeof(out->secret)) < 0)
		return fail(why, "bad sentry DSN secret", 400);
	out->has_secret = out->secret[0] != '\0';
	if (out->version > SENTRY_PROTOCOL_VERSION)
		return fail(why, "unsupported sentry_version", 400);
	return 0;
}

static void info_reset(struct auth_info *out, enum auth_carrier carrier)
{
	memset(out, 0, sizeof(*out));
	out->carrier = carrier;
	out->version = SENTRY_PROTOCOL_VERSION;
}

static int parse_header(const char *value, struct auth_info *out, const char **why)
{
	struct raw_auth ra = { 0 };
	struct item it;
	size_t len = strlen(value), pos = scheme_len(value, "sentry");

	info_reset(out, AUTH_X_SENTRY_AUTH);
	if (pos == 0)
		return fail(why, "not a Sentry authorization header", 401);
	while (next_item(value, len, &pos, ',', 1, &it))
		collect(&ra, value, &it, 0);
	return finish(&ra, out, why);
}

static int parse_query(const char *query, struct auth_info *out, const char **why)
{
	struct raw_auth ra = { .decode = 1 };
	struct item it;
	size_t len = strlen(query), pos = query[0] == '?';

	info_reset(out, AUTH_QUERY);
	while (next_item(query, len, &pos, '&', 0, &it))
		collect(&ra, query, &it, 1);
	return finish(&ra, out, why);
}

static int parse_basic(const char *value, struct auth_info *out, const char **why)
{
	unsigned char dec[2 * AUTH_FIELD_MAX + 2];
	struct raw_auth ra = { 0 };
	size_t pos = scheme_len(value, "basic");
	const unsigned char *colon;
	enum text_result tr;
	size_t n;

	info_reset(out, AUTH_BASIC);
	if (pos == 0)
		return fail(why, "not a Basic authorization header", 401);
	tr = text_b64_decode(value + pos, strlen(value + pos), dec, sizeof(dec), &n);
	if (tr == TEXT_TOO_LONG)
		return fail(why, "bad sentry DSN public key", 400);
	if (tr != TEXT_OK)
		return fail(why, "invalid basic authorization", 401);
	/* Only the part before ':' is the key (Relay); the rest is the optional secret. */
	colon = memchr(dec, ':', n);
	ra.seen = 1u << F_KEY;
	ra.v[F_KEY] = (const char *)dec;
	ra.n[F_KEY] = colon != NULL ? (size_t)(colon - dec) : n;
	if (colon != NULL) {
		ra.seen |= 1u << F_SECRET;
		ra.v[F_SECRET] = (const char *)colon + 1;
		ra.n[F_SECRET] = n - ra.n[F_KEY] - 1;
	}
	return finish(&ra, out, why);
}

int auth_from_request(const char *x_sentry_auth, const char *authorization, const char *query,
		      bool none_ok, struct auth_info *out, int *status, const char **why)
{
	enum auth_carrier found = AUTH_NONE;
	int carriers = 0, rc = 0;

	info_reset(out, AUTH_NONE);
	if (x_sentry_auth != NULL && scheme_len(x_sentry_auth, "sentry") > 0) {
		found = AUTH_X_SENTRY_AUTH;
		carriers++;
	}
	if (authorization != NULL && scheme_len(authorization, "sentry") > 0) {
		found = AUTH_AUTHORIZATION;
		carriers++;
	} else if (authorization != NULL && scheme_len(authorization, "basic") > 0) {
		found = AUTH_BASIC;
		carriers++;
	}
	/* Relay counts the query on any "sentry_" substring, e.g. a lone sentry_release. */
	if (query != NULL && strstr(query, "sentry_") != NULL) {
		found = AUTH_QUERY;
		carriers++;
	}
	if (carriers > 1)
		rc = fail(why, "multiple authorization payloads detected", 401);
	else if (found == AUTH_X_SENTRY_AUTH)
		rc = parse_header(x_sentry_auth, out, why);
	else if (found == AUTH_AUTHORIZATION)
		rc = parse_header(authorization, out, why);
	else if (found == AUTH_BASIC)
		rc = parse_basic(authorization, out, why);
	else if (found == AUTH_QUERY)
		rc = parse_query(query, out, why);
	else if (!none_ok)
		rc = fail(why, "missing authorization information", 401);
	if (rc != 0) {
		*status = rc;
		return -1;
	}
	out->carrier = found;
	return 0;
}

static void buf_add(struct buf *b, const char *p, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char *np;

		while (cap < b->len + n + 1)
			cap *= 2;
		np = realloc(b->p, cap);
		if (np == NULL) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Query values keep RFC 3986 unreserved characters and encode everything else. */
static void buf_add_encoded(struct buf *b, const char *v)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *v != '\0'; v++) {
		unsigned char c = (unsigned char)*v;
		char esc[3] = { '%', hex[c >> 4], hex[c & 15] };

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~')
			buf_add(b, (const char *)v, 1);
		else
			buf_add(b, esc, 3);
	}
}

static char *buf_finish(struct buf *b)
{
	if (b->oom || b->p == NULL) {
		free(b->p);
		return b->oom ? NULL : strdup("");
	}
	return b->p;
}

/* The item with its value swapped; everything around the value stays as it was. */
static void emit_item(struct buf *b, const char *s, const struct item *it, enum field f, const char *val,
		      int query)
{
	static const char *const names[] = { "sentry_key=", "sentry_secret=" };

	if (val == NULL) {
		buf_add(b, s + it->start, it->end - it->start);
		return;
	}
	/* A query parameter gets its name as Sentry spells it: Sentry reads the query only when it
	 * holds "sentry_" as such, and a percent-encoded "sentry%5Fkey" whose plain "sentry_" was the
	 * dropped secret's would leave it without credentials (found by fuzz_auth). */
	if (query) {
		buf_add(b, names[f], strlen(names[f]));
		buf_add_encoded(b, val);
		return;
	}
	buf_add(b, s + it->start, it->val_s - it->start);
	if (!it->has_eq)
		buf_add(b, "=", 1);
	buf_add(b, val, strlen(val));
	buf_add(b, s + it->val_e, it->end - it->val_e);
}

/*
 * Rewrite sentry_key / sentry_secret in a header (sep ',') or query (sep '&'). A dropped
 * item takes the separator before it with it, or the one after it when it came first.
 */
static char *rewrite(const char *s, size_t pos, char sep, int query, const char *new_key,
		     const char *new_secret)
{
	struct buf b = { 0 };
	size_t len = strlen(s), prev_end = pos;
	int emitted = 0, first = 1;
	struct item it;

	buf_add(&b, s, pos);
	while (next_item(s, len, &pos, sep, !query, &it)) {
		enum field f = item_field(s, &it, query);

		if (f == F_SECRET && new_secret == NULL) {
			prev_end = it.end;
			first = 0;
			continue;
		}
		if (emitted || first)
			buf_add(&b, s + prev_end, it.start - prev_end);
		emit_item(&b, s, &it, f, f == F_KEY ? new_key : f == F_SECRET ? new_secret : NULL, query);
		emitted = 1;
		first = 0;
		prev_end = it.end;
	}
	buf_add(&b, s + prev_end, len - prev_end);
	return buf_finish(&b);
}

char *auth_rewrite_header(const char *value, const char *new_key, const char *new_secret)
{
	size_t pos = scheme_len(value, "sentry");

	if (pos == 0)
		return strdup(value);
	return rewrite(value, pos, ',', 0, new_key, new_secret);
}

char *auth_rewrite_query(const char *query, const char *new_key, const char *new_secret)
{
	return rewrite(query, query[0] == '?', '&', 1, new_key, new_secret);
}

char *auth_rewrite_basic(const char *new_key, const char *new_secret)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t kl = strlen(new_key), sl = new_secret ? strlen(new_secret) : 0;
	size_t n = kl + 1 + sl, o = 6, i;
	unsigned char *raw = malloc(n + 1);
	char *out = raw ? malloc(6 + 4 * (n / 3 + 1) + 1) : NULL;

	if (out == NULL) {
		free(raw);
		return NULL;
	}
	memcpy(raw, new_key, kl);
	raw[kl] = ':';
	memcpy(raw + kl + 1, new_secret ? new_secret : "", sl);
	memcpy(out, "Basic ", 6);
	for (i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)raw[i] << 16;

		v |= i + 1 < n ? (uint32_t)raw[i + 1] << 8 : 0;
		v |= i + 2 < n ? raw[i + 2] : 0;
		out[o++] = tbl[(v >> 18) & 63];
		out[o++] = tbl[(v >> 12) & 63];
		out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? tbl[v & 63] : '=';
	}
	out[o] = '\0';
	free(raw);
	return out;
}
