/* ingest.c - SDK requests: match, authenticate, route, classify and queue in Redis, then answer once. */
#define _GNU_SOURCE  /* strcasestr */
#include "ingest.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "auth.h"
#include "category.h"
#include "clock.h"
#include "codec.h"
#include "config.h"
#include "endpoint.h"
#include "entry.h"
#include "envelope.h"
#include "httpd.h"
#include "throttle.h"
#include "log.h"
#include "queue.h"
#include "relay.h"
#include "route.h"
#include "stats.h"
#include "text.h"

#define KEPT_HEADERS_MAX 16384
#define EVENT_TYPE_MAX 32

struct ingest {
	struct relay *r;
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
	struct entry it;
	char *headers;
	char *query;
	char endpoint[ENDPOINT_STORED_MAX];
	char sdk_key[AUTH_FIELD_MAX];
	char xff[1024];
	char stream[ENTRY_KEY_MAX];
	char event_id[ENVELOPE_ID_LEN + 1];
};

/* What ingest learned about one request before queueing it. */
struct ingest_req {
	struct evhttp_request *req;
	enum evhttp_cmd_type method;
	struct endpoint_match m;   /* endpoint, project id, path key, stored endpoint */
	const char *query;         /* raw, "" when none */
	long path_id;              /* -1 for the tunnel */
	bool tunnel;
	enum codec_kind encoding;
	const char *body;
	size_t body_len;
	size_t decoded_len;        /* after Content-Encoding, measured against the endpoint's limit */
	char *decoded;             /* a store body that had to be decoded (its event id is read) */
	category_mask categories;  /* classified once, here */
	struct auth_info auth;
};

/* make_pending's answer: 431 and 503 are different failures. */
enum pending_result {
	PENDING_OK = 0,
	PENDING_HEADERS_TOO_LARGE,
	PENDING_NOMEM,
};

/* ---- replies: every request gets exactly one, through these ---- */

static void add_cors(struct evkeyvalq *h)
{
	evhttp_add_header(h, "Access-Control-Allow-Origin", "*");
	evhttp_add_header(h, "Access-Control-Expose-Headers", "x-sentry-error, x-sentry-rate-limits, retry-after");
	evhttp_add_header(h, "Cross-Origin-Resource-Policy", "cross-origin");
}

/* The one way an ingest error becomes an HTTP answer: CORS, status, JSON {"detail"}. */
static void reply_error(struct ingest *in, struct evhttp_request *req, int code, const char *detail,
			int retry_after)
{
	stats_add(in->r->stats, STATS_REJECTED, 1);
	/* No path or query: either can carry a key (unreal/cron paths, sentry_key, sentry_secret). */
	log_debug("ingest: answered %d: %s", code, detail);
	add_cors(evhttp_request_get_output_headers(req));
	httpd_reply_error(req, code, detail, retry_after);
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

/* ---- the body: size, encoding, event id and categories ---- */

/* The decoded start of the body: the body itself when it is not encoded. */
static enum codec_result body_head(const struct ingest_req *ir, char **tmp, const char **head, size_t *len)
{
	enum codec_result r;

	*tmp = NULL;
	if (ir->encoding == CODEC_IDENTITY) {
		*head = ir->body;
		*len = ir->body_len;
		return CODEC_OK;
	}
	r = codec_decode(ir->encoding, ir->body, ir->body_len, ENVELOPE_HEADER_PEEK, CODEC_FIRST_LINE, tmp, len);
	*head = *tmp;
	return r;
}

/* raven-python and old raven-js post base64(zlib(json)) as application/octet-stream: Sentry
 * decodes it, so sentryq reads the event inside it too (its id answers the SDK). */
static bool raven_body(const struct ingest_req *ir)
{
	return ir->m.ep->kind == EP_KIND_STORE && ir->encoding == CODEC_IDENTITY && ir->body_len > 2 &&
	       ir->body[0] == 'e' && ir->body[1] == 'J';
}

static enum codec_result decode_raven(struct ingest_req *ir, size_t limit)
{
	size_t cap = ir->body_len / 4 * 3 + 3, n;
	unsigned char *z = malloc(cap);
	enum codec_result r = CODEC_CORRUPT;

	if (z == NULL)
		return CODEC_NOMEM;
	if (text_b64_decode(ir->body, ir->body_len, z, cap, &n) == TEXT_OK)
		r = codec_decode(CODEC_DEFLATE, (const char *)z, n, limit, CODEC_WHOLE, &ir->decoded, &ir->decoded_len);
	free(z);
	/* Not base64 of zlib after all: an opaque body Sentry will judge; the id is a fresh one. */
	return r == CODEC_CORRUPT ? CODEC_OK : r;
}

/* A compressed envelope: decoded once through a scratch window, measured and scanned for its
 * item types on the way. */
static enum codec_result scan_encoded_envelope(struct ingest_req *ir, size_t limit)
{
	struct codec_stream *s = codec_stream_new(ir->encoding, ir->body, ir->body_len, limit);
	struct envelope_scan *scan = malloc(sizeof(*scan));
	char scratch[64 * 1024];
	enum codec_result r = CODEC_NOMEM;
	size_t got;

	if (s != NULL && scan != NULL) {
		envelope_scan_init(scan);
		while ((r = codec_stream_next(s, scratch, sizeof(scratch), &got)) == CODEC_MORE || (r == CODEC_OK && got))
			envelope_scan_feed(scan, scratch, got);
		ir->decoded_len = codec_stream_produced(s);
		ir->categories = envelope_scan_end(scan);
	}
	codec_stream_free(s);
	free(scan);
	return r;
}

/* Decode or measure as the endpoint needs, and classify the request's data categories. */
static enum codec_result read_body(struct ingest_req *ir, size_t limit)
{
	const struct endpoint *ep = ir->m.ep;
	char type[EVENT_TYPE_MAX];
	enum codec_result r;

	if (ep->kind == EP_KIND_ENVELOPE) {
		if (ir->encoding != CODEC_IDENTITY)
			return scan_encoded_envelope(ir, limit);
		ir->categories = envelope_categories(ir->body, ir->body_len);
		return codec_measure(CODEC_IDENTITY, ir->body, ir->body_len, limit, &ir->decoded_len);
	}
	if (ep->kind != EP_KIND_STORE) {
		ir->categories = ep->categories;
		return codec_measure(ir->encoding, ir->body, ir->body_len, limit, &ir->decoded_len);
	}
	/* A store body's event id and type are read: a compressed one is decoded once, here. */
	if (raven_body(ir))
		r = decode_raven(ir, limit);
	else if (ir->encoding != CODEC_IDENTITY)
		r = codec_decode(ir->encoding, ir->body, ir->body_len, limit, CODEC_WHOLE, &ir->decoded, &ir->decoded_len);
	else
		r = codec_measure(CODEC_IDENTITY, ir->body, ir->body_len, limit, &ir->decoded_len);
	if (r == CODEC_OK) {
		const char *b = ir->decoded != NULL ? ir->decoded : ir->body;
		size_t n = ir->decoded != NULL ? ir->decoded_len : ir->body_len;

		ir->categories = category_of_event(envelope_store_type(b, n, type, sizeof(type)) == ENVELOPE_OK ? type
														: NULL);
	}
	return r;
}

/* Cheap event id: the store body's or envelope header's own, else a fresh uuid4. */
static void pick_event_id(const struct ingest_req *ir, char id[ENVELOPE_ID_LEN + 1])
{
	enum envelope_result rc = ENVELOPE_NONE;
	const char *head;
	char *tmp = NULL;
	size_t len;

	if (ir->m.ep->reply != EP_REPLY_ID) {
		rc = ENVELOPE_NONE;
	} else if (ir->m.ep->kind == EP_KIND_STORE) {
		if (ir->decoded != NULL)
			rc = envelope_store_event_id(ir->decoded, ir->decoded_len, id);
		else if (ir->encoding == CODEC_IDENTITY)
			rc = envelope_store_event_id(ir->body, ir->body_len, id);
	} else if (body_head(ir, &tmp, &head, &len) == CODEC_OK) {
		rc = envelope_event_id(head, len, id);
	}
	free(tmp);
	if (rc != ENVELOPE_OK)
		envelope_new_id(id);
}

/* ---- headers kept for the upstream ---- */

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

/* ---- the answer ---- */

/* With rate_limits.passthrough, SDKs learn the limits in force from every answer: they honour
 * X-Sentry-Rate-Limits on a 200 too, and stop sending what Sentry would refuse. */
static void add_limits(struct ingest *in, struct evkeyvalq *h, const struct route_target *t)
{
	char buf[THROTTLE_HEADER_MAX];

	if (in->r->cfg->rate_limits_passthrough &&
	    throttle_header(in->r->throttle, t->upstream->name, t->project->name, clock_mono(), buf, sizeof(buf)) > 0)
		evhttp_add_header(h, "X-Sentry-Rate-Limits", buf);
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
	add_limits(in, h, &p->target);
	if (p->ep->reply == EP_REPLY_ID && !p->get) {
		/* The hot path: no JSON library for a fixed shape (the id is 32 hex digits). */
		char body[64];
		int n = snprintf(body, sizeof(body), "{\"id\":\"%s\"}", id);

		evhttp_add_header(h, "Content-Type", "application/json");
		evbuffer_add(evhttp_request_get_output_buffer(req), body, (size_t)n);
		evhttp_send_reply(req, p->ep->status, NULL, NULL);
		return;
	}
	if (p->ep->reply == EP_REPLY_ID) {
		evhttp_add_header(h, "Content-Type", "image/gif");
		evbuffer_add(evhttp_request_get_output_buffer(req), gif, sizeof(gif));
	} else if (p->ep->reply == EP_REPLY_UUID) {
		evhttp_add_header(h, "Content-Type", "text/plain");
		evbuffer_add_printf(evhttp_request_get_output_buffer(req), "%.8s-%.4s-%.4s-%.4s-%.12s", id, id + 8,
				    id + 12, id + 16, id + 20);
	}
	evhttp_send_reply(req, p->ep->status, NULL, NULL);
}

/* ---- queueing ---- */

static void put_done(void *arg, enum queue_done r)
{
	struct pending *p = arg;
	struct ingest *in = p->in;
	bool ok = r == QUEUE_DONE_OK;

	if (p->req != NULL)
		evhttp_connection_set_closecb(p->evcon, NULL, NULL);
	/* Connection lost mid-write: the outcome is unknown, so keep a copy in memory (at-least-once). */
	if (r == QUEUE_DONE_LOST && p->req != NULL &&
	    queue_put(in->r->queue, p->stream, &p->it, NULL, NULL) == QUEUE_PUT_BUFFERED) {
		stats_add(in->r->stats, STATS_BUFFERED, 1);
		ok = true;
	}
	if (p->req != NULL && ok)
		accepted(in, p->req, p);
	else if (p->req != NULL && r == QUEUE_DONE_UNREPLICATED)  /* queued; may still be delivered */
		reply_error(in, p->req, 503, "queue unavailable: too few Redis replicas confirmed the event", 1);
	else if (p->req != NULL)
		reply_error(in, p->req, 503, "queue unavailable: Redis did not accept the event", 1);
	else if (!ok)
		stats_add(in->r->stats, STATS_REJECTED, 1);
	free(p);  /* headers and query live in the same allocation */
}

static void client_gone(struct evhttp_connection *evcon, void *arg)
{
	struct pending *p = arg;

	(void)evcon;
	p->req = NULL;  /* the answer has nowhere to go; the write itself still completes */
}

static void fill_entry(struct pending *p, const struct ingest_req *ir)
{
	p->it.method = p->get ? "GET" : "POST";
	p->it.endpoint = p->endpoint;
	p->it.query = p->query;
	p->it.headers = p->headers;
	p->it.client_ip = p->xff;
	p->it.sdk_key = p->sdk_key;
	p->it.event_id = p->event_id;
	p->it.carrier = ir->auth.carrier;
	p->it.has_secret = ir->auth.has_secret;
	p->it.categories = ir->categories;
	p->it.body = ir->body;  /* the request's input buffer, alive until the request is answered */
	p->it.body_len = ir->body_len;
}

/* Copy what the entry needs out of the request, which may be gone when Redis answers:
 * one allocation, with the kept headers and the query behind the struct. */
static enum pending_result make_pending(struct ingest *in, struct ingest_req *ir, const struct route_target *t,
					struct pending **out)
{
	char headers[KEPT_HEADERS_MAX];
	const char *query = ir->tunnel ? "" : ir->query;  /* the tunnel's own query is not Sentry's */
	size_t hlen, qlen = strlen(query);
	struct pending *p;

	if (collect_headers(ir->req, ir->auth.carrier, headers, sizeof(headers), &hlen) != 0)
		return PENDING_HEADERS_TOO_LARGE;
	if ((p = malloc(sizeof(*p) + hlen + qlen + 2)) == NULL)
		return PENDING_NOMEM;
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
	p->ep = ir->m.ep;
	p->get = ir->method == EVHTTP_REQ_GET;
	snprintf(p->endpoint, sizeof(p->endpoint), "%s", ir->tunnel ? "envelope/" : ir->m.stored);
	snprintf(p->sdk_key, sizeof(p->sdk_key), "%s", ir->auth.key);
	pick_event_id(ir, p->event_id);
	if (queue_stream(in->r->queue, t->upstream->name, t->project->name, p->stream, sizeof(p->stream)) != 0) {
		free(p);
		return PENDING_NOMEM;
	}
	fill_entry(p, ir);
	*out = p;
	return PENDING_OK;
}

static void enqueue(struct ingest *in, struct ingest_req *ir, const struct route_target *t)
{
	struct pending *p = NULL;

	switch (make_pending(in, ir, t, &p)) {
	case PENDING_OK:
		break;
	case PENDING_HEADERS_TOO_LARGE:
		reply_error(in, ir->req, 431, "request headers too large", 0);
		return;
	case PENDING_NOMEM:
		reply_error(in, ir->req, 503, "out of memory", 1);
		return;
	}
	switch (queue_put(in->r->queue, p->stream, &p->it, put_done, p)) {
	case QUEUE_PUT_SENT:
		evhttp_connection_set_closecb(p->evcon, client_gone, p);
		return;
	case QUEUE_PUT_BUFFERED:
		stats_add(in->r->stats, STATS_BUFFERED, 1);
		accepted(in, ir->req, p);
		break;
	case QUEUE_PUT_REFUSED:
		reply_error(in, ir->req, 503, "queue unavailable: Redis is away and the memory buffer is full", 1);
		break;
	}
	free(p);
}

/* Refuse what the queue cannot take (429, SDKs back off) and, if asked, what Sentry would refuse:
 * a request all of whose categories are rate-limited. */
static int admit(struct ingest *in, struct ingest_req *ir, const struct route_target *t)
{
	const struct config *cfg = in->r->cfg;
	struct evkeyvalq *h = evhttp_request_get_output_headers(ir->req);
	double left;
	char ra[24];

	if (queue_pending(in->r->queue) >= cfg->queue_max_pending ||
	    queue_bytes(in->r->queue) >= (long long)cfg->queue_max_bytes) {
		stats_add(in->r->stats, STATS_BACKPRESSURE, 1);
		reply_error(in, ir->req, 429, "queue full: queue.max_pending or queue.max_bytes reached", 2);
		return -1;
	}
	if (cfg->rate_limits_passthrough && throttle_all_limited(in->r->throttle, t->upstream->name, t->project->name,
							       ir->categories, clock_mono(), &left)) {
		snprintf(ra, sizeof(ra), "%.0f", ceil(left));
		add_limits(in, h, t);
		evhttp_add_header(h, "Retry-After", ra);
		reply_error(in, ir->req, 429, "rate limited by the upstream Sentry", 0);
		return -1;
	}
	return 0;
}

/* ---- authentication and checks ---- */

/* No request carrier, no path key: the envelope header dsn is the credential (the tunnel). */
static int envelope_auth(struct ingest *in, struct ingest_req *ir, long *route_id)
{
	enum envelope_result rc;
	const char *head;
	char *tmp;
	size_t len;

	if (body_head(ir, &tmp, &head, &len) != CODEC_OK) {
		free(tmp);
		reply_error(in, ir->req, 400, "invalid body: cannot decode Content-Encoding", 0);
		return -1;
	}
	rc = envelope_dsn(head, len, ir->auth.key, sizeof(ir->auth.key), route_id);
	free(tmp);
	if (rc != ENVELOPE_OK) {
		reply_error(in, ir->req, 401, rc == ENVELOPE_NONE ? "missing authorization information"
						     : "bad envelope authentication header", 0);
		return -1;
	}
	ir->auth.carrier = AUTH_ENVELOPE;
	ir->auth.version = 7;
	return 0;
}

/* Credentials: one request carrier, the key segment of unreal/cron paths, or the envelope header dsn. */
static int authenticate(struct ingest *in, struct ingest_req *ir, long *route_id)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(ir->req);
	bool none_ok = ir->m.ep->kind == EP_KIND_ENVELOPE || ir->m.path_key[0] != '\0';
	const char *why;
	int status;

	if (auth_from_request(evhttp_find_header(h, "X-Sentry-Auth"), evhttp_find_header(h, "Authorization"),
			      ir->query, none_ok, &ir->auth, &status, &why) != 0) {
		reply_error(in, ir->req, status, why, 0);
		return -1;
	}
	*route_id = ir->path_id;
	if (ir->m.path_key[0] != '\0') {
		if (ir->auth.carrier != AUTH_NONE) {
			reply_error(in, ir->req, 401, "multiple authorization payloads detected", 0);
			return -1;
		}
		ir->auth.carrier = AUTH_PATH;
		ir->auth.version = 7;
		snprintf(ir->auth.key, sizeof(ir->auth.key), "%s", ir->m.path_key);
	}
	if (ir->auth.carrier != AUTH_NONE)
		return 0;
	return envelope_auth(in, ir, route_id);
}

static bool mime_ok(const struct ingest_req *ir)
{
	const char *ct = evhttp_find_header(evhttp_request_get_input_headers(ir->req), "Content-Type");

	if (ir->m.ep->mime == EP_MIME_ANY)
		return true;
	if (ct == NULL)
		return false;
	if (ir->m.ep->mime == EP_MIME_NEL)
		return strncasecmp(ct, "application/json", 16) == 0 || strncasecmp(ct, "application/reports+json", 24) == 0;
	return strcasestr(ct, "json") != NULL || strncasecmp(ct, "application/csp-report", 22) == 0 ||
	       strncasecmp(ct, "application/expect-", 19) == 0;
}

static size_t endpoint_limit(const struct config *cfg, enum endpoint_limit l)
{
	switch (l) {
	case EP_LIMIT_EVENT: return cfg->limit_event;
	case EP_LIMIT_ENVELOPE: return cfg->limit_envelope;
	case EP_LIMIT_ATTACHMENT: return cfg->limit_attachment;
	case EP_LIMIT_ATTACHMENTS: return cfg->limit_attachments;
	}
	return cfg->limit_event;
}

/* Size, encoding and type checks; the decoded size is measured, never trusted (zip bombs get 413). */
static int check_body(struct ingest *in, struct ingest_req *ir)
{
	const char *ce = evhttp_find_header(evhttp_request_get_input_headers(ir->req), "Content-Encoding");
	enum codec_result rc;

	if (ir->body_len > in->r->cfg->max_body_size) {
		reply_error(in, ir->req, 413, "request body exceeds listen.max_body_size", 0);
		return -1;
	}
	if (ir->body_len == 0 && ir->m.ep->body == EP_BODY_REQUIRED) {
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
	rc = read_body(ir, endpoint_limit(in->r->cfg, ir->m.ep->limit));
	if (rc == CODEC_OK)
		return 0;
	if (rc == CODEC_TOO_LARGE)
		reply_error(in, ir->req, 413, "request body exceeds the endpoint's size limit (limits.*)", 0);
	else if (rc == CODEC_NOMEM)
		reply_error(in, ir->req, 503, "out of memory", 1);
	else
		reply_error(in, ir->req, 400, "invalid body: cannot decode Content-Encoding", 0);
	return -1;
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
	if (admit(in, ir, &t) == 0)
		enqueue(in, ir, &t);
out:
	free(ir->decoded);
}

static unsigned ep_method(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET: return EP_GET;
	case EVHTTP_REQ_POST: return EP_POST;
	case EVHTTP_REQ_HEAD: return EP_HEAD;
	case EVHTTP_REQ_OPTIONS: return EP_OPTIONS;
	case EVHTTP_REQ_PUT: return EP_PUT;
	case EVHTTP_REQ_PATCH: return EP_PATCH;
	case EVHTTP_REQ_DELETE: return EP_DELETE;
	default: return 0;
	}
}

/* Which endpoint: the tunnel path, or "<prefix>/api/<id>/<endpoint>". -1 when answered. */
static int find_endpoint(struct ingest *in, struct ingest_req *ir, const char *path)
{
	const struct config *cfg = in->r->cfg;

	ir->path_id = -1;
	ir->tunnel = cfg->tunnel_path[0] != '\0' && strcmp(path, cfg->tunnel_path) == 0;
	if (ir->tunnel) {
		ir->m.ep = endpoint_tunnel();
		snprintf(ir->m.stored, sizeof(ir->m.stored), "envelope/");
		return 0;
	}
	switch (endpoint_match(endpoint_builtin(), path, &ir->m)) {
	case EP_MATCHED:
		ir->path_id = (long)ir->m.project_id;
		return 0;
	case EP_BAD_PROJECT_ID:
		reply_error(in, ir->req, 400, "invalid project id in the path", 0);
		return -1;
	case EP_NOT_FOUND:
		break;
	}
	reply_error(in, ir->req, 404, "not an ingest endpoint", 0);
	return -1;
}

bool ingest_handle(void *arg, struct evhttp_request *req, const char *path)
{
	struct ingest *in = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	struct ingest_req ir;

	memset(&ir, 0, sizeof(ir));
	ir.req = req;
	ir.method = evhttp_request_get_command(req);
	ir.query = uri != NULL && evhttp_uri_get_query(uri) ? evhttp_uri_get_query(uri) : "";
	stats_add(in->r->stats, STATS_RECEIVED, 1);
	if (find_endpoint(in, &ir, path) != 0)
		return true;
	if (ir.method == EVHTTP_REQ_OPTIONS) {
		reply_preflight(req);
		return true;
	}
	if ((ir.m.ep->methods & ep_method(ir.method)) == 0)
		reply_error(in, req, 405, "method not allowed on this endpoint", 0);
	else if (in->r->stopping)
		reply_error(in, req, 503, "shutting down", 1);
	else
		handle_ingest(in, &ir);
	return true;
}

struct ingest *ingest_new(struct relay *r)
{
	struct ingest *in = calloc(1, sizeof(*in));

	if (in != NULL)
		in->r = r;
	return in;
}

void ingest_free(struct ingest *in)
{
	free(in);
}
