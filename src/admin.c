/* admin.c - /status: queue, counters, upstreams and the rate limits in force, as JSON. */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "category.h"
#include "clock.h"
#include "config.h"
#include "forward.h"
#include "httpd.h"
#include "throttle.h"
#include "queue.h"
#include "ratelimit.h"
#include "relay.h"
#include "stats.h"

struct admin {
	struct relay *r;
};

/* "<upstream>/<real id>" for a project, "<upstream>" for an organization-wide limit: the project
 * name is the DSN secret its users were given, so it is never shown. */
static void route_label(const struct config *cfg, const char *upstream, const char *project, char *buf, size_t len)
{
	const struct config_upstream *up = config_upstream_by_name(cfg, upstream);
	const struct config_project *pr = project != NULL ? config_project_by_name(up, project) : NULL;

	if (pr != NULL)
		snprintf(buf, len, "%s/%ld", upstream, pr->id);
	else
		snprintf(buf, len, "%s%s", upstream, project != NULL ? "/?" : "");
}

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

static json_t *status_json(const struct relay *r, const char *status, bool connected)
{
	size_t buf_bytes, buffered = queue_buffered(r->queue, &buf_bytes);
	json_t *fwd = forward_status_json(r->forward);

	json_object_set_new(fwd, "limits", throttle_json(r));
	return json_pack("{s:s, s:s, s:I, s:{s:b}, s:{s:I, s:I, s:I, s:I, s:i}, s:o, s:o, s:o}", "status", status,
			 "version", SENTRYQ_VERSION, "uptime_s", (json_int_t)(time(NULL) - r->started), "redis",
			 "connected", connected, "queue", "pending", (json_int_t)queue_pending(r->queue), "bytes",
			 (json_int_t)queue_bytes(r->queue), "buffered", (json_int_t)buffered, "buffered_bytes",
			 (json_int_t)buf_bytes, "ingest_waiting", queue_writes_in_flight(r->queue), "counters",
			 stats_counters_json(r->stats), "forward", fwd, "listen", listen_json(r->httpd));
}

static void reply_status(struct admin *a, struct evhttp_request *req)
{
	const struct relay *r = a->r;
	bool connected = queue_ready(r->queue);
	json_t *o = status_json(r, r->stopping ? "stopping" : connected ? "ok" : "degraded", connected);
	char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;

	httpd_reply_json(req, connected && !r->stopping ? 200 : 503, text);
	free(text);
	json_decref(o);
}

bool admin_handle(void *arg, struct evhttp_request *req, const char *path)
{
	struct admin *a = arg;
	enum evhttp_cmd_type m = evhttp_request_get_command(req);

	/* Health checks are not counted as traffic. */
	if (strcmp(path, "/status") == 0 && (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD)) {
		reply_status(a, req);
		return true;
	}
	return false;
}

struct admin *admin_new(struct relay *r)
{
	struct admin *a = calloc(1, sizeof(*a));

	if (a != NULL)
		a->r = r;
	return a;
}

void admin_free(struct admin *a)
{
	free(a);
}
