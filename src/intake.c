/* intake.c - the pure half of ingest: kept headers, the checks before the body, the raven body,
 * event id, categories, credentials. */
#define _GNU_SOURCE  /* strcasestr */
#include "intake.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "text.h"

#define EVENT_TYPE_MAX 32

/* ---- headers kept for the upstream ---- */

const char *intake_header_kept(const struct config *cfg, const char *name, enum auth_carrier carrier)
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
	for (size_t i = 0; cfg != NULL && i < cfg->forward_headers.n; i++)
		if (strcasecmp(name, cfg->forward_headers.v[i]) == 0)
			return cfg->forward_headers.v[i];
	return NULL;
}

/* ---- before the body ---- */

size_t intake_limit(const struct config *cfg, const struct endpoint *ep)
{
	switch (ep->limit) {
	case EP_LIMIT_OWN: return ep->limit_bytes;
	case EP_LIMIT_EVENT: return cfg->limit_event;
	case EP_LIMIT_ENVELOPE: return cfg->limit_envelope;
	case EP_LIMIT_ATTACHMENT: return cfg->limit_attachment;
	case EP_LIMIT_ATTACHMENTS: return cfg->limit_attachments;
	}
	return cfg->limit_event;
}

/* ct names exactly the media type type, parameters aside. A prefix match would take
 * "application/jsonl" for "application/json": Sentry answers such a request 415, so queued it
 * would only become a dead letter while the client was told it was accepted. */
static bool media_type_is(const char *ct, const char *type)
{
	size_t n = strlen(type);

	return strncasecmp(ct, type, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t');
}

static bool mime_ok(const struct endpoint *ep, const char *ct)
{
	if (ep->mime == EP_MIME_ANY)
		return true;
	if (ct == NULL)
		return false;
	if (ep->mime == EP_MIME_NEL)
		return media_type_is(ct, "application/json") || media_type_is(ct, "application/reports+json");
	if (ep->mime == EP_MIME_OTLP)
		return media_type_is(ct, "application/json") || media_type_is(ct, "application/x-protobuf");
	return strcasestr(ct, "json") != NULL || strncasecmp(ct, "application/csp-report", 22) == 0 ||
	       strncasecmp(ct, "application/expect-", 19) == 0;
}

/* A store request without its event: POST with no body, GET with no sentry_data. Sentry answers
 * 400 "empty request body"; queued, it would only become a dead letter. */
static bool store_without_event(const struct endpoint *ep, bool get, const char *q)
{
	const char *d;

	if (ep->kind != EP_KIND_STORE)
		return false;
	if (!get)
		return true;
	for (d = q; (d = strstr(d, "sentry_data=")) != NULL; d += 12)
		if ((d == q || d[-1] == '&' || d[-1] == '?') && d[12] != '\0' && d[12] != '&')
			return false;
	return true;
}

enum intake_result intake_check(const struct config *cfg, const struct endpoint *ep, bool get, const char *query,
				const char *content_encoding, const char *content_type, size_t len,
				enum codec_kind *encoding)
{
	if (len > cfg->max_body_size)
		return INTAKE_TOO_LARGE;
	if (len == 0 && (ep->body == EP_BODY_REQUIRED || store_without_event(ep, get, query)))
		return INTAKE_EMPTY;
	*encoding = codec_from_name(content_encoding);
	if (*encoding == CODEC_UNKNOWN)
		return INTAKE_BAD_ENCODING;
	if (!mime_ok(ep, content_type))
		return INTAKE_BAD_TYPE;
	return INTAKE_OK;
}

/* ---- the body ---- */

enum intake_result intake_raven(const struct endpoint *ep, enum codec_kind encoding, const char *body, size_t len,
				size_t limit, char **decoded, size_t *decoded_len)
{
	size_t cap = len / 4 * 3 + 3, n;
	unsigned char *z;
	enum codec_result r = CODEC_CORRUPT;

	*decoded = NULL;
	*decoded_len = 0;
	if (ep->kind != EP_KIND_STORE || encoding != CODEC_IDENTITY || len <= 2 || body[0] != 'e' || body[1] != 'J')
		return INTAKE_OK;
	/* bounded by limits.max_event_size (1 MiB): one step of work */
	if ((z = malloc(cap)) == NULL)
		return INTAKE_NOMEM;
	if (text_b64_decode(body, len, z, cap, &n) == TEXT_OK)
		r = codec_decode(CODEC_DEFLATE, (const char *)z, n, limit, CODEC_WHOLE, decoded, decoded_len);
	free(z);
	/* Not base64 of zlib after all: an opaque body Sentry will judge; the id is a fresh one. */
	if (r == CODEC_TOO_LARGE)
		return INTAKE_OVER_LIMIT;
	return r == CODEC_NOMEM ? INTAKE_NOMEM : INTAKE_OK;
}

enum intake_result intake_of_bodyjob(enum bodyjob_result r, const struct endpoint *ep, enum codec_kind encoding)
{
	switch (r) {
	case BODYJOB_DONE:
	case BODYJOB_NONE:
	case BODYJOB_MORE: return INTAKE_OK;
	case BODYJOB_TOO_LARGE: return INTAKE_OVER_LIMIT;
	case BODYJOB_NOMEM: return INTAKE_NOMEM;
	case BODYJOB_CORRUPT: break;
	}
	return ep->kind == EP_KIND_ENVELOPE && encoding == CODEC_IDENTITY ? INTAKE_BAD_ENVELOPE : INTAKE_CORRUPT;
}

category_mask intake_categories(const struct endpoint *ep, const char *raven, size_t raven_len,
				const struct bodyjob *job)
{
	char type[EVENT_TYPE_MAX];

	if (raven != NULL)  /* the event is inside: its type says what it is */
		return category_of_event(envelope_store_type(raven, raven_len, type, sizeof(type)) == ENVELOPE_OK ? type
													      : NULL);
	return ep->kind == EP_KIND_OPAQUE ? ep->categories : bodyjob_categories(job);
}

void intake_event_id(const struct endpoint *ep, const char *raven, size_t raven_len, const struct bodyjob *job,
		     char id[ENVELOPE_ID_LEN + 1])
{
	int rc = -1;

	if (ep->reply == EP_REPLY_ID && raven != NULL)
		rc = envelope_store_event_id(raven, raven_len, id) == ENVELOPE_OK ? 0 : -1;
	else if (ep->reply == EP_REPLY_ID)
		rc = bodyjob_event_id(job, id);
	if (rc != 0)
		envelope_new_id(id);
}

static enum intake_result run_job(struct bodyjob *job, const struct endpoint *ep, enum codec_kind encoding)
{
	enum bodyjob_result r;

	if (job == NULL)
		return INTAKE_NOMEM;
	while ((r = bodyjob_step(job)) == BODYJOB_MORE)
		;
	return intake_of_bodyjob(r, ep, encoding);
}

enum intake_result intake_body(const struct config *cfg, const struct endpoint *ep, bool get, const char *query,
			       const char *content_encoding, const char *content_type, const char *body, size_t len,
			       struct intake_body *out)
{
	size_t limit = intake_limit(cfg, ep), hlen, raven_len;
	char *raven = NULL;
	struct bodyjob *job;
	const char *head;
	enum intake_result r;

	memset(out, 0, sizeof(*out));
	if ((r = intake_check(cfg, ep, get, query, content_encoding, content_type, len, &out->encoding)) != INTAKE_OK ||
	    (r = intake_raven(ep, out->encoding, body, len, limit, &raven, &raven_len)) != INTAKE_OK)
		return r;
	job = bodyjob_new(ep->kind, out->encoding, body, len, limit);
	if ((r = run_job(job, ep, out->encoding)) == INTAKE_OK) {
		out->decoded_len = raven != NULL ? raven_len : bodyjob_decoded_len(job);
		out->categories = intake_categories(ep, raven, raven_len, job);
		intake_event_id(ep, raven, raven_len, job, out->event_id);
		head = bodyjob_header(job, &hlen);
		if (hlen > 0 && (out->header = malloc(hlen)) == NULL)
			r = INTAKE_NOMEM;
		else if (hlen > 0)
			memcpy(out->header, head, hlen), out->header_len = hlen;
	}
	bodyjob_free(job);
	free(raven);
	return r;
}

void intake_body_release(struct intake_body *out)
{
	free(out->header);
	out->header = NULL;
	out->header_len = 0;
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
	case INTAKE_BAD_ENVELOPE: *status = 400; return "invalid envelope: header line too long";
	case INTAKE_UNAUTHORIZED: *status = 401; return "missing authorization information";
	case INTAKE_NOMEM: break;
	}
	*status = 503;
	return "out of memory";
}

/* ---- credentials ---- */

/* No request carrier, no path key: the envelope header dsn is the credential (the tunnel). */
static enum intake_result envelope_auth(const char *head, size_t hlen, struct auth_info *auth, long *route_id,
					int *status, const char **why)
{
	enum envelope_result rc = envelope_dsn(head != NULL ? head : "", head != NULL ? hlen : 0, auth->key,
					       sizeof(auth->key), route_id);

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
			       const char *authorization, const char *query, const char *head, size_t head_len,
			       struct auth_info *auth, long *route_id, int *status, const char **why)
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
	return envelope_auth(head, head_len, auth, route_id, status, why);
}
