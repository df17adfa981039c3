/* intake.h - what ingest reads from an SDK request before it queues it (pure): the headers kept for
 * the upstream, the checks before any body work (sizes, Content-Encoding, MIME type, an empty
 * store), the raven body, the event id and the credentials from every carrier (the request's own,
 * a path key, the envelope header dsn). The body itself is read by bodyjob.h, a bounded step at a
 * time. ingest applies all of it to HTTP requests, legacyq to the records the old pipeline left in
 * Redis (intake_body runs the whole of it at once): both queue the same entry for the same request. */
#ifndef SENTRYQ_INTAKE_H
#define SENTRYQ_INTAKE_H

#include <stdbool.h>
#include <stddef.h>

#include "auth.h"
#include "bodyjob.h"
#include "category.h"
#include "codec.h"
#include "endpoint.h"
#include "envelope.h"

struct config;

/* Every intake call answers with one of these; each prototype says which it gives. */
enum intake_result {
	INTAKE_OK = 0,
	INTAKE_TOO_LARGE,      /* the body is over listen.max_body_size: 413 */
	INTAKE_EMPTY,          /* the endpoint needs a body (or a store its event) and has none: 400 */
	INTAKE_BAD_ENCODING,   /* a Content-Encoding sentryq does not know: 415 */
	INTAKE_BAD_TYPE,       /* a Content-Type the endpoint refuses (security, nel, otlp): 415 */
	INTAKE_OVER_LIMIT,     /* over the endpoint's limits.* size once decoded: 413 */
	INTAKE_CORRUPT,        /* not decodable in its Content-Encoding: 400 */
	INTAKE_BAD_ENVELOPE,   /* a plain envelope whose header line is too long: 400 */
	INTAKE_UNAUTHORIZED,   /* missing, ambiguous or bad credentials: 400 or 401, as intake_auth says */
	INTAKE_NOMEM,          /* 503 */
};

/* The spelling a header kept for the upstream is listed under ("Content-Type" for "content-type";
 * a forward.headers name as the config writes it), or NULL when it is not kept. X-Sentry-Auth and
 * Authorization are kept only when they are the request's credential carrier (they are rewritten
 * there). cfg NULL: the built-in list only. */
const char *intake_header_kept(const struct config *cfg, const char *name, enum auth_carrier carrier);

/* The endpoint's decoded size limit (its limits.* value, or its own). */
size_t intake_limit(const struct config *cfg, const struct endpoint *ep);

/*
 * The checks before any body work, in ingest's order: listen.max_body_size, an empty body where
 * one is needed (a store request without its event: POST with none, GET without sentry_data), the
 * Content-Encoding, the MIME type. content_encoding and content_type are the header values, NULL
 * when absent. INTAKE_OK with *encoding, or INTAKE_TOO_LARGE, INTAKE_EMPTY, INTAKE_BAD_ENCODING,
 * INTAKE_BAD_TYPE.
 */
enum intake_result intake_check(const struct config *cfg, const struct endpoint *ep, bool get, const char *query,
				const char *content_encoding, const char *content_type, size_t len,
				enum codec_kind *encoding);

/* raven-python and old raven-js post base64(zlib(json)) as application/octet-stream: the event
 * inside is decoded (*decoded, malloc'd; NULL when the body is not one) to read its id. INTAKE_OK,
 * INTAKE_OVER_LIMIT or INTAKE_NOMEM. */
enum intake_result intake_raven(const struct endpoint *ep, enum codec_kind encoding, const char *body, size_t len,
				size_t limit, char **decoded, size_t *decoded_len);

/* What a finished bodyjob phase means: INTAKE_OK for BODYJOB_DONE (and NONE), else the refusal. */
enum intake_result intake_of_bodyjob(enum bodyjob_result r, const struct endpoint *ep, enum codec_kind encoding);

/* After the body was read: its data categories, and the event id the answer carries (a raven
 * body's, the store body's or envelope header's own, else a fresh uuid4). */
category_mask intake_categories(const struct endpoint *ep, const char *raven, size_t raven_len,
				const struct bodyjob *job);
void intake_event_id(const struct endpoint *ep, const char *raven, size_t raven_len, const struct bodyjob *job,
		     char id[ENVELOPE_ID_LEN + 1]);

/*
 * The request's credentials: X-Sentry-Auth, Authorization or the query (auth_from_request); for a
 * matched path with a {key} segment that key (AUTH_PATH; a second carrier is 401); for an envelope
 * with no other carrier the envelope header's dsn (AUTH_ENVELOPE), read from `head`, the decoded
 * header line (bodyjob_header). path_id is the /api/<id>/ id (-1 for the tunnel). INTAKE_OK with
 * *auth and *route_id (the id routing rule 2 looks at) set, or INTAKE_UNAUTHORIZED with *status
 * (400, 401) and *why (static, never holding a credential).
 */
enum intake_result intake_auth(const struct endpoint_match *m, long path_id, const char *x_sentry_auth,
			       const char *authorization, const char *query, const char *head, size_t head_len,
			       struct auth_info *auth, long *route_id, int *status, const char **why);

/* The whole of it at once, for a body already in memory (the legacy drain): intake_check, the
 * raven body, bodyjob run to its end. */
struct intake_body {
	enum codec_kind encoding;
	size_t decoded_len;                  /* after Content-Encoding (what the limit is checked on) */
	category_mask categories;
	char event_id[ENVELOPE_ID_LEN + 1];
	char *header;                        /* the decoded envelope header line (malloc'd), or NULL */
	size_t header_len;
};
/* INTAKE_OK with *out filled (release it with intake_body_release), or a refusal. */
enum intake_result intake_body(const struct config *cfg, const struct endpoint *ep, bool get, const char *query,
			       const char *content_encoding, const char *content_type, const char *body, size_t len,
			       struct intake_body *out);
void intake_body_release(struct intake_body *out);

/* The answer ingest gives for a refusal: the status into *status, the detail returned (static
 * text). INTAKE_OK gives 200 and "". */
const char *intake_reason(enum intake_result r, int *status);

#endif
