/* httpd.c - the listener: our own accept loop (EMFILE, connection cap), a framing filter per
 * connection in front of evhttp, and the handler chain behind it. */
#include "httpd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <jansson.h>

#include "budget.h"
#include "clock.h"
#include "endpoint.h"
#include "httphead.h"
#include "log.h"
#include "strmap.h"

#define HANDLERS_MAX 4
#define SWEEP_PERIOD 1.0
#define ACCEPT_PAUSE 0.1          /* seconds accepting pauses after an accept() error */
#define PIPELINE_MAX 4            /* requests of one connection evhttp may hold at once */
#define REJECT_PATH "/.sentryq-reject"
#define CONTIGUOUS_MIN (1024 * 1024) /* bodies from this size are collected in one allocation */
#define CHUNKED_FIRST (64 * 1024)    /* the first allocation of a chunked body, doubled as it grows */
#define MEMORY_RETRY_AFTER 5
/* Connections accepted past max_connections only to be answered 503 and closed: accepting pauses
 * when this many are in flight, which keeps their fds inside the 64 the fd-derived cap leaves. */
#define REFUSE_SLOTS 32
#define CONNECTIONS_RETRY_AFTER 1

struct hconn;

struct httpd {
	struct event_base *base;
	struct httpd_params p;
	struct evhttp *http;
	struct evconnlistener *listener;
	struct evhttp_bound_socket *bound;
	struct event *sweep_ev, *resume_ev;
	struct strmap *by_bev;         /* "%p" of a connection's filter bufferevent -> its hconn */
	struct hconn *conns;
	int nconns;
	bool paused;                   /* accepting paused: at the cap, or after an accept error */
	bool closing;                  /* httpd_free: connections go, the listener is gone */
	struct budget *budget;         /* body bytes held (shared with the forwarder), or NULL */
	uint64_t counters[HTTPD__COUNT];
	double last_accept_log;
	uint64_t accept_errors_logged;
	struct {
		httpd_handler fn;
		void *arg;
	} chain[HANDLERS_MAX];
	size_t nchain;
	const char *name;
	httpd_observer observer;
	void *observer_arg;
	struct httpd *next_live;       /* the live httpds, for accept_error (see there) */
};

static struct httpd *live;

/* One client connection, seen through the framing filter. */
struct hconn {
	struct httpd *h;
	struct hconn *prev, *next;
	struct bufferevent *filter;
	struct event *kick_ev;         /* deferred: push what libevent 2.1's filter leaves stuck */
	struct httphead head;
	struct evbuffer *pending_head; /* head bytes held until the head is complete and admitted */
	double head_since;             /* first byte of the head being read (0: none yet) */
	double body_since;             /* the admitted request's body started */
	uint64_t body_mark;            /* body bytes at the last rate check */
	bool in_body;                  /* an admitted request's body is flowing to evhttp */
	bool discard;                  /* refused: the rest of what the client sends is dropped */
	bool close_after;              /* end the connection once this answer is on the wire */
	bool closing;                  /* the answer is complete: close when the socket took it */
	unsigned passed, seen;         /* requests handed to evhttp, and handed by evhttp to on_request */
	unsigned reject_seq;           /* which of them gets the refusal */
	int reject_status;             /* the answer the refused request gets */
	const char *reject_detail;
	int reject_retry;
	size_t reserved[PIPELINE_MAX]; /* body bytes of the requests handed to evhttp, oldest first */
	int nreserved;
	size_t current;                /* bytes reserved for the request being read (chunked grows) */
	char *big;                     /* a large or chunked body being collected in one piece */
	size_t big_len, big_off;       /* its allocation (a chunked body's grows), the bytes in it */
	double req_since;              /* the request in the handlers' hands arrived (0: none observed) */
	char key[24];
};

static void count(struct httpd *h, enum httpd_counter c)
{
	h->counters[c]++;
}

/* ---- replies ---- */

void httpd_reply_json(struct evhttp_request *req, int code, const char *text)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	const char *body = text != NULL ? text : "{}";

	evhttp_add_header(h, "Content-Type", "application/json");
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		/* evhttp leaves Content-Length out of HEAD answers; a HEAD answer should carry the header
		 * fields of the GET answer (RFC 9110 9.3.2): HEAD /status had none
		 * (test/hostile/test_header_abuse.py). Given one, evhttp would send the body too: none. */
		char len[24];

		snprintf(len, sizeof(len), "%zu", strlen(body));
		evhttp_add_header(h, "Content-Length", len);
		evhttp_send_reply(req, code, NULL, NULL);
		return;
	}
	evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
	evhttp_send_reply(req, code, NULL, NULL);
}

void httpd_reply_error(struct evhttp_request *req, int code, const char *detail, int retry_after)
{
	json_t *o = json_pack("{s:s}", "detail", detail);
	char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	char ra[16];

	if (retry_after > 0) {
		snprintf(ra, sizeof(ra), "%d", retry_after);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", ra);
	}
	httpd_reply_json(req, code, text != NULL ? text : "{\"detail\":\"error\"}");
	free(text);
	json_decref(o);
}

/* ---- body memory ---- */

static bool room(const struct httpd *h, size_t bytes)
{
	return h->budget == NULL || budget_room(h->budget, bytes);
}

bool httpd_has_room(const struct httpd *h, size_t bytes)
{
	return room(h, bytes);
}

static void take(struct httpd *h, size_t bytes)
{
	if (h->budget != NULL)
		budget_take(h->budget, bytes);
}

/* A growing body holding `held` bytes takes `more`: false (nothing taken) past the bound. */
static bool take_more(struct httpd *h, size_t held, size_t more)
{
	return h->budget == NULL || budget_take_more(h->budget, held, more) == BUDGET_OK;
}

static void release(struct httpd *h, size_t bytes)
{
	if (h->budget != NULL)
		budget_give(h->budget, bytes);
}

static void free_big(const void *data, size_t len, void *arg)
{
	(void)len;
	(void)arg;
	free((void *)data);
}

/*
 * A large body is collected in one allocation of its exact size (the pages fill as it comes) and
 * handed to evhttp as one reference chain: evhttp moves it whole into the request, so the handler
 * reads it in place, never copied, and the memory goes back to the system when the request is
 * freed. In small socket-sized pieces it would be copied once more to be read contiguously.
 */
static int start_big(struct hconn *c, uint64_t len)
{
	if (len < CONTIGUOUS_MIN)
		return 0;
	if ((c->big = malloc((size_t)len)) == NULL)
		return -1;
	c->big_len = (size_t)len;
	c->big_off = 0;
	return 0;
}

static void drop_big(struct hconn *c)
{
	free(c->big);
	c->big = NULL;
	c->big_len = c->big_off = 0;
}

/* ---- refusing: evhttp answers a synthetic request, so every answer is a proper evhttp reply ---- */

static struct hconn *conn_of(struct httpd *h, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	char key[24];

	if (evcon == NULL)
		return NULL;
	snprintf(key, sizeof(key), "%p", (void *)evhttp_connection_get_bufferevent(evcon));
	return strmap_get(h->by_bev, key);
}

/* Replace what the client sends from here on with one request evhttp hands to on_request, which
 * answers it with the refusal and closes. */
static void refuse(struct hconn *c, struct evbuffer *dst, int status, const char *detail, int retry_after,
		   enum httpd_counter why)
{
	static const char synthetic[] = "GET " REJECT_PATH " HTTP/1.1\r\n\r\n";

	count(c->h, why);
	c->discard = true;
	c->close_after = true;
	c->reject_seq = ++c->passed;
	c->reject_status = status;
	c->reject_detail = detail;
	c->reject_retry = retry_after;
	evbuffer_drain(c->pending_head, evbuffer_get_length(c->pending_head));
	evbuffer_add(dst, synthetic, sizeof(synthetic) - 1);
}

/* The request the filter refused (the synthetic one, or a chunked body it cut short) gets the
 * refusal; requests before it on the connection are served as usual. */
static bool answer_reject(struct httpd *h, struct evhttp_request *req)
{
	struct hconn *c = conn_of(h, req);

	if (c == NULL || ++c->seen != c->reject_seq || c->reject_status == 0)
		return false;
	/* No "Connection: close" header: evhttp would free the connection before libevent 2.1's filter
	 * wrote the answer. The filter closes once the answer is on the wire. */
	httpd_reply_error(req, c->reject_status, c->reject_detail, c->reject_retry);
	c->reject_status = 0;
	return true;
}

/* ---- the framing filter ---- */

static bool method_takes_body(unsigned m)
{
	return m == HH_POST || m == HH_PUT || m == HH_PATCH;
}

static bool connection_line(const char *p, size_t n)
{
	return n >= 11 && strncasecmp(p, "Connection:", 11) == 0;
}

/*
 * The head goes on to evhttp without its Connection headers: evhttp closing a connection after an
 * answer would free it before libevent 2.1's filter has written that answer to the socket. The
 * filter keeps the connection's end for itself (close_after), and closes once the answer is out.
 */
static void pass_head(struct hconn *c, struct evbuffer *dst)
{
	size_t len = evbuffer_get_length(c->pending_head);
	const char *p = (const char *)evbuffer_pullup(c->pending_head, -1);

	c->close_after |= c->head.conn_close || (c->head.minor == 0 && !c->head.conn_keep_alive);
	for (size_t i = 0; p != NULL && i < len;) {
		const char *nl = memchr(p + i, '\n', len - i);
		size_t n = nl != NULL ? (size_t)(nl - (p + i)) + 1 : len - i;

		if (i == 0 && c->head.minor == 0 && n >= 10 && nl != NULL) {
			/* An HTTP/1.0 request line goes on as 1.1, for the same reason: the filter ends the
			 * connection itself. (The answer is 1.1, which a 1.0 client reads.) */
			size_t v = n - (nl[-1] == '\r' ? 2 : 1) - 1;

			evbuffer_add(dst, p, v);
			evbuffer_add(dst, "1\r\n", 3);
		} else if (!connection_line(p + i, n)) {
			evbuffer_add(dst, p + i, n);
		}
		i += n;
	}
	evbuffer_drain(c->pending_head, len);
}

/* The head is complete: admit the request (its head goes on to evhttp) or refuse it. */
static void admit(struct hconn *c, struct evbuffer *dst)
{
	struct httpd *h = c->h;
	const struct httphead *hh = &c->head;
	uint64_t len = hh->has_length ? hh->length : 0;

	if (!method_takes_body(hh->method) && (len > 0 || hh->chunked))
		return refuse(c, dst, 400, "a request with this method has no body", 0, HTTPD_BAD_FRAMING);
	if (len > h->p.max_body)
		return refuse(c, dst, 413, "request body exceeds listen.max_body_size", 0, HTTPD_TOO_LARGE);
	if (c->nreserved == PIPELINE_MAX || !room(h, (size_t)len) || start_big(c, len) != 0)
		return refuse(c, dst, 503, "busy: too much request body in memory, try again", MEMORY_RETRY_AFTER,
			      HTTPD_MEMORY_FULL);
	c->current = (size_t)len;
	take(h, c->current);
	c->in_body = true;
	c->body_since = clock_mono();
	c->body_mark = 0;
	c->head_since = 0;
	c->passed++;
	pass_head(c, dst);
}

/*
 * A chunked body is collected in one allocation too, grown by doubling as it comes: from a
 * megabyte on, realloc moves the mapping (mremap) instead of copying it, and pages are resident
 * only once data fills them. Handed to evhttp in pieces, its chains made the handler's pullup copy
 * the whole body once more: 353 MiB of RSS for one 150 MiB upload (test/faults/test_large_bodies.py).
 */
static int gather(struct hconn *c, const void *data, size_t n)
{
	size_t need = c->big_off + n, cap = c->big_len > 0 ? c->big_len : CHUNKED_FIRST;
	char *p;

	if (need > c->big_len) {
		while (cap < need)
			cap *= 2;
		if (cap > c->h->p.max_body && need <= c->h->p.max_body)
			cap = c->h->p.max_body;
		if ((p = realloc(c->big, cap)) == NULL)
			return -1;
		c->big = p, c->big_len = cap;
	}
	memcpy(c->big + c->big_off, data, n);
	c->big_off += n;
	return 0;
}

/* The end of a chunked body: all of it to evhttp as one chunk, its memory handed over. */
static void end_chunked(struct hconn *c, struct evbuffer *dst)
{
	/* The unused tail of the last doubling stays: pages never written are not resident. */
	if (c->big_off > 0) {
		evbuffer_add_printf(dst, "%zx\r\n", c->big_off);
		if (evbuffer_add_reference(dst, c->big, c->big_off, free_big, NULL) != 0)
			free(c->big);  /* evhttp then times the request out: the client gets no half body */
		c->big = NULL;
		evbuffer_add(dst, "\r\n", 2);
	}
	drop_big(c);
	evbuffer_add(dst, "0\r\n\r\n", 5);
}

/* A chunked body grows as it comes: count it (past limit_event it is a large body, which never
 * takes the small bodies' reserve) and collect it. Past its bounds it is refused: its memory goes
 * back at once, the body is ended early (evhttp then hands the request to on_request, which
 * answers with the refusal) and the connection closes after the answer (the rest is dropped). */
static bool chunked_over(struct hconn *c, const void *data, uint64_t grown)
{
	struct httpd *h = c->h;
	bool fits = c->current + grown <= h->p.max_body;

	if (fits && take_more(h, c->current, (size_t)grown)) {
		if (gather(c, data, (size_t)grown) == 0) {
			c->current += (size_t)grown;
			return false;
		}
		release(h, (size_t)grown);  /* out of memory: answered as a full budget */
	}
	c->reject_seq = c->passed;
	if (!fits) {
		count(h, HTTPD_TOO_LARGE);
		c->reject_status = 413, c->reject_detail = "request body exceeds listen.max_body_size";
	} else {
		count(h, HTTPD_MEMORY_FULL);
		c->reject_status = 503, c->reject_detail = "busy: too much request body in memory, try again";
		c->reject_retry = MEMORY_RETRY_AFTER;
	}
	drop_big(c);
	release(h, c->current);
	c->current = 0;
	c->in_body = false;
	c->discard = true;
	c->close_after = true;
	return true;
}

static bool chunk_step(struct hconn *c, struct evbuffer_iovec *v, struct evbuffer *src, struct evbuffer *dst,
		       uint64_t before);
static bool after_feed(struct hconn *c, enum httphead_event ev, size_t used, struct evbuffer *dst);

/*
 * The first n bytes of src (the start of its first chain) to dst, copied into dst's chains rather
 * than moving src's chain. The filter runs after every socket read, so moving left each 4 KiB read
 * (libevent 2.1's EVBUFFER_MAX_READ) in a chain of its own, an 8 KiB allocation: a body held twice
 * its size in memory, 386 MiB of RSS for 190 MiB of bodies (test/hostile/test_partial_bodies.py).
 * Copied, dst's chains fill up.
 */
static void move(struct evbuffer *src, struct evbuffer *dst, size_t n)
{
	struct evbuffer_iovec v;

	if (n > 0 && evbuffer_peek(src, (ev_ssize_t)n, NULL, &v, 1) == 1 && v.iov_len >= n) {
		evbuffer_add(dst, v.iov_base, n);
		evbuffer_drain(src, n);
	} else {
		evbuffer_remove_buffer(src, dst, n);
	}
}

/* Body bytes of a large body go into its one allocation; the whole of it to evhttp at its end. */
static void collect(struct hconn *c, const struct evbuffer_iovec *v, struct evbuffer *src, size_t used,
		    struct evbuffer *dst, enum httphead_event ev)
{
	if (used > c->big_len - c->big_off)
		used = c->big_len - c->big_off;  /* cannot happen: httphead stops at the length */
	memcpy(c->big + c->big_off, v->iov_base, used);
	c->big_off += used;
	evbuffer_drain(src, used);
	if (ev != HH_EV_DONE)
		return;
	if (evbuffer_add_reference(dst, c->big, c->big_off, free_big, NULL) != 0)
		free(c->big);  /* evhttp then times the request out: the client gets no half body */
	c->big = NULL;
}

/* One step over the client's bytes in src. Returns false when nothing more can be done now. */
static bool filter_step(struct hconn *c, struct evbuffer *src, struct evbuffer *dst)
{
	struct evbuffer_iovec v;
	uint64_t before = c->head.body_bytes;
	enum httphead_event ev;
	size_t used;

	if (evbuffer_peek(src, -1, NULL, &v, 1) < 1) {
		if (c->head.state != HH_COMPLETE)
			return false;
		v.iov_base = NULL, v.iov_len = 0;  /* a request without a body ends with its head */
	}
	if (c->head_since == 0 && !c->in_body)
		c->head_since = clock_mono();
	if (c->in_body && c->head.chunked)
		return chunk_step(c, &v, src, dst, before);
	ev = httphead_feed(&c->head, v.iov_base, v.iov_len, &used);
	if (c->in_body && c->big != NULL)
		collect(c, &v, src, used, dst, ev);
	else
		move(src, c->in_body ? dst : c->pending_head, used);
	return after_feed(c, ev, used, dst);
}

/*
 * A chunked body is framed again on its way to evhttp: the client's framing is dropped, the data
 * collected (chunked_over), and the whole body goes on as one chunk of the filter's own at its end.
 * So the filter can end the body cleanly at any byte ("0\r\n\r\n") when it must refuse it, which
 * the client's own chunk sizes would not allow.
 */
static bool chunk_step(struct hconn *c, struct evbuffer_iovec *v, struct evbuffer *src, struct evbuffer *dst,
		       uint64_t before)
{
	enum httphead_event ev;
	size_t used, n = v->iov_len;

	if (c->head.state == HH_CHUNK_DATA && c->head.left < n)
		n = (size_t)c->head.left;
	else if (c->head.state != HH_CHUNK_DATA)
		n = 1;  /* framing: a byte at a time, it is a few bytes a chunk */
	ev = httphead_feed(&c->head, v->iov_base, n, &used);
	if (c->head.body_bytes > before && chunked_over(c, v->iov_base, c->head.body_bytes - before)) {
		evbuffer_drain(src, used);
		evbuffer_add(dst, "0\r\n\r\n", 5);
		return false;
	}
	evbuffer_drain(src, used);
	if (ev == HH_EV_DONE)
		end_chunked(c, dst);
	return after_feed(c, ev, used, dst);
}

/* What a feed ended at: the head (admit it), the request's end, or a framing error. */
static bool after_feed(struct hconn *c, enum httphead_event ev, size_t used, struct evbuffer *dst)
{
	switch (ev) {
	case HH_EV_HEAD:
		admit(c, dst);
		return !c->discard;
	case HH_EV_DONE:
		if (c->nreserved < PIPELINE_MAX)
			c->reserved[c->nreserved++] = c->current;
		c->current = 0;
		c->in_body = false;
		httphead_next(&c->head);
		c->discard |= c->close_after;  /* nothing after the last request is read */
		return !c->discard;
	case HH_EV_ERROR:
		refuse(c, dst, httphead_status(c->head.error), httphead_detail(c->head.error), 0,
		       c->head.error == HH_HEAD_TOO_LARGE ? HTTPD_TOO_LARGE : HTTPD_BAD_FRAMING);
		return false;
	case HH_EV_MORE:
		return used > 0;
	}
	return false;
}

static enum bufferevent_filter_result in_filter(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t lim,
						enum bufferevent_flush_mode mode, void *arg)
{
	struct hconn *c = arg;

	(void)lim;
	(void)mode;
	while (!c->discard && (evbuffer_get_length(src) > 0 || c->head.state == HH_COMPLETE))
		if (!filter_step(c, src, dst))
			break;
	if (c->discard)
		evbuffer_drain(src, evbuffer_get_length(src));
	return BEV_OK;
}

/* ---- connections ---- */

/*
 * libevent 2.1's filter bufferevent moves data only while the side is enabled at the moment the
 * data arrives: evhttp writes a reply's head and body first and enables writing after, and it
 * enables reading for the next request after the bytes of a pipelined one arrived. Either way
 * the bytes would wait for the next socket event. A deferred kick, once evhttp is done, pushes
 * both directions.
 */
static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hconn *c = arg;

	(void)fd;
	(void)what;
	struct bufferevent *under = bufferevent_get_underlying(c->filter);

	bufferevent_flush(c->filter, EV_WRITE, BEV_NORMAL);
	if (c->closing) {
		/* An EOF as evhttp sees it, once the socket has the answer: it frees the connection. */
		if (evbuffer_get_length(bufferevent_get_output(under)) == 0 &&
		    evbuffer_get_length(bufferevent_get_output(c->filter)) == 0) {
			c->closing = false;
			bufferevent_trigger_event(c->filter, BEV_EVENT_EOF | BEV_EVENT_READING, BEV_TRIG_DEFER_CALLBACKS);
		}
		return;
	}
	if (evbuffer_get_length(bufferevent_get_input(under)) > 0 && (bufferevent_get_enabled(c->filter) & EV_READ))
		bufferevent_flush(c->filter, EV_READ, BEV_NORMAL);
}

static void kick(struct hconn *c);

/* The socket took more of an answer: a connection waiting to close may close now. */
static void under_output_drained(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct hconn *c = arg;

	if (info->n_deleted > 0 && c->closing && evbuffer_get_length(buf) == 0)
		kick(c);
}

static void kick(struct hconn *c)
{
	if (c->kick_ev != NULL)
		event_active(c->kick_ev, EV_WRITE, 0);
}

static void output_added(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	(void)buf;
	if (info->n_added > 0)
		kick(arg);
}

static void resume_accepting(struct httpd *h)
{
	if (h->closing)
		return;
	if (h->paused && h->listener != NULL && h->nconns < h->p.max_connections + REFUSE_SLOTS) {
		evconnlistener_enable(h->listener);
		h->paused = false;
	}
}

/* libevent frees a filter bufferevent late (its finalizer may run in event_base_free, after
 * httpd_free): a connection left then was detached from the httpd, and only frees itself. */
static void conn_free(void *arg)
{
	struct hconn *c = arg;
	struct httpd *h = c->h;

	if (h == NULL) {
		drop_big(c);
		evbuffer_free(c->pending_head);
		free(c);
		return;
	}
	drop_big(c);
	for (int i = 0; i < c->nreserved; i++)
		release(h, c->reserved[i]);
	release(h, c->current);
	strmap_del(h->by_bev, c->key);
	event_free(c->kick_ev);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	h->nconns--;
	evbuffer_free(c->pending_head);
	free(c);
	resume_accepting(h);
}

/* evhttp asks for each accepted connection's bufferevent: ours filters what the client sends. */
static struct bufferevent *make_bev(struct event_base *base, void *arg)
{
	struct httpd *h = arg;
	struct hconn *c = calloc(1, sizeof(*c));
	struct bufferevent *under = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);

	if (c == NULL || under == NULL || (c->pending_head = evbuffer_new()) == NULL ||
	    (c->kick_ev = event_new(base, -1, 0, kick_cb, c)) == NULL ||
	    (c->filter = bufferevent_filter_new(under, in_filter, NULL, BEV_OPT_CLOSE_ON_FREE, conn_free, c)) == NULL) {
		if (c != NULL && c->pending_head != NULL)
			evbuffer_free(c->pending_head);
		if (c != NULL && c->kick_ev != NULL)
			event_free(c->kick_ev);
		free(c);
		if (under != NULL)
			bufferevent_free(under);
		return NULL;  /* evhttp closes the socket */
	}
	evbuffer_add_cb(bufferevent_get_output(c->filter), output_added, c);
	evbuffer_add_cb(bufferevent_get_output(under), under_output_drained, c);
	c->h = h;
	httphead_init(&c->head, h->p.max_head);
	snprintf(c->key, sizeof(c->key), "%p", (void *)c->filter);
	strmap_put(h->by_bev, c->key, c);
	c->next = h->conns;
	if (h->conns != NULL)
		h->conns->prev = c;
	h->conns = c;
	h->nconns++;
	count(h, HTTPD_CONNECTIONS);
	/*
	 * Past the cap a connection is answered 503 at once (the synthetic request is read as soon as
	 * evhttp starts reading) and closed. Pausing accepts at the cap itself, as before, left every
	 * connection past it waiting unanswered in the kernel's backlog until a slot freed, which idle
	 * connections hold for client_timeout: test/hostile/test_conn_flood.py.
	 */
	if (h->nconns > h->p.max_connections)
		refuse(c, bufferevent_get_input(c->filter), 503, "too many connections, try again",
		       CONNECTIONS_RETRY_AFTER, HTTPD_REFUSED_CONNECTIONS);
	if (h->nconns >= h->p.max_connections + REFUSE_SLOTS && !h->paused && h->listener != NULL) {
		evconnlistener_disable(h->listener);
		h->paused = true;
	}
	return c->filter;
}

/* Heads that take too long and bodies that trickle are ended here, once a second. */
static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct httpd *h = arg;
	double now = clock_mono();

	(void)fd;
	(void)what;
	for (struct hconn *c = h->conns, *next; c != NULL; c = next) {
		next = c->next;
		if (!c->discard && c->head_since > 0 && now - c->head_since > h->p.head_timeout) {
			struct evbuffer *in = bufferevent_get_input(c->filter);

			refuse(c, in, 408, "request head not received in time (listen.head_timeout)", 0, HTTPD_SLOW_HEADS);
			bufferevent_trigger(c->filter, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
		} else if (!c->discard && c->in_body && now - c->body_since > h->p.head_timeout &&
			   (double)(c->head.body_bytes - c->body_mark) < h->p.min_body_rate * SWEEP_PERIOD) {
			count(h, HTTPD_SLOW_BODIES);
			c->discard = true;
			bufferevent_trigger_event(c->filter, BEV_EVENT_EOF | BEV_EVENT_READING, BEV_TRIG_DEFER_CALLBACKS);
		} else {
			c->body_mark = c->head.body_bytes;
		}
	}
}

/* accept() failed (EMFILE at the fd limit, ENFILE, ENOBUFS): pause instead of spinning on it,
 * and say so at most once a second. */
static void accept_error(struct evconnlistener *l, void *arg)
{
	/*
	 * arg is not ours: a listener has one user pointer for both callbacks, and evhttp_bind_listener
	 * set it to the struct evhttp. Taken for the httpd it crashed sentryq (SIGSEGV in evtimer_add) at
	 * the first EMFILE: test/hostile/test_fd_exhaustion.py. The httpd is found by its listener.
	 */
	struct httpd *h = live;
	int err = EVUTIL_SOCKET_ERROR();

	(void)arg;
	while (h != NULL && h->listener != l)
		h = h->next_live;
	if (h == NULL) {
		evconnlistener_disable(l);
		return;
	}
	struct timeval tv = clock_timeval(ACCEPT_PAUSE);
	double now = clock_mono();

	count(h, HTTPD_ACCEPT_ERRORS);
	evconnlistener_disable(l);
	h->paused = true;
	evtimer_add(h->resume_ev, &tv);
	if (now - h->last_accept_log >= 1.0) {
		log_error("%s: accept failed: %s (%llu times since the last report); pausing accepts", h->name,
			  evutil_socket_error_to_string(err),
			  (unsigned long long)(h->counters[HTTPD_ACCEPT_ERRORS] - h->accept_errors_logged));
		h->last_accept_log = now;
		h->accept_errors_logged = h->counters[HTTPD_ACCEPT_ERRORS];
	}
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	resume_accepting(arg);
}

/* ---- requests ---- */

/* The path of the request target, runs of '/' collapsed. Read from the raw target: evhttp's URI
 * parser takes "//api/1/store/" for an authority ("api") and a path. */
static void request_path(struct evhttp_request *req, char *path, size_t len)
{
	const char *uri = evhttp_request_get_uri(req);
	char raw[ENDPOINT_PATH_MAX];
	size_t n;

	if (uri == NULL)
		uri = "/";
	if (strncmp(uri, "http://", 7) == 0 || strncmp(uri, "https://", 8) == 0) {
		/* An absolute target: the path starts after the authority. */
		const char *p = strchr(uri + (uri[4] == 's' ? 8 : 7), '/');

		uri = p != NULL ? p : "/";
	}
	n = strcspn(uri, "?#");
	snprintf(raw, sizeof(raw), "%.*s", (int)(n < sizeof(raw) ? n : sizeof(raw) - 1), uri);
	endpoint_normalise(raw, path, len);
}

/* The request's answer is written: its body leaves the memory bound. */
static void request_done(struct evhttp_request *req, void *arg)
{
	struct httpd *h = arg;
	struct hconn *c = conn_of(h, req);

	if (c == NULL)
		return;
	if (c->nreserved > 0) {
		release(h, c->reserved[0]);
		memmove(c->reserved, c->reserved + 1, (size_t)(c->nreserved - 1) * sizeof(c->reserved[0]));
		c->nreserved--;
	}
	if (c->req_since > 0 && h->observer != NULL) {
		char path[ENDPOINT_PATH_MAX];
		double seconds = clock_mono() - c->req_since;

		c->req_since = 0;
		request_path(req, path, sizeof(path));
		h->observer(h->observer_arg, req, path, seconds);
	}
	/* The last answer of a connection that ends: kick_cb closes once the socket has taken it. */
	if (c->close_after && c->nreserved == 0 && !c->in_body)
		c->closing = true;
	kick(c);  /* a pipelined request may be waiting below the filter */
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct httpd *h = arg;
	char path[ENDPOINT_PATH_MAX];
	struct hconn *c;

	evhttp_request_set_on_complete_cb(req, request_done, h);
	request_path(req, path, sizeof(path));
	if (answer_reject(h, req))
		return;
	if (h->observer != NULL && (c = conn_of(h, req)) != NULL)
		c->req_since = clock_mono();
	for (size_t i = 0; i < h->nchain; i++)
		if (h->chain[i].fn(h->chain[i].arg, req, path))
			return;
	httpd_reply_error(req, 404, "not found", 0);
}

/* ---- life cycle ---- */

static int listen_on(struct httpd *h)
{
	struct evutil_addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
					 .ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_NUMERICHOST };
	struct evutil_addrinfo *ai = NULL;
	char port[8];
	unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | (h->p.reuse_port ? LEV_OPT_REUSEABLE_PORT : 0);

	snprintf(port, sizeof(port), "%d", h->p.port);
	if (evutil_getaddrinfo(h->p.address, port, &hints, &ai) != 0 || ai == NULL)
		return -1;
	/* With reuse_port the kernel spreads new connections over every process listening. */
	h->listener = evconnlistener_new_bind(h->base, NULL, NULL, flags, 1024,
					      ai->ai_addr, (int)ai->ai_addrlen);
	evutil_freeaddrinfo(ai);
	if (h->listener == NULL)
		return -1;
	evconnlistener_set_error_cb(h->listener, accept_error);
	/* evhttp_bind_listener takes the listener: evhttp_free frees it. */
	h->bound = evhttp_bind_listener(h->http, h->listener);
	return h->bound != NULL ? 0 : -1;
}

struct httpd *httpd_new(struct event_base *base, const struct httpd_params *p)
{
	struct httpd *h = calloc(1, sizeof(*h));
	struct timeval tv = clock_timeval(p->client_timeout), sweep = clock_timeval(SWEEP_PERIOD);

	if (h == NULL || (h->http = evhttp_new(base)) == NULL || (h->by_bev = strmap_new()) == NULL)
		goto fail;
	h->base = base;
	h->p = *p;
	h->budget = p->budget;
	h->name = p->name != NULL ? p->name : "http";
	/* evhttp's own limits stay above the filter's, which answers first and in JSON. */
	evhttp_set_max_body_size(h->http, (ev_ssize_t)(p->max_body + 64));
	evhttp_set_max_headers_size(h->http, (ev_ssize_t)(p->max_head * 2));
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS |
				   EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH | EVHTTP_REQ_DELETE | EVHTTP_REQ_CONNECT |
				   EVHTTP_REQ_TRACE);
	evhttp_set_timeout_tv(h->http, &tv);
	/* Empty success answers (security, nel, attachments, cron) are not HTML. */
	evhttp_set_default_content_type(h->http, "text/plain; charset=utf-8");
	evhttp_set_gencb(h->http, on_request, h);
	evhttp_set_bevcb(h->http, make_bev, h);
	if ((h->sweep_ev = event_new(base, -1, EV_PERSIST, sweep_cb, h)) == NULL ||
	    (h->resume_ev = evtimer_new(base, resume_cb, h)) == NULL)
		goto fail;
	evtimer_add(h->sweep_ev, &sweep);
	if (listen_on(h) != 0) {
		log_error("%s: cannot listen on %s:%d", h->name, p->address, p->port);
		goto fail;
	}
	log_info("%s: listening on %s:%d (at most %d connections)", h->name, p->address, p->port, p->max_connections);
	h->next_live = live;
	live = h;
	return h;
fail:
	httpd_free(h);
	return NULL;
}

void httpd_free(struct httpd *h)
{
	if (h == NULL)
		return;
	for (struct httpd **p = &live; *p != NULL; p = &(*p)->next_live)
		if (*p == h) {
			*p = h->next_live;
			break;
		}
	h->closing = true;
	if (h->http != NULL)
		evhttp_free(h->http);  /* frees the listener and every connection (conn_free runs) */
	else if (h->listener != NULL)
		evconnlistener_free(h->listener);
	for (struct hconn *c = h->conns; c != NULL; c = c->next) {
		c->h = NULL;  /* freed later by libevent: detached (see conn_free) */
		event_free(c->kick_ev);
		c->kick_ev = NULL;
	}
	if (h->sweep_ev != NULL)
		event_free(h->sweep_ev);
	if (h->resume_ev != NULL)
		event_free(h->resume_ev);
	strmap_free(h->by_bev);
	free(h);
}

int httpd_add_handler(struct httpd *h, httpd_handler fn, void *arg)
{
	if (h->nchain == HANDLERS_MAX)
		return -1;
	h->chain[h->nchain].fn = fn;
	h->chain[h->nchain++].arg = arg;
	return 0;
}

void httpd_set_observer(struct httpd *h, httpd_observer fn, void *arg)
{
	h->observer = fn;
	h->observer_arg = arg;
}

void httpd_stop_accepting(struct httpd *h)
{
	if (h->bound != NULL) {
		evhttp_del_accept_socket(h->http, h->bound);
		h->bound = NULL;
		h->listener = NULL;  /* freed with the bound socket */
	}
}

uint64_t httpd_counter(const struct httpd *h, enum httpd_counter c)
{
	return h->counters[c];
}

const char *httpd_counter_name(enum httpd_counter c)
{
	static const char *const names[HTTPD__COUNT] = {
		"connections", "refused_connections", "accept_errors", "bad_framing", "too_large", "slow_heads",
		"slow_bodies", "memory_full",
	};

	return c < HTTPD__COUNT ? names[c] : "?";
}

int httpd_connections(const struct httpd *h)
{
	return h->nconns;
}

size_t httpd_body_memory(const struct httpd *h)
{
	return h->budget != NULL ? budget_used(h->budget) : 0;
}
