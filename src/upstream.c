/* upstream.c - per-Sentry-server state: keep-alive connection pool, in-flight cap, failure backoff. */
#include "upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "outage.h"
#include "outcome.h"
#include "relay.h"
#include "request.h"

struct call;

struct slot {
	struct evhttp_connection *conn;
	struct call *call;     /* the request in flight on it, NULL when idle */
	unsigned gen;          /* bumped per request: tells a finished call from a later one */
	bool busy;
	bool connected;        /* an answer came over it and it has not closed since */
	bool tls;
	bool stale;            /* TLS connection closed: its SSL object cannot reconnect */
};

struct upstream {
	struct relay *r;
	const struct config_upstream *cfg;
	struct slot *slots;
	int nslots;
	int in_flight;
	int reserved;
	struct outage outage;  /* reachable, interrupted or down (pure state machine) */
	struct upstream_hooks hooks;
	struct upstream_counts counts;
	SSL_CTX *tls;          /* https upstreams only */
	char host_header[300];
};

struct call {
	struct upstream *u;
	int slot;
	unsigned gen;
	unsigned stamp;                /* outage stamp at send: a failure wave moves the state once */
	double sent_at;                /* monotonic: the latency histogram */
	struct evhttp_request *req;
	struct event *connect_timer;   /* forward.connect_timeout while the connection is not up */
	upstream_done_cb cb;
	void *arg;
};

/* One TLS context per upstream: the CA store (system or ca_file) and whether to verify at all. */
static int tls_init(struct upstream *u)
{
	const struct config_upstream *cfg = u->cfg;
	int ok;

	u->tls = SSL_CTX_new(TLS_client_method());
	if (u->tls == NULL)
		return -1;
	SSL_CTX_set_min_proto_version(u->tls, TLS1_2_VERSION);
	if (!cfg->verify) {
		log_warn("upstream %s: TLS certificate verification is OFF (verify = false): anyone on the path "
			 "can read and alter what is forwarded", cfg->name);
		SSL_CTX_set_verify(u->tls, SSL_VERIFY_NONE, NULL);
		return 0;
	}
	SSL_CTX_set_verify(u->tls, SSL_VERIFY_PEER, NULL);
	ok = cfg->ca_file != NULL ? SSL_CTX_load_verify_locations(u->tls, cfg->ca_file, NULL)
				  : SSL_CTX_set_default_verify_paths(u->tls);
	if (ok != 1) {
		log_error("upstream %s: cannot load CA certificates from %s", cfg->name,
			  cfg->ca_file != NULL ? cfg->ca_file : "the system store");
		return -1;
	}
	return 0;
}

/* A fresh SSL per connection, with SNI and the name (or IP) the certificate must carry. */
static struct bufferevent *tls_bev(struct upstream *u)
{
	const char *host = u->cfg->host;
	unsigned char ip[16];
	bool is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
	struct bufferevent *bev;
	SSL *ssl = SSL_new(u->tls);

	if (ssl == NULL)
		return NULL;
	if (!is_ip)
		SSL_set_tlsext_host_name(ssl, host);
	if (u->cfg->verify) {
		if (is_ip)
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
		else
			SSL_set1_host(ssl, host);
	}
	bev = bufferevent_openssl_socket_new(u->r->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
					     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	/* Servers often close idle keep-alive connections without close_notify. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

static void conn_closed(struct evhttp_connection *conn, void *arg)
{
	struct slot *s = arg;

	(void)conn;
	s->connected = false;
	s->stale = s->tls;
}

/* Upper bounds of the upstream latency histogram, seconds. */
static const double latency_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 };

struct upstream *upstream_new(struct relay *r, const struct config_upstream *cfg)
{
	struct upstream *u = calloc(1, sizeof(*u));

	if (u == NULL)
		return NULL;
	u->r = r;
	u->cfg = cfg;
	u->nslots = cfg->max_connections;
	u->slots = calloc((size_t)u->nslots, sizeof(struct slot));
	if (u->slots == NULL) {
		free(u);
		return NULL;
	}
	if (cfg->tls && tls_init(u) != 0) {
		upstream_free(u);
		return NULL;
	}
	request_host(cfg, u->host_header, sizeof(u->host_header));
	metrics_histogram_init(&u->counts.latency, latency_bounds, sizeof(latency_bounds) / sizeof(latency_bounds[0]));
	outage_init(&u->outage, &(struct outage_params){ r->cfg->forward_retry_initial, r->cfg->forward_retry_max,
							  r->cfg->forward_outage_grace }, clock_mono());
	return u;
}

void upstream_free(struct upstream *u)
{
	if (u == NULL)
		return;
	/* evhttp_connection_free drops a request in flight without calling its callback. */
	for (int i = 0; u->slots != NULL && i < u->nslots; i++) {
		if (u->slots[i].conn != NULL)
			evhttp_connection_free(u->slots[i].conn);
		if (u->slots[i].call != NULL && u->slots[i].call->connect_timer != NULL)
			event_free(u->slots[i].call->connect_timer);
		free(u->slots[i].call);
	}
	if (u->tls != NULL)
		SSL_CTX_free(u->tls);
	free(u->slots);
	free(u);
}

void upstream_reconfigure(struct upstream *u, const struct config_upstream *cfg)
{
	struct timeval tv = clock_timeval(cfg->timeout);

	u->cfg = cfg;
	for (int i = 0; i < u->nslots; i++)  /* open connections take the new timeout too */
		if (u->slots[i].conn != NULL)
			evhttp_connection_set_timeout_tv(u->slots[i].conn, &tv);
}

void upstream_adopt(struct upstream *u, const struct upstream *old, bool outage)
{
	u->counts = old->counts;  /* the histogram's bounds are the same static table */
	if (outage)
		u->outage = old->outage;
}

const struct config_upstream *upstream_config(const struct upstream *u)
{
	return u->cfg;
}

void upstream_set_hooks(struct upstream *u, const struct upstream_hooks *hooks)
{
	u->hooks = *hooks;
}

bool upstream_down(const struct upstream *u)
{
	return u->outage.state == OUTAGE_DOWN;
}

int upstream_available(const struct upstream *u)
{
	/* A down upstream gets one probe at a time; its answer decides whether traffic resumes. */
	int n = outage_slots(&u->outage, clock_mono(), u->nslots) - u->in_flight - u->reserved;

	/* The probe slot is the fleet's: only the process holding the probe lease uses it. */
	if (n > 0 && u->outage.state == OUTAGE_DOWN && u->hooks.may_probe != NULL &&
	    !u->hooks.may_probe(u->hooks.arg, u))
		return 0;

	return n > 0 ? n : 0;
}

void upstream_reserve(struct upstream *u, int n)
{
	u->reserved += n;
}

void upstream_release(struct upstream *u, int n)
{
	u->reserved -= n;
}

int upstream_in_flight(const struct upstream *u)
{
	return u->in_flight;
}

static struct evhttp_connection *slot_conn(struct upstream *u, int i)
{
	struct slot *s = &u->slots[i];
	struct timeval tv;

	/* evhttp reconnects a closed connection by itself, but an SSL object cannot be reused:
	 * a closed TLS connection is replaced (the slot is idle, nothing is queued on it). */
	if (s->conn != NULL && s->stale) {
		evhttp_connection_free(s->conn);
		s->conn = NULL;
	}
	if (s->conn != NULL)
		return s->conn;
	s->stale = false;
	/* evdns resolves the host on the loop: a slow DNS server never blocks ingest. */
	if (u->tls != NULL) {
		struct bufferevent *bev = tls_bev(u);

		s->conn = bev ? evhttp_connection_base_bufferevent_new(u->r->base, u->r->dns, bev, u->cfg->host,
								       (unsigned short)u->cfg->port) : NULL;
	} else {
		s->conn = evhttp_connection_base_new(u->r->base, u->r->dns, u->cfg->host, (unsigned short)u->cfg->port);
	}
	if (s->conn == NULL)
		return NULL;
	s->tls = u->tls != NULL;
	s->connected = false;
	bufferevent_priority_set(evhttp_connection_get_bufferevent(s->conn), RELAY_PRIORITY_FORWARD);
	evhttp_connection_set_closecb(s->conn, conn_closed, s);
	tv = clock_timeval(u->cfg->timeout);
	evhttp_connection_set_timeout_tv(s->conn, &tv);
	/* Retries are the queue's job, with backoff; evhttp must not resend on its own. */
	evhttp_connection_set_retries(s->conn, 0);
	return s->conn;
}

static bool tcp_connected(struct evhttp_connection *conn);

/* Says each transition once: a 16-request failure wave is one line, not sixteen. */
static void log_change(const struct upstream *u, enum outage_change ch, int status)
{
	const struct outage *o = &u->outage;
	double now = clock_mono(), wait = outage_wait(o, now), out = now - o->first_failure;
	const char *name = u->cfg->name;

	switch (ch) {
	case OUTAGE_BECAME_INTERRUPTED:
		log_kv_warn(LOG_FIELDS(LOG_STR("upstream", name), LOG_STR("state", "interrupted"), LOG_INT("status", status),
				       LOG_REAL("retry_in_s", wait)),
			    "upstream %s: %s; retrying in %.1fs", name, status ? "answered with a server error" : "no answer",
			    wait);
		break;
	case OUTAGE_BECAME_DOWN:
		log_kv_warn(LOG_FIELDS(LOG_STR("upstream", name), LOG_STR("state", "down"), LOG_REAL("failing_s", out),
				       LOG_REAL("retry_in_s", wait)),
			    "upstream %s: down (failing for %.0fs); probing with one request, next in %.1fs", name, out, wait);
		break;
	case OUTAGE_PROBE_FAILED:
		log_kv_info(LOG_FIELDS(LOG_STR("upstream", name), LOG_STR("state", "down"), LOG_REAL("failing_s", out),
				       LOG_REAL("retry_in_s", wait)),
			    "upstream %s: still down after %.0fs; next probe in %.1fs", name, out, wait);
		break;
	case OUTAGE_RECOVERED:
		log_kv_info(LOG_FIELDS(LOG_STR("upstream", name), LOG_STR("state", "up"), LOG_REAL("outage_s", out)),
			    "upstream %s: back up after %.1fs", name, out);
		break;
	default:
		break;
	}
}

static double jitter_rnd(void)
{
	return (double)rand() / ((double)RAND_MAX + 1.0);
}

/* sent: when the request went out (a probe's interval runs from its send, not its answer). */
static void note_answer(struct upstream *u, unsigned stamp, double sent, int status)
{
	double now = clock_mono();
	enum outage_state was = u->outage.state;
	enum outage_change ch = outcome_reachable(status) ? outage_reachable(&u->outage, now)
							  : outage_failed(&u->outage, stamp, sent, now, jitter_rnd());

	log_change(u, ch, status);
	if (ch != OUTAGE_SAME && u->hooks.on_change != NULL)
		u->hooks.on_change(u->hooks.arg, u, ch, was);
}

enum outage_change upstream_fleet_down(struct upstream *u)
{
	double now = clock_mono();
	enum outage_change ch = outage_fleet_down(&u->outage, now, jitter_rnd());

	if (ch == OUTAGE_BECAME_DOWN)
		log_kv_warn(LOG_FIELDS(LOG_STR("upstream", u->cfg->name), LOG_STR("state", "down"), LOG_STR("by", "fleet"),
				       LOG_REAL("retry_in_s", outage_wait(&u->outage, now))),
			    "upstream %s: down (another sentryq process found it down); the probe lease decides who probes",
			    u->cfg->name);
	return ch;
}

enum outage_change upstream_fleet_up(struct upstream *u)
{
	double now = clock_mono(), out = now - u->outage.first_failure;
	enum outage_change ch = outage_reachable(&u->outage, now);

	if (ch == OUTAGE_RECOVERED)
		log_kv_info(LOG_FIELDS(LOG_STR("upstream", u->cfg->name), LOG_STR("state", "up"), LOG_STR("by", "fleet"),
				       LOG_REAL("outage_s", out)),
			    "upstream %s: back up after %.1fs (another sentryq process got an answer)", u->cfg->name, out);
	return ch;
}

static void call_done(struct evhttp_request *resp, void *arg)
{
	struct call *c = arg;
	struct upstream *u = c->u;
	int status = resp != NULL ? evhttp_request_get_response_code(resp) : 0;

	if (c->connect_timer != NULL)
		event_free(c->connect_timer);
	u->slots[c->slot].busy = false;
	u->slots[c->slot].call = NULL;
	/* An answer with "Connection: close" has already reset the connection: not connected. */
	if (status != 0)
		u->slots[c->slot].connected = tcp_connected(u->slots[c->slot].conn);
	u->in_flight--;
	metrics_histogram_observe(&u->counts.latency, clock_mono() - c->sent_at);
	if (status != 0)
		u->counts.answered[outcome_of(status)]++;
	else
		u->counts.no_answer++;
	note_answer(u, c->stamp, c->sent_at, status);
	c->cb(c->arg, status, status != 0 ? resp : NULL);
	free(c);
}

/* Is the TCP handshake of this connection done? (A TLS handshake counts as part of the request.) */
static bool tcp_connected(struct evhttp_connection *conn)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(conn);
	evutil_socket_t fd = bev != NULL ? bufferevent_getfd(bev) : -1;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	return fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &len) == 0;
}

/*
 * libevent 2.1 has one timeout for connect and answer alike: a host that drops SYNs would hold
 * a slot for forward.timeout. Until the connection has carried an answer, the request is
 * cancelled after connect_timeout instead.
 */
static void connect_expired(evutil_socket_t fd, short what, void *arg)
{
	struct call *c = arg;
	struct upstream *u = c->u;
	int slot = c->slot;
	unsigned gen = c->gen;

	(void)fd;
	(void)what;
	if (u->slots[slot].connected || tcp_connected(u->slots[slot].conn))
		return;
	log_debug("upstream %s: no connection within %.1fs", u->cfg->name, u->cfg->connect_timeout);
	evhttp_cancel_request(c->req);  /* fails the request through call_done */
	if (u->slots[slot].busy && u->slots[slot].gen == gen)
		call_done(NULL, c);  /* a libevent that cancelled without calling back */
}

static int free_slot(const struct upstream *u)
{
	for (int i = 0; i < u->nslots; i++)
		if (!u->slots[i].busy)
			return i;
	return -1;
}

/* Until its connection has carried an answer, a request gets connect_timeout to connect. */
static void arm_connect_timer(struct upstream *u, struct call *c)
{
	double t = u->cfg->connect_timeout;
	struct timeval tv = clock_timeval(t);

	if (u->slots[c->slot].connected || t >= u->cfg->timeout)
		return;
	c->connect_timer = evtimer_new(u->r->base, connect_expired, c);
	if (c->connect_timer != NULL)
		evtimer_add(c->connect_timer, &tv);
}

/* The request's own method (request.c keeps PUT and PATCH as the SDK sent them). */
static enum evhttp_cmd_type command_of(const struct request *rq)
{
	if (rq->get)
		return EVHTTP_REQ_GET;
	if (rq->method != NULL && strcmp(rq->method, "PUT") == 0)
		return EVHTTP_REQ_PUT;
	if (rq->method != NULL && strcmp(rq->method, "PATCH") == 0)
		return EVHTTP_REQ_PATCH;
	return EVHTTP_REQ_POST;
}

/* Head, then body: copied, or handed over (evbuffer_add_reference: sent in place, released once). */
static int add_body(struct evbuffer *out, const struct request *rq, const struct upstream_body *hand)
{
	if (rq->head_len > 0 && evbuffer_add(out, rq->head, rq->head_len) != 0)
		return -1;
	if (hand == NULL)
		return evbuffer_add(out, rq->body, rq->body_len);
	return evbuffer_add_reference(out, rq->body, rq->body_len, hand->release, hand->arg);
}

void upstream_send(struct upstream *u, const struct request *rq, const struct upstream_body *hand,
		   upstream_done_cb cb, void *arg)
{
	bool handed = false;
	struct evhttp_request *req = NULL;
	struct evhttp_connection *conn;
	struct evkeyvalq *out;
	struct call *c;
	int i = free_slot(u);
	char length[24];

	u->reserved--;
	c = malloc(sizeof(*c));
	/* A GET carries no body: one it held would be framed as the next request on the connection. */
	if (c == NULL || i < 0 || (rq->get && rq->body_len > 0) || (conn = slot_conn(u, i)) == NULL)
		goto fail;
	c->u = u;
	c->slot = i;
	c->cb = cb;
	c->arg = arg;
	req = evhttp_request_new(call_done, c);
	if (req == NULL)
		goto fail;
	out = evhttp_request_get_output_headers(req);
	evhttp_add_header(out, "Host", u->host_header);
	for (size_t k = 0; k < rq->nh; k++)
		evhttp_add_header(out, rq->h[k].name, rq->h[k].value);
	/* Framed explicitly, whatever the method: the upstream reads exactly this body and no more. */
	if (!rq->get) {
		snprintf(length, sizeof(length), "%zu", rq->head_len + rq->body_len);
		evhttp_add_header(out, "Content-Length", length);
		if (add_body(evhttp_request_get_output_buffer(req), rq, hand) != 0)
			goto fail;
		handed = hand != NULL;  /* from here on the request's buffer releases it */
	}
	u->slots[i].busy = true;
	u->slots[i].call = c;
	c->gen = ++u->slots[i].gen;
	c->stamp = outage_stamp(&u->outage);
	c->req = req;
	c->connect_timer = NULL;
	c->sent_at = clock_mono();
	u->in_flight++;
	/* Armed before the request is made: libevent may fail it (and run call_done, which frees
	 * the timer with the call) inside evhttp_make_request, after which c must not be touched. */
	arm_connect_timer(u, c);
	/* A synchronous failure (the socket could not even be created) leaves req to us. */
	if (evhttp_make_request(conn, req, command_of(rq), rq->uri) != 0) {
		u->slots[i].busy = false;
		u->slots[i].call = NULL;
		u->in_flight--;
		if (c->connect_timer != NULL)
			event_free(c->connect_timer);
		goto fail;
	}
	return;
fail:
	if (req != NULL)
		evhttp_request_free(req);
	if (hand != NULL && !handed)
		hand->release(rq->body, rq->body_len, hand->arg);
	free(c);
	u->counts.no_answer++;
	note_answer(u, outage_stamp(&u->outage), clock_mono(), 0);
	cb(arg, 0, NULL);
}

bool upstream_ready(const struct upstream *u)
{
	double now = clock_mono();

	return outage_wait(&u->outage, now) == 0;
}

const struct outage *upstream_outage(const struct upstream *u)
{
	return &u->outage;
}

const struct upstream_counts *upstream_counts(const struct upstream *u)
{
	return &u->counts;
}

const char *upstream_state_name(const struct upstream *u)
{
	switch (u->outage.state) {
	case OUTAGE_UP: return "up";
	case OUTAGE_INTERRUPTED: return "probing";
	case OUTAGE_DOWN: return "down";
	}
	return "down";
}

json_t *upstream_status_json(const struct upstream *u)
{
	const struct outage *o = &u->outage;
	double now = clock_mono();

	/* down_for_s and retry_in_s answer "since when, and when is the next probe". */
	return json_pack("{s:s, s:i, s:I, s:b, s:f, s:f}", "state", outage_state_name(o->state), "in_flight",
			 u->in_flight, "failures", (json_int_t)o->failed_waves, "down", o->state == OUTAGE_DOWN,
			 "down_for_s", o->state == OUTAGE_UP ? 0.0 : now - o->first_failure, "retry_in_s",
			 outage_wait(o, now));
}
