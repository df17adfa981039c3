/* intake.c - the pure half of ingest: kept headers, body checks, categories, event id, credentials. */
#define _GNU_SOURCE  /* strcasestr */
#include "intake.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "text.h"

#define EVENT_TYPE_MAX 32

/* One body being read: what intake_body works on. */
struct body {
	const struct endpoint *ep;
	enum codec_kind encoding;
	const char *p;
	size_t len;
	char *decoded;             /* a store body that had to be decoded (its event id is read) */
	size_t decoded_len;
	category_mask categories;
};

/* ---- headers kept for the upstream ---- */

const char *intake_header_kept(const char *name, enum auth_carrier carrier)
{
	static const char *const kept[] = {
		"Content-Type", "Content-Encoding", "User-Agent", "Origin", "Referer", "sentry-trace", "baggage",
		"Sec-CH-UA", "Sec-CH-UA-Platform", "Sec-CH-UA-Platform-Version", "Sec-CH-UA-Model", "Sec-CH-UA-Mobile",
		"Accept-Language",
	};
	int c = tolower((unsigned char)name[0]);

	if (strcasecmp(name, "X-Sentry-Auth") == 0)
		return carrier == AUTH_X_SENTRY_AUTH ? "X-Sentry-Auth" : NULL;
	if (strcasecmp(name, "Authorization") == 0)
		return carrier == AUTH_AUTHORIZATION || carrier == AUTH_BASIC ? "Authorization" : NULL;
	/* Compare only the names that start with the same letter: this runs for every header. */
	for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
		if (tolower((unsigned char)kept[i][0]) == c && strcasecmp(name, kept[i]) == 0)
			return kept[i];
	return NULL;
}

/* ---- the body: size, encoding, event id and categories ---- */

/* The decoded start of the body: the body itself when it is not encoded. */
static enum codec_result body_head(enum codec_kind encoding, const char *body, size_t len, char **tmp,
				   const char **head, size_t *headlen)
{
	enum codec_result r;

	*tmp = NULL;
	if (encoding == CODEC_IDENTITY) {
		*head = body;
		*headlen = len;
		return CODEC_OK;
	}
	r = codec_decode(encoding, body, len, ENVELOPE_HEADER_PEEK, CODEC_FIRST_LINE, tmp, headlen);
	*head = *tmp;
	return r;
}

/* raven-python and old raven-js post base64(zlib(json)) as application/octet-stream: Sentry
 * decodes it, so sentryq reads the event inside it too (its id answers the SDK). */
static bool raven_body(const struct body *b)
{
	return b->ep->kind == EP_KIND_STORE && b->encoding == CODEC_IDENTITY && b->len > 2 && b->p[0] == 'e' &&
	       b->p[1] == 'J';
}

static enum codec_result decode_raven(struct body *b, size_t limit)
{
	size_t cap = b->len / 4 * 3 + 3, n;
	unsigned char *z = malloc(cap);
	enum codec_result r = CODEC_CORRUPT;

	if (z == NULL)
		return CODEC_NOMEM;
	if (text_b64_decode(b->p, b->len, z, cap, &n) == TEXT_OK)
		r = codec_decode(CODEC_DEFLATE, (const char *)z, n, limit, CODEC_WHOLE, &b->decoded, &b->decoded_len);
	free(z);
	/* Not base64 of zlib after all: an opaque body Sentry will judge; the id is a fresh one. */
	return r == CODEC_CORRUPT ? CODEC_OK : r;
}

/* A compressed envelope: decoded once through a scratch window, measured and scanned for its
 * item types on the way. */
static enum codec_result scan_encoded_envelope(struct body *b, size_t limit)
{
	struct codec_stream *s = codec_stream_new(b->encoding, b->p, b->len, limit);
	struct envelope_scan *scan = malloc(sizeof(*scan));
	char scratch[64 * 1024];
	enum codec_result r = CODEC_NOMEM;
	size_t got;

	if (s != NULL && scan != NULL) {
		envelope_scan_init(scan);
		while ((r = codec_stream_next(s, scratch, sizeof(scratch), &got)) == CODEC_MORE || (r == CODEC_OK && got))
			envelope_scan_feed(scan, scratch, got);
		b->decoded_len = codec_stream_produced(s);
		b->categories = envelope_scan_end(scan);
	}
	codec_stream_free(s);
	free(scan);
	return r;
}

/* Decode or measure as the endpoint needs, and classify the request's data categories. */
static enum codec_result read_body(struct body *b, size_t limit)
{
	const struct endpoint *ep = b->ep;
	char type[EVENT_TYPE_MAX];
	enum codec_result r;

	if (ep->kind == EP_KIND_ENVELOPE) {
		if (b->encoding != CODEC_IDENTITY)
			return scan_encoded_envelope(b, limit);
		b->categories = envelope_categories(b->p, b->len);
		return codec_measure(CODEC_IDENTITY, b->p, b->len, limit, &b->decoded_len);
	}
	if (ep->kind != EP_KIND_STORE) {
		b->categories = ep->categories;
		return codec_measure(b->encoding, b->p, b->len, limit, &b->decoded_len);
	}
	/* A store body's event id and type are read: a compressed one is decoded once, here. */
	if (raven_body(b))
		r = decode_raven(b, limit);
	else if (b->encoding != CODEC_IDENTITY)
		r = codec_decode(b->encoding, b->p, b->len, limit, CODEC_WHOLE, &b->decoded, &b->decoded_len);
	else
		r = codec_measure(CODEC_IDENTITY, b->p, b->len, limit, &b->decoded_len);
	if (r == CODEC_OK) {
		const char *d = b->decoded != NULL ? b->decoded : b->p;
		size_t n = b->decoded != NULL ? b->decoded_len : b->len;

		b->categories = category_of_event(envelope_store_type(d, n, type, sizeof(type)) == ENVELOPE_OK ? type
														: NULL);
	}
	return r;
}

/* Cheap event id: the store body's or envelope header's own, else a fresh uuid4. */
static void pick_event_id(const struct body *b, char id[ENVELOPE_ID_LEN + 1])
{
	enum envelope_result rc = ENVELOPE_NONE;
	const char *head;
	char *tmp = NULL;
	size_t len;

	if (b->ep->reply != EP_REPLY_ID) {
		rc = ENVELOPE_NONE;
	} else if (b->ep->kind == EP_KIND_STORE) {
		if (b->decoded != NULL)
			rc = envelope_store_event_id(b->decoded, b->decoded_len, id);
		else if (b->encoding == CODEC_IDENTITY)
			rc = envelope_store_event_id(b->p, b->len, id);
	} else if (body_head(b->encoding, b->p, b->len, &tmp, &head, &len) == CODEC_OK) {
		rc = envelope_event_id(head, len, id);
	}
	free(tmp);
	if (rc != ENVELOPE_OK)
		envelope_new_id(id);
}

static bool mime_ok(const struct endpoint *ep, const char *ct)
{
	if (ep->mime == EP_MIME_ANY)
		return true;
	if (ct == NULL)
		return false;
	if (ep->mime == EP_MIME_NEL)
		return strncasecmp(ct, "application/json", 16) == 0 || strncasecmp(ct, "application/reports+json", 24) == 0;
	return strcasestr(ct, "json") != NULL || strncasecmp(ct, "application/csp-report", 22) == 0 ||
	       strncasecmp(ct, "application/expect-", 19) == 0;
}

static size_t endpoint_limit(const struct config *cfg, enum endpoint_limit l)
{
	switch (l) {
	case EP_LIMIT_EVENT: return cfg->limit_event;
	case EP_LIMIT_ENVELOPE: return cfg->limit_envelope;
	case EP_LIMIT_ATTACHMENT: return cfg->limit_attachment;
	case EP_LIMIT_ATTACHMENTS: return cfg->limit_attachments;
	}
	return cfg->limit_event;
}

/* Size, encoding and type checks; the decoded size is measured, never trusted (zip bombs get 413). */
enum intake_result intake_body(const struct config *cfg, const struct endpoint *ep, const char *content_encoding,
			       const char *content_type, const char *body, size_t len, struct intake_body *out)
{
	struct body b = { .ep = ep, .p = body, .len = len };
	enum codec_result rc;

	memset(out, 0, sizeof(*out));
	if (len > cfg->max_body_size)
		return INTAKE_TOO_LARGE;
	if (len == 0 && ep->body == EP_BODY_REQUIRED)
		return INTAKE_EMPTY;
	b.encoding = codec_from_name(content_encoding);
	if (b.encoding == CODEC_UNKNOWN)
		return INTAKE_BAD_ENCODING;
	if (!mime_ok(ep, content_type))
		return INTAKE_BAD_TYPE;
	rc = read_body(&b, endpoint_limit(cfg, ep->limit));
	if (rc == CODEC_OK) {
		out->encoding = b.encoding;
		out->decoded_len = b.decoded_len;
		out->categories = b.categories;
		pick_event_id(&b, out->event_id);
	}
	free(b.decoded);
	switch (rc) {
	case CODEC_OK: return INTAKE_OK;
	case CODEC_TOO_LARGE: return INTAKE_OVER_LIMIT;
	case CODEC_NOMEM: return INTAKE_NOMEM;
	case CODEC_MORE:
	case CODEC_CORRUPT: break;
	}
	return INTAKE_CORRUPT;
}

const char *intake_reason(enum intake_result r, int *status)
{
	switch (r) {
	case INTAKE_OK: *status = 200; return "";
	case INTAKE_TOO_LARGE: *status = 413; return "request body exceeds listen.max_body_size";
	case INTAKE_EMPTY: *status = 400; return "empty request body";
	case INTAKE_BAD_ENCODING: *status = 415; return "unsupported Content-Encoding";
	case INTAKE_BAD_TYPE: *status = 415; return "unsupported Content-Type for this endpoint";
	case INTAKE_OVER_LIMIT: *status = 413; return "request body exceeds the endpoint's size limit (limits.*)";
	case INTAKE_CORRUPT: *status = 400; return "invalid body: cannot decode Content-Encoding";
	case INTAKE_UNAUTHORIZED: *status = 401; return "missing authorization information";
	case INTAKE_NOMEM: break;
	}
	*status = 503;
	return "out of memory";
}

/* ---- credentials ---- */

/* No request carrier, no path key: the envelope header dsn is the credential (the tunnel). */
static enum intake_result envelope_auth(enum codec_kind encoding, const char *body, size_t len,
					struct auth_info *auth, long *route_id, int *status, const char **why)
{
	enum envelope_result rc;
	const char *head;
	char *tmp;
	size_t hlen;

	if (body_head(encoding, body, len, &tmp, &head, &hlen) != CODEC_OK) {
		free(tmp);
		*status = 400;
		*why = "invalid body: cannot decode Content-Encoding";
		return INTAKE_UNAUTHORIZED;
	}
	rc = envelope_dsn(head, hlen, auth->key, sizeof(auth->key), route_id);
	free(tmp);
	if (rc != ENVELOPE_OK) {
		*status = 401;
		*why = rc == ENVELOPE_NONE ? "missing authorization information" : "bad envelope authentication header";
		return INTAKE_UNAUTHORIZED;
	}
	auth->carrier = AUTH_ENVELOPE;
	auth->version = 7;
	return INTAKE_OK;
}

/* Credentials: one request carrier, the key segment of unreal/cron paths, or the envelope header dsn. */
enum intake_result intake_auth(const struct endpoint_match *m, long path_id, const char *x_sentry_auth,
			       const char *authorization, const char *query, enum codec_kind encoding,
			       const char *body, size_t len, struct auth_info *auth, long *route_id, int *status,
			       const char **why)
{
	bool none_ok = m->ep->kind == EP_KIND_ENVELOPE || m->path_key[0] != '\0';

	if (auth_from_request(x_sentry_auth, authorization, query, none_ok, auth, status, why) != 0)
		return INTAKE_UNAUTHORIZED;
	*route_id = path_id;
	if (m->path_key[0] != '\0') {
		if (auth->carrier != AUTH_NONE) {
			*status = 401;
			*why = "multiple authorization payloads detected";
			return INTAKE_UNAUTHORIZED;
		}
		auth->carrier = AUTH_PATH;
		auth->version = 7;
		snprintf(auth->key, sizeof(auth->key), "%s", m->path_key);
	}
	if (auth->carrier != AUTH_NONE)
		return INTAKE_OK;
	return envelope_auth(encoding, body, len, auth, route_id, status, why);
}
