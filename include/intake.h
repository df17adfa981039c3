/* intake.h - what ingest reads from an SDK request before it queues it (pure): the headers kept for
 * the upstream, the body checks (sizes, Content-Encoding, MIME type) with the data categories and
 * the event id read on the way, and the credentials from every carrier (the request's own, a path
 * key, the envelope header dsn). ingest applies it to HTTP requests, legacyq to the records the old
 * pipeline left in Redis: both queue the same entry for the same request. */
#ifndef SENTRYQ_INTAKE_H
#define SENTRYQ_INTAKE_H

#include <stddef.h>

#include "auth.h"
#include "category.h"
#include "codec.h"
#include "endpoint.h"
#include "envelope.h"

struct config;

/* Every intake call answers with one of these; each prototype says which it gives. */
enum intake_result {
	INTAKE_OK = 0,
	INTAKE_TOO_LARGE,      /* the body is over listen.max_body_size: 413 */
	INTAKE_EMPTY,          /* the endpoint needs a body and it is empty: 400 */
	INTAKE_BAD_ENCODING,   /* a Content-Encoding sentryq does not know: 415 */
	INTAKE_BAD_TYPE,       /* a Content-Type the endpoint refuses (security, nel): 415 */
	INTAKE_OVER_LIMIT,     /* over the endpoint's limits.* size once decoded: 413 */
	INTAKE_CORRUPT,        /* not decodable in its Content-Encoding: 400 */
	INTAKE_UNAUTHORIZED,   /* missing, ambiguous or bad credentials: 400 or 401, as intake_auth says */
	INTAKE_NOMEM,          /* 503 */
};

/* What intake_body read from a body that passed. */
struct intake_body {
	enum codec_kind encoding;
	size_t decoded_len;                  /* after Content-Encoding (what the limit is checked on) */
	category_mask categories;            /* classified once, here */
	char event_id[ENVELOPE_ID_LEN + 1];  /* the store body's or envelope header's own, else a fresh uuid4 */
};

/* The spelling a header kept for the upstream is listed under ("Content-Type" for "content-type"),
 * or NULL when it is not kept. X-Sentry-Auth and Authorization are kept only when they are the
 * request's credential carrier (they are rewritten there). */
const char *intake_header_kept(const char *name, enum auth_carrier carrier);

/*
 * The body checks of an SDK request to endpoint ep, in ingest's order: listen.max_body_size, an
 * empty body where one is needed, the Content-Encoding, the MIME type, then the decoded size
 * against the endpoint's limits.* size (measured, never inflated whole in memory; a compressed
 * store body, or a raven base64+zlib one, is decoded once to read it). content_encoding and
 * content_type are the header values, NULL when absent. INTAKE_OK with *out filled, or
 * INTAKE_TOO_LARGE, INTAKE_EMPTY, INTAKE_BAD_ENCODING, INTAKE_BAD_TYPE, INTAKE_OVER_LIMIT,
 * INTAKE_CORRUPT, INTAKE_NOMEM.
 */
enum intake_result intake_body(const struct config *cfg, const struct endpoint *ep, const char *content_encoding,
			       const char *content_type, const char *body, size_t len, struct intake_body *out);

/*
 * The request's credentials: X-Sentry-Auth, Authorization or the query (auth_from_request); for a
 * matched path with a {key} segment that key (AUTH_PATH; a second carrier is 401); for an envelope
 * with no other carrier the envelope header's dsn (AUTH_ENVELOPE; the body decoded as far as its
 * header line). path_id is the /api/<id>/ id (-1 for the tunnel). INTAKE_OK with *auth and
 * *route_id (the id routing rule 2 looks at) set, or INTAKE_UNAUTHORIZED with *status (400, 401)
 * and *why (static, never holding a credential).
 */
enum intake_result intake_auth(const struct endpoint_match *m, long path_id, const char *x_sentry_auth,
			       const char *authorization, const char *query, enum codec_kind encoding,
			       const char *body, size_t len, struct auth_info *auth, long *route_id, int *status,
			       const char **why);

/* The answer ingest gives for a failed intake_body: the status into *status, the detail returned
 * (static text). INTAKE_OK gives 200 and "". */
const char *intake_reason(enum intake_result r, int *status);

#endif
