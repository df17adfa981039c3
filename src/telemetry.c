/* telemetry.c - ingest traffic recorded per answer; every other family read at scrape time. */
#include "telemetry.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "clock.h"
#include "config.h"
#include "endpoint.h"
#include "forward.h"
#include "httpd.h"
#include "metrics.h"
#include "outcome.h"
#include "queue.h"
#include "relay.h"
#include "route.h"
#include "stats.h"
#include "throttle.h"
#include "upstream.h"

#define CLASSES 6            /* 1xx .. 5xx, then anything else */
#define LABEL_MAX 160        /* "<upstream>/<real id>" */

/* Upper bounds of the ingest latency histogram (request complete to answer written), seconds. */
static const double latency_bounds[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5 };
static const char *const class_names[CLASSES] = { "1xx", "2xx", "3xx", "4xx", "5xx", "other" };

struct traffic {
	uint64_t requests[CLASSES];
	uint64_t bytes;
};

struct telemetry {
	struct relay *r;
	size_t nbuiltin;             /* endpoint table entries; then the tunnel, then "unknown" */
	struct traffic *by_ep;
	struct metrics_histogram latency;
};

/* ---- recording ---- */

struct telemetry *telemetry_new(struct relay *r)
{
	struct telemetry *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->r = r;
	t->nbuiltin = endpoint_builtin()->n;
	if ((t->by_ep = calloc(t->nbuiltin + 2, sizeof(*t->by_ep))) == NULL) {
		free(t);
		return NULL;
	}
	metrics_histogram_init(&t->latency, latency_bounds, sizeof(latency_bounds) / sizeof(latency_bounds[0]));
	return t;
}

void telemetry_free(struct telemetry *t)
{
	if (t == NULL)
		return;
	free(t->by_ep);
	free(t);
}

/* Which endpoint a path is: its table index, nbuiltin for the tunnel, nbuiltin + 1 for none. */
static size_t endpoint_index(const struct telemetry *t, const char *path)
{
	const char *tunnel = t->r->cfg->tunnel_path;
	const struct endpoint_table *tab = endpoint_builtin();
	struct endpoint_match m;

	if (tunnel[0] != '\0' && strcmp(path, tunnel) == 0)
		return t->nbuiltin;
	if (endpoint_match(tab, path, &m) == EP_MATCHED)
		return (size_t)(m.ep - tab->v);
	return t->nbuiltin + 1;
}

void telemetry_observe(void *arg, struct evhttp_request *req, const char *path, double seconds)
{
	struct telemetry *t = arg;
	struct traffic *tr = &t->by_ep[endpoint_index(t, path)];
	int code = evhttp_request_get_response_code(req);

	tr->requests[code >= 100 && code < 600 ? code / 100 - 1 : CLASSES - 1]++;
	tr->bytes += evbuffer_get_length(evhttp_request_get_input_buffer(req));
	metrics_histogram_observe(&t->latency, seconds);
}

/* ---- families ---- */

struct family_def {
	const char *name;
	enum metrics_type type;
	const char *help;
	const char *labels[METRICS_LABELS_MAX + 1];
};

static const struct family_def families[] = {
	{ "sentryq_build_info", METRICS_GAUGE, "sentryq's version; always 1.", { "version" } },
	{ "sentryq_role_info", METRICS_GAUGE, "The process's role (role: all, ingest or forward); always 1.", { "role" } },
	{ "sentryq_start_time_seconds", METRICS_GAUGE, "When the process started, seconds since the epoch.", { 0 } },
	{ "sentryq_ingest_requests_total", METRICS_COUNTER,
	  "Ingest requests answered, by endpoint and status class (health checks and scrapes excluded).",
	  { "endpoint", "status" } },
	{ "sentryq_ingest_received_bytes_total", METRICS_COUNTER, "Request body bytes received, as sent (encoded).",
	  { "endpoint" } },
	{ "sentryq_ingest_duration_seconds", METRICS_HISTOGRAM,
	  "Seconds from a complete ingest request to its answer (the Redis write included).", { 0 } },
	{ "sentryq_ingest_enqueued_total", METRICS_COUNTER, "Requests accepted: written to Redis or buffered.", { 0 } },
	{ "sentryq_ingest_buffered_total", METRICS_COUNTER, "Requests accepted into the memory buffer while Redis was away.",
	  { 0 } },
	{ "sentryq_ingest_rejected_total", METRICS_COUNTER, "Ingest requests answered with an error.", { 0 } },
	{ "sentryq_ingest_backpressure_total", METRICS_COUNTER, "Requests refused with 429 because the queue was full.",
	  { 0 } },
	{ "sentryq_ingest_waiting_writes", METRICS_GAUGE, "Accepted requests waiting for Redis to acknowledge them.", { 0 } },
	{ "sentryq_queue_entries", METRICS_GAUGE, "Entries in a route's stream (in flight included), at the last refresh.",
	  { "route" } },
	{ "sentryq_queue_redis_memory_bytes", METRICS_GAUGE, "Bytes Redis holds for a route's stream (MEMORY USAGE).",
	  { "route" } },
	{ "sentryq_queue_oldest_pending_seconds", METRICS_GAUGE,
	  "Age of a route's oldest entry not yet forwarded (delivered or not); 0 when none. Polled every 2 s.",
	  { "route" } },
	{ "sentryq_group_consumers", METRICS_GAUGE,
	  "Consumers in the group of a route's stream: one per sentryq process that forwards, departed ones until "
	  "removed (forward.departed_after). Polled every 2 s.", { "route" } },
	{ "sentryq_group_pending", METRICS_GAUGE,
	  "Entries of a route delivered to a consumer and not yet acknowledged. Consumers are bounded by the number of "
	  "sentryq processes (at most 16 per route are shown).", { "route", "consumer" } },
	{ "sentryq_group_consumers_removed_total", METRICS_COUNTER,
	  "Departed consumers this process removed from a group (idle past forward.departed_after, nothing pending).",
	  { 0 } },
	{ "sentryq_queue_pending_entries", METRICS_GAUGE, "Entries queued in every route, not yet forwarded.", { 0 } },
	{ "sentryq_queue_body_bytes", METRICS_GAUGE, "Body bytes queued in every route.", { 0 } },
	{ "sentryq_queue_max_entries", METRICS_GAUGE, "queue.max_pending: entries past which ingest answers 429.", { 0 } },
	{ "sentryq_queue_max_bytes", METRICS_GAUGE, "queue.max_bytes: body bytes past which ingest answers 429.", { 0 } },
	{ "sentryq_forwards_total", METRICS_COUNTER,
	  "Requests sent to an upstream, by what the answer meant (no_answer: network error or timeout).",
	  { "upstream", "outcome" } },
	{ "sentryq_forward_retries_total", METRICS_COUNTER, "Forward attempts after an entry's first.", { 0 } },
	{ "sentryq_dead_letters_total", METRICS_COUNTER, "Entries moved to the dead letters, by reason.", { "reason" } },
	{ "sentryq_upstream_duration_seconds", METRICS_HISTOGRAM, "Seconds from sending a request to its answer or failure.",
	  { "upstream" } },
	{ "sentryq_upstream_in_flight", METRICS_GAUGE, "Requests in flight to an upstream.", { "upstream" } },
	{ "sentryq_upstream_state", METRICS_GAUGE, "1 for the state an upstream is in (up, down, probing), else 0.",
	  { "upstream", "state" } },
	{ "sentryq_fleet_probing", METRICS_GAUGE,
	  "1 while this process holds an upstream's probe lease (fleet.sync: it alone probes the down upstream).",
	  { "upstream" } },
	{ "sentryq_fleet_sync_errors_total", METRICS_COUNTER,
	  "Commands of the fleet's shared knowledge that failed (error reply, or Redis lost before the answer).", { 0 } },
	{ "sentryq_rate_limits_active", METRICS_GAUGE,
	  "Rate limits in force, by route (\"<upstream>\" alone: organization-wide).", { "route" } },
	{ "sentryq_redis_connected", METRICS_GAUGE, "1 while Redis is connected and ready.", { 0 } },
	{ "sentryq_redis_reconnects_total", METRICS_COUNTER, "Times Redis became ready again after the first connection.",
	  { 0 } },
	{ "sentryq_redis_buffer_entries", METRICS_GAUGE, "Accepted requests held in memory until Redis takes them.", { 0 } },
	{ "sentryq_redis_buffer_bytes", METRICS_GAUGE, "Bytes of the memory buffer in use.", { 0 } },
	{ "sentryq_redis_buffer_max_bytes", METRICS_GAUGE, "redis.buffer_bytes: the memory buffer's bound.", { 0 } },
	{ "sentryq_config_reloads_total", METRICS_COUNTER, "Configuration reloads (SIGHUP), by result.", { "result" } },
	{ "sentryq_http_open_connections", METRICS_GAUGE, "Client connections open on a listener.", { "listener" } },
	{ "sentryq_http_body_memory_bytes", METRICS_GAUGE, "Request body bytes a listener holds in memory.",
	  { "listener" } },
};

/* A scrape in progress: the set and whether anything could not be added. */
struct scrape {
	const struct telemetry *t;
	struct metrics *m;
	bool failed;
};

static void add(struct scrape *sc, const char *name, const char *const *values, double v)
{
	enum metrics_result r = metrics_add(sc->m, name, values, v);

	sc->failed |= r != METRICS_OK && r != METRICS_FULL;
}

static void add_hist(struct scrape *sc, const char *name, const char *const *values, const struct metrics_histogram *h)
{
	enum metrics_result r = metrics_add_histogram(sc->m, name, values, h);

	sc->failed |= r != METRICS_OK && r != METRICS_FULL;
}

static void declare(struct scrape *sc, const char *name, enum metrics_type type, const char *help,
		    const char *const *labels)
{
	sc->failed |= metrics_declare(sc->m, name, type, help, labels) != METRICS_OK;
}

/* ---- readers, one per module ---- */

static const char *endpoint_name(const struct telemetry *t, size_t i)
{
	if (i < t->nbuiltin)
		return endpoint_builtin()->v[i].name;
	return i == t->nbuiltin ? endpoint_tunnel()->name : "unknown";
}

static double counter(const struct scrape *sc, enum stats_counter c)
{
	return (double)stats_get(sc->t->r->stats, c);
}

static void read_ingest(struct scrape *sc)
{
	const struct telemetry *t = sc->t;

	for (size_t i = 0; i < t->nbuiltin + 2; i++) {
		const char *ep = endpoint_name(t, i);
		bool any = false;

		for (size_t c = 0; c < CLASSES; c++) {
			if (t->by_ep[i].requests[c] == 0)
				continue;
			any = true;
			add(sc, "sentryq_ingest_requests_total", (const char *[]){ ep, class_names[c] },
			    (double)t->by_ep[i].requests[c]);
		}
		if (any)
			add(sc, "sentryq_ingest_received_bytes_total", (const char *[]){ ep }, (double)t->by_ep[i].bytes);
	}
	add_hist(sc, "sentryq_ingest_duration_seconds", NULL, &t->latency);
	add(sc, "sentryq_ingest_enqueued_total", NULL, counter(sc, STATS_ENQUEUED));
	add(sc, "sentryq_ingest_buffered_total", NULL, counter(sc, STATS_BUFFERED));
	add(sc, "sentryq_ingest_rejected_total", NULL, counter(sc, STATS_REJECTED));
	add(sc, "sentryq_ingest_backpressure_total", NULL, counter(sc, STATS_BACKPRESSURE));
	add(sc, "sentryq_ingest_waiting_writes", NULL, queue_writes_in_flight(t->r->queue));
}

/* Stream i's consumer group, once Redis has answered a poll of it. */
static void read_group(struct scrape *sc, size_t i, const char *label)
{
	const struct queue *q = sc->t->r->queue;
	struct queue_group_gauges g;
	struct queue_group_member m;

	queue_group_gauges(q, i, &g);
	if (!g.polled)
		return;
	add(sc, "sentryq_queue_oldest_pending_seconds", (const char *[]){ label }, g.oldest_age);
	add(sc, "sentryq_group_consumers", (const char *[]){ label }, (double)g.consumers);
	for (size_t j = 0; queue_group_member(q, i, j, &m); j++)
		add(sc, "sentryq_group_pending", (const char *[]){ label, m.name }, (double)m.pending);
}

static void read_queue(struct scrape *sc)
{
	const struct relay *r = sc->t->r;
	const struct config *cfg = r->cfg;
	struct queue_stream_gauges g;
	char label[LABEL_MAX];
	size_t k = 0;

	/* queue_streams() are in configuration order: each upstream's projects in turn */
	for (size_t i = 0; i < cfg->nupstreams; i++) {
		for (size_t j = 0; j < cfg->upstreams[i].nprojects && k < queue_streams(r->queue); j++, k++) {
			snprintf(label, sizeof(label), "%s/%ld", cfg->upstreams[i].name, cfg->upstreams[i].projects[j].id);
			queue_stream_gauges(r->queue, k, &g);
			add(sc, "sentryq_queue_entries", (const char *[]){ label }, (double)g.entries);
			add(sc, "sentryq_queue_redis_memory_bytes", (const char *[]){ label }, (double)g.memory_bytes);
			read_group(sc, k, label);
		}
	}
	add(sc, "sentryq_group_consumers_removed_total", NULL, (double)queue_consumers_removed(r->queue));
	add(sc, "sentryq_queue_pending_entries", NULL, (double)queue_pending(r->queue));
	add(sc, "sentryq_queue_body_bytes", NULL, (double)queue_bytes(r->queue));
	add(sc, "sentryq_queue_max_entries", NULL, (double)cfg->queue_max_pending);
	add(sc, "sentryq_queue_max_bytes", NULL, (double)cfg->queue_max_bytes);
}

static void read_upstream(struct scrape *sc, const struct upstream *u)
{
	static const char *const states[] = { "up", "down", "probing" };
	const struct upstream_counts *c = upstream_counts(u);
	const char *name = upstream_config(u)->name, *now = upstream_state_name(u);

	for (int oc = OUTCOME_DELIVERED; oc <= OUTCOME_PERMANENT; oc++)
		add(sc, "sentryq_forwards_total", (const char *[]){ name, outcome_name((enum outcome)oc) },
		    (double)c->answered[oc]);
	add(sc, "sentryq_forwards_total", (const char *[]){ name, "no_answer" }, (double)c->no_answer);
	add_hist(sc, "sentryq_upstream_duration_seconds", (const char *[]){ name }, &c->latency);
	add(sc, "sentryq_upstream_in_flight", (const char *[]){ name }, upstream_in_flight(u));
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		add(sc, "sentryq_upstream_state", (const char *[]){ name, states[i] }, strcmp(states[i], now) == 0);
}

static void count_limit(void *arg, const struct throttle_active *a)
{
	struct scrape *sc = arg;
	char label[LABEL_MAX];

	route_label(sc->t->r->cfg, a->upstream, a->project, label, sizeof(label));
	add(sc, "sentryq_rate_limits_active", (const char *[]){ label }, 1);
}

static void read_forward(struct scrape *sc)
{
	const struct relay *r = sc->t->r;
	const struct upstream *u;
	char label[LABEL_MAX];

	for (size_t i = 0; (u = forward_upstream(r->forward, i)) != NULL; i++) {
		read_upstream(sc, u);
		add(sc, "sentryq_fleet_probing", (const char *[]){ r->cfg->upstreams[i].name },
		    forward_probing_here(r->forward, i));
	}
	add(sc, "sentryq_fleet_sync_errors_total", NULL, (double)forward_fleet_errors(r->forward));
	add(sc, "sentryq_forward_retries_total", NULL, counter(sc, STATS_RETRIED));
	add(sc, "sentryq_dead_letters_total", (const char *[]){ "permanent" }, counter(sc, STATS_DEAD_PERMANENT));
	add(sc, "sentryq_dead_letters_total", (const char *[]){ "max_age" }, counter(sc, STATS_DEAD_MAX_AGE));
	add(sc, "sentryq_dead_letters_total", (const char *[]){ "max_attempts" }, counter(sc, STATS_DEAD_MAX_ATTEMPTS));
	/* every route at 0, then the limits in force */
	for (size_t i = 0; i < r->cfg->nupstreams; i++) {
		for (size_t j = 0; j < r->cfg->upstreams[i].nprojects; j++) {
			snprintf(label, sizeof(label), "%s/%ld", r->cfg->upstreams[i].name,
				 r->cfg->upstreams[i].projects[j].id);
			add(sc, "sentryq_rate_limits_active", (const char *[]){ label }, 0);
		}
	}
	throttle_each(r->throttle, clock_mono(), count_limit, sc);
}

static void read_redis(struct scrape *sc)
{
	const struct relay *r = sc->t->r;
	unsigned long connects = queue_connects(r->queue);
	size_t bytes, entries = queue_buffered(r->queue, &bytes);

	add(sc, "sentryq_redis_connected", NULL, queue_ready(r->queue));
	add(sc, "sentryq_redis_reconnects_total", NULL, connects > 0 ? (double)(connects - 1) : 0);
	add(sc, "sentryq_redis_buffer_entries", NULL, (double)entries);
	add(sc, "sentryq_redis_buffer_bytes", NULL, (double)bytes);
	add(sc, "sentryq_redis_buffer_max_bytes", NULL, (double)r->cfg->redis_buffer_bytes);
	add(sc, "sentryq_config_reloads_total", (const char *[]){ "success" }, counter(sc, STATS_RELOADS));
	add(sc, "sentryq_config_reloads_total", (const char *[]){ "failure" }, counter(sc, STATS_RELOAD_FAILURES));
}

static const char *counter_help(enum httpd_counter c)
{
	static const char *const help[] = {
		"Client connections accepted.", "Connections refused at listen.max_connections (503, closed).",
		"accept() failures (EMFILE, ENFILE, ...); accepting pauses after each.",
		"Requests refused for malformed or ambiguous framing, or a body on a GET.",
		"Requests refused for a head or body over its limit.", "Request heads not complete within listen.head_timeout.",
		"Request bodies cut off below listen.min_body_rate.", "Requests refused while listen.max_body_memory was in use.",
	};

	return (size_t)c < sizeof(help) / sizeof(help[0]) ? help[c] : "A listener event (httpd_counter).";
}

static void read_listener(struct scrape *sc, const struct httpd *h, const char *listener)
{
	char name[96];

	if (h == NULL)
		return;
	for (int c = 0; c < HTTPD__COUNT; c++) {
		snprintf(name, sizeof(name), "sentryq_http_%s_total", httpd_counter_name((enum httpd_counter)c));
		add(sc, name, (const char *[]){ listener }, (double)httpd_counter(h, (enum httpd_counter)c));
	}
	add(sc, "sentryq_http_open_connections", (const char *[]){ listener }, httpd_connections(h));
	add(sc, "sentryq_http_body_memory_bytes", (const char *[]){ listener }, (double)httpd_body_memory(h));
}

enum telemetry_result telemetry_collect(const struct telemetry *t, struct metrics *m)
{
	struct scrape sc = { t, m, false };
	char name[96];

	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
		declare(&sc, families[i].name, families[i].type, families[i].help, families[i].labels);
	for (int c = 0; c < HTTPD__COUNT; c++) {
		snprintf(name, sizeof(name), "sentryq_http_%s_total", httpd_counter_name((enum httpd_counter)c));
		declare(&sc, name, METRICS_COUNTER, counter_help((enum httpd_counter)c), (const char *[]){ "listener", NULL });
	}
	add(&sc, "sentryq_build_info", (const char *[]){ SENTRYQ_VERSION }, 1);
	add(&sc, "sentryq_role_info", (const char *[]){ config_role_name(t->r->cfg->role) }, 1);
	add(&sc, "sentryq_start_time_seconds", NULL, (double)t->r->started);
	read_ingest(&sc);
	read_queue(&sc);
	read_forward(&sc);
	read_redis(&sc);
	read_listener(&sc, t->r->httpd, "ingest");
	read_listener(&sc, t->r->metrics_httpd, "metrics");
	return sc.failed ? TELEMETRY_NOMEM : TELEMETRY_OK;
}
