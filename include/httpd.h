/* httpd.h - the HTTP listener every SDK, probe and scraper talks to: one evhttp server, its
 * limits and timeouts, the JSON error shape, and a chain of handlers (admin endpoints first, then
 * ingest) that each claim the requests they serve. Knows nothing of what the handlers do. */
#ifndef SENTRYQ_HTTPD_H
#define SENTRYQ_HTTPD_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct evhttp_request;
struct evkeyvalq;
struct httpd;

struct httpd_params {
	const char *address;
	int port;
	size_t max_body;           /* evhttp's own cap on a body; handlers check their own limits */
	size_t max_headers;        /* bytes of request line and headers */
	double client_timeout;     /* seconds a connection may idle */
	const char *name;          /* for log lines: "ingest" */
};

/* A handler gets every request with its normalised path (runs of '/' collapsed, no query).
 * It returns true when it took the request (and then answers it exactly once), false to pass
 * it on to the next handler. */
typedef bool (*httpd_handler)(void *arg, struct evhttp_request *req, const char *path);

/* Binds address:port; NULL (with the reason logged) when it cannot. */
struct httpd *httpd_new(struct event_base *base, const struct httpd_params *p);
void httpd_free(struct httpd *h);
/* Handlers run in the order added. 0, or -1 when the chain is full. */
int httpd_add_handler(struct httpd *h, httpd_handler fn, void *arg);
/* Close the listening socket; requests already read are still answered. */
void httpd_stop_accepting(struct httpd *h);

/* Answer with a JSON body (text, or "{}" when NULL) and the status. */
void httpd_reply_json(struct evhttp_request *req, int code, const char *text);
/* The one error shape: status, {"detail": "..."}, and Retry-After when retry_after > 0. */
void httpd_reply_error(struct evhttp_request *req, int code, const char *detail, int retry_after);

#endif
