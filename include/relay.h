/* relay.h - the one explicit context every callback reaches the rest of sentryq through. */
#ifndef SENTRYQ_RELAY_H
#define SENTRYQ_RELAY_H

#include <stdbool.h>
#include <time.h>

struct event_base;
struct evdns_base;
struct config;
struct generation;
struct stats;
struct throttle;
struct queue;
struct forward;
struct ingest;
struct httpd;
struct admin;
struct budget;
struct telemetry;
struct report;

#define RELAY_PRIORITIES 3
#define RELAY_PRIORITY_FORWARD 2   /* lowest: upstream connections and forward bookkeeping */

struct relay {
	struct event_base *base;
	struct evdns_base *dns;
	struct generation *gen;        /* the config in force and its tables (a SIGHUP replaces it) */
	struct config *cfg;            /* gen's config: read it where a value is used at once */
	struct generation *first;      /* the start's, held to the end: the queue, the listeners and the
					* Redis connection keep its values (restart-only keys) */
	struct stats *stats;
	struct throttle *throttle;     /* rate limits in force: written by forward, read by ingest */
	struct budget *budget;         /* body memory: the listener's bodies and the forwarder's fetches */
	struct queue *queue;
	struct forward *forward;
	struct ingest *ingest;
	struct httpd *httpd;           /* the ingest listener */
	struct httpd *metrics_httpd;   /* the internal listener (metrics.port), NULL when none */
	struct admin *admin;
	struct telemetry *telemetry;   /* /metrics: traffic recorded, the rest read at scrape time */
	struct report *report;         /* the periodic stats line */
	time_t started;
	bool stopping;      /* SIGTERM seen: not ready (health, /status), ingest refuses, forwards drain */
};

#endif
