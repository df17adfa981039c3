/* ingest.c - the SDK-facing evhttp server: authenticate, route, queue in Redis, then answer once. */
#define _GNU_SOURCE  /* strcasestr */
#include "ingest.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "auth.h"
#include "codec.h"
#include "config.h"
#include "envelope.h"
#include "forward.h"
#include "log.h"
#include "queue.h"
#include "relay.h"
#include "route.h"
#include "stats.h"

#define KEPT_HEADERS_MAX 16384

struct ingest {
	struct relay *r;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	int in_flight;
};

/* One request waiting for Redis. req becomes NULL if the SDK connection dies meanwhile. */
struct pending {
	struct ingest *in;
	struct evhttp_request *req;
	struct evhttp_connection *evcon;
	struct route_target target;
	const struct endpoint *ep;
	bool get;
	/* The entry, kept until Redis answers: a lost connection moves it to the memory buffer. */
	struct queue_item it;
	char *headers;
	char *query;
	char endpoint[512];
	char sdk_key[AUTH_FIELD_MAX];
	char xff[1024];
	char stream[QUEUE_STREAM_MAX];
	char event_id[ENVELOPE_ID_LEN + 1];
};

enum reply_kind {
	REPLY_ID,      /* {"id": "<event id>"} (store answers a GET with a 1x1 gif instead) */
	REPLY_UUID,    /* the event id as a hyphenated uuid, text/plain (minidump, unreal) */
	REPLY_EMPTY,   /* no body */
};

enum body_rule { BODY_REQUIRED, BODY_OPTIONAL };
enum mime_rule { MIME_ANY, MIME_SECURITY, MIME_NEL };

/*
 * The ingest endpoints after /api/<id>/, one line each. Pattern: literal text, "*" = one path
 * segment, "{key}" = one segment carrying the sentry_key, a trailing "/?" = optional final slash.
 */
struct endpoint {
	const char *pattern;
	unsigned methods;         /* EVHTTP_REQ_* */
	int status;               /* success status Sentry answers with */
	enum reply_kind reply;
	enum body_rule body;
	enum mime_rule mime;
	size_t limit_off;         /* offsetof(struct config, limit_*) */
	bool envelope;            /* the body is an envelope (dsn auth, header event id, dsn rewrite) */
};

#define LIMIT(f) offsetof(struct config, f)
static const struct endpoint endpoints[] = {
	{ "store/", EVHTTP_REQ_POST | EVHTTP_REQ_GET, 200, REPLY_ID, BODY_OPTIONAL, MIME_ANY, LIMIT(limit_event), false },
	{ "envelope/", EVHTTP_REQ_POST, 200, REPLY_ID, BODY_REQUIRED, MIME_ANY, LIMIT(limit_envelope), true },
	{ "minidump/?", EVHTTP_REQ_POST, 200, REPLY_UUID, BODY_REQUIRED, MIME_ANY, LIMIT(limit_attachment), false },
	{ "unreal/{key}/", EVHTTP_REQ_POST, 200, REPLY_UUID, BODY_REQUIRED, MIME_ANY, LIMIT(limit_attachments), false },
	{ "security/", EVHTTP_REQ_POST, 200, REPLY_EMPTY, BODY_REQUIRED, MIME_SECURITY, LIMIT(limit_event), false },
	{ "csp-report/", EVHTTP_REQ_POST, 200, REPLY_EMPTY, BODY_REQUIRED, MIME_SECURITY, LIMIT(limit_event), false },
	{ "nel/", EVHTTP_REQ_POST, 200, REPLY_EMPTY, BODY_REQUIRED, MIME_NEL, LIMIT(limit_event), false },
	{ "events/*/attachments/", EVHTTP_REQ_POST, 201, REPLY_EMPTY, BODY_REQUIRED, MIME_ANY, LIMIT(limit_attachments), false },
	{ "cron/*/{key}/?", EVHTTP_REQ_POST | EVHTTP_REQ_GET, 202, REPLY_EMPTY, BODY_OPTIONAL, MIME_ANY, LIMIT(limit_event), false },
	{ "cron/*/?", EVHTTP_REQ_POST | EVHTTP_REQ_GET, 202, REPLY_EMPTY, BODY_OPTIONAL, MIME_ANY, LIMIT(limit_event), false },
};
static const struct endpoint tunnel_endpoint = {
	"envelope/", EVHTTP_REQ_POST, 200, REPLY_ID, BODY_REQUIRED, MIME_ANY, LIMIT(limit_envelope), true,
};

/* What ingest learned about one request before queueing it. */
struct ingest_req {
	struct evhttp_request *req;
	enum evhttp_cmd_type method;
	const struct endpoint *ep;
	const char *query;         /* raw, "" when none */
	long path_id;              /* -1 for the tunnel */
	const char *endpoint;      /* after /api/<id>/ */
	char path_key[AUTH_FIELD_MAX];  /* the key segment of unreal/cron paths, "" when none */
	char stored_endpoint[512]; /* endpoint with the key segment replaced by "{key}" */
	bool tunnel;
	enum codec_kind encoding;
	const char *body;
	size_t body_len;
	size_t decoded_len;        /* after Content-Encoding, measured against the endpoint's limit */
	char *decoded;             /* a compressed store body, decoded once (its event id is read) */
	struct auth_info auth;
};

/* ---- replies: every request gets exactly one, through these ---- */

static void add_cors(struct evkeyvalq *h)
{
	evhttp_add_header(h, "Access-Control-Allow-Origin", "*");
	evhttp_add_header(h, "Access-Control-Expose-Headers", "x-sentry-error, x-sentry-rate-limits, retry-after");
	evhttp_add_header(h, "Cross-Origin-Resource-Policy", "cross-origin");
}

static void reply_json(struct evhttp_request *req, int code, json_t *body)
{
	struct evbuffer *buf = evhttp_request_get_output_buffer(req);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;

	evhttp_add_header(h, "Content-Type", "application/json");
	add_cors(h);
	evbuffer_add_printf(buf, "%s", text != NULL ? text : "{}");
	free(text);
	json_decref(body);
	evhttp_send_reply(req, code, NULL, NULL);
}

/* The one way an error becomes an HTTP answer: status, JSON {"detail"}, optional Retry-After. */
static void reply_error(struct ingest *in, struct evhttp_request *req, int code, const char *detail,
			int retry_after)
{
	char ra[16];

	if (retry_after > 0) {
		snprintf(ra, sizeof(ra), "%d", retry_after);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", ra);
	}
	stats_add(in->r->stats, STATS_REJECTED, 1);
	/* No path or query: either can carry a key (unreal/cron paths, sentry_key, sentry_secret). */
	log_debug("ingest: answered %d: %s", code, detail);
	reply_json(req, code, json_pack("{s:s}", "detail", detail));
}

static void reply_preflight(struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	add_cors(h);
	evhttp_add_header(h, "Access-Control-Allow-Methods", "POST");
	evhttp_add_header(h, "Access-Control-Allow-Headers",
			  "x-sentry-auth, x-requested-with, x-forwarded-for, origin, referer, accept, content-type, "
			  "authentication, authorization, content-encoding, transfer-encoding");
	evhttp_add_header(h, "Access-Control-Max-Age", "3600");
	evhttp_send_reply(req, 200, "OK", NULL);
}

static void reply_status(struct ingest *in, struct evhttp_request *req)
{
	struct relay *r = in->r;
	bool connected = queue_ready(r->queue);
	const char *status = r->stopping ? "stopping" : connected ? "ok" : "degraded";
	json_t *o;

	size_t buf_bytes, buffered = queue_buffered(r->queue, &buf_bytes);

	o = json_pack("{s:s, s:s, s:I, s:{s:b}, s:{s:I, s:I, s:I, s:I, s:i}, s:o, s:o}", "status", status,
		      "version", SENTRYQ_VERSION, "uptime_s", (json_int_t)(time(NULL) - r->started), "redis",
		      "connected", connected, "queue", "pending", (json_int_t)queue_pending(r->queue), "bytes",
		      (json_int_t)queue_bytes(r->queue), "buffered", (json_int_t)buffered, "buffered_bytes",
		      (json_int_t)buf_bytes, "ingest_waiting", in->in_flight, "counters", stats_counters_json(r->stats),
		      "forward", forward_status_json(r->forward));
	reply_json(req, connected && !r->stopping ? 200 : 503, o);
}

/* ---- parsing ---- */

/* Collapse runs of '/' as Sentry does, so "//api//1///store/" routes like "/api/1/store/". */
static void normalise_path(const char *in, char *out, size_t len)
{
	size_t n = 0;

	for (; *in != '\0' && n + 1 < len; in++) {
		if (*in == '/' && n > 0 && out[n - 1] == '/')
			continue;
		out[n++] = *in;
	}
	out[n] = '\0';
}

/* "<prefix>/api/<digits>/<endpoint>": a DSN may carry a path prefix, so find the last "/api/<id>/". */
static int split_api_path(const char *path, long *id, const char **endpoint)
{
	const char *p = NULL, *s = path, *d;

	while ((s = strstr(s, "/api/")) != NULL) {
		if (isdigit((unsigned char)s[5]))
			p = s;
		s += 5;
	}
	if (p == NULL)
		return -1;
	d = p + 5;
	*id = strtol(d, NULL, 10);
	while (isdigit((unsigned char)*d))
		d++;
	if (*d != '/' || *id <= 0)
		return -1;
	*endpoint = d + 1;
	return 0;
}

/* Match ep against one pattern; a "{key}" segment is copied to key and replaced in stored. */
static bool match(const char *pat, const char *ep, char *key, size_t keylen, char *stored, size_t storedlen)
{
	size_t n = 0;

	key[0] = '\0';
	while (*pat != '\0') {
		if (strcmp(pat, "/?") == 0) {
			if (!(*ep == '\0' || strcmp(ep, "/") == 0))
				return false;
			snprintf(stored + n, storedlen - n, "%s", ep);
			return true;
		}
		if (*pat == '*' || *pat == '{') {
			size_t seg = strcspn(ep, "/");

			if (seg == 0)
				return false;
			if (*pat == '{') {
				snprintf(key, keylen, "%.*s", (int)seg, ep);
				n += (size_t)snprintf(stored + n, storedlen - n, "{key}");
				pat = strchr(pat, '}') + 1;
			} else {
				n += (size_t)snprintf(stored + n, storedlen - n, "%.*s", (int)seg, ep);
				pat++;
			}
			ep += seg;
			if (n >= storedlen)
				return false;
			continue;
		}
		if (*pat != *ep || n + 1 >= storedlen)
			return false;
		stored[n++] = *ep;
		stored[n] = '\0';
		pat++;
		ep++;
	}
	return *ep == '\0';
}

static const struct endpoint *find_endpoint(struct ingest_req *ir)
{
	for (size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++)
		if (match(endpoints[i].pattern, ir->endpoint, ir->path_key, sizeof(ir->path_key),
			  ir->stored_endpoint, sizeof(ir->stored_endpoint)))
			return &endpoints[i];
	return NULL;
}

/* The decoded start of the body: the body itself when it is not encoded. */
static int body_head(const struct ingest_req *ir, char **tmp, const char **head, size_t *len)
{
	*tmp = NULL;
	if (ir->encoding == CODEC_IDENTITY) {
		*head = ir->body;
		*len = ir->body_len;
		return 0;
	}
	if (codec_decode(ir->encoding, ir->body, ir->body_len, ENVELOPE_HEADER_PEEK, 1, tmp, len) != 0)
		return -1;
	*head = *tmp;
	return 0;
}

/* Cheap event id: the store body's or envelope header's own, else a fresh uuid4. */
static void pick_event_id(const struct ingest_req *ir, char id[ENVELOPE_ID_LEN + 1])
{
	const char *head;
	char *tmp = NULL;
	size_t len;
	int rc = -1;

	if (ir->ep->reply != REPLY_ID) {
		rc = -1;
	} else if (!ir->ep->envelope) {
		if (ir->encoding == CODEC_IDENTITY)
			rc = envelope_store_event_id(ir->body, ir->body_len, id);
		else if (ir->decoded != NULL)
			rc = envelope_store_event_id(ir->decoded, ir->decoded_len, id);
	} else if (body_head(ir, &tmp, &head, &len) == 0) {
		rc = envelope_event_id(head, len, id);
	}
	free(tmp);
	if (rc != 0)
		envelope_new_id(id);
}

static bool header_kept(const char *name, enum auth_carrier carrier)
{
	static const char *const kept[] = {
		"Content-Type", "Content-Encoding", "User-Agent", "Origin", "Referer", "sentry-trace", "baggage",
		"Sec-CH-UA", "Sec-CH-UA-Platform", "Sec-CH-UA-Platform-Version", "Sec-CH-UA-Model", "Sec-CH-UA-Mobile",
		"Accept-Language",
	};
	int c = tolower((unsigned char)name[0]);

	if (strcasecmp(name, "X-Sentry-Auth") == 0)
		return carrier == AUTH_X_SENTRY_AUTH;
	if (strcasecmp(name, "Authorization") == 0)
		return carrier == AUTH_AUTHORIZATION || carrier == AUTH_BASIC;
	/* Compare only the names that start with the same letter: this runs for every header. */
	for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
		if (tolower((unsigned char)kept[i][0]) == c && strcasecmp(name, kept[i]) == 0)
			return true;
	return false;
}

/* Kept headers as "Name: value\n" lines into buf; -1 when they do not fit. */
static int collect_headers(struct evhttp_request *req, enum auth_carrier carrier, char *buf, size_t len,
			   size_t *used)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	size_t n = 0;

	for (struct evkeyval *kv = h->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
		size_t kl, vl;

		if (!header_kept(kv->key, carrier))
			continue;
		kl = strlen(kv->key);
		vl = strlen(kv->value);
		if (n + kl + vl + 4 > len)
			return -1;
		memcpy(buf + n, kv->key, kl);
		memcpy(buf + n + kl, ": ", 2);
		memcpy(buf + n + kl + 2, kv->value, vl);
		n += kl + vl + 3;
		buf[n - 1] = '\n';
	}
	buf[n] = '\0';
	*used = n;
	return 0;
}

/* The X-Forwarded-For chain the SDK came with, with the peer appended (the client IP for Sentry). */
static void client_chain(struct evhttp_request *req, char *xff, size_t len)
{
	const char *chain = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Forwarded-For");
	char *peer = NULL;
	ev_uint16_t port;

	evhttp_connection_get_peer(evhttp_request_get_connection(req), &peer, &port);
	if (chain != NULL && *chain != '\0')
		snprintf(xff, len, "%s, %s", chain, peer != NULL ? peer : "");
	else
		snprintf(xff, len, "%s", peer != NULL ? peer : "");
}

/* ---- the pipeline ---- */

static void free_pending(struct pending *p)
{
	free(p);  /* headers and query live in the same allocation */
}

/* The answer Sentry gives on success, per endpoint. */
static void accepted(struct ingest *in, struct evhttp_request *req, const struct pending *p)
{
	static const unsigned char gif[] = { 'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0x80, 0, 0, 0, 0, 0, 0xff, 0xff,
					     0xff, 0x21, 0xf9, 4, 1, 0, 0, 0, 0, 0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2,
					     2, 0x44, 1, 0, 0x3b };
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	const char *id = p->event_id;

	stats_add(in->r->stats, STATS_ENQUEUED, 1);
	add_cors(h);
	if (p->ep->reply == REPLY_ID && !p->get) {
		/* The hot path: no JSON library for a fixed shape (the id is 32 hex digits). */
		char body[64];
		int n = snprintf(body, sizeof(body), "{\"id\":\"%s\"}", id);

		evhttp_add_header(h, "Content-Type", "application/json");
		evbuffer_add(evhttp_request_get_output_buffer(req), body, (size_t)n);
		evhttp_send_reply(req, p->ep->status, NULL, NULL);
		return;
	}
	if (p->ep->reply == REPLY_ID) {
		evhttp_add_header(h, "Content-Type", "image/gif");
		evbuffer_add(evhttp_request_get_output_buffer(req), gif, sizeof(gif));
	} else if (p->ep->reply == REPLY_UUID) {
		evhttp_add_header(h, "Content-Type", "text/plain");
		evbuffer_add_printf(evhttp_request_get_output_buffer(req), "%.8s-%.4s-%.4s-%.4s-%.12s", id, id + 8,
				    id + 12, id + 16, id + 20);
	}
	evhttp_send_reply(req, p->ep->status, NULL, NULL);
}

static void put_done(void *arg, int ok)
{
	struct pending *p = arg;
	struct ingest *in = p->in;

	in->in_flight--;
	if (p->req != NULL)
		evhttp_connection_set_closecb(p->evcon, NULL, NULL);
	/* Connection lost mid-write: the outcome is unknown, so keep a copy in memory (at-least-once). */
	if (ok < 0 && p->req != NULL && queue_put(in->r->queue, p->stream, &p->it, NULL, NULL) == 1) {
		stats_add(in->r->stats, STATS_BUFFERED, 1);
		ok = 1;
	}
	if (ok == 1)
		forward_kick(in->r->forward, p->target.upstream, p->target.project);
	if (p->req != NULL && ok == 1)
		accepted(in, p->req, p);
	else if (p->req != NULL)
		reply_error(in, p->req, 503, "queue unavailable: Redis did not accept the event", 1);
	else if (ok != 1)
		stats_add(in->r->stats, STATS_REJECTED, 1);
	free_pending(p);
}

static void client_gone(struct evhttp_connection *evcon, void *arg)
{
	struct pending *p = arg;

	(void)evcon;
	p->req = NULL;  /* the answer has nowhere to go; the write itself still completes */
}

/* Copy what the entry needs out of the request, which may be gone when Redis answers:
 * one allocation, with the kept headers and the query behind the struct. */
static struct pending *make_pending(struct ingest *in, struct ingest_req *ir, const struct route_target *t)
{
	char headers[KEPT_HEADERS_MAX];
	const char *query = ir->tunnel ? "" : ir->query;  /* the tunnel's own query is not Sentry's */
	size_t hlen, qlen = strlen(query);
	struct pending *p;

	if (collect_headers(ir->req, ir->auth.carrier, headers, sizeof(headers), &hlen) != 0 ||
	    (p = malloc(sizeof(*p) + hlen + qlen + 2)) == NULL)
		return NULL;
	memset(p, 0, sizeof(*p));
	p->headers = (char *)(p + 1);
	memcpy(p->headers, headers, hlen + 1);
	p->query = p->headers + hlen + 1;
	memcpy(p->query, query, qlen + 1);
	client_chain(ir->req, p->xff, sizeof(p->xff));
	p->in = in;
	p->req = ir->req;
	p->evcon = evhttp_request_get_connection(ir->req);
	p->target = *t;
	p->ep = ir->ep;
	p->get = ir->method == EVHTTP_REQ_GET;
	snprintf(p->endpoint, sizeof(p->endpoint), "%s", ir->tunnel ? "envelope/" : ir->stored_endpoint);
	snprintf(p->sdk_key, sizeof(p->sdk_key), "%s", ir->auth.key);
	pick_event_id(ir, p->event_id);
	queue_stream_name(in->r->queue, t->upstream->name, t->project->name, p->stream, sizeof(p->stream));
	p->it.method = p->get ? "GET" : "POST";
	p->it.endpoint = p->endpoint;
	p->it.query = p->query;
	p->it.headers = p->headers;
	p->it.client_ip = p->xff;
	p->it.sdk_key = p->sdk_key;
	p->it.event_id = p->event_id;
	p->it.carrier = ir->auth.carrier;
	p->it.has_secret = ir->auth.has_secret;
	p->it.body = ir->body;  /* the request's input buffer, alive until the request is answered */
	p->it.body_len = ir->body_len;
	return p;
}

static void enqueue(struct ingest *in, struct ingest_req *ir, const struct route_target *t)
{
	struct pending *p = make_pending(in, ir, t);

	if (p == NULL) {
		reply_error(in, ir->req, 431, "request headers too large", 0);
		return;
	}
	switch (queue_put(in->r->queue, p->stream, &p->it, put_done, p)) {
	case 0:
		in->in_flight++;
		evhttp_connection_set_closecb(p->evcon, client_gone, p);
		return;
	case 1:
		stats_add(in->r->stats, STATS_BUFFERED, 1);
		accepted(in, ir->req, p);
		break;
	default:
		reply_error(in, ir->req, 503, "queue unavailable: Redis is away and the memory buffer is full", 1);
		break;
	}
	free_pending(p);
}

/* Refuse what the queue cannot take (429, SDKs back off) and, if asked, pass upstream rate limits on. */
static int admit(struct ingest *in, struct evhttp_request *req, const struct route_target *t)
{
	const struct config *cfg = in->r->cfg;
	const char *limits;
	double left;
	char ra[24];

	if (queue_pending(in->r->queue) >= cfg->queue_max_pending ||
	    queue_bytes(in->r->queue) >= (long long)cfg->queue_max_bytes) {
		stats_add(in->r->stats, STATS_BACKPRESSURE, 1);
		reply_error(in, req, 429, "queue full: queue.max_pending or queue.max_bytes reached", 2);
		return -1;
	}
	if (cfg->rate_limits_passthrough && forward_parked(in->r->forward, t->upstream, t->project, &left, &limits)) {
		snprintf(ra, sizeof(ra), "%.0f", left + 0.5);
		if (limits[0] != '\0')
			evhttp_add_header(evhttp_request_get_output_headers(req), "X-Sentry-Rate-Limits", limits);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", ra);
		reply_error(in, req, 429, "rate limited by the upstream Sentry", 0);
		return -1;
	}
	return 0;
}

/* Credentials: one request carrier, the key segment of unreal/cron paths, or the envelope header dsn. */
static int authenticate(struct ingest *in, struct ingest_req *ir, long *route_id)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(ir->req);
	bool none_ok = ir->ep->envelope || ir->path_key[0] != '\0';
	const char *why, *head;
	char *tmp;
	size_t len;
	int status, rc;

	if (auth_from_request(evhttp_find_header(h, "X-Sentry-Auth"), evhttp_find_header(h, "Authorization"),
			      ir->query, none_ok, &ir->auth, &status, &why) != 0) {
		reply_error(in, ir->req, status, why, 0);
		return -1;
	}
	*route_id = ir->path_id;
	if (ir->path_key[0] != '\0') {
		if (ir->auth.carrier != AUTH_NONE) {
			reply_error(in, ir->req, 401, "multiple authorization payloads detected", 0);
			return -1;
		}
		ir->auth.carrier = AUTH_PATH;
		ir->auth.version = 7;
		snprintf(ir->auth.key, sizeof(ir->auth.key), "%s", ir->path_key);
	}
	if (ir->auth.carrier != AUTH_NONE)
		return 0;
	if (body_head(ir, &tmp, &head, &len) != 0) {
		reply_error(in, ir->req, 400, "invalid body: cannot decode Content-Encoding", 0);
		return -1;
	}
	rc = envelope_dsn(head, len, ir->auth.key, sizeof(ir->auth.key), route_id);
	free(tmp);
	if (rc != 0) {
		reply_error(in, ir->req, 401, rc > 0 ? "missing authorization information"
					      : "bad envelope authentication header", 0);
		return -1;
	}
	ir->auth.carrier = AUTH_ENVELOPE;
	ir->auth.version = 7;
	return 0;
}

static bool mime_ok(const struct ingest_req *ir)
{
	const char *ct = evhttp_find_header(evhttp_request_get_input_headers(ir->req), "Content-Type");

	if (ir->ep->mime == MIME_ANY)
		return true;
	if (ct == NULL)
		return false;
	if (ir->ep->mime == MIME_NEL)
		return strncasecmp(ct, "application/json", 16) == 0 || strncasecmp(ct, "application/reports+json", 24) == 0;
	return strcasestr(ct, "json") != NULL || strncasecmp(ct, "application/csp-report", 22) == 0 ||
	       strncasecmp(ct, "application/expect-", 19) == 0;
}

/* Size, encoding and type checks; the decoded size is measured, never trusted (zip bombs get 413). */
static int check_body(struct ingest *in, struct ingest_req *ir)
{
	const char *ce = evhttp_find_header(evhttp_request_get_input_headers(ir->req), "Content-Encoding");
	size_t limit = *(const size_t *)((const char *)in->r->cfg + ir->ep->limit_off);
	int rc;

	if (ir->body_len > in->r->cfg->max_body_size) {
		reply_error(in, ir->req, 413, "request body exceeds listen.max_body_size", 0);
		return -1;
	}
	if (ir->body_len == 0 && ir->ep->body == BODY_REQUIRED) {
		reply_error(in, ir->req, 400, "empty request body", 0);
		return -1;
	}
	ir->encoding = codec_from_name(ce);
	if (ir->encoding == CODEC_UNKNOWN) {
		reply_error(in, ir->req, 415, "unsupported Content-Encoding", 0);
		return -1;
	}
	if (!mime_ok(ir)) {
		reply_error(in, ir->req, 415, "unsupported Content-Type for this endpoint", 0);
		return -1;
	}
	/* A compressed body whose event id is read is decoded once, here; others are only measured. */
	if (ir->encoding != CODEC_IDENTITY && ir->ep->reply == REPLY_ID && !ir->ep->envelope)
		rc = codec_decode(ir->encoding, ir->body, ir->body_len, limit, 0, &ir->decoded, &ir->decoded_len);
	else
		rc = codec_measure(ir->encoding, ir->body, ir->body_len, limit, &ir->decoded_len);
	if (rc != 0) {
		reply_error(in, ir->req, rc == -2 ? 413 : 400, rc == -2 ? "request body exceeds the endpoint's size limit (limits.*)"
						      : "invalid body: cannot decode Content-Encoding", 0);
		return -1;
	}
	return 0;
}

static void handle_ingest(struct ingest *in, struct ingest_req *ir)
{
	struct evbuffer *body = evhttp_request_get_input_buffer(ir->req);
	struct route_target t;
	char detail[256];
	long route_id;

	ir->body_len = evbuffer_get_length(body);
	ir->body = ir->body_len > 0 ? (const char *)evbuffer_pullup(body, -1) : "";
	if (check_body(in, ir) != 0 || authenticate(in, ir, &route_id) != 0)
		goto out;
	if (route_lookup(in->r->routes, ir->auth.key, ir->auth.has_secret ? ir->auth.secret : NULL, route_id, &t,
			 detail, sizeof(detail)) != 0) {
		reply_error(in, ir->req, 403, detail, 0);
		goto out;
	}
	if (admit(in, ir->req, &t) == 0)
		enqueue(in, ir, &t);
out:
	free(ir->decoded);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct ingest *in = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	struct ingest_req ir;
	char path[1024];

	memset(&ir, 0, sizeof(ir));
	ir.req = req;
	ir.method = evhttp_request_get_command(req);
	normalise_path(evhttp_uri_get_path(uri) ? evhttp_uri_get_path(uri) : "/", path, sizeof(path));
	ir.query = evhttp_uri_get_query(uri) ? evhttp_uri_get_query(uri) : "";
	if (strcmp(path, "/status") == 0 && (ir.method == EVHTTP_REQ_GET || ir.method == EVHTTP_REQ_HEAD)) {
		reply_status(in, req);  /* health checks are not counted as traffic */
		return;
	}
	stats_add(in->r->stats, STATS_RECEIVED, 1);
	ir.tunnel = in->r->cfg->tunnel_path[0] != '\0' && strcmp(path, in->r->cfg->tunnel_path) == 0;
	ir.path_id = -1;
	if (ir.tunnel) {
		ir.ep = &tunnel_endpoint;
		ir.endpoint = "envelope/";
		snprintf(ir.stored_endpoint, sizeof(ir.stored_endpoint), "envelope/");
	} else if (split_api_path(path, &ir.path_id, &ir.endpoint) != 0 || (ir.ep = find_endpoint(&ir)) == NULL) {
		reply_error(in, req, 404, "not an ingest endpoint", 0);
		return;
	}
	if (ir.method == EVHTTP_REQ_OPTIONS) {
		reply_preflight(req);
		return;
	}
	if ((ir.ep->methods & ir.method) == 0) {
		reply_error(in, req, 405, "method not allowed on this endpoint", 0);
		return;
	}
	if (in->r->stopping) {
		reply_error(in, req, 503, "shutting down", 1);
		return;
	}
	handle_ingest(in, &ir);
}

struct ingest *ingest_new(struct relay *r)
{
	struct ingest *in = calloc(1, sizeof(*in));
	const struct config *cfg = r->cfg;
	struct timeval tv;
	size_t hard_cap;

	if (in == NULL)
		return NULL;
	in->r = r;
	in->http = evhttp_new(r->base);
	if (in->http == NULL)
		goto fail;
	/* evhttp's own limit answers with an HTML page and closes; keep it well above ours so that
	 * bodies just over listen.max_body_size get the JSON 413 from handle_ingest. */
	hard_cap = cfg->max_body_size + (cfg->max_body_size > (1u << 20) ? cfg->max_body_size : (1u << 20));
	evhttp_set_max_body_size(in->http, (ev_ssize_t)hard_cap);
	evhttp_set_max_headers_size(in->http, 64 * 1024);
	evhttp_set_allowed_methods(in->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
				   EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH | EVHTTP_REQ_DELETE);
	tv.tv_sec = (long)cfg->client_timeout;
	tv.tv_usec = (long)((cfg->client_timeout - (double)tv.tv_sec) * 1e6);
	evhttp_set_timeout_tv(in->http, &tv);
	/* Empty success answers (security, nel, attachments, cron) are not HTML. */
	evhttp_set_default_content_type(in->http, "text/plain; charset=utf-8");
	evhttp_set_gencb(in->http, on_request, in);
	in->bound = evhttp_bind_socket_with_handle(in->http, cfg->listen_address, (ev_uint16_t)cfg->listen_port);
	if (in->bound == NULL) {
		log_error("ingest: cannot listen on %s:%d", cfg->listen_address, cfg->listen_port);
		goto fail;
	}
	log_info("ingest: listening on %s:%d", cfg->listen_address, cfg->listen_port);
	return in;
fail:
	ingest_free(in);
	return NULL;
}

void ingest_free(struct ingest *in)
{
	if (in == NULL)
		return;
	if (in->http != NULL)
		evhttp_free(in->http);
	free(in);
}

void ingest_stop_accepting(struct ingest *in)
{
	if (in->bound != NULL) {
		evhttp_del_accept_socket(in->http, in->bound);
		in->bound = NULL;
	}
}

int ingest_in_flight(const struct ingest *in)
{
	return in->in_flight;
}
