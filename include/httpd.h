/* httpd.h - the HTTP listener every SDK, probe and scraper talks to: one evhttp server behind a
 * framing filter of sentryq's own. The filter reads every request's framing before evhttp does
 * (httphead.h): ambiguous framing, bodies on GETs, oversized heads and bodies, slow heads and
 * bodies, too many connections and too much body memory are answered here, in JSON, and evhttp
 * only ever sees requests that passed. Then a chain of handlers (admin endpoints first, then
 * ingest) each claims the requests it serves. Knows nothing of what the handlers do. */
#ifndef SENTRYQ_HTTPD_H
#define SENTRYQ_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evhttp_request;
struct httpd;
struct budget;

struct httpd_params {
	const char *address;
	int port;
	size_t max_body;           /* bytes on the wire; a larger body gets 413 before it is read */
	size_t max_head;           /* bytes of request line and headers; 431 above */
	double client_timeout;     /* seconds a keep-alive connection may idle */
	double head_timeout;       /* seconds a request head may take from its first byte; 408 after */
	double min_body_rate;      /* bytes/s a body must average once it has had head_timeout; closed below */
	int max_connections;       /* open client connections; past it new ones get 503 and are closed */
	struct budget *budget;     /* body bytes held (budget.h); past it new requests get 503. NULL: unbound */
	const char *name;          /* for log lines: "ingest" */
	bool reuse_port;           /* SO_REUSEPORT: other processes may listen on the same port */
};

/* What the filter did, for /status and /metrics. */
enum httpd_counter {
	HTTPD_CONNECTIONS = 0,     /* accepted */
	HTTPD_REFUSED_CONNECTIONS, /* over max_connections */
	HTTPD_ACCEPT_ERRORS,       /* accept() failed (EMFILE, ENFILE, ...) */
	HTTPD_BAD_FRAMING,         /* malformed or ambiguous request framing, GET with a body */
	HTTPD_TOO_LARGE,           /* head or body over its limit */
	HTTPD_SLOW_HEADS,          /* head not complete within head_timeout */
	HTTPD_SLOW_BODIES,         /* body slower than min_body_rate */
	HTTPD_MEMORY_FULL,         /* refused: body_memory in use */
	HTTPD__COUNT
};

/* A handler gets every request with its normalised path (runs of '/' collapsed, no query).
 * It returns true when it took the request (and then answers it exactly once), false to pass
 * it on to the next handler. */
typedef bool (*httpd_handler)(void *arg, struct evhttp_request *req, const char *path);

/* Told once per request a handler answered (the filter's refusals are httpd_counter's): the
 * request (its status and body still readable), its normalised path, and the seconds from the
 * complete request to its answer handed to the socket. */
typedef void (*httpd_observer)(void *arg, struct evhttp_request *req, const char *path, double seconds);

/* Binds address:port; NULL (with the reason logged) when it cannot. */
struct httpd *httpd_new(struct event_base *base, const struct httpd_params *p);
void httpd_free(struct httpd *h);
/* Handlers run in the order added. 0, or -1 when the chain is full. */
int httpd_add_handler(struct httpd *h, httpd_handler fn, void *arg);
/* One observer per listener (NULL: none). */
void httpd_set_observer(struct httpd *h, httpd_observer fn, void *arg);
/* Close the listening socket; requests already read are still answered. */
void httpd_stop_accepting(struct httpd *h);

uint64_t httpd_counter(const struct httpd *h, enum httpd_counter c);
const char *httpd_counter_name(enum httpd_counter c);
/* Open client connections, and body bytes held now (received, or waiting for their answer). */
int httpd_connections(const struct httpd *h);
size_t httpd_body_memory(const struct httpd *h);
/* Would a request of `bytes` body be admitted now? (Readiness: false when memory is full.) */
bool httpd_has_room(const struct httpd *h, size_t bytes);

/* Answer with a JSON body (text, or "{}" when NULL) and the status. */
void httpd_reply_json(struct evhttp_request *req, int code, const char *text);
/* The one error shape: status, {"detail": "..."}, and Retry-After when retry_after > 0. */
void httpd_reply_error(struct evhttp_request *req, int code, const char *detail, int retry_after);

#endif
