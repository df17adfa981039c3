/* ingest.h - the SDK-facing side: match the endpoint, authenticate, route, classify, queue, and
 * answer once. Serves as the last handler of the HTTP listener (httpd.h). */
#ifndef SENTRYQ_INGEST_H
#define SENTRYQ_INGEST_H

#include <stdbool.h>

struct relay;
struct ingest;
struct evhttp_request;

struct ingest *ingest_new(struct relay *r);
void ingest_free(struct ingest *in);

/* The httpd handler: takes every request it is given (a path that is no ingest endpoint gets
 * 404 JSON with CORS headers). */
bool ingest_handle(void *arg, struct evhttp_request *req, const char *path);

#endif
