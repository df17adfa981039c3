/* upstream.h - one Sentry server: its connection pool, in-flight cap and failure backoff. */
#ifndef SENTRYQ_UPSTREAM_H
#define SENTRYQ_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "metrics.h"
#include "outage.h"
#include "outcome.h"

struct relay;
struct evbuffer;
struct evhttp_request;
struct config_upstream;
struct request;
struct upstream;

/* status: the HTTP status, or 0 for a network error / timeout (resp is then NULL). */
typedef void (*upstream_done_cb)(void *arg, int status, struct evhttp_request *resp);

struct upstream *upstream_new(struct relay *r, const struct config_upstream *cfg);
void upstream_free(struct upstream *u);

const struct config_upstream *upstream_config(const struct upstream *u);
/* A reload kept this upstream's server (generation_same_server): its new settings (timeouts),
 * everything else (connections, outage state, counts) as it is. */
void upstream_reconfigure(struct upstream *u, const struct config_upstream *cfg);
/* A reload replaced `old` by u (another url or pool size): u takes over its counts (the
 * metrics stay monotonic) and, when `outage`, its outage state (the same server). */
void upstream_adopt(struct upstream *u, const struct upstream *old, bool outage);

/* Request slots: max_connections minus in flight minus reserved. */
int upstream_available(const struct upstream *u);
void upstream_reserve(struct upstream *u, int n);
void upstream_release(struct upstream *u, int n);
int upstream_in_flight(const struct upstream *u);

/* A large body handed to upstream_send instead of copied: release(data, len, arg) runs exactly
 * once, when libevent has sent it or dropped the request (or at once, if the send fails early). */
struct upstream_body {
	void (*release)(const void *data, size_t len, void *arg);
	void *arg;
};

/*
 * Send the request (its head and body are copied, unless `hand` is given: then rq->body is sent
 * from where it is and released through it) on a free keep-alive connection. Consumes one
 * reserved slot. cb runs exactly once, also when the send fails (status 0).
 */
void upstream_send(struct upstream *u, const struct request *rq, const struct upstream_body *hand,
		   upstream_done_cb cb, void *arg);

/* Upward notifications (the forwarder), all optional. */
struct upstream_hooks {
	/* An answer (or a failed send) moved the outage state: was is the state before. Not called
	 * for the changes upstream_fleet_down / upstream_fleet_up make. */
	void (*on_change)(void *arg, struct upstream *u, enum outage_change ch, enum outage_state was);
	/* Asked before a probe goes out while down: false keeps it back (another process of the
	 * fleet holds the probe lease). NULL: always. */
	bool (*may_probe)(void *arg, const struct upstream *u);
	void *arg;
};
void upstream_set_hooks(struct upstream *u, const struct upstream_hooks *hooks);

/* What the fleet said (fleetsync.h); the state stays this module's own: the max of what its
 * answers said and what the fleet says. fleet_down: down now unless down already (first probe
 * after about retry_initial). fleet_up: another process got an answer that proves the upstream
 * reachable: the outage, if any, ends here too. Each returns the change (OUTAGE_SAME: none). */
enum outage_change upstream_fleet_down(struct upstream *u);
enum outage_change upstream_fleet_up(struct upstream *u);

/* Not waiting out an interruption or a probe interval. Every answer moves the
 * upstream's outage state by itself (outage.h): callers only read it. */
bool upstream_ready(const struct upstream *u);
/* Failing for longer than forward.outage_grace: one probe request at a time until one is answered. */
bool upstream_down(const struct upstream *u);
/* Where the outage stands: state, since when, next probe (for the log line of the caller). */
const struct outage *upstream_outage(const struct upstream *u);

json_t *upstream_status_json(const struct upstream *u);

/* What this upstream's requests came to, kept here and read at scrape time (/metrics, the
 * stats line): answers by what they mean, requests that got none, and the latency. */
struct upstream_counts {
	uint64_t answered[OUTCOME_PERMANENT + 1];  /* answers with a status, by enum outcome */
	uint64_t no_answer;                        /* network error, timeout, TLS failure, failed send */
	struct metrics_histogram latency;          /* seconds from send to answer (or failure) */
};

const struct upstream_counts *upstream_counts(const struct upstream *u);
/* "up"; "probing": failures within forward.outage_grace, retried after about retry_initial;
 * "down": failing for longer, probed one request at a time (outage.h). */
const char *upstream_state_name(const struct upstream *u);

#endif
