/* admin.c - /status, the health checks and /metrics; the self-check timer behind live. */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "category.h"
#include "clock.h"
#include "config.h"
#include "forward.h"
#include "health.h"
#include "httpd.h"
#include "metrics.h"
#include "queue.h"
#include "rcluster.h"
#include "ratelimit.h"
#include "relay.h"
#include "route.h"
#include "stats.h"
#include "telemetry.h"
#include "throttle.h"

struct admin {
	struct relay *r;
	struct event *beat_ev;
	double last_beat;      /* monotonic: the self-check timer last ran */
	double last_gap;       /* seconds between its last two runs */
};

/* What a path is, for the handlers and the observer. */
enum admin_path {
	ADMIN_NONE = 0,
	ADMIN_STATUS,
	ADMIN_METRICS,
	ADMIN_LIVE,
	ADMIN_READY,
};

static enum admin_path path_kind(const char *path)
{
	static const struct { const char *path; enum admin_path kind; } paths[] = {
		{ "/status", ADMIN_STATUS }, { "/metrics", ADMIN_METRICS },
		{ "/api/relay/healthcheck/live/", ADMIN_LIVE }, { "/api/relay/healthcheck/live", ADMIN_LIVE },
		{ "/api/relay/healthcheck/ready/", ADMIN_READY }, { "/api/relay/healthcheck/ready", ADMIN_READY },
		{ "/api/0/relays/live/", ADMIN_LIVE }, { "/api/0/relays/live", ADMIN_LIVE },
	};

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (strcmp(path, paths[i].path) == 0)
			return paths[i].kind;
	return ADMIN_NONE;
}

/* ---- health ---- */

static enum health_ready readiness(const struct admin *a)
{
	const struct relay *r = a->r;
	size_t bytes, buffered = queue_buffered(r->queue, &bytes);
	struct health_input in = {
		.stopping = r->stopping, .pending = queue_pending(r->queue), .max_pending = r->cfg->queue_max_pending,
		.bytes = queue_bytes(r->queue), .max_bytes = (long long)r->cfg->queue_max_bytes,
		.redis_ready = queue_ready(r->queue), .buffered = buffered, .buffer_bytes = bytes,
		.buffer_max = r->cfg->redis_buffer_bytes,
		.body_room = r->httpd == NULL || httpd_has_room(r->httpd, HEALTH_SMALL_REQUEST),
		.forward_only = r->cfg->role == CONFIG_ROLE_FORWARD,
	};

	return health_ready(&in);
}

static enum health_live liveness(const struct admin *a)
{
	return health_live(a->last_beat, a->last_gap, clock_mono());
}

static void beat_cb(evutil_socket_t fd, short what, void *arg)
{
	struct admin *a = arg;

	(void)fd;
	(void)what;
	a->last_gap = clock_mono() - a->last_beat;
	a->last_beat += a->last_gap;
}

/* Relay's answer: 200 {"is_healthy":true} or 503 {"is_healthy":false}. */
static void reply_health(struct evhttp_request *req, bool healthy)
{
	httpd_reply_json(req, healthy ? 200 : 503, healthy ? "{\"is_healthy\":true}" : "{\"is_healthy\":false}");
}

/* ---- /status ---- */

struct throttle_json {
	const struct config *cfg;
	json_t *by_route;
};

static void add_limit(void *arg, const struct throttle_active *a)
{
	struct throttle_json *lj = arg;
	char label[200], cats[CATEGORY_LIST_MAX] = "";
	json_t *list;

	route_label(lj->cfg, a->upstream, a->project, label, sizeof(label));
	if (!a->all)
		category_format(a->categories, ';', cats, sizeof(cats));
	if ((list = json_object_get(lj->by_route, label)) == NULL) {
		list = json_array();
		json_object_set_new(lj->by_route, label, list);
	}
	json_array_append_new(list, json_pack("{s:s, s:f, s:s, s:s}", "categories", a->all ? "all" : cats,
					      "seconds_left", a->seconds_left, "scope", ratelimit_scope_name(a->scope),
					      "reason", a->reason));
}

static json_t *throttle_json(const struct relay *r)
{
	struct throttle_json lj = { r->cfg, json_object() };

	throttle_each(r->throttle, clock_mono(), add_limit, &lj);
	return lj.by_route;
}

/* The listener's framing filter: connections open now, body bytes held now, and its counters
 * (connections accepted, refused, ...). */
static json_t *listen_json(const struct httpd *h)
{
	json_t *o = json_object();

	if (h == NULL)
		return o;
	json_object_set_new(o, "open_connections", json_integer(httpd_connections(h)));
	json_object_set_new(o, "body_memory", json_integer((json_int_t)httpd_body_memory(h)));
	for (int c = 0; c < HTTPD__COUNT; c++)
		json_object_set_new(o, httpd_counter_name(c), json_integer((json_int_t)httpd_counter(h, c)));
	return o;
}

/* Redis Cluster: the masters and what following the slot map took. */
static json_t *cluster_json(const struct relay *r)
{
	struct rcluster_counters c;

	if (!queue_cluster_counters(r->queue, &c))
		return NULL;
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "masters", (json_int_t)c.masters, "masters_ready",
			 (json_int_t)c.masters_ready, "moved", (json_int_t)c.moved, "ask", (json_int_t)c.ask, "retried",
			 (json_int_t)c.retried, "refreshes", (json_int_t)c.refreshes, "masters_lost",
			 (json_int_t)c.masters_lost);
}

/* Where Redis is (the master, with Sentinel; the masters, with a cluster) and the sentinel
 * followed: addresses, no secret. */
static json_t *redis_json(const struct relay *r, bool connected)
{
	char addr[1024], sentinel[300];
	json_t *o = json_pack("{s:b, s:s}", "connected", connected, "address",
			      queue_redis_address(r->queue, addr, sizeof(addr)));

	if (o != NULL && r->cfg->redis_sentinels.n > 0)
		json_object_set_new(o, "sentinel", json_string(queue_redis_sentinel(r->queue, sentinel, sizeof(sentinel))));
	if (o != NULL && r->cfg->redis_cluster.n > 0)
		json_object_set_new(o, "cluster", cluster_json(r));
	return o;
}

/* Every route's consumer group: {"<upstream>/<id>": {"consumers", "oldest_pending_s",
 * "pending": {consumer: entries}}}, once Redis has answered a poll. */
static json_t *group_json(const struct relay *r)
{
	const struct config *cfg = r->cfg;
	json_t *o = json_object();
	size_t k = 0;

	for (size_t i = 0; i < cfg->nupstreams; i++) {
		for (size_t j = 0; j < cfg->upstreams[i].nprojects && k < queue_streams(r->queue); j++, k++) {
			struct queue_group_gauges g;
			struct queue_group_member m;
			char label[200];
			json_t *pending = json_object();

			queue_group_gauges(r->queue, k, &g);
			if (!g.polled) {
				json_decref(pending);
				continue;
			}
			for (size_t n = 0; queue_group_member(r->queue, k, n, &m); n++)
				json_object_set_new(pending, m.name, json_integer(m.pending));
			snprintf(label, sizeof(label), "%s/%ld", cfg->upstreams[i].name, cfg->upstreams[i].projects[j].id);
			json_object_set_new(o, label, json_pack("{s:I, s:f, s:o}", "consumers", (json_int_t)g.consumers,
								"oldest_pending_s", g.oldest_age, "pending", pending));
		}
	}
	return o;
}

static json_t *status_json(const struct admin *a, enum health_ready ready, bool connected)
{
	const struct relay *r = a->r;
	size_t buf_bytes, buffered = queue_buffered(r->queue, &buf_bytes);
	json_t *fwd = forward_status_json(r->forward);

	json_object_set_new(fwd, "limits", throttle_json(r));
	return json_pack("{s:s, s:s, s:s, s:s, s:o, s:I, s:o, s:{s:b, s:b, s:s}, s:{s:I, s:I, s:I, s:I, s:i}, s:o, s:o, s:o}",
			 "status", health_status_word(ready, connected), "version", SENTRYQ_VERSION, "role",
			 config_role_name(r->cfg->role), "consumer", queue_consumer(r->queue), "group", group_json(r),
			 "uptime_s",
			 (json_int_t)(time(NULL) - r->started), "redis", redis_json(r, connected), "health", "live",
			 liveness(a) == HEALTH_LIVE, "ready", ready == HEALTH_READY, "reason", health_ready_name(ready),
			 "queue", "pending", (json_int_t)queue_pending(r->queue), "bytes", (json_int_t)queue_bytes(r->queue),
			 "buffered", (json_int_t)buffered, "buffered_bytes", (json_int_t)buf_bytes, "ingest_waiting",
			 queue_writes_in_flight(r->queue), "counters", stats_counters_json(r->stats), "forward", fwd,
			 "listen", listen_json(r->httpd));
}

/* 503 only while stopping or not accepting: a Redis outage the buffer absorbs is "degraded", 200. */
static void reply_status(struct admin *a, struct evhttp_request *req)
{
	enum health_ready ready = readiness(a);
	json_t *o = status_json(a, ready, queue_ready(a->r->queue));
	char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;

	httpd_reply_json(req, ready == HEALTH_READY ? 200 : 503, text);
	free(text);
	json_decref(o);
}

/* ---- /metrics ---- */

static enum metrics_result add_health(struct metrics *m, enum health_ready ready, enum health_live live)
{
	enum metrics_result r;

	if ((r = metrics_declare(m, "sentryq_ready", METRICS_GAUGE,
				 "1 while a new ingest request would be accepted (the ready health check).", NULL)) != METRICS_OK ||
	    (r = metrics_declare(m, "sentryq_live", METRICS_GAUGE,
				 "1 while the event loop runs its self-check (the live health check).", NULL)) != METRICS_OK ||
	    (r = metrics_add(m, "sentryq_ready", NULL, ready == HEALTH_READY)) != METRICS_OK)
		return r;
	return metrics_add(m, "sentryq_live", NULL, live == HEALTH_LIVE);
}

static void free_text(const void *data, size_t len, void *extra)
{
	(void)len;
	(void)extra;
	free((void *)data);
}

static void reply_metrics(struct admin *a, struct evhttp_request *req)
{
	struct metrics *m = metrics_new();
	char *text = NULL;
	size_t len = 0;

	if (m == NULL || telemetry_collect(a->r->telemetry, m) != TELEMETRY_OK ||
	    add_health(m, readiness(a), liveness(a)) != METRICS_OK || metrics_render(m, &text, &len) != METRICS_OK) {
		metrics_free(m);
		httpd_reply_error(req, 503, "out of memory", 1);
		return;
	}
	metrics_free(m);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", METRICS_CONTENT_TYPE);
	evbuffer_add_reference(evhttp_request_get_output_buffer(req), text, len, free_text, NULL);
	evhttp_send_reply(req, 200, "OK", NULL);
}

/* ---- handlers ---- */

static bool serve(struct admin *a, struct evhttp_request *req, const char *path, bool metrics)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	enum admin_path kind = path_kind(path);

	if (kind == ADMIN_NONE || (kind == ADMIN_METRICS && !metrics) || (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD))
		return false;
	switch (kind) {
	case ADMIN_STATUS: reply_status(a, req); break;
	case ADMIN_METRICS: reply_metrics(a, req); break;
	case ADMIN_LIVE: reply_health(req, liveness(a) == HEALTH_LIVE); break;
	case ADMIN_READY: reply_health(req, readiness(a) == HEALTH_READY); break;
	case ADMIN_NONE: break;
	}
	return true;
}

bool admin_handle(void *arg, struct evhttp_request *req, const char *path)
{
	struct admin *a = arg;

	return serve(a, req, path, a->r->cfg->metrics_on_ingest);
}

bool admin_handle_internal(void *arg, struct evhttp_request *req, const char *path)
{
	return serve(arg, req, path, true);
}

void admin_observe(void *arg, struct evhttp_request *req, const char *path, double seconds)
{
	struct admin *a = arg;

	/* Health checks and scrapes are not traffic. */
	if (path_kind(path) == ADMIN_NONE)
		telemetry_observe(a->r->telemetry, req, path, seconds);
}

struct admin *admin_new(struct relay *r)
{
	struct admin *a = calloc(1, sizeof(*a));
	struct timeval tv = clock_timeval(HEALTH_BEAT_PERIOD);

	if (a == NULL)
		return NULL;
	a->r = r;
	a->last_beat = clock_mono();
	if ((a->beat_ev = event_new(r->base, -1, EV_PERSIST, beat_cb, a)) == NULL) {
		free(a);
		return NULL;
	}
	evtimer_add(a->beat_ev, &tv);
	return a;
}

void admin_free(struct admin *a)
{
	if (a == NULL)
		return;
	if (a->beat_ev != NULL)
		event_free(a->beat_ev);
	free(a);
}
