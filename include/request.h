/* request.h - rebuild a queued entry as the request its upstream Sentry expects (pure, no sockets). */
#ifndef SENTRYQ_REQUEST_H
#define SENTRYQ_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "entry.h"

#define REQUEST_MAX_HEADERS 32

struct request_header {
	const char *name;
	const char *value;
};

/* What forward sends: everything points into the entry or into strings the request owns. */
struct request {
	bool get;                          /* GET (store with sentry_data, cron) instead of POST */
	const char *method;                /* "POST", "GET", "PUT" or "PATCH": the SDK's (endpoints
					    * added in the config may take PUT and PATCH) */
	char *uri;                         /* path prefix + /api/<real id>/<endpoint>[?query] (owned) */
	struct request_header h[REQUEST_MAX_HEADERS];
	size_t nh;
	const char *head;                  /* sent before the body: a rewritten envelope header, or NULL */
	size_t head_len;
	const char *body;                  /* then this */
	size_t body_len;
	bool body_in_entry;                /* body points into the entry's body (else the request owns it) */
	char *owned[REQUEST_MAX_HEADERS * 2 + 2];
	size_t nowned;
};

/*
 * Substitute the project's real key, secret and id: in the path (id, and the key segment of
 * unreal/cron paths), in the one auth carrier the SDK used (header, Authorization, query), and in
 * an envelope header "dsn" / "trace.public_key" (decoding and re-encoding a compressed body).
 * Everything else is kept: other headers, query parameters, and every body byte after the
 * envelope header line. A GET never carries a body. request_release frees what was built,
 * whatever the result.
 */
enum request_result {
	REQUEST_OK = 0,
	REQUEST_NOMEM,     /* worth another try */
	REQUEST_DAMAGED,   /* the entry is not what ingest writes: it never will be a request */
};

enum request_result request_build(struct request *rq, const struct config_upstream *uc, const struct config_project *pr,
		  const struct entry *it);
void request_release(struct request *rq);

/* Host header value: "host" or "host:port" when the port is not the scheme's default. */
void request_host(const struct config_upstream *uc, char *buf, size_t len);
/* The DSN Sentry expects in an envelope header: "<scheme>://<key>@<host[:port]><prefix>/<id>". */
void request_dsn(const struct config_upstream *uc, const char *key, long id, char *buf, size_t len);

#endif
