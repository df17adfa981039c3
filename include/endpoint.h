/* endpoint.h - Sentry's ingest endpoints as a table, and the path matcher (pure). Which path
 * after /api/<id>/ is what, which methods it takes, what Sentry answers on success, which size
 * limit and which data categories apply. */
#ifndef SENTRYQ_ENDPOINT_H
#define SENTRYQ_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>

#include "category.h"

#define ENDPOINT_KEY_MAX 128      /* a sentry_key path segment */
#define ENDPOINT_STORED_MAX 512   /* endpoint as stored: the key segment replaced by "{key}" */
#define ENDPOINT_PATH_MAX 1024

/* Methods, as bits (the HTTP library's own constants stay in the network code). */
enum endpoint_method {
	EP_GET = 1 << 0,
	EP_POST = 1 << 1,
	EP_HEAD = 1 << 2,
	EP_OPTIONS = 1 << 3,
	EP_PUT = 1 << 4,
	EP_PATCH = 1 << 5,
	EP_DELETE = 1 << 6,
};

enum endpoint_reply {
	EP_REPLY_ID = 0,   /* {"id": "<event id>"} (a store GET gets a 1x1 gif instead) */
	EP_REPLY_UUID,     /* the event id as a hyphenated uuid, text/plain (minidump, unreal) */
	EP_REPLY_EMPTY,    /* no body */
};

enum endpoint_body {
	EP_BODY_REQUIRED = 0,  /* an empty body is 400 */
	EP_BODY_OPTIONAL,
};

enum endpoint_mime {
	EP_MIME_ANY = 0,
	EP_MIME_SECURITY,  /* JSON, application/csp-report, application/expect-*; else 415 */
	EP_MIME_NEL,       /* application/json, application/reports+json; else 415 */
	EP_MIME_OTLP,      /* application/json, application/x-protobuf; else 415 */
};

/* Which limits.* size applies after Content-Encoding is removed. */
enum endpoint_limit {
	EP_LIMIT_EVENT = 0,    /* limits.max_event_size */
	EP_LIMIT_ENVELOPE,     /* limits.max_envelope_size */
	EP_LIMIT_ATTACHMENT,   /* limits.max_attachment_size */
	EP_LIMIT_ATTACHMENTS,  /* limits.max_attachments_size */
	EP_LIMIT_OWN,          /* the endpoint's own `limit` (endpoints added by the config) */
};

/* What the body is, for the event id and the categories read from it. */
enum endpoint_kind {
	EP_KIND_STORE = 0,     /* a JSON event: its event_id and "type" */
	EP_KIND_ENVELOPE,      /* an envelope: header event_id and dsn, item types */
	EP_KIND_OPAQUE,        /* anything else: categories come from the table */
};

struct endpoint {
	const char *name;      /* bounded label for logs and metrics: "store", "envelope", ... */
	const char *pattern;   /* literal text, "*" one segment, "{key}" a segment carrying the
				* sentry_key, a trailing "/?" an optional final slash */
	unsigned methods;      /* enum endpoint_method bits */
	int status;            /* success status Sentry answers with */
	enum endpoint_reply reply;
	enum endpoint_body body;
	enum endpoint_mime mime;
	enum endpoint_limit limit;
	enum endpoint_kind kind;
	category_mask categories;  /* for EP_KIND_OPAQUE (store and envelope read theirs from the body) */
	bool no_429;           /* never refused for a rate limit: Sentry answers success (minidump,
				* unreal, cron, OTLP logs) */
	size_t limit_bytes;    /* with EP_LIMIT_OWN */
};

struct endpoint_table {
	const struct endpoint *v;
	size_t n;
};

/* A matched request path. */
struct endpoint_match {
	const struct endpoint *ep;
	long long project_id;              /* from /api/<id>/ */
	char path_key[ENDPOINT_KEY_MAX];   /* the {key} segment, "" when none */
	char stored[ENDPOINT_STORED_MAX];  /* the endpoint with the key segment as "{key}" */
};

enum endpoint_result {
	EP_MATCHED = 0,
	EP_NOT_FOUND,          /* not "<prefix>/api/<id>/<endpoint>", or no such endpoint: 404 */
	EP_BAD_PROJECT_ID,     /* an id outside 1..2^63-1: 400 */
};

/* NULL when pattern is a valid endpoint pattern, else why not (a static message). */
const char *endpoint_pattern_check(const char *pattern);

/* Sentry's built-in endpoints (relay-server/src/endpoints/mod.rs). */
const struct endpoint_table *endpoint_builtin(void);
/* The built-in table followed by `extra` (copied; its strings must outlive the table). NULL on
 * allocation failure. */
struct endpoint_table *endpoint_table_new(const struct endpoint *extra, size_t n);
void endpoint_table_free(struct endpoint_table *t);
/* The JavaScript tunnel: an envelope posted to listen.tunnel_path. */
const struct endpoint *endpoint_tunnel(void);

/* Collapse runs of '/' into one, as Sentry's Relay does before routing ("//api//1//store//"
 * is "/api/1/store/"). out is NUL-terminated, truncated to len. */
void endpoint_normalise(const char *in, char *out, size_t len);
/* Match a normalised path "<prefix>/api/<id>/<endpoint>" (a DSN may carry a path prefix: the
 * last "/api/<digits>/" counts) against the table. */
enum endpoint_result endpoint_match(const struct endpoint_table *t, const char *path, struct endpoint_match *m);

#endif
