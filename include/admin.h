/* admin.h - the endpoints operators and orchestrators ask: /status (and, on the same listener,
 * health checks and metrics). Sits above ingest, forward and the queue, and only reads them. */
#ifndef SENTRYQ_ADMIN_H
#define SENTRYQ_ADMIN_H

#include <stdbool.h>

struct relay;
struct admin;
struct evhttp_request;

struct admin *admin_new(struct relay *r);
void admin_free(struct admin *a);

/* The httpd handler: takes the admin paths, passes every other request on. */
bool admin_handle(void *arg, struct evhttp_request *req, const char *path);

#endif
