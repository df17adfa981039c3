/* telemetry.h - what /metrics shows. The ingest listener's traffic (requests by endpoint and
 * status class, body bytes received, the latency from request to answer) is recorded here as
 * httpd observes each answer, in fixed arrays: no allocation per request. Everything else is
 * read at scrape time from the counters and gauges the modules already keep (stats, queue,
 * upstreams, throttle, httpd) into one metrics set (metrics.h). Label values are bounded: the
 * endpoint table's names, status classes, configured upstream names, routes shown as
 * "<upstream>/<real project id>", outcomes and reasons; never a key, a secret or a project name.
 * Sits above ingest, forward and the queue, and only reads them. */
#ifndef SENTRYQ_TELEMETRY_H
#define SENTRYQ_TELEMETRY_H

struct relay;
struct metrics;
struct telemetry;
struct evhttp_request;

/* What telemetry_collect did. */
enum telemetry_result {
	TELEMETRY_OK = 0,
	TELEMETRY_NOMEM,      /* a family could not be declared or filled */
};

struct telemetry *telemetry_new(struct relay *r);
void telemetry_free(struct telemetry *t);

/* An httpd observer (httpd_set_observer) for the ingest listener: one request answered. */
void telemetry_observe(void *arg, struct evhttp_request *req, const char *path, double seconds);

/* Declare every sentryq_* family into m and fill it from the modules' counters as they are now. */
enum telemetry_result telemetry_collect(const struct telemetry *t, struct metrics *m);

#endif
