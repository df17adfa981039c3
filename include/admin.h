/* admin.h - the endpoints operators and orchestrators ask: /status, Sentry Relay's health checks
 * (/api/relay/healthcheck/live/ and /ready/) and /metrics (Prometheus). On the ingest listener
 * and on the internal one (metrics.port). Owns the self-check timer behind the live check. Sits
 * above ingest, forward, the queue and telemetry, and only reads them. */
#ifndef SENTRYQ_ADMIN_H
#define SENTRYQ_ADMIN_H

#include <stdbool.h>

struct relay;
struct admin;
struct evhttp_request;

/* Starts the self-check timer on r->base. NULL on allocation failure. */
struct admin *admin_new(struct relay *r);
void admin_free(struct admin *a);

/* The handler of the ingest listener: takes the admin paths (/metrics only with
 * metrics.on_ingest), passes every other request on. */
bool admin_handle(void *arg, struct evhttp_request *req, const char *path);
/* The handler of the internal listener: every admin path, /metrics always. */
bool admin_handle_internal(void *arg, struct evhttp_request *req, const char *path);
/* The ingest listener's observer: health checks and scrapes are not traffic; the rest goes to
 * telemetry_observe. */
void admin_observe(void *arg, struct evhttp_request *req, const char *path, double seconds);

#endif
