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
#include "bodyjob.h"
#include "budget.h"
#include "category.h"
#include "clock.h"
#include "codec.h"
#include "config.h"
#include "endpoint.h"
#include "entry.h"
#include "envelope.h"
#include "generation.h"
#include "httpd.h"
#include "intake.h"
#include "throttle.h"
#include "log.h"
#include "queue.h"
#include "relay.h"
#include "request.h"
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
	struct generation *gen;   /* entered: target and ep point into it */
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
	char stream[QUEUE_STREAMS_MAX][ENTRY_KEY_MAX];   /* the project's, then each mirror's */
	const char *streams[QUEUE_STREAMS_MAX];
	size_t nstreams;
	char event_id[ENVELOPE_ID_LEN + 1];
	char *owned_body;       /* a body rewritten at ingest, freed with the pending */
	struct evbuffer *kept;  /* a large body taken from a request that went away mid-write */
	size_t kept_bytes;      /* its share of the body budget */
};

/* What ingest learned about one request before queueing it. */
struct ingest_req {
	struct evhttp_request *req;
	struct generation *gen;    /* the config it is matched and routed in (entered by a wait or a pending) */
	enum evhttp_cmd_type method;
	struct endpoint_match m;   /* endpoint, project id, path key, stored endpoint */
	const char *query;         /* raw, "" when none */
	long path_id;              /* -1 for the tunnel */
	bool tunnel;
	enum codec_kind encoding;
	const char *body;
	size_t body_len;
	struct bodyjob *job;       /* reads the body in bounded steps (bodyjob.h) */
	char *decoded;             /* a raven store body, decoded (its event id is read) */
	size_t decoded_len;
	char *rewritten;           /* a compressed envelope with its header rewritten, once, here */
	size_t rewritten_len;
	const char *rewrite_key;   /* the real key that rewrite put in it */
	category_mask categories;  /* classified once, here */
	struct auth_info auth;
	struct route_target target;
};

/* A request whose body takes more than one step: it goes on from a deferred event, between other
 * requests, and stops if the client goes away meanwhile. */
struct body_wait {
	struct ingest *in;
	struct ingest_req ir;
	struct event *ev;
	struct evhttp_connection *evcon;
	bool rewriting;            /* phase two (the header rewrite) */
	bool gone;
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
	/* As Relay's CORS layer (tower-http): caches must key browser answers on these. */
	evhttp_add_header(h, "Vary", "origin, access-control-request-method, access-control-request-headers");
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

/* ---- headers kept for the upstream ---- */

/* Kept headers as "Name: value\n" lines into buf; -1 when they do not fit. */
static int collect_headers(const struct config *cfg, struct evhttp_request *req, enum auth_carrier carrier,
			   char *buf, size_t len, size_t *used)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	size_t n = 0;

	for (struct evkeyval *kv = h->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
		size_t kl, vl;

		if (intake_header_kept(cfg, kv->key, carrier) == NULL)
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

	/* A mirrored project's SDKs must keep sending what another destination still takes. */
	if (in->r->cfg->rate_limits_passthrough && t->project->nmirrors == 0 &&
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

static void free_pending(struct pending *p)
{
	if (p->kept != NULL) {
		evbuffer_free(p->kept);
		budget_give(p->in->r->budget, p->kept_bytes);
	}
	free(p->owned_body);
	generation_leave(p->gen);
	free(p);  /* headers and query live in the same allocation */
}

static void put_done(void *arg, enum queue_done r)
{
	struct pending *p = arg;
	struct ingest *in = p->in;
	bool ok = r == QUEUE_DONE_OK;

	if (p->req != NULL)
		evhttp_connection_set_closecb(p->evcon, NULL, NULL);
	/* Connection lost mid-write: the outcome is unknown, so keep a copy in memory (at-least-once). */
	if (r == QUEUE_DONE_LOST && p->req != NULL &&
	    queue_put(in->r->queue, p->streams, p->nstreams, &p->it, NULL, NULL) == QUEUE_PUT_BUFFERED) {
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
	free_pending(p);
}

/*
 * A large body is written to Redis in chunks, after the request may be gone: the pending takes
 * the body's buffer over (its chains move, the bytes stay where they are, so the entry's pointer
 * holds), and its share of the body budget with it. evhttp frees the request after this.
 */
static void keep_body(struct pending *p)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(p->req);
	unsigned char *at;

	if (p->it.body_len <= QUEUE_INLINE_MAX || p->owned_body != NULL || p->kept != NULL)
		return;
	if ((p->kept = evbuffer_new()) != NULL && evbuffer_add_buffer(p->kept, in) == 0) {
		/* One chain already (ingest read it contiguously): the same bytes, no copy. */
		if ((at = evbuffer_pullup(p->kept, -1)) != NULL)
			p->it.body = (const char *)at;
		p->kept_bytes = p->it.body_len;
		budget_force(p->in->r->budget, p->kept_bytes);
		return;
	}
	/* Not movable: a copy (rare: the client left while its large body was being written). */
	if ((p->owned_body = malloc(p->it.body_len)) != NULL) {
		memcpy(p->owned_body, p->it.body, p->it.body_len);
		p->it.body = p->owned_body;
		return;
	}
	/* Out of memory: the write ends short, so its put script refuses it (the body key's length
	 * is checked) and nothing half-written is queued. The client got no answer: nothing is lost
	 * that was accepted. */
	log_error("ingest: out of memory keeping a large body whose client left; it is not queued");
	p->it.body = "";
	p->it.body_len = 0;
}

static void client_gone(struct evhttp_connection *evcon, void *arg)
{
	struct pending *p = arg;

	(void)evcon;
	keep_body(p);
	p->req = NULL;  /* the answer has nowhere to go; the write itself still completes */
}

/* The method the upstream gets: config endpoints may take PUT and PATCH, which Sentry routes
 * apart from POST (stored as "POST" they reached it as a POST). */
static const char *method_name(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	default: return "POST";
	}
}

static void fill_entry(struct pending *p, struct ingest_req *ir)
{
	p->it.method = method_name(ir->method);
	p->it.endpoint = p->endpoint;
	p->it.query = p->query;
	p->it.headers = p->headers;
	p->it.client_ip = p->xff;
	p->it.sdk_key = p->sdk_key;
	p->it.event_id = p->event_id;
	p->it.carrier = ir->auth.carrier;
	p->it.has_secret = ir->auth.has_secret;
	p->it.categories = ir->categories;
	/* The request's input buffer (or the rewritten copy, which the pending takes over), alive
	 * until the request is answered. */
	p->it.body = ir->rewritten != NULL ? ir->rewritten : ir->body;
	p->it.body_len = ir->rewritten != NULL ? ir->rewritten_len : ir->body_len;
	p->it.rewritten_key = ir->rewrite_key;
	p->owned_body = ir->rewritten;
	ir->rewritten = NULL;
}

/* The project's stream, then one per mirror: each copy is its own route. */
static int set_streams(struct ingest *in, struct pending *p, const struct route_target *t)
{
	const struct config_project *pr = t->project;

	if (queue_stream(in->r->queue, t->upstream->name, pr->name, p->stream[0], ENTRY_KEY_MAX) != 0)
		return -1;
	p->streams[0] = p->stream[0];
	p->nstreams = 1;
	for (size_t i = 0; i < pr->nmirrors && p->nstreams < QUEUE_STREAMS_MAX; i++, p->nstreams++) {
		char *buf = p->stream[p->nstreams];

		if (queue_mirror_stream(in->r->queue, t->upstream->name, pr->name, pr->mirrors[i].up->name,
					pr->mirrors[i].pr->name, buf, ENTRY_KEY_MAX) != 0)
			return -1;
		p->streams[p->nstreams] = buf;
	}
	return 0;
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

	if (collect_headers(in->r->cfg, ir->req, ir->auth.carrier, headers, sizeof(headers), &hlen) != 0)
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
	p->gen = ir->gen;
	generation_enter(p->gen);
	p->req = ir->req;
	p->evcon = evhttp_request_get_connection(ir->req);
	p->target = *t;
	p->ep = ir->m.ep;
	p->get = ir->method == EVHTTP_REQ_GET;
	snprintf(p->endpoint, sizeof(p->endpoint), "%s", ir->tunnel ? "envelope/" : ir->m.stored);
	snprintf(p->sdk_key, sizeof(p->sdk_key), "%s", ir->auth.key);
	intake_event_id(ir->m.ep, ir->decoded, ir->decoded_len, ir->job, p->event_id);
	if (set_streams(in, p, t) != 0) {
		generation_leave(p->gen);
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
	switch (queue_put(in->r->queue, p->streams, p->nstreams, &p->it, put_done, p)) {
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
	free_pending(p);
}

/* Every destination (the project and its mirrors) limits all these categories; left: the
 * soonest of them ends. */
static bool all_limited(struct ingest *in, const struct route_target *t, category_mask cats, double *left)
{
	const struct config_project *pr = t->project;
	double now = clock_mono(), l;

	if (!throttle_all_limited(in->r->throttle, t->upstream->name, pr->name, cats, now, left))
		return false;
	for (size_t i = 0; i < pr->nmirrors; i++) {
		if (!throttle_all_limited(in->r->throttle, pr->mirrors[i].up->name, pr->mirrors[i].pr->name, cats, now, &l))
			return false;
		if (l < *left)
			*left = l;
	}
	return true;
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
	if (cfg->rate_limits_passthrough && !ir->m.ep->no_429 && all_limited(in, t, ir->categories, &left)) {
		snprintf(ra, sizeof(ra), "%.0f", ceil(left));
		add_limits(in, h, t);
		evhttp_add_header(h, "Retry-After", ra);
		reply_error(in, ir->req, 429, "rate limited by the upstream Sentry", 0);
		return -1;
	}
	return 0;
}

/* ---- authentication and checks ---- */

/* The one way an intake refusal becomes an answer. */
static void refuse_intake(struct ingest *in, struct ingest_req *ir, enum intake_result r)
{
	int status;
	const char *detail = intake_reason(r, &status);

	reply_error(in, ir->req, status, detail, status == 503 ? 1 : 0);
}

/* Credentials: one request carrier, the key segment of unreal/cron paths, or the envelope header dsn. */
static int authenticate(struct ingest *in, struct ingest_req *ir, long *route_id)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(ir->req);
	size_t hlen;
	const char *head = bodyjob_header(ir->job, &hlen), *why;
	int status;

	if (intake_auth(&ir->m, ir->path_id, evhttp_find_header(h, "X-Sentry-Auth"), evhttp_find_header(h, "Authorization"),
			ir->query, head, hlen, &ir->auth, route_id, &status, &why) != INTAKE_OK) {
		reply_error(in, ir->req, status, why, 0);
		return -1;
	}
	return 0;
}

/* Size, encoding and type checks before any body work. -1 when answered. */
static int check_framing(struct ingest *in, struct ingest_req *ir)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(ir->req);
	enum intake_result r = intake_check(in->r->cfg, ir->m.ep, ir->method == EVHTTP_REQ_GET, ir->query,
					    evhttp_find_header(h, "Content-Encoding"),
					    evhttp_find_header(h, "Content-Type"), ir->body_len, &ir->encoding);

	return r == INTAKE_OK ? 0 : (refuse_intake(in, ir, r), -1);
}

static void body_failed(struct ingest *in, struct ingest_req *ir, enum bodyjob_result r)
{
	refuse_intake(in, ir, intake_of_bodyjob(r, ir->m.ep, ir->encoding));
}

static void release_req(struct ingest_req *ir)
{
	bodyjob_free(ir->job);
	free(ir->decoded);
	free(ir->rewritten);
	ir->job = NULL, ir->decoded = NULL, ir->rewritten = NULL;
}

/* What comes after phase one. */
enum next_step {
	NEXT_ANSWERED = 0,   /* refused (the answer is sent) */
	NEXT_QUEUE,          /* admitted: queue it */
	NEXT_REWRITE,        /* admitted, but its header must be rewritten first (phase two) */
};

/* Phase one done: what the body is; then who sent it, where it goes, whether it is admitted. */
static enum next_step after_scan(struct ingest *in, struct ingest_req *ir)
{
	char dsn[512], detail[256];
	long route_id;
	enum bodyjob_result r;

	ir->categories = intake_categories(ir->m.ep, ir->decoded, ir->decoded_len, ir->job);
	if (authenticate(in, ir, &route_id) != 0)
		return NEXT_ANSWERED;
	if (route_lookup(generation_routes(ir->gen), ir->auth.key, ir->auth.has_secret ? ir->auth.secret : NULL, route_id,
			 &ir->target, detail, sizeof(detail)) != 0) {
		reply_error(in, ir->req, 403, detail, 0);
		return NEXT_ANSWERED;
	}
	if (admit(in, ir, &ir->target) != 0)
		return NEXT_ANSWERED;
	/* A plain envelope's header is rewritten when forwarded: cheap. A mirrored one keeps the SDK's
	 * header, since each copy gets its own destination's key when forwarded. */
	if (ir->m.ep->kind != EP_KIND_ENVELOPE || ir->encoding == CODEC_IDENTITY || ir->target.project->nmirrors > 0)
		return NEXT_QUEUE;
	request_dsn(ir->target.upstream, ir->target.project->key, ir->target.project->id, dsn, sizeof(dsn));
	r = bodyjob_rewrite_start(ir->job, dsn, ir->auth.key, ir->target.project->key, in->r->cfg->max_body_size);
	if (r == BODYJOB_MORE)
		return NEXT_REWRITE;
	if (r == BODYJOB_NONE)
		return NEXT_QUEUE;
	body_failed(in, ir, r);
	return NEXT_ANSWERED;
}

/* Phase two done: the rewritten body replaces the request's. */
static void after_rewrite(struct ingest_req *ir)
{
	ir->rewritten = bodyjob_rewritten(ir->job, &ir->rewritten_len);
	ir->rewrite_key = ir->target.project->key;
}

static void body_wait_free(struct body_wait *w)
{
	if (!w->gone)
		evhttp_connection_set_closecb(w->evcon, NULL, NULL);
	event_free(w->ev);
	release_req(&w->ir);
	generation_leave(w->ir.gen);
	free(w);
}

static void body_client_gone(struct evhttp_connection *evcon, void *arg)
{
	struct body_wait *w = arg;

	(void)evcon;
	w->gone = true;  /* the request and its body are freed with the connection */
}

/* A zero timer, not event_active: libevent runs events activated while it processes the active
 * queue in the same pass, before any socket is read, so only a timer lets other requests in
 * between two steps. */
static void next_step(struct body_wait *w)
{
	struct timeval now = { 0, 0 };

	evtimer_add(w->ev, &now);
}

/* One step of a waiting body, then back to the loop (or on to the queue when done). */
static void body_wait_cb(evutil_socket_t fd, short what, void *arg)
{
	struct body_wait *w = arg;
	struct ingest_req *ir = &w->ir;
	enum bodyjob_result r;

	(void)fd;
	(void)what;
	if (w->gone) {
		body_wait_free(w);
		return;
	}
	r = w->rewriting ? bodyjob_rewrite_step(ir->job) : bodyjob_step(ir->job);
	if (r == BODYJOB_MORE) {
		next_step(w);
		return;
	}
	if (r != BODYJOB_DONE) {
		body_failed(w->in, ir, r);
	} else if (w->rewriting) {
		after_rewrite(ir);
		enqueue(w->in, ir, &ir->target);
	} else {
		switch (after_scan(w->in, ir)) {
		case NEXT_REWRITE:
			w->rewriting = true;
			next_step(w);
			return;
		case NEXT_QUEUE:
			enqueue(w->in, ir, &ir->target);
			break;
		case NEXT_ANSWERED:
			break;
		}
	}
	body_wait_free(w);
}

/* The rest of the body's work goes on from the loop, a step at a time. */
static void wait_for_body(struct ingest *in, struct ingest_req *ir, bool rewriting)
{
	struct body_wait *w = calloc(1, sizeof(*w));

	if (w == NULL || (w->ev = evtimer_new(in->r->base, body_wait_cb, w)) == NULL) {
		free(w);
		reply_error(in, ir->req, 503, "out of memory", 1);
		release_req(ir);
		return;
	}
	w->in = in;
	w->ir = *ir;  /* the job and buffers move into the wait */
	generation_enter(ir->gen);
	w->rewriting = rewriting;
	w->evcon = evhttp_request_get_connection(ir->req);
	evhttp_connection_set_closecb(w->evcon, body_client_gone, w);
	next_step(w);
}

static void handle_ingest(struct ingest *in, struct ingest_req *ir)
{
	struct evbuffer *body = evhttp_request_get_input_buffer(ir->req);
	enum intake_result r;
	enum bodyjob_result br;

	ir->body_len = evbuffer_get_length(body);
	ir->body = ir->body_len > 0 ? (const char *)evbuffer_pullup(body, -1) : "";
	if (check_framing(in, ir) != 0)
		return;
	r = intake_raven(ir->m.ep, ir->encoding, ir->body, ir->body_len, intake_limit(in->r->cfg, ir->m.ep), &ir->decoded,
			 &ir->decoded_len);
	if (r != INTAKE_OK)
		return refuse_intake(in, ir, r);
	ir->job = bodyjob_new(ir->m.ep->kind, ir->encoding, ir->body, ir->body_len, intake_limit(in->r->cfg, ir->m.ep));
	/* Most bodies take one step: they are read right here. */
	br = ir->job != NULL ? bodyjob_step(ir->job) : BODYJOB_NOMEM;
	if (br == BODYJOB_MORE)
		return wait_for_body(in, ir, false);
	if (br != BODYJOB_DONE) {
		body_failed(in, ir, br);
	} else {
		switch (after_scan(in, ir)) {
		case NEXT_REWRITE:
			return wait_for_body(in, ir, true);
		case NEXT_QUEUE:
			enqueue(in, ir, &ir->target);
			break;
		case NEXT_ANSWERED:
			break;
		}
	}
	release_req(ir);
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
	switch (endpoint_match(generation_endpoints(ir->gen), path, &ir->m)) {
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
	ir.gen = in->r->gen;  /* held once it outlives this call (a body wait, a pending put) */
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

	if (in == NULL)
		return NULL;
	in->r = r;
	return in;
}

void ingest_free(struct ingest *in)
{
	free(in);
}
